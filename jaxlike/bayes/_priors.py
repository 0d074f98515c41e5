"""Priors of the free (unconstrained) parameters of a model.

A constrained parameter already carries its prior in the likelihood: its constraint term *is*
its prior (see :mod:`jaxlike.bayes`). The parameters without a constraint term (normfactors,
shapefactors, the signal strength of a window model, Wilson coefficients, ...) get one of the
priors below, keyed by parameter name; the default is :class:`Uniform` within the model bounds.

Every prior is resolved against the parameter's bounds [lo, hi] into a *sampling interval*
[a, b] ⊆ [lo, hi] (the prior's support) and a log-density log π(θ) on it, normalised on [a, b]
where that interval is finite. A prior whose support is not contained in the bounds is an error
(:class:`~jaxlike.exceptions.InvalidParameters`, naming the parameter).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from ..exceptions import InvalidParameters

__all__ = ["Prior", "Uniform", "TruncatedNormal", "LogUniform", "UniformInSquare"]

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


class Prior(ABC):
    """Base class of the built-in priors.

    ``resolve(name, lo, hi)`` returns ``(kind, a, b, params)``: the sampling interval [a, b] and
    the static kind + numeric parameters read by :func:`log_prior` inside the potential.
    """

    kind: str = ""

    @abstractmethod
    def resolve(self, name, lo, hi):
        """``(kind, a, b, params)`` of this prior for parameter ``name`` with bounds [lo, hi]
        (InvalidParameters naming ``name`` if the prior does not fit the bounds)."""


@dataclass(frozen=True)
class Uniform(Prior):
    """Flat prior π(θ) = 1/(b − a) on [a, b] (default [a, b] = the model bounds).

    With an infinite bound the prior is improper (π ∝ 1); the posterior is still proper when
    the likelihood falls off.
    """

    low: float | None = None
    high: float | None = None
    kind = "uniform"

    def resolve(self, name, lo, hi):
        a, b = _interval(name, lo, hi, self.low, self.high, "Uniform")
        return self.kind, a, b, ()


@dataclass(frozen=True)
class TruncatedNormal(Prior):
    """Gaussian N(loc, scale²) truncated to [a, b] (default: the model bounds):

    .. math:: \\log\\pi(\\theta) = \\log\\mathcal N(\\theta\\mid loc, scale)
              - \\log\\big[\\Phi(\\tfrac{b-loc}{scale}) - \\Phi(\\tfrac{a-loc}{scale})\\big].
    """

    loc: float = 0.0
    scale: float = 1.0
    low: float | None = None
    high: float | None = None
    kind = "truncnormal"

    def resolve(self, name, lo, hi):
        if not self.scale > 0:
            raise InvalidParameters(
                f"TruncatedNormal prior of parameter {name!r} needs scale > 0 (got {self.scale})"
            )
        a, b = _interval(name, lo, hi, self.low, self.high, "TruncatedNormal")
        return self.kind, a, b, (float(self.loc), float(self.scale))


@dataclass(frozen=True)
class LogUniform(Prior):
    """Scale-invariant prior π(θ) = 1 / (θ log(b/a)) on [a, b] with a > 0 (flat in log θ)."""

    low: float | None = None
    high: float | None = None
    kind = "loguniform"

    def resolve(self, name, lo, hi):
        a, b = _interval(name, lo, hi, self.low, self.high, "LogUniform")
        if not a > 0:
            raise InvalidParameters(
                f"LogUniform prior of parameter {name!r} needs a lower bound > 0 (got {a}); "
                f"set LogUniform(low=...) or the parameter bounds"
            )
        return self.kind, a, b, ()


@dataclass(frozen=True)
class UniformInSquare(Prior):
    """Flat in θ² on [a, b] with a ≥ 0: π(θ) = 2θ / (b² − a²).

    The prior for a Wilson coefficient C that enters the rate only as |C|² ("uniform in C²"):
    sample C on the positive octant [0, hi] with this prior, then use
    :meth:`Posterior.mirrored` for the symmetric marginal of C.
    """

    low: float | None = None
    high: float | None = None
    kind = "uniform_sq"

    def resolve(self, name, lo, hi):
        a, b = _interval(name, lo, hi, self.low, self.high, "UniformInSquare")
        if not a >= 0:
            raise InvalidParameters(
                f"UniformInSquare prior of parameter {name!r} needs a lower bound >= 0 (got {a}): "
                f"sample |θ| on the positive octant"
            )
        return self.kind, a, b, ()


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


def resolve_prior(name, prior, lo, hi):
    """``(kind, a, b, params_or_dist)`` for one free parameter (see :class:`Prior`).

    ``prior`` is a built-in :class:`Prior`, or any scalar ``numpyro.distributions.Distribution``
    whose support lies within [lo, hi] (kind ``"dist"``; its ``log_prob`` is used and the
    sampling interval is its support).
    """
    if prior is None:
        prior = Uniform()
    if isinstance(prior, Prior):
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
        return "dist", a, b, prior
    raise InvalidParameters(
        f"prior of parameter {name!r} must be a jaxlike.bayes prior or a numpyro Distribution, "
        f"not {type(prior).__name__}"
    )


def log_prior(kind, theta, a, b, params):
    """log π(θ) of a built-in prior kind, vectorised over parameters of that kind.

    uniform: −log(b − a) (0 if unbounded); truncnormal: log N(θ|loc, s) − log[Φ(β) − Φ(α)];
    loguniform: −log θ − log log(b/a); uniform_sq: log 2θ − log(b² − a²). Infinite intervals
    drop the (infinite) normalisation.
    """
    finite = jnp.isfinite(a) & jnp.isfinite(b)
    a_s, b_s = jnp.where(finite, a, 0.0), jnp.where(finite, b, 1.0)
    if kind == "uniform":
        return jnp.where(finite, -jnp.log(b_s - a_s), 0.0)
    if kind == "truncnormal":
        loc, scale = params
        x = (theta - loc) / scale
        mass = ndtr((b - loc) / scale) - ndtr((a - loc) / scale)
        return -0.5 * x * x - jnp.log(scale) - _HALF_LOG_2PI - jnp.log(mass)
    if kind == "loguniform":
        a_pos = jnp.where(finite, a_s, 1.0)
        norm = jnp.where(finite, jnp.log(jnp.log(b_s / a_pos)), 0.0)
        return -jnp.log(theta) - norm
    if kind == "uniform_sq":
        norm = jnp.where(finite, jnp.log(b_s * b_s - a_s * a_s), 0.0)
        return jnp.log(2.0 * jnp.abs(theta)) - norm
    raise ValueError(f"unknown prior kind {kind!r}")
