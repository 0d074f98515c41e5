"""Interpolation codes of HistFactory (ROOT ``PiecewiseInterpolation``/``FlexibleInterpVar``).

Multiplicative codes (used by ``normsys``) return a *factor* f(α) with f(0) = 1; additive codes
(used by ``histosys``) return a *delta* Δ(α) with Δ(0) = 0 that is added to the nominal yield.
All functions broadcast: ``alpha`` against arrays ``lo``, ``nom``, ``hi``. They are written with
``jnp.where`` guards so that values *and* gradients are finite everywhere the inputs are valid.

References: K. Cranmer et al., CERN-OPEN-2012-016 (HistFactory), and ROOT's
``RooStats::HistFactory::FlexibleInterpVar`` / ``PiecewiseInterpolation``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..exceptions import InvalidArgument

__all__ = [
    "MULTIPLICATIVE_CODES",
    "ADDITIVE_CODES",
    "BREAKPOINTS",
    "normsys_factor",
    "normsys_log_factor",
    "normsys_sign",
    "histosys_delta",
    "histosys_derivatives",
    "normsys_log_derivatives",
    "normsys_hessian_parts",
]

MULTIPLICATIVE_CODES = ("code1", "code4")
ADDITIVE_CODES = ("code0", "code2", "code4p")

#: The α values where an interpolation is not twice continuously differentiable, per code:
#: code0 (histosys) and code1 (normsys) are piecewise linear / piecewise exponential with a
#: first-derivative kink at α = 0; code2 (histosys) is quadratic inside |α| <= 1 and linear
#: outside, so its second derivative jumps at α = ±1; code4 (normsys) and code4p (histosys)
#: match value, slope and curvature at ±1 and are C² everywhere. A minimiser uses these to
#: apply a one-sided (subgradient) optimality test where a parameter sits on a breakpoint.
BREAKPOINTS = {"code0": (0.0,), "code1": (0.0,), "code2": (-1.0, 1.0), "code4": (), "code4p": ()}

#: |f| is floored at this normal number (keeping the sign) wherever log|f| or 1/f is formed,
#: so a code-4 factor that is exactly 0 gives finite log|f|, f'/f and f''/f. Its effect on a
#: yield is ~1e-140 x the other factors (invisible), and 1/_TINY² = 1e280 keeps (f'/f)² finite.
_TINY = 1e-140


def _code4_matrix_inverse() -> np.ndarray:
    """Inverse of the 6x6 system fixing p(±1), p'(±1), p''(±1) for p(α) = 1 + Σ_{i=1..6} a_i α^i."""
    rows = []
    for x in (1.0, -1.0):
        rows.append([x**i for i in range(1, 7)])
    for x in (1.0, -1.0):
        rows.append([i * x ** (i - 1) for i in range(1, 7)])
    for x in (1.0, -1.0):
        rows.append([i * (i - 1) * x ** (i - 2) for i in range(1, 7)])
    return np.linalg.inv(np.asarray(rows))


_CODE4_INV = _code4_matrix_inverse()


def _with_derivatives(f0, f1, f2):
    """Elementwise f(α, *data) whose α-derivatives are the closed forms f1, f2.

    Under ``jax.hessian`` of a likelihood with P parameters, the tangent work of the
    interpolation shrinks from "every operation of f, P times" to one multiply per element;
    derivatives with respect to the templates (``data``) still flow through ``jax.jvp`` of f.
    """
    d1 = jax.custom_jvp(f1)

    @d1.defjvp
    def _d1_jvp(primals, tangents):
        a, *data = primals
        a_dot, *data_dot = tangents
        out, t_data = jax.jvp(lambda *d: f1(a, *d), tuple(data), tuple(data_dot))
        return out, f2(a, *data) * a_dot + t_data

    f = jax.custom_jvp(f0)

    @f.defjvp
    def _f_jvp(primals, tangents):
        a, *data = primals
        a_dot, *data_dot = tangents
        out, t_data = jax.jvp(lambda *d: f0(a, *d), tuple(data), tuple(data_dot))
        return out, d1(a, *data) * a_dot + t_data

    return f


def _logs(lo, hi):
    return jnp.log(jnp.where(hi > 0, hi, 1.0)), jnp.log(jnp.where(lo > 0, lo, 1.0))


# -- normsys: the multiplicative factor f and log|f| -------------------------------------------
# Each code has closed forms for f, f', f'' (the factor itself, exactly pyhf's value) and for
# log|f|, (log|f|)' = f'/f, (log|f|)'' = f''/f − (f'/f)², plus sign(f) and f''/f. code1 is
# positive for lo, hi > 0; code4's polynomial can be negative (see normsys_log_factor).
def _slope(a, lo, hi):
    """d log f/dα outside the polynomial: ln hi (α ≥ 0), −ln lo (α < 0)."""
    lh, ll = _logs(lo, hi)
    return jnp.where(a >= 0, lh, -ll) * jnp.ones_like(a)


def _code1_log(a, lo, hi):
    lh, ll = _logs(lo, hi)
    return jnp.where(a >= 0, a * lh, -a * ll)


def _code1_log_d1(a, lo, hi):
    return _slope(a, lo, hi)


def _code1_log_d2(a, lo, hi):
    return jnp.zeros(jnp.broadcast_shapes(jnp.shape(a), jnp.shape(lo)), jnp.result_type(a, lo))


def _code1(a, lo, hi):
    return jnp.exp(_code1_log(a, lo, hi))


def _code1_d1(a, lo, hi):
    return _slope(a, lo, hi) * _code1(a, lo, hi)


def _code1_d2(a, lo, hi):
    return _slope(a, lo, hi) ** 2 * _code1(a, lo, hi)


def _code1_sign(a, lo, hi):
    return jnp.ones(jnp.broadcast_shapes(jnp.shape(a), jnp.shape(lo)), jnp.result_type(a, lo))


def _code1_ratio2(a, lo, hi):
    return _slope(a, lo, hi) ** 2


def _code4_coeffs(lo, hi):
    """a_1..a_6 (last axis) of p(α) = 1 + Σ a_i α^i matching the exponential pieces at ±1."""
    lh, ll = _logs(lo, hi)
    h, l = jnp.where(hi > 0, hi, 1.0), jnp.where(lo > 0, lo, 1.0)
    rhs = jnp.stack([h - 1.0, l - 1.0, h * lh, -l * ll, h * lh**2, l * ll**2], axis=-1)
    return jnp.einsum("ij,...j->...i", jnp.asarray(_CODE4_INV), rhs)


def _poly(c, a, deriv):
    """Horner evaluation of p, p' or p'' with coefficients c[..., i] for α^(i+1)."""
    if deriv == 0:
        acc = c[..., 5]
        for i in range(4, -1, -1):
            acc = acc * a + c[..., i]
        return 1.0 + acc * a
    if deriv == 1:
        acc = 6.0 * c[..., 5]
        for i in range(4, -1, -1):
            acc = acc * a + (i + 1) * c[..., i]
        return acc
    acc = 30.0 * c[..., 5]
    for i in range(4, 0, -1):
        acc = acc * a + (i + 1) * i * c[..., i]
    return acc


def _code4_parts(a, lo, hi):
    """(log-slope outside, log f outside, coefficients, α clipped to [−1, 1], |α| ≥ 1)."""
    lh, ll = _logs(lo, hi)
    c = _code4_coeffs(lo, hi)
    ai = jnp.clip(a, -1.0, 1.0)
    return _slope(a, lo, hi), jnp.where(a >= 0, a * lh, -a * ll), c, ai, jnp.abs(a) >= 1.0


def _signed_floor(p):
    """p with |p| floored at _TINY, keeping its sign (p = 0 counts as positive)."""
    return jnp.where(p < 0, jnp.minimum(p, -_TINY), jnp.maximum(p, _TINY))


def _code4(a, lo, hi):
    slope, lout, c, ai, outside = _code4_parts(a, lo, hi)
    return jnp.where(outside, jnp.exp(lout), _poly(c, ai, 0))


def _code4_d1(a, lo, hi):
    slope, lout, c, ai, outside = _code4_parts(a, lo, hi)
    return jnp.where(outside, slope * jnp.exp(lout), _poly(c, ai, 1))


def _code4_d2(a, lo, hi):
    slope, lout, c, ai, outside = _code4_parts(a, lo, hi)
    return jnp.where(outside, slope**2 * jnp.exp(lout), _poly(c, ai, 2))


def _code4_log(a, lo, hi):
    slope, lout, c, ai, outside = _code4_parts(a, lo, hi)
    return jnp.where(outside, lout, jnp.log(jnp.abs(_signed_floor(_poly(c, ai, 0)))))


def _code4_log_d1(a, lo, hi):
    slope, lout, c, ai, outside = _code4_parts(a, lo, hi)
    return jnp.where(outside, slope, _poly(c, ai, 1) / _signed_floor(_poly(c, ai, 0)))


def _code4_log_d2(a, lo, hi):
    slope, lout, c, ai, outside = _code4_parts(a, lo, hi)
    p = _signed_floor(_poly(c, ai, 0))
    return jnp.where(outside, 0.0, _poly(c, ai, 2) / p - (_poly(c, ai, 1) / p) ** 2)


def _code4_sign(a, lo, hi):
    slope, lout, c, ai, outside = _code4_parts(a, lo, hi)
    return jnp.where(outside | (_poly(c, ai, 0) >= 0), 1.0, -1.0)


def _code4_ratio2(a, lo, hi):
    slope, lout, c, ai, outside = _code4_parts(a, lo, hi)
    return jnp.where(outside, slope**2, _poly(c, ai, 2) / _signed_floor(_poly(c, ai, 0)))


_NORMSYS = {
    "code1": _with_derivatives(_code1, _code1_d1, _code1_d2),
    "code4": _with_derivatives(_code4, _code4_d1, _code4_d2),
}
_NORMSYS_LOG = {
    "code1": _with_derivatives(_code1_log, _code1_log_d1, _code1_log_d2),
    "code4": _with_derivatives(_code4_log, _code4_log_d1, _code4_log_d2),
}
_NORMSYS_PARTS = {
    "code1": (_code1_log, _code1_log_d1, _code1_log_d2, _code1_sign, _code1_ratio2),
    "code4": (_code4_log, _code4_log_d1, _code4_log_d2, _code4_sign, _code4_ratio2),
}


def _check_normsys(code):
    if code not in _NORMSYS:
        raise InvalidArgument(f"normsys interpolation code {code!r} not in {MULTIPLICATIVE_CODES}")


def normsys_factor(code: str, alpha, lo, hi):
    r"""Multiplicative factor f(α) of a ``normsys`` modifier, exactly pyhf's value.

    ``lo``/``hi`` are the relative normalisations at α = ∓1 (nominal 1).

    - ``code1``: piecewise exponential, f = hi^α (α ≥ 0), lo^(−α) (α < 0); f > 0.
    - ``code4`` (pyhf/ROOT default): the same exponentials for |α| ≥ 1 and
      f = p(α) = 1 + Σ_{i=1..6} a_i α^i for |α| < 1, the a_i fixed by value, slope and
      curvature of the exponentials at ±1: a = A⁻¹ (hi − 1, lo − 1, hi ln hi, −lo ln lo,
      hi ln² hi, lo ln² lo). p is *not* positive in general: for extreme asymmetric lo/hi
      (ATLAS stau lowMass: lo = 0.01, hi = 105.6) p ≤ 0 on part of (−1, 1) (there
      α ∈ [−0.95, −0.04]). pyhf multiplies the sample by that negative factor, and so does
      jaxlike; the bin total stays positive through the other samples.

    α-derivatives are closed forms behind ``jax.custom_jvp`` (cheap under ``jax.hessian``).
    """
    _check_normsys(code)
    return _NORMSYS[code](alpha, lo, hi)


def normsys_log_factor(code: str, alpha, lo, hi):
    r"""log|f(α)| of a normsys factor (:func:`normsys_factor`); its sign is :func:`normsys_sign`.

    A product of many normsys factors is evaluated as
    E = (Π_m sign f_m) · exp(Σ_m log|f_m|), which makes its derivatives sums:
    d log|f|/dα = f'/f and d² log|f|/dα² = f''/f − (f'/f)² (closed forms, also where f < 0),
    and E · d log|f_p|/dα_p = E_{−p} f'_p stays finite as f_p → 0. Where f is exactly 0 the
    formulas use ±1e-140 instead (sign kept, 0 counting as positive): the yield is then off by
    ~1e-140 times the other factors, and (f'/f)² stays finite.

    Limit of this (and of any) float64 evaluation: the polynomial's value carries a rounding
    error δ ~ ε Σ|a_i α^i| (~1e-13 for lo = 0.01, hi = 105.6), and XLA may compute p in
    several fusions that round differently, so e^{log|f|} and 1/f agree only to δ/|f|. The
    gradient and Hessian terms of that sample are therefore exact to ~δ/|f| relative: 1e-9 at
    |f| ~ 1e-4, and meaningless only within ~1e-15 of a zero of f (where |f| ≲ δ).
    """
    _check_normsys(code)
    return _NORMSYS_LOG[code](alpha, lo, hi)


def normsys_sign(code: str, alpha, lo, hi):
    """sign(f(α)) ∈ {−1, +1} of a normsys factor (0 counts as +1); no gradient (piecewise
    constant). Always +1 for ``code1``; −1 only where code 4's polynomial is negative."""
    _check_normsys(code)
    return jax.lax.stop_gradient(_NORMSYS_PARTS[code][3](alpha, lo, hi))


def normsys_log_derivatives(code: str, alpha, lo, hi):
    """(log|f|, f'/f, f''/f − (f'/f)²) of a normsys factor, in closed form."""
    _check_normsys(code)
    return tuple(fn(alpha, lo, hi) for fn in _NORMSYS_PARTS[code][:3])


def normsys_hessian_parts(code: str, alpha, lo, hi):
    """(sign f, log|f|, f'/f, f''/f) of a normsys factor, in closed form: what the structured
    Hessian needs. f''/f (= (log|f|)'' + (f'/f)²) is formed directly, without the cancellation
    of the two large terms near a zero of f."""
    _check_normsys(code)
    log, d1, _, sign, ratio2 = _NORMSYS_PARTS[code]
    return sign(alpha, lo, hi), log(alpha, lo, hi), d1(alpha, lo, hi), ratio2(alpha, lo, hi)


# -- histosys: additive delta -------------------------------------------------------------------
def _c0(a, lo, nom, hi):
    return jnp.where(a >= 0, a * (hi - nom), a * (nom - lo))


def _c0_d1(a, lo, nom, hi):
    return jnp.where(a >= 0, hi - nom, nom - lo) * jnp.ones_like(a)


def _zero2(a, lo, nom, hi):
    return jnp.zeros(jnp.broadcast_shapes(jnp.shape(a), jnp.shape(lo)), jnp.result_type(a, lo))


def _c2_ab(lo, nom, hi):
    return 0.5 * (hi + lo) - nom, 0.5 * (hi - lo)


def _c2(a, lo, nom, hi):
    qa, qb = _c2_ab(lo, nom, hi)
    inside = qa * a**2 + qb * a
    above = (qb + 2 * qa) * (a - 1.0) + (hi - nom)
    below = (qb - 2 * qa) * (a + 1.0) - (nom - lo)
    return jnp.where(a > 1.0, above, jnp.where(a < -1.0, below, inside))


def _c2_d1(a, lo, nom, hi):
    qa, qb = _c2_ab(lo, nom, hi)
    return jnp.where(a > 1.0, qb + 2 * qa, jnp.where(a < -1.0, qb - 2 * qa, 2 * qa * a + qb))


def _c2_d2(a, lo, nom, hi):
    qa, _ = _c2_ab(lo, nom, hi)
    return jnp.where(jnp.abs(a) > 1.0, 0.0, 2 * qa)


def _c4p_sa(lo, nom, hi):
    d_up, d_dn = hi - nom, nom - lo
    return d_up, d_dn, 0.5 * (d_up + d_dn), 0.0625 * (d_up - d_dn)


def _c4p(a, lo, nom, hi):
    d_up, d_dn, s, q = _c4p_sa(lo, nom, hi)
    a2 = a * a
    inside = a * s + a2 * (a2 * (3.0 * a2 - 10.0) + 15.0) * q
    return jnp.where(a > 1.0, a * d_up, jnp.where(a < -1.0, a * d_dn, inside))


def _c4p_d1(a, lo, nom, hi):
    d_up, d_dn, s, q = _c4p_sa(lo, nom, hi)
    a2 = a * a
    inside = s + a * (30.0 + a2 * (18.0 * a2 - 40.0)) * q
    return jnp.where(a > 1.0, d_up, jnp.where(a < -1.0, d_dn, inside))


def _c4p_d2(a, lo, nom, hi):
    _, _, _, q = _c4p_sa(lo, nom, hi)
    a2 = a * a
    return jnp.where(jnp.abs(a) > 1.0, 0.0, (30.0 + a2 * (90.0 * a2 - 120.0)) * q)


_HISTOSYS = {
    "code0": _with_derivatives(_c0, _c0_d1, _zero2),
    "code2": _with_derivatives(_c2, _c2_d1, _c2_d2),
    "code4p": _with_derivatives(_c4p, _c4p_d1, _c4p_d2),
}


_HISTOSYS_PARTS = {
    "code0": (_c0, _c0_d1, _zero2),
    "code2": (_c2, _c2_d1, _c2_d2),
    "code4p": (_c4p, _c4p_d1, _c4p_d2),
}


def histosys_derivatives(code: str, alpha, lo, nom, hi):
    """(Δ, dΔ/dα, d²Δ/dα²) of a histosys shift, in closed form."""
    return tuple(fn(alpha, lo, nom, hi) for fn in _HISTOSYS_PARTS[code])


def histosys_delta(code: str, alpha, lo, nom, hi):
    r"""Additive shift Δ(α) of a ``histosys`` modifier (templates ``lo``, ``nom``, ``hi``).

    - ``code0``: piecewise linear, Δ = α (hi − nom) for α ≥ 0 and α (nom − lo) for α < 0.
    - ``code2``: quadratic inside |α| ≤ 1 (Δ = a α² + b α with a = (hi+lo)/2 − nom,
      b = (hi−lo)/2), linear and continuous outside (ROOT's definition). pyhf 0.7.6 drops the
      constant (hi − nom) / (lo − nom) outside |α| ≤ 1, which makes its code2 discontinuous at
      |α| = 1; jaxlike follows ROOT there and agrees with pyhf inside |α| ≤ 1.
    - ``code4p`` (pyhf default): linear outside |α| > 1, and inside
      Δ = α S + α² A (15 − 10 α² + 3 α⁴) with S = (δ⁺ + δ⁻)/2, A = (δ⁺ − δ⁻)/16,
      δ⁺ = hi − nom, δ⁻ = nom − lo (value, slope and curvature continuous at ±1).
    """
    if code not in _HISTOSYS:
        raise InvalidArgument(f"histosys interpolation code {code!r} not in {ADDITIVE_CODES}")
    return _HISTOSYS[code](alpha, lo, nom, hi)
