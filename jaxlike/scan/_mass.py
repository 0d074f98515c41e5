"""Parametric mass scans as streams: :func:`mass_scan` runs
:func:`jaxlike.parametric.hypothesis_results` over all masses with :func:`run_scan`
(chunked, sharded, stored in HDF5, resumable)."""

from __future__ import annotations

import jax
import numpy as np

from ..infer import LIMIT_RULES
from ..parametric import Envelope, MassScan, envelope_results, hypothesis_results
from ..stream import compiled, resume_chunk_size, run_scan, tree_digest
from ._identity import ScanIdentity
from ._results import MassScanResult

__all__ = [
    "mass_scan",
    "mass_scan_identity",
    "scan_digest",
    "toy_chunk",
    "toy_options",
    "DEFAULT_SCAN_CHUNK",
    "CPU_MASS_CHUNK",
    "default_mass_chunk",
]


def check_rule(rule):
    """Refuse a limit rule other than those of :data:`jaxlike.infer.LIMIT_RULES`."""
    from ..exceptions import InvalidScanConfig

    if rule not in LIMIT_RULES:
        raise InvalidScanConfig("rule", f"must be one of {LIMIT_RULES}, got {rule!r}")


#: hypotheses per vmapped call when neither ``chunk_size`` nor a memory budget is given. The
#: fits of a chunk iterate in lockstep (a vmapped ``while_loop`` runs until its slowest lane
#: converges), so on a CPU small chunks are faster: 500 ALP masses took 36 s in one chunk and
#: 8–10 s in chunks of 16–64 on 2 cores. Accelerators want larger chunks (pass ``chunk_size``).
DEFAULT_SCAN_CHUNK = 32
#: the default chunk of a mass scan on a CPU: each hypothesis runs several fits and a limit
#: search, so lockstep waste dominates earlier; on 2 cores (AMD EPYC, 2026-12-06) one ALP
#: hypothesis took 0.038 s in chunks of 8, 0.039 s of 16 and 0.057 s of 32 (the 3-model
#: envelope: 0.063, 0.071, 0.090 s)
CPU_MASS_CHUNK = 8


def default_mass_chunk() -> int:
    """The default chunk of :func:`mass_scan` without toys: :data:`CPU_MASS_CHUNK` when JAX
    runs on the CPU, :data:`DEFAULT_SCAN_CHUNK` on an accelerator."""
    return CPU_MASS_CHUNK if jax.default_backend() == "cpu" else DEFAULT_SCAN_CHUNK


#: the digest of a model (and data) in scan files: :func:`jaxlike.stream.tree_digest`
scan_digest = tree_digest


def _scan_fn(scan, cl, rule="cls", toys=None):
    """The vmapped per-mass function ``(hypotheses, scan) → results``, one per (model layout,
    CL levels, rule, toy options). The scan is an operand of the compiled program, not a
    constant in it (:func:`jaxlike.stream.run_scan`): scans whose arrays have the same shapes
    and static settings — later scans of the same model, or segments of other mass ranges with
    the same layout — share one compilation (:func:`jaxlike.stream.compiled`)."""
    layout = jax.tree.structure(scan)
    key = ("mass_scan", layout, cl, rule, None if toys is None else tuple(sorted(toys.items())))
    if isinstance(scan, Envelope):
        return compiled(
            key,
            lambda: jax.vmap(lambda h, s: envelope_results(s, h["mass"], cl, rule=rule),
                             in_axes=(0, None)),
        )  # fmt: skip
    return compiled(
        key,
        lambda: jax.vmap(
            lambda h, s: hypothesis_results(s, h["mass"], cl, rule=rule, toys=toys),
            in_axes=(0, None),
        ),
    )


def _scan_program(scan, cl, rule, toys):
    """What :func:`_scan_fn` traces besides the scan's layout: a stable description for the
    exported-program cache of :func:`jaxlike.stream.run_scan` (the functions it calls are
    jaxlike's own, whose source is part of the key)."""
    kind = "envelope_results" if isinstance(scan, Envelope) else "hypothesis_results"
    opts = None if toys is None else tuple(sorted(toys.items()))
    return ("jaxlike.scan.mass_scan", kind, tuple(cl), rule, opts)


def toy_options(ntoys, seed=0, npoints=6, toy_pars="profiled") -> dict:
    """The checked toy options of a scan: ``ntoys`` per grid point and set, ``seed``,
    ``npoints`` grid points (the first at μ = 0), ``toy_pars`` the generating point."""
    from ..exceptions import InvalidScanConfig
    from ..infer import TOY_PARS

    for name, v, least in (("ntoys", ntoys, 1), ("seed", seed, 0), ("toy_points", npoints, 3)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < least:
            raise InvalidScanConfig(name, f"must be an integer ≥ {least}, got {v!r}")
    if toy_pars not in TOY_PARS:
        raise InvalidScanConfig("toy_pars", f"must be one of {TOY_PARS}, got {toy_pars!r}")
    return {"ntoys": int(ntoys), "seed": int(seed), "npoints": int(npoints), "toy_pars": toy_pars}


def toy_chunk(toys, lanes=8192) -> int:
    """Hypotheses per chunk of a toy scan: about ``lanes`` toy fits in flight per call
    (2 sets × grid points × toys per hypothesis), at least 1."""
    return max(1, lanes // (2 * toys["npoints"] * toys["ntoys"]))


def mass_scan_identity(
    scan: MassScan, masses, *, cl=(0.95,), config=None, rule="cls", toys=None
) -> ScanIdentity:
    """What :func:`mass_scan` stores as its identity: configuration
    ``{"kind": "mass", "cl": [...], **config}`` (plus ``"rule"`` when not CLs and ``"toys"``
    with toy options), hypotheses ``{"mass": masses}`` and the model digest
    :func:`scan_digest` (scan)."""
    cl = tuple(float(x) for x in np.atleast_1d(cl))
    extra = {} if rule == "cls" else {"rule": rule}
    if toys is not None:
        extra["toys"] = dict(toys)
    return ScanIdentity(
        config={"kind": "mass", "cl": list(cl), **extra, **(config or {})},
        hypotheses={"mass": np.asarray(masses, float)},
        digest=lambda: scan_digest(scan),
        added=("kind", "cl"),
    )


def mass_scan(
    scan: MassScan | Envelope,
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
    rule="cls",
    toys=None,
) -> MassScanResult:
    """Fit, local significance and observed/expected CLs limits at every mass.

    ``rule="clsb"``: one-sided profile-likelihood limits (CLs+b = α) instead of CLs.
    ``scan`` may be an :class:`~jaxlike.parametric.Envelope` of background models: every mass
    then fits all of them in the same compiled call and combines them
    (:func:`~jaxlike.parametric.envelope_results`; fields ``bkg_model`` …, the model names and
    method in the file's attributes); not with ``toys``.
    ``toys``: toy options (:func:`toy_options`: ``ntoys``, ``seed``, ``npoints``,
    ``toy_pars``) — every mass then also gets toy-based limits on a grid around its
    asymptotic limits and a toy p0 (fields :data:`jaxlike.infer.TOY_SCAN_FIELDS`), the default
    chunk holding about 8192 toy fits (:func:`toy_chunk`).

    One compiled, vmapped :func:`~jaxlike.parametric.hypothesis_results` serves every chunk
    (and later calls with the same scan and levels; default chunks of
    :func:`default_mass_chunk` hypotheses; a resume keeps the file's);
    results are a :class:`MassScanResult` of arrays [H, ...] (fields
    :data:`~jaxlike.parametric.RESULT_FIELDS`; ``ul_*`` have an axis over ``cl``) and, with
    ``store``, an HDF5 file whose attributes hold the configuration
    (:func:`mass_scan_identity`), the model digest and the CL levels (see
    :func:`~jaxlike.stream.run_scan`).
    """
    cl = tuple(float(x) for x in np.atleast_1d(cl))
    check_rule(rule)
    attrs = {"kind": "mass", "cl": list(cl), "rule": rule}
    if isinstance(scan, Envelope):
        if toys is not None:
            from ..exceptions import InvalidScanConfig

            raise InvalidScanConfig("envelope", "toy-based limits of an envelope are not "
                                    "available; scan each background model with toys")  # fmt: skip
        attrs |= {"bkg_models": list(scan.names), "envelope_method": scan.method,
                  "envelope_penalty": float(scan.penalty)}  # fmt: skip
    if toys is not None:
        toys = toy_options(**toys)
    ident = mass_scan_identity(scan, masses, cl=cl, config=config, rule=rule, toys=toys)
    digest = ident.digest()
    if chunk_size is None and memory_budget_bytes is None:  # a resume keeps its file's chunk
        stored = None if store is None else resume_chunk_size(store, resume=resume)
        chunk_size = stored or (default_mass_chunk() if toys is None else toy_chunk(toys))
    out = run_scan(
        _scan_fn(scan, cl, rule, toys),
        ident.hypotheses,
        operands=scan,
        program=_scan_program(scan, cl, rule, toys),
        store=store,
        resume=resume,
        overwrite=overwrite,
        chunk_size=chunk_size,
        memory_budget_bytes=memory_budget_bytes,
        devices=devices,
        progress=progress,
        config=ident.config,
        model_digest=digest,
        attrs=attrs,
    )
    return MassScanResult.from_results(out)
