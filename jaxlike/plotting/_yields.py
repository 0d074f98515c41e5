"""Stacked pre-/post-fit histograms of one channel with the uncertainty band and data/model."""

from __future__ import annotations

import numpy as np

from ._style import canvas, file_stems, output_path, save, shorten
from ._style import style as styled

__all__ = ["plot_yields", "plot_all_yields", "stack_order"]


def stack_order(samples, yields, signal=()) -> list[int]:
    """Indices of ``samples`` from the bottom of the stack to the top: the backgrounds by
    decreasing total yield (the largest at the bottom), then the ``signal`` samples (on top, in
    their given order). Equal yields keep the samples' order.

    >>> stack_order(["ttbar", "sig", "wjets"], [[5.0], [1.0], [9.0]], signal=["sig"])
    [2, 0, 1]
    """
    total = np.asarray(yields, float).reshape(len(samples), -1).sum(axis=1)
    sig = [i for name in signal for i, s in enumerate(samples) if s == name]
    rest = [i for i in np.argsort(-np.nan_to_num(total), kind="stable") if i not in sig]
    return [int(i) for i in rest] + sig


def plot_yields(
    table, channel, path, *, edges=None, logy=False, signal=(), max_chars=50, style=None,
    fmt=None,
):  # fmt: skip
    """Stacked sample histograms of ``channel`` from a :class:`jaxlike.analysis.YieldTable`,
    the total's (linearised) uncertainty as a hatched band, the data with Poisson √n errors, and
    a data/model ratio panel with the relative band.

    Args:
        table, channel: the yields and the channel drawn.
        path: the figure file (PNG or PDF, by suffix or ``fmt``).
        edges: bin edges (default: the bin index, on integer ticks).
        logy: logarithmic event axis.
        signal: names of the signal samples, stacked on top; the backgrounds go below them by
            decreasing yield, the largest at the bottom (:func:`stack_order`).
        max_chars: sample names longer than this are shortened (full names in a footnote).
        style: None (plain) or an mplhep style name (:data:`~jaxlike.plotting.STYLES`).

    The legend sits beside the axes (never on the stack), its entries from the top of the
    stack down, then the band and the data. Returns the path written.

    Example::

        t = jaxlike.analysis.postfit_yields(model, data)
        plot_yields(t, "signal_region", "signal_region_postfit.png", signal=["signal"])
    """
    from matplotlib.patches import Patch

    t = table.channel(channel)
    nbins = len(t["total"])
    xlabel = "bin" if edges is None else "observable"
    edges = np.arange(nbins + 1.0) if edges is None else np.asarray(edges, float)
    centers, widths = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
    total, unc, data = t["total"], t["total_uncertainty"], t["data"]
    order = stack_order(t["samples"], t["yields"], signal)
    every = list(getattr(table, "samples", t["samples"]))  # colours fixed over the channels
    labels, notes = shorten([t["samples"][i] for i in order], max_chars)
    width = 7.2 + 0.075 * max((len(x) for x in labels), default=0)
    with styled(style):
        fig, (ax, rax) = canvas(width, 7, notes, nrows=2, sharex=True, height_ratios=[3, 1])
        base, handles = np.zeros(nbins), []
        for i in order:  # a sample keeps its colour in every channel
            values, c = t["yields"][i], every.index(t["samples"][i]) % 10
            handles.append(ax.stairs(base + values, edges, baseline=base, fill=True,
                                     alpha=0.85, color=f"C{c}"))  # fmt: skip
            base = base + values
        ax.stairs(total, edges, color="k", lw=1)
        band = {"hatch": "///", "fill": False, "lw": 0, "color": "grey"}
        ax.bar(centers, 2 * unc, widths, total - unc, **band)
        entries = list(zip(handles[::-1], labels[::-1], strict=True))  # top of the stack first
        entries.append((Patch(hatch="///", fill=False, edgecolor="grey", lw=0), "uncertainty"))
        if np.all(np.isfinite(data)):
            dots = ax.errorbar(centers, data, np.sqrt(np.maximum(data, 0)), fmt="ko")
            entries.insert(0, (dots, "data"))
            ratio = np.divide(data, total, out=np.full(nbins, np.nan), where=total > 0)
            err = np.divide(
                np.sqrt(np.maximum(data, 0)), total, out=np.zeros(nbins), where=total > 0
            )
            rax.errorbar(centers, ratio, err, fmt="ko")
        rel = np.divide(unc, total, out=np.zeros(nbins), where=total > 0)
        rax.bar(centers, 2 * rel, widths, 1 - rel, **band)
        rax.axhline(1.0, color="k", lw=0.8)
        ax.legend(*zip(*entries, strict=True), loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0.0, fontsize="small", frameon=False)  # fmt: skip
        ax.set_title(f"{channel} ({table.kind.replace('fit', '-fit')})")
        ax.set_ylabel("events")
        top = max(float(np.nanmax(total + unc, initial=0.0)), float(np.nanmax(data, initial=0.0)))
        if logy:
            ax.set_yscale("log")
        else:
            ax.set_ylim(0, 1.25 * top if top > 0 else None)
        rax.set(xlabel=xlabel, ylabel="data / model")
        if xlabel == "bin":  # no fractional bin numbers (a one-bin channel: 0 and 1)
            from matplotlib.ticker import MaxNLocator

            rax.xaxis.set_major_locator(MaxNLocator(integer=True))
        rax.set_xlim(edges[0], edges[-1])
        rax.set_ylim(0.5, 1.5)
        return save(fig, output_path(path, fmt))


def plot_all_yields(table, folder, *, fmt="png", logy=False, signal=(), style=None, prefix=""):
    """One stacked histogram per channel, ``<folder>/<prefix><channel>_<kind>.<fmt>``; returns
    the paths. ``signal`` and ``style`` as for :func:`plot_yields`.

    Channel names are made file-safe by :func:`~jaxlike.plotting.file_stems`: two channels
    whose safe names coincide get distinct files (``-2`` appended), never one file."""
    from pathlib import Path

    folder = Path(folder)
    stems = file_stems(table.channels)
    kw = {"logy": logy, "signal": signal, "style": style}
    return [
        plot_yields(table, c, folder / f"{prefix}{stem}_{table.kind}.{fmt}", **kw)
        for c, stem in zip(table.channels, stems, strict=True)
    ]
