"""Positive-definite solves for the fits and the minimiser's operations on a Hessian.

Every Newton step solves (H + λD) d = −g by Cholesky, and every covariance is (½H)⁻¹ from the
same factorisation; both go through :func:`spd_solve`, which is safe under ``jax.vmap`` on every
backend (:mod:`jaxlike.linalg._lapack`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._arrowhead import ArrowheadHessian
from ._lapack import per_matrix_on_cpu, sym_eigh
from ._unrolled import unrolled_spd_solve

__all__ = [
    "spd_solve",
    "hess_dense",
    "hess_diag",
    "hess_quad",
    "hess_matvec",
    "hess_select",
    "masked_solve",
    "free_min_eigvec",
    "free_inverse",
]


#: dense systems of at most this many parameters (the models whose toys are vmapped on the CPU,
#: :data:`jaxlike.infer._toys.SEQUENTIAL_MIN_PARS`) are solved by the unrolled Cholesky of
#: :mod:`jaxlike.linalg._unrolled` (vector operations over a batch), larger ones by LAPACK.
#: Under ``vmap`` on the CPU LAPACK runs matrix by matrix: 2000 toy fits of a 2-parameter
#: model spent half their time in those calls. The unrolled program grows as k³/6 operations:
#: at 8 (the ALP window, whose toys run one after the other) it compiled 6 s longer and ran 8%
#: slower than LAPACK.
UNROLLED_MAX = 5


def spd_solve(a, b):
    """x = A⁻¹ b for a symmetric positive-definite A via Cholesky, A = L Lᵀ (vmap-safe, see
    :mod:`jaxlike.linalg._lapack`): written out for A of at most :data:`UNROLLED_MAX` rows
    (:func:`~jaxlike.linalg._unrolled.unrolled_spd_solve`), LAPACK's ``potrf`` above.

    Returns ``(x, ok)``; ``ok`` is False when A is not numerically positive definite (a pivot
    is not positive, or the factor has non-finite entries), and then ``x`` is meaningless.
    ``b`` may be a vector [n] or a matrix [n, k] (e.g. the identity for A⁻¹).
    """
    if a.shape[-1] <= UNROLLED_MAX:
        return unrolled_spd_solve(a, b)
    return _lapack_spd_solve(a, b)


@per_matrix_on_cpu
def _lapack_spd_solve(a, b):
    """:func:`spd_solve` by LAPACK (``ok``: the factor is finite; x computed with L = 1 if not)."""
    c = jnp.linalg.cholesky(a)
    ok = jnp.all(jnp.isfinite(c))
    c = jnp.where(ok, c, jnp.eye(a.shape[0], dtype=a.dtype))
    return jax.scipy.linalg.cho_solve((c, True), b), ok


# -- operations of the minimiser on a Hessian -------------------------------------------------
# The minimiser touches the Hessian only through these functions, so a structured Hessian (a
# pytree with the same operations) can replace the dense [n, n] array without changing it.
# Each dispatches (at trace time) on :class:`~jaxlike.linalg._arrowhead.ArrowheadHessian`, the
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


def hess_matvec(h, v):
    """Product H v."""
    if isinstance(h, ArrowheadHessian):
        return h.matvec(v)
    return h @ v


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
