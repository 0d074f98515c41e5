"""How often each minimiser reaches the minimum on the stress workspaces, and how fast.

The cases are the random workspaces of ``tests/_stress.py`` (12 families built to put minima on
interpolation kinks, next to them, on bounds, in flat and correlated directions, with extreme
normsys); the pyhf fits are read from the reference file of ``tests/make_stress_refs.py``
(``tests/data/stress_refs.npz``): the five fits of a q̃ test at μ = 1 per case with

- pyhf default: numpy backend, ``scipy_optimizer()`` (SLSQP, SciPy's ftol 1e-6),
- pyhf SLSQP 1e-10: numpy backend, ``scipy_optimizer(tolerance=1e-10)``,
- pyhf-jax SLSQP 1e-12: jax backend (exact gradients),
- MINUIT: numpy backend, ``minuit_optimizer(tolerance=1e-6, strategy=2)``.

jaxlike runs the same five fits on the same data vectors (``jaxlike.fit.fit_arrays``, pyhf's
initial values and bounds), once vmapped over all cases of a family (one compiled function per
family) and once one fit at a time (one compiled function per family layout, called per fit).
A fit *reaches the minimum* when its exact 2NLL (jaxlike's ``twice_nll`` at its parameters, one
function for every tool) is within 1e-6 of the lowest 2NLL any tool found for that fit.
"Claims" is the tool's own convergence flag (pyhf: no ``FailedMinimization``; jaxlike:
``converged``); "false claims" are fits that claim convergence without reaching the minimum.

Times per fit: jaxlike warm (compiled), median of ``--repeats``; pyhf from the reference run
(2 worker processes on a shared machine; pyhf-jax includes its per-model jit compilation, which
a new pyhf Model always pays) or, with ``--pyhf-live N``, re-measured here on N cases per family
in this process.

Usage::

    python benchmarks/bench_convergence.py [--refs tests/data/stress_refs.npz]
        [--n-per-family 9] [--pyhf-live 0] [--json out.json]
"""

from __future__ import annotations

import os
import time

T_START = time.perf_counter()
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _common import describe_machine, fmt_machine, fmt_s, load_1min, print_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import _stress  # noqa: E402

TOL = 1e-6
PYHF_LABELS = {
    "numpy_default": "pyhf default (numpy SLSQP)",
    "numpy_slsqp": "pyhf numpy SLSQP 1e-10",
    "jax_slsqp": "pyhf-jax SLSQP 1e-12",
    "minuit": "pyhf MINUIT tol 1e-6 s2",
}


def load(path, n):
    raw = np.load(path)
    opts = [str(x) for x in raw["optimizers"]]
    fams = {}
    for fam in (str(f) for f in raw["families"]):
        d = {k.split("__", 1)[1]: raw[k] for k in raw.files if k.startswith(fam + "__")}
        fams[fam] = {k: (v[:n] if k != "par_names" else v) for k, v in d.items()}
    return opts, fams, json.loads(str(raw["meta"]))


def jaxlike_family(family, ref, repeats):
    """jaxlike on one family: vmapped and one-by-one fits, exact 2NLL of every pyhf vector."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import jaxlike
    from jaxlike.fit import fit_arrays

    models = []
    for seed in ref["seed"]:
        spec, info = _stress.make_workspace(int(seed), family)
        models.append(_stress.jaxlike_model(spec, info))
    stacked = jaxlike.stack_models(models)
    data, asimov = jnp.asarray(ref["data"]), jnp.asarray(ref["asimov"])
    vm = eqx.filter_jit(jax.vmap(_stress.five_fits))
    t = time.perf_counter()
    res, nll = jax.block_until_ready(vm(stacked, data, asimov))
    first = time.perf_counter() - t
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(vm(stacked, data, asimov))
        runs.append(time.perf_counter() - t)
    n_fits = nll.size
    # one fit at a time: one compiled fit per layout, called per case and fit
    one = eqx.filter_jit(fit_arrays)
    rows = eqx.filter_jit(_stress.fit_rows)
    tnll = eqx.filter_jit(lambda m, p, d: m.twice_nll(p, d))
    calls = []
    for i, m in enumerate(models):
        inits, lo, hi, fixed = rows(m)
        for j in range(5):
            d = data[i] if j < 3 else asimov[i]
            calls.append((m, d, inits[j], lo, hi, fixed[j]))
    jax.block_until_ready(one(*calls[0]))  # compile
    t = time.perf_counter()
    singles = [one(*c) for c in calls]
    jax.block_until_ready(singles)
    t_single = time.perf_counter() - t
    single_nll = np.array([float(tnll(c[0], s.bestfit, c[1])) for c, s in zip(calls, singles)])
    # exact 2NLL of the stored pyhf vectors
    exact = eqx.filter_jit(
        jax.vmap(
            lambda m, p, d, a: jax.vmap(jax.vmap(m.twice_nll), in_axes=(0, None))(
                jnp.where(jnp.isfinite(p), p, 0.0), jnp.stack([d, d, d, a, a])
            )
        )
    )
    pars = ref["pars"]
    ex = np.asarray(exact(stacked, jnp.asarray(pars), data, asimov))
    ex = np.where(np.all(np.isfinite(pars), -1), ex, np.nan)
    return {
        "nll": np.asarray(nll),
        "converged": np.asarray(res.converged),
        "single_nll": single_nll.reshape(nll.shape),
        "single_converged": np.array([bool(s.converged) for s in singles]).reshape(nll.shape),
        "pyhf_exact": ex,  # [cases, optimizers, 5]
        "t_vmap_first": first,
        "t_vmap": statistics.median(runs),
        "t_single": t_single,
        "n_fits": n_fits,
    }


def pyhf_live(families, n, opts):
    """Re-time pyhf's fits on the first ``n`` cases per family in this process."""
    import make_stress_refs as mk

    secs = {o: [] for o in opts}
    for fam in families:
        for seed in list(_stress.DEFAULT_SEEDS)[:n]:
            out = mk.run_case(fam, seed)
            for k, o in enumerate(opts):
                secs[o] += list(out["seconds"][k])
    return secs


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--refs", type=Path, default=ROOT / "tests" / "data" / "stress_refs.npz")
    p.add_argument("--n-per-family", type=int, default=9, help="cases per family (≤ stored)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of the vmapped fits")
    p.add_argument("--pyhf-live", type=int, default=0, help="re-time pyhf on N cases/family")
    p.add_argument("--json", type=Path, help="write all numbers to this JSON file")
    args = p.parse_args()

    machine = describe_machine()
    load0 = load_1min()
    import jax

    import jaxlike  # noqa: F401

    opts, fams, meta = load(args.refs, args.n_per_family)
    print(fmt_machine(machine))
    print(f"references: {args.refs} ({meta.get('created')}, {meta.get('n_per_family')} per "
          f"family, {meta.get('workers')} workers, load {meta.get('load_avg_start')}"
          f" → {meta.get('load_avg_end')})")  # fmt: skip

    tools = [*opts, "jaxlike"]
    reach = {t: [] for t in tools}
    claim = {t: [] for t in tools}
    secs = {o: [] for o in opts}
    per_family, per_fit = {}, {t: np.zeros((2, 5)) for t in tools}
    jl_time = {"vmap": 0.0, "single": 0.0, "first": 0.0, "fits": 0}
    mismatch = 0
    for fam, ref in fams.items():
        r = jaxlike_family(fam, ref, args.repeats)
        allv = np.concatenate([r["pyhf_exact"], r["nll"][:, None]], axis=1)  # [cases, tools, 5]
        best = np.nanmin(np.where(np.isfinite(allv), allv, np.inf), axis=1)
        ok = allv <= best[:, None] + TOL
        claims = np.concatenate([ref["success"], r["converged"][:, None]], axis=1)
        per_family[fam] = {t: float(ok[:, k].mean()) for k, t in enumerate(tools)}
        for k, t in enumerate(tools):
            reach[t] += list(ok[:, k].ravel())
            claim[t] += list(claims[:, k].ravel())
            per_fit[t] += np.stack([ok[:, k].sum(0), np.full(5, ok.shape[0])])
        for k, o in enumerate(opts):
            secs[o] += list(ref["seconds"][:, k].ravel())
        single_ok = r["single_nll"] <= best + TOL
        mismatch += int(np.sum(single_ok != ok[:, -1]))
        jl_time["vmap"] += r["t_vmap"]
        jl_time["single"] += r["t_single"]
        jl_time["first"] += r["t_vmap_first"]
        jl_time["fits"] += r["n_fits"]
        print(f"{fam}: {ok.shape[0]} cases, jaxlike reaches {ok[:, -1].mean():.1%}, "
              f"vmapped {r['t_vmap'] * 1e3:.1f} ms for {r['n_fits']} fits", flush=True)  # fmt: skip
    if args.pyhf_live:
        secs = pyhf_live(list(fams), args.pyhf_live, opts)

    n = jl_time["fits"]
    t_vm, t_one = jl_time["vmap"] / n, jl_time["single"] / n
    rows = []
    for t in tools:
        okv, cl = np.asarray(reach[t]), np.asarray(claim[t])
        row = {"minimiser": PYHF_LABELS.get(t, t), "fits": str(okv.size),
               "reach min": f"{okv.mean():.1%}", "claims conv.": f"{cl.mean():.1%}",
               "false claims": f"{np.mean(cl & ~okv):.1%}"}  # fmt: skip
        if t == "jaxlike":
            row["time/fit"] = f"{fmt_s(t_vm)} vmapped; {fmt_s(t_one)} one by one"
            row["× jaxlike vmapped"] = "1"
        else:
            s = np.asarray(secs[t], float)
            row["time/fit"] = f"mean {fmt_s(np.nanmean(s))}, median {fmt_s(np.nanmedian(s))}"
            row["× jaxlike vmapped"] = f"{np.nanmean(s) / t_vm:.0f}"
            row["× jaxlike 1-by-1"] = f"{np.nanmean(s) / t_one:.0f}"
        rows.append(row)
    cols = ("minimiser", "fits", "reach min", "claims conv.", "false claims", "time/fit",
            "× jaxlike vmapped", "× jaxlike 1-by-1")  # fmt: skip
    machine_s = f"{machine['cpu']}, load {load0:.1f} → {load_1min():.1f}"
    tables = [print_rows("Reaching the minimum (within 1e-6 in exact 2NLL of the best of all)",
                         rows, cols, preamble=f"{len(fams)} families; {machine_s}; jaxlike "
                         f"compile+first call {jl_time['first']:.1f} s over all families; "
                         f"vmapped vs one-by-one disagree on {mismatch} fits")]  # fmt: skip
    frows = [{"family": f, **{PYHF_LABELS.get(t, t): f"{v:.0%}" for t, v in d.items()}}
             for f, d in per_family.items()]  # fmt: skip
    tables.append(print_rows("Per family: fraction reaching the minimum", frows,
                             ("family", *(PYHF_LABELS.get(t, t) for t in tools))))  # fmt: skip
    xrows = [{"minimiser": PYHF_LABELS.get(t, t),
              **{f: f"{v[0, j] / v[1, j]:.0%}" for j, f in enumerate(_stress.FITS)}}
             for t, v in per_fit.items()]  # fmt: skip
    tables.append(print_rows("Per fit of the q̃ test: fraction reaching the minimum", xrows,
                             ("minimiser", *_stress.FITS)))  # fmt: skip
    print(f"\ntotal {time.perf_counter() - T_START:.0f} s; jax {jax.__version__}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rows": rows, "families": frows,
                                         "fits": xrows, "jaxlike_time": jl_time}, indent=1))


if __name__ == "__main__":
    main()
