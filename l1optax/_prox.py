"""Soft thresholding and the pytree proximal operator of the L1 norm."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from l1optax import _validation as v
from l1optax._types import Tree


def soft_threshold(x: jax.Array, threshold: float | jax.Array) -> jax.Array:
    r"""Soft thresholding, the proximal operator of :math:`t|x|`.

    .. math:: S_t(x) = \mathrm{sign}(x)\max(|x| - t, 0) = x - \mathrm{clip}(x, -t, t)

    The result is exactly 0 wherever :math:`|x| \le t`, in every dtype. It is computed in at least
    float32 and cast back to ``x.dtype``, so a threshold below the resolution of a bfloat16/float16
    ``x`` still zeroes the entries it should (and leaves the others rounded to the nearest value of
    ``x.dtype``). NaN inputs stay NaN. The derivative is :math:`1\{|x| > t\}` (0 at the kink
    :math:`|x| = t`, as for jaxopt's ``prox_lasso``), and ``t = 0`` is the identity bitwise
    (``-0.0`` included). For complex ``x`` the modulus is shrunk and the phase kept:
    :math:`S_t(x) = x \max(1 - t/|x|, 0)`.

    A negative or NaN threshold has no meaning: a concrete one raises, a traced one (under
    ``jax.jit``) makes the output NaN rather than silently expanding ``x``.

    Args:
      x: an array (floating or complex).
      threshold: :math:`t \ge 0`, a scalar or an array broadcastable to ``x``.

    Returns:
      An array with the shape and dtype of ``x``.

    Raises:
      ValueError: a concrete ``threshold`` is negative, NaN or infinite.
      TypeError: ``x`` is not floating-point or complex.

    Examples:
      >>> import jax.numpy as jnp
      >>> from l1optax import soft_threshold
      >>> soft_threshold(jnp.array([-2.0, -0.5, 0.0, 0.5, 2.0]), 1.0)
      Array([-1.,  0.,  0.,  0.,  1.], dtype=float32)

    References:
      Donoho, 1995, "De-noising by soft-thresholding".
    """
    v.check_strength(threshold, fn="soft_threshold", arg="threshold", allow_schedule=False)
    v.check_float_leaves(x, fn="soft_threshold")
    v.broadcast_to_params(threshold, jnp.asarray(x), fn="soft_threshold", arg="threshold")
    return _soft_threshold(x, threshold)


def _soft_threshold(x: jax.Array, threshold: Any, *, poisoned: bool = False) -> jax.Array:
    """Unchecked soft threshold for use inside transforms (values already validated).

    ``poisoned``: the threshold is already ``>= 0`` or NaN (built by :func:`_mul`), so the
    per-coordinate select that turns a traced negative into NaN is not repeated.
    """
    x = jnp.asarray(x)
    acc = v.compute_dtype(x.dtype)
    real_acc = jnp.finfo(acc).dtype
    t = jnp.asarray(threshold, real_acc)
    if not poisoned:
        t = v.nan_if_negative(t)
    xc = x.astype(acc)
    if jnp.iscomplexobj(xc):
        magnitude = jnp.abs(xc)
        safe = jnp.where(magnitude > 0, magnitude, 1)
        shrink = jnp.maximum(1 - t / safe, 0)
        out = jnp.where(magnitude > t, xc * shrink, jnp.zeros_like(xc))
        out = jnp.where(jnp.isnan(magnitude) | jnp.isnan(t), jnp.nan, out)
    else:
        out = _soft_threshold_real(xc, t)
    return out.astype(x.dtype)


@jax.custom_jvp
def _soft_threshold_real(x: jax.Array, t: jax.Array) -> jax.Array:
    # x - clip(x, -t, t) is exact: +0 when |x| <= t (x - x), a single rounding otherwise, NaN
    # when x or t is NaN. The select keeps x itself when t == 0, so a zero threshold is the
    # identity bitwise (-0.0 and subnormals, which XLA's flush-to-zero would turn into 0).
    # Four vector operations: the Jacobian 1{|x| > t} is the custom JVP below, not a select
    # in the forward pass (which costs three more per coordinate in every optimizer step).
    return jnp.where(t == 0, x, x - jnp.clip(x, -t, t))


@_soft_threshold_real.defjvp
def _soft_threshold_real_jvp(primals, tangents):
    x, t = primals
    dx, dt = tangents
    moved = jnp.abs(x) > t  # 0 at the kink |x| == t, as jaxopt's prox_lasso
    tangent = jnp.where(moved, dx - jnp.sign(x) * dt, jnp.zeros_like(dx))
    return _soft_threshold_real(x, t), tangent


def prox_l1(params: Tree, l1reg: float | jax.Array | Tree = 1.0, scaling: Any = 1.0) -> Tree:
    r"""Proximal operator of :math:`\lambda\|\cdot\|_1` over a pytree (jaxopt's signature).

    .. math:: \mathrm{prox}(x) = \arg\min_z \tfrac12\|z - x\|_2^2 + s\,\lambda\|z\|_1 = S_{s\lambda}(x)

    A drop-in replacement for ``jaxopt.prox.prox_lasso(x, l1reg, scaling)``, with the validation
    jaxopt lacks. Leaves with :math:`|x| \le s\lambda` become exactly 0.

    Args:
      params: a pytree of floating-point arrays; None leaves pass through.
      l1reg: :math:`\lambda \ge 0`: a scalar, a pytree of per-leaf scalars, or a pytree of
        per-coordinate arrays (a prefix of ``params`` is accepted). None means 1.0, as in jaxopt.
      scaling: the step size :math:`s \ge 0`: a scalar or a pytree like ``l1reg`` (a diagonal
        preconditioner gives per-coordinate steps).

    Returns:
      A pytree with the same structure, shapes and dtypes as ``params``.

    Raises:
      ValueError: a concrete ``l1reg`` or ``scaling`` is negative, NaN or infinite, or a pytree
        does not match ``params``.
      TypeError: a leaf of ``params`` is not floating-point.

    Examples:
      >>> import jax.numpy as jnp
      >>> from l1optax import prox_l1
      >>> prox_l1({"w": jnp.array([3.0, -0.2])}, l1reg=0.5, scaling=2.0)
      {'w': Array([2., 0.], dtype=float32)}

    References:
      Parikh & Boyd, 2014, "Proximal algorithms", Foundations and Trends in Optimization 1(3).
    """
    return _prox_l1(params, l1reg, scaling, fn="prox_l1")


def _prox_l1(params: Tree, l1reg: Any, scaling: Any, *, fn: str) -> Tree:
    """:func:`prox_l1` whose error messages name ``fn`` (the transform or optimizer using it)."""
    if l1reg is None:
        l1reg = 1.0
    v.check_strength(l1reg, fn=fn, arg="l1reg", allow_schedule=False)
    v.check_strength(scaling, fn=fn, arg="scaling", allow_schedule=False)
    v.check_float_leaves(params, fn=fn)
    thresholds = jax.tree.map(
        lambda lam, s: None if lam is None else _mul(lam, s),
        v.broadcast_to_params(l1reg, params, fn=fn, arg="l1reg"),
        v.broadcast_to_params(scaling, params, fn=fn, arg="scaling"),
        is_leaf=v.is_none,
    )
    return jax.tree.map(
        lambda p, t: None if p is None else _soft_threshold(p, t, poisoned=True),
        params,
        thresholds,
        is_leaf=v.is_none,
    )


def _mul(a: Any, b: Any) -> Any:
    # Each factor poisons on its own: two traced negatives must not cancel into a valid threshold.
    return v.nan_if_negative(jnp.asarray(a)) * v.nan_if_negative(jnp.asarray(b))
