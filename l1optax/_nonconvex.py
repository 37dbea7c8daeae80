r"""Nonconvex sparse penalties, their proximal operators, and the top-k projection.

Every operator has jaxopt's signature ``prox(x, hyperparams, scaling)``: ``x`` is a pytree of real
floating-point arrays, ``hyperparams`` a scalar (or a pair for MCP and SCAD) whose entries may be
pytrees of per-leaf or per-coordinate values (a prefix of ``x``), and ``scaling`` the step
:math:`s \ge 0`, a scalar or a pytree of per-coordinate arrays (the diagonal metric of an adaptive
optimizer). Each returns the global minimiser of the one-dimensional problem

.. math:: \mathrm{prox}_{s\Omega}(x) = \arg\min_z \tfrac12 (z - x)^2 + s\,\Omega(z)

coordinate by coordinate, computed in at least float32 and returned in each leaf's dtype. A
coordinate whose step (or strength) is 0 is returned unchanged bitwise, so an optimizer may mark
coordinates it has not seen yet with a zero step. Ties at a threshold are resolved towards 0.

MCP and SCAD are only "firm" (single-valued, continuous) when the scaled penalty keeps
:math:`\tfrac12 z^2 + s\,\Omega(z)` convex: ``gamma > s`` for MCP and ``gamma - 1 > s`` for SCAD,
for every coordinate's step. With the default ``strict=True`` a concrete violation raises a
``ValueError`` and a traced one (a step computed inside a jitted optimizer) makes the affected
coordinates NaN. With ``strict=False`` those coordinates get the exact global minimiser of the
nonconvex problem instead (a hard threshold), which is what an adaptive optimizer with very large
per-coordinate steps needs.

Complex leaves are rejected with a ``TypeError``: the nonconvex penalties are defined here on real
coordinates only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from l1optax import _validation as v
from l1optax._types import Tree

Kernel = Callable[..., jax.Array]


# --------------------------------------------------------------------------------------------
# shared machinery
# --------------------------------------------------------------------------------------------


def _as_acc(value: Any, acc: Any) -> jax.Array:
    return jnp.asarray(value).astype(acc)


def _apply(
    params: Tree,
    strengths: tuple[Tree, ...],
    scaling: Any,
    kernel: Kernel,
    *,
    fn: str,
    arg: str,
) -> Tree:
    """Maps ``kernel(x, s, *strengths)`` over the leaves (all computed in the compute dtype)."""
    v.check_real_leaves(params, fn=fn)
    v.check_strength(scaling, fn=fn, arg="scaling", allow_schedule=False)
    aligned = [v.broadcast_to_params(h, params, fn=fn, arg=arg) for h in strengths]
    steps = v.broadcast_to_params(scaling, params, fn=fn, arg="scaling")

    def leaf(p, s, *hs):
        if p is None:
            return None
        p = jnp.asarray(p)
        acc = v.compute_dtype(p.dtype)
        x = p.astype(acc)
        s = v.nan_if_negative(_as_acc(s, acc))
        hs = [v.nan_if_negative(_as_acc(h, acc)) for h in hs]
        out = kernel(x, s, *hs)
        # A zero step or strength is the identity bitwise (-0.0 included); NaN still propagates
        # because NaN == 0 is False.
        inactive = (s == 0) | (hs[0] == 0)
        out = jnp.where(inactive, x, out)
        poisoned = jnp.isnan(s)
        for h in hs:
            poisoned = poisoned | jnp.isnan(h)
        out = jnp.where(poisoned, jnp.nan, out)
        return out.astype(p.dtype)

    return jax.tree.map(leaf, params, steps, *aligned, is_leaf=v.is_none)


def _concrete_leaves(*values: Any) -> bool:
    return all(v.is_concrete(leaf) for value in values for leaf in jax.tree.leaves(value))


def _check_convexity(
    params: Tree,
    gamma: Tree,
    scaling: Any,
    *,
    offset: float,
    fn: str,
    condition: str,
) -> None:
    """Raises if a concrete ``gamma - offset <= scaling`` for some coordinate of some leaf."""
    if not _concrete_leaves(gamma, scaling):
        return
    gammas = v.broadcast_to_params(gamma, params, fn=fn, arg="hyperparams[1] (gamma)")
    steps = v.broadcast_to_params(scaling, params, fn=fn, arg="scaling")
    for (path, p), g, s in zip(
        jax.tree_util.tree_leaves_with_path(params),
        jax.tree.leaves(gammas),
        jax.tree.leaves(steps),
        strict=True,
    ):
        g64 = np.broadcast_to(np.asarray(g, np.float64), np.shape(p))
        s64 = np.broadcast_to(np.asarray(s, np.float64), np.shape(p))
        bad = ~(g64 - offset > s64) & (s64 > 0)
        if np.any(bad):
            i = np.flatnonzero(bad)[0]
            raise ValueError(
                f"`{fn}(hyperparams=(lam, gamma))` needs {condition} for every coordinate with a "
                f"non-zero step (otherwise the prox is not single-valued), got gamma="
                f"{float(g64.flat[i])!r} with scaling={float(s64.flat[i])!r} at "
                f"{jax.tree_util.keystr(path) or '<root>'}; lower the step, raise gamma, or pass "
                "strict=False for the (hard-threshold) global minimiser"
            )


def _pair(hyperparams: Any, *, fn: str) -> tuple[Any, Any]:
    if hyperparams is None:
        raise ValueError(f"`{fn}(hyperparams=...)` must be a pair (lam, gamma), got None")
    return v.check_strength_pair(hyperparams, fn=fn, names=("lam", "gamma"))


def _penalty_sum(params: Tree, strengths: tuple[Tree, ...], term: Kernel, *, fn: str, arg: str):
    v.check_real_leaves(params, fn=fn)
    aligned = [v.broadcast_to_params(h, params, fn=fn, arg=arg) for h in strengths]
    terms = []
    for p, *hs in zip(jax.tree.leaves(params), *[jax.tree.leaves(a) for a in aligned], strict=True):
        p = jnp.asarray(p)
        acc = v.compute_dtype(p.dtype)
        hs = [v.nan_if_negative(_as_acc(h, acc)) for h in hs]
        terms.append(jnp.sum(term(p.astype(acc), *hs)))
    if not terms:
        return jnp.zeros((), jnp.float32)
    out_dtype = jnp.result_type(*[t.dtype for t in terms])
    return sum((t.astype(out_dtype) for t in terms), start=jnp.zeros((), out_dtype))


def _pair_penalty(
    params: Tree,
    hyperparams: Any,
    mask: Tree | Callable[[Tree], Tree] | None,
    term: Kernel,
    *,
    fn: str,
) -> jax.Array:
    """``sum term(w, lam, gamma)`` over the penalised leaves (``mcp_penalty``, ``scad_penalty``)."""
    lam, gamma = _pair(hyperparams, fn=fn)
    params = v.drop_masked(params, mask, fn=fn)
    return _penalty_sum(params, (lam, gamma), term, fn=fn, arg="hyperparams")


# --------------------------------------------------------------------------------------------
# L0
# --------------------------------------------------------------------------------------------


def _l0_kernel(x, s, lam):
    threshold = jnp.sqrt(2 * s * lam)
    return jnp.where(jnp.abs(x) <= threshold, jnp.zeros_like(x), x)


def prox_l0(params: Tree, l0reg: float | jax.Array | Tree = 1.0, scaling: Any = 1.0) -> Tree:
    r"""Proximal operator of the L0 penalty (hard thresholding) over a pytree.

    .. math:: \mathrm{prox}(x) = x\,1\{|x| > \sqrt{2 s \lambda}\}

    The global minimiser of :math:`\tfrac12 (z - x)^2 + s\lambda 1\{z \ne 0\}`: coordinates are
    kept unchanged or set exactly to 0, never shrunk (no bias on the weights that survive).

    Args:
      params: a pytree of real floating-point arrays; None leaves pass through.
      l0reg: :math:`\lambda \ge 0`, the cost of one non-zero: a scalar, a pytree of per-leaf
        scalars or of per-coordinate arrays (a prefix of ``params``). None means 1.0.
      scaling: the step :math:`s \ge 0`: a scalar or a pytree of per-coordinate arrays.

    Returns:
      A pytree with the same structure, shapes and dtypes as ``params``.

    Raises:
      ValueError: a concrete ``l0reg`` or ``scaling`` is negative, NaN or infinite, or a pytree
        does not match ``params``.
      TypeError: a leaf is not real floating-point.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> l1optax.prox_l0({"w": jnp.array([3.0, -0.5, 1.5])}, l0reg=1.0, scaling=1.0)
      {'w': Array([3. , 0. , 1.5], dtype=float32)}

    References:
      Blumensath & Davies, 2008, "Iterative thresholding for sparse approximations", Journal of
      Fourier Analysis and Applications 14.
    """
    fn = "prox_l0"
    l0reg = 1.0 if l0reg is None else l0reg
    v.check_strength(l0reg, fn=fn, arg="l0reg", allow_schedule=False)
    return _apply(params, (l0reg,), scaling, _l0_kernel, fn=fn, arg="l0reg")


def l0_penalty(
    params: Tree,
    l0reg: float | jax.Array | Tree = 1.0,
    *,
    mask: Tree | Callable[[Tree], Tree] | None = None,
) -> jax.Array:
    r"""The (weighted) L0 penalty of a pytree: the cost of the non-zero coordinates.

    .. math:: \Omega(w) = \sum_i \lambda_i 1\{w_i \ne 0\}

    Args:
      params: a pytree of real floating-point arrays; None leaves are skipped.
      l0reg: :math:`\lambda \ge 0`: a scalar or a pytree of per-leaf / per-coordinate values.
      mask: a pytree of bools (a prefix of ``params``) or a callable giving one; leaves whose
        mask is False contribute nothing.

    Returns:
      A scalar array (float32, or float64 if a leaf is float64).

    Raises:
      ValueError: a negative/NaN/inf ``l0reg``, or a pytree that does not match ``params``.
      TypeError: a penalised leaf is not real floating-point.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> print(l1optax.l0_penalty({"w": jnp.array([3.0, 0.0, -1.0])}, 0.5))
      1.0

    References:
      Louizos, Welling & Kingma, 2018, "Learning sparse neural networks through L0
      regularization", ICLR.
    """
    fn = "l0_penalty"
    v.check_strength(l0reg, fn=fn, arg="l0reg", allow_schedule=False)
    params = v.drop_masked(params, mask, fn=fn)
    return _penalty_sum(
        params, (l0reg,), lambda w, lam: lam * (w != 0).astype(w.dtype), fn=fn, arg="l0reg"
    )


# --------------------------------------------------------------------------------------------
# MCP
# --------------------------------------------------------------------------------------------


def _mcp_kernel(strict: bool):
    def kernel(x, s, lam, gamma):
        a = jnp.abs(x)
        valid = gamma > s
        # Firm thresholding (valid: gamma > s, the scaled objective is convex).
        safe_den = jnp.where(valid, gamma - s, 1)
        firm = jnp.where(
            a <= s * lam,
            jnp.zeros_like(x),
            jnp.where(a > gamma * lam, x, jnp.sign(x) * (a - s * lam) * gamma / safe_den),
        )
        if strict:
            return jnp.where(valid, firm, jnp.nan)
        # gamma <= s: the objective is concave on |z| <= gamma*lam, so the minimiser is 0 or the
        # unpenalised point max(|x|, gamma*lam); comparing values gives a hard threshold at
        # sqrt(s * gamma) * lam (ties go to 0).
        hard = jnp.where(a <= jnp.sqrt(s * gamma) * lam, jnp.zeros_like(x), x)
        return jnp.where(valid, firm, hard)

    return kernel


def prox_mcp(
    params: Tree,
    hyperparams: tuple[Any, Any],
    scaling: Any = 1.0,
    *,
    strict: bool = True,
) -> Tree:
    r"""Proximal operator of the minimax concave penalty (firm thresholding) over a pytree.

    .. math:: \mathrm{prox}(x) = \begin{cases} 0 & |x| \le s\lambda \\ \mathrm{sign}(x)\frac{|x| - s\lambda}{1 - s/\gamma} & s\lambda < |x| \le \gamma\lambda \\ x & |x| > \gamma\lambda \end{cases}

    MCP penalises small weights like L1 and leaves weights above :math:`\gamma\lambda` unbiased.
    The closed form needs :math:`\gamma > s` at every coordinate; see ``strict``.

    Args:
      params: a pytree of real floating-point arrays; None leaves pass through.
      hyperparams: the pair ``(lam, gamma)``, :math:`\lambda \ge 0` and :math:`\gamma > 0`, each a
        scalar or a pytree of per-leaf / per-coordinate values (a prefix of ``params``).
      scaling: the step :math:`s \ge 0`: a scalar or a pytree of per-coordinate arrays.
      strict: if True, :math:`\gamma \le s` is an error (concrete values) or NaN (traced values);
        if False those coordinates get the global minimiser of the nonconvex problem, a hard
        threshold at :math:`\sqrt{s\gamma}\,\lambda`.

    Returns:
      A pytree with the same structure, shapes and dtypes as ``params``.

    Raises:
      ValueError: a negative/NaN/inf strength or step, ``hyperparams`` not a pair, a pytree that
        does not match ``params``, or (``strict``) a concrete :math:`\gamma \le s`.
      TypeError: a leaf is not real floating-point.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> l1optax.prox_mcp({"w": jnp.array([0.5, 2.0, 5.0])}, (1.0, 3.0), 1.0)
      {'w': Array([0. , 1.5, 5. ], dtype=float32)}

    References:
      Zhang, 2010, "Nearly unbiased variable selection under minimax concave penalty", Annals
      of Statistics 38(2). Breheny & Huang, 2011, "Coordinate descent algorithms for nonconvex
      penalized regression", Annals of Applied Statistics 5(1).
    """
    fn = "prox_mcp"
    lam, gamma = _pair(hyperparams, fn=fn)
    if strict:
        _check_convexity(params, gamma, scaling, offset=0.0, fn=fn, condition="gamma > scaling")
    return _apply(params, (lam, gamma), scaling, _mcp_kernel(strict), fn=fn, arg="hyperparams")


def mcp_penalty(
    params: Tree,
    hyperparams: tuple[Any, Any],
    *,
    mask: Tree | Callable[[Tree], Tree] | None = None,
) -> jax.Array:
    r"""The minimax concave penalty of a pytree.

    .. math:: \Omega(w) = \sum_i \begin{cases} \lambda|w_i| - w_i^2/(2\gamma) & |w_i| \le \gamma\lambda \\ \gamma\lambda^2/2 & |w_i| > \gamma\lambda \end{cases}

    Args:
      params: a pytree of real floating-point arrays; None leaves are skipped.
      hyperparams: the pair ``(lam, gamma)`` (scalars or pytrees, a prefix of ``params``).
      mask: a pytree of bools (a prefix of ``params``) or a callable giving one.

    Returns:
      A scalar array (float32, or float64 if a leaf is float64).

    Raises:
      ValueError: a negative/NaN/inf strength, ``hyperparams`` not a pair, or a pytree that does
        not match ``params``.
      TypeError: a penalised leaf is not real floating-point.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> print(l1optax.mcp_penalty({"w": jnp.array([1.0, 10.0])}, (1.0, 3.0)))
      2.3333333

    References:
      Zhang, 2010, "Nearly unbiased variable selection under minimax concave penalty".
    """
    return _pair_penalty(params, hyperparams, mask, _mcp_term, fn="mcp_penalty")


def _mcp_term(w, lam, gamma):
    a = jnp.abs(w)
    return jnp.where(a <= gamma * lam, lam * a - w * w / (2 * gamma), gamma * lam * lam / 2)


# --------------------------------------------------------------------------------------------
# SCAD
# --------------------------------------------------------------------------------------------


def _scad_kernel(strict: bool):
    def kernel(x, s, lam, gamma):
        a = jnp.abs(x)
        sign = jnp.sign(x)
        valid = gamma - 1 > s
        soft = sign * jnp.maximum(a - s * lam, 0)
        safe_den = jnp.where(valid, gamma - 1 - s, 1)
        middle = ((gamma - 1) * x - sign * s * gamma * lam) / safe_den
        firm = jnp.where(a <= lam * (1 + s), soft, jnp.where(a > gamma * lam, x, middle))
        firm = jnp.where(a <= s * lam, jnp.zeros_like(x), firm)
        if strict:
            return jnp.where(valid, firm, jnp.nan)
        # gamma - 1 <= s: concave on lam < |z| <= gamma*lam, so the minimiser is the best of the
        # L1 piece (soft threshold capped at lam) and the flat piece (max(|x|, gamma*lam)).
        z1 = sign * jnp.minimum(jnp.maximum(a - s * lam, 0), lam)
        z3 = sign * jnp.maximum(a, gamma * lam)

        def objective(z):
            return 0.5 * (z - x) ** 2 + s * _scad_term(z, lam, gamma)

        # z1 is already 0 where |x| <= s*lam; the flat piece can still win there (large steps).
        best = jnp.where(objective(z3) < objective(z1), z3, z1)
        return jnp.where(valid, firm, best)

    return kernel


def _scad_term(w, lam, gamma):
    a = jnp.abs(w)
    safe = jnp.where(gamma > 1, gamma - 1, 1)
    middle = (2 * gamma * lam * a - a * a - lam * lam) / (2 * safe)
    return jnp.where(
        a <= lam, lam * a, jnp.where(a <= gamma * lam, middle, lam * lam * (gamma + 1) / 2)
    )


def prox_scad(
    params: Tree,
    hyperparams: tuple[Any, Any],
    scaling: Any = 1.0,
    *,
    strict: bool = True,
) -> Tree:
    r"""Proximal operator of the smoothly clipped absolute deviation penalty over a pytree.

    .. math:: \mathrm{prox}(x) = \begin{cases} S_{s\lambda}(x) & |x| \le (1 + s)\lambda \\ \frac{(\gamma - 1)x - \mathrm{sign}(x)\,s\gamma\lambda}{\gamma - 1 - s} & (1 + s)\lambda < |x| \le \gamma\lambda \\ x & |x| > \gamma\lambda \end{cases}

    The closed form needs :math:`\gamma - 1 > s` at every coordinate (:math:`\gamma = 3.7` is
    Fan & Li's default); see ``strict``.

    Args:
      params: a pytree of real floating-point arrays; None leaves pass through.
      hyperparams: the pair ``(lam, gamma)``, :math:`\lambda \ge 0` and :math:`\gamma > 1`, each a
        scalar or a pytree of per-leaf / per-coordinate values (a prefix of ``params``).
      scaling: the step :math:`s \ge 0`: a scalar or a pytree of per-coordinate arrays.
      strict: if True, :math:`\gamma - 1 \le s` is an error (concrete values) or NaN (traced);
        if False those coordinates get the global minimiser of the nonconvex problem.

    Returns:
      A pytree with the same structure, shapes and dtypes as ``params``.

    Raises:
      ValueError: a negative/NaN/inf strength or step, ``hyperparams`` not a pair, a pytree that
        does not match ``params``, or (``strict``) a concrete :math:`\gamma - 1 \le s`.
      TypeError: a leaf is not real floating-point.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> l1optax.prox_scad({"w": jnp.array([0.5, 1.5, 3.0, 5.0])}, (1.0, 3.7), 1.0)
      {'w': Array([0.       , 0.5      , 2.5882354, 5.       ], dtype=float32)}

    References:
      Fan & Li, 2001, "Variable selection via nonconcave penalized likelihood and its oracle
      properties", Journal of the American Statistical Association 96(456).
    """
    fn = "prox_scad"
    lam, gamma = _pair(hyperparams, fn=fn)
    if strict:
        _check_convexity(params, gamma, scaling, offset=1.0, fn=fn, condition="gamma - 1 > scaling")
    return _apply(params, (lam, gamma), scaling, _scad_kernel(strict), fn=fn, arg="hyperparams")


def scad_penalty(
    params: Tree,
    hyperparams: tuple[Any, Any],
    *,
    mask: Tree | Callable[[Tree], Tree] | None = None,
) -> jax.Array:
    r"""The smoothly clipped absolute deviation penalty of a pytree.

    .. math:: \Omega(w) = \sum_i \begin{cases} \lambda|w_i| & |w_i| \le \lambda \\ \frac{2\gamma\lambda|w_i| - w_i^2 - \lambda^2}{2(\gamma - 1)} & \lambda < |w_i| \le \gamma\lambda \\ \frac{\lambda^2(\gamma + 1)}{2} & |w_i| > \gamma\lambda \end{cases}

    Args:
      params: a pytree of real floating-point arrays; None leaves are skipped.
      hyperparams: the pair ``(lam, gamma)`` with :math:`\gamma > 1` (scalars or pytrees).
      mask: a pytree of bools (a prefix of ``params``) or a callable giving one.

    Returns:
      A scalar array (float32, or float64 if a leaf is float64).

    Raises:
      ValueError: a negative/NaN/inf strength, ``hyperparams`` not a pair, or a pytree that does
        not match ``params``.
      TypeError: a penalised leaf is not real floating-point.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> print(l1optax.scad_penalty({"w": jnp.array([0.5, 10.0])}, (1.0, 3.0)))
      2.5

    References:
      Fan & Li, 2001, "Variable selection via nonconcave penalized likelihood and its oracle
      properties".
    """
    return _pair_penalty(params, hyperparams, mask, _scad_term, fn="scad_penalty")


# --------------------------------------------------------------------------------------------
# L1/2
# --------------------------------------------------------------------------------------------


def _l_half_kernel(x, s, lam):
    mu = s * lam
    a = jnp.abs(x)
    threshold = 1.5 * mu ** (2.0 / 3.0)
    keep = a > threshold
    safe = jnp.where(keep, a, 1)
    phi = jnp.arccos(jnp.clip(mu / 4 * (safe / 3) ** (-1.5), -1, 1))
    z = (2.0 / 3.0) * x * (1 + jnp.cos(2 * math.pi / 3 - 2 * phi / 3))
    return jnp.where(keep, z, jnp.zeros_like(x))


def prox_l_half(params: Tree, l1reg: float | jax.Array | Tree = 1.0, scaling: Any = 1.0) -> Tree:
    r"""Proximal operator of the :math:`\ell_{1/2}` penalty (half thresholding) over a pytree.

    .. math:: \mathrm{prox}(x) = \tfrac23 x\big(1 + \cos(\tfrac{2\pi}{3} - \tfrac23\varphi(x))\big)\,1\{|x| > \tfrac32 (s\lambda)^{2/3}\},\ \varphi(x) = \arccos\big(\tfrac{s\lambda}{4}(|x|/3)^{-3/2}\big)

    The global minimiser of :math:`\tfrac12 (z - x)^2 + s\lambda\sqrt{|z|}`: it jumps from 0 to
    :math:`\tfrac23|x|` at the threshold and approaches :math:`x` for large :math:`|x|`.

    Args:
      params: a pytree of real floating-point arrays; None leaves pass through.
      l1reg: :math:`\lambda \ge 0`: a scalar or a pytree of per-leaf / per-coordinate values. None
        means 1.0.
      scaling: the step :math:`s \ge 0`: a scalar or a pytree of per-coordinate arrays.

    Returns:
      A pytree with the same structure, shapes and dtypes as ``params``.

    Raises:
      ValueError: a negative/NaN/inf strength or step, or a pytree that does not match ``params``.
      TypeError: a leaf is not real floating-point.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> l1optax.prox_l_half({"w": jnp.array([1.0, 2.0])}, 1.0, 1.0)
      {'w': Array([0.      , 1.605378], dtype=float32)}

    References:
      Xu, Chang, Xu & Zhang, 2012, "L1/2 regularization: a thresholding representation theory
      and a fast solver", IEEE Transactions on Neural Networks and Learning Systems 23(7).
    """
    fn = "prox_l_half"
    l1reg = 1.0 if l1reg is None else l1reg
    v.check_strength(l1reg, fn=fn, arg="l1reg", allow_schedule=False)
    return _apply(params, (l1reg,), scaling, _l_half_kernel, fn=fn, arg="l1reg")


def l_half_penalty(
    params: Tree,
    l1reg: float | jax.Array | Tree = 1.0,
    *,
    mask: Tree | Callable[[Tree], Tree] | None = None,
) -> jax.Array:
    r"""The :math:`\ell_{1/2}` penalty of a pytree.

    .. math:: \Omega(w) = \sum_i \lambda_i \sqrt{|w_i|}

    Args:
      params: a pytree of real floating-point arrays; None leaves are skipped.
      l1reg: :math:`\lambda \ge 0`: a scalar or a pytree of per-leaf / per-coordinate values.
      mask: a pytree of bools (a prefix of ``params``) or a callable giving one.

    Returns:
      A scalar array (float32, or float64 if a leaf is float64).

    Raises:
      ValueError: a negative/NaN/inf strength, or a pytree that does not match ``params``.
      TypeError: a penalised leaf is not real floating-point.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> print(l1optax.l_half_penalty({"w": jnp.array([4.0, -9.0, 0.0])}, 0.5))
      2.5

    References:
      Xu, Chang, Xu & Zhang, 2012, "L1/2 regularization: a thresholding representation theory
      and a fast solver".
    """
    fn = "l_half_penalty"
    v.check_strength(l1reg, fn=fn, arg="l1reg", allow_schedule=False)
    params = v.drop_masked(params, mask, fn=fn)
    return _penalty_sum(
        params, (l1reg,), lambda w, lam: lam * jnp.sqrt(jnp.abs(w)), fn=fn, arg="l1reg"
    )


# --------------------------------------------------------------------------------------------
# top-k projection
# --------------------------------------------------------------------------------------------


def _check_k(k: Any, *, fn: str) -> None:
    for path, leaf in jax.tree_util.tree_leaves_with_path(k):
        if not v.is_concrete(leaf):
            continue
        arr = np.asarray(leaf)
        if arr.ndim != 0 or arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
            raise ValueError(
                f"`{fn}(k=...)` must be a non-negative number per leaf, got {leaf!r}"
                f"{' at ' + jax.tree_util.keystr(path) if path else ''}"
            )
        if not np.isfinite(arr) or arr < 0:
            raise ValueError(
                f"`{fn}(k=...)` must be non-negative and finite, got {float(arr)!r}"
                f"{' at ' + jax.tree_util.keystr(path) if path else ''}"
            )


def _scores(p: jax.Array, s: Any) -> jax.Array:
    acc = v.compute_dtype(p.dtype)
    x = p.astype(acc)
    s = jnp.broadcast_to(v.nan_if_negative(_as_acc(s, acc)), x.shape)
    # In the metric diag(1/s) the squared distance lost by zeroing x_i is x_i^2 / s_i; a zero
    # step means "leave this coordinate alone": it always ranks first.
    safe = jnp.where(s > 0, s, 1)
    return jnp.where(s > 0, x * x / safe, jnp.inf).reshape(-1)


def _keep_top(scores: jax.Array, k: Any) -> jax.Array:
    order = jnp.argsort(-scores, stable=True)
    ranks = jnp.empty_like(order).at[order].set(jnp.arange(order.size, dtype=order.dtype))
    return ranks < jnp.asarray(k)


def prox_top_k(
    params: Tree,
    k: int | jax.Array | Tree,
    scaling: Any = 1.0,
    *,
    scope: str = "leaf",
) -> Tree:
    r"""Projection onto the vectors with at most ``k`` non-zeros: keep the ``k`` largest entries.

    .. math:: \mathrm{prox}(x) = \arg\min_{\|z\|_0 \le k} \sum_i \frac{(z_i - x_i)^2}{s_i}

    With a scalar step this keeps the ``k`` entries of largest :math:`|x_i|` (magnitude pruning
    to an exact count, no strength to tune); with a per-coordinate step (an adaptive optimizer's
    metric) it keeps the largest :math:`x_i^2/s_i`, the exact projection in that metric, and a
    coordinate with step 0 is always kept. Ties keep the lower flat index. NaN entries stay NaN.
    Use it as the last step of a chain with ``l1optax.apply_prox(prox_top_k, lr, k)``; a
    schedule for ``k`` gives gradual magnitude pruning. Entries whose rank is below ``k`` are
    kept, so a non-integer ``k`` keeps ``ceil(k)`` entries.

    Args:
      params: a pytree of real floating-point arrays; None leaves pass through.
      k: the number of entries to keep: with ``scope="leaf"`` a number or a pytree of per-leaf
        numbers (a prefix of ``params``); with ``scope="global"`` one number for all leaves.
      scaling: the step :math:`s \ge 0`: a scalar or a pytree of per-coordinate arrays.
      scope: ``"leaf"`` (``k`` per leaf) or ``"global"`` (the ``k`` largest over all leaves).

    Returns:
      A pytree with the same structure, shapes and dtypes as ``params``.

    Raises:
      ValueError: a concrete ``k`` or ``scaling`` is negative or non-finite, ``scope`` is unknown,
        or a pytree does not match ``params``.
      TypeError: a leaf is not real floating-point.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> l1optax.prox_top_k({"w": jnp.array([0.1, -3.0, 2.0, 0.5])}, 2)
      {'w': Array([ 0., -3.,  2.,  0.], dtype=float32)}

    References:
      Blumensath & Davies, 2009, "Iterative hard thresholding for compressed sensing", Applied
      and Computational Harmonic Analysis 27(3). Zhu & Gupta, 2017, "To prune, or not to prune:
      exploring the efficacy of pruning for model compression".
    """
    fn = "prox_top_k"
    if scope not in ("leaf", "global"):
        raise ValueError(f'`{fn}(scope=...)` must be "leaf" or "global", got {scope!r}')
    v.check_real_leaves(params, fn=fn)
    _check_k(k, fn=fn)
    v.check_strength(scaling, fn=fn, arg="scaling", allow_schedule=False)
    steps = v.broadcast_to_params(scaling, params, fn=fn, arg="scaling")

    def select(p, keep):
        p = jnp.asarray(p)
        keep = keep.reshape(p.shape) | jnp.isnan(p)
        return jnp.where(keep, p, jnp.zeros_like(p))

    if scope == "leaf":
        ks = v.broadcast_to_params(k, params, fn=fn, arg="k")
        return jax.tree.map(
            lambda p, s, kk: None if p is None else select(p, _keep_top(_scores(p, s), kk)),
            params,
            steps,
            ks,
            is_leaf=v.is_none,
        )
    k_leaves = jax.tree.leaves(k)
    if len(k_leaves) != 1:
        raise ValueError(f'`{fn}(k=...)` must be one number with scope="global", got {k!r}')
    leaves, treedef = jax.tree.flatten(params, is_leaf=v.is_none)
    step_leaves = jax.tree.leaves(steps, is_leaf=v.is_none)
    present = [(p, s) for p, s in zip(leaves, step_leaves, strict=True) if p is not None]
    if not present:
        return params
    scores = [_scores(jnp.asarray(p), s) for p, s in present]
    acc = jnp.result_type(*[sc.dtype for sc in scores])
    keep = _keep_top(jnp.concatenate([sc.astype(acc) for sc in scores]), k_leaves[0])
    out: list[jax.Array | None] = []
    start = 0
    it = iter(present)
    for p in leaves:
        if p is None:
            out.append(None)
            continue
        p, _ = next(it)
        size = int(np.size(p))
        out.append(select(p, keep[start : start + size]))
        start += size
    return jax.tree.unflatten(treedef, out)
