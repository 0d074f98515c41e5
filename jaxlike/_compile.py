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

It also holds the persistent compilation cache (:func:`enable_cache`): on by default for the
API and the command line, in a private per-user folder, opt-out with ``JAXLIKE_CACHE_DIR=``.
"""

from __future__ import annotations

import functools
import os
import stat

import equinox as eqx
import jax

__all__ = ["any_traced", "cache_dir", "compiler_options", "enable_cache", "jit"]

#: XLA debug options for jaxlike's large programs on the CPU (see the module docstring)
CPU_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


@functools.cache
def compiler_options() -> dict:
    """The options :func:`jit` passes to XLA: :data:`CPU_OPTIONS` when the default backend is
    the CPU and this jaxlib accepts them (one tiny compilation to find out), else none."""
    if jax.default_backend() != "cpu":
        return {}
    try:
        jax.jit(lambda x: x + 1, compiler_options=CPU_OPTIONS).lower(1.0).compile()
    except Exception:  # an option this jaxlib does not know: keep XLA's defaults
        return {}
    return dict(CPU_OPTIONS)


def any_traced(*trees) -> bool:
    """Whether any leaf of ``trees`` is a JAX tracer (the call is inside jit/vmap/grad)."""
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(trees))


def jit(fun):
    """``equinox.filter_jit(fun)`` with :func:`compiler_options` when called at the top level,
    plain ``filter_jit`` inside another trace (XLA options belong to the outer program). The
    wrapper is created at the first call, so importing jaxlike starts no backend."""
    nested = eqx.filter_jit(fun)
    top = None

    @functools.wraps(fun)
    def call(*args, **kwargs):
        nonlocal top
        if any_traced(args, kwargs):
            return nested(*args, **kwargs)
        if top is None:
            top = eqx.filter_jit(fun, compiler_options=compiler_options() or None)
        return top(*args, **kwargs)

    return call


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
    (created 0700; refused if another user owns it or group/others may write it). Programs that
    compile in under 0.1 s are not stored. Returns the folder in use, or None."""
    where = cache_dir()
    if not where or jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir or None
    if not _private_dir(where):
        return None
    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    return where
