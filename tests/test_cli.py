"""The ``jaxlike`` command line, called in-process through ``main`` (and once as a process)."""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import DATA

import jaxlike
from jaxlike.cli import main
from jaxlike.examples import make_example_workspace

HELLO = DATA / "pyhf_validation" / "readme_hello_world_uncorrelated_background.json"
RTOL = 5e-4  # recommended acceptance tolerance of the pyhf reference files


@pytest.fixture(scope="module")
def hello():
    """(path of the hello-world workspace, its reference numbers)."""
    if not HELLO.exists():
        pytest.skip(f"{HELLO} not available")
    case = json.loads(HELLO.read_text())
    return case["workspace"], case["expected"]


@pytest.fixture(scope="module")
def hello_path(hello, tmp_path_factory):
    path = tmp_path_factory.mktemp("hello") / "workspace.json"
    path.write_text(json.dumps(hello[0]))
    return str(path)


@pytest.fixture(scope="module")
def example_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("example") / "example.json"
    path.write_text(json.dumps(make_example_workspace(0)))
    return str(path)


def run(capsys, *argv):
    """(exit code, stdout, stderr) of ``jaxlike argv...``."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cls_matches_pyhf_reference(capsys, hello, hello_path):
    code, out, err = run(capsys, "cls", hello_path, "--backend", "numpy")
    assert code == 0, err
    result = json.loads(out)
    assert list(result) == ["CLs_exp", "CLs_obs"]  # sorted keys, like pyhf cls
    assert out.startswith('{\n    "CLs_exp": [\n')  # indent=4, like pyhf cls
    np.testing.assert_allclose(result["CLs_obs"], hello[1]["CLs_obs"], rtol=RTOL)
    np.testing.assert_allclose(result["CLs_exp"], hello[1]["CLs_exp"], rtol=RTOL)


def test_cls_from_stdin_with_patch_and_output_file(capsys, monkeypatch, hello, tmp_path):
    patch = tmp_path / "patch.json"
    ops = [{"op": "replace", "path": "/channels/0/samples/0/data", "value": [24.0, 22.0]}]
    patch.write_text(json.dumps(ops))
    out_file = tmp_path / "cls.json"
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(hello[0])))
    code, out, err = run(
        capsys, "cls", "-", "-p", str(patch), "--test-stat", "q", "--output-file", str(out_file)
    )
    assert code == 0, err
    assert out == ""
    result = json.loads(out_file.read_text())
    assert len(result["CLs_exp"]) == 5
    assert result["CLs_exp"] == sorted(result["CLs_exp"])
    assert 0.0 < result["CLs_obs"] < 0.5 * hello[1]["CLs_obs"]  # doubled signal: excluded


def test_fit_json_and_table(capsys, hello_path):
    code, out, err = run(capsys, "fit", hello_path, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert list(result) == [
        "bestfit",
        "uncertainties",
        "twice_nll",
        "converged",
        "status",
        "edm",
        "degenerate",
        "held_at_kink",
        "at_bound",
        "local_minima",
    ]
    assert result["status"] == "converged" and result["degenerate"] == []
    names = ["mu", "uncorr_bkguncrt[0]", "uncorr_bkguncrt[1]"]
    assert list(result["bestfit"]) == names and list(result["uncertainties"]) == names
    assert result["converged"] is True
    # pyhf 0.7.6: `pyhf fit --value` gives 2NLL 24.98393521 and mu = 0 (at its bound).
    np.testing.assert_allclose(result["twice_nll"], 24.98393521, rtol=1e-7)
    np.testing.assert_allclose(list(result["bestfit"].values())[1:], [1.0030512, 0.9626696], 1e-4)

    code, out, _ = run(capsys, "fit", hello_path)
    assert code == 0
    assert out.splitlines()[0].split() == ["parameter", "value", "uncertainty"]
    assert "uncorr_bkguncrt[1]" in out and "2NLL       24.98393" in out
    assert "converged  yes" in out


def test_fit_not_converged_warns_and_exits_3(capsys, tmp_path):
    """A parameter without effect (a normfactor on an empty sample) makes the Hessian singular:
    the fit names it as degenerate, writes null (not NaN) for the undefined uncertainty and
    exits 3 — it is never reported as converged with EDM inf."""
    spec = {
        "channels": [
            {
                "name": "c",
                "samples": [
                    {"name": "sig", "data": [5.0, 3.0],
                     "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
                    {"name": "ghost", "data": [0.0, 0.0],
                     "modifiers": [{"name": "k_ghost", "type": "normfactor", "data": None}]},
                    {"name": "bkg", "data": [50.0, 60.0],
                     "modifiers": [{"name": "b_unc", "type": "normsys",
                                    "data": {"hi": 1.1, "lo": 0.9}}]},
                ],
            }
        ],
        "observations": [{"name": "c", "data": [57.0, 61.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }  # fmt: skip
    path = tmp_path / "degenerate.json"
    path.write_text(json.dumps(spec))
    code, out, err = run(capsys, "fit", str(path), "--json")
    assert code == 3
    result = json.loads(out)  # strict JSON: no NaN tokens
    assert result["converged"] is False  # results are still printed
    assert result["degenerate"] == ["k_ghost"] and "degenerate" in result["status"]
    assert result["uncertainties"]["k_ghost"] is None
    assert len(err.strip().splitlines()) == 1 and "did not converge" in err
    assert "k_ghost" in err
    code, out, err = run(capsys, "fit", str(path))
    assert code == 3 and "NO: degenerate" in out and "k_ghost" in out


def test_limit_json_and_table(capsys, hello, hello_path):
    code, out, err = run(capsys, "limit", hello_path, "--json")
    assert code == 0, err
    result = json.loads(out)
    reference = hello[1]["upper_limit_toms748_rtol_1em6"]
    assert result["cl"] == 0.95
    np.testing.assert_allclose(result["obs"], reference["obs"], rtol=1e-3)
    np.testing.assert_allclose(result["exp"], reference["exp"], rtol=1e-3)

    code, out, _ = run(capsys, "limit", hello_path)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["95%", "CL"] and lines[0].split()[-1] == "mu"
    assert lines[2].split()[0] == "observed" and len(lines) == 8


def test_inspect_lists_channels_modifiers_parameters(capsys, example_path):
    code, out, err = run(capsys, "inspect", example_path)
    assert code == 0, err
    for text in ("CR_ttbar", "CR_wjets", "fakes", "wjets", "signal", "(*) synthetic_search"):
        assert text in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["SR"][1] == "8" and rows["CR_wjets"][1] == "3"
    assert rows["histosys"][1:3] == ["2", "JES,"]
    assert rows["mu"][1:3] == ["normfactor", "(POI)"]
    assert rows["lumi"][1:] == ["lumi", "constrained_by_normal", "1", "[0.915,", "1.085]"]
    assert rows["fakes_shape[0]"][2] == "constrained_by_poisson"
    assert "staterror_SR[7]" in rows


def _fake_core(monkeypatch, fit_converged=True):
    """Replace jaxlike.fit/hypotest/upper_limit by instant fakes with known numbers."""

    def fit(model, data, **kwargs):
        n = model.config.npars
        return SimpleNamespace(
            bestfit=np.full(n, 0.75),
            uncertainties=np.full(n, 0.25),
            twice_nll=np.array(87.5),
            converged=np.array(fit_converged),
            iterations=np.array(12),
            edm=np.array(1e-12),
            n_local_minima=np.array(1),
            message=lambda names=None: "converged" if fit_converged else "stalled above tolerance",
        )

    band = np.array([1e-5, 1e-4, 2e-3, 0.02, 0.15])
    test = SimpleNamespace(cls_obs=np.array(0.23), cls_exp=band, converged=np.array(True))
    limit = SimpleNamespace(
        obs=np.array(1.3), exp=np.array([0.33, 0.44, 0.62, 0.88, 1.22]), converged=np.array(True)
    )
    monkeypatch.setattr(jaxlike, "fit", fit)
    monkeypatch.setattr(jaxlike, "hypotest", lambda poi, data, model, **kw: test)
    monkeypatch.setattr(jaxlike, "upper_limit", lambda data, model, **kw: limit)


def test_example_table_and_output_file(capsys, monkeypatch, tmp_path):
    _fake_core(monkeypatch)
    output = tmp_path / "ws.json"
    code, out, err = run(capsys, "example", "--seed", "4", "--output", str(output))
    assert code == 0 and err == ""
    assert json.loads(output.read_text()) == make_example_workspace(4)
    rows = {line[:18].strip(): line[18:].strip() for line in out.splitlines()}
    assert rows["workspace"] == "synthetic search, seed 4"
    assert rows["written to"] == str(output)
    assert rows["model"] == "3 channels, 13 bins, 33 parameters"
    assert rows["best-fit mu"] == "0.7500 ± 0.2500"
    assert rows["2NLL"] == "87.5000"
    assert rows["fit converged"] == "yes (12 iterations, edm 1e-12)"
    assert rows["CLs_obs (mu=1)"] == "0.23"
    assert rows["CLs_exp (mu=1)"] == "median 0.002, 1σ [0.0001, 0.02], 2σ [1e-05, 0.15]"
    assert rows["95% CL limit obs"] == "1.3000"
    assert rows["95% CL limit exp"] == "median 0.6200, 1σ [0.4400, 0.8800], 2σ [0.3300, 1.2200]"


def test_example_not_converged_exits_3(capsys, monkeypatch):
    _fake_core(monkeypatch, fit_converged=False)
    code, out, err = run(capsys, "example")
    assert code == 3 and "best-fit mu" in out
    assert len(err.splitlines()) == 1 and "did not converge" in err


@pytest.mark.slow
def test_example_runs_the_main_job(capsys, tmp_path):
    """End to end on the real core (compiles three entry points; the fakes above are fast)."""
    output = tmp_path / "ws.json"
    code, out, err = run(capsys, "example", "--seed", "0", "--output", str(output))
    assert code == 0, err
    assert json.loads(output.read_text()) == make_example_workspace(0)
    rows = {line[:18].strip(): line[18:].strip() for line in out.splitlines()}
    mu, _, unc = rows["best-fit mu"].split()
    assert 0.0 < float(mu) < 2.0 and 0.0 < float(unc) < 1.0
    assert rows["fit converged"].startswith("yes")
    obs_limit = float(rows["95% CL limit obs"])
    assert 0.5 < obs_limit < 3.0
    assert rows["CLs_exp (mu=1)"].startswith("median ")
    assert rows["95% CL limit exp"].startswith("median ")
    # the observed limit excludes mu = obs_limit, so CLs(mu=1) > 0.05 when obs_limit > 1
    assert (float(rows["CLs_obs (mu=1)"]) > 0.05) == (obs_limit > 1.0)
    # pyhf 0.7.6 (numpy, SLSQP tolerance 1e-10) on the same workspace: 2NLL 87.299226,
    # CLs_obs(mu=1) 0.226944, observed limit 1.312343 (toms748).
    np.testing.assert_allclose(float(rows["2NLL"]), 87.299226, atol=2e-4)
    np.testing.assert_allclose(float(rows["CLs_obs (mu=1)"]), 0.226944, atol=2e-4)
    np.testing.assert_allclose(obs_limit, 1.312343, atol=2e-4)


@pytest.mark.slow
def test_cls_with_real_atlas_patch(capsys):
    """A real signal patch on the ATLAS ERJR background-only workspace (69 parameters)."""
    erjr = DATA / "atlas_erjr"
    if not erjr.exists():
        pytest.skip(f"{erjr} not available")
    patch = str(erjr / "patch.ERJR_350p0_0p0.json")
    code, out, err = run(capsys, "cls", str(erjr / "BkgOnly.json"), "-p", patch)
    assert code == 0, err
    result = json.loads(out)
    # pyhf 0.7.6, jax backend, SLSQP tolerance 1e-12 (its default numpy fit stops at the start
    # here and reports CLs_obs 0.9997).
    np.testing.assert_allclose(result["CLs_obs"], 0.05929047, rtol=1e-4)
    expected = [0.00021863, 0.00198585, 0.0155931, 0.09276958, 0.34572825]
    np.testing.assert_allclose(result["CLs_exp"], expected, rtol=1e-4)


def _bad_inputs(tmp: Path, hello_path: str) -> list[list[str]]:
    (tmp / "bad.json").write_text("{not json")
    (tmp / "nochannels.json").write_text(json.dumps({"version": "1.0.0"}))
    (tmp / "notalist.json").write_text(json.dumps({"op": "remove", "path": "/channels"}))
    bad_op = [{"op": "remove", "path": "/channels/7"}]
    (tmp / "badop.json").write_text(json.dumps(bad_op))
    return [
        ["inspect", str(tmp / "missing.json")],
        ["fit", str(tmp / "bad.json")],
        ["cls", str(tmp / "nochannels.json")],
        ["cls", hello_path, "-p", str(tmp / "notalist.json")],
        ["cls", hello_path, "-p", str(tmp / "badop.json")],
        ["cls", hello_path, "-p", hello_path],  # a workspace, not a patch
        ["cls", hello_path, "-p", str(tmp / "badop.json") + ":signal"],  # not a patchset
        ["limit", hello_path, "--poi-max", "-1"],
        ["fit", hello_path, "--measurement", "no_such_measurement"],
        ["limit", hello_path, "--cl", "1.5"],
        ["cls", hello_path, "--test-stat", "q0"],
        ["cls", hello_path, "--test-poi", "one"],
        ["frobnicate"],
        [],
    ]


def test_bad_input_is_one_error_line_and_exit_2(capsys, tmp_path, hello_path):
    for argv in _bad_inputs(tmp_path, hello_path):
        code, out, err = run(capsys, *argv)
        assert code == 2, argv
        assert out == "", argv
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("jaxlike: error: "), (argv, err)


def test_help_and_version(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "cls" in out and "example" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"jaxlike {jaxlike.__version__}"


def test_python_dash_m_exit_codes(tmp_path, example_path):
    def jaxlike_process(*argv):
        return subprocess.run(
            [sys.executable, "-m", "jaxlike", *argv], capture_output=True, text=True, timeout=120
        )

    missing = jaxlike_process("inspect", str(tmp_path / "missing.json"))
    assert missing.returncode == 2
    assert missing.stdout == ""
    assert missing.stderr.splitlines() == [
        f"jaxlike: error: workspace file '{tmp_path / 'missing.json'}' does not exist"
    ]
    ok = jaxlike_process("inspect", example_path)
    assert ok.returncode == 0, ok.stderr
    assert "staterror_CR_ttbar[1]" in ok.stdout


# -- published likelihoods: background-only workspace + signal patches ---------------------------


@pytest.fixture(scope="module")
def split(hello, tmp_path_factory):
    """The hello-world workspace as HEPData publishes a likelihood: a background-only workspace
    and its signal as a patch file, a patchset entry and a patchset (the names of the files)."""
    from jaxlike.workspace import digest

    folder = tmp_path_factory.mktemp("published")
    bkg = copy.deepcopy(hello[0])
    signal = bkg["channels"][0]["samples"].pop(0)
    ops = [{"op": "add", "path": "/channels/0/samples/0", "value": signal}]
    entry = {"metadata": {"name": "signal", "values": [1.0]}, "patch": ops}
    meta = {"description": "hello world", "digests": {"sha256": digest(bkg)}, "labels": ["x"]}
    files = {
        "bkg": bkg,
        "patch": ops,
        "entry": entry,
        "patchset": {"metadata": meta, "patches": [entry], "version": "1.0.0"},
    }
    for name, doc in files.items():
        (folder / f"{name}.json").write_text(json.dumps(doc))
    return SimpleNamespace(**{k: str(folder / f"{k}.json") for k in files}, folder=folder)


def test_background_only_workspace_inspect_and_fit(capsys, split):
    """Without its signal the POI has no modifier: inspect and fit still work (a
    background-only fit, said so); cls and limit say to add a signal with -p."""
    code, out, err = run(capsys, "inspect", split.bkg)
    assert code == 0, err
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert rows["POI"] == ["mu", "(absent)"] and "background-only" in out
    assert "uncorr_bkguncrt[1]" in rows and "mu" not in rows
    code, out, err = run(capsys, "inspect", split.bkg, "-p", split.patch)
    assert code == 0 and "(absent)" not in out and rows["POI"] != out

    code, out, err = run(capsys, "fit", split.bkg, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert list(result["bestfit"]) == ["uncorr_bkguncrt[0]", "uncorr_bkguncrt[1]"]
    assert result["converged"] is True and np.isfinite(result["twice_nll"])
    assert err.strip() == "jaxlike: note: POI mu absent (no modifier in this workspace): " \
        "background-only fit"  # fmt: skip
    code, out, _ = run(capsys, "fit", split.bkg)
    assert code == 0 and "POI        mu absent: background-only fit" in out
    for verb in ("cls", "limit"):
        code, out, err = run(capsys, verb, split.bkg)
        assert code == 2 and out == ""
        assert err.strip() == (
            "jaxlike: error: POI 'mu' of measurement 'meas' has no modifier in this workspace "
            "(a background-only workspace has no signal); add one with -p PATCH"
        )


def test_every_patch_form_gives_the_reference_cls(capsys, hello, split, tmp_path):
    """-p takes a patch file (JSON Patch list), a patchset entry ({metadata, patch}) and
    PATCHSET.json:NAME: background-only + signal patch = the whole workspace, whose CLs pyhf
    published. -o/--output writes the result, --output-file is kept as an alias."""
    forms = [split.patch, split.entry, f"{split.patchset}:signal"]
    for k, form in enumerate(forms):
        out_file = tmp_path / f"cls{k}.json"
        flag = ["-o", "--output", "--output-file"][k]
        code, out, err = run(capsys, "cls", split.bkg, "-p", form, flag, str(out_file))
        assert code == 0 and out == "" and err == "", (form, err)
        result = json.loads(out_file.read_text())
        np.testing.assert_allclose(result["CLs_obs"], hello[1]["CLs_obs"], rtol=RTOL)
        np.testing.assert_allclose(result["CLs_exp"], hello[1]["CLs_exp"], rtol=RTOL)
    code, out, err = run(capsys, "cls", split.bkg, "-p", split.patchset)
    assert code == 2 and out == ""
    assert "is a patchset; pick one of its patches with -p" in err and "(e.g. signal)" in err
    code, out, err = run(capsys, "cls", split.bkg, "-p", f"{split.patchset}:nope")
    assert code == 2 and "no patch named or valued 'nope'" in err
    other = json.loads(Path(split.patchset).read_text())
    other["metadata"]["digests"] = {"sha256": "0" * 64}  # made for another workspace
    (tmp_path / "other.json").write_text(json.dumps(other))
    code, out, err = run(capsys, "cls", split.bkg, "-p", f"{tmp_path / 'other.json'}:signal")
    assert code == 0 and json.loads(out)["CLs_obs"] == pytest.approx(hello[1]["CLs_obs"], RTOL)
    (line,) = err.splitlines()
    assert line.startswith("jaxlike: warning: patchset ") and "does not match" in line


def test_limit_above_the_poi_range_says_so_and_poi_max_finds_it(capsys, hello, split, tmp_path):
    """With μ bounded to [0, 0.5] every limit of the hello world (obs 1.01) lies above the
    range: exit 3 naming the lanes and CLs at 0.5, with a --poi-max that brackets them; with it
    the limits equal pyhf's (μ̂ = 0 lies inside both bounds)."""
    spec = json.loads(Path(split.bkg).read_text())
    bounded = {"name": "mu", "bounds": [[0, 0.5]], "inits": [0.1]}
    spec["measurements"][0]["config"]["parameters"] = [bounded]
    tight = tmp_path / "tight.json"
    tight.write_text(json.dumps(spec))
    code, out, err = run(capsys, "limit", str(tight), "-p", split.patch)
    assert code == 3
    assert out.splitlines()[2].split() == ["observed", ">", "0.5", "(above", "the", "range)"]
    (line,) = err.splitlines()
    assert line.startswith("jaxlike: warning: limit > poi_max = 0.5 for the observed, ")
    suggested = line.split("rerun with --poi-max ")[1]
    assert 2.05 < float(suggested) <= 10  # brackets the +2σ expected limit, 2.05
    code, out, err = run(capsys, "limit", str(tight), "-p", split.patch, "--poi-max", suggested,
                         "--json")  # fmt: skip
    assert code == 0, err
    result, reference = json.loads(out), hello[1]["upper_limit_toms748_rtol_1em6"]
    np.testing.assert_allclose(result["obs"], reference["obs"], rtol=1e-3)
    np.testing.assert_allclose(result["exp"], reference["exp"], rtol=1e-3)


def test_inspect_published_atlas_likelihood(capsys):
    """The ATLAS ERJR background-only workspace and one of its signal patches (no fit)."""
    erjr = DATA / "atlas_erjr"
    if not erjr.exists():
        pytest.skip(f"{erjr} not available")
    bkg, patch = str(erjr / "BkgOnly.json"), str(erjr / "patch.ERJR_350p0_0p0.json")
    code, out, err = run(capsys, "inspect", bkg)
    assert code == 0, err
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert rows["POI"] == ["mu_SIG", "(absent)"] and rows["channels"] == ["4"]
    assert "The POI mu_SIG is absent" in out and "(*) NormalMeasurement" in out
    code, out, err = run(capsys, "inspect", bkg, "-p", patch)
    assert code == 0, err
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert rows["POI"] == ["mu_SIG"] and rows["mu_SIG"][:2] == ["normfactor", "(POI)"]
