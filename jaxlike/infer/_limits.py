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
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._compile import jit
from ..exceptions import InvalidArgument
from ..fit import Bounds, Data, Fixed, Pars, conditional_inputs, fit_arrays, result_repr
from ._asymptotics import asymptotic_pvalues, profile_statistic
from ._hypotest import HypoTestPrep, hypotest_prepare

__all__ = [
    "UpperLimitResult",
    "asymptotic_guess",
    "conditional_fit",
    "conditional_fits",
    "curve_pvalues",
    "illinois_roots",
    "upper_limit",
    "upper_limit_prepared",
]


class UpperLimitResult(eqx.Module):
    """Upper limits; unpacks as ``obs, exp = result`` (``exp``: 5 values, ascending like
    pyhf's band). ``converged`` is False if a root was not bracketed within the POI range
    (then the limit is NaN) or a fit at the final point did not converge."""

    obs: Float[Array, "*ncl"]
    exp: Float[Array, "*ncl 5"]
    cl: Float[Array, "*ncl"]
    converged: Bool[Array, "*ncl"]
    iterations: Int[Array, ""]
    bracket: Float[Array, " 2"]

    __repr__ = result_repr  # numbers, shapes and the status spelled out

    def __iter__(self):
        return iter((self.obs, self.exp))


def _h(cls, alpha):
    return jnp.sqrt(-2.0 * jnp.log(jnp.clip(cls, 1e-300, 1.0))) - jnp.sqrt(-2.0 * jnp.log(alpha))


def conditional_fit(prep, model, data, start, mu):
    """One μ-conditional fit of a limit search (POI held at ``mu``, the bounds and fixed
    parameters of ``prep``) to ``data``, warm-started at ``start``: a continuation from the
    previous iterate's minimum, so no global search per step (the prepared fits had it)."""
    inputs = conditional_inputs(start, prep.lo, prep.hi, prep.fixed, prep.poi, mu)
    return fit_arrays(model, data, *inputs, search=False)


def conditional_fits(prep, model, mu, start_d, start_a):
    """The conditional fits of one limit-search iteration at the trial μ of six curves
    (mu: [ncl, 6]): the observed curve's to the data (at ``mu[:, 0]``) and every curve's to the
    Asimov data: 1 + 6 fits per level, run as ONE vmapped fit over [ncl, 7] (data, Asimov × 6)
    so the minimiser is compiled once. ``start_*`` are warm starts (previous iterate).
    Returns the fits' :class:`~jaxlike.fit.FitResult` batched [ncl, 7] (column 0: data)."""
    ncl = mu.shape[0]
    mus = jnp.concatenate([mu[:, :1], mu], axis=1)  # [ncl, 7]
    starts = jnp.concatenate([start_d[:, None], start_a], axis=1)  # [ncl, 7, P]
    on_asimov = jnp.arange(7) > 0

    def cond_fit(row, start, m):
        data = jnp.where(on_asimov[row], prep.asimov_data, prep.data)
        return conditional_fit(prep, model, data, start, m)

    rows = jnp.broadcast_to(jnp.arange(7), (ncl, 7))
    return jax.vmap(jax.vmap(cond_fit))(rows, starts, mus)


def curve_pvalues(prep, mu, q, nll_asimov, rule="cls"):
    """CLs (``rule="clsb"``: CLs+b) of the six curves [ncl, 6] at their trial μ: the observed
    curve from its test statistic ``q`` [ncl] (at ``mu[:, 0]``), the expected curve N = 2 … −2
    (column k) from the Asimov test statistic at its own μ (the conditional Asimov 2NLL
    ``nll_asimov`` [ncl, 6] against ``prep.free_fit_asimov``)."""
    ts = prep.test_stat
    qa = profile_statistic(
        ts, mu, nll_asimov, prep.free_fit_asimov.twice_nll, prep.free_fit_asimov.bestfit[prep.poi]
    )
    pick = 0 if rule == "clsb" else 2  # (CLs+b, CLb, CLs)
    obs, _ = jax.vmap(lambda x, y: asymptotic_pvalues(ts, x, y, prep.calc_base_dist))(q, qa[:, 0])
    _, exp = jax.vmap(
        jax.vmap(lambda x: asymptotic_pvalues(ts, jnp.zeros_like(x), x, prep.calc_base_dist))
    )(qa)
    cls_obs, band = obs[pick], exp[pick]
    cls_exp = jnp.diagonal(band[:, 1:, :], axis1=1, axis2=2)  # curve k uses band entry k-1
    return jnp.concatenate([cls_obs[:, None], cls_exp], axis=1)


def _evaluate(prep, model, mu, start_d, start_a, rule="cls"):
    """CLs (``rule="clsb"``: CLs+b) of the six curves at their own trial μ (mu: [ncl, 6]) from
    :func:`conditional_fits`. Returns (cls [ncl, 6], converged [ncl, 6], bestfit_d [ncl, P],
    bestfit_a [ncl, 6, P])."""
    ncl, poi, ts = mu.shape[0], prep.poi, prep.test_stat
    fits = conditional_fits(prep, model, mu, start_d, start_a)
    nll, conv_all, best = fits.twice_nll, fits.converged, fits.bestfit
    q = profile_statistic(
        ts, mu[:, 0], nll[:, 0], prep.free_fit.twice_nll, prep.free_fit.bestfit[poi]
    )
    cls = curve_pvalues(prep, mu, q, nll[:, 1:], rule)
    conv = conv_all[:, 1:] & jnp.concatenate([conv_all[:, :1], jnp.ones((ncl, 5), bool)], axis=1)
    return cls, conv, best[:, 0], best[:, 1:]


def asymptotic_guess(prep, alpha, mu_lo, mu_hi, rule="cls"):
    """Wald-approximation limits [ncl, 6]: q(μ) = ((μ − μ̂)/σ)², q_A(μ) = (μ/σ)² with σ the
    Hessian uncertainty of the POI in the free Asimov fit; the first point of a fine grid in
    μ/σ where the asymptotic CLs of each curve falls below α. Only a starting point."""
    poi, ts = prep.poi, prep.test_stat
    sigma = prep.free_fit_asimov.uncertainties[poi]
    ok = jnp.isfinite(sigma) & (sigma > 0)
    sigma = jnp.where(ok, sigma, 1.0)
    mu_hat = jnp.maximum(prep.free_fit.bestfit[poi], 0.0)
    t = jnp.linspace(0.0, 40.0, 801)[1:]  # μ/σ
    mu = t * sigma + jnp.where(ok, 0.0, 0.0)
    q_obs = jnp.where(mu > mu_hat, ((mu - mu_hat) / sigma) ** 2, 0.0)
    pick = 0 if rule == "clsb" else 2
    obs, exp = jax.vmap(lambda a, b: asymptotic_pvalues(ts, a, b, prep.calc_base_dist))(q_obs, t**2)
    c_obs, c_exp = obs[pick], exp[pick]
    curves = jnp.concatenate([c_obs[:, None], c_exp], axis=1)  # [grid, 6]
    below = curves[None] < alpha[:, None, None]  # [ncl, grid, 6]
    first = jnp.argmax(below, axis=1)
    guess = jnp.where(jnp.any(below, axis=1), mu[first], mu[-1])
    fallback = mu_lo + 0.1 * (mu_hi - mu_lo)
    return jnp.clip(jnp.where(ok, guess, fallback), mu_lo, mu_hi)


@jit
def _limit_core(prep, model, alpha, mu_lo, mu_hi, rtol, maxiter, rule="cls"):
    """The six curves × levels of :func:`upper_limit_prepared` by :func:`illinois_roots`, one
    :func:`_evaluate` (compiled once) per iteration, warm-started from the free fits."""
    ncl = alpha.shape[0]
    al = jnp.repeat(alpha[:, None], 6, axis=1)  # [ncl, 6]
    npar = prep.init.shape[0]
    sd0 = jnp.broadcast_to(prep.free_fit.bestfit, (ncl, npar))
    sa0 = jnp.broadcast_to(prep.asimov_fit.bestfit, (ncl, 6, npar))
    guess = asymptotic_guess(prep, alpha, mu_lo, mu_hi, rule)

    def evaluate(c, carry):
        cls_c, cc, sd_new, sa_new = _evaluate(prep, model, c, *carry, rule)
        return cls_c, cc, (sd_new, sa_new)

    root, ok, it, _ = illinois_roots(evaluate, (sd0, sa0), guess, al, mu_lo, mu_hi, rtol, maxiter)
    return root, ok, it


def illinois_roots(evaluate, carry, guess, alpha, mu_lo, mu_hi, rtol, maxiter):
    r"""Roots of CL(μ) = α for a batch of curves in lockstep (traceable): bracket expansion
    from a guess, then the Illinois variant of regula falsi on

    .. math:: h(\mu) = \sqrt{-2\ln CL(\mu)} - \sqrt{-2\ln\alpha},

    which grows almost linearly in μ for asymptotic CLs or CLs+b.

    ``evaluate(mu, carry) -> (cl, converged, carry)`` gives every curve's CL at its own trial
    μ (arrays of ``alpha``'s shape) and a new carry (e.g. warm starts of the fits). At μ = 0
    every test statistic vanishes, CL = 1 and h = −√(−2 ln α) < 0 without a fit, so for
    ``mu_lo = 0`` the lower end of the bracket is free; for ``mu_lo > 0`` it is evaluated
    first. The first trial point is 1.1 × ``guess`` (usually just above the root), then ×1.5
    steps up to ``mu_hi`` until h changes sign; a curve whose h stays negative up to ``mu_hi``
    (or is already positive at ``mu_lo > 0``) has no root in range: NaN, not converged.

    Returns (roots, ok, iterations, carry): ``ok`` needs a bracket, a converged search and a
    converged evaluation at the returned point; ``carry`` is the last evaluation's.
    """
    al = alpha
    full = lambda x: jnp.broadcast_to(jnp.asarray(x, al.dtype), al.shape)  # noqa: E731
    lo_known = mu_lo <= 0.0
    first_c = jnp.where(lo_known, jnp.clip(1.1 * guess, mu_lo, mu_hi), full(mu_lo))

    def cond(s):
        return (s["it"] < maxiter) & ~jnp.all(s["done"])

    def body(s):
        a, b, ha, hb, br = s["a"], s["b"], s["ha"], s["hb"], s["bracketed"]
        illinois = jnp.where(hb != ha, b - hb * (b - a) / (hb - ha), 0.5 * (a + b))
        illinois = jnp.clip(illinois, jnp.minimum(a, b), jnp.maximum(a, b))
        c = jnp.where(br, illinois, s["next"])
        c = jnp.where(s["done"], b, c)
        cls_c, cc, carry_new = evaluate(c, s["carry"])
        hc = _h(cls_c, al)
        live = ~s["done"]
        # -- lanes still expanding the bracket upwards
        grow = live & ~br
        found = grow & (hc >= 0) & (c > mu_lo)
        too_low = grow & (hc < 0)
        failed = (grow & (hc >= 0) & (c <= mu_lo)) | (too_low & (c >= mu_hi))
        # -- lanes refining a bracket (Illinois: keep the sign change in [a, b])
        ref = live & br
        same_as_b = jnp.sign(hc) == jnp.sign(hb)
        a_ref = jnp.where(same_as_b, a, b)
        ha_ref = jnp.where(same_as_b, jnp.where(s["side"] == 1, ha * 0.5, ha), hb)
        ca_ref = jnp.where(same_as_b, s["ca"], s["cb"])
        side_ref = jnp.where(same_as_b, 1, -1)
        pick = lambda r, g, old: jnp.where(ref, r, jnp.where(g, old, old))  # noqa: E731
        a_new = jnp.where(ref, a_ref, jnp.where(too_low, c, a))
        ha_new = jnp.where(ref, ha_ref, jnp.where(too_low, hc, ha))
        ca_new = jnp.where(ref, ca_ref, jnp.where(too_low, cc, s["ca"]))
        side_new = pick(side_ref, grow, s["side"])
        b_new = jnp.where(ref | found, c, b)
        hb_new = jnp.where(ref | found, hc, hb)
        cb_new = jnp.where(ref | found, cc, s["cb"])
        br_new = br | found
        close = (jnp.abs(b_new - a_new) <= rtol * jnp.abs(b_new)) | (jnp.abs(hb_new) < 1e-10)
        done = s["done"] | failed | (br_new & live & close)
        nxt = jnp.where(too_low, jnp.minimum(1.5 * c, mu_hi), s["next"])
        return {"a": a_new, "b": b_new, "ha": ha_new, "hb": hb_new, "ca": ca_new, "cb": cb_new,
                "side": side_new, "bracketed": br_new, "done": done, "next": nxt,
                "it": s["it"] + 1, "carry": carry_new}  # fmt: skip

    state = {
        "a": full(mu_lo),
        "b": full(mu_lo),
        "ha": -jnp.sqrt(-2.0 * jnp.log(al)),  # h(0); replaced by a real value if mu_lo > 0
        "hb": full(jnp.nan),
        "ca": full(True).astype(bool),
        "cb": full(False).astype(bool),
        "side": jnp.zeros(al.shape, dtype=jnp.int32),
        "bracketed": full(False).astype(bool),
        "done": full(False).astype(bool),
        "next": first_c,
        "it": jnp.asarray(0),
        "carry": carry,
    }
    s = lax.while_loop(cond, body, state)
    use_b = jnp.abs(s["hb"]) <= jnp.abs(s["ha"])
    root = jnp.where(use_b, s["b"], s["a"])
    ok = s["bracketed"] & s["done"] & jnp.where(use_b, s["cb"], s["ca"])
    return jnp.where(s["bracketed"], root, jnp.nan), ok, s["it"], s["carry"]


def upper_limit(
    data: Data,
    model,
    *,
    cl: Float[ArrayLike, "*ncl"] = 0.95,
    test_stat: str = "qtilde",
    poi_range: tuple[float, float] | None = None,
    rtol: float = 1e-6,
    maxiter: int = 60,
    init_pars: Pars | None = None,
    par_bounds: Bounds | None = None,
    fixed_params: Fixed | None = None,
    rule: str = "cls",
    calctype: str = "asymptotics",
    **toys,
):
    """Observed and expected (±1σ, ±2σ) upper limits on the POI at confidence level ``cl``.

    Args:
        cl: a level or an array of levels (all solved in one batch).
        poi_range: (low, high) bracket; default (0, POI upper bound). A curve whose CLs does
            not fall below 1 − cl within it yields NaN and ``converged = False``.
        rtol: relative tolerance on μ.
        rule: ``"cls"`` (CLs = α, the modified frequentist limit) or ``"clsb"`` (CLs+b = α:
            the one-sided profile-likelihood limit, e.g. Belle II's e⁺e⁻ → γa search).
        calctype: ``"asymptotics"`` (root finding on the asymptotic formulae) or
            ``"toybased"``: toys on a POI grid, ``toys`` = ``ntoys``, ``seed``, ``toy_pars``,
            ``poi_grid``, ``chunk``, ``progress`` (see
            :func:`~jaxlike.infer.toy_upper_limit_prepared`); returns a
            :class:`~jaxlike.infer.ToyUpperLimitResult`.

    Returns:
        :class:`UpperLimitResult` with ``obs`` (shape ``cl.shape``) and ``exp``
        (``cl.shape + (5,)``, ascending: N = 2, 1, 0, −1, −2 of the band).
    """
    prep = hypotest_prepare(
        data,
        model,
        test_stat=test_stat,
        init_pars=init_pars,
        par_bounds=par_bounds,
        fixed_params=fixed_params,
    )
    if calctype == "toybased":
        from ._toy_limits import toy_upper_limit_prepared

        return toy_upper_limit_prepared(prep, model, cl=cl, rule=rule, **toys)
    if calctype != "asymptotics":
        raise InvalidArgument(
            f"calctype for limits must be 'asymptotics' or 'toybased', got {calctype!r}"
        )
    if toys:
        raise InvalidArgument(f"toy options {sorted(toys)} need calctype='toybased'")
    return upper_limit_prepared(
        prep, model, cl=cl, poi_range=poi_range, rtol=rtol, maxiter=maxiter, rule=rule
    )


def upper_limit_prepared(
    prep: HypoTestPrep,
    model,
    *,
    cl: Float[ArrayLike, "*ncl"] = 0.95,
    poi_range: tuple[float, float] | None = None,
    rtol: float = 1e-6,
    maxiter: int = 60,
    rule: str = "cls",
) -> UpperLimitResult:
    """:func:`upper_limit` from the μ-independent fits of :func:`hypotest_prepare` (so a caller
    that also needs them — e.g. a significance — fits them once). Same arguments and result
    (asymptotic; ``rule`` "cls" or "clsb")."""
    if rule not in ("cls", "clsb"):
        raise InvalidArgument(f"rule must be 'cls' or 'clsb', got {rule!r}")
    poi = prep.poi
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
        rule,
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
