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
