"""Hypothesis tests and upper limits against pyhf 0.7.6 with converged fits.

The reference is pyhf with a converged optimizer: ``pyhf.set_backend("numpy",
pyhf.optimize.scipy_optimizer(tolerance=1e-10))`` (fixture ``pyhf_converged``), or the numbers
the data files store for it (``pyhf_0.7.6_local_results["numpy_scipy_SLSQP_tolerance_1e-12
(converged)"]``). Acceptance: CLs_obs within 5e-4 relative, each expected-band entry within
2e-3 relative + 1e-5 absolute, 95% CL limits within 0.5%.

Where CLs disagree beyond that, the numbers alone cannot say who is right (the rule for judging
a disagreement with pyhf): :func:`judge` then runs pyhf's five fits of the test itself and
requires every one of jaxlike's fits to reach a 2NLL at or below pyhf's, and at least one to be
clearly lower; then jaxlike's number stands. Both tools' parameter vectors are evaluated with
jaxlike's 2NLL: pyhf's logpdf rounds at ~1e-4 absolute on the ERJR likelihood (huge shapesys τ),
jaxlike's Poisson form is cancellation-free (see test_pyhf_parity_model.py).

pyhf runs live where it is fast (validation models, README limits and test statistics, sbottom:
2-7 s per test). The expensive references (ERJR: 4-70 s per pyhf hypotest, Belle II: 48 s with
pyhf-jax) are stored below as constants, each with the call that produced it; the tests marked
``slow`` recompute them live.
"""

from __future__ import annotations

import functools
import json
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pyhf
import pytest
from conftest import DATA, get_case, read_json
from jax.scipy.stats import norm

import jaxlike
from jaxlike.infer import asymptotic_pvalues, hypotest_prepare

OBS_RTOL = 5e-4
EXP_RTOL, EXP_ATOL = 2e-3, 1e-5
LIMIT_RTOL = 5e-3
#: a jaxlike fit counts as "at or below" pyhf's if its 2NLL is at most this much higher
NLL_TOL = 1e-6
#: a disagreement in CLs is explained only by a pyhf fit at least this much above jaxlike's
NLL_EXPLAINS = 1e-5
CONVERGED = "numpy_scipy_SLSQP_tolerance_1e-12(converged)"
FIT_NAMES = (
    "free fit to data",
    "mu-conditional fit to data",
    "Asimov-construction fit",
    "free fit to Asimov",
    "mu-conditional fit to Asimov",
)

VALIDATION_DIR = DATA / "pyhf_validation"
VALIDATION_STEMS = sorted(p.stem for p in VALIDATION_DIR.glob("*.json"))
HELLO = "readme_hello_world_uncorrelated_background"
COUPLED = "validation_2bin_2channel_coupledhistosys_code0"


@functools.cache
def read(path):
    return json.loads(path.read_text())


def rel_diff(got, want):
    """max |got - want| / |want|: the measure of agreement reported in verdicts."""
    got, want = np.atleast_1d(np.asarray(got, float)), np.atleast_1d(np.asarray(want, float))
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300)))


def cls_agree(obs, exp, ref_obs, ref_exp):
    ok_obs = abs(float(obs) - ref_obs) <= OBS_RTOL * abs(ref_obs)
    exp, ref_exp = np.asarray(exp, float), np.asarray(ref_exp, float)
    ok_exp = bool(np.all(np.abs(exp - ref_exp) <= EXP_RTOL * np.abs(ref_exp) + EXP_ATOL))
    return ok_obs and ok_exp


@functools.cache
def hypotest(case_id, mu, test_stat="qtilde", calc_base_dist="normal"):
    """jaxlike's test of one case, computed once per session."""
    case = get_case(case_id)
    return jaxlike.hypotest(
        mu, case.data, case.model, test_stat=test_stat, calc_base_dist=calc_base_dist
    )


@eqx.filter_jit
def _twice_nll_rows(model, pars, data):
    return jax.vmap(model.twice_nll)(pars, data)


def pyhf_five_fits(case, res, mu, test_stat):
    """pyhf's parameter vectors for the five fits of the test (with the active pyhf backend and
    pyhf's suggested inits/bounds/fixed), in jaxlike's order. The Asimov-construction fit comes
    from ``generate_asimov_data``; the two Asimov fits are run on jaxlike's Asimov dataset so
    that both tools minimise the same function (if the construction fits differ, the lower one
    defines the right Asimov data, and fit 3 is compared separately)."""
    pm, data = case.pyhf_model, case.pyhf_data
    init, bounds, fixed = (
        pm.config.suggested_init(),
        pm.config.suggested_bounds(),
        pm.config.suggested_fixed(),
    )
    mu_a = 1.0 if test_stat == "q0" else 0.0
    free = pyhf.infer.mle.fit(data, pm, init, bounds, fixed)
    cond = pyhf.infer.mle.fixed_poi_fit(mu, data, pm, init, bounds, fixed)
    pyhf_asimov, construct = pyhf.infer.calculators.generate_asimov_data(
        mu_a, data, pm, init, bounds, fixed, return_fitted_pars=True
    )
    asimov = np.asarray(case.model.expected_data(res.fitted_pars[2]))
    free_a = pyhf.infer.mle.fit(asimov, pm, init, bounds, fixed)
    cond_a = pyhf.infer.mle.fixed_poi_fit(mu, asimov, pm, init, bounds, fixed)
    pars = np.stack([np.asarray(p, float) for p in (free, cond, construct, free_a, cond_a)])
    n = case.model.config.nmaindata
    asimov_rel = rel_diff(np.asarray(pyhf_asimov)[:n], asimov[:n])
    return pars, asimov, asimov_rel


def judge(case, res, mu, test_stat, ref_obs, ref_exp, *, explain=True):
    """Pass if CLs agree with the pyhf reference; otherwise require jaxlike's five fits to be at
    or below pyhf's, one of them by more than NLL_EXPLAINS. Returns a one-line verdict."""
    q0 = test_stat == "q0"
    obs, exp = (res.p0_obs, res.p0_exp) if q0 else (res.cls_obs, res.cls_exp)
    assert bool(res.converged), (case.id, np.asarray(res.fit_converged))
    diffs = f"obs rel {rel_diff(obs, ref_obs):.2e}, exp rel {rel_diff(exp, ref_exp):.2e}"
    if cls_agree(obs, exp, ref_obs, ref_exp):
        return f"{case.id}: agrees with pyhf ({diffs})"
    assert explain, f"{case.id}: CLs differ from pyhf ({diffs})"
    pyhf_pars, asimov, asimov_rel = pyhf_five_fits(case, res, mu, test_stat)
    datasets = jnp.asarray(np.stack([case.data] * 3 + [asimov] * 2))
    both = np.concatenate([np.asarray(res.fitted_pars), pyhf_pars])
    rows = jnp.concatenate([datasets] * 2)
    nll = np.asarray(_twice_nll_rows(case.model, jnp.asarray(both), rows))
    ours, theirs = nll[:5], nll[5:]
    np.testing.assert_allclose(ours, np.asarray(res.twice_nll), rtol=0, atol=1e-8)
    excess = theirs - ours
    lines = [
        f"{name}: jaxlike {a:.6f} pyhf {b:.6f} -> lower: "
        + ("jaxlike" if b - a > NLL_TOL else "pyhf" if a - b > NLL_TOL else "tie")
        for name, a, b in zip(FIT_NAMES, ours, theirs, strict=True)
    ]
    verdict = (
        f"{case.id}: CLs differ from pyhf ({diffs}; pyhf Asimov main data differ by "
        f"{asimov_rel:.1e} rel); 2NLL per fit: " + "; ".join(lines)
    )
    assert np.all(excess >= -NLL_TOL), "pyhf found a lower minimum: " + verdict
    assert np.max(excess) > NLL_EXPLAINS, "same minima yet different CLs: " + verdict
    return "jaxlike found the lower minimum, its CLs stand. " + verdict


# -- the pyhf validation files -----------------------------------------------------------------
def _validation(stem):
    obj = read(VALIDATION_DIR / f"{stem}.json")
    s = obj["settings"]
    return obj, s, hypotest(f"validation/{stem}", s["poi_test"], s["test_stat"])


@pytest.mark.parametrize("stem", VALIDATION_STEMS)
def test_validation_file_matches_converged_pyhf(stem, pyhf_converged):
    """Every pyhf validation file: CLs (p0 for q0) against converged pyhf, and against the
    reference pyhf's own test suite uses (the ROOT-era / README value) at the files'
    recommended tolerance (converged fits move those by up to 3.3e-4)."""
    obj, s, res = _validation(stem)
    if "global_minimum_result" in obj:  # an ill-posed reference: pyhf's value is a local minimum
        glob = obj["global_minimum_result"]  # (see test_coupledhistosys_finds_the_global_minimum)
        np.testing.assert_allclose(float(res.cls_obs), glob["CLs_obs"], rtol=1e-5)
        np.testing.assert_allclose(np.asarray(res.cls_exp), glob["CLs_exp"], rtol=1e-5)
        return
    ref = obj["pyhf_0.7.6_local_results"][CONVERGED]
    case = get_case(f"validation/{stem}")
    verdict = judge(case, res, s["poi_test"], s["test_stat"], ref["obs"], ref["exp"])
    print(verdict)  # shown with -rP
    q0 = s["test_stat"] == "q0"
    obs, exp = (res.p0_obs, res.p0_exp) if q0 else (res.cls_obs, res.cls_exp)
    published = obj["expected"]
    tol = obj["recommended_acceptance_tolerance"]
    np.testing.assert_allclose(
        float(obs), published["p0_obs" if q0 else "CLs_obs"], rtol=tol["rtol"], atol=tol["atol"]
    )
    if "CLs_exp_median" in published:
        np.testing.assert_allclose(
            float(exp[2]), published["CLs_exp_median"], rtol=tol["rtol"], atol=tol["atol"]
        )
    else:
        np.testing.assert_allclose(
            np.asarray(exp),
            published["p0_exp" if q0 else "CLs_exp"],
            rtol=tol["rtol"],
            atol=tol["atol"],
        )


def test_shapesys_nuisparfilter_matches_root():
    """ROOT/HistFactory's numbers for the shapesys case with a zero-uncertainty (fixed) bin."""
    obj, _, res = _validation("root_reference_shapesys_nuisparfilter")
    root = obj["expected"]
    np.testing.assert_allclose(float(res.cls_obs), root["CLs_obs"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(np.asarray(res.cls_exp), root["CLs_exp"], rtol=0, atol=1e-4)
    # atol 1e-4 is pyhf's tolerance; the agreement is far closer (measured 2e-8 relative)
    np.testing.assert_allclose(float(res.cls_obs), root["CLs_obs"], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(res.cls_exp), root["CLs_exp"], rtol=1e-6)
    # the gamma of the zero-uncertainty bin stays fixed at 1 in every fit
    np.testing.assert_array_equal(np.asarray(res.fitted_pars)[:, 2], 1.0)


def test_coupledhistosys_finds_the_global_minimum():
    """The coupled code0 histosys file has two minima of the mu=1 conditional fit (kink at
    alpha=0: bkg2's up/down templates move bin 2 the same way for both signs of alpha, so the
    kink is concave).

    pyhf's reference CLs_obs = 0.0797 comes from the *local* minimum alpha = +0.481
    (2NLL 31.3751) that numpy SLSQP reaches from alpha = 0; the global one is alpha = -0.359
    (2NLL 30.8717), and pyhf's jax backend lands elsewhere again (0.256). jaxlike's minimiser
    explores the far side of every kink whose far side descends, so every fit of the test ends
    in its lowest well, says that a second minimum exists, and the CLs is the file's
    ``global_minimum_result``. Started on the other side (alpha = -0.5) it gives the same.
    """
    obj, _, res = _validation(COUPLED)
    case = get_case(f"validation/{COUPLED}")
    alpha = case.model.config.par_index("coupled_histosys")
    assert bool(res.converged)
    np.testing.assert_allclose(float(res.fitted_pars[1, alpha]), -0.359, atol=1e-3)
    np.testing.assert_allclose(float(res.twice_nll[1]), 30.8717, atol=1e-4)
    glob = obj["global_minimum_result"]
    # (the file's global minima come from SLSQP: 2e-6 above jaxlike's in q_asimov)
    q_obs, q_asimov = float(res.q_obs), float(res.q_asimov)
    np.testing.assert_allclose([q_obs, q_asimov], [glob["q_obs"], glob["q_asimov"]], atol=1e-5)
    np.testing.assert_allclose(float(res.cls_obs), glob["CLs_obs"], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(res.cls_exp), glob["CLs_exp"], rtol=1e-5)

    cond = jaxlike.fixed_poi_fit(case.model, case.data, 1.0)
    assert bool(cond.converged) and int(cond.n_local_minima) == 2
    np.testing.assert_allclose(float(cond.twice_nll), float(res.twice_nll[1]), atol=1e-9)
    init = case.model.config.suggested_init().copy()
    init[alpha] = -0.5
    other = jaxlike.hypotest(1.0, case.data, case.model, test_stat="q", init_pars=init)
    np.testing.assert_allclose(np.asarray(other.twice_nll), np.asarray(res.twice_nll), atol=1e-9)


# -- the README example: limits, fits, Asimov data, test statistics ----------------------------
@functools.cache
def hello_limit():
    case = get_case(f"validation/{HELLO}")
    return jaxlike.upper_limit(case.data, case.model, cl=0.95)


def test_hello_world_upper_limits(pyhf_converged):
    """95% CL limits against converged pyhf's toms748 scan (rtol 1e-6, live, ~2 s) and pyhf's
    stored result (tests/test_infer.py::test_upper_limit, default SLSQP): obs 1.01156939,
    exp [0.55988001, 0.75702336, 1.06234693, 1.50116923, 2.05078596]."""
    case = get_case(f"validation/{HELLO}")
    ref = read(VALIDATION_DIR / f"{HELLO}.json")["expected"]["upper_limit_toms748_rtol_1em6"]
    live_obs, live_exp = pyhf.infer.intervals.upper_limits.toms748_scan(
        case.pyhf_data, case.pyhf_model, 0.0, 5.0, rtol=1e-6
    )
    lim = hello_limit()
    assert bool(lim.converged)
    for want_obs, want_exp in ((float(live_obs), np.ravel(live_exp)), (ref["obs"], ref["exp"])):
        np.testing.assert_allclose(float(lim.obs), want_obs, rtol=LIMIT_RTOL)
        np.testing.assert_allclose(np.asarray(lim.exp), want_exp, rtol=LIMIT_RTOL)
    # measured: 1e-8 from converged pyhf, 2e-5 from the stored (unconverged-fit) result
    np.testing.assert_allclose(float(lim.obs), float(live_obs), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(lim.exp), np.ravel(live_exp), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(lim.exp), ref["exp"], rtol=5e-5)


def test_hello_world_docstring_numbers(pyhf_converged):
    """pyhf's docstring values (default SLSQP, printed to 8 digits) and the same quantities from
    converged pyhf: MLE, mu=1 conditional fit, Asimov data at mu=1, the q~ test statistic value
    and CLs+b/CLb of the README."""
    case = get_case(f"validation/{HELLO}")
    exp = read(VALIDATION_DIR / f"{HELLO}.json")["expected"]
    res = hypotest(f"validation/{HELLO}", 1.0)
    pm, data = case.pyhf_model, case.pyhf_data
    init, bounds, fixed = (
        pm.config.suggested_init(),
        pm.config.suggested_bounds(),
        pm.config.suggested_fixed(),
    )
    free, free_nll = pyhf.infer.mle.fit(data, pm, init, bounds, fixed, return_fitted_val=True)
    cond, cond_nll = pyhf.infer.mle.fixed_poi_fit(
        1.0, data, pm, init, bounds, fixed, return_fitted_val=True
    )
    pyhf_asimov = pyhf.infer.calculators.generate_asimov_data(1.0, data, pm, init, bounds, fixed)

    for k, pyhf_pars, pyhf_nll, doc in (
        (0, free, free_nll, exp["mle_fit_bestfit"]),
        (1, cond, cond_nll, exp["fixed_poi_fit_mu1"]),
    ):
        np.testing.assert_allclose(np.asarray(res.fitted_pars[k]), pyhf_pars, atol=2e-6)
        assert float(res.twice_nll[k]) <= float(pyhf_nll) + 1e-9
        np.testing.assert_allclose(np.asarray(res.fitted_pars[k]), doc, atol=5e-5)

    asimov = hypotest_prepare(case.data, case.model, test_stat="q0").asimov_data  # mu_A = 1
    np.testing.assert_allclose(np.asarray(asimov), pyhf_asimov, rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(asimov), exp["generate_asimov_data_asimov_mu_1"], rtol=5e-6
    )

    # AsymptoticCalculator.teststatistic(1.0) returns t, and CLb = Phi(-t)
    t = -float(norm.ppf(res.clb_obs))
    calc = pyhf.infer.calculators.AsymptoticCalculator(data, pm, test_stat="qtilde")
    np.testing.assert_allclose(t, float(calc.teststatistic(1.0)), rtol=1e-6)
    np.testing.assert_allclose(t, exp["asymptotic_calculator_qtilde_teststatistic_mu1"], rtol=2e-4)
    np.testing.assert_allclose(float(res.clsb_obs), exp["CLsb_obs"], rtol=5e-5)
    np.testing.assert_allclose(float(res.clb_obs), exp["CLb_obs"], rtol=5e-5)

    # distributions(1.0)'s p-values at a test-statistic value t = 1 (q~ branch above q_A)
    sqa = jnp.sqrt(res.q_asimov)
    (clsb, clb, _), _ = asymptotic_pvalues("qtilde", res.q_asimov + 2.0 * sqa, res.q_asimov)
    ref = exp["sb_and_b_pvalue_at_teststat_equal_1"]
    np.testing.assert_allclose([float(clsb), float(clb)], ref, rtol=2e-4)


# -- test statistics and the base distribution against live converged pyhf --------------------
TEST_STAT_CASES = {
    # id: (case, mu, jaxlike test_stat, pyhf function, POI bounds override)
    "qmu_poi_free_sign": (HELLO, 1.0, "q", "qmu", (-10.0, 10.0)),
    "qmu_tilde": (HELLO, 1.0, "qtilde", "qmu_tilde", None),
    "qmu_tilde_mu_below_muhat": ("validation_1bin_shapesys_q0", 0.5, "qtilde", "qmu_tilde", None),
    "q0": ("validation_1bin_shapesys_q0", 0.0, "q0", "q0", None),
}


@pytest.mark.parametrize("name", list(TEST_STAT_CASES))
def test_test_statistics_match_pyhf(name, pyhf_converged):
    """q_obs vs pyhf.infer.test_statistics.{qmu, qmu_tilde, q0}, and q_asimov vs the
    AsymptoticCalculator's sqrtqmuA_v**2, both with converged pyhf fits."""
    stem, mu, ts, fn, poi_bounds = TEST_STAT_CASES[name]
    case = get_case(f"validation/{stem}")
    pm, data = case.pyhf_model, case.pyhf_data
    init, fixed = pm.config.suggested_init(), pm.config.suggested_fixed()
    bounds = [list(b) for b in pm.config.suggested_bounds()]
    if poi_bounds is not None:
        bounds[pm.config.poi_index] = list(poi_bounds)
        res = jaxlike.hypotest(
            mu, case.data, case.model, test_stat=ts, par_bounds=np.asarray(bounds)
        )
    else:
        res = hypotest(f"validation/{stem}", mu, ts)
    assert bool(res.converged)
    q_ref = float(getattr(pyhf.infer.test_statistics, fn)(mu, data, pm, init, bounds, fixed))
    calc = pyhf.infer.calculators.AsymptoticCalculator(data, pm, init, bounds, fixed, test_stat=ts)
    calc.teststatistic(mu)
    qa_ref = float(calc.sqrtqmuA_v) ** 2
    np.testing.assert_allclose(float(res.q_obs), q_ref, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(float(res.q_asimov), qa_ref, rtol=1e-6, atol=1e-9)
    if name == "qmu_poi_free_sign":  # docstring of qmu: mu_hat < 0 is allowed here
        assert float(res.mu_hat) < 0
        np.testing.assert_allclose(float(res.q_obs), 3.9549891, rtol=1e-7)
    if name == "qmu_tilde_mu_below_muhat":  # one-sided: q = 0 when mu_hat > mu
        assert float(res.mu_hat) > mu and float(res.q_obs) == 0.0 and q_ref == 0.0
    if name == "q0":
        assert float(res.q_obs) > 1.0


def test_clipped_normal_matches_pyhf(pyhf_converged):
    """calc_base_dist="clipped_normal" against pyhf's option of the same name (q~)."""
    case = get_case(f"validation/{HELLO}")
    res = hypotest(f"validation/{HELLO}", 1.0, calc_base_dist="clipped_normal")
    obs, exp = pyhf.infer.hypotest(
        1.0,
        case.pyhf_data,
        case.pyhf_model,
        test_stat="qtilde",
        return_expected_set=True,
        calc_base_dist="clipped_normal",
    )
    _, exp_normal = pyhf.infer.hypotest(
        1.0, case.pyhf_data, case.pyhf_model, test_stat="qtilde", return_expected_set=True
    )
    exp, exp_normal = np.ravel(exp), np.ravel(exp_normal)
    assert cls_agree(res.cls_obs, res.cls_exp, float(obs), exp)
    np.testing.assert_allclose(np.asarray(res.cls_exp), exp, rtol=1e-6)
    assert abs(exp[4] - exp_normal[4]) > 1e-2  # the option matters on this model


# -- ATLAS sbottom: 3 signal patches (64 parameters) -------------------------------------------
SBOTTOM_DIR = DATA / "pyhf_validation" / "sbottom_regionA"
SBOTTOM_STEMS = sorted(p.stem for p in SBOTTOM_DIR.glob("patch.*.json"))


@functools.cache
def pyhf_cls(case_id, mu=1.0, test_stat="qtilde"):
    """Converged pyhf's (CLs_obs, CLs_exp) for a case, computed once per session (call it with
    the ``pyhf_converged`` fixture active)."""
    case = get_case(case_id)
    obs, exp = pyhf.infer.hypotest(
        mu, case.pyhf_data, case.pyhf_model, test_stat=test_stat, return_expected_set=True
    )
    return float(obs), np.ravel(np.asarray(exp, float))


@pytest.mark.parametrize("stem", SBOTTOM_STEMS)
def test_sbottom_matches_converged_pyhf(stem, pyhf_converged):
    """Against converged pyhf (live, 2-7 s per patch), and against pyhf's regression values
    (tests/test_regression.py, default SLSQP) at the acceptance tolerance."""
    case = get_case(f"sbottom/{stem}")
    res = hypotest(case.id, 1.0)
    verdict = judge(case, res, 1.0, "qtilde", *pyhf_cls(case.id))
    print(verdict)  # shown with -rP
    regression = read(SBOTTOM_DIR / "expected.json")
    ref = regression["cases"][stem.removeprefix("patch.sbottom_")]["expected"]
    assert cls_agree(res.cls_obs, res.cls_exp, ref["CLs_obs"], ref["CLs_exp"])


# -- ATLAS ERJR: 10 of 66 signal patches (67-71 parameters) ------------------------------------
#: pyhf 0.7.6, numpy backend, scipy_optimizer(tolerance=1e-10), hypotest(1.0, test_stat="qtilde",
#: return_expected_set=True) on Workspace(BkgOnly).model(patches=[patch]) (2-core Linux, 4-70 s
#: each). pyhf stops some fits early here (see atlas_erjr/README.md); :func:`judge` decides.
#: ``test_erjr_against_live_pyhf`` (slow) recomputes every entry.
# fmt: off
ERJR_PYHF = {
    "100p0_40p0": (0.5733981323073053, [
        0.037658080132180055, 0.10302220529378504, 0.25601106167527055,
        0.5300587060586618, 0.8250109237111802]),
    "110p0_30p0": (7.5395227545362e-09, [
        0.003180473517248608, 0.016106313434842267, 0.07186504510679394,
        0.251815304650507, 0.5927558977331088]),
    "140p0_100p0": (0.9102563302975402, [
        0.7402149340356708, 0.8227363857374004, 0.9014083542015854,
        0.9621703103186607, 0.9922543476444573]),
    "150p0_50p0": (0.000491049464825327, [
        5.207570730184607e-09, 3.0068111368178617e-07, 1.4558986546039851e-05,
        0.0005064545287546858, 0.009992323838611379]),
    "200p0_120p0": (0.5979070466430155, [
        0.0635241477217108, 0.15063354348097108, 0.3274992231408559,
        0.6041661046592679, 0.8660365015781155]),
    "250p0_100p0": (0.001921989555732582, [
        1.0906950123684182e-07, 3.922017244304755e-06, 0.00011888290284450482,
        0.002611124923123179, 0.03302218139813406]),
    "300p0_200p0": (0.5353232050774429, [
        0.019899001453770528, 0.06438059297676997, 0.1873762298318884,
        0.4458316051464199, 0.7697725655309989]),
    "350p0_250p0": (0.6190411145764187, [
        0.09036872291155822, 0.19400417773685524, 0.38459841123112837,
        0.6560122327723167, 0.891150506136471]),
    "400p0_300p0": (0.6985375870084585, [
        0.22328380407228804, 0.36662145826617554, 0.5684378069295057,
        0.7919149874605297, 0.9450916764254172]),
    "500p0_100p0": (0.6163587747270799, [
        0.10319529935198417, 0.21325097670588058, 0.4081126710092675,
        0.6758086110773819, 0.9000339752835046]),
}
# fmt: on


def _erjr(masses):
    case = get_case(f"erjr/patch.ERJR_{masses}")
    return case, hypotest(case.id, 1.0)


def test_erjr_110_30_pyhf_fit_stays_at_its_start(pyhf_converged):
    """atlas_erjr/README.md: converged pyhf left the mu = 1 fit to data at its start
    (2NLL 306.82 at the inits vs 270.12 at jaxlike's minimum), so the stored pyhf CLs_obs =
    7.5e-9 is wrong; jaxlike's five fits are all at or below pyhf's (live), and its CLs_obs =
    0.308 stands."""
    case, res = _erjr("110p0_30p0")
    verdict = judge(case, res, 1.0, "qtilde", *ERJR_PYHF["110p0_30p0"])
    print(verdict)  # shown with -rP
    assert verdict.startswith("jaxlike found the lower minimum"), verdict
    found = re.search(r"mu-conditional fit to data: jaxlike ([0-9.]+) pyhf ([0-9.]+)", verdict)
    jl_nll, py_nll = float(found[1]), float(found[2])
    np.testing.assert_allclose(jl_nll, 270.124, atol=1e-3)
    # The stored pyhf run stayed at its start (306.82). A live SLSQP run may stay there or reach
    # the minimum, depending on BLAS threading (the rounding of its finite differences); either
    # way jaxlike's minimum is at or below pyhf's.
    assert py_nll >= jl_nll - NLL_TOL, verdict
    init = jnp.asarray(case.model.config.suggested_init())
    np.testing.assert_allclose(float(case.model.twice_nll(init, case.data)), 306.82, atol=5e-3)
    np.testing.assert_allclose(float(res.cls_obs), 0.3084, atol=1e-4)


def test_erjr_100_40_readme_numbers():
    """atlas_erjr/README.md, converged SLSQP / MINUIT: mu_hat = 1.0227, 2NLL = 257.842,
    CLs_obs = 0.5734 (the two agree to 2e-4), band = [0.0377, 0.1031, 0.2563, 0.5304, 0.8252]
    (printed to 3-4 digits; MINUIT and SLSQP differ by 2.4e-3 in the first entry). The
    stored pyhf band differs from jaxlike's by 2.5e-3 (> 2e-3); ``test_erjr_against_live_pyhf``
    shows that each of pyhf's five fits ends above jaxlike's there."""
    _, res = _erjr("100p0_40p0")
    assert bool(res.converged)
    np.testing.assert_allclose(float(res.mu_hat), 1.0227, atol=1e-4)
    np.testing.assert_allclose(float(res.twice_nll[0]), 257.842, atol=1e-3)
    np.testing.assert_allclose(float(res.cls_obs), 0.5734, atol=2e-4)
    np.testing.assert_allclose(float(res.cls_obs), ERJR_PYHF["100p0_40p0"][0], rtol=OBS_RTOL)
    np.testing.assert_allclose(
        np.asarray(res.cls_exp), [0.0377, 0.1031, 0.2563, 0.5304, 0.8252], rtol=0, atol=2e-4
    )


@pytest.mark.slow
@pytest.mark.parametrize("masses", list(ERJR_PYHF))
def test_erjr_against_live_pyhf(masses, pyhf_converged):
    """All 10 patches against a live converged pyhf hypotest (4-70 s each) and, where CLs
    differ, against pyhf's five fits (20-90 s); also checks the stored ERJR_PYHF entry."""
    case, res = _erjr(masses)
    obs, exp = pyhf_cls(case.id)
    ref_obs, ref_exp = ERJR_PYHF[masses]
    np.testing.assert_allclose(obs, ref_obs, rtol=1e-3)
    np.testing.assert_allclose(exp, ref_exp, rtol=1e-3)
    print(judge(case, res, 1.0, "qtilde", obs, exp))  # shown with -rP


# -- Belle II B+ -> K+ nu nu (232 parameters) ---------------------------------------------------
#: pyhf 0.7.6, *jax* backend, scipy_optimizer(tolerance=1e-10), hypotest(1.0, test_stat="qtilde",
#: return_expected_set=True): 48 s on a 2-core machine (pyhf numpy takes > 100 s)
# fmt: off
BELLE2_PYHF = (0.6367429175879616, [
    0.11582873815683724, 0.23147144590854685, 0.429507463093444, 0.6931196726849622,
    0.9074996186465561])
# fmt: on


def test_belle2_matches_pyhf(pyhf_converged):
    """CLs at mu = 1 (the SM rate) against pyhf-jax, and each of jaxlike's five 2NLL values
    against pyhf's own logpdf (numpy) at jaxlike's parameters: the reported minima are minima
    of pyhf's likelihood."""
    case = get_case("belle2")
    res = hypotest("belle2", 1.0)
    judge(case, res, 1.0, "qtilde", *BELLE2_PYHF, explain=False)
    # MLE: pyhf-jax with tolerance 1e-10 gives mu_hat = 4.599047, 2NLL = -23.33428001; the
    # README's 4.608 +- 1.317 is pyhf's default SLSQP, 0.007 sigma away
    np.testing.assert_allclose(float(res.mu_hat), 4.599047, atol=1e-5)
    assert float(res.twice_nll[0]) <= -23.33428001 + NLL_TOL
    np.testing.assert_allclose(float(res.mu_hat), 4.608, atol=0.01)
    asimov = np.asarray(case.model.expected_data(res.fitted_pars[2]))
    for k, d in enumerate([case.pyhf_data] * 3 + [asimov] * 2):
        pyhf_nll = -2.0 * float(case.pyhf_model.logpdf(np.asarray(res.fitted_pars[k]), d)[0])
        np.testing.assert_allclose(
            float(res.twice_nll[k]), pyhf_nll, rtol=0, atol=1e-7, err_msg=FIT_NAMES[k]
        )


@pytest.mark.slow
def test_belle2_pyhf_reference_reproduces():
    """pyhf-jax recomputes the Belle II reference (about 50 s); jaxlike agrees with it."""
    saved = pyhf.get_backend()
    try:
        pyhf.set_backend("jax", pyhf.optimize.scipy_optimizer(tolerance=1e-10))
        spec = read(DATA / "belle2_bknunu" / "combined_likelihood.json")
        ws = pyhf.Workspace(spec)
        model = ws.model()
        obs, exp = pyhf.infer.hypotest(
            1.0, ws.data(model), model, test_stat="qtilde", return_expected_set=True
        )
        obs, exp = float(obs), np.ravel(np.asarray(exp, float))
    finally:
        pyhf.set_backend(*saved)
    np.testing.assert_allclose(obs, BELLE2_PYHF[0], rtol=1e-6)
    np.testing.assert_allclose(exp, BELLE2_PYHF[1], rtol=1e-6)
    judge(get_case("belle2"), hypotest("belle2", 1.0), 1.0, "qtilde", obs, exp, explain=False)


@pytest.mark.slow
def test_erjr_patch_scan_matches_pyhf_per_patch(tmp_path):
    """The 10 ERJR patches as ONE unified, vmapped patch scan (jaxlike.scan.patch_scan): CLs
    per patch equal jaxlike's own per-patch hypotests (which the tests above hold against
    converged pyhf) to 1e-6, so the scan inherits their agreement; 95% limits equal
    upper_limit on each unified model alone to 1e-5. (The toy grid of test_scan_patches.py
    covers batched = one-at-a-time in the default run.)"""
    from jaxlike.scan import patch_scan

    ws = jaxlike.Workspace.load(DATA / "atlas_erjr" / "BkgOnly.json")
    names = list(ERJR_PYHF)
    patches = [read_json(DATA / "atlas_erjr" / f"patch.ERJR_{m}.json") for m in names]
    out = patch_scan(ws, patches, cl=(0.95,), store=tmp_path / "erjr.h5", progress=False)
    for i, masses in enumerate(names):
        _, res = _erjr(masses)
        np.testing.assert_allclose(out["cls_obs"][i], float(res.cls_obs), rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(out["cls_exp"][i], np.asarray(res.cls_exp), rtol=1e-6)
    spaces = jaxlike.unify_patches(ws, patches)
    for i in (0, 4, 9):
        w = jaxlike.Workspace(spaces[i])
        model = w.model()
        ul = jaxlike.upper_limit(w.data(model), model, cl=0.95)
        np.testing.assert_allclose(out["ul_obs"][i, 0], float(ul.obs), rtol=1e-5)
        np.testing.assert_allclose(out["ul_exp"][i, 0], np.asarray(ul.exp), rtol=1e-5)
