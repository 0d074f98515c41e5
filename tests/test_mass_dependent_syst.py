"""Mass-dependent systematic widths (issue 15, item 3): ``rel_eff``/``rel_res`` as columns of
the signal tables (e.g. an efficiency systematic growing from 5.5% to 8% towards low mass), per
category, with the scan-wide value where a table has no column."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxlike.exceptions import InvalidScanConfig
from jaxlike.parametric import build_mass_scan, hypothesis_results


def make_config(two_categories=False) -> dict:
    rng = np.random.default_rng(3)
    edges = np.linspace(0.0, 10.0, 2001)
    centers = 0.5 * (edges[1:] + edges[:-1])
    expected = 150.0 * (1.0 - 0.06 * centers)
    table = {"mass": [1.0, 5.0, 9.0], "sigma": [0.05, 0.07, 0.09],
             "rel_eff": [0.08, 0.065, 0.055], "rel_res": [0.04, 0.06, 0.1]}  # fmt: skip
    cfg = {
        "spectrum": {"edges": edges.tolist(), "counts": [rng.poisson(expected).tolist()]},
        "signal": {"shape": "gauss", "tables": [table], "rel_eff": 0.03, "rel_res": 0.05},
        "background": {"kind": "bernstein", "order": 1},
        "window": {"lo": 5.0, "hi": 5.0, "n_bins": 20},
        "scan": {"masses": [3.0, 7.0], "cl": [0.95]},
    }
    if two_categories:
        counts = cfg["spectrum"]["counts"]
        cfg["spectrum"]["counts"] = counts + [rng.poisson(0.5 * expected).tolist()]
        cfg["signal"]["tables"].append({"mass": [1.0, 9.0], "sigma": [0.06, 0.1]})
        cfg["signal"]["conversion"] = [1.0, 0.5]
    return cfg


def test_columns_give_the_width_at_each_mass():
    scan, _, _ = build_mass_scan(make_config(two_categories=True))
    for m in (3.0, 7.0):
        model = scan.window_model(m)
        want_eff = np.interp(m, [1.0, 5.0, 9.0], [0.08, 0.065, 0.055])
        want_res = np.interp(m, [1.0, 5.0, 9.0], [0.04, 0.06, 0.1])
        # category 0 from its column, category 1 the scan-wide widths
        np.testing.assert_allclose(model.rel_eff, [want_eff, 0.03], rtol=1e-14)
        np.testing.assert_allclose(model.rel_res, [want_res, 0.05], rtol=1e-14)


def test_a_column_equals_the_scalar_at_that_mass():
    """At each mass the scan with columns gives exactly the results of a scan whose scalar
    widths are the columns' values there."""
    cfg = make_config()
    scan, masses, cl = build_mass_scan(cfg)
    run = jax.jit(lambda s, m: hypothesis_results(s, m, cl))
    for m in masses:
        flat = make_config()
        t = flat["signal"]["tables"][0]
        flat["signal"]["rel_eff"] = float(np.interp(m, t["mass"], t.pop("rel_eff")))
        flat["signal"]["rel_res"] = float(np.interp(m, t["mass"], t.pop("rel_res")))
        scan1, _, _ = build_mass_scan(flat)
        a, b = run(scan, m), run(scan1, m)
        for key in ("mu_hat", "significance", "ul_obs", "ul_exp"):
            np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), rtol=1e-12,
                                       err_msg=key)  # fmt: skip
        assert bool(a["fit_converged"]) and bool(np.all(a["limit_converged"]))


def test_nuisances_exist_when_only_columns_are_given():
    cfg = make_config()
    cfg["signal"]["rel_eff"] = 0.0
    cfg["signal"]["rel_res"] = 0.0
    scan, _, _ = build_mass_scan(cfg)
    assert scan.has_eff and scan.has_res
    names = scan.window_model(3.0).config.par_names
    assert "theta_eff" in names and "theta_res" in names


@pytest.mark.parametrize(
    "col, values",
    [("rel_eff", [0.1, 1.0, 0.1]), ("rel_res", [-0.1, 0.1, 0.1]), ("rel_eff", [0.1, 0.1])],
)
def test_bad_columns(col, values):
    cfg = make_config()
    cfg["signal"]["tables"][0][col] = values
    with pytest.raises(InvalidScanConfig, match=rf"signal\.tables\[0\]\.{col}"):
        build_mass_scan(cfg)
