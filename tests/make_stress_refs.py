"""pyhf reference fits for the stress workspaces of ``tests/_stress.py``.

For every case (family, seed) the five fits of a q̃μ test at μ = 1 are run with each pyhf
optimizer below:

    (a) free fit to the data           (b) μ = 1 fit to the data     (c) μ = 0 fit to the data
    (d) free fit to the Asimov data    (e) μ = 1 fit to the Asimov data

with pyhf's suggested initial values and bounds (POI bounds [0, 10]: q̃). The Asimov data
(main + auxdata) are jaxlike's ``model.expected_data`` at the (c) parameters with the lowest
exact 2NLL over all optimizers, so (d)/(e) of all optimizers and of jaxlike see one dataset.
Every fitted vector is then evaluated with ONE exact function, jaxlike's ``model.logpdf``
(2NLL = −2 logpdf): ``best_2nll`` is the lowest exact value over the optimizers, ``best_opt``
which one reached it. pyhf's own value of its objective is kept beside it (``own_2nll``).

Optimizers (``OPTIMIZERS``):

- ``numpy_default``: ``pyhf.set_backend("numpy")`` with pyhf's default ``scipy_optimizer()``
  (SLSQP, SciPy's ftol 1e-6, numerical gradients): what a pyhf user gets;
- ``numpy_slsqp``: numpy backend, SLSQP tolerance 1e-10;
- ``jax_slsqp``: jax backend (exact gradients), SLSQP tolerance 1e-12;
- ``minuit``: numpy backend, ``minuit_optimizer(tolerance=1e-6, strategy=2)``: MIGRAD's EDM
  goal 0.002 · tol · errordef = 2e-9 on 2NLL (errordef 1), the strictest that MIGRAD still meets
  routinely; strategy 2 (full Hessian each iteration) since there is no analytic gradient.

A failed pyhf fit (``FailedMinimization``: its last point is kept, ``success`` False; any other
exception: NaN parameters and the message in ``error``) never stops the run. Wall times are
per fit; the pyhf-jax times include its per-model jit compilation (a new pyhf Model recompiles).

Usage::

    python tests/make_stress_refs.py --n-per-family 45 --out tests/data/stress_refs.npz
    python tests/make_stress_refs.py --slow --n-per-family 200 --out tests/data/stress_refs_slow.npz

Each finished case is saved in ``--parts`` (default ``/tmp/stress_refs_parts/<set>``) and
skipped when the run is restarted; the npz is assembled at the end (and with ``--assemble``).
At most one worker process per CPU (``--workers``); ``--skip-seeds K`` leaves the first K
seeds to another machine (assemble the union of both machines' parts with ``--assemble``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _stress  # noqa: E402

OPTIMIZERS = ("numpy_default", "numpy_slsqp", "jax_slsqp", "minuit")
FITS = ("free", "mu1", "mu0", "free_asimov", "mu1_asimov")
POI_TEST = 1.0
MINUIT_TOLERANCE = 1e-6
MINUIT_STRATEGY = 2


def _set_optimizer(pyhf, name):
    if name == "numpy_default":
        pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer())
    elif name == "numpy_slsqp":
        pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-10))
    elif name == "jax_slsqp":
        pyhf.set_backend("jax", pyhf.optimize.scipy_optimizer(tolerance=1e-12))
    elif name == "minuit":
        opt = pyhf.optimize.minuit_optimizer(
            tolerance=MINUIT_TOLERANCE, strategy=MINUIT_STRATEGY
        )
        pyhf.set_backend("numpy", opt)
    else:
        raise KeyError(name)


def _pyhf_fit(pyhf, model, data, poi_value):
    """One pyhf fit: (pars, own 2NLL, success, seconds, error message)."""
    mle = pyhf.infer.mle
    kwargs = {"return_fitted_val": True, "return_result_obj": True}
    data = pyhf.tensorlib.astensor(data)
    t = time.perf_counter()
    try:
        if poi_value is None:
            pars, fval, _ = mle.fit(data, model, **kwargs)
        else:
            pars, fval, _ = mle.fixed_poi_fit(poi_value, data, model, **kwargs)
        out = (np.asarray(pars, float), float(fval), True, "")
    except pyhf.exceptions.FailedMinimization as err:
        res = err.result
        x = np.asarray(list(res.x) if not hasattr(res.x, "shape") else res.x, float)
        msg = str(getattr(res, "message", "failed"))[:80]
        out = (x, float(np.asarray(res.fun)), False, msg)
    except Exception as err:  # noqa: BLE001 - record, never stop the run
        n = model.config.npars
        out = (np.full(n, np.nan), np.nan, False, f"{type(err).__name__}: {err}"[:80])
    return (*out[:3], time.perf_counter() - t, out[3])


_JL = {}


def _jaxlike_funcs():
    """(vmapped 2NLL over points and data, expected_data) of jaxlike, jitted once."""
    if not _JL:
        import equinox as eqx
        import jax

        import jaxlike  # noqa: F401  (float64)

        _JL["nll"] = eqx.filter_jit(
            jax.vmap(lambda m, p, d: m.twice_nll(p, d), in_axes=(None, 0, 0))
        )
        _JL["expected"] = eqx.filter_jit(lambda m, p: m.expected_data(p))
    return _JL["nll"], _JL["expected"]


def exact_twice_nll(model, pars, data):
    """jaxlike's 2NLL at each row of ``pars`` (rows of ``data`` alike); NaN rows stay NaN."""
    nll, _ = _jaxlike_funcs()
    pars = np.asarray(pars, float)
    ok = np.all(np.isfinite(pars), axis=-1)
    safe = np.where(ok[:, None], pars, model.config.suggested_init()[None])
    out = np.asarray(nll(model, safe, np.asarray(data, float)))
    return np.where(ok, out, np.nan)


def run_case(family, seed):
    """All optimizers' five fits on one case; returns a dict of arrays."""
    warnings.filterwarnings("ignore")
    logging.getLogger("pyhf").setLevel(logging.CRITICAL)
    import pyhf

    import jaxlike

    spec, info = _stress.make_workspace(seed, family)
    settings = info["modifier_settings"]
    jl_model = jaxlike.Workspace(spec).model(modifier_settings=settings)
    data = np.asarray(info["data"], float)
    n_opt, n_fit, npars = len(OPTIMIZERS), len(FITS), jl_model.config.npars
    pars = np.full((n_opt, n_fit, npars), np.nan)
    own = np.full((n_opt, n_fit), np.nan)
    success = np.zeros((n_opt, n_fit), bool)
    secs = np.full((n_opt, n_fit), np.nan)
    errors = np.full((n_opt, n_fit), "", dtype="<U80")

    def fits(k, model, d, which):
        for j in which:
            poi = {"free": None, "mu1": POI_TEST, "mu0": 0.0}[FITS[j].replace("_asimov", "")]
            pars[k, j], own[k, j], success[k, j], secs[k, j], errors[k, j] = _pyhf_fit(
                pyhf, model, d, poi
            )

    pyhf_models = {}
    for k, name in enumerate(OPTIMIZERS):
        _set_optimizer(pyhf, name)
        ws = pyhf.Workspace(spec)
        model = ws.model(modifier_settings=settings)
        if k == 0:
            if model.config.par_names != jl_model.config.par_names:
                raise AssertionError(f"parameter order differs: {model.config.par_names}")
            if not np.allclose(np.asarray(ws.data(model)), data, rtol=1e-12, atol=0):
                raise AssertionError("pyhf's data differ from the generator's")
        pyhf_models[name] = model
        fits(k, model, data, (0, 1, 2))
    # Asimov data from the best μ = 0 fit (exact 2NLL)
    mu0 = exact_twice_nll(jl_model, pars[:, 2], np.tile(data, (n_opt, 1)))
    best0 = int(np.nanargmin(np.where(np.isfinite(mu0), mu0, np.inf)))
    _, expected = _jaxlike_funcs()
    asimov = np.asarray(expected(jl_model, pars[best0, 2]), float)
    if not np.all(np.isfinite(asimov)):
        raise AssertionError(f"non-finite Asimov data from {OPTIMIZERS[best0]}")
    for k, name in enumerate(OPTIMIZERS):
        _set_optimizer(pyhf, name)
        fits(k, pyhf_models[name], asimov, (3, 4))
    dat = np.stack([data] * 3 + [asimov] * 2)
    exact = exact_twice_nll(
        jl_model, pars.reshape(-1, npars), np.tile(dat, (n_opt, 1))
    ).reshape(n_opt, n_fit)
    masked = np.where(np.isfinite(exact), exact, np.inf)
    best_opt = np.argmin(masked, axis=0)
    best = masked[best_opt, np.arange(n_fit)]
    return {
        "family": family,
        "seed": int(seed),
        "variant": info["variant"],
        "spec_hash": _stress.spec_hash(spec),
        "par_names": np.asarray(info["par_names"]),
        "data": data,
        "asimov": asimov,
        "asimov_from": best0,
        "pars": pars,
        "own_2nll": own,
        "exact_2nll": exact,
        "success": success,
        "seconds": secs,
        "error": errors,
        "best_2nll": np.where(np.isfinite(best), best, np.nan),
        "best_opt": best_opt,
    }


def _worker(task):
    family, seed, parts = task
    path = Path(parts) / f"{family}__{seed}.npz"
    if path.exists():
        return family, seed, "cached", 0.0
    t = time.perf_counter()
    try:
        out = run_case(family, seed)
    except Exception as err:  # noqa: BLE001 - report the case, continue with the others
        return family, seed, f"ERROR {type(err).__name__}: {err}", time.perf_counter() - t
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **{k: np.asarray(v) for k, v in out.items()})
    tmp.rename(path)
    return family, seed, "ok", time.perf_counter() - t


CASE_KEYS = ("seed", "variant", "spec_hash", "data", "asimov", "asimov_from", "pars",
             "own_2nll", "exact_2nll", "success", "seconds", "error", "best_2nll", "best_opt")  # fmt: skip


def assemble(parts, tasks, out, meta):
    """Collect the per-case files of ``tasks`` into one compressed npz (keys ``family__key``)."""
    arrays = {
        "optimizers": np.asarray(OPTIMIZERS),
        "fits": np.asarray(FITS),
        "meta": np.asarray(json.dumps(meta)),
    }
    fams = []
    for family in dict.fromkeys(f for f, _, _ in tasks):
        rows = []
        for f, seed, _ in tasks:
            path = Path(parts) / f"{f}__{seed}.npz"
            if f == family and path.exists():
                rows.append(dict(np.load(path)))
        if not rows:
            continue
        fams.append(family)
        arrays[f"{family}__par_names"] = rows[0]["par_names"]
        for key in CASE_KEYS:
            arrays[f"{family}__{key}"] = np.stack([r[key] for r in rows])
        # error messages as indices into a per-family table ("" = no error)
        msgs, idx = np.unique(arrays[f"{family}__error"], return_inverse=True)
        arrays[f"{family}__error"] = idx.reshape(arrays[f"{family}__error"].shape).astype(np.int16)
        arrays[f"{family}__error_messages"] = msgs
    arrays["families"] = np.asarray(fams)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return fams


def _jaxlike_source():
    """Where the exact function came from: jaxlike's path, git commit and a hash of its
    model sources (the generator may run on a snapshot of a working tree)."""
    import hashlib
    import subprocess

    import jaxlike

    root = Path(jaxlike.__file__).parent
    h = hashlib.sha256()
    for f in sorted((root / "model").glob("*.py")):
        h.update(f.read_bytes())
    try:
        commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip()  # fmt: skip
    except OSError:
        commit = ""
    return {"path": str(root), "repo_head": commit, "model_sha256": h.hexdigest()[:16]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-per-family", type=int, default=45)
    ap.add_argument("--out", default=str(HERE / "data" / "stress_refs.npz"))
    ap.add_argument("--slow", action="store_true", help="the larger seed set (SLOW_SEEDS)")
    ap.add_argument("--families", nargs="*", default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--parts", default=None, help="folder of per-case results (resumable)")
    ap.add_argument("--assemble", action="store_true", help="only assemble existing parts")
    ap.add_argument("--skip-seeds", type=int, default=0,
                    help="leave out the first K seeds (another machine computes them)")
    args = ap.parse_args(argv)
    seeds = list(_stress.SLOW_SEEDS if args.slow else _stress.DEFAULT_SEEDS)[: args.n_per_family]
    seeds = seeds[args.skip_seeds :]
    fams = args.families or _stress.families()
    parts = Path(args.parts or f"/tmp/stress_refs_parts/{'slow' if args.slow else 'default'}")
    parts.mkdir(parents=True, exist_ok=True)
    tasks = [(f, s, str(parts)) for s in seeds for f in fams]
    meta = {
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "set": "slow" if args.slow else "default",
        "n_per_family": len(seeds),
        "minuit": {"tolerance": MINUIT_TOLERANCE, "strategy": MINUIT_STRATEGY},
        "poi_test": POI_TEST,
        "workers": args.workers,
        "load_avg_start": os.getloadavg(),
        "jaxlike": _jaxlike_source(),
    }
    if not args.assemble:
        t0 = time.perf_counter()
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(min(max(args.workers, 1), os.cpu_count() or 1), maxtasksperchild=50) as pool:
            for i, (f, s, status, dt) in enumerate(pool.imap_unordered(_worker, tasks), 1):
                el = time.perf_counter() - t0
                print(f"[{i}/{len(tasks)} {el:7.0f}s] {f} seed {s}: {status} ({dt:.1f}s)",
                      flush=True)  # fmt: skip
        meta["generation_s"] = round(time.perf_counter() - t0, 1)
        meta["load_avg_end"] = os.getloadavg()
        import importlib.metadata as md

        meta["versions"] = {d: md.version(d) for d in ("pyhf", "jax", "iminuit", "scipy", "numpy")}
    done = assemble(parts, tasks, args.out, meta)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.2f} MB, families {done})")


if __name__ == "__main__":
    main()
