r"""The Bayesian upper limit of the on/off problem by direct numerical integration (a reference).

One signal window with n_on events and a sideband with n_off, the background normalisation k
(flat prior, k ≥ 0), a log-normal transfer factor and a Gaussian relative signal uncertainty —
the likelihood of one channel of :func:`jaxlike.workspace.counting_workspace` with a sideband:

.. math::

    L = \mathrm{Pois}(n_{on} \mid a + k b)\, \mathrm{Pois}(n_{off} \mid c\, k)\,
        \mathcal N(\alpha_s)\, \mathcal N(\alpha_\tau), \qquad
    a = \mu s (1 + r \alpha_s),\; c = \tau (1 + t)^{\alpha_\tau} b .

The k integral is done in closed form, expanding (a + kb)^{n_on} binomially:

.. math::

    \int_0^\infty L\, dk = \frac{e^{-a} c^{n_{off}}}{n_{on}!\, n_{off}!}
        \sum_{j=0}^{n_{on}} \binom{n_{on}}{j} a^{n_{on}-j} b^j
        \frac{(j + n_{off})!}{(b + c)^{j + n_{off} + 1}},

and the two Gaussian nuisances by tensor Gauss–Hermite quadrature (``n_quad`` nodes each, with
ν_s < 0 excluded); the posterior of μ under a uniform prior is then integrated on a fine grid
(trapezoid rule, ``n_fine`` points on [0, μ_max]) and inverted at ``cl``. Independent of the
fits and of the Laplace approximation that :func:`bayesian_upper_limit` uses, so the two can be
compared (``benchmarks/bench_counting_grid.py``, ``tests/test_counting_grid.py``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

__all__ = ["onoff_upper_limit"]


def onoff_upper_limit(
    n_on, n_off, s, b, tau, *, t=0.0, r=0.0, cl=0.95, mu_max=None, n_quad=40, n_fine=8001
):
    """Credible upper limit on μ (uniform prior on [0, μ_max]) of the on/off problem above.

    Args:
        n_on, n_off: observed counts (non-negative integers).
        s: signal per unit μ in the window (> 0); b: nominal background (> 0; k b is the
            window's background); tau: sideband-to-window ratio τ (> 0).
        t: relative uncertainty of τ (log-normal, (1 + t)^α); r: relative signal uncertainty.
        cl: credibility level; mu_max: upper end of the prior (default: far beyond the limit,
            (n_on + 10√n_on + 30)/s × 3); n_quad: Gauss–Hermite nodes per nuisance; n_fine:
            points of the μ grid.

    Returns:
        The limit U with ∫₀^U p(μ | n) dμ = cl.
    """
    n_on, n_off = int(n_on), int(n_off)
    if n_on < 0 or n_off < 0 or not (s > 0 and b > 0 and tau > 0):
        raise ValueError("need n_on, n_off ≥ 0 and s, b, tau > 0")
    if mu_max is None:
        mu_max = 3.0 * (n_on + 10.0 * math.sqrt(n_on) + 30.0) / s
    x, w = np.polynomial.hermite_e.hermegauss(n_quad)  # ∫ f(x) e^{-x²/2} dx
    w = w / math.sqrt(2.0 * math.pi)
    a_s = x if r > 0 else np.zeros(1)
    w_s = w if r > 0 else np.ones(1)
    a_t = x if t > 0 else np.zeros(1)
    w_t = w if t > 0 else np.ones(1)
    mu = np.linspace(0.0, mu_max, n_fine)
    c = tau * (1.0 + t) ** a_t * b  # [T]
    j = np.arange(n_on + 1)
    log_binom = gammaln(n_on + 1) - gammaln(j + 1) - gammaln(n_on - j + 1)
    # log of the j-th term without a^{n-j}: [T, J]
    log_kj = (log_binom[None, :] + j[None, :] * math.log(b) + gammaln(j + n_off + 1)[None, :]
              - (j[None, :] + n_off + 1) * np.log(b + c)[:, None])  # fmt: skip
    log_pref = n_off * np.log(c) - gammaln(n_on + 1) - gammaln(n_off + 1)  # [T]
    weights = w_s[:, None] * w_t[None, :]
    log_post = np.empty(mu.size)
    for lo in range(0, mu.size, 256):
        m = mu[lo : lo + 256]
        sig = m[:, None] * s * (1.0 + r * a_s[None, :])  # [M, S]
        ok = sig >= 0.0
        sig = np.where(ok, sig, 0.0)
        with np.errstate(divide="ignore"):
            log_a = np.log(sig)
        # Σ_j a^{n-j} K_j by log-sum-exp over j, for every (μ, α_s, α_τ)
        power = (n_on - j)[None, None, None, :]
        with np.errstate(invalid="ignore"):  # 0 · log 0: the a⁰ term, replaced by 0
            expo = np.where(power == 0, 0.0, power * log_a[:, :, None, None])
        terms = expo + log_kj[None, None, :, :]
        top = np.max(terms, axis=-1, keepdims=True)
        log_sum = top[..., 0] + np.log(np.sum(np.exp(terms - top), axis=-1))  # [M, S, T]
        log_l = -sig[:, :, None] + log_pref[None, None, :] + log_sum
        log_l = np.where(ok[:, :, None], log_l, -np.inf)
        peak = np.max(log_l, axis=(1, 2), keepdims=True)
        log_post[lo : lo + 256] = peak[:, 0, 0] + np.log(
            np.sum(np.exp(log_l - peak) * weights[None], axis=(1, 2))
        )
    post = np.exp(log_post - np.max(log_post))
    h = mu[1] - mu[0]
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (post[1:] + post[:-1]) * h)])
    target = cl * cum[-1]
    k = int(np.searchsorted(cum, target)) - 1
    # the trapezoid rule's piecewise-linear density, inverted exactly on its segment
    p0, p1, rest = post[k], post[k + 1], target - cum[k]
    slope = (p1 - p0) / h
    if abs(slope) < 1e-300:
        return float(mu[k] + rest / p0)
    return float(mu[k] + (-p0 + math.sqrt(p0 * p0 + 2.0 * slope * rest)) / slope)
