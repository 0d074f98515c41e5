"""Figures of a global fit: pulls, the impact ranking and the correlation matrix."""

from __future__ import annotations

import numpy as np

from ._style import GREEN, YELLOW, figure, output_path, save, style

__all__ = ["plot_correlation", "plot_pulls", "plot_ranking"]


def _height(n):
    return max(3.0, 1.2 + 0.32 * n)


def plot_pulls(pulls, path, *, fmt=None):
    """Pulls (θ̂ − θ0)/Δθ_prefit of a :class:`jaxlike.analysis.Pulls` with the constraints
    Δθ_postfit/Δθ_prefit as error bars, on ±1 (green) and ±2 (yellow) bands; returns the path.
    """
    n = len(pulls.names)
    y = np.arange(n)[::-1]
    with style():
        fig, ax = figure((7, _height(n)))
        ax.axvspan(-2, 2, color=YELLOW, lw=0)
        ax.axvspan(-1, 1, color=GREEN, lw=0)
        ax.axvline(0, color="k", ls="--", lw=0.8)
        ax.errorbar(np.asarray(pulls.pull), y, xerr=np.asarray(pulls.constraint), fmt="ko")
        ax.set_yticks(y, pulls.names)
        lim = max(3.0, float(np.max(np.abs(pulls.pull), initial=0.0)) + 1.0)
        ax.set(
            xlim=(-lim, lim),
            ylim=(-0.5, n - 0.5),
            xlabel=r"$(\hat\theta - \theta_0) / \Delta\theta$",
        )
        ax.grid(False)
    return save(fig, output_path(path, fmt))


def plot_ranking(impacts, path, *, pulls=None, top=20, fmt=None):
    """The ``top`` nuisance parameters of a :class:`jaxlike.analysis.Impacts` by post-fit impact
    (cabinetry's ranking plot): pre-fit Δμ (open bars) and post-fit Δμ (filled bars) for the
    up/down variations on the top axis, and on the bottom (twin) axis the pulls with their
    constraints. ``pulls`` (:class:`jaxlike.analysis.Pulls`) gives the pulls of constrained
    parameters; parameters without one (unconstrained, or ``pulls=None``) show θ̂ ± Δθ_postfit.
    Returns the path written.
    """
    order = impacts.order("postfit")[:top]
    n = len(order)
    y = np.arange(n)[::-1]
    s = impacts.shifts[order]
    names = [impacts.names[i] for i in order]
    where = {} if pulls is None else dict(zip(pulls.names, range(len(pulls.names)), strict=True))
    val, err = np.empty(n), np.empty(n)
    for k, (i, name) in enumerate(zip(order, names, strict=True)):
        j = where.get(name)
        if j is None:
            val[k], err[k] = impacts.bestfit[i], impacts.postfit_width[i]
        else:
            val[k], err[k] = pulls.pull[j], pulls.constraint[j]
    with style():
        fig, pax = figure((8, _height(n) + 0.8))
        ax = pax.twiny()  # impacts on the top axis, pulls on the bottom one (drawn above)
        pax.set_zorder(ax.get_zorder() + 1)
        pax.patch.set_visible(False)
        for col, kw in (
            (0, {"fill": False, "edgecolor": "tab:blue"}),
            (1, {"fill": False, "edgecolor": "tab:cyan"}),
            (2, {"color": "tab:blue"}),
            (3, {"color": "tab:cyan"}),
        ):
            label = ("pre-fit" if col < 2 else "post-fit") + (" up" if col % 2 == 0 else " down")
            ax.barh(y, s[:, col], 0.7, label=label, zorder=1 if col < 2 else 0, **kw)
        pax.errorbar(val, y, xerr=err, fmt="ko", label="pull", zorder=3)
        pax.axvline(0, color="grey", lw=0.8)
        pax.set_yticks(y, names)
        pax.set(
            xlim=(-2.5, 2.5),
            ylim=(-0.5, n - 0.5),
            xlabel=r"$(\hat\theta - \theta_0) / \Delta\theta$",
        )
        lim = 1.1 * float(np.max(np.abs(s), initial=0.0)) or 1.0
        ax.set(xlim=(-lim, lim), xlabel=f"Δ{impacts.poi_name}")
        ax.legend(loc="lower right", fontsize="small")
        for a in (ax, pax):
            a.grid(False)
    return save(fig, output_path(path, fmt))


def plot_correlation(names, matrix, path, *, annotate=None, fmt=None):
    """The correlation matrix ``matrix`` of parameters ``names`` (e.g. the pruned output of
    :func:`jaxlike.analysis.correlation_matrix`) as a colour map on [−1, 1], values written in
    the cells when ``annotate`` (default: at most 20 parameters). Returns the path written."""
    matrix = np.asarray(matrix, float)
    n = len(names)
    annotate = n <= 20 if annotate is None else annotate
    size = max(4.0, 1.0 + 0.45 * n)
    label = 0.09 * max((len(x) for x in names), default=0)  # inches for the tick labels
    with style():
        fig, ax = figure((size + label + 1.5, size + label))
        im = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
        fig.colorbar(im, ax=ax, label="correlation")
        ax.set_xticks(np.arange(n), names, rotation=90)
        ax.set_yticks(np.arange(n), names)
        if annotate:
            for i in range(n):
                for j in range(n):
                    color = "w" if abs(matrix[i, j]) > 0.6 else "k"
                    ax.text(
                        j,
                        i,
                        f"{matrix[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize="x-small",
                        color=color,
                    )
        ax.grid(False)
    return save(fig, output_path(path, fmt))
