"""Lasso and L1-logistic coefficient paths: l1optax.l1_path next to scikit-learn.

Linear regression on scikit-learn's bundled diabetes data (``l1_path`` vs ``lasso_path``) and
L1-regularized logistic regression on the bundled breast-cancer data (``l1_path`` vs
``LogisticRegression(l1_ratio=1, solver="liblinear")`` fitted at each ``C = 1 / (alpha * n)``).
Both paths start at ``lambda_max`` (all coefficients zero) and use scikit-learn's geometric grid
(``l1_grid``). Prints how far the two paths are apart and the optimality certificates of ours,
and saves the four coefficient-path panels as a PNG.

Examples:
  python examples/lasso_vs_sklearn.py --out /tmp/plots
  python examples/lasso_vs_sklearn.py --quick     # a few grid points, for the test suite
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes  # noqa: E402
from sklearn.linear_model import LogisticRegression, lasso_path  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import l1optax  # noqa: E402


def squared_loss(w, X, y):
    return 0.5 * jnp.mean((X @ w - y) ** 2)


def logistic_loss(w, X, y):  # y in {-1, +1}
    return jnp.mean(jnp.logaddexp(0.0, -y * (X @ w)))


def diabetes_paths(num: int) -> dict:
    X, y = load_diabetes(return_X_y=True)
    y = y - y.mean()  # centred data: no intercept needed
    w0 = jnp.zeros(X.shape[1])
    alphas = np.asarray(l1optax.l1_grid(l1optax.lambda_max(squared_loss, w0, X, y), num=num))
    start = time.perf_counter()
    ours, info = l1optax.l1_path(squared_loss, w0, alphas, X, y, tol=1e-9, maxiter=100_000)
    ours = np.asarray(ours.block_until_ready())
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    _, coefs, _ = lasso_path(X, y, alphas=alphas, tol=1e-12, max_iter=1_000_000)
    t_ref = time.perf_counter() - start
    gaps = [l1optax.lasso_duality_gap(X, y, w, a) for w, a in zip(ours, alphas, strict=True)]
    primal = [
        np.mean((y - X @ w) ** 2) / 2 + a * np.abs(w).sum()
        for w, a in zip(ours, alphas, strict=True)
    ]
    return {
        "name": "diabetes",
        "alphas": alphas,
        "ours": ours,
        "ref": coefs.T,
        "max_abs_diff": float(np.abs(ours - coefs.T).max()),
        "scale": float(np.abs(coefs).max()),
        "certificate": float(max(g / p for g, p in zip(gaps, primal, strict=True))),
        "certificate_name": "max_rel_gap",
        "same_support": bool(np.array_equal(ours != 0, coefs.T != 0)),
        "converged": bool(np.all(info.converged)),
        "time_ours": t_ours,
        "time_ref": t_ref,
    }


def breast_cancer_paths(num: int) -> dict:
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    y = np.where(y == 1, 1.0, -1.0)
    n = X.shape[0]
    w0 = jnp.zeros(X.shape[1])
    lam_max = l1optax.lambda_max(logistic_loss, w0, X, y)  # = max|X^T y| / (2n)
    alphas = np.asarray(l1optax.l1_grid(lam_max, num=num, eps=1e-2))
    start = time.perf_counter()
    ours, info = l1optax.l1_path(logistic_loss, w0, alphas, X, y, tol=1e-9, maxiter=100_000)
    ours = np.asarray(ours.block_until_ready())
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    ref = []
    for (
        a
    ) in alphas:  # C * sum(logloss) + |w|_1 == n C (mean logloss + alpha |w|_1), C = 1/(alpha n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model = LogisticRegression(
                C=1.0 / (a * n), l1_ratio=1.0, solver="liblinear", fit_intercept=False,
                tol=1e-10, max_iter=100_000, random_state=0,
            )  # fmt: skip
            ref.append(model.fit(X, y).coef_.ravel())
    ref = np.array(ref)
    t_ref = time.perf_counter() - start
    grads = jax.vmap(jax.grad(logistic_loss), in_axes=(0, None, None))(ours, X, y)
    kkt = max(
        float(l1optax.kkt_violation(g, w, a)) for g, w, a in zip(grads, ours, alphas, strict=True)
    )
    return {
        "name": "breast_cancer",
        "alphas": alphas,
        "ours": ours,
        "ref": ref,
        "max_abs_diff": float(np.abs(ours - ref).max()),
        "scale": float(np.abs(ref).max()),
        "certificate": kkt,
        "certificate_name": "max_kkt",
        "same_support": bool(np.array_equal(ours != 0, np.abs(ref) > 1e-8)),
        "converged": bool(np.all(info.converged)),
        "time_ours": t_ours,
        "time_ref": t_ref,
    }


def plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(11, 4 * len(results)), squeeze=False)
    for row, res in zip(axes, results, strict=True):
        ref_name = "lasso_path" if res["name"] == "diabetes" else "LogisticRegression (liblinear)"
        for ax, coefs, title in [
            (row[0], res["ours"], "l1optax.l1_path"),
            (row[1], res["ref"], f"scikit-learn {ref_name}"),
        ]:
            ax.plot(-np.log10(res["alphas"]), coefs)
            ax.set_title(f"{res['name']}: {title}")
            ax.set_xlabel(r"$-\log_{10}(\alpha)$")
            ax.set_ylabel("coefficients")
            ax.axhline(0.0, color="k", lw=0.5)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--quick", action="store_true", help="8 grid points instead of 100/30")
    parser.add_argument("--out", default=".", metavar="DIR", help="where to save the PNG")
    return parser.parse_args(argv)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    results = [
        diabetes_paths(8 if args.quick else 100),
        breast_cancer_paths(8 if args.quick else 30),
    ]
    for r in results:
        print(
            f"{r['name']}: points={len(r['alphas'])} max_abs_diff={r['max_abs_diff']:.3e} "
            f"rel_diff={r['max_abs_diff'] / r['scale']:.3e} {r['certificate_name']}="
            f"{r['certificate']:.3e} same_support={r['same_support']} converged={r['converged']} "
            f"time_l1optax={r['time_ours']:.3f}s (incl. compilation) time_sklearn={r['time_ref']:.3f}s"
        )
    path = os.path.join(args.out, "lasso_vs_sklearn.png")
    plot(results, path)
    print(f"saved {path}")
    return results


if __name__ == "__main__":
    main()
