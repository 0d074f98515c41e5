"""Toy-based scans: ``jaxlike scan --calctype toybased`` (toy limits and toy p0 at every
hypothesis, in the trace, streamed and resumable) and ``--rule clsb``.

The scan is the tiny one of ``test_cli_scan`` (5 masses, 20 window bins, ~200 events per fine
bin: the asymptotic regime, where toy limits must agree with the asymptotic ones)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_cli_scan import make_config, run, write

from jaxlike.scan import read_results

TOYS = ["--calctype", "toybased", "--ntoys", "150", "--toy-points", "5", "--toy-seed", "3"]


@pytest.fixture(scope="module")
def toy_scan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toyscan")
    cfg = write(folder / "cfg.json", make_config())
    out = folder / "scan.h5"
    return cfg, out


def test_toy_scan_limits_agree_with_asymptotics_and_resume(toy_scan, capsys):
    """Every mass gets toy limits with an MC error and a toy p0; in the asymptotic regime the
    toy limits equal the asymptotic ones within 3 MC errors plus the z-interpolation on a
    5-point grid (10%); the file resumes (complete: returned as is) and refuses other toy
    options."""
    cfg, out = toy_scan
    code, stdout, err = run(capsys, "scan", cfg, "-o", out, "--json", "--no-progress", *TOYS)
    assert code == 0, err
    s = json.loads(stdout)
    assert s["toys"] == {"ntoys": 150, "seed": 3, "npoints": 5, "toy_pars": "profiled"}
    assert s["toy_limits"][0]["strongest"]["obs"] > 0
    hyps, res, attrs = read_results(out)
    assert res["ul_obs_toys"].shape == (5, 1) and res["ul_exp_toys"].shape == (5, 1, 5)
    assert res["toy_grid"].shape == (5, 5) and np.all(res["toy_grid"][:, 0] == 0)
    assert np.all(res["toys_failed"] == 0) and np.all(res["toy_limit_converged"])
    asym, toys, err = res["ul_obs"][:, 0], res["ul_obs_toys"][:, 0], res["ul_obs_toys_err"][:, 0]
    assert np.all(np.isfinite(err)) and np.all(err > 0)
    assert np.all(np.abs(toys - asym) <= 3 * err + 0.10 * asym), (toys, asym, err)
    med = res["ul_exp_toys"][:, 0, 2]
    assert np.all(np.abs(med - res["ul_exp"][:, 0, 2]) <= 0.25 * res["ul_exp"][:, 0, 2])
    # toy p0 (one-sided) against the asymptotic p0 where there is an excess
    up = res["mu_hat"] > 0
    assert np.all(np.abs(res["p0_toys"][up] - res["p0"][up]) <= 3 * res["p0_toys_err"][up] + 0.03)
    assert attrs["config"]["toys"]["ntoys"] == 150
    code, stdout2, err = run(capsys, "scan", cfg, "-o", out, "--json", "--no-progress",
                             "--resume", *TOYS)  # fmt: skip
    assert code == 0 and json.loads(stdout2)["toy_limits"] == s["toy_limits"]
    other = [*TOYS[:-1], "4"]
    code, _, err = run(capsys, "scan", cfg, "-o", out, "--no-progress", "--resume", *other)
    assert code == 2 and "toys" in err


def test_toy_flags_need_toybased_and_rule_clsb(toy_scan, capsys, tmp_path):
    cfg, _ = toy_scan
    code, _, err = run(capsys, "scan", cfg, "-o", tmp_path / "a.h5", "--ntoys", "10")
    assert code == 2 and "--ntoys needs --calctype toybased" in err
    code, _, err = run(capsys, "scan", cfg, "-o", tmp_path / "b.h5", "--calctype", "toybased",
                       "--toy-points", "2")  # fmt: skip
    assert code == 2 and "--toy-points" in err
    code, stdout, err = run(capsys, "scan", cfg, "-o", tmp_path / "c.h5", "--json",
                            "--no-progress", "--rule", "clsb")  # fmt: skip
    assert code == 0, err
    clsb = read_results(tmp_path / "c.h5")[1]["ul_obs"]
    assert json.loads(stdout)["rule"] == "clsb"
    assert read_results(tmp_path / "c.h5")[2]["config"]["rule"] == "clsb"
    # CLs+b limits are never weaker than CLs limits (CLs = CLs+b / CLb ≥ CLs+b); the CLs
    # limits: the asymptotic ones of the toy scan's file (the test above)
    cls = read_results(toy_scan[1])[1]["ul_obs"]
    assert np.all(clsb <= cls + 1e-9) and np.any(clsb < 0.95 * cls)
