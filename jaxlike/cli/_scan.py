"""``jaxlike scan``: parametric mass scans, patch scans (HEPData grids) and bundled examples.

Three forms, one HDF5 results file each (see :mod:`jaxlike.scan`)::

    jaxlike scan CONFIG.toml [-o scan.h5]                       # mass scan, see jaxlike.parametric
    jaxlike scan BKG.json --patchset FILE | --patches DIR ...   # one hypothesis per signal patch
    jaxlike scan --example alp [-o DIR]                         # DIR/scan.h5 and DIR/brazil.png
    jaxlike scan --example dark-higgs [--method bayes] [-o DIR] # an N-D counting grid
    jaxlike scan --example bka-lifetime [-o DIR]                # m_a × cτ grid, g_aW limits
    jaxlike scan GRID.json [--method cls --method bayes] [-o grid.h5]   # a grid of one's own
    jaxlike scan SEGMENTS.toml [-o scan.h5]                     # mass ranges stitched into one

Every input is validated before anything is compiled; an existing results file is refused
unless ``--resume`` (continue it; refused when it belongs to another configuration) or
``--overwrite`` is given. A summary goes to standard output (``--json``: a JSON document),
the progress bar to standard error. Exit codes: 0, 2 bad input (one error line), 3 some fit or
limit did not converge (the results are still written; a warning names the checks that
failed). Patch scans (:mod:`jaxlike.cli._scan_patches`) tell limits above the POI range (a
note, exit 0) from failed searches.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from ._io import (
    CliError,
    dump,
    positive_int,
    results_file,
    resumable_error,
)
from ._scan_summary import (
    common,
    convergence,
    limits,
    mass_checks,
    report,
    summary_text,
    toy_summary,
)

__all__ = [
    "add_parser",
    "cmd_scan",
    "os_error",
    "parse_bytes",
    "scan_warnings",
    "EXAMPLES",
    "EXIT_NOT_CONVERGED",
]

#: names accepted by ``--example`` (writers in :data:`jaxlike.examples.SCAN_EXAMPLES`)
EXAMPLES = ("alp", "alp-mgg", "bka", "zprime", "dark-higgs", "bka-lifetime")
#: exit code when a fit or a limit of some hypothesis did not converge
EXIT_NOT_CONVERGED = 3
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_DESCRIPTION = """\
  jaxlike scan CONFIG.toml|CONFIG.json [-o scan.h5]      parametric mass scan
  jaxlike scan SEGMENTS.toml [-o scan.h5]                segmented mass scan ([[segments]]:
                                                         name, config, variable m|m2)
  jaxlike scan BKG.json --patchset FILE | --patches DIR  one hypothesis per signal patch
  jaxlike scan --example alp|alp-mgg|bka|zprime [-o DIR] DIR/scan.h5, DIR/brazil.png
  jaxlike scan GRID.json [--method cls|bayes] [--lee-toys N] [-o grid.h5]
                                                         N-D counting grid (format:
                                                         jaxlike.scan.load_counting_grid)
  jaxlike scan --example dark-higgs|bka-lifetime [--method cls|bayes] [--lee-toys N] [-o DIR]
                                                         m × cτ counting grids: DIR/grid.h5,
                                                         limit, significance, coupling plots

An existing results file is refused unless --resume (continue it; refused when written by
another configuration) or --overwrite. Summary on stdout, progress on stderr."""


def parse_bytes(text: str) -> int:
    """A memory size such as ``2GB`` (10^9), ``512MiB`` (2^20) or ``1e9`` (bytes).

    >>> parse_bytes("2GB"), parse_bytes("1.5 KiB")
    (2000000000, 1536)
    """
    m = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([a-z]*)\s*", str(text), re.IGNORECASE)
    unit = m.group(2).upper() if m else None
    if unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (examples: 2GB, 512MiB)")
    try:
        value = int(float(m.group(1)) * _UNITS[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, not {text!r}")
    return value


def add_parser(subs) -> argparse.ArgumentParser:
    """Register ``jaxlike scan`` on the subcommand action ``subs``."""
    p = subs.add_parser(
        "scan",
        help="mass scan of a TOML/JSON config, or a patch scan of a HEPData signal grid",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 success, 2 bad input, 3 a fit or limit did not converge "
        "(results still written)",
    )
    p.add_argument(
        "config", nargs="?", metavar="CONFIG|WORKSPACE",
        help="scan config (.toml or .json), or the background-only workspace of a patch scan",
    )  # fmt: skip
    src = p.add_mutually_exclusive_group()
    src.add_argument("--patchset", metavar="FILE", help="pyhf/HEPData patchset (one per patch)")
    src.add_argument(
        "--patches", metavar="DIR",
        help="folder of JSON patch files, one hypothesis each (BkgOnly.json and other files "
        "that are no patch are skipped)",
    )  # fmt: skip
    src.add_argument("--example", choices=EXAMPLES, help="write and scan a bundled example")
    p.add_argument("--seed", type=int, help="seed of the --example pseudo-data")
    p.add_argument(
        "-o", "--output", metavar="PATH",
        help="results file (default scan.h5); with --example the folder (default jaxlike-NAME)",
    )  # fmt: skip
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue an existing results file")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing results file")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--chunk-size", type=positive_int, metavar="N", help="hypotheses per chunk")
    size.add_argument(
        "--memory-budget", type=parse_bytes, metavar="SIZE",
        help="device memory per chunk and device, e.g. 2GB (sets the chunk size)",
    )  # fmt: skip
    p.add_argument(
        "--cl", type=float, action="append", metavar="X",
        help="patch scans: confidence level of the limits (0.95); repeat for several",
    )  # fmt: skip
    p.add_argument("--test-poi", type=float, metavar="X", help="patch scans: POI of the CLs (1.0)")
    p.add_argument(
        "--poi-max",
        type=float,
        metavar="X",
        help="patch scans: search limits in [0, X] instead of [0, POI upper bound]",
    )
    p.add_argument(
        "--rule", choices=("cls", "clsb"),
        help="limit rule: CLs = 1 - CL or CLs+b (one-sided profile likelihood); default: a mass "
        "scan config's scan.rule, else cls",
    )  # fmt: skip
    p.add_argument(
        "--calctype", choices=("asymptotics", "toybased"), default="asymptotics",
        help="toybased: also toy limits (and toy p0) at every hypothesis",
    )  # fmt: skip
    p.add_argument("--ntoys", type=positive_int, metavar="N", help="toys per set and μ (1000)")
    p.add_argument("--toy-seed", type=int, metavar="S", help="seed of the toys (0)")
    p.add_argument(
        "--toy-points", type=positive_int, metavar="K",
        help="μ grid points of the toy limits, the first at 0 (6)",
    )  # fmt: skip
    p.add_argument(
        "--toy-pars", choices=("profiled", "init"),
        help="nuisance values the toys are generated at (profiled, the default, as pyhf; init)",
    )  # fmt: skip
    p.add_argument(
        "--method", choices=("cls", "bayes", "toys"), action="append",
        help="N-D counting grids (GRID.json, --example dark-higgs|bka-lifetime): asymptotic CLs "
        "limits (default), Bayesian credible limits and/or toy-based limits (toys: as "
        "--calctype toybased, with --ntoys); repeat for several",
    )  # fmt: skip
    p.add_argument(
        "--lee-toys", type=int, metavar="N",
        help="N-D counting grids: N background-only toys of the whole grid for the global "
        "p-value (0)",
    )  # fmt: skip
    p.add_argument(
        "--spurious", action="store_true",
        help="mass scans with an [envelope] section: also the spurious-signal table of its "
        "models (each model's background-only Asimov spectrum fitted by every model; per "
        "segment of a segmented scan)",
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def toy_args(args):
    """The toy options of ``--calctype toybased`` (None for asymptotic scans); toy flags
    without it are refused."""
    given = [f for f in ("ntoys", "toy_seed", "toy_points", "toy_pars") if getattr(args, f)
             is not None]  # fmt: skip
    if args.calctype != "toybased":
        if given:
            raise CliError(f"--{given[0].replace('_', '-')} needs --calctype toybased")
        return None
    if args.toy_seed is not None and args.toy_seed < 0:
        raise CliError(f"--toy-seed must be ≥ 0, not {args.toy_seed}")
    if args.toy_points is not None and args.toy_points < 3:
        raise CliError(f"--toy-points must be ≥ 3, not {args.toy_points}")
    return {
        "ntoys": args.ntoys or 1000,
        "seed": args.toy_seed or 0,
        "npoints": args.toy_points or 6,
        "toy_pars": args.toy_pars or "profiled",
    }


def cmd_scan(args) -> int:
    """``jaxlike scan``: run the scan, print the summary; bad input is one line and exit 2."""
    from ..exceptions import JaxlikeError
    from ._scan_segments import is_segmented, segmented_scan_command

    try:
        # a mass-scan config may state its rule (scan.rule): only the flag overrides it
        args.rule_flag, args.rule = args.rule, args.rule or "cls"
        if args.seed is not None and args.example is None:
            raise CliError("--seed applies to --example only")
        grid_only = [f for f in ("method", "lee_toys") if getattr(args, f) is not None]
        grid_file = args.config is not None and _is_counting_grid(Path(args.config))
        grid_example = args.example in ("dark-higgs", "bka-lifetime")
        if grid_only and not grid_example and not grid_file:
            flag = "--" + grid_only[0].replace("_", "-")
            raise CliError(f"{flag} applies to N-D counting grids (a GRID.json or "
                           "--example dark-higgs|bka-lifetime)")  # fmt: skip
        if grid_example:
            from ._scan_grid import grid_example_command, grid_summary_text

            if args.config is not None:
                raise CliError("--example takes no CONFIG argument")
            folder = Path(args.output or f"jaxlike-{args.example}")
            summary, code = grid_example_command(args, folder, args.example)
            print(dump(summary) if args.json else grid_summary_text(summary))
            if summary["not_converged"]:
                bad, where = summary["not_converged"], summary["output"]
                print(f"jaxlike scan: warning: {bad} grid points did not converge "
                      f"(see 'converged' in {where})", file=sys.stderr)  # fmt: skip
            return code
        if args.example is not None:
            summary, code = _example(args)
        elif args.config is None:
            raise CliError("give a CONFIG (or a WORKSPACE with --patchset/--patches) or --example")
        elif args.patchset is not None or args.patches is not None:
            from ._scan_patches import patch_scan_command

            summary, code = patch_scan_command(args)
        elif is_segmented(Path(args.config)):
            summary, code = segmented_scan_command(args, Path(args.config))
        elif _is_counting_grid(Path(args.config)):
            from ._scan_grid import grid_file_command, grid_summary_text

            summary, code = grid_file_command(args, Path(args.config))
            print(dump(summary) if args.json else grid_summary_text(summary))
            return code
        else:
            summary, code = _mass_scan(args, Path(args.config), args.output)
    except (CliError, JaxlikeError, KeyboardInterrupt) as err:
        return resumable_error("scan", err, "hypotheses")
    except OSError as err:  # disk full, no permission, ... while writing: one line, exit 2
        return resumable_error("scan", os_error(err), "hypotheses")
    print(dump(summary) if args.json else summary_text(summary))
    report(summary)
    return code


def _is_counting_grid(path: Path) -> bool:
    """Whether ``path`` is a counting-grid file (``{"counting_grid": ...}``, JSON or TOML): a
    cheap look at the file's start; the loader validates it."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8-sig", errors="replace")
    except OSError:
        return False
    return bool(re.match(r'\s*(\{\s*"counting_grid"|\[counting_grid)', head))


def os_error(err: OSError) -> CliError:
    """A one-line :class:`CliError` of an ``OSError`` (file name and reason)."""
    reason = err.strerror or " ".join(str(err).split()) or type(err).__name__
    return CliError(f"{err.filename}: {reason}" if err.filename else reason)


@contextlib.contextmanager
def one_line_warnings(command: str, category: type[Warning]):
    """Within the block, a warning of ``category`` is printed as one line ``jaxlike COMMAND:
    warning: ...`` on stderr, every time it occurs; other warnings are shown as usual."""
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, cat, filename, lineno, file=None, line=None):
            if issubclass(cat, category):
                text = " ".join(str(message).split())
                print(f"jaxlike {command}: warning: {text}", file=sys.stderr)
            else:
                shown(message, cat, filename, lineno, file, line)

        warnings.showwarning = show
        warnings.simplefilter("always", category)
        yield


def scan_warnings(command: str):
    """:func:`one_line_warnings` for :class:`~jaxlike.stream.ScanFileWarning` (damaged rows
    recomputed, an unverifiable file)."""
    from ..stream import ScanFileWarning

    return one_line_warnings(command, ScanFileWarning)


# -- inputs --------------------------------------------------------------------------------------


def _output(path, args) -> Path:
    """The results file, checked before any compile: writable folder, no clobbering."""
    return results_file(path or "scan.h5", args.resume, args.overwrite)


def _load_mass_config(path: Path):
    """(identity config, scan, masses, cl) of a scan config file; errors name the file."""
    from ..exceptions import InvalidScanConfig
    from ..parametric import build_mass_scan, load_config, scan_rule
    from ..scan import canonical_json

    if not path.exists():
        raise CliError(f"{path}: no such scan config file")
    if not path.is_file():
        raise CliError(f"{path}: the scan config is not a regular file")
    try:
        cfg = load_config(path)
        if "channels" in cfg:
            raise CliError(f"{path}: a workspace; scan its patches with --patchset or --patches")
        scan, masses, cl = build_mass_scan(cfg)
        rule = scan_rule(cfg)
        # the identity holds the rule the scan runs with (mass_scan_identity), not the config's
        ident = {k: v for k, v in cfg.items() if k != "_base"}
        ident["scan"] = {k: v for k, v in ident["scan"].items() if k != "rule"}
        canonical_json(ident)
    except InvalidScanConfig as err:
        field = err.path.lstrip(".")  # top-level sections come as ".background"
        raise CliError(f"{path}: {field}: {err.reason}" if field else f"{path}: {err}") from None
    except (ValueError, TypeError, KeyError, IndexError) as err:  # malformed values
        raise CliError(f"{path}: invalid scan config ({type(err).__name__}: {err})") from None
    return ident, scan, masses, cl, rule


def _resume_shortcut(out: Path, identity):
    """Before compiling a resume: the library's resume rule
    (:meth:`jaxlike.scan.ScanIdentity.check_resume`): a file of another config (naming the
    first differing field), model, hypotheses or format is refused; the results of a file
    that is complete and intact are returned (else None, and the resume computes the rest)."""
    return identity.check_resume(out, hint="use --overwrite or another -o")


def _execute(fn, n: int, shortcut, args, out: Path):
    """``(results, timing)`` of ``fn(store=out, ...)``, or of the ``shortcut`` results of a
    complete file. ``timing``: seconds in all and computing (after the compilation: from the
    start of the progress reporter), hypotheses computed and resumed (counted by it)."""
    from ..scan import Progress

    t0 = time.monotonic()
    if shortcut is not None:
        return shortcut, (time.monotonic() - t0, 0.0, 0, n)
    reporter = Progress(enabled=not args.no_progress)
    with scan_warnings("scan"):
        results = fn(
            store=str(out),
            resume=args.resume,
            overwrite=args.overwrite,
            chunk_size=_chunk_size(args, out),
            memory_budget_bytes=args.memory_budget,
            progress=reporter,
        )
    now = time.monotonic()
    return results, (now - t0, now - reporter.t0, reporter.computed, reporter.resumed)


def _chunk_size(args, out: Path):
    """``--chunk-size``; when resuming without it (and without ``--memory-budget``), the chunk
    size recorded in the file, which a resume must use
    (:func:`jaxlike.stream.resume_chunk_size`)."""
    from ..stream import resume_chunk_size

    return resume_chunk_size(out, args.chunk_size, args.memory_budget, resume=args.resume)


# -- mass scans ----------------------------------------------------------------------------------


def _mass_scan(args, config_path: Path, output):
    import jaxlike.scan as js

    from ..parametric import Envelope

    for flag in ("cl", "test_poi", "poi_max"):
        if getattr(args, flag) is not None:
            name = "--" + flag.replace("_", "-")
            raise CliError(f"{name} applies to patch scans (a mass scan reads scan.cl)")
    toys = toy_args(args)
    ident, scan, masses, cl, config_rule = _load_mass_config(config_path)
    rule = scan_rule_of(args, [config_rule])
    check_spurious(args, [scan])
    out = _output(output, args)
    identity = js.mass_scan_identity(
        scan, masses, cl=cl, config=ident, rule=rule, toys=toys
    )  # what it stores
    shortcut = _resume_shortcut(out, identity) if args.resume else None
    fn = functools.partial(js.mass_scan, scan, masses, cl=cl, config=ident, rule=rule, toys=toys)
    results, timing = _execute(fn, len(masses), shortcut, args, out)
    summary, code = mass_summary(
        common(out, "mass", masses, timing), results, masses, cl, rule, toys
    )
    if isinstance(scan, Envelope):
        summary["envelope"] = envelope_summary(scan, results)
    if args.spurious:
        summary["spurious"] = [spurious_summary(scan, masses, args)]
    return summary, code


def scan_rule_of(args, config_rules) -> str:
    """The limit rule of a mass scan: ``--rule`` if given, else the common ``scan.rule`` of its
    configs (:func:`jaxlike.parametric.scan_rule`; configs that disagree need the flag)."""
    if args.rule_flag is not None:
        return args.rule_flag
    rules = set(config_rules)
    if len(rules) > 1:
        raise CliError(f"the segments' scan.rule differ ({sorted(rules)}): give --rule")
    return rules.pop()


def check_spurious(args, scans) -> None:
    """Refuse ``--spurious`` (before any work) unless every scan is an envelope whose models
    share one window (the Asimov spectra of one shape are fitted by the others)."""
    from ..parametric import Envelope, background_envelope

    if not args.spurious:
        return
    for scan in scans:
        if not isinstance(scan, Envelope):
            raise CliError("--spurious needs an [envelope] section (the background models "
                           "whose spurious signal it tabulates)")  # fmt: skip
        background_envelope(scan.models, method="profile", names=scan.names)


def spurious_summary(env, masses, args, segment=None) -> dict:
    """The spurious-signal table of the envelope's models at ``masses``
    (:func:`jaxlike.parametric.spurious_signal`): one row per (truth, fit) pair with the largest
    and median |μ̂/σ| over the masses; ``segment``: the segment's name, if any."""
    from ..parametric import spurious_signal

    with scan_warnings("scan"):
        res = spurious_signal(env, masses, progress=not args.no_progress)
    out = {"models": list(res.names), "converged": bool(np.all(res.converged)),
           "table": res.table()}  # fmt: skip
    return out if segment is None else {"segment": segment} | out


def envelope_summary(env, results) -> dict:
    """The envelope's method, penalty, model names and how often each model gave Z and μ̂
    (``bkg_model``) and the observed limit (``bkg_model_limit``, first CL level)."""
    z = np.bincount(np.asarray(results["bkg_model"], int), minlength=len(env.names))
    lim = np.bincount(np.asarray(results["bkg_model_limit"], int)[:, 0], minlength=len(env.names))
    return {
        "method": env.method,
        "penalty": float(env.penalty),
        "models": list(env.names),
        "chosen_for_z": {n: int(c) for n, c in zip(env.names, z, strict=True)},
        "chosen_for_limit": {n: int(c) for n, c in zip(env.names, lim, strict=True)},
    }


def mass_summary(summary, results, masses, cl, rule, toys):
    """(summary, exit code) of mass-scan ``results``: ``summary`` (:func:`common`) plus the
    convergence (with the failed checks), the largest local significance, the strongest and
    weakest limits, the rule and the toy limits."""
    checks = mass_checks(results, masses, cl, toys is not None)
    ok = np.asarray([not c for c in checks], bool)
    summary.update(convergence(ok, masses, checks))
    z = np.asarray(results["significance"], float)
    if np.any(np.isfinite(z)):
        i = int(np.nanargmax(z))
        p0 = float(results["p0"][i])
        summary["max_significance"] = {"mass": float(masses[i]), "z": float(z[i]), "p0": p0}
    summary["limits"] = limits(results, masses, cl, "mass")
    summary["rule"] = rule
    if toys is not None:
        summary.update(toy_summary(results, masses, cl, "mass", toys))
    return summary, (EXIT_NOT_CONVERGED if not ok.all() else 0)


# -- bundled examples ----------------------------------------------------------------------------


def _example(args):
    """Write the example into the folder, scan it, and plot it there."""
    from ._plot import plot_scan

    if args.config is not None:
        raise CliError("--example takes no CONFIG argument")
    try:
        from ..examples import SCAN_EXAMPLES
    except ImportError:
        raise CliError("the bundled scan examples are not available in this jaxlike") from None
    if args.example not in SCAN_EXAMPLES:
        raise CliError(f"no bundled example {args.example!r}; known: {sorted(SCAN_EXAMPLES)}")
    folder = Path(args.output or f"jaxlike-{args.example}")
    if folder.exists() and not folder.is_dir():
        raise CliError(f"{folder} is not a folder (with --example, -o names the output folder)")
    out = folder / "scan.h5"
    if out.exists() and not (args.resume or args.overwrite):
        raise CliError(f"{out} already exists; pass --resume to continue it or --overwrite")
    config = _write_example(SCAN_EXAMPLES[args.example], args, folder, out)
    from ._scan_segments import is_segmented, segmented_scan_command

    if is_segmented(config):  # the published-procedure ALP example: a segmented scan file
        summary, code = segmented_scan_command(
            argparse.Namespace(**{**vars(args), "output": str(out)}), config
        )
    else:
        summary, code = _mass_scan(args, config, out)
    plots = plot_scan(out, folder / "brazil.png", significance=folder / "significance.png")
    summary = {"config": str(config), **summary, "plots": [str(p) for p in plots]}
    return summary, code


def _write_example(writer, args, folder: Path, out: Path) -> Path:
    """Write the example's files into ``folder`` and return its config path. They are written
    to a temporary folder inside it first; when resuming an existing ``out``, they are moved
    into place only once that file is known to belong to this example (config, model, e.g. the
    ``--seed`` of its spectrum), so a refused resume leaves the folder as it was."""
    import jaxlike.scan as js

    def cannot(err):
        return CliError(f"cannot write the example to {folder}: {err.strerror or err}")

    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".jaxlike-example-", dir=folder))
    except OSError as err:
        raise cannot(err) from None
    try:
        try:
            kwargs = {} if args.seed is None else {"seed": args.seed}
            written = Path(writer(tmp, **kwargs))
        except OSError as err:
            raise cannot(err) from None
        from ._scan_segments import is_segmented

        if args.resume and out.exists() and not is_segmented(written):  # segments check their own
            ident, scan, masses, cl, _ = _load_mass_config(written)
            _resume_shortcut(out, js.mass_scan_identity(scan, masses, cl=cl, config=ident))
        try:
            for f in sorted(tmp.iterdir()):
                os.replace(f, folder / f.name)
        except OSError as err:
            raise cannot(err) from None
        return folder / written.relative_to(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
