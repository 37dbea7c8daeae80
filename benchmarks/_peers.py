"""Optional peers for ``step_overhead.py``: the same L1 steps written in PyTorch.

Each function returns rows shaped like ``step_overhead``'s (``variant``, ``base``, ``mode``,
``ms``, ``best ms``), with ``base`` naming the optax row the ratio is taken against, or ``[]``
when the peer library is not importable. PyTorch rows are per call only (there is no jitted loop
to compare with); gradients are stored, as with ``step_overhead``'s default.
"""

from __future__ import annotations

from typing import Any

import _timing


def torch_rows(
    size: int, leaves: int, dtype: str, lr: float, lam: float, repeats: int, warmup: int
) -> list[dict[str, Any]]:
    """PyTorch ``Adam`` (fused where available) alone, then ``softshrink`` per tensor (the
    PyTorch way to take the prox), and the penalty in the loss (autograd of
    ``lam * sum(|p|)`` added to the stored gradients); ``SGD`` alone and + ``softshrink``."""
    try:
        import torch
    except ImportError:
        return []
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    tdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    n = max(1, size // leaves)
    sync = (lambda _: torch.cuda.synchronize()) if dev == "cuda" else (lambda _: None)
    gen = torch.Generator(device=dev).manual_seed(0)  # generated on the device (fast at 512M)
    ps = [
        torch.randn(n, generator=gen, device=dev).to(tdtype).requires_grad_(True)
        for _ in range(leaves)
    ]
    for p in ps:
        p.grad = (1e-3 * torch.randn(n, generator=gen, device=dev)).to(tdtype)
    fixed = [p.grad.clone() for p in ps]
    rows: list[dict[str, Any]] = []

    def record(name: str, base: str, fn) -> None:
        timing = _timing.time_carry(fn, None, repeats=repeats, warmup=warmup, sync=sync)
        rows.append(
            {
                "variant": name,
                "base": base,
                "mode": "per-call",
                "ms": timing.median_ms,
                "best ms": 1e3 * min(timing.times_s),
            }
        )

    def shrink(_=None) -> None:
        with torch.no_grad():
            for p in ps:
                p.copy_(torch.nn.functional.softshrink(p, lr * lam))

    try:
        adam, how = torch.optim.Adam(ps, lr=lr, fused=True), "fused"
    except (RuntimeError, TypeError, ValueError):
        adam, how = torch.optim.Adam(ps, lr=lr, foreach=True), "foreach"
    record(f"torch Adam({how})", "optax.adam", lambda _: adam.step())
    record(f"torch Adam({how}) + softshrink", "optax.adam", lambda _: (adam.step(), shrink()))

    def adam_penalty_in_loss(_):
        penalty = lam * sum(p.abs().sum() for p in ps)
        for p, g, pg in zip(ps, fixed, torch.autograd.grad(penalty, ps), strict=True):
            p.grad = g + pg
        adam.step()

    record(f"torch Adam({how}) + penalty in loss", "optax.adam", adam_penalty_in_loss)
    for p, g in zip(ps, fixed, strict=True):
        p.grad = g
    sgd = torch.optim.SGD(ps, lr=lr, foreach=True)
    record("torch SGD", "optax.sgd", lambda _: sgd.step())
    record("torch SGD + softshrink", "optax.sgd", lambda _: (sgd.step(), shrink()))
    return rows
