r"""Limits on a coupling: the excluded intervals of g where the predicted signal exceeds the
limit, found by root finding — including non-monotone cases.

A search quotes an upper limit σ_UL on a cross section (or a signal strength) at each
hypothesis; a model predicts σ_pred(g) for a coupling g (sin θ, y, g_aW, g_aγγ, ε). When the
efficiency itself depends on g — through the lifetime cτ ∝ 1/g², a long-lived particle leaves
the detector at small g and decays promptly, outside a displaced-vertex acceptance, at large
g — the ratio

.. math:: r(g) = \sigma_{\rm pred}(g) / \sigma_{\rm UL}(g)

is not monotone, and the excluded region {g : r(g) ≥ 1} is a band [g_lo, g_hi], or several.
:func:`excluded_intervals` samples r on a grid (log-spaced by default), finds every sign change
of r − 1 and refines each by bisection (in log g), all vectorised: it is traceable and vmappable
over hypotheses (masses), with a fixed number of reported intervals (NaN-padded).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from ..exceptions import InvalidArgument

__all__ = [
    "ExcludedIntervals",
    "excluded_intervals",
    "lifetime_excluded_intervals",
    "edges_at_lifetime_ends",
]


class ExcludedIntervals(eqx.Module):
    """Excluded intervals [lower[k], upper[k]] of a coupling, k < ``n_intervals`` (the rest
    NaN), in increasing order. ``open_below``/``open_above``: the first/last interval reaches
    the end of the scanned range (its edge there is the range's end, not a crossing: the
    exclusion may continue beyond it). ``n_intervals`` may exceed the reported slots
    (``max_intervals``); then the last ones are not reported (``truncated``)."""

    lower: Array
    upper: Array
    n_intervals: Array
    open_below: Array
    open_above: Array
    truncated: Array


def _check(g_min, g_max, n_grid, log, iters, max_intervals):
    for name, v in (("n_grid", n_grid), ("iters", iters), ("max_intervals", max_intervals)):
        if isinstance(v, bool) or int(v) != v or v < (2 if name == "n_grid" else 1):
            raise InvalidArgument(f"{name} must be a positive integer (n_grid ≥ 2), got {v!r}")
    try:
        lo, hi = float(g_min), float(g_max)
    except (TypeError, jax.errors.ConcretizationTypeError):
        return  # traced range: checked by the caller
    if not (lo < hi) or not (math.isfinite(lo) and math.isfinite(hi)):
        raise InvalidArgument(f"the coupling range needs g_min < g_max, got [{g_min}, {g_max}]")
    if log and lo <= 0:
        raise InvalidArgument(f"a log-spaced coupling range needs g_min > 0, got {g_min}")


def excluded_intervals(
    ratio: Callable[[Array], Array],
    g_min: ArrayLike,
    g_max: ArrayLike,
    *,
    n_grid: int = 64,
    log: bool = True,
    iters: int = 60,
    max_intervals: int = 4,
) -> ExcludedIntervals:
    r"""The excluded intervals {g ∈ [g_min, g_max] : r(g) ≥ 1} of a coupling.

    ``ratio(g)`` → r(g) = σ_pred(g)/σ_UL(g) (a scalar JAX function of a scalar g; vmapped over
    the grid). r is sampled at ``n_grid`` points, log-spaced by default (u = ln g); every grid
    cell whose ends lie on different sides of r = 1 holds an edge, found by ``iters``
    bisection steps in u (60 halvings: the cell's width × 2⁻⁶⁰, at the float64 floor), so
    each edge g* has r(g*) = 1 within the rounding of r. An edge is a lower edge when r
    crosses 1 upwards. Intervals narrower than the grid spacing, or two crossings inside one
    cell, are not resolved: choose ``n_grid`` so that a cell is narrower than any structure
    of r. Traceable; vmap over hypotheses by closing ``ratio`` over their parameters.

    Returns an :class:`ExcludedIntervals` with ``max_intervals`` slots.
    """
    _check(g_min, g_max, n_grid, log, iters, max_intervals)
    g_min = jnp.asarray(g_min, float)
    g_max = jnp.asarray(g_max, float)
    to_u = jnp.log if log else (lambda x: x)
    from_u = jnp.exp if log else (lambda x: x)
    u = jnp.linspace(to_u(g_min), to_u(g_max), n_grid)
    excl = jax.vmap(lambda v: ratio(from_u(v)) >= 1.0)(u)
    change = excl[1:] != excl[:-1]  # [n_grid - 1] cells holding an edge
    up = ~excl[:-1]  # crossing upwards (into the excluded region)

    def bisect(a, b, a_excl):
        def step(_, ab):
            a, b = ab
            m = 0.5 * (a + b)
            same = (ratio(from_u(m)) >= 1.0) == a_excl
            return jnp.where(same, m, a), jnp.where(same, b, m)

        a, b = jax.lax.fori_loop(0, iters, step, (a, b))
        return 0.5 * (a + b)

    edges = from_u(jax.vmap(bisect)(u[:-1], u[1:], excl[:-1]))  # every cell (used where change)
    k = max_intervals
    n_up = jnp.sum(change & up) + excl[0]
    # lower edges: the range's start if excluded there, then upward crossings; upper edges:
    # downward crossings, then the range's end if excluded there
    lower = jnp.concatenate([jnp.where(excl[0], g_min, jnp.nan)[None],
                             jnp.where(change & up, edges, jnp.nan)])  # fmt: skip
    upper = jnp.concatenate([jnp.where(change & ~up, edges, jnp.nan),
                             jnp.where(excl[-1], g_max, jnp.nan)[None]])  # fmt: skip

    def first_k(x):
        idx = jnp.nonzero(jnp.isfinite(x), size=k, fill_value=x.shape[0] - 1)[0]
        have = jnp.arange(k) < jnp.sum(jnp.isfinite(x))
        return jnp.where(have, x[idx], jnp.nan)

    return ExcludedIntervals(
        lower=first_k(lower),
        upper=first_k(upper),
        n_intervals=n_up,
        open_below=excl[0],
        open_above=excl[-1],
        truncated=n_up > k,
    )


def lifetime_excluded_intervals(
    limits: ArrayLike,
    ctaus: ArrayLike,
    predicted: Callable,
    ctau: Callable,
    params,
    g_min: float,
    g_max: float,
    *,
    prompt_below: bool = False,
    n_grid: int = 256,
    iters: int = 60,
    max_intervals: int = 4,
) -> ExcludedIntervals:
    r"""Excluded intervals of a coupling g at every hypothesis of a grid whose second axis is the
    lifetime, where the lifetime itself depends on g.

    ``limits`` [M, K]: upper limits on the predicted quantity (σ × B, a branching fraction) at M
    hypotheses (masses) × K lifetimes ``ctaus`` (increasing, > 0). ``predicted(g, p)`` and
    ``ctau(g, p)``: JAX functions of a scalar coupling and one hypothesis' parameters ``p`` (a
    pytree; ``params`` holds them with a leading axis M, e.g. ``(masses, widths)``). At
    hypothesis i

    .. math::
        r_i(g) = P(g, p_i) \,/\, \mathrm{UL}_i(c\tau(g, p_i)), \qquad
        \ln \mathrm{UL}_i(c\tau) = \text{linear interpolation of } \ln \mathrm{UL}_{ik}
        \text{ in } \ln c\tau,

    and {g : r_i(g) ≥ 1} by :func:`excluded_intervals` (log-spaced, ``n_grid`` samples, bisection).
    Where cτ(g) lies beyond the longest tabulated lifetime r = 0: no exclusion is claimed where
    no limit was computed. Below the shortest lifetime r = 0 too, unless ``prompt_below``: then
    the limit at the shortest lifetime is used (right when that lifetime is already prompt for
    the detector, so the efficiency — hence the limit — no longer changes). A limit that is not
    positive and finite excludes nothing there. Returns the intervals batched over the M
    hypotheses; see :func:`edges_at_lifetime_ends` for edges that are only the grid's end.
    """
    ul = jnp.asarray(limits, float)
    ct = jnp.asarray(ctaus, float)
    if ul.ndim != 2 or ul.shape[1] != ct.shape[0]:
        raise InvalidArgument(f"limits must have shape [M, {ct.shape[0]}], got {ul.shape}")
    log_ct = jnp.log(ct)
    log_ul = jnp.log(jnp.where(ul > 0, ul, jnp.inf))

    def one(p, lul):
        def ratio(g):
            lct = jnp.log(ctau(g, p))
            inside = lct <= log_ct[-1]
            inside = inside if prompt_below else inside & (lct >= log_ct[0])
            ul_g = jnp.exp(jnp.interp(lct, log_ct, lul))
            ok = inside & jnp.isfinite(ul_g)
            return jnp.where(ok, predicted(g, p) / jnp.where(ok, ul_g, 1.0), 0.0)

        return excluded_intervals(ratio, g_min, g_max, n_grid=n_grid, iters=iters,
                                  max_intervals=max_intervals)  # fmt: skip

    return jax.vmap(one)(params, log_ul)


def edges_at_lifetime_ends(intervals: ExcludedIntervals, ctaus: ArrayLike, ctau_of, *,
                           prompt_below: bool = False, rtol: float = 1e-6):  # fmt: skip
    """(lower, upper) boolean arrays shaped like ``intervals.lower``: the edge's lifetime
    ``ctau_of(g)`` (a host function of the edges [M, k], e.g. closing over the masses) is at an
    end of the grid's ``ctaus`` (within ``rtol`` in log cτ), so the exclusion may continue
    beyond it with a larger grid. With ``prompt_below`` only the long-lifetime end counts
    (:func:`lifetime_excluded_intervals` extends the shortest lifetime's limit below it)."""
    ct = np.asarray(ctaus, float)
    ends = np.log(ct[[-1]] if prompt_below else ct[[0, -1]])
    out = []
    for g in (np.asarray(intervals.lower), np.asarray(intervals.upper)):
        with np.errstate(invalid="ignore", divide="ignore"):
            lct = np.log(np.asarray(ctau_of(g), float))
        near = np.min(np.abs(lct[..., None] - ends), axis=-1) < rtol
        out.append(np.isfinite(g) & near)
    return tuple(out)
