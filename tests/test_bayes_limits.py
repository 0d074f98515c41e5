"""Bayesian credible upper limits (jaxlike.bayes._limits) against exact and numerical integrals.

Counting experiments, ν = μ s + b (+ δ α, α ~ N(0, 1)). The references are independent of the
model code: closed forms with the regularised incomplete gamma function Q(a, x) = gammaincc
where they exist, otherwise SciPy quadrature in α with the μ integral done in closed form,

    ∫_0^U Pois(n | μ s + c) dμ = [Q(n + 1, c) − Q(n + 1, U s + c)] / s,

(more accurate than dblquad) or, for two channels, a fine 2-D numerical integration.

All models are tiny and share their layouts (fixed POI bounds), so the whole file compiles the
core a handful of times.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import integrate, optimize, stats
from scipy.special import gammaincc, gammainccinv, gammaln

import jaxlike
from jaxlike.bayes import bayesian_upper_limit, bayesian_upper_limits
from jaxlike.exceptions import (
    InvalidBayesConfig,
    InvalidData,
    InvalidParameters,
    InvalidWorkspace,
    PosteriorRangeError,
)
from jaxlike.model import build_model
from jaxlike.workspace import counting_workspace

BOUNDS = (0.0, 50.0)  # one POI range for all models: equal layouts share compilations
CL = 0.95


def _model(channels, bounds=BOUNDS):
    ws = jaxlike.Workspace(counting_workspace(channels, poi_bounds=bounds))
    model = ws.model()
    return model, ws.data(model)


def _brent(cdf, cl, hi):
    return optimize.brentq(lambda u: cdf(u) - cl, 1e-12, hi, xtol=1e-13, rtol=1e-13)


# -- references ----------------------------------------------------------------------------------
def exact_limit(n, s, b, cl, a_shift=1.0):
    """No background uncertainty. Posterior ∝ π(μ) λ^n e^{−λ}, λ = μs + b: uniform gives
    a = n + 1, Jeffreys (π ∝ λ^{−1/2}) a = n + ½, and Q(a, U s + b) = (1 − cl) Q(a, b)."""
    a = n + a_shift
    return (gammainccinv(a, (1.0 - cl) * gammaincc(a, b)) - b) / s


def smeared_limit(n, s, b, delta, cl):
    """Uniform prior, Gaussian background uncertainty δ (α within its bounds [−5, 5])."""
    phi = stats.norm.pdf

    def mass(u):
        def f(a):
            c = b + delta * a
            return phi(a) * (gammaincc(n + 1, c) - gammaincc(n + 1, u * s + c))

        return integrate.quad(f, -5.0, 5.0, epsabs=1e-14, epsrel=1e-10, limit=200)[0]

    total = integrate.quad(
        lambda a: phi(a) * gammaincc(n + 1, b + delta * a), -5.0, 5.0, epsabs=1e-14, epsrel=1e-10
    )[0]
    return _brent(lambda u: mass(u) / total, cl, 100.0)


def product_limit(chans, cl):
    """Uniform prior, uncorrelated background uncertainties: the marginal likelihood factorises,
    m(μ) = Π_c ∫ φ(α) Pois(n_c | μ s_c + b_c + δ_c α) dα. A fine 2-D numerical integration:
    200-point Gauss–Legendre in each α on [−5, 5], Simpson on 6001 points in μ ∈ [0, 30]."""
    x, w = np.polynomial.legendre.leggauss(200)
    alpha, w = 5.0 * x, 5.0 * w * stats.norm.pdf(5.0 * x)
    mus = np.linspace(0.0, 30.0, 6001)[:, None]
    dens = np.ones(mus.shape[0])
    for ch in chans:
        n, s, b, d = ch["observed"], ch["signal"], ch["background"], ch["background_uncertainty"]
        lam = mus * s + b + d * alpha
        dens = dens * (np.exp(n * np.log(lam) - lam - gammaln(n + 1.0)) @ w)
    cum = integrate.cumulative_simpson(dens, x=mus[:, 0], initial=0.0)
    return float(np.interp(cl * cum[-1], cum, mus[:, 0]))


# -- (1) no uncertainty, uniform prior: closed form ----------------------------------------------
@pytest.mark.parametrize("method", ["laplace", "quadrature"])
@pytest.mark.parametrize("n,s,b", [(3, 2.5, 1.2), (0, 1.0, 0.5), (12, 0.8, 9.0)])
def test_counting_uniform_exact(method, n, s, b):
    model, data = _model([{"name": "sr", "observed": n, "signal": s, "background": b}])
    res = bayesian_upper_limit(model, data, cl=CL, method=method)
    ref = exact_limit(n, s, b, CL)
    assert bool(res.converged)
    # measured: relative deviation 3e-7 … 4.6e-6, both methods (exact: no nuisance)
    np.testing.assert_allclose(float(res.upper_limit), ref, rtol=1e-4)
    # the result is self-consistent: normalised density, CDF reaching cl at the limit
    np.testing.assert_allclose(np.trapezoid(res.posterior, res.poi_grid), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.interp(res.upper_limit, res.poi_grid, res.cdf), CL, atol=1e-6)
    assert float(res.tail_mass) < 1e-6
    # log evidence = log ∫ π m with π = 1/μ_max: m integrates in closed form (Q(n+1, b)/s ...)
    u = float(res.poi_max)
    exact_ev = (gammaincc(n + 1, b) - gammaincc(n + 1, u * s + b)) / s / u
    np.testing.assert_allclose(float(res.log_evidence), np.log(exact_ev), atol=1e-5)


def test_explicit_poi_max_truncates_prior():
    """π flat on [0, μ_max]: Q(a, U s + b) = Q(a, b) − cl [Q(a, b) − Q(a, μ_max s + b)]."""
    n, s, b, top = 3, 2.5, 1.2, 2.0
    model, data = _model([{"name": "sr", "observed": n, "signal": s, "background": b}])
    res = bayesian_upper_limit(model, data, cl=CL, poi_max=top)
    a = n + 1.0
    q = gammaincc(a, b) - CL * (gammaincc(a, b) - gammaincc(a, top * s + b))
    ref = (gammainccinv(a, q) - b) / s
    assert bool(res.converged) and float(res.poi_max) == top
    np.testing.assert_allclose(float(res.upper_limit), ref, rtol=1e-5)


def test_counting_workspace_yields():
    """ν = μ s (1 + r α_s) + b + δ α_b per channel; the signal uncertainty is shared."""
    spec = counting_workspace(
        [
            {
                "name": "a",
                "observed": 1,
                "signal": 2.0,
                "background": 1.0,
                "background_uncertainty": 0.5,
                "signal_uncertainty": 0.1,
            },
            {
                "name": "b",
                "observed": 0,
                "signal": 1.0,
                "background": 3.0,
                "signal_uncertainty": 0.2,
            },
        ]  # fmt: skip
    )
    model = jaxlike.Workspace(spec).model()
    cfg = model.config
    assert cfg.poi_name == "mu"
    assert set(cfg.par_order) == {"mu", "a_bkg_uncertainty", "signal_uncertainty"}
    pars = np.zeros(cfg.npars)
    for name, value in [("mu", 1.5), ("a_bkg_uncertainty", -0.8), ("signal_uncertainty", 1.7)]:
        pars[cfg.par_index(name)] = value
    expect = [1.5 * 2.0 * (1 + 0.1 * 1.7) + 1.0 - 0.8 * 0.5, 1.5 * 1.0 * (1 + 0.2 * 1.7) + 3.0]
    np.testing.assert_allclose(np.asarray(model.expected_actualdata(pars)), expect, rtol=1e-12)


# -- (2) Gaussian background uncertainty ---------------------------------------------------------
def test_counting_background_uncertainty():
    n, s, b, delta = 4, 1.5, 2.0, 0.35
    model, data = _model(
        [
            {
                "name": "sr",
                "observed": n,
                "signal": s,
                "background": b,
                "background_uncertainty": delta,
            }
        ]  # fmt: skip
    )
    ref = smeared_limit(n, s, b, delta, CL)
    quad = bayesian_upper_limit(model, data, cl=CL, method="quadrature")
    lap = bayesian_upper_limit(model, data, cl=CL, method="laplace")
    assert bool(quad.converged) and bool(lap.converged)
    # measured: quadrature −1.9e-6 relative, Laplace −4.8e-5 relative (ref U = 4.8563)
    np.testing.assert_allclose(float(quad.upper_limit), ref, rtol=1e-4)
    np.testing.assert_allclose(float(lap.upper_limit), ref, rtol=2e-3)
    # the uncertainty widens the posterior: the limit is above the δ = 0 limit
    assert float(quad.upper_limit) > exact_limit(n, s, b, CL)


# -- (3) Jeffreys prior --------------------------------------------------------------------------
def test_jeffreys_prior():
    n, s, b = 3, 2.5, 1.2
    model, data = _model([{"name": "sr", "observed": n, "signal": s, "background": b}])
    jef = bayesian_upper_limit(model, data, cl=CL, prior="jeffreys")
    uni = bayesian_upper_limit(model, data, cl=CL, prior="uniform")
    assert float(jef.upper_limit) < float(uni.upper_limit)
    # π ∝ 1/sqrt(μ s + b): the log prior at the nodes is −½ log(μ s + b) + const
    lp = np.asarray(jef.log_prior)
    expect = -0.5 * np.log(np.asarray(jef.poi_nodes) * s + b)
    np.testing.assert_allclose(lp - lp[0], expect - expect[0], atol=1e-10)
    # closed form (a = n + ½) and an independent 1-D numerical integration
    ref = exact_limit(n, s, b, CL, a_shift=0.5)
    post = lambda mu: stats.poisson.pmf(n, mu * s + b) / np.sqrt(mu * s + b)  # noqa: E731
    total = integrate.quad(post, 0.0, np.inf, epsabs=0, epsrel=1e-12)[0]
    ref_num = _brent(lambda u: integrate.quad(post, 0.0, u, epsrel=1e-12)[0] / total, CL, 40.0)
    np.testing.assert_allclose(ref_num, ref, rtol=1e-8)
    # measured: 1.2e-6 relative
    np.testing.assert_allclose(float(jef.upper_limit), ref, rtol=1e-4)


# -- (4) combination of channels -----------------------------------------------------------------
COMBO = [
    {"name": "dark_higgs", "observed": 2, "signal": 1.8, "background": 1.5,
     "background_uncertainty": 0.3},
    {"name": "idm", "observed": 5, "signal": 0.9, "background": 3.2,
     "background_uncertainty": 0.6},
]  # fmt: skip


def test_combination_two_channels():
    model, data = _model(COMBO)
    ref = product_limit(COMBO, CL)
    quad = bayesian_upper_limit(model, data, cl=CL, method="quadrature")
    lap = bayesian_upper_limit(model, data, cl=CL, method="laplace")
    assert bool(quad.converged) and bool(lap.converged)
    # measured: quadrature −1.4e-6 relative, Laplace −3.0e-4 relative (ref U = 2.8400)
    np.testing.assert_allclose(float(quad.upper_limit), ref, rtol=1e-4)
    np.testing.assert_allclose(float(lap.upper_limit), ref, rtol=2e-3)
    # the combination is tighter than either channel alone
    for ch in COMBO:
        single, d1 = _model([ch])
        alone = bayesian_upper_limit(single, d1, cl=CL, method="quadrature")
        assert float(quad.upper_limit) < float(alone.upper_limit)
    # two one-channel workspaces combined with Workspace.combine give the same likelihood
    ws = [jaxlike.Workspace(counting_workspace([c], poi_bounds=BOUNDS)) for c in COMBO]
    combined = jaxlike.Workspace.combine(ws[0], ws[1], join="outer")
    m2 = combined.model()
    res2 = bayesian_upper_limit(m2, combined.data(m2), cl=CL, method="quadrature")
    np.testing.assert_allclose(float(res2.upper_limit), float(quad.upper_limit), rtol=1e-10)


# -- (5) batched over hypotheses -----------------------------------------------------------------
def test_vmap_over_hypotheses():
    hyps = [
        {"name": "sr", "observed": 4, "signal": 1.5, "background": 2.0,
         "background_uncertainty": 0.35},
        {"name": "sr", "observed": 1, "signal": 0.7, "background": 2.4,
         "background_uncertainty": 0.2},
        {"name": "sr", "observed": 9, "signal": 3.0, "background": 4.0,
         "background_uncertainty": 0.5},
    ]  # fmt: skip
    built = [_model([h]) for h in hyps]
    stacked = jaxlike.stack_models([m for m, _ in built])
    data = np.stack([d for _, d in built])
    single = [bayesian_upper_limit(m, d, cl=CL) for m, d in built]
    batch = bayesian_upper_limits(stacked, data, cl=CL, chunk_size=2)  # chunks of 2, padded
    assert batch.upper_limit.shape == (3,) and bool(np.all(batch.converged))
    for i, r in enumerate(single):
        np.testing.assert_allclose(float(batch.upper_limit[i]), float(r.upper_limit), rtol=1e-9)
        np.testing.assert_allclose(batch.posterior[i], r.posterior, rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose(float(batch.log_evidence[i]), float(r.log_evidence), rtol=1e-9)
    # the public function itself is a pure traced function: jax.vmap works on it directly
    vm = jax.vmap(lambda m, d: bayesian_upper_limit(m, d, cl=CL).upper_limit)(stacked, data)
    np.testing.assert_allclose(np.asarray(vm), [float(r.upper_limit) for r in single], rtol=1e-9)


# -- (6) bad input -------------------------------------------------------------------------------
def test_bad_inputs():
    ch = {"name": "sr", "observed": 3, "signal": 2.5, "background": 1.2}
    model, data = _model([ch])
    for cl in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(InvalidBayesConfig, match="cl must be"):
            bayesian_upper_limit(model, data, cl=cl)
    with pytest.raises(InvalidBayesConfig, match="unknown prior"):
        bayesian_upper_limit(model, data, prior="flat")
    with pytest.raises(InvalidBayesConfig, match="unknown method"):
        bayesian_upper_limit(model, data, method="mcmc")
    with pytest.raises(InvalidBayesConfig, match="poi_max"):
        bayesian_upper_limit(model, data, poi_max=-1.0)
    bad = np.array(data, dtype=float)
    bad[0] = -1.0
    with pytest.raises(InvalidData, match="non-negative"):
        bayesian_upper_limit(model, bad)
    with pytest.raises(InvalidData, match="entries"):
        bayesian_upper_limit(model, np.zeros(3))
    spec = counting_workspace([dict(ch, background_uncertainty=0.3)], poi_bounds=BOUNDS)
    no_poi = build_model(spec["channels"], poi_name=None)
    with pytest.raises(InvalidParameters, match="no parameter of interest"):
        bayesian_upper_limit(no_poi, np.array([3.0, 0.0]))
    # quadrature: at most 3 Gaussian-constrained nuisances
    many = [dict(ch, name=f"c{i}", background_uncertainty=0.2) for i in range(4)]
    m4, d4 = _model(many)
    with pytest.raises(InvalidBayesConfig, match="at most 3"):
        bayesian_upper_limit(m4, d4, method="quadrature")
    # the default range is capped at the POI upper bound: a posterior beyond it is an error
    big, dbig = _model([dict(ch, observed=300, signal=1.0)])
    with pytest.raises(PosteriorRangeError, match="poi_max"):
        bayesian_upper_limit(big, dbig)
    # counting workspaces: clear errors naming the field
    for key, value in [("observed", -1), ("background", 0.0), ("signal", "x")]:
        with pytest.raises(InvalidWorkspace, match=rf"channels\[0\]\.{key}"):
            counting_workspace([dict(ch, **{key: value})])
    with pytest.raises(InvalidWorkspace, match="missing 'background'"):
        counting_workspace([{"name": "sr", "observed": 1, "signal": 1.0}])
    with pytest.raises(InvalidWorkspace, match="duplicated"):
        counting_workspace([ch, ch])
