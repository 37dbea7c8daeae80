"""Sparse training: test accuracy against exact sparsity, L1 / nonconvex proxes vs magnitude pruning.

For each task and each target sparsity (fraction of exactly-zero kernel weights, biases not
counted) this trains, with Adam at the same learning rate, over the same batches and for the
same number of steps (every method gets the same training budget):

* ``adam``: dense Adam (the reference accuracy, sparsity 0);
* ``gmp global`` / ``gmp layer``: gradual magnitude pruning (Zhu & Gupta 2017: cubic schedule
  from 5% to 60% of training, mask recomputed every 1% of training, global or per-layer top-k,
  then trained on with the mask fixed), written here as the field's baseline;
* ``one-shot + ft``: dense Adam for 60% of the steps, global magnitude pruning to the target,
  then fine-tuning with ``l1optax.freeze_support(adam)`` for the other 40%;
* ``l1 (prox_adam)``: ``prox_adam`` wrapped in ``l1optax.target_sparsity`` (same cubic ramp,
  the target held to the end);
* ``l0`` / ``mcp`` / ``l_half``: the nonconvex proxes, strength adapted by ``target_sparsity``,
  in Adam's metric through ``prox_adam(..., prox=...)`` when that argument exists, otherwise
  (``metric`` column: ``uniform``) as ``chain(adam, apply_prox(prox, lr, ...))``;
* ``l1 + ft`` / ``l0 + ft`` / ``mcp + ft``: the same run up to the end of the ramp (60%), then
  the support it found fine-tuned with ``freeze_support(adam)`` for the last 40% (the recipe
  after learned soft thresholding, STR; GMP fixes its mask at the same step);
* ``group``: group lasso over hidden units / channels (structured), in Adam's metric, each
  hidden layer asked to lose the fraction of its units that gives the column's sparsity once
  the zeroed units are physically deleted (``group_unit_target``); its sparsity is the fraction
  of kernel weights removed by deleting them (their incoming and outgoing weights).

Tasks: ``mlp`` (digits 61-256-256-10), ``cnn`` (digits 8x8x1, 3x3 conv 8-16 + dense) and
``mnist1d`` (40-256-256-10 on MNIST-1D, generated procedurally by the ``mnist1d`` package when
it is installed; no download). Every configuration (seeds x targets) of a method is trained at
once with ``jax.vmap`` (GMP: ``lax.map``, so it sorts only at its pruning steps), in chunks of
steps through one compiled program per method. Also measured: inference time of a group-lasso
MLP, dense vs physically pruned (``l1optax.prune_units``) vs BCOO kernels (``l1optax.to_bcoo``).

Usage::

    python benchmarks/sparse_training.py --fast-compile   # full run (3 seeds, 3 tasks)
    python benchmarks/sparse_training.py --quick          # smoke mode (the test suite runs this)
    python benchmarks/sparse_training.py --json out.json --plot plot.png
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

import l1optax

TARGETS = (0.9, 0.95, 0.98, 0.99)
METHODS = (
    "adam",
    "gmp global",
    "gmp layer",
    "one-shot + ft",
    "l1 (prox_adam)",
    "l1 + ft",
    "l0",
    "l0 + ft",
    "mcp",
    "mcp + ft",
    "l_half",
    "group",
)
# "<method> + ft": the method's run up to the end of its sparsity ramp, then the found support
# fine-tuned with freeze_support(adam) for the remaining steps (STR's recipe; GMP fixes its mask
# at the same step)
FINETUNED = {"l1 + ft": "l1 (prox_adam)", "l0 + ft": "l0", "mcp + ft": "mcp"}
# --quick: one method of each kind (magnitude pruning, target_sparsity + frozen fine-tune,
# group lasso + pruning) on the MLP (CI's budget; `--quick --tasks cnn` runs the CNN too)
QUICK_METHODS = {"mlp": ("gmp global", "l1 (prox_adam)", "l1 + ft", "group")}
SEARCH_STEPS = 4  # bisection steps of target_sparsity per update (resolution ~9% in lambda)
# XLA's CPU backend spends most of a short run compiling; --quick (and --fast-compile) turn its
# LLVM optimisation off (compiles ~3x faster; the elementwise kernels run slower)
COMPILER_OPTIONS: dict = {}
COMPILER_OPTIONS_KEY = [""]


def _ramp(total_steps: int) -> tuple[int, int]:
    """Begin and end of every sparsity ramp: 5% and 60% of the steps (Zhu & Gupta's shape)."""
    return int(0.05 * total_steps), int(0.6 * total_steps)


HAS_PROX_ARG = "prox" in inspect.signature(l1optax.prox_adam).parameters

# --------------------------------------------------------------------------------------------
# tasks
# --------------------------------------------------------------------------------------------


@dataclass
class Task:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    init: Callable[[jax.Array], dict]
    apply: Callable[[dict, jax.Array], jax.Array]
    hidden: tuple[str, ...]  # layers whose output units group lasso may remove
    lr: float
    epochs: int
    batch: int


def _standardise(x_tr, x_te):
    mean, std = x_tr.mean(0), x_tr.std(0) + 1e-3
    return ((x_tr - mean) / std).astype(np.float32), ((x_te - mean) / std).astype(np.float32)


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return x_tr, y_tr.astype(np.int32), x_te, y_te.astype(np.int32)


def _dense_init(key, fan_in, fan_out):
    w = jax.random.truncated_normal(key, -2.0, 2.0, (fan_in, fan_out)) / np.sqrt(fan_in)
    return {"kernel": w.astype(jnp.float32), "bias": jnp.zeros(fan_out, jnp.float32)}


def mlp_init(sizes):
    def init(key):
        keys = jax.random.split(key, len(sizes) - 1)
        return {
            f"dense_{i}": _dense_init(k, a, b)
            for i, (k, a, b) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True))
        }

    return init


def mlp_apply(params, x):
    n = len(params)
    for i in range(n - 1):
        layer = params[f"dense_{i}"]
        x = jax.nn.relu(x @ layer["kernel"] + layer["bias"])
    last = params[f"dense_{n - 1}"]
    return x @ last["kernel"] + last["bias"]


def cnn_init(channels=(16, 32)):
    def init(key):
        k0, k1, k2 = jax.random.split(key, 3)
        c0, c1 = channels
        conv = lambda k, cin, cout: {  # noqa: E731
            "kernel": jax.random.truncated_normal(k, -2.0, 2.0, (3, 3, cin, cout))
            / np.sqrt(9 * cin),
            "bias": jnp.zeros(cout, jnp.float32),
        }
        return {
            "conv_0": conv(k0, 1, c0),
            "conv_1": conv(k1, c0, c1),
            "dense": _dense_init(k2, 64 * c1, 10),
        }

    return init


def _conv(x, layer):
    """3x3 'SAME' convolution (NHWC, HWIO) as one matmul over the 9 shifted copies (im2col).

    Equal to ``lax.conv_general_dilated``; under ``vmap`` over parameters a convolution becomes
    a grouped convolution, which XLA's CPU backend runs ~3x slower than this batched matmul.
    """
    kernel = layer["kernel"]
    kh, kw = kernel.shape[:2]
    h, w = x.shape[1:3]
    xp = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    patches = jnp.concatenate(
        [xp[:, i : i + h, j : j + w, :] for i in range(kh) for j in range(kw)], axis=-1
    )
    return patches @ kernel.reshape(-1, kernel.shape[-1]) + layer["bias"]


def cnn_apply(params, x):
    x = x.reshape(x.shape[0], 8, 8, 1)
    x = jax.nn.relu(_conv(x, params["conv_0"]))
    x = jax.nn.relu(_conv(x, params["conv_1"]))
    x = x.reshape(x.shape[0], -1)
    return x @ params["dense"]["kernel"] + params["dense"]["bias"]


def load_task(name: str, *, quick: bool) -> Task:
    if name in ("mlp", "cnn"):
        x_tr, y_tr, x_te, y_te = _digits()
        if name == "mlp":
            # Pixels that are 0 in every training image carry no information; their weights get
            # no gradient, so an optimizer that leaves unseen coordinates alone never zeroes
            # them. Drop them (the CNN keeps the 8x8 grid: its weights are shared).
            keep = x_tr.std(0) > 0
            x_tr, x_te = _standardise(x_tr[:, keep], x_te[:, keep])
            d = int(keep.sum())
            sizes = (d, 32, 10) if quick else (d, 256, 256, 10)
            hidden = tuple(f"dense_{i}" for i in range(len(sizes) - 2))
            return Task(
                name,
                x_tr,
                y_tr,
                x_te,
                y_te,
                mlp_init(sizes),
                mlp_apply,
                hidden,
                2e-3,
                2 if quick else 40,
                128,
            )
        channels = (4, 8) if quick else (8, 16)
        return Task(
            name,
            x_tr,
            y_tr,
            x_te,
            y_te,
            cnn_init(channels),
            cnn_apply,
            ("conv_0", "conv_1"),
            2e-3,
            2 if quick else 40,
            128,
        )
    if name == "mnist1d":
        from mnist1d.data import get_dataset_args, make_dataset

        data = make_dataset(get_dataset_args())
        x_tr, x_te = _standardise(
            np.asarray(data["x"], np.float32), np.asarray(data["x_test"], np.float32)
        )
        sizes = (40, 256, 256, 10)
        return Task(
            name,
            x_tr,
            np.asarray(data["y"], np.int32),
            x_te,
            np.asarray(data["y_test"], np.int32),
            mlp_init(sizes),
            mlp_apply,
            ("dense_0", "dense_1"),
            2e-3,
            1 if quick else 30,
            100,
        )
    raise ValueError(f"unknown task {name!r}")


def kernel_mask(params):
    return {k: {"kernel": True, "bias": False} for k in params}


def hidden_mask(task: Task, params):
    return {k: {"kernel": k in task.hidden, "bias": False} for k in params}


def kernel_sparsity(params) -> jax.Array:
    kernels = [layer["kernel"] for layer in params.values()]
    return sum(jnp.sum(k == 0) for k in kernels) / sum(k.size for k in kernels)


def structured_sparsity(task: Task, params) -> jax.Array:
    """Fraction of kernel weights gone once the zeroed hidden units are deleted.

    A hidden unit goes when its incoming weights are all 0 (its constant relu(bias) is folded
    into a following Dense layer's bias, as ``l1optax.prune_units`` does; before a Conv it goes
    only if relu(bias) is 0); its outgoing weights go with it.
    """
    names = list(params)
    total = sum(params[k]["kernel"].size for k in names)
    removed = jnp.zeros((), jnp.float32)
    alive_in = None
    for i, name in enumerate(names):
        kernel = params[name]["kernel"]
        if alive_in is not None and kernel.ndim == 2 and kernel.shape[0] != alive_in.shape[0]:
            alive_in = jnp.tile(alive_in, kernel.shape[0] // alive_in.shape[0])  # flatten
        keep_in = jnp.ones(kernel.shape[-2], bool) if alive_in is None else alive_in
        if name in task.hidden:
            alive_out = jnp.any(kernel != 0, axis=tuple(range(kernel.ndim - 1)))
            if params[names[i + 1]]["kernel"].ndim == 4:  # a Conv follows: no exact fold
                alive_out = alive_out | (jax.nn.relu(params[name]["bias"]) > 0)
        else:
            alive_out = jnp.ones(kernel.shape[-1], bool)
        spatial = kernel.size // (kernel.shape[-1] * kernel.shape[-2])
        removed = removed + (kernel.size - jnp.sum(keep_in) * jnp.sum(alive_out) * spatial)
        alive_in = alive_out
    return removed / total


# --------------------------------------------------------------------------------------------
# methods
# --------------------------------------------------------------------------------------------


def gradual_magnitude_pruning(
    lr: float, target, *, begin: int, end: int, every: int, scope: str
) -> optax.GradientTransformation:
    """Zhu & Gupta (2017): Adam, then the weights outside the top-(1 - s_t) magnitudes set to 0.

    The mask is recomputed every ``every`` steps between ``begin`` and ``end`` (cubic schedule),
    from the magnitudes of the masked weights (pruned weights are 0, so they stay pruned), and
    applied after every step. Biases are not pruned.
    """
    adam = optax.adam(lr)
    schedule = l1optax.sparsity_schedule(target, begin_step=begin, end_step=end)

    def masks_for(params, s):
        kernels = {k: layer["kernel"] for k, layer in params.items()}
        if scope == "global":
            flat = jnp.concatenate([jnp.abs(w).ravel() for w in kernels.values()])
            n_keep = jnp.round((1.0 - s) * flat.size).astype(jnp.int32)
            kth = jnp.sort(flat)[::-1][jnp.maximum(n_keep - 1, 0)]
            return {k: (jnp.abs(w) >= kth) & (n_keep > 0) for k, w in kernels.items()}
        out = {}
        for k, w in kernels.items():
            flat = jnp.abs(w).ravel()
            n_keep = jnp.round((1.0 - s) * flat.size).astype(jnp.int32)
            kth = jnp.sort(flat)[::-1][jnp.maximum(n_keep - 1, 0)]
            out[k] = (jnp.abs(w) >= kth) & (n_keep > 0)
        return out

    def init(params):
        return (
            jnp.zeros((), jnp.int32),
            jax.tree.map(
                lambda w: jnp.ones_like(w, bool),
                {k: layer["kernel"] for k, layer in params.items()},
            ),
            adam.init(params),
        )

    def update(grads, state, params):
        count, masks, adam_state = state
        updates, adam_state = adam.update(grads, adam_state, params)
        new_params = optax.apply_updates(params, updates)
        prune_now = (count >= begin) & (count <= end) & ((count - begin) % every == 0)
        masked = {
            k: {**layer, "kernel": layer["kernel"] * masks[k]} for k, layer in new_params.items()
        }
        # a real branch (the configurations run one by one with lax.map, not vmap), so the sort
        # happens only at the pruning steps
        masks = jax.lax.cond(prune_now, lambda: masks_for(masked, schedule(count)), lambda: masks)
        new_params = {
            k: {**layer, "kernel": layer["kernel"] * masks[k]} for k, layer in new_params.items()
        }
        updates = jax.tree.map(lambda a, b: a - b, new_params, params)
        return updates, (optax.safe_increment(count), masks, adam_state)

    return optax.GradientTransformation(init, update)


def _prox_in_metric(lr, hyper, prox, mask):
    """``prox_adam(lr, hyper, prox=prox)`` when available, else a uniform prox after Adam."""
    if HAS_PROX_ARG:
        return l1optax.prox_adam(lr, hyper, prox=prox, mask=mask)
    return optax.chain(optax.adam(lr), l1optax.apply_prox(prox, lr, hyper, mask=mask))


def make_tx(method: str, task: Task, params, target, total_steps: int):
    lr = task.lr
    begin, end = _ramp(total_steps)
    kmask = kernel_mask(params)
    ts = functools.partial(
        l1optax.target_sparsity, begin_step=begin, end_step=end, search_steps=SEARCH_STEPS
    )
    if method == "adam":
        return optax.adam(lr)
    if method in ("gmp global", "gmp layer"):
        return gradual_magnitude_pruning(
            lr,
            target,
            begin=begin,
            end=end,
            every=max(total_steps // 100, 1),
            scope="global" if method == "gmp global" else "layer",
        )
    if method == "l1 (prox_adam)":
        inner = optax.inject_hyperparams(l1optax.prox_adam)(
            learning_rate=lr, l1reg=1e-4, mask=kmask
        )
        return ts(inner, target, mask=kmask)
    if method == "l0":
        return ts(
            lambda lam: _prox_in_metric(lr, lam, l1optax.prox_l0, kmask),
            target,
            mask=kmask,
            l1reg=1e-6,
        )
    if method == "mcp":
        # gamma * lam = 0.05 (about a typical weight): weights above it are not shrunk
        prox = functools.partial(l1optax.prox_mcp, strict=False)
        return ts(
            lambda lam: _prox_in_metric(lr, (lam, 0.05 / lam), prox, kmask),
            target,
            mask=kmask,
            l1reg=1e-4,
        )
    if method == "l_half":
        return ts(
            lambda lam: _prox_in_metric(lr, lam, l1optax.prox_l_half, kmask),
            target,
            mask=kmask,
            l1reg=1e-5,
        )
    if method == "group":
        hmask = hidden_mask(task, params)
        if HAS_PROX_ARG:
            prox = functools.partial(l1optax.prox_group_l1, axis=-1)
            factory = lambda lam: l1optax.prox_adam(lr, lam, prox=prox, mask=hmask)  # noqa: E731
        else:
            factory = lambda lam: optax.chain(  # noqa: E731
                optax.adam(lr), l1optax.apply_group_l1_prox(lr, lam, axis=-1, mask=hmask)
            )
        # per-layer targets (the fraction of units each hidden layer loses, from
        # group_unit_target), so that the structured sparsity lands near the column's
        return ts(factory, target, mask=hmask, per_leaf=True, l1reg=1e-4)
    raise ValueError(f"unknown method {method!r}")


# --------------------------------------------------------------------------------------------
# training (every seed x target configuration of a method at once, with vmap)
# --------------------------------------------------------------------------------------------


def batch_indices(task: Task, seeds: Sequence[int], epochs: int) -> np.ndarray:
    n = len(task.y_train)
    nb = n // task.batch
    out = []
    for seed in seeds:
        rng = np.random.default_rng(1000 + seed)
        out.append(
            np.concatenate(
                [
                    rng.permutation(n)[: nb * task.batch].reshape(nb, task.batch)
                    for _ in range(epochs)
                ]
            )
        )
    return np.stack(out)


def _compile(fn, *args):
    """``jax.jit(fn)`` compiled for ``args`` with the module's ``COMPILER_OPTIONS``."""
    lowered = jax.jit(fn).lower(*args)
    if COMPILER_OPTIONS:
        return lowered.compile(compiler_options=COMPILER_OPTIONS)
    return lowered.compile()


def _loss_fn(task: Task):
    xs, ys = jnp.asarray(task.x_train), jnp.asarray(task.y_train)

    def loss(p, ib):
        logits = task.apply(p, xs[ib])
        return optax.softmax_cross_entropy_with_integer_labels(logits, ys[ib]).mean()

    return loss


def _scan_train(tx, loss, params, state, index):
    def body(carry, ib):
        p, s = carry
        u, s = tx.update(jax.grad(loss)(p, ib), s, p)
        return (optax.apply_updates(p, u), s), None

    (params, state), _ = jax.lax.scan(body, (params, state), index)
    return params, state


_RUNNERS: dict = {}


def train_configs(
    task: Task, method: str, seeds_arr, targets_arr, index, *, total_steps: int, start=None
):
    """Trains every configuration (one row of ``index`` each) with ``make_tx(method, ...)``.

    ``seeds_arr``/``targets_arr`` give each configuration's seed and target; ``index`` its
    batches for this phase (configuration x step x batch); ``total_steps`` the length of the
    whole run (the schedules' clock). ``start``: ``(params, state)`` to continue from (a later
    phase of the same run), or None to initialise. Returns ``(params, state)``, stacked.

    The steps run in chunks of ``_chunk(total_steps)`` through one compiled program per
    (task, method, shapes), so a run split into phases compiles once.
    """
    loss = _loss_fn(task)
    seeds_arr, targets_arr = jnp.asarray(seeds_arr), jnp.asarray(targets_arr)

    def init_one(seed, target):
        params = task.init(jax.random.PRNGKey(seed))
        return params, make_tx(method, task, params, target, total_steps).init(params)

    def chunk_one(target, idx, carry):
        tx = make_tx(method, task, carry[0], target, total_steps)
        return _scan_train(tx, loss, *carry, idx)

    if start is None:
        start = jax.jit(jax.vmap(init_one))(seeds_arr, targets_arr)
    chunk = _chunk(total_steps)
    index = jnp.asarray(index)
    if method.startswith("gmp"):
        # a real branch (configurations one by one), so GMP sorts only at its pruning steps
        fn = lambda *a: jax.lax.map(lambda x: chunk_one(*x), a)  # noqa: E731
    else:
        fn = jax.vmap(chunk_one)
    shapes = repr(jax.tree.map(jnp.shape, start[0]))
    key = (
        task.name,
        method,
        index.shape[0],
        index.shape[2],
        shapes,
        chunk,
        total_steps,
        COMPILER_OPTIONS_KEY[0],
    )
    carry = start
    for c in range(0, index.shape[1], chunk):
        args = (targets_arr, index[:, c : c + chunk], carry)
        if key not in _RUNNERS:
            _RUNNERS[key] = _compile(fn, *args)
        carry = _RUNNERS[key](*args)
    return carry


def _chunk(total_steps: int) -> int:
    """Steps per compiled chunk: divides both phases (before and after the ramp's end)."""
    switch = _ramp(total_steps)[1]
    return math.gcd(switch, total_steps - switch) or total_steps


def finetune_frozen(task: Task, params, index):
    """``l1optax.freeze_support(adam)`` from ``params`` (stacked) over ``index``; one compile."""
    loss = _loss_fn(task)

    def one(p, idx):
        tx = l1optax.freeze_support(optax.adam(task.lr), mask=kernel_mask(p))
        return _scan_train(tx, loss, p, tx.init(p), idx)[0]

    index = jnp.asarray(index)
    key = ("frozen", task.name, index.shape, repr(jax.tree.map(jnp.shape, params)))
    key += (COMPILER_OPTIONS_KEY[0],)
    if key not in _RUNNERS:
        _RUNNERS[key] = _compile(jax.vmap(one), params, index)
    return _RUNNERS[key](params, index)


def magnitude_prune(params, target):
    kernels = [layer["kernel"] for layer in params.values()]
    flat = jnp.concatenate([jnp.abs(w).ravel() for w in kernels])
    n_keep = jnp.round((1.0 - target) * flat.size).astype(jnp.int32)
    kth = jnp.sort(flat)[::-1][jnp.maximum(n_keep - 1, 0)]
    return {
        k: {**layer, "kernel": jnp.where(jnp.abs(layer["kernel"]) >= kth, layer["kernel"], 0.0)}
        for k, layer in params.items()
    }


def group_unit_target(task: Task, params, sparsity: float) -> float:
    """The fraction of units each hidden layer must lose for ``sparsity`` structured sparsity.

    If every hidden layer keeps a fraction k of its units (outputs), the kernel weights left
    are ``sum(size * keep_in * keep_out)``; k is found by bisection so that the fraction removed
    is ``sparsity``, and ``1 - k`` is the per-layer exact-zero target for group lasso.
    """
    names = list(params)
    sizes = [int(np.size(params[n]["kernel"])) for n in names]

    def removed(k):
        left, keep_in = 0.0, 1.0
        for name, size in zip(names, sizes, strict=True):
            keep_out = k if name in task.hidden else 1.0
            left += size * keep_in * keep_out
            keep_in = keep_out
        return 1.0 - left / sum(sizes)

    lo, hi = 0.0, 1.0  # removed(k) decreases in k
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if removed(mid) > sparsity else (lo, mid)
    # every hidden layer keeps at least one unit: a layer with no unit left cuts the network
    # (chance accuracy), so beyond this cap the column's structured sparsity is not reached and
    # the table shows the sparsity actually reached
    fewest = min(int(np.shape(params[n]["kernel"])[-1]) for n in names if n in task.hidden)
    return float(min(1.0 - lo, (fewest - 1) / fewest))


def evaluate(task: Task, params, method: str):
    xt, yt = jnp.asarray(task.x_test), jnp.asarray(task.y_test)

    def one(p):
        acc = jnp.mean(jnp.argmax(task.apply(p, xt), -1) == yt)
        sp = structured_sparsity(task, p) if method == "group" else kernel_sparsity(p)
        return acc, sp

    key = ("eval", task.name, method == "group", repr(jax.tree.map(jnp.shape, params)))
    if key not in _RUNNERS:
        _RUNNERS[key] = jax.jit(jax.vmap(one))
    acc, sp = _RUNNERS[key](params)
    return np.asarray(acc, np.float64), np.asarray(sp, np.float64)


def run_method(task: Task, method: str, seeds, targets, epochs: int, cache=None):
    """Trains ``method`` for every (seed, target); returns targets, accuracy, sparsity, params.

    Every method gets the same steps (``epochs`` over the same batches). Methods that switch to
    a frozen-support fine-tune (``one-shot + ft``, ``* + ft``) do it at the end of the sparsity
    ramp (60% of the steps), where gradual magnitude pruning also fixes its mask. ``cache``
    (a dict) shares the first 60% of a run between a method and its ``+ ft`` variant.
    """
    cache = {} if cache is None else cache
    idx_seed = batch_indices(task, seeds, epochs)
    total = idx_seed.shape[1]
    switch = _ramp(total)[1]
    if method == "adam":
        params, _ = train_configs(
            task,
            method,
            np.asarray(seeds),
            np.zeros(len(seeds), np.float32),
            idx_seed,
            total_steps=total,
        )
        return [0.0], *evaluate(task, params, method), params
    n_t = len(targets)
    seeds_arr = np.repeat(np.asarray(seeds), n_t)
    targets_arr = np.tile(np.asarray(targets, np.float32), len(seeds))
    idx = np.repeat(idx_seed, n_t, axis=0)
    if method == "one-shot + ft":
        dense, _ = train_configs(
            task,
            "adam",
            np.asarray(seeds),
            np.zeros(len(seeds), np.float32),
            idx_seed[:, :switch],
            total_steps=total,
        )
        dense = jax.tree.map(lambda x: jnp.repeat(x, n_t, axis=0), dense)
        pruned = jax.jit(jax.vmap(magnitude_prune))(dense, jnp.asarray(targets_arr))
        params = finetune_frozen(task, pruned, idx[:, switch:])
        return list(targets), *evaluate(task, params, method), params
    run_targets = targets_arr
    if method == "group":
        p0 = task.init(jax.random.PRNGKey(0))
        run_targets = np.asarray([group_unit_target(task, p0, t) for t in targets_arr], np.float32)
    base = FINETUNED.get(method, method)
    key = (task.name, base, tuple(seeds), tuple(targets), epochs)
    if method in FINETUNED or base in FINETUNED.values():
        if key not in cache:
            cache[key] = train_configs(
                task, base, seeds_arr, run_targets, idx[:, :switch], total_steps=total
            )
        first = cache[key]
        if method in FINETUNED:
            params = finetune_frozen(task, first[0], idx[:, switch:])
        else:
            params, _ = train_configs(
                task,
                base,
                seeds_arr,
                run_targets,
                idx[:, switch:],
                total_steps=total,
                start=first,
            )
    else:
        params, _ = train_configs(task, method, seeds_arr, run_targets, idx, total_steps=total)
    return list(targets), *evaluate(task, params, method), params


# --------------------------------------------------------------------------------------------
# inference timing: dense vs pruned vs BCOO
# --------------------------------------------------------------------------------------------


def inference_timing(task: Task, params, *, quick: bool):
    """Median wall time of a jitted forward pass (batch 1 and the test set), three ways."""
    from flax import nnx

    layers = []
    names = list(params)
    for i, name in enumerate(names):
        k = np.asarray(params[name]["kernel"])
        lin = nnx.Linear(k.shape[0], k.shape[1], rngs=nnx.Rngs(0))
        lin.kernel[...] = jnp.asarray(k)
        lin.bias[...] = jnp.asarray(params[name]["bias"])
        layers.append(lin)
        if i < len(names) - 1:
            layers.append(jax.nn.relu)
    model = nnx.Sequential(*layers)
    x_all = jnp.asarray(task.x_test)
    pruned = l1optax.prune_units(model, example_input=x_all[:8])
    bcoo = l1optax.to_bcoo({k: params[k]["kernel"] for k in names})

    def bcoo_apply(x):
        for i, name in enumerate(names):
            x = x @ bcoo[name] + params[name]["bias"]
            if i < len(names) - 1:
                x = jax.nn.relu(x)
        return x

    graph_d, state_d = nnx.split(model)
    graph_p, state_p = nnx.split(pruned)
    dense_fn = jax.jit(lambda s, x: nnx.merge(graph_d, s)(x))
    pruned_fn = jax.jit(lambda s, x: nnx.merge(graph_p, s)(x))
    bcoo_fn = jax.jit(bcoo_apply)
    rows = []
    reps = 5 if quick else 200
    for batch_name, x in (("1", x_all[:1]), (str(len(x_all)), x_all)):
        out = {}
        for label, call in (
            ("dense", lambda x=x: dense_fn(state_d, x)),
            ("pruned", lambda x=x: pruned_fn(state_p, x)),
            ("bcoo", lambda x=x: bcoo_fn(x)),
        ):
            jax.block_until_ready(call())
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                jax.block_until_ready(call())
                times.append(time.perf_counter() - t0)
            out[label] = float(np.median(times))
        diff = float(jnp.max(jnp.abs(dense_fn(state_d, x) - pruned_fn(state_p, x))))
        rows.append(
            {
                "batch": batch_name,
                **{f"{k}_us": v * 1e6 for k, v in out.items()},
                "max_abs_diff_pruned": diff,
            }
        )
    n_dense = sum(int(np.size(params[k]["kernel"])) for k in names)
    n_pruned = sum(
        int(np.size(layer.kernel[...])) for layer in pruned.layers if isinstance(layer, nnx.Linear)
    )
    nnz = sum(int(bcoo[k].nse) for k in names)
    return {
        "rows": rows,
        "kernel_params_dense": n_dense,
        "kernel_params_pruned": n_pruned,
        "bcoo_nse": nnz,
    }


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def summarise(results):
    rows = []
    for r in results:
        acc, sp = np.asarray(r["accuracy"]), np.asarray(r["sparsity"])
        rows.append(
            {
                "task": r["task"],
                "method": r["method"],
                "target": r["target"],
                "acc_mean": float(acc.mean()),
                "acc_std": float(acc.std()),
                "sparsity_mean": float(sp.mean()),
                "sparsity_std": float(sp.std()),
                "seeds": len(acc),
            }
        )
    return rows


def markdown(rows, targets) -> str:
    out = []
    for task in dict.fromkeys(r["task"] for r in rows):
        out.append(
            f"\n**{task}** — test accuracy % (mean ± std over seeds) [exact kernel sparsity %]\n"
        )
        out.append("| method | " + " | ".join(f"{100 * t:g}%" for t in targets) + " |")
        out.append("|---|" + "---|" * len(targets))
        for method in dict.fromkeys(r["method"] for r in rows if r["task"] == task):
            cells = []
            sel = [r for r in rows if r["task"] == task and r["method"] == method]
            for t in targets:
                match = [r for r in sel if abs(r["target"] - t) < 1e-9] or (
                    sel if method == "adam" else []
                )
                if not match:
                    cells.append("")
                    continue
                r = match[0]
                cells.append(
                    f"{100 * r['acc_mean']:.1f} ± {100 * r['acc_std']:.1f} "
                    f"[{100 * r['sparsity_mean']:.1f}]"
                )
            out.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def plot(rows, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks) + 2, 4), squeeze=False)
    cmap = plt.get_cmap("tab20")
    handles = {}
    for ax, task in zip(axes[0], tasks, strict=True):
        for method in dict.fromkeys(r["method"] for r in rows if r["task"] == task):
            sel = [r for r in rows if r["task"] == task and r["method"] == method]
            if method == "adam":
                handles[method] = ax.axhline(
                    100 * sel[0]["acc_mean"], color="k", ls=":", label="adam (dense)"
                )
                continue
            # one colour per method on every panel; the "+ ft" variants dashed
            color = cmap(METHODS.index(method) % 20) if method in METHODS else None
            handles[method] = ax.errorbar(
                [100 * (1 - r["sparsity_mean"]) for r in sel],
                [100 * r["acc_mean"] for r in sel],
                yerr=[100 * r["acc_std"] for r in sel],
                marker="o",
                ms=3,
                color=color,
                ls="--" if method.endswith("+ ft") else "-",
                label=method,
            )
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("non-zero kernel weights % (log scale)")
        ax.set_ylabel("test accuracy %")
        ax.set_title(task)
        ax.grid(alpha=0.3)
    order = [m for m in METHODS if m in handles] + [m for m in handles if m not in METHODS]
    fig.legend([handles[m] for m in order], order, loc="center right", fontsize=7)
    fig.tight_layout(rect=(0, 0, 1 - 1.6 / fig.get_figwidth(), 1))
    fig.savefig(path, dpi=120)


def _from_json(paths: Sequence[str], json_out: str | None, plot_out: str | None) -> dict:
    """Merges the ``raw`` results of earlier runs (later files win) and reports them."""
    merged: dict = {}
    errors: list = []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for r in data["raw"]:
            merged[(r["task"], r["method"], r["target"])] = r
        errors += data.get("errors", [])
    results = list(merged.values())
    targets = sorted({r["target"] for r in results if r["method"] != "adam"})
    rows = summarise(results)
    print(markdown(rows, targets))
    if plot_out:
        plot(rows, plot_out)
    payload = {"rows": rows, "raw": results, "targets": targets, "sources": list(paths)}
    payload["errors"] = errors
    if json_out:
        with open(json_out, "w") as f:
            json.dump(payload, f, indent=1)
    return payload


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: tiny models, 1 seed")
    parser.add_argument("--tasks", default=None, help="comma-separated subset of mlp,cnn,mnist1d")
    parser.add_argument("--methods", default=None, help="comma-separated subset of the methods")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3)")
    parser.add_argument("--epochs", type=int, default=None, help="override every task's epochs")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--plot", default=None, help="write the accuracy-vs-sparsity plot here")
    parser.add_argument("--no-timing", action="store_true", help="skip the inference timing")
    parser.add_argument(
        "--fast-compile",
        action="store_true",
        help="compile with XLA's CPU optimisations off (default with --quick)",
    )
    parser.add_argument(
        "--from-json",
        default=None,
        help="comma-separated JSON files of earlier runs (partial ones too): merge their raw "
        "results and print the tables / write --json and --plot, without training",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        return _from_json(args.from_json.split(","), args.json, args.plot)
    COMPILER_OPTIONS.clear()
    if args.quick or args.fast_compile:
        COMPILER_OPTIONS["xla_backend_optimization_level"] = 0
    COMPILER_OPTIONS_KEY[0] = repr(sorted(COMPILER_OPTIONS.items()))

    if args.tasks:
        tasks = args.tasks.split(",")
    elif args.quick:
        tasks = list(QUICK_METHODS)
    else:
        tasks = ["mlp", "cnn", "mnist1d"]
        try:
            import mnist1d  # noqa: F401
        except ImportError:
            print("mnist1d is not installed: skipping that task", file=sys.stderr)
            tasks.remove("mnist1d")
    if args.methods:
        methods = args.methods.split(",")
    else:
        methods = list(METHODS)
    for m in methods:
        if m not in METHODS:
            parser.error(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    task_methods = {
        name: list(QUICK_METHODS.get(name, QUICK_METHODS["mlp"]))
        if args.quick and not args.methods
        else methods
        for name in tasks
    }
    seeds = list(range(args.seeds or (1 if args.quick else 3)))
    targets = (0.9, 0.99) if args.quick else TARGETS

    results, timing, cache, errors = [], None, {}, []
    started = time.perf_counter()
    for name in tasks:
        task = load_task(name, quick=args.quick)
        epochs = args.epochs or task.epochs
        cache.clear()
        for method in task_methods[name]:
            t0 = time.perf_counter()
            try:
                tgts, acc, sp, params = run_method(task, method, seeds, targets, epochs, cache)
            except Exception as err:  # noqa: BLE001 - one failing method must not lose the run
                if args.quick:
                    raise
                errors.append({"task": name, "method": method, "error": repr(err)})
                print(f"{name:8s} {method:16s} FAILED: {err!r}", file=sys.stderr, flush=True)
                continue
            acc = acc.reshape(len(seeds), len(tgts))
            sp = sp.reshape(len(seeds), len(tgts))
            for j, t in enumerate(tgts):
                results.append(
                    {
                        "task": name,
                        "method": method,
                        "target": float(t),
                        "accuracy": acc[:, j].tolist(),
                        "sparsity": sp[:, j].tolist(),
                        "steps": len(batch_indices(task, [0], epochs)[0]),
                        "seconds": time.perf_counter() - t0,
                    }
                )
            if args.json:  # a partial file after every method, in case the run is cut short
                with open(args.json, "w") as f:
                    json.dump({"raw": results, "errors": errors, "partial": True}, f, indent=1)
            print(
                f"{name:8s} {method:16s} {time.perf_counter() - t0:6.1f}s  "
                + "  ".join(
                    f"{100 * a:.1f}@{100 * s:.1f}"
                    for a, s in zip(acc.mean(0), sp.mean(0), strict=True)
                ),
                flush=True,
            )
            if method == "group" and name == "mlp" and not args.no_timing:
                first = jax.tree.map(lambda x: x[0], params)
                timing = inference_timing(task, first, quick=args.quick)
    rows = summarise(results)
    print(markdown(rows, targets))
    if timing:
        print("\ninference (group-lasso MLP, seed 0, target 0.9; median wall time, jitted):")
        for r in timing["rows"]:
            print(
                f"  batch {r['batch']:>4}: dense {r['dense_us']:.0f} us, pruned {r['pruned_us']:.0f} us, "
                f"BCOO {r['bcoo_us']:.0f} us (max |dense - pruned| {r['max_abs_diff_pruned']:.1e})"
            )
        print(
            f"  kernel weights: dense {timing['kernel_params_dense']}, pruned "
            f"{timing['kernel_params_pruned']}, BCOO non-zeros {timing['bcoo_nse']}"
        )
    print(
        f"\ntotal {time.perf_counter() - started:.0f}s; metric for the nonconvex proxes: "
        f"{'Adam metric (prox=)' if HAS_PROX_ARG else 'uniform (chain(adam, apply_prox))'}"
    )
    if args.plot:
        plot(rows, args.plot)
    payload = {
        "rows": rows,
        "raw": results,
        "timing": timing,
        "prox_in_adam_metric": HAS_PROX_ARG,
        "targets": list(targets),
        "seeds": seeds,
        "jax": jax.__version__,
        "compiler_options": dict(COMPILER_OPTIONS),
        "errors": errors,
        "seconds": time.perf_counter() - started,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=1)
    return payload


if __name__ == "__main__":
    main()
    raise SystemExit(0)
