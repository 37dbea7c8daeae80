"""The many-leaf fast path: parameters and optimizer state in a few contiguous buffers.

A jitted optax step over a model with hundreds of small parameter arrays spends most of its time
passing arrays, not computing: every call hands params, grads and each state tree (two for Adam)
to the runtime leaf by leaf, and the optimizer runs one small kernel per leaf. Holding the
parameters as one 1-D buffer per dtype, *for the whole training run*, removes both costs: the
optimizer sees a dict of one or two big arrays (so its state is one or two big arrays too), and
the model reads its weights through :meth:`FlatLayout.unravel`, which splits the buffer into
views inside the compiled step. The gradient with respect to the buffer is assembled by one
concatenation, the transpose of that split.

This differs from ``optax.flatten``, which keeps tree-shaped parameters and concatenates the
parameters *and* the gradients into fresh buffers on every step, then splits the updates back:
three extra passes over all parameters per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from l1optax import _validation as v
from l1optax._types import Tree

Flat = dict[str, jax.Array]


class FlatLayout:
    r"""How a pytree of parameters maps onto one contiguous 1-D buffer per dtype.

    .. math:: \mathrm{unravel}(\mathrm{ravel}(p)) = p \quad\text{(bitwise)}

    Build it once from the initial parameters with :func:`flat_layout`, train on
    ``flat = layout.ravel(params)`` (a dict ``{dtype name: 1-D array}``, in leaf order), and let
    the loss read the weights through ``layout.unravel(flat)``. Any optax transform, including
    the l1optax ones, then runs on a handful of large arrays instead of one array per leaf, and
    its state has the same handful of arrays. Per-leaf hyperparameters (an ``l1reg`` tree, a
    mask) become per-coordinate buffers through :meth:`ravel_hyperparams`.

    Layouts compare equal (and hash equal) when the tree structure, shapes and dtypes agree, so
    a layout may be a static argument of ``jax.jit``. Single-device arrays only: concatenating
    sharded leaves would gather them.

    Attributes:
      treedef: the parameters' tree structure (None leaves kept).
      shapes: each leaf's shape, in leaf order.
      dtypes: each leaf's dtype, in leaf order.
      groups: for each dtype name, the leaf indices stored in that buffer, in order.
      sizes: for each dtype name, the buffer's length.

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> import l1optax
      >>> params = {"b": jnp.zeros(2), "w": jnp.ones((2, 3))}
      >>> layout = l1optax.flat_layout(params)
      >>> flat = layout.ravel(params)
      >>> {k: x.shape for k, x in flat.items()}
      {'float32': (8,)}
      >>> layout.unravel(flat)["w"].shape
      (2, 3)

    References:
      Bradbury et al., 2018, "JAX: composable transformations of Python+NumPy programs"
      (``jax.flatten_util.ravel_pytree``, which promotes all leaves to one dtype; this keeps them).
    """

    def __init__(self, treedef: Any, shapes: tuple, dtypes: tuple):
        self.treedef = treedef
        self.shapes = tuple(tuple(int(d) for d in s) for s in shapes)
        self.dtypes = tuple(jnp.dtype(d) for d in dtypes)
        groups: dict[str, list[int]] = {}
        for i, dtype in enumerate(self.dtypes):
            groups.setdefault(dtype.name, []).append(i)
        self.groups = {k: tuple(idx) for k, idx in groups.items()}
        self._leaf_sizes = tuple(int(np.prod(s, dtype=np.int64)) for s in self.shapes)
        self.sizes = {k: sum(self._leaf_sizes[i] for i in idx) for k, idx in self.groups.items()}

    # --- identity -------------------------------------------------------------------------
    def _key(self):
        return (self.treedef, self.shapes, self.dtypes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FlatLayout) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        bufs = ", ".join(f"{k}[{n}]" for k, n in self.sizes.items())
        return f"FlatLayout({self.num_leaves} leaves -> {bufs})"

    @property
    def num_leaves(self) -> int:
        return len(self.shapes)

    @property
    def size(self) -> int:
        """Total number of parameters (all buffers)."""
        return sum(self.sizes.values())

    # --- conversions ----------------------------------------------------------------------
    def _leaves(self, tree: Tree, *, fn: str) -> list[Any]:
        leaves, treedef = jax.tree.flatten(tree)
        if treedef != self.treedef:
            raise ValueError(
                f"`{fn}` got a tree with structure {treedef}, but the layout was built for "
                f"{self.treedef}"
            )
        for i, leaf in enumerate(leaves):
            shape = tuple(np.shape(leaf))
            if shape != self.shapes[i]:
                path = _leaf_paths(tree)[i]
                raise ValueError(
                    f"`{fn}` got shape {shape} at leaf {path}, but the layout expects "
                    f"{self.shapes[i]}"
                )
        return leaves

    def ravel(self, tree: Tree) -> Flat:
        r"""Concatenates the leaves of ``tree`` into one 1-D buffer per dtype of the layout.

        .. math:: \mathrm{ravel}(p)_g = [\mathrm{vec}(p_{i_1}), \ldots, \mathrm{vec}(p_{i_k})]

        Call it once on the initial parameters (or on anything shaped like them: a gradient
        tree, a per-coordinate weight tree); leaves are cast to the layout's dtype of their slot.

        Args:
          tree: a pytree with the layout's structure and shapes.

        Returns:
          A dict ``{dtype name: 1-D array}`` in the layout's group order.

        Raises:
          ValueError: the structure or a leaf's shape does not match the layout.

        Examples:
          >>> import jax.numpy as jnp, l1optax
          >>> layout = l1optax.flat_layout([jnp.ones(2), jnp.zeros((1, 1))])
          >>> layout.ravel([jnp.array([1.0, 2.0]), jnp.array([[3.0]])])["float32"]
          Array([1., 2., 3.], dtype=float32)
        """
        leaves = self._leaves(tree, fn="FlatLayout.ravel")
        out = {}
        for name, idx in self.groups.items():
            dtype = jnp.dtype(name)
            parts = [jnp.ravel(jnp.asarray(leaves[i])).astype(dtype) for i in idx]
            out[name] = jnp.concatenate(parts) if len(parts) > 1 else parts[0]
        return out

    def unravel(self, flat: Flat) -> Tree:
        r"""Splits the buffers back into a pytree of the layout's structure, shapes and dtypes.

        .. math:: \mathrm{unravel}(\mathrm{ravel}(p)) = p

        Inside ``jax.jit`` this is one ``lax.split`` per buffer, whose transpose (under
        ``jax.grad``) is a single concatenation: use it inside the loss so that the gradient
        comes out flat.

        Args:
          flat: a dict ``{dtype name: 1-D array}`` as returned by :meth:`ravel`, or a flat
            optimizer update / state field of the same shape.

        Returns:
          A pytree with the layout's structure; each leaf has the buffer's dtype.

        Raises:
          ValueError: the keys or a buffer's length do not match the layout.

        Examples:
          >>> import jax.numpy as jnp, l1optax
          >>> layout = l1optax.flat_layout({"a": jnp.ones(1), "b": jnp.ones(2)})
          >>> layout.unravel({"float32": jnp.array([1.0, 2.0, 3.0])})
          {'a': Array([1.], dtype=float32), 'b': Array([2., 3.], dtype=float32)}
        """
        fn = "FlatLayout.unravel"
        if not isinstance(flat, dict) or set(flat) != set(self.groups):
            got = sorted(flat) if isinstance(flat, dict) else type(flat).__name__
            raise ValueError(f"`{fn}` needs a dict with keys {sorted(self.groups)}, got {got}")
        leaves: list[Any] = [None] * self.num_leaves
        for name, idx in self.groups.items():
            buf = flat[name]
            if tuple(np.shape(buf)) != (self.sizes[name],):
                raise ValueError(
                    f"`{fn}` needs buffer {name!r} of shape ({self.sizes[name]},), got "
                    f"{tuple(np.shape(buf))}"
                )
            sizes = [self._leaf_sizes[i] for i in idx]
            parts = jax.lax.split(buf, sizes) if len(sizes) > 1 else [buf]
            for i, part in zip(idx, parts, strict=True):
                leaves[i] = part.reshape(self.shapes[i])
        return jax.tree.unflatten(self.treedef, leaves)

    def ravel_hyperparams(
        self,
        hyper: Any,
        *,
        mask: Tree | Callable[[Tree], Tree] | None = None,
        fn: str = "FlatLayout.ravel_hyperparams",
        arg: str = "hyper",
    ) -> Any:
        r"""Turns a per-leaf hyperparameter (``l1reg`` tree, mask) into flat per-coordinate buffers.

        .. math:: h^{\mathrm{flat}}_g = [h_{i_1}\mathbf{1}_{n_{i_1}} m_{i_1}, \ldots]

        A single scalar or schedule without a mask is returned unchanged (it broadcasts over
        every buffer for free). Anything else (a pytree of per-leaf scalars or per-coordinate
        arrays, a prefix of the parameters, or a mask) becomes a dict of 1-D buffers in at least
        float32, one entry per parameter, with 0 where the mask is False, so
        ``apply_l1_prox(lr, layout.ravel_hyperparams(l1reg, mask=m))`` on the flat parameters matches
        ``apply_l1_prox(lr, l1reg, mask=m)`` on the tree. That costs one float32 buffer of the
        parameters' length and one extra read per step.

        Args:
          hyper: a non-negative scalar, a schedule (only without ``mask``), or a pytree matching
            a prefix of the parameters with scalar or leaf-shaped arrays.
          mask: a pytree of bools (prefix of the parameters) or a callable ``params -> mask``;
            coordinates of masked-out leaves get 0.
          fn: the public function name used in error messages.
          arg: the argument name used in error messages.

        Returns:
          ``hyper`` itself, or a dict ``{dtype name: 1-D array}``.

        Raises:
          ValueError: a concrete value is negative, NaN or infinite, or the tree does not match.
          TypeError: a schedule is combined with a mask or appears inside a tree.

        Examples:
          >>> import jax.numpy as jnp, l1optax
          >>> layout = l1optax.flat_layout({"b": jnp.zeros(1), "w": jnp.zeros(2)})
          >>> layout.ravel_hyperparams(0.1, mask={"b": False, "w": True})["float32"]
          Array([0. , 0.1, 0.1], dtype=float32)
        """
        if callable(hyper) and not isinstance(hyper, jax.Array | np.ndarray | np.generic):
            if mask is not None:
                raise TypeError(
                    f"`{fn}({arg}=...)`: a schedule cannot be combined with a mask on flat "
                    "parameters; multiply the schedule by a flat 0/1 buffer in your own schedule"
                )
            return hyper
        leaves = jax.tree.leaves(hyper)
        if any(callable(x) and not hasattr(x, "dtype") for x in leaves):
            raise TypeError(f"`{fn}({arg}=...)`: schedules inside a pytree are not supported")
        v.check_strength(hyper, fn=fn, arg=arg, allow_schedule=False)
        if mask is None and v._is_single_leaf(hyper) and np.ndim(hyper) == 0:
            return hyper
        template = self._template()
        per_leaf = v.broadcast_to_params(hyper, template, fn=fn, arg=arg)
        if mask is not None:
            mask_tree = v.resolve_mask(mask, template, fn=fn)
            keep = v.broadcast_to_params(mask_tree, template, fn=fn, arg="mask")
            per_leaf = jax.tree.map(
                lambda h, m: None if h is None else (h if m else 0.0),
                per_leaf,
                keep,
                is_leaf=v.is_none,
            )
        h_leaves = jax.tree.leaves(per_leaf, is_leaf=v.is_none)
        h_leaves = [h for h in h_leaves if h is not None]
        out = {}
        for name, idx in self.groups.items():
            acc = v.compute_dtype(name)
            acc = jnp.finfo(acc).dtype
            parts = []
            for i in idx:
                value = jnp.asarray(h_leaves[i], acc)
                try:
                    parts.append(jnp.broadcast_to(value, self.shapes[i]).reshape(-1))
                except ValueError as err:
                    raise ValueError(
                        f"`{fn}({arg}=...)` has shape {value.shape} at leaf "
                        f"{self._paths()[i]}, not broadcastable to {self.shapes[i]}"
                    ) from err
            out[name] = jnp.concatenate(parts) if len(parts) > 1 else parts[0]
        return out

    def _template(self) -> Tree:
        """A tree of the layout's structure whose leaves are ``ShapeDtypeStruct`` placeholders."""
        return jax.tree.unflatten(
            self.treedef,
            [jax.ShapeDtypeStruct(s, d) for s, d in zip(self.shapes, self.dtypes, strict=True)],
        )

    def _paths(self) -> list[str]:
        return _leaf_paths(self._template())


def _leaf_paths(tree: Tree) -> list[str]:
    return [
        jax.tree_util.keystr(p) or "<root>" for p, _ in jax.tree_util.tree_leaves_with_path(tree)
    ]


def flat_layout(params: Tree) -> FlatLayout:
    r"""The :class:`FlatLayout` of a parameter pytree: the many-leaf fast path's one option.

    .. math:: p \mapsto (p^{\mathrm{flat}}_g)_{g \in \text{dtypes}}, \quad
       p^{\mathrm{flat}}_g \in \mathbb{R}^{\sum_{i \in g} n_i}

    Use it when a model has many (hundreds of) parameter arrays: train on
    ``layout.ravel(params)`` with any optax/l1optax optimizer and read the weights inside the
    loss with ``layout.unravel``. Each jitted step then passes a few large buffers instead of
    one array per leaf for params, grads and every state tree, and the optimizer runs one fused
    kernel per buffer. The arithmetic is unchanged: updates equal the plain path's to rounding
    (bitwise for elementwise optimizers). Measured in ``benchmarks/step_overhead.py``.

    Args:
      params: a pytree of floating-point (or complex) arrays; None leaves are kept as None.

    Returns:
      A :class:`FlatLayout`.

    Raises:
      TypeError: a leaf is not floating-point (named by its path).

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> import l1optax
      >>> params = [jnp.array([1.0, 0.05]), jnp.array([-0.5])]
      >>> layout = l1optax.flat_layout(params)
      >>> tx = optax.chain(optax.sgd(0.1), l1optax.apply_l1_prox(0.1, 1.0))
      >>> flat = layout.ravel(params)
      >>> state = tx.init(flat)
      >>> loss = lambda f: sum(jnp.sum(p ** 2) for p in layout.unravel(f))
      >>> updates, state = tx.update(jax.grad(loss)(flat), state, flat)
      >>> layout.unravel(optax.apply_updates(flat, updates))
      [Array([0.7, 0. ], dtype=float32), Array([-0.3], dtype=float32)]

    References:
      Beck & Teboulle, 2009, "A fast iterative shrinkage-thresholding algorithm for linear
      inverse problems" (the proximal step run here on one buffer instead of many).
    """
    v.check_float_leaves(params, fn="flat_layout")
    leaves, treedef = jax.tree.flatten(params)
    shapes = tuple(tuple(np.shape(x)) for x in leaves)
    dtypes = tuple(jnp.result_type(x) for x in leaves)
    return FlatLayout(treedef, shapes, dtypes)
