"""Small timing helpers shared by the benchmark scripts.

Everything a benchmark needs to report a number the same way everywhere:

* :func:`time_carry` — warm up, then time ``carry = step(carry)`` calls one by one, waiting for
  the device (``jax.block_until_ready`` or a custom ``sync``) after each; returns the median.
  Feeding each call's output into the next one is what makes donated buffers work.
* :func:`gbps` — bandwidth against a byte model the caller states.
* :func:`markdown_table` / :func:`write_json` — the two output formats.
* :func:`environment` — machine, device and library versions, recorded with every table.

Timings are wall-clock (``time.perf_counter``) medians, so they include the Python dispatch of a
jitted call; a benchmark that wants device time alone runs K steps inside one jitted loop and
divides by K.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax


@dataclass
class Timing:
    """The result of :func:`time_carry`.

    Attributes:
      median_s: median seconds per timed call.
      times_s: every timed call, in seconds.
      carry: the last carry (the donated buffers' successors), for further use.
    """

    median_s: float
    times_s: list[float] = field(default_factory=list)
    carry: Any = None

    @property
    def median_ms(self) -> float:
        return 1e3 * self.median_s

    @property
    def spread(self) -> float:
        """Interquartile range over the median (a noise indicator)."""
        if len(self.times_s) < 4:
            return 0.0
        q = statistics.quantiles(self.times_s, n=4)
        return (q[2] - q[0]) / self.median_s if self.median_s else 0.0


def time_carry(
    step: Callable[[Any], Any],
    carry: Any,
    *,
    repeats: int = 20,
    warmup: int = 3,
    sync: Callable[[Any], Any] | None = None,
) -> Timing:
    """Times ``carry = step(carry)``: ``warmup`` untimed calls, then the median of ``repeats``.

    Args:
      step: a function of one argument returning the next carry (e.g. a jitted step with donated
        arguments, wrapped as ``lambda c: step(*c)``).
      carry: the initial carry. It is consumed if ``step`` donates it.
      repeats: number of timed calls (the brief asks for >= 20).
      warmup: untimed calls first (compilation, allocator warm-up).
      sync: waits for the device; default ``jax.block_until_ready``.

    Returns:
      A :class:`Timing`.
    """
    if repeats < 1:
        raise ValueError(f"`time_carry(repeats=...)` must be >= 1, got {repeats}")
    sync = jax.block_until_ready if sync is None else sync
    for _ in range(warmup):
        carry = step(carry)
        sync(carry)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        carry = step(carry)
        sync(carry)
        times.append(time.perf_counter() - t0)
    return Timing(median_s=statistics.median(times), times_s=times, carry=carry)


def gbps(nbytes: float, seconds: float) -> float:
    """Gigabytes (1e9 bytes) per second; NaN when ``seconds`` is not positive."""
    return nbytes / seconds / 1e9 if seconds > 0 else float("nan")


def fmt(value: Any, digits: int = 3) -> str:
    """Formats a table cell: floats to ``digits`` significant figures, None as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != value:  # NaN
            return "—"
        return f"{value:.{digits}g}" if abs(value) < 10**digits else f"{value:.0f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub markdown table with the given columns (missing cells shown as an em dash)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Writes ``payload`` as indented JSON (NaN written as null)."""

    def clean(x):
        if isinstance(x, float) and x != x:
            return None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x

    with open(path, "w", encoding="utf-8") as f:
        json.dump(clean(payload), f, indent=2)
        f.write("\n")


def environment() -> dict[str, Any]:
    """Machine, device and versions, to record next to every table."""
    import optax

    device = jax.devices()[0]
    env = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": device.platform,
        "device": getattr(device, "device_kind", str(device)),
        "device_count": jax.device_count(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "optax": optax.__version__,
    }
    try:  # the 1-minute load average tells a reader whether the machine was quiet
        env["load_avg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return env
