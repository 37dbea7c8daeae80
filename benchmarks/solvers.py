"""Time to a certified lasso solution: l1optax (lasso, fista) vs scikit-learn, skglm and celer.

For each dense problem (Gaussian X of shape n x p, 10% of the true coefficients non-zero, at most
50, float64) every solver is run with its own stopping tolerance lowered ten-fold at a time until
its solution reaches a relative duality gap (gap / primal objective) of at most 1e-6; the time
reported is the median of ``--repeats`` timed runs at that tolerance, in the same process, after
the calibration runs have warmed up every compilation, the solvers of a problem interleaved
(rounds of one run each, in a seeded random order), so that the machine's load changing during a
problem's timing affects them alike; a solver faster than 0.1 s is re-run untimed right before
each timed run, so that each is timed warm, as in a loop of calls. Single strength:
alpha = alpha_max / 10. Path: 100 strengths from alpha_max to alpha_max / 100 (geometric), warm-started, every point
certified. Also a sparse design (2000 x 20000 at 0.2% density: ``l1optax.lasso`` on a BCOO
matrix against the peers on scipy CSC) and L1 logistic regression (mean log-loss +
alpha |w|_1, alpha = alpha_max / 10, against liblinear, skglm and celer), each certified by its
own duality gap. skglm and celer are optional peers (``pip install -e ".[bench]"``); rows for a peer
that is not importable are skipped and said so. Timings include everything a user's call costs
(argument checks, dispatch, ``block_until_ready``).

Examples:
  python benchmarks/solvers.py --quick
  python benchmarks/solvers.py --repeats 3 --json results.json
  python benchmarks/solvers.py --fista       # also the generic fista / l1_path rows (slow)
  python benchmarks/solvers.py --gpu         # l1optax on the accelerator, peers on the CPU
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import sklearn  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import Lasso, lasso_path  # noqa: E402

import l1optax  # noqa: E402

DEFAULT_SIZES = [(1_000, 100), (10_000, 1_000), (200, 5_000), (72, 7_129)]
LARGE_SIZES = [(20_000, 2_000)]
QUICK_SIZES = [(200, 40)]
SPARSE_SIZES = [(2_000, 20_000, 0.002)]  # n, p, density: the sparse-X row
QUICK_SPARSE_SIZES = [(100, 400, 0.05)]
LOGISTIC_SIZES = [(1_000, 100), (200, 5_000)]
QUICK_LOGISTIC_SIZES = [(200, 40)]
TARGET = 1e-6
PATH_EPS = 1e-2  # alpha_max -> alpha_max / 100
WARM_BELOW = 0.1  # seconds: a faster solver is re-warmed (one untimed run) before each timed run


def lsq(w, X, y):
    return 0.5 * jnp.mean((X @ w - y) ** 2)


def lsq_gram(w, G, Xty, yty):
    """The same loss from the Gram matrix G = X^T X / n: O(p^2) per evaluation instead of O(np)."""
    return 0.5 * (w @ (G @ w)) - w @ Xty + 0.5 * yty


@jax.jit
def gram(X, y):
    n = X.shape[0]
    return X.T @ X / n, X.T @ y / n, y @ y / n


def make_problem(n: int, p: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    w = np.zeros(p)
    k = max(1, min(p // 10, 50))
    w[rng.choice(p, k, replace=False)] = rng.standard_normal(k)
    y = X @ w + 0.5 * rng.standard_normal(n)
    alpha = 0.1 * np.abs(X.T @ y).max() / n
    return X, y, alpha


def relative_gap(X: np.ndarray, y: np.ndarray, w: Any, alpha: float) -> float:
    w = np.asarray(w, dtype=np.float64)
    primal = np.sum((y - X @ w) ** 2) / (2 * X.shape[0]) + alpha * np.abs(w).sum()
    return float(l1optax.lasso_duality_gap(X, y, w, alpha)) / primal


def make_sparse_problem(n: int, p: int, density: float, seed: int = 0):
    """A scipy CSC design with ``density`` non-zeros (Gaussian values), the dense recipe's y."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    X = sp.random(
        n, p, density=density, format="csc", random_state=rng, data_rvs=rng.standard_normal
    )
    w = np.zeros(p)
    k = max(1, min(p // 10, 50))
    w[rng.choice(p, k, replace=False)] = rng.standard_normal(k)
    y = X @ w + 0.5 * rng.standard_normal(n)
    alpha = 0.1 * np.abs(X.T @ y).max() / n
    return X, y, alpha


def sparse_relative_gap(X: Any, y: np.ndarray, w: Any, alpha: float) -> float:
    """scikit-learn's lasso gap (as ``lasso_duality_gap``) with X a scipy sparse matrix."""
    w = np.asarray(w, dtype=np.float64)
    n = X.shape[0]
    r = y - X @ w
    dual_norm = np.abs(X.T @ r).max()
    scale = min(1.0, n * alpha / dual_norm) if dual_norm > 0 else 1.0
    primal = r @ r / (2 * n) + alpha * np.abs(w).sum()
    dual = scale * (r @ y) / n - scale**2 * (r @ r) / (2 * n)
    return float((primal - dual) / primal)


def make_logistic_problem(n: int, p: int, seed: int = 0):
    """Gaussian X, labels in {-1, 1} from a sparse linear model; alpha = alpha_max / 10."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    w = np.zeros(p)
    k = max(1, min(p // 10, 50))
    w[rng.choice(p, k, replace=False)] = rng.standard_normal(k)
    y = np.where(X @ w + 0.5 * rng.standard_normal(n) > 0, 1.0, -1.0)
    alpha = 0.1 * np.abs(X.T @ y).max() / (2 * n)  # the mean log-loss' gradient at 0: X^T y / 2n
    return X, y, alpha


def logistic_relative_gap(X: np.ndarray, y: np.ndarray, w: Any, alpha: float) -> float:
    """Duality gap / primal of mean log-loss + alpha |w|_1 (no intercept), labels in {-1, 1}."""
    w = np.asarray(w, dtype=np.float64)
    n = X.shape[0]
    margin = y * (X @ w)
    primal = np.mean(np.logaddexp(0.0, -margin)) + alpha * np.abs(w).sum()
    sig = 0.5 * (1.0 - np.tanh(margin / 2))  # sigmoid(-margin), the dual point before scaling
    dual_norm = np.abs(X.T @ (y * sig)).max() / n
    s = min(1.0, alpha / dual_norm) if dual_norm > 0 else 1.0
    t = s * sig
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = np.where(t > 0, t * np.log(t), 0.0) + np.where(t < 1, (1 - t) * np.log1p(-t), 0.0)
    dual = -np.mean(ent)
    return float((primal - dual) / primal)


# ------------------------------------------------------------------------------------------------
# solvers: each returns run(tol) -> (coefficients, iterations)


def fista_solver(X, y, alpha):
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    w0 = jnp.zeros(X.shape[1])

    def run(tol):
        w, info = l1optax.fista(lsq, w0, alpha, Xj, yj, tol=tol, maxiter=100_000)
        w.block_until_ready()
        return w, int(info.num_iter)

    return run


def fista_gram_solver(X, y, alpha):
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    w0 = jnp.zeros(X.shape[1])

    def run(tol):  # the Gram matrix is computed inside the timed call
        w, info = l1optax.fista(lsq_gram, w0, alpha, *gram(Xj, yj), tol=tol, maxiter=100_000)
        w.block_until_ready()
        return w, int(info.num_iter)

    return run


def lasso_solver(X, y, alpha, *, loss="squared"):
    """``l1optax.lasso``; a scipy sparse X goes in as a ``BCOO`` matrix (converted once)."""
    import scipy.sparse

    if scipy.sparse.issparse(X):
        from jax.experimental import sparse as jsparse

        Xj = jsparse.BCOO.from_scipy_sparse(X.tocoo())
    else:
        Xj = jnp.asarray(X)
    yj = jnp.asarray(y)

    def run(tol):
        w, info = l1optax.lasso(Xj, yj, alpha, loss=loss, tol=tol)
        w.block_until_ready()
        return w, int(info.num_inner)

    return run


def _estimator_solver(X, y, make_model):
    """``run(tol)`` for a scikit-learn-style estimator ``make_model(tol)``, fitted quietly."""

    def run(tol):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = make_model(tol).fit(X, y)
        iterations = np.sum(np.atleast_1d(getattr(model, "n_iter_", 0)))
        return np.ravel(model.coef_), int(iterations)

    return run


def skglm_solver(X, y, alpha):
    from skglm import Lasso as SkglmLasso

    def run(tol):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = SkglmLasso(alpha=alpha, fit_intercept=False, tol=tol, max_iter=1_000)
            model.fit(X, y)
        return model.coef_, int(np.sum(getattr(model, "n_iter_", 0)))

    return run


def celer_solver(X, y, alpha):
    from celer import Lasso as CelerLasso

    def run(tol):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = CelerLasso(alpha=alpha, fit_intercept=False, tol=tol, max_iter=1_000)
            model.fit(X, y)
        return model.coef_, int(np.sum(getattr(model, "n_iter_", 0)))

    return run


def sklearn_solver(X, y, alpha):
    def run(tol):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = Lasso(alpha=alpha, fit_intercept=False, tol=tol, max_iter=100_000).fit(X, y)
        return model.coef_, int(model.n_iter_)

    return run


def logistic_lasso_solver(X, y, alpha):
    return lasso_solver(X, y, alpha, loss="logistic")


def sklearn_logistic_solver(X, y, alpha):
    from sklearn.linear_model import LogisticRegression

    C = 1.0 / (alpha * X.shape[0])  # sklearn sums the log-loss: C = 1 / (alpha n)
    return _estimator_solver(
        X, y, lambda tol: LogisticRegression(
            penalty="l1", C=C, solver="liblinear", fit_intercept=False, tol=tol, max_iter=100_000,
            random_state=0,
        ),
    )  # fmt: skip


def skglm_logistic_solver(X, y, alpha):
    from skglm import SparseLogisticRegression

    return _estimator_solver(
        X, y, lambda tol: SparseLogisticRegression(
            alpha=alpha, fit_intercept=False, tol=tol, max_iter=1_000
        ),
    )  # fmt: skip


def celer_logistic_solver(X, y, alpha):
    from celer import LogisticRegression as CelerLogistic

    C = 1.0 / (alpha * X.shape[0])
    return _estimator_solver(
        X, y, lambda tol: CelerLogistic(C=C, fit_intercept=False, tol=tol, max_iter=1_000)
    )


def jaxopt_solver(X, y, alpha):
    import jaxopt
    from jaxopt.prox import prox_lasso

    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    w0 = jnp.zeros(X.shape[1])
    compiled: dict[float, Callable] = {}

    def run(tol):
        if tol not in compiled:
            pg = jaxopt.ProximalGradient(
                fun=lsq, prox=prox_lasso, tol=tol, maxiter=100_000, acceleration=True, jit=True
            )
            compiled[tol] = jax.jit(lambda X, y: pg.run(w0, alpha, X, y))
        out = compiled[tol](Xj, yj)
        out.params.block_until_ready()
        return out.params, int(out.state.iter_num)

    return run


def fista_path(X, y, grid):
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    w0, lams = jnp.zeros(X.shape[1]), jnp.asarray(grid)

    def run(tol):
        W, info = l1optax.l1_path(lsq, w0, lams, Xj, yj, tol=tol, maxiter=100_000)
        W.block_until_ready()
        return np.asarray(W), int(np.sum(info.num_iter))

    return run


def fista_gram_path(X, y, grid):
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    w0, lams = jnp.zeros(X.shape[1]), jnp.asarray(grid)

    def run(tol):  # the Gram matrix is computed inside the timed call
        W, info = l1optax.l1_path(lsq_gram, w0, lams, *gram(Xj, yj), tol=tol, maxiter=100_000)
        W.block_until_ready()
        return np.asarray(W), int(np.sum(info.num_iter))

    return run


def lasso_path_solver(X, y, grid):
    Xj, yj, lams = jnp.asarray(X), jnp.asarray(y), jnp.asarray(grid)

    def run(tol):
        W, info = l1optax.lasso_path(Xj, yj, lams, tol=tol)
        W.block_until_ready()
        return np.asarray(W), int(np.sum(info.num_inner))

    return run


def _warm_path(make_model):
    def factory(X, y, grid):
        def run(tol):
            model = make_model(tol)
            coefs, iters = [], 0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for a in grid:
                    model.set_params(alpha=float(a))
                    model.fit(X, y)
                    coefs.append(np.array(model.coef_))
                    iters += int(np.sum(getattr(model, "n_iter_", 0)))
            return np.array(coefs), iters

        return run

    return factory


def _skglm_model(tol):
    from skglm import Lasso as SkglmLasso

    return SkglmLasso(alpha=1.0, fit_intercept=False, tol=tol, max_iter=1_000, warm_start=True)


def _celer_model(tol):
    from celer import Lasso as CelerLasso

    return CelerLasso(alpha=1.0, fit_intercept=False, tol=tol, max_iter=1_000, warm_start=True)


skglm_path = _warm_path(_skglm_model)
celer_path = _warm_path(_celer_model)


def sklearn_path(X, y, grid):
    def run(tol):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            _, coefs, _, iters = lasso_path(
                X, y, alphas=grid, tol=tol, max_iter=100_000, return_n_iter=True
            )
        return coefs.T, int(np.sum(iters))

    return run


# ------------------------------------------------------------------------------------------------
# calibration and timing


def calibrate(run, gap_of, tols):
    """The loosest tolerance whose solution is certified, and that solution's record (``warm``:
    a run took under ``WARM_BELOW`` seconds); the runs at each tolerance tried also warm up
    (compile) that setting."""
    for tol in tols:
        w, iters = run(tol)
        gap = gap_of(w)
        if gap <= TARGET:
            start = time.perf_counter()
            run(tol)  # second warm-up: caches settled
            warm = time.perf_counter() - start < WARM_BELOW
            return {"tol": tol, "iterations": iters, "rel_gap": gap, "warm": warm}
    return {"tol": tols[-1], "iterations": iters, "rel_gap": gap, "failed": True}


def time_solvers(problem, entries, data, gap_of, repeats, opts):
    """One row per solver ``(name, make, tols)`` of ``problem`` (its ``run = make(*data)``, made on
    the solver's device): each calibrated (:func:`calibrate`),
    then all timed in ``repeats`` interleaved rounds (each round runs every certified solver once,
    in a fresh seeded random order, so no solver always follows the same one), so that a change in
    the machine's load during the timing falls on every solver alike; the median of each
    solver's rounds is reported. A solver whose calibrated run took under ``WARM_BELOW`` seconds
    runs once untimed right before each timed run: every solver is timed warm, as in a loop of
    calls, not just after another library's work (after which the next JAX call on this 2-core
    box took 1.7-1.9 ms instead of 0.66, 1000 x 100: XLA's threads idle, or BLAS's spinning)."""
    calibrated = []
    for name, make, tols in entries:
        with _device_for(name, opts):
            run = make(*data)
            calibrated.append((name, run, calibrate(run, gap_of, tols)))
    timed = [(name, run, res) for name, run, res in calibrated if not res.get("failed")]
    times = {name: [] for name, _, _ in timed}
    rng = np.random.default_rng(0)
    for _ in range(repeats):
        for k in rng.permutation(len(timed)):
            name, run, res = timed[k]
            with _device_for(name, opts):
                if res["warm"]:
                    run(res["tol"])
                start = time.perf_counter()
                run(res["tol"])
                times[name].append(time.perf_counter() - start)
    rows = []
    for name, _, res in calibrated:
        spent = times.get(name, [])
        time_ms = 1e3 * statistics.median(spent) if spent else float("nan")
        record = {k: v for k, v in res.items() if k not in ("failed", "warm")}
        rows.append(
            {
                "problem": problem,
                "solver": name,
                "time_ms": time_ms,
                "times_ms": [1e3 * t for t in spent],
                **record,
            }
        )
        print(f"  {problem}  {name:<26} {time_ms:10.1f} ms", file=sys.stderr)
    return rows


def _peers(available):
    return [name for name in ("skglm", "celer") if available.get(name)]


def bench_single(n, p, repeats, opts):
    X, y, alpha = make_problem(n, p)
    alpha_max = 10 * alpha
    grad_tols = [alpha_max * 10.0**-k for k in range(2, 12)]  # gradient-mapping norm
    gap_tols = [10.0**-k for k in range(3, 14)]  # relative duality gaps / their own scalings

    def gap_of(w):
        return relative_gap(X, y, w, alpha)

    solvers = [("l1optax.lasso", lasso_solver, gap_tols)]
    if opts["fista"]:
        solvers += [
            ("l1optax.fista", fista_solver, grad_tols),
            ("l1optax.fista (Gram loss)", fista_gram_solver, grad_tols),
        ]
    solvers.append(("sklearn Lasso", sklearn_solver, gap_tols))
    if "skglm" in opts["peers"]:
        solvers.append(("skglm Lasso", skglm_solver, gap_tols))
    if "celer" in opts["peers"]:
        solvers.append(("celer Lasso", celer_solver, gap_tols))
    if opts["jaxopt"]:
        solvers.append(("jaxopt ProximalGradient", jaxopt_solver, grad_tols))
    return time_solvers(f"{n} x {p}", solvers, (X, y, alpha), gap_of, repeats, opts)


def bench_path(n, p, num, repeats, opts):
    X, y, _ = make_problem(n, p, seed=1)
    lam_max = float(l1optax.lambda_max(lsq, jnp.zeros(p), X, y))
    grid = np.asarray(l1optax.l1_grid(lam_max, num=num, eps=PATH_EPS))

    def gap_of(W):
        return max(relative_gap(X, y, w, a) for w, a in zip(W, grid, strict=True))

    gap_tols = [10.0**-k for k in range(3, 14)]
    solvers = [("l1optax.lasso_path", lasso_path_solver, gap_tols)]
    if opts["fista"]:
        lam_tols = [lam_max * 10.0**-k for k in range(3, 12)]
        solvers += [
            ("l1optax.l1_path", fista_path, lam_tols),
            ("l1optax.l1_path (Gram loss)", fista_gram_path, lam_tols),
        ]
    solvers.append(("sklearn lasso_path", sklearn_path, gap_tols))
    if "skglm" in opts["peers"]:
        solvers.append(("skglm Lasso (warm path)", skglm_path, gap_tols))
    if "celer" in opts["peers"]:
        solvers.append(("celer Lasso (warm path)", celer_path, gap_tols))
    return time_solvers(f"path {num} x ({n} x {p})", solvers, (X, y, grid), gap_of, repeats, opts)


def bench_sparse(n, p, density, repeats, opts):
    X, y, alpha = make_sparse_problem(n, p, density)
    solvers = [
        ("l1optax.lasso (BCOO)", lasso_solver),
        ("sklearn Lasso (CSC)", sklearn_solver),
    ]
    peers = {
        "skglm": ("skglm Lasso (CSC)", skglm_solver),
        "celer": ("celer Lasso (CSC)", celer_solver),
    }
    problem = f"{n} x {p} sparse ({100 * density:g}%)"
    return _bench_rows(problem, X, y, alpha, sparse_relative_gap, solvers, peers, repeats, opts)


def bench_logistic(n, p, repeats, opts):
    X, y, alpha = make_logistic_problem(n, p)
    solvers = [
        ("l1optax.lasso (logistic)", logistic_lasso_solver),
        ("sklearn LogisticRegression (liblinear)", sklearn_logistic_solver),
    ]
    peers = {
        "skglm": ("skglm SparseLogisticRegression", skglm_logistic_solver),
        "celer": ("celer LogisticRegression", celer_logistic_solver),
    }
    problem = f"logistic {n} x {p}"
    return _bench_rows(problem, X, y, alpha, logistic_relative_gap, solvers, peers, repeats, opts)


def _bench_rows(problem, X, y, alpha, relative_gap_fn, solvers, peers, repeats, opts):
    """One strength, every solver (and every installed peer) certified by ``relative_gap_fn``."""
    solvers = solvers + [peers[name] for name in opts["peers"] if name in peers]
    tols = [10.0**-k for k in range(3, 14)]
    entries = [(name, make, tols) for name, make in solvers]

    def gap_of(w):
        return relative_gap_fn(X, y, w, alpha)

    return time_solvers(problem, entries, (X, y, alpha), gap_of, repeats, opts)


def _device_for(name, opts):
    """l1optax on the accelerator with --gpu; everything else is NumPy on the CPU anyway."""
    if opts["gpu"] and name.startswith("l1optax"):
        return jax.default_device(jax.devices("gpu")[0])
    return jax.default_device(jax.devices("cpu")[0])


def markdown(rows):
    lines = [
        "| problem | solver | time to rel. gap 1e-6 (ms, median) | vs fastest peer | iterations "
        "| rel. gap reached | tol used |",
        "|---|---|---|---|---|---|---|",
    ]
    best = {}
    for r in rows:
        if not r["solver"].startswith("l1optax") and np.isfinite(r["time_ms"]):
            best[r["problem"]] = min(best.get(r["problem"], np.inf), r["time_ms"])
    for r in rows:
        ratio = r["time_ms"] / best[r["problem"]] if best.get(r["problem"]) else float("nan")
        lines.append(
            f"| {r['problem']} | {r['solver']} | {r['time_ms']:.1f} | {ratio:.2f} | "
            f"{r['iterations']} | {r['rel_gap']:.1e} | {r['tol']:.0e} |"
        )
    return "\n".join(lines)


def environment():
    dev = jax.devices()[0]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": f"{dev.platform}: {getattr(dev, 'device_kind', '')}",
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "optax": optax.__version__,
        "sklearn": sklearn.__version__,
        "l1optax": l1optax.__version__,
        "load_average": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--quick", action="store_true", help="one tiny problem, one repeat")
    parser.add_argument("--large", action="store_true", help="also run 20,000 x 2,000")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median)")
    parser.add_argument("--path-num", type=int, default=100, help="points on the path")
    parser.add_argument("--no-jaxopt", action="store_true", help="skip jaxopt even if installed")
    parser.add_argument("--no-peers", action="store_true", help="skip skglm and celer")
    parser.add_argument("--fista", action="store_true", help="also time fista / l1_path")
    parser.add_argument(
        "--gpu", action="store_true", help="run l1optax on the first GPU (peers stay on the CPU)"
    )
    parser.add_argument(
        "--sizes", help="only these dense problems, e.g. 1000x100,72x7129 (no sparse/logistic rows)"
    )
    parser.add_argument(
        "--only-extra", action="store_true", help="only the sparse-X and logistic rows"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return parser.parse_args(argv)


def _optional(module):
    try:
        mod = __import__(module)
    except Exception as err:  # noqa: BLE001 - any import failure means "not available"
        return None, f"not importable: {type(err).__name__}: {err}"
    return mod, getattr(mod, "__version__", "installed")


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.quick:
        sizes, path_sizes, repeats, num = QUICK_SIZES, QUICK_SIZES, 1, min(args.path_num, 20)
        sparse_sizes, logistic_sizes = QUICK_SPARSE_SIZES, QUICK_LOGISTIC_SIZES
    else:
        sizes = DEFAULT_SIZES + (LARGE_SIZES if args.large else [])
        path_sizes, repeats, num = list(DEFAULT_SIZES), args.repeats, args.path_num
        sparse_sizes, logistic_sizes = SPARSE_SIZES, LOGISTIC_SIZES
    if args.sizes:
        wanted = [tuple(int(k) for k in s.split("x")) for s in args.sizes.split(",")]
        sizes = [s for s in wanted]
        path_sizes = list(sizes)
        sparse_sizes, logistic_sizes = [], []
    if args.only_extra:
        sizes, path_sizes = [], []
    if args.gpu and not any(d.platform == "gpu" for d in jax.devices()):
        raise SystemExit(f"--gpu: no GPU visible to JAX (jax.devices() = {jax.devices()})")
    env = environment()
    available = {}
    for name, skip in (
        ("jaxopt", args.no_jaxopt),
        ("skglm", args.no_peers),
        ("celer", args.no_peers),
    ):
        if skip:
            env[name] = "skipped"
            continue
        mod, note = _optional(name)
        available[name] = mod is not None
        env[name] = note
    opts = {
        "jaxopt": available.get("jaxopt", False),
        "peers": _peers(available),
        "fista": args.fista,
        "gpu": args.gpu,
    }
    rows = []
    for n, p in sizes:
        rows += bench_single(n, p, repeats, opts)
    for n, p in path_sizes:
        rows += bench_path(n, p, num, repeats, opts)
    for n, p, density in sparse_sizes:
        rows += bench_sparse(n, p, density, repeats, opts)
    for n, p in logistic_sizes:
        rows += bench_logistic(n, p, repeats, opts)
    print(", ".join(f"{k}: {v}" for k, v in env.items()))
    print(markdown(rows))
    result = {"environment": env, "target_relative_gap": TARGET, "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
