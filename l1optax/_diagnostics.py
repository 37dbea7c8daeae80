"""Optimality certificates and sparsity counts a user can log: KKT violation, duality gap, zeros."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from l1optax import _selection
from l1optax import _validation as v
from l1optax._types import Tree


def kkt_violation(
    grads: Tree,
    params: Tree,
    l1reg: float | jax.Array | Tree,
    *,
    mask: Tree | Callable[[Tree], Tree] | None = None,
) -> jax.Array:
    r"""How far :math:`w` is from satisfying the optimality conditions of :math:`f + \lambda\|w\|_1`.

    .. math:: \max_i \mathrm{dist}\big(-\nabla_i f(w),\ \lambda_i\,\partial|w_i|\big) = \max_i \begin{cases} |\nabla_i f + \lambda_i \mathrm{sign}(w_i)| & w_i \ne 0 \\ \max(|\nabla_i f| - \lambda_i, 0) & w_i = 0 \end{cases}

    Exactly 0 at a minimizer (up to the rounding of ``grads``), and positive elsewhere: a
    certificate to log next to the loss. Unpenalized (masked-out) coordinates contribute
    :math:`|\nabla_i f|`. Computed in at least float32.

    Args:
      grads: :math:`\nabla f(w)`, a pytree with the structure of ``params``.
      params: :math:`w`, a pytree of real floating-point arrays; None leaves are skipped.
      l1reg: :math:`\lambda \ge 0`: a scalar, a pytree of per-leaf scalars, or per-coordinate
        arrays (a prefix of ``params`` is accepted).
      mask: a pytree of bools (a prefix of ``params``) or a callable giving one; False leaves are
        unpenalized.

    Returns:
      A non-negative scalar (float32, or float64 if any leaf is float64); 0.0 for an empty tree.

    Raises:
      ValueError: a concrete ``l1reg`` is negative or non-finite, or ``grads``, ``l1reg`` or
        ``mask`` does not match ``params``.
      TypeError: a penalized leaf of ``params`` is not floating-point (masked-out integer or
        8-bit leaves are skipped), or ``mask`` is not a pytree of bools.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> w = jnp.array([0.0, 2.0, 0.0])
      >>> g = jnp.array([0.5, -1.0, 1.5])  # optimal for lam = 1 except the last coordinate
      >>> print(l1optax.kkt_violation(g, w, 1.0))
      0.5

    References:
      Hastie, Tibshirani & Wainwright, 2015, "Statistical learning with sparsity: the lasso and
      generalizations", Chapman & Hall/CRC, section 5.2.
    """
    fn = "kkt_violation"
    v.check_strength(l1reg, fn=fn, arg="l1reg", allow_schedule=False)
    v.check_same_structure(grads, params, fn=f"{fn}(grads=...)", names=("grads", "params"))
    lams = v.broadcast_to_params(l1reg, params, fn=fn, arg="l1reg")
    mask_tree = _full_mask_tree(mask, params, fn=fn)
    # Masked-out leaves may be anything (integer step counters, say): they are skipped below.
    v.check_float_leaves(v.drop_masked(params, mask_tree, fn=fn), fn=fn)
    out_dtype = _reduce_dtype(
        jax.tree.map(
            lambda p: p if p is None or _checked_float(jnp.asarray(p)) else None,
            params,
            is_leaf=v.is_none,
        )
    )
    worst = jnp.zeros((), out_dtype)
    flat = zip(
        jax.tree_util.tree_leaves_with_path(params, is_leaf=v.is_none),
        jax.tree.leaves(grads, is_leaf=v.is_none),
        jax.tree.leaves(lams, is_leaf=v.is_none),
        jax.tree.leaves(mask_tree, is_leaf=v.is_none),
        strict=True,
    )
    for (path, w), g, lam, m in flat:
        if w is None:
            continue
        w = jnp.asarray(w)
        g = jnp.asarray(g)
        if not m and not _checked_float(w):
            continue
        if g.shape != w.shape:
            raise ValueError(
                f"`{fn}(grads=...)` leaf {jax.tree_util.keystr(path) or '<root>'} has shape "
                f"{g.shape}, but the parameter has shape {w.shape}"
            )
        if w.size == 0:
            continue
        acc = v.compute_dtype(jnp.promote_types(w.dtype, g.dtype))
        wc, gc = w.astype(acc), g.astype(acc)
        if m:
            lam_c = v.nan_if_negative(jnp.asarray(lam, acc))
            at_zero = jnp.maximum(jnp.abs(gc) - lam_c, 0)
            off_zero = jnp.abs(gc + lam_c * jnp.sign(wc))
            dist = jnp.where(wc == 0, at_zero, off_zero)
        else:
            dist = jnp.abs(gc)
        worst = jnp.maximum(worst, jnp.max(dist).astype(out_dtype))
    return worst


def lasso_duality_gap(
    X: jax.Array | np.ndarray,
    y: jax.Array | np.ndarray,
    w: jax.Array | np.ndarray,
    alpha: float | jax.Array,
) -> jax.Array | np.floating:
    r"""The duality gap of the lasso in scikit-learn's scaling: an upper bound on suboptimality.

    .. math:: G(w) = P(w) - D(\theta), \quad P(w) = \tfrac{1}{2n}\|y - Xw\|_2^2 + \alpha\|w\|_1, \quad \theta = \frac{y - Xw}{\max(n\alpha,\ \|X^\top(y - Xw)\|_\infty)}

    with the dual :math:`D(\theta) = \tfrac{1}{2n}\big(\|y\|^2 - \|y - n\alpha\theta\|^2\big)`.
    :math:`G(w) \ge P(w) - P(w^\star) \ge 0`, and :math:`G = 0` exactly at the optimum. It equals
    scikit-learn's ``Lasso(...).dual_gap_`` at the same ``w`` (the same dual point as
    ``cd_fast``). For a relative certificate divide by :math:`P(w)`.

    When all inputs are concrete (NumPy or JAX arrays outside ``jax.jit``) the gap is computed
    in float64 NumPy, so it certifies tolerances below float32 resolution even without
    ``jax.enable_x64``; under tracing it is computed in JAX in at least float32.

    Args:
      X: the design matrix, shape ``(n, p)``.
      y: the targets, shape ``(n,)``.
      w: the coefficients, shape ``(p,)``.
      alpha: the strength :math:`\alpha \ge 0` (scikit-learn's ``alpha``), a scalar.

    Returns:
      A scalar: a NumPy float64 for concrete inputs, a JAX scalar under tracing.

    Raises:
      ValueError: the shapes do not match, ``alpha`` is not a scalar, or a concrete ``alpha`` is
        negative or non-finite.

    Examples:
      >>> import numpy as np
      >>> import l1optax
      >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
      >>> y = np.array([1.0, 0.1, 1.1])
      >>> print(round(float(l1optax.lasso_duality_gap(X, y, np.zeros(2), 1.0)), 6))  # optimal
      0.0
      >>> print(round(float(l1optax.lasso_duality_gap(X, y, np.array([0.5, 0.0]), 0.1)), 6))
      0.054656

    References:
      Kim, Koh, Lustig, Boyd & Gorinevsky, 2007, "An interior-point method for large-scale
      l1-regularized least squares", IEEE J. Selected Topics in Signal Processing 1(4).
      Pedregosa et al., 2011, "Scikit-learn: machine learning in Python", JMLR 12.
    """
    fn = "lasso_duality_gap"
    v.check_strength(alpha, fn=fn, arg="alpha", allow_schedule=False)
    if np.ndim(alpha) != 0:
        raise ValueError(
            f"`{fn}(alpha=...)` must be a scalar (scikit-learn's alpha), got shape "
            f"{np.shape(alpha)}; for per-coordinate weights use kkt_violation"
        )
    shapes = (np.shape(X), np.shape(y), np.shape(w))
    if len(shapes[0]) != 2 or shapes[1] != shapes[0][:1] or shapes[2] != shapes[0][1:]:
        raise ValueError(
            f"`{fn}` needs X of shape (n, p), y of shape (n,) and w of shape (p,); got X "
            f"{shapes[0]}, y {shapes[1]}, w {shapes[2]}"
        )
    traced = any(isinstance(a, jax.core.Tracer) for a in (X, y, w, alpha))
    if traced:
        dtype = v.compute_dtype(jnp.result_type(X, y, w))
        X, y, w = (jnp.asarray(a, dtype) for a in (X, y, w))
        return _gap(jnp, X, y, w, v.nan_if_negative(jnp.asarray(alpha, dtype)))
    X, y, w = (np.asarray(a, dtype=np.float64) for a in (X, y, w))
    return _gap(np, X, y, w, np.float64(alpha))


def _gap(xp: Any, X: Any, y: Any, w: Any, alpha: Any) -> Any:
    """The cd_fast gap divided by n; ``xp`` is ``numpy`` or ``jax.numpy``."""
    n = X.shape[0]
    lam = n * alpha
    r = y - X @ w
    r_norm2 = xp.dot(r, r)
    dual_norm = xp.max(xp.abs(r @ X)) if X.shape[1] else xp.zeros((), r.dtype)
    scale = xp.where(dual_norm > lam, lam / xp.where(dual_norm > 0, dual_norm, 1), 1.0)
    gap = 0.5 * r_norm2 * (1 + scale**2) + lam * xp.sum(xp.abs(w)) - scale * xp.dot(r, y)
    return gap / n


def sparsity(params: Tree, *, mask: Tree | Callable[[Tree], Tree] | None = None) -> dict[str, Any]:
    r"""Counts and fractions of exact zeros, per leaf and in total, ready to log or print.

    .. math:: \mathrm{fraction} = \#\{i : w_i = 0\} / \#\{i\}

    Args:
      params: a pytree of arrays (``nnx.state(model)`` included); None leaves, and integer, bool
        and PRNG-key leaves (step counters, RNG state), are skipped. NaN counts as non-zero.
      mask: a pytree of bools (a prefix of ``params``) or a callable giving one; only leaves
        whose mask is True are counted (e.g. to leave out biases).

    Returns:
      A dict ``{"zeros", "size", "fraction", "leaves"}``: int32 ``zeros`` and ``size`` and a
      float32 ``fraction`` for the counted leaves together (``fraction`` is 0 when nothing is
      counted), and ``leaves``, a dict from each counted leaf's path in :func:`param_paths`'
      convention (``"dense1/kernel"``, ``""`` for a bare array) to its own
      ``{"zeros", "size", "fraction"}``. All values are JAX arrays, so it works under ``jax.jit``.

    Raises:
      ValueError: ``mask`` does not match ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> s = l1optax.sparsity({"b": jnp.zeros(2), "w": jnp.array([0.0, 1.0, 0.0, 2.0])},
      ...                      mask={"b": False, "w": True})
      >>> print(int(s["zeros"]), int(s["size"]), float(s["fraction"]), list(s["leaves"]))
      2 4 0.5 ['w']

    References:
      Hoefler, Alistarh, Ben-Nun, Dryden & Peste, 2021, "Sparsity in deep learning: pruning and
      growth for efficient inference and training in neural networks", JMLR 22.
    """
    fn = "sparsity"
    mask_tree = _full_mask_tree(mask, params, fn=fn)
    leaves: dict[str, dict[str, jax.Array]] = {}
    zeros = jnp.zeros((), jnp.int32)
    size = 0
    flat = zip(
        _leaf_names(params),
        jax.tree.leaves(params, is_leaf=v.is_none),
        jax.tree.leaves(mask_tree, is_leaf=v.is_none),
        strict=True,
    )
    for name, p, m in flat:
        if p is None or not m:
            continue
        p = jnp.asarray(p)
        if not jnp.issubdtype(p.dtype, jnp.inexact):
            continue  # integer, bool and PRNG-key leaves: step counters and RNG state
        z = jnp.sum(p == 0, dtype=jnp.int32)
        leaves[name] = {
            "zeros": z,
            "size": jnp.asarray(p.size, jnp.int32),
            "fraction": _fraction(z, p.size),
        }
        zeros = zeros + z
        size += p.size
    return {
        "zeros": zeros,
        "size": jnp.asarray(size, jnp.int32),
        "fraction": _fraction(zeros, size),
        "leaves": leaves,
    }


def _leaf_names(params: Tree) -> list[str]:
    """``param_paths``' name of every array leaf (None included), in ``tree.leaves`` order.

    A box (``nnx.Variable``, Linen ``nn.Partitioned``) is named by its own path (``dense1/kernel``,
    not ``['dense1']['kernel'].value``); a box holding several arrays adds their inner paths.
    """
    names = []
    for path, node in jax.tree_util.tree_leaves_with_path(params, is_leaf=_selection._is_leaf):
        outer = _selection._keys(path)
        inner = jax.tree_util.tree_leaves_with_path(node, is_leaf=v.is_none)
        for sub, _ in inner:
            keys = outer if len(inner) == 1 else (*outer, *_selection._keys(sub))
            names.append(_selection._path_string(keys))
    return names


def _fraction(zeros: jax.Array, size: int) -> jax.Array:
    return zeros.astype(jnp.float32) / max(size, 1)


def _full_mask_tree(mask: Any, params: Tree, *, fn: str) -> Tree:
    """A bool per leaf of ``params`` (None leaves kept as None), True where penalized/counted."""
    if mask is None:
        return jax.tree.map(lambda p: None if p is None else True, params, is_leaf=v.is_none)
    mask_tree = v.resolve_mask(mask, params, fn=fn)
    return jax.tree.map(
        lambda m, sub: jax.tree.map(lambda p: None if p is None else m, sub, is_leaf=v.is_none),
        mask_tree,
        params,
        is_leaf=v.is_none,
    )


def _checked_float(x: jax.Array) -> bool:
    try:
        v.check_float_leaves(x, fn="")
    except TypeError:
        return False
    return True


def _reduce_dtype(params: Tree) -> Any:
    leaves = [leaf for leaf in jax.tree.leaves(params) if leaf is not None]
    if not leaves:
        return jnp.float32
    return v.compute_dtype(jnp.result_type(*[jnp.asarray(leaf).dtype for leaf in leaves]))
