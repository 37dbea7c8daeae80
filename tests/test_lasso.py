"""lasso / lasso_path against scikit-learn (Lasso, ElasticNet, LogisticRegression, lasso_path)."""

from __future__ import annotations

import logging
from unittest import mock

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from jax.experimental import sparse as jsparse
from sklearn.datasets import load_diabetes
from sklearn.linear_model import ElasticNet, Lasso, LogisticRegression
from sklearn.linear_model import lasso_path as sk_lasso_path

import l1optax
from l1optax import LassoInfo, _lasso, lasso, lasso_path


def make_regression(n, p, k=5, seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    w = np.zeros(p)
    w[rng.choice(p, k, replace=False)] = rng.standard_normal(k) * 2
    return X, X @ w + noise * rng.standard_normal(n) + 3.0, w


def assert_same_solution(w, ref, rtol=1e-6):
    w = np.asarray(w, np.float64)
    np.testing.assert_allclose(w, ref, rtol=0, atol=rtol * np.abs(ref).max())
    np.testing.assert_array_equal(w != 0, ref != 0)  # identical support, exact zeros


def np_gap(X, y, w, alpha):
    """The textbook lasso duality gap, written independently of l1optax."""
    n = X.shape[0]
    r = y - X @ w
    primal = r @ r / (2 * n) + alpha * np.abs(w).sum()
    theta = r / max(n * alpha, np.abs(X.T @ r).max())
    dual = (y @ y - (y - n * alpha * theta) @ (y - n * alpha * theta)) / (2 * n)
    return primal - dual, primal


SK = dict(tol=1e-14, max_iter=10**6)


def logistic_data(n, p, k=5, seed=4, noise=0.5, label_seed=1):
    """Features and {0, 1} labels thresholding a noisy sparse linear score."""
    X, _, w_true = make_regression(n, p, k=k, seed=seed)
    score = X @ w_true + noise * np.random.default_rng(label_seed).standard_normal(n)
    return X, np.where(score > 0, 1.0, 0.0)


SHAPE = (50, 120)  # one shape for the dense tests: one compiled program (p > n)


def assert_lasso_and_elastic_net_match_sklearn(X, y, alpha, fit_intercept):
    """``lasso`` at ``alpha`` and the elastic net at l1_ratio 0.6 against scikit-learn's
    ``Lasso`` and ``ElasticNet`` (coefficients, support, intercept); returns the lasso's."""
    ref = Lasso(alpha=alpha, fit_intercept=fit_intercept, **SK).fit(X, y)
    w, info = lasso(X, y, alpha, fit_intercept=fit_intercept, tol=1e-13)
    assert bool(info.converged)
    assert_same_solution(w, ref.coef_)
    np.testing.assert_allclose(float(info.intercept), ref.intercept_, rtol=1e-9, atol=1e-12)
    # ElasticNet(alpha, l1_ratio) = l1reg alpha * l1_ratio, l2reg alpha * (1 - l1_ratio)
    net = ElasticNet(alpha=alpha, l1_ratio=0.6, fit_intercept=fit_intercept, **SK).fit(X, y)
    w_net, net_info = lasso(
        X, y, 0.6 * alpha, l2reg=0.4 * alpha, fit_intercept=fit_intercept, tol=1e-13
    )
    assert bool(net_info.converged)
    assert_same_solution(w_net, net.coef_)
    np.testing.assert_allclose(float(net_info.intercept), net.intercept_, rtol=1e-9, atol=1e-12)
    return w, info


@pytest.mark.parametrize("fit_intercept", [False, True], ids=["no_intercept", "intercept"])
def test_lasso_and_elastic_net_match_sklearn(x64, fit_intercept):
    shape = SHAPE
    X, y, _ = make_regression(*shape)
    alpha = 0.1 * np.abs(X.T @ (y - y.mean())).max() / shape[0]
    w, info = assert_lasso_and_elastic_net_match_sklearn(X, y, alpha, fit_intercept)
    assert isinstance(info, LassoInfo) and w.dtype == jnp.float64 and w.shape == (shape[1],)
    assert float(info.gap) <= 1e-13 * float(info.primal)


def test_certificate_equals_numpy_gap_and_kkt(x64):
    X, y, _ = make_regression(*SHAPE, seed=3)
    y = y - y.mean()
    alpha = 0.2 * np.abs(X.T @ y).max() / 50
    w, info = lasso(X, y, alpha, tol=1e-3, max_iter=1, max_epochs=1)  # stopped early: a real gap
    assert float(info.gap) > 1e-6 * float(info.primal)
    gap, primal = np_gap(X, y, np.asarray(w), alpha)
    np.testing.assert_allclose(float(info.gap), gap, rtol=1e-8, atol=1e-15)
    np.testing.assert_allclose(float(info.primal), primal, rtol=1e-12)
    g = X.T @ (X @ np.asarray(w) - y) / 50
    w_np = np.asarray(w)
    viol = np.where(w_np == 0, np.maximum(np.abs(g) - alpha, 0), np.abs(g + alpha * np.sign(w_np)))
    np.testing.assert_allclose(float(info.kkt), viol.max(), rtol=1e-8, atol=1e-15)
    assert int(info.num_outer) == 1


@pytest.mark.parametrize("fit_intercept", [False, True], ids=["no_intercept", "intercept"])
def test_logistic_matches_sklearn(x64, fit_intercept):
    X, y = logistic_data(80, 20)
    alpha = 0.03
    C = 1 / (alpha * X.shape[0])  # sklearn's C = 1 / (alpha n)
    # liblinear penalizes its intercept; saga does not (the problem solved here)
    solver = "saga" if fit_intercept else "liblinear"
    ref = LogisticRegression(
        l1_ratio=1.0, C=C, solver=solver, fit_intercept=fit_intercept, tol=1e-13, max_iter=10**6,
        random_state=0,  # liblinear and saga shuffle coordinates: unseeded, ~7% miss 1e-13
    ).fit(X, y)  # fmt: skip
    w, info = lasso(X, y, alpha, loss="logistic", fit_intercept=fit_intercept, tol=1e-13)
    assert bool(info.converged)
    assert_same_solution(w, ref.coef_[0], rtol=1e-6)
    if fit_intercept:
        np.testing.assert_allclose(float(info.intercept), ref.intercept_[0], rtol=1e-6)
    # the logistic duality gap bounds the suboptimality: tight at the solution
    assert 0 <= float(info.gap) <= 1e-13 * float(info.primal)
    _, info_early = lasso(
        X, y, alpha, loss="logistic", fit_intercept=fit_intercept, tol=1e-3, max_iter=1
    )
    assert float(info_early.primal) - float(info.primal) <= float(info_early.gap) + 1e-15


@pytest.mark.parametrize("fit_intercept", [False, True], ids=["no_intercept", "intercept"])
def test_wide_logistic_elastic_net_matches_sklearn(x64, fit_intercept):
    # p > n: the quadratic models are solved in residual form (no K x K block)
    X, y = logistic_data(40, 150, k=6, seed=12, noise=0.3, label_seed=2)
    C, l1_ratio = 2.0, 0.8  # sklearn: C sum(log-loss) + l1_ratio |w|_1 + (1 - l1_ratio) |w|^2 / 2
    ref = LogisticRegression(
        l1_ratio=l1_ratio, C=C, solver="saga", fit_intercept=fit_intercept, tol=1e-14,
        max_iter=10**6, random_state=0,
    ).fit(X, y)  # fmt: skip
    alpha, l2 = l1_ratio / (C * 40), (1 - l1_ratio) / (C * 40)
    w, info = lasso(X, y, alpha, l2reg=l2, loss="logistic", fit_intercept=fit_intercept, tol=1e-13)
    assert bool(info.converged) and 0 < int(np.sum(np.asarray(w) != 0)) < 40
    assert_same_solution(w, ref.coef_[0], rtol=1e-6)
    if fit_intercept:
        np.testing.assert_allclose(float(info.intercept), ref.intercept_[0], rtol=1e-6)


def test_path_matches_sklearn_lasso_path_on_diabetes(x64):
    X, y = load_diabetes(return_X_y=True)
    y = y - y.mean()
    alphas, coefs, _ = sk_lasso_path(X, y, alphas=100, eps=1e-3, **SK)
    W, info = lasso_path(X, y, alphas, tol=1e-13)
    assert W.shape == (100, 10) and info.gap.shape == (100,)
    assert bool(np.all(info.converged))
    for k in range(100):
        ref = coefs[:, k]
        if np.any(ref != 0):
            assert_same_solution(W[k], ref)
        else:
            assert np.all(np.asarray(W[k]) == 0)


def test_per_feature_weights_match_rescaled_sklearn(x64):
    # sum_j c_j |w_j| is sklearn's lasso on the columns X_j / c_j (coefficients c_j w_j)
    X, y, _ = make_regression(*SHAPE, seed=6)
    c = np.linspace(0.5, 2.0, SHAPE[1])
    alpha = 0.05 * np.abs(X.T @ (y - y.mean())).max() / 50
    ref = Lasso(alpha=alpha, fit_intercept=True, **SK).fit(X / c, y).coef_ / c
    w, info = lasso(X, y, alpha, weights=c, fit_intercept=True, tol=1e-13)
    assert bool(info.converged)
    assert_same_solution(w, ref)


@pytest.mark.parametrize("fit_intercept", [False, True], ids=["no_intercept", "intercept"])
def test_sparse_design_matches_sklearn(x64, fit_intercept):
    rng = np.random.default_rng(7)
    Xs = sp.random(60, 150, density=0.1, random_state=7, format="csc")
    w_true = np.zeros(150)
    w_true[:8] = rng.standard_normal(8) * 3
    y = Xs @ w_true + 0.05 * rng.standard_normal(60) + 1.0
    alpha = 0.05 * np.abs(Xs.T @ (y - y.mean())).max() / 60
    ref = Lasso(alpha=alpha, fit_intercept=fit_intercept, **SK).fit(Xs, y)
    batched = jsparse.BCOO.fromdense(jnp.asarray(Xs.toarray()), n_batch=1)  # (row, nse, 1) indices
    # entries in column order (CSC) are read as they are; in row order (CSR, fromdense) sorted
    column_major = jsparse.BCOO.from_scipy_sparse(Xs)
    assert _lasso._column_order(column_major)[1][0] is None
    assert _lasso._column_order(jsparse.BCOO.from_scipy_sparse(Xs.tocsr()))[1][0] is not None
    padded = jsparse.BCOO.fromdense(jnp.asarray(Xs.toarray()), nse=Xs.nnz + 7)  # 7 past the end
    assert int(np.asarray(padded.indices)[:, 1].max()) >= 150
    for X in (Xs, Xs.tocsr(), column_major, batched, padded):
        w, info = lasso(X, y, alpha, fit_intercept=fit_intercept, tol=1e-13)
        assert bool(info.converged)
        assert_same_solution(w, ref.coef_)
        np.testing.assert_allclose(float(info.intercept), ref.intercept_, rtol=1e-9, atol=1e-12)


def test_sparse_elastic_net_and_weights_match_sklearn_past_the_first_capacity(x64):
    # ~190 non-zeros: working sets beyond the first compiled capacity (128 of 128, 400), so the
    # sparse inner solver runs at both capacities; with l2, and with per-feature weights
    n, p = 200, 400
    rng = np.random.default_rng(11)
    Xs = sp.random(n, p, density=0.05, random_state=11, format="csc")
    w_true = np.zeros(p)
    w_true[rng.choice(p, 100, replace=False)] = rng.standard_normal(100)
    y = Xs @ w_true + 0.05 * rng.standard_normal(n)
    alpha, l1_ratio = 1e-3, 0.7
    ref = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, fit_intercept=False, **SK).fit(Xs, y).coef_
    w, info = lasso(Xs, y, alpha * l1_ratio, l2reg=alpha * (1 - l1_ratio), tol=1e-13)
    assert bool(info.converged) and int(info.ws_size) > 128
    assert_same_solution(w, ref)
    weights = rng.uniform(0.5, 2.0, p)  # = scikit-learn's lasso on the columns X_j / c_j
    ref = Lasso(alpha=alpha, fit_intercept=False, **SK).fit(Xs @ sp.diags(1 / weights), y)
    w, info = lasso(Xs, y, alpha, weights=weights, tol=1e-13)
    assert bool(info.converged) and int(info.ws_size) > 128
    assert_same_solution(w, ref.coef_ / weights)


def test_sparse_design_under_jit_and_with_repeated_entries(x64):
    # traced indices take the traced column order (and width n); a BCOO holding one entry
    # twice (as halves) is summed first: the column norms (and Gap Safe radii) read X itself
    # (the design of test_sparse_design_matches_sklearn: once summed, its compiled solver)
    Xs = sp.random(60, 150, density=0.1, random_state=7, format="csc")
    y = Xs @ np.r_[np.ones(5), np.zeros(145)] + 0.1 * np.random.default_rng(3).standard_normal(60)
    alpha = 0.02
    ref = Lasso(alpha=alpha, fit_intercept=True, **SK).fit(Xs, y)
    X = jsparse.BCOO.from_scipy_sparse(Xs)
    halves = jsparse.BCOO(
        (jnp.concatenate([X.data / 2, X.data / 2]), jnp.concatenate([X.indices, X.indices])),
        shape=X.shape,
    )
    traced = jax.jit(lambda X: lasso(X, y, alpha, fit_intercept=True, tol=1e-13))
    for w, info in (traced(X), lasso(halves, y, alpha, fit_intercept=True, tol=1e-13)):
        assert bool(info.converged)
        assert_same_solution(w, ref.coef_)
        np.testing.assert_allclose(float(info.intercept), ref.intercept_, rtol=1e-9, atol=1e-12)


def test_a_sparse_working_set_its_solution_fills_grows_four_fold(x64):
    # a sparse X's blocks cost O(K) to set up: a working set whose solution fills 90% of it
    # grows to four times the support, a dense X's to twice (its Gram blocks cost n K^2)
    Xs = sp.random(400, 600, density=0.05, random_state=3, format="csc")
    y = np.random.default_rng(4).standard_normal(400)
    alpha = 1e-4 * np.abs(Xs.T @ y).max() / 400  # the first 32 features all enter
    for X, growth in ((Xs, 4), (Xs.toarray(), 2)):
        w, first = lasso(X, y, alpha, tol=1e-12, max_iter=1)
        support = int(np.sum(np.asarray(w) != 0))
        assert int(first.ws_size) == 32 and support >= 29
        _, second = lasso(X, y, alpha, tol=1e-12, max_iter=2)
        assert int(second.ws_size) == growth * support


def np_cyclic_cd(H, b, lam, w, order, epochs):
    """Cyclic coordinate descent on w'Hw/2 - b'w + sum(lam |w|), one coordinate at a time."""
    w = w.copy()
    for _ in range(epochs):
        for j in order:
            if H[j, j] > 0:
                z = w[j] - (H[j] @ w - b[j]) / H[j, j]
                w[j] = np.sign(z) * max(abs(z) - lam[j] / H[j, j], 0.0)
    return w


FORMS = ["gram", "residual", "sparse", "sparse-few", "sparse-uncentred"]


def padded_columns(A_s):
    """A sparse block's (rows, values), (K, width): each column's non-zeros, then padding past
    the rows (row n, value 0), as _sparse_columns lays them out."""
    n, K = A_s.shape
    width = int((A_s != 0).sum(0).max())
    rows, vals = np.full((K, width), n, np.int32), np.zeros((K, width))
    for j in range(K):
        nz = np.flatnonzero(A_s[:, j])
        rows[j, : nz.size], vals[j, : nz.size] = nz, A_s[nz, j]
    return rows, vals


def cd_epochs(blk, lam, w0, epochs):
    """``epochs`` epochs of _cd on ``blk`` from w0 (no stopping test), as a NumPy array."""
    run = jax.jit(lambda w: _lasso._cd(blk, w, jnp.asarray(lam), lambda w, st: False, epochs))
    w, done, _ = run(jnp.asarray(w0))
    assert int(done) == epochs
    return np.asarray(w)


def working_set_block(form):
    """One working-set problem w'Hw/2 - b'w + sum(lam |w|) as a _lasso._Block of ``form``,
    with H, b, lam and a start w0. 10 coordinates; coordinate 3 has a zero column and l2
    (diag 0: held at zero); the sparse columns are centred implicitly, except in
    "sparse-uncentred" (the solver's path without an intercept: no centring state).
    "sparse-few": few non-zeros per column (the couplings found by comparing rows, not by
    densifying)."""
    rng = np.random.default_rng(0)
    n, K = (30, 10) if form != "sparse-few" else (200, 10)
    A_s = np.where(
        rng.random((n, K)) < (0.3 if n == 30 else 0.03), rng.standard_normal((n, K)), 0.0
    )
    A_s[:, 3] = 0.0
    mean = np.where(np.arange(K) == 3, 0.0, 0.1 * rng.standard_normal(K))
    centred = form != "sparse-uncentred"
    mean = mean if centred else np.zeros(K)
    form, sparse = form.split("-")[0], form.startswith("sparse")
    A = A_s - mean if sparse else A_s
    l2 = np.where(np.arange(K) == 3, 0.0, 0.05 + 0.1 * rng.random(K))
    y = rng.standard_normal(n)
    H, b = A.T @ A / n + np.diag(l2), A.T @ y / n
    lam = 0.2 * np.abs(b).max() * rng.random(K)
    w0 = np.where(np.arange(K) == 3, 0.0, rng.standard_normal(K))
    rows, vals = padded_columns(A_s)
    assert not sparse or (rows.shape[1] ** 2 <= n) == (n == 200)  # both ways of coupling
    diag, l2j, nj = jnp.asarray(np.diag(H)), jnp.asarray(l2), jnp.asarray(float(n))
    blk = {
        "gram": _lasso._Block("gram", diag, H=jnp.asarray(H), bvec=jnp.asarray(b)),
        "residual": _lasso._Block("residual", diag, At=jnp.asarray(A.T), y=jnp.asarray(y), n=nj, l2=l2j),
        "sparse": _lasso._Block(
            "sparse", diag, rows=jnp.asarray(rows), vals=jnp.asarray(vals), mean=jnp.asarray(mean),
            colsum=jnp.asarray(A_s.sum(0)), y=jnp.asarray(y), n=nj, l2=l2j, centred=centred,
        ),
    }[form]  # fmt: skip
    return blk, H, b, lam, w0


@pytest.mark.parametrize("form", FORMS)
def test_blocked_coordinate_descent_equals_cyclic_coordinate_descent(x64, form):
    # _cd updates `_UNROLL` coordinates per loop step through their Gram block: the iterates
    # must be those of plain cyclic coordinate descent (the last block revisits 6 and 7)
    blk, H, b, lam, w0 = working_set_block(form)
    order = list(range(8)) + [6, 7, 8, 9]
    assert _lasso._UNROLL == 4
    epochs = 3  # before the first Anderson step
    want = np_cyclic_cd(H, b, lam, w0, order, epochs)
    np.testing.assert_allclose(cd_epochs(blk, lam, w0, epochs), want, atol=1e-12)


@pytest.mark.parametrize("form", [f for f in FORMS if f != "gram"])
def test_the_residual_the_sweeps_keep_up_is_the_product_the_certificate_reads(x64, form):
    # the outer loop certifies from the inner solver's residual (no product X w): after
    # sweeps and an Anderson step (epoch 6) it must still be A w, with A's centring
    blk, _, _, lam, w0 = working_set_block(form)
    run = jax.jit(lambda w: _lasso._cd(blk, w, jnp.asarray(lam), lambda w, st: False, 8))
    w, _, st = run(jnp.asarray(w0))
    if blk.form == "residual":
        A = np.asarray(blk.At).T
    else:
        A = np.zeros((blk.y.shape[0], blk.rows.shape[0]))
        for j, (r, v) in enumerate(zip(np.asarray(blk.rows), np.asarray(blk.vals), strict=True)):
            np.add.at(A[:, j], r[v != 0], v[v != 0])
        A = A - np.asarray(blk.mean)
    want = A @ np.asarray(w)
    np.testing.assert_allclose(_lasso._block_product(blk, st), want, rtol=1e-12, atol=1e-12)


def very_sparse_block(centred, n=200, K=48, seed=1):
    """A sparse working-set block of columns with ~3 non-zeros in n rows, so that many of them
    share no row (row-disjoint blocks: span 32), as _inner_squared builds it: centred means
    colsum / n and a centred y when ``centred``. Returns the block, the (centred) columns A,
    y, lam and a start w0; column 5 is empty (held at zero)."""
    rng = np.random.default_rng(seed)
    A_s = np.where(rng.random((n, K)) < 3 / n, rng.standard_normal((n, K)), 0.0)
    A_s[:, 5] = 0.0
    A_s[rng.integers(0, n, 4), 7] = 1.0  # one wider column
    mean = A_s.mean(0) if centred else np.zeros(K)
    y = rng.standard_normal(n)
    y = y - y.mean() if centred else y
    A = A_s - mean
    rows, vals = padded_columns(A_s)
    l2 = 0.01
    lam = 0.3 * np.abs(A.T @ y / n).max() * rng.random(K)
    w0 = np.where(np.arange(K) == 5, 0.0, rng.standard_normal(K))
    blk = _lasso._Block(
        "sparse", jnp.asarray((A**2).sum(0) / n + l2 * (np.arange(K) != 5)), rows=jnp.asarray(rows),
        vals=jnp.asarray(vals), mean=jnp.asarray(mean), colsum=jnp.asarray(A_s.sum(0)),
        y=jnp.asarray(y), n=jnp.asarray(float(n)), l2=l2, span=32, centred=centred,
    )  # fmt: skip
    return blk, A, y, lam, w0


def test_row_disjoint_sweep_is_cyclic_descent_in_block_order(x64):
    # uncentred columns of a block share no row: updating them at once is updating them in turn
    blk, A, y, lam, w0 = very_sparse_block(centred=False)
    assert blk.span >= _lasso._DISJOINT_FROM
    n, K = A.shape
    order, starts, lens, count = _lasso._disjoint_blocks(
        blk.rows, blk.vals != 0, blk.diag > 0, n, blk.span
    )
    order = [int(j) for j in np.asarray(order) if j < K]
    assert int(count) < K // 4  # blocks of several columns, not one at a time
    l2 = np.where(np.arange(K) == 5, 0.0, blk.l2)
    H, b = A.T @ A / n + np.diag(l2), A.T @ y / n
    epochs = 3  # before the first Anderson step
    want = np_cyclic_cd(H, b, lam, w0, order, epochs)
    np.testing.assert_allclose(cd_epochs(blk, lam, w0, epochs), want, atol=1e-12)


def test_row_disjoint_sweep_of_centred_columns_descends_to_the_centred_minimum(x64):
    # centred columns share their means: each block is minimized with the intercept held, then
    # the intercept; the centred objective must fall at every epoch and reach its minimum
    blk, A, y, lam, w0 = very_sparse_block(centred=True)
    n, K = A.shape
    l2 = np.where(np.arange(K) == 5, 0.0, blk.l2)

    def objective(w):
        r = A @ w - y
        return r @ r / (2 * n) + l2 @ w**2 / 2 + lam @ np.abs(w)

    def after(epochs):
        return cd_epochs(blk, lam, w0, epochs)

    values = [objective(w0)] + [objective(after(e)) for e in range(1, 6)]
    assert all(b < a for a, b in zip(values, values[1:], strict=False)), values
    # the iterates: block descent on |A_s w - s - y|^2 / (2n) + ... in (w, intercept s), each
    # block's columns (which share no row) minimized at once with s held, then s = mean . w
    A_s = A + np.asarray(blk.mean)
    order, starts, lens, count = (
        np.asarray(a) for a in _lasso._disjoint_blocks(blk.rows, blk.vals != 0, blk.diag > 0, n, 32)
    )
    w = w0.copy()
    for _ in range(3):
        for start, size in zip(starts[: int(count)], lens[: int(count)], strict=True):
            J = order[start : start + size]
            s = np.asarray(blk.mean) @ w
            curv = (A_s[:, J] ** 2).sum(0) / n + l2[J]
            z = w[J] - (A_s[:, J].T @ (A_s @ w - s - y) / n + l2[J] * w[J]) / curv
            w[J] = np.sign(z) * np.maximum(np.abs(z) - lam[J] / curv, 0.0)
    np.testing.assert_allclose(after(3), w, atol=1e-12)
    H, b = A.T @ A / n + np.diag(l2), A.T @ y / n
    ref = np_cyclic_cd(H, b, lam, w0, range(K), 3000)
    assert_same_solution(after(400), ref, rtol=1e-10)


@settings(max_examples=40)
@given(
    n_rows=st.integers(1, 40),
    K=st.integers(1, 30) | st.sampled_from([40, 64]),  # 8 B or more: later rounds compacted
    width=st.integers(1, 5),
    B=st.sampled_from([1, 4, 32]),
    hashed=st.booleans(),
    data=st.data(),
)
def test_disjoint_blocks_partition_the_live_columns_into_blocks_sharing_no_row(
    n_rows, K, width, B, hashed, data
):
    rows = data.draw(hnp.arrays(np.int32, (K, width), elements=st.integers(0, n_rows)))
    used = data.draw(hnp.arrays(np.bool_, (K, width))) & (rows < n_rows)
    live = data.draw(hnp.arrays(np.bool_, (K,)))
    table = 1 if hashed else _lasso._BLOCK_TABLE  # hashed: collisions may only defer a column
    with mock.patch.object(_lasso, "_BLOCK_TABLE", table):
        order, starts, lens, count = (
            np.asarray(a) for a in _lasso._disjoint_blocks(rows, used, live, n_rows, B)
        )
    count = int(count)
    placed = [int(j) for j in order if j < K]
    assert placed == [int(j) for j in order[: len(placed)]]  # the live ones first, then K
    assert sorted(placed) == np.flatnonzero(live).tolist()
    lens, starts = lens[:count], starts[:count]
    assert np.all((lens >= 0) & (lens <= B)) and lens.sum() == len(placed)
    np.testing.assert_array_equal(starts, np.cumsum(lens) - lens)  # consecutive blocks
    for start, size in zip(starts, lens, strict=True):
        hit = np.concatenate([rows[j][used[j]] for j in order[start : start + size]] + [[]])
        columns = [set(rows[j][used[j]].tolist()) for j in order[start : start + size]]
        assert len(set(hit.tolist())) == sum(len(c) for c in columns)  # no row twice


def test_very_sparse_design_takes_row_disjoint_blocks_and_matches_sklearn(x64):
    # ~1.5 non-zeros per column in 300 rows: the inner solver's row-disjoint blocks (span 32);
    # lasso with and without intercept and the elastic net, past the first capacity
    n, p = 300, 1500
    Xs = sp.random(n, p, density=0.005, random_state=5, format="csc")
    assert _lasso._block_span(n, Xs.nnz, p) >= _lasso._DISJOINT_FROM
    rng = np.random.default_rng(5)
    w_true = np.zeros(p)
    w_true[rng.choice(p, 100, replace=False)] = rng.standard_normal(100) * 2
    y = Xs @ w_true + 0.05 * rng.standard_normal(n) + 1.0
    alpha = 0.05 * np.abs(Xs.T @ (y - y.mean())).max() / n
    for fit_intercept in (False, True):
        _, info = assert_lasso_and_elastic_net_match_sklearn(Xs, y, alpha, fit_intercept)
        assert int(info.ws_size) > 128


@pytest.mark.parametrize("form", FORMS)
def test_support_step_solves_the_support_system_in_every_form(x64, form):
    # the exact step on the support S of w, signs fixed: H_SS x_S = b_S - lam_S sign(w_S);
    # lam is chosen so that x is a given point of w's signs, so the step lands on x
    blk, H, b, _, _ = working_set_block(form)
    S = np.array([0, 2, 5, 6, 9])
    x = np.zeros(10)
    x[S] = [0.7, -1.2, 0.4, -0.3, 2.0]
    lam = np.zeros(10)
    lam[S] = np.sign(x[S]) * (b[S] - H[np.ix_(S, S)] @ x[S])
    w = x + 0.1 * np.sign(x)
    step = jax.jit(lambda w: _lasso._block_newton(blk, w, jnp.asarray(lam), cap=8))
    np.testing.assert_allclose(np.asarray(step(jnp.asarray(w))), x, atol=1e-12)


_smallest = jax.jit(_lasso._smallest, static_argnums=2)


@settings(max_examples=60)
@given(
    score=hnp.arrays(
        np.float64,
        st.sampled_from([5, 40, 600]),  # a sort up to _SORT_BELOW features, bisection above
        elements=st.sampled_from([-np.inf, np.inf, -1.5, 0.0, -0.0, 2.0]) | st.floats(-3, 3),
    ),  # fmt: skip
    data=st.data(),
)
def test_working_set_selection_takes_the_smallest_scores_ties_by_index(score, data):
    p = score.shape[0]
    K = data.draw(st.sampled_from([1, p // 2, p]))  # few shapes: few compilations
    size = data.draw(st.integers(1, K))
    with jax.enable_x64(True):
        idx = np.asarray(_smallest(jnp.asarray(score), jnp.int32(size), K))
    assert idx.shape == (K,) and len(set(idx.tolist())) == K and idx.min() >= 0 and idx.max() < p
    # ascending bfloat16 scores, ties by index, -0.0 before 0.0 (as _order_key orders their bits)
    rounded = score.astype(np.float32).astype(jnp.bfloat16).astype(np.float32)
    expected = np.lexsort((np.arange(p), np.signbit(rounded) == 0, rounded))[:size]
    np.testing.assert_array_equal(np.sort(idx[:size]), np.sort(expected))


def test_jit_and_vmap_over_strengths(x64):
    X, y, _ = make_regression(30, 12, seed=8)
    y = y - y.mean()
    alphas = jnp.array([0.5, 0.1, 0.02])
    solve = jax.jit(lambda a: lasso(X, y, a, tol=1e-12)[0])
    batched = jax.vmap(solve)(alphas)
    for a, w in zip(np.asarray(alphas), np.asarray(batched), strict=True):
        assert_same_solution(w, Lasso(alpha=a, fit_intercept=False, **SK).fit(X, y).coef_)


def test_design_passes_an_x_needing_no_cast_or_centring_through_uncopied(x64):
    # a jit output that is an input is a copy (80 MB for 10000 x 1000): _design leaves X out
    # unless it casts or centres it; with a Gram matrix the column norms are its diagonal
    X, y, _ = make_regression(40, 6, seed=3)
    X = X + 2.0
    opts = dict(loss="squared", l2reg=0.0, weights=None, tol=1e-6, max_iter=5, max_epochs=5)
    Xj = jnp.asarray(X)
    for fit_intercept, gram in ((False, False), (False, True), (True, False), (True, True)):
        plan = _lasso._prepare(
            "lasso", Xj, y, fit_intercept=fit_intercept, gram=gram, num_strengths=1, **opts
        )
        data = _lasso._designed(plan)[1]
        assert (data.X is Xj) == (not fit_intercept)
        Xc = X - X.mean(axis=0) if fit_intercept else X
        np.testing.assert_allclose(np.asarray(data.X), Xc, rtol=0, atol=1e-13)
        np.testing.assert_allclose(np.asarray(data.colsq), np.sum(Xc**2, axis=0), rtol=1e-13)
    cast = _lasso._designed(
        _lasso._prepare(
            "lasso", Xj.astype(jnp.float32), y, fit_intercept=False, gram=False,
            num_strengths=1, **opts,
        )
    )[1]  # fmt: skip
    assert cast.X.dtype == jnp.float64


def test_gram_formed_by_the_host_matches_the_traced_xla_gram(x64):
    # a concrete X on the CPU has X^T X formed by NumPy; a traced X by XLA: the same path
    X, y, _ = make_regression(60, 8, seed=9)
    X = X + 5.0  # far from centred: the centring must come before the product
    Xc = X - X.mean(axis=0)
    np.testing.assert_allclose(_lasso._host_gram(jnp.asarray(X), np.float64, True), Xc.T @ Xc)
    assert _lasso._host_gram(jsparse.BCOO.fromdense(X), np.float64, True) is None
    seen = []
    jax.jit(lambda X: seen.append(_lasso._host_gram(X, np.float64, True)) or X)(X)
    assert seen == [None]  # a traced X: XLA forms it
    alphas = np.abs(Xc.T @ (y - y.mean())).max() / 60 * np.array([0.5, 0.1, 0.01])
    opts = dict(gram=True, fit_intercept=True, tol=1e-13)
    host, _ = lasso_path(X, y, alphas, **opts)
    traced = jax.jit(lambda X: lasso_path(X, y, alphas, **opts)[0])(X)
    np.testing.assert_allclose(host, traced, rtol=0, atol=1e-9)
    ref = sk_lasso_path(Xc, y - y.mean(), alphas=alphas, **SK)[1].T
    for w, w_ref in zip(np.asarray(host), ref, strict=True):
        assert_same_solution(w, w_ref)


def test_float32_keeps_dtype():
    X, y, _ = make_regression(30, 12, seed=9)
    alpha = 0.1 * np.abs(X.T @ (y - y.mean())).max() / 30
    ref = Lasso(alpha=alpha, fit_intercept=True, **SK).fit(X, y).coef_
    w, info = lasso(X.astype(np.float32), y.astype(np.float32), alpha, fit_intercept=True, tol=1e-5)
    assert w.dtype == jnp.float32 and info.gap.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(w), ref, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(l1reg=-0.1), ValueError, r"lasso\(l1reg=\.\.\.\).*-0\.1"),
        (dict(l1reg=np.ones(3)), ValueError, r"lasso\(l1reg=\.\.\.\)` must be a scalar"),
        (dict(loss="hinge"), ValueError, r"lasso\(loss=\.\.\.\).*hinge"),
        (dict(y=np.ones(7)), ValueError, r"lasso\(y=\.\.\.\).*\(8,\)"),
        (dict(X=np.ones(8)), ValueError, r"lasso\(X=\.\.\.\)` must be 2-D"),
        (dict(weights=np.ones(4)), ValueError, r"lasso\(weights=\.\.\.\).*\(3,\)"),
        (dict(weights=-np.ones(3)), ValueError, r"lasso\(weights=\.\.\.\)"),
        (dict(l2reg=-1.0), ValueError, r"lasso\(l2reg=\.\.\.\)"),
        (dict(tol=float("nan")), ValueError, r"lasso\(tol=\.\.\.\)"),
        (dict(max_iter=0), ValueError, r"lasso\(max_iter=\.\.\.\)"),
        (dict(fit_intercept="yes"), TypeError, r"lasso\(fit_intercept=\.\.\.\)"),
        (dict(y_nan=True), ValueError, r"lasso.*finite"),
        (dict(loss="logistic"), ValueError, r"lasso\(y=\.\.\.\).*binary"),
        (dict(gram=True, loss="logistic", y=np.sign(np.arange(8) - 3.5)), ValueError, r"gram"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, exc, match):
    X = kwargs.pop("X", np.arange(24.0).reshape(8, 3))
    y = kwargs.pop("y", np.arange(8.0))
    if kwargs.pop("y_nan", False):
        y = y.copy()
        y[0] = np.nan
    l1reg = kwargs.pop("l1reg", 0.1)
    with pytest.raises(exc, match=match):
        lasso(X, y, l1reg, **kwargs)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e200])
@pytest.mark.parametrize(
    "form", ["dense", "gram", "centred", "sparse", "sparse centred", "logistic"]
)
def test_non_finite_or_overflowing_x_raises_in_every_form(x64, form, bad):
    # read off X's column sums of squares: NaN/inf anywhere shows there, and so does an entry
    # whose square overflows (1e200), which would make the iterates NaN
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 4))
    y = np.sign(rng.standard_normal(12)) if form == "logistic" else rng.standard_normal(12)
    loss = "logistic" if form == "logistic" else "squared"
    opts = dict(gram=form == "gram", fit_intercept="centred" in form, loss=loss)
    as_design = sp.csc_matrix if "sparse" in form else np.asarray
    w, info = lasso(as_design(X), y, 0.01, **opts)
    assert bool(info.converged) and np.all(np.isfinite(np.asarray(w)))
    X[5, 1] = bad
    with pytest.raises(ValueError, match=r"lasso.*finite.*overflow"):
        lasso(as_design(X), y, 0.01, **opts)


def test_overflowing_y_raises(x64):
    X, y = np.eye(3), np.array([1.0, 2e200, 0.0])
    with pytest.raises(ValueError, match=r"lasso.*finite.*overflow"):
        lasso(X, y, 0.1)


def test_path_bad_strengths():
    X, y = np.ones((4, 2)), np.ones(4)
    with pytest.raises(ValueError, match=r"lasso_path\(l1regs=\.\.\.\).*1-D"):
        lasso_path(X, y, 0.5)
    with pytest.raises(ValueError, match=r"lasso_path\(l1regs=\.\.\.\).*-0\.5"):
        lasso_path(X, y, [1.0, -0.5])


def test_public_names_are_exported():
    for name in ("lasso", "lasso_path", "LassoInfo"):
        assert name in l1optax.__all__ and hasattr(l1optax, name)


def test_lasso_cv_picks_the_same_alpha_as_lassocv_on_diabetes(x64):
    from sklearn.linear_model import LassoCV

    X, y = load_diabetes(return_X_y=True)
    # a 30-point grid (LassoCV's default is 100): the same check, a third of the work
    ref = LassoCV(cv=5, alphas=30, tol=1e-12, max_iter=10**6).fit(X, y)
    alpha, info = l1optax.lasso_cv(X, y, num=30, folds=5, tol=1e-12)
    np.testing.assert_allclose(np.asarray(info.l1regs), ref.alphas_, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(info.mse_path), ref.mse_path_, rtol=1e-6)
    assert float(alpha) == pytest.approx(ref.alpha_, rel=1e-12)
    assert bool(info.converged)
    assert_same_solution(info.coef, ref.coef_)
    np.testing.assert_allclose(float(info.intercept), ref.intercept_, rtol=1e-8)


def test_lasso_cv_bad_folds():
    with pytest.raises(ValueError, match=r"lasso_cv\(folds=\.\.\.\)"):
        l1optax.lasso_cv(np.ones((6, 2)), np.arange(6.0), folds=1)
    with pytest.raises(ValueError, match=r"lasso_cv\(folds=\.\.\.\).*at most"):
        l1optax.lasso_cv(np.ones((6, 2)), np.arange(6.0), folds=7)


def test_hypergradient_equals_central_finite_differences(x64, caplog):
    # implicit differentiation (optimality condition on the support) through lasso / lasso_path,
    # w.r.t. the strength, the ridge strength and the data: central differences within 1e-6
    # (the shapes of the other tests: their compiled programs are reused)
    X, y, w_true = make_regression(*SHAPE, seed=10)
    Xv = np.random.default_rng(0).standard_normal((20, SHAPE[1]))
    yv = Xv @ w_true
    opts = dict(fit_intercept=True, tol=1e-16, max_iter=4, max_epochs=60)

    def held_out(alpha, l2=0.05, X=X, y=y):
        w, info = lasso(X, y, alpha, l2reg=l2, **opts)
        return jnp.mean((Xv @ w + info.intercept - yv) ** 2)

    def central(f, h=1e-5):
        return (float(f(h)) - float(f(-h))) / (2 * h)

    a = 0.1 * np.abs(X.T @ (y - y.mean())).max() / SHAPE[0]
    w_a = np.asarray(lasso(X, y, a, l2reg=0.05, **opts)[0])
    j = int(np.flatnonzero(w_a)[0])  # perturb a column in the support
    e_x = np.zeros_like(X)
    e_x[2, j] = 1.0
    e_y = np.eye(SHAPE[0])[3]
    with jax.log_compiles(True), caplog.at_level(logging.WARNING):
        g_alpha = jax.grad(held_out)(a)
        g_X, g_y = jax.grad(lambda X, y: held_out(a, X=X, y=y), argnums=(0, 1))(
            jnp.asarray(X), jnp.asarray(y)
        )
    # the gradients run the solver's program compiled for the plain call above
    assert not [r for r in caplog.records if "Compiling jit(_design_and_solve)" in r.getMessage()]
    checks = [
        (g_alpha, central(lambda h: held_out(a + h))),
        (g_y[3], central(lambda h: held_out(a, y=y + h * e_y))),
        (g_X[2, j], central(lambda h: held_out(a, X=X + h * e_x))),
    ]
    for got, want in checks:
        assert abs(want) > 1e-6  # a real dependence
        np.testing.assert_allclose(float(got), want, rtol=1e-6)
    # forward mode through a path (diabetes, the grid of the path test): d coefs / d t for
    # strengths t * grid
    Xd, yd = load_diabetes(return_X_y=True)
    yd = yd - yd.mean()
    alpha_max = np.abs(Xd.T @ yd).max() / Xd.shape[0]
    grid = np.geomspace(alpha_max, 1e-3 * alpha_max, 100)

    def path(t):
        return lasso_path(Xd, yd, t * grid, tol=1e-13)[0]

    t0 = 0.99  # t = 1 puts the first strength at alpha_max, a kink of the path
    tangent = jax.jvp(path, (t0,), (1.0,))[1]
    fd = (np.asarray(path(t0 + 1e-5)) - np.asarray(path(t0 - 1e-5))) / 2e-5
    np.testing.assert_allclose(np.asarray(tangent), fd, rtol=0, atol=1e-6 * np.abs(fd).max())


@pytest.mark.parametrize("fit_intercept", [False, True], ids=["no_intercept", "intercept"])
def test_logistic_hypergradient_equals_central_finite_differences(x64, fit_intercept):
    # implicit differentiation of L1 logistic regression (optimality condition on the support
    # and the intercept): d/d alpha, d/d l2reg and d/d X of a held-out loss, within 1e-6
    X, y = logistic_data(80, 20)
    Xv = np.random.default_rng(2).standard_normal((10, 20))
    opts = dict(loss="logistic", fit_intercept=fit_intercept, tol=1e-15, max_iter=8)

    def held_out(alpha, l2=0.01, X=X):
        w, info = lasso(X, y, alpha, l2reg=l2, **opts)
        return jnp.sum(jnp.logaddexp(0.0, -(Xv @ w + info.intercept)))

    def central(f, h=1e-6):
        return (float(f(h)) - float(f(-h))) / (2 * h)

    a, e_x = 0.03, np.zeros_like(X)
    e_x[5, 2] = 1.0
    g_alpha, g_l2 = jax.grad(held_out, argnums=(0, 1))(a, 0.01)
    g_X = jax.grad(lambda X: held_out(a, X=X))(jnp.asarray(X))
    checks = [
        (g_alpha, central(lambda h: held_out(a + h))),
        (g_l2, central(lambda h: held_out(a, 0.01 + h))),
        (g_X[5, 2], central(lambda h: held_out(a, X=X + h * e_x))),
    ]
    for got, want in checks:
        assert abs(want) > 1e-4  # a real dependence, not a zero matched by a zero
        np.testing.assert_allclose(float(got), want, rtol=1e-6)


def test_logistic_near_rounding_tolerance_neither_stalls_nor_runs_to_max_epochs(x64):
    # at tol = 1e-15 the last Newton steps promise decreases below the objective's rounding
    # and their models' gradients are known to rounding only: the line search must take
    # the step (not stall at gap ~1e-9) and the model solve stop (not run max_epochs)
    X, y = logistic_data(80, 20)
    for h in (-1e-6, 0.0, 1e-6, 2e-6):
        X_h = X.copy()
        X_h[5, 2] += h
        _, info = lasso(X_h, y, 0.03, l2reg=0.01, loss="logistic", tol=1e-15, max_iter=8)
        assert float(info.gap) <= 1e-14 * float(info.primal), h
        assert int(info.num_inner) < 1000, h
