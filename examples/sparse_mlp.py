"""Sparse Flax NNX MLP on scikit-learn's digits: how many weights can be exactly zero?

Trains a 64-256-256-10 MLP on the 8x8 digits bundled with scikit-learn (1797 images, 10 classes,
fixed 75/25 split) with:

* ``adam``                       - no L1 (the reference accuracy);
* ``adam + subgradient``         - ``with_l1(adam, lam, method="subgradient")``, the penalty-in-the-loss
                                   recipe of Keras and PyTorch;
* ``adam + uniform prox``        - ``with_l1(adam, lam, method="decoupled")``: soft threshold lr*lam
                                   after Adam's step (a sqrt(v_hat)-weighted lasso);
* ``prox_adam``                  - ``l1optax.prox_adam``: the threshold lr*lam/(sqrt(v_hat)+eps) in
                                   Adam's own metric, so it solves the lasso it claims to.

Only the kernels are penalised (``mask=l1optax.keras_kernel_mask``: Keras's kernel_regularizer on
every layer). For each method and each strength lam it prints the test accuracy and the percentage
of kernel weights that are exactly 0.0, and saves an accuracy-vs-sparsity plot.

Run:  python examples/sparse_mlp.py              (full sweep, under 3 minutes on a 2-core CPU)
      python examples/sparse_mlp.py --quick      (a few seconds: the smoke test)
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import l1optax

HIDDEN = (256, 256)
LEARNING_RATE = 2e-3
BATCH = 64
METHODS = ("adam", "adam + subgradient", "adam + uniform prox", "prox_adam")
# Strengths swept per method (lam multiplies the mean cross-entropy's sum-of-|kernel| penalty).
LAMS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
QUICK_LAMS = (1e-3,)


class MLP(nnx.Module):
    def __init__(self, sizes: tuple[int, ...], rngs: nnx.Rngs):
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        )

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = jax.nn.relu(layer(x))
        return self.layers[-1](x)


@dataclass
class Result:
    method: str
    lam: float
    accuracy: float
    sparsity: float  # fraction of kernel weights exactly 0
    dead_units: int  # hidden units whose incoming kernel column is entirely 0
    seconds: float


def load_digits_split(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    mean, std = x_tr.mean(0), x_tr.std(0) + 1e-3
    return (x_tr - mean) / std, y_tr.astype(np.int32), (x_te - mean) / std, y_te.astype(np.int32)


def make_tx(method: str, lam: float) -> optax.GradientTransformation:
    mask = l1optax.keras_kernel_mask
    adam = optax.adam(LEARNING_RATE)
    if method == "adam":
        return adam
    if method == "adam + subgradient":
        return l1optax.with_l1(adam, lam, method="subgradient", mask=mask)
    if method == "adam + uniform prox":
        return l1optax.with_l1(
            adam, lam, method="decoupled", learning_rate=LEARNING_RATE, mask=mask
        )
    if method == "prox_adam":
        return l1optax.prox_adam(LEARNING_RATE, lam, mask=mask)
    raise ValueError(f"unknown method {method!r}")


def loss_fn(model, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


@nnx.jit
def train_epoch(model, optimizer, xs, ys):
    """One epoch: a scan over minibatches, inside one compiled call."""

    @nnx.scan(in_axes=(nnx.Carry, 0, 0), out_axes=nnx.Carry)
    def step(carry, x, y):
        model, optimizer = carry
        grads = nnx.grad(loss_fn)(model, x, y)
        optimizer.update(model, grads)
        return model, optimizer

    step((model, optimizer), xs, ys)


@nnx.jit
def accuracy(model, x, y):
    return (jnp.argmax(model(x), -1) == y).mean()


def kernel_stats(model: MLP) -> tuple[float, int]:
    kernels = [np.asarray(layer.kernel[...]) for layer in model.layers]
    zeros = sum(int((k == 0).sum()) for k in kernels)
    total = sum(k.size for k in kernels)
    dead = sum(int(np.all(k == 0, axis=0).sum()) for k in kernels[:-1])
    return zeros / total, dead


def train(method: str, lam: float, data, epochs: int, seed: int, progress) -> Result:
    x_tr, y_tr, x_te, y_te = data
    model = MLP((x_tr.shape[1], *HIDDEN, 10), nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, make_tx(method, lam), wrt=nnx.Param)
    n_batches = len(x_tr) // BATCH
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(len(x_tr))[: n_batches * BATCH].reshape(n_batches, BATCH)
        train_epoch(model, optimizer, jnp.asarray(x_tr[order]), jnp.asarray(y_tr[order]))
        progress.update(1)
    acc = float(accuracy(model, jnp.asarray(x_te), jnp.asarray(y_te)))
    sparsity, dead = kernel_stats(model)
    return Result(method, lam, acc, sparsity, dead, time.perf_counter() - start)


def print_table(results: list[Result]) -> None:
    base = next(r.accuracy for r in results if r.method == "adam")
    print(
        f"\n{'method':<22s} {'lam':>8s} {'test acc':>9s} {'vs adam':>8s} {'zeros':>8s} "
        f"{'dead units':>10s} {'time':>6s}"
    )
    for r in results:
        lam = "-" if r.method == "adam" else f"{r.lam:.0e}"
        print(
            f"{r.method:<22s} {lam:>8s} {100 * r.accuracy:8.2f}% {100 * (r.accuracy - base):+7.2f} "
            f"{100 * r.sparsity:7.2f}% {r.dead_units:>10d} {r.seconds:5.1f}s"
        )


def best_within_one_point(results: list[Result]) -> Result | None:
    base = next(r.accuracy for r in results if r.method == "adam")
    ok = [r for r in results if r.method != "adam" and r.accuracy >= base - 0.01]
    return max(ok, key=lambda r: r.sparsity) if ok else None


def plot(results: list[Result], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = next(r.accuracy for r in results if r.method == "adam")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.axhspan(100 * (base - 0.01), 100 * base, color="0.9", label="within 1 point of adam")
    ax.axhline(100 * base, color="0.4", lw=1, ls="--", label=f"adam, no L1 ({100 * base:.1f}%)")
    markers = {"adam + subgradient": "s", "adam + uniform prox": "^", "prox_adam": "o"}
    for method, marker in markers.items():
        rs = sorted((r for r in results if r.method == method), key=lambda r: r.lam)
        if not rs:
            continue
        # x: the share of kernel weights that are NOT zero, on a log axis (sparser to the right).
        xs = [max(100 * (1 - r.sparsity), 0.05) for r in rs]
        ys = [100 * r.accuracy for r in rs]
        ax.plot(xs, ys, marker=marker, label=method)
        # Label prox_adam's points; the others crowd at 100% non-zero: label their last only.
        labelled = (
            zip(rs, xs, ys, strict=True) if method == "prox_adam" else [(rs[-1], xs[-1], ys[-1])]
        )
        if method != "adam + subgradient":
            for r, x_, y_ in labelled:
                ax.annotate(
                    f"{r.lam:.0e}",
                    (x_, y_),
                    textcoords="offset points",
                    xytext=(3, 5),
                    fontsize=7,
                    color="0.3",
                )
    ax.set_xscale("log")
    ax.set_xlim(130, 0.2)
    ax.set_xticks([100, 30, 10, 3, 1, 0.3])
    ax.set_xticklabels(
        ["100%\n(0% zeros)", "30%", "10%\n(90% zeros)", "3%", "1%\n(99% zeros)", "0.3%"]
    )
    ax.set_xlabel("kernel weights that are non-zero (log scale; sparser to the right)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Flax NNX MLP on digits: accuracy vs exact sparsity (point labels: lam)")
    lo = min(100 * r.accuracy for r in results)
    ax.set_ylim(max(0, min(lo, 100 * base - 2) - 1), 100.5)
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(
        description="Sparse Flax NNX MLP on digits: adam, subgradient, uniform prox, prox_adam."
    )
    parser.add_argument("--quick", action="store_true", help="tiny run for the test suite")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default 60)")
    parser.add_argument("--lams", type=float, nargs="+", default=None, help="L1 strengths to sweep")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(METHODS[1:]),
        choices=METHODS[1:],
        help="L1 methods to run (adam without L1 always runs)",
    )
    parser.add_argument("--out", default="out", help="folder for the PNG plot (default out/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    epochs = args.epochs or (3 if args.quick else 60)
    lams = tuple(args.lams) if args.lams else (QUICK_LAMS if args.quick else LAMS)

    from tqdm.auto import tqdm

    data = load_digits_split(args.seed)
    runs = [("adam", 0.0)] + [(m, lam) for m in args.methods for lam in lams]
    print(
        f"digits: {len(data[0])} train / {len(data[2])} test, MLP {(64, *HIDDEN, 10)}, "
        f"{epochs} epochs of batch {BATCH}, lr {LEARNING_RATE}, {len(runs)} runs"
    )
    results = []
    with tqdm(total=len(runs) * epochs, disable=args.no_progress, unit="epoch") as bar:
        for method, lam in runs:
            bar.set_description(f"{method} {lam:.0e}" if lam else method)
            results.append(train(method, lam, data, epochs, args.seed, bar))
    print_table(results)
    best = best_within_one_point(results)
    if best is None:
        print("\nno L1 setting stayed within 1 point of adam's accuracy")
    else:
        print(
            f"\nsparsest within 1 point of adam: {best.method}, lam={best.lam:.0e}: "
            f"{100 * best.sparsity:.1f}% of kernel weights exactly 0 at "
            f"{100 * best.accuracy:.2f}% test accuracy"
        )
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "sparse_mlp.png")
    plot(results, path)
    print(f"plot: {path}")
    return results


if __name__ == "__main__":
    main()
