"""Parameter selection: names, paths, predicates, the Keras default, per-layer strengths."""

from __future__ import annotations

import functools
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

import l1optax


class Net(nnx.Module):
    """Every kind of parameter a Keras user meets: kernels, biases, norm scales, an embedding."""

    def __init__(self, rngs: nnx.Rngs):
        self.embed = nnx.Embed(7, 4, rngs=rngs)
        self.conv = nnx.Conv(4, 5, kernel_size=(3,), rngs=rngs)
        self.bn = nnx.BatchNorm(5, rngs=rngs)
        self.layers = nnx.List([nnx.Linear(5, 6, rngs=rngs), nnx.Linear(6, 3, rngs=rngs)])
        self.ln = nnx.LayerNorm(3, rngs=rngs)


# Written out by hand (not derived from the code under test).
NET_PATHS = {
    "bn/bias",
    "bn/scale",
    "conv/bias",
    "conv/kernel",
    "embed/embedding",
    "layers/0/bias",
    "layers/0/kernel",
    "layers/1/bias",
    "layers/1/kernel",
    "ln/bias",
    "ln/scale",
}
NET_KERNELS = {"conv/kernel", "embed/embedding", "layers/0/kernel", "layers/1/kernel"}


def _net_state(seed: int = 0):
    return nnx.state(Net(nnx.Rngs(seed)), nnx.Param)


def _np_by_path(state) -> dict[str, np.ndarray]:
    """Independent flattening: nnx's own flat_state, float64 NumPy."""
    out = {}
    for path, var in state.flat_state():
        out["/".join(str(k) for k in path)] = np.asarray(var.get_value(), np.float64)
    return out


def _selected_paths(mask) -> set[str]:
    return {p for p, m in zip(l1optax.param_paths(mask), jax.tree.leaves(mask), strict=True) if m}


def _linen_params():
    return {
        "params": {
            "Dense_0": {"kernel": jnp.arange(6.0).reshape(2, 3) - 2.5, "bias": jnp.ones(3)},
            "LayerNorm_0": {"scale": jnp.full(3, 2.0), "bias": jnp.full(3, -1.0)},
            "Dense_1": {"kernel": -jnp.ones((3, 2)), "bias": jnp.full(2, 5.0)},
            "Embed_0": {"embedding": jnp.full((4, 2), 0.5)},
        }
    }


def test_param_paths_of_nnx_state():
    assert set(l1optax.param_paths(_net_state())) == NET_PATHS
    assert len(l1optax.param_paths(_net_state())) == len(NET_PATHS)


def test_keras_mask_penalises_exactly_the_kernels_nnx():
    state = _net_state()
    mask = l1optax.keras_kernel_mask(state)
    assert _selected_paths(mask) == NET_KERNELS
    arrays = _np_by_path(state)
    lam = 0.01
    expected = lam * sum(np.abs(arrays[p]).sum() for p in NET_KERNELS)
    for m in (mask, l1optax.keras_kernel_mask):  # tree and callable
        got = l1optax.l1_penalty(state, lam, mask=m)
        np.testing.assert_allclose(float(got), expected, rtol=1e-6)
    # The complement is exactly the biases, scales: nothing else is left out.
    everything = lam * sum(np.abs(a).sum() for a in arrays.values())
    rest = l1optax.l1_penalty(state, lam, mask=l1optax.select(state, names="*", exclude=True))
    assert float(rest) == 0.0
    np.testing.assert_allclose(float(l1optax.l1_penalty(state, lam)), everything, rtol=1e-6)


def test_keras_mask_penalises_exactly_the_kernels_linen():
    params = _linen_params()
    mask = l1optax.keras_kernel_mask(params)
    assert mask == {
        "params": {
            "Dense_0": {"kernel": True, "bias": False},
            "LayerNorm_0": {"scale": False, "bias": False},
            "Dense_1": {"kernel": True, "bias": False},
            "Embed_0": {"embedding": True},
        }
    }
    # 0.01 * (|-2.5..2.5| = 9 + 6 + 8 * 0.5 = 4) = 0.19
    np.testing.assert_allclose(float(l1optax.l1_penalty(params, 0.01, mask=mask)), 0.19, rtol=1e-6)


def test_keras_mask_raises_without_kernels():
    with pytest.raises(ValueError, match=r"keras_kernel_mask.*matched none.*\(b, w\)"):
        l1optax.keras_kernel_mask({"w": jnp.ones(2), "b": jnp.ones(2)})


def test_select_by_names_paths_regex_predicate():
    state = _net_state()
    assert _selected_paths(l1optax.select(state, names="bias")) == {
        p for p in NET_PATHS if p.endswith("bias")
    }
    assert _selected_paths(l1optax.select(state, names=("scale", "embedding"))) == {
        "bn/scale",
        "ln/scale",
        "embed/embedding",
    }
    # A path glob matches a module prefix: the whole layer.
    assert _selected_paths(l1optax.select(state, paths="layers/0")) == {
        "layers/0/bias",
        "layers/0/kernel",
    }
    assert _selected_paths(l1optax.select(state, paths="layers/*/kernel")) == {
        "layers/0/kernel",
        "layers/1/kernel",
    }
    # Criteria intersect.
    assert _selected_paths(l1optax.select(state, names="kernel", paths="layers/1")) == {
        "layers/1/kernel"
    }
    assert _selected_paths(l1optax.select(state, paths=re.compile(r"^(bn|ln)/"))) == {
        "bn/bias",
        "bn/scale",
        "ln/bias",
        "ln/scale",
    }
    # The predicate sees keys as strings and ints, and the leaf.
    seen = []

    def two_d_in_layers(keys, leaf):
        seen.append(keys)
        return keys[0] == "layers" and isinstance(keys[1], int) and leaf.ndim == 2

    assert _selected_paths(l1optax.select(state, where=two_d_in_layers)) == {
        "layers/0/kernel",
        "layers/1/kernel",
    }
    assert ("layers", 0, "kernel") in seen
    assert _selected_paths(l1optax.select(state, names="kernel", exclude=True)) == (
        NET_PATHS - {"conv/kernel", "layers/0/kernel", "layers/1/kernel"}
    )


def test_select_on_lists_tuples_and_none_leaves():
    params = {"a": [jnp.ones(2), (jnp.ones(3), None)], "b": None}
    mask = l1optax.select(params, paths="a/1")
    assert mask == {"a": [False, (True, None)], "b": None}
    assert l1optax.param_paths(params) == ["a/0", "a/1/0"]
    np.testing.assert_allclose(float(l1optax.l1_penalty(params, 2.0, mask=mask)), 6.0)


@pytest.mark.parametrize(
    ("kwargs", "arg", "pattern"),
    [
        ({"names": "kernal"}, "names", "kernal"),
        ({"names": ("kernel", "wieght")}, "names", "wieght"),
        ({"paths": "layer/0"}, "paths", "layer/0"),
        ({"paths": re.compile("decoder")}, "paths", "decoder"),
    ],
)
def test_select_pattern_matching_nothing_raises(kwargs, arg, pattern):
    state = _net_state()
    with pytest.raises(
        ValueError, match=rf"select\({arg}=\.\.\.\).*{pattern}.*matched none of the 11"
    ):
        l1optax.select(state, **kwargs)
    # Non-strict: no error; the typo selects nothing.
    mask = l1optax.select(state, strict=False, **kwargs)
    if arg == "names" and len(kwargs["names"]) == 2:
        assert _selected_paths(mask) == {"conv/kernel", "layers/0/kernel", "layers/1/kernel"}
    else:
        assert not any(jax.tree.leaves(mask))


def test_select_bad_arguments():
    state = _net_state()
    with pytest.raises(TypeError, match=r"select\(names=\.\.\.\).*int"):
        l1optax.select(state, names=3)
    with pytest.raises(ValueError, match=r"select\(paths=\.\.\.\)` is empty"):
        l1optax.select(state, paths=[])
    with pytest.raises(
        TypeError, match=r"select\(where=\.\.\.\)` must return a Python bool.*bn/bias"
    ):
        l1optax.select(state, where=lambda keys, leaf: leaf[...].sum() > 0)
    with pytest.raises(TypeError, match=r"select\(where=\.\.\.\)` must be a callable"):
        l1optax.select(state, where="kernel")


def test_per_layer_strengths_apply_where_stated():
    state = _net_state()
    lam = l1optax.per_layer_l1reg(
        state, {"*": 1e-4, "layers/0": 1e-2, "layers/1/kernel": 3e-3}, default=0.5
    )
    by_path = dict(zip(l1optax.param_paths(lam), jax.tree.leaves(lam), strict=True))
    expected = {p: 1e-4 for p in NET_PATHS}  # "*" covers everything: default unused
    expected.update({"layers/0/kernel": 1e-2, "layers/0/bias": 1e-2, "layers/1/kernel": 3e-3})
    assert by_path == expected
    # With the Keras mask, only kernels keep a strength.
    lam_k = l1optax.per_layer_l1reg(
        state, {"layers/0": 1e-2}, default=1e-3, mask=l1optax.keras_kernel_mask
    )
    by_path_k = dict(zip(l1optax.param_paths(lam_k), jax.tree.leaves(lam_k), strict=True))
    expected_k = {p: 0.0 for p in NET_PATHS}
    expected_k.update({"layers/0/kernel": 1e-2, "layers/1/kernel": 1e-3, "conv/kernel": 1e-3})
    expected_k["embed/embedding"] = 1e-3
    assert by_path_k == expected_k
    # The penalty with these strengths equals the NumPy sum.
    arrays = _np_by_path(state)
    ref = sum(expected_k[p] * np.abs(arrays[p]).sum() for p in NET_PATHS)
    np.testing.assert_allclose(float(l1optax.l1_penalty(state, lam_k)), ref, rtol=1e-6)


def test_per_layer_errors():
    state = _net_state()
    with pytest.raises(
        ValueError, match=r"per_layer_l1reg\(strengths=\.\.\.\).*'layer/0'.*matched none"
    ):
        l1optax.per_layer_l1reg(state, {"layer/0": 1e-3})
    with pytest.raises(ValueError, match=r"per_layer_l1reg\(strengths\['bn'\]=\.\.\.\).*-0\.1"):
        l1optax.per_layer_l1reg(state, {"bn": -0.1})
    with pytest.raises(ValueError, match=r"per_layer_l1reg\(default=\.\.\.\).*nan"):
        l1optax.per_layer_l1reg(state, {"bn": 0.1}, default=float("nan"))
    with pytest.raises(TypeError, match=r"per_layer_l1reg\(strengths=\.\.\.\)` must be a dict"):
        l1optax.per_layer_l1reg(state, [("bn", 0.1)])
    with pytest.raises(ValueError, match=r"per_layer_l1reg\(mask=\.\.\.\)` does not match"):
        l1optax.per_layer_l1reg(state, {"bn": 0.1}, mask={"x": True})


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_per_layer_strengths_in_prox_match_numpy(jit):
    """SGD + apply_l1_prox with per-layer strengths = per-leaf soft threshold in float64 NumPy."""
    params = _linen_params()
    lam = l1optax.per_layer_l1reg(
        params,
        {"params/Dense_0": 0.5, "params/Dense_1": 2.0},
        default=0.25,
        mask=l1optax.keras_kernel_mask,
    )
    eta = 0.1
    tx = l1optax.with_l1(optax.sgd(eta), lam, learning_rate=eta)
    rng = np.random.default_rng(0)
    grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
    update = jax.jit(tx.update) if jit else tx.update
    updates, _ = update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    for path, p in jax.tree_util.tree_leaves_with_path(params):
        keys = [k.key for k in path]
        g = np.asarray(functools.reduce(lambda t, k: t[k], keys, grads), np.float64)
        z = np.asarray(p, np.float64) - eta * g
        t = eta * functools.reduce(lambda t, k: t[k], keys, lam)
        ref = np.sign(z) * np.maximum(np.abs(z) - t, 0)
        got = np.asarray(functools.reduce(lambda t, k: t[k], keys, new), np.float64)
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)
        assert np.all((got == 0) == (ref == 0)), keys


@pytest.mark.parametrize("method", ["proximal", "subgradient"])
def test_select_mask_plugs_into_transforms(method):
    """A selection mask (tree or callable) leaves unselected leaves bitwise untouched."""
    params = _linen_params()
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.3), params)
    eta, lam = 0.1, 1.0
    base = optax.sgd(eta)
    base_updates, _ = base.update(grads, base.init(params), params)
    for mask in (l1optax.keras_kernel_mask, l1optax.keras_kernel_mask(params)):
        tx = l1optax.with_l1(base, lam, method=method, learning_rate=eta, mask=mask)
        updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
        sel = l1optax.keras_kernel_mask(params)
        for u, b, m, p in zip(
            jax.tree.leaves(updates),
            jax.tree.leaves(base_updates),
            jax.tree.leaves(sel),
            jax.tree.leaves(params),
            strict=True,
        ):
            if not m:
                np.testing.assert_array_equal(np.asarray(u), np.asarray(b))
            elif method == "subgradient":
                ref = -eta * (0.3 + lam * np.sign(np.asarray(p, np.float64)))
                np.testing.assert_allclose(np.asarray(u), ref, rtol=1e-6)
            else:
                z = np.asarray(p, np.float64) - eta * 0.3
                ref = np.sign(z) * np.maximum(np.abs(z) - eta * lam, 0) - np.asarray(p)
                np.testing.assert_allclose(np.asarray(u), ref, rtol=1e-6, atol=1e-7)


@settings(max_examples=40)
@given(
    values=st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=6, max_size=6),
    lam=st.floats(0, 5, allow_nan=False),
    picks=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_selection_partitions_the_penalty(values, lam, picks):
    """penalty(mask) + penalty(complement) == penalty; per_layer with '*' == uniform strength."""
    names = [f"w{i}" for i in range(6)]
    params = {"blk": {n: jnp.asarray([v], jnp.float32) for n, v in zip(names, values, strict=True)}}
    chosen = [n for n, keep in zip(names, picks, strict=True) if keep]
    if not chosen:
        return
    sel = l1optax.select(params, names=chosen)
    rest = l1optax.select(params, names=chosen, exclude=True)
    assert all(a != b for a, b in zip(jax.tree.leaves(sel), jax.tree.leaves(rest), strict=True))
    total = lam * np.abs(np.asarray(values, np.float64)).sum()
    part = float(l1optax.l1_penalty(params, lam, mask=sel)) + float(
        l1optax.l1_penalty(params, lam, mask=rest)
    )
    np.testing.assert_allclose(part, total, rtol=1e-5, atol=1e-5)
    uniform = l1optax.per_layer_l1reg(params, {"*": lam})
    np.testing.assert_allclose(
        float(l1optax.l1_penalty(params, uniform)), total, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        float(l1optax.l1_penalty(params, l1optax.per_layer_l1reg(params, {}, default=lam))),
        total,
        rtol=1e-5,
        atol=1e-5,
    )


def test_import_does_not_import_flax():
    code = "import sys, l1optax; assert not [m for m in sys.modules if m.startswith('flax')], 1"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_selection_plugs_into_prox_adam_and_group_prox():
    """Strength trees and masks from selection work with prox_adam and apply_group_l1_prox too."""
    params = _linen_params()
    rng = np.random.default_rng(1)
    grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
    lam = l1optax.per_layer_l1reg(params, {"params/Dense_0": 10.0}, mask=l1optax.keras_kernel_mask)
    lr = 0.1
    adam_updates, _ = optax.adam(lr).update(grads, optax.adam(lr).init(params), params)
    for tx in (
        l1optax.prox_adam(lr, lam),
        l1optax.prox_adam(lr, 10.0, mask=l1optax.select(params, paths="params/Dense_0/kernel")),
    ):
        updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
        new = optax.apply_updates(params, updates)
        for path, u in jax.tree_util.tree_leaves_with_path(updates):
            keys = tuple(k.key for k in path)
            ref = functools.reduce(lambda t, k: t[k], keys, adam_updates)
            if keys[1:] == ("Dense_0", "kernel"):
                # First prox-Adam step: m_hat = g, d = |g| + eps, threshold lr * 10 / d.
                g = np.asarray(grads["params"]["Dense_0"]["kernel"], np.float64)
                d = np.abs(g) + 1e-8
                z = np.asarray(params["params"]["Dense_0"]["kernel"], np.float64) - lr * g / d
                want = np.sign(z) * np.maximum(np.abs(z) - lr * 10.0 / d, 0)
                got = np.asarray(new["params"]["Dense_0"]["kernel"])
                np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
                assert np.array_equal(got == 0, want == 0) and 0 < (want == 0).sum() < want.size
            else:  # zero strength or masked out: Adam's step (prox_adam rounds its bias
                # correction differently from optax.adam: relative differences ~7e-6)
                np.testing.assert_allclose(np.asarray(u), np.asarray(ref), rtol=2e-5, atol=1e-8)
    lam_g = l1optax.per_layer_l1reg(params, {"params/Dense_0/kernel": 1.0})
    tx = optax.chain(optax.sgd(lr), l1optax.apply_group_l1_prox(lr, lam_g, axis=-1))
    updates, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    z = np.asarray(params["params"]["Dense_0"]["kernel"], np.float64) - lr * np.asarray(
        grads["params"]["Dense_0"]["kernel"], np.float64
    )
    norms = np.linalg.norm(z, axis=0)
    t = lr * 1.0 * np.sqrt(z.shape[0])  # default group weight sqrt(group size)
    ref = z * np.maximum(1 - t / norms, 0)
    got = np.asarray(new["params"]["Dense_0"]["kernel"])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    other = np.asarray(new["params"]["Dense_1"]["kernel"], np.float64)
    np.testing.assert_allclose(
        other,
        np.asarray(params["params"]["Dense_1"]["kernel"])
        - lr * np.asarray(grads["params"]["Dense_1"]["kernel"]),
        rtol=1e-6,
    )
