"""Patch-based scans (HEPData signal grids) as streams.

A background-only workspace plus one signal patch per hypothesis (a pyhf PatchSet or plain
patch files) is brought to one model layout by :func:`jaxlike.unify_patches`; the patched
models are stacked along a hypothesis axis, so one compiled, vmapped function computes the CLs
at the test POI and the observed/expected upper limits of every hypothesis, chunk by chunk
through :func:`~jaxlike.stream.run_scan` (sharded, stored in HDF5, resumable).
"""

from __future__ import annotations

import re
from pathlib import Path

import jax
import numpy as np

from ..exceptions import InvalidPatch
from ..model import stack_models
from ..stream import run_scan
from ..workspace import PatchSet, Workspace, digest, load_patch, unify_patches
from ._identity import ScanIdentity
from ._mass import DEFAULT_SCAN_CHUNK, check_rule, scan_digest, toy_chunk, toy_options
from ._results import PatchScanResult
from ._stacked import stacked_hypothesis

__all__ = [
    "load_patch_folder",
    "patch_name_values",
    "patch_scan",
    "patch_scan_identity",
    "stack_patched_models",
]

_NUMBER = re.compile(r"m?\d+(?:p\d+)?")


def patch_name_values(stems: list[str]) -> tuple[list[list[float]], list[str]]:
    """Coordinates from HEPData file names (``patch.ERJR_100p0_20p0`` → 100.0, 20.0; ``p`` is
    the decimal point, a leading ``m`` a minus) when every name has the same number of numeric
    fields and no two agree, labelled ``x0``, ``x1``, ...; otherwise the index of each file,
    labelled ``index``."""

    def numbers(stem):
        fields = [f for f in stem.split("_") if _NUMBER.fullmatch(f)]
        return tuple(float(f.replace("m", "-").replace("p", ".")) for f in fields)

    values = [numbers(s) for s in stems]
    k = {len(v) for v in values}
    if len(k) == 1 and k != {0} and len(set(values)) == len(values):
        return [list(v) for v in values], [f"x{j}" for j in range(k.pop())]
    return [[float(i)] for i in range(len(stems))], ["index"]


def load_patch_folder(folder, workspace: Workspace) -> PatchSet:
    """A :class:`~jaxlike.workspace.PatchSet` of the JSON patch files in ``folder``.

    Files ``*.json`` in name order, each a plain list of operations (or one patchset entry);
    a patch is named after its file (``patch.`` prefix dropped, other characters than
    letters, digits and ``_`` replaced by ``_``), its coordinates come from the name
    (:func:`patch_name_values`), and the patchset records the sha256 digest of ``workspace``.
    Raises :class:`~jaxlike.exceptions.InvalidPatch` naming the folder or file: no such
    folder, no patch file, a whole patchset among the files, an invalid patch."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidPatch(str(folder), "no such folder of patch files")
    files = sorted(folder.glob("*.json"))
    if not files:
        raise InvalidPatch(str(folder), "no *.json patch files")
    ops = []
    for f in files:
        try:
            ops.append(load_patch(f))
        except InvalidPatch as err:
            if err.path == "patches":
                raise InvalidPatch(str(f), "a patchset; pass it with --patchset") from None
            raise InvalidPatch(str(f), str(err)) from None
    stems = [re.sub(r"\W", "_", f.stem.removeprefix("patch.")) for f in files]
    values, labels = patch_name_values(stems)
    entries = [
        {"metadata": {"name": n, "values": v}, "patch": o}
        for n, v, o in zip(stems, values, ops, strict=True)
    ]
    meta = {
        "description": f"patch files in {folder}",
        "digests": {"sha256": digest(workspace.to_dict(), "sha256")},
        "labels": labels,
    }
    return PatchSet({"metadata": meta, "patches": entries, "version": "1.0.0"})


def _named(patches):
    """(names, coordinates [H, k], patch objects) of a PatchSet or a list of patches."""
    if isinstance(patches, PatchSet):
        plist = list(patches)
        try:
            values = np.asarray([[float(v) for v in p.values] for p in plist], float)
        except ValueError:  # text coordinates (e.g. model names): use the index
            values = np.arange(len(plist), dtype=float)[:, None]
        return [p.name for p in plist], values, plist
    plist = list(patches)
    names = [getattr(p, "name", None) or f"patch_{i}" for i, p in enumerate(plist)]
    return names, np.arange(len(plist), dtype=float)[:, None], plist


def stack_patched_models(workspace: Workspace, patches, signal_name="signal"):
    """(stacked model, stacked data [H, n], names, coordinates [H, k]) of the unified patches.

    Raises :class:`~jaxlike.exceptions.InvalidPatch` when the unified models still differ in
    layout (e.g. a patch lacks a staterror its siblings carry on the signal sample)."""
    names, values, plist = _named(patches)
    if not plist:
        raise InvalidPatch("patches", "no patches given")
    spaces = [Workspace(s) for s in unify_patches(workspace, plist, signal_name=signal_name)]
    models = [w.model() for w in spaces]
    for i, m in enumerate(models[1:], 1):
        if m.config != models[0].config or m.wiring != models[0].wiring:
            raise InvalidPatch(
                f"patches[{i}]",
                f"{names[i]} does not share the layout of {names[0]} after unification",
            )
    data = np.stack([np.asarray(w.data(m)) for w, m in zip(spaces, models, strict=True)])
    return stack_models(models), data, names, values


def _identity(
    names, values, cl, test_poi, poi_max, config, model_digest, rule="cls", toys=None
) -> ScanIdentity:
    cfg = {"kind": "patches", "cl": list(cl), "test_poi": float(test_poi)}
    if poi_max is not None:
        cfg["poi_max"] = float(poi_max)
    if rule != "cls":
        cfg["rule"] = rule
    if toys is not None:
        cfg["toys"] = dict(toys)
    cfg.update(config or {})
    hyps = {"index": np.arange(len(names)), "values": values}
    added = ("kind", "cl", "test_poi", "poi_max", "rule", "toys")
    return ScanIdentity(cfg, hyps, model_digest, added)


def patch_scan_identity(
    workspace: Workspace,
    patches,
    *,
    cl=(0.95,),
    test_poi=1.0,
    poi_max=None,
    config=None,
    signal_name="signal",
    rule="cls",
    toys=None,
) -> ScanIdentity:
    """What :func:`patch_scan` stores as its identity: configuration ``{"kind": "patches",
    "cl", "test_poi"[, "poi_max"], **config}``, hypotheses ``index`` and ``values`` (the
    patches' coordinates) and the model digest of the stacked, unified patched models and
    their data (built only when the digest is asked for)."""
    cl = tuple(float(x) for x in np.atleast_1d(cl))
    names, values, _ = _named(patches)

    def model_digest():
        stacked, data, _, _ = stack_patched_models(workspace, patches, signal_name)
        return scan_digest((stacked, data))

    return _identity(names, values, cl, test_poi, poi_max, config, model_digest, rule, toys)


def patch_scan(
    workspace: Workspace,
    patches,
    *,
    cl=(0.95,),
    test_poi=1.0,
    store=None,
    resume=False,
    overwrite=False,
    chunk_size=None,
    memory_budget_bytes=None,
    devices=None,
    progress=True,
    config=None,
    signal_name="signal",
    poi_max=None,
    rule="cls",
    toys=None,
) -> PatchScanResult:
    """CLs at ``test_poi`` (q̃μ, observed + 5 expected) and observed/expected upper limits at
    every level of ``cl`` for every patch, in one compiled vmapped function.

    Returns a :class:`PatchScanResult`: ``cls_obs`` [H], ``cls_exp`` [H, 5], ``ul_obs``
    [H, ncl], ``ul_exp`` [H, ncl, 5], ``mu_hat`` [H], ``cls_converged`` [H],
    ``limit_converged`` [H, ncl], ``converged`` [H]; the store
    holds hypotheses ``index`` and ``values`` (PatchSet coordinates, or the index for plain
    patches) and the patch names in the attribute ``patch_names``.

    Limits are searched in [0, POI upper bound] (as pyhf's toms748 scan does; a limit above it
    is NaN, ``limit_converged`` False); ``poi_max`` widens the search to [0, poi_max] — the
    conditional fits then hold the POI beyond its declared bound.

    ``rule="clsb"``: limits where CLs+b = α (one-sided profile likelihood). ``toys``: toy
    options (:func:`~jaxlike.scan.toy_options`) — every patch also gets toy limits and a toy
    p0 (:data:`jaxlike.infer.TOY_SCAN_FIELDS`), toys keyed to the patch index.
    """
    cl = tuple(float(x) for x in np.atleast_1d(cl))
    check_rule(rule)
    if toys is not None:
        toys = toy_options(**toys)
    stacked, data, names, values = stack_patched_models(workspace, patches, signal_name)
    single = stacked_hypothesis(
        stacked, data, cl=cl, methods=("cls", "toys") if toys else ("cls",),
        test_poi=test_poi, poi_max=poi_max, rule=rule, toys=toys,
    )  # fmt: skip
    ident = _identity(names, values, cl, test_poi, poi_max, config, None, rule, toys)
    if chunk_size is None and memory_budget_bytes is None:
        chunk_size = DEFAULT_SCAN_CHUNK if toys is None else toy_chunk(toys)
    out = run_scan(
        jax.vmap(single),
        ident.hypotheses,
        store=store,
        resume=resume,
        overwrite=overwrite,
        chunk_size=chunk_size,
        memory_budget_bytes=memory_budget_bytes,
        devices=devices,
        progress=progress,
        config=ident.config,
        model_digest=scan_digest((stacked, data)),
        attrs={"kind": "patches", "cl": list(cl), "patch_names": names, "rule": rule},
    )
    return PatchScanResult.from_results(out)
