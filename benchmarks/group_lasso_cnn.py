"""Structured pruning with Adam: group lasso in Adam's metric vs a uniform group threshold.

A small CNN on scikit-learn's 8x8 digits (conv 3x3x16 - conv 3x3x32 - dense 10). The group
lasso penalises each conv output channel (``axis=-1`` of the kernels). Compared, for a sweep of
strengths ``lam``:

* ``prox_adam(prox=group)``: ``l1optax.prox_adam(lr, lam, prox=partial(prox_group_l1, axis=-1))``,
  the group prox taken in Adam's own metric (the problem the user wrote);
* ``adam + uniform group prox``: ``optax.chain(optax.adam(lr), apply_group_l1_prox(lr, lam, axis=-1))``,
  the threshold ``lr * lam`` after Adam's step (a metric-weighted objective).

It prints test accuracy and the number of conv channels that are exactly zero (removable).

Run:  python benchmarks/group_lasso_cnn.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

import l1optax

LAMS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
LR = 3e-3


def _data(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
    return train_test_split(x, y.astype(np.int32), test_size=0.25, random_state=seed, stratify=y)


def init(key):
    k1, k2, k3 = jax.random.split(key, 3)
    he = lambda k, shape, fan: jax.random.normal(k, shape) * np.sqrt(2.0 / fan)  # noqa: E731
    return {
        "conv1": {"kernel": he(k1, (3, 3, 1, 16), 9), "bias": jnp.zeros(16)},
        "conv2": {"kernel": he(k2, (3, 3, 16, 32), 144), "bias": jnp.zeros(32)},
        "dense": {"kernel": he(k3, (8 * 8 * 32, 10), 2048), "bias": jnp.zeros(10)},
    }


def apply(params, x):
    for name in ("conv1", "conv2"):
        layer = params[name]
        x = jax.lax.conv_general_dilated(
            x, layer["kernel"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        x = jax.nn.relu(x + layer["bias"])
    return x.reshape(x.shape[0], -1) @ params["dense"]["kernel"] + params["dense"]["bias"]


def conv_mask(params):
    return {name: {"kernel": name != "dense", "bias": False} for name in params}


def make_tx(method: str, lam: float):
    mask = conv_mask
    if method == "adam":
        return optax.adam(LR)
    if method == "prox_adam(prox=group)":
        prox = functools.partial(l1optax.prox_group_l1, axis=-1)
        return l1optax.prox_adam(LR, lam, prox=prox, mask=mask)
    if method == "adam + uniform group prox":
        return optax.chain(optax.adam(LR), l1optax.apply_group_l1_prox(LR, lam, axis=-1, mask=mask))
    raise ValueError(method)


def train(method: str, lam: float, data, *, epochs: int, batch: int = 64, seed: int = 0):
    x_tr, x_te, y_tr, y_te = (jnp.asarray(a) for a in data)
    tx = make_tx(method, lam)
    params = init(jax.random.PRNGKey(seed))
    state = tx.init(params)
    n = x_tr.shape[0] // batch * batch
    order = np.stack(
        [np.random.default_rng(seed + e).permutation(x_tr.shape[0])[:n] for e in range(epochs)]
    ).reshape(-1, batch)

    def loss(p, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(apply(p, xb), yb).mean()

    @jax.jit
    def run(params, state):
        def body(carry, idx):
            p, s = carry
            g = jax.grad(loss)(p, x_tr[idx], y_tr[idx])
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        (params, state), _ = jax.lax.scan(body, (params, state), jnp.asarray(order))
        return params

    params = run(params, state)
    acc = float(jnp.mean(jnp.argmax(apply(params, x_te), -1) == y_te))
    zero = {
        name: int(jnp.sum(jnp.all(params[name]["kernel"] == 0, axis=(0, 1, 2))))
        for name in ("conv1", "conv2")
    }
    return acc, zero


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 strengths, 2 epochs")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lams", default=None, help="comma-separated strengths (default: a sweep)")
    parser.add_argument(
        "--methods", default=None, help="comma-separated subset of the two prox methods"
    )
    parser.add_argument("--json", default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    lams = (0.01, 1.0) if args.quick else LAMS
    if args.lams:
        lams = tuple(float(x) for x in args.lams.split(","))
    methods = ("prox_adam(prox=group)", "adam + uniform group prox")
    if args.methods:
        methods = tuple(m.strip() for m in args.methods.split(","))
    epochs = 2 if args.quick else args.epochs
    data = _data()
    rows = []
    t0 = time.perf_counter()
    base_acc, _ = train("adam", 0.0, data, epochs=epochs)
    rows.append({"method": "adam", "lam": 0.0, "acc": base_acc, "conv1": 0, "conv2": 0})
    for method in methods:
        for lam in lams:
            acc, zero = train(method, lam, data, epochs=epochs)
            rows.append({"method": method, "lam": lam, "acc": acc, **zero})
    print(f"digits CNN, {epochs} epochs of batch 64, lr {LR}, jax {jax.__version__}")
    print("| method | lam | test acc | vs adam | zero conv1 channels (/16) | zero conv2 (/32) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['method']} | {r['lam']:g} | {100 * r['acc']:.2f}% | "
            f"{100 * (r['acc'] - base_acc):+.2f} | {r['conv1']} | {r['conv2']} |"
        )
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"jax": jax.__version__, "epochs": epochs, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
