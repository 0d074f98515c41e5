"""B → K local form factors in the BSZ2015 z-expansion (order 2), as implemented in EOS.

.. math::

    f_i(q^2) = \\frac{1}{1 - q^2/m_{R,i}^2} \\sum_{k=0}^{2} \\alpha_k^i\\,(z(q^2) - z(0))^k,
    \\qquad i \\in \\{+, 0, T\\},

    z(t) = \\frac{\\sqrt{t_+ - t} - \\sqrt{t_+ - t_0}}{\\sqrt{t_+ - t} + \\sqrt{t_+ - t_0}},
    \\quad t_\\pm = (m_B \\pm m_K)^2,\\quad t_0 = t_+\\big(1 - \\sqrt{1 - t_-/t_+}\\big),

with m_B = 5.279, m_K = 0.492 GeV inside the parametrisation and poles m_R = 5.415 GeV (B_s^*,
1⁻: f+, fT) and 5.630 GeV (B_s0, 0⁺: f0). The constraint f0(0) = f+(0) is imposed by
α_0^{f0} ≡ α_0^{f+}, leaving 8 parameters, ordered as :data:`PARAMETER_NAMES` (EOS names) /
:data:`SHORT_NAMES` (fp0, fp1, fp2, f01, f02, fT0, fT1, fT2).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from ..exceptions import InvalidArgument

__all__ = [
    "BSZ_M_B",
    "BSZ_M_K",
    "BSZ_POLE_0",
    "BSZ_POLE_PLUS_T",
    "PARAMETER_NAMES",
    "SHORT_NAMES",
    "form_factor_matrix",
    "form_factors",
    "z_of",
]

#: masses inside the parametrisation (EOS ``mass::B_u@BSZ2015``, ``mass::K_u@BSZ2015``), GeV
BSZ_M_B = 5.279
BSZ_M_K = 0.492
#: pole masses (EOS ``mass::B_s^*@BSZ2015`` for f+ and fT, ``mass::B_s,0@BSZ2015`` for f0), GeV
BSZ_POLE_PLUS_T = 5.415
BSZ_POLE_0 = 5.630

#: EOS names of the 8 parameters, in the order ``alpha`` takes them
PARAMETER_NAMES = (
    "B->K::alpha^f+_0@BSZ2015",
    "B->K::alpha^f+_1@BSZ2015",
    "B->K::alpha^f+_2@BSZ2015",
    "B->K::alpha^f0_1@BSZ2015",
    "B->K::alpha^f0_2@BSZ2015",
    "B->K::alpha^fT_0@BSZ2015",
    "B->K::alpha^fT_1@BSZ2015",
    "B->K::alpha^fT_2@BSZ2015",
)
#: short names of the same parameters
SHORT_NAMES = ("fp0", "fp1", "fp2", "f01", "f02", "fT0", "fT1", "fT2")


def z_of(t, m_B: float = BSZ_M_B, m_K: float = BSZ_M_K) -> Array:
    """The conformal variable z(t) = (√(t₊−t) − √(t₊−t₀)) / (√(t₊−t) + √(t₊−t₀)) with
    t± = (m_B ± m_K)² and t₀ = t₊(1 − √(1 − t₋/t₊)) (so |z| is minimal over the semileptonic
    range). Real for t ≤ t₊; elementwise in ``t``."""
    t = jnp.asarray(t)
    t_plus = (m_B + m_K) ** 2
    t_minus = (m_B - m_K) ** 2
    t_0 = t_plus * (1.0 - (1.0 - t_minus / t_plus) ** 0.5)
    a = jnp.sqrt(t_plus - t)
    b = (t_plus - t_0) ** 0.5
    return (a - b) / (a + b)


def form_factors(q2, alpha) -> tuple[Array, Array, Array]:
    """(f+, f0, fT) at ``q2`` for the 8 BSZ2015 parameters ``alpha`` (shape [8], order
    :data:`PARAMETER_NAMES`):

    f+ = (α₀⁺ + α₁⁺ Δz + α₂⁺ Δz²) / (1 − q²/5.415²),
    f0 = (α₀⁺ + α₁⁰ Δz + α₂⁰ Δz²) / (1 − q²/5.630²),
    fT = (α₀ᵀ + α₁ᵀ Δz + α₂ᵀ Δz²) / (1 − q²/5.415²),   Δz = z(q²) − z(0).

    Pure jnp, elementwise in ``q2`` and differentiable in ``alpha`` (vmap for batches of
    ``alpha``).
    """
    q2 = jnp.asarray(q2)
    alpha = jnp.asarray(alpha)
    if alpha.shape != (8,):
        raise InvalidArgument(f"alpha: need shape (8,), got {alpha.shape}")
    dz = z_of(q2) - z_of(0.0)
    dz2 = dz * dz
    pole_1m = 1.0 / (1.0 - q2 / BSZ_POLE_PLUS_T**2)
    pole_0p = 1.0 / (1.0 - q2 / BSZ_POLE_0**2)
    f_plus = pole_1m * (alpha[0] + alpha[1] * dz + alpha[2] * dz2)
    f_zero = pole_0p * (alpha[0] + alpha[3] * dz + alpha[4] * dz2)
    f_t = pole_1m * (alpha[5] + alpha[6] * dz + alpha[7] * dz2)
    return f_plus, f_zero, f_t


def form_factor_matrix(q2) -> Array:
    """The linear map α ↦ (f+, f0, fT): a [..., 3, 8] array G(q²) with (f+, f0, fT) = G α.

    The form factors are linear in the 8 parameters (see :func:`form_factors`), so a rate
    quadratic in them is Σ_kl α_k α_l (G_ik G_il)(q²): bin integrals of the products G_ik G_il
    can be computed once and contracted with α later (:mod:`jaxlike.physics._rates`).
    """
    q2 = jnp.asarray(q2)
    dz = z_of(q2) - z_of(0.0)
    one = jnp.ones_like(dz)
    zero = jnp.zeros_like(dz)
    p1 = 1.0 / (1.0 - q2 / BSZ_POLE_PLUS_T**2)
    p0 = 1.0 / (1.0 - q2 / BSZ_POLE_0**2)
    rows = [
        [p1, p1 * dz, p1 * dz * dz, zero, zero, zero, zero, zero],
        [p0, zero, zero, p0 * dz, p0 * dz * dz, zero, zero, zero],
        [zero, zero, zero, zero, zero, p1, p1 * dz, p1 * dz * dz],
    ]
    return jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2) * one[..., None, None]
