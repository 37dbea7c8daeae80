"""FTRL-Proximal (McMahan et al. 2013), with TensorFlow's exact update."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from l1optax import _validation as v
from l1optax._transforms import _at
from l1optax._types import ScalarOrSchedule, Tree


class FtrlState(NamedTuple):
    """State of :func:`ftrl`: the step count, the squared-gradient accumulator :math:`n` and the
    linear term :math:`z` (TensorFlow's ``accum`` and ``linear`` slots)."""

    count: jax.Array  # type: ignore[assignment]  # int32 (shadows tuple.count, as in optax)
    accumulator: Tree
    linear: Tree


def _is_scalar_or_schedule(value: Any) -> bool:
    if callable(value) and not isinstance(value, jax.Array | np.ndarray | np.generic):
        return True
    if not isinstance(value, int | float | jax.Array | np.ndarray | np.generic):
        return False
    return jnp.ndim(value) == 0


def _check_scalar(value: Any, *, fn: str, arg: str) -> None:
    if v.is_concrete(value) and (not v._is_single_leaf(value) or np.ndim(value) != 0):
        raise ValueError(
            f"`{fn}({arg}=...)` must be a scalar (as in TensorFlow's FTRL), got {value!r}"
        )


def ftrl(
    learning_rate: ScalarOrSchedule,
    *,
    l1reg: ScalarOrSchedule = 0.0,
    l2reg: ScalarOrSchedule = 0.0,
    l2_shrinkage: float = 0.0,
    beta: float = 0.0,
    learning_rate_power: float = -0.5,
    initial_accumulator_value: float = 0.1,
    l1reg_per_step: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""FTRL-Proximal, with the same updates as ``keras.optimizers.Ftrl`` / TF's ``FtrlOptimizer``.

    .. math:: n_t = n_{t-1} + g_t^2,\quad
       z_t = z_{t-1} + \tilde g_t - \frac{n_t^{-c} - n_{t-1}^{-c}}{\eta_t} p_t,\quad
       p_{t+1} = \frac{\mathrm{clip}(z_t, -\lambda_1, \lambda_1) - z_t}
       {n_t^{-c}/\eta_t + 2\lambda_2 + \beta/\eta_t}

    with :math:`c` = ``learning_rate_power`` (:math:`-1/2`: Adagrad-like per-coordinate rates),
    :math:`\tilde g_t = g_t + 2\lambda_s p_t` (``l2_shrinkage``) and :math:`n_0` =
    ``initial_accumulator_value``, :math:`z_0 = 0`. Weights with :math:`|z| \le \lambda_1` are
    exactly 0. TensorFlow's conventions are kept exactly: ``l2reg`` is the coefficient of
    :math:`\lambda_2\|p\|^2` (not :math:`/2`), ``l2_shrinkage`` of :math:`\lambda_s\|p\|^2`.
    The prox is not applied to ``p + u``: FTRL computes the new weights from its own state, and
    the returned update is ``p_new - p`` in the parameters' dtype.

    How ``l1reg`` relates to a lasso ``alpha``: :math:`z_t` is a *sum* of gradients, so
    :math:`\lambda_1` is charged once against the whole run, i.e. against the summed loss
    :math:`\sum_{s\le t} \ell_s` (McMahan et al.). With per-step (minibatch-mean) gradients of
    :math:`\tfrac{1}{n}\sum_i \ell_i` the equivalent lasso strength after :math:`t` steps is
    :math:`\alpha = \lambda_1 / t`, so a fixed ``l1reg`` fades away. ``l1reg_per_step=True``
    instead charges :math:`\lambda_1 t` at step :math:`t` (``l1reg`` becomes the lasso
    :math:`\alpha` of the mean loss): every fixed point then satisfies
    :math:`0 \in \nabla f(p) + \alpha\,\partial\|p\|_1`, the lasso optimality condition (the proximal
    terms are centred at the iterates, so they vanish at a fixed point; the tests show full-batch
    runs reaching scikit-learn's ``Lasso`` to 1e-6). When to use it: online/streaming sparse linear models (CTR prediction,
    embeddings), the industry standard there.

    Args:
      learning_rate: :math:`\eta_t > 0`, a float or a schedule.
      l1reg: :math:`\lambda_1 \ge 0` (float or schedule), TensorFlow's
        ``l1_regularization_strength``.
      l2reg: :math:`\lambda_2 \ge 0` (float or schedule), ``l2_regularization_strength``.
      l2_shrinkage: :math:`\lambda_s \ge 0`, ``l2_shrinkage_regularization_strength``.
      beta: :math:`\beta \ge 0`, the paper's :math:`\beta` (Keras' ``beta``).
      learning_rate_power: :math:`c \le 0`; 0 gives a fixed learning rate.
      initial_accumulator_value: :math:`n_0 \ge 0`.
      l1reg_per_step: if True, the L1 strength at step :math:`t` (1-based) is
        :math:`t\lambda_1`, which makes the fixed point the lasso solution with ``alpha=l1reg``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``. The state
      (:class:`FtrlState`) is kept in at least float32.

    Raises:
      ValueError: a concrete negative/NaN/inf strength, a learning rate that is not positive, a
        positive ``learning_rate_power``, a non-scalar hyperparameter, or ``update`` without
        ``params``. Traced values out of range (under ``jax.jit`` or
        ``optax.inject_hyperparams``: a learning rate <= 0, a negative strength, ``beta``,
        ``l2_shrinkage`` or ``initial_accumulator_value``, a positive ``learning_rate_power``)
        make the weights NaN.
      TypeError: a parameter leaf is not real floating-point (``init`` rejects complex leaves:
        the update clips :math:`z` and accumulates :math:`g^2`, defined for real coordinates), a
        numeric hyperparameter is a string, bool or complex, or ``l1reg_per_step`` is not a bool.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> import l1optax
      >>> tx = l1optax.ftrl(3.0, l1reg=0.001, l2reg=2.0)
      >>> params = jnp.array([1.0, 2.0])
      >>> state = tx.init(params)
      >>> for _ in range(10):
      ...     updates, state = tx.update(jnp.array([0.1, 0.2]), state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> params  # TensorFlow's ftrl_test.py testFtrlWithL1_L2: [-0.24059935, -0.46829352]
      Array([-0.240599..., -0.468293...], dtype=float32)

    References:
      McMahan, Holt, Sculley et al., 2013, "Ad click prediction: a view from the trenches", KDD.
      McMahan, 2011, "Follow-the-regularized-leader and mirror descent: equivalence theorems and
      L1 regularization", AISTATS.
    """
    fn = "ftrl"
    if learning_rate is None:
        raise ValueError(f"`{fn}(learning_rate=...)` is required, got None")
    for arg, value in (("learning_rate", learning_rate), ("l1reg", l1reg), ("l2reg", l2reg)):
        v.check_strength(value, fn=fn, arg=arg)
        if not _is_scalar_or_schedule(value):
            raise ValueError(
                f"`{fn}({arg}=...)` must be a scalar or a schedule (as in TensorFlow's FTRL), got "
                f"{value!r}"
            )
    if not callable(learning_rate) and v.is_concrete(learning_rate):
        if float(np.asarray(learning_rate)) == 0:
            raise ValueError(
                f"`{fn}(learning_rate=...)` must be positive (the FTRL weights divide by it), "
                f"got {float(np.asarray(learning_rate))!r}"
            )
    for arg, value in (
        ("l2_shrinkage", l2_shrinkage),
        ("beta", beta),
        ("initial_accumulator_value", initial_accumulator_value),
    ):
        v.check_strength(value, fn=fn, arg=arg, allow_schedule=False)
        _check_scalar(value, fn=fn, arg=arg)
    v.check_in_range(
        learning_rate_power, fn=fn, arg="learning_rate_power", low=-np.inf, high=0.0, closed=True
    )
    _check_scalar(learning_rate_power, fn=fn, arg="learning_rate_power")
    v.check_bool(l1reg_per_step, fn=fn, arg="l1reg_per_step")
    sqrt_power = isinstance(learning_rate_power, float | int) and learning_rate_power == -0.5

    def init_fn(params):
        params = v.scalars_as_arrays(params)
        v.check_real_leaves(params, fn=fn)

        def leaf(p):
            acc = jnp.finfo(v.compute_dtype(p.dtype)).dtype
            n0 = v.nan_if_negative(jnp.asarray(initial_accumulator_value, acc))
            return jnp.full_like(p, n0, dtype=acc)

        return FtrlState(
            count=jnp.zeros([], jnp.int32),
            accumulator=jax.tree.map(
                lambda p: None if p is None else leaf(p), params, is_leaf=v.is_none
            ),
            linear=jax.tree.map(
                lambda p: (
                    None
                    if p is None
                    else jnp.zeros_like(p, dtype=jnp.finfo(v.compute_dtype(p.dtype)).dtype)
                ),
                params,
                is_leaf=v.is_none,
            ),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        updates, params = v.check_update_args(updates, params, fn=fn)
        eta = _at(learning_rate, state.count)
        lam1 = _at(l1reg, state.count)
        lam2 = _at(l2reg, state.count)

        def leaf(g, p, n, z):
            if p is None:
                return None
            acc = jnp.finfo(v.compute_dtype(p.dtype)).dtype
            # Traced values cannot raise: out-of-range ones poison the weights with NaN.
            lr = jnp.asarray(eta, acc)
            lr = jnp.where(lr > 0, lr, jnp.nan)
            l1 = v.nan_if_negative(jnp.asarray(lam1, acc))
            if l1reg_per_step:
                l1 = l1 * (state.count + 1).astype(acc)
            b = v.nan_if_negative(jnp.asarray(beta, acc))
            l2 = v.nan_if_negative(jnp.asarray(lam2, acc)) + b / (2 * lr)
            w = p.astype(acc)
            g = g.astype(acc)
            g_shrunk = g + 2 * v.nan_if_negative(jnp.asarray(l2_shrinkage, acc)) * w
            new_n = n + g * g
            if sqrt_power:
                new_pow, old_pow = jnp.sqrt(new_n), jnp.sqrt(n)
            else:
                power = jnp.asarray(learning_rate_power, acc)
                c = -jnp.where(power <= 0, power, jnp.nan)
                new_pow, old_pow = jnp.power(new_n, c), jnp.power(n, c)
            new_z = z + g_shrunk - (new_pow - old_pow) / lr * w
            quadratic = new_pow / lr + 2 * l2
            new_w = (jnp.clip(new_z, -l1, l1) - new_z) / quadratic
            return new_w.astype(p.dtype) - p, new_n, new_z

        out = jax.tree.map(
            leaf, updates, params, state.accumulator, state.linear, is_leaf=v.is_none
        )
        pick = lambda i: jax.tree.map(  # noqa: E731
            lambda p, o: None if p is None else o[i], params, out, is_leaf=v.is_none
        )
        return pick(0), FtrlState(
            count=optax.safe_increment(state.count), accumulator=pick(1), linear=pick(2)
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
