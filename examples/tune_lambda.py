"""Tuning the lasso strength by gradient descent on a held-out loss, next to LassoCV.

scikit-learn's bundled diabetes data with all pairwise interactions (55 standardized features),
split 60/20/20 into train, validation and test. The hypergradient, d(validation MSE) / d
log(alpha), is ``jax.grad`` through ``l1optax.lasso`` (implicit differentiation from the
optimality condition on the support, no unrolling); Adam on log(alpha) from alpha_max / 1000.
Compared with a 100-point grid scored on the same validation set (one ``lasso_path``),
scikit-learn's ``LassoCV(cv=5)`` and ``l1optax.lasso_cv`` (5-fold cross-validation on train +
validation). Every chosen strength is refit on train + validation and scored on the test set.
Prints the table (chosen alpha, validation and test MSE, non-zeros, time) and saves a plot of
the validation curve with the gradient steps on it.

Examples:
  python examples/tune_lambda.py --out /tmp/plots
  python examples/tune_lambda.py --quick     # fewer steps and grid points, for the test suite
"""

from __future__ import annotations

import argparse
import os
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from sklearn.datasets import load_diabetes  # noqa: E402
from sklearn.linear_model import LassoCV  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import PolynomialFeatures, StandardScaler  # noqa: E402

import l1optax  # noqa: E402

TOL = 1e-10  # relative duality gap of every l1optax solve


def splits(seed: int = 0) -> dict[str, np.ndarray]:
    """Train / validation / test (60/20/20) of diabetes and its pairwise interactions,
    standardized with the training statistics."""
    X, y = load_diabetes(return_X_y=True)
    # products of distinct features only: sex is binary, so sex^2 would duplicate sex (and make
    # the lasso solution non-unique)
    X = PolynomialFeatures(degree=2, interaction_only=True, include_bias=False).fit_transform(X)
    X_tv, X_te, y_tv, y_te = train_test_split(X, y, test_size=0.2, random_state=seed)
    X_tr, X_va, y_tr, y_va = train_test_split(X_tv, y_tv, test_size=0.25, random_state=seed)
    scaler = StandardScaler().fit(X_tr)
    X_tr, X_va, X_te, X_tv = (scaler.transform(a) for a in (X_tr, X_va, X_te, X_tv))
    return dict(
        X_tr=X_tr, y_tr=y_tr, X_va=X_va, y_va=y_va, X_te=X_te, y_te=y_te, X_tv=X_tv, y_tv=y_tv
    )


def alpha_max(X: np.ndarray, y: np.ndarray) -> float:
    """The smallest strength with all coefficients zero (with an intercept)."""
    return float(np.abs(X.T @ (y - y.mean())).max() / X.shape[0])


def validation_mse(log_alpha, X_tr, y_tr, X_va, y_va):
    """The validation MSE of the lasso fitted on the training set at alpha = exp(log_alpha)."""
    w, info = l1optax.lasso(X_tr, y_tr, jnp.exp(log_alpha), fit_intercept=True, tol=TOL)
    return jnp.mean((X_va @ w + info.intercept - y_va) ** 2)


# one compiled program for every step (a closure made per call would compile again)
validation_value_and_grad = jax.jit(jax.value_and_grad(validation_mse))


def hypergradient_descent(d: dict, steps: int, learning_rate: float) -> dict:
    """Adam on log(alpha) with the validation MSE's gradient through ``lasso``."""
    data = (d["X_tr"], d["y_tr"], d["X_va"], d["y_va"])
    opt = optax.adam(learning_rate)
    log_alpha = jnp.asarray(np.log(1e-3 * alpha_max(d["X_tr"], d["y_tr"])))  # not weak-typed
    state = opt.init(log_alpha)
    history = []
    start = time.perf_counter()
    for _ in range(steps):
        value, grad = validation_value_and_grad(log_alpha, *data)
        history.append((float(jnp.exp(log_alpha)), float(value), float(grad)))
        updates, state = opt.update(grad, state)
        log_alpha = optax.apply_updates(log_alpha, updates)
    seconds = time.perf_counter() - start
    alpha, value, _ = min(history, key=lambda h: h[1])
    return {"alpha": alpha, "validation": value, "seconds": seconds, "history": history}


def validation_grid(d: dict, num: int) -> dict:
    """The validation MSE along a ``lasso_path`` on the training set (one compiled scan)."""
    top = alpha_max(d["X_tr"], d["y_tr"])
    grid = np.geomspace(top, 1e-4 * top, num)
    start = time.perf_counter()
    coefs, info = l1optax.lasso_path(d["X_tr"], d["y_tr"], grid, fit_intercept=True, tol=TOL)
    pred = d["X_va"] @ np.asarray(coefs).T + np.asarray(info.intercept)
    mse = np.mean((pred - d["y_va"][:, None]) ** 2, axis=0)
    seconds = time.perf_counter() - start
    best = int(np.argmin(mse))
    return {"alpha": float(grid[best]), "validation": float(mse[best]), "seconds": seconds,
            "grid": grid, "mse": mse}  # fmt: skip


def cross_validation(d: dict, num: int) -> tuple[dict, dict]:
    """``LassoCV(cv=5)`` and ``l1optax.lasso_cv`` on train + validation (the same grid)."""
    start = time.perf_counter()
    ref = LassoCV(cv=5, alphas=num, tol=1e-10, max_iter=100_000).fit(d["X_tv"], d["y_tv"])
    sk = {"alpha": float(ref.alpha_), "seconds": time.perf_counter() - start}
    start = time.perf_counter()
    alpha, _ = l1optax.lasso_cv(d["X_tv"], d["y_tv"], num=num, folds=5, tol=TOL)
    ours = {"alpha": float(alpha), "seconds": time.perf_counter() - start}
    return sk, ours


def score(d: dict, res: dict) -> dict:
    """Refit on train + validation at the chosen strength; test MSE and non-zeros."""
    w, info = l1optax.lasso(d["X_tv"], d["y_tv"], res["alpha"], fit_intercept=True, tol=TOL)
    pred = d["X_te"] @ np.asarray(w) + float(info.intercept)
    res["test"] = float(np.mean((pred - d["y_te"]) ** 2))
    res["nonzeros"] = int(np.sum(np.asarray(w) != 0))
    if "validation" not in res:  # chosen by cross-validation: its validation MSE, for the table
        w, info = l1optax.lasso(d["X_tr"], d["y_tr"], res["alpha"], fit_intercept=True, tol=TOL)
        res["validation"] = float(
            np.mean((d["X_va"] @ np.asarray(w) + info.intercept - d["y_va"]) ** 2)
        )
    return res


def plot(grid: dict, descent: dict, rows: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.semilogx(grid["grid"], grid["mse"], color="0.3", label="validation MSE (lasso_path)")
    alphas, values, _ = zip(*descent["history"], strict=True)
    ax.plot(alphas, values, "o-", ms=3, color="C0", label="hypergradient steps (Adam)")
    for (name, res), color in zip(rows.items(), ["C0", "C1", "C2", "C3"], strict=False):
        ax.axvline(res["alpha"], color=color, ls="--", lw=1, label=f"{name}: {res['alpha']:.3g}")
    ax.set_xlabel(r"$\alpha$")
    ax.set_ylabel("validation MSE")
    ax.set_title("diabetes with pairwise interactions: choosing the lasso strength")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--quick", action="store_true", help="40 steps and 30 grid points")
    parser.add_argument("--steps", type=int, default=60, help="gradient steps on log(alpha)")
    parser.add_argument(
        "--learning-rate", type=float, default=0.2, help="Adam's step on log(alpha)"
    )
    parser.add_argument("--out", default=".", metavar="DIR", help="where to save the PNG")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    steps, num = (40, 30) if args.quick else (args.steps, 100)
    d = splits()
    hypergradient_descent(d, 1, args.learning_rate)  # compile (the times below are warm)
    validation_grid(d, num)
    cross_validation(d, num)
    descent = hypergradient_descent(d, steps, args.learning_rate)
    grid = validation_grid(d, num)
    sk, ours = cross_validation(d, num)
    rows = {
        "hypergradient (Adam on log alpha)": descent,
        f"grid of {num} on validation": grid,
        "LassoCV(cv=5)": sk,
        "l1optax.lasso_cv(folds=5)": ours,
    }
    print(f"diabetes + interactions: n_train={len(d['y_tr'])} n_val={len(d['y_va'])} "
          f"n_test={len(d['y_te'])} features={d['X_tr'].shape[1]}")  # fmt: skip
    print("| method | alpha | validation MSE | test MSE | non-zeros | time (warm) |")
    print("|---|---|---|---|---|---|")
    for name, res in rows.items():
        score(d, res)
        print(f"| {name} | {res['alpha']:.4g} | {res['validation']:.1f} | {res['test']:.1f} | "
              f"{res['nonzeros']} | {res['seconds']:.3f} s |")  # fmt: skip
    print(f"lasso_cv / LassoCV alpha: {ours['alpha'] / sk['alpha']:.12f}")
    for key, res in zip(["descent", "grid", "lassocv", "lasso_cv"], rows.values(), strict=True):
        print(f"{key}: alpha={res['alpha']:.8g} validation={res['validation']:.6g} "
              f"test={res['test']:.6g} nonzeros={res['nonzeros']} seconds={res['seconds']:.4f}")  # fmt: skip
    path = os.path.join(args.out, "tune_lambda.png")
    plot(grid, descent, rows, path)
    print(f"saved {path}")
    return rows


if __name__ == "__main__":
    main()
