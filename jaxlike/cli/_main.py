"""Argument parsing and error handling of the ``jaxlike`` command.

Exit codes: 0 success, 2 bad input (unreadable file, invalid JSON, invalid workspace or
patch, usage error; one ``jaxlike: error: ...`` line on standard error, no traceback),
3 the maximum-likelihood fit of ``fit``/``example``/``ranking``/``gof``/``yields``/``plot
WORKSPACE`` (a fit or limit of ``scan``, a fit of ``cls``/``limit``, a toy fit of ``toys``) did
not converge or gave a non-finite result (results still printed or written, non-finite numbers
as JSON ``null`` with a ``status``; a warning line names the check that failed), 70 an internal
error (a bug: one line, the traceback with ``JAXLIKE_DEBUG=1``). A limit above the search range
is no convergence failure: ``scan`` reports it in a note and exits 0 if every fit converged;
``limit``, whose result then misses a number, exits 3 saying so and which ``--poi-max`` to use.

Conventions: a verb that writes a file takes ``-o/--output`` (older spellings such as
``--output-file`` stay as hidden aliases); ``-p/--patch`` takes a pyhf patch file or
``PATCHSET.json:NAME``; a background-only workspace (no modifier carries the POI) is accepted
by ``inspect`` and ``fit``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import _analysis, _grid, _jobs, _plot, _posterior, _scan, _toys
from ._io import CliError, add_output, cl_level, finite_float, nonneg_int, positive_int

__all__ = ["main", "build_parser", "EXIT_BAD_INPUT", "EXIT_INTERNAL"]

#: Exit code for every kind of bad input.
EXIT_BAD_INPUT = 2
#: Exit code of an internal error (a bug in jaxlike, not in the input): BSD's EX_SOFTWARE.
EXIT_INTERNAL = 70


class _UsageError(Exception):
    """Raised instead of argparse printing usage and calling ``sys.exit``."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become one line, printed by :func:`main`."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise _UsageError(f"{message} (see '{self.prog} --help')")


#: help of ``-p/--patch``
PATCH_HELP = (
    "signal patch applied to the workspace: a pyhf patch file (JSON Patch list or "
    "{metadata, patch}) or PATCHSET.json:NAME (a patch of a HEPData patchset); repeatable"
)


def _add_common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("workspace", metavar="WORKSPACE", help="pyhf JSON workspace ('-' = stdin)")
    sub.add_argument("-p", "--patch", action="append", metavar="PATCH", help=PATCH_HELP)
    sub.add_argument("--measurement", metavar="NAME", help="measurement to use (default: first)")
    add_output(sub)


def _add_backend(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--backend",
        metavar="NAME",
        help="accepted for pyhf compatibility and ignored: jaxlike has one backend (JAX)",
    )


def _add_toys(p) -> None:
    """The toy options of ``cls`` and ``limit`` (used with ``--calctype toybased``)."""
    p.add_argument("--ntoys", type=positive_int, metavar="N", help="toys per set (2000)")
    p.add_argument("--seed", type=nonneg_int, metavar="S", help="seed of the toys (0)")
    p.add_argument(
        "--toy-pars", choices=["init", "profiled"],
        help="nuisance values the toys are generated at: profiled (fit to the data, as pyhf; "
        "default) or init",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxlike`` argument parser with its subcommands."""
    from .. import __version__

    parser = _Parser(
        prog="jaxlike",
        description="Binned HistFactory likelihoods in JAX.",
        epilog="exit codes: 0 success, 2 bad input, 3 a fit did not converge, 70 internal error",
    )
    parser.add_argument("--version", action="version", version=f"jaxlike {__version__}")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    cls = subs.add_parser("cls", help="observed and expected CLs at one POI value (asymptotic)")
    _add_common(cls)
    cls.add_argument(
        "--test-poi", type=finite_float, default=1.0, metavar="X", help="POI value tested (1.0)"
    )
    cls.add_argument("--test-stat", choices=["qtilde", "q"], default="qtilde")
    cls.add_argument(
        "--calctype", choices=["asymptotics", "toybased", "exact"], default="asymptotics",
        help="asymptotic formulae (default), toys, or exact Poisson sums (one-bin counting)",
    )  # fmt: skip
    _add_toys(cls)
    cls.add_argument(
        "--plot", metavar="FILE", help="toybased: the test-statistic distributions (PNG/PDF)"
    )
    _add_backend(cls)

    fit = subs.add_parser("fit", help="maximum-likelihood fit of all parameters")
    _add_common(fit)
    fit.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_backend(fit)

    limit = subs.add_parser("limit", help="observed and expected upper limits on the POI")
    _add_common(limit)
    limit.add_argument("--cl", type=cl_level, default=0.95, help="confidence level (0.95)")
    limit.add_argument("--test-stat", choices=["qtilde", "q"], default="qtilde")
    limit.add_argument(
        "--rule", choices=["cls", "clsb"], default="cls",
        help="CLs = 1 - CL (default) or CLs+b = 1 - CL (one-sided profile likelihood)",
    )  # fmt: skip
    limit.add_argument("--calctype", choices=["asymptotics", "toybased"], default="asymptotics")
    limit.add_argument(
        "--poi-max", type=finite_float, metavar="X",
        help="search the limits in [0, X] instead of [0, POI upper bound] (asymptotics)",
    )  # fmt: skip
    _add_toys(limit)
    limit.add_argument(
        "--poi-grid", metavar="LO:HI:N",
        help="toybased: the μ grid (default: 0 and 15 points around the asymptotic limits)",
    )  # fmt: skip
    limit.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_backend(limit)

    inspect = subs.add_parser("inspect", help="summary of channels, samples and parameters")
    _add_common(inspect)

    example = subs.add_parser(
        "example", help="fit, CLs and limit of the bundled synthetic search workspace"
    )
    example.add_argument("--seed", type=nonneg_int, default=0, help="seed of the pseudo-data (0)")
    example.add_argument(
        "-o", "--output", metavar="PATH", help="also write the workspace JSON here"
    )
    _scan.add_parser(subs)
    _toys.add_parser(subs)
    _grid.add_parser(subs)
    _plot.add_parser(subs)
    _analysis.add_parsers(subs)
    _posterior.add_parser(subs)
    _jobs.add_parsers(subs)
    return parser


def _run(args: argparse.Namespace) -> int:
    from . import _commands, _inspect

    handlers = {
        "cls": _commands.cmd_cls,
        "fit": _commands.cmd_fit,
        "limit": _commands.cmd_limit,
        "inspect": _inspect.cmd_inspect,
        "example": _commands.cmd_example,
        "scan": _scan.cmd_scan,
        "toys": _toys.cmd_toys,
        "grid": _grid.cmd_grid,
        "plot": _plot.cmd_plot,
        "ranking": _analysis.cmd_ranking,
        "gof": _analysis.cmd_gof,
        "yields": _analysis.cmd_yields,
        "posterior": _posterior.cmd_posterior,
        "belle2-wet": _jobs.cmd_belle2_wet,
    }
    return handlers[args.command](args)


def _fail(message: str) -> int:
    text = " ".join(str(message).split()) or "unknown error"
    print(f"jaxlike: error: {text}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jaxlike`` command line with ``argv`` (default ``sys.argv[1:]``).

    Returns the exit code instead of exiting, so it can be called in-process.

    Example:
        >>> main(["inspect", "workspace.json"])  # doctest: +SKIP
        0
    """
    from ..exceptions import JaxlikeError

    # one OpenBLAS thread for JAX's CPU LAPACK calls (read when scipy's OpenBLAS loads, at the
    # first Cholesky): a threaded OpenBLAS made a 239×239 Cholesky ~100× slower on a busy
    # 2-core machine (see README, Benchmarks). Only the command line does this.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        args = build_parser().parse_args(argv)
        return _run(args)
    except SystemExit as stop:  # --help and --version
        return stop.code if isinstance(stop.code, int) else 0
    except (_UsageError, CliError, JaxlikeError) as err:
        return _fail(str(err))
    except KeyboardInterrupt:
        return _fail("interrupted")
    except RecursionError:
        return _fail("the input is nested too deeply")
    except MemoryError:
        return _fail("out of memory (an input size is too large for this machine)")
    except Exception as err:  # a bug: one line, exit 70; JAXLIKE_DEBUG=1 shows the traceback
        if os.environ.get("JAXLIKE_DEBUG"):
            raise
        text = " ".join(f"{type(err).__name__}: {err}".split())[:500]
        print(f"jaxlike: internal error (please report it, with JAXLIKE_DEBUG=1 for the "
              f"traceback): {text}", file=sys.stderr)  # fmt: skip
        return EXIT_INTERNAL
