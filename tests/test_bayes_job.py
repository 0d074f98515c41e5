"""The posterior job (:mod:`jaxlike.jobs.posterior`: configuration → NUTS → summary, HDF5,
corner plots) and ``jaxlike posterior``, on a one-bin model with a parameter that enters only
squared."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxlike.bayes import Posterior
from jaxlike.cli import main
from jaxlike.exceptions import InvalidScanConfig
from jaxlike.jobs import (
    WET_POSTERIOR_CONFIG,
    load_posterior_config,
    read_posterior_config,
    run_posterior_job,
    write_wet_posterior_config,
)

#: ν = c² s + b: c enters only squared (like a Wilson coefficient), bounds [0, 5]
WS = {
    "channels": [
        {
            "name": "c",
            "samples": [
                {"name": "s", "data": [20.0], "modifiers": [
                    {"name": "c", "type": "normfactor", "data": None},
                    {"name": "c2", "type": "normfactor", "data": None}]},
                {"name": "b", "data": [50.0], "modifiers": [
                    {"name": "alpha", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}}]},
            ],
        }
    ],
    "observations": [{"name": "c", "data": [75.0]}],
    "measurements": [{"name": "m", "config": {"poi": "c", "parameters": [
        {"name": "c", "bounds": [[0.0, 5.0]], "inits": [1.0]},
        {"name": "c2", "bounds": [[0.0, 5.0]], "inits": [1.0]}]}}],
    "version": "1.0.0",
}  # fmt: skip
SMALL = {"chains": 2, "warmup": 200, "samples": 600, "seed": 1}


def _config(tmp_path, **extra):
    (tmp_path / "ws.json").write_text(json.dumps(WS))
    cfg = {
        "model": {"workspace": "ws.json"},
        "sampler": SMALL,
        "priors": {"c2": {"type": "truncated_normal", "loc": 1.0, "scale": 0.01}},
        "report": {
            "parameters": ["c", "alpha"],
            "mirror": ["c"],
            "hdi": [0.68, 0.95],
            "reference": {"c": 1.0, "alpha": 0.0},
        },
    }
    cfg.update(extra)
    path = tmp_path / "post.json"
    path.write_text(json.dumps(cfg))
    return path


def test_job_writes_products(tmp_path):
    path = _config(
        tmp_path, variant=[{"name": "square", "priors": {"c": {"type": "uniform_in_square"}}}]
    )
    out = tmp_path / "out"
    summary = run_posterior_job(path, out, progress=None)
    for f in ("posterior.h5", "posterior_square.h5", "summary.json", "corner.png"):
        assert (out / f).stat().st_size > 0
    assert not list(out.glob(".*tmp*"))
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    nominal = summary["posteriors"]["nominal"]["parameters"]
    assert nominal["c"]["quantity"] == "|c|"
    post = Posterior.from_hdf5(out / "posterior.h5")
    lo, hi = post.abs_hdi("c", 0.68)
    assert nominal["c"]["hdi_68"] == pytest.approx([lo, hi])
    # c ≈ sqrt((75 − 50)/20) ≈ 1.1; 68% HDI brackets it, R-hat fine
    assert lo < 1.12 < hi and nominal["c"]["rhat"] < 1.02
    # c and c2 enter only as the product c·c2: without c2's prior the MLE is degenerate, and
    # the certificate says so instead of reporting a converged fit
    assert not summary["mle"]["converged"]
    assert "degenerate: c, c2" in summary["mle"]["status"]
    # a prior ∝ c (uniform in c²) pulls |c| up relative to the uniform prior
    square = summary["posteriors"]["square"]["parameters"]["c"]
    assert square["mean"] > nominal["c"]["mean"]
    # every summary has its batch-means MC error; the joint mode of the reported parameters
    c = nominal["c"]
    for k in ("mean_mcse", "mode_mcse", "upper_limit_95_mcse"):
        assert 0 < c[k] < 0.2 * c["sd"], k
    assert len(c["hdi_68_mcse"]) == 2 and all(0 < e < 0.2 * c["sd"] for e in c["hdi_68_mcse"])
    joint = summary["posteriors"]["nominal"]["joint_mode"]  # of (|c|, alpha)
    assert joint["parameters"] == ["|c|", "alpha"]
    assert len(joint["value"]) == len(joint["mcse"]) == 2
    assert joint["value"][0] == pytest.approx(c["mode"], abs=0.2)  # |c| ⟂ alpha here
    assert all(0 < e < 0.3 for e in joint["mcse"])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"extra": 1}, "extra"),
        ({"model": {}}, "model"),
        ({"sampler": {"chains": 0}}, "sampler.chains"),
        ({"sampler": {"thin": 2}}, "sampler.thin"),
        ({"priors": {"c": {"type": "flat"}}}, "priors.c.type"),
        ({"priors": {"c": {"type": "uniform", "loc": 1}}}, "priors.c.loc"),
        ({"report": {"hdi": [1.5]}}, "report.hdi"),
        ({"variant": [{"name": "a b"}]}, "variant[0].name"),
    ],
)
def test_bad_config_names_the_field(tmp_path, change, field):
    cfg = {"model": {"workspace": "ws.json"}}
    cfg.update(change)
    with pytest.raises(InvalidScanConfig, match=f"^{field.replace('[', '.').replace(']', '.')}"):
        load_posterior_config(cfg)


def test_cli(tmp_path, capsys):
    path = _config(tmp_path)
    rc = main(["posterior", str(path), "-o", str(tmp_path / "o"), "--samples", "400", "--json"])
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert rc == 3  # the MLE is degenerate (c·c2), see test_job_writes_products
    assert "MLE not converged (Hessian not positive definite" in captured.err
    assert out["sampler"]["num_samples"] == 400
    assert np.isfinite(out["posteriors"]["nominal"]["parameters"]["c"]["mode"])
    assert main(["posterior", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml: cannot read" in capsys.readouterr().err
    assert main(["posterior"]) == 2


def test_cli_no_variants_and_read_posterior_config(tmp_path, capsys):
    path = _config(
        tmp_path, variant=[{"name": "square", "priors": {"c": {"type": "uniform_in_square"}}}]
    )
    raw = read_posterior_config(path)
    assert raw["_base"] == str(tmp_path) and raw["variant"][0]["name"] == "square"
    out = tmp_path / "o"
    argv = ["posterior", str(path), "-o", str(out), "--samples", "200", "--warmup", "100"]
    rc = main([*argv, "--no-variants", "--json"])
    assert rc == 3  # the degenerate MLE, as in test_cli
    summary = json.loads(capsys.readouterr().out)
    assert list(summary["posteriors"]) == ["nominal"]
    assert not (out / "posterior_square.h5").exists()


def test_wet_posterior_config_names_the_workspace_relative_to_it(tmp_path):
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "wet.json").write_text(json.dumps(WS))
    (tmp_path / "cfg").mkdir()
    ws, cfg_path = tmp_path / "ws" / "wet.json", tmp_path / "cfg" / "wet.json"
    written = write_wet_posterior_config(cfg_path, ws)
    assert written["model"] == {"workspace": "../ws/wet.json"}
    assert {k: v for k, v in written.items() if k != "model"} == {
        k: v for k, v in WET_POSTERIOR_CONFIG.items() if k != "model"
    }
    cfg = load_posterior_config(cfg_path)
    assert [name for name, _ in cfg["variants"]] == ["truncated_normal", "uniform_in_square"]
    assert not list((tmp_path / "cfg").glob(".*tmp*"))
