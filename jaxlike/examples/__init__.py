"""Bundled examples: a synthetic, documented multi-channel search workspace.

``make_example_workspace(seed)`` returns the workspace as a pyhf JSON dict (schema 1.0.0);
``python -m jaxlike.examples out.json`` writes it to a file; ``jaxlike example`` fits it.
See :mod:`jaxlike.examples._search` for what the workspace models. The numbers are
synthetic and belong to no experiment.
"""

from jaxlike.examples._search import INJECTED_MU, SR_EDGES, make_example_workspace
from jaxlike.examples._write import main_example, write_example_workspace

__all__ = [
    "make_example_workspace",
    "write_example_workspace",
    "main_example",
    "INJECTED_MU",
    "SR_EDGES",
]
