"""Integrity of scan results files: row checksums, resume identity (config numbers, chunk size),
full disks and write errors. The toy scan of tests/_scan_worker.py (a quick compile) on 23 rows.
"""

from __future__ import annotations

import errno
import warnings
from collections import namedtuple

import _scan_worker as worker
import h5py
import jax
import numpy as np
import pytest

import jaxlike  # noqa: F401  (float64)
from jaxlike.exceptions import InvalidScanFile
from jaxlike.scan import Progress, ScanStore, read_results, run_scan
from jaxlike.stream import ScanFileWarning, _store, config_digest

H = 23
KW = {"config": {"toy": 1}, "model_digest": "toy", "progress": False}


@pytest.fixture(scope="module")
def reference():
    return jax.tree.map(np.asarray, jax.jit(worker.scan_fn)(worker.hypotheses(H)))


@pytest.fixture
def stored(tmp_path):
    path = tmp_path / "scan.h5"
    run_scan(worker.scan_fn, worker.hypotheses(H), store=path, chunk_size=8, **KW)
    return path


def flip_bytes(path, dataset: str, row: int, nbytes: int = 2):
    """Invert ``nbytes`` bytes of ``row`` of a contiguous dataset in the raw file."""
    with h5py.File(path, "r") as f:
        ds = f[dataset]
        offset = ds.id.get_offset() + row * ds.dtype.itemsize * int(np.prod(ds.shape[1:]))
    with open(path, "r+b") as fh:
        fh.seek(offset + 1)
        raw = bytearray(fh.read(nbytes))
        fh.seek(offset + 1)
        fh.write(bytes(b ^ 0xFF for b in raw))


def test_flipped_bytes_are_detected_on_read_and_recomputed_on_resume(stored, reference):
    flip_bytes(stored, "results/mu_hat", 5)
    flip_bytes(stored, "results/nu", 17, nbytes=1)
    with pytest.raises(InvalidScanFile, match=r"rows 5, 17 \(2 rows\) failed their checksum"):
        read_results(stored)
    with ScanStore.open(stored) as st:
        assert st.verify().tolist() == [5, 17]
        with pytest.raises(InvalidScanFile, match="failed their checksum"):
            st.read_results()
        assert not np.array_equal(st.read_results(verify=False)["mu_hat"], reference["mu_hat"])
    progress = Progress(enabled=False)
    kw = {**KW, "store": stored, "resume": True, "progress": progress}
    with pytest.warns(ScanFileWarning, match="rows 5, 17 .* computed again"):
        out = run_scan(worker.scan_fn, worker.hypotheses(H), **kw)  # the file's chunk size, 8
    assert (progress.resumed, progress.computed) == (H - 2, 2)  # only the damaged rows written
    for key, value in reference.items():
        np.testing.assert_array_equal(out[key], value, err_msg=key)
    _, res, attrs = read_results(stored)  # verifies again
    assert attrs["done"].all()
    np.testing.assert_array_equal(res["mu_hat"], reference["mu_hat"])


def reseal(path):
    """Seal a file again after a deliberate edit of its attributes (a file as some other
    jaxlike would have written it)."""
    _store._seal(path)


def unseal(path):
    """Strip the user block holding the seal: the layout of a format-1 file (HDF5 addresses
    are relative to the superblock, so the rest stays a valid HDF5 file)."""
    path.write_bytes(path.read_bytes()[_store._USERBLOCK :])


def test_damaged_coordinates_and_done_flags_are_detected(stored, tmp_path):
    flip_bytes(stored, "hypotheses/signal", 3)  # coordinates never change: under the seal
    with pytest.raises(InvalidScanFile, match="does not match its seal"):
        read_results(stored)
    fresh = tmp_path / "fresh.h5"
    ScanStore.create(fresh, worker.hypotheses(4), {"x": ((), "f8")}).close()
    with h5py.File(fresh, "r+") as f:  # a done flag set on a row never written
        f["done"][2] = True
    with pytest.raises(InvalidScanFile, match="row 2 failed"):
        read_results(fresh)


def test_format_version_1_is_read_unverified_and_not_resumed(stored, reference):
    with h5py.File(stored, "r+") as f:
        del f["row_crc32"]
        del f.attrs["chunk_size"]
        f.attrs["format_version"] = 1
    unseal(stored)
    with pytest.warns(ScanFileWarning, match="format_version 1 .* cannot be verified"):
        _, res, _ = read_results(stored)
    np.testing.assert_array_equal(res["mu_hat"], reference["mu_hat"])
    with pytest.raises(InvalidScanFile, match="format_version is 1, this jaxlike writes 2"):
        run_scan(worker.scan_fn, worker.hypotheses(H), store=stored, resume=True, **KW)
    stored.write_bytes(bytes(_store._USERBLOCK) + stored.read_bytes())  # room for a seal
    with h5py.File(stored, "r+") as f:
        f.attrs["format_version"] = 9
    reseal(stored)
    with pytest.raises(InvalidScanFile, match="format_version 9, written by a newer jaxlike"):
        read_results(stored)


def test_config_identity_uses_canonical_numbers(stored, reference):
    assert config_digest({"lo": 20, "x": [1, 2.5]}) == config_digest({"lo": 20.0, "x": [1.0, 2.5]})
    assert config_digest({"lo": 1}) != config_digest({"lo": True})
    assert config_digest({"lo": 20}) != config_digest({"lo": 20.5})
    kw = {**KW, "config": {"toy": 1.0}, "store": stored, "resume": True}  # the file has 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = run_scan(worker.scan_fn, worker.hypotheses(H), **kw)
    np.testing.assert_array_equal(out["mu_hat"], reference["mu_hat"])


def test_chunk_size_is_part_of_the_identity(stored, reference):
    traces = []

    def fn(batch):
        traces.append(1)
        return worker.scan_fn(batch)

    kw = {**KW, "store": stored, "resume": True}
    with pytest.raises(InvalidScanFile, match=r"chunk size differs \(file 8, this scan 5;"):
        run_scan(fn, worker.hypotheses(H), chunk_size=5, **kw)
    assert traces == []  # refused before tracing and compiling
    with h5py.File(stored, "r+") as f:  # rows 8-15 not done: recomputed in chunks of 8
        f["done"][8:16] = False
    out = run_scan(fn, worker.hypotheses(H), **kw)
    for key, value in reference.items():
        np.testing.assert_array_equal(out[key], value, err_msg=key)
    assert read_results(stored)[2]["chunk_size"] == 8


Usage = namedtuple("Usage", "total used free")


def test_full_disk_is_refused_before_compiling(tmp_path, monkeypatch):
    def no_compile(*args, **kwargs):
        raise AssertionError("compiled before the disk space was checked")

    monkeypatch.setattr(jax.stages.Lowered, "compile", no_compile)
    monkeypatch.setattr(_store.shutil, "disk_usage", lambda p: Usage(10**9, 10**9 - 5000, 5000))
    with pytest.raises(InvalidScanFile, match=r"not enough disk space .*\(5 kB free") as err:
        run_scan(worker.scan_fn, worker.hypotheses(H), store=tmp_path / "s.h5", **KW)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_write_errors_are_one_line_and_leave_no_temporary_file(tmp_path, monkeypatch, stored):
    def enospc(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device (HDF5 says\nmore)")

    hyps, spec = worker.hypotheses(4), {"x": ((), "f8")}
    with monkeypatch.context() as m:
        m.setattr(_store, "_write_layout", enospc)
        with pytest.raises(InvalidScanFile, match=r"a.h5: cannot write the scan file \(No space"):
            ScanStore.create(tmp_path / "a.h5", hyps, spec)
        m.setattr(_store.os, "posix_fallocate", enospc)  # the reservation of the file's space
        with pytest.raises(InvalidScanFile, match=r"b.h5: cannot write the scan file \(No space"):
            ScanStore.create(tmp_path / "b.h5", hyps, spec)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.h5"]
    with h5py.File(stored, "r+") as f:
        f["done"][:8] = False
    monkeypatch.setattr(h5py.Dataset, "__setitem__", enospc)
    with pytest.raises(InvalidScanFile, match=r"scan.h5: cannot write results \(No space left"):
        run_scan(worker.scan_fn, worker.hypotheses(H), store=stored, resume=True, **KW)
    monkeypatch.undo()
    assert read_results(stored)[2]["done"].sum() == H - 8  # still a valid, resumable file
