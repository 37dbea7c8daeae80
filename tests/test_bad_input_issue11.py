"""Issue 11: every bad input found by the adversarial pass gets the right value or a clear error.

Each test is one reproduction from the issue (it failed on the code before the fix) plus the
valid neighbours it must not break. Errors must name the function, the argument and the leaf.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import l1optax
from l1optax import _validation as v

PARAMS = {"w": jnp.array([1.0, -2.0, 0.0]), "b": jnp.array([3.0, 0.5])}


# --- item 2: a mask callable that returns None (a forgotten `return`) ---------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda m: l1optax.l1_penalty(PARAMS, 0.1, mask=m),
        lambda m: l1optax.elastic_net_penalty(PARAMS, 0.1, 0.1, mask=m),
        lambda m: l1optax.sparsity(PARAMS, mask=m),
        lambda m: l1optax.kkt_violation(PARAMS, PARAMS, 0.1, mask=m),
        lambda m: l1optax.per_layer_l1reg(PARAMS, {"w": 0.1}, mask=m),
        lambda m: l1optax.prox_adam(0.1, 0.1, mask=m).init(PARAMS),
        lambda m: l1optax.apply_l1_prox(0.1, 0.1, mask=m).init(PARAMS),
    ],
    ids=["l1_penalty", "elastic_net", "sparsity", "kkt", "per_layer", "prox_adam", "apply_l1_prox"],
)
def test_mask_callable_returning_none_is_a_clear_error(call):
    def forgot_return(params):
        jax.tree.map(lambda p: p.ndim > 1, params)  # computed, never returned

    with pytest.raises(TypeError, match=r"\(mask=\.\.\.\)` returned None"):
        call(forgot_return)


def test_none_in_a_mask_where_the_parameter_is_an_array_is_an_error():
    with pytest.raises(TypeError, match=r"`l1_penalty\(mask=\.\.\.\)` .*None at \['b'\]"):
        l1optax.l1_penalty(PARAMS, 0.1, mask={"w": True, "b": None})
    # None where the parameter itself is None is fine
    got = l1optax.l1_penalty({"w": PARAMS["w"], "b": None}, 0.1, mask={"w": True, "b": None})
    np.testing.assert_allclose(got, 0.3, rtol=1e-6)


def test_numpy_bool_masks_act_like_python_bools():
    np_mask = {"w": np.bool_(True), "b": np.bool_(False)}
    py_mask = {"w": True, "b": False}
    assert float(l1optax.l1_penalty(PARAMS, 0.5, mask=np_mask)) == pytest.approx(1.5)
    assert float(l1optax.elastic_net_penalty(PARAMS, 0.5, 0.0, mask=np_mask)) == pytest.approx(1.5)
    assert int(l1optax.sparsity(PARAMS, mask=np_mask)["size"]) == 3
    for make in (
        lambda m: l1optax.prox_adam(0.1, 0.5, mask=m),
        lambda m: l1optax.apply_l1_prox(1.0, 0.5, mask=m),
    ):
        a, b = make(np_mask), make(py_mask)
        ua, _ = a.update(PARAMS, a.init(PARAMS), PARAMS)
        ub, _ = b.update(PARAMS, b.init(PARAMS), PARAMS)
        jax.tree.map(np.testing.assert_array_equal, ua, ub)


def test_select_where_may_return_a_numpy_bool():
    mask = l1optax.select(PARAMS, where=lambda keys, leaf: np.bool_(leaf.size > 2))
    assert mask == {"w": True, "b": False}
    assert all(type(m) is bool for m in jax.tree.leaves(mask))


@pytest.mark.parametrize("arg", ["exclude", "strict"])
@pytest.mark.parametrize("bad", ["no", 0, None, np.array([True])])
def test_select_flags_must_be_bools(arg, bad):
    with pytest.raises(TypeError, match=rf"`select\({arg}=\.\.\.\)` must be a bool"):
        l1optax.select(PARAMS, names="w", **{arg: bad})
    assert l1optax.select(PARAMS, names="w", **{arg: np.bool_(False)}) == {"w": True, "b": False}
    if arg == "exclude":
        assert l1optax.select(PARAMS, names="w", exclude=np.bool_(True)) == {"w": False, "b": True}


# --- Linen nn.with_partitioning boxed params ---------------------------------------------------


@pytest.fixture(scope="module")
def boxed_linen_vars():
    nn = pytest.importorskip("flax.linen")

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            init = nn.with_partitioning(nn.initializers.lecun_normal(), (None, "model"))
            x = nn.Dense(4, kernel_init=init)(x)
            return nn.LayerNorm()(x)

    return Net().init(jax.random.key(0), jnp.ones((1, 3)))


def test_keras_kernel_mask_and_select_see_through_linen_partitioned_boxes(boxed_linen_vars):
    vs = boxed_linen_vars
    assert l1optax.param_paths(vs) == [
        "params/Dense_0/bias",
        "params/Dense_0/kernel",
        "params/LayerNorm_0/bias",
        "params/LayerNorm_0/scale",
    ]
    expected = {
        "params": {
            "Dense_0": {"bias": False, "kernel": True},
            "LayerNorm_0": {"bias": False, "scale": False},
        }
    }
    assert l1optax.keras_kernel_mask(vs) == expected
    assert l1optax.select(vs, names="kernel") == expected
    assert l1optax.select(vs, paths="params/Dense_0/kernel") == expected
    kernel = np.asarray(vs["params"]["Dense_0"]["kernel"].value, np.float64)
    got = l1optax.l1_penalty(vs, 0.1, mask=l1optax.keras_kernel_mask)
    np.testing.assert_allclose(got, 0.1 * np.abs(kernel).sum(), rtol=1e-6)
    strengths = l1optax.per_layer_l1reg(vs, {"params/Dense_0": 0.1}, mask=l1optax.keras_kernel_mask)
    assert strengths["params"]["Dense_0"] == {"bias": 0.0, "kernel": 0.1}
    s = l1optax.sparsity(vs)
    assert list(s["leaves"]) == l1optax.param_paths(vs)


# --- items 4 and 5: a strength never changes a leaf's shape and never broadcasts upward ---------


@pytest.mark.parametrize(
    "call, fn, arg",
    [
        (lambda h: l1optax.l1_penalty(jnp.ones(3), h), "l1_penalty", "l1reg"),
        (
            lambda h: l1optax.elastic_net_penalty(jnp.ones(3), h, 0.1),
            "elastic_net_penalty",
            "l1reg",
        ),
        (
            lambda h: l1optax.elastic_net_penalty(jnp.ones(3), 0.1, h),
            "elastic_net_penalty",
            "l2reg",
        ),
        (lambda h: l1optax.kkt_violation(jnp.ones(3), jnp.ones(3), h), "kkt_violation", "l1reg"),
        (lambda h: l1optax.prox_l1(jnp.ones(3), h), "prox_l1", "l1reg"),
        (lambda h: l1optax.prox_l1(jnp.ones(3), 0.1, h), "prox_l1", "scaling"),
        (
            lambda h: l1optax.prox_elastic_net(jnp.ones(3), (0.1, 0.1), h),
            "prox_elastic_net",
            "scaling",
        ),
    ],
    ids=["l1_penalty", "en-l1", "en-l2", "kkt", "prox_l1", "prox_l1-scaling", "prox_en-scaling"],
)
def test_a_strength_that_would_broadcast_upward_is_rejected(call, fn, arg):
    pattern = rf"`{re.escape(fn)}\({re.escape(arg)}.*=\.\.\.\)`.*shape \(4, 1\).*shape \(3,\)"
    with pytest.raises(ValueError, match=pattern):
        call(jnp.full((4, 1), 0.1))


def test_issue_reproductions_for_upward_broadcasting():
    with pytest.raises(ValueError, match=r"l1_penalty\(l1reg=\.\.\.\)"):
        l1optax.l1_penalty(jnp.ones(3), jnp.full((4, 1), 0.1))  # was 1.2 instead of 0.3
    with pytest.raises(ValueError, match=r"prox_l1\(l1reg=\.\.\.\).*\(1, 2, 3\).*\(2, 3\)"):
        l1optax.prox_l1(jnp.ones((2, 3)), jnp.full((1, 2, 3), 0.1))  # was shape (1, 2, 3)


def test_a_wrong_shaped_strength_names_the_leaf_path():
    params = {"layer": {"w": jnp.ones((2, 3))}}
    with pytest.raises(
        ValueError, match=r"shape \(3, 2\) at leaf \['layer'\]\['w'\].*shape \(2, 3\)"
    ):
        l1optax.l1_penalty(params, {"layer": {"w": jnp.full((3, 2), 0.1)}})
    with pytest.raises(
        ValueError, match=r"`(apply_l1_prox|prox_l1)\(l1reg=\.\.\.\)`.*\(3, 2\) at leaf \['w'\]"
    ):
        tx = l1optax.apply_l1_prox(0.1, {"w": jnp.full((3, 2), 0.1)})
        tx.update(
            {"w": jnp.ones((2, 3))}, tx.init({"w": jnp.ones((2, 3))}), {"w": jnp.ones((2, 3))}
        )


def test_broadcast_to_params_keeps_every_valid_form():
    params = {"a": jnp.ones((2, 3)), "b": None, "c": [jnp.ones(()), jnp.ones(4)]}
    row = jnp.array([0.1, 0.2, 0.3])
    out = v.broadcast_to_params({"a": row, "b": None, "c": 0.5}, params, fn="f", arg="x")
    assert out["a"] is row and out["b"] is None and out["c"] == [0.5, 0.5]
    out = v.broadcast_to_params(0.1, params, fn="f", arg="x")
    assert out == {"a": 0.1, "b": None, "c": [0.1, 0.1]}
    full = jnp.full((2, 3), 0.1)
    assert (
        v.broadcast_to_params(
            {"a": full, "b": 1.0, "c": [1.0, jnp.ones((1,))]}, params, fn="f", arg="x"
        )["a"]
        is full
    )
    # a traced per-coordinate value is checked by its (static) shape
    jax.jit(lambda s: v.broadcast_to_params(s, jnp.ones(3), fn="f", arg="x"))(jnp.ones(3))
    with pytest.raises(ValueError, match=r"`f\(x=\.\.\.\)`"):
        jax.jit(lambda s: v.broadcast_to_params(s, jnp.ones(3), fn="f", arg="x"))(jnp.ones(4))


def test_valid_per_coordinate_strengths_still_give_the_weighted_penalty():
    x = np.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]])
    lam = np.array([0.1, 0.2, 0.3])
    got = l1optax.l1_penalty(jnp.asarray(x), jnp.asarray(lam))
    np.testing.assert_allclose(got, (lam * np.abs(x)).sum(), rtol=1e-6)
    got = l1optax.l1_penalty(jnp.asarray(x), jnp.asarray(lam[None, :]))
    np.testing.assert_allclose(got, (lam * np.abs(x)).sum(), rtol=1e-6)


# --- item 7: lasso_duality_gap with a vector alpha ----------------------------------------------


def test_lasso_duality_gap_rejects_a_vector_alpha():
    X = np.eye(3)
    with pytest.raises(
        ValueError, match=r"`lasso_duality_gap\(alpha=\.\.\.\)` must be a scalar.*\(3,\)"
    ):
        l1optax.lasso_duality_gap(X, np.ones(3), np.zeros(3), np.full(3, 0.1))
    with pytest.raises(ValueError, match=r"must be a scalar"):
        jax.jit(lambda a: l1optax.lasso_duality_gap(X, np.ones(3), np.zeros(3), a))(
            jnp.full(3, 0.1)
        )
    assert np.ndim(l1optax.lasso_duality_gap(X, np.ones(3), np.zeros(3), np.float32(0.1))) == 0


# --- item 9: traced negative strengths give NaN --------------------------------------------------


def test_elastic_net_penalty_with_a_traced_negative_strength_is_nan():
    f = jax.jit(lambda a, b: l1optax.elastic_net_penalty(jnp.ones(3), a, b))
    assert np.isnan(f(-1.0, 0.1)) and np.isnan(f(0.1, -1.0))
    np.testing.assert_allclose(f(0.1, 0.2), 0.3 + 0.3, rtol=1e-6)


# --- trees that do not match: name the missing and extra keys, never dump PyTreeDefs ------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: l1optax.l1_penalty(PARAMS, {"w": 0.1, "c": 0.1}),
        lambda: l1optax.elastic_net_penalty(PARAMS, 0.1, {"w": 0.1, "c": 0.1}),
        lambda: l1optax.l1_penalty(PARAMS, 0.1, mask={"w": True, "c": True}),
        lambda: l1optax.sparsity(PARAMS, mask={"w": True, "c": True}),
        lambda: l1optax.kkt_violation({"w": PARAMS["w"], "c": PARAMS["b"]}, PARAMS, 0.1),
    ],
    ids=["l1reg", "l2reg", "mask", "sparsity-mask", "kkt-grads"],
)
def test_tree_mismatch_names_the_missing_and_extra_keys(call):
    with pytest.raises(ValueError) as info:
        call()
    msg = str(info.value)
    assert "PyTreeDef" not in msg
    assert "['b']" in msg and "['c']" in msg, msg


def test_tree_mismatch_with_a_deeper_strength_names_the_leaf():
    with pytest.raises(ValueError, match=r"\['w'\]") as info:
        l1optax.l1_penalty(PARAMS, {"w": [0.1], "b": 0.1})
    assert "PyTreeDef" not in str(info.value)


def test_tree_mismatch_message_stays_short_for_a_big_nnx_state():
    nnx = pytest.importorskip("flax.nnx")
    model = nnx.Sequential(*[nnx.Linear(2, 2, rngs=nnx.Rngs(i)) for i in range(30)])
    state = nnx.state(model, nnx.Param)
    mask = jax.tree.map(lambda _: True, nnx.to_pure_dict(state))
    del mask["layers"][7]["bias"]
    with pytest.raises(ValueError) as info:
        l1optax.l1_penalty(state, 0.1, mask=mask)
    msg = str(info.value)
    assert len(msg) < 600 and "PyTreeDef" not in msg and "7" in msg and "bias" in msg, msg


def test_none_inside_a_strength_tree_is_a_clear_error():
    with pytest.raises(ValueError, match=r"`l1_penalty\(l1reg=\.\.\.\)`.*None at \['w'\]"):
        l1optax.l1_penalty(PARAMS, {"w": None, "b": 0.1})
    with pytest.raises(ValueError, match=r"`prox_l1\(l1reg=\.\.\.\)`.*None at \['w'\]"):
        l1optax.prox_l1(PARAMS, {"w": None, "b": 0.1})
    # None where the parameter is None is fine
    out = l1optax.prox_l1({"w": None, "b": PARAMS["b"]}, {"w": None, "b": 0.1})
    assert out["w"] is None


def test_check_same_structure_names_none_leaves_in_one_tree_only():
    params = {"a": jnp.ones(2), "b": None, "c": {"d": jnp.ones(1)}}
    v.check_same_structure({"a": 1.0, "b": None, "c": {"d": 2.0}}, params, fn="tx.update")
    with pytest.raises(
        ValueError, match=r"`tx\.update`.*at \['b'\] updates has an array and params has None"
    ) as info:
        v.check_same_structure(
            {"a": 1.0, "b": jnp.ones(2), "c": {"d": 2.0}}, params, fn="tx.update"
        )
    assert "PyTreeDef" not in str(info.value)
    with pytest.raises(ValueError, match=r"\['c'\]\['d'\]"):
        v.check_same_structure({"a": 1.0, "b": None, "c": {"d": None}}, params, fn="tx.update")
    with pytest.raises(ValueError, match=r"missing \['c'\]\['d'\].*extra \['c'\]\['e'\]"):
        v.check_same_structure({"a": 1.0, "b": None, "c": {"e": 2.0}}, params, fn="tx.update")


# --- the error builder must not crash on odd values ----------------------------------------------


@pytest.mark.parametrize(
    "bad, exc",
    [
        ([0.1, -0.1], ValueError),
        (np.array([[0.1, -0.2]]), ValueError),
        (0.9 + 0j, TypeError),
        ("0.1", TypeError),
    ],
    ids=["list", "2d", "complex", "string"],
)
def test_check_strength_messages_for_odd_values(bad, exc):
    with pytest.raises(exc, match=r"`f\(x=\.\.\.\)`"):
        v.check_strength(bad, fn="f", arg="x")


def test_check_strength_reports_the_offending_element():
    with pytest.raises(ValueError, match=r"-0\.5 \(at index \(2,\)"):
        v.check_strength(np.array([0.1, 0.2, -0.5]), fn="f", arg="x")


# --- float8 and Python-float leaves --------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda x: l1optax.l1_penalty(x, 0.1),
        lambda x: l1optax.elastic_net_penalty(x, 0.1, 0.1),
        lambda x: l1optax.prox_l1(x, 0.1),
        lambda x: l1optax.prox_elastic_net(x, (0.1, 0.1)),
        lambda x: l1optax.soft_threshold(x, 0.1),
        lambda x: l1optax.kkt_violation(x, x, 0.1),
        lambda x: l1optax.prox_adam(0.1, 0.1).init(x),
    ],
    ids=["l1_penalty", "en", "prox_l1", "prox_en", "soft_threshold", "kkt", "prox_adam"],
)
def test_float8_params_are_rejected_naming_leaf_and_dtype(call):
    x = {"w": jnp.ones(3, jnp.float8_e4m3fn)}
    with pytest.raises(TypeError, match=r"\['w'\].*float8_e4m3fn"):
        call(x)


def test_check_float_leaves_can_require_arrays_for_transforms():
    v.check_float_leaves({"w": 1.0}, fn="f")  # pure functions accept Python scalars
    with pytest.raises(TypeError, match=r"`f` .*\['w'\] is a Python float.*jnp\.asarray"):
        v.check_float_leaves({"w": 1.0}, fn="f", python_scalars=False)
    v.check_float_leaves({"w": jnp.ones(2), "b": None}, fn="f", python_scalars=False)


# --- per_layer_l1reg and sparsity on nnx state ---------------------------------------------------


@pytest.mark.parametrize("bad", [[0.1], np.array([0.1, 0.2]), {"x": 0.1}, "0.1", None])
def test_per_layer_l1reg_strengths_must_be_numbers(bad):
    with pytest.raises(
        (TypeError, ValueError), match=r"`per_layer_l1reg\(strengths\['w'\]=\.\.\.\)`"
    ):
        l1optax.per_layer_l1reg(PARAMS, {"w": bad})


def test_sparsity_of_a_whole_nnx_state_skips_rng_keys_and_uses_slash_paths():
    nnx = pytest.importorskip("flax.nnx")

    class Model(nnx.Module):
        def __init__(self, rngs):
            self.dense1 = nnx.Linear(2, 3, rngs=rngs)
            self.drop = nnx.Dropout(0.5, rngs=rngs)

    model = Model(nnx.Rngs(0))
    model.dense1.kernel[...] = model.dense1.kernel[...].at[0].set(0.0)
    s = l1optax.sparsity(nnx.state(model))
    assert list(s["leaves"]) == ["dense1/bias", "dense1/kernel"]
    assert int(s["leaves"]["dense1/kernel"]["zeros"]) == 3
    assert int(s["zeros"]) == 3 + 3 and int(s["size"]) == 9
    assert l1optax.sparsity(nnx.state(model, nnx.Param))["leaves"].keys() == s["leaves"].keys()
    assert list(l1optax.sparsity({"a": {"b": jnp.zeros(2)}, "c": [jnp.ones(1)]})["leaves"]) == [
        "a/b",
        "c/0",
    ]
