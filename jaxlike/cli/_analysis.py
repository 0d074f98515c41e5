"""The analysis-product subcommands ``ranking``, ``gof`` and ``yields``, and the helpers the
workspace mode of ``plot`` (:mod:`jaxlike.cli._plot`) shares with them.

Each needs the global maximum-likelihood fit; when it does not converge the command warns and
exits with 3 without computing the product (the product would be meaningless).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ._format import table
from ._io import CliError, add_output, build, dump, emit, nonneg_int, warn

#: Most toys `jaxlike gof --toys` runs (one vmapped batch of fits).
MAX_TOYS = 1_000_000

__all__ = [
    "add_parsers",
    "check_top",
    "cmd_gof",
    "cmd_ranking",
    "cmd_yields",
    "draw",
    "draw_yields",
    "fit_or_warn",
    "make_folder",
    "yield_table",
]

EXIT_NOT_CONVERGED = 3
PLOTS = ("pulls", "ranking", "correlation", "yields")


def _common(sub, output_help):
    sub.add_argument("workspace", metavar="WORKSPACE", help="pyhf JSON workspace ('-' = stdin)")
    sub.add_argument(
        "-p",
        "--patch",
        action="append",
        metavar="PATCH",
        help="signal patch: a pyhf patch file or PATCHSET.json:NAME; repeatable",
    )
    sub.add_argument("--measurement", metavar="NAME", help="measurement to use (default: first)")
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
    if output_help:  # -o is the figure (folder): the text goes to --output-file
        sub.add_argument("--output-file", metavar="PATH", help="write the result here, not stdout")
        sub.add_argument("-o", "--output", metavar="PATH", help=output_help)
    else:
        add_output(sub)


def add_parsers(subs) -> None:
    """Register ``ranking``, ``gof`` and ``yields`` on the subcommand action ``subs``."""
    epilog = "exit codes: 0 success, 2 bad input, 3 the fit did not converge"
    r = subs.add_parser(
        "ranking", epilog=epilog, help="impacts of the nuisance parameters on the POI (ranking)"
    )
    _common(r, "also draw the ranking plot here (PNG or PDF)")
    r.add_argument("--top", type=int, default=20, metavar="N", help="parameters shown (20)")
    g = subs.add_parser("gof", epilog=epilog, help="saturated-model goodness of fit")
    _common(g, None)
    g.add_argument("--toys", type=int, default=0, metavar="N", help="toys for a toy p-value (0)")
    g.add_argument("--seed", type=nonneg_int, default=0, help="seed of the toys (0)")
    y = subs.add_parser(
        "yields", epilog=epilog, help="pre- or post-fit yields per channel and sample"
    )
    _common(y, "also draw the stacked histograms of every channel into this folder")
    kind = y.add_mutually_exclusive_group()
    kind.add_argument(
        "--prefit",
        dest="postfit",
        action="store_false",
        help="pre-fit yields (pre-fit widths, no correlations)",
    )
    kind.add_argument(
        "--postfit",
        dest="postfit",
        action="store_true",
        default=True,
        help="post-fit yields, full fit covariance (default)",
    )
    y.add_argument(
        "--samples",
        type=int,
        default=0,
        metavar="N",
        help="also estimate the uncertainties from N parameter draws",
    )
    y.add_argument("--seed", type=nonneg_int, default=0, help="seed of the draws (0)")
    y.add_argument("--format", choices=["png", "pdf"], default="png", help="figure format")


def _num(x):
    x = float(x)
    return x if math.isfinite(x) else None


def fit_or_warn(model, data):
    """The global fit, or ``None`` (after a warning) if it did not converge."""
    import jaxlike

    res = jaxlike.fit(model, data)
    if not bool(np.all(np.asarray(res.converged))):
        message = getattr(res, "message", None)  # the check that failed, when the result says
        why = f" ({message(model.config.par_names)})" if callable(message) else ""
        warn(f"the maximum-likelihood fit did not converge{why}; no analysis product computed")
        return None
    return res


def check_top(n):
    if n < 1:
        raise CliError(f"--top must be at least 1, not {n}")


def _ranking_rows(imp, pulls, top):
    where = dict(zip(pulls.names, range(len(pulls.names)), strict=True))
    rows = []
    for i in imp.order("postfit")[:top]:
        name, j = imp.names[i], where.get(imp.names[i])
        s = imp.shifts[i]
        rows.append(
            {
                "name": name,
                "type": imp.types[i],
                "bestfit": _num(imp.bestfit[i]),
                "prefit_width": _num(imp.prefit_width[i]),
                "postfit_width": _num(imp.postfit_width[i]),
                "pull": None if j is None else _num(pulls.pull[j]),
                "constraint": None if j is None else _num(pulls.constraint[j]),
                "prefit_up": _num(s[0]),
                "prefit_down": _num(s[1]),
                "postfit_up": _num(s[2]),
                "postfit_down": _num(s[3]),
                "clipped": bool(np.any(imp.clipped[i])),
                "converged": bool(np.all(imp.converged[i])),
            }
        )
    return rows


def draw(fn, *args, **kwargs):
    try:
        return str(fn(*args, **kwargs))
    except OSError as err:
        raise CliError(f"cannot write figure: {err.strerror or err}") from None
    except ValueError as err:
        raise CliError(str(err)) from None


def draw_yields(t, folder, fmt, logy=False, signal=()):
    """The stacked yields of table ``t`` per channel into ``folder`` (``signal``: the samples
    drawn on top, cabinetry's order)."""
    from .. import plotting

    try:
        return plotting.plot_all_yields(t, folder, fmt=fmt, logy=logy, signal=signal)
    except OSError as err:
        raise CliError(f"cannot write figure: {err.strerror or err}") from None


def cmd_ranking(args) -> int:
    """``jaxlike ranking``: impacts of every nuisance parameter on the POI, largest first."""
    from .. import analysis, plotting

    check_top(args.top)
    _, model, data = build(args)
    res = fit_or_warn(model, data)
    if res is None:
        return EXIT_NOT_CONVERGED
    imp = analysis.impacts(model, data, fit_result=res)
    pulls = analysis.pulls(model, data, res)
    rows = _ranking_rows(imp, pulls, args.top)
    plot = (
        draw(plotting.plot_ranking, imp, args.output, pulls=pulls, top=args.top)
        if args.output
        else None
    )
    out = {
        "poi": imp.poi_name,
        "poi_hat": _num(imp.poi_hat),
        "poi_uncertainty": _num(imp.poi_uncertainty),
        "parameters": rows,
        "converged": bool(np.all(imp.converged)),
        "plot": plot,
    }
    if args.json:
        text = dump(out)
    else:
        fmt = lambda x: "-" if x is None else f"{x:+.4g}"  # noqa: E731
        body = [
            [
                k + 1,
                r["name"],
                fmt(r["pull"]),
                fmt(r["prefit_up"]),
                fmt(r["prefit_down"]),
                fmt(r["postfit_up"]),
                fmt(r["postfit_down"]),
            ]
            for k, r in enumerate(rows)
        ]
        heads = [
            "#",
            "parameter",
            "pull",
            "pre-fit up",
            "pre-fit down",
            "post-fit up",
            "post-fit down",
        ]
        text = f"{imp.poi_name} = {out['poi_hat']:.4g} ± {out['poi_uncertainty']:.4g}\n\n"
        text += table(heads, body, "><>>>>>")
        text += f"\n\nplot written to {plot}" if plot else ""
    emit(text, args.output_file)
    if not out["converged"]:
        warn("a conditional fit of the ranking did not converge")
        return EXIT_NOT_CONVERGED
    return 0


def cmd_gof(args) -> int:
    """``jaxlike gof``: saturated-model goodness of fit, χ² (and toy) p-value."""
    from .. import analysis

    if args.toys < 0:
        raise CliError(f"--toys must not be negative, not {args.toys}")
    if args.toys > MAX_TOYS:
        raise CliError(f"--toys {args.toys} is more than {MAX_TOYS:_} (one vmapped batch)")
    _, model, data = build(args)
    res = fit_or_warn(model, data)
    if res is None:
        return EXIT_NOT_CONVERGED
    g = analysis.goodness_of_fit(model, data, args.toys, args.seed, fit_result=res)
    out = {
        "statistic": _num(g.statistic),
        "ndf": int(g.ndf),
        "pvalue": _num(g.pvalue),
        "twice_nll": _num(g.twice_nll),
        "saturated_twice_nll": _num(g.saturated),
        "n_toys": int(g.n_toys),
        "toys_converged": int(np.sum(g.toys_converged)),
        "pvalue_toys": _num(g.pvalue_toys),
    }
    if args.json:
        text = dump(out)
    else:
        rows = [
            [k, "-" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)]
            for k, v in out.items()
        ]
        text = table(["quantity", "value"], rows, "<>")
    emit(text, args.output_file)
    if args.toys and out["toys_converged"] < args.toys:
        warn(
            f"{args.toys - out['toys_converged']} of {args.toys} toy fits did not converge "
            "(left out of the toy p-value)"
        )
    return 0


def _entry(value, sigma, sampled):
    return {"yield": _num(value), "uncertainty": _num(sigma), "sampled_uncertainty": _num(sampled)}


def _yields_json(t):
    out = {"kind": t.kind, "n_samples": t.n_samples, "channels": {}}
    for c, name in enumerate(t.channels):
        ch = t.channel(name)
        keep = np.flatnonzero(t.present[c])
        out["channels"][name] = {
            "samples": {
                t.samples[s]: _entry(
                    t.yields[c, s], t.uncertainty[c, s], t.sampled_uncertainty[c, s]
                )
                for s in keep
            },
            "total": _entry(t.total[c], t.total_uncertainty[c], t.sampled_total_uncertainty[c]),
            "data": _num(np.sum(ch["data"])),
            "bins": {
                "samples": {
                    s: [_num(v) for v in y]
                    for s, y in zip(ch["samples"], ch["yields"], strict=True)
                },
                "total": [_num(v) for v in ch["total"]],
                "total_uncertainty": [_num(v) for v in ch["total_uncertainty"]],
                "data": [_num(v) for v in ch["data"]],
            },
        }
    return out


def yield_table(model, data, postfit, res, n_samples=0, seed=0):
    from .. import analysis

    if postfit:
        return analysis.postfit_yields(model, data, res, n_samples=n_samples, seed=seed)
    return analysis.prefit_yields(model, data, n_samples=n_samples, seed=seed)


def make_folder(path):
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CliError(f"cannot create folder '{folder}': {err.strerror or err}") from None
    return folder


def cmd_yields(args) -> int:
    """``jaxlike yields``: yields per channel and sample with uncertainties (and plots)."""
    if args.samples < 0:
        raise CliError(f"--samples must not be negative, not {args.samples}")
    _, model, data = build(args)
    res = None
    if args.postfit:
        res = fit_or_warn(model, data)
        if res is None:
            return EXIT_NOT_CONVERGED
    t = yield_table(model, data, args.postfit, res, args.samples, args.seed)
    plots = []
    if args.output:
        folder = make_folder(args.output)
        from ._plot import signal_samples

        pars = res.bestfit if res is not None else model.config.suggested_init()
        plots = [
            str(p) for p in draw_yields(t, folder, args.format, signal=signal_samples(model, pars))
        ]
    out = _yields_json(t) | {"plots": plots}
    if args.json:
        text = dump(out)
    else:
        sampled = t.n_samples > 0
        rows = [[c, s, f"{v:.4g}", "" if s == "data" else f"{u:.3g}"] for c, s, v, u in t.rows()]
        if sampled:
            extra = []
            for c in range(len(t.channels)):
                keep = np.flatnonzero(t.present[c])
                extra += [f"{t.sampled_uncertainty[c, s]:.3g}" for s in keep]
                extra += [f"{t.sampled_total_uncertainty[c]:.3g}", ""]
            rows = [r + [e] for r, e in zip(rows, extra, strict=True)]
        heads = ["channel", "sample", "yield", "uncertainty"] + (["sampled"] if sampled else [])
        text = f"{t.kind.replace('fit', '-fit')} yields\n\n" + table(heads, rows, "<<>>>")
        text += "".join(f"\n{p}" for p in plots)
    emit(text, args.output_file)
    return 0
