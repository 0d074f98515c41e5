"""Eigen-decorrelation of correlated Gaussian inputs (e.g. form-factor parameters).

Given a mean θ̂ ∈ ℝⁿ and a symmetric positive semi-definite covariance C = U S Uᵀ (U orthogonal,
S = diag(s_k) ≥ 0), the map

.. math::

    \\theta(\\nu) = \\hat\\theta + U \\sqrt{S}\\, \\nu,
    \\qquad \\nu \\sim \\mathcal{N}(0, 1_n)
    \\;\\Rightarrow\\;
    \\mathrm{Cov}(\\theta) = U \\sqrt{S}\\, 1_n \\sqrt{S}\\, U^\\top = U S U^\\top = C

reproduces the mean and covariance exactly, so n independent nuisance parameters ν_k, each with
a unit Gaussian constraint, replace the correlated θ.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import Array

from ..exceptions import InvalidCovariance

__all__ = ["Decorrelated", "InvalidCovariance", "decorrelate"]

#: eigenvalues below −NEG_TOL · max|eig| make a covariance "not positive semi-definite"; those
#: between that and 0 are rounding and clipped to 0
NEG_TOL = 1e-12
#: |C − Cᵀ| above SYM_TOL · max|C| makes a covariance "not symmetric"
SYM_TOL = 1e-12


class Decorrelated(eqx.Module):
    """θ(ν) = mean + transform · ν with transform = U √S (see :func:`decorrelate`).

    Fields: ``mean`` [n], ``transform`` [n, n] (column k = √s_k u_k), ``eigenvalues`` [n]
    (s_k ascending, tiny negative ones clipped to 0), ``names`` (static, or None).
    """

    mean: Array
    transform: Array
    eigenvalues: Array
    names: tuple[str, ...] | None = eqx.field(static=True, default=None)

    @property
    def n(self) -> int:
        """Number of parameters (and of nuisance parameters ν)."""
        return self.mean.shape[-1]

    def __call__(self, nu) -> Array:
        """θ = mean + U √S ν for ν of shape [..., n] (batched over leading axes)."""
        nu = jnp.asarray(nu)
        if nu.ndim == 0 or nu.shape[-1] != self.n:
            raise InvalidCovariance("nu", f"need shape [..., {self.n}], got {nu.shape}")
        return self.mean + jnp.einsum("ij,...j->...i", self.transform, nu)

    def covariance(self) -> Array:
        """Cov(θ) for ν ~ N(0, 1): (U √S)(U √S)ᵀ = U S Uᵀ."""
        return self.transform @ self.transform.T

    def to_nu(self, theta) -> Array:
        """The ν that maps to ``theta`` [..., n]: ν = S^{-1/2} Uᵀ (θ − mean), with components
        along zero-eigenvalue directions set to 0 (pseudo-inverse)."""
        s = self.eigenvalues
        safe = jnp.where(s > 0, s, 1.0)
        inv = jnp.where(s > 0, 1.0 / safe, 0.0)
        # U√S has columns √s_k u_k, so Uᵀ(θ − mean) = √s ν  ⇒  ν_k = (√s_k u_k)ᵀ(θ − mean) / s_k
        d = jnp.asarray(theta) - self.mean
        return jnp.einsum("ik,...i->...k", self.transform, d) * inv


def decorrelate(mean, cov, *, names=None) -> Decorrelated:
    """Decorrelate Gaussian inputs: C = U S Uᵀ (numpy float64 ``eigh``), transform = U √S.

    θ(ν) = mean + U √S ν has mean θ̂ at ν = 0 and Cov(θ) = U S Uᵀ = C exactly when
    ν ~ N(0, 1_n). Eigenvalues are in ascending order; each eigenvector's sign is fixed so its
    largest-magnitude component is positive (reproducible across LAPACK builds).

    Raises :class:`InvalidCovariance` (an :class:`~jaxlike.exceptions.InvalidModel` and a
    ``ValueError``) naming the problem: shapes that do not match, non-finite entries,
    a non-symmetric covariance (|C − Cᵀ| > 1e-12 max|C|), or an eigenvalue below
    −1e-12 max|eig| ("not positive semi-definite", with the index in ascending eigenvalue
    order); eigenvalues in [−1e-12 max|eig|, 0) are
    clipped to 0.
    """
    m = np.asarray(mean, dtype=np.float64)
    c = np.asarray(cov, dtype=np.float64)
    if m.ndim != 1 or m.size == 0:
        raise InvalidCovariance("mean", f"need a non-empty 1-D array, got shape {m.shape}")
    n = m.size
    if c.shape != (n, n):
        raise InvalidCovariance("covariance", f"shape {c.shape} does not match mean ({n},)")
    if not np.all(np.isfinite(m)):
        raise InvalidCovariance("mean", f"not finite (index {int(np.argmin(np.isfinite(m)))})")
    if not np.all(np.isfinite(c)):
        i, j = np.argwhere(~np.isfinite(c))[0]
        raise InvalidCovariance("covariance", f"not finite (entry [{i}, {j}])")
    scale = float(np.max(np.abs(c)))
    asym = np.abs(c - c.T)
    if float(asym.max()) > SYM_TOL * scale:
        i, j = np.unravel_index(int(np.argmax(asym)), asym.shape)
        raise InvalidCovariance(
            "covariance",
            f"not symmetric (|C[{i},{j}] - C[{j},{i}]| = {float(asym[i, j]):.3g})",
        )
    if names is not None:
        names = tuple(str(x) for x in names)
        if len(names) != n:
            raise InvalidCovariance("names", f"{len(names)} names for {n} parameters")
    s, u = np.linalg.eigh(0.5 * (c + c.T))
    smax = float(np.max(np.abs(s)))
    if smax > 0 and s.min() < -NEG_TOL * smax:
        k = int(np.argmin(s))
        raise InvalidCovariance(
            "covariance", f"not positive semi-definite (eigenvalue {s[k]:.3g} at index {k})"
        )
    s = np.clip(s, 0.0, None)
    big = np.argmax(np.abs(u), axis=0)
    u = u * np.sign(u[big, np.arange(n)])[None, :]
    transform = u * np.sqrt(s)[None, :]
    return Decorrelated(
        mean=jnp.asarray(m),
        transform=jnp.asarray(transform),
        eigenvalues=jnp.asarray(s),
        names=names,
    )
