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
from jaxtyping import Array, ArrayLike

from ..exceptions import InvalidArgument

__all__ = ["ExcludedIntervals", "excluded_intervals"]


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
