"""Hand-written validation of pyhf workspaces (JSON schema 1.0.0) and JSON patches.

The checks follow pyhf's ``workspace.json`` schema (same required keys, no unknown keys in
channels, samples, modifiers, observations and measurements, ``lumi`` modifiers named
``lumi``) and add the consistency rules a schema cannot express: equal bin counts within a
channel, finite yields, non-negative uncertainties and counts, unique names, an observation
for every channel and bounds that contain the initial values.

Every error is an :class:`~jaxlike.exceptions.InvalidWorkspace` (or
:class:`~jaxlike.exceptions.InvalidPatch`) whose message starts with the JSON path of the
offending field, e.g. ``channels[1].samples[0].data[3]: yield is NaN``.

Why not jsonschema with pyhf's published schemas (measured; tests/test_libraries.py checks
that both agree): pyhf's schemas ship only inside the pyhf package, a test-only dependency,
and may not be copied here, so jsonschema could not run at runtime anyway. Where it can run
(tests), jsonschema 4.26 (Draft 6, pyhf 0.7.6 schemas) takes 295 ms per workspace on the 88
shared workspaces (16 files + 72 patched; 250 ms for the ATLAS ERJR background, 630 ms for the
staus one) against 2.5 ms here (1.3 ms, 9.4 ms); fastjsonschema takes 11 ms plus a 90 ms
compilation. All 88 are accepted by both. Of 1003 one-field mutations of a small workspace,
both reject 891 and accept 83; 29 are rejected only here (bin counts, missing observations,
[lo, hi] pairs and inits inside bounds: rules the schema does not state), none only by the
schema. For a bad modifier field jsonschema's anyOf reports the whole modifier ("{...} is not
valid under any of the given schemas") where this names the field (``...modifiers[0].data.lo:
missing required key``). Deliberate differences: a top-level ``$schema`` key is tolerated and
jaxlike's ``reweight`` modifier type is accepted.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ..exceptions import InvalidPatch, InvalidWorkspace
from ..model import MODIFIER_TYPES, MODIFIERS

__all__ = ["SCHEMA_VERSION", "MODIFIER_TYPES", "validate_workspace", "validate_patch_operations"]

SCHEMA_VERSION = "1.0.0"
_PARAMETER_LISTS = ("inits", "auxdata", "sigmas", "factors")
_PATCH_OPS = ("add", "remove", "replace", "move", "copy", "test")
_POINTER = re.compile(r"^(/([^~]|~[01])*)*$")


def _fail(path: str, message: str):
    raise InvalidWorkspace(path, message)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _type_name(x: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(x), "number" if _is_number(x) else type(x).__name__)


def _object(obj: Any, path: str, required: tuple, optional: tuple = ()) -> dict:
    """Check that ``obj`` is a dict with the ``required`` keys and no keys outside both tuples."""
    if not isinstance(obj, dict):
        _fail(path, f"must be an object, got {_type_name(obj)}")
    for key in required:
        if key not in obj:
            _fail(f"{path}.{key}" if path else key, "missing required key")
    for key in obj:
        if key not in required and key not in optional:
            allowed = ", ".join((*required, *optional))
            _fail(
                f"{path}.{key}" if path else str(key), f"unknown key {key!r} (allowed: {allowed})"
            )
    return obj


def _list(obj: Any, path: str, *, nonempty: bool = True) -> list:
    if not isinstance(obj, list):
        _fail(path, f"must be an array, got {_type_name(obj)}")
    if nonempty and not obj:
        _fail(path, "must not be empty")
    return obj


def _string(obj: Any, path: str) -> str:
    if not isinstance(obj, str):
        _fail(path, f"must be a string, got {_type_name(obj)}")
    try:
        obj.encode("utf-8")
    except UnicodeEncodeError as err:
        shown = obj.encode("utf-8", "backslashreplace").decode("utf-8")
        _fail(path, f"{shown!r} is not valid Unicode (lone surrogate at position {err.start})")
    return obj


def _number(x: Any, path: str, what: str = "value") -> float:
    if not _is_number(x):
        _fail(path, f"{what} must be a number, got {_type_name(x)}")
    try:
        finite = math.isfinite(x)
    except OverflowError:  # an integer beyond float64
        finite = False
    if not finite:
        if isinstance(x, float) and math.isnan(x):
            _fail(path, f"{what} is NaN")
        _fail(path, f"{what} is {'-' if x < 0 else ''}inf or beyond the float64 range")
    return x


def _numbers(obj: Any, path: str, what: str, *, nbins: int | None = None, nonneg=False) -> list:
    """Check a non-empty list of finite numbers (of length ``nbins`` if given)."""
    values = _list(obj, path)
    for i, x in enumerate(values):
        _number(x, f"{path}[{i}]", what)
        if nonneg and x < 0:
            _fail(f"{path}[{i}]", f"{what} must be >= 0, got {x}")
    if nbins is not None and len(values) != nbins:
        _fail(path, f"has {len(values)} bins but the sample has {nbins}")
    return values


def _unique(names: list[str], path: str, field: str, what: str) -> None:
    """Raise on the first repeated name, naming both positions."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            _fail(
                f"{path}[{i}].{field}", f"duplicate {what} {name!r} (also at {path}[{seen[name]}])"
            )
        seen[name] = i


def _check_modifier(mod: Any, path: str, nbins: int) -> None:
    _object(mod, path, ("name", "type", "data"))
    name = _string(mod["name"], f"{path}.name")
    mtype = _string(mod["type"], f"{path}.type")
    data, dpath = mod["data"], f"{path}.data"
    if mtype not in MODIFIER_TYPES:
        _fail(f"{path}.type", f"unknown modifier type {mtype!r} (expected one of {MODIFIER_TYPES})")
    form = MODIFIERS[mtype].data
    if form == "null":
        if data is not None:
            _fail(dpath, f"{mtype} data must be null, got {_type_name(data)}")
        if mtype == "lumi" and name != "lumi":
            _fail(f"{path}.name", f"a lumi modifier must be named 'lumi', got {name!r}")
    elif form == "ratios":
        _object(data, dpath, ("hi", "lo"))
        _number(data["hi"], f"{dpath}.hi")
        _number(data["lo"], f"{dpath}.lo")
    elif form == "templates":
        _object(data, dpath, ("hi_data", "lo_data"))
        _numbers(data["hi_data"], f"{dpath}.hi_data", "yield", nbins=nbins)
        _numbers(data["lo_data"], f"{dpath}.lo_data", "yield", nbins=nbins)
    elif form == "rate":  # joint-number-density map; the rate is checked by the model
        _object(data, dpath, ("rate", "null", "edges", "map"), ("inputs", "nodes"))
        _string(data["rate"], f"{dpath}.rate")
        _string(data["null"], f"{dpath}.null")
        edges = _numbers(data["edges"], f"{dpath}.edges", "bin edge")
        rows = _list(data["map"], f"{dpath}.map")
        if len(rows) != nbins:
            _fail(f"{dpath}.map", f"has {len(rows)} rows but the channel has {nbins} bins")
        for i, row in enumerate(rows):
            _numbers(row, f"{dpath}.map[{i}]", "number density", nbins=len(edges) - 1, nonneg=True)
    else:  # "uncertainties" (shapesys, staterror): absolute, per bin (zeros allowed)
        _numbers(data, dpath, "uncertainty", nbins=nbins, nonneg=True)


def _check_channel(channel: Any, path: str) -> int:
    """Validate one channel and return its number of bins."""
    _object(channel, path, ("name", "samples"))
    _string(channel["name"], f"{path}.name")
    samples = _list(channel["samples"], f"{path}.samples")
    nbins = None
    for j, sample in enumerate(samples):
        spath = f"{path}.samples[{j}]"
        _object(sample, spath, ("name", "data", "modifiers"))
        _string(sample["name"], f"{spath}.name")
        data = _numbers(sample["data"], f"{spath}.data", "yield")
        if nbins is None:
            nbins = len(data)
        elif len(data) != nbins:
            _fail(
                f"{spath}.data",
                f"has {len(data)} bins but {path}.samples[0].data has {nbins}",
            )
        modifiers = _list(sample["modifiers"], f"{spath}.modifiers", nonempty=False)
        seen: dict[tuple, int] = {}
        for k, mod in enumerate(modifiers):
            mpath = f"{spath}.modifiers[{k}]"
            _check_modifier(mod, mpath, nbins)
            key = (mod["name"], mod["type"])
            if key in seen:
                _fail(mpath, f"duplicate modifier {key} (also at {spath}.modifiers[{seen[key]}])")
            seen[key] = k
    _unique([s["name"] for s in samples], f"{path}.samples", "name", "sample name")
    return nbins


def _check_observations(observations: Any, nbins: dict[str, int]) -> None:
    observations = _list(observations, "observations")
    for i, obs in enumerate(observations):
        path = f"observations[{i}]"
        _object(obs, path, ("name", "data"))
        _string(obs["name"], f"{path}.name")
        data = _numbers(obs["data"], f"{path}.data", "observed count", nonneg=True)
        name = obs["name"]
        if name in nbins and len(data) != nbins[name]:
            _fail(f"{path}.data", f"has {len(data)} bins but channel {name!r} has {nbins[name]}")
    _unique([o["name"] for o in observations], "observations", "name", "observation name")
    observed = {o["name"] for o in observations}
    for i, name in enumerate(nbins):
        if name not in observed:
            _fail("observations", f"no observation for channel {name!r} (channels[{i}])")


def _check_parameter(par: Any, path: str) -> None:
    _object(par, path, ("name",), ("inits", "bounds", "fixed", *_PARAMETER_LISTS[1:]))
    _string(par["name"], f"{path}.name")
    if "fixed" in par and not isinstance(par["fixed"], bool):
        _fail(f"{path}.fixed", f"must be a boolean, got {_type_name(par['fixed'])}")
    for key in _PARAMETER_LISTS:
        if key in par:
            _numbers(par[key], f"{path}.{key}", "value")
    if "bounds" not in par:
        return
    bounds = _list(par["bounds"], f"{path}.bounds")
    for k, pair in enumerate(bounds):
        bpath = f"{path}.bounds[{k}]"
        if not isinstance(pair, list) or len(pair) != 2:
            _fail(bpath, f"must be a [lo, hi] pair, got {pair!r}")
        lo, hi = _number(pair[0], f"{bpath}[0]"), _number(pair[1], f"{bpath}[1]")
        if lo > hi:
            _fail(bpath, f"lower bound {lo} > upper bound {hi}")
    if "inits" in par:
        inits = par["inits"]
        if len(inits) != len(bounds):
            _fail(f"{path}.inits", f"has {len(inits)} values but bounds has {len(bounds)}")
        for k, (x, (lo, hi)) in enumerate(zip(inits, bounds, strict=True)):
            if not lo <= x <= hi:
                _fail(f"{path}.inits[{k}]", f"initial value {x} outside bounds [{lo}, {hi}]")


def _check_measurements(measurements: Any) -> None:
    measurements = _list(measurements, "measurements")
    for i, meas in enumerate(measurements):
        path = f"measurements[{i}]"
        _object(meas, path, ("name", "config"))
        _string(meas["name"], f"{path}.name")
        config = _object(meas["config"], f"{path}.config", ("poi", "parameters"))
        _string(config["poi"], f"{path}.config.poi")
        params = _list(config["parameters"], f"{path}.config.parameters", nonempty=False)
        for k, par in enumerate(params):
            _check_parameter(par, f"{path}.config.parameters[{k}]")
        names = [p["name"] for p in params]
        _unique(names, f"{path}.config.parameters", "name", "parameter configuration")
    _unique([m["name"] for m in measurements], "measurements", "name", "measurement name")


def validate_workspace(spec: Any) -> None:
    """Check ``spec`` against the pyhf workspace schema 1.0.0 plus consistency rules.

    Raises :class:`~jaxlike.exceptions.InvalidWorkspace` at the first problem found; its
    message (and ``.path``) names the offending field. A top-level ``"$schema"`` key is
    tolerated. Returns ``None`` for a valid workspace.

    Example:
        >>> spec = {"channels": [{"name": "SR", "samples": [
        ...     {"name": "s", "data": [1.0, float("nan")], "modifiers": []}]}],
        ...     "observations": [{"name": "SR", "data": [1, 2]}],
        ...     "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        ...     "version": "1.0.0"}
        >>> validate_workspace(spec)
        Traceback (most recent call last):
        ...
        jaxlike.exceptions.InvalidWorkspace: channels[0].samples[0].data[1]: yield is NaN
    """
    if not isinstance(spec, dict):
        _fail("", f"a workspace must be a JSON object, got {_type_name(spec)}")
    _object(spec, "", ("channels", "observations", "measurements", "version"), ("$schema",))
    if spec["version"] != SCHEMA_VERSION:
        _fail("version", f"must be {SCHEMA_VERSION!r}, got {spec['version']!r}")
    channels = _list(spec["channels"], "channels")
    nbins = {}
    for i, channel in enumerate(channels):
        n = _check_channel(channel, f"channels[{i}]")
        nbins.setdefault(channel["name"], n)
    _unique([c["name"] for c in channels], "channels", "name", "channel name")
    _check_observations(spec["observations"], nbins)
    _check_measurements(spec["measurements"])


def validate_patch_operations(ops: Any, prefix: str = "patch") -> None:
    """Check that ``ops`` is a well-formed RFC 6902 operation list (without applying it).

    Each operation needs ``op`` (one of add, remove, replace, move, copy, test), a JSON
    pointer ``path``, a ``value`` for add/replace/test and a pointer ``from`` for move/copy.
    Raises :class:`~jaxlike.exceptions.InvalidPatch` naming ``{prefix}[i].field``.

    Example:
        >>> validate_patch_operations([{"op": "add", "path": "/channels/-"}])
        Traceback (most recent call last):
        ...
        jaxlike.exceptions.InvalidPatch: patch[0].value: missing (required by 'add')
    """
    if not isinstance(ops, list):
        raise InvalidPatch(prefix, f"a patch must be an array of operations, got {_type_name(ops)}")
    for i, op in enumerate(ops):
        where = f"{prefix}[{i}]"
        if not isinstance(op, dict):
            raise InvalidPatch(where, f"an operation must be an object, got {_type_name(op)}")
        name = op.get("op")
        if name not in _PATCH_OPS:
            raise InvalidPatch(f"{where}.op", f"unknown operation {name!r} (expected {_PATCH_OPS})")
        fields = ["path"] + (["from"] if name in ("move", "copy") else [])
        for field in fields:
            if field not in op:
                raise InvalidPatch(f"{where}.{field}", f"missing (required by {name!r})")
            pointer = op[field]
            if not isinstance(pointer, str) or not _POINTER.match(pointer):
                raise InvalidPatch(f"{where}.{field}", f"not a JSON pointer: {pointer!r}")
        if name in ("add", "replace", "test") and "value" not in op:
            raise InvalidPatch(f"{where}.value", f"missing (required by {name!r})")
