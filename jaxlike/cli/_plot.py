"""``jaxlike plot``: figures of a scan results file (:func:`jaxlike.scan.read_results`).

- Mass scans: the Brazil band (observed limit, expected median dashed, ±1σ green and ±2σ
  yellow) versus mass at one CL level, and the local significance with its 3σ and 5σ lines.
- Given a JSON workspace instead (``jaxlike plot WORKSPACE --what ... -o DIR``): the figures
  of the fit products (:func:`cmd_plot_workspace`).
- Patch scans with two coordinates: CLs_obs at the test POI on the grid, with the observed
  (solid) and expected (dashed, ±1σ dotted) exclusion contours CLs = 1 − CL; with one
  coordinate (or plain patch files): the Brazil band versus that coordinate.

The figures are drawn by :mod:`jaxlike.plotting` (:func:`~jaxlike.plotting.plot_brazil_band`,
:func:`~jaxlike.plotting.plot_significance`, :func:`~jaxlike.plotting.plot_exclusion`):
matplotlib off-screen (Agg, no pyplot state), the mplhep ROOT style when mplhep is installed,
else a plain built-in style.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from . import _analysis
from ._io import CliError, build, cl_level, finite_float

__all__ = ["add_parser", "cmd_plot", "cmd_plot_workspace", "is_workspace", "plot_scan"]


def add_parser(subs):
    """Register ``jaxlike plot`` on the subcommand action ``subs``."""
    p = subs.add_parser(
        "plot",
        help="figures of a scan results file, or of the fit products of a workspace",
        description="Mass scans: Brazil band of the limits and the local significance versus "
        "mass. Patch scans: the CLs map with exclusion contours (2 coordinates) or the "
        "Brazil band (1 coordinate). A JSON workspace: pulls, ranking, correlation matrix, "
        "pre-/post-fit stacked yields and profile-likelihood scans (--what), written into the "
        "folder -o.",
        epilog="exit codes: 0 success, 2 bad input (missing or corrupt file), 3 the fit of a "
        "workspace did not converge",
    )
    p.add_argument(
        "scan",
        metavar="SCAN.h5|WORKSPACE",
        help="results file of 'jaxlike scan', or a JSON workspace",
    )
    p.add_argument(
        "-o", "--output", metavar="PATH", help="main figure (brazil.png); workspace: the folder (.)"
    )
    p.add_argument(
        "--significance",
        metavar="PATH",
        help="significance figure of a mass scan (default: significance.<format> beside -o)",
    )
    p.add_argument("--format", choices=["png", "pdf"], help="file format (default: from -o, png)")
    p.add_argument("--cl", type=cl_level, metavar="X", help="CL level to draw (default: the first)")
    p.add_argument("--logy", action="store_true", help="logarithmic limit axis")
    p.add_argument(
        "--units",
        choices=["auto", "mu", "physical"],
        default="auto",
        help="limits on μ or in physical units (auto: physical when the file has them)",
    )
    add_plot_options(p)
    return p


def cmd_plot(args) -> int:
    """``jaxlike plot``: write the figures; a missing or corrupt file is one line and exit 2."""
    from ..exceptions import JaxlikeError

    if is_workspace(args.scan):
        return cmd_plot_workspace(args)

    try:
        paths = plot_scan(
            args.scan,
            args.output or "brazil.png",
            significance=args.significance,
            fmt=args.format,
            cl=args.cl,
            logy=args.logy,
            units=args.units,
        )
    except (CliError, JaxlikeError, KeyError) as err:
        text = f"{args.scan}: no result {err} to plot" if isinstance(err, KeyError) else str(err)
        print(f"jaxlike plot: error: {' '.join(text.split())}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


def plot_scan(path, output, *, significance=None, fmt=None, cl=None, logy=False, units="auto"):
    """Write the figures of the scan file ``path``; returns the paths written.

    ``output`` is the main figure (Brazil band or exclusion map); ``significance`` the
    significance figure of a mass scan (default ``significance.<fmt>`` beside ``output``).
    """
    from .. import plotting
    from ..scan import read_results

    hyps, res, attrs = read_results(path)
    fmt = fmt or (Path(output).suffix[1:].lower() or "png")
    if fmt not in ("png", "pdf"):
        raise CliError(f"{output}: unsupported figure format {fmt!r} (png or pdf)")
    output = Path(output).with_suffix(f".{fmt}")
    levels = [float(x) for x in np.atleast_1d(attrs.get("cl", [0.95]))]
    j = 0 if cl is None else _level(levels, cl, path)
    kind = attrs.get("kind")
    if kind == "mass" and "mass" in hyps:
        sig = Path(significance or output.with_name("significance")).with_suffix(f".{fmt}")
        x, order = hyps["mass"], np.argsort(hyps["mass"])
        obs, exp, label = _limits(res, j, units, path)
        ylabel = f"{100 * levels[j]:g}% CL upper limit {label}"
        _draw(plotting.plot_brazil_band, x[order], obs[order], exp[order], output,
              xlabel="mass hypothesis", ylabel=ylabel, logy=logy)  # fmt: skip
        if "significance" not in res:
            return [output]
        _draw(plotting.plot_significance, x[order], res["significance"][order], sig)
        return [output, sig]
    if kind == "patches" and "values" in hyps:
        values, config = np.asarray(hyps["values"], float), attrs.get("config") or {}
        labels = list(config.get("labels") or [])
        if values.ndim == 2 and values.shape[1] == 2:
            test_poi = float(config.get("test_poi", 1.0))
            _draw(plotting.plot_exclusion, values, res["cls_obs"], res["cls_exp"], output,
                  cl=levels[j], test_poi=test_poi, labels=labels)  # fmt: skip
        else:
            x = values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else hyps["index"]
            xlabel = labels[0] if len(labels) == 1 and values.shape[1] == 1 else "patch index"
            obs, exp, label = _limits(res, j, units, path)
            order = np.argsort(x)
            ylabel = f"{100 * levels[j]:g}% CL upper limit {label}"
            _draw(plotting.plot_brazil_band, x[order], obs[order], exp[order], output,
                  xlabel=xlabel, ylabel=ylabel, logy=logy)  # fmt: skip
        return [output]
    raise CliError(f"{path}: not a mass or patch scan (kind {kind!r}); nothing to plot")


def _level(levels, cl, path) -> int:
    hits = [i for i, x in enumerate(levels) if np.isclose(x, cl)]
    if not hits:
        raise CliError(f"--cl {cl:g}: {path} has CL levels {', '.join(f'{x:g}' for x in levels)}")
    return hits[0]


def _limits(res, j, units, path):
    """(observed [H], expected [H, 5] sorted, axis label) at CL level ``j``."""
    phys = "ul_obs_phys" in res and "ul_exp_phys" in res
    if units == "physical" and not phys:
        raise CliError(f"--units physical: {path} holds no limits in physical units")
    if "ul_obs" not in res or "ul_exp" not in res:
        raise CliError(f"{path}: no upper limits (ul_obs, ul_exp) to plot")
    if units == "auto":
        phys = phys and not np.allclose(res["ul_obs_phys"], res["ul_obs"], equal_nan=True)
    elif units == "mu":
        phys = False
    key, label = ("_phys", "(physical units)") if phys else ("", "on μ")
    n = len(res[f"ul_obs{key}"])
    obs = np.asarray(res[f"ul_obs{key}"], float).reshape(n, -1)[:, j]
    exp = np.asarray(res[f"ul_exp{key}"], float).reshape(n, -1, 5)[:, j]
    return obs, np.sort(exp, axis=1), label


def _draw(plot, *args, **kwargs) -> None:
    """Call the plotting function ``plot``: a figure without its exclusion contour is one
    warning line on stderr, an unwritable file one error line (exit 2)."""
    from ..plotting import NoContourWarning
    from ._scan import one_line_warnings

    with one_line_warnings("plot", NoContourWarning):
        try:
            plot(*args, **kwargs)
        except OSError as err:
            raise CliError(f"cannot write '{args[-1]}': {err.strerror or err}") from None


def add_plot_options(p) -> None:
    """The workspace-mode options of ``jaxlike plot``."""
    p.add_argument(
        "-p",
        "--patch",
        action="append",
        metavar="PATCH",
        help="workspace mode: JSON patch file; repeat to apply several",
    )
    p.add_argument("--measurement", metavar="NAME", help="workspace mode: measurement to use")
    p.add_argument(
        "--what",
        default=",".join(_analysis.PLOTS),
        metavar="LIST",
        help="workspace mode: comma-separated figures among pulls, ranking, "
        "correlation, yields, scan:PARAM (default: all but scans)",
    )
    p.add_argument(
        "--threshold",
        type=finite_float,
        default=0.0,
        metavar="X",
        help="workspace mode: drop parameters whose correlations are all below X (0)",
    )
    p.add_argument(
        "--top",
        type=int,
        default=20,
        metavar="N",
        help="workspace mode: parameters in the ranking (20)",
    )


def is_workspace(path) -> bool:
    """A JSON workspace (``-``, ``.json`` or a file starting with ``{``), not a scan file."""
    path = str(path)
    if path == "-" or path.lower().endswith(".json"):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(64).lstrip().startswith(b"{")
    except OSError:
        return False


def _parse_what(text):
    items = list(dict.fromkeys(w.strip() for w in text.split(",") if w.strip()))  # no repeats
    if not items:
        raise CliError("--what is empty")
    for w in items:
        if w not in _analysis.PLOTS and not (w.startswith("scan:") and len(w) > 5):
            raise CliError(
                f"--what: unknown figure {w!r} (pulls, ranking, correlation, yields, scan:PARAM)"
            )
    return items


def _scan_figure(model, data, res, par, path):
    from .. import analysis, plotting

    i = analysis.resolve_index(model.config, par)
    best, sigma = float(res.bestfit[i]), float(res.uncertainties[i])
    if not (math.isfinite(sigma) and sigma > 0):
        raise CliError(f"scan:{par}: the parameter is fixed or has no Hessian uncertainty")
    lo, hi = model.config.suggested_bounds()[i]
    grid = np.linspace(max(lo, best - 3 * sigma), min(hi, best + 3 * sigma), 31)
    scan = analysis.profile_scan(model, data, i, grid, fit_result=res)
    return _analysis.draw(plotting.plot_profile_scan, scan, path, sigma=sigma)


def cmd_plot_workspace(args) -> int:
    """``jaxlike plot WORKSPACE --what ...``: figures of the fit products into ``-o`` (a folder)."""
    from .. import analysis, plotting

    what = _parse_what(args.what)
    _analysis.check_top(args.top)
    ext = args.format or "png"
    args.workspace = args.scan
    _, model, data = build(args)
    res = _analysis.fit_or_warn(model, data)
    if res is None:
        return _analysis.EXIT_NOT_CONVERGED
    folder = _analysis.make_folder(args.output or ".")
    scans = [w[5:] for w in what if w.startswith("scan:")]  # gamma[0] -> scan_gamma_0.png
    safe = plotting.file_stems(p.replace("[", "_").replace("]", "") for p in scans)
    stems = dict(zip(scans, safe, strict=True))  # distinct files, one per parameter
    paths = []
    pulls = analysis.pulls(model, data, res) if {"pulls", "ranking"} & set(what) else None
    for w in what:
        if w == "pulls":
            paths.append(_analysis.draw(plotting.plot_pulls, pulls, folder / f"pulls.{ext}"))
        elif w == "ranking":
            imp = analysis.impacts(model, data, fit_result=res)
            paths.append(
                _analysis.draw(
                    plotting.plot_ranking, imp, folder / f"ranking.{ext}", pulls=pulls, top=args.top
                )
            )
        elif w == "correlation":
            names, corr = analysis.correlation_matrix(model, res, threshold=args.threshold)
            paths.append(
                _analysis.draw(
                    plotting.plot_correlation, names, corr, folder / f"correlation.{ext}"
                )
            )
        elif w == "yields":
            for postfit in (False, True):
                t = _analysis.yield_table(model, data, postfit, res)
                paths += [str(p) for p in _analysis.draw_yields(t, folder, ext, logy=args.logy)]
        else:
            par = w[5:]
            paths.append(_scan_figure(model, data, res, par, folder / f"scan_{stems[par]}.{ext}"))
    for p in paths:
        print(p)
    return 0
