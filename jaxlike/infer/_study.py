r"""Toy studies of the POI estimator: bias, pulls and coverage (the frequentist closure test).

N pseudo-datasets x_i are drawn at a generating point θ_gen whose POI is the true value μ_t;
each is fitted twice, freely (μ̂_i, its Hessian uncertainty σ̂_i = √V_μμ, 2NLL(μ̂_i)) and with
the POI held at μ_t (2NLL(μ_t)). Per toy:

.. math::
    \mathrm{pull}_i = \frac{\hat\mu_i - \mu_t}{\hat\sigma_i}, \qquad
    t_i = 2\mathrm{NLL}(\mu_t) - 2\mathrm{NLL}(\hat\mu_i) \ge 0,

and over the N_ok toys whose fits converged (failed toys are left out and counted):

- bias b = ⟨μ̂⟩ − μ_t, MC error s_μ̂/√N_ok; relative bias b/μ_t (μ_t ≠ 0);
- pull mean ⟨pull⟩ ± s_pull/√N_p and pull width s_pull ± s_pull/√(2(N_p − 1)) (the Gaussian
  error of a standard deviation; N_p toys with a finite pull: σ̂ > 0);
- Hesse coverage: the fraction of toys with |pull| ≤ z, z = Φ⁻¹((1 + CL)/2) (the interval
  μ̂ ± z σ̂ covers μ_t), and profile-likelihood coverage: the fraction with t ≤ χ²₁(CL) (the
  interval {μ : t(μ) ≤ χ²₁(CL)} covers μ_t); both with binomial errors √(p(1 − p)/N).

An unbiased, efficient estimator in the asymptotic regime has b ≈ 0, pull mean 0, width 1 and
both coverages ≈ CL. Small counts make the Poisson MLE's Hessian error data-dependent
(σ̂² = n/s² for one bin: pull = (n − ν)/√n, with mean < 0 and width > 1), and the Hesse and
profile intervals then cover differently from CL; a POI bound at the true value (μ ≥ 0 at
μ_t = 0) biases μ̂ upwards.

POI bounds (``signed=True``, default): the POI may go below zero, down to −(upper bound) (as
the signed fit of :func:`~jaxlike.infer.hypotest_prepare` and of a mass scan): an estimator
clipped at a physical bound is biased by construction, and the point of a bias study is the
unclipped estimator (a HistFactory model whose expected yields turn negative there gives failed
fits, which are counted). ``signed=False`` keeps the model's bounds.

Toy i is ``model.sample(θ_gen, fold_in(fold_in(PRNGKey(seed), 1), i))``: the keys of the s+b
toys of a toy-based test at μ_t with the same seed (:mod:`jaxlike.infer._toys`), so toy i
does not depend on the chunking, and with ``toy_pars="init"`` the toys equal those s+b toys
(with ``"profiled"`` up to the last digits of the generating fit).
θ_gen (``toy_pars``): ``"profiled"`` (default) the conditional fit θ̂̂(μ_t) to the data;
``"init"`` the initial values with the POI set to μ_t (the generating fit starts from the
initial values). Each toy's conditional fit starts from θ_gen (the truth, as in the usual toy
closure tests), its free fit from the conditional minimum with the POI released — a descent
from 2NLL(μ_t), so t ≥ 0 by construction. No fit runs the minimiser's global search unless
``search=True`` (5× slower toys; useful for multimodal likelihoods).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._compile import jit
from ..exceptions import InvalidArgument
from ..fit import (
    Bounds,
    Data,
    Fixed,
    Pars,
    conditional_inputs,
    fit_arrays,
    prepare_fit_inputs,
    result_repr,
)
from ..stream import batched_map
from ._hypotest import check_poi_free, signed_bounds
from ._toys import check_toy_args, fisher_hessians, map_toys, padding_rows, toy_fit_pair

__all__ = [
    "STUDY_SET",
    "SUMMARY_FIELDS",
    "ToyStudyResult",
    "make_study_result",
    "signed_bounds",
    "study_generator",
    "study_toy_fits",
    "toy_study",
    "toy_study_summary",
]

#: toy-set id of study toys (the first s+b set of a toy-based test, see module docstring)
STUDY_SET = 1

#: the summary fields of a study (each with an ``_err`` partner but ``n_failed``)
SUMMARY_FIELDS = (
    "bias",
    "relative_bias",
    "pull_mean",
    "pull_width",
    "coverage_hesse",
    "coverage_profile",
)


class ToyStudyResult(eqx.Module):
    """Bias, pull and coverage study of the POI (see :mod:`jaxlike.infer._study`).

    Array fields may carry leading batch axes (a mass-scan study has summaries [H] and toys
    [H, N]; :class:`jaxlike.scan.MassToyStudyResult`).

    Attributes:
        mu_true: the true POI value of the toys.
        mu_hat, mu_err: per toy [N] the free fit's μ̂ and its Hessian uncertainty σ̂ (as
            fitted, also for failed toys: see ``converged``).
        pull: (μ̂ − μ_t)/σ̂ per toy (NaN where a fit failed or σ̂ ≤ 0).
        t_true: 2NLL(μ_t) − 2NLL(μ̂) per toy (NaN where a fit failed).
        converged: both fits of the toy converged.
        bias, relative_bias, pull_mean, pull_width, coverage_hesse, coverage_profile: the
            summaries, each with its Monte-Carlo standard error ``<name>_err``.
        n_failed: toys left out because a fit did not converge.
        gen, gen_converged: the generating parameters and whether their fit converged.
        ntoys, seed, toy_pars, cl, signed: the study's settings.
    """

    mu_true: Float[Array, "*batch"]
    mu_hat: Float[Array, "*batch ntoys"]
    mu_err: Float[Array, "*batch ntoys"]
    pull: Float[Array, "*batch ntoys"]
    t_true: Float[Array, "*batch ntoys"]
    converged: Bool[Array, "*batch ntoys"]
    bias: Float[Array, "*batch"]
    bias_err: Float[Array, "*batch"]
    relative_bias: Float[Array, "*batch"]
    relative_bias_err: Float[Array, "*batch"]
    pull_mean: Float[Array, "*batch"]
    pull_mean_err: Float[Array, "*batch"]
    pull_width: Float[Array, "*batch"]
    pull_width_err: Float[Array, "*batch"]
    coverage_hesse: Float[Array, "*batch"]
    coverage_hesse_err: Float[Array, "*batch"]
    coverage_profile: Float[Array, "*batch"]
    coverage_profile_err: Float[Array, "*batch"]
    n_failed: Int[Array, "*batch"]
    gen: Float[Array, "*batch npars"]
    gen_converged: Bool[Array, "*batch"]
    ntoys: int = eqx.field(static=True)
    seed: int = eqx.field(static=True)
    toy_pars: str = eqx.field(static=True)
    cl: float = eqx.field(static=True)
    signed: bool = eqx.field(static=True)

    __repr__ = result_repr  # numbers, shapes and the status spelled out

    def summary(self) -> dict:
        """The summaries as a dict of Python floats (unbatched results) or lists."""
        names = ["mu_true"] + [f"{n}{e}" for n in SUMMARY_FIELDS for e in ("", "_err")]
        out = {k: np.asarray(getattr(self, k)).tolist() for k in names}
        out["n_failed"] = np.asarray(self.n_failed).tolist()
        out.update(ntoys=self.ntoys, seed=self.seed, toy_pars=self.toy_pars, cl=self.cl)
        return out


# -- traceable pieces --------------------------------------------------------------------------
def study_generator(
    model, data, init, lo, hi, fixed, poi: int, mu_true, toy_pars: str, search=False
):
    """Traceable: (θ_gen, converged) of toys at μ_t = ``mu_true``. ``"init"``: ``init`` with
    the POI set; ``"profiled"``: the μ_t-conditional fit θ̂̂(μ_t) to ``data`` from ``init``
    (the minimiser's global search only with ``search``)."""
    mu_true = jnp.asarray(mu_true, init.dtype)
    if toy_pars == "init":
        return init.at[poi].set(mu_true), jnp.asarray(True)
    cond = conditional_inputs(init, lo, hi, fixed, poi, mu_true)
    fit = fit_arrays(model, data, *cond, search=search)
    return fit.bestfit, fit.converged


def _one_toy(model, gen, key, index, mu_true, lo, hi, fixed, poi, search, fisher):
    x = model.sample(gen, jax.random.fold_in(jax.random.fold_in(key, STUDY_SET), index))
    start, *cond_box = conditional_inputs(gen, lo, hi, fixed, poi, mu_true)
    # released from the conditional minimum: a descent from 2NLL(μ_t), so t ≥ 0
    cond, free = toy_fit_pair(model, x, start, cond_box, lo, hi, fixed, search, fisher)
    return {
        "mu_hat": free.bestfit[poi],
        "mu_err": free.uncertainties[poi],
        "t_true": jnp.clip(cond.f - free.twice_nll, 0.0),
        "converged": cond.converged & free.converged,
    }


def study_toy_fits(
    model, gen, key, indices, mu_true, lo, hi, fixed, poi: int, search=False, pad=None
):
    """Traceable: the fits of toys ``indices`` [M] generated at ``gen`` with the PRNG ``key``
    (toy i: ``fold_in(fold_in(key, STUDY_SET), i)``), by
    :func:`~jaxlike.infer._toys.map_toys`: the μ_t-conditional fit from ``gen`` (moved by
    :func:`~jaxlike.infer._toys.response_start`), the free fit from its minimum. Returns
    ``{"mu_hat", "mu_err", "t_true", "converged"}``, each [M] (see :class:`ToyStudyResult`).
    ``pad`` [M]: padding rows, skipped where the toys run one after the other."""
    mu_true = jnp.asarray(mu_true, gen.dtype)
    fisher = jax.tree.map(lambda a: a[0], fisher_hessians(model, gen[None]))
    return map_toys(
        lambda i: _one_toy(model, gen, key, i, mu_true, lo, hi, fixed, poi, search, fisher),
        (jnp.asarray(indices),),
        gen.shape[-1],
        pad,
        model.config.nmaindata,
    )


_generator = jit(study_generator)
_toy_fits = jit(study_toy_fits, cpu_options=False)


# -- summaries -----------------------------------------------------------------------------------
def _mean_err(x, ok):
    """(mean, standard error, std, count) over the last axis of the entries where ``ok``."""
    n = np.sum(ok, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        xs = np.where(ok, x, 0.0)
        mean = np.where(n > 0, np.sum(xs, axis=-1) / np.maximum(n, 1), np.nan)
        dev = np.where(ok, x - mean[..., None], 0.0)
        std = np.where(n > 1, np.sqrt(np.sum(dev * dev, axis=-1) / np.maximum(n - 1, 1)), np.nan)
        return mean, std / np.sqrt(np.maximum(n, 1)), std, n


def _fraction(hit, ok):
    n = np.sum(ok, axis=-1)
    p = np.where(n > 0, np.sum(hit & ok, axis=-1) / np.maximum(n, 1), np.nan)
    return p, np.sqrt(np.clip(p * (1.0 - p), 0.0, None) / np.maximum(n, 1))


def _check_cl(cl) -> float:
    if isinstance(cl, bool) or not isinstance(cl, int | float | np.floating) or not 0 < cl < 1:
        raise InvalidArgument(f"cl must lie strictly between 0 and 1, got {cl!r}")
    return float(cl)


def toy_study_summary(mu_hat, mu_err, t_true, converged, mu_true, cl=0.6827) -> dict:
    """The per-toy pulls and the summaries of the module docstring from the fits of N toys
    (the last axis; leading axes batch, e.g. [H, N] for a mass scan with ``mu_true`` [H]).

    Returns NumPy arrays: ``pull`` and ``t_true`` (NaN where not converged; pull also where
    σ̂ ≤ 0), every name of :data:`SUMMARY_FIELDS` and its ``_err``, and ``n_failed``."""
    import scipy.stats  # here: it costs ~0.4 s of `import jaxlike`

    cl = _check_cl(cl)
    mu_hat = np.asarray(mu_hat, float)
    mu_err = np.asarray(mu_err, float)
    ok = np.asarray(converged, bool) & np.isfinite(mu_hat)
    mu_true = np.broadcast_to(np.asarray(mu_true, float), mu_hat.shape[:-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        has_pull = ok & np.isfinite(mu_err) & (mu_err > 0)
        pull = np.where(
            has_pull, (mu_hat - mu_true[..., None]) / np.where(has_pull, mu_err, 1), np.nan
        )
        t = np.where(ok, np.asarray(t_true, float), np.nan)
        t_ok = ok & np.isfinite(t)
        mean, mean_err, _, _ = _mean_err(mu_hat, ok)
        bias = mean - mu_true
        nz = mu_true != 0
        rel = np.where(nz, bias / np.where(nz, mu_true, 1.0), np.nan)
        rel_err = np.where(nz, mean_err / np.abs(np.where(nz, mu_true, 1.0)), np.nan)
        p_mean, p_mean_err, width, n_p = _mean_err(pull, has_pull)
        width_err = np.where(n_p > 1, width / np.sqrt(2.0 * np.maximum(n_p - 1, 1)), np.nan)
    z = float(scipy.stats.norm.ppf(0.5 * (1.0 + cl)))
    chi2 = float(scipy.stats.chi2.ppf(cl, 1))
    hesse, hesse_err = _fraction(np.abs(np.nan_to_num(pull, nan=np.inf)) <= z, has_pull)
    prof, prof_err = _fraction(np.nan_to_num(t, nan=np.inf) <= chi2, t_ok)
    return {
        "pull": pull,
        "t_true": t,
        "bias": bias,
        "bias_err": mean_err,
        "relative_bias": rel,
        "relative_bias_err": rel_err,
        "pull_mean": p_mean,
        "pull_mean_err": p_mean_err,
        "pull_width": width,
        "pull_width_err": width_err,
        "coverage_hesse": hesse,
        "coverage_hesse_err": hesse_err,
        "coverage_profile": prof,
        "coverage_profile_err": prof_err,
        "n_failed": np.sum(~ok, axis=-1),
    }


def _check_mu(mu_true) -> float:
    try:
        mu = float(mu_true)
    except (TypeError, ValueError):
        raise InvalidArgument(f"mu_true must be a finite number, got {mu_true!r}") from None
    if isinstance(mu_true, bool) or not math.isfinite(mu):
        raise InvalidArgument(f"mu_true must be a finite number, got {mu_true!r}")
    return mu


def toy_study(
    model,
    data: Data | None = None,
    *,
    mu_true: float = 1.0,
    ntoys: int = 1000,
    seed: int = 0,
    toy_pars: str = "profiled",
    cl: float = 0.6827,
    chunk: int | None = 4096,
    progress=False,
    search: bool = False,
    signed: bool = True,
    init_pars: Pars | None = None,
    par_bounds: Bounds | None = None,
    fixed_params: Fixed | None = None,
) -> ToyStudyResult:
    """Bias, pull and coverage study of the POI with ``ntoys`` toys at μ_t = ``mu_true``
    (definitions, seeds and bounds in :mod:`jaxlike.infer._study`).

    ``data``: the dataset the ``"profiled"`` generating point is fitted to (the observed data,
    e.g. ``ws.data(model)`` or a window model's ``make_data()``); default the nominal
    (Asimov) data ``model.expected_data(init)`` of the initial values. ``signed``: let the
    POI go down to −(upper bound). ``chunk``: toys per compiled vmapped call
    (:func:`jaxlike.stream.batched_map`); ``search``: the minimiser's global search in every
    toy fit. ``init_pars``/``par_bounds``/``fixed_params`` as for a fit.

    Returns a :class:`ToyStudyResult`. Not traceable (a host loop over chunks); the traced
    pieces are :func:`study_generator` and :func:`study_toy_fits`.
    """
    check_toy_args(ntoys, toy_pars, seed)
    mu = _check_mu(mu_true)
    cl = _check_cl(cl)
    poi = model.config.poi_index
    if poi is None:
        raise InvalidArgument("model: has no parameter of interest (poi_name=None)")
    if data is None:  # the nominal data of the initial values (fixed values applied)
        ndata = model.config.nmaindata + model.config.nauxdata
        init0 = prepare_fit_inputs(model, jnp.zeros(ndata), init_pars, par_bounds, fixed_params)[1]
        data = model.expected_data(init0)
    d, init, lo, hi, fixed = prepare_fit_inputs(model, data, init_pars, par_bounds, fixed_params)
    check_poi_free(model, lo, hi, fixed)
    if signed:
        lo = signed_bounds(lo, hi, poi)
    lo_p, hi_p = float(lo[poi]), float(hi[poi])
    if not lo_p <= mu <= hi_p:
        raise InvalidArgument(
            f"mu_true = {mu:g} lies outside the POI's fit range [{lo_p:g}, {hi_p:g}]: no toy "
            "could estimate it (widen par_bounds)"
        )
    mu_j = jnp.asarray(mu, float)
    gen, gen_ok = _generator(model, d, init, lo, hi, fixed, poi, mu_j, toy_pars, search)
    key = jax.random.PRNGKey(int(seed))

    def run(batch):
        idx = batch["index"]
        return _toy_fits(model, gen, key, idx, mu_j, lo, hi, fixed, poi, search, padding_rows(idx))

    rows = {"index": np.arange(int(ntoys), dtype=np.int64)}
    out = batched_map(run, rows, chunk=chunk, bucket=True, progress=progress, label="toys")
    s = toy_study_summary(out["mu_hat"], out["mu_err"], out["t_true"], out["converged"], mu, cl)
    return make_study_result(out, s, mu, gen, gen_ok, ntoys=int(ntoys), seed=int(seed),
                             toy_pars=toy_pars, cl=cl, signed=bool(signed))  # fmt: skip


def make_study_result(fits, summary, mu_true, gen, gen_converged, **settings) -> ToyStudyResult:
    """A :class:`ToyStudyResult` from per-toy ``fits`` (``mu_hat``, ``mu_err``,
    ``converged``), a :func:`toy_study_summary` and the generating point; ``settings``:
    ``ntoys, seed, toy_pars, cl, signed``."""
    f = lambda x: jnp.asarray(x, float)  # noqa: E731
    summ = {k: f(summary[k]) for k in summary if k not in ("pull", "t_true", "n_failed")}
    return ToyStudyResult(
        mu_true=f(np.broadcast_to(mu_true, np.shape(summary["bias"]))),
        mu_hat=f(fits["mu_hat"]),
        mu_err=f(fits["mu_err"]),
        pull=f(summary["pull"]),
        t_true=f(summary["t_true"]),
        converged=jnp.asarray(fits["converged"], bool),
        n_failed=jnp.asarray(summary["n_failed"]),
        gen=f(gen),
        gen_converged=jnp.asarray(gen_converged, bool),
        **summ,
        **settings,
    )
