"""Buffer donation over params and optimizer state for every catalogued transform (SPEC item 19).

``jax.jit(step, donate_argnums=(0, 1))`` must work for several steps: no "donated buffers were not
usable" warning (warnings are errors in this suite), no "donate the same buffer twice" error
(which a state that aliases the params' buffers would raise), the donated inputs are deleted, and
the results equal the non-donated run bitwise.
"""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
from _catalog import CATALOG, make_grads, make_params, params_for, tree_assert_bitwise_equal


def _step(tx):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def _pointers(tree):
    return {x.unsafe_buffer_pointer() for x in jax.tree.leaves(tree) if x.size}


@pytest.mark.parametrize("entry", params_for(CATALOG))
def test_donated_params_and_state(entry):
    tx = entry.build()
    params = make_params()
    state = tx.init(params)
    # init must not alias the parameters (that is what breaks donate_argnums=(0, 1)).
    assert not (_pointers(params) & _pointers(state)), "state aliases param buffers"

    plain = jax.jit(_step(tx))
    ref_p, ref_s = make_params(), tx.init(make_params())
    for t in range(4):
        ref_p, ref_s = plain(ref_p, ref_s, make_grads(make_params(), t))

    donated = jax.jit(_step(tx), donate_argnums=(0, 1))
    for t in range(4):
        old_p, old_s = params, state
        params, state = donated(params, state, make_grads(make_params(), t))
        for leaf in jax.tree.leaves((old_p, old_s)):
            assert leaf.is_deleted(), "a donated input buffer was not consumed"
        assert not (_pointers(params) & _pointers(state))
    tree_assert_bitwise_equal(params, ref_p, "donated params")
    tree_assert_bitwise_equal(state, ref_s, "donated state")
    assert all(np.all(np.isfinite(np.asarray(p))) for p in jax.tree.leaves(params))
