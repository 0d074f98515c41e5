"""A new model kind is a subclass of the likelihood contract, and nothing else.

``OnOff`` below is a complete user model (on/off counting with a signal-efficiency nuisance):

    n_on ~ Pois(μ s (1 + δ θ) + b),   n_off ~ Pois(τ b),   a ~ N(θ, 1).

It implements the five abstract methods of :class:`jaxlike.model.Likelihood` and declares its
constraint term; with that it runs through fit, hypotest, upper_limit, a streamed scan and
NUTS. The reference is the same likelihood written as a pyhf-JSON HistFactory workspace
(a histosys with symmetric ±δ variations is exactly linear for |θ| ≤ 1 and linearly
extrapolated beyond, so ν agrees everywhere): the contract's autodiff Hessian and the closed
form of :class:`jaxlike.Model` must give the same numbers, and NUTS must reproduce the
posterior computed by direct numerical integration on a grid.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import gammaln

import jaxlike
from jaxlike.bayes import sample_posterior
from jaxlike.model import (
    ConstraintTerm,
    Likelihood,
    LikelihoodConfig,
    normal_logpdf,
    poisson_logpdf,
)
from jaxlike.stream import run_scan

S, TAU, DELTA = 5.0, 2.0, 0.1
N_ON, N_OFF = 12.0, 16.0
BOUNDS = np.array([[0.0, 20.0], [1e-6, 200.0], [-5.0, 5.0]])


class OnOffConfig(LikelihoodConfig):
    """Parameters (μ, b, θ_eff); data (n_on, n_off, a)."""

    def __init__(self):
        self.par_names = ["mu", "b", "theta_eff"]
        self.npars = 3
        self.poi_index, self.poi_name = 0, "mu"
        self.nmaindata, self.nauxdata = 2, 1

    def suggested_init(self):
        return np.array([1.0, 10.0, 0.0])

    def suggested_bounds(self):
        return BOUNDS.copy()


class OnOff(Likelihood):
    """On/off counting: n_on ~ Pois(μ s (1 + δ θ) + b), n_off ~ Pois(τ b), a ~ N(θ, 1)."""

    s: jax.Array
    tau: jax.Array
    delta: jax.Array

    @property
    def config(self):
        return OnOffConfig()

    def expected_actualdata(self, pars):
        mu, b, theta = pars[0], pars[1], pars[2]
        return jnp.stack([mu * self.s * (1.0 + self.delta * theta) + b, self.tau * b])

    def expected_auxdata(self, pars):
        return jnp.asarray(pars)[2:3]

    def auxdata(self):
        return jnp.zeros((1,))

    def logpdf(self, pars, data):
        pars, data = jnp.asarray(pars), jnp.asarray(data)
        main = jnp.sum(poisson_logpdf(data[:2], self.expected_actualdata(pars)))
        return main + jnp.sum(normal_logpdf(data[2:], pars[2:3], 1.0))

    def constraint_terms(self):
        return (ConstraintTerm("normal", np.array([2]), np.array([0]), jnp.ones((1,))),)


def on_off(s=S):
    return OnOff(s=jnp.asarray(s, float), tau=jnp.asarray(TAU), delta=jnp.asarray(DELTA))


def histfactory(s=S):
    """The same likelihood as a pyhf-JSON workspace (channels sort as a_on, b_off)."""
    sig = {
        "name": "sig",
        "data": [s],
        "modifiers": [
            {"name": "mu", "type": "normfactor", "data": None},
            {
                "name": "theta_eff",
                "type": "histosys",
                "data": {"hi_data": [s * (1 + DELTA)], "lo_data": [s * (1 - DELTA)]},
            },
        ],
    }
    bkg = {"name": "bkg", "modifiers": [{"name": "b", "type": "normfactor", "data": None}]}
    spec = {
        "version": "1.0.0",
        "channels": [
            {"name": "a_on", "samples": [sig, {**bkg, "data": [1.0]}]},
            {"name": "b_off", "samples": [{**bkg, "data": [TAU]}]},
        ],
        "observations": [{"name": "a_on", "data": [N_ON]}, {"name": "b_off", "data": [N_OFF]}],
        "measurements": [
            {
                "name": "m",
                "config": {
                    "poi": "mu",
                    "parameters": [
                        {"name": "mu", "bounds": [list(BOUNDS[0])], "inits": [1.0]},
                        {"name": "b", "bounds": [list(BOUNDS[1])], "inits": [10.0]},
                    ],
                },
            }
        ],
    }
    ws = jaxlike.Workspace(spec)
    model = ws.model()
    return model, ws.data(model)


DATA = jnp.array([N_ON, N_OFF, 0.0])


@pytest.fixture(scope="module")
def pair():
    model, data = histfactory()
    assert model.config.par_names == histfactory_names()
    return on_off(), model, data


def _to_hf(x):
    """(μ, b, θ) → the HistFactory model's parameter order (pyhf's: constrained first)."""
    hf_names = histfactory_names()
    perm = [OnOffConfig().par_names.index(n) for n in hf_names]
    return np.asarray(x)[..., perm]


def histfactory_names():
    return ["theta_eff", "b", "mu"]


def test_the_example_is_only_a_subclass():
    assert issubclass(OnOff, Likelihood) and isinstance(on_off(), eqx.Module)
    assert isinstance(on_off().config, LikelihoodConfig)
    own = {k for k in vars(OnOff) if not k.startswith("_")}
    assert own <= {
        "s", "tau", "delta", "config", "expected_actualdata", "expected_auxdata", "auxdata",
        "logpdf", "constraint_terms",
    }  # fmt: skip
    with pytest.raises(TypeError):  # the abstract methods are required

        class Partial(Likelihood):
            config: LikelihoodConfig

        Partial(config=OnOffConfig())


def test_same_likelihood_everywhere(pair):
    ex, hf, data = pair
    np.testing.assert_array_equal(np.asarray(data), np.asarray(DATA))
    rng = np.random.default_rng(1)
    pts = np.column_stack(
        [rng.uniform(0, 8, 40), rng.uniform(0.5, 30, 40), rng.uniform(-4.5, 4.5, 40)]
    )
    for x in pts:
        a, b = ex.logpdf(x, DATA), hf.logpdf(_to_hf(x), data)
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-12)
    # the default (autodiff) value/gradient/Hessian equals the model's closed form
    x = pts[3]
    v1, g1, h1 = ex.value_grad_hess(x, DATA)
    v2, g2, h2 = hf.value_grad_hess(_to_hf(x), data)
    np.testing.assert_allclose(v1, v2, rtol=1e-13)
    np.testing.assert_allclose(_to_hf(g1), g2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_to_hf(_to_hf(np.asarray(h1)).T).T, h2, rtol=1e-10, atol=1e-12)
    assert ex.constraint_kinds() == (None, None, "normal")
    np.testing.assert_array_equal(ex.fixed_mask(), [False] * 3)
    assert ex.breakpoints() is None and ex.probe_mask() is None and ex.batch_shape() == ()


def test_fit_matches_the_closed_form_model(pair):
    ex, hf, data = pair
    r1, r2 = jaxlike.fit(ex, DATA), jaxlike.fit(hf, data)
    assert int(r1.status) == 0 and int(r2.status) == 0  # both certified
    np.testing.assert_allclose(r1.twice_nll, r2.twice_nll, rtol=0, atol=1e-9)
    np.testing.assert_allclose(_to_hf(r1.bestfit), r2.bestfit, rtol=1e-6, atol=1e-7)
    # the analytic MLE: b̂ = n_off/τ, μ̂ s = n_on − b̂, θ̂ = 0
    np.testing.assert_allclose(r1.bestfit, [(N_ON - N_OFF / TAU) / S, N_OFF / TAU, 0.0], atol=1e-7)
    np.testing.assert_allclose(_to_hf(np.sqrt(np.diag(r1.covariance))), r2.uncertainties, rtol=1e-6)


def test_hypotest_and_upper_limit_match(pair):
    ex, hf, data = pair
    for mu in (1.0, 3.0):
        a, b = jaxlike.hypotest(mu, DATA, ex), jaxlike.hypotest(mu, data, hf)
        assert bool(a.converged) and bool(b.converged)
        np.testing.assert_allclose(a.cls_obs, b.cls_obs, rtol=1e-7)
        np.testing.assert_allclose(a.cls_exp, b.cls_exp, rtol=1e-7)
    la, lb = jaxlike.upper_limit(DATA, ex), jaxlike.upper_limit(data, hf)
    assert bool(la.converged) and bool(lb.converged)
    np.testing.assert_allclose(la.obs, lb.obs, rtol=1e-5)
    np.testing.assert_allclose(la.exp, lb.exp, rtol=1e-5)
    assert 1.0 < float(la.obs) < 10.0


def test_streamed_scan_over_hypotheses(pair, tmp_path):
    """A scan of the example over its signal yield s (one vmapped, compiled hypothesis test per
    chunk, streamed to HDF5) equals the point-by-point tests of the HistFactory equivalents."""
    s_values = np.array([2.0, 5.0, 9.0])

    def one(h):
        r = jaxlike.hypotest(3.0, DATA, on_off(h["s"]))
        return {"cls": r.cls_obs, "cls_exp": r.cls_exp, "converged": r.converged}

    out = run_scan(
        jax.vmap(one), {"s": s_values}, store=str(tmp_path / "scan.h5"), chunk_size=2,
        progress=False, config={"example": "on_off"},
    )  # fmt: skip
    assert np.all(out["converged"])
    for i, s in enumerate(s_values):
        model, data = histfactory(float(s))
        ref = jaxlike.hypotest(3.0, data, model)
        np.testing.assert_allclose(out["cls"][i], ref.cls_obs, rtol=1e-7)
        np.testing.assert_allclose(out["cls_exp"][i], ref.cls_exp, rtol=1e-7)
    # more signal per unit μ: μ = 3 is excluded more strongly
    assert np.all(np.diff(out["cls"]) < 0)


def _grid_posterior_mu():
    """p(μ | data) ∝ ∫∫ L(μ, b, θ) db dθ with flat priors on μ ∈ [0, 20], b ∈ [0, 200] and
    the N(θ | 0, 1) constraint (θ ∈ [−5, 5]), by direct summation on a fine grid."""
    mu = np.linspace(0.0, 8.0, 801)
    b = np.linspace(0.5, 25.0, 981)
    th = np.linspace(-5.0, 5.0, 201)
    M, B, T = np.meshgrid(mu, b, th, indexing="ij", sparse=True)
    nu_on = M * S * (1 + DELTA * T) + B
    nu_off = TAU * B
    logl = (
        N_ON * np.log(nu_on) - nu_on - gammaln(N_ON + 1)
        + N_OFF * np.log(nu_off) - nu_off - gammaln(N_OFF + 1)
        - 0.5 * T**2
    )  # fmt: skip
    w = np.exp(logl - logl.max()).sum(axis=(1, 2))
    return mu, w / np.trapezoid(w, mu)


def test_nuts_reproduces_the_integrated_posterior():
    post = sample_posterior(
        on_off(), DATA, num_chains=2, num_warmup=300, num_samples=1500, seed=3,
        chain_method="sequential",
    )  # fmt: skip
    mu_s = np.asarray(post.samples)[..., 0].reshape(-1)
    assert float(post.rhat[0]) < 1.01 and int(np.sum(post.divergences)) == 0
    mu, pdf = _grid_posterior_mu()
    cdf = np.cumsum(pdf) * (mu[1] - mu[0])
    mean = np.trapezoid(mu * pdf, mu)
    q90 = np.interp(0.9, cdf, mu)
    ess = float(post.ess[0])
    se = np.std(mu_s) / np.sqrt(ess)
    assert abs(np.mean(mu_s) - mean) < 4 * se, (np.mean(mu_s), mean, se)
    # the 90% quantile within 4 MC errors (binomial error of the tail fraction, mapped by pdf)
    tail = np.mean(mu_s > q90)
    assert abs(tail - 0.1) < 4 * np.sqrt(0.09 / ess), tail
