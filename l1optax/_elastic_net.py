"""The elastic-net penalty and its proximal operator over pytrees.

Convention (as in TensorFlow's proximal optimizers and jaxopt): ``l2reg`` is the strength of
:math:`\\tfrac{l_2}{2}\\|w\\|_2^2`, so scikit-learn's ``ElasticNet(alpha, l1_ratio)`` is
``l1reg = alpha * l1_ratio`` and ``l2reg = alpha * (1 - l1_ratio)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from l1optax import _validation as v
from l1optax._penalty import abs_with_zero_subgradient
from l1optax._prox import _soft_threshold
from l1optax._types import Tree


def elastic_net_penalty(
    params: Tree,
    l1reg: float | jax.Array | Tree = 1.0,
    l2reg: float | jax.Array | Tree = 0.0,
    *,
    mask: Tree | Callable[[Tree], Tree] | None = None,
) -> jax.Array:
    r"""The elastic-net penalty of a pytree.

    .. math:: \Omega(w) = \sum_i \lambda_{1,i} |w_i| + \tfrac{\lambda_{2,i}}{2} w_i^2

    With ``l1reg = alpha * l1_ratio`` and ``l2reg = alpha * (1 - l1_ratio)`` this is exactly the
    penalty of ``sklearn.linear_model.ElasticNet(alpha, l1_ratio)``. Each leaf is accumulated in at
    least float32. ``jax.grad`` gives :math:`\lambda_1\mathrm{sign}(w) + \lambda_2 w` (0 at 0).

    Args:
      params: a pytree of floating-point arrays; None leaves are skipped.
      l1reg: :math:`\lambda_1 \ge 0`: a scalar, per-leaf scalars or per-coordinate arrays (a
        prefix of ``params`` is accepted).
      l2reg: :math:`\lambda_2 \ge 0`, same forms as ``l1reg``.
      mask: a pytree of bools (prefix of ``params``) or a callable ``params -> mask``; masked-out
        leaves contribute nothing.

    Returns:
      A scalar array: float32, or float64 if any leaf is float64.

    Raises:
      ValueError: a concrete strength is negative, NaN or infinite, a per-coordinate strength does
        not broadcast to its leaf's shape, or a pytree does not match ``params``. A traced
        (``jax.jit``) negative strength gives NaN.
      TypeError: a penalised leaf is not floating-point (8-bit floats included).

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> print(l1optax.elastic_net_penalty(jnp.array([1.0, -2.0]), l1reg=0.5, l2reg=1.0))
      4.0

    References:
      Zou & Hastie, 2005, "Regularization and variable selection via the elastic net", JRSS B 67(2).
    """
    fn = "elastic_net_penalty"
    v.check_strength(l1reg, fn=fn, arg="l1reg", allow_schedule=False)
    v.check_strength(l2reg, fn=fn, arg="l2reg", allow_schedule=False)
    # Shapes are checked against every leaf, masked-out ones included.
    l1s = jax.tree.leaves(
        v.broadcast_to_params(l1reg, params, fn=fn, arg="l1reg"), is_leaf=v.is_none
    )
    l2s = jax.tree.leaves(
        v.broadcast_to_params(l2reg, params, fn=fn, arg="l2reg"), is_leaf=v.is_none
    )
    params = v.drop_masked(params, mask, fn=fn)
    v.check_float_leaves(params, fn=fn)

    def leaf_penalty(p, lam1, lam2):
        p = jnp.asarray(p)  # Python / NumPy scalars are leaves too
        acc = v.compute_dtype(p.dtype)
        real_acc = jnp.finfo(acc).dtype
        magnitude = abs_with_zero_subgradient(p.astype(acc)).astype(real_acc)
        # A traced negative strength cannot raise: it makes the penalty NaN instead.
        lam1 = v.nan_if_negative(jnp.asarray(lam1, real_acc))
        lam2 = v.nan_if_negative(jnp.asarray(lam2, real_acc))
        return jnp.sum(lam1 * magnitude + 0.5 * lam2 * magnitude * magnitude)

    flat = zip(jax.tree.leaves(params, is_leaf=v.is_none), l1s, l2s, strict=True)
    terms = [leaf_penalty(*t) for t in flat if t[0] is not None]
    if not terms:
        return jnp.zeros((), jnp.float32)
    out_dtype = jnp.result_type(*[t.dtype for t in terms])
    return sum((t.astype(out_dtype) for t in terms), start=jnp.zeros((), out_dtype))


def elastic_net_leaf(x: jax.Array, threshold: Any, shrink: Any) -> jax.Array:
    """Unchecked elastic-net prox of one leaf: ``S_threshold(x) / (1 + shrink)``.

    Computed in at least float32 and returned in ``x.dtype``; exact zeros where ``|x| <= t``.
    ``threshold`` is ``scaling * l1reg`` and ``shrink`` is ``scaling * l2reg`` (scalars or arrays
    broadcastable to ``x``). Negative (traced) values give NaN.
    """
    x = jnp.asarray(x)
    acc = v.compute_dtype(x.dtype)
    real_acc = jnp.finfo(acc).dtype
    shrink = v.nan_if_negative(jnp.asarray(shrink, real_acc))
    z = _soft_threshold(x.astype(acc), threshold)
    # No division when there is no shrinkage: keeps l2reg = 0 bitwise the soft threshold.
    return jnp.where(shrink == 0, z, z / (1 + shrink)).astype(x.dtype)


def prox_elastic_net(
    params: Tree,
    hyperparams: tuple[Any, Any] | None = None,
    scaling: Any = 1.0,
) -> Tree:
    r"""Proximal operator of the elastic net over a pytree (jaxopt's signature).

    .. math:: \mathrm{prox}(x) = \arg\min_z \tfrac12\|z - x\|^2 + s\lambda_1\|z\|_1
       + \tfrac{s\lambda_2}{2}\|z\|^2 = \frac{S_{s\lambda_1}(x)}{1 + s\lambda_2}

    A drop-in replacement for ``jaxopt.prox.prox_elastic_net``. Leaves with
    :math:`|x| \le s\lambda_1` become exactly 0 in every dtype; the computation runs in at least
    float32. ``scaling`` may be a per-coordinate pytree: with :math:`s = \eta / d` it is the
    elastic-net prox in the metric of a diagonal preconditioner :math:`d` (what ``prox_adam`` uses).

    Args:
      params: a pytree of floating-point arrays; None leaves pass through.
      hyperparams: a tuple ``(l1reg, l2reg)``; each a scalar, per-leaf scalars or per-coordinate
        arrays (prefix trees accepted). None means ``(1.0, 1.0)``, as in jaxopt.
      scaling: the step :math:`s \ge 0`: a scalar or a pytree like ``l1reg``.

    Returns:
      A pytree with the same structure, shapes and dtypes as ``params``.

    Raises:
      ValueError: ``hyperparams`` is not a pair; a concrete strength or ``scaling`` is negative,
        NaN or infinite; a pytree does not match ``params``.
      TypeError: a leaf of ``params`` is not floating-point.

    Examples:
      >>> import jax.numpy as jnp
      >>> from l1optax import prox_elastic_net
      >>> prox_elastic_net(jnp.array([3.0, -0.2]), (0.5, 1.0), scaling=2.0)
      Array([0.6666667, 0.       ], dtype=float32)

    References:
      Zou & Hastie, 2005, "Regularization and variable selection via the elastic net".
      Parikh & Boyd, 2014, "Proximal algorithms", Section 6.5.2.
    """
    return _prox_elastic_net(params, hyperparams, scaling, fn="prox_elastic_net")


def _prox_elastic_net(params: Tree, hyperparams: Any, scaling: Any, *, fn: str) -> Tree:
    """:func:`prox_elastic_net` whose error messages name ``fn``."""
    l1reg, l2reg = v.check_strength_pair(hyperparams, fn=fn, names=("l1reg", "l2reg"))
    v.check_strength(scaling, fn=fn, arg="scaling", allow_schedule=False)
    v.check_float_leaves(params, fn=fn)
    l1s = v.broadcast_to_params(l1reg, params, fn=fn, arg="hyperparams[0] (l1reg)")
    l2s = v.broadcast_to_params(l2reg, params, fn=fn, arg="hyperparams[1] (l2reg)")
    ss = v.broadcast_to_params(scaling, params, fn=fn, arg="scaling")
    return jax.tree.map(
        lambda p, a, b, s: (
            None
            if p is None
            else elastic_net_leaf(
                p, jnp.asarray(a) * jnp.asarray(s), jnp.asarray(b) * jnp.asarray(s)
            )
        ),
        params,
        l1s,
        l2s,
        ss,
        is_leaf=v.is_none,
    )
