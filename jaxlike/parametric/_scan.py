"""Mass scans with a parametric signal: one window model per hypothesis, built inside the trace.

A :class:`MassScan` holds everything that does not depend on the hypothesis: the finely binned
spectra of C categories (as cumulative sums), per-category :class:`~jaxlike.shapes.MassTable`
of the signal shape (σ, tails, efficiency, …), fixed-shape templates, vetoes and systematics.
:meth:`MassScan.window_model` gathers the window of hypothesis m (static shapes, traced m) and
returns the :class:`~jaxlike.parametric.WindowModel`; :func:`hypothesis_results` runs the fits,
the significance and the CLs limits of one hypothesis, and is vmapped over masses by the scan.

Window of hypothesis m: [m − w_lo σ(m), m + w_hi σ(m)] regrouped into ``n_bins`` bins made of
whole fine bins (:func:`jaxlike.shapes.window_indices`), σ(m) the signal width of category 0.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ..fit import fit_arrays, prepare_fit_inputs
from ..infer import hypotest_prepare, toy_limits_traced, upper_limit_prepared
from ..shapes import (
    MassTable,
    crystal_ball_binned,
    gaussian_binned,
    veto_mask,
    window_counts,
    window_edges,
    window_indices,
)
from ._model import WindowModel, ranged_order

__all__ = ["MassScan", "hypothesis_results", "hypothesis_significance", "window_results",
           "RESULT_FIELDS"]  # fmt: skip

#: shape-table columns: (name, default when absent from the table)
TABLE_COLUMNS = (
    ("mean", None),  # peak position; default: the hypothesis mass
    ("sigma", None),  # required
    ("alpha_l", 1.5),
    ("n_l", 3.0),
    ("alpha_r", 1.5),
    ("n_r", 3.0),
    ("efficiency", 1.0),
    ("comb_fraction", 0.0),
    ("unit", 1.0),  # physical value per unit μ (e.g. 1/(ε L) for a cross section)
    ("rel_eff", None),  # mass-dependent δ_ε of the category; default: the scan's rel_eff
    ("rel_res", None),  # mass-dependent δ_σ of the category; default: the scan's rel_res
)


class MassScan(eqx.Module):
    """Hypothesis-independent inputs of a parametric mass scan (see module docstring).

    Attributes:
        fine_edges: fine binning of the spectra [N+1] (shared by the categories).
        cum_counts: cumulative observed counts with a leading 0 [C, N+1].
        cum_comb: cumulative fixed-shape signal component [C, N+1] (zeros if unused).
        cum_template: cumulative background template [C, N+1] (background ``"template"``).
        cum_peaks: cumulative peaking-background templates [C, K, N+1].
        tables: one :class:`~jaxlike.shapes.MassTable` per category.
        conversion: signal yield per unit μ before efficiency, per category [C].
        vetoes: vetoed intervals [V, 2].
        rel_eff, rel_res: relative efficiency / resolution uncertainties (0 = no nuisance),
            for every category whose table has no ``rel_eff``/``rel_res`` column (the column:
            a mass-dependent width of that category, one nuisance shared by all).
        window_lo, window_hi: window extent below/above m in units of σ(m).
        mu_max: upper bound of μ; ≤ 0 means automatic (10 (5 + √n_window) / min_c k_c).
        n_bins, shape, background, n_coeffs: static layout.
        physics_power: p of the physics parameter g = k(m) (μ unit(m))^p (a coupling from a
            cross section: p = 1/2), or None (no ``[physics]`` section).
        physics_scale: k(m), a :class:`~jaxlike.shapes.MassTable` with column ``scale``
            (monotone cubic in m), or None (k = 1); see :meth:`physics`.
        uncorrelated: one efficiency and one resolution nuisance per category instead of one
            shared by all (``signal.uncorrelated``; :class:`WindowModel`).
        comb_masses: simulated masses [S] of mass-dependent combinatorial templates
            (``cum_comb`` then [C, S, N+1]), or None (one template); ``comb_mode`` how the
            template at m is formed from them (:func:`comb_weights`).
        orders, order_below: a polynomial order per mass range (static, ``n_coeffs`` their
            maximum) and the masses between the ranges [len(orders) − 1]: ``orders[i]``
            applies below ``order_below[i]``, the last above (``background.order`` as a list);
            () for one order. The window models are then :func:`ranged_order` models.
    """

    fine_edges: jnp.ndarray
    cum_counts: jnp.ndarray
    cum_comb: jnp.ndarray
    cum_template: jnp.ndarray
    cum_peaks: jnp.ndarray
    tables: tuple
    conversion: jnp.ndarray
    vetoes: jnp.ndarray
    rel_eff: jnp.ndarray
    rel_res: jnp.ndarray
    window_lo: jnp.ndarray
    window_hi: jnp.ndarray
    mu_max: jnp.ndarray
    n_bins: int = eqx.field(static=True)
    shape: str = eqx.field(static=True)
    background: str = eqx.field(static=True)
    n_coeffs: int = eqx.field(static=True)
    has_eff: bool = eqx.field(static=True)
    has_res: bool = eqx.field(static=True)
    physics_power: jnp.ndarray | None = None
    physics_scale: MassTable | None = None
    uncorrelated: bool = eqx.field(static=True, default=False)
    comb_masses: jnp.ndarray | None = None
    comb_mode: str = eqx.field(static=True, default="linear")
    orders: tuple = eqx.field(static=True, default=())
    order_below: jnp.ndarray | None = None

    @property
    def n_categories(self) -> int:
        """Number of categories C."""
        return self.cum_counts.shape[0]

    def shape_parameters(self, m):
        """Per-category shape columns at mass m: dict name → [C] (defaults filled in)."""
        rows = [t(m) for t in self.tables]
        out = {}
        for name, default in TABLE_COLUMNS:
            if name == "mean" and default is None:
                vals = [r.get("mean", m) for r in rows]
            elif name in ("rel_eff", "rel_res"):  # the scan-wide width where not tabulated
                vals = [r.get(name, getattr(self, name)) for r in rows]
            else:
                vals = [r.get(name, default) for r in rows]
            out[name] = jnp.stack([jnp.asarray(v, float) for v in vals])
        return out

    def window_model(self, m) -> WindowModel:
        """The :class:`WindowModel` of hypothesis mass m (traceable in m)."""
        m = jnp.asarray(m, float)
        p = self.shape_parameters(m)
        width = p["sigma"][0]
        idx = window_indices(
            self.fine_edges, m, self.window_lo * width, self.window_hi * width, self.n_bins
        )
        edges = window_edges(self.fine_edges, idx)
        counts = window_counts(self.cum_counts, idx)

        def normalised(cum):  # probability content per window bin of a fine template
            w = window_counts(cum, idx)
            total = jnp.sum(w, axis=-1, keepdims=True)
            return w / jnp.where(total > 0, total, 1.0)

        C = self.n_categories
        keep = veto_mask(edges, self.vetoes)
        comb, f = normalised(self.cum_comb), p["comb_fraction"][:, None]
        if self.comb_masses is not None:  # [C, S, W] at simulated masses → [C, W] at m
            comb = jnp.einsum("csw,s->cw", comb, comb_weights(self.comb_masses, m, self.comb_mode))

        def shape_at(factor):  # U_cb at σ_c·factor_c: peak + fixed-shape component
            if self.shape == "gauss":
                peak = jnp.stack(
                    [
                        gaussian_binned(edges, p["mean"][c], p["sigma"][c] * factor[c])
                        for c in range(C)
                    ]  # fmt: skip
                )
            else:
                peak = jnp.stack(
                    [
                        crystal_ball_binned(
                            edges,
                            p["mean"][c],
                            p["sigma"][c] * factor[c],
                            p["alpha_l"][c],
                            p["n_l"][c],
                            p["alpha_r"][c],
                            p["n_r"][c],
                        )  # fmt: skip
                        for c in range(C)
                    ]
                )
            return (1.0 - f) * peak + f * comb

        scale = self.conversion * p["efficiency"]
        total = jnp.sum(jnp.where(keep, counts, 0.0))
        # no signal yield can exceed the window's content by more than a few σ of it
        auto = (total + 10.0 * (5.0 + jnp.sqrt(total))) / jnp.min(scale)
        model = WindowModel(
            edges=jnp.broadcast_to(edges, (C, self.n_bins + 1)),
            counts=counts,
            mask=jnp.broadcast_to(keep, (C, self.n_bins)),
            sig_nom=shape_at(jnp.ones(C)),
            sig_up=shape_at(1.0 + p["rel_res"]),
            sig_down=shape_at(1.0 - p["rel_res"]),
            scale=scale,
            template=normalised(self.cum_template),
            peaks=normalised(self.cum_peaks),
            rel_eff=p["rel_eff"],
            rel_res=p["rel_res"],
            mu_max=jnp.where(self.mu_max > 0, self.mu_max, auto),
            background=self.background,
            n_coeffs=self.n_coeffs,
            has_eff=self.has_eff,
            has_res=self.has_res,
            uncorrelated=self.uncorrelated,
        )
        if not self.orders:
            return model
        below = jnp.zeros((0,)) if self.order_below is None else self.order_below
        return ranged_order(model, self.orders, jnp.searchsorted(below, m, side="right"))

    def unit(self, m):
        """Physical value per unit μ at mass m (table column ``unit``, category 0)."""
        return self.shape_parameters(m)["unit"][0]

    def physics(self, m, value):
        r"""The physics parameter of a physical-unit value (a cross section σ = μ · unit) at
        mass m: g = k(m) σ^p, with p = ``physics_power`` and k(m) the table ``physics_scale``
        (1 without one). Increasing in σ for p > 0, so an upper limit and every expected band
        map to the same quantile of g (σ_a = g² α/24 (1 − m²/s)³ of an ALP gives
        p = 1/2, k = √(24/(α (1 − m²/s)³)) in matching units). Only with a ``[physics]``
        section."""
        g = jnp.power(value, self.physics_power)
        return g if self.physics_scale is None else self.physics_scale(m)["scale"] * g


def comb_weights(masses, m, mode="linear"):
    r"""Weights w_s [S] of the templates simulated at ``masses`` (increasing) for hypothesis m:
    ``"nearest"`` one-hot at the closest simulated mass; ``"linear"`` the two neighbours,
    w = (1 − t, t) with t = (m − m_s)/(m_{s+1} − m_s), constant beyond the ends. Each
    template is normalised in the window first, so the mixture is one too."""
    masses = jnp.asarray(masses, float)
    S = masses.shape[0]
    if mode == "nearest" or S == 1:
        return jax.nn.one_hot(jnp.argmin(jnp.abs(masses - m)), S, dtype=masses.dtype)
    j = jnp.clip(jnp.searchsorted(masses, m), 1, S - 1)
    t = jnp.clip((m - masses[j - 1]) / (masses[j] - masses[j - 1]), 0.0, 1.0)
    return jnp.zeros(S, masses.dtype).at[j - 1].set(1.0 - t).at[j].add(t)


RESULT_FIELDS = (
    "mu_hat",
    "mu_hat_err",
    "mu_hat_phys",
    "significance",
    "p0",
    "ul_obs",
    "ul_exp",
    "ul_obs_phys",
    "ul_exp_phys",
    "fit_converged",
    "limit_converged",
)


def hypothesis_key(seed: int, value):
    """The PRNG key of a hypothesis' toys: ``PRNGKey(seed)`` folded with the two 32-bit halves
    of the float64 hypothesis value, so its toys do not depend on chunking, order or devices."""
    bits = jax.lax.bitcast_convert_type(jnp.asarray(value, jnp.float64), jnp.uint32)
    key = jax.random.PRNGKey(seed)
    return jax.random.fold_in(jax.random.fold_in(key, bits[0]), bits[1])


def hypothesis_results(scan: MassScan, m, cl=(0.95,), data=None, *, rule="cls", toys=None):
    """All per-hypothesis results at mass m (traceable; vmap over m and over ``data``).

    - μ̂ and its Hessian uncertainty from a fit with μ free in [−μ_max, μ_max] (signed yields);
    - local significance Z = sign(μ̂) √(2NLL(μ=0) − 2NLL(μ̂)), p0 = 1 − Φ(Z) (one-sided);
    - observed and expected (N = 2, 1, 0, −1, −2) CLs upper limits on μ at each level of ``cl``
      (q̃μ, asymptotic, μ ≥ 0; :func:`jaxlike.upper_limit`);
    - the same in physical units (× ``unit``), and convergence flags (every fit / every root);
    - with a ``[physics]`` section (``scan.physics_power``), the limits as the physics
      parameter g = k(m) (limit × unit)^p: ``ul_obs_coupling``, ``ul_exp_coupling`` (and
      ``ul_*_toys_coupling`` with toys; :meth:`MassScan.physics`).

    ``data`` replaces the observed window counts (toys); default: the observed spectrum.
    ``rule``: ``"cls"`` or ``"clsb"`` (one-sided profile-likelihood limits, CLs+b = α).
    ``toys``: None, or a dict ``{"ntoys", "seed", "npoints", "toy_pars"}`` — then also the
    toy-based limits and toy p0 of :func:`jaxlike.infer.toy_limits_traced` on a grid around
    the asymptotic limits (fields :data:`jaxlike.infer.TOY_SCAN_FIELDS`, limits also × unit),
    with the toys keyed to the mass (:func:`hypothesis_key`).
    Returns a dict of arrays (``ul_*`` have a leading axis over ``cl``).
    """
    model = scan.window_model(m)
    prep, ul, out = window_results(model, cl, data, rule=rule)
    unit = scan.unit(m)
    extra = {}
    if toys is not None:
        limits = jnp.concatenate([ul.obs.reshape(-1), ul.exp.reshape(-1)])
        extra = toy_limits_traced(
            prep, model, hypothesis_key(toys["seed"], m), limits, ntoys=toys["ntoys"],
            cl=jnp.asarray(cl, float), rule=rule, npoints=toys["npoints"],
            toy_pars=toys["toy_pars"],
        )  # fmt: skip
        extra["ul_obs_toys_phys"] = extra["ul_obs_toys"] * unit
        extra["ul_exp_toys_phys"] = extra["ul_exp_toys"] * unit
        if scan.physics_power is not None:
            extra["ul_obs_toys_coupling"] = scan.physics(m, extra["ul_obs_toys_phys"])
            extra["ul_exp_toys_coupling"] = scan.physics(m, extra["ul_exp_toys_phys"])
    return extra | out | physical_fields(scan, m, out["mu_hat"], ul.obs, ul.exp)


def window_results(model: WindowModel, cl=(0.95,), data=None, *, rule="cls"):
    """The fits of :func:`hypothesis_results` for one window model (traceable; vmap over
    stacked models): μ̂ and its uncertainty, Z, p0, the observed and expected limits on μ and
    the convergence flags. Returns (prep, limits, fields) — the
    :class:`~jaxlike.infer.HypoTestPrep`, the :class:`~jaxlike.infer.UpperLimitResult` and
    the dict of fields (no physical units)."""
    d = model.make_data(None if data is None else data)
    # the q̃ fits bound μ ≥ 0; the signed fit (μ ≥ −μ_max, batched with them) gives μ̂ and Z.
    # The μ = 0 fit to the data (Asimov construction) is the null fit of q0.
    prep = hypotest_prepare(d, model, test_stat="qtilde", signed_fit=True)
    free, null = prep.signed_fit, prep.asimov_fit
    q0 = jnp.clip(null.twice_nll - free.twice_nll, 0.0)
    mu_hat = free.bestfit[0]
    z = jnp.sign(mu_hat) * jnp.sqrt(q0)
    ul = upper_limit_prepared(prep, model, cl=jnp.asarray(cl, float), rule=rule)
    return (
        prep,
        ul,
        {
            "mu_hat": mu_hat,
            "mu_hat_err": free.uncertainties[0],
            "significance": z,
            "p0": jax.scipy.stats.norm.sf(z),
            "ul_obs": ul.obs,
            "ul_exp": ul.exp,
            "fit_converged": free.converged & null.converged,
            "limit_converged": ul.converged,
        },
    )


def physical_fields(scan, m, mu_hat, ul_obs, ul_exp) -> dict:
    """μ̂ and the limits on μ in physical units (× ``scan.unit(m)``: ``mu_hat_phys``,
    ``ul_obs_phys``, ``ul_exp_phys``) and, with a ``[physics]`` section, as the physics
    parameter g = k(m) (limit × unit)^p (``ul_obs_coupling``, ``ul_exp_coupling``)."""
    unit = scan.unit(m)
    out = {"mu_hat_phys": mu_hat * unit, "ul_obs_phys": ul_obs * unit, "ul_exp_phys": ul_exp * unit}
    if scan.physics_power is not None:
        out["ul_obs_coupling"] = scan.physics(m, ul_obs * unit)
        out["ul_exp_coupling"] = scan.physics(m, ul_exp * unit)
    return out


def hypothesis_significance(scan: MassScan, m):
    """Only the two fits of the local significance at mass m (cheap; for toys of a scan):
    ``{"mu_hat", "significance", "converged"}`` with Z = sign(μ̂) √(2NLL(0) − 2NLL(μ̂)).
    Toys replace ``scan.cum_counts`` (``eqx.tree_at``) with a generated spectrum."""
    model = scan.window_model(m)
    d, init, lo, hi, fixed = prepare_fit_inputs(model, model.make_data())
    free = fit_arrays(model, d, init, lo.at[0].set(-hi[0]), hi, fixed)
    null = fit_arrays(model, d, init.at[0].set(0.0), lo, hi, fixed.at[0].set(True))
    mu_hat = free.bestfit[0]
    z = jnp.sign(mu_hat) * jnp.sqrt(jnp.clip(null.twice_nll - free.twice_nll, 0.0))
    return {"mu_hat": mu_hat, "significance": z, "converged": free.converged & null.converged}


def make_table(masses, columns: dict, kind="linear", path="") -> MassTable:
    """A :class:`MassTable` from tabulated columns (see :data:`TABLE_COLUMNS`)."""
    return MassTable(masses, columns, kind=kind, path=path)
