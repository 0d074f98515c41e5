r"""Poisson draws by inverse-CDF tables: exact toys of a fixed generating point without a
rejection loop.

JAX's ``jax.random.poisson`` draws each count by rejection (Knuth's product method below
λ = 10, transformed rejection above), a ``while_loop`` that runs until every bin of the vector
is accepted. Toys of one generating point θ_gen share every mean λ_b = ν_b(θ_gen), so the
cumulative distribution

.. math::
    C_b[j] = P(N \le \ell_b + j \mid \lambda_b)
           = \sum_{k=0}^{\ell_b + j} e^{-\lambda_b}\lambda_b^k / k!
           = Q(\ell_b + j + 1, \lambda_b), \qquad j = 0 … K-1,

(Q the regularised upper incomplete gamma function) can be tabulated once, on the host, and
every toy count is then n_b = ℓ_b + min{j : u_b ≤ C_b[j]} for one uniform u_b: a binary search
of K entries (Devroye, *Non-Uniform Random Variate Generation*, 1986, §III.2 and §X.3). The
window [ℓ_b, ℓ_b + K) is chosen so that the probability outside it is below :data:`TAIL` (10⁻¹⁵)
for every bin, checked with the incomplete gamma function, so the draws follow Pois(λ_b) to that
precision (a uniform above C_b[K − 1] gives ℓ_b + K, the truncated tail). K is the same for all
bins and generating points and takes two values only, :data:`SMALL_TABLE` or :data:`MAX_TABLE`
(a static shape: the toys of a whole scan share one or two compiled programs); a table wider
than :data:`MAX_TABLE` entries per bin is not built and the rejection sampler is used instead.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

__all__ = ["MAX_TABLE", "SMALL_TABLE", "TAIL", "PoissonTable", "poisson_table"]

#: probability of a count outside a table's window, at most, for every tabulated mean
TAIL = 1e-15

#: the most entries per bin of a table (larger means: rejection sampling)
MAX_TABLE = 4096

#: entries per bin of a table that is not the largest: two sizes only, so the toys of a scan
#: whose counts vary from hypothesis to hypothesis compile at most two programs (a power of two
#: per need recompiled the ALP window's toy fits at some masses: 0.9 s per mass, not 0.35)
SMALL_TABLE = 256


class PoissonTable(eqx.Module):
    """Inverse-CDF tables of Pois(λ) for a fixed array of means: ``lo`` [..., n] (the first
    count of each window, ℓ) and ``cdf`` [..., n, K] (C[j] = P(N ≤ ℓ + j)), built by
    :func:`poisson_table`. Leading axes index generating points (``jax.tree.map(lambda a:
    a[g], table)`` selects one)."""

    lo: Int[Array, "*batch n"]
    cdf: Float[Array, "*batch n K"]

    def draw(self, key: jax.Array, shape: tuple[int, ...] = ()) -> Float[Array, "*shape n"]:
        r"""Counts n ~ Pois(λ) of shape ``shape + lo.shape`` (floating): one uniform u per
        count, n = ℓ + #{j : C[j] < u}, the inverse of the tabulated CDF. Traceable."""
        shape = tuple(shape)
        u = jax.random.uniform(key, shape + self.lo.shape, self.cdf.dtype)
        m = int(np.prod(self.lo.shape))
        cdf = self.cdf.reshape(m, self.cdf.shape[-1])
        search = jax.vmap(lambda c, x: jnp.searchsorted(c, x, side="left"), (0, -1), -1)
        j = search(cdf, u.reshape(shape + (m,))).reshape(u.shape)
        return (self.lo + j).astype(self.cdf.dtype)


def _windows(lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ℓ, h): a window [ℓ, h] of counts per mean holding all but :data:`TAIL` of Pois(λ)."""
    sd = np.sqrt(lam)
    lo = np.maximum(0.0, np.floor(lam - 12.0 * sd - 2.0))
    hi = np.ceil(lam + 12.0 * sd + 40.0)
    return lo, hi


def poisson_table(lam, *, max_size: int = MAX_TABLE) -> PoissonTable | None:
    r"""The :class:`PoissonTable` of the means ``lam`` (host array [..., n], every λ finite and
    ≥ 0), or None where it cannot be exact and small: a mean not finite or negative (the
    rejection sampler then raises or returns what JAX's sampler does), or a window wider than
    ``max_size`` entries (λ ≳ 2.8·10⁴ at the default).

    Window per mean: ℓ = max(0, ⌊λ − 12√λ − 2⌋), h = ⌈λ + 12√λ + 40⌉; w = max(h − ℓ + 1) entries
    are computed and the table has K = :data:`SMALL_TABLE` (every λ ≲ 95) or ``max_size`` ≥ w
    entries per mean (a static shape: two compiled toy programs at most). The probability
    outside, P(N < ℓ) + P(N > ℓ + w − 1), is computed with the regularised incomplete gamma
    functions and must be below :data:`TAIL` (else None). C[j] = P(N ≤ ℓ + j) = Q(ℓ + j + 1, λ)
    by ``scipy.special.pdtr`` (accurate to an ulp) for j < w, made monotone in j, and 1 beyond
    (within TAIL of the CDF there)."""
    from scipy import special  # here, not at import: scipy.special takes ~0.26 s to import

    lam = np.asarray(lam, dtype=np.float64)
    if lam.size == 0 or not np.all(np.isfinite(lam)) or np.any(lam < 0):
        return None
    lo, hi = _windows(lam)
    need = int(np.max(hi - lo)) + 1
    size = SMALL_TABLE if need <= SMALL_TABLE else max_size
    if need > size:
        return None
    top = lo + need - 1
    below = np.where(lo > 0, special.gammaincc(np.maximum(lo, 1.0), lam), 0.0)
    above = special.gammainc(top + 1.0, lam)  # P(N > top) = P(top + 1, λ)
    if np.any(below + above > TAIL):
        return None
    # P(N ≤ k) = Q(k + 1, λ) to an ulp (cephes' incomplete gamma: a sum of float64 pmfs from
    # exp(k log λ − λ − log k!) loses ~1e-13 at λ ~ 3e4, where that exponent is ~3e5)
    cdf = np.ones(lam.shape + (size,))
    cdf[..., :need] = special.pdtr(lo[..., None] + np.arange(need), lam[..., None])
    cdf = np.maximum.accumulate(cdf, axis=-1)  # monotone for the binary search (≤ 1 ulp)
    # device_put, as the model's arrays (jaxlike/model/_tables.py): jnp.asarray of a NumPy
    # array compiles an identity program per shape and dtype in jax 0.10
    return PoissonTable(jax.device_put(lo.astype(np.int64)), jax.device_put(cdf))
