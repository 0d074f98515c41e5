"""Control flow of the minimiser that stays lazy under ``jax.vmap``.

``vmap`` of ``lax.cond`` with a batched predicate evaluates both branches on every lane and
selects. The minimiser's conditionals guard rare, expensive work: the eigenvector of a Hessian
that is not positive definite (a dense ``eigh``), the bound re-solve of a step (a second
Cholesky). Vmapped, that work ran for every fit on every certificate and step: a Belle II toy
fit (232 parameters) vmapped over one toy ran at about a third of the speed of the same fit
unbatched. :func:`lazy_cond` runs the expensive branch on the batch only when some lane needs
it, then selects lane by lane — on every backend, as the test is one reduction.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["lazy_cond"]


def _lane_select(p, a, b):
    """``a`` where the lane predicate ``p`` [B] holds else ``b``, leaf by leaf ([B, …] leaves)."""
    return jax.tree.map(
        lambda x, y: jnp.where(p.reshape(p.shape + (1,) * (x.ndim - 1)), x, y), a, b
    )


def lazy_cond(pred, true_fun, false_fun, *operands):
    """``lax.cond(pred, true_fun, false_fun, *operands)``, lazy under ``vmap``.

    Unbatched it is ``lax.cond``. With a batched predicate [B] the result is, lane by lane,
    ``true_fun`` where ``pred`` else ``false_fun`` (as for ``lax.cond``), computed as
    ``cond(any(pred), select(pred, vmap(true_fun), vmap(false_fun)), vmap(false_fun))``: the
    true branch costs nothing while no lane takes it. Nested vmaps apply the same rule at each
    level. The branches must take every traced value they use as an operand (no closed-over
    tracers): the batching rule needs to see what is batched. Not differentiable (the
    minimiser's solves, :mod:`jaxlike.linalg`, are not either)."""

    @jax.custom_batching.custom_vmap
    def cond(p, *ops):
        return lax.cond(p, true_fun, false_fun, *ops)

    @cond.def_vmap
    def _rule(axis_size, in_batched, p, *ops):
        def full(x, batched):
            return x if batched else jnp.broadcast_to(x, (axis_size,) + jnp.shape(x))

        p = full(p, in_batched[0])
        ops = jax.tree.map(full, ops, tuple(in_batched[1:]))

        def both(p, *o):
            return _lane_select(p, jax.vmap(true_fun)(*o), jax.vmap(false_fun)(*o))

        def neither(p, *o):
            return jax.vmap(false_fun)(*o)

        out = lazy_cond(jnp.any(p), both, neither, p, *ops)
        return out, jax.tree.map(lambda _: True, out)

    return cond(pred, *operands)
