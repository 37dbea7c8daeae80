"""Flax Linen: TrainState.apply_gradients with every L1 transform, under jax.jit."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training import train_state

import l1optax

N_IN, N_HIDDEN, N_OUT, N_INFORMATIVE = 20, 16, 3, 4


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Dense(N_HIDDEN)(x)
        x = nn.LayerNorm()(x)
        return nn.Dense(N_OUT)(nn.relu(x))


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, N_IN)).astype(np.float32)
    w = np.zeros((N_IN, N_OUT), np.float32)
    w[:N_INFORMATIVE] = rng.normal(size=(N_INFORMATIVE, N_OUT))
    return jnp.asarray(x), jnp.asarray(np.argmax(x @ w, axis=1))


def _state(tx, seed=0):
    model = MLP()
    x, _ = _data()
    params = model.init(jax.random.key(seed), x[:1])["params"]
    return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def _loss(params, apply_fn, x, y):
    logits = apply_fn({"params": params}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@jax.jit
def train_step(state, x, y):
    loss, grads = jax.value_and_grad(_loss)(state.params, state.apply_fn, x, y)
    return state.apply_gradients(grads=grads), loss


def _transforms():
    lr, mask = 1e-2, l1optax.keras_kernel_mask
    out = {
        "sgd+apply_l1_prox": (
            optax.chain(optax.sgd(0.3), l1optax.apply_l1_prox(0.3, 1e-2, mask=mask)),
            True,
        ),
        "inject(adam)+with_l1(proximal)": (
            l1optax.with_l1(
                optax.inject_hyperparams(optax.adam)(learning_rate=lr), 3e-2, mask=mask
            ),
            True,
        ),
        "adam+with_l1(subgradient)": (
            l1optax.with_l1(optax.adam(lr), 3e-2, method="subgradient", mask=mask),
            False,
        ),
        "prox_adam": (l1optax.prox_adam(lr, 3e-2, mask=mask), True),
    }
    return out


TRANSFORMS = _transforms()


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_linen_training_reduces_loss_and_zeros(name):
    tx, exact_zeros = TRANSFORMS[name]
    x, y = _data()
    state = _state(tx)
    first = float(_loss(state.params, state.apply_fn, x, y))
    for _ in range(150):
        state, _ = train_step(state, x, y)
    last = float(_loss(state.params, state.apply_fn, x, y))
    assert last < 0.6 * first, (first, last)
    hidden = np.asarray(state.params["Dense_0"]["kernel"])
    out = np.asarray(state.params["Dense_1"]["kernel"])
    if exact_zeros:
        assert (hidden == 0).mean() > 0.2, (hidden == 0).mean()
        assert np.abs(hidden[:N_INFORMATIVE]).mean() > np.abs(hidden[N_INFORMATIVE:]).mean()
    else:
        assert (hidden == 0).sum() + (out == 0).sum() == 0
    # Biases and norm parameters are outside the Keras mask: never thresholded to 0.
    assert np.all(np.asarray(state.params["LayerNorm_0"]["scale"]) != 0)
    assert np.count_nonzero(np.asarray(state.params["Dense_1"]["bias"])) == N_OUT
    assert int(state.step) == 150


def test_linen_sgd_prox_step_equals_numpy_soft_threshold():
    x, y = _data()
    eta, lam = 0.5, 0.05
    tx = l1optax.with_l1(optax.sgd(eta), lam, learning_rate=eta, mask=l1optax.keras_kernel_mask)
    state = _state(tx, seed=1)
    grads = jax.grad(_loss)(state.params, state.apply_fn, x, y)
    new = jax.jit(lambda s, g: s.apply_gradients(grads=g))(state, grads)
    n_zero = 0
    for (path, p), g, q in zip(
        jax.tree_util.tree_leaves_with_path(state.params),
        jax.tree.leaves(grads),
        jax.tree.leaves(new.params),
        strict=True,
    ):
        z = np.asarray(p, np.float64) - eta * np.asarray(g, np.float64)
        if path[-1].key == "kernel":
            ref = np.sign(z) * np.maximum(np.abs(z) - eta * lam, 0)
            n_zero += int((ref == 0).sum())
            assert np.array_equal(np.asarray(q) == 0, ref == 0)
        else:
            ref = z
        np.testing.assert_allclose(np.asarray(q), ref, rtol=1e-5, atol=1e-6)
    assert n_zero > 0


def test_linen_penalty_on_params_equals_numpy():
    state = _state(optax.sgd(0.1), seed=2)
    flat = {
        jax.tree_util.keystr(k): np.asarray(v, np.float64)
        for k, v in jax.tree_util.tree_leaves_with_path(state.params)
    }
    ref = 0.01 * sum(np.abs(a).sum() for k, a in flat.items() if k.endswith("['kernel']"))
    got = l1optax.l1_penalty(state.params, 0.01, mask=l1optax.keras_kernel_mask)
    np.testing.assert_allclose(float(got), ref, rtol=1e-6)


def test_linen_group_lasso_removes_whole_units():
    """Group L1 over output neurons (axis=-1 on a Dense kernel) zeroes whole columns."""
    x, y = _data()
    eta = 0.3
    lam = l1optax.per_layer_l1reg(_state(optax.sgd(eta)).params, {"Dense_0/kernel": 2e-2})
    tx = optax.chain(optax.sgd(eta), l1optax.apply_group_l1_prox(eta, lam, axis=-1))
    state = _state(tx)
    first = float(_loss(state.params, state.apply_fn, x, y))
    for _ in range(150):
        state, _ = train_step(state, x, y)
    assert float(_loss(state.params, state.apply_fn, x, y)) < 0.6 * first
    hidden = np.asarray(state.params["Dense_0"]["kernel"])
    dead = np.all(hidden == 0, axis=0)
    assert 0 < dead.sum() < N_HIDDEN, dead.sum()
    # Zeros come in whole columns: a column is all zero or has no zero at all.
    assert np.all((hidden == 0).any(axis=0) == dead)
    assert np.all(np.asarray(state.params["Dense_1"]["kernel"]) != 0)
