"""The compiled HistFactory model: a pytree of templates with a static parameter layout.

.. math::

    \\nu_b(\\theta) = \\sum_s \\Big(\\prod_{m \\in \\text{mult}} f_{msb}(\\theta)\\Big)
                     \\Big(\\nu^0_{sb} + \\sum_{m \\in \\text{histosys}} \\Delta_{msb}(\\alpha_m)\\Big)

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

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, xlogy

from ._config import ModelConfig
from ._interp import histosys_delta, normsys_factor
from ._tables import Wiring

__all__ = ["Model", "stack_models"]

_HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


_STIRLING_MIN = 15.0


def poisson_logpdf(n, lam):
    """Continuous Poisson log-probability log Pois(n | λ) = n log λ − λ − lnΓ(n+1).

    Evaluated without catastrophic cancellation: for n ≥ 15 as
    n [log1p(x) − x] − (lnΓ(n+1) − n log n + n) with x = (λ − n)/n and the bracket from its
    Stirling series, otherwise directly (0 log 0 = 0). The direct form loses ~n·ε·log n in
    absolute terms; for Poisson-constrained shapesys with τ ~ 1e11 (ATLAS ERJR) that is 1e-3 in
    log L, enough to stall a minimiser. Same value as pyhf's formula up to that rounding.
    """
    n = jnp.asarray(n)
    direct = xlogy(n, lam) - lam - gammaln(n + 1.0)
    big = n >= _STIRLING_MIN
    nb = jnp.where(big, n, _STIRLING_MIN)
    x = (lam - nb) / nb
    inv = 1.0 / nb
    inv2 = inv * inv
    corr = 0.5 * jnp.log(2.0 * jnp.pi * nb) + inv * (
        1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 / 1680.0))
    )
    stable = nb * (jnp.log1p(x) - x) - corr
    return jnp.where(big, stable, direct)


def normal_logpdf(x, mu, sigma):
    """Gaussian log-density log N(x | μ, σ) including −log σ − ½ log 2π."""
    return -0.5 * ((x - mu) / sigma) ** 2 - jnp.log(sigma) - _HALF_LOG_2PI


def _prod_where(mask, values):
    """Π_m where(mask[m], values[m], 1) over the leading axis."""
    return jnp.prod(jnp.where(mask, values, 1.0), axis=0)


class Model(eqx.Module):
    """A HistFactory probability model (pyhf-compatible), as a JAX pytree.

    Build it with :meth:`jaxlike.Workspace.model` or :func:`jaxlike.model.build_model`.
    Parameters and data vectors use pyhf's order (``config.par_names``; observations of the
    sorted channels followed by ``config.auxdata``).
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

    # -- main model ----------------------------------------------------------------------------
    def _factors(self, pars):
        """Product of all multiplicative modifiers, shape [samples, bins]."""
        w, mk = self.wiring, self.masks
        ext = jnp.concatenate([pars, jnp.ones((1,), pars.dtype)])
        fac = jnp.ones_like(self.nominal)
        for t in ("normfactor", "lumi"):
            if getattr(w, t):
                vals = ext[np.asarray(getattr(w, t))][:, None, None]
                fac = fac * _prod_where(mk[t], vals)
        if w.normsys:
            alpha = ext[np.asarray(w.normsys)][:, None, None]
            f = normsys_factor(w.normsys_code, alpha, self.normsys_lo, self.normsys_hi)
            fac = fac * _prod_where(mk["normsys"], f)
        for t in ("shapefactor", "shapesys", "staterror"):
            if getattr(w, t):
                vals = ext[np.asarray(getattr(w, t))][:, None, :]
                fac = fac * _prod_where(mk[t], vals)
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
    def _segment_scale(self, seg):
        """σ (normal) or τ (poisson) of a constraint segment, computed from the templates."""
        if seg.source == "static":
            return jnp.asarray(seg.values)
        m = seg.which
        if seg.source == "staterror":
            bins = np.asarray(self.wiring.staterror_bins[m])
            sig = _staterror_sigmas(self.nominal, self.masks["staterror"][m], self.staterror_unc[m])
            sig = sig[bins]
            return jnp.where(sig > 0, sig, 1.0)
        bins = np.asarray(self.wiring.shapesys_bins[m])
        tau, _ = _shapesys_factors(self.nominal, self.masks["shapesys"][m], self.shapesys_unc[m])
        return tau[bins]

    def _segment_fixed(self, seg):
        m = seg.which
        if seg.source == "staterror":
            bins = np.asarray(self.wiring.staterror_bins[m])
            sig = _staterror_sigmas(self.nominal, self.masks["staterror"][m], self.staterror_unc[m])
            return sig[bins] <= 0
        bins = np.asarray(self.wiring.shapesys_bins[m])
        _, valid = _shapesys_factors(self.nominal, self.masks["shapesys"][m], self.shapesys_unc[m])
        return ~valid[bins]

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
        parts = []
        for seg in self.config.segments:
            p = pars[seg.par_start : seg.par_start + seg.n]
            parts.append(p if seg.kind == "normal" else p * self._segment_scale(seg))
        return jnp.concatenate(parts) if parts else jnp.zeros((0,), pars.dtype)

    def expected_data(self, pars, include_auxdata=True):
        """Expected main data followed (by default) by the expected auxiliary data."""
        main = self.expected_actualdata(pars)
        if not include_auxdata:
            return main
        return jnp.concatenate([main, self.expected_auxdata(pars)])

    def constraint_logpdf(self, auxdata, pars):
        """Σ log N(a | θ, σ) over Gaussian-constrained and Σ log Pois(a | γ τ) over
        Poisson-constrained parameters."""
        pars, auxdata = jnp.asarray(pars), jnp.asarray(auxdata)
        total = jnp.zeros((), pars.dtype)
        for seg in self.config.segments:
            p = pars[seg.par_start : seg.par_start + seg.n]
            a = auxdata[seg.aux_start : seg.aux_start + seg.n]
            scale = self._segment_scale(seg)
            if seg.kind == "normal":
                total = total + jnp.sum(normal_logpdf(a, p, scale))
            else:
                total = total + jnp.sum(poisson_logpdf(a, p * scale))
        return total

    def mainlogpdf(self, maindata, pars):
        """Σ_b Pois(n_b | ν_b(θ)) for the main measurement."""
        return jnp.sum(poisson_logpdf(jnp.asarray(maindata), self.expected_actualdata(pars)))

    def logpdf(self, pars, data):
        """Full log-likelihood log L(θ | data) with ``data`` = main + auxdata (pyhf order)."""
        data = jnp.asarray(data)
        n = self.config.nmaindata
        return self.mainlogpdf(data[:n], pars) + self.constraint_logpdf(data[n:], pars)

    def twice_nll(self, pars, data):
        """−2 log L, the objective minimised by every fit."""
        return -2.0 * self.logpdf(pars, data)

    # -- parameters ----------------------------------------------------------------------------
    def fixed_mask(self):
        """Parameters held constant: user ``fixed`` flags, plus staterror bins with zero
        uncertainty and shapesys bins with zero yield or uncertainty (pyhf semantics)."""
        fixed = jnp.asarray(self.config.fixed_static)
        for seg in self.config.segments:
            if seg.dynamic_fixed:
                sl = slice(seg.par_start, seg.par_start + seg.n)
                fixed = fixed.at[sl].set(fixed[sl] | self._segment_fixed(seg))
        return fixed

    def make_data(self, observations):
        """Data vector from main observations (sorted-channel order) and default auxdata."""
        return jnp.concatenate([jnp.asarray(observations, float), self.auxdata()])


def _staterror_sigmas(nominal, mask, unc):
    carry = jnp.any(mask, axis=1)
    total = jnp.sum(jnp.where(carry[:, None], nominal, 0.0), axis=0)
    ok = total > 0
    rel2 = jnp.sum((unc / jnp.where(ok, total, 1.0)) ** 2, axis=0)
    rel2 = jnp.where(ok, rel2, 0.0)
    return jnp.where(rel2 > 0, jnp.sqrt(jnp.where(rel2 > 0, rel2, 1.0)), 0.0)


def _shapesys_factors(nominal, mask, unc):
    nom = jnp.sum(jnp.where(mask, nominal, 0.0), axis=0)
    delta = jnp.sum(jnp.where(mask, unc, 0.0), axis=0)
    valid = (nom > 0) & (delta > 0)
    tau = jnp.where(valid, nom**2 / jnp.where(valid, delta, 1.0) ** 2, 1.0)
    return tau, valid


def stack_models(models):
    """Stack models with identical layout along a new leading (hypothesis) axis.

    The result is a Model whose array leaves carry a batch axis; use it with ``jax.vmap``
    (e.g. ``jax.vmap(lambda m: jaxlike.fit(m, data))(stacked)``) so all hypotheses share one
    compiled function.
    """
    models = list(models)
    if not models:
        raise ValueError("stack_models needs at least one model")
    first = models[0]
    for i, m in enumerate(models[1:], 1):
        if m.config != first.config or m.wiring != first.wiring:
            raise ValueError(
                f"model {i} has a different layout (parameters or modifier wiring) than model 0"
            )
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *models)
