"""Sparsity quality: which L1 method ends with the lasso's support, and keeps it?

Part 1, a minibatch lasso (scikit-learn ``make_regression``, loss 1/2 mean squared error, batch 16,
step size eta_t = eta_0 / (1 + t / t_0)): proximal SGD, the cumulative penalty (Tsuruoka et al.
2009), prox_adam, the uniform-threshold chain(adam, apply_l1_prox) and the subgradient recipe, compared
with scikit-learn's ``Lasso`` on the full data: exact zeros, support equal to scikit-learn's,
support changes (coordinates entering or leaving the support) during the last 10% of steps, and the
relative objective gap.

Part 2, a small MLP (64-64-10) on scikit-learn's digits: fraction of exactly-zero weights and test
accuracy per method.

Usage::

    python benchmarks/sparsity_quality.py            # full run (about a minute on 2 CPU cores)
    python benchmarks/sparsity_quality.py --quick    # smoke mode (the test suite runs this)
    python benchmarks/sparsity_quality.py --json out.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits, make_regression
from sklearn.linear_model import Lasso

import l1optax

# --------------------------------------------------------------------------------------------
# Part 1: minibatch lasso
# --------------------------------------------------------------------------------------------


def lasso_data(n: int = 1000, p: int = 40, seed: int = 0):
    X, y = make_regression(n_samples=n, n_features=p, n_informative=8, noise=5.0, random_state=seed)
    X = (X - X.mean(0)) / X.std(0)
    y = (y - y.mean()) / y.std()
    return X, y


def lasso_methods(lam: float, eta0: float, t0: float):
    def sgd_sched(count):
        return eta0 / (1.0 + count / t0)

    def adam_sched(count):
        return 0.1 * eta0 / (1.0 + count / t0)

    return {
        "prox SGD (apply_l1_prox)": optax.chain(
            optax.sgd(sgd_sched), l1optax.apply_l1_prox(sgd_sched, lam)
        ),
        "cumulative_l1": optax.chain(optax.sgd(sgd_sched), l1optax.cumulative_l1(sgd_sched, lam)),
        "prox_adam": l1optax.prox_adam(adam_sched, lam),
        "chain(adam, apply_l1_prox)": optax.chain(
            optax.adam(adam_sched), l1optax.apply_l1_prox(adam_sched, lam)
        ),
        "subgradient SGD": optax.chain(l1optax.add_l1_subgradient(lam), optax.sgd(sgd_sched)),
    }


def run_lasso(tx, X, y, *, epochs: int, batch: int, seed: int):
    n, p = X.shape
    steps_per_epoch = n // batch
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(n)[: steps_per_epoch * batch] for _ in range(epochs)])
    idx = jnp.asarray(order.reshape(-1, batch))
    Xj, yj = jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32)

    def loss(w, ib):
        return 0.5 * jnp.mean((Xj[ib] @ w - yj[ib]) ** 2)

    @jax.jit
    def train(w):
        def body(carry, ib):
            w, s = carry
            u, s = tx.update(jax.grad(loss)(w, ib), s, w)
            w = optax.apply_updates(w, u)
            return (w, s), w != 0

        (w, _), support = jax.lax.scan(body, (w, tx.init(w)), idx)
        return w, support

    w, support = train(jnp.zeros(p, jnp.float32))
    return np.asarray(w, np.float64), np.asarray(support)


def lasso_objective(w, X, y, lam):
    return 0.5 * np.mean((X @ w - y) ** 2) + lam * np.abs(w).sum()


def lasso_table(*, quick: bool, seed: int = 0):
    X, y = lasso_data(seed=seed)
    lam = 0.05
    w_sk = Lasso(alpha=lam, fit_intercept=False, tol=1e-12, max_iter=100_000).fit(X, y).coef_
    f_sk = lasso_objective(w_sk, X, y, lam)
    support_sk = w_sk != 0
    epochs = 10 if quick else 60
    rows = []
    for name, tx in lasso_methods(lam, eta0=0.05, t0=500.0).items():
        w, support = run_lasso(tx, X, y, epochs=epochs, batch=16, seed=seed)
        steps = support.shape[0]
        tail = support[int(0.9 * steps) - 1 :]
        flips_tail = int(np.sum(tail[1:] != tail[:-1]))
        flips_all = int(np.sum(support[1:] != support[:-1]))
        rows.append(
            {
                "method": name,
                "exact_zeros": int(np.sum(w == 0)),
                "sklearn_zeros": int(np.sum(~support_sk)),
                "support_equals_sklearn": bool(np.array_equal(w != 0, support_sk)),
                "support_changes_last_10pct": flips_tail,
                "support_changes_total": flips_all,
                "objective_gap_rel": float((lasso_objective(w, X, y, lam) - f_sk) / f_sk),
                "max_abs_diff": float(np.abs(w - w_sk).max()),
                "steps": int(steps),
            }
        )
    return rows


# --------------------------------------------------------------------------------------------
# Part 2: digits MLP
# --------------------------------------------------------------------------------------------


def digits_data(seed: int = 0):
    d = load_digits()
    X = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int32)
    perm = np.random.default_rng(seed).permutation(len(y))
    X, y = X[perm], y[perm]
    cut = int(0.75 * len(y))
    return (X[:cut], y[:cut]), (X[cut:], y[cut:])


def init_mlp(key, sizes=(64, 64, 10)):
    params = []
    keys = jax.random.split(key, len(sizes) - 1)
    for k, (a, b) in zip(keys, zip(sizes[:-1], sizes[1:], strict=True), strict=True):
        params.append({"w": jax.random.normal(k, (a, b)) * np.sqrt(2.0 / a), "b": jnp.zeros(b)})
    return params


def mlp(params, x):
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def digits_methods(lam: float):
    mask = [{"w": True, "b": False}, {"w": True, "b": False}]
    return {
        "adam (no L1)": optax.adam(1e-2),
        "adam + subgradient": optax.chain(
            l1optax.add_l1_subgradient(lam, mask=mask), optax.adam(1e-2)
        ),
        "chain(adam, apply_l1_prox)": optax.chain(
            optax.adam(1e-2), l1optax.apply_l1_prox(1e-2, lam, mask=mask)
        ),
        "prox_adam": l1optax.prox_adam(1e-2, lam, mask=mask),
        "prox SGD (apply_l1_prox)": optax.chain(
            optax.sgd(0.1), l1optax.apply_l1_prox(0.1, lam, mask=mask)
        ),
        "sgd + cumulative_l1": optax.chain(
            optax.sgd(0.1), l1optax.cumulative_l1(0.1, lam, mask=mask)
        ),
    }


def digits_table(*, quick: bool, seed: int = 0):
    (Xtr_np, ytr_np), (Xte, yte) = digits_data(seed)
    Xtr, ytr = jnp.asarray(Xtr_np), jnp.asarray(ytr_np)
    lam = 1e-3
    epochs = 1 if quick else 40
    batch = 32
    rows = []
    for name, tx in digits_methods(lam).items():
        params = init_mlp(jax.random.PRNGKey(seed))

        def loss(p, xb, yb):
            logits = mlp(p, xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        @jax.jit
        def epoch(carry, perm, tx=tx, loss=loss):
            def body(c, ib):
                p, s = c
                u, s = tx.update(jax.grad(loss)(p, Xtr[ib], ytr[ib]), s, p)
                return (optax.apply_updates(p, u), s), None

            return jax.lax.scan(body, carry, perm)[0]

        carry = (params, tx.init(params))
        rng = np.random.default_rng(seed)
        nb = len(ytr) // batch
        for _ in range(epochs):
            carry = epoch(
                carry, jnp.asarray(rng.permutation(len(ytr))[: nb * batch].reshape(nb, batch))
            )
        params = carry[0]
        weights = np.concatenate([np.ravel(layer["w"]) for layer in params])
        acc = float(np.mean(np.argmax(mlp(params, Xte), -1) == yte))
        rows.append(
            {
                "method": name,
                "zero_weights_pct": float(100 * np.mean(weights == 0)),
                "test_accuracy": acc,
                "epochs": epochs,
            }
        )
    return rows


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _fmt(column: str, value) -> str:
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if column.endswith("pct"):
        return f"{value:.1f}"
    if column == "test_accuracy":
        return f"{value:.3f}"
    return f"{value:.2e}"


def _markdown(rows, columns):
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(c, r[c]) for c in columns) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few epochs (smoke test)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.system()}, {jax.devices()[0].platform}",
        "jax": jax.__version__,
        "optax": optax.__version__,
        "quick": args.quick,
    }
    lasso = lasso_table(quick=args.quick, seed=args.seed)
    digits = digits_table(quick=args.quick, seed=args.seed)
    print(
        f"# sparsity_quality ({meta['date']}, {meta['machine']}, jax {meta['jax']}, optax {meta['optax']})"
    )
    print("\n## Minibatch lasso (n=1000, p=40, batch 16, eta_t = eta_0/(1+t/500), float32)\n")
    print(
        _markdown(
            lasso,
            [
                "method",
                "exact_zeros",
                "sklearn_zeros",
                "support_equals_sklearn",
                "support_changes_last_10pct",
                "support_changes_total",
                "objective_gap_rel",
                "max_abs_diff",
            ],
        )
    )
    print("\n## Digits MLP 64-64-10 (lam = 1e-3 on kernels, biases unpenalised)\n")
    print(_markdown(digits, ["method", "zero_weights_pct", "test_accuracy", "epochs"]))
    result = {"meta": meta, "lasso": lasso, "digits": digits}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
