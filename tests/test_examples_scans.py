"""Synthetic mass-scan examples (jaxlike.examples._scans): configs build, files are seeded and
reproducible, numbers are in the documented ranges, an injected ALP signal is found."""

from __future__ import annotations

import tomllib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlike.examples import (
    ALP_LUMI_FB,
    SCAN_EXAMPLES,
    alp_resolution,
    example_names,
    write_alp_example,
    write_alp_segments_example,
    write_bka_example,
)
from jaxlike.examples._scans import _dscb_binned
from jaxlike.exceptions import InvalidScanConfig
from jaxlike.parametric import build_mass_scan, hypothesis_results, load_config
from jaxlike.shapes import crystal_ball_binned, gaussian_binned

#: documented (name, number of hypotheses, categories, cl)
EXPECTED = {
    "alp-mgg": (332, 1, (0.95,)),
    "bka": (343, 4, (0.9,)),
    "zprime": (207, 1, (0.9, 0.95)),
}  # vetoed masses dropped


#: the file stem of each single-configuration example
STEM = {"alp-mgg": "alp", "bka": "bka", "zprime": "zprime"}


def _files(path):
    return {p.name: p.read_bytes() for p in sorted(path.parent.iterdir())}


def test_names_and_reexports():
    assert example_names() == ["alp", "alp-mgg", "bka", "zprime"] == list(SCAN_EXAMPLES)
    assert SCAN_EXAMPLES["alp"] is write_alp_segments_example
    assert SCAN_EXAMPLES["alp-mgg"] is write_alp_example


@pytest.mark.parametrize("example", ["alp-mgg", "bka", "zprime"])
def test_example_writes_and_builds(tmp_path, example):
    name = STEM[example]
    path = SCAN_EXAMPLES[example](tmp_path / name, seed=3)
    assert path == tmp_path / name / f"{name}_scan.toml"
    assert sorted(_files(path)) == [f"{name}_scan.toml", f"{name}_spectrum.npz"]
    text = path.read_text()
    assert text.startswith("# ") and "SYNTHETIC" in text.split("\n[")[0]
    assert f'file = "{name}_spectrum.npz"' in text
    scan, masses, cl = build_mass_scan(load_config(path))
    n_hyp, n_cat, levels = EXPECTED[example]
    assert len(masses) == n_hyp and cl == levels and scan.n_categories == n_cat
    with np.load(path.parent / f"{name}_spectrum.npz") as z:
        assert sorted(z.files) == ["counts", "edges"]
        assert z["counts"].shape == (n_cat, z["edges"].size - 1)
        assert z["counts"].dtype == np.int64 and z["counts"].min() >= 0


def test_same_seed_same_bytes(tmp_path):
    for name, write in SCAN_EXAMPLES.items():
        a = _files(write(tmp_path / "a" / name, seed=7))
        b = _files(write(tmp_path / "b" / name, seed=7))
        c = write(tmp_path / "c" / name, seed=8)
        assert a == b, name
        spectra = [f for f in a if f.endswith("_spectrum.npz")]
        assert spectra, name
        for f in spectra:
            with np.load(tmp_path / "a" / name / f) as za, np.load(c.parent / f) as zc:
                assert np.array_equal(za["edges"], zc["edges"])
                assert not np.array_equal(za["counts"], zc["counts"])


def test_alp_spectrum_and_tables_in_documented_ranges(tmp_path):
    path = write_alp_example(tmp_path, seed=0)
    cfg = tomllib.loads(path.read_text())
    with np.load(tmp_path / "alp_spectrum.npz") as z:
        edges, counts = z["edges"], z["counts"]
    assert 49_000 < counts.sum() < 52_200  # 50 600 expected (40 000 background + peaks)
    assert edges[0] <= 0.05 and edges[-1] >= 10.0
    width = np.diff(edges).max()
    # resolution: a few MeV at low mass, ~50 MeV at the top of the scan
    assert 0.003 < alp_resolution(0.2) < 0.006 and 0.040 < alp_resolution(8.9) < 0.1
    assert np.all(np.diff(alp_resolution(np.linspace(0.0, 10.0, 101))) > 0)
    assert width < alp_resolution(0.2) / 5  # fine bins well below the resolution
    m = np.linspace(0.2, 8.9, 50)  # every window −20σ…+30σ holds ≥ 100 fine bins
    assert np.all(50 * alp_resolution(m) / width >= 100)
    (table,) = cfg["signal"]["tables"]
    assert 10 <= len(table["mass"]) <= 20
    np.testing.assert_allclose(table["sigma"], alp_resolution(table["mass"]), rtol=1e-5)
    assert min(table["n_l"]) > 1 and min(table["n_r"]) > 1
    assert 0 < min(table["efficiency"]) and max(table["efficiency"]) < 1
    np.testing.assert_allclose(table["unit"], 1.0 / ALP_LUMI_FB)
    assert cfg["background"] == {"kind": "bernstein", "order": 4}
    assert (cfg["window"]["lo"], cfg["window"]["hi"], cfg["window"]["n_bins"]) == (20, 30, 100)
    for mass in (0.135, 0.548, 0.958):  # π⁰, η, η′ vetoed
        assert any(lo < mass < hi for lo, hi in cfg["window"]["vetoes"])


def test_bka_modes_and_zprime_layout(tmp_path):
    cfg = tomllib.loads(write_bka_example(tmp_path, seed=0).read_text())
    conv = cfg["signal"]["conversion"]
    # 2 N_BB f B(sub-decays) 1e-6 with N_BB = 387e6 (K+: f = 0.516, B = 1)
    assert len(conv) == 4 and conv[0] == pytest.approx(2 * 387 * 0.516, rel=1e-4)
    for t in cfg["signal"]["tables"]:
        assert np.all(np.diff(t["efficiency"]) < 0)  # efficiency decreases with mass
    assert cfg["window"]["lo"] == cfg["window"]["hi"] == 9
    assert cfg["background"] == {"kind": "bernstein", "order": 2}
    z = tomllib.loads(SCAN_EXAMPLES["zprime"](tmp_path, seed=0).read_text())
    assert "vetoes" not in z["window"] and z["signal"]["shape"] == "gauss"
    assert np.all(np.diff(z["signal"]["tables"][0]["sigma"]) > 0)  # width grows with mass


@pytest.mark.parametrize("pars", [(1.05, 4.5, 2.0, 8.0), (1.4, 2.64, 1.385, 4.28)])
def test_generator_shapes_match_the_fit_shapes(pars):
    edges = np.linspace(2.8, 3.3, 201)
    got = _dscb_binned(edges, 3.0, 0.02, *pars)
    ref = np.asarray(crystal_ball_binned(jnp.asarray(edges), 3.0, 0.02, *pars))
    np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-13)
    gauss = _dscb_binned(edges, 3.0, 0.02, np.inf, 2.0, np.inf, 2.0)
    np.testing.assert_allclose(gauss, gaussian_binned(jnp.asarray(edges), 3.0, 0.02), atol=1e-13)


def test_injection_outside_the_tables_is_refused(tmp_path):
    with pytest.raises(ValueError, match="inject"):
        write_alp_example(tmp_path, inject=(12.0, 100.0))


def test_edited_configs_raise_with_the_field(tmp_path):
    cfg = load_config(write_alp_example(tmp_path / "alp", seed=0))
    cfg["scan"]["masses"] = [0.1, 3.0]  # below the first simulated mass (0.2 GeV)
    with pytest.raises(InvalidScanConfig) as err:
        build_mass_scan(cfg)
    assert err.value.path == "scan.masses" and "outside the tabulated range" in str(err.value)
    cfg["scan"]["masses"] = [3.0, 9.5]  # tabulated, but 9.5 + 30σ = 11 GeV > 10.5 GeV
    with pytest.raises(InvalidScanConfig) as err:
        build_mass_scan(cfg)
    assert err.value.path == "window" and "outside" in str(err.value)

    cfg = load_config(write_bka_example(tmp_path / "bka", seed=0))
    table = cfg["signal"]["tables"][2]
    for key in table:  # K*+ simulated only up to 4.0 GeV
        table[key] = table[key][:-1]
    cfg["scan"]["masses"] = [1.0, 4.1]
    with pytest.raises(InvalidScanConfig) as err:
        build_mass_scan(cfg)
    assert err.value.path == "signal.tables[2].mass"


def test_alp_injected_signal_is_found(tmp_path):
    """The one compiled hypothesis of this file (~30–60 s): fit, Z and limits at two masses."""
    m_inj, mu_inj = 3.0, 600.0
    cfg = load_config(write_alp_example(tmp_path, seed=0, inject=(m_inj, mu_inj)))
    cfg["scan"]["masses"] = [m_inj, 6.0]  # skip building the 356 default hypotheses
    scan, masses, cl = build_mass_scan(cfg)
    results = eqx.filter_jit(lambda s, m: hypothesis_results(s, m, cl))
    at = {m: jax.tree.map(np.asarray, results(scan, jnp.asarray(m))) for m in masses}
    r = at[m_inj]
    assert r["fit_converged"] and r["limit_converged"].all()
    assert r["significance"] > 3
    assert abs(r["mu_hat"] - mu_inj) < 3 * r["mu_hat_err"]
    assert r["ul_obs"][0] > r["mu_hat"] > r["ul_exp"][0, 2]  # a signal: observed limit above
    np.testing.assert_allclose(r["mu_hat_phys"], r["mu_hat"] / ALP_LUMI_FB)
    far = at[6.0]
    assert far["fit_converged"] and abs(far["significance"]) < 3


#: injections and their selected yields μ k_c ε_c(mass) from the documented formulas
INJECTIONS = {
    "alp-mgg": ((3.0, 2000.0), [2000.0 * 0.30 * (1 - np.exp(-3.0 / 0.45)) * (1 - 0.06)]),
    "bka": ((2.0, 20.0), [20.0 * 399.38 * 0.27, 20.0 * 129.62 * 0.22, 20.0 * 223.69 * 0.096,
                          20.0 * 249.74 * 0.148]),
    "zprime": ((16.0, 10000.0), [10000.0 * 0.08 * (1 - 16.0 / 150.0)]),
}  # fmt: skip


@pytest.mark.parametrize("example", ["alp-mgg", "bka", "zprime"])
def test_injection_adds_the_documented_yield(tmp_path, example):
    """Same seed with and without a signal: the excess within ±10σ is the selected yield."""
    (mass, mu), selected = INJECTIONS[example]
    name = STEM[example]
    counts = []
    for folder, inject in (("bkg", None), ("sig", (mass, mu))):
        path = SCAN_EXAMPLES[example](tmp_path / folder, seed=5, inject=inject)
        with np.load(path.parent / f"{name}_spectrum.npz") as z:
            edges = z["edges"]
            counts.append(z["counts"])
    table = tomllib.loads(path.read_text())["signal"]["tables"][0]
    width = 10 * np.interp(mass, table["mass"], table["sigma"])
    inside = (edges[:-1] > mass - width) & (edges[1:] < mass + width)
    bkg, sig = (c[:, inside].sum(axis=1) for c in counts)
    expected = 0.98 * np.asarray(selected)  # ≈ 2 % of a Crystal Ball lies beyond ±10σ
    assert np.all(np.abs(sig - bkg - expected) < 0.05 * expected + 4 * np.sqrt(2 * bkg + expected))
