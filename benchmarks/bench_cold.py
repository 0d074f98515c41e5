"""Cold start beside pyhf: the first answer of a fresh process, compile included.

For each likelihood (the pyhf validation set, sbottom, ATLAS staus and ERJR, Belle II, and
synthetic workspaces of 3 to 1000 parameters) and each tool, a *fresh Python process* runs

    import → workspace and model → fit → hypotest (q̃, μ = 1) → upper limit (95% CLs)

and reports the wall time of every step (pyhf's limit only where its fit + hypotest took
≤ 20 s; a child is stopped after 15 min). Tools:

* ``jaxlike``        — no persistent compilation cache (``JAXLIKE_CACHE_DIR=``);
* ``jaxlike+cache``  — a second fresh process on a cache the first one filled;
* ``pyhf-numpy``, ``pyhf-jax`` — pyhf 0.7 with ``scipy_optimizer(tolerance=1e-10)``
  (converged; pyhf's default tolerance stops early on real likelihoods).

The "first answer" is fit + hypotest after import (the issue's acceptance measure). The
answers are compared too (|Δ2NLL| ≤ 2e-3 at the minima, observed CLs within 1e-3 relative),
so a fast wrong number cannot pass. ``--quick``: a smaller set (one validation workspace,
sbottom, Belle II, synthetic 3/100 parameters), no limits.
Run: ``python benchmarks/bench_cold.py [--quick]``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _common as C  # noqa: E402

DATA = Path(os.environ.get("JAXLIKE_DATA", C.default_data_dir()))
TOOLS = ("jaxlike", "jaxlike+cache", "pyhf-numpy", "pyhf-jax")
#: pyhf's limit (TOMS 748 on CLs, ~10-20 hypotests) is run only where its first answer took at
#: most this long: on the large likelihoods it would take an hour per process
PYHF_LIMIT_MAX_FIRST = 20.0


# ---------------------------------------------------------------------------- the workspaces
def synthetic_spec(npars: int) -> dict:
    """A one-channel workspace of exactly ``npars`` parameters: μ (normfactor on the signal),
    s scalar systematics (normsys and histosys in turn, 5–15% on the background) and one
    staterror γ per bin; seeded Poisson data around the background."""
    import numpy as np

    s = max(1, min(49, npars // 20 + (1 if npars < 20 else 0)))
    nb = npars - 1 - s
    if nb < 1:
        s, nb = npars - 2, 1
    rng = np.random.default_rng(npars)
    x = (np.arange(nb) + 0.5) / nb
    bkg = 200.0 * np.exp(-2.0 * x) + 20.0
    sig = 40.0 * np.exp(-0.5 * ((x - 0.4) / 0.15) ** 2) + 2.0
    mods = [{"name": "staterror_sr", "type": "staterror", "data": list(0.05 * bkg)}]
    for k in range(s):
        r = 0.05 + 0.1 * rng.random()
        if k % 2:
            mods.append({"name": f"norm_{k}", "type": "normsys",
                         "data": {"hi": 1 + r, "lo": 1 - r * 0.9}})  # fmt: skip
        else:
            tilt = 1 + r * (x - 0.5)
            hilo = {"hi_data": list(bkg * tilt), "lo_data": list(bkg / tilt)}
            mods.append({"name": f"shape_{k}", "type": "histosys", "data": hilo})
    obs = rng.poisson(bkg).astype(float)
    return {
        "channels": [{"name": "sr", "samples": [
            {"name": "signal", "data": list(sig),
             "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
            {"name": "background", "data": list(bkg), "modifiers": mods}]}],
        "observations": [{"name": "sr", "data": list(obs)}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }  # fmt: skip


def likelihoods(quick: bool, small: bool = False) -> list[dict]:
    """[{name, ws: path or None, patch: path or None, synth: npars or None, settings}];
    ``small``: only those of at most 10 parameters (the validation set, synthetic 3 and 10)."""
    out = []
    val = sorted((DATA / "pyhf_validation").glob("*.json"))
    for f in val[:1] if quick else val:
        out.append({"name": f.stem, "ws": str(f)})
    if small:
        return out + [{"name": f"synthetic {n} par", "synth": n} for n in (3, 10)]
    sb = DATA / "pyhf_validation" / "sbottom_regionA"
    out.append({"name": "sbottom_regionA 1300_205_60", "ws": str(sb / "BkgOnly.json"),
                "patch": str(sb / "patch.sbottom_1300_205_60.json")})  # fmt: skip
    if not quick:
        st = DATA / "atlas_staus_lowmass"
        out.append({"name": "ATLAS staus DS_120_1", "ws": str(st / "BkgOnly.json"),
                    "patch": str(st / "patch.DS_120_1_Staus.json")})  # fmt: skip
        er = DATA / "atlas_erjr"
        out.append({"name": "ATLAS ERJR 350p0_0p0", "ws": str(er / "BkgOnly.json"),
                    "patch": str(er / "patch.ERJR_350p0_0p0.json")})  # fmt: skip
    belle = DATA / "belle2_bknunu" / "combined_likelihood.json"
    out.append({"name": "Belle II B→Kνν̄", "ws": str(belle)})
    for n in (3, 100) if quick else (3, 10, 30, 100, 300, 1000):
        out.append({"name": f"synthetic {n} par", "synth": n})
    return out


def load_spec(case: dict) -> tuple[dict, dict | None]:
    """(workspace spec, modifier_settings or None) of a case, patches applied (jsonpatch)."""
    if case.get("synth"):
        return synthetic_spec(case["synth"]), None
    spec = json.loads(Path(case["ws"]).read_text())
    settings = None
    if "workspace" in spec:  # a pyhf validation file: workspace + settings
        settings = spec.get("settings", {}).get("modifier_settings")
        spec = spec["workspace"]
    if case.get("patch"):
        import jsonpatch

        patch = json.loads(Path(case["patch"]).read_text())
        ops = patch.get("patch", patch) if isinstance(patch, dict) else patch
        spec = jsonpatch.apply_patch(spec, ops)
    return spec, settings


# ------------------------------------------------------------------------------ child process
def child(tool: str, case: dict, limit: bool) -> dict:
    """One fresh-process run (see the module docstring); prints one JSON line."""
    t0 = time.perf_counter()
    spec, settings = load_spec(case)
    t_spec = time.perf_counter()
    out: dict = {}
    if tool.startswith("jaxlike"):
        import jax

        import jaxlike

        t_imp = time.perf_counter()
        ws = jaxlike.Workspace(spec)
        model = ws.model(modifier_settings=settings) if settings else ws.model()
        data = ws.data(model)
        t_ws = time.perf_counter()
        r = jaxlike.fit(model, data)
        jax.block_until_ready(r.bestfit)
        t_fit = time.perf_counter()
        h = jaxlike.hypotest(1.0, data, model)
        out["cls_obs"] = float(h.cls_obs)
        t_hyp = time.perf_counter()
        out["twice_nll"] = float(r.twice_nll)
        out["converged"] = bool(r.converged) and bool(h.converged)
        if limit:
            ul = jaxlike.upper_limit(data, model)
            out["limit_obs"] = float(ul.obs)
        t_lim = time.perf_counter()
        out["npars"] = model.config.npars
        out["programs"] = dict(jaxlike._compile.program_stats)
    else:
        pyhf = C.pyhf_backend(tool.split("-")[1])
        t_imp = time.perf_counter()
        ws = pyhf.Workspace(spec)
        model = ws.model(modifier_settings=settings) if settings else ws.model()
        data = ws.data(model)
        t_ws = time.perf_counter()
        bf, twice_nll = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
        t_fit = time.perf_counter()
        cls_obs = pyhf.infer.hypotest(1.0, data, model, test_stat="qtilde")
        t_hyp = time.perf_counter()
        out["twice_nll"] = float(twice_nll)
        out["cls_obs"] = float(cls_obs)
        out["converged"] = True
        if limit and t_hyp - t_ws <= PYHF_LIMIT_MAX_FIRST:
            try:
                obs, _ = pyhf.infer.intervals.upper_limits.upper_limit(data, model)
                out["limit_obs"] = float(obs)
            except TypeError as err:  # pyhf 0.7.6's TOMS 748 search caches on jax arrays
                out["limit_error"] = str(err)
                limit = False
        else:
            limit = False
        t_lim = time.perf_counter()
        out["npars"] = model.config.npars
    out.update(
        spec_s=t_spec - t0,
        import_s=t_imp - t_spec,
        workspace_s=t_ws - t_imp,
        fit_s=t_fit - t_ws,
        hypotest_s=t_hyp - t_fit,
        limit_s=(t_lim - t_hyp) if limit else None,
        first_answer_s=t_hyp - t_ws,
    )
    return out


def run_tool(tool: str, case: dict, limit: bool, timeout: float, cache: str) -> dict:
    """Run :func:`child` in a fresh process with the cache setting of ``tool``."""
    env_cache = cache if tool == "jaxlike+cache" else ""
    args = ["--child", tool, json.dumps(case)] + (["--limit"] if limit else [])
    old = os.environ.get("JAXLIKE_CACHE_DIR")
    os.environ["JAXLIKE_CACHE_DIR"] = env_cache
    try:
        if tool == "jaxlike+cache":  # fill the cache first, in a process of its own
            C.run_child(Path(__file__), args, timeout)
        return C.run_child(Path(__file__), args, timeout)
    except Exception as err:  # a timeout or a failure is a table cell, not the end of the run
        return {"error": type(err).__name__ if "Timeout" in type(err).__name__ else str(err)[-200:]}
    finally:
        if old is None:
            os.environ.pop("JAXLIKE_CACHE_DIR", None)
        else:
            os.environ["JAXLIKE_CACHE_DIR"] = old


def main(argv: list[str]) -> None:
    if "--child" in argv:
        k = argv.index("--child")
        print(json.dumps(child(argv[k + 1], json.loads(argv[k + 2]), "--limit" in argv)))
        return
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="5 likelihoods, no limits (~5 min)")
    p.add_argument("--no-limit", action="store_true", help="first answers only")
    p.add_argument("--small", action="store_true", help="≤ 10 parameters only, no limits")
    p.add_argument("--only", nargs="+", metavar="TEXT",
                   help="only the likelihoods whose name contains one of these texts")  # fmt: skip
    p.add_argument("--cores", type=int, default=2, help="CPU cores to pin to (default 2)")
    args = p.parse_args(argv)
    cores = C.pin_cores(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    quick = args.quick
    limit = not quick and not args.no_limit and not args.small
    timeout = 900.0
    m = C.describe_machine()
    print(C.fmt_machine(m), flush=True)
    load0 = C.load_1min()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        cases = likelihoods(quick, args.small)
        if args.only:
            cases = [c for c in cases if any(t in c["name"] for t in args.only)]
        for case in cases:
            res = {t: run_tool(t, case, limit, timeout, cache) for t in TOOLS}
            rows.append(_row(case, res, limit))
            print(json.dumps({"case": case["name"], **res}), flush=True)
    cols = ("likelihood", "pars", *(f"{t} first answer" for t in TOOLS), "+cache programs",
            "jaxlike limit", "pyhf-numpy limit", "agree", "cold ≤ pyhf-numpy",
            "cold < pyhf-jax")  # fmt: skip
    pre = (f"{C.fmt_machine_short(m, load0, C.load_1min(), cores)}; first answer = fit + "
           "q̃ hypotest at μ = 1 after import, fresh process each; limits after that")  # fmt: skip
    C.print_rows("bench_cold.py — first answer, compile included (s)", rows, cols, pre)


def _fmt(r: dict, key: str) -> str:
    if "error" in r:
        return "timeout" if "Timeout" in r["error"] else "failed"
    v = r.get(key)
    return "—" if v is None else f"{v:.2f}"


def _row(case: dict, res: dict, limit: bool) -> dict:
    j, jn, jj = res["jaxlike"], res["pyhf-numpy"], res["pyhf-jax"]
    row = {"likelihood": case["name"], "pars": str(j.get("npars", jn.get("npars", "?")))}
    for t in TOOLS:
        row[f"{t} first answer"] = _fmt(res[t], "first_answer_s")
    pc = res["jaxlike+cache"].get("programs")
    row["+cache programs"] = f"{pc['loaded']} loaded, {pc['exported']} new" if pc else "—"
    if limit:
        row["jaxlike limit"] = _fmt(j, "limit_s")
        row["pyhf-numpy limit"] = _fmt(jn, "limit_s")
    agree = []
    for ref in (jn, jj):
        if "error" in ref or "error" in j:
            continue
        d_nll = abs(j["twice_nll"] - ref["twice_nll"])
        d_cls = abs(j["cls_obs"] - ref["cls_obs"]) / max(abs(ref["cls_obs"]), 1e-12)
        agree.append(d_nll <= 2e-3 and d_cls <= 1e-3)  # 2NLL absolute, CLs relative
    row["agree"] = ("yes" if all(agree) else "NO") if agree else "—"
    if "error" not in j:
        fa = j["first_answer_s"]
        row["cold ≤ pyhf-numpy"] = (
            "—" if "error" in jn else ("yes" if fa <= jn["first_answer_s"] else "no")
        )
        row["cold < pyhf-jax"] = (
            "—" if "error" in jj else ("yes" if fa < jj["first_answer_s"] else "no")
        )
    return row


if __name__ == "__main__":
    main(sys.argv[1:])
