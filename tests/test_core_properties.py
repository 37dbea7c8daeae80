"""Hypothesis: the algebraic properties of the soft threshold, the prox and the penalty (SPEC 3, 7, 8).

Arrays have a fixed shape so each jitted function compiles once per dtype.
"""

from __future__ import annotations

import contextlib

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import l1optax

N = 16
SETTINGS = settings(max_examples=60)

soft = jax.jit(l1optax.soft_threshold)
penalty = jax.jit(l1optax.l1_penalty)
grad_penalty = jax.jit(jax.grad(l1optax.l1_penalty))
prox_tree = jax.jit(l1optax.prox_l1)


def x64_if(dtype):
    return jax.enable_x64(True) if dtype == np.float64 else contextlib.nullcontext()


def arrays(dtype, lo=-100.0, hi=100.0):
    width = 64 if dtype == np.float64 else 32
    return hnp.arrays(
        dtype,
        N,
        elements=st.floats(lo, hi, width=width, allow_subnormal=False),
    )


dtypes = st.sampled_from([np.float32, np.float64])
thresholds = st.floats(0.0, 50.0, width=32, allow_subnormal=False)


@st.composite
def x_and_t(draw):
    dtype = draw(dtypes)
    return dtype, draw(arrays(dtype)), draw(thresholds)


@st.composite
def x_y_and_t(draw):
    dtype = draw(dtypes)
    return dtype, draw(arrays(dtype)), draw(arrays(dtype)), draw(thresholds)


@SETTINGS
@given(x_and_t())
def test_prop_prox_optimality(args):
    """z == 0 exactly when |x| <= t; otherwise x - z = t sign(z) up to 2 eps max(1, |x|)."""
    dtype, x, t = args
    with x64_if(dtype):
        z = np.asarray(soft(jnp.asarray(x), t), np.float64)
    x64 = x.astype(np.float64)
    eps = float(np.finfo(dtype).eps)
    np.testing.assert_array_equal(z == 0.0, np.abs(x64) <= t)
    nz = z != 0
    residual = np.abs(x64[nz] - z[nz] - t * np.sign(z[nz]))
    assert np.all(residual <= 2 * eps * np.maximum(1.0, np.abs(x64[nz])))


@SETTINGS
@given(x_and_t())
def test_prop_prox_minimises_its_objective(args):
    """1/2 (z - x)^2 + t |z| is no larger at the prox point than at nearby points (float64)."""
    dtype, x, t = args
    with x64_if(dtype):
        z = np.asarray(soft(jnp.asarray(x), t), np.float64)
    x64 = x.astype(np.float64)

    def h(v):
        return 0.5 * (v - x64) ** 2 + t * np.abs(v)

    eps = float(np.finfo(dtype).eps)
    slack = 4 * eps * (1 + np.abs(x64)) ** 2
    for delta in (1e-3, -1e-3, 0.1, -0.1):
        assert np.all(h(z) <= h(z + delta) + slack)
    assert np.all(h(z) <= h(np.zeros_like(z)) + slack)
    assert np.all(h(z) <= h(x64) + slack)


@SETTINGS
@given(x_y_and_t())
def test_prop_prox_is_firmly_nonexpansive(args):
    dtype, x, y, t = args
    with x64_if(dtype):
        px = np.asarray(soft(jnp.asarray(x), t), np.float64)
        py = np.asarray(soft(jnp.asarray(y), t), np.float64)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    eps = float(np.finfo(dtype).eps)
    slack = 4 * eps * (np.abs(x64) + np.abs(y64) + 1) ** 2
    # coordinate-wise (the prox is separable), hence also for the sums
    assert np.all((px - py) ** 2 <= (px - py) * (x64 - y64) + slack)
    assert np.sum((px - py) ** 2) <= np.sum((px - py) * (x64 - y64)) + np.sum(slack)
    assert np.all(np.abs(px - py) <= np.abs(x64 - y64) + np.sqrt(slack))


@SETTINGS
@given(x_and_t())
def test_prop_prox_shrinks_and_is_odd(args):
    dtype, x, t = args
    with x64_if(dtype):
        z = np.asarray(soft(jnp.asarray(x), t))
        z_neg = np.asarray(soft(jnp.asarray(-x), t))
    assert z.dtype == dtype
    assert np.all(np.abs(z) <= np.abs(x))
    np.testing.assert_array_equal(z_neg, -z)
    assert np.all((np.sign(z) == np.sign(x)) | (z == 0))


@SETTINGS
@given(x_and_t(), thresholds)
def test_prop_thresholds_compose(args, s):
    """S_s(S_t(x)) == S_{s+t}(x) (up to one rounding per step)."""
    dtype, x, t = args
    with x64_if(dtype):
        two_steps = np.asarray(soft(soft(jnp.asarray(x), t), s), np.float64)
        one_step = np.asarray(soft(jnp.asarray(x), float(t) + float(s)), np.float64)
    eps = float(np.finfo(dtype).eps)
    assert np.all(np.abs(two_steps - one_step) <= 4 * eps * (np.abs(x.astype(np.float64)) + s + t))


@SETTINGS
@given(x_and_t())
def test_prop_moreau_decomposition(args):
    """x = S_t(x) + proj_[-t, t](x): the prox of t|.| and of its conjugate add up to x."""
    dtype, x, t = args
    with x64_if(dtype):
        z = np.asarray(soft(jnp.asarray(x), t), np.float64)
    x64 = x.astype(np.float64)
    eps = float(np.finfo(dtype).eps)
    tt = float(np.asarray(t, dtype))
    assert np.all(np.abs(z + np.clip(x64, -tt, tt) - x64) <= 2 * eps * np.maximum(1, np.abs(x64)))


@SETTINGS
@given(dtypes.flatmap(lambda d: st.tuples(st.just(d), arrays(d), arrays(d))), thresholds)
def test_prop_prox_l1_on_a_tree_is_leafwise(args, t):
    dtype, a, b = args
    with x64_if(dtype):
        out = prox_tree({"a": jnp.asarray(a), "b": [jnp.asarray(b)]}, t, 0.5)
        leaf_a = soft(jnp.asarray(a), np.float32(t) * np.float32(0.5))
        leaf_b = soft(jnp.asarray(b), np.float32(t) * np.float32(0.5))
    np.testing.assert_array_equal(np.asarray(out["a"]), np.asarray(leaf_a))
    np.testing.assert_array_equal(np.asarray(out["b"][0]), np.asarray(leaf_b))


@st.composite
def two_trees_and_scalars(draw):
    dtype = draw(dtypes)
    t1 = {"a": draw(arrays(dtype)), "b": draw(arrays(dtype))}
    t2 = {"a": draw(arrays(dtype)), "b": draw(arrays(dtype))}
    c = draw(st.floats(-8.0, 8.0, width=32, allow_subnormal=False))
    lam = draw(st.floats(0.0, 10.0, width=32, allow_subnormal=False))
    return dtype, t1, t2, c, lam


@SETTINGS
@given(two_trees_and_scalars())
def test_prop_penalty_is_a_weighted_norm(args):
    """>= 0, even, absolutely homogeneous, subadditive; equals float64 NumPy."""
    dtype, t1, t2, c, lam = args
    eps = float(np.finfo(dtype).eps)
    with x64_if(dtype):
        j1 = jax.tree.map(jnp.asarray, t1)
        j2 = jax.tree.map(jnp.asarray, t2)
        l1 = float(penalty(j1, lam))
        l_neg = float(penalty(jax.tree.map(jnp.negative, j1), lam))
        l_scaled = float(penalty(jax.tree.map(lambda x: x * jnp.asarray(c, x.dtype), j1), lam))
        l2 = float(penalty(j2, lam))
        l_sum = float(penalty(jax.tree.map(jnp.add, j1, j2), lam))
    ref = np.float32(lam).astype(np.float64) * sum(
        np.abs(v.astype(np.float64)).sum() for v in t1.values()
    )
    assert l1 >= 0
    assert l_neg == l1
    tol = 2 * eps * 2 * N  # accumulation over 2N terms
    np.testing.assert_allclose(l1, ref, rtol=tol, atol=1e-30)
    np.testing.assert_allclose(
        l_scaled, abs(float(np.asarray(c, dtype))) * l1, rtol=2 * tol + 2 * eps, atol=1e-30
    )
    assert l_sum <= l1 + l2 + tol * (l1 + l2) + 1e-30


@SETTINGS
@given(x_and_t())
def test_prop_penalty_gradient_is_lam_sign(args):
    dtype, x, lam = args
    x = x.copy()
    x[:3] = 0.0  # always include zeros: their gradient must be exactly 0
    with x64_if(dtype):
        g = np.asarray(grad_penalty(jnp.asarray(x), lam), np.float64)
    expected = np.float64(np.asarray(lam, dtype)) * np.sign(x.astype(np.float64))
    np.testing.assert_array_equal(g, expected)
