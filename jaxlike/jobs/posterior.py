"""A posterior analysis from a configuration: model, priors, NUTS, report, prior variants.

The configuration (TOML or JSON, or a dict) is validated before anything is compiled::

    [model]
    workspace = "ws.json"            # any workspace (reweight modifiers included), or
    belle2_wet = "../shared/data/belle2_bknunu"   # job shortcut: the Belle II WET workspace
                                     # (jaxlike.jobs.belle2) built from the release folder
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
parameter and variant: the marginal posterior mode and HDIs of |θ| for mirrored parameters,
mean, sd, credible upper limits, each with its Monte-Carlo standard error ``*_mcse`` by batch
means, R̂, ESS, divergences; per variant the ``joint_mode`` of the 2–4 reported parameters —
the published mode of (|C_V|, |C_S|, |C_T|) is the joint one — with its MCSE) and
``corner.png`` / ``corner_<variant>.png``.
Every file is written to a unique temporary name in the output folder and renamed, so an
interrupted job leaves no half-written output and concurrent jobs never collide.

The configuration is strict: an unknown section, key, sampler setting or prior argument is an
error suggesting the closest known name; numbers must be numbers (not strings or booleans),
finite and in range; variant names must be distinct (case-insensitively) and not
``nominal``. ``model.workspace`` / ``model.belle2_wet`` are relative to the config file's
folder (absolute paths and ``..`` are taken as written) and must be a regular file / a folder
of regular files: a FIFO or device is refused before it is opened.

This is a job (an application of :mod:`jaxlike.bayes`), run by ``jaxlike posterior CONFIG``.
:func:`write_wet_posterior_config` writes :data:`WET_POSTERIOR_CONFIG` for a WET workspace
written by ``jaxlike belle2-wet`` (:func:`jaxlike.jobs.write_belle2_wet_workspace`).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import time
from pathlib import Path

import numpy as np

from .._strict import (
    atomic_write,
    check_keys,
    integer,
    join,
    number,
    read_config,
    regular_file,
)
from ..bayes import PRIOR_KINDS, batch_mcse, hdi, joint_mode, kde_mode, sample_posterior
from ..exceptions import InvalidPosteriorConfig
from ..fit import fit
from ..plotting import plot_corner
from ..workspace import Workspace
from .belle2 import belle2_release_folder, belle2_wet_workspace

__all__ = [
    "WET_POSTERIOR_CONFIG",
    "load_posterior_config",
    "read_posterior_config",
    "run_posterior_job",
    "write_wet_posterior_config",
]

#: prior ``type`` → (prior module, the keys it accepts): the library's own table of kinds
_PRIORS = {
    k: (cls, tuple(f.name for f in dataclasses.fields(cls))) for k, cls in PRIOR_KINDS.items()
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

#: The Belle II B+ → K+ νν̄ WET posterior (Wilson coefficients of the weak effective theory,
#: from the Belle II likelihood; uniform priors on the positive octant) with
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
    raise InvalidPosteriorConfig(path, msg)


_E = InvalidPosteriorConfig
_SECTIONS = ("model", "sampler", "priors", "report", "variant")
_MODEL_KEYS = ("workspace", "belle2_wet", "measurement")
_REPORT_KEYS = ("parameters", "mirror", "hdi", "reference")
_VARIANT_KEYS = ("name", "priors")
#: sampler setting -> (smallest, largest) allowed integer
_SAMPLER_INTS = {
    "chains": (1, 1024),
    "warmup": (1, 10_000_000),
    "samples": (1, 10_000_000),
    "seed": (0, 2**63 - 1),
    "max_tree_depth": (1, 20),
}
_VARIANT_NAME = re.compile(r"[A-Za-z0-9_]{1,64}\Z")


def _table(raw, key, path, default=None):
    v = raw.get(key, default)
    if v is None:
        return {}
    if not isinstance(v, dict):
        _fail(path, f"must be a table, got {type(v).__name__}")
    return v


def _priors(spec, path):
    if not isinstance(spec, dict):
        _fail(path, "must be a table {parameter: {type = ...}}")
    out = {}
    for name, p in spec.items():
        ppath = join(path, name)
        if not isinstance(p, dict) or "type" not in p:
            _fail(ppath, "needs a 'type' (" + ", ".join(_PRIORS) + ")")
        if not isinstance(p["type"], str) or p["type"] not in _PRIORS:
            close = difflib.get_close_matches(str(p["type"]), list(_PRIORS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            _fail(f"{ppath}.type", f"unknown prior {p['type']!r} (known: {list(_PRIORS)}){hint}")
        cls, keys = _PRIORS[p["type"]]
        check_keys(p, {"type", *keys}, ppath, _E, f"argument of {p['type']}")
        args = {k: number(p[k], f"{ppath}.{k}", _E) for k in keys if k in p}
        if "scale" in args and not args["scale"] > 0:
            _fail(f"{ppath}.scale", f"must be > 0, got {p['scale']!r}")
        if "low" in args and "high" in args and not args["low"] < args["high"]:
            _fail(f"{ppath}.high", f"must exceed low ({args['low']!r}), got {p['high']!r}")
        out[name] = cls(**args)
    return out


def read_posterior_config(path):
    """The raw (not yet validated) configuration dict of the TOML/JSON file ``path``, with
    ``_base`` set to the file's folder, so that :func:`load_posterior_config` and
    :func:`run_posterior_job` given the dict (e.g. after editing it) resolve relative paths as
    for the file. Only a regular file is read (a FIFO or device is refused); a UTF-8 byte order
    mark is accepted. Raises :class:`~jaxlike.exceptions.InvalidPosteriorConfig`."""
    path = Path(path)
    raw = read_config(path, _E, "posterior config", field=str(path))
    return dict(raw, _base=str(path.parent))


def _names(v, path):
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        _fail(path, "must be a list of parameter names")
    if len(set(v)) != len(v):
        _fail(path, f"names {sorted({x for x in v if v.count(x) > 1})} are repeated")
    return list(v)


def _sampler(spec):
    out = {}
    check_keys(spec, _SAMPLER, "sampler", _E, "setting")
    for k, v in spec.items():
        path = f"sampler.{k}"
        if k in _SAMPLER_INTS:
            lo, hi = _SAMPLER_INTS[k]
            if isinstance(v, float) or not isinstance(v, int) or isinstance(v, bool):
                what = "a non-negative" if k == "seed" else "a positive"
                _fail(path, f"must be {what} integer, got {v!r}")
            v = integer(v, path, _E, lo=lo, hi=hi)
        elif k == "target_accept":
            v = number(v, path, _E, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        elif k == "dense_mass" and not (isinstance(v, bool) or v == "auto"):
            _fail(path, f'must be true, false or "auto", got {v!r}')
        out[_SAMPLER[k]] = v
    return out


def _report_section(raw):
    report = dict(_table(raw, "report", "report"))
    check_keys(report, _REPORT_KEYS, "report", _E)
    for k in ("parameters", "mirror"):
        if k in report:
            report[k] = _names(report[k], f"report.{k}")
    hdis = report.get("hdi", [0.68, 0.95])
    if not isinstance(hdis, list):
        _fail("report.hdi", "must be a list of probabilities in (0, 1)")
    report["hdi"] = [
        number(p, f"report.hdi[{i}]", _E, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        for i, p in enumerate(hdis)
    ]
    if "reference" in report:
        ref = report["reference"]
        if not isinstance(ref, dict):
            _fail("report.reference", "must be a table {parameter: value}")
        report["reference"] = {
            n: number(v, join("report.reference", n), _E) for n, v in ref.items()
        }
    return report


def _variants(raw):
    spec = raw.get("variant") or []
    if not isinstance(spec, list):
        _fail("variant", "must be a list of tables ([[variant]] in TOML)")
    variants, seen = [], {"nominal": "the nominal run"}
    for i, v in enumerate(spec):
        path = f"variant[{i}]"
        if not isinstance(v, dict):
            _fail(path, "must be a table with a name and priors")
        check_keys(v, _VARIANT_KEYS, path, _E)
        name = v.get("name")
        if not isinstance(name, str):
            _fail(f"{path}.name", "each variant needs a name")
        if not _VARIANT_NAME.match(name):
            _fail(f"{path}.name", "use 1 to 64 letters, digits and '_' (it names output files)")
        if name.lower() in seen:  # output files differing in case collide on some systems
            _fail(f"{path}.name", f"{name!r} is already used by {seen[name.lower()]}")
        seen[name.lower()] = path
        variants.append((name, _priors(v.get("priors", {}), f"{path}.priors")))
    return variants


def _model_files(model, base):
    """The resolved workspace file or Belle II folder of the ``model`` section, checked to
    be a regular file / a folder of regular files before anything opens them."""
    if "belle2_wet" in model:
        return belle2_release_folder(model["belle2_wet"], "model.belle2_wet", _E, base)
    return regular_file(model["workspace"], "model.workspace", _E, base)


def load_posterior_config(source):
    """Read and validate a posterior configuration (path to TOML/JSON, or a dict).

    Returns a normalised dict with keys model, sampler (sample_posterior keyword arguments),
    priors (name → prior object), report, variants [(name, priors)], base (folder that
    relative paths are resolved against). Raises
    :class:`~jaxlike.exceptions.InvalidPosteriorConfig` (an ``InvalidScanConfig`` and an
    ``InvalidBayesConfig``) naming the field: unknown keys (with the closest known name),
    values of the wrong type or out of range, a workspace that is not a regular file.
    Relative paths are resolved against the config file's folder (a dict: its ``_base``, else
    the working directory); absolute paths and ``..`` are taken as written.
    """
    if isinstance(source, dict):
        raw, base = source, Path(source.get("_base", Path.cwd()))
    else:
        raw = read_posterior_config(source)
        base = Path(raw["_base"])
    raw = {k: v for k, v in raw.items() if k != "_base"}
    check_keys(raw, _SECTIONS, "", _E, "section")
    model = raw.get("model")
    if not isinstance(model, dict) or len({"workspace", "belle2_wet"} & set(model)) != 1:
        _fail("model", "needs exactly one of 'workspace' or 'belle2_wet'")
    check_keys(model, _MODEL_KEYS, "model", _E)
    for k, v in model.items():
        if not isinstance(v, str) or not v:
            _fail(f"model.{k}", f"must be a non-empty string, got {v!r}")
    sampler = _sampler(_table(raw, "sampler", "sampler"))
    report = _report_section(raw)
    priors = _priors(raw.get("priors") or {}, "priors")
    variants = _variants(raw)
    _model_files(model, base)
    return {
        "model": model,
        "sampler": sampler,
        "priors": priors,
        "report": report,
        "variants": variants,
        "base": base,
    }


def _build_model(spec, base):
    path = _model_files(spec, base)  # checked again right before it is opened
    if "belle2_wet" in spec:
        ws = belle2_wet_workspace(path)
    else:
        ws = Workspace.load(path)
    model = ws.model(measurement_name=spec.get("measurement"))
    return model, ws.data(model)


def _atomic(path, write):
    """Write ``path`` through a unique temporary file in its folder (see
    :func:`jaxlike._strict.atomic_write`): concurrent jobs never share a temporary name and a
    planted symlink is never followed."""
    atomic_write(path, write)


def _report(post, names, mirror, hdis):
    """Per-parameter summary; mirrored parameters are reported as |θ| on the octant draws.
    Every summary has its Monte-Carlo standard error (``*_mcse``, batch means over chains and
    draws: :func:`jaxlike.bayes.batch_mcse`)."""
    out = {}
    for n in names:
        i = post.index(n)
        x = post.pooled(n)
        lo_b, hi_b = post.bounds[i]
        mode = lambda v, lo=lo_b, hi=hi_b: kde_mode(v, lo, hi)  # noqa: E731
        entry = {
            "mean": float(np.mean(x)),
            "mean_mcse": float(post.mcse(n, np.mean)),
            "sd": float(np.std(x)),
            "mode": float(post.mode(n)),
            "mode_mcse": float(post.mcse(n, mode)),
            "rhat": float(post.rhat[i]),
            "ess": float(post.ess[i]),
            "upper_limit_95": float(post.upper_limit(n, 0.95)),
            "upper_limit_95_mcse": float(post.mcse(n, lambda v: np.quantile(v, 0.95))),
        }
        for p in hdis:
            absolute = n in mirror
            lo, hi = post.abs_hdi(n, p) if absolute else post.hdi(n, p)
            entry[f"hdi_{round(100 * p)}"] = [float(lo), float(hi)]
            err = post.mcse(n, lambda v, p=p, a=absolute: hdi(np.abs(v) if a else v, p))
            entry[f"hdi_{round(100 * p)}_mcse"] = [float(e) for e in err]
        entry["quantity"] = f"|{n}|" if n in mirror else n
        out[n] = entry
    return out


def _joint(post, names, mirror):
    """The joint mode of the reported parameters (|θ| for mirrored ones; 2 to 4 of them) and
    its Monte-Carlo standard error, or None."""
    if not 2 <= len(names) <= 4:
        return None
    idx = [post.index(n) for n in names]
    draws = post.samples[:, :, idx]
    draws = np.where([n in mirror for n in names], np.abs(draws), draws)
    bounds = np.array(post.bounds[idx], float)
    for j, n in enumerate(names):
        if n in mirror:
            bounds[j] = [0.0, max(abs(bounds[j, 0]), abs(bounds[j, 1]))]
    mode = joint_mode(draws.reshape(-1, len(names)), bounds)
    err = batch_mcse(draws, lambda d: joint_mode(d.reshape(-1, len(names)), bounds, n_starts=200))
    return {
        "parameters": [f"|{n}|" if n in mirror else n for n in names],
        "value": [float(v) for v in mode],
        "mcse": [float(e) for e in err],
    }


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
    mle = fit(model, data)
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
        joint = _joint(post, names, set(rep.get("mirror", [])))
        if joint is not None:
            entry["joint_mode"] = joint
        summary["posteriors"][name] = entry
        worst = max((v["rhat"] for v in entry["parameters"].values()), default=float("nan"))
        say(
            f"{name}: {entry['wall_time_s']:.0f} s, max R-hat {worst:.4f}, "
            f"{entry['divergences']} divergences"
        )
        if names:
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


def write_wet_posterior_config(path, workspace):
    """Write :data:`WET_POSTERIOR_CONFIG` as a JSON posterior configuration to ``path``
    (atomically), with ``model.workspace`` naming the WET workspace file ``workspace`` (e.g.
    written by ``jaxlike belle2-wet``) relative to the configuration's folder when it can be
    (absolute otherwise), so ``jaxlike posterior PATH`` runs the Belle II WET posterior with its
    two prior variants. Returns the configuration dict written."""
    path = Path(path)
    ws = Path(workspace)
    try:
        where = os.path.relpath(ws.resolve(), path.parent.resolve())
    except ValueError:  # another drive (Windows)
        where = str(ws.resolve())
    config = {**WET_POSTERIOR_CONFIG, "model": {"workspace": Path(where).as_posix()}}
    text = json.dumps(config, indent=2) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return config
