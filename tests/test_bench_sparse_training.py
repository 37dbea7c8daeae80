"""benchmarks/sparse_training.py runs (--quick) and its numbers are what the table says."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("flax")

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "sparse_training.py"


def _load():
    spec = importlib.util.spec_from_file_location("sparse_training_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass resolves annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _load().main(["--help"])
    assert exit_info.value.code == 0
    assert "--quick" in capsys.readouterr().out


def test_quick_run_hits_targets_and_pruned_model_matches(tmp_path, capsys):
    out, png = tmp_path / "st.json", tmp_path / "st.png"
    result = _load().main(["--quick", "--json", str(out), "--plot", str(png)])
    printed = capsys.readouterr().out
    assert "| method |" in printed and "inference" in printed
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert png.stat().st_size > 1000
    rows = {(r["method"], r["target"]): r for r in result["rows"]}
    for target in result["targets"]:
        # magnitude pruning is exact by construction; target_sparsity within one point
        assert rows[("gmp global", target)]["sparsity_mean"] == pytest.approx(target, abs=1e-3)
        assert abs(rows[("l1 (prox_adam)", target)]["sparsity_mean"] - target) <= 0.01
        assert rows[("group", target)]["sparsity_mean"] > 0.5  # whole units removed
    timing = result["timing"]
    assert timing["kernel_params_pruned"] < timing["kernel_params_dense"]
    for row in timing["rows"]:
        assert row["max_abs_diff_pruned"] <= 1e-5
        assert row["dense_us"] > 0 and row["pruned_us"] > 0 and row["bcoo_us"] > 0
