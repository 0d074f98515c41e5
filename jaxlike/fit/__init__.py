"""Fit layer: maximum-likelihood fits that run inside XLA (jit/vmap-able)."""

from ._fit import FitResult, fit, fit_arrays, fixed_poi_fit, prepare_fit_inputs
from ._newton import STATUS, MinimizeState, minimize

__all__ = [
    "STATUS",
    "FitResult",
    "MinimizeState",
    "fit",
    "fit_arrays",
    "fixed_poi_fit",
    "minimize",
    "prepare_fit_inputs",
]
