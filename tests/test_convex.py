"""Convex layouts: the minimiser's global search is skipped where 2NLL is provably convex.

:func:`jaxlike.model._model.convex_layout` says a layout's 2NLL is convex when every expected
count is affine in the parameters (no normsys, no histosys, at most one free multiplicative
parameter per sample and bin). Fits of such models run one certified Newton run and no
search. These tests hunt the cases where that could lose the minimum: minima on bounds
(μ̂ = 0, a staterror γ and a shapefactor driven to their lower bounds, a shapesys with τ < 1),
strongly correlated normalisations, noise; and they check the convexity claim itself on the
likelihood, with a non-convex layout as the negative control.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pyhf
import pytest
from conftest import VALIDATION_FILES, quick_jit, read_json

import jaxlike
from jaxlike.fit import fit_arrays
from jaxlike.fit._fit import _default_fixed
from jaxlike.fit._newton import minimize
from jaxlike.model._model import convex_layout

VARIANTS = ("mu_bound", "gamma_bound", "correlated", "noise")
SEEDS = range(8)  # two cases per variant


def convex_spec(seed: int, *, lumi_on_signal: bool = False) -> tuple[dict, str]:
    """A seeded workspace of one fixed convex layout (13 parameters: μ, a second normalisation
    k shared by two channels, lumi, a 2-bin shapefactor, 4 staterror and 4 shapesys γ), its
    data placing the minimum as the variant says. ``lumi_on_signal``: lumi also multiplies the
    signal (μ·lumi on one sample: not convex, the negative control)."""
    rng = np.random.default_rng([7, seed])
    variant = VARIANTS[seed % len(VARIANTS)]
    sig = rng.uniform(2.0, 15.0, 4)
    stat = rng.uniform(10.0, 40.0, 4)
    sys = rng.uniform(5.0, 30.0, 4)
    norm_sr = rng.uniform(5.0, 20.0, 4)
    lum = rng.uniform(3.0, 10.0, 4)
    norm_cr, sf = rng.uniform(50.0, 100.0, 2), rng.uniform(20.0, 60.0, 2)
    stat_unc, sys_unc = 0.1 * stat, 0.2 * sys
    if variant == "correlated":  # k's sr shape is the signal's to 1e-3; the cr constrains k weakly
        norm_sr = sig * 1.5 * (1.0 + 1e-3 * rng.standard_normal(4))
        norm_cr = norm_cr * 0.02
    if variant == "gamma_bound":
        stat_unc[1] = 0.9 * stat[1]  # a huge MC-stat uncertainty in the bin whose data is 0
        sys_unc[2] = 2.0 * sys[2]  # τ = (ν⁰/δ)² = 0.25 < 1
    sr = sig + stat + sys + norm_sr + lum
    cr = norm_cr + sf
    if variant == "mu_bound":  # data below the background: μ̂ on its lower bound 0
        obs_sr, obs_cr = 0.75 * (sr - sig), cr * rng.uniform(0.95, 1.05, 2)
    elif variant == "gamma_bound":
        obs_sr = sr * rng.uniform(0.9, 1.1, 4)
        obs_sr[1] = 0.0
        obs_cr = cr.copy()
        obs_cr[0] = 0.0  # the shapefactor of this bin goes to its bound 0
    else:
        obs_sr = rng.poisson(sr).astype(float) + rng.uniform(0.0, 1.0, 4)
        obs_cr = rng.poisson(cr).astype(float)
    mu = [{"name": "mu", "type": "normfactor", "data": None}]
    lumi = [{"name": "lumi", "type": "lumi", "data": None}]
    k = [{"name": "k", "type": "normfactor", "data": None}]
    spec = {
        "channels": [
            {"name": "sr", "samples": [
                {"name": "signal", "data": list(sig),
                 "modifiers": mu + (lumi if lumi_on_signal else [])},
                {"name": "stat", "data": list(stat), "modifiers": [
                    {"name": "stat_sr", "type": "staterror", "data": list(stat_unc)}]},
                {"name": "sys", "data": list(sys), "modifiers": [
                    {"name": "sys_sr", "type": "shapesys", "data": list(sys_unc)}]},
                {"name": "norm", "data": list(norm_sr), "modifiers": k},
                {"name": "lum", "data": list(lum), "modifiers": lumi}]},
            {"name": "cr", "samples": [
                {"name": "norm", "data": list(norm_cr), "modifiers": k},
                {"name": "sf", "data": list(sf), "modifiers": [
                    {"name": "sf", "type": "shapefactor", "data": None}]}]},
        ],
        "observations": [{"name": "sr", "data": list(obs_sr)},
                         {"name": "cr", "data": list(obs_cr)}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [
            {"name": "lumi", "auxdata": [1.0], "sigmas": [0.05], "bounds": [[0.5, 1.5]],
             "inits": [1.0]}]}}],
        "version": "1.0.0",
    }  # fmt: skip
    return spec, variant


def _models(seeds, **kw):
    out = []
    for s in seeds:
        spec, variant = convex_spec(s, **kw)
        ws = jaxlike.Workspace(spec)
        model = ws.model()
        out.append((spec, variant, model, jnp.asarray(ws.data(model))))
    return out


def _searched_probe():
    """The probe mask the model's own rule gives the non-convex twin of the layout (lumi also
    on the signal; same parameters): every scalar parameter set, the search switched on."""
    twin = jaxlike.Workspace(convex_spec(0, lumi_on_signal=True)[0]).model()
    return twin.probe_mask()


@quick_jit
def _both_fits(stacked, data, init, lo, hi, fixed, probe):
    """Per case: the default fit (no global search on a convex layout) and a fit of the same
    objective with the global search forced on (``probe``: a static tuple of bools)."""
    probe = np.asarray(probe, bool)

    def one(model, d):
        plain = fit_arrays(model, d, init, lo, hi, fixed)
        searched = minimize(
            lambda x: model.value_grad_hess(x, d), init, lo, hi, fixed,
            probe=probe, search=True, value=lambda x: model.twice_nll(x, d),
        )  # fmt: skip
        return plain, searched

    return jax.vmap(one)(stacked, data)


def test_validation_layouts_classified():
    """The rule on the pyhf validation files: the 8 whose yields are affine (normfactor, lumi
    or shapesys/shapefactor, at most one per sample) are convex; normsys, histosys are not."""
    convex = {}
    for path in VALIDATION_FILES:
        obj = read_json(path)
        settings = obj.get("settings", {}).get("modifier_settings")
        ws = jaxlike.Workspace(obj.get("workspace", obj))
        model = ws.model(modifier_settings=settings) if settings else ws.model()
        convex[path.stem] = convex_layout(model.config, model.wiring)
        assert (not model.probe_mask().any()) == convex[path.stem]
    assert {k for k, v in convex.items() if not v} == {
        "validation_1bin_normsys_code1",
        "validation_2bin_2channel_coupledhistosys_code0",
        "validation_2bin_2channel_couplednorm_code1",
        "validation_2bin_histosys_code0",
    }
    assert sum(convex.values()) == 8


_twice_nll = quick_jit(jax.vmap(jax.vmap(lambda m, x, d: m.twice_nll(x, d), (None, 0, None))))


def _midpoint_gaps(cases, rng, n=400, only=None):
    """max over random pairs (a, b) in the box of f((a+b)/2) − (f(a) + f(b))/2, per case,
    relative to 1 + |f|: ≤ 0 (to rounding) everywhere for a convex 2NLL. ``only``: names of
    the parameters drawn (the others at their initial values)."""
    model = cases[0][2]
    bounds = np.asarray(model.config.suggested_bounds())
    lo, hi = bounds[:, 0], np.minimum(bounds[:, 1], 3.0)
    if only is not None:
        keep = np.isin(model.config.par_names, only)
        init = np.asarray(model.config.suggested_init())
        lo, hi = np.where(keep, bounds[:, 0], init), np.where(keep, bounds[:, 1], init)
    a = rng.uniform(lo, hi, (len(cases), n, len(lo)))
    b = rng.uniform(lo, hi, (len(cases), n, len(lo)))
    stacked = jaxlike.stack_models([c[2] for c in cases])
    data = jnp.stack([c[3] for c in cases])
    pts = jnp.asarray(np.concatenate([a, b, 0.5 * (a + b)], axis=1))
    f = np.asarray(_twice_nll(stacked, pts, data))
    fa, fb, fm = f[:, :n], f[:, n : 2 * n], f[:, 2 * n :]
    return np.max((fm - 0.5 * (fa + fb)) / (1.0 + np.abs(fm)), axis=1)


def test_convexity_claim_holds_on_the_likelihood():
    """Midpoint convexity of jaxlike's 2NLL on 400 random pairs per case (all parameters over
    their box, γ and normalisations up to 3): never violated beyond rounding on the convex
    layout, also with only (μ, lumi) drawn; clearly violated in most cases once lumi also
    multiplies the signal (μ·lumi), which the rule classifies as not convex: the same check
    shows it can fail."""
    rng = np.random.default_rng(11)
    cases = _models(SEEDS)
    assert all(convex_layout(c[2].config, c[2].wiring) for c in cases)
    for only in (None, ("mu", "lumi")):
        assert np.all(_midpoint_gaps(cases, rng, only=only) <= 1e-12)
    bad = _models(SEEDS, lumi_on_signal=True)
    assert not any(convex_layout(c[2].config, c[2].wiring) for c in bad)
    assert bad[0][2].probe_mask().any()
    gaps = _midpoint_gaps(bad, rng, only=("mu", "lumi"))
    assert np.max(gaps) > 1e-2 and np.sum(gaps > 1e-4) >= len(gaps) // 2, gaps


def test_convex_fits_need_no_search(pyhf_converged):
    """On the hard convex cases (minima on bounds, correlated normalisations, noise): the
    default fit (no global search) is certified converged, no forced search finds a lower
    minimum, pyhf (converged SLSQP) finds none either (both sides evaluated with jaxlike's
    exact 2NLL), and the minima on bounds are where the variant put them."""
    cases = _models(SEEDS)
    model = cases[0][2]
    assert not model.probe_mask().any()
    bounds = np.asarray(model.config.suggested_bounds())
    init = jnp.asarray(model.config.suggested_init())
    fixed = jnp.asarray(_default_fixed(model))
    stacked = jaxlike.stack_models([c[2] for c in cases])
    data = jnp.stack([c[3] for c in cases])
    probe = _searched_probe()
    assert probe.any() and probe.shape == (model.config.npars,)
    plain, searched = _both_fits(
        stacked, data, init, bounds[:, 0], bounds[:, 1], fixed, tuple(probe.tolist())
    )
    assert np.all(np.asarray(plain.converged)), np.asarray(plain.status)
    assert np.all(np.asarray(searched.converged))
    f, f_search = np.asarray(plain.twice_nll), np.asarray(searched.f)
    assert np.all(f <= f_search + 1e-9 * (1.0 + np.abs(f))), f - f_search
    names = model.config.par_names
    x = np.asarray(plain.bestfit)
    pyhf_x = []
    for spec, variant, _, d in cases:
        pm = pyhf.Workspace(spec).model()
        pyhf_x.append(pyhf.infer.mle.fit(np.asarray(d), pm))
        if variant == "mu_bound":
            assert x[len(pyhf_x) - 1, names.index("mu")] == 0.0
        if variant == "gamma_bound":
            i = len(pyhf_x) - 1
            assert x[i, names.index("sf[0]")] == 0.0
            assert x[i, names.index("stat_sr[1]")] < 0.2
    at_pyhf = np.asarray(_twice_nll(stacked, jnp.asarray(np.stack(pyhf_x))[:, None], data))[:, 0]
    assert np.all(f <= at_pyhf + 1e-9 * (1.0 + np.abs(f))), at_pyhf - f
    assert np.all(at_pyhf - f < 1e-5)  # pyhf's SLSQP stops within its tolerance


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_convex_hypotest_matches_pyhf(seed, pyhf_converged):
    """q̃ hypothesis test at μ = 1 (five fits, none searched) against pyhf's converged one."""
    spec, variant, model, data = _models([seed])[0]
    res = jaxlike.hypotest(1.0, data, model)
    assert bool(res.converged), variant
    pm = pyhf.Workspace(spec).model()
    cls_obs, cls_exp = pyhf.infer.hypotest(
        1.0, np.asarray(data), pm, test_stat="qtilde", return_expected_set=True
    )
    np.testing.assert_allclose(float(res.cls_obs), float(cls_obs), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(res.cls_exp), np.ravel(cls_exp), rtol=1e-5, atol=1e-7)
