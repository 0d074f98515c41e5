"""Limits on a physics parameter that is a non-linear function of the fitted strength
(issue 15, item 4): a ``[physics]`` section g = k(m) (μ · unit)^p — a coupling from a cross
section, g ∝ √σ — applied to limits, expected bands, toy limits, the HDF5 file, the summary
and the plot."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from jaxlike.cli import main
from jaxlike.exceptions import InvalidScanConfig
from jaxlike.parametric import build_mass_scan, physics_labels
from jaxlike.scan import mass_scan, read_results

ALPHA = 1.0 / 137.035999
S = 10.58**2  # GeV²
FB_PER_INV_GEV2 = 0.3893793721e12  # (ħc)² in fb GeV²


def alp_scale(m):
    """k(m) of g_aγγ = k(m) √σ for σ in fb: σ_a = g² α/24 (1 − m²/s)³ (σ in GeV⁻²)."""
    m = np.asarray(m, float)
    return np.sqrt(24.0 / (FB_PER_INV_GEV2 * ALPHA * (1.0 - m**2 / S) ** 3))


def make_config(physics=True) -> dict:
    """A falling spectrum, 4 hypotheses, limits in fb (unit = 1/(ε L)) and on g_aγγ."""
    rng = np.random.default_rng(7)
    edges = np.linspace(0.0, 10.0, 2001)
    centers = 0.5 * (edges[1:] + edges[:-1])
    expected = 150.0 * (1.0 - 0.06 * centers)
    masses = [1.0, 4.0, 7.0, 9.0]
    table = {"mass": masses, "sigma": [0.05, 0.06, 0.08, 0.09], "unit": [0.004] * 4}
    cfg = {
        "spectrum": {"edges": edges.tolist(), "counts": [rng.poisson(expected).tolist()]},
        "signal": {"shape": "gauss", "tables": [table]},
        "background": {"kind": "bernstein", "order": 1},
        "window": {"lo": 5.0, "hi": 5.0, "n_bins": 20},
        "scan": {"masses": [2.0, 4.0, 6.0, 8.0], "cl": [0.95, 0.9]},
        "plot": {"limit_label": "σ", "limit_unit": "fb"},
    }
    if physics:
        grid = np.linspace(1.0, 9.0, 33)
        cfg["physics"] = {"power": 0.5, "label": "$g_{a\\gamma\\gamma}$", "unit": "GeV$^{-1}$",
                          "mass": grid.tolist(), "scale": alp_scale(grid).tolist()}  # fmt: skip
    return cfg


@pytest.fixture(scope="module")
def scanned():
    scan, masses, cl = build_mass_scan(make_config())
    return scan, masses, mass_scan(scan, masses, cl=cl, progress=False)


def test_limits_on_the_coupling(scanned):
    """g_UL = k(m) (σ_UL)^p exactly, for the observed limit and every expected band (the map
    is increasing, so quantiles map to quantiles), with k(m) the tabulated scale."""
    scan, masses, res = scanned
    assert res.limit_converged.all()
    k = np.array([float(scan.physics_scale(m)["scale"]) for m in masses])
    np.testing.assert_allclose(res.ul_obs_coupling, k[:, None] * np.sqrt(res.ul_obs_phys),
                               rtol=1e-14)  # fmt: skip
    np.testing.assert_allclose(res.ul_exp_coupling,
                               k[:, None, None] * np.sqrt(res.ul_exp_phys), rtol=1e-14)  # fmt: skip
    # the tabulated scale is a monotone cubic between its masses: the analytic one to 1e-4
    np.testing.assert_allclose(k, alp_scale(masses), rtol=1e-4)
    mid = np.array([float(scan.physics_scale(m)["scale"]) for m in (2.1, 8.6)])
    np.testing.assert_allclose(mid, alp_scale([2.1, 8.6]), rtol=1e-4)
    # the expected bands keep their order in g as in σ
    np.testing.assert_array_equal(np.sign(np.diff(res.ul_exp_coupling, axis=-1)),
                                  np.sign(np.diff(res.ul_exp_phys, axis=-1)))  # fmt: skip
    # the section as stored and read back
    assert physics_labels(make_config()) == {
        "power": 0.5, "label": "$g_{a\\gamma\\gamma}$", "unit": "GeV$^{-1}$"
    }  # fmt: skip


def test_without_physics_nothing_changes(scanned):
    """No [physics] section: no coupling fields, the same limits bit for bit."""
    _, masses, res = scanned
    scan0, _, cl = build_mass_scan(make_config(physics=False))
    assert scan0.physics_power is None
    res0 = mass_scan(scan0, masses, cl=cl, progress=False)
    assert res0.ul_obs_coupling is None and "ul_obs_coupling" not in res0
    np.testing.assert_array_equal(res0.ul_obs, res.ul_obs)
    np.testing.assert_array_equal(res0.ul_exp_phys, res.ul_exp_phys)


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda c: c["physics"].update(power=0.0), "physics.power"),
        (lambda c: c["physics"].update(power=-1.0), "physics.power"),
        (lambda c: c["physics"].pop("power"), "physics.power"),
        (lambda c: c["physics"].update(powr=1.0), "physics.powr"),
        (lambda c: c["physics"].update(label=3), "physics.label"),
        (lambda c: c["physics"]["scale"].__setitem__(3, 0.0), "physics.scale"),
        (lambda c: c["physics"]["scale"].pop(), "physics.scale"),
        (lambda c: c["physics"].pop("mass"), "physics.mass"),
        (lambda c: c["physics"].update(mass=list(np.linspace(3.0, 9.0, 33))), "physics.mass"),
    ],
)  # fmt: skip
def test_bad_physics_sections(edit, field):
    cfg = make_config()
    edit(cfg)
    with pytest.raises(InvalidScanConfig) as err:
        build_mass_scan(cfg)
    assert field in str(err.value)


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_cli_file_summary_and_plot(tmp_path, scanned):
    """``jaxlike scan`` stores the coupling limits with the [physics] section (label, unit) in
    the file, the summary names the strongest coupling limit, ``jaxlike plot`` draws it."""
    _, _, res = scanned
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(make_config()))
    code, out, err = _cli("scan", cfg, "-o", tmp_path / "scan.h5", "--json", "--no-progress")
    assert code == 0, err
    s = json.loads(out)
    best = s["limits"][0]["strongest_coupling"]
    assert best["obs"] == pytest.approx(float(np.min(res.ul_obs_coupling[:, 0])), rel=1e-12)
    _, stored, attrs = read_results(tmp_path / "scan.h5")
    np.testing.assert_allclose(stored["ul_exp_coupling"], res.ul_exp_coupling, rtol=1e-12)
    assert physics_labels(attrs["config"])["unit"] == "GeV$^{-1}$"
    code, out, err = _cli("scan", cfg, "-o", tmp_path / "scan2.h5", "--no-progress")
    assert code == 0 and "limit on the coupling" in out
    code, _, err = _cli("plot", tmp_path / "scan.h5", "-o", tmp_path / "g.png", "--units",
                        "coupling")  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a file without a [physics] parameter: one error line
    cfg0 = tmp_path / "cfg0.json"
    cfg0.write_text(json.dumps(make_config(physics=False)))
    assert _cli("scan", cfg0, "-o", tmp_path / "s0.h5", "--no-progress")[0] == 0
    code, _, err = _cli("plot", tmp_path / "s0.h5", "-o", tmp_path / "h.png", "--units",
                        "coupling")  # fmt: skip
    assert code == 2 and "no limits on a [physics] parameter" in err
    assert len(err.strip().splitlines()) == 1


def test_plot_labels_name_the_coupling():
    from jaxlike.cli._plot import _mass_labels

    x, y = _mass_labels(make_config(), "coupling", 0.95)
    assert "g_{a\\gamma\\gamma}" in y and "GeV$^{-1}$" in y
    x, y = _mass_labels(make_config(), "physical", 0.95)
    assert "σ" in y and "fb" in y


def test_toy_limits_on_the_coupling(scanned):
    """Toy-based limits map the same way (``ul_*_toys_coupling``)."""
    scan, masses, _ = scanned
    res = mass_scan(scan, masses[:2], cl=(0.95,), toys={"ntoys": 40, "npoints": 3},
                    progress=False)  # fmt: skip
    k = np.array([float(scan.physics_scale(m)["scale"]) for m in masses[:2]])
    np.testing.assert_allclose(res.ul_obs_toys_coupling,
                               k[:, None] * np.sqrt(res.ul_obs_toys_phys), rtol=1e-14)  # fmt: skip
    np.testing.assert_allclose(res.ul_exp_toys_coupling,
                               k[:, None, None] * np.sqrt(res.ul_exp_toys_phys), rtol=1e-14)  # fmt: skip
    assert np.all(np.isfinite(res.ul_obs_toys_coupling))
