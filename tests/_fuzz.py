"""Seeded input mutators for the fuzz suite (tests/test_fuzz.py).

Each mutator takes a ``numpy.random.Generator`` and returns a mutated copy of its input plus a
short label saying what was done, so a failing case names its mutation. The mutations aim at
the inputs that broke jaxlike before (issue 11): numbers beyond float64, non-numbers where
numbers belong, NaN/inf, negative and zero yields, names that are not valid Unicode, missing
and unknown keys, mismatched bin counts, duplicated names, deep nesting, truncated and
byte-flipped text, BOMs, and structurally valid but extreme values (1e-300 … 1e300).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np

#: A small workspace with every HistFactory modifier type: two channels, two and three bins.
BASE_WORKSPACE: dict = {
    "channels": [
        {
            "name": "SR",
            "samples": [
                {
                    "name": "signal",
                    "data": [4.0, 9.0, 3.0],
                    "modifiers": [
                        {"name": "mu", "type": "normfactor", "data": None},
                        {"name": "lumi", "type": "lumi", "data": None},
                        {"name": "sig_theory", "type": "normsys", "data": {"hi": 1.1, "lo": 0.85}},
                    ],
                },
                {
                    "name": "background",
                    "data": [50.0, 42.0, 20.0],
                    "modifiers": [
                        {"name": "bkg_norm", "type": "normfactor", "data": None},
                        {
                            "name": "bkg_shape",
                            "type": "histosys",
                            "data": {"hi_data": [53.0, 43.0, 19.0], "lo_data": [47.0, 41.5, 21.0]},
                        },
                        {"name": "stat_SR", "type": "staterror", "data": [3.0, 2.5, 2.0]},
                        {"name": "bkg_sys", "type": "shapesys", "data": [2.0, 2.0, 1.5]},
                    ],
                },
            ],
        },
        {
            "name": "CR",
            "samples": [
                {
                    "name": "background",
                    "data": [200.0, 180.0],
                    "modifiers": [
                        {"name": "bkg_norm", "type": "normfactor", "data": None},
                        {"name": "cr_shape", "type": "shapefactor", "data": None},
                        {"name": "lumi", "type": "lumi", "data": None},
                    ],
                }
            ],
        },
    ],
    "observations": [
        {"name": "SR", "data": [55.0, 50.0, 24.0]},
        {"name": "CR", "data": [205.0, 176.0]},
    ],
    "measurements": [
        {
            "name": "meas",
            "config": {
                "poi": "mu",
                "parameters": [
                    {"name": "lumi", "auxdata": [1.0], "sigmas": [0.02], "bounds": [[0.9, 1.1]],
                     "inits": [1.0]},  # fmt: skip
                    {"name": "mu", "bounds": [[0.0, 10.0]], "inits": [1.0]},
                ],
            },
        }
    ],
    "version": "1.0.0",
}

#: Replacement values for a number: extremes, non-finite, wrong types, huge integers.
NUMBER_REPLACEMENTS: list[tuple[str, Any]] = [
    ("nan", float("nan")),
    ("inf", float("inf")),
    ("-inf", float("-inf")),
    ("negative", -1.0),
    ("zero", 0.0),
    ("tiny", 1e-300),
    ("huge", 1e300),
    ("bigint", 10**400),
    ("bigint308", 10**308),
    ("bool", True),
    ("string", "1.0"),
    ("null", None),
    ("list", [1.0]),
    ("object", {"x": 1}),
    ("scaled", None),  # the number × 10^k, k in [−12, 12]: valid but extreme
]

#: Replacement values for a string (names, types, the POI).
STRING_REPLACEMENTS: list[tuple[str, Any]] = [
    ("empty", ""),
    ("surrogate", "\ud800x"),
    ("nul", "a\x00b"),
    ("unicode", "μ_σ/π ✓"),
    ("long", "n" * 5000),
    ("number", 3),
    ("null", None),
    ("list", ["mu"]),
    ("path", "../../etc/passwd"),
    ("other_name", None),  # another name from the same document (a collision)
]


def _paths(obj: Any, prefix=()) -> list[tuple]:
    """All JSON paths (tuples of keys/indices) of ``obj``, containers included."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _get(obj, path):
    for p in path:
        obj = obj[p]
    return obj


def _set(obj, path, value):
    _get(obj, path[:-1])[path[-1]] = value


def _is_num(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _strings(obj) -> list[str]:
    return [v for v in (_get(obj, p) for p in _paths(obj)) if isinstance(v, str)]


def mutate_number(rng, spec):
    """Replace one number of ``spec`` (a JSON tree) by a hostile or extreme value."""
    spec = copy.deepcopy(spec)
    paths = [p for p in _paths(spec) if p and _is_num(_get(spec, p))]
    path = paths[rng.integers(len(paths))]
    label, value = NUMBER_REPLACEMENTS[rng.integers(len(NUMBER_REPLACEMENTS))]
    if label == "scaled":
        value = float(_get(spec, path)) * 10.0 ** int(rng.integers(-12, 13))
    _set(spec, path, value)
    return spec, f"number {label} at {_fmt(path)}"


def mutate_string(rng, spec):
    """Replace one string value of ``spec`` (a name, a type, the POI)."""
    spec = copy.deepcopy(spec)
    paths = [p for p in _paths(spec) if p and isinstance(_get(spec, p), str)]
    path = paths[rng.integers(len(paths))]
    label, value = STRING_REPLACEMENTS[rng.integers(len(STRING_REPLACEMENTS))]
    if label == "other_name":
        names = sorted(set(_strings(spec)))
        value = names[rng.integers(len(names))]
    _set(spec, path, value)
    return spec, f"string {label} at {_fmt(path)}"


def mutate_structure(rng, spec):
    """Delete a key or list element, add an unknown key, duplicate or truncate a list,
    replace a container by a scalar."""
    spec = copy.deepcopy(spec)
    containers = [p for p in _paths(spec) if isinstance(_get(spec, p), dict | list)]
    path = containers[rng.integers(len(containers))]
    node = _get(spec, path)
    kind = int(rng.integers(6))
    if kind == 0 and node:  # delete a member
        key = list(node)[rng.integers(len(node))] if isinstance(node, dict) else int(
            rng.integers(len(node))
        )
        del node[key]
        return spec, f"delete {_fmt((*path, key))}"
    if kind == 1 and isinstance(node, dict):
        node["bins" if rng.random() < 0.5 else "extra_key"] = 5
        return spec, f"unknown key in {_fmt(path)}"
    if kind == 2 and isinstance(node, list) and node:
        node.append(copy.deepcopy(node[rng.integers(len(node))]))
        return spec, f"duplicate element of {_fmt(path)}"
    if kind == 3 and isinstance(node, list):
        del node[len(node) // 2 :]
        return spec, f"truncate {_fmt(path)}"
    if kind == 4 and path:
        _set(spec, path, [None, 0, "x", True][rng.integers(4)])
        return spec, f"container to scalar at {_fmt(path)}"
    if path:
        _set(spec, path, [] if isinstance(node, dict) else {})
        return spec, f"swap container type at {_fmt(path)}"
    return spec, "unchanged"


def mutate_modifier(rng, spec):
    """Change a modifier's type (to another valid or an unknown one) keeping its data."""
    spec = copy.deepcopy(spec)
    mods = [m for c in spec["channels"] for s in c["samples"] for m in s["modifiers"]]
    mod = mods[rng.integers(len(mods))]
    types = ["normsys", "histosys", "shapesys", "staterror", "normfactor", "shapefactor", "lumi",
             "reweight", "shapesys2", "NormSys"]  # fmt: skip
    new = types[rng.integers(len(types))]
    old, mod["type"] = mod["type"], new
    return spec, f"modifier {mod['name']} {old} -> {new}"


def mutate_values(rng, spec):
    """Valid but extreme numbers: every yield, uncertainty, normsys lo/hi or observation of one
    sample scaled by 10^k or set to published-size asymmetric values (the model must either
    refuse it or give the right number)."""
    spec = copy.deepcopy(spec)
    kind = int(rng.integers(4))
    if kind == 0:
        obs = spec["observations"][rng.integers(len(spec["observations"]))]
        obs["data"] = [float(rng.choice([0.0, 1e-9, 1e9, round(x * rng.uniform(0, 3))]))
                       for x in obs["data"]]  # fmt: skip
        return spec, f"observations {obs['name']} extreme"
    mods = [m for c in spec["channels"] for s in c["samples"] for m in s["modifiers"]
            if m["type"] == "normsys"]  # fmt: skip
    if kind == 1 and mods:
        lo, hi = float(rng.choice([1e-3, 0.01, 0.5, 1.0, 2.0])), float(rng.choice([1e-3, 1.0, 2.0, 105.6, 1e3]))
        mods[0]["data"] = {"hi": hi, "lo": lo}
        return spec, f"normsys lo={lo} hi={hi}"
    chan = spec["channels"][rng.integers(len(spec["channels"]))]
    sample = chan["samples"][rng.integers(len(chan["samples"]))]
    k = float(10.0 ** rng.integers(-6, 7))
    sample["data"] = [x * k for x in sample["data"]]
    return spec, f"sample {chan['name']}/{sample['name']} ×{k:g}"


WORKSPACE_MUTATORS = (mutate_number, mutate_string, mutate_structure, mutate_modifier,
                      mutate_values)  # fmt: skip


def mutate_text(rng, text: str) -> tuple[str, str]:
    """Text-level damage: truncation, a flipped character, a BOM, deep nesting, huge digits,
    a NaN token, a lone-surrogate escape, an empty document."""
    kind = int(rng.integers(9))
    if kind == 0:
        cut = int(rng.integers(len(text)))
        return text[:cut], f"truncated at {cut}"
    if kind == 1:
        i = int(rng.integers(len(text)))
        return text[:i] + chr(int(rng.integers(32, 127))) + text[i + 1 :], f"char flipped at {i}"
    if kind == 2:
        return "\ufeff" + text, "BOM"
    if kind == 3:
        depth = int(rng.choice([65, 1000, 100_000]))
        return "[" * depth + "]" * depth, f"nested {depth}"
    if kind == 4:
        return text.replace("50.0", "1" + "0" * int(rng.choice([309, 400, 5000])), 1), "huge digits"
    if kind == 5:
        return text.replace("50.0", str(rng.choice(["NaN", "Infinity", "-Infinity"])), 1), "NaN token"
    if kind == 6:
        return text.replace('"signal"', '"\\ud800"', 1), "surrogate escape"
    if kind == 7:
        return "", "empty"
    return json.dumps([text]), "a string, not an object"


def _fmt(path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
