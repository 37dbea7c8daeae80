"""SPEC 6-10: ``soft_threshold`` and ``prox_l1`` against float64 NumPy references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import assert_trees_bitwise_equal

import l1optax


def effective_threshold(t, dtype) -> np.ndarray:
    """The threshold the core compares against: t rounded to float32 (float64 for float64)."""
    return np.asarray(t, np.float64 if jnp.dtype(dtype) == jnp.float64 else np.float32).astype(
        np.float64
    )


def np_soft(x, t) -> np.ndarray:
    """float64 reference: sign(x) * max(|x| - t, 0)."""
    x = np.asarray(x, np.float64)
    return np.sign(x) * np.maximum(np.abs(x) - t, 0.0)


def ulp(x, dtype) -> np.ndarray:
    """Spacing of ``dtype`` at ``x`` (for the 1-ulp rounding of a float64 result to ``dtype``)."""
    finfo = jnp.finfo(dtype)
    mag = np.maximum(np.abs(np.asarray(x, np.float64)), float(finfo.smallest_normal))
    return 2.0 ** np.floor(np.log2(mag)) * float(finfo.eps)


def sample(rng, dtype, n=257):
    x = rng.normal(scale=2.0, size=n)
    x[:5] = [0.0, -0.0, 1.0, -1.0, 0.5]  # ties with t = 1.0 and t = 0.5
    return jnp.asarray(x, dtype)


# --- SPEC 6 -------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [1.0, 1e-3])
def test_soft_threshold_matches_numpy_and_clip_formula(float_dtype, maybe_jit, rng, t):
    x = sample(rng, float_dtype)
    z = maybe_jit(l1optax.soft_threshold)(x, t)
    assert z.dtype == x.dtype and z.shape == x.shape
    teff = effective_threshold(t, float_dtype)
    ref = np_soft(x, teff)
    z64 = np.asarray(z, np.float64)
    np.testing.assert_array_equal(z64 == 0, ref == 0)
    assert np.all(np.abs(z64 - ref) <= ulp(ref, float_dtype))
    # x - clip(x, -t, t), evaluated in the core's compute dtype and cast back
    acc = jnp.float64 if float_dtype == jnp.float64 else jnp.float32
    xc = x.astype(acc)
    clip_formula = (xc - jnp.clip(xc, -jnp.asarray(t, acc), jnp.asarray(t, acc))).astype(x.dtype)
    np.testing.assert_array_equal(np.asarray(z, np.float64), np.asarray(clip_formula, np.float64))


def test_zero_threshold_is_bitwise_identity(float_dtype, maybe_jit, rng):
    x = sample(rng, float_dtype)
    x = jnp.concatenate([x, jnp.asarray([np.inf, -np.inf, 1e-30, -1e-30], float_dtype)])
    z = maybe_jit(l1optax.soft_threshold)(x, 0.0)
    assert_trees_bitwise_equal(z, x)
    tree = {"a": x, "b": [x[:3]]}
    out = l1optax.prox_l1(tree, 0.0, 1.0)
    assert_trees_bitwise_equal(out, tree)


# --- SPEC 7 -------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [0.3, 2.5])
def test_prox_satisfies_the_subgradient_optimality_condition(float_dtype, maybe_jit, rng, t):
    x = sample(rng, float_dtype, n=1000)
    z = maybe_jit(l1optax.soft_threshold)(x, t)
    x64, z64 = np.asarray(x, np.float64), np.asarray(z, np.float64)
    teff = effective_threshold(t, float_dtype)
    eps = float(jnp.finfo(float_dtype).eps)
    # zero exactly when |x| <= t
    np.testing.assert_array_equal(z64 == 0.0, np.abs(x64) <= teff)
    # otherwise the optimality condition x - z = t sign(z)
    nz = z64 != 0
    residual = np.abs(x64[nz] - z64[nz] - teff * np.sign(z64[nz]))
    assert np.all(residual <= 2 * eps * np.maximum(1.0, np.abs(x64[nz])))
    assert np.all(np.sign(z64[nz]) == np.sign(x64[nz]))


# --- SPEC 8 -------------------------------------------------------------------------------


def test_prox_is_firmly_nonexpansive_shrinking_and_odd(float_dtype, rng):
    t = 0.7
    x = sample(rng, float_dtype, n=500)
    y = sample(rng, float_dtype, n=500)
    st = jax.jit(l1optax.soft_threshold)
    px = np.asarray(st(x, t), np.float64)
    py = np.asarray(st(y, t), np.float64)
    x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
    eps = float(jnp.finfo(float_dtype).eps)
    lhs = np.sum((px - py) ** 2)
    rhs = np.sum((px - py) * (x64 - y64))
    assert lhs <= rhs + 4 * eps * np.sum(np.abs(x64) + np.abs(y64)) ** 2 / x64.size
    # coordinate-wise too: (Px - Py)^2 <= (Px - Py)(x - y)
    slack = 4 * eps * (np.abs(x64) + np.abs(y64)) ** 2
    assert np.all((px - py) ** 2 <= (px - py) * (x64 - y64) + slack)
    assert np.all(np.abs(px) <= np.abs(x64))
    np.testing.assert_array_equal(np.asarray(st(-x, t), np.float64), -px)


# --- SPEC 9 -------------------------------------------------------------------------------


def _threshold_variants():
    return {
        "python-float": lambda: 0.5,
        "python-int": lambda: 1,
        "f32-array": lambda: jnp.float32(0.5),
        "bf16-array": lambda: jnp.asarray(0.5, jnp.bfloat16),
        "schedule-value": lambda: optax.linear_schedule(1.0, 0.0, 10)(5),
        "per-coordinate": lambda: jnp.linspace(0.0, 2.0, 257, dtype=jnp.float32),
    }


@pytest.mark.parametrize("kind", list(_threshold_variants()))
def test_output_dtype_follows_input_whatever_the_threshold(float_dtype, rng, kind):
    t = _threshold_variants()[kind]()
    x = sample(rng, float_dtype)
    z = l1optax.soft_threshold(x, t)
    assert z.dtype == x.dtype and z.shape == x.shape
    ref = np_soft(x, effective_threshold(np.asarray(t, np.float64), float_dtype))
    z64 = np.asarray(z, np.float64)
    np.testing.assert_array_equal(z64 == 0, ref == 0)
    assert np.all(np.abs(z64 - ref) <= ulp(ref, float_dtype))


def test_float64_threshold_under_x64_keeps_low_precision_dtype(x64, rng):
    for dtype in (jnp.float32, jnp.bfloat16, jnp.float16):
        x = sample(rng, dtype)
        assert l1optax.soft_threshold(x, jnp.float64(0.25)).dtype == dtype
        assert l1optax.prox_l1({"x": x}, jnp.float64(0.25), jnp.float64(2.0))["x"].dtype == dtype


def test_prox_l1_over_pytrees(maybe_jit, rng):
    tree = {
        "a": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
        "b": [jnp.asarray(rng.normal(size=5), jnp.bfloat16), None],
        "c": jnp.float32(-0.3),
    }
    # scalar l1reg and scaling: threshold l1reg * scaling
    out = maybe_jit(l1optax.prox_l1)(tree, 0.25, 2.0)
    assert jax.tree.structure(out, is_leaf=lambda x: x is None) == jax.tree.structure(
        tree, is_leaf=lambda x: x is None
    )
    assert out["b"][1] is None
    for got, x in zip(jax.tree.leaves(out), jax.tree.leaves(tree), strict=True):
        assert got.dtype == x.dtype
        ref = np_soft(x, 0.5)
        np.testing.assert_array_equal(np.asarray(got, np.float64) == 0, ref == 0)
        assert np.all(np.abs(np.asarray(got, np.float64) - ref) <= ulp(ref, x.dtype))

    # per-leaf strengths, per-coordinate weights, a pytree of scalings (diagonal preconditioner)
    lam = {"a": jnp.asarray(rng.uniform(0, 1, (4, 3)), jnp.float32), "b": 0.1, "c": 0.2}
    scaling = {"a": 1.5, "b": [jnp.asarray(rng.uniform(0, 3, 5), jnp.float32), None], "c": 1.0}
    out = maybe_jit(l1optax.prox_l1)(tree, lam, scaling)
    refs = {
        "a": np_soft(tree["a"], np.asarray(lam["a"], np.float64) * 1.5),
        "b": np_soft(tree["b"][0], 0.1 * np.asarray(scaling["b"][0], np.float64)),
        "c": np_soft(tree["c"], 0.2),
    }
    for key, got in (("a", out["a"]), ("b", out["b"][0]), ("c", out["c"])):
        ref = refs[key]
        np.testing.assert_allclose(np.asarray(got, np.float64), ref, rtol=8e-3, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(got, np.float64) == 0, np.abs(ref) < 1e-7)

    # prefix trees for l1reg
    nested = {"enc": tree, "dec": jnp.array([3.0, -0.1])}
    out = l1optax.prox_l1(nested, {"enc": 0.0, "dec": 1.0}, 1.0)
    np.testing.assert_array_equal(np.asarray(out["dec"]), [2.0, 0.0])
    np.testing.assert_array_equal(np.asarray(out["enc"]["a"]), np.asarray(tree["a"]))


def test_prox_l1_is_a_drop_in_for_jaxopt_prox_lasso(rng):
    """jaxopt.prox.prox_lasso(x, l1reg, scaling) = sign(x) * relu(|x| - l1reg * scaling)."""

    def jaxopt_prox_lasso(x, l1reg=None, scaling=1.0):  # jaxopt's formula, float64 NumPy
        l1reg = 1.0 if l1reg is None else l1reg
        return jax.tree.map(lambda a, b: np_soft(a, np.asarray(b, np.float64) * scaling), x, l1reg)

    x = {
        "w": jnp.asarray(rng.normal(size=20), jnp.float32),
        "v": jnp.asarray(rng.normal(size=3), jnp.float32),
    }
    l1reg = {"w": 0.3, "v": 0.05}
    got = l1optax.prox_l1(x, l1reg, 0.5)
    ref = jaxopt_prox_lasso(x, l1reg, 0.5)
    for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(np.asarray(g, np.float64), r, rtol=1e-6, atol=1e-7)
    # l1reg=None means 1.0, as in jaxopt; positional call like jaxopt's ProximalGradient does
    got = l1optax.prox_l1(x["w"], None, 0.5)
    np.testing.assert_allclose(
        np.asarray(got, np.float64), np_soft(x["w"], 0.5), rtol=1e-6, atol=1e-7
    )


def test_threshold_below_low_precision_resolution(maybe_jit):
    """bf16/f16 inputs are thresholded in float32 and cast back: tiny thresholds still zero."""
    for dtype in (jnp.bfloat16, jnp.float16):
        tiny = float(jnp.finfo(dtype).eps) / 8  # below the resolution of 1.0 in dtype
        x = jnp.asarray([1.0, tiny / 2, -tiny / 2, tiny * 4], dtype)
        z = maybe_jit(l1optax.soft_threshold)(x, tiny)
        assert z.dtype == dtype
        z64 = np.asarray(z, np.float64)
        assert z64[0] == 1.0  # 1 - tiny rounds back to 1 in dtype
        assert z64[1] == 0.0 and z64[2] == 0.0  # zeroed although t is below dtype's eps
        ref = np_soft(x, np.float64(np.float32(tiny)))
        assert abs(z64[3] - ref[3]) <= ulp(ref[3], dtype)


# --- SPEC 10 ------------------------------------------------------------------------------


def test_nan_in_nan_out(float_dtype, maybe_jit):
    x = jnp.asarray([np.nan, 0.1, -np.nan, 5.0, np.inf, -np.inf], float_dtype)
    z = maybe_jit(l1optax.soft_threshold)(x, 1.0)
    z64 = np.asarray(z, np.float64)
    assert np.isnan(z64[0]) and np.isnan(z64[2])
    assert z64[1] == 0.0 and z64[3] == 4.0
    assert z64[4] == np.inf and z64[5] == -np.inf
    out = l1optax.prox_l1({"a": x}, 0.5, 2.0)["a"]
    assert np.isnan(np.asarray(out, np.float64)[0])


@pytest.mark.parametrize("jac", [jax.jacfwd, jax.jacrev], ids=["jacfwd", "jacrev"])
def test_jacobian_is_indicator_of_abs_above_threshold(jac, maybe_jit):
    t = 1.0
    x = jnp.asarray([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0 + 2**-20, 4.0], jnp.float32)
    J = maybe_jit(jac(lambda v: l1optax.soft_threshold(v, t)))(x)
    expected = np.diag((np.abs(np.asarray(x, np.float64)) > t).astype(np.float64))
    np.testing.assert_array_equal(np.asarray(J), expected)  # exactly 0 at the ties |x| == t
    # and with respect to the threshold: -sign(x) where |x| > t
    dt = jac(lambda s: l1optax.soft_threshold(x, s))(jnp.float32(t))
    np.testing.assert_array_equal(
        np.asarray(dt), -np.sign(np.asarray(x)) * (np.abs(np.asarray(x)) > t)
    )


def test_prox_l1_jacobian_over_a_tree():
    tree = {"a": jnp.array([2.0, 0.1]), "b": jnp.array(-0.5)}
    J = jax.jacrev(lambda p: l1optax.prox_l1(p, 0.25, 2.0))(tree)
    np.testing.assert_array_equal(np.asarray(J["a"]["a"]), np.diag([1.0, 0.0]))
    assert float(J["b"]["b"]) == 0.0  # |-0.5| == 0.5: on the tie, 0
    np.testing.assert_array_equal(np.asarray(J["a"]["b"]), [0.0, 0.0])


# --- complex leaves: modulus shrunk, phase kept ---------------------------------------------


def test_complex_soft_threshold_keeps_phase(rng, maybe_jit):
    z = (rng.normal(size=50) + 1j * rng.normal(size=50)).astype(np.complex64)
    z[0] = 0
    t = 0.8
    got = maybe_jit(l1optax.soft_threshold)(jnp.asarray(z), t)
    assert got.dtype == jnp.complex64
    z128 = z.astype(np.complex128)
    mag = np.abs(z128)
    ref = np.where(mag > t, z128 * np.maximum(1 - t / np.where(mag > 0, mag, 1), 0), 0)
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-5, atol=1e-6)
    got_np = np.asarray(got)
    np.testing.assert_array_equal(got_np == 0, mag <= t)
    keep = mag > t
    np.testing.assert_allclose(np.angle(got_np[keep]), np.angle(z128[keep]), atol=1e-5)
    out = l1optax.prox_l1({"z": jnp.asarray(z)}, 0.4, 2.0)["z"]
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-5, atol=1e-6)
