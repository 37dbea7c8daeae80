"""SPEC 21-22: proximal gradient against scikit-learn's Lasso; Adam with a uniform threshold.

Lasso objective (scikit-learn's): P(w) = 1/(2n) ||y - X w||^2 + alpha ||w||_1. Its dual, with a
feasible point built from the residual r = y - X w rescaled so that ||X^T theta||_inf <= alpha:

    D(theta) = 1/(2n) ||y||^2 - n/2 ||theta - y/n||^2,   theta = s r / n,
    s = min(1, n alpha / ||X^T r||_inf),

and P(w) - D(theta) >= 0 certifies optimality. Both are computed here in float64 NumPy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import least_squares, scan_fit
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Lasso

import l1optax


def lasso_primal(X, y, w, alpha) -> float:
    n = X.shape[0]
    return float(0.5 / n * np.sum((y - X @ w) ** 2) + alpha * np.sum(np.abs(w)))


def lasso_dual(X, y, w, alpha) -> float:
    n = X.shape[0]
    r = y - X @ w
    scale = min(1.0, n * alpha / max(np.max(np.abs(X.T @ r)), 1e-300))
    theta = scale * r / n
    return float(0.5 / n * np.sum(y**2) - 0.5 * n * np.sum((theta - y / n) ** 2))


def relative_gap(X, y, w, alpha) -> float:
    p = lasso_primal(X, y, w, alpha)
    return (p - lasso_dual(X, y, w, alpha)) / p


def sklearn_lasso(X, y, alpha) -> np.ndarray:
    model = Lasso(alpha=alpha, fit_intercept=False, tol=1e-12, max_iter=200_000)
    return model.fit(X, y).coef_


def synthetic(seed=0, n=200, d=20):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w_true = np.zeros(d)
    w_true[:6] = rng.normal(scale=2.0, size=6)
    y = X @ w_true + 0.5 * rng.normal(size=n)
    return X, y


def diabetes():
    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)  # unit-variance columns
    return X, y - y.mean()


def fit_full_batch(tx, X, y, steps, dtype):
    """Full-batch training loop of ``tx`` on 1/2 mean((Xw - y)^2), one jitted scan."""
    grad = jax.grad(least_squares(jnp.asarray(X, dtype), jnp.asarray(y, dtype)))
    return scan_fit(tx, jnp.zeros(X.shape[1], dtype), grad, steps)


# --- SPEC 21 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "problem, alpha, steps",
    [("synthetic", 0.3, 3000), ("synthetic", 0.05, 3000), ("diabetes", 5.0, 30000)],
    ids=["synthetic-0.3", "synthetic-0.05", "diabetes-5"],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_proximal_gradient_matches_sklearn_lasso(problem, alpha, steps, dtype):
    X, y = synthetic() if problem == "synthetic" else diabetes()
    n = X.shape[0]
    lr = 1.0 / (np.linalg.eigvalsh(X.T @ X / n).max())  # 1/L
    tx = optax.chain(optax.sgd(lr), l1optax.apply_l1_prox(lr, alpha))
    with jax.enable_x64(dtype == "float64"):
        w, _ = fit_full_batch(tx, X, y, steps, jnp.dtype(dtype))
        w = np.asarray(w, np.float64)
    w_sk = sklearn_lasso(X, y, alpha)

    assert relative_gap(X, y, w_sk, alpha) <= 1e-10  # the oracle itself is converged
    assert np.max(np.abs(w - w_sk)) <= 1e-4
    np.testing.assert_array_equal(w == 0.0, w_sk == 0.0)  # identical support, exact zeros
    assert 0 < np.sum(w == 0.0) < w.size  # a non-trivial support
    assert relative_gap(X, y, w, alpha) <= 1e-5


def test_with_l1_and_inject_hyperparams_reach_the_same_solution(x64):
    X, y = synthetic(seed=1)
    alpha = 0.2
    lr = 1.0 / (np.linalg.eigvalsh(X.T @ X / X.shape[0]).max())
    tx = optax.inject_hyperparams(
        lambda learning_rate, l1reg: l1optax.with_l1(
            optax.sgd(learning_rate), l1reg, learning_rate=learning_rate
        )
    )(learning_rate=lr, l1reg=alpha)
    w, _ = fit_full_batch(tx, X, y, 3000, jnp.float64)
    w = np.asarray(w)
    w_sk = sklearn_lasso(X, y, alpha)
    assert np.max(np.abs(w - w_sk)) <= 1e-8
    np.testing.assert_array_equal(w == 0.0, w_sk == 0.0)
    assert relative_gap(X, y, w, alpha) <= 1e-12


def test_penalty_value_matches_the_objective(x64):
    """l1_penalty plus the loss is scikit-learn's objective at its solution."""
    X, y = synthetic(seed=2)
    alpha = 0.3
    w_sk = sklearn_lasso(X, y, alpha)
    ours = 0.5 * np.mean((y - X @ w_sk) ** 2) + float(l1optax.l1_penalty(jnp.asarray(w_sk), alpha))
    np.testing.assert_allclose(ours, lasso_primal(X, y, w_sk, alpha), rtol=1e-14)


# --- SPEC 22 (uniform-threshold half) --------------------------------------------------------


def test_adam_with_uniform_threshold_solves_a_preconditioner_weighted_lasso(x64):
    """``chain(adam(lr), apply_l1_prox(lr, lam))`` converges, but not to the lasso with strength lam.

    At a fixed point of the Adam + soft-threshold iteration (full batch, so m_hat -> g and
    v_hat -> g^2), 0 is in g / (sqrt(v_hat) + eps) + lam * d|w|: the KKT conditions of the
    weighted lasso  f(w) + lam * sum_i (sqrt(v_hat_i) + eps) |w_i|.  With v_hat = g^2 this gives
    |g_i| = lam * eps / (1 - lam) on the support, i.e. the plain lasso with
    alpha' = lam * eps / (1 - lam), whatever lam was asked for.
    """
    X, y = synthetic()
    lam, eps, lr = 0.5, 0.05, 0.02
    tx = optax.chain(optax.adam(lr, b2=0.99, eps=eps), l1optax.apply_l1_prox(lr, lam))
    w, state = fit_full_batch(tx, X, y, 20000, jnp.float64)
    w = np.asarray(w)

    # 1. it is not scikit-learn's lasso at alpha = lam: far off, and much less sparse
    w_sk = sklearn_lasso(X, y, lam)
    assert np.max(np.abs(w - w_sk)) > 0.1
    assert np.sum(w == 0.0) < np.sum(w_sk == 0.0)
    assert relative_gap(X, y, w, lam) > 1e-2

    # 2. it is the fixed point of the sqrt(v_hat) + eps weighted lasso, with Adam's own v_hat
    adam_state = state[0][0]
    v_hat = np.asarray(adam_state.nu) / (1 - 0.99 ** int(adam_state.count))
    c = np.sqrt(v_hat) + eps
    u = sklearn_lasso(X / c, y, lam)  # substitute w = u / c: weights c_i become unit weights
    w_weighted = u / c
    assert np.max(np.abs(w - w_weighted)) <= 1e-6
    np.testing.assert_array_equal(w == 0.0, w_weighted == 0.0)

    # 3. ... which in the full-batch limit is the plain lasso at alpha' = lam * eps / (1 - lam)
    w_alpha = sklearn_lasso(X, y, lam * eps / (1 - lam))
    assert np.max(np.abs(w - w_alpha)) <= 1e-6
    np.testing.assert_array_equal(w == 0.0, w_alpha == 0.0)
    assert relative_gap(X, y, w, lam * eps / (1 - lam)) <= 1e-8
