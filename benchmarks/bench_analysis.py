"""Impacts (nuisance-parameter ranking): jaxlike against cabinetry, side by side in one run.

A. Belle II B→Kνν̄ likelihood (232 parameters, 231 nuisance parameters, 4 conditional fits
   each = 924 fits): ``jaxlike.analysis.impacts``, compile and run separately; target: the
   whole ranking (nominal fit + first impacts call, compile included) ≤ 60 s on 2 CPU cores.
B. ATLAS ERJR patch ERJR_100p0_40p0 (68 parameters, 67 ranked): the same ranking with jaxlike
   and with cabinetry 0.6 (``fit.ranking``'s calls, one MIGRAD fit per variation, on pyhf's JAX
   backend with strategy 0 and tolerance 1e-3: the configuration under which MIGRAD converges
   on this likelihood, see tests/test_cabinetry_parity.py). ``fit.ranking`` itself aborts at
   the first failed fit (γ variations below 0), so failures are counted instead.
C. (full mode) cabinetry on Belle II for a few parameters, extrapolated to 231 (labelled).

Usage::

    python benchmarks/bench_analysis.py [--quick] [--cores 2] [--data DIR] [--json out.json]

``--quick`` (< 5 min): cabinetry on 6 of the 67 ERJR parameters, extrapolated (labelled), no C.
``--cores N`` pins this process to N CPUs before JAX starts (default 2; 0: no pinning).
"""

from __future__ import annotations

import os
import sys
import time

T_START = time.perf_counter()
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


from _common import pin_cores  # noqa: E402  (no JAX import there)

CORES = pin_cores(sys.argv)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import warnings  # noqa: E402
from importlib import metadata  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jsonpatch  # noqa: E402
import numpy as np  # noqa: E402
from _common import default_data_dir, describe_machine, fmt_machine, fmt_s, ratio, verdict  # noqa: E402

import jaxlike  # noqa: E402
from jaxlike import analysis  # noqa: E402

ERJR_PATCH = "patch.ERJR_100p0_40p0.json"
CAB_MIGRAD = {"strategy": 0, "tolerance": 1e-3}
TARGET_BELLE_S = 60.0
COLUMNS = ("task", "jaxlike compile", "jaxlike run", "jaxlike total", "cabinetry", "ratio",
           "target", "result", "agreement")  # fmt: skip


def print_table(title, rows, preamble=""):
    cells = [[str(r.get(c, "—")) for c in COLUMNS] for r in rows]
    width = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(COLUMNS)]

    def line(vals):
        return "| " + " | ".join(v.ljust(w) for v, w in zip(vals, width, strict=True)) + " |"

    text = "\n".join(
        [f"\n### {title}\n"]
        + ([preamble, ""] if preamble else [])
        + [line(COLUMNS), "|" + "|".join("-" * (w + 2) for w in width) + "|"]
        + [line(r) for r in cells]
    )
    print(text, flush=True)
    return text


def jaxlike_ranking(model, data):
    """Nominal fit, then impacts twice: first call (trace + compile + run) and steady run."""
    t = time.perf_counter()
    res = jaxlike.fit(model, data)
    jax.block_until_ready(res.bestfit)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    imp = analysis.impacts(model, data, fit_result=res)
    first_s = time.perf_counter() - t
    t = time.perf_counter()
    imp = analysis.impacts(model, data, fit_result=res)
    run_s = time.perf_counter() - t
    return {"fit_s": fit_s, "first_s": first_s, "run_s": run_s, "compile_s": first_s - run_s,
            "total_s": fit_s + first_s, "imp": imp, "res": res}  # fmt: skip


def cabinetry_ranking(spec, names_subset=None):
    """cabinetry's ranking calls (``cabinetry.fit._fit_model`` with ``fit.ranking``'s inits,
    fixed masks and values) on pyhf's JAX backend; failed MIGRAD fits are counted."""
    import pyhf
    from cabinetry import model_utils
    from cabinetry.fit import _fit_model

    pyhf.set_backend("jax")
    ws = pyhf.Workspace(spec)
    model = ws.model()
    data = ws.data(model)
    quiet = contextlib.redirect_stdout(io.StringIO())
    t = time.perf_counter()
    with quiet:
        fit = _fit_model(model, data, **CAB_MIGRAD)
    fit_s = time.perf_counter() - t
    cfg = model.config
    poi = cfg.poi_index
    prefit = model_utils.prefit_uncertainties(model)
    init, fixed = cfg.suggested_init(), cfg.suggested_fixed()
    names = [n for i, n in enumerate(cfg.par_names) if i != poi and not fixed[i]]
    todo = names if names_subset is None else names_subset
    shifts, failed, nfits = {}, 0, 0
    t = time.perf_counter()
    for name in todo:
        i = cfg.par_names.index(name)
        b, up, uq = fit.bestfit[i], prefit[i], fit.uncertainty[i]
        row = []
        for v in (b + up, b - up, b + uq, b - uq):
            if v == b:
                row.append(0.0)
                continue
            x0, fx = list(init), list(fixed)
            x0[i], fx[i] = v, True
            nfits += 1
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    r = _fit_model(model, data, init_pars=x0, fix_pars=fx, **CAB_MIGRAD)
                row.append(float(r.bestfit[poi] - fit.bestfit[poi]))
            except Exception:  # noqa: BLE001 - pyhf's FailedMinimization: counted
                failed += 1
                row.append(np.nan)
        shifts[name] = row
    rank_s = time.perf_counter() - t
    return {"fit_s": fit_s, "rank_s": rank_s, "n_params": len(todo), "n_all": len(names),
            "nfits": nfits, "failed": failed, "shifts": shifts}  # fmt: skip


def agreement(imp, cab):
    """Variations within 2% of cabinetry (of those cabinetry fitted), and the failures."""
    ok = n = 0
    for name, row in cab["shifts"].items():
        k = imp.names.index(name)
        for j, theirs in enumerate(row):
            if np.isnan(theirs):
                continue
            n += 1
            ok += abs(float(imp.shifts[k, j]) - theirs) <= 0.02 * abs(theirs)
    return f"{ok}/{n} within 2%, cabinetry failed {cab['failed']}/{cab['nfits']} fits"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--data", type=lambda s: __import__("pathlib").Path(s),
                    default=default_data_dir())  # fmt: skip
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    machine = describe_machine()
    machine["versions"]["cabinetry"] = metadata.version("cabinetry")
    print(fmt_machine(machine))
    print(f"cores    : {CORES} pinned, cabinetry {machine['versions']['cabinetry']}, "
          f"mode {'quick' if args.quick else 'full'}", flush=True)  # fmt: skip
    rows, out = [], {"machine": machine, "quick": args.quick, "cores": CORES}

    # A. Belle II, jaxlike
    spec_b = json.loads((args.data / "belle2_bknunu" / "combined_likelihood.json").read_text())
    ws = jaxlike.Workspace(spec_b)
    model = ws.model()
    data = jnp.asarray(ws.data(model))
    jb = jaxlike_ranking(model, data)
    imp_b = jb["imp"]
    n_b = len(imp_b.names)
    ok_b = jb["total_s"] <= TARGET_BELLE_S
    out["belle2_jaxlike"] = {k: v for k, v in jb.items() if k.endswith("_s")}
    out["belle2_jaxlike"].update(n_params=n_b, converged=bool(np.asarray(imp_b.converged).all()))
    top = imp_b.ranked()[:3]
    rows.append({
        "task": f"A. Belle II ranking, {n_b} NPs × 4 fits (jaxlike)",
        "jaxlike compile": fmt_s(jb["compile_s"]),
        "jaxlike run": fmt_s(jb["run_s"]),
        "jaxlike total": f"{fmt_s(jb['total_s'])} (fit {fmt_s(jb['fit_s'])})",
        "target": f"total ≤ {TARGET_BELLE_S:.0f} s on {CORES} cores",
        "result": verdict(ok_b),
        "agreement": f"all converged: {out['belle2_jaxlike']['converged']}; top: {top[0][0]}",
    })  # fmt: skip

    # B. ERJR, jaxlike vs cabinetry
    d = args.data / "atlas_erjr"
    spec_e = jsonpatch.apply_patch(json.loads((d / "BkgOnly.json").read_text()),
                                   json.loads((d / ERJR_PATCH).read_text()))  # fmt: skip
    ws = jaxlike.Workspace(spec_e)
    model = ws.model()
    data = jnp.asarray(ws.data(model))
    je = jaxlike_ranking(model, data)
    imp_e = je["imp"]
    subset = None
    if args.quick:
        subset = [imp_e.names[k] for k in np.linspace(0, len(imp_e.names) - 1, 6).astype(int)]
    ce = cabinetry_ranking(spec_e, subset)
    scale = ce["n_all"] / ce["n_params"]
    cab_total = ce["fit_s"] + ce["rank_s"] * scale
    label = "" if subset is None else f" (extrapolated from {ce['n_params']} params ×{scale:.3g})"
    out["erjr"] = {"jaxlike": {k: v for k, v in je.items() if k.endswith("_s")},
                   "cabinetry": {k: v for k, v in ce.items() if k != "shifts"},
                   "cabinetry_total_s": cab_total, "extrapolated": subset is not None}  # fmt: skip
    rows.append({
        "task": f"B. ERJR ranking, {len(imp_e.names)} NPs (jaxlike vs cabinetry)",
        "jaxlike compile": fmt_s(je["compile_s"]),
        "jaxlike run": fmt_s(je["run_s"]),
        "jaxlike total": fmt_s(je["total_s"]),
        "cabinetry": fmt_s(cab_total) + label,
        "ratio": f"{ratio(cab_total, je['total_s'])} total, {ratio(cab_total, je['run_s'])} run",
        "agreement": agreement(imp_e, ce),
    })  # fmt: skip

    # C. cabinetry on Belle II, a few parameters, extrapolated
    if not args.quick:
        names = [imp_b.names[k] for k in np.linspace(0, n_b - 1, 3).astype(int)]
        cb = cabinetry_ranking(spec_b, names)
        scale = cb["n_all"] / cb["n_params"]
        cab_total = cb["fit_s"] + cb["rank_s"] * scale
        out["belle2_cabinetry"] = {k: v for k, v in cb.items() if k != "shifts"}
        out["belle2_cabinetry"]["extrapolated_total_s"] = cab_total
        rows.append({
            "task": f"C. Belle II ranking, {n_b} NPs (cabinetry, extrapolated)",
            "jaxlike total": fmt_s(jb["total_s"]),
            "cabinetry": f"{fmt_s(cab_total)} (extrapolated from {cb['n_params']} params "
                         f"×{scale:.3g})",
            "ratio": ratio(cab_total, jb["total_s"]),
            "agreement": agreement(imp_b, cb),
        })  # fmt: skip

    load = [round(x, 2) for x in os.getloadavg()]
    out["load_end"] = load
    out["wall_s"] = time.perf_counter() - T_START
    pre = (f"{machine['cpu']}, {CORES}/{machine['cores']} cores pinned, load avg "
           f"{machine['load_avg_1_5_15']} at start → {load} at end; wall "
           f"{fmt_s(out['wall_s'])}. compile = first impacts call − steady call; total = "
           f"nominal fit + first impacts call. cabinetry: pyhf {machine['versions']['pyhf']} "
           f"JAX backend, MIGRAD strategy 0, tolerance 1e-3.")  # fmt: skip
    out["table"] = print_table("Impacts / ranking: jaxlike vs cabinetry", rows, pre)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=float)
    return 0 if ok_b else 1


if __name__ == "__main__":
    sys.exit(main())
