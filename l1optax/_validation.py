"""Checks shared by every public function: strengths, leaf dtypes, masks, broadcasting.

Concrete values are checked eagerly and raise a ``ValueError``/``TypeError`` that names the
function, the argument and the value. Traced values (under ``jax.jit``, ``optax.inject_hyperparams``
or a schedule) are never branched on in Python; the numerical kernels turn an invalid traced
strength into NaN instead, so a bad value is never silently clamped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Tree = Any


def is_none(x: Any) -> bool:
    return x is None


def is_concrete(x: Any) -> bool:
    """True when ``x`` holds a value we can inspect without tracing."""
    return not isinstance(x, jax.core.Tracer)


def check_strength(value: Any, *, fn: str, arg: str, allow_schedule: bool = True) -> None:
    """Raises if a concrete strength (scalar, array or pytree of them) is negative or non-finite.

    Args:
      value: a Python number, array, pytree of those, or (when ``allow_schedule``) a callable.
      fn: the public function's name, for the message.
      arg: the argument's name, for the message.
      allow_schedule: whether a callable (an optax schedule) is accepted unchecked.

    Raises:
      ValueError: a concrete leaf is negative, NaN or infinite, or a callable where none is allowed.
      TypeError: a leaf is not numeric.
    """
    if callable(value) and not isinstance(value, jax.Array | np.ndarray | np.generic):
        if allow_schedule:
            return
        raise ValueError(f"`{fn}({arg}=...)` must be a number or pytree of numbers, got {value!r}")
    if value is None:
        raise ValueError(f"`{fn}({arg}=...)` must be a non-negative finite number, got None")
    leaves_with_path = jax.tree_util.tree_leaves_with_path(value)
    for path, leaf in leaves_with_path:
        where = f" at {jax.tree_util.keystr(path)}" if path else ""
        if isinstance(leaf, bool | np.bool_):
            raise TypeError(f"`{fn}({arg}=...)` must be numeric, got a bool{where}")
        if not is_concrete(leaf):
            continue
        try:
            arr = np.asarray(leaf)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"`{fn}({arg}=...)` must be numeric, got {type(leaf).__name__}{where}"
            ) from err
        if arr.dtype == np.bool_ or np.iscomplexobj(arr):
            raise TypeError(f"`{fn}({arg}=...)` must be real-valued, got dtype {arr.dtype}{where}")
        if arr.dtype.kind not in "iuf" and not jnp.issubdtype(arr.dtype, jnp.floating):
            # strings ("0.1" would parse as a float) and objects; bfloat16 has kind "V"
            raise TypeError(f"`{fn}({arg}=...)` must be numeric, got dtype {arr.dtype}{where}")
        try:
            arr64 = arr.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"`{fn}({arg}=...)` must be numeric, got dtype {arr.dtype}{where}"
            ) from err
        if not np.all(np.isfinite(arr64)) or np.any(arr64 < 0):
            shown = _show(arr64)
            raise ValueError(
                f"`{fn}({arg}=...)` must be non-negative and finite, got {shown}{where}"
            )


def _show(arr: np.ndarray) -> str:
    if arr.ndim == 0:
        return repr(float(arr))
    bad = arr[~np.isfinite(arr) | (arr < 0)]
    return f"an array containing {float(bad.flat[0])!r}"


def check_strength_pair(hyperparams: Any, *, fn: str, names: tuple[str, str]) -> tuple[Any, Any]:
    """Validates jaxopt's ``hyperparams=(a, b)`` pair (None means ``(1.0, 1.0)``) and returns it."""
    if hyperparams is None:
        hyperparams = (1.0, 1.0)
    if not isinstance(hyperparams, tuple | list) or len(hyperparams) != 2:
        raise ValueError(
            f"`{fn}(hyperparams=...)` must be a pair ({names[0]}, {names[1]}), got {hyperparams!r}"
        )
    for index, (value, name) in enumerate(zip(hyperparams, names, strict=True)):
        check_strength(value, fn=fn, arg=f"hyperparams[{index}] ({name})", allow_schedule=False)
    return hyperparams[0], hyperparams[1]


def check_float_leaves(params: Tree, *, fn: str) -> None:
    """Raises ``TypeError`` naming the first leaf whose dtype is not floating or complex."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        dtype = jnp.result_type(leaf) if not hasattr(leaf, "dtype") else leaf.dtype
        if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.complexfloating)):
            raise TypeError(
                f"`{fn}` needs floating-point parameters, but leaf "
                f"{jax.tree_util.keystr(path) or '<root>'} has dtype {dtype}; mask it out "
                "(mask=...) or cast it"
            )


def require_params(params: Tree | None, *, fn: str) -> None:
    if params is None:
        raise ValueError(
            f"`{fn}` needs the current parameters: call `update(updates, state, params)`"
        )


def broadcast_to_params(hyper: Tree, params: Tree, *, fn: str, arg: str) -> Tree:
    """Aligns a hyperparameter with ``params``: a single leaf is repeated, a tree must be a prefix.

    Returns a tree with the structure of ``params`` (None leaves kept as None) whose leaves are the
    hyperparameter values that apply to each parameter leaf.
    """
    if _is_single_leaf(hyper):
        return jax.tree.map(lambda p: None if p is None else hyper, params, is_leaf=is_none)
    try:
        return jax.tree.map(
            lambda h, sub: jax.tree.map(lambda p: None if p is None else h, sub, is_leaf=is_none),
            hyper,
            params,
            is_leaf=is_none,
        )
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"`{fn}({arg}=...)` must be a scalar or a pytree matching the parameters (or a prefix "
            f"of them); got structure {jax.tree.structure(hyper)} for parameters with structure "
            f"{jax.tree.structure(params)}"
        ) from err


def _is_single_leaf(x: Any) -> bool:
    treedef = jax.tree.structure(x)
    return x is not None and treedef.num_nodes == 1 and treedef.num_leaves == 1


def resolve_mask(mask: Tree | Callable[[Tree], Tree], params: Tree, *, fn: str) -> Tree:
    """Evaluates a callable mask and checks that the mask is a bool-valued prefix of ``params``."""
    mask_tree = mask(params) if callable(mask) else mask
    for path, leaf in jax.tree_util.tree_leaves_with_path(mask_tree):
        if not isinstance(leaf, bool | np.bool_):
            raise TypeError(
                f"`{fn}(mask=...)` must hold Python bools, got {type(leaf).__name__} at "
                f"{jax.tree_util.keystr(path) or '<root>'}"
            )
    try:
        jax.tree.map(lambda m, sub: None, mask_tree, params, is_leaf=is_none)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"`{fn}(mask=...)` does not match the parameters: mask structure "
            f"{jax.tree.structure(mask_tree)} is not a prefix of parameter structure "
            f"{jax.tree.structure(params)}"
        ) from err
    return mask_tree


def drop_masked(params: Tree, mask: Tree | Callable[[Tree], Tree] | None, *, fn: str) -> Tree:
    """Replaces the leaves a mask excludes by None (skipped by every pure penalty)."""
    if mask is None:
        return params
    mask_tree = resolve_mask(mask, params, fn=fn)
    return jax.tree.map(
        lambda m, sub: sub if m else jax.tree.map(lambda _: None, sub, is_leaf=is_none),
        mask_tree,
        params,
        is_leaf=is_none,
    )


def compute_dtype(dtype: Any) -> jnp.dtype:
    """At least float32 (complex64 for complex): low-precision thresholds must not round to 0."""
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return jnp.promote_types(dtype, jnp.complex64)
    return jnp.promote_types(dtype, jnp.float32)


def nan_if_negative(value: jax.Array) -> jax.Array:
    """Traced strengths cannot raise: make a negative (or NaN) one poison the result instead."""
    return jnp.where(value >= 0, value, jnp.nan)
