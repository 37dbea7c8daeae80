"""Smoke tests: the Flax examples' --quick modes run, and the numbers they print are sane."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _percentages(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"(-?\d+\.\d+)%", text)]


def _assert_png(path: Path) -> None:
    assert path.exists(), path
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_sparse_mlp_quick(tmp_path, capsys):
    sparse_mlp = _load("sparse_mlp")
    results = sparse_mlp.main(["--quick", "--no-progress", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    by_method = {r.method: r for r in results}
    assert set(by_method) == {"adam", "adam + subgradient", "adam + uniform prox", "prox_adam"}
    for r in results:
        assert 0.5 < r.accuracy <= 1.0, r  # chance is 0.1
        assert 0.0 <= r.sparsity <= 1.0, r
    assert by_method["adam"].sparsity == 0.0
    assert by_method["adam + subgradient"].sparsity == 0.0  # a subgradient makes no exact zeros
    assert by_method["prox_adam"].sparsity > 0.05
    # The printed table shows the same numbers, all percentages in [0, 100].
    pct = _percentages(out)
    assert pct and all(-100 <= p <= 100 for p in pct)
    line = next(x for x in out.splitlines() if x.startswith("prox_adam"))
    assert f"{100 * by_method['prox_adam'].accuracy:.2f}%" in line
    assert f"{100 * by_method['prox_adam'].sparsity:.2f}%" in line
    # Independent recount of the exact zeros is not possible after main returns; check the
    # kernel_stats helper against NumPy on a model instead.
    from flax import nnx

    model = sparse_mlp.MLP((4, 3, 2), nnx.Rngs(0))
    model.layers[0].kernel[...] = jnp.array([[0.0, 1, 0], [0, 2, 0], [0, 0, 0], [0, 3, 0]])
    sparsity, dead = sparse_mlp.kernel_stats(model)
    k1 = np.asarray(model.layers[1].kernel[...])
    assert sparsity == (9 + int((k1 == 0).sum())) / 18
    assert dead == 2
    _assert_png(tmp_path / "sparse_mlp.png")


def test_linen_group_lasso_quick(tmp_path, capsys):
    example = _load("linen_group_lasso")
    results = example.main(["--quick", "--no-progress", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    for r in results:
        assert 0.5 < r.accuracy <= 1.0
        assert r.pruned_accuracy == r.accuracy  # dropping the zero units changes nothing
        assert r.max_logit_diff < 1e-4
        assert all(0 <= u <= 128 for u in r.units)
        sizes = (64, *r.units, 10)
        assert r.pruned_params == sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    assert sum(results[0].units) < 2 * 128  # --quick's lam removes whole units in 3 epochs
    assert "units kept" in out
    assert all(0 <= p <= 100 for p in _percentages(out))
    _assert_png(tmp_path / "linen_group_lasso.png")


def test_linen_prune_folds_dead_units_exactly():
    """prune() on hand-made params: dead units removed, relu(bias) folded, same logits."""
    example = _load("linen_group_lasso")
    rng = np.random.default_rng(0)
    h1, h2 = example.HIDDEN
    params = {
        "Dense_0": {"kernel": rng.normal(size=(64, h1)), "bias": rng.normal(size=h1)},
        "Dense_1": {"kernel": rng.normal(size=(h1, h2)), "bias": rng.normal(size=h2)},
        "Dense_2": {"kernel": rng.normal(size=(h2, 10)), "bias": rng.normal(size=10)},
    }
    params["Dense_0"]["kernel"][:, [0, 5, 7]] = 0.0
    params["Dense_0"]["bias"][[0, 5]] = [0.7, -0.3]  # one constant-on unit, one constant-off
    params["Dense_1"]["kernel"][:, 3] = 0.0
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    pruned, units = example.prune(params)
    assert units == (h1 - 3, h2 - 1)
    x = jnp.asarray(rng.normal(size=(32, 64)), jnp.float32)
    full = example.MLP((h1, h2, 10)).apply({"params": params}, x)
    small = example.MLP((*units, 10)).apply({"params": pruned}, x)
    np.testing.assert_allclose(np.asarray(small), np.asarray(full), rtol=1e-4, atol=1e-4)
    # A layer with every unit dead keeps one constant unit (width 0 is not a Dense layer).
    params["Dense_1"]["kernel"] = jnp.zeros_like(params["Dense_1"]["kernel"])
    pruned, units = example.prune(params)
    assert units == (h1 - 3, 1)
    full = example.MLP((h1, h2, 10)).apply({"params": params}, x)
    small = example.MLP((*units, 10)).apply({"params": pruned}, x)
    np.testing.assert_allclose(np.asarray(small), np.asarray(full), rtol=1e-4, atol=1e-4)


def test_migrating_values_match(capsys):
    migrating = _load("migrating")
    numbers = migrating.main(["--quick", "--no-progress"])
    out = capsys.readouterr().out
    seed_value, ours = numbers["numpy"]
    assert seed_value == pytest.approx(0.075, abs=1e-12)  # SEED.md's documented output
    assert ours == pytest.approx(0.075, rel=1e-6)
    assert re.search(r"numpy recipe\s*:\s*0\.075\b", out)
    assert re.search(r"l1optax\s*:\s*0\.075\b", out)
    for key in ("keras_first_layer", "keras_every_layer"):
        ref, got = numbers[key]
        assert got == pytest.approx(ref, rel=1e-6) and ref > 0
    assert numbers["keras_first_layer"][0] < numbers["keras_every_layer"][0]
    torch_value, ours_torch, formula = numbers["torch"]
    assert ours_torch == pytest.approx(formula, rel=1e-6)
    assert ours_torch > numbers["keras_every_layer"][0]  # the torch recipe includes biases
    if torch_value is None:
        assert "PyTorch is not installed" in out
    else:
        assert torch_value == pytest.approx(ours_torch, rel=1e-5)
    zeros = numbers["zeros"]
    assert zeros["penalty in the loss + adam"] == 0.0
    assert zeros["with_l1(adam, subgradient)"] == 0.0
    assert zeros["prox_adam"] > 0.1
    assert all(0.0 <= z <= 1.0 for z in zeros.values())


@pytest.mark.parametrize("name", ["sparse_mlp", "linen_group_lasso", "migrating"])
def test_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _load(name).main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--quick" in out and "usage:" in out
