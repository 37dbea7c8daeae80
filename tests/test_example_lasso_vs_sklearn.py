"""examples/lasso_vs_sklearn.py --quick runs and its printed numbers are sane.

The runs are subprocesses started right after collection (``tests/_helpers.ExampleRuns``).
"""

from __future__ import annotations

import atexit
import pathlib
import re
import shutil
import tempfile

import pytest
from _helpers import ExampleRuns

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

OUT = pathlib.Path(tempfile.mkdtemp(prefix="l1optax-lasso-vs-sklearn-"))
atexit.register(shutil.rmtree, OUT, ignore_errors=True)
RUNS = {  # test name -> the example's arguments
    "test_help": ["--help"],
    "test_quick_paths_agree_with_sklearn": ["--quick", "--out", str(OUT)],
}
EXAMPLE = ExampleRuns("lasso_vs_sklearn.py", RUNS)
start_in_background = EXAMPLE.start_in_background  # called after collection (conftest.py)
_run = EXAMPLE.stdout


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
