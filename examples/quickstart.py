"""Sparse linear regression on scikit-learn's diabetes data: no L1, subgradient L1, proximal L1.

Fits ``min_w 1/(2n)·||Xw - y||² + alpha·||w||₁`` with full-batch gradient descent three ways and
compares each with ``sklearn.linear_model.Lasso`` at the same alpha:

* (a) no L1: plain least squares (``optax.sgd``);
* (b) subgradient: ``with_l1(optax.sgd(lr), alpha, method="subgradient")`` — the penalty-in-the-loss
  recipe; weights hover around 0 but never reach it;
* (c) proximal: ``with_l1(optax.sgd(lr), alpha, learning_rate=lr)`` — ISTA; exact zeros, and the
  Lasso solution.

Run ``python examples/quickstart.py --help`` for options.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import l1optax


def load_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_diabetes
    from sklearn.preprocessing import StandardScaler

    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return X.astype(np.float32), (y - y.mean()).astype(np.float32)


def objective(w: np.ndarray, X: np.ndarray, y: np.ndarray, alpha: float) -> float:
    w64, X64, y64 = (np.asarray(a, np.float64) for a in (w, X, y))
    return float(0.5 * np.mean((X64 @ w64 - y64) ** 2) + alpha * np.abs(w64).sum())


def fit(tx: optax.GradientTransformation, X, y, steps: int) -> np.ndarray:
    def loss(w):
        return 0.5 * jnp.mean((X @ w - y) ** 2)

    def step(carry, _):
        w, state = carry
        updates, state = tx.update(jax.grad(loss)(w), state, w)
        return (optax.apply_updates(w, updates), state), None

    w0 = jnp.zeros(X.shape[1], X.dtype)
    (w, _), _ = jax.jit(lambda w: jax.lax.scan(step, (w, tx.init(w)), length=steps))(w0)
    return np.asarray(w)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alpha", type=float, default=2.0, help="L1 strength (sklearn's alpha)")
    parser.add_argument("--steps", type=int, default=5000, help="full-batch gradient steps")
    args = parser.parse_args(argv)

    from sklearn.linear_model import Lasso

    X, y = load_data()
    # 1/L with L the largest eigenvalue of X^T X / n: the classic safe ISTA step.
    lr = float(1.0 / np.linalg.eigvalsh(X.T.astype(np.float64) @ X / len(y)).max())
    reference = Lasso(alpha=args.alpha, fit_intercept=False, tol=1e-12, max_iter=100_000)
    w_ref = reference.fit(X.astype(np.float64), y.astype(np.float64)).coef_

    methods = {
        "(a) no L1 (optax.sgd)": optax.sgd(lr),
        "(b) subgradient": l1optax.with_l1(optax.sgd(lr), args.alpha, method="subgradient"),
        "(c) proximal": l1optax.with_l1(optax.sgd(lr), args.alpha, learning_rate=lr),
    }
    rows = []
    for name, tx in methods.items():
        start = time.perf_counter()
        w = fit(tx, jnp.asarray(X), jnp.asarray(y), args.steps)
        rows.append(
            {
                "method": name,
                "exact_zeros": int(np.sum(w == 0)),
                "objective": objective(w, X, y, args.alpha),
                "max_abs_diff_vs_sklearn": float(np.max(np.abs(w - w_ref))),
                "seconds": time.perf_counter() - start,
            }
        )
    rows.append(
        {
            "method": "sklearn Lasso (reference)",
            "exact_zeros": int(np.sum(w_ref == 0)),
            "objective": objective(w_ref, X, y, args.alpha),
            "max_abs_diff_vs_sklearn": 0.0,
            "seconds": float("nan"),
        }
    )

    print(
        f"diabetes: n={X.shape[0]}, features={X.shape[1]}, alpha={args.alpha}, "
        f"steps={args.steps}, lr=1/L={lr:.4f}, jax {jax.__version__} on {jax.default_backend()}"
    )
    print()
    print("| method | exact zeros | objective | max abs diff vs sklearn | seconds |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['method']} | {r['exact_zeros']}/{X.shape[1]} | {r['objective']:.6f} | "
            f"{r['max_abs_diff_vs_sklearn']:.2e} | {r['seconds']:.2f} |"
        )
    return rows


if __name__ == "__main__":
    main()
