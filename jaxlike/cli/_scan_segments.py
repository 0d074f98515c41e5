"""``jaxlike scan SEGMENTS.toml``: a segmented mass scan (:func:`jaxlike.scan.segmented_scan`).

The file lists the segments, in increasing mass, each a scan configuration of its own (a path
relative to this file) with its fit variable::

    [[segments]]
    name = "low"
    config = "low_scan.toml"      # spectrum in M²_γγ, hypotheses in GeV²
    variable = "m2"               # x = m² ("m": x = m, the default)

    [[segments]]
    name = "high"
    config = "high_scan.toml"
    variable = "m2"

Every segment goes to ``<stem>.<name>.h5`` beside the output (resumable), the stitched scan to
the output (default ``scan.h5``), whose hypotheses are the masses m; ``jaxlike plot`` marks the
segment boundaries. The segments must share their CL levels. An optional ``[plot]`` table
(``label``, ``unit``) names the stitched axis, the mass m (default: the first segment's labels,
which name its fit variable).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from ._io import CliError

__all__ = ["is_segmented", "segmented_scan_command"]

_KEYS = ("name", "config", "variable")


def is_segmented(path: Path) -> bool:
    """Whether ``path`` looks like a segmented-scan file: TOML with a ``[[segments]]`` table in
    its first 8 kB (after an optional ``[plot]``), or JSON starting ``{"segments"`` or
    ``{"plot": {...}, "segments"``."""
    try:
        with open(path, "rb") as f:
            head = f.read(8192).decode("utf-8-sig", errors="replace")
    except OSError:
        return False
    if head.lstrip().startswith("{"):
        return bool(re.match(r'\s*\{\s*("plot"\s*:\s*\{[^{}]*\}\s*,\s*)?"segments"', head))
    head = re.sub(r"(?m)^\s*#.*$", "", head)  # TOML comments
    return bool(re.search(r"(?m)^\s*\[\[segments\]\]", head))


def _segments(path: Path):
    """The :class:`jaxlike.scan.Segment` s of the file, their CL levels and their configs'
    limit rules."""
    from .._strict import check_keys, read_config
    from ..exceptions import InvalidScanConfig
    from ..parametric import plot_labels
    from ..scan import Segment
    from ._scan import _load_mass_config

    doc = read_config(path, InvalidScanConfig, "segmented scan")
    try:  # [plot]: label and unit of the stitched mass axis, checked as any scan's labels
        check_keys(doc, ("segments", "plot"), "", InvalidScanConfig, "section")
        plot_labels(doc)
        labels = doc.get("plot", {})
        check_keys(labels, ("label", "unit"), "plot", InvalidScanConfig)
    except InvalidScanConfig as err:
        raise CliError(f"{path}: {err}") from None
    entries = doc.get("segments")
    if not isinstance(entries, list) or not entries:
        raise CliError(f"{path}: segments: needs a list of [[segments]] tables")
    segs, levels, rules = [], None, []
    for i, e in enumerate(entries):
        where = f"{path}: segments[{i}]"
        if not isinstance(e, dict):
            raise CliError(f"{where}: must be a table (name, config, variable)")
        try:
            check_keys(e, _KEYS, f"segments[{i}]", InvalidScanConfig)
        except InvalidScanConfig as err:
            raise CliError(f"{path}: {err}") from None
        for key in ("name", "config"):
            if not isinstance(e.get(key), str):
                raise CliError(f"{where}.{key}: must be a string")
        ident, scan, masses, cl, rule = _load_mass_config(path.parent / e["config"])
        rules.append(rule)
        if levels is None:
            levels = cl
        elif tuple(cl) != tuple(levels):
            raise CliError(f"{where}: CL levels {list(cl)} differ from the first segment's "
                           f"{list(levels)}")  # fmt: skip
        try:
            segs.append(Segment(e["name"], scan, masses, e.get("variable", "m"), ident))
        except InvalidScanConfig as err:
            raise CliError(f"{path}: {err}") from None
    return segs, levels, rules, labels


def segmented_scan_command(args, path: Path):
    """Run the segmented scan of ``path``: (summary, exit code)."""
    import jaxlike.scan as js

    from ..parametric import Envelope
    from ._scan import (
        _output,
        check_spurious,
        envelope_summary,
        mass_summary,
        scan_rule_of,
        spurious_summary,
        toy_args,
    )
    from ._scan_summary import common

    for flag in ("cl", "test_poi", "poi_max"):
        if getattr(args, flag) is not None:
            raise CliError(f"--{flag.replace('_', '-')} applies to patch scans (a mass scan "
                           "reads scan.cl)")  # fmt: skip
    toys = toy_args(args)
    segs, cl, rules, labels = _segments(path)
    rule = scan_rule_of(args, rules)
    check_spurious(args, [seg.scan for seg in segs])
    out = _output(args.output, args)
    t0 = time.monotonic()
    res = js.segmented_scan(
        segs, cl=cl, store=out, resume=args.resume, overwrite=args.overwrite,
        progress=not args.no_progress, rule=rule, toys=toys, chunk_size=args.chunk_size,
        memory_budget_bytes=args.memory_budget, labels=labels or None,
    )  # fmt: skip
    seconds = time.monotonic() - t0
    summary = common(out, "mass", res.mass, (seconds, seconds, len(res.mass), 0))
    summary, code = mass_summary(summary, res.results, res.mass, cl, rule, toys)
    summary["segments"] = [
        {"name": n, "file": str(f), "masses": [float(res.mass[res.segment == k][0]),
                                               float(res.mass[res.segment == k][-1])],
         "hypotheses": int(np.sum(res.segment == k))}
        for k, (n, f) in enumerate(zip(res.names, res.files, strict=True))
    ]  # fmt: skip
    summary["segment_boundaries"] = [float(b) for b in res.boundaries]
    envelopes = [seg.scan for seg in segs if isinstance(seg.scan, Envelope)]
    if len(envelopes) == len(segs) and len({e.names for e in envelopes}) == 1:
        summary["envelope"] = envelope_summary(segs[0].scan, res.results)
    if args.spurious:  # per segment: its own fit variable, window and background family
        summary["spurious"] = [spurious_summary(seg.scan, seg.masses, args, seg.name)
                               for seg in segs]  # fmt: skip
    return summary, code
