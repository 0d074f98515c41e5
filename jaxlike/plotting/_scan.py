"""1-D profile-likelihood scan with its 1σ/2σ levels and the Hessian parabola."""

from __future__ import annotations

import numpy as np

from ._style import figure, output_path, save
from ._style import style as styled

__all__ = ["plot_profile_scan"]


def plot_profile_scan(scan, path, *, sigma=None, style=None, fmt=None):
    """Δ2NLL of a 1-D :class:`jaxlike.analysis.ProfileScan`, the Δ2NLL = 1 and 4 lines (1σ, 2σ),
    the best fit, and — given the Hessian uncertainty ``sigma`` — the parabola
    ((θ − θ̂)/σ)² the Hessian predicts. Non-converged grid points are drawn as red crosses.
    ``style``: None (plain) or an mplhep style name (:data:`~jaxlike.plotting.STYLES`).
    Returns the path written."""
    x = np.asarray(scan.values[0], float)
    y = np.asarray(scan.delta, float)
    ok = np.asarray(scan.converged, bool)
    best = float(np.asarray(scan.best_values)[0])
    with styled(style):
        fig, ax = figure()
        ax.plot(x[ok], y[ok], "k-", marker="o", ms=3, label="profile likelihood")
        if (~ok).any():
            ax.plot(x[~ok], y[~ok], "rx", label="not converged")
        if sigma is not None and sigma > 0:
            fine = np.linspace(x.min(), x.max(), 200)
            ax.plot(
                fine,
                ((fine - best) / sigma) ** 2,
                "--",
                color="tab:blue",
                label=f"Hessian parabola (σ = {sigma:.3g})",
            )
        for level, name in ((1.0, "1σ"), (4.0, "2σ")):
            ax.axhline(level, color="grey", ls=":", lw=1)
            ax.text(x.max(), level, f" {name}", va="center", ha="left", color="grey")
        ax.axvline(best, color="grey", lw=0.8)
        top = max(5.0, 1.1 * float(np.nanmax(y[ok], initial=0.0)))
        ax.set(
            xlim=(x.min(), x.max()),
            ylim=(min(0.0, float(np.nanmin(y, initial=0.0))), top),
            xlabel=scan.names[0],
            ylabel=r"$-2\Delta\ln L$",
        )
        ax.legend(loc="upper center")
        return save(fig, output_path(path, fmt))
