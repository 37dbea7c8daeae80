"""examples/tune_lambda.py --quick runs and its printed numbers are sane.

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

OUT = pathlib.Path(tempfile.mkdtemp(prefix="l1optax-tune-lambda-"))
atexit.register(shutil.rmtree, OUT, ignore_errors=True)
RUNS = {  # test name -> the example's arguments
    "test_help": ["--help"],
    "test_hypergradient_descent_reaches_the_validation_minimum": ["--quick", "--out", str(OUT)],
}
EXAMPLE = ExampleRuns("tune_lambda.py", RUNS)
start_in_background = EXAMPLE.start_in_background  # called after collection (conftest.py)
_run = EXAMPLE.stdout


def test_help():
    out = _run("test_help")
    assert "--quick" in out and "--steps" in out and "LassoCV" in out


def test_hypergradient_descent_reaches_the_validation_minimum():
    out = _run("test_hypergradient_descent_reaches_the_validation_minimum")
    rows = {
        line.split(":")[0]: dict(re.findall(r"(\w+)=(\S+)", line))
        for line in out.splitlines()
        if "alpha=" in line
    }
    assert set(rows) == {"descent", "grid", "lassocv", "lasso_cv"}
    value = {k: {f: float(v) for f, v in r.items()} for k, r in rows.items()}
    # from alpha_max / 1000, the gradient steps end at the validation curve's minimum (the
    # 30-point grid's best within 1%), far from where they started
    assert value["descent"]["validation"] <= 1.01 * value["grid"]["validation"]
    assert 0.5 < value["descent"]["alpha"] / value["grid"]["alpha"] < 2.0
    # lasso_cv is LassoCV: the same grid, folds and criterion
    assert value["lasso_cv"]["alpha"] == pytest.approx(value["lassocv"]["alpha"], rel=1e-6)
    for r in value.values():
        assert 0 < r["test"] < 1e5 and r["nonzeros"] > 0
    png = OUT / "tune_lambda.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"saved {png}" in out
