"""Checks shared by every public function: strengths, leaf dtypes, masks, broadcasting.

Concrete values are checked eagerly and raise a ``ValueError``/``TypeError`` that names the
function, the argument and the value. Traced values (under ``jax.jit``, ``optax.inject_hyperparams``
or a schedule) are never branched on in Python; the numerical kernels turn an invalid traced
strength into NaN instead, so a bad value is never silently clamped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from l1optax._types import Tree


def is_none(x: Any) -> bool:
    return x is None


def is_concrete(x: Any) -> bool:
    """True when ``x`` holds a value we can inspect without tracing."""
    return not isinstance(x, jax.core.Tracer)


def check_strength(value: Any, *, fn: str, arg: str, allow_schedule: bool = True) -> None:
    """Raises if a concrete strength (scalar, array or pytree of them) is negative or non-finite.

    Numeric hyperparameters never accept strings, bools or complex numbers (one rule for every
    numeric argument, shared with :func:`check_in_range`).

    Args:
      value: a Python number, array, pytree of those, or (when ``allow_schedule``) a callable.
      fn: the public function's name, for the message.
      arg: the argument's name, for the message.
      allow_schedule: whether a callable (an optax schedule) is accepted unchecked.

    Raises:
      ValueError: a concrete leaf is negative, NaN or infinite, or a callable where none is
        allowed.
      TypeError: a leaf is not numeric.
    """
    if type(value) is float:  # the common case, without the tree walk (~1 us, not ~18)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"`{fn}({arg}=...)` must be non-negative and finite, got {value!r}")
        return
    if callable(value) and not isinstance(value, jax.Array | np.ndarray | np.generic):
        if allow_schedule:
            return
        raise ValueError(f"`{fn}({arg}=...)` must be a number or pytree of numbers, got {value!r}")
    if value is None:
        raise ValueError(f"`{fn}({arg}=...)` must be a non-negative finite number, got None")
    # None leaves inside a tree are allowed here (they stand for None parameters);
    # broadcast_to_params rejects a None that stands for an array.
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
            raise TypeError(
                f"`{fn}({arg}=...)` must be real-valued, got dtype {arr.dtype}{where}"
                + _injected_complex_hint(leaf)
            )
        if arr.dtype.kind not in "iuf" and not jnp.issubdtype(arr.dtype, jnp.floating):
            # strings ("0.1" would parse as a float) and objects; bfloat16 has kind "V"
            raise TypeError(f"`{fn}({arg}=...)` must be numeric, got dtype {arr.dtype}{where}")
        try:
            arr64 = arr.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"`{fn}({arg}=...)` must be numeric, got dtype {arr.dtype}{where}"
            ) from err
        bad = ~np.isfinite(arr64) | (arr64 < 0)
        if np.any(bad):
            raise ValueError(
                f"`{fn}({arg}=...)` must be non-negative and finite, got "
                f"{_show_bad(arr64, bad)}{where}"
            )


def _show_bad(arr: np.ndarray, bad: np.ndarray) -> str:
    """The offending value: the scalar itself, or the first bad element and its index."""
    if arr.ndim == 0:
        return repr(float(arr))
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    return f"an array containing {float(arr[index])!r} (at index {index})"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_bool(value: Any, *, fn: str, arg: str) -> None:
    """Raises ``TypeError`` unless ``value`` is a Python bool or a NumPy bool scalar.

    Flags are never truthy strings (``"no"`` is truthy), ints or arrays.

    Raises:
      TypeError: ``value`` is not ``True``/``False``.
    """
    if not isinstance(value, bool | np.bool_):
        raise TypeError(
            f"`{fn}({arg}=...)` must be a bool (True or False), got {type(value).__name__}: "
            f"{_short(value)}"
        )


def _injected_complex_hint(value: Any) -> str:
    """A complex JAX array where a real hyperparameter belongs: what inject_hyperparams does."""
    if isinstance(value, jax.Array) and jnp.iscomplexobj(value):
        return (
            "; optax.inject_hyperparams casts hyperparameters to the parameters' dtype, so with "
            "complex parameters build it with hyperparam_dtype=jnp.float32 "
            "(optax.inject_hyperparams(factory, hyperparam_dtype=jnp.float32))"
        )
    return ""


def check_in_range(value: Any, *, fn: str, arg: str, low: float, high: float, closed: bool) -> None:
    """Raises unless every element of a concrete real ``value`` lies in [low, high) or [low, high].

    ``closed`` closes the upper end; the lower end is always closed. Scalars and arrays (or
    lists of numbers) are accepted; a traced value (under ``jax.jit`` or
    ``optax.inject_hyperparams``) is not inspected.

    Raises:
      TypeError: ``value`` is None, a string, a bool, complex, a dict, a callable or a list of
        non-numbers.
      ValueError: an element is outside the range or not finite; the message shows that element.
    """
    if isinstance(value, jax.core.Tracer):
        return
    kind = None
    if value is None or isinstance(value, bool | np.bool_ | str | bytes | dict) or callable(value):
        kind = type(value).__name__
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):
            kind = type(value).__name__
        else:
            if arr.dtype == np.bool_ or not (
                arr.dtype.kind in "iuf" or jnp.issubdtype(arr.dtype, jnp.floating)
            ):
                kind = f"{type(value).__name__} of dtype {arr.dtype}"
    if kind is not None:
        raise TypeError(
            f"`{fn}({arg}=...)` must be a real number, got {kind}: {_short(value)}"
            + _injected_complex_hint(value)
        )
    arr64 = arr.astype(np.float64)
    above = arr64 > high if closed else arr64 >= high
    bad = ~np.isfinite(arr64) | (arr64 < low) | above
    if np.any(bad):
        bracket = "]" if closed else ")"
        hint = ""
        if not closed and np.any(arr64[bad] == high):
            hint = (
                " (a decay that rounds to 1 in a low-precision dtype: with "
                "optax.inject_hyperparams pass hyperparam_dtype=jnp.float32)"
            )
        raise ValueError(
            f"`{fn}({arg}=...)` must be in [{low}, {high}{bracket}, got "
            f"{_show_bad(arr64, bad)}{hint}"
        )


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


def check_float_leaves(params: Tree, *, fn: str, python_scalars: bool = True) -> None:
    """Raises ``TypeError`` naming the first leaf that is not a supported floating/complex array.

    8-bit (and 4-bit) floats are rejected: JAX has no implicit promotion for them, and the
    thresholds of a prox would round to nothing. With ``python_scalars=False`` a Python number
    leaf is rejected too (transforms do not use it: ``check_update_args`` turns such leaves into
    0-d arrays instead).
    """
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        where = jax.tree_util.keystr(path) or "<root>"
        if not python_scalars and isinstance(leaf, int | float | complex):
            raise TypeError(
                f"`{fn}` needs array parameters, but leaf {where} is a Python "
                f"{type(leaf).__name__}; wrap it with jnp.asarray(...)"
            )
        dtype = jnp.result_type(leaf) if not hasattr(leaf, "dtype") else leaf.dtype
        if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.complexfloating)):
            hint = "mask it out (mask=...) or cast it"
            if not path and np.ndim(leaf) == 0 and jnp.issubdtype(dtype, jnp.integer):
                hint = (
                    "a scalar integer where a parameter tree belongs looks like a step count: "
                    "optax.inject_hyperparams takes a callable `prox=` (or any callable "
                    "argument) for a schedule and calls it with the step; name it in "
                    'static_args, e.g. optax.inject_hyperparams(prox_adam, static_args=("prox",))'
                )
            raise TypeError(
                f"`{fn}` needs floating-point parameters, but leaf {where} has dtype {dtype}; {hint}"
            )
        if jnp.issubdtype(dtype, jnp.floating) and jnp.dtype(dtype).itemsize < 2:
            raise TypeError(
                f"`{fn}` does not support 8-bit floating-point parameters, but leaf {where} has "
                f"dtype {dtype}; keep a bfloat16/float32 master copy and cast it"
            )


def check_real_leaves(params: Tree, *, fn: str, advice: str = "") -> None:
    """:func:`check_float_leaves`, and a ``TypeError`` naming the first complex leaf.

    For transforms and operators defined for real numbers only (a signed cumulative penalty,
    FTRL, the nonconvex thresholds); ``advice`` is appended to the message.
    """
    check_float_leaves(params, fn=fn)
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if jnp.iscomplexobj(leaf):
            raise TypeError(
                f"`{fn}` is defined for real parameters, but leaf "
                f"{jax.tree_util.keystr(path) or '<root>'} is {jnp.result_type(leaf)}, a complex dtype"
                + (f"; {advice}" if advice else "")
            )


def require_params(params: Tree | None, *, fn: str) -> None:
    if params is None:
        raise ValueError(
            f"`{fn}` needs the current parameters: call `update(updates, state, params)`"
        )


def check_update_args(updates: Tree, params: Tree | None, *, fn: str) -> tuple[Tree, Tree]:
    """The one check every transform's ``update`` runs before it maps over its arguments.

    ``params`` must be given and have the structure of ``updates``, None leaves included (a
    gradient for a parameter that is None, or the reverse, is an error naming the leaf, never a
    silently dropped update). Python scalar leaves (``{"scale": 0.5}``, accepted by optax's own
    optimizers) are returned as arrays, so every transform handles them like 0-d arrays.
    """
    where = f"{fn}(...).update"
    require_params(params, fn=where)
    check_same_structure(updates, params, fn=where)
    return scalars_as_arrays(updates), scalars_as_arrays(params)


def scalars_as_arrays(tree: Tree) -> Tree:
    return jax.tree.map(
        lambda x: jnp.asarray(x) if isinstance(x, (bool, int, float, complex)) else x, tree
    )


# --------------------------------------------------------------------------------------------
# tree structure: name the missing and extra keys, never dump PyTreeDefs
# --------------------------------------------------------------------------------------------

_MAX_SHOWN = 3


def _paths(tree: Tree) -> dict[tuple[str, ...], Any]:
    """Every leaf (None included) keyed by its path, one ``keystr`` per level."""
    return {
        tuple(jax.tree_util.keystr((k,)) for k in path): leaf
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree, is_leaf=is_none)
    }


def _listed(paths: list[tuple[str, ...]]) -> str:
    shown = ", ".join("".join(p) or "<root>" for p in paths[:_MAX_SHOWN])
    more = len(paths) - _MAX_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def describe_mismatch(tree: Tree, params: Tree, *, prefix: bool) -> str:
    """Which keys ``tree`` lacks and which it has in excess, compared with ``params``.

    With ``prefix``, ``tree`` may stop above the parameters' leaves (one value per subtree).
    Returns a short phrase such as ``"missing ['b']; extra ['c']"``.
    """
    ours, theirs = _paths(tree), _paths(params)
    if prefix:
        their_prefixes = {p[:n] for p in theirs for n in range(len(p) + 1)}
        our_prefixes = {p[:n] for p in ours for n in range(len(p) + 1)}
        extra = [p for p in ours if p not in their_prefixes]
        missing = [
            p
            for p in theirs
            if p not in our_prefixes and not any(p[:n] in ours for n in range(len(p) + 1))
        ]
    else:
        extra = [p for p in ours if p not in theirs]
        missing = [p for p in theirs if p not in ours]
    parts = []
    if missing:
        parts.append(f"missing {_listed(missing)}")
    if extra:
        below = [p for p in extra if any(p[:n] in theirs for n in range(len(p)))]
        if below and len(below) == len(extra):
            parts.append(f"extra structure below the parameter leaf at {_listed(below)}")
        else:
            parts.append(f"extra {_listed(extra)}")
    if not parts:
        parts.append(
            f"the containers differ ({type(tree).__name__} vs {type(params).__name__}, or a list "
            "where the parameters have a tuple, a dict where they have a custom node)"
        )
    return "; ".join(parts)


def check_same_structure(
    tree: Tree, params: Tree, *, fn: str, names: tuple[str, str] = ("updates", "params")
) -> None:
    """Raises ``ValueError`` unless ``tree`` and ``params`` have the same structure, None leaves
    included, naming the first key path where a None stands against an array, or the missing and
    extra keys. Transforms call it on ``(updates, params)`` before mapping over both.
    """
    ours_def: Any = jax.tree.structure(tree, is_leaf=is_none)
    if ours_def == jax.tree.structure(params, is_leaf=is_none):
        nones = [x is None for x in jax.tree.leaves(tree, is_leaf=is_none)]
        if nones == [x is None for x in jax.tree.leaves(params, is_leaf=is_none)]:
            return
    ours, theirs = _paths(tree), _paths(params)
    for path, leaf in ours.items():
        if path in theirs and (leaf is None) != (theirs[path] is None):
            ours_is, theirs_is = ("None", "an array") if leaf is None else ("an array", "None")
            raise ValueError(
                f"`{fn}`: {names[0]} and {names[1]} must have None at the same leaves; at "
                f"{''.join(path) or '<root>'} {names[0]} has {ours_is} and {names[1]} has "
                f"{theirs_is}"
            )
    raise ValueError(
        f"`{fn}`: {names[0]} must have the structure of {names[1]} "
        f"({describe_mismatch(tree, params, prefix=False)})"
    )


def _shape(x: Any) -> tuple[int, ...]:
    shape = getattr(x, "shape", None)
    return tuple(shape) if shape is not None else np.shape(x)


def broadcast_to_params(
    hyper: Tree, params: Tree, *, fn: str, arg: str, check_shapes: bool = True
) -> Tree:
    """Aligns a hyperparameter with ``params``: a single leaf is repeated, a tree must be a prefix.

    Returns a tree with the structure of ``params`` (None leaves kept as None) whose leaves are the
    hyperparameter values that apply to each parameter leaf. With ``check_shapes`` (the default)
    a value may never change a parameter's shape: its shape must broadcast *to* the leaf's shape
    (``np.broadcast_shapes(h.shape, p.shape) == p.shape``; static shapes, so tracers are checked
    too), and a None may only stand where the parameters are None.

    Raises:
      ValueError: the tree is not a prefix of ``params`` (the message names the missing and
        extra keys), a value would broadcast the leaf to another shape, or a None stands where
        the parameters have an array.
    """
    if _is_single_leaf(hyper):
        if check_shapes:
            _check_value(hyper, (), params, fn=fn, arg=arg)
        return jax.tree.map(lambda p: None if p is None else hyper, params, is_leaf=is_none)
    try:
        out = jax.tree.map(
            lambda h, sub: jax.tree.map(lambda p: None if p is None else h, sub, is_leaf=is_none),
            hyper,
            params,
            is_leaf=is_none,
        )
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"`{fn}({arg}=...)` must be a scalar or a pytree matching the parameters (or a prefix "
            f"of them): {describe_mismatch(hyper, params, prefix=True)}"
        ) from err
    if check_shapes:
        jax.tree_util.tree_map_with_path(
            lambda path, h, sub: _check_value(h, path, sub, fn=fn, arg=arg),
            hyper,
            params,
            is_leaf=is_none,
        )
    return out


def _check_value(h: Any, hpath: tuple, sub: Tree, *, fn: str, arg: str) -> None:
    """``h`` applies to every leaf of ``sub``: it must not be None or change a leaf's shape."""
    h_shape = None if h is None or callable(h) else _shape(h)
    for path, p in jax.tree_util.tree_leaves_with_path(sub):
        where = jax.tree_util.keystr((*hpath, *path)) or "<root>"
        if h is None:
            raise ValueError(
                f"`{fn}({arg}=...)` has None at {where}, where the parameters have an array; use "
                "0.0 to leave a leaf unpenalised (or mask it out)"
            )
        if not h_shape:
            continue
        p_shape = _shape(p)
        if h_shape == p_shape:
            continue
        try:
            ok = np.broadcast_shapes(h_shape, p_shape) == p_shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"`{fn}({arg}=...)` has shape {h_shape} at leaf {where}, which does not broadcast to "
                f"the parameter's shape {p_shape}: a strength, learning rate or scaling may not "
                "change a parameter's shape"
            )


def _is_single_leaf(x: Any) -> bool:
    treedef: Any = jax.tree.structure(x)
    return x is not None and treedef.num_nodes == 1 and treedef.num_leaves == 1


def resolve_mask(mask: Tree | Callable[[Tree], Tree], params: Tree, *, fn: str) -> Tree:
    """Evaluates a callable mask and checks that the mask is a bool-valued prefix of ``params``.

    Python bools and NumPy bools are accepted. A callable that returns None (a forgotten
    ``return``) and a None mask leaf standing for an array are ``TypeError``s, never "penalise
    nothing"; a tree that is not a prefix of ``params`` is a ``ValueError`` naming the missing and
    extra keys.
    """
    mask_tree = mask(params) if callable(mask) else mask
    if mask_tree is None:
        raise TypeError(
            f"`{fn}(mask=...)` returned None: a mask callable must return a pytree of bools "
            "(a missing `return`?)"
        )
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
            f"`{fn}(mask=...)` does not match the parameters: mask structure is not a prefix of "
            f"theirs ({describe_mismatch(mask_tree, params, prefix=True)})"
        ) from err

    def no_none(path, m, sub):
        if m is None and jax.tree.leaves(sub):
            raise TypeError(
                f"`{fn}(mask=...)` has None at {jax.tree_util.keystr(path) or '<root>'}, where "
                "the parameters have an array; use False to leave it out"
            )

    jax.tree_util.tree_map_with_path(no_none, mask_tree, params, is_leaf=is_none)
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
