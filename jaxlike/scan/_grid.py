"""Two-dimensional profile-likelihood grids (e.g. Wilson-coefficient maps) as streams.

For two parameters (x, y) of a model — say the Wilson coefficients C_V and C_T of the Belle II
B⁺ → K⁺νν̄ reinterpretation — :func:`profile_grid` computes on the grid x_i × y_j

    2NLL(x_i, y_j) = min_θ −2 log L(x_i, y_j, θ | data),
    Δ2NLL(x_i, y_j) = 2NLL(x_i, y_j) − 2NLL(x̂, ŷ, θ̂),

where θ are all other parameters, profiled (free) unless listed in ``fixed`` (held at the given
values, e.g. ``{"C_S": 0.0}`` or the form-factor nuisances). The global minimum comes from a
free fit with the same ``fixed`` values; should a grid point lie lower (the global fit found a
local minimum) the lowest grid point is used instead and reported (``best_source = "grid"``),
so Δ2NLL ≥ 0 always. By Wilks' theorem Δ2NLL follows a χ² distribution with 2 degrees of
freedom, so the region Δ2NLL < F⁻¹_χ²₂(CL) = −2 ln(1 − CL) is a CL confidence region:
Δ2NLL < 2.2958 (68.27 %) and < 5.9915 (95 %).

The grid points and the conditional bounds are those of
:func:`jaxlike.analysis.profile_scan_2d` (:func:`~jaxlike.analysis.grid_points`,
:func:`~jaxlike.analysis.profile_bounds`); this is its stored, resumable, sharded form.

Execution. Each grid point is the conditional fit of every profile,
:func:`jaxlike.analysis.profile_point_fit` (x and y fixed); with ``sweep`` (the default) a row
is instead a continuation, every point a bare Newton run (:func:`jaxlike.fit.minimize` on the
model's exact ``value_grad_hess``) from its neighbour's solution. The fits are
``jax.vmap``-ed and run chunk by chunk through :func:`~jaxlike.stream.run_scan` (compiled once,
sharded over devices, stored in HDF5 with the grid configuration as its identity, resumable,
with a progress line).
Every fit starts from the global best fit θ̂ with (x, y) set to the grid point (``warm_start``;
otherwise from the model's suggested initial values), which keeps the iterations per fit small.
On a CPU a vmapped ``while_loop`` runs its lanes in lockstep until the slowest converges, so
small chunks (default :data:`DEFAULT_GRID_CHUNK`) are faster; accelerators want larger ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from ..analysis import grid_points, profile_bounds, profile_point_fit
from ..exceptions import InvalidParameters, InvalidScanConfig
from ..fit import fit, minimize, model_breakpoints, result_repr
from ..stream import compiled, run_scan
from ._mass import scan_digest

__all__ = [
    "DEFAULT_GRID_CHUNK",
    "DEFAULT_SWEEP_CHUNK",
    "ProfileGrid",
    "profile_grid",
    "chi2_2dof_threshold",
]

#: fits per vmapped call when neither ``chunk_size`` nor a memory budget is given (CPU-friendly)
DEFAULT_GRID_CHUNK = 32
#: rows per vmapped call of a row sweep (each row is a sequence of ny fits)
DEFAULT_SWEEP_CHUNK = 8


def chi2_2dof_threshold(cl: float) -> float:
    """Δ2NLL threshold of a two-parameter confidence region at level ``cl`` (Wilks, 2 dof):
    F⁻¹_χ²₂(cl) = −2 ln(1 − cl); 0.68 → 2.2788, 0.6827 → 2.2958, 0.95 → 5.9915."""
    if not 0.0 < cl < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1), got {cl}")
    return -2.0 * math.log1p(-cl)


@dataclass
class ProfileGrid:
    """Result of :func:`profile_grid` (NumPy arrays; grid axes are (x, y), ``indexing="ij"``).

    Attributes:
        names: (x name, y name).
        x, y: grid values [nx], [ny].
        twice_nll: 2NLL(x_i, y_j) of the conditional fits [nx, ny].
        delta: Δ2NLL = twice_nll − twice_nll_min [nx, ny] (≥ 0 up to rounding).
        bestfit: θ̂̂ at every grid point [nx, ny, npars].
        converged: per grid point; iterations: Newton iterations per fit.
        twice_nll_min: the global minimum 2NLL (the lower of the free fit and the grid).
        best: {x name: x̂, y name: ŷ} of that minimum; best_source: "fit" or "grid".
        global_fit: 2NLL, convergence and x̂, ŷ of the free fit with the same ``fixed``.
        fixed: the parameters held constant (name → value); par_names: parameter order.
    """

    names: tuple[str, str]
    x: np.ndarray
    y: np.ndarray
    twice_nll: np.ndarray
    delta: np.ndarray
    bestfit: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    twice_nll_min: float
    best: dict
    best_source: str
    global_fit: dict
    fixed: dict = field(default_factory=dict)
    par_names: tuple[str, ...] = ()
    __repr__ = result_repr  # numbers and shapes, not every value

    def summary(self) -> dict:
        """JSON-ready summary: grid, global minimum, convergence."""
        return {
            "x": {"name": self.names[0], "min": float(self.x[0]), "max": float(self.x[-1]),
                  "n": int(self.x.size)},
            "y": {"name": self.names[1], "min": float(self.y[0]), "max": float(self.y[-1]),
                  "n": int(self.y.size)},
            "fixed": dict(self.fixed),
            "twice_nll_min": float(self.twice_nll_min),
            "best": {k: float(v) for k, v in self.best.items()},
            "best_source": self.best_source,
            "global_fit": self.global_fit,
            "converged_fraction": float(np.mean(self.converged)),
            "not_converged": int(np.sum(~self.converged)),
            "mean_iterations": float(np.mean(self.iterations)),
        }  # fmt: skip


def _resolve_fixed(cfg, fixed):
    """{scalar parameter index: value}; a vector parameter name (``ff_bsz2015``) fixes all its
    components (a scalar value is broadcast, a sequence gives one value per component)."""
    out = {}
    for name, value in (fixed or {}).items():
        if name in cfg.par_names:
            out[cfg.par_index(name)] = float(value)
            continue
        if name not in cfg.par_map:
            raise InvalidParameters(f"parameter {name!r} is not in the model")
        sl = cfg.par_slice(name)
        idx = range(sl.start, sl.stop)
        vals = np.broadcast_to(np.asarray(value, float), (len(idx),))
        out.update({i: float(v) for i, v in zip(idx, vals, strict=True)})
    return out


def _axis(cfg, spec, which):
    try:
        name, values = spec
    except (TypeError, ValueError):
        raise InvalidScanConfig(which, "give (parameter name, values)") from None
    i = cfg.par_index(name)
    v = np.asarray(values, float).reshape(-1)
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise InvalidScanConfig(which, f"{name}: need at least one finite value")
    return name, i, v


def _point_fn(model, data, init, lo, hi, fixed, ix, iy, maxiter, tol):
    """The vmapped per-point fit: hypotheses {"x", "y"} → 2NLL, θ̂̂, status, iterations. The fit
    is :func:`jaxlike.analysis.profile_point_fit`, the one conditional fit of every profile."""
    point = profile_point_fit(model, data, init, lo, hi, fixed, [ix, iy], maxiter=maxiter, tol=tol)

    def one(h):
        r = point(jnp.stack([h["x"], h["y"]]))
        return {
            "twice_nll": r.twice_nll,
            "bestfit": r.bestfit,
            "converged": r.converged,
            "status": r.status,
            "iterations": r.iterations,
            "edm": r.edm,
        }

    return jax.vmap(one)


def _row_fn(model, data, init, lo, hi, fixed, ix, iy, yv, maxiter, tol):
    """The vmapped row sweep: hypotheses {"x"} → per row, the fits at y_0, y_1, … in turn
    (``lax.scan``), each started from the previous point's solution (continuation)."""
    data, init, lo, hi, fixed, yv = (jnp.asarray(a) for a in (data, init, lo, hi, fixed, yv))

    def row(h):
        def step(carry, yj):
            st = minimize(
                lambda p: model.value_grad_hess(p, data),
                carry.at[iy].set(yj), lo, hi, fixed, breaks=model_breakpoints(model),
                value=lambda p: model.twice_nll(p, data), maxiter=maxiter, tol=tol,
            )  # fmt: skip
            ok = st.status == 0
            out = {
                "twice_nll": st.f,
                "bestfit": st.x,
                "converged": ok,
                "status": st.status,
                "iterations": st.iterations,
                "edm": st.edm,
            }
            return jnp.where(ok, st.x, carry), out

        _, outs = jax.lax.scan(step, init.at[ix].set(h["x"]), yv)
        return outs

    return jax.vmap(row)


def profile_grid(
    model,
    data,
    x,
    y,
    *,
    fixed=None,
    store=None,
    resume=False,
    overwrite=False,
    chunk_size=None,
    memory_budget_bytes=None,
    devices=None,
    progress=True,
    warm_start=True,
    sweep=True,
    par_bounds=None,
    maxiter=200,
    tol=1e-10,
    global_fit=None,
) -> ProfileGrid:
    """Profile-likelihood map Δ2NLL(x, y) over the grid ``x[1] × y[1]`` of two parameters.

    2NLL(x_i, y_j) = min over the other (non-``fixed``) parameters θ of −2 log L; Δ2NLL is taken
    relative to the global minimum (free fit with the same ``fixed``, or the lowest grid point
    if that is lower). Under Wilks' theorem Δ2NLL ~ χ²₂, so {Δ2NLL < 2.2958} and
    {Δ2NLL < 5.9915} are the 68.27 % and 95 % confidence regions (:func:`chi2_2dof_threshold`).

    Args:
        model, data: a :class:`~jaxlike.Model` and its data (observations + auxdata).
        x, y: ``(parameter name, values)``; the bounds of x and y are widened to their grids.
        fixed: ``{name: value}`` held constant everywhere, e.g. ``{"C_S": 0.0}``; a vector
            parameter's name (``"ff_bsz2015"``) fixes all its components. The model's own fixed
            parameters stay fixed.
        store, resume, overwrite, chunk_size, memory_budget_bytes, devices, progress: as in
            :func:`~jaxlike.stream.run_scan` (HDF5 results, rows (i, j) in C order; resuming a
            file written for another grid, model or ``fixed`` is refused). Default chunk
            :data:`DEFAULT_GRID_CHUNK`.
        warm_start: start each fit from the global best fit (else from suggested inits).
        sweep: run each row x_i as one sequence over y_0, y_1, … where every fit starts from
            the previous point's solution (continuation: a few Newton iterations per point
            instead of ~20 from the global best fit); rows are the vmapped, chunked and
            stored unit. ``False``: every point is an independent fit from the start point.
        par_bounds, maxiter, tol: bounds [npars, 2] and the Newton minimiser's settings.
        global_fit: a :class:`~jaxlike.FitResult` to use as the free fit (skips refitting).

    Returns:
        :class:`ProfileGrid`.

    Example::

        g = profile_grid(model, data, ("C_V", np.linspace(0, 20, 100)),
                         ("C_T", np.linspace(0, 20, 100)), fixed={"C_S": 0.0})
        inside95 = g.delta < chi2_2dof_threshold(0.95)
    """
    cfg = model.config
    xname, ix, xv = _axis(cfg, x, "x")
    yname, iy, yv = _axis(cfg, y, "y")
    if ix == iy:
        raise InvalidScanConfig("y", f"x and y are the same parameter {xname!r}")
    fix = _resolve_fixed(cfg, fixed)
    if ix in fix or iy in fix:
        raise InvalidScanConfig("fixed", "the scanned parameters cannot also be fixed")
    b = np.asarray(cfg.suggested_bounds() if par_bounds is None else par_bounds, float)
    lo, hi = b[:, 0].copy(), b[:, 1].copy()
    mask = np.asarray(model.fixed_mask(), bool).copy()
    init = np.asarray(cfg.suggested_init(), float).copy()
    for i, v in fix.items():
        mask[i], init[i] = True, v
        lo[i], hi[i] = min(lo[i], v), max(hi[i], v)

    # global minimum with the same fixed parameters (x and y free within their model bounds)
    if global_fit is None:
        global_fit = fit(
            model, data, init_pars=init, par_bounds=np.stack([lo, hi], 1), fixed_params=mask,
            maxiter=maxiter, tol=tol,
        )  # fmt: skip
    g_best = np.asarray(global_fit.bestfit, float)
    g_nll, g_ok = float(global_fit.twice_nll), bool(global_fit.converged)
    start = g_best.copy() if warm_start and g_ok and np.isfinite(g_nll) else init.copy()
    start[list(fix)] = list(fix.values())
    lo, hi, mask = profile_bounds(
        lo, hi, mask, [ix, iy], [[xv.min(), yv.min()], [xv.max(), yv.max()]]
    )

    data = np.asarray(data, float)
    digest = scan_digest((model, data))
    key = ("profile_grid", digest, ix, iy, start.tobytes(), lo.tobytes(), hi.tobytes(),
           mask.tobytes(), maxiter, tol, bool(sweep), yv.tobytes() if sweep else b"")  # fmt: skip
    if sweep:
        build = lambda: _row_fn(model, data, start, lo, hi, mask, ix, iy, yv, maxiter, tol)  # noqa: E731
    else:
        build = lambda: _point_fn(model, data, start, lo, hi, mask, ix, iy, maxiter, tol)  # noqa: E731
    fn = compiled(key, build)
    points = grid_points(xv, yv)  # rows (i, j) in C order, as analysis.profile_scan_2d
    hypotheses = {"x": xv} if sweep else {"x": points[:, 0].copy(), "y": points[:, 1].copy()}
    names = cfg.par_names
    config = {
        "kind": "profile_grid",
        "x": xname,
        "y": yname,
        "fixed": {names[i]: v for i, v in sorted(fix.items())},
        "warm_start": bool(warm_start),
        "sweep": bool(sweep),
        "maxiter": int(maxiter),
        "tol": float(tol),
    }
    if par_bounds is not None:
        config["par_bounds"] = b.tolist()
    if chunk_size is None and memory_budget_bytes is None:
        chunk_size = DEFAULT_SWEEP_CHUNK if sweep else DEFAULT_GRID_CHUNK
    out = run_scan(
        fn,
        hypotheses,
        store=store,
        resume=resume,
        overwrite=overwrite,
        chunk_size=chunk_size,
        memory_budget_bytes=memory_budget_bytes,
        devices=devices,
        progress=progress,
        config=config,
        model_digest=digest,
        attrs={
            "kind": "profile_grid",
            "x": xname,
            "y": yname,
            "y_values": yv.tolist(),
            "par_names": list(names),
        },
    )
    shape = (xv.size, yv.size)
    nll = np.asarray(out["twice_nll"], float).reshape(shape)
    ok = np.asarray(out["converged"], bool).reshape(shape)
    bestfit = np.asarray(out["bestfit"], float).reshape(shape + (cfg.npars,))
    cand = np.where(ok & np.isfinite(nll), nll, np.inf)
    k = np.unravel_index(int(np.argmin(cand)), shape)
    if np.isfinite(cand[k]) and (not (g_ok and np.isfinite(g_nll)) or cand[k] < g_nll):
        nll_min, source = float(cand[k]), "grid"
        best = {xname: float(xv[k[0]]), yname: float(yv[k[1]])}
    else:
        nll_min, source = g_nll, "fit"
        best = {xname: float(g_best[ix]), yname: float(g_best[iy])}
    return ProfileGrid(
        names=(xname, yname),
        x=xv,
        y=yv,
        twice_nll=nll,
        delta=nll - nll_min,
        bestfit=bestfit,
        converged=ok,
        iterations=np.asarray(out["iterations"]).reshape(shape),
        twice_nll_min=nll_min,
        best=best,
        best_source=source,
        global_fit={
            "twice_nll": g_nll,
            "converged": g_ok,
            xname: float(g_best[ix]),
            yname: float(g_best[iy]),
        },
        fixed=dict(config["fixed"]),
        par_names=tuple(names),
    )
