"""Full-batch convex solvers: FISTA with backtracking and restart, regularization paths, lambda_max.

The maintained successor to ``jaxopt.ProximalGradient`` for lasso-type problems: any differentiable
loss over a pytree plus any l1optax prox (jaxopt's ``prox(x, hyperparams, scaling)`` signature).
Everything runs in one compiled ``lax.while_loop`` (a path is one ``lax.scan`` of them), so the
solvers work under ``jax.jit`` and ``jax.vmap`` (e.g. over the strength) on CPU and GPU.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from l1optax import _validation as v
from l1optax._prox import prox_l1

Tree = Any
Prox = Callable[[Tree, Any, Any], Tree]

_DECREASE = 0.5  # backtracking factor
_MAX_BACKTRACK = 60  # tries per iteration before the solver stops at the rounding floor
_GROW_AFTER = 10  # first-try acceptances in a row after which the trial step doubles
_STALL = 200  # iterations without the error halving, once far down, that mean the floor
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
    s: jax.Array  # the next trial step
    s_acc: jax.Array  # the last accepted step (what info.stepsize reports)
    s_ref: jax.Array  # the largest step accepted with a decrease clear of rounding
    s_cap: jax.Array  # 0.9 times the smallest trial step that failed
    streak: jax.Array  # iterations in a row whose first trial step was accepted
    floor: jax.Array  # True once the solver stopped at the rounding floor
    e_first: jax.Array  # the error after the first iteration
    e_mark: jax.Array  # the error when it last halved ...
    it_mark: jax.Array  # ... and at which iteration
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
    # rounding happens at the iterates' own precision (bfloat16 params: bfloat16 steps)
    eps = max(float(jnp.finfo(leaf.dtype).eps) for leaf in jax.tree.leaves(x0))

    f0, g0 = value_and_grad(x0)
    f0 = f0.astype(dtype)
    if s0 is None:
        s0 = _initial_stepsize(grad_fn, x0, g0, dtype)
    s0 = jnp.asarray(s0, dtype)

    def step(y, g_y, s):
        x_new = prox(_axpy(-s, g_y, y), l1reg, s)
        return jax.tree.map(lambda a, b: a.astype(b.dtype), x_new, y)

    def line_search(y, f_y, g_y, s, s_min):
        def attempt(s):
            x_new = step(y, g_y, s)
            diff = _sub(x_new, y)
            f_new = fun(x_new).astype(dtype)
            sq = _sqnorm(diff, dtype)
            lin = _vdot(g_y, diff, dtype)
            model = f_y + lin + sq / (2 * s)
            slack = 16 * eps * (jnp.abs(f_y) + jnp.abs(f_new))
            f_ok = f_new <= model + slack
            # Near convergence the decrease drowns in the rounding of f itself (worst when f is a
            # small difference of large terms, e.g. a loss written from a Gram matrix) and the
            # test above fails spuriously. When it fails by less than sqrt(eps) of f, the
            # curvature test <grad f(x_new) - grad f(y), d> <= |d|^2 / s (the same condition for
            # a quadratic) decides instead: it has no cancellation of f's terms.
            near = f_new - model <= jnp.sqrt(eps) * (jnp.abs(f_y) + jnp.abs(f_new))

            def curvature_ok():
                g_new = grad_fn(x_new)
                return _vdot(_sub(g_new, g_y), diff, dtype) <= sq / s * (1 + 1e-6)

            ok = jax.lax.cond(near & ~f_ok, curvature_ok, lambda: f_ok)
            noisy = near & ~f_ok
            decisive = f_new - model <= -jnp.sqrt(eps) * (jnp.abs(f_y) + jnp.abs(f_new))
            # the curvature along the step, to backtrack to about the largest step that passes
            # (when f's rounding decided, that estimate is noise: plain halving then)
            curv = 2 * (f_new - f_y - lin) / jnp.where(sq > 0, sq, 1.0)
            curv = jnp.where(noisy, 0.99 / (_DECREASE * s), curv)
            return x_new, f_new, ok, curv, jnp.sqrt(sq) / s, decisive

        x_new, f_new, ok, curv, error0, decisive = attempt(s)

        def cond(c):
            return (~c[3]) & (c[5] < _MAX_BACKTRACK) & (c[0] > s_min)

        def body(c):
            s_old, curv = c[0], c[4]
            factor = 0.99 / (s_old * curv)
            factor = jnp.where(jnp.isfinite(factor) & (factor > 0), factor, _DECREASE)
            s_try = s_old * jnp.clip(factor, 0.1, 0.9)
            x_try, f_try, ok_try, curv_try, _, dec_try = attempt(s_try)
            return s_try, x_try, f_try, ok_try, curv_try, c[5] + 1, dec_try

        s, x_new, f_new, ok, _, tries, decisive = jax.lax.while_loop(
            cond, body, (s, x_new, f_new, ok, curv, jnp.int32(0), decisive)
        )
        return x_new, f_new, s, ok, tries == 0, error0, decisive

    def cond_fn(st: _LoopState):
        return (st.it < maxiter) & (st.error > tol) & ~st.floor

    def body_fn(st: _LoopState):
        if backtracking:
            # A step is searched only down to 1/16 of the last accepted one (the whole range on
            # the first iteration): a smooth loss whose curvature jumps 16-fold within one step
            # is rare, while at the rounding floor both tests fail on noise. There the solver
            # stops with the last accepted iterate instead of collapsing the step. After
            # _GROW_AFTER first-try successes in a row the trial step doubles (jaxopt doubles
            # every iteration, which upsets the momentum), so one early cut is not kept for good.
            s_min = jnp.where(st.it == 0, 0.0, st.s_acc / 16).astype(dtype)
            x_new, f_x, s, ok, first_try, error0, decisive = line_search(
                st.y, st.f_y, st.g_y, st.s, s_min
            )
            # growth is capped at twice the largest step whose decrease stood clear of rounding:
            # steps passed on noise at the floor must not escalate
            s_ref = jnp.where(ok & decisive, jnp.maximum(st.s_ref, s), st.s_ref)
            # ... and never to 0.9 of a trial step that failed in this solve: a step that keeps
            # changing upsets FISTA's momentum, so the trial settles below the smallest failure
            s_cap = jnp.where(first_try, st.s_cap, jnp.minimum(st.s_cap, 0.9 * st.s))
            streak = jnp.where(first_try, st.streak + 1, 0)
            grow = streak >= _GROW_AFTER
            s_next = jnp.where(
                grow, jnp.maximum(s, jnp.minimum(jnp.minimum(2 * s, 2 * s_ref), s_cap)), s
            )
            streak = jnp.where(grow, 0, streak)
        else:
            s = st.s
            x_new, f_x = step(st.y, st.g_y, s), st.f_x
            ok, s_next, error0 = jnp.asarray(True), s, None
            s_ref, streak, s_cap = st.s_ref, st.streak, st.s_cap
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
        # Stagnation at the floor: the error has not halved in _STALL iterations although it is
        # already eps**0.75 below its first value: rounding, not the method, limits it now.
        e_first = jnp.where(st.it == 0, error, st.e_first)
        halved = error < 0.5 * st.e_mark
        e_mark = jnp.where(halved, error, st.e_mark)
        it_mark = jnp.where(halved, st.it, st.it_mark)
        stalled = (st.it - it_mark > _STALL) & (e_mark <= eps**0.75 * e_first)
        new = _LoopState(
            x_new, y_new, t_next, s_next, s, s_ref, s_cap, streak, stalled, e_first, e_mark, it_mark,
            f_y.astype(dtype), g_y, f_x, st.it + 1, error, restarts,
        )  # fmt: skip
        if not backtracking:
            return new
        # at the floor: keep the last accepted iterate and step, report the trial's error, stop
        stopped = st._replace(floor=jnp.asarray(True), it=st.it + 1, error=error0)
        take = ok | jnp.isnan(error0)  # NaN (bad data or a traced negative strength) propagates
        return jax.tree.map(lambda a, b: jnp.where(take, a, b), new, stopped)

    init = _LoopState(
        x=x0,
        y=x0,
        t=jnp.ones((), dtype),
        s=s0,
        s_acc=s0,
        s_ref=s0,
        s_cap=jnp.asarray(jnp.inf, dtype),
        streak=jnp.zeros((), jnp.int32),
        floor=jnp.asarray(False),
        e_first=jnp.asarray(jnp.inf, dtype),
        e_mark=jnp.asarray(jnp.inf, dtype),
        it_mark=jnp.zeros((), jnp.int32),
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
        stepsize=final.s_acc,
        loss=loss,
        num_restarts=final.restarts,
    )
    return final.x, info


@functools.partial(
    jax.jit,
    static_argnames=("program", "prox", "maxiter", "acceleration", "restart", "mask_leaves"),
)
def _fista_jit(
    program, consts, prox, init_params, l1reg, args, kwargs, stepsize, tol, *, maxiter,
    acceleration, restart, mask_leaves,
):  # fmt: skip
    fun = functools.partial(program.call, consts, args=args, kwargs=kwargs)
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


class _Static(NamedTuple):
    """The compile-time part of a :func:`fista` call."""

    program: Any
    prox: Any
    maxiter: int
    acceleration: bool
    restart: bool
    mask_leaves: tuple


def _fista_solve(static: _Static, consts, init_params, l1reg, args, kwargs, stepsize, tol):
    return _fista_jit(
        static.program, consts, static.prox, init_params, l1reg, args, kwargs, stepsize, tol,
        maxiter=static.maxiter, acceleration=static.acceleration, restart=static.restart,
        mask_leaves=static.mask_leaves,
    )  # fmt: skip


_fista_differentiable = jax.custom_jvp(_fista_solve, nondiff_argnums=(0,))


@_fista_differentiable.defjvp
def _fista_jvp(static: _Static, primals, tangents):
    """Implicit differentiation of the solution: the fixed point x = T(x, theta) of the
    proximal-gradient map T = prox(x - s grad f(x), l1reg, s), at the returned x and step s,
    linearized as (I - dT/dx) dx = dT/dtheta dtheta for theta = (the loss's closed-over data,
    l1reg, args, kwargs), and solved by GMRES (a custom linear solve, so that reverse mode
    transposes it). For the L1 prox, dT/dx = D (I - s H) with D the support's indicator: the
    system is H_SS dx_S = ... on the support and dx = 0 off it, the optimality condition on the
    support; any prox differentiable at the solution works the same way. The start and the
    options have no effect on the solution: no derivative."""
    consts, _, l1reg, args, kwargs, _, _ = primals
    x, info = _fista_solve(static, *primals)
    step = jax.lax.stop_gradient(info.stepsize)
    prox = _masked_prox(static.prox, static.mask_leaves)

    def fixed_map(x, consts, l1reg, args, kwargs):
        grad = jax.grad(lambda p: static.program.call(consts, p, args=args, kwargs=kwargs))(x)
        return prox(jax.tree.map(lambda a, g: a - (step * g).astype(a.dtype), x, grad), l1reg, step)

    t_consts, _, t_l1reg, t_args, t_kwargs, _, _ = tangents
    theta = (consts, l1reg, args, kwargs)
    _, rhs = jax.jvp(
        lambda *theta: fixed_map(x, *theta), theta, (t_consts, t_l1reg, t_args, t_kwargs)
    )

    # one flat vector: GMRES runs on one array, and the right-hand side is then linear in the
    # tangents as a whole (a leaf with none, e.g. an unpenalized one, would stop the transpose)
    flat_x, unravel = jax.flatten_util.ravel_pytree(x)

    # dT/dx linearized once, not re-derived (with the loss's gradient) at every GMRES step
    _, map_jvp = jax.linearize(lambda x: fixed_map(x, *theta), x)

    def matvec(v):  # (I - dT/dx) v
        return v - jax.flatten_util.ravel_pytree(map_jvp(unravel(v)))[0]

    eps = float(jnp.finfo(flat_x.dtype).eps)

    def solve(mv, b):
        return jax.scipy.sparse.linalg.gmres(
            mv, b, tol=eps**0.75, atol=0.0, restart=min(flat_x.size, 30),
            maxiter=max(10, flat_x.size),
        )[0]  # fmt: skip

    # reverse mode: custom_linear_solve transposes matvec (a jvp) and solves with A^T
    flat_dx = jax.lax.custom_linear_solve(
        matvec, jax.flatten_util.ravel_pytree(rhs)[0], solve, transpose_solve=solve
    )
    dx = unravel(flat_dx)
    zero = jax.tree.map(_zero_tangent, info)
    return (x, info), (dx, zero)


def _zero_tangent(a):
    a = jnp.asarray(a)
    if jnp.issubdtype(a.dtype, jnp.inexact):
        return jnp.zeros_like(a)
    return np.zeros(a.shape, jax.dtypes.float0)


@functools.partial(
    jax.jit,
    static_argnames=("program", "prox", "maxiter", "acceleration", "restart", "mask_leaves"),
)
def _path_jit(
    program, consts, prox, init_params, l1regs, args, kwargs, stepsize, tol, *, maxiter,
    acceleration, restart, mask_leaves,
):  # fmt: skip
    fun = functools.partial(program.call, consts, args=args, kwargs=kwargs)
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


class _Program:
    """A loss traced to a jaxpr, with the arrays it closes over taken out as arguments.

    Two programs are equal when their jaxprs print the same (same operations, shapes, dtypes
    and literal constants), so a compiled solver is reused for a new loss object computing the
    same thing, while data a loss reads from globals or a closure (the jaxpr's constants) are
    passed in fresh on every call and are never stale.
    """

    __slots__ = ("_key", "jaxpr", "num_consts")

    def __init__(self, jaxpr: Any, in_tree: Any, const_avals: tuple) -> None:
        self.jaxpr = jaxpr
        self.num_consts = len(const_avals)
        self._key = (str(jaxpr), in_tree, const_avals)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Program) and self._key == other._key

    def call(self, consts, params, *, args, kwargs):
        flat = jax.tree.leaves((params, args, kwargs))
        return jax.core.eval_jaxpr(self.jaxpr, consts, *flat)[0]


# keyword spellings from scikit-learn, jaxopt and optax that are not options of the solvers
_SPELLINGS = {
    "max_iter": "maxiter",
    "maxiters": "maxiter",
    "max_iters": "maxiter",
    "num_iter": "maxiter",
    "n_iter": "maxiter",
    "step_size": "stepsize",
    "learning_rate": "stepsize",
    "tolerance": "tol",
    "accelerate": "acceleration",
}


def _accepts_keyword(fn: Callable, name: str) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        or (p.name == name and p.kind is not inspect.Parameter.POSITIONAL_ONLY)
        for p in parameters
    )


def _trace_loss(fn: str, loss_fn: Callable, params: Tree, args: tuple, kwargs: dict):
    """Traces ``loss_fn`` once per call (milliseconds): shape errors are named, data are fresh."""
    for key in kwargs:
        if key in _SPELLINGS and not _accepts_keyword(loss_fn, key):
            raise TypeError(
                f"`{fn}({key}=...)` is not an option of `{fn}`; did you mean "
                f"`{_SPELLINGS[key]}=`? (keywords that are not options are passed to loss_fn, "
                f"which does not take `{key}`)"
            )

    def flat_loss(p, a, k):
        return loss_fn(p, *a, **k)

    try:
        closed, out = jax.make_jaxpr(flat_loss, return_shape=True)(params, args, kwargs)
    except Exception as err:  # noqa: BLE001 - re-raised with the solver's name
        message = str(err)
        if isinstance(err, TypeError) and "keyword argument" in message:
            hint = (
                f"keywords that are not options of `{fn}` ({', '.join(_FISTA_OPTIONS)}) are "
                "passed to loss_fn"
            )
        else:
            hint = "check the shapes of init_params and of the data arguments"
        raise ValueError(
            f"`{fn}`: loss_fn(init_params, *args, **kwargs) failed ({type(err).__name__}: "
            f"{message}); {hint}"
        ) from err
    if not (hasattr(out, "shape") and out.shape == () and jnp.issubdtype(out.dtype, jnp.floating)):
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(
            f"`{fn}(loss_fn=...)` must return a real scalar, got {shape} "
            f"{getattr(out, 'dtype', '')}".rstrip()
        )
    consts = list(closed.consts)
    const_avals = tuple((tuple(np.shape(c)), str(jnp.result_type(c))) for c in consts)
    program = _Program(closed.jaxpr, jax.tree.structure((params, args, kwargs)), const_avals)
    return program, consts


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
) -> tuple[_Program, list]:
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
    program, consts = _trace_loss(fn, loss_fn, init_params, args, kwargs)
    try:
        key = (fn, prox, *_abstract(init_params), *_abstract(l1reg))
        hash(key)
    except TypeError:  # unhashable static data: check without the cache
        _check_prox(fn, prox, init_params, l1reg)
    else:
        _check_prox_cached(key, fn, prox, init_params, l1reg)
    if not _has_tracer((init_params, args, kwargs, consts)):
        f0 = _loss_value(program, consts, init_params, args, kwargs)
        if not np.isfinite(np.asarray(f0)):
            raise ValueError(
                f"`{fn}`: the loss at init_params is {float(f0)!r}; it must be finite to start "
                "(check the data for NaN/inf and the initial parameters)"
            )
    return program, consts


def _abstract(tree: Tree) -> tuple:
    """A hashable description of a pytree's structure, shapes and dtypes (raises TypeError)."""
    leaves, treedef = jax.tree.flatten(tree)
    avals: list[tuple] = []
    for leaf in leaves:
        if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
            avals.append((tuple(leaf.shape), str(leaf.dtype), getattr(leaf, "weak_type", False)))
        elif isinstance(leaf, bool | int | float | complex):
            avals.append((type(leaf).__name__,))
        else:
            raise TypeError("not cacheable")
    return treedef, tuple(avals)


_SHAPE_CACHE: dict = {}


def _check_prox_cached(key, fn, prox, init_params, l1reg) -> None:
    """Tracing the prox costs milliseconds: do it once per signature."""
    if key in _SHAPE_CACHE:
        return
    _check_prox(fn, prox, init_params, l1reg)
    if len(_SHAPE_CACHE) > 512:
        _SHAPE_CACHE.clear()
    _SHAPE_CACHE[key] = True


def _check_prox(fn, prox, init_params, l1reg) -> None:
    try:
        proxed = jax.eval_shape(lambda p, h: prox(p, h, 1.0), init_params, l1reg)
    except Exception as err:  # noqa: BLE001 - re-raised with the solver's name
        raise ValueError(
            f"`{fn}`: prox(init_params, l1reg, 1.0) failed ({type(err).__name__}: {err}); "
            "check that l1reg is a scalar or a pytree of arrays broadcastable to init_params"
        ) from err
    want = jax.tree.map(lambda p: (p.shape, p.dtype), init_params)
    got = jax.tree.map(lambda p: (p.shape, p.dtype), proxed)
    want_def: Any = jax.tree.structure(want)
    if want_def != jax.tree.structure(got) or want != got:
        raise ValueError(
            f"`{fn}(prox=...)` must return a pytree with the structure, shapes and dtypes of "
            f"init_params; got {got} for {want}"
        )


@functools.partial(jax.jit, static_argnames=("program",))
def _loss_value(program, consts, params, args, kwargs):
    return program.call(consts, params, args=args, kwargs=kwargs)


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

    The whole solve is one compiled ``lax.while_loop``. ``loss_fn`` is traced on every call (a
    few milliseconds) and compiled once per distinct computation, ``prox`` object and option
    set; data in ``args``/``kwargs`` are traced, so new data do not recompile. Arrays the loss
    reads from a closure or from globals are passed in fresh on every call, so a solution is
    never stale, but a changed Python number read that way recompiles: pass data as arguments.
    It also runs inside ``jax.jit`` and ``jax.vmap`` (e.g. over ``l1reg``: a batch of
    independent problems). Any prox with jaxopt's signature ``prox(x, hyperparams, scaling)``
    works; ``l1reg`` is passed as ``hyperparams`` (a tuple for elastic net, per-coordinate
    arrays for a weighted lasso). A drop-in replacement for
    ``jaxopt.ProximalGradient(fun, prox, acceleration=True).run(init_params, l1reg, *args)``.

    ``jax.grad`` and ``jax.jvp`` go through the solution by implicit differentiation (with
    respect to ``l1reg``, ``args``, ``kwargs`` and arrays the loss closes over; never by
    unrolling the loop): the fixed point :math:`w = \mathrm{prox}_{s\lambda}(w - s\nabla f(w))`
    is linearized at the returned solution and solved by GMRES, which for the L1 prox is the
    optimality condition on the support (:math:`\nabla^2_{SS} f\, dw_S = \dots`, :math:`dw = 0`
    off it). A tight ``tol`` makes the derivative as accurate as the solution; a prox must be
    differentiable at the solution (not at a kink of the path).

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
    program, consts = _check_problem(fn, loss_fn, prox, init_params, l1reg, args, kwargs)
    init_params = jax.tree.map(jnp.asarray, init_params)
    mask_leaves = _full_mask(mask, init_params, fn=fn)
    static = _Static(
        program, prox, int(maxiter), bool(acceleration), bool(restart) and bool(acceleration),
        mask_leaves,
    )  # fmt: skip
    operands = (consts, init_params, l1reg, args, kwargs, stepsize, tol)
    if _has_tracer(operands):  # something may be differentiated (the start: a zero derivative)
        return _fista_differentiable(static, *operands)
    return _fista_solve(static, *operands)  # custom_jvp's dispatch costs ~1 ms: skipped


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
    options: dict[str, Any] = {
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
            first_bad = tuple(int(i) for i in np.argwhere(steps > 0)[0])
            k, coord = first_bad[0], first_bad[1:]
            where = jax.tree_util.keystr(path) if path else ""
            if coord:
                where += "[" + ", ".join(map(str, coord)) + "]"
            where = f" at {where}" if where else ""
            later, earlier = float(arr[(k + 1,) + coord]), float(arr[(k,) + coord])
            raise ValueError(
                f"`{fn}(l1regs=...)` must be non-increasing (warm starts go from strong to weak "
                f"regularization; pass e.g. np.sort(l1regs)[::-1]), but entry {k + 1} "
                f"({later!r}) exceeds entry {k} ({earlier!r}){where}"
            )
    first = jax.tree.map(lambda leaf: leaf[0], l1regs)
    program, consts = _check_problem(fn, loss_fn, prox, init_params, first, args, kwargs)
    init_params = jax.tree.map(jnp.asarray, init_params)
    mask_leaves = _full_mask(options["mask"], init_params, fn=fn)
    return _path_jit(
        program,
        consts,
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


def _broadcastable(a: tuple, b: tuple) -> bool:
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        return False
    return True


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
    if np.ndim(lambda_max) != 0:
        raise ValueError(
            f"`{fn}(lambda_max=...)` must be a scalar, got shape {np.shape(lambda_max)}; for "
            "per-coordinate strengths pass np.outer(l1_grid(1.0, num, eps), weights) to l1_path"
        )
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
    weight_leaves: list[Any]
    if weights is None:
        weight_leaves = [None] * len(leaves)
    else:
        v.check_strength(weights, fn=fn, arg="weights", allow_schedule=False)
        weight_tree = v.broadcast_to_params(weights, params, fn=fn, arg="weights")
        full = jax.tree.map(
            lambda c, sub: jax.tree.map(lambda _: c, sub), weight_tree, params, is_leaf=v.is_none
        )
        weight_leaves = jax.tree.leaves(full, is_leaf=v.is_none)
        for (path, p), c in zip(
            jax.tree_util.tree_leaves_with_path(params), weight_leaves, strict=True
        ):
            shape = np.shape(c)
            if c is not None and not (
                _broadcastable(shape, p.shape) and np.broadcast_shapes(shape, p.shape) == p.shape
            ):
                raise ValueError(
                    f"`{fn}(weights=...)` must broadcast to each parameter without changing its "
                    f"shape, got shape {shape} for leaf "
                    f"{jax.tree_util.keystr(path) or '<root>'} of shape {p.shape}"
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
