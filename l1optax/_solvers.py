"""Full-batch convex solvers: FISTA with backtracking and restart, regularization paths, lambda_max.

The maintained successor to ``jaxopt.ProximalGradient`` for lasso-type problems: any differentiable
loss over a pytree plus any l1optax prox (jaxopt's ``prox(x, hyperparams, scaling)`` signature).
Everything runs in one compiled ``lax.while_loop`` (a path is one ``lax.scan`` of them), so the
solvers work under ``jax.jit`` and ``jax.vmap`` (e.g. over the strength) on CPU and GPU.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from l1optax import _validation as v
from l1optax._prox import prox_l1

Tree = Any
Prox = Callable[[Tree, Any, Any], Tree]

_DECREASE = 0.5  # backtracking factor
_MAX_BACKTRACK = 60  # tries per iteration before a step is accepted anyway
_FISTA_OPTIONS = ("prox", "stepsize", "maxiter", "tol", "acceleration", "restart", "mask")


class FistaInfo(NamedTuple):
    """What :func:`fista` reports besides the solution (every field a JAX array).

    Attributes:
      num_iter: int32, the number of proximal-gradient iterations run.
      error: the optimality error at the end, the norm of the gradient mapping
        :math:`\\|y - \\mathrm{prox}_{s\\lambda}(y - s\\nabla f(y))\\|_2 / s` at the last
        extrapolated point (0 exactly at a minimizer).
      converged: bool, ``error <= tol`` (False when the error is NaN).
      stepsize: the final step size :math:`s` (after backtracking).
      loss: the smooth loss :math:`f` at the returned parameters (without the penalty).
      num_restarts: int32, how many times the momentum was reset by adaptive restart.
    """

    num_iter: jax.Array
    error: jax.Array
    converged: jax.Array
    stepsize: jax.Array
    loss: jax.Array
    num_restarts: jax.Array


class _LoopState(NamedTuple):
    x: Tree
    y: Tree
    t: jax.Array
    s: jax.Array
    f_y: jax.Array
    g_y: Tree
    f_x: jax.Array
    it: jax.Array
    error: jax.Array
    restarts: jax.Array


# ---------------------------------------------------------------------------------------------
# small pytree helpers (computed in the leaves' own dtype, reductions in >= float32)


def _axpy(a: jax.Array, x: Tree, y: Tree) -> Tree:
    return jax.tree.map(lambda xi, yi: (yi + a.astype(yi.dtype) * xi).astype(yi.dtype), x, y)


def _sub(x: Tree, y: Tree) -> Tree:
    return jax.tree.map(lambda a, b: a - b, x, y)


def _vdot(x: Tree, y: Tree, dtype: Any) -> jax.Array:
    parts = [
        jnp.sum(a.astype(dtype) * b.astype(dtype))
        for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y), strict=True)
    ]
    return sum(parts, jnp.zeros((), dtype))


def _sqnorm(x: Tree, dtype: Any) -> jax.Array:
    return _vdot(x, x, dtype)


def _param_compute_dtype(params: Tree) -> Any:
    leaves = jax.tree.leaves(params)
    if not leaves:
        return v.compute_dtype(jnp.float32)
    return v.compute_dtype(jnp.result_type(*[leaf.dtype for leaf in leaves]))


def _full_mask(mask: Tree | Callable[[Tree], Tree] | None, params: Tree, *, fn: str) -> tuple:
    """A hashable tuple with one bool per leaf of ``params`` (True = penalized)."""
    n = len(jax.tree.leaves(params))
    if mask is None:
        return (True,) * n
    mask_tree = v.resolve_mask(mask, params, fn=fn)
    full = jax.tree.map(
        lambda m, sub: jax.tree.map(lambda _: bool(m), sub), mask_tree, params, is_leaf=v.is_none
    )
    return tuple(jax.tree.leaves(full))


def _masked_prox(prox: Prox, mask_leaves: tuple) -> Prox:
    if all(mask_leaves):
        return prox

    def wrapped(x, hyperparams, scaling):
        z = prox(x, hyperparams, scaling)
        treedef = jax.tree.structure(x)
        z_leaves, x_leaves = jax.tree.leaves(z), jax.tree.leaves(x)
        picked = [
            zi if m else xi for m, zi, xi in zip(mask_leaves, z_leaves, x_leaves, strict=True)
        ]
        return jax.tree.unflatten(treedef, picked)

    return wrapped


# ---------------------------------------------------------------------------------------------
# the solver loop (pure JAX, no Python branches on values)


def _initial_stepsize(grad_fn: Callable, x0: Tree, g0: Tree, dtype: Any) -> jax.Array:
    """1/L from a secant along -grad: exact for quadratics, an estimate otherwise.

    Backtracking only ever decreases the step, so an over-estimate is corrected in the first
    iteration; the secant never under-estimates the step by more than the curvature along the
    gradient direction allows.
    """
    gnorm = jnp.sqrt(_sqnorm(g0, dtype))
    xnorm = jnp.sqrt(_sqnorm(x0, dtype))
    h = 1e-2 * jnp.maximum(xnorm, 1.0) / jnp.where(gnorm > 0, gnorm, 1.0)
    x1 = _axpy(-h, g0, x0)
    g1 = grad_fn(x1)
    dg = jnp.sqrt(_sqnorm(_sub(g1, g0), dtype))
    dx = h * gnorm
    lipschitz = dg / jnp.where(dx > 0, dx, 1.0)
    ok = jnp.isfinite(lipschitz) & (lipschitz > 0) & (gnorm > 0)
    return jnp.where(ok, 1.0 / jnp.where(ok, lipschitz, 1.0), 1.0).astype(dtype)


def _solve(
    fun: Callable[[Tree], jax.Array],
    prox: Prox,
    x0: Tree,
    l1reg: Any,
    s0: jax.Array | None,
    tol: Any,
    *,
    maxiter: int,
    acceleration: bool,
    restart: bool,
    backtracking: bool,
) -> tuple[Tree, FistaInfo]:
    dtype = _param_compute_dtype(x0)
    value_and_grad = jax.value_and_grad(fun)
    grad_fn = jax.grad(fun)
    tol = jnp.asarray(tol, dtype)
    eps = jnp.finfo(dtype).eps

    f0, g0 = value_and_grad(x0)
    f0 = f0.astype(dtype)
    if s0 is None:
        s0 = _initial_stepsize(grad_fn, x0, g0, dtype)
    s0 = jnp.asarray(s0, dtype)

    def step(y, g_y, s):
        x_new = prox(_axpy(-s, g_y, y), l1reg, s)
        return jax.tree.map(lambda a, b: a.astype(b.dtype), x_new, y)

    def line_search(y, f_y, g_y, s):
        def attempt(s):
            x_new = step(y, g_y, s)
            diff = _sub(x_new, y)
            f_new = fun(x_new).astype(dtype)
            sq = _sqnorm(diff, dtype)
            model = f_y + _vdot(g_y, diff, dtype) + sq / (2 * s)
            slack = 16 * eps * (jnp.abs(f_y) + jnp.abs(f_new))
            f_ok = f_new <= model + slack
            # Near convergence the decrease drowns in the rounding of f itself (worst when f is a
            # small difference of large terms, e.g. a loss written from a Gram matrix) and the
            # test above fails spuriously, which would shrink the step for good. When it fails
            # by less than sqrt(eps) of f, the curvature test
            # <grad f(x_new) - grad f(y), x_new - y> <= |x_new - y|^2 / s (the same condition
            # for a quadratic) decides instead: it has no cancellation of f's terms.
            near = f_new - model <= jnp.sqrt(eps) * (jnp.abs(f_y) + jnp.abs(f_new))

            def curvature_ok():
                g_new = grad_fn(x_new)
                return _vdot(_sub(g_new, g_y), diff, dtype) <= sq / s * (1 + 1e-6)

            ok = jax.lax.cond(near & ~f_ok, curvature_ok, lambda: f_ok)
            return x_new, f_new, ok

        x_new, f_new, ok = attempt(s)

        def cond(c):
            return (~c[3]) & (c[4] < _MAX_BACKTRACK)

        def body(c):
            s_try = c[0] * _DECREASE
            x_try, f_try, ok_try = attempt(s_try)
            return s_try, x_try, f_try, ok_try, c[4] + 1

        s, x_new, f_new, _, _ = jax.lax.while_loop(cond, body, (s, x_new, f_new, ok, jnp.int32(0)))
        return x_new, f_new, s

    def cond_fn(st: _LoopState):
        return (st.it < maxiter) & (st.error > tol)

    def body_fn(st: _LoopState):
        if backtracking:
            x_new, f_x, s = line_search(st.y, st.f_y, st.g_y, st.s)
        else:
            s = st.s
            x_new, f_x = step(st.y, st.g_y, s), st.f_x
        error = jnp.sqrt(_sqnorm(_sub(x_new, st.y), dtype)) / s
        restarts = st.restarts
        if acceleration:
            t_next = 0.5 * (1 + jnp.sqrt(1 + 4 * st.t**2))
            momentum = (st.t - 1) / t_next
            if restart:
                # O'Donoghue & Candes (2015), gradient scheme: restart when the step and the
                # composite gradient mapping point the same way.
                do_restart = _vdot(_sub(st.y, x_new), _sub(x_new, st.x), dtype) > 0
                t_next = jnp.where(do_restart, jnp.ones_like(t_next), t_next)
                momentum = jnp.where(do_restart, jnp.zeros_like(momentum), momentum)
                restarts = restarts + do_restart.astype(jnp.int32)
            y_new = _axpy(momentum, _sub(x_new, st.x), x_new)
        else:
            t_next = st.t
            y_new = x_new
        f_y, g_y = value_and_grad(y_new)
        return _LoopState(
            x_new, y_new, t_next, s, f_y.astype(dtype), g_y, f_x, st.it + 1, error, restarts
        )

    init = _LoopState(
        x=x0,
        y=x0,
        t=jnp.ones((), dtype),
        s=s0,
        f_y=f0,
        g_y=g0,
        f_x=f0,
        it=jnp.zeros((), jnp.int32),
        error=jnp.asarray(jnp.inf, dtype),
        restarts=jnp.zeros((), jnp.int32),
    )
    final = jax.lax.while_loop(cond_fn, body_fn, init)
    loss = fun(final.x).astype(dtype)
    info = FistaInfo(
        num_iter=final.it,
        error=final.error,
        converged=final.error <= tol,
        stepsize=final.s,
        loss=loss,
        num_restarts=final.restarts,
    )
    return final.x, info


@functools.partial(
    jax.jit,
    static_argnames=("loss_fn", "prox", "maxiter", "acceleration", "restart", "mask_leaves"),
)
def _fista_jit(
    loss_fn, prox, init_params, l1reg, args, kwargs, stepsize, tol, *, maxiter, acceleration,
    restart, mask_leaves,
):  # fmt: skip
    fun = functools.partial(_call_loss, loss_fn, args=args, kwargs=kwargs)
    return _solve(
        fun,
        _masked_prox(prox, mask_leaves),
        init_params,
        l1reg,
        stepsize,
        tol,
        maxiter=maxiter,
        acceleration=acceleration,
        restart=restart,
        backtracking=stepsize is None,
    )


@functools.partial(
    jax.jit,
    static_argnames=("loss_fn", "prox", "maxiter", "acceleration", "restart", "mask_leaves"),
)
def _path_jit(
    loss_fn, prox, init_params, l1regs, args, kwargs, stepsize, tol, *, maxiter, acceleration,
    restart, mask_leaves,
):  # fmt: skip
    fun = functools.partial(_call_loss, loss_fn, args=args, kwargs=kwargs)
    masked = _masked_prox(prox, mask_leaves)
    backtracking = stepsize is None
    dtype = _param_compute_dtype(init_params)
    if backtracking:
        g0 = jax.grad(fun)(init_params)
        s0 = _initial_stepsize(jax.grad(fun), init_params, g0, dtype)
    else:
        s0 = jnp.asarray(stepsize, dtype)

    def body(carry, l1reg):
        params, s = carry
        params, info = _solve(
            fun,
            masked,
            params,
            l1reg,
            s,
            tol,
            maxiter=maxiter,
            acceleration=acceleration,
            restart=restart,
            backtracking=backtracking,
        )
        return (params, info.stepsize), (params, info)

    _, (params_path, info_path) = jax.lax.scan(body, (init_params, s0), l1regs)
    return params_path, info_path


def _call_loss(loss_fn, params, *, args, kwargs):
    return loss_fn(params, *args, **kwargs)


# ---------------------------------------------------------------------------------------------
# validation shared by fista and l1_path


def _has_tracer(tree: Tree) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(tree))


def _check_options(
    fn: str, stepsize: Any, maxiter: Any, tol: Any, acceleration: Any, restart: Any
) -> None:
    if stepsize is not None:
        v.check_strength(stepsize, fn=fn, arg="stepsize", allow_schedule=False)
        if not _has_tracer(stepsize) and not np.all(np.asarray(stepsize) > 0):
            raise ValueError(
                f"`{fn}(stepsize=...)` must be positive (or None for backtracking), got {stepsize!r}"
            )
    if isinstance(maxiter, bool) or not isinstance(maxiter, int | np.integer) or maxiter < 1:
        raise ValueError(f"`{fn}(maxiter=...)` must be a positive int, got {maxiter!r}")
    v.check_strength(tol, fn=fn, arg="tol", allow_schedule=False)
    for name, flag in (("acceleration", acceleration), ("restart", restart)):
        if not isinstance(flag, bool | np.bool_):
            raise TypeError(f"`{fn}({name}=...)` must be a bool, got {flag!r}")


def _check_problem(
    fn: str,
    loss_fn: Callable,
    prox: Prox,
    init_params: Tree,
    l1reg: Any,
    args: tuple,
    kwargs: dict,
) -> None:
    """Shapes, dtypes and a finite loss at the start, checked before anything is compiled."""
    if not callable(loss_fn):
        raise TypeError(f"`{fn}(loss_fn=...)` must be callable, got {loss_fn!r}")
    if not callable(prox):
        raise TypeError(f"`{fn}(prox=...)` must be callable, got {prox!r}")
    if not jax.tree.leaves(init_params):
        raise ValueError(f"`{fn}(init_params=...)` has no arrays to optimize: {init_params!r}")
    init_params = jax.tree.map(jnp.asarray, init_params)
    v.check_float_leaves(init_params, fn=fn)
    for path, leaf in jax.tree_util.tree_leaves_with_path(init_params):
        if jnp.iscomplexobj(leaf):
            raise TypeError(
                f"`{fn}` needs real parameters, but leaf {jax.tree_util.keystr(path) or '<root>'}"
                f" has dtype {leaf.dtype}"
            )
    try:
        key = (fn, loss_fn, prox, *_abstract(init_params), *_abstract(l1reg))
        key += (*_abstract(args), *_abstract(kwargs))
        hash(key)
    except TypeError:  # unhashable static data: check without the cache
        _check_shapes(fn, loss_fn, prox, init_params, l1reg, args, kwargs)
    else:
        _check_shapes_cached(key, fn, loss_fn, prox, init_params, l1reg, args, kwargs)
    if not _has_tracer((init_params, args, kwargs)):
        f0 = _loss_value(loss_fn, init_params, args, kwargs)
        if not np.isfinite(np.asarray(f0)):
            raise ValueError(
                f"`{fn}`: the loss at init_params is {float(f0)!r}; it must be finite to start "
                "(check the data for NaN/inf and the initial parameters)"
            )


def _abstract(tree: Tree) -> tuple:
    """A hashable description of a pytree's structure, shapes and dtypes (raises TypeError)."""
    leaves, treedef = jax.tree.flatten(tree)
    avals = []
    for leaf in leaves:
        if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
            avals.append((tuple(leaf.shape), str(leaf.dtype), getattr(leaf, "weak_type", False)))
        elif isinstance(leaf, bool | int | float | complex):
            avals.append((type(leaf).__name__,))
        else:
            raise TypeError("not cacheable")
    return treedef, tuple(avals)


_SHAPE_CACHE: dict = {}


def _check_shapes_cached(key, fn, loss_fn, prox, init_params, l1reg, args, kwargs) -> None:
    """Tracing the loss and the prox costs milliseconds: do it once per signature."""
    if key in _SHAPE_CACHE:
        return
    _check_shapes(fn, loss_fn, prox, init_params, l1reg, args, kwargs)
    if len(_SHAPE_CACHE) > 512:
        _SHAPE_CACHE.clear()
    _SHAPE_CACHE[key] = True


def _check_shapes(fn, loss_fn, prox, init_params, l1reg, args, kwargs) -> None:
    try:
        out = jax.eval_shape(lambda p: loss_fn(p, *args, **kwargs), init_params)
    except Exception as err:  # noqa: BLE001 - re-raised with the solver's name
        raise ValueError(
            f"`{fn}`: loss_fn(init_params, *args, **kwargs) failed ({type(err).__name__}: {err});"
            " check the shapes of init_params and of the data arguments"
        ) from err
    if not (hasattr(out, "shape") and out.shape == () and jnp.issubdtype(out.dtype, jnp.floating)):
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(
            f"`{fn}(loss_fn=...)` must return a real scalar, got {shape} "
            f"{getattr(out, 'dtype', '')}".rstrip()
        )
    try:
        proxed = jax.eval_shape(lambda p, h: prox(p, h, 1.0), init_params, l1reg)
    except Exception as err:  # noqa: BLE001 - re-raised with the solver's name
        raise ValueError(
            f"`{fn}`: prox(init_params, l1reg, 1.0) failed ({type(err).__name__}: {err}); "
            "check that l1reg is a scalar or a pytree of arrays broadcastable to init_params"
        ) from err
    want = jax.tree.map(lambda p: (p.shape, p.dtype), init_params)
    got = jax.tree.map(lambda p: (p.shape, p.dtype), proxed)
    if jax.tree.structure(want) != jax.tree.structure(got) or want != got:
        raise ValueError(
            f"`{fn}(prox=...)` must return a pytree with the structure, shapes and dtypes of "
            f"init_params; got {got} for {want}"
        )


@functools.partial(jax.jit, static_argnames=("loss_fn",))
def _loss_value(loss_fn, params, args, kwargs):
    return loss_fn(params, *args, **kwargs)


# ---------------------------------------------------------------------------------------------
# public API


def fista(
    loss_fn: Callable[..., jax.Array],
    init_params: Tree,
    l1reg: Any,
    *args: Any,
    prox: Prox = prox_l1,
    stepsize: float | jax.Array | None = None,
    maxiter: int = 500,
    tol: float = 1e-6,
    acceleration: bool = True,
    restart: bool = True,
    mask: Tree | Callable[[Tree], Tree] | None = None,
    **kwargs: Any,
) -> tuple[Tree, FistaInfo]:
    r"""Minimizes a smooth loss plus an L1-type penalty by accelerated proximal gradient (FISTA).

    .. math:: \min_w\ f(w) + \lambda\|w\|_1, \quad w_{k+1} = \mathrm{prox}_{s\lambda}(y_k - s\nabla f(y_k))

    Nesterov/FISTA momentum with adaptive restart (the gradient scheme of O'Donoghue & Candès) and,
    when ``stepsize`` is None, backtracking line search on the sufficient-decrease condition
    :math:`f(w_{k+1}) \le f(y_k) + \langle\nabla f(y_k), w_{k+1} - y_k\rangle + \|w_{k+1} - y_k\|^2/(2s)`
    (the step only decreases, starting from a secant estimate of :math:`1/L`; where rounding hides
    the decrease, the equivalent curvature test on gradients decides). It stops when the
    gradient-mapping norm ``info.error`` is at most ``tol`` or after ``maxiter`` iterations.

    The whole solve is one compiled ``lax.while_loop`` (compiled once per ``loss_fn``/``prox``
    object and option set; data in ``args``/``kwargs`` are traced, so new data do not recompile).
    It also runs inside ``jax.jit`` and ``jax.vmap`` (e.g. over ``l1reg``: a batch of
    independent problems). Any prox with jaxopt's signature ``prox(x, hyperparams, scaling)``
    works; ``l1reg`` is passed as ``hyperparams`` (a tuple for elastic net, per-coordinate
    arrays for a weighted lasso). A drop-in replacement for
    ``jaxopt.ProximalGradient(fun, prox, acceleration=True).run(init_params, l1reg, *args)``.

    Under ``jax.jit``/``vmap`` the initial loss cannot be inspected: a non-finite loss then gives
    ``info.error`` NaN and ``info.converged`` False instead of an error.

    Args:
      loss_fn: the smooth part :math:`f`, called as ``loss_fn(params, *args, **kwargs)``; must
        return a real scalar and be differentiable in ``params``.
      init_params: the starting point, a pytree of real floating-point arrays (its dtypes are
        kept; use float64 with ``jax.enable_x64`` for tolerances below ~1e-6).
      l1reg: the prox's hyperparameters: for the default ``prox_l1`` the strength
        :math:`\lambda \ge 0`, a scalar or a pytree of per-leaf scalars or per-coordinate arrays.
      *args: data passed to ``loss_fn``. They are traced (arrays; Python numbers become
        arrays), so bind static options such as ``train=False`` with ``functools.partial``.
      prox: the proximal operator ``prox(x, hyperparams, scaling)``; default :func:`prox_l1`.
      stepsize: a fixed step :math:`s > 0` (e.g. :math:`1/L`), or None for backtracking.
      maxiter: the maximum number of iterations (a positive int).
      tol: the tolerance on ``info.error`` (absolute, in the units of the gradient).
      acceleration: FISTA momentum; False gives plain proximal gradient (ISTA).
      restart: adaptive restart of the momentum (only with ``acceleration``).
      mask: a pytree of bools (a prefix of ``params``) or a callable giving one; leaves whose mask
        is False are not penalized (the prox is not applied to them), e.g. an intercept. This
        keyword is reserved and not forwarded to ``loss_fn``.
      **kwargs: keyword data passed to ``loss_fn``.

    Returns:
      ``(params, info)``: the solution with the structure and dtypes of ``init_params``, and a
      :class:`FistaInfo` with ``num_iter``, ``error``, ``converged``, ``stepsize``, ``loss`` and
      ``num_restarts``.

    Raises:
      ValueError: a concrete ``l1reg``, ``tol`` or ``stepsize`` is negative or non-finite
        (``stepsize`` also when 0), ``maxiter`` is not a positive int, the loss is not a real
        scalar or cannot be evaluated on ``init_params`` and the data (wrong shapes), ``l1reg``
        does not broadcast to the parameters, the mask does not match, or the loss at
        ``init_params`` is NaN or infinite.
      TypeError: a parameter leaf is not real floating-point, or a flag is not a bool.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> X = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
      >>> y = jnp.array([1.0, 0.1, 1.1])
      >>> def loss(w, X, y):
      ...     return 0.5 * jnp.mean((X @ w - y) ** 2)
      >>> w, info = l1optax.fista(loss, jnp.zeros(2), 0.2, X, y, tol=1e-6)
      >>> print(w.round(4), bool(info.converged))
      [0.75 0.  ] True

    References:
      Beck & Teboulle, 2009, "A fast iterative shrinkage-thresholding algorithm for linear inverse
      problems", SIAM J. Imaging Sciences 2(1). O'Donoghue & Candès, 2015, "Adaptive restart for
      accelerated gradient schemes", Foundations of Computational Mathematics 15(3).
    """
    fn = "fista"
    _check_options(fn, stepsize, maxiter, tol, acceleration, restart)
    if prox is prox_l1:
        v.check_strength(l1reg, fn=fn, arg="l1reg", allow_schedule=False)
    else:
        _check_hyperparams(l1reg, fn=fn, arg="l1reg")
    _check_problem(fn, loss_fn, prox, init_params, l1reg, args, kwargs)
    init_params = jax.tree.map(jnp.asarray, init_params)
    mask_leaves = _full_mask(mask, init_params, fn=fn)
    return _fista_jit(
        loss_fn,
        prox,
        init_params,
        l1reg,
        args,
        kwargs,
        stepsize,
        tol,
        maxiter=int(maxiter),
        acceleration=bool(acceleration),
        restart=bool(restart) and bool(acceleration),
        mask_leaves=mask_leaves,
    )


def _check_hyperparams(hyper: Any, *, fn: str, arg: str) -> None:
    """Non-negative, finite numeric leaves (None leaves allowed, as in jaxopt's group lasso)."""
    leaves = [leaf for leaf in jax.tree.leaves(hyper) if leaf is not None]
    v.check_strength(leaves, fn=fn, arg=arg, allow_schedule=False)


def l1_path(
    loss_fn: Callable[..., jax.Array],
    init_params: Tree,
    l1regs: Any,
    *args: Any,
    **solver_options: Any,
) -> tuple[Tree, FistaInfo]:
    r"""Solutions along a decreasing sequence of strengths, warm-started, in one ``lax.scan``.

    .. math:: w(\lambda_k) = \arg\min_w f(w) + \lambda_k\|w\|_1, \quad \lambda_0 \ge \lambda_1 \ge \dots

    Each problem starts from the previous solution (and step size), as scikit-learn's
    ``lasso_path`` does; the whole path is a single compiled ``lax.scan`` over :func:`fista`
    solves. Strengths must be non-increasing: increasing ones are **refused** (not sorted), so
    that the ``k``-th output always belongs to the ``k``-th strength given. Use :func:`l1_grid`
    for scikit-learn's geometric grid.

    Args:
      loss_fn: the smooth loss, ``loss_fn(params, *args, **kwargs)`` returning a real scalar.
      init_params: the starting point of the first solve (a pytree of real float arrays).
      l1regs: the strengths, an array of shape ``(num,)``, or a pytree of arrays with a leading
        axis ``num`` (per-coordinate strengths, or a prox's tuple of hyperparameters); each leaf
        non-increasing along that axis.
      *args: data passed to ``loss_fn``.
      **solver_options: :func:`fista`'s keyword options (``prox``, ``stepsize``, ``maxiter``,
        ``tol``, ``acceleration``, ``restart``, ``mask``, with the same defaults); any other
        keyword is passed to ``loss_fn``.

    Returns:
      ``(params_path, info_path)``: pytrees like ``init_params`` and :class:`FistaInfo` with a
      leading axis of length ``num``.

    Raises:
      ValueError: a concrete strength is negative or non-finite, the strengths increase, their
        leading axes differ or are empty, or any of the conditions :func:`fista` refuses.
      TypeError: as for :func:`fista`.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import l1optax
      >>> X = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
      >>> y = jnp.array([1.0, 0.1, 1.1])
      >>> loss = lambda w, X, y: 0.5 * jnp.mean((X @ w - y) ** 2)
      >>> lams = l1optax.l1_grid(l1optax.lambda_max(loss, jnp.zeros(2), X, y), num=3, eps=0.1)
      >>> ws, info = l1optax.l1_path(loss, jnp.zeros(2), lams, X, y)
      >>> print(lams.round(4))
      [0.7    0.2214 0.07  ]
      >>> print(np.asarray(ws, dtype=np.float64).round(3))
      [[0.    0.   ]
       [0.718 0.   ]
       [0.93  0.03 ]]

    References:
      Friedman, Hastie & Tibshirani, 2010, "Regularization paths for generalized linear models
      via coordinate descent", Journal of Statistical Software 33(1).
    """
    fn = "l1_path"
    options = {
        "prox": prox_l1,
        "stepsize": None,
        "maxiter": 500,
        "tol": 1e-6,
        "acceleration": True,
        "restart": True,
        "mask": None,
    }
    kwargs = {}
    for key, value in solver_options.items():
        if key in _FISTA_OPTIONS:
            options[key] = value
        else:
            kwargs[key] = value
    prox = options["prox"]
    _check_options(
        fn,
        options["stepsize"],
        options["maxiter"],
        options["tol"],
        options["acceleration"],
        options["restart"],
    )
    if isinstance(l1regs, list | tuple) and all(
        isinstance(x, int | float | np.number) for x in l1regs
    ):
        l1regs = np.asarray(l1regs, dtype=np.float64)
    leaves = jax.tree.leaves(l1regs)
    if not leaves:
        raise ValueError(f"`{fn}(l1regs=...)` is empty")
    lengths = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
    if None in lengths or len(lengths) != 1 or 0 in lengths:
        raise ValueError(
            f"`{fn}(l1regs=...)` must have a non-empty leading axis (one entry per strength), "
            f"the same for every leaf; got leading sizes {sorted(lengths, key=str)}"
        )
    if prox is prox_l1:
        v.check_strength(l1regs, fn=fn, arg="l1regs", allow_schedule=False)
    else:
        _check_hyperparams(l1regs, fn=fn, arg="l1regs")
    for path, leaf in jax.tree_util.tree_leaves_with_path(l1regs):
        if leaf is None or isinstance(leaf, jax.core.Tracer):
            continue
        arr = np.asarray(leaf, dtype=np.float64)
        steps = np.diff(arr, axis=0)
        if np.any(steps > 0):
            k = int(np.argwhere(steps > 0)[0][0])
            where = f" at {jax.tree_util.keystr(path)}" if path else ""
            raise ValueError(
                f"`{fn}(l1regs=...)` must be non-increasing (warm starts go from strong to weak "
                f"regularization; pass e.g. np.sort(l1regs)[::-1]), but entry {k + 1} "
                f"({arr[k + 1].ravel()[0]!r}) exceeds entry {k} ({arr[k].ravel()[0]!r}){where}"
            )
    first = jax.tree.map(lambda leaf: leaf[0], l1regs)
    _check_problem(fn, loss_fn, prox, init_params, first, args, kwargs)
    init_params = jax.tree.map(jnp.asarray, init_params)
    mask_leaves = _full_mask(options["mask"], init_params, fn=fn)
    return _path_jit(
        loss_fn,
        prox,
        init_params,
        l1regs,
        args,
        kwargs,
        options["stepsize"],
        options["tol"],
        maxiter=int(options["maxiter"]),
        acceleration=bool(options["acceleration"]),
        restart=bool(options["restart"]) and bool(options["acceleration"]),
        mask_leaves=mask_leaves,
    )


def l1_grid(lambda_max: float | jax.Array, num: int = 100, eps: float = 1e-3) -> jax.Array:
    r"""The geometric grid of strengths scikit-learn's ``lasso_path`` uses, largest first.

    .. math:: \lambda_k = \lambda_{\max}\,\epsilon^{k/(\mathrm{num}-1)}, \quad k = 0, \dots, \mathrm{num}-1

    Args:
      lambda_max: the largest strength (see :func:`lambda_max`), non-negative and finite.
      num: the number of strengths, a positive int.
      eps: the ratio :math:`\lambda_{\min}/\lambda_{\max}`, in :math:`(0, 1]`.

    Returns:
      A decreasing array of shape ``(num,)`` in the dtype of ``lambda_max`` (at least float32).

    Raises:
      ValueError: ``num`` is not a positive int, ``eps`` is not in (0, 1], or a concrete
        ``lambda_max`` is negative or non-finite.

    Examples:
      >>> import l1optax
      >>> print(l1optax.l1_grid(1.0, num=4, eps=1e-3).round(6))
      [1.    0.1   0.01  0.001]

    References:
      Friedman, Hastie & Tibshirani, 2010, "Regularization paths for generalized linear models
      via coordinate descent", Journal of Statistical Software 33(1).
    """
    fn = "l1_grid"
    if isinstance(num, bool) or not isinstance(num, int | np.integer) or num < 1:
        raise ValueError(f"`{fn}(num=...)` must be a positive int, got {num!r}")
    if isinstance(eps, jax.core.Tracer) or not (
        np.isfinite(np.asarray(eps, dtype=np.float64)) and 0 < float(eps) <= 1
    ):
        raise ValueError(f"`{fn}(eps=...)` must be a number in (0, 1], got {eps!r}")
    v.check_strength(lambda_max, fn=fn, arg="lambda_max", allow_schedule=False)
    lam = jnp.asarray(lambda_max)
    lam = lam.astype(v.compute_dtype(lam.dtype))
    if num == 1:
        return lam[None]
    exponents = jnp.arange(num, dtype=lam.dtype) / (num - 1)
    grid = lam * jnp.asarray(eps, lam.dtype) ** exponents
    return grid.at[0].set(lam)


def lambda_max(
    loss_fn: Callable[..., jax.Array],
    params: Tree,
    *args: Any,
    mask: Tree | Callable[[Tree], Tree] | None = None,
    weights: Any = None,
) -> jax.Array:
    r"""The smallest L1 strength at which every penalized coordinate of the solution is zero.

    .. math:: \lambda_{\max} = \max_{i\ \mathrm{penalized}} |\nabla_i f(w_0)| / c_i, \quad (w_0)_i = 0 \text{ if penalized}

    For a convex :math:`f`, :math:`w_0` (penalized coordinates zero, unpenalized leaves at the
    values given) is optimal for :math:`f + \lambda\sum_i c_i|w_i|` exactly when
    :math:`\lambda \ge \lambda_{\max}`. The unpenalized (masked-out) leaves, such as an intercept,
    keep the values given in ``params``: pass them at their optimum for zero penalized weights
    (e.g. the intercept ``mean(y)`` for least squares) to get the exact :math:`\lambda_{\max}`.
    For the lasso loss :math:`\tfrac1{2n}\|Xw - y\|^2` this is scikit-learn's ``alpha_max``,
    :math:`\|X^\top y\|_\infty / n`.

    Args:
      loss_fn: the smooth loss, called as ``loss_fn(params, *args)``.
      params: a pytree of real float arrays; the values of penalized leaves are ignored.
      *args: data passed to ``loss_fn``.
      mask: a pytree of bools (a prefix of ``params``) or a callable giving one; False leaves are
        unpenalized.
      weights: per-coordinate penalty weights :math:`c_i \ge 0` (a scalar or a pytree like
        ``params``, a prefix allowed); coordinates with weight 0 are unpenalized and ignored.

    Returns:
      A scalar (float32, or float64 for float64 parameters); 0 if nothing is penalized.

    Raises:
      ValueError: concrete ``weights`` are negative or non-finite, or ``mask``/``weights`` do not
        match ``params``.
      TypeError: a parameter leaf is not floating-point.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> X = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
      >>> y = jnp.array([1.0, 0.1, 1.1])
      >>> loss = lambda w, X, y: 0.5 * jnp.mean((X @ w - y) ** 2)
      >>> print(l1optax.lambda_max(loss, jnp.zeros(2), X, y).round(6))  # max |X.T @ y| / 3
      0.7

    References:
      Tibshirani, 1996, "Regression shrinkage and selection via the lasso". Friedman, Hastie &
      Tibshirani, 2010, "Regularization paths for generalized linear models via coordinate
      descent".
    """
    fn = "lambda_max"
    params = jax.tree.map(jnp.asarray, params)
    v.check_float_leaves(params, fn=fn)
    mask_leaves = _full_mask(mask, params, fn=fn)
    treedef = jax.tree.structure(params)
    leaves = jax.tree.leaves(params)
    zero = jax.tree.unflatten(
        treedef, [jnp.zeros_like(p) if m else p for m, p in zip(mask_leaves, leaves, strict=True)]
    )
    grads = jax.tree.leaves(jax.grad(lambda p: loss_fn(p, *args))(zero))
    if weights is None:
        weight_leaves = [None] * len(leaves)
    else:
        v.check_strength(weights, fn=fn, arg="weights", allow_schedule=False)
        weight_leaves = jax.tree.leaves(
            v.broadcast_to_params(weights, params, fn=fn, arg="weights"), is_leaf=v.is_none
        )
    dtype = _param_compute_dtype(params)
    out = jnp.zeros((), dtype)
    for m, g, c in zip(mask_leaves, grads, weight_leaves, strict=True):
        if not m or g.size == 0:
            continue
        a = jnp.abs(g.astype(dtype))
        if c is not None:
            c = jnp.broadcast_to(jnp.asarray(c, dtype), a.shape)
            a = jnp.where(c > 0, a / jnp.where(c > 0, c, 1), 0)
        out = jnp.maximum(out, jnp.max(a))
    return out
