"""Hypothesis scans as streams: chunk, shard over devices, store in HDF5, resume.

The generic layer knows nothing of physics: :func:`run_scan` evaluates a pure function on a
pytree of hypotheses (leading axis H) chunk by chunk, and :class:`ScanStore` keeps the results
in one crash-safe HDF5 file per scan.
"""

from ._grid import DEFAULT_GRID_CHUNK, ProfileGrid, chi2_2dof_threshold, profile_grid
from ._lee import (
    GlobalSignificance,
    GrossVitells,
    background_expectation,
    global_significance,
    gross_vitells,
    scan_toys,
    upcrossings,
)
from ._mass import mass_scan, scan_digest
from ._patches import patch_scan, stack_patched_models
from ._progress import Progress
from ._store import FORMAT_VERSION, ScanStore, canonical_json, merge_stores, read_results
from ._stream import (
    DEFAULT_CHUNK_SIZE,
    choose_chunk_size,
    hypothesis_bytes,
    initialize_distributed,
    process_store_path,
    run_scan,
    scan_mesh,
    shard_batch,
)

__all__ = [
    "DEFAULT_GRID_CHUNK",
    "ProfileGrid",
    "chi2_2dof_threshold",
    "profile_grid",
    "DEFAULT_CHUNK_SIZE",
    "FORMAT_VERSION",
    "GlobalSignificance",
    "GrossVitells",
    "Progress",
    "ScanStore",
    "background_expectation",
    "canonical_json",
    "choose_chunk_size",
    "global_significance",
    "gross_vitells",
    "hypothesis_bytes",
    "initialize_distributed",
    "mass_scan",
    "merge_stores",
    "patch_scan",
    "process_store_path",
    "read_results",
    "run_scan",
    "scan_digest",
    "scan_mesh",
    "scan_toys",
    "shard_batch",
    "stack_patched_models",
    "upcrossings",
]
