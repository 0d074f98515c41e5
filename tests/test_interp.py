"""Interpolation codes (jaxlike.model._interp) against pyhf's interpolators and against their
defining properties: values, continuity at |α| = 1, and exact derivatives.

pyhf's interpolators take ``histogramssets`` of shape [systematics, histograms, 3, bins] with
the middle axis (lo, nominal, hi) and ``alphasets`` [systematics, alphas], and return
[systematics, histograms, alphas, bins]: factors for code1/code4, additive deltas for
code0/code2/code4p.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pyhf
import pytest

from jaxlike.exceptions import InvalidModel
from jaxlike.model import build_model, histosys_delta, normsys_factor

ALPHAS = np.array([-4.0, -2.5, -1.0, -0.999, -0.7, -0.3, 0.0, 1e-3, 0.4, 0.8, 1.0, 1.001, 1.7, 3.0])
ALPHAS_INSIDE = ALPHAS[np.abs(ALPHAS) <= 1.0]


@pytest.fixture(scope="module")
def templates():
    """Histosys templates (lo, nom, hi) and normsys ratios (lo, hi) over 6 bins, including
    up/down in the same direction, a one-sided shift and hi == nominal."""
    nom = np.array([10.0, 5.0, 20.0, 1.0, 7.5, 3.0])
    hi = np.array([12.0, 4.0, 21.0, 1.3, 7.5, 3.6])
    lo = np.array([9.0, 6.5, 21.5, 0.6, 6.0, 3.6])
    r_hi = np.array([1.2, 0.9, 1.05, 1.5, 1.0, 1.1])
    r_lo = np.array([0.85, 1.1, 1.02, 0.6, 0.9, 1.1])
    return lo, nom, hi, r_lo, r_hi


def _pyhf_interp(code, lo, nom, hi, alphas):
    hset = np.stack([lo, nom, hi])[None, None]  # [1 syst, 1 histogram, 3, bins]
    interp = getattr(pyhf.interpolators, code)(hset, subscribe=False)
    return np.asarray(interp(np.asarray(alphas)[None]))[0, 0]  # [alphas, bins]


@pytest.mark.parametrize("code", ["code1", "code4"])
def test_normsys_factor_matches_pyhf(code, templates):
    _, _, _, r_lo, r_hi = templates
    ref = _pyhf_interp(code, r_lo, np.ones_like(r_lo), r_hi, ALPHAS)
    ours = np.asarray(normsys_factor(code, jnp.asarray(ALPHAS)[:, None], r_lo, r_hi))
    np.testing.assert_allclose(ours, ref, rtol=1e-13, atol=0)


@pytest.mark.parametrize(
    "code,alphas", [("code0", ALPHAS), ("code4p", ALPHAS), ("code2", ALPHAS_INSIDE)]
)
def test_histosys_delta_matches_pyhf(code, alphas, templates):
    """code2 only inside |α| <= 1: outside, pyhf 0.7.6 drops the constant of the linear
    extrapolation (see test_code2_is_continuous_and_follows_root_outside)."""
    lo, nom, hi, _, _ = templates
    ref = _pyhf_interp(code, lo, nom, hi, alphas)
    ours = np.asarray(histosys_delta(code, jnp.asarray(alphas)[:, None], lo, nom, hi))
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-13)


def test_code2_is_continuous_and_follows_root_outside(templates):
    """jaxlike's code2 is ROOT's: quadratic a α² + b α inside, and outside the tangent line
    through the end points, Δ(α) = (hi − nom) + (b + 2a)(α − 1) for α > 1 and
    (lo − nom) + (b − 2a)(α + 1) for α < −1; so it is continuous (value and slope) at ±1."""
    lo, nom, hi, _, _ = templates
    a, b = 0.5 * (hi + lo) - nom, 0.5 * (hi - lo)
    for alpha in (2.5, -3.0):
        ours = np.asarray(histosys_delta("code2", alpha, lo, nom, hi))
        root = (
            (hi - nom) + (b + 2 * a) * (alpha - 1)
            if alpha > 0
            else (lo - nom) + (b - 2 * a) * (alpha + 1)
        )
        np.testing.assert_allclose(ours, root, rtol=1e-13, atol=1e-13)
    eps = 1e-9
    for edge in (1.0, -1.0):
        inside = np.asarray(histosys_delta("code2", edge * (1 - eps), lo, nom, hi))
        outside = np.asarray(histosys_delta("code2", edge * (1 + eps), lo, nom, hi))
        np.testing.assert_allclose(outside, inside, atol=1e-7)
        slope = jax.vmap(jax.grad(histosys_delta, argnums=1), (None, None, 0, 0, 0))
        s_in = slope("code2", edge * (1 - eps), lo, nom, hi)
        s_out = slope("code2", edge * (1 + eps), lo, nom, hi)
        np.testing.assert_allclose(s_out, s_in, atol=1e-7)
    # pyhf 0.7.6 jumps at α = 1 by −(hi − nom) (the reason the parity tests stay in |α| <= 1)
    jump = (
        _pyhf_interp("code2", lo, nom, hi, [1.0 + eps])[0]
        - _pyhf_interp("code2", lo, nom, hi, [1.0])[0]
    )
    np.testing.assert_allclose(jump, -(hi - nom), atol=1e-6)


NORMSYS_CODES = ("code1", "code4")
ALL_CODES = ("code1", "code4", "code0", "code2", "code4p")


@functools.partial(jax.jit, static_argnums=0)
def _derivatives(code, alphas, templates):
    """(f, f', f'') over the grid alphas x bins by autodiff through the custom JVPs; f is the
    normsys factor (code1/code4) or the histosys delta. Result shapes [alphas, bins]."""
    lo, nom, hi, r_lo, r_hi = templates

    def f(a, lo, nom, hi, r_lo, r_hi):
        if code in NORMSYS_CODES:
            return normsys_factor(code, a, r_lo, r_hi)
        return histosys_delta(code, a, lo, nom, hi)

    d1 = jax.grad(f)
    d2 = jax.grad(d1)
    per_bin = (None, 0, 0, 0, 0, 0)
    out = []
    for g in (f, d1, d2):
        over_bins = jax.vmap(g, per_bin)
        out.append(jax.vmap(over_bins, (0, None, None, None, None, None))(alphas, *templates))
    return tuple(out)


def _jnp(templates):
    return tuple(jnp.asarray(t) for t in templates)


@pytest.mark.parametrize("code", ["code4", "code4p"])
def test_smooth_codes_are_twice_differentiable_at_pm1(code, templates):
    """code4 (normsys) and code4p (histosys) match value, slope and curvature at |α| = 1, and
    their end points are the templates: f(1) = hi, f(−1) = lo, Δ(1) = hi − nom, Δ(−1) = lo − nom."""
    lo, nom, hi, r_lo, r_hi = templates
    eps = 1e-7
    alphas = jnp.array([1 - eps, 1 + eps, -1 + eps, -1 - eps])
    for k, d in enumerate(_derivatives(code, alphas, _jnp(templates))):
        d = np.asarray(d)
        for inside, outside in ((0, 1), (2, 3)):
            np.testing.assert_allclose(
                d[outside], d[inside], rtol=1e-5, atol=1e-5, err_msg=f"{code} d{k}"
            )
    ends = np.asarray(_derivatives(code, jnp.array([1.0, -1.0]), _jnp(templates))[0])
    want = [r_hi, r_lo] if code == "code4" else [hi - nom, lo - nom]
    np.testing.assert_allclose(ends, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("code", ALL_CODES)
def test_alpha_derivatives_match_finite_differences(code, templates):
    """First and second α-derivatives (closed forms behind custom_jvp) against central
    differences, away from the kinks of code0/code1 (α = 0) and code2 (|α| = 1)."""
    alphas = jnp.array([-2.3, -0.6, 0.35, 0.9, 1.8])
    h = 1e-4
    f, d1, d2 = (np.asarray(v) for v in _derivatives(code, alphas, _jnp(templates)))
    fp = np.asarray(_derivatives(code, alphas + h, _jnp(templates))[0])
    fm = np.asarray(_derivatives(code, alphas - h, _jnp(templates))[0])
    fd1 = (fp - fm) / (2 * h)
    fd2 = (fp - 2 * f + fm) / h**2
    np.testing.assert_allclose(d1, fd1, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(d2, fd2, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("code", ALL_CODES)
def test_derivatives_finite_at_zero_and_edges(code, templates):
    """The jnp.where guards keep value, slope and curvature finite on the kinks (α = 0, ±1)."""
    for d in _derivatives(code, jnp.array([0.0, 1.0, -1.0]), _jnp(templates)):
        assert np.isfinite(np.asarray(d)).all(), code


@pytest.mark.parametrize("code", ALL_CODES)
def test_template_derivatives_match_finite_differences(code, templates):
    """d f/d template and the mixed d²f/(dα d template) flow through the custom JVPs."""
    lo, nom, hi, r_lo, r_hi = _jnp(templates)
    alpha = 0.6
    base = r_hi if code in NORMSYS_CODES else hi

    def value(a, h):
        if code in NORMSYS_CODES:
            return normsys_factor(code, a, r_lo, h)
        return histosys_delta(code, a, lo, nom, h)

    def fun(h):
        return jnp.sum(value(alpha, h) ** 2)

    def mixed(h):
        return jnp.sum(jax.grad(lambda a: value(a, h).sum())(alpha) ** 2)

    eps = 1e-6
    shifts = eps * jnp.eye(base.shape[0])
    for g in (fun, mixed):
        grad = np.asarray(jax.jit(jax.grad(g))(base))
        g_many = jax.jit(jax.vmap(g))
        fd = (np.asarray(g_many(base + shifts)) - np.asarray(g_many(base - shifts))) / (2 * eps)
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_unknown_code_raises():
    with pytest.raises(ValueError, match="code3"):
        normsys_factor("code3", 0.5, 0.9, 1.1)
    with pytest.raises(ValueError, match="code1"):
        histosys_delta("code1", 0.5, 0.9, 1.0, 1.1)


def _channels():
    mods = [
        {"name": "n", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
        {"name": "h", "type": "histosys", "data": {"hi_data": [6.0], "lo_data": [4.0]}},
        {"name": "mu", "type": "normfactor", "data": None},
    ]
    return [{"name": "c", "samples": [{"name": "s", "data": [5.0], "modifiers": mods}]}]


@pytest.mark.parametrize(
    "settings,codes",
    [
        (None, ("code4", "code4p")),  # pyhf defaults
        ({"normsys": {"interpcode": "code4"}}, ("code4", "code0")),  # histosys falls back to code0
        ({"histosys": {"interpcode": "code2"}}, ("code1", "code2")),  # normsys falls back to code1
        ({}, ("code1", "code0")),
    ],
)
def test_modifier_settings_select_codes_like_pyhf(settings, codes):
    model = build_model(_channels(), poi_name="mu", modifier_settings=settings)
    assert (model.wiring.normsys_code, model.wiring.histosys_code) == codes


def test_bad_interpcode_names_the_field():
    with pytest.raises(InvalidModel, match=r"modifier_settings\.histosys\.interpcode"):
        build_model(
            _channels(), poi_name="mu", modifier_settings={"histosys": {"interpcode": "code5"}}
        )
    with pytest.raises(InvalidModel, match=r"modifier_settings\.bogus"):
        build_model(_channels(), poi_name="mu", modifier_settings={"bogus": {}})
