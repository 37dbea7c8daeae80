"""benchmarks/sparse_training.py runs (--quick) and its numbers are what the table says."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys

import numpy as np
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
    rows = {(r["task"], r["method"], r["target"]): r for r in result["rows"]}
    assert {task for task, _, _ in rows} == {"mlp"}
    for target in result["targets"]:
        # magnitude pruning is exact by construction; target_sparsity within one point
        assert rows[("mlp", "gmp global", target)]["sparsity_mean"] == pytest.approx(
            target, abs=1e-3
        )
        assert abs(rows[("mlp", "l1 (prox_adam)", target)]["sparsity_mean"] - target) <= 0.01
        # + ft: the support found by the end of the ramp (20 steps in all here: a few points
        # off the target), then frozen
        assert abs(rows[("mlp", "l1 + ft", target)]["sparsity_mean"] - target) <= 0.05
        # group: each hidden layer loses the units that give the column's structured sparsity
        assert abs(rows[("mlp", "group", target)]["sparsity_mean"] - target) <= 0.05
    assert rows[("mlp", "l1 + ft", 0.9)]["acc_mean"] > 0.2  # the fine-tune trained (chance 0.1)
    timing = result["timing"]
    assert timing["kernel_params_pruned"] < timing["kernel_params_dense"]
    for row in timing["rows"]:
        assert row["max_abs_diff_pruned"] <= 1e-5
        assert row["dense_us"] > 0 and row["pruned_us"] > 0 and row["bcoo_us"] > 0


def test_group_unit_target_gives_the_structured_sparsity_asked_for():
    bench = _load()
    task = bench.load_task("mlp", quick=False)
    params = task.init(bench.jax.random.PRNGKey(0))
    sizes = {k: params[k]["kernel"].shape for k in params}  # 61x256, 256x256, 256x10
    for sparsity in (0.9, 0.99):
        k = 1.0 - bench.group_unit_target(task, params, sparsity)
        left = (
            sizes["dense_0"][0] * sizes["dense_0"][1] * k
            + sizes["dense_1"][0] * sizes["dense_1"][1] * k * k
            + sizes["dense_2"][0] * sizes["dense_2"][1] * k
        )
        total = sum(a * b for a, b in sizes.values())
        assert 1.0 - left / total == pytest.approx(sparsity, abs=1e-6)


def test_group_unit_target_keeps_a_unit_in_every_hidden_layer():
    bench = _load()
    task = bench.load_task("cnn", quick=False)
    # the shapes only (an eager init compiles the partitionable threefry PRNG: ~10 s on CPU)
    params = bench.jax.eval_shape(task.init, bench.jax.random.PRNGKey(0))
    fewest = min(params[k]["kernel"].shape[-1] for k in task.hidden)  # conv_0: 8 channels
    for sparsity in (0.9, 0.99):  # both need more than 7 of conv_0's 8 channels removed
        assert bench.group_unit_target(task, params, sparsity) == (fewest - 1) / fewest


def test_im2col_conv_equals_lax_conv():
    bench = _load()
    jax, jnp = bench.jax, bench.jnp
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3))
    layer = {
        "kernel": jax.random.normal(jax.random.PRNGKey(1), (3, 3, 3, 5)),
        "bias": jnp.arange(5.0),
    }
    want = (
        jax.lax.conv_general_dilated(
            x, layer["kernel"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        + layer["bias"]
    )
    assert float(jnp.max(jnp.abs(bench._conv(x, layer) - want))) <= 1e-5
    # the CNN task (8x8x1 digits) runs through it: logits for every test image
    task = bench.load_task("cnn", quick=True)
    rng = np.random.default_rng(0)  # init's shapes, NumPy's values (no PRNG to compile)
    params = jax.tree.map(
        lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), s.dtype),
        jax.eval_shape(task.init, jax.random.PRNGKey(0)),
    )
    logits = jax.jit(task.apply)(params, jnp.asarray(task.x_test))
    assert logits.shape == (len(task.y_test), 10) and bool(jnp.all(jnp.isfinite(logits)))


def test_from_json_merges_runs_later_files_winning(tmp_path, capsys):
    def raw(task, method, target, acc):
        return {
            "task": task,
            "method": method,
            "target": target,
            "accuracy": acc,
            "sparsity": [target] * len(acc),
        }

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(
        json.dumps(
            {"raw": [raw("mlp", "adam", 0.0, [0.9, 0.8]), raw("mlp", "l0", 0.9, [0.5, 0.5])]}
        )
    )
    b.write_text(json.dumps({"raw": [raw("mlp", "l0", 0.9, [0.7, 0.9])], "errors": ["x"]}))
    out, png = tmp_path / "m.json", tmp_path / "m.png"
    result = _load().main(["--from-json", f"{a},{b}", "--json", str(out), "--plot", str(png)])
    rows = {(r["method"], r["target"]): r for r in result["rows"]}
    assert rows[("l0", 0.9)]["acc_mean"] == pytest.approx(0.8)
    assert rows[("l0", 0.9)]["acc_std"] == pytest.approx(0.1)  # population std over seeds
    assert rows[("adam", 0.0)]["acc_mean"] == pytest.approx(0.85)
    assert result["errors"] == ["x"] and result["targets"] == [0.9]
    assert "| l0 | 80.0 ± 10.0 [90.0] |" in capsys.readouterr().out
    assert json.loads(out.read_text())["rows"] == result["rows"] and png.stat().st_size > 1000
