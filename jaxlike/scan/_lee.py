"""Look-elsewhere effect of a mass scan: global significance from up-crossings or from toys.

A scan over M masses reports the largest local significance u = max_m Z(m). Its *global*
p-value — the probability that background alone gives a maximum ≥ u *anywhere* in the scan —
exceeds the local one p_local = 1 − Φ(u) by the trials factor p_global/p_local.

- :func:`gross_vitells`: the asymptotic estimate of Gross & Vitells (2010) from the number of
  up-crossings N(u0) of a low reference level u0 (:func:`upcrossings`), measured on the observed
  curve or, more stably, averaged over background-only toy curves.
- :func:`scan_toys`: background-only toys of the *whole* scan. Each toy is one Poisson draw of
  the full fine spectrum (:func:`background_expectation`), scanned at every mass with the same
  2-fit local significance as the observed scan
  (:func:`jaxlike.parametric.hypothesis_significance`), so the correlations between
  overlapping windows are those of the real scan. One row of :func:`~jaxlike.stream.run_scan` is
  one toy: its spectrum is generated inside the compiled function from
  ``fold_in(key(seed), toy_index)`` (nothing large is stored, toy k is the same whatever the
  chunking), the masses are vmapped inside the row, and only a few numbers per toy come back.
- :func:`global_significance`: p_global from the toys' maxima, its binomial uncertainty, and the
  Gross–Vitells estimate with ⟨N(u0)⟩ from the same toys for comparison.

Example::

    scan, masses, _ = build_mass_scan(cfg)
    z_obs = np.asarray(mass_scan(scan, masses).significance)
    toys = scan_toys(scan, masses, n_toys=1000, seed=1)
    res = global_significance(z_obs, toys.max_z, toy_upcrossings=toys.n_upcrossings,
                              u0=toys.u0)
    res.z_global, res.trials_factor, res.gv.z_global
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._strict import digest
from ..exceptions import InvalidScanConfig
from ..fit import autodiff_fgh, minimize
from ..parametric import MassScan, hypothesis_significance
from ..shapes import bernstein_integrals, check_windows, fine_cumsum, veto_mask
from ..stream import Progress, compiled, run_scan
from ._mass import scan_digest
from ._results import ToyScan

__all__ = [
    "GlobalSignificance",
    "GrossVitells",
    "background_expectation",
    "global_significance",
    "gross_vitells",
    "scan_toys",
    "upcrossings",
]

#: fits per chunk when scan_toys gets neither chunk_size nor memory_budget_bytes
FITS_PER_CHUNK = 512  # larger vmapped batches run slower on CPU (lockstep while-loops)


def upcrossings(z, u0):
    """Number of up-crossings of level ``u0`` by curves z sampled on ordered masses.

    N(u0) = #{i : z_i < u0 ≤ z_{i+1}} along the last axis (a batch of curves [..., M] gives
    [...]). A NaN sample breaks the curve (no crossing is counted into or out of it). NumPy in,
    NumPy out; JAX arrays (also traced ones) give a JAX array.

    >>> int(upcrossings([0.0, 2.0, 0.5, 1.0, 3.0], 1.0))
    2
    """
    xp = jnp if isinstance(z, jax.Array) else np
    z = xp.asarray(z, dtype=float)
    return xp.sum((z[..., :-1] < u0) & (z[..., 1:] >= u0), axis=-1)


@dataclass(frozen=True)
class GrossVitells:
    """Gross–Vitells estimate (see :func:`gross_vitells`); ``source`` says where ⟨N(u0)⟩ came
    from ("observed", "toys" or "given")."""

    max_z: float
    index: int
    p_local: float
    p_global: float
    z_global: float
    trials_factor: float
    n_upcrossings: float
    u0: float
    source: str


def _curve(z, name) -> np.ndarray:
    z = np.asarray(z, dtype=float).ravel()
    if z.size == 0 or np.all(np.isnan(z)):
        raise InvalidScanConfig(name, "needs at least one non-NaN local significance")
    return z


def _z_of_p(p: float) -> float:
    """Φ⁻¹(1 − p), clipped at 0."""
    import scipy.stats  # here: it costs ~0.4 s of `import jaxlike`

    return max(0.0, float(scipy.stats.norm.isf(p)))


def gross_vitells(z_obs, u0=1.0, toys_z=None, *, mean_upcrossings=None) -> GrossVitells:
    """Global p-value of the largest local significance of a scan (Gross & Vitells 2010).

    For a one-sided q0 scan with one degree of freedom (q0 = Z² for μ̂ > 0, else 0),

        p_global(u) ≈ p_local(u) + ⟨N(u0)⟩ exp(−(u² − u0²)/2),   p_local(u) = 1 − Φ(u),

    with u = max_m Z(m) the largest observed local significance and ⟨N(u0)⟩ the expected
    number of up-crossings of a low reference level u0 by the background-only curve Z(m)
    (:func:`upcrossings`; up-crossings of q0 at u0² are those of the signed Z at u0 > 0). The
    expectation is taken from the observed curve (one sample: noisy), from the mean over
    background-only toy curves ``toys_z`` [T, M] (more stable), or given directly as
    ``mean_upcrossings`` (e.g. the mean of :func:`scan_toys`'s ``n_upcrossings``). The formula
    is an asymptotic upper bound, accurate for u ≫ u0; p_global is clipped at 1, and
    z_global = Φ⁻¹(1 − p_global) at 0. Masses must be ordered; NaNs (failed fits) are ignored.

    Reference: E. Gross, O. Vitells, "Trial factors for the look elsewhere effect in high energy
    physics", Eur. Phys. J. C 70 (2010) 525, arXiv:1005.1891.

    >>> r = gross_vitells([0.0, 3.0, 0.0, 1.5, 0.0], u0=1.0)  # N(1) = 2
    >>> round(r.p_global, 6)  # 1 − Φ(3) + 2 e^{−(9 − 1)/2}
    0.037981
    """
    import scipy.stats  # here: it costs ~0.4 s of `import jaxlike`

    z = _curve(z_obs, "z_obs")
    index = int(np.nanargmax(z))
    u, u0 = float(z[index]), float(u0)
    if mean_upcrossings is not None:
        n_up, source = float(mean_upcrossings), "given"
    elif toys_z is not None:
        n_up, source = float(np.mean(upcrossings(np.atleast_2d(toys_z), u0))), "toys"
    else:
        n_up, source = float(upcrossings(z, u0)), "observed"
    p_local = float(scipy.stats.norm.sf(u))
    p_global = min(1.0, p_local + n_up * math.exp(-(u * u - u0 * u0) / 2.0))
    return GrossVitells(
        max_z=u,
        index=index,
        p_local=p_local,
        p_global=p_global,
        z_global=_z_of_p(p_global),
        trials_factor=p_global / p_local,
        n_upcrossings=n_up,
        u0=u0,
        source=source,
    )


# -- background-only expectation of the full spectrum ------------------------------------------
def _poisson_deviance(counts, nu):
    """2 [ν − n + n log(n/ν)] per bin, as 2 n (x − log1p x), x = (ν − n)/n (no cancellation)."""
    pos = counts > 0
    n = jnp.where(pos, counts, 1.0)
    x = (nu - n) / n
    return 2.0 * jnp.where(pos, n * (x - jnp.log1p(x)), nu)


@partial(jax.jit, static_argnames="maxiter")
@partial(jax.vmap, in_axes=(0, 0, None, None))
def _linear_poisson_fit(basis, counts, keep, maxiter):
    """ML fit ν = T · basis @ a, a ≥ 0 (T = kept total), of one category; basis [N, P]."""
    total = jnp.sum(jnp.where(keep, counts, 0.0))
    scale = jnp.maximum(total, 1.0)
    p = basis.shape[1]
    fixed = jnp.sum(jnp.where(keep[:, None], basis, 0.0), axis=0) <= 0  # no kept bin sees it

    def deviance(a):
        nu = jnp.maximum(scale * (basis @ a), 1e-300)
        return jnp.sum(jnp.where(keep, _poisson_deviance(counts, nu), 0.0))

    x0 = jnp.where(fixed, 0.0, 1.0 / p)
    st = minimize(
        autodiff_fgh(deviance), x0, jnp.zeros(p), jnp.full(p, 10.0), fixed, maxiter=maxiter
    )
    nu = scale * (basis @ st.x)
    kept = jnp.sum(jnp.where(keep, nu, 0.0))
    nu = nu * jnp.where(kept > 0, total / kept, 0.0)  # exact ML normalisation
    return nu, scale * st.x, deviance(st.x), jnp.sum(~fixed), st.converged


def background_expectation(scan: MassScan, order: int = 4, *, include_peaks=True, info=False):
    """A smooth background-only expectation of the full fine spectrum, per category [C, N].

    Choice: a binned Poisson ML fit over the whole spectrum range [x_0, x_N] (fine bins that
    touch a veto are left out of the likelihood) of

        ν_i = Σ_k c_k B_ik (+ Σ_j d_j R_ji),   c_k, d_j ≥ 0,

    B_ik the integral over fine bin i of the Bernstein basis polynomial b_{k,order} (u = scaled
    mass), R_ji the scan's peaking-background templates normalised to unit sum
    (``include_peaks``). The model is linear in non-negative coefficients, so the fit is convex
    and needs no starting shape (flat start, :func:`jaxlike.fit.minimize` with autodiff
    derivatives); ν ≥ 0 everywhere, also inside vetoes (the polynomial is interpolated there).
    Because the overall scale is free, the ML solution has Σ_kept ν = Σ_kept n; the fitted ν is
    rescaled by that exact profile of the normalisation, so this holds to rounding.

    A global low-order polynomial is only an approximation of a real spectrum over a wide range:
    check ``deviance / ndf`` (``info=True``; ≈ 1 for a good description), raise ``order``, or
    pass an expectation of your own (e.g. a template, a fit in pieces) to :func:`scan_toys`.

    Returns the expectation [C, N] (NumPy), with ``info=True`` also a dict with the
    ``coefficients`` [C, P] (counts), Poisson ``deviance`` [C], ``ndf`` [C] and ``converged`` [C].
    """
    order = int(order)
    if not 0 <= order <= 20:
        raise InvalidScanConfig("order", f"must be in 0…20, got {order}")
    edges = jnp.asarray(scan.fine_edges)
    counts = jnp.diff(jnp.asarray(scan.cum_counts), axis=-1)  # [C, N]
    unit = jnp.eye(order + 1)
    poly = jax.vmap(lambda c: bernstein_integrals(edges, c, edges[0], edges[-1]))(unit)
    basis = jnp.broadcast_to((order + 1) * poly.T, (counts.shape[0], *poly.T.shape))  # [C, N, P]
    peaks = jnp.diff(jnp.asarray(scan.cum_peaks), axis=-1)  # [C, K, N]
    if include_peaks and peaks.shape[1]:
        norm = jnp.sum(peaks, axis=-1, keepdims=True)
        peaks = jnp.where(norm > 0, peaks / jnp.where(norm > 0, norm, 1.0), 0.0)
        basis = jnp.concatenate([basis, jnp.swapaxes(peaks, 1, 2)], axis=-1)
    keep = veto_mask(edges, scan.vetoes)
    nu, coeffs, dev, nfree, ok = _linear_poisson_fit(basis, counts, keep, 500)
    ok = np.asarray(ok)
    if not ok.all():
        warnings.warn(
            f"background_expectation: the fit of categories {np.flatnonzero(~ok).tolist()} did "
            "not converge; check the expectation or pass your own",
            RuntimeWarning,
            stacklevel=2,
        )
    nu = np.asarray(nu)
    if not info:
        return nu
    ndf = int(np.sum(np.asarray(keep))) - np.asarray(nfree)
    return nu, {"coefficients": np.asarray(coeffs), "deviance": np.asarray(dev), "ndf": ndf,
                "converged": ok}  # fmt: skip


# -- toys of the whole scan --------------------------------------------------------------------
def _one_toy(scan, masses, expectation, u0, curves, row):
    """Local significance at every mass for toy ``row["toy"]`` of seed ``row["seed"]``."""
    key = jax.random.fold_in(jax.random.key(row["seed"]), row["toy"])
    counts = jax.random.poisson(key, expectation).astype(scan.cum_counts.dtype)
    toy = eqx.tree_at(lambda s: s.cum_counts, scan, fine_cumsum(counts))
    r = jax.vmap(lambda m: hypothesis_significance(toy, m))(masses)
    z = jnp.where(r["converged"], r["significance"], jnp.nan)
    ok = ~jnp.isnan(z)
    zm = jnp.where(ok, z, -jnp.inf)
    i = jnp.argmax(zm)
    out = {
        "max_z": jnp.where(jnp.any(ok), zm[i], jnp.nan),
        "argmax": i,
        "n_upcrossings": upcrossings(z, u0),
        "n_failed": jnp.sum(~ok),
    }
    if curves:
        out["z"] = z
    return out


def _toy_fn(scan, masses, expectation, u0, curves, scan_id):
    """The vmapped toy function, one per (model digest, masses, expectation, u0, curves):
    reusing the same Python function lets JAX reuse its compilation (another seed, more toys
    with ``first_toy``, a resumed store: no recompile; :func:`jaxlike.stream.compiled`)."""

    def build():
        one = partial(_one_toy, scan, jnp.asarray(masses), jnp.asarray(expectation), u0, curves)
        return jax.vmap(one)

    return compiled(("scan_toys", scan_id, digest(masses, expectation), u0, curves), build)


def _check_masses(scan, masses):
    if not isinstance(scan, MassScan):  # an Envelope: which model would generate the toys?
        raise InvalidScanConfig(
            "envelope",
            "toys of a scan (look-elsewhere, toy studies) take one background model; "
            "remove the [envelope] section",
        )
    m = np.asarray(masses, dtype=float).ravel()
    if m.size == 0 or np.any(np.diff(m) <= 0):
        raise InvalidScanConfig("masses", "must be a non-empty, strictly increasing list")
    for i, t in enumerate(scan.tables):
        t.check_range(m, path="masses" if i == 0 else f"tables[{i}]")
    sigma = np.asarray(scan.tables[0](jnp.asarray(m))["sigma"])
    lo, hi = float(scan.window_lo) * sigma, float(scan.window_hi) * sigma
    check_windows(scan.fine_edges, m, lo, hi, scan.n_bins, path="masses")
    return m


def _check_expectation(scan, expectation):
    e = np.asarray(expectation, dtype=float)
    shape = tuple(np.shape(scan.cum_counts)[:-1]) + (np.shape(scan.cum_counts)[-1] - 1,)
    if e.shape != shape:
        raise InvalidScanConfig("expectation", f"must have shape {list(shape)}, got {e.shape}")
    if not np.all(np.isfinite(e)) or np.any(e < 0):
        raise InvalidScanConfig("expectation", "must be finite and non-negative")
    return e


def scan_toys(
    scan: MassScan,
    masses,
    n_toys: int,
    seed: int = 0,
    *,
    expectation=None,
    order: int = 4,
    u0: float = 1.0,
    first_toy: int = 0,
    return_curves: bool = False,
    chunk_size=None,
    memory_budget_bytes=None,
    devices=None,
    progress=True,
    store=None,
    resume=False,
    overwrite=False,
) -> ToyScan:
    """Background-only toys of the whole scan: the largest local significance of each toy.

    Toy k (k = first_toy … first_toy + n_toys − 1) is the fine spectrum n ~ Poisson(expectation)
    drawn with ``jax.random.fold_in(jax.random.key(seed), k)`` (reproducible, independent of the
    chunking and of the device count), scanned with
    :func:`~jaxlike.parametric.hypothesis_significance` at every mass (vmapped). Rows of
    :func:`~jaxlike.stream.run_scan` are toys: one compiled function, ``chunk_size`` toys (×
    len(masses) fits) in memory at a time — default ⌈512 / len(masses)⌉ toys per chunk.
    ``expectation`` [C, N] defaults to :func:`background_expectation` (scan, ``order``).
    Fits that do not converge count as NaN (``n_failed``) and are left out of the maximum.
    Calls with the same scan, masses, expectation, u0 and chunking reuse the compiled function
    (only ``seed``/``first_toy``/``n_toys`` differ). ``store``/``resume``/``overwrite`` keep
    the rows in an HDF5 file as :func:`~jaxlike.stream.run_scan` does.

    Returns a :class:`ToyScan`: ``toy`` [T] indices; ``max_z`` [T] largest local Z; ``argmax``
    [T] its mass index; ``n_upcrossings`` [T] of ``u0``; ``n_failed`` [T]; with
    ``return_curves`` also ``z`` [T, M]; and ``seed``, ``u0``, ``masses``, ``rate`` (toys ×
    masses computed per second, compilation excluded) and ``elapsed_s`` (wall time,
    compilation included).
    """
    m = _check_masses(scan, masses)
    n_toys, first_toy, seed = int(n_toys), int(first_toy), int(seed)
    if n_toys < 1 or first_toy < 0 or first_toy + n_toys > 2**32:
        raise InvalidScanConfig("n_toys", "need n_toys ≥ 1 and toy indices in [0, 2³²)")
    if expectation is None:
        expectation = background_expectation(scan, order)
    e = _check_expectation(scan, expectation)
    scan_id = scan_digest(scan)
    fn = _toy_fn(scan, m, e, float(u0), bool(return_curves), scan_id)
    if chunk_size is None and memory_budget_bytes is None:
        chunk_size = -(-FITS_PER_CHUNK // m.size)
    toys = np.arange(first_toy, first_toy + n_toys, dtype=np.int64)
    rows = {"toy": toys, "seed": np.full(n_toys, seed, dtype=np.int64)}
    if isinstance(progress, Progress):
        reporter = progress
    else:
        reporter = Progress(enabled=bool(progress), label="toys")
    ident = {"kind": "lee_toys", "u0": float(u0), "masses": m.tolist(), "curves": return_curves}
    t0 = time.monotonic()
    out = run_scan(
        fn,
        rows,
        store=store,
        resume=resume,
        overwrite=overwrite,
        chunk_size=chunk_size,
        memory_budget_bytes=memory_budget_bytes,
        devices=devices,
        progress=reporter,
        config=ident,
        model_digest=scan_id + digest(e),
        attrs={"kind": "lee_toys", "seed": seed},
    )
    now = time.monotonic()
    run_s = now - reporter.t0  # run_scan starts the reporter after compiling
    rate = reporter.computed / run_s if run_s > 0 else math.nan
    return ToyScan.from_results(
        out, toy=toys, seed=seed, u0=float(u0), masses=m, rate=rate * m.size, elapsed_s=now - t0
    )


# -- global significance from toys ---------------------------------------------------------------
@dataclass(frozen=True)
class GlobalSignificance:
    """Toy-based global significance (see :func:`global_significance`)."""

    max_z: float
    index: int | None
    p_local: float
    p_global: float
    p_global_err: float
    p_global_interval: tuple[float, float]
    z_global: float
    z_global_interval: tuple[float, float]
    trials_factor: float
    n_toys: int
    n_exceed: int
    gv: GrossVitells | None


def global_significance(
    z_obs, toy_max_z, *, toy_upcrossings=None, u0=1.0, plus_one=True, cl=0.6827
) -> GlobalSignificance:
    """Global p-value of the observed maximum local significance from background-only toys.

    u = max Z of ``z_obs`` (a curve [M], NaNs ignored, or the maximum itself); with k of the n
    toys (NaN maxima dropped) having max Z ≥ u,

        p_global = (1 + k) / (1 + n)   (``plus_one``, default)   or   k / n,

    the first being the usual Monte-Carlo p-value: never 0, and a valid (slightly conservative)
    p-value when the observation is exchangeable with the toys; both agree for k, n ≫ 1.
    Uncertainty: the binomial ``p_global_err`` = √(p̂(1 − p̂)/n), p̂ = k/n, and the
    Clopper–Pearson interval of p̂ at ``cl``. z_global = Φ⁻¹(1 − p_global) ≥ 0 (its interval
    from the Clopper–Pearson bounds); trials factor = p_global / p_local, p_local = 1 − Φ(u).

    ``gv``: the :func:`gross_vitells` estimate at the same u with ⟨N(u0)⟩ the mean of
    ``toy_upcrossings`` (the toys' ``n_upcrossings`` at ``u0``), or from the observed curve
    without them (None if ``z_obs`` is a single number).
    """
    import scipy.stats  # here: it costs ~0.4 s of `import jaxlike`

    z = _curve(z_obs, "z_obs")
    index = int(np.nanargmax(z)) if z.size > 1 else None
    u = float(np.nanmax(z))
    t = np.asarray(toy_max_z, dtype=float).ravel()
    t = t[~np.isnan(t)]
    n = t.size
    if n == 0:
        raise InvalidScanConfig("toy_max_z", "needs at least one toy with a finite maximum")
    k = int(np.sum(t >= u))
    p = (1 + k) / (1 + n) if plus_one else k / n
    alpha = 1.0 - cl
    lo = float(scipy.stats.beta.ppf(alpha / 2, k, n - k + 1)) if k > 0 else 0.0
    hi = float(scipy.stats.beta.ppf(1 - alpha / 2, k + 1, n - k)) if k < n else 1.0
    p_local = float(scipy.stats.norm.sf(u))
    if toy_upcrossings is not None:
        gv = gross_vitells(z, u0, mean_upcrossings=float(np.mean(toy_upcrossings)))
    else:
        gv = gross_vitells(z, u0) if z.size > 1 else None
    return GlobalSignificance(
        max_z=u,
        index=index,
        p_local=p_local,
        p_global=p,
        p_global_err=math.sqrt(k / n * (1 - k / n) / n),
        p_global_interval=(lo, hi),
        z_global=_z_of_p(p),
        z_global_interval=(_z_of_p(hi), _z_of_p(lo) if lo > 0 else math.inf),
        trials_factor=p / p_local,
        n_toys=n,
        n_exceed=k,
        gv=gv,
    )
