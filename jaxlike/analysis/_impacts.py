"""Nuisance-parameter impacts on the POI (ranking), grouped impacts, stat/syst breakdown.

All fits of one call run as one vmapped batch (chunked, see :func:`batch_fit`), each warm-started
from the global best fit θ̂.
"""

from __future__ import annotations

import fnmatch
import re

import equinox as eqx
import jax
import numpy as np

from ..exceptions import InvalidParameters
from ._common import batch_fit, bounds, constraint_info, nominal_fit, parameter_types, poi_index

__all__ = ["GroupedImpacts", "Impacts", "grouped_impacts", "impacts", "stat_syst_breakdown"]


class Impacts(eqx.Module):
    """POI shifts Δμ = μ̂(θ_i fixed) − μ̂ for every nuisance parameter θ_i.

    Attributes:
        names, types, index: the nuisance parameters (the POI and fixed parameters excluded).
        poi_name, poi_hat, poi_uncertainty: the POI, μ̂ and its Hessian σ.
        bestfit, prefit_width, postfit_width: θ̂_i, Δθ_prefit (0 for unconstrained
            parameters), Δθ_postfit (Hessian).
        prefit_up, prefit_down, postfit_up, postfit_down: Δμ with θ_i fixed at
            θ̂_i + Δθ_prefit, θ̂_i − Δθ_prefit, θ̂_i + Δθ_postfit, θ̂_i − Δθ_postfit.
        values: [n, 4] the fixed values used (after clipping to the parameter bounds).
        clipped: [n, 4] the variation crossed a bound and was clipped to it.
        converged: [n, 4] the conditional fit converged (True for skipped zero variations).
    """

    names: tuple[str, ...] = eqx.field(static=True)
    types: tuple[str, ...] = eqx.field(static=True)
    index: tuple[int, ...] = eqx.field(static=True)
    poi_name: str = eqx.field(static=True)
    poi_hat: jax.Array
    poi_uncertainty: jax.Array
    bestfit: jax.Array
    prefit_width: jax.Array
    postfit_width: jax.Array
    prefit_up: jax.Array
    prefit_down: jax.Array
    postfit_up: jax.Array
    postfit_down: jax.Array
    values: jax.Array
    clipped: jax.Array
    converged: jax.Array

    @property
    def shifts(self):
        """[n, 4] Δμ in the order prefit up/down, postfit up/down."""
        return np.stack(
            [self.prefit_up, self.prefit_down, self.postfit_up, self.postfit_down], axis=-1
        )

    def order(self, by="postfit"):
        """Indices sorting the parameters by decreasing impact.

        ``by="postfit"`` (default): cabinetry 0.6's ranking order (``visualize.ranking``), the
        larger of |postfit_up| and |postfit_down|, as ``np.argsort(key)[::-1]`` — ties and
        NaN impacts (first) fall as they do in cabinetry. The ``jaxlike ranking`` table, its
        JSON and :func:`~jaxlike.plotting.plot_ranking` use this order.
        ``by="max"``: the largest |Δμ| of all four variations (pre- and post-fit), same rule.
        """
        s = np.abs(np.asarray(self.shifts, float))
        if by == "postfit":
            key = np.maximum(s[:, 2], s[:, 3])
        elif by == "max":
            key = s.max(axis=-1)
        else:
            raise ValueError(f"by must be 'postfit' or 'max', not {by!r}")
        return np.argsort(key)[::-1]

    def ranked(self, by="postfit"):
        """Rows ``(name, prefit_up, prefit_down, postfit_up, postfit_down)`` in the ranking
        order of :meth:`order` (cabinetry's: the larger post-fit |Δμ|, largest first)."""
        s = self.shifts
        return [(self.names[i], *s[i].tolist()) for i in self.order(by)]

    def __repr__(self) -> str:
        """The POI, μ̂ ± σ, the number of parameters and the leading three of the ranking."""
        n = len(self.names)
        lead = ", ".join(
            f"{name}: {max(abs(up), abs(down)):.3g}" for name, _, _, up, down in self.ranked()[:3]
        )
        conv = "all fits converged" if bool(np.all(self.converged)) else (
            f"{int(np.sum(~np.asarray(self.converged)))} fits not converged")  # fmt: skip
        return (
            f"Impacts({self.poi_name}={float(self.poi_hat):.6g} ± "
            f"{float(self.poi_uncertainty):.3g}, {n} parameters, {conv}; "
            f"largest post-fit |Δ{self.poi_name}|: {lead}{', …' if n > 3 else ''})"
        )


def impacts(model, data, poi=None, *, fit_result=None, chunk=256, clip=True, **fit_kwargs):
    """Impact of each nuisance parameter on the POI (cabinetry's ``fit.ranking``).

    For each non-fixed parameter θ_i other than the POI, four conditional fits hold θ_i at
    θ̂_i ± Δθ_prefit and θ̂_i ± Δθ_postfit and profile everything else; the impact is the POI
    shift from the global fit. Conventions (cabinetry): Δθ_prefit is the constraint width —
    σ for Gaussian constraints (normsys/histosys 1, lumi σ, staterror the relative MC-stat σ_b),
    1/√τ_b for shapesys γ (pyhf's ``width()``), 0 for unconstrained parameters; a zero
    variation needs no fit and has impact 0; parameters fixed in the model are skipped.
    Unlike released cabinetry (whose fits then fail), a variation that leaves the parameter's
    bounds (e.g. γ − Δθ < 0) is clipped to the bound and flagged in ``clipped`` (``clip=False``
    raises instead).

    All 4·n fits run as one vmapped batch (chunks of ``chunk`` fits, one compiled function),
    warm-started from θ̂.

    Example::

        imp = jaxlike.analysis.impacts(model, data)
        for name, *shifts in imp.ranked()[:10]:   # cabinetry's ranking order
            print(name, shifts)
    """
    cfg = model.config
    res = nominal_fit(model, data, fit_result, **fit_kwargs)
    poi_i = poi_index(cfg, poi)
    info = jax.device_get(constraint_info(model, data))
    best, unc = np.asarray(res.bestfit), np.asarray(res.uncertainties)
    fixed = np.asarray(res.fixed)
    lo, hi = bounds(model, fit_kwargs.get("par_bounds"))
    idx = np.array([i for i in range(cfg.npars) if i != poi_i and not fixed[i]], dtype=int)
    prefit = np.where(np.asarray(info.constrained)[idx], np.asarray(info.width)[idx], 0.0)
    widths = np.stack([prefit, prefit, unc[idx], unc[idx]], axis=1)
    raw = best[idx, None] + np.array([1.0, -1.0, 1.0, -1.0]) * widths
    values = np.clip(raw, lo[idx, None], hi[idx, None])
    clipped = values != raw
    if clipped.any() and not clip:
        bad = [cfg.par_names[idx[i]] for i in np.flatnonzero(clipped.any(axis=1))]
        raise InvalidParameters(f"impact variations leave the parameter bounds for {bad}")
    run = values != best[idx, None]
    rows, cols = np.nonzero(run)
    inits = np.repeat(best[None], len(rows), axis=0)
    inits[np.arange(len(rows)), idx[rows]] = values[rows, cols]
    masks = np.repeat(fixed[None], len(rows), axis=0)
    masks[np.arange(len(rows)), idx[rows]] = True
    shifts = np.zeros(values.shape)
    converged = np.ones(values.shape, dtype=bool)
    if len(rows):
        out = batch_fit(model, data, inits, masks, lo=lo, hi=hi, chunk=chunk)
        shifts[rows, cols] = out.bestfit[:, poi_i] - best[poi_i]
        converged[rows, cols] = out.converged
    names, types = cfg.par_names, parameter_types(cfg)
    return Impacts(
        names=tuple(names[i] for i in idx),
        types=tuple(types[i] for i in idx),
        index=tuple(int(i) for i in idx),
        poi_name=names[poi_i],
        poi_hat=best[poi_i],
        poi_uncertainty=unc[poi_i],
        bestfit=best[idx],
        prefit_width=prefit,
        postfit_width=unc[idx],
        prefit_up=shifts[:, 0],
        prefit_down=shifts[:, 1],
        postfit_up=shifts[:, 2],
        postfit_down=shifts[:, 3],
        values=values,
        clipped=clipped,
        converged=converged,
    )


class GroupedImpacts(eqx.Module):
    """Grouped impacts on the POI and the stat/syst breakdown of its Hessian uncertainty.

    Attributes:
        groups, members: group names and the parameters each fixes.
        poi_name, poi_hat: the POI and μ̂.
        total: σ_μ of the global fit.
        without: [groups] σ_μ with the group's parameters fixed at θ̂.
        impact: [groups] sqrt(total² − without²) (0 if the difference is negative).
        stat: σ_μ with every parameter but the POI (and ``stat_free``) fixed at θ̂.
        syst: sqrt(total² − stat²).
        converged: [groups + 1] the conditional fits converged (the last one: stat-only).
    """

    groups: tuple[str, ...] = eqx.field(static=True)
    members: tuple[tuple[str, ...], ...] = eqx.field(static=True)
    poi_name: str = eqx.field(static=True)
    poi_hat: jax.Array
    total: jax.Array
    without: jax.Array
    impact: jax.Array
    stat: jax.Array
    syst: jax.Array
    converged: jax.Array


def select_parameters(config, spec):
    """Boolean mask of the parameters matched by ``spec``: a name or glob pattern (matched
    against scalar names ``name[i]`` and parameter-set names), ``"type:<modifier>"`` (e.g.
    ``"type:staterror"``), ``"re:<regex>"``, or a list of those."""
    specs = [spec] if isinstance(spec, str) else list(spec)
    types = parameter_types(config)
    sets = [n for n in config.par_order for _ in range(config.par_map[n].n_parameters)]
    mask = np.zeros(config.npars, dtype=bool)
    for s in specs:
        if s.startswith("type:"):
            hit = [s[5:] in t.split(",") for t in types]
        elif s.startswith("re:"):
            rx = re.compile(s[3:])
            hit = [bool(rx.fullmatch(n)) for n in config.par_names]
        else:
            hit = [
                fnmatch.fnmatchcase(n, s) or fnmatch.fnmatchcase(p, s)
                for n, p in zip(config.par_names, sets, strict=True)
            ]
        if not any(hit):
            raise InvalidParameters(f"no parameter matches {s!r}")
        mask |= np.asarray(hit)
    return mask


def grouped_impacts(
    model, data, groups=None, poi=None, *, fit_result=None, stat_free=(), chunk=256, **fit_kwargs
):
    """Grouped impacts σ_μ,group = sqrt(σ_μ,total² − σ_μ,without group²) and the stat/syst split.

    For each group the group's parameters are fixed at θ̂ and the model refitted (a conditional
    fit that starts at its own minimum); σ_μ is the Hessian uncertainty of the POI. The
    stat-only fit fixes every parameter except the POI (and those matched by ``stat_free``,
    e.g. free background normalisations you count as statistical); syst = sqrt(total² − stat²).
    Groups are ``{name: spec}`` with ``spec`` as in :func:`select_parameters`; all fits run as
    one vmapped batch.

    Example::

        g = grouped_impacts(model, data, {"MC stat": "type:staterror", "JES": "jes*"})
        print(g.total, g.stat, g.syst, dict(zip(g.groups, g.impact.tolist())))
    """
    cfg = model.config
    res = nominal_fit(model, data, fit_result, **fit_kwargs)
    poi_i = poi_index(cfg, poi)
    groups = dict(groups or {})
    best, fixed = np.asarray(res.bestfit), np.asarray(res.fixed)
    masks = []
    for spec in groups.values():
        m = select_parameters(cfg, spec)
        if m[poi_i]:
            raise InvalidParameters("a group must not contain the POI")
        masks.append(m)
    stat = np.ones(cfg.npars, dtype=bool)
    stat[poi_i] = False
    if stat_free:
        stat &= ~select_parameters(cfg, stat_free)
    masks.append(stat)
    masks = np.stack(masks) | fixed
    lo, hi = bounds(model, fit_kwargs.get("par_bounds"))
    out = batch_fit(model, data, np.repeat(best[None], len(masks), 0), masks, lo=lo, hi=hi,
                    chunk=chunk)  # fmt: skip
    total = float(res.uncertainties[poi_i])
    sig = out.uncertainties[:, poi_i]
    quad = lambda s: np.sqrt(np.maximum(total**2 - s**2, 0.0))  # noqa: E731
    members = tuple(
        tuple(n for n, k in zip(cfg.par_names, m, strict=True) if k) for m in masks[:-1] & ~fixed
    )
    return GroupedImpacts(
        groups=tuple(groups),
        members=members,
        poi_name=cfg.par_names[poi_i],
        poi_hat=best[poi_i],
        total=np.asarray(total),
        without=sig[:-1],
        impact=quad(sig[:-1]),
        stat=sig[-1],
        syst=quad(sig[-1]),
        converged=out.converged,
    )


def stat_syst_breakdown(model, data, poi=None, **kwargs):
    """(total, stat, syst) Hessian uncertainty of the POI (see :func:`grouped_impacts`)."""
    g = grouped_impacts(model, data, None, poi, **kwargs)
    return float(g.total), float(g.stat), float(g.syst)
