"""Figures of the analysis products (matplotlib, off-screen Agg, no pyplot state; the mplhep
ROOT style when mplhep is installed).

Every function takes a product of :mod:`jaxlike.analysis`, writes a PNG or PDF (by the
suffix of ``path`` or ``fmt``) and returns the path written.

Example::

    from jaxlike import analysis, plotting

    res = jaxlike.fit(model, data)
    plotting.plot_pulls(analysis.pulls(model, data, res), "pulls.png")
    plotting.plot_ranking(analysis.impacts(model, data, fit_result=res), "ranking.pdf")
"""

from ._corner import plot_corner
from ._fit import plot_correlation, plot_pulls, plot_ranking
from ._grid import plot_profile_grid
from ._scan import plot_profile_scan
from ._style import figure, save, style
from ._yields import plot_all_yields, plot_yields

__all__ = [
    "figure",
    "plot_corner",
    "plot_all_yields",
    "plot_correlation",
    "plot_profile_grid",
    "plot_profile_scan",
    "plot_pulls",
    "plot_ranking",
    "plot_yields",
    "save",
    "style",
]
