"""The type aliases every layer shares (annotations only; nothing here runs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import jax
import optax

Tree: TypeAlias = Any
"""A pytree of arrays (None leaves allowed where documented)."""

ScalarOrSchedule: TypeAlias = float | jax.Array | optax.Schedule
"""A number, a 0-d array or an optax schedule ``count -> value``."""

Prox: TypeAlias = Callable[[Tree, Any, Any], Tree]
"""A proximal operator with jaxopt's signature ``prox(x, hyperparams, scaling)``."""

Mask: TypeAlias = Tree | Callable[[Tree], Tree] | None
"""A pytree of bools (a prefix of the parameters), a callable ``params -> mask``, or None."""

Axis: TypeAlias = int | tuple[int, ...] | None
"""Group axes of a parameter leaf (None: the whole leaf is one group)."""
