"""Faults and bad input for every catalogued transform (SPEC item 16 and the bad-input table).

* NaN/inf gradients under ``optax.apply_if_finite`` leave params (and inner state) bitwise
  unchanged -- finite, exact zeros intact -- and training continues afterwards;
* without it, NaN propagates to the affected coordinates (never silently zeroed);
* thresholds below the bfloat16/float16 resolution behave as documented: computed in float32 and
  rounded once, so entries with |x| <= t become exactly 0 and the others round to the nearest
  representable value (checked bitwise against a NumPy float32 reference);
* hypothesis-generated pytrees (nesting, None, empty containers, empty and 0-d arrays, mixed
  float dtypes, integer/bool leaves) never crash with anything but the documented TypeError naming
  the offending leaf path.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import pytest
from _catalog import (
    CATALOG,
    UNWRAPPED,
    make_grads,
    make_params,
    params_for,
    tree_assert_bitwise_equal,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import l1optax

# ----------------------------------------------------------------------------- apply_if_finite


def _poison(grads, value):
    leaves, treedef = jax.tree.flatten(grads)
    w = leaves[1]  # dense/w
    leaves[1] = w.at[0, 5].set(value)
    return jax.tree.unflatten(treedef, leaves)


@pytest.mark.parametrize("entry", params_for(CATALOG))
def test_apply_if_finite_skips_nan_and_inf_steps(entry):
    tx = optax.apply_if_finite(entry.build(), max_consecutive_errors=10)
    step = jax.jit(
        lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(*tx.update(g, s, p))
    )
    params = make_params()
    state = tx.init(params)
    params, state = step(params, state, make_grads(params, 0))
    zeros_before = [np.asarray(p) == 0 for p in jax.tree.leaves(params)]
    for t, bad in enumerate([np.nan, np.inf, -np.inf], start=1):
        new_params, new_state = step(params, state, _poison(make_grads(params, t), bad))
        tree_assert_bitwise_equal(new_params, params, f"params after a {bad} gradient")
        tree_assert_bitwise_equal(new_state.inner_state, state.inner_state, "inner state")
        assert int(new_state.notfinite_count) == t
        assert not bool(new_state.last_finite)
        params, state = new_params, new_state
    for p, z in zip(jax.tree.leaves(params), zeros_before, strict=True):
        assert np.all(np.isfinite(np.asarray(p, np.float64)))
        np.testing.assert_array_equal(np.asarray(p) == 0, z)
    # a finite step afterwards is applied again and resets the error count
    params2, state = step(params, state, make_grads(params, 9))
    assert int(state.notfinite_count) == 0 and bool(state.last_finite)
    assert all(np.all(np.isfinite(np.asarray(p, np.float64))) for p in jax.tree.leaves(params2))
    if entry.wrapper != "multisteps":
        assert any(
            np.any(np.asarray(a) != np.asarray(b))
            for a, b in zip(jax.tree.leaves(params2), jax.tree.leaves(params), strict=True)
        )


@pytest.mark.parametrize("entry", params_for(UNWRAPPED))
def test_nan_gradient_propagates_without_apply_if_finite(entry):
    """Documented: NaN in the gradient is not silently zeroed (the prox of NaN is NaN)."""
    tx = entry.build()
    params = make_params()
    updates, _ = jax.jit(tx.update)(_poison(make_grads(params, 0), np.nan), tx.init(params), params)
    new = optax.apply_updates(params, updates)
    assert np.isnan(np.asarray(new["dense"]["w"])[0, 5])
    # other leaves are untouched by the NaN
    assert np.all(np.isfinite(np.asarray(new["out"]["w"])))


# ----------------------------------------------------------------------------- low precision


def _np_soft_threshold_rounded(x, t, dtype):
    xf = np.asarray(x, np.float32)
    t = np.float32(t)
    return (xf - np.clip(xf, -t, t)).astype(dtype)


@pytest.mark.parametrize(
    "dtype, t, values",
    [
        # bf16 has 8 significant bits: 1e-4 is far below the spacing near 1 (2**-7)
        (ml_dtypes.bfloat16, 1e-4, [1.0, -1.0, 5e-5, -9e-5, 3e-4, -2e-3, 0.5, 1e-4, 0.0]),
        # f16: 1e-8 is below the smallest subnormal (~6e-8)
        (np.float16, 1e-8, [6e-8, -1.2e-7, 1e-7, 1.0, 2.0**-14, -3e-8, 0.0]),
        # f16: a threshold between subnormals
        (np.float16, 1.5e-7, [6e-8, -1.2e-7, 1.8e-7, 3e-7, 1.0]),
    ],
)
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_threshold_below_low_precision_resolution(dtype, t, values, jit):
    x_np = np.asarray(values, np.float32).astype(dtype)
    x = jnp.asarray(x_np)
    f = jax.jit(l1optax.soft_threshold) if jit else l1optax.soft_threshold
    got = np.asarray(f(x, t))
    ref = _np_soft_threshold_rounded(x_np, t, dtype)
    assert got.dtype == x_np.dtype
    np.testing.assert_array_equal(got.astype(np.float32), ref.astype(np.float32))
    small = np.abs(x_np.astype(np.float32)) <= np.float32(t)
    assert np.all(got[small] == 0), "entries with |x| <= t must be exactly 0"
    # large entries do not move: x - t rounds back to x (documented, no drift to 0)
    big = np.abs(x_np.astype(np.float32)) >= 1.0
    np.testing.assert_array_equal(got[big], x_np[big])


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
def test_l1_prox_transform_with_tiny_threshold_matches_numpy(dtype):
    """Through the transform: eta*lam = 1e-6, far below the params' resolution."""
    lr, lam = 1e-3, 1e-3
    tx = optax.chain(optax.sgd(lr), l1optax.apply_l1_prox(lr, lam))
    rng = np.random.default_rng(0)
    p = jnp.asarray(np.r_[rng.normal(size=20), 5e-7, -8e-7, 2e-6], dtype)
    g = jnp.zeros_like(p)
    state = tx.init(p)
    for _ in range(5):
        u, state = jax.jit(tx.update)(g, state, p)
        new = optax.apply_updates(p, u)
        ref = _np_soft_threshold_rounded(np.asarray(p), lr * lam, np.asarray(p).dtype)
        np.testing.assert_array_equal(np.asarray(new, np.float32), ref.astype(np.float32))
        assert new.dtype == dtype
        p = new
    assert np.all(np.asarray(p)[20:22] == 0)


# ----------------------------------------------------------------------------- hypothesis pytrees

_FLOATS = [jnp.float32, jnp.bfloat16, jnp.float16]
_BAD = [jnp.int32, jnp.bool_]


@st.composite
def _leaf(draw):
    kind = draw(st.sampled_from(["float", "float", "float", "none", "bad"]))
    if kind == "none":
        return None
    shape = draw(st.sampled_from([(), (0,), (3,), (2, 2)]))
    dtype = draw(st.sampled_from(_FLOATS if kind == "float" else _BAD))
    seed = draw(st.integers(0, 2**16))
    values = np.random.default_rng(seed).normal(size=shape)
    return jnp.asarray(values if dtype != jnp.bool_ else values > 0, dtype)


_trees = st.recursive(
    _leaf(),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from(["a", "b", "w", "kernel"]), children, max_size=3),
    ),
    max_leaves=6,
    # A root ``None`` is indistinguishable from "no params passed" (a documented ValueError).
).filter(lambda t: t is not None)


def _bad_paths(tree):
    return [
        jax.tree_util.keystr(path) or "<root>"
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
        if not jnp.issubdtype(leaf.dtype, jnp.floating)
    ]


HYPOTHESIS_ENTRIES = [
    e
    for e in UNWRAPPED
    if e.name
    in {
        "sgd+apply_l1_prox",
        "adam+apply_l1_prox",
        "sgd+apply_prox",
        "add_l1_subgradient+adam",
        "with_l1_proximal_injected_sgd",
        "with_l1_subgradient_momentum",
        "prox_sgd",
        "prox_adam",
        "prox_adagrad",
        "prox_rmsprop",
        "ftrl",
        "cumulative_l1",
        "apply_group_l1_prox",
    }
]


_HYPOTHESIS_FAST = {
    "sgd+apply_l1_prox",
    "add_l1_subgradient+adam",
    "with_l1_proximal_injected_sgd",
    "prox_adam",
}


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(e, id=e.name, marks=[] if e.name in _HYPOTHESIS_FAST else [pytest.mark.slow])
        for e in HYPOTHESIS_ENTRIES
    ],
)
@settings(
    max_examples=20,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(tree=_trees)
def test_hypothesis_pytrees_only_documented_errors(entry, tree):
    tx = entry.build()
    bad = _bad_paths(tree)
    if bad:
        with pytest.raises(TypeError) as info:
            state = tx.init(tree)
            tx.update(tree, state, tree)
        message = str(info.value)
        assert any(path in message for path in bad), message
        assert "floating" in message or "float" in message, message
        return
    state = tx.init(tree)
    updates, new_state = tx.update(tree, state, tree)
    new = optax.apply_updates(tree, updates)
    assert jax.tree.structure(new, is_leaf=lambda x: x is None) == jax.tree.structure(
        tree, is_leaf=lambda x: x is None
    )
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(tree), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.all(np.isfinite(np.asarray(a, np.float64)))
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
