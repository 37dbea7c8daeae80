"""Bad input to the transforms' ``update``: a clear error or the right value, for every entry.

Every transform in the catalog checks ``(updates, params)`` with the same validation
(``_validation.check_update_args``): a structure mismatch names the leaf instead of a raw JAX
error or a silently dropped update, and Python-number leaves behave like 0-d arrays.
"""

import functools

import _catalog
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import l1optax


def _entry_ids(entries):
    return [pytest.param(e, id=e.name) for e in entries]


# In a chain such as "adam+apply_l1_prox" optax's own transform sees bad trees first.
# optax.scale_by_schedule itself fails on a Python-float leaf ("'float' has no attribute dtype").
NUMBER_LEAVES = _entry_ids([e for e in _catalog.UNWRAPPED if e.name != "sgd_sched+l1_prox_sched"])
OURS_FIRST = _entry_ids([e for e in _catalog.UNWRAPPED if "+" not in e.name])


def _init_and_update(tx, grads, params):
    return tx.update(grads, tx.init(params), params)


@pytest.mark.parametrize("entry", OURS_FIRST)
def test_a_gradient_missing_a_key_is_an_error_naming_the_keys(entry):
    tx = entry.build()
    params = _catalog.make_params()
    state = tx.init(params)
    grads = _catalog.make_grads(params, 0)
    grads["extra"] = grads.pop("scale")
    with pytest.raises(ValueError, match=r"missing \['scale'\]; extra \['extra'\]"):
        tx.update(grads, state, params)


@pytest.mark.parametrize("entry", OURS_FIRST)
@pytest.mark.parametrize("side", ["updates", "params"])
def test_a_none_against_an_array_is_an_error_naming_the_leaf(entry, side):
    tx = entry.build()
    params = _catalog.make_params()
    state = tx.init(params)
    grads = _catalog.make_grads(params, 0)
    if side == "updates":
        grads["dense"]["b"] = None
    else:
        params = {**params, "dense": {**params["dense"], "b": None}}
    with pytest.raises(
        ValueError, match=rf"None at the same leaves; at \['dense'\]\['b'\] .*{side} has None"
    ):
        tx.update(grads, state, params)


@pytest.mark.parametrize("entry", NUMBER_LEAVES)
def test_python_number_leaves_behave_like_0d_arrays(entry):
    tx = entry.build()
    params = _catalog.make_params()
    grads = _catalog.make_grads(params, 0)
    as_floats = {**params, "scale": float(params["scale"])}
    grads_floats = {**grads, "scale": float(grads["scale"])}
    expected, _ = _init_and_update(tx, grads, params)
    got, _ = _init_and_update(tx, grads_floats, as_floats)
    # optax's own transforms compute a Python-float leaf in float64 (a masked-out leaf): to 1e-6.
    np.testing.assert_allclose(np.asarray(got["scale"]), np.asarray(expected["scale"]), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(got["dense"]["w"]), np.asarray(expected["dense"]["w"]))


PARAMS = {"dense": {"kernel": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "bias": jnp.ones(3)}}


def _one_step(tx):
    updates, _ = tx.update(PARAMS, tx.init(PARAMS), PARAMS)
    return optax.apply_updates(PARAMS, updates)


@pytest.mark.parametrize(
    "mask", [l1optax.keras_kernel_mask, functools.partial(l1optax.select, names="kernel")]
)
@pytest.mark.parametrize("factory", [l1optax.apply_l1_prox, l1optax.prox_adam])
def test_a_callable_mask_under_inject_hyperparams_names_static_args(factory, mask):
    injected = optax.inject_hyperparams(factory)(learning_rate=0.1, l1reg=0.5, mask=mask)
    with pytest.raises(TypeError, match=r'static_args=\("mask",\)'):
        _one_step(injected)
    fixed = optax.inject_hyperparams(factory, static_args=("mask",))
    got = _one_step(fixed(learning_rate=0.1, l1reg=0.5, mask=mask))
    expected = _one_step(factory(learning_rate=0.1, l1reg=0.5, mask=mask))
    # inject_hyperparams holds b1/b2/eps as float32 arrays where the plain optimizer has floats
    # (optax.adam and its injected version differ by 7e-7 after one step of 0.1).
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=0, atol=2e-6), got, expected)


def test_inject_hyperparams_of_the_group_transform_names_static_args_for_axis():
    injected = optax.inject_hyperparams(l1optax.apply_group_l1_prox)
    with pytest.raises(TypeError, match=r'apply_group_l1_prox, static_args=\("axis",\)'):
        _one_step(injected(learning_rate=0.1, l1reg=0.5, axis=0))
    fixed = optax.inject_hyperparams(l1optax.apply_group_l1_prox, static_args=("axis",))
    got = _one_step(optax.chain(optax.sgd(0.1), fixed(learning_rate=0.1, l1reg=0.5, axis=0)))
    plain = l1optax.apply_group_l1_prox(learning_rate=0.1, l1reg=0.5, axis=0)
    expected = _one_step(optax.chain(optax.sgd(0.1), plain))
    jax.tree.map(np.testing.assert_array_equal, got, expected)


def test_a_callable_prox_under_inject_hyperparams_names_static_args():
    prox = functools.partial(l1optax.prox_group_l1, axis=0)
    injected = optax.inject_hyperparams(l1optax.prox_adam)(learning_rate=0.1, l1reg=0.5, prox=prox)
    with pytest.raises(TypeError, match=r"looks like a step count.*static_args"):
        _one_step(injected)
    fixed = optax.inject_hyperparams(l1optax.prox_adam, static_args=("prox",))
    got = _one_step(fixed(learning_rate=0.1, l1reg=0.5, prox=prox))
    expected = _one_step(l1optax.prox_adam(0.1, 0.5, prox=prox))
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=0, atol=2e-6), got, expected)
