"""pyhf reference fits for the ATLAS SUSY-2018-04 staus Region-lowMass likelihood.

For each of the three shared signal patches (``PATCHES``) the five fits of a q̃ test at μ = 1
are run with each pyhf optimizer of ``OPTIMIZERS``:

    free        free fit to the data            mu1         μ = 1 fit to the data
    mu0         μ = 0 fit to the data (its parameters build the Asimov data)
    free_asimov free fit to the Asimov data     mu1_asimov  μ = 1 fit to the Asimov data

with pyhf's suggested initial values and bounds (POI in [0, 10]), as ``pyhf.infer.hypotest``.

The Asimov data (main + auxdata) are jaxlike's ``model.expected_data`` at the μ = 0 parameters
with the lowest exact 2NLL among all pyhf optimizers *and* jaxlike's own μ = 0 fit
(``jaxlike.fixed_poi_fit``), so the Asimov fits of every tool see one dataset.

Every fitted vector is evaluated with ONE exact function, jaxlike's ``model.logpdf``
(2NLL = −2 logpdf; the function ``conftest.logpdf`` the tests use); pyhf's own value of its
objective is kept beside it (``own_twice_nll``). ``best`` of each fit is the lowest exact 2NLL
over the pyhf optimizers that reported success (a failed pyhf fit never counts).

Optimizers:

- ``numpy_slsqp``: numpy backend, ``scipy_optimizer(tolerance=1e-10)`` (finite-difference
  gradients);
- ``minuit``: numpy backend, ``minuit_optimizer(tolerance=1e-6, strategy=2)``: MIGRAD's EDM goal
  0.002 · tol · errordef = 2e-9 on 2NLL (errordef 1); strategy 2 (full Hessian) since there is
  no analytic gradient;
- ``jax_slsqp``: jax backend (exact gradients), ``scipy_optimizer(tolerance=1e-12)``; skipped
  (and recorded in ``meta.skipped``) when pyhf's jax backend does not work in this environment.

A failed pyhf fit (``FailedMinimization``) keeps its last point with ``success`` False; any other
exception gives ``pars`` None and the message. Times are wall seconds per fit (pyhf-jax's include
its jit compilation: its first fit per model is slow).

Usage (about 5 minutes per patch on a loaded 2-core machine)::

    python tests/make_staus_refs.py           # all patches -> tests/data/staus_refs.json
    python tests/make_staus_refs.py --patches DS_240_80 --out /tmp/x.json

The data are read from ``$JAXLIKE_DATA/atlas_staus_lowmass`` (default ``../shared/data``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import conftest  # noqa: E402  (the exact function and the data folder the tests use)

DATA = Path(os.environ.get("JAXLIKE_DATA", conftest.DATA))
STAUS = DATA / "atlas_staus_lowmass"
OUT = HERE / "data" / "staus_refs.json"

PATCHES = ("DS_120_1", "DS_240_80", "DS_360_1")
FITS = ("free", "mu1", "mu0", "free_asimov", "mu1_asimov")
#: POI value of each fit (None: free)
FIT_POI = {"free": None, "mu1": 1.0, "mu0": 0.0, "free_asimov": None, "mu1_asimov": 1.0}
OPTIMIZERS = ("numpy_slsqp", "minuit", "jax_slsqp")
POI_TEST = 1.0
MINUIT_TOLERANCE = 1e-6
MINUIT_STRATEGY = 2


def patch_spec(name, data=None):
    """The patched workspace spec (dict) of patch ``name`` and its sha256 over both files."""
    import jsonpatch

    folder = Path(data or DATA) / "atlas_staus_lowmass"
    bkg_path, patch_path = folder / "BkgOnly.json", folder / f"patch.{name}_Staus.json"
    h = hashlib.sha256(bkg_path.read_bytes() + patch_path.read_bytes()).hexdigest()
    spec = jsonpatch.apply_patch(
        json.loads(bkg_path.read_text()), json.loads(patch_path.read_text())
    )
    return spec, h


def exact_twice_nll(model, pars, data):
    """−2 · jaxlike ``model.logpdf`` (``conftest.logpdf``, the tests' compiled function)."""
    if pars is None or not np.all(np.isfinite(pars)):
        return None
    return float(-2.0 * np.asarray(conftest.logpdf(model, np.asarray(pars, float), data)))


def _set_optimizer(pyhf, name):
    if name == "numpy_slsqp":
        pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-10))
    elif name == "jax_slsqp":
        pyhf.set_backend("jax", pyhf.optimize.scipy_optimizer(tolerance=1e-12))
    elif name == "minuit":
        opt = pyhf.optimize.minuit_optimizer(tolerance=MINUIT_TOLERANCE, strategy=MINUIT_STRATEGY)
        pyhf.set_backend("numpy", opt)
    else:
        raise KeyError(name)


def pyhf_jax_status():
    """None if pyhf's jax backend runs a fit here, else the reason it cannot be used."""
    import pyhf

    saved = pyhf.get_backend()
    try:
        pyhf.set_backend("jax", pyhf.optimize.scipy_optimizer(tolerance=1e-12))
        model = pyhf.simplemodels.uncorrelated_background([5.0], [50.0], [7.0])
        pars = pyhf.infer.mle.fit([55.0] + model.config.auxdata, model)
        if not np.all(np.isfinite(np.asarray(pars))):
            return "pyhf-jax returned non-finite parameters on a one-bin model"
        return None
    except Exception as err:  # noqa: BLE001 - any failure means: skip the optimizer
        return f"{type(err).__name__}: {err}"[:200]
    finally:
        pyhf.set_backend(*saved)


def pyhf_fit(pyhf, model, data, poi_value):
    """One pyhf fit: dict(pars, own_twice_nll, success, seconds, message); the fit itself is
    the stress references' (``make_stress_refs._pyhf_fit``: a failed minimisation keeps its
    last point, any other error gives no parameters)."""
    from make_stress_refs import _pyhf_fit

    pars, own, success, seconds, msg = _pyhf_fit(pyhf, model, data, poi_value)
    if not success and not np.any(np.isfinite(pars)):
        pars, own = None, None
    return {"pars": pars, "own": own, "success": success, "msg": msg, "seconds": seconds}


def _entry(model, fit, data):
    pars = fit["pars"]
    return {
        "success": bool(fit["success"]),
        "twice_nll": exact_twice_nll(model, pars, data),
        "own_twice_nll": fit["own"],
        "seconds": round(fit["seconds"], 3),
        "message": fit["msg"],
        "pars": None if pars is None else [float(v) for v in pars],
    }


def run_patch(name, optimizers=OPTIMIZERS, log=print, data_dir=None):
    """All optimizers' five fits on patch ``name``: the JSON-ready dict of ``staus_refs.json``."""
    warnings.filterwarnings("ignore")
    logging.getLogger("pyhf").setLevel(logging.CRITICAL)
    import pyhf

    saved = pyhf.get_backend()
    try:
        return _run_patch(pyhf, name, optimizers, log, data_dir)
    finally:
        pyhf.set_backend(*saved)


def _run_patch(pyhf, name, optimizers, log, data_dir):
    import jax

    import jaxlike

    spec, sha = patch_spec(name, data_dir)
    jl_ws = jaxlike.Workspace(spec)
    model = jl_ws.model()
    data = np.asarray(jl_ws.data(model), float)
    names = list(model.config.par_names)
    fits = {f: {} for f in FITS}
    pyhf_models = {}
    for opt in optimizers:
        _set_optimizer(pyhf, opt)
        ws = pyhf.Workspace(spec)
        pm = ws.model()
        if list(pm.config.par_names) != names:
            raise AssertionError(f"{name}: pyhf's parameter order differs from jaxlike's")
        if not np.array_equal(np.asarray(ws.data(pm), float), data):
            raise AssertionError(f"{name}: pyhf's data differ from jaxlike's")
        pyhf_models[opt] = pm
        for f in ("free", "mu1", "mu0"):
            fits[f][opt] = _entry(model, pyhf_fit(pyhf, pm, data, FIT_POI[f]), data)
            e = fits[f][opt]
            log(f"  {name} {f:11s} {opt:12s} 2NLL {e['twice_nll']!r:22} ok={e['success']} "
                f"{e['seconds']:.1f}s {e['message']}")  # fmt: skip

    # jaxlike's own μ = 0 fit: a candidate for the Asimov parameters
    t = time.perf_counter()
    jl_mu0 = jaxlike.fixed_poi_fit(model, data, 0.0)
    jax.block_until_ready(jl_mu0)
    jl_entry = {
        "success": bool(jl_mu0.converged),
        "twice_nll": exact_twice_nll(model, np.asarray(jl_mu0.bestfit), data),
        "own_twice_nll": float(jl_mu0.twice_nll),
        "seconds": round(time.perf_counter() - t, 3),  # includes its compilation
        "message": jl_mu0.message(),
        "pars": [float(v) for v in np.asarray(jl_mu0.bestfit)],
    }
    cands = {opt: e for opt, e in fits["mu0"].items() if e["twice_nll"] is not None}
    cands["jaxlike"] = jl_entry
    src = min(cands, key=lambda k: cands[k]["twice_nll"])
    asimov = np.asarray(
        jax.jit(lambda m, p: m.expected_data(p))(model, np.asarray(cands[src]["pars"])), float
    )
    if not np.all(np.isfinite(asimov)):
        raise AssertionError(f"{name}: non-finite Asimov data from {src}")
    log(f"  {name} Asimov data from {src} (μ=0 2NLL {cands[src]['twice_nll']!r})")

    for opt in optimizers:
        _set_optimizer(pyhf, opt)
        for f in ("free_asimov", "mu1_asimov"):
            fit = pyhf_fit(pyhf, pyhf_models[opt], asimov, FIT_POI[f])
            fits[f][opt] = _entry(model, fit, asimov)
            e = fits[f][opt]
            log(f"  {name} {f:11s} {opt:12s} 2NLL {e['twice_nll']!r:22} ok={e['success']} "
                f"{e['seconds']:.1f}s {e['message']}")  # fmt: skip

    best = {}
    for f in FITS:
        ok = {o: e for o, e in fits[f].items() if e["success"] and e["twice_nll"] is not None}
        if not ok:
            raise AssertionError(f"{name}: no pyhf optimizer converged on fit {f}")
        o = min(ok, key=lambda k: ok[k]["twice_nll"])
        best[f] = {"optimizer": o, "twice_nll": ok[o]["twice_nll"]}
    return {
        "spec_sha256": sha,
        "par_names": names,
        "data": [float(v) for v in data],
        "asimov": {
            "data": [float(v) for v in asimov],
            "from": src,
            "mu0_twice_nll": cands[src]["twice_nll"],
        },
        "jaxlike_mu0": jl_entry,
        "best": best,
        "fits": fits,
    }


def dumps(obj):
    """Indented JSON with every list of scalars on one line."""
    text = json.dumps(obj, indent=1)
    flat = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: f"[{' '.join(m.group(1).split())}]", text)
    return flat + "\n"


def _jaxlike_source():
    """jaxlike's git HEAD and a hash of its model sources (the exact function's code)."""
    import subprocess

    import jaxlike

    root = Path(jaxlike.__file__).parent
    h = hashlib.sha256()
    for f in sorted((root / "model").glob("*.py")):
        h.update(f.read_bytes())
    head = subprocess.run(
        ["git", "-C", str(HERE), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {"repo_head": head, "model_sources_sha256": h.hexdigest()[:16]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patches", nargs="*", default=list(PATCHES))
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    import importlib.metadata as md

    skipped = {}
    optimizers = list(OPTIMIZERS)
    reason = pyhf_jax_status()
    if reason is not None:
        optimizers.remove("jax_slsqp")
        skipped["jax_slsqp"] = reason
        print(f"pyhf-jax skipped: {reason}")
    meta = {
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "generator": "tests/make_staus_refs.py",
        "python": platform.python_version(),
        "versions": {d: md.version(d) for d in ("pyhf", "jax", "iminuit", "scipy", "numpy")},
        "jaxlike": _jaxlike_source(),
        "poi_test": POI_TEST,
        "fits": list(FITS),
        "optimizers": optimizers,
        "skipped": skipped,
        "minuit": {"tolerance": MINUIT_TOLERANCE, "strategy": MINUIT_STRATEGY},
        "exact_function": "jaxlike model.logpdf (conftest.logpdf); twice_nll = -2 logpdf",
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }
    out = {"meta": meta, "patches": {}}
    t0 = time.perf_counter()
    for name in args.patches:
        t = time.perf_counter()
        out["patches"][name] = run_patch(name, optimizers)
        print(f"{name}: {time.perf_counter() - t:.0f}s", flush=True)
    meta["generation_s"] = round(time.perf_counter() - t0, 1)
    meta["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(dumps(out))
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
