"""Streaming execution of batched work: chunk, pad, shard, store, resume, report progress.

The engine behind every batched job of jaxlike; it knows nothing of models or fits, only of
functions and arrays (layer 2: it imports nothing above :mod:`jaxlike._strict`).

- :func:`batched_map`: a vmapped function over N rows in memory, in equal chunks padded to a
  fixed size (optionally bucketed to 8, 32, 128, ...), so one compilation serves every chunk
  (the fits of :mod:`jaxlike.analysis`, Bayesian limits of stacked models).
- :func:`run_scan`: the same over H hypotheses, sharded over devices and streamed into a
  crash-safe HDF5 :class:`ScanStore` (seal, per-row CRC-32), resumable, multi-process.
- :class:`Progress`: rows done, rate and ETA on stderr.
- :func:`compiled`: one bounded LRU cache of built functions keyed by an explicit identity.
- :func:`tree_digest`, :func:`config_digest`, :func:`canonical_json`: the identity of a
  model and of a configuration; :func:`check_resume` and :func:`resume_chunk_size`: the rule
  deciding whether and how a stored scan is continued.
"""

from ._batch import batched_map, bucket_size, chunk_rows, take_rows
from ._cache import clear_compiled, compiled
from ._progress import Progress
from ._resume import (
    check_resume,
    config_differences,
    resume_chunk_size,
    stored_chunk_size,
    tree_digest,
)
from ._store import (
    FORMAT_VERSION,
    ScanFileWarning,
    ScanStore,
    canonical_json,
    check_chunk_size,
    check_free_space,
    config_digest,
    flatten_hypotheses,
    merge_stores,
    read_results,
    store_bytes,
)
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
    "DEFAULT_CHUNK_SIZE",
    "FORMAT_VERSION",
    "Progress",
    "ScanFileWarning",
    "ScanStore",
    "batched_map",
    "bucket_size",
    "canonical_json",
    "check_chunk_size",
    "check_free_space",
    "check_resume",
    "choose_chunk_size",
    "chunk_rows",
    "clear_compiled",
    "compiled",
    "config_differences",
    "config_digest",
    "flatten_hypotheses",
    "hypothesis_bytes",
    "initialize_distributed",
    "merge_stores",
    "process_store_path",
    "read_results",
    "resume_chunk_size",
    "run_scan",
    "scan_mesh",
    "shard_batch",
    "store_bytes",
    "stored_chunk_size",
    "take_rows",
    "tree_digest",
]
