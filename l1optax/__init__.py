"""l1optax: L1 (lasso) regularization for JAX and Optax.

Penalties and proximal operators over pytrees, optax transforms that produce exact zeros,
optimizers that apply the L1 prox correctly under adaptive preconditioners, convex solvers with
optimality certificates, and Flax helpers.
"""

from l1optax._diagnostics import kkt_violation, lasso_duality_gap, sparsity
from l1optax._elastic_net import elastic_net_penalty, prox_elastic_net
from l1optax._flat import FlatLayout, flat_layout
from l1optax._ftrl import FtrlState, ftrl
from l1optax._group import (
    apply_group_l1_prox,
    group_l1_penalty,
    prox_group_l1,
    prox_sparse_group_l1,
    sparse_group_l1_penalty,
)
from l1optax._lasso import LassoCVInfo, LassoInfo, lasso, lasso_cv, lasso_path
from l1optax._nonconvex import (
    l0_penalty,
    l_half_penalty,
    mcp_penalty,
    prox_l0,
    prox_l_half,
    prox_mcp,
    prox_scad,
    prox_top_k,
    scad_penalty,
)
from l1optax._optimizers import (
    CumulativeL1State,
    cumulative_l1,
    prox_adabelief,
    prox_adagrad,
    prox_adam,
    prox_adamw,
    prox_amsgrad,
    prox_nadam,
    prox_rmsprop,
    prox_sgd,
)
from l1optax._penalty import l1_penalty
from l1optax._prox import prox_l1, soft_threshold
from l1optax._pruning import prune_units, prune_units_linen, to_bcoo
from l1optax._selection import keras_kernel_mask, param_paths, per_layer_l1reg, select
from l1optax._solvers import FistaInfo, fista, l1_grid, l1_path, lambda_max
from l1optax._sparse_training import (
    FreezeSupportState,
    TargetSparsityState,
    freeze_support,
    set_support,
    sparsity_schedule,
    target_sparsity,
)
from l1optax._transforms import (
    L1SubgradientState,
    ProxInMetricState,
    ProxState,
    add_l1_subgradient,
    apply_l1_prox,
    apply_prox,
    prox_in_metric,
    with_l1,
)

__version__ = "0.2.0"

__all__ = [
    # penalty, prox, transforms
    "L1SubgradientState",
    "ProxState",
    "__version__",
    "add_l1_subgradient",
    "apply_prox",
    "l1_penalty",
    "apply_l1_prox",
    "prox_l1",
    "soft_threshold",
    "with_l1",
    # proximal optimizers, elastic net, group lasso
    "CumulativeL1State",
    "FtrlState",
    "ProxInMetricState",
    "cumulative_l1",
    "elastic_net_penalty",
    "ftrl",
    "group_l1_penalty",
    "apply_group_l1_prox",
    "prox_adabelief",
    "prox_adagrad",
    "prox_adam",
    "prox_adamw",
    "prox_amsgrad",
    "prox_in_metric",
    "prox_nadam",
    "prox_elastic_net",
    "prox_group_l1",
    "prox_rmsprop",
    "prox_sgd",
    "prox_sparse_group_l1",
    "sparse_group_l1_penalty",
    # solvers and certificates
    "FistaInfo",
    "fista",
    "kkt_violation",
    "l1_grid",
    "l1_path",
    "LassoCVInfo",
    "LassoInfo",
    "lambda_max",
    "lasso",
    "lasso_cv",
    "lasso_duality_gap",
    "lasso_path",
    "sparsity",
    # parameter selection
    "keras_kernel_mask",
    "param_paths",
    "per_layer_l1reg",
    "select",
    # nonconvex penalties and proxes, top-k projection
    "l0_penalty",
    "l_half_penalty",
    "mcp_penalty",
    "prox_l0",
    "prox_l_half",
    "prox_mcp",
    "prox_scad",
    "prox_top_k",
    "scad_penalty",
    # sparse training by target
    "FreezeSupportState",
    "TargetSparsityState",
    "freeze_support",
    "set_support",
    "sparsity_schedule",
    "target_sparsity",
    # smaller models: structured pruning and sparse export
    "prune_units",
    "prune_units_linen",
    "to_bcoo",
    # many-leaf fast path
    "FlatLayout",
    "flat_layout",
]

# 0.1 names of the two transforms, renamed in 0.2 so that they cannot be confused with the
# operators `prox_l1` / `prox_group_l1`; kept for one release.
_RENAMED = {"l1_prox": "apply_l1_prox", "group_l1_prox": "apply_group_l1_prox"}


def __getattr__(name: str) -> object:
    if name in _RENAMED:
        import warnings

        new = _RENAMED[name]
        warnings.warn(
            f"`l1optax.{name}` is deprecated: the transform was renamed `l1optax.{new}` in 0.2.0 "
            f"(the operator is `prox_...`); the old name will be removed in 0.3.0",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[new]
    raise AttributeError(f"module 'l1optax' has no attribute {name!r}")
