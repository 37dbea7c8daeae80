"""fista against scikit-learn (Lasso, ElasticNet, LogisticRegression) and NumPy certificates."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import ElasticNet, Lasso, LogisticRegression

import l1optax
from l1optax import FistaInfo, fista, lambda_max

# ------------------------------------------------------------------------------------------------
# problems and independent references


def lsq(w, X, y):
    return 0.5 * jnp.mean((X @ w - y) ** 2)


def lsq_tree(params, X, y):
    w = jnp.concatenate([params["a"], params["b"].ravel()])
    return 0.5 * jnp.mean((X @ w - y) ** 2)


def lsq_intercept(params, X, y):
    return 0.5 * jnp.mean((X @ params["w"] + params["b"] - y) ** 2)


def logistic(w, X, y):
    return jnp.mean(jnp.logaddexp(0.0, -y * (X @ w)))


def make_regression(n=60, p=25, k=6, seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    w = np.zeros(p)
    w[rng.choice(p, k, replace=False)] = rng.standard_normal(k) * 2
    y = X @ w + noise * rng.standard_normal(n)
    return X, y


def sk_lasso(X, y, alpha, fit_intercept=False):
    model = Lasso(alpha=alpha, fit_intercept=fit_intercept, tol=1e-12, max_iter=1_000_000)
    return model.fit(X, y)


def np_lasso_gap(X, y, w, alpha):
    """Primal minus dual objective, written from the textbook dual (not from l1optax)."""
    n = X.shape[0]
    r = y - X @ w
    primal = r @ r / (2 * n) + alpha * np.abs(w).sum()
    theta = r / max(n * alpha, np.abs(X.T @ r).max())  # feasible: |X^T theta| <= 1
    dual = (y @ y - (y - n * alpha * theta) @ (y - n * alpha * theta)) / (2 * n)
    return primal - dual, primal


def np_kkt(g, w, lam):
    at_zero = np.maximum(np.abs(g) - lam, 0)
    off_zero = np.abs(g + lam * np.sign(w))
    return np.max(np.where(w == 0, at_zero, off_zero))


def lsq_grad(X, y, w):
    return X.T @ (X @ w - y) / X.shape[0]


# ------------------------------------------------------------------------------------------------
# least squares vs sklearn.linear_model.Lasso (float64)

VARIANTS = {
    "fista+restart": dict(acceleration=True, restart=True),
    "fista": dict(acceleration=True, restart=False),
    "ista": dict(acceleration=False, restart=False),
}


@pytest.mark.parametrize(
    "variant",
    [pytest.param(v, marks=pytest.mark.slow) if v != "fista+restart" else v for v in VARIANTS],
    ids=list(VARIANTS),
)
@pytest.mark.parametrize("fixed_step", [False, True], ids=["backtracking", "fixed_step"])
def test_lasso_matches_sklearn_float64(x64, maybe_jit, variant, fixed_step):
    X, y = make_regression()
    alpha = 0.1 * np.abs(X.T @ y).max() / X.shape[0]
    ref = sk_lasso(X, y, alpha).coef_
    stepsize = X.shape[0] / np.linalg.norm(X, 2) ** 2 if fixed_step else None

    def solve(X, y):
        return fista(
            lsq, jnp.zeros(X.shape[1]), alpha, X, y, tol=1e-10, maxiter=20_000,
            stepsize=stepsize, **VARIANTS[variant],
        )  # fmt: skip

    w, info = maybe_jit(solve)(jnp.asarray(X), jnp.asarray(y))
    w = np.asarray(w)
    assert w.dtype == np.float64
    assert bool(info.converged) and float(info.error) <= 1e-10
    np.testing.assert_allclose(w, ref, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(w != 0, ref != 0)  # identical support, exact zeros
    gap, primal = np_lasso_gap(X, y, w, alpha)
    assert gap / primal <= 1e-8
    assert np_kkt(lsq_grad(X, y, w), w, alpha) <= 1e-8
    if fixed_step:
        np.testing.assert_allclose(float(info.stepsize), stepsize, rtol=1e-15)


def test_lasso_float32_keeps_dtype_and_matches(rng):
    X, y = make_regression(seed=1)
    alpha = 0.2 * np.abs(X.T @ y).max() / X.shape[0]
    ref = sk_lasso(X, y, alpha).coef_
    X32, y32 = jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32)
    w, info = fista(lsq, jnp.zeros(X.shape[1], jnp.float32), alpha, X32, y32, tol=1e-5)
    assert w.dtype == jnp.float32
    assert info.error.dtype == jnp.float32 and info.stepsize.dtype == jnp.float32
    assert info.num_iter.dtype == jnp.int32 and info.converged.dtype == jnp.bool_
    assert bool(info.converged)
    np.testing.assert_allclose(np.asarray(w), ref, atol=1e-4 * np.abs(ref).max())
    np.testing.assert_array_equal(np.asarray(w) != 0, ref != 0)
    np.testing.assert_allclose(float(info.loss), lsq(np.asarray(w), X, y), rtol=1e-5)


def test_info_fields_and_maxiter(x64):
    X, y = make_regression(seed=2)
    alpha = 0.05 * np.abs(X.T @ y).max() / X.shape[0]
    w, info = fista(lsq, jnp.zeros(X.shape[1]), alpha, X, y, maxiter=3, tol=1e-12)
    assert isinstance(info, FistaInfo)
    assert int(info.num_iter) == 3 and not bool(info.converged)
    assert float(info.error) > 1e-12
    w, info = fista(lsq, jnp.zeros(X.shape[1]), alpha, X, y, maxiter=10_000, tol=1e-9)
    assert bool(info.converged) and 3 < int(info.num_iter) < 10_000
    np.testing.assert_allclose(float(info.loss), float(lsq(w, X, y)), rtol=1e-14)
    assert int(info.num_restarts) >= 0


def test_above_lambda_max_returns_exact_zeros_at_once(x64):
    X, y = make_regression(seed=3)
    lam = float(lambda_max(lsq, jnp.zeros(X.shape[1]), X, y))
    w, info = fista(lsq, jnp.zeros(X.shape[1]), 1.01 * lam, X, y)
    assert np.all(np.asarray(w) == 0.0)
    assert int(info.num_iter) == 1 and float(info.error) == 0.0


@pytest.mark.slow
def test_restart_needs_no_more_iterations_than_plain_fista(x64):
    # ill-conditioned: correlated columns; restart (O'Donoghue & Candes) removes the ripples
    rng = np.random.default_rng(4)
    base = rng.standard_normal((80, 5))
    X = np.repeat(base, 6, axis=1) + 0.05 * rng.standard_normal((80, 30))
    y = X[:, :4] @ np.array([1.0, -2.0, 0.5, 1.5]) + 0.01 * rng.standard_normal(80)
    alpha = 0.01 * np.abs(X.T @ y).max() / 80
    kw = dict(tol=1e-9, maxiter=50_000)
    w_r, info_r = fista(lsq, jnp.zeros(30), alpha, X, y, restart=True, **kw)
    w_p, info_p = fista(lsq, jnp.zeros(30), alpha, X, y, restart=False, **kw)
    assert bool(info_r.converged) and bool(info_p.converged)
    assert int(info_r.num_restarts) > 0 and int(info_p.num_restarts) == 0
    assert int(info_r.num_iter) < int(info_p.num_iter)
    ref = sk_lasso(X, y, alpha).coef_
    np.testing.assert_allclose(np.asarray(w_r), ref, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# pytrees, masks, weights, other proxes


def test_pytree_params_match_flat_solution(x64):
    X, y = make_regression(seed=5, p=25)
    alpha = 0.1 * np.abs(X.T @ y).max() / X.shape[0]
    ref = sk_lasso(X, y, alpha).coef_
    init = {"a": jnp.zeros(10), "b": jnp.zeros((3, 5))}
    params, info = fista(lsq_tree, init, alpha, X, y, tol=1e-10, maxiter=20_000)
    assert jax.tree.structure(params) == jax.tree.structure(init)
    assert params["b"].shape == (3, 5)
    w = np.concatenate([np.asarray(params["a"]), np.asarray(params["b"]).ravel()])
    np.testing.assert_allclose(w, ref, atol=1e-6)
    np.testing.assert_array_equal(w != 0, ref != 0)


@pytest.mark.parametrize("mask_kind", ["tree", "callable"])
def test_mask_leaves_intercept_unpenalized(x64, mask_kind):
    X, y = make_regression(seed=6)
    X = X + 3.0  # non-centred columns: the intercept matters
    y = y + 5.0
    alpha = 0.05 * np.abs((X - X.mean(0)).T @ (y - y.mean())).max() / X.shape[0]
    ref = sk_lasso(X, y, alpha, fit_intercept=True)
    mask = {"b": False, "w": True} if mask_kind == "tree" else (lambda p: {"b": False, "w": True})
    init = {"w": jnp.zeros(X.shape[1]), "b": jnp.zeros(())}
    params, info = fista(lsq_intercept, init, alpha, X, y, mask=mask, tol=1e-10, maxiter=50_000)
    assert bool(info.converged)
    np.testing.assert_allclose(np.asarray(params["w"]), ref.coef_, atol=1e-6)
    np.testing.assert_allclose(float(params["b"]), ref.intercept_, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(params["w"]) != 0, ref.coef_ != 0)


def test_per_coordinate_weights_match_rescaled_sklearn(x64):
    # lam * sum_j c_j |w_j| is the lasso on columns X_j / c_j with v_j = c_j w_j
    X, y = make_regression(seed=7, p=12)
    c = np.random.default_rng(7).uniform(0.5, 2.0, size=12)
    alpha = 0.1 * np.abs(X.T @ y).max() / X.shape[0]
    ref = sk_lasso(X / c, y, alpha).coef_ / c
    w, info = fista(lsq, jnp.zeros(12), alpha * c, X, y, tol=1e-10, maxiter=20_000)
    np.testing.assert_allclose(np.asarray(w), ref, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(w) != 0, ref != 0)
    # and lambda_max with the same weights is the exact threshold for the all-zero solution
    lam = float(lambda_max(lsq, jnp.zeros(12), X, y, weights=c))
    np.testing.assert_allclose(lam, np.max(np.abs(X.T @ y) / X.shape[0] / c), rtol=1e-14)


def test_elastic_net_prox_matches_sklearn(x64):
    X, y = make_regression(seed=8)
    alpha, ratio = 0.1 * np.abs(X.T @ y).max() / X.shape[0], 0.7
    ref = ElasticNet(alpha=alpha, l1_ratio=ratio, fit_intercept=False, tol=1e-12, max_iter=10**6)
    ref = ref.fit(X, y).coef_
    hyper = (alpha * ratio, alpha * (1 - ratio))
    w, info = fista(
        lsq, jnp.zeros(X.shape[1]), hyper, X, y, prox=l1optax.prox_elastic_net, tol=1e-10,
        maxiter=20_000,
    )  # fmt: skip
    assert bool(info.converged)
    np.testing.assert_allclose(np.asarray(w), ref, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(w) != 0, ref != 0)


def test_group_lasso_prox_satisfies_group_kkt(x64):
    X, y = make_regression(seed=9, p=24, k=4)
    groups = 6
    group_grad_norms = np.linalg.norm((X.T @ y / X.shape[0]).reshape(groups, 4), axis=1)
    lam = 0.5 * group_grad_norms.max()  # group lambda_max is the largest group gradient norm

    def loss(W, X, y):  # W: (groups, 4), each row a group
        return lsq(W.ravel(), X, y)

    def prox(x, l1reg, scaling):
        return l1optax.prox_group_l1(x, l1reg, scaling, axis=0, weights=1.0)  # one group per row

    W, info = fista(loss, jnp.zeros((groups, 4)), lam, X, y, prox=prox, tol=1e-11, maxiter=50_000)
    assert bool(info.converged)
    W = np.asarray(W)
    G = lsq_grad(X, y, W.ravel()).reshape(groups, 4)
    norms = np.linalg.norm(W, axis=1)
    assert np.any(norms == 0) and np.any(norms > 0)  # a genuinely group-sparse solution
    for g, w, nw in zip(G, W, norms, strict=True):
        if nw == 0:
            assert np.all(w == 0.0) and np.linalg.norm(g) <= lam * (1 + 1e-8)
        else:  # g + lam * w / |w| = 0
            np.testing.assert_allclose(g + lam * w / nw, 0.0, atol=1e-8)


# ------------------------------------------------------------------------------------------------
# logistic regression vs sklearn.linear_model.LogisticRegression


@pytest.mark.parametrize("solver", ["liblinear", pytest.param("saga", marks=pytest.mark.slow)])
def test_logistic_matches_sklearn(x64, solver):
    rng = np.random.default_rng(10)
    n, p = 120, 15
    X = rng.standard_normal((n, p))
    w_true = np.zeros(p)
    w_true[:4] = [2.0, -1.5, 1.0, 0.8]
    y = np.where(X @ w_true + 0.5 * rng.standard_normal(n) > 0, 1.0, -1.0)
    C = 0.5
    alpha = 1.0 / (C * n)  # C * sum logloss + |w|_1  ==  n*C * (mean logloss + alpha |w|_1)
    model = LogisticRegression(
        C=C, l1_ratio=1.0, solver=solver, fit_intercept=False, tol=1e-12, max_iter=200_000,
        random_state=0,
    ).fit(X, y)  # fmt: skip
    ref = model.coef_.ravel()
    w, info = fista(logistic, jnp.zeros(p), alpha, X, y, tol=1e-10, maxiter=20_000)
    w = np.asarray(w)
    assert bool(info.converged)
    np.testing.assert_allclose(w, ref, atol=1e-5)
    np.testing.assert_array_equal(w != 0, np.abs(ref) > 1e-8)
    # independent certificate: KKT of the logistic lasso from the NumPy gradient
    s = 1 / (1 + np.exp(y * (X @ w)))
    grad = -(X.T @ (y * s)) / n
    assert np_kkt(grad, w, alpha) <= 1e-8


# ------------------------------------------------------------------------------------------------
# vmap over l1reg, jit


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_vmap_over_l1reg_matches_independent_problems(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        X, y = make_regression(seed=11)
        lmax = np.abs(X.T @ y).max() / X.shape[0]
        lams = lmax * np.array([1.2, 0.5, 0.1, 0.02])
        Xd, yd = jnp.asarray(X, dtype), jnp.asarray(y, dtype)
        tol = 1e-10 if dtype == jnp.float64 else 1e-5

        @jax.jit
        def batch(lams):
            return jax.vmap(
                lambda lam: fista(lsq, jnp.zeros(X.shape[1], dtype), lam, Xd, yd, tol=tol,
                                  maxiter=20_000)
            )(lams)  # fmt: skip

        W, info = batch(jnp.asarray(lams, dtype))
        assert W.shape == (4, X.shape[1]) and W.dtype == dtype
        assert info.num_iter.shape == (4,) and bool(jnp.all(info.converged))
        assert np.all(np.asarray(W[0]) == 0)  # above lambda_max
        atol = 1e-6 if dtype == jnp.float64 else 2e-4
        for k, lam in enumerate(lams):
            ref = sk_lasso(X, y, lam).coef_
            np.testing.assert_allclose(np.asarray(W[k], np.float64), ref, atol=atol)
            single, _ = fista(lsq, jnp.zeros(X.shape[1], dtype), lam, Xd, yd, tol=tol,
                              maxiter=20_000)  # fmt: skip
            np.testing.assert_allclose(np.asarray(W[k]), np.asarray(single), atol=10 * atol)


@settings(max_examples=12)
@given(seed=st.integers(0, 10_000), frac=st.floats(0.02, 0.9))
def test_property_solution_is_certified_optimal(seed, frac):
    with jax.enable_x64(True):
        X, y = make_regression(n=30, p=12, k=3, seed=seed)
        alpha = frac * np.abs(X.T @ y).max() / 30
        w, info = fista(lsq, jnp.zeros(12), alpha, X, y, tol=1e-11, maxiter=50_000)
        w = np.asarray(w)
        assert bool(info.converged)
        gap, primal = np_lasso_gap(X, y, w, alpha)
        assert -1e-12 <= gap <= 1e-9 * max(primal, 1e-12)
        assert np_kkt(lsq_grad(X, y, w), w, alpha) <= 1e-9
        np.testing.assert_allclose(float(l1optax.lasso_duality_gap(X, y, w, alpha)), gap,
                                   atol=1e-13)  # fmt: skip


# ------------------------------------------------------------------------------------------------
# bad input


def _data():
    X, y = make_regression(n=20, p=5, k=2, seed=12)
    return jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(l1reg=-0.1), ValueError, r"fista\(l1reg=\.\.\.\).*-0\.1"),
        (dict(l1reg=float("nan")), ValueError, r"fista\(l1reg=\.\.\.\).*nan"),
        (dict(l1reg=float("inf")), ValueError, r"fista\(l1reg=\.\.\.\).*inf"),
        (dict(l1reg=jnp.ones(3)), ValueError, r"fista.*l1reg"),
        (dict(stepsize=0.0), ValueError, r"fista\(stepsize=\.\.\.\).*positive"),
        (dict(stepsize=-1.0), ValueError, r"fista\(stepsize=\.\.\.\)"),
        (dict(maxiter=0), ValueError, r"fista\(maxiter=\.\.\.\).*0"),
        (dict(maxiter=2.5), ValueError, r"fista\(maxiter=\.\.\.\)"),
        (dict(tol=-1e-3), ValueError, r"fista\(tol=\.\.\.\)"),
        (dict(acceleration="yes"), TypeError, r"fista\(acceleration=\.\.\.\)"),
        (dict(init=jnp.zeros(4)), ValueError, r"fista.*shapes"),
        (dict(init=jnp.zeros(5, jnp.int32)), TypeError, r"fista.*<root>.*int32"),
        (dict(init={}), ValueError, r"fista\(init_params=\.\.\.\)"),
        (dict(y_nan=True), ValueError, r"fista.*loss at init_params is nan"),
        (dict(loss="vector"), ValueError, r"fista\(loss_fn=\.\.\.\).*scalar"),
        (dict(mask={"nope": True}), ValueError, r"fista\(mask=\.\.\.\)"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, exc, match):
    X, y = _data()
    init = kwargs.pop("init", jnp.zeros(5))
    l1reg = kwargs.pop("l1reg", 0.1)
    if kwargs.pop("y_nan", False):
        y = y.at[0].set(jnp.nan)
    loss = lsq
    if kwargs.pop("loss", None) == "vector":
        loss = lambda w, X, y: (X @ w - y) ** 2  # noqa: E731
    with pytest.raises(exc, match=match):
        fista(loss, init, l1reg, X, y, **kwargs)


def test_traced_nan_data_does_not_raise_but_reports_no_convergence():
    X, y = _data()
    y = y.at[0].set(jnp.nan)
    w, info = jax.jit(lambda X, y: fista(lsq, jnp.zeros(5), 0.1, X, y))(X, y)
    assert not bool(info.converged) and np.isnan(float(info.error))


def test_traced_negative_l1reg_poisons_instead_of_expanding():
    X, y = _data()
    w, info = jax.jit(lambda lam: fista(lsq, jnp.zeros(5), lam, X, y, maxiter=5))(-0.1)
    assert not bool(info.converged) and np.all(np.isnan(np.asarray(w)))


def test_bfloat16_params_keep_their_dtype():
    # the loop carries bfloat16 iterates (prox computed in float32, cast back); the answer is the
    # lasso solution rounded to bfloat16 resolution, with the same support
    rng = np.random.default_rng(13)
    X = rng.standard_normal((50, 8))
    y = X[:, :2] @ np.array([1.0, -2.0]) + 0.05 * rng.standard_normal(50)
    ref = sk_lasso(X, y, 0.1).coef_

    def loss(w, X, y):
        return 0.5 * jnp.mean((X @ w.astype(jnp.float32) - y) ** 2)

    X32, y32 = jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32)
    w, info = fista(loss, jnp.zeros(8, jnp.bfloat16), 0.1, X32, y32, tol=1e-2)
    assert w.dtype == jnp.bfloat16 and bool(info.converged)
    np.testing.assert_allclose(np.asarray(w, np.float64), ref, atol=2e-2 * np.abs(ref).max())
    np.testing.assert_array_equal(np.asarray(w) != 0, ref != 0)


# ------------------------------------------------------------------------------------------------
# issue 11: no stale programs, a step that grows back, a clean stop at the rounding floor


def test_loss_closing_over_changed_globals_is_never_stale(x64):
    # a loss reading module-level data: the second call must solve the second problem (it used to
    # reuse the first compiled program, returning the first data's answer with converged=True)
    X1, y1 = make_regression(seed=21)
    X2, y2 = make_regression(seed=22)
    data = {"X": jnp.asarray(X1), "y": jnp.asarray(y1)}

    def loss(w):
        return 0.5 * jnp.mean((data["X"] @ w - data["y"]) ** 2)

    alpha = 0.05
    w1, _ = fista(loss, jnp.zeros(X1.shape[1]), alpha, tol=1e-10, maxiter=20_000)
    data.update(X=jnp.asarray(X2), y=jnp.asarray(y2))
    w2, info2 = fista(loss, jnp.zeros(X2.shape[1]), alpha, tol=1e-10, maxiter=20_000)
    np.testing.assert_allclose(np.asarray(w1), sk_lasso(X1, y1, alpha).coef_, atol=1e-6)
    np.testing.assert_allclose(np.asarray(w2), sk_lasso(X2, y2, alpha).coef_, atol=1e-6)
    np.testing.assert_allclose(float(info2.loss), lsq(np.asarray(w2), X2, y2), rtol=1e-12)
    # a NumPy global mutated in place is seen too
    Xn = np.array(X1)

    def loss_np(w):
        return 0.5 * jnp.mean((Xn @ w - y1) ** 2)

    fista(loss_np, jnp.zeros(X1.shape[1]), alpha, tol=1e-10, maxiter=20_000)
    Xn *= 2.0
    w3, _ = fista(loss_np, jnp.zeros(X1.shape[1]), alpha, tol=1e-10, maxiter=20_000)
    np.testing.assert_allclose(np.asarray(w3), sk_lasso(2 * X1, y1, alpha).coef_, atol=1e-6)


def test_loss_closing_over_a_python_scalar_is_never_stale(x64):
    X, y = make_regression(seed=23)
    scale = [1.0]

    def loss(w, X, y):
        return 0.5 * scale[0] * jnp.mean((X @ w - y) ** 2)

    w1, _ = fista(loss, jnp.zeros(X.shape[1]), 0.05, X, y, tol=1e-10, maxiter=20_000)
    scale[0] = 2.0  # f doubles: the same solution as lam / 2 with the original loss
    w2, _ = fista(loss, jnp.zeros(X.shape[1]), 0.05, X, y, tol=1e-10, maxiter=20_000)
    np.testing.assert_allclose(np.asarray(w2), sk_lasso(X, y, 0.025).coef_, atol=1e-6)
    assert not np.allclose(np.asarray(w1), np.asarray(w2))


def _dominant_direction_problem():
    # the gradient at 0 lies almost along the top eigenvector, so the secant estimate of 1/L is a
    # little above 1/L: the first step backtracks (it used to be halved and kept for good)
    rng = np.random.default_rng(5)
    n, p = 80, 20
    U, _ = np.linalg.qr(rng.standard_normal((n, p)))
    V, _ = np.linalg.qr(rng.standard_normal((p, p)))
    sv = np.linspace(1.0, 3.0, p)
    X = (U * sv) @ V.T * np.sqrt(n)
    y = U[:, -1] * 5 + 0.3 * U[:, 0] + 0.01 * rng.standard_normal(n)
    lipschitz = np.linalg.eigvalsh(X.T @ X / n).max()
    return X, y, lipschitz


def test_backtracking_step_grows_back_after_an_early_cut(x64):
    X, y, lipschitz = _dominant_direction_problem()
    alpha = 0.01 * np.abs(X.T @ y).max() / X.shape[0]
    kw = dict(tol=1e-9, maxiter=20_000)
    w, info = fista(lsq, jnp.zeros(X.shape[1]), alpha, X, y, **kw)
    w_fix, info_fix = fista(lsq, jnp.zeros(X.shape[1]), alpha, X, y, stepsize=1 / lipschitz, **kw)
    assert bool(info.converged)
    assert float(info.stepsize) * lipschitz >= 0.7  # not stuck at half of 1/L
    assert int(info.num_iter) <= 1.25 * int(info_fix.num_iter) + 3
    np.testing.assert_allclose(np.asarray(w), sk_lasso(X, y, alpha).coef_, atol=1e-7)


def _weighted_ols(seed=1, scale=1e3):
    rng = np.random.default_rng(seed)
    n, p = 200, 50
    X = rng.standard_normal((n, p)) * scale
    y = X @ rng.standard_normal(p) + rng.standard_normal(n)
    c = rng.uniform(0.01, 100, n)
    A = (X.T * c) @ X / n
    wstar = np.linalg.solve(A, (X.T * c) @ y / n)
    return X, y, c, np.linalg.eigvalsh(A).max(), wstar


def _wls(w, X, y, c):
    return 0.5 * jnp.mean(c * (X @ w - y) ** 2)


def test_tol_below_the_rounding_floor_stops_cleanly(x64):
    # tol=0 cannot be met in float64: the solver must stop at the floor with the answer, not
    # halve the step on rounding noise until it collapses (it used to end at ~0.01/L and run to
    # maxiter while the loss drifted up)
    X, y, c, lipschitz, wstar = _weighted_ols()
    fstar = float(_wls(wstar, X, y, c))
    w, info = fista(_wls, jnp.zeros(X.shape[1]), 0.0, X, y, c, tol=0.0, maxiter=5000)
    assert int(info.num_iter) < 5000 and not bool(info.converged)
    assert float(info.stepsize) * lipschitz >= 0.2
    assert float(info.loss) - fstar <= 1e-12 * fstar  # at the rounding of f itself
    np.testing.assert_allclose(np.asarray(w), wstar, rtol=1e-8, atol=1e-10)


def test_sklearn_and_jaxopt_option_spellings_are_named():
    X, y = _data()
    for wrong, right in (
        ("max_iter", "maxiter"),
        ("maxiters", "maxiter"),
        ("step_size", "stepsize"),
    ):
        with pytest.raises(TypeError, match=rf"fista\({wrong}=\.\.\.\).*{right}"):
            fista(lsq, jnp.zeros(5), 0.1, X, y, **{wrong: 10})

    def loss_with_kw(w, X, y, max_iter=3):  # a loss that really takes it is still served
        return lsq(w, X, y) * max_iter / max_iter

    w, info = fista(loss_with_kw, jnp.zeros(5), 0.1, X, y, max_iter=10)
    assert bool(info.converged)
    with pytest.raises(ValueError, match=r"fista.*unexpected keyword.*nope"):
        fista(lsq, jnp.zeros(5), 0.1, X, y, nope=1)


def test_backtracking_step_grows_where_the_curvature_drops(x64):
    # logistic loss: the curvature is largest at w = 0, where the first step is estimated; near
    # the solution a step several times larger is safe (it used to stay at the first estimate)
    rng = np.random.default_rng(3)
    n, p = 200, 10
    X = rng.standard_normal((n, p))
    w_true = np.zeros(p)
    w_true[:3] = [4.0, -3.0, 2.0]
    y = np.where(X @ w_true + 0.3 * rng.standard_normal(n) > 0, 1.0, -1.0)
    lipschitz = np.linalg.norm(X, 2) ** 2 / (4 * n)
    kw = dict(tol=1e-9, maxiter=20_000)
    w, info = fista(logistic, jnp.zeros(p), 0.005, X, y, **kw)
    w_fix, info_fix = fista(logistic, jnp.zeros(p), 0.005, X, y, stepsize=1 / lipschitz, **kw)
    assert bool(info.converged) and bool(info_fix.converged)
    assert float(info.stepsize) * lipschitz >= 3.0
    assert int(info.num_iter) <= 0.75 * int(info_fix.num_iter)
    np.testing.assert_allclose(np.asarray(w), np.asarray(w_fix), atol=1e-7)
    np.testing.assert_array_equal(np.asarray(w) != 0, np.asarray(w_fix) != 0)


# ------------------------------------------------------------------------------------------------
# implicit differentiation of fista's solution


def _central(f, h=1e-6):
    return (float(f(h)) - float(f(-h))) / (2 * h)


def _fista_hypergradient_cases():
    """name -> value(t), a scalar function of t through a fista solution, for each of
    FISTA_GRADIENT_CASES; the data of every case come from one regression problem."""
    X, y = make_regression(seed=21)
    p = X.shape[1]
    Xv, yv = make_regression(n=20, seed=21)  # the same coefficients, other rows
    opts = dict(tol=1e-13, maxiter=100_000)

    def lsq(w, X, y):
        return 0.5 * jnp.mean((X @ w - y) ** 2)

    def held_out(w):
        return jnp.mean((Xv @ w - yv) ** 2)

    lam = 0.1 * float(lambda_max(lsq, jnp.zeros(p), X, y))
    w = np.asarray(fista(lsq, jnp.zeros(p), lam, X, y, **opts)[0])
    j = int(np.flatnonzero(w)[0])  # a column in the support
    E = np.zeros_like(X)
    E[3, j] = 1.0
    yc = jnp.asarray(y)

    def closure(t):  # data read from a closure, not passed
        return fista(
            lambda w: 0.5 * jnp.mean((X @ w - (1 + t) * yc) ** 2), jnp.zeros(p), lam, **opts
        )

    def masked(t):  # a pytree with an unpenalized intercept leaf, the logistic loss
        labels = np.where(y > np.median(y), 1.0, -1.0)

        def logistic(params, X, y):
            return jnp.mean(jnp.logaddexp(0.0, -y * (X @ params["w"] + params["b"])))

        init = {"w": jnp.zeros(p), "b": jnp.zeros(())}
        sol, _ = fista(logistic, init, 0.02 + t, X, labels, mask={"w": True, "b": False}, **opts)
        return jnp.mean((Xv @ sol["w"] + sol["b"] - yv) ** 2)

    def group(t):  # the group lasso prox, rows of a (6, p // 6)-shaped weight
        W0 = jnp.zeros((5, p // 5))
        prox = functools.partial(l1optax.prox_group_l1, axis=-1)

        def loss(W, X, y):
            return 0.5 * jnp.mean((X @ W.ravel() - y) ** 2)

        W, _ = fista(loss, W0, lam + t, X, y, prox=prox, **opts)
        return held_out(W.ravel())

    return {
        "l1reg": lambda t: held_out(fista(lsq, jnp.zeros(p), lam + t, X, y, **opts)[0]),
        "data": lambda t: held_out(fista(lsq, jnp.zeros(p), lam, X + t * E, y, **opts)[0]),
        "closure": lambda t: held_out(closure(t)[0]),
        "logistic_masked": masked,
        "group_l1": group,
    }


FISTA_GRADIENT_CASES = ["l1reg", "data", "closure", "logistic_masked", "group_l1"]


@pytest.mark.parametrize("case", FISTA_GRADIENT_CASES)
def test_fista_hypergradient_equals_central_finite_differences(x64, case):
    # jax.grad through the solution by implicit differentiation of the proximal-gradient fixed
    # point (no unrolling), w.r.t. the strength, the data (passed or closed over), with a mask
    # and a group prox: central differences within 1e-6
    value = _fista_hypergradient_cases()[case]
    want = _central(value)
    assert abs(want) > 1e-6  # a real dependence
    np.testing.assert_allclose(float(jax.grad(value)(0.0)), want, rtol=1e-6)


def test_fista_forward_mode_equals_central_finite_differences(x64):
    X, y = make_regression(seed=22)
    p = X.shape[1]

    def solution(lam):
        loss = lambda w, X, y: 0.5 * jnp.mean((X @ w - y) ** 2)  # noqa: E731
        return fista(loss, jnp.zeros(p), lam, X, y, tol=1e-13, maxiter=100_000)[0]

    lam = 0.05
    tangent = np.asarray(jax.jvp(solution, (lam,), (1.0,))[1])
    fd = (np.asarray(solution(lam + 1e-6)) - np.asarray(solution(lam - 1e-6))) / 2e-6
    assert np.abs(fd).max() > 1e-3 and np.all(tangent[np.asarray(solution(lam)) == 0] == 0)
    np.testing.assert_allclose(tangent, fd, rtol=0, atol=1e-6 * np.abs(fd).max())
    # the solution does not depend on the start: a zero derivative, not an error from the loop
    loss = lambda w, X, y: 0.5 * jnp.mean((X @ w - y) ** 2)  # noqa: E731
    start = jax.grad(lambda w0: jnp.sum(fista(loss, w0, lam, X, y, tol=1e-13)[0]))(jnp.zeros(p))
    np.testing.assert_array_equal(np.asarray(start), 0.0)
