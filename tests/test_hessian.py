"""The structured 2NLL / gradient / Hessian (jaxlike.model.value_grad_hess) against autodiff.

The reference is ``jax.grad`` and ``jax.hessian`` of ``model.twice_nll``. Entries are compared
on their natural scale: |ΔH_ij| <= 1e-10 d_i d_j and |Δg_i| <= 1e-10 (|g_i| + d_i) with
d_i = sqrt(|H_ii|) floored at 1e-3, so a small off-diagonal term next to a huge
Poisson-constraint curvature (ERJR, τ ~ 1e11) is still checked.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxlike

RTOL = 1e-10
#: Belle II (normsys, histosys, staterror; 232 parameters), sbottom (lumi, normfactors,
#: staterror), ERJR (shapesys with τ ~ 1e11) and validation files with shapefactor, user lumi
#: config, shared normsys and shapesys; the random workspaces below cover every modifier type
#: with every interpolation code.
CASE_IDS = [
    "validation/docs_2bin_1channel",
    "validation/validation_1bin_lumi",
    "validation/validation_2bin_2channel_couplednorm_code1",
    "validation/validation_2bin_2channel_coupledshapefactor",
    "validation/validation_2bin_2channel_shapesys",
    "sbottom/patch.sbottom_1300_205_60",
    "belle2",
    "erjr/patch.ERJR_100p0_20p0",
]


def assert_vgh_close(model, x, data, jitted, label=""):
    f_s, g_s, h_s = (np.asarray(v) for v in jitted.structured_vgh(model, x, data))
    f_a, g_a, h_a = (np.asarray(v) for v in jitted.autodiff_vgh(model, x, data))
    assert np.isfinite(f_a) and np.isfinite(h_a).all(), label
    assert abs(f_s - f_a) <= 1e-12 * abs(f_a), (label, f_s, f_a)
    # a parameter with no curvature (a normfactor on bins with no events) gets scale 1e-3
    d = np.maximum(np.sqrt(np.abs(np.diag(h_a))), 1e-3)
    np.testing.assert_array_less(np.abs(g_s - g_a), RTOL * (np.abs(g_a) + d), err_msg=label)
    np.testing.assert_array_less(np.abs(h_s - h_a), RTOL * np.outer(d, d), err_msg=label)
    np.testing.assert_array_less(np.abs(h_s - h_s.T), RTOL * np.outer(d, d), err_msg=label)


def at_bounds(model, x, data, jitted):
    """``x`` with the POI at 0 and, where present, one normsys α, one histosys α and one
    staterror/shapesys γ on one of their bounds (the first bound that keeps 2NLL finite,
    i.e. all expected yields positive)."""
    cfg = model.config
    bounds = cfg.suggested_bounds()
    x = np.array(x)
    if cfg.poi_index is not None:
        x[cfg.poi_index] = 0.0
    todo = ["normsys", "histosys", "staterror", "shapesys"]
    for name in cfg.par_order:
        ps = cfg.par_map[name]
        mtype = next((t for t in todo if t in ps.modifier_types), None)
        if mtype is None or name == cfg.poi_name:
            continue
        for bound in bounds[ps.start][::-1]:
            trial = x.copy()
            trial[ps.start] = bound
            if np.isfinite(jitted.structured_vgh(model, trial, data)[0]):
                x = trial
                todo.remove(mtype)
                break
    return x


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_structured_hessian_matches_autodiff(case_id, cases, jitted):
    """Inits, random points, POI exactly 0, and parameters on their bounds."""
    case = cases(case_id)
    points = list(case.points) + [at_bounds(case.model, case.points[1], case.data, jitted)]
    for k, x in enumerate(points):
        assert_vgh_close(case.model, x, case.data, jitted, f"{case_id} point {k}")


def test_at_bounds_point_really_is_on_bounds(cases, jitted):
    """Guard for the test above: the Belle II point has (at least) 4 parameters on bounds."""
    case = cases("belle2")
    model = case.model
    x = at_bounds(model, case.points[1], case.data, jitted)
    lo, hi = model.config.suggested_bounds().T
    assert x[model.config.poi_index] == 0.0
    assert ((x == lo) | (x == hi)).sum() >= 4


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_structured_hessian_on_random_workspaces(data, interp_setting, randws, jitted):
    """All 7 modifier types and all interpolation codes (α up to ±3 crosses the |α| = 1
    seams of code4/code4p/code2 and the α = 0 kink of code0/code1)."""
    _, modifier_settings, _, n_channels = interp_setting
    spec = randws.draw(data.draw, max(n_channels))  # one layout (compile) per setting
    ws = jaxlike.Workspace(spec)
    model = ws.model(modifier_settings=modifier_settings)
    obs = ws.data(model)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = randws.pars(model, rng, 3.0)
    assert_vgh_close(model, x, obs, jitted, "random point")
    assert_vgh_close(model, at_bounds(model, x, obs, jitted), obs, jitted, "at bounds")
