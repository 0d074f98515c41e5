r"""Segmented mass scans: ranges of the mass with their own fit variable, window, background
and tables, stitched into one scan.

A published bump hunt often changes its analysis along the mass axis: the e⁺e⁻ → γa(→γγ)
search fits M²_γγ below 6.85 GeV and the recoil mass squared M²_recoil above, with a background
polynomial whose order depends on the range. Each range is a :class:`Segment`: a complete
:class:`~jaxlike.parametric.MassScan` (its own spectrum, in its own fit variable x) with its
hypotheses given in x, and the transform between x and the common mass m:

* ``"m"``: x = m (the spectrum is in the mass itself);
* ``"m2"``: x = m² (a mass squared, e.g. M²_γγ or M²_recoil), so m = √x.

:func:`segmented_scan` runs every segment with :func:`~jaxlike.scan.mass_scan` (each into its
own HDF5 file ``<stem>.<segment>.h5``, resumable) and stitches the results, in the order of the
segments (whose mass ranges may not overlap), into one file with the hypotheses ``mass`` (m),
``x`` (the fit variable) and ``segment`` (its index), and the boundaries between segments in its
attributes (``segment_boundaries``, drawn by ``jaxlike plot``). The stitched rows are the
segments' rows, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..exceptions import InvalidScanConfig
from ..stream import ScanStore
from ._mass import mass_scan
from ._results import MassScanResult

__all__ = ["Segment", "SegmentedScanResult", "TRANSFORMS", "segmented_scan"]

#: fit-variable transforms x(m) of a segment: ``"m"`` (x = m), ``"m2"`` (x = m²)
TRANSFORMS = ("m", "m2")


def to_mass(x, transform: str) -> np.ndarray:
    """The mass m of fit-variable values x: x itself (``"m"``) or √x (``"m2"``)."""
    x = np.asarray(x, float)
    return x if transform == "m" else np.sqrt(x)


@dataclass(frozen=True)
class Segment:
    """One range of a segmented scan.

    Attributes:
        name: unique, a file-name-safe word (its results go to ``<stem>.<name>.h5``).
        scan: the segment's :class:`~jaxlike.parametric.MassScan` (spectrum in x).
        masses: its hypotheses in the fit variable x [H_s] (e.g. from
            :func:`~jaxlike.parametric.build_mass_scan`).
        transform: x(m), one of :data:`TRANSFORMS`.
        config: the segment's configuration (stored in the segment's file and in the stitched
            file's ``segments``), optional.
    """

    name: str
    scan: object
    masses: np.ndarray
    transform: str = "m"
    config: dict | None = None

    def __post_init__(self):
        path = f"segments[{self.name!r}]"
        if not isinstance(self.name, str) or not self.name.replace("_", "").replace("-", "") \
                .isalnum():  # fmt: skip
            raise InvalidScanConfig("segments.name", f"must be a word of letters, digits, _ "
                                    f"or -, got {self.name!r}")  # fmt: skip
        if self.transform not in TRANSFORMS:
            raise InvalidScanConfig(
                f"{path}.variable", f"unknown transform {self.transform!r}, not in {TRANSFORMS}"
            )
        m = np.asarray(self.masses, float)
        if m.ndim != 1 or m.size == 0 or not np.all(np.isfinite(m)):
            raise InvalidScanConfig(f"{path}.masses", "must be a non-empty 1-D array of numbers")
        if np.any(np.diff(m) <= 0):
            raise InvalidScanConfig(f"{path}.masses", "must be strictly increasing")
        if self.transform == "m2" and m[0] < 0:
            raise InvalidScanConfig(f"{path}.masses", f"a mass squared cannot be negative ({m[0]})")
        object.__setattr__(self, "masses", m)

    @property
    def mass(self) -> np.ndarray:
        """The hypotheses as masses m [H_s]."""
        return to_mass(self.masses, self.transform)


@dataclass(frozen=True)
class SegmentedScanResult:
    """The stitched scan: ``mass`` [H] (m), ``x`` [H] (each hypothesis' fit variable),
    ``segment`` [H] (index into ``names``), ``boundaries`` [S − 1] (masses between adjacent
    segments: the midpoint of the last hypothesis of one and the first of the next),
    ``results`` the :class:`~jaxlike.scan.MassScanResult` of all hypotheses, ``parts`` the
    segments' own results and ``files`` their HDF5 files (or None)."""

    mass: np.ndarray
    x: np.ndarray
    segment: np.ndarray
    names: tuple
    boundaries: np.ndarray
    results: MassScanResult
    parts: tuple
    files: tuple


def _check(segments):
    segs = list(segments)
    if not segs:
        raise InvalidScanConfig("segments", "a segmented scan needs at least one segment")
    names = [s.name for s in segs]
    if len(set(names)) != len(names):
        raise InvalidScanConfig("segments.name", f"duplicated segment names {names}")
    for a, b in zip(segs[:-1], segs[1:], strict=True):
        if b.mass[0] <= a.mass[-1]:
            raise InvalidScanConfig(
                f"segments[{b.name!r}].masses",
                f"starts at m = {b.mass[0]:g}, not above the end of segment {a.name!r} "
                f"(m = {a.mass[-1]:g}): segments are consecutive, non-overlapping mass ranges",
            )
    return segs


def segmented_scan(
    segments,
    *,
    cl=(0.95,),
    store=None,
    resume=False,
    overwrite=False,
    progress=True,
    rule="cls",
    toys=None,
    chunk_size=None,
    memory_budget_bytes=None,
    labels=None,
) -> SegmentedScanResult:
    """Run every :class:`Segment` with :func:`~jaxlike.scan.mass_scan` and stitch the results.

    ``store``: the stitched HDF5 file (None: nothing written); segment s then goes to
    ``<stem>.<name>.h5`` beside it (``resume`` continues those; the stitched file is written
    once every segment is complete). The other arguments are those of
    :func:`~jaxlike.scan.mass_scan`, the same for every segment. Every segment must give the
    same result fields (all with or all without physical units, a ``[physics]`` parameter,
    toys). ``labels``: ``{"label", "unit"}`` of the stitched file's axis, the mass m (default:
    the first segment's ``[plot]`` labels, which name its fit variable x).
    Raises :class:`~jaxlike.exceptions.InvalidScanConfig` for overlapping or unordered
    segments, duplicated names, or segments with different result fields.
    """
    segs = _check(segments)
    cl = tuple(float(x) for x in np.atleast_1d(cl))
    out = Path(store) if store is not None else None
    if out is not None and out.exists() and not (overwrite or resume):
        raise InvalidScanConfig("store", f"{out} already exists; pass resume or overwrite")
    parts, files = [], []
    for s in segs:
        path = None if out is None else out.with_name(f"{out.stem}.{s.name}{out.suffix or '.h5'}")
        res = mass_scan(s.scan, s.masses, cl=cl, store=path, resume=resume, overwrite=overwrite,
                        progress=progress, config=s.config, rule=rule, toys=toys,
                        chunk_size=chunk_size, memory_budget_bytes=memory_budget_bytes)  # fmt: skip
        parts.append(res)
        files.append(path)
    fields = [tuple(sorted(p.keys())) for p in parts]
    for s, f in zip(segs[1:], fields[1:], strict=True):
        if f != fields[0]:
            diff = sorted(set(f) ^ set(fields[0]))
            raise InvalidScanConfig(
                f"segments[{s.name!r}]", f"gives other result fields than {segs[0].name!r}: {diff}"
            )
    results = {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in fields[0]}
    mass = np.concatenate([s.mass for s in segs])
    x = np.concatenate([s.masses for s in segs])
    index = np.concatenate([np.full(s.masses.size, i, np.int64) for i, s in enumerate(segs)])
    bounds = np.array([0.5 * (a.mass[-1] + b.mass[0]) for a, b in zip(segs[:-1], segs[1:],
                                                                       strict=True)])  # fmt: skip
    names = tuple(s.name for s in segs)
    if out is not None:
        _write_stitched(
            out, segs, mass, x, index, bounds, results, cl, rule, overwrite or resume, labels
        )
    return SegmentedScanResult(
        mass=mass, x=x, segment=index, names=names, boundaries=bounds,
        results=MassScanResult.from_results(results), parts=tuple(parts), files=tuple(files),
    )  # fmt: skip


def _write_stitched(out, segs, mass, x, index, bounds, results, cl, rule, overwrite, labels=None):
    """One complete scan file of the stitched hypotheses and results."""
    spec = {k: (v.shape[1:], v.dtype) for k, v in results.items()}
    config = {
        "kind": "mass",
        "cl": list(cl),
        "segments": [
            {"name": s.name, "variable": s.transform, "config": s.config or {}} for s in segs
        ],
    }
    # the figures' labels (and a [physics] parameter's) are the first segment's
    first = segs[0].config or {}
    config |= {k: first[k] for k in ("plot", "physics") if k in first}
    if labels:
        config["plot"] = {**config.get("plot", {}), **labels}
    if rule != "cls":
        config["rule"] = rule
    attrs = {"kind": "mass", "cl": list(cl), "rule": rule,
             "segment_names": [s.name for s in segs],
             "segment_boundaries": bounds.tolist()}  # fmt: skip
    hyps = {"mass": mass, "x": x, "segment": index}
    with ScanStore.create(out, hyps, spec, config=config, attrs=attrs,
                          overwrite=overwrite) as f:  # fmt: skip
        f.write_chunk(0, results)
