"""Input and output helpers of the command line: workspaces, patches, results."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "positive_int",
    "nonneg_int",
    "finite_float",
    "cl_level",
    "resumable_error",
    "results_file",
    "CliError",
    "read_json",
    "read_spec",
    "load_workspace",
    "load_patches",
    "add_output",
    "no_poi_message",
    "build",
    "scalar",
    "floats",
    "dump",
    "emit",
    "warn",
]


class CliError(Exception):
    """A user error found by the CLI itself (bad file, bad JSON, bad arguments)."""


def resumable_error(command: str, err: BaseException, done: str) -> int:
    """Print the one-line error of a resumable command (``jaxlike scan``/``grid``) and return
    exit code 2; an interrupt says that the ``done`` results are kept for ``--resume``."""
    text = " ".join(str(err).split())
    if isinstance(err, KeyboardInterrupt):
        text = f"interrupted; the {done} done are kept, continue with --resume"
    print(f"jaxlike {command}: error: {text}", file=sys.stderr)
    return 2


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}")
    return value


def nonneg_int(text: str) -> int:
    """argparse type: an integer ≥ 0 (seeds)."""
    return _int_at_least(text, 0, "an integer >= 0")


def finite_float(text: str) -> float:
    """argparse type: a finite number (no nan, inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def cl_level(text: str) -> float:
    """argparse type: a confidence level strictly between 0 and 1."""
    value = finite_float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, not {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1."""
    return _int_at_least(text, 1, "a positive integer")


def results_file(path, resume: bool, overwrite: bool) -> Path:
    """A results file path checked before any compile: writable folder (the file is built
    there under a temporary name), writable file when resuming, no clobbering unless
    ``resume`` or ``overwrite``."""
    import os

    out = Path(path)
    if out.is_dir():
        raise CliError(f"{out} is a folder; give the results file name with -o")
    if not out.parent.is_dir():
        raise CliError(f"{out}: folder {out.parent} does not exist")
    if out.exists() and not (resume or overwrite):
        raise CliError(f"{out} already exists; pass --resume to continue it or --overwrite")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise CliError(f"{out}: folder {out.parent} is not writable")
    if resume and out.exists() and not os.access(out, os.R_OK | os.W_OK):
        raise CliError(f"{out}: the results file is not writable (needed by --resume)")
    return out


def read_json(path: str, what: str) -> Any:
    """Parse the JSON document at ``path`` (``"-"`` = standard input); ``what`` names it.

    Strict (see :func:`jaxlike.workspace.parse_json`): invalid JSON, numbers beyond float64,
    deep nesting, lone surrogates and special files (FIFOs, devices) are one clear error.
    """
    from ..workspace import read_json_file

    return read_json_file(path, what)


def read_spec(path: str) -> dict:
    """Read a workspace file (``"-"`` = standard input) as a JSON object, not yet validated."""
    spec = read_json(path, "workspace")
    if not isinstance(spec, dict):
        raise CliError(f"workspace file '{path}' must hold a JSON object")
    return spec


def load_workspace(path: str):
    """Read and validate a workspace file as a :class:`jaxlike.Workspace`."""
    import jaxlike

    return jaxlike.Workspace(read_spec(path))


def add_output(sub, help: str = "write the result here, not stdout") -> None:
    """The output flag of a verb: ``-o/--output PATH`` (``args.output_file``), with the old
    spelling ``--output-file`` kept as a hidden alias."""
    import argparse

    sub.add_argument("-o", "--output", dest="output_file", metavar="PATH", help=help)
    sub.add_argument("--output-file", dest="output_file", help=argparse.SUPPRESS)


def _split_patch_arg(arg: str) -> tuple[str, str | None]:
    """``(file, NAME or None)`` of a ``-p`` value: ``FILE`` or ``PATCHSET.json:NAME``."""
    if arg == "-" or Path(arg).exists() or ":" not in arg:
        return arg, None
    path, name = arg.rsplit(":", 1)
    if not name:
        raise CliError(f"-p {arg}: give the patch name after the colon (PATCHSET.json:NAME)")
    return path, name


def _from_patchset(doc: Any, path: str, name: str, workspace) -> list[dict]:
    """The operations of patch ``name`` of the patchset ``doc`` read from ``path``; a digest
    that does not match ``workspace`` is a warning (the patch may still apply)."""
    from ..exceptions import InvalidPatch
    from ..workspace import PatchSet

    try:
        patchset = PatchSet(doc)
        patch = patchset[name]
    except InvalidPatch as err:
        raise CliError(f"patchset '{path}': {err}") from None
    if workspace is not None:
        try:
            patchset.verify(workspace)
        except InvalidPatch as err:
            warn(f"patchset '{path}': {err}")
    return patch.operations


def load_patches(paths: list[str] | None, workspace=None) -> list[list[dict]]:
    """The operation lists of the ``-p`` arguments, in the order given.

    Each is a pyhf patch file, a JSON list of RFC 6902 operations (``patch.*.json``) or one
    patchset entry ``{"metadata": ..., "patch": [...]}``, or ``PATCHSET.json:NAME``, the patch
    named NAME of a pyhf/HEPData patchset (its digest is checked against ``workspace``, when
    given: a mismatch is a warning). A whole patchset without a name, a workspace or an invalid
    patch is a :class:`CliError` naming the file.

    Example:
        >>> load_patches(["patchset.json:ERJR_350p0_0p0"], ws)  # doctest: +SKIP
        [[{'op': 'add', 'path': '/channels/0/samples/5', 'value': {...}}, ...]]
    """
    from ..exceptions import InvalidPatch
    from ..workspace import load_patch

    patches = []
    for arg in paths or []:
        path, name = _split_patch_arg(arg)
        doc = read_json(path, "patch")
        if name is not None:
            if not (isinstance(doc, dict) and "patches" in doc):
                raise CliError(f"-p {arg}: '{path}' is not a patchset (no \"patches\")")
            patches.append(_from_patchset(doc, path, name, workspace))
            continue
        if isinstance(doc, dict) and "patches" in doc:
            names = [str(p.get("metadata", {}).get("name")) for p in doc.get("patches") or []
                     if isinstance(p, dict)][:5]  # fmt: skip
            raise CliError(
                f"patch file '{path}' is a patchset; pick one of its patches with "
                f"-p {path}:NAME (e.g. {', '.join(names) or 'NAME'})"
            )
        if isinstance(doc, dict) and "channels" in doc:
            raise CliError(f"patch file '{path}' is a workspace, not a patch")
        if not isinstance(doc, list | dict):
            raise CliError(f"patch file '{path}' must hold a JSON list of RFC 6902 operations")
        try:
            patches.append(load_patch(doc))
        except InvalidPatch as err:
            raise CliError(f"patch file '{path}': {err}") from None
    return patches


def no_poi_message(poi: str, measurement: str) -> str:
    """Why a background-only workspace has no POI, and what to do about it."""
    return (
        f"POI {poi!r} of measurement {measurement!r} has no modifier in this workspace "
        "(a background-only workspace has no signal); add one with -p PATCH"
    )


def build(args, allow_no_poi: bool = False):
    """``(workspace, model, data)`` from the parsed ``WORKSPACE``, ``-p`` and ``--measurement``.

    The workspace is returned with the patches applied. When no modifier carries the
    measurement's POI (a background-only workspace, e.g. HEPData's ``BkgOnly.json``), the
    model is built without a POI if ``allow_no_poi`` (``inspect``, ``fit``), else a
    :class:`CliError` says to add a signal patch.
    """
    ws = load_workspace(args.workspace)
    patches = load_patches(getattr(args, "patch", None), ws)
    if patches:
        ws = ws.patch(patches)
    measurement = ws.get_measurement(getattr(args, "measurement", None))
    poi = measurement["config"]["poi"]
    if poi in ws.parameters:
        model = ws.model(measurement_name=measurement["name"])
    elif allow_no_poi:
        from ..model import build_model

        model = build_model(
            channels=ws.to_dict()["channels"],
            poi_name=None,
            parameter_configs=measurement["config"].get("parameters", []),
        )
    else:
        raise CliError(no_poi_message(poi, measurement["name"]))
    return ws, model, ws.data(model)


def scalar(value: Any) -> float:
    """A Python float from a 0-d (or one-element) array-like."""
    return float(np.asarray(value).reshape(-1)[0])


def floats(values: Any) -> list[float]:
    """A list of Python floats from a 1-d array-like."""
    return [float(v) for v in np.asarray(values, dtype=float).reshape(-1)]


def _strict(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (strict JSON has no NaN/Infinity)."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_strict(v) for v in obj]
    return obj


def dump(obj: Any, sort_keys: bool = False) -> str:
    """Strict JSON text indented by 4 spaces, as pyhf's CLI prints it; a non-finite number is
    written as ``null`` (the document's status fields say why)."""
    return json.dumps(_strict(obj), indent=4, sort_keys=sort_keys, allow_nan=False)


def emit(text: str, output_file: str | None = None) -> None:
    """Print ``text`` or write it (with a final newline) to ``output_file``."""
    data = (text + "\n").encode("utf-8", "backslashreplace")  # never a UnicodeEncodeError
    if output_file is None:
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:  # a replaced text stream: hand it text without surrogates
            print(data.decode("utf-8"), end="")
            return
        sys.stdout.flush()
        buffer.write(data)
        buffer.flush()
        return
    from .._strict import atomic_write

    try:
        atomic_write(output_file, lambda tmp: tmp.write_bytes(data))
    except OSError as err:
        raise CliError(f"cannot write '{output_file}': {err.strerror or err}") from None


def warn(message: str) -> None:
    """One warning line on standard error."""
    print(f"jaxlike: warning: {message}", file=sys.stderr)
