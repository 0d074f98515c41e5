"""jaxlike vs pyhf on three workloads, side by side in one run on one machine.

A. Belle II B→Kνν̄ likelihood (232 parameters): one MLE, one q̃ hypotest at μ = 1.
B. ATLAS ERJR (BkgOnly + 66 signal patches): CLs(μ = 1) and 95% CL upper limits for all
   patches (brought to one layout by ``jaxlike.unify_patches``; CLs vmapped over the patches),
   once compiled and end to end (fresh processes, cold and warm persistent cache).
C. 200 synthetic signal templates (1 channel × 40 bins, 43 parameters) fitted in one vmap;
   10⁴ templates in chunks of 2000.

Usage::

    python benchmarks/bench_core.py [--quick] [--data DIR] [--json out.json]

pyhf always runs with ``scipy_optimizer(tolerance=1e-10)``. OpenBLAS is limited to one thread
(override with ``OPENBLAS_NUM_THREADS``): on a loaded 2-core machine a threaded OpenBLAS makes
one 232×232 Cholesky take up to 0.25 s instead of 0.4 ms (see README.md). ``--child erjr`` is
the end-to-end worker that the parent starts twice (cold, then warm persistent cache).
"""

from __future__ import annotations

import os
import time

T_START = time.perf_counter()
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    CacheCounter,
    default_data_dir,
    describe_machine,
    erjr_paths,
    erjr_pyhf,
    erjr_subset,
    fmt_machine,
    fmt_s,
    group_layouts,
    max_rel_diff,
    peak_rss_mb,
    print_table,
    pyhf_belle,
    pyhf_template_fits,
    ratio,
    run_child,
    synth_background,
    synth_channels,
    synth_templates,
    timed,
    verdict,
    who_is_lower,
)

import jaxlike  # noqa: E402
from jaxlike.fit import fit_arrays, prepare_fit_inputs  # noqa: E402

CHILD_TIMEOUT_S = 1800  # an end-to-end child process taking longer is an error


# ----------------------------------------------------------------------------- A. Belle II
def bench_belle(args) -> tuple[list, dict]:
    """Benchmark A: jaxlike MLE and hypotest (compile + steady) against pyhf-jax / pyhf-numpy."""
    path = args.data / "belle2_bknunu" / "combined_likelihood.json"
    ws = jaxlike.Workspace.load(path)
    model = ws.model()
    data = jnp.asarray(ws.data(model))
    f1, fs, fit = timed(lambda: jaxlike.fit(model, data), repeats=args.repeats)
    h1, hs, ht = timed(lambda: jaxlike.hypotest(1.0, data, model), repeats=args.repeats)
    jl = {"mle_first_s": f1, "mle_s": fs, "hypotest_first_s": h1, "hypotest_s": hs,
          "twice_nll": float(fit.twice_nll), "mu_hat": float(fit.bestfit[model.config.poi_index]),
          "converged": bool(fit.converged) and bool(ht.converged),
          "cls": [float(ht.cls_obs)] + [float(x) for x in ht.cls_exp]}  # fmt: skip
    spec = json.loads(path.read_text())
    pj = pyhf_belle("jax", spec, hypotest=True)
    pn = None if args.quick else pyhf_belle("numpy", spec, hypotest=False)
    ref, ref_name = (pn, "numpy") if pn else (pj, "jax")
    d_nll, d_mu = jl["twice_nll"] - ref["twice_nll"], jl["mu_hat"] - ref["mu_hat"]
    agree = f"Δ2NLL={d_nll:+.2e}, Δμ̂={d_mu:+.1e} vs pyhf-{ref_name}; converged={jl['converged']}"
    cls_agree = (f"CLs obs+exp max rel diff {max_rel_diff(jl['cls'], pj['cls']):.1e} vs pyhf-jax"
                 if "cls" in pj else f"CLs_obs={jl['cls'][0]:.4f} (pyhf not run)")  # fmt: skip
    compile_s = (f1 - fs) + (h1 - hs)
    mle_n, mle_j = pn and pn["mle_s"], pj["mle_s"]
    # fmt: off
    rows = [
        {"task": "MLE, 232 parameters", "jaxlike 1st call": fmt_s(f1), "jaxlike steady": fmt_s(fs),
         "pyhf-numpy": fmt_s(mle_n), "pyhf-jax": fmt_s(mle_j) + " (1 run, incl. jit)",
         "ratio": f"{ratio(mle_n, fs)} numpy, {ratio(mle_j, fs)} jax",
         "target": "≤ 0.1 s steady", "result": verdict(fs <= 0.1), "agreement": agree},
        {"task": "q̃ hypotest μ=1 (5 fits)", "jaxlike 1st call": fmt_s(h1),
         "jaxlike steady": fmt_s(hs), "pyhf-jax": fmt_s(pj.get("hypotest_s")),
         "pyhf-numpy": "not run (≈5 MLEs)", "ratio": f"{ratio(pj.get('hypotest_s'), hs)} jax",
         "target": "≤ 0.5 s steady", "result": verdict(hs <= 0.5), "agreement": cls_agree},
        {"task": "compilation (MLE + hypotest)", "jaxlike 1st call": fmt_s(compile_s),
         "target": "≤ 20 s", "result": verdict(compile_s <= 20.0),
         "agreement": "sum of (1st call − steady)"},
    ]
    # fmt: on
    return rows, {"jaxlike": jl, "pyhf_jax": pj, "pyhf_numpy": pn}


# ----------------------------------------------------------------------------- B. ATLAS ERJR
_vmapped_cls = eqx.filter_jit(jax.vmap(lambda m, d: jaxlike.hypotest(1.0, d, m)))
_limit = eqx.filter_jit(lambda m, d: jaxlike.upper_limit(d, m, cl=0.95))


def erjr_models(data_dir: Path, paths: list[Path]):
    """Workspace, patches, and the patched models brought to one layout by unify_patches."""
    ws = jaxlike.Workspace.load(data_dir / "atlas_erjr" / "BkgOnly.json")
    patches = [json.loads(p.read_text()) for p in paths]
    spaces = [jaxlike.Workspace(s) for s in jaxlike.unify_patches(ws, patches)]
    models = [w.model() for w in spaces]
    datas = [jnp.asarray(w.data(m)) for w, m in zip(spaces, models, strict=True)]
    return ws, patches, models, datas


def erjr_jaxlike(data_dir: Path, paths: list[Path], repeats: int) -> dict:
    """CLs at μ = 1 (one vmapped call per layout group) and 95% CL limits (a loop sharing one
    compiled function per group) for every patch; times summed over the groups."""
    t = time.perf_counter()
    _, _, models, datas = erjr_models(data_dir, paths)
    out = {"build_s": time.perf_counter() - t, "cls_first_s": 0.0, "cls_s": 0.0,
           "ul_first_s": 0.0, "ul_s": 0.0, "cls": {}, "ul": {}, "converged": {}}  # fmt: skip
    groups = group_layouts(models)
    for g in groups:
        stacked, data = (
            jaxlike.stack_models([models[i] for i in g]),
            jnp.stack([datas[i] for i in g]),
        )
        f, s, ht = timed(_vmapped_cls, stacked, data, repeats=repeats)
        out["cls_first_s"] += f
        out["cls_s"] += s
        f, _, _ = timed(_limit, models[g[0]], datas[g[0]], repeats=0)  # compiles this layout
        s, _, uls = timed(lambda g=g: [_limit(models[i], datas[i]) for i in g], repeats=0)
        out["ul_first_s"] += f
        out["ul_s"] += s
        for j, (i, ul) in enumerate(zip(g, uls, strict=True)):
            name = paths[i].name
            out["cls"][name] = [float(ht.cls_obs[j])] + np.asarray(ht.cls_exp[j]).tolist()
            out["ul"][name] = [float(ul.obs)] + np.asarray(ul.exp).tolist()
            out["converged"][name] = [bool(ht.converged[j]), bool(ul.converged)]
    out["layouts"] = len(groups)
    return out


def erjr_child(args) -> None:
    """``--child erjr``: end-to-end worker (persistent cache on); prints one JSON line."""
    jax.config.update("jax_compilation_cache_dir", str(args.cache_dir))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    counter = CacheCounter()
    imports = time.perf_counter() - T_START
    erjr_jaxlike(args.data, erjr_paths(args.data), repeats=0)
    print(json.dumps({"imports_s": imports, "total_s": time.perf_counter() - T_START,
                      "hits": counter.hits, "misses": counter.misses}))  # fmt: skip


def erjr_e2e(args) -> tuple[dict, dict]:
    """Run the end-to-end child twice on one persistent cache: cold (empty), then warm."""
    tmp = args.cache_dir is None
    cache = Path(tempfile.mkdtemp(prefix="jaxlike_bench_cache_")) if tmp else args.cache_dir
    child = ["--child", "erjr", "--data", str(args.data), "--cache-dir", str(cache)]
    try:
        cold = run_child(Path(__file__), child, timeout=CHILD_TIMEOUT_S)
        warm = run_child(Path(__file__), child, timeout=CHILD_TIMEOUT_S)
    finally:
        if tmp:
            shutil.rmtree(cache, ignore_errors=True)
    return cold, warm


def erjr_agreement(jl: dict, py: dict, data_dir: Path, paths: list[Path]) -> dict:
    """CLs over all patches, limits where both tools have one; for CLs_obs disagreements the
    fit minima of both tools on the patch's own (non-unified) model."""
    names = list(py["cls"])
    ul_names = [n for n in py["ul"] if all(jl["converged"][n])]
    bad = [n for n in names if abs(jl["cls"][n][0] / py["cls"][n][0] - 1) > 1e-3]
    ws, by_name, notes = jaxlike.Workspace.load(data_dir / "atlas_erjr" / "BkgOnly.json"), \
        {p.name: p for p in paths}, []  # fmt: skip
    for n in bad:
        m = ws.model(patches=[json.loads(by_name[n].read_text())])
        d = ws.data(m)
        free, fixed = jaxlike.fit(m, d).twice_nll, jaxlike.fixed_poi_fit(m, d, 1.0).twice_nll
        notes.append(who_is_lower(py, n, float(free), float(fixed)))
    ok = [n for n in names if n not in bad]
    py_nan = [n for n in names if not np.all(np.isfinite(py["cls"][n]))]
    return {"cls": max_rel_diff([jl["cls"][n] for n in names], [py["cls"][n] for n in names]),
            "cls_ok": max_rel_diff([jl["cls"][n] for n in ok], [py["cls"][n] for n in ok]),
            "ul": max_rel_diff([jl["ul"][n] for n in ul_names], [py["ul"][n] for n in ul_names])
            if ul_names else float("nan"), "n_ul": len(ul_names), "bad": bad, "notes": notes,
            "ul_nan": [n for n, c in jl["converged"].items() if not c[1]],
            "py_nan": py_nan}  # fmt: skip


def bench_erjr(args) -> tuple[list, dict]:
    """Benchmark B: all 66 patches with jaxlike (unified layout), pyhf-numpy hypotests for all
    and limits for a subset (extrapolated), plus cold/warm end-to-end child processes."""
    paths = erjr_paths(args.data)
    n = len(paths)
    ws = jaxlike.Workspace.load(args.data / "atlas_erjr" / "BkgOnly.json")
    raw_layouts = len(group_layouts([ws.model(patches=[json.loads(p.read_text())]) for p in paths]))
    jl = erjr_jaxlike(args.data, paths, repeats=args.repeats)
    py_paths = erjr_subset(paths, args.py_patches) if args.py_patches else paths
    py = erjr_pyhf(args.data, py_paths, erjr_subset(py_paths, args.ul_patches))
    agree = erjr_agreement(jl, py, args.data, paths)
    cold, warm = erjr_e2e(args)
    n_py, n_ul = len(py["hypotest_s"]), len(py["ul_s"])
    py_cls = statistics.mean(py["hypotest_s"]) * n  # = the sum when pyhf ran all patches
    py_ul = statistics.mean(py["ul_s"] or [np.nan]) * n
    py_all, py_e2e = py_cls + py_ul, py_cls + py_ul + py["build_s"]
    jl_all = jl["cls_s"] + jl["ul_s"]
    n_failed = len(py["ul_failed"])
    # fmt: off
    rows = [
        {"task": f"CLs μ=1 obs+exp, {n} patches (vmap)",
         "jaxlike 1st call": fmt_s(jl["cls_first_s"]),
         "jaxlike steady": fmt_s(jl["cls_s"]),
         "pyhf-numpy": fmt_s(py_cls) + (f" ({n} hypotests)" if n_py == n
                                        else f" (mean of {n_py} ×{n})"),
         "ratio": ratio(py_cls, jl["cls_s"]),
         "agreement": f"CLs obs+exp max rel diff {agree['cls_ok']:.1e} over the "
                      f"{n_py - len(agree['bad'])} with CLs_obs within 1e-3; "
                      f"{len(agree['bad'])} differ (2NLL notes below); "
                      f"pyhf NaN on {len(agree['py_nan'])}"},
        {"task": f"95% CL limits obs+exp, {n} patches (loop)",
         "jaxlike 1st call": fmt_s(jl["ul_first_s"]) + " (compile + 1 patch)",
         "jaxlike steady": fmt_s(jl["ul_s"]),
         "pyhf-numpy": f"{fmt_s(py_ul)} (mean of {n_ul} ×{n})", "ratio": ratio(py_ul, jl["ul_s"]),
         "agreement": f"limits max rel diff {agree['ul']:.1e} over {agree['n_ul']}; pyhf failed "
                      f"{n_failed}/{n_failed + n_ul}; jaxlike NaN (limit > POI bound): "
                      f"{len(agree['ul_nan'])}/{n}"},
        {"task": f"CLs + limits, all {n}, once compiled", "jaxlike steady": fmt_s(jl_all),
         "pyhf-numpy": fmt_s(py_all), "ratio": ratio(py_all, jl_all), "target": "≥ 100×",
         "result": verdict(py_all / jl_all >= 100)},
        {"task": f"all {n}, end to end, 1st process (cold cache)",
         "jaxlike 1st call": fmt_s(cold["wall_s"]), "pyhf-numpy": fmt_s(py_e2e) + " (+ build)",
         "ratio": ratio(py_e2e, cold["wall_s"]),
         "agreement": f"persistent cache hits {cold['hits']}, misses {cold['misses']}"},
        {"task": f"all {n}, end to end, 2nd process (persistent cache)",
         "jaxlike 1st call": fmt_s(warm["wall_s"]), "pyhf-numpy": fmt_s(py_e2e) + " (+ build)",
         "ratio": ratio(py_e2e, warm["wall_s"]), "target": "≥ 10×",
         "result": verdict(py_e2e / warm["wall_s"] >= 10),
         "agreement": f"persistent cache hits {warm['hits']}, misses {warm['misses']}"},
    ]
    # fmt: on
    py.pop("nll")
    raw = {"layouts_raw": raw_layouts, "layouts_unified": jl["layouts"], "n_patches": n,
           "jaxlike": jl, "pyhf_numpy": py, "agreement": agree, "e2e_cold": cold,
           "e2e_warm": warm}  # fmt: skip
    return rows, raw


# ----------------------------------------------------------------------------- C. templates
def _with_signal(model, row, template):
    """The model with the nominal yields of sample ``row`` replaced by ``template``."""
    return eqx.tree_at(lambda m: m.nominal, model, model.nominal.at[row].set(template))


@eqx.filter_jit
def _fit_templates(model, row, templates, data, init, lo, hi, fixed):
    """Fit every template (built inside the trace, so no stacked copy of the model exists)."""
    fit_one = lambda t: fit_arrays(_with_signal(model, row, t), data, init, lo, hi, fixed)  # noqa: E731
    res = jax.vmap(fit_one)(templates)
    return res.twice_nll, res.bestfit, res.uncertainties, res.converged


def big_scan(args, rng, model, row, inputs) -> dict:
    """``args.n_big`` templates in chunks of ``args.chunk``: compile, then time a full pass."""
    big = jnp.asarray(synth_templates(rng, args.n_big))
    chunks = [big[i : i + args.chunk] for i in range(0, args.n_big, args.chunk)]
    rss0 = peak_rss_mb()
    first, _, _ = timed(lambda c: _fit_templates(model, row, c, *inputs), chunks[0], repeats=0)
    total, _, outs = timed(
        lambda: [_fit_templates(model, row, c, *inputs) for c in chunks], repeats=0
    )
    n_conv = int(sum(int(jnp.sum(o[3])) for o in outs))
    return {"first_s": first, "total_s": total, "converged": n_conv, "rss_before_mb": rss0,
            "rss_after_mb": peak_rss_mb()}  # fmt: skip


def bench_templates(args) -> tuple[list, dict]:
    """Benchmark C: 200 vmapped template fits vs a pyhf loop; 10⁴ templates in chunks."""
    rng = np.random.default_rng(20240601)
    bkg, unc, hi, lo, obs = synth_background(rng)
    templates = synth_templates(rng, 200)
    model = jaxlike.model.build_model(synth_channels(templates[0], bkg, unc, hi, lo), poi_name="mu")
    row, poi = model.config.samples.index("signal"), model.config.poi_index
    data, init, plo, phi, fixed = prepare_fit_inputs(model, model.make_data(obs))
    t = time.perf_counter()
    stacked = jaxlike.stack_models([_with_signal(model, row, jnp.asarray(s)) for s in templates])
    stack_s = time.perf_counter() - t
    vfit = eqx.filter_jit(jax.vmap(lambda m: fit_arrays(m, data, init, plo, phi, fixed)))
    f1, fs, res = timed(lambda: vfit(stacked), repeats=args.repeats)
    n_py = 20 if args.quick else len(templates)
    py = pyhf_template_fits(templates[:n_py], bkg, unc, hi, lo, obs)
    per_fit = statistics.mean(py["fit_s"])
    py_200, py_big = per_fit * len(templates), per_fit * args.n_big
    d_nll = np.asarray(res.twice_nll[:n_py]) - np.asarray(py["twice_nll"])
    d_mu = np.abs(np.asarray(res.bestfit[:n_py, poi]) - np.asarray(py["mu_hat"]))
    big = big_scan(args, rng, model, row, (data, init, plo, phi, fixed))
    extrap = f" ({n_py} fits ×{len(templates) / n_py:.3g})" if n_py < len(templates) else ""
    # fmt: off
    rows = [
        {"task": f"200 fits, {model.config.npars} pars, vmap over stacked models",
         "jaxlike 1st call": fmt_s(f1), "jaxlike steady": fmt_s(fs),
         "pyhf-numpy": fmt_s(py_200) + extrap, "ratio": ratio(py_200, fs), "target": "≥ 500×",
         "result": verdict(py_200 / fs >= 500),
         "agreement": f"2NLL jaxlike−pyhf in [{d_nll.min():+.1e}, {d_nll.max():+.1e}], "
                      f"max Δμ̂ {d_mu.max():.1e} ({n_py} fits); "
                      f"{int(jnp.sum(res.converged))}/200 converged"},
        {"task": "stack 200 variants (tree_at + stack_models)", "jaxlike steady": fmt_s(stack_s)},
        {"task": f"{args.n_big} fits, {args.n_big // args.chunk} vmapped chunks of {args.chunk}",
         "jaxlike 1st call": f"{fmt_s(big['first_s'])} (1st chunk)",
         "jaxlike steady": fmt_s(big["total_s"]), "pyhf-numpy": fmt_s(py_big) + " (extrap.)",
         "ratio": ratio(py_big, big["total_s"]), "target": "≤ 10 s",
         "result": verdict(big["total_s"] <= 10.0),
         "agreement": f"{big['converged']}/{args.n_big} converged; peak RSS "
                      f"{big['rss_after_mb']:.0f} MiB (before: {big['rss_before_mb']:.0f} MiB)"},
    ]
    raw = {"npars": model.config.npars, "stack_s": stack_s, "first_s": f1, "steady_s": fs,
           "pyhf_fit_s": py["fit_s"], "pyhf_200_s": py_200, "big": big}
    # fmt: on
    return rows, raw


# ----------------------------------------------------------------------------- driver
def parse_args():
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer pyhf runs, extrapolated")
    p.add_argument("--data", type=Path, default=default_data_dir(), help="shared data folder")
    p.add_argument("--json", type=Path, help="write all numbers to this JSON file")
    p.add_argument("--only", default="ABC", help="benchmarks to run, e.g. 'AC'")
    p.add_argument("--py-patches", type=int, help="ERJR patches with a pyhf hypotest (0 = all)")
    p.add_argument("--ul-patches", type=int, help="ERJR patches with a pyhf upper limit")
    p.add_argument("--n-big", type=int, default=10_000, help="templates in the large scan")
    p.add_argument("--chunk", type=int, default=2000, help="templates per vmapped call")
    p.add_argument("--cache-dir", type=Path, help="persistent cache of the e2e children "
                   "(default: a fresh temporary folder, deleted afterwards)")  # fmt: skip
    p.add_argument("--child", choices=["erjr"], help=argparse.SUPPRESS)
    a = p.parse_args()
    a.repeats = 3 if a.quick else 5
    a.ul_patches = (2 if a.quick else 4) if a.ul_patches is None else a.ul_patches
    a.py_patches = (8 if a.quick else 0) if a.py_patches is None else a.py_patches
    return a


def main():
    """Run the selected benchmarks, print one table each, optionally write JSON."""
    args = parse_args()
    if args.child:
        return erjr_child(args)
    machine = describe_machine()
    print(f"# jaxlike benchmarks ({'quick' if args.quick else 'full'} mode)\n")
    print(fmt_machine(machine))
    report = {"machine": machine, "mode": "quick" if args.quick else "full"}
    benches = {"A": ("A. Belle II B→Kνν̄ (232 parameters)", bench_belle),
               "B": ("B. ATLAS ERJR, 66 signal patches", bench_erjr),
               "C": ("C. synthetic templates, 1 channel × 40 bins", bench_templates)}  # fmt: skip
    for key in args.only:
        title, fn = benches[key]
        t = time.perf_counter()
        rows, raw = fn(args)
        report[key] = {"rows": rows, "raw": raw, "seconds": time.perf_counter() - t}
        print_table(f"{title} — stage took {report[key]['seconds']:.0f} s", rows)
        if key == "B":
            print(f"\nlayouts: {raw['layouts_raw']} distinct among the {raw['n_patches']} patched "
                  f"models, {raw['layouts_unified']} after jaxlike.unify_patches")  # fmt: skip
            for note in raw["agreement"]["notes"]:
                print(f"CLs_obs disagreement > 1e-3: {note}")
    machine["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"\nload avg at end {machine['load_avg_end']}; peak RSS {peak_rss_mb():.0f} MiB; "
          f"total {time.perf_counter() - T_START:.0f} s")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
