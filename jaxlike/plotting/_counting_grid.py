"""Limits of an N-D counting grid in physics units: the 2-D limit map over two of its axes
(e.g. m × cτ, log axes where the grid says so) and excluded coupling bands over a mass axis."""

from __future__ import annotations

import numpy as np

from ..exceptions import InvalidArgument
from ._style import figure, output_path, save
from ._style import style as styled

__all__ = ["plot_counting_grid", "plot_coupling_band"]

_FIELDS = {"bayes_ul": "Bayesian", "ul_obs": "CLs", "ul_obs_toys": "toy CLs"}


def plot_counting_grid(
    result, path, *, field=None, level=0, mark=None, significance=False, style=None, fmt=None
):
    """The observed upper limit (or, ``significance=True``, the local significance) of a
    :class:`jaxlike.scan.CountingGridResult` with two axes, coloured in log scale over the grid
    (x: first axis, y: second; an axis with ``log=True`` is drawn in log scale), titles and units
    from the grid's axes and POI (``"σ [fb]"``), not generic names.

    ``field``: ``"bayes_ul"``, ``"ul_obs"`` or ``"ul_obs_toys"`` (default the first present);
    ``level``: index into ``result.cl``; ``mark``: optional (x, y, text) point to mark (e.g. the
    injected signal); non-converged points are marked ×, points without acceptance are white.
    ``style``: None or an mplhep style name. Returns the path written.
    """
    if len(result.axes) != 2:
        raise InvalidArgument(f"a 2-D grid is needed, this one has {len(result.axes)} axes")
    ax_x, ax_y = result.axes
    if significance:
        if result.significance is None:
            raise InvalidArgument("the scan has no local significance (method 'cls')")
        z = np.asarray(result.significance, float)
        label = "local significance $Z = \\sqrt{q_0}$"
        title = "local significance"
    else:
        if field is None:
            field = next((f for f in _FIELDS if getattr(result, f, None) is not None), None)
        values = getattr(result, field, None) if field is not None else None
        if values is None:
            raise InvalidArgument(f"the scan has no field {field!r} to plot")
        z = np.asarray(values, float)[..., level]
        cl = 100 * result.cl[level]
        unit = f" [{result.poi_unit}]" if result.poi_unit else ""
        poi = result.poi_label or result.poi_name
        label = f"{cl:.4g}% {_FIELDS.get(field, field)} upper limit on {poi}{unit}"
        title = f"{_FIELDS.get(field, field)} upper limits, {cl:.4g}% level"
    x, y = ax_x.values, ax_y.values
    ok = np.asarray(result.converged, bool)
    shown = np.where(np.isfinite(z) & ok, z, np.nan).T  # [ny, nx]
    with styled(style):
        from matplotlib.colors import LogNorm

        fig, ax = figure(figsize=(8, 6.5))
        finite = shown[np.isfinite(shown) & (shown > 0)]
        norm = None
        if not significance and finite.size:
            norm = LogNorm(vmin=finite.min(), vmax=finite.max())
        mesh = ax.pcolormesh(x, y, shown, shading="nearest", cmap="viridis", norm=norm)
        fig.colorbar(mesh, ax=ax, label=label)
        if (~ok).any():
            jx, jy = np.nonzero(~ok)
            ax.plot(x[jx], y[jy], "x", color="r", ms=5, label="not converged")
        if mark is not None:
            ax.plot([mark[0]], [mark[1]], "*", color="gold", ms=16, mec="k", label=mark[2])
        if ax_x.log:
            ax.set_xscale("log")
        if ax_y.log:
            ax.set_yscale("log")
        ax.set(xlabel=ax_x.title, ylabel=ax_y.title, title=title)
        if (~ok).any() or mark is not None:
            ax.legend(loc="best", fontsize=10, framealpha=0.8)
        return save(fig, output_path(path, fmt))


def plot_coupling_band(
    masses, intervals, path, *, mass_title="mass", coupling_title="coupling", style=None, fmt=None
):
    """Excluded regions of a coupling over a mass axis: at every mass the excluded intervals
    [lower, upper] of a :class:`jaxlike.infer.ExcludedIntervals` batched over masses, filled,
    in log scale of the coupling. ``mass_title``/``coupling_title``: axis titles with units
    (e.g. ``"$m_{h'}$ [GeV]"``, ``"$\\sin\\theta$"``). Returns the path written."""
    masses = np.asarray(masses, float)
    lo, hi = np.asarray(intervals.lower, float), np.asarray(intervals.upper, float)
    if lo.shape[0] != masses.size:
        raise InvalidArgument(f"{lo.shape[0]} interval rows for {masses.size} masses")
    with styled(style):
        fig, ax = figure(figsize=(8, 6))
        for k in range(lo.shape[1]):
            has = np.isfinite(lo[:, k]) & np.isfinite(hi[:, k])
            if not has.any():
                continue
            ax.fill_between(masses, np.where(has, lo[:, k], np.nan), np.where(has, hi[:, k],
                            np.nan), color="tab:blue", alpha=0.5, lw=0,
                            label="excluded" if k == 0 else None)  # fmt: skip
            ax.plot(masses[has], lo[has, k], color="tab:blue", lw=1.5)
            ax.plot(masses[has], hi[has, k], color="tab:blue", lw=1.5)
        ax.set_yscale("log")
        ax.set(xlabel=mass_title, ylabel=coupling_title, title="excluded couplings")
        ax.legend(loc="best", fontsize=10)
        return save(fig, output_path(path, fmt))
