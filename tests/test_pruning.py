"""Structured pruning of NNX / Linen stacks (same outputs, fewer units) and the BCOO export."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import l1optax


def flatten(x):
    return x.reshape(x.shape[0], -1)


def zero_units(kernel, units, *, incoming=True):
    """Zeroes the incoming weights (last axis) or outgoing rows (axis -2) of some units."""
    k = kernel[...]
    return k.at[..., units].set(0.0) if incoming else k.at[..., units, :].set(0.0)


def nnx_mlp(dtype=jnp.float32):
    rngs = nnx.Rngs(0)
    return nnx.Sequential(
        nnx.Linear(6, 10, rngs=rngs, param_dtype=dtype),
        jax.nn.relu,
        nnx.Linear(10, 8, rngs=rngs, param_dtype=dtype),
        jnp.tanh,
        nnx.Linear(8, 3, rngs=rngs, param_dtype=dtype),
    )


def test_nnx_mlp_pruned_has_fewer_units_and_the_same_outputs_float64(x64):
    model = nnx_mlp(jnp.float64)
    first, second = model.layers[0], model.layers[2]
    first.bias[...] = jnp.linspace(-1.0, 1.0, 10)  # zero-input units output relu(b): 0 or > 0
    first.kernel[...] = zero_units(first.kernel, [0, 3, 8])  # b < 0, b < 0, b > 0
    second.kernel[...] = zero_units(second.kernel, [5], incoming=False)  # unit 5 feeds nothing
    second.bias[...] = jnp.full(8, 0.3)
    second.kernel[...] = zero_units(second.kernel, [1, 6])  # tanh(0.3) != 0: folded
    x = jax.random.normal(jax.random.PRNGKey(1), (16, 6), jnp.float64)
    pruned = l1optax.prune_units(model, example_input=x)
    assert pruned.layers[0].kernel.shape == (6, 6)  # 0, 3, 5, 8 removed
    assert pruned.layers[2].kernel.shape == (6, 6)  # 1, 6 removed
    assert pruned.layers[4].kernel.shape == (6, 3)
    assert pruned.layers[2].in_features == 6 and pruned.layers[0].out_features == 6
    np.testing.assert_allclose(np.asarray(pruned(x)), np.asarray(model(x)), rtol=0, atol=1e-12)
    assert model.layers[0].kernel.shape == (6, 10)  # the original is untouched


def test_nnx_cnn_channels_removed_folded_through_flatten_float32():
    rngs = nnx.Rngs(0)
    model = nnx.Sequential(
        nnx.Conv(1, 6, (3, 3), rngs=rngs),
        jax.nn.relu,
        nnx.Conv(6, 5, (3, 3), rngs=rngs),
        jax.nn.relu,
        flatten,
        nnx.Linear(4 * 4 * 5, 3, rngs=rngs),
    )
    c0, c1 = model.layers[0], model.layers[2]
    c0.bias[...] = jnp.asarray([-0.5, 0.2, -0.1, 0.4, 0.0, 0.1])
    # channel 0 (relu(b) = 0): removable; channel 3 (relu(b) > 0 into a SAME conv): kept
    c0.kernel[...] = zero_units(c0.kernel, [0, 3])
    c1.bias[...] = jnp.full(5, 0.25)
    c1.kernel[...] = zero_units(c1.kernel, [2, 4])  # constant 0.25 folded into the Linear bias
    x = jax.random.normal(jax.random.PRNGKey(2), (8, 4, 4, 1))
    pruned = l1optax.prune_units(model, example_input=x)
    assert pruned.layers[0].kernel.shape == (3, 3, 1, 5)
    assert pruned.layers[2].kernel.shape == (3, 3, 5, 3)
    assert pruned.layers[5].kernel.shape == (4 * 4 * 3, 3)
    y0, y1 = np.asarray(model(x)), np.asarray(pruned(x))
    assert np.max(np.abs(y0 - y1)) <= 1e-6 * max(1.0, np.max(np.abs(y0)))


def test_group_lasso_trained_units_are_removed_with_identical_predictions(rng):
    model = nnx_mlp()
    x = jnp.asarray(rng.normal(size=(64, 6)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, size=64))
    tx = optax.chain(
        optax.sgd(0.1),
        l1optax.apply_group_l1_prox(0.1, 0.3, axis=-1, mask=l1optax.keras_kernel_mask),
    )
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        def loss(m):
            return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()

        optimizer.update(model, nnx.grad(loss)(model))

    for _ in range(30):
        step(model, optimizer)
    dead = int(jnp.sum(jnp.all(model.layers[0].kernel[...] == 0, axis=0)))
    assert dead > 0
    pruned = l1optax.prune_units(model, example_input=x)
    assert pruned.layers[0].kernel.shape[1] <= 10 - dead
    np.testing.assert_array_equal(
        np.argmax(np.asarray(pruned(x)), -1), np.argmax(np.asarray(model(x)), -1)
    )
    assert np.max(np.abs(np.asarray(pruned(x)) - np.asarray(model(x)))) <= 1e-6


def test_linen_dense_and_conv_stacks_pruned_with_the_same_outputs():
    module = nn.Sequential(
        [nn.Conv(4, (3, 3)), nn.relu, flatten, nn.Dense(7), nn.relu, nn.Dense(2)]
    )
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 3, 3, 1))
    params = module.init(jax.random.PRNGKey(1), x)
    inner = params["params"]
    inner["layers_0"]["bias"] = jnp.asarray([0.3, -0.2, 0.0, 0.5])
    inner["layers_0"]["kernel"] = inner["layers_0"]["kernel"].at[..., [0, 1]].set(0.0)
    inner["layers_3"]["bias"] = jnp.linspace(-1, 1, 7)
    inner["layers_3"]["kernel"] = inner["layers_3"]["kernel"].at[:, [2, 6]].set(0.0)
    small, small_params = l1optax.prune_units_linen(module, params, example_input=x)
    sp = small_params["params"]
    assert sp["layers_0"]["kernel"].shape == (3, 3, 1, 2)  # channels 0 (folded) and 1 go
    assert sp["layers_3"]["kernel"].shape == (9 * 2, 5)
    assert sp["layers_5"]["kernel"].shape == (5, 2)
    assert small.layers[0].features == 2 and small.layers[3].features == 5
    y0 = np.asarray(module.apply(params, x))
    y1 = np.asarray(small.apply(small_params, x))
    assert np.max(np.abs(y0 - y1)) <= 1e-6 * max(1.0, np.max(np.abs(y0)))


def test_non_elementwise_function_between_layers_is_caught_on_the_example():
    model = nnx_mlp()
    model.layers[0].kernel[...] = zero_units(model.layers[0].kernel, [0, 1])
    model.layers[0].bias[...] = jnp.ones(10)
    model.layers[1] = lambda h: jnp.roll(jax.nn.relu(h), 1, axis=-1)  # mixes units
    with pytest.raises(ValueError, match=r"prune_units.*differ"):
        l1optax.prune_units(model, example_input=jnp.ones((2, 6)))


def test_unsupported_models_are_rejected():
    with pytest.raises(TypeError, match="prune_units"):
        l1optax.prune_units(nnx.Linear(2, 2, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="BatchNorm"):
        l1optax.prune_units(
            nnx.Sequential(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), nnx.BatchNorm(2, rngs=nnx.Rngs(0)))
        )


def test_to_bcoo_keeps_exact_nonzeros_and_products(rng):
    w = rng.normal(size=(30, 20)).astype(np.float32)
    w[np.abs(w) < 1.5] = 0.0
    params = {"dense": {"kernel": jnp.asarray(w), "bias": jnp.ones(20)}, "emb": jnp.ones((4, 2))}
    sparse = l1optax.to_bcoo(params, mask={"dense": True, "emb": False})
    kernel = sparse["dense"]["kernel"]
    assert int(kernel.nse) == np.count_nonzero(w)
    np.testing.assert_array_equal(np.asarray(kernel.todense()), w)
    assert isinstance(sparse["emb"], jax.Array) and isinstance(sparse["dense"]["bias"], jax.Array)
    x = jnp.asarray(rng.normal(size=(5, 30)), jnp.float32)
    np.testing.assert_allclose(
        np.asarray(jax.jit(lambda a: a @ kernel)(x)), np.asarray(x @ w), rtol=1e-5, atol=1e-5
    )
