"""ftrl: TensorFlow's and Keras' published test values, Adagrad/SGD equivalences, the lasso
option against scikit-learn, dtypes and bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import least_squares, loop_fit, scan_fit
from sklearn.linear_model import Lasso

import l1optax


def _run(tx, params, grads, steps, jit=False):
    return loop_fit(tx, params, grads, steps, jit=jit)


# Source: tensorflow/tensorflow, tensorflow/python/training/ftrl_test.py (FtrlOptimizer, lr 3.0,
# initial_accumulator_value 0.1, grads0 [0.1, 0.2], grads1 [0.01, 0.02]).
TF_FTRL = {
    "without_regularization": (
        dict(l1reg=0.0, l2reg=0.0),
        [0.0, 0.0],
        [0.0, 0.0],
        3,
        [-2.60260963, -4.29698515],
        [-0.28432083, -0.56694895],
    ),
    "without_regularization2": (
        dict(l1reg=0.0, l2reg=0.0),
        [1.0, 2.0],
        [4.0, 3.0],
        3,
        [-2.55607247, -3.98729396],
        [-0.28232238, -0.56096673],
    ),
    "l1": (
        dict(l1reg=0.001, l2reg=0.0),
        [1.0, 2.0],
        [4.0, 3.0],
        10,
        [-7.66718769, -10.91273689],
        [-0.93460727, -1.86147261],
    ),
    "l1_l2": (
        dict(l1reg=0.001, l2reg=2.0),
        [1.0, 2.0],
        [4.0, 3.0],
        10,
        [-0.24059935, -0.46829352],
        [-0.02406147, -0.04830509],
    ),
    "l1_l2_l2shrinkage": (
        dict(l1reg=0.001, l2reg=2.0, l2_shrinkage=0.1),
        [1.0, 2.0],
        [4.0, 3.0],
        10,
        [-0.22578995, -0.44345796],
        [-0.14378493, -0.13229476],
    ),
}


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("name", list(TF_FTRL))
def test_reproduces_tensorflow_ftrl_test_values(name, jit):
    kwargs, init0, init1, steps, exp0, exp1 = TF_FTRL[name]
    tx = l1optax.ftrl(3.0, initial_accumulator_value=0.1, **kwargs)
    params = {"var0": jnp.array(init0), "var1": jnp.array(init1)}
    grads = {"var0": jnp.array([0.1, 0.2]), "var1": jnp.array([0.01, 0.02])}
    params, _ = _run(tx, params, grads, steps, jit)
    np.testing.assert_allclose(params["var0"], exp0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(params["var1"], exp1, rtol=1e-6, atol=1e-6)


def test_l2_shrinkage_does_not_change_the_accumulator():
    # testFtrlWithL2ShrinkageDoesNotChangeLrSchedule (same file).
    kwargs = dict(initial_accumulator_value=0.1, l1reg=0.001, l2reg=2.0)
    params = jnp.array([1.0, 2.0])
    grads = jnp.array([0.1, 0.2])
    p0, s0 = _run(l1optax.ftrl(3.0, l2_shrinkage=0.1, **kwargs), params, grads, 10)
    p1, s1 = _run(l1optax.ftrl(3.0, **kwargs), params, grads, 10)
    assert np.all(np.asarray(p0) ** 2 < np.asarray(p1) ** 2)
    np.testing.assert_allclose(s0.accumulator, s1.accumulator, rtol=1e-7)
    np.testing.assert_allclose(s0.accumulator, 0.1 + 10 * np.array([0.01, 0.04]), rtol=1e-6)


def test_reproduces_keras_golden_values():
    # Source: keras-team/keras, keras/src/optimizers/ftrl_test.py, test_correctness_with_golden.
    tx = l1optax.ftrl(
        0.05,
        learning_rate_power=-0.2,
        initial_accumulator_value=0.4,
        l1reg=0.05,
        l2reg=0.15,
        l2_shrinkage=0.01,
        beta=0.3,
    )
    golden = np.array(
        [
            [0.0] * 10,
            [
                -0.0034,
                -0.0077,
                -0.0118,
                -0.0157,
                -0.0194,
                -0.023,
                -0.0263,
                -0.0294,
                -0.0325,
                -0.0354,
            ],
            [
                -0.0078,
                -0.0162,
                -0.0242,
                -0.0317,
                -0.0387,
                -0.0454,
                -0.0516,
                -0.0575,
                -0.0631,
                -0.0685,
            ],
            [
                -0.0121,
                -0.0246,
                -0.0363,
                -0.0472,
                -0.0573,
                -0.0668,
                -0.0757,
                -0.0842,
                -0.0922,
                -0.0999,
            ],
            [
                -0.0164,
                -0.0328,
                -0.0481,
                -0.0623,
                -0.0753,
                -0.0875,
                -0.099,
                -0.1098,
                -0.1201,
                -0.1299,
            ],
        ]
    )
    x = jnp.ones(10)
    state = tx.init(x)
    u, state = tx.update(jnp.full((10,), 0.01), state, x)
    x = optax.apply_updates(x, u)
    grads = jnp.arange(1, 11) / 10.0
    for i in range(5):
        np.testing.assert_allclose(x, golden[i], rtol=5e-4, atol=5e-4)
        if i == 0:
            assert np.all(np.asarray(x) == 0.0)  # exact zeros, not just small
        u, state = tx.update(grads, state, x)
        x = optax.apply_updates(x, u)


def test_reproduces_keras_single_step():
    # Source: keras/src/optimizers/ftrl_test.py, test_single_step (default hyperparameters).
    tx = l1optax.ftrl(0.5)
    x = jnp.array([1.0, 2.0, 3.0, 4.0])
    u, _ = tx.update(jnp.array([1.0, 6.0, 7.0, 2.0]), tx.init(x), x)
    np.testing.assert_allclose(
        optax.apply_updates(x, u), [0.2218, 1.3954, 2.3651, 2.8814], rtol=1e-4, atol=1e-4
    )


def test_equivalent_to_adagrad_and_sgd_from_zero():
    # ftrl_test.py: from zero weights, without L1/L2, power -0.5 is Adagrad and power 0 is SGD.
    params = {"a": jnp.zeros(2), "b": jnp.zeros(2)}
    grads = {"a": jnp.array([0.1, 0.2]), "b": jnp.array([0.01, 0.02])}
    p_ftrl, _ = _run(l1optax.ftrl(3.0, initial_accumulator_value=0.1), params, grads, 5)
    p_ada, _ = _run(optax.adagrad(3.0, initial_accumulator_value=0.1, eps=0.0), params, grads, 5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), p_ftrl, p_ada)
    tx = l1optax.ftrl(3.0, learning_rate_power=0.0, initial_accumulator_value=0.0)
    p_ftrl, _ = _run(tx, params, grads, 5)
    p_sgd, _ = _run(optax.sgd(3.0), params, grads, 5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), p_ftrl, p_sgd)


def _lasso_problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 12))
    w = np.zeros(12)
    w[:5] = [3.0, -2.0, 1.5, 0.5, -1.0]
    return X, X @ w + 0.5 * rng.standard_normal(80)


def _full_batch(tx, X, y, steps):
    w0 = jnp.zeros(X.shape[1], jnp.asarray(X).dtype)
    return np.asarray(scan_fit(tx, w0, jax.grad(least_squares(X, y)), steps)[0])


def test_l1reg_per_step_reaches_the_lasso_solution(x64):
    X, y = _lasso_problem()
    alpha = 0.3
    w_sk = Lasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=100_000).fit(X, y).coef_
    w = _full_batch(l1optax.ftrl(1.0, l1reg=alpha, l1reg_per_step=True), X, y, 3000)
    np.testing.assert_allclose(w, w_sk, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(w != 0, w_sk != 0)
    # With the TensorFlow convention the same l1reg is charged once for the whole run: after
    # 3000 steps its effect has faded to alpha / 3000 and the fit is nearly unregularised.
    w_tf = _full_batch(l1optax.ftrl(1.0, l1reg=alpha), X, y, 3000)
    w_ols = np.linalg.lstsq(X, y, rcond=None)[0]
    assert np.abs(w_tf - w_sk).max() > 0.1
    assert np.sum(w_tf != 0) > np.sum(w_sk != 0)
    np.testing.assert_allclose(w_tf, w_ols, atol=0.01)


def test_dtypes_exact_zeros_state_stable(float_dtype):
    tx = l1optax.ftrl(0.5, l1reg=0.5, l2reg=0.1)
    params = {"w": jnp.array([0.01, -0.02, 1.0], float_dtype), "n": None}
    grads = {"w": jnp.array([0.1, -0.1, 2.0], float_dtype), "n": None}
    state = tx.init(params)
    step = jax.jit(tx.update)
    for _ in range(3):
        u, new_state = step(grads, state, params)
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(new_state), strict=True):
            assert (a.dtype, a.shape) == (b.dtype, b.shape)
        state, params = new_state, optax.apply_updates(params, u)
        assert params["w"].dtype == float_dtype and params["n"] is None
    w = np.asarray(params["w"], np.float32)
    assert w[0] == 0.0 and w[1] == 0.0 and w[2] != 0.0
    assert step._cache_size() == 1


def test_schedules_and_inject_hyperparams():
    params = jnp.array([1.0, 2.0])
    grads = jnp.array([0.1, 0.2])
    p_const, _ = _run(l1optax.ftrl(3.0, l1reg=0.001, l2reg=2.0), params, grads, 10)
    p_sched, _ = _run(
        l1optax.ftrl(optax.constant_schedule(3.0), l1reg=lambda c: 0.001, l2reg=2.0),
        params,
        grads,
        10,
    )
    p_inj, _ = _run(
        optax.inject_hyperparams(l1optax.ftrl)(3.0, l1reg=0.001, l2reg=2.0), params, grads, 10, True
    )
    np.testing.assert_allclose(p_sched, p_const, rtol=1e-6)
    np.testing.assert_allclose(p_inj, p_const, rtol=1e-6)
    np.testing.assert_allclose(p_const, [-0.24059935, -0.46829352], rtol=1e-6)


def test_empty_tree():
    tx = l1optax.ftrl(0.1)
    u, s = tx.update({}, tx.init({}), {})
    assert u == {} and int(s.count) == 1


@pytest.mark.parametrize(
    "arg", ["l1reg", "l2reg", "l2_shrinkage", "beta", "initial_accumulator_value"]
)
@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_bad_strengths(arg, bad):
    with pytest.raises(ValueError, match=rf"`ftrl\({arg}=\.\.\.\)` must be non-negative"):
        l1optax.ftrl(0.1, **{arg: bad})


def test_bad_input():
    with pytest.raises(
        ValueError, match=r"`ftrl\(learning_rate_power=...\)` must be in \[-inf, 0\.0\]"
    ):
        l1optax.ftrl(0.1, learning_rate_power=0.5)
    with pytest.raises(ValueError, match=r"`ftrl\(learning_rate=...\)`"):
        l1optax.ftrl(-0.1)
    tx = l1optax.ftrl(0.1)
    with pytest.raises(TypeError, match=r"\['i'\] has dtype int32"):
        tx.init({"i": jnp.ones(2, jnp.int32)})
    with pytest.raises(ValueError, match=r"needs the current parameters"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)), None)


def test_non_scalar_strength_is_rejected():
    with pytest.raises(ValueError, match=r"`ftrl\(l1reg=...\)` must be a scalar or a schedule"):
        l1optax.ftrl(0.1, l1reg={"a": 0.1})


def test_complex_leaves_are_rejected_at_init_with_the_leaf_path_and_dtype():
    """FTRL clips z and accumulates g**2 (real operations): a complex leaf is a TypeError at init
    that names ftrl, the leaf and its dtype, never a silently wrong update."""
    tx = l1optax.ftrl(0.1, l1reg=0.01)
    params = {"dense": {"kernel": jnp.ones(2), "z": jnp.array([1 + 1j, 2 + 0j], jnp.complex64)}}
    with pytest.raises(TypeError, match=r"`ftrl`.*\['dense'\]\['z'\].*complex64"):
        tx.init(params)
