r"""Sparse training by target: a sparsity controller for the L1 strength, and frozen supports.

``target_sparsity`` wraps a proximal optimizer and adapts its strength online so that the fraction
of exact zeros follows the gradual-pruning schedule of Zhu & Gupta (2017),

.. math:: s_t = s_f + (s_i - s_f)\big(1 - \min(1, \max(0, t - t_0) / (t_1 - t_0))\big)^3,

and then holds it. The user states the sparsity ("95% of the kernels exactly zero"), not lambda.

The default controller is a line search on the strength at every step. The sparsity a proximal
step leaves is a non-decreasing function of the strength (a larger threshold zeroes more), and
the wrapped update is a pure function, so ``target_sparsity`` bisects
:math:`\log\lambda` over :math:`[\log\lambda_{t-1} - r, \log\lambda_{t-1} + r]`
(``search_range`` :math:`r = \log 4`, ``search_steps = 8`` halvings: a resolution of 1% in
lambda) for the smallest strength whose step leaves at least the target fraction of exact zeros,
and then takes that step. The sparsity therefore follows the ramp from the first steps whatever
the starting lambda (the bracket moves by a factor 4 per step towards it), with no lag to tune
away, at the cost of ``search_steps + 1`` evaluations of the wrapped optimizer's update per step
(the gradient is computed once; for a network the backward pass usually dominates).

With ``search_steps=0`` it is integral control in log space on the log-density error instead
(one update per step):

.. math:: \log\lambda_{t+1} = \mathrm{clip}\big(\log\lambda_t + k\,\mathrm{clip}(\log(1 - \hat s_t) - \log(1 - s_t), -1, 1)\big)

where :math:`\hat s_t` is the measured exact-zero fraction. The log of the density makes the error
scale-free (one missing point at 99% is as urgent as ten at 90%) and the log of lambda makes the
correction multiplicative. It is cheaper but lags: weights reach 0 only gradually under a fixed
lambda, so it overshoots on short ramps (measured on the digits MLP: 92.5% for a 90% target over
460 ramp steps with ``gain=0.01``). In both modes ``l1reg_bounds`` (a factor :math:`10^6` around
the starting strength by default) bound the strength, and before ``begin_step`` the penalty is
off (dense warm-up, as in gradual magnitude pruning).

Weights whose gradient is always exactly 0 (inputs that are constant 0, say) are left alone by
proximal optimizers that do not threshold coordinates they have not seen; they never become 0,
so they count against the target: drop such inputs, or leave those weights out of ``mask``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from l1optax import _validation as v
from l1optax._types import Tree

# --------------------------------------------------------------------------------------------
# schedule
# --------------------------------------------------------------------------------------------


def sparsity_schedule(
    sparsity: float,
    *,
    begin_step: int = 0,
    end_step: int,
    initial_sparsity: float = 0.0,
    power: float = 3.0,
) -> optax.Schedule:
    r"""The gradual-pruning sparsity schedule of Zhu & Gupta (2017), as an optax schedule.

    .. math:: s_t = s_f + (s_i - s_f)\big(1 - \min(1, \max(0, t - t_0)/(t_1 - t_0))\big)^{p}

    Args:
      sparsity: the final sparsity :math:`s_f \in [0, 1)`.
      begin_step: :math:`t_0`, the step the ramp starts at (:math:`s_t = s_i` before).
      end_step: :math:`t_1 > t_0`, the step the final sparsity is reached (held after).
      initial_sparsity: :math:`s_i \in [0, s_f]`.
      power: :math:`p > 0` (3 in the paper: fast early, slow near the end).

    Returns:
      A schedule ``count -> sparsity`` (float32, jit-safe).

    Raises:
      ValueError: a sparsity outside [0, 1), ``end_step <= begin_step`` or a negative step.

    Examples:
      >>> import l1optax
      >>> schedule = l1optax.sparsity_schedule(0.9, begin_step=0, end_step=100)
      >>> print(float(schedule(0)), round(float(schedule(50)), 4), round(float(schedule(200)), 4))
      0.0 0.7875 0.9

    References:
      Zhu & Gupta, 2017, "To prune, or not to prune: exploring the efficacy of pruning for model
      compression", arXiv:1710.01878.
    """
    _check_schedule_args(
        "sparsity_schedule", sparsity, initial_sparsity, begin_step, end_step, power
    )
    span = float(end_step - begin_step)

    def schedule(count):
        progress = jnp.clip((jnp.asarray(count, jnp.float32) - begin_step) / span, 0.0, 1.0)
        return jnp.asarray(
            sparsity + (initial_sparsity - sparsity) * (1.0 - progress) ** power, jnp.float32
        )

    return schedule


def _check_schedule_args(fn, sparsity, initial_sparsity, begin_step, end_step, power) -> None:
    for name, value in (("sparsity", sparsity), ("initial_sparsity", initial_sparsity)):
        if not v.is_concrete(value):
            continue  # a traced target (vmapped over targets, say) is used as is
        if isinstance(value, bool) or np.ndim(value) != 0:
            raise ValueError(f"`{fn}({name}=...)` must be a number in [0, 1), got {value!r}")
        if not 0.0 <= float(value) < 1.0:
            raise ValueError(f"`{fn}({name}=...)` must be a number in [0, 1), got {value!r}")
    if v.is_concrete(sparsity) and v.is_concrete(initial_sparsity) and initial_sparsity > sparsity:
        raise ValueError(
            f"`{fn}(initial_sparsity=...)` must not exceed sparsity={sparsity!r}, "
            f"got {initial_sparsity!r}"
        )
    if not isinstance(begin_step, int | np.integer) or begin_step < 0:
        raise ValueError(f"`{fn}(begin_step=...)` must be a non-negative int, got {begin_step!r}")
    if not isinstance(end_step, int | np.integer) or end_step <= begin_step:
        raise ValueError(
            f"`{fn}(end_step=...)` must be an int greater than begin_step={begin_step!r}, "
            f"got {end_step!r}"
        )
    if not isinstance(power, int | float) or not power > 0:
        raise ValueError(f"`{fn}(power=...)` must be positive, got {power!r}")


# --------------------------------------------------------------------------------------------
# target_sparsity
# --------------------------------------------------------------------------------------------


class TargetSparsityState(NamedTuple):
    """State of ``target_sparsity``.

    Attributes:
      count: int32 number of updates so far.
      log_l1reg: float32 log of the controlled strength: a scalar (global target) or a list with
        one scalar per counted leaf (per-leaf targets), in ``jax.tree.leaves`` order.
      sparsity: float32 exact-zero fraction measured at the last update (scalar or per leaf).
      target: float32 target of the last update (the schedule's value).
      log_bounds: float32 pair, the log of ``l1reg_bounds``.
      inner_state: the wrapped transform's state.
    """

    count: jax.Array  # type: ignore[assignment]  # int32 (shadows tuple.count, as in optax)
    log_l1reg: Any
    sparsity: Any
    target: jax.Array
    log_bounds: tuple[jax.Array, jax.Array]
    inner_state: Any


def target_sparsity(
    tx: optax.GradientTransformation | Callable[[Any], optax.GradientTransformation],
    sparsity: float,
    *,
    begin_step: int = 0,
    end_step: int,
    initial_sparsity: float = 0.0,
    per_leaf: bool = False,
    mask: Tree | Callable[[Tree], Tree] | None = None,
    hyperparam: str = "l1reg",
    l1reg: float | None = None,
    search_steps: int = 8,
    search_range: float = math.log(4.0),
    gain: float = 0.01,
    l1reg_bounds: tuple[float, float] | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adapts a proximal optimizer's strength so that its exact-zero fraction meets a target.

    .. math:: \log\lambda_{t+1} = \log\lambda_t + k\,\mathrm{clip}\big(\log\tfrac{1 - \hat s_t}{1 - s_t}, -1, 1\big)

    (``search_steps=0``; by default the strength is found by bisection at every step instead, see
    the module docstring) where :math:`\hat s_t` is the measured fraction of exact zeros among
    the counted weights and :math:`s_t` the Zhu–Gupta cubic ramp from ``initial_sparsity`` at ``begin_step`` to
    ``sparsity`` at ``end_step`` (held afterwards; see ``sparsity_schedule``). The controller is
    described in the module docstring; its state is an optax state (arrays only), so the wrapped
    optimizer still works under ``jax.jit``, ``lax.scan``, ``optax.MultiSteps`` and checkpoints.

    ``tx`` is either a transform built with ``optax.inject_hyperparams`` whose numeric
    hyperparameter ``hyperparam`` (``"l1reg"``) is the strength to adapt, e.g.
    ``optax.inject_hyperparams(l1optax.prox_adam)(learning_rate=1e-3, l1reg=1e-4)``, or a factory
    ``lam -> GradientTransformation`` (for hyperparameters ``inject_hyperparams`` cannot hold,
    such as MCP's pair: ``lambda lam: prox_adam(1e-3, (lam, 3.0), prox=prox_mcp)``), called at
    every step with the current strength, together with the starting ``l1reg``.

    Args:
      tx: an ``inject_hyperparams`` transform or a factory of one strength (see above).
      sparsity: the final fraction of exact zeros, in [0, 1).
      begin_step: the step the ramp starts; before it the strength is 0 (dense warm-up).
      end_step: the step the target is reached; it is held afterwards.
      initial_sparsity: the ramp's starting value, in [0, sparsity].
      per_leaf: if False, one strength and one target for all counted weights together (global
        sparsity: layers may end with different sparsities); if True, one strength per counted
        leaf, each leaf meeting the target itself, and leaves that are not counted get strength
        0.
      mask: which leaves are counted (and, with ``per_leaf``, penalised): a pytree of bools, a
        prefix of the parameters, or a callable giving one; None counts every leaf. Pass the
        same mask to the wrapped optimizer (e.g. ``l1optax.keras_kernel_mask``; a callable mask
        must be static there, ``optax.inject_hyperparams(prox_adam, static_args=("mask",))``,
        or ``inject_hyperparams`` takes it for a schedule).
      hyperparam: the name of the injected hyperparameter to adapt.
      l1reg: the starting strength (> 0); required with a factory, and overrides the injected
        value otherwise.
      search_steps: bisection steps per update (0: integral control instead).
      search_range: :math:`r > 0`, half-width of the bisection bracket in log strength.
      gain: :math:`k > 0`, the integral gain per step with ``search_steps=0`` (0.01: the
        strength changes by at most 1% per step).
      l1reg_bounds: ``(low, high)`` limits of the strength, by default :math:`10^{-6}` and
        :math:`10^6` times the starting strength.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is a ``TargetSparsityState``.

    Raises:
      ValueError: a bad sparsity, step, gain, bounds or starting strength, or a transform that
        is not built with ``inject_hyperparams`` (or lacks ``hyperparam``); ``update`` without
        ``params``.

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> import l1optax
      >>> tx = l1optax.target_sparsity(
      ...     optax.inject_hyperparams(l1optax.prox_sgd)(learning_rate=0.1, l1reg=1e-3),
      ...     0.5, end_step=50)
      >>> params = {"w": jnp.arange(1.0, 9.0)}
      >>> state = tx.init(params)
      >>> update = jax.jit(tx.update)
      >>> for _ in range(60):
      ...     updates, state = update(jax.tree.map(jnp.zeros_like, params), state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> print(float(l1optax.sparsity(params)["fraction"]))
      0.5

    References:
      Zhu & Gupta, 2017, "To prune, or not to prune: exploring the efficacy of pruning for model
      compression". Kusupati et al., 2020, "Soft threshold weight reparameterization for
      learnable sparsity", ICML.
    """
    fn = "target_sparsity"
    schedule = _make_schedule(fn, sparsity, initial_sparsity, begin_step, end_step)
    if not isinstance(search_steps, int) or isinstance(search_steps, bool) or search_steps < 0:
        raise ValueError(
            f"`{fn}(search_steps=...)` must be a non-negative int, got {search_steps!r}"
        )
    for name, value in (("gain", gain), ("search_range", search_range)):
        if not v.is_concrete(value):
            continue
        if isinstance(value, bool) or np.ndim(value) != 0 or not math.isfinite(float(value)):
            raise ValueError(f"`{fn}({name}=...)` must be a finite number, got {value!r}")
        if float(value) <= 0:
            raise ValueError(f"`{fn}({name}=...)` must be positive, got {value!r}")
    is_factory = not isinstance(tx, optax.GradientTransformation)
    if is_factory and not callable(tx):
        raise ValueError(f"`{fn}(tx=...)` must be a GradientTransformation or a factory")
    if is_factory and l1reg is None:
        raise ValueError(f"`{fn}(l1reg=...)` (the starting strength) is required with a factory")
    if l1reg is not None:
        _check_positive(fn, "l1reg", l1reg)
    if l1reg_bounds is not None:
        low, high = l1reg_bounds
        _check_positive(fn, "l1reg_bounds[0]", low)
        _check_positive(fn, "l1reg_bounds[1]", high)
        if not low < high:
            raise ValueError(
                f"`{fn}(l1reg_bounds=...)` must satisfy low < high, got {l1reg_bounds}"
            )

    def counted(params):
        mask_tree = _full_mask(mask, params, fn=fn)
        return [
            p
            for p, m in zip(
                jax.tree.leaves(params, is_leaf=v.is_none), jax.tree.leaves(mask_tree), strict=True
            )
            if m and p is not None
        ]

    def strength_tree(params, lam):
        """The strength to pass to the wrapped optimizer: a scalar, or a per-leaf tree."""
        if not per_leaf:
            return lam
        mask_tree = _full_mask(mask, params, fn=fn)
        leaves, treedef = jax.tree.flatten(params, is_leaf=v.is_none)
        it = iter(lam)
        out = []
        for p, m in zip(leaves, jax.tree.leaves(mask_tree), strict=True):
            if p is None:
                out.append(None)
            elif m:
                out.append(next(it))
            else:
                out.append(jnp.zeros((), jnp.float32))
        return jax.tree.unflatten(treedef, out)

    def measure(params):
        leaves = counted(params)
        zeros = [jnp.sum(p == 0, dtype=jnp.float32) for p in leaves]
        sizes = [max(int(np.size(p)), 1) for p in leaves]
        if per_leaf:
            return [z / n for z, n in zip(zeros, sizes, strict=True)], sizes
        total = max(sum(int(np.size(p)) for p in leaves), 1)
        return sum(zeros, start=jnp.zeros((), jnp.float32)) / total, [total]

    def inner_init(params, lam):
        if is_factory:
            return tx(strength_tree(params, lam)).init(params)
        state = tx.init(params)
        hyper = getattr(state, "hyperparams", None)
        if not isinstance(hyper, dict) or hyperparam not in hyper:
            raise ValueError(
                f"`{fn}(tx=...)` must be built with optax.inject_hyperparams and have a numeric "
                f"hyperparameter {hyperparam!r} (a float, not a schedule); got a state of type "
                f"{type(state).__name__}"
                + (f" with hyperparameters {sorted(hyper)}" if isinstance(hyper, dict) else "")
            )
        return state

    def init_fn(params):
        n = len(counted(params)) if per_leaf else 1
        if l1reg is not None:
            log0 = jnp.full((), math.log(float(l1reg)), jnp.float32)
            inner_state = inner_init(
                params, strength_tree(params, [jnp.exp(log0)] * n if per_leaf else jnp.exp(log0))
            )
        else:
            inner_state = inner_init(params, None)
            injected = inner_state.hyperparams[hyperparam]
            if v.is_concrete(injected):
                _check_positive(fn, f"{hyperparam} (the injected strength)", injected)
            log0 = jnp.log(jnp.asarray(injected, jnp.float32))
        log_l1reg = [log0] * n if per_leaf else log0
        if l1reg_bounds is not None:
            log_bounds = (
                jnp.full((), math.log(l1reg_bounds[0]), jnp.float32),
                jnp.full((), math.log(l1reg_bounds[1]), jnp.float32),
            )
        else:
            log_bounds = (log0 - 6 * math.log(10.0), log0 + 6 * math.log(10.0))
        zero = jnp.zeros((), jnp.float32)
        inner_state = _inject(inner_state, strength_tree(params, _exp(log_l1reg)))
        return TargetSparsityState(
            count=jnp.zeros((), jnp.int32),
            log_l1reg=log_l1reg,
            sparsity=[zero] * n if per_leaf else zero,
            target=jnp.zeros((), jnp.float32),
            log_bounds=log_bounds,
            inner_state=inner_state,
        )

    def _inject(inner_state, lam_tree):
        if is_factory:
            return inner_state
        hyper = dict(inner_state.hyperparams)
        old = hyper[hyperparam]
        dtype = jnp.result_type(old) if not per_leaf else jnp.float32
        new = jax.tree.map(lambda x: jnp.asarray(x, dtype), lam_tree)
        if jax.tree.structure(new) == jax.tree.structure(old):
            # select against the previous value: it stays an input of the compiled step, so a
            # donated state is consumed (an unused donated buffer is not)
            fresh = inner_state.count >= 0
            new = jax.tree.map(lambda a, b: jnp.where(fresh, a, b), new, old)
        hyper[hyperparam] = new
        return inner_state._replace(hyperparams=hyper)

    def call_inner(lam_tree, updates, inner_state, params, extra_args):
        if is_factory:
            inner_tx = optax.with_extra_args_support(tx(lam_tree))
        else:
            inner_state = _inject(inner_state, lam_tree)
            inner_tx = optax.with_extra_args_support(tx)
        return inner_tx.update(updates, inner_state, params, **extra_args)

    def update_fn(updates, state, params=None, **extra_args):
        updates, params = v.check_update_args(updates, params, fn=fn)
        target = schedule(state.count)
        measured, _ = measure(params)
        low, high = state.log_bounds
        active = state.count >= begin_step
        as_list = (lambda x: x) if per_leaf else (lambda x: [x])
        from_list = (lambda x: x) if per_leaf else (lambda x: x[0])
        current = as_list(state.log_l1reg)

        def strengths(log_lams):
            lam = [jnp.where(active, jnp.exp(a), 0.0) for a in log_lams]
            return strength_tree(params, from_list(lam))

        if search_steps:
            # Bisection on log(lam) in [current - r, current + r]: the smallest strength whose
            # proximal step leaves at least the target fraction of zeros (monotone in lam).
            def sparsity_after(log_lams):
                new_updates, _ = call_inner(
                    strengths(log_lams), updates, state.inner_state, params, extra_args
                )
                achieved, _ = measure(optax.apply_updates(params, new_updates))
                return as_list(achieved)

            def bisect(_, bracket):
                los, his = bracket
                mids = [(a + b) / 2 for a, b in zip(los, his, strict=True)]
                got = sparsity_after(mids)
                enough = [g >= target for g in got]
                los = [jnp.where(e, a, m) for e, a, m in zip(enough, los, mids, strict=True)]
                his = [jnp.where(e, m, b) for e, m, b in zip(enough, mids, his, strict=True)]
                return los, his

            def search(current):
                los = [jnp.clip(a - search_range, low, high) for a in current]
                his = [jnp.clip(a + search_range, low, high) for a in current]
                _, his = jax.lax.fori_loop(0, search_steps, bisect, (los, his))
                return his

            chosen = jax.lax.cond(active, search, lambda c: list(c), current)
        else:
            # Integral control in log space on the log-density error.
            def step(log_lam, s_hat):
                error = jnp.log(jnp.maximum(1.0 - s_hat, 1e-12)) - jnp.log(1.0 - target)
                new = jnp.clip(log_lam + gain * jnp.clip(error, -1.0, 1.0), low, high)
                return jnp.where(active, new, log_lam)

            chosen = [step(a, b) for a, b in zip(current, as_list(measured), strict=True)]
        new_updates, inner_state = call_inner(
            strengths(chosen), updates, state.inner_state, params, extra_args
        )
        # The logged fields are selected against their previous values so that every state leaf
        # is an input of the compiled step (an unused donated buffer would not be consumed).
        fresh = state.count >= 0
        return new_updates, TargetSparsityState(
            count=optax.safe_increment(state.count),
            log_l1reg=from_list(chosen),
            sparsity=jax.tree.map(lambda a, b: jnp.where(fresh, a, b), measured, state.sparsity),
            target=jnp.where(fresh, target, state.target),
            log_bounds=state.log_bounds,
            inner_state=inner_state,
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _exp(log_l1reg):
    return jax.tree.map(jnp.exp, log_l1reg)


def _check_positive(fn: str, arg: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.ndarray):
        if not (hasattr(value, "shape") and np.shape(value) == ()):
            raise ValueError(f"`{fn}({arg}=...)` must be a positive number, got {value!r}")
    value = float(np.asarray(value))
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{fn}({arg}=...)` must be positive and finite, got {value!r}")


def _make_schedule(fn, sparsity, initial_sparsity, begin_step, end_step):
    _check_schedule_args(fn, sparsity, initial_sparsity, begin_step, end_step, 3.0)
    return sparsity_schedule(
        sparsity, begin_step=begin_step, end_step=end_step, initial_sparsity=initial_sparsity
    )


def _full_mask(mask, params, *, fn: str):
    """A bool per leaf of ``params`` (None leaves included), from a prefix mask or a callable."""
    if mask is None:
        return jax.tree.map(lambda _: True, params, is_leaf=v.is_none)
    mask_tree = v.resolve_mask(mask, params, fn=fn)
    return jax.tree.map(
        lambda m, sub: jax.tree.map(lambda _: m, sub, is_leaf=v.is_none),
        mask_tree,
        params,
        is_leaf=v.is_none,
    )


# --------------------------------------------------------------------------------------------
# frozen support
# --------------------------------------------------------------------------------------------


class FreezeSupportState(NamedTuple):
    """State of ``freeze_support``.

    Attributes:
      support: a pytree like the parameters: a bool array per frozen leaf (True where the
        weight may train), None for leaves that are not frozen.
      inner_state: the wrapped transform's state.
    """

    support: Tree
    inner_state: Any


def freeze_support(
    inner: optax.GradientTransformation,
    *,
    mask: Tree | Callable[[Tree], Tree] | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Fine-tunes with a frozen sparsity pattern: exact zeros stay exactly zero.

    .. math:: u_t = m \odot \mathrm{inner}(m \odot g_t) - (1 - m) \odot p_t,\quad m = 1\{p_0 \ne 0\}

    The support :math:`m` is recorded at ``init`` (the weights that are non-zero then), as
    ``torch.nn.utils.prune`` does after pruning. Gradients outside the support are zeroed before
    the wrapped optimizer sees them (its moments stay at 0 there) and the updates there are set so
    that ``optax.apply_updates`` lands exactly on 0. Use ``set_support`` to change the pattern
    (regrowth), which resets the wrapped optimizer's moments of the weights that re-enter.

    Args:
      inner: the optimizer to fine-tune with (e.g. ``optax.adam(1e-3)``).
      mask: which leaves are frozen: a pytree of bools (a prefix of the parameters) or a
        callable giving one; None freezes every leaf. Leaves left out train normally.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is a ``FreezeSupportState``.

    Raises:
      ValueError: ``mask`` does not match the parameters, or ``update`` is called without
        ``params``.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> import l1optax
      >>> params = {"w": jnp.array([0.0, 1.0, 0.0, -2.0])}
      >>> tx = l1optax.freeze_support(optax.sgd(0.1))
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.ones(4)}, state, params)
      >>> optax.apply_updates(params, updates)
      {'w': Array([ 0. ,  0.9,  0. , -2.1], dtype=float32)}

    References:
      Han, Pool, Tran & Dally, 2015, "Learning both weights and connections for efficient neural
      networks", NeurIPS. Zhu & Gupta, 2017, "To prune, or not to prune".
    """
    fn = "freeze_support"

    def init_fn(params):
        params = v.scalars_as_arrays(params)
        mask_tree = _full_mask(mask, params, fn=fn)
        support = jax.tree.map(
            lambda p, m: None if p is None or not m else jnp.asarray(p) != 0,
            params,
            mask_tree,
            is_leaf=v.is_none,
        )
        return FreezeSupportState(support=support, inner_state=inner.init(params))

    def update_fn(updates, state, params=None, **extra_args):
        updates, params = v.check_update_args(updates, params, fn=fn)
        masked_grads = jax.tree.map(
            lambda g, m: g if m is None or g is None else jnp.where(m, g, jnp.zeros_like(g)),
            updates,
            state.support,
            is_leaf=v.is_none,
        )
        new_updates, inner_state = optax.with_extra_args_support(inner).update(
            masked_grads, state.inner_state, params, **extra_args
        )

        def clamp(u, m, p):
            if m is None or u is None:
                return u
            out_dtype = jnp.result_type(p, u)
            return jnp.where(m, u.astype(out_dtype), -p.astype(out_dtype))

        new_updates = jax.tree.map(clamp, new_updates, state.support, params, is_leaf=v.is_none)
        return new_updates, FreezeSupportState(support=state.support, inner_state=inner_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def set_support(state: FreezeSupportState, support: Tree) -> FreezeSupportState:
    r"""Replaces a ``freeze_support`` pattern, resetting the moments of weights that re-enter.

    .. math:: \mu_i, \nu_i \leftarrow 0 \quad \text{for } i \text{ with } m^{\mathrm{new}}_i \wedge \neg m^{\mathrm{old}}_i

    Every array of the wrapped optimizer's state that has the shape of a frozen parameter leaf
    (Adam's first and second moments, momentum traces) is set to 0 at the coordinates entering
    the support, so a regrown weight starts like a fresh one (as in RigL) instead of inheriting
    moments accumulated while it was pinned at zero. Coordinates leaving the support are frozen
    (their updates become :math:`-p`, landing on 0) from the next step.

    Args:
      state: a ``FreezeSupportState``.
      support: the new pattern, a pytree like ``state.support`` (bool arrays where it has
        arrays, None where it has None).

    Returns:
      The new ``FreezeSupportState``.

    Raises:
      ValueError: ``support`` does not have the structure or shapes of ``state.support``.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> import l1optax
      >>> params = {"w": jnp.array([0.0, 1.0])}
      >>> tx = l1optax.freeze_support(optax.adam(0.1))
      >>> state = tx.init(params)
      >>> state = l1optax.set_support(state, {"w": jnp.array([True, True])})
      >>> state.support["w"].tolist()
      [True, True]

    References:
      Evci, Gale, Menick, Castro & Elsen, 2020, "Rigging the lottery: making all tickets
      winners", ICML.
    """
    fn = "set_support"
    treedef: jax.tree_util.PyTreeDef  # the public name (jaxlib ships no stub for its methods)
    old_leaves, treedef = jax.tree.flatten(state.support, is_leaf=v.is_none)
    try:
        new_leaves = treedef.flatten_up_to(support)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"`{fn}(support=...)` must have the structure of state.support "
            f"({treedef}), got {jax.tree.structure(support)}"
        ) from err
    entering: list[jax.Array | None] = []
    for index, (old, new) in enumerate(zip(old_leaves, new_leaves, strict=True)):
        if old is None:
            if new is not None:
                raise ValueError(f"`{fn}(support=...)` has an array where state.support has None")
            entering.append(None)
            continue
        new = jnp.asarray(new, bool)
        if new.shape != old.shape:
            raise ValueError(
                f"`{fn}(support=...)` leaf {index} has shape {new.shape}, expected {old.shape}"
            )
        new_leaves[index] = new
        entering.append(new & ~old)
    shapes = [None if e is None else e.shape for e in entering]
    enter_tree = jax.tree.unflatten(treedef, entering)

    def matches(node):
        try:
            leaves, node_def = jax.tree.flatten(node, is_leaf=v.is_none)
        except (ValueError, TypeError):
            return False
        if node_def != treedef:
            return False
        return all(
            (s is None and x is None) or (s is not None and np.shape(x) == s)
            for x, s in zip(leaves, shapes, strict=True)
        )

    def reset(node):
        if not matches(node):
            return node
        return jax.tree.map(
            lambda x, e: x if e is None or x is None else jnp.where(e, jnp.zeros_like(x), x),
            node,
            enter_tree,
            is_leaf=v.is_none,
        )

    inner_state = jax.tree.map(reset, state.inner_state, is_leaf=matches)
    return FreezeSupportState(
        support=jax.tree.unflatten(treedef, new_leaves), inner_state=inner_state
    )
