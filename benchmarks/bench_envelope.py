"""Background-model envelope vs a single background model, and vs the pyhf loop, in one run.

Data: the ALP example of ``bench_scan.py`` (``write_scan``: 500 masses 0.3–8.9 GeV outside the
vetoes; Crystal-Ball signal, 100-bin windows −20σ…+30σ, rel_eff 5 %, rel_res 8 %).

1. Single model: ``mass_scan`` of the example's background (Bernstein 4): first pass (trace,
   compile and run, in this process) and a second pass (compiled, the steady cost).
2. Envelope of ``--models`` background models (default 5: Bernstein 2, 3, 4, 5 and
   Chebyshev 4) by discrete profiling (penalty 1 per parameter), every model of a mass fitted
   in the same compiled call (``jaxlike.parametric.envelope_results``): first and second pass.
3. The same envelope with the conservative rule (smallest Z, least stringent limit).
4. pyhf-numpy (``scipy_optimizer(tolerance=1e-10)``): the HistFactory window of
   ``bench_scan.py`` B (fixed background template + normfactor, 4 parameters) — q̃ hypotest at
   μ = 1 and the toms748 limit — on ``--py-masses`` masses, extrapolated to 500 masses × the
   number of models (an envelope by hand is one such loop per background model), and labelled
   so. pyhf has no discrete profiling; the loop is what a user would run.

5. README command 1, ``jaxlike scan --example alp`` (the ALP example as published: two
   segments, 310 masses, a 3-model envelope), in a fresh process without the XLA cache.

Targets (issue 15): the 5-model envelope over 500 masses in ≤ 3× the single-model time; the
main job ≤ 60 s cold.

Usage::

    python benchmarks/bench_envelope.py [--masses 500] [--py-masses 3] [--json out.json]
"""

from __future__ import annotations

import os
import time

T_START = time.perf_counter()
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    describe_machine,
    fmt_machine,
    fmt_machine_short,
    fmt_s,
    load_1min,
    peak_rss_mb,
    print_rows,
    pyhf_window_runs,
    ratio,
    verdict,
)
from bench_scan import hf_workspaces, timed_mass_scan, write_scan  # noqa: E402

from jaxlike.parametric import background_envelope, build_mass_scan, load_config  # noqa: E402

COLUMNS = ("task", "jaxlike", "pyhf-numpy", "ratio", "target", "result", "details", "machine")
FAMILY = (("bernstein", 2), ("bernstein", 3), ("bernstein", 4), ("bernstein", 5),
          ("chebyshev", 4), ("bernstein", 6), ("chebyshev", 3))  # fmt: skip


def passes(scan, masses, cl):
    """(first pass times, second pass times, results of the second)."""
    first, _ = timed_mass_scan(scan, masses, cl)
    second, res = timed_mass_scan(scan, masses, cl)
    return first, second, res


def main_job_row(machine) -> dict:
    """README command 1, ``jaxlike scan --example alp``, in a fresh process with the persistent
    XLA cache disabled: the ALP example as published (2 segments, 310 masses, 3-model envelope,
    one-sided limits on g_aγγ), compilation included. pyhf has no parametric scan to run."""
    import subprocess
    import sys

    out = Path(tempfile.mkdtemp(prefix="bench_main_job_"))
    env = dict(os.environ, JAXLIKE_CACHE_DIR="")
    load0 = load_1min()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "jaxlike", "scan", "--example", "alp", "-o",
                           str(out / "alp_scan"), "--no-progress"], env=env, text=True,
                          capture_output=True)  # fmt: skip
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"main job failed: {proc.stderr[-2000:]}")
    return {"task": "main job (README command 1): ALP as published, 2 segments, 310 masses, "
                    "3-model envelope, one-sided g_aγγ limits; fresh process, no XLA cache",
            "jaxlike": f"{fmt_s(wall)} wall (import, write, one compile, scan, plots)",
            "target": "≤ 60 s cold", "result": verdict(wall <= 60.0),
            "machine": fmt_machine_short(machine, load0, load_1min())}  # fmt: skip


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--masses", type=int, default=500)
    p.add_argument("--models", type=int, default=5, help=f"background models (≤ {len(FAMILY)})")
    p.add_argument("--py-masses", type=int, default=3, help="masses run with pyhf")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-conservative", action="store_true")
    p.add_argument("--no-main-job", action="store_true", help="skip README command 1 (cold)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    machine = describe_machine()
    print("# background-model envelope benchmark\n")
    print(fmt_machine(machine))
    rows, raw = [], {"args": vars(args) | {"json": str(args.json)}}
    with tempfile.TemporaryDirectory(prefix="jaxlike_bench_env_") as tmp:
        cfg = load_config(write_scan(Path(tmp), args.seed, args.masses))
        base, masses, cl = build_mass_scan(cfg)
        models, names = [], []
        for kind, order in FAMILY[: args.models]:
            one = copy.deepcopy(cfg)
            one["background"] = {"kind": kind, "order": order}
            models.append(build_mass_scan(one)[0])
            names.append(f"{kind}{order}")
        n = len(masses)
        load0 = load_1min()
        s1, s2, single = passes(base, masses, cl)
        env = background_envelope(models, method="profile", penalty=1.0, names=names)
        e1, e2, prof = passes(env, masses, cl)
        load1 = load_1min()
        mach = fmt_machine_short(machine, load0, load1)
        k = len(models)
        r_steady, r_first = e2["run_s"] / s2["run_s"], e1["total_s"] / s1["total_s"]
        wins = np.bincount(prof.bkg_model_limit[:, 0], minlength=k)
        rows += [
            {"task": f"single model (bernstein4), {n} masses: μ̂, Z, obs + exp 95% CLs limits",
             "jaxlike": f"1st pass {fmt_s(s1['total_s'])} (compile {fmt_s(s1['compile_s'])}); "
                        f"2nd pass {fmt_s(s2['run_s'])}",
             "details": f"{int(np.sum(single.limit_converged))}/{n} limits converged",
             "machine": mach},
            {"task": f"envelope of {k} models, discrete profiling (penalty 1/par), one compiled "
                     "call per chunk",
             "jaxlike": f"1st pass {fmt_s(e1['total_s'])} (compile {fmt_s(e1['compile_s'])}); "
                        f"2nd pass {fmt_s(e2['run_s'])}",
             "ratio": f"{r_steady:.2f}× single (2nd pass), {r_first:.2f}× (1st pass)",
             "target": "≤ 3× single", "result": verdict(r_steady <= 3.0),
             "details": "chosen for the limit: " + ", ".join(
                 f"{nm} {c}" for nm, c in zip(names, wins, strict=True))
                 + f"; {int(np.sum(prof.limit_converged))}/{n} limits converged",
             "machine": mach},
        ]  # fmt: skip
        raw |= {"single": [s1, s2], "profile": [e1, e2], "names": names,
                "wins_limit": wins.tolist()}  # fmt: skip
        cons_steady = None
        if not args.no_conservative:
            envc = background_envelope(models, method="conservative", names=names)
            c1, c2, cons = passes(envc, masses, cl)
            cons_steady = c2["run_s"]
            rc = c2["run_s"] / s2["run_s"]
            rows.append(
                {"task": f"envelope of {k} models, conservative rule (smallest Z, largest limit)",
                 "jaxlike": f"1st pass {fmt_s(c1['total_s'])} (compile "
                            f"{fmt_s(c1['compile_s'])}); 2nd pass {fmt_s(c2['run_s'])}",
                 "ratio": f"{rc:.2f}× single (2nd pass), "
                          f"{c1['total_s'] / s1['total_s']:.2f}× (1st pass)",
                 "target": "≤ 3× single", "result": verdict(rc <= 3.0),
                 "details": f"median obs limit / single {np.nanmedian(cons.ul_obs[:, 0] / single.ul_obs[:, 0]):.3f}; "  # noqa: E501
                            f"profile / single {np.nanmedian(prof.ul_obs[:, 0] / single.ul_obs[:, 0]):.3f}",  # noqa: E501
                 "machine": fmt_machine_short(machine, load1, load_1min())}
            )  # fmt: skip
            raw["conservative"] = [c1, c2]
        # the pyhf loop, one per background model, extrapolated
        specs, _, _ = hf_workspaces(base, masses)
        idx = sorted(set(np.linspace(0, n - 1, args.py_masses).round().astype(int).tolist()))
        lp = load_1min()
        py = pyhf_window_runs([specs[i] for i in idx], test_poi=1.0, level=1.0 - cl[0])
        per = [b + h + u for b, h, u in zip(py["build_s"], py["hypotest_s"], py["ul_s"],
                                            strict=True)]  # fmt: skip
        py_all = statistics.mean(per) * n * k
        rows.append(
            {"task": f"pyhf loop: {k} background models × {n} masses (hypotest μ=1 + toms748 "
                     "limit per model and mass) vs the profiled envelope",
             "jaxlike": f"{fmt_s(e2['run_s'])} (2nd pass), {fmt_s(e1['total_s'])} (1st)",
             "pyhf-numpy": f"{fmt_s(py_all)} **extrapolated** from {len(idx)} masses "
                           f"({fmt_s(statistics.mean(per))} per limit) × {n} × {k}",
             "ratio": f"{ratio(py_all, e2['run_s'])} 2nd pass, {ratio(py_all, e1['total_s'])} "
                      "1st",
             "details": "pyhf's window: fixed background template + normfactor (4 pars), no "
                        "discrete profiling (by hand: one loop per model)"
                        + (f"; conservative 2nd pass {fmt_s(cons_steady)}" if cons_steady else ""),
             "machine": fmt_machine_short(machine, lp, load_1min())}
        )  # fmt: skip
        raw["pyhf_per_limit_s"] = per
    if not args.no_main_job:
        rows.append(main_job_row(machine))
    print_rows("envelope vs single model vs pyhf", rows, COLUMNS,
               f"machine: {machine['cpu']}, {machine['cores']} cores")  # fmt: skip
    print(f"\npeak RSS {peak_rss_mb():.0f} MiB; total {time.perf_counter() - T_START:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "raw": raw}, indent=1, default=str))


if __name__ == "__main__":
    main()
