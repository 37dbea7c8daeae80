"""SPEC 11-16: ``apply_l1_prox``, ``add_l1_subgradient``, ``apply_prox`` and ``with_l1`` as optax transforms."""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import assert_trees_bitwise_equal, bits, least_squares, scan_fit

import l1optax

LOW = (jnp.bfloat16, jnp.float16)


def np_soft(x, t):
    x = np.asarray(x, np.float64)
    return np.sign(x) * np.maximum(np.abs(x) - t, 0.0)


def make_params(rng, dtype, n=64):
    return {
        "w": jnp.asarray(rng.normal(size=(n // 8, 8)), dtype),
        "b": jnp.asarray(rng.normal(scale=0.05, size=8), dtype),
    }


def make_grads(rng, params, dtype=None, scale=1.0):
    return jax.tree.map(
        lambda p: jnp.asarray(rng.normal(scale=scale, size=p.shape), dtype or p.dtype), params
    )


def run(tx, params, grads_seq, *, jit=True, **extra):
    state = tx.init(params)
    update = jax.jit(tx.update) if jit else tx.update
    history = []
    for g in grads_seq:
        updates, state = update(g, state, params, **extra)
        params = optax.apply_updates(params, updates)
        history.append((updates, params))
    return history, state


def run_scan(tx, params, grads_seq):
    """All steps inside one jitted scan (one compilation); returns the final params."""
    grads = jax.tree.map(lambda *g: jnp.stack(g), *grads_seq)
    return scan_fit(tx, params, lambda p, g: g, xs=grads)[0]


# --- SPEC 11 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "factory",
    [
        lambda: l1optax.apply_l1_prox(0.1, 0.1),
        lambda: l1optax.add_l1_subgradient(0.1),
        lambda: l1optax.add_l1_subgradient(optax.linear_schedule(0.1, 0.0, 5)),
        lambda: l1optax.apply_prox(l1optax.prox_l1, 0.1, 0.1),
        lambda: l1optax.with_l1(optax.sgd(0.1), 0.1, learning_rate=0.1),
        lambda: l1optax.with_l1(optax.adam(0.1), 0.1, method="subgradient"),
        lambda: l1optax.apply_l1_prox(0.1, 0.1, mask={"w": True}),
    ],
    ids=[
        "apply_l1_prox",
        "subgradient",
        "subgradient-schedule",
        "apply_prox",
        "with_l1-prox",
        "with_l1-sub",
        "masked",
    ],
)
def test_update_without_params_raises(factory, maybe_jit):
    tx = factory()
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    with pytest.raises(
        ValueError, match=r"needs the current parameters.*update\(updates, state, params\)"
    ):
        maybe_jit(tx.update)(params, state)
    with pytest.raises(ValueError, match="needs the current parameters"):
        maybe_jit(lambda u, s: tx.update(u, s, None))(params, state)


# --- SPEC 12 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule",
    ["constant", "linear", "exponential"],
)
def test_proximal_sgd_matches_soft_threshold_reference(float_dtype, maybe_jit, rng, schedule):
    if schedule != "constant" and maybe_jit is not jax.jit:
        pytest.skip("schedules are checked under jit; eager runs the constant rate (runtime)")
    lr = {
        "constant": 0.1,
        "linear": optax.linear_schedule(0.2, 0.02, transition_steps=4),
        "exponential": optax.exponential_decay(0.3, transition_steps=1, decay_rate=0.5),
    }[schedule]
    lam = 0.5
    tx = optax.chain(optax.sgd(lr), l1optax.apply_l1_prox(lr, lam))
    params = make_params(rng, float_dtype)
    state = tx.init(params)
    update = maybe_jit(tx.update)
    eps = float(jnp.finfo(float_dtype).eps)
    for step in range(5):
        # count 0 on the first update, an int32 count as in optax.scale_by_learning_rate
        eta = float(lr(jnp.asarray(step, jnp.int32))) if callable(lr) else lr
        grads = make_grads(rng, params)
        updates, state = update(grads, state, params)
        new = optax.apply_updates(params, updates)
        for p, g, u, n in zip(
            *(jax.tree.leaves(t) for t in (params, grads, updates, new)), strict=True
        ):
            assert n.dtype == p.dtype and u.dtype == p.dtype
            x = np.asarray(p, np.float64) - eta * np.asarray(g, np.float64)
            thr = np.float64(np.float32(eta)) * lam if float_dtype != jnp.float64 else eta * lam
            ref = np_soft(x, thr)
            got = np.asarray(n, np.float64)
            assert np.all(np.abs(got - ref) <= 2 * eps * np.maximum(1.0, np.abs(x)))
            # exact zeros wherever the reference is zero with a margin (rounding near |x| == t)
            clearly_zero = np.abs(x) < thr * (1 - 4 * eps)
            assert np.all(got[clearly_zero] == 0.0)
            clearly_nonzero = np.abs(x) > thr * (1 + 4 * eps) + 4 * eps
            assert np.all(got[clearly_nonzero] != 0.0)
        params = new
    assert int(state[1].count) == 5


def test_threshold_follows_the_learning_rate_schedule_like_scale_by_learning_rate():
    """With zero gradients, each step shrinks |w| by exactly eta_t * lam with eta_t = lr(t), t = 0, 1, ..."""
    lr = optax.piecewise_constant_schedule(0.5, {1: 0.5, 2: 0.25})  # 0.5, 0.25, 0.0625, ...
    lam = 0.5
    probe = optax.scale_by_learning_rate(lr)
    tx = optax.chain(optax.sgd(lr), l1optax.apply_l1_prox(lr, lam))
    params = jnp.array([10.0, -10.0], jnp.float32)
    state, pstate = tx.init(params), probe.init(params)
    for _ in range(4):
        scaled, pstate = probe.update(jnp.array([1.0, 1.0]), pstate)
        eta = -float(scaled[0])  # the learning rate optax applied at this count
        updates, state = tx.update(jnp.zeros(2), state, params)
        new = optax.apply_updates(params, updates)
        np.testing.assert_array_equal(
            np.abs(np.asarray(params)) - np.abs(np.asarray(new)), [eta * lam] * 2
        )
        params = new


def test_l1reg_schedule_is_evaluated_at_the_same_count():
    lam = optax.exponential_decay(1.0, transition_steps=1, decay_rate=0.5)  # 1, .5, .25
    tx = optax.chain(optax.sgd(0.5), l1optax.apply_l1_prox(0.5, lam))
    params = jnp.array([4.0, -4.0])
    state = tx.init(params)
    expected = [4.0]
    for t in range(3):
        expected.append(expected[-1] - 0.5 * float(lam(t)))
    for t in range(3):
        updates, state = jax.jit(tx.update)(jnp.zeros(2), state, params)
        params = optax.apply_updates(params, updates)
        np.testing.assert_array_equal(np.asarray(params), [expected[t + 1], -expected[t + 1]])


@pytest.mark.parametrize("params_dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
@pytest.mark.parametrize("updates_dtype", [jnp.float32, jnp.bfloat16])
def test_exact_zeros_with_mixed_precision(params_dtype, updates_dtype, maybe_jit, rng):
    params = make_params(rng, params_dtype, n=512)
    # half the coordinates land inside the threshold after the gradient step
    grads = make_grads(rng, params, dtype=updates_dtype, scale=0.5)
    lr, lam = 0.125, 4.0  # a power-of-two step: -lr * g is exact in every dtype (also under jit)
    tx = optax.chain(optax.sgd(lr), l1optax.apply_l1_prox(lr, lam))
    updates, _ = maybe_jit(tx.update)(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    for p, g, u, n in zip(
        *(jax.tree.leaves(t) for t in (params, grads, updates, new)), strict=True
    ):
        assert n.dtype == p.dtype
        assert u.dtype == jnp.result_type(p, g)  # the params' dtype unless the updates are wider
        x = np.asarray(p, np.float64) - np.float32(lr) * np.asarray(g, np.float64)
        zero = np.abs(x) < 0.5 * 0.99
        assert zero.sum() >= 4
        np.testing.assert_array_equal(np.asarray(n, np.float64)[zero], 0.0)
        # the new params are the proximal point computed in float32 and rounded once
        target = p.astype(jnp.float32) + (-lr * g).astype(jnp.float32)
        prox_point = l1optax.soft_threshold(target, np.float32(lr) * lam).astype(p.dtype)
        n64, z64 = np.asarray(n, np.float64), np.asarray(prox_point, np.float64)
        if jnp.dtype(u.dtype).itemsize > jnp.dtype(p.dtype).itemsize:
            # wider updates (bf16/f16 params, f32 updates): lands exactly on the proximal point
            np.testing.assert_array_equal(n64, z64)
        else:
            # same-dtype updates: p + (z - p) is rounded in the params' dtype, so it may miss z by
            # the rounding of the step z - p (as plain optax.apply_updates in that dtype does)
            step = np.abs(z64 - np.asarray(p, np.float64))
            assert np.all(np.abs(n64 - z64) <= float(jnp.finfo(p.dtype).eps) * step)


# --- SPEC 13 ------------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.3, 2, "per-leaf", "schedule"])
def test_subgradient_is_bitwise_g_plus_lam_sign(float_dtype, maybe_jit, rng, lam):
    params = make_params(rng, float_dtype)
    params["w"] = params["w"].at[0, :3].set(0.0).at[1, 0].set(-0.0)
    grads = make_grads(rng, params)
    if lam == "per-leaf":
        lam_tree = {"w": 0.25, "b": jnp.asarray(np.linspace(0, 1, 8), jnp.float32)}
        tx = l1optax.add_l1_subgradient(lam_tree)
        lams = {"w": np.float32(0.25), "b": np.linspace(0, 1, 8).astype(np.float32)}
    elif lam == "schedule":
        sched = optax.linear_schedule(1.0, 0.0, 4)
        tx = l1optax.add_l1_subgradient(sched)
        lams = {"w": float(sched(0)), "b": float(sched(0))}
    else:
        tx = l1optax.add_l1_subgradient(lam)
        lams = {"w": lam, "b": lam}
    updates, _ = maybe_jit(tx.update)(grads, tx.init(params), params)
    for key in ("w", "b"):
        g, p, u = grads[key], params[key], updates[key]
        assert u.dtype == g.dtype
        lam_cast = jnp.asarray(lams[key], g.dtype)
        expected = g + lam_cast * jnp.sign(p).astype(g.dtype)  # the formula, in the grads' dtype
        np.testing.assert_array_equal(bits(u), bits(expected))
        # independent float64 check: sign(0) = 0 means zero weights get the plain gradient
        ref = np.asarray(g, np.float64) + np.asarray(lam_cast, np.float64) * np.sign(
            np.asarray(p, np.float64)
        )
        np.testing.assert_allclose(
            np.asarray(u, np.float64), ref, rtol=float(jnp.finfo(float_dtype).eps)
        )
    np.testing.assert_array_equal(bits(updates["w"][0, :3]), bits(grads["w"][0, :3]))


def test_subgradient_descent_does_not_create_exact_zeros(rng):
    """Documented: the subgradient route oscillates around 0; the proximal route lands on it."""
    X = rng.normal(size=(50, 10))
    w_true = np.zeros(10)
    w_true[:3] = [2.0, -1.5, 1.0]
    y = X @ w_true + 0.01 * rng.normal(size=50)
    grad = jax.grad(least_squares(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32)))
    lr, lam = 0.05, 0.1

    def fit(tx):
        return np.asarray(scan_fit(tx, jnp.zeros(10), grad, 500)[0])

    w_sub = fit(l1optax.with_l1(optax.sgd(lr), lam, method="subgradient"))
    w_prox = fit(l1optax.with_l1(optax.sgd(lr), lam, learning_rate=lr))
    assert np.sum(w_sub == 0.0) == 0
    assert np.sum(w_prox == 0.0) >= 5
    np.testing.assert_array_equal(w_prox[3:] == 0.0, np.ones(7, bool))


# --- SPEC 14 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base, method",
    [
        ("sgd", "proximal"),
        ("sgd", "subgradient"),
        ("adam", "decoupled"),
        ("adam", "subgradient"),
        ("sgd-momentum-schedule", "decoupled"),
        ("sgd-momentum-schedule", "subgradient"),
    ],
)
@pytest.mark.parametrize(
    "dtypes",
    [
        ("float32", "float32"),
        ("bfloat16", "bfloat16"),
        ("bfloat16", "float32"),
    ],
)
def test_zero_strength_is_bitwise_the_base_optimizer(base, method, dtypes, rng):
    """Each step jitted on its own, then ``optax.apply_updates``: bitwise the base optimizer."""
    params_dtype, grads_dtype = dtypes
    lr = optax.linear_schedule(0.3, 0.01, 5) if base == "sgd-momentum-schedule" else 0.1
    make = {
        "sgd": lambda: optax.sgd(lr),
        "adam": lambda: optax.adam(lr),
        "sgd-momentum-schedule": lambda: optax.sgd(lr, momentum=0.9),
    }[base]
    params = make_params(rng, jnp.dtype(params_dtype), n=1024)
    params["w"] = params["w"].at[0].set(0.0)
    grads_seq = [
        make_grads(rng, params, dtype=jnp.dtype(grads_dtype), scale=s) for s in (1.0, 30.0, 1e-3)
    ]
    kwargs = {"learning_rate": lr} if method != "subgradient" else {}
    ref, _ = run(make(), params, grads_seq)
    static = l1optax.with_l1(make(), 0.0, method=method, **kwargs)
    # a traced zero (inject_hyperparams): the prox runs with threshold 0 and must pass through
    traced = optax.inject_hyperparams(
        lambda l1reg: l1optax.with_l1(make(), l1reg, method=method, **kwargs)
    )(l1reg=0.0)
    for tx in (static, traced):
        got, _ = run(tx, params, grads_seq)
        for (u_ref, p_ref), (u_got, p_got) in zip(ref, got, strict=True):
            if tx is traced and method == "subgradient":
                # "+ 0 * sign(p)" known only at run time changes how XLA fuses the base
                # optimizer's arithmetic: a few ulps (documented), not bitwise
                tol = 16 * float(jnp.finfo(jnp.dtype(params_dtype)).eps)
                chex.assert_trees_all_close(p_got, p_ref, rtol=tol, atol=tol)
                continue
            assert_trees_bitwise_equal(p_got, p_ref)
            if tx is static:
                assert_trees_bitwise_equal(u_got, u_ref)


@pytest.mark.parametrize("method", ["decoupled", "subgradient"])
@pytest.mark.parametrize("zero", [0, "f32-array", "per-leaf", "traced"])
@pytest.mark.parametrize("dtype", [jnp.float32])
def test_zero_strength_inside_one_fused_jitted_loop(method, zero, dtype, rng):
    """Whole training loop in one jit: a zero known at construction is bitwise the base."""
    params = make_params(rng, dtype, n=1024)
    grads_seq = [make_grads(rng, params, scale=s) for s in (1.0, 30.0, 1e-3)]
    kwargs = {"learning_rate": 0.1} if method == "decoupled" else {}
    ref = run_scan(optax.adam(0.1), params, grads_seq)
    if zero == "traced":  # lam is a traced state value under inject_hyperparams
        tx = optax.inject_hyperparams(
            lambda l1reg: l1optax.with_l1(optax.adam(0.1), l1reg, method=method, **kwargs)
        )(l1reg=0.0)
    else:
        lam = {0: 0, "f32-array": jnp.zeros((), jnp.float32), "per-leaf": {"w": 0.0, "b": 0}}[zero]
        tx = l1optax.with_l1(optax.adam(0.1), lam, method=method, **kwargs)
    got = run_scan(tx, params, grads_seq)
    if zero == "traced":
        # A zero known only at run time is still computed with (threshold 0 / "+ 0 * sign"), and
        # XLA may then fuse and contract the Adam arithmetic differently: equal to a few ulps
        # (documented), not bitwise. Exact zeros of the base stay exact.
        tol = float(jnp.finfo(dtype).eps) * 16
        chex.assert_trees_all_close(got, ref, rtol=tol, atol=tol)
    else:
        assert_trees_bitwise_equal(got, ref)


# --- SPEC 15 ------------------------------------------------------------------------------


def _state_signature(state):
    return jax.tree.map(
        lambda x: (jnp.shape(x), jnp.asarray(x).dtype, getattr(x, "weak_type", None)), state
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: l1optax.with_l1(
            optax.inject_hyperparams(optax.adam)(learning_rate=optax.linear_schedule(0.1, 0.0, 10)),
            optax.linear_schedule(0.1, 0.0, 10),
        ),
        lambda: l1optax.with_l1(optax.sgd(0.1, momentum=0.9), 0.1, method="subgradient"),
        lambda: l1optax.with_l1(
            optax.adam(0.1), optax.constant_schedule(0.1), method="subgradient"
        ),
        lambda: optax.inject_hyperparams(l1optax.apply_l1_prox)(learning_rate=0.1, l1reg=0.01),
    ],
    ids=["prox-adam-schedules", "sub-momentum", "sub-schedule", "injected-prox"],
)
def test_state_is_stable_under_cond_and_does_not_recompile(make, float_dtype, rng):
    tx = make()
    params = make_params(rng, float_dtype)
    state = tx.init(params)
    sig0 = _state_signature(state)
    compiles = []

    @jax.jit
    def step(params, state, grads, flag):
        compiles.append(1)  # runs once per trace

        def do(operands):
            params, state = operands
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        # both branches must have identical types: proves the state keeps dtype/weak type/shape
        return jax.lax.cond(flag, do, lambda o: o, (params, state))

    for t in range(3):
        params_new, state = step(params, state, make_grads(rng, params), t % 2 == 0)
        assert _state_signature(state) == sig0
        assert jax.tree.map(lambda a: a.dtype, params_new) == jax.tree.map(
            lambda a: a.dtype, params
        )
        params = params_new
    assert len(compiles) == 1
    assert step._cache_size() == 1


@pytest.mark.parametrize("method", ["proximal", "subgradient"])
def test_update_dtypes_follow_the_incoming_updates(method, float_dtype, rng):
    params = make_params(rng, float_dtype)
    for grads_dtype in (float_dtype, jnp.float32):
        grads = make_grads(rng, params, dtype=grads_dtype)
        if method == "proximal":
            tx = l1optax.apply_l1_prox(0.1, 0.3)
        else:
            tx = l1optax.add_l1_subgradient(0.3)
        updates, _ = tx.update(grads, tx.init(params), params)
        for p, g, u in zip(*(jax.tree.leaves(t) for t in (params, grads, updates)), strict=True):
            if method == "subgradient":
                assert u.dtype == g.dtype  # updates keep the grads' dtype
            else:
                assert u.dtype == jnp.result_type(p.dtype, g.dtype)


@pytest.mark.parametrize("method", ["decoupled", "subgradient"])
def test_jit_and_eager_agree(method, float_dtype, rng):
    tx = l1optax.with_l1(optax.adam(0.05), 0.2, method=method, learning_rate=0.05)
    params = make_params(rng, float_dtype)
    grads_seq = [make_grads(rng, params) for _ in range(3)]
    eager, s_eager = run(tx, params, grads_seq, jit=False)
    jitted, s_jit = run(tx, params, grads_seq, jit=True)
    tol = {"float32": 1e-6, "float64": 1e-12}.get(jnp.dtype(float_dtype).name, 1e-2)
    for (u_e, p_e), (u_j, p_j) in zip(eager, jitted, strict=True):
        chex.assert_trees_all_close(p_e, p_j, rtol=tol, atol=tol)
        chex.assert_trees_all_equal_dtypes(p_e, p_j)
        chex.assert_trees_all_equal_dtypes(u_e, u_j)
        # zeros are the same set either way
        for a, b in zip(jax.tree.leaves(p_e), jax.tree.leaves(p_j), strict=True):
            np.testing.assert_array_equal(np.asarray(a) == 0, np.asarray(b) == 0)


# --- SPEC 16 ------------------------------------------------------------------------------


def test_chain_with_other_transforms(rng):
    params = make_params(rng, jnp.float32)
    grads = make_grads(rng, params)
    tx = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.add_decayed_weights(1e-3),
        optax.sgd(0.1),
        l1optax.apply_l1_prox(0.1, 0.2),
    )
    updates, _ = tx.update(grads, tx.init(params), params)
    base = optax.chain(
        optax.clip_by_global_norm(1.0), optax.add_decayed_weights(1e-3), optax.sgd(0.1)
    )
    u0, _ = base.update(grads, base.init(params), params)
    expected = l1optax.prox_l1(optax.apply_updates(params, u0), 0.2, 0.1)
    chex.assert_trees_all_close(optax.apply_updates(params, updates), expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    "mask",
    [
        {"w": True, "b": False, "emb": {"table": False, "scale": True}},
        lambda p: jax.tree.map(lambda x: x.ndim == 2 and x.shape[0] > 4, p),
        {"w": True, "b": False, "emb": False},
    ],
    ids=["pytree", "callable", "prefix"],
)
@pytest.mark.parametrize("method", ["proximal", "subgradient", "optax.masked"])
def test_masks_leave_masked_leaves_bitwise_unchanged(mask, method, rng):
    params = make_params(rng, jnp.float32)
    params["emb"] = {
        "table": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
        "scale": jnp.float32(0.01),
    }
    grads = make_grads(rng, params)
    if method == "optax.masked":
        tx = optax.chain(optax.sgd(0.1), optax.masked(l1optax.apply_l1_prox(0.1, 10.0), mask))
    else:
        tx = l1optax.with_l1(optax.sgd(0.1), 10.0, method=method, learning_rate=0.1, mask=mask)
    new = optax.apply_updates(params, jax.jit(tx.update)(grads, tx.init(params), params)[0])
    base = optax.sgd(0.1)
    plain = optax.apply_updates(params, base.update(grads, base.init(params), params)[0])
    mask_tree = mask(params) if callable(mask) else mask
    # expand a prefix mask to the full tree
    full = jax.tree.map(lambda m, sub: jax.tree.map(lambda _: m, sub), mask_tree, params)
    n_masked = 0
    for m, n, p in zip(
        jax.tree.leaves(full), jax.tree.leaves(new), jax.tree.leaves(plain), strict=True
    ):
        if m:
            assert not np.array_equal(np.asarray(n), np.asarray(p))
        else:
            n_masked += 1
            np.testing.assert_array_equal(bits(n), bits(p))
    assert n_masked >= 1


def test_inject_hyperparams_equals_plain_and_does_not_recompile(rng):
    params = make_params(rng, jnp.float32)
    grads_seq = [make_grads(rng, params) for _ in range(3)]
    plain = optax.chain(optax.sgd(0.1), l1optax.apply_l1_prox(0.1, 0.3))
    injected = optax.chain(
        optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
        optax.inject_hyperparams(l1optax.apply_l1_prox)(learning_rate=0.1, l1reg=0.3),
    )
    ref, _ = run(plain, params, grads_seq)
    got, state = run(injected, params, grads_seq)
    for (_, a), (_, b) in zip(ref, got, strict=True):
        assert_trees_bitwise_equal(a, b)

    # change lam and lr in the state: same compiled function, new result
    compiles = []

    @jax.jit
    def step(params, state, grads):
        compiles.append(1)
        return injected.update(grads, state, params)

    state = injected.init(params)
    step(params, state, grads_seq[0])
    state[1].hyperparams["l1reg"] = jnp.asarray(1.0, jnp.float32)
    state[1].hyperparams["learning_rate"] = jnp.asarray(0.2, jnp.float32)
    state[0].hyperparams["learning_rate"] = jnp.asarray(0.2, jnp.float32)
    updates, _ = step(params, state, grads_seq[0])
    assert len(compiles) == 1
    new = optax.apply_updates(params, updates)
    x = jax.tree.map(lambda p, g: p - 0.2 * g, params, grads_seq[0])
    chex.assert_trees_all_close(new, l1optax.prox_l1(x, 1.0, 0.2), atol=1e-6)

    # with_l1 and add_l1_subgradient are injectable too
    tx = optax.inject_hyperparams(l1optax.add_l1_subgradient)(l1reg=0.5)
    u, s = jax.jit(tx.update)(grads_seq[0], tx.init(params), params)
    u_ref, _ = l1optax.add_l1_subgradient(0.5).update(grads_seq[0], optax.EmptyState(), params)
    assert_trees_bitwise_equal(u, u_ref)
    tx = optax.inject_hyperparams(
        lambda l1reg, learning_rate: l1optax.with_l1(
            optax.sgd(learning_rate), l1reg, learning_rate=learning_rate
        )
    )(l1reg=0.3, learning_rate=0.1)
    got, _ = run(tx, params, grads_seq)
    for (_, a), (_, b) in zip(ref, got, strict=True):
        assert_trees_bitwise_equal(a, b)


@pytest.mark.parametrize(
    "dtype, grads_dtype",
    [(jnp.float32, None), (jnp.bfloat16, None), (jnp.bfloat16, jnp.float32)],
    ids=["float32", "bfloat16", "bfloat16-params-float32-grads"],
)
def test_multisteps_steps_on_each_block_mean_and_holds_params_in_between(dtype, grads_dtype, rng):
    params = make_params(rng, dtype)
    k = 3
    grads_seq = [make_grads(rng, params, dtype=grads_dtype) for _ in range(2 * k)]
    inner = lambda: optax.chain(optax.sgd(0.1), l1optax.apply_l1_prox(0.1, 0.5))  # noqa: E731
    ms = optax.MultiSteps(inner(), every_k_schedule=k)
    hist, state = run(ms, params, grads_seq)
    # reference: the inner chain applied to the mean of each block of k gradients
    ref_params = params
    ref_tx = inner()
    ref_state = ref_tx.init(params)
    for block in range(2):
        mean = jax.tree.map(
            lambda *gs: (sum(g.astype(jnp.float32) for g in gs) / k).astype(grads_dtype or dtype),
            *grads_seq[block * k : (block + 1) * k],
        )
        u, ref_state = ref_tx.update(mean, ref_state, ref_params)
        ref_params = optax.apply_updates(ref_params, u)
        got = hist[(block + 1) * k - 1][1]
        tol = 1e-6 if dtype == jnp.float32 else 2e-2
        chex.assert_trees_all_close(got, ref_params, rtol=tol, atol=tol)
        chex.assert_trees_all_equal_dtypes(got, params)
        for a in jax.tree.leaves(got):
            assert np.sum(np.asarray(a) == 0) > 0  # zeros are exact after the real step
        # the intermediate (accumulating) steps leave params unchanged
        assert_trees_bitwise_equal(hist[block * k][1], hist[block * k - 1][1] if block else params)
    assert int(state.inner_opt_state[1].count) == 2


def test_apply_if_finite_skips_nan_steps(rng):
    params = make_params(rng, jnp.float32)
    tx = optax.apply_if_finite(
        l1optax.with_l1(optax.sgd(0.1), 0.3, learning_rate=0.1), max_consecutive_errors=3
    )
    bad = jax.tree.map(lambda g: g.at[..., 0].set(jnp.nan), make_grads(rng, params))
    good = make_grads(rng, params)
    hist, state = run(tx, params, [bad, good])
    assert_trees_bitwise_equal(hist[0][1], params)  # the NaN step is skipped
    expected = l1optax.prox_l1(jax.tree.map(lambda p, g: p - 0.1 * g, params, good), 0.3, 0.1)
    chex.assert_trees_all_close(hist[1][1], expected, atol=1e-6)
    assert int(state.total_notfinite) == 1


def test_extra_keyword_arguments_are_accepted(rng):
    params = make_params(rng, jnp.float32)
    grads = make_grads(rng, params)
    for tx in (
        l1optax.apply_l1_prox(0.1, 0.2),
        l1optax.add_l1_subgradient(0.2),
        l1optax.with_l1(optax.sgd(0.1), 0.2, learning_rate=0.1),
        l1optax.apply_l1_prox(0.1, 0.2, mask={"w": True, "b": False}),
    ):
        u1, _ = tx.update(grads, tx.init(params), params, value=jnp.float32(1.0), grad=grads)
        u2, _ = tx.update(grads, tx.init(params), params)
        assert_trees_bitwise_equal(u1, u2)
    # and inside a chain with a transform that consumes `value`
    tx = optax.chain(optax.sgd(0.1), l1optax.apply_l1_prox(0.1, 0.2))
    tx.update(grads, tx.init(params), params, value=jnp.float32(1.0))


class Layer(NamedTuple):
    kernel: jax.Array
    bias: jax.Array | None


@pytest.mark.parametrize("method", ["proximal", "subgradient"])
@pytest.mark.parametrize(
    "tree_kind", ["none-leaves", "empty-dict", "empty-list", "0d", "namedtuple", "list-tuple"]
)
def test_with_l1_on_none_empty_0d_namedtuple_and_nested_trees(method, tree_kind):
    trees = {
        "none-leaves": {"w": jnp.array([2.0, -0.01]), "b": None},
        "empty-dict": {},
        "empty-list": [],
        "0d": {"s": jnp.float32(3.0), "t": jnp.float32(-0.01)},
        "namedtuple": Layer(kernel=jnp.array([[2.0, -0.01]]), bias=None),
        "list-tuple": [jnp.array([2.0]), (jnp.array(-0.01), jnp.array([[-5.0]]))],
    }
    params = trees[tree_kind]
    grads = jax.tree.map(jnp.zeros_like, params)
    tx = l1optax.with_l1(optax.sgd(0.1), 0.5, method=method, learning_rate=0.1)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    assert jax.tree.structure(updates, is_leaf=lambda x: x is None) == jax.tree.structure(
        params, is_leaf=lambda x: x is None
    )
    new = optax.apply_updates(params, updates)
    for p, n in zip(jax.tree.leaves(params), jax.tree.leaves(new), strict=True):
        p64 = np.asarray(p, np.float64)
        if method == "proximal":
            np.testing.assert_allclose(np.asarray(n, np.float64), np_soft(p64, 0.05), rtol=1e-6)
        else:
            np.testing.assert_allclose(
                np.asarray(n, np.float64), p64 - 0.05 * np.sign(p64), rtol=1e-6
            )
        assert np.shape(n) == np.shape(p)


def test_apply_prox_with_a_custom_prox_and_scheduled_hyperparams(rng):
    """apply_prox is generic: a box-projection prox, hyperparams with a schedule leaf."""

    def prox_box(x, hyperparams, scaling):
        del scaling
        return jax.tree.map(lambda a: jnp.clip(a, -hyperparams["r"], hyperparams["r"]), x)

    sched = optax.linear_schedule(1.0, 0.5, 2)
    tx = optax.chain(optax.sgd(0.1), l1optax.apply_prox(prox_box, 0.1, {"r": sched}))
    params = jnp.asarray(rng.normal(scale=3, size=20), jnp.float32)
    state = tx.init(params)
    for t in range(3):
        g = jnp.asarray(rng.normal(size=20), jnp.float32)
        updates, state = tx.update(g, state, params)
        new = optax.apply_updates(params, updates)
        ref = np.clip(
            np.asarray(params, np.float64) - 0.1 * np.asarray(g, np.float64),
            -float(sched(t)),
            float(sched(t)),
        )
        np.testing.assert_allclose(np.asarray(new), ref, rtol=1e-6, atol=1e-6)
        params = new


@pytest.mark.parametrize(
    ("old", "new"), [("l1_prox", "apply_l1_prox"), ("group_l1_prox", "apply_group_l1_prox")]
)
def test_0_1_transform_names_still_work_with_a_deprecation_warning(old, new):
    with pytest.warns(DeprecationWarning, match=f"renamed `l1optax.{new}`"):
        alias = getattr(l1optax, old)
    assert alias is getattr(l1optax, new)
    assert old not in l1optax.__all__
    with pytest.raises(AttributeError, match="no attribute 'l1_proxx'"):
        _ = l1optax.l1_proxx
