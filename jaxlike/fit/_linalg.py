"""Positive-definite solves for the fits, safe under ``jax.vmap`` on every backend.

Every Newton step solves (H + λD) d = −g by Cholesky, and every covariance is (½H)⁻¹ from the
same factorisation. Under ``vmap`` JAX lowers ``jnp.linalg.cholesky`` on the CPU to jaxlib's
batched LAPACK kernel, which splits the batch over XLA's intra-op thread pool and waits on a
blocking counter; in jaxlib 0.10 that wait can deadlock when several such kernels run at once
inside a vmapped ``while_loop`` (seen on 2-core machines: the process sits idle forever in
``lapack_dpotrf_ffi`` / ``ParallelBatchMap``). :func:`spd_solve` therefore carries its own
batching rule: on the CPU a batch is solved matrix by matrix with ``lax.map`` (one unbatched
LAPACK call each, no thread-pool fan-out; for the ≤ few-hundred-parameter systems of a fit this
costs microseconds per matrix), on accelerators with the native batched solver.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["spd_solve"]


def _solve_one(a, b):
    c = jnp.linalg.cholesky(a)
    ok = jnp.all(jnp.isfinite(c))
    c = jnp.where(ok, c, jnp.eye(a.shape[0], dtype=a.dtype))
    return jax.scipy.linalg.cho_solve((c, True), b), ok


@jax.custom_batching.custom_vmap
def spd_solve(a, b):
    """x = A⁻¹ b for a symmetric positive-definite A via Cholesky, A = L Lᵀ.

    Returns ``(x, ok)``; ``ok`` is False when A is not numerically positive definite (the
    factor has non-finite entries), and then ``x`` is meaningless (computed with L = 1).
    ``b`` may be a vector [n] or a matrix [n, k] (e.g. the identity for A⁻¹).
    """
    return _solve_one(a, b)


@spd_solve.def_vmap
def _spd_solve_vmap(axis_size, in_batched, a, b):
    a_batched, b_batched = in_batched
    if not a_batched:
        a = jnp.broadcast_to(a, (axis_size,) + a.shape)
    if not b_batched:
        b = jnp.broadcast_to(b, (axis_size,) + b.shape)
    if jax.default_backend() == "cpu":
        # the body calls spd_solve again, so an enclosing vmap lands here once more
        out = lax.map(lambda ab: spd_solve(*ab), (a, b))
    else:
        out = jax.vmap(_solve_one)(a, b)
    return out, (True, True)
