"""Write the bundled example workspace to a file (``python -m jaxlike.examples``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ._search import make_example_workspace

__all__ = ["write_example_workspace", "main_example"]


def write_example_workspace(path: str | Path, seed: int = 0) -> dict:
    """Write :func:`make_example_workspace` ``(seed)`` as indented JSON to ``path``.

    ``path`` ``"-"`` writes to standard output. Returns the workspace that was written.

    Example:
        >>> spec = write_example_workspace("example.json", seed=0)  # doctest: +SKIP
    """
    spec = make_example_workspace(seed)
    text = json.dumps(spec, indent=2) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
    else:
        Path(path).write_text(text, encoding="utf-8")
    return spec


def main_example(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m jaxlike.examples [PATH] [--seed N]``; returns the exit code.

    Writes the synthetic example workspace to ``PATH`` (default ``-``, standard output).
    """
    parser = argparse.ArgumentParser(
        prog="python -m jaxlike.examples",
        description="Write jaxlike's synthetic example workspace (pyhf JSON) to a file.",
    )
    parser.add_argument("path", nargs="?", default="-", help="output file ('-' = stdout)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pseudo-data draw")
    args = parser.parse_args(argv)
    try:
        write_example_workspace(args.path, seed=args.seed)
    except OSError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    return 0
