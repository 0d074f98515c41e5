"""The computing subcommands: ``cls``, ``fit``, ``limit`` and ``example``.

Each ``cmd_*`` function takes the parsed arguments and returns the process exit code; bad
input propagates as :class:`~jaxlike.cli._io.CliError` or a ``JaxlikeError``, which
:func:`jaxlike.cli.main` turns into one error line.
"""

from __future__ import annotations

import sys

import numpy as np

from ._format import band, table
from ._io import CliError, build, dump, emit, floats, scalar, warn

__all__ = ["cmd_cls", "cmd_fit", "cmd_limit", "cmd_example", "EXIT_NOT_CONVERGED"]

#: Exit code of ``fit`` (and ``example``) when the maximum-likelihood fit did not converge.
EXIT_NOT_CONVERGED = 3


def _converged(result) -> bool:
    return bool(np.all(np.asarray(result.converged)))


def _finite(*values) -> bool:
    flat = [np.ravel(np.asarray(v, float)) for v in values]
    return bool(np.all(np.isfinite(np.concatenate(flat))))


def cmd_cls(args) -> int:
    """``jaxlike cls``: observed and expected CLs at ``--test-poi``, printed like ``pyhf cls``.

    A result whose fits did not all converge, or with a non-finite CLs, adds
    ``"converged": false`` and a ``"status"`` line to the document (non-finite values are
    ``null``) and exits 3."""
    import jaxlike

    toys = _toy_options(args)
    if args.plot is not None and args.calctype != "toybased":
        raise CliError("--plot draws the toy distributions: it needs --calctype toybased")
    _, model, data = build(args)
    if args.calctype == "exact":
        clsb, clb, cls = jaxlike.hypotest(
            args.test_poi, data, model, test_stat=args.test_stat, calctype="exact"
        )
        out = {"CLs_obs": scalar(cls), "CLsb_obs": scalar(clsb), "CLb_obs": scalar(clb),
               "calctype": "exact"}  # fmt: skip
        emit(dump(out, sort_keys=True), args.output_file)
        return 0
    result = jaxlike.hypotest(args.test_poi, data, model, test_stat=args.test_stat,
                              calctype=args.calctype, **toys)  # fmt: skip
    out = {"CLs_exp": floats(result.cls_exp), "CLs_obs": scalar(result.cls_obs)}
    if toys:
        out |= {
            "calctype": "toybased", "ntoys": result.ntoys, "seed": result.seed,
            "toy_pars": result.toy_pars, "CLs_obs_err": scalar(result.cls_obs_err),
            "CLsb_obs": scalar(result.clsb_obs), "CLb_obs": scalar(result.clb_obs),
            "CLs_exp_err": floats(result.cls_exp_err), "failed_toys": int(result.n_failed),
        }  # fmt: skip
        if args.plot is not None:
            from ..plotting import plot_test_statistic

            out["plot"] = str(plot_test_statistic(result, args.plot))
    ok = _converged(result) and _finite(result.cls_obs, result.cls_exp)
    if not ok:
        status = _hypotest_status(result)
        out.update(converged=False, status=status)
    emit(dump(out, sort_keys=True), args.output_file)
    if not ok:
        warn(f"the hypothesis test at {args.test_poi:g} is unreliable: {status}")
        return EXIT_NOT_CONVERGED
    return 0


_FIT_NAMES = ("free fit", "conditional fit", "Asimov construction fit", "free Asimov fit",
              "conditional Asimov fit")  # fmt: skip


def _toy_options(args) -> dict:
    """``hypotest``/``upper_limit`` keyword arguments of the toy flags; toy flags without
    ``--calctype toybased`` are refused."""
    given = [f for f in ("ntoys", "seed", "toy_pars") if getattr(args, f, None) is not None]
    if getattr(args, "poi_grid", None) is not None:
        given.append("poi_grid")
    if args.calctype != "toybased":
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise CliError(f"{flag} needs --calctype toybased")
        return {}
    out = {"ntoys": args.ntoys or 2000, "seed": args.seed or 0,
           "toy_pars": args.toy_pars or "profiled"}  # fmt: skip
    if getattr(args, "poi_grid", None) is not None:
        out["poi_grid"] = _grid_values(args.poi_grid)
    return out


def _grid_values(text: str):
    """``LO:HI:N`` → N evenly spaced values (N ≥ 2, LO < HI)."""
    parts = text.split(":")
    try:
        lo, hi, n = float(parts[0]), float(parts[1]), int(parts[2])
        if len(parts) != 3 or not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError
    except (ValueError, IndexError):
        raise CliError(f"--poi-grid must be LO:HI:N, not {text!r}") from None
    if n < 2 or not lo < hi:
        raise CliError(f"--poi-grid needs LO < HI and N ≥ 2, not {text!r}")
    return np.linspace(lo, hi, n)


def _hypotest_status(result) -> str:
    """Which fits of a hypothesis test failed (or why its CLs is not finite)."""
    flags = np.asarray(getattr(result, "fit_converged", []), dtype=bool).reshape(-1)
    bad = [_FIT_NAMES[i] if i < len(_FIT_NAMES) else f"fit {i}" for i in np.flatnonzero(~flags)]
    if bad:
        return "did not converge: " + ", ".join(bad)
    return "the CLs is not finite"


def fit_summary(model, result) -> dict:
    """The ``fit --json`` document: best fit and uncertainty per parameter, 2NLL, converged."""
    names = model.config.par_names
    return {
        "bestfit": dict(zip(names, floats(result.bestfit), strict=True)),
        "uncertainties": dict(zip(names, floats(result.uncertainties), strict=True)),
        "twice_nll": scalar(result.twice_nll),
        "converged": _converged(result),
        "status": result.message(),
        "edm": scalar(result.edm),
        "degenerate": [n for n, d in zip(names, np.asarray(result.degenerate), strict=True) if d],
        "held_at_kink": [n for n, h in zip(names, np.asarray(result.held), strict=True) if h],
        "at_bound": [n for n, b in zip(names, np.asarray(result.at_bound), strict=True) if b],
        "local_minima": int(scalar(result.n_local_minima)),
    }


def _convergence_text(result, names=None) -> str:
    text = "yes" if _converged(result) else f"NO: {result.message(names)}"
    details = []
    if getattr(result, "iterations", None) is not None:
        details.append(f"{int(scalar(result.iterations))} iterations")
    if getattr(result, "edm", None) is not None:
        details.append(f"edm {scalar(result.edm):.2g}")
    return f"{text} ({', '.join(details)})" if details else text


def fit_table(model, result) -> str:
    """Parameter table (name, value, uncertainty) followed by 2NLL and convergence."""
    summary = fit_summary(model, result)
    fixed = np.asarray(model.config.suggested_fixed(), dtype=bool)
    rows = []
    for (name, value), unc, is_fixed in zip(
        summary["bestfit"].items(), summary["uncertainties"].values(), fixed, strict=True
    ):
        text = "fixed" if is_fixed else "nan" if unc is None else f"{unc:.6f}"
        if name in summary["at_bound"] and unc == 0.0:
            text = "0 (at bound)"
        rows.append([name, f"{value:.6f}", text])
    lines = [table(["parameter", "value", "uncertainty"], rows, "<>>"), ""]
    lines.append(f"2NLL       {summary['twice_nll']:.6f}")
    lines.append(f"converged  {_convergence_text(result, model.config.par_names)}")
    return "\n".join(lines)


def cmd_fit(args) -> int:
    """``jaxlike fit``: maximum-likelihood fit; exit code 3 if the fit did not converge.

    A background-only workspace (no modifier carries the POI) gets a background-only fit of
    its parameters, said on standard error and in the table."""
    import jaxlike

    ws, model, data = build(args, allow_no_poi=True)
    result = jaxlike.fit(model, data)
    text = dump(fit_summary(model, result)) if args.json else fit_table(model, result)
    if model.config.poi_name is None:
        poi = ws.get_measurement(args.measurement)["config"]["poi"]
        note = f"POI {poi} absent (no modifier in this workspace): background-only fit"
        print(f"jaxlike: note: {note}", file=sys.stderr)
        if not args.json:
            text += f"\nPOI        {poi} absent: background-only fit (add a signal with -p PATCH)"
    emit(text, args.output_file)
    if not _converged(result):
        warn(
            f"the maximum-likelihood fit did not converge "
            f"({result.message(model.config.par_names)}); the results above are unreliable"
        )
        return EXIT_NOT_CONVERGED
    if int(result.n_local_minima) > 1:
        warn(
            "the likelihood has a second local minimum (a concave interpolation kink); "
            "the lower one is reported"
        )
    return 0


def limit_table(result, cl: float, poi_name: str, above=None, mu_max=None) -> str:
    """Observed and expected upper limits, one row each; a lane flagged in ``above`` (bool [6]:
    observed, expected ascending) reads ``> mu_max``."""
    obs, exp = scalar(result.obs), floats(result.exp)
    labels = ["expected -2σ", "expected -1σ", "expected median", "expected +1σ", "expected +2σ"]
    err = getattr(result, "obs_err", None)  # toy-based: the MC error of the observed limit
    text = f"{obs:.6g}" if err is None else f"{obs:.6g} ± {scalar(err):.2g}"
    rows = [["observed", text]] + [[lab, f"{v:.6g}"] for lab, v in zip(labels, exp, strict=True)]
    for k, high in enumerate(above if above is not None else []):
        if high:
            rows[k][1] = f"> {mu_max:g} (above the range)"
    return table([f"{100 * cl:g}% CL upper limit", poi_name], rows, "<>")


def _poi_range(args, model, toys):
    """``(poi_range for upper_limit or None, top of the search range)`` of ``--poi-max``."""
    from ._limit_range import limit_range

    if args.poi_max is None:
        return None, limit_range(model, None)
    if toys:
        raise CliError("--poi-max sets the asymptotic search range; toybased: use --poi-grid")
    lo = float(np.asarray(model.config.suggested_bounds())[model.config.poi_index, 0])
    if not args.poi_max > max(lo, 0.0):
        raise CliError(f"--poi-max must be above the POI's lower bound, not {args.poi_max:g}")
    return (max(lo, 0.0), args.poi_max), args.poi_max


def _limit_status(args, model, data, result, mu_max):
    """``(status, above [6] or None)`` of a limit search that did not converge: the lanes
    above the search range (with the --poi-max that would bracket them), or the failed checks."""
    from ._limit_range import LANES, check_limits, rerun_hint

    curve = "CLs+b" if args.rule == "clsb" else "CLs"
    if args.calctype == "toybased":
        return f"no {curve} crossing found within the μ grid; widen it with --poi-grid", None
    obs, exp = np.reshape(result.obs, 1), np.reshape(result.exp, (1, 5))
    check = check_limits(
        model, data, obs, exp, [False], [args.cl], mu_max, rule=args.rule, test_stat=args.test_stat
    )
    if check.failed:
        return "the upper-limit search did not converge: " + "; ".join(check.failed), None
    above = check.above[0]
    high = np.flatnonzero(above)
    lanes = ", ".join(LANES[k] for k in high) + (" limits" if len(high) > 1 else " limit")
    values = ", ".join(f"{check.cl_at_max[k]:.3g}" for k in high)
    status = (
        f"limit > poi_max = {mu_max:g} for the {lanes} ({curve}({mu_max:g}) = {values} "
        f"> {1 - args.cl:g}); {rerun_hint(check.suggestion, mu_max)}"
    )
    return status, above


def cmd_limit(args) -> int:
    """``jaxlike limit``: observed and expected upper limits on the POI at ``--cl``.

    Limits are searched in [0, POI upper bound] (``--poi-max X``: [0, X]). When a search does
    not converge, the command tells a limit above that range (the CLs still above α at its
    top; a ``--poi-max`` that would bracket it is suggested) from a failed fit, and exits 3
    either way: the result misses a number."""
    import jaxlike

    if not 0.0 < args.cl < 1.0:
        raise CliError(f"--cl must lie between 0 and 1, not {args.cl:g}")
    toys = _toy_options(args)
    _, model, data = build(args)
    poi_range, mu_max = _poi_range(args, model, toys)
    extra = {} if poi_range is None else {"poi_range": poi_range}
    result = jaxlike.upper_limit(data, model, cl=args.cl, test_stat=args.test_stat,
                                 rule=args.rule, calctype=args.calctype,
                                 **extra, **toys)  # fmt: skip
    ok = _converged(result) and _finite(result.obs, result.exp)
    status, above = ("ok", None) if ok else _limit_status(args, model, data, result, mu_max)
    if args.json:
        doc = {"obs": scalar(result.obs), "exp": floats(result.exp), "cl": args.cl,
               "rule": args.rule, "calctype": args.calctype,
               "converged": ok, "status": status}  # fmt: skip
        if above is not None:
            doc["above_range"] = {"poi_max": mu_max, "lanes": [bool(a) for a in above]}
        if toys:
            doc |= {"obs_err": scalar(result.obs_err), "ntoys": result.ntoys,
                    "seed": result.seed, "poi_grid": floats(result.poi_grid)}  # fmt: skip
        text = dump(doc)
    else:
        text = limit_table(result, args.cl, model.config.poi_name, above, mu_max)
    emit(text, args.output_file)
    if not ok:
        warn(status if above is not None else f"{status}; the limits above are unreliable")
        return EXIT_NOT_CONVERGED
    return 0


def cmd_example(args) -> int:
    """``jaxlike example``: fit, CLs at mu = 1 and the 95 % CL limit of the bundled example."""
    import jaxlike

    from ..examples import make_example_workspace, write_example_workspace

    if args.output is not None:
        try:
            spec = write_example_workspace(args.output, seed=args.seed)
        except OSError as err:
            raise CliError(f"cannot write '{args.output}': {err.strerror or err}") from None
    else:
        spec = make_example_workspace(args.seed)
    ws = jaxlike.Workspace(spec)
    model = ws.model()
    data = ws.data(model)
    fit = jaxlike.fit(model, data)
    test = jaxlike.hypotest(1.0, data, model, test_stat="qtilde")
    limit = jaxlike.upper_limit(data, model, cl=0.95, test_stat="qtilde")

    poi = model.config.poi_index
    nbins = sum(model.config.channel_nbins.values())
    rows = [
        ["workspace", f"synthetic search, seed {args.seed}"],
        [
            "model",
            f"{len(model.config.channels)} channels, {nbins} bins, {model.config.npars} parameters",
        ],
        ["best-fit mu", f"{scalar(fit.bestfit[poi]):.4f} ± {scalar(fit.uncertainties[poi]):.4f}"],
        ["2NLL", f"{scalar(fit.twice_nll):.4f}"],
        ["fit converged", _convergence_text(fit, model.config.par_names)],
        ["CLs_obs (mu=1)", f"{scalar(test.cls_obs):.4g}"],
        ["CLs_exp (mu=1)", band(floats(test.cls_exp))],
        ["95% CL limit obs", f"{scalar(limit.obs):.4f}"],
        ["95% CL limit exp", band(floats(limit.exp), ".4f")],
    ]
    if args.output is not None:
        rows.insert(1, ["written to", args.output])
    print(table(["quantity", "value"], rows, "<<"))
    for what, result in (("CLs", test), ("upper-limit", limit)):
        if not _converged(result):
            warn(f"a fit inside the {what} computation did not converge")
    if not _converged(fit):
        warn("the maximum-likelihood fit did not converge; the results above are unreliable")
        return EXIT_NOT_CONVERGED
    return 0
