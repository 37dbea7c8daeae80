"""benchmarks/solvers.py --quick runs end to end and every solver reaches the certificate.

Run in a subprocess: the benchmark enables float64 globally, which must not leak into other tests.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("sklearn")

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "solvers.py"


def _run(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_help():
    out = _run("--help")
    assert "--quick" in out and "--json" in out and "--large" in out and "--gpu" in out


def test_quick_reaches_target_gap_for_every_solver(tmp_path):
    path = tmp_path / "bench.json"
    out = _run("--quick", "--no-jaxopt", "--no-peers", "--path-num", "10", "--json", str(path))
    result = json.loads(path.read_text())
    rows = result["rows"]
    solvers = {r["solver"] for r in rows}
    assert solvers == {
        "l1optax.lasso",
        "sklearn Lasso",
        "l1optax.lasso_path",
        "sklearn lasso_path",
        "l1optax.lasso (BCOO)",
        "sklearn Lasso (CSC)",
        "l1optax.lasso (logistic)",
        "sklearn LogisticRegression (liblinear)",
    }
    for r in rows:
        assert 0 < r["time_ms"] < 60_000
        assert 0 <= r["rel_gap"] <= result["target_relative_gap"] == 1e-6
        assert r["iterations"] >= 1
    assert "| problem | solver |" in out and "jax: " in out


CERTIFICATES = """
import sys, warnings
import numpy as np
sys.path.insert(0, {bench_dir!r})
import solvers as S
import l1optax
from sklearn.linear_model import Lasso, LogisticRegression

# the sparse lasso gap equals lasso_duality_gap on the same matrix, dense
X, y, alpha = S.make_sparse_problem(40, 120, 0.1)
w = np.random.default_rng(0).standard_normal(120) * (np.arange(120) < 5)
primal = np.sum((y - X @ w) ** 2) / 80 + alpha * np.abs(w).sum()
want = float(l1optax.lasso_duality_gap(X.toarray(), y, w, alpha)) / primal
assert np.isclose(S.sparse_relative_gap(X, y, w, alpha), want, rtol=1e-10), want

# the logistic gap is ~0 at scikit-learn's solution, positive away from it
X, y, alpha = S.make_logistic_problem(200, 30)
ref = LogisticRegression(penalty="l1", C=1 / (alpha * 200), solver="liblinear",
                         fit_intercept=False, tol=1e-12, max_iter=100_000,
                         random_state=0).fit(X, y).coef_[0]
assert 0 <= S.logistic_relative_gap(X, y, ref, alpha) < 1e-8
assert S.logistic_relative_gap(X, y, np.zeros(30), alpha) > 1e-3
assert S.logistic_relative_gap(X, y, ref * 1.1, alpha) > 1e-6
print("ok")
"""


def test_sparse_and_logistic_certificates_match_references():
    code = CERTIFICATES.format(bench_dir=str(BENCH.parent))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


INTERLEAVING = """
import sys
sys.path.insert(0, {bench_dir!r})
import solvers as S

calls = []

def make(name, certified_at):
    def run(tol):
        calls.append((name, tol))
        return (tol <= certified_at), 1
    return lambda *data: run

entries = [("a", make("a", 1e-4), [1e-3, 1e-4, 1e-5]), ("b", make("b", 1e-3), [1e-3]),
           ("never", make("never", 0.0), [1e-3, 1e-4])]
opts = {{"gpu": False}}
rows = S.time_solvers("p", entries, (), lambda ok: 0.0 if ok else 1.0, 3, opts)
# after calibration: 3 rounds, each running the two certified (fast) solvers once, each
# timed run right after an untimed one of the same solver (timed warm)
timed = calls[-12:]
for k in range(3):
    pairs = timed[4 * k: 4 * k + 4]
    assert pairs[0] == pairs[1] and pairs[2] == pairs[3], calls
    assert sorted([pairs[0], pairs[2]]) == [("a", 1e-4), ("b", 1e-3)], calls
by = {{r["solver"]: r for r in rows}}
assert [r["solver"] for r in rows] == ["a", "b", "never"]
assert by["a"]["tol"] == 1e-4 and len(by["a"]["times_ms"]) == 3 and by["a"]["time_ms"] > 0
assert by["never"]["time_ms"] != by["never"]["time_ms"] and by["never"]["times_ms"] == []
assert ("never", 1e-4) in calls and calls.count(("never", 1e-4)) == 1  # never timed
# every solver runs right after each of the others at some point (a rotation would not)
calls.clear()
four = [(name, make(name, 1.0), [1e-3]) for name in "wxyz"]
S.time_solvers("q", four, (), lambda ok: 0.0, 12, opts)
sequence = [name for name, _ in calls[-96:]][1::2]  # the timed runs
before = {{name: set() for name in "wxyz"}}
for prev, name in zip(sequence, sequence[1:]):
    before[name].add(prev)
assert all(v >= set("wxyz") - {{name}} for name, v in before.items()), before
print("ok")
"""


def test_solvers_are_timed_in_interleaved_rounds_after_calibration():
    # drift in the machine's load must fall on every solver of a problem alike
    code = INTERLEAVING.format(bench_dir=str(BENCH.parent))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
