"""Streaming execution of hypothesis scans: chunk → shard → compute → store → resume.

A scan evaluates a pure function ``fn`` on H hypotheses (a pytree of arrays with leading axis
H); ``fn`` maps a batch of C hypotheses to a flat dict ``{name: array [C, ...]}`` (typically
``jax.vmap(single_fn)``). The rows are cut into chunks of C rows, C a multiple of the number of
devices D: chunk k holds rows [kC, min((k+1)C, H)), the last one padded to C by repeating its
last row (padded rows are dropped), so ``jax.jit(fn)`` is traced and compiled exactly once and
the compiled executable runs every chunk. Each chunk is placed with
``NamedSharding(Mesh(devices, ("hyp",)), PartitionSpec("hyp"))``: device d holds rows
[dC/D, (d+1)C/D) of the chunk and XLA runs the vmapped computation data-parallel (no
collectives). Dispatch is asynchronous: chunk k+1 computes while chunk k is gathered to the host
and written to the store.

Chunk size. Given a memory budget B *per device*, C = D · max(1, ⌊B / m⌋), where m is the memory
of one hypothesis as measured by XLA: m = argument + output + temp − alias bytes of ``fn``
compiled for a batch of one (``Compiled.memory_analysis()``). Fixed overheads are thereby counted
per row, so this errs on the safe side. Where no memory analysis is available,
m = 4 × (argument + output bytes), a guess that fits elementwise work and small fits.

Resume. With a store file, each chunk whose rows are all done is skipped; a chunk with any row
not done is recomputed and only its missing rows are written (see :mod:`._store`). Done rows
whose checksum fails are marked not done first (a :class:`~jaxlike.stream.ScanFileWarning`), so
they are recomputed. The chunk size is part of a scan's identity: the fits of a chunk run as
one batched program, and XLA compiles each batch size differently (other fusions and
vectorisation, hence other rounding), so an iterative fit may stop one step earlier or later
and a result differ in the last digits (~1e-5 relative for a mass scan). A resume with another
chunk size is therefore refused; :func:`run_scan` with ``resume=True`` and neither
``chunk_size`` nor ``memory_budget_bytes`` uses the file's.

Disk. Before compiling, the size of a new results file is checked against the free space of
its folder; an ``OSError`` while creating or writing the file (disk full, no permission)
raises :class:`~jaxlike.exceptions.InvalidScanFile` with one line.

Multi-host (one process per host, e.g. one SLURM task per node)::

    import jaxlike.stream as js
    js.initialize_distributed()          # jax.distributed.initialize from SLURM / env vars
    out = js.run_scan(fn, hyps, store="scan.h5", resume=True)

Process p of P computes the chunks k with k mod P = p on its own devices
(``jax.local_devices()``) and writes ``scan.p{p}.h5`` (:func:`process_store_path`). When every
process is done (a barrier over ``jax.distributed``), process 0 merges the per-process files into
``scan.h5`` (:func:`~jaxlike.stream.merge_stores`; the folder must be shared by the hosts) and every
process returns the full results; without a store the results are all-gathered instead. The
processes need no collectives while computing, and re-submitting the job with ``resume=True``
continues every per-process file. Passing ``process_index``/``process_count`` explicitly
partitions the chunks the same way without ``jax.distributed`` (e.g. a SLURM job array): each
run writes its own file and returns its own rows only (others hold the fill value); merge the
files afterwards with :func:`~jaxlike.stream.merge_stores`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..exceptions import InvalidScanConfig, InvalidScanFile
from ._batch import take_rows
from ._cache import compiled
from ._progress import Progress
from ._resume import stored_chunk_size
from ._store import (
    ScanStore,
    _exists_message,
    _fill_value,
    check_chunk_size,
    check_free_space,
    flatten_hypotheses,
    merge_stores,
    read_results,
    store_bytes,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "choose_chunk_size",
    "hypothesis_bytes",
    "initialize_distributed",
    "process_store_path",
    "run_scan",
    "scan_mesh",
    "shard_batch",
]

#: chunk size when neither ``chunk_size`` nor ``memory_budget_bytes`` is given
DEFAULT_CHUNK_SIZE = 1024


def scan_mesh(devices=None) -> Mesh:
    """The 1-D mesh ``Mesh(devices, ("hyp",))`` (default: ``jax.local_devices()``)."""
    return Mesh(np.asarray(jax.local_devices() if devices is None else list(devices)), ("hyp",))


def shard_batch(batch, mesh=None):
    """Place a batch (pytree, leading axis C) on ``mesh`` split along the leading axis.

    ``mesh`` is a :class:`~jax.sharding.Mesh` from :func:`scan_mesh`, a list of devices, or None
    (all local devices). C must be a multiple of the number of devices.
    """
    mesh = mesh if isinstance(mesh, Mesh) else scan_mesh(mesh)
    d = mesh.devices.size
    for leaf in jax.tree.leaves(batch):
        if np.ndim(leaf) == 0 or np.shape(leaf)[0] % d:
            raise InvalidScanConfig(
                "chunk_size", f"batch leading axis {np.shape(leaf)[:1]} is not a multiple of {d}"
            )
    return jax.device_put(batch, NamedSharding(mesh, PartitionSpec("hyp")))


def _nbytes(tree) -> int:
    return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def hypothesis_bytes(fn, hypotheses) -> int:
    """Device memory (bytes) of ``fn`` on one hypothesis, from XLA's memory analysis.

    m = argument + output + temp − alias bytes of ``jax.jit(fn)`` compiled for the first row;
    fallback (no analysis on this backend) 4 × (argument + output bytes).
    """
    one = jax.tree.map(lambda a: np.asarray(a)[:1], hypotheses)
    lowered = jax.jit(fn).lower(one)
    fallback = 4 * (_nbytes(one) + _nbytes(lowered.out_info))
    try:
        m = lowered.compile().memory_analysis()
        total = (
            m.argument_size_in_bytes
            + m.output_size_in_bytes
            + m.temp_size_in_bytes
            - m.alias_size_in_bytes
        )
    except (AttributeError, NotImplementedError, RuntimeError, TypeError):
        # a backend without XLA's memory analysis (no method, or one that raises): the estimate
        return fallback
    return int(total) if total > 0 else fallback


def choose_chunk_size(fn, hypotheses, memory_budget_bytes: int, *, devices=None) -> int:
    """Chunk size C = D · max(1, ⌊B / m⌋) for a budget of B bytes per device (D devices).

    m is :func:`hypothesis_bytes`; the result is a positive multiple of D. A budget below one
    hypothesis still gives one row per device.
    """
    if not memory_budget_bytes or memory_budget_bytes <= 0:
        raise InvalidScanConfig("memory_budget_bytes", f"must be > 0, got {memory_budget_bytes!r}")
    d = len(jax.local_devices() if devices is None else list(devices))
    per = hypothesis_bytes(fn, hypotheses)
    return d * max(1, int(memory_budget_bytes) // per)


def process_store_path(path, process_index: int, process_count: int) -> Path:
    """The store file of one process: ``scan.h5`` → ``scan.p{i}.h5`` (unchanged if P = 1)."""
    p = Path(path)
    return p if process_count == 1 else p.with_name(f"{p.stem}.p{process_index}{p.suffix}")


def initialize_distributed(
    coordinator_address=None, num_processes=None, process_id=None, **kwargs
) -> tuple[int, int]:
    """Start ``jax.distributed`` for a multi-host scan; returns (process_index, process_count).

    Arguments left None are read from ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0),
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``; where those are unset too, JAX detects the
    cluster itself (SLURM, Open MPI, Kubernetes, Cloud TPU). Extra keyword arguments go to
    :func:`jax.distributed.initialize`. Call it once per process, before any other JAX call;
    calling it again is a no-op.
    """
    if not jax.distributed.is_initialized():
        env = os.environ
        coordinator_address = coordinator_address or env.get("JAX_COORDINATOR_ADDRESS")
        if num_processes is None and env.get("JAX_NUM_PROCESSES"):
            num_processes = int(env["JAX_NUM_PROCESSES"])
        if process_id is None and env.get("JAX_PROCESS_ID"):
            process_id = int(env["JAX_PROCESS_ID"])
        jax.distributed.initialize(coordinator_address, num_processes, process_id, **kwargs)
    return jax.process_index(), jax.process_count()


class _MemoryResults:
    """In-memory stand-in for a :class:`ScanStore` (``run_scan(store=None)``)."""

    def __init__(self, n, spec):
        self.done = np.zeros(n, bool)
        self._res = {k: np.full((n, *s), _fill_value(np.dtype(t)), t) for k, (s, t) in spec.items()}

    def write_chunk(self, start, results):
        rows = np.arange(start, start + len(next(iter(results.values()))))
        new = ~self.done[rows]
        for k, v in results.items():
            self._res[k][rows[new]] = v[new]
        self.done[rows] = True
        return int(new.sum())

    def read_results(self):
        return self._res

    def close(self):
        """Nothing to release: the results live in memory (same interface as ScanStore)."""


def _process_layout(process_index, process_count):
    """(index, count, distributed) of this process."""
    if process_index is None and process_count is None:
        return jax.process_index(), jax.process_count(), jax.process_count() > 1
    if process_index is None or process_count is None or not 0 <= process_index < process_count:
        raise InvalidScanConfig(
            "process_index",
            f"need 0 <= process_index < process_count, got {process_index}, {process_count}",
        )
    return int(process_index), int(process_count), False


def _resolve_chunk_size(fn, hyps, n, devices, pcount, chunk_size, budget) -> int:
    if chunk_size is not None and budget is not None:
        raise InvalidScanConfig("chunk_size", "give chunk_size or memory_budget_bytes, not both")
    if budget is not None:
        chunk_size = choose_chunk_size(fn, hyps, budget, devices=devices)
    elif chunk_size is None:
        chunk_size = DEFAULT_CHUNK_SIZE
    if isinstance(chunk_size, bool) or int(chunk_size) != chunk_size or chunk_size < 1:
        raise InvalidScanConfig("chunk_size", f"must be a positive integer, got {chunk_size!r}")
    d = len(devices)
    chunk = -(-int(chunk_size) // d) * d  # round up to a multiple of D (padding covers it)
    return min(chunk, -(-n // (pcount * d)) * d)  # no larger than this process's share


def _avals(tree):
    """Hashable structure, shapes and dtypes of a pytree (what a compilation depends on)."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple((np.shape(x), str(_dtype(x))) for x in leaves)


def _dtype(a):
    return jax.dtypes.canonicalize_dtype(a.dtype if hasattr(a, "dtype") else np.result_type(a))


def _compile(fn, hyps, chunk, mesh, before_compile=None, operands=None, program=None):
    """Lower and compile ``fn`` once for a sharded chunk; returns (compiled, result_spec).
    ``before_compile(result_spec)`` runs between tracing and the (slow) XLA compilation.

    With ``operands`` (a pytree passed replicated as ``fn``'s second argument) the executable
    is kept in :func:`~jaxlike.stream.compiled` under ``fn``, the chunk, the devices and the
    shapes of the hypotheses and operands: another scan of the same ``fn`` whose operands have
    the same shapes (e.g. a segment of another mass range) runs it without compiling.
    ``program`` (with ``operands``): a stable description of ``fn`` for the exported-program
    cache (:func:`_stored_scan`), so a new process runs a layout it has seen without tracing."""
    sharding = NamedSharding(mesh, PartitionSpec("hyp"))
    args = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(
            (chunk, *a.shape[1:]), jax.dtypes.canonicalize_dtype(a.dtype), sharding=sharding
        ),
        hyps,
    )
    if operands is None:
        return _lower_compile(fn, (args,), (sharding,), sharding, chunk, before_compile)
    rep = NamedSharding(mesh, PartitionSpec())
    ops = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(np.shape(a), _dtype(a), sharding=rep),
        operands,
    )
    devices = tuple(d.id for d in mesh.devices.flat)
    key = ("run_scan", fn, chunk, devices, _avals(args), _avals(operands))
    spec_seen = []

    def build():
        built = None
        if program is not None:
            built = _stored_scan(fn, args, ops, operands, chunk, mesh, program, before_compile)
        if built is None:
            built = _lower_compile(fn, (args, ops), (sharding, rep), sharding, chunk,
                                   before_compile)  # fmt: skip
        spec_seen.append(built[1])
        return built

    exe, spec = compiled(key, build)
    if before_compile is not None and not spec_seen:  # cached: still check the disk
        before_compile(spec)
    return exe, spec


def _lower_compile(fn, args, in_shardings, sharding, chunk, before_compile):
    try:
        lowered = jax.jit(fn, in_shardings=in_shardings, out_shardings=sharding).lower(*args)
    except ValueError as e:  # an output without the leading axis cannot be sharded
        raise InvalidScanConfig("fn", f"outputs must have a leading axis of {chunk}: {e}") from e
    spec = _result_spec(lowered.out_info, chunk)
    if before_compile is not None:
        before_compile(spec)
    return lowered.compile(), spec


def _result_spec(out, chunk) -> dict:
    """{name: (shape per hypothesis, dtype)} of ``fn``'s outputs, checked: a flat dict of
    arrays with a leading axis of ``chunk``."""
    if not isinstance(out, dict) or not all(hasattr(v, "shape") for v in out.values()):
        raise InvalidScanConfig("fn", "fn must return a flat dict {name: array [C, ...]}")
    bad = {k: v.shape for k, v in out.items() if v.shape[:1] != (chunk,)}
    if bad:
        raise InvalidScanConfig("fn", f"outputs need a leading axis of {chunk}, got {bad}")
    return {k: (v.shape[1:], v.dtype) for k, v in out.items()}


class _FlatCall:
    """A compiled exported scan program called like ``fn``'s executable: ``(batch, operands)``
    flattened to the leaves the program takes."""

    def __init__(self, exe, in_tree):
        self.exe, self.in_tree = exe, in_tree

    def __call__(self, batch, operands):
        leaves, tree = jax.tree.flatten((batch, operands))
        if tree != self.in_tree:
            raise InvalidScanConfig("operands", "the operands changed structure during the scan")
        return self.exe(*leaves)


def _stored_scan(fn, args, ops, operands, chunk, mesh, program, before_compile):
    """(executable, result spec) of ``fn`` from the exported-program cache of
    :mod:`jaxlike._compile` (:func:`~jaxlike._compile.stored_export`), keyed by ``program``
    (a stable description of ``fn``), the chunk, and the layout of the hypotheses and operands
    (the operands' classes and static fields, and their arrays' shapes): a new process that
    finds the program compiles it (a hit in JAX's cache) without tracing ``fn``; the same
    numbers as the traced program. None (trace as before) on more than one device, without a
    program folder, or for operands without a stable description."""
    from .. import _compile as programs

    where = programs.program_dir()
    if where is None or mesh.devices.size != 1:
        return None
    in_tree = jax.tree.structure((args, ops))
    flat_avals = jax.tree.leaves((args, ops))
    hyp_layout = tuple(
        (jax.tree_util.keystr(path), tuple(a.shape), str(a.dtype))
        for path, a in jax.tree_util.tree_flatten_with_path(args)[0]
    )
    try:
        key = programs.describe_key(
            "run_scan", program, chunk, hyp_layout, programs.describe_layout(operands)
        )
    except programs.Unstable:
        return None
    plain = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in flat_avals]

    def flat(*xs):
        batch, ops_ = jax.tree.unflatten(in_tree, xs)
        return fn(batch, ops_)

    found = programs.stored_export(
        where, key, plain, lambda: (jax.export.export(jax.jit(flat))(*plain), None)
    )
    if found is None:
        return None
    exported = found[0]
    spec = _result_spec(jax.tree.unflatten(exported.out_tree, exported.out_avals), chunk)
    if before_compile is not None:
        before_compile(spec)
    return _FlatCall(programs.compile_exported(exported, flat_avals), in_tree), spec


def _chunk(hyps, start, stop, chunk):
    """Rows [start, stop) padded to ``chunk`` rows by repeating the last one."""
    return take_rows(hyps, start, stop, chunk, pad="last")


def _execute(exe, hyps, n, todo, chunk, mesh, sink, reporter, operands=None):
    """Run the chunks ``todo``; chunk k+1 is dispatched before chunk k is fetched and stored."""
    extra = ()
    if operands is not None:  # placed once, replicated on every device of the mesh
        extra = (jax.device_put(operands, NamedSharding(mesh, PartitionSpec())),)

    def store(start, stop, out):
        host = {k: np.asarray(v)[: stop - start] for k, v in jax.device_get(out).items()}
        reporter.update(sink.write_chunk(start, host))

    pending = None
    for k in todo:
        start, stop = k * chunk, min((k + 1) * chunk, n)
        out = exe(shard_batch(_chunk(hyps, start, stop, chunk), mesh), *extra)
        if pending is not None:
            store(*pending)
        pending = (start, stop, out)
    if pending is not None:
        store(*pending)


def _combine_processes(store, pcount, results, done):
    """All results on every process of a ``jax.distributed`` run (merge files or all-gather)."""
    from jax.experimental import multihost_utils as mh

    if store is None:
        every = mh.process_allgather({"results": results, "done": done})
        out = {k: v.copy() for k, v in results.items()}
        for p in range(pcount):
            mask = np.asarray(every["done"][p], bool)
            for k in out:
                out[k][mask] = every["results"][k][p][mask]
        return out
    mh.sync_global_devices("jaxlike.scan: per-process stores written")
    err = None
    if jax.process_index() == 0:
        try:
            paths = [process_store_path(store, i, pcount) for i in range(pcount)]
            merge_stores(paths, store, overwrite=True)
        except Exception as e:  # reach the barrier anyway, so the others do not hang
            err = e
    mh.sync_global_devices("jaxlike.scan: stores merged")
    if err is not None:
        raise err
    return read_results(store)[1]


def run_scan(
    fn,
    hypotheses,
    *,
    store=None,
    chunk_size=None,
    memory_budget_bytes=None,
    devices=None,
    progress=True,
    resume=False,
    overwrite=False,
    config=None,
    model_digest="",
    attrs=None,
    process_index=None,
    process_count=None,
    operands=None,
    program=None,
) -> dict[str, np.ndarray]:
    """Evaluate ``fn`` on every hypothesis in chunks, sharded over devices, streamed to a store.

    Args:
        fn: pure JAX function, batch pytree (leading axis C) → ``{name: array [C, ...]}``;
            jit-compiled once (typically ``jax.vmap(single_hypothesis_fn)``).
        hypotheses: pytree of arrays with a common leading axis H.
        store: HDF5 path (one file per scan, see :class:`ScanStore`) or None (memory only).
        chunk_size: rows per chunk (rounded up to a multiple of the device count), or
        memory_budget_bytes: device-memory budget per device from which it is derived
            (:func:`choose_chunk_size`); default chunk size :data:`DEFAULT_CHUNK_SIZE`.
        devices: local devices to shard over (default ``jax.local_devices()``).
        progress: True/False, or a :class:`Progress` to report to.
        resume: continue ``store`` if it exists (refused if it belongs to a different scan or
            was computed with another chunk size; without ``chunk_size`` and
            ``memory_budget_bytes`` the file's chunk size is used); only chunks with rows not
            done (or damaged, see :mod:`._store`) are computed. Creates the file if missing.
        overwrite: replace an existing ``store`` (without it, and without ``resume``, an
            existing file is refused with :class:`~jaxlike.exceptions.InvalidScanFile`).
        config, model_digest, attrs: identity and metadata of the scan stored in the file
            (``config`` and ``model_digest`` are checked on resume).
        process_index, process_count: explicit multi-process partition (see module docs);
            default: ``jax.process_index()``/``jax.process_count()``.
        operands: optional pytree of arrays shared by every hypothesis (e.g. the model), passed
            to ``fn`` as its second argument, ``fn(batch, operands)``, and replicated on the
            devices. Compiled programs are then kept per (``fn``, chunk, devices, shapes), so a
            later scan with the same ``fn`` and operands of the same shapes (another mass range
            of the same layout) reuses the executable instead of compiling again.
        program: with ``operands``, a stable description of ``fn`` (numbers, strings, tuples:
            what its trace depends on besides the operands' layout, e.g. the CL levels and the
            rule of a mass scan). The program is then also kept exported in the persistent
            cache's ``programs`` folder (:mod:`jaxlike._compile`), so a new process with the
            same layout runs it without tracing ``fn`` (one device only). The description must
            change whenever ``fn`` would trace differently; jaxlike's source digest is part of
            the key, a caller's own code is not.

    Returns:
        ``{name: array [H, ...]}``, resumed rows included.

    Example::

        fn = jax.vmap(lambda h: {"mu_hat": h["n"] / h["b"]})
        out = run_scan(fn, {"n": n, "b": b}, store="scan.h5", chunk_size=256, resume=True)
    """
    hyps = jax.tree.map(np.asarray, hypotheses)
    _, n = flatten_hypotheses(hyps)
    devices = jax.local_devices() if devices is None else list(devices)
    pidx, pcount, distributed = _process_layout(process_index, process_count)
    own = None if store is None else process_store_path(store, pidx, pcount)
    if own is not None and not (resume or overwrite):
        for p in {own, Path(store)}:
            if p.exists():
                raise InvalidScanFile(_exists_message(p))
    resuming = own is not None and resume and own.exists()
    stored = stored_chunk_size(own) if resuming else None
    if stored and chunk_size is None and memory_budget_bytes is None:
        chunk_size = stored
    bound = fn if operands is None else (lambda batch: fn(batch, operands))
    chunk = _resolve_chunk_size(bound, hyps, n, devices, pcount, chunk_size, memory_budget_bytes)
    check_chunk_size(own, stored, chunk)  # before the compilation
    mesh = scan_mesh(devices)

    def check_disk(spec):  # before the compilation: a full disk is found in seconds
        if own is not None and not resuming:
            check_free_space(own, store_bytes(hyps, spec))

    exe, spec = _compile(fn, hyps, chunk, mesh, before_compile=check_disk, operands=operands,
                         program=program)  # fmt: skip
    ident = {"config": config, "model_digest": model_digest, "chunk_size": chunk}
    if own is None:
        sink = _MemoryResults(n, spec)
    elif resuming:
        sink = ScanStore.open_for_resume(own, hypotheses=hyps, result_spec=spec, **ident)
    else:
        sink = ScanStore.create(own, hyps, spec, attrs=attrs, overwrite=overwrite, **ident)
    try:
        mine = [k for k in range(-(-n // chunk)) if k % pcount == pidx]
        ranges = [(k, k * chunk, min((k + 1) * chunk, n)) for k in mine]
        resumed = sum(int(sink.done[a:b].sum()) for _, a, b in ranges)
        todo = [k for k, a, b in ranges if not sink.done[a:b].all()]
        reporter = progress if isinstance(progress, Progress) else Progress(enabled=bool(progress))
        where = f", process {pidx} of {pcount}" if pcount > 1 else ""
        info = f"chunks of {chunk} on {len(devices)} device(s){where}"
        reporter.start(sum(b - a for _, a, b in ranges), resumed, info=info)
        _execute(exe, hyps, n, todo, chunk, mesh, sink, reporter, operands)
        reporter.finish()
        results, done = sink.read_results(), sink.done.copy()
    finally:
        sink.close()
    return _combine_processes(store, pcount, results, done) if distributed else results
