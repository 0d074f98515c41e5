"""Figures of the analysis products (matplotlib, off-screen Agg, no pyplot state).

Every function takes a product of :mod:`jaxlike.analysis` (or of a scan: the limit figures
:func:`plot_brazil_band`, :func:`plot_significance`, :func:`plot_exclusion`), writes a PNG or
PDF (by the suffix of ``path`` or ``fmt``) and returns the path written.

Every function takes ``style=``: None (default: matplotlib's plain style with a light grid,
the same on every machine, so figures regenerate byte for byte) or an mplhep style from
:data:`STYLES` (``"ATLAS"``, ``"CMS"``, ``"LHCb2"``, ...; ``pip install 'jaxlike[plot]'``).
Figures grow with their content and keep names readable (at least :data:`MIN_FONT` points;
long names shortened by :func:`shorten` with the full names in a footnote). The plumbing is
public too: :func:`figure`, :func:`canvas`, :func:`style`, :func:`save`, :func:`file_stems`,
:func:`axis_label`, :func:`veto_gaps`, :func:`stack_order` and the band colours
:data:`GREEN` (±1σ) and :data:`YELLOW` (±2σ).

Example::

    from jaxlike import analysis, plotting

    res = jaxlike.fit(model, data)
    plotting.plot_pulls(analysis.pulls(model, data, res), "pulls.png")
    plotting.plot_ranking(analysis.impacts(model, data, fit_result=res), "ranking.pdf",
                          style="ATLAS")
"""

from ._corner import plot_corner
from ._counting_grid import plot_counting_grid, plot_coupling_band
from ._fit import plot_correlation, plot_pulls, plot_ranking
from ._grid import plot_profile_grid
from ._limits import (
    NoContourWarning,
    plot_brazil_band,
    plot_exclusion,
    plot_significance,
    veto_gaps,
)
from ._scan import plot_profile_scan
from ._style import (
    GREEN,
    MIN_FONT,
    STYLES,
    YELLOW,
    axis_label,
    canvas,
    figure,
    file_stems,
    save,
    shorten,
    style,
)
from ._toys import STAT_LABELS, plot_study_scan, plot_test_statistic, plot_toy_pulls
from ._yields import plot_all_yields, plot_yields, stack_order

__all__ = [
    "STAT_LABELS",
    "plot_study_scan",
    "plot_test_statistic",
    "plot_toy_pulls",
    "GREEN",
    "MIN_FONT",
    "NoContourWarning",
    "STYLES",
    "YELLOW",
    "axis_label",
    "canvas",
    "figure",
    "file_stems",
    "plot_corner",
    "plot_counting_grid",
    "plot_coupling_band",
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
    "shorten",
    "stack_order",
    "style",
    "veto_gaps",
]
