"""Shared figure plumbing: an off-screen (Agg) figure in the mplhep ROOT style when mplhep is
installed (matplotlib's default style with a light grid otherwise), and saving by suffix.

No pyplot: figures are :class:`matplotlib.figure.Figure` objects with their own Agg canvas, so
plotting never touches global state or needs a display.
"""

from __future__ import annotations

from pathlib import Path

from ..exceptions import InvalidArgument

__all__ = ["GREEN", "YELLOW", "figure", "file_stems", "output_path", "save", "style"]

GREEN, YELLOW = "#00cc00", "#ffcc00"  # ±1σ, ±2σ bands


def style():
    """A style context: mplhep's ROOT style when installed, else matplotlib's default."""
    import matplotlib.style as mstyle

    try:
        import mplhep

        return mstyle.context(mplhep.style.ROOT)
    except (ImportError, AttributeError, OSError, ValueError):
        return mstyle.context(["default", {"axes.grid": True, "grid.alpha": 0.3}])


def figure(figsize=(8, 6), **subplots):
    """``(fig, axes)``: a constrained-layout figure and ``fig.subplots(**subplots)``."""
    from matplotlib.figure import Figure

    with style():
        fig = Figure(figsize=figsize, layout="constrained")
        ax = fig.subplots(**subplots)
    return fig, ax


def output_path(path, fmt=None) -> Path:
    """``path`` with the suffix of ``fmt`` (default: its own suffix, else ``.png``)."""
    path = Path(path)
    fmt = fmt or (path.suffix[1:].lower() or "png")
    if fmt not in ("png", "pdf"):
        raise InvalidArgument(f"fmt: unsupported figure format {fmt!r} (png or pdf)")
    return path.with_suffix(f".{fmt}")


def file_stems(names) -> list[str]:
    """File-name stems for ``names`` (channels, parameters): every character outside
    ``[A-Za-z0-9_.+-]`` becomes ``_``; stems that then coincide — also when they differ only in
    case, which collide on macOS and Windows — get ``-2``, ``-3``, ... appended (never another
    stem), so no figure overwrites another. The first occurrence keeps the plain stem.

    >>> file_stems(["SR/1", "SR_1", "sr_1", "CR"])
    ['SR_1', 'SR_1-2', 'sr_1-3', 'CR']
    """
    import re

    from .._strict import unique_names

    return unique_names([re.sub(r"[^A-Za-z0-9_.+-]", "_", str(n)) for n in names])


def save(fig, path) -> Path:
    """Write ``fig`` to ``path`` (PNG or PDF by suffix) and return the path; OSError if the
    folder does not exist or is not writable."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    FigureCanvasAgg(fig)
    with style():
        fig.savefig(path)
    return path
