r"""Upper limits by vectorised root finding on CLs(μ) = α, observed and expected band at once.

For each of the six curves (observed, expected N = 2 … −2) and each confidence level, solve

.. math:: h(\mu) = \sqrt{-2\ln CL_s(\mu)} - \sqrt{-2\ln\alpha} = 0, \qquad \alpha = 1 - CL.

Asymptotically √(−2 ln CLs) grows almost linearly in μ (≈ μ/σ), so the Illinois variant of
regula falsi on h converges in a handful of steps; it is bracketing, hence robust. Every
iteration evaluates all 6 × n_CL curves at their own trial μ with one vmapped pair of
conditional fits (warm-started from the free fits); the μ-independent fits are shared.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax

from ..fit import fit_arrays
from ._asymptotics import asymptotic_pvalues, profile_statistic
from ._hypotest import _conditional_inputs, hypotest_prepare

__all__ = ["UpperLimitResult", "upper_limit"]


class UpperLimitResult(eqx.Module):
    """Upper limits; unpacks as ``obs, exp = result`` (``exp``: 5 values, ascending like
    pyhf's band). ``converged`` is False if a root was not bracketed within the POI range
    (then the limit is NaN) or a fit at the final point did not converge."""

    obs: jax.Array
    exp: jax.Array
    cl: jax.Array
    converged: jax.Array
    iterations: jax.Array
    bracket: jax.Array

    def __iter__(self):
        return iter((self.obs, self.exp))


def _h(cls, alpha):
    return jnp.sqrt(-2.0 * jnp.log(jnp.clip(cls, 1e-300, 1.0))) - jnp.sqrt(-2.0 * jnp.log(alpha))


def _evaluate(prep, model, mu, start_d, start_a):
    """CLs of the six curves at their own trial μ (mu: [ncl, 6]).

    Only the observed curve needs a conditional fit to the data; every curve needs one to the
    Asimov data: 1 + 6 fits per level. ``start_*`` are warm starts (previous iterate).
    Returns (cls [ncl, 6], converged [ncl, 6], bestfit_d [ncl, P], bestfit_a [ncl, 6, P]).
    """
    ncl, poi, ts = mu.shape[0], prep.poi, prep.test_stat

    def cond_fit(data, start, m):
        return fit_arrays(
            model, data, *_conditional_inputs(start, prep.lo, prep.hi, prep.fixed, poi, m)
        )

    fd = jax.vmap(lambda st, m: cond_fit(prep.data, st, m))(start_d, mu[:, 0])
    fa = jax.vmap(jax.vmap(lambda st, m: cond_fit(prep.asimov_data, st, m)))(start_a, mu)
    q = profile_statistic(
        ts, mu[:, 0], fd.twice_nll, prep.free_fit.twice_nll, prep.free_fit.bestfit[poi]
    )
    qa = profile_statistic(
        ts, mu, fa.twice_nll, prep.free_fit_asimov.twice_nll, prep.free_fit_asimov.bestfit[poi]
    )
    (_, _, cls_obs), _ = jax.vmap(lambda x, y: asymptotic_pvalues(ts, x, y, prep.calc_base_dist))(
        q, qa[:, 0]
    )
    _, (_, _, band) = jax.vmap(
        jax.vmap(lambda x: asymptotic_pvalues(ts, jnp.zeros_like(x), x, prep.calc_base_dist))
    )(qa)
    cls_exp = jnp.diagonal(band[:, 1:, :], axis1=1, axis2=2)  # curve k uses band entry k-1
    cls = jnp.concatenate([cls_obs[:, None], cls_exp], axis=1)
    conv = fa.converged & jnp.concatenate([fd.converged[:, None], jnp.ones((ncl, 5), bool)], axis=1)
    return cls, conv, fd.bestfit, fa.bestfit


@eqx.filter_jit
def _limit_core(prep, model, alpha, mu_lo, mu_hi, rtol, maxiter):
    ncl = alpha.shape[0]
    al = jnp.repeat(alpha[:, None], 6, axis=1)  # [ncl, 6]
    npar = prep.init.shape[0]
    sd0 = jnp.broadcast_to(prep.free_fit.bestfit, (ncl, npar))
    sa0 = jnp.broadcast_to(prep.asimov_fit.bestfit, (ncl, 6, npar))

    # bracket [mu_lo, mu_hi], both ends in one batched evaluation
    ab = jnp.stack([jnp.full((ncl, 6), mu_lo), jnp.full((ncl, 6), mu_hi)])
    cls_ab, conv_ab, _, _ = jax.vmap(lambda m: _evaluate(prep, model, m, sd0, sa0))(ab)
    h_ab = _h(cls_ab, al[None])
    a, b, ha, hb = ab[0], ab[1], h_ab[0], h_ab[1]
    bracketed = (ha <= 0) & (hb >= 0)

    def cond(s):
        return (s[7] < maxiter) & ~jnp.all(s[8])

    def body(s):
        a, b, ha, hb, ca, cb, side, it, done, sd, sa = s
        c = jnp.where(hb != ha, b - hb * (b - a) / (hb - ha), 0.5 * (a + b))
        c = jnp.clip(c, jnp.minimum(a, b), jnp.maximum(a, b))
        c = jnp.where(done, b, c)
        cls_c, cc, sd_new, sa_new = _evaluate(prep, model, c, sd, sa)
        hc = _h(cls_c, al)
        same_as_b = jnp.sign(hc) == jnp.sign(hb)
        # Illinois: keep the sign change in [a, b]; halve the stale end's value on repeats.
        keep = lambda new, old: jnp.where(done, old, new)  # noqa: E731
        a, ha, ca = (keep(jnp.where(same_as_b, x, y), x) for x, y in ((a, b), (ha, hb), (ca, cb)))
        ha = keep(jnp.where(same_as_b & (side == 1), ha * 0.5, ha), ha)
        side = keep(jnp.where(same_as_b, 1, -1), side)
        b, hb, cb = keep(c, b), keep(hc, hb), keep(cc, cb)
        done = done | (jnp.abs(b - a) <= rtol * jnp.abs(b)) | (jnp.abs(hb) < 1e-10)
        return a, b, ha, hb, ca, cb, side, it + 1, done, sd_new, sa_new

    side0 = jnp.zeros((ncl, 6), dtype=jnp.int32)
    state = (a, b, ha, hb, conv_ab[0], conv_ab[1], side0, jnp.asarray(0), ~bracketed, sd0, sa0)
    a, b, ha, hb, ca, cb, _, it, done, _, _ = lax.while_loop(cond, body, state)
    use_b = jnp.abs(hb) <= jnp.abs(ha)
    root = jnp.where(use_b, b, a)
    ok = bracketed & done & jnp.where(use_b, cb, ca)
    return jnp.where(bracketed, root, jnp.nan), ok, it


def upper_limit(
    data,
    model,
    *,
    cl=0.95,
    test_stat="qtilde",
    poi_range=None,
    rtol=1e-6,
    maxiter=60,
    init_pars=None,
    par_bounds=None,
    fixed_params=None,
):
    """Observed and expected (±1σ, ±2σ) upper limits on the POI at confidence level ``cl``.

    Args:
        cl: a level or an array of levels (all solved in one batch).
        poi_range: (low, high) bracket; default (0, POI upper bound). A curve whose CLs does
            not fall below 1 − cl within it yields NaN and ``converged = False``.
        rtol: relative tolerance on μ.

    Returns:
        :class:`UpperLimitResult` with ``obs`` (shape ``cl.shape``) and ``exp``
        (``cl.shape + (5,)``, ascending: N = 2, 1, 0, −1, −2 of the CLs band).
    """
    prep = hypotest_prepare(
        data,
        model,
        test_stat=test_stat,
        init_pars=init_pars,
        par_bounds=par_bounds,
        fixed_params=fixed_params,
    )
    poi = model.config.poi_index
    if poi_range is None:
        lo = jnp.maximum(prep.lo[poi], 0.0)
        poi_range = (lo, prep.hi[poi])
    cls = jnp.asarray(cl, dtype=float)
    alpha = 1.0 - jnp.atleast_1d(cls)
    root, ok, it = _limit_core(
        prep,
        model,
        alpha,
        jnp.asarray(poi_range[0], float),
        jnp.asarray(poi_range[1], float),
        rtol,
        maxiter,
    )
    obs, exp, conv = root[:, 0], root[:, 1:], jnp.all(ok, axis=1)
    if cls.ndim == 0:
        obs, exp, conv = obs[0], exp[0], conv[0]
    return UpperLimitResult(
        obs=obs,
        exp=exp,
        cl=cls,
        converged=conv,
        iterations=it,
        bracket=jnp.asarray(poi_range, float),
    )
