"""elastic_net_penalty and prox_elastic_net: NumPy float64 references, optimality, dtypes, and
the elastic-net optimizers against scikit-learn's ElasticNet."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import assert_trees_bitwise_equal, least_squares, scan_fit
from conftest import rtol_for
from hypothesis import example, given, settings
from sklearn.linear_model import ElasticNet

import l1optax


def _np_prox(x, l1, l2, s):
    return np.sign(x) * np.maximum(np.abs(x) - s * l1, 0.0) / (1.0 + s * l2)


def test_penalty_matches_numpy_and_sklearn_objective(rng):
    params = {"a": rng.standard_normal((3, 4)), "b": [rng.standard_normal(5), None]}
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
    flat = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(params)])
    got = l1optax.elastic_net_penalty(params, 0.3, 0.7)
    np.testing.assert_allclose(got, 0.3 * np.abs(flat).sum() + 0.35 * (flat**2).sum(), rtol=1e-6)
    # sklearn's ElasticNet penalty: alpha*l1_ratio*|w|_1 + 0.5*alpha*(1-l1_ratio)*|w|^2.
    alpha, ratio = 0.8, 0.25
    sk = alpha * ratio * np.abs(flat).sum() + 0.5 * alpha * (1 - ratio) * (flat**2).sum()
    got = l1optax.elastic_net_penalty(params, alpha * ratio, alpha * (1 - ratio))
    np.testing.assert_allclose(got, sk, rtol=1e-6)
    masked = l1optax.elastic_net_penalty(params, 0.3, 0.7, mask={"a": False, "b": True})
    fb = np.asarray(params["b"][0], np.float64)
    np.testing.assert_allclose(masked, 0.3 * np.abs(fb).sum() + 0.35 * (fb**2).sum(), rtol=1e-6)
    assert float(l1optax.elastic_net_penalty({}, 1.0, 1.0)) == 0.0


def test_penalty_gradient_is_zero_at_zero():
    g = jax.grad(lambda w: l1optax.elastic_net_penalty(w, 0.5, 2.0))(jnp.array([0.0, 1.0, -2.0]))
    np.testing.assert_allclose(g, [0.0, 0.5 + 2.0, -0.5 - 4.0])


@settings(max_examples=60)
@given(
    x=hnp.arrays(np.float64, (6,), elements=st.floats(-10, 10, allow_subnormal=False)),
    l1=st.floats(0, 3),
    l2=st.floats(0, 3),
    s=st.floats(0, 2),
)
@example(
    x=np.array([2.2250738585072014e-308] + [0.0] * 5), l1=2.0, l2=0.0, s=1.1125369292536007e-308
)
def test_prox_matches_numpy_and_is_optimal(x, l1, l2, s):
    with jax.enable_x64(True):
        z = np.asarray(l1optax.prox_elastic_net(jnp.asarray(x), (l1, l2), s))
    np.testing.assert_allclose(z, _np_prox(x, l1, l2, s), rtol=1e-12, atol=1e-12)
    # Optimality: x - z - s*l2*z lies in s*l1*subdiff|z|.
    r = x - z - s * l2 * z
    nz = z != 0
    np.testing.assert_allclose(r[nz], s * l1 * np.sign(z[nz]), atol=1e-9)
    assert np.all(np.abs(r[~nz]) <= s * l1 + 1e-9)
    t = s * l1
    # XLA's CPU flushes subnormal operands and results to 0, so the threshold's zero set is
    # exact only where s, l1 and s * l1 are normal numbers (or 0)
    if all(v == 0 or v >= np.finfo(np.float64).tiny for v in (s, l1, t)):
        np.testing.assert_array_equal(z == 0, np.abs(x) <= t)


def test_prox_pytrees_per_coordinate_and_dtypes(float_dtype, maybe_jit):
    x = {"w": jnp.array([[2.0, -0.25], [0.5, -4.0]], float_dtype), "n": None}
    l1 = {"w": jnp.array([[0.5, 0.5], [1.0, 1.0]]), "n": None}
    scaling = {"w": jnp.array([[1.0, 2.0], [0.25, 0.5]]), "n": None}  # a diagonal metric
    z = maybe_jit(lambda x: l1optax.prox_elastic_net(x, (l1, 0.5), scaling))(x)
    assert z["n"] is None and z["w"].dtype == float_dtype
    xs = np.asarray(x["w"], np.float64)
    expected = _np_prox(xs, np.asarray(l1["w"]), 0.5, np.asarray(scaling["w"]))
    np.testing.assert_allclose(
        np.asarray(z["w"], np.float64), expected, rtol=rtol_for(float_dtype), atol=1e-7
    )
    assert float(z["w"][0, 1]) == 0.0  # |x| = 0.25 <= 2 * 0.5: exactly zero


def test_prox_low_precision_threshold_below_resolution():
    # bfloat16 cannot represent 1 + 2**-10; the threshold is applied in float32 first.
    x = jnp.array([1.0, 2.0**-12], jnp.bfloat16)
    z = l1optax.prox_elastic_net(x, (2.0**-11, 0.0), 1.0)
    assert float(z[1]) == 0.0 and z.dtype == jnp.bfloat16


def test_prox_defaults_and_identity():
    x = jnp.array([3.0, -0.5])
    np.testing.assert_allclose(l1optax.prox_elastic_net(x), _np_prox(np.asarray(x), 1, 1, 1))
    np.testing.assert_array_equal(l1optax.prox_elastic_net(x, (0.0, 0.0)), x)


def test_prox_nan_propagates_and_traced_negative_poisons():
    z = l1optax.prox_elastic_net(jnp.array([jnp.nan, 1.0]), (0.1, 0.1))
    assert np.isnan(z[0]) and not np.isnan(z[1])
    z = jax.jit(lambda l2: l1optax.prox_elastic_net(jnp.array([2.0]), (0.1, l2)))(-1.0)
    assert np.isnan(z[0])


@pytest.mark.parametrize(
    "hyper, match",
    [
        ((-0.1, 0.0), r"`prox_elastic_net\(hyperparams\[0\] \(l1reg\)=...\)` must be non-negative"),
        ((0.1, float("nan")), r"hyperparams\[1\] \(l2reg\)=...\)` must be non-negative"),
        (0.5, r"must be a pair \(l1reg, l2reg\), got 0.5"),
        (({"a": 1.0, "b": 1.0}, 0.0), r"must be a scalar or a pytree matching the parameters"),
    ],
)
def test_prox_bad_input(hyper, match):
    with pytest.raises(ValueError, match=match):
        l1optax.prox_elastic_net({"w": jnp.ones(2)}, hyper)


def test_bad_input_penalty_and_scaling():
    with pytest.raises(ValueError, match=r"`elastic_net_penalty\(l2reg=...\)` must be non-neg"):
        l1optax.elastic_net_penalty(jnp.ones(2), 1.0, -1.0)
    with pytest.raises(ValueError, match=r"`prox_elastic_net\(scaling=...\)`"):
        l1optax.prox_elastic_net(jnp.ones(2), (1.0, 1.0), -1.0)
    with pytest.raises(TypeError, match=r"leaf \['i'\] has dtype int32"):
        l1optax.elastic_net_penalty({"i": jnp.ones(2, jnp.int32)}, 1.0, 1.0)


# --------------------------------------------------------------------------------------------
# The elastic-net optimizers reach scikit-learn's ElasticNet.
# --------------------------------------------------------------------------------------------


def _problem():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((70, 10))
    w = np.zeros(10)
    w[:4] = [2.0, -1.5, 1.0, 0.5]
    return X, X @ w + 0.3 * rng.standard_normal(70)


def _full_batch(tx, X, y, steps):
    w0 = jnp.zeros(X.shape[1], jnp.asarray(X).dtype)
    return np.asarray(scan_fit(tx, w0, jax.grad(least_squares(X, y)), steps)[0])


@pytest.mark.parametrize(
    "name", ["prox_sgd", "prox_adam", "prox_rmsprop", "prox_adagrad", "apply_prox"]
)
def test_elastic_net_optimizers_match_sklearn(name, x64):
    X, y = _problem()
    alpha, ratio = 0.4, 0.6
    l1, l2 = alpha * ratio, alpha * (1 - ratio)
    sk = ElasticNet(alpha=alpha, l1_ratio=ratio, fit_intercept=False, tol=1e-14, max_iter=100_000)
    w_sk = sk.fit(X, y).coef_
    lip = float(np.linalg.eigvalsh(X.T @ X / len(y)).max())
    tx, steps = {
        "prox_sgd": (l1optax.prox_sgd(1 / lip, l1, l2reg=l2), 3000),
        "prox_adam": (l1optax.prox_adam(1e-3, l1, l2reg=l2), 20000),
        "prox_rmsprop": (l1optax.prox_rmsprop(1e-3, l1, l2reg=l2), 20000),
        "prox_adagrad": (l1optax.prox_adagrad(1.0, l1, l2reg=l2), 20000),
        "apply_prox": (
            optax.chain(
                optax.sgd(1 / lip), l1optax.apply_prox(l1optax.prox_elastic_net, 1 / lip, (l1, l2))
            ),
            3000,
        ),
    }[name]
    w = _full_batch(tx, X, y, steps)
    np.testing.assert_allclose(w, w_sk, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(w != 0, w_sk != 0)
    assert np.sum(w_sk == 0) >= 3


def test_zero_strengths_are_the_identity_bitwise(x64):
    x = jnp.array([1.1125369292536007e-308, -3.0, 0.1, 1e300])  # includes a subnormal
    assert_trees_bitwise_equal(l1optax.prox_elastic_net(x, (0.0, 0.0), 2.0), x)
    assert_trees_bitwise_equal(
        l1optax.prox_elastic_net(x, (0.5, 0.0), 2.0), l1optax.prox_l1(x, 0.5, 2.0)
    )
