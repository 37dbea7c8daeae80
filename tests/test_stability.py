"""State stability for every catalogued transform (SPEC items 15-16).

* the catalog covers every public transform factory in ``l1optax.__all__``;
* ``update`` keeps the state's dtype, weak type and shape (proved by calling it inside
  ``lax.cond`` against the unchanged state, and by comparing abstract values);
* three jitted steps compile exactly once;
* bfloat16 parameters with float32 schedules give bfloat16 updates, parameters and stable state;
* the step count saturates at int32 max without breaking schedules (checked against NumPy);
* ``init`` works from ``jax.ShapeDtypeStruct``/``jax.eval_shape`` without device memory;
* jit and eager agree;
* every entry builds, and its updates are finite and non-zero.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _catalog import (
    CATALOG,
    EXPECTED_FACTORIES,
    UNWRAPPED,
    covered_names,
    make_grads,
    make_params,
    params_for,
    transform_factories,
)

import l1optax

INT32_MAX = np.iinfo(np.int32).max


def _avals(tree):
    return jax.tree.map(
        lambda x: (jnp.shape(x), jnp.result_type(x), getattr(jax.typeof(x), "weak_type", False)),
        tree,
    )


# ----------------------------------------------------------------------------- coverage


def test_catalog_covers_every_public_transform_factory():
    factories = transform_factories()
    # The detector must find the core factories, or it would silently find nothing.
    assert {"apply_l1_prox", "add_l1_subgradient", "with_l1", "apply_prox"} <= set(factories)
    # Announced optimizers that landed must be detected too.
    for name in EXPECTED_FACTORIES:
        if name in l1optax.__all__:
            assert name in factories
    missing = sorted(set(factories) - covered_names())
    assert not missing, f"public transform factories not in tests/_catalog.py: {missing}"
    # Non-factories: every remaining public function must not be annotated as a transform.
    for name in set(l1optax.__all__) - set(factories):
        obj = getattr(l1optax, name)
        if inspect.isfunction(obj):
            ann = str(inspect.signature(obj).return_annotation)
            assert "GradientTransformation" not in ann, name


# ----------------------------------------------------------------------------- state stability


@pytest.mark.parametrize("entry", params_for(CATALOG))
def test_state_stable_one_compilation_dtype_kept(entry):
    """lax.cond proves state types unchanged; 3 steps trace once; dtypes (bf16 too) are kept.

    The parameters mix bfloat16 and float32 leaves; the float32 schedules and moments inside
    the transforms must not leak float32 into the bfloat16 updates or parameters.
    """
    tx = entry.build()
    params = make_params(jnp.bfloat16)
    params["out"] = make_params(jnp.float32)["out"]
    dtypes = jax.tree.map(lambda p: p.dtype, params)
    state = tx.init(params)
    traces = []
    any_moved = False

    @jax.jit
    def step(pred, params, state, grads):
        traces.append(1)
        updates, new_state = tx.update(grads, state, params)
        # lax.cond demands both branches return identical types: the updated state must have
        # the very dtype/shape of the incoming state.
        kept = jax.lax.cond(pred, lambda: new_state, lambda: state)
        return optax.apply_updates(params, updates), updates, kept, new_state

    for t in range(3):
        params, updates, kept, new_state = step(
            jnp.asarray(t % 2 == 0), params, state, make_grads(params, t)
        )
        # outside cond too: cond would promote weak types away, this comparison does not.
        assert _avals(new_state) == _avals(state), f"step {t}"
        assert _avals(kept) == _avals(state), f"step {t}"
        # Finite and actually moving (a transform that returned zero updates would pass every
        # type check here); MultiSteps emits zeros until it has accumulated k gradients.
        leaves = [np.asarray(u, np.float64) for u in jax.tree.leaves(updates)]
        assert all(np.all(np.isfinite(u)) for u in leaves)
        moved = any(np.any(u != 0) for u in leaves)
        assert moved or entry.wrapper == "multisteps", f"step {t}: all updates are zero"
        any_moved = any_moved or moved
        if entry.wrapper == "inject":
            # optax.inject_hyperparams stores the learning rate as a float32 array and
            # optax.sgd multiplies bf16 gradients by it: optax itself promotes the updates to
            # float32 (apply_updates casts back, checked below). Pin that so a change shows.
            assert all(u.dtype == jnp.float32 for u in jax.tree.leaves(updates))
        else:
            assert jax.tree.map(lambda u: u.dtype, updates) == dtypes
        assert jax.tree.map(lambda p: p.dtype, params) == dtypes
        state = new_state
    assert isinstance(tx, optax.GradientTransformation)
    assert any_moved
    assert len(traces) == 1, "the step was traced more than once"
    assert step._cache_size() == 1


def test_bf16_prox_with_f32_schedule_matches_numpy():
    """The bf16 result is the f32 prox of (p - eta*g) up to one bf16 ulp; zeros exact."""
    sched = optax.linear_schedule(0.1, 0.02, transition_steps=10)
    tx = optax.chain(optax.sgd(sched), l1optax.apply_l1_prox(sched, 0.5))
    rng = np.random.default_rng(3)
    p = jnp.asarray(rng.normal(size=64) * 0.1, jnp.bfloat16)
    state = tx.init(p)
    for t in range(4):
        g = jnp.asarray(rng.normal(size=64), jnp.bfloat16)
        eta = float(sched(t))
        u, state = jax.jit(tx.update)(g, state, p)
        new = optax.apply_updates(p, u)
        # Reference: sgd's update is -eta*g in bf16 (optax casts the schedule value to g's
        # dtype), p + u and the prox are computed in f32, z is rounded to bf16 once.
        sgd_u = np.asarray(jnp.asarray(-eta, jnp.bfloat16) * g, np.float32)
        x = np.asarray(p, np.float32) + sgd_u
        thr = np.float32(eta) * np.float32(0.5)
        z = np.asarray(
            jnp.asarray(np.sign(x) * np.maximum(np.abs(x) - thr, 0), jnp.bfloat16), np.float32
        )
        got = np.asarray(new, np.float32)
        assert new.dtype == jnp.bfloat16
        # Exact zeros exactly where the prox is 0.
        np.testing.assert_array_equal(got == 0, z == 0)
        # Elsewhere the result is within two bf16 ulps of the reference: optax's additive update
        # p + (z - p) rounds in bf16 (not bitwise the prox point; see the issue-7 report), and
        # XLA may keep sgd's product -eta*g in f32 (excess precision) where NumPy rounds it.
        pf = np.asarray(p, np.float32)
        scale = np.maximum.reduce([np.abs(pf), np.abs(x), np.abs(z)])
        ulp = 2.0 ** (np.floor(np.log2(scale + 1e-30)) - 7)
        bad = np.abs(got - z) > 2 * ulp
        assert not np.any(bad), (t, pf[bad], z[bad], got[bad])
        p = new


# ----------------------------------------------------------------------------- count saturation


def _set_counts(state, value):
    def fix(path, leaf):
        if jax.tree_util.keystr(path).endswith("count") or "mini_step" in jax.tree_util.keystr(
            path
        ):
            return jnp.asarray(value, leaf.dtype) if leaf.dtype == jnp.int32 else leaf
        return leaf

    return jax.tree_util.tree_map_with_path(fix, state)


def _counts(state):
    return [
        int(leaf)
        for path, leaf in jax.tree_util.tree_leaves_with_path(state)
        if jax.tree_util.keystr(path).endswith("count") and leaf.dtype == jnp.int32
    ]


@pytest.mark.parametrize("entry", params_for([e for e in CATALOG if e.wrapper != "multisteps"]))
def test_count_saturates_at_int32_max(entry):
    tx = entry.build()
    params = make_params()
    state = _set_counts(tx.init(params), INT32_MAX - 1)
    step = jax.jit(tx.update)
    for t in range(3):
        updates, state = step(make_grads(params, t), state, params)
        for u in jax.tree.leaves(updates):
            assert np.all(np.isfinite(np.asarray(u, np.float64)))
        params = optax.apply_updates(params, updates)
        assert all(c == INT32_MAX for c in _counts(state)), _counts(state)
        assert all(c.dtype == jnp.int32 for c in jax.tree.leaves(state) if c.dtype.kind == "i")


def test_saturated_count_keeps_schedule_values_numpy_reference():
    """Near int32 max the schedules sit at their end values and the prox uses them."""
    lr = optax.linear_schedule(0.2, 0.05, transition_steps=100)
    lam = optax.linear_schedule(0.1, 0.4, transition_steps=100)
    tx = optax.chain(optax.sgd(lr), l1optax.apply_l1_prox(lr, lam))
    rng = np.random.default_rng(7)
    p = jnp.asarray(rng.normal(size=32), jnp.float32)
    state = _set_counts(tx.init(p), INT32_MAX - 2)
    p_ref = np.asarray(p, np.float64)
    for _ in range(5):  # crosses INT32_MAX: counts must saturate, not wrap to negative
        g = jnp.asarray(rng.normal(size=32), jnp.float32)
        u, state = jax.jit(tx.update)(g, state, p)
        p = optax.apply_updates(p, u)
        x = p_ref - 0.05 * np.asarray(g, np.float64)
        p_ref = np.sign(x) * np.maximum(np.abs(x) - 0.05 * 0.4, 0)
        np.testing.assert_allclose(np.asarray(p), p_ref, rtol=1e-6, atol=1e-6)
        assert np.all(np.asarray(p)[p_ref == 0] == 0)
    assert _counts(state) == [INT32_MAX, INT32_MAX]


# ----------------------------------------------------------------------------- abstract init


@pytest.mark.parametrize("entry", params_for(CATALOG))
def test_init_from_shape_dtype_structs(entry):
    tx = entry.build()
    params = make_params(jnp.bfloat16)
    abstract = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), params)
    from_structs = jax.eval_shape(tx.init, abstract)
    from_eval_shape = jax.eval_shape(tx.init, jax.eval_shape(lambda: make_params(jnp.bfloat16)))
    real = tx.init(params)
    assert jax.tree.structure(from_structs) == jax.tree.structure(real)
    to_sds = lambda t: jax.tree.map(lambda x: (x.shape, jnp.dtype(x.dtype)), t)  # noqa: E731
    assert to_sds(from_structs) == to_sds(real) == to_sds(from_eval_shape)
    # The abstract state drives an abstract update too (shapes only, no device memory).
    upd, new_state = jax.eval_shape(tx.update, abstract, from_structs, abstract)
    assert to_sds(upd) == to_sds(abstract)
    assert to_sds(new_state) == to_sds(real)


# ----------------------------------------------------------------------------- jit vs eager


@pytest.mark.parametrize("entry", params_for(UNWRAPPED))
def test_jit_and_eager_agree(entry):
    tx = entry.build()
    outs = []
    for wrap in (lambda f: f, jax.jit):
        params = make_params()
        state = tx.init(params)
        update = wrap(tx.update)
        for t in range(2):
            u, state = update(make_grads(params, t), state, params)
            params = optax.apply_updates(params, u)
        outs.append(params)
    for a, b in zip(jax.tree.leaves(outs[0]), jax.tree.leaves(outs[1]), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
