"""Helpers shared by the benchmark scripts: machine description, timing, tables, pyhf setup.

Nothing here imports jaxlike or JAX at import time, so a script sets its environment (BLAS
threads) before importing this module. Also holds the data helpers: ERJR patch selection, layout
grouping, the synthetic 40-bin model of benchmark C, and the pyhf reference runs. Times are
wall-clock seconds (:func:`time.perf_counter`); every JAX result is waited for with
:func:`jax.block_until_ready` before the clock stops.
"""

from __future__ import annotations

import datetime as _dt
import faulthandler
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

# jaxlike switches on JAX's persistent compilation cache when imported; a benchmark measures
# compilation, so it runs without one unless it sets its own (bench_core's end-to-end
# children, bench_cold's "jaxlike+cache" rows). Set here, before any script imports jaxlike.
os.environ.setdefault("JAXLIKE_CACHE_DIR", "")

__all__ = [
    "many_bins_spec",
    "erjr_paths",
    "erjr_subset",
    "group_layouts",
    "ratio",
    "synth_background",
    "synth_channels",
    "synth_templates",
    "NBINS",
    "CacheCounter",
    "default_data_dir",
    "describe_machine",
    "fmt_machine",
    "fmt_s",
    "max_rel_diff",
    "peak_rss_mb",
    "print_table",
    "erjr_pyhf",
    "pyhf_backend",
    "pyhf_belle",
    "pyhf_template_fits",
    "who_is_lower",
    "run_child",
    "timed",
    "verdict",
    "load_1min",
    "fmt_machine_short",
    "print_rows",
    "run_child_on_cores",
    "pyhf_window_runs",
    "pyhf_hypotest_nlls",
]


def pin_cores(argv) -> int:
    """Apply ``--cores N`` (default 2) from ``argv`` to this process's CPU affinity; call it
    before JAX is imported (XLA sizes its thread pool at start). Returns the cores in use."""
    n = 2
    for k, a in enumerate(argv):
        if a == "--cores" and k + 1 < len(argv):
            n = int(argv[k + 1])
        elif a.startswith("--cores="):
            n = int(a.split("=", 1)[1])
    avail = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if n and avail and n < len(avail):
        os.sched_setaffinity(0, avail[:n])
    return len(os.sched_getaffinity(0)) if avail else os.cpu_count()


def default_data_dir() -> Path:
    """The shared data folder next to the checkout (``<checkout>/../shared/data``)."""
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def _cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (falls back to :func:`platform.processor`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    """Total memory in GiB from /proc/meminfo (0 if unavailable)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_machine() -> dict:
    """CPU, cores, RAM, load, library versions and thread settings of this run, as a dict."""
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_gib": round(_ram_gib(), 1),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "versions": {
            d: _version(d) for d in ("jax", "jaxlib", "jaxlike", "pyhf", "numpy", "scipy")
        },
        "env": {k: os.environ.get(k, "") for k in ("OPENBLAS_NUM_THREADS", "XLA_FLAGS")},
    }


def fmt_machine(m: dict) -> str:
    """Human-readable block for the top of the report."""
    v = m["versions"]
    return "\n".join(
        [
            f"date     : {m['date']}",
            f"machine  : {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), "
            f"{m['ram_gib']} GiB RAM, load avg {m['load_avg_1_5_15']} at start",
            f"software : python {m['python']}, jax {v['jax']} (jaxlib {v['jaxlib']}), "
            f"jaxlike {v['jaxlike']}, pyhf {v['pyhf']}, numpy {v['numpy']}, scipy {v['scipy']}",
            f"env      : OPENBLAS_NUM_THREADS={m['env']['OPENBLAS_NUM_THREADS'] or '(unset)'} "
            f"XLA_FLAGS={m['env']['XLA_FLAGS'] or '(unset)'}",
        ]
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, *args, repeats: int = 3, watchdog_s: float = 900):
    """Run ``fn(*args)`` once (first call: tracing + compilation + run) then ``repeats`` times.

    Returns ``(first_s, median_s, result)``; every call is waited for with
    ``jax.block_until_ready``. A call that takes longer than ``watchdog_s`` dumps the Python
    stacks and exits: jaxlib 0.10's batched CPU LAPACK kernels can deadlock (README.md).
    """
    import jax

    runs = []
    for _ in range(repeats + 1):
        faulthandler.dump_traceback_later(watchdog_s, exit=True)
        t = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        runs.append(time.perf_counter() - t)
        faulthandler.cancel_dump_traceback_later()
    return runs[0], statistics.median(runs[1:] or runs), out


def max_rel_diff(a, b) -> float:
    """max |a − b| / max(|b|, tiny) over the entries where both are finite (b is the
    reference; a NaN from either tool is reported separately by the caller)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return float("nan")
    return float(np.max(np.abs(a[ok] - b[ok]) / np.maximum(np.abs(b[ok]), 1e-300)))


def fmt_s(x) -> str:
    """Seconds with 3 significant digits, or '—' for None."""
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:.0f} s"
    return f"{x:.3g} s" if x >= 1e-3 else f"{x * 1e3:.3g} ms"


def verdict(ok: bool | None) -> str:
    """PASS / FAIL / '—' (no target)."""
    return "—" if ok is None else ("PASS" if ok else "FAIL")


COLUMNS = (
    "task",
    "jaxlike 1st call",
    "jaxlike steady",
    "pyhf-numpy",
    "pyhf-jax",
    "ratio",
    "target",
    "result",
    "agreement",
)


def print_table(title: str, rows: list[dict]) -> str:
    """Print (and return) a Markdown table; rows map column names to already formatted text."""
    cells = [[str(r.get(c, "—")) for c in COLUMNS] for r in rows]
    width = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(COLUMNS)]

    def line(vals):
        return "| " + " | ".join(v.ljust(w) for v, w in zip(vals, width, strict=True)) + " |"

    text = "\n".join(
        [f"\n### {title}\n", line(COLUMNS), "|" + "|".join("-" * (w + 2) for w in width) + "|"]
        + [line(r) for r in cells]
    )
    print(text, flush=True)
    return text


def pyhf_backend(name: str):
    """Switch pyhf to ``name`` ("numpy" or "jax") with a converged SciPy optimizer.

    pyhf's default SLSQP tolerance stops early on real likelihoods (see the data READMEs), so
    every pyhf number in these benchmarks uses ``scipy_optimizer(tolerance=1e-10)``.
    """
    import pyhf

    pyhf.set_backend(name, pyhf.optimize.scipy_optimizer(tolerance=1e-10))
    return pyhf


class CacheCounter:
    """Counts JAX persistent-compilation-cache hits and misses (``jax.monitoring`` events)."""

    def __init__(self):
        import jax

        self.hits = self.misses = 0
        jax.monitoring.register_event_listener(self._on_event)

    def _on_event(self, event: str, **_kwargs):
        if event == "/jax/compilation_cache/cache_hits":
            self.hits += 1
        elif event == "/jax/compilation_cache/cache_misses":
            self.misses += 1


def run_child(script: Path, args: list[str], timeout: float) -> dict:
    """Run ``python script args`` in a fresh process and return the JSON object it prints last,
    plus ``wall_s``: the child's wall time seen from here (interpreter start and imports too)."""
    return _run_json_child([sys.executable, str(script), *args], timeout)


def _run_json_child(cmd: list[str], timeout: float) -> dict:
    """Run ``cmd``; its last stdout line is a JSON object, returned with ``wall_s`` added."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    return out


# ----------------------------------------------------------------------------- data helpers
def ratio(slow, fast) -> str:
    """'×N' speed-up of ``fast`` over ``slow`` ('—' if either is missing)."""
    return "—" if slow is None or fast is None else f"×{slow / fast:.3g}"


def erjr_paths(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "atlas_erjr").glob("patch.*.json"))


def erjr_subset(paths: list[Path], k: int) -> list[Path]:
    """k patches spread evenly over the sorted list (none if k ≤ 0, all if k ≥ len)."""
    if k <= 0 or k >= len(paths):
        return paths[: max(k, 0)]
    return [paths[i] for i in sorted(set(np.linspace(0, len(paths) - 1, k).round().astype(int)))]


def group_layouts(models: list) -> list[list[int]]:
    """Indices of models grouped by identical layout (config and wiring)."""
    groups: list[list[int]] = []
    for i, m in enumerate(models):
        for g in groups:
            if models[g[0]].config == m.config and models[g[0]].wiring == m.wiring:
                g.append(i)
                break
        else:
            groups.append([i])
    return groups


NBINS = 40


def synth_background(rng):
    """Falling background, its staterror, a ±5% normsys and a tilting histosys; Poisson data."""
    x = np.arange(NBINS) + 0.5
    bkg = 800.0 * np.exp(-x / 15.0) + 30.0
    tilt = 0.08 * (x / NBINS - 0.5)
    return bkg, 0.05 * bkg, bkg * (1 + tilt), bkg * (1 - tilt), rng.poisson(bkg).astype(float)


def synth_templates(rng, n: int) -> np.ndarray:
    """n Gaussian signal bumps (centre, width, yield drawn at random), shape [n, NBINS]."""
    x = np.arange(NBINS) + 0.5
    c, w, s = rng.uniform(4, 36, n), rng.uniform(1.0, 4.0, n), rng.uniform(20, 200, n)
    shape = np.exp(-0.5 * ((x[None] - c[:, None]) / w[:, None]) ** 2)
    return s[:, None] * shape / shape.sum(axis=1, keepdims=True)


def synth_channels(signal, bkg, unc, hi, lo) -> list:
    """pyhf-JSON channel list: mu on the signal; staterror, normsys, histosys on background."""
    mods = [
        {"name": "staterror_SR", "type": "staterror", "data": unc.tolist()},
        {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}},
        {
            "name": "bkg_shape",
            "type": "histosys",
            "data": {"hi_data": hi.tolist(), "lo_data": lo.tolist()},
        },
    ]
    return [
        {
            "name": "SR",
            "samples": [
                {
                    "name": "signal",
                    "data": list(map(float, signal)),
                    "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                },
                {"name": "background", "data": bkg.tolist(), "modifiers": mods},
            ],
        }
    ]


def many_bins_spec(nbins: int, variant: str = "shapesys", seed: int = 0) -> dict:
    """pyhf workspace with one channel of ``nbins`` bins (bench_bins; same as the tests'
    ``tests/test_arrowhead.py::many_bins_spec``): a Gaussian signal bump with normfactor ``mu``
    (yield ∝ 1/√nbins, so CLs(μ = 1) stays O(0.1)) on a falling background with one shapesys γ
    per bin. ``variant="full"``: also a staterror on signal and background (two local γ per
    bin), normsys on both, a background histosys and a third sample with a normsys and lumi."""
    rng = np.random.default_rng(seed)
    x = (np.arange(nbins) + 0.5) / nbins
    bkg = 50.0 * np.exp(-2.0 * x) + 5.0
    sig = 3.0 * np.sqrt(300.0 / nbins) * (np.exp(-0.5 * ((x - 0.5) / 0.05) ** 2) + 0.03)
    bmods = [{"name": "bkg_unc", "type": "shapesys", "data": (0.1 * bkg).tolist()}]
    smods = [{"name": "mu", "type": "normfactor", "data": None}]
    samples = [
        {"name": "signal", "data": sig.tolist(), "modifiers": smods},
        {"name": "background", "data": bkg.tolist(), "modifiers": bmods},
    ]
    expected = bkg + 0.5 * sig
    params = []
    if variant == "full":
        tilt = 0.08 * (x - 0.5)
        other = 10.0 + 5.0 * x
        hist = {"hi_data": (bkg * (1 + tilt)).tolist(), "lo_data": (bkg * (1 - tilt)).tolist()}
        bmods += [
            {"name": "staterror_SR", "type": "staterror", "data": (0.05 * bkg).tolist()},
            {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}},
            {"name": "bkg_shape", "type": "histosys", "data": hist},
        ]
        smods += [
            {"name": "sig_eff", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
            {"name": "staterror_SR", "type": "staterror", "data": (0.03 * sig).tolist()},
            {"name": "lumi", "type": "lumi", "data": None},
        ]
        samples.append({"name": "other", "data": other.tolist(), "modifiers": [
            {"name": "other_norm", "type": "normsys", "data": {"hi": 1.2, "lo": 0.85}},
            {"name": "lumi", "type": "lumi", "data": None}]})  # fmt: skip
        params = [{"name": "lumi", "auxdata": [1.0], "sigmas": [0.02], "inits": [1.0],
                   "bounds": [[0.5, 1.5]]}]  # fmt: skip
        expected = expected + other
    obs = rng.poisson(expected).astype(float)
    return {
        "channels": [{"name": "SR", "samples": samples}],
        "observations": [{"name": "SR", "data": obs.tolist()}],
        "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": params}}],
        "version": "1.0.0",
    }


# ----------------------------------------------------------------------------- pyhf reference runs
def pyhf_belle(backend: str, spec: dict, hypotest: bool) -> dict:
    """One converged pyhf MLE (and optionally one q̃ hypotest at μ = 1) on the Belle II spec."""
    pyhf = pyhf_backend(backend)
    ws = pyhf.Workspace(spec)
    model = ws.model()
    data = ws.data(model)
    t = time.perf_counter()
    pars, twice_nll = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
    out = {
        "mle_s": time.perf_counter() - t,
        "twice_nll": float(twice_nll),
        "mu_hat": float(pars[model.config.poi_index]),
    }
    if hypotest:
        t = time.perf_counter()
        obs, exp = pyhf.infer.hypotest(
            1.0, data, model, test_stat="qtilde", return_expected_set=True
        )
        out.update(hypotest_s=time.perf_counter() - t, cls=[float(obs)] + [float(e) for e in exp])
    return out


def erjr_pyhf(data_dir: Path, paths: list[Path], ul_paths: list[Path]) -> dict:
    """pyhf-numpy: hypotest at μ = 1 for ``paths``, toms748 upper limits for ``ul_paths``."""
    pyhf = pyhf_backend("numpy")
    ws = pyhf.Workspace(json.loads((data_dir / "atlas_erjr" / "BkgOnly.json").read_text()))
    out = {
        "build_s": 0.0,
        "hypotest_s": [],
        "ul_s": [],
        "ul_failed": [],
        "cls": {},
        "ul": {},
        "nll": {},
    }
    for p in paths:
        t = time.perf_counter()
        model = ws.model(patches=[json.loads(p.read_text())])
        data = ws.data(model)
        out["build_s"] += time.perf_counter() - t
        t = time.perf_counter()
        obs, exp = pyhf.infer.hypotest(
            1.0, data, model, test_stat="qtilde", return_expected_set=True
        )
        out["hypotest_s"].append(time.perf_counter() - t)
        out["cls"][p.name] = [float(obs)] + [float(e) for e in exp]
        if p in ul_paths:
            t = time.perf_counter()
            try:
                obs, exp = pyhf.infer.intervals.upper_limits.upper_limit(data, model, level=0.05)
                out["ul_s"].append(time.perf_counter() - t)
                out["ul"][p.name] = [float(obs)] + [float(e) for e in exp]
            except Exception as err:  # noqa: BLE001 - pyhf's SLSQP fails on some patches
                out["ul_failed"].append(f"{p.name}: {type(err).__name__}")
        out["nll"][p.name] = (model, data)
    return out


def who_is_lower(pyhf_out: dict, name: str, jl_free: float, jl_fixed: float) -> str:
    """For a CLs disagreement: both tools' free and μ=1 fit minima on the patch's own model
    (the lower minimum is the right one)."""
    import pyhf

    model, data = pyhf_out["nll"][name]
    _, free = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
    _, fixed = pyhf.infer.mle.fixed_poi_fit(1.0, data, model, return_fitted_val=True)
    d_free, d_fixed = jl_free - float(free), jl_fixed - float(fixed)
    return f"{name}: 2NLL jaxlike−pyhf free fit {d_free:+.3g}, μ=1 fit {d_fixed:+.3g}"


def pyhf_template_fits(templates, bkg, unc, hi, lo, obs) -> dict:
    """Converged pyhf-numpy MLE per signal template (a new pyhf Model each; fit time only)."""
    pyhf = pyhf_backend("numpy")
    out = {"fit_s": [], "twice_nll": [], "mu_hat": []}
    for s in templates:
        model = pyhf.Model({"channels": synth_channels(s, bkg, unc, hi, lo)}, poi_name="mu")
        t = time.perf_counter()
        data = list(obs) + model.config.auxdata
        pars, nll = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
        out["fit_s"].append(time.perf_counter() - t)
        out["twice_nll"].append(float(nll))
        out["mu_hat"].append(float(pars[model.config.poi_index]))
    return out


# ----------------------------------------------------------------------------- scans (bench_scan)
def load_1min() -> float:
    """The 1-minute load average now."""
    return round(os.getloadavg()[0], 2)


def fmt_machine_short(m: dict, load_start: float, load_end: float, cores=None) -> str:
    """One table cell: CPU, cores (``cores`` used if given), 1-min load at start → end."""
    used = m["cores_usable"] if cores is None else cores
    return f"{m['cpu']}, {used}/{m['cores']} cores, load {load_start:.1f}→{load_end:.1f}"


def print_rows(title: str, rows: list[dict], columns: tuple, preamble: str = "") -> str:
    """Print (and return) a Markdown table with the given columns (missing cells: '—')."""
    cells = [[str(r.get(c, "—")) for c in columns] for r in rows]
    width = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]

    def line(vals):
        return "| " + " | ".join(v.ljust(w) for v, w in zip(vals, width, strict=True)) + " |"

    head = [f"\n### {title}\n"] + ([preamble, ""] if preamble else [])
    text = "\n".join(
        head
        + [line(columns), "|" + "|".join("-" * (w + 2) for w in width) + "|"]
        + [line(r) for r in cells]
    )
    print(text, flush=True)
    return text


def run_child_on_cores(script: Path, args: list[str], timeout: float, cores: int | None) -> dict:
    """:func:`run_child`, with the child pinned to the first ``cores`` CPUs this process may
    use; None or more than available: no pinning. A two-line bootstrap (``python -c``) calls
    ``sched_setaffinity`` before the script imports anything, so XLA sizes its thread pool to
    those CPUs (no ``preexec_fn``: forking a threaded JAX process is unsafe). Returns the
    child's last JSON line plus ``wall_s`` and ``cpus`` (the CPU ids it was given)."""
    avail = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    cpus = avail[:cores] if cores and avail and cores < len(avail) else avail
    boot = (
        "import os, runpy, sys\n"
        f"if {cpus!r}: os.sched_setaffinity(0, {cpus!r})\n"
        f"sys.argv = [{str(script)!r}] + sys.argv[1:]; sys.path.insert(0, {str(script.parent)!r})\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    out = _run_json_child([sys.executable, "-c", boot, *args], timeout)
    out["cpus"] = cpus
    return out


def pyhf_window_runs(specs: list[dict], test_poi: float, level: float = 0.05) -> dict:
    """pyhf-numpy on each workspace spec: build, q̃ hypotest at ``test_poi`` (obs + expected
    band) and the toms748 upper limit (``upper_limit(data, model, level)``, POI bounds of the
    model as bracket). Times per workspace; ``models`` keeps (model, data) for fit checks."""
    pyhf = pyhf_backend("numpy")
    out = {"build_s": [], "hypotest_s": [], "ul_s": [], "cls": [], "ul": [], "ul_failed": [],
           "models": []}  # fmt: skip
    for i, spec in enumerate(specs):
        t = time.perf_counter()
        ws = pyhf.Workspace(spec)
        model = ws.model()
        data = ws.data(model)
        out["build_s"].append(time.perf_counter() - t)
        t = time.perf_counter()
        obs, exp = pyhf.infer.hypotest(
            test_poi, data, model, test_stat="qtilde", return_expected_set=True
        )
        out["hypotest_s"].append(time.perf_counter() - t)
        out["cls"].append([float(obs)] + [float(e) for e in exp])
        t = time.perf_counter()
        try:
            obs, exp = pyhf.infer.intervals.upper_limits.upper_limit(data, model, level=level)
            out["ul"].append([float(obs)] + [float(e) for e in exp])
        except Exception as err:  # noqa: BLE001 - report, do not abort the benchmark
            out["ul"].append([float("nan")] * 6)
            out["ul_failed"].append(f"workspace {i}: {type(err).__name__}: {err}")
        out["ul_s"].append(time.perf_counter() - t)
        out["models"].append((model, data))
    return out


def pyhf_hypotest_nlls(model, data, mu: float) -> list[float]:
    """2NLL of pyhf's five q̃ fits at ``mu``, in jaxlike's order (``HypoTestResult.twice_nll``):
    free and μ-conditional fit to data, μ=0 fit to data (Asimov construction), free and
    μ-conditional fit to that Asimov dataset (main + auxdata from the μ=0 fit)."""
    import pyhf

    mle = pyhf.infer.mle
    free = mle.fit(data, model, return_fitted_val=True)[1]
    cond = mle.fixed_poi_fit(mu, data, model, return_fitted_val=True)[1]
    pars0, null = mle.fixed_poi_fit(0.0, data, model, return_fitted_val=True)
    asimov = model.expected_data(pars0)
    free_a = mle.fit(asimov, model, return_fitted_val=True)[1]
    cond_a = mle.fixed_poi_fit(mu, asimov, model, return_fitted_val=True)[1]
    return [float(x) for x in (free, cond, null, free_a, cond_a)]
