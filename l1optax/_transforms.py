"""Optax gradient transformations: the L1 subgradient, the proximal step, and ``with_l1``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from l1optax import _metrics
from l1optax import _validation as v
from l1optax._prox import _prox_l1, prox_l1
from l1optax._types import Mask, Prox, ScalarOrSchedule, Tree


class ProxState(NamedTuple):
    """State of a proximal step: the step count its schedules are evaluated at."""

    count: jax.Array  # type: ignore[assignment]  # int32, the same count optax.scale_by_learning_rate uses


class ProxInMetricState(NamedTuple):
    """State of :func:`prox_in_metric`: the step count and the wrapped optimizer's own state."""

    count: jax.Array  # type: ignore[assignment]  # int32: the step the schedules of the penalty are evaluated at
    inner_state: optax.OptState


class L1SubgradientState(NamedTuple):
    """State of :func:`add_l1_subgradient` when ``l1reg`` is a schedule."""

    count: jax.Array  # type: ignore[assignment]  # int32 (shadows tuple.count, as in optax)


def _at(value: Any, count: jax.Array, *, fn: str = "l1optax", arg: str = "schedule") -> Any:
    """Evaluates a schedule at ``count``; returns any other value unchanged.

    A schedule that returns None (a forgotten ``return``) is an error, never a default value.
    """
    if not callable(value):
        return value
    out = value(count)
    if out is None:
        name = getattr(value, "__name__", type(value).__name__)
        raise ValueError(
            f"`{fn}({arg}=...)`: the schedule {name} returned None; a schedule must return a "
            "number (is a `return` missing?)"
        )
    return out


def _evaluate_hyperparams(
    hyperparams: Any, count: jax.Array, *, fn: str = "l1optax", arg: str = "l1reg"
) -> Any:
    return jax.tree.map(lambda h: _at(h, count, fn=fn, arg=arg), hyperparams)


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
    """A prox step with the scalar step size ``learning_rate``, last in a chain (no metric)."""
    if learning_rate is None:
        raise ValueError(f"`{fn}(learning_rate=...)` is required for a proximal step")

    def init_fn(params):
        v.check_float_leaves(params, fn=fn)
        return ProxState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        updates, params = v.check_update_args(updates, params, fn=fn)
        if not identity:
            hp = _evaluate_hyperparams(hyperparams, state.count, fn=fn)
            eta = _at(learning_rate, state.count, fn=fn, arg="learning_rate")
            v.check_strength(eta, fn=fn, arg="learning_rate", allow_schedule=False)
            updates, _ = prox_step(prox, hp, params, updates, eta, fn=fn)
        # With identity (a penalty known to be 0 at construction) the updates pass through
        # untouched (same state, same checks), so XLA compiles exactly the base optimizer's
        # program and the result is bitwise the base optimizer's.
        return updates, ProxState(count=optax.safe_increment(state.count))

    return maybe_masked(optax.GradientTransformation(init_fn, update_fn), mask, fn=fn)


def prox_step(
    prox: Prox,
    hyperparams: Any,
    params: Tree,
    updates: Tree,
    step_sizes: Any,
    *,
    penalized: Tree | None = None,
    fn: str,
) -> tuple[Tree, Tree]:
    r"""The one prox-step kernel: updates that land on :math:`\mathrm{prox}_{s\Omega}(p + u)`.

    ``p + u`` is formed in at least float32 (``compute_dtype`` of the wider of the parameters'
    and updates' dtypes), the prox is applied with ``scaling=step_sizes`` (a scalar, or a pytree
    of per-coordinate step sizes :math:`\eta/d` for a diagonal metric), and the update is
    returned in ``result_type(p, u)`` so that ``optax.apply_updates`` lands exactly on the
    proximal point (exact zeros included). Where the prox leaves a point unchanged the incoming
    update is passed through bitwise. Leaves whose ``penalized`` entry is False are not handed to
    the prox (None in its input) and keep their update. Returns ``(new_updates, residuals)``
    where ``residuals = (p + u) - prox(p + u)`` in the compute dtype (None where unpenalised).
    """
    if penalized is None:
        penalized = jax.tree.map(lambda p: p is not None, params, is_leaf=v.is_none)
    # None leaves in a per-coordinate step-size tree stand for None parameters: any number will do.
    step_sizes = jax.tree.map(lambda s: 0.0 if s is None else s, step_sizes, is_leaf=v.is_none)
    targets = jax.tree.map(
        lambda p, u, m: None if (p is None or not m) else _sum_in_compute_dtype(p, u),
        params,
        updates,
        penalized,
        is_leaf=v.is_none,
    )
    proximal_points = prox(targets, hyperparams, step_sizes)
    _check_prox_output(proximal_points, targets, fn=fn)

    def leaf(p, u, x, z):
        if p is None:
            return None
        if x is None:
            return u
        return _update_to(p, u, x, z)

    new_updates = jax.tree.map(leaf, params, updates, targets, proximal_points, is_leaf=v.is_none)
    residuals = jax.tree.map(
        lambda x, z: None if x is None else x - z.astype(x.dtype),
        targets,
        proximal_points,
        is_leaf=v.is_none,
    )
    return new_updates, residuals


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


def _check_prox_output(points: Tree, targets: Tree, *, fn: str) -> None:
    """A prox must return a tree like its input, leaf by leaf the same shape."""
    flat_x, tree_x = jax.tree_util.tree_flatten_with_path(targets, is_leaf=v.is_none)
    flat_z, tree_z = jax.tree_util.tree_flatten(points, is_leaf=v.is_none)
    if tree_x != tree_z:  # type: ignore[operator]
        raise ValueError(
            f"`{fn}`: the proximal operator returned a pytree whose structure differs from its "
            f"input ({tree_z} for {tree_x})"
        )
    for (path, x), z in zip(flat_x, flat_z, strict=True):
        if x is not None and (z is None or jnp.shape(z) != jnp.shape(x)):
            raise ValueError(
                f"`{fn}`: the proximal operator returned shape {jnp.shape(z)} for leaf "
                f"{jax.tree_util.keystr(path) or '<root>'} of shape {jnp.shape(x)}; a prox must "
                "keep every leaf's shape"
            )


def apply_l1_prox(
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
      >>> tx = optax.chain(optax.sgd(0.1), l1optax.apply_l1_prox(0.1, l1reg=1.0))
      >>> params = jnp.array([1.0, 0.05, -0.5])
      >>> updates, _ = tx.update(jnp.zeros(3), tx.init(params), params)
      >>> optax.apply_updates(params, updates)
      Array([ 0.9,  0. , -0.4], dtype=float32)

    References:
      Beck & Teboulle, 2009, "A fast iterative shrinkage-thresholding algorithm for linear inverse
      problems", SIAM J. Imaging Sciences 2(1).
    """
    fn = "apply_l1_prox"
    if learning_rate is None:
        raise ValueError(f"`{fn}(learning_rate=...)` is required for a proximal step, got None")
    v.check_strength(learning_rate, fn=fn, arg="learning_rate")
    v.check_strength(l1reg, fn=fn, arg="l1reg")
    identity = all(_is_static_zero(leaf) for leaf in jax.tree.leaves(l1reg)) or _is_static_zero(
        learning_rate
    )
    prox = functools.partial(_prox_l1, fn=fn)
    tx = _proximal_transform(prox, learning_rate, l1reg, mask=mask, fn=fn, identity=identity)
    return check_strength_shapes_at_init(tx, {"l1reg": l1reg}, fn=fn)


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
    (they oscillate around it); use :func:`apply_l1_prox` or ``prox_adam`` for exact zeros.

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
        updates, params = v.check_update_args(updates, params, fn=fn)
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


def check_strength_shapes_at_init(
    tx: optax.GradientTransformation, strengths: dict[str, Any], *, fn: str
) -> optax.GradientTransformationExtraArgs:
    """``tx`` whose ``init`` checks per-leaf strengths (trees like the parameters) against every
    leaf, masked-out leaves included (as :func:`l1_penalty` does): a strength never changes a
    parameter's shape, whether or not it is applied. Schedules are checked at step 0."""

    def init_fn(params):
        arrays = v.scalars_as_arrays(params)
        for arg, value in strengths.items():
            at_zero = _evaluate_hyperparams(value, jnp.zeros([], jnp.int32), fn=fn, arg=arg)
            v.broadcast_to_params(at_zero, arrays, fn=fn, arg=arg)
        return tx.init(params)

    return optax.GradientTransformationExtraArgs(init_fn, optax.with_extra_args_support(tx).update)


def penalized_leaves(mask: Mask, params: Tree, *, fn: str) -> Tree:
    """A Python bool per parameter leaf (None kept): whether the penalty applies to it."""
    if mask is None:
        return jax.tree.map(lambda p: None if p is None else True, params, is_leaf=v.is_none)
    mask_tree = v.resolve_mask(mask, params, fn=fn)
    return v.broadcast_to_params(mask_tree, params, fn=fn, arg="mask")


def _check_penalized_float(params: Tree, penalized: Tree, *, fn: str) -> None:
    kept = jax.tree.map(lambda p, m: p if m else None, params, penalized, is_leaf=v.is_none)
    v.check_float_leaves(kept, fn=fn)


def is_static_zero_tree(tree: Any) -> bool:
    """True when every leaf is a concrete scalar 0 (never inspects a tracer)."""
    leaves = jax.tree.leaves(tree)
    return bool(leaves) and all(_is_static_zero(leaf) for leaf in leaves)


def prox_in_metric(
    optimizer: optax.GradientTransformation,
    step_sizes: Callable[[optax.OptState, jax.Array], Any],
    hyperparams: Any,
    *,
    prox: Prox = prox_l1,
    mask: Mask = None,
    feedback: Callable[[optax.OptState, Tree, Any], optax.OptState] | None = None,
    name: str = "prox_in_metric",
) -> optax.GradientTransformationExtraArgs:
    r"""Wraps an optax optimizer so that its step ends with a prox taken in its own metric.

    .. math:: p_{t+1} = \mathrm{prox}_{\eta_t\Omega,\,d_t}(p_t + u_t)
       = \arg\min_z \tfrac12\|z - p_t - u_t\|_{d_t}^2 + \eta_t\Omega(z)

    where :math:`u_t` is ``optimizer``'s update and :math:`d_t` the diagonal metric its state
    defines. With ``prox(x, hyperparams, scaling)`` (jaxopt's signature) this is
    ``prox(p + u, hyperparams, step_sizes(state, count))``: ``step_sizes`` returns the
    per-coordinate steps :math:`s = \eta_t/d_t` from the optimizer's *new* state (a scalar for
    plain SGD). The fixed points are then the minimisers of :math:`f + \Omega` for any positive
    metric, whereas a uniform threshold after an adaptive step minimises a metric-weighted
    penalty instead. A step size of 0 leaves a coordinate bitwise unchanged (used for
    coordinates with no gradient history). This is the one mechanism every l1optax proximal
    optimizer is built from; adding the metric of another optax optimizer takes a few lines
    (see the example).

    The prox step is l1optax's single kernel: ``p + u`` in at least float32, the update
    returned in the wider of the parameters' and updates' dtypes so ``optax.apply_updates``
    lands exactly on the proximal point, exact zeros in every dtype, complex leaves shrunk in
    modulus. Where the prox leaves a point unchanged (zero strength) the optimizer's update is
    passed through bitwise; a strength that is a concrete 0 skips the prox entirely.

    Args:
      optimizer: any optax ``GradientTransformation`` (with its learning-rate scaling).
      step_sizes: ``(new_optimizer_state, count) -> scaling``, a scalar or a pytree like the
        parameters of per-coordinate step sizes :math:`\eta_t/d_t \ge 0`; ``count`` is the step
        index (0 on the first update) for evaluating learning-rate schedules.
      hyperparams: the prox's hyperparameters (e.g. ``l1reg``); any leaf may be a schedule.
      prox: the proximal operator, ``prox(x, hyperparams, scaling)`` (default :func:`prox_l1`).
      mask: which parameters are penalised (a pytree of bools or a callable); the others get the
        optimizer's update unchanged.
      feedback: optional ``(new_state, residuals, step_sizes) -> state``, called with the
        displacement ``(p + u) - p^+`` the prox applied, for optimizers whose state must see the
        composite gradient (a momentum buffer).
      name: the function name used in error messages.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is
      ``ProxInMetricState(count, inner_state)`` and whose ``update`` needs ``params``.

    Raises:
      ValueError: ``update`` without ``params``; a mask that does not match; a prox that
        changes a leaf's shape.
      TypeError: a penalised parameter leaf is not floating-point or complex.

    Examples:
      The metric of ``optax.adagrad`` in three lines (``l1optax.prox_adagrad`` is this):

      >>> import jax, jax.numpy as jnp, optax
      >>> import l1optax
      >>> lr = 0.5
      >>> def adagrad_steps(state, count):
      ...     acc = state[0].sum_of_squares
      ...     return jax.tree.map(lambda a: lr * jax.lax.rsqrt(a + 1e-7), acc)
      >>> tx = l1optax.prox_in_metric(optax.adagrad(lr), adagrad_steps, 0.1)
      >>> params = jnp.array([1.0, 0.01])
      >>> updates, _ = tx.update(jnp.array([0.1, 0.1]), tx.init(params), params)
      >>> [round(float(w), 4) for w in optax.apply_updates(params, updates)]
      [0.6985, 0.0]

    References:
      Yun, Lozano & Yang, 2021, "Adaptive proximal gradient methods for structured neural
      networks", NeurIPS. Parikh & Boyd, 2014, "Proximal algorithms", Section 4.2.
    """
    fn = name
    identity = is_static_zero_tree(hyperparams)
    optimizer = optax.with_extra_args_support(optimizer)

    def init_fn(params):
        penalized = penalized_leaves(mask, params, fn=fn)
        _check_penalized_float(params, penalized, fn=fn)
        return ProxInMetricState(count=jnp.zeros([], jnp.int32), inner_state=optimizer.init(params))

    def update_fn(updates, state, params=None, **extra_args):
        updates, params = v.check_update_args(updates, params, fn=fn)
        new_updates, inner_state = optimizer.update(
            updates, state.inner_state, params, **extra_args
        )
        if not identity:
            penalized = penalized_leaves(mask, params, fn=fn)
            scaling = step_sizes(inner_state, state.count)
            hp = _evaluate_hyperparams(hyperparams, state.count, fn=fn)
            new_updates, residuals = prox_step(
                prox, hp, params, new_updates, scaling, penalized=penalized, fn=fn
            )
            if feedback is not None:
                inner_state = feedback(inner_state, residuals, scaling)
        return new_updates, ProxInMetricState(
            count=optax.safe_increment(state.count), inner_state=inner_state
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def with_l1(
    optimizer: optax.GradientTransformation,
    l1reg: ScalarOrSchedule | Tree,
    *,
    method: str = "proximal",
    learning_rate: ScalarOrSchedule | None = None,
    mask: Mask = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adds L1 regularization to an optax optimizer without changing the problem it solves.

    .. math:: \min_p f(p) + \lambda\|p\|_1

    ``method="proximal"`` (default) ends each step with the soft threshold taken *in the
    optimizer's own metric* (:func:`prox_in_metric`): exact zeros, and the fixed points are the
    lasso minimisers. The metric and the learning rate are read from the optimizer's state, so
    build adaptive optimizers with ``optax.inject_hyperparams`` (the learning rate is stated
    once)::

        with_l1(optax.inject_hyperparams(optax.adam)(learning_rate=sched), lam)

    Supported metrics: SGD (no momentum), adam, adamw, nadam, nadamw, amsgrad, adabelief and
    adagrad. For an adaptive optimizer that was not built with ``inject_hyperparams`` (its
    ``eps``/``b2``/learning rate are not in its state), for momentum, rmsprop, sign-based (lion)
    or factored (adafactor) optimizers, ``init`` raises a ``ValueError`` naming the call that
    does it right (``l1optax.prox_adam``, ``prox_sgd(momentum=...)``, ...).
    ``method="decoupled"`` is the uniform threshold :math:`\eta\lambda` after the step
    (``chain(optimizer, apply_l1_prox(lr, lam))``): with an adaptive optimizer it minimises a
    metric-weighted lasso, a different objective (as AdamW's decoupled decay differs from L2),
    available only when asked for by name. ``method="subgradient"`` adds
    :math:`\lambda\,\mathrm{sign}(p)` to the gradient before the optimizer (the penalty in the
    loss; no exact zeros).

    Args:
      optimizer: the base optax optimizer (including its learning-rate scaling).
      l1reg: :math:`\lambda \ge 0`: a float, a schedule or a pytree (see :func:`apply_l1_prox`).
      method: ``"proximal"``, ``"decoupled"`` or ``"subgradient"``.
      learning_rate: the optimizer's learning rate or schedule, needed only when it cannot be
        read from the state (an optimizer not built with ``inject_hyperparams``); if given for
        an injected one it must agree with it.
      mask: which parameters to penalise (a pytree of bools or a callable).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: unknown ``method``; a concrete strength negative, NaN or infinite; at
        ``init``: an optimizer whose metric cannot be read, a missing learning rate, or a
        ``learning_rate`` that disagrees with the injected one.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> import l1optax
      >>> tx = l1optax.with_l1(optax.inject_hyperparams(optax.sgd)(learning_rate=0.1), 1.0)
      >>> params = jnp.array([1.0, 0.05])
      >>> updates, _ = tx.update(jnp.zeros(2), tx.init(params), params)
      >>> optax.apply_updates(params, updates)
      Array([0.9, 0. ], dtype=float32)

    References:
      Duchi & Singer, 2009, "Efficient online and batch learning using forward backward
      splitting". Yun, Lozano & Yang, 2021, "Adaptive proximal gradient methods for structured
      neural networks", NeurIPS.
    """
    fn = "with_l1"
    if isinstance(optimizer, type(with_l1)) or not hasattr(optimizer, "init"):
        raise TypeError(
            f"`{fn}(optimizer=...)` must be an optax GradientTransformation, got {optimizer!r}; "
            "did you pass the factory without calling it (optax.adam instead of optax.adam(lr))?"
        )
    v.check_strength(l1reg, fn=fn, arg="l1reg")
    if learning_rate is not None:
        v.check_strength(learning_rate, fn=fn, arg="learning_rate")
    if method == "subgradient":
        return optax.chain(add_l1_subgradient(l1reg, mask=mask), optimizer)
    if method not in ("proximal", "decoupled"):
        raise ValueError(
            f"`{fn}(method=...)` must be 'proximal', 'decoupled' or 'subgradient', got {method!r}"
        )
    decoupled = method == "decoupled"

    def read(state, count):
        if decoupled:
            node, family, hyper = None, None, _metrics.injected_hyperparams(state)
        else:
            node, family, hyper = _metrics.describe_state(state)
        injected_lr = None if hyper is None else hyper.get("learning_rate")
        if injected_lr is not None:
            lr = injected_lr
        elif learning_rate is not None:
            lr = _at(learning_rate, count, fn=fn, arg="learning_rate")
        else:
            raise ValueError(
                f"`{fn}`: cannot read the learning rate from the optimizer's state; build it with "
                "optax.inject_hyperparams (e.g. optax.inject_hyperparams(optax.sgd)"
                "(learning_rate=0.1)) or pass with_l1(..., learning_rate=...)"
            )
        missing = [k for k in _metrics.needs(family) if hyper is None or k not in hyper]
        if missing:
            raise ValueError(
                f"`{fn}`: the optimizer is {family}, whose metric needs {', '.join(missing)}, "
                "which its state does not record. Use "
                f"{_metrics._ADAPTIVE_STATES[type(node)][1]} with the same arguments plus "
                f"l1reg, or build it with optax.inject_hyperparams(optax.{family})"
                "(learning_rate=...)"
            )
        return _metrics.state_step_sizes(node, family, lr, hyper), injected_lr

    def step_sizes(state, count):
        return read(state, count)[0]

    tx = prox_in_metric(optimizer, step_sizes, l1reg, mask=mask, name=fn)

    def init_fn(params):
        state = tx.init(params)
        _, injected_lr = read(state.inner_state, state.count)
        if injected_lr is not None:
            v.check_strength(injected_lr, fn=fn, arg="learning_rate (read from the state)")
        if injected_lr is not None and learning_rate is not None:
            given = np.asarray(_at(learning_rate, jnp.zeros([], jnp.int32)), np.float64)
            held = np.asarray(injected_lr, np.float64)
            if given.shape != held.shape or not np.allclose(given, held, rtol=1e-6, atol=0):
                raise ValueError(
                    f"`{fn}(learning_rate=...)` is {float(given.flat[0])!r} but the optimizer "
                    f"was built with learning_rate {float(held.flat[0])!r}; with an "
                    "inject_hyperparams optimizer leave learning_rate out (it is read from the "
                    "state)"
                )
        return state

    checked = optax.GradientTransformationExtraArgs(init_fn, tx.update)
    return check_strength_shapes_at_init(checked, {"l1reg": l1reg}, fn=fn)
