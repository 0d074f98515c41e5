"""Hand-written pieces checked against the libraries they stand in for.

Each keeps a measured reason in its module (jaxlike/workspace/_validate.py, _patch.py,
jaxlike/stream/_progress.py); the HDI now comes from ``numpyro.diagnostics.hpdi``. These tests
hold the claims that reasoning rests on:

- the workspace validator accepts and rejects what ``jsonschema`` with pyhf's published
  schemas does (pyhf is a test-only dependency, so its schemas are read from the installed
  package), apart from documented consistency rules, and names the field jsonschema points at;
- a patch error stays short and names the operation and the pointer;
- the progress ETA leaves the first chunk's compilation out of the rate;
- ``hdi`` is the narrowest interval of ⌊prob·n⌋ + 1 sorted draws, multimodal samples included.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import numpy as np
import pyhf
import pytest
import referencing
import referencing.jsonschema
from conftest import DATA
from test_workspace import small_spec

from jaxlike.bayes import hdi
from jaxlike.exceptions import InvalidArgument, InvalidBayesConfig, InvalidPatch, InvalidWorkspace
from jaxlike.stream import Progress
from jaxlike.stream import _progress as progress_module
from jaxlike.workspace import Workspace, apply_patch, validate_workspace

PYHF_SCHEMAS = Path(pyhf.__file__).resolve().parent / "schemas" / "1.0.0"
SCHEMA_BASE = "https://scikit-hep.org/pyhf/schemas/1.0.0/"


def read(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


@functools.cache
def pyhf_workspace_validator() -> jsonschema.Draft6Validator:
    """jsonschema's validator for pyhf's workspace.json, $refs resolved from the installed pyhf."""
    draft6 = referencing.jsonschema.DRAFT6
    resources = [
        (SCHEMA_BASE + p.name, referencing.Resource.from_contents(read(p), draft6))
        for p in PYHF_SCHEMAS.glob("*.json")
    ]
    registry = referencing.Registry().with_resources(resources)
    return jsonschema.Draft6Validator({"$ref": SCHEMA_BASE + "workspace.json"}, registry=registry)


def ours_accepts(spec) -> bool:
    try:
        validate_workspace(spec)
    except InvalidWorkspace:
        return False
    return True


# ----- workspace schema ------------------------------------------------------------------------
def shared_workspaces():
    """Every workspace under shared/data, plus the first signal patch of each patch folder."""
    out = {}
    for path in sorted(DATA.rglob("*.json")):
        obj = read(path)
        spec = obj.get("workspace", obj) if isinstance(obj, dict) else None
        if isinstance(spec, dict) and "channels" in spec:
            out[str(path.relative_to(DATA))] = spec
    for folder in ("atlas_erjr", "atlas_staus_lowmass", "pyhf_validation/sbottom_regionA"):
        patch = sorted((DATA / folder).glob("patch.*.json"))[0]
        bkg = read(DATA / folder / "BkgOnly.json")
        out[f"{folder}+{patch.name}"] = apply_patch(bkg, read(patch))
    return out


def test_validator_and_pyhf_schema_accept_the_shared_workspaces():
    workspaces = shared_workspaces()
    assert len(workspaces) >= 19  # 16 files (4 real likelihoods, 12 pyhf cases) + 3 patched
    for name, spec in workspaces.items():
        errors = [e.message[:200] for e in pyhf_workspace_validator().iter_errors(spec)]
        assert not errors, f"{name}: pyhf's schema rejects it: {errors[:3]}"
        validate_workspace(spec)


def _nodes(obj, path=()):
    yield path, obj
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _nodes(value, (*path, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _nodes(value, (*path, i))


def one_field_mutations(spec):
    """Every node replaced by a value of each wrong JSON type, deleted, and (for objects) given
    an unknown key: 1003 malformed or still-valid variants of ``small_spec()``."""
    for path, node in list(_nodes(spec)):
        if path:
            for bad in (None, "x", True, 1.5, [], {}, [None]):
                yield f"{path} = {bad!r}", path, ("set", bad)
            yield f"del {path}", path, ("del", None)
        if isinstance(node, dict):
            yield f"{path} + extra key", (*path, "extra"), ("set", 1)


def _mutated(spec, path, how):
    spec = copy.deepcopy(spec)
    target = spec
    for key in path[:-1]:
        target = target[key]
    if how[0] == "set":
        target[path[-1]] = how[1]
    else:
        del target[path[-1]]
    return spec


def _json_path(parts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _error_paths(error):
    yield _json_path(error.absolute_path)
    for sub in error.context or ():
        yield from _error_paths(sub)


def _related(ours: str, theirs: str) -> bool:
    """One path lies on the other's (our message may name the field inside what they report)."""
    if not theirs or not ours:
        return True
    return any(a == b or a.startswith(b + ".") or a.startswith(b + "[") for a, b in
               ((ours, theirs), (theirs, ours)))  # fmt: skip


#: the rules beyond pyhf's schema, each the only allowed reason for a reject the schema accepts
CONSISTENCY_RULES = (
    r"has \d+ bins but",  # bin counts agree within a channel and with its observation
    r"^observations: no observation for channel",
    r"must be a \[lo, hi\] pair",  # pyhf's schema misplaces minItems/maxItems of a bound
    r"lower bound .* > upper bound",
    r"initial value .* outside bounds",
    r"has \d+ values but bounds has",
    r"must be >= 0",
    r"is NaN$|is -?inf",
    r"duplicate ",
)


def test_validator_agrees_with_pyhf_schema_on_malformed_workspaces():
    validator = pyhf_workspace_validator()
    counts = {"both reject": 0, "both accept": 0, "only ours rejects": 0}
    for label, path, how in one_field_mutations(small_spec()):
        spec = _mutated(small_spec(), path, how)
        errors = list(validator.iter_errors(spec))
        try:
            validate_workspace(spec)
            ours = None
        except InvalidWorkspace as err:
            ours = err
        if errors:
            assert ours is not None, f"{label}: pyhf's schema rejects, we accept: {errors[0]}"
            theirs = {p for e in errors for p in _error_paths(e)}
            assert any(_related(ours.path, p) for p in theirs), (label, str(ours), theirs)
            counts["both reject"] += 1
        elif ours is None:
            counts["both accept"] += 1
        else:
            assert any(re.search(rule, str(ours)) for rule in CONSISTENCY_RULES), (label, str(ours))
            counts["only ours rejects"] += 1
    # 891 / 83 / 29 with small_spec() as it stands (quoted in jaxlike/workspace/_validate.py)
    assert counts["both reject"] > 800 and counts["both accept"] > 50, counts
    assert 0 < counts["only ours rejects"] < 50, counts


def test_documented_extensions_of_pyhf_schema():
    """A ``$schema`` key and the ``reweight`` modifier: accepted here, refused by pyhf's schema."""
    validator = pyhf_workspace_validator()
    with_key = small_spec()
    with_key["$schema"] = SCHEMA_BASE + "workspace.json"
    reweighted = small_spec()
    rw = {"rate": "r", "null": "n", "edges": [0.0, 1.0, 2.0], "map": [[1.0, 0.5], [0.5, 1.0]]}
    reweighted["channels"][0]["samples"][0]["modifiers"].append(
        {"name": "rw", "type": "reweight", "data": rw}
    )
    for spec in (with_key, reweighted):
        assert not validator.is_valid(spec)
        validate_workspace(spec)
    assert validator.is_valid(small_spec())


# ----- JSON patch --------------------------------------------------------------------------------
ERJR_BKG = DATA / "atlas_erjr" / "BkgOnly.json"


@pytest.mark.parametrize(
    ("op", "where", "message"),
    [
        ({"op": "add", "path": "/nope/x", "value": 1}, "[1].path", "key 'nope' not found"),
        ({"op": "copy", "from": "/channels/99", "path": "/x"}, "[1].from", "index 99"),
        ({"op": "move", "from": "/channels/0/zzz", "path": "/x"}, "[1].from", "'zzz' not"),
        ({"op": "replace", "path": "/channels/0/nope/x", "value": 1}, "[1].path", "'nope'"),
    ],
)
def test_patch_errors_on_a_real_workspace_are_short_and_located(op, where, message):
    """jsonpatch's messages for these are 'list index out of range', "'zzz'" or the repr of
    the whole workspace (45 kB); ours name the operation, the pointer and what is missing."""
    ws = Workspace.load(ERJR_BKG)
    ops = [{"op": "test", "path": "/version", "value": "1.0.0"}, op]
    with pytest.raises(InvalidPatch) as err:
        ws.patch(ops)
    assert err.value.path.endswith(where) and message in str(err.value)
    assert len(str(err.value)) < 300


# ----- progress ---------------------------------------------------------------------------------
def test_progress_eta_leaves_out_the_compilation(monkeypatch):
    """First chunk: 3 s of compilation + 0.1 s; then 0.1 s per chunk of 64. From the second
    chunk on the ETA is the true remaining time (tqdm's smoothed rate still carries the 3 s)."""
    now = [0.0]
    monkeypatch.setattr(progress_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    chunks, resumed = 40, 640
    p = Progress(enabled=False)
    p.start(resumed + 64 * chunks, resumed=resumed)
    for k in range(chunks - 1):
        now[0] += 3.1 if k == 0 else 0.1
        p.update(64)
        if k:
            remaining = (chunks - k - 1) * 0.1
            assert (p.total - p.done) / p.rate() == pytest.approx(remaining, rel=1e-9)
    assert p.rate() == pytest.approx(640.0) and p.done == p.total - 64


# ----- HDI ------------------------------------------------------------------------------------
def _brute_force_hdi(x, prob):
    """Narrowest interval [x_(i), x_(i+k)], k = ⌊prob·n⌋, by trying every i."""
    x = np.sort(x)
    k = int(prob * x.size)
    best = min(range(x.size - k), key=lambda i: (x[i + k] - x[i], i))
    return float(x[best]), float(x[best + k])


@pytest.mark.parametrize("n", [7, 100, 2000])
def test_hdi_is_the_narrowest_interval_also_for_multimodal_samples(n):
    rng = np.random.default_rng(n)
    samples = {
        "normal": rng.standard_normal(n),
        "bimodal": np.where(rng.random(n) < 0.5, rng.normal(-4, 1, n), rng.normal(2, 0.5, n)),
        "ties": rng.poisson(3, n).astype(float),
    }
    for name, x in samples.items():
        for prob in (0.5, 0.68, 0.9, 0.95):
            assert hdi(x, prob) == _brute_force_hdi(x, prob), (name, prob)


def test_hdi_of_separated_modes():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(-10, 1, 5000), rng.normal(10, 0.5, 5000)])
    lo, hi = hdi(x, 0.4)  # fits inside the narrower mode
    assert 8 < lo < hi < 12
    lo, hi = hdi(x, 0.9)  # needs both: one interval across the gap
    assert lo < -8 and hi > 10
    assert hdi([0.0, 0.1, 0.2, 5.0], 0.5) == (0.0, 0.2)  # prob·n = 2: 3 draws
    with pytest.raises(InvalidArgument, match="empty"):
        hdi([], 0.68)
    for prob in (0.0, 1.0):
        with pytest.raises(InvalidBayesConfig, match=r"\(0, 1\)"):
            hdi(x, prob)
