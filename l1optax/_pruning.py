r"""Smaller models to ship: remove the units and channels group lasso zeroed, export to BCOO.

A hidden unit (a Dense output neuron, a Conv output channel) whose incoming weights are all
exactly 0 outputs a constant, :math:`c_j = f(b_j)` with :math:`f` the activation between the two
layers; one whose outgoing weights are all 0 has no effect. Both can be deleted: the unit's
column of its own kernel, its bias entry and its rows of the next layer's kernel go, and the
constant of a zero-input unit is folded into the next layer's bias,

.. math:: b'_{\mathrm{next}} = b_{\mathrm{next}} + \sum_{j\ \mathrm{removed}} c_j \sum_{r \in \mathrm{rows}(j)} W_{\mathrm{next}}[r, :]

which is exact when the next layer is Dense (after a channels-last flatten of a Conv output
the rows of channel :math:`j` are :math:`p \cdot C + j`). A constant channel feeding a Conv with
zero padding is not constant at the borders, so such a channel is removed only when
:math:`c_j = 0` (e.g. ReLU of a non-positive bias). The last layer's outputs are kept.

Supported models: a Flax NNX ``nnx.Sequential`` or a Linen ``nn.Sequential`` of Dense/Linear and
Conv layers (``feature_group_count=1``) with functions between them that act elementwise, and at
most a flatten from a Conv to a Dense. Pass ``example_input`` to have the outputs of the pruned
model checked against the original's. Flax is imported only when these functions are called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypedDict

import jax
import jax.numpy as jnp
import numpy as np

from l1optax import _validation as v
from l1optax._types import Tree

Elementwise = Callable[[jax.Array], jax.Array]


class _Grouped(Protocol):
    feature_group_count: int  # nnx.Conv and nn.Conv


class _Layer(TypedDict):
    kind: str  # "dense" or "conv"
    kernel: jax.Array | np.ndarray
    bias: jax.Array | np.ndarray | None


# --------------------------------------------------------------------------------------------
# the framework-independent core: a list of (kind, kernel, bias, between) layers
# --------------------------------------------------------------------------------------------


def _plan(
    layers: list[_Layer], between: list[Elementwise], *, fn: str
) -> tuple[list[np.ndarray], list[np.ndarray | None], list[np.ndarray]]:
    """Computes kept units and new kernels/biases. ``layers[i]``: kind, kernel, bias."""
    kernels = [np.asarray(layer["kernel"]) for layer in layers]
    biases = [None if layer["bias"] is None else np.asarray(layer["bias"]) for layer in layers]
    keeps = []
    for i in range(len(layers) - 1):
        kernel, bias = kernels[i], biases[i]
        nxt, kind_next = kernels[i + 1], layers[i + 1]["kind"]
        out = kernel.shape[-1]
        rows_next = nxt.shape[-2]
        if kind_next == "dense" and layers[i]["kind"] == "conv":
            if rows_next % out:
                raise ValueError(
                    f"`{fn}`: layer {i + 1} has {rows_next} inputs, not a multiple of the "
                    f"{out} channels of layer {i} (only a channels-last flatten is supported)"
                )
            positions = rows_next // out
        elif rows_next == out:
            positions = 1
        else:
            raise ValueError(
                f"`{fn}`: layer {i + 1} has {rows_next} inputs but layer {i} has {out} outputs"
            )
        reduce_in = tuple(range(kernel.ndim - 1))
        dead_in = np.all(kernel == 0, axis=reduce_in)
        # rows of the next kernel that belong to unit j: j (+ p * out for a flatten)
        next_rows = np.moveaxis(nxt, -2, 0).reshape(positions, out, -1) if nxt.ndim == 2 else None
        if nxt.ndim == 2:
            dead_out = np.all(next_rows == 0, axis=(0, 2))
        else:
            dead_out = np.all(np.moveaxis(nxt, -2, 0).reshape(out, -1) == 0, axis=1)
        constants = _constants(bias, out, between[i], conv=layers[i]["kind"] == "conv")
        foldable = dead_in & (
            (constants == 0) | (kind_next == "dense" and biases[i + 1] is not None)
        )
        removable = dead_out | foldable
        keep = ~removable
        # fold the constants of removed zero-input units (with live outgoing weights)
        fold = removable & ~dead_out & (constants != 0)
        if np.any(fold):
            bias_next = biases[i + 1]
            # a unit is folded only into a Dense next layer (2-d kernel) that has a bias
            assert next_rows is not None and bias_next is not None
            contribution = np.einsum(
                "j,pjo->o",
                constants[fold].astype(np.float64),
                next_rows[:, fold, :].astype(np.float64),
            )
            biases[i + 1] = bias_next + contribution.astype(bias_next.dtype)
        kernels[i] = kernel[..., keep]
        if bias is not None:
            biases[i] = bias[keep]
        if nxt.ndim == 2:
            kept_rows = np.tile(keep, positions)
            kernels[i + 1] = nxt[kept_rows]
        else:
            kernels[i + 1] = nxt[..., keep, :]
        keeps.append(keep)
    return kernels, biases, keeps


def _split_stack(
    entries: Sequence[Any],
    read: Callable[[int, Any], tuple[Any, Any]],
    types: tuple[type, type[_Grouped], type],
    *,
    prefix: str,
    fn: str,
    arg: str,
) -> tuple[list[int], list[_Layer], list[Elementwise]]:
    """Splits the entries of a ``Sequential`` into its layers and the functions between them.

    ``types`` is ``(dense, conv, module)``: ``read(index, entry)`` gives the ``(kernel, bias)``
    of a ``dense`` or ``conv`` entry, any other ``module`` is an error, and the remaining entries
    (functions) are composed. Messages spell the types as ``prefix + name``. Returns the layers'
    positions in ``entries``, the layers, and the function between each two of them.
    """
    dense, conv, module = types
    names = (prefix + dense.__name__, prefix + conv.__name__)
    positions: list[int] = []
    layers: list[_Layer] = []
    between: list[Elementwise] = []
    pending: list[Callable] = []
    for index, entry in enumerate(entries):
        if isinstance(entry, (dense, conv)):
            if isinstance(entry, conv) and entry.feature_group_count != 1:
                raise ValueError(f"`{fn}`: layer {index} has feature_group_count != 1")
            kernel, bias = read(index, entry)
            if layers:
                between.append(_compose(pending))
            pending = []
            positions.append(index)
            layers.append(
                {
                    "kind": "conv" if isinstance(entry, conv) else "dense",
                    "kernel": kernel,
                    "bias": bias,
                }
            )
        elif isinstance(entry, module):
            raise ValueError(
                f"`{fn}`: entry {index} is a {type(entry).__name__}; only {names[0]}, "
                f"{names[1]} and elementwise functions are supported"
            )
        else:
            pending.append(entry)
    if not layers:
        raise ValueError(f"`{fn}({arg}=...)` has no {names[0]} or {names[1]} layer")
    return positions, layers, between


def _cast_like(
    kernel: np.ndarray, bias: np.ndarray | None, layer: _Layer
) -> tuple[jax.Array, jax.Array | None]:
    """The pruned kernel and bias as JAX arrays in the dtypes of the layer's own."""
    old_bias = layer["bias"]
    new_bias = None if bias is None or old_bias is None else jnp.asarray(bias, old_bias.dtype)
    return jnp.asarray(kernel, layer["kernel"].dtype), new_bias


def _constants(bias, out: int, f: Callable, *, conv: bool) -> np.ndarray:
    """``f`` applied to the constant output (the bias) of every unit of a layer."""
    b = np.zeros(out, np.float64) if bias is None else np.asarray(bias)
    shaped = jnp.asarray(b).reshape((1, 1, 1, out) if conv else (1, out))
    c = np.asarray(f(shaped)).reshape(-1)
    if c.size != out:
        raise ValueError(
            "the functions between two layers must act elementwise (with at most a flatten); "
            f"got {c.size} values from {out} units"
        )
    return c


def _check_outputs(original, pruned, example_input, *, fn: str, rtol: float) -> None:
    if example_input is None:
        return
    y0 = np.asarray(original(example_input), np.float64)
    y1 = np.asarray(pruned(example_input), np.float64)
    scale = max(1.0, float(np.max(np.abs(y0))))
    diff = float(np.max(np.abs(y0 - y1))) if y0.size else 0.0
    if not diff <= rtol * scale:
        raise ValueError(
            f"`{fn}`: the pruned model's outputs differ from the original's by {diff:.3g} "
            f"(allowed {rtol * scale:.3g}); the functions between the layers are probably not "
            "elementwise"
        )


def _tolerance(dtype) -> float:
    return 1e-12 if jnp.dtype(dtype) == jnp.float64 else 1e-5


# --------------------------------------------------------------------------------------------
# Flax NNX
# --------------------------------------------------------------------------------------------


def prune_units(model: Any, *, example_input: jax.Array | None = None) -> Any:
    r"""Physically removes the zeroed units/channels of a Flax NNX ``Sequential`` stack.

    .. math:: W_i \leftarrow W_i[\dots, K],\quad b_i \leftarrow b_i[K],\quad W_{i+1} \leftarrow W_{i+1}[K, :],\quad b_{i+1} \leftarrow b_{i+1} + \textstyle\sum_{j \notin K} c_j W_{i+1}[j, :]

    with :math:`K` the kept units (see the module docstring for which units go and the fold of
    their constants). The result is a new ``nnx.Sequential`` with smaller ``nnx.Linear`` /
    ``nnx.Conv`` layers (copies: the original model is unchanged) that computes the same outputs
    up to rounding.

    Args:
      model: an ``nnx.Sequential`` whose layers are ``nnx.Linear`` or ``nnx.Conv`` (with
        ``feature_group_count=1``) and whose other entries are elementwise functions, or a
        flatten from a Conv output (channels last) to a Linear input.
      example_input: if given, a batch on which the pruned and original outputs are compared
        (relative difference at most 1e-5 in float32, 1e-12 in float64).

    Returns:
      The pruned ``nnx.Sequential``.

    Raises:
      ValueError: an unsupported layer or layout, or outputs that differ on ``example_input``.
      TypeError: ``model`` is not an ``nnx.Sequential``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> import l1optax
      >>> model = nnx.Sequential(nnx.Linear(4, 8, rngs=nnx.Rngs(0)), jax.nn.relu,
      ...                        nnx.Linear(8, 2, rngs=nnx.Rngs(1)))
      >>> model.layers[0].kernel[...] = model.layers[0].kernel[...].at[:, :5].set(0.0)
      >>> small = l1optax.prune_units(model, example_input=jnp.ones((3, 4)))
      >>> small.layers[0].kernel.shape, small.layers[2].kernel.shape
      ((4, 3), (3, 2))

    References:
      Scardapane, Comminiello, Hussain & Uncini, 2017, "Group sparse regularization for deep
      neural networks", Neurocomputing 241.
    """
    from flax import nnx

    fn = "prune_units"
    if not isinstance(model, nnx.Sequential):
        raise TypeError(f"`{fn}(model=...)` must be an nnx.Sequential, got {type(model).__name__}")
    items = list(model.layers)

    def read(index: int, item: nnx.Linear | nnx.Conv) -> tuple[jax.Array, jax.Array | None]:
        return item.kernel[...], None if item.bias is None else item.bias[...]

    positions, layers, between = _split_stack(
        items, read, (nnx.Linear, nnx.Conv, nnx.Module), prefix="nnx.", fn=fn, arg="model"
    )
    kernels, biases, _ = _plan(layers, between, fn=fn)
    new_items = list(items)
    for pos, kernel, bias, entry in zip(positions, kernels, biases, layers, strict=True):
        old = items[pos]
        assert isinstance(old, nnx.Linear | nnx.Conv)  # _split_stack found a layer there
        layer = nnx.clone(old)
        new_kernel, new_bias = _cast_like(kernel, bias, entry)
        layer.kernel = nnx.Param(new_kernel)
        if new_bias is not None:
            layer.bias = nnx.Param(new_bias)
        layer.in_features = int(kernel.shape[-2])
        layer.out_features = int(kernel.shape[-1])
        if hasattr(layer, "kernel_shape"):
            layer.kernel_shape = tuple(int(s) for s in kernel.shape)
        new_items[pos] = layer
    pruned = nnx.Sequential(*new_items)
    _check_outputs(model, pruned, example_input, fn=fn, rtol=_tolerance(layers[0]["kernel"].dtype))
    return pruned


def _compose(functions: Sequence[Callable]) -> Callable:
    def composed(x):
        for f in functions:
            x = f(x)
        return x

    return composed


# --------------------------------------------------------------------------------------------
# Flax Linen
# --------------------------------------------------------------------------------------------


def prune_units_linen(
    module: Any, params: Tree, *, example_input: jax.Array | None = None
) -> tuple[Any, Tree]:
    r"""Physically removes the zeroed units/channels of a Flax Linen ``nn.Sequential`` stack.

    .. math:: W_i \leftarrow W_i[\dots, K],\quad W_{i+1} \leftarrow W_{i+1}[K, :],\quad b_{i+1} \leftarrow b_{i+1} + \textstyle\sum_{j \notin K} c_j W_{i+1}[j, :]

    The Linen counterpart of ``prune_units``: returns a new ``nn.Sequential`` whose ``nn.Dense``
    / ``nn.Conv`` layers have fewer ``features``, and its parameters.

    Args:
      module: an ``nn.Sequential`` of ``nn.Dense`` / ``nn.Conv`` layers and elementwise
        functions (or a flatten from a Conv to a Dense).
      params: its variables, ``{"params": {...}}`` or the inner ``{...}``.
      example_input: if given, a batch on which the outputs are compared (as ``prune_units``).

    Returns:
      ``(new_module, new_params)``, with ``new_params`` in the same form as ``params``.

    Raises:
      ValueError: an unsupported layer or layout, or outputs that differ on ``example_input``.
      TypeError: ``module`` is not an ``nn.Sequential``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import flax.linen as nn
      >>> import l1optax
      >>> module = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(2)])
      >>> params = module.init(jax.random.PRNGKey(0), jnp.ones((1, 4)))
      >>> k = params["params"]["layers_0"]["kernel"]
      >>> params["params"]["layers_0"]["kernel"] = k.at[:, 1:].set(0.0)
      >>> small, small_params = l1optax.prune_units_linen(module, params)
      >>> small_params["params"]["layers_2"]["kernel"].shape
      (1, 2)

    References:
      Scardapane, Comminiello, Hussain & Uncini, 2017, "Group sparse regularization for deep
      neural networks".
    """
    import flax.linen as nn

    fn = "prune_units_linen"
    if not isinstance(module, nn.Sequential):
        raise TypeError(f"`{fn}(module=...)` must be an nn.Sequential, got {type(module).__name__}")
    wrapped = isinstance(params, dict) and set(params) == {"params"}
    inner = params["params"] if wrapped else params

    def read(index: int, item: nn.Dense | nn.Conv) -> tuple[Any, Any]:
        name = f"layers_{index}"
        if name not in inner:
            raise ValueError(f"`{fn}(params=...)` has no entry {name!r} for layer {index}")
        return inner[name]["kernel"], inner[name].get("bias")

    positions, layers, between = _split_stack(
        module.layers, read, (nn.Dense, nn.Conv, nn.Module), prefix="nn.", fn=fn, arg="module"
    )
    kernels, biases, _ = _plan(layers, between, fn=fn)
    new_layers = list(module.layers)
    new_inner = dict(inner)
    for pos, kernel, bias, layer in zip(positions, kernels, biases, layers, strict=True):
        old = module.layers[pos]
        assert isinstance(old, nn.Dense | nn.Conv)  # _split_stack found a layer there
        new_layers[pos] = old.clone(features=int(kernel.shape[-1]))
        new_kernel, new_bias = _cast_like(kernel, bias, layer)
        entry = {"kernel": new_kernel}
        if new_bias is not None:
            entry["bias"] = new_bias
        new_inner[f"layers_{pos}"] = entry
    new_module = nn.Sequential(new_layers)
    new_params = {"params": new_inner} if wrapped else new_inner
    if example_input is not None:
        _check_outputs(
            lambda x: module.apply(params if wrapped else {"params": params}, x),
            lambda x: new_module.apply(new_params if wrapped else {"params": new_params}, x),
            example_input,
            fn=fn,
            rtol=_tolerance(layers[0]["kernel"].dtype),
        )
    return new_module, new_params


# --------------------------------------------------------------------------------------------
# BCOO export
# --------------------------------------------------------------------------------------------


def to_bcoo(
    params: Tree, *, mask: Tree | Callable[[Tree], Tree] | None = None, min_ndim: int = 2
) -> Tree:
    r"""Converts the weight matrices of a pytree to ``jax.experimental.sparse.BCOO``.

    .. math:: W \mapsto \{(i, W_i) : W_i \ne 0\}

    Leaves with at least ``min_ndim`` dimensions (kernels; not biases) whose mask is True become
    BCOO arrays holding only their exact non-zeros (``x @ W`` still works, as a sparse-dense
    product); the others are returned as they are. Whether this is faster than the dense product
    depends on the sparsity, the shapes and the backend: measure it (``benchmarks/
    sparse_training.py`` does on CPU).

    Args:
      params: a pytree of arrays (e.g. ``nnx.state(model, nnx.Param)`` or Linen params).
      mask: a pytree of bools (a prefix of ``params``) or a callable giving one; None converts
        every leaf with ``ndim >= min_ndim``.
      min_ndim: the smallest number of dimensions a converted leaf has.

    Returns:
      A pytree with the structure of ``params`` whose converted leaves are ``BCOO`` arrays.

    Raises:
      ValueError: ``mask`` does not match ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import l1optax
      >>> sparse = l1optax.to_bcoo({"kernel": jnp.eye(3), "bias": jnp.zeros(3)})
      >>> int(sparse["kernel"].nse), sparse["bias"].shape
      (3, (3,))

    References:
      JAX authors, ``jax.experimental.sparse`` documentation ("BCOO: batched coordinate format").
    """
    from jax.experimental import sparse

    fn = "to_bcoo"
    if mask is None:
        mask_tree = jax.tree.map(lambda _: True, params, is_leaf=v.is_none)
    else:
        resolved = v.resolve_mask(mask, params, fn=fn)
        mask_tree = jax.tree.map(
            lambda m, sub: jax.tree.map(lambda _: m, sub, is_leaf=v.is_none),
            resolved,
            params,
            is_leaf=v.is_none,
        )

    def convert(leaf, m):
        if leaf is None or not m or np.ndim(leaf) < min_ndim:
            return leaf
        return sparse.BCOO.fromdense(jnp.asarray(leaf), nse=int(np.count_nonzero(leaf)))

    return jax.tree.map(convert, params, mask_tree, is_leaf=v.is_none)
