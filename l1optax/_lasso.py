"""Data-aware lasso solvers: working sets, Gap Safe screening and warm starts, inside ``jax.jit``.

:func:`lasso` and :func:`lasso_path` solve the lasso, the elastic net and L1 logistic regression
in scikit-learn's scalings from the design matrix itself (dense, or a
``jax.experimental.sparse.BCOO`` / SciPy sparse matrix), with a duality-gap certificate. The
method is the one of celer and skglm (Massias, Gramfort & Salmon 2018; Bertrand et al. 2022),
written with static shapes so that it compiles once and runs on CPU, GPU and TPU:

* an outer loop computes one full gradient per iteration, the duality gap from a rescaled dual
  point, the KKT violation and the Gap Safe screening test (Ndiaye et al. 2017);
* a working set (its size traced, at least twice the support, four times for a sparse X whose
  support fills 90% of the last one, doubled when an outer iteration makes no progress) holds
  the current support and the features closest to violating their dual constraint, inside a
  compiled block of fixed capacity (a ladder 128, 512, 2048, ..., p chosen by ``lax.switch``,
  or p alone up to 256, so every shape is static);
* the working set is picked by a sort of few features, or by a bisection on the bits of the
  scores rounded to bfloat16 and prefix sums (a sort of many costs ms on CPU);
* the inner solver is cyclic coordinate descent on the working set, in Gram form (K x K block)
  when the block is narrower than n and in residual form (no block: celer's and skglm's form)
  otherwise, on the non-zeros of each column for a sparse X, with Anderson acceleration every
  6 epochs and an exact step on the support (a LAPACK Cholesky solve, walked back to the first
  sign change) kept only when it lowers the objective;
  for the logistic loss, proximal Newton steps whose quadratic models are solved by the same
  coordinate descent; each block is solved to a fraction of the target duality gap;
* a path is one ``lax.scan`` over the strengths with warm starts (coefficients and size).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse as jsparse

from l1optax import _validation as v

_LOSSES = ("squared", "logistic")
_FIRST_SIZE = 32  # the first working set
_FIRST_CAPACITY = 128
_GROWTH = 4  # capacities 128, 512, ..., p (32, 128, ... when n >= p): _capacities
_INNER_FRACTION = 0.3  # a working-set problem is solved to this fraction of its target gap
_LOOSE_BELOW = 64  # outer / epoch cost below which working sets are solved loosely: _inner_target
_ANDERSON = 5  # Anderson acceleration: extrapolate from the last 5 + 1 epochs (skglm's choice)
_UNROLL = 4  # coordinates per loop step of the coupled sweep (_coupled_sweep)
_SPARSE_SPAN = 32  # the most columns of a row-disjoint sparse block: _block_span
_DISJOINT_FROM = 16  # ... and the fewest for row-disjoint blocks to pay: _cd
_BLOCK_ROUNDS = 6  # rounds of row-disjoint blocking before the rest go one per block
_RUN = 64  # the runs of _prefix_sum
_BLOCK_TABLE = 1 << 18  # the (chunk, row) table of _disjoint_blocks; hashed above this size
_NEWTON_MAX = 512  # the exact step on the support is tried for supports up to this size
_NEWTON_WORK = 2**25  # ... and, in the residual forms, up to this cap^2 n
_SORT_BELOW = 512  # up to this many features, the working set is picked by a sort: _smallest
_CHECK_EVERY = 3  # epochs between two checks of a working-set problem's duality gap


class LassoInfo(NamedTuple):
    """What :func:`lasso` and :func:`lasso_path` report besides the coefficients.

    Every field is a JAX array (with a leading path axis for :func:`lasso_path`).

    Attributes:
      intercept: the fitted intercept (0 when ``fit_intercept=False``).
      gap: the duality gap :math:`P(w) - D(\\theta) \\ge P(w) - P(w^\\star) \\ge 0`.
      primal: the primal objective :math:`P(w)` in scikit-learn's scaling.
      kkt: the KKT violation, :math:`\\max_j \\mathrm{dist}(-\\nabla_j f(w),
        \\alpha c_j \\partial|w_j|)` (the intercept's gradient included).
      converged: bool, ``gap <= tol * primal``.
      num_outer: int32, outer iterations (full gradients) run.
      num_inner: int32, inner coordinate-descent epochs run (all working sets together).
      ws_size: int32, the working-set size used last.
      num_screened: int32, features the Gap Safe rule proved to be zero.
    """

    intercept: jax.Array
    gap: jax.Array
    primal: jax.Array
    kkt: jax.Array
    converged: jax.Array
    num_outer: jax.Array
    num_inner: jax.Array
    ws_size: jax.Array
    num_screened: jax.Array


class _Data(NamedTuple):
    X: Any  # (n, p) dense array or BCOO
    y: jax.Array  # (n,) centred targets (squared loss with intercept) or labels in {-1, 1}
    xmean: jax.Array  # (p,) column means subtracted implicitly (zeros when not centring)
    n: jax.Array  # the number of samples (a float: padded cross-validation folds)
    colsq: jax.Array  # (p,) squared norms of the (centred) columns
    gram: Any  # (G, X^T y / n, y^T y / n) or None
    # sparse X: its non-zeros in column order (rows, values), column starts (p + 1,) and the
    # uncentred column sums (p,; zeros when not centring, as they are then never read); None
    # for a dense X
    csc: Any = None


class _Config(NamedTuple):
    loss: str
    sparse: bool
    intercept: bool  # logistic only: an unpenalized intercept coordinate
    use_gram: bool
    capacities: tuple
    max_newton: int
    col_nnz: int = 0  # sparse X: the most non-zeros of any column (the inner solver's width)
    center: bool = False  # squared loss with intercept: X's columns centred (implicitly if sparse)


class _State(NamedTuple):
    w: jax.Array
    b: jax.Array
    size: jax.Array  # the working-set size (the compiled capacity holding it: _level_for)
    it: jax.Array
    inner: jax.Array
    screened: jax.Array
    z: jax.Array  # X w + b (centred X), the inner solver's own residual; empty with the Gram
    # matrix (the certificate reads G w instead)
    grad: jax.Array
    scale: jax.Array
    gap: jax.Array
    primal: jax.Array
    kkt: jax.Array
    prev_gap: jax.Array
    done: jax.Array


# ---------------------------------------------------------------------------------------------
# linear algebra on the (implicitly centred) design matrix


def _matvec(d: _Data, w: jax.Array) -> jax.Array:
    return d.X @ w - jnp.dot(d.xmean, w)


def _rmatvec(d: _Data, r: jax.Array) -> jax.Array:
    # r @ X, not X.T @ r: XLA's CPU backend copies a transposed dense operand (8 MB for
    # 200 x 5000 float64) on every call; r @ X reads X in place and is ~8x faster there.
    xtr = d.X.T @ r if isinstance(d.X, jsparse.BCOO) else r @ d.X
    return xtr - d.xmean * jnp.sum(r)


def _columns(d: _Data, idx: jax.Array, sparse: bool) -> jax.Array:
    """The (n, K) dense block of the centred columns ``idx``."""
    if sparse:
        # one scatter of the non-zeros whose column is in idx: O(nnz), where the product
        # X @ one_hot(idx) costs O(nnz K)
        K = idx.shape[0]
        slot = (
            jnp.full((d.xmean.shape[0],), K, jnp.int32).at[idx].set(jnp.arange(K, dtype=jnp.int32))
        )
        rows, cols = d.X.indices[:, 0], d.X.indices[:, 1]
        block = (
            jnp.zeros((d.y.shape[0], K), d.y.dtype).at[rows, slot[cols]].add(d.X.data, mode="drop")
        )
    else:
        block = jnp.take(d.X, idx, axis=1)
    return block - d.xmean[idx]


def _sparse_columns(d: _Data, idx: jax.Array, keep: jax.Array, width: int):
    """The non-zeros of the (uncentred) sparse columns ``idx``: rows and values, (K, width),
    padded (and empty for the columns outside ``keep``) by row n and value 0; ``width`` is the
    most non-zeros of any column of X, so every column fits. The padding lies past the rows:
    the scatters drop it (the gathers clip it to the last row, times 0), which on a 2000 x
    20000 working set is 1.4-1.9x faster than adding zeros to row 0 (additions to one entry are
    serialised)."""
    rows_all, vals_all, colptr, _ = d.csc
    start = colptr[idx]
    slot = jnp.arange(width, dtype=jnp.int32)
    ok = (slot < (colptr[idx + 1] - start)[:, None]) & keep[:, None]
    pos = jnp.minimum(start[:, None] + slot, rows_all.shape[0] - 1)
    return jnp.where(ok, rows_all[pos], d.y.shape[0]), jnp.where(ok, vals_all[pos], 0.0)


# ---------------------------------------------------------------------------------------------
# losses: value, dual-ready gradient, conjugate


def _loss_value(loss: str, z: jax.Array, y: jax.Array, n: jax.Array) -> jax.Array:
    if loss == "squared":
        return jnp.sum((y - z) ** 2) / (2 * n)
    return jnp.sum(jnp.logaddexp(0.0, -y * z)) / n


def _loss_grad(loss: str, z: jax.Array, y: jax.Array, n: jax.Array) -> jax.Array:
    """The gradient of f(z) w.r.t. z (the dual point before rescaling)."""
    if loss == "squared":
        return (z - y) / n
    return -y * jax.nn.sigmoid(-y * z) / n


def _xlogx(t: jax.Array) -> jax.Array:
    return jnp.where(t > 0, t * jnp.log(jnp.where(t > 0, t, 1.0)), 0.0)


def _conjugate(loss: str, u: jax.Array, y: jax.Array, n: jax.Array) -> jax.Array:
    """f*(u) for f(z) = sum_i loss(z_i, y_i) / n."""
    if loss == "squared":
        return n / 2 * jnp.sum(u**2) + jnp.dot(u, y)
    t = jnp.clip(-n * y * u, 0.0, 1.0)
    return jnp.sum(_xlogx(t) + _xlogx(1 - t)) / n


def _strong_concavity(loss: str, n: jax.Array) -> jax.Array:
    return n if loss == "squared" else 4 * n


# ---------------------------------------------------------------------------------------------
# the certificate at the current point: full gradient, dual point, gap, KKT, screening


def _certify(cfg: _Config, d: _Data, w, z, alpha, l2, c, screened):
    """The certificate at ``w`` with ``z = X w + b`` (read only without the full Gram matrix)."""
    pen = alpha * c  # per-coordinate strengths
    if cfg.use_gram:
        G, Xty, yty = d.gram
        Gw = G @ w
        grad = Gw - Xty + l2 * w
        fval = 0.5 * (yty - 2 * jnp.dot(w, Xty) + jnp.dot(w, Gw))
        fval = jnp.maximum(fval, 0.0)
        # f*(s u) with u = (Xw - y)/n: (n/2) s^2 |u|^2 + s u.y = s^2 f - s (u.y) ...
        uy = jnp.dot(w, Xty) - yty  # u.y = (Xw - y).y / n

        def dual(s):
            conj = s**2 * fval + s * uy
            return -conj - s**2 * l2 * jnp.dot(w, w) / 2

    else:
        u = _loss_grad(cfg.loss, z, d.y, d.n)
        grad = _rmatvec(d, u) + l2 * w
        fval = _loss_value(cfg.loss, z, d.y, d.n)

        def dual(s):
            return -_conjugate(cfg.loss, s * u, d.y, d.n) - s**2 * l2 * jnp.dot(w, w) / 2

    absg = jnp.abs(grad)
    penalized = c > 0
    ratio = jnp.where(penalized & (absg > pen), pen / jnp.where(absg > 0, absg, 1.0), 1.0)
    scale = jnp.minimum(1.0, jnp.min(ratio, initial=1.0))
    primal = fval + l2 * jnp.dot(w, w) / 2 + jnp.sum(pen * jnp.abs(w))
    gap = jnp.maximum(primal - dual(scale), 0.0)
    viol = jnp.where(w != 0, jnp.abs(grad + pen * jnp.sign(w)), jnp.maximum(absg - pen, 0.0))
    kkt = jnp.max(viol, initial=0.0)
    if cfg.intercept:
        kkt = jnp.maximum(kkt, jnp.abs(jnp.sum(u)))
    # Gap Safe: the dual optimum lies within radius rho of the rescaled dual point
    mu = _strong_concavity(cfg.loss, d.n)
    mu = jnp.where(l2 > 0, jnp.minimum(mu, 1 / jnp.where(l2 > 0, l2, 1.0)), mu)
    rho = jnp.sqrt(2 * gap / mu)
    norm = jnp.sqrt(d.colsq + jnp.where(l2 > 0, 1.0, 0.0))
    safe = penalized & (scale * absg + rho * norm < pen)
    if cfg.intercept:  # the dual point is feasible only approximately: no screening
        safe = jnp.zeros_like(safe)
    return grad, scale, gap, primal, kkt, screened | safe


# ---------------------------------------------------------------------------------------------
# the inner solver: coordinate descent on a Gram block


def _soft(x, t):
    return jnp.sign(x) * jnp.maximum(jnp.abs(x) - t, 0.0)


class _Block(NamedTuple):
    """A working-set quadratic problem  min_w  F(w) + sum_j lam_j |w_j|,  in one of three forms.

    ``"gram"``: F(w) = w'Hw/2 - w'bvec, and the coordinate-descent state is q = Hw - bvec (the
    gradient, length K). ``"residual"``: F(w) = |A w - y|^2/(2n) + l2|w|^2/2 with ``At = A^T``
    (K, n), and the state is r = A w - y (length n); cheaper when n < K, as no K x K block is
    formed (celer's and skglm's inner solver). ``"sparse"``: the residual form with each column
    held as its non-zeros (``rows``, ``vals``: (K, L), zero-padded) and its implicit centring
    (``mean``; ``colsum`` the uncentred column sums): a coordinate costs O(L), not O(n). Its
    state is (r_s, s, sum(r_s)) with the residual r = r_s - s, so that centring never makes an
    update dense; uncentred (``centred`` False, mean 0) s stays 0 and sum(r_s) is not kept up
    (a loop step of the sweeps then has two reductions fewer). The row indices are never
    negative: their gathers and scatters skip NumPy's wrapping (``wrap_negative_indices``),
    which would cost a select per loop step. ``l2`` is a scalar or per coordinate (the logistic
    models' unpenalized intercept); ``diag`` is F's Hessian diagonal; a zero entry holds the
    coordinate at zero (padding, screened features).
    """

    form: str
    diag: jax.Array
    H: Any = None
    bvec: Any = None
    At: Any = None
    rows: Any = None
    vals: Any = None
    mean: Any = None
    colsum: Any = None
    y: Any = None
    n: Any = None
    l2: Any = None
    span: int = 1  # sparse form: the most columns of a row-disjoint block (_block_span)
    centred: bool = True  # sparse form: False when ``mean`` is zero (the state's s stays 0)


def _entry(l2, j):
    """``l2[j]`` for per-coordinate strengths, ``l2`` itself for a scalar."""
    return l2[j] if jnp.ndim(l2) else l2


def _block_state(blk: _Block, w):
    if blk.form == "gram":
        return blk.H @ w - blk.bvec
    if blk.form == "residual":
        return w @ blk.At - blk.y  # not At.T @ w: see _rmatvec
    moved = blk.vals * w[:, None]
    r = jnp.zeros_like(blk.y).at[blk.rows].add(moved, mode="drop", wrap_negative_indices=False)
    r = r - blk.y
    return r, jnp.dot(blk.mean, w), jnp.sum(r)


def _block_grad(blk: _Block, w, st):
    if blk.form == "gram":
        return st
    if blk.form == "residual":
        return blk.At @ st / blk.n + blk.l2 * w
    r, s, total = st
    # (a_j - m_j 1) . (r_s - s 1) = a_j . r_s - s colsum_j - m_j (sum(r_s) - n s)
    r_rows = r.at[blk.rows].get(mode="clip", wrap_negative_indices=False)
    xr = jnp.sum(blk.vals * r_rows, axis=1) - s * blk.colsum
    return (xr - blk.mean * (total - blk.n * s)) / blk.n + blk.l2 * w


def _residual_terms(blk: _Block, st):
    """|r|^2 and r . y for the residual forms."""
    if blk.form == "residual":
        return jnp.dot(st, st), jnp.dot(st, blk.y)
    r, s, total = st
    return (
        jnp.dot(r, r) - 2 * s * total + blk.n * s**2,
        jnp.dot(r, blk.y) - s * jnp.sum(blk.y),
    )


def _block_product(blk: _Block, st):
    """A w (centred columns) from a residual form's state: its residual plus y."""
    if blk.form == "residual":
        return st + blk.y
    r, s, _ = st
    return r - s + blk.y


def _block_smooth(blk: _Block, w, st):
    if blk.form == "gram":
        return 0.5 * jnp.dot(w, st - blk.bvec)
    return _residual_terms(blk, st)[0] / (2 * blk.n) + jnp.sum(blk.l2 * w * w) / 2


def _cholesky_solve(A, b, count):
    """Solves A x = b for A SPD on its leading ``count`` (traced) rows and columns, zero elsewhere.

    The system is completed by the identity outside that block and factored by LAPACK (cuSOLVER
    on GPU): 10-30x faster than a Cholesky loop written with XLA operations, which copies the
    loop-carried matrix at every column. A singular block gives non-finite values, which the
    caller rejects.
    """
    valid = jnp.arange(b.shape[0]) < count
    A = jnp.where(valid[:, None] & valid[None, :], A, 0.0) + jnp.diag(jnp.where(valid, 0.0, 1.0))
    x = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(A), jnp.where(valid, b, 0.0))
    return jnp.where(valid, x, 0.0)


def _newton_cap(blk: _Block, size: int) -> int:
    """The static block size of :func:`_block_newton` for a working set of ``size``."""
    if blk.form == "gram":
        return min(size, _NEWTON_MAX)
    n = blk.y.shape[0]  # bounded as if forming H_SS cost cap^2 n multiply-adds (dense)
    return max(1, min(size, n, _NEWTON_MAX, math.isqrt(_NEWTON_WORK // n)))


def _newton_depth(blk: _Block) -> int:
    """The multiply-adds per entry of H_SS in :func:`_block_newton`: n, or a sparse column's
    L (its width): a sparse support step costs cap^2 L + cap^3 / 3, not cap^2 n."""
    return blk.y.shape[0] if blk.form == "residual" else blk.rows.shape[1]


def _centred_gram(raw, mean, colsum, n):
    """(a_i - m_i 1) . (a_j - m_j 1) = a_i . a_j - m_i colsum_j - m_j colsum_i + n m_i m_j, for
    the Gram entries ``raw`` (..., B, B) of uncentred sparse columns with means ``mean``."""
    cross = mean[..., :, None] * colsum[..., None, :]
    return raw - cross - jnp.swapaxes(cross, -1, -2) + n * mean[..., :, None] * mean[..., None, :]


def _block_newton(blk: _Block, w, lam, cap):
    """The exact minimizer on the support S of w with its signs fixed, then a descent step to it.

    The support is gathered into a block of static size ``cap`` (:func:`_newton_cap`; at
    most n in the residual forms, as a support larger than n makes H_SS singular),
    H_SS x_S = bvec_S - lam_S sign(w_S) is solved,
    and the step goes from w towards x only as far as the first coordinate that would change
    sign (set to 0): the objective is the smooth quadratic on that segment, so the step always
    descends. The support must fit the block.
    """
    on = w != 0
    count = jnp.sum(on)
    gram = blk.form == "gram"
    valid = jnp.arange(cap) < count
    slot = jnp.where(on, _prefix_sum(on) - 1, cap)  # the support, compacted (no sort)
    size = w.shape[0]  # the slots past the support: `size` where scattered (dropped) ...
    put = (
        jnp.full((cap,), size, jnp.int32)
        .at[slot]
        .set(jnp.arange(size, dtype=jnp.int32), mode="drop")
    )
    sel = jnp.minimum(put, size - 1)  # ... and a valid index where gathered (masked)
    if gram:
        Hs = blk.H[sel][:, sel]
        bs = blk.bvec[sel]
    else:
        l2 = jnp.diag(jnp.broadcast_to(_entry(blk.l2, sel), (cap,)))
        if blk.form == "residual":
            As = blk.At[sel]  # (cap, n)
            Hs = As @ As.T / blk.n + l2
            bs = As @ blk.y / blk.n
        else:  # A_S^T A_S from the non-zeros: row i of it gathers the rows of A_S that a_i hits
            rows, vals = blk.rows[sel], jnp.where(valid[:, None], blk.vals[sel], 0.0)
            dense = jnp.zeros((blk.y.shape[0], cap), w.dtype)
            dense = dense.at[rows, jnp.arange(cap)[:, None]].add(vals, mode="drop")  # A_S, (n, cap)
            raw = jnp.einsum("il,ilc->ic", vals, dense.at[rows].get(mode="clip"))
            mean, colsum = blk.mean[sel], blk.colsum[sel]
            Hs = _centred_gram(raw, mean, colsum, blk.n) / blk.n + l2
            yr = blk.y.at[rows].get(mode="clip")
            bs = (jnp.sum(vals * yr, axis=1) - mean * jnp.sum(blk.y)) / blk.n
    Hs = jnp.where(valid[:, None] & valid[None, :], Hs, 0.0)
    rhs = jnp.where(valid, bs - lam[sel] * jnp.sign(w[sel]), 0.0)
    xs = _cholesky_solve(Hs, rhs, jnp.minimum(count, cap))
    target = jnp.zeros_like(w).at[put].set(xs, mode="drop")
    flips = on & (jnp.sign(target) != jnp.sign(w))
    cross = jnp.where(flips, w / jnp.where(flips, w - target, 1.0), 1.0)
    t = jnp.clip(jnp.min(cross), 0.0, 1.0)
    return jnp.where(flips & (cross <= t), 0.0, w + t * (target - w))


def _couplings(blk: _Block, starts: jax.Array, B: int) -> jax.Array:
    """The Gram blocks (len(starts), B, B) of the B coordinates from each start (residual forms):
    how updating one coordinate of a block moves the gradients of the others."""
    at = starts[:, None] + jnp.arange(B)
    if blk.form == "residual":
        A = blk.At[at]  # (blocks, B, n)
        return jnp.einsum("kbn,kcn->kbc", A, A) / blk.n
    rows, vals = blk.rows[at], blk.vals[at]  # (blocks, B, L)
    width, n_rows = rows.shape[-1], blk.y.shape[0]
    pairs = [(i, j) for i in range(B) for j in range(i)]  # only j < i is read
    if width * width <= n_rows:  # the rows two columns share, by comparing their rows

        def compare(slot, acc):  # one non-zero of each column j against all of column i's
            return tuple(
                total
                + vals[:, j, slot]
                * jnp.sum(jnp.where(rows[:, i] == rows[:, j, slot, None], vals[:, i], 0.0), axis=1)
                for (i, j), total in zip(pairs, acc, strict=True)
            )

        # a loop over the slots, not one (blocks, L, L) comparison per pair: that one is
        # materialised (6 x 10 MB for 20000 features of 16 non-zeros, in every call's buffer)
        zero = jnp.zeros(at.shape[:1], vals.dtype)
        shared = jax.lax.fori_loop(0, width, compare, tuple(zero for _ in pairs))
    else:  # by densifying the block's columns
        dense = jnp.zeros(at.shape + (n_rows,), vals.dtype)
        block, slot = jnp.meshgrid(jnp.arange(at.shape[0]), jnp.arange(B), indexing="ij")
        dense = dense.at[block[..., None], slot[..., None], rows].add(vals, mode="drop")
        shared = [jnp.sum(dense[:, i] * dense[:, j], axis=1) for i, j in pairs]
    raw = jnp.zeros(at.shape + (B,), vals.dtype)
    for (i, j), value in zip(pairs, shared, strict=True):
        raw = raw.at[:, i, j].set(value)
    return _centred_gram(raw, blk.mean[at], blk.colsum[at], blk.n) / blk.n


def _prefix_sum(x: jax.Array) -> jax.Array:
    """The inclusive prefix sums (int32) of a 1-D mask or of counts below 2^18, in runs of
    ``_RUN``: each run's by one product with a triangular matrix of ones (exact: sums below
    2^24 in float32), the runs' offsets by a cumsum of one total per run. XLA's CPU cumsum is
    a reduce-window, 2-3x slower; an associative scan is as fast but costs ~2 s more to compile
    the solver (2000 x 20000 sparse: 16 prefix sums per working-set capacity)."""
    n = x.shape[0]
    runs = -(-n // _RUN)
    X = jnp.pad(x.astype(jnp.float32), (0, runs * _RUN - n)).reshape(runs, _RUN)
    upper = jnp.triu(jnp.ones((_RUN, _RUN), jnp.float32))
    within = jnp.dot(X, upper, precision=jax.lax.Precision.HIGHEST).astype(jnp.int32)
    totals = within[:, -1]
    return (within + (jnp.cumsum(totals) - totals)[:, None]).reshape(-1)[:n]


def _disjoint_blocks(rows: jax.Array, used: jax.Array, live: jax.Array, n_rows: int, B: int):
    """The ``live`` coordinates of sparse columns (rows ``rows`` where ``used``, (K, L), of
    ``n_rows``) in blocks of at most B, no two columns of a block sharing a row, so that a
    block's coordinate updates are independent of one another.

    Each of ``_BLOCK_ROUNDS`` rounds (:func:`_placement_rounds`) keeps, in chunks of B of the
    coordinates still pending, the columns that come first in their chunk in every row they
    hit; the others wait for the next round, and those left after the last go one per block.
    No sort and no loop over coordinates. The first round leaves ~15% pending (2048 columns of
    16 slots, 1304 live, into blocks of 32: 201): the later rounds run on those alone,
    compacted into K / 4 slots, so that six rounds cost less than three did at full size
    (0.40 vs 0.50 ms, 53 blocks instead of 71; 20 epochs on those 1304: 2.5 vs 4.1 ms).
    Returns ``(order, starts, lens, count)``: block i < count is
    ``order[starts[i]:starts[i] + lens[i]]``; ``order`` lists the live coordinates, then K.
    """
    rows, used = jnp.asarray(rows), jnp.asarray(used)
    K = rows.shape[0]
    at = jnp.arange(K, dtype=jnp.int32)
    compact = K >= 8 * B  # K / 4 slots hold two chunks or more
    first = 1 if compact else _BLOCK_ROUNDS
    most = K + _BLOCK_ROUNDS * -(-K // B)  # blocks: one per column, plus hashing's empties
    zeros = jnp.zeros((most,), jnp.int32)
    blocks = (zeros, zeros, jnp.int32(0), jnp.int32(0))  # starts, lens, count, placed
    pending, pos, blocks = _placement_rounds(rows, used, live, n_rows, B, first, blocks)
    if compact:  # the rest, up to K / 4 of them, in a smaller copy (any more: one per block)
        slots = K // 4
        rank = _prefix_sum(pending) - 1
        ids = (
            jnp.full((slots,), K, jnp.int32)
            .at[jnp.where(pending, rank, slots)]
            .set(at, mode="drop")
        )
        valid = ids < K
        sub_rows = rows.at[ids].get(mode="fill", fill_value=n_rows)
        sub_used = used.at[ids].get(mode="fill", fill_value=False)
        rest, sub_pos, blocks = _placement_rounds(
            sub_rows, sub_used, valid, n_rows, B, _BLOCK_ROUNDS - first, blocks
        )
        done = valid & ~rest
        pos = pos.at[jnp.where(done, ids, K)].set(sub_pos, mode="drop")
        pending = pending.at[jnp.where(done, ids, K)].set(False, mode="drop")
    starts, lens, count, placed = blocks
    rank = _prefix_sum(pending) - 1  # the rest: one block each
    pos = jnp.where(pending, placed + rank, pos)
    block = jnp.where(pending, count + rank, most)
    starts = starts.at[block].set(placed + rank, mode="drop")
    lens = lens.at[block].set(1, mode="drop")
    order = jnp.full((K,), K, jnp.int32).at[pos].set(at, mode="drop")
    return order, starts, lens, count + jnp.sum(pending, dtype=jnp.int32)


def _placement_rounds(rows, used, pending, n_rows: int, B: int, rounds: int, blocks):
    """``rounds`` rounds of :func:`_disjoint_blocks` on the columns ``rows`` (K, L): each cuts
    the ``pending`` ones, in order, into chunks of B and places in each chunk the columns that
    come first in the chunk in every row they hit (a table of (chunk, row) entries, hashed when
    it would be large: a collision only defers a column), as new blocks after ``blocks`` =
    (starts, lens, count, placed). Returns (pending, the positions of the placed columns in
    the block order (K elsewhere), blocks)."""
    K = rows.shape[0]
    chunks = -(-K // B)
    direct = chunks * n_rows <= _BLOCK_TABLE
    size = chunks * n_rows if direct else max(_BLOCK_TABLE, 8 * rows.size)
    at = jnp.arange(K, dtype=jnp.int32)
    outside = blocks[0].shape[0]  # a block index past the end: dropped

    def one_round(_, carry):
        pending, pos, (starts, lens, count, placed) = carry
        rank = _prefix_sum(pending) - 1
        chunk = (rank // B)[:, None]
        if direct:
            key = chunk * n_rows + rows
        else:  # Knuth's multiplicative hash of (chunk, row), wrapping in uint32
            mixed = chunk.astype(jnp.uint32) * jnp.uint32(2654435761) + rows.astype(jnp.uint32)
            key = (mixed % jnp.uint32(size)).astype(jnp.int32)
        key = jnp.where(used & pending[:, None], key, size)  # size: no entry (dropped)
        first = (
            jnp.full((size,), K, jnp.int32)
            .at[key]
            .min(jnp.broadcast_to(at[:, None], key.shape), mode="drop")
        )
        mine = first.at[key].get(mode="fill", fill_value=K) == at[:, None]
        ok = pending & jnp.all(mine | (key == size), axis=1)
        pos = jnp.where(ok, placed + _prefix_sum(ok) - 1, pos)
        taken = jnp.zeros((K,), jnp.int32).at[jnp.where(ok, chunk[:, 0], K)].add(1, mode="drop")
        made = (jnp.sum(pending, dtype=jnp.int32) + B - 1) // B
        block = jnp.where(at < made, count + at, outside)
        starts = starts.at[block].set(placed + _prefix_sum(taken) - taken, mode="drop")
        lens = lens.at[block].set(taken, mode="drop")
        placed = placed + jnp.sum(taken, dtype=jnp.int32)
        return pending & ~ok, pos, (starts, lens, count + made, placed)

    init = (pending, jnp.full((K,), K, jnp.int32), blocks)
    return jax.lax.fori_loop(0, rounds, one_round, init)


def _steps(diag, live, lam):
    """The coordinate steps 1 / diag and soft thresholds lam / diag (0 off ``live``)."""
    inv = jnp.where(live, 1.0 / jnp.where(live, diag, 1.0), 0.0)
    return inv, lam * inv


def _coupled_sweep(blk: _Block, live, lam, m):
    """One cyclic coordinate-descent epoch, as ``(w, st) -> (w, st)``.

    The coordinates are visited in blocks of ``_UNROLL``: the block's gradients in one product,
    then its coordinates in turn, each gradient moved by the earlier ones' updates through the
    block's Gram entries (:func:`_couplings`), then one update of the state. The iterates are
    those of one-at-a-time cyclic descent; XLA's per-operation cost on CPU (~0.1 us) is paid
    per block, not per coordinate (2-4x faster epochs). The last block is aligned to the end,
    so it revisits a few coordinates when ``_UNROLL`` does not divide the size.
    """
    size = live.shape[0]
    inv, thresh = _steps(blk.diag, live, lam)
    unroll = min(_UNROLL, size)
    all_blocks = -(-size // unroll)
    blocks = all_blocks if m is None else (m + unroll - 1) // unroll
    starts = jnp.minimum(jnp.arange(all_blocks) * unroll, size - unroll)
    coupling = None if blk.form == "gram" else _couplings(blk, starts, unroll)

    def block(i, carry):
        w, st = carry
        start = starts[i]
        old = jax.lax.dynamic_slice(w, (start,), (unroll,))
        l2 = 0.0 if blk.form == "gram" else blk.l2
        l2 = jax.lax.dynamic_slice(l2, (start,), (unroll,)) if jnp.ndim(l2) else l2
        if blk.form == "gram":
            rows_H = jax.lax.dynamic_slice(blk.H, (start, 0), (unroll, size))
            cpl = jax.lax.dynamic_slice(rows_H, (0, start), (unroll, unroll))
            g = jax.lax.dynamic_slice(st, (start,), (unroll,))
        elif blk.form == "residual":
            At = jax.lax.dynamic_slice(blk.At, (start, 0), (unroll, blk.At.shape[1]))
            cpl = coupling[i]
            g = At @ st / blk.n + l2 * old
        else:
            r, s, total = st
            width = blk.rows.shape[1]
            rows = jax.lax.dynamic_slice(blk.rows, (start, 0), (unroll, width))
            vals = jax.lax.dynamic_slice(blk.vals, (start, 0), (unroll, width))
            cpl = coupling[i]
            g = jnp.sum(vals * r.at[rows].get(mode="clip", wrap_negative_indices=False), axis=1)
            if blk.centred:
                mean = jax.lax.dynamic_slice(blk.mean, (start,), (unroll,))
                colsum = jax.lax.dynamic_slice(blk.colsum, (start,), (unroll,))
                g = g - s * colsum - mean * (total - blk.n * s)
            g = g / blk.n + l2 * old
        live_b = jax.lax.dynamic_slice(live, (start,), (unroll,))
        inv_b = jax.lax.dynamic_slice(inv, (start,), (unroll,))
        thr_b = jax.lax.dynamic_slice(thresh, (start,), (unroll,))
        new, deltas = [], []
        for u in range(unroll):
            gu = g[u]
            for k in range(u):  # the gradient moved by the block's earlier updates
                gu = gu + cpl[u, k] * deltas[k]
            value = jnp.where(live_b[u], _soft(old[u] - gu * inv_b[u], thr_b[u]), 0.0)
            new.append(value)
            deltas.append(value - old[u])
        delta = jnp.stack(deltas)
        if blk.form == "sparse":
            r = r.at[rows].add(vals * delta[:, None], mode="drop", wrap_negative_indices=False)
            if blk.centred:  # uncentred, s stays 0 and the sum of r is never read
                s, total = s + jnp.dot(mean, delta), total + jnp.dot(colsum, delta)
            st = (r, s, total)
        else:  # as one fused loop: a dot product here is a separate, slower, XLA call on CPU
            moved = rows_H if blk.form == "gram" else At
            st = st + sum(delta[u] * moved[u] for u in range(unroll))
        return jax.lax.dynamic_update_slice(w, jnp.stack(new), (start,)), st

    return lambda w, st: jax.lax.fori_loop(0, blocks, block, (w, st))


def _disjoint_sweep(blk: _Block, live, lam, m):
    """One coordinate-descent epoch of a sparse block, as ``(w, st) -> (w, st)``.

    The columns are cut into blocks of at most ``blk.span`` no two columns of which share a
    row (:func:`_disjoint_blocks`, once per working set), so each loop step updates a whole
    block at once from one gather of the residual and one scatter into it: for uncentred
    columns these are exactly the iterates of cyclic descent in that order. Centred columns
    (mean = colsum / n, y centred) still share their means: the step is then exact block
    descent on min over (w, s) of |X w - s 1 - y|^2 / (2n) + ..., whose minimum over the
    intercept s is the centred objective: the block minimized with s held (the uncentred
    curvature a_j . a_j / n, as its columns are then independent), then s, optimal at
    s = mean . w, moved with it. Each step descends on the centred objective.
    """
    K = blk.rows.shape[0]
    n_rows = blk.y.shape[0]
    B = min(K, blk.span)
    visit = live if m is None else live & (jnp.arange(K) < m)
    order, starts, lens, count = _disjoint_blocks(blk.rows, blk.vals != 0, visit, n_rows, B)
    # a_j . a_j = |a_j - m_j 1|^2 + 2 m_j colsum_j - n m_j^2
    inv, thresh = _steps(blk.diag + blk.mean * (2 * blk.colsum / blk.n - blk.mean), live, lam)
    ext = jnp.concatenate([order, jnp.full((B,), K, jnp.int32)])  # K: a coordinate of no effect

    def permuted(x):  # the block-ordered copy, padded by B entries of the no-effect coordinate
        return jnp.concatenate([x, jnp.zeros((1,) + x.shape[1:], x.dtype)])[ext]

    centring = (blk.mean, blk.colsum) if blk.centred else ()
    per_coordinate = [permuted(x) for x in (blk.vals, inv, thresh, *centring)]
    rows = permuted(blk.rows)
    l2 = permuted(blk.l2) if jnp.ndim(blk.l2) else blk.l2
    lane = jnp.arange(B)

    def sweep(w, st):
        start_w = permuted(w)

        def block(i, carry):
            out, (r, s, total) = carry

            def take(x):
                return jax.lax.dynamic_slice_in_dim(x, starts[i], B)

            # a block's values are read from the epoch's start (no earlier block moved them)
            # and written to a separate buffer: XLA then updates it in place, without copies
            R, old = take(rows), take(start_w)
            V, ib, tb = (take(x) for x in per_coordinate[:3])
            g = jnp.sum(V * r.at[R].get(mode="clip", wrap_negative_indices=False), axis=1)
            if blk.centred:
                mb, cb = (take(x) for x in per_coordinate[3:])
                g = g - s * cb - mb * (total - blk.n * s)
            g = g / blk.n + (take(l2) if jnp.ndim(l2) else l2) * old
            new = jnp.where(lane < lens[i], _soft(old - g * ib, tb), old)
            delta = new - old
            r = r.at[R].add(V * delta[:, None], mode="drop", wrap_negative_indices=False)
            if blk.centred:  # uncentred, s stays 0 and the sum of r is never read
                s, total = s + jnp.sum(mb * delta), total + jnp.sum(cb * delta)
            st = (r, s, total)
            return jax.lax.dynamic_update_slice_in_dim(out, new, starts[i], 0), st

        w_o, st = jax.lax.fori_loop(0, count, block, (start_w, st))
        return jnp.where(live, w.at[ext].set(w_o, mode="drop"), 0.0), st

    return sweep


def _block_span(n: int, nnz: int, p: int) -> int:
    """The most columns of a row-disjoint sparse block (:func:`_disjoint_sweep`), from X's shape
    and stored entries: B columns of nu = nnz / p entries in n rows collide in about
    B^2 nu^2 / (2n) pairs, so B <= n / (2 nu^2) keeps a quarter of them or fewer waiting for
    another round; at most ``_SPARSE_SPAN``."""
    nu = max(nnz / max(p, 1), 1.0)
    fit = max(1.0, n / (2 * nu * nu))
    return min(_SPARSE_SPAN, 1 << int(math.log2(fit)))


def _cd(blk: _Block, w, lam, stop, max_epochs, m=None):
    """Cyclic coordinate descent on a :class:`_Block`, Anderson-accelerated. Returns (w, epochs).

    An epoch is :func:`_coupled_sweep` or, for a sparse block of columns so sparse that
    ``_DISJOINT_FROM`` of them rarely share a row, :func:`_disjoint_sweep`.
    Only the first ``m`` coordinates (all when None; traced) are visited; the others must have
    a zero ``diag`` entry (and zero coupling), so they stay at zero. Every ``_ANDERSON + 1``
    epochs the last iterates are extrapolated (Anderson acceleration, as in skglm: the affine
    combination of the iterates whose combined differences are smallest) and, when the support
    fits its block, the exact point on the support is tried too (:func:`_block_newton`); a
    candidate is kept only when it lowers the objective, so the iteration stays monotone.
    ``stop(w, state)`` says when the block is solved. Returns (w, epochs, the state at w).
    """
    size = w.shape[0]
    live = blk.diag > 0
    disjoint = blk.form == "sparse" and blk.span >= _DISJOINT_FROM
    sweep = (_disjoint_sweep if disjoint else _coupled_sweep)(blk, live, lam, m)

    def objective(w, st):
        return _block_smooth(blk, w, st) + jnp.sum(lam * jnp.abs(w))

    def extrapolate(w, st, hist):
        U = jnp.diff(hist, axis=0)  # (M, size)
        C = U @ U.T
        C = C + (1e-12 * jnp.trace(C) + jnp.finfo(C.dtype).tiny) * jnp.eye(_ANDERSON, dtype=C.dtype)
        z = jnp.linalg.solve(C, jnp.ones((_ANDERSON,), C.dtype))
        count = jnp.sum(w != 0)
        cap = _newton_cap(blk, size)
        fits = (count > 0) & (count <= cap)
        if blk.form != "gram" and cap * cap * max(_newton_depth(blk), cap // 3) > _NEWTON_WORK // 8:
            fits = fits & jnp.all(jnp.sign(hist) == jnp.sign(w))  # costly: once signs settle
        solve = functools.partial(_block_newton, blk, lam=lam, cap=cap)
        newton = jax.lax.cond(fits, solve, lambda w: w, w)
        # both candidates' states and objectives in one batched evaluation (one copy to compile)
        cands = jnp.stack([(z / jnp.sum(z)) @ hist[1:], newton])
        cand_st = jax.vmap(functools.partial(_block_state, blk))(cands)
        vals = jax.vmap(objective)(cands, cand_st)
        vals = jnp.where(jnp.all(jnp.isfinite(cands), axis=1), vals, jnp.inf)
        pick = jnp.argmin(vals)  # the first of equal values, as a strict comparison in turn
        better = vals[pick] < objective(w, st)
        best_st = jax.tree.map(lambda c, s: jnp.where(better, c[pick], s), cand_st, st)
        return jnp.where(better, cands[pick], w), best_st

    def checked(carry):  # the loop's condition: the block's stopping test is traced once
        w, st, epochs, _, unchanged = carry
        if blk.form == "gram":  # the gap from the gradient state: cheap
            solved = jnp.asarray(stop(w, st))
        else:  # in the residual forms the gap costs a gradient (up to a fifth of an epoch)
            last = epochs - 1
            due = (epochs == 0) | (last % _CHECK_EVERY == _CHECK_EVERY - 1)
            due = due | (last % (_ANDERSON + 1) == _ANDERSON)
            solved = jax.lax.cond(due, stop, lambda w, st: jnp.asarray(False), w, st)
        return ~solved & ~unchanged & (epochs < max_epochs)

    def body(carry):
        w_prev, st, epochs, hist, _ = carry
        w, st = sweep(w_prev, st)
        slot = epochs % (_ANDERSON + 1)
        hist = hist.at[slot].set(w)
        w, st = jax.lax.cond(slot == _ANDERSON, extrapolate, lambda w, st, _: (w, st), w, st, hist)
        # an epoch that changes nothing is at the block's minimum
        return w, st, epochs + 1, hist, jnp.all(w == w_prev)

    st0 = _block_state(blk, w)
    hist0 = jnp.zeros((_ANDERSON + 1, size), w.dtype)
    init = (w, st0, jnp.int32(0), hist0, jnp.asarray(False))
    w, st, epochs, _, _ = jax.lax.while_loop(checked, body, init)
    return w, epochs, st


def _ws_gap_quadratic(lam, w, grad, fval, uy, l2w2):
    """Duality gap of the working-set lasso (squared loss) from its gradient and residual terms.

    ``fval = |Aw - y|^2/(2n)``, ``uy = (Aw - y).y / n``, ``l2w2 = l2 |w|^2``.
    """
    primal = fval + l2w2 / 2 + jnp.sum(lam * jnp.abs(w))
    absg = jnp.abs(grad)
    ratio = jnp.where((lam > 0) & (absg > lam), lam / jnp.where(absg > 0, absg, 1.0), 1.0)
    ratio = jnp.where((lam == 0) & (absg > 0), 1.0, ratio)
    s = jnp.minimum(1.0, jnp.min(ratio, initial=1.0))
    dual = -(s**2 * fval + s * uy) - s**2 * l2w2 / 2
    return primal - dual, primal


def _inner_target(cfg: _Config, d: _Data, target, epoch_cost: int) -> jax.Array:
    """The relative duality gap a working-set problem is solved to, from ``target`` = (tol, the
    outer relative gap) and the multiply-adds of one epoch on its block.

    When an epoch costs far less than the outer iteration's full gradient (Gram blocks with a
    large n), each block is solved to a fraction of tol: that saves outer iterations. When it
    costs about as much (p >> n, sparse X), the first working sets still miss part of the
    support, so their problems are solved only as far as the outer gap warrants (celer's rule,
    with the gap squared so that the target reaches tol fast once the support is found).
    Measured against a tol-fraction target everywhere (float64, 2-core CPU, median of 21):
    sparse 2000 x 20000: 135 -> 66 epochs, 95 -> 62 ms; L1 logistic 200 x 5000: 108 -> 49
    epochs; the loose target on 1000 x 100's Gram block instead: 2.3 -> 3.6 ms (more outer
    iterations), hence the cost test.
    """
    n, p = d.y.shape[0], d.colsq.shape[0]
    if cfg.use_gram:
        outer_cost = p * p
    elif cfg.sparse:
        outer_cost = d.X.data.shape[0]
    else:
        outer_cost = n * p
    tol, rel = target
    if outer_cost > _LOOSE_BELOW * epoch_cost:
        return _INNER_FRACTION * tol
    return _INNER_FRACTION * jnp.maximum(tol, rel**2)


def _inner_squared(cfg, d, w_ws, idx, keep, m, alpha, l2, c_ws, target, max_epochs):
    """The working-set lasso; coordinates outside ``keep`` are held at zero.

    A sparse X keeps its columns sparse (the ``"sparse"`` form). A dense X uses the Gram form
    when the block is small next to n (or the full Gram matrix is precomputed), and the
    residual form otherwise (p >> n: no K x K block).
    """
    lam = alpha * c_ws
    keepf = keep.astype(w_ws.dtype)
    K = idx.shape[0]
    n_rows = d.y.shape[0]
    if not cfg.sparse and (cfg.use_gram or K <= n_rows):
        if cfg.use_gram:
            G, Xty, yty = d.gram
            H = G[idx][:, idx]
            bvec = Xty[idx]
            const = yty / 2
        else:
            A = _columns(d, idx, cfg.sparse)
            H = A.T @ A / d.n
            bvec = d.y @ A / d.n
            const = jnp.dot(d.y, d.y) / (2 * d.n)
        H = (H + l2 * jnp.eye(K, dtype=H.dtype)) * keepf[:, None] * keepf[None, :]
        bvec = bvec * keepf
        blk = _Block("gram", jnp.diagonal(H), H=H, bvec=bvec)
        target = _inner_target(cfg, d, target, K * K)

        def stop(w, grad):  # the state is the gradient
            l2w2 = l2 * jnp.dot(w, w)
            wb = jnp.dot(w, bvec)
            whw = jnp.dot(w, grad) + wb  # grad = Hw - bvec
            fval = jnp.maximum(0.5 * (whw - l2w2) - wb + const, 0.0)
            gap, primal = _ws_gap_quadratic(lam, w, grad, fval, wb - 2 * const, l2w2)
            return gap <= target * primal

    else:
        diag = jnp.where(keep, d.colsq[idx] / d.n + l2, 0.0)
        if cfg.sparse:
            rows, vals = _sparse_columns(d, idx, keep, cfg.col_nnz)
            blk = _Block(
                "sparse", diag, rows=rows, vals=vals, mean=d.xmean[idx] * keepf,
                colsum=d.csc[3][idx] * keepf, y=d.y, n=d.n, l2=l2,
                span=_block_span(n_rows, d.X.data.shape[0], d.xmean.shape[0]),
                centred=cfg.center,
            )  # fmt: skip
        else:
            At = (_columns(d, idx, cfg.sparse) * keepf).T  # (K, n)
            blk = _Block("residual", diag, At=At, y=d.y, n=d.n, l2=l2)
        target = _inner_target(cfg, d, target, K * (cfg.col_nnz if cfg.sparse else n_rows))

        def stop(w, st):  # the state holds the residual
            grad = _block_grad(blk, w, st)
            rr, ry = _residual_terms(blk, st)
            l2w2 = l2 * jnp.dot(w, w)
            gap, primal = _ws_gap_quadratic(lam, w, grad, rr / (2 * d.n), ry / d.n, l2w2)
            return gap <= target * primal

    w_new, epochs, st = _cd(blk, w_ws * keepf, lam, stop, max_epochs, m)
    if blk.form != "gram":
        z = _block_product(blk, st)  # the residual kept up by the sweeps: X w with no product
    elif cfg.use_gram:
        z = jnp.zeros((0,), w_ws.dtype)  # the certificate reads G w, not X w
    else:
        z = A @ w_new
    return w_new, jnp.zeros((), w_ws.dtype), epochs, z


def _inner_logistic(cfg, d, w_ws, b, idx, keep, m, alpha, l2, c_ws, target, max_epochs):
    """Proximal Newton on the working set; each quadratic model solved by coordinate descent on
    its Gram block, or in residual form when the block is wider than n (p >> n: no K x K
    block, O(n) per coordinate)."""
    dtype = w_ws.dtype
    keepf = keep.astype(dtype)
    A = _columns(d, idx, cfg.sparse) * keepf  # (n, K); columns outside ``keep`` held at zero
    x = w_ws * keepf
    lam = alpha * c_ws
    l2vec = jnp.full(x.shape, l2, dtype)
    live = keep
    if cfg.intercept:  # first: coordinate descent visits the first m coordinates only
        zero = jnp.zeros((1,), dtype)
        A = jnp.concatenate([jnp.ones((A.shape[0], 1), dtype), A], axis=1)
        x = jnp.concatenate([b[None], x])
        lam = jnp.concatenate([zero, lam])
        l2vec = jnp.concatenate([zero, l2vec])
        live = jnp.concatenate([jnp.ones((1,), bool), keep])
        m = m + 1
    y, n = d.y, d.n
    residual = A.shape[1] > A.shape[0]
    target = _inner_target(cfg, d, target, A.shape[1] * min(A.shape))
    At = A.T

    def objective(x, z):
        return (
            _loss_value("logistic", z, y, n) + jnp.sum(l2vec * x**2) / 2 + jnp.sum(lam * jnp.abs(x))
        )

    def ws_gap(x, z):
        u = _loss_grad("logistic", z, y, n)
        g = u @ A + l2vec * x
        absg = jnp.abs(g)
        ratio = jnp.where((lam > 0) & (absg > lam), lam / jnp.where(absg > 0, absg, 1.0), 1.0)
        s = jnp.minimum(1.0, jnp.min(ratio, initial=1.0))
        primal = objective(x, z)
        dual = -_conjugate("logistic", s * u, y, n) - s**2 * jnp.sum(l2vec * x**2) / 2
        return primal - dual, primal, g

    def body(carry):  # (primal, g) of x carried from the previous step's gap: one copy of it
        x, z, it, epochs, _, primal, g = carry
        h = jax.nn.sigmoid(y * z) * jax.nn.sigmoid(-y * z) / n
        if residual:
            # the model's curvature A' diag(h) A as |B dx|^2, B = diag(sqrt h) A, and its
            # gradient at x as B'(B x - v) = A'u with v = sqrt(h) z - u / sqrt(h)
            root = jnp.sqrt(jnp.maximum(h, 1e-12 * jnp.max(h) + jnp.finfo(dtype).tiny))
            diag = jnp.where(live, root**2 @ A**2 + l2vec, 0.0)
            v = root * z - _loss_grad("logistic", z, y, n) / root
            blk = _Block("residual", diag, At=(A * root[:, None]).T, y=v, n=1.0, l2=l2vec)
        else:
            H = (At * h) @ A + jnp.diag(l2vec)  # At once: (A * h)^T would be copied each time
            H = H + 1e-12 * jnp.eye(H.shape[0], dtype=H.dtype) * jnp.max(jnp.diagonal(H))
            blk = _Block("gram", jnp.diagonal(H), H=H, bvec=H @ x - g)
        viol0 = jnp.max(
            jnp.where(x != 0, jnp.abs(g + lam * jnp.sign(x)), jnp.maximum(jnp.abs(g) - lam, 0.0))
        )
        # the model's gradient is known to its rounding only: below that, stop (not max_epochs)
        floor = 4 * jnp.finfo(dtype).eps * (jnp.max(jnp.abs(g)) + jnp.max(lam))

        def stop(xx, st):
            q = _block_grad(blk, xx, st)
            viol = jnp.where(
                xx != 0, jnp.abs(q + lam * jnp.sign(xx)), jnp.maximum(jnp.abs(q) - lam, 0.0)
            )
            return jnp.max(viol) <= jnp.maximum(0.1 * viol0, floor)

        x_cd, e, _ = _cd(blk, x, lam, stop, max_epochs, m)
        dx = x_cd - x
        dz = A @ dx
        decrease = jnp.dot(g, dx) + jnp.sum(lam * (jnp.abs(x_cd) - jnp.abs(x)))

        def ls_cond(c):
            t, _, ok, k = c
            return (~ok) & (k < 30)

        def ls_body(c):
            t, _, _, k = c
            t = t * 0.5
            val = objective(x + t * dx, z + t * dz)
            return t, val, val <= primal + 1e-4 * t * decrease, k + 1

        val1 = objective(x_cd, z + dz)
        # a predicted decrease below the objective's rounding cannot be seen by the line
        # search: the full step is taken (the model is exact to that order), else it stalls
        unresolved = -decrease <= 16 * jnp.finfo(dtype).eps * jnp.abs(primal)
        first = (val1 <= primal + 1e-4 * decrease) | unresolved
        t, _, ok, _ = jax.lax.while_loop(ls_cond, ls_body, (jnp.ones((), x.dtype), val1, first, 0))
        t = jnp.where(ok, t, 0.0)
        x_new = x + t * dx
        z_new = z + t * dz
        gap, primal_new, g_new = ws_gap(x_new, z_new)
        done = (gap <= target * primal_new) | (t == 0)
        return x_new, z_new, it + 1, epochs + e, done, primal_new, g_new

    z0 = A @ x
    gap0, primal0, g0 = ws_gap(x, z0)
    x, z, _, epochs, *_ = jax.lax.while_loop(
        lambda c: (~c[4]) & (c[2] < cfg.max_newton),
        body,
        (x, z0, jnp.int32(0), jnp.int32(0), gap0 <= target * primal0, primal0, g0),
    )
    if cfg.intercept:  # z = A x holds the intercept's column
        return x[1:], x[0], epochs, z
    return x, b, epochs, z


# ---------------------------------------------------------------------------------------------
# the outer loop for one strength


def _order_key(x: jax.Array) -> jax.Array:
    """Unsigned integers ordered as the floats ``x`` (IEEE-754 bits, negatives reflected)."""
    bits = jax.lax.bitcast_convert_type(x, jnp.dtype(f"uint{8 * x.dtype.itemsize}"))
    sign = jnp.asarray(1 << (8 * x.dtype.itemsize - 1), bits.dtype)
    return jnp.where(bits & sign, ~bits, bits | sign)


def _smallest(score: jax.Array, size: jax.Array, K: int) -> jax.Array:
    """K distinct indices, the first ``size`` (traced, 1 <= size <= K) of them those of the
    ``size`` smallest scores rounded to bfloat16 (ties broken by index, in index order), the
    rest of any others.

    ``lax.top_k`` sorts all p scores on CPU (3.7 ms for p = 20000); for p above
    ``_SORT_BELOW`` the size-th smallest is found by bisection on the 16 bits of the rounded
    scores and compacted with prefix sums (~0.2 ms). A working set needs no finer ranking than
    bfloat16's 8 significant bits: 32 steps on float32 bits cost ~0.1 ms more per outer
    iteration (2000 x 20000 sparse: 0.95x the time with bfloat16, the same outer iterations).
    """
    p = score.shape[0]
    key = _order_key(score.astype(jnp.float32).astype(jnp.bfloat16))
    if p <= _SORT_BELOW:
        kth = jnp.sort(key)[size - 1]
    else:

        def bisect(_, bounds):  # the smallest t with #{key <= t} >= size lies in [lo, hi]
            lo, hi = bounds
            mid = lo + (hi - lo) // 2
            enough = jnp.sum(key <= mid) >= size
            return jnp.where(enough, lo, mid + 1), jnp.where(enough, mid, hi)

        top = jnp.asarray(np.iinfo(key.dtype).max, key.dtype)
        _, kth = jax.lax.fori_loop(0, 8 * key.dtype.itemsize, bisect, (jnp.zeros_like(top), top))
    less, tied = key < kth, key == kth
    picked = less | (tied & (_prefix_sum(tied) <= size - jnp.sum(less)))
    rank = _prefix_sum(picked)
    at = jnp.arange(p, dtype=jnp.int32)
    pos = jnp.where(picked, rank - 1, size + at - rank)
    return jnp.zeros((p,), jnp.int32).at[pos].set(at, unique_indices=True)[:K]


def _level_for(capacities: tuple, size: jax.Array) -> jax.Array:
    caps = jnp.asarray(capacities)
    return jnp.minimum(jnp.sum(caps < size), len(capacities) - 1).astype(jnp.int32)


def _solve_one(cfg: _Config, d: _Data, alpha, l2, c, tol, limits, w, b, size):
    p = w.shape[0]
    max_outer, max_epochs = limits
    pen = alpha * c

    def make_branch(K):
        def branch(operands):
            w, b, grad, screened, size, target = operands
            score = (pen - jnp.abs(grad)) / jnp.sqrt(jnp.where(d.colsq > 0, d.colsq, 1.0))
            score = jnp.where((w != 0) | (c == 0), -jnp.inf, score)
            score = jnp.where(screened, jnp.inf, score)
            idx = _smallest(score, size, K)  # the support, then the closest to entering
            keep = (jnp.arange(K) < size) & ~screened[idx]  # the working set: `size` of them
            w_ws = w[idx]
            if cfg.loss == "squared":
                w_ws, b_new, epochs, z = _inner_squared(
                    cfg, d, w_ws, idx, keep, size, alpha, l2, c[idx], target, max_epochs
                )
            else:
                w_ws, b_new, epochs, z = _inner_logistic(
                    cfg, d, w_ws, b, idx, keep, size, alpha, l2, c[idx], target, max_epochs
                )
            # the screened features are outside ``keep``: already zero, as z has them
            return jnp.zeros_like(w).at[idx].set(w_ws), b_new, epochs, z

        return branch

    branches = [make_branch(K) for K in cfg.capacities]

    # one body: certify the current point, then (unless done) solve a working-set problem; the
    # last pass only certifies, so the reported certificate always belongs to the returned w
    def body(st: _State):
        grad, scale, gap, primal, kkt, screened = _certify(
            cfg, d, st.w, st.z, alpha, l2, c, st.screened
        )
        done = (gap <= tol * primal) | (st.it >= max_outer)
        nnz = jnp.sum(st.w != 0) + jnp.sum(c == 0)
        # a sparse X's blocks cost O(K) to set up: there a working set its solution fills
        # (90% or more) grows four-fold, sparing outer iterations, each a pass over X
        growth = jnp.where(10 * nnz >= 9 * st.size, 4, 2) if cfg.sparse else 2
        size = jnp.maximum(st.size, growth * nnz)
        # no progress at all last time: the working set missed what matters, grow it
        stalled = (st.it > 0) & (gap >= st.prev_gap)
        size = jnp.minimum(jnp.where(stalled, 2 * size, size), p).astype(jnp.int32)
        level = _level_for(cfg.capacities, size)  # the smallest compiled capacity that holds it

        rel_gap = jnp.minimum(gap, primal) / jnp.where(primal > 0, primal, 1.0)
        target = (tol, rel_gap)  # see _inner_target

        def solve(_):
            return jax.lax.switch(level, branches, (st.w, st.b, grad, screened, size, target))

        def keep(_):
            return st.w, st.b, jnp.int32(0), st.z

        w_new, b_new, epochs, z = jax.lax.cond(done, keep, solve, None)
        return _State(
            w_new, b_new, jnp.where(done, st.size, size), st.it + (~done).astype(jnp.int32),
            st.inner + epochs, screened, z, grad, scale, gap, primal, kkt, gap, done,
        )  # fmt: skip

    z = jnp.zeros((0,), w.dtype) if cfg.use_gram else _matvec(d, w) + b  # then the inner's
    init = _State(
        w, b, size, jnp.int32(0), jnp.int32(0), jnp.zeros((p,), bool), z, jnp.zeros_like(w),
        jnp.ones((), w.dtype), jnp.asarray(jnp.inf, w.dtype), jnp.ones((), w.dtype),
        jnp.asarray(jnp.inf, w.dtype), jnp.asarray(jnp.inf, w.dtype), jnp.asarray(False),
    )  # fmt: skip
    st = jax.lax.while_loop(lambda st: ~st.done, body, init)
    info = LassoInfo(
        intercept=st.b,
        gap=st.gap,
        primal=st.primal,
        kkt=st.kkt,
        converged=st.gap <= tol * st.primal,
        num_outer=st.it,
        num_inner=st.inner,
        ws_size=st.size,
        num_screened=jnp.sum(st.screened).astype(jnp.int32),
    )
    return st.w, info, st.size


def _path(cfg: _Config, d: _Data, alphas, l2, c, tol, limits, w0, b0):
    def step(carry, alpha):
        w, b, size = carry
        w, info, size = _solve_one(cfg, d, alpha, l2, c, tol, limits, w, b, size)
        return (w, info.intercept, size), (w, info)

    first = jnp.int32(min(_FIRST_SIZE, w0.shape[0]))
    _, (W, infos) = jax.lax.scan(step, (w0, b0, first), alphas)
    return W, infos


@functools.partial(jax.jit, static_argnames=("cfg",))
def _cv_jit(cfg: _Config, X, y, train, alphas, l2, c, tol, limits):
    """Mean squared test error of every strength on every fold (folds vmapped)."""
    dtype = y.dtype

    def one_fold(mask):
        m = mask.astype(dtype)
        n_train = jnp.sum(m)
        xmean = (m @ X) / n_train
        ymean = jnp.dot(m, y) / n_train
        Xc = (X - xmean) * m[:, None]  # test rows become zero rows: they add nothing
        yc = (y - ymean) * m
        gram = None
        if cfg.use_gram:
            gram = (Xc.T @ Xc / n_train, yc @ Xc / n_train, jnp.dot(yc, yc) / n_train)
        d = _Data(Xc, yc, jnp.zeros_like(xmean), n_train, jnp.sum(Xc**2, axis=0), gram)
        p = X.shape[1]
        W, info = _path(cfg, d, alphas, l2, c, tol, limits, jnp.zeros((p,), dtype), ymean * 0)
        intercepts = ymean - W @ xmean
        pred = X @ W.T + intercepts  # (n, K)
        test = 1 - m
        mse = jnp.sum(test[:, None] * (y[:, None] - pred) ** 2, axis=0) / jnp.sum(test)
        return mse, info.converged

    return jax.vmap(one_fold)(train)


class LassoCVInfo(NamedTuple):
    """What :func:`lasso_cv` reports besides the chosen strength (JAX/NumPy arrays).

    Attributes:
      l1regs: the grid of strengths, largest first, shape ``(num,)``.
      mse_path: the mean squared test error, shape ``(num, folds)`` (scikit-learn's
        ``LassoCV.mse_path_``).
      best_index: the index of the chosen strength in ``l1regs``.
      coef: the coefficients refitted on all the data at the chosen strength.
      intercept: the refitted intercept.
      converged: bool, every fold's every point and the refit reached ``tol``.
    """

    l1regs: jax.Array
    mse_path: jax.Array
    best_index: jax.Array
    coef: jax.Array
    intercept: jax.Array
    converged: jax.Array


def lasso_cv(
    X: Any,
    y: Any,
    *,
    num: int = 100,
    eps: float = 1e-3,
    folds: int = 5,
    l1regs: Any = None,
    l2reg: Any = 0.0,
    weights: Any = None,
    fit_intercept: bool = True,
    tol: Any = 1e-6,
    max_iter: int = 100,
    max_epochs: int = 10_000,
    gram: Any = "auto",
) -> tuple[jax.Array, LassoCVInfo]:
    r"""Chooses the lasso strength by K-fold cross-validation, as ``LassoCV(cv=folds)`` does.

    .. math:: \hat\alpha = \arg\min_{\alpha_k} \frac{1}{F}\sum_{f=1}^{F} \frac{1}{|T_f|}\sum_{i \in T_f} \big(y_i - x_i^\top w_{-f}(\alpha_k) - b_{-f}(\alpha_k)\big)^2

    The same grid as scikit-learn (``num`` strengths from
    :math:`\alpha_{\max} = \|X_c^\top y_c\|_\infty / n` down to ``eps`` times it, geometric), the
    same folds (``KFold(folds)`` without shuffling: contiguous test blocks, the first
    ``n % folds`` one sample larger), the same criterion (the mean over folds of the test mean
    squared error) and the same tie rule (the first minimum, i.e. the largest strength). Each
    fold's path is a :func:`lasso_path` on its training rows; the folds run together under
    ``jax.vmap`` in one compiled program. Then the model is refitted on all the data.

    Args:
      X: the design matrix ``(n, p)`` (dense; a sparse matrix is densified).
      y: the targets ``(n,)``.
      num: the number of strengths in the grid.
      eps: the ratio of the smallest to the largest strength.
      folds: the number of folds, at least 2.
      l1regs: an explicit grid instead (then ``num`` and ``eps`` are ignored).
      l2reg: as for :func:`lasso` (elastic net with a fixed ridge part).
      weights: as for :func:`lasso`.
      fit_intercept: fit an intercept on every fold (scikit-learn's default, True).
      tol: the relative duality gap every path point is solved to.
      max_iter: as for :func:`lasso`.
      max_epochs: as for :func:`lasso`.
      gram: as for :func:`lasso`.

    Returns:
      ``(best_l1reg, info)``: the chosen strength (a JAX scalar) and a :class:`LassoCVInfo`.

    Raises:
      ValueError: ``folds`` is not an int in ``[2, n]``, ``num`` is not a positive int, ``eps``
        is not in (0, 1], or any condition :func:`lasso` refuses.
      TypeError: as for :func:`lasso`.

    Examples:
      >>> import numpy as np
      >>> import l1optax
      >>> rng = np.random.default_rng(0)
      >>> X = rng.standard_normal((40, 5))
      >>> y = X[:, 0] - 2 * X[:, 1] + 0.1 * rng.standard_normal(40)
      >>> alpha, info = l1optax.lasso_cv(X, y, num=10, folds=4)
      >>> print(info.mse_path.shape, bool(alpha == info.l1regs[info.best_index]))
      (10, 4) True

    References:
      Friedman, Hastie & Tibshirani, 2010, "Regularization paths for generalized linear models
      via coordinate descent", Journal of Statistical Software 33(1). Pedregosa et al., 2011,
      "Scikit-learn: machine learning in Python", JMLR 12 (``LassoCV``).
    """
    fn = "lasso_cv"
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise ValueError(f"`{fn}(folds=...)` must be an int >= 2, got {folds!r}")
    if isinstance(num, bool) or not isinstance(num, int | np.integer) or num < 1:
        raise ValueError(f"`{fn}(num=...)` must be a positive int, got {num!r}")
    if not (isinstance(eps, int | float | np.floating) and 0 < float(eps) <= 1):
        raise ValueError(f"`{fn}(eps=...)` must be a number in (0, 1], got {eps!r}")
    X, sparse = _to_design(X, fn)
    if sparse:
        X = X.todense()
    strengths = None if l1regs is None else jnp.asarray(l1regs)
    plan = _prepare(
        fn, X, y, loss="squared", l2reg=l2reg, weights=weights, fit_intercept=fit_intercept,
        tol=tol, max_iter=max_iter, max_epochs=max_epochs, gram=gram,
        num_strengths=num if strengths is None else int(strengths.shape[0]),
    )  # fmt: skip
    cfg, data, c, l2, tol_arr, limits, ymean, xmean, finite = _designed(plan)
    dtype = plan.dtype
    _check_finite(fn, finite)
    n = data.y.shape[0]
    if folds > n:
        raise ValueError(f"`{fn}(folds=...)` must be at most n = {n}, got {folds}")
    if strengths is None:
        grad0 = jnp.abs(_rmatvec(data, data.y)) / data.n
        ratio = jnp.where(c > 0, grad0 / jnp.where(c > 0, c, 1.0), 0.0)
        amax = jnp.max(ratio)
        if num == 1:
            strengths = amax[None]
        else:  # scikit-learn: np.geomspace(alpha_max, alpha_max * eps, num)
            strengths = jnp.asarray(np.geomspace(float(amax), float(amax) * float(eps), num), dtype)
    else:
        v.check_strength(l1regs, fn=fn, arg="l1regs", allow_schedule=False)
    strengths = strengths.astype(dtype)
    # KFold(folds): contiguous test blocks, the first n % folds of them one sample larger
    sizes = np.full(folds, n // folds)
    sizes[: n % folds] += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    train = np.ones((folds, n), bool)
    for f in range(folds):
        train[f, bounds[f] : bounds[f + 1]] = False
    Xd = jnp.asarray(X, dtype)
    yd = jnp.asarray(y, dtype)
    mse, conv = _cv_jit(cfg, Xd, yd, jnp.asarray(train), strengths, l2, c, tol_arr, limits)
    mse_path = mse.T  # (num, folds)
    best = jnp.argmin(jnp.mean(mse_path, axis=1))
    best_l1reg = strengths[best]
    coef, refit = lasso(
        Xd, yd, best_l1reg, l2reg=l2reg, weights=weights, fit_intercept=fit_intercept,
        tol=tol, max_iter=max_iter, max_epochs=max_epochs, gram=gram,
    )  # fmt: skip
    info = LassoCVInfo(
        l1regs=strengths,
        mse_path=mse_path,
        best_index=best,
        coef=coef,
        intercept=refit.intercept,
        converged=jnp.all(conv) & refit.converged,
    )
    return best_l1reg, info


# ---------------------------------------------------------------------------------------------
# preparing the data (validation, centring, sparse conversion)


def _capacities(p: int, n: int, sparse: bool = False) -> tuple:
    """The compiled working-set capacities: a geometric ladder ending at p.

    When n >= p the blocks are Gram blocks (n K^2 to form): the ladder starts small. When p > n
    the residual form costs O(K) per coordinate whatever the working-set size (the loops visit
    the working set only), so fewer, larger capacities do (one up to 256 features). A sparse X's
    blocks cost O(K L) to gather (L non-zeros per column) and its epochs O(size L): the ladder
    grows 16-fold, each capacity being a whole copy of the solver to compile (2000 x 20000:
    3 capacities, not 5; first call 27 -> 17 s, same run time).
    """
    growth = _GROWTH**2 if sparse else _GROWTH
    if n >= p and not sparse:
        first = _FIRST_SIZE
    elif p <= 2 * _FIRST_CAPACITY:
        return (p,)
    else:
        first = _FIRST_CAPACITY
    caps = []
    k = first
    while k < p:
        caps.append(k)
        k *= growth
    caps.append(p)
    return tuple(caps)


def _to_design(X: Any, fn: str) -> tuple[Any, bool]:
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover - scipy ships with scikit-learn and jax
        sp = None
    if sp is not None and sp.issparse(X):
        X = jsparse.BCOO.from_scipy_sparse(sp.coo_matrix(X))
        return X, True
    if isinstance(X, jsparse.BCOO):
        if X.n_batch or X.n_dense:  # the solver reads (row, column) index pairs
            X = X.update_layout(n_batch=0, n_dense=0)
        return X, True
    if isinstance(X, jsparse.JAXSparse):
        raise TypeError(f"`{fn}(X=...)` sparse matrices must be BCOO, got {type(X).__name__}")
    return (X if isinstance(X, jax.Array) else jnp.asarray(X)), False


def _prepare(
    fn: str,
    X: Any,
    y: Any,
    *,
    loss: str,
    l2reg: Any,
    weights: Any,
    fit_intercept: bool,
    tol: Any,
    max_iter: Any,
    max_epochs: Any,
    gram: Any,
    num_strengths: int,
):
    if loss not in _LOSSES:
        raise ValueError(f"`{fn}(loss=...)` must be one of {_LOSSES}, got {loss!r}")
    for name, flag in (("fit_intercept", fit_intercept),):
        if not isinstance(flag, bool | np.bool_):
            raise TypeError(f"`{fn}({name}=...)` must be a bool, got {flag!r}")
    if gram not in ("auto", True, False):
        raise ValueError(f"`{fn}(gram=...)` must be 'auto', True or False, got {gram!r}")
    for name, value in (("max_iter", max_iter), ("max_epochs", max_epochs)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"`{fn}({name}=...)` must be a positive int, got {value!r}")
    v.check_strength(tol, fn=fn, arg="tol", allow_schedule=False)
    v.check_strength(l2reg, fn=fn, arg="l2reg", allow_schedule=False)
    if np.ndim(l2reg) != 0:
        raise ValueError(f"`{fn}(l2reg=...)` must be a scalar, got shape {np.shape(l2reg)}")
    X, sparse = _to_design(X, fn)
    if X.ndim != 2:
        raise ValueError(f"`{fn}(X=...)` must be 2-D (n_samples, n_features), got shape {X.shape}")
    y = y if isinstance(y, jax.Array) else jnp.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(
            f"`{fn}(y=...)` must have shape ({X.shape[0]},) to match X {tuple(X.shape)}, "
            f"got {tuple(y.shape)}"
        )
    for name, arr in (("X", X.data if sparse else X), ("y", y)):
        if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)):
            raise TypeError(f"`{fn}({name}=...)` must be real numbers, got dtype {arr.dtype}")
    n, p = X.shape
    if n == 0 or p == 0:
        raise ValueError(f"`{fn}(X=...)` is empty, shape {tuple(X.shape)}")
    dtype = v.compute_dtype(jnp.promote_types(X.dtype, y.dtype))  # both canonical already
    concrete = v.is_concrete(y) and v.is_concrete(X.data if sparse else X)
    if loss == "logistic" and concrete:
        labels = np.unique(np.asarray(y))
        if not (set(labels.tolist()) <= {-1.0, 1.0} or set(labels.tolist()) <= {0.0, 1.0}):
            raise ValueError(
                f"`{fn}(y=...)` must hold binary labels in {{-1, 1}} or {{0, 1}} for the "
                f"logistic loss, got values {labels[:5].tolist()}"
            )
    if weights is not None:
        v.check_strength(weights, fn=fn, arg="weights", allow_schedule=False)
        if np.shape(weights) not in ((), (p,)):
            raise ValueError(
                f"`{fn}(weights=...)` must be a scalar or have shape ({p},), got shape "
                f"{np.shape(weights)}"
            )
    if gram == "auto":
        use_gram = (
            (not sparse)
            and loss == "squared"
            and n >= 2 * p
            and (p <= 64 or (num_strengths >= 10 and p <= 4096))
        )
    else:
        use_gram = bool(gram)
        if use_gram and (sparse or loss != "squared"):
            raise ValueError(f"`{fn}(gram=True)` needs a dense X and the squared loss")
    column_order, width = None, 0
    if sparse:
        X, column_order, width = _column_order(X)
    cfg = _Config(
        loss=loss,
        sparse=sparse,
        intercept=fit_intercept and loss == "logistic",
        use_gram=use_gram,
        capacities=_capacities(p, n, sparse),
        max_newton=50,
        col_nnz=width,
        center=fit_intercept and loss == "squared",
    )
    host_gram = _host_gram(X, dtype, cfg.center) if use_gram else None
    inputs = (X, y, weights, l2reg, tol, max_iter, max_epochs, column_order, host_gram)
    return _Plan(cfg, inputs, jnp.dtype(dtype))


class _Plan(NamedTuple):
    """A checked call: its configuration and :func:`_design`'s inputs."""

    cfg: _Config
    inputs: tuple
    dtype: Any


def _designed(plan: _Plan):
    """:func:`_design`'s arrays for a checked call, with X put back where it needed no cast or
    centring (see _design): ``(cfg, data, c, l2, tol, limits, ymean, xmean, finite)``."""
    data, *rest = _design(*plan.inputs, cfg=plan.cfg, dtype=plan.dtype, center=plan.cfg.center)
    if data.X is None:
        data = data._replace(X=plan.inputs[0])
    return (plan.cfg, data, *rest)


def _check_finite(fn: str, finite: jax.Array) -> None:
    """Raises if X or y held NaN/inf or overflowing squares. Asked after the solver is dispatched
    (a solve on such data runs no iteration, see _design), so the host does not wait in between."""
    if v.is_concrete(finite) and not bool(finite):
        raise ValueError(
            f"`{fn}`: X and y must be finite, and their squares must not overflow "
            "(found NaN, inf, or a column of X or y whose sum of squares is inf)"
        )


def _host_gram(X: Any, dtype: Any, center: bool) -> np.ndarray | None:
    """X^T X (X centred when ``center``) by the host's BLAS for a concrete X on one CPU, else
    None (XLA forms it in :func:`_design`). NumPy sees ``A.T @ A`` as a symmetric rank-k
    update: half a product, and ~3x faster than XLA's CPU GEMM (10000 x 1000: 150 vs 430 ms).
    """
    if isinstance(X, jsparse.BCOO) or not v.is_concrete(X):
        return None
    devices = X.devices()
    if len(devices) != 1 or next(iter(devices)).platform != "cpu":
        return None  # an accelerator's own product is faster; sharded X stays where it is
    A = np.asarray(X, dtype)
    with np.errstate(all="ignore"):  # NaN/inf in X: raised after the solve (_check_finite)
        if center:
            A = A - A.mean(axis=0)
        return A.T @ A


@functools.partial(jax.jit, static_argnames=("cfg", "dtype", "center"))
def _design(
    X, y, weights, l2reg, tol, max_iter, max_epochs, column_order, host_gram,
    *, cfg: _Config, dtype, center,
):  # fmt: skip
    """The arrays the solver reads, in one compiled program (eager ops cost ~20 us each, more
    than a small lasso's whole solve): cast, labels in {-1, 1}, centring, column norms, Gram
    (``host_gram``: X^T X already formed on the host, or None)."""
    n, p = X.shape
    # an output that is an input is copied (10000 x 1000: 80 MB, ~35 ms): an X that needs no
    # cast or centring is left out (None), and the caller puts its own X in
    same_x = X.dtype == dtype and not (center and not cfg.sparse)
    X = X.astype(dtype)
    y = y.astype(dtype)
    if cfg.loss == "logistic":
        y = jnp.where(y == 0, -1.0, y).astype(dtype)  # {0, 1} labels as {-1, 1}
    if weights is None:
        c = jnp.ones((p,), dtype)
    else:
        c = jnp.broadcast_to(jnp.asarray(weights, dtype), (p,))
    colsum = None  # a sparse X's column sums, for centring (uncentred columns never read them)
    if cfg.sparse:
        colsum = X.T @ jnp.ones((n,), dtype) if center else jnp.zeros((p,), dtype)
    ymean = jnp.zeros((), dtype)
    xmean = jnp.zeros((p,), dtype)
    xmean_implicit = xmean
    if center:
        ymean = jnp.mean(y)
        y = y - ymean
        xmean = colsum / n if cfg.sparse else jnp.mean(X, axis=0)
        if cfg.sparse:
            xmean_implicit = xmean
        else:
            X = X - xmean
    if cfg.sparse:
        sq = jsparse.BCOO((X.data**2, X.indices), shape=X.shape)
        colsq = sq.T @ jnp.ones((n,), dtype) - n * xmean_implicit**2
        colsq = jnp.maximum(colsq, 0.0)
    nn = jnp.asarray(n, dtype)
    gram_data = None
    if cfg.use_gram:
        G = X.T @ X if host_gram is None else host_gram  # host_gram: already in dtype
        gram_data = (G / nn, y @ X / nn, jnp.dot(y, y) / nn)
        colsq = jnp.diagonal(G)  # not another pass over X
    elif not cfg.sparse:
        colsq = jnp.sum(X**2, axis=0)
    # NaN/inf in X shows in its column sums of squares, as do entries whose squares overflow
    # (which would make the solver's iterates NaN): one check of p numbers, not a pass over X
    finite = jnp.all(jnp.isfinite(colsq)) & jnp.isfinite(jnp.dot(y, y))
    csc = _csc(X, column_order[0], column_order[1], colsum) if cfg.sparse else None
    data = _Data(None if same_x else X, y, xmean_implicit, nn, colsq, gram_data, csc)
    # no iteration on NaN/inf data: the caller raises (_check_finite) without a long wait
    limits = tuple(jnp.where(finite, jnp.asarray(k, jnp.int32), 0) for k in (max_iter, max_epochs))
    l2, tol_arr = jnp.asarray(l2reg, dtype), jnp.asarray(tol, dtype)
    return data, c, l2, tol_arr, limits, ymean, xmean, finite


def _column_order(X: jsparse.BCOO):
    """X with its duplicate entries summed, the order that sorts its non-zeros by column (None
    when they are in column order already, as from a CSC matrix: no gather, 2000 x 20000 at
    0.2%: a call's setup 2.1 -> 1.4 ms), the column starts (p + 1,) and the most non-zeros of
    any column (static: the sparse inner solver's width).

    Computed by NumPy when the indices are concrete (XLA's CPU sort of 10^5 keys takes ~20 ms);
    traced indices get a traced order and the width n, and must not repeat an entry (the
    column norms would be wrong: see ``BCOO.sum_duplicates``).
    """
    n, p = X.shape
    if not v.is_concrete(X.indices):
        cols = X.indices[:, 1]
        traced = jnp.argsort(cols, stable=True)
        starts = jnp.searchsorted(cols[traced], jnp.arange(p + 1), side="left")
        return X, (traced, starts.astype(jnp.int32)), n
    indices = np.asarray(X.indices)
    columns = indices[:, 1]
    key = columns.astype(np.int64) * (n + 1) + indices[:, 0]  # padding (col p) sorts last
    if np.all(key[1:] > key[:-1]):  # in column order already, no entry twice: no gather
        order = None
    else:
        order = np.argsort(key, stable=True)
        key = key[order]
        inside = key < p * (n + 1)
        if np.any((key[1:] == key[:-1]) & inside[1:]):  # a repeated (row, col): sum it first
            return _column_order(X.sum_duplicates(nse=int(np.unique(key[inside]).size)))
        order = order.astype(np.int32)
    # O(nnz), not a search; padding entries (column p or beyond) land past p, then cut off
    counts = np.bincount(columns, minlength=p + 1)[:p]
    colptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return X, (order, colptr), max(1, int(counts.max(initial=0)))


def _csc(X: jsparse.BCOO, order, colptr, colsum):
    """X's non-zeros in column order (``order`` None: they are), the column starts and the
    column sums (see _Data). An X without stored entries gets one zero entry, so that the
    gathers of _sparse_columns never index an empty array."""
    rows = X.indices[:, 0] if order is None else X.indices[order, 0]
    vals = X.data if order is None else X.data[order]
    if vals.shape[0] == 0:
        rows, vals = jnp.zeros((1,), rows.dtype), jnp.zeros((1,), vals.dtype)
    return rows, vals, colptr, colsum


def _check_strengths(fn: str, arg: str, value: Any) -> None:
    v.check_strength(value, fn=fn, arg=arg, allow_schedule=False)


# ---------------------------------------------------------------------------------------------
# public API


def lasso(
    X: Any,
    y: Any,
    l1reg: Any,
    *,
    loss: str = "squared",
    l2reg: Any = 0.0,
    weights: Any = None,
    fit_intercept: bool = False,
    tol: Any = 1e-6,
    max_iter: int = 100,
    max_epochs: int = 10_000,
    gram: Any = "auto",
) -> tuple[jax.Array, LassoInfo]:
    r"""Solves the lasso, elastic net or L1 logistic regression from the data, with a certificate.

    .. math:: \min_w\ f(Xw + b) + \tfrac{\lambda_2}{2}\|w\|_2^2 + \alpha\sum_j c_j|w_j|, \quad f(z) = \tfrac{1}{2n}\|y - z\|^2 \text{ or } \tfrac1n\sum_i \log(1 + e^{-y_i z_i})

    In scikit-learn's scalings: ``Lasso(alpha)`` is ``lasso(X, y, alpha)``;
    ``ElasticNet(alpha, l1_ratio)`` is ``l1reg=alpha * l1_ratio, l2reg=alpha * (1 - l1_ratio)``;
    ``LogisticRegression(penalty="l1", C=C)`` is ``loss="logistic", l1reg=1 / (C * n)``. The
    solver (working sets, Gap Safe screening, coordinate descent on the working set's Gram block;
    see the module notes) stops when the duality gap is at most ``tol`` times the primal
    objective, and runs under ``jax.jit`` and ``jax.vmap``. It is compiled once per shape, loss and
    option set; ``l1reg``, ``l2reg``, ``weights``, ``tol`` and the data are traced. Differentiable:
    ``jax.grad``/``jax.jvp`` of ``w`` (and of the intercept) with respect to ``l1reg``, ``l2reg``,
    ``weights``, ``X`` and ``y`` use implicit differentiation from the optimality condition on
    the support (dense ``X``, both losses; for the logistic loss the intercept too, and the
    labels are not differentiated; the solver's loops are never unrolled). The other
    fields of ``info`` are not differentiated.

    Args:
      X: the design matrix, shape ``(n, p)``: a dense array, a
        ``jax.experimental.sparse.BCOO`` matrix, or a SciPy sparse matrix (converted to BCOO).
      y: the targets, shape ``(n,)``; for the logistic loss labels in ``{-1, 1}`` or ``{0, 1}``.
      l1reg: the strength :math:`\alpha \ge 0` (scikit-learn's ``alpha``).
      loss: ``"squared"`` or ``"logistic"``.
      l2reg: the ridge strength :math:`\lambda_2 \ge 0` (elastic net).
      weights: per-feature penalty weights :math:`c_j \ge 0` (shape ``(p,)``); 0 leaves a feature
        unpenalized. Default all ones.
      fit_intercept: fit an unpenalized intercept :math:`b` (for the squared loss by centring,
        as scikit-learn does).
      tol: the target relative duality gap, ``gap <= tol * primal``.
      max_iter: the maximum number of outer iterations (full-gradient certificates).
      max_epochs: the maximum number of coordinate-descent epochs per working-set solve.
      gram: precompute :math:`X^\top X / n` (``True``/``False``) or decide from the shape
        (``"auto"``: dense squared loss with ``n >= 2p`` and small ``p``).

    Returns:
      ``(w, info)``: the coefficients, shape ``(p,)`` in the data's floating dtype (at least
      float32), and a :class:`LassoInfo` (intercept, gap, primal, kkt, converged, counters).

    Raises:
      ValueError: shapes do not match, a concrete strength, weight or tolerance is negative or
        non-finite, the data hold NaN/inf or values whose squares overflow, the labels are not
        binary (logistic), or an option is invalid.
      TypeError: ``fit_intercept`` is not a bool, or the data are not real numbers.

    Examples:
      >>> import numpy as np
      >>> import l1optax
      >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
      >>> y = np.array([1.0, 0.1, 1.1])
      >>> w, info = l1optax.lasso(X, y, 0.2)
      >>> print(np.asarray(w).round(4), bool(info.converged))
      [0.75 0.  ] True

    References:
      Massias, Gramfort & Salmon, 2018, "Celer: a fast solver for the lasso with dual
      extrapolation", ICML. Ndiaye, Fercoq, Gramfort & Salmon, 2017, "Gap safe screening rules
      for sparsity enforcing penalties", JMLR 18. Bertrand, Klopfenstein, Massias et al., 2022,
      "Beyond L1: faster and better sparse models with skglm", NeurIPS.
    """
    fn = "lasso"
    _check_strengths(fn, "l1reg", l1reg)
    if np.ndim(l1reg) != 0:
        raise ValueError(
            f"`{fn}(l1reg=...)` must be a scalar, got shape {np.shape(l1reg)} (per-feature "
            "strengths go in weights=...; several strengths in lasso_path)"
        )
    return _fit(
        fn, X, y, _as_vector(l1reg), loss=loss, l2reg=l2reg,
        weights=weights, fit_intercept=fit_intercept, tol=tol, max_iter=max_iter,
        max_epochs=max_epochs, gram=gram, squeeze=True,
    )  # fmt: skip


def lasso_path(
    X: Any,
    y: Any,
    l1regs: Any,
    *,
    loss: str = "squared",
    l2reg: Any = 0.0,
    weights: Any = None,
    fit_intercept: bool = False,
    tol: Any = 1e-6,
    max_iter: int = 100,
    max_epochs: int = 10_000,
    gram: Any = "auto",
) -> tuple[jax.Array, LassoInfo]:
    r"""Solutions of :func:`lasso` along a sequence of strengths, warm-started, in one compiled scan.

    .. math:: w(\alpha_k) = \arg\min_w f(Xw + b) + \tfrac{\lambda_2}{2}\|w\|^2 + \alpha_k\sum_j c_j|w_j|, \quad k = 0, \dots, K-1

    Each problem starts from the previous solution and working-set capacity (pass the strengths
    from strong to weak, e.g. :func:`l1_grid`, for the warm starts to pay off); every point is
    certified by its own duality gap.

    Args:
      X: the design matrix ``(n, p)``, dense, BCOO or SciPy sparse.
      y: the targets ``(n,)``.
      l1regs: the strengths, shape ``(K,)``, each non-negative.
      loss: as for :func:`lasso`.
      l2reg: as for :func:`lasso`.
      weights: as for :func:`lasso`.
      fit_intercept: as for :func:`lasso`.
      tol: as for :func:`lasso`, for every point.
      max_iter: as for :func:`lasso`, per point.
      max_epochs: as for :func:`lasso`.
      gram: as for :func:`lasso` (``"auto"`` also weighs the number of strengths).

    Returns:
      ``(coefs, info)``: coefficients of shape ``(K, p)`` and a :class:`LassoInfo` whose fields
      have a leading axis of length ``K``.

    Raises:
      ValueError: as for :func:`lasso`, or ``l1regs`` is not a non-empty 1-D sequence.
      TypeError: as for :func:`lasso`.

    Examples:
      >>> import numpy as np
      >>> import l1optax
      >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
      >>> y = np.array([1.0, 0.1, 1.1])
      >>> coefs, info = l1optax.lasso_path(X, y, [0.7, 0.2, 0.07])
      >>> print(np.asarray(coefs).round(3))
      [[0.   0.  ]
       [0.75 0.  ]
       [0.93 0.03]]

    References:
      Friedman, Hastie & Tibshirani, 2010, "Regularization paths for generalized linear models
      via coordinate descent", Journal of Statistical Software 33(1). Massias, Gramfort & Salmon,
      2018, "Celer: a fast solver for the lasso with dual extrapolation", ICML.
    """
    fn = "lasso_path"
    if isinstance(l1regs, list | tuple):
        l1regs = np.asarray(l1regs, dtype=np.float64)
    _check_strengths(fn, "l1regs", l1regs)
    if np.ndim(l1regs) != 1 or np.shape(l1regs)[0] == 0:
        raise ValueError(
            f"`{fn}(l1regs=...)` must be a non-empty 1-D sequence of strengths, got shape "
            f"{np.shape(l1regs)}"
        )
    return _fit(
        fn, X, y, _as_vector(l1regs), loss=loss, l2reg=l2reg, weights=weights,
        fit_intercept=fit_intercept, tol=tol, max_iter=max_iter, max_epochs=max_epochs,
        gram=gram,
    )  # fmt: skip


def _as_vector(strengths: Any) -> Any:
    """The strengths as a 1-D array: NumPy when concrete (an eager JAX op costs ~0.1 ms)."""
    if v.is_concrete(strengths) and not isinstance(strengths, jax.Array):
        return np.reshape(np.asarray(strengths), (-1,))
    return jnp.reshape(jnp.asarray(strengths), (-1,))


def _fit(fn, X, y, alphas, *, squeeze: bool = False, **options):
    plan = _prepare(fn, X, y, num_strengths=int(alphas.shape[0]), **options)
    # not weak-typed: one compiled program under jax.grad too
    dtype = plan.dtype
    alphas = alphas.astype(dtype) if isinstance(alphas, np.ndarray) else jnp.asarray(alphas, dtype)
    operands = (plan.cfg, squeeze, dtype, plan.inputs, alphas)
    if all(v.is_concrete(leaf) for leaf in jax.tree.leaves((plan.inputs, alphas))):
        # nothing to differentiate: one program designs and solves (custom_jvp's dispatch
        # costs ~2 ms, a second program ~0.07 ms, as much as a small solve)
        out, finite = _design_and_solve(*operands)
    else:
        (W, info), finite = _solve_path(*operands)
        # the implicit step reads X, not its Gram matrix: that is not formed a second time
        no_gram = plan._replace(cfg=plan.cfg._replace(use_gram=False))
        _, data, c, l2, _, _, ymean, xmean, _ = _designed(no_gram)
        out = _differentiable(plan.cfg, W, info, data, alphas, l2, c, ymean, xmean, squeeze=squeeze)
    _check_finite(fn, finite)
    return out


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _design_and_solve(cfg: _Config, squeeze: bool, dtype, inputs, alphas):
    """:func:`_design`, then :func:`_solved`, as one compiled program; also X's finiteness."""
    _, data, c, l2, tol, limits, ymean, xmean, finite = _designed(_Plan(cfg, inputs, dtype))
    return _solved(cfg, squeeze, data, alphas, l2, c, tol, limits, ymean, xmean), finite


def _solved(cfg: _Config, squeeze: bool, data, alphas, l2, c, tol, limits, ymean, xmean):
    """The path from zero, its intercepts (the squared loss's from the means) and ``lasso``'s
    squeeze of the path axis."""
    p = data.colsq.shape[0]
    w0, b0 = jnp.zeros((p,), data.y.dtype), jnp.zeros((), data.y.dtype)
    W, info = _path(cfg, data, alphas, l2, c, tol, limits, w0, b0)
    return _with_intercept(cfg, W, info, ymean, xmean, squeeze)


def _with_intercept(cfg: _Config, W, info, ymean, xmean, squeeze: bool):
    if cfg.loss == "squared":
        info = info._replace(intercept=ymean - W @ xmean)
    if squeeze:
        return W[0], jax.tree.map(lambda a: a[0], info)
    return W, info


@functools.partial(jax.jit, static_argnames=("cfg", "squeeze"))
def _differentiable(cfg: _Config, W, info, data, alphas, l2, c, ymean, xmean, *, squeeze: bool):
    """:func:`_solved`'s output made differentiable (:func:`_implicit`; not for a sparse X),
    the squared loss's intercepts recomputed from it."""
    if squeeze:
        W, info = W[None], jax.tree.map(lambda a: a[None], info)
    if not cfg.sparse:
        # the squared loss's data are centred: its own intercept is 0 in the optimality condition
        B = info.intercept if cfg.loss == "logistic" else jnp.zeros_like(info.intercept)
        one = functools.partial(_implicit, cfg.loss, cfg.intercept)
        W, B = jax.vmap(one, in_axes=(0, 0, None, None, 0, None, None, None))(
            W, B, data.X, data.y, alphas, l2, c, data.n
        )
        info = info._replace(intercept=B)
    return _with_intercept(cfg, W, info, ymean, xmean, squeeze)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def _solve_path(cfg: _Config, squeeze: bool, dtype, inputs, alphas):
    """The compiled solver, never differentiated (its JVP is zero: see _implicit), so that
    ``jax.grad`` and ``jax.jvp`` reuse the program compiled for plain calls."""
    return _design_and_solve(cfg, squeeze, dtype, inputs, alphas)


@_solve_path.defjvp
def _solve_path_jvp(cfg, squeeze, dtype, primals, tangents):
    out = _solve_path(cfg, squeeze, dtype, *primals)

    def zero(x):
        if jnp.issubdtype(x.dtype, jnp.inexact):
            return jnp.zeros_like(x)
        return np.zeros(x.shape, jax.dtypes.float0)

    return out, jax.tree.map(zero, out)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _implicit(loss, intercept, w, b, X, y, alpha, l2, c, n):
    r"""The identity on the solution ``(w, b)``; its JVP is the implicit-function derivative.

    On the support S (and the intercept, for the logistic loss with ``intercept``) the
    optimality condition
    :math:`F = X_S^\top \nabla f(Xw + b) + \lambda_2 w_S + \alpha c_S\,\mathrm{sign}(w_S) = 0`
    (and :math:`\mathbf{1}^\top \nabla f(Xw + b) = 0`) holds, so
    :math:`\partial(w_S, b) = -H^{-1}\,\partial F` with :math:`H` the Hessian of the smooth
    part in :math:`(w_S, b)` (:math:`X^\top X/n + \lambda_2 I` for the squared loss,
    :math:`[X, 1]^\top D [X, 1] + \lambda_2 I` with the logistic curvatures :math:`D`), and
    :math:`\partial w = 0` off the support (locally constant away from kinks). The labels of
    the logistic loss are not differentiated. The solve uses a Cholesky factor of the masked
    system (O(p^3): meant for p up to a few thousand). For the squared loss the data are
    centred before (``b`` is recovered from the means), so ``b`` passes through.
    """
    return w, b


@_implicit.defjvp
def _implicit_jvp(loss, intercept, primals, tangents):
    w, b, X, y, alpha, l2, c, n = primals
    _, _, dX, dy, dalpha, dl2, dc, _ = tangents
    sign = jnp.sign(w)
    p = w.shape[0]
    if loss == "logistic":
        dy = jnp.zeros_like(dy)  # binary labels: not differentiated

    def optimality(X, y, alpha, l2, c):
        u = _loss_grad(loss, X @ w + b, y, n)
        return jnp.concatenate([u @ X + l2 * w + alpha * c * sign, jnp.sum(u)[None]])

    _, dF = jax.jvp(optimality, (X, y, alpha, l2, c), (dX, dy, dalpha, dl2, dc))
    z = X @ w + b
    if loss == "squared":
        h = jnp.full(z.shape, 1.0, z.dtype) / n
    else:
        h = jax.nn.sigmoid(y * z) * jax.nn.sigmoid(-y * z) / n
    Xb = jnp.concatenate([X, jnp.ones((X.shape[0], 1), X.dtype)], axis=1)
    H = (Xb * h[:, None]).T @ Xb + jnp.diag(jnp.append(jnp.full((p,), l2, w.dtype), 0.0))
    free_b = 1.0 if (loss == "logistic" and intercept) else 0.0
    mask = jnp.append((w != 0).astype(w.dtype), free_b)
    # the masked system M H M + (I - M), SPD; its Cholesky factor depends on the primals only,
    # so the tangent is two triangular solves: linear, and transposable for jax.grad
    A = mask[:, None] * H * mask[None, :] + jnp.diag(1 - mask)
    dx = mask * jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(A), -mask * dF)
    return (w, b), (dx[:p], dx[p])
