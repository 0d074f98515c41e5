"""``jaxlike grid``: a 2-D profile-likelihood map (e.g. over two Wilson coefficients).

::

    jaxlike grid WORKSPACE --x C_V:0:20:100 --y C_T:0:20:100 [--fix C_S=0 ...] -o grid.h5
    jaxlike belle2-wet DIR -o wet.json     # the Belle II WET workspace, then
    jaxlike grid wet.json --x C_V:0:20:100 --y C_T:0:20:100 --plot grid.png \\
        --reference C_V=6.613,C_T=0

Each grid point is a fit with x and y fixed and every other parameter profiled unless
``--fix``-ed; Δ2NLL is relative to the global minimum and the 2-dof Wilks contours
Δ2NLL = 2.2958 (68.27 %) and 5.9915 (95 %) are drawn by ``--plot``. Results go to an HDF5 file
(``--resume`` continues it, refused for another grid; ``--overwrite`` replaces it). Exit codes:
0, 2 bad input (one error line), 3 some grid fit or the global fit did not converge.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ._format import table
from ._io import (
    CliError,
    dump,
    load_workspace,
    positive_int,
    results_file,
    resumable_error,
)

__all__ = ["add_parser", "cmd_grid", "parse_axis", "parse_assignments"]

EXIT_NOT_CONVERGED = 3


#: most points of one grid axis, and of the whole grid (each point is a fit)
MAX_AXIS_POINTS = 100_000
MAX_GRID_POINTS = 10_000_000


def parse_axis(text: str):
    """``NAME:LO:HI:N`` → (NAME, N evenly spaced values from LO to HI, both included).

    LO and HI are finite numbers with LO < HI (LO = HI only for N = 1); N is an integer in
    1 … :data:`MAX_AXIS_POINTS`."""
    usage = f"invalid axis {text!r} (expected NAME:LO:HI:N)"
    parts = str(text).rsplit(":", 3)
    if len(parts) != 4 or not parts[0].strip():
        raise argparse.ArgumentTypeError(usage)
    name, lo, hi, n = parts
    try:
        lo, hi, n = float(lo), float(hi), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(usage) from None
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise argparse.ArgumentTypeError(f"invalid axis {text!r}: LO and HI must be finite")
    if n < 1 or n > MAX_AXIS_POINTS:
        raise argparse.ArgumentTypeError(
            f"invalid axis {text!r}: N must be in 1...{MAX_AXIS_POINTS:_}"
        )
    if (n > 1 and not hi > lo) or (n == 1 and hi < lo):
        raise argparse.ArgumentTypeError(f"invalid axis {text!r}: need LO < HI")
    return name.strip(), np.linspace(lo, hi, n)


def parse_assignments(text: str) -> dict:
    """``A=1,B=2`` → {"A": 1.0, "B": 2.0}; values finite, each name once."""
    out = {}
    for item in str(text).split(","):
        name, eq, value = item.strip().rpartition("=")
        name = name.strip()
        try:
            if not eq or not name:
                raise ValueError
            x = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid assignment {item!r} (NAME=VALUE)") from None
        if not np.isfinite(x):
            raise argparse.ArgumentTypeError(f"invalid assignment {item!r}: value not finite")
        if name in out:
            raise argparse.ArgumentTypeError(f"{name!r} is assigned twice in {text!r}")
        out[name] = x
    return out


def add_parser(subs) -> argparse.ArgumentParser:
    """Register ``jaxlike grid`` on the subcommand action ``subs``."""
    p = subs.add_parser(
        "grid",
        help="2-D profile-likelihood map over two parameters (e.g. Wilson coefficients)",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 success, 2 bad input, 3 a fit did not converge (results written)",
    )
    p.add_argument("workspace", metavar="WORKSPACE", help="pyhf JSON workspace")
    p.add_argument("--measurement", metavar="NAME", help="measurement to use (default: first)")
    p.add_argument("--x", required=True, type=parse_axis, metavar="NAME:LO:HI:N", help="x axis")
    p.add_argument("--y", required=True, type=parse_axis, metavar="NAME:LO:HI:N", help="y axis")
    p.add_argument(
        "--fix", action="append", type=parse_assignments, metavar="NAME=VALUE",
        help="hold a parameter constant (repeat, or NAME=V,NAME2=V2; a vector name fixes all)",
    )  # fmt: skip
    p.add_argument("-o", "--output", metavar="PATH", help="results file (default grid.h5)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue an existing results file")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing results file")
    p.add_argument("--chunk-size", type=positive_int, metavar="N", help="fits per chunk (32)")
    p.add_argument("--plot", metavar="PATH", help="also draw the map (PNG or PDF)")
    p.add_argument(
        "--reference", type=parse_assignments, metavar="X=V,Y=V",
        help="reference point marked on the plot, e.g. the SM: C_V=6.613,C_T=0",
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def _model(args):
    import jaxlike

    ws = load_workspace(args.workspace)
    model = ws.model(measurement_name=args.measurement)
    if not isinstance(ws, jaxlike.Workspace):  # pragma: no cover - defensive
        raise CliError("not a workspace")
    return model, ws.data(model)


def _output(args) -> Path:
    return results_file(args.output or "grid.h5", args.resume, args.overwrite)


def cmd_grid(args) -> int:
    """``jaxlike grid``: run the grid, print the summary; bad input is one line and exit 2."""
    from ..exceptions import JaxlikeError
    from ..scan import Progress, profile_grid
    from ..stream import resume_chunk_size
    from ._scan import os_error, scan_warnings

    try:
        fixed = {}
        for item in args.fix or []:
            again = sorted(set(fixed) & set(item))
            if again:
                raise CliError(f"--fix {again[0]} is given twice")
            fixed.update(item)
        x_name, y_name = args.x[0], args.y[0]
        if x_name == y_name:
            raise CliError(f"--x and --y are the same parameter {x_name!r}")
        for name in (x_name, y_name):
            if name in fixed:
                raise CliError(f"--fix {name}: it is a grid axis (--x/--y set its values)")
        if len(args.x[1]) * len(args.y[1]) > MAX_GRID_POINTS:
            raise CliError(
                f"the grid has {len(args.x[1]) * len(args.y[1]):_} points, more than the limit "
                f"of {MAX_GRID_POINTS:_}"
            )
        model, data = _model(args)
        names = set(model.config.par_names) | set(model.config.par_map)
        for name in [args.x[0], args.y[0], *fixed, *(args.reference or {})]:
            if name not in names:
                raise CliError(f"parameter {name!r} is not in the model")
        out = _output(args)
        if args.plot is not None and not Path(args.plot).parent.is_dir():
            raise CliError(f"--plot {args.plot}: folder does not exist")
        reporter = Progress(enabled=not args.no_progress, label="grid rows")
        t0 = time.monotonic()
        chunk = resume_chunk_size(out, args.chunk_size, resume=args.resume)  # a resume: the file's
        with scan_warnings("grid"):
            res = profile_grid(
                model, data, args.x, args.y, fixed=fixed, store=str(out), resume=args.resume,
                overwrite=args.overwrite, chunk_size=chunk, progress=reporter,
            )  # fmt: skip
        seconds = time.monotonic() - t0
        summary = {"output": str(out), **res.summary(), "seconds": round(seconds, 3)}
        n_y = len(res.y)  # rows of the sweep are the unit of progress and of the store
        summary["computed"], summary["resumed"] = reporter.computed * n_y, reporter.resumed * n_y
        if args.plot is not None:
            from ..plotting import plot_profile_grid

            try:
                path = plot_profile_grid(res, args.plot, reference=args.reference)
            except (OSError, ValueError) as err:
                raise CliError(f"--plot {args.plot}: {err}") from None
            summary["plot"] = str(path)
    except (CliError, JaxlikeError, KeyboardInterrupt) as err:
        return resumable_error("grid", err, "grid points")
    except OSError as err:  # disk full, no permission, ... while writing: one line, exit 2
        return resumable_error("grid", os_error(err), "grid points")
    print(dump(summary) if args.json else _text(summary))
    bad = summary["not_converged"]
    if bad or not summary["global_fit"]["converged"]:
        what = f"{bad} grid fits" if bad else "the global fit"
        print(f"jaxlike grid: warning: {what} did not converge", file=sys.stderr)
        return EXIT_NOT_CONVERGED
    return 0


def _text(s: dict) -> str:
    x, y = s["x"], s["y"]
    best = ", ".join(f"{k} = {v:.6g}" for k, v in s["best"].items())
    rows = [
        ["results", s["output"]],
        ["grid", f"{x['name']} [{x['min']:g}, {x['max']:g}] × {y['name']} "
                 f"[{y['min']:g}, {y['max']:g}], {x['n']} × {y['n']} points"],
        ["fixed", ", ".join(f"{k}={v:g}" for k, v in s["fixed"].items()) or "-"],
        ["minimum 2NLL", f"{s['twice_nll_min']:.6f} at {best} (from the {s['best_source']})"],
        ["converged", f"{100 * s['converged_fraction']:.4g}% "
                      f"(mean {s['mean_iterations']:.3g} iterations per fit)"],
        ["time", f"{s['seconds']:.1f} s ({s['computed']} computed, {s['resumed']} resumed)"],
    ]  # fmt: skip
    if "plot" in s:
        rows.append(["plot", s["plot"]])
    return table(["grid", "summary"], rows, "<<")
