"""Corner plot of posterior draws: 1-D marginals on the diagonal, 2-D marginals below."""

from __future__ import annotations

import numpy as np

from ._style import figure, output_path, save
from ._style import style as styled

__all__ = ["plot_corner"]


def _hpd_levels(hist, probs):
    """Density thresholds whose super-level sets hold ``probs`` of the histogram mass
    (highest-posterior-density regions of the 2-D marginal)."""
    flat = np.sort(hist.ravel())[::-1]
    cum = np.cumsum(flat) / max(flat.sum(), 1e-300)
    return [flat[min(np.searchsorted(cum, p), flat.size - 1)] for p in probs]


def plot_corner(
    posterior, names, path, *, reference=None, bins=40, probs=(0.68, 0.95), title=None,
    style=None, fmt=None,
):  # fmt: skip
    """Corner plot of the parameters ``names`` of a :class:`~jaxlike.bayes.Posterior`.

    Diagonal: histogram of the pooled draws of each parameter (the 1-D marginal). Below the
    diagonal: the 2-D marginal as a histogram with the contours of its highest-density regions
    holding ``probs`` (68% and 95%) of the draws. ``reference`` ({name: value}, e.g. the SM
    point) is drawn as lines and a star. Pass a mirrored posterior
    (:meth:`Posterior.mirrored`) to show the symmetric marginals of parameters that enter
    only squared. ``style``: None (plain) or an mplhep style name
    (:data:`~jaxlike.plotting.STYLES`). Returns the path written.
    """
    with styled(style):
        k = len(names)
        x = {n: posterior.pooled(n) for n in names}
        fig, axes = figure(figsize=(2.6 * k + 0.6, 2.6 * k + 0.4), nrows=k, ncols=k, squeeze=False)
        ranges = {}
        for n in names:
            lo, hi = np.quantile(x[n], [0.0005, 0.9995])
            pad = 0.05 * (hi - lo or 1.0)
            ranges[n] = (lo - pad, hi + pad)
        ref = reference or {}
        for i, ni in enumerate(names):
            for j, nj in enumerate(names):
                ax = axes[i][j]
                if j > i:
                    ax.set_visible(False)
                    continue
                if i == j:
                    ax.hist(
                        x[ni],
                        bins=bins,
                        range=ranges[ni],
                        density=True,
                        histtype="step",
                        color="C0",
                    )
                    if ni in ref:
                        ax.axvline(ref[ni], color="C3", lw=1.2)
                    ax.set_yticks([])
                else:
                    h, xe, ye = np.histogram2d(
                        x[nj], x[ni], bins=bins, range=[ranges[nj], ranges[ni]]
                    )
                    ax.pcolormesh(xe, ye, h.T, cmap="Blues", rasterized=True)
                    from scipy.ndimage import gaussian_filter

                    h = gaussian_filter(h, 1.0)  # contours of a lightly smoothed density
                    levels = sorted(set(_hpd_levels(h, probs)))
                    if len(levels) and h.max() > 0:
                        xc, yc = 0.5 * (xe[1:] + xe[:-1]), 0.5 * (ye[1:] + ye[:-1])
                        ax.contour(
                            xc,
                            yc,
                            h.T,
                            levels=levels + [h.max() + 1],
                            colors="k",
                            linewidths=(1.2, 0.8)[: len(levels)],
                        )
                    if nj in ref and ni in ref:
                        ax.plot(
                            [ref[nj]], [ref[ni]], marker="*", color="C3", ms=12, label="reference"
                        )
                    if nj in ref:
                        ax.axvline(ref[nj], color="C3", lw=0.8)
                    if ni in ref:
                        ax.axhline(ref[ni], color="C3", lw=0.8)
                    ax.set_ylim(ranges[ni])
                ax.set_xlim(ranges[nj])
                if i == k - 1:
                    ax.set_xlabel(nj)
                else:
                    ax.set_xticklabels([])
                if j == 0 and i > 0:
                    ax.set_ylabel(ni)
                elif j > 0:
                    ax.set_yticklabels([])
        if title:
            fig.suptitle(title)
        return save(fig, output_path(path, fmt))
