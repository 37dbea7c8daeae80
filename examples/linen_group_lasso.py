"""Group lasso on a Flax Linen MLP: remove whole hidden units, then physically drop them.

A 64-128-128-10 Linen MLP on scikit-learn's digits is trained with SGD + momentum followed by
``l1optax.apply_group_l1_prox(lr, lam, axis=-1)`` on the hidden layers' kernels: one group per output
neuron (a column of the Dense kernel, weighted by sqrt(fan-in)), so whole units become exactly 0.
A unit whose incoming column is 0 outputs the constant relu(bias); the script folds that constant
into the next layer's bias, deletes the unit, builds a *smaller* Linen model, and checks that its
accuracy (and logits) equal the masked model's.

Run:  python examples/linen_group_lasso.py            (lam sweep, about a minute on 2 CPU cores)
      python examples/linen_group_lasso.py --quick    (a few seconds: the smoke test)
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

import l1optax

HIDDEN = (128, 128)
LEARNING_RATE = 0.05
MOMENTUM = 0.9
BATCH = 64
LAMS = (0.0, 1e-3, 3e-3, 1e-2, 2e-2)
QUICK_LAMS = (3e-2,)


class MLP(nn.Module):
    features: tuple[int, ...]

    @nn.compact
    def __call__(self, x):
        for width in self.features[:-1]:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.features[-1])(x)


@dataclass
class Result:
    lam: float
    accuracy: float
    units: tuple[int, ...]  # hidden units kept per layer
    pruned_accuracy: float
    pruned_params: int
    full_params: int
    max_logit_diff: float
    seconds: float


def load_digits_split(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    mean, std = x_tr.mean(0), x_tr.std(0) + 1e-3
    return (x_tr - mean) / std, y_tr.astype(np.int32), (x_te - mean) / std, y_te.astype(np.int32)


def hidden_layers() -> list[str]:
    return [f"Dense_{i}" for i in range(len(HIDDEN))]


def make_tx(params, lam: float) -> optax.GradientTransformation:
    # Group lasso on the hidden layers' kernels only; biases and the output layer are free.
    mask = l1optax.select(params, names="kernel", paths=hidden_layers())
    return optax.chain(
        optax.sgd(LEARNING_RATE, momentum=MOMENTUM),
        l1optax.apply_group_l1_prox(LEARNING_RATE, lam, axis=-1, mask=mask),
    )


def loss_fn(params, apply_fn, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(
        apply_fn({"params": params}, x), y
    ).mean()


@jax.jit
def train_epoch(state, xs, ys):
    def step(state, batch):
        grads = jax.grad(loss_fn)(state.params, state.apply_fn, *batch)
        return state.apply_gradients(grads=grads), None

    return jax.lax.scan(step, state, (xs, ys))[0]


def accuracy(apply_fn, params, x, y) -> float:
    return float((jnp.argmax(apply_fn({"params": params}, x), -1) == y).mean())


def prune(params) -> tuple[dict, tuple[int, ...]]:
    """Deletes hidden units whose incoming kernel column is exactly 0.

    Such a unit outputs relu(bias) whatever the input; that constant times the unit's outgoing
    weights is folded into the next layer's bias, so the smaller network computes the same logits.
    """
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    layers = [dict(params[f"Dense_{i}"]) for i in range(len(HIDDEN) + 1)]
    kept_units = []
    for i in range(len(HIDDEN)):
        kernel, bias = layers[i]["kernel"], layers[i]["bias"]
        keep = ~np.all(kernel == 0, axis=0)
        if not keep.any():  # a layer cannot have width 0: keep one (constant) unit, exactly
            keep[0] = True
        constant = np.maximum(bias[~keep], 0.0)  # relu(bias) of the removed units
        nxt = layers[i + 1]
        nxt["bias"] = nxt["bias"] + constant @ nxt["kernel"][~keep]
        nxt["kernel"] = nxt["kernel"][keep]
        layers[i] = {"kernel": kernel[:, keep], "bias": bias[keep]}
        kept_units.append(int(keep.sum()))
    pruned = {
        f"Dense_{i}": {k: jnp.asarray(a, jnp.float32) for k, a in layer.items()}
        for i, layer in enumerate(layers)
    }
    return pruned, tuple(kept_units)


def run(lam: float, data, epochs: int, seed: int, progress) -> Result:
    x_tr, y_tr, x_te, y_te = data
    model = MLP((*HIDDEN, 10))
    params = model.init(jax.random.key(seed), x_tr[:1])["params"]
    state = train_state.TrainState.create(
        apply_fn=model.apply, params=params, tx=make_tx(params, lam)
    )
    n_batches = len(x_tr) // BATCH
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(len(x_tr))[: n_batches * BATCH].reshape(n_batches, BATCH)
        state = train_epoch(state, jnp.asarray(x_tr[order]), jnp.asarray(y_tr[order]))
        progress.update(1)
    x_te, y_te = jnp.asarray(x_te), jnp.asarray(y_te)
    acc = accuracy(model.apply, state.params, x_te, y_te)
    pruned_params, units = prune(state.params)
    small = MLP((*units, 10))  # a physically smaller Linen model
    pruned_acc = accuracy(small.apply, pruned_params, x_te, y_te)
    diff = float(
        jnp.max(
            jnp.abs(
                model.apply({"params": state.params}, x_te)
                - small.apply({"params": pruned_params}, x_te)
            )
        )
    )
    count = lambda p: sum(int(a.size) for a in jax.tree.leaves(p))  # noqa: E731
    return Result(
        lam,
        acc,
        units,
        pruned_acc,
        count(pruned_params),
        count(state.params),
        diff,
        time.perf_counter() - start,
    )


def print_table(results: list[Result]) -> None:
    print(
        f"\n{'lam':>7s} {'test acc':>9s} {'units kept':>12s} {'pruned acc':>11s} "
        f"{'params':>15s} {'max |dlogit|':>12s} {'time':>6s}"
    )
    for r in results:
        units = "/".join(str(u) for u in r.units)
        print(
            f"{r.lam:7.0e} {100 * r.accuracy:8.2f}% {units:>12s} {100 * r.pruned_accuracy:10.2f}% "
            f"{r.pruned_params:>6d} / {r.full_params:<6d} {r.max_logit_diff:12.2e} {r.seconds:5.1f}s"
        )


def plot(results: list[Result], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = [r for r in results if r.lam > 0]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    lams = [r.lam for r in rs]
    for layer in range(len(HIDDEN)):
        ax.plot(
            lams,
            [r.units[layer] for r in rs],
            marker="o",
            label=f"units kept, hidden layer {layer + 1}",
        )
    ax.set_xscale("log")
    ax.set_xlabel("group lasso strength lam")
    ax.set_ylabel(f"hidden units kept (of {HIDDEN[0]})")
    ax2 = ax.twinx()
    ax2.plot(
        lams,
        [100 * r.pruned_accuracy for r in rs],
        color="k",
        ls="--",
        marker="s",
        label="pruned model test accuracy",
    )
    ax2.set_ylabel("test accuracy (%)")
    ax2.set_ylim(80, 100.5)
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="lower left", fontsize=8)
    ax.set_title("Linen MLP on digits: group lasso over output neurons")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(
        description="Group lasso on a Linen MLP: remove whole hidden units and prune them."
    )
    parser.add_argument("--quick", action="store_true", help="tiny run for the test suite")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default 60)")
    parser.add_argument("--lams", type=float, nargs="+", default=None, help="strengths to sweep")
    parser.add_argument("--out", default="out", help="folder for the PNG plot (default out/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    epochs = args.epochs or (3 if args.quick else 60)
    lams = tuple(args.lams) if args.lams else (QUICK_LAMS if args.quick else LAMS)

    from tqdm.auto import tqdm

    data = load_digits_split(args.seed)
    print(
        f"digits: {len(data[0])} train / {len(data[2])} test, Linen MLP {(64, *HIDDEN, 10)}, "
        f"sgd(lr={LEARNING_RATE}, momentum={MOMENTUM}) + apply_group_l1_prox(axis=-1), {epochs} epochs"
    )
    results = []
    with tqdm(total=len(lams) * epochs, disable=args.no_progress, unit="epoch") as bar:
        for lam in lams:
            bar.set_description(f"lam {lam:.0e}")
            results.append(run(lam, data, epochs, args.seed, bar))
    print_table(results)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "linen_group_lasso.png")
    plot(results, path)
    print(f"plot: {path}")
    return results


if __name__ == "__main__":
    main()
