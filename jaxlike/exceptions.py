"""Exceptions raised by jaxlike.

Every error caused by user input derives from :class:`JaxlikeError`, so a caller (and the CLI)
can catch one type. Errors about a specification carry the JSON path of the offending field in
``.path`` (e.g. ``channels[1].samples[0].data[3]``) and start their message with it.
"""

from __future__ import annotations

__all__ = [
    "JaxlikeError",
    "InvalidSpecification",
    "InvalidWorkspace",
    "InvalidPatch",
    "InvalidModel",
    "InvalidParameters",
    "InvalidData",
    "InvalidScanConfig",
    "InvalidScanFile",
    "InvalidCovariance",
    "InvalidBayesConfig",
    "InvalidPosteriorConfig",
    "PosteriorRangeError",
    "InvalidArgument",
    "FitNotConverged",
]


class JaxlikeError(Exception):
    """Base class of every error jaxlike raises for bad input."""


class InvalidSpecification(JaxlikeError):
    """A specification (workspace, patch, config) is malformed at ``path``."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.reason = message
        super().__init__(f"{path}: {message}" if path else message)


class InvalidWorkspace(InvalidSpecification):
    """The workspace violates the pyhf JSON schema 1.0.0 or its consistency rules."""


class InvalidPatch(InvalidSpecification):
    """A JSON patch (RFC 6902) or a pyhf PatchSet cannot be read or applied."""


class InvalidModel(InvalidSpecification):
    """The channels/measurement cannot be compiled into a model (unknown modifier type,
    duplicated shapesys, missing lumi configuration, POI not in the model, ...)."""


class InvalidParameters(JaxlikeError):
    """A parameter vector or parameter name does not match the model."""


class InvalidData(JaxlikeError):
    """A data vector does not match the model (wrong length, NaN, negative counts)."""


class InvalidScanConfig(InvalidSpecification):
    """A scan configuration is malformed at ``path`` (unknown shape, window outside the
    spectrum, mass outside the tabulated range, empty window, ...). Raised before any
    computation starts."""


class InvalidScanFile(JaxlikeError):
    """A scan results file (HDF5) is unreadable, corrupt, or was written by a different scan
    configuration than the one asked to resume it."""


class InvalidCovariance(InvalidModel, ValueError):
    """A mean/covariance pair cannot be decorrelated (shape, symmetry, finiteness,
    positive semi-definiteness). ``.path`` names the field: ``mean``, ``covariance`` or
    ``names``. Also a :class:`ValueError`."""


class InvalidBayesConfig(JaxlikeError, ValueError):
    """A setting of a Bayesian computation is invalid (credibility level outside (0, 1),
    unknown prior or method, a model the chosen integration method cannot handle, ...)."""


class InvalidPosteriorConfig(InvalidScanConfig, InvalidBayesConfig):
    """A posterior job configuration (:mod:`jaxlike.jobs.posterior`) is malformed at ``path``.
    Both an :class:`InvalidScanConfig` (as before it had its own class) and an
    :class:`InvalidBayesConfig`."""


class PosteriorRangeError(JaxlikeError):
    """The posterior of the POI does not fall off within the POI range: the mass beyond the
    largest allowed μ exceeds the tolerance (raise the POI upper bound or pass ``poi_max``)."""


class InvalidArgument(JaxlikeError, ValueError):
    """An argument of a library function is outside its domain (bin edges not increasing, an
    unknown interpolation code, models of different layouts stacked, ...). The message starts
    with the argument's name. Also a :class:`ValueError`."""


class FitNotConverged(JaxlikeError, RuntimeError):
    """A fit asked to raise on failure (``fit(..., throw=True)``) did not converge. The message
    names the status text (:class:`jaxlike.fit.RESULTS`); ``.status`` is its integer code."""

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)
