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
    rows = {(r["task"], r["method"], r["target"]): r for r in result["rows"]}
    assert {task for task, _, _ in rows} == {"mlp", "cnn"}
    for target in result["targets"]:
        # magnitude pruning is exact by construction; target_sparsity within one point
        assert rows[("mlp", "gmp global", target)]["sparsity_mean"] == pytest.approx(
            target, abs=1e-3
        )
        assert abs(rows[("mlp", "l1 (prox_adam)", target)]["sparsity_mean"] - target) <= 0.01
        # + ft: the support found by the end of the ramp (20 steps in all here: a few points
        # off the target), then frozen: still mostly zeros, and the fine-tune trained
        for task in ("mlp", "cnn"):
            assert abs(rows[(task, "l1 + ft", target)]["sparsity_mean"] - target) <= 0.05
        assert rows[("mlp", "group", target)]["sparsity_mean"] > 0.5  # whole units removed
    assert rows[("cnn", "l1 + ft", 0.9)]["acc_mean"] > 0.2  # above chance (0.1)
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
