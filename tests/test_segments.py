"""Segmented mass scans (issue 15, item 2): mass ranges with their own fit variable (m or m²),
window, background and tables, stitched into one file that equals the segments run one by one,
``jaxlike scan SEGMENTS.toml`` and the segment boundaries in ``jaxlike plot``."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from jaxlike.cli import main
from jaxlike.exceptions import InvalidScanConfig
from jaxlike.parametric import build_mass_scan
from jaxlike.scan import Segment, mass_scan, read_results, segmented_scan


def low_config() -> dict:
    """Spectrum in x = m² on [0, 10] GeV², hypotheses x = 2, 4 (m = √2, 2), Bernstein 1."""
    rng = np.random.default_rng(5)
    edges = np.linspace(0.0, 10.0, 2001)
    c = 0.5 * (edges[1:] + edges[:-1])
    return {
        "spectrum": {"edges": edges.tolist(),
                     "counts": [rng.poisson(300 * np.exp(-c / 6)).tolist()]},  # fmt: skip
        "signal": {"shape": "gauss", "tables": [{"mass": [1.0, 9.0], "sigma": [0.04, 0.12]}]},
        "background": {"kind": "bernstein", "order": 1},
        "window": {"lo": 5.0, "hi": 5.0, "n_bins": 20},
        "scan": {"masses": [2.0, 4.0], "cl": [0.95]},
    }


def high_config() -> dict:
    """Spectrum in m on [2, 10] GeV, hypotheses m = 4, 6, a Bernstein of order 2."""
    rng = np.random.default_rng(6)
    edges = np.linspace(2.0, 10.0, 1601)
    c = 0.5 * (edges[1:] + edges[:-1])
    return {
        "spectrum": {"edges": edges.tolist(),
                     "counts": [rng.poisson(200 * (1 - 0.05 * c)).tolist()]},  # fmt: skip
        "signal": {"shape": "gauss", "tables": [{"mass": [3.0, 9.0], "sigma": [0.05, 0.1]}]},
        "background": {"kind": "bernstein", "order": 2},
        "window": {"lo": 5.0, "hi": 5.0, "n_bins": 20},
        "scan": {"masses": [4.0, 6.0], "cl": [0.95]},
    }


def segments():
    out = []
    for name, cfg, var in (("low", low_config(), "m2"), ("high", high_config(), "m")):
        scan, masses, _ = build_mass_scan(cfg)
        out.append(Segment(name, scan, masses, var, cfg))
    return out


@pytest.fixture(scope="module")
def stitched(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seg")
    res = segmented_scan(segments(), store=folder / "scan.h5", progress=False)
    return folder, res


def test_stitched_file_equals_the_segments_run_one_by_one(stitched):
    folder, res = stitched
    hyps, stored, attrs = read_results(folder / "scan.h5")
    np.testing.assert_allclose(hyps["mass"], [np.sqrt(2.0), 2.0, 4.0, 6.0], rtol=1e-15)
    np.testing.assert_array_equal(hyps["x"], [2.0, 4.0, 4.0, 6.0])
    np.testing.assert_array_equal(hyps["segment"], [0, 0, 1, 1])
    assert list(attrs["segment_boundaries"]) == pytest.approx([3.0])
    assert attrs["kind"] == "mass" and attrs["done"].all()
    # each segment run alone (no file) gives the same rows, bit for bit
    for k, seg in enumerate(segments()):
        alone = mass_scan(seg.scan, seg.masses, progress=False)
        rows = np.flatnonzero(hyps["segment"] == k)
        _, part, _ = read_results(folder / f"scan.{seg.name}.h5")
        for field in ("mu_hat", "significance", "ul_obs", "ul_exp", "ul_obs_phys"):
            np.testing.assert_array_equal(stored[field][rows], np.asarray(alone[field]),
                                          err_msg=field)  # fmt: skip
            np.testing.assert_array_equal(stored[field][rows], part[field], err_msg=field)
    assert res.results.fit_converged.all() and res.names == ("low", "high")


def test_bad_segments():
    low, high = segments()
    with pytest.raises(InvalidScanConfig, match=r"segments\['low'\]\.masses"):
        segmented_scan([high, low], progress=False)  # not in increasing mass
    with pytest.raises(InvalidScanConfig, match="duplicated"):
        segmented_scan([low, Segment("low", high.scan, high.masses)], progress=False)
    with pytest.raises(InvalidScanConfig, match="variable"):
        Segment("x", low.scan, low.masses, "log")
    with pytest.raises(InvalidScanConfig, match="name"):
        Segment("a b", low.scan, low.masses)
    with pytest.raises(InvalidScanConfig, match="negative"):
        Segment("x", low.scan, [-1.0, 2.0], "m2")


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_cli_segmented_scan_and_plot(stitched, tmp_path):
    folder, res = stitched
    (tmp_path / "low.json").write_text(json.dumps(low_config()))
    (tmp_path / "high.json").write_text(json.dumps(high_config()))
    (tmp_path / "segments.toml").write_text(
        "# two ranges\n[[segments]]\nname = \"low\"\nconfig = \"low.json\"\nvariable = \"m2\"\n\n"
        "[[segments]]\nname = \"high\"\nconfig = \"high.json\"\n"
    )
    code, out, err = _cli("scan", tmp_path / "segments.toml", "-o", tmp_path / "s.h5", "--json",
                          "--no-progress")  # fmt: skip
    assert code == 0, err
    s = json.loads(out)
    assert s["hypotheses"] == 4 and s["segment_boundaries"] == pytest.approx([3.0])
    assert [g["name"] for g in s["segments"]] == ["low", "high"]
    _, stored, _ = read_results(tmp_path / "s.h5")
    np.testing.assert_array_equal(stored["ul_obs"], res.results.ul_obs)
    code, _, err = _cli("plot", tmp_path / "s.h5", "-o", tmp_path / "b.png")
    assert code == 0, err
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
    # a CL level that differs between segments, and an unknown key: one error line each
    bad = high_config()
    bad["scan"]["cl"] = [0.9]
    (tmp_path / "high.json").write_text(json.dumps(bad))
    code, _, err = _cli("scan", tmp_path / "segments.toml", "-o", tmp_path / "t.h5")
    assert code == 2 and "CL levels" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "segments.toml").write_text("[[segments]]\nname = \"a\"\nconfg = \"low.json\"\n")
    code, _, err = _cli("scan", tmp_path / "segments.toml", "-o", tmp_path / "u.h5")
    assert code == 2 and "confg" in err and len(err.strip().splitlines()) == 1
    # [plot] names the stitched axis: only label and unit, strings, one error line naming it
    for plot, field in (('colour = "red"', "colour"), ("label = 5", "plot.label")):
        (tmp_path / "segments.toml").write_text(
            f"[plot]\n{plot}\n\n[[segments]]\nname = \"low\"\nconfig = \"low.json\"\n")
        code, _, err = _cli("scan", tmp_path / "segments.toml", "-o", tmp_path / "v.h5")
        assert code == 2 and field in err and len(err.strip().splitlines()) == 1, err


def test_default_chunk_on_a_cpu_and_resume_keeps_the_files(tmp_path):
    """Mass scans default to chunks of 8 on a CPU (each hypothesis is several fits and a limit
    search in lockstep: smaller chunks finish sooner); a resume without ``chunk_size`` keeps
    the chunk its file was computed with (files of the former default of 32 resume)."""
    from jaxlike.scan import default_mass_chunk

    assert default_mass_chunk() == 8  # the test suite runs on the CPU
    cfg = low_config()
    cfg["scan"]["masses"] = [2.0, 3.0, 4.0, 5.0]
    scan, masses, _ = build_mass_scan(cfg)
    first = mass_scan(scan, masses, store=tmp_path / "s.h5", chunk_size=3, progress=False)
    again = mass_scan(scan, masses, store=tmp_path / "s.h5", resume=True, progress=False)
    np.testing.assert_array_equal(np.asarray(first["ul_obs"]), np.asarray(again["ul_obs"]))
    with pytest.raises(Exception, match="chunk"):
        mass_scan(scan, masses, store=tmp_path / "s.h5", resume=True, chunk_size=4,
                  progress=False)  # fmt: skip
