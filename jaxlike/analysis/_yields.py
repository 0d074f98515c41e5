"""Pre-fit and post-fit yield tables (per channel, sample and bin) with propagated uncertainties.

Every yield is a function ν(θ) of the parameters. Its uncertainty is propagated from a parameter
covariance Σ in two ways:

- linearised: Var ν = J Σ Jᵀ with J = ∂ν/∂θ (``jax.jacfwd``), for all quantities at once
  (per-bin yields of each sample and of the total, per-channel sums), so sums carry every
  correlation;
- sampled (optional): θ_k ~ N(θ, Σ) drawn with ``jax.random``, ν(θ_k) evaluated in one
  ``jax.vmap``, the standard deviation over draws (draws are *not* clipped to the parameter
  bounds; nonlinear modifiers make it differ from the linearised one).

Post-fit: θ = θ̂ and Σ the fit's (Hessian) covariance. Pre-fit: θ = the suggested inits and
a *diagonal* Σ from the constraint widths Δθ_prefit (:func:`constraint_info`): pre-fit
correlations are ignored, unconstrained parameters (normfactors, shapefactors) and fixed
parameters carry no uncertainty (cabinetry's convention).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._common import constraint_info, nominal_fit

__all__ = ["YieldTable", "postfit_yields", "prefit_covariance", "prefit_yields", "yields"]


class YieldTable(eqx.Module):
    """Yields of every channel and sample, their totals and their uncertainties.

    Samples are the model's (``config.samples``); ``present[c, s]`` says whether sample ``s``
    contributes to channel ``c`` (non-zero nominal template in one of its bins).

    Attributes:
        kind: ``"prefit"`` or ``"postfit"``.
        channels, samples, par_names: names. ``channel_bins``: bins per channel.
        pars, covariance: θ and the Σ that was propagated.
        data: observed main counts, one per bin (all channels, ``config.channel_slices``).
        bin_yields, bin_uncertainty: [samples, bins] ν_sb and σ(ν_sb) (linearised).
        bin_total, bin_total_uncertainty: [bins] Σ_s ν_sb and its σ (linearised).
        yields, uncertainty: [channels, samples] per-channel sums and their σ.
        total, total_uncertainty: [channels] per-channel totals and their σ.
        n_samples: number of draws (0: no sampled estimate).
        sampled_bin_total_uncertainty, sampled_total_uncertainty, sampled_uncertainty,
        sampled_bin_uncertainty: the same σ from draws (NaN without draws).
    """

    kind: str = eqx.field(static=True)
    channels: tuple[str, ...] = eqx.field(static=True)
    samples: tuple[str, ...] = eqx.field(static=True)
    par_names: tuple[str, ...] = eqx.field(static=True)
    channel_bins: tuple[int, ...] = eqx.field(static=True)
    n_samples: int = eqx.field(static=True)
    present: np.ndarray
    pars: jax.Array
    covariance: jax.Array
    data: jax.Array
    bin_yields: jax.Array
    bin_uncertainty: jax.Array
    bin_total: jax.Array
    bin_total_uncertainty: jax.Array
    yields: jax.Array
    uncertainty: jax.Array
    total: jax.Array
    total_uncertainty: jax.Array
    sampled_bin_uncertainty: jax.Array
    sampled_bin_total_uncertainty: jax.Array
    sampled_uncertainty: jax.Array
    sampled_total_uncertainty: jax.Array

    def bin_slice(self, channel):
        """Slice of ``channel``'s bins in the per-bin arrays."""
        c = self.channels.index(channel)
        start = int(sum(self.channel_bins[:c]))
        return slice(start, start + self.channel_bins[c])

    def channel(self, channel):
        """Per-bin table of one channel, for plotting: a dict of numpy arrays
        ``samples`` (names of the contributing samples), ``yields`` [samples, bins],
        ``uncertainty`` [samples, bins], ``total``, ``total_uncertainty``, ``data`` [bins]
        and ``sampled_total_uncertainty`` (NaN without draws)."""
        c, sl = self.channels.index(channel), self.bin_slice(channel)
        keep = np.flatnonzero(self.present[c])
        return {
            "samples": [self.samples[s] for s in keep],
            "yields": np.asarray(self.bin_yields)[keep, sl],
            "uncertainty": np.asarray(self.bin_uncertainty)[keep, sl],
            "total": np.asarray(self.bin_total)[sl],
            "total_uncertainty": np.asarray(self.bin_total_uncertainty)[sl],
            "sampled_total_uncertainty": np.asarray(self.sampled_bin_total_uncertainty)[sl],
            "data": np.asarray(self.data)[sl],
        }

    def rows(self):
        """Rows ``(channel, sample or "total" or "data", yield, uncertainty)`` for printing."""
        out = []
        for c, name in enumerate(self.channels):
            for s in np.flatnonzero(self.present[c]):
                out.append(
                    (name, self.samples[s], float(self.yields[c, s]), float(self.uncertainty[c, s]))
                )
            out.append((name, "total", float(self.total[c]), float(self.total_uncertainty[c])))
            out.append(
                (
                    name,
                    "data",
                    float(np.sum(np.asarray(self.data)[self.bin_slice(name)])),
                    float("nan"),
                )
            )
        return out


def _quantities(model, pars):
    """All yields as one vector: ν_sb [S·B], Σ_s ν_sb [B], per-channel sums [C·S], totals [C]."""
    cfg = model.config
    nu = model.expected_by_sample(pars)
    per_channel = jnp.stack([jnp.sum(nu[:, cfg.channel_slices[c]], axis=1) for c in cfg.channels])
    return jnp.concatenate([nu.ravel(), nu.sum(0), per_channel.ravel(), per_channel.sum(1)])


@eqx.filter_jit
def _linearised(model, pars, cov):
    q = _quantities(model, pars)
    jac = jax.jacfwd(lambda p: _quantities(model, p))(pars)
    var = jnp.sum((jac @ cov) * jac, axis=1)
    return q, jnp.sqrt(jnp.maximum(var, 0.0))


@eqx.filter_jit
def _sampled(model, pars, cov, key, n):
    lam, vec = jnp.linalg.eigh(0.5 * (cov + cov.T))
    root = vec * jnp.sqrt(jnp.maximum(lam, 0.0))  # Σ = root rootᵀ, also for singular Σ
    z = jax.random.normal(key, (n, pars.shape[0]), pars.dtype)
    draws = pars + z @ root.T
    return jnp.std(jax.vmap(lambda p: _quantities(model, p))(draws), axis=0, ddof=1)


def yields(model, pars, covariance, data=None, *, kind="postfit", n_samples=0, seed=0):
    """Yield table at parameters ``pars`` with uncertainties propagated from ``covariance``.

    The building block of :func:`prefit_yields` and :func:`postfit_yields`; ``data`` (main
    counts, or main + auxdata) is only carried along for tables and plots (NaN if omitted).
    ``n_samples > 0`` adds the sampled estimate (``seed`` for ``jax.random``).
    """
    cfg = model.config
    pars = jnp.asarray(pars, float)
    if hasattr(covariance, "todense"):  # a factored fit covariance (many per-bin parameters)
        covariance = covariance.todense()
    cov = jnp.asarray(covariance, float)
    S, B, C = len(cfg.samples), cfg.nmaindata, len(cfg.channels)
    q, sig = jax.device_get(_linearised(model, pars, cov))
    if n_samples > 0:
        key = jax.random.PRNGKey(seed)
        sampled = np.asarray(_sampled(model, pars, cov, key, int(n_samples)))
    else:
        sampled = np.full_like(sig, np.nan)
    cuts = np.cumsum([S * B, B, C * S])

    def split(v):
        a, b, c, d = np.split(np.asarray(v), cuts)
        return a.reshape(S, B), b, c.reshape(C, S), d

    (by, by_u), (bt, bt_u), (y, y_u), (t, t_u) = zip(split(q), split(sig), strict=True)
    s_by, s_bt, s_y, s_t = split(sampled)
    nominal = np.asarray(model.nominal)
    present = np.stack(
        [np.any(nominal[:, cfg.channel_slices[c]] != 0, axis=1) for c in cfg.channels]
    )
    obs = np.full(B, np.nan) if data is None else np.asarray(data, float)[:B]
    return YieldTable(
        kind=kind,
        channels=tuple(cfg.channels),
        samples=tuple(cfg.samples),
        par_names=tuple(cfg.par_names),
        channel_bins=tuple(int(cfg.channel_nbins[c]) for c in cfg.channels),
        n_samples=int(n_samples),
        present=present,
        pars=np.asarray(pars),
        covariance=np.asarray(cov),
        data=obs,
        bin_yields=by,
        bin_uncertainty=by_u,
        bin_total=bt,
        bin_total_uncertainty=bt_u,
        yields=y,
        uncertainty=y_u,
        total=t,
        total_uncertainty=t_u,
        sampled_bin_uncertainty=s_by,
        sampled_bin_total_uncertainty=s_bt,
        sampled_uncertainty=s_y,
        sampled_total_uncertainty=s_t,
    )


def prefit_covariance(model, data=None):
    """Diagonal pre-fit covariance: Δθ_prefit² for constrained, non-fixed parameters, else 0."""
    info = jax.device_get(constraint_info(model, data))
    free = np.asarray(info.constrained) & ~np.asarray(info.fixed)
    return np.diag(np.where(free, np.asarray(info.width), 0.0) ** 2)


def prefit_yields(model, data=None, *, n_samples=0, seed=0):
    """Pre-fit yields at the suggested inits with the *pre-fit widths* as a diagonal covariance
    (no correlations; unconstrained parameters contribute nothing), see the module docstring.

    Example::

        t = prefit_yields(model, data)
        for channel, sample, value, sigma in t.rows():
            print(channel, sample, f"{value:.1f} ± {sigma:.1f}")
    """
    pars = model.config.suggested_init()
    cov = prefit_covariance(model, data)
    return yields(model, pars, cov, data, kind="prefit", n_samples=n_samples, seed=seed)


def postfit_yields(model, data, fit_result=None, *, n_samples=0, seed=0, **fit_kwargs):
    """Post-fit yields at θ̂ with the full fit covariance (Hessian; 0 for fixed parameters).

    ``fit_result``: a global fit of ``model`` to ``data`` (fitted here when omitted, with
    ``fit_kwargs``); it must have converged.
    """
    res = nominal_fit(model, data, fit_result, **fit_kwargs)
    return yields(
        model, res.bestfit, res.covariance, data, kind="postfit", n_samples=n_samples, seed=seed
    )
