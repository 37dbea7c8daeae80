"""The README's quickstart runs and its numbers agree with scikit-learn."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

pytest.importorskip("sklearn")

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"


def _load():
    spec = importlib.util.spec_from_file_location("quickstart_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_proximal_matches_sklearn_and_subgradient_has_no_zeros(capsys):
    rows = {r["method"]: r for r in _load().main(["--steps", "3000"])}
    out = capsys.readouterr().out
    assert "| method |" in out
    reference = rows["sklearn Lasso (reference)"]
    proximal = rows["(c) proximal"]
    subgradient = rows["(b) subgradient"]
    unregularised = rows["(a) no L1 (optax.sgd)"]
    assert reference["exact_zeros"] > 0
    assert proximal["exact_zeros"] == reference["exact_zeros"]
    assert proximal["max_abs_diff_vs_sklearn"] < 1e-3
    assert proximal["objective"] == pytest.approx(reference["objective"], rel=1e-6)
    assert subgradient["exact_zeros"] == 0
    assert subgradient["objective"] > reference["objective"]
    assert unregularised["objective"] > subgradient["objective"]
