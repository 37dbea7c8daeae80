"""Choosing which parameters to penalise, and how strongly, by name, path or predicate.

Works on any pytree: nested dicts and lists, Linen ``{"params": {...}}`` dicts (boxed
``nn.with_partitioning`` parameters included), and Flax NNX ``nnx.State`` trees (an
``nnx.Variable`` such as ``nnx.Param``, or a Linen ``nn.Partitioned`` box, counts as one leaf). Every result is a
pytree of Python bools (a *mask*) or of Python floats (per-leaf strengths) whose structure is a
prefix of both ``nnx.state(model, nnx.Param)`` and the plain arrays that ``nnx.Optimizer`` passes
to ``tx.update``, so it plugs into every ``mask=`` and ``l1reg=`` argument of l1optax, and into
``optax.masked``. Flax is never imported here unless it has already been imported by the caller.

A parameter's *path* is its keys joined by ``/``: ``"layers/0/kernel"`` for an NNX model,
``"params/Dense_0/kernel"`` for a Linen variable dict. Its *name* is the last key (``"kernel"``).
"""

from __future__ import annotations

import fnmatch
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from l1optax import _validation as v
from l1optax._types import Tree

Pattern = str | re.Pattern
PathPredicate = Callable[[tuple[str | int, ...], Any], bool]

#: Parameter names that Keras's ``kernel_regularizer`` / ``embeddings_regularizer`` cover.
KERAS_KERNEL_NAMES: tuple[str, ...] = ("kernel", "embedding")

_MAX_LISTED = 12


def _is_variable(x: Any) -> bool:
    """True for a boxed parameter: an ``nnx.Variable`` (e.g. ``nnx.Param``) or a Linen
    ``nn.Partitioned`` / ``flax.core.meta.AxisMetadata`` box (``nn.with_partitioning``). Never
    imports flax itself."""
    if "flax.nnx" in sys.modules:
        from flax import nnx

        if isinstance(x, nnx.Variable):
            return True
    if "flax.core.meta" in sys.modules:
        from flax.core import meta

        if isinstance(x, meta.AxisMetadata):
            return True
    return False


def _is_leaf(x: Any) -> bool:
    return x is None or _is_variable(x)


def _key_name(key: Any) -> str | int:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            value = getattr(key, attr)
            return value if isinstance(value, int) else str(value)
    return str(key)


def _keys(path: tuple[Any, ...]) -> tuple[str | int, ...]:
    return tuple(_key_name(k) for k in path)


def _path_string(keys: tuple[str | int, ...]) -> str:
    return "/".join(str(k) for k in keys)


def param_paths(params: Tree) -> list[str]:
    r"""The ``/``-joined path of every parameter leaf, in tree order: what patterns match.

    .. math:: \text{path}(w) = k_1/k_2/\cdots/k_n

    Args:
      params: any pytree; an ``nnx.Variable`` counts as one leaf, None leaves are skipped.

    Returns:
      A list of strings such as ``"layers/0/kernel"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> l1optax.param_paths({"dense": {"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)}})
      ['dense/bias', 'dense/kernel']

    References:
      Heek et al., 2020, "Flax: A neural network library and ecosystem for JAX".
    """
    return [
        _path_string(_keys(path))
        for path, leaf in jax.tree_util.tree_leaves_with_path(params, is_leaf=_is_leaf)
        if leaf is not None
    ]


def _as_patterns(value: Pattern | Iterable[Pattern] | None, *, fn: str, arg: str) -> list[Pattern]:
    if value is None:
        return []
    items: list[Any]
    if isinstance(value, str | re.Pattern):
        items = [value]
    elif isinstance(value, Iterable) and not isinstance(value, Mapping):
        items = list(value)
    else:
        items = [value]
    for item in items:
        if not isinstance(item, str | re.Pattern):
            raise TypeError(
                f"`{fn}({arg}=...)` must be a string, a compiled regex or a sequence of them, "
                f"got {type(item).__name__}: {item!r}"
            )
    if not items:
        raise ValueError(f"`{fn}({arg}=...)` is empty; pass None to not filter on it")
    return items


def _glob_or_regex(pattern: Pattern, text: str) -> bool:
    if isinstance(pattern, re.Pattern):
        return pattern.search(text) is not None
    return fnmatch.fnmatchcase(text, pattern)


def _path_matches(pattern: Pattern, keys: tuple[str | int, ...]) -> bool:
    """A regex searches the full path; a glob matches the full path or a module prefix of it."""
    if isinstance(pattern, re.Pattern):
        return pattern.search(_path_string(keys)) is not None
    return any(
        fnmatch.fnmatchcase(_path_string(keys[:n]), pattern) for n in range(len(keys), 0, -1)
    )


def _no_match_error(fn: str, arg: str, pattern: Any, paths: list[str]) -> ValueError:
    shown = ", ".join(paths[:_MAX_LISTED]) + (", ..." if len(paths) > _MAX_LISTED else "")
    return ValueError(
        f"`{fn}({arg}=...)`: pattern {pattern!r} matched none of the {len(paths)} parameter "
        f"paths ({shown or 'the tree has no leaves'})"
    )


def _check_params_tree(params: Tree, *, fn: str) -> None:
    """A scalar integer array where a parameter tree belongs is a step count: name the fix."""
    if isinstance(params, jax.Array | np.ndarray | np.integer) and np.ndim(params) == 0:
        if jnp.issubdtype(jnp.result_type(params), jnp.integer):
            raise TypeError(
                f"`{fn}(params=...)` got a scalar {jnp.result_type(params)} array, not a "
                "parameter tree: it looks like a step count. optax.inject_hyperparams takes a "
                "callable `mask=` for a schedule and calls it with the step; build the optimizer "
                'with optax.inject_hyperparams(factory, static_args=("mask",)), or pass the '
                f"mask tree itself (`mask={fn}(params)`)"
            )


def _leaf_entries(params: Tree) -> list[tuple[tuple[str | int, ...], Any]]:
    return [
        (_keys(path), leaf)
        for path, leaf in jax.tree_util.tree_leaves_with_path(params, is_leaf=_is_leaf)
        if leaf is not None
    ]


def _map_leaves(fn_: Callable[[tuple[str | int, ...], Any], Any], params: Tree) -> Tree:
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: None if leaf is None else fn_(_keys(path), leaf),
        params,
        is_leaf=_is_leaf,
    )


def select(
    params: Tree,
    *,
    names: Pattern | Iterable[Pattern] | None = None,
    paths: Pattern | Iterable[Pattern] | None = None,
    where: PathPredicate | None = None,
    exclude: bool = False,
    strict: bool = True,
) -> Tree:
    r"""A boolean mask selecting parameters by leaf name, path pattern and/or a predicate.

    .. math:: m(w) = [\text{name}(w) \in N] \wedge [\text{path}(w) \in P] \wedge
        \text{where}(\text{keys}(w), w)

    A leaf is selected when it satisfies *every* criterion given; within ``names`` or ``paths``
    any one pattern suffices. String patterns are shell globs (``fnmatch``, case-sensitive, ``*``
    also crosses ``/``); a path glob matches the whole path or a module prefix of it, so
    ``paths="layers/0"`` selects every parameter of that layer. A compiled ``re.Pattern`` is
    searched (``re.search``) in the name or the full path. The result plugs into any ``mask=``
    argument; for a callable mask use ``functools.partial(select, names=...)``.

    Args:
      params: a pytree of parameters: ``nnx.state(model, nnx.Param)``, a Linen variable dict, or
        any nested dict/list/tuple. An ``nnx.Variable`` counts as one leaf; None leaves stay None.
      names: leaf names to select, e.g. ``"kernel"`` or ``("kernel", "embedding")``.
      paths: path patterns to select, e.g. ``"encoder/*"`` or ``re.compile(r"layers/[01]/")``.
      where: a predicate ``where(keys, leaf) -> bool``, with ``keys`` the path as a tuple of
        strings and ints (``("layers", 0, "kernel")``) and ``leaf`` the array (or Variable).
      exclude: invert the selection (select everything the criteria do *not* match); a bool.
      strict: raise when a name or path pattern matches no leaf at all (catches typos); a bool.

    Returns:
      A pytree of Python bools with the structure of ``params`` (Variables replaced by bools).

    Raises:
      ValueError: with ``strict``, a pattern matches nothing (the message lists the paths); an
        empty pattern list.
      TypeError: a pattern is not a string or regex, ``where`` does not return a bool, or
        ``exclude``/``strict`` is not a bool (``exclude="no"`` would be truthy).

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> params = {"enc": {"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)},
      ...           "dec": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)}}
      >>> l1optax.select(params, names="kernel")
      {'dec': {'bias': False, 'kernel': True}, 'enc': {'bias': False, 'kernel': True}}
      >>> l1optax.select(params, names="kernel", paths="enc")
      {'dec': {'bias': False, 'kernel': False}, 'enc': {'bias': False, 'kernel': True}}

    References:
      Chollet et al., 2015, "Keras" (``kernel_regularizer``: penalise chosen layers' kernels).
    """
    fn = "select"
    v.check_bool(exclude, fn=fn, arg="exclude")
    v.check_bool(strict, fn=fn, arg="strict")
    name_patterns = _as_patterns(names, fn=fn, arg="names")
    path_patterns = _as_patterns(paths, fn=fn, arg="paths")
    if where is not None and not callable(where):
        raise TypeError(f"`{fn}(where=...)` must be a callable (keys, leaf) -> bool, got {where!r}")
    _check_params_tree(params, fn=fn)
    entries = _leaf_entries(params)
    if strict:
        all_paths = [_path_string(k) for k, _ in entries]
        for pattern in name_patterns:
            if not any(_glob_or_regex(pattern, str(k[-1])) for k, _ in entries if k):
                raise _no_match_error(fn, "names", pattern, all_paths)
        for pattern in path_patterns:
            if not any(_path_matches(pattern, k) for k, _ in entries):
                raise _no_match_error(fn, "paths", pattern, all_paths)

    def decide(keys: tuple[str | int, ...], leaf: Any) -> bool:
        chosen = True
        if name_patterns:
            name = str(keys[-1]) if keys else ""
            chosen = any(_glob_or_regex(p, name) for p in name_patterns)
        if chosen and path_patterns:
            chosen = any(_path_matches(p, keys) for p in path_patterns)
        if chosen and where is not None:
            result = where(keys, leaf)
            if not isinstance(result, bool | np.bool_):
                raise TypeError(
                    f"`{fn}(where=...)` must return a Python bool (or np.bool_), got "
                    f"{type(result).__name__} for {_path_string(keys) or '<root>'} (do not test "
                    "array values under jit)"
                )
            chosen = bool(result)
        return chosen != bool(exclude)

    return _map_leaves(decide, params)


def keras_kernel_mask(params: Tree) -> Tree:
    r"""The mask Keras's ``kernel_regularizer`` on every layer gives: kernels (and embeddings) only.

    .. math:: m(w) = [\text{name}(w) \in \{\texttt{kernel}, \texttt{embedding}\}]

    Dense/Conv/Einsum kernels and Embed tables are penalised; biases, LayerNorm/BatchNorm scales
    and biases, and every other parameter are not. Pass the function itself as a callable mask
    (``mask=l1optax.keras_kernel_mask``) or the tree it returns.

    Args:
      params: a pytree of parameters (NNX state, Linen variables, any nested dict).

    Returns:
      A pytree of Python bools with the structure of ``params``.

    Raises:
      ValueError: the tree has no leaf named ``kernel`` or ``embedding``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> params = {"Dense_0": {"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)},
      ...           "LayerNorm_0": {"scale": jnp.ones(3), "bias": jnp.zeros(3)}}
      >>> l1optax.keras_kernel_mask(params)
      {'Dense_0': {'bias': False, 'kernel': True}, 'LayerNorm_0': {'bias': False, 'scale': False}}

    References:
      Chollet et al., 2015, "Keras", ``keras.regularizers.L1`` and ``kernel_regularizer``.
    """
    _check_params_tree(params, fn="keras_kernel_mask")
    entries = _leaf_entries(params)
    if not any(keys and keys[-1] in KERAS_KERNEL_NAMES for keys, _ in entries):
        raise _no_match_error(
            "keras_kernel_mask", "params", KERAS_KERNEL_NAMES, [_path_string(k) for k, _ in entries]
        )
    return _map_leaves(lambda keys, _: bool(keys) and keys[-1] in KERAS_KERNEL_NAMES, params)


def per_layer_l1reg(
    params: Tree,
    strengths: Mapping[Pattern, float],
    *,
    default: float = 0.0,
    mask: Tree | Callable[[Tree], Tree] | None = None,
    strict: bool = True,
) -> Tree:
    r"""Per-leaf L1 strengths from a dict ``{path pattern: l1reg}``, for any ``l1reg=`` argument.

    .. math:: \lambda(w) = \lambda_{k^*}, \quad k^* = \text{the last pattern matching path}(w),
        \quad \text{else } \lambda_{\text{default}}

    Patterns follow :func:`select`'s ``paths=`` rules (a glob matching the path or a module
    prefix, or a compiled regex searched in the path). When several patterns match a leaf the
    *last* one in the dict wins, so ``{"*": 1e-4, "head": 0.0}`` reads as "everything, except the
    head". Leaves outside ``mask`` get 0.0 whatever matched, so
    ``per_layer_l1reg(params, {...}, mask=keras_kernel_mask)`` is Keras's per-layer
    ``kernel_regularizer``.

    Args:
      params: a pytree of parameters (NNX state, Linen variables, any nested dict).
      strengths: an ordered mapping from path pattern to a non-negative finite strength.
      default: the strength of leaves no pattern matches.
      mask: an optional bool pytree or callable ``params -> mask``; leaves it excludes get 0.0.
      strict: raise when a pattern matches no leaf.

    Returns:
      A pytree of Python floats with the structure of ``params`` (Variables replaced by floats).

    Raises:
      ValueError: a strength or ``default`` is negative, NaN or infinite; with ``strict``, a
        pattern matches nothing; ``mask`` does not match ``params``.
      TypeError: a pattern is not a string or regex; a strength is not a single number.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> params = {"layers": [{"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)},
      ...                      {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)}]}
      >>> l1optax.per_layer_l1reg(params, {"layers/0": 1e-3, "layers/1": 1e-4},
      ...                         mask=l1optax.keras_kernel_mask)
      {'layers': [{'bias': 0.0, 'kernel': 0.001}, {'bias': 0.0, 'kernel': 0.0001}]}

    References:
      Chollet et al., 2015, "Keras", ``kernel_regularizer`` (one strength per layer).
    """
    fn = "per_layer_l1reg"
    if not isinstance(strengths, Mapping):
        raise TypeError(
            f"`{fn}(strengths=...)` must be a dict {{path pattern: l1reg}}, got "
            f"{type(strengths).__name__}"
        )
    v.check_bool(strict, fn=fn, arg="strict")
    _check_scalar_strength(default, fn=fn, arg="default")
    items = list(strengths.items())
    for pattern, lam in items:
        _as_patterns(pattern, fn=fn, arg="strengths")
        _check_scalar_strength(lam, fn=fn, arg=f"strengths[{pattern!r}]")
    entries = _leaf_entries(params)
    if strict:
        all_paths = [_path_string(k) for k, _ in entries]
        for pattern, _ in items:
            if not any(_path_matches(pattern, k) for k, _ in entries):
                raise _no_match_error(fn, "strengths", pattern, all_paths)

    def strength(keys: tuple[str | int, ...], _: Any) -> float:
        value = default
        for pattern, lam in items:
            if _path_matches(pattern, keys):
                value = lam
        return float(value)

    out = _map_leaves(strength, params)
    if mask is None:
        return out
    mask_tree = v.resolve_mask(mask, params, fn=fn)
    return jax.tree.map(
        lambda m, sub: sub if m else jax.tree.map(lambda _: 0.0, sub),
        mask_tree,
        out,
        is_leaf=v.is_none,
    )


def _check_scalar_strength(value: Any, *, fn: str, arg: str) -> None:
    """One non-negative finite number (per_layer_l1reg returns Python floats)."""
    if not isinstance(value, int | float | np.number | np.ndarray | jax.Array) or np.ndim(value):
        raise TypeError(
            f"`{fn}({arg}=...)` must be a number (one strength per matching leaf), got "
            f"{type(value).__name__}: {value!r}"
        )
    v.check_strength(value, fn=fn, arg=arg, allow_schedule=False)
