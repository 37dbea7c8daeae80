"""benchmarks/sparsity_quality.py runs (--quick) and its numbers say what RESULTS.md claims."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

pytest.importorskip("sklearn")

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "sparsity_quality.py"


def _load():
    spec = importlib.util.spec_from_file_location("sparsity_quality_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _load().main(["--help"])
    assert exit_info.value.code == 0
    assert "--quick" in capsys.readouterr().out


def test_quick_run_writes_json_and_cumulative_support_is_stable(tmp_path, capsys):
    out = tmp_path / "sq.json"
    result = _load().main(["--quick", "--json", str(out)])
    printed = capsys.readouterr().out
    assert "| method |" in printed and "cumulative_l1" in printed
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    lasso = {r["method"]: r for r in result["lasso"]}
    cum, prox = lasso["cumulative_l1"], lasso["prox SGD (apply_l1_prox)"]
    assert cum["support_equals_sklearn"] and cum["support_changes_last_10pct"] == 0
    assert prox["support_changes_last_10pct"] > 10 * max(1, cum["support_changes_last_10pct"])
    assert lasso["subgradient SGD"]["exact_zeros"] == 0  # no exact zeros from a subgradient
    assert lasso["prox_adam"]["support_equals_sklearn"]
    assert not lasso["chain(adam, apply_l1_prox)"]["support_equals_sklearn"]
    assert cum["objective_gap_rel"] < 1e-3
    digits = {r["method"]: r for r in result["digits"]}
    assert digits["adam (no L1)"]["zero_weights_pct"] == 0.0
    assert digits["prox_adam"]["zero_weights_pct"] > 10.0
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in result["digits"])
