"""Shared figure plumbing: an off-screen (Agg) figure in a style, saving by suffix, readable
labels for long names.

Styles: ``style=None`` (the default) is matplotlib's default style with a light grid, the same
on every machine, so a figure regenerates byte for byte. ``style="ATLAS"``, ``"CMS"``,
``"LHCb2"``, ``"ALICE"`` or ``"ROOT"`` draws in that mplhep style (``pip install
'jaxlike[plot]'``); figure sizes then grow with the style's font size, so a style with 26 pt
text (CMS, ROOT) gets a proportionally larger canvas instead of overlapping labels.

No pyplot: figures are :class:`matplotlib.figure.Figure` objects with their own Agg canvas, so
plotting never touches global state or needs a display.
"""

from __future__ import annotations

import contextlib
import contextvars
from pathlib import Path

from ..exceptions import InvalidArgument

__all__ = [
    "GREEN",
    "MIN_FONT",
    "STYLES",
    "YELLOW",
    "axis_label",
    "canvas",
    "figure",
    "file_stems",
    "footnote",
    "footnote_height",
    "output_path",
    "save",
    "shorten",
    "style",
    "font_scale",
]

GREEN, YELLOW = "#00cc00", "#ffcc00"  # ±1σ, ±2σ bands
#: the named styles ``style=`` accepts (mplhep's), besides None (the built-in plain style)
STYLES = ("ATLAS", "CMS", "LHCb2", "ALICE", "ROOT")
#: smallest font size (points) a figure uses for names and numbers, however many rows it has
MIN_FONT = 8.0
#: the built-in style: matplotlib's defaults plus a light grid
_PLAIN = ["default", {"axes.grid": True, "grid.alpha": 0.3}]
_INHERIT = object()
_ACTIVE: contextvars.ContextVar[str | None] = contextvars.ContextVar("jaxlike_style", default=None)


def _check(name):
    if name is None:
        return None
    if name not in STYLES:
        known = ", ".join(repr(s) for s in STYLES)
        raise InvalidArgument(f"style: unknown style {name!r}; known: None, {known}")
    return name


def _rc(name):
    """The matplotlib style (rc dict or list) of a checked style name."""
    if name is None:
        return _PLAIN
    try:
        import mplhep
    except ImportError:
        raise InvalidArgument(
            f"style={name!r} needs mplhep: pip install 'jaxlike[plot]' (or pip install mplhep)"
        ) from None
    return ["default", getattr(mplhep.style, name)]


@contextlib.contextmanager
def style(name=_INHERIT):
    """Context in which figures are made, drawn and saved in a style.

    ``name``: None (the plain built-in style), one of :data:`STYLES` (mplhep; an
    :class:`~jaxlike.exceptions.InvalidArgument` if mplhep is missing or the name unknown), or
    left out: the style of the enclosing ``style(...)`` block (plain outside any).

    Example::

        with style("ATLAS"):
            fig, ax = figure((6, 4))
            ax.plot([0, 1], [0, 1])
            save(fig, "line.png")
    """
    import matplotlib.style as mstyle

    name = _ACTIVE.get() if name is _INHERIT else _check(name)
    rc = _rc(name)
    token = _ACTIVE.set(name)
    try:
        with mstyle.context(rc):
            yield
    finally:
        _ACTIVE.reset(token)


def font_scale() -> float:
    """The active style's text size over 10 pt (1 for the plain style): the larger of its font
    and tick-label sizes (the names on a pulls or ranking axis are tick labels). Figure sizes in
    inches are multiplied by it, so text takes the same share of the canvas in every style
    (and :func:`save` divides the PNG resolution by it)."""
    import matplotlib as mpl
    from matplotlib.font_manager import FontProperties

    if _ACTIVE.get() is None:
        return 1.0
    sizes = [float(mpl.rcParams["font.size"])]
    for key in ("xtick.labelsize", "ytick.labelsize"):
        sizes.append(FontProperties(size=mpl.rcParams[key]).get_size_in_points())
    return max(1.0, max(sizes) / 10.0)


def figure(figsize=(8, 6), **subplots):
    """``(fig, axes)``: a constrained-layout figure and ``fig.subplots(**subplots)`` in the active
    style (:func:`style`); ``figsize`` (inches, for 10 pt text) grows with the style's font."""
    with style():
        fig = _new_figure(figsize)
        ax = fig.subplots(**subplots)
    return fig, ax


def _new_figure(figsize):
    from matplotlib.figure import Figure

    k = font_scale()
    return Figure(figsize=(figsize[0] * k, figsize[1] * k), layout="constrained")


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


def shorten(names, max_chars=40) -> tuple[list[str], list[str]]:
    """``(labels, notes)``: ``names`` as axis labels of at most about ``max_chars`` characters.

    A longer name keeps its head and tail around an ellipsis (names of one analysis often
    share a prefix and differ at the end) and gets a footnote number; ``notes`` holds
    ``"(k) full name"`` for each shortened one, for a footnote. Names that fit are unchanged.

    >>> shorten(["mu", "shape_mcstat_diboson3LISR_CRISR_obs_cuts[0]"], 24)
    (['mu', 'shape_mcst…s_cuts[0] (1)'], ['(1) shape_mcstat_diboson3LISR_CRISR_obs_cuts[0]'])
    """
    labels, notes = [], []
    for name in map(str, names):
        if len(name) <= max_chars:
            labels.append(name)
            continue
        k = len(notes) + 1
        keep = max(4, max_chars - len(f"… ({k})"))
        head = (keep + 1) // 2
        labels.append(f"{name[:head]}…{name[len(name) - (keep - head) :]} ({k})")
        notes.append(f"({k}) {name}")
    return labels, notes


def footnote(ax, notes) -> None:
    """Write ``notes`` (the full names of :func:`shorten`) into ``ax``, an axis reserved for
    them (no frame), one per line under a heading."""
    import matplotlib as mpl

    ax.set_axis_off()
    if notes:
        size = max(MIN_FONT, 0.8 * float(mpl.rcParams["font.size"]))
        text = "\n".join(["shortened labels:", *notes])
        ax.text(0.0, 1.0, text, fontsize=size, va="top", ha="left", transform=ax.transAxes)


def footnote_height(notes) -> float:
    """Inches (at 10 pt text) that the :func:`footnote` of ``notes`` needs (0 without notes)."""
    return 0.0 if not notes else (len(notes) + 1.6) * 1.3 * MIN_FONT / 72.0


def canvas(width, height, notes=(), **subplots):
    """``(fig, ax)``: :func:`figure` of ``width`` × ``height`` inches for the axes ``ax`` plus,
    when there are ``notes``, a footnote row below holding them (:func:`footnote`)."""
    if not notes:
        return figure((width, height), **subplots)
    extra = footnote_height(notes)
    with style():
        fig = _new_figure((width, height + extra))
        top, bottom = fig.subfigures(2, 1, height_ratios=[height, extra])
        ax = top.subplots(**subplots)
        footnote(bottom.subplots(), notes)
    return fig, ax


def axis_label(name, unit=None) -> str:
    """``"name [unit]"`` (``name`` alone without a unit), the axis-label convention.

    >>> axis_label("m", "GeV"), axis_label("Z")
    ('m [GeV]', 'Z')
    """
    return f"{name} [{unit}]" if unit else str(name)


def save(fig, path) -> Path:
    """Write ``fig`` to ``path`` (PNG or PDF by suffix) in the active style and return the path;
    OSError if the folder does not exist or is not writable. A PNG in a style with larger text
    (its canvas grown by :func:`font_scale`) is written at a proportionally lower resolution,
    so it has about the pixel size of the plain style's."""
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    FigureCanvasAgg(fig)
    with style():
        dpi = mpl.rcParams["savefig.dpi"]
        dpi = fig.dpi if dpi == "figure" else float(dpi)
        fig.savefig(path, dpi=dpi / font_scale())
    return path
