"""2-D profile-likelihood grids (jaxlike.scan.profile_grid), their plot and ``jaxlike grid``."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA

import jaxlike
from jaxlike.cli import main
from jaxlike.exceptions import InvalidScanFile, JaxlikeError
from jaxlike.plotting import plot_profile_grid
from jaxlike.scan import chi2_2dof_threshold, profile_grid

SPEC = {
    "channels": [
        {
            "name": "sr",
            "samples": [
                {
                    "name": "sig",
                    "data": [4.0, 8.0, 3.0],
                    "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                },
                {
                    "name": "bkg",
                    "data": [20.0, 15.0, 10.0],
                    "modifiers": [
                        {"name": "k", "type": "normfactor", "data": None},
                        {"name": "unc", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}},
                    ],
                },
            ],
        },
        {
            "name": "cr",
            "samples": [
                {
                    "name": "bkg",
                    "data": [50.0, 40.0],
                    "modifiers": [
                        {"name": "k", "type": "normfactor", "data": None},
                        {"name": "mu", "type": "normfactor", "data": None},
                        {"name": "unc", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                    ],
                }
            ],
        },
    ],
    "observations": [
        {"name": "sr", "data": [27.0, 26.0, 12.0]},
        {"name": "cr", "data": [61.0, 38.0]},
    ],
    "measurements": [
        {
            "name": "m",
            "config": {
                "poi": "mu",
                "parameters": [{"name": "k", "bounds": [[0.1, 5.0]]}],
            },
        }
    ],
    "version": "1.0.0",
}
MU = np.array([0.4, 1.0, 1.7])
K = np.array([0.8, 1.0, 1.3, 1.6])


@pytest.fixture(scope="module")
def small():
    ws = jaxlike.Workspace(SPEC)
    model = ws.model()
    return model, ws.data(model)


@pytest.fixture(scope="module")
def grid(small):
    model, data = small
    return profile_grid(model, data, ("mu", MU), ("k", K), progress=False)


def test_grid_matches_fixed_fits(small, grid):
    model, data = small
    assert grid.twice_nll.shape == (3, 4) and grid.bestfit.shape == (3, 4, 3)
    assert grid.converged.all()
    for i, mu in enumerate(MU):
        for j, k in enumerate(K):
            ref = jaxlike.fit(model, data, fixed_params={"mu": mu, "k": k})
            assert abs(float(ref.twice_nll) - grid.twice_nll[i, j]) < 1e-8
    free = jaxlike.fit(model, data)
    assert grid.delta.min() >= -1e-9
    assert grid.twice_nll_min <= float(free.twice_nll) + 1e-9
    np.testing.assert_allclose(grid.delta, grid.twice_nll - grid.twice_nll_min)
    assert set(grid.best) == {"mu", "k"}


def test_sweep_equals_independent_fits(small, grid):
    """Row sweeps (each fit started from its neighbour's solution) and independent fits from
    the global best fit reach the same minima."""
    model, data = small
    g = profile_grid(model, data, ("mu", MU), ("k", K), sweep=False, progress=False)
    np.testing.assert_allclose(g.twice_nll, grid.twice_nll, rtol=0, atol=1e-8)
    assert g.converged.all() and grid.converged.all()


def test_fixed_nuisance_and_lower_grid_point(small):
    model, data = small
    g = profile_grid(model, data, ("mu", MU), ("k", K), fixed={"unc": 0.5}, progress=False)
    ref = jaxlike.fit(model, data, fixed_params={"mu": 1.0, "k": 1.3, "unc": 0.5})
    assert abs(float(ref.twice_nll) - g.twice_nll[1, 2]) < 1e-8
    assert np.allclose(g.bestfit[..., model.config.par_index("unc")], 0.5)
    assert g.fixed == {"unc": 0.5}
    # a (deliberately bad) "global" fit above the grid: the lowest grid point is used
    bad = jaxlike.fit(model, data, fixed_params={"mu": 3.0, "k": 0.5})
    g2 = profile_grid(model, data, ("mu", MU), ("k", K), global_fit=bad, progress=False)
    assert g2.best_source == "grid" and g2.delta.min() == 0.0


def test_thresholds():
    assert chi2_2dof_threshold(0.95) == pytest.approx(5.9915, abs=1e-4)
    assert chi2_2dof_threshold(0.682689492) == pytest.approx(2.2958, abs=1e-4)


def test_store_resume_and_refuse_other_grid(small, tmp_path):
    model, data = small
    path = tmp_path / "g.h5"
    a = profile_grid(model, data, ("mu", MU), ("k", K), store=path, progress=False, chunk_size=4)
    with pytest.raises(InvalidScanFile):
        profile_grid(model, data, ("mu", MU), ("k", K), store=path, progress=False)
    b = profile_grid(model, data, ("mu", MU), ("k", K), store=path, resume=True, progress=False)
    np.testing.assert_array_equal(a.twice_nll, b.twice_nll)
    with pytest.raises(JaxlikeError):
        profile_grid(model, data, ("mu", MU), ("k", K[:3]), store=path, resume=True,
                     progress=False)  # fmt: skip
    with pytest.raises(JaxlikeError):
        profile_grid(model, data, ("mu", MU), ("k", K), fixed={"unc": 0.0}, store=path,
                     resume=True, progress=False)  # fmt: skip


def test_plot(grid, tmp_path):
    out = plot_profile_grid(grid, tmp_path / "g.png", reference={"mu": 0.0, "k": 1.0})
    assert out.exists() and out.stat().st_size > 1000


def _cli(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["grid", *args])
    return code, out.getvalue(), err.getvalue()


def test_cli(tmp_path):
    ws = tmp_path / "ws.json"
    ws.write_text(json.dumps(SPEC))
    h5, png = tmp_path / "g.h5", tmp_path / "g.png"
    base = [str(ws), "--x", "mu:0.4:1.7:3", "--y", "k:0.8:1.6:3", "-o", str(h5), "--no-progress"]
    code, out, err = _cli([*base, "--json", "--plot", str(png), "--reference", "mu=0,k=1"])
    assert code == 0, err
    summary = json.loads(out)
    assert summary["x"]["n"] == 3 and summary["not_converged"] == 0 and Path(png).exists()
    code, _, err = _cli(base)  # exists, neither --resume nor --overwrite
    assert code == 2 and err.count("\n") == 1
    code, out, _ = _cli([*base, "--resume", "--json"])
    assert code == 0 and json.loads(out)["resumed"] == 9
    assert (
        _cli([str(ws), "--x", "nope:0:1:2", "--y", "k:1:2:2", "-o", str(tmp_path / "x.h5")])[0] == 2
    )
    assert _cli([str(ws), "--x", "mu:0:1", "--y", "k:1:2:2"])[0] == 2
    assert _cli(["--x", "mu:0:1:2", "--y", "k:1:2:2"])[0] == 2  # no workspace
    code, _, err = _cli([*base[:-3], "-o", str(tmp_path / "n.h5"), "--fix", "unc=0", "--overwrite"])
    assert code == 0, err


def test_cli_not_converged_exit_3(tmp_path, monkeypatch):
    import jaxlike.scan

    real = jaxlike.scan.profile_grid

    def fake(*a, **kw):
        res = real(*a, **kw)
        res.converged[0, 0] = False
        return res

    monkeypatch.setattr(jaxlike.scan, "profile_grid", fake)
    ws = tmp_path / "ws.json"
    ws.write_text(json.dumps(SPEC))
    args = [str(ws), "--x", "mu:0.4:1.7:2", "--y", "k:0.8:1.6:2", "-o", str(tmp_path / "g.h5")]
    code, _, err = _cli([*args, "--no-progress"])
    assert code == 3 and "did not converge" in err


BELLE2 = DATA / "belle2_bknunu"


@pytest.mark.skipif(not (BELLE2 / "combined_likelihood.json").is_file(), reason="no Belle II data")
def test_belle2_wet_cross_check():
    """2NLL(6.613, 0, 0) − 2NLL(14, 0, 0) = 7.28 with the FF nuisances fixed at 0."""
    from jaxlike.jobs import belle2_wet_workspace

    ws = belle2_wet_workspace(BELLE2)
    model = ws.model()
    data = ws.data(model)
    g = profile_grid(
        model, data, ("C_V", [6.613114906357177, 14.0]), ("C_T", [0.0]),
        fixed={"C_S": 0.0, "ff_bsz2015": 0.0}, progress=False,
    )  # fmt: skip
    assert g.converged.all()
    assert g.twice_nll[0, 0] - g.twice_nll[1, 0] == pytest.approx(7.28, abs=0.1)
    assert g.delta.min() >= -1e-9
