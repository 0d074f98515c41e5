"""Tests of jaxlike.workspace: validation, JSON patches, patchsets, prune/rename/combine.

References: pyhf 0.7.6 (``pyhf.Workspace``, ``pyhf.PatchSet``, ``pyhf.utils.digest``) and the
``jsonpatch`` package pyhf depends on; both are used here only as oracles.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

import jsonpatch
import numpy as np
import pyhf
import pytest
from conftest import DATA  # honours $JAXLIKE_DATA

from jaxlike.exceptions import InvalidPatch, InvalidWorkspace, JaxlikeError
from jaxlike.workspace import (
    Patch,
    PatchSet,
    Workspace,
    apply_patch,
    digest,
    load_patch,
    validate_patch_operations,
    validate_workspace,
)

VALIDATION = sorted((DATA / "pyhf_validation").glob("*.json"))
SBOTTOM = DATA / "pyhf_validation" / "sbottom_regionA"
ERJR = DATA / "atlas_erjr"
ERJR_PATCHES = sorted(ERJR.glob("patch.*.json"))
BELLE2 = DATA / "belle2_bknunu" / "combined_likelihood.json"
REAL_FILES = [SBOTTOM / "BkgOnly.json", ERJR / "BkgOnly.json", BELLE2]


def read(path: Path):
    return json.loads(path.read_text())


def read_spec(path: Path) -> dict:
    obj = read(path)
    return obj["workspace"] if "workspace" in obj else obj


def small_spec() -> dict:
    """Two channels, every modifier type, two measurements."""
    return {
        "channels": [
            {
                "name": "SR",
                "samples": [
                    {
                        "name": "signal",
                        "data": [5.0, 10.0],
                        "modifiers": [
                            {"name": "mu", "type": "normfactor", "data": None},
                            {"name": "lumi", "type": "lumi", "data": None},
                        ],
                    },
                    {
                        "name": "bkg",
                        "data": [50.0, 60.0],
                        "modifiers": [
                            {"name": "norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                            {
                                "name": "shape",
                                "type": "histosys",
                                "data": {"hi_data": [52.0, 63.0], "lo_data": [48.0, 57.0]},
                            },
                            {"name": "stat_SR", "type": "staterror", "data": [2.0, 0.0]},
                            {"name": "uncorr", "type": "shapesys", "data": [5.0, 6.0]},
                        ],
                    },
                ],
            },
            {
                "name": "CR",
                "samples": [
                    {
                        "name": "bkg",
                        "data": [100.0],
                        "modifiers": [
                            {"name": "norm", "type": "normsys", "data": {"hi": 1.2, "lo": 0.8}},
                            {"name": "sf", "type": "shapefactor", "data": None},
                        ],
                    }
                ],
            },
        ],
        "observations": [{"name": "SR", "data": [55, 70]}, {"name": "CR", "data": [98.0]}],
        "measurements": [
            {
                "name": "meas",
                "config": {
                    "poi": "mu",
                    "parameters": [
                        {
                            "name": "lumi",
                            "auxdata": [1.0],
                            "sigmas": [0.02],
                            "bounds": [[0.9, 1.1]],
                            "inits": [1.0],
                        },
                        {"name": "mu", "bounds": [[0.0, 10.0]], "inits": [1.0]},
                    ],
                },
            },
            {
                "name": "meas_fixed",
                "config": {
                    "poi": "mu",
                    "parameters": [
                        {"name": "lumi", "auxdata": [1.0], "sigmas": [0.02], "fixed": True},
                        {"name": "norm", "fixed": True},
                    ],
                },
            },
        ],
        "version": "1.0.0",
    }


# ----- loading and summaries ---------------------------------------------------------------


@pytest.mark.parametrize("path", VALIDATION + REAL_FILES, ids=lambda p: p.stem)
def test_reference_workspaces_validate_and_summaries_match_pyhf(path):
    spec = read_spec(path)
    ws = Workspace(spec)
    ref = pyhf.Workspace(spec)
    assert ws.to_dict() == dict(ref)
    assert ws.channels == ref.channels
    assert ws.samples == ref.samples
    assert ws.modifiers == ref.modifiers
    assert ws.channel_nbins == ref.channel_nbins
    assert ws.measurement_names == ref.measurement_names
    assert ws.observations == ref.observations
    assert ws.parameters == sorted({name for name, _ in ref.modifiers})
    assert ws.get_measurement() == ref.get_measurement()


def test_load_save_roundtrip_and_stdin(tmp_path, monkeypatch, capsys):
    ws = Workspace.load(ERJR / "BkgOnly.json")
    out = tmp_path / "ws.json"
    ws.save(out)
    assert Workspace.load(out) == ws
    assert json.loads(ws.to_json(indent=None)) == ws.to_dict()
    monkeypatch.setattr("sys.stdin", io.StringIO(out.read_text()))
    assert Workspace.load("-") == ws
    ws.save("-")
    assert json.loads(capsys.readouterr().out) == ws.to_dict()


def test_load_rejects_invalid_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidWorkspace, match="not valid JSON"):
        Workspace.load(bad)


def test_workspace_is_a_copy_and_immutable():
    spec = small_spec()
    ws = Workspace(spec)
    spec["channels"][0]["samples"][0]["data"][0] = 999.0
    assert ws.to_dict()["channels"][0]["samples"][0]["data"][0] == 5.0
    ws.to_dict()["channels"].clear()
    ws.observations["SR"][0] = -1
    assert ws == Workspace(small_spec())
    assert ws != Workspace(small_spec()).prune(samples=["signal"])
    assert ws.__eq__(small_spec()) is NotImplemented


def test_numpy_inputs_and_schema_key():
    spec = small_spec()
    spec["$schema"] = "https://scikit-hep.org/pyhf/schemas/1.0.0/workspace.json"
    spec["channels"][0]["samples"][0]["data"] = np.array([5.0, 10.0])
    spec["observations"][1]["data"] = (np.float32(98.0),)
    ws = Workspace(spec)
    assert ws == Workspace(small_spec())
    assert "$schema" not in ws.to_dict()
    json.dumps(ws.to_dict())  # plain JSON types only


def test_summaries_and_repr():
    ws = Workspace(small_spec())
    assert ws.channels == ["CR", "SR"]
    assert ws.channel_nbins == {"CR": 1, "SR": 2}
    assert ws.samples == ["bkg", "signal"]
    assert ws.parameters == ["lumi", "mu", "norm", "sf", "shape", "stat_SR", "uncorr"]
    assert ("norm", "normsys") in ws.modifiers
    assert ws.measurement_names == ["meas", "meas_fixed"]
    assert repr(ws).startswith("Workspace(2 channels, 3 bins")


def test_get_measurement():
    ws = Workspace(small_spec())
    assert ws.get_measurement()["name"] == "meas"
    assert ws.get_measurement("meas_fixed")["config"]["parameters"][1] == {
        "name": "norm",
        "fixed": True,
    }
    with pytest.raises(InvalidWorkspace, match=r"^measurements: .*'nope'.*meas_fixed") as err:
        ws.get_measurement("nope")
    assert err.value.path == "measurements"


# ----- validation errors --------------------------------------------------------------------


def _set(path, value):
    """Mutation setting spec[path...] = value (path: tuple of keys/indices)."""

    def mutate(spec):
        target = spec
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(path):
    def mutate(spec):
        target = spec
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


SR_BKG = ("channels", 0, "samples", 1)
MEAS0 = ("measurements", 0, "config")

BAD_SPECS = {
    "nan_yield": (
        _set((*SR_BKG, "data", 1), float("nan")),
        "channels[0].samples[1].data[1]: yield is NaN",
    ),
    "inf_yield": (
        _set((*SR_BKG, "data", 0), float("inf")),
        "channels[0].samples[1].data[0]: yield is inf",
    ),
    "string_yield": (
        _set((*SR_BKG, "data", 0), "1"),
        "channels[0].samples[1].data[0]: yield must be a number",
    ),
    "bool_yield": (
        _set((*SR_BKG, "data", 0), True),
        "channels[0].samples[1].data[0]: yield must be a number, got boolean",
    ),
    "empty_data": (
        _set((*SR_BKG, "data"), []),
        "channels[0].samples[1].data: must not be empty",
    ),
    "mismatched_bins": (
        _set((*SR_BKG, "data"), [1.0, 2.0, 3.0]),
        "channels[0].samples[1].data: has 3 bins but channels[0].samples[0].data has 2",
    ),
    "unknown_modifier_type": (
        _set((*SR_BKG, "modifiers", 0, "type"), "normsyss"),
        "channels[0].samples[1].modifiers[0].type: unknown modifier type 'normsyss'",
    ),
    "normfactor_with_data": (
        _set(("channels", 0, "samples", 0, "modifiers", 0, "data"), [1.0]),
        "channels[0].samples[0].modifiers[0].data: normfactor data must be null",
    ),
    "lumi_misnamed": (
        _set(("channels", 0, "samples", 0, "modifiers", 1, "name"), "luminosity"),
        "channels[0].samples[0].modifiers[1].name: a lumi modifier must be named 'lumi'",
    ),
    "normsys_missing_lo": (
        _delete((*SR_BKG, "modifiers", 0, "data", "lo")),
        "channels[0].samples[1].modifiers[0].data.lo: missing required key",
    ),
    "normsys_nan": (
        _set((*SR_BKG, "modifiers", 0, "data", "hi"), float("nan")),
        "channels[0].samples[1].modifiers[0].data.hi: value is NaN",
    ),
    "histosys_wrong_length": (
        _set((*SR_BKG, "modifiers", 1, "data", "lo_data"), [1.0]),
        "channels[0].samples[1].modifiers[1].data.lo_data: has 1 bins but the sample has 2",
    ),
    "staterror_negative": (
        _set((*SR_BKG, "modifiers", 2, "data", 0), -1.0),
        "channels[0].samples[1].modifiers[2].data[0]: uncertainty must be >= 0",
    ),
    "shapesys_wrong_length": (
        _set((*SR_BKG, "modifiers", 3, "data"), [1.0, 2.0, 3.0]),
        "channels[0].samples[1].modifiers[3].data: has 3 bins",
    ),
    "duplicate_modifie": (
        _set(
            (*SR_BKG, "modifiers", 3),
            {"name": "norm", "type": "normsys", "data": {"hi": 1.0, "lo": 1.0}},
        ),
        "channels[0].samples[1].modifiers[3]: duplicate modifier ('norm', 'normsys')",
    ),
    "duplicate_sample": (
        _set(("channels", 0, "samples", 0, "name"), "bkg"),
        "channels[0].samples[1].name: duplicate sample name 'bkg'",
    ),
    "duplicate_channel": (
        _set(("channels", 1, "name"), "SR"),
        "channels[1].name: duplicate channel name 'SR'",
    ),
    "unknown_sample_key": (
        _set((*SR_BKG, "colour"), "red"),
        "channels[0].samples[1].colour: unknown key 'colour'",
    ),
    "missing_version": (_delete(("version",)), "version: missing required key"),
    "wrong_version": (_set(("version",), "1.0.1"), "version: must be '1.0.0'"),
    "unknown_top_level_key": (_set(("extra",), 1), "extra: unknown key 'extra'"),
    "no_channels": (_set(("channels",), []), "channels: must not be empty"),
    "no_measurements": (_set(("measurements",), []), "measurements: must not be empty"),
    "missing_observation": (
        _delete(("observations", 1)),
        "observations: no observation for channel 'CR' (channels[1])",
    ),
    "observation_bins": (
        _set(("observations", 0, "data"), [1.0]),
        "observations[0].data: has 1 bins but channel 'SR' has 2",
    ),
    "observation_negative": (
        _set(("observations", 1, "data", 0), -3.0),
        "observations[1].data[0]: observed count must be >= 0",
    ),
    "observation_nan": (
        _set(("observations", 1, "data", 0), float("nan")),
        "observations[1].data[0]: observed count is NaN",
    ),
    "duplicate_observation": (
        lambda spec: spec["observations"].append({"name": "SR", "data": [1.0, 2.0]}),
        "observations[2].name: duplicate observation name 'SR' (also at observations[0])",
    ),
    "duplicate_measurement": (
        _set(("measurements", 1, "name"), "meas"),
        "measurements[1].name: duplicate measurement name 'meas'",
    ),
    "missing_poi": (_delete((*MEAS0, "poi")), "measurements[0].config.poi: missing"),
    "missing_parameters": (
        _delete((*MEAS0, "parameters")),
        "measurements[0].config.parameters: missing",
    ),
    "bounds_reversed": (
        _set((*MEAS0, "parameters", 1, "bounds"), [[10.0, 0.0]]),
        "measurements[0].config.parameters[1].bounds[0]: lower bound 10.0 > upper bound 0.0",
    ),
    "bounds_not_pai": (
        _set((*MEAS0, "parameters", 1, "bounds"), [[0.0, 1.0, 2.0]]),
        "measurements[0].config.parameters[1].bounds[0]: must be a [lo, hi] pair",
    ),
    "bounds_flat": (
        _set((*MEAS0, "parameters", 1, "bounds"), [0.0, 1.0]),
        "measurements[0].config.parameters[1].bounds[0]: must be a [lo, hi] pair",
    ),
    "init_outside_bounds": (
        _set((*MEAS0, "parameters", 1, "inits"), [11.0]),
        "measurements[0].config.parameters[1].inits[0]: initial value 11.0 outside bounds",
    ),
    "inits_bounds_length": (
        _set((*MEAS0, "parameters", 1, "inits"), [1.0, 2.0]),
        "measurements[0].config.parameters[1].inits: has 2 values but bounds has 1",
    ),
    "fixed_not_bool": (
        _set((*MEAS0, "parameters", 1, "fixed"), 1),
        "measurements[0].config.parameters[1].fixed: must be a boolean",
    ),
    "sigma_nan": (
        _set((*MEAS0, "parameters", 0, "sigmas"), [float("nan")]),
        "measurements[0].config.parameters[0].sigmas[0]: value is NaN",
    ),
    "duplicate_parameter_config": (
        _set((*MEAS0, "parameters", 1, "name"), "lumi"),
        "measurements[0].config.parameters[1].name: duplicate parameter configuration 'lumi'",
    ),
    "unknown_parameter_key": (
        _set((*MEAS0, "parameters", 1, "init"), [1.0]),
        "measurements[0].config.parameters[1].init: unknown key 'init'",
    ),
    "channel_name_not_string": (
        _set(("channels", 1, "name"), 3),
        "channels[1].name: must be a string",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_validation_errors_name_the_path(case):
    mutate, prefix = BAD_SPECS[case]
    spec = small_spec()
    mutate(spec)
    with pytest.raises(InvalidWorkspace) as err:
        Workspace(spec)
    assert str(err.value).startswith(prefix)
    assert str(err.value).startswith(err.value.path + ": ")
    assert isinstance(err.value, JaxlikeError)


def test_validation_accepts_pyhf_edge_cases():
    spec = small_spec()
    spec["channels"][0]["samples"][1]["modifiers"][2]["data"] = [0.0, 0.0]  # all-zero staterror
    spec["channels"][0]["samples"][0]["modifiers"].append(
        {"name": "norm", "type": "histosys", "data": {"hi_data": [5, 10], "lo_data": [5, 10]}}
    )  # same name, other type (ATLAS patches do this)
    spec["observations"].append({"name": "unused", "data": [1.0]})
    validate_workspace(spec)
    assert Workspace(spec, validate=False).channels == ["CR", "SR"]
    with pytest.raises(InvalidWorkspace, match="^must be|^a workspace must be a JSON object"):
        validate_workspace([])


# ----- JSON patch -----------------------------------------------------------------------------

DOC = {"a": {"b": [1, 2, 3], "c/d": 4, "e~f": 5}, "g": None, "h": [{"x": 1}]}

GOOD_PATCHES = [
    [{"op": "add", "path": "/a/b/1", "value": 9}],
    [{"op": "add", "path": "/a/b/3", "value": 9}],
    [{"op": "add", "path": "/a/b/-", "value": {"k": [1]}}],
    [{"op": "add", "path": "/a/new", "value": [1, 2]}],
    [{"op": "add", "path": "/a/c~1d", "value": "replaced by add"}],
    [{"op": "add", "path": "", "value": {"whole": True}}],
    [{"op": "remove", "path": "/a/e~0f"}],
    [{"op": "remove", "path": "/a/b/0"}, {"op": "remove", "path": "/a/b/0"}],
    [{"op": "replace", "path": "/g", "value": 3.5}],
    [{"op": "replace", "path": "/a/b/2", "value": "z"}],
    [{"op": "replace", "path": "", "value": [1]}],
    [{"op": "move", "from": "/a/b/0", "path": "/a/b/2"}],
    [{"op": "move", "from": "/a/c~1d", "path": "/moved"}],
    [{"op": "move", "from": "/h", "path": "/h"}],
    [{"op": "copy", "from": "/h/0", "path": "/h/-"}],
    [{"op": "copy", "from": "/a", "path": "/a/b/0"}],
    [{"op": "test", "path": "/a/b", "value": [1, 2.0, 3]}, {"op": "remove", "path": "/g"}],
    [{"op": "test", "path": "/g", "value": None}],
    [{"op": "add", "path": "/h/0/y", "value": 2, "comment": "unknown members are ignored"}],
]


@pytest.mark.parametrize("ops", GOOD_PATCHES, ids=lambda ops: ops[0]["op"] + ops[0]["path"])
def test_apply_patch_matches_jsonpatch(ops):
    doc = copy.deepcopy(DOC)
    assert apply_patch(doc, ops) == jsonpatch.apply_patch(DOC, ops)
    assert doc == DOC  # input untouched


def test_patched_values_are_not_aliased():
    ops = [{"op": "add", "path": "/new", "value": {"list": [1]}}]
    out = apply_patch({}, ops)
    out["new"]["list"].append(2)
    assert ops[0]["value"] == {"list": [1]}
    copied = apply_patch({"a": [1]}, [{"op": "copy", "from": "/a", "path": "/b"}])
    copied["a"].append(2)
    assert copied["b"] == [1]


BAD_PATCHES = {
    "unknown_op": ([{"op": "frobnicate", "path": "/a"}], r"^patch\[0\]\.op: unknown operation"),
    "missing_path": ([{"op": "remove"}], r"^patch\[0\]\.path: missing"),
    "missing_value": ([{"op": "add", "path": "/a/x"}], r"^patch\[0\]\.value: missing"),
    "missing_from": ([{"op": "move", "path": "/a/x"}], r"^patch\[0\]\.from: missing"),
    "bad_pointer": ([{"op": "remove", "path": "a/b"}], r"^patch\[0\]\.path: not a JSON pointer"),
    "bad_escape": ([{"op": "remove", "path": "/a~2"}], r"^patch\[0\]\.path: not a JSON pointer"),
    "not_a_list": ({"op": "remove", "path": "/a"}, r"^patch: a patch must be an array"),
    "op_not_object": (["remove"], r"^patch\[0\]: an operation must be an object"),
    "missing_key": (
        [{"op": "remove", "path": "/a/zzz"}],
        r"^patch\[0\]\.path: remove '/a/zzz': key 'zzz' not found",
    ),
    "index_out_of_range": (
        [{"op": "test", "path": "/g", "value": None}, {"op": "add", "path": "/a/b/4", "value": 1}],
        r"^patch\[1\]\.path: add '/a/b/4': index 4 out of range \(array has 3 items\)",
    ),
    "remove_dash": (
        [{"op": "remove", "path": "/a/b/-"}],
        r"^patch\[0\]\.path: remove '/a/b/-': '-' is not an array index",
    ),
    "leading_zero": (
        [{"op": "replace", "path": "/a/b/01", "value": 1}],
        r"^patch\[0\]\.path: .*'01' is not an array index",
    ),
    "replace_missing": (
        [{"op": "replace", "path": "/zzz", "value": 1}],
        r"^patch\[0\]\.path: replace '/zzz'",
    ),
    "into_scalar": (
        [{"op": "add", "path": "/a/c~1d/x", "value": 1}],
        r"^patch\[0\]\.path: add '/a/c~1d/x': cannot add into a int",
    ),
    "descend_scalar": (
        [{"op": "remove", "path": "/g/x/y"}],
        r"^patch\[0\]\.path: remove '/g/x/y': cannot descend",
    ),
    "test_failed": (
        [{"op": "test", "path": "/a/b/0", "value": 2}],
        r"^patch\[0\]\.path: test '/a/b/0': test failed",
    ),
    "test_bool_vs_number": ([{"op": "test", "path": "/a/b/0", "value": True}], r"test failed"),
    "move_into_child": (
        [{"op": "move", "from": "/a", "path": "/a/b/0"}],
        r"^patch\[0\]\.path: move '/a/b/0': cannot move '/a' into its own child",
    ),
    "move_missing_from": (
        [{"op": "move", "from": "/nope", "path": "/x"}],
        r"^patch\[0\]\.from: move '/nope'",
    ),
    "copy_missing_from": (
        [{"op": "copy", "from": "/a/b/7", "path": "/x"}],
        r"^patch\[0\]\.from: copy '/a/b/7': index 7",
    ),
    "remove_root": (
        [{"op": "remove", "path": ""}],
        r"^patch\[0\]\.path: remove '': cannot remove the whole document",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_PATCHES))
def test_bad_patches_raise_invalid_patch(case):
    ops, pattern = BAD_PATCHES[case]
    doc = copy.deepcopy(DOC)
    with pytest.raises(InvalidPatch, match=pattern):
        apply_patch(doc, ops)
    assert doc == DOC
    if case not in {"not_a_list", "op_not_object"}:  # jsonpatch agrees that these fail
        with pytest.raises(Exception):  # noqa: B017
            jsonpatch.apply_patch(DOC, ops)


def test_validate_patch_operations_prefix():
    validate_patch_operations([{"op": "copy", "from": "", "path": "/x"}])
    with pytest.raises(InvalidPatch, match=r"^patches\[2\]\[0\]\.op"):
        validate_patch_operations([{"op": None, "path": "/x"}], prefix="patches[2]")


@pytest.mark.parametrize("path", ERJR_PATCHES, ids=lambda p: p.stem)
def test_erjr_patches_match_jsonpatch(path):
    bkg = read(ERJR / "BkgOnly.json")
    ops = load_patch(path)
    assert Workspace(bkg).patch(ops).to_dict() == jsonpatch.apply_patch(bkg, read(path))


@pytest.mark.parametrize("path", sorted(SBOTTOM.glob("patch.*.json")), ids=lambda p: p.stem)
def test_sbottom_patches_match_pyhf_model_spec(path):
    bkg = read(SBOTTOM / "BkgOnly.json")
    ops = load_patch(path)
    patched = Workspace(bkg).patch([ops])
    model = pyhf.Workspace(bkg).model(patches=[read(path)])
    assert patched.to_dict()["channels"] == model.spec["channels"]
    assert patched.get_measurement()["config"]["parameters"] == model.spec["parameters"]


def test_workspace_patch_error_names_patch_and_op():
    ws = Workspace(small_spec())
    good = [{"op": "replace", "path": "/observations/0/data/0", "value": 1.0}]
    bad = [{"op": "remove", "path": "/channels/5"}]
    assert ws.patch(good).observations["SR"] == [1.0, 70]
    assert ws.patch([]) == ws
    with pytest.raises(InvalidPatch, match=r"^patches\[1\]\[0\]\.path: remove '/channels/5'"):
        ws.patch([good, bad])
    nan = [{"op": "replace", "path": "/channels/1/samples/0/data/0", "value": float("nan")}]
    with pytest.raises(InvalidWorkspace, match=r"^channels\[1\]\.samples\[0\]\.data\[0\]: yield"):
        ws.patch(nan)


def test_load_patch_forms(tmp_path):
    ops = [{"op": "remove", "path": "/channels/0"}]
    file = tmp_path / "p.json"
    file.write_text(json.dumps(ops))
    entry = {"metadata": {"name": "p", "values": [1]}, "patch": ops}
    assert load_patch(file) == ops
    assert load_patch(str(file)) == ops
    assert load_patch(entry) == ops
    assert load_patch(Patch(entry)) == ops
    with pytest.raises(InvalidPatch, match="^patches: this is a patchset"):
        load_patch({"patches": [entry]})
    with pytest.raises(InvalidPatch, match=r"^patch\[0\]\.op"):
        load_patch([{"op": "nope", "path": ""}])


# ----- patchsets ------------------------------------------------------------------------------

ERJR_NAME = re.compile(r"patch\.ERJR_(\d+)(?:p(\d+))?_(\d+)(?:p(\d+))?\.json")


def erjr_patchset(paths, sha256=None) -> dict:
    bkg = read(ERJR / "BkgOnly.json")
    patches = []
    for path in paths:
        m1, f1, m2, f2 = ERJR_NAME.fullmatch(path.name).groups()
        values = [float(f"{m1}.{f1 or 0}"), float(f"{m2}.{f2 or 0}")]
        name = path.name[len("patch.") : -len(".json")]
        patches.append({"metadata": {"name": name, "values": values}, "patch": read(path)})
    return {
        "metadata": {
            "name": "erjr",
            "description": "ATLAS ERJR signal grid",
            "digests": {"sha256": sha256 or pyhf.utils.digest(bkg)},
            "labels": ["m_C1N2", "m_N1"],
            "references": {"hepdata": "ins1234567"},
        },
        "patches": patches,
        "version": "1.0.0",
    }


def test_patchset_roundtrip_against_pyhf(tmp_path):
    spec = erjr_patchset(ERJR_PATCHES[:4])
    file = tmp_path / "patchset.json"
    file.write_text(json.dumps(spec))
    ps = PatchSet.load(file)
    ref = pyhf.PatchSet(spec)
    bkg = Workspace.load(ERJR / "BkgOnly.json")
    assert len(ps) == len(ref) == 4
    assert [p.name for p in ps] == [p.name for p in ref]
    assert [p.values for p in ps.patches] == [p.values for p in ref.patches]
    assert ps.labels == ref.labels and ps.digests == ref.digests
    assert ps.description == ref.description and ps.references == ref.references
    assert ps.version == "1.0.0" and ps.to_dict() == spec
    first = ps.patches[0]
    assert first.name == "ERJR_100p0_20p0" and first.values == (100.0, 20.0)
    assert ps["ERJR_100p0_20p0"] is ps[(100.0, 20.0)] is ps[[100, 20]] is ps[100.0, 20.0]
    assert (100.0, 20.0) in ps and "nope" not in ps
    assert "ERJR_100p0_20p0" in repr(first) and "4 patches" in repr(ps)
    assert digest(bkg.to_dict()) == pyhf.utils.digest(pyhf.Workspace(bkg.to_dict()))
    for patch in ps:
        ours = ps.apply(bkg, patch.name)
        theirs = ref.apply(pyhf.Workspace(bkg.to_dict()), patch.name)
        assert ours.to_dict() == dict(theirs)
        assert ours == bkg.patch(patch) == bkg.patch(load_patch(ERJR / f"patch.{patch.name}.json"))
    assert ps.apply(bkg.to_dict(), (100.0, 20.0)) == ps.apply(bkg, "ERJR_100p0_20p0")
    with pytest.raises(InvalidPatch, match=r"^patches: no patch named or valued 'nope'"):
        ps["nope"]


def test_patchset_digest_mismatch_rejected():
    ps = PatchSet(erjr_patchset(ERJR_PATCHES[:1], sha256="ab" * 32))
    bkg = Workspace.load(ERJR / "BkgOnly.json")
    with pytest.raises(InvalidPatch, match=r"^metadata\.digests\.sha256: the workspace does not"):
        ps.apply(bkg, ps.patches[0].name)
    patched = ps.apply(bkg, ps.patches[0].name, verify=False)
    assert len(patched.samples) == len(bkg.samples) + 1
    md5 = erjr_patchset(ERJR_PATCHES[:1])
    md5["metadata"]["digests"] = {"md5": pyhf.utils.digest(bkg.to_dict(), "md5")}
    PatchSet(md5).verify(bkg)
    pyhf.PatchSet(md5).verify(pyhf.Workspace(bkg.to_dict()))


def _patchset_case(mutate):
    spec = erjr_patchset(ERJR_PATCHES[:2])
    mutate(spec)
    return spec


BAD_PATCHSETS = {
    "wrong_version": (lambda s: s.update(version="2.0.0"), r"^version: must be"),
    "no_patches": (lambda s: s.update(patches=[]), r"^patches: must be a non-empty"),
    "no_digests": (lambda s: s["metadata"].pop("digests"), r"^metadata\.digests: missing"),
    "bad_digest": (
        lambda s: s["metadata"]["digests"].update(sha256="xyz"),
        r"^metadata\.digests\.sha256: not a",
    ),
    "bad_label": (lambda s: s["metadata"].update(labels=["m 1", "m2"]), r"^metadata\.labels\[0\]"),
    "value_count": (
        lambda s: s["patches"][1]["metadata"].update(values=[1.0]),
        r"^patches\[1\]\.metadata\.values: has 1 values but there are 2 labels",
    ),
    "duplicate_name": (
        lambda s: s["patches"][1]["metadata"].update(name=s["patches"][0]["metadata"]["name"]),
        r"^patches\[1\]\.metadata\.name: duplicate name",
    ),
    "duplicate_values": (
        lambda s: s["patches"][1]["metadata"].update(values=s["patches"][0]["metadata"]["values"]),
        r"^patches\[1\]\.metadata\.values: duplicate values",
    ),
    "bad_op": (
        lambda s: s["patches"][1]["patch"][0].update(op="nope"),
        r"^patches\[1\]\.patch\[0\]\.op",
    ),
    "missing_patch": (lambda s: s["patches"][0].pop("patch"), r"^patches\[0\]\.patch: missing"),
}


@pytest.mark.parametrize("case", sorted(BAD_PATCHSETS))
def test_bad_patchsets(case):
    mutate, pattern = BAD_PATCHSETS[case]
    with pytest.raises(InvalidPatch, match=pattern):
        PatchSet(_patchset_case(mutate))


def test_patchset_apply_error_names_patch():
    spec = erjr_patchset(ERJR_PATCHES[:1])
    spec["patches"][0]["patch"].append({"op": "remove", "path": "/channels/9"})
    ps = PatchSet(spec)
    bkg = Workspace.load(ERJR / "BkgOnly.json")
    with pytest.raises(
        InvalidPatch, match=r"^patches\[0\]\.patch\[\d+\]\.path: remove '/channels/9'"
    ):
        ps.apply(bkg, ps.patches[0].name)


# ----- prune / rename / combine parity with pyhf ---------------------------------------------

PRUNES = [
    ("sbottom", dict(modifiers=["lumi", "mu_ttbar"])),
    ("sbottom", dict(modifier_types=["histosys", "staterror"])),
    ("sbottom", dict(samples=["ttbar"], channels=["CRtt_meff"])),
    ("belle2", dict(modifiers=["mu", "corr_ff_c1"])),  # pruning the POI is allowed
    ("small", dict(measurements=["meas"], modifiers="norm")),
    ("small", dict(channels=["CR"], modifier_types=["shapesys"])),
]


def _ws(name: str) -> dict:
    if name == "small":
        return small_spec()
    return read({"sbottom": SBOTTOM / "BkgOnly.json", "belle2": BELLE2}[name])


@pytest.mark.parametrize("name, kwargs", PRUNES)
def test_prune_matches_pyhf(name, kwargs):
    spec = _ws(name)
    ours = Workspace(spec).prune(**kwargs)
    pyhf_kwargs = {k: [v] if isinstance(v, str) else v for k, v in kwargs.items()}
    assert ours.to_dict() == dict(pyhf.Workspace(spec).prune(**pyhf_kwargs))


def test_prune_removes_parameter_configs_and_observations():
    ws = Workspace(small_spec())
    pruned = ws.prune(modifiers=["lumi", "mu"], channels=["CR"])
    assert pruned.channels == ["SR"] and list(pruned.observations) == ["SR"]
    assert [p["name"] for p in pruned.get_measurement()["config"]["parameters"]] == []
    assert pruned.get_measurement()["config"]["poi"] == "mu"  # kept, as in pyhf
    assert pruned.parameters == ["norm", "shape", "stat_SR", "uncorr"]


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(channels=["XX"]), r"^channels: 'XX' is not one of the channels"),
        (dict(samples=["XX"]), r"^samples: 'XX'"),
        (dict(modifiers=["XX"]), r"^modifiers: 'XX'"),
        (dict(modifier_types=["XX"]), r"^modifier_types: 'XX'"),
        (dict(measurements=["XX"]), r"^measurements: 'XX'"),
        (dict(samples=["signal", "bkg"]), r"^channels\[0\]\.samples: must not be empty"),
    ],
)
def test_prune_errors(kwargs, pattern):
    with pytest.raises(InvalidWorkspace, match=pattern):
        Workspace(small_spec()).prune(**kwargs)


RENAMES = [
    ("sbottom", dict(modifiers={"mu_ttbar": "mu_tt", "lumi": "lumi"}, samples={"ttbar": "tt"})),
    ("sbottom", dict(channels={"CRtt_meff": "CR_tt"}, measurements={"NormalMeasurement": "m"})),
    ("belle2", dict(modifiers={"mu": "mu_sig"}, channels={"sgn1_had": "HTA"})),
    ("small", dict(modifiers={"norm": "norm2", "mu": "poi"}, samples={"bkg": "b"})),
]


@pytest.mark.parametrize("name, kwargs", RENAMES)
def test_rename_matches_pyhf(name, kwargs):
    spec = _ws(name)
    ours = Workspace(spec).rename(**kwargs)
    assert ours.to_dict() == dict(pyhf.Workspace(spec).rename(**kwargs))


def test_rename_updates_poi_configs_and_observations():
    ws = Workspace(small_spec()).rename(modifiers={"mu": "poi"}, channels={"CR": "control"})
    meas = ws.get_measurement()
    assert meas["config"]["poi"] == "poi"
    assert [p["name"] for p in meas["config"]["parameters"]] == ["lumi", "poi"]
    assert ws.observations == {"SR": [55, 70], "control": [98.0]}
    with pytest.raises(InvalidWorkspace, match=r"^channels: 'XX'"):
        ws.rename(channels={"XX": "YY"})
    with pytest.raises(InvalidWorkspace, match=r"^channels\[1\]\.name: duplicate channel name"):
        ws.rename(channels={"control": "SR"})


@functools.cache
def _sbottom_pairs():
    sbottom = read(SBOTTOM / "BkgOnly.json")
    other = dict(
        pyhf.Workspace(sbottom).rename(
            channels={c: f"{c}_2" for c in pyhf.Workspace(sbottom).channels}
        )
    )
    other_meas = copy.deepcopy(other)
    other_meas["measurements"][0]["name"] = "Other"
    return {
        "none_disjoint": (sbottom, other_meas, "none", False),
        "outer_same_measurement": (sbottom, other, "outer", False),
        "outer_identical": (sbottom, sbottom, "outer", False),
    }


@functools.cache
def _small_pairs():
    small = small_spec()
    small_modified = small_spec()
    small_modified["channels"][1]["samples"].append(
        {"name": "extra", "data": [1.0], "modifiers": []}
    )
    small_modified["measurements"][0]["config"]["parameters"].append({"name": "sf", "inits": [1.0]})
    small_modified["measurements"][1]["config"]["parameters"][1] = {"name": "norm", "fixed": False}
    del small_modified["measurements"][1]
    return {
        "left_outer": (small, small_modified, "left outer", False),
        "right_outer": (small, small_modified, "right outer", False),
        "outer_merge_channels": (small, small_modified, "outer", True),
    }


SBOTTOM_PAIRS = ("none_disjoint", "outer_identical", "outer_same_measurement")  # need the data


@pytest.mark.parametrize("case", sorted([*SBOTTOM_PAIRS, *_small_pairs()]))
def test_combine_matches_pyhf(case):
    pairs = _sbottom_pairs() if case in SBOTTOM_PAIRS else _small_pairs()
    left, right, join, merge = pairs[case]
    ours = Workspace.combine(Workspace(left), right, join=join, merge_channels=merge)
    theirs = pyhf.Workspace.combine(
        pyhf.Workspace(left), pyhf.Workspace(right), join=join, merge_channels=merge
    )
    assert ours.to_dict() == dict(theirs)


def test_combine_errors():
    ws = Workspace(small_spec())
    with pytest.raises(
        InvalidWorkspace, match=r"^channels: both workspaces have channels \['CR', 'SR'\]"
    ):
        Workspace.combine(ws, ws)
    other = ws.rename(channels={"SR": "SR2", "CR": "CR2"})
    with pytest.raises(InvalidWorkspace, match=r"^measurements: both workspaces have measurements"):
        Workspace.combine(ws, other)
    changed = small_spec()
    changed["channels"][1]["samples"][0]["data"] = [7.0]
    with pytest.raises(InvalidWorkspace, match=r"^channels: channels \['CR'\] differ"):
        Workspace.combine(ws, changed, join="outer")
    poi = other.to_dict()
    poi["measurements"][0]["config"]["poi"] = "norm"
    with pytest.raises(
        InvalidWorkspace, match=r"^measurements: measurement 'meas' has different POIs"
    ):
        Workspace.combine(ws, poi, join="outer")
    params = other.to_dict()
    params["measurements"][0]["config"]["parameters"][1]["inits"] = [2.0]
    with pytest.raises(
        InvalidWorkspace, match=r"^measurements: measurement 'meas' configures \['mu'\]"
    ):
        Workspace.combine(ws, params, join="outer")
    with pytest.raises(ValueError, match="join must be one of"):
        Workspace.combine(ws, other, join="inner")
    with pytest.raises(ValueError, match="merge_channels"):
        Workspace.combine(ws, other, merge_channels=True)


def test_combine_then_prune_roundtrip():
    ws = Workspace(small_spec())
    other = ws.rename(channels={"SR": "SR2", "CR": "CR2"}).prune(measurements=["meas_fixed"])
    combined = Workspace.combine(ws, other, join="outer")
    assert combined.channels == ["CR", "CR2", "SR", "SR2"]
    assert combined.prune(channels=["SR2", "CR2"]) == ws


# ----- model and data --------------------------------------------------------------------------


def fake_model(channels, nbins, auxdata):
    return SimpleNamespace(
        config=SimpleNamespace(channels=channels, channel_nbins=nbins, auxdata=auxdata)
    )


def test_data_follows_model_channel_order():
    ws = Workspace(small_spec())
    model = fake_model(["SR", "CR"], {"SR": 2, "CR": 1}, [1.0, 2.5])
    data = ws.data(model)
    assert data.dtype == np.float64
    np.testing.assert_array_equal(data, [55, 70, 98, 1.0, 2.5])
    np.testing.assert_array_equal(ws.data(model, include_auxdata=False), [55, 70, 98])
    with pytest.raises(InvalidWorkspace, match=r"^observations: no observation for channel 'VR'"):
        ws.data(fake_model(["VR"], {"VR": 1}, []))
    with pytest.raises(InvalidWorkspace, match=r"^observations: observation 'CR' has 1 bins"):
        ws.data(fake_model(["CR"], {"CR": 3}, []))


def _build_model_or_skip():
    model_module = pytest.importorskip("jaxlike.model")
    if not hasattr(model_module, "build_model"):
        pytest.skip("jaxlike.model.build_model not available yet")


@pytest.mark.parametrize("path", VALIDATION, ids=lambda p: p.stem)
def test_model_and_data_match_pyhf_order(path):
    _build_model_or_skip()
    case = read(path)
    ws = Workspace(case["workspace"])
    settings = case["settings"].get("modifier_settings")
    model = ws.model(modifier_settings=settings)
    info = case["model_info"]
    assert list(model.config.channels) == info["data_order_channels"]
    assert model.config.poi_name == ws.get_measurement()["config"]["poi"]
    expected = sum((ws.observations[c] for c in info["data_order_channels"]), []) + info["auxdata"]
    np.testing.assert_allclose(ws.data(model), expected, rtol=0, atol=0)


def test_model_with_patches_and_measurement():
    _build_model_or_skip()
    bkg = Workspace.load(SBOTTOM / "BkgOnly.json")
    patch_file = sorted(SBOTTOM.glob("patch.*.json"))[0]
    ops = load_patch(patch_file)
    model = bkg.model(patches=[ops], measurement_name="NormalMeasurement")
    reference_ws = pyhf.Workspace(read(SBOTTOM / "BkgOnly.json"))
    reference = reference_ws.model(patches=[read(patch_file)])
    assert list(model.config.channels) == reference.config.channels
    assert model.config.poi_name == "mu_SIG"
    np.testing.assert_allclose(bkg.data(model), reference_ws.data(reference), rtol=1e-12, atol=0)
    assert bkg.model(patches=ops).config.npars == reference.config.npars
    with pytest.raises(InvalidWorkspace, match="^measurements: no measurement named 'x'"):
        bkg.model(measurement_name="x")
