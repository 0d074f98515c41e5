"""Sliding fit windows over a finely binned spectrum, with static shapes.

A scan fits, at each hypothesis mass m, a window [m − w_lo(m), m + w_hi(m)] (e.g. −20σ(m) …
+30σ(m)) regrouped into a fixed number of bins. The spectrum is histogrammed once on a fine
grid; a window is a list of ``n_bins + 1`` indices into the fine edges, so the counts of every
window bin are differences of one cumulative sum and every window has the same array shapes
(one compiled fit serves the whole scan under ``jax.vmap``)::

    idx = window_indices(fine_edges, m, 20 * s, 30 * s, 100)     # [101] ints
    counts = window_counts(fine_cumsum(fine_counts), idx)        # [100]
    edges = window_edges(fine_edges, idx)                        # [101]
    keep = veto_mask(edges, vetoes)                              # [100] bool

Run :func:`check_windows` on the host first: it rejects windows that leave the spectrum or
hold fewer fine bins than window bins (which would give empty, zero-width window bins).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from ..exceptions import InvalidScanConfig

__all__ = [
    "window_indices",
    "window_counts",
    "window_edges",
    "fine_cumsum",
    "veto_mask",
    "check_windows",
]


def _snap(xp, edges, x):
    """Index of the fine edge nearest to ``x`` (ties go to the lower edge), in [0, N]."""
    n = edges.shape[0] - 1
    j = xp.clip(xp.searchsorted(edges, x, side="left"), 1, n)  # edges[j-1] < x <= edges[j]
    return xp.where(x - edges[j - 1] <= edges[j] - x, j - 1, j)


def _regroup(xp, i0, i1, n_bins: int):
    """i0 + round(j (i1 − i0) / n_bins), j = 0..n_bins, in integer arithmetic (halves round up)."""
    j = xp.arange(n_bins + 1)
    return i0 + (2 * j * (i1 - i0) + n_bins) // (2 * n_bins)


def window_indices(
    fine_edges: ArrayLike,
    center: ArrayLike,
    width_lo: ArrayLike,
    width_hi: ArrayLike,
    n_bins: int,
) -> Array:
    """Indices into ``fine_edges`` [N+1] of the edges of a window regrouped into ``n_bins`` bins.

    The window [center − width_lo, center + width_hi] is snapped to the nearest fine edges
    i0, i1 (ties to the lower edge; clipped to [0, N], i.e. to the spectrum), and
    idx_j = i0 + round(j (i1 − i0)/n_bins), j = 0..n_bins (halves round up), so each window
    bin is made of whole fine bins (⌊(i1−i0)/n_bins⌋ or one more). ``n_bins`` is static;
    ``center`` and the widths may be traced (vmap over hypotheses). If the window spans fewer
    than ``n_bins`` fine bins some window bins are empty (idx_{j+1} = idx_j):
    :func:`check_windows` rejects that, :func:`veto_mask` masks them.

    >>> window_indices(jnp.linspace(0.0, 1.0, 11), 0.5, 0.2, 0.2, 2).tolist()
    [3, 5, 7]
    """
    e = jnp.asarray(fine_edges)
    center = jnp.asarray(center)
    i0 = _snap(jnp, e, center - width_lo)
    i1 = _snap(jnp, e, center + width_hi)
    return _regroup(jnp, i0, i1, int(n_bins))


def fine_cumsum(fine_counts: ArrayLike) -> Array:
    """Cumulative sum along the last axis with a leading 0: [..., N] → [..., N+1]."""
    c = jnp.asarray(fine_counts)
    zero = jnp.zeros(c.shape[:-1] + (1,), c.dtype)
    return jnp.concatenate([zero, jnp.cumsum(c, axis=-1)], axis=-1)


def window_counts(fine_counts_cumsum: ArrayLike, idx: ArrayLike) -> Array:
    """Contents of the window bins: C[..., idx_{j+1}] − C[..., idx_j], C = cumulative sum of the
    fine contents with a leading 0 (length N+1 on the last axis; see :func:`fine_cumsum`).

    Works for observed counts [N+1] and for templates on the fine binning [..., N+1] alike.
    Integer counts (or float64 counts below 2⁵³) are reproduced exactly; float templates to
    ~1e-16 of the cumulative total.
    """
    c = jnp.asarray(fine_counts_cumsum)
    idx = jnp.asarray(idx)
    return c[..., idx[1:]] - c[..., idx[:-1]]


def window_edges(fine_edges: ArrayLike, idx: ArrayLike) -> Array:
    """Edges of the window bins: fine_edges[idx]."""
    return jnp.asarray(fine_edges)[jnp.asarray(idx)]


def veto_mask(edges: ArrayLike, vetoes: ArrayLike) -> Array:
    """True for the window bins [e_j, e_{j+1}] to keep: positive width and no overlap with any
    vetoed interval (v_lo, v_hi), i.e. not (e_j < v_hi and e_{j+1} > v_lo) for every veto
    (touching at a boundary is no overlap). ``vetoes`` is [V, 2] (V may be 0).

    >>> veto_mask(jnp.array([0.0, 1.0, 2.0, 2.0, 3.0]), jnp.array([[1.5, 1.7]])).tolist()
    [True, False, False, True]
    """
    e = jnp.asarray(edges)
    a, b = e[:-1], e[1:]
    v = jnp.asarray(vetoes, dtype=e.dtype).reshape(-1, 2)
    overlap = (a[:, None] < v[None, :, 1]) & (b[:, None] > v[None, :, 0])
    return (b > a) & ~jnp.any(overlap, axis=1)


def _fail(path, centers, bad, describe):
    """Raise for the first hypothesis flagged in ``bad``; ``describe(i)`` says what is wrong."""
    i = int(np.flatnonzero(bad)[0])
    raise InvalidScanConfig(
        path,
        f"the window of hypothesis {i} (mass {float(centers[i])!r}) {describe(i)}; "
        f"{int(bad.sum())} of {bad.size} windows are affected",
    )


def check_windows(
    fine_edges: ArrayLike,
    centers: ArrayLike,
    width_lo: ArrayLike,
    width_hi: ArrayLike,
    n_bins: int,
    path: str = "window",
) -> None:
    """Host-side validation of the windows of a scan (numpy; raises before any compile).

    Raises :class:`~jaxlike.exceptions.InvalidScanConfig` at ``path`` when the fine edges are not
    strictly increasing and finite, ``n_bins`` < 1, a center or width is not finite or a width
    is negative, a window [c − w_lo, c + w_hi] extends (partly) outside
    [fine_edges[0], fine_edges[-1]] (beyond a 1e-9 relative rounding tolerance), or a window
    snaps to fewer than ``n_bins`` fine bins (a window bin would be empty). The message names
    the first offending hypothesis (index and mass) and how many are affected. The snapping is
    the same code as :func:`window_indices`, so a window that passes gives ``n_bins`` non-empty
    bins there. Widths broadcast against ``centers`` (scalars or one per hypothesis).
    """
    e = np.asarray(fine_edges, dtype=float)
    if e.ndim != 1 or e.size < 2 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
        raise InvalidScanConfig(path, "fine edges must be a finite, strictly increasing 1-D array")
    if int(n_bins) != n_bins or n_bins < 1:
        raise InvalidScanConfig(path, f"n_bins must be a positive integer, got {n_bins!r}")
    c = np.atleast_1d(np.asarray(centers, dtype=float))
    wl, wh = np.broadcast_to(width_lo, c.shape), np.broadcast_to(width_hi, c.shape)
    wl, wh = wl.astype(float), wh.astype(float)
    bad = ~(np.isfinite(c) & np.isfinite(wl) & np.isfinite(wh) & (wl >= 0) & (wh >= 0))
    if bad.any():
        _fail(
            path,
            c,
            bad,
            lambda i: f"has a non-finite or negative width ({float(wl[i])!r}, {float(wh[i])!r})",
        )
    lo, hi = c - wl, c + wh
    tol = 1e-9 * (e[-1] - e[0])
    outside = (lo < e[0] - tol) | (hi > e[-1] + tol)
    if outside.any():
        span = f"[{float(e[0])!r}, {float(e[-1])!r}]"
        _fail(
            path,
            c,
            outside,
            lambda i: f"[{float(lo[i])!r}, {float(hi[i])!r}] extends outside {span}",
        )
    nfine = _snap(np, e, hi) - _snap(np, e, lo)
    few = nfine < n_bins
    if few.any():
        _fail(
            path,
            c,
            few,
            lambda i: (
                f"[{float(lo[i])!r}, {float(hi[i])!r}] spans {nfine[i]} fine bins, fewer than the "
                f"{n_bins} window bins"
            ),
        )
