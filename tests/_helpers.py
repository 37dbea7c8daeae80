"""Test helpers shared by the test modules: the full-batch training loops and tree equality.

Training loops (each returns ``(params, state)``):

* :func:`scan_fit` -- every step inside one jitted ``lax.scan`` (one compilation), gradients
  from ``grad_fn(params)`` (or ``grad_fn(params, x)`` for each ``x`` of ``xs``);
* :func:`least_squares` -- the loss ``1/2 mean((X w - y)^2)`` most fits train on;
* :func:`loop_fit` -- a Python loop over a jitted (or eager) ``tx.update`` followed by an eager
  ``optax.apply_updates``, as in optax's own tests, or (``fused=True``) over one jitted train
  step (gradient, update and apply), as users write it.

Equality of trees (same structure, and per leaf the same dtype and shape):

* :func:`assert_trees_equal` -- equal values (``chex.assert_trees_all_equal(strict=True)``:
  NaN equals NaN, ``-0.0`` equals ``0.0``);
* :func:`assert_trees_bitwise_equal` -- equal bits (``-0.0`` and ``0.0`` differ).

Subprocess checks that run while the other tests do: :func:`start_background`,
:func:`wait_background`, :func:`stop_background`, and :class:`ExampleRuns` for the runs of one
example script.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


# The suite compiles with this flag (conftest.py adds it to XLA_FLAGS); a test about what users'
# programs do at XLA's default level passes DEFAULT_COMPILER_OPTIONS to ``jax.jit``
FAST_COMPILE_FLAG = "--xla_backend_optimization_level=0"
DEFAULT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 3}


def scan_fit(
    tx: optax.GradientTransformation,
    params: Any,
    grad_fn: Callable[..., Any],
    steps: int | None = None,
    *,
    xs: Any = None,
    jit: bool = True,
) -> tuple[Any, Any]:
    """Trains ``tx`` from ``params`` in one ``lax.scan`` and returns ``(params, state)``.

    Each step is ``updates, state = tx.update(g, state, params)`` then
    ``params = optax.apply_updates(params, updates)`` with ``g = grad_fn(params)``, or
    ``g = grad_fn(params, x)`` when ``xs`` (scanned over, leading axis) is given. ``steps`` is
    the number of steps when ``xs`` is None. With ``jit`` (the default) the whole scan is one
    ``jax.jit`` call (one compilation per call of this function).
    """

    def body(carry, x):
        p, s = carry
        g = grad_fn(p) if xs is None else grad_fn(p, x)
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    def loop(p):
        return jax.lax.scan(body, (p, tx.init(p)), xs, length=steps if xs is None else None)[0]

    return (jax.jit(loop) if jit else loop)(params)


def least_squares(X: Any, y: Any) -> Callable[[Any], jax.Array]:
    """The loss ``w -> 1/2 mean((X w - y)^2)`` (``X``, ``y`` as jax arrays, dtypes kept)."""
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def loss(w):
        return 0.5 * jnp.mean((Xj @ w - yj) ** 2)

    return loss


def loop_fit(
    tx: optax.GradientTransformation,
    params: Any,
    grads: Any,
    steps: int | None = None,
    *,
    jit: bool = True,
    fused: bool = False,
    state: Any = None,
) -> tuple[Any, Any]:
    """``steps`` training steps in a Python loop; returns ``(params, state)``.

    ``grads`` is a gradient tree used at every step, or a function ``params -> grads``, or
    (with ``steps=None``) a sequence of gradient trees, one per step. By
    default each step calls ``tx.update`` (jitted, or eager with ``jit=False``) and then an
    eager ``optax.apply_updates``. With ``fused=True`` the whole step (gradient, update, apply)
    is one jitted function, as a user's train step is (XLA may then fuse across the apply).
    ``state`` defaults to ``tx.init(params)``.
    """
    state = tx.init(params) if state is None else state
    if steps is None:
        seq = list(grads)
        grads_at = lambda p, t: seq[t]  # noqa: E731
        steps = len(seq)
    elif callable(grads):
        grads_at = lambda p, t: grads(p)  # noqa: E731
    else:
        grads_at = lambda p, t: grads  # noqa: E731

    if fused:
        # a gradient function is traced into the step; a given gradient is an argument
        @jax.jit
        def step(p, s, g):
            u, s = tx.update(grads(p) if g is None else g, s, p)
            return optax.apply_updates(p, u), s

        for t in range(steps):
            g = None if callable(grads) else grads_at(params, t)
            params, state = step(params, state, g)
        return params, state

    update = jax.jit(tx.update) if jit else tx.update
    for t in range(steps):
        u, state = update(grads_at(params, t), state, params)
        params = optax.apply_updates(params, u)
    return params, state


def bits(a: Any) -> np.ndarray:
    """The bits of an array, as unsigned integers of the same width (``-0.0 != 0.0``)."""
    a = np.asarray(a)
    if a.dtype.itemsize == 16:  # complex128: two uint64 words per entry
        return np.atleast_1d(a).view(np.uint64)
    return a.view(_UINT[a.dtype.itemsize])


def assert_trees_equal(a: Any, b: Any, msg: str = "") -> None:
    """Same structure; every leaf the same dtype, shape and values (NaN == NaN, -0.0 == 0.0)."""
    assert jax.tree.structure(a) == jax.tree.structure(b), msg
    chex.assert_trees_all_equal_shapes_and_dtypes(a, b, custom_message=msg or None)
    chex.assert_trees_all_equal(a, b, strict=True, custom_message=msg or None)


def assert_trees_bitwise_equal(a: Any, b: Any, msg: str = "") -> None:
    """Same structure; every leaf the same dtype, shape and bits."""
    assert jax.tree.structure(a) == jax.tree.structure(b), msg
    chex.assert_trees_all_equal_shapes_and_dtypes(a, b, custom_message=msg or None)
    chex.assert_trees_all_equal(
        jax.tree.map(bits, a), jax.tree.map(bits, b), strict=True, custom_message=msg or None
    )


# --- subprocess checks, started in the background --------------------------------------------
# A test that runs a script in a subprocess (8 forced CPU devices, a global x64 flag) can start it
# as soon as collection is done (``start_in_background(items)`` in its module, called by
# ``conftest.pytest_collection_finish``) and collect the result when the test runs, so the
# subprocess uses the second core while the other tests run. Run alone, it starts on first use.

_BACKGROUND: dict[str, tuple[subprocess.Popen, Any, Any]] = {}


def start_background(key: str, argv: list[str], *, env: dict[str, str] | None = None) -> None:
    """Starts ``argv`` (once per ``key``); its output goes to temporary files."""
    if key in _BACKGROUND:
        return
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(argv, stdout=out, stderr=err, text=True, env=env)
    _BACKGROUND[key] = (proc, out, err)


def wait_background(
    key: str, argv: list[str], *, env: dict[str, str] | None = None, timeout: float
) -> subprocess.CompletedProcess:
    """The finished run of ``argv`` started under ``key`` (started now if it was not)."""
    start_background(key, argv, env=env)
    proc, out, err = _BACKGROUND.pop(key)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    finally:
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        out.close()
        err.close()
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def stop_background() -> None:
    """Kills the background runs nobody collected (a deselected or failed test)."""
    while _BACKGROUND:
        _, (proc, out, err) = _BACKGROUND.popitem()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
        err.close()


class ExampleRuns:
    """The runs of ``examples/<script>`` a test module checks, ``name -> arguments``, each in a
    subprocess with warnings as errors (an example enables float64 globally, which must not leak
    into other tests). A module sets ``start_in_background = runs.start_in_background``: the
    selected runs then start right after collection and run while the other tests do."""

    def __init__(self, script: str, runs: dict[str, list[str]], *, timeout: float = 300) -> None:
        self.script = pathlib.Path(__file__).resolve().parents[1] / "examples" / script
        self.runs, self.timeout = runs, timeout

    def _argv(self, name: str) -> list[str]:
        return [sys.executable, "-W", "error", str(self.script), *self.runs[name]]

    def start_in_background(self, items) -> None:
        for item in items:
            if item.name in self.runs:
                start_background(f"{self.script.name}:{item.name}", self._argv(item.name))

    def stdout(self, name: str) -> str:
        """The stdout of the run ``name`` (waited for; started now if it was not)."""
        argv = self._argv(name)
        proc = wait_background(f"{self.script.name}:{name}", argv, timeout=self.timeout)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout
