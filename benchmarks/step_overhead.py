"""What does L1 cost per optimizer step? Each l1optax optimizer against its optax base.

Pairs, each timed in the same process (a name that l1optax does not export is skipped):
``prox_sgd`` / ``optax.sgd``, ``prox_adam`` / ``adam``, ``prox_adamw`` / ``adamw(weight_decay=0)``,
``prox_nadam`` / ``nadam``, ``prox_amsgrad`` / ``amsgrad``, ``prox_adabelief`` / ``adabelief``,
``prox_rmsprop`` / ``rmsprop``, ``prox_adagrad`` / ``adagrad``. For SGD and Adam also
``chain(base, apply_l1_prox)``, ``with_l1(base)`` (proximal and subgradient), the penalty in the loss,
and the many-leaf fast path (``flat:`` rows, :func:`l1optax.flat_layout`). PyTorch peers
(``benchmarks/_peers.py``) run when ``torch`` is importable. A variant whose construction raises
is reported as skipped with the error, not dropped silently.

Modes: ``per-call`` times each jitted call (argument dispatch included); ``loop`` runs
``--loop-steps`` steps inside one jitted ``lax.fori_loop`` and divides (the device's own time).
Params and optimizer state are donated. GB/s counts the passes over N parameters the step must
make at least (SGD 3: read p, g, write p; RMSProp/Adagrad 5; Adam-type 7; AMSGrad 9).

The last table gives, for every variant, the ratio of its median time to its base's (same mode,
same process) and its optimizer-state bytes per parameter next to the base's.

``--quick`` is the smoke mode the tests run; ``--check`` first verifies on the device that the
proximal steps equal float64 NumPy references and that the fast path equals the plain path.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
# (l1optax optimizer, optax base, base kwargs, passes over N for the byte model)
PAIRS = [
    ("prox_sgd", "sgd", {}, 3),
    ("prox_adam", "adam", {}, 7),
    ("prox_adamw", "adamw", {"weight_decay": 0.0}, 7),
    ("prox_nadam", "nadam", {}, 7),
    ("prox_amsgrad", "amsgrad", {}, 9),
    ("prox_adabelief", "adabelief", {}, 7),
    ("prox_rmsprop", "rmsprop", {}, 5),
    ("prox_adagrad", "adagrad", {}, 5),
]


@dataclass
class Variant:
    """One row: how to build the transform, which base row it is compared with, its byte model."""

    name: str
    base: str  # the base row's name (a base row names itself)
    make: Callable[[], Any]
    passes: int
    kind: str = "tx"  # "tx" | "flat" (the fast path) | "penalty_in_loss"

    @property
    def is_base(self) -> bool:
        return self.name == self.base


def _base_name(base: str, kwargs: dict) -> str:
    return f"optax.{base}" + ("(weight_decay=0)" if kwargs else "")


def _with_l1_proximal(base: str) -> Any:
    """``with_l1(optax.<base>(LR), LAM, learning_rate=LR)``; where ``with_l1`` refuses to guess
    an adaptive optimizer's metric, the form it asks for: the optimizer built with
    ``optax.inject_hyperparams``, its learning rate stated once."""
    try:
        tx = l1optax.with_l1(getattr(optax, base)(LR), LAM, learning_rate=LR)
        probe = {"w": jnp.ones(2)}  # the refusal may come at init or update time
        tx.update(probe, tx.init(probe), probe)
        return tx
    except ValueError:
        return l1optax.with_l1(
            optax.inject_hyperparams(getattr(optax, base))(learning_rate=LR), LAM
        )


def variants() -> list[Variant]:
    """Every pair whose l1optax name exists, plus the chain / with_l1 / penalty / flat forms."""
    out: list[Variant] = []
    for prox_name, base, kwargs, passes in PAIRS:
        families = ("sgd", "adam")
        if base not in families and not hasattr(l1optax, prox_name):
            continue
        bname = _base_name(base, kwargs)

        def make_base(base=base, kwargs=kwargs):
            return getattr(optax, base)(LR, **kwargs)

        out.append(Variant(bname, bname, make_base, passes))
        if hasattr(l1optax, prox_name):
            extra = {"weight_decay": 0.0} if "weight_decay" in kwargs else {}
            out.append(
                Variant(
                    prox_name,
                    bname,
                    lambda n=prox_name, extra=extra: getattr(l1optax, n)(LR, LAM, **extra),
                    passes,
                )
            )
        if base not in families:
            continue
        out += [
            Variant(
                f"chain({base}, apply_l1_prox)",
                bname,
                lambda mb=make_base: optax.chain(mb(), l1optax.apply_l1_prox(LR, LAM)),
                passes,
            ),
            Variant(
                f"{base} + with_l1(proximal)",
                bname,
                lambda base=base: _with_l1_proximal(base),
                passes,
            ),
            Variant(
                f"{base} + with_l1(subgradient)",
                bname,
                lambda mb=make_base: l1optax.with_l1(mb(), LAM, method="subgradient"),
                passes,
            ),
            Variant(f"{base} + penalty in loss", bname, make_base, passes, "penalty_in_loss"),
            Variant(f"flat: {bname}", bname, make_base, passes, "flat"),
            Variant(
                f"flat: chain({base}, apply_l1_prox)",
                bname,
                lambda mb=make_base: optax.chain(mb(), l1optax.apply_l1_prox(LR, LAM)),
                passes,
                "flat",
            ),
        ]
        if hasattr(l1optax, prox_name):
            out.append(
                Variant(
                    f"flat: {prox_name}",
                    bname,
                    lambda n=prox_name: getattr(l1optax, n)(LR, LAM),
                    passes,
                    "flat",
                )
            )
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


def step_fn(variant: Variant, tx: Any) -> Callable:
    """``(params, state, grads) -> (params, state)``; the penalty-in-loss variant differentiates
    ``<grads, p> + l1_penalty(p)`` (gradient ``grads + lam * sign(p)``) first."""

    def step(p, s, g):
        if variant.kind == "penalty_in_loss":

            def loss(q):
                inner = sum(
                    jnp.vdot(a, b)
                    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(q), strict=True)
                )
                return inner + l1optax.l1_penalty(q, LAM)

            g = jax.grad(loss)(p)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    return step


def loop_fn(step: Callable, k: int) -> Callable:
    """K steps in one ``fori_loop``; the gradient is scaled per step so XLA cannot hoist
    gradient-only terms (Adam's (1-b1)g, (1-b2)g^2) out of the loop."""

    def run(p, s, g):
        def body(i, carry):
            scale = 1 + 1e-6 * i.astype(jnp.float32)
            return step(*carry, jax.tree.map(lambda x: (x * scale).astype(x.dtype), g))

        return jax.lax.fori_loop(0, k, body, (p, s))

    return run


def _nbytes(tree: Any) -> int:
    return sum(int(np.prod(x.shape)) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def _memory(compiled: Any) -> dict[str, float | None]:
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it
        m = None
    if m is None:
        return {"peak_bytes": None, "temp_bytes": None}
    peak = m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
    return {
        "peak_bytes": float(peak + m.temp_size_in_bytes),
        "temp_bytes": float(m.temp_size_in_bytes),
        "argument_bytes": float(m.argument_size_in_bytes),
        "alias_bytes": float(m.alias_size_in_bytes),
    }


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
    times_s: list[float] = field(default_factory=list)


def prepare(variant: Variant, params: dict, grads: dict, *, mode: str, loop_steps: int) -> Prepared:
    """Builds the transform and compiles its step (AOT, params and state donated)."""
    tx = variant.make()
    if variant.kind == "flat":
        layout = l1optax.flat_layout(params)
        params, grads = layout.ravel(params), layout.ravel(grads)
    else:
        params = jax.tree.map(jnp.copy, params)  # the step donates them
    state = tx.init(params)
    fn = step_fn(variant, tx)
    k = 1 if mode == "per-call" else loop_steps
    fn = fn if mode == "per-call" else loop_fn(fn, k)
    t0 = time.perf_counter()
    compiled = jax.jit(fn, donate_argnums=(0, 1)).lower(params, state, grads).compile()
    leaves = jax.tree.leaves(params)
    n = sum(x.size for x in leaves)
    meta = {
        "compile s": time.perf_counter() - t0,
        "n": n,
        "itemsize": leaves[0].dtype.itemsize,
        "arrays_in": len(jax.tree.leaves((params, state, grads))),
        "state_B/param": _nbytes(state) / n,
        **_memory(compiled),
    }
    return Prepared(variant, mode, compiled, (params, state), grads, k, meta)


def time_prepared(prep: Prepared, *, repeats: int, warmup: int) -> None:
    compiled, grads = prep.compiled, prep.grads
    timing = _timing.time_carry(
        lambda c: compiled(c[0], c[1], grads), prep.carry, repeats=repeats, warmup=warmup
    )
    prep.carry = timing.carry
    prep.times_s += timing.times_s


def result_row(prep: Prepared) -> dict[str, Any]:
    median = _timing.statistics.median(prep.times_s) / prep.steps_per_call
    m = prep.meta
    row = {
        "variant": prep.variant.name,
        "base": prep.variant.base,
        "mode": prep.mode,
        "ms": 1e3 * median,
        "best ms": 1e3 * min(prep.times_s) / prep.steps_per_call,
        "GB/s": _timing.gbps(prep.variant.passes * m["itemsize"] * m["n"], median),
        "samples": len(prep.times_s),
    }
    row.update({k: v for k, v in m.items() if k not in ("n", "itemsize")})
    return row


def skipped_row(variant: Variant, mode: str, why: str) -> dict[str, Any]:
    print(f"  {mode:8s} {variant.name:36s} skipped: {why}", file=sys.stderr)
    return {"variant": variant.name, "base": variant.base, "mode": mode, "ms": None, "skipped": why}


def run_variants(
    variants: list[Variant],
    params: dict,
    grads: dict,
    *,
    mode: str,
    repeats: int,
    warmup: int,
    loop_steps: int,
    rounds: int = 1,
    budget_s: float | None = None,
) -> list[dict[str, Any]]:
    """Times every variant. ``rounds = 1``: one at a time, freed after (least memory; with
    ``budget_s`` no new variant starts once it is spent). ``rounds = R``: all kept alive and
    timed in turn R times, so a burst of load from elsewhere hits every variant alike. The first
    variant always runs, whatever the budget."""
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    preps: list[Prepared] = []
    for v in variants:
        if budget_s is not None and (rows or preps) and time.perf_counter() - start > budget_s:
            rows.append(skipped_row(v, mode, "--budget-s spent"))
            continue
        try:
            prep = prepare(v, params, grads, mode=mode, loop_steps=loop_steps)
        except Exception as err:  # noqa: BLE001 - report, do not hide
            rows.append(skipped_row(v, mode, f"{type(err).__name__}: {err}".splitlines()[0]))
            continue
        if rounds <= 1:
            time_prepared(prep, repeats=repeats, warmup=warmup)
            rows.append(result_row(prep))
            _progress(rows[-1])
        else:
            preps.append(prep)
    per_round = -(-repeats // max(rounds, 1))
    for r in range(rounds if preps else 0):
        for prep in preps:
            time_prepared(prep, repeats=per_round, warmup=warmup if r == 0 else 1)
    for prep in preps:
        rows.append(result_row(prep))
        _progress(rows[-1])
    return rows


def _progress(row: dict[str, Any]) -> None:
    print(f"  {row['mode']:8s} {row['variant']:36s} {row['ms']:9.3f} ms", file=sys.stderr)


def add_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``vs base`` on every row; returns the summary: time ratio per mode and state bytes."""
    ms = {(r["variant"], r["mode"]): r["ms"] for r in rows}
    state = {
        r["variant"]: r.get("state_B/param") for r in rows if r.get("state_B/param") is not None
    }
    for r in rows:
        b = ms.get((r["base"], r["mode"])) or ms.get((r["base"], "per-call"))
        r["vs base"] = r["ms"] / b if b and r["ms"] is not None else None
    summary = []
    for name in dict.fromkeys(r["variant"] for r in rows if r["variant"] != r["base"]):
        mine = [r for r in rows if r["variant"] == name]
        entry = {"variant": name, "base": mine[0]["base"]}
        for r in mine:
            entry[f"{r['mode']} vs base"] = r["vs base"]
            if r.get("skipped"):
                entry["note"] = r["skipped"]
        entry["state B/param"] = state.get(name)
        entry["base state B/param"] = state.get(mine[0]["base"])
        summary.append(entry)
    return summary


def run_checks(size: int, leaves: int, seed: int) -> list[dict[str, Any]]:
    """On the default device: proximal steps vs float64 NumPy, the fast path vs the plain path."""
    params, grads = make_tree(size, leaves, jnp.float32, seed)
    grads = jax.tree.map(lambda g: 1e3 * g, grads)  # unit scale: some coordinates survive
    p64 = {k: np.asarray(x, np.float64) for k, x in params.items()}
    g64 = {k: np.asarray(x, np.float64) for k, x in grads.items()}
    lr, lam = 0.1, 0.5
    checks = []

    def against_numpy(name, tx, references, tol):
        """``references``: {label: (p, g) -> new p}; the closest one must match (zeros exactly)."""
        new = optax.apply_updates(params, jax.jit(tx.update)(grads, tx.init(params), params)[0])
        best = None
        for label, reference in references.items():
            err, zeros, n_zero, total = 0.0, True, 0, 0
            for k in params:
                ref, got = reference(p64[k], g64[k]), np.asarray(new[k], np.float64)
                err = max(err, float(np.max(np.abs(got - ref) / np.maximum(1, np.abs(ref)))))
                zeros &= bool(np.array_equal(got == 0, ref == 0))
                n_zero, total = n_zero + int((got == 0).sum()), total + got.size
            if best is None or (zeros, -err) > (best[1], -best[0]):
                best = (err, zeros, f"{n_zero} exact zeros of {total}; reference: {label}")
        err, zeros, note = best
        add(name, err, tol, zeros and 0 < int(note.split()[0]) < total, note)

    def add(name, err, tol, zeros_match, note=""):
        ok = bool(err <= tol and zeros_match)
        checks.append(
            {
                "check": name,
                "max_err": err,
                "tol": tol,
                "zeros_match": zeros_match,
                "ok": ok,
                "note": note,
            }
        )

    def soft(z, t):
        return np.sign(z) * np.maximum(np.abs(z) - t, 0)

    against_numpy(
        "chain(sgd, apply_l1_prox) vs NumPy f64 (rel err)",
        optax.chain(optax.sgd(lr), l1optax.apply_l1_prox(lr, lam)),
        {"exact": lambda p, g: soft(p - lr * g, lr * lam)},
        4 * 2.0**-23,
    )

    def adam_step(rounded: bool):
        """Adam's first step, m_hat = g, sqrt(v_hat) = |g|, then the prox in the metric d; with
        ``rounded`` the bias corrections 1 - b**t are float32 numbers, as optax computes them."""
        c1, c2 = (1 - float(np.float32(b)) if rounded else 1 - b for b in (0.9, 0.999))

        def step(p, g):
            m, d = 0.1 * g / c1, np.sqrt(0.001 * g * g / c2) + 1e-8
            return soft(p - lr * m / d, lr * lam / d)

        return step

    against_numpy(
        "prox_adam step 1 vs NumPy f64 (rel err)",
        l1optax.prox_adam(lr, lam),
        {"exact": adam_step(False), "optax's float32 bias correction": adam_step(True)},
        1e-5,
    )
    layout = l1optax.flat_layout(params)
    for name, tx in (
        ("chain(adam, apply_l1_prox)", optax.chain(optax.adam(lr), l1optax.apply_l1_prox(lr, lam))),
        ("prox_adam", l1optax.prox_adam(lr, lam)),
    ):
        step = jax.jit(step_fn(Variant(name, name, lambda tx=tx: tx, 7), tx))
        tree, flat = (
            (params, tx.init(params)),
            (layout.ravel(params), tx.init(layout.ravel(params))),
        )
        for _ in range(3):
            tree, flat = step(*tree, grads), step(*flat, layout.ravel(grads))
        a = np.concatenate([np.asarray(x, np.float64) for x in jax.tree.leaves(tree[0])])
        b = np.asarray(flat[0]["float32"], np.float64)
        add(f"fast path vs plain: {name}, 3 steps (abs err)", float(np.max(np.abs(a - b))), 1e-6,
            bool(np.array_equal(a == 0, b == 0)))  # fmt: skip
    return checks


def parse_size(text: str) -> int:
    """``8M`` / ``512M`` / ``64K`` / ``1G`` / ``1e6`` -> int."""
    t = text.strip().upper()
    mult = {"K": 2**10, "M": 2**20, "G": 2**30}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = p.add_argument
    add("--size", type=parse_size, default=parse_size("8M"), help="total parameters (8M, 64K, 1e6)")
    add("--leaves", type=int, default=8, help="number of parameter arrays (default 8)")
    add("--dtype", choices=["float32", "bfloat16"], default="float32")
    add("--mode", choices=["per-call", "loop", "both"], default="both")
    add("--loop-steps", type=int, default=10, help="steps per jitted fori_loop (default 10)")
    add("--repeats", type=int, default=20, help="timed calls per variant (>= 20 to report)")
    add("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    add(
        "--rounds",
        type=int,
        default=1,
        help="variants take turns in R rounds (4-5 on a shared CPU)",
    )
    add("--budget-s", type=float, default=None, help="start no new variant after this many seconds")
    add("--family", default="all", help="comma-separated optax bases to keep, e.g. adam,rmsprop")
    add("--only", default=None, help="comma-separated substrings of variant names to keep")
    add("--no-base", action="store_true", help="with --only: do not add the base rows")
    add("--no-flat", action="store_true", help="skip the fast-path (flat:) variants")
    add("--no-torch", action="store_true", help="skip the PyTorch peers")
    add("--check", action="store_true", help="check correctness on the device first (exit 1)")
    add("--check-only", action="store_true", help="only run the checks")
    add("--json", metavar="PATH", default=None, help="also write all results as JSON")
    add("--seed", type=int, default=0)
    add("--quick", action="store_true", help="smoke mode: 64K params, 3 repeats, 2 loop steps")
    return p


def select(all_variants: list[Variant], args: argparse.Namespace) -> list[Variant]:
    chosen = [v for v in all_variants if not (args.no_flat and v.kind == "flat")]
    if args.family != "all":
        bases = {f.strip() for f in args.family.split(",")}
        chosen = [v for v in chosen if v.base.removeprefix("optax.").split("(")[0] in bases]
    if args.only:
        keys = [k.strip() for k in args.only.split(",") if k.strip()]
        picked = [v for v in chosen if any(k in v.name for k in keys)]
        needed = set() if args.no_base else {v.base for v in picked}
        chosen = [v for v in chosen if v in picked or (v.is_base and v.name in needed)]
    return chosen


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.size, args.repeats, args.warmup, args.loop_steps = 2**16, 3, 1, 2
    env = _timing.environment()
    config = {k: getattr(args, k) for k in ("size", "leaves", "dtype", "repeats", "warmup")}
    config |= {"loop_steps": args.loop_steps, "rounds": args.rounds, "lr": LR, "l1reg": LAM}
    print(
        f"# step_overhead: {env['device']} ({env['platform']}), jax {env['jax']}, optax "
        f"{env['optax']}, {env['date_utc']}, load {env.get('load_avg_1m')}\n# N = {args.size:,} "
        f"{args.dtype} params in {args.leaves} leaves; median of {args.repeats} after "
        f"{args.warmup} warm-up; loop = {args.loop_steps} steps/call\n"
    )
    result: dict[str, Any] = {"env": env, "config": config}

    if args.check or args.check_only:
        result["checks"] = run_checks(min(args.size, 2**20), min(args.leaves, 64), args.seed)
        print("## correctness on the device\n")
        cols = ["check", "max_err", "tol", "zeros_match", "ok", "note"]
        print(_timing.markdown_table(result["checks"], cols) + "\n")
        failed = not all(c["ok"] for c in result["checks"])
        if failed or args.check_only:
            if args.json:
                _timing.write_json(args.json, result)
            if failed:
                print("CHECK FAILED", file=sys.stderr)
                raise SystemExit(1)
            return result

    chosen = select(variants(), args)
    params, grads = make_tree(args.size, args.leaves, jnp.dtype(args.dtype), args.seed)
    modes = ["per-call", "loop"] if args.mode == "both" else [args.mode]
    rows: list[dict[str, Any]] = []
    for mode in modes:
        rows += run_variants(
            chosen,
            params,
            grads,
            mode=mode,
            repeats=args.repeats,
            warmup=args.warmup,
            loop_steps=args.loop_steps,
            rounds=args.rounds,
            budget_s=args.budget_s,
        )
    if not args.no_torch:
        import _peers

        rows += _peers.torch_rows(
            args.size, args.leaves, args.dtype, LR, LAM, args.repeats, args.warmup
        )
    result["rows"], result["ratios"] = rows, add_ratios(rows)

    columns = ["variant", "ms", "best ms", "GB/s", "vs base", "arrays_in", "state_B/param"]
    columns += ["peak MiB", "temp MiB", "compile s"]
    mib = lambda b: None if b is None else b / 2**20  # noqa: E731
    for mode in modes:
        title = "per call (dispatch included)" if mode == "per-call" else (
            f"inside one jitted fori_loop of {args.loop_steps} steps (per step)")  # fmt: skip
        table = [
            dict(r, **{"peak MiB": mib(r.get("peak_bytes")), "temp MiB": mib(r.get("temp_bytes"))})
            for r in rows
            if r["mode"] == mode
        ]
        print(f"## {title}\n\n{_timing.markdown_table(table, columns)}\n")
    ratio_cols = ["variant", "base", *(f"{m} vs base" for m in modes)]
    ratio_cols += ["state B/param", "base state B/param", "note"]
    print("## each variant against its optax base (same process)\n")
    print(_timing.markdown_table(result["ratios"], ratio_cols) + "\n")
    print(
        "vs base = median time / the base's median, same mode; GB/s = passes x itemsize x N / "
        "median; state B/param = optimizer-state bytes per parameter (int32 counts included)."
    )
    if args.json:
        _timing.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
