r"""Profile-likelihood test statistics as functions of (μ, data, model), pyhf-style.

.. math::
    t_\mu = -2\ln\frac{L(\mu,\hat{\hat\theta})}{L(\hat\mu,\hat\theta)} \ (\ge 0), \qquad
    q_\mu = \begin{cases} t_\mu & \hat\mu \le \mu \\ 0 & \hat\mu > \mu \end{cases}, \qquad
    q_0 = \begin{cases} t_0 & \hat\mu \ge 0 \\ 0 & \hat\mu < 0 \end{cases}

The "tilde" variants (t̃μ, q̃μ) are the same with the POI's lower bound at 0 during the free fit
(Cowan et al. 2011, eqs. 10 and 16). Each function runs two fits inside XLA and is
jit/vmap-able; it returns the statistic and, on request, the two best-fit vectors.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

from ..exceptions import InvalidParameters
from ..fit import Bounds, Data, Fixed, Pars, Scalar, fit, fixed_poi_fit

__all__ = ["tmu", "tmu_tilde", "qmu", "qmu_tilde", "q0"]


def _two_fits(mu, data, model, init_pars, par_bounds, fixed_params, tilde):
    poi = model.config.poi_index
    if poi is None:
        raise InvalidParameters("the model has no parameter of interest (poi_name=None)")
    bounds = jnp.asarray(model.config.suggested_bounds() if par_bounds is None else par_bounds)
    if tilde:
        bounds = bounds.at[poi, 0].set(0.0)
    kw = dict(init_pars=init_pars, par_bounds=bounds, fixed_params=fixed_params)
    free = fit(model, data, **kw)
    cond = fixed_poi_fit(model, data, mu, **kw)
    t = jnp.clip(cond.twice_nll - free.twice_nll, 0.0)
    return t, free.bestfit[poi], (cond.bestfit, free.bestfit)


def _finish(stat, fitted, return_fitted_pars):
    return (stat, fitted) if return_fitted_pars else stat


def tmu(
    mu: Scalar,
    data: Data,
    model,
    init_pars: Pars | None = None,
    par_bounds: Bounds | None = None,
    fixed_params: Fixed | None = None,
    return_fitted_pars: bool = False,
) -> Float[Array, ""] | tuple[Float[Array, ""], tuple[Float[Array, " npars"], ...]]:
    """t_μ, two-sided, POI bounds as given. ``return_fitted_pars`` adds
    (θ̂̂(μ), θ̂) like pyhf."""
    t, _, fitted = _two_fits(mu, data, model, init_pars, par_bounds, fixed_params, False)
    return _finish(t, fitted, return_fitted_pars)


def tmu_tilde(
    mu: Scalar,
    data: Data,
    model,
    init_pars: Pars | None = None,
    par_bounds: Bounds | None = None,
    fixed_params: Fixed | None = None,
    return_fitted_pars: bool = False,
) -> Float[Array, ""] | tuple[Float[Array, ""], tuple[Float[Array, " npars"], ...]]:
    """t̃_μ: t_μ with μ̂ ≥ 0 (POI lower bound set to 0)."""
    t, _, fitted = _two_fits(mu, data, model, init_pars, par_bounds, fixed_params, True)
    return _finish(t, fitted, return_fitted_pars)


def qmu(
    mu: Scalar,
    data: Data,
    model,
    init_pars: Pars | None = None,
    par_bounds: Bounds | None = None,
    fixed_params: Fixed | None = None,
    return_fitted_pars: bool = False,
) -> Float[Array, ""] | tuple[Float[Array, ""], tuple[Float[Array, " npars"], ...]]:
    """q_μ: one-sided t_μ (0 when μ̂ > μ), POI bounds as given."""
    t, mu_hat, fitted = _two_fits(mu, data, model, init_pars, par_bounds, fixed_params, False)
    return _finish(jnp.where(mu_hat > mu, 0.0, t), fitted, return_fitted_pars)


def qmu_tilde(
    mu: Scalar,
    data: Data,
    model,
    init_pars: Pars | None = None,
    par_bounds: Bounds | None = None,
    fixed_params: Fixed | None = None,
    return_fitted_pars: bool = False,
) -> Float[Array, ""] | tuple[Float[Array, ""], tuple[Float[Array, " npars"], ...]]:
    """q̃_μ: q_μ with μ̂ ≥ 0 (POI lower bound set to 0); the statistic for upper limits."""
    t, mu_hat, fitted = _two_fits(mu, data, model, init_pars, par_bounds, fixed_params, True)
    return _finish(jnp.where(mu_hat > mu, 0.0, t), fitted, return_fitted_pars)


def q0(
    mu: Scalar,
    data: Data,
    model,
    init_pars: Pars | None = None,
    par_bounds: Bounds | None = None,
    fixed_params: Fixed | None = None,
    return_fitted_pars: bool = False,
) -> Float[Array, ""] | tuple[Float[Array, ""], tuple[Float[Array, " npars"], ...]]:
    """q_0 for discovery: t_0 when μ̂ ≥ μ (= 0), else 0. ``mu`` must be 0, as in pyhf."""
    t, mu_hat, fitted = _two_fits(mu, data, model, init_pars, par_bounds, fixed_params, False)
    return _finish(jnp.where(mu_hat < mu, 0.0, t), fitted, return_fitted_pars)
