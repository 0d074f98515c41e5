"""Figures of a limit scan: the Brazil band of upper limits, the local significance, and the
CLs exclusion map of a two-coordinate patch scan (what ``jaxlike plot SCAN.h5`` draws)."""

from __future__ import annotations

import warnings

import numpy as np

from ._style import GREEN, YELLOW, axis_label, figure, output_path, save
from ._style import style as styled

__all__ = ["NoContourWarning", "plot_brazil_band", "plot_exclusion", "plot_significance"]

#: default axis labels: a mass in GeV, a limit on the signal strength
MASS_LABEL = axis_label("m", "GeV")
VETO_COLOR = "0.88"


class NoContourWarning(UserWarning):
    """:func:`plot_exclusion` drew no exclusion contour (too few or collinear points)."""


def _vetoes(vetoes) -> np.ndarray:
    v = np.asarray([] if vetoes is None else vetoes, float).reshape(-1, 2)
    return v[np.all(np.isfinite(v), axis=1) & (v[:, 0] < v[:, 1])]


def veto_gaps(x, vetoes, *columns):
    """``(x, *columns)`` with a NaN row inserted between neighbouring points that a vetoed
    range ``[lo, hi]`` (``vetoes`` [V, 2]) lies between, so lines and bands drawn through them
    break there instead of bridging the veto. ``x`` must be sorted; points inside a veto (a
    scan with ``skip_vetoed = false``) are kept and bridged as measured.

    >>> veto_gaps([1.0, 2.0, 4.0], [[2.5, 3.0]], [5.0, 6.0, 7.0])
    (array([1., 2., 3., 4.]), array([ 5.,  6., nan,  7.]))
    """
    x = np.asarray(x, float)
    v = _vetoes(vetoes)
    cols = [np.asarray(c, float) for c in columns]
    if x.size < 2 or not v.size:
        return (x, *cols)
    a, b = x[:-1, None], x[1:, None]
    between = np.any((a <= v[None, :, 0]) & (v[None, :, 1] <= b), axis=1)  # [H-1]
    at = np.flatnonzero(between) + 1
    mid = 0.5 * (x[at - 1] + x[at])
    out = [np.insert(x, at, mid)]
    for c in cols:
        out.append(np.insert(c, at, np.full((len(at), *c.shape[1:]), np.nan), axis=0))
    return tuple(out)


def _shade_vetoes(ax, vetoes, x) -> None:
    """Light bands over the vetoed ranges inside the drawn x range (one legend entry)."""
    v = _vetoes(vetoes)
    if not v.size or not np.any(np.isfinite(x)):
        return
    lo, hi = np.nanmin(x), np.nanmax(x)
    label = "vetoed"
    for a, b in v:
        if b > lo and a < hi:
            ax.axvspan(max(a, lo), min(b, hi), color=VETO_COLOR, lw=0, zorder=0, label=label)
            label = None


def _mark_boundaries(ax, boundaries):
    """Dotted vertical lines at the boundaries between the segments of a segmented scan."""
    label = "segment boundary"
    for b in np.atleast_1d(boundaries if boundaries is not None else []):
        ax.axvline(float(b), color="tab:purple", ls=":", lw=1.2, label=label)
        label = None


def plot_brazil_band(
    x, observed, expected, path, *, xlabel=MASS_LABEL, ylabel="upper limit on μ",
    logy=False, vetoes=None, veto_band=True, style=None, fmt=None, boundaries=None,
):  # fmt: skip
    """The Brazil band of upper limits versus ``x``: the observed limit (solid, with markers
    below 30 points), the expected median (dashed) and the expected ±1σ (green) and ±2σ
    (yellow) bands.

    Args:
        x: the hypotheses' coordinate [H] (e.g. the mass), in drawing order.
        observed: observed upper limits [H].
        expected: expected upper limits [H, 5], sorted along the last axis
            (−2σ, −1σ, median, +1σ, +2σ).
        path: the figure file (PNG or PDF by suffix or ``fmt``).
        xlabel, ylabel: the axis labels (``"name [unit]"``, :func:`axis_label`).
        logy: a logarithmic limit axis (else linear from 0).
        vetoes: vetoed ranges [V, 2] of ``x`` (e.g. the π⁰, η, η′ windows): lines and bands
            break there (:func:`veto_gaps`), as they do at NaN limits.
        veto_band: shade the vetoed ranges lightly (with a legend entry).
        style: None (plain) or an mplhep style name (:data:`~jaxlike.plotting.STYLES`).
        boundaries: masses between the segments of a segmented scan, marked by dotted lines.

    Returns the path written.
    """
    x0 = np.asarray(x, float)
    x, obs, exp = veto_gaps(x0, vetoes, observed, expected)
    with styled(style):
        fig, ax = figure()
        if veto_band:
            _shade_vetoes(ax, vetoes, x0)
        ax.fill_between(x, exp[:, 0], exp[:, 4], color=YELLOW, lw=0, label="expected ±2σ")
        ax.fill_between(x, exp[:, 1], exp[:, 3], color=GREEN, lw=0, label="expected ±1σ")
        ax.plot(x, exp[:, 2], "k--", label="expected")
        ax.plot(x, obs, "k-", marker="o" if len(x0) < 30 else None, ms=3, label="observed")
        _mark_boundaries(ax, boundaries)
        ax.set(xlabel=xlabel, ylabel=ylabel)
        if len(x0) > 1:
            ax.set_xlim(np.nanmin(x0), np.nanmax(x0))
        if logy:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.legend(loc="best")
        return save(fig, output_path(path, fmt))


def plot_significance(
    x, z, path, *, xlabel=MASS_LABEL, vetoes=None, veto_band=True, style=None, fmt=None,
    boundaries=None,
):  # fmt: skip
    """The local significance ``z`` [σ] versus ``x`` with the 3σ and 5σ lines; the axis
    spans at least [−1, 5.5]. Non-finite values are left out of the axis range; the curve
    breaks at NaN values and across ``vetoes`` (shaded with ``veto_band``), as in
    :func:`plot_brazil_band`. ``style``: None or an mplhep style; ``boundaries``: segment
    boundaries (dotted lines).

    Returns the path written (PNG or PDF by the suffix of ``path`` or ``fmt``).
    """
    x0 = np.asarray(x, float)
    x, z = veto_gaps(x0, vetoes, np.asarray(z, float))
    with styled(style):
        fig, ax = figure()
        if veto_band:
            _shade_vetoes(ax, vetoes, x0)
        ax.plot(x, z, "k-", marker="o" if len(x0) < 30 else None, ms=3, label="local significance")
        for level, color in ((3, "tab:orange"), (5, "tab:red")):
            ax.axhline(level, color=color, ls="--", lw=1, label=f"{level}σ")
        ax.axhline(0, color="grey", lw=0.8)
        _mark_boundaries(ax, boundaries)
        finite = z[np.isfinite(z)] if np.any(np.isfinite(z)) else np.zeros(1)
        ax.set_ylim(min(-1.0, finite.min() - 0.5), max(5.5, finite.max() + 0.5))
        ax.set(xlabel=xlabel, ylabel="local significance Z [σ]")
        if len(x0) > 1:
            ax.set_xlim(np.nanmin(x0), np.nanmax(x0))
        ax.legend(loc="best")
        return save(fig, output_path(path, fmt))


def plot_exclusion(
    values, cls_obs, cls_exp, path, *, cl=0.95, test_poi=1.0, labels=None, style=None, fmt=None
):
    """The CLs exclusion map of hypotheses on two coordinates: the observed CLs at the tested
    POI value as coloured points (log scale), and the contours CLs = 1 − ``cl`` of the observed
    (solid), the expected median (dashed) and the expected ±1σ (dotted) CLs, drawn on a
    Delaunay triangulation of the points with finite values.

    Args:
        values: the hypotheses' coordinates [H, 2].
        cls_obs: observed CLs [H].
        cls_exp: expected CLs [H, 5] (−2σ … +2σ, sorted here).
        path: the figure file (PNG or PDF by suffix or ``fmt``).
        cl: the confidence level of the contours.
        test_poi: the POI value CLs was computed at (named on the colour bar).
        labels: the two axis labels (default "coordinate 1", "coordinate 2").
        style: None (plain) or an mplhep style name (:data:`~jaxlike.plotting.STYLES`).

    Without enough non-collinear points for a contour the map is drawn without one and a
    :class:`NoContourWarning` is issued. Returns the path written.
    """
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D
    from matplotlib.tri import Triangulation

    values = np.asarray(values, float)
    alpha = 1.0 - cl
    labels = list(labels or [])
    x, y = values[:, 0], values[:, 1]
    cls = np.asarray(cls_obs, float)
    exp = np.sort(np.asarray(cls_exp, float), axis=1)
    ok = np.isfinite(cls) & np.all(np.isfinite(exp), axis=1)
    with styled(style):
        fig, ax = figure()
        shown = np.clip(cls, 1e-6, 1.0)
        points = ax.scatter(x, y, c=shown, norm=LogNorm(shown.min(), 1.0), s=30, zorder=3)
        fig.colorbar(points, ax=ax, label=f"observed CLs at μ = {test_poi:g}")
        handles = []
        try:
            tri = Triangulation(x[ok], y[ok])
            for z, ls, name in (
                (cls[ok], "-", "observed"),
                (exp[ok, 2], "--", "expected"),
                (exp[ok, 1], ":", "expected ±1σ"),
                (exp[ok, 3], ":", None),
            ):
                with warnings.catch_warnings():  # a level outside the data range: no line
                    warnings.simplefilter("ignore", UserWarning)
                    ax.tricontour(tri, z, levels=[alpha], colors="k", linestyles=ls)
                if name:
                    handles.append(Line2D([], [], color="k", ls=ls, label=name))
        except (ValueError, RuntimeError) as err:  # too few or collinear points
            warnings.warn(f"no exclusion contour ({err})", NoContourWarning, stacklevel=2)
        for v, axis in ((x, ax.set_xlim), (y, ax.set_ylim)):
            pad = 0.05 * (v.max() - v.min()) or 0.5
            axis(v.min() - pad, v.max() + pad)
        names = labels if len(labels) == 2 else ["coordinate 1", "coordinate 2"]
        ax.set(xlabel=names[0], ylabel=names[1], title=f"{100 * cl:g}% CL exclusion")
        if handles:
            ax.legend(handles=handles, loc="best")
        return save(fig, output_path(path, fmt))
