r"""Proximal optimizers that solve the L1 (elastic-net) problem they claim to solve.

Every optimizer here takes a descent step in the metric of its own (diagonal) preconditioner
:math:`d_t` and then applies the elastic-net prox *in that same metric*:

.. math:: p_{t+1} = \frac{S_{\eta_t\lambda_1/d_t}(p_t - \eta_t\,\hat m_t/d_t)}{1 + \eta_t\lambda_2/d_t}

so that its fixed points are exactly the minimisers of :math:`f(p) + \lambda_1\|p\|_1 +
\tfrac{\lambda_2}{2}\|p\|_2^2` (Yun, Lozano & Yang, 2021). A uniform threshold
:math:`\eta_t\lambda_1` after an Adam step (``optax.chain(optax.adam(lr), l1_prox(lr, lam))``)
instead minimises a lasso weighted by :math:`d`, which has a different solution and support.

All moments and accumulators are stored in at least float32 (float64 for float64 parameters),
whatever the parameters' dtype; updates are returned in the parameters' dtype so that
``optax.apply_updates`` lands exactly on the proximal point (exact zeros included).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from l1optax import _validation as v
from l1optax._elastic_net import elastic_net_leaf
from l1optax._prox import _soft_threshold
from l1optax._transforms import ScalarOrSchedule, _at, _evaluate_hyperparams, maybe_masked

Tree = Any
Mask = Tree | Callable[[Tree], Tree] | None


class ProxSGDState(NamedTuple):
    """State of :func:`prox_sgd`: the step count and the momentum buffer (or ``EmptyState``)."""

    count: jax.Array  # int32
    trace: Tree


class ProxAdamState(NamedTuple):
    """State of :func:`prox_adam`: the step count and Adam's first and second moments."""

    count: jax.Array  # int32
    mu: Tree
    nu: Tree


class ProxAdagradState(NamedTuple):
    """State of :func:`prox_adagrad`: the step count and the sum of squared gradients."""

    count: jax.Array  # int32
    accumulator: Tree


class ProxRMSPropState(NamedTuple):
    """State of :func:`prox_rmsprop`: the step count and the moving average of squares."""

    count: jax.Array  # int32
    nu: Tree


class CumulativeL1State(NamedTuple):
    """State of :func:`cumulative_l1` (Tsuruoka et al. 2009).

    ``total`` is :math:`u_t = \\sum_{s \\le t}\\eta_s\\lambda_s`, the penalty every weight could
    have received so far (one entry per leaf, shaped like that leaf's ``l1reg``); ``applied`` is
    :math:`q_i`, the signed penalty actually applied to each coordinate.
    """

    count: jax.Array  # int32
    total: Tree
    applied: Tree


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------


def _acc(p: jax.Array) -> jnp.dtype:
    return jnp.finfo(v.compute_dtype(p.dtype)).dtype


def _zeros_state(params: Tree, fill: Any = 0.0) -> Tree:
    """A per-leaf buffer in the compute dtype, keeping each leaf's shape and sharding."""
    return jax.tree.map(
        lambda p: None if p is None else jnp.full_like(p, fill, dtype=_acc(p)),
        params,
        is_leaf=v.is_none,
    )


def _check_in_range(value: Any, *, fn: str, arg: str, low: float, high: float, closed: bool):
    """Concrete scalars must lie in [low, high) (or [low, high]); tracers are not inspected."""
    if value is None or isinstance(value, jax.core.Tracer):
        return
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"`{fn}({arg}=...)` must be a number, got a bool")
    arr = np.asarray(value, dtype=np.float64)
    ok = np.all(np.isfinite(arr)) and np.all(arr >= low)
    ok = ok and (np.all(arr <= high) if closed else np.all(arr < high))
    if not ok:
        bracket = "]" if closed else ")"
        hint = ""
        if not closed and np.any(arr == high):
            hint = (
                " (a decay that rounds to 1 in a low-precision dtype: with "
                "optax.inject_hyperparams pass hyperparam_dtype=jnp.float32)"
            )
        raise ValueError(
            f"`{fn}({arg}=...)` must be in [{low}, {high}{bracket}, got "
            f"{float(arr.flat[0])!r}{hint}"
        )


def _penalized(mask: Mask, params: Tree, *, fn: str) -> Tree:
    """A Python bool per parameter leaf: whether the penalty applies to it."""
    if mask is None:
        return jax.tree.map(lambda p: None if p is None else True, params, is_leaf=v.is_none)
    mask_tree = v.resolve_mask(mask, params, fn=fn)
    return v.broadcast_to_params(mask_tree, params, fn=fn, arg="mask")


def _known_zero(x: Any) -> bool:
    """True for a concrete scalar 0 (a Python/NumPy number or a concrete 0-d array)."""
    if isinstance(x, jax.core.Tracer) or np.ndim(x) != 0:
        return False
    return bool(np.asarray(x) == 0)


def _prox_updates(
    params: Tree,
    steps: Tree,
    scalings: Tree,
    l1reg: Any,
    l2reg: Any,
    penalized: Tree,
    *,
    fn: str,
    return_points: bool = False,
) -> Tree:
    """Elastic-net prox of ``params + steps`` with per-coordinate step ``scalings``.

    ``steps`` and ``scalings`` are in the compute dtype; the returned updates are in the
    parameters' dtype (``prox - params``), so ``apply_updates`` lands exactly on the prox point.
    """
    l1s = v.broadcast_to_params(l1reg, params, fn=fn, arg="l1reg")
    l2s = v.broadcast_to_params(l2reg, params, fn=fn, arg="l2reg")

    def leaf(p, u, s, a, b, m):
        if p is None:
            return None
        acc = _acc(p)
        x = p.astype(acc) + u.astype(acc)
        if not m or (_known_zero(a) and _known_zero(b)):
            # Unpenalised (masked out, or strengths known to be 0 when tracing): the plain step.
            return u.astype(p.dtype), x
        s = jnp.asarray(s, acc)
        if _known_zero(b):
            # Pure L1: skip the elastic-net division (bitwise the same result, one pass cheaper).
            z = _soft_threshold(x, jnp.asarray(a, acc) * s)
        else:
            z = elastic_net_leaf(x, jnp.asarray(a, acc) * s, jnp.asarray(b, acc) * s)
        return z.astype(p.dtype) - p, z

    out = jax.tree.map(leaf, params, steps, scalings, l1s, l2s, penalized, is_leaf=v.is_none)
    new_updates = _map(lambda p, o: o[0], params, out)
    if return_points:
        return new_updates, _map(lambda p, o: o[1], params, out)
    return new_updates


def _check_common(fn: str, learning_rate: Any, l1reg: Any, l2reg: Any) -> None:
    if learning_rate is None:
        raise ValueError(f"`{fn}(learning_rate=...)` is required, got None")
    v.check_strength(learning_rate, fn=fn, arg="learning_rate")
    v.check_strength(l1reg, fn=fn, arg="l1reg")
    v.check_strength(l2reg, fn=fn, arg="l2reg")


def _schedules_at(count: jax.Array, learning_rate: Any, l1reg: Any, l2reg: Any) -> tuple:
    """The learning rate and both strengths at ``count`` (schedules evaluated, values kept)."""
    return (
        _at(learning_rate, count),
        _evaluate_hyperparams(l1reg, count),
        _evaluate_hyperparams(l2reg, count),
    )


def _map(f, *trees):
    return jax.tree.map(lambda *xs: None if xs[0] is None else f(*xs), *trees, is_leaf=v.is_none)


# --------------------------------------------------------------------------------------------
# prox_sgd
# --------------------------------------------------------------------------------------------


def prox_sgd(
    learning_rate: ScalarOrSchedule,
    l1reg: ScalarOrSchedule | Tree,
    *,
    momentum: float | None = None,
    nesterov: bool = False,
    l2reg: ScalarOrSchedule | Tree = 0.0,
    mask: Mask = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Proximal (stochastic) gradient descent for the lasso / elastic net (ISTA), with momentum.

    .. math:: p_{t+1} = \frac{S_{\eta_t\lambda_1}(y_t)}{1 + \eta_t\lambda_2},\quad
       y_t = p_t - \eta_t d_t,\quad d_t = g_t + \mu b_{t-1}\ (\text{Nesterov: }
       g_t + \mu(g_t + \mu b_{t-1})),\quad b_t = g_t + \mu b_{t-1} + r_t/\mu^{[\mathrm{nest}]}

    Without momentum (:math:`\mu` = None) this is ISTA / forward-backward splitting: with a step
    :math:`\eta \le 1/L` it converges to the exact lasso solution and its support. With momentum
    the buffer :math:`b_t` accumulates the composite gradient :math:`g_t + r_t`, where
    :math:`r_t = (y_t - p_{t+1})/\eta_t` is the penalty gradient the prox applied (for heavy ball
    this is the inertial proximal method iPiano, Ochs et al. 2014; with Nesterov :math:`r_t` enters
    divided by :math:`\mu`, which is what makes the look-ahead's fixed point the same). So the fixed
    points are the elastic-net minimisers, whereas a gradient-only buffer, as in
    ``chain(optax.sgd(lr, momentum), l1_prox(lr, lam))``, solves the lasso with
    :math:`(1-\mu)\lambda_1`. Without penalty it equals ``optax.sgd(lr, momentum, nesterov)``.
    When to use it: full-batch or well-tuned SGD training where you want exact zeros; for noisy
    minibatches with a decaying step prefer :func:`cumulative_l1` (stable support).

    Args:
      learning_rate: :math:`\eta_t > 0`, a float or an optax schedule.
      l1reg: :math:`\lambda_1 \ge 0`: a float, a schedule, per-leaf scalars or per-coordinate
        arrays (weighted lasso).
      momentum: :math:`\mu \in [0, 1)`, or None for plain proximal gradient.
      nesterov: use Nesterov momentum (as ``optax.sgd``).
      l2reg: :math:`\lambda_2 \ge 0`, the strength of :math:`\tfrac{\lambda_2}{2}\|p\|^2`.
      mask: which parameters are penalised (a pytree of bools or a callable); masked-out leaves
        still get the plain SGD step.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``.

    Raises:
      ValueError: a concrete negative/NaN/inf strength or learning rate; momentum outside
        [0, 1); ``update`` without ``params``; a mask that does not match.
      TypeError: a parameter leaf is not floating-point.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> import l1optax
      >>> tx = l1optax.prox_sgd(0.1, l1reg=1.0)
      >>> params = jnp.array([1.0, 0.05, -0.5])
      >>> updates, _ = tx.update(jnp.zeros(3), tx.init(params), params)
      >>> optax.apply_updates(params, updates)
      Array([ 0.9,  0. , -0.4], dtype=float32)

    References:
      Ochs, Chen, Brox & Pock, 2014, "iPiano: inertial proximal algorithm for nonconvex
      optimization", SIAM J. Imaging Sciences 7(2).
      Beck & Teboulle, 2009, "A fast iterative shrinkage-thresholding algorithm for linear inverse
      problems". Duchi & Singer, 2009, "Efficient online and batch learning using forward
      backward splitting".
    """
    fn = "prox_sgd"
    _check_common(fn, learning_rate, l1reg, l2reg)
    if momentum is not None:
        _check_in_range(momentum, fn=fn, arg="momentum", low=0.0, high=1.0, closed=False)

    def init_fn(params):
        v.check_float_leaves(params, fn=fn)
        _penalized(mask, params, fn=fn)
        trace = optax.EmptyState() if momentum is None else _zeros_state(params)
        return ProxSGDState(count=jnp.zeros([], jnp.int32), trace=trace)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        v.require_params(params, fn=f"{fn}(...).update")
        eta, lam1, lam2 = _schedules_at(state.count, learning_rate, l1reg, l2reg)
        penalized = _penalized(mask, params, fn=fn)
        scalings = _map(lambda p: jnp.asarray(eta, _acc(p)), params)
        if momentum is None:
            direction = _map(lambda g, p: g.astype(_acc(p)), updates, params)
        else:

            def velocity(g, t, p):
                return g.astype(_acc(p)) + jnp.asarray(momentum, _acc(p)) * t

            candidate = _map(velocity, updates, state.trace, params)
            direction = _map(velocity, updates, candidate, params) if nesterov else candidate
        steps = _map(lambda d, p: -jnp.asarray(eta, _acc(p)) * d, direction, params)
        new_updates, points = _prox_updates(
            params, steps, scalings, lam1, lam2, penalized, fn=fn, return_points=True
        )
        if momentum is None:
            trace = state.trace
        else:
            # The buffer accumulates the composite gradient g + r, where r = (y - prox(y)) / eta is
            # the penalty's (sub)gradient that the prox applied. Then fixed points are exactly the
            # elastic-net minimisers (a gradient-only buffer would shrink lam by (1 - momentum)).
            # Nesterov's look-ahead sees the buffer through momentum**2, hence the 1/momentum.
            def with_penalty(c, p, s, pt):
                acc = _acc(p)
                e = jnp.asarray(eta, acc)
                y = p.astype(acc) + s
                r = jnp.where(e > 0, (y - pt) / jnp.where(e > 0, e, 1), 0)
                if nesterov:
                    mu = jnp.asarray(momentum, acc)
                    r = jnp.where(mu > 0, r / jnp.where(mu > 0, mu, 1), 0)
                return c + r

            trace = _map(with_penalty, candidate, params, steps, points)
        return new_updates, ProxSGDState(count=optax.safe_increment(state.count), trace=trace)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# --------------------------------------------------------------------------------------------
# prox_adam
# --------------------------------------------------------------------------------------------


def prox_adam(
    learning_rate: ScalarOrSchedule,
    l1reg: ScalarOrSchedule | Tree,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    l2reg: ScalarOrSchedule | Tree = 0.0,
    mask: Mask = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adam with the L1 (elastic-net) prox taken in Adam's own metric.

    .. math:: p_{t+1} = \frac{S_{\eta_t\lambda_1/d_t}(p_t - \eta_t\hat m_t/d_t)}
       {1 + \eta_t\lambda_2/d_t}, \qquad d_t = \sqrt{\hat v_t} + \epsilon

    :math:`\hat m_t, \hat v_t` are Adam's bias-corrected moments (exactly as ``optax.adam``). The
    per-coordinate threshold :math:`\eta_t\lambda_1/d_t` makes every fixed point a minimiser of
    :math:`f + \lambda_1\|\cdot\|_1 + \tfrac{\lambda_2}{2}\|\cdot\|^2`; the uniform threshold
    :math:`\eta_t\lambda_1` of ``chain(adam, l1_prox)`` converges to the minimiser of a
    :math:`d`-weighted lasso instead (different weights, different support). With
    ``l1reg = l2reg = 0`` it is ``optax.adam``. When to use it: training networks with Adam and
    wanting exact zeros for the penalty you actually wrote down.

    Args:
      learning_rate: :math:`\eta_t > 0`, a float or a schedule.
      l1reg: :math:`\lambda_1 \ge 0`: a float, a schedule, per-leaf scalars or per-coordinate
        arrays.
      b1: :math:`\beta_1 \in [0, 1)`, the first-moment decay.
      b2: :math:`\beta_2 \in [0, 1)`, the second-moment decay.
      eps: :math:`\epsilon \ge 0`, added to :math:`\sqrt{\hat v}` (outside the root, as optax).
      l2reg: :math:`\lambda_2 \ge 0`, the strength of :math:`\tfrac{\lambda_2}{2}\|p\|^2`
        (the elastic-net prox under the same metric).
      mask: which parameters are penalised; masked-out leaves get the plain Adam step.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``.

    Raises:
      ValueError: a concrete negative/NaN/inf strength, learning rate or ``eps``; ``b1``/``b2``
        outside [0, 1); ``update`` without ``params``; a mask that does not match.
      TypeError: a parameter leaf is not floating-point.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> import l1optax
      >>> tx = l1optax.prox_adam(0.1, l1reg=0.5)
      >>> params = jnp.array([1.0, 0.02])
      >>> grads = jnp.array([0.5, 0.01])
      >>> updates, _ = tx.update(grads, tx.init(params), params)
      >>> [round(float(w), 4) for w in optax.apply_updates(params, updates)]  # thresholds 0.1, 5
      [0.8, 0.0]

    References:
      Yun, Lozano & Yang, 2021, "Adaptive proximal gradient methods for structured neural
      networks", NeurIPS. Kingma & Ba, 2015, "Adam: a method for stochastic optimization".
    """
    fn = "prox_adam"
    _check_common(fn, learning_rate, l1reg, l2reg)
    _check_in_range(b1, fn=fn, arg="b1", low=0.0, high=1.0, closed=False)
    _check_in_range(b2, fn=fn, arg="b2", low=0.0, high=1.0, closed=False)
    v.check_strength(eps, fn=fn, arg="eps", allow_schedule=False)

    def init_fn(params):
        v.check_float_leaves(params, fn=fn)
        _penalized(mask, params, fn=fn)
        return ProxAdamState(
            count=jnp.zeros([], jnp.int32), mu=_zeros_state(params), nu=_zeros_state(params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        v.require_params(params, fn=f"{fn}(...).update")
        count_inc = optax.safe_increment(state.count)
        eta, lam1, lam2 = _schedules_at(state.count, learning_rate, l1reg, l2reg)

        def moments(g, m, n, p):
            acc = _acc(p)
            g = g.astype(acc)
            beta1, beta2 = jnp.asarray(b1, acc), jnp.asarray(b2, acc)
            return (1 - beta1) * g + beta1 * m, (1 - beta2) * g * g + beta2 * n

        both = _map(moments, updates, state.mu, state.nu, params)
        mu = _map(lambda p, mn: mn[0], params, both)
        nu = _map(lambda p, mn: mn[1], params, both)

        def precondition(m, n, p):
            acc = _acc(p)
            t = count_inc.astype(acc)
            m_hat = m / (1 - jnp.asarray(b1, acc) ** t)
            n_hat = n / (1 - jnp.asarray(b2, acc) ** t)
            d = jnp.sqrt(n_hat) + jnp.asarray(eps, acc)
            e = jnp.asarray(eta, acc)
            return -e * (m_hat / d), e / d

        pairs = _map(precondition, mu, nu, params)
        steps = _map(lambda p, sd: sd[0], params, pairs)
        scalings = _map(lambda p, sd: sd[1], params, pairs)
        new_updates = _prox_updates(
            params, steps, scalings, lam1, lam2, _penalized(mask, params, fn=fn), fn=fn
        )
        return new_updates, ProxAdamState(count=count_inc, mu=mu, nu=nu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# --------------------------------------------------------------------------------------------
# prox_adagrad
# --------------------------------------------------------------------------------------------


def prox_adagrad(
    learning_rate: ScalarOrSchedule,
    l1reg: ScalarOrSchedule | Tree,
    *,
    l2reg: ScalarOrSchedule | Tree = 0.0,
    initial_accumulator_value: float = 0.1,
    mask: Mask = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Proximal Adagrad: the update of TensorFlow's ``ProximalAdagradOptimizer``.

    .. math:: a_t = a_{t-1} + g_t^2,\quad \gamma_t = \frac{\eta_t}{\sqrt{a_t}},\quad
       p_{t+1} = \frac{S_{\gamma_t\lambda_1}(p_t - \gamma_t g_t)}{1 + \gamma_t\lambda_2}

    with :math:`a_0` = ``initial_accumulator_value``. The threshold is scaled by Adagrad's
    per-coordinate step, so the fixed points are the elastic-net minimisers. Reproduces the
    values in TensorFlow's ``proximal_adagrad_test.py``. When to use it: sparse/convex problems
    (linear models, embeddings) where Adagrad's per-feature steps help; its steps shrink like
    :math:`1/\sqrt{t}`, so it needs a larger ``learning_rate`` than Adam.

    Args:
      learning_rate: :math:`\eta_t > 0`, a float or a schedule.
      l1reg: :math:`\lambda_1 \ge 0`: a float, a schedule, per-leaf scalars or per-coordinate
        arrays.
      l2reg: :math:`\lambda_2 \ge 0`, the strength of :math:`\tfrac{\lambda_2}{2}\|p\|^2`.
      initial_accumulator_value: :math:`a_0 > 0`.
      mask: which parameters are penalised; masked-out leaves get the plain Adagrad step.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``.

    Raises:
      ValueError: a concrete negative/NaN/inf strength or learning rate; a non-positive
        ``initial_accumulator_value``; ``update`` without ``params``; a mask that does not match.
      TypeError: a parameter leaf is not floating-point.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> import l1optax
      >>> tx = l1optax.prox_adagrad(3.0, l1reg=0.001, initial_accumulator_value=0.1)
      >>> params = jnp.array([1.0, 2.0])
      >>> state = tx.init(params)
      >>> for _ in range(10):
      ...     updates, state = tx.update(jnp.array([0.1, 0.2]), state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> params  # TensorFlow's testProximalAdagradWithL1: [-6.663634, -9.190331]
      Array([-6.66363..., -9.19033...], dtype=float32)

    References:
      Duchi, Hazan & Singer, 2011, "Adaptive subgradient methods for online learning and
      stochastic optimization", JMLR 12. TensorFlow, ``tf.compat.v1.train.ProximalAdagradOptimizer``.
    """
    fn = "prox_adagrad"
    _check_common(fn, learning_rate, l1reg, l2reg)
    v.check_strength(
        initial_accumulator_value, fn=fn, arg="initial_accumulator_value", allow_schedule=False
    )
    if not isinstance(initial_accumulator_value, jax.core.Tracer) and not np.all(
        np.asarray(initial_accumulator_value, np.float64) > 0
    ):
        raise ValueError(
            f"`{fn}(initial_accumulator_value=...)` must be positive, got "
            f"{float(np.asarray(initial_accumulator_value))!r}"
        )

    def init_fn(params):
        v.check_float_leaves(params, fn=fn)
        _penalized(mask, params, fn=fn)
        acc0 = _map(lambda p: jnp.full_like(p, initial_accumulator_value, dtype=_acc(p)), params)
        return ProxAdagradState(count=jnp.zeros([], jnp.int32), accumulator=acc0)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        v.require_params(params, fn=f"{fn}(...).update")
        eta, lam1, lam2 = _schedules_at(state.count, learning_rate, l1reg, l2reg)
        accumulator = _map(
            lambda g, a, p: a + jnp.square(g.astype(_acc(p))), updates, state.accumulator, params
        )
        scalings = _map(
            lambda a, p: jnp.asarray(eta, _acc(p)) * jax.lax.rsqrt(a), accumulator, params
        )
        steps = _map(lambda g, s, p: -s * g.astype(_acc(p)), updates, scalings, params)
        new_updates = _prox_updates(
            params, steps, scalings, lam1, lam2, _penalized(mask, params, fn=fn), fn=fn
        )
        return new_updates, ProxAdagradState(
            count=optax.safe_increment(state.count), accumulator=accumulator
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# --------------------------------------------------------------------------------------------
# prox_rmsprop
# --------------------------------------------------------------------------------------------


def prox_rmsprop(
    learning_rate: ScalarOrSchedule,
    l1reg: ScalarOrSchedule | Tree,
    *,
    decay: float = 0.9,
    eps: float = 1e-8,
    l2reg: ScalarOrSchedule | Tree = 0.0,
    mask: Mask = None,
) -> optax.GradientTransformationExtraArgs:
    r"""RMSProp with the L1 (elastic-net) prox taken in RMSProp's metric.

    .. math:: v_t = \rho v_{t-1} + (1-\rho) g_t^2,\quad d_t = \sqrt{v_t} + \epsilon,\quad
       p_{t+1} = \frac{S_{\eta_t\lambda_1/d_t}(p_t - \eta_t g_t/d_t)}{1 + \eta_t\lambda_2/d_t}

    With ``l1reg = l2reg = 0`` it equals ``optax.rmsprop(learning_rate, decay, eps,
    eps_in_sqrt=False)`` (no bias correction, :math:`v_0 = 0`). When to use it: where you would
    use RMSProp (non-stationary objectives, RL) and want exact zeros for the right objective.

    Args:
      learning_rate: :math:`\eta_t > 0`, a float or a schedule.
      l1reg: :math:`\lambda_1 \ge 0`: a float, a schedule, per-leaf scalars or per-coordinate
        arrays.
      decay: :math:`\rho \in [0, 1)`.
      eps: :math:`\epsilon \ge 0`, added to :math:`\sqrt{v_t}`.
      l2reg: :math:`\lambda_2 \ge 0`, the strength of :math:`\tfrac{\lambda_2}{2}\|p\|^2`.
      mask: which parameters are penalised; masked-out leaves get the plain RMSProp step.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``.

    Raises:
      ValueError: a concrete negative/NaN/inf strength, learning rate or ``eps``; ``decay``
        outside [0, 1); ``update`` without ``params``; a mask that does not match.
      TypeError: a parameter leaf is not floating-point.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> import l1optax
      >>> tx = l1optax.prox_rmsprop(0.01, l1reg=1.0, decay=0.75)
      >>> params = jnp.array([1.0, 0.01])
      >>> updates, _ = tx.update(jnp.array([1.0, 1.0]), tx.init(params), params)
      >>> [round(float(w), 4) for w in optax.apply_updates(params, updates)]  # d = 0.5
      [0.96, 0.0]

    References:
      Tieleman & Hinton, 2012, "Lecture 6.5 - RMSProp", COURSERA: Neural Networks for Machine
      Learning. Yun, Lozano & Yang, 2021, "Adaptive proximal gradient methods for structured
      neural networks", NeurIPS.
    """
    fn = "prox_rmsprop"
    _check_common(fn, learning_rate, l1reg, l2reg)
    _check_in_range(decay, fn=fn, arg="decay", low=0.0, high=1.0, closed=False)
    v.check_strength(eps, fn=fn, arg="eps", allow_schedule=False)

    def init_fn(params):
        v.check_float_leaves(params, fn=fn)
        _penalized(mask, params, fn=fn)
        return ProxRMSPropState(count=jnp.zeros([], jnp.int32), nu=_zeros_state(params))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        v.require_params(params, fn=f"{fn}(...).update")
        eta, lam1, lam2 = _schedules_at(state.count, learning_rate, l1reg, l2reg)

        def new_nu(g, n, p):
            acc = _acc(p)
            g = g.astype(acc)
            rho = jnp.asarray(decay, acc)
            return (1 - rho) * g * g + rho * n

        nu = _map(new_nu, updates, state.nu, params)
        scalings = _map(
            lambda n, p: jnp.asarray(eta, _acc(p)) / (jnp.sqrt(n) + jnp.asarray(eps, _acc(p))),
            nu,
            params,
        )
        steps = _map(lambda g, s, p: -s * g.astype(_acc(p)), updates, scalings, params)
        new_updates = _prox_updates(
            params, steps, scalings, lam1, lam2, _penalized(mask, params, fn=fn), fn=fn
        )
        return new_updates, ProxRMSPropState(count=optax.safe_increment(state.count), nu=nu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# --------------------------------------------------------------------------------------------
# cumulative_l1
# --------------------------------------------------------------------------------------------


def cumulative_l1(
    learning_rate: ScalarOrSchedule,
    l1reg: ScalarOrSchedule | Tree,
    *,
    mask: Mask = None,
) -> optax.GradientTransformationExtraArgs:
    r"""The cumulative L1 penalty (Tsuruoka, Tsujii & Ananiadou 2009); put it last in a chain.

    .. math:: u_t = u_{t-1} + \eta_t\lambda_t,\quad x = p_t + \Delta_t,\quad
       p_{t+1} = \begin{cases}\max(0, x - (u_t + q)) & x > 0\\ \min(0, x + (u_t - q)) & x < 0
       \\ 0 & x = 0\end{cases},\quad q \mathrel{+}= p_{t+1} - x

    :math:`u_t` is the total penalty any weight could have received so far and :math:`q_i` the
    (signed) penalty actually applied to weight :math:`i`. Each weight is charged only the penalty
    it has not yet received, so a weight that a noisy gradient pushes away from 0 is pulled back
    by the penalty it "owes": with minibatch SGD and a decaying step the support settles, while
    plain proximal SGD keeps flipping coordinates in and out. Use after ``optax.sgd`` with the
    same ``learning_rate`` (schedule). Exact zeros in every dtype; computed in at least float32;
    ``u`` and ``q`` are kept in at least float32 (their difference is what matters, so very long
    runs in float32 lose some precision in the threshold).

    Args:
      learning_rate: :math:`\eta_t`, the preceding optimizer's learning rate or schedule.
      l1reg: :math:`\lambda_t \ge 0`: a float, a schedule, per-leaf scalars or per-coordinate
        arrays.
      mask: which parameters are penalised; masked-out leaves pass through unchanged.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``.

    Raises:
      ValueError: a concrete negative/NaN/inf ``learning_rate`` or ``l1reg``; ``update`` without
        ``params``; a mask that does not match.
      TypeError: a (non-masked) parameter leaf is not floating-point.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> import l1optax
      >>> tx = optax.chain(optax.sgd(0.1), l1optax.cumulative_l1(0.1, l1reg=1.0))
      >>> params = jnp.array([1.0, 0.05, -0.5])
      >>> updates, _ = tx.update(jnp.zeros(3), tx.init(params), params)
      >>> optax.apply_updates(params, updates)
      Array([ 0.9,  0. , -0.4], dtype=float32)

    References:
      Tsuruoka, Tsujii & Ananiadou, 2009, "Stochastic gradient descent training for
      L1-regularized log-linear models with cumulative penalty", ACL-IJCNLP.
    """
    fn = "cumulative_l1"
    if learning_rate is None:
        raise ValueError(f"`{fn}(learning_rate=...)` is required, got None")
    v.check_strength(learning_rate, fn=fn, arg="learning_rate")
    v.check_strength(l1reg, fn=fn, arg="l1reg")

    def init_fn(params):
        v.check_float_leaves(params, fn=fn)
        lam0 = _evaluate_hyperparams(l1reg, jnp.zeros([], jnp.int32))
        lams = v.broadcast_to_params(lam0, params, fn=fn, arg="l1reg")
        total = _map(lambda p, lam: jnp.zeros(jnp.shape(lam), _acc(p)), params, lams)
        return CumulativeL1State(
            count=jnp.zeros([], jnp.int32), total=total, applied=_zeros_state(params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        v.require_params(params, fn=f"{fn}(...).update")
        eta = _at(learning_rate, state.count)
        lam = _evaluate_hyperparams(l1reg, state.count)
        lams = v.broadcast_to_params(lam, params, fn=fn, arg="l1reg")

        def new_total(u, lam_leaf, p):
            acc = _acc(p)
            inc = v.nan_if_negative(jnp.asarray(eta, acc) * jnp.asarray(lam_leaf, acc))
            return u + jnp.broadcast_to(inc, jnp.shape(u))

        total = _map(lambda p, u, lam_leaf: new_total(u, lam_leaf, p), params, state.total, lams)

        def leaf(p, g, u, q):
            acc = _acc(p)
            x = p.astype(acc) + g.astype(acc)
            pos = jnp.maximum(0, x - (u + q))
            neg = jnp.minimum(0, x + (u - q))
            z = jnp.where(x > 0, pos, jnp.where(x < 0, neg, x))
            z = jnp.where(jnp.isnan(u), jnp.nan, z)
            new_q = q + (z - x)
            return z.astype(p.dtype) - p, new_q

        both = _map(leaf, params, updates, total, state.applied)
        new_updates = _map(lambda p, b: b[0], params, both)
        applied = _map(lambda p, b: b[1], params, both)
        return new_updates, CumulativeL1State(
            count=optax.safe_increment(state.count), total=total, applied=applied
        )

    return maybe_masked(optax.GradientTransformation(init_fn, update_fn), mask, fn=fn)
