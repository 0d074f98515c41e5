"""``jaxlike inspect``: a human-readable summary of a workspace, like ``pyhf inspect``."""

from __future__ import annotations

import re

import numpy as np

from ..model import MODIFIERS
from ._format import table
from ._io import emit, read_spec

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


def inspect_text(spec: dict, model, measurement: str) -> str:
    """The ``inspect`` report of workspace ``spec`` compiled into ``model``.

    ``measurement`` is the name of the measurement the model was built from (marked ``(*)``).
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
        ["POI", config.poi_name],
    ]
    nbins = [[c, config.channel_nbins[c]] for c in config.channels]
    types = [[t, len(n), ", ".join(sorted(n))] for t, n in sorted(by_type.items())]
    sections = [
        table(["Summary", ""], summary, "<>"),
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
    """``jaxlike inspect``: print channels, samples, modifiers, parameters and measurements."""
    import jaxlike

    spec = read_spec(args.workspace)
    model = jaxlike.Workspace(spec).model(measurement_name=args.measurement)
    measurement = args.measurement or spec["measurements"][0]["name"]
    emit(inspect_text(spec, model, measurement), args.output_file)
    return 0
