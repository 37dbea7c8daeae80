"""l1_path, l1_grid and lambda_max against scikit-learn's lasso_path on bundled data."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Lasso, lasso_path

from l1optax import fista, l1_grid, l1_path, lambda_max


def lsq(w, X, y):
    return 0.5 * jnp.mean((X @ w - y) ** 2)


def lsq_intercept(params, X, y):
    return 0.5 * jnp.mean((X @ params["w"] + params["b"] - y) ** 2)


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X.astype(np.float64), (y - y.mean()).astype(np.float64)


# ------------------------------------------------------------------------------------------------
# lambda_max and l1_grid


def test_lambda_max_equals_sklearn_alpha_max(x64, diabetes):
    X, y = diabetes
    lam = float(lambda_max(lsq, jnp.zeros(X.shape[1]), X, y))
    np.testing.assert_allclose(lam, np.abs(X.T @ y).max() / X.shape[0], rtol=1e-14)
    alphas, _, _ = lasso_path(X, y, alphas=5)
    np.testing.assert_allclose(lam, alphas[0], rtol=1e-13)


def test_lambda_max_is_tight(x64, diabetes):
    X, y = diabetes
    lam = float(lambda_max(lsq, jnp.zeros(X.shape[1]), X, y))
    kw = dict(tol=1e-10, maxiter=50_000)
    w_at, info_at = fista(lsq, jnp.zeros(X.shape[1]), lam, X, y, **kw)
    w_below, info_below = fista(lsq, jnp.zeros(X.shape[1]), 0.99 * lam, X, y, **kw)
    assert bool(info_at.converged) and bool(info_below.converged)
    assert np.all(np.asarray(w_at) == 0.0)
    assert np.count_nonzero(np.asarray(w_below)) >= 1
    ref = Lasso(alpha=0.99 * lam, fit_intercept=False, tol=1e-12, max_iter=10**6).fit(X, y)
    np.testing.assert_array_equal(np.asarray(w_below) != 0, ref.coef_ != 0)


def test_lambda_max_with_unpenalized_intercept_matches_sklearn(x64):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 8)) + 2.0
    y = X @ rng.standard_normal(8) + 4.0
    init = {"w": jnp.ones(8), "b": jnp.asarray(y.mean())}  # w values are ignored (penalized)
    lam = float(lambda_max(lsq_intercept, init, X, y, mask={"w": True, "b": False}))
    Xc, yc = X - X.mean(0), y - y.mean()
    np.testing.assert_allclose(lam, np.abs(Xc.T @ yc).max() / 50, rtol=1e-12)
    alphas, _, _ = lasso_path(Xc, yc, alphas=3)
    np.testing.assert_allclose(lam, alphas[0], rtol=1e-12)
    # tight with the intercept free: at lam the weights vanish, just below they do not
    kw = dict(mask={"w": True, "b": False}, tol=1e-10, maxiter=50_000)
    zero = {"w": jnp.zeros(8), "b": jnp.zeros(())}
    # (started at the optimum for lam: from b = 0 the iterates reach w = 0 only in the limit,
    # because lam is exactly on the boundary)
    p_at, _ = fista(lsq_intercept, {"w": jnp.zeros(8), "b": init["b"]}, lam, X, y, **kw)
    p_above, _ = fista(lsq_intercept, zero, 1.001 * lam, X, y, **kw)
    assert np.all(np.asarray(p_above["w"]) == 0)
    p_below, _ = fista(lsq_intercept, zero, 0.99 * lam, X, y, **kw)
    assert np.all(np.asarray(p_at["w"]) == 0) and np.count_nonzero(np.asarray(p_below["w"])) >= 1
    np.testing.assert_allclose(float(p_at["b"]), y.mean(), rtol=1e-9)


def test_lambda_max_ignores_masked_leaf_and_zero_weights(x64):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((20, 6))
    y = rng.standard_normal(20)
    g = np.abs(X.T @ y) / 20
    weights = np.array([1.0, 0.0, 2.0, 1.0, 0.5, 1.0])
    lam = float(lambda_max(lsq, jnp.zeros(6), X, y, weights=weights))
    expected = max(g[j] / weights[j] for j in range(6) if weights[j] > 0)
    np.testing.assert_allclose(lam, expected, rtol=1e-14)
    nothing = float(lambda_max(lsq, jnp.zeros(6), X, y, mask=False))
    assert nothing == 0.0
    with pytest.raises(ValueError, match=r"lambda_max\(weights=\.\.\.\).*-1\.0"):
        lambda_max(lsq, jnp.zeros(6), X, y, weights=-1.0)
    with pytest.raises(ValueError, match=r"lambda_max\(mask=\.\.\.\)"):
        lambda_max(lsq, jnp.zeros(6), X, y, mask={"a": True})


@pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)  # max_iter=1 on purpose
@pytest.mark.parametrize("num, eps", [(100, 1e-3), (7, 1e-2), (1, 1e-3), (2, 0.5)])
def test_l1_grid_equals_sklearn_grid(x64, diabetes, num, eps):
    X, y = diabetes
    alphas, _, _ = lasso_path(X, y, alphas=num, eps=eps, max_iter=1)  # grid only
    grid = l1_grid(lambda_max(lsq, jnp.zeros(X.shape[1]), X, y), num=num, eps=eps)
    assert grid.shape == (num,) and grid.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(grid), alphas, rtol=1e-13)


def test_l1_grid_float32_and_jit():
    grid = jax.jit(lambda lam: l1_grid(lam, num=5, eps=1e-4))(jnp.float32(2.0))
    assert grid.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(grid), np.geomspace(2.0, 2e-4, 5), rtol=1e-6)


@pytest.mark.parametrize(
    "args, match",
    [
        (dict(lambda_max=-1.0), r"l1_grid\(lambda_max=\.\.\.\).*-1\.0"),
        (dict(lambda_max=float("nan")), r"l1_grid\(lambda_max=\.\.\.\)"),
        (dict(lambda_max=1.0, num=0), r"l1_grid\(num=\.\.\.\).*0"),
        (dict(lambda_max=1.0, num=3.0), r"l1_grid\(num=\.\.\.\)"),
        (dict(lambda_max=1.0, eps=0.0), r"l1_grid\(eps=\.\.\.\).*0\.0"),
        (dict(lambda_max=1.0, eps=1.5), r"l1_grid\(eps=\.\.\.\).*1\.5"),
    ],
)
def test_l1_grid_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        l1_grid(**args)


# ------------------------------------------------------------------------------------------------
# l1_path vs lasso_path


def test_path_matches_lasso_path_on_diabetes_at_every_point(x64, diabetes):
    X, y = diabetes
    alphas, coefs, gaps = lasso_path(X, y, alphas=100, eps=1e-3, tol=1e-12, max_iter=10**6)
    grid = l1_grid(lambda_max(lsq, jnp.zeros(X.shape[1]), X, y), num=100, eps=1e-3)
    np.testing.assert_allclose(np.asarray(grid), alphas, rtol=1e-13)
    W, info = l1_path(lsq, jnp.zeros(X.shape[1]), grid, X, y, tol=1e-9, maxiter=100_000)
    W = np.asarray(W)
    assert W.shape == (100, X.shape[1]) and W.dtype == np.float64
    assert bool(np.all(info.converged)) and info.num_iter.shape == (100,)
    scale = np.abs(coefs).max()
    np.testing.assert_allclose(W, coefs.T, rtol=0, atol=1e-6 * scale)
    np.testing.assert_array_equal(W != 0, coefs.T != 0)  # same support at every grid point
    assert np.all(W[0] == 0)
    # warm starts: after the first few points each solve needs far fewer iterations than cold
    cold = [int(fista(lsq, jnp.zeros(10), grid[k], X, y, tol=1e-9, maxiter=100_000)[1].num_iter)
            for k in (50, 99)]  # fmt: skip
    assert int(info.num_iter[50]) < cold[0] and int(info.num_iter[99]) < cold[1]


def test_path_with_unpenalized_intercept_via_mask(x64, diabetes):
    X, y = diabetes
    X, y = X + 1.5, y + 150.0  # non-centred: the intercept matters
    Xc, yc = X - X.mean(0), y - y.mean()
    alphas, coefs, _ = lasso_path(Xc, yc, alphas=20, eps=1e-2, tol=1e-12, max_iter=10**6)
    mask = {"w": True, "b": False}
    init = {"w": jnp.zeros(10), "b": jnp.asarray(y.mean())}
    lam = lambda_max(lsq_intercept, init, X, y, mask=mask)
    grid = l1_grid(lam, num=20, eps=1e-2)
    np.testing.assert_allclose(np.asarray(grid), alphas, rtol=1e-12)
    path, info = l1_path(lsq_intercept, init, grid, X, y, mask=mask, tol=1e-9, maxiter=100_000)
    assert bool(np.all(info.converged))
    W = np.asarray(path["w"])
    np.testing.assert_allclose(W, coefs.T, atol=1e-6 * np.abs(coefs).max())
    np.testing.assert_array_equal(W != 0, coefs.T != 0)
    # intercept = mean(y) - mean(X) @ w, as sklearn's fit_intercept=True computes it
    np.testing.assert_allclose(np.asarray(path["b"]), y.mean() - W @ X.mean(0), atol=1e-6)


def test_path_float32_and_under_jit(diabetes):
    X, y = diabetes
    X32, y32 = jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32)
    alphas, coefs, _ = lasso_path(X, y, alphas=10, eps=1e-2, tol=1e-12, max_iter=10**6)

    @jax.jit
    def run(X, y):
        grid = l1_grid(lambda_max(lsq, jnp.zeros(10, jnp.float32), X, y), num=10, eps=1e-2)
        return l1_path(lsq, jnp.zeros(10, jnp.float32), grid, X, y, tol=1e-5, maxiter=20_000)

    W, info = run(X32, y32)
    assert W.dtype == jnp.float32 and info.error.dtype == jnp.float32
    assert bool(np.all(info.converged))
    # tol is absolute on the gradient mapping; the smallest curvature of diabetes is 2e-5
    np.testing.assert_allclose(np.asarray(W, np.float64), coefs.T, atol=3e-4 * np.abs(coefs).max())


def test_path_vmaps_over_independent_targets(x64, diabetes):
    X, y = diabetes
    Y = np.stack([y, -0.5 * y + 10 * X[:, 0]])
    grid = jnp.asarray(np.geomspace(10.0, 0.1, 6))
    W, info = jax.vmap(lambda y: l1_path(lsq, jnp.zeros(10), grid, X, y, tol=1e-9, maxiter=50_000))(
        jnp.asarray(Y)
    )
    assert W.shape == (2, 6, 10)
    for b in range(2):
        _, coefs, _ = lasso_path(X, Y[b], alphas=np.asarray(grid), tol=1e-12, max_iter=10**6)
        np.testing.assert_allclose(np.asarray(W[b]), coefs.T, atol=1e-6 * np.abs(coefs).max())


@settings(max_examples=10)
@given(seed=st.integers(0, 1000))
def test_property_path_is_non_increasing_in_l1_norm_start_and_kkt(seed):
    # for the lasso, ||w(lam)||_1 is non-increasing in lam (Efron et al. 2004) and every point
    # satisfies the KKT conditions; checked against NumPy float64 gradients
    with jax.enable_x64(True):
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((25, 6))
        y = X @ rng.standard_normal(6) + 0.1 * rng.standard_normal(25)
        grid = l1_grid(lambda_max(lsq, jnp.zeros(6), X, y), num=8, eps=1e-2)
        W, info = l1_path(lsq, jnp.zeros(6), grid, X, y, tol=1e-11, maxiter=50_000)
        W = np.asarray(W)
        l1 = np.abs(W).sum(1)
        assert np.all(np.diff(l1) >= -1e-9)
        for w, lam in zip(W, np.asarray(grid), strict=True):
            g = X.T @ (X @ w - y) / 25
            viol = np.where(w == 0, np.maximum(np.abs(g) - lam, 0), np.abs(g + lam * np.sign(w)))
            assert viol.max() <= 1e-9


# ------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "l1regs, match",
    [
        ([0.1, 0.2, 0.05], r"l1_path\(l1regs=\.\.\.\).*non-increasing.*entry 1"),
        (np.array([1.0, -0.5]), r"l1_path\(l1regs=\.\.\.\).*-0\.5"),
        (np.array([np.nan, 0.5]), r"l1_path\(l1regs=\.\.\.\).*nan"),
        (np.array([]), r"l1_path\(l1regs=\.\.\.\)"),
        (0.5, r"l1_path\(l1regs=\.\.\.\).*leading axis"),
    ],
)
def test_path_bad_l1regs(l1regs, match):
    X = jnp.ones((4, 2))
    y = jnp.ones(4)
    with pytest.raises(ValueError, match=match):
        l1_path(lsq, jnp.zeros(2), l1regs, X, y)


def test_path_ties_are_allowed_and_bad_problem_is_named():
    X = jnp.asarray(np.random.default_rng(2).standard_normal((8, 3)), jnp.float32)
    y = jnp.ones(8)
    W, info = l1_path(lsq, jnp.zeros(3), [0.2, 0.2, 0.1], X, y, tol=1e-5)
    np.testing.assert_allclose(np.asarray(W[0]), np.asarray(W[1]), atol=1e-6)
    assert int(info.num_iter[1]) <= 2  # warm-started at the solution of the same problem
    with pytest.raises(ValueError, match=r"l1_path.*shapes"):
        l1_path(lsq, jnp.zeros(4), [0.2, 0.1], X, y)
    with pytest.raises(ValueError, match=r"l1_path.*loss at init_params is inf"):
        l1_path(lsq, jnp.zeros(3), [0.2, 0.1], X, y.at[0].set(jnp.inf))
    with pytest.raises(ValueError, match=r"l1_path\(maxiter=\.\.\.\)"):
        l1_path(lsq, jnp.zeros(3), [0.2, 0.1], X, y, maxiter=-3)


def test_path_on_gram_form_loss_does_not_stall(x64):
    # f = w'Gw/2 - w'b + c is a small difference of large terms: near convergence its rounding
    # hides the decrease and a value-only line search shrinks the step for good (this used to take
    # ~1e6 iterations); the curvature test keeps the step, so the path costs what the X form does
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 40))
    y = X[:, :4] @ np.array([1.0, -1.0, 0.5, 2.0]) + 0.5 * rng.standard_normal(200)
    G, b, c = X.T @ X / 200, X.T @ y / 200, y @ y / 200

    def gram_loss(w, G, b, c):
        return 0.5 * (w @ (G @ w)) - w @ b + 0.5 * c

    lam = float(lambda_max(lsq, jnp.zeros(40), X, y))
    grid = l1_grid(lam, num=20, eps=1e-3)
    kw = dict(tol=1e-10 * lam, maxiter=20_000)
    W_gram, info_gram = l1_path(gram_loss, jnp.zeros(40), grid, G, b, c, **kw)
    W, info = l1_path(lsq, jnp.zeros(40), grid, X, y, **kw)
    assert bool(np.all(info_gram.converged))
    assert int(np.sum(info_gram.num_iter)) <= 1.2 * int(np.sum(info.num_iter))
    assert float(info_gram.stepsize[-1]) >= 0.5 * float(info.stepsize[-1])  # no step collapse
    np.testing.assert_allclose(np.asarray(W_gram), np.asarray(W), atol=1e-8)


def test_path_with_per_coordinate_strengths(x64, diabetes):
    # l1regs of shape (num, p): the weighted lasso lam_k * sum_j c_j |w_j| at every point, which is
    # sklearn's lasso on the columns X_j / c_j (coefficients c_j w_j)
    X, y = diabetes
    c = np.linspace(0.5, 2.0, X.shape[1])
    grid = np.geomspace(5.0, 0.05, 6)
    W, info = l1_path(lsq, jnp.zeros(10), np.outer(grid, c), X, y, tol=1e-9, maxiter=100_000)
    assert W.shape == (6, 10) and bool(np.all(info.converged))
    _, coefs, _ = lasso_path(X / c, y, alphas=grid, tol=1e-12, max_iter=10**6)
    ref = coefs.T / c
    np.testing.assert_allclose(np.asarray(W), ref, atol=1e-6 * np.abs(ref).max())
    np.testing.assert_array_equal(np.asarray(W) != 0, ref != 0)
    # an int strength is accepted like the float one
    w_int, _ = fista(lsq, jnp.zeros(10), 1, X, y, tol=1e-9, maxiter=100_000)
    w_float, _ = fista(lsq, jnp.zeros(10), 1.0, X, y, tol=1e-9, maxiter=100_000)
    np.testing.assert_array_equal(np.asarray(w_int), np.asarray(w_float))


# ------------------------------------------------------------------------------------------------
# issue 11: stale programs, collapsed steps, error messages


def test_path_loss_closing_over_changed_globals_is_never_stale(x64, diabetes):
    X, y = diabetes
    data = {"X": jnp.asarray(X), "y": jnp.asarray(y)}

    def loss(w):
        return 0.5 * jnp.mean((data["X"] @ w - data["y"]) ** 2)

    grid = np.geomspace(10.0, 0.1, 4)
    l1_path(loss, jnp.zeros(10), grid, tol=1e-9, maxiter=100_000)
    data["y"] = jnp.asarray(-2.0 * y)  # the solutions scale by -2 at twice the strengths
    W, _ = l1_path(loss, jnp.zeros(10), 2 * grid, tol=1e-9, maxiter=100_000)
    _, coefs, _ = lasso_path(X, -2 * y, alphas=2 * grid, tol=1e-12, max_iter=10**6)
    np.testing.assert_allclose(np.asarray(W), coefs.T, atol=1e-6 * np.abs(coefs).max())


def test_path_does_not_carry_a_collapsed_step(x64):
    # tol=0 drives every solve to the rounding floor; the step handed to the next strength must
    # stay near 1/L (it used to collapse there and be carried along the whole path)
    rng = np.random.default_rng(1)
    n, p = 200, 30
    X = rng.standard_normal((n, p)) * 1e3
    y = X @ rng.standard_normal(p) + rng.standard_normal(n)
    lipschitz = np.linalg.eigvalsh(X.T @ X / n).max()
    grid = l1_grid(float(lambda_max(lsq, jnp.zeros(p), X, y)), num=5, eps=1e-4)
    W, info = l1_path(lsq, jnp.zeros(p), grid, X, y, tol=0.0, maxiter=3000)
    assert np.all(np.asarray(info.stepsize)[1:] * lipschitz >= 0.2)
    assert np.all(np.asarray(info.num_iter) < 3000)
    _, coefs, _ = lasso_path(X, y, alphas=np.asarray(grid), tol=1e-14, max_iter=10**6)
    np.testing.assert_allclose(np.asarray(W), coefs.T, atol=1e-8 * np.abs(coefs).max())


def test_path_increasing_error_names_the_coordinate():
    X = jnp.ones((4, 3))
    y = jnp.ones(4)
    l1regs = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 2.0]])
    with pytest.raises(ValueError, match=r"entry 1 \(2\.0\) exceeds entry 0 \(1\.0\).*\[2\]"):
        l1_path(lsq, jnp.zeros(3), l1regs, X, y)
    with pytest.raises(ValueError, match=r"entry 1 \(2\.0\) exceeds entry 0 \(1\.0\) at \['b'\]"):
        l1_path(
            lambda p, X, y: lsq(p["a"], X, y) + jnp.sum(p["b"] ** 2),
            {"a": jnp.zeros(3), "b": jnp.zeros(())},
            {"a": np.ones((2, 3)), "b": np.array([1.0, 2.0])},
            X,
            y,
        )


@pytest.mark.parametrize(
    "lam, match",
    [
        ([1.0], r"l1_grid\(lambda_max=\.\.\.\)` must be a scalar, got shape \(1,\)"),
        (np.ones((2,)), r"l1_grid\(lambda_max=\.\.\.\)` must be a scalar, got shape \(2,\)"),
    ],
)
def test_l1_grid_non_scalar_lambda_max_is_named(lam, match):
    with pytest.raises(ValueError, match=match):
        l1_grid(lam, num=3)


@pytest.mark.parametrize(
    "weights, match",
    [
        (jnp.ones(2), r"lambda_max\(weights=\.\.\.\).*shape \(2,\).*<root>.*\(3,\)"),
        (jnp.ones((3, 3)), r"lambda_max\(weights=\.\.\.\).*shape \(3, 3\).*\(3,\)"),
        ({"w": jnp.ones(2), "b": 1.0}, r"lambda_max\(weights=\.\.\.\).*\['w'\]"),
    ],
)
def test_lambda_max_wrong_shaped_weights_are_named(weights, match):
    params = (
        jnp.zeros(3) if not isinstance(weights, dict) else {"w": jnp.zeros(3), "b": jnp.zeros(())}
    )

    def loss(p):
        leaves = jax.tree.leaves(p)
        return sum(jnp.sum((leaf - 1.0) ** 2) for leaf in leaves)

    with pytest.raises(ValueError, match=match):
        lambda_max(loss, params, weights=weights)
