"""Fits that scale with the number of bins: jaxlike's arrowhead Hessian vs pyhf, 10² … 10⁴ bins.

One channel of N bins (``_common.many_bins_spec``): a signal bump with normfactor μ on a
background with one shapesys γ per bin (N + 1 parameters); the ``full`` variant adds a staterror
on signal and background (two local γ per bin), three normsys, a histosys and lumi (2N + 6
parameters, a non-trivial global block). jaxlike builds the Hessian in arrowhead form (global
block, coupling, per-bin blocks; Schur-complement solves) for these models automatically.

Per size and variant:

- jaxlike (this process): ``jaxlike.fit`` and ``jaxlike.hypotest(1.0, ..., "qtilde")`` —
  1st call (trace + compile + run) and warm (median of ``--repeats``);
- pyhf-numpy with the converged ``scipy_optimizer(tolerance=1e-10)`` in a child process capped
  at ``--pyhf-cap`` seconds (fit, then the q̃ hypotest with its calculator's five fits), at the
  ``--pyhf-sizes`` (3000 bins is the slow test of ``tests/test_arrowhead.py``); past the cap the
  row says "> cap". Once a variant has hit the cap, larger sizes are not run and are reported
  as "> cap (not run)" (pyhf's time grows with N). ``--pyhf-from out.json`` reuses the pyhf
  runs of an earlier ``--json`` output (pyhf does not depend on jaxlike's code);
- agreement: the 2NLL of pyhf's best fit evaluated with jaxlike's likelihood minus jaxlike's
  minimum (≥ 0 means jaxlike's minimum is at least as low), and max |ΔCLs| over obs + the
  expected band.

Usage::

    python benchmarks/bench_bins.py [--sizes 100,1000,3000,10000] [--variants shapesys,full]
                                    [--pyhf-sizes 100,1000,10000] [--pyhf-cap 1800]
                                    [--pyhf-from earlier.json] [--json out.json]

Target: the q̃ hypotest once compiled ≤ 5 s at 3000 bins on 2 cores (both variants).
OpenBLAS is limited to one thread (as bench_core). ``--child-pyhf N VARIANT`` is the worker.
"""

from __future__ import annotations

import os
import time

T_START = time.perf_counter()
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    describe_machine,
    fmt_machine,
    fmt_s,
    many_bins_spec,
    peak_rss_mb,
    print_rows,
    timed,
    verdict,
)

import jaxlike  # noqa: E402
from jaxlike.model import arrowhead_layout  # noqa: E402

COLUMNS = (
    "bins",
    "variant",
    "pars",
    "jaxlike fit 1st",
    "jaxlike fit warm",
    "jaxlike q̃ 1st",
    "jaxlike q̃ warm",
    "pyhf fit",
    "pyhf q̃",
    "ratio fit",
    "ratio q̃",
    "target",
    "result",
    "agreement",
)
TARGET_BINS, TARGET_S = 3000, 5.0


# ----------------------------------------------------------------------------- pyhf child
def pyhf_child(nbins: int, variant: str) -> None:
    """Worker: pyhf-numpy fit and q̃ hypotest; one JSON line per finished stage (flushed), so a
    parent that kills it at the cap still gets the stages done."""
    import pyhf

    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-10))
    ws = pyhf.Workspace(many_bins_spec(nbins, variant))
    model = ws.model()
    data = ws.data(model)

    def emit(**kw):
        print(json.dumps(kw), flush=True)

    t = time.perf_counter()
    pars, nll = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
    emit(stage="fit", fit_s=time.perf_counter() - t, twice_nll=float(nll),
         bestfit=[float(x) for x in pars])  # fmt: skip
    t = time.perf_counter()
    obs, exp, calc = pyhf.infer.hypotest(
        1.0, data, model, test_stat="qtilde", return_expected_set=True, return_calculator=True
    )
    fp = calc.fitted_pars
    emit(stage="hypotest", hypotest_s=time.perf_counter() - t,
         cls=[float(obs)] + [float(e) for e in exp],
         fitted={k: [float(x) for x in getattr(fp, k)] for k in (
             "free_fit_to_data", "fixed_poi_fit_to_data", "asimov_pars", "free_fit_to_asimov",
             "fixed_poi_fit_to_asimov")})  # fmt: skip


def run_pyhf(nbins: int, variant: str, cap: float) -> dict:
    """The child's finished stages (``timed_out`` if it was stopped at ``cap`` seconds)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child-pyhf", str(nbins), variant]
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=cap, check=False)
        out, timed_out = proc.stdout, False
        if proc.returncode != 0:
            raise RuntimeError(f"pyhf child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    except subprocess.TimeoutExpired as err:
        out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        timed_out = True
    res = {"timed_out": timed_out, "wall_s": time.perf_counter() - t}
    for line in out.splitlines():
        if line.startswith("{"):
            res.update(json.loads(line))
    return res


# ----------------------------------------------------------------------------- jaxlike
_nll = eqx.filter_jit(lambda m, x, d: m.twice_nll(x, d))
_expected = eqx.filter_jit(lambda m, x: m.expected_data(x))


def run_jaxlike(nbins: int, variant: str, repeats: int) -> dict:
    ws = jaxlike.Workspace(many_bins_spec(nbins, variant))
    model = ws.model()
    data = jnp.asarray(ws.data(model))
    lay = arrowhead_layout(model)
    f1, fw, fit = timed(lambda: jaxlike.fit(model, data), repeats=repeats)
    h1, hw, ht = timed(lambda: jaxlike.hypotest(1.0, data, model), repeats=repeats)
    return {
        "model": model,
        "data": data,
        "npars": model.config.npars,
        "layout": repr(lay),
        "fit_first_s": f1,
        "fit_s": fw,
        "hypotest_first_s": h1,
        "hypotest_s": hw,
        "twice_nll": float(fit.twice_nll),
        "fit_converged": bool(fit.converged),
        "hypotest_converged": bool(ht.converged),
        "cls": [float(ht.cls_obs)] + [float(x) for x in ht.cls_exp],
        "hypotest_twice_nll": [float(x) for x in ht.twice_nll],
        "asimov_pars": np.asarray(ht.fitted_pars[2]),
        "covariance": type(fit.covariance).__name__,
    }


def agreement(jl: dict, py: dict) -> tuple[str, dict]:
    """Text for the table and the numbers: 2NLL of pyhf's fits under jaxlike's likelihood minus
    jaxlike's minima, and max |ΔCLs|."""
    model, data = jl["model"], jl["data"]
    raw = {}
    parts = [f"converged fit={jl['fit_converged']} q̃={jl['hypotest_converged']}"]
    if "bestfit" in py:
        theirs = float(_nll(model, jnp.asarray(py["bestfit"]), data))
        raw["d2nll_fit"] = theirs - jl["twice_nll"]
        parts.append(f"2NLL(pyhf θ̂) − jaxlike = {raw['d2nll_fit']:+.1e}")
    if "cls" in py:
        asimov = _expected(model, jnp.asarray(jl["asimov_pars"]))
        keys = ("free_fit_to_data", "fixed_poi_fit_to_data", "asimov_pars",
                "free_fit_to_asimov", "fixed_poi_fit_to_asimov")  # fmt: skip
        diffs = []
        for i, k in enumerate(keys):
            d = data if i < 3 else asimov
            diffs.append(float(_nll(model, jnp.asarray(py["fitted"][k]), d))
                         - jl["hypotest_twice_nll"][i])  # fmt: skip
        raw["d2nll_hypotest"] = diffs
        raw["dcls"] = float(np.max(np.abs(np.subtract(jl["cls"], py["cls"]))))
        parts.append(f"5 q̃ fits: min {min(diffs):+.1e}; max|ΔCLs| {raw['dcls']:.1e}")
    return "; ".join(parts), raw


def _cell(py: dict, key: str, cap: float, skipped: bool) -> tuple[str, float | None]:
    if skipped:
        return f"> {cap:.0f} s (not run)", None
    if not py:
        return "not run", None
    if key in py:
        return fmt_s(py[key]), py[key]
    if py.get("timed_out"):
        done = py.get("fit_s", 0.0) if key == "hypotest_s" else 0.0
        return f"> {cap - done:.0f} s", None
    return "—", None


def _ratio(py_s, py_text, jl_s):
    if py_s is not None:
        return f"×{py_s / jl_s:.3g}"
    if py_text.startswith(">"):
        bound = float(py_text.split()[1])
        return f"> ×{bound / jl_s:.3g}"
    return "—"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100,1000,3000,10000", help="numbers of bins")
    p.add_argument("--variants", default="shapesys,full", help="shapesys and/or full")
    p.add_argument("--pyhf-cap", type=float, default=1800.0, help="seconds per pyhf child")
    p.add_argument("--pyhf-sizes", default="100,1000,10000",
                   help="sizes with a pyhf run (3000 bins: tests/test_arrowhead.py, slow)")
    p.add_argument("--pyhf-from", help="reuse the pyhf runs of an earlier --json output")
    p.add_argument("--repeats", type=int, default=3, help="warm repetitions (median)")
    p.add_argument("--json", help="write all numbers to this JSON file")
    p.add_argument("--child-pyhf", nargs=2, help=argparse.SUPPRESS)
    return p.parse_args()


def main():
    args = parse_args()
    if args.child_pyhf:
        return pyhf_child(int(args.child_pyhf[0]), args.child_pyhf[1])
    machine = describe_machine()
    print("# jaxlike vs pyhf: fits that scale with the number of bins\n")
    print(fmt_machine(machine))
    sizes = [int(s) for s in args.sizes.split(",")]
    pyhf_sizes = {int(s) for s in args.pyhf_sizes.split(",") if s}
    reuse = {}
    if args.pyhf_from:
        with open(args.pyhf_from) as f:
            for run in json.load(f)["runs"]:
                if run["pyhf"]:
                    reuse[(run["bins"], run["variant"])] = run["pyhf"]
    rows, report = [], {"machine": machine, "runs": []}
    for variant in args.variants.split(","):
        capped = False
        for n in sizes:
            jl = run_jaxlike(n, variant, args.repeats)
            print(f"[{variant} {n} bins] jaxlike done: {jl['layout']}, fit {fmt_s(jl['fit_s'])}, "
                  f"q̃ {fmt_s(jl['hypotest_s'])}", flush=True)  # fmt: skip
            if (n, variant) in reuse:
                py = reuse[(n, variant)]
            elif capped or n not in pyhf_sizes:
                py = {}
            else:
                py = run_pyhf(n, variant, args.pyhf_cap)
            capped = capped or bool(py.get("timed_out"))
            text, raw = agreement(jl, py)
            skipped = capped and not py
            fit_txt, fit_py = _cell(py, "fit_s", args.pyhf_cap, skipped)
            ht_txt, ht_py = _cell(py, "hypotest_s", args.pyhf_cap, skipped)
            judged = n >= TARGET_BINS
            rows.append({
                "bins": str(n), "variant": variant, "pars": str(jl["npars"]),
                "jaxlike fit 1st": fmt_s(jl["fit_first_s"]), "jaxlike fit warm": fmt_s(jl["fit_s"]),
                "jaxlike q̃ 1st": fmt_s(jl["hypotest_first_s"]),
                "jaxlike q̃ warm": fmt_s(jl["hypotest_s"]),
                "pyhf fit": fit_txt, "pyhf q̃": ht_txt,
                "ratio fit": _ratio(fit_py, fit_txt, jl["fit_s"]),
                "ratio q̃": _ratio(ht_py, ht_txt, jl["hypotest_s"]),
                "target": f"q̃ ≤ {TARGET_S:.0f} s warm" if judged else "—",
                "result": verdict(jl["hypotest_s"] <= TARGET_S) if judged else "—",
                "agreement": text,
            })  # fmt: skip
            keep = {k: v for k, v in jl.items() if k not in ("model", "data", "asimov_pars")}
            report["runs"].append({"bins": n, "variant": variant, "jaxlike": keep,
                                   "pyhf": py,
                                   "agreement": raw})  # fmt: skip
            print(f"[{variant} {n} bins] pyhf: {fit_txt} fit, {ht_txt} q̃; {text}", flush=True)
    machine["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print_rows("fit and q̃ hypotest (μ = 1) vs number of bins", rows, COLUMNS)
    print(f"\nload avg at end {machine['load_avg_end']}; peak RSS {peak_rss_mb():.0f} MiB; "
          f"total {time.perf_counter() - T_START:.0f} s")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=str)


if __name__ == "__main__":
    main()
