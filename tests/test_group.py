"""Group lasso and sparse group lasso: NumPy references, optimality conditions, a float64
block-coordinate-descent solver as the reference solution, the transform, and bad input."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import scan_fit
from hypothesis import given, settings

import l1optax


def _np_group_prox(x, t, group_axes):
    """Block soft threshold with groups indexed by ``group_axes`` (None: whole array)."""
    x = np.asarray(x, np.float64)
    red = (
        tuple(range(x.ndim))
        if group_axes is None
        else tuple(i for i in range(x.ndim) if i not in group_axes)
    )
    norms = np.sqrt((x**2).sum(axis=red, keepdims=True))
    factor = np.where(norms > t, 1 - t / np.where(norms > 0, norms, 1), 0.0)
    return x * factor, norms


# --------------------------------------------------------------------------------------------
# Penalty
# --------------------------------------------------------------------------------------------


def test_penalty_axis_conventions(rng):
    dense = rng.standard_normal((3, 4))  # (in, out)
    conv = rng.standard_normal((2, 2, 3, 5))  # (h, w, in, out)
    heads = rng.standard_normal((6, 2, 3))  # (d, heads, head_dim)
    # axis=-1 on a Dense kernel: one group per output neuron (column), default weight sqrt(3).
    got = l1optax.group_l1_penalty(jnp.asarray(dense), 0.5, axis=-1)
    np.testing.assert_allclose(
        got, 0.5 * np.sqrt(3) * np.linalg.norm(dense, axis=0).sum(), rtol=1e-6
    )
    got = l1optax.group_l1_penalty(jnp.asarray(dense), 1.0, axis=0, weights=1.0)  # rows
    np.testing.assert_allclose(got, np.linalg.norm(dense, axis=1).sum(), rtol=1e-6)
    got = l1optax.group_l1_penalty(jnp.asarray(conv), 1.0, axis=-1, weights=1.0)  # out channels
    np.testing.assert_allclose(got, np.sqrt((conv**2).sum(axis=(0, 1, 2))).sum(), rtol=1e-6)
    got = l1optax.group_l1_penalty(jnp.asarray(heads), 1.0, axis=1, weights=1.0)  # heads
    np.testing.assert_allclose(got, np.sqrt((heads**2).sum(axis=(0, 2))).sum(), rtol=1e-6)
    got = l1optax.group_l1_penalty(jnp.asarray(conv), 1.0, axis=(2, 3), weights=1.0)
    np.testing.assert_allclose(got, np.sqrt((conv**2).sum(axis=(0, 1))).sum(), rtol=1e-6)
    got = l1optax.group_l1_penalty(jnp.asarray(dense), 1.0)  # axis=None: the whole leaf
    np.testing.assert_allclose(got, np.sqrt(12) * np.linalg.norm(dense), rtol=1e-6)


def test_penalty_pytree_axis_weights_mask(rng):
    params = {
        "dense": {"kernel": jnp.asarray(rng.standard_normal((3, 4))), "bias": jnp.ones(4)},
        "skip": None,
    }
    axis = {"dense": {"kernel": -1, "bias": None}, "skip": None}
    w = np.array([1.0, 2.0, 0.0, 3.0])
    got = l1optax.group_l1_penalty(
        params, 2.0, axis=axis, weights={"dense": {"kernel": w, "bias": 1.0}, "skip": None}
    )
    k = np.asarray(params["dense"]["kernel"], np.float64)
    expected = 2.0 * ((w * np.linalg.norm(k, axis=0)).sum() + 2.0)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    masked = l1optax.group_l1_penalty(
        params, 2.0, axis=axis, mask={"dense": {"kernel": True, "bias": False}, "skip": False}
    )
    np.testing.assert_allclose(
        masked, 2.0 * np.sqrt(3) * np.linalg.norm(k, axis=0).sum(), rtol=1e-6
    )
    assert float(l1optax.group_l1_penalty({}, 1.0)) == 0.0


def test_sparse_group_penalty(rng):
    x = rng.standard_normal((4, 3))
    got = l1optax.sparse_group_l1_penalty(jnp.asarray(x), 0.3, 0.7, axis=-1)
    expected = 0.3 * np.abs(x).sum() + 0.7 * np.sqrt(4) * np.linalg.norm(x, axis=0).sum()
    np.testing.assert_allclose(got, expected, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Prox
# --------------------------------------------------------------------------------------------


@settings(max_examples=50)
@given(
    x=hnp.arrays(np.float64, (4, 3), elements=st.floats(-5, 5, allow_subnormal=False)),
    lam=st.floats(0, 3),
    s=st.floats(0, 2),
    axis=st.sampled_from([None, 0, 1, -1, (0, 1)]),
)
def test_group_prox_matches_numpy_and_is_optimal(x, lam, s, axis):
    with jax.enable_x64(True):
        z = np.asarray(l1optax.prox_group_l1(jnp.asarray(x), lam, s, axis=axis, weights=1.0))
    group_axes = None if axis is None else tuple(np.atleast_1d(np.array(axis)) % 2)
    expected, norms = _np_group_prox(x, s * lam, group_axes)
    np.testing.assert_allclose(z, expected, rtol=1e-12, atol=1e-12)
    # Optimality of argmin 1/2|z - x|^2 + t*sum_g |z_g|: x - z = t z_g/|z_g| or |x_g| <= t.
    t = s * lam
    red = (
        tuple(range(2)) if group_axes is None else tuple(i for i in range(2) if i not in group_axes)
    )
    zn = np.sqrt((z**2).sum(axis=red, keepdims=True))
    zero = np.broadcast_to(zn == 0, x.shape)
    np.testing.assert_allclose((x - z)[~zero], (t * z / np.where(zn > 0, zn, 1))[~zero], atol=1e-9)
    assert np.all(np.broadcast_to(norms, x.shape)[zero] <= t + 1e-9)


@settings(max_examples=40)
@given(
    x=hnp.arrays(np.float64, (5, 2), elements=st.floats(-5, 5, allow_subnormal=False)),
    l1=st.floats(0, 2),
    lg=st.floats(0, 3),
)
def test_sparse_group_prox_is_the_prox(x, l1, lg):
    """Checks the optimality conditions of argmin 1/2|z-x|^2 + l1|z|_1 + lg*sqrt(5) sum_g |z_g|."""
    with jax.enable_x64(True):
        z = np.asarray(l1optax.prox_sparse_group_l1(jnp.asarray(x), (l1, lg), 1.0, axis=-1))
    c = np.sqrt(5.0)
    for g in range(2):
        xg, zg = x[:, g], z[:, g]
        soft = np.sign(xg) * np.maximum(np.abs(xg) - l1, 0)
        if np.linalg.norm(zg) == 0:
            assert np.linalg.norm(soft) <= lg * c + 1e-9
            continue
        r = xg - zg - lg * c * zg / np.linalg.norm(zg)  # must be in l1 * subdiff |z|
        nz = zg != 0
        np.testing.assert_allclose(r[nz], l1 * np.sign(zg[nz]), atol=1e-9)
        assert np.all(np.abs(r[~nz]) <= l1 + 1e-9)


def test_prox_dtypes_exact_zero_groups(float_dtype, maybe_jit):
    w = jnp.array([[3.0, 0.01, -2.0], [4.0, -0.02, 0.0]], float_dtype)
    z = maybe_jit(lambda w: l1optax.prox_group_l1(w, 1.0, 0.5, axis=-1, weights=1.0))(w)
    assert z.dtype == float_dtype
    zf = np.asarray(z, np.float64)
    assert np.all(zf[:, 1] == 0.0)  # the small neuron is exactly zero
    expected, _ = _np_group_prox(np.asarray(w, np.float64), 0.5, (1,))
    tol = 1e-2 if jnp.dtype(float_dtype).itemsize == 2 else 1e-6
    np.testing.assert_allclose(zf, expected, rtol=tol, atol=tol)
    zs = maybe_jit(lambda w: l1optax.prox_sparse_group_l1(w, (0.5, 0.5), 1.0, axis=-1))(w)
    assert zs.dtype == float_dtype and np.all(np.asarray(zs, np.float32)[:, 1] == 0.0)


def test_prox_per_group_weights_and_none_leaves():
    params = {"k": jnp.array([[1.0, 1.0], [1.0, 1.0]]), "none": None}
    z = l1optax.prox_group_l1(params, 1.0, axis=-1, weights=jnp.array([0.0, 10.0]))
    np.testing.assert_allclose(z["k"], [[1.0, 0.0], [1.0, 0.0]])
    assert z["none"] is None
    # zero norm group stays 0 (no division by zero), NaN propagates
    z = l1optax.prox_group_l1(jnp.array([[0.0, jnp.nan], [0.0, 1.0]]), 0.1, axis=-1)
    assert np.all(np.asarray(z[:, 0]) == 0) and np.all(np.isnan(np.asarray(z[:, 1])))


# --------------------------------------------------------------------------------------------
# Group lasso regression against a float64 block coordinate descent solver.
# --------------------------------------------------------------------------------------------


def _bcd_group_lasso(X, y, groups, lam, weights, iters=20000, tol=1e-15):
    """Block coordinate (proximal) descent on 1/(2n)|Xw - y|^2 + lam * sum_g c_g |w_g|."""
    n, p = X.shape
    w = np.zeros(p)
    lips = [np.linalg.eigvalsh(X[:, g].T @ X[:, g] / n).max() for g in groups]
    r = y - X @ w
    for _ in range(iters):
        w_old = w.copy()
        for g, L, c in zip(groups, lips, weights, strict=True):
            grad = -X[:, g].T @ r / n
            v = w[g] - grad / L
            nv = np.linalg.norm(v)
            new = v * max(0.0, 1 - lam * c / (L * nv)) if nv > 0 else v
            r -= X[:, g] @ (new - w[g])
            w[g] = new
        if np.abs(w - w_old).max() < tol:
            break
    return w


def test_group_lasso_regression_matches_bcd_and_optimality(x64):
    rng = np.random.default_rng(7)
    n, n_groups, size = 100, 6, 3
    X = rng.standard_normal((n, n_groups * size))
    w_true = np.zeros((n_groups, size))
    w_true[0] = [1.5, -1.0, 0.5]
    w_true[2] = [0.0, 2.0, -1.0]
    y = X @ w_true.ravel() + 0.3 * rng.standard_normal(n)
    lam = 0.1
    groups = [np.arange(g * size, (g + 1) * size) for g in range(n_groups)]
    weights = [np.sqrt(size)] * n_groups  # the default c_g = sqrt(group size)
    w_ref = _bcd_group_lasso(X, y, groups, lam, weights).reshape(n_groups, size)

    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    lip = float(np.linalg.eigvalsh(X.T @ X / n).max())
    # params (groups, size): groups are rows, i.e. indexed by axis 0.
    tx = optax.chain(optax.sgd(1 / lip), l1optax.apply_group_l1_prox(1 / lip, lam, axis=0))

    def loss(w):
        return 0.5 * jnp.mean((Xj @ w.ravel() - yj) ** 2)

    w = np.asarray(scan_fit(tx, jnp.zeros((n_groups, size)), jax.grad(loss), 4000)[0])
    np.testing.assert_allclose(w, w_ref, atol=1e-6, rtol=0)
    zero = np.all(w == 0, axis=1)
    np.testing.assert_array_equal(zero, np.all(w_ref == 0, axis=1))
    assert 1 <= zero.sum() < n_groups
    # Group optimality: grad_g + lam c w_g/|w_g| = 0 on active groups, |grad_g| <= lam c else.
    grad = (X.T @ (X @ w.ravel() - y) / n).reshape(n_groups, size)
    c = np.sqrt(size)
    for g in range(n_groups):
        if zero[g]:
            assert np.linalg.norm(grad[g]) <= lam * c + 1e-9
        else:
            np.testing.assert_allclose(grad[g], -lam * c * w[g] / np.linalg.norm(w[g]), atol=1e-7)
    np.testing.assert_allclose(
        float(l1optax.group_l1_penalty(jnp.asarray(w), lam, axis=0)),
        lam * c * np.linalg.norm(w, axis=1).sum(),
        rtol=1e-12,
    )


# --------------------------------------------------------------------------------------------
# The transform on a network's parameters.
# --------------------------------------------------------------------------------------------


def test_transform_zeroes_whole_neurons_with_mask_and_schedule(float_dtype):
    params = {
        "dense": {
            "kernel": jnp.array([[1.0, 0.01, 2.0], [1.0, -0.01, 2.0]], float_dtype),
            "bias": jnp.array([0.001, 0.001, 0.001], float_dtype),
        }
    }
    mask = {"dense": {"kernel": True, "bias": False}}
    sched = optax.constant_schedule(0.1)
    tx = optax.chain(
        optax.sgd(sched), l1optax.apply_group_l1_prox(sched, lambda c: 1.0, axis=-1, mask=mask)
    )
    state = tx.init(params)
    grads = jax.tree.map(jnp.zeros_like, params)
    u, state = jax.jit(tx.update)(grads, state, params)
    new = optax.apply_updates(params, u)
    k = np.asarray(new["dense"]["kernel"], np.float64)
    assert np.all(k[:, 1] == 0.0) and np.all(k[:, [0, 2]] != 0)
    assert new["dense"]["kernel"].dtype == float_dtype
    np.testing.assert_array_equal(new["dense"]["bias"], params["dense"]["bias"])  # unpenalised
    ref, _ = _np_group_prox(
        np.asarray(params["dense"]["kernel"], np.float64), 0.1 * np.sqrt(2), (1,)
    )
    tol = 1e-2 if jnp.dtype(float_dtype).itemsize == 2 else 1e-6
    np.testing.assert_allclose(k, ref, rtol=tol, atol=tol)


def test_transform_inject_hyperparams():
    params = {"k": jnp.array([[1.0, 0.05], [1.0, 0.05]])}
    tx = optax.inject_hyperparams(l1optax.apply_group_l1_prox, static_args=("axis",))(
        0.1, 1.0, axis=-1
    )
    u, s = jax.jit(tx.update)(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    plain = l1optax.apply_group_l1_prox(0.1, 1.0, axis=-1)
    u2, _ = plain.update(jax.tree.map(jnp.zeros_like, params), plain.init(params), params)
    np.testing.assert_allclose(u["k"], u2["k"], rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_bad_axes_and_weights():
    params = {"layer": {"kernel": jnp.ones((3, 4))}}
    with pytest.raises(
        ValueError, match=r"axis 2 for a leaf with 2 dimension\(s\) at leaf \['layer'\]\['kernel'\]"
    ):
        l1optax.prox_group_l1(params, 1.0, axis=2)
    with pytest.raises(ValueError, match=r"repeated axis"):
        l1optax.group_l1_penalty(params, 1.0, axis=(0, -2))
    with pytest.raises(TypeError, match=r"`prox_group_l1\(axis=...\)` must hold ints"):
        l1optax.prox_group_l1(params, 1.0, axis=(0, 1.5))
    with pytest.raises(
        ValueError, match=r"have the group shape \(4,\) .* got shape \(3,\) at leaf"
    ):
        l1optax.prox_group_l1(params, 1.0, axis=-1, weights=jnp.ones(3))
    with pytest.raises(ValueError, match=r"`group_l1_penalty\(weights=...\)` must be non-negative"):
        l1optax.group_l1_penalty(params, 1.0, axis=-1, weights=-1.0)
    with pytest.raises(ValueError, match=r"`group_l1_penalty\(axis=...\)` must be None, an int"):
        l1optax.group_l1_penalty(params, 1.0, axis={"other": 0})
    tx = l1optax.apply_group_l1_prox(0.1, 1.0, axis=3)
    with pytest.raises(ValueError, match=r"`apply_group_l1_prox\(axis=...\)` got axis 3"):
        tx.init(params)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_strengths(bad):
    with pytest.raises(
        ValueError, match=r"`apply_group_l1_prox\(l1reg=...\)` must be non-negative"
    ):
        l1optax.apply_group_l1_prox(0.1, bad)
    with pytest.raises(ValueError, match=r"`apply_group_l1_prox\(learning_rate=...\)`"):
        l1optax.apply_group_l1_prox(bad, 0.1)
    with pytest.raises(ValueError, match=r"`prox_group_l1\(l1reg=...\)`"):
        l1optax.prox_group_l1(jnp.ones(2), bad)
    with pytest.raises(ValueError, match=r"prox_sparse_group_l1\(hyperparams\[1\] \(group_reg\)"):
        l1optax.prox_sparse_group_l1(jnp.ones(2), (0.1, bad))


def test_bad_trees_and_params():
    with pytest.raises(
        ValueError, match=r"`prox_group_l1\(l1reg=...\)` must be a scalar or a pytree"
    ):
        l1optax.prox_group_l1({"a": jnp.ones(2)}, {"b": 1.0})
    with pytest.raises(TypeError, match=r"\['i'\] has dtype int32"):
        l1optax.apply_group_l1_prox(0.1, 1.0).init({"i": jnp.ones(2, jnp.int32)})
    tx = l1optax.apply_group_l1_prox(0.1, 1.0)
    with pytest.raises(ValueError, match=r"needs the current parameters"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)), None)
    with pytest.raises(ValueError, match=r"must be a pair \(l1reg, group_reg\)"):
        l1optax.prox_sparse_group_l1(jnp.ones(2), 1.0)


def test_per_coordinate_strength_is_rejected_with_a_pointer_to_weights():
    with pytest.raises(ValueError, match=r"`prox_group_l1\(l1reg=...\)` must be a scalar per leaf"):
        l1optax.prox_group_l1(jnp.ones((2, 3)), jnp.ones((2, 3)), axis=-1)
    # a per-coordinate scaling is a diagonal metric (tests/test_metric_prox.py), not a strength
    out = l1optax.prox_group_l1(jnp.ones((2, 3)), 1.0, jnp.full((2, 3), 0.1), axis=-1)
    np.testing.assert_allclose(out, l1optax.prox_group_l1(jnp.ones((2, 3)), 1.0, 0.1, axis=-1))


def test_sparse_group_lasso_through_apply_prox():
    import functools

    prox = functools.partial(l1optax.prox_sparse_group_l1, axis=-1, weights=1.0)
    tx = optax.chain(
        optax.sgd(1.0), l1optax.apply_prox(prox, 1.0, (0.5, optax.constant_schedule(1.0)))
    )
    w = jnp.array([[3.5, 0.1, 0.4], [4.5, 0.2, 3.0]])
    u, _ = jax.jit(tx.update)(jnp.zeros_like(w), tx.init(w), w)
    new = np.asarray(optax.apply_updates(w, u), np.float64)
    soft = np.sign(np.asarray(w)) * np.maximum(np.abs(np.asarray(w)) - 0.5, 0)
    expected, _ = _np_group_prox(soft, 1.0, (1,))
    np.testing.assert_allclose(new, expected, rtol=1e-6)
    assert np.all(new[:, 1] == 0) and new[0, 2] == 0.0 and new[1, 2] != 0.0


def test_sparse_group_prox_per_coordinate_l1(x64):
    x = np.array([[1.0, -0.3, 2.0], [0.5, 0.2, -1.0]])
    l1 = np.array([[0.9, 0.1, 0.0], [0.1, 0.5, 0.5]])
    z = np.asarray(
        l1optax.prox_sparse_group_l1(jnp.asarray(x), (jnp.asarray(l1), 0.2), 0.5, axis=0)
    )
    soft = np.sign(x) * np.maximum(np.abs(x) - 0.5 * l1, 0)
    expected, _ = _np_group_prox(soft, 0.5 * 0.2 * np.sqrt(3), (0,))  # rows are the groups
    np.testing.assert_allclose(z, expected, rtol=1e-12)
    assert z[1, 1] == 0.0 and z[0, 0] != 0.0
