"""Shared pieces of the analysis products: constraint conventions and chunked batches of fits.

Every product here (impacts, scans, MINOS, toys) is a set of fits of one model that differ only
in their starting point, their fixed-parameter mask and (for toys) their data. They all run
through :func:`batch_fit`: ``jax.vmap`` of :func:`jaxlike.fit.fit_arrays` over those three,
compiled once per model layout and batch size, run by :func:`jaxlike.stream.batched_map` in
equal chunks (padded by repeating the first row) so the memory of one call stays bounded and
the compiled function is reused from chunk to chunk.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..exceptions import InvalidParameters
from ..fit import fit, fit_arrays
from ..stream import batched_map

__all__ = ["ConstraintInfo", "batch_fit", "constraint_info", "nominal_fit", "parameter_types"]


class ConstraintInfo(eqx.Module):
    """Per-parameter constraint conventions (pyhf / cabinetry), arrays of length ``npars``.

    Attributes:
        constrained: the parameter has a constraint term (normal or Poisson).
        center: θ0, the value the constraint pulls towards: the auxiliary datum ``a`` for
            Gaussian constraints (0 for normsys/histosys, 1 for lumi/staterror by default) and
            ``a/τ`` for Poisson-constrained shapesys (1 by default). NaN if unconstrained.
        width: Δθ_prefit, the constraint width: σ for Gaussian constraints (1 for
            normsys/histosys, σ_lumi, the relative staterror σ_b), 1/√τ_b for shapesys.
            0 for unconstrained parameters (cabinetry's ``prefit_uncertainties``).
        fixed: the model's fixed mask (user ``fixed`` and zero-uncertainty γ bins).
    """

    constrained: jax.Array
    center: jax.Array
    width: jax.Array
    fixed: jax.Array


@eqx.filter_jit
def _constraint_info(model, aux):
    npars = model.config.npars
    center = jnp.full((npars,), jnp.nan, dtype=aux.dtype)
    width = jnp.zeros((npars,), dtype=aux.dtype)
    for kind, par, aux_idx, scale in model.constraint_terms():
        if kind == "normal":
            center = center.at[par].set(aux[aux_idx])
            width = width.at[par].set(scale)
        else:
            center = center.at[par].set(aux[aux_idx] / scale)
            width = width.at[par].set(1.0 / jnp.sqrt(scale))
    return ConstraintInfo(
        constrained=~jnp.isnan(center), center=center, width=width, fixed=model.fixed_mask()
    )


def constraint_info(model, data=None):
    """θ0 and Δθ_prefit of every parameter (see :class:`ConstraintInfo`).

    ``data`` (main + auxdata) supplies the auxiliary data; by default the model's own
    (``model.auxdata()``), which gives exactly the pyhf/cabinetry conventions.
    """
    cfg = model.config
    aux = model.auxdata() if data is None else jnp.asarray(data, float)[cfg.nmaindata :]
    return _constraint_info(model, jnp.asarray(aux, float))


def parameter_types(config):
    """One modifier-type label per scalar parameter (``"normsys,histosys"`` when shared)."""
    out = []
    for name in config.par_order:
        ps = config.par_map[name]
        out += [",".join(ps.modifier_types)] * ps.n_parameters
    return tuple(out)


def resolve_index(config, par):
    """Index of a parameter given by name (``name`` or ``name[i]``) or integer index."""
    if isinstance(par, int | np.integer):
        if not 0 <= int(par) < config.npars:
            raise InvalidParameters(f"parameter index {par} out of range [0, {config.npars})")
        return int(par)
    return config.par_index(par)


def poi_index(config, poi):
    if poi is None:
        if config.poi_index is None:
            raise InvalidParameters("the model has no POI; pass poi=<parameter name>")
        return config.poi_index
    return resolve_index(config, poi)


def nominal_fit(model, data, fit_result=None, **fit_kwargs):
    """The global fit (``jaxlike.fit``) unless one is given; raises if it did not converge."""
    res = fit(model, data, **fit_kwargs) if fit_result is None else fit_result
    if not bool(res.converged):
        raise RuntimeError(f"the nominal fit did not converge: {res.message()}")
    return res


@eqx.filter_jit
def _batch_fit(model, data, inits, lo, hi, fixed, maxiter, tol):
    one = lambda d, x0, fx: fit_arrays(model, d, x0, lo, hi, fx, maxiter=maxiter, tol=tol)  # noqa: E731
    return jax.vmap(one)(data, inits, fixed)


def batch_fit(model, data, inits, fixed, *, lo=None, hi=None, chunk=256, maxiter=200, tol=1e-10):
    """Fits of ``model`` for each row of ``inits``/``fixed`` (and of ``data`` if 2-D).

    Row i minimises 2NLL(θ | data_i) within [lo, hi] from θ = inits_i, the parameters with
    ``fixed_i`` held at their ``inits_i`` value (clipped to [lo, hi]). The rows run through
    :func:`jaxlike.stream.batched_map`: at most ``chunk`` fits per vmapped call of one compiled
    function, each call padded (repeating row 0) to 8, 32, 128, ... fits (``bucket=True``) so
    that products of different sizes reuse few compiled functions. Returns a
    :class:`~jaxlike.FitResult` of numpy arrays with a leading batch axis.
    """
    cfg = model.config
    inits = np.atleast_2d(np.asarray(inits, float))
    fixed = np.atleast_2d(np.asarray(fixed, bool))
    n = inits.shape[0]
    data = np.asarray(data, float)
    data = np.broadcast_to(data, (n, data.shape[-1])) if data.ndim == 1 else data
    if lo is None or hi is None:
        bounds = cfg.suggested_bounds()
        lo = bounds[:, 0] if lo is None else lo
        hi = bounds[:, 1] if hi is None else hi
    lo, hi = jnp.asarray(lo, float), jnp.asarray(hi, float)

    def fits(rows):
        d, x0, fx = (jnp.asarray(a) for a in rows)
        return _batch_fit(model, d, x0, lo, hi, fx, maxiter, tol)

    return batched_map(fits, (data, inits, fixed), chunk=chunk, bucket=True, pad="first")


def bounds(model, par_bounds=None):
    """(lo, hi) as numpy arrays: ``par_bounds`` or the model's suggested bounds."""
    b = np.asarray(model.config.suggested_bounds() if par_bounds is None else par_bounds, float)
    return b[:, 0].copy(), b[:, 1].copy()
