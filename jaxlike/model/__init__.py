"""Model layer: compile pyhf-JSON channels into a differentiable, batchable likelihood."""

from ._arrowhead import arrowhead_layout, with_hessian_layout
from ._build import DEFAULT_MODIFIER_SETTINGS, MODIFIER_TYPES, build_model
from ._config import ModelConfig, ParamSet
from ._hessian import value_grad_hess
from ._interp import histosys_delta, normsys_factor
from ._model import Model, normal_logpdf, poisson_logpdf, stack_models
from ._reweight import RateParameter, RateSpec, get_rate, register_rate, registered_rates

__all__ = [
    "DEFAULT_MODIFIER_SETTINGS",
    "MODIFIER_TYPES",
    "Model",
    "ModelConfig",
    "ParamSet",
    "build_model",
    "histosys_delta",
    "normal_logpdf",
    "normsys_factor",
    "poisson_logpdf",
    "RateParameter",
    "RateSpec",
    "get_rate",
    "register_rate",
    "registered_rates",
    "stack_models",
    "value_grad_hess",
    "arrowhead_layout",
    "with_hessian_layout",
]
