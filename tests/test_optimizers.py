"""Every proximal optimizer: optax's own alias followed by the prox in that optimizer's metric.

Checked against scikit-learn (lasso, elastic net, multi-task group lasso on the diabetes data),
against optax itself (bitwise with ``l1reg = 0``, concrete or traced), against TensorFlow's
published ProximalAdagrad values, and against a float64 NumPy reference of one metric prox step
``p+ = S_{lr*lam/d}(p + u_optax)`` written from optax's update rules.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import (
    DEFAULT_COMPILER_OPTIONS,
    assert_trees_bitwise_equal,
    assert_trees_equal,
    scan_fit,
)
from sklearn.datasets import load_diabetes
from sklearn.linear_model import ElasticNet, Lasso, MultiTaskLasso

import l1optax

# --------------------------------------------------------------------------------------------
# The diabetes lasso, its scikit-learn solutions, and the one training loop every fit uses.
# --------------------------------------------------------------------------------------------


def _diabetes():
    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X, y - y.mean()


X_NP, Y_NP = _diabetes()
N, P = X_NP.shape
LIPSCHITZ = float(np.linalg.eigvalsh(X_NP.T @ X_NP / N).max())
ALPHA = 0.05 * float(np.abs(X_NP.T @ Y_NP).max()) / N  # 0.05 * alpha_max
STEPS = 3000
SK = {"fit_intercept": False, "tol": 1e-14, "max_iter": 100_000}


def cosine(lr0: float) -> optax.Schedule:
    """The learning rate every fit uses: cosine decay from lr0 to lr0 / 10^4 over STEPS."""
    return optax.cosine_decay_schedule(lr0, STEPS, alpha=1e-4)


@functools.cache
def sk_lasso(alpha: float = ALPHA) -> np.ndarray:
    return Lasso(alpha, **SK).fit(X_NP, Y_NP).coef_


def fit(tx: optax.GradientTransformation, X=X_NP, y=Y_NP, steps: int = STEPS) -> np.ndarray:
    """Full-batch training of 0.5 * mean_i ||x_i W - y_i||^2 from W = 0: one jitted lax.scan."""
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def loss(w):
        return 0.5 * jnp.sum((Xj @ w - yj) ** 2) / Xj.shape[0]

    w0 = jnp.zeros((X.shape[1], *np.shape(y)[1:]), Xj.dtype)
    return np.asarray(scan_fit(tx, w0, jax.grad(loss), steps)[0], np.float64)


def rel_err(w: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(w - ref).max() / np.abs(ref).max())


# --------------------------------------------------------------------------------------------
# The optimizers: (l1optax factory, optax counterpart, keyword arguments both take, lasso lr0).
# The lasso lr0 was measured: every entry reaches sklearn to ~1e-14 in STEPS steps; AMSGrad needs
# 3.0 because its metric is the running maximum of an early, large second moment (lr0 = 1.0
# stalls at 8e-6), and centered RMSProp needs the schedule's end near 0 because its metric
# sqrt(var + eps) collapses to sqrt(eps) at a full-batch fixed point (constant gradient).
# --------------------------------------------------------------------------------------------

OPTIMIZERS = {
    "sgd": (l1optax.prox_sgd, optax.sgd, {}, 1.0 / LIPSCHITZ),
    "sgd_momentum": (l1optax.prox_sgd, optax.sgd, {"momentum": 0.5}, 0.5 / LIPSCHITZ),
    "sgd_nesterov": (
        l1optax.prox_sgd,
        optax.sgd,
        {"momentum": 0.5, "nesterov": True},
        0.5 / LIPSCHITZ,
    ),
    "adam": (l1optax.prox_adam, optax.adam, {}, 1.0),
    "adamw": (l1optax.prox_adamw, optax.adamw, {"weight_decay": 0.0}, 1.0),
    "nadam": (l1optax.prox_nadam, optax.nadam, {}, 1.0),
    "amsgrad": (l1optax.prox_amsgrad, optax.amsgrad, {}, 3.0),
    "adabelief": (l1optax.prox_adabelief, optax.adabelief, {}, 1.0),
    "rmsprop": (l1optax.prox_rmsprop, optax.rmsprop, {}, 0.3),
    "rmsprop_centered": (l1optax.prox_rmsprop, optax.rmsprop, {"centered": True}, 0.3),
    "rmsprop_momentum": (l1optax.prox_rmsprop, optax.rmsprop, {"momentum": 0.5}, 0.3),
    "adagrad": (l1optax.prox_adagrad, optax.adagrad, {}, 10.0),
}
NAMES = list(OPTIMIZERS)
ADAPTIVE = [name for name in NAMES if not name.startswith("sgd")]
# Some non-default arguments for the concrete-zero bitwise comparison (they must reach optax).
BITWISE_ARGS = {
    "adam": {"b1": 0.8, "b2": 0.99, "eps": 1e-6},
    "adamw": {"weight_decay": 1e-2},
    "rmsprop": {"decay": 0.8, "eps": 1e-6},
    "adagrad": {"initial_accumulator_value": 0.2, "eps": 1e-6},
}


def build(name: str, learning_rate, l1reg, **overrides) -> optax.GradientTransformation:
    factory, _, kwargs, _ = OPTIMIZERS[name]
    return factory(learning_rate, l1reg, **{**kwargs, **overrides})


def build_optax(name: str, learning_rate, **overrides) -> optax.GradientTransformation:
    _, factory, kwargs, _ = OPTIMIZERS[name]
    return factory(learning_rate, **{**kwargs, **overrides})


@pytest.mark.parametrize("name", NAMES)
def test_full_batch_diabetes_reaches_sklearn_lasso(name, x64):
    lr0 = OPTIMIZERS[name][3]
    w = fit(build(name, cosine(lr0), ALPHA))
    ref = sk_lasso()
    assert 0 < np.sum(ref == 0) < P  # a genuinely sparse solution
    assert rel_err(w, ref) <= 1e-6
    np.testing.assert_array_equal(w != 0, ref != 0)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_l2reg_gives_sklearn_elastic_net(name, x64):
    l1_ratio = 0.7
    ref = ElasticNet(alpha=ALPHA, l1_ratio=l1_ratio, **SK).fit(X_NP, Y_NP).coef_
    lr0 = OPTIMIZERS[name][3]
    w = fit(build(name, cosine(lr0), l1_ratio * ALPHA, l2reg=(1 - l1_ratio) * ALPHA))
    assert np.sum(ref == 0) >= 1
    assert rel_err(w, ref) <= 1e-6
    np.testing.assert_array_equal(w != 0, ref != 0)


def test_uniform_threshold_after_adam_solves_another_problem(x64):
    """chain(adam, apply_l1_prox) thresholds by lr*lam although Adam's steps are at most ~lr: with
    lam = 2.26 > 1 (diabetes' 0.05 * alpha_max) every weight is zeroed at every step, while the
    prox in Adam's metric (``prox_adam``, checked above) reaches the lasso's 7 nonzeros."""
    sched = cosine(1.0)
    w_uniform = fit(optax.chain(optax.adam(sched), l1optax.apply_l1_prox(sched, ALPHA)))
    assert ALPHA > 1
    np.testing.assert_array_equal(w_uniform, np.zeros(P))
    assert np.sum(sk_lasso() != 0) == 7


def test_gradient_only_momentum_buffer_solves_a_weaker_lasso(x64):
    """chain(sgd(momentum=mu), apply_l1_prox) reaches Lasso((1 - mu) * alpha), not the lasso asked
    for; prox_sgd(momentum=mu) feeds the prox's displacement back into the buffer and reaches
    Lasso(alpha) (test_full_batch_diabetes_reaches_sklearn_lasso[sgd_momentum])."""
    mu, sched = 0.5, cosine(0.5 / LIPSCHITZ)
    w_chain = fit(optax.chain(optax.sgd(sched, momentum=mu), l1optax.apply_l1_prox(sched, ALPHA)))
    assert rel_err(w_chain, sk_lasso((1 - mu) * ALPHA)) <= 1e-6
    assert rel_err(w_chain, sk_lasso()) > 0.05


# --------------------------------------------------------------------------------------------
# Group lasso in the optimizer's metric equals scikit-learn's MultiTaskLasso.
# --------------------------------------------------------------------------------------------


def _multitask():
    rng = np.random.default_rng(0)
    w_true = np.zeros((P, 3))
    w_true[[1, 2, 3, 6, 8]] = 3.0 * rng.standard_normal((5, 3))
    Y = X_NP @ w_true + rng.standard_normal((N, 3))
    alpha = 0.1 * float(np.linalg.norm(X_NP.T @ Y, axis=1).max()) / N
    return Y, alpha


@pytest.mark.parametrize("name", ["sgd", "adam", "adagrad"])
def test_group_prox_in_metric_equals_sklearn_multitask_lasso(name, x64):
    Y, alpha = _multitask()
    ref = MultiTaskLasso(alpha, **SK).fit(X_NP, Y).coef_.T  # (features, tasks): rows are groups
    group = functools.partial(l1optax.prox_group_l1, axis=0, weights=1.0)
    w = fit(build(name, cosine(OPTIMIZERS[name][3]), alpha, prox=group), X_NP, Y)
    zero_rows = np.all(ref == 0, axis=1)
    assert 0 < zero_rows.sum() < P
    assert rel_err(w, ref) <= 1e-6
    np.testing.assert_array_equal(np.all(w == 0, axis=1), zero_rows)
    assert not np.any((w == 0) & ~zero_rows[:, None])  # whole rows, no stray coordinate zeros


# --------------------------------------------------------------------------------------------
# With l1reg = 0 (concrete, or traced through inject_hyperparams) each is bitwise optax.
# --------------------------------------------------------------------------------------------

_RNG = np.random.default_rng(1)
_FEATURES = jnp.asarray(_RNG.standard_normal((16, 6)), jnp.float32)
_LABELS = jnp.asarray(_RNG.integers(0, 4, 16))
_PARAMS = {"w": jnp.asarray(0.3 * _RNG.standard_normal((6, 4)), jnp.float32)}


def _softmax_loss(params):
    logits = _FEATURES @ params["w"]
    picked = jnp.take_along_axis(logits, _LABELS[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)


def _train_steps(tx, steps=10):
    """``steps`` calls of one jitted train step (grad, update, apply), as a user writes it (and
    compiles it: at XLA's default optimisation level, see conftest.py)."""

    @functools.partial(jax.jit, compiler_options=DEFAULT_COMPILER_OPTIONS)
    def step(p, state):
        u, state = tx.update(jax.grad(_softmax_loss)(p), state, p)
        return optax.apply_updates(p, u), state

    p, state = _PARAMS, tx.init(_PARAMS)
    for _ in range(steps):
        p, state = step(p, state)
    return p, state


_assert_trees_equal = assert_trees_equal  # the name the xfail test below uses


@pytest.mark.parametrize("name", NAMES)
def test_zero_l1reg_is_bitwise_the_optax_optimizer(name):
    """A concrete 0: in a jitted train step (grad, update, apply) the parameters and optax's
    state (``state.inner_state``) are optax's bit for bit, ten steps in a row. Both run in one
    compilation from the same inputs (so XLA may share what is identical)."""
    args = BITWISE_ARGS.get(name, {})
    ours, theirs = build(name, 0.05, 0.0, **args), build_optax(name, 0.05, **args)

    @jax.jit
    def both(p, count, inner):
        g = jax.grad(_softmax_loss)(p)
        u_ours, s_ours = ours.update(g, l1optax.ProxInMetricState(count, inner), p)
        u_theirs, s_theirs = theirs.update(g, inner, p)
        return optax.apply_updates(p, u_ours), s_ours, optax.apply_updates(p, u_theirs), s_theirs

    p, state = _PARAMS, ours.init(_PARAMS)
    assert isinstance(state, l1optax.ProxInMetricState)
    assert_trees_bitwise_equal(state.inner_state, theirs.init(_PARAMS))
    for _ in range(10):
        p_ours, state, p, inner = both(p, state.count, state.inner_state)
        assert_trees_bitwise_equal(p_ours, p)
        assert_trees_bitwise_equal(state.inner_state, inner)
    assert int(state.count) == 10 and not np.array_equal(p["w"], _PARAMS["w"])


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="a traced l1reg = 0 in a jitted step that also applies the update is not bitwise "
    "optax: XLA contracts optax's p + (-lr * g) into an FMA, which the prox's "
    "where(z == x, u, moved) select (_transforms._update_to) prevents (1-ulp differences)",
)
def test_traced_zero_l1reg_in_a_fused_train_step_is_bitwise_optax():
    ours = optax.inject_hyperparams(l1optax.prox_sgd)(learning_rate=0.05, l1reg=0.0)
    theirs = optax.inject_hyperparams(optax.sgd)(learning_rate=0.05)
    _assert_trees_equal(_train_steps(ours)[0], _train_steps(theirs)[0])


# --------------------------------------------------------------------------------------------
# inject_hyperparams(prox_X) against inject_hyperparams(optax.X) on an embedding table whose
# rows 32.. never get a gradient, a masked-out dense leaf, a complex leaf and a bfloat16 leaf
# with float32 gradients (float64 otherwise), trained on a log-cosh loss (its gradient taken in
# NumPy). Each update is jitted on its own, l1reg is read
# from the state (a tracer), so one compilation per optimizer serves: ten steps with l1reg = 0
# (bitwise optax), several steps with l1reg > 0 (unseen rows untouched), and one step against
# a float64 NumPy reference p+ = S_{lr*lam/d}(p + u_optax), d from optax's new state.
# --------------------------------------------------------------------------------------------


def _family(name: str) -> str:
    return name.split("_")[0]


def metric_steps(name: str, kwargs: dict, state, lr: float, params) -> dict:
    """lr / d per coordinate (0 where there is no gradient history) from optax's new state.

    Written from optax's update rules, with optax's defaults: ``scale_by_adam`` steps
    lr m_hat / (sqrt(nu_hat + eps_root) + eps), ``scale_by_amsgrad`` uses nu_max (already bias
    corrected), ``scale_by_belief`` keeps eps_root inside nu, ``scale_by_rms`` /
    ``scale_by_stddev`` (centered) divide by sqrt(nu [- mu^2] + eps), ``scale_by_rss`` by
    sqrt(sum of squares + eps). Never seen: nu = 0 (adam, amsgrad, rmsprop), mu = 0
    (adabelief), sum of squares = initial_accumulator_value (adagrad).
    """
    family, kw, inner = _family(name), dict(kwargs), state[0]

    def real(tree):
        return jax.tree.map(lambda a: np.real(np.asarray(a)).astype(np.float64), tree)

    if family == "sgd":
        return jax.tree.map(lambda p: np.full(np.shape(p), lr), params)
    if family in ("adam", "adamw", "nadam"):
        b2, eps, eps_root = kw.get("b2", 0.999), kw.get("eps", 1e-8), kw.get("eps_root", 0.0)
        t = int(inner.count)
        return jax.tree.map(
            lambda nu: np.where(nu != 0, lr / (np.sqrt(nu / (1 - b2**t) + eps_root) + eps), 0.0),
            real(inner.nu),
        )
    if family == "amsgrad":
        eps, eps_root = kw.get("eps", 1e-8), kw.get("eps_root", 0.0)
        return jax.tree.map(
            lambda nu: np.where(nu != 0, lr / (np.sqrt(nu + eps_root) + eps), 0.0),
            real(inner.nu_max),
        )
    if family == "adabelief":
        b2, eps, t = kw.get("b2", 0.999), kw.get("eps", 1e-16), int(inner.count)
        return jax.tree.map(
            lambda mu, nu: np.where(mu != 0, lr / (np.sqrt(nu / (1 - b2**t)) + eps), 0.0),
            jax.tree.map(np.asarray, inner.mu),
            real(inner.nu),
        )
    if family == "rmsprop":
        eps, centered = kw.get("eps", 1e-8), kw.get("centered", False)
        mus = jax.tree.map(np.asarray, inner.mu) if centered else real(inner.nu)

        def leaf(nu, mu):
            var = nu - np.abs(mu) ** 2 if centered else nu
            return np.where(nu != 0, lr / np.sqrt(var + eps), 0.0)

        return jax.tree.map(leaf, real(inner.nu), mus)
    assert family == "adagrad"
    eps, a0 = kw.get("eps", 1e-7), kw.get("initial_accumulator_value", 0.1)
    return jax.tree.map(
        lambda a: np.where(a != a0, lr / np.sqrt(a + eps), 0.0), real(inner.sum_of_squares)
    )


def soft(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """S_t(x): sign(x) max(|x| - t, 0); for complex x the modulus is shrunk (phase kept)."""
    mod = np.abs(x)
    return np.where(mod > t, x * (1 - t / np.where(mod > 0, mod, 1)), 0)


def _np64(a) -> np.ndarray:
    """An array in float64 (complex128 for complex ones)."""
    a = np.asarray(a)
    return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)


def _np_apply(params, updates):
    """optax.apply_updates in NumPy: (p + u) in the wider dtype, cast back to p's dtype."""
    return jax.tree.map(
        lambda p, u: jnp.asarray(np.asarray(p) + np.asarray(u), p.dtype), params, updates
    )


SEEN = 32  # embedding rows 0..31 are looked up; rows 32.. never get a gradient
LEAF_MASK = {"emb": True, "w": False, "z": True, "h": True}
LR = 0.05


@functools.cache
def _embedding_runs(name: str) -> dict:
    rng = np.random.default_rng(4)

    def draw(shape, dtype=np.float64, scale=1.0):
        x = rng.standard_normal(shape)
        if dtype == np.complex128:
            x = x + 1j * rng.standard_normal(shape)
        return jnp.asarray(scale * x, dtype)

    targets = {
        "emb": rng.standard_normal((1000, 16)),
        "w": rng.standard_normal(7),
        "z": rng.standard_normal(12) + 1j * rng.standard_normal(12),
        "h": rng.standard_normal(9),
    }

    def grads(params):
        """The gradient of sum log cosh(p - c) (real and imaginary parts for the complex leaf),
        in NumPy; rows 32.. of the table are never looked up (their gradient is exactly 0)."""
        g = {}
        for key, p in params.items():
            d = _np64(p) - targets[key]
            g[key] = np.tanh(d.real) + 1j * np.tanh(d.imag) if key == "z" else np.tanh(d)
        g["emb"][SEEN:] = 0.0
        return {k: jnp.asarray(v, jnp.float32 if k == "h" else v.dtype) for k, v in g.items()}

    params0 = {
        "emb": draw((1000, 16), scale=0.1),
        "w": draw((7,), scale=0.1),
        "z": draw((12,), np.complex128, 0.1),
        "h": draw((9,), jnp.bfloat16, 0.1),
    }
    factory, base_factory, kwargs, _ = OPTIMIZERS[name]
    f64 = {"hyperparam_dtype": jnp.float64}  # not the params' "highest" dtype, complex128
    ours = optax.inject_hyperparams(factory, **f64)(
        learning_rate=LR, l1reg=0.0, mask=LEAF_MASK, **kwargs
    )
    theirs = optax.inject_hyperparams(base_factory, **f64)(learning_rate=LR, **kwargs)
    up_ours, up_theirs = jax.jit(ours.update), jax.jit(theirs.update)

    def at(state, lam):
        return state._replace(hyperparams={**state.hyperparams, "l1reg": jnp.float64(lam)})

    # optax initialises the moments of the bfloat16 leaf in bfloat16 and keeps them in float64
    # (float32 gradients times float64 hyperparameters) from the first update on: start them
    # in float64 so that the one compilation per optimizer is not redone.
    like = {**params0, "h": params0["h"].astype(jnp.float64)}
    # Ten steps with the injected l1reg = 0.
    p_ours = p_theirs = params0
    s_ours, s_theirs = ours.init(like), theirs.init(like)
    for _ in range(10):
        u, s_ours = up_ours(grads(p_ours), s_ours, p_ours)
        p_ours = _np_apply(p_ours, u)
        u, s_theirs = up_theirs(grads(p_theirs), s_theirs, p_theirs)
        p_theirs = _np_apply(p_theirs, u)
    zero = {"ours": (p_ours, s_ours), "optax": (p_theirs, s_theirs)}

    # Three steps with l1reg = 1e-3, then a fourth compared with the reference.
    params, state = params0, at(ours.init(like), 1e-3)
    for _ in range(3):
        u, state = up_ours(grads(params), state, params)
        params = _np_apply(params, u)
    g = grads(params)
    base_state = s_theirs._replace(count=state.count, inner_state=state.inner_state.inner_state)
    u_optax, new_base = up_theirs(g, base_state, params)
    x = jax.tree.map(lambda p, u: _np64(p) + _np64(u), params, u_optax)
    steps = metric_steps(name, kwargs, new_base.inner_state, LR, params)
    steps["w"] = np.zeros(7)  # masked out: no prox
    # l1reg at the 40% quantile of |x| / step over the seen rows of the table: a fair share of
    # them is zeroed, and none sits on the threshold.
    lam = float(np.quantile(np.abs(x["emb"][:SEEN]) / steps["emb"][:SEEN], 0.4))
    u_ours, new_state = up_ours(g, at(state, lam), params)
    gain = 1 / kwargs["momentum"] if kwargs.get("nesterov") else 1.0
    return {
        "zero": zero,
        "params0": params0,
        "before": params,
        "x": x,
        "u": u_ours,
        "u_optax": u_optax,
        "after": _np_apply(params, u_ours),
        "expected": jax.tree.map(lambda xx, s: soft(xx, s * lam), x, steps),
        "state": new_state.inner_state,
        "optax_state": new_base.inner_state,
        "gain": gain,
    }


@pytest.mark.parametrize("name", NAMES)
def test_traced_zero_l1reg_update_is_bitwise_the_optax_update(name, x64):
    """``inject_hyperparams(prox_X)(learning_rate, l1reg=0.0)``: inside jit l1reg is a tracer,
    the prox runs with a zero threshold, and ten updates are still optax's bit for bit."""
    (p_ours, s_ours), (p_theirs, s_theirs) = _embedding_runs(name)["zero"].values()
    assert_trees_bitwise_equal(p_ours, p_theirs)
    assert_trees_bitwise_equal(s_ours.inner_state.inner_state, s_theirs.inner_state)


@pytest.mark.parametrize("name", NAMES)
def test_one_step_is_the_soft_threshold_in_the_metric(name, x64):
    r = _embedding_runs(name)
    got, want = np.asarray(r["after"]["emb"]), r["expected"]["emb"]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(got == 0, want == 0)
    # the seen rows are zeroed exactly where the reference zeroes them, and a fair share is
    assert 0.2 < np.mean(got[:SEEN] == 0) < 0.6
    assert int(r["state"].count) == 4

    # The inner state is optax's, except that a momentum buffer also accumulates the prox's
    # displacement r = x - p+ (gradient units r / lr for sgd, update units -r for rmsprop;
    # Nesterov sees the buffer through mu^2, hence 1 / mu).
    kwargs = OPTIMIZERS[name][2]
    if "momentum" not in kwargs:
        assert_trees_bitwise_equal(r["state"].inner_state, r["optax_state"])
        return
    index = 0 if _family(name) == "sgd" else 2
    for key in ("emb", "z"):
        disp = r["x"][key] - np.asarray(r["after"][key])
        delta = disp / LR if index == 0 else -disp
        want = np.asarray(r["optax_state"][index].trace[key]) + r["gain"] * delta
        got = np.asarray(r["state"].inner_state[index].trace[key])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_mask_gives_unpenalised_leaves_the_plain_optax_step(name, x64):
    r = _embedding_runs(name)
    np.testing.assert_array_equal(r["u"]["w"], r["u_optax"]["w"])
    assert np.all(np.asarray(r["after"]["w"]) != 0)


@pytest.mark.parametrize("name", ADAPTIVE)
def test_embedding_rows_without_gradient_history_stay_bitwise_unchanged(name, x64):
    """Rows 32.. of the (1000, 16) table get no gradient in 4 steps with l1reg > 0: bitwise
    untouched (no threshold lr*lam/eps from a metric that does not exist yet)."""
    r = _embedding_runs(name)
    np.testing.assert_array_equal(r["after"]["emb"][SEEN:], r["params0"]["emb"][SEEN:])
    assert np.all(r["after"]["emb"][:SEEN] != r["params0"]["emb"][:SEEN])


def test_sgd_thresholds_rows_without_gradients(x64):
    """SGD's metric is the identity: rows with no gradient are shrunk towards 0 (as ISTA)."""
    r = _embedding_runs("sgd")
    unseen, before = np.asarray(r["after"]["emb"][SEEN:]), np.asarray(r["params0"]["emb"][SEEN:])
    assert np.mean(unseen == 0) > 0.5 and np.all(np.abs(unseen) <= np.abs(before))


@pytest.mark.parametrize("name", NAMES)
def test_complex_leaves_shrink_the_modulus_in_the_metric(name, x64):
    """A complex leaf: the modulus is soft-thresholded in the metric, the phase (and so the
    imaginary part) is kept; a ComplexWarning would be an error here (pytest -W error)."""
    r = _embedding_runs(name)
    got, want = np.asarray(r["after"]["z"]), r["expected"]["z"]
    assert got.dtype == np.complex128
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(got == 0, want == 0)
    kept = got != 0
    assert kept.any() and np.all(got[kept].imag != 0)
    np.testing.assert_allclose(np.angle(got[kept]), np.angle(r["x"]["z"][kept]), rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_bf16_params_land_exactly_on_the_prox_point(name, x64):
    """A bfloat16 leaf whose optax update is wider (float32 gradients; here float64, from the
    float64 injected hyperparameters): the update keeps the wider dtype and p + u is a bfloat16
    number (the rule of l1optax.apply_l1_prox), so apply_updates lands on the prox point exactly."""
    r = _embedding_runs(name)
    u, before, after = r["u"]["h"], r["before"]["h"], r["after"]["h"]
    assert u.dtype == jnp.result_type(before, r["u_optax"]["h"]) != jnp.bfloat16
    assert after.dtype == jnp.bfloat16
    target = before.astype(u.dtype) + u
    np.testing.assert_array_equal(target.astype(jnp.bfloat16).astype(u.dtype), target)
    np.testing.assert_array_equal(after.astype(u.dtype), target)
    np.testing.assert_allclose(np.asarray(target, np.float64), r["expected"]["h"], atol=4e-3)
    assert np.any(np.asarray(target) == 0)


@pytest.mark.parametrize("name", NAMES)
def test_bf16_params_with_f32_grads_get_f32_updates(name):
    """Without x64: bfloat16 params, float32 grads -> float32 updates (traced, not compiled)."""
    tx = build(name, 0.05, 0.5)
    params = {"h": jnp.ones(9, jnp.bfloat16)}
    grads = {"h": jnp.ones(9, jnp.float32)}
    u, _ = jax.eval_shape(tx.update, grads, tx.init(params), params)
    assert u["h"].dtype == jnp.float32


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
def test_prox_adagrad_reproduces_tensorflow(case):
    init0, init1, l1, l2, steps, exp0, exp1 = case
    tx = l1optax.prox_adagrad(3.0, l1, l2reg=l2, initial_accumulator_value=0.1, eps=0.0)
    params = {"var0": jnp.array(init0), "var1": jnp.array(init1)}
    grads = {"var0": jnp.array([0.1, 0.2]), "var1": jnp.array([0.01, 0.02])}
    state = tx.init(params)
    update = jax.jit(tx.update)
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
    g = 2.0 * (var @ x) * x.T  # the gradient of (var @ x)^2: [[112, 140]]
    u, _ = jax.jit(tx.update)(g, tx.init(var), var)
    np.testing.assert_allclose(optax.apply_updates(var, u), [[0.0, 1.0]], atol=0.01)


# --------------------------------------------------------------------------------------------
# dtypes: one rule with l1optax.apply_l1_prox (land exactly on the prox point; complex: modulus).
# --------------------------------------------------------------------------------------------


def test_prox_sgd_is_sgd_then_l1_prox_bitwise_for_bf16_and_complex():
    """bfloat16 params with float32 grads: float32 updates that land exactly on the prox point;
    complex64 params: the modulus is shrunk and the imaginary part kept; both bitwise
    ``chain(optax.sgd, l1optax.apply_l1_prox)``."""
    rng = np.random.default_rng(6)
    params = {
        "h": jnp.asarray(rng.standard_normal(64), jnp.bfloat16),
        "z": jnp.asarray(rng.standard_normal(32) + 1j * rng.standard_normal(32), jnp.complex64),
    }
    grads = {
        "h": jnp.asarray(rng.standard_normal(64), jnp.float32),
        "z": jnp.asarray(rng.standard_normal(32) + 1j * rng.standard_normal(32), jnp.complex64),
    }
    ours = l1optax.prox_sgd(0.1, 5.0)
    chain = optax.chain(optax.sgd(0.1), l1optax.apply_l1_prox(0.1, 5.0))

    @jax.jit
    def both(params, grads):
        return ours.update(grads, ours.init(params), params)[0], chain.update(
            grads, chain.init(params), params
        )[0]

    u, u_chain = both(params, grads)
    assert_trees_bitwise_equal(u, u_chain)
    assert u["h"].dtype == jnp.float32 and u["z"].dtype == jnp.complex64
    new = optax.apply_updates(params, u)
    target = params["h"].astype(jnp.float32) + u["h"]
    np.testing.assert_array_equal(new["h"].astype(jnp.float32), target)
    assert new["h"].dtype == jnp.bfloat16 and np.any(np.asarray(target) == 0)
    z, x = np.asarray(new["z"]), np.asarray(params["z"]) - 0.1 * np.asarray(grads["z"])
    np.testing.assert_allclose(z, soft(x, 0.5), rtol=1e-5, atol=1e-6)
    kept = z != 0
    assert 0 < kept.sum() < 32 and np.all(z[kept].imag != 0)


# --------------------------------------------------------------------------------------------
# prox=, mask=, flags, bad input.
# --------------------------------------------------------------------------------------------


def test_prox_together_with_l2reg_raises():
    with pytest.raises(ValueError, match=r"`prox_adam\(l2reg=\.\.\.\)` applies to the default"):
        l1optax.prox_adam(0.1, 0.1, prox=l1optax.prox_l1, l2reg=0.1)


def test_prox_that_changes_a_shape_raises_naming_the_leaf():
    def truncating(x, hyperparams, scaling):
        return jax.tree.map(lambda a: a[:1], x)

    tx = l1optax.prox_adam(0.1, 0.1, prox=truncating)
    params = {"kernel": jnp.ones(3)}
    with pytest.raises(ValueError, match=r"shape \(1,\) for leaf \['kernel'\] of shape \(3,\)"):
        jax.eval_shape(tx.update, params, tx.init(params), params)  # raised while tracing


@pytest.mark.parametrize(
    ("factory", "flag"),
    [
        (l1optax.prox_sgd, "nesterov"),
        (l1optax.prox_adam, "nesterov"),
        (l1optax.prox_adamw, "nesterov"),
        (l1optax.prox_adabelief, "nesterov"),
        (l1optax.prox_amsgrad, "bias_correction_mu"),
        (l1optax.prox_rmsprop, "centered"),
        (l1optax.prox_rmsprop, "eps_in_sqrt"),
    ],
)
def test_non_bool_flag_raises_type_error(factory, flag):
    with pytest.raises(TypeError, match=rf"`{factory.__name__}\({flag}=\.\.\.\)` must be a bool"):
        factory(0.1, 0.1, **{flag: "no"})


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_strength_or_learning_rate_raises_at_construction(name, bad):
    fn = OPTIMIZERS[name][0].__name__
    with pytest.raises(ValueError, match=rf"`{fn}\(l1reg=\.\.\.\)` must be non-negative"):
        build(name, 0.1, bad)
    with pytest.raises(ValueError, match=rf"`{fn}\(learning_rate=\.\.\.\)`"):
        build(name, bad, 0.1)


def test_bad_hyperparameters_raise():
    with pytest.raises(ValueError, match=r"prox_adam\(b1=...\)` must be in \[0.0, 1.0\), got 1.0"):
        l1optax.prox_adam(0.1, 0.1, b1=1.0)
    with pytest.raises(ValueError, match=r"prox_adam\(b2=...\)"):
        l1optax.prox_adam(0.1, 0.1, b2=-0.1)
    with pytest.raises(ValueError, match=r"prox_adam\(eps=...\)"):
        l1optax.prox_adam(0.1, 0.1, eps=-1e-8)
    with pytest.raises(ValueError, match=r"prox_nadam\(b2=...\)"):
        l1optax.prox_nadam(0.1, 0.1, b2=1.5)
    with pytest.raises(ValueError, match=r"prox_amsgrad\(eps_root=...\)"):
        l1optax.prox_amsgrad(0.1, 0.1, eps_root=-1.0)
    with pytest.raises(ValueError, match=r"prox_adamw\(weight_decay=...\)"):
        l1optax.prox_adamw(0.1, 0.1, weight_decay=-1e-4)
    with pytest.raises(ValueError, match=r"prox_rmsprop\(decay=...\)"):
        l1optax.prox_rmsprop(0.1, 0.1, decay=1.5)
    with pytest.raises(ValueError, match=r"prox_rmsprop\(momentum=...\)"):
        l1optax.prox_rmsprop(0.1, 0.1, momentum=1.0)
    with pytest.raises(ValueError, match=r"prox_sgd\(momentum=...\)"):
        l1optax.prox_sgd(0.1, 0.1, momentum=-0.5)
    with pytest.raises(ValueError, match=r"prox_adagrad\(initial_accumulator_value=...\)"):
        l1optax.prox_adagrad(0.1, 0.1, initial_accumulator_value=-1.0)
    with pytest.raises(ValueError, match=r"prox_sgd\(l2reg=...\)"):
        l1optax.prox_sgd(0.1, 0.1, l2reg=-1.0)
    with pytest.raises(ValueError, match=r"prox_adam\(learning_rate=...\)` is required"):
        l1optax.prox_adam(None, 0.1)


def test_bad_trees_and_missing_params():
    tx = l1optax.prox_adam(0.1, 0.1)
    with pytest.raises(TypeError, match=r"\['i'\] has dtype int32"):
        tx.init({"w": jnp.ones(2), "i": jnp.ones(2, jnp.int32)})
    params = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match=r"needs the current parameters"):
        tx.update(params, tx.init(params), None)
    tx = l1optax.prox_sgd(0.1, 0.1, mask={"w": True, "x": False})
    with pytest.raises(ValueError, match=r"`prox_sgd\(mask=...\)` does not match"):
        tx.init(params)


def test_low_precision_decay_error_points_to_hyperparam_dtype():
    params = jnp.ones(2, jnp.bfloat16)
    with pytest.raises(ValueError, match=r"b2=...\)` must be in .* hyperparam_dtype=jnp.float32"):
        optax.inject_hyperparams(l1optax.prox_adam)(0.1, 0.1).init(params)
    tx = optax.inject_hyperparams(l1optax.prox_adam, hyperparam_dtype=jnp.float32)(0.1, 0.1)
    base = optax.inject_hyperparams(optax.adam, hyperparam_dtype=jnp.float32)(0.1)
    u = jax.eval_shape(tx.update, params, tx.init(params), params)[0]
    assert u.dtype == jax.eval_shape(base.update, params, base.init(params), params)[0].dtype


@pytest.mark.parametrize("name", NAMES)
def test_inject_hyperparams_on_complex_params_needs_float32_hyperparams_and_says_so(name):
    """optax casts injected hyperparameters to the parameters' dtype (complex64 here); l1optax's
    hyperparameters are real, so the error names ``hyperparam_dtype=jnp.float32``, which
    works for every optimizer and shrinks the modulus like the plain optimizer does."""
    params = {"z": jnp.asarray([0.3 + 0.4j, 0.01 - 0.02j, -1.0 + 0.5j], jnp.complex64)}
    factory, _, kwargs, _ = OPTIMIZERS[name]
    complex_hp = optax.inject_hyperparams(factory)(learning_rate=0.1, l1reg=0.1, **kwargs)
    with pytest.raises(TypeError, match=r"hyperparam_dtype=jnp\.float32"):
        complex_hp.init(params)
    tx = optax.inject_hyperparams(factory, hyperparam_dtype=jnp.float32)(
        learning_rate=0.1, l1reg=0.1, **kwargs
    )
    got, _ = jax.jit(tx.update)(params, tx.init(params), params)
    plain = build(name, 0.1, 0.1)
    expected, _ = plain.update(params, plain.init(params), params)
    assert got["z"].dtype == jnp.complex64
    np.testing.assert_allclose(np.asarray(got["z"]), np.asarray(expected["z"]), rtol=0, atol=2e-6)


# --------------------------------------------------------------------------------------------
# Composition: traced strengths, lax.cond, apply_if_finite, MultiSteps, empty trees.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sgd_momentum", "adam", "adagrad"])
def test_traced_invalid_strength_poisons_to_nan(name):
    params, grads = jnp.array([1.0, 0.5]), jnp.array([0.1, 0.1])

    @jax.jit
    def step(lam):
        tx = build(name, 0.1, lam)
        return tx.update(grads, tx.init(params), params)[0]

    assert np.all(np.isnan(step(-1.0)))
    assert np.all(np.isfinite(step(0.1)))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
def test_state_types_survive_lax_cond(dtype):
    """lax.cond needs both branches to return identical types: dtype, shape and weak type.
    Tracing is enough to check that (make_jaxpr raises on a mismatch); nothing is compiled."""
    params = {"w": jnp.array([[0.5, -0.01], [0.2, 0.3]], dtype), "b": None}
    grads = {"w": jnp.array([[0.1, 0.0], [0.2, -0.1]], dtype), "b": None}
    for name in NAMES:
        tx = build(name, 0.1, 0.05)
        state = tx.init(params)

        def maybe_step(flag, state, tx=tx):
            return jax.lax.cond(flag, lambda s: tx.update(grads, s, params)[1], lambda s: s, state)

        jax.make_jaxpr(maybe_step)(True, state)


def test_apply_if_finite_skips_nan_steps():
    tx = optax.apply_if_finite(l1optax.prox_adam(0.1, 0.01), max_consecutive_errors=3)
    params = jnp.array([1.0, -1.0])
    state = tx.init(params)
    update = jax.jit(tx.update)
    u, state = update(jnp.array([jnp.nan, 0.1]), state, params)
    np.testing.assert_array_equal(u, jnp.zeros(2))  # skipped, NaN not applied
    u, state = update(jnp.array([0.1, 0.1]), state, params)
    assert np.all(np.isfinite(np.asarray(u))) and np.all(np.asarray(u) != 0)


def test_empty_tree_none_leaves_and_multisteps():
    for name in NAMES:
        tx = build(name, 0.1, 0.1)
        u, s = jax.eval_shape(tx.update, {}, tx.init({}), {})
        assert u == {} and isinstance(s, l1optax.ProxInMetricState)
    tx = optax.MultiSteps(l1optax.prox_adam(0.1, 1.0), every_k_schedule=2)
    params = {"w": jnp.array([1.0, 0.01], jnp.bfloat16), "n": None}
    state = tx.init(params)
    g = {"w": jnp.array([0.1, 0.1], jnp.bfloat16), "n": None}
    update = jax.jit(tx.update)
    u, state = update(g, state, params)
    assert np.all(np.asarray(u["w"], np.float32) == 0)  # accumulating, no step yet
    u, state = update(g, state, params)
    new = optax.apply_updates(params, u)
    assert new["w"].dtype == jnp.bfloat16 and float(new["w"][1]) == 0.0 and new["n"] is None
