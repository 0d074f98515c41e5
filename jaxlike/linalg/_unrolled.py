"""Small Cholesky factorisations unrolled over the matrix size, element-wise over a batch.

For a k×k system with small k, a LAPACK call costs more in call overhead than in arithmetic,
and under ``vmap`` on the CPU it runs matrix by matrix (:mod:`jaxlike.linalg._lapack`). Written
out, the factorisation A = L Lᵀ is k(k+1)/2 scalar formulas (Golub & Van Loan, Algorithm 4.2.1,
the column-by-column Cholesky–Crout order)

    L_jj = √(A_jj − Σ_{m<j} L_jm²),   L_ij = (A_ij − Σ_{m<j} L_im L_jm) / L_jj  (i > j),

and each is one array operation over every leading (batch) index at once: a batch of a
thousand 2×2 systems costs a handful of vector operations. Used for the blocks of an arrowhead
Hessian and for dense systems of at most :data:`jaxlike.linalg.UNROLLED_MAX` parameters.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["block_cholesky", "forward", "backward", "unrolled_spd_solve"]


def block_cholesky(d):
    """Lower Cholesky factors of the k×k matrices d [..., k, k] as a nested list L[i][j] of
    [...] arrays, and ok [...]: every pivot positive. A failing pivot is replaced by 1, so the
    rows after it are meaningless; ``piv`` keeps the pivots (Schur complements)."""
    k = d.shape[-1]
    L = [[None] * k for _ in range(k)]
    ok = jnp.ones(d.shape[:-2], bool)
    piv = []
    for j in range(k):
        s = d[..., j, j]
        for m in range(j):
            s = s - L[j][m] ** 2
        good = s > 0
        ok = ok & good
        piv.append(s)
        ljj = jnp.sqrt(jnp.where(good, s, 1.0))
        L[j][j] = ljj
        for i in range(j + 1, k):
            t = d[..., i, j]
            for m in range(j):
                t = t - L[i][m] * L[j][m]
            L[i][j] = t / ljj
    return L, ok, piv


def forward(L, b):
    """Solve L y = b (forward substitution) for b [..., k, m]."""
    k = len(L)
    y = []
    for i in range(k):
        t = b[..., i, :]
        for m in range(i):
            t = t - L[i][m][..., None] * y[m]
        y.append(t / L[i][i][..., None])
    return jnp.stack(y, axis=-2)


def backward(L, y):
    """Solve Lᵀ x = y (back substitution) for y [..., k, m]."""
    k = len(L)
    x = [None] * k
    for i in reversed(range(k)):
        t = y[..., i, :]
        for m in range(i + 1, k):
            t = t - L[m][i][..., None] * x[m]
        x[i] = t / L[i][i][..., None]
    return jnp.stack(x, axis=-2)


def unrolled_spd_solve(a, b):
    """x = A⁻¹ b for symmetric positive-definite A [k, k] (b [k] or [k, m]) by the unrolled
    Cholesky factorisation, and ok: every pivot positive and x finite (x = b where not)."""
    L, ok, _ = block_cholesky(a)
    bm = b[:, None] if b.ndim == 1 else b
    x = backward(L, forward(L, bm))
    x = x[:, 0] if b.ndim == 1 else x
    ok = ok & jnp.all(jnp.isfinite(x))
    return jnp.where(ok, x, b), ok
