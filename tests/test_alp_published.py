"""The ALP example as the published search ran it (issue 15, item 5;
``jaxlike.examples._alp_segments``): two segments (M²_γγ, M²_recoil) of one array layout, so
one compiled program serves both; a background order per mass range; an envelope of the
orders −1, nominal, +1; one-sided (CLs+b) limits on σ and on g_aγγ. The scan itself runs as
the README's main job (tests/test_readme.py::test_main_job)."""

from __future__ import annotations

import tomllib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlike.cli._scan_segments import _segments, is_segmented
from jaxlike.examples import ALP_LUMI_FB, alp_resolution, write_alp_segments_example
from jaxlike.examples._alp_segments import ALP_SPLIT_MASS, ALP_SQRT_S, _recoil_sigma
from jaxlike.examples._scans import _dscb_binned
from jaxlike.parametric import Envelope, build_mass_scan
from jaxlike.scan import Segment, mass_scan

FB_IN_GEV2 = 1e-39 / 0.3893794e-27  # 1 fb in GeV⁻²
ALPHA = 1.0 / 137.035999


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    path = write_alp_segments_example(tmp_path_factory.mktemp("alp"), seed=0)
    return path, _segments(path)


def test_two_segments_in_the_published_variables(example):
    path, (segs, cl, rules, labels) = example
    assert [s.name for s in segs] == ["gg", "recoil"]
    assert [s.transform for s in segs] == ["m2", "m2"]
    assert cl == (0.95,) and rules == ["clsb", "clsb"]
    assert labels == {"label": "$m_a$", "unit": "GeV"}  # the stitched axis is the mass
    assert [s.masses.size for s in segs] == [229, 81]
    assert "310 hypotheses" in path.read_text().split("\n[")[0]
    assert is_segmented(path) and not is_segmented(path.parent / "alp_gg_scan.toml")
    low, high = segs[0].mass, segs[1].mass
    assert low[0] == pytest.approx(0.2) and low[-1] <= ALP_SPLIT_MASS < high[0]
    assert high[-1] == pytest.approx(9.7, abs=0.05)
    # the hypotheses step by 2σ in each fit variable; the gaps are vetoes
    xs = segs[0].masses
    gg = segs[0].scan.tables[0](jnp.asarray(xs[:-1]))["sigma"]
    step = np.isclose(np.diff(xs), 2 * np.asarray(gg), rtol=1e-6)
    assert np.sum(~step) == 2  # η, η′ (the π⁰ veto lies below 0.2 GeV)
    vetoes = np.asarray(segs[0].scan.models[0].vetoes)
    for i in np.flatnonzero(~step):
        assert np.any((vetoes[:, 0] > xs[i]) & (vetoes[:, 1] < xs[i + 1]))
    # σ_x of M²_γγ is 2 m σ_m; the recoil variable takes over where it is as good
    table = tomllib.loads((path.parent / "alp_gg_scan.toml").read_text())["signal"]["tables"][0]
    m_tab = np.sqrt(table["mass"])
    np.testing.assert_allclose(table["sigma"], 2 * m_tab * alp_resolution(m_tab), rtol=2e-5)
    x = ALP_SPLIT_MASS**2
    gg_at, rec_at = 2 * ALP_SPLIT_MASS * alp_resolution(ALP_SPLIT_MASS), _recoil_sigma(x)
    assert abs(rec_at / gg_at - 1) < 0.01
    m = 9.0  # above: the recoil mass resolves better (σ_m = σ_x / 2m)
    assert _recoil_sigma(m * m) / (2 * m) < 0.5 * alp_resolution(m)


def test_one_array_layout_for_both_segments(example):
    """Same tree structure (statics included) and leaf shapes: one compiled program."""
    _, (segs, *_) = example
    a, b = (s.scan for s in segs)
    assert isinstance(a, Envelope) and isinstance(b, Envelope)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert [np.shape(x) for x in jax.tree.leaves(a)] == [np.shape(x) for x in jax.tree.leaves(b)]


def test_orders_by_range_and_the_envelope(example):
    path, (segs, *_) = example
    for seg, below in zip(segs, ([1.0, 60.0], [10.0, 64.0]), strict=True):
        env = seg.scan
        assert env.names == ("order-1", "nominal", "order+1") and env.method == "profile"
        assert float(env.penalty) == 1.0
        orders = [m.orders for m in env.models]
        assert orders == [(4, 3, 1), (5, 4, 2), (6, 5, 3)]
        for m in env.models:
            np.testing.assert_array_equal(np.asarray(m.order_below), below)
    # the nominal order at a mass (GeV): 5 below 1 GeV, then 4; in the recoil 4 below 8, then 2
    def nominal(seg, mass):
        below = np.asarray(seg.scan.models[1].order_below)
        return seg.scan.models[1].orders[int(np.searchsorted(below, mass**2, side="right"))]

    assert [nominal(segs[0], m) for m in (0.5, 0.99, 1.01, 6.8)] == [5, 5, 4, 4]
    assert [nominal(segs[1], m) for m in (6.9, 7.99, 8.01, 9.7)] == [4, 4, 2, 2]
    cfg = tomllib.loads((path.parent / "alp_gg_scan.toml").read_text())
    for mass in (0.135, 0.548, 0.958):  # π⁰, η, η′ vetoed, in x = m²
        assert any(lo < mass**2 < hi for lo, hi in cfg["window"]["vetoes"])


def test_the_coupling_is_the_published_conversion(example):
    """g_aγγ = √(24 σ / (α (1 − m²/s)³)) with σ in GeV⁻² (σ_a = g² α/24 (1 − m²/s)³)."""
    _, (segs, *_) = example
    s = ALP_SQRT_S**2
    for seg in segs:
        x = seg.masses[:: max(1, seg.masses.size // 7)]
        sigma_fb = 0.05 + x / 400
        got = np.asarray(jax.vmap(seg.scan.models[0].physics)(jnp.asarray(x), sigma_fb))
        want = np.sqrt(24 * sigma_fb * FB_IN_GEV2 / (ALPHA * (1 - x / s) ** 3))
        np.testing.assert_allclose(got, want, rtol=1e-3)
        unit = np.asarray(jax.vmap(seg.scan.unit)(jnp.asarray(x)))
        np.testing.assert_allclose(unit, 1 / ALP_LUMI_FB)


def test_recoil_injection_adds_the_selected_yield(tmp_path):
    """A signal at 8.5 GeV lands in the recoil spectrum at x = m² with μ ε(m) events."""
    mass, mu = 8.5, 3000.0
    counts = []
    for folder, inject in (("bkg", None), ("sig", (mass, mu))):
        path = write_alp_segments_example(tmp_path / folder, seed=2, inject=inject)
        with np.load(path.parent / "alp_recoil_spectrum.npz") as z:
            edges = z["edges"]
            counts.append(z["counts"][0])
    x, width = mass**2, 10 * _recoil_sigma(mass**2)
    inside = (edges[:-1] > x - width) & (edges[1:] < x + width)
    eff = 0.30 * (1 - np.exp(-mass / 0.45)) * (1 - 0.02 * mass)
    shape = _dscb_binned(edges, x, float(_recoil_sigma(x)), 2.0, 6.0, 1.1, 3.0)
    expected = mu * eff * shape[inside].sum()
    bkg = counts[0][inside].sum()
    assert abs(counts[1][inside].sum() - bkg - expected) < 4 * np.sqrt(2 * bkg + expected)
    assert 0.9 * mu * eff < expected < mu * eff


def test_segments_of_one_layout_compile_once(monkeypatch):
    """mass_scan passes the scan as an operand of the compiled program: a second scan with
    other values but the same layout (another mass range, another spectrum) lowers nothing."""
    import jaxlike.stream._stream as st

    def config(seed, masses):
        rng = np.random.default_rng(seed)
        edges = np.linspace(0.0, 10.0, 2001)
        c = 0.5 * (edges[1:] + edges[:-1])
        return {
            "spectrum": {"edges": edges.tolist(),
                         "counts": [rng.poisson(300 * np.exp(-c / (6 + seed))).tolist()]},
            "signal": {"shape": "gauss",
                       "tables": [{"mass": [1.0, 9.0], "sigma": [0.04 + seed / 100, 0.12]}]},
            "background": {"kind": "bernstein", "order": 1},
            "window": {"lo": 5.0, "hi": 5.0, "n_bins": 20},
            "scan": {"masses": masses, "cl": [0.95]},
        }  # fmt: skip

    first = Segment("a", *build_mass_scan(config(1, [2.0, 4.0]))[:2], "m2")
    second = Segment("b", *build_mass_scan(config(2, [5.0, 7.0]))[:2], "m2")
    mass_scan(first.scan, first.masses, progress=False)
    lowered = []
    real = st._lower_compile
    monkeypatch.setattr(st, "_lower_compile", lambda *a, **k: lowered.append(1) or real(*a, **k))
    out = mass_scan(second.scan, second.masses, progress=False)
    assert lowered == [] and np.all(np.asarray(out["fit_converged"]))
    # the same numbers as a program of its own (bit for bit: the operand is the same data)
    from jaxlike.stream import clear_compiled

    clear_compiled()
    again = mass_scan(second.scan, second.masses, progress=False)
    assert lowered == [1]
    for field in ("mu_hat", "significance", "ul_obs", "ul_exp"):
        np.testing.assert_array_equal(np.asarray(out[field]), np.asarray(again[field]))
