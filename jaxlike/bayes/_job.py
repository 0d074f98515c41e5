"""A posterior analysis from a configuration: model, priors, NUTS, report, prior variants.

The configuration (TOML or JSON, or a dict) is validated before anything is compiled::

    [model]
    workspace = "ws.json"            # any workspace (reweight modifiers included), or
    belle2_wet = "../shared/data/belle2_bknunu"   # the Belle II WET reinterpretation
    measurement = "..."              # optional

    [sampler]                        # sample_posterior's settings
    chains = 4
    warmup = 1000
    samples = 2000
    seed = 0
    dense_mass = "auto"

    [priors]                         # free parameters; default uniform within the bounds
    C_V = { type = "uniform" }       # uniform | truncated_normal (loc, scale) |
                                     # log_uniform | uniform_in_square (low/high optional)
    [report]
    parameters = ["C_V", "C_S", "C_T"]   # summarised and drawn in the corner plot
    mirror = ["C_V", "C_S", "C_T"]       # enter only squared: report |θ|, plot ±θ
    hdi = [0.68, 0.95]
    reference = { C_V = 6.613114906357177, C_S = 0.0, C_T = 0.0 }   # marked (e.g. the SM)

    [[variant]]                      # prior-sensitivity runs: same model, other priors
    name = "truncated_normal"
    priors = { C_V = { type = "truncated_normal", loc = 6.613, scale = 20 } }

:func:`run_posterior_job` writes, into the output folder, ``posterior.h5`` (all draws, see
:meth:`Posterior.to_hdf5`), ``posterior_<variant>.h5``, ``summary.json`` (MLE, and per
parameter and variant: posterior mode and HDIs of |θ| for mirrored parameters, mean, sd,
credible upper limits, R̂, ESS, divergences) and ``corner.png`` / ``corner_<variant>.png``.
Every file is written to a temporary name and renamed, so an interrupted job leaves no
half-written output.
"""

from __future__ import annotations

import json
import os
import time
import tomllib
from pathlib import Path

import numpy as np

from ..exceptions import InvalidScanConfig
from ._priors import LogUniform, TruncatedNormal, Uniform, UniformInSquare

__all__ = ["load_posterior_config", "run_posterior_job", "WET_POSTERIOR_CONFIG"]

_PRIORS = {
    "uniform": (Uniform, ("low", "high")),
    "truncated_normal": (TruncatedNormal, ("loc", "scale", "low", "high")),
    "log_uniform": (LogUniform, ("low", "high")),
    "uniform_in_square": (UniformInSquare, ("low", "high")),
}
_SAMPLER = {
    "chains": "num_chains",
    "warmup": "num_warmup",
    "samples": "num_samples",
    "seed": "seed",
    "dense_mass": "dense_mass",
    "target_accept": "target_accept",
    "max_tree_depth": "max_tree_depth",
}

#: The Belle II WET posterior of PHYSICS.md §2 (uniform priors on the positive octant) with
#: the two prior-sensitivity variants of the issue: truncated N(SM, 20) and uniform in C².
WET_POSTERIOR_CONFIG = {
    "model": {"belle2_wet": "../shared/data/belle2_bknunu"},
    "sampler": {"chains": 4, "warmup": 1000, "samples": 2000, "seed": 0},
    "priors": {},
    "report": {
        "parameters": ["C_V", "C_S", "C_T"],
        "mirror": ["C_V", "C_S", "C_T"],
        "hdi": [0.68, 0.95],
        "reference": {"C_V": 6.613114906357177, "C_S": 0.0, "C_T": 0.0},
    },
    "variant": [
        {
            "name": "truncated_normal",
            "priors": {
                "C_V": {"type": "truncated_normal", "loc": 6.613114906357177, "scale": 20.0},
                "C_S": {"type": "truncated_normal", "loc": 0.0, "scale": 20.0},
                "C_T": {"type": "truncated_normal", "loc": 0.0, "scale": 20.0},
            },
        },
        {
            "name": "uniform_in_square",
            "priors": {n: {"type": "uniform_in_square"} for n in ("C_V", "C_S", "C_T")},
        },
    ],
}


def _fail(path, msg):
    raise InvalidScanConfig(path, msg)


def _priors(spec, path):
    if not isinstance(spec, dict):
        _fail(path, "must be a table {parameter: {type = ...}}")
    out = {}
    for name, p in spec.items():
        ppath = f"{path}.{name}"
        if not isinstance(p, dict) or "type" not in p:
            _fail(ppath, "needs a 'type' (" + ", ".join(_PRIORS) + ")")
        if p["type"] not in _PRIORS:
            _fail(f"{ppath}.type", f"unknown prior {p['type']!r} (known: {list(_PRIORS)})")
        cls, keys = _PRIORS[p["type"]]
        extra = set(p) - {"type", *keys}
        if extra:
            _fail(f"{ppath}.{sorted(extra)[0]}", f"not an argument of {p['type']}")
        for k in keys:
            if k in p and not isinstance(p[k], int | float):
                _fail(f"{ppath}.{k}", "must be a number")
        out[name] = cls(**{k: float(p[k]) for k in keys if k in p})
    return out


def _read_raw(path):
    """The raw configuration dict of a TOML/JSON file (``_base``: its folder)."""
    try:
        text = path.read_text()
    except OSError as err:
        _fail(str(path), f"cannot read: {err.strerror}")
    try:
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        _fail(str(path), f"not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {err}")
    if not isinstance(raw, dict):
        _fail(str(path), "must be a table/object")
    return dict(raw, _base=str(path.parent))


def load_posterior_config(source):
    """Read and validate a posterior configuration (path to TOML/JSON, or a dict).

    Returns a normalised dict with keys model, sampler (sample_posterior keyword arguments),
    priors (name → prior object), report, variants [(name, priors)], base (folder that
    relative paths are resolved against). Raises InvalidScanConfig naming the field.
    """
    if isinstance(source, dict):
        raw, base = source, Path(source.get("_base", Path.cwd()))
    else:
        raw = _read_raw(Path(source))
        base = Path(raw["_base"])
    raw = {k: v for k, v in raw.items() if k != "_base"}
    unknown = set(raw) - {"model", "sampler", "priors", "report", "variant"}
    if unknown:
        _fail(sorted(unknown)[0], "unknown section")
    model = raw.get("model")
    if not isinstance(model, dict) or len({"workspace", "belle2_wet"} & set(model)) != 1:
        _fail("model", "needs exactly one of 'workspace' or 'belle2_wet'")
    sampler = {}
    for k, v in (raw.get("sampler") or {}).items():
        if k not in _SAMPLER:
            _fail(f"sampler.{k}", f"unknown setting (known: {list(_SAMPLER)})")
        if k in ("chains", "warmup", "samples", "seed", "max_tree_depth") and (
            not isinstance(v, int) or isinstance(v, bool) or v < (0 if k == "seed" else 1)
        ):
            _fail(f"sampler.{k}", f"must be a positive integer, got {v!r}")
        sampler[_SAMPLER[k]] = v
    report = dict(raw.get("report") or {})
    for k in ("parameters", "mirror"):
        v = report.get(k, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            _fail(f"report.{k}", "must be a list of parameter names")
    hdis = report.get("hdi", [0.68, 0.95])
    if not isinstance(hdis, list) or not all(isinstance(p, float) and 0 < p < 1 for p in hdis):
        _fail("report.hdi", "must be a list of probabilities in (0, 1)")
    report["hdi"] = hdis
    ref = report.get("reference", {})
    if not isinstance(ref, dict) or not all(isinstance(v, int | float) for v in ref.values()):
        _fail("report.reference", "must be a table {parameter: value}")
    variants = []
    for i, v in enumerate(raw.get("variant") or []):
        if not isinstance(v, dict) or not isinstance(v.get("name"), str):
            _fail(f"variant[{i}].name", "each variant needs a name")
        if not v["name"].replace("_", "").isalnum():
            _fail(f"variant[{i}].name", "use letters, digits and '_' (it names output files)")
        variants.append((v["name"], _priors(v.get("priors", {}), f"variant[{i}].priors")))
    return {
        "model": model,
        "sampler": sampler,
        "priors": _priors(raw.get("priors") or {}, "priors"),
        "report": report,
        "variants": variants,
        "base": base,
    }


def _build_model(spec, base):
    import jaxlike

    if "belle2_wet" in spec:
        from ..physics import belle2_wet_workspace

        d = Path(spec["belle2_wet"])
        ws = belle2_wet_workspace(d if d.is_absolute() else base / d)
    else:
        p = Path(spec["workspace"])
        ws = jaxlike.Workspace.load(p if p.is_absolute() else base / p)
    model = ws.model(measurement_name=spec.get("measurement"))
    return model, ws.data(model)


def _atomic(path, write):
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # same suffix: same file format
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _report(post, names, mirror, hdis):
    """Per-parameter summary; mirrored parameters are reported as |θ| on the octant draws."""
    out = {}
    for n in names:
        i = post.index(n)
        x = post.pooled(n)
        entry = {
            "mean": float(np.mean(x)),
            "sd": float(np.std(x)),
            "mode": float(post.mode(n)),
            "rhat": float(post.rhat[i]),
            "ess": float(post.ess[i]),
            "upper_limit_95": float(post.upper_limit(n, 0.95)),
        }
        for p in hdis:
            lo, hi = post.abs_hdi(n, p) if n in mirror else post.hdi(n, p)
            entry[f"hdi_{round(100 * p)}"] = [float(lo), float(hi)]
        entry["quantity"] = f"|{n}|" if n in mirror else n
        out[n] = entry
    return out


def run_posterior_job(config, out_dir, *, overrides=None, progress=print):
    """Run the analysis of ``config`` (see module docstring) and write its products.

    Args:
        config: path or dict (see :func:`load_posterior_config`).
        out_dir: output folder (created).
        overrides: sampler settings replacing the configuration's (e.g. fewer draws).
        progress: callable receiving one-line status messages (None: silent).

    Returns:
        the summary dict written to ``summary.json``.
    """
    import jaxlike

    from ._nuts import sample_posterior

    cfg = load_posterior_config(config)
    say = progress or (lambda *_: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, data = _build_model(cfg["model"], cfg["base"])
    rep = cfg["report"]
    names = rep.get("parameters") or []
    for n in names + rep.get("mirror", []) + list(rep.get("reference", {})):
        model.config.par_index(n)  # InvalidParameters naming an unknown parameter
    sampler = {**cfg["sampler"], **(overrides or {})}
    t0 = time.perf_counter()
    mle = jaxlike.fit(model, data)
    summary = {
        "model": {"npars": model.config.npars, "par_names_reported": names},
        "mle": {
            "converged": bool(mle.converged),
            "status": mle.message(model.config.par_names),
            "twice_nll": float(mle.twice_nll),
            "values": {n: float(mle.bestfit[model.config.par_index(n)]) for n in names},
        },
        "sampler": {k: v for k, v in sampler.items()},
        "posteriors": {},
    }
    say(
        f"MLE: {summary['mle']['values']} (2NLL {float(mle.twice_nll):.4f}, "
        f"converged={bool(mle.converged)})"
    )
    runs = [("nominal", cfg["priors"])] + cfg["variants"]
    for name, priors in runs:
        t = time.perf_counter()
        post = sample_posterior(model, data, priors=priors, **sampler)
        tag = "" if name == "nominal" else f"_{name}"
        post.to_hdf5(out / f"posterior{tag}.h5")  # atomic itself
        entry = {
            "priors": {k: repr(v) for k, v in priors.items()},
            "wall_time_s": time.perf_counter() - t,
            "divergences": int(np.sum(post.divergences)),
            "parameters": _report(post, names, set(rep.get("mirror", [])), rep["hdi"]),
        }
        summary["posteriors"][name] = entry
        worst = max((v["rhat"] for v in entry["parameters"].values()), default=float("nan"))
        say(
            f"{name}: {entry['wall_time_s']:.0f} s, max R-hat {worst:.4f}, "
            f"{entry['divergences']} divergences"
        )
        if names:
            from ..plotting import plot_corner

            mirrored = post.mirrored(rep.get("mirror", [])) if rep.get("mirror") else post
            _atomic(
                out / f"corner{tag}.png",
                lambda p, m=mirrored, t=f"prior: {name}": plot_corner(
                    m, names, p, reference=rep.get("reference"), title=t
                ),
            )
    summary["total_wall_time_s"] = time.perf_counter() - t0
    _atomic(out / "summary.json", lambda p: p.write_text(json.dumps(summary, indent=2)))
    return summary
