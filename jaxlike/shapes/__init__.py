"""Parametric shapes for mass scans: signal peaks, smooth backgrounds, mass tables, windows.

Everything here is a pure JAX function (or an equinox Module) of float64 arrays: jittable,
vmappable over every array argument and differentiable in every float parameter. Signal shapes
and backgrounds return *probability content per bin* (exact bin integrals, accurate far in the
tails), so a yield times the returned vector is an expected-count template.

- Signal: :func:`gaussian_binned`, :func:`crystal_ball_binned` (double-sided Crystal Ball),
  with :func:`gaussian_cdf`, :func:`crystal_ball_cdf`, :func:`crystal_ball_pdf`.
- Background on a fit range [lo, hi]: :func:`bernstein_binned` (positive for c_k ≥ 0),
  :func:`bernstein_integrals`, :func:`chebyshev_binned`, :func:`exponential_binned`,
  :func:`polynomial_basis` (both polynomial families as one padded linear basis).
- Mass dependence: :class:`MassTable` (linear or monotone-cubic interpolation of tabulated
  shape parameters) with host-side :meth:`MassTable.check_range`.
- N-D grids of simulated points (mass × lifetime × …): :class:`GridTable`, multilinear in
  per-axis transforms (linear or log) and optionally in the log of a value, with host-side
  :meth:`GridTable.check_points`.
- Sliding windows with static shapes: :func:`window_indices`, :func:`window_counts`,
  :func:`window_edges`, :func:`fine_cumsum`, :func:`veto_mask`, host-side
  :func:`check_windows`.
"""

from ._grid import GridTable
from ._pdf import (
    crystal_ball_binned,
    crystal_ball_cdf,
    crystal_ball_pdf,
    gaussian_binned,
    gaussian_cdf,
)
from ._poly import (
    bernstein_binned,
    bernstein_integrals,
    chebyshev_binned,
    exponential_binned,
    polynomial_basis,
)
from ._table import MassTable
from ._window import (
    check_windows,
    fine_cumsum,
    veto_mask,
    window_counts,
    window_edges,
    window_indices,
)

__all__ = [
    "GridTable",
    "MassTable",
    "bernstein_binned",
    "bernstein_integrals",
    "check_windows",
    "chebyshev_binned",
    "crystal_ball_binned",
    "crystal_ball_cdf",
    "crystal_ball_pdf",
    "exponential_binned",
    "fine_cumsum",
    "gaussian_binned",
    "gaussian_cdf",
    "polynomial_basis",
    "veto_mask",
    "window_counts",
    "window_edges",
    "window_indices",
]
