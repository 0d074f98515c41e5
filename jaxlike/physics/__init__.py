"""Physics inputs for reinterpretation: B⁺ → K⁺ νν̄ in the weak effective theory.

- Bin integrals: :func:`gauss_legendre_bin_integrals` (∫ over each bin by n-point
  Gauss–Legendre, one vectorised evaluation, differentiable), :func:`gauss_legendre_nodes`,
  :func:`bins_inside`.
- B → K form factors, BSZ2015 z-expansion as in EOS: :func:`form_factors`, :func:`z_of`,
  :data:`PARAMETER_NAMES`, :data:`SHORT_NAMES`.
- Rate: :func:`dbr_dq2` (dB/dq², 3 flavours, C_V, C_S, C_T), :func:`branching_fraction`,
  :data:`C_VL_SM`, EOS 1.0.17 inputs :class:`EOSConstants` / :data:`EOS_V1_0_17`; the Belle II
  null σ0 :func:`null_dbr_dq2` (HPQCD-2022 f+, :func:`null_fplus`, :class:`NullConstants`);
  :func:`load_bk_formfactors` (central values and covariance).
- Correlated Gaussian inputs: :func:`decorrelate` → :class:`Decorrelated`
  (θ = θ̂ + U √S ν, Cov(θ) = C for ν ~ N(0, 1)), :class:`InvalidCovariance`.
"""

from ..exceptions import InvalidCovariance
from ..model import bins_inside, gauss_legendre_bin_integrals, gauss_legendre_nodes
from ._bknunu import (
    C_VL_SM,
    EOS_V1_0_17,
    HPQCD2022_NULL,
    EOSConstants,
    NullConstants,
    branching_fraction,
    dbr_dq2,
    dbr_dq2_kernels,
    kallen,
    load_bk_formfactors,
    null_dbr_dq2,
    null_fplus,
)
from ._bsz2015 import (
    BSZ_M_B,
    BSZ_M_K,
    BSZ_POLE_0,
    BSZ_POLE_PLUS_T,
    PARAMETER_NAMES,
    SHORT_NAMES,
    form_factor_matrix,
    form_factors,
    z_of,
)
from ._decorrelate import Decorrelated, decorrelate

__all__ = [
    "BSZ_M_B",
    "BSZ_M_K",
    "BSZ_POLE_0",
    "BSZ_POLE_PLUS_T",
    "C_VL_SM",
    "Decorrelated",
    "EOSConstants",
    "EOS_V1_0_17",
    "HPQCD2022_NULL",
    "InvalidCovariance",
    "NullConstants",
    "PARAMETER_NAMES",
    "SHORT_NAMES",
    "bins_inside",
    "branching_fraction",
    "dbr_dq2",
    "dbr_dq2_kernels",
    "decorrelate",
    "form_factor_matrix",
    "form_factors",
    "gauss_legendre_bin_integrals",
    "gauss_legendre_nodes",
    "kallen",
    "load_bk_formfactors",
    "null_dbr_dq2",
    "null_fplus",
    "z_of",
]

from ._rates import FF_PARAMETER, NULL_RATE, WET_PARAMETERS, WET_RATE  # noqa: E402  (registers)

__all__ += [
    "FF_PARAMETER",
    "NULL_RATE",
    "WET_PARAMETERS",
    "WET_RATE",
]
