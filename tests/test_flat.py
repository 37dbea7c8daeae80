"""The many-leaf fast path (``l1optax.flat_layout``): exact round trips and the same training.

References are NumPy concatenation/splitting (float64 where it matters) and the plain tree-shaped
optax/l1optax computation, which the flat path must reproduce.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import assert_trees_bitwise_equal, loop_fit

import l1optax
from l1optax import FlatLayout, flat_layout


class Pair(NamedTuple):
    a: jax.Array
    b: jax.Array


def _tree(rng, dtype=jnp.float32):
    """Nested dict/list/tuple/NamedTuple with a None, a 0-d and a zero-size leaf."""
    r = lambda *s: jnp.asarray(rng.standard_normal(s), dtype)  # noqa: E731
    return {
        "dense": {"w": r(4, 3), "b": r(3)},
        "list": [r(2), None, r(), r(0)],
        "pair": Pair(a=r(5), b=r(1, 2)),
        "tuple": (r(2, 2, 2),),
    }


def _np_concat(tree):
    leaves = [np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(tree)]
    return np.concatenate(leaves) if leaves else np.zeros(0)


def _many_leaves(rng, n_leaves=40, dtype=jnp.float32):
    sizes = rng.integers(1, 9, size=n_leaves)
    return {
        f"layer{i:03d}": jnp.asarray(rng.standard_normal(int(s)), dtype)
        for i, s in enumerate(sizes)
    }


# --- layout and round trips -------------------------------------------------------------


def test_ravel_equals_numpy_concatenation_and_round_trips_bitwise(rng, maybe_jit):
    params = _tree(rng)
    layout = flat_layout(params)
    flat = maybe_jit(layout.ravel)(params)
    assert list(flat) == ["float32"]
    np.testing.assert_array_equal(np.asarray(flat["float32"], np.float64), _np_concat(params))
    back = maybe_jit(layout.unravel)(flat)
    assert_trees_bitwise_equal(back, params)
    assert layout.size == _np_concat(params).size == 4 * 3 + 3 + 2 + 1 + 0 + 5 + 2 + 8
    assert layout.num_leaves == 8


def test_mixed_dtypes_get_one_buffer_each_in_leaf_order(rng, x64):
    params = {
        "a": jnp.asarray(rng.standard_normal(3), jnp.bfloat16),
        "b": jnp.asarray(rng.standard_normal(2), jnp.float32),
        "c": jnp.asarray(rng.standard_normal((2, 2)), jnp.bfloat16),
        "d": jnp.asarray(rng.standard_normal(1), jnp.float64),
        "e": jnp.asarray(rng.standard_normal(2), jnp.float16),
    }
    layout = flat_layout(params)
    flat = layout.ravel(params)
    assert {k: v.dtype.name for k, v in flat.items()} == {
        "bfloat16": "bfloat16",
        "float32": "float32",
        "float64": "float64",
        "float16": "float16",
    }
    assert layout.sizes == {"bfloat16": 7, "float32": 2, "float64": 1, "float16": 2}
    np.testing.assert_array_equal(
        np.asarray(flat["bfloat16"], np.float64),
        np.concatenate(
            [np.asarray(params["a"], np.float64), np.asarray(params["c"], np.float64).ravel()]
        ),
    )
    assert_trees_bitwise_equal(layout.unravel(flat), params)


def test_layout_is_hashable_static_and_equal_for_equal_structure(rng):
    p = _tree(rng)
    q = jax.tree.map(lambda x: x + 1, p)
    assert flat_layout(p) == flat_layout(q)
    assert hash(flat_layout(p)) == hash(flat_layout(q))
    assert flat_layout(p) != flat_layout({"x": jnp.ones(3)})
    assert "8 leaves" in repr(flat_layout(p))

    @jax.jit
    def f(flat):
        return flat["float32"] * 2

    flat = flat_layout(p).ravel(p)
    g = jax.jit(lambda layout, fl: layout.unravel(fl), static_argnums=0)
    assert_trees_bitwise_equal(g(flat_layout(q), flat), p)
    np.testing.assert_array_equal(f(flat), 2 * np.asarray(flat["float32"]))


def test_empty_tree_and_single_leaf():
    layout = flat_layout({})
    assert layout.ravel({}) == {}
    assert layout.unravel({}) == {}
    x = jnp.arange(6.0).reshape(2, 3)
    single = flat_layout(x)
    np.testing.assert_array_equal(single.ravel(x)["float32"], np.arange(6.0))
    np.testing.assert_array_equal(single.unravel(single.ravel(x)), np.arange(6.0).reshape(2, 3))


def test_grad_through_unravel_is_the_flat_gradient(rng, x64):
    """d/dflat of f(unravel(flat)) == ravel(grad_tree f), checked against the analytic gradient."""
    params = _tree(rng, jnp.float64)
    layout = flat_layout(params)
    coef = jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape)), params)

    def loss_tree(p):
        return sum(
            jnp.sum(c * x**3)
            for c, x in zip(jax.tree.leaves(coef), jax.tree.leaves(p), strict=True)
        )

    g_flat = jax.jit(jax.grad(lambda f: loss_tree(layout.unravel(f))))(layout.ravel(params))
    expected = _np_concat(coef) * 3 * _np_concat(params) ** 2  # numpy float64
    np.testing.assert_allclose(np.asarray(g_flat["float64"]), expected, rtol=1e-12, atol=0)
    chex.assert_trees_all_close(layout.unravel(g_flat), jax.grad(loss_tree)(params), rtol=1e-12)


def test_grad_of_unravel_is_one_concatenate_not_pads():
    """The transpose of the split is a single concatenation (no O(leaves x N) pad-and-add)."""
    params = [jnp.ones(3)] * 50
    layout = flat_layout(params)
    jaxpr = jax.make_jaxpr(jax.grad(lambda f: sum(jnp.sum(x**2) for x in layout.unravel(f))))(
        layout.ravel(params)
    )
    prims = [e.primitive.name for e in jaxpr.jaxpr.eqns]
    assert prims.count("concatenate") == 1
    assert "pad" not in prims


@hypothesis.settings(max_examples=30)
@hypothesis.given(
    shapes=st.lists(st.lists(st.integers(0, 3), min_size=0, max_size=3), min_size=0, max_size=8),
    seed=st.integers(0, 2**16),
)
def test_round_trip_property(shapes, seed):
    rng = np.random.default_rng(seed)
    params = [jnp.asarray(rng.standard_normal(tuple(s)), jnp.float32) for s in shapes]
    layout = flat_layout(params)
    flat = layout.ravel(params)
    assert layout.size == sum(int(np.prod(s)) for s in shapes)
    if shapes:
        np.testing.assert_array_equal(np.asarray(flat["float32"], np.float64), _np_concat(params))
    assert_trees_bitwise_equal(layout.unravel(flat), params)


# --- hyperparameters ----------------------------------------------------------------------


def test_ravel_hyperparams_scalar_stays_scalar_tree_and_mask_become_coordinates(rng):
    params = {"b": jnp.zeros(2), "w": jnp.zeros((2, 2)), "x": [jnp.zeros(1), jnp.zeros(3)]}
    layout = flat_layout(params)
    assert layout.ravel_hyperparams(0.3) == 0.3
    sched = optax.linear_schedule(0.1, 0.0, 10)
    assert layout.ravel_hyperparams(sched) is sched
    per_coord = np.arange(3.0) / 10
    got = layout.ravel_hyperparams({"b": 0.5, "w": 1.0, "x": [2, per_coord]})["float32"]
    np.testing.assert_array_equal(got, np.array([0.5, 0.5, 1, 1, 1, 1, 2, 0, 0.1, 0.2], np.float32))
    got = layout.ravel_hyperparams(0.5, mask={"b": False, "w": True, "x": False})["float32"]
    np.testing.assert_array_equal(got, np.array([0, 0, 0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0], np.float32))
    got = layout.ravel_hyperparams(0.5, mask=lambda p: jax.tree.map(lambda x: x.ndim == 2, p))
    np.testing.assert_array_equal(got["float32"], np.array([0, 0, 0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0]))


def test_ravel_hyperparams_low_precision_params_get_f32_thresholds():
    layout = flat_layout({"a": jnp.zeros(2, jnp.bfloat16)})
    got = layout.ravel_hyperparams({"a": 1e-5})
    assert got["bfloat16"].dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got["bfloat16"]), 1e-5, rtol=1e-7)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_ravel_hyperparams_rejects_bad_strengths(bad):
    layout = flat_layout({"a": jnp.zeros(2), "b": jnp.zeros(1)})
    with pytest.raises(
        ValueError, match=r"FlatLayout\.ravel_hyperparams\(l1reg=\.\.\.\).*non-negative"
    ):
        layout.ravel_hyperparams({"a": 0.1, "b": bad}, arg="l1reg")


def test_ravel_hyperparams_errors():
    layout = flat_layout({"a": jnp.zeros(2), "b": jnp.zeros(1)})
    sched = optax.constant_schedule(0.1)
    with pytest.raises(TypeError, match="schedule cannot be combined with a mask"):
        layout.ravel_hyperparams(sched, mask={"a": True, "b": False})
    with pytest.raises(TypeError, match="schedules inside a pytree"):
        layout.ravel_hyperparams({"a": sched, "b": 0.1})
    with pytest.raises(ValueError, match="must be a scalar or a pytree matching"):
        layout.ravel_hyperparams({"zz": 0.1})
    with pytest.raises(ValueError, match=r"shape \(3,\) at leaf \['a'\]"):
        layout.ravel_hyperparams({"a": np.ones(3), "b": 0.1})
    with pytest.raises(ValueError, match="mask"):
        layout.ravel_hyperparams(0.1, mask={"q": True})


# --- bad input ----------------------------------------------------------------------------


def test_integer_leaf_rejected_with_its_path():
    with pytest.raises(TypeError, match=r"flat_layout.*\['layer'\]\['n'\].*int32"):
        flat_layout({"layer": {"w": jnp.ones(2), "n": jnp.array(3, jnp.int32)}})


def test_ravel_and_unravel_check_structure_and_shapes():
    layout = flat_layout({"a": jnp.zeros(2), "b": jnp.zeros((1, 3))})
    with pytest.raises(ValueError, match=r"FlatLayout\.ravel.*structure"):
        layout.ravel({"a": jnp.zeros(2)})
    with pytest.raises(
        ValueError, match=r"FlatLayout\.ravel.*shape \(3,\) at leaf \['b'\].*\(1, 3\)"
    ):
        layout.ravel({"a": jnp.zeros(2), "b": jnp.zeros(3)})
    with pytest.raises(ValueError, match=r"FlatLayout\.unravel.*keys \['float32'\]"):
        layout.unravel({"float16": jnp.zeros(5)})
    with pytest.raises(ValueError, match=r"FlatLayout\.unravel.*\(5,\), got \(4,\)"):
        layout.unravel({"float32": jnp.zeros(4)})
    with pytest.raises(ValueError, match="needs a dict"):
        layout.unravel(jnp.zeros(5))


# --- same training as the plain path ---------------------------------------------------------


def _quadratic_loss(target):
    def loss(params):
        return sum(
            jnp.sum(0.5 * (p - t) ** 2 + 0.1 * p**4)
            for p, t in zip(jax.tree.leaves(params), jax.tree.leaves(target), strict=True)
        )

    return loss


def _train_plain(tx, params, loss, steps):
    return loop_fit(tx, params, jax.grad(loss), steps, fused=True)


def _train_flat(tx, params, loss, steps, layout):
    grad = jax.grad(lambda f: loss(layout.unravel(f)))
    flat, state = loop_fit(tx, layout.ravel(params), grad, steps, fused=True)
    return layout.unravel(flat), state


LR = 0.05


def _optimizers(layout, l1reg_tree, mask):
    """(name, tree transform, flat transform) pairs that must agree."""
    flat_l1 = layout.ravel_hyperparams(l1reg_tree, mask=mask, arg="l1reg")
    return [
        (
            "sgd+prox",
            optax.chain(optax.sgd(LR), l1optax.apply_l1_prox(LR, 0.3)),
            optax.chain(optax.sgd(LR), l1optax.apply_l1_prox(LR, 0.3)),
        ),
        (
            "prox_adam(tree l1reg, mask)",
            l1optax.prox_adam(LR, l1reg_tree, mask=mask),
            l1optax.prox_adam(LR, flat_l1),
        ),
        (
            "adam+subgradient(tree l1reg)",
            l1optax.with_l1(optax.adam(LR), l1reg_tree, method="subgradient"),
            l1optax.with_l1(
                optax.adam(LR), layout.ravel_hyperparams(l1reg_tree), method="subgradient"
            ),
        ),
        (
            "prox_adam(schedule)",
            l1optax.prox_adam(
                optax.linear_schedule(LR, 0.0, 20), optax.linear_schedule(0.5, 0.1, 20)
            ),
            l1optax.prox_adam(
                optax.linear_schedule(LR, 0.0, 20),
                layout.ravel_hyperparams(optax.linear_schedule(0.5, 0.1, 20)),
            ),
        ),
        ("prox_adam", l1optax.prox_adam(LR, 0.3), l1optax.prox_adam(LR, 0.3)),
        ("prox_sgd", l1optax.prox_sgd(LR, 0.3), l1optax.prox_sgd(LR, 0.3)),
    ]


def _assert_same(flat_result, plain_result, name, *, rtol, min_zero_agreement=1.0):
    total = agree = 0
    for a, b in zip(jax.tree.leaves(flat_result), jax.tree.leaves(plain_result), strict=True):
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
        np.testing.assert_allclose(a64, b64, rtol=rtol, atol=rtol, err_msg=name)  # |p| ~ 1
        total += a64.size
        agree += int(np.sum((a64 == 0) == (b64 == 0)))
    assert agree >= min_zero_agreement * total, f"{name}: exact zeros differ ({agree}/{total})"


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
def test_flat_update_matches_plain_update_for_the_same_gradients(rng, dtype):
    """Three updates from identical gradients: the same elementwise arithmetic, to rounding."""
    params = _many_leaves(rng, 16, dtype)
    layout = flat_layout(params)
    names = sorted(params)
    l1reg_tree = {k: 0.1 * (i % 4) for i, k in enumerate(names)}
    mask = {k: i % 5 != 0 for i, k in enumerate(names)}
    grads = [
        jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), dtype), params)
        for _ in range(3)
    ]
    eps = float(jnp.finfo(dtype).eps)
    n_zero = 0
    for name, tx_tree, tx_flat in _optimizers(layout, l1reg_tree, mask):
        p_tree, s_tree = params, tx_tree.init(params)
        p_flat, s_flat = layout.ravel(params), tx_flat.init(layout.ravel(params))
        up_tree, up_flat = jax.jit(tx_tree.update), jax.jit(tx_flat.update)
        for g in grads:
            u, s_tree = up_tree(g, s_tree, p_tree)
            p_tree = optax.apply_updates(p_tree, u)
            u, s_flat = up_flat(layout.ravel(g), s_flat, p_flat)
            p_flat = optax.apply_updates(p_flat, u)
        out = layout.unravel(p_flat)
        chex.assert_trees_all_equal_dtypes(out, params)
        _assert_same(out, p_tree, name, rtol=4 * eps)
        n_zero += sum(int(jnp.sum(x == 0)) for x in jax.tree.leaves(out))
        assert len(jax.tree.leaves(s_flat)) <= 6, name  # a handful of buffers, not one per leaf
    assert n_zero > 0


def test_flat_training_matches_plain_path(rng):
    """10 steps with gradients through ``unravel``: same trajectory up to accumulated rounding.

    float32 only: in bfloat16 the gradient's own rounding (fused differently in the two programs)
    compounds over steps; the optimizer arithmetic itself is compared in bfloat16 above.
    """
    dtype = jnp.float32
    params = _many_leaves(rng, 16, dtype)
    target = jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), dtype), params)
    loss = _quadratic_loss(target)
    layout = flat_layout(params)
    names = sorted(params)
    l1reg_tree = {k: 0.1 * (i % 4) for i, k in enumerate(names)}
    mask = {k: i % 5 != 0 for i, k in enumerate(names)}
    for name, tx_tree, tx_flat in _optimizers(layout, l1reg_tree, mask):
        plain, _ = _train_plain(tx_tree, params, loss, steps=10)
        flat, _ = _train_flat(tx_flat, params, loss, steps=10, layout=layout)
        chex.assert_trees_all_equal_dtypes(flat, params)
        _assert_same(flat, plain, name, rtol=1e-5, min_zero_agreement=0.99)


def test_flat_ista_matches_numpy_float64_reference(rng, x64):
    """Flat proximal SGD == the ISTA recursion in float64 NumPy, on a many-leaf lasso."""
    params = _many_leaves(rng, 30, jnp.float64)
    target = jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape)), params)
    layout = flat_layout(params)
    lam, lr = 0.4, 0.5
    tx = optax.chain(optax.sgd(lr), l1optax.apply_l1_prox(lr, lam))
    loss = lambda p: sum(  # noqa: E731
        0.5 * jnp.sum((x - t) ** 2)
        for x, t in zip(jax.tree.leaves(p), jax.tree.leaves(target), strict=True)
    )
    flat, _ = _train_flat(tx, params, loss, steps=10, layout=layout)
    w, y = _np_concat(params), _np_concat(target)
    for _ in range(10):
        z = w - lr * (w - y)
        w = np.sign(z) * np.maximum(np.abs(z) - lr * lam, 0)
    np.testing.assert_allclose(_np_concat(flat), w, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(_np_concat(flat) == 0, w == 0)
    assert (w == 0).sum() > 0


def test_flat_step_with_donation_and_stable_state():
    """Momentum SGD + prox on flat buffers, donated, against a NumPy float64 recursion."""
    params = [jnp.full((3,), 0.5), jnp.full((2, 2), -0.01)]
    layout = flat_layout(params)
    lr, lam, beta = 0.1, 0.2, 0.9
    # chain(sgd(momentum), apply_l1_prox): the uniform threshold after heavy ball, as the recursion
    tx = l1optax.with_l1(optax.sgd(lr, momentum=beta), lam, method="decoupled", learning_rate=lr)
    flat = layout.ravel(params)
    state = tx.init(flat)

    def grads_of(f):  # loss = sum(x**2)
        return jax.grad(lambda f_: sum(jnp.sum(x**2) for x in layout.unravel(f_)))(f)

    def step(f, s):
        u, s = tx.update(grads_of(f), s, f)
        return optax.apply_updates(f, u), s

    step = jax.jit(step, donate_argnums=(0, 1))
    shapes0 = jax.tree.map(lambda x: (x.shape, x.dtype), state)
    w, trace = np.asarray(_np_concat(params)), np.zeros(7)
    for _ in range(4):
        old = flat["float32"]
        flat, state = step(flat, state)
        assert old.is_deleted()  # donated
        trace = 2 * w + beta * trace
        z = w - lr * trace
        w = np.sign(z) * np.maximum(np.abs(z) - lr * lam, 0)
    assert jax.tree.map(lambda x: (x.shape, x.dtype), state) == shapes0
    np.testing.assert_allclose(np.asarray(flat["float32"], np.float64), w, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(flat["float32"]) == 0, w == 0)
    assert (w == 0).sum() == 4  # the small leaf was thresholded to exactly 0
    assert step._cache_size() == 1  # no recompilation


def test_flatlayout_constructor_is_public_and_documented():
    assert isinstance(flat_layout([jnp.ones(1)]), FlatLayout)
    for obj in (
        FlatLayout,
        flat_layout,
        FlatLayout.ravel,
        FlatLayout.unravel,
        FlatLayout.ravel_hyperparams,
    ):
        assert ".. math::" in obj.__doc__
