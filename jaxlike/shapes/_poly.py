"""Smooth background shapes on a fit range [lo, hi], integrated exactly over bins.

Every shape is a density in u = (x − lo)/(hi − lo) ∈ [0, 1]; the ``*_binned`` functions return
the fraction of the density on [lo, hi] that falls in each bin, so a background yield ``b``
spreads as ``b * fractions``. The edges may be any increasing sub-grid of [lo, hi] (e.g. the
window bins that survive a veto); the fractions then sum to less than 1. Bin integrals come from
closed-form antiderivatives, so they are exact to rounding and differentiable in the
coefficients and in ``edges``, ``lo``, ``hi``.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

__all__ = [
    "bernstein_integrals",
    "bernstein_binned",
    "chebyshev_binned",
    "exponential_binned",
    "polynomial_basis",
]


def _unit(edges, lo, hi):
    return (jnp.asarray(edges, dtype=float) - lo) / (hi - lo)


def _bernstein_basis(u, m: int):
    """b_{j,m}(u) = C(m, j) u^j (1 − u)^(m−j) for j = 0..m, stacked on a new last axis.

    Integer powers (``lax.integer_pow``) keep the derivative finite at u = 0 and u = 1."""
    v = 1.0 - u
    return jnp.stack([math.comb(m, j) * u**j * v ** (m - j) for j in range(m + 1)], axis=-1)


# -- Bernstein --------------------------------------------------------------------------------
def bernstein_integrals(edges: ArrayLike, coeffs: ArrayLike, lo: ArrayLike, hi: ArrayLike) -> Array:
    """Unnormalised bin integrals ∫ Σ_k c_k b_{k,n}(u) du of a Bernstein polynomial, in u units.

    b_{k,n}(u) = C(n, k) u^k (1 − u)^(n−k), n = len(coeffs) − 1, u = (x − lo)/(hi − lo). Uses
    the antiderivative ∫_0^u b_{k,n} = (1/(n+1)) Σ_{j=k+1}^{n+1} b_{j,n+1}(u), i.e.
    I(u) = Σ_j d_j b_{j,n+1}(u) with d_j = (1/(n+1)) Σ_{k<j} c_k; the full range [0, 1] gives
    ∫ b_{k,n} = 1/(n+1) and ∫ Σ c_k b_{k,n} = Σ c_k / (n+1). Bins in the upper half of the
    range use the complement I(1) − I(u) = Σ_j (d_{n+1} − d_j) b_{j,n+1}(u), so small bins near
    either end keep their relative precision. Shapes: edges [nb+1], coeffs [n+1] → [nb].

    >>> bernstein_integrals(jnp.array([0.0, 0.5, 1.0]), jnp.array([1.0, 1.0]), 0.0, 1.0).tolist()
    [0.5, 0.5]
    """
    c = jnp.asarray(coeffs, dtype=float)
    n = c.shape[-1] - 1
    d = jnp.concatenate([jnp.zeros(1), jnp.cumsum(c)]) / (n + 1)  # [n+2]
    u = _unit(edges, lo, hi)
    basis = _bernstein_basis(u, n + 1)  # [nb+1, n+2]
    below, above = basis @ d, basis @ (d[-1] - d)
    upper = (u[:-1] + u[1:]) > 1.0
    return jnp.where(upper, above[:-1] - above[1:], below[1:] - below[:-1])


def bernstein_binned(edges: ArrayLike, coeffs: ArrayLike, lo: ArrayLike, hi: ArrayLike) -> Array:
    """Fraction of a Bernstein-polynomial density on [lo, hi] in each bin.

    density(x) ∝ Σ_{k=0}^n c_k b_{k,n}(u), u = (x − lo)/(hi − lo), b_{k,n} = C(n,k) u^k (1−u)^(n−k);
    p_i = ∫_{bin i} / ∫_lo^hi = (n + 1) · :func:`bernstein_integrals` / Σ_k c_k.

    Positivity: the basis polynomials are ≥ 0 on [0, 1], so c_k ≥ 0 (not all 0) guarantees a
    non-negative density; the fit bounds every c_k at 0. The overall scale of ``coeffs`` drops
    out (fix one coefficient, or use the yield as the normalisation).

    >>> bernstein_binned(jnp.array([0.0, 0.5, 1.0]), jnp.array([0.0, 1.0]), 0.0, 1.0).tolist()
    [0.25, 0.75]
    """
    c = jnp.asarray(coeffs, dtype=float)
    return bernstein_integrals(edges, c, lo, hi) * (c.shape[-1] / jnp.sum(c, axis=-1))


# -- Chebyshev --------------------------------------------------------------------------------
def _chebyshev_antiderivative_matrix(n: int) -> np.ndarray:
    """M [n+1, n+2]: the antiderivative of 1 + Σ_{k=1}^n c_k T_k is Σ_j ([1, c] @ M)_j T_j.

    ∫T_0 = T_1, ∫T_1 = T_2/4 (+ const), ∫T_k = T_{k+1}/(2(k+1)) − T_{k−1}/(2(k−1)) for k ≥ 2."""
    m = np.zeros((n + 1, n + 2))
    m[0, 1] = 1.0
    if n >= 1:
        m[1, 2] = 0.25
    for k in range(2, n + 1):
        m[k, k + 1] = 1.0 / (2 * (k + 1))
        m[k, k - 1] = -1.0 / (2 * (k - 1))
    return m


def _chebyshev_t(v, m: int):
    """T_0..T_m (v) stacked on a new last axis (three-term recurrence)."""
    ts = [jnp.ones_like(v), v]
    for _ in range(2, m + 1):
        ts.append(2.0 * v * ts[-1] - ts[-2])
    return jnp.stack(ts[: m + 1], axis=-1)


def chebyshev_binned(edges: ArrayLike, coeffs: ArrayLike, lo: ArrayLike, hi: ArrayLike) -> Array:
    """Fraction of a Chebyshev-series density on [lo, hi] in each bin.

    density(x) ∝ 1 + Σ_{k=1}^n c_k T_k(v), v = 2(x − lo)/(hi − lo) − 1 ∈ [−1, 1] (``coeffs`` are
    c_1..c_n); p_i = [F(v_{i+1}) − F(v_i)] / [F(1) − F(−1)] with the exact antiderivative
    F = T_1 + c_1 T_2/4 + Σ_{k≥2} c_k [T_{k+1}/(2(k+1)) − T_{k−1}/(2(k−1))]
    (so F(1) − F(−1) = 2 + Σ_{k even} 2 c_k/(1 − k²)).

    The density is **not** guaranteed positive: for large c_k it goes negative somewhere in the
    range and some fractions (or the normalisation) become ≤ 0. Callers must check (e.g. reject
    or penalise coefficient sets whose fractions are not all > 0) before using them as yields.

    >>> chebyshev_binned(jnp.array([0.0, 0.5, 1.0]), jnp.array([0.5]), 0.0, 1.0).tolist()
    [0.375, 0.625]
    """
    c = jnp.asarray(coeffs, dtype=float)
    n = c.shape[-1]
    f = jnp.concatenate([jnp.ones(1), c]) @ jnp.asarray(_chebyshev_antiderivative_matrix(n))
    v = 2.0 * _unit(edges, lo, hi) - 1.0
    big_f = _chebyshev_t(v, n + 1) @ f  # [nb+1]
    odd = np.arange(n + 2) % 2 == 1
    total = 2.0 * jnp.sum(jnp.where(odd, f, 0.0))
    return (big_f[1:] - big_f[:-1]) / total


# -- Both polynomial families as one linear basis ---------------------------------------------
def polynomial_basis(kind: str, edges: ArrayLike, n: int, lo: ArrayLike, hi: ArrayLike):
    """The Bernstein or Chebyshev family of order n as a linear basis: (A [nb, n+1], s [n+1])
    with, for a = [1, c_1 … c_n],

    .. math:: p_i(c) = \\frac{(A a)_i}{s \\cdot a},

    equal to :func:`bernstein_binned` (``kind="bernstein"``, a the Bernstein coefficients with
    a_0 = 1) or :func:`chebyshev_binned` (``kind="chebyshev"``, c its coefficients): A holds the
    bin integrals of each basis polynomial (b_{k,n}, or T_k in v = 2u − 1) and s their
    integrals over [lo, hi] (1/(n+1) each; ∫T_k dv = 2/(1 − k²) for even k, 0 for odd k).
    Padding A and s with zero columns gives every order the same shape, so polynomial
    backgrounds of different families and orders are one array layout (background envelopes
    fit them in one vmapped call).

    >>> A, s = polynomial_basis("chebyshev", jnp.array([0.0, 0.5, 1.0]), 1, 0.0, 1.0)
    >>> ((A @ jnp.array([1.0, 0.5])) / (s @ jnp.array([1.0, 0.5]))).tolist()
    [0.375, 0.625]
    """
    unit = jnp.eye(n + 1)
    if kind == "bernstein":
        a = jnp.stack([bernstein_integrals(edges, row, lo, hi) for row in unit], axis=-1)
        return a, jnp.full((n + 1,), 1.0 / (n + 1))
    if kind == "chebyshev":
        m = jnp.asarray(_chebyshev_antiderivative_matrix(n))  # row k: ∫T_k in T_0 … T_{n+1}
        v = 2.0 * _unit(edges, lo, hi) - 1.0
        big_f = _chebyshev_t(v, n + 1) @ m.T  # [nb+1, n+1]
        odd = np.arange(n + 2) % 2 == 1
        return big_f[1:] - big_f[:-1], 2.0 * jnp.sum(jnp.where(odd, m, 0.0), axis=1)
    raise ValueError(f"no polynomial basis for background {kind!r} (bernstein, chebyshev)")


# -- Exponential ------------------------------------------------------------------------------
_SERIES_MAX = 1e-3


def _expm1_ratio(z):
    """(e^z − 1)/z, with its Taylor series for |z| < 1e-3 (exact value and slope at z = 0)."""
    small = jnp.abs(z) < _SERIES_MAX
    zs = jnp.where(small, 1.0, z)
    series = 1.0 + z / 2.0 * (1.0 + z / 3.0 * (1.0 + z / 4.0 * (1.0 + z / 5.0)))
    return jnp.where(small, series, jnp.expm1(zs) / zs)


def exponential_binned(edges: ArrayLike, slope: ArrayLike, lo: ArrayLike, hi: ArrayLike) -> Array:
    """Fraction of the density exp(s·u), u = (x − lo)/(hi − lo), on [lo, hi] in each bin.

    p_i = ∫_{u_i}^{u_{i+1}} e^{su} du / ∫_0^1 e^{su} du. With h(z) = (e^z − 1)/z (h(0) = 1) and
    Δ = u_{i+1} − u_i this is evaluated as e^{s u_i} Δ h(sΔ)/h(s) for s ≤ 0 and as
    e^{s(u_{i+1} − 1)} Δ h(−sΔ)/h(−s) for s > 0: no overflow for any slope, and the s → 0 limit
    (p_i = Δ) and its derivative ∂p_i/∂s = (u_{i+1}² − u_i²)/2 − Δ/2 are exact.

    >>> exponential_binned(jnp.array([0.0, 0.5, 1.0]), 0.0, 0.0, 1.0).tolist()
    [0.5, 0.5]
    """
    e = jnp.asarray(edges, dtype=float)
    u = (e - lo) / (hi - lo)
    ua, ub = u[..., :-1], u[..., 1:]
    du = (e[..., 1:] - e[..., :-1]) / (hi - lo)  # not ub − ua: full precision for narrow bins
    neg = jnp.asarray(slope) <= 0
    sn, sp = jnp.where(neg, slope, 0.0), jnp.where(neg, 0.0, slope)  # safe inputs per branch
    p_neg = jnp.exp(sn * ua) * du * _expm1_ratio(sn * du) / _expm1_ratio(sn)
    p_pos = jnp.exp(sp * (ub - 1.0)) * du * _expm1_ratio(-sp * du) / _expm1_ratio(-sp)
    return jnp.where(neg, p_neg, p_pos)
