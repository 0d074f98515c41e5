"""``jaxlike scan --example dark-higgs|bka-lifetime``: the N-D counting grids of the bundled
searches.

::

    jaxlike scan --example dark-higgs [-o DIR] [--method cls --method bayes] [--lee-toys N]
    jaxlike scan --example bka-lifetime [-o DIR] [--method cls --method bayes] [--lee-toys N]

writes DIR/grid.h5 (every point's limits in the POI's unit, resumable), DIR/limits.png (the
limit map over mass × cτ, log cτ), DIR/significance.png, DIR/couplings.png (the excluded
region of the coupling: sin θ of the dark Higgs, g_aW of the ALP) and prints a summary: the
largest local significance, the global p-value from ``--lee-toys`` pseudo-experiments of the
whole grid (0: none) beside the Gross–Vitells estimate, and the coupling exclusion.
``--method`` (repeatable): ``cls`` (asymptotic CLs, the default), ``bayes`` (credible limits,
uniform prior on the POI) and/or ``toys`` (toy-based limits, as ``--calctype toybased``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ._io import CliError

__all__ = [
    "GRID_EXAMPLES",
    "grid_example_command",
    "grid_file_command",
    "grid_methods",
    "grid_summary_text",
]


#: ``--example`` names of the counting-grid examples: (builder in jaxlike.examples, file name)
GRID_EXAMPLES = {
    "dark-higgs": ("dark_higgs_grid", "dark_higgs_grid.json"),
    "bka-lifetime": ("bka_lifetime_grid", "bka_lifetime_grid.json"),
}


def grid_methods(args) -> tuple[str, ...]:
    """The methods of ``--method`` (``cls``, ``bayes``, ``toys``; default ``cls``), plus
    ``toys`` with ``--calctype toybased``."""
    methods = list(args.method or ["cls"])
    if args.calctype == "toybased":
        methods.append("toys")
    return tuple(dict.fromkeys(methods))


def _coupling_summary(ex, intervals):
    n = np.asarray(intervals.n_intervals)
    lo, hi = np.asarray(intervals.lower)[:, 0], np.asarray(intervals.upper)[:, 0]
    at_lo, at_hi = ex.edges_at_grid_end(intervals)
    has = n > 0
    name = ex.coupling_name
    out = {"name": name, "masses_with_exclusion": int(has.sum()), "masses": int(n.size)}
    if has.any():
        out["min"] = float(np.nanmin(lo[has]))
        out["max"] = float(np.nanmax(hi[has]))
        out["open_above"] = int(np.asarray(intervals.open_above)[has].sum())
        out["edges_at_grid_end"] = int(at_lo[:, 0][has].sum() + at_hi[:, 0][has].sum())
    return out


def _check_args(args):
    for flag in ("test_poi", "poi_max"):
        if getattr(args, flag) is not None:
            raise CliError(f"--{flag.replace('_', '-')} does not apply to counting grids")
    if args.lee_toys is not None and args.lee_toys < 0:
        raise CliError(f"--lee-toys must be ≥ 0, not {args.lee_toys}")


def grid_example_command(args, folder: Path, name: str = "dark-higgs"):
    """A counting-grid example (:data:`GRID_EXAMPLES`): write its grid (``<name>_grid.json``,
    the format of ``jaxlike scan GRID.json``) into ``folder``, scan every point, plot limits,
    significance and the excluded coupling region, summarise: (summary, exit code)."""
    import jaxlike.examples as examples
    from jaxlike.plotting import plot_coupling_band
    from jaxlike.scan import counting_grid_to_dict

    from ._io import dump

    _check_args(args)
    if folder.exists() and not folder.is_dir():
        raise CliError(f"{folder} is not a folder (with --example, -o names the output folder)")
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "grid.h5"
    if out.exists() and not (args.resume or args.overwrite):
        raise CliError(f"{out} already exists; pass --resume to continue it or --overwrite")
    t0 = time.monotonic()
    builder, file_name = GRID_EXAMPLES[name]
    ex = getattr(examples, builder)(seed=0 if args.seed is None else args.seed)
    (folder / file_name).write_text(dump(counting_grid_to_dict(ex.grid)))
    mark = (ex.injected["m"], ex.injected["ctau"], "injected") if ex.injected else None
    summary, code, res, limit = _run_grid(args, ex.grid, out, f"{folder}/", t0, mark,
                                          ex.sampler())  # fmt: skip
    intervals = ex.coupling_limits(limit)
    summary["plots"].append(str(plot_coupling_band(
        ex.masses, intervals, folder / "couplings.png", mass_title=ex.grid.axes[0].title,
        coupling_title=ex.coupling_title)))  # fmt: skip
    summary["coupling"] = _coupling_summary(ex, intervals)
    return summary, code


def grid_file_command(args, path: Path):
    """``jaxlike scan GRID.json``: a counting grid of :func:`jaxlike.scan.load_counting_grid`
    format, results to ``-o`` (default grid.h5), plots beside it for 2-D grids."""
    from jaxlike.scan import load_counting_grid

    from ._io import results_file

    _check_args(args)
    if args.seed is not None:
        raise CliError("--seed applies to --example only")
    grid = load_counting_grid(path)
    out = results_file(args.output or "grid.h5", args.resume, args.overwrite)
    prefix = f"{out.with_suffix('')}_"
    summary, code, _, _ = _run_grid(args, grid, out, prefix, time.monotonic())
    return summary, code


def _run_grid(args, grid, out: Path, prefix: str, t0, mark=None, sampler=None):
    """Scan ``grid`` into ``out``; plots ``<prefix>limits.png`` and ``<prefix>significance.png``
    (2-D grids); the LEE toys of ``--lee-toys``."""
    import jaxlike.scan as js
    from jaxlike.plotting import plot_counting_grid

    from ._scan import EXIT_NOT_CONVERGED, toy_args

    methods = grid_methods(args)
    # --method toys is --calctype toybased: its toy flags (--ntoys, ...) apply
    toys = toy_args(argparse.Namespace(**{**vars(args), "calctype": "toybased"})
                    if "toys" in methods else args)  # fmt: skip
    cl = tuple(args.cl or (0.95,))
    res = js.counting_grid_scan(
        grid, method=methods, cl=cl, rule=args.rule, toys=toys, store=str(out),
        resume=args.resume, overwrite=args.overwrite, chunk_size=args.chunk_size,
        memory_budget_bytes=args.memory_budget, progress=not args.no_progress,
    )  # fmt: skip
    seconds = time.monotonic() - t0
    field = "bayes_ul" if "bayes" in methods else "ul_obs"
    plots = []
    if len(grid.shape) == 2:
        plots.append(plot_counting_grid(res, f"{prefix}limits.png", field=field, mark=mark))
    coords = {a.name: a.values for a in grid.axes}
    summary = {
        "output": str(out),
        "grid": {
            a.name: [float(a.values[0]), float(a.values[-1]), int(a.values.size)] for a in grid.axes
        },  # fmt: skip
        "points": grid.size,
        "channels": [c.name for c in grid.channels],
        "methods": list(methods),
        "seconds": seconds,
        "converged_fraction": float(np.mean(res.converged)),
        "not_converged": int(np.sum(~res.converged)),
    }
    limit = np.asarray(getattr(res, field))[..., 0]
    at = np.unravel_index(np.nanargmin(np.where(res.converged, limit, np.nan)), res.shape)
    summary["strongest_limit"] = {
        "at": {k: float(v[i]) for (k, v), i in zip(coords.items(), at, strict=True)},
        "limit": float(limit[at]), "unit": grid.poi_unit, "field": field,
    }  # fmt: skip
    if res.significance is not None:
        if len(grid.shape) == 2:
            plots.append(plot_counting_grid(res, f"{prefix}significance.png", significance=True,
                                            mark=mark))  # fmt: skip
        z = np.where(res.significance_converged, res.significance, np.nan)
        at = np.unravel_index(np.nanargmax(z), res.shape)
        summary["max_local_z"] = {
            "at": {k: float(v[i]) for (k, v), i in zip(coords.items(), at, strict=True)},
            "z": float(z[at]),
        }
        if args.lee_toys:
            toys_res = js.counting_grid_toys(
                grid, args.lee_toys, seed=args.toy_seed or 0, sampler=sampler,
                return_maps=True, progress=not args.no_progress,
            )  # fmt: skip
            p, err = toys_res.global_pvalue(float(z[at]))
            gv = toys_res.gross_vitells(float(z[at])).p_global
            summary["global"] = {"toys": int(args.lee_toys), "p": p, "p_err": err,
                                 "failed_fits": int(toys_res.n_failed.sum()),
                                 "gross_vitells_p": gv}  # fmt: skip
    summary["plots"] = [str(p) for p in plots]
    return summary, (EXIT_NOT_CONVERGED if summary["not_converged"] else 0), res, limit


def grid_summary_text(s: dict) -> str:
    """The summary as a two-column table."""
    from ._format import table

    rows = [
        ["results", s["output"]],
        [
            "grid",
            ", ".join(f"{k} {v[0]:g}…{v[1]:g} ({v[2]})" for k, v in s["grid"].items())
            + f" = {s['points']} points × {len(s['channels'])} channels",
        ],  # fmt: skip
        ["methods", ", ".join(s["methods"])],
        ["time", f"{s['seconds']:.1f} s"],
        ["converged", f"{100 * s['converged_fraction']:.4g}%"],
    ]
    lim = s["strongest_limit"]

    def where(at):
        return ", ".join(f"{k} {v:.4g}" for k, v in at.items())

    rows.append(["strongest limit", f"{lim['limit']:.3g} {lim['unit']} at {where(lim['at'])} "
                 f"({lim['field']})"])  # fmt: skip
    if "max_local_z" in s:
        z = s["max_local_z"]
        rows.append(["largest local Z", f"{z['z']:.3g} at {where(z['at'])}"])
    if "global" in s:
        g = s["global"]
        rows.append(
            [
                "global p",
                f"{g['p']:.3g} ± {g['p_err']:.2g} ({g['toys']} toys; "
                f"Gross–Vitells from their Euler characteristics {g['gross_vitells_p']:.3g})",
            ]
        )
    if "coupling" in s:
        c = s["coupling"]
        text = f"excluded at {c['masses_with_exclusion']} of {c['masses']} masses"
        if "min" in c:
            text += f", {c['name']} {c['min']:.3g}…{c['max']:.3g}"
            if c["open_above"]:
                text += f" (open above at {c['open_above']} masses: the scanned range's end)"
        rows.append(["couplings", text])
    rows.append(["plots", ", ".join(s["plots"])])
    return table(["", ""], rows)
