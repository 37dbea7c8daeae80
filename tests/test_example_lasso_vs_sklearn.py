"""examples/lasso_vs_sklearn.py --quick runs and its printed numbers are sane.

Run in a subprocess: the example enables float64 globally, which must not leak into other tests.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "lasso_vs_sklearn.py"


def _run(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _fields(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", line))


def test_help():
    out = _run("--help")
    assert "--quick" in out and "--out" in out and "l1_path" in out


def test_quick_paths_agree_with_sklearn(tmp_path):
    out = _run("--quick", "--out", str(tmp_path))
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
    png = tmp_path / "lasso_vs_sklearn.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"saved {png}" in out
