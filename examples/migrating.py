"""Migrating to l1optax: the three L1 recipes people use today, next to their l1optax equivalents.

1. NumPy: a function summing |w| over a list of arrays (the recipe in SEED.md; its weights give 0.075).
2. Keras: ``Dense(64, kernel_regularizer=regularizers.l1(0.01))``: only that layer's kernel is
   penalised (TensorFlow is not needed: the Keras value is computed from its formula in NumPy).
3. PyTorch: ``loss += lam * sum(torch.norm(p, 1) for p in model.parameters())``: every parameter,
   biases included (uses torch if it is installed, and skips politely if not).

Each recipe prints the value it gives next to the value l1optax gives on the same weights, then
shows the training-time equivalent (``with_l1`` subgradient = the penalty in the loss; ``prox_adam``
or ``with_l1(inject_hyperparams(adam)(...))`` for exact zeros in Adam's metric).

Run: ``python examples/migrating.py`` (about 5 seconds; ``--quick`` is accepted and changes nothing).
"""

from __future__ import annotations

import argparse
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

import l1optax

# --- 1. the NumPy recipe, verbatim from SEED.md ---------------------------------------------


def l1_regularization(weights, lambda_reg=0.01):
    """Compute L1 regularization term (SEED.md's NumPy recipe)."""
    l1_term = 0
    if isinstance(weights, list):
        for w in weights:
            l1_term += np.sum(np.abs(w))
    else:
        l1_term = np.sum(np.abs(weights))
    return lambda_reg * l1_term


SEED_WEIGHTS = [np.array([[1.0, -2.0], [0.5, 0.0]]), np.array([-1.0, 3.0])]


def numpy_recipe() -> tuple[float, float]:
    seed_value = float(l1_regularization(SEED_WEIGHTS, lambda_reg=0.01))
    ours = float(l1optax.l1_penalty([jnp.asarray(w) for w in SEED_WEIGHTS], 0.01))
    _section("1. NumPy: lambda_reg * sum(np.abs(w) for w in weights)")
    _code(
        """
        # before                                    # l1optax
        l1_regularization(weights, lambda_reg=0.01)  l1optax.l1_penalty(weights, 0.01)
        """
    )
    print(f"  numpy recipe   : {seed_value:.6g}")
    print(f"  l1optax        : {ours:.6g}")
    return seed_value, ours


# --- 2. Keras kernel_regularizer -----------------------------------------------------------


class SeedNet(nnx.Module):
    """The Keras/PyTorch model of SEED.md: Dense(10 -> 64, relu) then Dense(64 -> 3)."""

    def __init__(self, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(10, 64, rngs=rngs), nnx.Linear(64, 3, rngs=rngs)])

    def __call__(self, x):
        return self.layers[1](jax.nn.relu(self.layers[0](x)))


def keras_recipe(model: SeedNet) -> tuple[float, float, float, float]:
    params = nnx.state(model, nnx.Param)
    k0 = np.asarray(model.layers[0].kernel[...], np.float64)
    k1 = np.asarray(model.layers[1].kernel[...], np.float64)
    # Keras: kernel_regularizer=l1(0.01) on the first Dense only -> 0.01 * sum(|kernel_0|).
    keras_first = 0.01 * np.abs(k0).sum()
    first_only = l1optax.select(params, names="kernel", paths="layers/0")
    ours_first = float(l1optax.l1_penalty(params, 0.01, mask=first_only))
    # Keras with kernel_regularizer=l1(0.01) on every layer -> kernels only, never biases.
    keras_all = 0.01 * (np.abs(k0).sum() + np.abs(k1).sum())
    ours_all = float(l1optax.l1_penalty(params, 0.01, mask=l1optax.keras_kernel_mask))
    _section("2. Keras: Dense(64, kernel_regularizer=regularizers.l1(0.01))")
    _code(
        """
        # before (Keras)                               # l1optax (Flax NNX or Linen)
        Dense(64, kernel_regularizer=l1(0.01)),        params = nnx.state(model, nnx.Param)
        Dense(3)                                       mask = l1optax.select(params, names="kernel",
                                                                             paths="layers/0")
        # the loss includes 0.01 * sum|kernel_0|       l1optax.l1_penalty(params, 0.01, mask=mask)
        # ...on every layer's kernel:                  mask = l1optax.keras_kernel_mask
        # per layer: l1(1e-3) here, l1(1e-4) there     l1optax.per_layer_l1reg(params,
                                                           {"layers/0": 1e-3, "layers/1": 1e-4},
                                                           mask=l1optax.keras_kernel_mask)
        """
    )
    print(f"  Keras formula, first layer : {keras_first:.6g}   l1optax: {ours_first:.6g}")
    print(f"  Keras formula, every layer : {keras_all:.6g}   l1optax: {ours_all:.6g}")
    return keras_first, ours_first, keras_all, ours_all


# --- 3. PyTorch: lam * sum(torch.norm(p, 1)) in the loss ------------------------------------


def torch_recipe(model: SeedNet, lam: float = 0.01) -> tuple[float | None, float, float]:
    params = nnx.state(model, nnx.Param)
    ours = float(l1optax.l1_penalty(params, lam))
    formula = lam * sum(np.abs(np.asarray(p, np.float64)).sum() for p in jax.tree.leaves(params))
    _section("3. PyTorch: loss += lam * sum(torch.norm(p, 1) for p in model.parameters())")
    _code(
        """
        # before (PyTorch)                              # l1optax
        l1 = sum(torch.norm(p, 1) for p in             l1optax.l1_penalty(nnx.state(model, nnx.Param),
                 model.parameters())                                      lam)
        loss += lam * l1; loss.backward()              # or, without touching the loss:
        optimizer.step()                               tx = l1optax.with_l1(optax.adam(lr), lam,
                                                                            method="subgradient")
        """
    )
    try:
        import torch
    except ImportError:
        print(
            "  PyTorch is not installed: skipping the torch value (pip install torch to compare)."
        )
        print(f"  formula in NumPy : {formula:.6g}   l1optax: {ours:.6g}")
        return None, ours, formula
    net = torch.nn.Sequential(torch.nn.Linear(10, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))
    with torch.no_grad():
        for i, layer in enumerate((net[0], net[2])):  # Flax kernels are (in, out): transpose
            layer.weight.copy_(torch.from_numpy(np.asarray(model.layers[i].kernel[...]).T.copy()))
            layer.bias.copy_(torch.from_numpy(np.asarray(model.layers[i].bias[...]).copy()))
        torch_value = float(lam * sum(torch.norm(p, 1) for p in net.parameters()))
    print(f"  PyTorch (torch {torch.__version__}) : {torch_value:.6g}   l1optax: {ours:.6g}")
    print("  (this includes the biases; Keras's kernel_regularizer above does not)")
    return torch_value, ours, formula


def training_equivalents(model: SeedNet, steps: int, progress: bool = True) -> dict[str, float]:
    """The penalty-in-the-loss recipe vs l1optax's transforms on the same data: zeros per method."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(100, 10)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, size=100))
    lam, lr = 0.01, 1e-2

    def data_loss(m):
        return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()

    def penalised_loss(m):  # the PyTorch/Keras recipe: penalty in the loss
        return data_loss(m) + l1optax.l1_penalty(nnx.state(m, nnx.Param), lam)

    recipes = {
        "penalty in the loss + adam": (penalised_loss, optax.adam(lr)),
        "with_l1(adam, subgradient)": (
            data_loss,
            l1optax.with_l1(optax.adam(lr), lam, method="subgradient"),
        ),
        "with_l1(adam, decoupled)": (
            data_loss,
            l1optax.with_l1(optax.adam(lr), lam, method="decoupled", learning_rate=lr),
        ),
        "with_l1(inject_hyperparams(adam))": (
            data_loss,
            l1optax.with_l1(optax.inject_hyperparams(optax.adam)(learning_rate=lr), lam),
        ),
        "prox_adam": (data_loss, l1optax.prox_adam(lr, lam)),
    }
    _section(f"Training {steps} full-batch steps with lam={lam} (random labels, all parameters)")
    zeros = {}
    for name, (loss_fn, tx) in recipes.items():
        m = nnx.clone(model)
        opt = nnx.Optimizer(m, tx, wrt=nnx.Param)

        @nnx.jit
        def step(m, opt, loss_fn=loss_fn):
            opt.update(m, nnx.grad(loss_fn)(m))

        for _ in tqdm(range(steps), desc=name, leave=False, disable=not progress):
            step(m, opt)
        leaves = jax.tree.leaves(nnx.state(m, nnx.Param))
        n = sum(int(leaf.size) for leaf in leaves)
        zeros[name] = sum(int((leaf == 0).sum()) for leaf in leaves) / n
        penalty = float(l1optax.l1_penalty(nnx.state(m, nnx.Param), lam))
        print(
            f"  {name:<28s} exact zeros {100 * zeros[name]:5.1f}%   data loss "
            f"{float(data_loss(m)):.4f}   + penalty {penalty:.4f}"
        )
    return zeros


def _section(title: str) -> None:
    print(f"\n{title}\n" + "-" * len(title))


def _code(text: str) -> None:
    print(textwrap.indent(textwrap.dedent(text).strip("\n"), "  "))


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer training steps (smoke test)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 300)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    steps = args.steps or (50 if args.quick else 300)

    seed_value, ours_seed = numpy_recipe()
    model = SeedNet(nnx.Rngs(0))
    for i, layer in enumerate(model.layers):  # non-zero biases, so "every parameter" differs
        layer.bias[...] = 0.1 * jax.random.normal(jax.random.key(i), layer.bias[...].shape)
    keras_first, ours_first, keras_all, ours_all = keras_recipe(model)
    torch_value, ours_torch, formula = torch_recipe(model)
    zeros = training_equivalents(model, steps, progress=not args.no_progress)
    return {
        "numpy": (seed_value, ours_seed),
        "keras_first_layer": (keras_first, ours_first),
        "keras_every_layer": (keras_all, ours_all),
        "torch": (torch_value, ours_torch, formula),
        "zeros": zeros,
    }


if __name__ == "__main__":
    main()
