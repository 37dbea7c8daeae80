#!/usr/bin/env bash
# One script for a machine with an NVIDIA GPU and jax installed: correctness on the device, then
# every step_overhead table of issue 6. Installs nothing. About 5-6 minutes on one H100
# (hard limit per step; at most about 9).
#
#   bash benchmarks/gpu.sh            # on a GPU: checks + the full tables (fails without a GPU)
#   bash benchmarks/gpu.sh --small    # any device (CPU too): the same steps at small sizes
#
# Environment: PYTHON (default: python3, or .venv/bin/python when present); OUT (a folder for the
# JSON files and the combined markdown log; default $TMPDIR/l1optax_gpu_out). PyTorch peers run when
# `import torch` works on that machine (CUDA build for GPU numbers); otherwise they are skipped.
# Each step has a time limit so that one slow compile cannot eat the whole budget.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SMALL=0
for arg in "$@"; do
  case "$arg" in
    --small) SMALL=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ] && .venv/bin/python -c "import jax" 2>/dev/null; then
    PYTHON=.venv/bin/python
  else
    PYTHON=python3
  fi
fi
OUT=${OUT:-${TMPDIR:-/tmp}/l1optax_gpu_out}
mkdir -p "$OUT"
LOG="$OUT/gpu_tables.md"
: > "$LOG"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
# JAX must not grab 75% of the GPU up front: the PyTorch peers run in the same process.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export TF_CPP_MIN_LOG_LEVEL=2

say() { echo "$@" | tee -a "$LOG"; }
bench() {  # bench LIMIT_SECONDS NAME ARGS...: one step_overhead run, its table into the log
  local limit=$1 name=$2; shift 2
  say ""
  say "### $name"
  say ""
  local t0=$SECONDS
  timeout "$limit" "$PYTHON" benchmarks/step_overhead.py --json "$OUT/$name.json" "$@" \
    2> "$OUT/$name.err" | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  say ""
  say "(step $name: exit $rc after $((SECONDS - t0)) s; command: step_overhead.py $*)"
  if [ "$rc" -ne 0 ]; then
    tail -5 "$OUT/$name.err" | tee -a "$LOG"
    FAILED="$FAILED $name"
  fi
  return 0
}
FAILED=""

say "# benchmarks/gpu.sh — $(date -u '+%Y-%m-%d %H:%M UTC')"
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$LOG"
fi
PLATFORM=$("$PYTHON" -c "import jax; print(jax.devices()[0].platform)" 2>/dev/null || echo none)
"$PYTHON" -c "import jax, optax; print('jax', jax.__version__, 'optax', optax.__version__, jax.devices())" | tee -a "$LOG"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>/dev/null \
  | tee -a "$LOG" || say "torch: not importable (PyTorch peers skipped)"
if [ "$PLATFORM" != "gpu" ] && [ "$SMALL" -eq 0 ]; then
  echo "no GPU visible to jax (platform: $PLATFORM); use --small to run at small sizes here" >&2
  exit 1
fi

# 1. correctness on the device: prox vs float64 NumPy, fast path vs plain path (exit 1 on failure)
say ""
say "## correctness on the device"
if ! timeout 90 "$PYTHON" benchmarks/step_overhead.py --check-only --size 4M --leaves 64 \
    --json "$OUT/check.json" | tee -a "$LOG"; then
  say "CORRECTNESS CHECK FAILED: no timings recorded"
  exit 1
fi

# 2. the tables. R = timed calls per variant (median). Each step has a hard limit (timeout) and
# the many-leaf steps a soft one (--budget-s: no new variant is started after it); worst case
# about 9 minutes on an H100, typically 5-6.
R=20
if [ "$SMALL" -eq 1 ]; then
  BIG=1M; MID=1M; MANY=256K; K=4
else
  BIG=512M; MID=128M; MANY=64M; K=1
fi
# the headline: N params in 8 leaves, per call and inside one jitted fori_loop (all variants)
bench $((130 * K)) "big_8leaves" --size $BIG --leaves 8 --mode both --repeats $R
# many leaves: adam family only (plain, prox, prox_adam, optax.flatten, the fast path, torch)
bench $((100 * K)) "mid_256leaves" --size $MID --leaves 256 --mode both --repeats $R --family adam \
  --only "with_l1(proximal),prox_adam,flatten,flat:" --budget-s $((70 * K))
# 1024 leaves: per call; in the loop only the fast path (the plain 1024-leaf fori_loop took over
# 150 s to compile on an H100 in ANCHORS.md)
bench $((100 * K)) "many_1024leaves" --size $MANY --leaves 1024 --mode per-call --repeats $R \
  --family adam --only "with_l1(proximal),flat:" --budget-s $((60 * K))
bench $((45 * K)) "many_1024leaves_loop_flat" --size $MANY --leaves 1024 --mode loop --repeats $R \
  --family adam --only "flat:" --no-base --no-torch
# bfloat16 at the headline size, adam family, per call
bench $((60 * K)) "big_8leaves_bf16" --size $BIG --leaves 8 --dtype bfloat16 --mode per-call \
  --repeats $R --family adam --no-torch

say ""
say "## copy bandwidth (for the 7-pass floor)"
timeout 30 "$PYTHON" - "$BIG" <<'EOF' | tee -a "$LOG"
import sys, time, statistics, jax, jax.numpy as jnp
sys.path.insert(0, "benchmarks")
from step_overhead import parse_size
n = parse_size(sys.argv[1])
x = jnp.ones((n,), jnp.float32)
f = jax.jit(lambda a: a * 1.0000001)
f(x).block_until_ready()
ts = []
for _ in range(20):
    t0 = time.perf_counter(); f(x).block_until_ready(); ts.append(time.perf_counter() - t0)
s = statistics.median(ts)
bw = 2 * 4 * n / s
print(f"copy (read+write) of {n:,} float32: {s*1e3:.3f} ms = {bw/1e9:.0f} GB/s; "
      f"Adam floor (7 passes x 4 B x N) = {7*4*n/bw*1e3:.3f} ms")
EOF

say ""
if [ -n "$FAILED" ]; then
  say "steps that failed or timed out:$FAILED (see $OUT/*.err)"
  say "done with failures; JSON and log in $OUT"
  exit 1
fi
say "done; JSON and log in $OUT"
