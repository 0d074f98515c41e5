"""Results storage of hypothesis scans: one HDF5 file per scan, filled chunk by chunk.

Layout (``format_version`` 2)::

    /hypotheses/<name>   [H, ...]   the scanned coordinates (one dataset per pytree leaf)
    /results/<name>      [H, ...]   per-hypothesis results, preallocated with a fill value
    /done                [H] bool   row i holds its final result
    /row_crc32           [H] uint32 checksum of row i (see Integrity), 0 until it is done
    attrs: config (canonical JSON), config_digest, model_digest, jaxlike_version, jax_version,
           created (UTC, ISO 8601), format_version, chunk_size, user attrs

A leaf of a nested hypothesis pytree is named by its key path joined with ``/`` (so
``{"sig": {"yield": a}}`` is stored as ``hypotheses/sig/yield``); a bare array is named
``hypothesis``. Fill values: NaN for floating/complex results, the dtype's minimum (signed
integers) or maximum (unsigned), ``False`` for booleans.

Identity. ``config_digest`` is the sha256 of the canonical JSON of the configuration with every
whole float written as an integer (:func:`config_digest`), so ``lo = 20`` and ``lo = 20.0`` are
the same scan. ``chunk_size`` is the number of rows per vmapped call that computed the file:
batched fits iterate in lockstep and XLA compiles each batch size differently, so results may
differ in the last digits between chunk sizes, and a resume must use the file's chunk size.

Crash safety. The file is built under a temporary name and renamed into place, so a failed
creation leaves nothing at ``path``. Every dataset is allocated at creation (HDF5 early
allocation, contiguous layout), so later writes only overwrite raw bytes at fixed offsets and
never touch file metadata; :meth:`ScanStore.write_chunk` writes the results and their checksums,
flushes, then sets ``done`` and flushes again. A process killed at any instant (SIGKILL
included) therefore leaves a readable file in which every row marked done holds its result and
checksum; a row whose write was cut short is not marked done and is simply computed again.

Integrity. ``row_crc32[i]`` is the CRC-32 of row i: its index (int64), then the little-endian
bytes of its hypothesis coordinates and of its results, datasets in sorted name order. A done
row whose checksum does not match (a flipped bit on disk, a damaged copy, a ``done`` flag set
on a row never written) is *damaged*: :meth:`ScanStore.read_results` and :func:`read_results`
refuse the file with :class:`~jaxlike.exceptions.InvalidScanFile` naming the rows;
:meth:`ScanStore.open_for_resume` marks them not done (in the file too) and warns
(:class:`ScanFileWarning`), so the resumed scan computes them again; :func:`merge_stores`
refuses a damaged input. A per-row checksum rather than HDF5's Fletcher-32 filter, which needs
chunked storage whose chunk index is file metadata rewritten by writes.

The rest of the file is sealed: its first 4096 bytes (an HDF5 user block, which the HDF5
library skips) hold ``JAXLIKE-SCAN-SEAL``, the file size, the byte ranges of the datasets that
change after creation (results, ``done``, ``row_crc32``, the superblock's consistency flags)
and the CRC-32 of every other byte
(HDF5 metadata, coordinates, attributes), which never change after creation. Every open checks
the seal with plain reads *before* HDF5 sees the file, since a damaged object header or heap
can make the HDF5 library loop forever (a zeroed attribute heap did) or crash; a mismatch is
an :class:`~jaxlike.exceptions.InvalidScanFile`. Editing a file's attributes or datasets with
h5py breaks the seal, on purpose.

Older files. ``format_version`` 1 files (no checksums) are read with a
:class:`ScanFileWarning` that their rows cannot be verified; resuming or merging them is
refused (rerun the scan). Files of a newer format are refused.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import re
import secrets
import shutil
import sys
import warnings
import zlib
from pathlib import Path

import h5py
import jax
import numpy as np

from .._strict import canonical_json as _canonical_json
from .._strict import digest as _hash
from ..exceptions import InvalidScanConfig, InvalidScanFile, JaxlikeError

__all__ = [
    "FORMAT_VERSION",
    "ScanFileWarning",
    "ScanStore",
    "canonical_json",
    "check_chunk_size",
    "check_free_space",
    "config_digest",
    "flatten_hypotheses",
    "merge_stores",
    "read_results",
    "store_bytes",
]

FORMAT_VERSION = 2
_READABLE = (1, FORMAT_VERSION)  # format versions this jaxlike reads (1: without checksums)
_RESERVED = "config config_digest model_digest jaxlike_version jax_version created format_version"
_RESERVED_V1 = tuple(_RESERVED.split())
_RESERVED = (*_RESERVED_V1, "chunk_size")
_CHECKSUM = "row_crc32"
_SHOWN_ROWS = 10  # damaged rows named in a message
_MARGIN = 2**20  # bytes of HDF5 metadata and slack on top of the data of a new file


#: HDF5 user block of a format-2 file: jaxlike's seal (see Integrity in the module docstring)
_USERBLOCK = 4096
_SEAL_MAGIC = b"JAXLIKE-SCAN-SEAL\n"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: datasets whose raw bytes change after creation (left out of the seal)
_MUTABLE = ("results/", "done", _CHECKSUM)


def _mutable_ranges(f) -> list[tuple[int, int]]:
    """(offset, size) of the raw data of every dataset written after creation, and of the
    superblock's file-consistency flags, which the HDF5 library sets while a file is open for
    writing (and leaves set when the writer is killed)."""
    with open(f.filename, "rb") as fh:
        fh.seek(_USERBLOCK + 8)
        version = fh.read(1)
    # superblock v0/v1: 4 flag bytes at offset 20; v2/v3: flags at 11 and a checksum at 44
    ranges = [(_USERBLOCK + 20, 4)] if version in (b"\x00", b"\x01") else [(_USERBLOCK, 48)]

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and name.startswith(_MUTABLE):
            ranges.append((int(obj.id.get_offset()), int(obj.id.get_storage_size())))

    f.visititems(visit)
    return sorted(ranges)


def _sealed_crc(raw: bytes, ranges) -> int:
    """CRC-32 of the file after the user block, the mutable raw-data ranges left out."""
    crc, pos = 0, _USERBLOCK
    for off, size in ranges:
        crc = zlib.crc32(raw[pos:off], crc)
        pos = off + size
    return zlib.crc32(raw[pos:], crc)


def _seal(path: Path) -> None:
    """Write the seal of a just-created file into its user block: the file size, the mutable
    ranges and the CRC-32 of everything else (all HDF5 metadata, the hypotheses, attributes).
    Metadata never changes after creation (early allocation, fixed offsets)."""
    with h5py.File(path, "r+") as f:  # closing r+ trims the space reserved by _reserve
        ranges = _mutable_ranges(f)
    raw = path.read_bytes()
    body = json.dumps({"size": len(raw), "ranges": ranges, "crc32": _sealed_crc(raw, ranges)})
    block = _SEAL_MAGIC + body.encode() + b"\n"
    if len(block) > _USERBLOCK:
        raise InvalidScanFile(f"{path}: too many result datasets for the file seal")
    with open(path, "r+b") as fh:
        fh.write(block.ljust(_USERBLOCK, b"\0"))


def _check_seal(path) -> None:
    """Refuse a file whose sealed bytes changed, before HDF5 reads any of them: a damaged
    object header or heap can make the HDF5 library loop forever or crash, so the file is
    checked with plain reads first. A file starting with the HDF5 signature is an older,
    unsealed format (read by HDF5 as before)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_USERBLOCK)
            if head.startswith(_HDF5_SIGNATURE):
                return
            if not head.startswith(_SEAL_MAGIC):
                raise InvalidScanFile(f"{path}: not a jaxlike scan file (no seal, no HDF5 header)")
            try:
                seal = json.loads(head[len(_SEAL_MAGIC) :].split(b"\n", 1)[0])
                size, ranges, crc = int(seal["size"]), seal["ranges"], int(seal["crc32"])
                ranges = [(int(a), int(b)) for a, b in ranges]
            except (ValueError, KeyError, TypeError) as e:
                raise InvalidScanFile(f"{path}: damaged seal ({_one_line(e)})") from None
            fh.seek(0)
            raw = fh.read(size + 1)
    except OSError as e:
        raise InvalidScanFile(f"{path}: cannot read ({_os_reason(e)})") from None
    if len(raw) != size:
        raise InvalidScanFile(f"{path}: damaged: {len(raw)} bytes or more, sealed with {size}")
    if _sealed_crc(raw, ranges) != crc:
        raise InvalidScanFile(
            f"{path}: damaged: the file's structure (HDF5 metadata, coordinates or attributes) "
            "does not match its seal"
        )


class ScanFileWarning(UserWarning):
    """A scan file had damaged rows (recomputed on resume) or cannot be verified (an older
    format without row checksums)."""


def canonical_json(config) -> str:
    """The canonical JSON text of a scan configuration: sorted keys, no whitespace, no NaN
    (:func:`jaxlike._strict.canonical_json`, compact style; None is ``{}``).

    NumPy scalars and arrays are converted to Python numbers and lists. Two configurations
    are the same scan iff their canonical JSON (hence their sha256 ``config_digest``) agree.
    A value that is not JSON raises :class:`~jaxlike.exceptions.InvalidScanConfig`.
    """
    try:
        return _canonical_json({} if config is None else config)
    except (TypeError, ValueError) as e:
        raise InvalidScanConfig("config", f"not canonical JSON: {e}") from None


def _whole_floats_as_ints(obj):
    """``obj`` (parsed JSON) with every float holding a whole number written as an int."""
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)
    if isinstance(obj, dict):
        return {k: _whole_floats_as_ints(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_whole_floats_as_ints(v) for v in obj]
    return obj


def config_digest(config) -> str:
    """sha256 of the canonical JSON of ``config`` with whole floats written as integers: the
    identity of a scan configuration, so ``{"lo": 20}`` and ``{"lo": 20.0}`` agree (booleans
    stay distinct from 0 and 1)."""
    return _hash(canonical_json(_whole_floats_as_ints(json.loads(canonical_json(config)))))


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


def _row_bytes(arr) -> np.ndarray:
    """[n, k] uint8: the little-endian bytes of each row of ``arr`` [n, ...]."""
    a = np.asarray(arr)
    if a.dtype.kind == "b":
        a = a.astype(np.uint8)
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return a.reshape(a.shape[0], -1).view(np.uint8).reshape(a.shape[0], -1)


def _row_checksums(start: int, hyps: dict, results: dict) -> np.ndarray:
    """CRC-32 of rows [start, start + n): row index (int64), then the bytes of its hypothesis
    and result rows (``{name: array [n, ...]}``, each in sorted name order)."""
    n = len(next(iter(results.values())))
    index = np.arange(start, start + n, dtype="<i8")[:, None].view(np.uint8)
    parts = [index] + [_row_bytes(hyps[k]) for k in sorted(hyps)]
    rows = np.concatenate(parts + [_row_bytes(results[k]) for k in sorted(results)], axis=1)
    return np.fromiter((zlib.crc32(r) for r in rows), np.uint32, count=n)


def store_bytes(hypotheses, result_spec) -> int:
    """Size (bytes) of the data of a new scan file: hypotheses, results, ``done``, checksums
    (HDF5 metadata comes on top; a few kB)."""
    hyps, n = flatten_hypotheses(hypotheses)
    total = sum(a.nbytes for a in hyps.values()) + n * (1 + 4)
    for shape, dtype in _normalise_spec(result_spec).values():
        total += n * int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return int(total)


def check_free_space(path, nbytes: int):
    """Raise :class:`~jaxlike.exceptions.InvalidScanFile` unless the folder of ``path`` has
    room for ``nbytes`` plus a 1 MiB margin (checked before anything is compiled or written)."""
    folder = Path(path).parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:  # no such folder (reported when the file is created) or no statistics
        return
    need = int(nbytes) + _MARGIN
    if free < need:
        raise InvalidScanFile(
            f"{path}: not enough disk space in {folder} ({_size(free)} free, the results "
            f"file needs {_size(need)})"
        )


def _size(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def check_chunk_size(path, stored, chunk_size):
    """Raise :class:`~jaxlike.exceptions.InvalidScanFile` if a file computed in chunks of
    ``stored`` rows is resumed with chunks of ``chunk_size`` (0 or None: not recorded)."""
    stored, chunk_size = int(stored or 0), int(chunk_size or 0)
    if stored and chunk_size and stored != chunk_size:
        raise InvalidScanFile(
            f"{path}: cannot resume, chunk size differs (file {stored}, this scan {chunk_size}; "
            f"results depend on it in the last digits): resume with chunk size {stored}"
        )


def _write_layout(f, hyps, n, spec, config_text, model_digest, attrs, chunk_size=0):
    """Fill a new (temporary) file: hypotheses, NaN-filled results, ``done``, checksums and
    attributes."""
    version = sys.modules["jaxlike"].__version__  # the package is imported by now

    for name, arr in hyps.items():
        f.create_dataset(f"hypotheses/{name}", data=arr)
    for name, (shape, dtype) in spec.items():
        f.create_dataset(f"results/{name}", **_early(dtype, (n, *shape), _fill_value(dtype)))
    f.create_dataset("done", **_early(bool, (n,), False))
    f.create_dataset(_CHECKSUM, **_early(np.uint32, (n,), 0))
    created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    meta = {
        "config": config_text,
        "config_digest": config_digest(json.loads(config_text)),
        "model_digest": str(model_digest),
        "jaxlike_version": version,
        "jax_version": jax.__version__,
        "created": created,
        "format_version": FORMAT_VERSION,
        "chunk_size": int(chunk_size or 0),
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
    if not Path(path).is_file():
        raise InvalidScanFile(f"{path}: not a regular file")
    _check_seal(path)
    try:
        return h5py.File(path, mode)
    except (OSError, ValueError, RuntimeError) as e:
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
            self.attrs = {k: _plain(v) for k, v in file.attrs.items()}
            version = self.attrs.get("format_version")
            if version not in _READABLE and version is not None:
                raise _NewerFormat(f"format_version {version}")
            #: whether rows carry checksums (False: a format_version 1 file, not verifiable)
            self.verifiable = version != 1
            reserved = _RESERVED if self.verifiable else _RESERVED_V1
            self.done = np.asarray(file["done"][...], dtype=bool)
            self._results = _datasets(file["results"])
            hyps = _datasets(file["hypotheses"])
            self._checksum = file[_CHECKSUM] if self.verifiable else None
            missing = [k for k in reserved if k not in self.attrs]
            if missing or self.done.ndim != 1 or not self._results or not hyps:
                raise KeyError(f"missing attributes {missing}" if missing else "bad layout")
            extra = {_CHECKSUM: self._checksum} if self.verifiable else {}
            for name, ds in {**hyps, **self._results, **extra}.items():
                if ds.shape[:1] != self.done.shape:
                    raise KeyError(f"{name} has {ds.shape[0]} rows, done has {self.done.size}")
            self._hyp_names = sorted(hyps)
        except _NewerFormat as e:
            file.close()
            raise InvalidScanFile(
                f"{path}: {e}, written by a newer jaxlike (this one reads {list(_READABLE)})"
            ) from None
        except (KeyError, OSError, ValueError, TypeError, AttributeError, RuntimeError) as e:
            file.close()
            raise InvalidScanFile(f"{path}: not a jaxlike scan file ({_one_line(e)})") from None
        self.result_spec = {k: (ds.shape[1:], ds.dtype) for k, ds in self._results.items()}
        self._hyp_cache = None
        #: done rows found damaged (and reset) by :meth:`open_for_resume`
        self.damaged = np.zeros(0, np.int64)

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
        chunk_size: int = 0,
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
            chunk_size: rows per vmapped call of the scan (stored; a resume must use the same,
                see :meth:`check_same_scan`); 0: not recorded, not checked.

        The free disk space is checked first (:func:`store_bytes`); an ``OSError`` while
        writing (disk full, no permission) becomes :class:`~jaxlike.exceptions.InvalidScanFile`
        with one line, and the temporary file is removed.
        """
        path = Path(path)
        hyps, n = flatten_hypotheses(hypotheses)
        spec = _normalise_spec(result_spec)
        text = canonical_json(config)
        if path.exists() and not overwrite:
            raise InvalidScanFile(_exists_message(path))
        check_free_space(path, store_bytes(hyps, spec))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        f = None
        try:
            f = h5py.File(tmp, "w", userblock_size=_USERBLOCK)
            _reserve(tmp, store_bytes(hyps, spec) + _MARGIN)
            _write_layout(f, hyps, n, spec, text, model_digest, attrs, chunk_size)
            f.close()
            _seal(tmp)
            _publish(tmp, path, overwrite)
        except (OSError, ValueError, RuntimeError) as e:  # h5py reports a full disk as any
            if isinstance(e, JaxlikeError):
                raise
            _abandon(f, tmp)
            raise InvalidScanFile(f"{path}: cannot write the scan file ({_os_reason(e)})") from None
        except BaseException:
            _abandon(f, tmp)
            raise
        finally:
            tmp.unlink(missing_ok=True)
        return cls(_open(path, "r+"), path)

    @classmethod
    def open_for_resume(
        cls,
        path,
        *,
        hypotheses,
        config=None,
        model_digest: str = "",
        result_spec=None,
        chunk_size: int = 0,
    ) -> ScanStore:
        """Open an existing scan file for writing the rows it has not done yet.

        Refuses (:class:`~jaxlike.exceptions.InvalidScanFile`, one line naming the field) a file
        whose config digest, model digest, hypothesis coordinates, result names/shapes/dtypes
        (when ``result_spec`` is given) or chunk size (when both are recorded) differ from this
        scan's, a file of another format version, and an unreadable, truncated or incomplete
        file. Done rows whose checksum fails (:meth:`verify`) are marked not done, in the file
        too, with a :class:`ScanFileWarning` naming them, so that they are computed again;
        ``damaged`` lists them.
        """
        store = cls.open(path, "r+")
        try:
            store.check_same_scan(hypotheses, config, model_digest, result_spec, chunk_size)
            bad = store.verify()
            if bad.size:
                store._file["done"][bad] = False
                store._file.flush()
                store.done[bad] = False
                warnings.warn(
                    f"{path}: {_rows(bad)} failed their checksum (damaged on disk); "
                    "they are computed again",
                    ScanFileWarning,
                    stacklevel=2,
                )
            store.damaged = bad
        except OSError as e:
            store.close()
            raise InvalidScanFile(f"{path}: unreadable data ({_one_line(e)})") from None
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def open(cls, path, mode: str = "r") -> ScanStore:
        """Open an existing scan file as is (``mode`` "r" or "r+"), checking only its layout."""
        return cls(_open(path, mode), path)

    def check_same_scan(
        self, hypotheses, config=None, model_digest: str = "", result_spec=None, chunk_size=0
    ):
        """Raise :class:`~jaxlike.exceptions.InvalidScanFile` (naming the field) unless this file
        belongs to the scan described by the arguments (see :meth:`open_for_resume`)."""
        where = f"{self.path}: cannot resume, "
        text = canonical_json(config)
        version = self.attrs["format_version"]
        if version != FORMAT_VERSION:
            raise InvalidScanFile(
                where
                + f"format_version is {version}, this jaxlike writes {FORMAT_VERSION}"
                + (" (files without row checksums); rerun the scan" if version == 1 else "")
            )
        if self.attrs["config_digest"] != config_digest(json.loads(text)):
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
        check_chunk_size(self.path, self.attrs.get("chunk_size"), chunk_size)

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
        if not self.verifiable:
            raise InvalidScanFile(f"{self.path}: format_version 1 files are read only")
        runs = _runs(~self.done[start : start + n])
        try:
            for a, b in runs:
                rows = {}
                for name, ds in self._results.items():
                    shape, dtype = self.result_spec[name]
                    rows[name] = values[name][a:b].reshape(b - a, *shape).astype(dtype)
                    ds[start + a : start + b] = rows[name]
                hyps = self._hypothesis_rows(start + a, start + b)
                self._checksum[start + a : start + b] = _row_checksums(start + a, hyps, rows)
            self._file.flush()
            for a, b in runs:
                self._file["done"][start + a : start + b] = True
                self.done[start + a : start + b] = True
            self._file.flush()
        except (OSError, RuntimeError) as e:
            raise InvalidScanFile(f"{self.path}: cannot write results ({_os_reason(e)})") from None
        return int(sum(b - a for a, b in runs))

    def _hypothesis_rows(self, a: int, b: int) -> dict[str, np.ndarray]:
        if self._hyp_cache is None:
            self._hyp_cache = self.read_hypotheses()
        return {k: v[a:b] for k, v in self._hyp_cache.items()}

    def verify(self, results=None) -> np.ndarray:
        """Indices of the done rows whose stored checksum does not match their bytes (damaged
        rows; empty if none). ``results``: the already read :meth:`read_results` output
        (``verify=False``). A format_version 1 file has no checksums: nothing to report."""
        if not self.verifiable:
            return np.zeros(0, np.int64)
        done = np.flatnonzero(self.done)
        if not done.size:
            return done
        results = self.read_results(verify=False) if results is None else results
        stored = self._checksum[...]
        bad = []
        for a, b in _runs(self.done):
            rows = {k: v[a:b] for k, v in results.items()}
            ok = _row_checksums(int(a), self._hypothesis_rows(a, b), rows) == stored[a:b]
            bad.append(np.flatnonzero(~ok) + a)
        return np.concatenate(bad).astype(np.int64)

    def read_results(self, verify: bool = True) -> dict[str, np.ndarray]:
        """``{name: array [H, ...]}`` of all results (rows not done hold the fill value).

        With ``verify`` (default) every done row is checked against its checksum and damaged
        rows raise :class:`~jaxlike.exceptions.InvalidScanFile` naming them; a format_version 1
        file (no checksums) is returned with a :class:`ScanFileWarning`.
        """
        try:
            results = {name: ds[...] for name, ds in self._results.items()}
        except (OSError, ValueError) as e:
            raise InvalidScanFile(f"{self.path}: unreadable data ({_one_line(e)})") from None
        if verify and not self.verifiable:
            warnings.warn(
                f"{self.path}: format_version 1 file without row checksums; its results "
                "cannot be verified",
                ScanFileWarning,
                stacklevel=2,
            )
        elif verify:
            bad = self.verify(results)
            if bad.size:
                raise InvalidScanFile(
                    f"{self.path}: {_rows(bad)} failed their checksum (damaged on disk); "
                    "resume the scan to compute them again"
                )
        return results

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


def _reserve(tmp: Path, nbytes: int):
    """Allocate ``nbytes`` of disk for the new file before HDF5 writes into it, so that a full
    disk fails here, as a plain ``OSError``, and never inside HDF5 (which cannot close a file
    whose metadata it cannot write). HDF5 truncates the file to its real size on close.
    Skipped where the file system cannot preallocate."""
    if not hasattr(os, "posix_fallocate"):  # not on this platform (macOS)
        return
    with open(tmp, "r+b") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, int(nbytes))
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise


def _abandon(f, tmp: Path):
    """Close a half-written temporary file whatever state HDF5 is in. When the disk is full,
    closing fails (HDF5 cannot write its metadata) and leaves the file open, and HDF5 crashed
    the interpreter when it retried at exit; truncating the file first frees its space, so
    the metadata fits and the close succeeds (the file is removed afterwards anyway)."""
    if f is None or not f.id.valid:
        return
    with contextlib.suppress(OSError):
        os.truncate(tmp, 0)
    for _ in range(2):
        with contextlib.suppress(Exception):
            f.close()
        if not f.id.valid:
            return


class _NewerFormat(Exception):
    """Raised inside :class:`ScanStore` for a ``format_version`` newer than this jaxlike
    reads; turned into an :class:`~jaxlike.exceptions.InvalidScanFile` naming it."""


def _rows(rows) -> str:
    """``rows 3, 7 (2 of them)``: the first row indices of a list, for messages."""
    rows = [int(r) for r in rows]
    shown = ", ".join(map(str, rows[:_SHOWN_ROWS])) + (", ..." if len(rows) > _SHOWN_ROWS else "")
    return f"row {shown}" if len(rows) == 1 else f"rows {shown} ({len(rows)} rows)"


def _os_reason(err: Exception) -> str:
    """The short reason of an error of the file system (HDF5's messages run over lines)."""
    code = getattr(err, "errno", None)
    if not isinstance(code, int) or code <= 0:
        found = re.search(r"errno = (\d+)", str(err))
        code = int(found.group(1)) if found else None
    return os.strerror(code) if code else _one_line(err)[:200]


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_results(path) -> tuple[dict, dict, dict]:
    """``(hypotheses, results, attrs)`` of a scan file, as NumPy arrays and Python values.

    ``attrs["config"]`` is the parsed configuration (a dict) and ``attrs["done"]`` the boolean
    mask of rows holding final results (the others hold the fill value). Every done row is
    verified against its checksum: damaged rows raise
    :class:`~jaxlike.exceptions.InvalidScanFile` naming them (see the module docstring).
    """
    store = ScanStore.open(path)
    try:
        attrs = dict(store.attrs, config=json.loads(store.attrs["config"]), done=store.done.copy())
        results = store.read_results()
        return store.read_hypotheses(), results, attrs
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
        raise InvalidScanFile(f"{path}: unreadable data ({_one_line(e)})") from None
    finally:
        store.close()


def merge_stores(paths, out, *, overwrite: bool = False) -> Path:
    """Merge per-process scan files of one scan (``scan.p0.h5``, ``scan.p1.h5``, ...) into ``out``.

    Every input must come from the same scan (config digest, model digest, hypotheses and
    result spec), else :class:`~jaxlike.exceptions.InvalidScanFile` names the file and field.
    A row is done in ``out`` if it is done in any input (the first such input supplies it);
    user attributes and the chunk size come from the first file. An input with damaged rows
    (failed checksums) is refused. Returns ``Path(out)``.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InvalidScanConfig("paths", "nothing to merge")
    with ScanStore.open(paths[0]) as first:
        hyps, config = first.read_hypotheses(), json.loads(first.attrs["config"])
        digest, spec = first.attrs["model_digest"], first.result_spec
        chunk = int(first.attrs.get("chunk_size", 0) or 0)
        user = {k: v for k, v in first.attrs.items() if k not in _RESERVED}
    kw = {"config": config, "model_digest": digest, "attrs": user, "chunk_size": chunk}
    with ScanStore.create(out, hyps, spec, overwrite=overwrite, **kw) as merged:
        for p in paths:
            with ScanStore.open(p) as src:
                src.check_same_scan(hyps, config, digest, spec, chunk)
                results = src.read_results()  # refuses damaged rows
                for a, b in _runs(src.done):
                    merged.write_chunk(int(a), {k: v[a:b] for k, v in results.items()})
    return Path(out)
