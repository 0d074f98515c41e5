"""Figures a physicist would show, results that print their values.

- Layout: pulls, ranking and correlation of 200 long parameter names stay readable (one row
  per name, fonts at least ``MIN_FONT``, no overlapping labels, shortened names listed in full
  in a footnote, the ranking legend above the bars); stacked yields with the largest
  background at the bottom, the signal on top and the legend beside the stack.
- Limits: the Brazil band and significance break at vetoed ranges; ``jaxlike plot`` labels the
  axes from the stored scan configuration (``[plot]``) and patch scans from their labels.
- Styles: ``style=None`` is the same figure with or without mplhep; mplhep styles work.
- Ranking order: cabinetry 0.6's (``visualize.ranking``), exactly.
- ``repr`` of the result classes: numbers, shapes and the status spelled out, also under jit.

Figures are laid out (``draw_without_rendering``) instead of rasterised where only the layout
is checked: rendering 200 names takes seconds per figure on a loaded CI machine.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlike import analysis, plotting
from jaxlike.exceptions import InvalidArgument, InvalidScanConfig
from jaxlike.plotting import _fit, _limits, _yields

N = 200


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions make, laid out instead of saved (newest last); the font
    their axis labels are drawn in (in the figure's style) is kept as ``fig.label_font``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    made = []

    def keep(fig, path):
        FigureCanvasAgg(fig)
        fig.draw_without_rendering()
        fig.label_font = fig.axes[0].xaxis.label.get_fontname()
        made.append(fig)
        return Path(path)

    for module in (_fit, _yields, _limits):
        monkeypatch.setattr(module, "save", keep)
    return made


@pytest.fixture(scope="module")
def long_names():
    """Pulls and impacts of 200 parameters with HEPData-like names of 45–100 characters."""
    rng = np.random.default_rng(7)
    names = tuple(
        f"alpha_ATLAS_JET_EffectiveNP_Statistical{i}_{'modelling_' * (i % 6)}region_{i}"
        for i in range(N)
    )
    pulls = analysis.Pulls(
        names=names, types=("normsys",) * N, index=tuple(range(N)),
        bestfit=rng.normal(0, 1, N), uncertainty=np.full(N, 0.8), center=np.zeros(N),
        prefit_width=np.ones(N), pull=rng.normal(0, 0.7, N), constraint=rng.uniform(0.3, 1, N),
    )  # fmt: skip
    s = rng.normal(0, 0.1, (N, 4)) * rng.uniform(0, 1, (N, 1))
    s[:10, 2:] = 0.0  # ties at zero impact
    imp = analysis.Impacts(
        names=names, types=("normsys",) * N, index=tuple(range(N)), poi_name="mu_SIG",
        poi_hat=np.array(1.02), poi_uncertainty=np.array(0.31), bestfit=np.asarray(pulls.bestfit),
        prefit_width=np.ones(N), postfit_width=np.full(N, 0.8), prefit_up=s[:, 0],
        prefit_down=s[:, 1], postfit_up=s[:, 2], postfit_down=s[:, 3],
        values=np.zeros((N, 4)), clipped=np.zeros((N, 4), bool), converged=np.ones((N, 4), bool),
    )  # fmt: skip
    corr = np.corrcoef(rng.normal(size=(N, 300)))
    return SimpleNamespace(names=names, pulls=pulls, impacts=imp, corr=corr)


def _labels(axis):
    return [t for t in axis.get_ticklabels() if t.get_text()]


def _top_down(axis):
    """The tick label texts of a names axis from the top row down."""
    pairs = zip(axis.get_ticklocs(), (t.get_text() for t in axis.get_ticklabels()), strict=True)
    return [text for _, text in sorted(pairs, reverse=True)]


def _readable(texts, fig, along="y"):
    """Fonts at least MIN_FONT, every label inside the figure, neighbours not overlapping."""
    assert all(t.get_fontsize() >= plotting.MIN_FONT for t in texts)
    boxes = sorted((t.get_window_extent() for t in texts), key=lambda b: b.y0 if along == "y"
                   else b.x0)  # fmt: skip
    page = fig.bbox.padded(2.0)  # constrained layout's rounding (LHCb2 saves with bbox tight)
    for b in boxes:
        assert page.x0 <= b.x0 and b.x1 <= page.x1 and page.y0 <= b.y0 and b.y1 <= page.y1
    for a, b in zip(boxes, boxes[1:], strict=False):
        gap = b.y0 - a.y1 if along == "y" else b.x0 - a.x1
        assert gap >= -0.5, (a, b)


def _footnote(fig):
    return "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_pulls_of_200_long_names(figures, long_names):
    plotting.plot_pulls(long_names.pulls, "pulls.png")
    fig = figures[-1]
    ax = fig.axes[0]
    labels = _labels(ax.yaxis)
    assert len(labels) == N
    _readable(labels, fig)
    shortened = [t.get_text() for t in labels if "…" in t.get_text()]
    assert shortened and all(len(t) <= 50 for t in shortened)
    listed = {line.split(") ", 1)[-1] for line in _footnote(fig).splitlines()}
    for name in long_names.names:  # every shortened name is listed in full, no other
        assert (len(name) > 50) == (name in listed)
    plotting.plot_pulls(long_names.pulls, "pulls.png", max_pars=15)
    kept = _top_down(figures[-1].axes[0].yaxis)
    largest = np.sort(np.argsort(-np.abs(long_names.pulls.pull))[:15])
    assert kept == [plotting.shorten([long_names.names[i] for i in largest], 50)[0][k]
                    for k in range(15)]  # fmt: skip


def test_ranking_legend_above_the_bars(figures, long_names):
    imp = long_names.impacts
    plotting.plot_ranking(imp, "ranking.png", pulls=long_names.pulls, top=25)
    fig = figures[-1]
    pax = next(a for a in fig.axes if _labels(a.yaxis))
    names = _top_down(pax.yaxis)
    expected, _ = plotting.shorten([imp.names[i] for i in imp.order()[:25]], 50)
    assert names == expected
    _readable(_labels(pax.yaxis), fig)
    (legend,) = pax.figure.legends
    top = max(a.get_tightbbox().y1 for a in fig.axes if a.figure is pax.figure)
    assert legend.get_window_extent().y0 >= top - 1.0  # above the bars and the Δμ axis
    assert len(legend.get_texts()) == 5


def test_correlation_font_floor_and_max_pars(figures, long_names):
    names, corr = long_names.names[:40], long_names.corr[:40, :40]
    plotting.plot_correlation(names, corr, "corr.png")
    fig = figures[-1]
    ax = fig.axes[0]
    assert len(_labels(ax.yaxis)) == len(_labels(ax.xaxis)) == 40
    _readable(_labels(ax.yaxis), fig)
    _readable(_labels(ax.xaxis), fig, along="x")
    plotting.plot_correlation(names, corr, "corr.png", max_pars=8)
    ax = figures[-1].axes[0]
    off = np.abs(corr - np.eye(40)).max(axis=1)
    keep = np.sort(np.argsort(-off)[:8])
    assert [t.get_text() for t in _labels(ax.yaxis)] == plotting.shorten(
        [names[i] for i in keep], 40
    )[0]
    assert "8 of 40" in ax.get_title()


def _table(samples, yields, data):
    yields = np.asarray(yields, float)
    total = yields.sum(axis=0)
    chan = {"samples": list(samples), "yields": yields, "uncertainty": 0.1 * yields,
            "total": total, "total_uncertainty": 0.05 * total, "data": np.asarray(data, float),
            "sampled_total_uncertainty": np.full(total.shape, np.nan)}  # fmt: skip
    return SimpleNamespace(kind="postfit", samples=tuple(samples), channels=("SR",),
                           channel=lambda c: chan)  # fmt: skip


def test_yields_stack_order_and_legend_beside_the_stack(figures):
    long = "MGPy8EG_A14N23LO_C1N2_WZ_200p0_100p0_3L_2L7_and_a_longer_tail"
    t = _table(["diboson", long, "fakes", "ttbar"],
               [[5, 3], [2, 2], [1, 1], [30, 20]], [40, 27])  # fmt: skip
    plotting.plot_yields(t, "SR", "sr.png", signal=[long])
    fig = figures[-1]
    ax = fig.axes[0]
    tops = [float(np.max(s.get_path().vertices[:, 1])) for s in ax.patches[:4]]
    assert tops == [30.0, 35.0, 36.0, 38.0]  # bottom up: ttbar, diboson, fakes, signal
    legend = ax.get_legend()
    texts = [x.get_text() for x in legend.get_texts()]
    assert texts[:4] == ["data", plotting.shorten([long], 50)[0][0], "fakes", "diboson"]
    assert texts[4:] == ["ttbar", "uncertainty"]
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1  # not on the stack
    assert long in _footnote(fig)
    assert plotting.stack_order(["a", "s", "b"], [[1.0], [9.0], [3.0]], signal=["s"]) == [2, 0, 1]


def test_brazil_band_and_significance_break_at_vetoes(figures):
    x = np.array([0.2, 0.3, 0.45, 0.65, 0.8, 1.05, 1.2])
    vetoes = [[0.5, 0.6], [0.91, 1.01], [5.0, 6.0]]
    exp = np.sort(np.random.default_rng(0).uniform(0.5, 2, (7, 5)), axis=1)
    plotting.plot_brazil_band(x, exp[:, 2], exp, "b.png", vetoes=vetoes, xlabel="m [GeV]")
    ax = figures[-1].axes[0]
    observed = ax.lines[-1]
    gaps = np.flatnonzero(np.isnan(observed.get_ydata()))
    assert len(gaps) == 2 and [observed.get_xdata()[g] for g in gaps] == [0.55, 0.925]
    bands = [c for c in ax.collections if len(c.get_paths()) == 3]  # three pieces, not one
    assert len(bands) == 2
    shaded = [p for p in ax.patches if p.get_label() == "vetoed"]
    assert len(shaded) == 1 and len(ax.patches) == 2  # the third veto lies outside the axis
    plotting.plot_significance(x, exp[:, 0], "z.png", vetoes=vetoes, veto_band=False)
    z = figures[-1].axes[0].lines[0].get_ydata()
    assert np.isnan(z).sum() == 2 and not figures[-1].axes[0].patches
    xs, col = plotting.veto_gaps([1.0, 2.0], None, [3.0, 4.0])
    assert xs.tolist() == [1.0, 2.0] and col.tolist() == [3.0, 4.0]


def test_style_none_is_the_same_figure_without_mplhep(tmp_path, monkeypatch, long_names):
    pytest.importorskip("mplhep")  # in the test extra
    pulls = analysis.Pulls(**{**_fields(long_names.pulls, 6)})
    a = plotting.plot_pulls(pulls, tmp_path / "a.png")
    plotting.plot_pulls(pulls, tmp_path / "atlas.png", style="ATLAS")
    monkeypatch.setitem(sys.modules, "mplhep", None)  # import mplhep now fails
    b = plotting.plot_pulls(pulls, tmp_path / "b.png")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != (tmp_path / "atlas.png").read_bytes()
    with pytest.raises(InvalidArgument, match=r"pip install 'jaxlike\[plot\]'"):
        plotting.plot_pulls(pulls, tmp_path / "c.png", style="CMS")
    with pytest.raises(InvalidArgument, match="unknown style 'atlas'"):
        plotting.plot_pulls(pulls, tmp_path / "c.png", style="atlas")


def _fields(pulls, n):
    """The first ``n`` parameters of ``pulls`` as keyword arguments of Pulls."""
    arrays = ("bestfit", "uncertainty", "center", "prefit_width", "pull", "constraint")
    out = {k: np.asarray(getattr(pulls, k))[:n] for k in arrays}
    return dict(names=pulls.names[:n], types=pulls.types[:n], index=pulls.index[:n], **out)


def test_mplhep_styles_keep_names_readable(figures, long_names):
    pytest.importorskip("mplhep")
    for style in ("CMS", "LHCb2"):
        plotting.plot_ranking(long_names.impacts, "r.png", pulls=long_names.pulls, top=12,
                              style=style)  # fmt: skip
        fig = figures[-1]
        pax = next(a for a in fig.axes if _labels(a.yaxis))
        _readable(_labels(pax.yaxis), fig)
        assert len(pax.yaxis.get_minor_locator().tick_values(0, 12)) == 0  # no minor ticks
        assert fig.label_font != "DejaVu Sans"  # the style's font (TeX Gyre Heros, Termes)


def test_ranking_order_is_cabinetry(long_names):
    """Impacts.order/ranked, the CLI table and the plot: cabinetry 0.6's visualize.ranking
    order (its tick labels, top to bottom), ties included."""
    cabinetry = pytest.importorskip("cabinetry")
    imp = long_names.impacts
    res = cabinetry.fit.RankingResults(
        np.asarray(imp.bestfit), np.asarray(imp.postfit_width), list(imp.names),
        np.asarray(imp.prefit_up), np.asarray(imp.prefit_down), np.asarray(imp.postfit_up),
        np.asarray(imp.postfit_down),
    )  # fmt: skip
    fig = cabinetry.visualize.ranking(res, save_figure=False, close_figure=True)
    ax = next(a for a in fig.axes if _labels(a.yaxis))
    theirs = _top_down(ax.yaxis)
    assert [r[0] for r in imp.ranked()] == [imp.names[i] for i in imp.order()] == theirs


def test_mass_scan_figures_use_the_stored_labels_and_vetoes(figures, monkeypatch):
    import jaxlike.scan
    from jaxlike.cli._plot import plot_scan

    m = np.array([0.2, 0.3, 0.45, 0.65, 0.8])
    exp = np.sort(np.random.default_rng(1).uniform(0.5, 2, (5, 1, 5)), axis=2)
    res = {"ul_obs": exp[:, :, 2], "ul_exp": exp, "ul_obs_phys": 2 * exp[:, :, 2],
           "ul_exp_phys": 2 * exp, "significance": np.zeros(5)}  # fmt: skip
    config = {"kind": "mass", "window": {"vetoes": [[0.5, 0.6]]},
              "plot": {"label": "$M^2$", "unit": "GeV$^2$", "limit_unit": "pb"}}  # fmt: skip
    attrs = {"kind": "mass", "cl": [0.9], "config": config}
    monkeypatch.setattr(jaxlike.scan, "read_results", lambda path: ({"mass": m}, res, attrs))
    plot_scan("scan.h5", "brazil.png")
    brazil, sig = figures[-2].axes[0], figures[-1].axes[0]
    assert brazil.get_xlabel() == sig.get_xlabel() == "$M^2$ [GeV$^2$]"
    assert brazil.get_ylabel() == "90% CL upper limit on σ × B [pb]"
    assert np.isnan(brazil.lines[-1].get_ydata()).sum() == 1
    plot_scan("scan.h5", "brazil.png", units="mu", ylabel="my label")
    assert figures[-2].axes[0].get_ylabel() == "my label"
    attrs["config"] = {"kind": "mass"}  # no [plot]: the defaults
    plot_scan("scan.h5", "brazil.png", units="mu")
    assert figures[-2].axes[0].get_xlabel() == "m [GeV]"
    assert figures[-2].axes[0].get_ylabel() == "90% CL upper limit on μ"


def test_patch_scan_axes_named_after_the_patches(figures, monkeypatch):
    import jaxlike.scan
    from jaxlike.cli._plot import plot_scan

    grid = np.array([(a, b) for a in (100.0, 200.0, 300.0) for b in (0.0, 50.0)])
    names = [f"ERJR_{a:g}p0_{b:g}p0" for a, b in grid]
    rng = np.random.default_rng(2)
    res = {"cls_obs": rng.uniform(0, 0.2, 6), "cls_exp": rng.uniform(0, 0.2, (6, 5))}
    attrs = {"kind": "patches", "cl": [0.95], "patch_names": names,
             "config": {"labels": ["x0", "x1"], "test_poi": 1.0}}  # fmt: skip
    monkeypatch.setattr(jaxlike.scan, "read_results",
                        lambda path: ({"values": grid}, res, attrs))  # fmt: skip
    plot_scan("grid.h5", "excl.png")
    ax = figures[-1].axes[0]
    assert ax.get_xlabel() == "x0 in patch names ERJR_x0_x1"
    assert ax.get_ylabel() == "x1 in patch names ERJR_x0_x1"
    attrs["config"]["labels"] = ["m_C1N2", "m_N1"]  # a patchset's own labels
    plot_scan("grid.h5", "excl.png")
    assert (figures[-1].axes[0].get_xlabel(), figures[-1].axes[0].get_ylabel()) == (
        "m_C1N2", "m_N1")  # fmt: skip


def test_plot_labels_config_and_examples(tmp_path):
    from jaxlike.examples import write_zprime_example
    from jaxlike.parametric import PLOT_LABELS, build_mass_scan, load_config, plot_labels

    assert plot_labels({}) == PLOT_LABELS
    with pytest.raises(InvalidScanConfig, match="did you mean 'label'"):
        plot_labels({"plot": {"lable": "m"}})
    with pytest.raises(InvalidScanConfig, match="plot.unit: must be a string"):
        plot_labels({"plot": {"unit": 1}})
    cfg = load_config(write_zprime_example(tmp_path))
    labels = plot_labels(cfg)
    assert (labels["label"], labels["unit"]) == ("$M^2_{\\mathrm{recoil}}$", "GeV$^2$")
    assert labels["limit_unit"] == "fb" and "Z'" in labels["limit_label"]
    cfg["plot"]["unitt"] = "GeV"  # checked before the spectrum is read
    with pytest.raises(InvalidScanConfig, match="plot.unitt"):
        build_mass_scan(cfg)


def _fit_result(batch=()):
    from jaxlike.fit import FitResult

    def full(shape, value, dtype=float):
        return jnp.full(batch + shape, value, dtype)

    return FitResult(
        bestfit=jnp.broadcast_to(jnp.linspace(0.5, 1.5, 33), batch + (33,)),
        uncertainties=full((33,), 0.1), covariance=full((33, 33), 0.01), twice_nll=full((), 87.3),
        converged=full((), True, bool), status=full((), 0, int), iterations=full((), 12, int),
        edm=full((), 1e-12), grad_norm=full((), 1e-9), at_bound=full((33,), False, bool),
        fixed=full((33,), False, bool), held=full((33,), False, bool),
        degenerate=full((33,), False, bool), n_local_minima=full((), 1, int),
    )  # fmt: skip


def test_result_reprs_print_numbers():
    from jaxlike.fit import result_repr
    from jaxlike.infer import UpperLimitResult
    from jaxlike.scan import MassScanResult

    text = repr(_fit_result())
    assert text.startswith("FitResult(\n    bestfit=f64[33] [0.5, 0.5312, 0.5625, …, 1.5],")
    for part in (
        "twice_nll=87.3,",
        "converged=True,",
        "status=0 (converged),",
        "at_bound=bool[33]: 0 of 33 True,",
        "covariance=f64[33,33] in [0.01, 0.01]",
    ):
        assert part in text
    import equinox as eqx

    batched = eqx.tree_at(lambda r: r.status, _fit_result((3,)), jnp.array([0, 2, 0]))
    text = repr(batched)
    assert "status=[2× converged, 1× stalled above tolerance]" in text
    assert "twice_nll=[87.3, 87.3, 87.3]" in text
    ul = UpperLimitResult(obs=jnp.array(1.25), exp=jnp.array([0.5, 0.7, 1.0, 1.4, 1.9]),
                          cl=jnp.array(0.95), converged=jnp.array(True),
                          iterations=jnp.array(9), bracket=jnp.array([0.0, 10.0]))  # fmt: skip
    assert repr(ul) == (
        "UpperLimitResult(\n    obs=1.25,\n    exp=[0.5, 0.7, 1, 1.4, 1.9],\n    cl=0.95,\n"
        "    converged=True,\n    iterations=9,\n    bracket=[0, 10],\n)"
    )
    z = np.linspace(-1, 3, 300)
    r = MassScanResult(*[z] * 11)
    assert "significance=f64[300] [-1, -0.9866, -0.9732, …, 3]" in repr(r)
    assert "ul_obs_toys" not in repr(r)  # None fields left out
    assert result_repr(r) == repr(r)


def test_repr_under_jit_and_vmap():
    seen = []

    @jax.jit
    def f(r):
        seen.append(repr(r))  # at trace time: shapes, no values
        return r

    out = f(_fit_result())
    assert "twice_nll=f64[] (traced)" in seen[0] and "status=i64[] (traced)" in seen[0]
    assert "twice_nll=87.3" in repr(out)
    many = jax.vmap(lambda x: _fit_result())(jnp.arange(4))
    assert "converged=[True, True, True, True]" in repr(many)
    assert "status=[4× converged]" in repr(many)
