"""``jaxlike scan`` and ``jaxlike plot``, called in-process through ``main``.

The mass scan is tiny (2000 fine bins, 20 window bins, Gaussian signal, Bernstein order 1,
5 masses) and runs once per module; the persistent compilation cache that ``main`` enables
serves the later runs of the same scan (resume of a partial file, ``--example``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from conftest import DATA

import jaxlike.examples
import jaxlike.scan
from jaxlike.cli import main
from jaxlike.cli._scan import parse_bytes
from jaxlike.parametric import RESULT_FIELDS
from jaxlike.scan import read_results

MASSES = [2.0, 3.5, 5.0, 6.5, 8.0]
SUMMARY_KEYS = [
    "kind",
    "coordinate",
    "output",
    "hypotheses",
    "computed",
    "resumed",
    "seconds",
    "compute_seconds",
    "hypotheses_per_second",
    "converged_fraction",
    "not_converged",
    "max_significance",
    "limits",
    "rule",
]
PNG, PDF = b"\x89PNG\r\n\x1a\n", b"%PDF"


def make_config() -> dict:
    """A falling spectrum with a small bump at 5: 2000 bins on [0, 10], 5 hypotheses."""
    rng = np.random.default_rng(1)
    edges = np.linspace(0.0, 10.0, 2001)
    centers = 0.5 * (edges[1:] + edges[:-1])
    expected = 200.0 * (1.0 - 0.05 * centers) + 8.0 * np.exp(-0.5 * ((centers - 5.0) / 0.08) ** 2)
    return {
        "spectrum": {"edges": edges.tolist(), "counts": [rng.poisson(expected).tolist()]},
        "signal": {"shape": "gauss", "tables": [{"mass": [1.0, 9.0], "sigma": [0.05, 0.1]}]},
        "background": {"kind": "bernstein", "order": 1},
        "window": {"lo": 5.0, "hi": 5.0, "n_bins": 20},
        "scan": {"masses": {"start": 2.0, "stop": 8.0, "n": 5}, "cl": [0.95]},
    }


def write(path: Path, cfg: dict) -> str:
    path.write_text(json.dumps(cfg))
    return str(path)


def run(capsys, *argv):
    """(exit code, stdout, stderr) of ``jaxlike argv...``."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str, command: str) -> str:
    """The only line of ``err``, an error of ``jaxlike COMMAND`` (or of the parser: "")."""
    lines = err.splitlines()
    prefix = f"jaxlike {command}: error: " if command else "jaxlike: error: "
    assert len(lines) == 1 and lines[0].startswith(prefix), err
    return lines[0]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """(config path, scan file, exit code, JSON summary) of the one real scan of this module."""
    folder = tmp_path_factory.mktemp("scan")
    cfg, out = write(folder / "cfg.json", make_config()), folder / "scan.h5"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["scan", cfg, "-o", str(out), "--json", "--no-progress"])
    assert code == 0, stderr.getvalue()
    assert stderr.getvalue() == ""
    return SimpleNamespace(cfg=cfg, out=out, summary=json.loads(stdout.getvalue()))


def test_scan_writes_every_result_and_the_summary(scanned):
    hyps, res, attrs = read_results(scanned.out)
    np.testing.assert_allclose(hyps["mass"], MASSES)
    assert set(RESULT_FIELDS) <= set(res) and attrs["done"].all()
    assert res["ul_obs"].shape == (5, 1) and res["ul_exp"].shape == (5, 1, 5)
    assert attrs["kind"] == "mass" and list(attrs["cl"]) == [0.95]
    assert attrs["config"] == {"kind": "mass", "cl": [0.95], **make_config()}  # no _base

    s = scanned.summary
    assert list(s) == SUMMARY_KEYS
    assert (s["kind"], s["output"], s["hypotheses"]) == ("mass", str(scanned.out), 5)
    assert (s["computed"], s["resumed"]) == (5, 0) and s["hypotheses_per_second"] > 0
    assert 0 < s["compute_seconds"] < s["seconds"]  # compilation excluded
    assert s["converged_fraction"] == 1.0
    assert s["not_converged"] == {"count": 0, "first": [], "checks": []}
    i = int(np.argmax(res["significance"]))
    assert s["max_significance"] == {
        "mass": MASSES[i],
        "z": pytest.approx(res["significance"][i]),
        "p0": pytest.approx(res["p0"][i]),
    }
    assert MASSES[i] == 5.0 and s["max_significance"]["z"] > 2  # the bump
    (limits,) = s["limits"]
    assert (limits["cl"], limits["units"]) == (0.95, "mu")
    assert limits["strongest"]["obs"] == pytest.approx(res["ul_obs"].min())
    assert limits["weakest"]["obs"] == pytest.approx(res["ul_obs"].max())
    assert limits["weakest"]["mass"] == 5.0


def test_rerun_without_resume_is_refused(capsys, scanned):
    before = scanned.out.stat().st_mtime_ns
    code, out, err = run(capsys, "scan", scanned.cfg, "-o", scanned.out)
    assert code == 2 and out == ""
    assert "already exists" in one_error_line(err, "scan") and "--resume" in err
    assert scanned.out.stat().st_mtime_ns == before


def test_resume_of_a_finished_file_recomputes_nothing(capsys, monkeypatch, scanned):
    def no_compute(*args, **kwargs):
        raise AssertionError("a finished scan was computed again")

    monkeypatch.setattr(jaxlike.scan, "mass_scan", no_compute)
    before = read_results(scanned.out)[1]
    code, out, err = run(capsys, "scan", scanned.cfg, "-o", scanned.out, "--resume")
    assert code == 0 and err == ""
    rows = {line[:24].strip(): line[24:].strip() for line in out.splitlines()[2:]}
    assert rows["hypotheses"] == "5 (0 computed, 5 resumed)"
    assert rows["largest local Z"].split()[2:4] == ["mass", "5"]
    after = read_results(scanned.out)[1]
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value)


def test_resume_of_a_partial_file_computes_the_missing_rows(capsys, scanned, tmp_path):
    partial = tmp_path / "partial.h5"
    shutil.copy(scanned.out, partial)
    with h5py.File(partial, "r+") as f:  # as if killed after the first two hypotheses
        f["done"][2:] = False
        for ds in f["results"].values():
            ds[2:] = False if ds.dtype == bool else np.nan
    code, out, err = run(capsys, "scan", scanned.cfg, "-o", partial, "--resume", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["computed"], summary["resumed"]) == (3, 2)
    assert "resumed 2 done, 3 to go" in err  # the progress bar, on stderr
    full, resumed = read_results(scanned.out)[1], read_results(partial)[1]
    for key, value in full.items():
        np.testing.assert_allclose(resumed[key], value, rtol=1e-9, err_msg=key)


@pytest.mark.parametrize(
    ("section", "key", "value", "field"),
    [
        ("window", "n_bins", 24, "window.n_bins (file 20, now 24)"),
        ("scan", "cl", [0.9], "scan.cl (file [0.95], now [0.9]) and 1 more"),
    ],
)
def test_resume_with_another_config_is_refused(
    capsys, scanned, tmp_path, section, key, value, field
):
    cfg = make_config()
    cfg[section][key] = value
    before = scanned.out.stat().st_mtime_ns
    code, out, err = run(
        capsys, "scan", write(tmp_path / "c.json", cfg), "-o", scanned.out, "--resume"
    )
    assert code == 2 and out == ""
    line = one_error_line(err, "scan")
    assert "cannot resume" in line and field in line
    assert scanned.out.stat().st_mtime_ns == before


def _edit(section, key, value):
    def edit(cfg):
        cfg[section][key] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (_edit("background", "kind", "spline"), "background.kind: unknown value 'spline'"),
        (_edit("window", "lo", 200.0), "window"),
        (_edit("scan", "masses", [0.5, 2.0]), "scan.masses: hypothesis mass 0.5"),
        (_edit("signal", "shape", "voigt"), "signal.shape"),
        (lambda cfg: cfg.pop("background"), "background: is required"),
    ],
    ids=["background-kind", "window-outside-spectrum", "mass-outside-table", "shape", "missing"],
)
def test_invalid_config_is_one_line_naming_the_field(capsys, tmp_path, edit, field):
    cfg = make_config()
    edit(cfg)
    path = write(tmp_path / "bad.json", cfg)
    code, out, err = run(capsys, "scan", path, "-o", tmp_path / "scan.h5")
    assert code == 2 and out == ""
    assert one_error_line(err, "scan").startswith(f"jaxlike scan: error: {path}: {field}")
    assert list(tmp_path.iterdir()) == [tmp_path / "bad.json"]  # nothing half-written


def test_bad_files_and_arguments(capsys, tmp_path, scanned):
    (tmp_path / "broken.json").write_text("{")
    cases = [
        (["scan", tmp_path / "missing.toml"], "scan"),
        (["scan", tmp_path / "broken.json"], "scan"),
        (["scan"], "scan"),
        (["scan", scanned.cfg, "-o", tmp_path / "no" / "scan.h5"], "scan"),
        (["scan", scanned.cfg, "--cl", "0.9", "-o", tmp_path / "s.h5"], "scan"),
        (["scan", scanned.cfg, "--seed", "1", "-o", tmp_path / "s.h5"], "scan"),
        (["scan", write(tmp_path / "ws.json", BKG), "-o", tmp_path / "s.h5"], "scan"),
        (["scan", scanned.cfg, "--resume", "--overwrite"], ""),
        (["scan", scanned.cfg, "--chunk-size", "0"], ""),
        (["scan", scanned.cfg, "--memory-budget", "2XB"], ""),
    ]
    for argv, command in cases:
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == "", argv
        one_error_line(err, command)
    assert not (tmp_path / "s.h5").exists()
    assert parse_bytes("2GB") == 2 * 10**9 and parse_bytes("512MiB") == 512 * 2**20


def test_not_converged_exits_3_and_still_reports(capsys, monkeypatch, scanned, tmp_path):
    res = read_results(scanned.out)[1]
    res["fit_converged"][[1, 3]] = False
    monkeypatch.setattr(jaxlike.scan, "mass_scan", lambda *args, **kwargs: res)
    code, out, err = run(capsys, "scan", scanned.cfg, "-o", tmp_path / "s.h5", "--json")
    assert code == 3
    summary = json.loads(out)
    fit = "the free or background-only fit did not converge"
    assert summary["not_converged"] == {
        "count": 2, "first": [3.5, 6.5], "checks": [f"3.5: {fit}", f"6.5: {fit}"]
    }  # fmt: skip
    assert summary["converged_fraction"] == 0.6
    (line,) = err.splitlines()
    assert line.startswith(
        f"jaxlike scan: warning: 2 of 5 hypotheses did not converge (mass 3.5: {fit}"
    )
    assert "written to" in line


def test_plot_mass_scan(capsys, scanned, tmp_path):
    code, out, err = run(capsys, "plot", scanned.out, "-o", tmp_path / "brazil.png", "--logy")
    assert code == 0, err
    assert out.split() == [str(tmp_path / "brazil.png"), str(tmp_path / "significance.png")]
    for name in ("brazil.png", "significance.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    sig = tmp_path / "sig.pdf"
    code, _, err = run(capsys, "plot", scanned.out, "-o", tmp_path / "b", "--format", "pdf",
                       "--significance", sig, "--units", "mu")  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "b.pdf").read_bytes()[:4] == PDF and sig.read_bytes()[:4] == PDF


def test_plot_fails_cleanly(capsys, scanned, tmp_path):
    (tmp_path / "corrupt.h5").write_bytes(b"not an HDF5 file")
    png = ["-o", tmp_path / "x.png"]
    for argv in (
        [tmp_path / "missing.h5", *png],
        [tmp_path / "corrupt.h5", *png],
        [scanned.out, "--cl", "0.9", *png],
        [scanned.out, "--units", "physical", "--cl", "0.9", *png],
        [scanned.out, "-o", tmp_path / "no" / "brazil.png"],
    ):
        code, out, err = run(capsys, "plot", *argv)
        assert code == 2 and out == "", argv
        one_error_line(err, "plot")
    assert not (tmp_path / "x.png").exists()


def test_example_writes_scans_and_plots(capsys, monkeypatch, tmp_path):
    def write_tiny(folder, seed=0):
        return Path(write(Path(folder) / "tiny_scan.json", make_config()))

    monkeypatch.setattr(jaxlike.examples, "SCAN_EXAMPLES", {"alp": write_tiny}, raising=False)
    folder = tmp_path / "demo"
    code, out, err = run(
        capsys, "scan", "--example", "alp", "-o", folder, "--json", "--no-progress"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["config"] == str(folder / "tiny_scan.json")
    assert summary["output"] == str(folder / "scan.h5")
    assert summary["plots"] == [str(folder / "brazil.png"), str(folder / "significance.png")]
    for name in ("brazil.png", "significance.png"):
        assert (folder / name).read_bytes()[:8] == PNG
    code, _, err = run(capsys, "scan", "--example", "alp", "-o", folder)
    assert code == 2 and "already exists" in one_error_line(err, "scan")


# -- patch scans -------------------------------------------------------------------------------

BKG = {
    "channels": [
        {
            "name": "SR",
            "samples": [
                {
                    "name": "bkg",
                    "data": [50.0, 30.0, 10.0],
                    "modifiers": [
                        {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}}
                    ],
                }
            ],
        }
    ],
    "observations": [{"name": "SR", "data": [52.0, 28.0, 12.0]}],
    "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": []}}],
    "version": "1.0.0",
}
GRID = [(100, 0), (100, 50), (200, 0), (200, 50), (300, 0), (300, 50)]


def _signal(mx, my):
    s = 30.0 * 100 / mx * (1 - my / 200)
    sample = {
        "name": f"sig_{mx}_{my}",
        "data": [0.2 * s, 0.5 * s, 0.3 * s],
        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
    }
    return [{"op": "add", "path": "/channels/0/samples/-", "value": sample}]


#: BKG with μ bounded to [0, 2]: the limits of the four weakest signals lie above that range
BKG_TIGHT = json.loads(json.dumps(BKG))
BKG_TIGHT["measurements"][0]["config"]["parameters"] = [
    {"name": "mu", "bounds": [[0.0, 2.0]], "inits": [0.5]}
]
ABOVE = ["grid_200p0_0p0", "grid_200p0_50p0", "grid_300p0_0p0", "grid_300p0_50p0"]


def _grid_files(folder: Path):
    """Write the grid as HEPData publishes it: ``BkgOnly.json`` beside one ``patch.*.json``
    per signal, and as a patchset; return (workspace, patchset, folder of patch files)."""
    from jaxlike.workspace import digest

    (folder / "grid").mkdir()
    bkg = write(folder / "grid" / "BkgOnly.json", BKG_TIGHT)
    entries = []
    for mx, my in GRID:
        name = f"grid_{mx}p0_{my}p0"
        entries.append({"metadata": {"name": name, "values": [mx, my]}, "patch": _signal(mx, my)})
        write(folder / "grid" / f"patch.{name}.json", _signal(mx, my))
    meta = {
        "description": "toy",
        "digests": {"sha256": digest(BKG_TIGHT)},
        "labels": ["m_x", "m_y"],
    }
    patchset = write(folder / "ps.json", {"metadata": meta, "patches": entries, "version": "1.0.0"})
    return bkg, patchset, folder / "grid"


@pytest.fixture(scope="module")
def patch_scans(tmp_path_factory):
    """The grid scanned twice: from the patchset in μ's range [0, 2], and from the folder
    (BkgOnly.json among the patches) with the --poi-max that the first scan suggests."""
    folder = tmp_path_factory.mktemp("patches")
    bkg, patchset, grid = _grid_files(folder)
    runs = []
    for source, extra in (("--patchset", []), ("--patches", None)):
        out = folder / f"{source[2:]}.h5"
        if extra is None:
            extra = ["--poi-max", str(runs[0].summary["above_range"]["suggested_poi_max"])]
        path = patchset if source == "--patchset" else grid
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(["scan", bkg, source, str(path), "-o", str(out), "--json",
                         "--no-progress", *extra])  # fmt: skip
        summary = json.loads(stdout.getvalue())
        runs.append(SimpleNamespace(code=code, summary=summary, err=stderr.getvalue(), out=out))
    return SimpleNamespace(bkg=bkg, patchset=patchset, grid=grid, ps=runs[0], dir=runs[1])


def test_patch_scan_limit_above_the_poi_range_is_not_a_failure(patch_scans):
    """Limits above μ's upper bound are reported as such (with a --poi-max to rerun with), are
    no convergence failure (exit 0) and are left out of the strongest/weakest limits."""
    run = patch_scans.ps
    assert run.code == 0, run.err
    s = run.summary
    assert (s["kind"], s["hypotheses"], s["converged_fraction"]) == ("patches", 6, 1.0)
    assert s["not_converged"] == {"count": 0, "first": [], "checks": []}
    high = s["above_range"]
    assert (high["poi_max"], high["count"], high["first"]) == (2.0, 4, ABOVE)
    assert 2.0 < high["suggested_poi_max"] <= 20.0
    (line,) = run.err.splitlines()
    assert line.startswith("jaxlike scan: note: limit > poi_max = 2 for 4 of 6 hypotheses")
    assert line.endswith(f"rerun with --poi-max {high['suggested_poi_max']:g}")
    hyps, res, attrs = read_results(run.out)
    np.testing.assert_array_equal(hyps["values"], GRID)
    assert [str(n) for n in attrs["patch_names"]] == [f"grid_{x}p0_{y}p0" for x, y in GRID]
    assert res["cls_exp"].shape == (6, 5) and res["ul_exp"].shape == (6, 1, 5)
    assert res["cls_converged"].all() and not res["limit_converged"][2:].any()
    lanes = np.concatenate([res["ul_obs"], res["ul_exp"][:, 0]], axis=1)
    assert np.isnan(lanes[2:]).any(axis=1).all()  # above the range: NaN in the file, as before
    assert np.isfinite(lanes[:2]).all()
    (limits,) = s["limits"]
    assert limits["excluded"] == {"above_range": 4, "not_converged": 0}
    assert limits["strongest"]["patch"] == "grid_100p0_0p0"
    assert limits["weakest"]["patch"] == "grid_100p0_50p0"  # the weakest *reliable* limit
    assert limits["weakest"]["obs"] == pytest.approx(res["ul_obs"][1, 0])
    cls_obs = res["cls_obs"]
    assert cls_obs[0] < 0.05 < cls_obs[-1]  # the largest signal is excluded, the smallest not
    assert s["excluded"]["observed"] == int(np.sum(cls_obs < 0.05))


def test_patch_folder_skips_the_workspace_and_poi_max_brackets_every_limit(patch_scans):
    """--patches DIR takes the patch files of a HEPData folder and skips BkgOnly.json (saying
    so); the suggested --poi-max brings every limit into range; coordinates come from the file
    names and the CLs equal those of the patchset scan."""
    run = patch_scans.dir
    assert run.code == 0, run.err
    assert run.summary["skipped"] == ["BkgOnly.json (the workspace)"]
    assert run.err.splitlines() == [
        f"jaxlike scan: note: --patches {patch_scans.grid}: skipped BkgOnly.json (the workspace)"
    ]
    assert "above_range" not in run.summary and run.summary["converged_fraction"] == 1.0
    assert run.summary["limits"][0]["excluded"] == {"above_range": 0, "not_converged": 0}
    hyps, res, _ = read_results(run.out)
    np.testing.assert_array_equal(hyps["values"], GRID)
    assert res["limit_converged"].all() and np.isfinite(res["ul_exp"]).all()
    first = read_results(patch_scans.ps.out)[1]
    np.testing.assert_allclose(res["cls_obs"], first["cls_obs"], rtol=1e-9)
    inside = first["mu_hat"] < 2.0  # μ̂ inside both bounds: the same limits (test_scan_patches)
    assert inside[:2].all()
    np.testing.assert_allclose(res["ul_obs"][:2], first["ul_obs"][:2], rtol=1e-6)
    lanes = np.concatenate([res["ul_obs"], res["ul_exp"][:, 0]], axis=1)
    was_above = np.isnan(np.concatenate([first["ul_obs"], first["ul_exp"][:, 0]], axis=1))
    assert was_above[2:].any(axis=1).all() and (lanes[was_above] > 2.0).all()


def test_patch_folder_without_patches_is_one_line(capsys, patch_scans, tmp_path):
    (tmp_path / "pallet").mkdir()
    write(tmp_path / "pallet" / "BkgOnly.json", BKG_TIGHT)
    ps = tmp_path / "pallet" / "patchset.json"
    ps.write_text(Path(patch_scans.patchset).read_text())
    code, out, err = run(capsys, "scan", patch_scans.bkg, "--patches", tmp_path / "pallet",
                         "-o", tmp_path / "s.h5")  # fmt: skip
    assert code == 2 and out == ""
    line = one_error_line(err, "scan")
    assert "no patch files (skipped BkgOnly.json (a workspace), patchset.json (a patchset))" in line
    assert line.endswith(f"pass the patchset with --patchset {ps}")
    (tmp_path / "pallet" / "patch.bad.json").write_text(json.dumps([{"op": "jump", "path": "/"}]))
    code, out, err = run(capsys, "scan", patch_scans.bkg, "--patches", tmp_path / "pallet",
                         "-o", tmp_path / "s.h5")  # fmt: skip
    assert code == 2 and "patch.bad.json" in one_error_line(err, "scan")
    assert not (tmp_path / "s.h5").exists()


def test_patch_scan_failure_names_the_check_and_exits_3(capsys, monkeypatch, patch_scans,
                                                        tmp_path):  # fmt: skip
    """A hypothesis test that did not converge, and a limit search that stopped at a wrong μ
    (the check at that μ finds CLs ≠ α), are failures: exit 3 naming both checks; the limit
    above the range stays a note, and neither enters the strongest/weakest limits."""
    res = read_results(patch_scans.ps.out)[1]
    res["cls_converged"][0] = res["converged"][0] = False
    res["ul_obs"][1, 0] *= 0.5
    res["limit_converged"][1, 0] = res["converged"][1] = False
    monkeypatch.setattr(jaxlike.scan, "patch_scan", lambda *args, **kwargs: res)
    code, out, err = run(capsys, "scan", patch_scans.bkg, "--patchset", patch_scans.patchset,
                         "-o", tmp_path / "s.h5", "--json")  # fmt: skip
    assert code == 3
    s = json.loads(out)
    assert s["not_converged"]["count"] == 2 and s["above_range"]["count"] == 4
    first, second = s["not_converged"]["checks"]
    assert first == "grid_100p0_0p0: a fit of the CLs test did not converge"
    assert second.startswith("grid_100p0_50p0: observed limit search (95% CL): CL(")
    assert second.endswith(", not 0.05")
    assert s["limits"][0]["excluded"] == {"above_range": 4, "not_converged": 2}
    assert "strongest" not in s["limits"][0]  # no hypothesis left with reliable limits
    note, warning = err.splitlines()
    assert note.startswith("jaxlike scan: note: limit > poi_max = 2 for 4 of 6")
    assert warning.startswith("jaxlike scan: warning: 2 of 6 hypotheses did not converge "
                              f"(patch {first}; {second})")  # fmt: skip


def test_plot_patch_scan(capsys, patch_scans, tmp_path):
    code, out, err = run(capsys, "plot", patch_scans.dir.out, "-o", tmp_path / "excl.png")
    assert code == 0, err
    assert (tmp_path / "excl.png").read_bytes()[:8] == PNG


# -- the README's published-likelihood commands --------------------------------------------------

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "### Published likelihoods from the command line"


def _readme_blocks() -> list[str]:
    """The ```bash blocks of the README section on published likelihoods."""
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n#", start + len(SECTION))
    return re.findall(r"```bash\n(.*?)```", text[start : end if end > 0 else None], re.S)


def test_readme_published_likelihood_commands_parse():
    """Each jaxlike command of that README section parses, names files that exist (data at
    ../shared/data, as from the repository root) and together they show inspect, fit, cls -p,
    limit -p and the ERJR patch scan with --patches and with a patchset (run: the slow test)."""
    from jaxlike.cli._main import build_parser

    commands = [
        shlex.split(line.split("#")[0])
        for block in _readme_blocks()
        for line in block.splitlines()
        if line.startswith("jaxlike ")
    ]
    shown = {(c[1], *[a for a in ("-p", "--patches", "--patchset") if a in c]) for c in commands}
    assert {("inspect",), ("fit",), ("cls", "-p"), ("limit", "-p")} <= shown
    assert {("scan", "--patches"), ("scan", "--patchset")} <= shown
    for argv in commands:
        build_parser().parse_args(argv[1:])  # a usage error raises
        for arg in argv:
            path = arg.split(":")[0]
            if path.startswith("../shared/data/"):
                assert (DATA / path.removeprefix("../shared/data/")).exists(), (argv, path)


@pytest.mark.slow
def test_readme_published_likelihood_commands_run(tmp_path):
    """The README section runs as written from a repository root beside shared/data (about
    10 min on 2 cores: two 66-patch ERJR scans), and says what it outputs: 16 limits above the
    POI range of 10 and the --poi-max that brings them in (the default-run tests above cover
    the same logic on small grids)."""
    if not (DATA / "atlas_erjr").exists():
        pytest.skip(f"{DATA / 'atlas_erjr'} not available")
    repo = tmp_path / "repo"
    repo.mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(DATA)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    errors = []
    for block in _readme_blocks():
        proc = subprocess.run(["bash", "-e", "-c", block], cwd=repo, env=env, text=True,
                              capture_output=True, timeout=3600)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        errors.append(proc.stderr)
    assert "limit > poi_max = 10 for 16 of 66 hypotheses" in errors[0]
    assert "rerun with --poi-max 400" in errors[0]
    assert "skipped BkgOnly.json (the workspace)" in errors[0]
    hyps, res, _ = read_results(repo / "erjr_wide.h5")
    assert len(hyps["index"]) == 66 and res["converged"].all() and res["limit_converged"].all()
    res = read_results(repo / "erjr3.h5")[1]
    assert res["converged"].all() and res["ul_obs"][0, 0] == pytest.approx(1.041, abs=1e-3)


# -- integrity of the results file ---------------------------------------------------------------


def _flip(path, dataset, row):
    """Invert two bytes of ``row`` of a (contiguous) dataset in the raw file."""
    with h5py.File(path, "r") as f:
        ds = f[dataset]
        offset = ds.id.get_offset() + row * ds.dtype.itemsize * int(np.prod(ds.shape[1:]))
    with open(path, "r+b") as fh:
        fh.seek(offset + 2)
        raw = fh.read(2)
        fh.seek(offset + 2)
        fh.write(bytes(b ^ 0xFF for b in raw))


def test_damaged_rows_are_refused_by_plot_and_recomputed_by_resume(capsys, scanned, tmp_path):
    damaged = tmp_path / "damaged.h5"
    shutil.copy(scanned.out, damaged)
    _flip(damaged, "results/mu_hat", 2)
    code, out, err = run(capsys, "plot", damaged, "-o", tmp_path / "b.png")
    assert code == 2 and "row 2 failed their checksum" in one_error_line(err, "plot")
    code, out, err = run(capsys, "scan", scanned.cfg, "-o", damaged, "--resume", "--json",
                         "--no-progress")  # fmt: skip
    assert code == 0, err
    (line,) = err.splitlines()
    assert line.startswith("jaxlike scan: warning: ") and "row 2 failed their checksum" in line
    summary = json.loads(out)
    assert (summary["computed"], summary["resumed"]) == (1, 4)
    full, resumed = read_results(scanned.out)[1], read_results(damaged)[1]
    for key, value in full.items():  # the same chunk size: bit for bit
        np.testing.assert_array_equal(resumed[key], value, err_msg=key)


def test_resume_identity_uses_canonical_numbers(capsys, scanned, tmp_path):
    cfg = make_config()
    cfg["window"]["lo"], cfg["window"]["hi"] = 5, 5  # the file has 5.0
    code, out, err = run(capsys, "scan", write(tmp_path / "c.json", cfg), "-o", scanned.out,
                         "--resume")  # fmt: skip
    assert code == 0, err
    assert "5 (0 computed, 5 resumed)" in out


def test_resume_with_another_chunk_size_is_refused(capsys, scanned, tmp_path):
    partial = tmp_path / "partial.h5"
    shutil.copy(scanned.out, partial)
    with h5py.File(partial, "r+") as f:
        f["done"][3:] = False
    before = partial.read_bytes()
    code, out, err = run(capsys, "scan", scanned.cfg, "-o", partial, "--resume",
                         "--chunk-size", "2")  # fmt: skip
    assert code == 2 and out == ""
    assert "chunk size differs (file 5, this scan 2" in one_error_line(err, "scan")
    assert partial.read_bytes() == before


def test_example_resume_with_another_seed_changes_nothing(capsys, monkeypatch, scanned, tmp_path):
    def write_tiny(folder, seed=0):
        cfg = make_config()
        cfg["spectrum"]["counts"][0][7] += seed
        return Path(write(Path(folder) / "tiny_scan.json", cfg))

    monkeypatch.setattr(jaxlike.examples, "SCAN_EXAMPLES", {"alp": write_tiny}, raising=False)
    folder = tmp_path / "demo"
    folder.mkdir()
    write_tiny(folder)
    shutil.copy(scanned.out, folder / "scan.h5")  # the scan of the seed 0 example
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    code, out, err = run(
        capsys, "scan", "--example", "alp", "--seed", "3", "--resume", "-o", folder
    )
    assert code == 2 and out == ""
    assert "cannot resume" in one_error_line(err, "scan")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    code, out, err = run(capsys, "scan", "--example", "alp", "--resume", "-o", folder, "--json")
    assert code == 0, err
    assert (json.loads(out)["computed"], json.loads(out)["resumed"]) == (0, 5)
    assert sorted(p.name for p in folder.iterdir()) == [
        "brazil.png", "scan.h5", "significance.png", "tiny_scan.json"
    ]  # fmt: skip


def test_full_disk_unwritable_folder_and_os_errors_are_one_line(capsys, monkeypatch, scanned,
                                                                tmp_path):  # fmt: skip
    import os

    import jaxlike.stream._store as store

    usage = shutil.disk_usage(tmp_path)._replace(free=1000)
    with monkeypatch.context() as m:
        m.setattr(store.shutil, "disk_usage", lambda path: usage)
        code, out, err = run(capsys, "scan", scanned.cfg, "-o", tmp_path / "s.h5")
    assert code == 2 and out == ""
    assert "not enough disk space" in one_error_line(err, "scan")
    assert list(tmp_path.iterdir()) == []  # no results file, no temporary file

    real_access = os.access
    readonly = tmp_path / "ro"
    readonly.mkdir()
    with monkeypatch.context() as m:  # as root, os.access says yes to everything
        m.setattr(os, "access", lambda p, mode: Path(p) != readonly and real_access(p, mode))
        code, out, err = run(capsys, "scan", scanned.cfg, "-o", readonly / "s.h5")
        assert code == 2 and out == ""
        assert f"folder {readonly} is not writable" in one_error_line(err, "scan")
        spec = json.loads(json.dumps(BKG))
        spec["channels"][0]["samples"].append(_signal(100, 0)[0]["value"])
        ws = write(tmp_path / "ws.json", spec)
        code, out, err = run(capsys, "grid", ws, "--x", "mu:0:1:2", "--y", "bkg_norm:-1:1:2",
                             "-o", readonly / "g.h5")  # fmt: skip
        assert code == 2 and "is not writable" in one_error_line(err, "grid")
    if os.geteuid() != 0:  # a real read-only folder
        readonly.chmod(0o555)
        try:
            code, _, err = run(capsys, "scan", scanned.cfg, "-o", readonly / "s.h5")
            assert code == 2 and "is not writable" in one_error_line(err, "scan")
        finally:
            readonly.chmod(0o755)

    def enospc(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "x.h5"))

    monkeypatch.setattr(jaxlike.scan, "mass_scan", enospc)
    code, out, err = run(capsys, "scan", scanned.cfg, "-o", tmp_path / "x.h5")
    assert code == 2 and out == ""
    assert one_error_line(err, "scan").endswith("x.h5: No space left on device")
