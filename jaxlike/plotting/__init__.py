"""Figures of the analysis products (matplotlib, off-screen Agg, no pyplot state; the mplhep
ROOT style when mplhep is installed).

Every function takes a product of :mod:`jaxlike.analysis` (or of a scan: the limit figures
:func:`plot_brazil_band`, :func:`plot_significance`, :func:`plot_exclusion`), writes a PNG or
PDF (by the suffix of ``path`` or ``fmt``) and returns the path written. The plumbing is public
too: :func:`figure`, :func:`style`, :func:`save`, :func:`file_stems` and the band colours
:data:`GREEN` (±1σ) and :data:`YELLOW` (±2σ).

Example::

    from jaxlike import analysis, plotting

    res = jaxlike.fit(model, data)
    plotting.plot_pulls(analysis.pulls(model, data, res), "pulls.png")
    plotting.plot_ranking(analysis.impacts(model, data, fit_result=res), "ranking.pdf")
"""

from ._corner import plot_corner
from ._fit import plot_correlation, plot_pulls, plot_ranking
from ._grid import plot_profile_grid
from ._limits import NoContourWarning, plot_brazil_band, plot_exclusion, plot_significance
from ._scan import plot_profile_scan
from ._style import GREEN, YELLOW, figure, file_stems, save, style
from ._toys import STAT_LABELS, plot_study_scan, plot_test_statistic, plot_toy_pulls
from ._yields import plot_all_yields, plot_yields

__all__ = [
    "STAT_LABELS",
    "plot_study_scan",
    "plot_test_statistic",
    "plot_toy_pulls",
    "GREEN",
    "NoContourWarning",
    "YELLOW",
    "figure",
    "file_stems",
    "plot_corner",
    "plot_all_yields",
    "plot_brazil_band",
    "plot_correlation",
    "plot_exclusion",
    "plot_profile_grid",
    "plot_profile_scan",
    "plot_pulls",
    "plot_ranking",
    "plot_significance",
    "plot_yields",
    "save",
    "style",
]
