r"""Profile-likelihood test statistics and their asymptotic distributions.

References: G. Cowan, K. Cranmer, E. Gross, O. Vitells, *Asymptotic formulae for
likelihood-based tests of new physics*, EPJC 71 (2011) 1554, arXiv:1007.1727; conventions of
pyhf 0.7 (``pyhf.infer.calculators.AsymptoticCalculator``).

With λ(μ) = L(μ, θ̂̂) / L(μ̂, θ̂) from a conditional and a free fit:

- t_μ = −2 ln λ(μ) (clipped at 0); t̃_μ identical with μ̂ ≥ 0 enforced by the POI bound;
- q_μ = t_μ if μ̂ ≤ μ else 0 (one-sided, for upper limits); q̃_μ the same with μ̂ ≥ 0;
- q_0 = t_0 if μ̂ ≥ 0 else 0 (discovery).

With q_A the statistic on the Asimov dataset (built from the μ = 0 conditional fit for q and q̃,
μ = 1 for q0), the asymptotic test statistic is t = √q − √q_A, except for q̃ when
√q > √q_A where t = (q − q_A) / (2√q_A). Then

.. math:: CL_{s+b} = \Phi(-(t + \sqrt{q_A})), \quad CL_b = \Phi(-t), \quad
          CL_s = CL_{s+b}/CL_b,

and the expected band uses t = N for N = 2, 1, 0, −1, −2, i.e.
CL_s^{exp}(N) = Φ(−(N + √q_A)) / Φ(−N), ascending (pyhf's default ``calc_base_dist="normal"``;
``"clipped_normal"`` clips t at −√q_A for q̃, the exact support of the q̃ distribution).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import norm
from jaxtyping import Array, ArrayLike, Float

from ..exceptions import InvalidArgument
from ..fit import Scalar

__all__ = ["TEST_STATS", "profile_statistic", "asymptotic_pvalues", "N_SIGMA"]

TEST_STATS = ("qtilde", "q", "q0")
N_SIGMA = (2.0, 1.0, 0.0, -1.0, -2.0)


def profile_statistic(
    test_stat: str,
    mu: Float[ArrayLike, "*b"],
    twice_nll_cond: Float[ArrayLike, "*b"],
    twice_nll_free: Float[ArrayLike, "*b"],
    mu_hat: Float[ArrayLike, "*b"],
) -> Float[Array, "*b"]:
    """q̃_μ, q_μ (one-sided) or q_0 from the conditional and free 2NLL minima."""
    t = jnp.clip(twice_nll_cond - twice_nll_free, 0.0)
    if test_stat == "q0":
        return jnp.where(mu_hat < mu, 0.0, t)
    return jnp.where(mu_hat > mu, 0.0, t)


def asymptotic_pvalues(
    test_stat: str,
    q_obs: Scalar,
    q_asimov: Scalar,
    calc_base_dist: str = "normal",
) -> tuple[
    tuple[Float[Array, ""], Float[Array, ""], Float[Array, ""]],
    tuple[Float[Array, " 5"], Float[Array, " 5"], Float[Array, " 5"]],
]:
    """(CLsb, CLb, CLs) observed and the expected bands (arrays of 5, N = 2 … −2)."""
    sq = jnp.sqrt(jnp.clip(q_obs, 0.0))
    sqa = jnp.sqrt(jnp.clip(q_asimov, 0.0))
    if test_stat == "qtilde":
        safe = jnp.where(sqa > 0, sqa, 1.0)
        t = jnp.where(sq <= sqa, sq - sqa, (sq**2 - sqa**2) / (2.0 * safe))
    else:
        t = sq - sqa
    if calc_base_dist == "clipped_normal":
        cutoff = -sqa
    elif calc_base_dist == "normal":
        cutoff = -jnp.inf
    else:
        raise InvalidArgument(
            f"calc_base_dist must be 'normal' or 'clipped_normal', got {calc_base_dist!r}"
        )
    n = jnp.asarray(N_SIGMA, dtype=sq.dtype)
    t_exp = jnp.where(n > cutoff, n, cutoff)
    # the four normal tails in one call: one copy of Φ's polynomials in the compiled program,
    # the same values (with four copies this compiled in 0.137 s instead of 0.104 s)
    args = (-(t + sqa), -t, -(t_exp + sqa), -t_exp)
    phi = norm.cdf(jnp.concatenate([jnp.ravel(a) for a in args]))
    ends = np.cumsum([0] + [a.size for a in args])
    clsb, clb, clsb_exp, clb_exp = (
        phi[i:j].reshape(a.shape) for i, j, a in zip(ends[:-1], ends[1:], args, strict=True)
    )
    return (clsb, clb, clsb / clb), (clsb_exp, clb_exp, clsb_exp / clb_exp)
