"""Profile-likelihood scans (1-D, 2-D) and MINOS-style asymmetric intervals."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..fit import fit_arrays
from ._common import batch_fit, bounds, nominal_fit, resolve_index

__all__ = [
    "ProfileScan",
    "grid_points",
    "profile_bounds",
    "profile_point_fit",
    "profile_scan",
    "profile_scan_2d",
]


class ProfileScan(eqx.Module):
    """Profile likelihood Δ2NLL(θ_p) = 2NLL(θ_p, θ̂̂) − 2NLL(θ̂) on a grid.

    Attributes:
        names: the scanned parameter(s).
        values: the grid, one array per scanned parameter (1-D: [n]; 2-D: [n1], [n2]).
        twice_nll, delta: 2NLL of each conditional fit and Δ2NLL (shape [n] or [n1, n2]).
        bestfit: θ̂̂ at every grid point (grid shape + [npars]).
        converged: per grid point.
        best_values: θ̂_p of the global fit.  twice_nll_min: 2NLL(θ̂).
    """

    names: tuple[str, ...] = eqx.field(static=True)
    values: tuple[jax.Array, ...]
    twice_nll: jax.Array
    delta: jax.Array
    bestfit: jax.Array
    converged: jax.Array
    best_values: jax.Array
    twice_nll_min: jax.Array


def grid_points(*axes) -> np.ndarray:
    """The points of the grid ``axes[0] × axes[1] × ...`` as rows [n1·n2·..., k] in C order
    (the last axis fastest, ``indexing="ij"``): row j·n2 + l of a 2-D grid is
    (axes[0][j], axes[1][l])."""
    axes = [np.asarray(a, float).reshape(-1) for a in axes]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))


def profile_bounds(lo, hi, fixed, idx, points):
    """Bounds and fixed mask of the conditional fits of a profile over ``points`` [P, k]:
    the scanned parameters ``idx`` are fixed, and their bounds widened to the grid,
    lo_i = min(lo_i, min_p points[p, i]), hi_i = max(hi_i, max_p points[p, i]). Returns new
    arrays (lo, hi, fixed)."""
    lo, hi = np.array(lo, float), np.array(hi, float)
    fixed = np.array(fixed, bool)
    points = np.asarray(points, float).reshape(len(points), len(idx))
    lo[idx] = np.minimum(lo[idx], points.min(axis=0))
    hi[idx] = np.maximum(hi[idx], points.max(axis=0))
    fixed[idx] = True
    return lo, hi, fixed


def profile_point_fit(model, data, start, lo, hi, fixed, idx, *, maxiter=200, tol=1e-10):
    """The conditional fit at one point v of a profile, as a function ``v -> FitResult``:

        θ̂̂(v) = argmin_θ 2NLL(θ | data)  with θ_idx = v, the other non-``fixed`` parameters in
        [lo, hi], started from ``start`` with θ_idx set to v.

    ``fixed`` must include ``idx`` (see :func:`profile_bounds`). The one per-point fit of every
    profile: :func:`profile_scan`, :func:`profile_scan_2d` (rows of :func:`batch_fit`) and the
    stored grids of :func:`jaxlike.scan.profile_grid` (vmapped by the streaming engine).
    """
    data, start, lo, hi, fixed = (jnp.asarray(a) for a in (data, start, lo, hi, fixed))
    idx = np.asarray(idx, dtype=np.int64)

    def one(values):
        x0 = start.at[idx].set(jnp.asarray(values, start.dtype))
        return fit_arrays(model, data, x0, lo, hi, fixed, maxiter=maxiter, tol=tol)

    return one


def _grid_fits(model, data, idx, points, res, par_bounds, chunk):
    """Conditional fits with parameters ``idx`` fixed at each row of ``points``: the fit of
    :func:`profile_point_fit` from the global best fit, run as rows of :func:`batch_fit`
    (whose compiled function is shared with every other fit product of the model)."""
    best = np.asarray(res.bestfit)
    lo, hi, fixed = profile_bounds(*bounds(model, par_bounds), res.fixed, idx, points)
    inits = np.repeat(best[None], len(points), 0)
    inits[:, idx] = points
    masks = np.repeat(fixed[None], len(points), 0)
    return batch_fit(model, data, inits, masks, lo=lo, hi=hi, chunk=chunk)


def profile_scan(model, data, par, values, *, fit_result=None, chunk=256, **fit_kwargs):
    """1-D profile-likelihood scan of parameter ``par`` (name or index) over ``values``.

    All conditional fits run as one vmapped batch, each warm-started from the global best fit
    with ``par`` set to its grid value. The bounds of ``par`` are widened to the grid.

    Example::

        scan = profile_scan(model, data, "mu", np.linspace(0, 2, 41))
        inside = scan.values[0][scan.delta < 1]
    """
    cfg = model.config
    res = nominal_fit(model, data, fit_result, **fit_kwargs)
    i = resolve_index(cfg, par)
    values = np.asarray(values, float).reshape(-1)
    out = _grid_fits(model, data, [i], values[:, None], res, fit_kwargs.get("par_bounds"), chunk)
    return ProfileScan(
        names=(cfg.par_names[i],),
        values=(values,),
        twice_nll=out.twice_nll,
        delta=out.twice_nll - float(res.twice_nll),
        bestfit=out.bestfit,
        converged=out.converged,
        best_values=np.asarray(res.bestfit)[[i]],
        twice_nll_min=np.asarray(res.twice_nll),
    )


def profile_scan_2d(model, data, pars, grid1, grid2, *, fit_result=None, chunk=256, **fit_kwargs):
    """2-D profile-likelihood scan of ``pars = (p1, p2)`` over the grid ``grid1 × grid2``.

    ``delta[j, k]`` is Δ2NLL at (grid1[j], grid2[k]); the fits run as one chunked vmapped batch
    in memory (:func:`~jaxlike.analysis.batch_fit`). The grid points (:func:`grid_points`) and
    the conditional bounds (:func:`profile_bounds`) are those of
    :func:`jaxlike.scan.profile_grid`, which runs the same profile as a stored, resumable,
    device-sharded stream (with its own global minimum and row continuation).
    """
    cfg = model.config
    res = nominal_fit(model, data, fit_result, **fit_kwargs)
    idx = [resolve_index(cfg, p) for p in pars]
    if len(idx) != 2 or idx[0] == idx[1]:
        raise ValueError("profile_scan_2d needs two different parameters")
    g1, g2 = (np.asarray(g, float).reshape(-1) for g in (grid1, grid2))
    mesh = grid_points(g1, g2)
    out = _grid_fits(model, data, idx, mesh, res, fit_kwargs.get("par_bounds"), chunk)
    shape = (len(g1), len(g2))
    return ProfileScan(
        names=tuple(cfg.par_names[i] for i in idx),
        values=(g1, g2),
        twice_nll=out.twice_nll.reshape(shape),
        delta=(out.twice_nll - float(res.twice_nll)).reshape(shape),
        bestfit=out.bestfit.reshape(shape + (cfg.npars,)),
        converged=out.converged.reshape(shape),
        best_values=np.asarray(res.bestfit)[idx],
        twice_nll_min=np.asarray(res.twice_nll),
    )
