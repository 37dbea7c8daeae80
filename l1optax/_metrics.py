r"""The diagonal metrics of optax's adaptive optimizers, read from their own states.

An adaptive optimizer steps :math:`u = -\eta\,\hat m / d` with a per-coordinate metric
:math:`d > 0` kept in its state. The proximal step that solves the problem the user wrote is
taken in that same metric, :math:`p^+ = \mathrm{prox}_{\eta\Omega, d}(p + u)`, i.e. a prox with
per-coordinate step sizes :math:`s = \eta / d` (the ``scaling`` of jaxopt's prox signature).
Each function here returns those step sizes from an optax state, never recomputing a moment.

Coordinates whose gradient history is still exactly zero (an embedding row never in a batch, a
unit that never fired) have no metric yet: their step size is 0, so the prox leaves them
bitwise unchanged, as TensorFlow's sparse updates do. Which state entry tells "never seen" is
documented per optimizer below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from l1optax._types import Tree

StepSizes = Callable[[optax.OptState, jax.Array], Tree]


def _real(x: jax.Array) -> jax.Array:
    # optax keeps complex parameters' second moments in a complex dtype (zero imaginary part).
    return jnp.real(x) if jnp.iscomplexobj(x) else x


def _step(lr: Any, d: jax.Array, seen: jax.Array) -> jax.Array:
    d = _real(d)
    return jnp.where(seen, jnp.asarray(lr, d.dtype) / jnp.where(seen, d, 1), 0).astype(d.dtype)


def _map(f: Callable[..., Any], *trees: Tree) -> Tree:
    return jax.tree.map(
        lambda *xs: None if xs[0] is None else f(*xs), *trees, is_leaf=lambda x: x is None
    )


def adam_step_sizes(state: Any, lr: Any, *, b2: Any, eps: Any, eps_root: Any) -> Tree:
    r"""Step sizes of ``optax.scale_by_adam`` (adam, adamw, nadam, nadamw).

    .. math:: s = \eta / (\sqrt{\hat\nu + \epsilon_{root}} + \epsilon), \quad s = 0 \text{ where } \nu = 0
    """
    nu_hat = optax.tree.bias_correction(state.nu, b2, state.count)
    return _map(
        lambda n, nh: _step(lr, jnp.sqrt(_real(nh) + eps_root) + eps, _real(n) != 0),
        state.nu,
        nu_hat,
    )


def amsgrad_step_sizes(state: Any, lr: Any, *, eps: Any, eps_root: Any) -> Tree:
    r"""Step sizes of ``optax.scale_by_amsgrad``: :math:`s = \eta/(\sqrt{\nu_{max} + \epsilon_{root}} + \epsilon)`."""
    return _map(
        lambda n: _step(lr, jnp.sqrt(_real(n) + eps_root) + eps, _real(n) != 0), state.nu_max
    )


def belief_step_sizes(state: Any, lr: Any, *, b2: Any, eps: Any) -> Tree:
    r"""Step sizes of ``optax.scale_by_belief`` (adabelief): :math:`s = \eta/(\sqrt{\hat s} + \epsilon)`.

    AdaBelief adds ``eps_root`` to its second moment at every step, so "never seen" is read from
    the first moment: :math:`\mu = 0` exactly.
    """
    nu_hat = optax.tree.bias_correction(state.nu, b2, state.count)
    return _map(lambda m, nh: _step(lr, jnp.sqrt(_real(nh)) + eps, m != 0), state.mu, nu_hat)


def rms_step_sizes(
    state: Any, lr: Any, *, decay: Any, eps: Any, eps_in_sqrt: bool, bias_correction: bool
) -> Tree:
    r"""Step sizes of ``optax.scale_by_rms`` / ``scale_by_stddev`` (rmsprop, centered or not).

    .. math:: s = \eta / \sqrt{\hat\nu - [\hat\mu^2] + \epsilon} \quad(\text{or } \eta/(\sqrt{\cdot} + \epsilon))
    """
    nu = state.nu
    if bias_correction:
        nu = optax.tree.bias_correction(nu, decay, state.count)
    mu = getattr(state, "mu", None)
    if mu is not None:
        mu_hat = optax.tree.bias_correction(mu, decay, state.count) if bias_correction else mu
        var = _map(lambda n, m: _real(n) - jnp.abs(m) ** 2, nu, mu_hat)
    else:
        var = _map(_real, nu)

    def leaf(n, raw):
        d = jnp.sqrt(n + eps) if eps_in_sqrt else jnp.sqrt(n) + eps
        return _step(lr, d, _real(raw) != 0)

    return _map(leaf, var, state.nu)


def rss_step_sizes(state: Any, lr: Any, *, eps: Any, initial_accumulator_value: Any) -> Tree:
    r"""Step sizes of ``optax.scale_by_rss`` (adagrad): :math:`s = \eta / \sqrt{a + \epsilon}`.

    "Never seen" is a sum of squares still equal to ``initial_accumulator_value``.
    """

    def leaf(a):
        a = _real(a)
        seen = (a > 0) & (a != jnp.asarray(initial_accumulator_value, a.dtype))
        return _step(lr, jnp.sqrt(a + eps), seen)

    return _map(leaf, state.sum_of_squares)


# --------------------------------------------------------------------------------------------
# Reading an arbitrary optax optimizer's state (for ``with_l1``)
# --------------------------------------------------------------------------------------------

_INJECT_STATES = tuple(
    t
    for t in (
        getattr(optax, "InjectStatefulHyperparamsState", None),
        getattr(optax, "InjectHyperparamsState", None),
    )
    if t is not None
)
_ADAPTIVE_STATES = {
    optax.ScaleByAdamState: ("adam", "l1optax.prox_adam (or prox_adamw, prox_nadam)"),
    optax.ScaleByAmsgradState: ("amsgrad", "l1optax.prox_amsgrad"),
    optax.ScaleByBeliefState: ("adabelief", "l1optax.prox_adabelief"),
    optax.ScaleByRssState: ("adagrad", "l1optax.prox_adagrad"),
    optax.ScaleByRmsState: ("rmsprop", "l1optax.prox_rmsprop"),
    optax.ScaleByRStdDevState: ("rmsprop", "l1optax.prox_rmsprop(centered=True)"),
    optax.TraceState: ("momentum", "l1optax.prox_sgd(momentum=...) or prox_rmsprop(momentum=...)"),
}
for _name in ("ScaleByRmsWithCountState", "ScaleByRStdDevWithCountState"):
    _t = getattr(optax, _name, None)
    if _t is not None:
        _ADAPTIVE_STATES[_t] = ("rmsprop", "l1optax.prox_rmsprop(bias_correction=True)")
# Hyperparameters each family needs from an injected state, with optax's defaults for those
# that inject_hyperparams does not record (none of them are bools).
_NEEDS = {
    "adam": ("b2", "eps", "eps_root"),
    "amsgrad": ("eps", "eps_root"),
    "adabelief": ("b2", "eps"),
    "adagrad": ("eps", "initial_accumulator_value"),
}


def _is_inject(x: Any) -> bool:
    return bool(_INJECT_STATES) and isinstance(x, _INJECT_STATES)


def _find(state: Any, types: tuple) -> list:
    return [
        node
        for node in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, types))
        if isinstance(node, types)
    ]


def injected_hyperparams(state: optax.OptState) -> dict | None:
    """The hyperparameters of the outermost ``optax.inject_hyperparams`` state, or None."""
    injected = _find(state, _INJECT_STATES) if _INJECT_STATES else []
    return dict(injected[0].hyperparams) if injected else None


def describe_state(state: optax.OptState) -> tuple[Any, Any, dict | None]:
    """(the adaptive state, its family, the injected hyperparameters or None) of an optax state.

    Raises ``ValueError`` for states whose metric l1optax cannot read (momentum, rmsprop, several
    adaptive transforms, unknown per-coordinate state such as lion's or adafactor's).
    """
    injected = _find(state, _INJECT_STATES) if _INJECT_STATES else []
    hyper = dict(injected[0].hyperparams) if injected else None
    search_in = injected[0].inner_state if injected else state
    nodes = _find(search_in, tuple(_ADAPTIVE_STATES))
    if len(nodes) > 1:
        names = ", ".join(type(n).__name__ for n in nodes)
        raise ValueError(
            f"`with_l1`: the optimizer has several preconditioner/momentum states ({names}); "
            "with_l1 can only take the prox in one diagonal metric. Use l1optax.prox_in_metric "
            "with your own step_sizes function"
        )
    if nodes:
        family, call = _ADAPTIVE_STATES[type(nodes[0])]
        if family not in _NEEDS:
            raise ValueError(
                f"`with_l1`: cannot take a consistent proximal step after "
                f"{type(nodes[0]).__name__} ({family}); use {call}, which builds it from the same "
                "optax transforms with the prox in the right place, or "
                "with_l1(..., method='decoupled') for a uniform threshold (a different objective)"
            )
        return nodes[0], family, hyper
    unknown = [
        type(node).__name__
        for node in jax.tree.leaves(
            search_in, is_leaf=lambda x: hasattr(x, "_fields") and not _is_inject(x)
        )
        if hasattr(node, "_fields") and any(jnp.ndim(leaf) > 0 for leaf in jax.tree.leaves(node))
    ]
    if unknown:
        raise ValueError(
            f"`with_l1`: the optimizer keeps per-coordinate state ({', '.join(unknown)}) whose "
            "metric l1optax does not know (sign-based optimizers such as lion have none; factored "
            "ones such as adafactor have no diagonal one). Use with_l1(..., method='decoupled') "
            "for a uniform threshold (a different objective), or l1optax.prox_in_metric with "
            "your own step_sizes function"
        )
    return None, None, hyper


def state_step_sizes(node: Any, family: str | None, lr: Any, hyper: dict | None) -> Tree | Any:
    """The per-coordinate step sizes of a state found by :func:`describe_state`."""
    if family is None:
        return lr
    hp = hyper or {}
    if family == "adam":
        return adam_step_sizes(node, lr, b2=hp["b2"], eps=hp["eps"], eps_root=hp["eps_root"])
    if family == "amsgrad":
        return amsgrad_step_sizes(node, lr, eps=hp["eps"], eps_root=hp["eps_root"])
    if family == "adabelief":
        return belief_step_sizes(node, lr, b2=hp["b2"], eps=hp["eps"])
    return rss_step_sizes(
        node, lr, eps=hp["eps"], initial_accumulator_value=hp["initial_accumulator_value"]
    )


def needs(family: str | None) -> tuple[str, ...]:
    return _NEEDS.get(family, ()) if family else ()
