"""The L1 penalty over pytrees, with the subgradient that is 0 at 0."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from l1optax import _validation as v
from l1optax._types import Tree


@jax.custom_jvp
def abs_with_zero_subgradient(x: jax.Array) -> jax.Array:
    """``|x|`` (the modulus for complex ``x``) whose derivative at 0 is exactly 0.

    ``jax.grad(jnp.abs)(0.)`` is 1.0; the minimum-norm subgradient of ``|x|`` at 0 is 0, and that
    is what makes a subgradient step leave zero weights at zero.
    """
    return jnp.abs(x)


@abs_with_zero_subgradient.defjvp
def _abs_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    magnitude = jnp.abs(x)
    if jnp.iscomplexobj(x):
        safe = jnp.where(magnitude > 0, magnitude, 1)
        slope = jnp.where(magnitude > 0, jnp.real(jnp.conj(x) * dx) / safe, 0)
        return magnitude, slope.astype(magnitude.dtype)
    return magnitude, jnp.sign(x) * dx


def l1_penalty(
    params: Tree,
    l1reg: float | jax.Array | Tree = 1.0,
    *,
    mask: Tree | Callable[[Tree], Tree] | None = None,
) -> jax.Array:
    r"""The (weighted) L1 penalty of a pytree.

    .. math:: \Omega(w) = \sum_i \lambda_i |w_i|

    Each leaf is accumulated in at least float32 (float64 leaves in float64), so bfloat16 and
    float16 weights do not lose the penalty to rounding. ``jax.grad`` of the penalty is
    :math:`\lambda\,\mathrm{sign}(w)` with exactly 0 where :math:`w = 0`. Complex leaves contribute
    their modulus :math:`|w| = \sqrt{\Re(w)^2 + \Im(w)^2}`.

    Args:
      params: any pytree of floating-point (or complex) arrays; None leaves are skipped.
      l1reg: the strength :math:`\lambda`: a scalar, a pytree of per-leaf scalars, or a pytree of
        per-coordinate arrays broadcastable to each leaf (weighted lasso). A pytree may be a prefix
        of ``params``. Must be non-negative and finite.
      mask: a pytree of bools (a prefix of ``params``) or a callable ``params -> mask``; leaves
        whose mask is False contribute nothing (e.g. biases).

    Returns:
      A scalar array: float32, or float64 if any leaf is float64.

    Raises:
      ValueError: a concrete ``l1reg`` is negative, NaN or infinite, a per-coordinate ``l1reg``
        does not broadcast to its leaf's shape, or ``l1reg``/``mask`` does not match ``params``
        (the message names the missing and extra keys). A traced negative ``l1reg`` gives NaN.
      TypeError: a penalised leaf is not floating-point (8-bit floats included), or ``mask`` is
        not a pytree of bools (a mask callable that returns None, say).

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> params = {"w": jnp.array([1.0, -2.0, 0.0]), "b": jnp.array(3.0)}
      >>> print(l1optax.l1_penalty(params, 0.5))
      3.0
      >>> print(l1optax.l1_penalty(params, 0.5, mask={"w": True, "b": False}))
      1.5

    References:
      Tibshirani, 1996, "Regression shrinkage and selection via the lasso".
    """
    fn = "l1_penalty"
    v.check_strength(l1reg, fn=fn, arg="l1reg", allow_schedule=False)
    # Shapes are checked against every leaf, masked-out ones included.
    strengths = v.broadcast_to_params(l1reg, params, fn=fn, arg="l1reg")
    params = v.drop_masked(params, mask, fn=fn)
    v.check_float_leaves(params, fn=fn)

    def leaf_penalty(p, lam):
        p = jnp.asarray(p)  # Python / NumPy scalars are leaves too
        acc = v.compute_dtype(p.dtype)
        real_acc = jnp.finfo(acc).dtype
        magnitude = abs_with_zero_subgradient(p.astype(acc)).astype(real_acc)
        # A traced negative strength cannot raise: it makes the penalty NaN instead.
        return jnp.sum(v.nan_if_negative(jnp.asarray(lam, real_acc)) * magnitude)

    flat = zip(
        jax.tree.leaves(params, is_leaf=v.is_none),
        jax.tree.leaves(strengths, is_leaf=v.is_none),
        strict=True,
    )
    terms = [leaf_penalty(p, lam) for p, lam in flat if p is not None]
    if not terms:
        return jnp.zeros((), jnp.float32)
    out_dtype = jnp.result_type(*[t.dtype for t in terms])
    return sum((t.astype(out_dtype) for t in terms), start=jnp.zeros((), out_dtype))
