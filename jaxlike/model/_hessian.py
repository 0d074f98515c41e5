r"""2NLL, its gradient and its exact Hessian from the structure of a HistFactory model.

``jax.hessian`` of the likelihood pushes P tangent directions through every modifier table
(P = number of parameters), although each parameter touches one modifier. Here the chain rule
is applied by hand. Write the yield of sample s in bin b as

.. math:: \nu_{sb} = \Pi_{sb}\, E_{sb}\, N_{sb},\qquad
          \Pi = \prod_k \theta_{k(sb)},\quad
          E = \Big(\prod_m \operatorname{sign} f_m\Big) \exp\sum_m \log|f_m(\alpha_m)|,\quad
          N = \nu^0 + \sum_m \Delta_m(\alpha_m)

where the k-slots are the *direct* factors (normfactor, lumi, shapefactor, shapesys,
staterror: linear in their parameter) and the *smooth* parameters α enter through normsys
(f, which code 4 lets be negative: E is pyhf's product Π f_m) and histosys (Δ). With
A_p = ∂log|E|/∂α_p = f'_p/f_p, C_p = (∂²_p E)/E = f''_p/f_p and D_p = ∂N/∂α_p:

.. math::
    \partial_p \nu = \Pi E (A_p N + D_p), \qquad \partial_k \nu = \Pi_{-k} E N \\
    \partial_p\partial_q \nu = \Pi E\,[A_p A_q N + A_p D_q + A_q D_p] \;(p \neq q), \qquad
    \partial_p^2 \nu = \Pi E\,[C_p N + 2 A_p D_p + D'_p] \\
    \partial_k \partial_p \nu = \Pi_{-k} E (A_p N + D_p), \qquad
    \partial_k \partial_l \nu = \Pi_{-k,-l} E N \;(k \neq l)

with Π_{-k} the product of the other direct slots (no division, so θ = 0 is safe). E A_p =
E_{-p} f'_p and E C_p = E_{-p} f''_p stay finite where f_p → 0; C_p is taken in closed form,
not as A'_p + A_p² (two terms ~1/f² that cancel). Then, for
2NLL = 2 Σ_b (ν_b − n_b log ν_b) + constraints,

.. math:: H = J\,\mathrm{diag}(2n/\nu^2)\,J^T + \sum_b 2(1 - n_b/\nu_b)\,\nabla^2\nu_b + H_c

(J_pb = ∂ν_b/∂θ_p; the constraint Hessian H_c is diagonal). All terms are small matrix products
and scatters with static indices, so a Newton step on a 232-parameter model costs about as much
as a few likelihood evaluations. ``tests/test_hessian.py`` checks it against ``jax.hessian``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ._interp import histosys_derivatives, normsys_hessian_parts
from ._model import poisson_logpdf

__all__ = ["value_grad_hess"]


def _smooth_layout(wiring):
    """Smooth parameter indices and one-hot maps from normsys / histosys rows to them."""
    smooth = sorted(set(wiring.normsys) | set(wiring.histosys))
    pos = {p: i for i, p in enumerate(smooth)}
    ns = np.zeros((len(smooth), len(wiring.normsys)))
    for m, p in enumerate(wiring.normsys):
        ns[pos[p], m] = 1.0
    hs = np.zeros((len(smooth), len(wiring.histosys)))
    for m, p in enumerate(wiring.histosys):
        hs[pos[p], m] = 1.0
    return np.asarray(smooth, dtype=np.int32), ns, hs


def _exclusive_products(vals):
    """Π_{j≠k} vals_j and Π_{j∉{k,l}} vals_j over the (small) leading slot axis."""
    k = vals.shape[0]
    one = jnp.ones_like(vals[0])
    minus1 = []
    for a in range(k):
        acc = one
        for j in range(k):
            if j != a:
                acc = acc * vals[j]
        minus1.append(acc)
    minus2 = {}
    for a in range(k):
        for b in range(a + 1, k):
            acc = one
            for j in range(k):
                if j not in (a, b):
                    acc = acc * vals[j]
            minus2[(a, b)] = acc
    return minus1, minus2


def _smooth_terms(model, pars, smooth, ns_map, hs_map):
    """E, N and the per-smooth-parameter arrays A, C, D, D' of shape [Psm, S, B]."""
    w, mk = model.wiring, model.masks
    shape = (len(smooth),) + model.nominal.shape
    zeros = jnp.zeros(shape, pars.dtype)
    A = C = D = D2 = zeros
    log_e = jnp.zeros_like(model.nominal)
    sign_e = jnp.ones_like(model.nominal)
    n_shift = model.nominal
    if w.normsys:
        alpha = pars[np.asarray(w.normsys)][:, None, None]
        sf, lf, lf1, rf2 = normsys_hessian_parts(
            w.normsys_code, alpha, model.normsys_lo, model.normsys_hi
        )
        on = mk["normsys"]
        log_e = jnp.sum(jnp.where(on, lf, 0.0), axis=0)
        sign_e = jnp.prod(jnp.where(on, sf, 1.0), axis=0)
        A = jnp.einsum("pm,msb->psb", ns_map, jnp.where(on, lf1, 0.0))
        C = jnp.einsum("pm,msb->psb", ns_map, jnp.where(on, rf2, 0.0))
    if w.histosys:
        alpha = pars[np.asarray(w.histosys)][:, None, None]
        dl, d1, d2 = histosys_derivatives(
            w.histosys_code, alpha, model.histosys_lo, model.nominal[None], model.histosys_hi
        )
        on = mk["histosys"]
        n_shift = model.nominal + jnp.sum(jnp.where(on, dl, 0.0), axis=0)
        D = jnp.einsum("pm,msb->psb", hs_map, jnp.where(on, d1, 0.0))
        D2 = jnp.einsum("pm,msb->psb", hs_map, jnp.where(on, d2, 0.0))
    return sign_e * jnp.exp(log_e), n_shift, A, C, D, D2


def _smooth_curvature(A, C, D, D2, V, N):
    """Σ_sb V_sb ∂_p∂_q(E N)_sb / E_sb, the smooth-smooth curvature of ν weighted by
    V = r Π E (shared by the dense and the arrowhead Hessian)."""
    # A_p A_q E off the diagonal only: on it, C_p E replaces A_p² E + A'_p E.
    # Two-operand products over the flattened (s, b) axis: a three-operand einsum contracts
    # "psb,sb" first as a dot with batch axes (s, b), S·B tiny products (toys of the
    # 4-parameter, 100-bin HistFactory ALP window in vmapped groups of 128: 88 → 82 µs a toy)
    psm = A.shape[0]
    a, d = A.reshape(psm, -1), D.reshape(psm, -1)
    v, vn = V.reshape(-1), (V * N).reshape(-1)
    offdiag = ~np.eye(psm, dtype=bool)
    ad = (a * v) @ d.T
    h_ss = jnp.where(offdiag, (a * vn) @ a.T, 0.0) + ad + ad.T
    return h_ss + jnp.diag(jnp.sum(v * (C * N[None] + D2).reshape(psm, -1), axis=1))


def _constraint_terms(model, pars, aux):
    """(2NLL_c, gradient, diagonal Hessian) of the constraint terms."""
    npars = pars.shape[0]
    value = -2.0 * model.constraint_logpdf(aux, pars)
    grad = jnp.zeros((npars,), pars.dtype)
    hdiag = jnp.zeros((npars,), pars.dtype)
    par, ax, _, _ = model._constraint_plan("normal")
    if len(par):
        sig = model._constraint_scales("normal")
        grad = grad.at[par].add(2.0 * (pars[par] - aux[ax]) / sig**2)
        hdiag = hdiag.at[par].add(2.0 / sig**2)
    par, ax, _, _ = model._constraint_plan("poisson")
    if len(par):
        tau, g, a = model._constraint_scales("poisson"), pars[par], aux[ax]
        grad = grad.at[par].add(-2.0 * (a / g - tau))
        hdiag = hdiag.at[par].add(2.0 * a / g**2)
    return value, grad, hdiag


def _reweight_curvature(H, rw, res, pi, pi_minus1, E0, N, M, smooth, idx):
    """Σ_b res_b ∂²ν_b terms that involve reweighting parameters φ (res_b = 2(1 − n_b/ν_b)):

    ∂φ_f∂φ_g ν = Σ_s r2_fgsb ν'_sb,  ∂φ_f∂α_p ν = Σ_s r1_fsb Π E0 M_psb,
    ∂φ_f∂θ_k ν = Σ_s r1_fsb Π_{-k} E0 N  (ν' = Π E0 N, the yield without the group's factor).
    """
    S, B = N.shape
    for r1, r2, ids in rw:
        F = ids.shape[0]
        rv = res[None, :] * pi * E0  # [S, B]
        h = jnp.einsum("fgsb,sb->fg", r2, rv * N)
        H = H.at[np.ix_(ids, ids)].add(h)
        if len(smooth):
            h = jnp.einsum("fsb,sb,psb->fp", r1, rv, M)
            H = H.at[np.ix_(ids, smooth)].add(h)
            H = H.at[np.ix_(smooth, ids)].add(h.T)
        rows = np.broadcast_to(ids[:, None, None], (F, S, B)).reshape(-1)
        for k in range(idx.shape[0]):
            v = (r1 * (res[None, :] * pi_minus1[k] * E0 * N)[None]).reshape(-1)
            cols = np.broadcast_to(idx[k][None], (F, S, B)).reshape(-1)
            H = H.at[rows, cols].add(v)
            H = H.at[cols, rows].add(v)
    return H


def value_grad_hess(model, pars, data):
    """(2NLL, ∇ 2NLL, ∇² 2NLL) at ``pars`` for ``data`` (see module docstring).

    For a model with many per-bin parameters (:func:`jaxlike.model._arrowhead.arrowhead_layout`)
    the Hessian is an :class:`~jaxlike.linalg.ArrowheadHessian` (block form, never the
    dense P×P matrix; ``.todense()`` gives it); otherwise a dense [P, P] array.
    """
    from ._arrowhead import arrowhead_layout, arrowhead_value_grad_hess

    lay = arrowhead_layout(model)
    if lay is not None:
        return arrowhead_value_grad_hess(model, pars, data, lay)
    pars, data = jnp.asarray(pars), jnp.asarray(data)
    cfg, w = model.config, model.wiring
    P, nmain = cfg.npars, cfg.nmaindata
    n, aux = data[:nmain], data[nmain:]
    S, B = model.nominal.shape
    ext = jnp.concatenate([pars, jnp.ones((1,), pars.dtype)])
    idx = w.direct_index()  # [K, S, B], value P = no parameter
    K = idx.shape[0]
    vals = ext[idx]
    pi_minus1, pi_minus2 = _exclusive_products(vals)
    pi = pi_minus1[0] * vals[0]
    smooth, ns_map, hs_map = _smooth_layout(w)
    E, N, A, C, D, D2 = _smooth_terms(model, pars, smooth, ns_map, hs_map)
    # reweight groups (never overlapping on a sample/bin): ν = r_g(φ) · ν', where every other
    # parameter sees r_g as a constant factor; E0 keeps ν'/(Π N) for the φ terms
    rw = [g.factor_derivatives(pars)[1:] + (g.par_indices,) for g in model.reweight]
    E0 = E
    for g in model.reweight:
        E = E * g.factor(pars)

    nu_sb = pi * E * N
    nu = jnp.sum(nu_sb, axis=0)
    value = -2.0 * jnp.sum(poisson_logpdf(n, nu))
    # d 2NLL / d nu and d² 2NLL / d nu²; a bin with n = 0 contributes 2ν (derivatives 2, 0),
    # also at ν = 0 where n/ν would be 0/0
    empty = n == 0
    safe_nu = jnp.where(empty, 1.0, nu)
    r = 2.0 * (1.0 - jnp.where(empty, 0.0, n / safe_nu))
    wgt = jnp.where(empty, 0.0, 2.0 * n / safe_nu**2)

    # Jacobian J [P+1, B]
    bgrid = np.broadcast_to(np.arange(B), (S, B))
    J = jnp.zeros((P + 1, B), pars.dtype)
    M = A * N[None] + D  # [Psm, S, B]
    if len(smooth):
        J = J.at[smooth].add(jnp.sum(pi * E * M, axis=1))
    for k in range(K):
        J = J.at[idx[k], bgrid].add(pi_minus1[k] * E * N)
    for r1, _, ids in rw:  # rows of the reweighting parameters: ∂ν_b/∂φ_f = Σ_s r1_fsb ν'_sb
        J = J.at[ids].add(jnp.einsum("fsb,sb->fb", r1, pi * E0 * N))
    J = J.at[P].set(0.0)

    H = (J * wgt) @ J.T
    # curvature of nu: smooth-smooth
    if len(smooth):
        V = r[None, :] * pi * E  # [S, B]
        H = H.at[np.ix_(smooth, smooth)].add(_smooth_curvature(A, C, D, D2, V, N))
        # direct-smooth
        Mflat = M.reshape(len(smooth), S * B)
        for k in range(K):
            vk = (r[None, :] * pi_minus1[k] * E).reshape(S * B)
            h_ds = (
                jnp.zeros((P + 1, len(smooth)), pars.dtype)
                .at[idx[k].reshape(-1)]
                .add((vk * Mflat).T)
            )
            H = H.at[:, smooth].add(h_ds)
            H = H.at[smooth, :].add(h_ds.T)
    # direct-direct
    for (a, b), prod in pi_minus2.items():
        v = (r[None, :] * prod * E * N).reshape(-1)
        ia, ib = idx[a].reshape(-1), idx[b].reshape(-1)
        H = H.at[ia, ib].add(v)
        H = H.at[ib, ia].add(v)

    if rw:
        H = _reweight_curvature(H, rw, r, pi, pi_minus1, E0, N, M, smooth, idx)

    grad = J[:P] @ r
    H = H[:P, :P]
    c_val, c_grad, c_hdiag = _constraint_terms(model, pars, aux)
    H = H + jnp.diag(c_hdiag)
    return value + c_val, grad + c_grad, H
