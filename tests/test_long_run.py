"""A long bfloat16 run (SPEC items 15-16 over time): MultiSteps + inject_hyperparams, 20,000 steps.

A bfloat16 two-layer MLP learns a sparse teacher with full-batch gradients, wrapped as
``optax.MultiSteps(optax.inject_hyperparams(...)(...), every_k_schedule=2)``: 20,000 micro-steps,
10,000 optimizer updates, all inside one ``lax.scan`` (one compilation). Checked: no NaN/inf ever
(in params, state or loss), parameter and state dtypes/weak types unchanged, the zero set stable
over the last 2,000 micro-steps, and -- against an independent reference -- the same run in float32:
close loss, and nearly the same support.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import l1optax

MICRO_STEPS = 20_000
K = 2
CHECK_EVERY = 500


def _avals(tree):
    return jax.tree.map(lambda x: (x.shape, x.dtype, jax.typeof(x).weak_type), tree)


def _problem(dtype):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 16))
    w_true = np.zeros((16, 4))
    w_true[:4] = rng.normal(size=(4, 4))
    Y = np.tanh(X @ w_true)
    W1 = rng.normal(size=(16, 32)) * 0.3
    W2 = rng.normal(size=(32, 4)) * 0.3
    params = {
        "l1": {"w": jnp.asarray(W1, dtype), "b": jnp.zeros(32, dtype)},
        "l2": {"w": jnp.asarray(W2, dtype), "b": jnp.zeros(4, dtype)},
    }
    return jnp.asarray(X, dtype), jnp.asarray(Y, dtype), params


def _loss(params, X, Y):
    h = jnp.tanh(X @ params["l1"]["w"] + params["l1"]["b"])
    out = h @ params["l2"]["w"] + params["l2"]["b"]
    return jnp.mean((out.astype(jnp.float32) - Y.astype(jnp.float32)) ** 2)


def _optimizer(kind):
    schedule = optax.cosine_decay_schedule(3e-3, decay_steps=MICRO_STEPS // K, alpha=0.1)

    def factory(learning_rate, l1reg):
        if kind == "prox_adam":
            return l1optax.prox_adam(learning_rate, l1reg)
        return l1optax.with_l1(
            optax.adam(learning_rate), l1reg, method="decoupled", learning_rate=learning_rate
        )

    # The uniform threshold eta*lam of chain(adam, apply_l1_prox) needs a larger lam than prox_adam's
    # preconditioned one to be felt at all (and to sit above bf16's resolution).
    l1reg = 1e-2 if kind == "prox_adam" else 0.3
    inner = optax.inject_hyperparams(factory)(learning_rate=schedule, l1reg=l1reg)
    return optax.MultiSteps(inner, every_k_schedule=K)


def _run(kind, dtype):
    X, Y, params = _problem(dtype)
    tx = _optimizer(kind)
    state = tx.init(params)
    init_avals = (_avals(params), _avals(state))

    def body(carry, _):
        params, state = carry
        loss, grads = jax.value_and_grad(_loss)(params, X, Y)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        finite = jnp.all(
            jnp.stack(
                [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves((params, state)) if x.size]
            )
        )
        return (params, state), (loss, finite)

    def chunk(carry):
        return jax.lax.scan(body, carry, None, length=CHECK_EVERY)

    chunk = jax.jit(chunk)
    carry = (params, state)
    losses, finite, masks = [], [], []
    for _ in range(MICRO_STEPS // CHECK_EVERY):
        carry, (loss, ok) = chunk(carry)
        losses.append(np.asarray(loss))
        finite.append(np.asarray(ok))
        masks.append(jax.tree.map(lambda p: np.asarray(p) == 0, carry[0]))
    assert chunk._cache_size() == 1
    return carry, init_avals, np.concatenate(losses), np.concatenate(finite), masks


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["with_l1", "prox_adam"])
def test_long_bf16_run_multisteps_inject(kind):
    (params, state), init_avals, losses, finite, masks = _run(kind, jnp.bfloat16)
    (p32, _), _, losses32, finite32, masks32 = _run(kind, jnp.float32)

    # 1. never a NaN/inf, in params, state or loss
    assert finite.all() and np.all(np.isfinite(losses))
    assert finite32.all()
    # 2. dtypes and weak types unchanged after 20,000 steps
    assert (_avals(params), _avals(state)) == init_avals
    assert all(p.dtype == jnp.bfloat16 for p in jax.tree.leaves(params))
    assert int(state.gradient_step) == MICRO_STEPS // K
    # 3. it trained, to within reach of the float32 reference run (bf16 stalls once the steps
    #    fall below its resolution, so it cannot match the f32 loss; this bounds the gap)
    assert losses[-1] < 0.03 * losses[0], (losses[0], losses[-1])
    assert losses32[-1] <= losses[-1] + 1e-3 and losses[-1] < losses32[-1] + 0.05
    # 4. exact zeros, and a stable zero set over the last 2,000 micro-steps (4 checks)
    flat = [np.concatenate([m.ravel() for m in jax.tree.leaves(ms)]) for ms in masks]
    z32 = np.concatenate([m.ravel() for m in jax.tree.leaves(masks32[-1])])
    assert flat[-1].sum() >= 0.5 * z32.sum() > 0, (flat[-1].sum(), z32.sum())
    for earlier in flat[-4:]:
        np.testing.assert_array_equal(earlier, flat[-1])
    # 5. the bf16 zeros are (nearly all) zeros of the float32 run too
    precision = (flat[-1] & z32).sum() / flat[-1].sum()
    assert precision > 0.9, precision
    # 6. most input weights of the 12 irrelevant features are exactly zero
    assert (np.asarray(params["l1"]["w"])[4:] == 0).mean() > 0.5
