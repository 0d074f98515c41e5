"""Bayesian inference on any jaxlike model: NUTS posteriors, HDIs, modes and credible limits.

The posterior of the parameters θ given the data (observations n and auxiliary data a) is

.. math::

    \\log p(\\theta \\mid n, a) =
        \\underbrace{\\sum_b \\log\\mathrm{Pois}(n_b \\mid \\nu_b(\\theta))
        + \\sum_{k\\,\\text{constr.}} \\log c_k(a_k \\mid \\theta_k)}_{\\texttt{model.logpdf}}
        + \\sum_{j\\,\\text{free}} \\log \\pi_j(\\theta_j) + \\text{const},

the same ``model.logpdf`` the fits and toys use (one likelihood, three uses). The constraint
terms c_k are the priors of the constrained parameters:

- Gaussian constraints N(a | θ, σ) (normsys, histosys, lumi, staterror) act as a normal prior
  N(θ; a, σ) — truncated to the parameter bounds, since θ is sampled within them;
- Poisson-constrained shapesys Pois(a | γτ) = (γτ)^a e^{−γτ} / Γ(a+1), read as a function of γ,
  is ∝ Gamma(γ; shape a+1, rate τ): the posterior of the auxiliary measurement a under a flat
  prior on γ > 0. (Its mean is (a+1)/τ, not a/τ = 1; the mode is a/τ = 1.) This is the
  choice HistFactory's Bayesian tools make and it is used here unchanged.

Free (unconstrained) parameters get a prior from :mod:`jaxlike.bayes._priors`, keyed by name:
:class:`Uniform` (default, within the model bounds), :class:`TruncatedNormal`,
:class:`LogUniform`, :class:`UniformInSquare` or any scalar NumPyro distribution.

:func:`sample_posterior` runs NumPyro's NUTS on the flat vector of non-fixed parameters,
mapped to an unconstrained space, and returns a :class:`Posterior` (samples, R̂/ESS,
divergences, HDI/mode/upper limits, HDF5 and ArviZ export).

:func:`bayesian_upper_limit` gives credible upper limits on the POI of a search (uniform or
Jeffreys prior, nuisances marginalised by a Laplace approximation or Gauss–Hermite quadrature,
vmappable over the hypotheses of a scan); :func:`jaxlike.workspace.counting_workspace` writes
counting experiments, several channels multiplying their likelihoods.

The configured posterior analysis (config file → NUTS → summary, HDF5 and corner plots) is an
application of this package: :mod:`jaxlike.jobs.posterior` (``jaxlike posterior CONFIG``).
"""

from ._limits import (
    BayesianLimitResult,
    bayesian_upper_limit,
    bayesian_upper_limits,
    credible_upper_limits,
)
from ._nuts import free_parameter_mask, log_posterior, sample_posterior
from ._onoff import onoff_upper_limit
from ._posterior import Posterior, batch_mcse, hdi, joint_mode, kde_mode
from ._priors import (
    PRIOR_KINDS,
    Flat,
    Jeffreys,
    LogUniform,
    PoiPrior,
    Prior,
    TruncatedNormal,
    Uniform,
    UniformInSquare,
    as_prior,
)

__all__ = [
    "BayesianLimitResult",
    "bayesian_upper_limit",
    "bayesian_upper_limits",
    "credible_upper_limits",
    "onoff_upper_limit",
    "PRIOR_KINDS",
    "as_prior",
    "Flat",
    "Jeffreys",
    "LogUniform",
    "PoiPrior",
    "Posterior",
    "Prior",
    "TruncatedNormal",
    "Uniform",
    "UniformInSquare",
    "free_parameter_mask",
    "batch_mcse",
    "hdi",
    "joint_mode",
    "kde_mode",
    "log_posterior",
    "sample_posterior",
]
