"""Parametric mass scans as streams: :func:`mass_scan` runs
:func:`jaxlike.parametric.hypothesis_results` over all masses with :func:`run_scan`
(chunked, sharded, stored in HDF5, resumable)."""

from __future__ import annotations

import hashlib

import equinox as eqx
import jax
import numpy as np

from ..parametric import MassScan, hypothesis_results
from ._stream import run_scan

__all__ = ["mass_scan", "scan_digest"]


def scan_digest(obj) -> str:
    """sha256 over the static structure and every array leaf (bytes) of a pytree: two scans
    with the same digest compute the same numbers. Used to refuse resuming a file written by
    another model."""
    leaves, treedef = jax.tree.flatten(eqx.filter(obj, eqx.is_array))
    h = hashlib.sha256(str(treedef).encode())
    h.update(str(eqx.partition(obj, eqx.is_array)[1]).encode())
    for leaf in leaves:
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


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
) -> dict:
    """Fit, local significance and observed/expected CLs limits at every mass.

    One compiled, vmapped :func:`~jaxlike.parametric.hypothesis_results` serves every chunk;
    results are ``{name: array [H, ...]}`` (see :data:`~jaxlike.parametric.RESULT_FIELDS`;
    ``ul_*`` have an axis over ``cl``) and, with ``store``, an HDF5 file whose attributes hold
    the configuration, the model digest and the CL levels (see :func:`run_scan`).
    """
    cl = tuple(float(x) for x in np.atleast_1d(cl))
    fn = jax.vmap(lambda h: hypothesis_results(scan, h["mass"], cl))
    return run_scan(
        fn,
        {"mass": np.asarray(masses, float)},
        store=store,
        resume=resume,
        overwrite=overwrite,
        chunk_size=chunk_size,
        memory_budget_bytes=memory_budget_bytes,
        devices=devices,
        progress=progress,
        config={"kind": "mass", "cl": list(cl), **(config or {})},
        model_digest=scan_digest(scan),
        attrs={"kind": "mass", "cl": list(cl)},
    )
