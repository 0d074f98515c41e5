"""Hypothesis scans: mass scans, patch scans, N-D counting grids, 2-D profile grids and
look-elsewhere toys.

Each scan is a pure per-hypothesis function run by the streaming engine
:func:`jaxlike.stream.run_scan` (chunked, sharded over devices, stored in one crash-safe HDF5
file per scan, resumable); the engine's public names (``run_scan``, ``ScanStore``,
``canonical_json``, ``merge_stores``, ``read_results``, ``Progress``, ...) are re-exported
here so that existing code keeps working.
"""

from ..stream import (
    DEFAULT_CHUNK_SIZE,
    FORMAT_VERSION,
    Progress,
    ScanFileWarning,
    ScanStore,
    canonical_json,
    choose_chunk_size,
    hypothesis_bytes,
    initialize_distributed,
    merge_stores,
    process_store_path,
    read_results,
    run_scan,
    scan_mesh,
    shard_batch,
)
from ._counting_grid import (
    CountingGrid,
    CountingGridResult,
    GridAxis,
    GridChannel,
    GridToys,
    counting_grid_models,
    counting_grid_scan,
    counting_grid_to_dict,
    counting_grid_toys,
    load_counting_grid,
    local_significance,
    window_sampler,
)
from ._grid import DEFAULT_GRID_CHUNK, ProfileGrid, chi2_2dof_threshold, profile_grid
from ._identity import ScanIdentity
from ._lee import (
    GlobalSignificance,
    GrossVitells,
    background_expectation,
    global_significance,
    gross_vitells,
    scan_toys,
    upcrossings,
)
from ._lee_nd import (
    GrossVitellsND,
    euler_characteristic,
    expected_euler_characteristic,
    gross_vitells_nd,
)
from ._mass import (
    default_mass_chunk,
    mass_scan,
    mass_scan_identity,
    scan_digest,
    toy_chunk,
    toy_options,
)
from ._patches import (
    load_patch_folder,
    patch_name_values,
    patch_scan,
    patch_scan_identity,
    stack_patched_models,
)
from ._results import MassScanResult, PatchScanResult, ToyScan
from ._segments import Segment, SegmentedScanResult, segmented_scan
from ._stacked import METHODS, bayes_options, check_methods
from ._study import (
    MassToyStudyResult,
    mass_toy_study,
    mass_toy_study_identity,
    read_toy_study,
    study_from_rows,
)

__all__ = [
    "Segment",
    "SegmentedScanResult",
    "segmented_scan",
    "CountingGrid",
    "CountingGridResult",
    "GridAxis",
    "GridChannel",
    "GridToys",
    "METHODS",
    "bayes_options",
    "check_methods",
    "counting_grid_models",
    "counting_grid_to_dict",
    "load_counting_grid",
    "counting_grid_scan",
    "counting_grid_toys",
    "local_significance",
    "window_sampler",
    "toy_chunk",
    "default_mass_chunk",
    "toy_options",
    "MassToyStudyResult",
    "mass_toy_study",
    "mass_toy_study_identity",
    "read_toy_study",
    "study_from_rows",
    "DEFAULT_GRID_CHUNK",
    "ProfileGrid",
    "chi2_2dof_threshold",
    "profile_grid",
    "DEFAULT_CHUNK_SIZE",
    "FORMAT_VERSION",
    "GlobalSignificance",
    "GrossVitells",
    "GrossVitellsND",
    "euler_characteristic",
    "expected_euler_characteristic",
    "gross_vitells_nd",
    "MassScanResult",
    "PatchScanResult",
    "Progress",
    "ScanFileWarning",
    "ScanIdentity",
    "ScanStore",
    "ToyScan",
    "background_expectation",
    "canonical_json",
    "choose_chunk_size",
    "global_significance",
    "gross_vitells",
    "hypothesis_bytes",
    "initialize_distributed",
    "load_patch_folder",
    "mass_scan",
    "mass_scan_identity",
    "merge_stores",
    "patch_name_values",
    "patch_scan",
    "patch_scan_identity",
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
