r"""Background-model envelopes: several background models of one mass scan, fitted per
hypothesis in the same compiled call, combined by discrete profiling or by the conservative rule.

The J models of an :class:`Envelope` share the signal (tables, conversion, systematics) and the
spectrum; they differ in the background family, its order and (for the conservative rule) the
fit window. Two ways of combining them, chosen by ``method``:

``"profile"`` — discrete profiling (the envelope of CMS/ATLAS, combine's ``RooMultiPdf``): the
background model index is a discrete nuisance parameter, profiled with a penalty c per fitted
parameter,

.. math::
    2\mathrm{NLL}_\mathrm{env}(\mu) = \min_j \left[ 2\mathrm{NLL}_j(\mu) + c\,k_j \right],

k_j the number of parameters of model j (only differences between models matter; c = 1 in
2NLL units is combine's default correction of ½ per parameter in NLL, c = 0 pure profiling,
c = 2 the Akaike criterion). All models then need the same window (the same data).

- μ̂ and its uncertainty are those of the winning free fit (μ free in [−μ_max, μ_max]);
  Z = sign(μ̂) √(2NLL_env(0) − min_μ 2NLL_env(μ)).
- Observed limit: the root of CLs(μ) = α (or CLs+b) with q̃_μ = 2NLL_env(μ) − 2NLL_env(μ̂)
  (μ̂ ≥ 0 bounded; 0 for μ < μ̂), every model's conditional fit at each trial μ.
- Asimov data and the expected band: those of the background-only winner j₀ = argmin_j
  [2NLL_j(μ = 0) + c k_j] (the model that generates the Asimov data, as combine does); on its
  own Asimov data j₀ fits best, so the expected curves profile over j₀ only (q_{μ,A} of j₀),
  and the observed curve uses the same q_{μ,A}.

``"conservative"`` — the rule of analyses that vary the background (family, order, fit range)
as a systematic and quote the least favourable result (e.g. Belle II's e⁺e⁻ → γa search): every
model gets its own complete single-model result (:func:`hypothesis_results`), and the envelope
reports the *smallest* local significance (with that model's μ̂) and the *least stringent*
limit — the largest observed limit, and each expected quantile the largest over the models
(so every reported number is the least stringent of the family). Windows may differ.

Implementation: the J window models of a mass are padded to one array layout
(:func:`~jaxlike.parametric.stack_backgrounds`: the polynomial families as a linear basis
padded to the largest order, the unused coefficients fixed at 0, the family as data) and
stacked, so each kind of fit is ONE vmapped fit over the models — compiled once whatever J
is. Profiling refits every model to the data at each trial μ of the observed curve, but the
Asimov fits (six curves) only for j₀, taken from the stack by index: J + 6 fits per
iteration instead of 7 J.

With one model both methods return that model's single-model scan, bit for bit. The outputs
add ``bkg_model`` (the model of Z and μ̂) and ``bkg_model_limit`` [ncl] (conservative: the model
of the observed limit; profile: the model with the smallest penalised 2NLL at the last trial
point of the observed root search, i.e. within ``rtol`` of the limit), and, for profile,
``bkg_model_null`` (j₀).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..exceptions import InvalidScanConfig
from ..infer import (
    asymptotic_guess,
    conditional_fit,
    curve_pvalues,
    hypotest_prepare,
    illinois_roots,
    profile_statistic,
    with_asimov_free_fit,
)
from ._model import stack_backgrounds
from ._scan import MassScan, hypothesis_results, physical_fields, window_results

__all__ = ["Envelope", "ENVELOPE_METHODS", "ENVELOPE_FIELDS", "background_envelope",
           "envelope_results"]  # fmt: skip

#: ways of combining the models of an envelope (module docstring)
ENVELOPE_METHODS = ("profile", "conservative")
#: result fields an envelope adds to :data:`~jaxlike.parametric.RESULT_FIELDS`
ENVELOPE_FIELDS = ("bkg_model", "bkg_model_limit", "bkg_model_null")


class Envelope(eqx.Module):
    """J background models of one mass scan and how they are combined (module docstring).
    Build one with :func:`background_envelope` (which checks the models fit together).

    Attributes:
        models: the :class:`MassScan` of each background model (same signal and spectrum).
        penalty: c, 2NLL added per fitted parameter (``"profile"`` only).
        method: ``"profile"`` or ``"conservative"``.
        names: a label per model (e.g. ``"bernstein4"``), for summaries and files.
    """

    models: tuple
    penalty: jnp.ndarray
    method: str = eqx.field(static=True, default="profile")
    names: tuple = eqx.field(static=True, default=())

    # the signal side is shared: the first model speaks for all
    @property
    def tables(self):
        """Signal tables (shared by the models)."""
        return self.models[0].tables

    @property
    def physics_power(self):
        """p of the physics parameter g = k(m) σ^p (shared), or None."""
        return self.models[0].physics_power

    def unit(self, m):
        """Physical value per unit μ at mass m (:meth:`MassScan.unit`, shared)."""
        return self.models[0].unit(m)

    def physics(self, m, value):
        """The physics parameter of a physical value (:meth:`MassScan.physics`, shared)."""
        return self.models[0].physics(m, value)


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.array_equal(a, b))


def background_envelope(models, method="profile", penalty=1.0, names=None) -> Envelope:
    """An :class:`Envelope` of the mass scans ``models`` (J ≥ 1), checked: the same spectrum,
    categories, signal conversion and systematics in every model; for ``"profile"`` also the
    same window (``window_lo``, ``window_hi``, ``n_bins``, vetoes), since 2NLLs of different
    data cannot be compared. ``penalty`` c ≥ 0 (2NLL per parameter). Errors name the field
    (:class:`~jaxlike.exceptions.InvalidScanConfig`)."""
    models = tuple(models)
    if not models or not all(isinstance(s, MassScan) for s in models):
        raise InvalidScanConfig("envelope.models", "needs one or more MassScan models")
    if method not in ENVELOPE_METHODS:
        raise InvalidScanConfig("envelope.method", f"must be one of {ENVELOPE_METHODS}, "
                                f"got {method!r}")  # fmt: skip
    if isinstance(penalty, bool) or not np.isfinite(penalty) or penalty < 0:
        raise InvalidScanConfig("envelope.penalty", f"must be a number ≥ 0, got {penalty!r}")
    names = tuple(names) if names is not None else tuple(f"model{j}" for j in range(len(models)))
    if len(names) != len(models):
        raise InvalidScanConfig("envelope.names", f"needs {len(models)} names, got {len(names)}")
    first = models[0]
    shared = ["fine_edges", "cum_counts", "cum_comb", "conversion", "rel_eff", "rel_res"]
    shared += ["vetoes", "window_lo", "window_hi", "n_bins"] if method == "profile" else []
    for j, s in enumerate(models[1:], 1):
        for field in shared:
            if not _same(getattr(s, field), getattr(first, field)):
                why = (
                    "(discrete profiling compares 2NLLs of the same data)"
                    if field in ("vetoes", "window_lo", "window_hi", "n_bins")
                    else "(shared by the models)"
                )
                raise InvalidScanConfig(f"envelope.models[{j}]",
                                        f"{field} differs from model 0 {why}")  # fmt: skip
        signal = lambda x: (x.shape, x.has_eff, x.has_res, x.uncorrelated)  # noqa: E731
        if signal(s) != signal(first):
            raise InvalidScanConfig(f"envelope.models[{j}]", "the signal model differs from "
                                    "model 0 (shape or systematics)")  # fmt: skip
    return Envelope(models=models, penalty=jnp.asarray(float(penalty)), method=method,
                    names=names)  # fmt: skip


def _members(env, m):
    """Every model's window at mass m as one stacked window model [J]
    (:func:`stack_backgrounds`: one compiled fit serves all J) and the penalties c k_j [J]
    (k_j the model's own number of parameters, not the padded one)."""
    windows = [s.window_model(m) for s in env.models]
    # k_j: the free parameters (a model with an order per mass range has fixed slots)
    k = [w.config.npars - jnp.sum(w.fixed_mask()) for w in windows]
    pen = env.penalty * jnp.stack([jnp.asarray(x, float) for x in k])
    return stack_backgrounds(windows), pen


def _conservative(env, m, cl, data, rule):
    stacked, _ = _members(env, m)
    res = jax.vmap(lambda w: window_results(w, cl, data, rule=rule)[2])(stacked)  # [J, ...]
    z = res["significance"]
    j_z = jnp.argmin(jnp.where(jnp.isnan(z), jnp.inf, z))
    j_ul = jnp.argmax(jnp.where(jnp.isnan(res["ul_obs"]), jnp.inf, res["ul_obs"]), axis=0)
    out = {}
    for key, stacked_values in res.items():
        if key in ("fit_converged", "limit_converged"):
            out[key] = jnp.all(stacked_values, axis=0)
        elif key.startswith("ul_"):  # the least stringent limit of each curve
            out[key] = jnp.max(stacked_values, axis=0)
        else:  # μ̂, Z, p0 of the model with the smallest significance
            out[key] = stacked_values[j_z]
    return out | {"bkg_model": j_z.astype(jnp.int32), "bkg_model_limit": j_ul.astype(jnp.int32)}


def _profile(env, m, cl, data, rule, rtol=1e-6, maxiter=60):
    stacked, pen = _members(env, m)
    preps = jax.vmap(
        lambda w: hypotest_prepare(
            w.make_data(data), w, test_stat="qtilde", signed_fit=True, asimov_free_fit=False
        )
    )(stacked)  # [J]; the free fit to Asimov data only for j₀, below
    signed = preps.signed_fit.twice_nll + pen
    null = preps.asimov_fit.twice_nll + pen
    free = preps.free_fit.twice_nll + pen
    w, j0, jf = jnp.argmin(signed), jnp.argmin(null), jnp.argmin(free)
    mu_hat = preps.signed_fit.bestfit[w, 0]
    z = jnp.sign(mu_hat) * jnp.sqrt(jnp.clip(jnp.min(null) - jnp.min(signed), 0.0))
    free_min, mu_hat_q = jnp.min(free), preps.free_fit.bestfit[jf, 0]
    # the background-only winner: its Asimov data, q_μ,A and expected band (module docstring)
    take = lambda tree: jax.tree.map(lambda x: x[j0], tree)  # noqa: E731
    model0 = take(stacked)
    prep0 = with_asimov_free_fit(take(preps), model0)

    alpha = 1.0 - jnp.asarray(cl, float)
    al = jnp.repeat(alpha[:, None], 6, axis=1)  # [ncl, 6]
    ncl = alpha.shape[0]
    mu_lo = jnp.asarray(0.0)
    mu_hi = jnp.min(preps.hi[:, 0])
    guess = asymptotic_guess(prep0, alpha, mu_lo, mu_hi, rule)
    # data: every model at the observed curve's μ [J, ncl]; Asimov: j₀ at every curve's μ
    # [ncl, 6]. All J·ncl + 6·ncl fits run as ONE vmapped conditional fit (the model, its
    # preparation and its data gathered per row), so the minimiser is traced and compiled once.
    n_models = pen.shape[0]
    n_data = n_models * ncl
    row_model = jnp.concatenate([jnp.repeat(jnp.arange(n_models), ncl),
                                 jnp.full((6 * ncl,), j0)])  # fmt: skip
    on_asimov = jnp.arange(n_data + 6 * ncl) >= n_data

    def row_fit(j, asimov_row, start, mu):
        p, w_ = jax.tree.map(lambda x: x[j], (preps, stacked))
        return conditional_fit(p, w_, jnp.where(asimov_row, prep0.asimov_data, p.data), start, mu)

    def evaluate(mu, carry):
        (start_d, start_a), _ = carry
        mus = jnp.concatenate([jnp.broadcast_to(mu[:, 0], (n_models, ncl)).reshape(-1),
                               mu.reshape(-1)])  # fmt: skip
        npar = start_a.shape[-1]
        starts = jnp.concatenate([start_d.reshape(n_data, npar), start_a.reshape(-1, npar)])
        f = jax.vmap(row_fit)(row_model, on_asimov, starts, mus)
        fd = jax.tree.map(lambda x: x[:n_data].reshape((n_models, ncl) + x.shape[1:]), f)
        fa = jax.tree.map(lambda x: x[n_data:].reshape((ncl, 6) + x.shape[1:]), f)
        cond = fd.twice_nll + pen[:, None]
        q = profile_statistic("qtilde", mu[:, 0], jnp.min(cond, axis=0), free_min, mu_hat_q)
        cls = curve_pvalues(prep0, mu, q, fa.twice_nll, rule)
        conv_d = jnp.all(fd.converged, axis=0)
        conv = fa.converged & jnp.concatenate([conv_d[:, None], jnp.ones((ncl, 5), bool)], 1)
        return cls, conv, ((fd.bestfit, fa.bestfit), jnp.argmin(cond, axis=0).astype(jnp.int32))

    start_d = jnp.broadcast_to(preps.free_fit.bestfit[:, None], (pen.shape[0], ncl) +
                               preps.free_fit.bestfit.shape[1:])  # fmt: skip
    start_a = jnp.broadcast_to(prep0.asimov_fit.bestfit, (ncl, 6) + prep0.init.shape)
    carry = ((start_d, start_a), jnp.zeros((ncl,), jnp.int32))
    root, ok, _, (_, j_lim) = illinois_roots(
        evaluate, carry, guess, al, mu_lo, mu_hi, rtol, maxiter
    )
    fits = ("signed_fit", "free_fit", "asimov_fit")
    fit_ok = jnp.all(jnp.stack([jnp.all(getattr(preps, f).converged) for f in fits]))
    fit_ok = fit_ok & prep0.free_fit_asimov.converged
    return {
        "mu_hat": mu_hat,
        "mu_hat_err": preps.signed_fit.uncertainties[w, 0],
        "significance": z,
        "p0": jax.scipy.stats.norm.sf(z),
        "ul_obs": root[:, 0],
        "ul_exp": root[:, 1:],
        "fit_converged": fit_ok,
        "limit_converged": jnp.all(ok, axis=1),
        "bkg_model": w.astype(jnp.int32),
        "bkg_model_limit": j_lim,
        "bkg_model_null": j0.astype(jnp.int32),
    }


def envelope_results(env: Envelope, m, cl=(0.95,), data=None, *, rule="cls"):
    """The results of :func:`hypothesis_results` at mass m for the envelope ``env`` (module
    docstring: ``"profile"`` or ``"conservative"``), plus ``bkg_model``, ``bkg_model_limit``
    [ncl] (and ``bkg_model_null`` for profile). Traceable; vmap over m and over ``data``
    (window counts, which need every model's window to agree). One model: exactly
    :func:`hypothesis_results` (with the indices 0)."""
    cl = tuple(float(x) for x in np.atleast_1d(cl))
    zero = jnp.zeros((), jnp.int32)
    if len(env.models) == 1:
        out = hypothesis_results(env.models[0], m, cl, data, rule=rule)
        extra = {"bkg_model": zero, "bkg_model_limit": jnp.zeros((len(cl),), jnp.int32)}
        if env.method == "profile":
            extra["bkg_model_null"] = zero
        return out | extra
    combine = _conservative if env.method == "conservative" else _profile
    out = combine(env, m, cl, data, rule)
    return out | physical_fields(env, m, out["mu_hat"], out["ul_obs"], out["ul_exp"])
