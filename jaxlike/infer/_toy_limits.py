r"""Toy-based upper limits on a POI grid and Feldman–Cousins (unified) intervals.

**Upper limits (combine's grid mode).** On a grid μ_1 < … < μ_K one set of N s+b toys per grid
point (generated at μ_k) and ONE set of N background toys (generated at μ_A = 0 — the same
pseudo-datasets serve every μ_k, refitted with the POI held at μ_k) give CLs(μ_k) (or CLs+b,
``rule="clsb"``) with their MC errors, so a limit costs N (2K + 2K) fits instead of a toy set per
root-finding step. The limit is the first downward crossing of α = 1 − CL, interpolated linearly
in z = √(−2 ln p) between the bracketing grid points (:func:`~jaxlike.infer.first_crossing`;
z is nearly linear in μ); its MC error is σ_z / |dz/dμ| there.
The expected band crosses the grid's expected-p-value curves (pyhf's percentiles of the
background-toy p-values) the same way. A crossing outside the grid is NaN and not converged.

**Feldman–Cousins.** The Neyman construction with the likelihood-ratio ordering (Feldman &
Cousins, PRD 57 (1998) 3873): for each μ_k toys are drawn at μ_k and the two-sided statistic
t_μ = 2NLL(μ, θ̂̂) − 2NLL(μ̂, θ̂), μ̂ within the POI bounds (the physical region), is computed
for each; the acceptance region at μ_k is t ≤ c_k, c_k the CL-quantile of the toy distribution
(the smallest toy value whose empirical CDF reaches CL, the discrete construction's rule). The
interval is the set of μ_k whose region contains the observed t_obs(μ_k), its ends refined by
linear interpolation of t_obs − c between the last accepted and the first rejected point. With
nuisance parameters the toys are generated at θ̂̂(μ_k) from the observed data by default (the
"profile construction").
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from ..exceptions import InvalidArgument
from ..fit import result_repr, start_rows
from ._hypotest import HypoTestPrep
from ._toys import (
    BACKGROUND_SET,
    _conditional_fits,
    alternative_mu,
    check_toy_args,
    conditional_fits,
    expected_pvalues,
    first_crossing,
    generating_pars,
    generators,
    pvalue_errors,
    toy_pvalues,
    toy_statistics,
)

__all__ = [
    "LIMIT_RULES",
    "FeldmanCousinsResult",
    "ToyUpperLimitResult",
    "feldman_cousins",
    "toy_upper_limit_prepared",
]

#: upper-limit rules: CLs (modified frequentist) or CLs+b (one-sided profile likelihood)
LIMIT_RULES = ("cls", "clsb")


class ToyUpperLimitResult(eqx.Module):
    """Toy-based upper limits; unpacks as ``obs, exp = result``.

    Attributes:
        obs [ncl], exp [ncl, 5] (ascending), cl, converged [ncl]: the limits.
        obs_err [ncl]: MC standard error of the observed limit.
        poi_grid [K]: the tested values; p_obs [K], p_obs_err [K], p_exp [K, 5]: the curve the
            rule uses (CLs or CLs+b) on the grid, observed and expected.
        q_obs [K], q_sb [K, N], q_b [K, N]: observed and toy test statistics per grid point.
    """

    __repr__ = result_repr  # numbers, shapes and the status spelled out

    obs: Float[Array, "*ncl"]
    exp: Float[Array, "*ncl 5"]
    cl: Float[Array, "*ncl"]
    converged: Bool[Array, "*ncl"]
    obs_err: Float[Array, "*ncl"]
    poi_grid: Float[Array, " K"]
    p_obs: Float[Array, " K"]
    p_obs_err: Float[Array, " K"]
    p_exp: Float[Array, "K 5"]
    q_obs: Float[Array, " K"]
    q_sb: Float[Array, "K N"]
    q_b: Float[Array, "K N"]
    rule: str = eqx.field(static=True)
    ntoys: int = eqx.field(static=True)
    seed: int = eqx.field(static=True)

    def __iter__(self):
        return iter((self.obs, self.exp))


class FeldmanCousinsResult(eqx.Module):
    """A unified interval [lower, upper] at ``cl``; ``converged`` is False if an end lies
    outside the grid (then it is NaN) or toys failed. ``t_obs`` [K], ``critical`` [K] and
    ``accepted`` [K] describe the construction on ``poi_grid``."""

    __repr__ = result_repr  # numbers, shapes and the status spelled out

    lower: Float[Array, ""]
    upper: Float[Array, ""]
    cl: float = eqx.field(static=True)
    converged: Bool[Array, ""]
    poi_grid: Float[Array, " K"]
    t_obs: Float[Array, " K"]
    critical: Float[Array, " K"]
    accepted: Bool[Array, " K"]
    n_failed: int = eqx.field(static=True)

    def __iter__(self):
        return iter((self.lower, self.upper))


def check_rule(rule):
    if rule not in LIMIT_RULES:
        raise InvalidArgument(f"rule must be one of {LIMIT_RULES}, got {rule!r}")


def _check_grid(poi_grid, prep):
    grid = np.asarray(poi_grid, float).reshape(-1)
    if grid.size < 2 or not np.all(np.isfinite(grid)) or np.any(np.diff(grid) <= 0):
        raise InvalidArgument("poi_grid must hold at least 2 finite, strictly increasing values")
    return grid


def _observed_statistics(prep, model, grid):
    """(q_obs [K], t_obs [K], converged) on the observed data."""
    from ._asymptotics import profile_statistic

    starts = start_rows(prep.init, prep.free_fit.bestfit, prep.asimov_fit.bestfit, model=model)
    fits = _conditional_fits(model, prep.data, prep.init, prep.lo, prep.hi, prep.fixed,
                             prep.poi, jnp.asarray(grid), starts)  # fmt: skip
    cond = np.asarray(fits.twice_nll)
    free = min(float(prep.free_fit.twice_nll), float(np.min(cond)))
    mu_hat = float(prep.free_fit.bestfit[prep.poi])
    q = np.asarray(profile_statistic(prep.test_stat, grid, cond, free, mu_hat))
    t = np.clip(cond - free, 0.0, None)
    ok = bool(prep.free_fit.converged) and bool(np.all(np.asarray(fits.converged)))
    return q, t, ok


def default_poi_grid(prep, model, cl, rule, npoints=16):
    """The POI's lower bound (where p = 1 for q̃) and ``npoints − 1`` points from 0.5 × the
    smallest to 1.6 × the largest of the asymptotic (same rule) observed and ±2σ expected
    limits, within the POI bounds; the POI range when no asymptotic limit is available."""
    from ._limits import upper_limit_prepared

    lo_b = max(float(prep.lo[prep.poi]), 0.0)
    hi_b = float(prep.hi[prep.poi])
    asym = upper_limit_prepared(prep, model, cl=float(np.max(cl)), rule=rule)
    vals = np.concatenate([[float(asym.obs)], np.asarray(asym.exp, float)])
    vals = vals[np.isfinite(vals) & (vals > lo_b)]
    start, stop = lo_b, hi_b
    if vals.size:
        start, stop = max(0.5 * vals.min(), lo_b), min(1.6 * vals.max(), hi_b)
    if stop <= start:
        start, stop = lo_b, hi_b
    pts = np.linspace(start, stop, npoints - (start > lo_b))
    return np.unique(np.concatenate([[lo_b], pts]))


def grid_pvalues(q_obs, q_sb, q_b, rule="cls"):
    """The curve a limit rule uses on a μ grid: (p [K], its MC error [K], expected [K, 5]) —
    CLs (or CLs+b, ``rule="clsb"``) from the observed statistics ``q_obs`` [K] and the toy
    statistics ``q_sb``, ``q_b`` [K, N] (NaN = failed toy). Traceable."""
    q_sb, q_b = jnp.asarray(q_sb, float), jnp.asarray(q_b, float)
    clsb, clb, cls = jax.vmap(toy_pvalues)(jnp.asarray(q_obs, float), q_sb, q_b)
    n_sb = jnp.sum(jnp.isfinite(q_sb), axis=1)
    n_b = jnp.sum(jnp.isfinite(q_b), axis=1)
    e_sb, _, e_cls = pvalue_errors(clsb, clb, n_sb, n_b)
    exp = jax.vmap(expected_pvalues)(q_sb, q_b)  # (CLs+b, CLb, CLs), each [K, 5]
    if rule == "clsb":
        return clsb, e_sb, exp[0]
    return cls, e_cls, exp[2]


def grid_limits(grid, p_obs, p_err, p_exp, alphas, p_floor):
    """Limits at each α of ``alphas`` [L] from p-values on the grid
    (:func:`~jaxlike.infer.first_crossing`): (observed [L], its MC error [L], expected
    [L, 5] — ascending, as p_exp is in the band —, ok [L]: every crossing found). Traceable."""

    def one(a):
        mu, ok, err = first_crossing(grid, p_obs, a, p_err, p_floor)
        band = [first_crossing(grid, p_exp[:, i], a, None, p_floor) for i in range(5)]
        exp = jnp.stack([b[0] for b in band])
        return mu, err, exp, ok & jnp.all(jnp.stack([b[1] for b in band]))

    return jax.vmap(one)(jnp.atleast_1d(jnp.asarray(alphas, float)))


def toy_upper_limit_prepared(
    prep: HypoTestPrep,
    model,
    *,
    cl: Float[ArrayLike, "*ncl"] = 0.95,
    rule: str = "cls",
    poi_grid: Float[ArrayLike, " K"] | None = None,
    ntoys: int = 1000,
    seed: int = 0,
    toy_pars: str = "profiled",
    chunk: int | None = 4096,
    progress=False,
    search: bool = False,
) -> ToyUpperLimitResult:
    """Toy-based upper limit(s) on a POI grid (see the module docstring). ``poi_grid``:
    default :func:`default_poi_grid` (0 and 15 points around the asymptotic limits)."""
    check_rule(rule)
    check_toy_args(ntoys, toy_pars, seed)
    cls = np.asarray(cl, float)
    alphas = 1.0 - np.atleast_1d(cls)
    grid = (
        default_poi_grid(prep, model, cls, rule)
        if poi_grid is None
        else _check_grid(poi_grid, prep)
    )
    k, n = grid.size, int(ntoys)
    q_obs, _, obs_ok = _observed_statistics(prep, model, grid)
    gens = generating_pars(prep, model, np.append(grid, alternative_mu(prep.test_stat)), toy_pars)
    idx = np.arange(n)
    rows = {
        "gen": np.concatenate([np.repeat(np.arange(k), n), np.full(k * n, k)]),
        "set": np.concatenate([np.repeat(np.arange(1, k + 1), n), np.full(k * n, BACKGROUND_SET)]),
        "index": np.tile(idx, 2 * k),
        "mu": np.concatenate([np.repeat(grid, n), np.repeat(grid, n)]),
    }
    out = toy_statistics(
        prep, model, gens, rows, seed=seed, chunk=chunk, progress=progress, search=search
    )
    q_sb = out["q"][: k * n].reshape(k, n)
    q_b = out["q"][k * n :].reshape(k, n)
    p_obs, p_err, p_exp = (np.asarray(v) for v in grid_pvalues(q_obs, q_sb, q_b, rule))
    n_failed = int(np.sum(~out["ok"]))
    obs, obs_err, exp, ok = (np.asarray(v) for v in grid_limits(grid, p_obs, p_err, p_exp,
                                                                 alphas, 0.5 / n))  # fmt: skip
    conv = ok & obs_ok & (n_failed == 0)
    if cls.ndim == 0:
        obs, obs_err, exp, conv = obs[0], obs_err[0], exp[0], conv[0]
    f = lambda x: jnp.asarray(x, float)  # noqa: E731
    return ToyUpperLimitResult(
        obs=f(obs),
        exp=f(exp),
        cl=f(cls),
        converged=jnp.asarray(conv),
        obs_err=f(obs_err),
        poi_grid=f(grid),
        p_obs=f(p_obs),
        p_obs_err=f(p_err),
        p_exp=f(p_exp),
        q_obs=f(q_obs),
        q_sb=f(q_sb),
        q_b=f(q_b),
        rule=rule,
        ntoys=n,
        seed=int(seed),
    )


def _edge(grid, d, inside, outside):
    """Where d = t_obs − c crosses 0 between an accepted (d ≤ 0) and a rejected point."""
    x0, x1, d0, d1 = grid[inside], grid[outside], d[inside], d[outside]
    if not (np.isfinite(d0) and np.isfinite(d1)) or d1 == d0:
        return float(x0)
    return float(x0 + (0.0 - d0) * (x1 - x0) / (d1 - d0))


def feldman_cousins(
    data,
    model,
    *,
    cl: float = 0.90,
    poi_grid: Float[ArrayLike, " K"],
    ntoys: int = 2000,
    seed: int = 0,
    toy_pars: str = "profiled",
    init_pars=None,
    par_bounds=None,
    fixed_params=None,
    chunk: int | None = 4096,
    progress=False,
    search: bool = False,
) -> FeldmanCousinsResult:
    """Unified (Feldman–Cousins) interval for the POI by a toy Neyman construction on
    ``poi_grid`` (see the module docstring): ``ntoys`` toys per grid point, all grid points
    fitted in vmapped chunks. The POI bounds are the physical region (μ̂ is kept inside).

    For a single-bin counting model without nuisances the exact construction is
    :func:`~jaxlike.infer.feldman_cousins_counting`.
    """
    from ._hypotest import hypotest_prepare

    cl = float(cl)
    if not 0.0 < cl < 1.0:
        raise InvalidArgument(f"cl must be in (0, 1), got {cl}")
    check_toy_args(ntoys, toy_pars, seed)
    prep = hypotest_prepare(data, model, test_stat="qtilde", init_pars=init_pars,
                            par_bounds=par_bounds, fixed_params=fixed_params)  # fmt: skip
    grid = _check_grid(poi_grid, prep)
    k, n = grid.size, int(ntoys)
    _, t_obs, obs_ok = _observed_statistics(prep, model, grid)
    gens = generating_pars(prep, model, grid, toy_pars)
    rows = {
        "gen": np.repeat(np.arange(k), n),
        "set": np.repeat(np.arange(1, k + 1), n),
        "index": np.tile(np.arange(n), k),
        "mu": np.repeat(grid, n),
    }
    out = toy_statistics(
        prep, model, gens, rows, seed=seed, chunk=chunk, progress=progress, search=search
    )
    t = out["t"].reshape(k, n)
    crit = np.empty(k)
    for j in range(k):
        tj = t[j][np.isfinite(t[j])]
        crit[j] = np.quantile(tj, cl, method="inverted_cdf") if tj.size else np.nan
    d = t_obs - crit
    tol = 1e-9 * np.maximum(1.0, np.abs(crit))
    accepted = d <= tol
    idx = np.flatnonzero(accepted)
    n_failed = int(np.sum(~out["ok"]))
    if idx.size == 0:
        lower = upper = np.nan
        ok = False
    else:
        i0, i1 = idx[0], idx[-1]
        ok = obs_ok and n_failed == 0
        if i0 == 0:
            at_bound = grid[0] <= max(float(prep.lo[prep.poi]), 0.0) + 1e-12
            lower = float(grid[0]) if at_bound else np.nan
            ok = ok and at_bound
        else:
            lower = _edge(grid, d, i0, i0 - 1)
        if i1 == k - 1:
            upper, ok = np.nan, False
        else:
            upper = _edge(grid, d, i1, i1 + 1)
    return FeldmanCousinsResult(
        lower=jnp.asarray(lower, float),
        upper=jnp.asarray(upper, float),
        cl=cl,
        converged=jnp.asarray(bool(ok)),
        poi_grid=jnp.asarray(grid),
        t_obs=jnp.asarray(t_obs),
        critical=jnp.asarray(crit),
        accepted=jnp.asarray(accepted),
        n_failed=n_failed,
    )


#: the fields :func:`toy_limits_traced` returns (per hypothesis; ``*_toys`` limits have an axis
#: over the CL levels, ``ul_exp_toys`` then one over the 5 expected bands)
TOY_SCAN_FIELDS = (
    "ul_obs_toys",
    "ul_exp_toys",
    "ul_obs_toys_err",
    "toy_limit_converged",
    "p0_toys",
    "p0_toys_err",
    "toys_failed",
    "toy_grid",
    "toy_p_obs",
)


def traced_poi_grid(limits, lo, hi, npoints):
    """In the trace: 0 and ``npoints − 1`` points from 0.5 × the smallest to 1.6 × the largest
    finite positive value of ``limits`` (asymptotic observed and expected limits), capped at
    the POI upper bound ``hi``; [0, hi] when none is finite."""
    lim = jnp.asarray(limits, float).reshape(-1)
    good = jnp.isfinite(lim) & (lim > 0)
    small = jnp.min(jnp.where(good, lim, jnp.inf))
    large = jnp.max(jnp.where(good, lim, -jnp.inf))
    any_good = jnp.any(good)
    start = jnp.where(any_good, jnp.maximum(0.5 * small, lo), hi / npoints)
    stop = jnp.where(any_good, jnp.minimum(1.6 * large, hi), hi)
    stop = jnp.where(stop > start, stop, start * 2.0 + 1e-12)
    t = jnp.linspace(0.0, 1.0, npoints - 1)
    return jnp.concatenate([jnp.zeros((1,)), start + t * (stop - start)])


def toy_limits_traced(
    prep: HypoTestPrep,
    model,
    key,
    limits,
    *,
    ntoys: int,
    cl=(0.95,),
    rule: str = "cls",
    npoints: int = 6,
    toy_pars: str = "profiled",
) -> dict:
    """Toy-based upper limits and the toy p0 of one hypothesis, entirely inside the trace (for
    scans: vmap over hypotheses). Grid: :func:`traced_poi_grid` around the asymptotic
    ``limits``, whose first point is μ = 0; at every grid point ``ntoys`` s+b toys (set k + 1)
    and the one background set (set 0, refitted at each μ_k) as in
    :func:`toy_upper_limit_prepared`. The background toys at μ = 0 also give the toy p0:
    q0 = 2NLL(0) − 2NLL(μ̂ ≥ 0) on each, p0 = P(q0 ≥ q0_obs). Returns the
    :data:`TOY_SCAN_FIELDS`."""
    from ._asymptotics import profile_statistic
    from ._toys import _toy_row, fisher_hessians

    check_rule(rule)
    poi, ts = prep.poi, prep.test_stat
    lo_p, hi_p = jnp.maximum(prep.lo[poi], 0.0), prep.hi[poi]
    grid = traced_poi_grid(limits, lo_p, hi_p, npoints)
    mu_a = alternative_mu(ts)
    mus = jnp.append(grid, mu_a)
    starts = start_rows(prep.init, prep.free_fit.bestfit, prep.asimov_fit.bestfit, model=model)
    obs_fits = conditional_fits(model, prep.data, prep.init, prep.lo, prep.hi, prep.fixed, poi,
                                mus, starts)  # fmt: skip
    gens = generators(prep.init, poi, mus, obs_fits if toy_pars == "profiled" else None)
    free_nll = jnp.minimum(prep.free_fit.twice_nll, jnp.min(obs_fits.twice_nll))
    mu_hat = prep.free_fit.bestfit[poi]
    q_obs = profile_statistic(ts, grid, obs_fits.twice_nll[:-1], free_nll, mu_hat)
    k = grid.shape[0]
    idx = jnp.arange(ntoys)

    fishers = fisher_hessians(model, gens)

    def row(g, s, i, m):
        return _toy_row(model, gens[g], key, s, i, m, prep.init, prep.lo, prep.hi, prep.fixed,
                        poi, fisher=jax.tree.map(lambda a: a[g], fishers))  # fmt: skip

    per_k = jax.vmap(jax.vmap(row, in_axes=(None, None, 0, None)), in_axes=(0, 0, None, 0))
    sb = per_k(jnp.arange(k), jnp.arange(1, k + 1), idx, grid)
    bg = per_k(jnp.full(k, k), jnp.full(k, BACKGROUND_SET), idx, grid)

    def stat(out):
        q = profile_statistic(ts, grid[:, None], out["cond"], out["free"], out["mu_hat"])
        return jnp.where(out["ok"] & jnp.isfinite(q), q, jnp.nan)

    q_sb, q_b = stat(sb), stat(bg)
    p_obs, p_err, p_exp = grid_pvalues(q_obs, q_sb, q_b, rule)
    alphas = 1.0 - jnp.atleast_1d(jnp.asarray(cl, float))
    ul, ul_err, ul_exp, ok = grid_limits(grid, p_obs, p_err, p_exp, alphas, 0.5 / ntoys)
    n_sb = jnp.sum(jnp.isfinite(q_sb), axis=1)
    n_b = jnp.sum(jnp.isfinite(q_b), axis=1)
    failed = 2 * k * ntoys - jnp.sum(n_sb) - jnp.sum(n_b)
    # toy p0 from the background toys at μ = 0 (grid[0]): t = 2NLL(0) − 2NLL(μ̂ ≥ 0) = q0
    t0 = jnp.where(bg["ok"][0], jnp.clip(bg["cond"][0] - bg["free"][0], 0.0), jnp.nan)
    q0_obs = jnp.clip(obs_fits.twice_nll[0] - free_nll, 0.0)
    p0, _, _ = toy_pvalues(q0_obs, t0, t0)
    p0_err, _, _ = pvalue_errors(p0, p0, jnp.sum(jnp.isfinite(t0)), 1)
    return {
        "ul_obs_toys": ul,
        "ul_exp_toys": ul_exp,
        "ul_obs_toys_err": ul_err,
        "toy_limit_converged": ok & (failed == 0) & jnp.all(obs_fits.converged),
        "p0_toys": p0,
        "p0_toys_err": p0_err,
        "toys_failed": failed,
        "toy_grid": grid,
        "toy_p_obs": p_obs,
    }
