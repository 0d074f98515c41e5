"""B⁺ → K⁺ νν̄ in the weak effective theory (WET): differential rate, branching fraction, the
HPQCD-2022 SM shape used by Belle II as the reweighting null, and the form-factor input file.

With λ = λ(m_B², m_K², q²) = m_B⁴ + m_K⁴ + q⁴ − 2(m_B² m_K² + m_B² q² + m_K² q²) (Källén) and
C_V = C_VL + C_VR, C_S = C_SL + C_SR, C_T = C_TL, the rate summed over 3 neutrino flavours is

.. math::

    \\frac{d\\mathcal{B}}{dq^2} = \\frac{\\tau_B}{\\hbar}\\, 3\\, N(q^2) \\Big[
        \\frac{\\lambda}{24} f_+^2 |C_V|^2
        + \\frac{q^2 (m_B^2 - m_K^2)^2}{8 (m_b - m_s)^2} f_0^2 |C_S|^2
        + \\frac{2}{3} \\frac{q^2 \\lambda}{(m_B + m_K)^2} f_T^2 |C_T|^2 \\Big],

    N(q^2) = \\frac{1}{2}\\Big(\\frac{4 G_F \\alpha_e}{2\\pi}\\Big)^2 |V_{tb} V_{ts}|^2
        \\frac{\\sqrt{\\lambda}}{(4\\pi m_B)^3},\\qquad 0 \\le q^2 < (m_B - m_K)^2,

with the EOS 1.0.17 inputs of :class:`EOSConstants` (kinematic masses m_B+ = 5.27934,
m_K+ = 0.493677 GeV) and the BSZ2015 form factors of :mod:`._bsz2015`. V, S and T do not
interfere, so the rate is even in each coefficient.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from jax import Array

from ..exceptions import InvalidModel
from ..model import gauss_legendre_bin_integrals
from ._bsz2015 import PARAMETER_NAMES, form_factors

__all__ = [
    "C_VL_SM",
    "EOSConstants",
    "EOS_V1_0_17",
    "HPQCD2022_NULL",
    "NullConstants",
    "branching_fraction",
    "dbr_dq2",
    "dbr_dq2_kernels",
    "kallen",
    "load_bk_formfactors",
    "null_dbr_dq2",
    "null_fplus",
]

#: SM Wilson coefficient C_VL of EOS 1.0.17 (C_VR = C_S = C_T = 0 in the SM)
C_VL_SM = 6.613114906357177


@dataclasses.dataclass(frozen=True)
class EOSConstants:
    """Rate inputs of EOS 1.0.17 (``rate_constants_eos_v1.0.17`` in bk_formfactors.json).

    ``mb_minus_ms`` is the effective (m_b − m_s)(μ = 4.2 GeV) that reproduces EOS; it enters the
    scalar term only. Masses in GeV, G_F in GeV⁻², ħ in GeV s, τ in s.
    """

    G_F: float = 1.1663787e-05
    alpha_e: float = 1.0 / 133.0
    hbar: float = 6.58211928e-25
    tau_B: float = 1.641e-12
    abs_Vtb: float = 0.9991111344469873
    abs_Vts: float = 0.04121212396309175
    m_B: float = 5.27934
    m_K: float = 0.493677
    mb_minus_ms: float = 4.0902723

    @property
    def vtbvts(self) -> float:
        """|V_tb| · |V_ts|."""
        return self.abs_Vtb * self.abs_Vts

    @property
    def q2_max(self) -> float:
        """Kinematic endpoint (m_B − m_K)² in GeV²."""
        return (self.m_B - self.m_K) ** 2


EOS_V1_0_17 = EOSConstants()


@dataclasses.dataclass(frozen=True)
class NullConstants:
    """Inputs of the HPQCD-2022 SM shape used by Belle II as the reweighting null σ0
    (``null_distribution_hpqcd2022_as_in_knunu_reinterpretation_mini`` in
    bk_formfactors.json). Masses in GeV; τ_B/ħ in GeV⁻¹ is ``tau_B / hbar``."""

    a: tuple[float, ...] = (0.2545, -0.71, 0.32)
    N: int = 3
    log_factor: float = 1.304
    M_pole: float = 5.4158
    m_B: float = 5.279495
    m_K: float = 0.495644
    G_F: float = 1.1663787e-05
    alpha_inv: float = 127.952
    X_t: float = 1.468
    sin2_thetaW: float = 0.23124
    vtbvts: float = 0.04185
    tau_B: float = 1.638e-12
    hbar: float = 6.58211e-25

    @property
    def q2_max(self) -> float:
        """Kinematic endpoint (m_B − m_K)² of the null, in GeV²."""
        return (self.m_B - self.m_K) ** 2


HPQCD2022_NULL = NullConstants()


def kallen(a, b, c) -> Array:
    """Källén function λ(a, b, c) = a² + b² + c² − 2(ab + ac + bc)."""
    return a * a + b * b + c * c - 2.0 * (a * b + a * c + b * c)


def dbr_dq2(
    q2,
    c_v,
    c_s,
    c_t,
    alpha,
    vtbvts=None,
    *,
    constants: EOSConstants = EOS_V1_0_17,
) -> Array:
    """dB/dq² (GeV⁻²) of B⁺ → K⁺ νν̄ summed over 3 neutrino flavours (module docstring):

    dB/dq² = (τ_B/ħ) · 3 · N(q²) · [λ/24 f+² C_V² + q²(m_B² − m_K²)²/(8(m_b − m_s)²) f0² C_S²
    + (2/3) q² λ/(m_B + m_K)² fT² C_T²],  N = (4 G_F α_e/(2π))²/2 · |V_tb V_ts|² √λ/(4π m_B)³.

    ``q2`` any shape (elementwise), ``c_v, c_s, c_t`` scalars, ``alpha`` the 8 BSZ2015
    parameters; ``vtbvts`` = |V_tb V_ts| (default |V_tb|·|V_ts| of ``constants``). Exactly 0
    outside 0 ≤ q² < (m_B − m_K)², with finite gradients everywhere. Differentiable in the
    coefficients, ``alpha`` and ``vtbvts``.
    """
    k_v, k_s, k_t = dbr_dq2_kernels(q2, vtbvts, constants=constants)
    f_plus, f_zero, f_t = form_factors(_safe_q2(q2, constants), alpha)
    return k_v * f_plus**2 * c_v**2 + k_s * f_zero**2 * c_s**2 + k_t * f_t**2 * c_t**2


def _safe_q2(q2, k):
    q2 = jnp.asarray(q2, dtype=jnp.float64)
    inside = (q2 >= 0.0) & (q2 < k.q2_max)
    return jnp.where(inside, q2, 0.5 * k.q2_max)  # safe point: no NaN in values or gradients


def dbr_dq2_kernels(q2, vtbvts=None, *, constants: EOSConstants = EOS_V1_0_17):
    """(k_V, k_S, k_T)(q²) with dB/dq² = k_V f+² C_V² + k_S f0² C_S² + k_T fT² C_T²:

    k_V = (τ_B/ħ)·3·N·λ/24,  k_S = (τ_B/ħ)·3·N·q²(m_B² − m_K²)²/(8(m_b − m_s)²),
    k_T = (τ_B/ħ)·3·N·(2/3) q² λ/(m_B + m_K)²  (N as in :func:`dbr_dq2`); 0 outside the
    kinematic range.
    """
    k = constants
    v = k.vtbvts if vtbvts is None else vtbvts
    q2 = jnp.asarray(q2, dtype=jnp.float64)
    inside = (q2 >= 0.0) & (q2 < k.q2_max)
    q2s = _safe_q2(q2, k)
    mB2, mK2 = k.m_B**2, k.m_K**2
    lam = kallen(mB2, mK2, q2s)
    norm = (
        0.5
        * (4.0 * k.G_F * k.alpha_e / (2.0 * math.pi)) ** 2
        * v**2
        * jnp.sqrt(lam)
        / (4.0 * math.pi * k.m_B) ** 3
    )
    pre = jnp.where(inside, (k.tau_B / k.hbar) * 3.0 * norm, 0.0)
    return (
        pre * lam / 24.0,
        pre * q2s * (mB2 - mK2) ** 2 / (8.0 * k.mb_minus_ms**2),
        pre * 2.0 / 3.0 * q2s * lam / (k.m_B + k.m_K) ** 2,
    )


def branching_fraction(
    c_v,
    c_s,
    c_t,
    alpha,
    q2_range: tuple[float, float] | None = None,
    vtbvts=None,
    *,
    constants: EOSConstants = EOS_V1_0_17,
    n_panels: int = 8,
    n_nodes: int = 16,
) -> Array:
    """B = ∫ dB/dq² dq² over ``q2_range`` (static floats; default and clip: the full range
    [0, (m_B − m_K)²]).

    Integrated by Gauss–Legendre in u = √(q²_max − q²) (q² = q²_max − u², dq² = 2u du), which
    removes the √λ ∝ √(q²_max − q²) endpoint singularity: the integrand 2u · dB/dq² is smooth,
    so ``n_panels`` × ``n_nodes`` nodes (default 8 × 16) reach double precision.
    Differentiable in the coefficients, ``alpha`` and ``vtbvts``.
    """
    q2_max = constants.q2_max
    lo, hi = (0.0, q2_max) if q2_range is None else (float(v) for v in q2_range)
    lo, hi = max(lo, 0.0), min(hi, q2_max)
    if not hi > lo:
        return jnp.asarray(0.0)
    u_edges = np.linspace(math.sqrt(q2_max - hi), math.sqrt(q2_max - lo), n_panels + 1)

    def integrand(u):
        return 2.0 * u * dbr_dq2(q2_max - u * u, c_v, c_s, c_t, alpha, vtbvts, constants=constants)

    return jnp.sum(gauss_legendre_bin_integrals(integrand, u_edges, n_nodes))


def null_fplus(q2, constants: NullConstants = HPQCD2022_NULL) -> Array:
    """HPQCD-2022 f+ as used for the Belle II null (arXiv:2207.12468 z-expansion):
    f+ = L/(1 − q²/M²) Σ_n a_n (zⁿ − n/N (−1)^{n−N} z^N), z = (√(t₊−q²) − √t₊)/(√(t₊−q²) + √t₊)
    (t₀ = 0), t₊ = (m_B + m_K)² with the null's own masses."""
    k = constants
    q2 = jnp.asarray(q2, dtype=jnp.float64)
    t_plus = (k.m_B + k.m_K) ** 2
    a = jnp.sqrt(t_plus - q2)
    b = math.sqrt(t_plus)
    z = (a - b) / (a + b)
    zN = z**k.N
    total = 0.0
    for n, a_n in enumerate(k.a):
        total = total + a_n * (z**n - (n / k.N) * float((-1) ** (n - k.N)) * zN)
    return k.log_factor / (1.0 - q2 / k.M_pole**2) * total


def null_dbr_dq2(q2, constants: NullConstants = HPQCD2022_NULL) -> Array:
    """The SM shape σ0 Belle II used as the null of the reweighting (GeV⁻², 3 flavours):

    dB/dq² = G_F² α² X_t² |V_tb V_ts|² (τ_B/ħ) / (32 π⁵ sin⁴θ_W) · λ^{3/2}/(2 m_B)³ · f+(q²)²

    with :func:`null_fplus` and the inputs of :class:`NullConstants` (α = 1/127.952,
    X_t = 1.468, |V_tb V_ts| = 0.04185, m_B = 5.279495, m_K = 0.495644). Exactly 0 outside
    0 ≤ q² < (m_B − m_K)². ∫_0^{22.885} = 4.966e-6.
    """
    k = constants
    q2 = jnp.asarray(q2, dtype=jnp.float64)
    q2_max = k.q2_max
    inside = (q2 >= 0.0) & (q2 < q2_max)
    q2s = jnp.where(inside, q2, 0.5 * q2_max)
    lam = kallen(k.m_B**2, k.m_K**2, q2s)
    alpha = 1.0 / k.alpha_inv
    pref = (
        k.G_F**2
        * alpha**2
        * k.X_t**2
        * k.vtbvts**2
        * (k.tau_B / k.hbar)
        / (32.0 * math.pi**5 * k.sin2_thetaW**2)
    )
    rate = pref * lam**1.5 / (2.0 * k.m_B) ** 3 * null_fplus(q2s, k) ** 2
    return jnp.where(inside, rate, 0.0)


def load_bk_formfactors(path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read bk_formfactors.json: (central [8], covariance [8, 8], parameter names).

    Checks that ``parameter_names`` are the 8 BSZ2015 parameters in the order
    :func:`form_factors` takes them, that ``central`` has shape (8,) and ``covariance`` (8, 8),
    all finite, the covariance symmetric (|C − Cᵀ| ≤ 1e-12 max|C|) with a positive diagonal.
    Any violation raises :class:`jaxlike.exceptions.InvalidModel` naming ``<file>:<field>``.
    """
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidModel(str(path), f"cannot read form-factor file ({exc})") from exc
    if not isinstance(obj, dict):
        raise InvalidModel(str(path), "not a JSON object")

    def field(key):
        if key not in obj:
            raise InvalidModel(f"{path}:{key}", "missing")
        return obj[key]

    names = field("parameter_names")
    if not isinstance(names, list) or tuple(names) != PARAMETER_NAMES:
        raise InvalidModel(
            f"{path}:parameter_names",
            f"expected the BSZ2015 parameters {list(PARAMETER_NAMES)} in this order, got {names}",
        )
    arrays = {}
    for key, shape in (("central", (8,)), ("covariance", (8, 8))):
        try:
            arr = np.asarray(field(key), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidModel(f"{path}:{key}", f"not numeric ({exc})") from exc
        if arr.shape != shape:
            raise InvalidModel(f"{path}:{key}", f"shape {arr.shape}, expected {shape}")
        if not np.all(np.isfinite(arr)):
            raise InvalidModel(f"{path}:{key}", "not finite")
        arrays[key] = arr
    cov = arrays["covariance"]
    asym = float(np.max(np.abs(cov - cov.T)))
    if asym > 1e-12 * float(np.max(np.abs(cov))):
        raise InvalidModel(f"{path}:covariance", f"not symmetric (max |C - C^T| = {asym:.3g})")
    diag = np.diag(cov)
    if not np.all(diag > 0):
        bad = int(np.argmin(diag))
        raise InvalidModel(
            f"{path}:covariance", f"non-positive variance {diag[bad]:.3g} at index {bad}"
        )
    return arrays["central"], cov, tuple(names)
