"""Priors of the free (unconstrained) parameters of a model.

A constrained parameter already carries its prior in the likelihood: its constraint term *is*
its prior (see :mod:`jaxlike.bayes`). The parameters without a constraint term (normfactors,
shapefactors, the signal strength of a window model, Wilson coefficients, ...) get one of the
priors below, keyed by parameter name; the default is :class:`Uniform` within the model bounds.

Every prior is an :class:`equinox.Module` with a ``log_prob(x)`` method. A prior as given may
leave its support open (``low``/``high`` None: the parameter's bounds); :meth:`Prior.resolve`
fills it in against the parameter's bounds [lo, hi] and checks it, giving the same prior with a
*sampling interval* [a, b] ⊆ [lo, hi] (``.support``) on which ``log_prob`` is normalised where
the interval is finite. A prior whose support is not contained in the bounds is an error
(:class:`~jaxlike.exceptions.InvalidParameters`, naming the parameter). The fields of resolved
priors of one class stack into arrays (:func:`stack_priors`), so the NUTS potential evaluates
all parameters with the same kind of prior in one vectorised ``log_prob``.

Users may also give a prior by name or as a dict (configuration files): ``"uniform"`` or
``{"kind": "truncated_normal", "loc": 1.0, "scale": 0.1}`` (:func:`as_prior`, kinds
:data:`PRIOR_KINDS`).

The POI of a credible upper limit (:func:`jaxlike.bayes.bayesian_upper_limit`) has its own
priors, :class:`Flat` and :class:`Jeffreys` (``prior="uniform"``/``"jeffreys"``), whose
``log_prob(mu, fisher_information)`` is unnormalised.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr
from jaxtyping import Array, ArrayLike, Float

from ..exceptions import InvalidBayesConfig, InvalidParameters

__all__ = [
    "Prior",
    "Uniform",
    "TruncatedNormal",
    "LogUniform",
    "UniformInSquare",
    "NumpyroPrior",
    "PRIOR_KINDS",
    "as_prior",
    "resolve_prior",
    "stack_priors",
    "PoiPrior",
    "Flat",
    "Jeffreys",
    "POI_PRIORS",
    "poi_prior",
]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _interval(name, lo, hi, low, high, what):
    """[a, b] = [low or lo, high or hi], checked to lie inside the bounds [lo, hi]."""
    a = lo if low is None else float(low)
    b = hi if high is None else float(high)
    if not (a >= lo and b <= hi):
        raise InvalidParameters(
            f"prior {what} of parameter {name!r} has support [{a}, {b}] outside the parameter "
            f"bounds [{lo}, {hi}]"
        )
    if not a < b:
        raise InvalidParameters(
            f"prior {what} of parameter {name!r} has an empty support [{a}, {b}]"
        )
    return a, b


def _edges(low, high):
    """(finite, a_s, b_s): whether [a, b] is finite, and a, b with placeholders 0, 1 where not."""
    finite = jnp.isfinite(low) & jnp.isfinite(high)
    return finite, jnp.where(finite, low, 0.0), jnp.where(finite, high, 1.0)


class Prior(eqx.Module):
    """Base class of the priors of free parameters.

    ``resolve(name, lo, hi)`` returns the prior with its support [a, b] filled in and checked
    against the parameter's bounds [lo, hi]; ``support`` is (low, high); ``log_prob(x)`` is
    log π(x) of a resolved prior (vectorised: the fields may be arrays of stacked priors).
    """

    @abstractmethod
    def resolve(self, name: str, lo: float, hi: float) -> Prior:
        """This prior for parameter ``name`` with bounds [lo, hi], its support filled in
        (InvalidParameters naming ``name`` if the prior does not fit the bounds)."""

    @abstractmethod
    def log_prob(self, x: Float[ArrayLike, "*n"]) -> Float[Array, "*n"]:
        """log π(x) (normalised on a finite support; resolved priors only)."""

    @property
    def support(self) -> tuple[Any, Any]:
        """(low, high) of the support (None: the parameter bounds, before :meth:`resolve`)."""
        return self.low, self.high


class Uniform(Prior):
    """Flat prior π(θ) = 1/(b − a) on [a, b] (default [a, b] = the model bounds).

    With an infinite bound the prior is improper (π ∝ 1); the posterior is still proper when
    the likelihood falls off.
    """

    low: float | None = None
    high: float | None = None

    def resolve(self, name, lo, hi):
        return Uniform(*_interval(name, lo, hi, self.low, self.high, "Uniform"))

    def log_prob(self, x):
        """−log(b − a) (0 on an infinite support: improper, π ∝ 1)."""
        finite, a_s, b_s = _edges(self.low, self.high)
        return jnp.zeros_like(x) + jnp.where(finite, -jnp.log(b_s - a_s), 0.0)


class TruncatedNormal(Prior):
    """Gaussian N(loc, scale²) truncated to [a, b] (default: the model bounds):

    .. math:: \\log\\pi(\\theta) = \\log\\mathcal N(\\theta\\mid loc, scale)
              - \\log\\big[\\Phi(\\tfrac{b-loc}{scale}) - \\Phi(\\tfrac{a-loc}{scale})\\big].
    """

    loc: float = 0.0
    scale: float = 1.0
    low: float | None = None
    high: float | None = None

    def resolve(self, name, lo, hi):
        if not self.scale > 0:
            raise InvalidParameters(
                f"TruncatedNormal prior of parameter {name!r} needs scale > 0 (got {self.scale})"
            )
        a, b = _interval(name, lo, hi, self.low, self.high, "TruncatedNormal")
        return TruncatedNormal(float(self.loc), float(self.scale), a, b)

    def log_prob(self, x):
        """log N(x | loc, scale) − log[Φ((b − loc)/scale) − Φ((a − loc)/scale)]."""
        loc, scale = self.loc, self.scale
        z = (x - loc) / scale
        mass = ndtr((self.high - loc) / scale) - ndtr((self.low - loc) / scale)
        return -0.5 * z * z - jnp.log(scale) - _HALF_LOG_2PI - jnp.log(mass)


class LogUniform(Prior):
    """Scale-invariant prior π(θ) = 1 / (θ log(b/a)) on [a, b] with a > 0 (flat in log θ)."""

    low: float | None = None
    high: float | None = None

    def resolve(self, name, lo, hi):
        a, b = _interval(name, lo, hi, self.low, self.high, "LogUniform")
        if not a > 0:
            raise InvalidParameters(
                f"LogUniform prior of parameter {name!r} needs a lower bound > 0 (got {a}); "
                f"set LogUniform(low=...) or the parameter bounds"
            )
        return LogUniform(a, b)

    def log_prob(self, x):
        """−log x − log log(b/a) (the normalisation dropped on an infinite support)."""
        finite, a_s, b_s = _edges(self.low, self.high)
        a_pos = jnp.where(finite, a_s, 1.0)
        norm = jnp.where(finite, jnp.log(jnp.log(b_s / a_pos)), 0.0)
        return -jnp.log(x) - norm


class UniformInSquare(Prior):
    """Flat in θ² on [a, b] with a ≥ 0: π(θ) = 2θ / (b² − a²).

    The prior for a Wilson coefficient C that enters the rate only as |C|² ("uniform in C²"):
    sample C on the positive octant [0, hi] with this prior, then use
    :meth:`Posterior.mirrored` for the symmetric marginal of C.
    """

    low: float | None = None
    high: float | None = None

    def resolve(self, name, lo, hi):
        a, b = _interval(name, lo, hi, self.low, self.high, "UniformInSquare")
        if not a >= 0:
            raise InvalidParameters(
                f"UniformInSquare prior of parameter {name!r} needs a lower bound >= 0 (got {a}): "
                f"sample |θ| on the positive octant"
            )
        return UniformInSquare(a, b)

    def log_prob(self, x):
        """log 2|x| − log(b² − a²) (the normalisation dropped on an infinite support)."""
        finite, a_s, b_s = _edges(self.low, self.high)
        norm = jnp.where(finite, jnp.log(b_s * b_s - a_s * a_s), 0.0)
        return jnp.log(2.0 * jnp.abs(x)) - norm


class NumpyroPrior(Prior):
    """A scalar ``numpyro.distributions.Distribution`` as a prior: its ``log_prob``, sampled on
    its support [low, high] (filled in by :func:`resolve_prior`, which checks the support)."""

    dist: Any
    low: float | None = None
    high: float | None = None

    def resolve(self, name, lo, hi):
        return resolve_prior(name, self.dist, lo, hi)

    def log_prob(self, x):
        return self.dist.log_prob(x)


#: configuration names of the built-in priors (``{"kind": name, **fields}``, see :func:`as_prior`)
PRIOR_KINDS = {
    "uniform": Uniform,
    "truncated_normal": TruncatedNormal,
    "log_uniform": LogUniform,
    "uniform_in_square": UniformInSquare,
}


def as_prior(spec) -> Prior | None:
    """A prior from what a user passes: a :class:`Prior`, a scalar numpyro ``Distribution``
    (wrapped in :class:`NumpyroPrior`), a kind name of :data:`PRIOR_KINDS` (its defaults) or a
    dict ``{"kind": name, **fields}``; None stays None (the default prior)."""
    if spec is None or isinstance(spec, Prior):
        return spec
    if isinstance(spec, str):
        spec = {"kind": spec}
    if isinstance(spec, dict):
        fields = dict(spec)
        kind = fields.pop("kind", None)
        if kind not in PRIOR_KINDS:
            raise InvalidParameters(
                f"unknown prior kind {kind!r}; choose one of {list(PRIOR_KINDS)}"
            )
        try:
            return PRIOR_KINDS[kind](**fields)
        except TypeError as err:
            raise InvalidParameters(f"prior {kind!r}: {err}") from None
    return NumpyroPrior(spec)


def _support_interval(dist):
    """[s_lo, s_hi] of a scalar numpyro distribution's support."""
    support = dist.support
    if getattr(support, "is_discrete", False) or getattr(support, "event_dim", 0) != 0:
        return None
    name = type(support).__name__
    lo = getattr(support, "lower_bound", None)
    hi = getattr(support, "upper_bound", None)
    if lo is None and hi is None and name not in ("_Real",):
        return None
    lo = -np.inf if lo is None else float(np.asarray(lo))
    hi = np.inf if hi is None else float(np.asarray(hi))
    return lo, hi


def resolve_prior(name, prior, lo, hi) -> Prior:
    """The resolved prior of one free parameter with bounds [lo, hi] (see :class:`Prior`).

    ``prior`` is anything :func:`as_prior` accepts — a :class:`Prior` (None: :class:`Uniform`),
    a kind name or dict, or any scalar ``numpyro.distributions.Distribution`` whose support
    lies within [lo, hi] (a :class:`NumpyroPrior`: its ``log_prob`` is used and the sampling
    interval is its support).
    """
    prior = as_prior(prior)
    if prior is None:
        prior = Uniform()
    if isinstance(prior, NumpyroPrior):
        prior = prior.dist
    elif isinstance(prior, Prior):
        return prior.resolve(name, lo, hi)
    import numpyro.distributions as dist

    if isinstance(prior, dist.Distribution):
        if prior.batch_shape != () or prior.event_shape != ():
            raise InvalidParameters(
                f"prior of parameter {name!r} must be a scalar distribution "
                f"(batch_shape {prior.batch_shape}, event_shape {prior.event_shape})"
            )
        support = _support_interval(prior)
        if support is None:
            raise InvalidParameters(
                f"prior of parameter {name!r} has a non-interval support {prior.support}"
            )
        a, b = support
        if not (a >= lo and b <= hi):
            raise InvalidParameters(
                f"prior {type(prior).__name__} of parameter {name!r} has support [{a}, {b}] "
                f"outside the parameter bounds [{lo}, {hi}]"
            )
        return NumpyroPrior(prior, a, b)
    raise InvalidParameters(
        f"prior of parameter {name!r} must be a jaxlike.bayes prior or a numpyro Distribution, "
        f"not {type(prior).__name__}"
    )


def stack_priors(priors) -> Prior:
    """Resolved priors of one class as one prior whose fields are arrays [k] (float64), so
    ``log_prob`` of the stack evaluates all k parameters at once."""
    return jax.tree_util.tree_map(lambda *xs: jnp.asarray(xs, float), *priors)


# -- priors of the POI of a credible upper limit -------------------------------------------------
class PoiPrior(eqx.Module):
    """Prior π(μ) of the POI of a credible upper limit (:func:`jaxlike.bayes.bayesian_upper_limit`),
    unnormalised: ``log_prob(mu, fisher_information)`` with I(μ) = Σ_b (∂ν_b/∂μ)²/ν_b at θ̂̂(μ)
    (the limit normalises π on its μ range). ``name`` is the string form users pass."""

    name: ClassVar[str]

    @abstractmethod
    def log_prob(
        self, mu: Float[ArrayLike, "*n"], fisher_information: Float[ArrayLike, "*n"]
    ) -> Float[Array, "*n"]:
        """log π(μ) up to a constant."""


class Flat(PoiPrior):
    """π(μ) = const on [μ_lo, μ_max] (``prior="uniform"``): log π = 0."""

    name: ClassVar[str] = "uniform"

    def log_prob(self, mu, fisher_information):
        return jnp.zeros_like(jnp.asarray(fisher_information))


class Jeffreys(PoiPrior):
    """π(μ) ∝ √I(μ), the Fisher information of the main measurement at θ̂̂(μ)
    (``prior="jeffreys"``): log π = ½ log I(μ)."""

    name: ClassVar[str] = "jeffreys"

    def log_prob(self, mu, fisher_information):
        return 0.5 * jnp.log(fisher_information)


#: the POI priors of a credible limit by their string form
POI_PRIORS = {cls.name: cls for cls in (Flat, Jeffreys)}


def poi_prior(prior) -> PoiPrior:
    """A :class:`PoiPrior` from a POI prior or its name (``"uniform"``, ``"jeffreys"``);
    :class:`~jaxlike.exceptions.InvalidBayesConfig` for anything else."""
    if isinstance(prior, PoiPrior):
        return prior
    if isinstance(prior, str) and prior in POI_PRIORS:
        return POI_PRIORS[prior]()
    raise InvalidBayesConfig(f"unknown prior {prior!r}; choose one of {tuple(POI_PRIORS)}")
