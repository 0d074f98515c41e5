r"""Exact inference for one Poisson bin with a known background (no nuisance parameters).

One counting experiment n ~ Pois(λ), λ = μ s + b, with signal yield s > 0 per unit POI and
known background b ≥ 0. Everything here is closed form or a finite Poisson sum (NumPy/SciPy,
no fits, no toys):

- :func:`counting_statistic`: the profile-likelihood statistics q̃_μ, q_μ, q_0 that a converged
  fit of the pyhf model would give;
- :func:`counting_pvalues`: exact CLs+b, CLb, CLs from the discrete distribution of the
  statistic (what toys converge to);
- :func:`feldman_cousins_counting`: the unified intervals of Feldman & Cousins,
  Phys. Rev. D 57 (1998) 3873, arXiv:physics/9711021 (their Tables IV and VI);
- :func:`counting_parameters`: (s, b) of a jaxlike model that is such a bin.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..exceptions import InvalidArgument
from ._asymptotics import TEST_STATS

__all__ = [
    "counting_parameters",
    "counting_pvalues",
    "counting_statistic",
    "feldman_cousins_counting",
]


# --- profile-likelihood statistics ------------------------------------------------------------
def _check_signal_background(s, b):
    s = np.asarray(s, dtype=float)
    b = np.asarray(b, dtype=float)
    if not np.all(np.isfinite(s) & (s > 0)):
        raise InvalidArgument(f"s: the signal yield per unit POI must be finite and > 0, got {s}")
    if not np.all(np.isfinite(b) & (b >= 0)):
        raise InvalidArgument(f"b: the background must be finite and >= 0, got {b}")
    return s, b


def _check_counts(n, name):
    n = np.asarray(n, dtype=float)
    if not np.all(np.isfinite(n) & (n >= 0) & (n == np.round(n))):
        raise InvalidArgument(f"{name}: counts must be non-negative integers, got {n}")
    return n


def _check_test_stat(test_stat):
    if test_stat not in TEST_STATS:
        raise InvalidArgument(f"test_stat must be one of {TEST_STATS}, got {test_stat!r}")


def _statistic(mu, n, s, b, test_stat):
    """The statistic on validated, broadcastable arrays."""
    from scipy import special

    lam = mu * s + b
    if np.any(lam < 0):
        raise InvalidArgument("mu: the expected count mu*s + b must be >= 0")
    # best fit: λ̂ = n (μ̂ = (n − b)/s ≥ −b/s keeps λ̂ ≥ 0); q̃ bounds μ̂ ≥ 0, i.e. λ̂ ≥ b
    mu_hat = (n - b) / s
    lam_hat = n
    if test_stat == "qtilde":
        mu_hat = np.maximum(mu_hat, 0.0)
        lam_hat = np.maximum(n, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = 2.0 * (lam - lam_hat) - 2.0 * (special.xlogy(n, lam) - special.xlogy(n, lam_hat))
    t = np.maximum(t, 0.0)
    if test_stat == "q0":
        return np.where(mu_hat < mu, 0.0, t)
    return np.where(mu_hat > mu, 0.0, t)


def counting_statistic(mu, n, s, b, test_stat="qtilde"):
    r"""Profile-likelihood test statistic of one Poisson bin, closed form (vectorised).

    With n ~ Pois(λ), λ = μ s + b and no nuisance parameters,

    .. math::

        2\,\mathrm{NLL}(\mu) = 2(\lambda - n\ln\lambda) + \mathrm{const}, \qquad
        t_\mu = 2\,\mathrm{NLL}(\mu) - 2\,\mathrm{NLL}(\hat\mu)
              = 2(\lambda - \hat\lambda) - 2n\ln(\lambda/\hat\lambda) \ (\ge 0).

    The best fit is μ̂ = (n − b)/s, i.e. λ̂ = n. For ``"qtilde"`` μ̂ is clipped at the POI lower
    bound 0 (λ̂ = max(n, b)); for ``"q"`` and ``"q0"`` μ̂ is free down to −b/s, where λ̂ = 0, and
    n = 0 then gives 2NLL(μ̂) = 0 (the λ → 0 limit, 0 ln 0 = 0). Then

    - ``"qtilde"``, ``"q"`` (upper limits): q = t_μ if μ̂ ≤ μ, else 0;
    - ``"q0"`` (discovery, ``mu`` = 0): q_0 = t_μ if μ̂ ≥ μ, else 0.

    These are the values a converged fit of the pyhf model (one channel, one bin, signal
    normfactor μ with bounds [0, ·] for q̃ and [−b/s, ·] for q) gives with
    :func:`jaxlike.infer.qmu_tilde`, :func:`~jaxlike.infer.qmu`, :func:`~jaxlike.infer.q0`.

    Args:
        mu: tested POI value(s), with μ s + b ≥ 0.
        n: observed count(s), non-negative integers; broadcasts with ``mu``.
        s: signal yield per unit POI (> 0).
        b: background (≥ 0).
        test_stat: ``"qtilde"``, ``"q"`` or ``"q0"``.

    Returns:
        The statistic, broadcast over ``mu`` and ``n`` (a NumPy float for scalar input).
    """
    _check_test_stat(test_stat)
    s, b = _check_signal_background(s, b)
    n = _check_counts(n, "n")
    mu = np.asarray(mu, dtype=float)
    if not np.all(np.isfinite(mu)):
        raise InvalidArgument(f"mu: must be finite, got {mu}")
    return _statistic(mu, n, s, b, test_stat)[()]


def counting_pvalues(mu, n_obs, s, b, test_stat="qtilde"):
    r"""Exact CLs+b, CLb and CLs of one Poisson bin (the limit of infinitely many toys).

    With q(n) = :func:`counting_statistic` (μ, n, s, b) and q_obs = q(n_obs),

    .. math::

        CL_{s+b} = \sum_{n\ge 0} \mathrm{Pois}(n \mid \mu s + b)\,
                   \mathbf 1[q(n) \ge q_\mathrm{obs}], \qquad
        CL_b = \sum_{n\ge 0} \mathrm{Pois}(n \mid \lambda_b)\,
               \mathbf 1[q(n) \ge q_\mathrm{obs}], \qquad
        CL_s = CL_{s+b} / CL_b,

    with λ_b = b (μ = 0) for q̃ and q. For q0 pyhf's toy convention is mirrored: the tested
    hypothesis is μ = ``mu`` (0 for discovery), so CLs+b is the discovery p-value p_0, and
    CLb is taken under the alternative μ = 1 (λ_b = s + b). Ties count: n with
    q(n) ≥ q_obs − 10⁻⁹ max(1, q_obs) are included. The sums run over n = 0 … n_max with
    n_max = F⁻¹(1 − 10⁻¹⁶) + 10 of the larger mean, so the truncation error is below 10⁻¹⁶.

    Since q̃_μ and q_μ decrease in n below μ s + b, q_obs > 0 gives
    CLs+b = P(n ≤ n_obs | μ s + b) and CLb = P(n ≤ n_obs | b); for q0 and n_obs > b,
    p_0 = P(n ≥ n_obs | b).

    Args:
        mu: tested POI value(s); broadcasts with ``n_obs``.
        n_obs: observed count(s), non-negative integers.
        s: signal yield per unit POI (> 0).
        b: background (≥ 0).
        test_stat: ``"qtilde"``, ``"q"`` or ``"q0"``.

    Returns:
        ``(clsb, clb, cls)``, each broadcast over ``mu`` and ``n_obs``.
    """
    from scipy import stats  # here, not at the top: scipy.stats costs ~0.4 s of import

    _check_test_stat(test_stat)
    s, b = _check_signal_background(s, b)
    if s.ndim or b.ndim:
        raise InvalidArgument("s, b: counting_pvalues takes scalar s and b")
    n_obs = _check_counts(n_obs, "n_obs")
    mu = np.asarray(mu, dtype=float)
    if not np.all(np.isfinite(mu)):
        raise InvalidArgument(f"mu: must be finite, got {mu}")
    mu, n_obs = np.broadcast_arrays(mu, n_obs)
    q_obs = _statistic(mu, n_obs, s, b, test_stat)
    lam_sb = mu * s + b
    lam_b = np.full_like(lam_sb, s + b if test_stat == "q0" else b)
    lam_top = float(max(np.max(lam_sb, initial=0.0), np.max(lam_b, initial=0.0)))
    n_max = int(max(stats.poisson.isf(1e-16, lam_top) if lam_top > 0 else 0, 0)) + 10
    n_max = max(n_max, int(np.max(n_obs, initial=0)) + 1)
    n = np.arange(n_max + 1, dtype=float)
    q = _statistic(mu[..., None], n, s, b, test_stat)
    with np.errstate(invalid="ignore"):  # q_obs = inf (λ = 0 < n_obs) counts only inf
        threshold = np.where(np.isinf(q_obs), q_obs, q_obs - 1e-9 * np.maximum(1.0, q_obs))
    counted = q >= threshold[..., None]
    clsb = np.minimum(np.sum(stats.poisson.pmf(n, lam_sb[..., None]) * counted, axis=-1), 1.0)
    clb = np.minimum(np.sum(stats.poisson.pmf(n, lam_b[..., None]) * counted, axis=-1), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cls = np.where(clb > 0, clsb / clb, np.nan)
    return clsb[()], clb[()], cls[()]


# --- Feldman-Cousins ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _rejected_spans(n0, cl, nmax):
    r"""For each ordering class j = 0 … nmax: the λ-interval [a_j, c_j] where the Poisson mass
    of the counts ranked above n0 reaches ``cl`` (NaN when it never does).

    Class j (j breakpoints below λ, see :func:`_fc_limits`) ranks {j, …, n0−1} above n0 for
    j < n0, nothing for j = n0 and {n0+1, …, j} for j > n0. Its mass
    S_j(λ) = P(l ≤ N ≤ r | λ) is unimodal in λ (dS/dλ = Pois(l−1) − Pois(r), one sign change),
    peaking at λ* = (r!/(l−1)!)^{1/(r−l+1)}, so {S_j ≥ cl} is one interval."""
    from scipy import optimize, special

    a = np.full(nmax + 1, np.nan)
    c = np.full(nmax + 1, np.nan)
    for j in range(nmax + 1):
        if j == n0:
            continue
        lo, hi = (n0 + 1, j) if j > n0 else (j, n0 - 1)
        if lo == 0:
            a[j] = 0.0  # S = P(N ≤ hi) falls from 1 at λ = 0
            c[j] = float(special.pdtri(hi, cl)) if cl < 1.0 else np.inf
            continue

        def excess(lam, lo=lo, hi=hi):
            return special.pdtr(hi, lam) - special.pdtr(lo - 1, lam) - cl

        peak = math.exp((special.gammaln(hi + 1) - special.gammaln(lo)) / (hi - lo + 1))
        if excess(peak) < 0:
            continue
        a[j] = optimize.brentq(excess, 0.0, peak, xtol=1e-14, rtol=4 * np.finfo(float).eps)
        top = 2.0 * peak + 1.0
        while excess(top) >= 0:
            top *= 2.0
        c[j] = optimize.brentq(excess, peak, top, xtol=1e-14, rtol=4 * np.finfo(float).eps)
    return a, c


def _fc_limits(n0, bs, cl, mu_max):
    r"""Exact (inf, sup) of {μ ∈ [0, mu_max] : n0 ∈ A(μ, b)} for each background in ``bs``.

    n0 is in the acceptance region A(μ) iff the Poisson mass of the counts ranked above it,
    S(μ) = Σ_{m: R(m) > R(n0)} Pois(m | λ), is below ``cl`` (regions are filled in decreasing
    R until their mass reaches cl). With C(m) = m ln m̂ − m̂, m̂ = max(m, b),
    ln R(m) = m ln λ − λ − C(m), and C is convex, so R(m) = R(n0) at the single point
    λ_m = exp[(C(m) − C(n0)) / (m − n0)], nondecreasing in m. Between consecutive λ_m the
    ranked set — hence S — depends only on the number j of breakpoints below λ: the set is
    contiguous next to n0. So the μ-set of n0 is, exactly, the union over j of
    (λ_(j), λ_(j+1)) minus the span where S_j ≥ cl (:func:`_rejected_spans`), minus b. It can
    have islands (n0 is accepted again in a short μ range above a gap), which is why the paper
    takes the extreme μ whose region contains n0.
    """
    from scipy import special, stats

    bs = np.asarray(bs, dtype=float)
    nmax = max(int(stats.poisson.isf(1e-16, float(bs.max()) + mu_max)) + 10, n0 + 10)
    rej_lo, rej_hi = _rejected_spans(n0, cl, nmax)
    m = np.arange(nmax + 1, dtype=float)
    others = np.arange(nmax + 1) != n0
    col = m[others]
    lower, upper = np.empty(bs.shape), np.empty(bs.shape)
    for start in range(0, bs.size, 256):  # bounded memory: 256 backgrounds at a time
        bb = bs[start : start + 256, None]
        m_hat = np.maximum(m[None, :], bb)
        cc = special.xlogy(m[None, :], m_hat) - m_hat
        with np.errstate(over="ignore"):
            lam_x = np.exp((cc[:, others] - cc[:, [n0]]) / (col - n0))
        # counts at or below b all tie with n0 ≤ b at μ = 0 (R = 1): pin those breakpoints
        lam_x = np.where((col <= bb) & (n0 <= bb), bb, lam_x)
        lam_x = np.maximum.accumulate(lam_x, axis=1)  # sorted in theory; guard rounding
        k = bb.shape[0]
        seg_lo = np.maximum(np.concatenate([np.zeros((k, 1)), lam_x], axis=1), bb)
        seg_hi = np.minimum(np.concatenate([lam_x, np.full((k, 1), np.inf)], axis=1), bb + mu_max)
        valid = seg_lo < seg_hi
        none = np.isnan(rej_lo)[None, :]
        ra, rc = rej_lo[None, :], rej_hi[None, :]
        below = ~none & (seg_lo < np.minimum(ra, seg_hi))  # accepted part left of the span
        above = none | (np.maximum(seg_lo, rc) < seg_hi)  # accepted part right of it (or all)
        sup = np.where(above, seg_hi, np.where(below, np.minimum(ra, seg_hi), np.nan))
        inf = np.where(none | below, seg_lo, np.where(above, np.maximum(seg_lo, rc), np.nan))
        sup = np.where(valid, sup, np.nan)
        inf = np.where(valid, inf, np.nan)
        if np.any(np.all(np.isnan(sup), axis=1)):
            raise RuntimeError(f"no μ in [0, {mu_max}] accepts n = {n0}")  # pragma: no cover
        upper[start : start + 256] = np.nanmax(sup, axis=1) - bb[:, 0]
        lower[start : start + 256] = np.nanmin(inf, axis=1) - bb[:, 0]
    return np.maximum(lower, 0.0), upper


def feldman_cousins_counting(
    n_obs, b, cl=0.90, *, mu_max=None, step=0.005, monotone_in_b=True, b_window=None
):
    r"""Unified (Feldman-Cousins) confidence interval for a Poisson signal mean with known
    background, exact; reproduces Tables IV and VI of Feldman & Cousins, PRD 57 (1998) 3873.

    n ~ Pois(μ + b) with μ ≥ 0 (signal yield, s = 1). For each μ the acceptance region A(μ)
    collects the counts n in decreasing order of

    .. math:: R(n) = \frac{P(n \mid \mu + b)}{P(n \mid \mu_\mathrm{best} + b)}, \qquad
              \mu_\mathrm{best} = \max(0, n - b),

    until its probability reaches ``cl``; the interval for n_obs is [min, max] of the μ whose
    region contains n_obs. The paper ran μ on a 0.005 grid; here the edges are exact
    (closed-form breakpoints of the ordering and root-finding, see :func:`_fc_limits`), i.e.
    the limit of an ever finer grid. The paper's printed edges are these exact edges rounded
    to 2 decimals (e.g. n = 2, b = 0, 90%: 0.5318 → "0.53", where the first accepted grid
    point is 0.535), including the short μ "islands" above a gap that a 0.005 grid can miss.

    Monotonicity in b (``monotone_in_b``, as published): because n is discrete, the upper end
    μ2(n, b) jumps *up* at some b (e.g. 90%, n = 0: 1.08 at b = 2, but 1.26 just above
    b = 2.32). The paper's tables make μ2 non-increasing in b, lengthening such intervals;
    this is reproduced by μ2(n, b) = max over b' = b, b + step, b + 2 step, … of the plain
    μ2(n, b'), with the paper's step 0.005: it gives all 13 lengthened entries of Tables IV
    and VI with n ≤ 10, b ≤ 5 (a coarser b' grid misses some, e.g. 95%, n = 0, b = 2.5:
    1.78, reached at b' = 2.685; the exact supremum over b' misses others, e.g. 90%, n = 0,
    b = 2: 1.2651). The teeth of μ2(n, ·) have decreasing peaks (checked numerically for
    cl = 0.68 … 0.99, n ≤ 40), so scanning b' up to b + ``b_window`` (default
    4 + 1.5 √(n + b + 1), more than the spacing of the teeth) gives the maximum over all
    b' ≥ b. The lower ends never jump up in b (same check) and are not changed.
    ``monotone_in_b=False`` gives the plain construction at this b alone. Lengthening only
    raises coverage, which is ≥ cl either way.

    Args:
        n_obs: observed count (non-negative integer).
        b: known mean background (≥ 0).
        cl: confidence level in (0, 1).
        mu_max: largest μ considered; default n_obs + 5 √(n_obs + 1) + 10, doubled while the
            region of n_obs reaches it. An explicit value that the region reaches raises.
        step: spacing of the b' grid of the monotonicity rule (the paper's 0.005).
        monotone_in_b: make the upper end non-increasing in b as in the published tables.
        b_window: extent of the b' scan above b (default above).

    Returns:
        ``(lower, upper)`` as floats.
    """
    if np.ndim(n_obs):
        raise InvalidArgument("n_obs: one count at a time")
    n0 = int(_check_counts(n_obs, "n_obs"))
    b = float(b)
    if not (math.isfinite(b) and b >= 0):
        raise InvalidArgument(f"b: the background must be finite and >= 0, got {b}")
    cl = float(cl)
    if not 0.0 < cl < 1.0:
        raise InvalidArgument(f"cl: must be in (0, 1), got {cl}")
    if not (math.isfinite(step) and step > 0):
        raise InvalidArgument(f"step: must be > 0, got {step}")
    auto = mu_max is None
    mu_max = n0 + 5.0 * math.sqrt(n0 + 1.0) + 10.0 if auto else float(mu_max)
    if not (math.isfinite(mu_max) and mu_max > 0):
        raise InvalidArgument(f"mu_max: must be > 0, got {mu_max}")
    if b_window is None:
        b_window = 4.0 + 1.5 * math.sqrt(n0 + b + 1.0)
    if not (math.isfinite(b_window) and b_window >= 0):
        raise InvalidArgument(f"b_window: must be >= 0, got {b_window}")
    bs = np.array([b])
    if monotone_in_b:
        bs = b + step * np.arange(int(math.floor(float(b_window) / step)) + 1)
    for _ in range(12):
        lower, upper = _fc_limits(n0, bs, cl, mu_max)
        if np.max(upper) < mu_max * (1.0 - 1e-12):
            break
        if not auto:
            raise InvalidArgument(
                f"mu_max: the acceptance region of n_obs = {n0} still reaches mu = {mu_max}"
            )
        mu_max *= 2.0
    return float(lower[0]), float(np.max(upper))


# --- model check -------------------------------------------------------------------------------
def counting_parameters(model):
    r"""(s, b) of a single-bin model whose only parameter is the POI: ν(μ) = μ s + b.

    Checks that the model (a :class:`jaxlike.model.Likelihood`) has one main bin, no auxiliary
    data, exactly one parameter and that it is the POI, then reads b = ν(0) and s = ν(1) − ν(0)
    from ``model.expected_actualdata`` and checks linearity at μ = 0.5 and 2.5 (relative
    1e-12) and s > 0, b ≥ 0. Such a model is what :func:`counting_statistic`,
    :func:`counting_pvalues` and :func:`feldman_cousins_counting` (with μ s as the signal) treat
    exactly.

    Raises:
        InvalidArgument: naming the condition that fails ("exact counting p-values need a
            single-bin model without nuisance parameters: ...").
    """
    cfg = model.config

    def fail(reason):
        return InvalidArgument(
            "model: exact counting p-values need a single-bin model without nuisance "
            f"parameters: {reason}"
        )

    if cfg.nmaindata != 1:
        raise fail(f"it has {cfg.nmaindata} bins")
    if cfg.poi_index is None:
        raise fail("it has no parameter of interest")
    if cfg.npars != 1:
        raise fail(f"it has {cfg.npars - 1} parameter(s) besides the POI")
    if cfg.nauxdata != 0:
        raise fail(f"it has {cfg.nauxdata} auxiliary data")

    def nu(mu):
        return float(np.asarray(model.expected_actualdata(np.array([mu], dtype=float)))[0])

    b = nu(0.0)
    s = nu(1.0) - b
    for mu in (0.5, 2.5):
        got, want = nu(mu), b + mu * s
        if abs(got - want) > 1e-12 * max(abs(want), abs(b), abs(s), 1e-300):
            raise fail(f"the expected count is not linear in the POI (at {mu}: {got} != {want})")
    if not (math.isfinite(s) and s > 0):
        raise fail(f"the signal yield per unit POI is {s}, not > 0")
    if not (math.isfinite(b) and b >= 0):
        raise fail(f"the background is {b}, not >= 0")
    return s, b
