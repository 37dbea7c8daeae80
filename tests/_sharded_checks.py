"""Multi-device checks for every catalogued transform, run on 8 forced CPU devices.

Executed by ``tests/test_sharding.py`` in a subprocess, because
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` must be set before JAX is imported. Each
check is a function; the script runs them all and prints one JSON line
``{"results": {name: "ok" | "FAIL: ..." | "SKIP: ..."}}`` so that the parent test reports every
failure, not just the first.

Usage: ``python tests/_sharded_checks.py [--tmp DIR] [--only NAME ...]``.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # not when pytest's doctest collection imports this module
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from _catalog import (  # noqa: E402
    CATALOG,
    EXPECTED_FACTORIES,
    KNOWN_BUGS,
    is_slow,
    make_grads,
    make_params,
)
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import l1optax  # noqa: E402

CHECKS = {}

# The core transforms, prox_adam, and the core masked / MultiSteps / inject_hyperparams entries
# (the wrappers' sharding behaviour does not depend on the inner transform; each entry costs two
# compilations on this small CPU box). The other optimizers and wrapped entries run in a slow
# check (``pytest -m slow``; not in the default run, which CI runs).
# One MultiSteps and one inject_hyperparams wrapper here (around the proximal SGD); the same
# wrappers around add_l1_subgradient run in the slow check.
_WRAPPED_ELSEWHERE = {"multisteps(add_l1_subgradient)", "inject(add_l1_subgradient)"}
SHARDED_ENTRIES = [
    e
    for e in CATALOG
    if not is_slow(e)
    and (e.name not in EXPECTED_FACTORIES or e.name == "prox_adam")
    and e.name not in _WRAPPED_ELSEWHERE
]


def check(fn):
    CHECKS[fn.__name__] = fn
    return fn


def _mesh_2x4(axis_type=AxisType.Auto):
    return jax.make_mesh((2, 4), ("data", "model"), axis_types=(axis_type, axis_type))


def _mesh_1d(axis_type=AxisType.Auto):
    return jax.make_mesh((8,), ("data",), axis_types=(axis_type,))


def _specs_2x4():
    # Leaves sharded along different axes: rows, columns, both, and replicated scalars.
    return {
        "dense": {"w": P("data", "model"), "b": P("model")},
        "out": {"w": P("model", None)},
        "scale": P(),
    }


def _specs_1d():
    return {"dense": {"w": P(None, "data"), "b": P("data")}, "out": {"w": P("data")}, "scale": P()}


def _put(tree, mesh, specs):
    return jax.tree.map(lambda x, s: jax.device_put(x, NamedSharding(mesh, s)), tree, specs)


def _single(tree):
    return jax.device_put(tree, jax.devices()[0])


def _by_shape(params):
    return {tuple(p.shape): p.sharding for p in jax.tree.leaves(params) if p.ndim > 0}


def _assert_state_follows_params(state, params, where):
    """Every state leaf shaped like a parameter has that parameter's sharding; scalars replicated."""
    shardings = _by_shape(params)
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        name = f"{where}{jax.tree_util.keystr(path)}"
        if leaf.ndim == 0:
            assert leaf.sharding.is_fully_replicated, f"{name}: scalar not replicated"
            continue
        want = shardings.get(tuple(leaf.shape))
        assert want is not None, f"{name}: shape {leaf.shape} matches no parameter"
        assert leaf.sharding.is_equivalent_to(want, leaf.ndim), (
            f"{name}: sharding {leaf.sharding} != params' {want}"
        )


def _assert_same_sharding(a, b, where):
    for (path, x), y in zip(
        jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b), strict=True
    ):
        assert x.sharding.is_equivalent_to(y.sharding, x.ndim), (
            f"{where}{jax.tree_util.keystr(path)}: {x.sharding} != {y.sharding}"
        )


def _allclose(a, b, where, rtol=1e-6, atol=1e-7):
    for (path, x), y in zip(
        jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b), strict=True
    ):
        np.testing.assert_allclose(
            np.asarray(x, np.float64),
            np.asarray(y, np.float64),
            rtol=rtol,
            atol=atol,
            err_msg=f"{where}{jax.tree_util.keystr(path)}",
        )


def _step_fn(tx):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, updates

    return step


def _run_catalog(mesh, specs, entries, label):
    failures = []
    for entry in entries:
        start = time.perf_counter()
        try:
            tx = entry.build()
            step = jax.jit(_step_fn(tx))
            params = _put(make_params(), mesh, specs)
            state = tx.init(params)  # eager init keeps the params' shardings
            _assert_state_follows_params(state, params, f"{entry.name} init state")
            ref_p = _single(make_params())
            ref_s = tx.init(ref_p)
            ref_step = jax.jit(_step_fn(tx))
            for t in range(3):
                grads = _put(make_grads(make_params(), t), mesh, specs)
                new_params, state, updates = step(params, state, grads)
                _assert_same_sharding(new_params, params, f"{entry.name} params step {t}")
                _assert_same_sharding(updates, params, f"{entry.name} updates step {t}")
                _assert_state_follows_params(state, params, f"{entry.name} state step {t}")
                ref_p, ref_s, _ = ref_step(ref_p, ref_s, _single(make_grads(make_params(), t)))
                params = new_params
            _allclose(params, ref_p, f"{label} {entry.name} params vs single device ")
            _allclose(state, ref_s, f"{label} {entry.name} state vs single device ")
        except Exception as err:  # noqa: BLE001 - collected and reported by name
            if entry.name in KNOWN_BUGS:
                continue
            failures.append(f"{entry.name}: {type(err).__name__}: {err}"[:600])
        finally:
            print(f"  {label} {entry.name}: {time.perf_counter() - start:.1f}s", file=sys.stderr)
    assert not failures, "\n".join(failures)


@check
def catalog_2x4_mesh():
    """Every catalogued transform, params sharded over a 2x4 (data, model) mesh."""
    _run_catalog(_mesh_2x4(), _specs_2x4(), SHARDED_ENTRIES, "2x4")


@check
def catalog_1d_mesh():
    """Unwrapped transforms with params sharded along different axes of a 1-D 8-device mesh."""
    names = {"sgd+apply_l1_prox", "with_l1_subgradient_momentum", "prox_adam", "ftrl"}
    _run_catalog(_mesh_1d(), _specs_1d(), [e for e in CATALOG if e.name in names], "1d")


@check
def catalog_2x4_mesh_rest():
    """(slow) The other optimizers and their masked/MultiSteps variants on the 2x4 mesh."""
    _run_catalog(_mesh_2x4(), _specs_2x4(), [e for e in CATALOG if e not in SHARDED_ENTRIES], "2x4")


@check
def explicit_mesh_jit_init_keeps_shardings():
    """With Explicit axes (JAX's default for make_mesh) even a jitted init follows the params."""
    mesh = _mesh_2x4(AxisType.Explicit)
    with jax.set_mesh(mesh):
        for name in (
            "with_l1_proximal_injected_sgd",
            "prox_adam",
            "multisteps(with_l1_proximal_sgd)",
        ):
            entry = next((e for e in CATALOG if e.name == name), None)
            if entry is None:
                continue
            tx = entry.build()
            params = _put(make_params(), mesh, _specs_2x4())
            state = jax.jit(tx.init)(params)
            _assert_state_follows_params(state, params, f"{name} jit init")
            step = jax.jit(_step_fn(tx))
            for t in range(2):
                params2, state, updates = step(
                    params, state, _put(make_grads(make_params(), t), mesh, _specs_2x4())
                )
                _assert_same_sharding(params2, params, f"{name} explicit params")
                _assert_same_sharding(updates, params, f"{name} explicit updates")
                _assert_state_follows_params(state, params, f"{name} explicit state")
                params = params2
            # Abstract init: the ShapeDtypeStructs carry the shardings, no device memory used.
            abstract = jax.tree.map(
                lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype, sharding=p.sharding), params
            )
            abstract_state = jax.eval_shape(tx.init, abstract)
            for s_abs, s_real in zip(
                jax.tree.leaves(abstract_state), jax.tree.leaves(state), strict=True
            ):
                assert s_abs.shape == s_real.shape and s_abs.dtype == s_real.dtype
                if s_abs.shape:  # scalars (counts) carry no sharding in eval_shape
                    # eval_shape gives an AbstractMesh: compare the partition specs.
                    assert s_abs.sharding.spec == s_real.sharding.spec, (
                        name,
                        s_abs.sharding,
                        s_real.sharding,
                    )


@check
def penalty_and_sparsity_sharded():
    """``l1_penalty`` and ``sparsity`` give the unsharded values on sharded arrays."""
    mesh = _mesh_2x4()
    host = make_params()
    sharded = _put(host, mesh, _specs_2x4())
    ref = sum(np.abs(np.asarray(x, np.float64)).sum() for x in jax.tree.leaves(host)) * 0.3
    for penalty in (l1optax.l1_penalty(sharded, 0.3), jax.jit(l1optax.l1_penalty)(sharded, 0.3)):
        np.testing.assert_allclose(float(penalty), ref, rtol=1e-6)
        np.testing.assert_allclose(float(penalty), float(l1optax.l1_penalty(host, 0.3)), rtol=1e-6)
    got = l1optax.sparsity(sharded)
    want = l1optax.sparsity(host)
    zeros = sum(int((np.asarray(x) == 0).sum()) for x in jax.tree.leaves(host))
    assert int(got["zeros"]) == int(want["zeros"]) == zeros == 8 * 3
    assert int(got["size"]) == sum(x.size for x in jax.tree.leaves(host))
    np.testing.assert_allclose(float(got["fraction"]), float(want["fraction"]), rtol=1e-6)


def _flax_train(tx, mesh, data_spec, param_specs, steps=5):
    """Trains a 2-layer Linen MLP under jax.jit with explicit in/out shardings."""
    import flax.linen as nn

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Dense(32)(x))
            return nn.Dense(4)(x)

    model = MLP()
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(16, 8)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(16, 4)), jnp.float32)
    params = model.init(jax.random.key(0), x)["params"]

    def loss(p, x, y):
        return jnp.mean((model.apply({"params": p}, x) - y) ** 2)

    def step(p, s, x, y):
        g = jax.grad(loss)(p, x, y)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    if mesh is None:
        params = _single(params)
        state = tx.init(params)
        jstep = jax.jit(step)
        x, y = _single(x), _single(y)
    else:
        p_sh = jax.tree.map(lambda s: NamedSharding(mesh, s), param_specs)
        params = jax.device_put(params, p_sh)
        state = tx.init(params)
        # Scalars (step counts) are created on one device by an eager init: replicate them.
        s_sh = jax.tree.map(lambda a: a.sharding if a.ndim else NamedSharding(mesh, P()), state)
        d_sh = NamedSharding(mesh, data_spec)
        x, y = jax.device_put(x, d_sh), jax.device_put(y, d_sh)
        jstep = jax.jit(step, in_shardings=(p_sh, s_sh, d_sh, d_sh), out_shardings=(p_sh, s_sh))
    for _ in range(steps):
        params, state = jstep(params, state, x, y)
    return params, state


@check
def flax_mlp_sharded_equals_single_device():
    """A Linen MLP trained with ``with_l1`` and ``prox_adam`` on both meshes equals 1 device."""
    txs = {
        "with_l1(inject(adam))": l1optax.with_l1(
            optax.inject_hyperparams(optax.adam)(learning_rate=1e-2), 0.5
        ),
        "prox_adam": l1optax.prox_adam(1e-2, 0.5),
    }
    layouts = {
        # data parallel: params replicated, batch split 8 ways
        "1d-data-parallel": (
            _mesh_1d(),
            P("data"),
            {"Dense_0": {"kernel": P(), "bias": P()}, "Dense_1": {"kernel": P(), "bias": P()}},
        ),
        # 2x4: batch over "data", first layer column-sharded, second row-sharded over "model"
        "2x4-data-model": (
            _mesh_2x4(),
            P("data"),
            {
                "Dense_0": {"kernel": P(None, "model"), "bias": P("model")},
                "Dense_1": {"kernel": P("model", None), "bias": P()},
            },
        ),
    }
    for tx_name, tx in txs.items():
        ref_p, ref_s = _flax_train(tx, None, None, None)
        zeros = sum(int((np.asarray(x) == 0).sum()) for x in jax.tree.leaves(ref_p))
        assert zeros > 0, f"{tx_name}: the run made no exact zeros; strengthen l1reg"
        for layout, (mesh, dspec, pspecs) in layouts.items():
            p, s = _flax_train(tx, mesh, dspec, pspecs)
            _allclose(p, ref_p, f"{tx_name} {layout} params ", rtol=1e-6, atol=1e-6)
            _allclose(s, ref_s, f"{tx_name} {layout} state ", rtol=1e-6, atol=1e-6)
            for leaf, spec in zip(
                jax.tree.leaves(p),
                jax.tree.leaves(pspecs, is_leaf=lambda x: isinstance(x, P)),
                strict=True,
            ):
                assert leaf.sharding.is_equivalent_to(NamedSharding(mesh, spec), leaf.ndim)
            _assert_state_follows_params(s, p, f"{tx_name} {layout} state ")
            # the zero set is the same sharded or not
            for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(ref_p), strict=True):
                np.testing.assert_array_equal(np.asarray(a) == 0, np.asarray(b) == 0)


@check
def orbax_restore_onto_different_sharding():
    """Save on a 2x4 mesh, restore onto a 1-D mesh layout, resume: same as never sharded."""
    import orbax.checkpoint as ocp

    entry = next(e for e in CATALOG if e.name == "multisteps(with_l1_proximal_sgd)")
    tx = entry.build()
    mesh_a, mesh_b = _mesh_2x4(), _mesh_1d()
    params = _put(make_params(), mesh_a, _specs_2x4())
    state = tx.init(params)
    step = jax.jit(_step_fn(tx))
    for t in range(3):
        params, state, _ = step(
            params, state, _put(make_grads(make_params(), t), mesh_a, _specs_2x4())
        )
    path = os.path.join(ARGS.tmp, "ckpt_reshard")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # orbax logs/warns about async internals on CPU
        with ocp.StandardCheckpointer() as ckptr:
            ckptr.save(path, {"params": params, "opt_state": state})
            ckptr.wait_until_finished()
            target_specs = _specs_1d()
            target_params = jax.tree.map(
                lambda p, s: jax.ShapeDtypeStruct(
                    p.shape, p.dtype, sharding=NamedSharding(mesh_b, s)
                ),
                params,
                target_specs,
            )
            by_shape = {tuple(p.shape): p.sharding for p in jax.tree.leaves(target_params)}
            target_state = jax.tree.map(
                lambda a: jax.ShapeDtypeStruct(
                    a.shape,
                    a.dtype,
                    sharding=by_shape.get(tuple(a.shape), NamedSharding(mesh_b, P()))
                    if a.ndim
                    else NamedSharding(mesh_b, P()),
                ),
                state,
            )
            restored = ckptr.restore(path, {"params": target_params, "opt_state": target_state})
    r_params, r_state = restored["params"], restored["opt_state"]
    assert jax.tree.structure(r_state) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(r_params), jax.tree.leaves(target_params), strict=True):
        assert a.sharding.is_equivalent_to(b.sharding, a.ndim)
    for a, b in zip(
        jax.tree.leaves((r_params, r_state)), jax.tree.leaves((params, state)), strict=True
    ):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    _assert_state_follows_params(r_state, r_params, "restored state ")
    # resume on the new layout and compare with an uninterrupted single-device run
    for t in range(3, 6):
        r_params, r_state, _ = step(
            r_params, r_state, _put(make_grads(make_params(), t), mesh_b, _specs_1d())
        )
    ref_p = _single(make_params())
    ref_s = tx.init(ref_p)
    for t in range(6):
        ref_p, ref_s, _ = step(ref_p, ref_s, _single(make_grads(make_params(), t)))
    _allclose(r_params, ref_p, "resumed on new sharding ")
    _allclose(r_state, ref_s, "resumed state on new sharding ")


def main(argv=None):
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tmp", default=None, help="directory for checkpoints")
    parser.add_argument("--only", nargs="*", default=None, help="check names to run")
    ARGS = parser.parse_args(argv)
    if ARGS.tmp is None:
        ARGS.tmp = tempfile.mkdtemp()
    assert jax.device_count() == 8, jax.devices()
    results = {}
    for name, fn in CHECKS.items():
        if ARGS.only and name not in ARGS.only:
            continue
        start = time.perf_counter()
        try:
            fn()
            results[name] = "ok"
        except Exception as err:  # noqa: BLE001 - reported to the parent test
            msg = str(err)
            if msg.startswith("SKIP:"):
                results[name] = msg
            else:
                results[name] = (
                    f"FAIL: {type(err).__name__}: {msg}\n{traceback.format_exc()[-1500:]}"
                )
        finally:
            print(f"{name}: {time.perf_counter() - start:.1f}s", file=sys.stderr)
    print(json.dumps({"results": results}))
    return 0


ARGS = None

if __name__ == "__main__":
    sys.exit(main())
