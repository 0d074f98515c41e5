"""Results storage of hypothesis scans: one HDF5 file per scan, filled chunk by chunk.

Layout (``format_version`` 1)::

    /hypotheses/<name>   [H, ...]   the scanned coordinates (one dataset per pytree leaf)
    /results/<name>      [H, ...]   per-hypothesis results, preallocated with a fill value
    /done                [H] bool   row i holds its final result
    attrs: config (canonical JSON), config_digest = sha256(config), model_digest,
           jaxlike_version, jax_version, created (UTC, ISO 8601), format_version, user attrs

A leaf of a nested hypothesis pytree is named by its key path joined with ``/`` (so
``{"sig": {"yield": a}}`` is stored as ``hypotheses/sig/yield``); a bare array is named
``hypothesis``. Fill values: NaN for floating/complex results, the dtype's minimum (signed
integers) or maximum (unsigned), ``False`` for booleans.

Crash safety. The file is built under a temporary name and renamed into place, so a failed
creation leaves nothing at ``path``. Every dataset is allocated at creation (HDF5 early
allocation), so later writes only overwrite raw bytes at fixed offsets and never touch file
metadata; :meth:`ScanStore.write_chunk` writes the results, flushes, then sets ``done`` and
flushes again. A process killed at any instant (SIGKILL included) therefore leaves a readable
file in which every row marked done holds its result; rows already done are never rewritten.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import secrets
from pathlib import Path

import h5py
import jax
import numpy as np

from ..exceptions import InvalidScanConfig, InvalidScanFile

__all__ = ["FORMAT_VERSION", "ScanStore", "canonical_json", "merge_stores", "read_results"]

FORMAT_VERSION = 1
_RESERVED = "config config_digest model_digest jaxlike_version jax_version created format_version"
_RESERVED = tuple(_RESERVED.split())


def canonical_json(config) -> str:
    """The canonical JSON text of a scan configuration: sorted keys, no whitespace, no NaN.

    NumPy scalars and arrays are converted to Python numbers and lists. Two configurations
    are the same scan iff their canonical JSON (hence their sha256 ``config_digest``) agree.
    """

    def default(obj):
        if isinstance(obj, np.generic | np.ndarray):
            return obj.tolist()
        raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")

    try:
        return json.dumps(
            {} if config is None else config,
            sort_keys=True,
            separators=(",", ":"),
            allow_nan=False,
            default=default,
        )
    except (TypeError, ValueError) as e:
        raise InvalidScanConfig("config", f"not canonical JSON: {e}") from None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _key_name(key) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def flatten_hypotheses(hypotheses) -> tuple[dict[str, np.ndarray], int]:
    """``({name: array [H, ...]}, H)`` of a hypothesis pytree; checks the common leading axis."""
    leaves = jax.tree_util.tree_flatten_with_path(hypotheses)[0]
    if not leaves:
        raise InvalidScanConfig("hypotheses", "no arrays to scan over")
    flat = {}
    for path, leaf in leaves:
        name = "/".join(_key_name(k) for k in path) or "hypothesis"
        arr = np.asarray(leaf)
        if arr.ndim == 0 or arr.dtype.kind not in "biufc":
            raise InvalidScanConfig(
                f"hypotheses/{name}", f"need a numeric array with a leading axis, got {arr.dtype}"
            )
        flat[name] = arr
    sizes = {name: a.shape[0] for name, a in flat.items()}
    if len(set(sizes.values())) != 1 or 0 in sizes.values():
        raise InvalidScanConfig("hypotheses", f"leading axes must agree and be > 0: {sizes}")
    return flat, next(iter(sizes.values()))


def _normalise_spec(result_spec) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    spec = {}
    for name, (shape, dtype) in result_spec.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise InvalidScanConfig(f"results/{name}", "result names must be strings without '/'")
        spec[name] = (tuple(int(s) for s in shape), np.dtype(dtype))
    return spec


def _fill_value(dtype: np.dtype):
    if dtype.kind in "fc":
        return np.nan
    if dtype.kind == "i":
        return np.iinfo(dtype).min
    if dtype.kind == "u":
        return np.iinfo(dtype).max
    return False


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [a, b) ranges of consecutive True entries of a 1-D boolean mask."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _early(dtype, shape, fill):
    """Dataset creation properties: storage allocated and filled at creation."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    return {"shape": shape, "dtype": dtype, "fillvalue": fill, "dcpl": dcpl}


def _write_layout(f, hyps, n, spec, config_text, model_digest, attrs):
    """Fill a new (temporary) file: hypotheses, NaN-filled results, ``done`` and attributes."""
    import jaxlike  # late: the package is fully imported by the time a store is created

    for name, arr in hyps.items():
        f.create_dataset(f"hypotheses/{name}", data=arr)
    for name, (shape, dtype) in spec.items():
        f.create_dataset(f"results/{name}", **_early(dtype, (n, *shape), _fill_value(dtype)))
    f.create_dataset("done", **_early(bool, (n,), False))
    created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    meta = {
        "config": config_text,
        "config_digest": _digest(config_text),
        "model_digest": str(model_digest),
        "jaxlike_version": jaxlike.__version__,
        "jax_version": jax.__version__,
        "created": created,
        "format_version": FORMAT_VERSION,
    }
    for key, value in (attrs or {}).items():
        if key in _RESERVED:
            raise InvalidScanConfig(f"attrs/{key}", "reserved attribute name")
        try:
            f.attrs[key] = value
        except (TypeError, ValueError) as e:
            raise InvalidScanConfig(f"attrs/{key}", f"not storable in HDF5: {e}") from None
    f.attrs.update(meta)


def _publish(tmp: Path, path: Path, overwrite: bool):
    """Move the finished temporary file to ``path`` (without ``overwrite``, atomically refusing
    to clobber an existing file); the caller removes ``tmp`` if it is still there."""
    if not overwrite:
        try:
            return os.link(tmp, path)  # fails if path exists
        except FileExistsError:
            raise InvalidScanFile(_exists_message(path)) from None
        except OSError:  # a filesystem without hard links
            if path.exists():
                raise InvalidScanFile(_exists_message(path)) from None
    os.replace(tmp, path)


def _exists_message(path) -> str:
    return (
        f"{path} already exists; pass resume=True to continue that scan "
        f"or overwrite=True to replace it"
    )


def _open(path, mode) -> h5py.File:
    if not Path(path).exists():
        raise InvalidScanFile(f"{path}: no such scan file")
    try:
        return h5py.File(path, mode)
    except (OSError, ValueError) as e:
        raise InvalidScanFile(f"{path}: not a readable HDF5 file ({_one_line(e)})") from None


def _datasets(group) -> dict[str, h5py.Dataset]:
    names = []
    group.visit(names.append)
    return {k: group[k] for k in names if isinstance(group[k], h5py.Dataset)}


class ScanStore:
    """An open scan results file (see the module docstring for layout and crash safety).

    Create with :meth:`create` or :meth:`open_for_resume`, write with :meth:`write_chunk`,
    close with :meth:`close` (or use it as a context manager). ``done`` is the in-memory copy of
    the file's ``done`` mask; ``attrs`` its attributes; ``result_spec`` maps each result name
    to (shape per hypothesis, dtype).

    Example::

        with ScanStore.create("scan.h5", {"mass": masses}, {"cls": ((), "f8")},
                              config={"cl": 0.95}, model_digest=digest) as st:
            st.write_chunk(0, {"cls": cls_of_first_chunk})
    """

    def __init__(self, file: h5py.File, path):
        self.path = Path(path)
        self._file = file
        try:
            self.done = np.asarray(file["done"][...], dtype=bool)
            self._results = _datasets(file["results"])
            hyps = _datasets(file["hypotheses"])
            self.attrs = {k: _plain(v) for k, v in file.attrs.items()}
            missing = [k for k in _RESERVED if k not in self.attrs]
            if missing or self.done.ndim != 1 or not self._results or not hyps:
                raise KeyError(f"missing attributes {missing}" if missing else "bad layout")
            for name, ds in {**hyps, **self._results}.items():
                if ds.shape[:1] != self.done.shape:
                    raise KeyError(f"{name} has {ds.shape[0]} rows, done has {self.done.size}")
            self._hyp_names = sorted(hyps)
        except (KeyError, OSError, ValueError, TypeError, AttributeError) as e:
            file.close()
            raise InvalidScanFile(f"{path}: not a jaxlike scan file ({_one_line(e)})") from None
        self.result_spec = {k: (ds.shape[1:], ds.dtype) for k, ds in self._results.items()}

    @classmethod
    def create(
        cls,
        path,
        hypotheses,
        result_spec,
        *,
        config=None,
        model_digest: str = "",
        attrs=None,
        overwrite: bool = False,
    ) -> ScanStore:
        """Create the file of a new scan and open it for writing.

        Args:
            path: the final file name; built as a temporary file in the same folder and renamed
                into place, so a failed creation leaves no file behind.
            hypotheses: pytree of arrays with a common leading axis H (written up front).
            result_spec: ``{name: (shape per hypothesis, dtype)}``; ``results/<name>`` is
                preallocated [H, *shape] with the fill value.
            config: JSON-serialisable scan configuration (stored as canonical JSON + sha256).
            model_digest: a digest of the model/workspace, checked on resume.
            attrs: extra descriptive attributes (e.g. ``{"cl": 0.95}``); anything that changes
                the results belongs in ``config``, which resume checks.
            overwrite: replace an existing file; otherwise an existing ``path`` is refused with
                :class:`~jaxlike.exceptions.InvalidScanFile`.
        """
        path = Path(path)
        hyps, n = flatten_hypotheses(hypotheses)
        spec = _normalise_spec(result_spec)
        text = canonical_json(config)
        if path.exists() and not overwrite:
            raise InvalidScanFile(_exists_message(path))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            with h5py.File(tmp, "w") as f:
                _write_layout(f, hyps, n, spec, text, model_digest, attrs)
            _publish(tmp, path, overwrite)
        finally:
            tmp.unlink(missing_ok=True)
        return cls(_open(path, "r+"), path)

    @classmethod
    def open_for_resume(
        cls, path, *, hypotheses, config=None, model_digest: str = "", result_spec=None
    ) -> ScanStore:
        """Open an existing scan file for writing the rows it has not done yet.

        Refuses (:class:`~jaxlike.exceptions.InvalidScanFile`, one line naming the field) a file
        whose config digest, model digest, hypothesis coordinates or result names/shapes/dtypes
        (when ``result_spec`` is given) differ from this scan's, and an unreadable, truncated
        or incomplete file.
        """
        store = cls.open(path, "r+")
        try:
            store.check_same_scan(hypotheses, config, model_digest, result_spec)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def open(cls, path, mode: str = "r") -> ScanStore:
        """Open an existing scan file as is (``mode`` "r" or "r+"), checking only its layout."""
        return cls(_open(path, mode), path)

    def check_same_scan(self, hypotheses, config=None, model_digest: str = "", result_spec=None):
        """Raise :class:`~jaxlike.exceptions.InvalidScanFile` (naming the field) unless this file
        belongs to the scan described by the arguments (see :meth:`open_for_resume`)."""
        where = f"{self.path}: cannot resume, "
        text = canonical_json(config)
        if self.attrs["format_version"] != FORMAT_VERSION:
            raise InvalidScanFile(where + f"format_version is {self.attrs['format_version']}")
        if self.attrs["config_digest"] != _digest(text):
            old, new = json.loads(self.attrs["config"]), json.loads(text)
            keys = ["<top level>"]
            if isinstance(old, dict) and isinstance(new, dict):
                keys = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
            raise InvalidScanFile(where + f"config digest differs (keys {keys})")
        if self.attrs["model_digest"] != str(model_digest):
            raise InvalidScanFile(
                where + f"model digest differs (file {self.attrs['model_digest']!r}, "
                f"this scan {str(model_digest)!r})"
            )
        hyps, _ = flatten_hypotheses(hypotheses)
        if sorted(hyps) != self._hyp_names:
            raise InvalidScanFile(
                where
                + f"hypothesis names differ (file {self._hyp_names}, this scan {sorted(hyps)})"
            )
        for name, arr in hyps.items():
            old = self._file["hypotheses"][name][...]
            if old.shape != arr.shape or not np.array_equal(old, arr, equal_nan=True):
                raise InvalidScanFile(where + f"hypothesis coordinates '{name}' differ")
        if result_spec is not None:
            spec = _normalise_spec(result_spec)
            if spec != self.result_spec:
                diff = sorted(
                    k for k in {*spec, *self.result_spec} if spec.get(k) != self.result_spec.get(k)
                )
                raise InvalidScanFile(where + f"result names/shapes/dtypes differ: {diff}")

    def write_chunk(self, start: int, results) -> int:
        """Store the results of rows [start, start + n) and mark them done; returns how many
        rows were newly written.

        Rows already done are skipped (never rewritten). Order on disk: results, flush, ``done``,
        flush, so a kill at any point never marks a row done without its result.
        """
        values = {k: np.asarray(v) for k, v in results.items()}
        shapes = {k: v.shape for k, v in values.items()}
        rows = {v.shape[0] if v.ndim else -1 for v in values.values()}
        n = rows.pop() if len(rows) == 1 else -1
        if set(values) != set(self.result_spec) or not 0 <= start <= start + n <= len(self.done):
            raise InvalidScanConfig(
                "results",
                f"need {sorted(self.result_spec)}, equally long and within "
                f"{len(self.done)} rows from {start}; got {shapes}",
            )
        runs = _runs(~self.done[start : start + n])
        for a, b in runs:
            for name, ds in self._results.items():
                shape, dtype = self.result_spec[name]
                ds[start + a : start + b] = values[name][a:b].reshape(b - a, *shape).astype(dtype)
        self._file.flush()
        for a, b in runs:
            self._file["done"][start + a : start + b] = True
            self.done[start + a : start + b] = True
        self._file.flush()
        return int(sum(b - a for a, b in runs))

    def read_results(self) -> dict[str, np.ndarray]:
        """``{name: array [H, ...]}`` of all results (rows not done hold the fill value)."""
        return {name: ds[...] for name, ds in self._results.items()}

    def read_hypotheses(self) -> dict[str, np.ndarray]:
        """``{name: array [H, ...]}`` of the stored hypothesis coordinates."""
        return {name: self._file["hypotheses"][name][...] for name in self._hyp_names}

    def close(self):
        """Flush and close the file (idempotent)."""
        if self._file.id.valid:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_results(path) -> tuple[dict, dict, dict]:
    """``(hypotheses, results, attrs)`` of a scan file, as NumPy arrays and Python values.

    ``attrs["config"]`` is the parsed configuration (a dict) and ``attrs["done"]`` the boolean
    mask of rows holding final results (the others hold the fill value).
    """
    store = ScanStore.open(path)
    try:
        attrs = dict(store.attrs, config=json.loads(store.attrs["config"]), done=store.done.copy())
        return store.read_hypotheses(), store.read_results(), attrs
    except (OSError, ValueError) as e:
        raise InvalidScanFile(f"{path}: unreadable data ({_one_line(e)})") from None
    finally:
        store.close()


def merge_stores(paths, out, *, overwrite: bool = False) -> Path:
    """Merge per-process scan files of one scan (``scan.p0.h5``, ``scan.p1.h5``, ...) into ``out``.

    Every input must come from the same scan (config digest, model digest, hypotheses and
    result spec), else :class:`~jaxlike.exceptions.InvalidScanFile` names the file and field.
    A row is done in ``out`` if it is done in any input (the first such input supplies it);
    user attributes come from the first file. Returns ``Path(out)``.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InvalidScanConfig("paths", "nothing to merge")
    with ScanStore.open(paths[0]) as first:
        hyps, config = first.read_hypotheses(), json.loads(first.attrs["config"])
        digest, spec = first.attrs["model_digest"], first.result_spec
        user = {k: v for k, v in first.attrs.items() if k not in _RESERVED}
    with ScanStore.create(
        out, hyps, spec, config=config, model_digest=digest, attrs=user, overwrite=overwrite
    ) as merged:
        for p in paths:
            with ScanStore.open(p) as src:
                src.check_same_scan(hyps, config, digest, spec)
                for a, b in _runs(src.done):
                    merged.write_chunk(int(a), {k: ds[a:b] for k, ds in src._results.items()})
    return Path(out)
