"""Fit layer: maximum-likelihood fits that run inside XLA (jit/vmap-able)."""

from ..linalg import ArrowheadCovariance, ArrowheadHessian
from ._fit import (
    DENSE_COVARIANCE_MAX,
    FitResult,
    conditional_inputs,
    fit,
    fit_arrays,
    fit_jit,
    fit_state,
    fixed_poi_fit,
    global_search,
    model_breakpoints,
    prepare_fit_inputs,
    set_at,
    start_rows,
)
from ._newton import SEARCH_MAX_PARS, MinimizeState, autodiff_fgh, minimize
from ._results import RESULTS, STATUS, result_repr
from ._types import Bounds, Data, Fixed, Pars, Scalar

__all__ = [
    "Bounds",
    "Data",
    "Fixed",
    "Pars",
    "Scalar",
    "DENSE_COVARIANCE_MAX",
    "SEARCH_MAX_PARS",
    "RESULTS",
    "STATUS",
    "autodiff_fgh",
    "ArrowheadCovariance",
    "ArrowheadHessian",
    "FitResult",
    "MinimizeState",
    "fit",
    "fit_arrays",
    "fit_state",
    "fit_jit",
    "conditional_inputs",
    "set_at",
    "global_search",
    "start_rows",
    "fixed_poi_fit",
    "minimize",
    "model_breakpoints",
    "prepare_fit_inputs",
    "result_repr",
]
