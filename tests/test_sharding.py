"""Sharded (SPMD) training on 8 CPU devices: SPEC items 18 and 20 (restore onto a new sharding).

The checks live in ``tests/_sharded_checks.py`` and run in a subprocess (a second one, marked
slow, for the remaining checks), because
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` only takes effect before JAX is imported.
The subprocess starts right after collection and runs while the other tests do
(``start_in_background``; about 80 s of CPU on a 2-core box).
Each check below is reported separately:

* ``catalog_2x4_mesh``: the core transforms, ``prox_adam`` and the core masked, MultiSteps and
  inject_hyperparams variants, with params sharded along rows, columns, both and replicated on a
  2x4 (data, model) mesh: updates, new params and state keep the params' shardings across three
  jitted steps, and the result equals the single-device run (rtol 1e-6).
* ``catalog_1d_mesh`` (slow): the same on a 1-D 8-device mesh for a subset.
* ``catalog_2x4_mesh_rest`` (slow): every other catalogued optimizer and wrapped variant, so the
  two 2x4 checks together cover the whole catalog.
* ``explicit_mesh_jit_init_keeps_shardings``: with Explicit mesh axes a jitted ``init`` follows the
  params, and ``jax.eval_shape(tx.init, ShapeDtypeStructs with shardings)`` predicts them.
* ``penalty_and_sparsity_sharded``: ``l1_penalty`` and ``sparsity`` equal the unsharded values.
* ``flax_mlp_sharded_equals_single_device``: a Linen MLP trained with ``with_l1(adam)`` and
  ``prox_adam`` under ``jax.jit`` with explicit in/out shardings, data-parallel on 8 devices and
  data x model parallel on 2x4, equals the single-device run and has the same zero set.
* ``orbax_restore_onto_different_sharding``: an Orbax checkpoint saved on the 2x4 mesh restores
  bitwise onto a 1-D layout, and training resumed there matches the uninterrupted run.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile

import pytest
from _helpers import FAST_COMPILE_FLAG, start_background, wait_background

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKS = [
    "catalog_2x4_mesh",
    "explicit_mesh_jit_init_keeps_shardings",
    "penalty_and_sparsity_sharded",
    "flax_mlp_sharded_equals_single_device",
    "orbax_restore_onto_different_sharding",
]
# Run in a second subprocess, marked slow (``pytest -m slow``; not in CI's default run).
SLOW_CHECKS = ["catalog_1d_mesh", "catalog_2x4_mesh_rest"]


def _argv_env(names, tmp):
    env = dict(os.environ)
    # at XLA's default optimisation level, not the suite's (conftest.py): the float32 sharded
    # vs single-device comparisons (rtol 1e-6) hold there; at -O0 FTRL's 1-D mesh run differs
    # by 2e-6 on one entry in 128
    flags = env.get("XLA_FLAGS", "").replace(FAST_COMPILE_FLAG, "")
    env["XLA_FLAGS"] = (flags + " --xla_force_host_platform_device_count=8").strip()
    env["JAX_PLATFORMS"] = "cpu"
    argv = [sys.executable, os.path.join(HERE, "_sharded_checks.py"), "--tmp", tmp, "--only"]
    return [*argv, *names], env


# One subprocess per list of checks; each gets its own checkpoint folder, removed at exit.
_JOBS = {"default": CHECKS, "slow": SLOW_CHECKS}
_TMP = {key: tempfile.mkdtemp(prefix=f"l1optax-sharded-{key}-") for key in _JOBS}
for _tmp in _TMP.values():
    atexit.register(shutil.rmtree, _tmp, ignore_errors=True)


def start_in_background(items):
    """Called after collection (conftest.py): starts the jobs the selected tests need."""
    fixtures = {name for item in items for name in item.fixturenames}
    for key, fixture in (("default", "sharded_results"), ("slow", "slow_sharded_results")):
        if fixture in fixtures:
            argv, env = _argv_env(_JOBS[key], _TMP[key])
            start_background(f"sharding-{key}", argv, env=env)


def _run_checks(key):
    names = _JOBS[key]
    argv, env = _argv_env(names, _TMP[key])
    proc = wait_background(f"sharding-{key}", argv, env=env, timeout=900)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{"results"')]
    assert proc.returncode == 0 and lines, (
        f"sharded checks crashed (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    results = json.loads(lines[-1])["results"]
    assert sorted(results) == sorted(names)
    return results


@pytest.fixture(scope="module")
def sharded_results():
    return _run_checks("default")


@pytest.fixture(scope="module")
def slow_sharded_results():
    return _run_checks("slow")


def _verdict(result):
    if result.startswith("SKIP:"):
        pytest.skip(result)
    assert result == "ok", result


def test_every_check_is_scheduled():
    import _sharded_checks

    assert sorted(CHECKS + SLOW_CHECKS) == sorted(_sharded_checks.CHECKS)


@pytest.mark.parametrize("name", CHECKS)
def test_sharded_check(sharded_results, name):
    _verdict(sharded_results[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_CHECKS)
def test_sharded_check_slow(slow_sharded_results, name):
    _verdict(slow_sharded_results[name])
