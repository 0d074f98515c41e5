"""Interpolation codes of HistFactory (ROOT ``PiecewiseInterpolation``/``FlexibleInterpVar``).

Multiplicative codes (used by ``normsys``) return a *factor* f(α) with f(0) = 1; additive codes
(used by ``histosys``) return a *delta* Δ(α) with Δ(0) = 0 that is added to the nominal yield.
All functions broadcast: ``alpha`` against arrays ``lo``, ``nom``, ``hi``. They are written with
``jnp.where`` guards so that values *and* gradients are finite everywhere the inputs are valid.

References: K. Cranmer et al., CERN-OPEN-2012-016 (HistFactory), and ROOT's
``RooStats::HistFactory::FlexibleInterpVar`` / ``PiecewiseInterpolation``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = [
    "MULTIPLICATIVE_CODES",
    "ADDITIVE_CODES",
    "normsys_factor",
    "histosys_delta",
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


def _code1(alpha, lo, hi):
    # (hi)^α for α ≥ 0, (lo)^(-α) for α < 0, written as exp(α log r) with safe logs.
    log_hi = jnp.log(jnp.where(hi > 0, hi, 1.0))
    log_lo = jnp.log(jnp.where(lo > 0, lo, 1.0))
    return jnp.where(alpha >= 0, jnp.exp(alpha * log_hi), jnp.exp(-alpha * log_lo))


def _code4(alpha, lo, hi):
    r"""Polynomial interpolation, exponential extrapolation (α₀ = 1).

    .. math:: f(α) = \begin{cases} h^{α} & α ≥ 1 \\ 1 + \sum_{i=1}^{6} a_i α^i & |α| < 1 \\
              l^{-α} & α ≤ -1 \end{cases}

    with the a_i matching value, first and second derivative of the exponential pieces at ±1.
    """
    safe_hi = jnp.where(hi > 0, hi, 1.0)
    safe_lo = jnp.where(lo > 0, lo, 1.0)
    log_hi, log_lo = jnp.log(safe_hi), jnp.log(safe_lo)
    rhs = jnp.stack(
        [
            safe_hi - 1.0,
            safe_lo - 1.0,
            safe_hi * log_hi,
            -safe_lo * log_lo,
            safe_hi * log_hi**2,
            safe_lo * log_lo**2,
        ],
        axis=-1,
    )
    coeffs = jnp.einsum("ij,...j->...i", jnp.asarray(_CODE4_INV), rhs)
    a_in = jnp.clip(alpha, -1.0, 1.0)
    powers = jnp.stack([a_in**i for i in range(1, 7)], axis=-1)
    poly = 1.0 + jnp.sum(coeffs * powers, axis=-1)
    outer = jnp.where(alpha >= 1.0, jnp.exp(alpha * log_hi), jnp.exp(-alpha * log_lo))
    return jnp.where(jnp.abs(alpha) >= 1.0, outer, poly)


def normsys_factor(code: str, alpha, lo, hi):
    """Multiplicative normalisation factor of a ``normsys`` modifier.

    ``lo`` and ``hi`` are the relative normalisations at α = -1 and α = +1 (nominal = 1).
    ``code1``: piecewise exponential; ``code4`` (pyhf and ROOT default): 6th-order polynomial
    for |α| < 1 matched to the exponential extrapolation up to second derivatives.
    """
    if code == "code1":
        return _code1(alpha, lo, hi)
    if code == "code4":
        return _code4(alpha, lo, hi)
    raise ValueError(f"normsys interpolation code {code!r} not in {MULTIPLICATIVE_CODES}")


def histosys_delta(code: str, alpha, lo, nom, hi):
    r"""Additive shift Δ(α) of a ``histosys`` modifier (templates ``lo``, ``nom``, ``hi``).

    - ``code0``: piecewise linear, Δ = α (hi − nom) for α ≥ 0 and α (nom − lo) for α < 0.
    - ``code2``: quadratic inside |α| ≤ 1 (Δ = a α² + b α with a = (hi+lo)/2 − nom,
      b = (hi−lo)/2), linear and continuous outside (ROOT's definition). pyhf 0.7.6 drops the
      constant (hi − nom) / (lo − nom) outside |α| ≤ 1, which makes its code2 discontinuous at
      |α| = 1; jaxlike follows ROOT there and agrees with pyhf inside |α| ≤ 1.
    - ``code4p`` (pyhf default): linear outside |α| > 1, and inside
      Δ = α S + α² A (15 − 10 α² + 3 α⁴) with S = (δ⁺ + δ⁻)/2, A = (δ⁺ − δ⁻)/16,
      δ⁺ = hi − nom, δ⁻ = nom − lo (C¹ and C² continuous at ±1).
    """
    d_up = hi - nom
    d_dn = nom - lo
    if code == "code0":
        return jnp.where(alpha >= 0, alpha * d_up, alpha * d_dn)
    if code == "code2":
        a = 0.5 * (hi + lo) - nom
        b = 0.5 * (hi - lo)
        inside = a * alpha**2 + b * alpha
        above = (b + 2 * a) * (alpha - 1.0) + d_up
        below = (b - 2 * a) * (alpha + 1.0) - d_dn
        return jnp.where(alpha > 1.0, above, jnp.where(alpha < -1.0, below, inside))
    if code == "code4p":
        s = 0.5 * (d_up + d_dn)
        a = 0.0625 * (d_up - d_dn)
        a2 = alpha**2
        inside = alpha * s + a2 * (a2 * (3.0 * a2 - 10.0) + 15.0) * a
        return jnp.where(alpha > 1.0, alpha * d_up, jnp.where(alpha < -1.0, alpha * d_dn, inside))
    raise ValueError(f"histosys interpolation code {code!r} not in {ADDITIVE_CODES}")
