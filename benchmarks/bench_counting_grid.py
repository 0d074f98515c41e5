"""N-D counting grids: the dark-Higgs example beside a pyhf loop and direct integration.

Rows (one run, one machine, pyhf converged with ``scipy_optimizer(tolerance=1e-10)``):

G. jaxlike ``counting_grid_scan`` of the whole dark-Higgs grid (45 m_h′ × 20 cτ = 900 points,
   three channels with sidebands, 8 parameters per point): asymptotic CLs limits + local
   significance + Bayesian limits (uniform prior on σ), compile included (first call), then
   the coupling bands (``coupling_limits``) at all 45 masses.
P. pyhf: the same points written as pyhf workspaces (``CountingGrid.workspace``), observed and
   expected CLs limits with ``pyhf.infer.intervals.upper_limits.upper_limit`` (toms748) at
   ``--pyhf-points`` points spread over the grid, timed, extrapolated to 900 points (labelled),
   and the largest relative difference of the observed limits there.
B. Bayesian limits against direct numerical integration (``jaxlike.bayes.onoff_upper_limit``:
   k in closed form, the two Gaussian nuisances by Gauss–Hermite) for one-channel on/off
   problems n_on = 0…5, n_off = 0, 5, 30 (τ = 20, t = 10%, r = 10%): largest relative
   difference; a loop of direct integrations as the peer's time.
L. ``--lee-toys`` background-only toys of the whole grid (spectra drawn and summed into every
   window): global p-value of the largest local Z, beside the Gross–Vitells estimate from the
   same toys' Euler characteristics; toys/s.

Usage::

    python benchmarks/bench_counting_grid.py [--pyhf-points 12] [--lee-toys 1000] [--json out]

Target (issue 14): the dark-Higgs grid, Bayesian and asymptotic CLs limits, ≤ 2 min cold on 2
CPU cores.
"""

from __future__ import annotations

import os
import time

T_START = time.perf_counter()
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402
from _common import describe_machine, fmt_machine, load_1min, print_rows, pyhf_backend  # noqa: E402
from scipy.stats import norm  # noqa: E402

import jaxlike  # noqa: E402
from jaxlike.bayes import onoff_upper_limit  # noqa: E402
from jaxlike.examples import dark_higgs_grid  # noqa: E402
from jaxlike.scan import (  # noqa: E402
    CountingGrid,
    GridAxis,
    GridChannel,
    counting_grid_scan,
    counting_grid_toys,
)


def bench_grid(ex):
    t0 = time.perf_counter()
    res = counting_grid_scan(ex.grid, method=("cls", "bayes"), progress=False)
    t_scan = time.perf_counter() - t0
    t1 = time.perf_counter()
    iv = ex.coupling_limits(res.bayes_ul[..., 0])
    np.asarray(iv.lower)
    t_coup = time.perf_counter() - t1
    return res, iv, t_scan, t_coup


def bench_pyhf(ex, res, n_points):
    pyhf = pyhf_backend("numpy")
    rng = np.random.default_rng(0)
    pts = np.sort(rng.choice(ex.grid.size, n_points, replace=False))
    diffs, t_total, failed = [], 0.0, []
    acc = ex.grid.acceptance()
    for h in pts:
        spec = ex.grid.workspace(h)
        ws = pyhf.Workspace(spec)
        model = ws.model()
        data = ws.data(model)
        hi = float(model.config.suggested_bounds()[model.config.poi_index][1])
        t0 = time.perf_counter()
        try:
            obs, _exp = _pyhf_limit(pyhf, data, model, hi)
        except (pyhf.exceptions.FailedMinimization, ValueError) as err:
            failed.append((int(h), type(err).__name__))
            continue
        finally:
            t_total += time.perf_counter() - t0
        i, j = np.unravel_index(h, ex.grid.shape)
        jl = res.ul_obs[i, j, 0] * acc[h]  # back to signal events
        diffs.append(abs(float(obs) / jl - 1.0))
    return pts, t_total, max(diffs) if diffs else float("nan"), failed


def _pyhf_limit(pyhf, data, model, hi):
    """Observed and expected 95% CLs limits by toms748 on [0.01, hi] signal events (pyhf
    0.7.6; at μ = 0 its CLs is 0/0)."""
    return pyhf.infer.intervals.upper_limits.toms748_scan(
        data, model, 0.01, hi, level=0.05, rtol=1e-8, atol=1e-10
    )


def bench_direct():
    n_on, n_off = np.arange(6.0), np.array([0.0, 5.0, 30.0])
    tau, eff, lumi = 20.0, 0.02, 50.0
    b = np.maximum(n_off, 1.0) / tau
    g = CountingGrid(
        axes=[GridAxis("n_on", n_on), GridAxis("n_off", n_off)],
        channels=[GridChannel("sr", observed=n_on[:, None], efficiency=eff, background=b[None],
                              sideband_observed=n_off[None], transfer_factor=tau,
                              transfer_factor_uncertainty=0.1, signal_uncertainty=0.1)],
        luminosity=lumi,
    )  # fmt: skip
    t0 = time.perf_counter()
    res = counting_grid_scan(g, method="bayes", progress=False)
    t_jl = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = np.array([[onoff_upper_limit(int(a), int(c), 1.0, bb, tau, t=0.1, r=0.1)
                     for c, bb in zip(n_off, b, strict=True)] for a in n_on])  # fmt: skip
    t_ref = time.perf_counter() - t0
    rel = np.max(np.abs(res.bayes_ul[..., 0] * lumi * eff / ref - 1.0))
    return t_jl, t_ref, float(rel), g.size


def bench_lee(ex, z_obs, n_toys):
    t0 = time.perf_counter()
    toys = counting_grid_toys(ex.grid, n_toys, seed=0, sampler=ex.sampler(), return_maps=True,
                              progress=False)  # fmt: skip
    t = time.perf_counter() - t0
    p, err = toys.global_pvalue(z_obs)
    gv = toys.gross_vitells(z_obs)
    return t, p, err, gv, int(toys.n_failed.sum())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pyhf-points", type=int, default=12)
    ap.add_argument("--lee-toys", type=int, default=1000)
    ap.add_argument("--json")
    args = ap.parse_args()
    machine = describe_machine()
    load0 = load_1min()
    print(fmt_machine(machine))
    ex = dark_higgs_grid()
    res, iv, t_scan, t_coup = bench_grid(ex)
    cold = time.perf_counter() - T_START
    z = np.where(res.significance_converged, res.significance, np.nan)
    zi = np.unravel_index(np.nanargmax(z), res.shape)
    pts, t_pyhf, d_pyhf, failed = bench_pyhf(ex, res, args.pyhf_points)
    per_pt = t_pyhf / len(pts)
    t_jl_b, t_ref_b, d_b, n_b = bench_direct()
    rows = [
        {"row": "G: jaxlike grid, CLs + Bayes, 900 pts × 3 ch (first call)",
         "time": f"{t_scan:.1f} s", "note": f"process start → done {cold:.1f} s "
         f"({'PASS' if cold <= 120 else 'MISS'} ≤ 2 min); converged "
         f"{100 * res.converged.mean():.4g}%"},
        {"row": "G: coupling bands at 45 masses", "time": f"{t_coup:.2f} s",
         "note": f"{int((np.asarray(iv.n_intervals) > 0).sum())} masses with a band"},
        {"row": f"P: pyhf-numpy CLs limits, {len(pts)} points (toms748)",
         "time": f"{t_pyhf:.1f} s", "note": f"{per_pt:.2f} s/point → 900 points "
         f"{900 * per_pt:.0f} s (extrapolated); max rel. diff. of the observed limits "
         f"{d_pyhf:.1e}; pyhf failed at {len(failed)} of {len(pts)} points {failed}"},
        {"row": f"B: jaxlike Bayes on/off, {n_b} problems (first call)", "time": f"{t_jl_b:.1f} s",
         "note": f"max rel. diff to direct integration {d_b:.1e}"},
        {"row": f"B: direct integration, {n_b} problems", "time": f"{t_ref_b:.1f} s",
         "note": "k in closed form, 40×40 Gauss–Hermite, 8001 μ points"},
    ]  # fmt: skip
    out = {"machine": machine, "grid_s": t_scan, "cold_s": cold, "pyhf_s_per_point": per_pt,
           "pyhf_max_rel_diff": d_pyhf, "bayes_direct_max_rel_diff": d_b,
           "max_local_z": float(z[zi]),
           "at": [float(ex.masses[zi[0]]), float(ex.ctaus[zi[1]])]}  # fmt: skip
    if args.lee_toys:
        t, p, err, gv, failed = bench_lee(ex, float(z[zi]), args.lee_toys)
        rows.append({"row": f"L: {args.lee_toys} toys of the whole grid", "time": f"{t:.0f} s",
                     "note": f"{args.lee_toys / t:.2f} toys/s ({900 * args.lee_toys / t:.0f} "
                     f"points/s); local Z {z[zi]:.2f} → global p {p:.3g} ± {err:.2g} "
                     f"(Z {max(0.0, float(norm.isf(p))):.2f}); "
                     f"Gross–Vitells {gv.p_global:.3g}; failed fits {failed}"})  # fmt: skip
        out |= {"lee_toys": args.lee_toys, "global_p": p, "global_p_err": err,
                "gv_p": gv.p_global, "lee_s": t}  # fmt: skip
    load1 = load_1min()
    print_rows(
        "Dark-Higgs counting grid", rows, ("row", "time", "note"),
        preamble=f"jaxlike {jaxlike.__version__}; load {load0:.2f} → {load1:.2f}",
    )  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
