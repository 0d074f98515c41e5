"""Fit layer: maximum-likelihood fits that run inside XLA (jit/vmap-able)."""

from ._arrowhead import ArrowheadCovariance, ArrowheadHessian
from ._fit import (
    DENSE_COVARIANCE_MAX,
    FitResult,
    fit,
    fit_arrays,
    fixed_poi_fit,
    model_breakpoints,
    prepare_fit_inputs,
)
from ._newton import STATUS, MinimizeState, minimize

__all__ = [
    "DENSE_COVARIANCE_MAX",
    "STATUS",
    "ArrowheadCovariance",
    "ArrowheadHessian",
    "FitResult",
    "MinimizeState",
    "fit",
    "fit_arrays",
    "fixed_poi_fit",
    "minimize",
    "model_breakpoints",
    "prepare_fit_inputs",
]
