"""Maximum-likelihood fits of a :class:`~jaxlike.Model`: global and fixed-parameter fits.

All fits minimise 2NLL = −2 log L(θ | data) with the in-XLA Newton minimiser of
:mod:`jaxlike.fit._newton`; they are jit-compiled per model layout (not per template), and work
under ``jax.vmap`` over data, templates (a stacked model, see :func:`jaxlike.stack_models`),
initial values or fixed values.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ..exceptions import InvalidData, InvalidParameters
from ._linalg import spd_solve
from ._newton import STATUS, minimize

__all__ = ["FitResult", "fit", "fixed_poi_fit", "fit_arrays", "prepare_fit_inputs"]


class FitResult(eqx.Module):
    """Outcome of a fit. Array-valued (batched under vmap).

    Attributes:
        bestfit: θ̂, in the model's parameter order.
        uncertainties: sqrt of the diagonal of the covariance (0 for fixed parameters).
        covariance: V = (½ ∂²(2NLL)/∂θ²)⁻¹ = H_NLL⁻¹ over the non-fixed parameters.
        twice_nll: 2NLL at θ̂.
        converged: the minimiser met its EDM tolerance (see ``status``).
        status: 0 converged, 1 max iterations, 2 stalled, 3 non-finite start.
        iterations, edm, grad_norm: diagnostics (grad_norm is the projected gradient norm).
        at_bound: parameters that ended on one of their bounds.
        fixed: parameters held constant in this fit.
    """

    bestfit: jax.Array
    uncertainties: jax.Array
    covariance: jax.Array
    twice_nll: jax.Array
    converged: jax.Array
    status: jax.Array
    iterations: jax.Array
    edm: jax.Array
    grad_norm: jax.Array
    at_bound: jax.Array
    fixed: jax.Array

    @property
    def correlation(self):
        """Correlation matrix ρ_ij = V_ij / (σ_i σ_j) (0 rows/columns for fixed parameters)."""
        s = jnp.where(self.uncertainties > 0, self.uncertainties, 1.0)
        return self.covariance / s[..., :, None] / s[..., None, :]

    def message(self):
        """Human-readable convergence status (unbatched results)."""
        return STATUS.get(int(self.status), "unknown")


def _covariance(hess, fixed):
    """V = 2 H⁻¹ on the non-fixed block (H is the Hessian of 2NLL); NaN if not positive definite."""
    free = ~fixed
    both = free[:, None] & free[None, :]
    a = jnp.where(both, hess, 0.0) + jnp.diag(jnp.where(free, 0.0, 1.0))
    inv, ok = spd_solve(a, jnp.eye(a.shape[0], dtype=a.dtype))
    cov = jnp.where(both, 2.0 * inv, 0.0)
    return jnp.where(ok, cov, jnp.nan)


def fit_arrays(model, data, init, lo, hi, fixed, *, maxiter=200, tol=1e-10):
    """Fit with every input an array (the traced core used by fits, tests and scans)."""

    st = minimize(
        lambda x: model.value_grad_hess(x, data), init, lo, hi, fixed, maxiter=maxiter, tol=tol
    )
    cov = _covariance(st.hess, fixed)
    span = jnp.maximum(hi - lo, 1.0)
    at_bound = ((st.x <= lo + 1e-9 * span) | (st.x >= hi - 1e-9 * span)) & ~fixed
    return FitResult(
        bestfit=st.x,
        uncertainties=jnp.sqrt(jnp.diagonal(cov)),
        covariance=cov,
        twice_nll=st.f,
        converged=st.status == 0,
        status=st.status,
        iterations=st.iterations,
        edm=st.edm,
        grad_norm=jnp.linalg.norm(jnp.where(st.free, st.grad, 0.0)),
        at_bound=at_bound,
        fixed=fixed,
    )


_fit_jit = eqx.filter_jit(fit_arrays)
_default_fixed = eqx.filter_jit(lambda model: model.fixed_mask())  # one dispatch, not ~10/segment


def prepare_fit_inputs(model, data, init_pars=None, par_bounds=None, fixed_params=None):
    """Validate and default (data, init, lo, hi, fixed) for a fit of ``model``.

    ``fixed_params`` is a boolean mask (length npars) or a dict {name: value}; by default the
    model's :meth:`~jaxlike.Model.fixed_mask`. Works on arrays and tracers alike.
    """
    cfg = model.config
    data = jnp.asarray(data, dtype=float)
    n_expected = cfg.nmaindata + cfg.nauxdata
    if data.shape[-1] != n_expected:
        raise InvalidData(
            f"data has {data.shape[-1]} entries, the model expects {cfg.nmaindata} observations "
            f"+ {cfg.nauxdata} auxdata = {n_expected}"
        )
    init = jnp.asarray(cfg.suggested_init() if init_pars is None else init_pars, dtype=float)
    bounds = jnp.asarray(cfg.suggested_bounds() if par_bounds is None else par_bounds, dtype=float)
    if init.shape[-1] != cfg.npars or bounds.shape[-2:] != (cfg.npars, 2):
        raise InvalidParameters(
            f"init_pars/par_bounds must have {cfg.npars} entries (parameters: {cfg.par_names})"
        )
    fixed = _default_fixed(model)
    if isinstance(fixed_params, dict):
        for name, value in fixed_params.items():
            i = cfg.par_index(name)
            fixed = fixed.at[..., i].set(True)
            init = init.at[..., i].set(value)
    elif fixed_params is not None:
        fixed = jnp.asarray(fixed_params, dtype=bool)
        if fixed.shape[-1] != cfg.npars:
            raise InvalidParameters(f"fixed_params must have {cfg.npars} entries")
    return data, init, bounds[..., 0], bounds[..., 1], fixed


def fit(model, data, *, init_pars=None, par_bounds=None, fixed_params=None, maxiter=200, tol=1e-10):
    """Global maximum-likelihood fit: θ̂ = argmin_θ −2 log L(θ | data) within bounds.

    Args:
        model: a :class:`~jaxlike.Model` (or a stacked model under ``jax.vmap``).
        data: observations followed by auxdata (``Workspace.data(model)``).
        init_pars, par_bounds: defaults from ``model.config``.
        fixed_params: boolean mask or ``{name: value}``; default: the model's fixed parameters.
        maxiter, tol: iteration cap and EDM tolerance of the Newton minimiser.

    Returns:
        :class:`FitResult`; check ``converged`` — a non-converged fit is flagged, never hidden.

    Example::

        res = jaxlike.fit(model, data)
        mu_hat = res.bestfit[model.config.poi_index]
    """
    d, init, lo, hi, fixed = prepare_fit_inputs(model, data, init_pars, par_bounds, fixed_params)
    return _fit_jit(model, d, init, lo, hi, fixed, maxiter=maxiter, tol=tol)


def fixed_poi_fit(
    model,
    data,
    poi_value,
    *,
    init_pars=None,
    par_bounds=None,
    fixed_params=None,
    maxiter=200,
    tol=1e-10,
):
    """Conditional fit θ̂̂(μ): the POI held at ``poi_value``, all other parameters profiled.

    ``poi_value`` may be a traced scalar (vmap over POI values compiles once).
    """
    poi = model.config.poi_index
    if poi is None:
        raise InvalidParameters("the model has no parameter of interest (poi_name=None)")
    d, init, lo, hi, fixed = prepare_fit_inputs(model, data, init_pars, par_bounds, fixed_params)
    init = init.at[..., poi].set(poi_value)
    fixed = fixed.at[..., poi].set(True)
    lo = lo.at[..., poi].set(jnp.minimum(lo[..., poi], poi_value))
    hi = hi.at[..., poi].set(jnp.maximum(hi[..., poi], poi_value))
    return _fit_jit(model, d, init, lo, hi, fixed, maxiter=maxiter, tol=tol)
