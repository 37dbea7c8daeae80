"""SPEC 1-5: ``l1_penalty`` against float64 NumPy and ``optax.tree.norm(..., ord=1)``."""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import rtol_for

import l1optax


def np_l1(tree, lam=1.0) -> float:
    """float64 NumPy reference: lam * sum |x| over the non-None leaves (modulus for complex)."""
    leaves = jax.tree.leaves(tree)
    lams = jax.tree.leaves(lam) if not np.isscalar(lam) else [lam] * len(leaves)
    total = 0.0
    for leaf, lam_leaf in zip(leaves, lams, strict=True):
        arr = np.asarray(leaf)
        arr = arr.astype(np.complex128) if np.iscomplexobj(arr) else arr.astype(np.float64)
        total += float(np.sum(np.asarray(lam_leaf, np.float64) * np.abs(arr)))
    return total


def random_tree(rng, dtype):
    def a(*shape):
        return jnp.asarray(rng.normal(size=shape), dtype)

    return {"dense": {"kernel": a(5, 3), "bias": a(3)}, "list": [a(4), (a(2, 2), a())]}


class Pair(NamedTuple):
    w: jax.Array
    b: jax.Array


# --- SPEC 1 -------------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.37, 3])
def test_penalty_equals_numpy_float64(float_dtype, maybe_jit, rng, lam):
    tree = random_tree(rng, float_dtype)
    got = maybe_jit(lambda t: l1optax.l1_penalty(t, lam))(tree)
    assert got.shape == ()
    expected_dtype = jnp.float64 if float_dtype == jnp.float64 else jnp.float32
    assert got.dtype == expected_dtype
    np.testing.assert_allclose(float(got), np_l1(tree, lam), rtol=max(rtol_for(float_dtype), 1e-6))


def test_penalty_equals_optax_tree_norm(float_dtype, rng):
    tree = random_tree(rng, float_dtype)
    got = l1optax.l1_penalty(tree)
    oracle = optax.tree.norm(
        jax.tree.map(
            lambda x: x.astype(jnp.float64 if float_dtype == jnp.float64 else jnp.float32), tree
        ),
        ord=1,
    )
    np.testing.assert_allclose(float(got), float(oracle), rtol=1e-6)


def test_low_precision_penalty_accumulates_in_float32():
    # 100_000 ones summed in bfloat16 would stall at 256; the penalty must be exact.
    for dtype in (jnp.bfloat16, jnp.float16):
        ones = jnp.ones((100_000,), dtype)
        assert float(l1optax.l1_penalty(ones)) == 100_000.0
        assert float(l1optax.l1_penalty({"a": ones, "b": -ones}, 0.5)) == 100_000.0


@pytest.mark.parametrize(
    "tree",
    [
        Pair(w=jnp.array([1.0, -2.0]), b=jnp.array(-3.0)),
        [jnp.array([1.0, -2.0]), (jnp.array(-3.0),)],
        {"a": {"b": {"c": jnp.array([[1.0, -2.0], [0.0, 4.5]])}}, "d": jnp.float32(-0.25)},
        jnp.array(-7.5),
        2.5,
    ],
    ids=["namedtuple", "list-tuple", "nested-dict", "0d-array", "python-float"],
)
def test_penalty_of_namedtuple_list_nested_0d_and_scalar_trees(tree, maybe_jit):
    got = maybe_jit(lambda t: l1optax.l1_penalty(t, 2.0))(tree)
    np.testing.assert_allclose(float(got), np_l1(tree, 2.0), rtol=1e-7)


def test_penalty_of_a_flax_linen_param_tree():
    model = nn.Sequential([nn.Dense(7), nn.relu, nn.Dense(2)])
    variables = model.init(jax.random.PRNGKey(0), jnp.ones((1, 4)))
    got = l1optax.l1_penalty(variables, 1e-2)
    np.testing.assert_allclose(float(got), np_l1(variables, 1e-2), rtol=1e-6)
    np.testing.assert_allclose(
        float(got), 1e-2 * float(optax.tree.norm(variables, ord=1)), rtol=1e-6
    )


def test_penalty_of_a_flax_nnx_state():
    from flax import nnx

    model = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
    state = nnx.state(model, nnx.Param)
    got = l1optax.l1_penalty(state, 0.1)
    expected = 0.1 * (
        np.abs(np.asarray(model.kernel[...])).sum() + np.abs(np.asarray(model.bias[...])).sum()
    )
    np.testing.assert_allclose(float(got), expected, rtol=1e-6)


# --- SPEC 2 -------------------------------------------------------------------------------


@pytest.mark.parametrize("empty", [{}, [], (), {"a": None}, [None, {"b": None}]])
def test_empty_trees_give_a_float32_scalar_zero(empty, maybe_jit):
    got = maybe_jit(l1optax.l1_penalty)(empty)
    assert got.shape == () and got.dtype == jnp.float32
    assert float(got) == 0.0


def test_none_leaves_are_skipped():
    tree = {"w": jnp.array([1.0, -2.0]), "b": None, "c": [None, jnp.array(3.0)]}
    assert float(l1optax.l1_penalty(tree, 0.5)) == 3.0


@pytest.mark.parametrize(
    "mask",
    [
        {"w": True, "b": False, "nested": {"x": False, "y": True}},
        lambda p: {"w": True, "b": False, "nested": {"x": False, "y": True}},
    ],
    ids=["pytree", "callable"],
)
def test_masked_out_leaves_contribute_nothing(mask, maybe_jit):
    tree = {
        "w": jnp.array([1.0, -2.0]),
        "b": jnp.array([100.0]),
        "nested": {"x": jnp.array(50.0), "y": jnp.array([-0.5, 0.25])},
    }
    got = maybe_jit(lambda t: l1optax.l1_penalty(t, 2.0, mask=mask))(tree)
    np.testing.assert_allclose(float(got), 2.0 * (1 + 2 + 0.5 + 0.25), rtol=1e-7)


def test_prefix_mask_covers_whole_subtrees():
    tree = {"enc": {"a": jnp.array([1.0, -1.0]), "b": jnp.array(2.0)}, "dec": jnp.array([5.0])}
    got = l1optax.l1_penalty(tree, mask={"enc": True, "dec": False})
    assert float(got) == 4.0


def test_masked_out_integer_leaf_is_allowed():
    tree = {"w": jnp.array([1.0, -2.0]), "step": jnp.array(3, jnp.int32)}
    assert float(l1optax.l1_penalty(tree, mask={"w": True, "step": False})) == 3.0


def test_per_leaf_and_per_coordinate_strengths(rng, maybe_jit):
    tree = {
        "a": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
        "b": jnp.asarray(rng.normal(size=5), jnp.float32),
    }
    per_leaf = {"a": 0.5, "b": 2.0}
    got = maybe_jit(lambda t: l1optax.l1_penalty(t, per_leaf))(tree)
    np.testing.assert_allclose(float(got), np_l1(tree, per_leaf), rtol=1e-6)

    weights = {"a": rng.uniform(0, 2, size=(3, 4)), "b": rng.uniform(0, 2, size=5)}
    got = maybe_jit(lambda t: l1optax.l1_penalty(t, jax.tree.map(jnp.asarray, weights)))(tree)
    np.testing.assert_allclose(float(got), np_l1(tree, weights), rtol=1e-6)

    # broadcastable per-coordinate weights (one weight per column) and a prefix tree
    col = rng.uniform(0, 2, size=(4,))
    got = l1optax.l1_penalty(tree, {"a": jnp.asarray(col, jnp.float32), "b": 1.0})
    expected = (
        np.sum(col * np.abs(np.asarray(tree["a"], np.float64)))
        + np.abs(np.asarray(tree["b"], np.float64)).sum()
    )
    np.testing.assert_allclose(float(got), expected, rtol=1e-6)
    nested = {"enc": tree, "dec": jnp.array([4.0])}
    got = l1optax.l1_penalty(nested, {"enc": 0.5, "dec": 0.0})
    np.testing.assert_allclose(float(got), 0.5 * np_l1(tree), rtol=1e-6)


# --- SPEC 3 -------------------------------------------------------------------------------


def test_penalty_is_nonnegative_even_homogeneous_and_subadditive(float_dtype, rng):
    eps = float(jnp.finfo(float_dtype).eps)
    t = random_tree(rng, float_dtype)
    s = random_tree(rng, float_dtype)
    pen = jax.jit(l1optax.l1_penalty)
    lt = float(pen(t))
    assert lt >= 0
    assert float(pen(jax.tree.map(jnp.negative, t))) == lt
    # |c| * t computed from the leaves: powers of two are exact in every dtype
    for c in (-2.0, 0.5, 4.0):
        scaled = jax.tree.map(lambda x, c=c: (x * c).astype(x.dtype), t)
        np.testing.assert_allclose(float(pen(scaled)), abs(c) * lt, rtol=2 * eps)
    summed = jax.tree.map(
        lambda x, y: x.astype(jnp.float64 if float_dtype == jnp.float64 else jnp.float32) + y, t, s
    )
    assert float(pen(summed)) <= float(pen(t)) + float(pen(s)) + 1e-5
    assert float(l1optax.l1_penalty(t)) == float(pen(t)) or np.isclose(
        float(l1optax.l1_penalty(t)), float(pen(t)), rtol=1e-7, atol=0
    )


def test_penalty_vmaps_over_a_batch_of_trees(rng):
    batch = {"w": jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)}
    got = jax.vmap(lambda t: l1optax.l1_penalty(t, 0.3))(batch)
    expected = 0.3 * np.abs(np.asarray(batch["w"], np.float64)).sum(axis=1)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6)


# --- SPEC 4 -------------------------------------------------------------------------------


def test_gradient_is_lam_sign_with_zero_at_zero(float_dtype, maybe_jit):
    x = jnp.asarray([-2.0, -0.0, 0.0, 0.5, 3.0, -1e-3], float_dtype)
    lam = 0.75
    grad = maybe_jit(jax.grad(lambda w: l1optax.l1_penalty(w, lam)))(x)
    assert grad.dtype == x.dtype
    expected = lam * np.sign(np.asarray(x, np.float64))
    np.testing.assert_allclose(np.asarray(grad, np.float64), expected, rtol=rtol_for(float_dtype))
    assert float(grad[1]) == 0.0 and float(grad[2]) == 0.0
    # JAX's own abs has derivative 1 at 0: the reason for the custom JVP.
    assert float(jax.grad(jnp.abs)(0.0)) == 1.0


def test_gradient_over_a_tree_with_weights_and_mask():
    tree = {"w": jnp.array([0.0, 2.0, -3.0]), "b": jnp.array([1.0])}
    weights = {"w": jnp.array([5.0, 0.5, 2.0]), "b": 1.0}
    grad = jax.grad(lambda t: l1optax.l1_penalty(t, weights, mask={"w": True, "b": False}))(tree)
    np.testing.assert_array_equal(np.asarray(grad["w"]), [0.0, 0.5, -2.0])
    np.testing.assert_array_equal(np.asarray(grad["b"]), [0.0])


def test_gradient_with_respect_to_lam_is_the_norm():
    x = jnp.array([1.0, -2.0, 0.0])
    assert float(jax.grad(lambda lam: l1optax.l1_penalty(x, lam))(0.3)) == 3.0


def test_second_derivative_is_zero():
    h = jax.hessian(lambda w: l1optax.l1_penalty(w, 2.0))(jnp.array([1.0, 0.0, -1.0]))
    np.testing.assert_array_equal(np.asarray(h), np.zeros((3, 3)))


# --- SPEC 5 (complex: modulus) ------------------------------------------------------------


def test_complex_leaves_use_the_modulus(rng, maybe_jit):
    z = (rng.normal(size=7) + 1j * rng.normal(size=7)).astype(np.complex64)
    tree = {"z": jnp.asarray(z), "r": jnp.array([-1.0, 2.0])}
    got = maybe_jit(lambda t: l1optax.l1_penalty(t, 0.5))(tree)
    assert got.dtype == jnp.float32
    expected = 0.5 * (np.abs(z.astype(np.complex128)).sum() + 3.0)
    np.testing.assert_allclose(float(got), expected, rtol=1e-6)


def test_complex_gradient_at_zero_is_zero():
    z = jnp.array([0.0 + 0.0j, 3.0 + 4.0j], jnp.complex64)
    # d|z|/d(re) = re/|z|, 0 at z == 0
    g = jax.grad(lambda re: l1optax.l1_penalty(re + 1j * jnp.imag(z)))(jnp.real(z))
    np.testing.assert_allclose(np.asarray(g), [0.0, 0.6], rtol=1e-6)
