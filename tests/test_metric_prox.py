"""The prox in the optimizer's own metric: prox_in_metric, with_l1, and the group prox under a
per-coordinate (diagonal) metric."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import assert_trees_bitwise_equal, least_squares, loop_fit, scan_fit
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Lasso

import l1optax

STEPS = 3000


@functools.lru_cache(maxsize=1)
def _diabetes():
    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    y = y - y.mean()
    alpha = 0.05 * np.max(np.abs(X.T @ y)) / X.shape[0]
    ref = Lasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=100_000).fit(X, y).coef_
    return X, y, alpha, ref


def _fit(tx, steps=STEPS):
    X, y, _, _ = _diabetes()
    grad = jax.grad(least_squares(X, y))
    return np.asarray(scan_fit(tx, jnp.zeros(X.shape[1]), grad, steps)[0])


def _assert_is_the_lasso(w):
    _, _, _, ref = _diabetes()
    assert np.max(np.abs(w - ref)) / np.max(np.abs(ref)) < 1e-6
    np.testing.assert_array_equal(w != 0, ref != 0)
    assert np.sum(ref == 0) >= 2


COSINE = optax.cosine_decay_schedule(1.0, STEPS, alpha=0.01)
INJECTED = {
    "adam": lambda: optax.inject_hyperparams(optax.adam)(learning_rate=COSINE),
    "adamw": lambda: optax.inject_hyperparams(optax.adamw)(learning_rate=COSINE, weight_decay=0.0),
    "nadam": lambda: optax.inject_hyperparams(optax.nadam)(learning_rate=COSINE),
    "amsgrad": lambda: optax.inject_hyperparams(optax.amsgrad)(learning_rate=1.0),
    "adabelief": lambda: optax.inject_hyperparams(optax.adabelief)(learning_rate=COSINE),
    "adagrad": lambda: optax.inject_hyperparams(optax.adagrad)(learning_rate=10.0),
    "sgd": lambda: optax.inject_hyperparams(optax.sgd)(learning_rate=0.3),
    "clip+adam": lambda: optax.chain(
        optax.clip_by_global_norm(1e6), optax.inject_hyperparams(optax.adam)(learning_rate=COSINE)
    ),
}


@pytest.mark.parametrize("name", list(INJECTED))
def test_with_l1_reads_the_metric_and_learning_rate_from_an_injected_state(name, x64):
    _, _, alpha, _ = _diabetes()
    _assert_is_the_lasso(_fit(l1optax.with_l1(INJECTED[name](), alpha)))


def test_with_l1_plain_sgd_takes_the_learning_rate_once(x64):
    _, _, alpha, _ = _diabetes()
    _assert_is_the_lasso(_fit(l1optax.with_l1(optax.sgd(0.3), alpha, learning_rate=0.3)))


def test_decoupled_is_the_uniform_threshold_and_a_different_objective(x64):
    _, _, alpha, ref = _diabetes()
    lr = 0.01
    decoupled = _fit(l1optax.with_l1(optax.adam(lr), alpha, method="decoupled", learning_rate=lr))
    chained = _fit(optax.chain(optax.adam(lr), l1optax.apply_l1_prox(lr, alpha)))
    np.testing.assert_array_equal(decoupled, chained)
    assert np.max(np.abs(decoupled - ref)) > 1.0  # a d-weighted lasso, not the lasso


@pytest.mark.parametrize(
    "optimizer, pointer",
    [
        (lambda: optax.adam(1e-3), "l1optax.prox_adam"),
        (lambda: optax.adamw(1e-3), "l1optax.prox_adam"),
        (lambda: optax.adagrad(1e-3), "l1optax.prox_adagrad"),
        (lambda: optax.sgd(1e-3, momentum=0.9), "l1optax.prox_sgd(momentum=...)"),
        (lambda: optax.rmsprop(1e-3), "l1optax.prox_rmsprop"),
        (lambda: optax.inject_hyperparams(optax.rmsprop)(learning_rate=1e-3), "prox_rmsprop"),
        (lambda: optax.lion(1e-3), "method='decoupled'"),
        (lambda: optax.adafactor(1e-3), "method='decoupled'"),
    ],
)
def test_with_l1_refuses_to_solve_a_different_problem(optimizer, pointer):
    tx = l1optax.with_l1(optimizer(), 0.1, learning_rate=1e-3)
    with pytest.raises(ValueError, match="with_l1") as err:
        tx.init({"w": jnp.ones((3, 4))})
    assert pointer in str(err.value)


def test_with_l1_learning_rate_must_agree_with_the_injected_one():
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    with pytest.raises(ValueError, match=r"is 10.0 but the optimizer was built with"):
        l1optax.with_l1(opt, 1.0, learning_rate=10.0).init(jnp.ones(3))
    l1optax.with_l1(opt, 1.0, learning_rate=0.1).init(jnp.ones(3))  # agreeing is fine


def test_with_l1_needs_a_learning_rate_it_can_read():
    with pytest.raises(ValueError, match="inject_hyperparams"):
        l1optax.with_l1(optax.sgd(0.1), 1.0).init(jnp.ones(3))


def test_with_l1_rejects_an_uncalled_factory_and_unknown_methods():
    with pytest.raises(TypeError, match=r"optax.adam instead of optax.adam\(lr\)"):
        l1optax.with_l1(optax.adam, 0.1)
    with pytest.raises(ValueError, match="'proximal', 'decoupled' or 'subgradient'"):
        l1optax.with_l1(optax.sgd(0.1), 0.1, method="uniform")


def test_with_l1_injected_adam_is_prox_adam_bitwise():
    # Both injected: optax.adam itself differs from inject_hyperparams(optax.adam) by ulps.
    params = {"w": jnp.linspace(-1, 1, 12).reshape(3, 4), "b": jnp.ones(4)}
    a = l1optax.with_l1(optax.inject_hyperparams(optax.adam)(learning_rate=0.05), 0.02)
    b = optax.inject_hyperparams(l1optax.prox_adam)(learning_rate=0.05, l1reg=0.02)

    def grads(p):
        return jax.tree.map(lambda x: jnp.sin(3 * x), p)

    pa, _ = loop_fit(a, params, grads, 5, jit=False)
    pb, _ = loop_fit(b, params, grads, 5, jit=False)
    assert_trees_bitwise_equal(pa, pb)


def test_prox_in_metric_zero_step_size_leaves_a_coordinate_bitwise_unchanged():
    params = jnp.array([0.3, -0.2, 1e-3])

    def steps(state, count):
        return jnp.array([0.0, 1.0, 1.0])

    tx = l1optax.prox_in_metric(optax.sgd(1.0), steps, 10.0)
    updates, state = tx.update(jnp.zeros(3), tx.init(params), params)
    new = optax.apply_updates(params, updates)
    assert new[0] == params[0] and new[1] == 0 and new[2] == 0
    assert isinstance(state, l1optax.ProxInMetricState) and int(state.count) == 1


def test_prox_that_changes_a_leaf_shape_is_an_error():
    def bad_prox(x, hp, s):
        return jax.tree.map(lambda a: jnp.zeros((1, *a.shape)), x)

    tx = optax.chain(optax.sgd(0.1), l1optax.apply_prox(bad_prox, 0.1, 1.0))
    params = {"w": jnp.ones((2, 3))}
    with pytest.raises(ValueError, match=r"shape \(1, 2, 3\) for leaf \['w'\] of shape \(2, 3\)"):
        tx.update({"w": jnp.ones((2, 3))}, tx.init(params), params)


# --------------------------------------------------------------------------------------------
# The group prox in a diagonal metric (a 1-D root-find per group)
# --------------------------------------------------------------------------------------------


def _group_kkt(w, z, s, lam, axis=0):
    """Max violation of the group prox optimality conditions (groups are slices along axis)."""
    w, z, s = (np.moveaxis(np.asarray(a, np.float64), axis, 0) for a in (w, z, s))
    worst = 0.0
    for wg, zg, sg in zip(w, z, s, strict=True):
        if np.all(wg == 0):
            worst = max(worst, np.linalg.norm(zg / sg) - lam)
        else:  # the stationarity residual in parameter units (times s)
            residual = wg - zg + sg * lam * wg / np.linalg.norm(wg)
            worst = max(worst, np.max(np.abs(residual)) / max(1.0, np.max(np.abs(zg))))
    return worst


@pytest.mark.parametrize("seed", range(6))
def test_group_prox_in_a_diagonal_metric_is_optimal(seed, x64):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(8, 5)) * rng.uniform(0.1, 3, size=(8, 1))
    z[:2] *= 1e-4  # two groups that must vanish
    s = rng.uniform(0.01, 3.0, size=(8, 5)) ** 2  # badly conditioned metrics
    lam = float(rng.uniform(0.2, 2.0))
    w = l1optax.prox_group_l1(jnp.asarray(z), lam, jnp.asarray(s), axis=0, weights=1.0)
    assert _group_kkt(w, z, s, lam) < 1e-13
    zero_groups = np.all(np.asarray(w) == 0, axis=1)
    assert zero_groups[:2].all() and not zero_groups.all()


def test_group_prox_uniform_metric_equals_the_closed_form_and_zero_steps_freeze(x64):
    z = jnp.asarray(np.random.default_rng(0).normal(size=(4, 6)))
    closed = l1optax.prox_group_l1(z, 0.8, 0.5, axis=-1)
    metric = l1optax.prox_group_l1(z, 0.8, jnp.full((4, 6), 0.5), axis=-1)
    np.testing.assert_allclose(metric, closed, rtol=1e-14, atol=0)
    s = jnp.full((4, 6), 0.5).at[:, 0].set(0.0)
    frozen = l1optax.prox_group_l1(z, 100.0, s, axis=-1)
    np.testing.assert_array_equal(frozen[:, 0], z[:, 0])  # s = 0: the coordinate cannot move


def test_sparse_group_prox_in_a_diagonal_metric_is_optimal(x64):
    rng = np.random.default_rng(3)
    z = rng.normal(size=(6, 4))
    s = rng.uniform(0.2, 2.0, size=(6, 4))
    l1, lg = 0.3, 0.9
    w = np.asarray(
        l1optax.prox_sparse_group_l1(jnp.asarray(z), (l1, lg), jnp.asarray(s), axis=0, weights=1.0)
    )
    for wg, zg, sg in zip(w, z, s, strict=True):
        if np.all(wg == 0):
            u = np.sign(zg) * np.maximum(np.abs(zg) - sg * l1, 0)
            assert np.linalg.norm(u / sg) <= lg + 1e-12
            continue
        on = wg != 0
        residual = wg - zg + sg * (l1 * np.sign(wg) + lg * wg / np.linalg.norm(wg))
        assert np.max(np.abs(residual[on])) < 1e-13
        assert np.all(np.abs(zg[~on]) <= sg[~on] * l1 + 1e-12)


def test_group_prox_metric_keeps_dtypes_and_exact_zero_groups(float_dtype):
    z = jnp.asarray([[3.0, 0.01], [4.0, -0.01]], float_dtype)
    s = jnp.asarray([[0.5, 0.25], [1.0, 2.0]], jnp.float32)
    w = l1optax.prox_group_l1(z, 1.0, s, axis=-1, weights=1.0)
    assert w.dtype == z.dtype
    assert np.all(np.asarray(w[:, 1], np.float32) == 0) and np.all(np.asarray(w[:, 0]) != 0)


def test_group_prox_metric_rejects_a_scaling_that_would_change_the_shape():
    with pytest.raises(ValueError, match=r"prox_group_l1\(scaling=...\).*\(3, 2, 2\).*\(2, 2\)"):
        l1optax.prox_group_l1(jnp.ones((2, 2)), 1.0, jnp.ones((3, 2, 2)), axis=0)


def test_complex_leaves_are_shrunk_in_modulus_or_rejected_with_the_leaf_named():
    params = {"w": jnp.array([1 + 1j, 0.01 + 0j], jnp.complex64)}
    grads = {"w": jnp.ones(2, jnp.complex64)}
    for tx in (
        l1optax.prox_sgd(0.1, 1.0, momentum=0.9),
        l1optax.prox_adam(0.1, 1.0),
    ):
        updates, _ = tx.update(grads, tx.init(params), params)
        new = optax.apply_updates(params, updates)
        assert new["w"].dtype == jnp.complex64 and new["w"][1] == 0
        assert abs(new["w"][0].imag) > 0  # the imaginary part is kept, not dropped
    group = optax.chain(optax.sgd(0.1), l1optax.apply_group_l1_prox(0.1, 1.0, weights=1.0))
    updates, _ = group.update(grads, group.init(params), params)
    x = params["w"] - 0.1
    np.testing.assert_allclose(
        optax.apply_updates(params, updates)["w"], x * (1 - 0.1 / np.linalg.norm(x)), rtol=1e-6
    )
    with pytest.raises(TypeError, match=r"cumulative_l1.*\['w'\] is complex64"):
        l1optax.cumulative_l1(0.1, 1.0).init(params)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_soft_threshold_zeroes_subnormals_and_keeps_them_at_zero_threshold(dtype):
    tiny = float(jnp.finfo(dtype).smallest_normal) / 4  # subnormal
    x = jnp.array([tiny, -tiny, 0.0, -0.0, 1.0], dtype)
    out = l1optax.soft_threshold(x, 0.5)
    np.testing.assert_array_equal(np.asarray(out, np.float32)[:4], 0.0)
    same = l1optax.soft_threshold(x, 0.0)
    assert_trees_bitwise_equal(same, x)  # the identity, bit for bit, at t = 0
