"""Tests of the streaming scan layer: chunking, sharding, HDF5 store, kill/resume, multi-process.

The toy scan (tests/_scan_worker.py) fits a Poisson signal strength per hypothesis with a Newton
loop in ``lax.while_loop``; subprocesses run the same function on 4 host devices, under SIGKILL
and as two ``jax.distributed`` processes.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import _scan_worker as worker
import h5py
import jax
import numpy as np
import pytest

import jaxlike  # noqa: F401  (float64)
from jaxlike.exceptions import InvalidScanConfig, InvalidScanFile
from jaxlike.scan import (
    Progress,
    ScanStore,
    choose_chunk_size,
    hypothesis_bytes,
    merge_stores,
    read_results,
    run_scan,
)
from jaxlike.stream import _store

WORKER = Path(__file__).with_name("_scan_worker.py")
H = 23
KW = {"config": {"toy": 1}, "model_digest": "toy", "progress": False}


@pytest.fixture(scope="module")
def reference():
    """Results of the whole toy scan in one unchunked, jitted vmap."""
    return jax.tree.map(np.asarray, jax.jit(worker.scan_fn)(worker.hypotheses(H)))


def assert_same(a, b):
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-13, atol=0, err_msg=k)
        assert a[k].dtype == b[k].dtype, k


def spawn(*args, env=None):
    return subprocess.Popen(
        [sys.executable, str(WORKER), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def finish(proc, timeout=60):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out


def test_chunked_equals_vmap_and_compiles_once(reference):
    traces = []

    def fn(batch):
        traces.append(jax.tree.leaves(batch)[0].shape)
        return worker.scan_fn(batch)

    out = run_scan(fn, worker.hypotheses(H), chunk_size=5, progress=False)  # 4 full + 1 padded
    assert traces == [(5,)]
    assert_same(out, reference)
    assert out["mu_hat"].shape == (H,) and out["nu"].shape == (H, 3)
    assert out["converged"].all() and out["iterations"].dtype == np.int32


def test_sharded_over_4_devices_equals_1_device(tmp_path, reference):
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    finish(spawn("sharded", tmp_path / "out.npz", env={"XLA_FLAGS": flags}))
    with np.load(tmp_path / "out.npz") as f:
        assert_same(dict(f), run_scan(worker.scan_fn, worker.hypotheses(H), progress=False))
        assert_same(dict(f), reference)


def done_rows(path):
    """(done mask, {name: raw bytes of each done row}) of a scan file, opened read-only."""
    with h5py.File(path, "r") as f:
        done = f["done"][...]
        return done, {
            k: [row.tobytes() for row in f["results"][k][...][done]] for k in f["results"]
        }


def kill_after(path, markers, delay, h=40, chunk=4):
    """Start the slow worker, SIGKILL it after ``markers`` chunks were stored."""
    proc = spawn("slow", path, delay, h, chunk)
    seen = 0
    for line in proc.stdout:
        seen += line.startswith("CHUNK")
        if seen >= markers:
            break
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert seen >= markers, proc.stderr
    return proc


def test_kill_and_resume(tmp_path):
    path = tmp_path / "scan.h5"
    kill_after(path, markers=2, delay=0.5)
    done, before = done_rows(path)
    assert 0 < done.sum() < 40 and done.sum() % 4 == 0
    resumed = Progress(enabled=False)
    kw = {**KW, "progress": resumed, "store": path, "resume": True}
    out = run_scan(worker.scan_fn, worker.hypotheses(40), chunk_size=4, **kw)
    assert resumed.resumed == done.sum() and resumed.computed == 40 - done.sum()
    assert_same(out, run_scan(worker.scan_fn, worker.hypotheses(40), chunk_size=4, **KW))
    done_after, after = done_rows(path)
    assert done_after.all()
    for k in before:  # the rows stored before the kill, byte for byte
        assert [after_row for after_row, d in zip(after[k], done, strict=True) if d] == before[k]


def test_kill_at_any_moment_leaves_a_resumable_file(tmp_path):
    """A fast scan (1 row per chunk, two flushes each) killed mid-stream, twice; every done row
    passes its checksum. A resume with another chunk size is refused (results depend on it in
    the last digits); with the file's chunk size recorded as 64 (partly done chunks, as after
    damaged rows were reset), partly done chunks are recomputed and only their missing rows
    written."""
    path, h = tmp_path / "scan.h5", 2000
    for markers in (5, 40):
        kill_after(path, markers=markers, delay=0.002, h=h, chunk=1)
        with ScanStore.open(path) as st:
            assert markers <= st.done.sum() < h
            assert np.isfinite(st.read_results()["mu_hat"][st.done]).all()  # verified
            assert st.attrs["chunk_size"] == 1
    kw = {**KW, "store": path, "resume": True}
    with pytest.raises(InvalidScanFile, match="chunk size differs .file 1, this scan 64"):
        run_scan(worker.scan_fn, worker.hypotheses(h), chunk_size=64, **kw)
    with h5py.File(path, "r+") as f:
        f.attrs["chunk_size"] = 64
    _store._seal(path)  # as if written with chunk size 64
    out = run_scan(worker.scan_fn, worker.hypotheses(h), chunk_size=64, **kw)
    assert_same(out, run_scan(worker.scan_fn, worker.hypotheses(h), chunk_size=64, **KW))


@pytest.fixture
def stored(tmp_path):
    path = tmp_path / "scan.h5"
    run_scan(worker.scan_fn, worker.hypotheses(H), store=path, chunk_size=8, **KW)
    return path


def resume(path, hyps=None, config=None, digest="toy", spec=None):
    scalar = {"mu_hat": "f8", "twice_nll": "f8", "iterations": "i4", "converged": bool}
    spec = spec or {**{k: ((), t) for k, t in scalar.items()}, "nu": ((3,), "f8")}
    return ScanStore.open_for_resume(
        path,
        hypotheses=worker.hypotheses(H) if hyps is None else hyps,
        config=config or {"toy": 1},
        model_digest=digest,
        result_spec=spec,
    )


def test_store_layout_and_read_results(stored, reference):
    hyps, res, attrs = read_results(stored)
    assert_same(res, reference)
    assert_same(hyps, worker.hypotheses(H))
    assert attrs["config"] == {"toy": 1} and attrs["model_digest"] == "toy"
    assert _store.canonical_json({"toy": 1}) == '{"toy":1}'
    assert attrs["config_digest"] == hashlib.sha256(b'{"toy":1}').hexdigest()
    assert attrs["done"].all() and attrs["format_version"] == 2 and attrs["chunk_size"] == 8
    assert {"jaxlike_version", "jax_version", "created"} <= set(attrs)
    resume(stored).close()  # the same scan: accepted


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"config": {"toy": 2}}, r"config digest differs \(keys \['toy'\]\)"),
        ({"digest": "other"}, "model digest differs"),
        ({"hyps": {**worker.hypotheses(H), "mass": np.zeros(H)}}, "hypothesis coordinates 'mass'"),
        ({"hyps": {"mass": np.zeros(H)}}, "hypothesis names differ"),
        ({"spec": {"mu_hat": ((), "f8")}}, "result names/shapes/dtypes differ"),
    ],
)
def test_resume_refuses_another_scan(stored, change, message):
    with pytest.raises(InvalidScanFile, match=message) as err:
        resume(stored, **change)
    assert "\n" not in str(err.value)


def test_run_scan_resume_refuses_another_config(stored):
    with pytest.raises(InvalidScanFile, match="config digest"):
        run_scan(
            worker.scan_fn, worker.hypotheses(H), store=stored, resume=True, **{**KW, "config": {}}
        )


def test_corrupt_files_raise_invalid_scan_file(stored, tmp_path):
    noise = tmp_path / "noise.h5"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(stored.read_bytes()[: stored.stat().st_size // 2])
    missing = tmp_path / "missing.h5"
    missing.write_bytes(stored.read_bytes())
    with h5py.File(missing, "r+") as f:
        del f["done"]
    for path in (noise, truncated, missing, tmp_path / "absent.h5"):
        with pytest.raises(InvalidScanFile, match=str(path.name)):
            resume(path)
        with pytest.raises(InvalidScanFile):
            read_results(path)
    with pytest.raises(InvalidScanFile):
        run_scan(worker.scan_fn, worker.hypotheses(H), store=truncated, resume=True, **KW)


def test_existing_file_needs_resume_or_overwrite(stored, reference):
    stamp = stored.read_bytes()
    with pytest.raises(InvalidScanFile, match="already exists; pass resume=True"):
        run_scan(worker.scan_fn, worker.hypotheses(H), store=stored, **KW)
    with pytest.raises(InvalidScanFile, match="already exists"):
        ScanStore.create(stored, worker.hypotheses(H), {"x": ((), "f8")})
    assert stored.read_bytes() == stamp
    out = run_scan(worker.scan_fn, worker.hypotheses(H), store=stored, overwrite=True, **KW)
    assert_same(out, reference)


def test_failed_creation_leaves_no_file(tmp_path, monkeypatch):
    hyps, spec = worker.hypotheses(H), {"x": ((), "f8")}
    with pytest.raises(InvalidScanConfig, match="reserved"):
        ScanStore.create(tmp_path / "a.h5", hyps, spec, attrs={"config": "x"})
    with pytest.raises(InvalidScanConfig, match="config"):
        ScanStore.create(tmp_path / "b.h5", hyps, spec, config={"f": object()})
    original = _store._write_layout

    def fail_after_writing(f, *args):
        original(f, *args)
        raise OSError("disk full")

    monkeypatch.setattr(_store, "_write_layout", fail_after_writing)
    with pytest.raises(InvalidScanFile, match="c.h5: cannot write the scan file .disk full"):
        ScanStore.create(tmp_path / "c.h5", hyps, spec)
    assert list(tmp_path.iterdir()) == []


def test_memory_budget_chunk_size():
    fn = jax.vmap(lambda h: {"s": (h["x"] ** 2).sum()})
    hyps = {"x": np.ones((100, 1000))}
    per = hypothesis_bytes(fn, hyps)
    assert per >= 8000  # at least the hypothesis itself
    budget = 10 * per + per // 2
    chunk = choose_chunk_size(fn, hyps, budget)
    d = len(jax.local_devices())
    assert chunk > 0 and chunk % d == 0 and chunk // d == 10
    assert chunk // d * per <= budget
    assert choose_chunk_size(fn, hyps, 1) == d  # below one hypothesis: one row per device
    out = run_scan(fn, hyps, memory_budget_bytes=budget, progress=False)
    np.testing.assert_array_equal(out["s"], np.full(100, 1000.0))
    with pytest.raises(InvalidScanConfig, match="not both"):
        run_scan(fn, hyps, chunk_size=4, memory_budget_bytes=budget, progress=False)
    with pytest.raises(InvalidScanConfig, match="positive integer"):
        run_scan(fn, hyps, chunk_size=0, progress=False)


def test_progress_output(capsys):
    stream = io.StringIO()
    p = Progress(stream=stream, min_interval=0.0)
    p.start(500, resumed=300, info="chunks of 100 on 1 device(s)")
    p.update(100)
    p.update(100)
    p.finish()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "scan: resumed 300 done, 200 to go (chunks of 100 on 1 device(s))"
    assert lines[1].startswith("scan: 400/500 (80.0%) | resumed 300 | ")
    assert "hyp/s" in lines[1] and "elapsed 0:00:00" in lines[1] and "ETA 0:00:" in lines[1]
    assert lines[-1].startswith("scan: 500/500 (100.0%)") and lines[-1].endswith("ETA 0:00:00")
    quiet = io.StringIO()
    q = Progress(stream=quiet, min_interval=3600.0)  # a log file: first and last line only
    q.start(10)
    for _ in range(10):
        q.update(1)
    q.finish()
    assert len(quiet.getvalue().splitlines()) == 3
    run_scan(worker.scan_fn, worker.hypotheses(H), chunk_size=8)
    err = capsys.readouterr().err
    assert f"{H} to go" in err and f"{H}/{H} (100.0%)" in err and "ETA" in err
    run_scan(worker.scan_fn, worker.hypotheses(H), chunk_size=8, progress=False)
    assert capsys.readouterr().err == ""


def test_progress_on_a_tty():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    p = Progress(stream=stream)
    p.start(4)
    p.update(2)
    p.update(2)  # within 0.1 s of the last: not drawn
    p.finish()
    out = stream.getvalue()
    assert out.count("\r\x1b[2K") == 3 and out.endswith("ETA 0:00:00\n")
    assert "scan: 2/4 (50.0%)" in out and "scan: 4/4 (100.0%)" in out


def test_hypothesis_names(tmp_path):
    nested = {"sig": {"yield": np.ones((3, 2)), "mass": np.arange(3)}, "ok": np.ones(3, bool)}
    bare = np.arange(3.0)
    for i, (hyps, names) in enumerate(
        [(nested, {"sig/yield", "sig/mass", "ok"}), (bare, {"hypothesis"})]
    ):
        path = tmp_path / f"{i}.h5"
        ScanStore.create(path, hyps, {"x": ((), "f4")}).close()
        stored, res, attrs = read_results(path)
        assert set(stored) == names and np.isnan(res["x"]).all() and not attrs["done"].any()
        with ScanStore.open_for_resume(path, hypotheses=hyps) as st:
            assert st.write_chunk(1, {"x": [1.0, 2.0]}) == 2
            assert st.write_chunk(0, {"x": [0.0, 9.0, 9.0]}) == 1  # done rows are kept
        assert read_results(path)[1]["x"].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(InvalidScanConfig, match="leading axes must agree"):
        ScanStore.create(tmp_path / "x.h5", {"a": np.ones(2), "b": np.ones(3)}, {"x": ((), "f8")})


def test_process_partition_and_merge(tmp_path, reference):
    path = tmp_path / "scan.h5"
    kw = {**KW, "store": path, "chunk_size": 4, "process_count": 2}
    parts = [run_scan(worker.scan_fn, worker.hypotheses(H), process_index=i, **kw) for i in (0, 1)]
    chunks = np.arange(H) // 4
    for i, part in enumerate(parts):  # each process computed chunks k = i mod 2 only
        mine = chunks % 2 == i
        assert np.isfinite(part["mu_hat"]).tolist() == mine.tolist()
        assert (part["iterations"][~mine] == np.iinfo(np.int32).min).all()  # fill values
        assert not part["converged"][~mine].any()
    files = [tmp_path / "scan.p0.h5", tmp_path / "scan.p1.h5"]
    merge_stores(files, path)
    _, merged, attrs = read_results(path)
    assert attrs["done"].all()
    assert_same(merged, reference)
    other = tmp_path / "other.h5"
    kw = {**KW, "model_digest": "x"}
    run_scan(worker.scan_fn, worker.hypotheses(H), store=other, chunk_size=4, **kw)
    with pytest.raises(InvalidScanFile, match="other.h5: cannot resume, model digest"):
        merge_stores([files[0], other], tmp_path / "bad.h5")


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_jax_distributed_processes(tmp_path, reference):
    store, port = tmp_path / "scan.h5", free_port()
    env = {
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=1"
    }
    procs = [spawn("dist", store, tmp_path / f"out{i}.npz", port, i, env=env) for i in range(2)]
    try:
        for proc in procs:
            finish(proc, timeout=90)
    finally:
        for proc in procs:
            proc.kill()
    assert {p.name for p in tmp_path.glob("*.h5")} == {"scan.h5", "scan.p0.h5", "scan.p1.h5"}
    _, merged, attrs = read_results(store)
    assert attrs["done"].all()
    assert_same(merged, reference)
    for i in range(2):
        with np.load(tmp_path / f"out{i}.npz") as f:
            assert_same({k: f[k] for k in reference}, reference)
            assert_same({k: f[f"mem_{k}"] for k in reference}, reference)


def test_operands_share_one_compilation(monkeypatch, tmp_path):
    """``run_scan(fn, hyps, operands=...)``: the operands are an argument of the program, so a
    later scan of the same ``fn`` with operands of the same shapes runs the same executable
    (the disk check still runs), and other shapes compile their own."""
    import jaxlike.stream._stream as st

    lowered = []
    real = st._lower_compile
    monkeypatch.setattr(st, "_lower_compile", lambda *a, **k: lowered.append(1) or real(*a, **k))
    fn = jax.vmap(lambda h, op: {"y": h["x"] * op["a"] + op["b"].sum()}, in_axes=(0, None))
    one = run_scan(fn, {"x": np.arange(10.0)}, operands={"a": 2.0, "b": np.ones(3)},
                   chunk_size=4, progress=False)  # fmt: skip
    two = run_scan(fn, {"x": np.arange(7.0)}, operands={"a": 3.0, "b": np.zeros(3)},
                   chunk_size=4, progress=False, store=tmp_path / "two.h5")  # fmt: skip
    assert lowered == [1]
    np.testing.assert_array_equal(one["y"], 2 * np.arange(10.0) + 3)
    np.testing.assert_array_equal(two["y"], 3 * np.arange(7.0))
    three = run_scan(fn, {"x": np.arange(5.0)}, operands={"a": 1.0, "b": np.ones(4)},
                     chunk_size=4, progress=False)  # fmt: skip
    assert lowered == [1, 1]
    np.testing.assert_array_equal(three["y"], np.arange(5.0) + 4)
    budget = run_scan(fn, {"x": np.arange(6.0)}, operands={"a": 2.0, "b": np.ones(3)},
                      memory_budget_bytes=10**6, progress=False)  # fmt: skip
    np.testing.assert_array_equal(budget["y"], 2 * np.arange(6.0) + 3)
