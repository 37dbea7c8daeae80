"""Flax NNX: nnx.Optimizer(model, tx, wrt=nnx.Param) with every L1 transform, under nnx.jit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import l1optax

N_IN, N_HIDDEN, N_OUT, N_INFORMATIVE = 20, 16, 3, 4


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, param_dtype=jnp.float32):
        self.hidden = nnx.Linear(N_IN, N_HIDDEN, rngs=rngs, param_dtype=param_dtype)
        self.norm = nnx.LayerNorm(N_HIDDEN, rngs=rngs, param_dtype=param_dtype)
        self.out = nnx.Linear(N_HIDDEN, N_OUT, rngs=rngs, param_dtype=param_dtype)

    def __call__(self, x):
        return self.out(jax.nn.relu(self.norm(self.hidden(x))))


def _data():
    """Classification that depends on the first 4 of 20 features only."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, N_IN)).astype(np.float32)
    w = np.zeros((N_IN, N_OUT), np.float32)
    w[:N_INFORMATIVE] = rng.normal(size=(N_INFORMATIVE, N_OUT))
    y = np.argmax(x @ w, axis=1)
    return jnp.asarray(x), jnp.asarray(y)


def loss_fn(model, x, y):
    logits = model(x).astype(jnp.float32)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@nnx.jit
def train_step(model, optimizer, x, y):
    loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
    optimizer.update(model, grads)
    return loss


def _kernels(model) -> list[np.ndarray]:
    return [np.asarray(model.hidden.kernel[...]), np.asarray(model.out.kernel[...])]


def _transforms():
    lr = 1e-2
    out = {
        "sgd+apply_l1_prox": (
            optax.chain(
                optax.sgd(0.3), l1optax.apply_l1_prox(0.3, 1e-2, mask=l1optax.keras_kernel_mask)
            ),
            True,
        ),
        "inject(adam)+with_l1(proximal)": (
            l1optax.with_l1(
                optax.inject_hyperparams(optax.adam)(learning_rate=lr),
                3e-2,
                mask=l1optax.keras_kernel_mask,
            ),
            True,
        ),
        "adam+with_l1(subgradient)": (
            l1optax.with_l1(
                optax.adam(lr), 3e-2, method="subgradient", mask=l1optax.keras_kernel_mask
            ),
            False,
        ),
        "adam+add_l1_subgradient": (
            optax.chain(
                l1optax.add_l1_subgradient(3e-2, mask=l1optax.keras_kernel_mask), optax.adam(lr)
            ),
            False,
        ),
        "prox_adam": (l1optax.prox_adam(lr, 3e-2, mask=l1optax.keras_kernel_mask), True),
    }
    return out


TRANSFORMS = _transforms()


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_nnx_training_reduces_loss_and_zeros(name):
    tx, exact_zeros = TRANSFORMS[name]
    x, y = _data()
    model = MLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    first = float(loss_fn(model, x, y))
    for _ in range(150):
        train_step(model, optimizer, x, y)
    last = float(loss_fn(model, x, y))
    assert last < 0.6 * first, (first, last)
    n_zero = sum(int((k == 0).sum()) for k in _kernels(model))
    if exact_zeros:
        # Many first-layer weights become exactly 0; the 4 informative inputs keep the weight.
        hidden = _kernels(model)[0]
        assert (hidden == 0).mean() > 0.2, (hidden == 0).mean()
        assert np.abs(hidden[:N_INFORMATIVE]).mean() > np.abs(hidden[N_INFORMATIVE:]).mean()
    else:
        assert n_zero == 0
    # The Keras mask kept biases and norm parameters out of the penalty: none is exactly 0
    # apart from where the unpenalised optimizer would also leave it (LayerNorm bias starts 0).
    assert np.all(np.asarray(model.norm.scale[...]) != 0)
    assert np.count_nonzero(np.asarray(model.out.bias[...])) == N_OUT


@pytest.mark.parametrize("mask_kind", ["callable", "tree"])
def test_nnx_sgd_prox_step_equals_numpy_soft_threshold(mask_kind):
    """One nnx.Optimizer step = S_{eta lam}(p - eta g) on kernels, p - eta g elsewhere (float64)."""
    x, y = _data()
    model = MLP(nnx.Rngs(1))
    eta, lam = 0.5, 0.05
    mask = l1optax.keras_kernel_mask
    if mask_kind == "tree":  # a mask built on nnx.state (Param nodes) fits the pure arrays too
        mask = l1optax.keras_kernel_mask(nnx.state(model, nnx.Param))
    tx = l1optax.with_l1(optax.sgd(eta), lam, learning_rate=eta, mask=mask)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    before = {
        p: np.asarray(v.get_value(), np.float64)
        for p, v in nnx.state(model, nnx.Param).flat_state()
    }
    grads = nnx.jit(nnx.grad(loss_fn))(model, x, y)
    g = {
        p: np.asarray(v.get_value(), np.float64)
        for p, v in nnx.state(grads, nnx.Param).flat_state()
    }
    nnx.jit(lambda m, o, gr: o.update(m, gr))(model, optimizer, grads)
    after = {
        p: np.asarray(v.get_value(), np.float64)
        for p, v in nnx.state(model, nnx.Param).flat_state()
    }
    n_zero = 0
    for path, p in before.items():
        z = p - eta * g[path]
        if path[-1] == "kernel":
            ref = np.sign(z) * np.maximum(np.abs(z) - eta * lam, 0)
            assert np.array_equal(after[path] == 0, ref == 0), path
            n_zero += int((ref == 0).sum())
        else:
            ref = z
        np.testing.assert_allclose(after[path], ref, rtol=1e-5, atol=1e-6, err_msg=str(path))
    assert n_zero > 0  # the threshold 0.025 does zero some of the initial weights


def test_penalty_on_nnx_state_equals_numpy():
    model = MLP(nnx.Rngs(2))
    state = nnx.state(model, nnx.Param)
    arrays = {p: np.asarray(v.get_value(), np.float64) for p, v in state.flat_state()}
    lam = 0.01
    ref_all = lam * sum(np.abs(a).sum() for a in arrays.values())
    ref_kernels = lam * sum(np.abs(a).sum() for p, a in arrays.items() if p[-1] == "kernel")
    np.testing.assert_allclose(float(l1optax.l1_penalty(state, lam)), ref_all, rtol=1e-6)
    np.testing.assert_allclose(
        float(l1optax.l1_penalty(state, lam, mask=l1optax.keras_kernel_mask)),
        ref_kernels,
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        float(jax.jit(lambda s: l1optax.l1_penalty(s, lam, mask=l1optax.keras_kernel_mask))(state)),
        ref_kernels,
        rtol=1e-6,
    )


def test_penalty_in_loss_recipe_gradient():
    """nnx.grad of loss + l1_penalty(kernels) = data grad + lam*sign(kernel), data grad elsewhere."""
    x, y = _data()
    model = MLP(nnx.Rngs(3))
    lam = 0.1

    def penalised(m):
        params = nnx.state(m, nnx.Param)
        return loss_fn(m, x, y) + l1optax.l1_penalty(params, lam, mask=l1optax.keras_kernel_mask)

    g_pen = dict(nnx.state(nnx.grad(penalised)(model), nnx.Param).flat_state())
    g_data = dict(nnx.state(nnx.grad(loss_fn)(model, x, y), nnx.Param).flat_state())
    params = dict(nnx.state(model, nnx.Param).flat_state())
    for path, gv in g_pen.items():
        expected = np.asarray(g_data[path].get_value(), np.float64)
        if path[-1] == "kernel":
            expected = expected + lam * np.sign(np.asarray(params[path].get_value(), np.float64))
        np.testing.assert_allclose(np.asarray(gv.get_value()), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("param_dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
def test_nnx_exact_zeros_and_dtypes_kept(param_dtype):
    x, y = _data()
    model = MLP(nnx.Rngs(4), param_dtype=param_dtype)
    tx = l1optax.with_l1(optax.sgd(0.3), 3e-2, learning_rate=0.3, mask=l1optax.keras_kernel_mask)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    state_before = jax.tree.map(lambda a: (a.dtype, a.shape), nnx.state(optimizer, nnx.OptState))
    for _ in range(40):
        train_step(model, optimizer, x, y)
    state_after = jax.tree.map(lambda a: (a.dtype, a.shape), nnx.state(optimizer, nnx.OptState))
    assert state_before == state_after
    for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)):
        assert leaf.dtype == param_dtype
    assert (np.asarray(model.hidden.kernel[...], np.float32) == 0).sum() > 0


def test_per_layer_strengths_with_nnx_optimizer():
    """Per-layer strengths: only the layer given a strength gets exact zeros."""
    x, y = _data()
    model = MLP(nnx.Rngs(5))
    lam = l1optax.per_layer_l1reg(
        nnx.state(model, nnx.Param), {"hidden": 3e-2}, mask=l1optax.keras_kernel_mask
    )
    tx = l1optax.with_l1(optax.sgd(0.3), lam, learning_rate=0.3)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    for _ in range(100):
        train_step(model, optimizer, x, y)
    hidden, out = _kernels(model)
    assert (hidden == 0).mean() > 0.3
    assert (out == 0).sum() == 0
