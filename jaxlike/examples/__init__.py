"""Bundled examples: a synthetic, documented multi-channel search workspace and synthetic
mass-scan datasets.

``dark_higgs_grid(seed)`` and ``bka_lifetime_grid(seed)`` build N-D counting grids (mass ×
lifetime) with their physics models for coupling limits (sin θ, g_aW); see
:mod:`jaxlike.examples._dark_higgs` and :mod:`jaxlike.examples._bka_lifetime`.

``make_example_workspace(seed)`` returns the workspace as a pyhf JSON dict (schema 1.0.0);
``python -m jaxlike.examples out.json`` writes it to a file; ``jaxlike example`` fits it.
See :mod:`jaxlike.examples._search` for what the workspace models.

``write_alp_example``, ``write_bka_example`` and ``write_zprime_example`` (also
``SCAN_EXAMPLES["alp-mgg" | "bka" | "zprime"]``) write a finely binned spectrum (``.npz``) and
a scan configuration (``.toml``) for :func:`jaxlike.parametric.load_config`; see
:mod:`jaxlike.examples._scans`. ``write_alp_segments_example`` (``SCAN_EXAMPLES["alp"]``, the
main job) writes the ALP search as published: two segments (M²_γγ, M²_recoil), a background
order per range, an envelope and one-sided g_aγγ limits (:mod:`jaxlike.examples._alp_segments`).
The numbers are synthetic and belong to no experiment.
"""

from ._bka_lifetime import BkaLifetimeExample, bka_lifetime_grid
from ._dark_higgs import DARK_HIGGS_CHANNELS, DarkHiggsExample, dark_higgs_grid
from ._scans import (
    ALP_LUMI_FB,
    BKA_MODES,
    SCAN_EXAMPLES,
    ZPRIME_LUMI_FB,
    alp_resolution,
    example_names,
    write_alp_example,
    write_alp_segments_example,
    write_bka_example,
    write_zprime_example,
)
from ._search import INJECTED_MU, SR_EDGES, make_example_workspace
from ._write import main_example, write_example_workspace

__all__ = [
    "BkaLifetimeExample",
    "bka_lifetime_grid",
    "DARK_HIGGS_CHANNELS",
    "DarkHiggsExample",
    "dark_higgs_grid",
    "make_example_workspace",
    "write_example_workspace",
    "main_example",
    "INJECTED_MU",
    "SR_EDGES",
    "write_alp_example",
    "write_alp_segments_example",
    "write_bka_example",
    "write_zprime_example",
    "example_names",
    "SCAN_EXAMPLES",
    "alp_resolution",
    "ALP_LUMI_FB",
    "BKA_MODES",
    "ZPRIME_LUMI_FB",
]
