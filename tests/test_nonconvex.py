"""Nonconvex proxes (L0, MCP, SCAD, L1/2) and the top-k projection against float64 references."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import FLOAT_DTYPES
from hypothesis import example, given, settings
from hypothesis import strategies as st

import l1optax

# --------------------------------------------------------------------------------------------
# float64 NumPy references of the closed forms, and of the penalties
# --------------------------------------------------------------------------------------------


def ref_l0(x, lam, s):
    return np.where(np.abs(x) <= np.sqrt(2 * s * lam), 0.0, x)


def ref_mcp(x, lam, gamma, s):
    a = np.abs(x)
    middle = np.sign(x) * (a - s * lam) / (1 - s / gamma)
    return np.where(a <= s * lam, 0.0, np.where(a > gamma * lam, x, middle))


def ref_scad(x, lam, gamma, s):
    a = np.abs(x)
    soft = np.sign(x) * np.maximum(a - s * lam, 0)
    middle = ((gamma - 1) * x - np.sign(x) * s * gamma * lam) / (gamma - 1 - s)
    return np.where(a <= (1 + s) * lam, soft, np.where(a > gamma * lam, x, middle))


def ref_l_half(x, lam, s):
    mu = s * lam
    a = np.abs(x)
    t = 1.5 * mu ** (2 / 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        phi = np.arccos(mu / 4 * (a / 3) ** -1.5)
        z = 2 / 3 * x * (1 + np.cos(2 * np.pi / 3 - 2 * phi / 3))
    return np.where(a > t, z, 0.0)


def pen_mcp(w, lam, gamma):
    a = np.abs(w)
    return np.where(a <= gamma * lam, lam * a - w * w / (2 * gamma), gamma * lam**2 / 2)


def pen_scad(w, lam, gamma):
    a = np.abs(w)
    return np.where(
        a <= lam,
        lam * a,
        np.where(
            a <= gamma * lam,
            (2 * gamma * lam * a - a * a - lam**2) / (2 * (gamma - 1)),
            lam**2 * (gamma + 1) / 2,
        ),
    )


PENALTY_1D = {
    "l0": lambda z, lam, gamma: lam * (z != 0),
    "mcp": pen_mcp,
    "scad": pen_scad,
    "l_half": lambda z, lam, gamma: lam * np.sqrt(np.abs(z)),
}


def thresholds(name, lam, gamma, s):
    """Points where the closed form switches branch (the references are compared away from them)."""
    return {
        "l0": [np.sqrt(2 * s * lam)],
        "mcp": [s * lam, gamma * lam],
        "scad": [s * lam, (1 + s) * lam, gamma * lam],
        "l_half": [1.5 * (s * lam) ** (2 / 3)],
    }[name]


def call(name, x, lam, gamma, s, **kw):
    if name == "l0":
        return l1optax.prox_l0(x, lam, s)
    if name == "mcp":
        return l1optax.prox_mcp(x, (lam, gamma), s, **kw)
    if name == "scad":
        return l1optax.prox_scad(x, (lam, gamma), s, **kw)
    return l1optax.prox_l_half(x, lam, s)


def reference(name, x, lam, gamma, s):
    return {
        "l0": lambda: ref_l0(x, lam, s),
        "mcp": lambda: ref_mcp(x, lam, gamma, s),
        "scad": lambda: ref_scad(x, lam, gamma, s),
        "l_half": lambda: ref_l_half(x, lam, s),
    }[name]()


NAMES = ["l0", "mcp", "scad", "l_half"]


@pytest.mark.parametrize("name", NAMES)
def test_prox_equals_float64_closed_form_away_from_thresholds(name, x64, rng):
    lam, gamma = 0.7, 3.7
    s = rng.uniform(0.1, 2.0, size=400)  # per-coordinate steps, all below gamma - 1
    x = rng.uniform(-6, 6, size=400)
    cuts = np.stack([np.broadcast_to(t, x.shape) for t in thresholds(name, lam, gamma, s)])
    x = np.where(np.min(np.abs(np.abs(x) - cuts), axis=0) < 1e-6, x + 1e-3, x)
    out = call(name, {"w": jnp.asarray(x)}, lam, gamma, {"w": jnp.asarray(s)})["w"]
    np.testing.assert_allclose(np.asarray(out), reference(name, x, lam, gamma, s), rtol=1e-12)


@pytest.mark.parametrize("name", ["mcp", "scad", "l_half"])
def test_prox_equals_skglm_scalar_prox(name, x64, rng):
    prox_funcs = pytest.importorskip("skglm.utils.prox_funcs")
    lam, gamma, s = 0.8, 3.7, 0.6
    x = rng.uniform(-6, 6, size=200)
    if name == "mcp":
        expected = [prox_funcs.prox_MCP(xi, s, lam, gamma) for xi in x]
    elif name == "scad":
        expected = [prox_funcs.prox_SCAD(xi, s, lam, gamma) for xi in x]
    else:
        expected = [prox_funcs.prox_05(xi, s * lam) for xi in x]
    out = call(name, jnp.asarray(x), lam, gamma, s)
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_prox_keeps_dtype_and_gives_exact_zeros(name, float_dtype):
    x = jnp.asarray([-5.0, -0.3, -0.0, 0.2, 0.6, 1.7, 4.0], float_dtype)
    out = call(name, {"w": x}, 0.5, 3.0, 1.0)["w"]
    assert out.dtype == jnp.dtype(float_dtype)
    small = np.abs(np.asarray(x, np.float64)) <= 0.3
    assert np.all(np.asarray(out, np.float64)[small] == 0.0)
    # weights beyond gamma*lam (MCP, SCAD) or far above the threshold (L0) are not shrunk
    if name != "l_half":
        assert out[-1] == x[-1]
    expected = reference(name, np.asarray(x, np.float64), 0.5, 3.0, 1.0)
    tol = 1e-2 if float_dtype in (jnp.bfloat16, jnp.float16) else 1e-6
    np.testing.assert_allclose(np.asarray(out, np.float64), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", NAMES)
def test_zero_step_or_zero_strength_is_identity_bitwise(name, rng):
    x = jnp.asarray(rng.normal(size=8), jnp.float32).at[0].set(-0.0)
    s = jnp.asarray([0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.5, 0.0], jnp.float32)
    out = call(name, x, 2.0, 3.0, s)
    zero_step = np.asarray(s) == 0
    np.testing.assert_array_equal(np.asarray(out)[zero_step], np.asarray(x)[zero_step])
    assert np.signbit(np.asarray(out)[0])
    np.testing.assert_array_equal(np.asarray(call(name, x, 0.0, 3.0, 1.0)), np.asarray(x))


def objective_on_grid(name, x, lam, gamma, s):
    grid = np.concatenate([np.linspace(-8, 8, 160_001), [0.0, x]])
    values = 0.5 * (grid - x) ** 2 + s * PENALTY_1D[name](grid, lam, gamma)
    return values.min()


@settings(max_examples=60)
@given(
    name=st.sampled_from(NAMES),
    x=st.floats(-6, 6),
    lam=st.floats(0.05, 2.0),
    gamma=st.floats(2.5, 6.0),
    s=st.floats(0.05, 1.4),
)
def test_prox_output_minimises_the_one_dimensional_objective(name, x, lam, gamma, s):
    with jax.enable_x64(True):
        z = float(call(name, jnp.asarray(x, jnp.float64), lam, gamma, s))
    attained = 0.5 * (z - x) ** 2 + s * float(PENALTY_1D[name](np.asarray(z), lam, gamma))
    assert attained <= objective_on_grid(name, x, lam, gamma, s) + 1e-9


@settings(max_examples=40)
@given(
    name=st.sampled_from(["mcp", "scad"]),
    x=st.floats(-6, 6),
    lam=st.floats(0.05, 2.0),
    gamma=st.floats(1.5, 3.0),
    s=st.floats(2.0, 20.0),
)
@example(name="scad", x=3.0, lam=0.5, gamma=2.0, s=6.0)  # |x| <= s*lam, yet the flat piece wins
def test_non_strict_mode_gives_the_global_minimiser_beyond_convexity(name, x, lam, gamma, s):
    with jax.enable_x64(True):
        z = float(call(name, jnp.asarray(x, jnp.float64), lam, gamma, s, strict=False))
    attained = 0.5 * (z - x) ** 2 + s * float(PENALTY_1D[name](np.asarray(z), lam, gamma))
    assert attained <= objective_on_grid(name, x, lam, gamma, s) + 1e-9


@pytest.mark.parametrize(
    ("fn", "gamma", "needs"),
    [(l1optax.prox_mcp, 1.0, "gamma > scaling"), (l1optax.prox_scad, 2.0, "gamma - 1 > scaling")],
)
def test_concrete_step_beyond_convexity_raises_naming_leaf(fn, gamma, needs):
    params = {"a": jnp.ones(3), "b": jnp.ones(3)}
    scaling = {"a": jnp.full(3, 0.5), "b": jnp.asarray([0.5, 1.5, 0.0])}
    with pytest.raises(ValueError, match=rf"{fn.__name__}.*{needs}.*\['b'\]"):
        fn(params, (1.0, gamma), scaling)
    # a zero step is always allowed (the coordinate is left alone)
    fn(params, (1.0, gamma + 1.0), {"a": 0.5, "b": jnp.asarray([0.0, 0.0, 0.0])})


@pytest.mark.parametrize("fn", [l1optax.prox_mcp, l1optax.prox_scad])
def test_traced_step_beyond_convexity_gives_nan_not_a_silent_value(fn):
    x = jnp.asarray([0.1, 1.0, 5.0])
    out = jax.jit(lambda s: fn(x, (1.0, 1.5), s))(jnp.asarray([0.1, 4.0, 0.1]))
    assert np.isnan(out[1]) and not np.isnan(out[0]) and not np.isnan(out[2])


def test_traced_negative_strength_gives_nan():
    x = jnp.asarray([0.1, 3.0])
    out = jax.jit(lambda lam: l1optax.prox_l0(x, lam, 1.0))(-1.0)
    assert np.all(np.isnan(out))


@pytest.mark.parametrize(
    "call_bad",
    [
        lambda: l1optax.prox_l0(jnp.ones(2), -1.0, 1.0),
        lambda: l1optax.prox_mcp(jnp.ones(2), 1.0, 1.0),
        lambda: l1optax.prox_scad(jnp.ones(2), (float("nan"), 3.7), 1.0),
        lambda: l1optax.prox_l_half(jnp.ones(2), 1.0, -1.0),
        lambda: l1optax.prox_top_k(jnp.ones(2), -1),
        lambda: l1optax.prox_top_k(jnp.ones(2), 1, scope="layer"),
    ],
)
def test_bad_concrete_arguments_raise_value_error(call_bad):
    with pytest.raises(ValueError, match=r"`prox_"):
        call_bad()


def test_complex_and_integer_leaves_are_rejected_with_the_leaf_path():
    with pytest.raises(TypeError, match=r"\['z'\]"):
        l1optax.prox_l0({"z": jnp.ones(2, jnp.complex64)}, 1.0)
    with pytest.raises(TypeError, match=r"\['i'\]"):
        l1optax.prox_mcp({"i": jnp.ones(2, jnp.int32)}, (1.0, 3.0))


@pytest.mark.parametrize(
    ("penalty", "hyper", "reference_fn"),
    [
        (l1optax.l0_penalty, 0.3, lambda w: 0.3 * np.count_nonzero(w)),
        (l1optax.mcp_penalty, (0.4, 2.5), lambda w: pen_mcp(w, 0.4, 2.5).sum()),
        (l1optax.scad_penalty, (0.4, 3.7), lambda w: pen_scad(w, 0.4, 3.7).sum()),
        (l1optax.l_half_penalty, 0.6, lambda w: 0.6 * np.sqrt(np.abs(w)).sum()),
    ],
)
def test_penalty_equals_float64_reference_and_respects_mask(penalty, hyper, reference_fn, rng):
    w = rng.normal(size=(5, 7)) * 2
    w[w < -1] = 0.0
    params = {"w": jnp.asarray(w, jnp.float32), "b": jnp.ones(3)}
    got = penalty(params, hyper, mask={"w": True, "b": False})
    np.testing.assert_allclose(float(got), reference_fn(w), rtol=1e-5)
    assert got.dtype == jnp.float32


# --------------------------------------------------------------------------------------------
# top-k
# --------------------------------------------------------------------------------------------


def test_top_k_per_leaf_keeps_the_k_largest_magnitudes(rng):
    params = {"a": jnp.asarray(rng.normal(size=(6, 5))), "b": jnp.asarray(rng.normal(size=9))}
    out = l1optax.prox_top_k(params, {"a": 4, "b": 2})
    for name, k in (("a", 4), ("b", 2)):
        x, z = np.asarray(params[name]).ravel(), np.asarray(out[name]).ravel()
        keep = np.argsort(-np.abs(x), kind="stable")[:k]
        expected = np.zeros_like(x)
        expected[keep] = x[keep]
        np.testing.assert_array_equal(z, expected)


def test_top_k_global_keeps_the_k_largest_over_all_leaves_and_exact_count(rng):
    params = [jnp.asarray(rng.normal(size=30)), None, jnp.asarray(rng.normal(size=(4, 5)) * 3)]
    out = l1optax.prox_top_k(params, 7, scope="global")
    flat = np.concatenate([np.asarray(params[0]), np.asarray(params[2]).ravel()])
    kth = np.sort(np.abs(flat))[-7]
    got = np.concatenate([np.asarray(out[0]), np.asarray(out[2]).ravel()])
    assert out[1] is None
    assert np.count_nonzero(got) == 7
    np.testing.assert_array_equal(got, np.where(np.abs(flat) >= kth, flat, 0.0))


def test_top_k_exact_count_with_ties_and_k_beyond_size():
    x = jnp.ones(10, jnp.bfloat16)
    out = l1optax.prox_top_k(x, 3)
    assert out.dtype == jnp.bfloat16 and int(jnp.count_nonzero(out)) == 3
    np.testing.assert_array_equal(np.asarray(l1optax.prox_top_k(x, 50)), np.asarray(x))


def test_top_k_in_a_diagonal_metric_is_the_weighted_projection():
    x = jnp.asarray([1.0, 2.0, 3.0, 0.5])
    s = jnp.asarray([0.01, 1.0, 100.0, 0.0])  # scores x^2/s: 100, 4, 0.09, inf
    out = l1optax.prox_top_k(x, 2, s)
    np.testing.assert_array_equal(np.asarray(out), [1.0, 0.0, 0.0, 0.5])


def test_top_k_traced_k_under_jit_matches_eager(rng):
    x = jnp.asarray(rng.normal(size=50), jnp.float32)
    jitted = jax.jit(lambda k: l1optax.prox_top_k(x, k))
    for k in (0, 5, 17):
        np.testing.assert_array_equal(np.asarray(jitted(k)), np.asarray(l1optax.prox_top_k(x, k)))


# --------------------------------------------------------------------------------------------
# through the optimizer machinery
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prox", "hyper", "name"),
    [
        (l1optax.prox_l0, 0.02, "l0"),
        (l1optax.prox_mcp, (0.3, 3.0), "mcp"),
        (l1optax.prox_scad, (0.3, 3.7), "scad"),
        (l1optax.prox_l_half, 0.3, "l_half"),
        (functools.partial(l1optax.prox_top_k, scope="global"), 5, "top_k"),
    ],
)
def test_usable_through_apply_prox_jitted(prox, hyper, name, rng):
    lr = 0.1
    tx = optax.chain(optax.sgd(lr), l1optax.apply_prox(prox, lr, hyper))
    params = {"w": jnp.asarray(rng.normal(size=(4, 6)), jnp.float32)}
    grads = {"w": jnp.asarray(rng.normal(size=(4, 6)), jnp.float32)}
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)["w"]
    target = np.asarray(params["w"], np.float64) - lr * np.asarray(grads["w"], np.float64)
    if name == "top_k":
        kth = np.sort(np.abs(target).ravel())[-5]
        expected = np.where(np.abs(target) >= kth, target, 0.0)
    else:
        lam, gamma = hyper if isinstance(hyper, tuple) else (hyper, None)
        expected = reference(name, target, lam, gamma, lr)
    np.testing.assert_allclose(np.asarray(new, np.float64), expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(new)[expected == 0] == 0.0)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES[:3])
def test_inject_hyperparams_strength_traced_equals_concrete(dtype):
    x = jnp.linspace(-3, 3, 13).astype(dtype)
    eager = l1optax.prox_scad(x, (0.5, 3.7), 0.5)
    traced = jax.jit(lambda lam: l1optax.prox_scad(x, (lam, 3.7), 0.5))(0.5)
    np.testing.assert_array_equal(np.asarray(eager, np.float32), np.asarray(traced, np.float32))
