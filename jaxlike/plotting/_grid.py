"""2-D profile-likelihood map with its 2-dof confidence contours, best fit and reference point."""

from __future__ import annotations

import math

import numpy as np

from ._style import figure, output_path, save
from ._style import style as styled

__all__ = ["plot_profile_grid"]


#: 0.68 is read as the one-sigma level 0.682689 (so its contour is Δ2NLL = 2.2958)
_ONE_SIGMA = math.erf(1.0 / math.sqrt(2.0))


def _threshold(cl: float) -> float:
    """F⁻¹_χ²₂(cl) = −2 ln(1 − cl), the 2-dof Wilks threshold on Δ2NLL."""
    cl = _ONE_SIGMA if abs(cl - 0.68) < 1e-12 else cl
    return -2.0 * math.log1p(-cl)


def plot_profile_grid(result, path, *, reference=None, levels=(0.68, 0.95), style=None, fmt=None):
    """Filled Δ2NLL(x, y) of a :class:`jaxlike.scan.ProfileGrid` with contours where
    Δ2NLL = F⁻¹_χ²₂(CL) = −2 ln(1 − CL) (2 degrees of freedom, Wilks: 2.2958 for 68.27 %,
    5.9915 for 95 %; 0.68 stands for 68.27 %), the best-fit point (+) and a ``reference``
    point (e.g. the Standard Model, ``{"C_V": 6.613, "C_T": 0}``; ★).
    Non-converged grid points are marked ×. ``style``: None (plain) or an mplhep style name
    (:data:`~jaxlike.plotting.STYLES`). Returns the path written.
    """
    xname, yname = result.names
    x, y = np.asarray(result.x, float), np.asarray(result.y, float)
    d = np.asarray(result.delta, float).T  # [ny, nx] for contour
    ok = np.asarray(result.converged, bool).T
    dd = np.where(ok, d, np.nan)
    with styled(style):
        fig, ax = figure(figsize=(8, 6.5))
        finite = dd[np.isfinite(dd)]
        top = max(float(np.nanpercentile(finite, 99)) if finite.size else 1.0, 7.0)
        if x.size > 1 and y.size > 1:
            mesh = ax.pcolormesh(x, y, np.clip(dd, 0, top), shading="auto", cmap="viridis_r",
                                 vmin=0.0, vmax=top)  # fmt: skip
            fig.colorbar(mesh, ax=ax, label=r"$-2\Delta\ln L$")
            colors = ("white", "orange", "red", "magenta")
            for k, cl in enumerate(sorted(levels)):
                lev = _threshold(cl)
                if finite.size and finite.min() < lev < finite.max():
                    ax.contour(x, y, dd, levels=[lev], colors=colors[k % 4], linewidths=2)
                    text = f"{100 * cl:.4g}% CL (Δ = {lev:.4g})"
                    ax.plot([], [], color=colors[k % 4], lw=2, label=text)
        if (~ok).any():
            jy, jx = np.nonzero(~ok)
            ax.plot(x[jx], y[jy], "x", color="k", ms=4, label="not converged")
        bx, by = result.best[xname], result.best[yname]
        ax.plot([bx], [by], "P", color="black", ms=11, mec="white", label="best fit")
        if reference:
            rx, ry = float(reference.get(xname, np.nan)), float(reference.get(yname, np.nan))
            if np.isfinite(rx) and np.isfinite(ry):
                ax.plot([rx], [ry], "*", color="gold", ms=16, mec="k", label="reference (SM)")
        ax.set(xlabel=xname, ylabel=yname, xlim=(x.min(), x.max()), ylim=(y.min(), y.max()))
        if result.fixed:
            shown = ", ".join(f"{k}={v:g}" for k, v in list(result.fixed.items())[:3])
            more = ", ..." if len(result.fixed) > 3 else ""
            ax.set_title(f"profiled; fixed {shown}{more}", fontsize=11)
        ax.legend(loc="best", fontsize=10, framealpha=0.8)
        return save(fig, output_path(path, fmt))
