"""The compiled HistFactory model: a pytree of templates with a static parameter layout.

.. math::

    \\nu_b(\\theta) = \\sum_s \\Big(\\prod_{m \\in \\text{mult}} f_{msb}(\\theta)\\Big)
                     \\Big(\\nu^0_{sb}
                           + \\sum_{m \\in \\text{histosys}} \\Delta_{msb}(\\alpha_m)\\Big)

    \\log L(\\theta) = \\sum_b \\big[n_b \\log \\nu_b - \\nu_b - \\log\\Gamma(n_b + 1)\\big]
        + \\sum_{k \\in \\text{normal}} \\log \\mathcal N(a_k \\mid \\theta_k, \\sigma_k)
        + \\sum_{k \\in \\text{poisson}} \\big[a_k \\log(\\gamma_k\\tau_k) - \\gamma_k\\tau_k
                                         - \\log\\Gamma(a_k + 1)\\big]

exactly as pyhf (continuous Poisson, normalisation constants included). Multiplicative modifiers
are normfactor, lumi, normsys (interpolated), shapefactor, shapesys and staterror (per bin);
histosys is additive. Every template and modifier table is an array leaf, so ``jax.grad`` works
with respect to parameters *and* templates, and ``jax.vmap`` batches over hypotheses.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma, gammaln

from .._compile import any_traced
from ..exceptions import InvalidArgument
from ._config import ModelConfig
from ._contract import ConstraintTerm, Likelihood
from ._interp import histosys_delta, normsys_log_factor, normsys_sign
from ._tables import Wiring

__all__ = ["Model", "stack_models"]

_HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


_STIRLING_MIN = 15.0


def _log1pmx(x):
    """log(1 + x) − x for x > −1, to a few ulp of the result (no cancellation for small x).

    For |x| < 1/2 with t = x / (2 + x): log(1 + x) = 2 atanh t = 2 Σ t^(2k+1)/(2k+1) and
    x − 2t = t·x, so log(1 + x) − x = −t·x + 2 t³ Σ_{k≥0} t^(2k) / (2k + 3), summed by Horner in
    t² (|t| ≤ 1/3, 18 terms reach 2⁻⁵⁶). Elsewhere the direct difference loses at most a few ulp.
    """
    small = jnp.abs(x) < 0.5
    xs = jnp.where(small, x, 0.0)
    t = xs / (2.0 + xs)
    t2 = t * t
    series = jnp.zeros_like(t)
    for k in range(_LOG1PMX_TERMS - 1, -1, -1):
        series = series * t2 + 1.0 / (2 * k + 3)
    near = -t * xs + 2.0 * t * t2 * series
    xf = jnp.where(small, 0.0, x)
    return jnp.where(small, near, jnp.log1p(xf) - xf)


_LOG1PMX_TERMS = 18


@jax.jit  # traced once per shape: a model evaluates it in several places, the minimiser traces
# the model ~10 times (a third of a first fit's tracing and lowering went here); XLA inlines it
def poisson_logpdf(n, lam):
    """Continuous Poisson log-probability log Pois(n | λ) = n log λ − λ − lnΓ(n+1).

    Exact to ~1e-14 relative over the whole range (n ≥ 0 real, λ down to 1e-300; checked
    against mpmath in tests/test_model.py). For n ≥ 15 it is evaluated as

        n [log(1 + x) − x] − (lnΓ(n+1) − n log n + n),   x = (λ − n)/n,

    with log(1 + x) − x from :func:`_log1pmx` (no cancellation when λ ≈ n) and the Stirling
    series of the second bracket; otherwise directly (0 log 0 = 0). The direct form loses
    ~n·ε·log n in absolute terms; for Poisson-constrained shapesys with τ ~ 1e11 (ATLAS ERJR)
    that is 1e-3 in log L, enough to stall a minimiser. Same value as pyhf's formula up to that
    rounding. For λ < n/2 the bracket uses log λ − log n (exact to ε·|log λ|; log1p near x = −1
    would lose ε·n/λ: a γ at its lower bound 1e-10 made log L wrong by 1e-4).

    Derivatives are the closed forms (a custom JVP rule, not autodiff through the stable form):
    ∂/∂λ = n/λ − 1 (−1 for n = 0, also at λ = 0), ∂/∂n = log λ − ψ(n + 1) (with 0 log 0 = 0);
    higher orders by differentiating these (∂²/∂λ² = −n/λ²). Autodiff through the Stirling
    series and the atanh series of :func:`_log1pmx` gave the same numbers to rounding but put
    the derivative of both series into every gradient of the likelihood (the 1-bin minimiser's
    compiled program: 11 405 HLO lines with it, 10 516 without).
    """
    n, lam = jnp.asarray(n), jnp.asarray(lam)
    dtype = jnp.result_type(n, lam, float)
    return _poisson_logpdf(n.astype(dtype), lam.astype(dtype))


@jax.custom_jvp
def _poisson_logpdf(n, lam):
    """:func:`poisson_logpdf` on arrays of one floating dtype (the primal of the JVP rule)."""

    # n log λ with 0 log 0 = 0 (the derivatives come from the JVP rule below)
    pos = n > 0
    direct = jnp.where(pos, n * jnp.log(jnp.where(pos, lam, 1.0)), 0.0) - lam - gammaln(n + 1.0)
    big = n >= _STIRLING_MIN
    nb = jnp.where(big, n, _STIRLING_MIN)
    lam_b = jnp.where(big, lam, nb)
    x = (lam_b - nb) / nb  # unselected lanes at x = 0: no inf·0 gradients
    inv = 1.0 / nb
    inv2 = inv * inv
    corr = 0.5 * jnp.log(2.0 * jnp.pi * nb) + inv * (
        1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 / 1680.0))
    )
    far = x < -0.5  # λ < n/2: log λ − log n, also when λ/n would underflow
    bracket = jnp.where(
        far,
        jnp.log(jnp.where(far, lam_b, nb)) - jnp.log(nb) - x,
        _log1pmx(jnp.where(far, 0.0, x)),
    )
    stable = nb * bracket - corr
    return jnp.where(big, stable, direct)


@functools.partial(_poisson_logpdf.defjvp, symbolic_zeros=True)
def _poisson_logpdf_jvp(primals, tangents):
    """(f, ḟ) with ḟ = (n/λ − 1) λ̇ + (log λ − ψ(n + 1)) ṅ; a symbolic-zero tangent (the data,
    in a fit) adds nothing to the program."""
    n, lam = primals
    dn, dlam = tangents
    out = _poisson_logpdf(n, lam)
    tan = jnp.zeros_like(out)
    if not isinstance(dlam, jax.custom_derivatives.SymbolicZero):
        pos = n > 0
        tan = tan + (jnp.where(pos, n / jnp.where(pos, lam, 1.0), 0.0) - 1.0) * dlam
    if not isinstance(dn, jax.custom_derivatives.SymbolicZero):
        live = lam > 0
        log_lam = jnp.where(
            live, jnp.log(jnp.where(live, lam, 1.0)), jnp.where(n > 0, -jnp.inf, 0.0)
        )
        tan = tan + (log_lam - digamma(n + 1.0)) * dn
    return out, tan


def normal_logpdf(x, mu, sigma):
    """Gaussian log-density log N(x | μ, σ) including −log σ − ½ log 2π."""
    return -0.5 * ((x - mu) / sigma) ** 2 - jnp.log(sigma) - _HALF_LOG_2PI


class Model(Likelihood):
    """A HistFactory probability model (pyhf-compatible), as a JAX pytree: a
    :class:`~jaxlike.model.Likelihood` with a closed-form Hessian.

    Build it with :meth:`jaxlike.Workspace.model` or :func:`jaxlike.model.build_model`.
    Parameters and data vectors use pyhf's order (``config.par_names``; observations of the
    sorted channels followed by ``config.auxdata``). ``hessian_layout`` (static) chooses the
    form of the Hessian of :meth:`value_grad_hess`: ``"auto"`` (the rule of
    :func:`jaxlike.model.arrowhead_layout`), ``"dense"`` or ``"arrowhead"``; set it with
    :func:`jaxlike.model.with_hessian_layout`.
    """

    config: ModelConfig = eqx.field(static=True)
    wiring: Wiring = eqx.field(static=True)
    nominal: jax.Array  # [samples, bins]
    masks: dict  # type -> bool [modifiers, samples, bins]
    normsys_lo: jax.Array
    normsys_hi: jax.Array
    histosys_lo: jax.Array
    histosys_hi: jax.Array
    shapesys_unc: jax.Array
    staterror_unc: jax.Array
    reweight: tuple = ()  # ReweightGroup per reweight modifier (see _reweight.py)
    hessian_layout: str = eqx.field(static=True, default="auto")

    # -- main model ----------------------------------------------------------------------------
    def _factors(self, pars):
        """Product of all multiplicative modifiers, shape [samples, bins].

        Direct factors (normfactor, lumi, shapefactor, shapesys, staterror) are gathered from
        K precomputed slots per (sample, bin); normsys factors multiply as
        (Π sign f) · exp(Σ log|f|): pyhf's product, also where a code-4 factor is negative
        (see :func:`~jaxlike.model._interp.normsys_log_factor`). The sum of logs keeps
        ``jax.hessian`` cheap (a plain product costs 2-3x); its second derivative there is
        E [(f'/f)² + (log|f|)''], which loses ~ε E_{−p} f'²/|f| (~1e-8 relative at |f| ~ 1e-8).
        :meth:`value_grad_hess` (what the fits use) takes f''/f directly and stays exact.
        """
        w = self.wiring
        ext = jnp.concatenate([pars, jnp.ones((1,), pars.dtype)])
        idx = w.direct_index()
        fac = ext[idx[0]]
        for k in range(1, idx.shape[0]):
            fac = fac * ext[idx[k]]
        if w.normsys:
            alpha = ext[np.asarray(w.normsys)][:, None, None]
            lo, hi, on = self.normsys_lo, self.normsys_hi, self.masks["normsys"]
            logf = normsys_log_factor(w.normsys_code, alpha, lo, hi)
            sign = jnp.prod(jnp.where(on, normsys_sign(w.normsys_code, alpha, lo, hi), 1.0), 0)
            fac = fac * (sign * jnp.exp(jnp.sum(jnp.where(on, logf, 0.0), axis=0)))
        for g in self.reweight:
            fac = fac * g.factor(pars)
        return fac

    def _shifted_nominal(self, pars):
        """ν⁰ + Σ histosys deltas, shape [samples, bins]."""
        w = self.wiring
        if not w.histosys:
            return self.nominal
        alpha = pars[np.asarray(w.histosys)][:, None, None]
        delta = histosys_delta(
            w.histosys_code, alpha, self.histosys_lo, self.nominal[None], self.histosys_hi
        )
        return self.nominal + jnp.sum(jnp.where(self.masks["histosys"], delta, 0.0), axis=0)

    def expected_by_sample(self, pars):
        """Expected yields per sample, shape [samples, bins] (samples in ``config.samples``)."""
        pars = jnp.asarray(pars)
        return self._factors(pars) * self._shifted_nominal(pars)

    def expected_actualdata(self, pars):
        """Expected main-measurement yields ν_b(θ), shape [bins]."""
        return jnp.sum(self.expected_by_sample(pars), axis=0)

    # -- constraints ---------------------------------------------------------------------------
    def _constraint_plan(self, kind):
        """Static gather plan of all constraints of one kind (``normal`` or ``poisson``):
        parameter indices, aux indices, static widths/factors, and the positions that take a
        template-derived value (staterror σ or shapesys τ) as (position, modifier, bin)."""
        par, aux, val, dyn = [], [], [], []
        bins_of = self.wiring.staterror_bins if kind == "normal" else self.wiring.shapesys_bins
        for seg in self.config.segments:
            if seg.kind != kind:
                continue
            pos = len(par)
            par += range(seg.par_start, seg.par_start + seg.n)
            aux += range(seg.aux_start, seg.aux_start + seg.n)
            if seg.source == "static":
                val += list(seg.values)
            else:
                val += [1.0] * seg.n
                dyn += [(pos + i, seg.which, b) for i, b in enumerate(bins_of[seg.which])]
        as_int = lambda x: np.asarray(x, dtype=np.int32)  # noqa: E731
        dyn = np.asarray(dyn, dtype=np.int32).reshape(-1, 3)
        return as_int(par), as_int(aux), np.asarray(val, float), dyn

    def _constraint_scales(self, kind):
        """Widths σ (normal) or rate factors τ (poisson) of all constraints of one kind."""
        par, _, val, dyn = self._constraint_plan(kind)
        scale = jnp.asarray(val)
        if len(dyn):
            if kind == "normal":
                per_mod = _staterror_sigmas(
                    self.nominal, self.masks["staterror"], self.staterror_unc
                )
                per_mod = jnp.where(per_mod > 0, per_mod, 1.0)
            else:
                per_mod, _ = _shapesys_factors(
                    self.nominal, self.masks["shapesys"], self.shapesys_unc
                )
            scale = scale.at[dyn[:, 0]].set(per_mod[dyn[:, 1], dyn[:, 2]])
        return scale

    def constraint_terms(self):
        """The Gaussian (σ: normsys/histosys 1, lumi σ_lumi, staterror σ_b) and Poisson
        (τ_b = (ν⁰/δ)² of shapesys) constraint terms, as :class:`ConstraintTerm`s."""
        terms = []
        for kind in ("normal", "poisson"):
            par, aux, _, _ = self._constraint_plan(kind)
            if len(par):
                terms.append(ConstraintTerm(kind, par, aux, self._constraint_scales(kind)))
        return tuple(terms)

    def constraint_kinds(self):
        """Per parameter ``"normal"``, ``"poisson"`` or None, from the parameter sets (static,
        no array work)."""
        kinds = [None] * self.config.npars
        for p in self.config.par_map.values():
            for i in range(p.start, p.start + p.n_parameters):
                kinds[i] = p.constraint
        return tuple(kinds)

    def _segment_scale(self, seg):
        """σ (normal) or τ (poisson) of one constraint segment."""
        par, *_ = self._constraint_plan(seg.kind)
        pos = int(np.flatnonzero(par == seg.par_start)[0])
        return self._constraint_scales(seg.kind)[pos : pos + seg.n]

    def auxdata(self):
        """Default auxiliary data in pyhf order (shapesys τ computed from the templates)."""
        aux = jnp.asarray(self.config.auxdata)
        for seg in self.config.segments:
            if seg.dynamic_aux:
                aux = aux.at[seg.aux_start : seg.aux_start + seg.n].set(self._segment_scale(seg))
        return aux

    def expected_auxdata(self, pars):
        """Expected auxiliary data: θ for Gaussian constraints, γ τ for Poisson constraints."""
        pars = jnp.asarray(pars)
        out = jnp.zeros((self.config.nauxdata,), pars.dtype)
        for kind in ("normal", "poisson"):
            par, aux, _, _ = self._constraint_plan(kind)
            if len(par):
                vals = pars[par] if kind == "normal" else pars[par] * self._constraint_scales(kind)
                out = out.at[aux].set(vals)
        return out

    def constraint_logpdf(self, auxdata, pars):
        """Σ log N(a | θ, σ) over Gaussian-constrained and Σ log Pois(a | γ τ) over
        Poisson-constrained parameters."""
        pars, auxdata = jnp.asarray(pars), jnp.asarray(auxdata)
        total = jnp.zeros((), pars.dtype)
        par, aux, _, _ = self._constraint_plan("normal")
        if len(par):
            total = total + jnp.sum(
                normal_logpdf(auxdata[aux], pars[par], self._constraint_scales("normal"))
            )
        par, aux, _, _ = self._constraint_plan("poisson")
        if len(par):
            rate = pars[par] * self._constraint_scales("poisson")
            total = total + jnp.sum(poisson_logpdf(auxdata[aux], rate))
        return total

    def mainlogpdf(self, maindata, pars):
        """Σ_b Pois(n_b | ν_b(θ)) for the main measurement."""
        return jnp.sum(poisson_logpdf(jnp.asarray(maindata), self.expected_actualdata(pars)))

    def logpdf(self, pars, data):
        """Full log-likelihood log L(θ | data) with ``data`` = main + auxdata (pyhf order)."""
        data = jnp.asarray(data)
        n = self.config.nmaindata
        return self.mainlogpdf(data[:n], pars) + self.constraint_logpdf(data[n:], pars)

    def value_grad_hess(self, pars, data):
        """(−2 log L, its gradient, its exact Hessian) at ``pars``: the one call per iteration of
        every fit. Any model type the fit and inference layers accept implements this method
        (here the structured closed form of :mod:`jaxlike.model._hessian`)."""
        from ._hessian import value_grad_hess

        return value_grad_hess(self, pars, data)

    # -- parameters ----------------------------------------------------------------------------
    def breakpoints(self):
        """Static boolean mask [npars, 3]: parameter p has a breakpoint at α = −1, 0, +1.

        Breakpoints are where the interpolation of a normsys/histosys modifier is not twice
        continuously differentiable (``_interp.BREAKPOINTS``: code0/code1 kink at 0, code2
        curvature jump at ±1). The minimiser treats them exactly (one-sided derivatives).
        """
        from . import _interp

        w = self.wiring
        out = np.zeros((self.config.npars, 3), bool)
        for pars, code in ((w.normsys, w.normsys_code), (w.histosys, w.histosys_code)):
            for b in _interp.BREAKPOINTS[code]:
                out[np.asarray(pars, dtype=np.int64), (-1.0, 0.0, 1.0).index(b)] = True
        return out

    def fixed_mask(self):
        """Parameters held constant: user ``fixed`` flags, plus staterror bins with zero
        uncertainty and shapesys bins with zero yield or uncertainty (pyhf semantics)."""
        if not any_traced(self):
            return jnp.asarray(_fixed_mask(self, np))
        return _fixed_mask(self, jnp)

    def fixed_mask_host(self) -> np.ndarray:
        """:meth:`fixed_mask` of a concrete model (not inside jit/vmap), computed with NumPy.

        As a jitted program the mask was a compilation of its own before every first fit of a
        layout: 0.3 s of XLA on the ATLAS ERJR likelihood, 0.9 s on Belle II's (a few array
        operations per staterror segment; 2 cores, jax 0.10.2). On the host it takes 20–100 µs.
        The mask only compares sums of squares with 0, so both paths give the same mask.
        (Call it as ``Model.fixed_mask_host(model)`` where every microsecond counts: a method
        looked up on an equinox module is wrapped anew at every access, ~20 µs.)"""
        return _fixed_mask(self, np)

    def probe_mask(self):
        """Static [npars] mask of the parameters the minimiser's coordinate probe scans: the
        scalar parameter sets (normalisations, normsys/histosys α, lumi, free parameters), not
        the per-bin γ of staterror/shapesys/shapefactor (thousands in large models; they enter
        one bin each and cannot hide a second well that the others do not).

        None of them for a model whose 2NLL is convex (:func:`convex_layout`): every local
        minimum is then a global one, so the minimiser runs no global search (whose compile
        is more than half of a small model's first fit) and the certificate of the local
        Newton run is the whole answer."""
        if not self.reweight and convex_layout(self.config, self.wiring):
            return np.zeros(self.config.npars, bool)
        mask = np.zeros(self.config.npars, bool)
        for p in self.config.par_map.values():
            if p.is_scalar:
                mask[p.start : p.start + p.n_parameters] = True
        return mask

    def batch_shape(self):
        """Leading batch shape of a stacked model: ``nominal`` is [..., samples, bins]."""
        return tuple(self.nominal.shape[:-2])

    def make_data(self, observations):
        """Data vector from main observations (sorted-channel order) and default auxdata."""
        return jnp.concatenate([jnp.asarray(observations, float), self.auxdata()])


def _fixed_mask(model, xp):
    """:meth:`Model.fixed_mask` with the array module ``xp`` (NumPy on the host, jax.numpy
    inside a trace); a function, not a method, for the host path's speed (see there)."""
    fixed = xp.array(model.config.fixed_static, bool)
    nominal = xp.asarray(model.nominal)
    index = _dynamic_fixed_index(model.config, model.wiring)
    for src, unc in (("staterror", model.staterror_unc), ("shapesys", model.shapesys_unc)):
        if src not in index:
            continue
        # every modifier of the kind at once, then one gather of the segments' bins
        mods, cols, pars = index[src]
        args = (nominal, xp.asarray(model.masks[src]), xp.asarray(unc))
        if src == "staterror":
            seg_fixed = _staterror_sigmas(*args, xp=xp)[mods, cols] <= 0  # σ = 0
        else:
            seg_fixed = ~_shapesys_factors(*args, xp=xp)[1][mods, cols]  # τ invalid
        if xp is np:
            fixed[pars] |= seg_fixed
        else:
            fixed = fixed.at[pars].set(fixed[pars] | seg_fixed)
    return fixed


@functools.lru_cache(maxsize=64)
def convex_layout(config, wiring) -> bool:
    r"""Whether every expected count is affine in the parameters, which makes 2NLL convex.

    True when the layout has no normsys and no histosys modifier and every sample carries, in
    every bin, at most one multiplicative parameter that is not fixed in the measurement
    (normfactor, lumi, shapefactor, or the γ of staterror/shapesys; each linear in its
    parameter). Then :math:`ν_b(θ) = \sum_s ν^0_{sb}\, θ_{k(s,b)}` is affine, and

    .. math:: 2\mathrm{NLL}(θ) = \sum_b 2\,[ν_b - n_b \log ν_b]
              + \sum_{\rm Gauss} \frac{(a_j - θ_j)^2}{σ_j^2}
              + \sum_{\rm Poisson} 2\,[τ_j θ_j - a_j \log(τ_j θ_j)] + \mathrm{const}

    is a sum of convex functions of θ for counts n_b ≥ 0 and auxiliary counts a_j ≥ 0
    (ν ↦ ν − n log ν is convex, and so is its composition with an affine map), on a convex
    domain (the box of bounds where every ν_b > 0). Products of two free parameters on one
    sample (μ·lumi, μ·γ), the exponential/polynomial interpolations of normsys and the
    piecewise histosys make it non-convex; those layouts return False (the rule is
    sufficient, not necessary). Reweight modifiers are checked by the caller."""
    if wiring.normsys or wiring.histosys:
        return False
    slots = wiring.direct_index()  # [K, samples, bins]; npars: no parameter
    fixed = np.append(np.asarray(config.fixed_static, bool), True)
    return bool(np.all(np.sum(~fixed[slots], axis=0) <= 1))


@functools.lru_cache(maxsize=64)
def _dynamic_fixed_index(config, wiring):
    """{source: (modifier, bin, parameter) index arrays} of the segments whose zero-uncertainty
    bins are fixed (``dynamic_fixed``), per source ("staterror", "shapesys"); static per layout."""
    out = {}
    for src in ("staterror", "shapesys"):
        segs = [g for g in config.segments if g.dynamic_fixed and g.source == src]
        if segs:
            bins = getattr(wiring, f"{src}_bins")
            out[src] = (
                np.concatenate([np.full(g.n, g.which) for g in segs]),
                np.concatenate([np.asarray(bins[g.which], np.int64) for g in segs]),
                np.concatenate([g.par_start + np.arange(g.n) for g in segs]),
            )
    return out


def _staterror_sigmas(nominal, mask, unc, xp=jnp):
    """σ_mb = sqrt(Σ_s δ_msb²) / Σ_{s carrying m} ν⁰_sb (0 where the sum is 0); mask/unc [M,S,B].
    ``xp``: the array module (jax.numpy, or NumPy for host arrays)."""
    carry = xp.any(mask, axis=2)  # [M, S]
    total = xp.einsum("ms,sb->mb", carry.astype(nominal.dtype), nominal)
    ok = total > 0
    rel2 = xp.sum((unc / xp.where(ok, total, 1.0)[:, None, :]) ** 2, axis=1)
    rel2 = xp.where(ok, rel2, 0.0)
    return xp.where(rel2 > 0, xp.sqrt(xp.where(rel2 > 0, rel2, 1.0)), 0.0)


def _shapesys_factors(nominal, mask, unc, xp=jnp):
    """τ_mb = (ν⁰/δ)² of the sample carrying shapesys m (1 and invalid where ν⁰ or δ is 0).
    ``xp``: the array module (jax.numpy, or NumPy for host arrays)."""
    nom = xp.sum(xp.where(mask, nominal[None], 0.0), axis=1)
    delta = xp.sum(xp.where(mask, unc, 0.0), axis=1)
    valid = (nom > 0) & (delta > 0)
    tau = xp.where(valid, nom**2 / xp.where(valid, delta, 1.0) ** 2, 1.0)
    return tau, valid


def stack_models(models):
    """Stack models with identical layout along a new leading (hypothesis) axis.

    The result is a Model whose array leaves carry a batch axis; use it with ``jax.vmap``
    (e.g. ``jax.vmap(lambda m: jaxlike.fit(m, data))(stacked)``) so all hypotheses share one
    compiled function. Layouts must agree structurally; names may differ (the stacked model
    keeps the first model's names, e.g. a signal grid whose patches name their MC-stat
    modifiers after the mass point).
    """
    models = list(models)
    if not models:
        raise InvalidArgument("stack_models needs at least one model")
    first = models[0]
    for i, m in enumerate(models[1:], 1):
        if m.config != first.config or m.wiring != first.wiring:
            raise InvalidArgument(
                f"model {i} has a different layout (parameters or modifier wiring) than model 0"
            )
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *models)
