"""jaxlike mass scans vs pyhf: the ALP-like example scan of 500 mass hypotheses, side by side.

Data: ``jaxlike.examples.write_alp_example(tmp, seed)`` (synthetic e+e− → γa, a → γγ
spectrum; Crystal-Ball signal, 4th-order Bernstein background, 100-bin windows −20σ…+30σ,
Gaussian nuisances rel_eff 5 % and rel_res 8 %), with the scan masses replaced by an explicit
list of ``--masses`` (500) masses spread uniformly over 0.3–8.9 GeV outside the vetoes.

A. The parametric scan (``jaxlike.scan.mass_scan``: fit, local significance, observed and
   expected 95% CL CLs limits per mass) in a FRESH child process pinned to ``--cores`` (2)
   CPUs, persistent compilation cache off: the cold time runs from the child's first line
   (imports included) to the results of the first pass on the host; a second full pass in the
   same process gives the steady rate; peak RSS of the child.
B. The same scan as HistFactory workspaces, one per mass: the window's observed counts; a
   background sample = the window's background-only expectation from jaxlike's own μ=0 fit of
   the WindowModel, with a free normfactor ``bkg_norm``; a signal sample = the nominal
   Crystal-Ball yield per bin of μ_ref(m) produced events with the POI ``mu`` (normfactor,
   bounds [0, 10]), a normsys ``eff`` (±rel_eff) and a histosys ``res`` (templates at
   σ(1 ± rel_res)). μ_ref(m) = 2/√(Σ s²/b) (the Wald median expected limit, s per unit μ) makes
   the POI the signal strength in units of about the expected limit at every mass, so all
   workspaces share one layout (same bounds) and the test POI is 1. Vetoed window bins get
   observed 0, background 1e-9 and no signal: they add < 1e-8 to 2NLL (exact zero bins are
   avoided: jaxlike's HistFactory gradient is NaN at n = λ = 0). pyhf-numpy (converged
   SciPy optimizer) runs a q̃ hypotest at μ = 1 plus ``upper_limit`` (toms748) on a subset of
   the masses, extrapolated to all; jaxlike runs all of them as ONE vmapped call over the
   stacked models (patch_scan's per-hypothesis function: hypotest_prepare + hypotest_at +
   upper_limit_prepared). Agreement on the pyhf subset; where CLs differ by more than 5e-4
   (relative) or limits by more than 0.5%, the 2NLL of the five fits of the test are compared
   (the lower minimum is right: both minimise the same 2NLL, so the lower value is the better
   fit).
C. Global significance: ``scan_toys`` (background-only toys of the whole scan) +
   ``global_significance`` and the Gross–Vitells estimate, on CPU in this process. The toys
   run in batches of ``--toy-batch`` (20) with ``chunk_size=--toy-chunk`` (1 toy = one call
   of 500 × 2 fits; the package default, 9 toys per call, was ~3× slower per toy on this
   CPU); batches stop starting after ``--toy-budget`` seconds, and fewer toys than asked
   then fail the target.

Usage::

    python benchmarks/bench_scan.py [--quick] [--json out.json] [--only ABC] [--seed N]

``--quick``: 100 masses, 20 toys, pyhf on 3 masses (≲ 5 min on 2 loaded cores); the targets
are for 500 masses and 200 toys and are not judged in quick mode. A ``mass_scan`` with
``chunk_size=--alt-chunk`` (50) is timed as a third pass of A (0: skip). pyhf always runs with
``scipy_optimizer(tolerance=1e-10)``; OpenBLAS is limited to one thread (as bench_core).
``--child scan`` is the worker of benchmark A.
"""

from __future__ import annotations

import os
import time

T_START = time.perf_counter()
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import faulthandler  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    CacheCounter,
    describe_machine,
    fmt_machine,
    fmt_machine_short,
    fmt_s,
    load_1min,
    peak_rss_mb,
    print_rows,
    pyhf_hypotest_nlls,
    pyhf_window_runs,
    ratio,
    run_child_on_cores,
    timed,
    verdict,
)

import jaxlike  # noqa: E402
from jaxlike.examples import write_alp_example  # noqa: E402
from jaxlike.fit import fit_arrays, prepare_fit_inputs  # noqa: E402
from jaxlike.infer import hypotest_at, hypotest_prepare, upper_limit_prepared  # noqa: E402
from jaxlike.parametric import build_mass_scan, hypothesis_significance, load_config  # noqa: E402
from jaxlike.scan import (  # noqa: E402
    Progress,
    background_expectation,
    global_significance,
    mass_scan,
    scan_toys,
)

CHILD_TIMEOUT_S = 1800  # the scan child taking longer is an error
WATCHDOG_S = 1200  # a single pass taking longer dumps the stacks (jaxlib CPU LAPACK deadlocks)
COLUMNS = ("task", "jaxlike", "pyhf-numpy", "ratio", "target", "result", "details", "machine")
CLS_TOL, UL_TOL = 5e-4, 5e-3  # relative; beyond these the fits' 2NLL are compared
VETO_BKG = 1e-9  # background of a vetoed window bin in the HistFactory workspaces


# ----------------------------------------------------------------------------- the scan
def masses_outside(vetoes, start: float, stop: float, n: int) -> np.ndarray:
    """``n`` masses spread uniformly over [start, stop] minus the vetoed intervals."""
    segs = [(start, stop)]
    for lo, hi in sorted(map(tuple, vetoes)):
        segs = [p for a, b in segs for p in ((a, min(b, lo)), (max(a, hi), b)) if p[1] > p[0]]
    lengths = np.array([b - a for a, b in segs])
    at = np.linspace(0.0, lengths.sum(), n)
    ends = np.cumsum(lengths)
    k = np.minimum(np.searchsorted(ends, at, side="left"), len(segs) - 1)
    starts = np.array([a for a, _ in segs])
    return starts[k] + at - (ends[k] - lengths[k])


def write_scan(folder: Path, seed: int, n: int) -> Path:
    """The ALP example with its scan masses replaced by ``n`` masses outside the vetoes."""
    path = write_alp_example(folder, seed=seed)
    cfg = load_config(path)
    masses = masses_outside(cfg["window"]["vetoes"], 0.3, 8.9, n)
    listed = "[" + ", ".join(f"{m:.7g}" for m in masses) + "]"
    text, k = re.subn(
        r"^masses = .*$",
        f"masses = {listed}  # {n} masses in 0.3-8.9 GeV outside the vetoes (bench_scan.py)",
        path.read_text(),
        flags=re.M,
    )
    if k != 1:
        raise RuntimeError(f"expected one 'masses = ' line in {path}, found {k}")
    path.write_text(text)
    _, got, _ = build_mass_scan(load_config(path))
    if got.size != n:
        raise RuntimeError(f"{n} masses written, {got.size} left after the veto cut")
    return path


class _Timing(Progress):
    """Silent progress reporter that records when run_scan starts computing (after it has
    traced and compiled) and when it finishes."""

    def start(self, total, resumed=0, info=""):
        self.t_run = time.perf_counter()
        super().start(total, resumed, info)

    def finish(self):
        self.t_end = time.perf_counter()
        super().finish()


def timed_mass_scan(scan, masses, cl, chunk_size=None) -> tuple[dict, dict]:
    """One full ``mass_scan`` pass: (times, results). ``compile_s`` is everything before the
    first chunk is dispatched (tracing, lowering, XLA compilation), ``run_s`` the rest."""
    prog = _Timing(enabled=False)
    load0 = load_1min()
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    t = time.perf_counter()
    res = mass_scan(scan, masses, cl=cl, progress=prog, chunk_size=chunk_size)
    end = time.perf_counter()
    faulthandler.cancel_dump_traceback_later()
    return {"total_s": end - t, "compile_s": prog.t_run - t, "run_s": prog.t_end - prog.t_run,
            "end": end, "load": [load0, load_1min()]}, res  # fmt: skip


def scan_child(args) -> None:
    """``--child scan``: benchmark A in a fresh process; prints one JSON line."""
    jax.config.update("jax_enable_compilation_cache", False)
    counter = CacheCounter()
    imports = time.perf_counter() - T_START
    t = time.perf_counter()
    scan, masses, cl = build_mass_scan(load_config(args.config))
    build = time.perf_counter() - t
    first, res = timed_mass_scan(scan, masses, cl)
    cold = first["end"] - T_START
    second, res2 = timed_mass_scan(scan, masses, cl)
    alt = timed_mass_scan(scan, masses, cl, args.alt_chunk)[0] if args.alt_chunk else None
    same = all(np.array_equal(res[k], res2[k], equal_nan=True) for k in res)
    conv = {k: int(np.sum(np.asarray(res[k]))) for k in ("fit_converged", "limit_converged")}
    print(json.dumps({
        "imports_s": imports, "build_s": build, "cold_s": cold, "first": first,
        "second": second, "alt": alt, "alt_chunk": args.alt_chunk, "rss_mb": peak_rss_mb(),
        "cache_hits": counter.hits, "cache_misses": counter.misses, "cl": cl,
        "masses": np.asarray(masses).tolist(), "passes_identical": bool(same), "converged": conv,
        "significance": np.asarray(res["significance"]).tolist(),
        "ul_obs": np.asarray(res["ul_obs"])[:, 0].tolist(),
        "ul_exp": np.asarray(res["ul_exp"])[:, 0].tolist(),
        "affinity": sorted(os.sched_getaffinity(0)), "devices": str(jax.devices()),
    }))  # fmt: skip


def bench_parametric(args, machine) -> tuple[list, dict]:
    """Benchmark A: the cold child (compile + run, imports included) and its second pass."""
    child = ["--child", "scan", "--config", str(args.config), "--alt-chunk", str(args.alt_chunk)]
    load0 = load_1min()
    out = run_child_on_cores(Path(__file__), child, CHILD_TIMEOUT_S, args.cores)
    n, f, s = len(out["masses"]), out["first"], out["second"]
    cores = len(out["affinity"])
    mach = fmt_machine_short(machine, load0, load_1min(), cores)
    conv = out["converged"]
    full = n == 500 and not args.quick
    rate2 = n / s["run_s"]
    # fmt: off
    rows = [
        {"task": f"A. parametric scan, {n} masses: fit + Z + CLs limits obs/exp 95% — cold "
                 "(fresh process, no persistent cache)",
         "jaxlike": f"{fmt_s(out['cold_s'])} (imports {fmt_s(out['imports_s'])}, config "
                    f"{fmt_s(out['build_s'])}, trace+compile {fmt_s(f['compile_s'])}, run "
                    f"{fmt_s(f['run_s'])})",
         "target": "≤ 60 s incl. compile, 500 masses, 2 cores",
         "result": verdict(out["cold_s"] <= 60) if full else f"not judged ({n} masses)",
         "details": f"{conv['fit_converged']}/{n} fits, {conv['limit_converged']}/{n} limits "
                    f"converged; peak RSS {out['rss_mb']:.0f} MiB; persistent cache hits "
                    f"{out['cache_hits']}, misses {out['cache_misses']}; child wall "
                    f"{fmt_s(out['wall_s'])} (both passes)",
         "machine": mach},
        {"task": "A. same scan, 2nd full pass in the same process (steady)",
         "jaxlike": f"{rate2:.3g} hyp/s ({fmt_s(s['run_s'])} run); the pass took "
                    f"{fmt_s(s['total_s'])} incl. {fmt_s(s['compile_s'])} trace+compile",
         "details": "mass_scan compiles again on every call (new vmapped lambda per call)"
                    if s["compile_s"] > 0.5 * f["compile_s"] else "compiled function reused",
         "machine": fmt_machine_short(machine, s["load"][0], s["load"][1], cores)},
    ]
    if out["alt"]:
        a = out["alt"]
        rows.append({"task": f"A. same scan, mass_scan(chunk_size={out['alt_chunk']})",
                     "jaxlike": f"{n / a['run_s']:.3g} hyp/s ({fmt_s(a['run_s'])} run, "
                                f"{fmt_s(a['compile_s'])} trace+compile)",
                     "details": f"default chunking: {fmt_s(s['run_s'])} run for the {n} masses",
                     "machine": fmt_machine_short(machine, a["load"][0], a["load"][1], cores)})
    # fmt: on
    return rows, out


# ----------------------------------------------------------------------------- HistFactory
@eqx.filter_jit
def window_templates(scan, masses):
    """Per mass (vmapped): observed window counts and mask, the background-only expectation
    from the μ=0 fit of the WindowModel, and the signal per unit μ at θ_res = 0, +1, −1."""

    def one(m):
        model = scan.window_model(m)
        cfg = model.config
        d, init, lo, hi, fixed = prepare_fit_inputs(model, model.make_data())
        null = fit_arrays(model, d, init.at[0].set(0.0), lo, hi, fixed.at[0].set(True))
        _, smooth, peaking = model.expected_by_component(null.bestfit)
        unit = null.bestfit.at[0].set(1.0).at[cfg.par_index("theta_eff")].set(0.0)
        res = cfg.par_index("theta_res")
        sig = [model.expected_by_component(unit.at[res].set(t))[0][0] for t in (0.0, 1.0, -1.0)]
        bkg = (smooth + jnp.sum(peaking, axis=1))[0]
        return {"counts": model.counts[0], "keep": model.mask[0], "bkg": bkg, "sig": sig[0],
                "sig_hi": sig[1], "sig_lo": sig[2], "converged": null.converged}  # fmt: skip

    return jax.vmap(one)(masses)


def window_spec(t: dict, i: int, rel_eff: float) -> tuple[dict, float]:
    """The HistFactory workspace of mass ``i`` (module docstring) and its μ_ref."""
    keep = t["keep"][i]
    bkg = np.where(keep, t["bkg"][i], VETO_BKG)
    s = np.where(keep, t["sig"][i], 0.0)
    mu_ref = 2.0 / np.sqrt(np.sum(s**2 / bkg))
    sig, hi, lo = (np.where(keep, t[k][i], 0.0) * mu_ref for k in ("sig", "sig_hi", "sig_lo"))
    obs = np.where(keep, t["counts"][i], 0.0)
    signal_mods = [
        {"name": "mu", "type": "normfactor", "data": None},
        {"name": "eff", "type": "normsys", "data": {"hi": 1.0 + rel_eff, "lo": 1.0 - rel_eff}},
        {"name": "res", "type": "histosys",
         "data": {"hi_data": hi.tolist(), "lo_data": lo.tolist()}},
    ]  # fmt: skip
    spec = {
        "channels": [{"name": "window", "samples": [
            {"name": "background", "data": bkg.tolist(),
             "modifiers": [{"name": "bkg_norm", "type": "normfactor", "data": None}]},
            {"name": "signal", "data": sig.tolist(), "modifiers": signal_mods},
        ]}],
        "observations": [{"name": "window", "data": obs.tolist()}],
        "measurements": [{"name": "scan", "config": {
            "poi": "mu", "parameters": [{"name": "mu", "bounds": [[0.0, 10.0]]}]}}],
        "version": "1.0.0",
    }  # fmt: skip
    return spec, float(mu_ref)


def _hf_one(model, data, test_poi, cl):
    """patch_scan's per-hypothesis function: CLs at ``test_poi`` and the CLs limits."""
    prep = hypotest_prepare(data, model, test_stat="qtilde")  # shared by CLs and limits
    ht = hypotest_at(prep, model, test_poi)
    ul = upper_limit_prepared(prep, model, cl=cl)
    return {"cls_obs": ht.cls_obs, "cls_exp": ht.cls_exp, "ul_obs": ul.obs, "ul_exp": ul.exp,
            "twice_nll": ht.twice_nll, "converged": ht.converged & ul.converged}  # fmt: skip


hf_scan = eqx.filter_jit(jax.vmap(_hf_one, in_axes=(0, 0, None, None)))


def hf_workspaces(scan, masses) -> tuple[list, np.ndarray, dict]:
    """The HistFactory specs of every mass, their μ_ref, and timings of the templates."""
    t = time.perf_counter()
    tpl = jax.tree.map(np.asarray, window_templates(scan, jnp.asarray(masses)))
    tpl_s = time.perf_counter() - t
    t = time.perf_counter()
    built = [window_spec(tpl, i, float(scan.rel_eff)) for i in range(len(masses))]
    info = {"templates_s": tpl_s, "specs_s": time.perf_counter() - t,
            "null_fits_converged": int(tpl["converged"].sum()),
            "vetoed_bins": int((~tpl["keep"]).sum()),
            "masses_with_vetoed_bins": int((~tpl["keep"]).any(axis=1).sum())}  # fmt: skip
    return [b[0] for b in built], np.array([b[1] for b in built]), info


def jaxlike_hf(specs: list[dict], cl: float) -> dict:
    """All workspaces with jaxlike: build + stack, then one vmapped call (first and steady)."""
    t = time.perf_counter()
    spaces = [jaxlike.Workspace(s) for s in specs]
    models = [w.model() for w in spaces]
    stacked = jaxlike.stack_models(models)
    data = jnp.stack([jnp.asarray(w.data(m)) for w, m in zip(spaces, models, strict=True)])
    build = time.perf_counter() - t
    load0 = load_1min()
    first, steady, res = timed(hf_scan, stacked, data, 1.0, jnp.asarray(cl), repeats=1)
    res = jax.tree.map(np.asarray, res)
    return {"build_s": build, "first_s": first, "steady_s": steady, "load": [load0, load_1min()],
            "cls": np.concatenate([res["cls_obs"][:, None], res["cls_exp"]], axis=1),
            "ul": np.concatenate([res["ul_obs"][:, None], res["ul_exp"]], axis=1),
            "twice_nll": res["twice_nll"], "converged": res["converged"],
            "npars": models[0].config.npars, "models": models, "data": data}  # fmt: skip


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.abs(a - b) / np.maximum(np.abs(b), 1e-300)


def hf_agreement(jl: dict, py: dict, idx: list[int], masses) -> dict:
    """CLs and limits of jaxlike vs pyhf on the subset; 2NLL of the five fits of the test
    (and the μ-conditional fits at pyhf's observed limit) where they disagree."""
    cls_j, cls_p = jl["cls"][idx], np.asarray(py["cls"])
    ul_j, ul_p = jl["ul"][idx], np.asarray(py["ul"])
    d_cls, d_ul = _rel(cls_j, cls_p).max(axis=1), _rel(ul_j, ul_p).max(axis=1)
    bad = [k for k in range(len(idx)) if d_cls[k] > CLS_TOL or not d_ul[k] <= UL_TOL]
    notes = []
    for k in bad:
        i = idx[k]
        model, data = py["models"][k]
        dn = np.asarray(jl["twice_nll"][i]) - np.asarray(pyhf_hypotest_nlls(model, data, 1.0))
        note = (f"m = {masses[i]:.4f} GeV (CLs rel diff {d_cls[k]:.1e}, limits {d_ul[k]:.1e}): "
                "2NLL jaxlike − pyhf: " + ", ".join(
                    f"{n} {x:+.2e}" for n, x in zip(
                        ("free", "μ=1", "μ=0 (Asimov construction)", "Asimov free",
                         "Asimov μ=1"), dn, strict=True)))  # fmt: skip
        if np.isfinite(ul_p[k, 0]):
            import pyhf

            mu = float(ul_p[k, 0])
            p_fix = pyhf.infer.mle.fixed_poi_fit(mu, data, model, return_fitted_val=True)[1]
            j_fix = jaxlike.fixed_poi_fit(jl["models"][i], jl["data"][i], mu).twice_nll
            note += f"; μ-conditional fit at pyhf's obs limit {mu:.4g}: {float(j_fix - p_fix):+.2e}"
        verdict_ = "jaxlike lower or equal" if np.all(dn <= 1e-6) else "pyhf lower somewhere"
        notes.append(f"{note} → {verdict_}")
    ok = [k for k in range(len(idx)) if k not in bad]
    return {"cls_max": float(d_cls.max()), "ul_max": float(np.nanmax(d_ul)),
            "cls_max_ok": float(d_cls[ok].max()) if ok else float("nan"),
            "ul_max_ok": float(np.nanmax(d_ul[ok])) if ok else float("nan"),
            "bad": [float(masses[idx[k]]) for k in bad], "notes": notes}  # fmt: skip


def bench_histfactory(args, machine, a_out) -> tuple[list, dict]:
    """Benchmark B: pyhf loop on a subset (extrapolated) vs jaxlike on all workspaces."""
    scan, masses, cl = build_mass_scan(load_config(args.config))
    n = len(masses)
    load0 = load_1min()
    specs, mu_ref, info = hf_workspaces(scan, masses)
    jl = jaxlike_hf(specs, cl[0])
    idx = sorted(set(np.linspace(0, n - 1, args.py_masses).round().astype(int).tolist()))
    load_py = load_1min()
    py = pyhf_window_runs([specs[i] for i in idx], test_poi=1.0, level=1.0 - cl[0])
    load_end = load_1min()
    agree = hf_agreement(jl, py, idx, masses)
    per = [b + h + u for b, h, u in zip(py["build_s"], py["hypotest_s"], py["ul_s"], strict=True)]
    py_all = statistics.mean(per) * n
    k = len(idx)
    a_cold = a_out["cold_s"] if a_out else None
    a_steady = a_out["second"]["run_s"] if a_out else None
    jl_conv = int(jl["converged"].sum())
    ul_phys = jl["ul"][:, 0] * mu_ref
    full = n == 500 and not args.quick
    extrap = f"{fmt_s(py_all)} (mean of {k} ×{n}: build {fmt_s(statistics.mean(py['build_s']))}, " \
        f"hypotest {fmt_s(statistics.mean(py['hypotest_s']))}, toms748 limit " \
        f"{fmt_s(statistics.mean(py['ul_s']))} per mass)"  # fmt: skip
    # fmt: off
    rows = [
        {"task": f"B. pyhf loop (hypotest μ=1 + upper_limit) over {n} workspaces vs A "
                 "(parametric scan), once compiled",
         "jaxlike": f"{fmt_s(a_steady)} (A, 2nd pass run)" if a_steady else "A not run",
         "pyhf-numpy": extrap, "ratio": ratio(py_all, a_steady), "target": "≥ 100× once compiled",
         "result": (verdict(py_all / a_steady >= 100) if full else f"not judged ({n} masses)")
         if a_steady else "—",
         "details": (f"cold incl. imports + compile: {fmt_s(a_cold)}, "
                     f"{ratio(py_all, a_cold)}; " if a_cold else "")
                    + "different likelihoods: A profiles a 4th-order Bernstein shape (8 pars), "
                      "B a fixed background template (4 pars)",
         "machine": fmt_machine_short(machine, load_py, load_end)},
        {"task": f"B. jaxlike on the same {n} HistFactory workspaces ({jl['npars']} pars), one "
                 "vmapped call: hypotest_prepare + hypotest_at + upper_limit_prepared",
         "jaxlike": f"{fmt_s(jl['first_s'])} 1st call (compile + run); {fmt_s(jl['steady_s'])} "
                    f"steady; build + stack {fmt_s(jl['build_s'])}",
         "pyhf-numpy": fmt_s(py_all) + " (extrap.)",
         "ratio": f"{ratio(py_all, jl['first_s'])} 1st call, {ratio(py_all, jl['steady_s'])} "
                  "steady",
         "target": "≥ 100× once compiled",
         "result": verdict(py_all / jl["steady_s"] >= 100) if full else f"not judged ({n} masses)",
         "details": f"{jl_conv}/{n} converged; templates (μ=0 fits, vmapped, incl. compile) "
                    f"{fmt_s(info['templates_s'])}, {info['null_fits_converged']}/{n} converged; "
                    f"{info['masses_with_vetoed_bins']} windows touch a veto",
         "machine": fmt_machine_short(machine, jl["load"][0], jl["load"][1])},
        {"task": f"B. agreement jaxlike-HistFactory vs pyhf on {k} masses",
         "details": f"CLs(μ=1) obs+exp max rel diff {agree['cls_max']:.1e}; 95% limits obs+exp "
                    f"max rel diff {agree['ul_max']:.1e}; beyond {CLS_TOL:g} / {UL_TOL:.1%}: "
                    f"{len(agree['bad'])} (2NLL notes below); pyhf limit failures "
                    f"{len(py['ul_failed'])}/{k}",
         "machine": fmt_machine_short(machine, load0, load_end)},
    ]
    # fmt: on
    raw = {
        "n": n,
        "py_idx": idx,
        "py_masses": [float(masses[i]) for i in idx],
        "mu_ref": mu_ref.tolist(),
        "info": info,
        "pyhf_per_mass_s": per,
        "pyhf_extrapolated_s": py_all,
        "pyhf": {k_: v for k_, v in py.items() if k_ != "models"},
        "jaxlike": {
            k_: (v.tolist() if isinstance(v, np.ndarray) else v)
            for k_, v in jl.items()
            if k_ not in ("models", "data")
        },
        "ul_obs_phys": ul_phys.tolist(),
        "agreement": agree,
    }  # fmt: skip
    if a_out:
        r = ul_phys / np.asarray(a_out["ul_obs"])
        raw["ul_obs_hf_over_parametric_median"] = float(np.nanmedian(r))
    return rows, raw


# ----------------------------------------------------------------------------- toys
@eqx.filter_jit
def _observed_z(scan, masses):
    return jax.vmap(lambda m: hypothesis_significance(scan, m)["significance"])(masses)


def run_toys(args, scan, masses, expect) -> dict:
    """``args.toys`` toys in batches of ``args.toy_batch`` (``first_toy`` offsets, one seed:
    the same toys as one call), all with ``chunk_size=args.toy_chunk``, so every batch after
    the first reuses the compiled function. Stops early once ``args.toy_budget`` seconds are
    spent (the toys done so far are reported, and the ≥ 200 target fails)."""
    parts, walls, rates, t0 = [], [], [], time.perf_counter()
    while sum(len(p["max_z"]) for p in parts) < args.toys:
        done = sum(len(p["max_z"]) for p in parts)
        if time.perf_counter() - t0 > args.toy_budget:
            break
        faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
        t = time.perf_counter()
        part = scan_toys(scan, masses, min(args.toy_batch, args.toys - done),
                         seed=args.seed + 1, first_toy=done, expectation=expect,
                         chunk_size=args.toy_chunk, progress=False)  # fmt: skip
        walls.append(time.perf_counter() - t)
        faulthandler.cancel_dump_traceback_later()
        rates.append(part["rate"])
        parts.append(part)
    cat = {k: np.concatenate([np.asarray(p[k]) for p in parts])
           for k in ("max_z", "n_upcrossings", "n_failed")}  # fmt: skip
    n_done, n_m = len(cat["max_z"]), len(masses)
    later = sum(len(p["max_z"]) for p in parts[1:])
    # steady rate: batches after the first (compiled function reused); else scan_toys' own
    rate = later * n_m / sum(walls[1:]) if later else rates[0]
    return {**cat, "u0": parts[0]["u0"], "n_done": n_done, "elapsed_s": sum(walls),
            "first_batch_s": walls[0], "batch_s": walls, "rate": rate,
            "chunk_toys": args.toy_chunk}  # fmt: skip


def bench_toys(args, machine, a_out) -> tuple[list, dict]:
    """Benchmark C: background-only toys of the whole scan, global significance."""
    scan, masses, _ = build_mass_scan(load_config(args.config))
    n = len(masses)
    if a_out:
        z_obs, z_src = np.asarray(a_out["significance"], float), "A"
    else:
        z_obs, z_src = np.asarray(_observed_z(scan, jnp.asarray(masses))), "2-fit Z here"
    load0 = load_1min()
    t = time.perf_counter()
    expect, info = background_expectation(scan, 4, info=True)
    exp_s = time.perf_counter() - t
    toys = run_toys(args, scan, masses, expect)
    load1 = load_1min()
    g = global_significance(z_obs, toys["max_z"], toy_upcrossings=toys["n_upcrossings"],
                            u0=toys["u0"])  # fmt: skip
    gv = g.gv
    k = toys["n_done"]
    failed = int(np.sum(toys["n_failed"]))
    dev = float(info["deviance"][0] / info["ndf"][0])
    full = n == 500 and not args.quick
    cut = f" — stopped by the {args.toy_budget:.0f} s budget" if k < args.toys else ""
    # fmt: off
    rows = [
        {"task": f"C. {k} background-only toys × {n} masses (2 fits each), CPU{cut}",
         "jaxlike": f"{toys['rate']:.3g} toys×masses/s (compile excluded); elapsed "
                    f"{fmt_s(toys['elapsed_s'] + exp_s)} incl. compile "
                    f"(1st batch of {min(args.toy_batch, k)}: {fmt_s(toys['first_batch_s'])}) "
                    f"and the background expectation ({fmt_s(exp_s)})",
         "target": "≥ 200 toys of the 500-mass scan",
         "result": verdict(k >= 200 and failed == 0) if full
         else f"not judged ({k} toys, {n} masses)",
         "details": f"scan_toys(chunk_size={args.toy_chunk}) = {args.toy_chunk * n} fits of "
                    f"each kind per call, batches of {args.toy_batch} toys; failed fits "
                    f"{failed}/{k * n}; toy expectation: Bernstein-4 fit of the full spectrum, "
                    f"deviance/ndf {dev:.3g}",
         "machine": fmt_machine_short(machine, load0, load1)},
        {"task": "C. global significance of the observed scan",
         "details": f"max local Z {g.max_z:.3f} at {masses[g.index]:.4f} GeV ({z_src}), "
                    f"p_local {g.p_local:.2e}; toys: p_global {g.p_global:.3g} ± "
                    f"{g.p_global_err:.2g} ({g.n_exceed}/{g.n_toys} toys above), Z_global "
                    f"{g.z_global:.2f}, trials factor {g.trials_factor:.3g}; Gross–Vitells "
                    f"(⟨N({gv.u0:g})⟩ = {gv.n_upcrossings:.3g} from the toys): p_global "
                    f"{gv.p_global:.3g}, Z_global {gv.z_global:.2f}, trials factor "
                    f"{gv.trials_factor:.3g}",
         "machine": fmt_machine_short(machine, load0, load1)},
    ]
    # fmt: on
    keys = (
        "max_z",
        "p_local",
        "p_global",
        "p_global_err",
        "p_global_interval",
        "z_global",
        "trials_factor",
        "n_toys",
        "n_exceed",
    )  # fmt: skip
    raw = {"n_toys": k, "n_toys_asked": args.toys, "n_masses": n, "rate": toys["rate"],
           "elapsed_s": toys["elapsed_s"], "batch_s": toys["batch_s"], "expectation_s": exp_s,
           "deviance_per_ndf": dev, "max_z_toys": toys["max_z"].tolist(), "n_failed": failed,
           "z_source": z_src, "global": {x: getattr(g, x) for x in keys},
           "gross_vitells": vars(gv) if gv else None}  # fmt: skip
    return rows, raw


# ----------------------------------------------------------------------------- driver
def parse_args():
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="100 masses, 20 toys, 3 pyhf masses")
    p.add_argument("--json", type=Path, help="write all numbers to this JSON file")
    p.add_argument("--only", default="ABC", help="benchmarks to run, e.g. 'AB'")
    p.add_argument("--seed", type=int, default=1, help="seed of the example spectrum")
    p.add_argument("--masses", type=int, help="mass hypotheses (default 500; quick 100)")
    p.add_argument("--toys", type=int, help="background-only toys (default 200; quick 20)")
    p.add_argument("--py-masses", type=int, help="masses run with pyhf (default 8; quick 3)")
    p.add_argument("--toy-chunk", type=int, default=1, help="C: scan_toys chunk_size (toys "
                   "per compiled call; the package default is ⌈4096 / masses⌉)")  # fmt: skip
    p.add_argument("--toy-batch", type=int, default=20, help="C: toys per scan_toys call")
    p.add_argument("--toy-budget", type=float, help="C: stop starting toy batches after this "
                   "many seconds (default 480; quick 120)")  # fmt: skip
    p.add_argument("--cores", type=int, default=2, help="CPUs the scan child is pinned to")
    p.add_argument("--alt-chunk", type=int, default=50, help="A: also time mass_scan with this "
                   "chunk_size (0: skip)")  # fmt: skip
    p.add_argument("--child", choices=["scan"], help=argparse.SUPPRESS)
    p.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args()
    a.masses = a.masses or (100 if a.quick else 500)
    a.toys = a.toys or (20 if a.quick else 200)
    a.py_masses = a.py_masses or (3 if a.quick else 8)
    a.toy_budget = a.toy_budget or (120.0 if a.quick else 480.0)
    return a


def main():
    """Write the scan, run the selected benchmarks, print one table each, optionally JSON."""
    args = parse_args()
    if args.child:
        return scan_child(args)
    machine = describe_machine()
    v = machine["versions"]
    mode = "quick" if args.quick else "full"
    print(f"# jaxlike scan benchmarks ({mode} mode)\n")
    print(fmt_machine(machine))
    preamble = (f"machine: {machine['cpu']}, {machine['cores']} cores; jax {v['jax']}, "
                f"jaxlike {v['jaxlike']}, pyhf {v['pyhf']}")  # fmt: skip
    report = {"machine": machine, "mode": mode, "args": {k: str(x) for k, x in vars(args).items()}}
    with tempfile.TemporaryDirectory(prefix="jaxlike_bench_scan_") as tmp:
        args.config = write_scan(Path(tmp), args.seed, args.masses)
        print(
            f"scan     : ALP example, seed {args.seed}, {args.masses} masses 0.3–8.9 GeV "
            f"outside the vetoes; {args.toys} toys; pyhf on {args.py_masses} masses\n"
        )
        a_out = None
        stages = {
            "A": ("A. parametric scan (fresh child process)", bench_parametric),
            "B": ("B. HistFactory workspaces: pyhf loop vs jaxlike vmap", bench_histfactory),
            "C": ("C. look-elsewhere effect: toys of the whole scan", bench_toys),
        }
        for key in args.only:
            title, fn = stages[key]
            t = time.perf_counter()
            rows, raw = fn(args, machine) if key == "A" else fn(args, machine, a_out)
            if key == "A":
                a_out = raw
            report[key] = {"rows": rows, "raw": raw, "seconds": time.perf_counter() - t}
            print_rows(f"{title} — stage took {report[key]['seconds']:.0f} s", rows, COLUMNS,
                       preamble)  # fmt: skip
            for note in raw.get("agreement", {}).get("notes", []):
                print(f"disagreement: {note}")
            for fail in raw.get("pyhf", {}).get("ul_failed", []):
                print(f"pyhf upper_limit failed: {fail}")
    machine["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"\nload avg at end {machine['load_avg_end']}; peak RSS of this process "
          f"{peak_rss_mb():.0f} MiB; total {time.perf_counter() - T_START:.0f} s")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
