"""Shared fixtures: float64 on demand, fixed seeds, dtype lists."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


def pytest_collection_finish(session):
    """Starts the subprocess checks of the selected tests now, to run while the others do.

    A test module opts in with ``start_in_background(items)`` (its selected items), which calls
    ``_helpers.start_background``; the test then collects the result with ``wait_background``.
    """
    if session.config.option.collectonly:
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
