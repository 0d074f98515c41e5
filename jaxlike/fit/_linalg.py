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

from ._arrowhead import ArrowheadHessian

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


@jax.custom_batching.custom_vmap
def sym_eigh(a):
    """Eigen-decomposition (w, v) of a symmetric matrix (``jnp.linalg.eigh``) with the same
    batching rule as :func:`spd_solve`: on the CPU a batch is decomposed matrix by matrix
    (jaxlib's batched ``dsyevd`` kernel deadlocks inside vmapped while-loops like the batched
    Cholesky, seen on 2 cores), on accelerators the native batched kernel."""
    w, v = jnp.linalg.eigh(a)
    return w, v


@sym_eigh.def_vmap
def _sym_eigh_vmap(axis_size, in_batched, a):
    (a_batched,) = in_batched
    if not a_batched:
        a = jnp.broadcast_to(a, (axis_size,) + a.shape)
    if jax.default_backend() == "cpu":
        out = lax.map(sym_eigh, a)
    else:
        out = jax.vmap(lambda m: tuple(jnp.linalg.eigh(m)))(a)
    return out, (True, True)


# -- operations of the minimiser on a Hessian -------------------------------------------------
# The minimiser touches the Hessian only through these functions, so a structured Hessian (a
# pytree with the same operations) can replace the dense [n, n] array without changing it.
# Each dispatches (at trace time) on :class:`~jaxlike.fit._arrowhead.ArrowheadHessian`, the
# block form of models with many per-bin parameters.


def hess_dense(h):
    """The Hessian as a dense [n, n] array (expands a structured one)."""
    if isinstance(h, ArrowheadHessian):
        return h.todense()
    return h


def hess_diag(h):
    """Diagonal H_ii."""
    if isinstance(h, ArrowheadHessian):
        return h.diagonal()
    return jnp.diagonal(h)


def hess_quad(h, v):
    """Quadratic form vᵀ H v."""
    if isinstance(h, ArrowheadHessian):
        return h.quad(v)
    return v @ h @ v


def hess_select(pred, a, b):
    """``a`` where ``pred`` else ``b`` (a scalar predicate), leaf by leaf."""
    return jax.tree_util.tree_map(lambda x, y: jnp.where(pred, x, y), a, b)


def masked_solve(h, free, diag_add, rhs):
    """Solve (H_FF + diag(diag_add)_F) x_F = rhs_F on the free block F (x = rhs elsewhere, where
    the system is the identity) by Cholesky. Returns (x, ok); ok False if not positive definite."""
    if isinstance(h, ArrowheadHessian):
        return h.masked_solve(free, diag_add, rhs)
    both = free[:, None] & free[None, :]
    a = jnp.where(both, h, 0.0) + jnp.diag(jnp.where(free, diag_add, 1.0))
    return spd_solve(a, rhs)


def free_min_eigvec(h, free):
    """Unit eigenvector of the smallest eigenvalue of H_FF (0 outside the free block F).

    For an arrowhead Hessian: a unit direction of least curvature from the block factorisation
    (non-positive curvature whenever H_FF is not positive definite; see
    ``ArrowheadHessian.min_curvature_direction``)."""
    if isinstance(h, ArrowheadHessian):
        return h.min_curvature_direction(free)
    hd = jnp.abs(jnp.diagonal(h))
    both = free[:, None] & free[None, :]
    big = jnp.max(jnp.where(free, hd, 0.0)) + 1.0
    a = jnp.where(both, h, 0.0) + jnp.diag(jnp.where(free, 0.0, 10.0 * big))
    _, v = sym_eigh(a)
    return jnp.where(free, v[:, 0], 0.0)


def free_inverse(h, free):
    """(H_FF)⁻¹ embedded in an [n, n] array (0 outside the free block) and ok (PD).

    For an arrowhead Hessian the inverse is an ``ArrowheadCovariance`` (factored; its
    ``todense()`` is the [n, n] array)."""
    if isinstance(h, ArrowheadHessian):
        return h.inverse(free)
    both = free[:, None] & free[None, :]
    a = jnp.where(both, h, 0.0) + jnp.diag(jnp.where(free, 0.0, 1.0))
    inv, ok = spd_solve(a, jnp.eye(a.shape[0], dtype=a.dtype))
    return jnp.where(both, inv, 0.0), ok
