r"""Arrowhead Hessians: block elimination for models with many per-bin parameters.

Per-bin parameters (staterror, shapesys, shapefactor γ) touch one bin of the data each and
couple to each other only through a few *global* parameters (normfactor, lumi, normsys,
histosys α). Ordering the G global parameters first and grouping the L local ones by bin, the
Hessian of 2NLL is an *arrowhead*:

.. math::

    H = \begin{pmatrix} A & C^T \\ C & D \end{pmatrix},\qquad
    D = \operatorname{blockdiag}(D_1, \dots, D_{n_b}),

with A dense G×G, C the L×G coupling and D_b the k×k block of the local parameters of bin b
(k = the most local parameters on one bin, usually 1 or 2; shorter blocks are padded with
inert entries). :class:`ArrowheadHessian` stores A, C and D (O(G² + L·G + L·k) numbers instead
of P²) and the operations of the minimiser (:mod:`jaxlike.linalg._dense` dispatches on it):

- solves by block elimination: Cholesky of every D_b (unrolled over k, element-wise over the
  blocks: no batched LAPACK call), the Schur complement S = A − Cᵀ D⁻¹ C (G×G) and its
  Cholesky through :func:`~jaxlike.linalg._dense.spd_solve` (safe under ``vmap``). H is positive
  definite iff every D_b and S are, so ``ok`` means the same as the dense Cholesky's;
- the inverse as :class:`ArrowheadCovariance`: S⁻¹, Y = D⁻¹C and the blocks D_b⁻¹, from which
  the covariance is

  .. math:: H^{-1} = \begin{pmatrix} S^{-1} & -S^{-1}Y^T \\ -Y S^{-1} &
            D^{-1} + Y S^{-1} Y^T \end{pmatrix}

  (diagonal in O(L·G²), the dense matrix only on request).

A *free* mask (fixed, bound-active or kink-held coordinates frozen) is applied as in the dense
path: frozen rows and columns are replaced by the identity, so the solution keeps the
right-hand side there. Cost per solve: O(n_b k³ + L·k·G + L·G² + G³).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..exceptions import InvalidArgument
from ._lapack import sym_eigh
from ._unrolled import backward as _backward
from ._unrolled import block_cholesky as _block_cholesky
from ._unrolled import forward as _forward

__all__ = ["ArrowLayout", "ArrowheadHessian", "ArrowheadCovariance", "covariance_diagonal"]


class ArrowLayout:
    """Static index structure of an arrowhead Hessian over ``n`` parameters (hashable).

    ``glob``: the G global parameter indices; ``loc``: [n_b, k] local parameter indices, one row
    per block (bin), padded with ``n`` (no parameter); ``bins``: the main-data bin of each block.
    """

    def __init__(self, n, glob, loc, bins):
        glob = np.asarray(glob, dtype=np.int32).reshape(-1)
        loc = np.asarray(loc, dtype=np.int32)
        loc = loc.reshape(loc.shape[0], -1) if loc.size else np.zeros((0, 1), np.int32)
        self.n, self.G = int(n), int(glob.shape[0])
        self.nb, self.k = int(loc.shape[0]), int(loc.shape[1])
        self.glob, self.loc = glob, loc
        self.loc_flat = loc.reshape(-1)
        self.bins = np.asarray(bins, dtype=np.int32).reshape(-1)
        self.pad = self.loc == self.n  # [n_b, k] inert padding entries
        # position of every parameter in the compressed vector [x_G, x_L (flattened blocks)]
        comp = np.concatenate([glob, self.loc_flat])
        real = comp < self.n
        inv = np.full(self.n, -1, dtype=np.int64)
        inv[comp[real]] = np.flatnonzero(real)
        if (inv < 0).any() or real.sum() != self.n:
            raise InvalidArgument(
                "glob, loc: arrowhead layout: every parameter must be global or local once"
            )
        self.inv = inv.astype(np.int32)
        # parameter -> global position (G: none) and -> flat local position (n_b·k: none)
        self.gpos = np.full(self.n + 1, self.G, dtype=np.int32)
        self.gpos[glob] = np.arange(self.G)
        self.lpos = np.full(self.n + 1, self.nb * self.k, dtype=np.int32)
        self.lpos[self.loc_flat[~self.pad.reshape(-1)]] = np.flatnonzero(~self.pad.reshape(-1))
        self._key = (self.n, glob.tobytes(), loc.shape, loc.tobytes(), self.bins.tobytes())
        self._hash = hash(self._key)

    @property
    def n_local(self):
        return int((~self.pad).sum())

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return self is other or (isinstance(other, ArrowLayout) and self._key == other._key)

    def __repr__(self):
        return f"ArrowLayout(n={self.n}, G={self.G}, blocks={self.nb}×{self.k})"

    # -- compressed <-> parameter order ----------------------------------------------------------
    def split(self, v, fill=0.0):
        """(v_G [G], v_L [n_b, k]) of a parameter vector (``fill`` on padding entries)."""
        ext = jnp.concatenate([v, jnp.full((1,), fill, v.dtype)])
        return v[self.glob], ext[self.loc]

    def join(self, vg, vl):
        """Parameter vector from (v_G, v_L) (padding entries dropped)."""
        return jnp.concatenate([vg, vl.reshape(-1)])[self.inv]


def _spd_solve(a, b):
    from ._dense import spd_solve

    return spd_solve(a, b)


class ArrowheadHessian(eqx.Module):
    """Hessian of 2NLL in arrowhead form (see the module docstring).

    Attributes:
        A: [G, G] global-global block.
        C: [n_b, k, G] local-global block, ``C[b, i, g] = H[loc[b, i], glob[g]]``.
        D: [n_b, k, k] local blocks (identity on padding entries).
        layout: the static :class:`ArrowLayout`.
    """

    A: jax.Array
    C: jax.Array
    D: jax.Array
    layout: ArrowLayout = eqx.field(static=True)

    # -- inspection ------------------------------------------------------------------------------
    def todense(self):
        """The dense [P, P] Hessian (for tests and small models)."""
        lay = self.layout
        G, L = lay.G, lay.nb * lay.k
        cf = self.C.reshape(L, G)
        dd = jnp.zeros((lay.nb, lay.k, lay.nb, lay.k), self.D.dtype)
        dd = dd.at[np.arange(lay.nb), :, np.arange(lay.nb), :].set(self.D).reshape(L, L)
        full = jnp.block([[self.A, cf.T], [cf, dd]]) if G and L else (self.A if G else dd)
        return full[lay.inv][:, lay.inv]

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self.todense())
        return out if dtype is None else out.astype(dtype)

    def diagonal(self):
        return self.layout.join(jnp.diagonal(self.A), jnp.diagonal(self.D, axis1=-2, axis2=-1))

    def quad(self, v):
        """vᵀ H v."""
        vg, vl = self.layout.split(v)
        return (
            vg @ self.A @ vg
            + 2.0 * jnp.einsum("bk,bkg,g->", vl, self.C, vg)
            + jnp.einsum("bi,bij,bj->", vl, self.D, vl)
        )

    def matvec(self, v):
        """H v."""
        vg, vl = self.layout.split(v)
        out_g = self.A @ vg + jnp.einsum("bk,bkg->g", vl, self.C)
        out_l = jnp.einsum("bkg,g->bk", self.C, vg) + jnp.einsum("bij,bj->bi", self.D, vl)
        return self.layout.join(out_g, out_l)

    # -- masked blocks -----------------------------------------------------------------------------
    def _masked(self, free, diag_free, diag_frozen):
        """Blocks of H_FF + diag(diag_free) on the free set, diag(diag_frozen) elsewhere."""
        lay = self.layout
        fg, fl = lay.split(free, fill=False)
        dfg, dfl = lay.split(jnp.broadcast_to(diag_free, free.shape).astype(self.A.dtype))
        dzg, dzl = lay.split(jnp.broadcast_to(diag_frozen, free.shape).astype(self.A.dtype), 1.0)
        a = jnp.where(fg[:, None] & fg[None, :], self.A, 0.0) + jnp.diag(jnp.where(fg, dfg, dzg))
        c = jnp.where(fl[:, :, None] & fg[None, None, :], self.C, 0.0)
        eye = jnp.eye(lay.k, dtype=bool)
        d = jnp.where(fl[:, :, None] & fl[:, None, :], self.D, 0.0)
        d = d + jnp.where(eye, jnp.where(fl, dfl, dzl)[:, :, None], 0.0)
        return a, c, d, fg, fl

    def masked_solve(self, free, diag_add, rhs):
        """Solve (H_FF + diag(diag_add)_F) x_F = rhs_F, x = rhs off F; returns (x, ok)."""
        lay = self.layout
        a, c, d, _, _ = self._masked(free, diag_add, 1.0)
        bg, bl = lay.split(rhs)
        L, ok_d, _ = _block_cholesky(d)
        w = _forward(L, c)  # [n_b, k, G] = L⁻¹ C
        y = _forward(L, bl[..., None])[..., 0]
        if lay.G:
            schur = a - jnp.einsum("bkg,bkh->gh", w, w)
            xg, ok_s = _spd_solve(schur, bg - jnp.einsum("bkg,bk->g", w, y))
            y = y - jnp.einsum("bkg,g->bk", w, xg)
        else:
            xg, ok_s = bg, jnp.asarray(True)
        xl = _backward(L, y[..., None])[..., 0]
        return lay.join(xg, xl), jnp.all(ok_d) & ok_s

    def inverse(self, free):
        """(H_FF)⁻¹ as an :class:`ArrowheadCovariance` (0 outside F) and ok (PD)."""
        lay = self.layout
        a, c, d, fg, fl = self._masked(free, 0.0, 1.0)
        L, ok_d, _ = _block_cholesky(d)
        w = _forward(L, c)
        y = _backward(L, w)  # D⁻¹ C
        eye_k = jnp.broadcast_to(jnp.eye(lay.k, dtype=d.dtype), d.shape)
        dinv = _backward(L, _forward(L, eye_k))
        if lay.G:
            schur = a - jnp.einsum("bkg,bkh->gh", w, w)
            sinv, ok_s = _spd_solve(schur, jnp.eye(lay.G, dtype=a.dtype))
        else:
            sinv, ok_s = jnp.zeros((0, 0), a.dtype), jnp.asarray(True)
        sinv = jnp.where(fg[:, None] & fg[None, :], sinv, 0.0)
        dinv = jnp.where(fl[:, :, None] & fl[:, None, :], dinv, 0.0)
        y = jnp.where(fl[:, :, None] & fg[None, None, :], y, 0.0)
        return ArrowheadCovariance(sinv, y, dinv, lay), jnp.all(ok_d) & ok_s

    def min_curvature_direction(self, free):
        """A unit direction of least curvature of H_FF (0 off F), from the block factorisation.

        If some local block D_b of H_FF is not positive definite, the direction is the
        eigenvector of the smallest eigenvalue of that block (of the block whose first failing
        Cholesky pivot gives the lowest curvature, if several fail); otherwise it is the
        eigenvector u of the smallest eigenvalue of the Schur complement S = A − Cᵀ D⁻¹ C,
        lifted to v = (u, −D⁻¹C u), for which vᵀHv = uᵀSu. Whenever H_FF is not positive
        definite, vᵀHv < 0: v points along a descending (or flat) combination, as the dense
        path's eigenvector of the smallest eigenvalue, which it equals when C = 0 and a single
        block is indefinite.
        """
        lay = self.layout
        hd = jnp.abs(self.diagonal())
        big = 10.0 * (jnp.max(jnp.where(free, hd, 0.0)) + 1.0)
        a, c, d, fg, fl = self._masked(free, 0.0, big)
        L, ok_d, piv = _block_cholesky(d)
        k = lay.k
        if lay.nb:
            # curvature vᵀD_b v/|v|² of the witness v = (−D₁₁⁻¹d₁₂, 1, 0…) of the first failing
            # pivot s_j of each block (vᵀD_b v = s_j); D₁₁⁻¹d₁₂ = L₁₁⁻ᵀ (row j of L)
            first = jnp.full(d.shape[:-2], k)
            for j in reversed(range(k)):
                first = jnp.where(piv[j] <= 0, j, first)
            rq = jnp.full(d.shape[:-2], jnp.inf, d.dtype)
            for j in range(k):
                z = [None] * j
                for i in reversed(range(j)):
                    t = L[j][i]
                    for m in range(i + 1, j):
                        t = t - L[m][i] * z[m]
                    z[i] = t / L[i][i]
                norm2 = 1.0 + sum((zi**2 for zi in z), jnp.zeros_like(piv[j]))
                rq = jnp.where(first == j, piv[j] / norm2, rq)
            worst = jnp.argmin(rq)
            _, vecs = sym_eigh(d[worst])
            vl = jnp.zeros(d.shape[:-1], d.dtype).at[worst].set(vecs[:, 0])
            v_local = lay.join(jnp.zeros((lay.G,), d.dtype), vl)
        else:
            v_local = jnp.zeros((lay.n,), d.dtype)
        if lay.G:
            w = _forward(L, c)
            schur = a - jnp.einsum("bkg,bkh->gh", w, w)
            _, vecs = sym_eigh(schur)
            u = vecs[:, 0]
            yl = _backward(L, _forward(L, jnp.einsum("bkg,g->bk", c, u)[..., None]))[..., 0]
            v_schur = lay.join(u, -yl)
        else:
            v_schur = jnp.zeros_like(v_local)
        v = jnp.where(jnp.all(ok_d), v_schur, v_local)
        v = jnp.where(free, v, 0.0)
        return v / jnp.maximum(jnp.linalg.norm(v), 1e-300)


def _unbatched(obj, fn, base_ndim):
    """Apply ``fn`` to ``obj`` vmapped over the leading batch axes of its leaves."""
    for _ in range(obj.Sinv.ndim - base_ndim):
        fn = jax.vmap(fn)
    return fn(obj)


class ArrowheadCovariance(eqx.Module):
    """Inverse of an arrowhead matrix (the covariance of a fit with many per-bin parameters),
    kept in factored form: ``Sinv`` [G, G], ``Y`` = D⁻¹C [n_b, k, G], ``Dinv`` [n_b, k, k].

    ``diagonal()`` gives the variances in O(L·G²); ``todense()`` (and ``np.asarray``) the full
    [P, P] matrix. Leaves may carry leading batch axes (a vmapped fit); the methods map over
    them.
    """

    Sinv: jax.Array
    Y: jax.Array
    Dinv: jax.Array
    layout: ArrowLayout = eqx.field(static=True)

    @property
    def shape(self):
        return self.Sinv.shape[:-2] + (self.layout.n, self.layout.n)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def dtype(self):
        return self.Sinv.dtype

    def scaled(self, factor, ok=True):
        """factor · this matrix (Sinv and Dinv scale, Y = D⁻¹C does not); NaN where not ``ok``."""
        nan = lambda a: jnp.where(ok, a, jnp.nan)  # noqa: E731
        return ArrowheadCovariance(
            nan(factor * self.Sinv), nan(self.Y), nan(factor * self.Dinv), self.layout
        )

    def diagonal(self):
        def one(cov):
            lay = cov.layout
            yf = cov.Y.reshape(lay.nb * lay.k, lay.G)
            dl = jnp.diagonal(cov.Dinv, axis1=-2, axis2=-1).reshape(-1)
            dl = dl + jnp.einsum("lg,gh,lh->l", yf, cov.Sinv, yf)
            return jnp.concatenate([jnp.diagonal(cov.Sinv), dl])[lay.inv]

        return _unbatched(self, one, 2)

    def todense(self):
        """The [P, P] matrix: Z S⁻¹ Zᵀ + blockdiag(D⁻¹) with Z = (I_G; −Y) in parameter order
        (one P×G×P product written in place, plus the n_b·k² block entries)."""

        def one(cov):
            lay = cov.layout
            z = jnp.concatenate(
                [jnp.eye(lay.G, dtype=cov.Y.dtype), -cov.Y.reshape(lay.nb * lay.k, lay.G)]
            )[lay.inv]
            full = z @ cov.Sinv @ z.T
            real = ~lay.pad
            rows = np.broadcast_to(lay.loc[:, :, None], cov.Dinv.shape)
            cols = np.broadcast_to(lay.loc[:, None, :], cov.Dinv.shape)
            keep = real[:, :, None] & real[:, None, :]
            return full.at[rows[keep], cols[keep]].add(cov.Dinv[keep])

        return _unbatched(self, one, 2)

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self.todense())
        return out if dtype is None else out.astype(dtype)


def covariance_diagonal(cov):
    """Diagonal of a dense or :class:`ArrowheadCovariance` covariance (batched or not)."""
    if isinstance(cov, ArrowheadCovariance):
        return cov.diagonal()
    return jnp.diagonal(cov, axis1=-2, axis2=-1)
