"""Bayesian benchmarks on the Belle II B⁺→K⁺νν̄ WET model: jaxlike NUTS beside emcee on pyhf.

The model is ``jaxlike.jobs.belle2_wet_workspace`` (239 parameters: C_V, C_S, C_T ∈ [0, 20]
with uniform priors, 8 unit-Gaussian form-factor nuisances ``ff_bsz2015`` and the 228 published
nuisance parameters; the signal of 3 channels is multiplied per bin by
r_i(C, FF) = Σ_j n_ij w_j / Σ_j n_ij).

A. jaxlike ``sample_posterior``: 4 chains × (1000 warmup + 2000 draws), diagonal mass matrix
   (with a dense one, NumPyro's first warmup windows give rank-deficient mass matrices on 239
   parameters and every iteration runs to tree depth 10). Target: ≤ 10 min wall on 2 CPU
   cores, compilation and the starting MLE fit included, and R̂ < 1.01 for C_V, C_S, C_T.
   Reported: wall, ESS (min over the three coefficients, min over all parameters), ESS/s,
   divergences, R̂.
B. The peer: emcee (affine-invariant ensemble, gradient-free) on **pyhf's** logpdf of the same
   model. pyhf has no reweight modifier, so the pyhf model is the published workspace with
   ``mu`` and ``corr_ff_c1..3`` removed and one ``shapefactor`` per reweighted channel on the
   signal; at each point the shapefactor entries are set to r_i(C, FF) (the weights w_j from
   jaxlike's rate, jitted once and vmapped over the walkers; r = n·w / Σn in NumPy) and the
   unit-Gaussian constraint of the 8 form-factor nuisances is added. A shapefactor leaves the
   templates, hence the staterror σ, unchanged, so this equals jaxlike's logpdf exactly; the
   script checks it (and the full log posterior) at random points first. pyhf runs its numpy
   backend, batched over half the ensemble (emcee's ``vectorize``); 2 × 239 walkers start
   from the Gaussian approximation at the MLE (jaxlike's fit covariance). emcee runs for a
   fixed wall-clock budget; the first third is discarded, the integrated autocorrelation time
   τ is emcee's ``integrated_time(tol=0)`` (what ``get_autocorr_time(tol=0)`` computes; the
   positions are kept by the script, as emcee's backend would preallocate the run) and
   ESS = walkers × kept steps / τ. When the
   kept chain is shorter than 50 τ (emcee's reliability rule) τ is underestimated, so the ESS
   is an upper bound and the ratio a lower bound; the table says so.
C. ``jaxlike.scan.profile_grid``: 100 × 100 (C_V, C_T) profile-likelihood grid with C_S fixed
   at 0, and with C_S profiled, each in a fresh process (stopped after ``--grid-timeout``,
   default 300 s). Target: ≤ 60 s for the ``profile_grid`` call (compilation included).

Usage::

    python benchmarks/bench_bayes.py [--quick] [--cores 2] [--emcee-seconds S] [--data DIR]
                                     [--json out.json]

``--quick`` (~5 min): NUTS 4 × (250 + 500), emcee 60 s, grids 25 × 25. The targets are those
of the full run; quick rows are labelled (the grid's target is not judged in quick mode).
"""

from __future__ import annotations

import os
import sys
import time

T_START = time.perf_counter()
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


from _common import pin_cores  # noqa: E402  (no JAX import there)

CORES = pin_cores(sys.argv)

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import warnings  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    default_data_dir,
    describe_machine,
    fmt_machine,
    fmt_s,
    load_1min,
    print_rows,
    run_child,
    verdict,
)

import jaxlike  # noqa: E402
from jaxlike.bayes import log_posterior, sample_posterior  # noqa: E402
from jaxlike.jobs import BELLE2_MAPS, belle2_wet_workspace, read_number_density  # noqa: E402
from jaxlike.jobs.belle2 import REMOVED  # noqa: E402

COEFFS = ("C_V", "C_S", "C_T")
FF = "ff_bsz2015"
TARGET_NUTS_S = 600.0
TARGET_RHAT = 1.01
TARGET_GRID_S = 60.0
COLUMNS = ("task", "jaxlike", "peer (emcee on pyhf-numpy)", "ratio", "target", "result",
           "notes")  # fmt: skip


# ----------------------------------------------------------------------------- A. jaxlike NUTS
def run_nuts(model, data, chains, warmup, draws):
    """``sample_posterior`` once, in this fresh process (compilation + MLE fit included)."""
    t = time.perf_counter()
    post = sample_posterior(model, data, num_chains=chains, num_warmup=warmup,
                            num_samples=draws, dense_mass=False, seed=0)  # fmt: skip
    wall = time.perf_counter() - t
    k = [post.index(n) for n in COEFFS]
    ess_all = post.ess[np.asarray(post.sampled)]
    pooled = post.samples.reshape(-1, post.samples.shape[-1])
    return {
        "wall_s": wall,
        "wall_time_attr_s": float(post.wall_time),
        "rhat": {n: float(post.rhat[i]) for n, i in zip(COEFFS, k, strict=True)},
        "rhat_max_all": float(np.nanmax(post.rhat)),
        "ess": {n: float(post.ess[i]) for n, i in zip(COEFFS, k, strict=True)},
        "ess_min_all": float(np.nanmin(ess_all)),
        "ess_min_all_name": post.par_names[
            int(np.flatnonzero(post.sampled)[np.nanargmin(ess_all)])
        ],
        "divergences": int(np.sum(post.divergences)),
        "accept_prob": [round(float(a), 3) for a in post.accept_prob],
        "step_size": [round(float(s), 4) for s in post.step_size],
        "quantiles": {
            n: np.quantile(pooled[:, i], [0.05, 0.5, 0.95]).tolist()
            for n, i in zip(COEFFS, k, strict=True)
        },  # fmt: skip
        "draws": chains * draws,
    }


# ----------------------------------------------------------------------------- B. pyhf + emcee
class PyhfWet:
    """pyhf-numpy log posterior of the WET model (shapefactor r_i on the reweighted signals)."""

    def __init__(self, data_dir: Path, model, batch: int):
        import pyhf

        pyhf.set_backend("numpy")
        spec = json.loads((data_dir / "combined_likelihood.json").read_text())
        self.maps = {}
        for ch in spec["channels"]:
            prefix = next((p for p in BELLE2_MAPS if ch["name"].startswith(p)), None)
            for s in ch["samples"]:
                s["modifiers"] = [m for m in s["modifiers"] if m["name"] not in REMOVED]
                if prefix is None or s["name"] != BELLE2_MAPS[prefix][0]:
                    continue
                name = "rw_" + prefix.strip("_")
                s["modifiers"].append({"name": name, "type": "shapefactor", "data": None})
                n = read_number_density(data_dir / BELLE2_MAPS[prefix][1], len(s["data"]))
                self.maps[name] = n
        for meas in spec["measurements"]:
            pars = meas["config"].get("parameters", [])
            meas["config"]["parameters"] = [p for p in pars if p["name"] not in REMOVED]
        ws = pyhf.Workspace(spec)
        self.batch = batch
        self.one = ws.model(poi_name=None)
        self.many = ws.model(poi_name=None, batch_size=batch)
        self.data = np.asarray(ws.data(self.one), float)
        cfg = model.config
        pc = self.one.config
        # θ (jaxlike order) → pyhf vector: gather for ordinary parameters, r_i for shapefactors
        self.gather = np.zeros(pc.npars, int)
        self.rw_slices = {}
        for name in pc.par_order:
            sl = pc.par_slice(name)
            if name in self.maps:
                self.rw_slices[name] = sl
            else:
                self.gather[sl] = np.arange(cfg.par_slice(name).start, cfg.par_slice(name).stop)
        (group,) = model.reweight
        self.phi_idx = np.asarray(group.par_indices)
        self.weights = jax.jit(jax.vmap(lambda phi: group.weights_of_phi(phi)))
        self.ff = np.arange(cfg.par_slice(FF).start, cfg.par_slice(FF).stop)
        bounds = np.asarray(cfg.suggested_bounds(), float).reshape(-1, 2)
        self.lo, self.hi = bounds[:, 0], bounds[:, 1]
        self.log_prior_c = -sum(np.log(self.hi[cfg.par_index(c)] - self.lo[cfg.par_index(c)])
                                for c in COEFFS)  # fmt: skip
        self.nevals = 0

    def to_pyhf(self, theta):
        """[n, 239] θ → [n, npars_pyhf] with the shapefactors set to r_i(C, FF)."""
        w = np.asarray(self.weights(jnp.asarray(theta[:, self.phi_idx])))  # [n, J]
        out = theta[:, self.gather]
        for name, sl in self.rw_slices.items():
            n = self.maps[name]
            tot = n.sum(axis=1)
            r = (w @ n.T) / np.where(tot > 0, tot, 1.0)
            out[:, sl] = np.where(tot > 0, r, 1.0)
        return out

    def logpdf(self, theta):
        """pyhf logpdf + the unit-Gaussian constraint of the FF nuisances, [n, 239] → [n]."""
        theta = np.atleast_2d(np.asarray(theta, float))
        p = self.to_pyhf(theta)
        out = np.empty(len(theta))
        for a in range(0, len(theta), self.batch):
            chunk = p[a : a + self.batch]
            m = len(chunk)
            if m == self.batch:
                out[a : a + m] = self.many.logpdf(chunk, self.data)
            else:
                out[a : a + m] = [self.one.logpdf(row, self.data)[0] for row in chunk]
        x = theta[:, self.ff]
        self.nevals += len(theta)
        return out + np.sum(-0.5 * x**2 - 0.5 * np.log(2 * np.pi), axis=1)

    def log_prob(self, theta):
        """Log posterior for emcee (vectorised): −inf outside the bounds, uniform priors on C."""
        theta = np.atleast_2d(np.asarray(theta, float))
        ok = np.all((theta >= self.lo) & (theta <= self.hi), axis=1)
        out = np.full(len(theta), -np.inf)
        if ok.any():
            v = self.logpdf(theta[ok]) + self.log_prior_c
            out[ok] = np.where(np.isfinite(v), v, -np.inf)
        return out


def check_pyhf(peer, model, data, fit, rng, n=5):
    """Relative difference of pyhf's logpdf (and log posterior) and jaxlike's at n points:
    the MLE, then draws from the fit's Gaussian approximation with C uniform in [0, 20]."""
    pts = draw_init(fit, peer, rng, n)
    pts[0] = np.clip(np.asarray(fit.bestfit, float), peer.lo, peer.hi)
    for k in range(1, n):
        for c in COEFFS:
            pts[k, model.config.par_index(c)] = rng.uniform(0, 20)
    jl = np.asarray(jax.vmap(lambda p: model.logpdf(p, data))(jnp.asarray(pts)))
    jp = np.asarray(log_posterior(model, data, jnp.asarray(pts)))
    ph = peer.logpdf(pts)
    pp = peer.log_prob(pts)
    rel = np.abs(ph - jl) / np.abs(jl)
    relp = np.abs(pp - jp) / np.abs(jp)
    for k in range(n):
        c = ", ".join(f"{c}={pts[k, model.config.par_index(c)]:.2f}" for c in COEFFS)
        print(f"  point {k} ({c}): jaxlike logpdf {jl[k]:.10f}, pyhf {ph[k]:.10f}, "
              f"rel {rel[k]:.1e}; log posterior rel {relp[k]:.1e}")  # fmt: skip
    return float(rel.max()), float(relp.max())


def draw_init(fit, peer, rng, n):
    """n draws from N(θ̂, V) (V: the fit covariance, eigenvalues clipped at 0), reflected into
    the bounds at the lower edge and clipped inside at the upper one."""
    mu = np.asarray(fit.bestfit, float)
    cov = np.asarray(fit.covariance, float)
    cov = 0.5 * (cov + cov.T)
    val, vec = np.linalg.eigh(cov)
    z = rng.standard_normal((n, mu.size)) * np.sqrt(np.clip(val, 0, None))
    x = mu + z @ vec.T
    x = peer.lo + np.abs(x - peer.lo)
    span = peer.hi - peer.lo
    return np.minimum(x, peer.hi - 1e-6 * span)


def run_emcee(peer, fit, seconds, nwalkers, rng):
    """emcee for ``seconds`` of wall clock; τ and ESS on the last two thirds."""
    import emcee

    ndim = peer.lo.size
    p0 = draw_init(fit, peer, rng, nwalkers)
    lp0 = peer.log_prob(p0)
    bad = ~np.isfinite(lp0)
    while bad.any():  # redraw the few starting points that fall outside the support
        p0[bad] = draw_init(fit, peer, rng, int(bad.sum()))
        lp0[bad] = peer.log_prob(p0[bad])
        bad = ~np.isfinite(lp0)
    sampler = emcee.EnsembleSampler(nwalkers, ndim, peer.log_prob, vectorize=True)
    sampler.random_state = np.random.RandomState(int(rng.integers(2**31))).get_state()
    # positions kept here as float32 (emcee's own backend preallocates the whole run)
    chain, prev, accepted = [], p0, 0
    peer.nevals = 0
    t = time.perf_counter()
    start = emcee.State(p0, log_prob=lp0)
    for state in sampler.sample(start, iterations=10**9, store=False):
        chain.append(state.coords.astype(np.float32))
        accepted += int(np.sum(np.any(state.coords != prev, axis=1)))
        prev = state.coords.copy()  # emcee updates the positions in place
        if time.perf_counter() - t >= seconds:
            break
    wall = time.perf_counter() - t
    steps = len(chain)
    burn = steps // 3
    kept = steps - burn
    x = np.stack(chain[burn:])  # [kept, walkers, ndim]
    del chain
    tau = emcee.autocorr.integrated_time(x, tol=0)  # what get_autocorr_time(tol=0) returns
    stuck = np.all(x == x[:1], axis=0)  # [walkers, ndim]: never moved in the kept part
    n_stuck = int(stuck.any(axis=1).sum())
    if not np.all(np.isfinite(tau)) and n_stuck < nwalkers:  # a stuck walker: acf / 0
        tau = emcee.autocorr.integrated_time(x[:, ~stuck.any(axis=1)], tol=0)
    ess = nwalkers * kept / tau
    # cross-check with NUTS's estimator: Stan's multi-chain ESS and split R̂, walkers as chains
    # (walkers are not independent, but walkers that have not mixed show up in R̂ and ESS)
    from numpyro.diagnostics import effective_sample_size, split_gelman_rubin

    ess_w, rhat_w = np.empty(ndim), np.empty(ndim)
    for j in range(ndim):
        xj = np.ascontiguousarray(x[:, :, j].T, dtype=float)
        ess_w[j] = effective_sample_size(xj)
        rhat_w[j] = split_gelman_rubin(xj)
    return {"wall_s": wall, "steps": steps, "burn": burn, "kept": kept, "nwalkers": nwalkers,
            "nevals": peer.nevals, "acceptance": accepted / (steps * nwalkers), "tau": tau,
            "ess": ess, "n_stuck": n_stuck, "ess_w": ess_w, "rhat_w": rhat_w,
            "chain_over_tau": kept / np.max(tau),
            "flat": x.reshape(-1, ndim)}  # fmt: skip


# ----------------------------------------------------------------------------- C. profile grid
def _profile_grid():
    """``jaxlike.scan.profile_grid`` (or its module while it is not exported yet), else None."""
    try:
        from jaxlike.scan import profile_grid
    except ImportError:
        try:
            from jaxlike.scan import profile_grid
        except ImportError:
            return None
    return profile_grid


def run_grid(model, data, n, profile_cs):
    """One call of ``profile_grid`` (first call in this process: trace + compile + run)."""
    vals = np.linspace(0.0, 20.0, n)
    fixed = {} if profile_cs else {"C_S": 0.0}
    t = time.perf_counter()
    res = _profile_grid()(model, data, x=("C_V", vals), y=("C_T", vals), fixed=fixed,
                          progress=False)  # fmt: skip
    first = time.perf_counter() - t
    conv = np.asarray(res.converged)
    return {"first_s": first, "n": n, "profile_cs": profile_cs,
            "converged": int(conv.sum()), "points": int(conv.size),
            "best": {k: float(v) for k, v in res.best.items()}, "best_source": res.best_source,
            "finite": int(np.isfinite(np.asarray(res.twice_nll)).sum()),
            "mean_iterations": float(np.mean(res.iterations))}  # fmt: skip


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--emcee-seconds", type=float, default=None)
    ap.add_argument("--data", type=Path, default=default_data_dir())
    ap.add_argument("--json", default=None)
    ap.add_argument("--grid-timeout", type=float, default=300.0)
    ap.add_argument("--grid-child", nargs=2, type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.grid_child:  # child process of C: one grid, one JSON line
        ws = belle2_wet_workspace(args.data / "belle2_bknunu")
        model = ws.model()
        g = run_grid(model, jnp.asarray(ws.data(model)), args.grid_child[0],
                     bool(args.grid_child[1]))  # fmt: skip
        print(json.dumps(g))
        return 0
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    quick = args.quick
    chains, warmup, draws = (4, 250, 500) if quick else (4, 1000, 2000)
    emcee_s = args.emcee_seconds or (60.0 if quick else 300.0)
    machine = describe_machine()
    machine["versions"]["emcee"] = metadata.version("emcee")
    machine["versions"]["numpyro"] = metadata.version("numpyro")
    dev = jax.devices()[0]
    machine["device"] = f"{dev.platform} ({dev.device_kind}), {jax.device_count()} device(s)"
    print(fmt_machine(machine))
    print(f"device   : {machine['device']}; emcee {machine['versions']['emcee']}, numpyro "
          f"{machine['versions']['numpyro']}; {CORES} cores pinned; mode "
          f"{'quick' if quick else 'full'}", flush=True)  # fmt: skip
    out = {"machine": machine, "quick": quick, "cores": CORES}
    rows = []
    label = " (quick)" if quick else ""
    rng = np.random.default_rng(1)

    ws = belle2_wet_workspace(args.data / "belle2_bknunu")
    model = ws.model()
    data = jnp.asarray(ws.data(model))
    npars = model.config.npars

    # A. jaxlike NUTS
    load0 = load_1min()
    print(f"\nA. NUTS {chains} × ({warmup} + {draws}), {npars} parameters, diagonal mass ...",
          flush=True)  # fmt: skip
    a = run_nuts(model, data, chains, warmup, draws)
    a["load"] = [load0, load_1min()]
    out["nuts"] = a
    ess_c = min(a["ess"].values())
    rhat_c = max(a["rhat"].values())
    ok_a = a["wall_s"] <= TARGET_NUTS_S and rhat_c < TARGET_RHAT
    print(
        f"  wall {a['wall_s']:.1f} s, R̂ {a['rhat']}, ESS {a['ess']}, min ESS all "
        f"{a['ess_min_all']:.0f} ({a['ess_min_all_name']}), divergences {a['divergences']}"
    )

    # B. emcee on pyhf
    print("\nB. pyhf model with shapefactor r_i: check against jaxlike ...", flush=True)
    fit = jaxlike.fit(model, data)
    nwalkers = 2 * npars
    peer = PyhfWet(args.data / "belle2_bknunu", model, batch=nwalkers // 2)
    rel, relp = check_pyhf(peer, model, data, fit, rng)
    ok_match = rel <= 1e-8 and relp <= 1e-8
    print(f"  max rel diff logpdf {rel:.1e}, log posterior {relp:.1e} (≤ 1e-8: "
          f"{verdict(ok_match)})")  # fmt: skip
    load0 = load_1min()
    print(f"  emcee, {nwalkers} walkers, {emcee_s:.0f} s ...", flush=True)
    b = run_emcee(peer, fit, emcee_s, nwalkers, rng)
    b["load"] = [load0, load_1min()]
    idx = [model.config.par_index(c) for c in COEFFS]
    b_ess = {c: float(b["ess"][i]) for c, i in zip(COEFFS, idx, strict=True)}
    b_tau = {c: float(b["tau"][i]) for c, i in zip(COEFFS, idx, strict=True)}
    b_essw = {c: float(b["ess_w"][i]) for c, i in zip(COEFFS, idx, strict=True)}
    b_rhatw = {c: float(b["rhat_w"][i]) for c, i in zip(COEFFS, idx, strict=True)}
    b_q = {c: np.quantile(b["flat"][:, i], [0.05, 0.5, 0.95]).tolist()
           for c, i in zip(COEFFS, idx, strict=True)}  # fmt: skip
    out["emcee"] = {
        k: v for k, v in b.items() if k not in ("flat", "tau", "ess", "ess_w", "rhat_w")
    }
    out["emcee"].update(ess=b_ess, tau=b_tau, quantiles=b_q, tau_max_all=float(b["tau"].max()),
                        ess_walkers=b_essw, rhat_walkers=b_rhatw,
                        ess_walkers_min_all=float(np.nanmin(b["ess_w"])),
                        rhat_walkers_max_all=float(np.nanmax(b["rhat_w"])),
                        ess_min_all=float(b["ess"].min()), match_rel=rel,
                        match_rel_post=relp)  # fmt: skip
    reliable = b["chain_over_tau"] >= 50
    print(f"  {b['steps']} steps ({b['nevals']} log-prob evaluations, "
          f"{b['nevals'] / b['wall_s']:.0f}/s), acceptance {b['acceptance']:.3f}, τ {b_tau}, "
          f"max τ {b['tau'].max():.0f}, kept chain / max τ = "
          f"{b['chain_over_tau']:.2f}; walkers as chains: ESS {b_essw}, R̂ {b_rhatw}")  # fmt: skip

    # rows A and B
    a_rate = ess_c / a["wall_s"]
    b_ess_c = min(b_ess.values())
    b_rate = b_ess_c / b["wall_s"]
    b_conv = max(b_rhatw.values()) < TARGET_RHAT
    bound = "" if reliable else " (upper bound: chain < 50 τ)"
    caveat = "" if b_conv else f" (nominal: emcee R̂ {max(b_rhatw.values()):.3g})"
    rows.append({
        "task": f"A. WET posterior, NUTS {chains} × ({warmup} + {draws}), {npars} pars{label}",
        "jaxlike": f"**{fmt_s(a['wall_s'])}** (incl. MLE + compile)",
        "peer (emcee on pyhf-numpy)": f"fixed budget {fmt_s(b['wall_s'])}",
        "target": f"≤ {TARGET_NUTS_S / 60:.0f} min on {CORES} cores",
        "result": verdict(a["wall_s"] <= TARGET_NUTS_S),
        "notes": f"load {a['load'][0]:.1f}→{a['load'][1]:.1f}",
    })  # fmt: skip
    b_rate_w = min(b_essw.values()) / b["wall_s"]
    rows.append({
        "task": "A. R̂ of C_V / C_S / C_T (emcee: split R̂, walkers as chains)",
        "jaxlike": " / ".join(f"{a['rhat'][c]:.4f}" for c in COEFFS),
        "peer (emcee on pyhf-numpy)": " / ".join(f"{b_rhatw[c]:.3f}" for c in COEFFS),
        "target": f"< {TARGET_RHAT} (jaxlike)",
        "result": verdict(rhat_c < TARGET_RHAT),
        "notes": f"max over all parameters: jaxlike {a['rhat_max_all']:.4f}, emcee "
                 f"{np.nanmax(b['rhat_w']):.3f}",
    })  # fmt: skip
    rows.append({
        "task": "ESS of C_V / C_S / C_T",
        "jaxlike": " / ".join(f"{a['ess'][c]:.0f}" for c in COEFFS) + f" of {a['draws']} draws",
        "peer (emcee on pyhf-numpy)": "τ-based " + " / ".join(f"{b_ess[c]:.0f}" for c in COEFFS)
                                      + bound + "; walkers as chains "
                                      + " / ".join(f"{b_essw[c]:.0f}" for c in COEFFS),
        "notes": "emcee τ (steps) " + " / ".join(f"{b_tau[c]:.1f}" for c in COEFFS)
                 + f"; {b['nwalkers']} walkers × {b['kept']} kept of {b['steps']} steps"
                 + f"; {b['n_stuck']} walkers never moved in the kept part",
    })  # fmt: skip
    rows.append({
        "task": "ESS/s, min over C_V, C_S, C_T",
        "jaxlike": f"**{a_rate:.3g}/s**",
        "peer (emcee on pyhf-numpy)": f"τ-based {b_rate:.3g}/s{bound}; walkers as chains "
                                      f"{b_rate_w:.3g}/s",
        "ratio": f"τ-based ×{a_rate / b_rate:.3g}" + ("" if reliable else " (lower bound)")
                 + f"; walkers as chains ×{a_rate / b_rate_w:.3g}" + caveat,
        "notes": "ESS / total wall (jaxlike: compile, MLE, warmup; emcee: burn-in)",
    })  # fmt: skip
    b_min = float(b["ess"].min())
    b_min_w = float(np.nanmin(b["ess_w"]))
    a_min = a["ess_min_all"] / a["wall_s"]
    rows.append({
        "task": "ESS min over all parameters (ESS/s)",
        "jaxlike": f"{a['ess_min_all']:.0f} ({a_min:.3g}/s)",
        "peer (emcee on pyhf-numpy)": f"τ-based {b_min:.0f} ({b_min / b['wall_s']:.3g}/s)"
                                      f"{bound}; walkers as chains {b_min_w:.0f} "
                                      f"({b_min_w / b['wall_s']:.3g}/s)",
        "ratio": f"τ-based ×{a_min / (b_min / b['wall_s']):.3g}; walkers as chains "
                 f"×{a_min / (b_min_w / b['wall_s']):.3g}" + caveat,
        "notes": f"jaxlike's lowest: {a['ess_min_all_name']}; emcee max τ {b['tau'].max():.0f}",
    })  # fmt: skip
    rows.append({
        "task": "divergences; acceptance",
        "jaxlike": f"{a['divergences']}; accept {a['accept_prob']}",
        "peer (emcee on pyhf-numpy)": f"—; acceptance {b['acceptance']:.3f}",
        "notes": f"NUTS step sizes {a['step_size']}",
    })  # fmt: skip
    rows.append({
        "task": "posterior 5/50/95% of C_V, C_S, C_T",
        "jaxlike": "; ".join(f"{c} " + "/".join(f"{x:.2f}" for x in a["quantiles"][c])
                             for c in COEFFS),
        "peer (emcee on pyhf-numpy)": "; ".join(f"{c} " + "/".join(f"{x:.2f}" for x in b_q[c])
                                                for c in COEFFS),
        "notes": "" if b_conv else "emcee's walkers have not mixed (R̂ ≥ 1.01)",
    })  # fmt: skip
    rows.append({
        "task": "B. pyhf logpdf (shapefactor r_i) = jaxlike WET logpdf, 5 points",
        "jaxlike": f"max rel diff {rel:.1e} (log posterior {relp:.1e})",
        "target": "≤ 1e-8",
        "result": verdict(ok_match),
    })  # fmt: skip

    # C. profile grid, in a fresh process each (compilation included, stopped after a timeout)
    ok_c = None
    n_grid = 25 if quick else 100
    if _profile_grid() is not None:
        out["grid"] = []
        for prof in (False, True):
            load0 = load_1min()
            what = "C_S profiled" if prof else "C_S = 0"
            task = f"C. profile grid {n_grid} × {n_grid} (C_V, C_T), {what}{label}"
            print(f"\nC. profile_grid {n_grid} × {n_grid} (C_V, C_T), {what}, fresh process "
                  f"(stopped after {args.grid_timeout:.0f} s) ...", flush=True)  # fmt: skip
            cmd = ["--grid-child", str(n_grid), str(int(prof)), "--cores", str(args.cores),
                   "--data", str(args.data)]  # fmt: skip
            try:
                g = run_child(Path(__file__).resolve(), cmd, args.grid_timeout)
            except subprocess.TimeoutExpired:
                g = None
            except RuntimeError as err:
                g = {"error": str(err)[-500:]}
            load1 = load_1min()
            note = f"load {load0:.1f}→{load1:.1f}"
            if g is None or "error" in g:
                ok = False
                out["grid"].append({"profile_cs": prof, "n": n_grid, "timeout_s":
                                    args.grid_timeout, "error": g and g["error"]})  # fmt: skip
                last = "" if g is None else g["error"].strip().splitlines()[-1][:120]
                measured = f"> {args.grid_timeout:.0f} s (stopped)" if g is None else last
                print(f"  {measured}")
            else:
                g["load"] = [load0, load1]
                out["grid"].append(g)
                ok = g["first_s"] <= TARGET_GRID_S
                best = ", ".join(f"{k} {v:.2f}" for k, v in g["best"].items())
                note = "; ".join([f"converged {g['converged']}/{g['points']}",
                                  f"{g['mean_iterations']:.1f} Newton it./fit",
                                  f"min at {best} ({g['best_source']})",
                                  f"process wall {fmt_s(g['wall_s'])}", note])  # fmt: skip
                measured = f"**{fmt_s(g['first_s'])}** (profile_grid call, compile incl.)"
                print(f"  {measured}; {note}")
            ok_c = ok if ok_c is None else ok_c and ok
            rows.append({"task": task, "jaxlike": measured, "target": f"≤ {TARGET_GRID_S:.0f} s"
                         + (" (for 100 × 100)" if quick else ""),
                         "result": verdict(ok) if not quick else "—", "notes": note})  # fmt: skip
        if quick:
            ok_c = None
    else:
        print("\nC. SKIPPED: profile_grid not available (jaxlike.scan.profile_grid)")
        rows.append({"task": "C. profile grid 100 × 100 (C_V, C_T)",
                     "jaxlike": "SKIPPED: profile_grid not available",
                     "target": f"≤ {TARGET_GRID_S:.0f} s", "result": "—"})  # fmt: skip

    load = [round(x, 2) for x in os.getloadavg()]
    out["load_end"] = load
    out["wall_s"] = time.perf_counter() - T_START
    pre = (f"{machine['cpu']}, {CORES}/{machine['cores']} cores pinned, {machine['device']}, "
           f"jax {machine['versions']['jax']}, pyhf {machine['versions']['pyhf']}, emcee "
           f"{machine['versions']['emcee']}; load avg {machine['load_avg_1_5_15']} at start → "
           f"{load} at end; mode {'quick' if quick else 'full'}, script wall "
           f"{fmt_s(out['wall_s'])}.")  # fmt: skip
    out["table"] = print_rows("Bayesian: jaxlike NUTS vs emcee on pyhf (Belle II WET)", rows,
                              COLUMNS, pre)  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=lambda x: np.asarray(x).tolist())
    ok = ok_a and ok_match and ok_c is not False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
