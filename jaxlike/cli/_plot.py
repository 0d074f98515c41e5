"""``jaxlike plot``: figures of a scan results file (:func:`jaxlike.scan.read_results`).

- Mass scans: the Brazil band (observed limit, expected median dashed, ±1σ green and ±2σ
  yellow) versus mass at one CL level, and the local significance with its 3σ and 5σ lines;
  the axes are labelled from the ``[plot]`` section of the stored scan configuration
  (:func:`jaxlike.parametric.plot_labels`), and lines and bands break at its vetoed ranges.
- Given a JSON workspace instead (``jaxlike plot WORKSPACE --what ... -o DIR``): the figures
  of the fit products (:func:`cmd_plot_workspace`).
- Patch scans with two coordinates: CLs_obs at the test POI on the grid, with the observed
  (solid) and expected (dashed, ±1σ dotted) exclusion contours CLs = 1 − CL; with one
  coordinate (or plain patch files): the Brazil band versus that coordinate. The axes are
  named after the patchset's labels (for plain patch files: the numbers of the file names,
  ``x0 in patch names ERJR_x0_x1``).
- ``--xlabel``/``--ylabel`` override the stored labels; ``--style`` draws in an mplhep style.

The figures are drawn by :mod:`jaxlike.plotting` (:func:`~jaxlike.plotting.plot_brazil_band`,
:func:`~jaxlike.plotting.plot_significance`, :func:`~jaxlike.plotting.plot_exclusion`):
matplotlib off-screen (Agg, no pyplot state), a plain built-in style unless ``--style`` names
an mplhep one.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from ..plotting import STYLES
from . import _analysis
from ._io import CliError, build, cl_level, finite_float

__all__ = [
    "add_parser",
    "cmd_plot",
    "cmd_plot_workspace",
    "is_workspace",
    "plot_scan",
    "signal_samples",
]


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
        choices=["auto", "mu", "physical", "coupling"],
        default="auto",
        help="limits on μ, in physical units, or on the [physics] parameter of the scan "
        "(auto: the coupling, else physical units, when the file has them)",
    )
    p.add_argument("--xlabel", metavar="TEXT", help="x axis label (default: from the scan file)")
    p.add_argument("--ylabel", metavar="TEXT", help="y axis label (default: from the scan file)")
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
            style=args.style,
            xlabel=args.xlabel,
            ylabel=args.ylabel,
        )
    except (CliError, JaxlikeError, KeyError) as err:
        text = f"{args.scan}: no result {err} to plot" if isinstance(err, KeyError) else str(err)
        print(f"jaxlike plot: error: {' '.join(text.split())}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


def plot_scan(
    path, output, *, significance=None, fmt=None, cl=None, logy=False, units="auto", style=None,
    xlabel=None, ylabel=None,
):  # fmt: skip
    """Write the figures of the scan file ``path``; returns the paths written.

    ``output`` is the main figure (Brazil band or exclusion map); ``significance`` the
    significance figure of a mass scan (default ``significance.<fmt>`` beside ``output``).
    The axis labels come from the file (:func:`_mass_labels`, :func:`_patch_labels`) unless
    ``xlabel``/``ylabel`` are given; ``style``: None or an mplhep style name.
    """
    from ..scan import read_results

    hyps, res, attrs = read_results(path)
    fmt = fmt or (Path(output).suffix[1:].lower() or "png")
    if fmt not in ("png", "pdf"):
        raise CliError(f"{output}: unsupported figure format {fmt!r} (png or pdf)")
    output = Path(output).with_suffix(f".{fmt}")
    levels = [float(x) for x in np.atleast_1d(attrs.get("cl", [0.95]))]
    j = 0 if cl is None else _level(levels, cl, path)
    kind, config = attrs.get("kind"), attrs.get("config") or {}
    over = {"xlabel": xlabel, "ylabel": ylabel, "style": style,
            "boundaries": attrs.get("segment_boundaries")}  # fmt: skip
    if kind == "mass" and "mass" in hyps:
        sig = Path(significance or output.with_name("significance")).with_suffix(f".{fmt}")
        return _plot_mass(hyps, res, config, levels[j], j, output, sig, units, path, logy, over)
    if kind == "patches" and "values" in hyps:
        names = [str(n) for n in np.atleast_1d(attrs.get("patch_names", []))]
        _plot_patches(hyps, res, config, names, levels[j], j, output, units, path, logy, over)
        return [output]
    raise CliError(f"{path}: not a mass or patch scan (kind {kind!r}); nothing to plot")


def _mass_labels(config, kind: str, level: float) -> tuple[str, str]:
    """(x label, limit label) of a mass scan from its stored ``[plot]`` (and ``[physics]``)
    sections; ``kind``: ``"mu"``, ``"physical"`` or ``"coupling"``."""
    from ..exceptions import InvalidScanConfig
    from ..parametric import physics_labels, plot_labels
    from ..plotting import axis_label

    try:
        lab = plot_labels(config)
        phys = physics_labels(config)
    except InvalidScanConfig as err:
        raise CliError(f"the stored scan configuration: {err}") from None
    if kind == "coupling" and phys is not None:
        what = axis_label(phys["label"], phys["unit"])
    elif kind != "mu":
        what = axis_label(lab["limit_label"], lab["limit_unit"])
    else:
        what = lab["poi_label"]
    return axis_label(lab["label"], lab["unit"]), f"{100 * level:g}% CL upper limit on {what}"


def _plot_mass(hyps, res, config, level, j, output, sig, units, path, logy, over):
    from .. import plotting

    x, order = hyps["mass"], np.argsort(hyps["mass"])
    obs, exp, kind = _limits(res, j, units, path)
    xlabel, ylabel = _mass_labels(config, kind, level)
    xlabel, ylabel = over["xlabel"] or xlabel, over["ylabel"] or ylabel
    window = config.get("window") if isinstance(config.get("window"), dict) else {}
    vetoes = window.get("vetoes") or None
    bounds = over.get("boundaries")
    _draw(plotting.plot_brazil_band, x[order], obs[order], exp[order], output, xlabel=xlabel,
          ylabel=ylabel, logy=logy, vetoes=vetoes, style=over["style"],
          boundaries=bounds)  # fmt: skip
    if "significance" not in res:
        return [output]
    _draw(plotting.plot_significance, x[order], res["significance"][order], sig,
          xlabel=xlabel, vetoes=vetoes, style=over["style"], boundaries=bounds)  # fmt: skip
    return [output, sig]


def _patch_labels(labels, names) -> list[str]:
    """Axis labels of a patch scan's coordinates: the patchset's ``labels``; coordinates read
    from plain patch file names (labels ``x0``, ``x1``, ...) are described by the name pattern,
    e.g. ``x0 in patch names ERJR_x0_x1``."""
    import re

    labels = [str(x) for x in labels]
    if not names or not labels or labels != [f"x{k}" for k in range(len(labels))]:
        return labels
    fields, k = names[0].split("_"), 0
    for i, f in enumerate(fields):
        if re.fullmatch(r"m?\d+(?:p\d+)?", f) and k < len(labels):
            fields[i], k = labels[k], k + 1
    template = "_".join(fields)
    return [f"{x} in patch names {template}" for x in labels]


def _plot_patches(hyps, res, config, names, level, j, output, units, path, logy, over):
    from .. import plotting

    values = np.asarray(hyps["values"], float)
    labels = _patch_labels(list(config.get("labels") or []), names)
    if values.ndim == 2 and values.shape[1] == 2:
        if over["xlabel"] or over["ylabel"]:
            labels = [over["xlabel"] or labels[0], over["ylabel"] or labels[1]]
        test_poi = float(config.get("test_poi", 1.0))
        _draw(plotting.plot_exclusion, values, res["cls_obs"], res["cls_exp"], output,
              cl=level, test_poi=test_poi, labels=labels, style=over["style"])  # fmt: skip
        return
    one = values.ndim == 2 and values.shape[1] == 1
    x = values[:, 0] if one else hyps["index"]
    xlabel = labels[0] if len(labels) == 1 and one else "patch index"
    obs, exp, kind = _limits(res, j, units, path)
    what = "σ × B" if kind == "physical" else "μ"
    ylabel = over["ylabel"] or f"{100 * level:g}% CL upper limit on {what}"
    order = np.argsort(x)
    _draw(plotting.plot_brazil_band, x[order], obs[order], exp[order], output,
          xlabel=over["xlabel"] or xlabel, ylabel=ylabel, logy=logy,
          style=over["style"])  # fmt: skip


def _level(levels, cl, path) -> int:
    hits = [i for i, x in enumerate(levels) if np.isclose(x, cl)]
    if not hits:
        raise CliError(f"--cl {cl:g}: {path} has CL levels {', '.join(f'{x:g}' for x in levels)}")
    return hits[0]


def _limits(res, j, units, path):
    """(observed [H], expected [H, 5] sorted, kind) at CL level ``j``; kind ``"mu"``,
    ``"physical"`` (× unit) or ``"coupling"`` (the ``[physics]`` parameter)."""
    phys = "ul_obs_phys" in res and "ul_exp_phys" in res
    coupling = "ul_obs_coupling" in res and "ul_exp_coupling" in res
    if units == "physical" and not phys:
        raise CliError(f"--units physical: {path} holds no limits in physical units")
    if units == "coupling" and not coupling:
        raise CliError(f"--units coupling: {path} holds no limits on a [physics] parameter")
    if "ul_obs" not in res or "ul_exp" not in res:
        raise CliError(f"{path}: no upper limits (ul_obs, ul_exp) to plot")
    if units == "auto":
        phys = phys and not np.allclose(res["ul_obs_phys"], res["ul_obs"], equal_nan=True)
        kind = "coupling" if coupling else "physical" if phys else "mu"
    else:
        kind = units
    key = {"mu": "", "physical": "_phys", "coupling": "_coupling"}[kind]
    n = len(res[f"ul_obs{key}"])
    obs = np.asarray(res[f"ul_obs{key}"], float).reshape(n, -1)[:, j]
    exp = np.asarray(res[f"ul_exp{key}"], float).reshape(n, -1, 5)[:, j]
    return obs, np.sort(exp, axis=1), kind


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
        help="workspace mode: signal patch (a pyhf patch file or PATCHSET.json:NAME); repeatable",
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
    p.add_argument(
        "--max-pars",
        type=int,
        metavar="N",
        help="workspace mode: at most N parameters in the pulls (largest |pull|) and the "
        "correlation matrix (largest |correlation|); default all",
    )
    p.add_argument(
        "--prefix",
        default="",
        metavar="TEXT",
        help="workspace mode: start every file name with TEXT (e.g. erjr_ gives erjr_pulls.png)",
    )
    p.add_argument(
        "--style",
        choices=STYLES,
        help="an mplhep style (pip install 'jaxlike[plot]'); default: plain matplotlib",
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


def _scan_figure(model, data, res, par, path, style=None):
    from .. import analysis, plotting

    i = analysis.resolve_index(model.config, par)
    best, sigma = float(res.bestfit[i]), float(res.uncertainties[i])
    if not (math.isfinite(sigma) and sigma > 0):
        raise CliError(f"scan:{par}: the parameter is fixed or has no Hessian uncertainty")
    lo, hi = model.config.suggested_bounds()[i]
    grid = np.linspace(max(lo, best - 3 * sigma), min(hi, best + 3 * sigma), 31)
    scan = analysis.profile_scan(model, data, i, grid, fit_result=res)
    return _analysis.draw(plotting.plot_profile_scan, scan, path, sigma=sigma, style=style)


def signal_samples(model, pars) -> list[str]:
    """The samples whose expected yields depend on the POI at ``pars`` (the signal, drawn on
    top of the stacked yields)."""
    import jax.numpy as jnp

    cfg = model.config
    poi = cfg.par_index(cfg.poi_names[0]) if cfg.poi_names else None
    if poi is None:
        return []
    pars = jnp.asarray(pars, float)
    a = np.asarray(model.expected_by_sample(pars))
    b = np.asarray(model.expected_by_sample(pars.at[poi].add(1.0)))
    moved = np.any(np.abs(b - a) > 1e-12 * (1.0 + np.abs(a)), axis=tuple(range(1, a.ndim)))
    return [s for s, m in zip(cfg.samples, moved, strict=True) if m]


def cmd_plot_workspace(args) -> int:
    """``jaxlike plot WORKSPACE --what ...``: figures of the fit products into ``-o`` (a folder)."""
    from .. import analysis, plotting

    what = _parse_what(args.what)
    _analysis.check_top(args.top)
    if args.max_pars is not None and args.max_pars < 1:
        raise CliError(f"--max-pars must be at least 1, not {args.max_pars}")
    ext, style, pre = args.format or "png", args.style, args.prefix
    if pre != Path(pre).name or pre in (".", ".."):
        raise CliError(f"--prefix {pre!r}: a file-name prefix, not a path")
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
    draw = _analysis.draw
    for w in what:
        if w == "pulls":
            paths.append(draw(plotting.plot_pulls, pulls, folder / f"{pre}pulls.{ext}",
                              max_pars=args.max_pars, style=style))  # fmt: skip
        elif w == "ranking":
            imp = analysis.impacts(model, data, fit_result=res)
            paths.append(draw(plotting.plot_ranking, imp, folder / f"{pre}ranking.{ext}",
                              pulls=pulls, top=args.top, style=style))  # fmt: skip
        elif w == "correlation":
            names, corr = analysis.correlation_matrix(model, res, threshold=args.threshold)
            paths.append(draw(plotting.plot_correlation, names, corr,
                              folder / f"{pre}correlation.{ext}", max_pars=args.max_pars,
                              style=style))  # fmt: skip
        elif w == "yields":
            signal = signal_samples(model, res.bestfit)
            for postfit in (False, True):
                t = _analysis.yield_table(model, data, postfit, res)
                try:
                    written = plotting.plot_all_yields(t, folder, fmt=ext, logy=args.logy,
                                                       signal=signal, style=style,
                                                       prefix=pre)  # fmt: skip
                except OSError as err:
                    raise CliError(f"cannot write figure: {err.strerror or err}") from None
                paths += [str(p) for p in written]
        else:
            par = w[5:]
            path = folder / f"{pre}scan_{stems[par]}.{ext}"
            paths.append(_scan_figure(model, data, res, par, path, style))
    for p in paths:
        print(p)
    return 0
