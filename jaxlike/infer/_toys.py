r"""Toy-based (frequentist) hypothesis tests: sampled test-statistic distributions, CLs, CLs+b,
CLb, their Monte-Carlo uncertainties and the expected band.

For a tested POI value μ and a test statistic q (q̃μ, qμ or q0, :mod:`._asymptotics`), the
p-values are tail fractions of toy distributions (pyhf's ``ToyCalculator``):

.. math::
    CL_{s+b} = P(q \ge q_{obs} \mid \mu), \qquad CL_b = P(q \ge q_{obs} \mid \mu_A), \qquad
    CL_s = CL_{s+b} / CL_b,

estimated by the fractions of N toys drawn at μ ("s+b" toys) and at μ_A = 0 (μ_A = 1 for q0,
where μ = 0 is the tested hypothesis and CL_{s+b} = p0) with q ≥ q_obs. Every toy is fitted twice
(free and μ-conditional) by local fits: the conditional fit starts from the generating point
θ_gen with the POI set to μ (the toy scatters around θ_gen, so its minimum is a few Newton
steps away; pyhf starts from the initial values, which costs twice the iterations on the ALP
windows and finds the same minima), the free fit from the conditional minimum with the POI
released (so 2NLL(μ̂) ≤ 2NLL(μ) and q ≥ 0 by construction).
The expected band is pyhf's: the p-values (CLs+b, CLb, CLs) of every background toy taken as
the observation, at the 2.275, 15.87, 50, 84.13, 97.725 percentiles (ascending, N = 2 … −2).

Toys are generated inside the compiled function: toy i of a set with id r is
``model.sample(θ_gen, fold_in(fold_in(PRNGKey(seed), r), i), table)``, so a toy does not depend
on the chunk size, the device count or the other toys; ``table`` (:func:`toy_tables`, built on
the host once per generating point) draws its Poisson counts by inverse CDF. The nuisance
parameters of the generating point θ_gen are, by ``toy_pars``:

- ``"profiled"`` (default; pyhf 0.7's ``ToyCalculator`` and the LHC recipe): the conditional
  maximum-likelihood estimate θ̂̂(μ) on the observed data, auxiliary data generated around it;
- ``"init"``: the model's initial values with the POI set (a pre-fit generation).

Monte-Carlo uncertainties: a tail fraction p of n toys has σ_p = √(p(1 − p)/n); CLs (two
independent sets) σ_CLs = CLs √((σ_{s+b}/CL_{s+b})² + (σ_b/CL_b)²); the expected band's by a
bootstrap over both toy sets. Toys whose fits did not converge are left out of every fraction
and counted (``n_failed``); the result is then not ``converged``.
"""

from __future__ import annotations

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._compile import jit
from ..exceptions import InvalidArgument, InvalidParameters
from ..fit import conditional_inputs, fit_arrays, fit_state, result_repr, start_rows
from ..linalg import masked_solve
from ..model import PoissonTable, poisson_table
from ..stream import batched_map
from ._asymptotics import profile_statistic
from ._hypotest import HypoTestPrep, _conditional

__all__ = [
    "EXPECTED_PERCENTILES",
    "expected_pvalues",
    "first_crossing",
    "pvalue_errors",
    "TOY_PARS",
    "ToyHypoTestResult",
    "generating_pars",
    "toy_pvalues",
    "toy_statistics",
    "toy_tables",
    "toy_hypotest_prepared",
]

#: generating points of toys: the profiled θ̂̂(μ) (pyhf, default) or the initial values
TOY_PARS = ("init", "profiled")

#: percentiles of the background-toy p-values for the expected band (N = 2, 1, 0, −1, −2 σ;
#: pyhf's ``ToyCalculator.expected_pvalues``)
EXPECTED_PERCENTILES = (2.27501319, 15.86552539, 50.0, 84.13447461, 97.72498681)

#: toy-set id of the background (μ_A) toys; s+b sets use 1, 2, ... (one per tested μ)
BACKGROUND_SET = 0


class ToyHypoTestResult(eqx.Module):
    """A toy-based test at ``mu``. Unpacks as ``cls_obs, cls_exp = result`` (like
    :class:`~jaxlike.infer.HypoTestResult`).

    Attributes:
        cls_obs, clsb_obs, clb_obs: observed p-values; ``*_err`` their MC standard errors.
        cls_exp, clsb_exp, clb_exp: expected band [5] (ascending, N = 2 … −2); ``*_exp_err``
            bootstrap standard errors.
        q_obs, mu_hat: the observed test statistic and POI estimate.
        q_sb, q_b: the sampled test statistics [ntoys] of the s+b and background toys (NaN
            where a toy's fits failed) — histogram them to see the distributions;
            ``mu_hat_sb``/``mu_hat_b`` the toys' POI estimates.
        n_failed: toys (of both sets) left out because a fit did not converge.
        converged: the observed fits converged and no toy failed.
        gen_sb, gen_b: the generating parameter vectors.
    """

    __repr__ = result_repr  # numbers, shapes and the status spelled out

    mu: Float[Array, ""]
    cls_obs: Float[Array, ""]
    clsb_obs: Float[Array, ""]
    clb_obs: Float[Array, ""]
    cls_obs_err: Float[Array, ""]
    clsb_obs_err: Float[Array, ""]
    clb_obs_err: Float[Array, ""]
    cls_exp: Float[Array, " 5"]
    clsb_exp: Float[Array, " 5"]
    clb_exp: Float[Array, " 5"]
    cls_exp_err: Float[Array, " 5"]
    clsb_exp_err: Float[Array, " 5"]
    clb_exp_err: Float[Array, " 5"]
    q_obs: Float[Array, ""]
    mu_hat: Float[Array, ""]
    q_sb: Float[Array, " ntoys"]
    q_b: Float[Array, " ntoys"]
    mu_hat_sb: Float[Array, " ntoys"]
    mu_hat_b: Float[Array, " ntoys"]
    n_failed: Int[Array, ""]
    converged: Bool[Array, ""]
    gen_sb: Float[Array, " npars"]
    gen_b: Float[Array, " npars"]
    test_stat: str = eqx.field(static=True)
    ntoys: int = eqx.field(static=True)
    seed: int = eqx.field(static=True)
    toy_pars: str = eqx.field(static=True)

    def __iter__(self):
        return iter((self.cls_obs, self.cls_exp))

    @property
    def p0_obs(self):
        """For q0: the observed discovery p-value (= CLs+b, pyhf's convention)."""
        return self.clsb_obs

    @property
    def p0_exp(self):
        return self.clsb_exp

    @property
    def significance_obs(self):
        """Z = Φ⁻¹(1 − p0) from the toy p-value (q0 only; +inf when no toy reached q_obs)."""
        return jax.scipy.stats.norm.isf(self.clsb_obs)


def check_toy_args(ntoys, toy_pars, seed=0):
    """Refuse a toy count below 1, an unknown generating point or a non-integer seed."""
    if isinstance(ntoys, bool) or int(ntoys) != ntoys or ntoys < 1:
        raise InvalidArgument(f"ntoys must be a positive integer, got {ntoys!r}")
    if toy_pars not in TOY_PARS:
        raise InvalidArgument(f"toy_pars must be one of {TOY_PARS}, got {toy_pars!r}")
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise InvalidArgument(f"seed must be a non-negative integer, got {seed!r}")


def alternative_mu(test_stat: str) -> float:
    """μ_A of the background toys: 1 for q0 (the alternative to μ = 0), else 0."""
    return 1.0 if test_stat == "q0" else 0.0


def generating_pars(prep: HypoTestPrep, model, mus, toy_pars: str = "profiled"):
    """Generating parameter vectors [K, P] of toys at the POI values ``mus`` [K].

    ``"profiled"``: the conditional fit θ̂̂(μ) to the observed data (one fit per μ, vmapped;
    pyhf's ``ToyCalculator``); ``"init"``: the initial values with the POI set."""
    mus = jnp.atleast_1d(jnp.asarray(mus, float))
    fits = None
    if toy_pars == "profiled":
        starts = start_rows(prep.init, prep.free_fit.bestfit, prep.asimov_fit.bestfit,
                             model=model)  # fmt: skip
        fits = _conditional_fits(model, prep.data, prep.init, prep.lo, prep.hi, prep.fixed,
                                 prep.poi, mus, starts)  # fmt: skip
    return generators(prep.init, prep.poi, mus, fits)


def generators(init, poi, mus, fits=None):
    """Generating vectors [K, P]: the best fits of the conditional ``fits`` at ``mus``
    (profiled), or, without fits, ``init`` with the POI set to each μ. Traceable."""
    if fits is not None:
        return fits.bestfit
    return jnp.broadcast_to(init, mus.shape + init.shape).at[:, poi].set(mus)


def conditional_fits(model, data, init, lo, hi, fixed, poi, mus, starts):
    """The μ-conditional fits to ``data`` at every value of ``mus`` (vmapped; traceable)."""
    return jax.vmap(
        lambda m: fit_arrays(
            model, data, *conditional_inputs(init, lo, hi, fixed, poi, m), starts=starts
        )
    )(mus)


_conditional_fits = jit(conditional_fits)


def fisher_hessians(model, gens):
    """Hessians [K, …] of 2NLL at each generating point θ_gen on its own expected data (main and
    auxiliary): twice the Fisher information at θ_gen, positive definite wherever the model
    constrains the free parameters. They give the first step of every toy fit
    (:func:`response_start`). Traceable."""
    return jax.vmap(lambda g: model.value_grad_hess(g, model.expected_data(g))[2])(gens)


def response_start(model, x, start, h, free, lo, hi):
    r"""The start of a toy fit moved by one linear-response step:

    .. math:: θ_1 = θ_0 - (H_A)^{-1}_{FF}\, ∇_F\, 2\mathrm{NLL}_x(θ_0)

    on the free parameters F, clipped to [lo, hi], with H_A the Fisher Hessian at the
    generating point (:func:`fisher_hessians`). A toy's auxiliary data shift every constrained
    parameter; at θ_0 the exact Hessian of the toy's likelihood is often indefinite (the
    fluctuated counts), and the damped Newton steps spent 3–5 iterations of a Belle II toy
    fit getting near the minimum that this one step predicts. θ_1 is kept only if it lowers
    2NLL_x (else θ_0): the minimum and its certificate come from the fit that follows.

    Returns (start, given): ``given = (θ_1, f, ∇f, ∇²f)`` of 2NLL_x at θ_1, which the fit
    from θ_1 takes instead of evaluating it again (``fit_state(..., given=)``; unused where
    θ_0 is kept)."""
    f0, g0 = jax.value_and_grad(model.twice_nll)(start, x)
    d, ok = masked_solve(h, free, jnp.zeros_like(g0), -jnp.where(free, g0, 0.0))
    t1 = jnp.clip(start + jnp.where(free, d, 0.0), lo, hi)
    f1, g1, h1 = model.value_grad_hess(t1, x)
    return jnp.where(ok & jnp.isfinite(f1) & (f1 < f0), t1, start), (t1, f1, g1, h1)


def toy_fit_pair(model, x, start, cond_box, lo, hi, fixed, search, fisher):
    """The two fits of a toy ``x``: the conditional fit (``cond_box`` = (lo, hi, fixed) with
    the POI held) from ``start`` moved by :func:`response_start` with ``fisher`` (unless
    None), then the free fit from its minimum with the POI released (a descent from the
    conditional minimum, so 2NLL(μ) − 2NLL(μ̂) ≥ 0). Each fit starts with the evaluation of
    its start that was already made (``given``): two minimiser iterations of ~10 per toy of
    the ALP window less (136 → 119 µs a toy, one process, 2 cores). Returns (the conditional fit's
    :class:`~jaxlike.fit.MinimizeState`, the free fit's :class:`~jaxlike.fit.FitResult`)."""
    c_lo, c_hi, c_fixed = cond_box
    at_start = None
    if fisher is not None:
        start, at_start = response_start(model, x, start, fisher, ~c_fixed, c_lo, c_hi)
    cond = fit_state(model, x, start, c_lo, c_hi, c_fixed, search=search, given=at_start)
    free = fit_arrays(model, x, cond.x, lo, hi, fixed, search=search,
                      given=(cond.x, cond.f, cond.grad, cond.hess))  # fmt: skip
    return cond, free


def _toy_row(model, gen, key, toy_set, index, mu, init, lo, hi, fixed, poi, search=False,
             fisher=None, table=None):  # fmt: skip
    """One toy: sample at ``gen`` (by the inverse CDF of ``table``, :func:`toy_tables`, when
    given), then the μ-conditional fit from ``gen`` with the POI set to
    μ (moved by :func:`response_start` with ``fisher``, the Fisher Hessian at ``gen``), and the
    free fit from the conditional minimum with the POI released (which keeps q ≥ 0 honest).
    ``init`` gives the values of fixed parameters (``gen`` equals it there)."""
    x = model.sample(gen, jax.random.fold_in(jax.random.fold_in(key, toy_set), index),
                     table=table)  # fmt: skip
    start, c_lo, c_hi, c_fixed = conditional_inputs(
        jnp.where(fixed, init, gen), lo, hi, fixed, poi, mu
    )
    cond, free = toy_fit_pair(model, x, start, (c_lo, c_hi, c_fixed), lo, hi, fixed, search,
                              fisher)  # fmt: skip
    return {
        "cond": cond.f,
        "free": free.twice_nll,
        "mu_hat": free.bestfit[poi],
        "ok": cond.converged & free.converged,
    }


def toy_fit_rows(model, gens, key, rows, init, lo, hi, fixed, poi, search=False, fishers=None,
                 tables=None):  # fmt: skip
    """Traceable: the toys of ``rows`` (``{"gen": [M], "set": [M], "index": [M], "mu": [M]}``:
    the generating row of ``gens``, the toy-set id, the toy index, the tested μ), by
    :func:`map_toys`.
    ``fishers``: :func:`fisher_hessians` of ``gens`` (computed here when None); ``tables``:
    :func:`toy_tables` of ``gens`` (None: JAX's rejection sampler).
    Returns 2NLL of the conditional and free fits, μ̂ and convergence, each [M]."""
    if fishers is None:
        fishers = fisher_hessians(model, gens)
    pick = lambda tree, g: jax.tree.map(lambda a: a[g], tree)  # noqa: E731
    f = lambda g, s, i, m: _toy_row(model, gens[g], key, s, i, m, init, lo, hi, fixed, poi,  # noqa: E731
                                    search, pick(fishers, g), pick(tables, g))  # fmt: skip
    args = (rows["gen"], rows["set"], rows["index"], rows["mu"])
    pad = padding_rows(rows["row"]) if "row" in rows else None
    return map_toys(f, args, init.shape[-1], pad, model.config.nmaindata)


def padding_rows(ids):
    """The padding rows [M] of a chunk of consecutive row ids: :func:`jaxlike.stream.batched_map`
    pads the last chunk by repeating its last row, so row k is padding where
    ids[k] ≠ ids[0] + k. NumPy or traced."""
    xp = np if isinstance(ids, np.ndarray) else jnp
    return ids != ids[0] + xp.arange(ids.shape[0])


#: on the CPU, toys of models with fewer parameters than this (and at most
#: :data:`SMALL_BINS` main-data entries) are all vmapped (see :func:`map_toys`)
SEQUENTIAL_MIN_PARS = 6
#: a model of fewer than :data:`SEQUENTIAL_MIN_PARS` parameters but more main-data entries
#: than this fits its toys in groups of :data:`WIDE_LANES` on the CPU: thousands of lanes of a
#: 100-bin model outgrow the caches (the 4-parameter HistFactory ALP window: 150 µs a toy all
#: vmapped, 83–91 in groups of 128 or 256)
SMALL_BINS = 16
WIDE_LANES = 128
#: on the CPU, toys per vmapped group for models of at most so many parameters (see
#: :func:`map_toys`); larger models fit their toys one after the other
CPU_LANES = ((12, 64), (24, 32), (32, 8))


def cpu_lanes(npars: int, m: int, nbins: int = 1) -> int:
    """Toys per vmapped group of :func:`map_toys` on the CPU, for ``m`` toys of a model with
    ``npars`` parameters and ``nbins`` main-data entries: below :data:`SEQUENTIAL_MIN_PARS`
    parameters all ``m`` (:data:`WIDE_LANES` above :data:`SMALL_BINS` bins), then by
    :data:`CPU_LANES`, 1 (one toy after the other) above."""
    if npars < SEQUENTIAL_MIN_PARS:
        return m if nbins <= SMALL_BINS else min(WIDE_LANES, m)
    return min(next((lanes for top, lanes in CPU_LANES if npars <= top), 1), m)


def map_toys(f, args, npars: int, pad=None, nbins: int = 1):
    """``f`` over the leading axis of the arrays ``args`` (traceable): the toys of one compiled
    call. On accelerators all vmapped (every toy a lane). On the CPU in groups of
    :func:`cpu_lanes` toys, vmapped within a group, the groups one after the other
    (``lax.map``); a group whose rows ``pad`` [M] marks all padding (the padding of
    :func:`jaxlike.stream.batched_map`) is skipped, its results zeros, to be dropped.

    A vmapped fit runs every lane until the slowest lane's last iteration; one after the
    other, every iteration pays the minimiser's bookkeeping (~100 small XLA operations, ~12 µs
    on the CPU) for one toy. Groups share it without waiting for the slowest of thousands.
    Toy fits on 2 cores (jax 0.10.2), µs per toy, one after the other / in groups / all vmapped:
    ALP window (8 parameters) 123 / **71** (64) / 129; synthetic 10 parameters 85 / **40** (64)
    / 85, 20: 146 / **81** (32), 32: 206 / **156** (8); the 1-bin validation workspace (2):
    24 / 5.6 (64) / **3.8**; the 100-bin HistFactory ALP window (4): 152 / **83** (128) / 150;
    sbottom (64): **2236** / 4089 (8). ``nbins``: the model's main-data entries
    (:func:`cpu_lanes`)."""
    m = jax.tree.leaves(args)[0].shape[0]
    lanes = m if jax.default_backend() != "cpu" else cpu_lanes(npars, m, nbins)
    if lanes >= m:
        return jax.vmap(f)(*args)
    rows = (*args, jnp.zeros((m,), bool) if pad is None else pad)
    if lanes == 1:  # f itself, not a vmap of one lane (whose conditionals evaluate both sides)
        one, grouped = f, rows
    else:
        groups = -(-m // lanes)
        extra = groups * lanes - m  # the last group is filled up with copies of the last row
        if extra:
            rows = jax.tree.map(
                lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], extra, axis=0)]), rows
            )
        grouped = jax.tree.map(lambda a: a.reshape(groups, lanes, *a.shape[1:]), rows)
        one = jax.vmap(f)
    if pad is None:  # nothing to skip: no conditional per group
        out = lax.map(lambda a: one(*a[:-1]), grouped)
    else:
        shapes = jax.eval_shape(one, *jax.tree.map(lambda a: a[0], grouped[:-1]))
        zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)
        out = lax.map(lambda a: lax.cond(jnp.all(a[-1]), lambda *_: zeros, one, *a[:-1]), grouped)
    if lanes == 1:
        return out
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:])[:m], out)


# through jaxlike's compile path: the exported-program cache, so a new process runs the toys of
# a model layout it has seen without tracing them again; the toy fits, which run long, with
# XLA's default options (see jaxlike._compile.jit)
_toy_fit_rows = jit(toy_fit_rows, cpu_options=False)


def toy_tables(model, gens) -> PoissonTable | None:
    """Inverse-CDF tables [K, …] of the Poisson data at every generating point of ``gens``
    [K, P] (host values): :func:`jaxlike.model.poisson_table` of
    ``model.poisson_means(θ_gen)``, so every toy count is one uniform and a binary search
    instead of a rejection loop (a toy of the ALP window: 157 → 136 µs, fits included). None for a
    stacked model, or where a table would be inexact or large (means ≳ 3·10⁴, e.g. shapesys
    τ ≈ 10¹¹): the toys then use JAX's sampler."""
    return _tables(model, _generator_arrays(model, jnp.asarray(gens, float))[1])


def _tables(model, means) -> PoissonTable | None:
    return None if model.batch_shape() else poisson_table(np.asarray(means))


def generator_arrays(model, gens):
    """(:func:`fisher_hessians`, ``model.poisson_means``) at every generating point of
    ``gens`` [K, P]: what the toys of those points need from the host, in one program."""
    return fisher_hessians(model, gens), jax.vmap(model.poisson_means)(gens)


_generator_arrays = jit(generator_arrays)


def toy_statistics(
    prep: HypoTestPrep,
    model,
    gens: Float[ArrayLike, "K npars"],
    rows: dict,
    *,
    seed: int = 0,
    chunk: int | None = 4096,
    progress=False,
    search: bool = False,
) -> dict:
    """Fit the toys of ``rows`` (see :func:`toy_fit_rows`) in chunks of ``chunk`` (one
    compiled function, :func:`jaxlike.stream.batched_map`) and return NumPy arrays
    ``q`` (the test statistic of ``prep.test_stat`` at each row's μ; NaN where a fit failed),
    ``t`` (the two-sided t = 2NLL(μ) − 2NLL(μ̂) within the POI bounds, for Feldman–Cousins),
    ``mu_hat`` and ``ok``."""
    key = jax.random.PRNGKey(int(seed))
    gens = jnp.asarray(gens, float)
    args = (prep.init, prep.lo, prep.hi, prep.fixed, prep.poi)
    fishers, means = _generator_arrays(model, gens)
    tables = _tables(model, means)

    def run(batch):
        return _toy_fit_rows(model, gens, key, batch, *args, search, fishers, tables)

    rows = {k: np.asarray(v) for k, v in rows.items()}
    rows["row"] = np.arange(len(rows["mu"]))  # marks the padding rows of the last chunk
    # bucketed chunk sizes (8, 32, …, 2048, ``chunk``): toy sets of different sizes share compiles
    out = batched_map(run, rows, chunk=chunk, bucket=True, progress=progress, label="toys")
    q = np.asarray(
        profile_statistic(prep.test_stat, rows["mu"], out["cond"], out["free"], out["mu_hat"])
    )
    t = np.clip(np.asarray(out["cond"]) - np.asarray(out["free"]), 0.0, None)
    ok = np.asarray(out["ok"]) & np.isfinite(q)
    return {
        "q": np.where(ok, q, np.nan),
        "t": np.where(ok, t, np.nan),
        "mu_hat": np.asarray(out["mu_hat"]),
        "ok": ok,
    }


def toy_pvalues(q_obs, q_sb, q_b):
    """(CLs+b, CLb, CLs) of observed statistic(s) ``q_obs`` from toy statistics ``q_sb`` and
    ``q_b`` (last axis: toys; NaN entries — failed toys — are left out): the tail fractions
    P(q ≥ q_obs), ties included (relative tolerance 1e-9 for the rounding of equal
    statistics). Traceable (jit/vmap); CLs is NaN where CLb = 0."""
    q_obs = jnp.asarray(q_obs, float)

    def tail(q):
        q = jnp.asarray(q, float)
        ok = jnp.isfinite(q)
        ordered = jnp.sort(jnp.where(ok, q, -jnp.inf))  # failed toys below every value
        tol = 1e-9 * jnp.maximum(1.0, jnp.abs(q_obs))
        count = ordered.shape[-1] - jnp.searchsorted(ordered, q_obs - tol, side="left")
        return count / jnp.maximum(jnp.sum(ok), 1)

    clsb, clb = tail(q_sb), tail(q_b)
    return clsb, clb, jnp.where(clb > 0, clsb / jnp.where(clb > 0, clb, 1.0), jnp.nan)


def expected_pvalues(q_sb, q_b):
    """pyhf's expected band: the p-values of every background toy as an observation, at
    :data:`EXPECTED_PERCENTILES` (linear interpolation; failed toys left out). Returns
    (clsb, clb, cls), each [5] (NaN without a valid background toy). Traceable."""
    b = jnp.asarray(q_b, float)
    ok = jnp.isfinite(b)
    pv = toy_pvalues(jnp.where(ok, b, 0.0), q_sb, b)
    pct = jnp.asarray(EXPECTED_PERCENTILES)
    return tuple(jnp.nanpercentile(jnp.where(ok, v, jnp.nan), pct) for v in pv)


def first_crossing(grid, p, alpha, p_err=None, p_floor=0.0):
    r"""(μ, ok, σ_μ): the first downward crossing of ``alpha`` by p(μ) sampled on ``grid``.

    Interpolated linearly in z = √(−2 ln p) between the bracketing points — z is nearly
    linear in μ where p is a Gaussian tail (the asymptotic regime; the same variable the
    asymptotic limit search uses), so a coarse grid still gives the crossing. p is floored at
    ``p_floor`` (e.g. half a toy, 0.5/N: a tail no toy reached is not p = 0). Not ok (μ NaN)
    when p < α already at the first point or nowhere. With ``p_err`` (MC errors of p),
    σ_μ = σ_z / |dz/dμ| with σ_z = σ_p / (p z) interpolated between the two points (else
    NaN). Traceable."""
    grid, p = jnp.asarray(grid, float), jnp.asarray(p, float)
    below = jnp.isfinite(p) & (p < alpha)
    k = jnp.argmax(below)
    ok = jnp.any(below) & (k > 0)
    km = jnp.maximum(k - 1, 0)
    floor = jnp.maximum(p_floor, 1e-300)
    p0, p1 = jnp.clip(p[km], floor, 1.0), jnp.clip(p[k], floor, 1.0)
    z0, z1 = jnp.sqrt(-2.0 * jnp.log(p0)), jnp.sqrt(-2.0 * jnp.log(p1))
    za = jnp.sqrt(-2.0 * jnp.log(alpha))
    dx = jnp.where(k > km, grid[k] - grid[km], 1.0)
    slope = (z1 - z0) / dx
    rising = slope > 0
    mu = jnp.where(rising, grid[km] + (za - z0) / jnp.where(rising, slope, 1.0), grid[k])
    err = jnp.asarray(jnp.nan)
    if p_err is not None:
        p_err = jnp.asarray(p_err, float)
        w = jnp.clip((mu - grid[km]) / dx, 0.0, 1.0)
        sz = lambda e, pp, z: e / (pp * jnp.maximum(z, 1e-12))  # noqa: E731
        s_z = (1 - w) * sz(p_err[km], p0, z0) + w * sz(p_err[k], p1, z1)
        err = jnp.where(rising & ok, s_z / jnp.where(rising, slope, 1.0), jnp.nan)
    return jnp.where(ok, mu, jnp.nan), ok, err


def pvalue_errors(clsb, clb, n_sb, n_b):
    """Binomial MC errors (σ_CLs+b, σ_CLb, σ_CLs) of tail fractions from n_sb and n_b toys:
    σ_p = √(p(1 − p)/n); CLs = CLs+b/CLb of independent sets, relative errors in quadrature
    (when no s+b toy reached q_obs, the error of one toy, 1/n_sb, over CLb). Traceable."""
    e_sb = jnp.sqrt(jnp.clip(clsb * (1 - clsb), 0.0) / jnp.maximum(n_sb, 1))
    e_b = jnp.sqrt(jnp.clip(clb * (1 - clb), 0.0) / jnp.maximum(n_b, 1))
    safe_b = jnp.where(clb > 0, clb, 1.0)
    rel = jnp.sqrt((e_sb / jnp.where(clsb > 0, clsb, 1.0)) ** 2 + (e_b / safe_b) ** 2)
    e_cls = jnp.where(clsb > 0, clsb / safe_b * rel, 1.0 / jnp.maximum(n_sb, 1) / safe_b)
    return e_sb, e_b, jnp.where(clb > 0, e_cls, jnp.nan)


def _host_pvalues(sb, b):
    """(CLs+b, CLb, CLs) [n_b] of every background toy ``b`` (finite) as the observation, from
    the sorted finite s+b statistics ``sb`` — :func:`toy_pvalues` in NumPy."""
    tol = 1e-9 * np.maximum(1.0, np.abs(b))
    b_sorted = np.sort(b)

    def tail(ordered):
        count = ordered.size - np.searchsorted(ordered, b - tol, side="left")
        return count / max(ordered.size, 1)

    clsb, clb = tail(sb), tail(b_sorted)
    with np.errstate(invalid="ignore", divide="ignore"):
        return clsb, clb, np.where(clb > 0, clsb / np.where(clb > 0, clb, 1.0), np.nan)


def _nanpercentiles(v):
    """np.nanpercentile of :data:`EXPECTED_PERCENTILES` along the last axis; without NaN, the
    same numbers by np.percentile (NumPy's nanpercentile loops over the rows of a 2-D array)."""
    q = np.asarray(EXPECTED_PERCENTILES)
    v = np.asarray(v)
    if v.ndim > 1 and v.size and not np.isnan(v).any():
        return np.percentile(v, q, axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN CLs: NaN, as traced
        return np.nanpercentile(v, q, axis=-1)


def expected_pvalues_host(q_sb, q_b):
    """:func:`expected_pvalues` in NumPy, for host arrays (the same tail fractions, tolerance,
    failed toys and linear interpolation): one sort and two binary searches per toy set,
    where the traced version under ``vmap`` cost 38 ms for 100 bootstrap replicas of 500
    toys. Returns (clsb, clb, cls), each [5]."""
    sb, b = np.asarray(q_sb, float), np.asarray(q_b, float)
    sb, b = np.sort(sb[np.isfinite(sb)]), b[np.isfinite(b)]
    if b.size == 0:
        return tuple(np.full(len(EXPECTED_PERCENTILES), np.nan) for _ in range(3))
    return tuple(_nanpercentiles(v) for v in _host_pvalues(sb, b))


def _replica_tails(values, draws, queries, x):
    """Tail fractions [R, m] of bootstrap replicas: the fraction of the replica
    ``values[draws[r]]`` (``draws`` [R, n]) at or above ``x[queries[r, j]] − tol`` (``x`` the
    query values, ``queries`` [R, m] indices into them), with the tolerance of
    :func:`_host_pvalues`. A replica holds the original values with multiplicities, so its
    count above a point is a suffix sum of its multiplicities over the sorted originals: one
    sort and one binary search in all, instead of one per replica."""
    n = values.size
    order = np.argsort(values, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    reps = draws.shape[0]
    flat = (np.arange(reps)[:, None] * n + rank[draws]).ravel()
    mult = np.bincount(flat, minlength=reps * n).reshape(reps, n)
    suffix = np.zeros((reps, n + 1), dtype=np.int64)
    suffix[:, :n] = np.cumsum(mult[:, ::-1], axis=1)[:, ::-1]
    pos = np.searchsorted(values[order], x - 1e-9 * np.maximum(1.0, np.abs(x)), side="left")
    return suffix[np.arange(reps)[:, None], pos[queries]] / max(n, 1)


def _bootstrap_band_err(q_sb, q_b, seed, n_boot=100):
    """Bootstrap standard errors [3, 5] of the expected band (both toy sets resampled): the
    band of every replica as :func:`expected_pvalues_host` computes it, vectorised over the
    replicas (:func:`_replica_tails`)."""
    rng = np.random.default_rng([int(seed), 7919])
    sb = np.asarray(q_sb, float)[np.isfinite(q_sb)]
    b = np.asarray(q_b, float)[np.isfinite(q_b)]
    if sb.size == 0 or b.size == 0:
        return np.full((3, 5), np.nan)
    idx_sb = rng.integers(0, sb.size, (n_boot, sb.size))
    idx_b = rng.integers(0, b.size, (n_boot, b.size))
    clsb = _replica_tails(sb, idx_sb, idx_b, b)  # [n_boot, n_b]
    clb = _replica_tails(b, idx_b, idx_b, b)  # > 0: each query is in its own replica
    with np.errstate(invalid="ignore", divide="ignore"):
        cls = np.where(clb > 0, clsb / np.where(clb > 0, clb, 1.0), np.nan)
    reps = np.moveaxis(_nanpercentiles(np.stack([clsb, clb, cls])), 0, -1)  # [3, n_boot, 5]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a band entry NaN in every replica
        return np.nanstd(reps, axis=1, ddof=1)


def toy_hypotest_prepared(
    prep: HypoTestPrep,
    model,
    mu,
    *,
    ntoys: int = 2000,
    seed: int = 0,
    toy_pars: str = "profiled",
    chunk: int | None = 4096,
    progress=False,
    search: bool = False,
) -> ToyHypoTestResult:
    """The toy-based test at ``mu`` from the μ-independent fits of
    :func:`~jaxlike.infer.hypotest_prepare` (see the module docstring). ``search``: run the
    minimiser's global search in every toy fit (default False: local Newton fits from the
    initial values, the free fit also from the conditional minimum — pyhf's toys are local
    fits too; the search makes toys ~5× slower)."""
    check_toy_args(ntoys, toy_pars, seed)
    ts, poi = prep.test_stat, prep.poi
    if ts == "q0" and float(mu) != 0.0:
        raise InvalidParameters(f"the q0 test is at μ = 0, got {mu}")
    mu = float(mu)
    cond = _conditional(model, prep.data, prep.init, prep.lo, prep.hi, prep.fixed, poi, mu,
                        start_rows(prep.init, prep.free_fit.bestfit, prep.asimov_fit.bestfit,
                                    model=model))  # fmt: skip
    mu_hat = float(prep.free_fit.bestfit[poi])
    free_nll = min(float(prep.free_fit.twice_nll), float(cond.twice_nll))
    q_obs = float(profile_statistic(ts, mu, float(cond.twice_nll), free_nll, mu_hat))
    if toy_pars == "profiled":  # θ̂̂(μ) is ``cond``: only θ̂̂(μ_A) is fitted
        gen_b = generating_pars(prep, model, [alternative_mu(ts)], toy_pars)
        gens = jnp.concatenate([jnp.asarray(cond.bestfit)[None], gen_b])
    else:
        gens = generating_pars(prep, model, [mu, alternative_mu(ts)], toy_pars)
    n = int(ntoys)
    idx = np.arange(n)
    rows = {
        "gen": np.repeat([0, 1], n),
        "set": np.repeat([1, BACKGROUND_SET], n),
        "index": np.concatenate([idx, idx]),
        "mu": np.full(2 * n, mu),
    }
    out = toy_statistics(
        prep, model, gens, rows, seed=seed, chunk=chunk, progress=progress, search=search
    )
    q_sb, q_b = out["q"][:n], out["q"][n:]
    n_sb, n_b = int(np.sum(np.isfinite(q_sb))), int(np.sum(np.isfinite(q_b)))
    clsb, clb, cls = (float(v) for v in toy_pvalues(q_obs, q_sb, q_b))
    e_sb, e_b, e_cls = (float(v) for v in pvalue_errors(clsb, clb, n_sb, n_b))
    band = expected_pvalues_host(q_sb, q_b)
    band_err = _bootstrap_band_err(q_sb, q_b, seed)
    n_failed = 2 * n - n_sb - n_b
    obs_ok = bool(prep.free_fit.converged) and bool(cond.converged)
    f = lambda x: jnp.asarray(x, float)  # noqa: E731
    return ToyHypoTestResult(
        mu=f(mu),
        cls_obs=f(cls),
        clsb_obs=f(clsb),
        clb_obs=f(clb),
        cls_obs_err=f(e_cls),
        clsb_obs_err=f(e_sb),
        clb_obs_err=f(e_b),
        cls_exp=f(band[2]),
        clsb_exp=f(band[0]),
        clb_exp=f(band[1]),
        cls_exp_err=f(band_err[2]),
        clsb_exp_err=f(band_err[0]),
        clb_exp_err=f(band_err[1]),
        q_obs=f(q_obs),
        mu_hat=f(mu_hat),
        q_sb=f(q_sb),
        q_b=f(q_b),
        mu_hat_sb=f(out["mu_hat"][:n]),
        mu_hat_b=f(out["mu_hat"][n:]),
        n_failed=jnp.asarray(n_failed),
        converged=jnp.asarray(obs_ok and n_failed == 0),
        gen_sb=gens[0],
        gen_b=gens[1],
        test_stat=ts,
        ntoys=n,
        seed=int(seed),
        toy_pars=toy_pars,
    )
