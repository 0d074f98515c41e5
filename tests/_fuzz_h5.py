"""Damaged scan files, for the fuzz suite (tests/test_fuzz.py runs this in a subprocess).

    python tests/_fuzz_h5.py FIRST_SEED N FOLDER

For each seed: a small scan file (20 hypotheses, 3 result datasets, 15 rows done) written
with :class:`jaxlike.scan.ScanStore` (no JAX compilation), then damaged one way — random
bytes flipped anywhere or inside the result rows, truncated, a block zeroed, garbage appended,
emptied, an attribute or dataset changed through h5py, a ``done`` flag set on a row never
written — and read back with :func:`jaxlike.scan.read_results` and resumed with
``ScanStore.open_for_resume``. Each must either raise a ``JaxlikeError`` or give back exactly
the original values of every row it calls done: never another exception, never a changed
number. A segfault in HDF5 kills this process, which the caller reports (the reason for the
subprocess). Prints one line per case; exits 1 if any case failed.
"""

from __future__ import annotations

import sys
import traceback
import warnings
from pathlib import Path

import h5py
import numpy as np

from jaxlike.exceptions import JaxlikeError
from jaxlike.scan import ScanStore, read_results

H, DONE = 20, 15
CONFIG = {"toy": 1, "lo": 20.0}
SPEC = {"mu_hat": ((), np.float64), "nu": ((3,), np.float64), "ok": ((), np.bool_)}


def _original():
    rng = np.random.default_rng(5)
    hyps = {"mass": np.linspace(1.0, 4.0, H)}
    res = {"mu_hat": rng.normal(size=H), "nu": rng.uniform(1, 9, size=(H, 3)),
           "ok": rng.random(H) < 0.8}  # fmt: skip
    return hyps, res


def _write(path):
    hyps, res = _original()
    with ScanStore.create(path, hyps, SPEC, config=CONFIG, model_digest="toy",
                          chunk_size=5) as st:  # fmt: skip
        for start in range(0, DONE, 5):
            st.write_chunk(start, {k: v[start : start + 5] for k, v in res.items()})


def _flip(path, rng, lo=0, hi=None, n=None):
    data = bytearray(Path(path).read_bytes())
    hi = len(data) if hi is None else hi
    for _ in range(n or int(rng.integers(1, 9))):
        i = int(rng.integers(lo, hi))
        data[i] ^= int(rng.integers(1, 256))
    Path(path).write_bytes(bytes(data))


def _damage(path, rng) -> str:
    kind = int(rng.integers(9))
    size = Path(path).stat().st_size
    if kind == 0:
        _flip(path, rng)
        return "bytes flipped anywhere"
    if kind == 1:
        name = str(rng.choice(["results/mu_hat", "results/nu", "results/ok", "done",
                               "hypotheses/mass"]))  # fmt: skip
        with h5py.File(path, "r") as f:
            ds = f[name]
            off, nbytes = ds.id.get_offset(), ds.id.get_storage_size()
        _flip(path, rng, off, off + nbytes, n=int(rng.integers(1, 4)))
        return f"bytes flipped in {name}"
    if kind == 2:
        cut = int(rng.integers(size))
        with open(path, "r+b") as fh:
            fh.truncate(cut)
        return f"truncated at {cut} of {size}"
    if kind == 3:
        start = int(rng.integers(size))
        data = bytearray(Path(path).read_bytes())
        data[start : start + 512] = bytes(len(data[start : start + 512]))
        Path(path).write_bytes(bytes(data))
        return f"512 bytes zeroed at {start}"
    if kind == 4:
        with open(path, "ab") as fh:
            fh.write(rng.bytes(int(rng.integers(1, 4096))))
        return "garbage appended"
    if kind == 5:
        Path(path).write_bytes(b"")
        return "emptied"
    if kind == 6:
        key, value = [("format_version", 99), ("format_version", 1), ("config", "{not json"),
                      ("config", '{"toy": 2}'), ("chunk_size", -3), ("model_digest", 5),
                      ("config_digest", "0" * 64)][rng.integers(7)]  # fmt: skip
        with h5py.File(path, "r+") as f:
            f.attrs[key] = value
        return f"attribute {key} = {value!r}"
    if kind == 7:
        name = str(rng.choice(["done", "row_crc32", "results/nu", "hypotheses/mass"]))
        with h5py.File(path, "r+") as f:
            if name in f:
                del f[name]
        return f"dataset {name} deleted"
    row = int(rng.integers(DONE, H))
    with h5py.File(path, "r") as f:
        off = f["done"].id.get_offset()
    with open(path, "r+b") as fh:
        fh.seek(off + row)
        fh.write(b"\x01")
    return f"done flag set on unwritten row {row}"


def _same_done_rows(results, done, label):
    hyps, orig = _original()
    bad = []
    for name, arr in orig.items():
        got = np.asarray(results[name])
        rows = np.flatnonzero(done)
        if not np.array_equal(got[rows], arr[rows]):
            bad.append(name)
    if np.any(np.asarray(done)[DONE:]):
        bad.append("done rows that were never written")
    return f"{label}: changed values in {bad}" if bad else None


def check(seed: int, folder: Path) -> str | None:
    """Run one case; return a failure message or None."""
    rng = np.random.default_rng([seed, 41])
    path = folder / f"case{seed}.h5"
    path.unlink(missing_ok=True)
    _write(path)
    what = _damage(path, rng)
    label = f"seed {seed}: {what}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            _, results, attrs = read_results(path)
            fail = _same_done_rows(results, attrs["done"], label + " (read)")
            if fail:
                return fail
        except JaxlikeError:
            pass
        except Exception:  # noqa: BLE001
            return f"{label} (read): traceback\n{traceback.format_exc()}"
        hyps, _ = _original()
        try:
            st = ScanStore.open_for_resume(path, hypotheses=hyps, config=CONFIG,
                                           model_digest="toy", result_spec=SPEC, chunk_size=5)  # fmt: skip
            try:
                fail = _same_done_rows(st.read_results(), st.done, label + " (resume)")
            finally:
                st.close()
            if fail:
                return fail
        except JaxlikeError:
            pass
        except Exception:  # noqa: BLE001
            return f"{label} (resume): traceback\n{traceback.format_exc()}"
    path.unlink(missing_ok=True)
    return None


def main(argv):
    first, n, folder = int(argv[0]), int(argv[1]), Path(argv[2])
    failures = 0
    for seed in range(first, first + n):
        print(f"case {seed}", flush=True)
        msg = check(seed, folder)
        if msg:
            failures += 1
            print(f"FAIL {msg}", flush=True)
    print(f"done {n} cases, {failures} failures", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
