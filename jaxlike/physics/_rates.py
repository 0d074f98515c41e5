"""B⁺ → K⁺ νν̄ rates registered for the ``reweight`` modifier (:mod:`jaxlike.model._reweight`).

- ``bknunu_wet_bsz2015``: σ1(q²; C_V, C_S, C_T, ν) = dB/dq² of :func:`dbr_dq2` in the WET
  (3 neutrino flavours, EOS 1.0.17 inputs, |V_tb V_ts| of EOS unless ``inputs.vtbvts``), with
  the eight BSZ2015 form-factor parameters α = α̂ + U √S ν eigen-decorrelated from the JSON
  ``inputs`` ``ff_mean`` (8) and ``ff_cov`` (8 × 8). Parameters: ``C_V``, ``C_S``, ``C_T``
  (free, bounds [0, 20]: the rate is even in each, so the positive octant suffices) and
  ``ff_bsz2015`` (8 unit-Gaussian-constrained nuisances ν).
- ``bknunu_sm_hpqcd2022``: the HPQCD-2022 SM shape Belle II used as the null σ0 of its joint
  number densities (:func:`null_dbr_dq2`, ∫ = 4.966e-6 over [0, 22.885] GeV²).

The rate is separable (:class:`~jaxlike.model.RateSpec` ``basis``/``combine``): quadratic in
the coefficients and, since the form factors are linear in α, quadratic in α. The bin
integrals of k_c G_ck G_cl are computed once per model; a likelihood evaluation contracts them
with C_c² α_k α_l.

Initial values: C_V at its SM value, C_S = C_T = 1. Not 0: the rate is quadratic in each
coefficient, so at C = 0 the gradient vanishes for every data set and a Newton fit started
there would stay on that stationary point.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..exceptions import InvalidArgument
from ..model import RateParameter, RateSpec, register_rate
from ._bknunu import (
    C_VL_SM,
    EOS_V1_0_17,
    HPQCD2022_NULL,
    dbr_dq2,
    dbr_dq2_kernels,
    null_dbr_dq2,
)
from ._bsz2015 import form_factor_matrix
from ._decorrelate import decorrelate

__all__ = ["WET_RATE", "NULL_RATE", "WET_PARAMETERS", "FF_PARAMETER"]

WET_RATE = "bknunu_wet_bsz2015"
NULL_RATE = "bknunu_sm_hpqcd2022"
FF_PARAMETER = "ff_bsz2015"
WET_PARAMETERS = ("C_V", "C_S", "C_T")


def _prepare_wet(inputs):
    """Validate ``ff_mean``/``ff_cov`` (and optional ``vtbvts``) and decorrelate them."""
    for key in ("ff_mean", "ff_cov"):
        if key not in inputs:
            raise InvalidArgument(f"{key}: missing (BSZ2015 form-factor mean and covariance)")
    unknown = set(inputs) - {"ff_mean", "ff_cov", "vtbvts"}
    if unknown:
        raise InvalidArgument(f"{sorted(unknown)[0]}: unknown input")
    mean = np.asarray(inputs["ff_mean"], float)
    cov = np.asarray(inputs["ff_cov"], float)
    if mean.shape != (8,):
        raise InvalidArgument(f"ff_mean: expected 8 values, got shape {list(mean.shape)}")
    try:
        dec = decorrelate(mean, cov)
    except ValueError as err:
        raise InvalidArgument(f"ff_cov: {err}") from None
    vtbvts = float(inputs.get("vtbvts", EOS_V1_0_17.vtbvts))
    if not (np.isfinite(vtbvts) and vtbvts > 0):
        raise InvalidArgument(f"vtbvts: must be positive, got {vtbvts}")
    return {
        "ff_mean": np.asarray(dec.mean),
        "ff_transform": np.asarray(dec.transform),
        "vtbvts": np.asarray(vtbvts),
    }


def _wet_rate(q2, pars, inputs):
    alpha = inputs["ff_mean"] + inputs["ff_transform"] @ pars[FF_PARAMETER]
    return dbr_dq2(q2, pars["C_V"], pars["C_S"], pars["C_T"], alpha, vtbvts=inputs["vtbvts"])


def _wet_basis(q2, inputs):
    """b[c, k, l](q²) = k_c(q²) G_ck(q²) G_cl(q²): the rate is Σ_c C_c² αᵀ b_c α."""
    kernels = jnp.stack(dbr_dq2_kernels(q2, inputs["vtbvts"]))  # [3, nq]
    g = jnp.moveaxis(form_factor_matrix(q2), 0, -1)  # [3, 8, nq]
    return kernels[:, None, None, :] * g[:, :, None, :] * g[:, None, :, :]


def _wet_combine(ints, pars, inputs):
    """∫σ over each bin = Σ_c C_c² αᵀ I_c α with α = α̂ + U√S ν (ints: [3, 8, 8, J])."""
    alpha = inputs["ff_mean"] + inputs["ff_transform"] @ pars[FF_PARAMETER]
    c2 = jnp.stack([pars["C_V"], pars["C_S"], pars["C_T"]]) ** 2
    return jnp.einsum("c,ckl...,k,l->...", c2, ints, alpha, alpha)


register_rate(
    RateSpec(
        WET_RATE,
        _wet_rate,
        parameters=(
            RateParameter("C_V", init=C_VL_SM, bounds=(0.0, 20.0)),
            RateParameter("C_S", init=1.0, bounds=(0.0, 20.0)),
            RateParameter("C_T", init=1.0, bounds=(0.0, 20.0)),
            RateParameter(FF_PARAMETER, n=8, init=0.0, bounds=(-5.0, 5.0), constraint="normal"),
        ),
        domain=(0.0, EOS_V1_0_17.q2_max),
        prepare=_prepare_wet,
        basis=_wet_basis,
        combine=_wet_combine,
    ),
    replace=True,
)
register_rate(
    RateSpec(
        NULL_RATE,
        lambda q2, pars, inputs: null_dbr_dq2(q2),
        domain=(0.0, HPQCD2022_NULL.q2_max),
    ),
    replace=True,
)
