"""The Belle II B⁺ → K⁺ νν̄ WET reinterpretation as a jaxlike workspace (arXiv:2507.12393).

From the published combined likelihood (HEPData ins2947386) the signal strength ``mu`` and the
three form-factor shape systematics ``corr_ff_c1..3`` are removed (the form factors now enter
through the rate), and the signal of the ITA signal region (A), the ITA control region (B)
and the HTA channel gets a ``reweight`` modifier built from Belle II's joint number densities:

.. math:: \\nu_{i}(C, \\nu_{FF}) = r_i \\cdot \\nu^{\\rm pub}_i(\\theta), \\qquad
          r_i = \\sum_j n_{ij}\\, w_j(C, \\nu_{FF}) / \\sum_j n_{ij},

with w_j = ∫σ_WET/∫σ_HPQCD over the 100 truth-q² bins (sentinel bin [−1, 0]: w = 1). The
result has C_V, C_S, C_T ∈ [0, 20] and the 8 decorrelated BSZ2015 nuisances in addition to
the 228 published nuisance parameters: 239 parameters. The workspace is plain JSON (maps,
edges and form-factor inputs embedded), see :mod:`jaxlike.model._reweight`.

This is an application of the library, not part of it: :func:`write_belle2_wet_workspace`
(``jaxlike belle2-wet DIR -o wet_workspace.json``) writes the plain pyhf-JSON workspace once,
and every generic tool (``jaxlike fit``, ``grid``, ``posterior``, :class:`jaxlike.Workspace`)
takes that file like any other workspace.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .._strict import atomic_write, directory, regular_file
from ..exceptions import InvalidModel
from ..physics import NULL_RATE, WET_RATE, load_bk_formfactors
from ..workspace import Workspace

__all__ = [
    "BELLE2_FILES",
    "BELLE2_MAPS",
    "TRUTH_EDGES",
    "belle2_release_folder",
    "belle2_wet_workspace",
    "read_number_density",
    "write_belle2_wet_workspace",
]

#: channel prefix (as in combined_likelihood.json) → (signal sample, number-density file)
BELLE2_MAPS = {
    "A__": ("signal", "number_density_ita_regA.csv"),
    "B__": ("signal", "number_density_ita_regB.csv"),
    "sgn1_had": ("sgn_1_had", "number_density_hta.csv"),
}
#: truth-q² edges of the maps: a sentinel bin [−1, 0], then 100 bins up to 22.885 GeV²
TRUTH_EDGES = np.concatenate([[-1.0], np.linspace(0.0, 22.885, 101)])
REMOVED = ("mu", "corr_ff_c1", "corr_ff_c2", "corr_ff_c3")
#: the files of the release folder that the WET workspace is built from
BELLE2_FILES = (
    "combined_likelihood.json",
    "bk_formfactors.json",
    *(f for _, f in BELLE2_MAPS.values()),
)


def belle2_release_folder(data_dir, field="belle2_wet", exc=InvalidModel, base=None):
    """``data_dir`` (resolved against ``base``) checked to be a Belle II release folder
    before anything is opened: a folder holding a regular ``combined_likelihood.json``; the
    other files of :data:`BELLE2_FILES` that exist must be regular files too (a FIFO or a
    device is refused, never opened). Errors raise ``exc(field, message)``."""
    folder = directory(data_dir, field, exc, base)
    regular_file(folder / BELLE2_FILES[0], field, exc)
    for f in BELLE2_FILES[1:]:
        if os.path.lexists(folder / f):  # read when needed; never a FIFO or a device
            regular_file(folder / f, field, exc)
    return folder


def read_number_density(path, nbins=None):
    """A joint-number-density CSV (rows = analysis bins, columns = truth bins) as [rows, 101]."""
    path = Path(path)
    try:
        nmap = np.loadtxt(path, delimiter=",", ndmin=2)
    except (OSError, ValueError) as err:
        raise InvalidModel(str(path), f"cannot read the number density: {err}") from None
    if nmap.shape[1] != TRUTH_EDGES.size - 1 or (nbins is not None and nmap.shape[0] != nbins):
        raise InvalidModel(
            str(path),
            f"has shape {list(nmap.shape)}, expected [{nbins or 'n'} analysis bins, "
            f"{TRUTH_EDGES.size - 1} truth bins]",
        )
    return nmap


def belle2_wet_workspace(
    data_dir, *, rate=WET_RATE, inputs=None, poi="C_V", nodes=16, template_tolerance=1e-4
):
    """Build the WET workspace from Belle II's release directory (see module docstring).

    Args:
        data_dir: folder with ``combined_likelihood.json``, the three ``number_density_*.csv``
            and ``bk_formfactors.json``.
        rate: registered name of the alternative σ1(q²; φ) (default the WET rate with BSZ2015
            form factors). Any rate registered with :func:`jaxlike.model.register_rate`
            plugs in: its parameters become the model's.
        inputs: the rate's JSON inputs (default for the WET rate: the form-factor mean and
            covariance of ``bk_formfactors.json``; ``{}`` for other rates).
        poi: the measurement's parameter of interest (a parameter of the rate).
        nodes: Gauss–Legendre nodes per truth bin.
        template_tolerance: the row sums of each map must equal the published signal template
            to this relative tolerance (they do to < 5e-7 except two HTA bins at 3e-5).

    Returns:
        a :class:`~jaxlike.Workspace` whose measurement has POI ``poi``.
    """
    data_dir = Path(data_dir)
    spec = json.loads((data_dir / "combined_likelihood.json").read_text())
    if inputs is None and rate == WET_RATE:
        mean, cov, _ = load_bk_formfactors(data_dir / "bk_formfactors.json")
        inputs = {"ff_mean": mean.tolist(), "ff_cov": cov.tolist()}
    inputs = {} if inputs is None else inputs
    done = set()
    for ch in spec["channels"]:
        prefix = next((p for p in BELLE2_MAPS if ch["name"].startswith(p)), None)
        for sample in ch["samples"]:
            sample["modifiers"] = [m for m in sample["modifiers"] if m["name"] not in REMOVED]
            if prefix is None or sample["name"] != BELLE2_MAPS[prefix][0]:
                continue
            fname = BELLE2_MAPS[prefix][1]
            nmap = read_number_density(data_dir / fname, len(sample["data"]))
            tmpl = np.asarray(sample["data"], float)
            rel = np.abs(nmap.sum(axis=1) - tmpl) / np.maximum(np.abs(tmpl), 1e-300)
            if np.any(rel > template_tolerance):
                i = int(np.argmax(rel))
                raise InvalidModel(
                    f"{fname}[{i}]",
                    f"row sum {nmap[i].sum():.6g} differs from the {ch['name']} signal template "
                    f"{tmpl[i]:.6g} by {rel[i]:.2g} (relative)",
                )
            sample["modifiers"].append(
                {
                    "name": "wet",
                    "type": "reweight",
                    "data": {
                        "rate": rate,
                        "null": NULL_RATE,
                        "edges": TRUTH_EDGES.tolist(),
                        "map": nmap.tolist(),
                        "inputs": inputs,
                        "nodes": nodes,
                    },
                }
            )
            done.add(prefix)
    missing = set(BELLE2_MAPS) - done
    if missing:
        raise InvalidModel("channels", f"no signal sample found for {sorted(missing)}")
    for meas in spec["measurements"]:
        meas["config"]["poi"] = poi
        meas["config"]["parameters"] = [
            p for p in meas["config"].get("parameters", []) if p["name"] not in REMOVED
        ]
    return Workspace(spec)


def write_belle2_wet_workspace(data_dir, path, *, indent=None, **options):
    """Build the WET workspace of ``data_dir`` (:func:`belle2_wet_workspace`, ``options`` are
    its keyword arguments) and write it as plain pyhf JSON (with its ``reweight`` modifiers) to
    ``path``, atomically: through a unique temporary file in the same folder, renamed onto
    ``path``, so an interrupted run leaves no half-written workspace.

    The release folder is checked first (:func:`belle2_release_folder`); a file that cannot be
    read or parsed raises :class:`~jaxlike.exceptions.InvalidModel` naming it. Returns the
    :class:`~jaxlike.Workspace` written.
    """
    folder = belle2_release_folder(data_dir)
    try:
        ws = belle2_wet_workspace(folder, **options)
    except (OSError, ValueError, KeyError, TypeError) as err:
        if isinstance(err, InvalidModel):
            raise
        raise InvalidModel(str(folder), f"cannot build the WET workspace: {err}") from None
    text = ws.to_json(indent=indent) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return ws
