"""jaxlike: pyhf-exact binned likelihoods in JAX, with batched fits, CLs, limits and scans.

Importing jaxlike switches JAX to float64 (``jax_enable_x64``): CLs values of 1e-7 and 2NLL
differences of 1e-4 need it. It also switches on JAX's persistent compilation cache in a
private per-user folder (``$JAXLIKE_CACHE_DIR``, default ``~/.cache/jaxlike/xla``; set it to an
empty string to opt out; a cache folder the user configured for JAX is left alone), so a new
process loads the compiled fit instead of compiling it again. These are the only global
settings jaxlike touches.
"""

import jax

jax.config.update("jax_enable_x64", True)

from ._compile import enable_cache  # noqa: E402

enable_cache()

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
