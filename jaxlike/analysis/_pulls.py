"""Pulls, constraints and the (pruned) correlation matrix of a global fit."""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np

from ._common import constraint_info, nominal_fit, parameter_types

__all__ = ["Pulls", "correlation_matrix", "pulls"]


class Pulls(eqx.Module):
    """Pulls of the constrained parameters of a fit (one entry per scalar parameter).

    Attributes:
        names, types, index: parameter names, modifier types and positions in the model.
        bestfit: θ̂.   uncertainty: Δθ_postfit (Hessian, :class:`~jaxlike.FitResult`).
        center: θ0.   prefit_width: Δθ_prefit (see :class:`ConstraintInfo`).
        pull: (θ̂ − θ0) / Δθ_prefit.
        constraint: Δθ_postfit / Δθ_prefit (< 1: the data constrain the parameter).
    """

    names: tuple[str, ...] = eqx.field(static=True)
    types: tuple[str, ...] = eqx.field(static=True)
    index: tuple[int, ...] = eqx.field(static=True)
    bestfit: jax.Array
    uncertainty: jax.Array
    center: jax.Array
    prefit_width: jax.Array
    pull: jax.Array
    constraint: jax.Array

    def table(self):
        """Rows ``(name, pull, constraint)`` for printing."""
        return list(
            zip(self.names, np.asarray(self.pull).tolist(), np.asarray(self.constraint).tolist(),
                strict=True)
        )  # fmt: skip


def pulls(model, data, fit_result=None, *, include_fixed=False, **fit_kwargs):
    """Pulls (θ̂ − θ0)/Δθ_prefit and constraints Δθ_postfit/Δθ_prefit of every constrained
    parameter (normsys, histosys, lumi: Gaussian; staterror γ: Gaussian around 1 with the
    relative MC-stat width; shapesys γ: Poisson, centred at 1 with width 1/√τ).

    Args:
        model, data: the model and its data (observations + auxdata).
        fit_result: a global fit of ``model`` to ``data``; fitted here when omitted
            (``fit_kwargs`` go to :func:`jaxlike.fit`).
        include_fixed: also list constrained parameters held constant (pull and constraint 0).

    Example::

        p = jaxlike.analysis.pulls(model, data)
        for name, pull, constraint in p.table():
            print(f"{name:30s} {pull:+.2f} {constraint:.2f}")
    """
    res = nominal_fit(model, data, fit_result, **fit_kwargs)
    info = jax.device_get(constraint_info(model, data))
    fixed = np.asarray(res.fixed)
    keep = np.asarray(info.constrained) & (include_fixed | ~fixed)
    idx = np.flatnonzero(keep)
    best = np.asarray(res.bestfit)[idx]
    unc = np.where(fixed[idx], 0.0, np.asarray(res.uncertainties)[idx])
    center, width = np.asarray(info.center)[idx], np.asarray(info.width)[idx]
    names = model.config.par_names
    types = parameter_types(model.config)
    return Pulls(
        names=tuple(names[i] for i in idx),
        types=tuple(types[i] for i in idx),
        index=tuple(int(i) for i in idx),
        bestfit=best,
        uncertainty=unc,
        center=center,
        prefit_width=width,
        pull=(best - center) / width,
        constraint=unc / width,
    )


def correlation_matrix(model, fit_result, *, threshold=0.0):
    """The fit's correlation matrix, pruned for display (cabinetry's convention).

    A parameter is dropped when it is fixed (its row is all zero) or when all its correlations
    with *other* parameters satisfy |ρ| < ``threshold``.

    Returns:
        ``(names, matrix)``: the kept parameter names and their correlation matrix (numpy).
    """
    corr = np.asarray(fit_result.correlation)
    small = np.abs(corr) < threshold
    np.fill_diagonal(small, True)
    fixed = np.all(corr == 0.0, axis=0) | np.asarray(fit_result.fixed)
    keep = ~(np.all(small, axis=0) | fixed)
    names = [n for n, k in zip(model.config.par_names, keep, strict=True) if k]
    return names, corr[np.ix_(keep, keep)]
