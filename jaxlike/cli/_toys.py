"""``jaxlike toys``: bias, pull and coverage studies of the POI with pseudo-experiments.

Two forms (see :func:`jaxlike.infer.toy_study` and :func:`jaxlike.scan.mass_toy_study`)::

    jaxlike toys WORKSPACE.json --mu X --ntoys N [-o toys.h5]   # one model
    jaxlike toys CONFIG.toml --mu X --ntoys N [-o study.h5]     # every mass of a scan config

A workspace study runs in memory and is written at once (a temporary file renamed into
place): ``/toys/<name>`` [N] (``mu_hat``, ``mu_err``, ``pull``, ``t_true``, ``converged``),
``/gen`` [P] and the attributes ``identity`` and ``summary`` (JSON). A mass-scan study is
streamed into a resumable scan file (:mod:`jaxlike.scan._study`). An existing file is
refused unless ``--resume`` (continue a scan study; a finished file of the same study is
reported without recomputing) or ``--overwrite``. The figure (the pull histogram, or bias,
pulls and coverage per mass) goes to ``--plot`` (default: the results file with ``.png``).
Exit codes: 0, 2 bad input (one line, nothing written), 3 some toy or generating fit failed
(results still written).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ._format import table
from ._io import (
    CliError,
    cl_level,
    dump,
    finite_float,
    load_patches,
    load_workspace,
    nonneg_int,
    positive_int,
    read_json,
    results_file,
    resumable_error,
)
from ._scan import EXIT_NOT_CONVERGED, _load_mass_config, os_error, scan_warnings

__all__ = ["add_parser", "cmd_toys"]

_WORST = 5  # masses listed in the summary of a scan study
_DESCRIPTION = """\
  jaxlike toys WORKSPACE.json --mu X --ntoys N [-o toys.h5]    one pyhf workspace
  jaxlike toys CONFIG.toml|CONFIG.json --mu X --ntoys N [-o study.h5]   every mass of a scan

Per toy: the free fit (POI allowed below 0 unless --bounded) gives mu_hat and its Hessian
error, pull = (mu_hat - mu)/error, and t = 2NLL(mu) - 2NLL(mu_hat) from a fit at the true mu.
Summary: bias, pull mean and width, Hesse and profile-likelihood coverage at --cl, with their
Monte-Carlo errors. An existing results file is refused unless --resume or --overwrite."""


def add_parser(subs) -> argparse.ArgumentParser:
    """Register ``jaxlike toys`` on the subcommand action ``subs``."""
    p = subs.add_parser(
        "toys",
        help="bias, pull and coverage study of the POI with pseudo-experiments",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 success, 2 bad input, 3 some toy fits failed (results written)",
    )
    p.add_argument("input", metavar="WORKSPACE|CONFIG", help="pyhf workspace or scan config")
    p.add_argument("--mu", type=finite_float, required=True, metavar="X", help="true POI value")
    p.add_argument("--ntoys", type=positive_int, required=True, metavar="N", help="toys (per mass)")
    p.add_argument("--seed", type=nonneg_int, default=0, metavar="S", help="toy seed (0)")
    p.add_argument("--toy-pars", choices=["profiled", "init"], default="profiled",
                   help="generating nuisance parameters: fit to the data at --mu (profiled, "
                   "default) or the initial values (init)")  # fmt: skip
    p.add_argument("--cl", type=cl_level, default=0.6827, help="coverage level (0.6827)")
    p.add_argument(
        "--bounded",
        action="store_true",
        help="keep the POI's lower bound (default: allow it down to -upper bound)",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="results file (default toys.h5 for a workspace, study.h5 for a config)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue an existing results file")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing results file")
    plot = p.add_mutually_exclusive_group()
    plot.add_argument("--plot", metavar="PATH", help="figure (default: results file with .png)")
    plot.add_argument("--no-plot", action="store_true", help="write no figure")
    p.add_argument("--chunk-size", type=positive_int, metavar="N",
                   help="toys per vmapped call (workspace) or rows per chunk (config)")  # fmt: skip
    p.add_argument("-p", "--patch", action="append", metavar="PATCH",
                   help="workspace: pyhf patch file or PATCHSET.json:NAME; repeatable")  # fmt: skip
    p.add_argument("--measurement", metavar="NAME", help="workspace: measurement (default: first)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def cmd_toys(args) -> int:
    """``jaxlike toys``: run the study, write results and figure, print the summary."""
    from ..exceptions import JaxlikeError

    try:
        source = Path(args.input)
        if not source.is_file():
            raise CliError(f"{source}: no such file")
        if _is_workspace(source):
            summary = _workspace_study(args, source)
        else:
            if args.patch or args.measurement:
                raise CliError("--patch and --measurement apply to workspaces, not scan configs")
            summary = _scan_study(args, source)
    except (CliError, JaxlikeError, KeyboardInterrupt) as err:
        return resumable_error("toys", err, "toy rows")
    except OSError as err:
        return resumable_error("toys", os_error(err), "toy rows")
    print(dump(summary) if args.json else _text(summary))
    failed = summary["failed_toys"] + summary["failed_generating_fits"]
    if failed:
        print(
            f"jaxlike toys: warning: {summary['failed_toys']} toys and "
            f"{summary['failed_generating_fits']} generating fits did not converge (left out of "
            f"the summaries; results written to {summary['output']})",
            file=sys.stderr,
        )
        return EXIT_NOT_CONVERGED
    return 0


def _is_workspace(path: Path) -> bool:
    """A JSON file holding a pyhf workspace (``channels``), rather than a scan config."""
    if path.suffix.lower() != ".json":
        return False
    spec = read_json(str(path), "workspace or scan config")
    return isinstance(spec, dict) and "channels" in spec


def _plot_path(args, out: Path) -> Path | None:
    if args.no_plot:
        return None
    plot = Path(args.plot) if args.plot else out.with_suffix(".png")
    if not plot.parent.is_dir():
        raise CliError(f"{plot}: folder {plot.parent} does not exist")
    if plot.suffix.lower() not in (".png", ".pdf"):
        raise CliError(f"{plot}: the figure must be a .png or .pdf file")
    return plot


def _summary(result, out, plot, seconds) -> dict:
    s = result.summary()
    s.pop("n_failed")
    return {
        "output": str(out),
        "plot": str(plot) if plot else None,
        "seconds": round(seconds, 3),
        **s,
        "signed": bool(result.signed),
        "failed_toys": int(np.sum(np.asarray(result.n_failed))),
        "failed_generating_fits": int(np.sum(~np.asarray(result.gen_converged))),
    }


# -- one workspace -------------------------------------------------------------------------------


def _workspace_study(args, source: Path) -> dict:
    from .. import infer, plotting
    from ..stream import tree_digest

    ws = load_workspace(str(source))
    model = ws.model(
        measurement_name=args.measurement, patches=load_patches(args.patch, ws) or None
    )
    data = ws.data(model)
    if model.config.poi_index is None:
        raise CliError(f"{source}: the measurement has no parameter of interest")
    out = results_file(args.output or "toys.h5", args.resume, args.overwrite)
    plot = _plot_path(args, out)
    identity = {
        "kind": "toy_study_workspace",
        "model_digest": tree_digest(model),
        "data_digest": tree_digest(jnp_array(data)),
        "mu_true": float(args.mu),
        "ntoys": int(args.ntoys),
        "seed": int(args.seed),
        "toy_pars": args.toy_pars,
        "signed": not args.bounded,
    }
    t0 = time.monotonic()
    result = _read_finished(out, identity, args.cl) if args.resume and out.exists() else None
    if result is None:
        result = infer.toy_study(
            model, data, mu_true=args.mu, ntoys=args.ntoys, seed=args.seed,
            toy_pars=args.toy_pars, cl=args.cl, signed=not args.bounded,
            chunk=args.chunk_size or 4096, progress=not args.no_progress,
        )  # fmt: skip
        _write_h5(out, result, identity)
    if plot is not None:
        plotting.plot_toy_pulls(result, plot)
    summary = _summary(result, out, plot, time.monotonic() - t0)
    summary["kind"] = "workspace"
    return summary


def jnp_array(x):
    """``x`` as a JAX array (for :func:`jaxlike.stream.tree_digest`)."""
    import jax.numpy as jnp

    return jnp.asarray(x, float)


_TOY_FIELDS = ("mu_hat", "mu_err", "pull", "t_true", "converged")


def _write_h5(out: Path, result, identity: dict) -> None:
    """The per-toy arrays, the generating point and the identity and summary, atomically."""
    import h5py

    from .._strict import atomic_write

    def write(tmp: Path):
        with h5py.File(tmp, "w") as f:
            g = f.create_group("toys")
            for name in _TOY_FIELDS:
                g.create_dataset(name, data=np.asarray(getattr(result, name)))
            f.create_dataset("gen", data=np.asarray(result.gen))
            f.attrs["identity"] = json.dumps(identity, sort_keys=True)
            f.attrs["summary"] = dump(result.summary(), sort_keys=True)
            f.attrs["gen_converged"] = bool(result.gen_converged)

    atomic_write(out, write)


def _read_finished(out: Path, identity: dict, cl: float):
    """The study stored in ``out`` when it is the same study (``--resume`` of a finished
    workspace study); refuses a file of another study or kind, naming the first difference."""
    import h5py

    from .. import infer

    try:
        with h5py.File(out, "r") as f:
            stored = json.loads(f.attrs["identity"])
            toys = {k: np.asarray(f["toys"][k]) for k in _TOY_FIELDS}
            gen, gen_ok = np.asarray(f["gen"]), bool(f.attrs["gen_converged"])
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise CliError(f"cannot resume {out}: not a workspace toy study file ({err})") from None
    diff = [k for k in sorted(set(stored) | set(identity)) if stored.get(k) != identity.get(k)]
    if diff:
        k = diff[0]
        raise CliError(
            f"cannot resume {out}: it was written by another study, {k} (file "
            f"{stored.get(k)!r}, now {identity.get(k)!r}); use --overwrite or another -o"
        )
    s = infer.toy_study_summary(
        toys["mu_hat"], toys["mu_err"], toys["t_true"], toys["converged"], identity["mu_true"], cl
    )
    return infer.make_study_result(
        toys, s, identity["mu_true"], gen, gen_ok, ntoys=identity["ntoys"],
        seed=identity["seed"], toy_pars=identity["toy_pars"], cl=float(cl),
        signed=identity["signed"],
    )  # fmt: skip


# -- every mass of a scan config -----------------------------------------------------------------


def _scan_study(args, source: Path) -> dict:
    from .. import plotting
    from .. import scan as js
    from ..stream import Progress, resume_chunk_size

    ident, scan, masses, _, _ = _load_mass_config(source)
    out = results_file(args.output or "study.h5", args.resume, args.overwrite)
    plot = _plot_path(args, out)
    settings = {"mu_true": args.mu, "ntoys": args.ntoys, "seed": args.seed,
                "toy_pars": args.toy_pars, "signed": not args.bounded}  # fmt: skip
    identity = js.mass_toy_study_identity(scan, masses, config=ident, **settings)
    t0 = time.monotonic()
    done = identity.check_resume(out, hint="use --overwrite or another -o") if args.resume else None
    computed = 0
    if done is not None:
        result = js.study_from_rows(done, identity.hypotheses, identity.config, cl=args.cl)
    else:
        reporter = Progress(enabled=not args.no_progress, label="toys")
        chunk = resume_chunk_size(out, args.chunk_size, None, resume=args.resume)
        with scan_warnings("toys"):
            result = js.mass_toy_study(
                scan, masses, cl=args.cl, store=str(out), resume=args.resume,
                overwrite=args.overwrite, chunk_size=chunk, progress=reporter, config=ident,
                **settings,
            )  # fmt: skip
        computed = reporter.computed
    if plot is not None:
        plotting.plot_study_scan(result, result.masses, plot)
    summary = _summary(result, out, plot, time.monotonic() - t0)
    summary["kind"] = "mass"
    summary["masses"] = int(len(masses))
    summary["rows_computed"] = int(computed)
    rate = result.rate
    summary["toys_per_second"] = float(rate) if np.isfinite(rate) else None
    for k in ("mu_true", "bias", "bias_err", "relative_bias", "relative_bias_err", "pull_mean",
              "pull_mean_err", "pull_width", "pull_width_err", "coverage_hesse",
              "coverage_hesse_err", "coverage_profile", "coverage_profile_err"):  # fmt: skip
        summary.pop(k, None)
    summary["mu_true"] = float(args.mu)
    summary["average"] = _averages(result)
    summary["worst"] = _worst(result, args.cl)
    return summary


def _averages(r) -> dict:
    """Means over the masses of the per-mass summaries."""
    out = {}
    for k in ("bias", "relative_bias", "pull_mean", "pull_width", "coverage_hesse",
              "coverage_profile"):  # fmt: skip
        v = np.asarray(getattr(r, k), float)
        out[k] = float(np.nanmean(v)) if np.any(np.isfinite(v)) else None
    return out


def _worst(r, cl) -> list[dict]:
    """The masses that deviate most from an unbiased, well-covering estimator, by the
    largest deviation in units of its MC error of: bias/σ_b, pull mean/σ, (width − 1)/σ_w,
    (coverage − CL)/σ_c (profile and Hesse)."""
    g = {k: np.asarray(getattr(r, k), float) for k in (
        "bias", "bias_err", "pull_mean", "pull_mean_err", "pull_width", "pull_width_err",
        "coverage_hesse", "coverage_hesse_err", "coverage_profile", "coverage_profile_err",
        "relative_bias", "relative_bias_err", "masses",
    )}  # fmt: skip
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.stack([
            np.abs(g["bias"]) / g["bias_err"],
            np.abs(g["pull_mean"]) / g["pull_mean_err"],
            np.abs(g["pull_width"] - 1.0) / g["pull_width_err"],
            np.abs(g["coverage_hesse"] - cl) / np.maximum(g["coverage_hesse_err"], 1e-12),
            np.abs(g["coverage_profile"] - cl) / np.maximum(g["coverage_profile_err"], 1e-12),
        ])  # fmt: skip
    score = np.nanmax(np.where(np.isfinite(z), z, np.nan), axis=0, initial=-np.inf)
    score = np.where(np.isfinite(score), score, -np.inf)
    order = np.argsort(-score, kind="stable")[:_WORST]
    keys = ("bias", "bias_err", "relative_bias", "relative_bias_err", "pull_mean",
            "pull_width", "coverage_hesse", "coverage_profile")  # fmt: skip
    return [
        {
            "mass": float(g["masses"][i]),
            "deviation_sigma": float(score[i]),
            **{k: float(g[k][i]) for k in keys},
        }  # fmt: skip
        for i in order
        if np.isfinite(score[i])
    ]


# -- text ----------------------------------------------------------------------------------------


def _pm(s: dict, k: str, scale: float = 1.0, unit: str = "") -> str:
    v, e = s.get(k), s.get(f"{k}_err")
    if v is None or not np.isfinite(v):
        return "n/a"
    e_text = f" ± {scale * e:.2g}" if e is not None and np.isfinite(e) else ""
    return f"{scale * v:.4g}{e_text}{unit}"


def _text(s: dict) -> str:
    """The summary as a two-column table."""
    rows = [["results", s["output"]]]
    if s.get("plot"):
        rows.append(["plot", s["plot"]])
    what = f"{s['ntoys']} at mu = {s['mu_true']:g} (seed {s['seed']}, {s['toy_pars']})"
    if s["kind"] == "mass":
        what = f"{s['masses']} masses x {what}"
    rows.append(["toys", what + f", {s['failed_toys']} failed"])
    rate = s.get("toys_per_second")
    rows.append(["time", f"{s['seconds']:.1f} s" + (f" ({rate:.3g} toys/s)" if rate else "")])
    if s["kind"] == "workspace":
        rel = _pm(s, "relative_bias", 100.0, "%")
        rows.append(["bias", _pm(s, "bias") + (f" ({rel})" if rel != "n/a" else "")])
        rows.append(["pull", f"mean {_pm(s, 'pull_mean')}, width {_pm(s, 'pull_width')}"])
        cov = f"Hesse {_pm(s, 'coverage_hesse')}, profile {_pm(s, 'coverage_profile')}"
        rows.append(["coverage", f"{cov} (nominal {s['cl']:g})"])
        return table(["toy study", "summary"], rows, "<<")
    a = s["average"]

    def f(v, fmt=".4g"):
        return "n/a" if v is None else format(v, fmt)

    rel = "n/a" if a["relative_bias"] is None else f"{100 * a['relative_bias']:.3g}%"
    rows.append(["mean bias", f"{f(a['bias'])} ({rel})"])
    rows.append(["mean pull", f"mean {f(a['pull_mean'])}, width {f(a['pull_width'])}"])
    cov = f"Hesse {f(a['coverage_hesse'])}, profile {f(a['coverage_profile'])}"
    rows.append(["mean coverage", f"{cov} (nominal {s['cl']:g})"])
    for w in s["worst"]:
        rows.append([
            f"mass {w['mass']:.6g}",
            f"{w['deviation_sigma']:.2f} sigma off: bias {100 * w['relative_bias']:.3g} ± "
            f"{100 * w['relative_bias_err']:.2g}%, "
            f"pull mean {w['pull_mean']:.3g}, width {w['pull_width']:.3g}, coverage Hesse "
            f"{w['coverage_hesse']:.3g}, profile {w['coverage_profile']:.3g}",
        ])  # fmt: skip
    return table(["toy study", "summary"], rows, "<<")
