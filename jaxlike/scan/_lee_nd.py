r"""Look-elsewhere effect over N-dimensional grids (mass × lifetime × …): the Euler
characteristic of excursion sets and the Gross–Vitells estimate in N dimensions.

For a search over a D-dimensional grid of hypotheses with local significance Z(x) (one-sided
q0 = Z² for μ̂ > 0), the probability that background alone gives max Z ≥ u anywhere is, for
large u, the expected Euler characteristic of the excursion set A_u = {x : Z(x) > u}
(Adler & Taylor's Gaussian kinematic formula, as used by Vitells & Gross, Astropart. Phys. 35
(2011) 230, arXiv:1105.4355):

.. math::

    p_{\rm global}(u) \approx E[\varphi(A_u)]
      = \varphi_0\, p_{\rm local}(u) + e^{-u^2/2} \sum_{d=1}^{D} N_d\, He_{d-1}(u),

with p_local(u) = 1 − Φ(u), φ_0 the Euler characteristic of the whole grid (1 for a box),
He_k the probabilists' Hermite polynomials (He_0 = 1, He_1 = u, He_2 = u² − 1) and N_d
constants of the grid and of the correlation lengths. The N_d are fitted (least squares) to the
mean Euler characteristic of excursion sets at D or more *low* levels u_j, measured on
background-only toy maps (:func:`euler_characteristic`), where crossings are many and the
estimate is precise; the formula then extrapolates to the observed maximum. For D = 1 this is
the 1-D estimate of :func:`jaxlike.scan.gross_vitells` (φ of a set of segments counts them).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..exceptions import InvalidScanConfig

__all__ = [
    "GrossVitellsND",
    "euler_characteristic",
    "expected_euler_characteristic",
    "gross_vitells_nd",
]


def euler_characteristic(mask) -> int:
    r"""Euler characteristic of a binary N-D grid set (the excursion set of a map).

    The set is the cubical complex whose vertices are the ``True`` grid points, whose k-cells
    are the unit k-cubes of the grid with all 2^k corners ``True``:
    φ = Σ_k (−1)^k (number of k-cells). In 2-D: vertices − edges + squares (a filled blob 1,
    a blob with a hole 0, two blobs 2); in 3-D a hollow shell 2. Neighbours along the grid
    axes connect (4-connectivity in 2-D).

    >>> euler_characteristic([[1, 1, 1], [1, 0, 1], [1, 1, 1]])  # a ring
    0
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim == 0:
        raise InvalidScanConfig("mask", "needs at least one axis")
    total = 0
    for k in range(m.ndim + 1):
        for axes in itertools.combinations(range(m.ndim), k):
            if any(m.shape[a] < 2 for a in axes):
                continue  # no k-cell spans an axis of one point
            cells = None
            for corner in itertools.product((0, 1), repeat=k):
                sl = [slice(None)] * m.ndim
                for a, c in zip(axes, corner, strict=True):
                    sl[a] = slice(c, m.shape[a] - 1 + c)
                part = m[tuple(sl)]
                cells = part if cells is None else cells & part
            total += (-1) ** k * int(cells.sum())
    return total


def _hermite(k, u):
    """Probabilists' Hermite polynomial He_k(u)."""
    h0, h1 = np.ones_like(u), u
    if k == 0:
        return h0
    for n in range(1, k):
        h0, h1 = h1, u * h1 - n * h0
    return h1


def _p_local(u):
    from scipy.stats import norm  # here: it costs ~0.4 s of `import jaxlike`

    return norm.sf(u)


@dataclass(frozen=True)
class GrossVitellsND:
    """The N-D estimate (see :func:`gross_vitells_nd`): ``n_d`` = (N_1, …, N_D), fitted at
    ``levels`` (Z units) from the mean Euler characteristics ``ec_mean``."""

    max_z: float
    p_local: float
    p_global: float
    z_global: float
    trials_factor: float
    n_d: tuple
    levels: tuple
    ec_mean: tuple


def expected_euler_characteristic(u, n_d, domain_ec: float = 1.0):
    r"""E[φ(A_u)] = φ_0 (1 − Φ(u)) + e^{−u²/2} Σ_d N_d He_{d−1}(u) at levels ``u`` (Z units)
    for the coefficients ``n_d`` = (N_1, …, N_D) (the module docstring's formula)."""
    u = np.asarray(u, float)
    tail = sum(n * np.exp(-(u**2) / 2) * _hermite(d, u) for d, n in enumerate(np.ravel(n_d)))
    return domain_ec * _p_local(u) + tail


def gross_vitells_nd(z_max, levels, ec_mean, dim: int, *, domain_ec: float = 1.0):
    r"""Global p-value of the largest local significance ``z_max`` of a ``dim``-dimensional
    grid scan from the mean Euler characteristics ``ec_mean[j]`` of background-only excursion
    sets {Z > levels[j]} (at least ``dim`` levels, low: e.g. 0.5, 1, 1.5; see the module
    docstring for the formula). p_global is clipped to [p_local, 1] and z_global is
    Φ⁻¹(1 − p_global) (≥ 0).

    >>> r = gross_vitells_nd(4.0, [1.0], [3.1], 1)  # 1-D: N_1 from one level
    >>> round(r.trials_factor, 1)
    52.4
    """
    from scipy.stats import norm  # here: it costs ~0.4 s of `import jaxlike`

    lv = np.asarray(levels, float).ravel()
    ec = np.asarray(ec_mean, float).ravel()
    if isinstance(dim, bool) or int(dim) != dim or dim < 1:
        raise InvalidScanConfig("dim", f"must be a positive integer, got {dim!r}")
    if lv.size != ec.size:
        raise InvalidScanConfig("ec_mean", f"has {ec.size} entries for {lv.size} levels")
    if lv.size < dim:
        raise InvalidScanConfig("levels", f"a {dim}-D grid needs ≥ {dim} levels, got {lv.size}")
    if not (np.all(np.isfinite(lv)) and np.all(np.isfinite(ec))):
        raise InvalidScanConfig("levels", "levels and mean Euler characteristics must be finite")
    if np.unique(lv).size != lv.size:
        raise InvalidScanConfig("levels", f"must be distinct, got {lv.tolist()}")
    basis = np.column_stack([np.exp(-(lv**2) / 2) * _hermite(d - 1, lv) for d in range(1, dim + 1)])
    rhs = ec - domain_ec * _p_local(lv)
    n_d = np.linalg.lstsq(basis, rhs, rcond=None)[0]
    u = float(z_max)
    p_loc = float(_p_local(u))
    p_glob = min(1.0, max(p_loc, float(expected_euler_characteristic(u, n_d, domain_ec))))
    return GrossVitellsND(
        max_z=u,
        p_local=p_loc,
        p_global=float(p_glob),
        z_global=max(0.0, float(norm.isf(p_glob))),
        trials_factor=float(p_glob / p_loc) if p_loc > 0 else math.inf,
        n_d=tuple(float(x) for x in n_d),
        levels=tuple(float(x) for x in lv),
        ec_mean=tuple(float(x) for x in ec),
    )
