"""Issue 11 for ftrl and the shared flag / range checks: one rule for bools, ranges and strings."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import l1optax
from l1optax import _validation as v

# --- check_bool -----------------------------------------------------------------------------------


@pytest.mark.parametrize("ok", [True, False, np.bool_(True), np.bool_(False)])
def test_check_bool_accepts_python_and_numpy_bools(ok):
    v.check_bool(ok, fn="f", arg="flag")


@pytest.mark.parametrize("bad", ["no", "", 0, 1, 1.0, None, np.array([True]), jnp.array(True)])
def test_check_bool_rejects_everything_else(bad):
    with pytest.raises(
        TypeError, match=r"`f\(flag=\.\.\.\)` must be a bool \(True or False\), got"
    ):
        v.check_bool(bad, fn="f", arg="flag")


# --- check_in_range -------------------------------------------------------------------------------


def test_check_in_range_accepts_the_range_and_tracers():
    v.check_in_range(0.0, fn="f", arg="b1", low=0.0, high=1.0, closed=False)
    v.check_in_range(np.float32(0.999), fn="f", arg="b1", low=0.0, high=1.0, closed=False)
    v.check_in_range(np.array([0.1, 0.9]), fn="f", arg="b1", low=0.0, high=1.0, closed=False)
    v.check_in_range(1.0, fn="f", arg="b1", low=0.0, high=1.0, closed=True)
    v.check_in_range(3, fn="f", arg="n", low=0.0, high=10.0, closed=True)
    jax.jit(lambda b: v.check_in_range(b, fn="f", arg="b1", low=0.0, high=1.0, closed=False) or b)(
        2.0
    )


@pytest.mark.parametrize(
    "bad, closed, shown",
    [
        (1.0, False, r"must be in \[0\.0, 1\.0\), got 1\.0"),
        (1.5, True, r"must be in \[0\.0, 1\.0\], got 1\.5"),
        (-0.1, False, r"got -0\.1"),
        (float("nan"), False, r"got nan"),
        (np.array([0.1, -0.1]), False, r"got an array containing -0\.1 \(at index \(1,\)"),
        ([0.5, 2.0], False, r"containing 2\.0 \(at index \(1,\)"),
    ],
)
def test_check_in_range_reports_the_offending_element(bad, closed, shown):
    with pytest.raises(ValueError, match=r"`f\(b1=\.\.\.\)` .*" + shown):
        v.check_in_range(bad, fn="f", arg="b1", low=0.0, high=1.0, closed=closed)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "0.9",
        {"w": 0.9},
        [None],
        ["a"],
        0.9 + 0j,
        np.array([0.9 + 0j]),
        True,
        np.bool_(False),
        lambda c: 0.9,
    ],
    ids=[
        "none",
        "str",
        "dict",
        "list-none",
        "list-str",
        "complex",
        "complex-array",
        "bool",
        "np-bool",
        "callable",
    ],
)
def test_check_in_range_rejects_non_numbers_with_a_type_error(bad):
    with pytest.raises(TypeError, match=r"`f\(b1=\.\.\.\)` must be a real number"):
        v.check_in_range(bad, fn="f", arg="b1", low=0.0, high=1.0, closed=False)


def test_check_in_range_hints_at_low_precision_decay():
    with pytest.raises(ValueError, match=r"hyperparam_dtype=jnp\.float32"):
        v.check_in_range(
            jnp.asarray(0.999, jnp.bfloat16), fn="f", arg="b2", low=0.0, high=1.0, closed=False
        )


# --- ftrl construction ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["no", 1, None])
def test_ftrl_l1reg_per_step_must_be_a_bool(bad):
    with pytest.raises(TypeError, match=r"`ftrl\(l1reg_per_step=\.\.\.\)` must be a bool"):
        l1optax.ftrl(0.1, l1reg_per_step=bad)


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        (
            {"learning_rate_power": "-0.5"},
            TypeError,
            r"`ftrl\(learning_rate_power=\.\.\.\)` must be a real number",
        ),
        ({"learning_rate_power": [0.1]}, ValueError, r"`ftrl\(learning_rate_power=\.\.\.\)`"),
        ({"learning_rate_power": -0.5 + 0j}, TypeError, r"`ftrl\(learning_rate_power=\.\.\.\)`"),
        (
            {"learning_rate_power": 0.5},
            ValueError,
            r"`ftrl\(learning_rate_power=\.\.\.\)` must be in \[-inf, 0\.0\], got 0\.5",
        ),
        ({"beta": {"w": 0.1}}, ValueError, r"`ftrl\(beta=\.\.\.\)` must be a scalar"),
        ({"beta": "0.1"}, TypeError, r"`ftrl\(beta=\.\.\.\)`"),
        (
            {"l2_shrinkage": np.array([0.1, 0.2])},
            ValueError,
            r"`ftrl\(l2_shrinkage=\.\.\.\)` must be a scalar",
        ),
        (
            {"initial_accumulator_value": [0.1]},
            ValueError,
            r"`ftrl\(initial_accumulator_value=\.\.\.\)`",
        ),
    ],
    ids=[
        "power-str",
        "power-list",
        "power-complex",
        "power-positive",
        "beta-dict",
        "beta-str",
        "shrink-array",
        "accum-list",
    ],
)
def test_ftrl_numeric_hyperparameters_are_checked_at_construction(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        l1optax.ftrl(0.1, **kwargs)


@pytest.mark.parametrize("lr", [0.0, 0, -0.1, np.float32(0.0)])
def test_ftrl_learning_rate_must_be_positive(lr):
    with pytest.raises(
        ValueError, match=r"`ftrl\(learning_rate=\.\.\.\)` must be (positive|non-negative)"
    ):
        l1optax.ftrl(lr)


def _ftrl_step_injected(**hyper):
    tx = optax.inject_hyperparams(l1optax.ftrl, static_args=("l1reg_per_step",))(
        learning_rate=0.1, l1reg=0.01
    )
    params = jnp.array([1.0, -2.0])
    state = tx.init(params)
    for name, value in hyper.items():
        state.hyperparams[name] = jnp.asarray(value, jnp.float32)
    updates, _ = jax.jit(tx.update)(jnp.array([0.5, 0.5]), state, params)
    return updates


@pytest.mark.parametrize(
    "hyper",
    [
        {"learning_rate": -0.1},
        {"learning_rate": 0.0},
        {"beta": -1.0},
        {"learning_rate_power": 0.5},
        {"l2_shrinkage": -0.1},
        {"l1reg": -0.1},
        {"l2reg": -0.1},
    ],
    ids=lambda h: next(iter(h)),
)
def test_ftrl_injected_out_of_range_hyperparameters_give_nan(hyper):
    assert np.all(np.isnan(np.asarray(_ftrl_step_injected(**hyper))))


def test_ftrl_injected_in_range_hyperparameters_match_the_plain_one():
    tx = l1optax.ftrl(0.1, l1reg=0.01, beta=0.5, learning_rate_power=-0.7)
    params = jnp.array([1.0, -2.0])
    want, _ = tx.update(jnp.array([0.5, 0.5]), tx.init(params), params)
    got = _ftrl_step_injected(beta=0.5, learning_rate_power=-0.7)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_ftrl_traced_negative_learning_rate_gives_nan():
    def step(lr):
        tx = l1optax.ftrl(lr, l1reg=0.01)
        p = jnp.ones(2)
        return tx.update(jnp.ones(2), tx.init(p), p)[0]

    assert np.all(np.isnan(jax.jit(step)(-0.1)))
    assert np.all(np.isfinite(jax.jit(step)(0.1)))
    sched = lambda count: -0.1 + 0.0 * count  # noqa: E731
    tx = l1optax.ftrl(sched)
    p = jnp.ones(2)
    assert np.all(np.isnan(tx.update(jnp.ones(2), tx.init(p), p)[0]))
