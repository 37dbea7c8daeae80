"""What does L1 cost per optimizer step? Times one jitted step for every way to add it.

Variants (each against its base optimizer, measured in the same process):

* ``optax.sgd`` / ``optax.adam`` — the base optimizers;
* ``with_l1(..., method="subgradient")`` — :math:`\\lambda\\,\\mathrm{sign}(p)` added to the grads;
* ``with_l1(..., method="proximal")`` — the base optimizer, then the soft-threshold prox;
* ``prox_sgd`` / ``prox_adam`` (when ``l1optax`` has them) — the prox in the optimizer's metric;
* ``penalty in loss`` — ``jax.grad`` through ``loss + l1_penalty`` (the loss here is
  :math:`\\langle g, p\\rangle`, whose gradient is the given ``g``), then the base optimizer;
* ``grad of penalty alone`` — ``jax.grad(l1_penalty)`` by itself (what the recipe adds);
* ``optax.flatten(...)`` — optax's own answer to many leaves, for comparison;
* ``flat: ...`` — the many-leaf fast path, :func:`l1optax.flat_layout`: params, grads and state as
  one buffer per dtype for the whole run;
* PyTorch peers when ``torch`` is importable: ``Adam(fused=True)`` (``foreach`` where fused is
  unavailable), then ``softshrink`` per tensor (the PyTorch way to take a prox), and the
  penalty-in-loss recipe (``autograd`` of :math:`\\lambda\\sum_i\\|p_i\\|_1` added to the grads).

Modes: ``per-call`` times each jitted call (dispatch of every argument array included);
``loop`` runs ``--loop-steps`` steps inside one jitted ``lax.fori_loop`` and divides (the device's
own time). Params and optimizer state are donated in both.

Byte model (what the step must move at least, for N parameters of ``itemsize`` bytes): SGD-type
steps read p and g and write p: 3 passes; Adam-type steps read p, g, m, v and write p, m, v: 7
passes; the penalty gradient alone reads p and writes g: 2 passes. L1 adds no pass: the threshold
and the sign fuse into the same elementwise kernel. GB/s = passes x itemsize x N / time.

Memory: for every variant the compiled step's ``memory_analysis()`` (argument, output, aliased and
temporary bytes; peak = argument + output - alias + temp), and the optimizer state's bytes per
parameter for every transform in the library (``cumulative_l1`` and ``ftrl`` included).

Run ``python benchmarks/step_overhead.py --help``; ``--quick`` is the smoke mode the tests run,
``--check`` verifies the numbers on the device first (prox vs NumPy, fast path vs plain path).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _timing  # noqa: E402

import l1optax  # noqa: E402

LR = 1e-3
LAM = 1e-2
PASSES = {"sgd": 3, "adam": 7, "penalty": 2}


# --------------------------------------------------------------------------------------------
# variants
# --------------------------------------------------------------------------------------------


@dataclass
class Variant:
    """One row: how to build the step, its family (for the base ratio) and byte model."""

    name: str
    family: str  # "sgd" | "adam" | "penalty": the base it is compared with, and its passes
    kind: str  # "tx" | "penalty_in_loss" | "penalty_grad" | "flat" | "torch"
    make: Callable[[], Any] | None = None  # -> optax transform (jax) or a torch step factory
    base: bool = False


def jax_variants(*, flat: bool = True) -> list[Variant]:
    sgd = lambda: optax.sgd(LR)  # noqa: E731
    adam = lambda: optax.adam(LR)  # noqa: E731
    out = []
    for fam, base in (("sgd", sgd), ("adam", adam)):
        out += [
            Variant(f"optax.{fam}", fam, "tx", base, base=True),
            Variant(
                f"{fam} + with_l1(subgradient)",
                fam,
                "tx",
                lambda base=base: l1optax.with_l1(base(), LAM, method="subgradient"),
            ),
            Variant(
                f"{fam} + with_l1(proximal)",
                fam,
                "tx",
                lambda base=base: l1optax.with_l1(base(), LAM, learning_rate=LR),
            ),
        ]
        prox_name = f"prox_{fam}"
        if hasattr(l1optax, prox_name):
            out.append(
                Variant(prox_name, fam, "tx", lambda n=prox_name: getattr(l1optax, n)(LR, LAM))
            )
        out.append(Variant(f"{fam} + penalty in loss", fam, "penalty_in_loss", base))
        out.append(
            Variant(
                f"optax.flatten({fam} + prox)",
                fam,
                "tx",
                lambda base=base: optax.flatten(l1optax.with_l1(base(), LAM, learning_rate=LR)),
            )
        )
        if flat:
            out += [
                Variant(f"flat: optax.{fam}", fam, "flat", base),
                Variant(
                    f"flat: {fam} + with_l1(proximal)",
                    fam,
                    "flat",
                    lambda base=base: l1optax.with_l1(base(), LAM, learning_rate=LR),
                ),
            ]
            if hasattr(l1optax, prox_name):
                out.append(
                    Variant(
                        f"flat: {prox_name}",
                        fam,
                        "flat",
                        lambda n=prox_name: getattr(l1optax, n)(LR, LAM),
                    )
                )
    out.append(Variant("grad of penalty alone", "penalty", "penalty_grad", None))
    return out


def make_tree(size: int, leaves: int, dtype: Any, seed: int) -> tuple[dict, dict]:
    """``leaves`` 1-D arrays of ``size // leaves`` parameters each, and gradients like them."""
    n = max(1, size // leaves)
    keys = jax.random.split(jax.random.key(seed), 2 * leaves)
    params = {
        f"p{i:04d}": jax.random.normal(keys[2 * i], (n,), jnp.float32).astype(dtype)
        for i in range(leaves)
    }
    grads = {
        k: (1e-3 * jax.random.normal(keys[2 * i + 1], (n,), jnp.float32)).astype(dtype)
        for i, k in enumerate(params)
    }
    return params, grads


def _data_loss(tree: Any, x: jax.Array) -> jax.Array:
    """A stand-in model loss for ``--grads loss``: sum over leaves of x/2 * |p|^2 (grad x*p)."""
    return sum(0.5 * x * jnp.sum(jnp.square(q.astype(jnp.float32))) for q in jax.tree.leaves(tree))


def _step_fn(variant: Variant, tx: Any, *, grads: str = "input", layout: Any = None) -> Callable:
    """The step ``(params, state, g_or_x) -> (params, state)`` for a JAX variant.

    ``grads="input"``: the third argument is the gradient (a tree like params). ``"loss"``: it is
    a scalar ``x`` and the gradient is computed inside the step from :func:`_data_loss`, through
    ``layout.unravel`` for the fast path, so the cost of producing a flat gradient is counted.
    """
    view = layout.unravel if layout is not None else (lambda q: q)

    def data_grad(p, gx, with_penalty=False):
        if grads == "input" and not with_penalty:
            return gx
        if grads == "input":  # gradient gx exactly; + the L1 penalty, differentiated by jax.grad

            def loss(q):
                inner = sum(
                    jnp.vdot(a, b)
                    for a, b in zip(jax.tree.leaves(gx), jax.tree.leaves(q), strict=True)
                )
                return inner + l1optax.l1_penalty(q, LAM)

        else:

            def loss(q):
                value = _data_loss(view(q), gx)
                return value + l1optax.l1_penalty(q, LAM) if with_penalty else value

        return jax.grad(loss)(p)

    if variant.kind in ("tx", "flat"):

        def step(p, s, gx):
            u, s = tx.update(data_grad(p, gx), s, p)
            return optax.apply_updates(p, u), s

    elif variant.kind == "penalty_in_loss":

        def step(p, s, gx):
            u, s = tx.update(data_grad(p, gx, with_penalty=True), s, p)
            return optax.apply_updates(p, u), s

    elif variant.kind == "penalty_grad":

        def step(p, s, gx):
            del gx
            return jax.grad(lambda q: l1optax.l1_penalty(q, LAM))(p), s

    else:
        raise ValueError(variant.kind)
    return step


def _loop_fn(step: Callable, k: int) -> Callable:
    """K steps in one ``fori_loop``. The gradient is scaled by a step-dependent factor so XLA
    cannot hoist gradient-only terms (Adam's (1-b1)g and (1-b2)g^2) out of the loop, which would
    change the step's memory traffic for some variants and not others."""

    def run(p, s, g):
        def body(i, c):
            scale = 1 + 1e-6 * i.astype(jnp.float32)
            gi = jax.tree.map(lambda x: (x * scale).astype(x.dtype), g)
            return step(c[0], c[1], gi)

        return jax.lax.fori_loop(0, k, body, (p, s))

    return run


def _memory(compiled: Any) -> dict[str, float | None]:
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it
        m = None
    if m is None:
        return {"peak_bytes": None, "temp_bytes": None}
    arg, out = m.argument_size_in_bytes, m.output_size_in_bytes
    alias, temp = m.alias_size_in_bytes, m.temp_size_in_bytes
    return {
        "peak_bytes": float(arg + out - alias + temp),
        "temp_bytes": float(temp),
        "argument_bytes": float(arg),
        "alias_bytes": float(alias),
    }


def _nbytes(tree: Any) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


@dataclass
class Prepared:
    """A compiled, donated step with its live carry (params, state), ready to be timed."""

    variant: Variant
    mode: str
    compiled: Any
    carry: Any
    grads: Any
    steps_per_call: int
    meta: dict[str, Any]
    times_s: list[float]


def prepare_jax_variant(
    variant: Variant,
    params: dict,
    grads: dict,
    *,
    mode: str,
    loop_steps: int,
    grads_mode: str = "input",
) -> Prepared:
    """Builds and compiles (AOT, params and state donated) one variant."""
    layout = None
    if variant.kind == "flat":
        layout = l1optax.flat_layout(params)
        params, grads = layout.ravel(params), layout.ravel(grads)
    else:
        params = jax.tree.map(jnp.copy, params)  # the variant donates them
    if grads_mode == "loss":
        grads = jnp.asarray(1e-3, jnp.float32)  # the scalar x of _data_loss
    tx = variant.make() if variant.make is not None else optax.sgd(LR)
    state = tx.init(params)
    step = _step_fn(variant, tx, grads=grads_mode, layout=layout)
    fn = step if mode == "per-call" else _loop_fn(step, loop_steps)
    t0 = time.perf_counter()
    compiled = jax.jit(fn, donate_argnums=(0, 1)).lower(params, state, grads).compile()
    compile_s = time.perf_counter() - t0
    n = sum(x.size for x in jax.tree.leaves(params))
    meta = {
        "compile s": compile_s,
        "n": n,
        "itemsize": jax.tree.leaves(params)[0].dtype.itemsize,
        "arrays_in": len(jax.tree.leaves((params, state, grads))),
        "state_B/param": _nbytes(state) / n,
    }
    meta.update(_memory(compiled))
    k = 1 if mode == "per-call" else loop_steps
    return Prepared(variant, mode, compiled, (params, state), grads, k, meta, [])


def time_prepared(prep: Prepared, *, repeats: int, warmup: int) -> None:
    """Times ``repeats`` more calls (after ``warmup``), appending to ``prep.times_s``."""
    compiled, grads = prep.compiled, prep.grads
    timing = _timing.time_carry(
        lambda c: compiled(c[0], c[1], grads), prep.carry, repeats=repeats, warmup=warmup
    )
    prep.carry = timing.carry
    prep.times_s += timing.times_s


def prepared_row(prep: Prepared) -> dict[str, Any]:
    timing = _timing.Timing(median_s=_timing.statistics.median(prep.times_s), times_s=prep.times_s)
    per_step = timing.median_s / prep.steps_per_call
    m = prep.meta
    row = {
        "variant": prep.variant.name,
        "family": prep.variant.family,
        "mode": prep.mode,
        "ms": 1e3 * per_step,
        "best ms": 1e3 * min(prep.times_s) / prep.steps_per_call,
        "GB/s": _timing.gbps(PASSES[prep.variant.family] * m["itemsize"] * m["n"], per_step),
        "spread": timing.spread,
        "samples": len(prep.times_s),
    }
    row.update({k: v for k, v in m.items() if k not in ("n", "itemsize")})
    return row


def run_jax_variants(
    variants: list[Variant],
    params: dict,
    grads: dict,
    *,
    mode: str,
    repeats: int,
    warmup: int,
    loop_steps: int,
    rounds: int,
    grads_mode: str = "input",
    budget_s: float | None = None,
) -> list[dict[str, Any]]:
    """Times every variant; with ``rounds > 1`` they take turns (fairer on a noisy machine).

    ``rounds = 1`` prepares, times and frees one variant at a time (least memory: use it for
    large sizes on a GPU). ``rounds = R`` keeps every variant's buffers alive and times
    ``ceil(repeats / R)`` calls of each in turn, R times, so a burst of load from elsewhere hits
    all variants alike; the median is over all samples.
    """
    rows = []
    t_start = time.perf_counter()
    if rounds <= 1:
        for v in variants:
            if budget_s is not None and time.perf_counter() - t_start > budget_s:
                print(f"  {mode:8s} {v.name:36s} skipped: --budget-s spent", file=sys.stderr)
                rows.append(
                    {
                        "variant": f"{v.name} (skipped: --budget-s)",
                        "family": v.family,
                        "mode": mode,
                        "ms": None,
                        "skipped": True,
                    }
                )
                continue
            prep = prepare_jax_variant(
                v, params, grads, mode=mode, loop_steps=loop_steps, grads_mode=grads_mode
            )
            time_prepared(prep, repeats=repeats, warmup=warmup)
            rows.append(prepared_row(prep))
            _progress(rows[-1])
            del prep
        return rows
    preps = [
        prepare_jax_variant(
            v, params, grads, mode=mode, loop_steps=loop_steps, grads_mode=grads_mode
        )
        for v in variants
    ]
    per_round = -(-repeats // rounds)
    for r in range(rounds):
        for prep in preps:
            time_prepared(prep, repeats=per_round, warmup=warmup if r == 0 else 1)
    for prep in preps:
        rows.append(prepared_row(prep))
        _progress(rows[-1])
    return rows


def _progress(row: dict[str, Any]) -> None:
    print(
        f"  {row['mode']:8s} {row['variant']:36s} {row['ms']:9.3f} ms", file=sys.stderr, flush=True
    )


# --------------------------------------------------------------------------------------------
# PyTorch peers
# --------------------------------------------------------------------------------------------


def torch_rows(
    size: int, leaves: int, dtype: str, *, repeats: int, warmup: int
) -> list[dict[str, Any]]:
    """PyTorch Adam (fused where available) alone, + softshrink, + penalty-in-loss; per call."""
    try:
        import torch
    except ImportError:
        return []
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    tdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    n = max(1, size // leaves)
    sync = (lambda _: torch.cuda.synchronize()) if dev == "cuda" else (lambda _: None)

    gen = torch.Generator(device=dev).manual_seed(0)  # generate on the device (fast at 512M)

    def fresh():
        ps = [
            torch.randn(n, generator=gen, device=dev).to(tdtype).requires_grad_(True)
            for _ in range(leaves)
        ]
        for p in ps:
            p.grad = (1e-3 * torch.randn(n, generator=gen, device=dev)).to(tdtype)
        return ps

    def make_adam(ps):
        try:
            return torch.optim.Adam(ps, lr=LR, fused=True), "fused"
        except (RuntimeError, TypeError, ValueError):
            return torch.optim.Adam(ps, lr=LR, foreach=True), "foreach"

    rows = []
    itemsize = torch.tensor([], dtype=tdtype).element_size()
    total = n * leaves

    def record(name, fn, family="adam"):
        timing = _timing.time_carry(fn, None, repeats=repeats, warmup=warmup, sync=sync)
        rows.append(
            {
                "variant": name,
                "family": family,
                "mode": "per-call",
                "ms": timing.median_ms,
                "best ms": 1e3 * min(timing.times_s),
                "GB/s": _timing.gbps(PASSES[family] * itemsize * total, timing.median_s),
                "spread": timing.spread,
            }
        )

    ps = fresh()
    opt, how = make_adam(ps)
    record(f"torch Adam({how})", lambda _: opt.step())

    def adam_softshrink(_):
        opt.step()
        with torch.no_grad():
            for p in ps:
                p.copy_(torch.nn.functional.softshrink(p, LR * LAM))

    record(f"torch Adam({how}) + softshrink", adam_softshrink)

    fixed = [p.grad.clone() for p in ps]

    def adam_penalty_in_loss(_):
        penalty = LAM * sum(p.abs().sum() for p in ps)
        pen_grads = torch.autograd.grad(penalty, ps)
        for p, g, pg in zip(ps, fixed, pen_grads, strict=True):
            p.grad = g + pg
        opt.step()

    record(f"torch Adam({how}) + penalty in loss", adam_penalty_in_loss)

    def penalty_alone(_):
        penalty = LAM * sum(p.abs().sum() for p in ps)
        return torch.autograd.grad(penalty, ps)

    record("torch grad of penalty alone", penalty_alone, family="penalty")
    return rows


# --------------------------------------------------------------------------------------------
# state bytes per parameter, for every transform in the library
# --------------------------------------------------------------------------------------------


def state_bytes_table(dtype: Any) -> list[dict[str, Any]]:
    """Optimizer-state bytes per parameter (N = 2**20, so the int32 counts are negligible)."""
    n = 2**20
    params = {"w": jax.ShapeDtypeStruct((n,), dtype)}
    candidates: dict[str, Callable[[], Any]] = {
        "optax.sgd": lambda: optax.sgd(LR),
        "optax.adam": lambda: optax.adam(LR),
        "l1_prox": lambda: l1optax.l1_prox(LR, LAM),
        "add_l1_subgradient": lambda: l1optax.add_l1_subgradient(LAM),
        "adam + with_l1(proximal)": lambda: l1optax.with_l1(optax.adam(LR), LAM, learning_rate=LR),
    }
    for name in ("prox_sgd", "prox_adam", "prox_adagrad", "prox_rmsprop", "cumulative_l1"):
        if hasattr(l1optax, name):
            candidates[name] = lambda name=name: getattr(l1optax, name)(LR, LAM)
    if hasattr(l1optax, "ftrl"):
        candidates["ftrl"] = lambda: l1optax.ftrl(LR, l1reg=LAM)
    rows = []
    for name, make in candidates.items():
        try:
            shapes = jax.eval_shape(make().init, params)
            nbytes = sum(
                int(np.prod(x.shape)) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(shapes)
            )
            per_param = nbytes / n
            arrays = [f"{jnp.dtype(x.dtype).name}{list(x.shape)}" for x in jax.tree.leaves(shapes)]
            rows.append(
                {
                    "transform": name,
                    "state B/param": round(per_param, 3),
                    "state arrays": " ".join(a.replace(f"[{n}]", "[N]") for a in arrays) or "none",
                }
            )
        except Exception as err:  # noqa: BLE001 - report, do not hide
            rows.append({"transform": name, "state B/param": None, "state arrays": f"error: {err}"})
    return rows


# --------------------------------------------------------------------------------------------
# correctness on the device
# --------------------------------------------------------------------------------------------


def run_checks(size: int, leaves: int, dtype: Any, seed: int) -> list[dict[str, Any]]:
    """On the current default device: prox steps vs float64 NumPy, fast path vs plain path."""
    params, grads = make_tree(size, leaves, jnp.float32, seed)
    grads = jax.tree.map(lambda g: 1e3 * g, grads)  # unit scale: some coordinates survive
    p64 = {k: np.asarray(x, np.float64) for k, x in params.items()}
    g64 = {k: np.asarray(x, np.float64) for k, x in grads.items()}
    lr, lam = 0.1, 0.5  # large enough that a good fraction is zeroed
    checks = []

    def add(name, err, tol, zeros_match=True, extra=""):
        ok = bool(err <= tol and zeros_match)
        checks.append(
            {
                "check": name,
                "max_err": float(err),
                "tol": tol,
                "zeros_match": zeros_match,
                "ok": ok,
                "note": extra,
            }
        )

    # 1. soft threshold / ISTA step vs NumPy
    tx = l1optax.with_l1(optax.sgd(lr), lam, learning_rate=lr)
    u, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    new = optax.apply_updates(params, u)
    err, zeros = 0.0, True
    n_zero = 0
    for k in params:
        z = p64[k] - lr * g64[k]
        ref = np.sign(z) * np.maximum(np.abs(z) - lr * lam, 0)
        got = np.asarray(new[k], np.float64)
        err = max(err, float(np.max(np.abs(got - ref) / np.maximum(1, np.abs(ref)), initial=0)))
        zeros &= bool(np.array_equal(got == 0, ref == 0))
        n_zero += int((got == 0).sum())
    total = sum(x.size for x in params.values())
    add(
        "sgd + l1_prox vs NumPy f64 (rel err)",
        err,
        4 * 2.0**-23,
        zeros and 0 < n_zero < total,
        f"{n_zero} exact zeros of {total}",
    )

    # 2. prox_adam first step vs NumPy (m_hat = g, v_hat = g^2, d = |g| + eps)
    if hasattr(l1optax, "prox_adam"):
        tx = l1optax.prox_adam(lr, lam)
        u, _ = jax.jit(tx.update)(grads, tx.init(params), params)
        new = optax.apply_updates(params, u)
        err, zeros, n_zero = 0.0, True, 0
        for k in params:
            d = np.abs(g64[k]) + 1e-8
            z = p64[k] - lr * g64[k] / d
            ref = np.sign(z) * np.maximum(np.abs(z) - lr * lam / d, 0)
            got = np.asarray(new[k], np.float64)
            err = max(err, float(np.max(np.abs(got - ref) / np.maximum(1, np.abs(ref)), initial=0)))
            zeros &= bool(np.array_equal(got == 0, ref == 0))
            n_zero += int((got == 0).sum())
        total = sum(x.size for x in params.values())
        add(
            "prox_adam step 1 vs NumPy f64 (rel err)",
            err,
            1e-5,
            zeros and 0 < n_zero < total,
            f"{n_zero} exact zeros of {total}",
        )

    # 3. fast path vs plain path, 3 Adam + prox steps from the same grads
    layout = l1optax.flat_layout(params)
    for name, make in (
        ("adam + l1_prox", lambda: l1optax.with_l1(optax.adam(lr), lam, learning_rate=lr)),
        ("prox_adam", lambda: l1optax.prox_adam(lr, lam)),
    ):
        if name == "prox_adam" and not hasattr(l1optax, "prox_adam"):
            continue
        tx = make()
        step = jax.jit(lambda p, s, g, tx=tx: _step_fn(Variant("", "", "tx"), tx)(p, s, g))
        p_tree, s_tree = params, tx.init(params)
        p_flat, s_flat = layout.ravel(params), tx.init(layout.ravel(params))
        g_flat = layout.ravel(grads)
        for _ in range(3):
            p_tree, s_tree = step(p_tree, s_tree, grads)
            p_flat, s_flat = step(p_flat, s_flat, g_flat)
        a = np.concatenate([np.asarray(x, np.float64) for x in jax.tree.leaves(p_tree)])
        b = np.asarray(p_flat["float32"], np.float64)
        add(
            f"fast path vs plain: {name}, 3 steps (abs err)",
            float(np.max(np.abs(a - b))),
            1e-6,
            bool(np.array_equal(a == 0, b == 0)),
        )
    return checks


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """``8M`` / ``512M`` / ``64K`` / ``1G`` / ``1e6`` -> int."""
    t = text.strip().upper()
    mult = {"K": 2**10, "M": 2**20, "G": 2**30}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Byte model, variants and modes: see the module docstring.",
    )
    p.add_argument(
        "--size",
        type=parse_size,
        default=parse_size("8M"),
        help="total number of parameters, e.g. 8M, 512M, 64K (default 8M = 2**23)",
    )
    p.add_argument("--leaves", type=int, default=8, help="number of parameter arrays (default 8)")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument(
        "--mode",
        choices=["per-call", "loop", "both"],
        default="both",
        help="time each jitted call, K steps in one jitted fori_loop, or both",
    )
    p.add_argument("--loop-steps", type=int, default=10, help="K for --mode loop (default 10)")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per variant (>= 20)")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="variants take turns in R rounds of repeats/R calls (all kept in memory; use 4-5 "
        "on a shared CPU, 1 for large sizes on a GPU; default 1)",
    )
    p.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    p.add_argument(
        "--only",
        default=None,
        help="comma-separated substrings: run only variants whose name contains one",
    )
    p.add_argument(
        "--family",
        choices=["all", "sgd", "adam"],
        default="all",
        help="only the sgd-type or adam-type variants (default all)",
    )
    p.add_argument(
        "--no-base",
        action="store_true",
        help="with --only: do not add the base optimizers (ratios then need another run)",
    )
    p.add_argument(
        "--grads",
        choices=["input", "loss"],
        default="input",
        help="input: gradients are passed in (the optimizer step alone); loss: computed inside "
        "the step from a stand-in loss (counts producing a flat gradient; PyTorch peers always "
        "use stored gradients)",
    )
    p.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="with --rounds 1: stop starting new variants after this many seconds (those left "
        "are listed as skipped), so a slow many-leaf compile cannot eat a fixed time slot",
    )
    p.add_argument("--no-flat", action="store_true", help="skip the fast-path (flat) variants")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch peers")
    p.add_argument(
        "--check",
        action="store_true",
        help="first check correctness on the device (exit 1 on failure)",
    )
    p.add_argument("--check-only", action="store_true", help="only run the checks")
    p.add_argument("--json", metavar="PATH", default=None, help="also write all results as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke mode: 64K params, 3 repeats, 1 warm-up, 2 loop steps",
    )
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.size, args.repeats, args.warmup, args.loop_steps = 2**16, 3, 1, 2
    elif args.repeats < 20:
        print(f"note: --repeats {args.repeats} < 20: not a reportable median", file=sys.stderr)
    dtype = jnp.dtype(args.dtype)
    env = _timing.environment()
    config = {
        "size": args.size,
        "leaves": args.leaves,
        "params_per_leaf": max(1, args.size // args.leaves),
        "dtype": args.dtype,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "loop_steps": args.loop_steps,
        "rounds": args.rounds,
        "grads": args.grads,
        "lr": LR,
        "l1reg": LAM,
    }
    print(
        f"# step_overhead: {env['device']} ({env['platform']}), jax {env['jax']}, "
        f"optax {env['optax']}, {env['date_utc']}, load {env.get('load_avg_1m')}"
    )
    print(
        f"# N = {args.size:,} {args.dtype} params in {args.leaves} leaves; median of "
        f"{args.repeats} after {args.warmup} warm-up; loop = {args.loop_steps} steps/call\n"
    )
    result: dict[str, Any] = {"env": env, "config": config}

    if args.check or args.check_only:
        checks = run_checks(min(args.size, 2**20), min(args.leaves, 64), dtype, args.seed)
        result["checks"] = checks
        print("## correctness on the device\n")
        print(
            _timing.markdown_table(checks, ["check", "max_err", "tol", "zeros_match", "ok", "note"])
        )
        print()
        if not all(c["ok"] for c in checks):
            if args.json:
                _timing.write_json(args.json, result)
            print("CHECK FAILED", file=sys.stderr)
            raise SystemExit(1)
        if args.check_only:
            if args.json:
                _timing.write_json(args.json, result)
            return result

    variants = jax_variants(flat=not args.no_flat)
    if args.family != "all":
        variants = [v for v in variants if v.family in (args.family, "penalty")]
    if args.only:
        keys = [k.strip() for k in args.only.split(",") if k.strip()]
        variants = [
            v for v in variants if (v.base and not args.no_base) or any(k in v.name for k in keys)
        ]
    params, grads = make_tree(args.size, args.leaves, dtype, args.seed)
    modes = ["per-call", "loop"] if args.mode == "both" else [args.mode]
    rows: list[dict[str, Any]] = []
    for mode in modes:
        rows += run_jax_variants(
            variants,
            params,
            grads,
            mode=mode,
            repeats=args.repeats,
            warmup=args.warmup,
            loop_steps=args.loop_steps,
            rounds=args.rounds,
            grads_mode=args.grads,
            budget_s=args.budget_s,
        )
    if not args.no_torch:
        rows += torch_rows(
            args.size, args.leaves, args.dtype, repeats=args.repeats, warmup=args.warmup
        )

    # ratios to the base optimizer of the same family, same mode, same process
    base = {
        (r["family"], r["mode"]): r["ms"]
        for r in rows
        if r["variant"] in ("optax.sgd", "optax.adam")
    }
    for r in rows:
        fam = "adam" if r["family"] == "penalty" else r["family"]
        b = base.get((fam, r["mode"])) or base.get((fam, "per-call"))
        r["vs base"] = r["ms"] / b if b and r["ms"] is not None else None
        r["base"] = f"optax.{fam}"
    result["rows"] = rows

    for mode in modes:
        mode_rows = [r for r in rows if r["mode"] == mode]
        title = {
            "per-call": "per call (dispatch included)",
            "loop": f"inside one jitted fori_loop of {args.loop_steps} steps (per step)",
        }[mode]
        print(f"## {title}\n")
        mib = lambda b: None if b is None else b / 2**20  # noqa: E731
        table = [
            dict(r, **{"peak MiB": mib(r.get("peak_bytes")), "temp MiB": mib(r.get("temp_bytes"))})
            for r in mode_rows
        ]
        print(
            _timing.markdown_table(
                table,
                [
                    "variant",
                    "ms",
                    "best ms",
                    "GB/s",
                    "vs base",
                    "arrays_in",
                    "state_B/param",
                    "peak MiB",
                    "temp MiB",
                    "compile s",
                ],
            )
        )
        print()
    result["state_bytes"] = state_bytes_table(dtype)
    print(f"## optimizer state per parameter ({args.dtype} params)\n")
    print(
        _timing.markdown_table(
            result["state_bytes"], ["transform", "state B/param", "state arrays"]
        )
    )
    print()
    print(
        "vs base = median time / the same mode's optax.sgd or optax.adam (penalty rows: adam); "
        "GB/s counts 3 (sgd), 7 (adam) or 2 (penalty) passes x itemsize x N (at the median); "
        "best ms = the fastest call (less sensitive to load from other processes)."
    )
    if args.json:
        _timing.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
