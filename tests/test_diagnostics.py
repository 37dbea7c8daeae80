"""kkt_violation, lasso_duality_gap and sparsity against NumPy float64 and scikit-learn."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.linear_model import Lasso

from l1optax import kkt_violation, lasso_duality_gap, sparsity


def np_kkt(g, w, lam):
    at_zero = np.maximum(np.abs(g) - lam, 0)
    off_zero = np.abs(g + lam * np.sign(w))
    return np.max(np.where(w == 0, at_zero, off_zero), initial=0.0)


def make_problem(seed=0, n=40, p=15):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    w = np.zeros(p)
    w[:4] = [1.0, -2.0, 0.5, 3.0]
    return X, X @ w + 0.1 * rng.standard_normal(n)


# ------------------------------------------------------------------------------------------------
# kkt_violation


def test_kkt_violation_matches_numpy_reference(maybe_jit, rng):
    w = rng.standard_normal(50).astype(np.float32)
    w[::3] = 0.0
    g = rng.standard_normal(50).astype(np.float32)
    lam = 0.7
    got = maybe_jit(kkt_violation)(jnp.asarray(g), jnp.asarray(w), lam)
    assert got.dtype == jnp.float32 and got.shape == ()
    ref = np_kkt(g.astype(np.float64), w.astype(np.float64), lam)
    np.testing.assert_allclose(float(got), ref, rtol=1e-6)


def test_kkt_violation_is_zero_at_sklearn_solution(x64):
    X, y = make_problem()
    alpha = 0.1 * np.abs(X.T @ y).max() / 40
    w = Lasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=10**6).fit(X, y).coef_
    g = X.T @ (X @ w - y) / 40
    assert float(kkt_violation(jnp.asarray(g), jnp.asarray(w), alpha)) <= 1e-10
    # and clearly positive at a non-optimal point
    assert float(kkt_violation(jnp.asarray(g), jnp.asarray(w + 0.1), alpha)) > 1e-3


def test_kkt_violation_pytree_mask_and_per_coordinate(rng):
    params = {"w": jnp.asarray([0.0, 1.0, -2.0]), "b": jnp.asarray(0.5), "skip": None}
    grads = {"w": jnp.asarray([0.3, -0.4, 0.9]), "b": jnp.asarray(-0.25), "skip": None}
    lam = {"w": jnp.asarray([0.5, 0.4, 1.0]), "b": 1.0, "skip": None}
    # w: [max(0.3-0.5,0)=0, |-0.4+0.4|=0, |0.9-1.0|=0.1]; b masked: |g| = 0.25
    got = kkt_violation(grads, params, lam, mask={"w": True, "b": False, "skip": True})
    np.testing.assert_allclose(float(got), 0.25, rtol=1e-6)
    got = kkt_violation(grads, params, lam)  # b penalized: |-0.25 + 1.0| = 0.75
    np.testing.assert_allclose(float(got), 0.75, rtol=1e-6)
    assert float(kkt_violation({}, {}, 1.0)) == 0.0


def test_kkt_violation_low_precision_and_f64(x64):
    w = jnp.asarray([0.0, 1.5, -0.5], jnp.bfloat16)
    g = jnp.asarray([0.25, -0.5, 0.75], jnp.bfloat16)
    got = kkt_violation(g, w, 0.5)
    assert got.dtype == jnp.float32  # accumulated in >= float32
    np.testing.assert_allclose(float(got), np_kkt(np.float64(g), np.float64(w), 0.5))
    got64 = kkt_violation(jnp.asarray([0.1], jnp.float64), jnp.asarray([0.0], jnp.float64), 0.05)
    assert got64.dtype == jnp.float64
    np.testing.assert_allclose(float(got64), 0.05, rtol=1e-15)


@settings(max_examples=40)
@given(
    w=hnp.arrays(np.float64, 8, elements=st.sampled_from([0.0, -1.5, -0.1, 0.3, 2.0])),
    g=hnp.arrays(np.float64, 8, elements=st.floats(-3, 3)),
    lam=st.floats(0, 2),
)
def test_property_kkt_is_the_distance_to_the_subdifferential(w, g, lam):
    with jax.enable_x64(True):
        got = float(kkt_violation(jnp.asarray(g), jnp.asarray(w), lam))
    assert got >= 0
    np.testing.assert_allclose(got, np_kkt(g, w, lam), rtol=1e-12, atol=1e-15)
    # zero exactly when -g lies in lam * subdifferential(|w|)
    inside = np.all(np.where(w == 0, np.abs(g) <= lam, g == -lam * np.sign(w)))
    assert (got == 0) == inside


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: kkt_violation(jnp.ones(2), jnp.ones(2), -1.0),
            ValueError,
            r"kkt_violation\(l1reg",
        ),
        (lambda: kkt_violation(jnp.ones(3), jnp.ones(2), 1.0), ValueError, r"kkt_violation\(grads"),
        (
            lambda: kkt_violation({"a": jnp.ones(2)}, {"b": jnp.ones(2)}, 1.0),
            ValueError,
            r"kkt_violation\(grads",
        ),
        (lambda: kkt_violation(jnp.ones(2), jnp.ones(2, int), 1.0), TypeError, r"kkt_violation"),
        (
            lambda: kkt_violation(jnp.ones(2), jnp.ones(2), 1.0, mask={"x": True}),
            ValueError,
            r"kkt_violation\(mask",
        ),
    ],
)
def test_kkt_violation_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------------------------------------------------
# lasso_duality_gap


@pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)  # max_iter=3 on purpose
@pytest.mark.parametrize("tol", [1e-1, 1e-3])
def test_duality_gap_equals_sklearn_dual_gap(tol):
    # sklearn reports the gap of its final iterate, in the same 1/(2n) scaling
    X, y = make_problem(seed=1)
    alpha = 0.05 * np.abs(X.T @ y).max() / 40
    model = Lasso(alpha=alpha, fit_intercept=False, tol=tol, max_iter=3).fit(X, y)
    gap = lasso_duality_gap(X, y, model.coef_, alpha)
    assert isinstance(gap, np.floating) and gap > 0
    np.testing.assert_allclose(gap, model.dual_gap_, rtol=1e-10)


def test_duality_gap_bounds_suboptimality_and_vanishes_at_optimum(x64):
    X, y = make_problem(seed=2)
    alpha = 0.1 * np.abs(X.T @ y).max() / 40

    def primal(w):
        return np.sum((y - X @ w) ** 2) / 80 + alpha * np.abs(w).sum()

    w_star = Lasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=10**6).fit(X, y).coef_
    assert abs(lasso_duality_gap(X, y, w_star, alpha)) <= 1e-12 * primal(w_star)
    for w in [np.zeros(15), w_star + 0.05, np.ones(15)]:
        gap = lasso_duality_gap(X, y, w, alpha)
        assert gap >= primal(w) - primal(w_star) - 1e-12  # weak duality
    # traced: the JAX path agrees with the NumPy float64 path
    w = w_star + 0.05
    traced = jax.jit(lasso_duality_gap)(jnp.asarray(X), jnp.asarray(y), jnp.asarray(w), alpha)
    np.testing.assert_allclose(float(traced), lasso_duality_gap(X, y, w, alpha), rtol=1e-12)


def test_duality_gap_is_float64_even_for_float32_inputs():
    X, y = make_problem(seed=3)
    alpha = 0.1
    gap32 = lasso_duality_gap(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32),
                              jnp.zeros(15, jnp.float32), alpha)  # fmt: skip
    ref = lasso_duality_gap(np.float32(X).astype(np.float64), np.float32(y).astype(np.float64),
                            np.zeros(15), alpha)  # fmt: skip
    assert gap32.dtype == np.float64 and gap32 == ref


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.ones((3, 2)), np.ones(4), np.ones(2), 0.1), r"lasso_duality_gap.*y \(4,\)"),
        ((np.ones((3, 2)), np.ones(3), np.ones(3), 0.1), r"lasso_duality_gap.*w \(3,\)"),
        ((np.ones(3), np.ones(3), np.ones(3), 0.1), r"lasso_duality_gap.*X \(3,\)"),
        ((np.ones((3, 2)), np.ones(3), np.ones(2), -0.1), r"lasso_duality_gap\(alpha.*-0\.1"),
    ],
)
def test_duality_gap_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        lasso_duality_gap(*args)


# ------------------------------------------------------------------------------------------------
# sparsity


def test_sparsity_counts_match_numpy(maybe_jit, rng):
    a = rng.standard_normal((4, 5)).astype(np.float32)
    a[a < 0.2] = 0.0
    b = np.zeros(3, np.float32)
    c = rng.standard_normal(7).astype(np.float32)
    params = {"a": jnp.asarray(a), "b": jnp.asarray(b), "c": [jnp.asarray(c), None]}
    s = maybe_jit(sparsity)(params)
    total = np.count_nonzero(a == 0) + 3 + np.count_nonzero(c == 0)
    assert int(s["zeros"]) == total and int(s["size"]) == 20 + 3 + 7
    np.testing.assert_allclose(float(s["fraction"]), total / 30, rtol=1e-6)
    assert set(s["leaves"]) == {"a", "b", "c/0"}
    assert int(s["leaves"]["a"]["zeros"]) == np.count_nonzero(a == 0)
    assert float(s["leaves"]["b"]["fraction"]) == 1.0
    assert int(s["leaves"]["c/0"]["size"]) == 7


def test_sparsity_mask_nan_bf16_and_empty():
    params = {"w": jnp.asarray([0.0, jnp.nan, -0.0, 1.0], jnp.bfloat16), "b": jnp.zeros(5)}
    s = sparsity(params, mask={"w": True, "b": False})
    assert int(s["zeros"]) == 2 and int(s["size"]) == 4  # -0.0 is zero, NaN is not
    assert list(s["leaves"]) == ["w"]
    assert s["fraction"].dtype == jnp.float32
    empty = sparsity({})
    assert int(empty["zeros"]) == 0 and int(empty["size"]) == 0 and float(empty["fraction"]) == 0
    assert float(sparsity(jnp.zeros(4))["leaves"][""]["fraction"]) == 1.0
    with pytest.raises(ValueError, match=r"sparsity\(mask=\.\.\.\)"):
        sparsity(params, mask={"x": True})
