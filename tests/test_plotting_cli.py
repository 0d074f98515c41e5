"""Yield tables (:mod:`jaxlike.analysis._yields`), the figures of :mod:`jaxlike.plotting` and the
``ranking``, ``gof``, ``yields`` and ``plot WORKSPACE`` commands, on a small pyhf validation
workspace (2 channels, shapesys in both, a normfactor POI; 5 parameters).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import pytest
from conftest import DATA

import jaxlike
from jaxlike import analysis, plotting
from jaxlike.cli import main

CASE = DATA / "pyhf_validation" / "validation_2bin_2channel_shapesys.json"
PNG, PDF = b"\x89PNG\r\n\x1a\n", b"%PDF"


@pytest.fixture(scope="module")
def spec():
    if not CASE.exists():
        pytest.skip(f"{CASE} not available")
    return json.loads(CASE.read_text())["workspace"]


@pytest.fixture(scope="module")
def ws_path(spec, tmp_path_factory):
    path = tmp_path_factory.mktemp("ws") / "workspace.json"
    path.write_text(json.dumps(spec))
    return str(path)


@pytest.fixture(scope="module")
def fitted(spec):
    ws = jaxlike.Workspace(spec)
    model = ws.model()
    data = ws.data(model)
    res = jaxlike.fit(model, data)
    assert bool(res.converged)
    return SimpleNamespace(ws=ws, model=model, data=data, res=res)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error: " in lines[0], err
    return lines[0]


# -- yield tables ----------------------------------------------------------------------------


def test_prefit_yields_equal_expected_data_with_prefit_widths(fitted, spec):
    m, cfg = fitted.model, fitted.model.config
    t = analysis.prefit_yields(m, fitted.data)
    init = cfg.suggested_init()
    expected = np.asarray(m.expected_data(init, include_auxdata=False))
    np.testing.assert_allclose(t.bin_total, expected, rtol=1e-12)
    np.testing.assert_allclose(t.bin_yields, np.asarray(m.expected_by_sample(init)), rtol=1e-12)
    for c, name in enumerate(cfg.channels):
        np.testing.assert_allclose(t.total[c], expected[cfg.channel_slices[name]].sum())
    # pre-fit width of a shapesys γ is δ/ν0, so σ(background bin) is the spec's δ
    bkg = cfg.samples.index("background")
    for channel in spec["channels"]:
        sample = next(s for s in channel["samples"] if s["name"] == "background")
        delta = next(mod["data"] for mod in sample["modifiers"] if mod["type"] == "shapesys")
        sl = t.bin_slice(channel["name"])
        np.testing.assert_allclose(t.bin_uncertainty[bkg, sl], delta, rtol=1e-10)
    assert t.kind == "prefit" and np.all(np.isnan(t.sampled_bin_total_uncertainty))
    rows = t.rows()
    assert {r[1] for r in rows} == {"background", "signal", "total", "data"}


def test_postfit_uncertainty_is_linearised_covariance_and_matches_draws(fitted):
    m, res, cfg = fitted.model, fitted.res, fitted.model.config
    t = analysis.postfit_yields(m, fitted.data, res, n_samples=20000, seed=1)
    theta, cov = np.asarray(res.bestfit), np.asarray(res.covariance)
    jac = np.asarray(jax.jacfwd(m.expected_actualdata)(theta))  # [bins, pars]
    for b in range(cfg.nmaindata):
        sigma = np.sqrt(jac[b] @ cov @ jac[b])
        np.testing.assert_allclose(t.bin_total_uncertainty[b], sigma, rtol=1e-9)
    for c, name in enumerate(cfg.channels):
        j = jac[cfg.channel_slices[name]].sum(axis=0)
        np.testing.assert_allclose(t.total_uncertainty[c], np.sqrt(j @ cov @ j), rtol=1e-9)
    np.testing.assert_allclose(t.bin_total, np.asarray(m.expected_actualdata(theta)), rtol=1e-12)
    # 20000 draws: relative standard error of a σ estimate ~ 1/√(2N) = 0.5 %; the model is
    # nearly linear within ±1σ here (shapesys γ times templates, μ times the signal)
    np.testing.assert_allclose(t.sampled_bin_total_uncertainty, t.bin_total_uncertainty, rtol=0.03)
    np.testing.assert_allclose(t.sampled_total_uncertainty, t.total_uncertainty, rtol=0.03)


# -- figures ---------------------------------------------------------------------------------


def test_plot_functions_write_png_and_pdf(fitted, tmp_path):
    m, d, res = fitted.model, fitted.data, fitted.res
    t = analysis.postfit_yields(m, d, res)
    pulls = analysis.pulls(m, d, res)
    imp = analysis.impacts(m, d, fit_result=res)
    names, corr = analysis.correlation_matrix(m, res)
    scan = analysis.profile_scan(m, d, "mu", np.linspace(0.0, 1.5, 7), fit_result=res)
    written = [
        plotting.plot_yields(t, "signal", tmp_path / "signal.png", logy=True),
        *plotting.plot_all_yields(t, tmp_path / "", fmt="pdf"),
        plotting.plot_pulls(pulls, tmp_path / "pulls.png"),
        plotting.plot_ranking(imp, tmp_path / "ranking.pdf", pulls=pulls, top=3),
        plotting.plot_ranking(imp, tmp_path / "ranking_nopulls", fmt="png"),
        plotting.plot_correlation(names, corr, tmp_path / "corr.png"),
        plotting.plot_profile_scan(scan, tmp_path / "scan.pdf", sigma=float(res.uncertainties[0])),
    ]
    assert [p.name for p in written] == [
        "signal.png", "control_postfit.pdf", "signal_postfit.pdf", "pulls.png", "ranking.pdf",
        "ranking_nopulls.png", "corr.png", "scan.pdf",
    ]  # fmt: skip
    for p in written:
        assert p.read_bytes()[: 8 if p.suffix == ".png" else 4] == (
            PNG if p.suffix == ".png" else PDF
        )
    with pytest.raises(OSError):
        plotting.plot_pulls(pulls, tmp_path / "missing" / "pulls.png")
    from jaxlike.cli._plot import signal_samples  # the samples `plot --what yields` stacks on top

    assert signal_samples(m, res.bestfit) == ["signal"]


def test_limit_figures_are_public(tmp_path):
    """The figures of ``jaxlike plot SCAN.h5`` (Brazil band, significance, exclusion map)."""
    rng = np.random.default_rng(0)
    x = np.linspace(1.0, 5.0, 12)
    exp = np.sort(rng.uniform(0.5, 3.0, (12, 5)), axis=1)
    grid = np.array([(a, b) for a in np.linspace(0, 1, 5) for b in np.linspace(0, 2, 4)])
    cls_obs, cls_exp = rng.uniform(0, 0.2, len(grid)), rng.uniform(0, 0.2, (len(grid), 5))
    written = [
        plotting.plot_brazil_band(x, exp[:, 2] * 1.1, exp, tmp_path / "brazil.png", logy=True),
        plotting.plot_significance(x, rng.normal(0, 2, 12), tmp_path / "z", fmt="pdf"),
        plotting.plot_exclusion(grid, cls_obs, cls_exp, tmp_path / "excl.png", labels=["a", "b"]),
    ]
    assert [p.name for p in written] == ["brazil.png", "z.pdf", "excl.png"]
    for p in written:
        assert p.read_bytes()[: 8 if p.suffix == ".png" else 4] == (
            PNG if p.suffix == ".png" else PDF
        )
    with pytest.warns(plotting.NoContourWarning, match="no exclusion contour"):
        plotting.plot_exclusion(grid[:2], cls_obs[:2], cls_exp[:2], tmp_path / "two.png")
    assert (tmp_path / "two.png").stat().st_size > 0


# -- command line ----------------------------------------------------------------------------


def test_ranking_json_table_and_plot(capsys, ws_path, fitted, tmp_path):
    code, out, err = run(capsys, "ranking", ws_path, "--json", "--top", "3",
                         "-o", tmp_path / "ranking.png")  # fmt: skip
    assert code == 0, err
    r = json.loads(out)
    assert list(r) == ["poi", "poi_hat", "poi_uncertainty", "parameters", "converged", "plot"]
    assert r["poi"] == "mu" and r["converged"] is True and len(r["parameters"]) == 3
    assert list(r["parameters"][0]) == [
        "name", "type", "bestfit", "prefit_width", "postfit_width", "pull", "constraint",
        "prefit_up", "prefit_down", "postfit_up", "postfit_down", "clipped", "converged",
    ]  # fmt: skip
    np.testing.assert_allclose(r["poi_hat"], float(fitted.res.bestfit[0]), rtol=1e-6)
    # cabinetry's ranking order: the larger post-fit |Δμ| first, as Impacts.ranked()
    key = [max(abs(p["postfit_up"]), abs(p["postfit_down"])) for p in r["parameters"]]
    assert key == sorted(key, reverse=True)
    imp = analysis.impacts(fitted.model, fitted.data, fit_result=fitted.res)
    assert [p["name"] for p in r["parameters"]] == [row[0] for row in imp.ranked()[:3]]
    assert Path(r["plot"]).read_bytes()[:8] == PNG
    code, out, err = run(capsys, "ranking", ws_path)
    assert code == 0, err
    assert out.splitlines()[2].split()[:3] == ["#", "parameter", "pull"]


def test_gof_json(capsys, ws_path):
    code, out, err = run(capsys, "gof", ws_path, "--json", "--toys", "20")
    assert code == 0, err
    g = json.loads(out)
    assert list(g) == ["statistic", "ndf", "pvalue", "twice_nll", "saturated_twice_nll",
                       "n_toys", "toys_converged", "pvalue_toys"]  # fmt: skip
    assert g["ndf"] == 3 and g["n_toys"] == 20 and 0.0 <= g["pvalue_toys"] <= 1.0
    np.testing.assert_allclose(g["statistic"], g["twice_nll"] - g["saturated_twice_nll"])


def test_yields_json_and_plots(capsys, ws_path, fitted, tmp_path):
    code, out, err = run(capsys, "yields", ws_path, "--prefit", "--json", "-o", tmp_path / "y")
    assert code == 0, err
    y = json.loads(out)
    assert list(y) == ["kind", "n_samples", "channels", "plots"] and y["kind"] == "prefit"
    assert list(y["channels"]) == ["control", "signal"]
    signal = y["channels"]["signal"]
    assert list(signal) == ["samples", "total", "data", "bins"]
    assert list(signal["samples"]) == ["background", "signal"]
    assert list(signal["total"]) == ["yield", "uncertainty", "sampled_uncertainty"]
    init = fitted.model.config.suggested_init()
    expected = np.asarray(fitted.model.expected_actualdata(init))[2:]
    np.testing.assert_allclose(signal["bins"]["total"], expected, rtol=1e-12)
    assert [Path(p).name for p in y["plots"]] == ["control_prefit.png", "signal_prefit.png"]
    assert all(Path(p).read_bytes()[:8] == PNG for p in y["plots"])
    code, out, err = run(capsys, "yields", ws_path, "--samples", "500")
    assert code == 0, err
    assert out.startswith("post-fit yields") and "sampled" in out
    # the table without the sampled column (4 columns; used to crash on a 5-column alignment)
    code, out, err = run(capsys, "yields", ws_path, "--postfit", "-o", tmp_path / "t")
    assert code == 0, err
    assert out.startswith("post-fit yields") and "sampled" not in out


def test_plot_workspace_draws_fit_products(capsys, ws_path, tmp_path):
    what = "pulls,ranking,correlation,yields,scan:mu"
    code, out, err = run(capsys, "plot", ws_path, "--what", what, "-o", tmp_path / "figs")
    assert code == 0, err
    names = [Path(p).name for p in out.split()]
    assert names == ["pulls.png", "ranking.png", "correlation.png", "control_prefit.png",
                     "signal_prefit.png", "control_postfit.png", "signal_postfit.png",
                     "scan_mu.png"]  # fmt: skip
    assert all(Path(p).read_bytes()[:8] == PNG for p in out.split())
    code, out, err = run(capsys, "plot", ws_path, "--what", "pulls,yields", "--format", "pdf",
                         "--style", "ATLAS", "--max-pars", "2", "--prefix", "v_",
                         "-o", tmp_path / "pdf")  # fmt: skip
    assert code == 0 and (tmp_path / "pdf" / "v_pulls.pdf").read_bytes()[:4] == PDF
    assert (tmp_path / "pdf" / "v_signal_postfit.pdf").read_bytes()[:4] == PDF
    code, out, err = run(capsys, "plot", ws_path, "--style", "atlas", "-o", tmp_path)
    assert code == 2 and "invalid choice: 'atlas'" in one_error_line(err)


def test_bad_input_is_one_line_and_exit_2(capsys, ws_path, tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "file").write_text("")
    for argv in (
        ["ranking", tmp_path / "missing.json"],
        ["ranking", ws_path, "--top", "0"],
        ["gof", tmp_path / "bad.json", "--json"],
        ["gof", ws_path, "--toys", "-1"],
        ["yields", ws_path, "-p", ws_path],
        ["yields", ws_path, "--prefit", "--postfit"],
        ["yields", ws_path, "--prefit", "-o", tmp_path / "file" / "sub"],
        ["plot", ws_path, "--what", "pulls,bogus"],
        ["plot", ws_path, "--what", "scan:nope", "-o", tmp_path],
        ["plot", ws_path, "--what", "pulls", "--max-pars", "0", "-o", tmp_path],
        ["plot", ws_path, "--what", "pulls", "--prefix", "a/b_", "-o", tmp_path],
    ):
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == "", argv
        one_error_line(err)


def test_not_converged_fit_exits_3(capsys, monkeypatch, ws_path):
    def stuck_fit(model, data, **kwargs):
        n = model.config.npars
        return SimpleNamespace(bestfit=np.ones(n), converged=np.array(False))

    monkeypatch.setattr(jaxlike, "fit", stuck_fit)
    for argv in (["ranking", ws_path], ["gof", ws_path], ["yields", ws_path]):
        code, out, err = run(capsys, *argv)
        assert code == 3 and "did not converge" in one_line(err), argv


def one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]
