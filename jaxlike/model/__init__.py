"""Model layer: the likelihood contract and its HistFactory implementation.

- The likelihood contract :class:`Likelihood` (with :class:`LikelihoodConfig` and
  :class:`ConstraintTerm`): what every model kind offers to fits, inference, scans and NUTS.
- :class:`Model`: pyhf-JSON channels compiled into a differentiable, batchable HistFactory
  likelihood (:func:`build_model`, :func:`stack_models`), with a closed-form Hessian
  (:func:`value_grad_hess`, dense or arrowhead: :func:`with_hessian_layout`).
- The modifier table :data:`MODIFIERS` read by validation, building and ``jaxlike inspect``;
  interpolation codes (:func:`normsys_factor`, :func:`histosys_delta`); rates for the
  ``reweight`` modifier (:class:`RateSpec`, :func:`register_rate`); bin-integral quadrature.
- Toy sampling: :class:`PoissonTable` (:func:`poisson_table`), exact inverse-CDF Poisson
  draws at a fixed generating point, used by ``Likelihood.sample(..., table=)``.
"""

from ._arrowhead import arrowhead_layout, with_hessian_layout
from ._build import DEFAULT_MODIFIER_SETTINGS, build_model
from ._config import ModelConfig, ParamSet
from ._contract import (
    ConstraintTerm,
    Likelihood,
    LikelihoodConfig,
    autodiff_value_grad_hess,
)
from ._hessian import value_grad_hess
from ._interp import histosys_delta, normsys_factor
from ._model import Model, normal_logpdf, poisson_logpdf, stack_models
from ._modifiers import MODIFIER_TYPES, MODIFIERS, ModifierType
from ._quadrature import bins_inside, gauss_legendre_bin_integrals, gauss_legendre_nodes
from ._reweight import RateParameter, RateSpec, get_rate, register_rate, registered_rates
from ._sampling import MAX_TABLE, PoissonTable, poisson_table

__all__ = [
    "ConstraintTerm",
    "Likelihood",
    "LikelihoodConfig",
    "autodiff_value_grad_hess",
    "bins_inside",
    "gauss_legendre_bin_integrals",
    "gauss_legendre_nodes",
    "DEFAULT_MODIFIER_SETTINGS",
    "MODIFIER_TYPES",
    "MODIFIERS",
    "ModifierType",
    "Model",
    "ModelConfig",
    "ParamSet",
    "build_model",
    "histosys_delta",
    "normal_logpdf",
    "normsys_factor",
    "poisson_logpdf",
    "PoissonTable",
    "poisson_table",
    "MAX_TABLE",
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
