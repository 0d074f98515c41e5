"""The bundled synthetic example workspace (jaxlike.examples)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import jaxlike
from jaxlike.examples import INJECTED_MU, main_example, make_example_workspace


def _yield_arrays(spec):
    """Every array of event yields in the workspace (nominal, histosys, uncertainties)."""
    for channel in spec["channels"]:
        for sample in channel["samples"]:
            yield f"{channel['name']}/{sample['name']}", sample["data"]
            for mod in sample["modifiers"]:
                where = f"{channel['name']}/{sample['name']}/{mod['name']}"
                if mod["type"] == "histosys":
                    yield where + "/hi", mod["data"]["hi_data"]
                    yield where + "/lo", mod["data"]["lo_data"]
                elif mod["type"] in ("staterror", "shapesys"):
                    yield where, mod["data"]


def test_same_seed_same_workspace_other_seed_other_data():
    a, b, c = make_example_workspace(0), make_example_workspace(0), make_example_workspace(1)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert a["channels"] == c["channels"]  # templates do not depend on the seed
    assert a["observations"] != c["observations"]


def test_yields_are_positive_and_plausible():
    spec = make_example_workspace(3)
    for where, values in _yield_arrays(spec):
        assert all(v > 0 for v in values), where
    for obs in spec["observations"]:
        counts = np.asarray(obs["data"])
        assert np.all(counts == np.round(counts)) and np.all(counts >= 10), obs["name"]
        assert counts.max() < 5000, obs["name"]
    # Pseudo-data follow background + INJECTED_MU * signal within Poisson fluctuations.
    sr = next(c for c in spec["channels"] if c["name"] == "SR")
    expected = sum(
        np.asarray(s["data"]) * (INJECTED_MU if s["name"] == "signal" else 1.0)
        for s in sr["samples"]
    )
    observed = np.asarray(spec["observations"][0]["data"])
    assert np.all(np.abs(observed - expected) < 5 * np.sqrt(expected) + 1)


def test_structure_matches_the_documented_search():
    spec = make_example_workspace()
    assert spec["version"] == "1.0.0"
    assert [c["name"] for c in spec["channels"]] == ["SR", "CR_ttbar", "CR_wjets"]
    assert [len(o["data"]) for o in spec["observations"]] == [8, 2, 3]
    mods = {
        (m["name"], m["type"])
        for c in spec["channels"]
        for s in c["samples"]
        for m in s["modifiers"]
    }
    for expected in [
        ("mu", "normfactor"),
        ("mu_ttbar", "normfactor"),
        ("mu_wjets", "normfactor"),
        ("lumi", "lumi"),
        ("btag_eff", "normsys"),
        ("JES", "histosys"),
        ("fakes_shape", "shapesys"),
        ("staterror_SR", "staterror"),
        ("staterror_CR_ttbar", "staterror"),
        ("staterror_CR_wjets", "staterror"),
    ]:
        assert expected in mods
    config = spec["measurements"][0]["config"]
    assert config["poi"] == "mu"
    assert config["parameters"] == [
        {"name": "lumi", "auxdata": [1.0], "sigmas": [0.017], "bounds": [[0.915, 1.085]],
         "inits": [1.0]}
    ]  # fmt: skip


def test_validates_and_compiles_in_jaxlike():
    ws = jaxlike.Workspace(make_example_workspace(0))
    model = ws.model()
    data = ws.data(model)
    assert model.config.poi_name == "mu"
    assert model.config.channel_nbins == {"SR": 8, "CR_ttbar": 2, "CR_wjets": 3}
    assert data.shape[0] == 13 + len(model.config.auxdata)
    assert len(model.config.par_names) == model.config.npars


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # jsonschema.RefResolver in pyhf
def test_is_valid_under_pyhf_schema():
    pyhf = pytest.importorskip("pyhf")
    ws = pyhf.Workspace(make_example_workspace(0))  # validates against schema 1.0.0
    assert ws.model().config.npars == jaxlike.Workspace(ws).model().config.npars


def test_main_example_writes_the_workspace(tmp_path, capsys):
    path = tmp_path / "example.json"
    assert main_example([str(path), "--seed", "2"]) == 0
    assert json.loads(path.read_text()) == make_example_workspace(2)
    assert main_example(["--seed", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == make_example_workspace(2)
    assert main_example([str(tmp_path / "missing" / "x.json")]) == 2
