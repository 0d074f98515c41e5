"""Analysis products on top of the fits: pulls, correlations, impacts (ranking), grouped impacts
and the stat/syst breakdown, saturated-model goodness of fit, profile-likelihood scans and
MINOS-style intervals.

Every product that needs many fits runs them as one chunked, vmapped batch of
:func:`jaxlike.fit.fit_arrays` (one compiled function per model layout and batch size),
warm-started from the global best fit.
"""

from ._common import ConstraintInfo, batch_fit, constraint_info, resolve_index
from ._gof import GoodnessOfFit, goodness_of_fit, saturated_twice_nll
from ._impacts import (
    GroupedImpacts,
    Impacts,
    grouped_impacts,
    impacts,
    select_parameters,
    stat_syst_breakdown,
)
from ._minos import MinosResult, minos
from ._pulls import Pulls, correlation_matrix, pulls
from ._scan import (
    ProfileScan,
    grid_points,
    profile_bounds,
    profile_point_fit,
    profile_scan,
    profile_scan_2d,
)
from ._yields import YieldTable, postfit_yields, prefit_covariance, prefit_yields, yields

__all__ = [
    "ConstraintInfo",
    "GoodnessOfFit",
    "GroupedImpacts",
    "Impacts",
    "MinosResult",
    "ProfileScan",
    "Pulls",
    "YieldTable",
    "batch_fit",
    "constraint_info",
    "correlation_matrix",
    "goodness_of_fit",
    "grid_points",
    "grouped_impacts",
    "impacts",
    "minos",
    "profile_bounds",
    "profile_point_fit",
    "profile_scan",
    "profile_scan_2d",
    "postfit_yields",
    "prefit_covariance",
    "prefit_yields",
    "pulls",
    "resolve_index",
    "saturated_twice_nll",
    "select_parameters",
    "stat_syst_breakdown",
    "yields",
]
