"""``benchmarks/step_overhead.py`` runs in its quick mode and reports numbers that add up.

No timing assertions (the machine is shared): the checks are on which pairs are timed, the ratio
and byte arithmetic, the state bytes against ``jax.eval_shape``, and the device checks that
``benchmarks/gpu.sh`` relies on.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import l1optax

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "l1optax_bench_step_overhead", os.path.join(BENCH, "step_overhead.py")
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
def quick(bench, tmp_path_factory):
    """One per-call run of the SGD and Adam families (flat rows included), with the checks."""
    path = tmp_path_factory.mktemp("bench") / "out.json"
    argv = ["--quick", "--leaves", "2", "--no-torch", "--mode", "per-call", "--family", "sgd,adam"]
    result = bench.main([*argv, "--check", "--json", str(path)])
    with open(path, encoding="utf-8") as f:
        return result, json.load(f)


def test_help_lists_the_flags_gpu_sh_uses(bench):
    text = bench.build_parser().format_help()
    for flag in ("--size", "--leaves", "--dtype", "--mode", "--repeats", "--json", "--quick"):
        assert flag in text
    for flag in ("--check-only", "--family", "--only", "--budget-s", "--no-base", "--no-torch"):
        assert flag in text


def test_parse_size(bench):
    assert bench.parse_size("8M") == 8 * 2**20
    assert bench.parse_size("64k") == 64 * 2**10
    assert bench.parse_size("1G") == 2**30
    assert bench.parse_size("1e6") == 10**6


def test_each_exported_prox_optimizer_is_paired_with_its_optax_base(bench, monkeypatch):
    monkeypatch.setattr(l1optax, "prox_nadam", lambda lr, lam: optax.nadam(lr), raising=False)
    monkeypatch.delattr(l1optax, "prox_rmsprop", raising=False)
    pairs = {v.name: v.base for v in bench.variants() if v.kind == "tx"}
    assert pairs["prox_sgd"] == "optax.sgd" and pairs["prox_adam"] == "optax.adam"
    assert pairs["prox_nadam"] == "optax.nadam"  # resolved at run time
    assert "prox_rmsprop" not in pairs and "optax.rmsprop" not in pairs
    assert pairs["chain(adam, apply_l1_prox)"] == pairs["adam + with_l1(proximal)"] == "optax.adam"
    for prox_name, base, kwargs, _ in bench.PAIRS:
        if hasattr(l1optax, prox_name):
            assert pairs[prox_name] == bench._base_name(base, kwargs)
    assert bench._base_name("adamw", {"weight_decay": 0.0}) == "optax.adamw(weight_decay=0)"


def test_rows_add_up_ratios_bytes_and_arrays(quick):
    result, on_disk = quick
    rows = on_disk["rows"]
    assert len(result["rows"]) == len(rows) and on_disk["env"]["jax"] == jax.__version__
    n, leaves = on_disk["config"]["size"], on_disk["config"]["leaves"]
    ms = {r["variant"]: r["ms"] for r in rows}
    for name in ("optax.sgd", "optax.adam", "prox_sgd", "prox_adam", "chain(adam, apply_l1_prox)"):
        assert name in ms
    assert all(not r.get("skipped") for r in rows), [r["skipped"] for r in rows if r.get("skipped")]
    for r in rows:
        assert r["ms"] > 0 and math.isfinite(r["ms"])
        assert r["vs base"] == pytest.approx(r["ms"] / ms[r["base"]], rel=1e-9)
        passes = 3 if r["base"] == "optax.sgd" else 7
        assert r["GB/s"] == pytest.approx(passes * 4 * n / (r["ms"] * 1e-3) / 1e9, rel=1e-9)
        assert r["peak_bytes"] is None or r["argument_bytes"] >= 2 * 4 * n  # params + grads
    row = {r["variant"]: r for r in rows}
    assert row["optax.adam"]["arrays_in"] == 4 * leaves + 1  # p, g, mu, nu per leaf + count
    assert row["flat: optax.adam"]["arrays_in"] == 4 + 1  # one buffer each
    assert row["optax.sgd"]["arrays_in"] == 2 * leaves
    assert row["optax.adam"]["state_B/param"] == pytest.approx(8 + 4 / n)
    assert row["adam + with_l1(subgradient)"]["state_B/param"] == pytest.approx(8 + 4 / n)


def test_ratio_table_has_each_variant_against_its_base_with_state_bytes(quick):
    _, on_disk = quick
    table = {r["variant"]: r for r in on_disk["ratios"]}
    assert "optax.adam" not in table  # bases are the denominators, not rows
    rows = {r["variant"]: r for r in on_disk["rows"]}
    params = {f"p{i:04d}": jax.ShapeDtypeStruct((on_disk["config"]["size"] // 2,), jnp.float32)
              for i in range(2)}  # fmt: skip
    for name, entry in table.items():
        assert entry["per-call vs base"] == rows[name]["vs base"]
        assert entry["base state B/param"] == rows[entry["base"]]["state_B/param"]
    shapes = jax.eval_shape(l1optax.prox_adam(1e-3, 1e-2).init, params)
    nbytes = sum(np.prod(x.shape) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(shapes))
    assert table["prox_adam"]["state B/param"] == pytest.approx(nbytes / on_disk["config"]["size"])


def test_loop_mode_times_inside_one_fori_loop(bench):
    result = bench.main(
        ["--quick", "--leaves", "2", "--no-torch", "--mode", "loop", "--only", "prox_adam"]
    )
    rows = {r["variant"]: r for r in result["rows"]}
    assert {"optax.adam", "prox_adam", "flat: prox_adam"} <= set(rows)
    picked = [r for r in rows.values() if "prox_adam" in r["variant"]]  # prox_adamw too, if any
    assert set(rows) == {r["variant"] for r in picked} | {r["base"] for r in picked}
    assert all(r["mode"] == "loop" for r in rows.values())
    ratios = {r["variant"]: r for r in result["ratios"]}
    assert ratios["prox_adam"]["loop vs base"] == rows["prox_adam"]["vs base"]


def test_device_checks_pass_and_would_catch_a_wrong_prox(bench, quick, monkeypatch):
    _, on_disk = quick
    assert len(on_disk["checks"]) >= 2 and all(c["ok"] for c in on_disk["checks"])
    assert (
        sum("vs NumPy" in c["check"] for c in on_disk["checks"]) >= 2
    )  # gpu.sh's test reads these
    real = bench.l1optax.apply_l1_prox
    monkeypatch.setattr(
        bench.l1optax, "apply_l1_prox", lambda lr, lam, **kw: real(lr, 2 * lam, **kw)
    )
    assert not bench.run_checks(4096, 4, 0)[0]["ok"]


def test_a_variant_that_cannot_be_built_is_reported_not_dropped(bench):
    def broken():
        raise ValueError("`with_l1(...)` needs the optimizer's metric")

    params, grads = bench.make_tree(64, 1, jnp.float32, 0)
    good = bench.Variant("optax.sgd", "optax.sgd", lambda: optax.sgd(1e-3), 3)
    bad = bench.Variant("adam + with_l1(proximal)", "optax.adam", broken, 7)
    rows = bench.run_variants([good, bad], params, grads, mode="per-call", repeats=1, warmup=0,
                              loop_steps=2)  # fmt: skip
    assert rows[0]["ms"] > 0
    assert rows[1]["ms"] is None and "needs the optimizer's metric" in rows[1]["skipped"]
    summary = {r["variant"]: r for r in bench.add_ratios(rows)}
    assert summary["adam + with_l1(proximal)"]["note"].startswith("ValueError")


def test_budget_stops_starting_new_variants(bench):
    params, grads = bench.make_tree(64, 1, jnp.float32, 0)
    sgd = bench.Variant("optax.sgd", "optax.sgd", lambda: optax.sgd(1e-3), 3)
    rows = bench.run_variants([sgd, sgd], params, grads, mode="per-call", repeats=1, warmup=0,
                              loop_steps=2, budget_s=0.0)  # fmt: skip
    assert rows[0]["ms"] > 0 and rows[1]["skipped"] == "--budget-s spent"


def test_penalty_in_loss_step_adds_lam_sign_p_to_the_gradient(bench):
    params, grads = bench.make_tree(64, 2, jnp.float32, 0)
    params["p0000"] = params["p0000"].at[0].set(0.0)
    seen = {}

    class Spy:
        def update(self, g, s, p):
            seen["g"] = g
            return jax.tree.map(jnp.zeros_like, g), s

    bench.step_fn(bench.Variant("x", "x", Spy, 7, "penalty_in_loss"), Spy())(params, None, grads)
    for k in params:
        ref = np.asarray(grads[k], np.float64) + bench.LAM * np.sign(np.asarray(params[k]))
        np.testing.assert_allclose(np.asarray(seen["g"][k]), ref, rtol=1e-6, atol=1e-9)
    assert float(seen["g"]["p0000"][0]) == float(grads["p0000"][0])  # sign(0) = 0


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_torch_peers_when_installed():
    sys.path.insert(0, BENCH)
    try:
        import _peers
    finally:
        sys.path.remove(BENCH)
    rows = _peers.torch_rows(2**12, 4, "float32", 1e-3, 1e-2, 2, 1)
    names = {r["variant"]: r for r in rows}
    assert any(n.startswith("torch Adam(") and n.endswith("+ softshrink") for n in names)
    assert names["torch SGD + softshrink"]["base"] == "optax.sgd"
    assert all(r["ms"] > 0 for r in rows)
