"""NUTS posteriors (jaxlike.bayes) against numerical integration on one-bin toy models.

Reference: the marginal posterior of μ, p(μ | n) ∝ ∫ L(μ, α | n, a) π(μ) dα, integrated with
scipy on a (μ, α) grid from the same ``model.logpdf``; HDIs and quantiles read off its CDF.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import cumulative_trapezoid, simpson

import jaxlike
from jaxlike.bayes import (
    LogUniform,
    Posterior,
    TruncatedNormal,
    Uniform,
    UniformInSquare,
    hdi,
    kde_mode,
    sample_posterior,
)
from jaxlike.exceptions import InvalidParameters


def _toy(sig, bkg, obs, normsys=0.05):
    """One bin: signal × μ (normfactor, bounds [0, 10]) + background with a normsys α."""
    spec = {
        "channels": [
            {
                "name": "c",
                "samples": [
                    {"name": "s", "data": [sig], "modifiers": [
                        {"name": "mu", "type": "normfactor", "data": None}]},
                    {"name": "b", "data": [bkg], "modifiers": [
                        {"name": "alpha", "type": "normsys",
                         "data": {"hi": 1 + normsys, "lo": 1 - normsys}}]},
                ],
            }
        ],
        "observations": [{"name": "c", "data": [obs]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }  # fmt: skip
    ws = jaxlike.Workspace(spec)
    model = ws.model()
    return model, jnp.asarray(ws.data(model))


#: narrow posterior (σ_μ/μ ≈ 5%, half of it from α) for the 2% interval checks
PRECISE = (1000.0, 500.0, 1550.0)
#: wide posterior (σ_μ ≈ 0.14) where priors on μ visibly move it
WIDE = (100.0, 50.0, 160.0)


@functools.cache
def _toy_cached(args):
    return _toy(*args)


@eqx.filter_jit
def _grid_logpdf(model, data, mus, alphas):
    f = lambda m, a: model.logpdf(jnp.stack([m, a]), data)  # noqa: E731
    return jax.vmap(lambda m: jax.vmap(lambda a: f(m, a))(alphas))(mus)


def _reference(model, data, mu_lo, mu_hi, log_prior=None, n_mu=2001, n_alpha=801):
    """Marginal posterior density of μ on a grid: ∫ exp(log L) dα over the α bounds [−5, 5]."""
    mus = np.linspace(mu_lo, mu_hi, n_mu)
    alphas = np.linspace(-5.0, 5.0, n_alpha)
    logl = np.asarray(_grid_logpdf(model, data, jnp.asarray(mus), jnp.asarray(alphas)))
    if log_prior is not None:
        logl = logl + log_prior(mus)[:, None]
    dens = simpson(np.exp(logl - logl.max()), x=alphas, axis=1)
    dens /= simpson(dens, x=mus)
    return mus, dens


def _ref_quantile(mus, dens, q):
    cdf = cumulative_trapezoid(dens, mus, initial=0.0)
    return float(np.interp(q, cdf / cdf[-1], mus))


def _ref_hdi(mus, dens, prob):
    """{μ : p(μ) ≥ c} with mass ``prob`` (unimodal density), endpoints interpolated."""
    dx = mus[1] - mus[0]
    order = np.sort(dens)[::-1]
    mass = np.cumsum(order) * dx
    c = order[np.searchsorted(mass, prob)]
    above = np.flatnonzero(dens >= c)
    i, j = above[0], above[-1]
    lo = np.interp(c, [dens[i - 1], dens[i]], [mus[i - 1], mus[i]])
    hi = np.interp(c, [dens[j + 1], dens[j]], [mus[j + 1], mus[j]])
    return float(lo), float(hi)


def _ref_mean(mus, dens):
    return float(simpson(mus * dens, x=mus))


@pytest.fixture(scope="module")
def precise():
    model, data = _toy_cached(PRECISE)
    post = sample_posterior(model, data, num_chains=4, num_warmup=300, num_samples=2500, seed=1)
    return model, data, post


def test_hdi_and_upper_limit_match_numerical_integration(precise):
    model, data, post = precise
    mus, dens = _reference(model, data, 0.75, 1.35)
    assert _ref_quantile(mus, dens, 1e-6) > mus[0] and _ref_quantile(mus, dens, 1 - 1e-6) < mus[-1]
    for prob in (0.68, 0.95):
        got, ref = post.hdi("mu", prob), _ref_hdi(mus, dens, prob)
        np.testing.assert_allclose(got, ref, rtol=0.02, err_msg=f"HDI {prob}")
    np.testing.assert_allclose(
        post.upper_limit("mu", 0.95), _ref_quantile(mus, dens, 0.95), rtol=0.02
    )
    # the nuisance matters: the α-fixed posterior is ~15% narrower than the marginal
    fixed = np.asarray(_grid_logpdf(model, data, jnp.asarray(mus), jnp.zeros(1)))[:, 0]
    p_fixed = np.exp(fixed - fixed.max())
    w_fixed = np.diff(_ref_hdi(mus, p_fixed / simpson(p_fixed, x=mus), 0.68))[0]
    assert w_fixed < 0.9 * np.diff(post.hdi("mu", 0.68))[0]
    assert post.mode("mu") == pytest.approx(mus[np.argmax(dens)], rel=0.02)


def test_diagnostics(precise):
    _, _, post = precise
    assert post.samples.shape == (4, 2500, 2)
    assert post.par_names == ("mu", "alpha")
    assert np.all(post.rhat < 1.01)
    assert np.all(post.ess > 1000)
    assert post.divergences.sum() == 0
    assert np.all((post.accept_prob > 0.6) & (post.accept_prob <= 1.0))
    assert np.all(post.step_size > 0) and post.wall_time > 0
    s = post.summary()
    assert set(s["mu"]) == {"mean", "sd", "hdi68", "hdi95", "rhat", "ess"}
    assert s["alpha"]["mean"] == pytest.approx(0.0, abs=0.1)
    assert s["alpha"]["sd"] == pytest.approx(1.0, abs=0.1)  # PRECISE barely constrains α
    assert "mu" in post.format_summary()


def test_hdf5_round_trip(precise, tmp_path):
    _, _, post = precise
    path = tmp_path / "post.h5"
    post.to_hdf5(path)
    back = Posterior.from_hdf5(path)
    assert back == post
    np.testing.assert_array_equal(back.get("mu"), post.get("mu"))
    assert back.settings["priors"] == post.settings["priors"]
    assert [p.name for p in tmp_path.iterdir()] == ["post.h5"]  # no temporary left behind


def test_mirrored_is_symmetric(precise):
    _, _, post = precise
    mirr = post.mirrored(["mu"], seed=3)
    x = mirr.pooled("mu")
    assert abs(np.mean(x < 0) - 0.5) < 0.02
    np.testing.assert_allclose(np.sort(np.abs(x)), np.sort(post.pooled("mu")))
    assert abs(np.mean(x)) < 0.03 * np.mean(np.abs(x))
    q = np.quantile(x, [0.05, 0.25, 0.75, 0.95])
    np.testing.assert_allclose(q[:2], -q[::-1][:2], rtol=0.03)
    assert mirr.abs_hdi("mu", 0.68) == post.hdi("mu", 0.68)
    assert tuple(mirr.bounds[0]) == (-10.0, 10.0)
    np.testing.assert_array_equal(mirr.get("alpha"), post.get("alpha"))
    with pytest.raises(InvalidParameters, match="alpha"):
        post.mirrored("alpha")


def test_arviz_export(precise):
    _, _, post = precise
    try:
        import arviz  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="arviz"):
            post.to_arviz()
        pytest.importorskip("arviz")
    idata = post.to_arviz()
    np.testing.assert_array_equal(idata.posterior["mu"].values, post.get("mu"))


@pytest.mark.parametrize(
    "prior, log_prior, direction",
    [
        (TruncatedNormal(0.8, 0.1), lambda m: -0.5 * ((m - 0.8) / 0.1) ** 2, -1),
        (UniformInSquare(), lambda m: np.log(m), +1),
    ],
    ids=["truncnormal", "uniform_in_square"],
)
def test_priors_move_the_posterior_as_integrated(prior, log_prior, direction):
    model, data = _toy_cached(WIDE)
    post = sample_posterior(
        model, data, priors={"mu": prior}, num_chains=2, num_warmup=300, num_samples=1500, seed=2
    )
    mus, flat = _reference(model, data, 1e-6, 2.5)
    _, dens = _reference(model, data, 1e-6, 2.5, log_prior=log_prior)
    mean = float(np.mean(post.pooled("mu")))
    assert direction * (mean - _ref_mean(mus, flat)) > 0.01
    assert mean == pytest.approx(_ref_mean(mus, dens), rel=0.01)
    assert post.upper_limit("mu") == pytest.approx(_ref_quantile(mus, dens, 0.95), rel=0.02)
    assert np.all(post.rhat < 1.02)


def test_invalid_priors_name_the_parameter():
    model, data = _toy_cached(WIDE)
    cases = [
        ({"mu": Uniform(-1.0, 5.0)}, "outside the parameter bounds"),
        ({"mu": LogUniform()}, "lower bound > 0"),
        ({"mu": UniformInSquare(low=-1.0)}, "outside"),
        ({"alpha": Uniform()}, "constraint term"),
    ]
    import numpyro.distributions as dist

    cases.append(({"mu": dist.Normal(1.0, 1.0)}, "outside the parameter bounds"))
    for priors, match in cases:
        (name,) = priors
        with pytest.raises(InvalidParameters, match=match) as err:
            sample_posterior(model, data, priors=priors, num_warmup=1, num_samples=1)
        assert repr(name) in str(err.value)
    with pytest.raises(InvalidParameters, match="'nope'"):
        sample_posterior(model, data, priors={"nope": Uniform()}, num_warmup=1, num_samples=1)
    with pytest.raises(InvalidParameters, match="'nope'"):
        sample_posterior(model, data, fixed={"nope": 1.0}, num_warmup=1, num_samples=1)


def test_fixed_parameter_and_numpyro_prior():
    """α fixed at 0 and a numpyro Uniform prior: the posterior of μ is Pois-likelihood × flat."""
    import numpyro.distributions as dist

    model, data = _toy_cached(WIDE)
    post = sample_posterior(
        model,
        data,
        priors={"mu": dist.Uniform(0.0, 3.0)},
        fixed={"alpha": 0.0},
        num_chains=2,
        num_warmup=200,
        num_samples=1000,
        seed=4,
    )
    assert np.all(post.get("alpha") == 0.0) and not post.sampled[1]
    assert tuple(post.bounds[0]) == (0.0, 3.0)
    # ν = 100 μ + 50, n = 160: posterior of λ = 100 μ is Gamma(161, 1) shifted by 50
    assert np.mean(post.pooled("mu")) == pytest.approx((161 - 50) / 100, rel=0.02)


def test_hdi_on_known_distributions():
    rng = np.random.default_rng(0)
    # the location of the shortest interval is flat to first order (width changes only at second
    # order as the window slides), so the endpoints scatter more than the width
    for prob, z in ((0.6827, 1.0), (0.9545, 2.0)):
        lo, hi = hdi(rng.standard_normal(400_000), prob)
        assert hi - lo == pytest.approx(2 * z, rel=0.005)
        assert lo == pytest.approx(-z, abs=0.04) and hi == pytest.approx(z, abs=0.04)
    x = rng.exponential(size=400_000)
    lo, hi = hdi(x, 0.68)
    assert lo == pytest.approx(0.0, abs=1e-3)
    assert hi == pytest.approx(-np.log(1 - 0.68), rel=0.01)
    post = Posterior.from_samples(x.reshape(4, -1, 1), ["rate"], bounds=[[0.0, np.inf]])
    assert post.hdi("rate", 0.95)[1] == pytest.approx(-np.log(0.05), rel=0.01)
    assert post.upper_limit("rate", 0.9) == pytest.approx(-np.log(0.1), rel=0.01)


def test_mode_reflects_at_a_bound():
    rng = np.random.default_rng(1)
    x = rng.exponential(size=20_000)
    assert kde_mode(x, 0.0, np.inf) == pytest.approx(0.0, abs=0.03)
    assert kde_mode(x) > 0.05  # without the reflection the boundary bias shows
    g = rng.normal(3.0, 0.5, size=20_000)
    # far from the bound: no reflection (the KDE mode itself scatters by ~0.1σ at this n)
    assert kde_mode(g, 0.0, np.inf) == pytest.approx(3.0, abs=0.1)
