"""Maximum-likelihood fits (jaxlike.fit) against converged pyhf and MINUIT, and batched fits.

When two fitters disagree, the lower 2NLL (of one exact function) is right. So the assertion
against pyhf is "jaxlike's minimum is not above converged pyhf's" (2NLL <= pyhf + 1e-6), with
pyhf's numpy backend and SLSQP at tolerance 1e-10; uncertainties are compared with MINUIT's HESSE.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import equinox as eqx
import iminuit
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlike
from jaxlike.exceptions import InvalidParameters

NLL_SLACK = 1e-6
SBOTTOM_ID = "sbottom/patch.sbottom_1300_205_60"


def _poi_test(case):
    return case.settings.get("poi_test", 1.0)


@pytest.fixture(scope="module")
def fitters(jitted):
    """``fits(case)``: a case's free fit and fixed-POI fit at ``poi_test`` (1 where the case
    has none), cached. jaxlike.fit and jaxlike.fixed_poi_fit share one compiled function per
    layout. ``quick_free``: jaxlike.fit traced inside a jit compiled with
    conftest.QUICK_COMPILE (LLVM -O0), which halves the compile time on Belle II."""

    @functools.cache
    def fits(case):
        return (
            jaxlike.fit(case.model, case.data),
            jaxlike.fixed_poi_fit(case.model, case.data, _poi_test(case)),
        )

    quick_free = jitted.quick_jit(lambda model, data: jaxlike.fit(model, data))
    return SimpleNamespace(fits=fits, quick_free=quick_free)


def _assert_not_above_pyhf(case, pyhf, fitters):
    free, fixed = fitters.fits(case)
    pm, pd = case.pyhf_model, case.pyhf_data
    poi = case.model.config.poi_index
    _, ref_free = pyhf.infer.mle.fit(pd, pm, return_fitted_val=True)
    _, ref_fixed = pyhf.infer.mle.fixed_poi_fit(_poi_test(case), pd, pm, return_fitted_val=True)
    for label, ours, ref in (("free", free, ref_free), ("fixed", fixed, ref_fixed)):
        assert bool(ours.converged), (case.id, label, ours.message())
        assert float(ours.twice_nll) <= float(ref) + NLL_SLACK, (
            case.id,
            label,
            float(ours.twice_nll),
            float(ref),
        )
        # the reported minimum is the likelihood pyhf evaluates at the reported parameters
        at_best = -2.0 * float(pm.logpdf(np.asarray(ours.bestfit), pd)[0])
        assert abs(float(ours.twice_nll) - at_best) <= 1e-9 * abs(at_best), (case.id, label)
    assert float(fixed.bestfit[poi]) == _poi_test(case)
    assert bool(fixed.fixed[poi]) and not bool(free.fixed[poi])
    bounds = case.model.config.suggested_bounds()
    assert np.all(np.asarray(free.bestfit) >= bounds[:, 0]) and np.all(
        np.asarray(free.bestfit) <= bounds[:, 1]
    )


def test_validation_fits_reach_converged_pyhf_minimum(validation_case, pyhf_converged, fitters):
    _assert_not_above_pyhf(validation_case, pyhf_converged, fitters)


def test_sbottom_fits_reach_converged_pyhf_minimum(cases, pyhf_converged, fitters):
    _assert_not_above_pyhf(cases(SBOTTOM_ID), pyhf_converged, fitters)


def test_belle2_fit_matches_converged_reference(cases, fitters):
    """Belle II B+ -> K+ nu nu (232 parameters). Running pyhf here takes > 100 s, so the
    reference is a converged pyhf run made once: pyhf-jax, SLSQP tolerance 1e-12, gives
    μ̂ = 4.5990 and 2NLL = −23.33428. The published 4.61 ± 1.32 is MINUIT stopping 6e-4
    above that minimum."""
    case = cases("belle2")
    res = fitters.quick_free(case.model, case.data)
    poi = case.model.config.poi_index
    mu, sigma = float(res.bestfit[poi]), float(res.uncertainties[poi])
    assert bool(res.converged), res.message()
    assert 4.55 <= mu <= 4.65 and abs(mu - 4.5990) < 1e-3, mu
    assert 1.28 <= sigma <= 1.36, sigma
    assert float(res.twice_nll) <= -23.33428 + 1e-5, float(res.twice_nll)
    assert float(res.edm) < 1e-6


def _minuit_hesse(model, data, result, value_grad_hess):
    """MINUIT's HESSE (errordef 1 on jaxlike's own 2NLL, with its gradient) at
    ``result.bestfit``, the fit's fixed parameters held. No limits: MINUIT's bound
    transformation distorts HESSE near a bound. HESSE differentiates numerically; only the
    value and gradient of ``value_grad_hess`` are used."""

    def fcn(x):
        return float(value_grad_hess(model, jnp.asarray(x), data)[0])

    def grad(x):
        return np.asarray(value_grad_hess(model, jnp.asarray(x), data)[1])

    m = iminuit.Minuit(fcn, np.asarray(result.bestfit), grad=grad)
    m.errordef = iminuit.Minuit.LEAST_SQUARES
    m.strategy = 2
    m.fixed = np.asarray(result.fixed)
    m.hesse()
    return m


def test_uncertainties_match_minuit_hesse(validation_case, fitters, jitted):
    """σ = sqrt(diag(2 H⁻¹)) of the free and the fixed-POI fit against HESSE, within 1 %.

    Exception: in docs_2bin_1channel the free fit ends with μ̂ on its bound 0 (observed =
    background) and HESSE itself fails there (``has_accurate_covar`` False); that one
    comparison is skipped, the fixed-POI fit of the same model is still checked."""
    case = validation_case
    compared = 0
    for label, result in zip(("free", "fixed"), fitters.fits(case), strict=True):
        m = _minuit_hesse(case.model, case.data, result, jitted.structured_vgh)
        if not m.fmin.has_accurate_covar:
            assert label == "free" and bool(result.at_bound.any()), (case.id, label)
            continue
        fixed = np.asarray(result.fixed)
        ours = np.asarray(result.uncertainties)
        np.testing.assert_allclose(
            ours[~fixed], np.asarray(m.errors)[~fixed], rtol=0.01, err_msg=f"{case.id} {label}"
        )
        assert np.all(ours[fixed] == 0)
        compared += 1
    assert compared >= 1


def test_fixed_params_dict_equals_fixed_poi_fit(cases):
    case = cases("validation/validation_2bin_2channel_shapesys")
    a = jaxlike.fit(case.model, case.data, fixed_params={"mu": 0.5})
    b = jaxlike.fixed_poi_fit(case.model, case.data, 0.5)
    assert float(a.bestfit[0]) == 0.5 and bool(a.fixed[0])
    np.testing.assert_allclose(float(a.twice_nll), float(b.twice_nll), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(a.bestfit), np.asarray(b.bestfit), atol=1e-6)


def test_poi_stops_at_its_bound_when_data_fall_below_background(cases, pyhf_converged):
    """Observed = 0.7 x background: μ̂ sits on its lower bound 0 and the fit says so."""
    case = cases("validation/readme_hello_world_uncorrelated_background")
    model = case.model
    bkg = [
        s["data"] for c in case.spec["channels"] for s in c["samples"] if s["name"] == "background"
    ][0]
    obs = np.round(0.7 * np.asarray(bkg))
    data = model.make_data(obs)
    res = jaxlike.fit(model, data)
    poi = model.config.poi_index
    assert bool(res.converged), res.message()
    assert float(res.bestfit[poi]) == 0.0
    assert np.flatnonzero(np.asarray(res.at_bound)).tolist() == [poi]
    _, ref = pyhf_converged.infer.mle.fit(np.asarray(data), case.pyhf_model, return_fitted_val=True)
    assert float(res.twice_nll) <= float(ref) + NLL_SLACK
    # a fixed POI beyond the suggested upper bound (10) is honoured
    high = jaxlike.fixed_poi_fit(model, data, 15.0)
    assert float(high.bestfit[poi]) == 15.0 and float(high.twice_nll) > float(res.twice_nll)


@pytest.mark.parametrize(
    "name, runs",
    [
        # convex (affine yields): no global search, the first run and its retry
        ("validation_2bin_2channel_shapesys", 2),
        # the first run, its retry, and the global search's damped and coordinate-descent starts
        ("validation_1bin_normsys_code1", 4),
    ],
)
def test_nonconvergence_is_flagged(cases, name, runs):
    case = cases(f"validation/{name}")
    res = jaxlike.fit(case.model, case.data, maxiter=1)
    assert not bool(res.converged)
    # every run stops after one iteration
    assert int(res.status) == 1 and int(res.iterations) == runs
    assert res.message() == "maximum iterations reached"


def _signal_only_model():
    """One channel, one sample (3, 4 events per unit μ), μ free: ν = μ·(3, 4)."""
    channels = [
        {
            "name": "c",
            "samples": [
                {
                    "name": "sig",
                    "data": [3.0, 4.0],
                    "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                }
            ],
        }
    ]
    return jaxlike.build_model(channels, poi_name="mu")


def test_nonfinite_start_is_flagged(cases):
    case = cases("validation/validation_2bin_2channel_shapesys")
    init = case.model.config.suggested_init()
    init[1] = np.nan
    res = jaxlike.fit(case.model, case.data, init_pars=init)
    assert not bool(res.converged) and int(res.status) == 3
    # a realistic one: no expected events where events were observed (log 0)
    model = _signal_only_model()
    res = jaxlike.fit(model, jnp.array([2.0, 5.0]), init_pars=[0.0])
    assert int(res.status) == 3, res.message()
    ok = jaxlike.fit(model, jnp.array([2.0, 5.0]))
    assert int(ok.status) == 0 and abs(float(ok.bestfit[0]) - 1.0) < 1e-6  # μ̂ = 7/7


def test_status_is_a_results_enumeration_and_throw_raises():
    """RESULTS is the one definition of the fit status: the stored integer codes are its
    positions and STATUS their texts; ``throw=True`` raises naming the text (FitNotConverged
    eagerly, an equinox runtime error under jit)."""
    from jaxlike.exceptions import FitNotConverged
    from jaxlike.fit import RESULTS, STATUS

    assert len(STATUS) == len(RESULTS) == 6 and STATUS[0] == "converged"
    assert STATUS[3] == RESULTS[RESULTS.nonfinite_start]
    model = _signal_only_model()
    data = jnp.array([2.0, 5.0])
    ok = jaxlike.fit(model, data, throw=True)
    assert bool(ok.result == RESULTS.converged) and ok.status_text == "converged"
    bad = jaxlike.fit(model, data, init_pars=[0.0])
    assert int(bad.status) == 3 and bool(bad.result == RESULTS.nonfinite_start)
    with pytest.raises(FitNotConverged, match="not finite at the starting point") as err:
        jaxlike.fit(model, data, init_pars=[0.0], throw=True)
    assert err.value.status == 3
    jitted = jax.jit(lambda d: jaxlike.fit(model, d, init_pars=jnp.zeros(1), throw=True).bestfit)
    with pytest.raises(Exception, match="not finite at the starting point"):
        jax.block_until_ready(jitted(data))


def test_fixed_poi_fit_needs_a_poi(cases):
    case = cases("sbottom/BkgOnly")
    with pytest.raises(InvalidParameters, match="parameter of interest"):
        jaxlike.fixed_poi_fit(case.model, case.data, 1.0)


# -- batched fits ------------------------------------------------------------------------------
def _assert_same_fits(batched, singles):
    for k, one in enumerate(singles):
        assert bool(batched.converged[k]) and bool(one.converged), k
        assert abs(float(batched.twice_nll[k]) - float(one.twice_nll)) <= 1e-8, k
        np.testing.assert_allclose(
            np.asarray(batched.bestfit[k]), np.asarray(one.bestfit), atol=1e-5
        )


def test_vmap_over_datasets(cases, jitted, fitters):
    case = cases(SBOTTOM_ID)
    model = case.model
    rng = np.random.default_rng(7)
    nu = np.asarray(jitted.evaluate(model, jnp.asarray(case.points[:1]), case.data)[2][0])
    toys = jnp.stack([model.make_data(rng.poisson(nu).astype(float)) for _ in range(4)])
    batched = jitted.quick_jit(jax.vmap(lambda d: jaxlike.fit(model, d)))(toys)
    _assert_same_fits(batched, [jaxlike.fit(model, d) for d in toys])


def test_vmap_over_stacked_signal_models(cases, jitted, fitters):
    """Three sbottom patches (same layout, different signal templates and names) and two
    scaled copies of one signal (eqx.tree_at on the template leaves), fitted in one call."""
    patches = [
        cases(f"sbottom/{p}")
        for p in (
            "patch.sbottom_1300_205_60",
            "patch.sbottom_1400_950_60",
            "patch.sbottom_1500_850_60",
        )
    ]
    models = [c.model for c in patches]
    base = models[0]
    sig = next(i for i, s in enumerate(base.config.samples) if s.startswith("sbottom"))

    def scaled(factor):
        leaves = lambda m: (m.nominal, m.histosys_lo, m.histosys_hi)  # noqa: E731
        new = tuple(a.at[..., sig, :].multiply(factor) for a in leaves(base))
        return eqx.tree_at(leaves, base, new)

    models += [scaled(0.5), scaled(3.0)]
    data = patches[0].data
    assert all(np.array_equal(np.asarray(c.data), np.asarray(data)) for c in patches)
    stacked = jaxlike.stack_models(models)
    batched = jitted.quick_jit(jax.vmap(lambda m: jaxlike.fit(m, data)))(stacked)
    singles = [jaxlike.fit(m, data) for m in models]
    _assert_same_fits(batched, singles)
    # the hypotheses really differ
    assert len({round(float(r.twice_nll), 6) for r in singles}) == len(models)


def test_vmap_over_poi_values(cases, jitted, fitters):
    case = cases(SBOTTOM_ID)
    mus = jnp.array([0.0, 0.5, 1.0, 2.0, 4.0])
    batched = jitted.quick_jit(
        jax.vmap(lambda mu: jaxlike.fixed_poi_fit(case.model, case.data, mu))
    )(mus)
    singles = [jaxlike.fixed_poi_fit(case.model, case.data, mu) for mu in mus]
    _assert_same_fits(batched, singles)
    np.testing.assert_array_equal(
        np.asarray(batched.bestfit[:, case.model.config.poi_index]), np.asarray(mus)
    )


def _two_or_three_bins(empty_bin):
    """signal + background; with ``empty_bin`` a third bin where every sample and the data
    are 0 (ν = n = 0 at every parameter point)."""
    sig, bkg, obs = [5.0, 10.0], [50.0, 60.0], [53.0, 71.0]
    if empty_bin:
        sig, bkg, obs = sig + [0.0], bkg + [0.0], obs + [0.0]
    spec = {
        "channels": [
            {
                "name": "c",
                "samples": [
                    {"name": "s", "data": sig, "modifiers": [
                        {"name": "mu", "type": "normfactor", "data": None}]},
                    {"name": "b", "data": bkg, "modifiers": [
                        {"name": "n", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}}]},
                ],
            }
        ],
        "observations": [{"name": "c", "data": obs}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }  # fmt: skip
    ws = jaxlike.Workspace(spec)
    model = ws.model()
    return model, ws.data(model)


def test_bin_with_zero_yield_and_zero_count_has_finite_derivatives():
    """n = ν = 0 contributes nothing (0 log 0 = 0); its derivatives must be 0, not 0/0 = NaN,
    or the fit stalls at its start (seen on HistFactory versions of vetoed scan windows)."""
    model, data = _two_or_three_bins(True)
    ref_model, ref_data = _two_or_three_bins(False)
    pars = jnp.asarray(model.config.suggested_init())
    value, grad, hess = model.value_grad_hess(pars, data)
    assert np.all(np.isfinite(grad)) and np.all(np.isfinite(hess))
    auto = jax.grad(lambda p: model.twice_nll(p, data))(pars)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(auto), rtol=1e-12, atol=1e-12)
    res, ref = jaxlike.fit(model, data), jaxlike.fit(ref_model, ref_data)
    assert bool(res.converged)
    np.testing.assert_allclose(np.asarray(res.bestfit), np.asarray(ref.bestfit), rtol=1e-8)
    np.testing.assert_allclose(float(res.twice_nll), float(ref.twice_nll), rtol=1e-12)
