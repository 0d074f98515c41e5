"""Look-elsewhere effect (jaxlike.scan._lee): up-crossings, Gross–Vitells, background-only
toys of a whole scan and the toy-based global significance.

The scan is small so the file stays fast: 2000 fine bins on [1, 3], a falling spectrum of
~260k events, Gaussian signal σ = 0.004, windows ±10σ of 20 bins, a linear Bernstein
background in the windows, 20 masses 0.095 apart (disjoint windows: nearly independent tests).
One compiled toy function serves every toy test (same scan, masses, expectation and chunking).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import jaxlike  # noqa: F401  (float64)
from jaxlike.exceptions import InvalidScanConfig
from jaxlike.parametric import build_mass_scan
from jaxlike.scan import (
    background_expectation,
    global_significance,
    gross_vitells,
    scan_toys,
    upcrossings,
)

N_FINE, N_TOYS, CHUNK = 2000, 48, 16
EDGES = np.linspace(1.0, 3.0, N_FINE + 1)
CENTRES = 0.5 * (EDGES[1:] + EDGES[:-1])
TRUTH = 130.0 * np.exp(-0.5 * (CENTRES - 1.0))


def make_config(counts, vetoes=(), peaks=None):
    spectrum = {"edges": EDGES.tolist(), "counts": [counts.tolist()]}
    if peaks is not None:
        spectrum["peaks"] = [[peaks.tolist()]]
    return {
        "spectrum": spectrum,
        "signal": {"shape": "gauss", "tables": [{"mass": [1.0, 3.0], "sigma": [0.004, 0.004]}]},
        "background": {"kind": "bernstein", "order": 1},
        "window": {"lo": 10.0, "hi": 10.0, "n_bins": 20, "vetoes": [list(v) for v in vetoes]},
        "scan": {"masses": {"start": 1.1, "stop": 2.9, "n": 20}},
    }


@pytest.fixture(scope="module")
def setup():
    counts = np.random.default_rng(7).poisson(TRUTH).astype(float)
    scan, masses, _ = build_mass_scan(make_config(counts))
    expectation, info = background_expectation(scan, order=2, info=True)
    return scan, masses, counts, expectation, info


@pytest.fixture(scope="module")
def toys(setup):
    scan, masses, _, expectation, _ = setup
    return scan_toys(
        scan, masses, N_TOYS, seed=0, expectation=expectation, return_curves=True,
        chunk_size=CHUNK, progress=False,
    )  # fmt: skip


def run_more(setup, **kw):
    """More toys through the same compiled function as the ``toys`` fixture."""
    scan, masses, _, expectation, _ = setup
    args = {"expectation": expectation, "return_curves": True, "chunk_size": CHUNK}
    return scan_toys(scan, masses, CHUNK, progress=False, **{**args, **kw})


# -- up-crossings and Gross–Vitells -------------------------------------------------------------
def test_upcrossings_hand_made_curves():
    assert int(upcrossings([0.0, 2.0, 0.0, 2.0], 1.0)) == 2
    assert int(upcrossings([0.0, 1.0, 0.0], 1.0)) == 1  # reaching u0 counts (z_{i+1} = u0)
    assert int(upcrossings([1.0, 2.0, 0.5], 1.0)) == 0  # starting on/above u0 does not
    assert int(upcrossings([2.0, 3.0, 2.5], 1.0)) == 0
    assert int(upcrossings([-1.0, -0.5, -2.0], 1.0)) == 0
    assert int(upcrossings([0.0, np.nan, 2.0, 0.0, 3.0], 1.0)) == 1  # NaN breaks the curve
    batch = np.array([[0.0, 2.0, 0.0, 2.0], [0.0, 0.5, 0.7, 1.2]])
    np.testing.assert_array_equal(upcrossings(batch, 1.0), [2, 1])
    np.testing.assert_array_equal(upcrossings(batch, 0.6), [2, 1])


def test_gross_vitells_known_case():
    z = [0.0, 3.0, 0.0, 1.5, 0.5, -1.0]  # max 3 at index 1; N(1) = 2
    r = gross_vitells(z, u0=1.0)
    p_local = 0.5 * math.erfc(3.0 / math.sqrt(2.0))  # 1.3499e-3
    p_global = p_local + 2.0 * math.exp(-(9.0 - 1.0) / 2.0)  # 0.0379812
    assert (r.max_z, r.index, r.n_upcrossings, r.u0, r.source) == (3.0, 1, 2.0, 1.0, "observed")
    assert r.p_local == pytest.approx(p_local, rel=1e-12)
    assert r.p_global == pytest.approx(p_global, rel=1e-12)
    assert r.p_global == pytest.approx(0.03798118, rel=1e-6)
    assert r.z_global == pytest.approx(stats.norm.isf(p_global), rel=1e-12)
    assert r.z_global == pytest.approx(1.7746, abs=1e-4)
    assert r.trials_factor == pytest.approx(p_global / p_local, rel=1e-12)
    # u0 = 0.5: N = 2, p = p_local + 2 e^{-(9 - 0.25)/2}
    r5 = gross_vitells(z, u0=0.5)
    assert r5.p_global == pytest.approx(p_local + 2.0 * math.exp(-8.75 / 2.0), rel=1e-12)
    # ⟨N(u0)⟩ from toy curves (mean of 1 and 3) or given directly
    toys_z = [[0.0, 2.0, 0.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 2.0, 0.0, 2.0]]
    rt = gross_vitells(z, u0=1.0, toys_z=toys_z)
    assert (rt.n_upcrossings, rt.source) == (2.0, "toys")
    assert rt.p_global == pytest.approx(p_global, rel=1e-12)
    rg = gross_vitells(z, u0=1.0, mean_upcrossings=0.0)
    assert rg.p_global == pytest.approx(p_local) and rg.trials_factor == pytest.approx(1.0)
    # a curve below u0 everywhere: p_global clipped at 1, z_global at 0
    low = gross_vitells([-0.5, 0.2, -0.1], u0=1.0, mean_upcrossings=5.0)
    assert (low.p_global, low.z_global) == (1.0, 0.0)
    with pytest.raises(InvalidScanConfig):
        gross_vitells([np.nan, np.nan])


def test_gross_vitells_pure_noise_curve():
    rng = np.random.default_rng(3)
    kernel = np.exp(-0.5 * (np.arange(-15, 16) / 5.0) ** 2)
    for _ in range(20):  # smoothed white noise, unit variance
        z = np.convolve(rng.normal(size=400), kernel / np.sqrt(np.sum(kernel**2)), "valid")
        r = gross_vitells(z, u0=0.5)
        assert r.p_global >= r.p_local and r.trials_factor >= 1.0
        assert r.n_upcrossings > 0 and 0.0 <= r.z_global <= r.max_z


# -- background expectation -------------------------------------------------------------------
def test_background_expectation_total_and_shape(setup):
    _, _, counts, expectation, info = setup
    assert expectation.shape == (1, N_FINE) and np.all(expectation > 0)
    assert expectation.sum() == pytest.approx(counts.sum(), rel=1e-6)  # ML with free scale
    assert info["converged"].all() and info["ndf"][0] == N_FINE - 3
    assert info["deviance"][0] / info["ndf"][0] == pytest.approx(1.0, abs=0.1)
    assert np.max(np.abs(expectation[0] / TRUTH - 1.0)) < 0.03  # e^{-u} by a quadratic


def test_background_expectation_vetoes_and_peaks():
    peak = np.exp(-0.5 * ((CENTRES - 2.0) / 0.01) ** 2)
    peak /= peak.sum()
    rng = np.random.default_rng(11)
    counts = rng.poisson(TRUTH + 5000.0 * peak).astype(float)
    # the peak is vetoed: it must neither enter the fit nor the total
    vetoed, _, _ = build_mass_scan(make_config(counts, vetoes=[(1.95, 2.05)]))
    e = background_expectation(vetoed, order=2)
    keep = (EDGES[1:] <= 1.95) | (EDGES[:-1] >= 2.05)
    assert e[0, keep].sum() == pytest.approx(counts[keep].sum(), rel=1e-6)
    assert np.max(np.abs(e[0] / TRUTH - 1.0)) < 0.03  # smooth through the veto
    # the peak as a peaking-background template: fitted as such (yield ≈ 5000)
    peaked, _, _ = build_mass_scan(make_config(counts, peaks=peak))
    e, info = background_expectation(peaked, order=2, info=True)
    assert e.sum() == pytest.approx(counts.sum(), rel=1e-6)
    assert info["coefficients"][0, -1] == pytest.approx(5000.0, rel=0.1)
    assert info["deviance"][0] / info["ndf"][0] == pytest.approx(1.0, abs=0.1)
    flat = background_expectation(peaked, order=2, include_peaks=False)
    assert np.sum((counts - flat[0]) ** 2 / flat[0]) > 2 * np.sum((counts - e[0]) ** 2 / e[0])


# -- toys of the whole scan ---------------------------------------------------------------------
def test_toys_layout_and_rate(toys):
    assert toys["max_z"].shape == toys["n_upcrossings"].shape == (N_TOYS,)
    assert toys["z"].shape == (N_TOYS, 20)
    np.testing.assert_array_equal(toys["toy"], np.arange(N_TOYS))
    assert toys["n_failed"].sum() == 0
    np.testing.assert_array_equal(toys["max_z"], toys["z"].max(axis=1))
    np.testing.assert_array_equal(toys["argmax"], toys["z"].argmax(axis=1))
    np.testing.assert_array_equal(toys["n_upcrossings"], upcrossings(toys["z"], toys["u0"]))
    assert toys["rate"] > 0 and toys["elapsed_s"] > 0


def test_toys_reproducible(setup, toys):
    # toy k depends only on (seed, k): the same toys again, run as another call
    again = run_more(setup, seed=0, first_toy=CHUNK)
    np.testing.assert_array_equal(again["z"], toys["z"][CHUNK : 2 * CHUNK])
    other = run_more(setup, seed=1)
    assert not np.any(other["z"] == toys["z"][:CHUNK])


def test_toys_store_and_resume(setup, tmp_path):
    path = tmp_path / "toys.h5"
    first = run_more(setup, seed=5, store=path)
    resumed = run_more(setup, seed=5, store=path, resume=True)
    np.testing.assert_array_equal(first["z"], resumed["z"])


def test_local_significance_is_standard_normal_under_background(toys):
    """Z at every mass over background-only toys ~ N(0, 1): the toys (Poisson from the
    expectation) and the 2-fit significance agree. 960 values of ~independent windows:
    σ(mean) ≈ 0.032, σ(std) ≈ 0.023; the tolerances are ≈ 4σ."""
    z = toys["z"]
    assert abs(z.mean()) < 0.13
    assert z.std() == pytest.approx(1.0, abs=0.1)
    assert np.all(np.abs(z.mean(axis=0)) < 5.0 / math.sqrt(N_TOYS))
    # tails: P(Z ≥ 1.5) = 0.067
    assert np.mean(z >= 1.5) == pytest.approx(stats.norm.sf(1.5), abs=0.03)


def test_trials_factor(toys):
    u = 1.5  # an "observed" maximum where both p-values are measurable with 48 toys
    many = global_significance(u, toys["max_z"], toy_upcrossings=toys["n_upcrossings"])
    single = global_significance(u, toys["z"][:, 10])  # a scan of one mass (same toys)
    assert many.trials_factor >= 1.0
    assert many.trials_factor > single.trials_factor + 3.0
    # 20 independent windows: p_global ≈ 1 − (1 − p_local)^20 = 0.75
    assert many.p_global == pytest.approx(1 - (1 - stats.norm.sf(u)) ** 20, abs=0.2)
    assert abs(single.p_global - single.p_local) < 3 * single.p_global_err + 1 / (N_TOYS + 1)
    assert many.gv.source == "given" and many.gv.p_global >= many.gv.p_local
    assert many.gv.n_upcrossings == pytest.approx(toys["n_upcrossings"].mean())
    lo, hi = many.p_global_interval
    assert lo <= many.n_exceed / many.n_toys <= hi


def test_global_significance_estimators():
    toy_max = np.array([0.5, 1.0, 2.0, 3.5, np.nan])  # NaN: a toy whose fits all failed
    r = global_significance([0.1, 2.5, 0.3], toy_max)
    assert (r.n_toys, r.n_exceed, r.index, r.max_z) == (4, 1, 1, 2.5)
    assert r.p_global == pytest.approx(2 / 5)
    assert r.p_global_err == pytest.approx(math.sqrt(0.25 * 0.75 / 4))
    assert r.z_global == pytest.approx(stats.norm.isf(0.4))
    assert r.trials_factor == pytest.approx(0.4 / stats.norm.sf(2.5))
    assert r.gv is not None and r.gv.source == "observed"
    plain = global_significance(2.5, toy_max, plus_one=False)
    assert plain.p_global == pytest.approx(1 / 4) and plain.gv is None
    none = global_significance(5.0, toy_max)
    assert none.p_global == pytest.approx(1 / 5) and none.p_global_interval[0] == 0.0
    assert none.z_global_interval[1] == math.inf


def test_invalid_inputs(setup):
    scan, masses, _, expectation, _ = setup
    with pytest.raises(InvalidScanConfig, match="masses"):
        scan_toys(scan, masses[::-1], 4, expectation=expectation, progress=False)
    with pytest.raises(InvalidScanConfig, match="expectation"):
        scan_toys(scan, masses, 4, expectation=expectation[:, :-1], progress=False)
    with pytest.raises(InvalidScanConfig, match="n_toys"):
        scan_toys(scan, masses, 0, expectation=expectation, progress=False)
    with pytest.raises(InvalidScanConfig, match="toy_max_z"):
        global_significance(2.0, [np.nan])
