r"""The spurious-signal test of a background family (the standard ATLAS/CMS check of a choice
of background function): how much signal does a fit model find in a background-only spectrum
of another shape?

For every mass m and every pair (truth i, fit j) of the models of an :class:`Envelope`:

1. the *truth* i is fitted to the observed window with μ = 0; its expectation ν_i (background
   only, the Asimov data of that shape, global observables at their nominal 0);
2. the *fit* model j is fitted to ν_i with μ free in [−μ_max, μ_max]: the spurious signal
   μ̂_ij and its uncertainty σ_ij (Hessian of the same fit).

``mu_spur[h, i, j]`` = μ̂_ij, ``mu_err`` = σ_ij, ``ratio`` = μ̂_ij / σ_ij (the criterion is
usually |μ̂| below 10–20 % of σ over the range), and the physical value μ̂ × unit(m). The
diagonal (a model fitted to its own background-only shape) is 0 up to the fit tolerance. All
models need the same window (the same data), as for discrete profiling.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..fit import fit_arrays, prepare_fit_inputs
from ..stream import run_scan
from ._envelope import Envelope, background_envelope
from ._model import stack_backgrounds

__all__ = ["SpuriousSignal", "spurious_signal", "spurious_signal_at"]


def spurious_signal_at(env: Envelope, m):
    """``{"mu_spur", "mu_err", "converged"}`` [J, J] (truth i, fit j) at mass m (traceable;
    module docstring). The J models are one stacked window model
    (:func:`~jaxlike.parametric.stack_backgrounds`): one vmapped fit for the J truths, one for
    the J × J free fits."""
    stacked = stack_backgrounds([s.window_model(m) for s in env.models])

    def null_fit(w):
        d, init, lo, hi, fixed = prepare_fit_inputs(w, w.make_data())
        null = fit_arrays(w, d, init.at[0].set(0.0), lo, hi, fixed.at[0].set(True))
        return jnp.concatenate([w.expected_actualdata(null.bestfit), w.auxdata()]), null.converged

    def free_fit(w, data):
        d, init, lo, hi, fixed = prepare_fit_inputs(w, data)
        return fit_arrays(w, d, init, lo.at[0].set(-hi[0]), hi, fixed)

    asimov, ok_truth = jax.vmap(null_fit)(stacked)  # [J, ndata], [J]
    free = jax.vmap(lambda data: jax.vmap(lambda w: free_fit(w, data))(stacked))(asimov)
    return {
        "mu_spur": free.bestfit[..., 0],
        "mu_err": free.uncertainties[..., 0],
        "converged": free.converged & ok_truth[:, None],
    }


@dataclass(frozen=True)
class SpuriousSignal:
    """Spurious signal at every mass [H, J, J] (truth i, fit j): ``mu_spur``, ``mu_err``,
    ``ratio`` = mu_spur / mu_err, ``phys`` = mu_spur × unit(m), ``converged``; ``names`` of the
    models, ``masses`` [H]."""

    masses: np.ndarray
    names: tuple
    mu_spur: np.ndarray
    mu_err: np.ndarray
    ratio: np.ndarray
    phys: np.ndarray
    converged: np.ndarray

    def table(self) -> list[dict]:
        """One row per (truth, fit) pair: the largest |μ̂/σ| over the masses, where, and
        the median |μ̂/σ| (a bias table)."""
        rows = []
        for i, truth in enumerate(self.names):
            for j, fit in enumerate(self.names):
                r = np.abs(self.ratio[:, i, j])
                k = int(np.nanargmax(r))
                rows.append({"truth": truth, "fit": fit, "max_abs_ratio": float(r[k]),
                             "at_mass": float(self.masses[k]),
                             "median_abs_ratio": float(np.nanmedian(r))})  # fmt: skip
        return rows


def spurious_signal(
    env_or_models, masses, *, chunk_size=32, names=None, progress=False
) -> SpuriousSignal:
    """The spurious-signal table of a background family at ``masses`` (module docstring).

    ``env_or_models``: an :class:`Envelope` or a list of :class:`MassScan` (same window);
    one compiled, vmapped :func:`spurious_signal_at` runs the masses in chunks of
    ``chunk_size`` through the streaming engine (:func:`jaxlike.stream.run_scan`, in memory)."""
    env = env_or_models
    if not isinstance(env, Envelope):
        env = background_envelope(env, method="profile", names=names)
    else:  # the window check of discrete profiling
        env = background_envelope(env.models, method="profile", names=env.names)
    masses = np.asarray(masses, float).ravel()
    fn = jax.vmap(lambda h: spurious_signal_at(env, h["mass"]) | {"unit": env.unit(h["mass"])})
    out = run_scan(fn, {"mass": masses}, chunk_size=chunk_size, progress=progress)
    return SpuriousSignal(
        masses=masses,
        names=tuple(env.names),
        mu_spur=out["mu_spur"],
        mu_err=out["mu_err"],
        ratio=out["mu_spur"] / out["mu_err"],
        phys=out["mu_spur"] * out["unit"][:, None, None],
        converged=out["converged"],
    )
