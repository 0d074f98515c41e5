"""jaxlike: pyhf-exact binned likelihoods in JAX, with batched fits, CLs, limits and scans.

Importing jaxlike switches JAX to float64 (``jax_enable_x64``): CLs values of 1e-7 and 2NLL
differences of 1e-4 need it. This is the only global state jaxlike touches.
"""

import jax

jax.config.update("jax_enable_x64", True)

# physics: the built-in rates of the reweight modifier (B→Kνν̄ in the WET) register on import;
# physics plugs into the model layer from above, the model never imports it
from . import exceptions, physics  # noqa: E402, F401
from .fit import FitResult, fit, fixed_poi_fit  # noqa: E402
from .infer import (  # noqa: E402
    HypoTestResult,
    UpperLimitResult,
    discovery_significance,
    feldman_cousins,
    hypotest,
    hypotest_scan,
    upper_limit,
)
from .model import Model, ModelConfig, build_model, stack_models  # noqa: E402
from .workspace import PatchSet, Workspace, unify_patches  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "FitResult",
    "HypoTestResult",
    "UpperLimitResult",
    "discovery_significance",
    "feldman_cousins",
    "fit",
    "fixed_poi_fit",
    "hypotest",
    "hypotest_scan",
    "upper_limit",
    "Model",
    "ModelConfig",
    "PatchSet",
    "Workspace",
    "build_model",
    "exceptions",
    "stack_models",
    "unify_patches",
]
