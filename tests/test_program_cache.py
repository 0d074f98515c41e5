"""The exported-program cache of :mod:`jaxlike._compile` (issue 17, item 3).

A new process that finds a program in ``<cache>/programs`` compiles it without tracing; these
tests check that what it computes is the traced program's answer bit for bit, that the key
changes with everything the trace depends on and with nothing else, and that anything without a
stable description (user code, closures) is traced as before.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlike
from jaxlike import _compile
from jaxlike.fit._fit import fit_arrays, prepare_fit_inputs


def _spec(nbins=2, hi=1.1, names=("mu", "bkg_norm")):
    bkg = [50.0 + 10 * i for i in range(nbins)]
    return {
        "channels": [{"name": "sr", "samples": [
            {"name": "signal", "data": [5.0 + i for i in range(nbins)],
             "modifiers": [{"name": names[0], "type": "normfactor", "data": None}]},
            {"name": "background", "data": bkg,
             "modifiers": [{"name": names[1], "type": "normsys", "data": {"hi": hi, "lo": 0.9}},
                           {"name": "stat", "type": "staterror", "data": [3.0] * nbins}]}]}],
        "observations": [{"name": "sr", "data": [b + 4.0 for b in bkg]}],
        "measurements": [{"name": "m", "config": {"poi": names[0], "parameters": []}}],
        "version": "1.0.0",
    }  # fmt: skip


def _model(**kw):
    ws = jaxlike.Workspace(_spec(**kw))
    model = ws.model()
    return model, ws.data(model)


def _same(a, b):
    """Every array leaf equal bit for bit (NaN where NaN), same structure."""
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(np.atleast_1d(x).view(np.uint8), np.atleast_1d(y).view(np.uint8))


@pytest.fixture
def program_folder(tmp_path, monkeypatch):
    """A private cache folder for this test; the in-memory program table emptied around it."""
    monkeypatch.setenv("JAXLIKE_CACHE_DIR", str(tmp_path / "cache"))
    _compile._programs.clear()
    before = dict(_compile.program_stats)
    yield tmp_path / "cache" / "programs", before
    _compile._programs.clear()


def _delta(before):
    return {k: _compile.program_stats[k] - before[k] for k in before}


def test_loaded_program_is_the_traced_program(program_folder, monkeypatch):
    folder, before = program_folder
    model, data = _model()
    monkeypatch.setenv("JAXLIKE_CACHE_DIR", "")
    ref_fit = jaxlike.fit(model, data)
    ref_test = jaxlike.hypotest(1.0, data, model)
    monkeypatch.setenv("JAXLIKE_CACHE_DIR", str(folder.parent))
    exported_fit = jaxlike.fit(model, data)
    exported_test = jaxlike.hypotest(1.0, data, model)
    d = _delta(before)
    assert d["exported"] >= 2 and d["loaded"] == 0, d
    assert len(list(folder.glob("*.program"))) == d["exported"]
    _compile._programs.clear()  # what a new process sees: only the files
    loaded_fit = jaxlike.fit(model, data)
    loaded_test = jaxlike.hypotest(1.0, data, model)
    d2 = _delta(before)
    assert d2["exported"] == d["exported"] and d2["loaded"] == d["exported"], d2
    for a, b in ((ref_fit, exported_fit), (ref_fit, loaded_fit)):
        assert bool(a.converged)
        _same(a.bestfit, b.bestfit)
        _same(a.twice_nll, b.twice_nll)
        _same(a.covariance, b.covariance)
        _same(a.status, b.status)
    for t in (exported_test, loaded_test):
        for f in ("cls_obs", "cls_exp", "q_obs", "twice_nll", "fitted_pars", "converged"):
            _same(getattr(ref_test, f), getattr(t, f))


_CHILD = textwrap.dedent(
    """
    import json, sys, time
    t0 = time.perf_counter()
    import jaxlike
    from jaxlike import _compile
    ws = jaxlike.Workspace(json.loads(sys.argv[1]))
    model = ws.model()
    data = ws.data(model)
    t = time.perf_counter()
    fit = jaxlike.fit(model, data)
    test = jaxlike.hypotest(1.0, data, model)
    out = {"twice_nll": float(fit.twice_nll).hex(), "cls": float(test.cls_obs).hex(),
           "bestfit": [float(x).hex() for x in fit.bestfit], "seconds": time.perf_counter() - t}
    out.update(_compile.program_stats)
    print(json.dumps(out))
    """
)


def _child(cache: str, spec: dict) -> dict:
    env = dict(os.environ, JAXLIKE_CACHE_DIR=cache)
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(spec)],
        env=env, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_a_new_process_traces_nothing_and_answers_the_same(tmp_path):
    """The claim of the cache: a second process loads every program of fit + hypotest (no
    export: the keys are stable across processes) and returns the first one's numbers."""
    spec = _spec(nbins=3)
    off = _child("", spec)
    first = _child(str(tmp_path / "c"), spec)
    second = _child(str(tmp_path / "c"), spec)
    assert off["exported"] == off["loaded"] == 0
    assert first["exported"] >= 2 and first["loaded"] == 0, first
    assert second["exported"] == 0 and second["loaded"] == first["exported"], second
    assert second["traced"] == 0
    for k in ("twice_nll", "cls", "bestfit"):
        assert off[k] == first[k] == second[k]


def test_key_follows_what_the_trace_depends_on():
    model, data = _model()
    d, init, lo, hi, fixed = prepare_fit_inputs(model, data, host=True)
    fa = fit_arrays

    def key(m=model, dd=d, **kw):
        return _compile.program_key(fa, (m, dd, init, lo, hi, fixed), dict(maxiter=200, **kw))

    k0 = key()
    # new values in arrays the program takes as arguments: the same program
    assert key(dd=d + 1.0) == k0
    assert key(m=_model(names=("sigma", "alpha_b"))[0]) == k0  # names are metadata
    # what the trace depends on: shapes, static options, the model's structure
    assert key(m=_model(nbins=3)[0], dd=np.ones(7)) != k0
    assert key(tol=1e-10) != k0
    assert key(dd=d.astype(np.float32)) != k0
    code0 = jaxlike.Workspace(_spec()).model(modifier_settings={"normsys": {"interpcode": "code1"}})
    assert key(m=code0) != k0
    assert key(m=dataclasses.replace(model, hessian_layout="dense")) != k0


def test_user_code_is_traced_not_cached(program_folder):
    folder, before = program_folder

    @dataclasses.dataclass(frozen=True)
    class Scale:  # a user's class: its code may change under the same name
        factor: float

    f = _compile.jit(lambda x, s: s.factor * x)
    with pytest.raises(_compile.Unstable):
        _compile.program_key(f.__wrapped__, (np.ones(2), Scale(2.0)), {})
    assert np.allclose(f(np.ones(2), Scale(2.0)), 2.0)  # answered by the traced path
    closure = 3.0
    with pytest.raises(_compile.Unstable):
        _compile.program_key(lambda x: closure * x, (np.ones(2),), {})

    def inner(x):  # a closure made inside jaxlike would be refused the same way
        return closure * x

    inner.__module__ = "jaxlike.fit._fit"
    with pytest.raises(_compile.Unstable):
        _compile.program_key(inner, (np.ones(2),), {})
    assert not folder.exists() or not list(folder.glob("*.program"))
    assert _delta(before)["exported"] == 0


def test_a_damaged_file_is_replaced_and_the_folder_is_bounded(program_folder, monkeypatch):
    folder, before = program_folder
    model, data = _model()
    ref = jaxlike.fit(model, data)
    (path,) = folder.glob("*.program")
    path.write_bytes(b"not a program")
    _compile._programs.clear()
    _same(jaxlike.fit(model, data).bestfit, ref.bestfit)
    assert _delta(before)["exported"] == 2
    assert path.read_bytes() != b"not a program"
    monkeypatch.setattr(_compile, "MAX_PROGRAM_FILES", 1)
    monkeypatch.setattr(_compile, "MAX_LOADED_PROGRAMS", 1)
    model3, data3 = _model(nbins=3)
    jaxlike.fit(model3, data3)
    assert len(list(folder.glob("*.program"))) == 1  # on disk
    assert len(_compile._programs) == 1  # and loaded in this process


def test_no_program_folder_when_the_cache_is_off_or_shared(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXLIKE_CACHE_DIR", "")
    assert _compile.program_dir() is None
    shared = tmp_path / "shared"
    (shared / "programs").mkdir(parents=True)
    os.chmod(shared / "programs", 0o777)  # others could plant programs there
    monkeypatch.setenv("JAXLIKE_CACHE_DIR", str(shared))
    assert _compile.program_dir() is None
    monkeypatch.setenv("JAXLIKE_CACHE_DIR", str(tmp_path / "mine"))
    assert _compile.program_dir() == str(tmp_path / "mine" / "programs")
    assert Path(_compile.program_dir()).is_dir()


def _scan_fn(batch, ops):
    """A small vmapped scan function with a loop (a program worth caching)."""

    def one(x):
        return jax.lax.fori_loop(0, 5, lambda i, y: jnp.cos(y) * ops["a"][i % 3] + x, x)

    return {"y": jax.vmap(one)(batch["x"]), "s": batch["x"] * ops["b"]}


def test_scan_program_is_the_traced_program(program_folder, monkeypatch):
    from jaxlike.stream import clear_compiled, run_scan

    folder, before = program_folder
    hyps = {"x": np.linspace(0.0, 1.0, 11)}
    ops = {"a": np.array([0.5, 0.25, 0.125]), "b": np.float64(2.0)}
    run = lambda **kw: run_scan(_scan_fn, hyps, operands=ops, chunk_size=4, progress=False, **kw)  # noqa: E731
    monkeypatch.setenv("JAXLIKE_CACHE_DIR", "")
    clear_compiled()
    ref = run(program=("test", 1))
    monkeypatch.setenv("JAXLIKE_CACHE_DIR", str(folder.parent))
    clear_compiled()
    exported = run(program=("test", 1))
    assert _delta(before) == {"exported": 1, "loaded": 0, "traced": 0}
    clear_compiled()  # a new process: only the file
    loaded = run(program=("test", 1))
    assert _delta(before) == {"exported": 1, "loaded": 1, "traced": 0}
    for k in ref:
        _same(ref[k], exported[k])
        _same(ref[k], loaded[k])
    clear_compiled()
    run(program=("test", 2))  # another description: another program
    ops3 = {"a": np.ones(4), "b": np.float64(2.0)}  # another operand shape: another program
    clear_compiled()
    run_scan(_scan_fn, hyps, operands=ops3, chunk_size=4, progress=False, program=("test", 1))
    assert _delta(before)["exported"] == 3
    clear_compiled()
    run()  # no description: traced, nothing stored
    assert _delta(before)["exported"] == 3
    clear_compiled()


def test_mass_scan_program_is_the_traced_program(program_folder, monkeypatch):
    """A mass scan read from the program folder (README command 1 run again) gives the traced
    scan's numbers bit for bit; another rule is another program."""
    from jaxlike.parametric import build_mass_scan
    from jaxlike.scan import mass_scan
    from jaxlike.stream import clear_compiled

    folder, before = program_folder
    rng = np.random.default_rng(3)
    edges = np.linspace(0.0, 10.0, 2001)
    counts = rng.poisson(300 * np.exp(-0.5 * (edges[1:] + edges[:-1]) / 7))
    scan, masses, _ = build_mass_scan({
        "spectrum": {"edges": edges.tolist(), "counts": [counts.tolist()]},
        "signal": {"shape": "gauss", "tables": [{"mass": [1.0, 9.0], "sigma": [0.05, 0.12]}]},
        "background": {"kind": "bernstein", "order": 1},
        "window": {"lo": 5.0, "hi": 5.0, "n_bins": 20},
        "scan": {"masses": [2.0, 4.5, 7.0], "cl": [0.95]},
    })  # fmt: skip
    monkeypatch.setenv("JAXLIKE_CACHE_DIR", "")
    clear_compiled()
    ref = mass_scan(scan, masses, progress=False)
    monkeypatch.setenv("JAXLIKE_CACHE_DIR", str(folder.parent))
    runs = []
    for _ in range(2):  # exported, then loaded (a new process's view: only the file)
        clear_compiled()
        runs.append(mass_scan(scan, masses, progress=False))
    assert _delta(before) == {"exported": 1, "loaded": 1, "traced": 0}
    for out in runs:
        for field in ("mu_hat", "significance", "ul_obs", "ul_exp", "fit_converged"):
            _same(np.asarray(ref[field]), np.asarray(out[field]))
    clear_compiled()
    mass_scan(scan, masses, progress=False, rule="clsb")
    assert _delta(before)["exported"] == 2
    clear_compiled()


def test_toy_programs_are_the_traced_programs(program_folder, monkeypatch):
    """A toy-based hypothesis test whose programs (the Fisher Hessians, the toy fits) come from
    the folder gives the traced test's toys bit for bit; its first call in a new process then
    skips the trace (10.8 → 1.8 s for 500 + 500 toys of a 1-bin workspace, 2 cores)."""
    folder, before = program_folder
    model, data = _model()
    run = lambda: jaxlike.hypotest(1.0, data, model, calctype="toybased", ntoys=40, seed=3)  # noqa: E731
    monkeypatch.setenv("JAXLIKE_CACHE_DIR", "")
    ref = run()
    monkeypatch.setenv("JAXLIKE_CACHE_DIR", str(folder.parent))
    exported = run()
    n = _delta(before)["exported"]
    assert n >= 4  # the data fits, the Fisher Hessians, the toy fits
    _compile._programs.clear()  # a new process: only the files
    loaded = run()
    assert _delta(before) == {"exported": n, "loaded": n, "traced": 0}
    for out in (exported, loaded):
        for f in ("cls_obs", "clsb_obs", "clb_obs", "cls_exp", "q_sb", "q_b", "mu_hat_sb"):
            _same(getattr(ref, f), getattr(out, f))
