"""Group lasso and sparse group lasso: penalties, proximal operators and a transform.

Groups live inside each leaf. ``axis=None`` makes the whole leaf one group; ``axis=k`` (an int or
a tuple of ints, negative allowed) makes the groups the slices *indexed* by those axes, with the
Euclidean norm taken over all the other axes. A Dense kernel ``(in, out)`` with ``axis=-1`` has
one group per output neuron; a conv kernel ``(h, w, in, out)`` with ``axis=-1`` one group per
output channel; an attention kernel ``(d, heads, head_dim)`` with ``axis=1`` one group per head.
``axis`` may also be a pytree (a prefix of the parameters) giving one such value per leaf.

Default group weights are :math:`\\sqrt{|g|}` (the group's size), as in Yuan & Lin (2006), so
that groups of different sizes are penalised comparably; pass ``weights`` to override them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from l1optax import _validation as v
from l1optax._prox import _soft_threshold
from l1optax._transforms import _proximal_transform, maybe_masked
from l1optax._types import Axis, ScalarOrSchedule, Tree


def _is_axis_leaf(x: Any) -> bool:
    """None, an int, or a plain tuple of scalars (not a NamedTuple such as optax's MaskedNode)."""
    if x is None or isinstance(x, int | np.integer):
        return True
    return (
        type(x) is tuple
        and len(x) > 0
        and all(a is not None and not isinstance(a, tuple | list | dict) for a in x)
    )


def _normalize_axis(axis: Axis, ndim: int, *, fn: str, where: str) -> tuple[int, ...] | None:
    """Returns the sorted, non-negative group axes of a leaf, or None for a whole-leaf group."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    out = []
    for a in axes:
        if isinstance(a, bool | np.bool_) or not isinstance(a, int | np.integer):
            raise TypeError(f"`{fn}(axis=...)` must hold ints, got {a!r}{where}")
        if not -ndim <= a < ndim:
            raise ValueError(
                f"`{fn}(axis=...)` got axis {int(a)} for a leaf with {ndim} dimension(s){where}"
            )
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"`{fn}(axis=...)` has a repeated axis {axis!r}{where}")
    return tuple(sorted(out))


def _broadcast_axis(axis: Any, params: Tree, *, fn: str) -> Tree:
    """One axis spec per parameter leaf (a tree with the structure of ``params``)."""
    if any(isinstance(a, jax.Array) for a in jax.tree.leaves(axis)):
        raise TypeError(
            f"`{fn}(axis=...)` must be Python ints (a static group layout), got a JAX array "
            f"{axis!r}; under optax.inject_hyperparams, which turns every number into an array, "
            f'build it with optax.inject_hyperparams({fn}, static_args=("axis",))'
        )
    if _is_axis_leaf(axis):
        return jax.tree.map(lambda p: axis, params, is_leaf=v.is_none)
    try:
        return jax.tree.map(
            lambda a, sub: jax.tree.map(lambda p: a, sub, is_leaf=v.is_none),
            axis,
            params,
            is_leaf=_is_axis_leaf,
        )
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"`{fn}(axis=...)` must be None, an int, a tuple of ints, or a pytree of those that is "
            f"a prefix of the parameters; got {axis!r} for parameters with structure "
            f"{jax.tree.structure(params)}"
        ) from err


def _group_geometry(p: jax.Array, axes: tuple[int, ...] | None):
    """Reduction axes, the group-indexing shape, and the number of coordinates per group."""
    shape = jnp.shape(p)
    if axes is None:
        reduce_axes = tuple(range(len(shape)))
        group_shape: tuple[int, ...] = ()
    else:
        reduce_axes = tuple(i for i in range(len(shape)) if i not in axes)
        group_shape = tuple(shape[i] for i in axes)
    size = int(np.prod([shape[i] for i in reduce_axes], dtype=np.int64)) if reduce_axes else 1
    return reduce_axes, group_shape, size


def _group_weights(w: Any, p: jax.Array, axes, reduce_axes, group_shape, size, *, fn, where):
    """Weights broadcastable to the keepdims norm of ``p`` (shape 1 along the reduced axes)."""
    real = jnp.finfo(v.compute_dtype(p.dtype)).dtype
    keep_shape = tuple(1 if i in reduce_axes else s for i, s in enumerate(jnp.shape(p)))
    if w is None:
        return jnp.sqrt(jnp.asarray(size, real))
    w = v.nan_if_negative(jnp.asarray(w))
    if w.ndim == 0:
        return w.astype(real)
    if tuple(w.shape) != group_shape:
        raise ValueError(
            f"`{fn}(weights=...)` must be a scalar or have the group shape {group_shape} (the "
            f"sizes of the group axes {axes}), got shape {tuple(w.shape)}{where}"
        )
    return w.astype(real).reshape(keep_shape)


def _broadcast_weights(weights: Any, params: Tree, *, fn: str) -> Tree:
    if weights is None:
        return jax.tree.map(lambda p: None, params, is_leaf=v.is_none)
    v.check_strength(weights, fn=fn, arg="weights", allow_schedule=False)
    # Group weights have the shape of the groups, not of the leaf: _group_weights checks them.
    return v.broadcast_to_params(weights, params, fn=fn, arg="weights", check_shapes=False)


def _leaf_group_norms(p: jax.Array, reduce_axes) -> jax.Array:
    acc = v.compute_dtype(p.dtype)
    x = p.astype(acc)
    sq = jnp.real(x * jnp.conj(x)) if jnp.iscomplexobj(x) else x * x
    return jnp.sqrt(jnp.sum(sq, axis=reduce_axes, keepdims=True))


def _per_leaf(params, axis, weights, *, fn):
    """(path, leaf, reduce_axes, weights-as-array) for each non-None leaf, in tree order."""
    axes_tree = _broadcast_axis(axis, params, fn=fn)
    w_tree = _broadcast_weights(weights, params, fn=fn)
    flat_p, _ = jax.tree_util.tree_flatten_with_path(params, is_leaf=v.is_none)
    flat_a = jax.tree.leaves(axes_tree, is_leaf=_is_axis_leaf)
    flat_w = jax.tree.leaves(w_tree, is_leaf=v.is_none)
    out = []
    for (path, p), a, w in zip(flat_p, flat_a, flat_w, strict=True):
        if p is None:
            continue
        where = f" at leaf {jax.tree_util.keystr(path) or '<root>'}"
        axes = _normalize_axis(a, jnp.ndim(p), fn=fn, where=where)
        reduce_axes, group_shape, size = _group_geometry(p, axes)
        wa = _group_weights(w, p, axes, reduce_axes, group_shape, size, fn=fn, where=where)
        out.append((path, p, reduce_axes, wa))
    return out


def group_l1_penalty(
    params: Tree,
    l1reg: float | jax.Array | Tree = 1.0,
    *,
    axis: Axis | Tree = None,
    weights: Any = None,
    mask: Tree | Callable[[Tree], Tree] | None = None,
) -> jax.Array:
    r"""The group lasso penalty (sum of weighted Euclidean norms of groups) of a pytree.

    .. math:: \Omega(w) = \lambda \sum_{g} c_g \|w_g\|_2, \qquad c_g = \sqrt{|g|} \text{ by default}

    Args:
      params: a pytree of floating-point arrays; None leaves are skipped.
      l1reg: :math:`\lambda \ge 0`: a scalar or a pytree of per-leaf scalars (prefix accepted).
      axis: None (each leaf is one group), an int or tuple of ints (the axes that *index* the
        groups; the norm runs over the other axes), or a pytree of those per leaf.
      weights: :math:`c_g \ge 0`: None for :math:`\sqrt{|g|}`, a scalar, or an array with the
        group shape (the sizes of the group axes), or a pytree of those per leaf.
      mask: a pytree of bools or a callable ``params -> mask``; masked-out leaves contribute 0.

    Returns:
      A scalar array: float32, or float64 if any leaf is float64.

    Raises:
      ValueError: a negative/NaN/inf strength or weight; an axis out of range or repeated (the
        message names the leaf); a pytree that does not match ``params``; weights of wrong shape.
      TypeError: a penalised leaf is not floating-point.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> w = jnp.array([[3.0, 0.0], [4.0, 1.0]])  # (in, out): columns are neurons
      >>> print(l1optax.group_l1_penalty(w, 1.0, axis=-1, weights=1.0))  # |(3,4)| + |(0,1)|
      6.0

    References:
      Yuan & Lin, 2006, "Model selection and estimation in regression with grouped variables",
      JRSS B 68(1).
    """
    fn = "group_l1_penalty"
    v.check_strength(l1reg, fn=fn, arg="l1reg", allow_schedule=False)
    params = v.drop_masked(params, mask, fn=fn)
    v.check_float_leaves(params, fn=fn)
    lams = jax.tree.leaves(v.broadcast_to_params(l1reg, params, fn=fn, arg="l1reg"))
    _require_scalar_per_leaf(lams, fn=fn, arg="l1reg")
    terms = []
    for (_, p, reduce_axes, wa), lam in zip(
        _per_leaf(params, axis, weights, fn=fn), lams, strict=True
    ):
        norms = _leaf_group_norms(p, reduce_axes)
        real = norms.dtype
        terms.append(v.nan_if_negative(jnp.asarray(lam, real)) * jnp.sum(wa * norms))
    if not terms:
        return jnp.zeros((), jnp.float32)
    out_dtype = jnp.result_type(*[t.dtype for t in terms])
    return sum((t.astype(out_dtype) for t in terms), start=jnp.zeros((), out_dtype))


def _group_shrink_leaf(x: jax.Array, threshold: Any, reduce_axes, wa, scaling: Any = None):
    r"""Unchecked block soft threshold of one leaf, in at least float32, returned in x.dtype.

    ``threshold`` is :math:`s\lambda` for a scalar step; with a per-coordinate ``scaling`` array
    (a diagonal metric) it is :math:`\lambda` and the group step is solved by
    :func:`_metric_group_factor`.
    """
    acc = v.compute_dtype(x.dtype)
    real = jnp.finfo(acc).dtype
    xc = x.astype(acc)
    if scaling is not None and jnp.ndim(scaling) > 0:
        lam = v.nan_if_negative(jnp.asarray(threshold, real)) * wa
        s = v.nan_if_negative(jnp.broadcast_to(jnp.asarray(scaling, real), jnp.shape(x)))
        return (xc * _metric_group_factor(xc, s, lam, reduce_axes)).astype(x.dtype)
    t = v.nan_if_negative(jnp.asarray(threshold, real)) * wa
    norms = _leaf_group_norms(xc, reduce_axes)
    safe = jnp.where(norms > 0, norms, 1)
    factor = jnp.where(norms > t, 1 - t / safe, 0)
    factor = jnp.where(jnp.isnan(norms) | jnp.isnan(t), jnp.nan, factor)
    return (xc * factor.astype(real)).astype(x.dtype)


_GROUP_NEWTON_STEPS = 30


def _metric_group_factor(z: jax.Array, s: jax.Array, lam: jax.Array, reduce_axes) -> jax.Array:
    r"""Per-coordinate factors :math:`w_i/z_i` of the group prox in a diagonal metric.

    Minimises :math:`\sum_i (w_i - z_i)^2/(2 s_i) + \lambda c_g \|w_g\|_2` per group. The group
    is exactly 0 iff :math:`\|z_g/s_g\|_2 \le \lambda c_g`; otherwise
    :math:`w_i = z_i\,r/(r + a_i)` with :math:`a_i = s_i\lambda c_g` and :math:`r = \|w_g\|`
    the root of :math:`\sum_i z_i^2/(r + a_i)^2 = 1` in :math:`[\|z\| - a_{max}, \|z\| - a_{min}]`,
    found by a safeguarded Newton iteration on :math:`G(r) = (\sum_i z_i^2/(r+a_i)^2)^{-1/2}`
    (linear, hence exact in one step, when the metric is uniform over the group) with a fixed
    iteration count so that it compiles. A coordinate with :math:`s_i = 0` keeps its value.
    """
    real = s.dtype
    sq = (jnp.real(z * jnp.conj(z)) if jnp.iscomplexobj(z) else z * z).astype(real)
    a = s * lam
    # ||z/s||: a coordinate with s == 0 and z != 0 cannot move, so its group never vanishes.
    ratio = jnp.where(s > 0, sq / jnp.where(s > 0, s, 1) ** 2, jnp.where(sq > 0, jnp.inf, 0))
    dual = jnp.sqrt(jnp.sum(ratio, axis=reduce_axes, keepdims=True))
    norm = jnp.sqrt(jnp.sum(sq, axis=reduce_axes, keepdims=True))
    zero = jnp.where(jnp.isnan(norm) | jnp.isnan(lam), False, dual <= lam)
    big = jnp.asarray(jnp.finfo(real).max, real)
    a_max = jnp.max(jnp.where(sq > 0, a, 0), axis=reduce_axes, keepdims=True)
    a_min = jnp.min(jnp.where(sq > 0, a, big), axis=reduce_axes, keepdims=True)
    lo = jnp.maximum(norm - a_max, 0)
    hi = jnp.maximum(norm - jnp.minimum(a_min, norm), 0)

    def g_and_slope(r):
        inv = 1 / jnp.maximum(r + a, jnp.finfo(real).tiny)
        f = jnp.sum(sq * inv**2, axis=reduce_axes, keepdims=True)
        f_prime = -2 * jnp.sum(sq * inv**3, axis=reduce_axes, keepdims=True)
        g = jax.lax.rsqrt(jnp.maximum(f, jnp.finfo(real).tiny))
        return g, -0.5 * g**3 * f_prime

    def newton(_, carry):
        r, lo, hi = carry
        g, slope = g_and_slope(r)
        above = g > 1  # G increases with r: the root is below r
        hi = jnp.where(above, r, hi)
        lo = jnp.where(above, lo, r)
        step = r - (g - 1) / jnp.where(slope > 0, slope, 1)
        inside = (step >= lo) & (step <= hi) & (slope > 0)
        return jnp.where(inside, step, 0.5 * (lo + hi)), lo, hi

    r, _, _ = jax.lax.fori_loop(0, _GROUP_NEWTON_STEPS, newton, (hi, lo, hi))
    factor = r / jnp.maximum(r + a, jnp.finfo(real).tiny)
    factor = jnp.where(a == 0, 1, factor)
    factor = jnp.where(zero, 0, factor)
    return jnp.where(jnp.isnan(norm) | jnp.isnan(lam) | jnp.isnan(s), jnp.nan, factor)


def prox_group_l1(
    params: Tree,
    l1reg: float | jax.Array | Tree = 1.0,
    scaling: Any = 1.0,
    *,
    axis: Axis | Tree = None,
    weights: Any = None,
) -> Tree:
    r"""Proximal operator of the group lasso (block soft thresholding) over a pytree.

    .. math:: \mathrm{prox}(x)_g = \max\Big(0, 1 - \frac{s\lambda c_g}{\|x_g\|_2}\Big)\, x_g

    Whole groups (a neuron's weights, a conv output channel, an attention head) become exactly 0
    when :math:`\|x_g\|_2 \le s\lambda c_g`. Computed in at least float32, returned in each leaf's
    dtype.

    Args:
      params: a pytree of floating-point arrays; None leaves pass through.
      l1reg: :math:`\lambda \ge 0`: a scalar or a pytree of per-leaf scalars (prefix accepted).
      scaling: the step :math:`s \ge 0`, a scalar or a pytree of per-leaf scalars.
      axis: None (whole leaf), an int or tuple of ints indexing the groups, or a pytree of those.
      weights: :math:`c_g`: None for :math:`\sqrt{|g|}`, a scalar, an array of the group shape, or
        a pytree of those.

    Returns:
      A pytree with the same structure, shapes and dtypes as ``params``.

    Raises:
      ValueError: a negative/NaN/inf strength, scaling or weight; a bad axis (the message names
        the leaf); a pytree that does not match ``params``.
      TypeError: a leaf is not floating-point.

    Examples:
      >>> import jax.numpy as jnp
      >>> from l1optax import prox_group_l1
      >>> w = jnp.array([[3.0, 0.1], [4.0, 0.1]])
      >>> prox_group_l1(w, 1.0, axis=-1, weights=1.0)  # column norms 5 and 0.14
      Array([[2.4, 0. ],
             [3.2, 0. ]], dtype=float32)

    References:
      Yuan & Lin, 2006, "Model selection and estimation in regression with grouped variables".
      Bach, Jenatton, Mairal & Obozinski, 2012, "Optimization with sparsity-inducing penalties".
    """
    fn = "prox_group_l1"
    if l1reg is None:
        l1reg = 1.0
    v.check_strength(l1reg, fn=fn, arg="l1reg", allow_schedule=False)
    v.check_strength(scaling, fn=fn, arg="scaling", allow_schedule=False)
    v.check_float_leaves(params, fn=fn)
    return _group_prox_tree(params, l1reg, scaling, axis, weights, fn=fn)


def _require_scalar_per_leaf(values: list, *, fn: str, arg: str) -> None:
    for value in values:
        if jnp.ndim(value) != 0:
            raise ValueError(
                f"`{fn}({arg}=...)` must be a scalar per leaf (use `weights=` for per-group "
                f"strengths), got an array of shape {jnp.shape(value)}"
            )


def _group_prox_tree(params, l1reg, scaling, axis, weights, *, fn, arg="l1reg"):
    lams = jax.tree.leaves(v.broadcast_to_params(l1reg, params, fn=fn, arg=arg))
    ss = jax.tree.leaves(v.broadcast_to_params(scaling, params, fn=fn, arg="scaling"))
    _require_scalar_per_leaf(lams, fn=fn, arg=arg)
    leaves = _per_leaf(params, axis, weights, fn=fn)
    for (path, p, _, _), s in zip(leaves, ss, strict=True):
        if jnp.ndim(s) != 0 and jnp.broadcast_shapes(jnp.shape(s), jnp.shape(p)) != jnp.shape(p):
            raise ValueError(
                f"`{fn}(scaling=...)` must be a scalar or broadcast to the leaf's shape "
                f"{jnp.shape(p)} (a per-coordinate metric), got shape {jnp.shape(s)} at leaf "
                f"{jax.tree_util.keystr(path) or '<root>'}"
            )
    new_leaves = [
        _group_shrink_leaf(p, jnp.asarray(lam), reduce_axes, wa, s)
        if jnp.ndim(s) != 0
        else _group_shrink_leaf(p, jnp.asarray(lam) * jnp.asarray(s), reduce_axes, wa)
        for (_, p, reduce_axes, wa), lam, s in zip(leaves, lams, ss, strict=True)
    ]
    treedef = jax.tree.structure(params)
    return jax.tree.unflatten(treedef, new_leaves)


def sparse_group_l1_penalty(
    params: Tree,
    l1reg: float | jax.Array | Tree = 1.0,
    group_reg: float | jax.Array | Tree = 1.0,
    *,
    axis: Axis | Tree = None,
    weights: Any = None,
    mask: Tree | Callable[[Tree], Tree] | None = None,
) -> jax.Array:
    r"""The sparse group lasso penalty: an L1 term plus a group lasso term.

    .. math:: \Omega(w) = \sum_i \lambda_{1,i}|w_i| + \lambda_g \sum_g c_g \|w_g\|_2

    Args:
      params: a pytree of floating-point arrays; None leaves are skipped.
      l1reg: :math:`\lambda_1 \ge 0`: scalar, per-leaf scalars or per-coordinate arrays.
      group_reg: :math:`\lambda_g \ge 0`: scalar or per-leaf scalars.
      axis: the group axes (see :func:`group_l1_penalty`).
      weights: the group weights :math:`c_g` (default :math:`\sqrt{|g|}`).
      mask: a pytree of bools or a callable; masked-out leaves contribute 0.

    Returns:
      A scalar array.

    Raises:
      ValueError: see :func:`group_l1_penalty` and ``l1_penalty``.
      TypeError: a penalised leaf is not floating-point.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> w = jnp.array([[3.0, 0.0], [4.0, 0.0]])
      >>> print(l1optax.sparse_group_l1_penalty(w, 0.5, 1.0, axis=-1, weights=1.0))
      8.5

    References:
      Simon, Friedman, Hastie & Tibshirani, 2013, "A sparse-group lasso", JCGS 22(2).
    """
    from l1optax._penalty import l1_penalty

    return l1_penalty(params, l1reg, mask=mask) + group_l1_penalty(
        params, group_reg, axis=axis, weights=weights, mask=mask
    )


def prox_sparse_group_l1(
    params: Tree,
    hyperparams: tuple[Any, Any] | None = None,
    scaling: Any = 1.0,
    *,
    axis: Axis | Tree = None,
    weights: Any = None,
) -> Tree:
    r"""Proximal operator of the sparse group lasso: soft threshold, then block soft threshold.

    .. math:: \mathrm{prox}(x)_g = \max\Big(0, 1 - \frac{s\lambda_g c_g}
       {\|S_{s\lambda_1}(x)_g\|_2}\Big)\, S_{s\lambda_1}(x)_g

    Exact: the prox of the sum is the composition (Simon et al. 2013, Friedman et al. 2010).
    Produces both individual zeros and whole zero groups.

    Args:
      params: a pytree of floating-point arrays; None leaves pass through.
      hyperparams: a tuple ``(l1reg, group_reg)``; None means ``(1.0, 1.0)``. ``l1reg`` may hold
        per-coordinate arrays; ``group_reg`` scalars or per-leaf scalars.
      scaling: the step :math:`s \ge 0`, a scalar or per-leaf scalars.
      axis: the group axes (see :func:`prox_group_l1`).
      weights: the group weights :math:`c_g` (default :math:`\sqrt{|g|}`).

    Returns:
      A pytree with the same structure, shapes and dtypes as ``params``.

    Raises:
      ValueError: ``hyperparams`` is not a pair; a negative/NaN/inf strength; a bad axis.
      TypeError: a leaf is not floating-point.

    Examples:
      >>> import jax.numpy as jnp
      >>> from l1optax import prox_sparse_group_l1
      >>> w = jnp.array([[3.5, 0.1], [4.5, 0.2]])
      >>> prox_sparse_group_l1(w, (0.5, 1.0), axis=-1, weights=1.0)
      Array([[2.4, 0. ],
             [3.2, 0. ]], dtype=float32)

    References:
      Simon, Friedman, Hastie & Tibshirani, 2013, "A sparse-group lasso".
    """
    fn = "prox_sparse_group_l1"
    l1reg, group_reg = v.check_strength_pair(hyperparams, fn=fn, names=("l1reg", "group_reg"))
    v.check_strength(scaling, fn=fn, arg="scaling", allow_schedule=False)
    v.check_float_leaves(params, fn=fn)
    l1s = v.broadcast_to_params(l1reg, params, fn=fn, arg="hyperparams[0] (l1reg)")
    ss = v.broadcast_to_params(scaling, params, fn=fn, arg="scaling")
    # Soft threshold in the compute dtype (no intermediate rounding to a low-precision dtype).
    soft = jax.tree.map(
        lambda p, a, s: (
            None
            if p is None
            else _soft_threshold(
                p.astype(v.compute_dtype(p.dtype)), jnp.asarray(a) * jnp.asarray(s)
            )
        ),
        params,
        l1s,
        ss,
        is_leaf=v.is_none,
    )
    out = _group_prox_tree(
        soft, group_reg, scaling, axis, weights, fn=fn, arg="hyperparams[1] (group_reg)"
    )
    return jax.tree.map(
        lambda p, z: None if p is None else z.astype(p.dtype), params, out, is_leaf=v.is_none
    )


def apply_group_l1_prox(
    learning_rate: ScalarOrSchedule,
    l1reg: ScalarOrSchedule | Tree,
    *,
    axis: Axis | Tree = None,
    weights: Any = None,
    mask: Tree | Callable[[Tree], Tree] | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""The group lasso proximal step, placed last in a chain (structured sparsity).

    .. math:: p_{t+1} = \mathrm{prox}_{\eta_t\lambda_t \sum_g c_g\|\cdot\|_2}(p_t + u_t),
       \qquad u_t \leftarrow p_{t+1} - p_t

    ``optax.chain(optax.sgd(lr), apply_group_l1_prox(lr, lam, axis=-1))`` is proximal gradient descent
    on :math:`f(w) + \lambda\sum_g c_g\|w_g\|_2`: whole neurons (columns of a Dense kernel) or conv
    output channels become exactly 0. This is :func:`l1optax.apply_prox` with
    :func:`prox_group_l1`. Use ``mask`` to leave biases and norms unpenalised.

    Args:
      learning_rate: :math:`\eta_t`, the preceding optimizer's learning rate or schedule.
      l1reg: :math:`\lambda_t \ge 0`: a float, a schedule, or a pytree of per-leaf scalars.
      axis: None (whole leaf), an int or tuple of ints indexing the groups, or a pytree of those.
      weights: the group weights :math:`c_g` (default :math:`\sqrt{|g|}`).
      mask: a pytree of bools or a callable ``params -> mask``; masked-out leaves pass through.
        With ``optax.inject_hyperparams`` pass ``static_args=("axis",)`` (an int axis would
        otherwise be injected as a traced number).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``.

    Raises:
      ValueError: a concrete negative/NaN/inf ``learning_rate``, ``l1reg`` or weight; a bad axis
        (at ``init``, naming the leaf); ``update`` without ``params``; a mask mismatch.
      TypeError: a (non-masked) parameter leaf is not floating-point.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> import l1optax
      >>> tx = optax.chain(optax.sgd(0.1), l1optax.apply_group_l1_prox(0.1, 1.0, axis=-1, weights=1.0))
      >>> params = jnp.array([[3.0, 0.03], [4.0, 0.04]])
      >>> updates, _ = tx.update(jnp.zeros((2, 2)), tx.init(params), params)
      >>> optax.apply_updates(params, updates)
      Array([[2.94, 0.  ],
             [3.92, 0.  ]], dtype=float32)

    References:
      Yuan & Lin, 2006, "Model selection and estimation in regression with grouped variables".
      Scardapane, Comminiello, Hussain & Uncini, 2017, "Group sparse regularization for deep
      neural networks", Neurocomputing 241.
    """
    fn = "apply_group_l1_prox"
    if learning_rate is None:
        raise ValueError(f"`{fn}(learning_rate=...)` is required for a proximal step, got None")
    v.check_strength(learning_rate, fn=fn, arg="learning_rate")
    v.check_strength(l1reg, fn=fn, arg="l1reg")
    if weights is not None:
        v.check_strength(weights, fn=fn, arg="weights", allow_schedule=False)

    def prox(x, lam, scaling):
        return _group_prox_tree(x, lam, scaling, axis, weights, fn=fn)

    inner = _proximal_transform(prox, learning_rate, l1reg, mask=None, fn=fn)

    def init_fn(params):
        # Validate the axes and weights against the parameters once, eagerly.
        _per_leaf(v.scalars_as_arrays(params), axis, weights, fn=fn)
        return inner.init(params)

    tx = optax.GradientTransformation(init_fn, inner.update)
    return maybe_masked(tx, mask, fn=fn)
