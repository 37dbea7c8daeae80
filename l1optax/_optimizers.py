r"""Proximal optimizers that solve the L1 (elastic-net) problem they claim to solve.

Each optimizer is optax's own alias (``optax.adam``, ``optax.sgd``, ...), built from optax's
``scale_by_*`` transforms, wrapped by :func:`l1optax.prox_in_metric`: after optax's step the
prox is taken in the diagonal metric :math:`d_t` that the optimizer's state defines,

.. math:: p_{t+1} = \mathrm{prox}_{\eta_t\Omega,\,d_t}(p_t + u_t),\qquad
   \Omega = \lambda_1\|\cdot\|_1 + \tfrac{\lambda_2}{2}\|\cdot\|_2^2 \text{ (or any ``prox=``)}

so that the fixed points are exactly the minimisers of :math:`f + \Omega` (Yun, Lozano & Yang,
2021). A uniform threshold :math:`\eta_t\lambda_1` after an Adam step instead minimises a lasso
weighted by :math:`d`, which has a different solution and support. With ``l1reg = 0`` every
optimizer here is bitwise its optax counterpart (same moments, same dtypes: optax's state sits
in ``state.inner_state``). Coordinates whose gradient history is exactly zero are not
thresholded (see :mod:`l1optax._metrics`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from l1optax import _metrics
from l1optax import _validation as v
from l1optax._elastic_net import _prox_elastic_net
from l1optax._prox import _prox_l1
from l1optax._transforms import (
    _at,
    _evaluate_hyperparams,
    _update_to,
    check_strength_shapes_at_init,
    is_static_zero_tree,
    maybe_masked,
    prox_in_metric,
)
from l1optax._types import Mask, Prox, ScalarOrSchedule, Tree


class CumulativeL1State(NamedTuple):
    """State of :func:`cumulative_l1` (Tsuruoka et al. 2009).

    ``total`` is :math:`u_t = \\sum_{s \\le t}\\eta_s\\lambda_s`, the penalty every weight could
    have received so far (one entry per leaf, shaped like that leaf's ``l1reg``); ``applied`` is
    :math:`q_i`, the signed penalty actually applied to each coordinate.
    """

    count: jax.Array  # type: ignore[assignment]  # int32 (shadows tuple.count, as in optax)
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


def _map(f, *trees):
    return jax.tree.map(lambda *xs: None if xs[0] is None else f(*xs), *trees, is_leaf=v.is_none)


def _proximal_optimizer(
    fn: str,
    optimizer: optax.GradientTransformation,
    step_sizes: Callable[[optax.OptState, jax.Array], Tree],
    *,
    learning_rate: Any,
    l1reg: Any,
    l2reg: Any,
    prox: Prox | None,
    mask: Mask,
    feedback: Callable | None = None,
) -> optax.GradientTransformationExtraArgs:
    """The skeleton every proximal optimizer shares: checks, the prox, ``prox_in_metric``."""
    if learning_rate is None:
        raise ValueError(f"`{fn}(learning_rate=...)` is required, got None")
    v.check_strength(learning_rate, fn=fn, arg="learning_rate")
    if not callable(learning_rate) and jnp.ndim(learning_rate) != 0:
        raise ValueError(
            f"`{fn}(learning_rate=...)` must be a scalar or a schedule, got an array of shape "
            f"{jnp.shape(learning_rate)} (it would change the parameters' shapes)"
        )
    v.check_strength(l2reg, fn=fn, arg="l2reg")
    default_prox = prox is None
    if prox is None:
        v.check_strength(l1reg, fn=fn, arg="l1reg")
        if is_static_zero_tree(l2reg):
            prox, hyperparams = functools.partial(_prox_l1, fn=fn), l1reg
        else:
            prox, hyperparams = functools.partial(_prox_elastic_net, fn=fn), (l1reg, l2reg)
    else:
        if not callable(prox):
            raise TypeError(
                f"`{fn}(prox=...)` must be a proximal operator prox(x, hyperparams, scaling), "
                f"got {prox!r}"
            )
        if not is_static_zero_tree(l2reg):
            raise ValueError(
                f"`{fn}(l2reg=...)` applies to the default elastic-net prox only; with `prox=` "
                "put every strength in `l1reg` (passed to the prox as its hyperparams)"
            )
        hyperparams = l1reg
    tx = prox_in_metric(
        optimizer, step_sizes, hyperparams, prox=prox, mask=mask, feedback=feedback, name=fn
    )
    if not default_prox:
        return tx
    return check_strength_shapes_at_init(tx, {"l1reg": l1reg, "l2reg": l2reg}, fn=fn)


def _trace_feedback(index: int, momentum: Any, nesterov: bool, *, gradient_units: bool):
    r"""Folds the prox's displacement into optax's momentum buffer (the composite gradient).

    A buffer of gradients alone makes the fixed points the lasso with :math:`(1-\mu)\lambda`;
    adding :math:`r_t` (the penalty's subgradient the prox applied: ``(p + u - p+)/eta`` in
    gradient units, ``p+ - (p + u)`` in update units) makes them the elastic-net minimisers
    (iPiano, Ochs et al. 2014). Nesterov's look-ahead sees the buffer through :math:`\mu^2`,
    hence the extra :math:`1/\mu`.
    """

    def feedback(state, residuals, step_sizes):
        trace_state = state[index]
        mu = jnp.asarray(momentum)
        gain = jnp.where(mu > 0, 1 / jnp.where(mu > 0, mu, 1), 0) if nesterov else 1.0
        scales = v.broadcast_to_params(step_sizes, residuals, fn="prox", arg="scaling")

        def leaf(t, r, s):
            if r is None:
                return t
            r = r.real if jnp.iscomplexobj(r) and not jnp.iscomplexobj(t) else r
            if gradient_units:
                s = jnp.asarray(s, r.real.dtype)
                delta = jnp.where(s > 0, r / jnp.where(s > 0, s, 1), 0)
            else:
                delta = -r
            return (t + (gain * delta).astype(t.dtype)).astype(t.dtype)

        trace = jax.tree.map(leaf, trace_state.trace, residuals, scales, is_leaf=v.is_none)
        return (*state[:index], trace_state._replace(trace=trace), *state[index + 1 :])

    return feedback


_COMMON_ARGS = """      l1reg: :math:`\\lambda_1 \\ge 0`: a float, a schedule, per-leaf scalars or per-coordinate
        arrays (weighted lasso); with ``prox=``, that prox's hyperparameters.
      l2reg: :math:`\\lambda_2 \\ge 0`, the strength of :math:`\\tfrac{\\lambda_2}{2}\\|p\\|^2`
        (default prox only).
      mask: which parameters are penalised (a pytree of bools or a callable); the others get
        the plain optax step.
      prox: a proximal operator ``prox(x, hyperparams, scaling)`` used instead of the
        elastic-net one, e.g. ``functools.partial(l1optax.prox_group_l1, axis=-1)`` for the
        group lasso in this optimizer's metric; ``scaling`` is the per-coordinate step."""


def _doc(f):
    f.__doc__ = f.__doc__.replace("    {common}", _COMMON_ARGS)
    return f


# --------------------------------------------------------------------------------------------
# The optimizers
# --------------------------------------------------------------------------------------------


@_doc
def prox_sgd(
    learning_rate: ScalarOrSchedule,
    l1reg: ScalarOrSchedule | Tree,
    *,
    momentum: float | None = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
    l2reg: ScalarOrSchedule | Tree = 0.0,
    mask: Mask = None,
    prox: Prox | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Proximal SGD (ISTA / forward-backward splitting), with heavy-ball or Nesterov momentum.

    .. math:: p_{t+1} = \mathrm{prox}_{\eta_t\Omega}(p_t + u_t),\quad u_t = \text{optax.sgd's
       update},\quad b_t \mathrel{+}= r_t\ (\text{Nesterov: } r_t/\mu)

    ``optax.sgd(learning_rate, momentum, nesterov, accumulator_dtype)`` followed by the prox.
    Without momentum this is ISTA: with :math:`\eta \le 1/L` it converges to the lasso solution
    and its support. With momentum the buffer :math:`b_t` also accumulates :math:`r_t =
    (p_t + u_t - p_{t+1})/\eta_t`, the penalty gradient the prox applied (the inertial proximal
    method iPiano), so the fixed points are the elastic-net minimisers; a gradient-only buffer,
    as in ``chain(optax.sgd(lr, momentum), apply_l1_prox(lr, lam))``, solves the lasso with
    :math:`(1-\mu)\lambda_1`. With ``l1reg = 0`` it is bitwise ``optax.sgd``.

    Args:
      learning_rate: :math:`\eta_t > 0`, a float or an optax schedule.
    {common}
      momentum: :math:`\mu \in [0, 1)`, or None for plain proximal gradient.
      nesterov: use Nesterov momentum (as ``optax.sgd``).
      accumulator_dtype: the momentum buffer's dtype (as ``optax.sgd``).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``.

    Raises:
      ValueError: a concrete negative/NaN/inf strength or learning rate; momentum outside
        [0, 1); ``update`` without ``params``; a mask that does not match.
      TypeError: a penalised parameter leaf is not floating-point; a non-bool flag.

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
      optimization", SIAM J. Imaging Sciences 7(2). Duchi & Singer, 2009, "Efficient online
      and batch learning using forward backward splitting".
    """
    fn = "prox_sgd"
    v.check_bool(nesterov, fn=fn, arg="nesterov")
    if momentum is not None:
        momentum = _decay(momentum, fn=fn, arg="momentum")
    opt = optax.sgd(learning_rate, momentum, nesterov, accumulator_dtype)
    feedback = (
        None if momentum is None else _trace_feedback(0, momentum, nesterov, gradient_units=True)
    )
    return _proximal_optimizer(
        fn,
        opt,
        lambda state, count: _at(learning_rate, count, fn=fn, arg="learning_rate"),
        learning_rate=learning_rate,
        l1reg=l1reg,
        l2reg=l2reg,
        prox=prox,
        mask=mask,
        feedback=feedback,
    )


def _decay(value: Any, *, fn: str, arg: str) -> Any:
    """A decay/momentum in [0, 1): checked when concrete, NaN when traced and out of range."""
    v.check_in_range(value, fn=fn, arg=arg, low=0.0, high=1.0, closed=False)
    if isinstance(value, jax.core.Tracer):
        return jnp.where((value >= 0) & (value < 1), value, jnp.nan)
    return value


def _check_adam_args(fn: str, b1: Any, b2: Any, eps: Any, eps_root: Any) -> tuple[Any, Any]:
    v.check_strength(eps, fn=fn, arg="eps", allow_schedule=False)
    v.check_strength(eps_root, fn=fn, arg="eps_root", allow_schedule=False)
    return _decay(b1, fn=fn, arg="b1"), _decay(b2, fn=fn, arg="b2")


@_doc
def prox_adam(
    learning_rate: ScalarOrSchedule,
    l1reg: ScalarOrSchedule | Tree,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    nesterov: bool = False,
    l2reg: ScalarOrSchedule | Tree = 0.0,
    mask: Mask = None,
    prox: Prox | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adam with the L1 (elastic-net, or any) prox taken in Adam's own metric.

    .. math:: d_t = \sqrt{\hat\nu_t + \epsilon_{root}} + \epsilon,\quad
       p_{t+1} = \frac{S_{\eta_t\lambda_1/d_t}(p_t - \eta_t\hat m_t/d_t)}{1 + \eta_t\lambda_2/d_t}

    ``optax.adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov)`` followed
    by the prox with per-coordinate steps :math:`\eta_t/d_t`: the fixed points are the
    elastic-net minimisers (a uniform threshold after Adam solves a :math:`d`-weighted lasso).
    Coordinates whose second moment is still exactly 0 (no gradient yet: an embedding row never
    looked up) are left unchanged instead of being thresholded by :math:`\eta\lambda/\epsilon`.
    With ``l1reg = 0`` it is bitwise ``optax.adam``.

    Args:
      learning_rate: :math:`\eta_t > 0`, a float or an optax schedule.
    {common}
      b1: as in ``optax.adam``.
      b2: as in ``optax.adam``.
      eps: as in ``optax.adam``.
      eps_root: as in ``optax.adam``.
      mu_dtype: as in ``optax.adam``.
      nesterov: as in ``optax.adam``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``.

    Raises:
      ValueError: a concrete negative/NaN/inf strength, learning rate or ``eps``; ``b1``/``b2``
        outside [0, 1); ``update`` without ``params``; a mask that does not match.
      TypeError: a penalised parameter leaf is not floating-point.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> import l1optax
      >>> tx = l1optax.prox_adam(0.1, l1reg=1.0)
      >>> params = jnp.array([1.0, 0.05])
      >>> updates, _ = tx.update(jnp.array([1.0, 1.0]), tx.init(params), params)
      >>> [round(float(w), 4) for w in optax.apply_updates(params, updates)]  # d = 1
      [0.8, 0.0]

    References:
      Kingma & Ba, 2015, "Adam: a method for stochastic optimization". Yun, Lozano & Yang,
      2021, "Adaptive proximal gradient methods for structured neural networks", NeurIPS.
    """
    return _adam_family(
        "prox_adam",
        learning_rate,
        l1reg,
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        mu_dtype=mu_dtype,
        nesterov=nesterov,
        l2reg=l2reg,
        mask=mask,
        prox=prox,
    )


def _adam_step_sizes(fn, learning_rate, *, b2, eps, eps_root):
    """Adam's metric (state[0] is optax's ScaleByAdamState), shared by adam, nadam and adamw."""

    def step_sizes(state, count):
        lr = _at(learning_rate, count, fn=fn, arg="learning_rate")
        return _metrics.adam_step_sizes(state[0], lr, b2=b2, eps=eps, eps_root=eps_root)

    return step_sizes


def _adam_family(
    fn, learning_rate, l1reg, *, b1, b2, eps, eps_root, mu_dtype, nesterov, l2reg, mask, prox
):
    v.check_bool(nesterov, fn=fn, arg="nesterov")
    b1, b2 = _check_adam_args(fn, b1, b2, eps, eps_root)
    opt = optax.adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov)

    return _proximal_optimizer(
        fn,
        opt,
        _adam_step_sizes(fn, learning_rate, b2=b2, eps=eps, eps_root=eps_root),
        learning_rate=learning_rate,
        l1reg=l1reg,
        l2reg=l2reg,
        prox=prox,
        mask=mask,
    )


@_doc
def prox_nadam(
    learning_rate: ScalarOrSchedule,
    l1reg: ScalarOrSchedule | Tree,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    l2reg: ScalarOrSchedule | Tree = 0.0,
    mask: Mask = None,
    prox: Prox | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""NAdam with the prox in its metric: :func:`prox_adam` with ``nesterov=True``.

    .. math:: p_{t+1} = \mathrm{prox}_{\eta_t\Omega,\,d_t}(p_t + u_t^{\mathrm{nadam}}),\quad
       d_t = \sqrt{\hat\nu_t + \epsilon_{root}} + \epsilon

    Bitwise ``optax.nadam`` with ``l1reg = 0``.

    Args:
      learning_rate: :math:`\eta_t > 0`, a float or an optax schedule.
    {common}
      b1: as in ``optax.nadam``.
      b2: as in ``optax.nadam``.
      eps: as in ``optax.nadam``.
      eps_root: as in ``optax.nadam``.
      mu_dtype: as in ``optax.nadam``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``.

    Raises:
      ValueError: as :func:`prox_adam`.
      TypeError: as :func:`prox_adam`.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> tx = l1optax.prox_nadam(1e-3, l1reg=1e-4)
      >>> state = tx.init(jnp.zeros(3))

    References:
      Dozat, 2016, "Incorporating Nesterov momentum into Adam", ICLR workshop.
    """
    return _adam_family(
        "prox_nadam",
        learning_rate,
        l1reg,
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        mu_dtype=mu_dtype,
        nesterov=True,
        l2reg=l2reg,
        mask=mask,
        prox=prox,
    )


@_doc
def prox_adamw(
    learning_rate: ScalarOrSchedule,
    l1reg: ScalarOrSchedule | Tree,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    weight_decay_mask: Mask = None,
    nesterov: bool = False,
    l2reg: ScalarOrSchedule | Tree = 0.0,
    mask: Mask = None,
    prox: Prox | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AdamW (decoupled weight decay) with the L1 prox in Adam's metric.

    .. math:: u_t = -\eta_t(\hat m_t/d_t + w\,p_t),\quad
       p_{t+1} = \mathrm{prox}_{\eta_t\Omega,\,d_t}(p_t + u_t)

    ``optax.adamw(..., weight_decay, mask=weight_decay_mask, nesterov)`` followed by the prox.
    The weight decay stays decoupled (it is part of AdamW's update, not of the penalty); with
    ``weight_decay=0`` the fixed points are the lasso minimisers. ``mask`` selects the L1
    penalty; optax's weight-decay mask is ``weight_decay_mask``. With ``l1reg = 0`` it is
    bitwise ``optax.adamw``.

    Args:
      learning_rate: :math:`\eta_t > 0`, a float or an optax schedule.
    {common}
      b1: as in ``optax.adamw``.
      b2: as in ``optax.adamw``.
      eps: as in ``optax.adamw``.
      eps_root: as in ``optax.adamw``.
      mu_dtype: as in ``optax.adamw``.
      nesterov: as in ``optax.adamw``.
      weight_decay: AdamW's decoupled decay rate :math:`w \ge 0` (a float or a schedule).
      weight_decay_mask: optax.adamw's ``mask`` (which leaves decay).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``.

    Raises:
      ValueError: as :func:`prox_adam`, and a negative concrete ``weight_decay``.
      TypeError: as :func:`prox_adam`.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> tx = l1optax.prox_adamw(1e-3, l1reg=1e-4, weight_decay=1e-2)
      >>> state = tx.init({"w": jnp.zeros(3)})

    References:
      Loshchilov & Hutter, 2019, "Decoupled weight decay regularization", ICLR.
    """
    fn = "prox_adamw"
    v.check_bool(nesterov, fn=fn, arg="nesterov")
    b1, b2 = _check_adam_args(fn, b1, b2, eps, eps_root)
    v.check_strength(weight_decay, fn=fn, arg="weight_decay")
    opt = optax.adamw(
        learning_rate,
        b1,
        b2,
        eps,
        eps_root,
        mu_dtype,
        weight_decay,
        weight_decay_mask,
        nesterov=nesterov,
    )

    return _proximal_optimizer(
        fn,
        opt,
        _adam_step_sizes(fn, learning_rate, b2=b2, eps=eps, eps_root=eps_root),
        learning_rate=learning_rate,
        l1reg=l1reg,
        l2reg=l2reg,
        prox=prox,
        mask=mask,
    )


@_doc
def prox_amsgrad(
    learning_rate: ScalarOrSchedule,
    l1reg: ScalarOrSchedule | Tree,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    l2reg: ScalarOrSchedule | Tree = 0.0,
    mask: Mask = None,
    prox: Prox | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AMSGrad with the prox in its metric (the running maximum of Adam's second moment).

    .. math:: d_t = \sqrt{\max_{s \le t}\hat\nu_s + \epsilon_{root}} + \epsilon,\quad
       p_{t+1} = \mathrm{prox}_{\eta_t\Omega,\,d_t}(p_t + u_t)

    ``optax.amsgrad(...)`` followed by the prox; coordinates with :math:`\nu_{max} = 0` are left
    unchanged. Bitwise ``optax.amsgrad`` with ``l1reg = 0``.

    Args:
      learning_rate: :math:`\eta_t > 0`, a float or an optax schedule.
    {common}
      b1: as in ``optax.amsgrad``.
      b2: as in ``optax.amsgrad``.
      eps: as in ``optax.amsgrad``.
      eps_root: as in ``optax.amsgrad``.
      mu_dtype: as in ``optax.amsgrad``.
      bias_correction_mu: as in ``optax.amsgrad``.
      bias_correction_nu: as in ``optax.amsgrad``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``.

    Raises:
      ValueError: as :func:`prox_adam`.
      TypeError: as :func:`prox_adam`.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> tx = l1optax.prox_amsgrad(1e-3, l1reg=1e-4)
      >>> state = tx.init(jnp.zeros(3))

    References:
      Reddi, Kale & Kumar, 2018, "On the convergence of Adam and beyond", ICLR.
    """
    fn = "prox_amsgrad"
    v.check_bool(bias_correction_mu, fn=fn, arg="bias_correction_mu")
    v.check_bool(bias_correction_nu, fn=fn, arg="bias_correction_nu")
    b1, b2 = _check_adam_args(fn, b1, b2, eps, eps_root)
    opt = optax.amsgrad(
        learning_rate, b1, b2, eps, eps_root, mu_dtype, bias_correction_mu, bias_correction_nu
    )

    def step_sizes(state, count):
        lr = _at(learning_rate, count, fn=fn, arg="learning_rate")
        return _metrics.amsgrad_step_sizes(state[0], lr, eps=eps, eps_root=eps_root)

    return _proximal_optimizer(
        fn,
        opt,
        step_sizes,
        learning_rate=learning_rate,
        l1reg=l1reg,
        l2reg=l2reg,
        prox=prox,
        mask=mask,
    )


@_doc
def prox_adabelief(
    learning_rate: ScalarOrSchedule,
    l1reg: ScalarOrSchedule | Tree,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    nesterov: bool = False,
    l2reg: ScalarOrSchedule | Tree = 0.0,
    mask: Mask = None,
    prox: Prox | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AdaBelief with the prox in its metric (the belief in the gradient's prediction error).

    .. math:: d_t = \sqrt{\hat s_t} + \epsilon,\quad
       p_{t+1} = \mathrm{prox}_{\eta_t\Omega,\,d_t}(p_t + u_t)

    ``optax.adabelief(...)`` followed by the prox. AdaBelief adds ``eps_root`` to its second
    moment at every step, so coordinates whose *first* moment is still exactly 0 count as never
    seen and are left unchanged. Bitwise ``optax.adabelief`` with ``l1reg = 0``.

    Args:
      learning_rate: :math:`\eta_t > 0`, a float or an optax schedule.
    {common}
      b1: as in ``optax.adabelief``.
      b2: as in ``optax.adabelief``.
      eps: as in ``optax.adabelief``.
      eps_root: as in ``optax.adabelief``.
      nesterov: as in ``optax.adabelief``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``.

    Raises:
      ValueError: as :func:`prox_adam`.
      TypeError: as :func:`prox_adam`.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> tx = l1optax.prox_adabelief(1e-3, l1reg=1e-4)
      >>> state = tx.init(jnp.zeros(3))

    References:
      Zhuang et al., 2020, "AdaBelief optimizer: adapting stepsizes by the belief in observed
      gradients", NeurIPS.
    """
    fn = "prox_adabelief"
    v.check_bool(nesterov, fn=fn, arg="nesterov")
    b1, b2 = _check_adam_args(fn, b1, b2, eps, eps_root)
    opt = optax.adabelief(learning_rate, b1, b2, eps, eps_root, nesterov=nesterov)

    def step_sizes(state, count):
        lr = _at(learning_rate, count, fn=fn, arg="learning_rate")
        return _metrics.belief_step_sizes(state[0], lr, b2=b2, eps=eps)

    return _proximal_optimizer(
        fn,
        opt,
        step_sizes,
        learning_rate=learning_rate,
        l1reg=l1reg,
        l2reg=l2reg,
        prox=prox,
        mask=mask,
    )


@_doc
def prox_rmsprop(
    learning_rate: ScalarOrSchedule,
    l1reg: ScalarOrSchedule | Tree,
    *,
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: float | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
    l2reg: ScalarOrSchedule | Tree = 0.0,
    mask: Mask = None,
    prox: Prox | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""RMSProp (optionally centered, with momentum) with the prox in its metric.

    .. math:: d_t = \sqrt{\hat\nu_t [- \hat\mu_t^2] + \epsilon}\ (\text{or } \sqrt{\cdot} +
       \epsilon),\quad p_{t+1} = \mathrm{prox}_{\eta_t\Omega,\,d_t}(p_t + u_t)

    ``optax.rmsprop(...)`` with optax's arguments and defaults, followed by the prox. With
    ``momentum`` the buffer also accumulates the prox's displacement (as in :func:`prox_sgd`) so
    the fixed points stay the elastic-net minimisers. Coordinates whose second moment is still
    exactly 0 (with ``initial_scale = 0``) are left unchanged. Bitwise ``optax.rmsprop`` with
    ``l1reg = 0``.

    Args:
      learning_rate: :math:`\eta_t > 0`, a float or an optax schedule.
    {common}
      decay: as in ``optax.rmsprop``.
      eps: as in ``optax.rmsprop``.
      initial_scale: as in ``optax.rmsprop``.
      eps_in_sqrt: as in ``optax.rmsprop``.
      centered: as in ``optax.rmsprop``.
      momentum: as in ``optax.rmsprop``.
      nesterov: as in ``optax.rmsprop``.
      bias_correction: as in ``optax.rmsprop``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``.

    Raises:
      ValueError: a concrete negative/NaN/inf strength, learning rate or ``eps``; ``decay`` or
        ``momentum`` outside [0, 1); ``update`` without ``params``; a mask that does not match.
      TypeError: a penalised parameter leaf is not floating-point; a non-bool flag.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> import l1optax
      >>> tx = l1optax.prox_rmsprop(0.01, l1reg=1.0, decay=0.75, eps=0.0)
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
    for flag in ("eps_in_sqrt", "centered", "nesterov", "bias_correction"):
        v.check_bool(locals()[flag], fn=fn, arg=flag)
    decay = _decay(decay, fn=fn, arg="decay")
    if momentum is not None:
        momentum = _decay(momentum, fn=fn, arg="momentum")
    v.check_strength(eps, fn=fn, arg="eps", allow_schedule=False)
    v.check_strength(initial_scale, fn=fn, arg="initial_scale", allow_schedule=False)
    opt = optax.rmsprop(
        learning_rate,
        decay,
        eps,
        initial_scale,
        eps_in_sqrt,
        centered,
        momentum,
        nesterov,
        bias_correction,
    )

    def step_sizes(state, count):
        lr = _at(learning_rate, count, fn=fn, arg="learning_rate")
        return _metrics.rms_step_sizes(
            state[0],
            lr,
            decay=decay,
            eps=eps,
            eps_in_sqrt=eps_in_sqrt,
            bias_correction=bias_correction,
        )

    feedback = (
        None if momentum is None else _trace_feedback(2, momentum, nesterov, gradient_units=False)
    )
    return _proximal_optimizer(
        fn,
        opt,
        step_sizes,
        learning_rate=learning_rate,
        l1reg=l1reg,
        l2reg=l2reg,
        prox=prox,
        mask=mask,
        feedback=feedback,
    )


@_doc
def prox_adagrad(
    learning_rate: ScalarOrSchedule,
    l1reg: ScalarOrSchedule | Tree,
    *,
    initial_accumulator_value: float = 0.1,
    eps: float = 1e-7,
    l2reg: ScalarOrSchedule | Tree = 0.0,
    mask: Mask = None,
    prox: Prox | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Proximal Adagrad: TensorFlow's ``ProximalAdagradOptimizer`` on top of ``optax.adagrad``.

    .. math:: a_t = a_{t-1} + g_t^2,\quad \gamma_t = \frac{\eta_t}{\sqrt{a_t + \epsilon}},\quad
       p_{t+1} = \frac{S_{\gamma_t\lambda_1}(p_t - \gamma_t g_t)}{1 + \gamma_t\lambda_2}

    ``optax.adagrad(learning_rate, initial_accumulator_value, eps)`` followed by the prox in
    Adagrad's metric; with ``eps=0`` it reproduces the values in TensorFlow's
    ``proximal_adagrad_test.py``. Coordinates whose accumulator still equals
    ``initial_accumulator_value`` (every gradient so far exactly 0) are left unchanged, like
    TensorFlow's sparse updates. Bitwise ``optax.adagrad`` with ``l1reg = 0``.

    Args:
      learning_rate: :math:`\eta_t > 0`, a float or a schedule.
    {common}
      initial_accumulator_value: :math:`a_0 \ge 0` (as ``optax.adagrad``).
      eps: :math:`\epsilon \ge 0` (as ``optax.adagrad``).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``.

    Raises:
      ValueError: a concrete negative/NaN/inf strength, learning rate, ``eps`` or
        ``initial_accumulator_value``; ``update`` without ``params``; a mask that does not match.
      TypeError: a penalised parameter leaf is not floating-point.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> import l1optax
      >>> tx = l1optax.prox_adagrad(3.0, l1reg=0.001, initial_accumulator_value=0.1, eps=0.0)
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
    v.check_strength(
        initial_accumulator_value, fn=fn, arg="initial_accumulator_value", allow_schedule=False
    )
    v.check_strength(eps, fn=fn, arg="eps", allow_schedule=False)
    opt = optax.adagrad(learning_rate, initial_accumulator_value, eps)

    def step_sizes(state, count):
        lr = _at(learning_rate, count, fn=fn, arg="learning_rate")
        return _metrics.rss_step_sizes(
            state[0], lr, eps=eps, initial_accumulator_value=initial_accumulator_value
        )

    return _proximal_optimizer(
        fn,
        opt,
        step_sizes,
        learning_rate=learning_rate,
        l1reg=l1reg,
        l2reg=l2reg,
        prox=prox,
        mask=mask,
    )


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
      TypeError: a (non-masked) parameter leaf is not real floating-point (complex leaves are
        rejected: the cumulative penalty is signed).

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
        params = v.scalars_as_arrays(params)
        v.check_real_leaves(
            params,
            fn=fn,
            advice="its cumulative penalty is signed: mask the leaf out or use apply_l1_prox / "
            "prox_sgd, which shrink complex moduli",
        )
        lam0 = _evaluate_hyperparams(l1reg, jnp.zeros([], jnp.int32))
        lams = v.broadcast_to_params(lam0, params, fn=fn, arg="l1reg")
        total = _map(lambda p, lam: jnp.zeros(jnp.shape(lam), _acc(p)), params, lams)
        return CumulativeL1State(
            count=jnp.zeros([], jnp.int32), total=total, applied=_zeros_state(params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        updates, params = v.check_update_args(updates, params, fn=fn)
        eta = _at(learning_rate, state.count, fn=fn, arg="learning_rate")
        lam = _evaluate_hyperparams(l1reg, state.count, fn=fn)
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
            update = _update_to(p, g, x, z)
            # Record only the penalty the stored weights received: in bfloat16/float16 a small
            # threshold can round away, and must then stay owed (Tsuruoka's q is what was applied).
            landed = (p + update).astype(p.dtype).astype(acc)
            unpenalised = x.astype(p.dtype).astype(acc)
            new_q = q + (landed - unpenalised)
            return update, new_q

        both = _map(leaf, params, updates, total, state.applied)
        new_updates = _map(lambda p, b: b[0], params, both)
        applied = _map(lambda p, b: b[1], params, both)
        return new_updates, CumulativeL1State(
            count=optax.safe_increment(state.count), total=total, applied=applied
        )

    return maybe_masked(optax.GradientTransformation(init_fn, update_fn), mask, fn=fn)
