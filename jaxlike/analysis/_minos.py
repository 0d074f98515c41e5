"""MINOS-style asymmetric intervals: roots of the profile likelihood Δ2NLL(θ) = level."""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np

from ._common import batch_fit, bounds, nominal_fit, resolve_index

__all__ = ["MinosResult", "minos"]


class MinosResult(eqx.Module):
    """Asymmetric profile-likelihood interval of one parameter, next to the Hessian interval.

    Attributes:
        name, cl, level: the parameter, the confidence level and the Δ2NLL threshold.
        bestfit: θ̂.  lower, upper: interval endpoints.  minus, plus: lower − θ̂ (≤ 0) and
            upper − θ̂.
        hessian_minus, hessian_plus: ∓ sqrt(level)·σ_Hessian (the symmetric interval).
        at_bound: [2] the side ends at the parameter bound before Δ2NLL reaches the level.
        converged: [2] the root was found to tolerance and every fit on the way converged.
        n_fits: number of batched evaluations (each one fit per side).
    """

    name: str = eqx.field(static=True)
    cl: float = eqx.field(static=True)
    level: float = eqx.field(static=True)
    bestfit: jax.Array
    lower: jax.Array
    upper: jax.Array
    minus: jax.Array
    plus: jax.Array
    hessian_minus: jax.Array
    hessian_plus: jax.Array
    at_bound: jax.Array
    converged: jax.Array
    n_fits: int = eqx.field(static=True)


def _level(cl):
    """Δ2NLL threshold: the χ²₁ quantile of ``cl`` (< 1) or ``cl**2`` for ``cl`` ≥ 1 sigmas."""
    import scipy.stats  # here: it costs ~0.4 s of `import jaxlike`

    return float(cl) ** 2 if cl >= 1 else float(scipy.stats.chi2.ppf(cl, 1))


def minos(model, data, par, cl=0.6827, *, fit_result=None, ftol=1e-8, maxiter=60, **fit_kwargs):
    """Asymmetric interval of ``par``: the two solutions of Δ2NLL(θ) = level, θ̂ on either side.

    Δ2NLL(θ) = 2NLL(θ, θ̂̂(θ)) − 2NLL(θ̂) is the profile likelihood (every other parameter
    refitted). ``level`` is the χ²₁ quantile of ``cl`` (1.0000 for 68.27 %) or ``cl²`` if
    ``cl ≥ 1`` is a number of sigmas (as ``iminuit.Minuit.minos``). Both sides are solved
    together: each step is one vmapped batch of two conditional fits, warm-started from the
    latest fit on that side. The bracket starts at the Hessian interval and grows ×2 until
    Δ2NLL exceeds the level (or the parameter bound is reached: ``at_bound``); then Illinois
    regula falsi until |Δ2NLL − level| < ``ftol``.

    Example::

        m = minos(model, data, "mu")
        print(f"mu = {m.bestfit:.3f} {m.minus:+.3f} {m.plus:+.3f} (Hessian ±{m.hessian_plus:.3f})")
    """
    cfg = model.config
    res = nominal_fit(model, data, fit_result, **fit_kwargs)
    i = resolve_index(cfg, par)
    level = _level(cl)
    best, fixed = np.asarray(res.bestfit), np.asarray(res.fixed)
    x0, f0 = float(best[i]), float(res.twice_nll)
    sigma = float(res.uncertainties[i])
    lo, hi = bounds(model, fit_kwargs.get("par_bounds"))
    side, limit = np.array([-1.0, 1.0]), np.array([lo[i], hi[i]])
    starts = np.stack([best, best])
    masks = np.stack([fixed, fixed])
    masks[:, i] = True
    n_fits = 0
    ok = np.ones(2, dtype=bool)

    def evaluate(x, active):
        nonlocal starts, n_fits, ok
        inits = starts.copy()
        inits[:, i] = x
        out = batch_fit(model, data, inits, masks, lo=lo, hi=hi)
        n_fits += 1
        starts = np.where(active[:, None], out.bestfit, starts)
        ok &= np.asarray(out.converged) | ~active
        return out.twice_nll - f0 - level

    step = np.sqrt(level) * sigma if np.isfinite(sigma) and sigma > 0 else 0.1 * max(abs(x0), 1)
    a, fa = np.full(2, x0), np.full(2, -level)
    b = np.clip(x0 + side * step, lo[i], hi[i])
    fb = evaluate(b, np.ones(2, dtype=bool))
    for _ in range(40):  # grow the bracket
        grow = (fb < 0) & (b != limit)
        if not grow.any():
            break
        a, fa = np.where(grow, b, a), np.where(grow, fb, fa)
        b = np.where(grow, np.clip(x0 + 2.0 * (b - x0), lo[i], hi[i]), b)
        fb = np.where(grow, evaluate(b, grow), fb)
    at_bound = fb < 0
    done = at_bound | (np.abs(fb) < ftol)
    for _ in range(maxiter):  # Illinois: b is the newest point, a keeps the other sign
        if done.all():
            break
        c = b - fb * (b - a) / np.where(fb != fa, fb - fa, 1.0)
        c = np.where(done, b, c)
        fc = evaluate(c, ~done)
        flip = (fc * fb < 0) & ~done
        keep = ~flip & ~done
        a, fa = np.where(flip, b, a), np.where(flip, fb, np.where(keep, 0.5 * fa, fa))
        b, fb = np.where(done, b, c), np.where(done, fb, fc)
        done |= np.abs(fb) < ftol
    lower, upper = float(b[0]), float(b[1])
    return MinosResult(
        name=cfg.par_names[i],
        cl=float(cl),
        level=level,
        bestfit=np.asarray(x0),
        lower=np.asarray(lower),
        upper=np.asarray(upper),
        minus=np.asarray(lower - x0),
        plus=np.asarray(upper - x0),
        hessian_minus=np.asarray(-np.sqrt(level) * sigma),
        hessian_plus=np.asarray(np.sqrt(level) * sigma),
        at_bound=at_bound,
        converged=done & ok,
        n_fits=n_fits,
    )
