"""Smoke test: ``benchmarks/step_overhead.py`` runs in its quickest mode and reports sane numbers.

No timing assertions (the machine is shared); the checks are on the table and JSON shape, on the
byte model, on the memory/state accounting against values computed here independently, and on the
device-correctness checks the GPU script relies on.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

import l1optax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")


def _load(name):
    spec = importlib.util.spec_from_file_location(
        f"l1optax_bench_{name}", os.path.join(BENCH, f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    sys.path.insert(0, BENCH)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(BENCH)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load("step_overhead")


@pytest.fixture(scope="module")
def quick_result(bench, tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "out.json"
    result = bench.main(["--quick", "--leaves", "4", "--no-torch", "--check", "--json", str(path)])
    with open(path, encoding="utf-8") as f:
        return result, json.load(f)


def test_help_runs():
    out = subprocess.run(
        [sys.executable, os.path.join(BENCH, "step_overhead.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    for flag in (
        "--size",
        "--leaves",
        "--dtype",
        "--mode",
        "--repeats",
        "--json",
        "--quick",
        "--check",
    ):
        assert flag in out.stdout


def test_parse_size(bench):
    assert bench.parse_size("8M") == 8 * 2**20
    assert bench.parse_size("64k") == 64 * 2**10
    assert bench.parse_size("1G") == 2**30
    assert bench.parse_size("1e6") == 10**6
    assert bench.parse_size("0.5M") == 2**19


def test_quick_run_has_every_variant_in_both_modes(quick_result):
    result, on_disk = quick_result
    rows = on_disk["rows"]
    names = {r["variant"] for r in rows}
    expected = {
        "optax.sgd",
        "optax.adam",
        "sgd + with_l1(subgradient)",
        "adam + with_l1(subgradient)",
        "sgd + with_l1(proximal)",
        "adam + with_l1(proximal)",
        "sgd + penalty in loss",
        "adam + penalty in loss",
        "grad of penalty alone",
        "optax.flatten(adam + prox)",
        "flat: optax.adam",
        "flat: adam + with_l1(proximal)",
    }
    if hasattr(l1optax, "prox_adam"):
        expected |= {"prox_adam", "flat: prox_adam"}
    if hasattr(l1optax, "prox_sgd"):
        expected |= {"prox_sgd", "flat: prox_sgd"}
    assert expected <= names
    for mode in ("per-call", "loop"):
        mode_names = {r["variant"] for r in rows if r["mode"] == mode}
        assert expected <= mode_names
    assert on_disk["config"]["size"] == 2**16 and on_disk["config"]["leaves"] == 4
    assert on_disk["env"]["jax"] == jax.__version__
    assert len(result["rows"]) == len(rows)


def test_rows_are_consistent_with_the_byte_model(quick_result):
    _, on_disk = quick_result
    n = on_disk["config"]["size"]
    for r in on_disk["rows"]:
        assert r["ms"] > 0 and math.isfinite(r["ms"])
        passes = {"sgd": 3, "adam": 7, "penalty": 2}[r["family"]]
        assert r["GB/s"] == pytest.approx(passes * 4 * n / (r["ms"] * 1e-3) / 1e9, rel=1e-9)
        base = "optax.adam" if r["family"] in ("adam", "penalty") else "optax.sgd"
        base_ms = next(
            b["ms"] for b in on_disk["rows"] if b["variant"] == base and b["mode"] == r["mode"]
        )
        assert r["vs base"] == pytest.approx(r["ms"] / base_ms, rel=1e-9)
        if r["variant"] in ("optax.sgd", "optax.adam"):
            assert r["vs base"] == 1.0


def test_arrays_passed_per_call_and_state_bytes(quick_result):
    """Leaf counting: plain Adam passes p, g, m, v per leaf (+ count); the fast path 4 buffers."""
    _, on_disk = quick_result
    leaves = on_disk["config"]["leaves"]
    row = {(r["variant"], r["mode"]): r for r in on_disk["rows"]}
    assert row["optax.adam", "per-call"]["arrays_in"] == 4 * leaves + 1
    assert row["flat: optax.adam", "per-call"]["arrays_in"] == 4 + 1
    assert row["optax.sgd", "per-call"]["arrays_in"] == 2 * leaves
    assert row["flat: optax.sgd", "per-call"]["arrays_in"] == 2
    n = on_disk["config"]["size"]
    assert row["optax.adam", "per-call"]["state_B/param"] == pytest.approx(8 + 4 / n)
    assert row["sgd + with_l1(proximal)", "per-call"]["state_B/param"] == pytest.approx(4 / n)
    assert row["sgd + with_l1(subgradient)", "per-call"]["state_B/param"] == 0


def test_memory_analysis_reported(quick_result):
    _, on_disk = quick_result
    n = on_disk["config"]["size"]
    for r in on_disk["rows"]:
        if r["variant"].startswith("torch"):
            continue
        if r["peak_bytes"] is None:  # backend without memory_analysis
            continue
        # the step holds at least params + grads
        assert r["argument_bytes"] >= (2 if r["family"] != "penalty" else 1) * 4 * n
        assert r["peak_bytes"] >= r["argument_bytes"] - r["alias_bytes"]


def test_state_bytes_table_matches_eval_shape(quick_result):
    _, on_disk = quick_result
    table = {r["transform"]: r for r in on_disk["state_bytes"]}
    assert table["optax.adam"]["state B/param"] == pytest.approx(8.0, abs=1e-3)
    assert table["l1_prox"]["state B/param"] == pytest.approx(0.0, abs=1e-3)
    assert table["add_l1_subgradient"]["state B/param"] == 0
    if "prox_adam" in table:
        assert table["prox_adam"]["state B/param"] == table["optax.adam"]["state B/param"]
    for name in ("cumulative_l1", "ftrl"):
        if hasattr(l1optax, name):
            assert table[name]["state B/param"] is not None, table[name]


def test_device_checks_pass_and_would_catch_a_wrong_prox(bench, quick_result, monkeypatch):
    _, on_disk = quick_result
    assert on_disk["checks"] and all(c["ok"] for c in on_disk["checks"])
    # a prox that thresholds at twice the strength must fail the NumPy check
    real = bench.l1optax.with_l1
    monkeypatch.setattr(bench.l1optax, "with_l1", lambda opt, lam, **kw: real(opt, 2 * lam, **kw))
    checks = bench.run_checks(4096, 4, jnp.float32, 0)
    assert not checks[0]["ok"]


def test_table_printed(capsys, bench):
    bench.main(
        [
            "--quick",
            "--leaves",
            "2",
            "--no-torch",
            "--mode",
            "per-call",
            "--only",
            "proximal",
            "--no-flat",
        ]
    )
    out = capsys.readouterr().out
    assert "| variant | ms | best ms | GB/s | vs base |" in out
    assert "| sgd + with_l1(proximal) |" in out and "| optax.adam |" in out
    assert "## optimizer state per parameter" in out
    assert "fori_loop" not in out  # --mode per-call prints no loop table


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_torch_peers_when_installed(bench):
    rows = bench.torch_rows(2**12, 4, "float32", repeats=2, warmup=1)
    names = [r["variant"] for r in rows]
    assert any(n.startswith("torch Adam(") and n.endswith(")") for n in names)
    assert any("softshrink" in n for n in names)
    assert "torch grad of penalty alone" in names
    assert all(r["ms"] > 0 for r in rows)


def test_grads_from_a_loss_mode(bench):
    """--grads loss: the gradient is produced inside the step (flat: through unravel)."""
    result = bench.main(
        [
            "--quick",
            "--leaves",
            "8",
            "--no-torch",
            "--mode",
            "per-call",
            "--grads",
            "loss",
            "--family",
            "adam",
            "--only",
            "flat:,proximal",
        ]
    )
    assert result["config"]["grads"] == "loss"
    row = {r["variant"]: r for r in result["rows"]}
    assert {"optax.adam", "flat: optax.adam", "adam + with_l1(proximal)"} <= set(row)
    # params + state + the scalar x: the gradients are no longer passed in
    assert row["optax.adam"]["arrays_in"] == 3 * 8 + 1 + 1
    assert row["flat: optax.adam"]["arrays_in"] == 3 + 1 + 1
    # the flat gradient is materialised once (one concatenation): temp >= one buffer
    n = result["config"]["size"]
    if row["flat: optax.adam"]["temp_bytes"] is not None:
        assert row["flat: optax.adam"]["temp_bytes"] >= 4 * n


def test_step_functions_compute_the_right_gradients(bench):
    """The penalty-in-loss step's gradient is g + lam*sign(p) (vs NumPy), in both grads modes."""
    import numpy as np

    params, grads = bench.make_tree(64, 2, jnp.float32, 0)
    params["p0000"] = params["p0000"].at[0].set(0.0)
    captured = {}

    class Spy:
        def update(self, g, s, p):
            captured["g"] = g
            return jax.tree.map(jnp.zeros_like, g), s

    v = bench.Variant("x", "adam", "penalty_in_loss")
    bench._step_fn(v, Spy())(params, None, grads)
    for k in params:
        ref = np.asarray(grads[k], np.float64) + bench.LAM * np.sign(np.asarray(params[k]))
        np.testing.assert_allclose(np.asarray(captured["g"][k]), ref, rtol=1e-6, atol=1e-9)
    assert float(captured["g"]["p0000"][0]) == float(grads["p0000"][0])  # sign(0) = 0
    x = jnp.asarray(0.5, jnp.float32)
    layout = l1optax.flat_layout(params)
    bench._step_fn(bench.Variant("x", "adam", "flat"), Spy(), grads="loss", layout=layout)(
        layout.ravel(params), None, x
    )
    np.testing.assert_allclose(
        np.asarray(captured["g"]["float32"]),
        0.5 * np.concatenate([np.asarray(params[k]) for k in sorted(params)]),
        rtol=1e-6,
    )


def test_grads_loss_mode_with_rounds(bench):
    """The interleaved (--rounds) path honours --grads loss too."""
    result = bench.main(
        [
            "--quick",
            "--leaves",
            "4",
            "--no-torch",
            "--mode",
            "per-call",
            "--grads",
            "loss",
            "--family",
            "sgd",
            "--only",
            "flat:",
            "--rounds",
            "2",
        ]
    )
    row = {r["variant"]: r for r in result["rows"]}
    assert row["optax.sgd"]["arrays_in"] == 4 + 1  # params + x, no gradient tree
    assert row["flat: optax.sgd"]["arrays_in"] == 1 + 1
    assert all(r["samples"] == 4 for r in result["rows"])  # 2 rounds x ceil(3 / 2)
