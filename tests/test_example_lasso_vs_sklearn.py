"""examples/lasso_vs_sklearn.py --quick runs and its printed numbers are sane.

Run in a subprocess: the example enables float64 globally, which must not leak into other tests.
Both runs start right after collection and run while the other tests do (``start_in_background``).
"""

from __future__ import annotations

import atexit
import pathlib
import re
import shutil
import sys
import tempfile

import pytest
from _helpers import start_background, wait_background

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "lasso_vs_sklearn.py"
OUT = pathlib.Path(tempfile.mkdtemp(prefix="l1optax-lasso-vs-sklearn-"))
atexit.register(shutil.rmtree, OUT, ignore_errors=True)
RUNS = {  # test name -> the example's arguments
    "test_help": ["--help"],
    "test_quick_paths_agree_with_sklearn": ["--quick", "--out", str(OUT)],
}


def _argv(args):
    return [sys.executable, "-W", "error", str(EXAMPLE), *args]


def start_in_background(items):
    """Called after collection (conftest.py): the selected runs start now, in subprocesses."""
    for item in items:
        if item.name in RUNS:
            start_background(f"lasso_vs_sklearn:{item.name}", _argv(RUNS[item.name]))


def _run(name: str) -> str:
    proc = wait_background(f"lasso_vs_sklearn:{name}", _argv(RUNS[name]), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _fields(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", line))


def test_help():
    out = _run("test_help")
    assert "--quick" in out and "--out" in out and "l1_path" in out


def test_quick_paths_agree_with_sklearn():
    out = _run("test_quick_paths_agree_with_sklearn")
    lines = {line.split(":")[0]: line for line in out.splitlines() if "points=" in line}
    assert set(lines) == {"diabetes", "breast_cancer"}
    diabetes, cancer = _fields(lines["diabetes"]), _fields(lines["breast_cancer"])
    for f in (diabetes, cancer):
        assert int(f["points"]) == 8
        assert f["same_support"] == "True" and f["converged"] == "True"
    # lasso_path: coefficients of size ~1e3 agree to 1e-6 relative, gap certified at 1e-8
    assert float(diabetes["rel_diff"]) < 1e-6
    assert 0 <= float(diabetes["max_rel_gap"]) < 1e-8
    # liblinear is the less accurate side here; our KKT certificate is tight
    assert float(cancer["rel_diff"]) < 1e-4
    assert 0 <= float(cancer["max_kkt"]) < 1e-8
    png = OUT / "lasso_vs_sklearn.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"saved {png}" in out
