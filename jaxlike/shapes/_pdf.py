"""Gaussian and double-sided Crystal Ball signal shapes: CDFs and bin contents.

With t = (x − μ)/σ the double-sided Crystal Ball (DSCB) density is, up to normalisation,

.. math::

    f(t) = \\begin{cases}
        A_L (B_L + |t|)^{-n_L} & t < -\\alpha_L \\\\
        e^{-t^2/2}             & -\\alpha_L \\le t \\le \\alpha_R \\\\
        A_R (B_R + |t|)^{-n_R} & t > \\alpha_R
    \\end{cases}
    \\qquad A = (n/|\\alpha|)^n e^{-\\alpha^2/2},\\quad B = n/|\\alpha| - |\\alpha|,

i.e. ROOT's ``RooCBShape`` tail A (B − t)^(−n) on the left, mirrored on the right; f and f' are
continuous at both junctions (a tail written A (B − |t|)^(−n) would not be: at |t| = α it gives
A (n/α − 2α)^(−n) ≠ e^(−α²/2)). The tail beyond |t| = s ≥ α has the closed-form mass

.. math::

    G(s; \\alpha, n) = \\int_s^\\infty A (B + u)^{-n}\\,du
        = \\frac{n\\, e^{-\\alpha^2/2}}{\\alpha (n - 1)}
          \\Big(1 + \\frac{\\alpha (s - \\alpha)}{n}\\Big)^{1 - n},

finite for n > 1 only. A bin's content is split into (left tail, core, right tail) pieces, each
a difference of quantities that are *small* on its side (tail masses G, and Gaussian masses from
erfc on the side of the bin), so bins far in either tail are accurate to a few ulp and
non-negative, and every piece is a smooth function of the parameters (gradients are exact).

Edges may be ±∞ (values and gradients stay finite there).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import erfc
from jax.typing import ArrayLike

__all__ = [
    "gaussian_cdf",
    "gaussian_binned",
    "crystal_ball_pdf",
    "crystal_ball_cdf",
    "crystal_ball_binned",
]

_SQRT2 = float(np.sqrt(2.0))
_SQRT2PI = float(np.sqrt(2.0 * np.pi))


def _standardise(x, mu, sigma):
    """t = (x − μ)/σ, with t = x for infinite x (so d t/d(μ, σ) = 0 there, not NaN)."""
    x = jnp.asarray(x, dtype=float)
    inf = jnp.isinf(x)
    return jnp.where(inf, x, (jnp.where(inf, 0.0, x) - mu) / sigma)


def _normal_mass(a, b):
    """P(a ≤ Z ≤ b) of a standard normal Z (a ≤ b), as a difference of the two tail
    probabilities on the side of the origin where the bin lies: erfc keeps full relative
    precision there, so a bin at 30σ gets its ~1e-197 content right."""
    right = (a + b) > 0  # NaN (a = −∞, b = +∞) → left form, which gives 1
    upper = 0.5 * (erfc(a / _SQRT2) - erfc(b / _SQRT2))
    lower = 0.5 * (erfc(-b / _SQRT2) - erfc(-a / _SQRT2))
    return jnp.where(right, upper, lower)


def _tail_mass(s, alpha, n):
    """G(s; α, n) = ∫_s^∞ A (B + u)^(−n) du for s ≥ α (s may be +∞; then 0)."""
    finite = jnp.isfinite(s)
    z = alpha * (jnp.where(finite, s, alpha) - alpha) / n
    log_g = -0.5 * alpha**2 + jnp.log(n / (alpha * (n - 1.0))) + (1.0 - n) * jnp.log1p(z)
    return jnp.where(finite, jnp.exp(log_g), 0.0)


def _cb_mass(ta, tb, alpha_l, n_l, alpha_r, n_r):
    """∫_ta^tb f(t) dt of the unnormalised DSCB (ta ≤ tb), as left-tail + core + right-tail.

    A piece that the bin does not reach is exactly 0 (masked, not a difference of two equal
    numbers that XLA may round differently). The junctions t = −α_L, α_R belong to the core, so
    at an edge exactly on a junction every piece uses the same one-sided formula and the
    gradient is the (continuous) derivative, not half of it.
    """
    al, ar = jnp.abs(alpha_l), jnp.abs(alpha_r)
    left_on, right_on = ta < -al, tb > ar
    core_on = (tb >= -al) & (ta <= ar)
    s_a, s_b = jnp.where(left_on, -ta, al), jnp.where(tb < -al, -tb, al)  # |t| in the left tail
    left = _tail_mass(s_b, al, n_l) - _tail_mass(s_a, al, n_l)
    r_a, r_b = jnp.where(ta > ar, ta, ar), jnp.where(right_on, tb, ar)  # t in the right tail
    right = _tail_mass(r_a, ar, n_r) - _tail_mass(r_b, ar, n_r)
    c_a = jnp.where(ta < -al, -al, jnp.where(ta > ar, ar, ta))
    c_b = jnp.where(tb < -al, -al, jnp.where(tb > ar, ar, tb))
    core = _SQRT2PI * _normal_mass(c_a, c_b)
    zero = jnp.zeros_like(core)
    return (
        jnp.where(left_on, left, zero)
        + jnp.where(core_on, core, zero)
        + jnp.where(right_on, right, zero)
    )


def _cb_norm(alpha_l, n_l, alpha_r, n_r):
    """∫ f(t) dt over the real line: G_L(α_L) + √(2π) P(−α_L ≤ Z ≤ α_R) + G_R(α_R)."""
    al, ar = jnp.abs(alpha_l), jnp.abs(alpha_r)
    core = _SQRT2PI * (1.0 - 0.5 * erfc(al / _SQRT2) - 0.5 * erfc(ar / _SQRT2))
    return _tail_mass(al, al, n_l) + core + _tail_mass(ar, ar, n_r)


# -- Gaussian ---------------------------------------------------------------------------------
def gaussian_cdf(x: ArrayLike, mu: ArrayLike, sigma: ArrayLike) -> Array:
    """Gaussian CDF Φ((x − μ)/σ) = ½ erfc(−(x − μ)/(σ√2)), elementwise (broadcasts).

    Full relative precision in the left tail (Φ(−30) ≈ 5e-198 is exact to an ulp or so).

    >>> float(gaussian_cdf(0.0, 0.0, 1.0))
    0.5
    """
    return 0.5 * erfc(-_standardise(x, mu, sigma) / _SQRT2)


def gaussian_binned(edges: ArrayLike, mu: ArrayLike, sigma: ArrayLike) -> Array:
    """Probability content of each bin [e_i, e_{i+1}] of N(μ, σ²): shape [nb] for edges [nb+1].

    p_i = Φ(t_{i+1}) − Φ(t_i) with t = (e − μ)/σ, computed as ½[erfc(t_i/√2) − erfc(t_{i+1}/√2)]
    for bins right of μ and ½[erfc(−t_{i+1}/√2) − erfc(−t_i/√2)] for bins left of it, so far-tail
    bins get a correct tiny positive content instead of 0 or a rounding error.
    Edges must be increasing; ±∞ are allowed.

    >>> gaussian_binned(jnp.array([-jnp.inf, 0.0, jnp.inf]), 0.0, 1.0).tolist()
    [0.5, 0.5]
    """
    t = _standardise(edges, mu, sigma)
    return _normal_mass(t[..., :-1], t[..., 1:])


# -- Crystal Ball -----------------------------------------------------------------------------
def crystal_ball_pdf(
    x: ArrayLike,
    mu: ArrayLike,
    sigma: ArrayLike,
    alpha_l: ArrayLike,
    n_l: ArrayLike,
    alpha_r: ArrayLike,
    n_r: ArrayLike,
) -> Array:
    """Normalised double-sided Crystal Ball density f(t)/(σ N), elementwise (broadcasts).

    f(t) = e^(−t²/2) for −α_L ≤ t ≤ α_R and A (B + |t|)^(−n) = e^(−α²/2) (1 + α(|t| − α)/n)^(−n)
    in the tails (see the module docstring), t = (x − μ)/σ, N = ∫ f dt =
    n_L e^(−α_L²/2)/(α_L (n_L − 1)) + √(2π) [Φ(α_R) − Φ(−α_L)] + n_R e^(−α_R²/2)/(α_R (n_R − 1)).
    Requires σ > 0, α > 0 (|α| is used) and n > 1.
    """
    t = _standardise(x, mu, sigma)
    al, ar = jnp.abs(alpha_l), jnp.abs(alpha_r)
    s, alpha, n = jnp.abs(t), jnp.where(t < 0, al, ar), jnp.where(t < 0, n_l, n_r)
    tail = jnp.exp(-0.5 * alpha**2 - n * jnp.log1p(alpha * (jnp.maximum(s, alpha) - alpha) / n))
    core = jnp.exp(-0.5 * jnp.minimum(s, alpha) ** 2)
    return jnp.where(s > alpha, tail, core) / (sigma * _cb_norm(alpha_l, n_l, alpha_r, n_r))


def crystal_ball_cdf(
    x: ArrayLike,
    mu: ArrayLike,
    sigma: ArrayLike,
    alpha_l: ArrayLike,
    n_l: ArrayLike,
    alpha_r: ArrayLike,
    n_r: ArrayLike,
) -> Array:
    """CDF of the normalised double-sided Crystal Ball on the real line, elementwise.

    F(x) = [G_L(max(−t, α_L)) + √(2π) P(−α_L ≤ Z ≤ clip(t, −α_L, α_R))
            + G_R(α_R) − G_R(max(t, α_R))] / N,   t = (x − μ)/σ,

    with the closed-form tail masses G(s; α, n) = n e^(−α²/2)/(α(n − 1)) (1 + α(s − α)/n)^(1−n)
    and N = G_L(α_L) + √(2π) P(−α_L ≤ Z ≤ α_R) + G_R(α_R). Exact to rounding on the left
    (power-law tail ~ |t|^(1−n)); on the right 1 − F is only as good as 1 − (a number near 1):
    use :func:`crystal_ball_binned` for right-tail bin contents. Requires n > 1, α > 0.
    """
    t = _standardise(x, mu, sigma)
    return _cb_mass(-jnp.inf, t, alpha_l, n_l, alpha_r, n_r) / _cb_norm(alpha_l, n_l, alpha_r, n_r)


def crystal_ball_binned(
    edges: ArrayLike,
    mu: ArrayLike,
    sigma: ArrayLike,
    alpha_l: ArrayLike,
    n_l: ArrayLike,
    alpha_r: ArrayLike,
    n_r: ArrayLike,
) -> Array:
    """Probability content of each bin of the double-sided Crystal Ball: [nb] for edges [nb+1].

    p_i = ∫_{t_i}^{t_{i+1}} f(t) dt / N, split into the parts of the bin in the left tail, the
    Gaussian core and the right tail:
    G_L(max(−t_{i+1}, α_L)) − G_L(max(−t_i, α_L)) + √(2π) P(clip(t_i) ≤ Z ≤ clip(t_{i+1}))
    + G_R(max(t_i, α_R)) − G_R(max(t_{i+1}, α_R)), clip to [−α_L, α_R] (see the module
    docstring for G and N). Every part is a difference of values that are small on the bin's
    side, so far-tail bins on either side keep full relative precision and are ≥ 0.
    Edges increasing, ±∞ allowed; requires σ > 0, α > 0, n > 1.

    >>> e = jnp.array([-jnp.inf, -1.0, 2.0, jnp.inf])
    >>> round(float(crystal_ball_binned(e, 0.0, 1.0, 1.5, 3.0, 2.0, 5.0).sum()), 12)
    1.0
    """
    t = _standardise(edges, mu, sigma)
    mass = _cb_mass(t[..., :-1], t[..., 1:], alpha_l, n_l, alpha_r, n_r)
    return mass / _cb_norm(alpha_l, n_l, alpha_r, n_r)
