"""Analysis products (jaxlike.analysis) against MINUIT, pyhf and one-fit-at-a-time references.

Models: two pyhf validation workspaces (pulls vs HESSE and pyhf), a small synthetic workspace
with every constrained modifier type (staterror, shapesys, lumi, normsys, histosys) and a free
background normalisation (conventions, MINOS, scans, goodness of fit, grouped impacts) and one
ATLAS ERJR signal patch (impacts and ranking). Every batched product is checked against an
independent computation: single ``jaxlike.fit`` calls with the parameter fixed, or iminuit on
the same 2NLL.
"""

from __future__ import annotations

import functools

import iminuit
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from conftest import get_case, quick_jit

import jaxlike
from jaxlike import analysis

ERJR_ID = "erjr/patch.ERJR_100p0_40p0"
PULL_IDS = [
    "validation/validation_2bin_2channel_shapesys",
    "validation/validation_2bin_2channel_couplednorm_code1",
]


def _sample(name, data, modifiers):
    return {"name": name, "data": data, "modifiers": modifiers}


def _channel(name, sig, bkg, bkg2, stat, shp):
    """signal (μ, lumi, normsys, staterror), bkg (lumi, histosys+normsys 'jes', staterror),
    bkg2 (free normfactor, shapesys)."""
    up = [b * (1.04 + 0.01 * i) for i, b in enumerate(bkg)]
    down = [b * (0.97 - 0.01 * i) for i, b in enumerate(bkg)]
    stat_err = {"name": f"staterror_{name}", "type": "staterror"}
    return {
        "name": name,
        "samples": [
            _sample(name="signal", data=sig, modifiers=[
                {"name": "mu", "type": "normfactor", "data": None},
                {"name": "lumi", "type": "lumi", "data": None},
                {"name": "sig_xsec", "type": "normsys", "data": {"hi": 1.1, "lo": 0.92}},
                {**stat_err, "data": stat},
            ]),
            _sample(name="bkg", data=bkg, modifiers=[
                {"name": "lumi", "type": "lumi", "data": None},
                {"name": "jes", "type": "histosys", "data": {"hi_data": up, "lo_data": down}},
                {"name": "jes", "type": "normsys", "data": {"hi": 1.03, "lo": 0.98}},
                {**stat_err, "data": [0.05 * b for b in bkg]},
            ]),
            _sample(name="bkg2", data=bkg2, modifiers=[
                {"name": "bkg2_norm", "type": "normfactor", "data": None},
                {"name": f"bkg2_unc_{name}", "type": "shapesys", "data": shp},
            ]),
        ],
    }  # fmt: skip


SMALL_SPEC = {
    "channels": [
        _channel("SR", [12.0, 20.0, 8.0], [50.0, 40.0, 30.0], [10.0, 12.0, 9.0],
                 [1.0, 1.5, 0.8], [2.0, 3.0, 1.5]),
        _channel("CR", [1.0, 0.5], [100.0, 80.0], [60.0, 70.0], [0.3, 0.2], [5.0, 6.0]),
    ],
    "observations": [
        {"name": "SR", "data": [80.0, 85.0, 41.0]},
        {"name": "CR", "data": [170.0, 148.0]},
    ],
    "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": [
        {"name": "lumi", "auxdata": [1.0], "sigmas": [0.02], "bounds": [[0.8, 1.2]]},
    ]}}],
    "version": "1.0.0",
}  # fmt: skip


@functools.cache
def small():
    ws = jaxlike.Workspace(SMALL_SPEC)
    model = ws.model()
    data = jnp.asarray(ws.data(model))
    return model, data, jaxlike.fit(model, data)


@functools.cache
def erjr():
    case = get_case(ERJR_ID)
    res = jaxlike.fit(case.model, case.data)
    return case.model, case.data, res, analysis.impacts(case.model, case.data, fit_result=res)


_value_and_grad = quick_jit(lambda model, x, data: jax.value_and_grad(model.twice_nll)(x, data))


def _minuit(model, data, fixed):
    """MIGRAD + HESSE (strategy 2, errordef 1) on jaxlike's 2NLL from the suggested inits."""
    fcn = lambda x: float(_value_and_grad(model, jnp.asarray(x), data)[0])  # noqa: E731
    grad = lambda x: np.asarray(_value_and_grad(model, jnp.asarray(x), data)[1])  # noqa: E731
    m = iminuit.Minuit(fcn, model.config.suggested_init(), grad=grad)
    m.errordef = iminuit.Minuit.LEAST_SQUARES
    m.strategy = 2
    m.tol = 1e-6
    m.fixed = np.asarray(fixed)
    m.migrad()
    m.hesse()
    assert m.valid and m.fmin.has_accurate_covar
    return m


# -- pulls, constraints, correlations ----------------------------------------------------------
@pytest.mark.parametrize("case_id", PULL_IDS + ["small"])
def test_pulls_match_minuit_hesse(case_id):
    """Pulls and constraints from jaxlike's Hessian equal those from MIGRAD + HESSE (1 %)."""
    if case_id == "small":
        model, data, res = small()
    else:
        case = get_case(case_id)
        model, data = case.model, case.data
        res = jaxlike.fit(model, data)
    p = analysis.pulls(model, data, res)
    m = _minuit(model, data, res.fixed)
    idx = list(p.index)
    values, errors = np.asarray(m.values)[idx], np.asarray(m.errors)[idx]
    np.testing.assert_allclose(p.uncertainty, errors, rtol=0.01)
    np.testing.assert_allclose(p.constraint, errors / p.prefit_width, rtol=0.01)
    pull_ref = (values - p.center) / p.prefit_width
    np.testing.assert_allclose(p.pull, pull_ref, rtol=0.01, atol=1e-4)
    np.testing.assert_allclose(np.asarray(res.uncertainties), np.asarray(m.errors), rtol=0.01)


def test_pull_conventions_small_model():
    """θ0 and Δθ_prefit by modifier type, computed by hand from the spec."""
    model, data, res = small()
    p = analysis.pulls(model, data, res)
    pairs = zip(p.center.tolist(), p.prefit_width.tolist(), strict=True)
    got = dict(zip(p.names, pairs, strict=True))
    assert got["jes"] == (0.0, 1.0) and got["sig_xsec"] == (0.0, 1.0)
    assert got["lumi"] == pytest.approx((1.0, 0.02))
    sr = SMALL_SPEC["channels"][0]["samples"]
    for b in range(3):  # staterror: σ_b = sqrt(Σ δ²) / Σ ν0 over the samples carrying it
        sig, bkg = sr[0]["data"][b], sr[1]["data"][b]
        rel = np.hypot(sr[0]["modifiers"][3]["data"][b], 0.05 * bkg) / (sig + bkg)
        assert got[f"staterror_SR[{b}]"] == pytest.approx((1.0, rel), rel=1e-12)
        # shapesys: τ = (ν0/δ)², width 1/√τ = δ/ν0
        shp = sr[2]["modifiers"][1]["data"][b] / sr[2]["data"][b]
        assert got[f"bkg2_unc_SR[{b}]"] == pytest.approx((1.0, shp), rel=1e-12)
    assert "mu" not in p.names and "bkg2_norm" not in p.names


def test_pyhf_uncertainties_with_minuit(pyhf_converged):
    """pyhf's own MINUIT fit (numpy backend) gives the same uncertainties (1 %). MINUIT's
    bound transformation distorts HESSE near a bound (μ̂ = 0.22 ± 0.44 with μ ≥ 0 moves σ_μ by
    1.5 %), so pyhf gets a POI range that is wide on both sides; the minimum is interior."""
    case = get_case(PULL_IDS[0])
    res = jaxlike.fit(case.model, case.data)
    par_bounds = case.pyhf_model.config.suggested_bounds()
    par_bounds[case.pyhf_model.config.poi_index] = [-10.0, 10.0]
    saved = pyhf_converged.get_backend()
    pyhf_converged.set_backend("numpy", pyhf_converged.optimize.minuit_optimizer(tolerance=1e-6))
    try:
        ref = pyhf_converged.infer.mle.fit(
            case.pyhf_data, case.pyhf_model, par_bounds=par_bounds, return_uncertainties=True
        )
    finally:
        pyhf_converged.set_backend(*saved)
    np.testing.assert_allclose(np.asarray(res.bestfit), ref[:, 0], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(np.asarray(res.uncertainties), ref[:, 1], rtol=0.01)


def test_correlation_pruning():
    model, _, res = small()
    names, corr = analysis.correlation_matrix(model, res)
    assert names == model.config.par_names and np.allclose(np.diag(corr), 1.0)
    full = np.asarray(res.correlation)
    names, corr = analysis.correlation_matrix(model, res, threshold=0.2)
    idx = [model.config.par_index(n) for n in names]
    np.testing.assert_array_equal(corr, full[np.ix_(idx, idx)])
    off = np.abs(full) - np.eye(len(full))
    expected = [n for n, row in zip(model.config.par_names, off, strict=True) if row.max() >= 0.2]
    assert names == expected and 0 < len(names) < model.config.npars


# -- MINOS and profile scans -------------------------------------------------------------------
@pytest.mark.parametrize("par", ["mu", "jes", "bkg2_unc_SR[2]"])
def test_minos_matches_iminuit(par):
    """Endpoints of Δ2NLL = 1 agree with iminuit's MINOS (same 2NLL) within 1 %, and the
    Hessian interval is ±σ of the fit."""
    model, data, res = small()
    ours = analysis.minos(model, data, par, cl=1.0, fit_result=res)
    assert ours.converged.all() and not ours.at_bound.any() and ours.level == 1.0
    m = _minuit(model, data, res.fixed)
    i = model.config.par_index(par)
    m.minos(i)
    err = m.merrors[m.parameters[i]]
    assert err.is_valid
    assert ours.minus == pytest.approx(err.lower, rel=0.01)
    assert ours.plus == pytest.approx(err.upper, rel=0.01)
    assert ours.hessian_plus == pytest.approx(float(res.uncertainties[i]), rel=1e-12)


def test_minos_level_and_scan_agree():
    """A 95 % CL interval: level = χ²₁ quantile 3.84; the profile scan evaluated at the two
    endpoints gives Δ2NLL = level, and outside/inside points are above/below it."""
    model, data, res = small()
    m = analysis.minos(model, data, "mu", cl=0.95, fit_result=res)
    assert m.level == pytest.approx(scipy.stats.chi2.ppf(0.95, 1))
    assert m.minus < 0 < m.plus and m.converged.all()
    pts = [float(m.lower), float(m.upper), float(m.lower) - 0.05, float(m.bestfit)]
    scan = analysis.profile_scan(model, data, "mu", pts, fit_result=res)
    np.testing.assert_allclose(scan.delta[:2], m.level, atol=1e-6)
    assert scan.delta[2] > m.level and abs(scan.delta[3]) < 1e-8


def test_profile_scans_match_single_fits():
    """1-D and 2-D batched scans equal one jaxlike.fixed_poi_fit / jaxlike.fit per point."""
    model, data, res = small()
    mus = np.linspace(0.0, 3.0, 11)
    scan = analysis.profile_scan(model, data, "mu", mus, fit_result=res)
    assert scan.converged.all() and scan.names == ("mu",)
    for k in (0, 4, 10):
        ref = jaxlike.fixed_poi_fit(model, data, mus[k])
        assert scan.twice_nll[k] == pytest.approx(float(ref.twice_nll), abs=1e-7)
    assert scan.delta.min() >= -1e-8
    g1, g2 = np.linspace(0.5, 2.5, 5), np.linspace(0.6, 1.4, 4)
    scan2 = analysis.profile_scan_2d(model, data, ("mu", "bkg2_norm"), g1, g2, fit_result=res)
    assert scan2.delta.shape == (5, 4) and scan2.converged.all()
    for j, k in ((0, 0), (2, 3), (4, 1)):
        ref = jaxlike.fit(model, data, fixed_params={"mu": g1[j], "bkg2_norm": g2[k]})
        assert scan2.twice_nll[j, k] == pytest.approx(float(ref.twice_nll), abs=1e-7)
        np.testing.assert_allclose(scan2.bestfit[j, k], ref.bestfit, atol=1e-6)


# -- goodness of fit ---------------------------------------------------------------------------
def test_goodness_of_fit():
    """Saturated-model test: the statistic by hand, p = 1 on the model's own Asimov data (of
    its best fit, auxdata included), 0 < p < 1 on the data, and a toy p-value."""
    model, data, res = small()
    cfg = model.config
    gof = analysis.goodness_of_fit(model, data, n_toys=100, seed=1, fit_result=res)
    n = np.asarray(data[: cfg.nmaindata])
    sat_main = -2.0 * scipy.stats.poisson.logpmf(n, n).sum()  # integer data: pmf is exact
    sat_constraint = -2.0 * float(model.constraint_logpdf(data[cfg.nmaindata :],
                                                          cfg.suggested_init()))  # fmt: skip
    assert float(gof.saturated) == pytest.approx(sat_main + sat_constraint, abs=1e-8)
    assert gof.ndf == cfg.nmaindata - 2  # mu and bkg2_norm are free and unconstrained
    assert float(gof.statistic) == pytest.approx(float(res.twice_nll) - float(gof.saturated))
    assert 0.0 < float(gof.pvalue) < 1.0
    assert float(gof.pvalue) == pytest.approx(scipy.stats.chi2.sf(float(gof.statistic), gof.ndf))
    assert gof.toys_converged.mean() > 0.95 and np.all(gof.toy_statistics >= 0)
    assert 0.0 < float(gof.pvalue_toys) < 1.0
    asimov = model.expected_data(res.bestfit)
    gof_a = analysis.goodness_of_fit(model, asimov)
    assert float(gof_a.statistic) < 1e-8
    assert float(gof_a.pvalue) == pytest.approx(1.0, abs=1e-6)


# -- grouped impacts and stat/syst ---------------------------------------------------------------
def test_grouped_impacts_and_stat_syst():
    """σ_μ without a group from an independent fit with the group fixed at θ̂; stat ≤ total."""
    model, data, res = small()
    cfg = model.config
    groups = {"mc stat": "type:staterror", "jes": "jes", "bkg2": ["bkg2_unc_*", "bkg2_norm"]}
    g = analysis.grouped_impacts(model, data, groups, fit_result=res)
    poi = cfg.poi_index
    total = float(res.uncertainties[poi])
    assert g.converged.all() and float(g.total) == pytest.approx(total, rel=1e-12)
    best = np.asarray(res.bestfit)
    for k, members in enumerate(g.members):
        fixed = {name: best[cfg.par_index(name)] for name in members}
        ref = jaxlike.fit(model, data, fixed_params=fixed, init_pars=best)
        sig = float(ref.uncertainties[poi])
        assert float(g.without[k]) == pytest.approx(sig, rel=1e-8)
        assert float(g.impact[k]) == pytest.approx(np.sqrt(total**2 - sig**2), rel=1e-6)
    assert g.members[0] == tuple(n for n in cfg.par_names if n.startswith("staterror"))
    assert len(g.members[2]) == 6
    assert 0 < float(g.stat) <= total and float(g.syst) > 0
    assert float(g.stat) ** 2 + float(g.syst) ** 2 == pytest.approx(total**2)
    total2, stat, syst = analysis.stat_syst_breakdown(model, data, fit_result=res)
    assert (total2, stat, syst) == pytest.approx((total, float(g.stat), float(g.syst)))
    # stat-only: every parameter but μ fixed at θ̂, one single fit
    only_poi = np.ones(cfg.npars, dtype=bool)
    only_poi[poi] = False
    ref = jaxlike.fit(model, data, fixed_params=only_poi, init_pars=best)
    assert float(g.stat) == pytest.approx(float(ref.uncertainties[poi]), rel=1e-8)


# -- impacts / ranking ---------------------------------------------------------------------------
def _reference_impacts(model, data, res, index, values):
    """Cabinetry-style impacts: one jaxlike.fit per variation, parameter fixed, started from
    the model's suggested inits (not from θ̂)."""
    init = np.asarray(model.config.suggested_init())
    best, poi = np.asarray(res.bestfit), model.config.poi_index
    out = np.zeros(len(values))
    for k, v in enumerate(values):
        if v == best[index]:
            continue
        x0 = init.copy()
        x0[index] = v
        fixed = np.asarray(res.fixed).copy()
        fixed[index] = True
        ref = jaxlike.fit(model, data, init_pars=x0, fixed_params=fixed)
        assert bool(ref.converged)
        out[k] = float(ref.bestfit[poi]) - best[poi]
    return out


def test_impacts_small_model_all_types():
    """Every modifier type, unconstrained parameters (no pre-fit impact) included."""
    model, data, res = small()
    imp = analysis.impacts(model, data, fit_result=res)
    assert imp.poi_name == "mu" and "mu" not in imp.names and imp.converged.all()
    assert len(imp.names) == model.config.npars - 1
    for k, i in enumerate(imp.index):
        ref = _reference_impacts(model, data, res, i, imp.values[k])
        np.testing.assert_allclose(imp.shifts[k], ref, atol=1e-6, err_msg=imp.names[k])
    k = imp.names.index("bkg2_norm")
    assert imp.prefit_up[k] == imp.prefit_down[k] == 0.0 and imp.postfit_up[k] != 0.0
    k = imp.names.index("staterror_SR[1]")
    assert imp.values[k, 0] == pytest.approx(imp.bestfit[k] + imp.prefit_width[k])


def test_impacts_erjr_against_single_fits_and_ranking():
    """ERJR patch (68 parameters, 23 shapesys γ, 260 conditional fits in one vmapped batch):
    the leading 12 parameters and every clipped one against single fits (1e-6), ranking order
    cabinetry's (the larger post-fit |Δμ|), and variations below γ = 0 clipped to the bound (cabinetry's released
    ranking would vary γ to a negative value there)."""
    model, data, res, imp = erjr()
    cfg = model.config
    assert imp.converged.all()
    assert len(imp.names) == cfg.npars - 1 - int(np.asarray(res.fixed).sum())
    order = imp.order()
    key = np.maximum(np.abs(imp.postfit_up), np.abs(imp.postfit_down))
    assert np.all(np.diff(key[order]) <= 0)
    assert [r[0] for r in imp.ranked()[:3]] == [imp.names[k] for k in order[:3]]
    clipped = np.flatnonzero(imp.clipped.any(axis=1))
    assert len(clipped) > 0
    for k in clipped:
        assert (
            imp.types[k] == "shapesys"
            and imp.values[k].min() == cfg.suggested_bounds()[imp.index[k], 0]
        )
    check = list(dict.fromkeys(list(order[:12]) + list(clipped)))
    ref_key = {}
    for k in check:
        ref = _reference_impacts(model, data, res, imp.index[k], imp.values[k])
        np.testing.assert_allclose(imp.shifts[k], ref, atol=1e-6, err_msg=imp.names[k])
        ref_key[k] = np.abs(np.asarray(ref)[2:]).max()  # cabinetry: the post-fit pair
    # the leading 12 by the reference impacts are the leading 12 of the ranking, in order
    assert sorted(order[:12], key=lambda k: -ref_key[k]) == list(order[:12])
    assert min(ref_key[k] for k in order[:12]) >= key[order[12]]
