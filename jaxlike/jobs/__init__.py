"""Jobs: applications built on the library, not part of it.

A job puts the library's pieces together for one analysis and writes plain files that the
generic tools read again; nothing below this package imports it.

- :mod:`jaxlike.jobs.belle2`: the Belle II B⁺ → K⁺ νν̄ weak-effective-theory (WET)
  reinterpretation (arXiv:2507.12393) as a plain pyhf-JSON workspace with ``reweight``
  modifiers: :func:`belle2_wet_workspace` builds it from Belle II's release folder,
  :func:`write_belle2_wet_workspace` writes it (``jaxlike belle2-wet DIR -o wet.json``), after
  which ``jaxlike fit``, ``jaxlike grid``, ``jaxlike posterior`` etc. take it like any workspace.
- :mod:`jaxlike.jobs.posterior`: a posterior analysis from a TOML/JSON configuration (model,
  priors, NUTS settings, report, prior-sensitivity variants): :func:`load_posterior_config`,
  :func:`read_posterior_config`, :func:`run_posterior_job` (``jaxlike posterior CONFIG``), and
  the WET configuration :data:`WET_POSTERIOR_CONFIG` (:func:`write_wet_posterior_config`).
"""

from .belle2 import (
    BELLE2_FILES,
    BELLE2_MAPS,
    TRUTH_EDGES,
    belle2_release_folder,
    belle2_wet_workspace,
    read_number_density,
    write_belle2_wet_workspace,
)
from .posterior import (
    WET_POSTERIOR_CONFIG,
    load_posterior_config,
    read_posterior_config,
    run_posterior_job,
    write_wet_posterior_config,
)

__all__ = [
    "BELLE2_FILES",
    "BELLE2_MAPS",
    "TRUTH_EDGES",
    "WET_POSTERIOR_CONFIG",
    "belle2_release_folder",
    "belle2_wet_workspace",
    "load_posterior_config",
    "read_number_density",
    "read_posterior_config",
    "run_posterior_job",
    "write_belle2_wet_workspace",
    "write_wet_posterior_config",
]
