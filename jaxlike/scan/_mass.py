"""Parametric mass scans as streams: :func:`mass_scan` runs
:func:`jaxlike.parametric.hypothesis_results` over all masses with :func:`run_scan`
(chunked, sharded, stored in HDF5, resumable)."""

from __future__ import annotations

import jax
import numpy as np

from ..parametric import MassScan, hypothesis_results
from ..stream import compiled, run_scan, tree_digest
from ._identity import ScanIdentity
from ._results import MassScanResult

__all__ = ["mass_scan", "mass_scan_identity", "scan_digest", "DEFAULT_SCAN_CHUNK"]

#: hypotheses per vmapped call when neither ``chunk_size`` nor a memory budget is given. The
#: fits of a chunk iterate in lockstep (a vmapped ``while_loop`` runs until its slowest lane
#: converges), so on a CPU small chunks are faster: 500 ALP masses took 36 s in one chunk and
#: 8–10 s in chunks of 16–64 on 2 cores. Accelerators want larger chunks (pass ``chunk_size``).
DEFAULT_SCAN_CHUNK = 32

#: the digest of a model (and data) in scan files: :func:`jaxlike.stream.tree_digest`
scan_digest = tree_digest


def _scan_fn(scan, cl, digest):
    """The vmapped per-mass function, one per (model digest, CL levels): its compilation is
    reused by later scans of the same model (:func:`jaxlike.stream.compiled`)."""
    return compiled(
        ("mass_scan", digest, cl),
        lambda: jax.vmap(lambda h: hypothesis_results(scan, h["mass"], cl)),
    )


def mass_scan_identity(scan: MassScan, masses, *, cl=(0.95,), config=None) -> ScanIdentity:
    """What :func:`mass_scan` stores as its identity: configuration
    ``{"kind": "mass", "cl": [...], **config}``, hypotheses ``{"mass": masses}`` and the
    model digest :func:`scan_digest` (scan)."""
    cl = tuple(float(x) for x in np.atleast_1d(cl))
    return ScanIdentity(
        config={"kind": "mass", "cl": list(cl), **(config or {})},
        hypotheses={"mass": np.asarray(masses, float)},
        digest=lambda: scan_digest(scan),
        added=("kind", "cl"),
    )


def mass_scan(
    scan: MassScan,
    masses,
    *,
    cl=(0.95,),
    store=None,
    resume=False,
    overwrite=False,
    chunk_size=None,
    memory_budget_bytes=None,
    devices=None,
    progress=True,
    config=None,
) -> MassScanResult:
    """Fit, local significance and observed/expected CLs limits at every mass.

    One compiled, vmapped :func:`~jaxlike.parametric.hypothesis_results` serves every chunk
    (and later calls with the same scan and levels; default chunks of
    :data:`DEFAULT_SCAN_CHUNK` hypotheses);
    results are a :class:`MassScanResult` of arrays [H, ...] (fields
    :data:`~jaxlike.parametric.RESULT_FIELDS`; ``ul_*`` have an axis over ``cl``) and, with
    ``store``, an HDF5 file whose attributes hold the configuration
    (:func:`mass_scan_identity`), the model digest and the CL levels (see
    :func:`~jaxlike.stream.run_scan`).
    """
    cl = tuple(float(x) for x in np.atleast_1d(cl))
    ident = mass_scan_identity(scan, masses, cl=cl, config=config)
    digest = ident.digest()
    if chunk_size is None and memory_budget_bytes is None:
        chunk_size = DEFAULT_SCAN_CHUNK
    out = run_scan(
        _scan_fn(scan, cl, digest),
        ident.hypotheses,
        store=store,
        resume=resume,
        overwrite=overwrite,
        chunk_size=chunk_size,
        memory_budget_bytes=memory_budget_bytes,
        devices=devices,
        progress=progress,
        config=ident.config,
        model_digest=digest,
        attrs={"kind": "mass", "cl": list(cl)},
    )
    return MassScanResult.from_results(out)
