"""Stacked pre-/post-fit histograms of one channel with the uncertainty band and data/model."""

from __future__ import annotations

import numpy as np

from ._style import figure, file_stems, output_path, save, style

__all__ = ["plot_yields", "plot_all_yields"]


def plot_yields(table, channel, path, *, edges=None, logy=False, fmt=None):
    """Stacked sample histograms of ``channel`` from a :class:`jaxlike.analysis.YieldTable`,
    the total's (linearised) uncertainty as a hatched band, the data with Poisson √n errors, and
    a data/model ratio panel with the relative band. ``edges``: bin edges (default: bin index).

    Returns the path written (PNG or PDF, by suffix or ``fmt``).

    Example::

        t = jaxlike.analysis.postfit_yields(model, data)
        plot_yields(t, "signal_region", "signal_region_postfit.png")
    """
    from matplotlib.patches import Patch

    t = table.channel(channel)
    nbins = len(t["total"])
    xlabel = "bin" if edges is None else "observable"
    edges = np.arange(nbins + 1.0) if edges is None else np.asarray(edges, float)
    centers, widths = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
    total, unc, data = t["total"], t["total_uncertainty"], t["data"]
    with style():
        fig, (ax, rax) = figure((8, 7), nrows=2, sharex=True, height_ratios=[3, 1])
        base = np.zeros(nbins)
        for name, values in zip(t["samples"], t["yields"], strict=True):
            ax.stairs(base + values, edges, baseline=base, fill=True, label=name, alpha=0.85)
            base = base + values
        ax.stairs(total, edges, color="k", lw=1)
        band = {"hatch": "///", "fill": False, "lw": 0, "color": "grey"}
        ax.bar(centers, 2 * unc, widths, total - unc, **band)
        if np.all(np.isfinite(data)):
            ax.errorbar(centers, data, np.sqrt(np.maximum(data, 0)), fmt="ko", label="data")
            ratio = np.divide(data, total, out=np.full(nbins, np.nan), where=total > 0)
            err = np.divide(
                np.sqrt(np.maximum(data, 0)), total, out=np.zeros(nbins), where=total > 0
            )
            rax.errorbar(centers, ratio, err, fmt="ko")
        rel = np.divide(unc, total, out=np.zeros(nbins), where=total > 0)
        rax.bar(centers, 2 * rel, widths, 1 - rel, **band)
        rax.axhline(1.0, color="k", lw=0.8)
        handles, labels = ax.get_legend_handles_labels()
        handles.append(Patch(hatch="///", fill=False, edgecolor="grey", lw=0))
        labels.append("uncertainty")
        ax.legend(handles, labels, loc="best", fontsize="small")
        ax.set_title(f"{channel} ({table.kind.replace('fit', '-fit')})")
        ax.set_ylabel("events")
        if logy:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        rax.set(xlabel=xlabel, ylabel="data / model")
        rax.set_xlim(edges[0], edges[-1])
        rax.set_ylim(0.5, 1.5)
    return save(fig, output_path(path, fmt))


def plot_all_yields(table, folder, *, fmt="png", logy=False):
    """One stacked histogram per channel, ``<folder>/<channel>_<kind>.<fmt>``; returns the paths.

    Channel names are made file-safe by :func:`~jaxlike.plotting._style.file_stems`: two
    channels whose safe names coincide get distinct files (``-2`` appended), never one file."""
    from pathlib import Path

    folder = Path(folder)
    stems = file_stems(table.channels)
    return [
        plot_yields(table, c, folder / f"{stem}_{table.kind}.{fmt}", logy=logy)
        for c, stem in zip(table.channels, stems, strict=True)
    ]
