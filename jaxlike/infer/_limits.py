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

from ._hypotest import hypotest_at, hypotest_prepare

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


def _curves(res):
    """CLs of the observed and five expected curves for a batch of results, shape [n, 6]."""
    return jnp.concatenate([res.cls_obs[:, None], res.cls_exp], axis=1)


def _h(cls, alpha):
    return jnp.sqrt(-2.0 * jnp.log(jnp.clip(cls, 1e-300, 1.0))) - jnp.sqrt(-2.0 * jnp.log(alpha))


@eqx.filter_jit
def _limit_core(prep, model, alpha, mu_lo, mu_hi, rtol, maxiter):
    ncl = alpha.shape[0]
    al = jnp.repeat(alpha[:, None], 6, axis=1)  # [ncl, 6]
    which = jnp.broadcast_to(jnp.arange(6), (ncl, 6))

    def evaluate2(mu):  # mu [r, ncl, 6] -> h, converged [r, ncl, 6]
        r = mu.shape[0]
        res = jax.vmap(lambda m: hypotest_at(prep, model, m, warm_start=True))(mu.reshape(-1))
        cls = _curves(res).reshape(r, ncl, 6, 6)
        idx = jnp.broadcast_to(which, (r, ncl, 6))[..., None]
        picked = jnp.take_along_axis(cls, idx, axis=-1)[..., 0]
        return _h(picked, al[None]), res.converged.reshape(r, ncl, 6)

    a = jnp.full((ncl, 6), mu_lo)
    b = jnp.full((ncl, 6), mu_hi)
    h_ab, conv_ab = evaluate2(jnp.stack([a, b]))
    ha, hb = h_ab[0], h_ab[1]
    bracketed = (ha <= 0) & (hb >= 0)

    def cond(s):
        a, b, ha, hb, ca, cb, side, it, done = s
        return (it < maxiter) & ~jnp.all(done)

    def body(s):
        a, b, ha, hb, ca, cb, side, it, done = s
        c = jnp.where(hb != ha, b - hb * (b - a) / (hb - ha), 0.5 * (a + b))
        c = jnp.clip(c, jnp.minimum(a, b), jnp.maximum(a, b))
        hc, cc = evaluate2(c[None])
        hc, cc = hc[0], cc[0]
        same_as_b = jnp.sign(hc) == jnp.sign(hb)
        # Illinois: keep the sign change in [a, b]; halve the stale end's value on repeats.
        a_new = jnp.where(same_as_b, a, b)
        ha_new = jnp.where(same_as_b, jnp.where(side == 1, ha * 0.5, ha), hb)
        ca_new = jnp.where(same_as_b, ca, cb)
        side_new = jnp.where(same_as_b, 1, -1)
        a = jnp.where(done, a, a_new)
        ha = jnp.where(done, ha, ha_new)
        ca = jnp.where(done, ca, ca_new)
        b = jnp.where(done, b, c)
        hb = jnp.where(done, hb, hc)
        cb = jnp.where(done, cb, cc)
        side = jnp.where(done, side, side_new)
        width = jnp.abs(b - a)
        done = done | (width <= rtol * jnp.abs(b)) | (jnp.abs(hb) < 1e-12)
        return a, b, ha, hb, ca, cb, side, it + 1, done

    side0 = jnp.zeros((ncl, 6), dtype=jnp.int32)
    state = (a, b, ha, hb, conv_ab[0], conv_ab[1], side0, jnp.asarray(0), ~bracketed)
    a, b, ha, hb, ca, cb, side, it, done = lax.while_loop(cond, body, state)
    use_b = jnp.abs(hb) <= jnp.abs(ha)
    root = jnp.where(use_b, b, a)
    conv = jnp.where(use_b, cb, ca)
    ok = bracketed & conv & (jnp.abs(b - a) <= 10 * rtol * jnp.abs(root) + 1e-300) | (
        bracketed & conv & (jnp.minimum(jnp.abs(ha), jnp.abs(hb)) < 1e-9)
    )
    root = jnp.where(bracketed, root, jnp.nan)
    return root, ok, it


def upper_limit(data, model, *, cl=0.95, test_stat="qtilde", poi_range=None, rtol=1e-8,
                maxiter=60, init_pars=None, par_bounds=None, fixed_params=None):
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
    prep = hypotest_prepare(data, model, test_stat=test_stat, init_pars=init_pars,
                            par_bounds=par_bounds, fixed_params=fixed_params)
    poi = model.config.poi_index
    if poi_range is None:
        lo = jnp.maximum(prep.lo[poi], 0.0)
        poi_range = (lo, prep.hi[poi])
    cls = jnp.asarray(cl, dtype=float)
    alpha = 1.0 - jnp.atleast_1d(cls)
    root, ok, it = _limit_core(prep, model, alpha, jnp.asarray(poi_range[0], float),
                               jnp.asarray(poi_range[1], float), rtol, maxiter)
    obs, exp, conv = root[:, 0], root[:, 1:], jnp.all(ok, axis=1)
    if cls.ndim == 0:
        obs, exp, conv = obs[0], exp[0], conv[0]
    return UpperLimitResult(obs=obs, exp=exp, cl=cls, converged=conv, iterations=it,
                            bracket=jnp.asarray(poi_range, float))
