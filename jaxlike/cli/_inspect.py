"""``jaxlike inspect``: a human-readable summary of a workspace, like ``pyhf inspect``."""

from __future__ import annotations

import re

import numpy as np

from ..model import MODIFIERS
from ._format import table
from ._io import build, emit

__all__ = ["cmd_inspect", "CONSTRAINTS"]

#: Constraint term of each modifier type, as pyhf names it (from the modifier table).
CONSTRAINTS = {t: m.constraint_label for t, m in MODIFIERS.items() if m.constraint != "rate"}


def _measurements(spec: dict, used: str) -> list[list[str]]:
    rows = []
    for m in spec.get("measurements", []):
        config = m.get("config", {})
        names = [p.get("name", "?") for p in config.get("parameters", [])]
        marker = "(*) " if m.get("name") == used else "    "
        rows.append(
            [marker + str(m.get("name")), str(config.get("poi")), ", ".join(names) or "(none)"]
        )
    return rows


def _parameter_rows(config, modifier_types: dict[str, list[str]]) -> list[list[str]]:
    init = np.asarray(config.suggested_init(), dtype=float)
    bounds = np.asarray(config.suggested_bounds(), dtype=float)
    fixed = np.asarray(config.suggested_fixed(), dtype=bool)
    rows = []
    for i, name in enumerate(config.par_names):
        base = re.sub(r"\[\d+\]$", "", name)
        types = modifier_types.get(base, [])
        constraint = sorted({CONSTRAINTS.get(t, "?") for t in types}) or ["?"]
        role = ",".join(types) + (" (POI)" if i == config.poi_index else "")
        rows.append(
            [
                name,
                role,
                ",".join(constraint),
                f"{init[i]:g}",
                f"[{bounds[i, 0]:g}, {bounds[i, 1]:g}]",
                "yes" if fixed[i] else "",
            ]
        )
    return rows


def _measurement_poi(spec: dict, measurement: str) -> str:
    """The POI named by measurement ``measurement`` of ``spec``."""
    return next((m["config"]["poi"] for m in spec.get("measurements", [])
                 if m.get("name") == measurement), "?")  # fmt: skip


def inspect_text(spec: dict, model, measurement: str) -> str:
    """The ``inspect`` report of workspace ``spec`` compiled into ``model``.

    ``measurement`` is the name of the measurement the model was built from (marked ``(*)``).
    A model without a POI (a background-only workspace) reports the measurement's POI as
    absent and everything else as usual.
    """
    config = model.config
    modifier_types: dict[str, list[str]] = {}
    by_type: dict[str, list[str]] = {}
    for name, mtype in config.modifiers:
        modifier_types.setdefault(name, []).append(mtype)
        by_type.setdefault(mtype, []).append(name)

    summary = [
        ["channels", len(config.channels)],
        ["samples", len(config.samples)],
        ["modifiers", len(config.modifiers)],
        ["parameters", f"{config.npars} ({len(modifier_types)} sets)"],
        ["measurements", len(spec.get("measurements", []))],
        ["POI", config.poi_name or f"{_measurement_poi(spec, measurement)} (absent)"],
    ]
    nbins = [[c, config.channel_nbins[c]] for c in config.channels]
    types = [[t, len(n), ", ".join(sorted(n))] for t, n in sorted(by_type.items())]
    head = table(["Summary", ""], summary, "<>")
    if config.poi_name is None:
        poi = _measurement_poi(spec, measurement)
        head += (
            f"\n\nThe POI {poi} is absent: no modifier carries it, as in a background-only "
            "workspace.\nAdd a signal with -p PATCH (fit works without one)."
        )
    sections = [
        head,
        table(["channel", "nbins"], nbins, "<>"),
        table(["sample"], [[s] for s in config.samples]),
        table(["modifier type", "count", "names"], types, "<><"),
        table(
            ["parameter", "modifiers", "constraint", "init", "bounds", "fixed"],
            _parameter_rows(config, modifier_types),
            "<<<><<",
        ),
        table(["measurement", "poi", "parameter configs"], _measurements(spec, measurement)),
    ]
    return "\n\n".join(sections)


def cmd_inspect(args) -> int:
    """``jaxlike inspect``: print channels, samples, modifiers, parameters and measurements of
    the workspace with the ``-p`` patches applied; a background-only workspace (its POI on no
    modifier) is inspected too, its POI reported as absent."""
    ws, model, _ = build(args, allow_no_poi=True)
    spec = ws.to_dict()
    measurement = args.measurement or spec["measurements"][0]["name"]
    emit(inspect_text(spec, model, measurement), args.output_file)
    return 0
