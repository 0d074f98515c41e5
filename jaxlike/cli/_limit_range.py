"""Upper limits above the search range, told apart from limit searches that failed.

A limit search brackets the CLs (or CLs+b) crossing in [0, μ_max] (the POI's upper bound, or
``--poi-max``). A lane (observed, or one of the five expected) whose curve stays above α up
to μ_max has no limit in that range: the search returns NaN with ``converged = False``, as it
does when a fit inside it fails. :func:`check_limits` tells the two apart by recomputing the
test where it matters:

* a NaN lane is *above the range* when the hypothesis test at μ_max converges and its CL
  value there is still above α; otherwise its search failed (naming the check);
* a finite lane of a level that did not converge is confirmed when the test at the limit
  converges and gives CL = α (1 % relative); otherwise the fit at the limit failed.

For lanes above the range it finds a μ_max that brackets them: the test is repeated at
2, 4, 8, ... × μ_max (up to 1024×) until every such lane's CL value falls below α, and that
point, rounded up (:func:`nice_ceiling`), is suggested for ``--poi-max``. (An asymptotic
extrapolation from μ_max alone falls short on real likelihoods: on the ATLAS ERJR grid the
signal's relative uncertainties make σ(μ̂) grow with μ, and a suggestion of 150 from
σ = μ_max/√q_A left 5 of 66 limits above it.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["LANES", "LimitCheck", "check_limits", "nice_ceiling", "limit_range", "rerun_hint"]

#: the limit lanes in stored order: observed, then the expected band, ascending
LANES = ("observed", "expected -2σ", "expected -1σ", "expected median", "expected +1σ",
         "expected +2σ")  # fmt: skip
_RTOL_CL = 0.01  # a confirmed limit has CL within 1 % of α


@dataclass
class LimitCheck:
    """What :func:`check_limits` found for one hypothesis.

    ``above``: bool [ncl, 6], lanes (:data:`LANES`) above the search range; ``failed``: one
    text per lane whose search genuinely failed, naming the check; ``suggestion``: a μ_max
    at which the lanes above the range have CL < α (NaN if none, or none up to 1024 ×
    μ_max); ``cl_at_max``: the observed and expected CL values at μ_max.
    """

    above: np.ndarray
    failed: list[str] = field(default_factory=list)
    suggestion: float = math.nan
    cl_at_max: np.ndarray | None = None


def nice_ceiling(x: float) -> float:
    """The smallest of 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10^k that is ≥ ``x`` (``x`` > 0).

    >>> nice_ceiling(37.2), nice_ceiling(10.0), nice_ceiling(0.013)
    (40.0, 10.0, 0.015)
    """
    k = math.floor(math.log10(x))
    for step in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0):
        value = float(f"{step * 10.0**k:.12g}")
        if value >= x * (1 - 1e-12):
            return value
    return 10.0 ** (k + 1)


def rerun_hint(suggestion: float, mu_max: float) -> str:
    """What to do about limits above the range: the ``--poi-max`` that brackets them, or
    (``suggestion`` NaN) that none did up to 1024 × ``mu_max``.

    >>> rerun_hint(40.0, 10.0)
    'rerun with --poi-max 40'
    """
    if math.isfinite(suggestion):
        return f"rerun with --poi-max {suggestion:g}"
    return f"no --poi-max up to {1024 * mu_max:g} brackets them (CL stays above α or fits fail)"


def limit_range(model, poi_max: float | None) -> float:
    """The top of the limit search range: ``poi_max``, else the POI's upper bound."""
    if poi_max is not None:
        return float(poi_max)
    return float(np.asarray(model.config.suggested_bounds())[model.config.poi_index, 1])


def _cl_values(ht, rule: str) -> np.ndarray:
    """[6]: observed, then the expected (ascending) CLs, or CLs+b for ``rule="clsb"``."""
    obs, exp = (ht.clsb_obs, ht.clsb_exp) if rule == "clsb" else (ht.cls_obs, ht.cls_exp)
    return np.concatenate([np.ravel(np.asarray(obs, float)), np.asarray(exp, float).ravel()])


def _bracket(prep, model, mu_max, above, alphas, rule) -> float:
    """The first of 2, 4, ... 1024 × ``mu_max`` at which every lane flagged in ``above``
    [ncl, 6] has converged fits and a CL value below its α, rounded up; NaN if none."""
    from ..infer import hypotest_at

    for k in range(1, 11):
        mu = mu_max * 2.0**k
        ht = hypotest_at(prep, model, mu)
        values = _cl_values(ht, rule)
        below = values[None, :] < alphas[:, None]
        if bool(np.asarray(ht.converged)) and np.all(below[above]):
            return nice_ceiling(mu)
    return math.nan


def check_limits(model, data, obs, exp, converged, cl, mu_max, rule="cls", test_stat="qtilde"):
    """Check the limit lanes of one hypothesis whose search did not converge at some level,
    and find a ``--poi-max`` for the lanes above the range.

    Args:
        model, data: the (patched) model and its data, as the limit search saw them.
        obs: [ncl] observed limits; exp: [ncl, 5] expected limits, ascending (NaN: no limit).
        converged: [ncl] the searches' convergence flags (only levels that are False are
            checked).
        cl: [ncl] confidence levels; mu_max: top of the search range; rule: "cls"/"clsb".

    Returns:
        A :class:`LimitCheck`. Costs one hypothesis test at μ_max, one at each finite limit
        of a non-converged level and, for lanes above the range, one per doubling of μ_max
        until they are bracketed (the fits are compiled once per model layout).
    """
    from ..infer import hypotest_at, hypotest_prepare

    lanes = np.concatenate([np.reshape(obs, (-1, 1)), np.reshape(exp, (-1, 5))], axis=1)
    alphas = 1.0 - np.atleast_1d(np.asarray(cl, float))
    todo = ~np.atleast_1d(np.asarray(converged, bool))
    out = LimitCheck(above=np.zeros(lanes.shape, bool))
    if not todo.any():
        return out
    prep = hypotest_prepare(data, model, test_stat=test_stat)
    top = hypotest_at(prep, model, mu_max)
    top_ok = bool(np.asarray(top.converged))
    out.cl_at_max = _cl_values(top, rule)
    tests = {}  # limit value -> (converged, CL values)
    for j in np.flatnonzero(todo):
        level = f"{100 * (1 - alphas[j]):g}% CL"
        for k, value in enumerate(lanes[j]):
            what = f"{LANES[k]} limit search ({level})"
            if np.isnan(value):
                above = top_ok and out.cl_at_max[k] > alphas[j]
                out.above[j, k] = above
                if not above:
                    why = (
                        f"a fit at μ = {mu_max:g} did not converge" if not top_ok else
                        f"no crossing found although CL({mu_max:g}) = {out.cl_at_max[k]:.3g} "
                        f"< {alphas[j]:g}"
                    )  # fmt: skip
                    out.failed.append(f"{what}: {why}")
                continue
            if value not in tests:
                ht = hypotest_at(prep, model, value)
                tests[value] = (bool(np.asarray(ht.converged)), _cl_values(ht, rule))
            ok, values = tests[value]
            if not ok:
                out.failed.append(f"{what}: a fit at the limit μ = {value:.4g} did not converge")
            elif not abs(values[k] / alphas[j] - 1) <= _RTOL_CL:
                out.failed.append(f"{what}: CL({value:.4g}) = {values[k]:.3g}, not {alphas[j]:g}")
    if out.above.any():
        out.suggestion = _bracket(prep, model, mu_max, out.above, alphas, rule)
    return out
