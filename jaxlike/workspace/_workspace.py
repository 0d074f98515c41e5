"""The validated pyhf workspace: channels, observations and measurements as plain JSON.

A :class:`Workspace` never changes after construction: ``patch``, ``prune``, ``rename`` and
``combine`` return new workspaces, validated again. Summaries (``channels``, ``samples``,
``modifiers``, ``parameters``) are sorted like pyhf's so that data vectors line up.
"""

from __future__ import annotations

import copy
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import InvalidArgument, InvalidWorkspace
from ._patch import Patch, apply_patch
from ._validate import validate_workspace

__all__ = ["Workspace"]

_JOINS = ("none", "outer", "left outer", "right outer")


def _plain(obj: Any) -> Any:
    """Deep copy ``obj`` turning tuples, NumPy arrays and NumPy scalars into JSON types."""
    if isinstance(obj, dict):
        return {key: _plain(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(value) for value in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _few(names: list, limit: int = 20) -> str:
    """``names`` for an error message, shortened to ``limit`` entries."""
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _as_patch_list(patches: Any) -> list:
    """Normalise one patch (op list or Patch) or a sequence of them into a list of patches."""
    if patches is None:
        return []
    if isinstance(patches, Patch):
        return [patches]
    if isinstance(patches, list) and patches and all(isinstance(p, dict) for p in patches):
        return [patches]  # a single list of operations
    return list(patches)


def _join(join: str, left: list, right: list, merge_key: str | None = None) -> list:
    """Join two lists of named items the way pyhf's ``Workspace.combine`` does."""
    first, second = (right, left) if join == "right outer" else (left, right)
    out = copy.deepcopy(first)
    names = [item["name"] for item in out]
    for item in second:
        if merge_key is not None and item["name"] in names:
            target = out[names.index(item["name"])]
            target[merge_key] = _join("left outer", target[merge_key], item[merge_key])
        elif (
            join == "none"
            or (join == "outer" and item not in first)
            or (join in ("left outer", "right outer") and item["name"] not in names)
        ):
            out.append(copy.deepcopy(item))
    return out


def _check_join(join: str, what: str, left: list, right: list, joined: list) -> None:
    """Reject shared names (join "none") or same-named items that differ (join "outer")."""
    if join == "none":
        common = sorted({x["name"] for x in left} & {x["name"] for x in right})
        if common:
            raise InvalidWorkspace(
                what, f"both workspaces have {what} {common}; rename them or use join='outer'"
            )
    elif join == "outer":
        clash = sorted(name for name, n in Counter(x["name"] for x in joined).items() if n > 1)
        if clash:
            raise InvalidWorkspace(what, f"{what} {clash} differ between the two workspaces")


def _join_measurements(join: str, left: list, right: list) -> list:
    joined = _join(join, left, right)
    _check_join(join, "measurements", left, right, [])
    if join != "outer":
        return joined
    groups: dict[str, list] = {}
    for meas in joined:
        groups.setdefault(meas["name"], []).append(meas)
    result = []
    for name, group in groups.items():
        if len({m["config"]["poi"] for m in group}) > 1:
            raise InvalidWorkspace("measurements", f"measurement {name!r} has different POIs")
        if len(group) == 1:
            result.append(group[0])
            continue
        params = _join("outer", *(m["config"]["parameters"] for m in group))
        clash = sorted(n for n, k in Counter(p["name"] for p in params).items() if k > 1)
        if clash:
            raise InvalidWorkspace(
                "measurements", f"measurement {name!r} configures {clash} differently"
            )
        config = {"poi": group[0]["config"]["poi"], "parameters": params}
        result.append({"name": name, "config": config})
    return result


def _rebuild(spec: dict, drop: dict, new: dict) -> dict:
    """``spec`` without the names in ``drop`` and with the ``{old: new}`` maps in ``new``.

    Follows pyhf's ``Workspace._prune_and_rename``: observations follow their channel,
    parameter configs and the POI follow modifier renames, and configs are removed only
    when their modifier is pruned by name.
    """

    def keep(kind: str, name: str) -> bool:
        return name not in drop.get(kind, ())

    def renamed(kind: str, name: str) -> str:
        return new.get(kind, {}).get(name, name)

    def sample(s: dict) -> dict:
        mods = [
            dict(m, name=renamed("modifiers", m["name"]))
            for m in s["modifiers"]
            if keep("modifiers", m["name"]) and keep("modifier_types", m["type"])
        ]
        return dict(s, name=renamed("samples", s["name"]), modifiers=mods)

    def measurement(m: dict) -> dict:
        config = m["config"]
        params = [
            dict(p, name=renamed("modifiers", p["name"]))
            for p in config["parameters"]
            if keep("modifiers", p["name"])
        ]
        poi = renamed("modifiers", config["poi"])
        name = renamed("measurements", m["name"])
        return dict(m, name=name, config=dict(config, poi=poi, parameters=params))

    channels = [
        dict(
            c,
            name=renamed("channels", c["name"]),
            samples=[sample(s) for s in c["samples"] if keep("samples", s["name"])],
        )
        for c in spec["channels"]
        if keep("channels", c["name"])
    ]
    observations = [
        dict(o, name=renamed("channels", o["name"]))
        for o in spec["observations"]
        if keep("channels", o["name"])
    ]
    measurements = [measurement(m) for m in spec["measurements"] if keep("measurements", m["name"])]
    return {
        "channels": channels,
        "observations": observations,
        "measurements": measurements,
        "version": spec["version"],
    }


class Workspace:
    """A validated pyhf workspace (schema 1.0.0): the likelihood, its data and measurements.

    Example:
        >>> ws = Workspace.load("BkgOnly.json")  # doctest: +SKIP
        >>> model = ws.model(patches=[load_patch("patch.ERJR_100p0_20p0.json")])  # doctest: +SKIP
        >>> data = ws.data(model)  # doctest: +SKIP
    """

    def __init__(self, spec: Any, validate: bool = True):
        """Deep-copy ``spec`` (a dict or a Workspace) and, by default, validate it.

        NumPy arrays and scalars in ``spec`` are converted to JSON types; a top-level
        ``"$schema"`` key is dropped.
        """
        if isinstance(spec, Workspace):
            spec = spec._spec
        spec = _plain(spec)
        if validate:
            validate_workspace(spec)
        if isinstance(spec, dict):
            spec.pop("$schema", None)
        self._spec = spec
        channels = spec["channels"]
        self._nbins = {c["name"]: len(c["samples"][0]["data"]) for c in channels}
        self._samples = sorted({s["name"] for c in channels for s in c["samples"]})
        self._modifiers = sorted(
            {(m["name"], m["type"]) for c in channels for s in c["samples"] for m in s["modifiers"]}
        )

    # ----- input / output -------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, validate: bool = True) -> Workspace:
        """Read a workspace JSON file (``"-"`` reads standard input)."""
        from ._json import read_json_file

        spec = read_json_file(path, "workspace", InvalidWorkspace)
        return cls(spec, validate=validate)

    def to_dict(self) -> dict:
        """A deep copy of the workspace specification."""
        return copy.deepcopy(self._spec)

    def to_json(self, indent: int | None = 2, sort_keys: bool = False) -> str:
        """The specification serialised as JSON text."""
        return json.dumps(self._spec, indent=indent, sort_keys=sort_keys)

    def save(self, path: str | Path, indent: int | None = 2, sort_keys: bool = False) -> None:
        """Write the specification to ``path`` (``"-"`` writes standard output)."""
        text = self.to_json(indent=indent, sort_keys=sort_keys) + "\n"
        if str(path) == "-":
            sys.stdout.write(text)
        else:
            Path(path).write_text(text, encoding="utf-8")

    # ----- summaries ------------------------------------------------------------------
    @property
    def channels(self) -> list[str]:
        """Channel names, sorted (the order of the data vector, as in pyhf)."""
        return sorted(self._nbins)

    @property
    def channel_nbins(self) -> dict[str, int]:
        """Channel name → number of bins, in sorted channel order."""
        return {name: self._nbins[name] for name in self.channels}

    @property
    def samples(self) -> list[str]:
        """Sorted unique sample names over all channels."""
        return list(self._samples)

    @property
    def modifiers(self) -> list[tuple[str, str]]:
        """Sorted unique ``(name, type)`` pairs of all modifiers."""
        return list(self._modifiers)

    @property
    def parameters(self) -> list[str]:
        """Sorted unique modifier (parameter) names."""
        return sorted({name for name, _ in self._modifiers})

    @property
    def measurement_names(self) -> list[str]:
        """Measurement names in file order."""
        return [m["name"] for m in self._spec["measurements"]]

    @property
    def observations(self) -> dict[str, list]:
        """Observation name → observed counts (copies)."""
        return {o["name"]: list(o["data"]) for o in self._spec["observations"]}

    def get_measurement(self, measurement_name: str | None = None) -> dict:
        """Return (a copy of) the named measurement; ``None`` gives the first one, like pyhf."""
        measurements = self._spec["measurements"]
        if measurement_name is None:
            return copy.deepcopy(measurements[0])
        for meas in measurements:
            if meas["name"] == measurement_name:
                return copy.deepcopy(meas)
        raise InvalidWorkspace(
            "measurements",
            f"no measurement named {measurement_name!r}; available: {_few(self.measurement_names)}",
        )

    # ----- transformations ------------------------------------------------------------
    def patch(self, patches: Any) -> Workspace:
        """Apply patches (one op list / :class:`Patch`, or a list of them) and re-validate.

        Patches apply in order to the whole specification, so their paths start at the
        workspace root (``/channels/0/samples/5``), as pyhf's patch files do.
        """
        spec = self._spec
        for k, patch in enumerate(_as_patch_list(patches)):
            if isinstance(patch, Patch):
                spec = patch.apply(spec)
            else:
                spec = apply_patch(spec, patch, prefix=f"patches[{k}]")
        return Workspace(spec)

    def prune(
        self,
        channels=(),
        samples=(),
        modifiers=(),
        modifier_types=(),
        measurements=(),
    ) -> Workspace:
        """Return a workspace without the named components (pyhf ``Workspace.prune``).

        Removing a channel removes its observation; removing a modifier by name removes its
        parameter configuration from every measurement (the POI may be pruned too, then pass
        ``poi_name`` to :meth:`model`). Pruning by modifier type leaves parameter configs in
        place, as pyhf does. Unknown names raise :class:`InvalidWorkspace`.
        """
        return self._prune_and_rename(
            prune=dict(
                channels=channels,
                samples=samples,
                modifiers=modifiers,
                modifier_types=modifier_types,
                measurements=measurements,
            )
        )

    def rename(self, channels=None, samples=None, modifiers=None, measurements=None) -> Workspace:
        """Return a workspace with components renamed by ``{old: new}`` maps (pyhf semantics).

        Renaming a channel renames its observation; renaming a modifier renames it in every
        sample and in the measurements' parameter configs and POI.
        """
        return self._prune_and_rename(
            rename=dict(
                channels=channels or {},
                samples=samples or {},
                modifiers=modifiers or {},
                measurements=measurements or {},
            )
        )

    def _prune_and_rename(self, prune: dict | None = None, rename: dict | None = None):
        drop = {k: {v} if isinstance(v, str) else set(v) for k, v in (prune or {}).items()}
        new = rename or {}
        known = {
            "channels": self.channels,
            "samples": self.samples,
            "modifiers": self.parameters,
            "modifier_types": sorted({t for _, t in self._modifiers}),
            "measurements": self.measurement_names,
        }
        for kind, names in known.items():
            for name in (*drop.get(kind, ()), *new.get(kind, {})):
                if name not in names:
                    raise InvalidWorkspace(
                        kind, f"{name!r} is not one of the {kind}: {_few(names)}"
                    )

        return Workspace(_rebuild(self._spec, drop, new))

    @classmethod
    def combine(
        cls, left: Any, right: Any, join: str = "none", merge_channels: bool = False
    ) -> Workspace:
        """Combine two workspaces' channels, observations and measurements (pyhf semantics).

        ``join="none"`` requires disjoint channel, observation and measurement names;
        ``"outer"`` keeps one copy of identical items, merges measurements of the same name
        (same POI, compatible parameter configs) and rejects same-named items that differ;
        ``"left outer"``/``"right outer"`` keep the left/right item on a name clash.
        ``merge_channels`` (outer joins only) merges the samples of same-named channels.
        """
        if join not in _JOINS:
            raise InvalidArgument(f"join must be one of {_JOINS}, got {join!r}")
        if merge_channels and join == "none":
            raise InvalidArgument("merge_channels needs an outer join")
        a, b = Workspace(left)._spec, Workspace(right)._spec
        if a["version"] != b["version"]:
            raise InvalidWorkspace("version", f"cannot combine {a['version']} with {b['version']}")
        spec = {}
        for key, merge in (("channels", merge_channels), ("observations", False)):
            spec[key] = _join(join, a[key], b[key], "samples" if merge else None)
            _check_join(join, key, a[key], b[key], spec[key])
        spec["measurements"] = _join_measurements(join, a["measurements"], b["measurements"])
        spec["version"] = a["version"]
        return cls(spec)

    # ----- model and data -------------------------------------------------------------
    def model(
        self,
        measurement_name: str | None = None,
        patches: Any = None,
        modifier_settings: dict | None = None,
        poi_name: str | None = None,
        **kwargs: Any,
    ):
        """Build the :class:`jaxlike.model` Model of a measurement, patches applied first.

        ``poi_name`` overrides the measurement's POI; other keyword arguments go to
        ``jaxlike.model.build_model``.
        """
        from ..model import build_model

        ws = self.patch(patches) if patches else self
        measurement = ws.get_measurement(measurement_name)
        config = measurement["config"]
        return build_model(
            channels=ws._spec["channels"],
            poi_name=poi_name or config["poi"],
            parameter_configs=config.get("parameters", []),
            modifier_settings=modifier_settings,
            **kwargs,
        )

    def data(self, model: Any, include_auxdata: bool = True) -> np.ndarray:
        """Observed counts in ``model.config.channels`` order, then the model's auxdata.

        Returns a float64 array. Raises :class:`InvalidWorkspace` if a model channel has no
        observation or a different number of bins.
        """
        observations = self.observations
        parts = []
        for name in model.config.channels:
            if name not in observations:
                raise InvalidWorkspace("observations", f"no observation for channel {name!r}")
            counts = observations[name]
            nbins = model.config.channel_nbins[name]
            if len(counts) != nbins:
                raise InvalidWorkspace(
                    "observations",
                    f"observation {name!r} has {len(counts)} bins, the model channel {nbins}",
                )
            parts.append(np.asarray(counts, dtype=np.float64))
        if include_auxdata:
            parts.append(np.asarray(model.config.auxdata, dtype=np.float64))
        return np.concatenate(parts) if parts else np.zeros(0)

    # ----- dunder ---------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Workspace):
            return NotImplemented
        return self._spec == other._spec

    __hash__ = None

    def __repr__(self) -> str:
        return (
            f"Workspace({len(self._nbins)} channels, {sum(self._nbins.values())} bins, "
            f"{len(self._samples)} samples, {len(self.parameters)} parameters, "
            f"measurements={self.measurement_names})"
        )
