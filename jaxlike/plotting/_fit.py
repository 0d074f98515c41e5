"""Figures of a global fit: pulls, the impact ranking and the correlation matrix.

The figures grow with their content (one row per parameter, at least :data:`MIN_FONT` points
for names and numbers), so 200 parameters stay readable at 100 % zoom; names longer than
``max_chars`` are shortened with an ellipsis and listed in full in a footnote
(:func:`~jaxlike.plotting.shorten`).
"""

from __future__ import annotations

import numpy as np

from ._style import GREEN, MIN_FONT, YELLOW, canvas, output_path, save, shorten
from ._style import style as styled

__all__ = ["plot_correlation", "plot_pulls", "plot_ranking"]

_ROW = 0.26  # inches per parameter row (10 pt names)
_CHAR = 0.08  # inches per character of a 10 pt name


def _label_width(labels) -> float:
    return _CHAR * max((len(x) for x in labels), default=0)


def _names_axis(axis, ticks, labels, **kw) -> None:
    """Put one name per tick on ``axis`` (no minor ticks: the mplhep styles add them)."""
    from matplotlib.ticker import NullLocator

    axis.set_ticks(ticks, labels, **kw)
    axis.set_minor_locator(NullLocator())


def _largest(key, n_max):
    """Indices of the ``n_max`` largest ``key`` values, in their original order (all for None)."""
    key = np.nan_to_num(np.asarray(key, float), nan=np.inf)
    if n_max is None or n_max >= key.size:
        return np.arange(key.size)
    if n_max < 1:
        raise ValueError(f"max_pars must be at least 1, not {n_max}")
    return np.sort(np.argsort(-key, kind="stable")[:n_max])


def plot_pulls(pulls, path, *, max_pars=None, max_chars=50, style=None, fmt=None):
    """Pulls (θ̂ − θ0)/Δθ_prefit of a :class:`jaxlike.analysis.Pulls` with the constraints
    Δθ_postfit/Δθ_prefit as error bars, on ±1 (green) and ±2 (yellow) bands, one row per
    parameter in the model's order.

    Args:
        pulls: the pulls.
        path: the figure file (PNG or PDF by suffix or ``fmt``).
        max_pars: draw only this many parameters, those with the largest |pull| (default: all).
        max_chars: names longer than this are shortened (full names in a footnote).
        style: None (plain) or an mplhep style name (:data:`~jaxlike.plotting.STYLES`).

    Returns the path written.
    """
    pull, cons = np.asarray(pulls.pull, float), np.asarray(pulls.constraint, float)
    keep = _largest(np.abs(pull), max_pars)
    labels, notes = shorten([pulls.names[i] for i in keep], max_chars)
    n = len(keep)
    y = np.arange(n)[::-1]
    with styled(style):
        fig, ax = canvas(3.8 + _label_width(labels), 1.4 + _ROW * n, notes)
        ax.axvspan(-2, 2, color=YELLOW, lw=0)
        ax.axvspan(-1, 1, color=GREEN, lw=0)
        ax.axvline(0, color="k", ls="--", lw=0.8)
        ax.errorbar(pull[keep], y, xerr=cons[keep], fmt="ko", ms=4)
        _names_axis(ax.yaxis, y, labels)
        lim = max(3.0, float(np.max(np.abs(pull[keep]), initial=0.0)) + 1.0)
        ax.set(xlim=(-lim, lim), ylim=(-0.5, n - 0.5),
               xlabel=r"$(\hat\theta - \theta_0) / \Delta\theta$")  # fmt: skip
        if n < len(pull):
            ax.set_title(f"{n} of {len(pull)} parameters (largest |pull|)", fontsize="medium")
        ax.grid(False)
        return save(fig, output_path(path, fmt))


def _pull_values(impacts, pulls, order):
    """(value, error) per ranked parameter: the pull and constraint where ``pulls`` has the
    parameter, else θ̂ ± Δθ_postfit."""
    where = {} if pulls is None else dict(zip(pulls.names, range(len(pulls.names)), strict=True))
    val, err = np.empty(len(order)), np.empty(len(order))
    for k, i in enumerate(order):
        j = where.get(impacts.names[i])
        if j is None:
            val[k], err[k] = impacts.bestfit[i], impacts.postfit_width[i]
        else:
            val[k], err[k] = pulls.pull[j], pulls.constraint[j]
    return val, err


def plot_ranking(impacts, path, *, pulls=None, top=20, max_chars=50, style=None, fmt=None):
    """The ``top`` nuisance parameters of a :class:`jaxlike.analysis.Impacts` in cabinetry's
    ranking order (:meth:`~jaxlike.analysis.Impacts.order`: the larger post-fit |Δμ|, largest
    first): pre-fit Δμ (open bars) and post-fit Δμ (filled bars) for the up/down variations on
    the top axis, and on the bottom (twin) axis the pulls with their constraints. ``pulls``
    (:class:`jaxlike.analysis.Pulls`) gives the pulls of constrained parameters; parameters
    without one (unconstrained, or ``pulls=None``) show θ̂ ± Δθ_postfit. ``top=None`` draws
    every parameter. The legend sits above the axes, never on the bars; names longer than
    ``max_chars`` are shortened (full names in a footnote); ``style``: None or an mplhep style.
    Returns the path written.
    """
    from matplotlib.patches import Patch

    if top is not None and top < 1:
        raise ValueError(f"top must be at least 1, not {top}")
    order = impacts.order()[:top]
    n = len(order)
    y = np.arange(n)[::-1]
    s = impacts.shifts[order]
    labels, notes = shorten([impacts.names[i] for i in order], max_chars)
    val, err = _pull_values(impacts, pulls, order)
    bars = (
        ("pre-fit impact, θ = θ̂ + Δθ", {"fill": False, "edgecolor": "tab:blue", "lw": 1.2}),
        ("pre-fit impact, θ = θ̂ − Δθ", {"fill": False, "edgecolor": "tab:cyan", "lw": 1.2}),
        ("post-fit impact, θ = θ̂ + Δθ", {"color": "tab:blue"}),
        ("post-fit impact, θ = θ̂ − Δθ", {"color": "tab:cyan"}),
    )
    with styled(style):
        fig, pax = canvas(4.6 + _label_width(labels), 2.2 + _ROW * 1.15 * n, notes)
        ax = pax.twiny()  # impacts on the top axis, pulls on the bottom one (drawn above)
        pax.set_zorder(ax.get_zorder() + 1)
        pax.patch.set_visible(False)
        for col, (_, kw) in enumerate(bars):
            ax.barh(y, s[:, col], 0.7, zorder=1 if col < 2 else 0, **kw)
        dots = pax.errorbar(val, y, xerr=err, fmt="ko", ms=4, zorder=3)
        pax.axvline(0, color="grey", lw=0.8)
        _names_axis(pax.yaxis, y, labels)
        pax.set(xlim=(-2.5, 2.5), ylim=(-0.5, n - 0.5),
                xlabel=r"$(\hat\theta - \theta_0) / \Delta\theta$")  # fmt: skip
        lim = 1.1 * float(np.nanmax(np.abs(s), initial=0.0)) or 1.0
        ax.set(xlim=(-lim, lim), xlabel=f"Δ{impacts.poi_name}")
        handles = [Patch(**kw) for _, kw in bars] + [dots]
        free = pulls is None or any(impacts.names[i] not in pulls.names for i in order)
        pull = "pull (θ̂ − θ0)/Δθ" + ("; free parameters: θ̂ ± Δθ" if free else "")
        texts = [label for label, _ in bars] + [pull]
        rows = [0, 1, 4, 2, 3]  # two columns, pre-fit | post-fit, the pull below
        handles, texts = [handles[i] for i in rows], [texts[i] for i in rows]
        ax.figure.legend(handles, texts, loc="outside upper center", ncols=2,
                         fontsize="small", frameon=False)  # fmt: skip
        for a in (ax, pax):
            a.grid(False)
        return save(fig, output_path(path, fmt))


def plot_correlation(
    names, matrix, path, *, annotate=None, max_pars=None, max_chars=40, style=None, fmt=None
):
    """The correlation matrix ``matrix`` of parameters ``names`` (e.g. the pruned output of
    :func:`jaxlike.analysis.correlation_matrix`) as a colour map on [−1, 1], values written in
    the cells when ``annotate`` (default: at most 20 parameters).

    The cells shrink with the number of parameters down to a size that still holds an
    :data:`~jaxlike.plotting.MIN_FONT` name, so the figure grows instead; ``max_pars`` keeps
    only the parameters with the largest off-diagonal |ρ| (in their order); names longer than
    ``max_chars`` are shortened (full names in a footnote); ``style``: None or an mplhep style.
    Returns the path written."""
    matrix = np.asarray(matrix, float)
    off = np.abs(matrix - np.diag(np.diag(matrix))) if matrix.size else matrix
    keep = _largest(off.max(axis=1, initial=0.0), max_pars)
    matrix = matrix[np.ix_(keep, keep)]
    labels, notes = shorten([names[i] for i in keep], max_chars)
    n = len(keep)
    annotate = n <= 20 if annotate is None else annotate
    cell = float(np.clip(9.0 / max(n, 1), 0.17, 0.45))  # inches
    size = max(MIN_FONT, min(10.0, 0.62 * 72 * cell))  # points: the name fits its row
    label = _CHAR * size / 10 * max((len(x) for x in labels), default=0)
    with styled(style):
        fig, ax = canvas(cell * n + label + 1.8, cell * n + label + 0.6, notes)
        im = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
        ax.figure.colorbar(im, ax=ax, label="correlation", shrink=min(1.0, 6.0 / (cell * n + 1)))
        _names_axis(ax.xaxis, np.arange(n), labels, rotation=90, fontsize=size)
        _names_axis(ax.yaxis, np.arange(n), labels, fontsize=size)
        if annotate:
            for i in range(n):
                for j in range(n):
                    color = "w" if abs(matrix[i, j]) > 0.6 else "k"
                    ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center",
                            fontsize=max(MIN_FONT, 0.3 * 72 * cell), color=color)  # fmt: skip
        if n < len(names):
            ax.set_title(f"{n} of {len(names)} parameters (largest |correlation|)",
                         fontsize="medium")  # fmt: skip
        ax.grid(False)
        return save(fig, output_path(path, fmt))
