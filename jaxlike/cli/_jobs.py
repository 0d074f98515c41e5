"""``jaxlike belle2-wet``: the Belle II WET job, writing a plain workspace (jaxlike.jobs.belle2).

::

    jaxlike belle2-wet DIR -o wet_workspace.json [--posterior-config wet_posterior.json]
    jaxlike grid wet_workspace.json --x C_V:0:20:100 --y C_T:0:14:100 -o grid.h5
    jaxlike posterior wet_posterior.json -o wet_posterior

The workspace is plain pyhf JSON with ``reweight`` modifiers (maps, truth-q² edges and
form-factor inputs embedded), so the generic commands take it like any other workspace.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._format import table
from ._io import CliError, dump, positive_int

__all__ = ["add_parsers", "cmd_belle2_wet"]


def add_parsers(subs) -> None:
    """Register the job commands (``jaxlike belle2-wet``) on the subcommand action ``subs``."""
    p = subs.add_parser(
        "belle2-wet",
        help="write the Belle II B+ -> K+ nu nu WET workspace (plain JSON) from the release folder",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 success, 2 bad input (missing or malformed release files)",
    )
    p.add_argument(
        "data_dir",
        metavar="DIR",
        help="Belle II release folder: combined_likelihood.json, number_density_*.csv, "
        "bk_formfactors.json",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        default="wet_workspace.json",
        help="workspace file written (wet_workspace.json)",
    )
    p.add_argument(
        "--posterior-config",
        metavar="PATH",
        help="also write the WET posterior configuration (JSON) for 'jaxlike posterior'",
    )
    p.add_argument(
        "--nodes", type=positive_int, default=16, help="Gauss-Legendre nodes per truth bin (16)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def cmd_belle2_wet(args) -> int:
    """``jaxlike belle2-wet DIR -o PATH``: build and write the WET workspace (atomically)."""
    from ..jobs import write_belle2_wet_workspace, write_wet_posterior_config

    out = Path(args.output)
    targets = [out] + ([Path(args.posterior_config)] if args.posterior_config else [])
    for path in targets:
        if not (path.parent if str(path.parent) else Path(".")).is_dir():
            raise CliError(f"cannot write '{path}': folder does not exist")
    if args.posterior_config and Path(args.posterior_config).resolve() == out.resolve():
        raise CliError("--posterior-config and -o name the same file")
    try:
        ws = write_belle2_wet_workspace(args.data_dir, out, nodes=args.nodes)
        if args.posterior_config:
            write_wet_posterior_config(args.posterior_config, out)
    except OSError as err:
        raise CliError(f"cannot write '{err.filename or out}': {err.strerror or err}") from None
    model = ws.model()
    summary = {
        "workspace": str(out),
        "parameters": model.config.npars,
        "poi": model.config.poi_name,
        "channels": len(ws.channels),
    }
    if args.posterior_config:
        summary["posterior_config"] = str(args.posterior_config)
    if args.json:
        print(dump(summary))
    else:
        rows = [[k.replace("_", " "), str(v)] for k, v in summary.items()]
        print(table(["belle2-wet", "written"], rows, "<<"))
    return 0
