"""Optax gradient transformations: the L1 subgradient, the proximal step, and ``with_l1``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from l1optax import _validation as v
from l1optax._prox import prox_l1

Tree = Any
ScalarOrSchedule = float | jax.Array | optax.Schedule
Prox = Callable[[Tree, Any, Any], Tree]


class ProxState(NamedTuple):
    """State of a proximal step: the step count its schedules are evaluated at."""

    count: jax.Array  # int32, the same count optax.scale_by_learning_rate uses


class L1SubgradientState(NamedTuple):
    """State of :func:`add_l1_subgradient` when ``l1reg`` is a schedule."""

    count: jax.Array  # int32


def _at(value: Any, count: jax.Array) -> Any:
    """Evaluates a schedule at ``count``; returns any other value unchanged."""
    return value(count) if callable(value) else value


def _evaluate_hyperparams(hyperparams: Any, count: jax.Array) -> Any:
    return jax.tree.map(lambda h: _at(h, count), hyperparams)


def maybe_masked(
    inner: optax.GradientTransformation, mask: Tree | Callable[[Tree], Tree] | None, *, fn: str
) -> optax.GradientTransformationExtraArgs:
    """``optax.masked`` with a mask checked against the parameters at ``init``."""
    if mask is None:
        return optax.with_extra_args_support(inner)
    masked = optax.masked(inner, mask)

    def init_fn(params):
        v.resolve_mask(mask, params, fn=fn)
        return masked.init(params)

    return optax.GradientTransformationExtraArgs(init_fn, masked.update)


def apply_prox(
    prox: Prox,
    learning_rate: ScalarOrSchedule,
    hyperparams: Any,
    *,
    mask: Tree | Callable[[Tree], Tree] | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""A proximal step for any penalty, placed last in a chain.

    .. math:: u_t \leftarrow \mathrm{prox}_{\eta_t \Omega_t}(p_t + u_t) - p_t

    so that ``optax.apply_updates`` lands exactly on the proximal point (exact zeros included).
    ``p + u`` and the prox are computed in at least float32 and the update is returned in the
    parameters' dtype, or the incoming updates' dtype when that is wider (bfloat16 parameters
    with float32 updates: a bfloat16 difference would miss the proximal point by an ulp), so
    low-precision parameters keep exact zeros. Where the prox leaves a point unchanged (a zero
    threshold) the incoming update is passed through, so a zero penalty is bitwise the base
    optimizer. Schedules (callables) in
    ``learning_rate`` or among the leaves of ``hyperparams`` are evaluated at the step count,
    which starts at 0 on the first update exactly like ``optax.scale_by_learning_rate``.

    Args:
      prox: a proximal operator with jaxopt's signature ``prox(x, hyperparams, scaling)``.
      learning_rate: the step :math:`\eta_t` the preceding transforms used: a float or a schedule.
      hyperparams: the penalty's hyperparameters, passed to ``prox``; any leaf may be a schedule.
      mask: a pytree of bools or a callable ``params -> mask``; masked-out leaves are unchanged.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: a concrete learning rate is negative or non-finite, or ``update`` is called
        without ``params``.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> import l1optax
      >>> tx = optax.chain(optax.sgd(0.1), l1optax.apply_prox(l1optax.prox_l1, 0.1, 1.0))
      >>> params = {"w": jnp.array([1.0, 0.05])}
      >>> grads = {"w": jnp.array([0.0, 0.0])}
      >>> updates, _ = tx.update(grads, tx.init(params), params)
      >>> optax.apply_updates(params, updates)
      {'w': Array([0.9, 0. ], dtype=float32)}

    References:
      Parikh & Boyd, 2014, "Proximal algorithms".
    """
    v.check_strength(learning_rate, fn="apply_prox", arg="learning_rate")
    return _proximal_transform(prox, learning_rate, hyperparams, mask=mask, fn="apply_prox")


def _proximal_transform(
    prox: Prox,
    learning_rate: ScalarOrSchedule,
    hyperparams: Any,
    *,
    mask: Tree | Callable[[Tree], Tree] | None,
    fn: str,
    identity: bool = False,
) -> optax.GradientTransformationExtraArgs:
    if learning_rate is None:
        raise ValueError(f"`{fn}(learning_rate=...)` is required for a proximal step")

    def init_fn(params):
        v.check_float_leaves(params, fn=fn)
        return ProxState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        v.require_params(params, fn=f"{fn}(...).update")
        if identity:
            # The penalty is known to be 0 at construction: pass the updates through untouched
            # (same state, same checks), so that XLA compiles exactly the base optimizer's
            # program and the result is bitwise the base optimizer's even when the whole step
            # is fused into one jitted function.
            return updates, ProxState(count=optax.safe_increment(state.count))
        eta = _at(learning_rate, state.count)
        hp = _evaluate_hyperparams(hyperparams, state.count)
        targets = jax.tree.map(
            lambda p, u: None if p is None else _sum_in_compute_dtype(p, u),
            params,
            updates,
            is_leaf=v.is_none,
        )
        proximal_points = prox(targets, hp, eta)
        new_updates = jax.tree.map(
            lambda p, u, x, z: None if p is None else _update_to(p, u, x, z),
            params,
            updates,
            targets,
            proximal_points,
            is_leaf=v.is_none,
        )
        return new_updates, ProxState(count=optax.safe_increment(state.count))

    return maybe_masked(optax.GradientTransformation(init_fn, update_fn), mask, fn=fn)


def _sum_in_compute_dtype(p: jax.Array, u: jax.Array) -> jax.Array:
    acc = v.compute_dtype(jnp.result_type(p, u))
    return p.astype(acc) + u.astype(acc)


def _update_to(p: jax.Array, u: jax.Array, x: jax.Array, z: jax.Array) -> jax.Array:
    """The update that ``optax.apply_updates(p, .)`` turns into the proximal point ``z``.

    It is returned in ``result_type(p, u)``: the parameters' dtype, or the incoming updates' when
    those are wider (bfloat16 parameters with float32 updates), because the difference of two
    bfloat16 numbers is in general not a bfloat16 number and ``p + update`` would then miss the
    proximal point by an ulp. Where the prox left the point unchanged (``z == x``: a zero
    threshold) the incoming update is returned as is, so a zero strength is bitwise the base
    optimizer. Zeros are exact either way: ``p + (0 - p) == 0``.
    """
    out_dtype = jnp.result_type(p, u)
    moved = z.astype(p.dtype).astype(out_dtype) - p.astype(out_dtype)
    return jnp.where(z == x, u.astype(out_dtype), moved)


def l1_prox(
    learning_rate: ScalarOrSchedule,
    l1reg: ScalarOrSchedule | Tree,
    *,
    mask: Tree | Callable[[Tree], Tree] | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""The proximal (soft-threshold) L1 step; put it last in a chain.

    .. math:: p_{t+1} = S_{\eta_t \lambda_t}(p_t + u_t), \qquad u_t \leftarrow p_{t+1} - p_t

    With ``optax.sgd(eta)`` before it this is proximal gradient descent (ISTA): it minimises
    :math:`f(p) + \lambda\|p\|_1` and produces weights that are exactly 0. ``learning_rate`` must
    be the one the preceding optimizer used (same schedule): the threshold is
    :math:`\eta_t\lambda_t`. With an adaptive optimizer (Adam, RMSProp) a uniform threshold solves
    a preconditioner-weighted lasso instead; see ``prox_adam`` for the right prox there.

    NaN or inf in the updates propagate to the parameters and are never zeroed by the threshold
    (wrap the chain in ``optax.apply_if_finite`` to skip such steps). With ``l1reg`` a concrete 0
    the updates pass through untouched, so ``with_l1(opt, 0.0, ...)`` is bitwise ``opt``.

    Args:
      learning_rate: :math:`\eta_t`, a float or an optax schedule (evaluated at the same count
        ``optax.scale_by_learning_rate`` uses: 0 on the first update).
      l1reg: :math:`\lambda_t \ge 0`: a float, a schedule, a pytree of per-leaf scalars or of
        per-coordinate arrays.
      mask: a pytree of bools or a callable ``params -> mask``; masked-out leaves are not
        thresholded (their updates pass through bitwise unchanged).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``. Updates are
      returned in the parameters' dtype (the incoming updates' dtype if that is wider) so
      ``optax.apply_updates`` lands on the thresholded point, with exact zeros; with
      ``l1reg=0`` they are bitwise the incoming updates.

    Raises:
      ValueError: a concrete ``learning_rate`` or ``l1reg`` is negative, NaN or infinite;
        ``learning_rate`` is None; ``update`` is called without ``params``; the mask does not
        match the parameters.
      TypeError: a (non-masked) parameter leaf is not floating-point.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> import l1optax
      >>> tx = optax.chain(optax.sgd(0.1), l1optax.l1_prox(0.1, l1reg=1.0))
      >>> params = jnp.array([1.0, 0.05, -0.5])
      >>> updates, _ = tx.update(jnp.zeros(3), tx.init(params), params)
      >>> optax.apply_updates(params, updates)
      Array([ 0.9,  0. , -0.4], dtype=float32)

    References:
      Beck & Teboulle, 2009, "A fast iterative shrinkage-thresholding algorithm for linear inverse
      problems", SIAM J. Imaging Sciences 2(1).
    """
    fn = "l1_prox"
    if learning_rate is None:
        raise ValueError(f"`{fn}(learning_rate=...)` is required for a proximal step, got None")
    v.check_strength(learning_rate, fn=fn, arg="learning_rate")
    v.check_strength(l1reg, fn=fn, arg="l1reg")
    identity = all(_is_static_zero(leaf) for leaf in jax.tree.leaves(l1reg)) or _is_static_zero(
        learning_rate
    )
    return _proximal_transform(prox_l1, learning_rate, l1reg, mask=mask, fn=fn, identity=identity)


def add_l1_subgradient(
    l1reg: ScalarOrSchedule | Tree,
    *,
    mask: Tree | Callable[[Tree], Tree] | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adds the L1 subgradient :math:`\lambda\,\mathrm{sign}(p)` to the updates.

    .. math:: u_t \leftarrow g_t + \lambda_t\,\mathrm{sign}(p_t), \qquad \mathrm{sign}(0) = 0

    Equivalent to adding :math:`\lambda\|p\|_1` to the loss, without a second autodiff pass. Put
    it *before* the optimizer (``optax.chain(add_l1_subgradient(lam), optax.adam(lr))``), as the
    penalty-in-the-loss recipe does. It drives weights towards 0 but does not make them exactly 0
    (they oscillate around it); use :func:`l1_prox` or ``prox_adam`` for exact zeros.

    NaN or inf in the updates propagate (wrap the chain in ``optax.apply_if_finite`` to skip such
    steps). A strength that is a concrete 0 returns the updates untouched, so
    ``with_l1(opt, 0.0, method="subgradient")`` is bitwise ``opt``; a 0 known only when traced
    (``optax.inject_hyperparams``) adds :math:`0\cdot\mathrm{sign}(p)`, which can change how XLA
    fuses the optimizer's arithmetic (results equal to a few ulps).

    Args:
      l1reg: :math:`\lambda \ge 0`: a float, a schedule, a pytree of per-leaf scalars or of
        per-coordinate arrays.
      mask: a pytree of bools or a callable ``params -> mask``; masked-out leaves are unchanged.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``; updates keep
      their dtype.

    Raises:
      ValueError: a concrete ``l1reg`` is negative, NaN or infinite; ``update`` is called without
        ``params``; the mask does not match the parameters.
      TypeError: a (non-masked) parameter leaf is not floating-point.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> tx = l1optax.add_l1_subgradient(0.1)
      >>> params = jnp.array([2.0, 0.0, -3.0])
      >>> updates, _ = tx.update(jnp.ones(3), tx.init(params), params)
      >>> updates
      Array([1.1, 1. , 0.9], dtype=float32)

    References:
      Shor, 1985, "Minimization methods for non-differentiable functions".
    """
    fn = "add_l1_subgradient"
    v.check_strength(l1reg, fn=fn, arg="l1reg")
    scheduled = callable(l1reg)

    def init_fn(params):
        v.check_float_leaves(params, fn=fn)
        if scheduled:
            return L1SubgradientState(count=jnp.zeros([], jnp.int32))
        return optax.EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        v.require_params(params, fn=f"{fn}(...).update")
        lam = l1reg(state.count) if scheduled else l1reg
        strengths = v.broadcast_to_params(lam, params, fn=fn, arg="l1reg")
        new_updates = jax.tree.map(
            lambda u, p, s: None if u is None else _add_subgradient(u, p, s),
            updates,
            params,
            strengths,
            is_leaf=v.is_none,
        )
        if scheduled:
            state = L1SubgradientState(count=optax.safe_increment(state.count))
        return new_updates, state

    return maybe_masked(optax.GradientTransformation(init_fn, update_fn), mask, fn=fn)


def _add_subgradient(u: jax.Array, p: jax.Array, s: Any) -> jax.Array:
    if _is_static_zero(s):
        # A strength known to be 0 when the step is traced adds nothing: return the updates
        # untouched, so that XLA compiles the base optimizer's program and the result is bitwise
        # the base optimizer's (fusing a "+ 0 * sign(p)" can change how it contracts the rest).
        return u
    return u + v.nan_if_negative(jnp.asarray(s, u.dtype)) * jnp.sign(p).astype(u.dtype)


def _is_static_zero(s: Any) -> bool:
    """True for a concrete (not traced) scalar strength equal to 0; never inspects a tracer.

    Only scalars are looked at, so a large per-coordinate strength is never copied to the host.
    """
    if not v.is_concrete(s) or np.ndim(s) != 0:
        return False
    try:
        return bool(np.asarray(s) == 0)
    except (TypeError, ValueError):
        return False


def with_l1(
    optimizer: optax.GradientTransformation,
    l1reg: ScalarOrSchedule | Tree,
    *,
    method: str = "proximal",
    learning_rate: ScalarOrSchedule | None = None,
    mask: Tree | Callable[[Tree], Tree] | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adds L1 regularization to any optax optimizer, each method where it belongs.

    .. math:: \min_p f(p) + \lambda\|p\|_1

    ``method="proximal"`` gives ``optax.chain(optimizer, l1_prox(learning_rate, l1reg))``: exact
    zeros, but with adaptive optimizers a preconditioner-weighted lasso (see ``prox_adam``).
    ``method="subgradient"`` gives ``optax.chain(add_l1_subgradient(l1reg), optimizer)``: the
    penalty-in-the-loss recipe, no exact zeros.

    Args:
      optimizer: the base optax optimizer (it must include its learning-rate scaling).
      l1reg: :math:`\lambda \ge 0`: a float, a schedule or a pytree (see :func:`l1_prox`).
      method: ``"proximal"`` or ``"subgradient"``.
      learning_rate: the optimizer's learning rate or schedule; required for ``"proximal"``.
      mask: which parameters to penalise (a pytree of bools or a callable).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: unknown ``method``; ``method="proximal"`` without ``learning_rate``; a concrete
        strength is negative, NaN or infinite.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> import l1optax
      >>> tx = l1optax.with_l1(optax.sgd(0.1), 1.0, learning_rate=0.1)
      >>> params = jnp.array([1.0, 0.05])
      >>> updates, _ = tx.update(jnp.zeros(2), tx.init(params), params)
      >>> optax.apply_updates(params, updates)
      Array([0.9, 0. ], dtype=float32)

    References:
      Duchi & Singer, 2009, "Efficient online and batch learning using forward backward splitting".
    """
    if method == "proximal":
        if learning_rate is None:
            raise ValueError(
                "`with_l1(method='proximal')` needs `learning_rate=` (the optimizer's learning rate "
                "or schedule) to scale the threshold; got None"
            )
        return optax.chain(optimizer, l1_prox(learning_rate, l1reg, mask=mask))
    if method == "subgradient":
        return optax.chain(add_l1_subgradient(l1reg, mask=mask), optimizer)
    raise ValueError(f"`with_l1(method=...)` must be 'proximal' or 'subgradient', got {method!r}")
