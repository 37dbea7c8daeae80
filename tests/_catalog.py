"""A registry that builds every public l1optax transform and optimizer with small hyperparameters.

The scale and reliability tests (sharding, checkpointing, donation, stability, faults, long runs)
iterate over :data:`CATALOG`, so a new public transform is exercised by all of them as soon as it
appears in ``l1optax.__all__``:

* hand-written entries for the core transforms (``apply_l1_prox`` after SGD and Adam, ``apply_prox``,
  ``add_l1_subgradient``, ``with_l1`` with both methods, with schedules and masks);
* entries for every proximal optimizer (``prox_sgd``, ``prox_adam``, ``prox_adamw``,
  ``prox_nadam``, ``prox_amsgrad``, ``prox_adabelief``, ``prox_adagrad``, ``prox_rmsprop``),
  ``ftrl``, ``cumulative_l1`` and ``apply_group_l1_prox`` (each name must exist);
* a generic entry for any *other* public factory whose return annotation is an optax
  ``GradientTransformation``, built from its signature (``learning_rate``/``l1reg`` and friends);
* wrapped variants ``optax.masked``, ``optax.MultiSteps`` and ``optax.inject_hyperparams``.

:func:`transform_factories` finds the public factories; ``tests/test_stability.py`` asserts that
every one of them is covered by an entry that builds, so nothing is skipped silently.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import l1optax

LR = 0.05
LAM = 0.02

# The optimizers: GradientTransformation factories taking (at least) ``learning_rate`` and
# ``l1reg``.
EXPECTED_FACTORIES = (
    "prox_sgd",
    "prox_adam",
    "prox_adamw",
    "prox_nadam",
    "prox_amsgrad",
    "prox_adabelief",
    "prox_adagrad",
    "prox_rmsprop",
    "ftrl",
    "cumulative_l1",
    "apply_group_l1_prox",
)

# Factories that are a final proximal step (they need a base optimizer before them).
LAST_IN_CHAIN = {"apply_l1_prox", "apply_prox", "apply_group_l1_prox", "cumulative_l1"}

# Values for the arguments a generic factory may require (small, valid hyperparameters).
_GENERIC_ARGS = {
    "learning_rate": LR,
    "l1reg": LAM,
    "l2reg": 0.0,
    "lam": LAM,
    "strength": LAM,
    "l1_strength": LAM,
}


@dataclasses.dataclass(frozen=True)
class Entry:
    """One buildable transform.

    Attributes:
      name: the test id.
      covers: the public ``l1optax`` names this entry exercises.
      build: a zero-argument callable returning the ``optax.GradientTransformation``.
      exact_zeros: whether the transform lands parameters exactly on 0 (a proximal step).
      wrapper: ``None``, ``"masked"``, ``"multisteps"`` or ``"inject"``.
    """

    name: str
    covers: tuple[str, ...]
    build: Callable[[], optax.GradientTransformation]
    exact_zeros: bool = True
    wrapper: str | None = None

    def __repr__(self) -> str:  # readable pytest ids
        return self.name


def _is_transform_annotation(fn: Callable[..., Any]) -> bool:
    try:
        ann = inspect.signature(fn).return_annotation
    except (TypeError, ValueError):
        return False
    text = ann if isinstance(ann, str) else getattr(ann, "__name__", repr(ann))
    return "GradientTransformation" in str(text)


def transform_factories() -> list[str]:
    """Public names in ``l1optax.__all__`` that are GradientTransformation factories.

    A name counts if it is a function (not a class) annotated to return an optax
    ``GradientTransformation*``, or if it is one of the announced optimizer names.
    """
    out = []
    for name in l1optax.__all__:
        obj = getattr(l1optax, name, None)
        if obj is None or isinstance(obj, type) or not callable(obj):
            continue
        if name in EXPECTED_FACTORIES or _is_transform_annotation(obj):
            out.append(name)
    return sorted(out)


def _generic(name: str, **overrides: Any) -> Callable[[], optax.GradientTransformation]:
    """Builds ``l1optax.<name>`` from its signature with small hyperparameters."""

    def build() -> optax.GradientTransformation:
        fn = getattr(l1optax, name)
        kwargs: dict[str, Any] = {}
        for pname, param in inspect.signature(fn).parameters.items():
            if pname in overrides:
                kwargs[pname] = overrides[pname]
            elif param.default is inspect.Parameter.empty and param.kind not in (
                inspect.Parameter.VAR_POSITIONAL,
                inspect.Parameter.VAR_KEYWORD,
            ):
                if pname not in _GENERIC_ARGS:
                    raise TypeError(
                        f"tests/_catalog.py cannot build l1optax.{name}: required argument "
                        f"{pname!r} is unknown; add a hand-written entry for it"
                    )
                kwargs[pname] = _GENERIC_ARGS[pname]
        tx = fn(**kwargs)
        if name in LAST_IN_CHAIN:
            tx = optax.chain(optax.sgd(kwargs.get("learning_rate", LR)), tx)
        return tx

    return build


def _injected_sgd() -> optax.GradientTransformation:
    return optax.inject_hyperparams(optax.sgd)(learning_rate=LR)


def _core_entries() -> list[Entry]:
    sched = optax.linear_schedule(LR, LR / 5, transition_steps=50)
    lam_sched = optax.exponential_decay(LAM, transition_steps=20, decay_rate=0.5)
    only_w = lambda params: jax.tree_util.tree_map_with_path(  # noqa: E731
        lambda path, _: "w" in jax.tree_util.keystr(path), params
    )
    return [
        Entry(
            "sgd+apply_l1_prox",
            ("apply_l1_prox",),
            lambda: optax.chain(optax.sgd(LR), l1optax.apply_l1_prox(LR, LAM)),
        ),
        Entry(
            "adam+apply_l1_prox",
            ("apply_l1_prox",),
            lambda: optax.chain(optax.adam(LR), l1optax.apply_l1_prox(LR, LAM)),
        ),
        Entry(
            "sgd_sched+l1_prox_sched",
            ("apply_l1_prox",),
            lambda: optax.chain(optax.sgd(sched), l1optax.apply_l1_prox(sched, lam_sched)),
        ),
        Entry(
            "sgd+l1_prox_mask",
            ("apply_l1_prox",),
            lambda: optax.chain(optax.sgd(LR), l1optax.apply_l1_prox(LR, LAM, mask=only_w)),
        ),
        Entry(
            "sgd+apply_prox",
            ("apply_prox",),
            lambda: optax.chain(optax.sgd(LR), l1optax.apply_prox(l1optax.prox_l1, LR, LAM)),
        ),
        Entry(
            "sgd+apply_prox(prox_elastic_net)",
            ("apply_prox", "prox_elastic_net"),
            lambda: optax.chain(
                optax.sgd(LR), l1optax.apply_prox(l1optax.prox_elastic_net, LR, (LAM, 0.01))
            ),
        ),
        Entry(
            "adam+apply_prox(prox_sparse_group_l1)",
            ("apply_prox", "prox_sparse_group_l1"),
            lambda: optax.chain(
                optax.adam(LR), l1optax.apply_prox(l1optax.prox_sparse_group_l1, LR, (LAM, LAM))
            ),
        ),
        Entry(
            "add_l1_subgradient+adam",
            ("add_l1_subgradient",),
            lambda: optax.chain(l1optax.add_l1_subgradient(LAM), optax.adam(LR)),
            exact_zeros=False,
        ),
        Entry(
            "add_l1_subgradient_sched+sgd",
            ("add_l1_subgradient",),
            lambda: optax.chain(l1optax.add_l1_subgradient(lam_sched), optax.sgd(LR)),
            exact_zeros=False,
        ),
        # optax.inject_hyperparams(optax.adam) itself moves bfloat16 moments to float32 when the
        # parameters mix dtypes (its b1 is a float32 array), and inject_hyperparams(adagrad)'s
        # state shares one buffer between its initial_accumulator_value and a 0-d accumulator
        # (donation fails in optax alone), so the injected entry here is sgd: with_l1 reads its
        # learning rate from the state. tests/test_metric_prox.py covers the adaptive metrics.
        Entry(
            "with_l1_proximal_injected_sgd",
            ("with_l1",),
            lambda: l1optax.with_l1(_injected_sgd(), LAM),
            wrapper="inject",
        ),
        Entry(
            "with_l1_decoupled_adam",
            ("with_l1",),
            lambda: l1optax.with_l1(optax.adam(LR), LAM, method="decoupled", learning_rate=LR),
        ),
        Entry(
            "prox_in_metric(adagrad)",
            ("prox_in_metric",),
            lambda: l1optax.prox_in_metric(
                optax.adagrad(LR),
                lambda state, count: jax.tree.map(
                    lambda a: LR * jax.lax.rsqrt(a + 1e-7), state[0].sum_of_squares
                ),
                LAM,
            ),
        ),
        Entry(
            "freeze_support(adam)",
            ("freeze_support",),
            lambda: l1optax.freeze_support(optax.adam(LR)),
            exact_zeros=False,
        ),
        Entry(
            "target_sparsity(inject(prox_sgd))",
            ("target_sparsity",),
            lambda: l1optax.target_sparsity(
                optax.inject_hyperparams(l1optax.prox_sgd)(learning_rate=LR, l1reg=LAM),
                0.5,
                end_step=10,
            ),
            wrapper="inject",
        ),
        Entry(
            "prox_adam(prox_group_l1)",
            ("prox_adam", "prox_group_l1"),
            lambda: l1optax.prox_adam(
                LR, LAM, prox=lambda x, lam, s: l1optax.prox_group_l1(x, lam, s, axis=None)
            ),
        ),
        Entry(
            "with_l1_subgradient_momentum",
            ("with_l1",),
            lambda: l1optax.with_l1(optax.sgd(LR, momentum=0.9), LAM, method="subgradient"),
            exact_zeros=False,
        ),
    ]


# Hand-written builders for the announced optimizers (used only when the name exists).
_OPTIMIZER_OVERRIDES: dict[str, dict[str, Any]] = {
    "ftrl": {"l1reg": LAM, "l2reg": 0.01},  # keyword-only with default 0: pass it explicitly
    "prox_sgd": {"momentum": 0.9},
    "prox_rmsprop": {"momentum": 0.5, "centered": True},
}

# Known failures in other modules, reported to their owners: the entry stays in the catalog and
# its tests are marked xfail (non-strict) so a fix shows up as XPASS.
KNOWN_BUGS: dict[str, str] = {}


def _optimizer_entries() -> list[Entry]:
    out = []
    for name in EXPECTED_FACTORIES:
        out.append(Entry(name, (name,), _generic(name, **_OPTIMIZER_OVERRIDES.get(name, {}))))
    return out


def _generic_entries(already: set[str]) -> list[Entry]:
    return [
        Entry(f"generic:{name}", (name,), _generic(name))
        for name in transform_factories()
        if name not in already
    ]


def _wrapped_entries() -> list[Entry]:
    mask_w = lambda params: jax.tree_util.tree_map_with_path(  # noqa: E731
        lambda path, _: "w" in jax.tree_util.keystr(path), params
    )

    def injected(learning_rate, l1reg):
        return l1optax.with_l1(optax.sgd(learning_rate), l1reg, learning_rate=learning_rate)

    def injected_sub(learning_rate, l1reg):
        return optax.chain(l1optax.add_l1_subgradient(l1reg), optax.sgd(learning_rate))

    out = [
        Entry(
            "masked(with_l1_proximal_sgd)",
            ("with_l1", "apply_l1_prox"),
            lambda: optax.masked(l1optax.with_l1(optax.sgd(LR), LAM, learning_rate=LR), mask_w),
            wrapper="masked",
        ),
        Entry(
            "multisteps(with_l1_proximal_sgd)",
            ("with_l1", "apply_l1_prox"),
            lambda: optax.MultiSteps(
                l1optax.with_l1(optax.sgd(LR), LAM, learning_rate=LR), every_k_schedule=2
            ).gradient_transformation(),
            wrapper="multisteps",
        ),
        Entry(
            "inject(with_l1_proximal_sgd)",
            ("with_l1", "apply_l1_prox"),
            lambda: optax.inject_hyperparams(injected)(learning_rate=LR, l1reg=LAM),
            wrapper="inject",
        ),
        Entry(
            "inject(add_l1_subgradient)",
            ("add_l1_subgradient",),
            lambda: optax.inject_hyperparams(injected_sub)(learning_rate=LR, l1reg=LAM),
            exact_zeros=False,
            wrapper="inject",
        ),
        Entry(
            "multisteps(add_l1_subgradient)",
            ("add_l1_subgradient",),
            lambda: optax.MultiSteps(
                optax.chain(l1optax.add_l1_subgradient(LAM), optax.adam(LR)), every_k_schedule=3
            ).gradient_transformation(),
            exact_zeros=False,
            wrapper="multisteps",
        ),
    ]
    for name in EXPECTED_FACTORIES:
        build = _generic(name, **_OPTIMIZER_OVERRIDES.get(name, {}))
        out.append(
            Entry(
                f"masked({name})",
                (name,),
                lambda b=build: optax.masked(b(), mask_w),
                wrapper="masked",
            )
        )
        out.append(
            Entry(
                f"multisteps({name})",
                (name,),
                lambda b=build: optax.MultiSteps(b(), every_k_schedule=2).gradient_transformation(),
                wrapper="multisteps",
            )
        )
    return out


def catalog() -> list[Entry]:
    """Every entry: core, announced optimizers, other public factories, wrapped variants."""
    entries = _core_entries() + _optimizer_entries()
    entries += _generic_entries({n for e in entries for n in e.covers})
    entries += _wrapped_entries()
    return entries


CATALOG = catalog()
UNWRAPPED = [e for e in CATALOG if e.wrapper is None]


# Wrapped entries run in every per-entry test; the masked/MultiSteps variants of each optimizer
# repeat what the core wrapped entries show, so they are marked ``slow`` (``pytest -m slow``;
# not in the default run, which CI runs).
CORE_WRAPPED = {
    "with_l1_proximal_injected_sgd",
    "target_sparsity(inject(prox_sgd))",
    "masked(with_l1_proximal_sgd)",
    "multisteps(with_l1_proximal_sgd)",
    "inject(with_l1_proximal_sgd)",
    "inject(add_l1_subgradient)",
    "multisteps(add_l1_subgradient)",
}


# Unwrapped entries too slow for every catalog test (the group root-find compiles slowly); they
# run with `pytest -m slow`, and their behaviour has its own default tests (test_metric_prox).
SLOW_UNWRAPPED = {"prox_adam(prox_group_l1)"}


def is_slow(entry: Entry) -> bool:
    if entry.name in SLOW_UNWRAPPED:
        return True
    return entry.wrapper is not None and entry.name not in CORE_WRAPPED


def params_for(entries: list[Entry]) -> list[Any]:
    """``pytest.param`` per entry: xfail where :data:`KNOWN_BUGS` lists it, slow per :func:`is_slow`."""
    import pytest

    out = []
    for e in entries:
        marks = []
        if e.name in KNOWN_BUGS:
            marks.append(pytest.mark.xfail(reason=KNOWN_BUGS[e.name], strict=False))
        if is_slow(e):
            marks.append(pytest.mark.slow)
        out.append(pytest.param(e, id=e.name, marks=marks))
    return out


def covered_names() -> set[str]:
    return {n for e in CATALOG for n in e.covers}


# ----------------------------------------------------------------------------- test data


def make_params(dtype: Any = jnp.float32, seed: int = 0) -> dict[str, Any]:
    """A small nested parameter tree with a 2-D weight, a bias, a 0-d scale and planted zeros."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(8, 16)) * 0.1
    w[:, :3] = 0.0  # planted exact zeros
    return {
        "dense": {
            "w": jnp.asarray(w, dtype),
            "b": jnp.asarray(rng.normal(size=(16,)) * 0.1, dtype),
        },
        "out": {"w": jnp.asarray(rng.normal(size=(16, 4)) * 0.1, dtype)},
        "scale": jnp.asarray(1.0, dtype),
    }


def make_grads(params: Any, step: int, seed: int = 1) -> Any:
    """Deterministic pseudo-gradients for step ``step`` (same dtype and shape as ``params``)."""
    leaves, treedef = jax.tree.flatten(params)
    rng = np.random.default_rng(seed * 100_003 + step)
    return jax.tree.unflatten(
        treedef, [jnp.asarray(rng.normal(size=p.shape), p.dtype) for p in leaves]
    )


def loss_grads(params: Any) -> Any:
    """Gradients of a fixed smooth loss 0.5*sum((p - target)^2) (a pure function of params)."""
    return jax.tree.map(lambda p: p - jnp.asarray(0.3, p.dtype) * jnp.sign(p), params)


def tree_assert_bitwise_equal(a: Any, b: Any, msg: str = "") -> None:
    """Same structure, dtypes, shapes and bits (``-0.0`` differs from ``0.0``)."""
    from _helpers import assert_trees_bitwise_equal

    assert_trees_bitwise_equal(a, b, msg)


def train(tx: optax.GradientTransformation, params: Any, state: Any, steps: int, start: int = 0):
    """Runs ``steps`` jitted steps with :func:`make_grads`; returns (params, state)."""
    step = jax.jit(_step(tx))
    for t in range(start, start + steps):
        params, state = step(params, state, make_grads(params, t))
    return params, state


def _step(tx):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step
