r"""Bias, pull and coverage studies at every mass of a parametric mass scan, streamed to HDF5.

At mass m the study of :mod:`jaxlike.infer._study` runs on the window model
``scan.window_model(m)`` and its observed window counts: N toys at μ_t (scalar, or one value
per mass), generated at θ̂̂(μ_t) (``toy_pars="profiled"``) or at the initial values with μ = μ_t
(``"init"``), each fitted freely (μ signed: μ ≥ −μ_max by default) and at μ_t. Per toy μ̂, σ̂,
pull = (μ̂ − μ_t)/σ̂ and t = 2NLL(μ_t) − 2NLL(μ̂); per mass the bias, relative bias, pull
mean and width and the Hesse and profile-likelihood coverages with their MC errors.

Streaming. One row of :func:`~jaxlike.stream.run_scan` is a block of B consecutive toys at one
mass (B = ⌈N / ⌈N / 64⌉⌉, rows mass-major): the window model, the generating fit and the 2B
toy fits run inside one compiled function, vmapped over the toys of a row and over the rows of
a chunk. A killed study resumes where it stopped (``resume=True``); its identity (model
digest, masses, μ_t, N, seed, ``toy_pars``, ``signed``, ``search``, B) is checked first. The
file holds per row ``mu_hat``, ``mu_err``, ``t_true``, ``converged`` [B], the generating point
``gen`` [P] and ``gen_converged``; the summaries are recomputed from the toys on reading (so
the confidence level ``cl`` of the coverages can be changed afterwards).

Seeds. Toy i at every mass uses the key ``fold_in(fold_in(PRNGKey(seed), 1), i)`` of
:func:`jaxlike.infer.toy_study`: the per-mass summaries equal ``toy_study(scan.window_model(m),
window.make_data(), seed=seed, ...)`` (up to the last digits of batched fits), and the toys of
different masses are common random numbers (correlated, so differences between masses are
measured more precisely; every per-mass summary is still an honest N-toy estimate).
"""

from __future__ import annotations

import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..exceptions import InvalidArgument, InvalidScanFile
from ..fit import prepare_fit_inputs
from ..infer import (
    TOY_PARS,
    ToyStudyResult,
    make_study_result,
    signed_bounds,
    study_generator,
    study_toy_fits,
    toy_study_summary,
)
from ..parametric import MassScan
from ..stream import Progress, compiled, read_results, run_scan
from ._identity import ScanIdentity
from ._lee import _check_masses
from ._mass import scan_digest

__all__ = [
    "MassToyStudyResult",
    "TOYS_PER_ROW",
    "mass_toy_study",
    "mass_toy_study_identity",
    "read_toy_study",
    "study_from_rows",
    "toy_blocks",
]

#: at most this many toys per stored row (one mass)
TOYS_PER_ROW = 64
#: toy fits per chunk when mass_toy_study gets no chunk_size (CPU: lockstep while-loops)
FITS_PER_CHUNK = 512


class MassToyStudyResult(ToyStudyResult):
    """A :class:`~jaxlike.infer.ToyStudyResult` per mass: summaries [H], toys [H, N],
    ``gen`` [H, P]; plus ``masses`` [H], ``rate`` (toys per second computed, compilation
    excluded) and ``elapsed_s`` (wall time). ``at(i)`` is the study of mass ``masses[i]``."""

    masses: jax.Array | None = None
    rate: float = eqx.field(static=True, default=math.nan)
    elapsed_s: float = eqx.field(static=True, default=math.nan)

    def at(self, i: int) -> ToyStudyResult:
        """The :class:`~jaxlike.infer.ToyStudyResult` of mass index ``i``."""
        names = [f for f in ToyStudyResult.__dataclass_fields__]
        values = {k: getattr(self, k) for k in names}
        return ToyStudyResult(
            **{k: (v[i] if isinstance(v, jax.Array) else v) for k, v in values.items()}
        )


def toy_blocks(ntoys: int) -> tuple[int, int]:
    """(B, K): K rows of B toys per mass, B = ⌈N / K⌉ with K = ⌈N / :data:`TOYS_PER_ROW`⌉
    (the last row's extra K·B − N toys are computed and dropped)."""
    k = -(-int(ntoys) // TOYS_PER_ROW)
    return -(-int(ntoys) // k), k


def _mu_column(mu_true, n_masses: int) -> np.ndarray:
    if isinstance(mu_true, str | bool) or mu_true is None:
        raise InvalidArgument(f"mu_true must be a number or one per mass, got {mu_true!r}")
    try:
        mu = np.asarray(mu_true, dtype=float)
    except (TypeError, ValueError):
        raise InvalidArgument(
            f"mu_true must be a number or one per mass, got {mu_true!r}"
        ) from None
    if mu.ndim > 1 or (mu.ndim == 1 and mu.size != n_masses):
        raise InvalidArgument(f"mu_true must be a number or {n_masses} values (one per mass)")
    if not np.all(np.isfinite(mu)):
        raise InvalidArgument("mu_true must be finite")
    return np.broadcast_to(mu, (n_masses,)).astype(float)


def _check(ntoys, seed, toy_pars):
    if isinstance(ntoys, bool) or not isinstance(ntoys, int | np.integer) or ntoys < 1:
        raise InvalidArgument(f"ntoys must be a positive integer, got {ntoys!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidArgument(f"seed must be a non-negative integer, got {seed!r}")
    if int(ntoys) > 2**31 or int(seed) >= 2**63:
        raise InvalidArgument("ntoys must be < 2^31 and seed < 2^63")
    if toy_pars not in TOY_PARS:
        raise InvalidArgument(f"toy_pars must be one of {TOY_PARS}, got {toy_pars!r}")


def mass_toy_study_identity(
    scan: MassScan,
    masses,
    *,
    mu_true,
    ntoys: int,
    seed: int = 0,
    toy_pars: str = "profiled",
    signed: bool = True,
    search: bool = False,
    config=None,
) -> ScanIdentity:
    """What :func:`mass_toy_study` stores as its identity: the configuration ``{**config,
    "kind": "toy_study", "mu_true", "ntoys", "seed", "toy_pars", "signed", "search",
    "block"}``, the
    hypotheses (rows: ``mass``, ``mu_true``, ``seed``, ``first`` toy index) and the model
    digest; :meth:`~jaxlike.scan.ScanIdentity.check_resume` refuses another study's file."""
    _check(ntoys, seed, toy_pars)
    m = _check_masses(scan, masses)
    mu = _mu_column(mu_true, m.size)
    block, k = toy_blocks(ntoys)
    hyps = {
        "mass": np.repeat(m, k),
        "mu_true": np.repeat(mu, k),
        "seed": np.full(m.size * k, int(seed), dtype=np.int64),
        "first": np.tile(np.arange(k, dtype=np.int64) * block, m.size),
    }
    cfg = {
        **(config or {}),
        "kind": "toy_study",
        "mu_true": float(mu[0]) if np.all(mu == mu[0]) else mu.tolist(),
        "ntoys": int(ntoys),
        "seed": int(seed),
        "toy_pars": toy_pars,
        "signed": bool(signed),
        "search": bool(search),
        "block": block,
    }
    added = ("kind", "mu_true", "ntoys", "seed", "toy_pars", "signed", "search", "block")
    return ScanIdentity(config=cfg, hypotheses=hyps, digest=lambda: scan_digest(scan), added=added)


def _row(scan, toy_pars, signed, search, block, h):
    """One row: B toys at mass ``h["mass"]`` (see the module docstring)."""
    model = scan.window_model(h["mass"])
    d, init, lo, hi, fixed = prepare_fit_inputs(model, model.make_data())
    poi = model.config.poi_index
    if signed:
        lo = signed_bounds(lo, hi, poi)
    mu = h["mu_true"]
    gen, gen_ok = study_generator(model, d, init, lo, hi, fixed, poi, mu, toy_pars, search)
    key = jax.random.PRNGKey(h["seed"])
    idx = h["first"] + jnp.arange(block, dtype=h["first"].dtype)
    out = study_toy_fits(model, gen, key, idx, mu, lo, hi, fixed, poi, search)
    return {**out, "gen": gen, "gen_converged": gen_ok}


def _study_fn(scan, toy_pars, signed, search, block, digest):
    """The vmapped row function, one per (model digest, settings): later studies of the same
    scan (other seed, μ_t, masses or more toys with the same B) reuse its compilation."""
    return compiled(
        ("mass_toy_study", digest, toy_pars, bool(signed), bool(search), block),
        lambda: jax.vmap(lambda h: _row(scan, toy_pars, signed, search, block, h)),
    )


def mass_toy_study(
    scan: MassScan,
    masses,
    *,
    mu_true,
    ntoys: int,
    seed: int = 0,
    toy_pars: str = "profiled",
    cl: float = 0.6827,
    signed: bool = True,
    search: bool = False,
    store=None,
    resume=False,
    overwrite=False,
    chunk_size=None,
    memory_budget_bytes=None,
    devices=None,
    progress=True,
    config=None,
) -> MassToyStudyResult:
    """The toy study of :func:`jaxlike.infer.toy_study` at every mass of ``masses`` (strictly
    increasing, inside the scan's tables), inside one compiled function and streamed with
    :func:`~jaxlike.stream.run_scan` (module docstring).

    Args:
        scan, masses: the :class:`~jaxlike.parametric.MassScan` and the masses [H].
        mu_true: the true signal strength: a number, or one per mass [H] (e.g. the median
            expected limit ``mass_scan(scan, masses).ul_exp[:, 0, 2]``).
        ntoys, seed, toy_pars, signed, search: as for :func:`~jaxlike.infer.toy_study`.
        cl: confidence level of the coverages (summaries only; not part of the identity).
        store, resume, overwrite, chunk_size, memory_budget_bytes, devices, progress: as for
            :func:`~jaxlike.stream.run_scan`; a row is a block of toys at one mass, default
            chunk ⌈512 / 2B⌉ rows.
        config: extra configuration stored (and checked on resume) with the identity.

    Returns a :class:`MassToyStudyResult`.
    """
    if isinstance(cl, bool) or not isinstance(cl, int | float | np.floating) or not 0 < cl < 1:
        raise InvalidArgument(f"cl must lie strictly between 0 and 1, got {cl!r}")
    ident = mass_toy_study_identity(
        scan, masses, mu_true=mu_true, ntoys=ntoys, seed=seed, toy_pars=toy_pars,
        signed=signed, search=search, config=config,
    )  # fmt: skip
    block, _ = toy_blocks(ntoys)
    digest = ident.digest()
    fn = _study_fn(scan, toy_pars, signed, search, block, digest)
    if chunk_size is None and memory_budget_bytes is None:
        chunk_size = max(1, FITS_PER_CHUNK // (2 * block))
    reporter = progress if isinstance(progress, Progress) else None
    if reporter is None:
        reporter = Progress(enabled=bool(progress), label="toy study")
    t0 = time.monotonic()
    out = run_scan(
        fn,
        ident.hypotheses,
        store=store,
        resume=resume,
        overwrite=overwrite,
        chunk_size=chunk_size,
        memory_budget_bytes=memory_budget_bytes,
        devices=devices,
        progress=reporter,
        config=ident.config,
        model_digest=digest,
        attrs={"kind": "toy_study"},
    )
    now = time.monotonic()
    run_s = now - reporter.t0
    rate = reporter.computed * block / run_s if run_s > 0 and reporter.computed else math.nan
    return study_from_rows(out, ident.hypotheses, ident.config, cl=cl, rate=rate,
                           elapsed_s=now - t0)  # fmt: skip


def study_from_rows(results, hypotheses, config, *, cl=0.6827, rate=math.nan,
                    elapsed_s=math.nan) -> MassToyStudyResult:  # fmt: skip
    """A :class:`MassToyStudyResult` from the rows of a study: ``results`` and ``hypotheses``
    ``{name: [R, ...]}`` and the identity ``config`` (as :func:`mass_toy_study_identity`
    makes it, or as stored in the file): the toys reassembled to [H, N], the summaries at
    ``cl``."""
    n = int(config["ntoys"])
    block, k = toy_blocks(n)
    masses = np.asarray(hypotheses["mass"], float)[::k]
    h = masses.size
    per = {}
    for name in ("mu_hat", "mu_err", "t_true", "converged"):
        per[name] = np.asarray(results[name]).reshape(h, k * block)[:, :n]
    gen = np.asarray(results["gen"])[::k]
    gen_ok = np.asarray(results["gen_converged"], bool).reshape(h, k).all(axis=1)
    mu = np.asarray(hypotheses["mu_true"], float)[::k]
    s = toy_study_summary(per["mu_hat"], per["mu_err"], per["t_true"], per["converged"], mu, cl)
    base = make_study_result(per, s, mu, gen, gen_ok, ntoys=n, seed=int(config["seed"]),
                             toy_pars=str(config["toy_pars"]), cl=float(cl),
                             signed=bool(config["signed"]))  # fmt: skip
    fields = {f: getattr(base, f) for f in ToyStudyResult.__dataclass_fields__}
    return MassToyStudyResult(
        **fields, masses=jnp.asarray(masses), rate=float(rate), elapsed_s=float(elapsed_s)
    )


def read_toy_study(path, cl: float = 0.6827) -> MassToyStudyResult:
    """The :class:`MassToyStudyResult` of a study file written by :func:`mass_toy_study`
    (every row must be done), with the coverages at ``cl``."""
    hyps, results, attrs = read_results(path)
    if attrs["config"].get("kind") != "toy_study":
        raise InvalidScanFile(
            f"{path}: not a toy study file (kind {attrs['config'].get('kind')!r})"
        )
    if not np.all(attrs["done"]):
        missing = int(np.sum(~np.asarray(attrs["done"])))
        raise InvalidScanFile(f"{path}: {missing} rows are not done; resume the study first")
    return study_from_rows(results, hyps, attrs["config"], cl=cl)
