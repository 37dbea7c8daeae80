"""Orbax checkpoint/resume for every catalogued transform (SPEC item 20).

For each transform (including the ``optax.masked``, ``optax.MultiSteps`` and
``optax.inject_hyperparams`` wrappers): train k = 3 steps, save params + optimizer state with
``orbax.checkpoint.StandardCheckpointer``, restore into an abstract target built by
``jax.eval_shape`` (no concrete state needed), check that every leaf comes back with the same
type, dtype, shape and bits, resume for 3 more steps and compare bitwise with the uninterrupted
6-step run. Restoring onto a different sharding is in ``tests/_sharded_checks.py``.
"""

from __future__ import annotations

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from _catalog import (
    CATALOG,
    make_grads,
    make_params,
    params_for,
    tree_assert_bitwise_equal,
)

import l1optax

K = 3


def _step_fn(tx):
    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


@pytest.fixture(scope="module")
def checkpointer():
    with ocp.StandardCheckpointer() as ckptr:
        yield ckptr


@pytest.mark.parametrize("entry", params_for(CATALOG))
def test_save_restore_resume_is_bitwise_identical(entry, checkpointer, tmp_path):
    tx = entry.build()
    step = _step_fn(tx)

    # uninterrupted run
    params = make_params()
    state = tx.init(params)
    for t in range(2 * K):
        params, state = step(params, state, make_grads(params, t))
    full_params, full_state = params, state

    # interrupted run: K steps, save, throw everything away, restore, K more steps
    params = make_params()
    state = tx.init(params)
    for t in range(K):
        params, state = step(params, state, make_grads(params, t))
    path = tmp_path / "ckpt"
    checkpointer.save(path, {"params": params, "opt_state": state})
    checkpointer.wait_until_finished()
    saved = jax.tree.map(np.asarray, (params, state))
    del params, state

    abstract = jax.eval_shape(
        lambda: (lambda p: {"params": p, "opt_state": tx.init(p)})(make_params())
    )
    restored = checkpointer.restore(path, abstract)
    r_params, r_state = restored["params"], restored["opt_state"]
    assert jax.tree.structure(r_state) == jax.tree.structure(tx.init(make_params()))
    assert type(r_state) is type(tx.init(make_params()))
    tree_assert_bitwise_equal(jax.tree.map(np.asarray, (r_params, r_state)), saved, "restore")

    for t in range(K, 2 * K):
        r_params, r_state = step(r_params, r_state, make_grads(r_params, t))
    tree_assert_bitwise_equal(r_params, full_params, "resumed params")
    tree_assert_bitwise_equal(r_state, full_state, "resumed state")


def test_resumed_prox_run_matches_numpy_ista(checkpointer, tmp_path):
    """Independent oracle: an ISTA lasso run checkpointed halfway equals float64 NumPy ISTA."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 10))
    y = X @ np.r_[1.5, -2.0, np.zeros(8)] + 0.1 * rng.normal(size=40)
    lr, lam = 0.05, 0.1
    tx = l1optax.with_l1(optax.sgd(lr), lam, learning_rate=lr)
    Xj, yj = jax.numpy.asarray(X, "float32"), jax.numpy.asarray(y, "float32")

    @jax.jit
    def step(w, s):
        g = jax.grad(lambda w: 0.5 * jax.numpy.mean((Xj @ w - yj) ** 2))(w)
        u, s = tx.update(g, s, w)
        return optax.apply_updates(w, u), s

    w = jax.numpy.zeros(10)
    s = tx.init(w)
    for _ in range(100):
        w, s = step(w, s)
    checkpointer.save(tmp_path / "ista", {"w": w, "s": s})
    checkpointer.wait_until_finished()
    restored = checkpointer.restore(tmp_path / "ista", jax.eval_shape(lambda: {"w": w, "s": s}))
    w, s = restored["w"], restored["s"]
    for _ in range(100):
        w, s = step(w, s)

    w_ref = np.zeros(10)
    for _ in range(200):
        x = w_ref - lr * (X.T @ (X @ w_ref - y) / len(y))
        w_ref = np.sign(x) * np.maximum(np.abs(x) - lr * lam, 0)
    np.testing.assert_allclose(np.asarray(w), w_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(w) == 0, w_ref == 0)
    assert int(s.count) == 200
