"""jaxlike.infer on its own terms: batched forms equal one-at-a-time calls, jit, input errors,
non-convergence reporting and the internal identities of the asymptotic formulae.

Agreement with pyhf lives in ``test_pyhf_parity_infer.py``. Every test here uses the README
"hello world" model (3 parameters) or another small validation model, so one compile per entry
point serves the whole file; results shared by several tests are cached (``_single``,
``_limit``).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import get_case
from jax.scipy.stats import norm

import jaxlike
from jaxlike.exceptions import InvalidParameters
from jaxlike.infer import asymptotic_pvalues, hypotest_prepare

#: batched and one-at-a-time results must agree to this (the same arithmetic, batched)
BATCH_RTOL = 1e-8
HELLO = "validation/readme_hello_world_uncorrelated_background"
Q0_CASE = "validation/validation_1bin_shapesys_q0"
POIS = (0.5, 1.0, 1.5, 2.0, 3.0)

# the fields of a HypoTestResult compared between batched and single calls
FIELDS = ("cls_obs", "cls_exp", "clsb_obs", "clb_obs", "q_obs", "q_asimov", "mu_hat", "twice_nll")


@pytest.fixture(scope="module")
def hello(cases):
    return cases(HELLO)


@functools.cache
def _single(case_id, mu, **kwargs):
    """jaxlike.hypotest at a Python-float POI value (cached: each call is shared by tests)."""
    case = get_case(case_id)
    return jaxlike.hypotest(mu, case.data, case.model, **kwargs)


def _assert_results_equal(batched, singles, rtol=BATCH_RTOL, what=""):
    for k, single in enumerate(singles):
        for field in FIELDS:
            got = np.asarray(getattr(batched, field))[k]
            want = np.asarray(getattr(single, field))
            np.testing.assert_allclose(got, want, rtol=rtol, atol=0, err_msg=f"{what}[{k}].{field}")
        assert bool(np.asarray(batched.converged)[k]) and bool(single.converged), (what, k)


# -- batched forms -----------------------------------------------------------------------------
def test_hypotest_scan_equals_single_calls(hello):
    """One vmapped scan over 5 POI values == 5 separate hypotests (which recompute the three
    μ-independent fits each time)."""
    scan = jaxlike.hypotest_scan(jnp.asarray(POIS), hello.data, hello.model)
    assert scan.cls_obs.shape == (len(POIS),) and scan.cls_exp.shape == (len(POIS), 5)
    np.testing.assert_array_equal(np.asarray(scan.mu), POIS)
    _assert_results_equal(scan, [_single(HELLO, mu) for mu in POIS], what="scan")
    # CLs falls with mu on this model; the scan must not return one value five times
    assert np.all(np.diff(np.asarray(scan.cls_obs)) < 0)


def test_vmap_over_data_equals_loop(hello):
    """jax.vmap(hypotest) over 4 Poisson-fluctuated datasets == a Python loop."""
    model = hello.model
    nmain = model.config.nmaindata
    rng = np.random.default_rng(7)
    data = np.asarray(hello.data)
    expected = np.asarray(model.expected_actualdata(jnp.asarray(model.config.suggested_init())))
    main = rng.poisson(expected, size=(4, nmain)).astype(float)
    datasets = np.concatenate([main, np.broadcast_to(data[nmain:], (4, data.size - nmain))], 1)
    assert len({tuple(row) for row in main}) == 4  # four different datasets
    batched = jax.vmap(lambda d: jaxlike.hypotest(1.0, d, model))(jnp.asarray(datasets))
    loop = [jaxlike.hypotest(1.0, jnp.asarray(d), model) for d in datasets]
    _assert_results_equal(batched, loop, what="vmap(data)")
    assert np.unique(np.round(np.asarray(batched.cls_obs), 12)).size == 4


def test_vmap_over_stacked_models_equals_loop(hello):
    """jax.vmap over jaxlike.stack_models of 4 models whose signal template is scaled (the
    "templates are data" property: one compile for all hypotheses) == a loop."""
    model = hello.model
    sig = model.config.samples.index("signal")
    scales = (0.5, 1.0, 2.0, 4.0)
    models = [
        eqx.tree_at(lambda m: m.nominal, model, model.nominal.at[sig].multiply(s)) for s in scales
    ]
    stacked = jaxlike.stack_models(models)
    batched = jax.vmap(lambda m: jaxlike.hypotest(1.0, hello.data, m))(stacked)
    loop = [jaxlike.hypotest(1.0, hello.data, m) for m in models]
    _assert_results_equal(batched, loop, what="vmap(stacked models)")
    # a larger signal is excluded more strongly
    assert np.all(np.diff(np.asarray(batched.cls_obs)) < 0)
    # the scale-1 model is the original one
    np.testing.assert_allclose(
        np.asarray(batched.cls_obs)[1], float(_single(HELLO, 1.0).cls_obs), rtol=BATCH_RTOL
    )


def test_stack_models_rejects_different_layouts(hello, cases):
    with pytest.raises(ValueError, match="different layout"):
        jaxlike.stack_models([hello.model, cases(Q0_CASE).model])


@functools.cache
def _limit(case_id, cl, poi_range=None):
    case = get_case(case_id)
    return jaxlike.upper_limit(case.data, case.model, cl=cl, poi_range=poi_range)


def test_upper_limit_several_levels_equals_separate_calls():
    """cl=[0.9, 0.95] solves both levels in one batch; each equals its own call."""
    both = _limit(HELLO, (0.9, 0.95))
    assert both.obs.shape == (2,) and both.exp.shape == (2, 5)
    assert bool(np.all(np.asarray(both.converged)))
    for k, cl in enumerate((0.9, 0.95)):
        one = _limit(HELLO, cl)
        assert one.obs.shape == () and one.exp.shape == (5,) and bool(one.converged)
        np.testing.assert_allclose(float(both.obs[k]), float(one.obs), rtol=BATCH_RTOL)
        np.testing.assert_allclose(np.asarray(both.exp[k]), np.asarray(one.exp), rtol=BATCH_RTOL)
    # a 90% CL limit is tighter than a 95% one, for every curve
    assert float(both.obs[0]) < float(both.obs[1])
    assert np.all(np.asarray(both.exp[0]) < np.asarray(both.exp[1]))


def test_upper_limit_solves_cls_equal_alpha():
    """At each limit, CLs of its own curve equals 1 - CL (checked with independent hypotests)."""
    lim = _limit(HELLO, 0.95)
    obs, exp = lim  # unpacks like pyhf
    assert np.all(np.diff(np.asarray(exp)) > 0)  # band ascending: N = 2 ... -2
    mus = np.concatenate([[float(obs)], np.asarray(exp)])
    hello = get_case(HELLO)
    scan = jaxlike.hypotest_scan(jnp.asarray(mus), hello.data, hello.model)
    np.testing.assert_allclose(float(scan.cls_obs[0]), 0.05, rtol=1e-6)
    for n in range(5):
        np.testing.assert_allclose(float(scan.cls_exp[n + 1, n]), 0.05, rtol=1e-6)


# -- jit, unpacking, identities ----------------------------------------------------------------
def test_hypotest_under_jit_with_traced_mu_and_data(hello):
    """The whole test is traceable: jax.jit with POI value and data as traced arguments."""
    jitted = jax.jit(lambda mu, d: jaxlike.hypotest(mu, d, hello.model))
    for mu in (1.0, 2.0):
        got = jitted(jnp.asarray(mu), hello.data)
        _assert_results_equal(
            jax.tree_util.tree_map(lambda x: x[None], got), [_single(HELLO, mu)], what=f"jit {mu}"
        )


def test_result_unpacks_and_obeys_cls_identities(hello):
    res = _single(HELLO, 1.0)
    cls_obs, cls_exp = res
    assert cls_obs is res.cls_obs and cls_exp is res.cls_exp
    assert cls_exp.shape == (5,) and np.all(np.diff(np.asarray(cls_exp)) > 0)
    np.testing.assert_allclose(float(res.cls_obs), float(res.clsb_obs / res.clb_obs), rtol=1e-14)
    np.testing.assert_allclose(
        np.asarray(res.cls_exp), np.asarray(res.clsb_exp / res.clb_exp), rtol=1e-14
    )
    # CLb of the expected band is Phi(-N) for N = 2 ... -2 (normal base distribution)
    np.testing.assert_allclose(
        np.asarray(res.clb_exp), norm.cdf(-jnp.asarray([2.0, 1.0, 0.0, -1.0, -2.0])), rtol=1e-14
    )
    assert res.twice_nll.shape == (5,) and res.fitted_pars.shape == (5, hello.model.config.npars)
    assert bool(res.converged) == bool(np.all(np.asarray(res.fit_converged)))
    # the free fit is the lowest 2NLL on the observed data; the conditional fits are above it
    nll = np.asarray(res.twice_nll)
    assert nll[0] <= nll[1] + 1e-9 and nll[0] <= nll[2] + 1e-9 and nll[3] <= nll[4] + 1e-9
    # each reported 2NLL is the model's 2NLL at the reported parameters on the right dataset
    poi = hello.model.config.poi_index
    asimov = hello.model.expected_data(res.fitted_pars[2])
    for k, d in enumerate([hello.data] * 3 + [asimov] * 2):
        np.testing.assert_allclose(
            float(hello.model.twice_nll(res.fitted_pars[k], d)), nll[k], rtol=1e-12
        )
    np.testing.assert_allclose(np.asarray(res.fitted_pars)[[1, 4], poi], 1.0, rtol=0, atol=0)
    np.testing.assert_allclose(float(res.fitted_pars[2, poi]), 0.0, atol=0)
    np.testing.assert_allclose(float(res.mu_hat), float(res.fitted_pars[0, poi]), rtol=0)


def test_clipped_normal_only_changes_the_clipped_band_entries(hello):
    """calc_base_dist="clipped_normal" clips t at -sqrt(q_A): on this model sqrt(q_A) < 2, so only
    the N = -2 entry (last, the largest CLs) moves; the observed values do not."""
    normal = _single(HELLO, 1.0)
    clipped = _single(HELLO, 1.0, calc_base_dist="clipped_normal")
    sqa = float(jnp.sqrt(normal.q_asimov))
    assert 1.0 < sqa < 2.0
    np.testing.assert_allclose(float(clipped.cls_obs), float(normal.cls_obs), rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(clipped.cls_exp)[:4], np.asarray(normal.cls_exp)[:4], rtol=1e-12
    )
    # N = -2 < -sqrt(q_A): t = -sqrt(q_A), so CLs+b = Phi(0) = 1/2 and CLs = 1/(2 Phi(sqrt(q_A)))
    np.testing.assert_allclose(float(clipped.cls_exp[4]), 0.5 / float(norm.cdf(sqa)), rtol=1e-12)
    assert abs(float(clipped.cls_exp[4]) - float(normal.cls_exp[4])) > 1e-3


def test_asymptotic_pvalues_qtilde_branches():
    """q~ uses t = sqrt(q) - sqrt(q_A) below q_A and (q - q_A) / (2 sqrt(q_A)) above; q and q0
    always use sqrt(q) - sqrt(q_A). Both branches meet at q = q_A (t = 0)."""
    qa = jnp.asarray(4.0)
    for q, t_tilde, t_plain in ((1.0, -1.0, -1.0), (4.0, 0.0, 0.0), (9.0, 5.0 / 4.0, 1.0)):
        (clsb, clb, cls), _ = asymptotic_pvalues("qtilde", jnp.asarray(q), qa)
        np.testing.assert_allclose(float(clb), float(norm.cdf(-t_tilde)), rtol=1e-14)
        np.testing.assert_allclose(float(clsb), float(norm.cdf(-(t_tilde + 2.0))), rtol=1e-14)
        np.testing.assert_allclose(float(cls), float(clsb / clb), rtol=1e-14)
        for ts in ("q", "q0"):
            (_, clb_p, _), _ = asymptotic_pvalues(ts, jnp.asarray(q), qa)
            np.testing.assert_allclose(float(clb_p), float(norm.cdf(-t_plain)), rtol=1e-14)


def test_discovery_significance_is_the_q0_test(cases):
    """discovery_significance == hypotest(0, test_stat="q0"); Z = sqrt(q0) = Phi^-1(1 - p0)."""
    case = cases(Q0_CASE)
    disc = jaxlike.discovery_significance(case.data, case.model)
    ref = _single(Q0_CASE, 0.0, test_stat="q0")
    _assert_results_equal(jax.tree_util.tree_map(lambda x: x[None], disc), [ref], what="q0")
    assert float(disc.q_obs) > 1.0  # the data have an excess
    np.testing.assert_allclose(
        float(disc.significance_obs), float(-norm.ppf(disc.p0_obs)), rtol=1e-9
    )
    # p0_exp is pyhf's CLs+b band: Phi(-(N + sqrt(q_A))) for N = 2 ... -2, ascending
    sqa = float(jnp.sqrt(disc.q_asimov))
    n_sigma = np.asarray([2.0, 1.0, 0.0, -1.0, -2.0])
    np.testing.assert_allclose(np.asarray(disc.p0_exp), norm.cdf(-(n_sigma + sqa)), rtol=1e-12)
    # the Asimov dataset of q0 is built at mu = 1
    prep = hypotest_prepare(case.data, case.model, test_stat="q0")
    np.testing.assert_allclose(float(prep.asimov_fit.bestfit[case.model.config.poi_index]), 1.0)


def test_discovery_expected_significance_matches_p0_band(cases):
    """Z_exp[k] = Phi^-1(1 - p0_exp[k]) entry by entry (the docstring's Z_N = sqrt(q_A) + N)."""
    disc = _single(Q0_CASE, 0.0, test_stat="q0")
    z_exp = np.asarray(disc.significance_exp)
    np.testing.assert_allclose(z_exp, -norm.ppf(np.asarray(disc.p0_exp)), rtol=1e-9)
    np.testing.assert_allclose(np.diff(z_exp), -1.0, rtol=1e-12)  # sqrt(q_A) + 2 ... - 2


# -- errors and non-convergence ----------------------------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda c: jaxlike.hypotest(1.0, c.data, c.model, test_stat="qmu"),
        lambda c: jaxlike.hypotest_scan([1.0, 2.0], c.data, c.model, test_stat="tmu"),
        lambda c: jaxlike.upper_limit(c.data, c.model, test_stat="q_tilde"),
        lambda c: jaxlike.hypotest(1.0, c.data, c.model, calc_base_dist="student"),
    ],
    ids=["hypotest", "hypotest_scan", "upper_limit", "calc_base_dist"],
)
def test_bad_test_stat_or_base_dist_raises(hello, call):
    with pytest.raises(InvalidParameters):
        call(hello)


@pytest.mark.parametrize(
    "call",
    [
        lambda c: jaxlike.hypotest(1.0, c.data, c.model),
        lambda c: jaxlike.hypotest_scan([1.0, 2.0], c.data, c.model),
        lambda c: jaxlike.upper_limit(c.data, c.model),
        lambda c: jaxlike.discovery_significance(c.data, c.model),
    ],
    ids=["hypotest", "hypotest_scan", "upper_limit", "discovery_significance"],
)
def test_model_without_poi_raises(cases, call):
    case = cases("sbottom/BkgOnly")
    assert case.model.config.poi_index is None
    with pytest.raises(InvalidParameters, match="no parameter of interest"):
        call(case)


def test_upper_limit_outside_poi_range_is_nan_and_not_converged():
    """A POI range that brackets no root gives NaN and converged=False; where only some curves
    are bracketed, those have limits and the rest are NaN (still converged=False)."""
    full = _limit(HELLO, 0.95)
    none = _limit(HELLO, 0.95, poi_range=(0.0, 0.5))  # every limit is above 0.55
    assert float(full.exp[0]) > 0.5
    assert np.isnan(float(none.obs)) and np.all(np.isnan(np.asarray(none.exp)))
    assert not bool(none.converged)
    part = _limit(HELLO, 0.95, poi_range=(0.0, 1.2))  # obs ~1.01 and exp N=2,1,0 < 1.2
    assert not bool(part.converged)
    inside = np.concatenate([[float(full.obs)], np.asarray(full.exp)]) < 1.2
    got = np.concatenate([[float(part.obs)], np.asarray(part.exp)])
    assert inside.tolist() == [True, True, True, True, False, False]
    np.testing.assert_allclose(
        got[inside], np.concatenate([[full.obs], full.exp])[inside], rtol=1e-6
    )
    assert np.all(np.isnan(got[~inside]))


def test_failed_fit_is_reported_not_hidden(hello):
    """A fit that cannot start (NaN initial POI) ends with converged=False: the result says which
    of the five fits failed (the free fit to the data; the conditional ones set the POI
    themselves, and the free Asimov fit also starts from the Asimov parameters) and the
    observed CLs is NaN rather than a plausible-looking number; the expected band does not
    depend on the failed fit."""
    init = np.asarray(hello.model.config.suggested_init(), float)
    init[hello.model.config.poi_index] = np.nan
    res = jaxlike.hypotest(1.0, hello.data, hello.model, init_pars=init)
    assert not bool(res.converged)
    assert np.asarray(res.fit_converged).tolist() == [False, True, True, True, True]
    assert np.isnan(float(res.cls_obs)) and np.all(np.isfinite(np.asarray(res.cls_exp)))
