"""Patch-based scans: one vmapped, compiled computation equals patch-by-patch inference."""

import numpy as np
import pytest

import jaxlike
from jaxlike.exceptions import InvalidPatch
from jaxlike.scan import patch_scan, read_results

BKG = {
    "channels": [
        {
            "name": "SR",
            "samples": [
                {
                    "name": "bkg",
                    "data": [50.0, 40.0, 30.0, 20.0],
                    "modifiers": [
                        {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                        {"name": "mcstat", "type": "staterror", "data": [3.0, 3.0, 2.0, 2.0]},
                    ],
                }
            ],
        }
    ],
    "observations": [{"name": "SR", "data": [53.0, 44.0, 27.0, 25.0]}],
    "measurements": [
        {"name": "meas", "config": {"poi": "mu", "parameters": []}},
    ],
    "version": "1.0.0",
}


def _patch(name, values, yields, extra_syst):
    mods = [{"name": "mu", "type": "normfactor", "data": None}]
    if extra_syst:
        mods.append({"name": "sig_xsec", "type": "normsys", "data": {"hi": 1.2, "lo": 0.85}})
    sample = {"name": f"sig_{name}", "data": yields, "modifiers": mods}
    op = {"op": "add", "path": "/channels/0/samples/1", "value": sample}
    return {"metadata": {"name": name, "values": values}, "patch": [op]}


PATCHSET = {
    "metadata": {
        "description": "toy grid",
        "digests": {"sha256": "0" * 64},
        "labels": ["m1", "m2"],
        "references": {},
    },
    "patches": [
        _patch("p_100_10", [100, 10], [8.0, 6.0, 2.0, 1.0], True),
        _patch("p_100_20", [100, 20], [3.0, 5.0, 6.0, 2.0], False),
        _patch("p_200_10", [200, 10], [1.0, 2.0, 4.0, 9.0], True),
    ],
    "version": "1.0.0",
}


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    ws = jaxlike.Workspace(BKG)
    ps = jaxlike.PatchSet(PATCHSET)
    path = tmp_path_factory.mktemp("patches") / "grid.h5"
    out = patch_scan(ws, ps, cl=(0.95,), store=path, progress=False, chunk_size=2)
    return ws, ps, out, path


def test_batched_scan_equals_each_patch_alone(scanned):
    ws, ps, out, _ = scanned
    for i, patch in enumerate(ps):
        model = ws.model(patches=[patch])
        data = ws.data(model)
        ht = jaxlike.hypotest(1.0, data, model)
        ul = jaxlike.upper_limit(data, model, cl=0.95)
        np.testing.assert_allclose(out["cls_obs"][i], float(ht.cls_obs), rtol=1e-6)
        np.testing.assert_allclose(out["cls_exp"][i], np.asarray(ht.cls_exp), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(out["ul_obs"][i, 0], float(ul.obs), rtol=1e-5)
        np.testing.assert_allclose(out["ul_exp"][i, 0], np.asarray(ul.exp), rtol=1e-5)
    assert out["converged"].all()


def test_store_holds_coordinates_names_and_results(scanned):
    _, _, out, path = scanned
    hyps, res, attrs = read_results(path)
    np.testing.assert_array_equal(hyps["values"], [[100, 10], [100, 20], [200, 10]])
    assert list(attrs["patch_names"]) == ["p_100_10", "p_100_20", "p_200_10"]
    np.testing.assert_array_equal(res["cls_obs"], out["cls_obs"])
    assert attrs["kind"] == "patches"


def test_patch_adding_nothing_is_rejected():
    ws = jaxlike.Workspace(BKG)
    bad = [{"op": "replace", "path": "/channels/0/samples/0/data/0", "value": 51.0}]
    with pytest.raises(InvalidPatch, match="adds no sample"):
        patch_scan(ws, [bad], progress=False)


def test_poi_max_widens_the_limit_search_beyond_the_poi_bound(scanned):
    """With the POI bounded at [0, 0.3] every limit is out of range (NaN, not converged);
    poi_max = 10 finds them all. Where μ̂ lies inside both bounds (patch 1) the limit equals the
    one of the default bounds [0, 10] exactly (elsewhere the capped μ̂ changes q̃, as it must)."""
    ws, ps, out, _ = scanned
    spec = ws.to_dict()
    bounded = {"name": "mu", "bounds": [[0.0, 0.3]], "inits": [0.1]}
    spec["measurements"][0]["config"]["parameters"] = [bounded]
    tight = jaxlike.Workspace(spec)
    clipped = patch_scan(tight, ps, cl=(0.95,), progress=False)
    assert np.isnan(clipped["ul_obs"]).all() and not clipped["limit_converged"].any()
    wide = patch_scan(tight, ps, cl=(0.95,), progress=False, poi_max=10.0)
    assert wide["limit_converged"].all() and np.isfinite(wide["ul_obs"]).all()
    assert 0 <= out["mu_hat"][1] < 0.3
    np.testing.assert_allclose(wide["ul_obs"][1], out["ul_obs"][1], rtol=1e-6)
    np.testing.assert_allclose(wide["ul_exp"][1], out["ul_exp"][1], rtol=1e-6)
