"""prox_sgd, prox_adam, prox_adagrad, prox_rmsprop: against scikit-learn, optax, TensorFlow and
a float64 NumPy re-implementation of each update."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.linear_model import Lasso

import l1optax

# --------------------------------------------------------------------------------------------
# A small lasso problem, its scikit-learn solution, and a jitted full-batch training loop.
# --------------------------------------------------------------------------------------------

N, P, LAM = 80, 12, 0.3


def _problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, P))
    w_true = np.zeros(P)
    w_true[:5] = [3.0, -2.0, 1.5, 0.5, -1.0]
    y = X @ w_true + 0.5 * rng.standard_normal(N)
    return X, y


X_NP, Y_NP = _problem()
W_SKLEARN = Lasso(alpha=LAM, fit_intercept=False, tol=1e-14, max_iter=100_000).fit(X_NP, Y_NP).coef_
LIPSCHITZ = float(np.linalg.eigvalsh(X_NP.T @ X_NP / N).max())


def _train(tx, steps, dtype, X=X_NP, y=Y_NP):
    Xj, yj = jnp.asarray(X, dtype), jnp.asarray(y, dtype)

    def loss(w):
        return 0.5 * jnp.mean((Xj @ w - yj) ** 2)

    @jax.jit
    def go(w):
        def body(carry, _):
            w, s = carry
            u, s = tx.update(jax.grad(loss)(w), s, w)
            return (optax.apply_updates(w, u), s), None

        (w, _), _ = jax.lax.scan(body, (w, tx.init(w)), None, length=steps)
        return w

    return np.asarray(go(jnp.zeros(X.shape[1], dtype)), np.float64)


def _lasso_optimizers():
    return {
        "prox_sgd": (lambda: l1optax.prox_sgd(1.0 / LIPSCHITZ, LAM), 3000),
        "prox_sgd_momentum": (lambda: l1optax.prox_sgd(0.5 / LIPSCHITZ, LAM, momentum=0.5), 3000),
        "prox_sgd_nesterov": (
            lambda: l1optax.prox_sgd(0.5 / LIPSCHITZ, LAM, momentum=0.5, nesterov=True),
            3000,
        ),
        "prox_adam": (lambda: l1optax.prox_adam(1e-3, LAM), 20000),
        "prox_rmsprop": (lambda: l1optax.prox_rmsprop(1e-3, LAM), 20000),
        "prox_adagrad": (lambda: l1optax.prox_adagrad(1.0, LAM), 20000),
    }


@pytest.mark.parametrize("name", list(_lasso_optimizers()))
def test_full_batch_reaches_sklearn_lasso_float64(name, x64):
    make, steps = _lasso_optimizers()[name]
    w = _train(make(), steps, jnp.float64)
    np.testing.assert_allclose(w, W_SKLEARN, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(w != 0, W_SKLEARN != 0)
    assert np.sum(W_SKLEARN == 0) >= 5  # a genuinely sparse solution


@pytest.mark.parametrize("name", list(_lasso_optimizers()))
def test_full_batch_reaches_sklearn_lasso_float32(name):
    make, steps = _lasso_optimizers()[name]
    w = _train(make(), steps, jnp.float32)
    np.testing.assert_allclose(w, W_SKLEARN, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(w != 0, W_SKLEARN != 0)


def test_uniform_threshold_after_adam_lands_elsewhere(x64):
    """chain(adam, l1_prox) solves a sqrt(v)-weighted lasso: not the lasso, not its support."""
    lr = 1e-3
    w_uniform = _train(optax.chain(optax.adam(lr), l1optax.l1_prox(lr, LAM)), 20000, jnp.float64)
    w_right = _train(l1optax.prox_adam(lr, LAM), 20000, jnp.float64)
    assert np.abs(w_uniform - W_SKLEARN).max() > 0.1
    assert np.sum(w_uniform != 0) > np.sum(W_SKLEARN != 0)  # it keeps coordinates lasso zeroes
    np.testing.assert_allclose(w_right, W_SKLEARN, atol=1e-6, rtol=0)
    # Its fixed point: w = S_{lr*lam}(w - lr*g/d) with d = |g| + eps, i.e. |g_i| = lam*(|g_i|+eps)
    # on the support: the gradient is ~0 there (an almost unregularised fit), not -lam*sign(w).
    g = X_NP.T @ (X_NP @ w_uniform - Y_NP) / N
    on = w_uniform != 0
    assert np.abs(g[on]).max() < 1e-3 < LAM


# --------------------------------------------------------------------------------------------
# With l1reg = l2reg = 0 each optimizer is its optax counterpart.
# --------------------------------------------------------------------------------------------

BASE_PAIRS = {
    "sgd": (lambda: l1optax.prox_sgd(0.1, 0.0), lambda: optax.sgd(0.1)),
    "sgd_momentum": (
        lambda: l1optax.prox_sgd(0.1, 0.0, momentum=0.9),
        lambda: optax.sgd(0.1, momentum=0.9),
    ),
    "sgd_nesterov": (
        lambda: l1optax.prox_sgd(0.1, 0.0, momentum=0.9, nesterov=True),
        lambda: optax.sgd(0.1, momentum=0.9, nesterov=True),
    ),
    "adam": (
        lambda: l1optax.prox_adam(0.01, 0.0, b1=0.8, b2=0.99, eps=1e-6),
        lambda: optax.adam(0.01, b1=0.8, b2=0.99, eps=1e-6),
    ),
    "rmsprop": (
        lambda: l1optax.prox_rmsprop(0.01, 0.0, decay=0.8, eps=1e-6),
        lambda: optax.rmsprop(0.01, decay=0.8, eps=1e-6, eps_in_sqrt=False),
    ),
    "adagrad": (
        lambda: l1optax.prox_adagrad(0.1, 0.0, initial_accumulator_value=0.1),
        lambda: optax.adagrad(0.1, initial_accumulator_value=0.1, eps=0.0),
    ),
}


@pytest.mark.parametrize("name", list(BASE_PAIRS))
def test_zero_penalty_is_the_optax_optimizer(name, maybe_jit):
    ours, theirs = (f() for f in BASE_PAIRS[name])
    rng = np.random.default_rng(1)
    params = {"a": jnp.asarray(rng.standard_normal((3, 4)), jnp.float32), "b": jnp.ones(2)}
    p1, p2 = params, params
    s1, s2 = ours.init(params), theirs.init(params)
    up1, up2 = maybe_jit(ours.update), maybe_jit(theirs.update)
    for _ in range(5):
        g = jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), p.dtype), params)
        u1, s1 = up1(g, s1, p1)
        u2, s2 = up2(g, s2, p2)
        p1, p2 = optax.apply_updates(p1, u1), optax.apply_updates(p2, u2)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-7), p1, p2)


# --------------------------------------------------------------------------------------------
# A float64 NumPy reference of each update, with schedules, per-coordinate l1 and l2.
# --------------------------------------------------------------------------------------------


def _soft(x, t):
    return np.sign(x) * np.maximum(np.abs(x) - t, 0.0)


def _numpy_reference(name, p, grads, lr_fn, l1_fn, l2):
    """Float64 re-implementation written from the papers' update formulas."""
    p = p.astype(np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    acc = np.full_like(p, 0.1)
    for t, g in enumerate(grads):
        eta, l1 = lr_fn(t), l1_fn(t)
        if name == "adam":
            b1, b2, eps = 0.9, 0.999, 1e-8
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            d = np.sqrt(v / (1 - b2 ** (t + 1))) + eps
            step = m / (1 - b1 ** (t + 1)) / d
        elif name == "rmsprop":
            v = 0.9 * v + 0.1 * g * g
            d = np.sqrt(v) + 1e-8
            step = g / d
        elif name == "adagrad":
            acc = acc + g * g
            d = np.sqrt(acc)
            step = g / d
        else:  # sgd
            d = np.ones_like(p)
            step = g
        s = eta / d
        p = _soft(p - eta * step, s * l1) / (1 + s * l2)
    return p


def _factory(name, lr, l1, l2):
    return {
        "adam": lambda: l1optax.prox_adam(lr, l1, l2reg=l2),
        "rmsprop": lambda: l1optax.prox_rmsprop(lr, l1, l2reg=l2),
        "adagrad": lambda: l1optax.prox_adagrad(lr, l1, l2reg=l2),
        "sgd": lambda: l1optax.prox_sgd(lr, l1, l2reg=l2),
    }[name]()


@pytest.mark.parametrize("name", ["adam", "rmsprop", "adagrad", "sgd"])
def test_matches_numpy_reference_with_schedules(name, x64, maybe_jit):
    rng = np.random.default_rng(2)
    p0 = rng.standard_normal(7)
    grads = [rng.standard_normal(7) for _ in range(6)]

    # Schedules computed in float64 (optax's built-in ones compute in float32 under jit).
    def lr(count):
        return 0.3 / (1.0 + jnp.asarray(count, jnp.float64))

    def l1(count):
        return 0.05 * (1.0 + jnp.asarray(count, jnp.float64))

    # per-coordinate weights times the schedule (adagrad's steps are smaller: larger weights)
    l1_coord = np.linspace(0.0, 2.0, 7) * (6.0 if name == "adagrad" else 1.0)
    tx = _factory(name, lr, lambda c: l1(c) * jnp.asarray(l1_coord), 0.7)
    params = jnp.asarray(p0)
    state = tx.init(params)
    update = maybe_jit(tx.update)
    for g in grads:
        u, state = update(jnp.asarray(g), state, params)
        params = optax.apply_updates(params, u)
    expected = _numpy_reference(
        name,
        p0,
        grads,
        lambda t: 0.3 / (1.0 + t),
        lambda t: 0.05 * (1.0 + t) * l1_coord,
        0.7,
    )
    np.testing.assert_allclose(np.asarray(params), expected, rtol=1e-12, atol=1e-12)
    assert state.count.dtype == jnp.int32 and int(state.count) == len(grads)
    np.testing.assert_array_equal(np.asarray(params) == 0, expected == 0)
    assert np.sum(expected == 0) >= 1  # the thresholds do produce exact zeros


# --------------------------------------------------------------------------------------------
# TensorFlow's published ProximalAdagrad values (float32, to 1e-6).
# Source: tensorflow/tensorflow, tensorflow/python/training/proximal_adagrad_test.py.
# --------------------------------------------------------------------------------------------

TF_PROXIMAL_ADAGRAD = [
    # (init0, init1, l1, l2, steps, expected0, expected1)
    ([0.0, 0.0], [0.0, 0.0], 0.0, 0.0, 3, [-2.60260963, -4.29698515], [-0.28432083, -0.56694895]),
    ([1.0, 2.0], [4.0, 3.0], 0.0, 0.0, 3, [-1.60261, -2.296985], [3.715679, 2.433051]),
    ([1.0, 2.0], [4.0, 3.0], 0.001, 0.0, 10, [-6.663634, -9.190331], [2.959304, 1.029232]),
    ([1.0, 2.0], [4.0, 3.0], 0.001, 2.0, 10, [-0.0495, -0.0995], [-0.0045, -0.0095]),
]


@pytest.mark.parametrize("case", TF_PROXIMAL_ADAGRAD, ids=["no_reg", "no_reg2", "l1", "l1_l2"])
def test_prox_adagrad_reproduces_tensorflow(case, maybe_jit):
    init0, init1, l1, l2, steps, exp0, exp1 = case
    tx = l1optax.prox_adagrad(3.0, l1, l2reg=l2, initial_accumulator_value=0.1)
    params = {"var0": jnp.array(init0), "var1": jnp.array(init1)}
    grads = {"var0": jnp.array([0.1, 0.2]), "var1": jnp.array([0.01, 0.02])}
    state = tx.init(params)
    update = maybe_jit(tx.update)
    for _ in range(steps):
        u, state = update(grads, state, params)
        params = optax.apply_updates(params, u)
    np.testing.assert_allclose(params["var0"], exp0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(params["var1"], exp1, rtol=1e-6, atol=1e-6)


def test_prox_adagrad_minimize_sparse_like_tensorflow():
    # testMinimizeSparseResourceVariable: loss = (var @ [4, 5])^2, one step of lr 1.0 -> ~[0, 1].
    tx = l1optax.prox_adagrad(1.0, 0.0)
    var = jnp.array([[1.0, 2.0]])
    x = jnp.array([[4.0], [5.0]])
    g = jax.grad(lambda w: jnp.sum((w @ x) ** 2))(var)
    u, _ = tx.update(g, tx.init(var), var)
    np.testing.assert_allclose(optax.apply_updates(var, u), [[0.0, 1.0]], atol=0.01)


# --------------------------------------------------------------------------------------------
# dtypes, exact zeros, state stability, composition.
# --------------------------------------------------------------------------------------------

ALL = {
    "prox_sgd": lambda lr, lam: l1optax.prox_sgd(lr, lam),
    "prox_sgd_momentum": lambda lr, lam: l1optax.prox_sgd(lr, lam, momentum=0.9),
    "prox_adam": lambda lr, lam: l1optax.prox_adam(lr, lam),
    "prox_rmsprop": lambda lr, lam: l1optax.prox_rmsprop(lr, lam),
    "prox_adagrad": lambda lr, lam: l1optax.prox_adagrad(lr, lam),
}


@pytest.mark.parametrize("name", list(ALL))
def test_dtypes_exact_zeros_and_stable_state(name, float_dtype):
    tx = ALL[name](0.1, 0.5)
    rng = np.random.default_rng(3)
    params = {"w": jnp.asarray(rng.standard_normal((4, 5)) * 0.01, float_dtype), "b": None}
    state = tx.init(params)
    step = jax.jit(tx.update)
    for i in range(3):
        grads = {"w": jnp.asarray(rng.standard_normal((4, 5)) * 0.01, float_dtype), "b": None}
        updates, new_state = step(grads, state, params)
        assert updates["w"].dtype == float_dtype and updates["b"] is None
        assert jax.tree.structure(state) == jax.tree.structure(new_state)
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(new_state), strict=True):
            assert (a.dtype, a.shape, a.weak_type) == (b.dtype, b.shape, b.weak_type)
        params, state = optax.apply_updates(params, updates), new_state
        assert params["w"].dtype == float_dtype
        if i == 0:
            # Tiny weights and gradients, threshold >= 0.1 * 0.5 / d: all exactly zero.
            assert np.all(np.asarray(params["w"], np.float32) == 0.0)
    assert step._cache_size() == 1  # no recompilation across steps


@pytest.mark.parametrize("name", list(ALL))
def test_inject_hyperparams_matches_and_l1reg_is_injectable(name):
    params = {"w": jnp.array([1.0, -0.3, 0.02]), "v": jnp.array([[0.5, -2.0]])}
    grads = {"w": jnp.array([0.2, 0.1, -0.05]), "v": jnp.array([[0.3, 0.1]])}
    plain = ALL[name](0.1, 0.2)
    injected = optax.inject_hyperparams(ALL[name])(lr=0.1, lam=0.2)
    s1, s2 = plain.init(params), injected.init(params)
    p1 = p2 = params
    for _ in range(3):
        u1, s1 = plain.update(grads, s1, p1)
        u2, s2 = jax.jit(injected.update)(grads, s2, p2)
        p1, p2 = optax.apply_updates(p1, u1), optax.apply_updates(p2, u2)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), p1, p2)
    s2.hyperparams["lam"] = jnp.asarray(100.0)
    u, _ = injected.update(grads, s2, p2)
    new = optax.apply_updates(p2, u)
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(new))


@pytest.mark.parametrize("name", ["prox_adam", "prox_sgd_momentum"])
def test_mask_leaves_unpenalised_leaves_to_the_base_optimizer(name):
    params = {"w": jnp.array([0.01, -0.02, 1.0]), "b": jnp.array([0.01, 0.02])}
    grads = {"w": jnp.array([0.1, 0.1, 0.1]), "b": jnp.array([0.1, 0.2])}
    kwargs = {"momentum": 0.9} if name == "prox_sgd_momentum" else {}
    base = optax.adam(0.1) if name == "prox_adam" else optax.sgd(0.1, momentum=0.9)
    make = l1optax.prox_adam if name == "prox_adam" else l1optax.prox_sgd
    mask = {"w": True, "b": False}
    for m in (mask, lambda p: mask):
        tx = make(0.1, 0.5, mask=m, **kwargs)
        u, _ = tx.update(grads, tx.init(params), params)
        ub, _ = base.update(grads, base.init(params), params)
        # (optax.adam's bias correction rounds 1 - b2 differently: 1e-5 relative in float32)
        np.testing.assert_allclose(u["b"], ub["b"], rtol=2e-5)
        new_w = optax.apply_updates(params, u)["w"]
        assert np.asarray(new_w)[0] == 0.0 and np.asarray(new_w)[1] == 0.0
        assert np.asarray(new_w)[2] != 0.0


def test_empty_tree_none_leaves_and_multisteps():
    for make in ALL.values():
        tx = make(0.1, 0.1)
        u, s = tx.update({}, tx.init({}), {})
        assert u == {} and int(s.count) == 1
    tx = optax.MultiSteps(l1optax.prox_adam(0.1, 0.5), every_k_schedule=2)
    params = {"w": jnp.array([1.0, 0.01], jnp.bfloat16), "n": None}
    state = tx.init(params)
    g = {"w": jnp.array([0.1, 0.0], jnp.bfloat16), "n": None}
    u, state = tx.update(g, state, params)
    assert np.all(np.asarray(u["w"], np.float32) == 0)  # accumulating, no step yet
    u, state = tx.update(g, state, params)
    new = optax.apply_updates(params, u)
    assert new["w"].dtype == jnp.bfloat16 and float(new["w"][1]) == 0.0 and new["n"] is None


def test_traced_invalid_strength_poisons_to_nan():
    params, grads = jnp.array([1.0, 0.5]), jnp.array([0.1, 0.1])

    @jax.jit
    def step(lam):
        tx = l1optax.prox_adam(0.1, lam)
        return tx.update(grads, tx.init(params), params)[0]

    assert np.all(np.isnan(step(-1.0)))
    assert np.all(np.isfinite(step(0.1)))


# --------------------------------------------------------------------------------------------
# Bad input (SPEC bad-input table).
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ALL))
@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_strength_raises_at_construction(name, bad):
    fn = name.replace("_momentum", "")
    with pytest.raises(ValueError, match=rf"`{fn}\(l1reg=\.\.\.\)` must be non-negative"):
        ALL[name](0.1, bad)
    with pytest.raises(ValueError, match=rf"`{fn}\(learning_rate=\.\.\.\)`"):
        ALL[name](bad, 0.1)


def test_bad_hyperparameters_raise():
    with pytest.raises(ValueError, match=r"prox_adam\(b1=...\)` must be in \[0.0, 1.0\), got 1.0"):
        l1optax.prox_adam(0.1, 0.1, b1=1.0)
    with pytest.raises(ValueError, match=r"prox_adam\(b2=...\)"):
        l1optax.prox_adam(0.1, 0.1, b2=-0.1)
    with pytest.raises(ValueError, match=r"prox_adam\(eps=...\)"):
        l1optax.prox_adam(0.1, 0.1, eps=-1e-8)
    with pytest.raises(ValueError, match=r"prox_rmsprop\(decay=...\)"):
        l1optax.prox_rmsprop(0.1, 0.1, decay=1.5)
    with pytest.raises(ValueError, match=r"prox_sgd\(momentum=...\)"):
        l1optax.prox_sgd(0.1, 0.1, momentum=-0.5)
    with pytest.raises(ValueError, match=r"prox_adagrad\(initial_accumulator_value=...\)"):
        l1optax.prox_adagrad(0.1, 0.1, initial_accumulator_value=0.0)
    with pytest.raises(ValueError, match=r"prox_sgd\(l2reg=...\)"):
        l1optax.prox_sgd(0.1, 0.1, l2reg=-1.0)
    with pytest.raises(ValueError, match=r"prox_adam\(learning_rate=...\)` is required"):
        l1optax.prox_adam(None, 0.1)


@pytest.mark.parametrize("name", list(ALL))
def test_bad_trees_and_missing_params(name):
    tx = ALL[name](0.1, 0.1)
    params = {"w": jnp.ones(2), "i": jnp.ones(2, jnp.int32)}
    with pytest.raises(TypeError, match=r"\['i'\] has dtype int32"):
        tx.init(params)
    params = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match=r"needs the current parameters"):
        tx.update(params, tx.init(params), None)
    fn = name.replace("_momentum", "")
    tx = l1optax.prox_adam(0.1, {"a": 0.1, "b": 0.2}) if fn == "prox_adam" else None
    if tx is not None:
        with pytest.raises(
            ValueError, match=r"`prox_adam\(l1reg=...\)` must be a scalar or a pytree"
        ):
            tx.update(params, tx.init(params), params)
    tx = l1optax.prox_sgd(0.1, 0.1, mask={"w": True, "x": False})
    with pytest.raises(ValueError, match=r"`prox_sgd\(mask=...\)` does not match"):
        tx.init(params)


EVERY = {
    **ALL,
    "ftrl": lambda lr, lam: l1optax.ftrl(lr, l1reg=lam),
    "cumulative_l1": lambda lr, lam: optax.chain(optax.sgd(lr), l1optax.cumulative_l1(lr, lam)),
    "group_l1_prox": lambda lr, lam: optax.chain(
        optax.sgd(lr), l1optax.group_l1_prox(lr, lam, axis=-1)
    ),
}


@pytest.mark.parametrize("name", list(EVERY))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
def test_state_survives_lax_cond(name, dtype):
    """lax.cond needs both branches to return identical types: dtype, shape and weak type."""
    tx = EVERY[name](0.1, 0.05)
    params = {"w": jnp.array([[0.5, -0.01], [0.2, 0.3]], dtype), "b": None}
    grads = {"w": jnp.array([[0.1, 0.0], [0.2, -0.1]], dtype), "b": None}
    state = tx.init(params)

    @jax.jit
    def maybe_step(flag, state):
        return jax.lax.cond(flag, lambda s: tx.update(grads, s, params)[1], lambda s: s, state)

    new_state = maybe_step(True, maybe_step(True, state))
    same = maybe_step(False, new_state)
    jax.tree.map(np.testing.assert_array_equal, same, new_state)


def test_low_precision_decay_error_points_to_hyperparam_dtype():
    params = jnp.ones(2, jnp.bfloat16)
    with pytest.raises(ValueError, match=r"b2=...\)` must be in .* hyperparam_dtype=jnp.float32"):
        optax.inject_hyperparams(l1optax.prox_adam)(0.1, 0.1).init(params)
    tx = optax.inject_hyperparams(l1optax.prox_adam, hyperparam_dtype=jnp.float32)(0.1, 0.1)
    u, _ = tx.update(params, tx.init(params), params)
    assert u.dtype == jnp.bfloat16


def test_gradient_only_momentum_buffer_solves_a_weaker_lasso(x64):
    """chain(sgd(momentum), l1_prox) reaches Lasso(alpha=(1 - mu) * lam); prox_sgd reaches lam."""
    mu, lr = 0.5, 0.5 / LIPSCHITZ
    w_chain = _train(
        optax.chain(optax.sgd(lr, momentum=mu), l1optax.l1_prox(lr, LAM)), 3000, jnp.float64
    )
    weaker = Lasso(alpha=(1 - mu) * LAM, fit_intercept=False, tol=1e-14, max_iter=100_000)
    np.testing.assert_allclose(w_chain, weaker.fit(X_NP, Y_NP).coef_, atol=1e-6, rtol=0)
    assert np.abs(w_chain - W_SKLEARN).max() > 0.05
    w_ours = _train(l1optax.prox_sgd(lr, LAM, momentum=mu), 3000, jnp.float64)
    np.testing.assert_allclose(w_ours, W_SKLEARN, atol=1e-6, rtol=0)


def test_apply_if_finite_skips_nan_steps():
    tx = optax.apply_if_finite(l1optax.prox_adam(0.1, 0.01), max_consecutive_errors=3)
    params = jnp.array([1.0, -1.0])
    state = tx.init(params)
    u, state = tx.update(jnp.array([jnp.nan, 0.1]), state, params)
    np.testing.assert_array_equal(u, jnp.zeros(2))  # skipped, NaN not applied
    u, state = tx.update(jnp.array([0.1, 0.1]), state, params)
    assert np.all(np.isfinite(np.asarray(u))) and np.all(np.asarray(u) != 0)


def test_zero_strengths_return_the_plain_step_bitwise():
    """With l1reg = l2reg = 0 known at trace time the update is the optimizer's own step."""
    params = jnp.array([1.0, -0.3, 0.02], jnp.bfloat16)
    grads = jnp.array([0.2, 0.1, -0.05], jnp.bfloat16)
    tx = l1optax.prox_sgd(0.1, 0)
    u, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    expected = (-jnp.float32(0.1) * grads.astype(jnp.float32)).astype(jnp.bfloat16)
    np.testing.assert_array_equal(np.asarray(u, np.float32), np.asarray(expected, np.float32))
    ub, _ = optax.sgd(0.1).update(grads.astype(jnp.float32), optax.sgd(0.1).init(params))
    np.testing.assert_array_equal(
        np.asarray(u, np.float32), np.asarray(ub.astype(jnp.bfloat16), np.float32)
    )
