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

__all__ = [
    "MULTIPLICATIVE_CODES",
    "ADDITIVE_CODES",
    "normsys_factor",
    "normsys_log_factor",
    "histosys_delta",
    "histosys_derivatives",
    "normsys_log_derivatives",
]

MULTIPLICATIVE_CODES = ("code1", "code4")
ADDITIVE_CODES = ("code0", "code2", "code4p")


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


# -- normsys: log of the multiplicative factor ------------------------------------------------
def _code1_log(a, lo, hi):
    lh, ll = _logs(lo, hi)
    return jnp.where(a >= 0, a * lh, -a * ll)


def _code1_log_d1(a, lo, hi):
    lh, ll = _logs(lo, hi)
    return jnp.where(a >= 0, lh, -ll) * jnp.ones_like(a)


def _code1_log_d2(a, lo, hi):
    return jnp.zeros(jnp.broadcast_shapes(jnp.shape(a), jnp.shape(lo)), jnp.result_type(a, lo))


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
    lh, ll = _logs(lo, hi)
    c = _code4_coeffs(lo, hi)
    ai = jnp.clip(a, -1.0, 1.0)
    return lh, ll, c, ai, jnp.abs(a) >= 1.0


def _code4_log(a, lo, hi):
    lh, ll, c, ai, outside = _code4_parts(a, lo, hi)
    p = _poly(c, ai, 0)
    inner = jnp.log(jnp.where(p > 0, p, 1.0)) + jnp.where(p > 0, 0.0, jnp.nan)
    return jnp.where(outside, jnp.where(a >= 0, a * lh, -a * ll), inner)


def _code4_log_d1(a, lo, hi):
    lh, ll, c, ai, outside = _code4_parts(a, lo, hi)
    p, p1 = _poly(c, ai, 0), _poly(c, ai, 1)
    return jnp.where(outside, jnp.where(a >= 0, lh, -ll), p1 / p)


def _code4_log_d2(a, lo, hi):
    lh, ll, c, ai, outside = _code4_parts(a, lo, hi)
    p, p1, p2 = _poly(c, ai, 0), _poly(c, ai, 1), _poly(c, ai, 2)
    return jnp.where(outside, 0.0, p2 / p - (p1 / p) ** 2)


_NORMSYS_LOG = {
    "code1": _with_derivatives(_code1_log, _code1_log_d1, _code1_log_d2),
    "code4": _with_derivatives(_code4_log, _code4_log_d1, _code4_log_d2),
}


def normsys_log_factor(code: str, alpha, lo, hi):
    r"""log of the multiplicative factor f(α) of a ``normsys`` modifier.

    ``lo``/``hi`` are the relative normalisations at α = ∓1 (nominal 1). ``code1``: piecewise
    exponential, f = hi^α (α ≥ 0), lo^(−α) (α < 0). ``code4`` (pyhf/ROOT default):
    f = 1 + Σ_{i=1..6} a_i α^i for |α| < 1, the a_i matching value, first and second derivative
    of the exponential extrapolation at ±1. Working with log f lets products of many normsys
    factors be a sum (cheap derivatives); f > 0 always.
    """
    if code not in _NORMSYS_LOG:
        raise ValueError(f"normsys interpolation code {code!r} not in {MULTIPLICATIVE_CODES}")
    return _NORMSYS_LOG[code](alpha, lo, hi)


_NORMSYS_PARTS = {
    "code1": (_code1_log, _code1_log_d1, _code1_log_d2),
    "code4": (_code4_log, _code4_log_d1, _code4_log_d2),
}


def normsys_log_derivatives(code: str, alpha, lo, hi):
    """(log f, d log f/dα, d² log f/dα²) of a normsys factor, in closed form."""
    return tuple(fn(alpha, lo, hi) for fn in _NORMSYS_PARTS[code])


def normsys_factor(code: str, alpha, lo, hi):
    """Multiplicative factor f(α) of a ``normsys`` modifier (see :func:`normsys_log_factor`)."""
    return jnp.exp(normsys_log_factor(code, alpha, lo, hi))


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
        raise ValueError(f"histosys interpolation code {code!r} not in {ADDITIVE_CODES}")
    return _HISTOSYS[code](alpha, lo, nom, hi)
