"""Regression tests: the bad inputs of issue 11 (library and command line), one test each.

The scan-file, configuration and Poisson examples of the issue live beside their code:
tests/test_scan_integrity.py, tests/test_cli_scan.py (damaged rows, resume identity, chunk
size, full disk, unwritable output), tests/test_config_strict.py (unknown keys, types, sizes,
BOM, special files, temporary names, figure names), tests/test_poisson_exact.py.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import jaxlike
from jaxlike.exceptions import InvalidParameters, InvalidWorkspace

from _fuzz import BASE_WORKSPACE
from test_fuzz import check_cli_contract, run_cli


def _write(tmp_path, spec_or_text, name="ws.json"):
    path = tmp_path / name
    text = spec_or_text if isinstance(spec_or_text, str) else json.dumps(spec_or_text)
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return str(path)


def _spec(edit):
    spec = copy.deepcopy(BASE_WORKSPACE)
    edit(spec)
    return spec


def _poi(spec, **entries):
    params = spec["measurements"][0]["config"]["parameters"]
    params[:] = [p for p in params if p["name"] != "mu"] + [{"name": "mu", **entries}]


def _error(tmp_path, argv, must_contain):
    code, out, err = run_cli(argv, label=" ".join(argv))
    check_cli_contract(code, out, err, " ".join(argv))
    assert code == 2 and must_contain in err, err
    return err


@pytest.mark.parametrize(
    ("text_edit", "message"),
    [
        (lambda t: t.replace("55.0", "1" + "0" * 400, 1),
         "observations[0].data[0]: observed count is inf or beyond the float64 range"),
        (lambda t: t.replace("55.0", "1" + "0" * 5000, 1), "observations[0].data[0]"),
        (lambda t: "[" * 100_000 + "]" * 100_000, "nested 100000 levels deep"),
        (lambda t: t.replace("55.0", "NaN", 1), "NaN is not a JSON value"),
        (lambda t: t.replace('"signal"', '"\\ud800x"', 1), "lone surrogate"),
    ],
    ids=["int-beyond-float64", "5000-digits", "deep-nesting", "nan-token", "lone-surrogate"],
)
@pytest.mark.parametrize("verb", ["inspect", "fit", "limit"])
def test_malformed_json_is_one_line(tmp_path, verb, text_edit, message):
    path = _write(tmp_path, text_edit(json.dumps(BASE_WORKSPACE)))
    _error(tmp_path, [verb, path], message)


def test_library_refuses_the_same_inputs():
    with pytest.raises(InvalidWorkspace, match=r"observations\[0\]\.data\[0\]"):
        jaxlike.Workspace(_spec(lambda s: s["observations"][0]["data"].__setitem__(0, 10**400)))
    with pytest.raises(InvalidWorkspace, match="lone surrogate"):
        jaxlike.Workspace(_spec(lambda s: s["channels"][0].__setitem__("name", "\ud800x")))


def test_fixed_poi_is_refused_like_pyhf(tmp_path):
    path = _write(tmp_path, _spec(lambda s: _poi(s, fixed=True)))
    for verb in ("cls", "limit"):
        _error(tmp_path, [verb, path], "the POI 'mu' is fixed")
    ws = jaxlike.Workspace(_spec(lambda s: _poi(s, fixed=True)))
    model = ws.model()
    with pytest.raises(InvalidParameters, match="fixed"):
        jaxlike.hypotest(1.0, ws.data(model), model)


def test_empty_poi_bounds_and_non_finite_test_values_are_refused(tmp_path):
    path = _write(tmp_path, _spec(lambda s: _poi(s, bounds=[[0.0, 0.0]], inits=[0.0])))
    _error(tmp_path, ["cls", path, "--test-poi", "1"], "empty bounds [0, 0]")
    base = _write(tmp_path, BASE_WORKSPACE, "base.json")
    _error(tmp_path, ["cls", base, "--test-poi", "nan"], "must be a finite number")
    ws = jaxlike.Workspace(BASE_WORKSPACE)
    model = ws.model()
    with pytest.raises(InvalidParameters, match="must be finite"):
        jaxlike.hypotest(float("nan"), ws.data(model), model)


def test_poi_without_effect_is_flagged_never_exit_0(tmp_path):
    """A POI with no effect: ``fit`` names it degenerate (exit 3); ``cls`` and ``limit`` exit
    3 with ``converged: false`` and a status; JSON output is strict (null, never NaN)."""
    spec = _spec(lambda s: s["channels"][0]["samples"][0].__setitem__("data", [0.0, 0.0, 0.0]))
    path = _write(tmp_path, spec)
    code, out, err = run_cli(["fit", path, "--json"], label="fit")
    doc = check_cli_contract(code, out, err, "fit", json_out=True)
    assert code == 3 and doc["degenerate"] == ["mu"] and doc["converged"] is False
    code, out, err = run_cli(["cls", path], label="cls")
    doc = check_cli_contract(code, out, err, "cls", json_out=True)
    assert code == 3 and doc["converged"] is False and "did not converge" in doc["status"]
    code, out, err = run_cli(["limit", path, "--json"], label="limit")
    doc = check_cli_contract(code, out, err, "limit", json_out=True)
    assert code == 3 and doc["obs"] is None and doc["converged"] is False


def test_minimum_on_a_bound_with_an_indefinite_hessian_has_finite_uncertainties(tmp_path):
    """μ̂ = 0 on its bound where 2NLL keeps falling beyond it (empty first bins): the full
    Hessian is indefinite there. The fit converged; the uncertainties are the delta-method
    ones of the bound-constrained estimator (0 for μ, finite for the rest), not NaN."""
    spec = _spec(lambda s: s["observations"][0].__setitem__("data", [0.0, 0.0, 68.0]))
    ws = jaxlike.Workspace(spec)
    model = ws.model()
    res = jaxlike.fit(model, ws.data(model))
    poi = model.config.poi_index
    assert bool(res.converged) and float(res.bestfit[poi]) == 0.0 and bool(res.at_bound[poi])
    unc = np.asarray(res.uncertainties)
    assert np.all(np.isfinite(unc)) and unc[poi] == 0.0 and np.all(np.delete(unc, poi) > 0)
    code, out, err = run_cli(["fit", _write(tmp_path, spec), "--json"], label="fit at bound")
    doc = check_cli_contract(code, out, err, "fit", json_out=True)
    assert code == 0 and doc["at_bound"] == ["mu"]


def test_unexpected_error_is_one_line_exit_70(tmp_path, monkeypatch):
    """A bug (here: an injected one) is one line and exit 70, never a traceback."""
    from jaxlike.cli import _commands

    def broken(args):
        raise ZeroDivisionError("injected")

    monkeypatch.setattr(_commands, "cmd_fit", broken)
    monkeypatch.delenv("JAXLIKE_DEBUG", raising=False)
    code, out, err = run_cli(["fit", _write(tmp_path, BASE_WORKSPACE)], label="bug")
    assert code == 70 and err.count("\n") == 1 and "internal error" in err
    assert "ZeroDivisionError: injected" in err
