"""Shared fixtures: float64 on demand, fixed seeds, dtype lists.

The suite compiles with LLVM's optimisation off (``--xla_backend_optimization_level=0``, set
here before JAX starts its backend, and inherited by the scripts tests run in subprocesses):
compiling is most of the suite's time, and this cuts a lasso solver's compilation by ~35%
(the whole suite: 854 s at the default level, 689 s with it, on 2 cores). XLA's own passes
(fusion, sharding, layout) are unchanged, so are the operations and their order; LLVM no
longer contracts a multiply and an add into an FMA, which moves a result by an ulp at most.
A test about what the default level does compiles with ``_helpers.DEFAULT_COMPILER_OPTIONS``;
``L1OPTAX_TEST_FAST_COMPILE=0`` compiles everything at the default level. Speed is measured
by the benchmarks run on their own (the suite runs only their quick modes).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import FAST_COMPILE_FLAG
from hypothesis import settings

# Every property test draws the same examples in every run, CI included. New edge cases are
# searched for locally with HYPOTHESIS_PROFILE=explore (fresh random draws each run) and pinned
# with @example. No deadline: a test's first example compiles, which takes seconds.
settings.register_profile("l1optax", derandomize=True, database=None, deadline=None)
settings.register_profile("explore", parent=settings.get_profile("l1optax"), derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "l1optax"))

# XLA reads XLA_FLAGS when JAX starts its backend (first use), not at import
if os.environ.get("L1OPTAX_TEST_FAST_COMPILE", "1") != "0":
    _flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in _flags:
        os.environ["XLA_FLAGS"] = f"{_flags} {FAST_COMPILE_FLAG}".strip()

FLOAT_DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16, jnp.float64]
LOW_PRECISION = (jnp.bfloat16, jnp.float16)


@pytest.fixture
def x64():
    """Enables float64 for the duration of one test (restored afterwards)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(params=FLOAT_DTYPES, ids=lambda d: jnp.dtype(d).name)
def float_dtype(request):
    """Every float dtype; float64 runs with x64 enabled."""
    if request.param == jnp.float64:
        with jax.enable_x64(True):
            yield request.param
    else:
        yield request.param


@pytest.fixture(params=[False, True], ids=["eager", "jit"])
def maybe_jit(request):
    """Applies ``jax.jit`` or leaves the function eager."""
    return jax.jit if request.param else (lambda f, **_: f)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def rtol_for(dtype) -> float:
    return {"bfloat16": 1e-2, "float16": 1e-2, "float32": 1e-6, "float64": 1e-12}[
        jnp.dtype(dtype).name
    ]


def pytest_configure(config):
    """A compilation cache for this session (``L1OPTAX_TEST_JIT_CACHE=0`` turns it off).

    Many tests compile the same program again from a new ``jax.jit`` object (the same optimizer
    built per parametrization, the reference run of a comparison): with the persistent cache in
    a fresh temporary folder, XLA compiles each distinct program once per session.
    """
    if os.environ.get("L1OPTAX_TEST_JIT_CACHE", "1") == "0":
        return
    cache = tempfile.mkdtemp(prefix="l1optax-jit-cache-")
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))


def pytest_collection_finish(session):
    """Starts the subprocess checks of the selected tests now, to run while the others do.

    A test module opts in with ``start_in_background(items)`` (its selected items), which calls
    ``_helpers.start_background``; the test then collects the result with ``wait_background``.
    """
    if session.config.option.collectonly:
        return
    if hasattr(session.config, "workerinput"):
        # Under pytest-xdist every worker collects every test but runs only its share: starting
        # here would run each check once per worker. The test starts it on first use instead,
        # while the other worker keeps the second core busy.
        return
    modules = {}
    for item in session.items:
        module = getattr(item, "module", None)
        if getattr(module, "start_in_background", None) is not None:
            modules.setdefault(module, []).append(item)
    for module, items in modules.items():
        module.start_in_background(items)


def pytest_sessionfinish(session):
    from _helpers import stop_background

    stop_background()
