r"""2NLL, gradient and the Hessian in arrowhead form, for models with many per-bin parameters.

A parameter that touches exactly one bin of the main data (a staterror, shapesys or
shapefactor γ, unless one modifier name is shared by several channels; never a normsys or
histosys α) is *local*; all others are *global*. Local parameters of different bins do not
couple: the likelihood is a sum over bins and the constraint terms are diagonal, so the Hessian
is the arrowhead of :mod:`jaxlike.linalg` (A global-global, C local-global, one small
block D_b per bin). This module builds A, C and D directly from the closed-form terms of
:mod:`jaxlike.model._hessian` (same notation), never the dense P×P matrix:

- Gauss–Newton part J diag(w) Jᵀ: A = J_G diag(w) J_Gᵀ (G×B×G); a local parameter l on bin b
  has the single Jacobian entry j_l = ∂ν_b/∂θ_l, so C_lg = j_l w_b J_gb and
  (D_b)_lm = j_l w_b j_m;
- curvature Σ_b r_b ∇²ν_b: the smooth-smooth block goes to A; each direct-smooth and
  direct-direct term is a scatter with static indices, routed to A, C or D by the (static)
  kind of its two parameters;
- constraint terms: diagonal, to A and D.

Cost: O(S·B·(K + P_smooth)) element-wise work plus O(G²·B) for A, instead of the dense path's
P×B×P product (2.7·10¹⁰ flops at 3000 bins).

When is it used (:func:`arrowhead_layout`): the model has no reweight modifiers, at least
:data:`MIN_LOCAL` local parameters, at least :data:`LOCAL_RATIO` times as many local as global
ones, and at most :data:`MAX_BLOCK` local parameters on one bin. :func:`with_hessian_layout`
(``"auto"``, ``"dense"`` or ``"arrowhead"``) returns the same model with the rule overridden,
e.g. to force the arrowhead on a small model in tests.
"""

from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp
import numpy as np

from ..exceptions import InvalidModel
from ..linalg import ArrowheadHessian, ArrowLayout
from ._hessian import (
    _constraint_terms,
    _exclusive_products,
    _smooth_curvature,
    _smooth_layout,
    _smooth_terms,
)
from ._model import Model, poisson_logpdf

__all__ = [
    "arrowhead_layout",
    "arrowhead_value_grad_hess",
    "with_hessian_layout",
    "MIN_LOCAL",
    "LOCAL_RATIO",
    "MAX_BLOCK",
]

#: at least this many local (per-bin) parameters for the automatic choice of the arrowhead
MIN_LOCAL = 64
#: ... and at least this many times as many local as global parameters
LOCAL_RATIO = 4
#: ... and at most this many local parameters on one bin (the unrolled block factorisation)
MAX_BLOCK = 8

HESSIAN_LAYOUTS = ("auto", "dense", "arrowhead")


def with_hessian_layout(model: Model, layout: str) -> Model:
    """``model`` with the Hessian form of ``value_grad_hess`` (and so of every fit) set to
    ``layout``: ``"auto"`` (the rule of this module), ``"dense"`` or ``"arrowhead"`` (block form;
    not with reweight modifiers). The likelihood is unchanged; the fit compiles separately."""
    if layout not in HESSIAN_LAYOUTS:
        raise InvalidModel("hessian_layout", f"must be one of {HESSIAN_LAYOUTS}, got {layout!r}")
    return dataclasses.replace(model, hessian_layout=layout)


@functools.lru_cache(maxsize=64)
def _layout(config, wiring):
    """The arrowhead layout of a model layout (global/local split, blocks per bin)."""
    P = config.npars
    idx = wiring.direct_index()  # [K, S, B]
    K, S, B = idx.shape
    bins = np.broadcast_to(np.arange(B), idx.shape).reshape(-1)
    pars = idx.reshape(-1)
    real = pars < P
    pairs = np.unique(np.stack([pars[real], bins[real]], axis=1), axis=0)
    nbins = np.bincount(pairs[:, 0], minlength=P)
    local = nbins == 1
    local[list(wiring.normsys) + list(wiring.histosys)] = False
    bin_of = np.full(P, -1)
    one = local[pairs[:, 0]]
    bin_of[pairs[one, 0]] = pairs[one, 1]
    glob = np.flatnonzero(~local)
    lp = np.flatnonzero(local)
    if len(lp) == 0:
        return ArrowLayout(P, glob, np.zeros((0, 1), np.int32), [])
    order = np.lexsort((lp, bin_of[lp]))
    lp = lp[order]
    lb = bin_of[lp]
    ub, start, count = np.unique(lb, return_index=True, return_counts=True)
    k = int(count.max())
    loc = np.full((len(ub), k), P, dtype=np.int32)
    for r, (s, c) in enumerate(zip(start, count, strict=True)):
        loc[r, :c] = lp[s : s + c]
    return ArrowLayout(P, glob, loc, ub)


def arrowhead_layout(model: Model):
    """The :class:`~jaxlike.linalg.ArrowLayout` if ``model``'s Hessian is built in
    arrowhead form, else None (dense). See the module docstring for the rule."""
    mode = model.hessian_layout
    if mode not in HESSIAN_LAYOUTS:
        raise InvalidModel("hessian_layout", f"must be one of {HESSIAN_LAYOUTS}, got {mode!r}")
    if mode == "dense":
        return None
    if model.reweight:
        if mode == "arrowhead":
            raise InvalidModel(
                "hessian_layout", "the arrowhead Hessian does not support reweight modifiers"
            )
        return None
    lay = _layout(model.config, model.wiring)
    if mode == "arrowhead":
        return lay
    L = lay.n_local
    if L >= MIN_LOCAL and L >= LOCAL_RATIO * lay.G and lay.k <= MAX_BLOCK:
        return lay
    return None


def _route(index_a, index_b, lay):
    """Static routing of the entries (a, b) of a symmetric scatter H[a, b] += v, H[b, a] += v:
    positions (flat entry indices) of the global-global, local-global and local-local entries."""
    ga, gb = lay.gpos[index_a], lay.gpos[index_b]
    la, lb = lay.lpos[index_a], lay.lpos[index_b]
    G, L = lay.G, lay.nb * lay.k
    is_g = lambda g: g < G  # noqa: E731
    is_l = lambda lpos: lpos < L  # noqa: E731
    out = {}
    sel = np.flatnonzero(is_g(ga) & is_g(gb))
    out["gg"] = (sel, ga[sel], gb[sel])
    sel1 = np.flatnonzero(is_l(la) & is_g(gb))
    sel2 = np.flatnonzero(is_g(ga) & is_l(lb))
    out["lg"] = (
        np.concatenate([sel1, sel2]),
        np.concatenate([la[sel1], lb[sel2]]),
        np.concatenate([gb[sel1], ga[sel2]]),
    )
    sel = np.flatnonzero(is_l(la) & is_l(lb))
    blk_a, blk_b = la[sel] // lay.k, lb[sel] // lay.k
    if np.any(blk_a != blk_b):
        raise AssertionError("arrowhead: two local parameters of different bins couple")
    out["ll"] = (sel, blk_a, la[sel] % lay.k, lb[sel] % lay.k)
    return out


def _scatter_pair(A, Cf, D, v, route):
    """Add a symmetric pair scatter (v at (a, b) and (b, a)) routed by :func:`_route`."""
    sel, i, j = route["gg"]
    if len(sel):
        A = A.at[i, j].add(v[sel]).at[j, i].add(v[sel])
    sel, lpos, g = route["lg"]
    if len(sel):
        Cf = Cf.at[lpos, g].add(v[sel])
    sel, blk, i, j = route["ll"]
    if len(sel):
        D = D.at[blk, i, j].add(v[sel]).at[blk, j, i].add(v[sel])
    return A, Cf, D


def arrowhead_value_grad_hess(model, pars, data, lay):
    """(2NLL, ∇ 2NLL, :class:`ArrowheadHessian`) at ``pars`` (see the module docstring; the
    value and gradient are those of :func:`jaxlike.model._hessian.value_grad_hess`)."""
    pars, data = jnp.asarray(pars), jnp.asarray(data)
    cfg, w = model.config, model.wiring
    nmain = cfg.nmaindata
    n, aux = data[:nmain], data[nmain:]
    S, B = model.nominal.shape
    G, nb, k = lay.G, lay.nb, lay.k
    L = nb * k
    dtype = pars.dtype
    ext = jnp.concatenate([pars, jnp.ones((1,), dtype)])
    idx = w.direct_index()  # [K, S, B], value P = no parameter
    K = idx.shape[0]
    vals = ext[idx]
    pi_minus1, pi_minus2 = _exclusive_products(vals)
    pi = pi_minus1[0] * vals[0]
    smooth, ns_map, hs_map = _smooth_layout(w)
    E, N, Aa, Ca, Da, D2a = _smooth_terms(model, pars, smooth, ns_map, hs_map)

    nu = jnp.sum(pi * E * N, axis=0)
    value = -2.0 * jnp.sum(poisson_logpdf(n, nu))
    empty = n == 0
    safe_nu = jnp.where(empty, 1.0, nu)
    r = 2.0 * (1.0 - jnp.where(empty, 0.0, n / safe_nu))
    wgt = jnp.where(empty, 0.0, 2.0 * n / safe_nu**2)

    # Jacobian: global rows J_G [G, B], one entry j_l per local parameter (flat blocks [L])
    bgrid = np.broadcast_to(np.arange(B), (S, B)).reshape(-1)
    gs = lay.gpos[smooth]  # smooth parameters are always global
    JG = jnp.zeros((G, B), dtype)
    M = Aa * N[None] + Da  # [Psm, S, B]
    if len(smooth):
        JG = JG.at[gs].add(jnp.sum(pi * E * M, axis=1))
    jl = jnp.zeros((L,), dtype)
    for kk in range(K):
        v = (pi_minus1[kk] * E * N).reshape(-1)
        g = lay.gpos[idx[kk].reshape(-1)]
        sel = np.flatnonzero(g < G)
        if len(sel):
            JG = JG.at[g[sel], bgrid[sel]].add(v[sel])
        lpos = lay.lpos[idx[kk].reshape(-1)]
        sel = np.flatnonzero(lpos < L)
        if len(sel):
            jl = jl.at[lpos[sel]].add(v[sel])
    jb = jl.reshape(nb, k)
    rb, wb = r[lay.bins], wgt[lay.bins]  # [n_b]

    grad_g = JG @ r
    grad_l = jb * rb[:, None]

    # Gauss–Newton part
    A = (JG * wgt) @ JG.T
    D = jb[:, :, None] * jb[:, None, :] * wb[:, None, None]
    Cb = jb[:, :, None] * (JG[:, lay.bins].T * wb[:, None])[:, None, :]  # [n_b, k, G]
    Cf = Cb.reshape(L, G)

    # curvature of ν: smooth-smooth (global), direct-smooth (rows global or local)
    if len(smooth):
        V = r[None, :] * pi * E  # [S, B]
        A = A.at[np.ix_(gs, gs)].add(_smooth_curvature(Aa, Ca, Da, D2a, V, N))
        Mflat = M.reshape(len(smooth), S * B)
        for kk in range(K):
            vk = (r[None, :] * pi_minus1[kk] * E).reshape(S * B)
            h = (vk * Mflat).T  # [S·B, Psm]: row parameter idx[kk], column smooth
            rows = idx[kk].reshape(-1)
            g = lay.gpos[rows]
            sel = np.flatnonzero(g < G)
            if len(sel):
                hg = jnp.zeros((G, len(smooth)), dtype).at[g[sel]].add(h[sel])
                A = A.at[:, gs].add(hg).at[gs, :].add(hg.T)
            lpos = lay.lpos[rows]
            sel = np.flatnonzero(lpos < L)
            if len(sel):
                Cf = Cf.at[lpos[sel][:, None], gs[None, :]].add(h[sel])
    # direct-direct
    for (a, b), prod in pi_minus2.items():
        v = (r[None, :] * prod * E * N).reshape(-1)
        route = _route(idx[a].reshape(-1), idx[b].reshape(-1), lay)
        A, Cf, D = _scatter_pair(A, Cf, D, v, route)

    c_val, c_grad, c_hdiag = _constraint_terms(model, pars, aux)
    hg, hl = lay.split(c_hdiag, fill=1.0)  # padding entries: D_b = 1 on their diagonal
    A = A + jnp.diag(hg)
    D = D + hl[:, :, None] * jnp.eye(k, dtype=dtype)
    grad = lay.join(grad_g, grad_l) + c_grad
    return value + c_val, grad, ArrowheadHessian(A, Cf.reshape(nb, k, G), D, lay)
