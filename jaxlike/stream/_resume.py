"""The resume rule of a stored scan, and the digest that identifies a model.

A scan file may be continued only by the scan that wrote it: the same configuration (its
canonical JSON, whole floats as integers, see :func:`~jaxlike.stream.config_digest`), the same
model (:func:`tree_digest` of the model and data), the same hypotheses and the same chunk size
(results depend on it in the last digits; a resume without an explicit chunk size uses the
file's, :func:`resume_chunk_size`). :func:`check_resume` applies the rule before anything is
compiled, naming the first differing configuration field, and returns the results of a file
that is already complete (every row done and passing its checksum), so nothing is recomputed.
"""

from __future__ import annotations

import json
from pathlib import Path

import equinox as eqx
import jax

from .._strict import digest
from ..exceptions import InvalidScanFile
from ._store import ScanStore, canonical_json

__all__ = [
    "check_resume",
    "config_differences",
    "resume_chunk_size",
    "stored_chunk_size",
    "tree_digest",
]


def tree_digest(obj) -> str:
    """sha256 over the static structure and every array leaf (dtype, shape, bytes) of a
    pytree: two scans with the same digest compute the same numbers. It is the
    ``model_digest`` of scan files, used to refuse resuming a file written by another model.

    sha256(str(treedef) ‖ str(static part) ‖ dtype·shape·bytes of each leaf), the pytree split
    by ``equinox.partition(obj, equinox.is_array)``."""
    leaves, treedef = jax.tree.flatten(eqx.filter(obj, eqx.is_array))
    return digest(str(treedef), str(eqx.partition(obj, eqx.is_array)[1]), *leaves)


def stored_chunk_size(path):
    """The chunk size recorded in an existing scan file, or None (not recorded, unreadable:
    the file is checked properly when it is opened for resume)."""
    try:
        with ScanStore.open(path) as st:
            return int(st.attrs.get("chunk_size", 0) or 0) or None
    except InvalidScanFile:
        return None


def resume_chunk_size(path, chunk_size=None, memory_budget_bytes=None, *, resume=False):
    """The chunk size to run with: ``chunk_size`` as given, except that a resume of an
    existing file without ``chunk_size`` and ``memory_budget_bytes`` uses the file's own
    (:func:`stored_chunk_size`), which a resume must use."""
    if chunk_size is None and memory_budget_bytes is None and resume and Path(path).exists():
        return stored_chunk_size(path)
    return chunk_size


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def config_differences(old, new, where="") -> list[str]:
    """Dotted paths, with both values, where two JSON documents differ (``a.b (file 1, now
    2)``, ``a.c (present in the file, absent now)``); 20 and 20.0 are the same value (as for
    the config digest), lists longer than 8 entries or holding containers are compared entry
    by entry."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted({*old, *new}, key=str):
            key = f"{where}.{k}" if where else str(k)
            if k not in old or k not in new:
                state = {True: "present", False: "absent"}
                out.append(f"{key} ({state[k in old]} in the file, {state[k in new]} now)")
            else:
                out += config_differences(old[k], new[k], key)
        return out
    long = isinstance(old, list) and (len(old) > 8 or any(isinstance(v, list | dict) for v in old))
    if long and isinstance(new, list) and len(old) == len(new):
        return [
            d
            for i, (a, b) in enumerate(zip(old, new, strict=True))
            for d in config_differences(a, b, f"{where}[{i}]")
        ]
    if old == new and (type(old) is type(new) or _number(old) and _number(new)):
        return []

    def short(v):
        text = json.dumps(v)
        return text if len(text) <= 40 else text[:37] + "..."

    return [f"{where or '<top level>'} (file {short(old)}, now {short(new)})"]


def check_resume(
    path,
    config,
    hypotheses,
    model_digest,
    *,
    added=(),
    hint="pass overwrite=True or another file",
):
    """Apply the resume rule to ``path`` before anything is compiled.

    Refuses (:class:`~jaxlike.exceptions.InvalidScanFile`) a file written with another
    configuration, naming the first differing field (fields not in ``added``, the keys the
    scan function adds to the user's configuration, first), then ``hint``; a file of another
    model, hypotheses or format (:meth:`~jaxlike.stream.ScanStore.check_same_scan`).
    ``model_digest`` is the digest or a function returning it (computed only if the
    configuration agrees). Returns None when there is no file yet or rows remain to be
    computed (damaged rows included), else the complete results ``{name: array [H, ...]}``.
    """
    path = Path(path)
    if not path.exists():
        return None
    with ScanStore.open(path) as store:
        now = json.loads(canonical_json(config))
        diff = config_differences(json.loads(store.attrs["config"]), now)
        diff.sort(key=lambda d: d.split()[0].split("[")[0] in added)  # the user's fields first
        if diff:
            more = f" and {len(diff) - 1} more" if len(diff) > 1 else ""
            raise InvalidScanFile(
                f"cannot resume {path}: it was written with another config, {diff[0]}{more}; "
                + hint
            )
        if callable(model_digest):
            model_digest = model_digest()
        store.check_same_scan(hypotheses, config, model_digest)
        if not store.done.all():
            return None
        results = store.read_results(verify=False)
        return None if store.verify(results).size else results
