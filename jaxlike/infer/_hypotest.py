"""Asymptotic hypothesis tests (CLs, CLs+b, CLb, discovery p-values), jittable and vmappable.

A test at POI value μ needs five fits, as in pyhf: the free and the μ-conditional fit to the
data, the conditional fit at μ_A (0 for q/q̃, 1 for q0) whose expected data (main + aux) is the
Asimov dataset, and the free and μ-conditional fits to that Asimov dataset. The three fits that
do not depend on μ are done once (:func:`hypotest_prepare`); :func:`hypotest` /
:func:`hypotest_scan` then only add the two conditional fits per μ, so a scan over many μ values
(or an upper-limit root search) is one vmapped computation.
"""

from __future__ import annotations

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from .._compile import any_traced, jit
from ..exceptions import InvalidParameters
from ..fit import (
    Bounds,
    Data,
    FitResult,
    Fixed,
    Pars,
    Scalar,
    conditional_inputs,
    fit_arrays,
    fit_jit,
    global_search,
    prepare_fit_inputs,
    result_repr,
    set_at,
    start_rows,
)
from ._asymptotics import TEST_STATS, asymptotic_pvalues, profile_statistic

__all__ = [
    "HypoTestPrep",
    "HypoTestResult",
    "hypotest",
    "hypotest_scan",
    "hypotest_prepare",
    "hypotest_at",
    "with_asimov_free_fit",
    "discovery_significance",
]


#: how p-values are computed: asymptotic formulae, toys, or exact Poisson sums (counting)
CALCTYPES = ("asymptotics", "toybased", "exact")


class HypoTestPrep(eqx.Module):
    """The μ-independent part of a hypothesis test."""

    data: jax.Array
    asimov_data: jax.Array
    init: jax.Array
    lo: jax.Array
    hi: jax.Array
    fixed: jax.Array
    free_fit: FitResult
    asimov_fit: FitResult
    free_fit_asimov: FitResult | None
    signed_fit: FitResult | None
    test_stat: str = eqx.field(static=True)
    poi: int = eqx.field(static=True)
    calc_base_dist: str = eqx.field(static=True, default="normal")


class HypoTestResult(eqx.Module):
    """Result of an asymptotic test at ``mu``. Unpacks as ``cls_obs, cls_exp = result``.

    ``twice_nll`` and ``fit_converged`` list the five fits in the order: free fit to data,
    μ-conditional fit to data, μ_A-conditional fit to data (Asimov parameters), free fit to Asimov,
    μ-conditional fit to Asimov; ``fitted_pars`` holds their best-fit vectors. For ``q0`` the
    p-values are ``p0_obs = clsb_obs`` and ``p0_exp = clsb_exp`` (pyhf's convention).
    """

    mu: Float[Array, "*batch"]
    cls_obs: Float[Array, "*batch"]
    cls_exp: Float[Array, "*batch 5"]
    clsb_obs: Float[Array, "*batch"]
    clb_obs: Float[Array, "*batch"]
    clsb_exp: Float[Array, "*batch 5"]
    clb_exp: Float[Array, "*batch 5"]
    q_obs: Float[Array, "*batch"]
    q_asimov: Float[Array, "*batch"]
    mu_hat: Float[Array, "*batch"]
    twice_nll: Float[Array, "*batch 5"]
    fit_converged: Bool[Array, "*batch 5"]
    fitted_pars: Float[Array, "*batch 5 npars"]
    converged: Bool[Array, "*batch"]

    __repr__ = result_repr  # numbers, shapes and the status spelled out

    def __iter__(self):
        return iter((self.cls_obs, self.cls_exp))

    @property
    def p0_obs(self):
        return self.clsb_obs

    @property
    def p0_exp(self):
        return self.clsb_exp

    @property
    def significance_obs(self):
        """Z = √q for q0 (local significance of the observed data)."""
        return jnp.sqrt(jnp.clip(self.q_obs, 0.0))

    @property
    def significance_exp(self):
        """Expected significance band Z_N = √q_A + N, N = 2 … −2 (q0 only)."""
        return jnp.sqrt(jnp.clip(self.q_asimov, 0.0)) + jnp.asarray([2.0, 1.0, 0.0, -1.0, -2.0])


_expected = jit(lambda model, pars: model.expected_data(pars), quick=True)


def signed_bounds(lo, hi, poi: int):
    """Lower bounds with the POI's lowered to min(lo, −hi): the free fit of a signed μ̂ (see
    :mod:`jaxlike.infer._study`). Host arrays stay on the host."""
    xp = np if isinstance(lo, np.ndarray) else jnp
    return set_at(lo, poi, xp.minimum(lo[..., poi], -hi[..., poi]))


def _conditional(model, data, start, lo, hi, fixed, poi, mu, starts=None):
    return fit_jit(model, data, *conditional_inputs(start, lo, hi, fixed, poi, mu), starts=starts)


def _refit_free(model, data, free, cond, lo, hi, fixed, poi):
    """The free fit, improved where a conditional fit ended lower (q < 0 is impossible at the
    global minimum: the conditional point, its POI released, is a better start). Returns
    ``free`` itself when cond.twice_nll ≥ free.twice_nll − 1e-9."""
    if not global_search(model):
        return free
    if not any_traced(cond.twice_nll, free.twice_nll, fixed):
        need = float(cond.twice_nll) < float(free.twice_nll) - 1e-9
        if not need:  # the usual case: nothing to compile or run
            return free
        init = np.where(np.asarray(fixed), np.asarray(free.bestfit), np.asarray(cond.bestfit))
    else:
        need = cond.twice_nll < free.twice_nll - 1e-9
        init = jnp.where(fixed, free.bestfit, jnp.where(need, cond.bestfit, free.bestfit))

    def refit():
        new = fit_jit(model, data, init, lo, hi, fixed, starts=start_rows(init, free.bestfit))
        better = (new.twice_nll < free.twice_nll - 1e-12) & (new.converged | ~free.converged)
        return jax.tree.map(lambda a, b: jnp.where(better, a, b), new, free)

    if not any_traced(need):
        return refit() if bool(need) else free
    return jax.lax.cond(need, refit, lambda: free)


def _check(model, test_stat):
    if test_stat not in TEST_STATS:
        raise InvalidParameters(f"test_stat must be one of {TEST_STATS}, got {test_stat!r}")
    if model.config.poi_index is None:
        raise InvalidParameters("the model has no parameter of interest (poi_name=None)")
    return model.config.poi_index


def check_poi_free(model, lo, hi, fixed):
    """Refuse a POI that is fixed or has empty bounds (lo ≥ hi), as pyhf does: the profile
    likelihood ratio q(μ) = −2 ln [L(μ, θ̂̂) / L(μ̂, θ̂)] needs μ̂ to vary. Checked when the
    inputs are concrete (under ``jit``/``vmap`` the caller's inputs were checked outside)."""
    if any_traced(lo, hi, fixed):
        return
    poi, name = model.config.poi_index, model.config.poi_name
    if np.any(np.asarray(fixed)[..., poi]):
        raise InvalidParameters(
            f"the POI '{name}' is fixed (measurement.config.parameters: fixed), which makes "
            "profile-likelihood-ratio inference impossible; unfix it"
        )
    lo_p, hi_p = np.asarray(lo)[..., poi], np.asarray(hi)[..., poi]
    if np.any(~(lo_p < hi_p)):
        raise InvalidParameters(
            f"the POI '{name}' has empty bounds [{np.min(lo_p):g}, {np.max(hi_p):g}]: a "
            "hypothesis test needs a free POI range"
        )


def check_poi_values(model, values, lo, hi):
    """Refuse tested POI values that are not finite (skipped for traced values). A value
    beyond the POI bounds is allowed, as in pyhf: the conditional fit holds μ there while the
    free fit stays within the bounds (a limit scan past the suggested range needs that)."""
    if any_traced(values):
        return
    v = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(v)):
        raise InvalidParameters(f"the tested POI value must be finite, got {v[~np.isfinite(v)][0]}")


def _fits_on_data(model, data, init, lo, hi, fixed, poi, mu_a, signed):
    """Free fit, μ_A-conditional fit (and, if ``signed``, the free fit with the POI allowed
    down to −hi) on the same data.

    Inside a trace (jit/vmap) they run as one vmapped fit, so the minimiser is compiled once
    instead of once per call site; eagerly they reuse one cached compiled fit."""
    cond = conditional_inputs(init, lo, hi, fixed, poi, mu_a)
    none = start_rows(init, model=model)  # no further starts (the shape the others use)
    rows = [(init, lo, hi, fixed), cond]
    if signed:
        rows.append((init, signed_bounds(lo, hi, poi), hi, fixed))
    if not any_traced(model, data, init, lo, hi, fixed):
        fits = [fit_jit(model, data, *r, starts=none) for r in rows]
    else:
        stacked = [jnp.stack(x) for x in zip(*rows, strict=True)]
        batch = jax.vmap(lambda *r: fit_arrays(model, data, *r, starts=none))(*stacked)
        fits = [jax.tree.map(lambda x, i=i: x[i], batch) for i in range(len(rows))]
    return fits[0], fits[1], (fits[2] if signed else None)


def _free_fit_asimov(model, asimov, init, lo, hi, fixed, asimov_fit, free):
    return fit_jit(
        model,
        asimov,
        init,
        lo,
        hi,
        fixed,
        starts=start_rows(init, asimov_fit.bestfit, free.bestfit, model=model),
    )


def with_asimov_free_fit(prep: HypoTestPrep, model) -> HypoTestPrep:
    """Complete a :func:`hypotest_prepare` made with ``asimov_free_fit=False``: the free fit
    to its Asimov data (the same fit, with the same starts, as the one-call preparation)."""
    free_a = _free_fit_asimov(model, prep.asimov_data, prep.init, prep.lo, prep.hi, prep.fixed,
                              prep.asimov_fit, prep.free_fit)  # fmt: skip
    return dataclasses.replace(prep, free_fit_asimov=free_a)


def _prepare_core(
    model, data, init, lo, hi, fixed, test_stat, calc_base_dist, signed=False, asimov_free=True
):
    poi = model.config.poi_index
    mu_a = 1.0 if test_stat == "q0" else 0.0
    free, asimov_fit, signed_fit = _fits_on_data(
        model, data, init, lo, hi, fixed, poi, mu_a, signed
    )
    asimov = _expected(model, asimov_fit.bestfit)
    free_a = None
    if asimov_free:
        free_a = _free_fit_asimov(model, asimov, init, lo, hi, fixed, asimov_fit, free)
    return HypoTestPrep(
        data=data,
        asimov_data=asimov,
        init=init,
        lo=lo,
        hi=hi,
        fixed=fixed,
        free_fit=free,
        asimov_fit=asimov_fit,
        free_fit_asimov=free_a,
        signed_fit=signed_fit,
        test_stat=test_stat,
        poi=poi,
        calc_base_dist=calc_base_dist,
    )


def hypotest_prepare(
    data: Data,
    model,
    *,
    test_stat: str = "qtilde",
    init_pars: Pars | None = None,
    par_bounds: Bounds | None = None,
    fixed_params: Fixed | None = None,
    calc_base_dist: str = "normal",
    signed_fit: bool = False,
    asimov_free_fit: bool = True,
) -> HypoTestPrep:
    """The three μ-independent fits of an asymptotic test (free fit, Asimov construction,
    free fit to Asimov). Pass the result to :func:`hypotest_at`.

    ``asimov_free_fit=False`` leaves out the free fit to the Asimov data
    (``prep.free_fit_asimov`` is None; :func:`with_asimov_free_fit` adds it later): for a
    batch of models of which only some need it (a background envelope's null winner).
    ``calc_base_dist``: ``"normal"`` (pyhf default) or ``"clipped_normal"`` for the expected band
    (see :mod:`jaxlike.infer._asymptotics`). ``signed_fit=True`` adds ``prep.signed_fit``, the
    free fit with the POI allowed below zero (down to −upper bound) for a signed μ̂ and
    significance, batched with the other fits on the data."""
    _check(model, test_stat)
    if calc_base_dist not in ("normal", "clipped_normal"):
        raise InvalidParameters(
            f"calc_base_dist must be 'normal' or 'clipped_normal', got {calc_base_dist!r}"
        )
    d, init, lo, hi, fixed = prepare_fit_inputs(
        model, data, init_pars, par_bounds, fixed_params, host=True
    )
    check_poi_free(model, lo, hi, fixed)
    return _prepare_core(
        model, d, init, lo, hi, fixed, test_stat, calc_base_dist, signed_fit, asimov_free_fit
    )


def hypotest_at(
    prep: HypoTestPrep, model, mu: Scalar, *, warm_start: bool = False
) -> HypoTestResult:
    """Complete a prepared test at POI value ``mu`` (two conditional fits). Traceable in ``mu``.

    ``warm_start=False`` starts the conditional fits at the model's initial values, as pyhf does;
    ``True`` starts them from the free fits (faster; used by limit searches).
    """
    poi = prep.poi
    # a host scalar when nothing is traced: jnp.asarray compiles a conversion program per process
    xp = jnp if any_traced(mu, prep.init) else np
    mu = xp.asarray(mu, dtype=prep.init.dtype)
    start_d = prep.free_fit.bestfit if warm_start else prep.init
    start_a = prep.asimov_fit.bestfit if warm_start else prep.init
    lo, hi, fixed = prep.lo, prep.hi, prep.fixed
    # further starts: the related fits' minima (a basin one path misses, another finds)
    cond = _conditional(
        model, prep.data, start_d, lo, hi, fixed, poi, mu,
        start_rows(prep.init, prep.free_fit.bestfit, prep.asimov_fit.bestfit, model=model),
    )  # fmt: skip
    cond_a = _conditional(
        model, prep.asimov_data, start_a, lo, hi, fixed, poi, mu,
        start_rows(prep.init, prep.free_fit_asimov.bestfit, cond.bestfit, model=model),
    )  # fmt: skip
    free = _refit_free(model, prep.data, prep.free_fit, cond, lo, hi, fixed, poi)
    free_a = _refit_free(model, prep.asimov_data, prep.free_fit_asimov, cond_a, lo, hi, fixed, poi)
    prep = eqx.tree_at(lambda p: (p.free_fit, p.free_fit_asimov), prep, (free, free_a))
    return _assemble(prep, mu, cond, cond_a)


@functools.partial(jit, quick=True)
def _assemble(prep, mu, cond, cond_a):
    """Test statistics and p-values from the five fits (see module docstring)."""
    poi, ts = prep.poi, prep.test_stat
    mu_hat = prep.free_fit.bestfit[poi]
    q = profile_statistic(ts, mu, cond.twice_nll, prep.free_fit.twice_nll, mu_hat)
    q_a = profile_statistic(
        ts, mu, cond_a.twice_nll, prep.free_fit_asimov.twice_nll, prep.free_fit_asimov.bestfit[poi]
    )
    (clsb, clb, cls), (clsb_e, clb_e, cls_e) = asymptotic_pvalues(ts, q, q_a, prep.calc_base_dist)
    fits = (prep.free_fit, cond, prep.asimov_fit, prep.free_fit_asimov, cond_a)
    conv = jnp.stack([f.converged for f in fits])
    return HypoTestResult(
        mu=mu,
        cls_obs=cls,
        cls_exp=cls_e,
        clsb_obs=clsb,
        clb_obs=clb,
        clsb_exp=clsb_e,
        clb_exp=clb_e,
        q_obs=q,
        q_asimov=q_a,
        mu_hat=mu_hat,
        twice_nll=jnp.stack([f.twice_nll for f in fits]),
        fit_converged=conv,
        fitted_pars=jnp.stack([f.bestfit for f in fits]),
        converged=jnp.all(conv),
    )


def _at_jit(prep, model, mu, warm_start):
    return hypotest_at(prep, model, mu, warm_start=warm_start)


@eqx.filter_jit
def _scan_jit(prep, model, mus, warm_start):
    return jax.vmap(lambda m: hypotest_at(prep, model, m, warm_start=warm_start))(mus)


def hypotest(
    poi_test: Scalar,
    data: Data,
    model,
    *,
    test_stat: str = "qtilde",
    init_pars: Pars | None = None,
    par_bounds: Bounds | None = None,
    fixed_params: Fixed | None = None,
    warm_start: bool = False,
    calc_base_dist: str = "normal",
    calctype: str = "asymptotics",
    ntoys: int = 2000,
    seed: int = 0,
    toy_pars: str = "profiled",
    chunk: int | None = 4096,
    progress: bool = False,
    toy_search: bool = False,
):
    """CLs test of POI value ``poi_test`` (pyhf's ``infer.hypotest``).

    ``calctype="asymptotics"`` (default): the asymptotic formulae; returns a
    :class:`HypoTestResult`; ``cls_obs, cls_exp = jaxlike.hypotest(1.0, data, model)`` gives
    the observed CLs and the expected band (5 values, ascending). All five fits are reported in
    ``twice_nll``/``fit_converged``; ``converged`` is False if any failed. Works under
    ``jax.jit``/``jax.vmap`` (over data or a stacked model).

    ``calctype="toybased"``: ``ntoys`` s+b and ``ntoys`` background pseudo-experiments (seed
    ``seed``, generated at ``toy_pars``: ``"profiled"``, θ̂̂(μ) from the data as pyhf, or
    ``"init"``), fitted in vmapped chunks of ``chunk`` toys (``toy_search``: the global
    search in every toy fit); returns a :class:`~jaxlike.infer.ToyHypoTestResult` with the
    p-values, their Monte-Carlo errors and the sampled distributions (see
    :mod:`jaxlike.infer._toys`). Not traceable (it runs a host loop over chunks).

    ``calctype="exact"``: single-bin counting models without nuisance parameters only — the
    exact Poisson sums (:func:`~jaxlike.infer.counting_pvalues`), as a
    :class:`~jaxlike.infer.ToyHypoTestResult`-free tuple ``(clsb, clb, cls)``.
    """
    if calctype not in CALCTYPES:
        raise InvalidParameters(f"calctype must be one of {CALCTYPES}, got {calctype!r}")
    if calctype == "exact":
        from ._counting import counting_parameters, counting_pvalues

        _check(model, test_stat)
        s, b = counting_parameters(model)
        n_obs = float(np.asarray(data, float).reshape(-1)[0])
        return counting_pvalues(poi_test, n_obs, s, b, test_stat)
    prep = hypotest_prepare(
        data,
        model,
        test_stat=test_stat,
        init_pars=init_pars,
        par_bounds=par_bounds,
        fixed_params=fixed_params,
        calc_base_dist=calc_base_dist,
        # the toys' expected band comes from the background toys, not from the Asimov data
        asimov_free_fit=calctype != "toybased",
    )
    check_poi_values(model, poi_test, prep.lo, prep.hi)
    if calctype == "toybased":
        from ._toys import toy_hypotest_prepared

        return toy_hypotest_prepared(prep, model, poi_test, ntoys=ntoys, seed=seed,
                                     toy_pars=toy_pars, chunk=chunk, progress=progress,
                                     search=toy_search)  # fmt: skip
    return _at_jit(prep, model, poi_test, warm_start)


def hypotest_scan(
    poi_values: Float[ArrayLike, " nmu"],
    data: Data,
    model,
    *,
    test_stat: str = "qtilde",
    init_pars: Pars | None = None,
    par_bounds: Bounds | None = None,
    fixed_params: Fixed | None = None,
    warm_start: bool = False,
    calc_base_dist: str = "normal",
) -> HypoTestResult:
    """Hypothesis tests at many POI values in one compiled, vmapped call.

    The μ-independent fits are shared; every field of the result gets a leading axis.
    """
    prep = hypotest_prepare(
        data,
        model,
        test_stat=test_stat,
        init_pars=init_pars,
        par_bounds=par_bounds,
        fixed_params=fixed_params,
        calc_base_dist=calc_base_dist,
    )
    check_poi_values(model, poi_values, prep.lo, prep.hi)
    return _scan_jit(prep, model, jnp.asarray(poi_values, dtype=float), warm_start)


def discovery_significance(
    data: Data,
    model,
    *,
    init_pars: Pars | None = None,
    par_bounds: Bounds | None = None,
    fixed_params: Fixed | None = None,
    **calc,
) -> HypoTestResult:
    """Discovery test with q0: returns the :class:`HypoTestResult` at μ = 0 whose
    ``p0_obs``/``significance_obs`` are the observed and ``p0_exp``/``significance_exp`` the
    expected (μ = 1 Asimov) values; Z = Φ⁻¹(1 − p0) = √q0. ``calc``: the calculator
    options of :func:`hypotest` (``calctype="toybased", ntoys=..., seed=...`` for toy p0)."""
    return hypotest(
        0.0,
        data,
        model,
        test_stat="q0",
        init_pars=init_pars,
        par_bounds=par_bounds,
        fixed_params=fixed_params,
        **calc,
    )
