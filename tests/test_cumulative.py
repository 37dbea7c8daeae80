"""cumulative_l1 against a float64 NumPy transcription of Tsuruoka, Tsujii & Ananiadou (2009),
plus dtypes, masks, schedules, inject_hyperparams and bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import loop_fit

import l1optax


def _tsuruoka_reference(w0, grads, lr_fn, lam):
    """The paper's Figure 2: u += eta*C/N; apply_penalty(i) for every weight after its update."""
    w = np.array(w0, np.float64)
    q = np.zeros_like(w)
    u = 0.0 * np.asarray(lam, np.float64)
    for t, g in enumerate(grads):
        eta = lr_fn(t)
        w = w - eta * g
        u = u + eta * np.asarray(lam, np.float64)
        z = w.copy()
        pos, neg = w > 0, w < 0
        w = np.where(pos, np.maximum(0.0, w - (u + q)), w)
        w = np.where(neg, np.minimum(0.0, w + (u - q)), w)
        q = q + (w - z)
    return w, q, u


@pytest.mark.parametrize("per_coordinate", [False, True], ids=["scalar", "per_coordinate"])
def test_matches_the_papers_algorithm(per_coordinate, x64, maybe_jit):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(8) * 0.3
    grads = [rng.standard_normal(8) for _ in range(25)]
    lam = np.linspace(0.1, 1.0, 8) if per_coordinate else 0.4

    def lr(count):
        return 0.2 / (1.0 + jnp.asarray(count, jnp.float64) / 5.0)

    tx = optax.chain(optax.sgd(lr), l1optax.cumulative_l1(lr, jnp.asarray(lam)))
    jit = maybe_jit is jax.jit
    params, state = loop_fit(tx, jnp.asarray(w0), [jnp.asarray(g) for g in grads], jit=jit)
    w_ref, q_ref, u_ref = _tsuruoka_reference(w0, grads, lambda t: 0.2 / (1.0 + t / 5.0), lam)
    np.testing.assert_allclose(params, w_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(np.asarray(params) == 0, w_ref == 0)
    cum_state = state[1]
    np.testing.assert_allclose(cum_state.applied, q_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(cum_state.total, u_ref, rtol=1e-12)
    assert int(cum_state.count) == len(grads) and cum_state.count.dtype == jnp.int32
    assert np.sum(w_ref == 0) >= 2


def test_first_step_is_the_soft_threshold():
    params = {"w": jnp.array([1.0, 0.05, -0.5, -0.01])}
    grads = {"w": jnp.array([0.3, 0.1, -0.2, 0.0])}
    a = optax.chain(optax.sgd(0.1), l1optax.cumulative_l1(0.1, 1.0))
    b = optax.chain(optax.sgd(0.1), l1optax.apply_l1_prox(0.1, 1.0))
    ua, _ = a.update(grads, a.init(params), params)
    ub, _ = b.update(grads, b.init(params), params)
    np.testing.assert_array_equal(ua["w"], ub["w"])


def test_a_weight_pushed_out_is_charged_what_it_owes():
    # Step 1: the weight sits at 0 while 0.1 of penalty accrues. Step 2: a gradient pushes it to
    # 0.15; plain prox charges only this step's 0.1 (-> 0.05), the cumulative penalty charges the
    # owed 0.2 (-> 0).
    p = jnp.zeros(1)
    cum = optax.chain(optax.sgd(1.0), l1optax.cumulative_l1(1.0, 0.1))
    prox = optax.chain(optax.sgd(1.0), l1optax.apply_l1_prox(1.0, 0.1))
    sc, sp = cum.init(p), prox.init(p)
    pc = pp = p
    for g in (jnp.zeros(1), jnp.array([-0.15])):
        u, sc = cum.update(g, sc, pc)
        pc = optax.apply_updates(pc, u)
        u, sp = prox.update(g, sp, pp)
        pp = optax.apply_updates(pp, u)
    assert float(pc[0]) == 0.0
    np.testing.assert_allclose(pp, [0.05], rtol=1e-6)


def test_dtypes_exact_zeros_stable_state_and_mask(float_dtype):
    params = {"w": jnp.array([0.01, -0.02, 1.0], float_dtype), "b": jnp.array([0.01], float_dtype)}
    tx = optax.chain(optax.sgd(0.1), l1optax.cumulative_l1(0.1, 0.5, mask={"w": True, "b": False}))
    state = tx.init(params)
    step = jax.jit(tx.update)
    grads = jax.tree.map(jnp.zeros_like, params)
    for _ in range(3):
        u, new_state = step(grads, state, params)
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(new_state), strict=True):
            assert (a.dtype, a.shape) == (b.dtype, b.shape)
        params, state = optax.apply_updates(params, u), new_state
    w = np.asarray(params["w"], np.float64)
    assert w[0] == 0.0 and w[1] == 0.0 and params["w"].dtype == float_dtype
    tol = 1e-2 if jnp.dtype(float_dtype).itemsize == 2 else 1e-6
    np.testing.assert_allclose(w[2], 1.0 - 3 * 0.05, rtol=tol)
    assert float(params["b"][0]) == pytest.approx(0.01, rel=tol)  # masked: untouched
    assert step._cache_size() == 1


def test_schedule_inject_hyperparams_none_and_empty():
    params = {"w": jnp.array([1.0, -0.3, 0.02]), "none": None}
    grads = {"w": jnp.array([0.2, 0.1, -0.05]), "none": None}
    a = l1optax.cumulative_l1(0.1, optax.constant_schedule(0.5))
    b = optax.inject_hyperparams(l1optax.cumulative_l1)(0.1, 0.5)
    sa, sb = a.init(params), b.init(params)
    pa = pb = params
    for _ in range(3):
        ua, sa = a.update(grads, sa, pa)
        ub, sb = jax.jit(b.update)(grads, sb, pb)
        pa, pb = optax.apply_updates(pa, ua), optax.apply_updates(pb, ub)
    np.testing.assert_allclose(pa["w"], pb["w"], rtol=1e-6)
    assert pa["none"] is None
    u, s = a.update({}, a.init({}), {})
    assert u == {}


def test_minibatch_support_settles_where_prox_sgd_keeps_flipping():
    """A short version of benchmarks/sparsity_quality.py (the full numbers are in RESULTS.md)."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "sparsity_quality.py"
    spec = importlib.util.spec_from_file_location("sparsity_quality_for_test", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from sklearn.linear_model import Lasso

    X, y = bench.lasso_data(n=400, p=20)
    lam = 0.05
    w_sk = Lasso(alpha=lam, fit_intercept=False, tol=1e-12, max_iter=100_000).fit(X, y).coef_
    methods = bench.lasso_methods(lam, eta0=0.05, t0=200.0)
    flips = {}
    for name in ("prox SGD (apply_l1_prox)", "cumulative_l1"):
        w, support = bench.run_lasso(methods[name], X, y, epochs=10, batch=16, seed=0)
        tail = support[int(0.9 * len(support)) - 1 :]
        flips[name] = int(np.sum(tail[1:] != tail[:-1]))
        if name == "cumulative_l1":
            np.testing.assert_array_equal(w != 0, w_sk != 0)
    assert flips["cumulative_l1"] == 0
    assert flips["prox SGD (apply_l1_prox)"] > 10


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_input(bad):
    with pytest.raises(ValueError, match=r"`cumulative_l1\(l1reg=...\)` must be non-negative"):
        l1optax.cumulative_l1(0.1, bad)
    with pytest.raises(ValueError, match=r"`cumulative_l1\(learning_rate=...\)`"):
        l1optax.cumulative_l1(bad, 0.1)


def test_bad_trees_and_params():
    with pytest.raises(ValueError, match=r"`cumulative_l1\(learning_rate=...\)` is required"):
        l1optax.cumulative_l1(None, 0.1)
    tx = l1optax.cumulative_l1(0.1, 0.1)
    with pytest.raises(TypeError, match=r"\['i'\] has dtype int32"):
        tx.init({"i": jnp.ones(2, jnp.int32)})
    with pytest.raises(ValueError, match=r"needs the current parameters"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)), None)
    tx = l1optax.cumulative_l1(0.1, {"a": 0.1, "b": 0.2})
    with pytest.raises(
        ValueError, match=r"`cumulative_l1\(l1reg=...\)` must be a scalar or a pytree"
    ):
        tx.init({"w": jnp.ones(2)})
    tx = l1optax.cumulative_l1(0.1, 0.1, mask={"x": True})
    with pytest.raises(ValueError, match=r"`cumulative_l1\(mask=...\)` does not match"):
        tx.init({"w": jnp.ones(2)})
    z = jax.jit(
        lambda lam: l1optax.cumulative_l1(0.1, lam).update(
            jnp.zeros(2), l1optax.cumulative_l1(0.1, 0.1).init(jnp.ones(2)), jnp.ones(2)
        )[0]
    )(-1.0)
    assert np.all(np.isnan(z))  # a traced negative strength poisons instead of expanding
