"""How jaxlike compiles: the XLA options of its large programs.

XLA's CPU backend compiles an elementwise fusion either with its newer MLIR "fusion emitters"
or with the older LLVM elemental emitter (``xla_cpu_use_fusion_emitters``). On the minimiser's
program (a while loop of Newton runs with probes; ~4000 jaxpr equations for a 2-parameter model)
the elemental emitter compiles 30–35% faster at the same run time (measured on 2 cores,
jax 0.10.2: 1-bin validation workspace 3.05 → 2.09 s, Belle II 232-parameter likelihood
2.64 → 1.83 s; warm fits 0.68 → 0.53 ms and 25.1 → 24.6 ms; the Belle II minimum bit for bit
the same). The options apply only to the programs jitted with :func:`jit` and only on the CPU;
a jaxlib that does not know an option compiles with its defaults (checked once, at the first
compilation).

They also switch off XLA's ``tree_reduction_rewriter``, which splits every reduction over more
than 32 elements into a ``reduce-window`` of width 32 and a second reduction. On the CPU each
such window becomes a kernel of its own, and on the minimiser of a 64-parameter likelihood
(ATLAS sbottom, region A) their code generation was 0.56 of the 1.39 s of LLVM time (measured
with ``jax.profiler``, 2 cores, jax 0.10.2): XLA 2.03 → 1.41 s, first fit 2.6–2.9 → 2.2 s;
staus (117 parameters), ERJR (69) and Belle II (232) 0.1–0.5 s faster; a 1-bin model, whose
reductions are short, bit for bit unchanged. Sums over more than 32 terms are then added in
order instead of in blocks of 32: the minima moved by a few ulp (Belle II's 2NLL by 8 ulp, CLs
by 1e-13 relative); warm fits ran as fast.

Two more passes are left out where they cost compile time and change nothing that runs:

- ``hlo-verifier``, on every program: XLA's check of its own invariants after each pass, which
  rewrites nothing (0.07 of the 1.5 s of XLA on a 1-bin fit program, ``jax.profiler``; results
  bit for bit the same by construction, and measured so).
- ``while-loop-invariant-code-motion`` on the fit programs of *small* models (``jit(small=…)``;
  the fits' own predicate is :func:`jaxlike.fit._fit.small_fit`: at most 10 parameters and
  64 data). There the pass and the rounds of simplification it triggers were 0.25–0.3 of the
  1.5 s of XLA of the minimiser of ``validation_1bin_normsys_code1`` (1.53 → 1.28 s with the
  verifier also off; 0.1–0.2 s on the other small validation workspaces), and the fits came out
  bit for bit the same on all 14 small workspaces of ``bench_cold.py --small``, their warm
  fits 0.1–1 ms either way. On large models it is kept: there it moves the last bits (sbottom,
  Belle II, a 4-parameter model of 1000 bins) and leaving it out made warm fits 3–8% slower.

It also holds the persistent compilation cache (:func:`enable_cache`): on by default for the
API and the command line, in a private per-user folder, opt-out with ``JAXLIKE_CACHE_DIR=``.

JAX's cache stores the *compiled* program, keyed by the lowered program, so a new process still
traces and lowers every program before it can look it up (0.5 + 0.5 s for the minimiser of a
1-bin model, against 1.5 s of XLA). jaxlike therefore also keeps the lowered programs of
:func:`jit`, exported with :mod:`jax.export`, in ``<cache>/programs`` (:func:`program_dir`),
keyed by what the trace depends on (:func:`program_key`: jaxlike's source, the versions of
JAX, equinox and NumPy, the function, and the arguments' structure, static values and array
shapes). A new process deserialises the program and compiles it (a hit in JAX's cache) without
tracing; the numbers are those of the traced program, bit for bit (tested). Arguments whose
static part has no stable description (a user-defined class or function, a closure) are traced
as before. Not in the key: module-level settings of jaxlike changed at run time (e.g. assigning
``jaxlike.fit._newton.SEARCH_MAX_PARS``); whoever changes them should run with
``JAXLIKE_CACHE_DIR=`` or a cache folder of their own.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import functools
import hashlib
import os
import pickle
import stat
import tempfile
import types
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

__all__ = [
    "Unstable",
    "any_traced",
    "cache_dir",
    "compile_exported",
    "compiler_options",
    "describe_key",
    "describe_layout",
    "enable_cache",
    "jit",
    "program_dir",
    "program_key",
    "stored_export",
]

#: XLA debug options for jaxlike's large programs on the CPU (see the module docstring)
CPU_OPTIONS = {
    "xla_cpu_use_fusion_emitters": False,
    "xla_disable_hlo_passes": "tree_reduction_rewriter,hlo-verifier",
}

#: passes also left out of the programs of small models (:func:`jit` with ``small``; see the
#: module docstring)
SMALL_DISABLED_PASSES = "while-loop-invariant-code-motion"


@functools.cache
def _accepted_options() -> tuple[dict, dict]:
    """(:data:`CPU_OPTIONS`, its union with :data:`QUICK_OPTIONS`) as this jaxlib accepts
    them on the CPU: one tiny compilation with both (a second only where it fails); ({}, {})
    on other backends or where even :data:`CPU_OPTIONS` is refused."""
    if jax.default_backend() != "cpu":
        return {}, {}

    def accepted(options):
        try:
            jax.jit(lambda x: x + 1, compiler_options=options).lower(1.0).compile()
        except Exception:  # an option this jaxlib does not know
            return False
        return True

    both = {**CPU_OPTIONS, **QUICK_OPTIONS}
    if accepted(both):
        return dict(CPU_OPTIONS), both
    base = dict(CPU_OPTIONS) if accepted(CPU_OPTIONS) else {}
    return base, base


def compiler_options() -> dict:
    """The options :func:`jit` passes to XLA: :data:`CPU_OPTIONS` when the default backend is
    the CPU and this jaxlib accepts them (one tiny compilation to find out), else none."""
    return dict(_accepted_options()[0])


#: added for the small programs that run once per call (:func:`jit` with ``quick=True``):
#: LLVM without optimisation. Measured on the ATLAS sbottom likelihood (64 parameters, 2 cores,
#: jax 0.10.2): compiling the expected data 0.118 → 0.047 s, the hypotest's p-values ~0.08 s
#: less; the expected data bit for bit the same, the p-values within an ulp (tested: ≤ 4 ulp).
QUICK_OPTIONS = {"xla_backend_optimization_level": 0}


def small_options() -> dict:
    """:func:`compiler_options` with :data:`SMALL_DISABLED_PASSES` also left out (none where
    :func:`compiler_options` is empty: a jaxlib that refused :data:`CPU_OPTIONS`). XLA ignores
    the name of a pass it does not have."""
    options = compiler_options()
    if "xla_disable_hlo_passes" in options:
        options["xla_disable_hlo_passes"] += "," + SMALL_DISABLED_PASSES
    return options


def quick_options() -> dict:
    """:func:`compiler_options` with :data:`QUICK_OPTIONS` (on the CPU, where this jaxlib
    accepts them; else the same as :func:`compiler_options`)."""
    return dict(_accepted_options()[1])


def any_traced(*trees) -> bool:
    """Whether any leaf of ``trees`` is a JAX tracer (the call is inside jit/vmap/grad)."""
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(trees))


def jit(fun, *, cpu_options: bool = True, quick: bool = False, small=None):
    """``equinox.filter_jit(fun)`` with :func:`compiler_options` when called at the top level,
    plain ``filter_jit`` inside another trace (XLA options belong to the outer program). The
    wrapper is created at the first call, so importing jaxlike starts no backend.

    ``cpu_options=False``: XLA's default options. For programs that run long rather than
    once, such as many fits in one call (the toys): their code from the fusion emitters ran
    10% faster (2000 toy fits of the 1-bin validation workspace 0.020 → 0.018 s, 4000 of the
    ALP window 0.42 → 0.38 s, 2 cores), which outweighs the longer compile.

    ``quick=True``: :func:`quick_options`, for small programs that run once per call (a
    hypotest's expected data and p-values), whose compile is most of their cost.

    ``small``: a predicate of the call's ``(args, kwargs)``; where it holds, the program
    compiles with :func:`small_options` (a fit of a small model: see the module docstring).

    At the top level and with a program folder (:func:`program_dir`), the call goes through the
    exported-program cache (see the module docstring): the same numbers, no tracing in a
    process that finds the program on disk."""
    nested = eqx.filter_jit(fun)
    tops = {}  # compiler options → the top-level wrapper compiling with them

    @functools.wraps(fun)
    def call(*args, **kwargs):
        if any_traced(args, kwargs):
            return nested(*args, **kwargs)
        if not cpu_options:
            options = {}
        elif quick:
            options = quick_options()
        elif small is not None and small(args, kwargs):
            options = small_options()
        else:
            options = compiler_options()
        where = None if jax.config.jax_disable_jit else program_dir()
        if where is not None:
            out = _call_program(fun, where, args, kwargs, options)
            if out is not _NO_PROGRAM:
                return out
        key = tuple(sorted(options.items()))
        if key not in tops:
            tops[key] = eqx.filter_jit(fun, compiler_options=options or None)
        return tops[key](*args, **kwargs)

    return call


# ------------------------------------------------------------------ exported-program cache
#: files kept in the program folder; the least recently written beyond this are removed
MAX_PROGRAM_FILES = 512
#: programs kept loaded in this process (least recently used dropped first): each holds an
#: executable, which ``jax.clear_caches()`` does not release
MAX_LOADED_PROGRAMS = 64
#: (function, argument layout) → a loaded program, or None: this layout is traced as before
_programs: collections.OrderedDict = collections.OrderedDict()
#: what this process did with the program folder (read by tests and benchmarks)
program_stats = {"exported": 0, "loaded": 0, "traced": 0}
_NO_PROGRAM = object()


class Unstable(Exception):
    """An argument without a stable description across processes (see :func:`program_key`)."""


@functools.cache
def _source_digest() -> str:
    """SHA-256 over jaxlike's Python sources (path and bytes): any edit changes every key."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _environment() -> tuple:
    """Versions and switches the traced program depends on besides the arguments."""
    import jaxlib

    cfg = jax.config
    return (
        _source_digest(),
        jax.__version__,
        jaxlib.__version__,
        eqx.__version__,
        np.__version__,
        jax.default_backend(),
        bool(cfg.jax_enable_x64),
        str(cfg.jax_default_matmul_precision),
        str(cfg.jax_numpy_dtype_promotion),
        str(cfg.jax_numpy_rank_promotion),
    )


_PLAIN = (type(None), bool, int, float, complex, str, bytes)
#: modules whose classes and functions are described by name (their code is versioned in the
#: key); anything else is user code that may change between processes under the same name
_KNOWN = ("jaxlike", "jax", "jaxlib", "equinox", "numpy")


def _known(obj) -> bool:
    mod = getattr(obj, "__module__", None) or ""
    return mod.split(".")[0] in _KNOWN


def _describe(x, static: bool, out: list) -> None:
    """Append a description of ``x`` to ``out``: the value of everything the trace sees as a
    constant, and only (shape, dtype, weak type) of the arrays it sees as arguments — an array
    in a static field of a module is a constant and is described by its bytes."""
    if eqx.is_array(x):
        if static:
            a = np.asarray(x)
            out.append(("const", a.dtype.str, a.shape, hashlib.sha256(a.tobytes()).hexdigest()))
        else:
            out.append(("arg", np.shape(x), np.dtype(x.dtype).str, _weak(x)))
    elif type(x) in _PLAIN:
        out.append((type(x).__name__, repr(x)))
    elif callable(getattr(type(x), "structural_key", None)) and _known(type(x)):
        out.append(("key", type(x).__module__, type(x).__qualname__))
        _describe(x.structural_key(), True, out)  # what the trace depends on (ModelConfig)
    elif dataclasses.is_dataclass(x) and not isinstance(x, type):
        if not _known(type(x)):
            raise Unstable(type(x).__qualname__)
        out.append(("class", type(x).__module__, type(x).__qualname__))
        for f in dataclasses.fields(x):
            out.append(("field", f.name))
            _describe(getattr(x, f.name, None), static or f.metadata.get("static", False), out)
    elif isinstance(x, (tuple, list)):
        if type(x) not in (tuple, list) and not _known(type(x)):  # a user's NamedTuple
            raise Unstable(type(x).__qualname__)
        out.append((type(x).__qualname__, len(x)))
        for v in x:
            _describe(v, static, out)
    elif isinstance(x, dict):
        out.append(("dict", len(x)))
        for k, v in x.items():
            _describe(k, True, out)
            _describe(v, static, out)
    elif isinstance(x, (set, frozenset)):
        parts = []
        for v in x:
            sub: list = []
            _describe(v, True, sub)
            parts.append(repr(sub))
        out.append((type(x).__name__, tuple(sorted(parts))))
    elif isinstance(x, (slice, np.dtype)):
        out.append((type(x).__name__, repr(x)))
    elif isinstance(x, enum.Enum) and _known(type(x)):
        out.append(("enum", type(x).__module__, type(x).__qualname__, x.name))
    elif isinstance(x, types.FunctionType) and _known(x) and x.__closure__ is None:
        out.append(("function", x.__module__, x.__qualname__, x.__code__.co_firstlineno))
    elif isinstance(x, (types.BuiltinFunctionType, np.ufunc)) and _known(x):
        out.append(("builtin", x.__module__, getattr(x, "__qualname__", x.__name__)))
    elif isinstance(x, functools.partial):
        out.append(("partial",))
        _describe(x.func, True, out)
        _describe(x.args, True, out)
        _describe(x.keywords, True, out)
    else:
        raise Unstable(type(x).__qualname__)


def _weak(x) -> bool:
    return bool(getattr(x, "weak_type", False))


def program_key(fun, args: tuple, kwargs: dict) -> str:
    """SHA-256 key of the program ``jit(fun)(*args, **kwargs)`` traces to, stable across
    processes: :func:`_environment` (jaxlike's source digest and the library versions), the
    function (module, name, first line) and :func:`_describe` of the arguments. Raises
    :class:`Unstable` for an argument without a stable description."""
    code = getattr(fun, "__code__", None)
    if not _known(fun) or code is None or getattr(fun, "__closure__", None) is not None:
        raise Unstable(repr(fun))  # a closure's captured values are not in the key
    parts: list = [_environment(), (fun.__module__, fun.__qualname__, code.co_firstlineno)]
    _describe((args, kwargs), False, parts)
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def program_dir() -> str | None:
    """The folder of exported programs: ``<cache_dir()>/programs``, private to this user
    (see :func:`_private_dir`); None when the cache is off (``JAXLIKE_CACHE_DIR=``), the
    folder is not private, or this JAX cannot serialise programs (it needs ``flatbuffers``)."""
    where = cache_dir()
    if where is None:
        return None
    where = os.path.join(where, "programs")
    return where if _usable_program_dir(where) else None


@functools.cache
def _usable_program_dir(where: str) -> bool:
    import importlib.util

    return importlib.util.find_spec("flatbuffers") is not None and _private_dir(where)


class _Program:
    """A program of the cache: the jitted call of an exported function of the flat array
    arguments, and how to rebuild the output (its array skeleton and its static part)."""

    def __init__(self, exported, meta, options):
        skeleton, static_out = meta
        avals = [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type)
                 for a in exported.in_avals]  # fmt: skip
        self.call = compile_exported(exported, avals, options)
        self.out_tree = jax.tree.structure(skeleton)
        self.static_out = static_out

    def __call__(self, leaves):
        out = self.call(*leaves)
        return eqx.combine(jax.tree.unflatten(self.out_tree, out), self.static_out)


def _on_default_device(leaves) -> bool:
    """Arrays the single-device exported program can take: host arrays, or JAX arrays on
    the default device only (a sharded argument goes through the traced path)."""
    dev = None
    for x in leaves:
        if isinstance(x, jax.Array):
            ds = x.sharding.device_set
            if len(ds) != 1:
                return False
            dev = dev or jax.devices()[0]
            if next(iter(ds)) != dev:
                return False
    return True


def _call_program(fun, where: str, args: tuple, kwargs: dict, options: dict):
    """``fun(*args, **kwargs)`` through the program cache (compiled with the XLA ``options``),
    or :data:`_NO_PROGRAM` when this layout is traced as before (no stable key, an export JAX
    refuses, sharded arguments)."""
    dynamic, static = eqx.partition((args, kwargs), eqx.is_array)
    leaves, dyn_tree = jax.tree.flatten(dynamic)
    if not _on_default_device(leaves):
        return _NO_PROGRAM
    st_leaves, st_tree = jax.tree.flatten(static)
    try:
        mem = (fun, tuple(sorted(options.items())), where, dyn_tree, st_tree, tuple(st_leaves))
        mem += tuple((np.shape(x), np.dtype(x.dtype), _weak(x)) for x in leaves)
        prog = _programs.get(mem, _NO_PROGRAM)
    except TypeError:  # an unhashable static value: filter_jit reports it
        return _NO_PROGRAM
    if prog is _NO_PROGRAM:
        prog = _programs[mem] = _find_program(
            fun, where, args, kwargs, leaves, dyn_tree, static, options
        )
        while len(_programs) > MAX_LOADED_PROGRAMS:
            _programs.popitem(last=False)
    else:
        _programs.move_to_end(mem)
    return _NO_PROGRAM if prog is None else prog(leaves)


def _find_program(fun, where, args, kwargs, leaves, dyn_tree, static, options):
    """Load the program of this layout from ``where``, or export it and store it there.
    None when the layout has no stable key or JAX cannot export the function."""
    try:
        key = program_key(fun, args, kwargs)
    except Unstable:
        return None
    avals = [jax.ShapeDtypeStruct(np.shape(x), x.dtype, weak_type=_weak(x)) for x in leaves]
    box = {}

    def flat(*xs):
        a, k = eqx.combine(jax.tree.unflatten(dyn_tree, xs), static)
        out_dyn, out_static = eqx.partition(fun(*a, **k), eqx.is_array)
        out_leaves, out_tree = jax.tree.flatten(out_dyn)
        # strong types: a deserialised program returns none weak, and the next program's key
        # (which sees weak types) must not depend on whether this one was traced or loaded
        out_leaves = [jax.lax.convert_element_type(y, y.dtype) for y in out_leaves]
        box["out"] = (jax.tree.unflatten(out_tree, list(range(len(out_leaves)))), out_static)
        return out_leaves

    def export_it():
        return jax.export.export(jax.jit(flat))(*avals), box["out"]

    found = stored_export(where, key, avals, export_it)
    return None if found is None else _Program(*found, options)


def stored_export(where: str, key: str, avals: list, export_it):
    """(exported, meta) of the program ``key`` in the program folder ``where``: read from
    ``<where>/<key>.program`` when it is there and takes exactly ``avals`` (shapes, dtypes,
    weak types), else ``export_it()`` (→ (``jax.export.Exported``, meta), meta any picklable
    value the caller needs to use the program), written there atomically. None when the
    export fails (e.g. a host callback, which :mod:`jax.export` cannot serialise): the caller
    traces as before. ``meta`` is read with :mod:`pickle` — the folder is private to the user
    (:func:`program_dir`), as JAX's own cache of executables is."""
    path = os.path.join(where, key + ".program")
    found = _read_program(path, avals)
    if found is not None:
        program_stats["loaded"] += 1
        return found
    try:
        exported, meta = export_it()
        data = pickle.dumps({"exported": exported.serialize(), "meta": meta})
    except Exception:  # e.g. a host callback: not exportable; traced as before
        program_stats["traced"] += 1
        return None
    _store(where, path, data)
    program_stats["exported"] += 1
    return exported, meta


def _types(avals) -> list:
    return [(tuple(a.shape), np.dtype(a.dtype), bool(a.weak_type)) for a in avals]


def _read_program(path: str, avals: list):
    """(exported, meta) stored at ``path`` if it takes exactly ``avals``; None when the file
    is missing, damaged, of an older format or of other argument types (then it is exported
    anew and replaced)."""
    from jax import export

    try:
        with open(path, "rb") as f:
            blob = pickle.load(f)
        exported = export.deserialize(blob["exported"])
    except Exception:
        return None
    return (exported, blob["meta"]) if _types(exported.in_avals) == _types(avals) else None


def compile_exported(exported, avals: list, options: dict | None = None):
    """The executable of an exported program for exactly ``avals`` (with their shardings),
    compiled ahead of time with the XLA ``options``: one executable for host and committed
    device arrays alike (``jax.jit`` would lower again for committed arguments). The compile
    is a hit in JAX's persistent cache when the program was compiled before."""
    return jax.jit(exported.call).lower(*avals).compile(options or None)


def describe_key(*parts) -> str:
    """SHA-256 key of a program described by ``parts`` (numbers, strings, tuples, arrays and
    jaxlike dataclasses, as :func:`program_key` describes arguments — arrays by value) and
    :func:`_environment`. Raises :class:`Unstable` for a part without a stable description."""
    out: list = [_environment()]
    _describe(parts, True, out)
    return hashlib.sha256(repr(out).encode()).hexdigest()


def describe_layout(tree) -> tuple:
    """Stable description of a pytree of arrays for :func:`describe_key`: the classes and
    static fields of its nodes, and only (shape, dtype) of its arrays. Raises
    :class:`Unstable` like :func:`program_key`."""
    out: list = []
    _describe(tree, False, out)
    return tuple(out)


def _store(where: str, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file renamed), then keep at most
    :data:`MAX_PROGRAM_FILES` programs (the oldest written are removed). A full or read-only
    disk only means the next process traces again."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=where, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        tmp = None
        files = sorted(Path(where).glob("*.program"), key=lambda p: p.stat().st_mtime)
        for old in files[: max(0, len(files) - MAX_PROGRAM_FILES)]:
            old.unlink(missing_ok=True)
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def cache_dir() -> str | None:
    """The persistent compilation cache folder: ``$JAXLIKE_CACHE_DIR`` if set (an empty value
    disables the cache), else ``$XDG_CACHE_HOME/jaxlike/xla`` (default ``~/.cache/jaxlike/xla``)."""
    where = os.environ.get("JAXLIKE_CACHE_DIR")
    if where is not None:
        return where or None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jaxlike", "xla")


def _private_dir(path: str) -> bool:
    """Create ``path`` (mode 0700) if needed; True only for a folder of this user that no one
    else can write to (a cache others can write is a way to run their code in our process)."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return False
    return not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def enable_cache() -> str | None:
    """Switch on JAX's persistent compilation cache in :func:`cache_dir`, so a new process
    loads compiled programs instead of compiling them (tracing still runs). Called when
    jaxlike is imported; does nothing when the user configured a JAX cache already, when
    ``JAXLIKE_CACHE_DIR`` is empty (opt-out) or when the folder is not private to this user
    (created 0700; refused if another user owns it or group/others may write it). Every program
    is stored, the small ones too: the hypothesis test's helper programs, compiled afresh in
    0.04-0.15 s, were up to a third of a cached first answer (with the model's arrays placed
    by ``device_put``: 0.56-0.62 -> 0.34-0.40 s on two small validation workspaces, 2 cores).
    Returns the folder in use, or None."""
    where = cache_dir()
    if not where or jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir or None
    if not _private_dir(where):
        return None
    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return where
