"""Compile HistFactory channels (pyhf JSON) into a :class:`~jaxlike.model.Model`.

The layout follows pyhf 0.7 exactly, because parameter vectors and data vectors are exchanged
with pyhf users:

- channels and samples are sorted by name; all channels are concatenated into one "mega
  channel" of ``B`` bins and every sample is defined in every channel (zero where absent);
- parameter sets are ordered by modifier type (histosys, lumi, normfactor, normsys,
  shapefactor, shapesys, staterror), within a type by first appearance walking the sorted
  channels and samples (staterror: by name); a name used by several types shares one set;
- auxiliary data follow the parameter order of the constrained sets.

Modifier tables are stacked per type (``[n_modifiers, n_samples, n_bins]``) so that the
likelihood applies each type with one vectorised operation.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ..exceptions import InvalidModel
from . import _tables as T
from ._config import ConstraintSegment, ModelConfig, ParamSet
from ._interp import ADDITIVE_CODES, MULTIPLICATIVE_CODES
from ._modifiers import MODIFIER_TYPES, MODIFIERS
from ._reweight import get_rate

__all__ = ["build_model", "DEFAULT_MODIFIER_SETTINGS"]

DEFAULT_MODIFIER_SETTINGS = {
    "normsys": {"interpcode": "code4"},
    "histosys": {"interpcode": "code4p"},
}
_FALLBACK_CODES = {"normsys": "code1", "histosys": "code0"}
_CONFIG_KEYS = {
    "normal": {"inits", "bounds", "fixed", "auxdata"},
    "lumi": {"inits", "bounds", "fixed", "auxdata", "sigmas"},
    "staterror": {"inits", "bounds", "fixed", "auxdata", "sigmas"},
    "shapesys": {"inits", "bounds", "fixed", "auxdata", "factors"},
    "free": {"inits", "bounds", "fixed"},
}


def _interp_codes(modifier_settings):
    """pyhf semantics: ``None`` → defaults (code4, code4p); a dict *replaces* the defaults and
    types it does not list fall back to the class defaults (normsys code1, histosys code0)."""
    settings = DEFAULT_MODIFIER_SETTINGS if modifier_settings is None else modifier_settings
    if not isinstance(settings, dict):
        raise InvalidModel(
            "modifier_settings", "must be a dict like {'normsys': {'interpcode': 'code4'}}"
        )
    for key in settings:
        if key not in MODIFIER_TYPES:
            raise InvalidModel(f"modifier_settings.{key}", f"unknown modifier type {key!r}")
    codes = {}
    for mtype, allowed in (("normsys", MULTIPLICATIVE_CODES), ("histosys", ADDITIVE_CODES)):
        code = settings.get(mtype, {}).get("interpcode", _FALLBACK_CODES[mtype])
        if code not in allowed:
            raise InvalidModel(
                f"modifier_settings.{mtype}.interpcode",
                f"{code!r} not supported (use one of {allowed})",
            )
        codes[mtype] = code
    return codes


def _finite_list(values, path, n=None):
    arr = np.asarray(values, dtype=float) if values is not None else None
    if arr is None or arr.ndim != 1:
        raise InvalidModel(path, "must be a list of numbers")
    if n is not None and len(arr) != n:
        raise InvalidModel(path, f"has {len(arr)} bins, expected {n}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise InvalidModel(f"{path}[{bad[0]}]", f"value {arr[bad[0]]} is not finite")
    return arr


class _Layout:
    """Sorted channels/samples/modifiers and the per-(channel, sample) lookup."""

    def __init__(self, channels):
        if not isinstance(channels, list | tuple) or not channels:
            raise InvalidModel("channels", "must be a non-empty list of channels")
        self.entries = {}  # (channel, sample) -> (sample dict, path)
        self.nbins, self.mods = {}, set()
        for ci, ch in enumerate(channels):
            cpath = f"channels[{ci}]"
            name = ch.get("name")
            if name in self.nbins:
                raise InvalidModel(f"{cpath}.name", f"duplicate channel {name!r}")
            samples = ch.get("samples") or []
            if not samples:
                raise InvalidModel(f"{cpath}.samples", "channel has no samples")
            self.nbins[name] = len(samples[0].get("data") or [])
            if self.nbins[name] == 0:
                raise InvalidModel(f"{cpath}.samples[0].data", "sample has no bins")
            for si, s in enumerate(samples):
                spath = f"{cpath}.samples[{si}]"
                _finite_list(s.get("data"), f"{spath}.data", self.nbins[name])
                if (name, s["name"]) in self.entries:
                    raise InvalidModel(f"{spath}.name", f"duplicate sample {s['name']!r}")
                self.entries[(name, s["name"])] = (s, spath)
                seen = set()
                for mi, m in enumerate(s.get("modifiers") or []):
                    mpath = f"{spath}.modifiers[{mi}]"
                    if m.get("type") not in MODIFIER_TYPES:
                        raise InvalidModel(
                            f"{mpath}.type",
                            f"unknown modifier type {m.get('type')!r} "
                            f"(known: {list(MODIFIER_TYPES)})",
                        )
                    key = (m.get("name"), m["type"])
                    if not isinstance(key[0], str) or not key[0]:
                        raise InvalidModel(f"{mpath}.name", "modifier needs a non-empty name")
                    if key in seen:
                        raise InvalidModel(mpath, f"modifier {key[0]!r} ({key[1]}) appears twice")
                    seen.add(key)
                    self.mods.add(key)
        self.channels = sorted(self.nbins)
        self.samples = sorted({s for _, s in self.entries})
        self.modifiers = sorted(self.mods)
        self.offset, start = {}, 0
        for c in self.channels:
            self.offset[c] = start
            start += self.nbins[c]
        self.B, self.S = start, len(self.samples)

    def walk(self):
        """Yield (channel, sample_index, sample_dict, path) in pyhf's walk order."""
        for c in self.channels:
            for si, s in enumerate(self.samples):
                if (c, s) in self.entries:
                    sample, path = self.entries[(c, s)]
                    yield c, si, sample, path

    def bins(self, c):
        return slice(self.offset[c], self.offset[c] + self.nbins[c])


def _requirement(mtype, layout, c, sample, mod, path):
    """Default parameter-set requirement of one modifier occurrence (pyhf defaults)."""
    row = MODIFIERS[mtype]
    if mtype == "lumi":  # init, bounds and width come from the measurement's lumi config
        return dict(kind="lumi", n=1, scalar=True, inits=None, bounds=None, aux=None)
    n = layout.nbins[c] if row.per_bin else 1
    kind = {None: "free", "normal": "normal", "poisson": "shapesys"}[row.constraint]
    req = dict(kind=kind, n=n, scalar=not row.per_bin, inits=(row.init,) * n,
               bounds=(row.bounds,) * n)  # fmt: skip
    if kind == "normal":
        req["aux"] = (0.0,) * n
    return req


def _collect_requirements(layout):
    """Parameter-set requirements in pyhf's order (see module docstring)."""
    per_type = {t: {} for t in MODIFIER_TYPES}
    staterror_names = [n for n, t in layout.modifiers if t == "staterror"]
    for c, _, sample, spath in layout.walk():
        mods = sorted(
            ((m["name"], m["type"]), mi) for mi, m in enumerate(sample.get("modifiers") or [])
        )
        for (name, mtype), mi in mods:
            if mtype == "staterror":
                continue
            mod = sample["modifiers"][mi]
            if mtype == "reweight":  # the rate's parameter sets, not one named after the modifier
                rate = get_rate((mod.get("data") or {}).get("rate"), f"{spath}.modifiers[{mi}]")
                for p in rate.parameters:
                    req = dict(p.requirement(), types=("reweight",))
                    per_type[mtype].setdefault(p.name, []).append(req)
                continue
            if mtype == "shapesys" and name in per_type["shapesys"]:
                raise InvalidModel(
                    f"{spath}.modifiers[{mi}]",
                    f"shapesys {name!r} is used by more than one sample; "
                    "shapesys names must be unique",
                )
            req = _requirement(mtype, layout, c, sample, mod, f"{spath}.modifiers[{mi}]")
            req["types"] = (mtype,)
            per_type[mtype].setdefault(name, []).append(req)
    for name in staterror_names:
        per_type["staterror"][name] = [dict(kind="staterror", types=("staterror",))]
    merged = {}
    for mtype in MODIFIER_TYPES:
        for name, reqs in per_type[mtype].items():
            merged.setdefault(name, []).extend(reqs)
    return merged


def _reduce(name, reqs):
    first = reqs[0]
    for r in reqs[1:]:
        for key in ("kind", "n", "inits", "bounds", "aux"):
            if r.get(key) != first.get(key):
                types = sorted({t for q in reqs for t in q["types"]})
                raise InvalidModel(
                    "channels",
                    f"parameter {name!r} is used by incompatible modifiers ({', '.join(types)}: "
                    f"different {key}); use distinct names",
                )
    out = dict(first)
    out["types"] = tuple(sorted({t for q in reqs for t in q["types"]}))
    return out


def build_model(
    channels,
    *,
    poi_name=None,
    parameter_configs=(),
    modifier_settings=None,
    config_path="measurement.config.parameters",
):
    """Compile pyhf-JSON ``channels`` plus a measurement's parameter configuration into a Model.

    Args:
        channels: the ``channels`` list of a pyhf workspace (patches already applied).
        poi_name: name of the parameter of interest (a scalar parameter), or None.
        parameter_configs: the measurement's ``config.parameters`` list (inits, bounds, fixed,
            auxdata, sigmas, factors per parameter set).
        modifier_settings: interpolation codes, pyhf semantics (see ``_interp_codes``).

    Raises:
        InvalidModel: naming the offending field (unknown modifier type, mismatched bins,
        non-finite yields, duplicated shapesys, incompatible parameter reuse, missing lumi
        configuration, POI not in the model, negative expected total at the initial parameters).
    """
    from ._model import Model

    codes = _interp_codes(modifier_settings)
    layout = _Layout(channels)
    tables = T.build_tables(layout, codes)
    reqs = {n: _reduce(n, r) for n, r in _collect_requirements(layout).items()}
    if not reqs:
        raise InvalidModel("channels", "the model has no parameters (no modifiers)")
    user = _user_configs(parameter_configs, config_path)
    paramsets, segments, fixed_static, auxdata = [], [], [], []
    start = 0
    for name, req in reqs.items():
        ps, seg = _make_paramset(
            name, req, start, len(auxdata), tables, user.get(name), config_path
        )
        paramsets.append(ps)
        fixed_static += [False] * ps.n_parameters if (seg and seg.dynamic_fixed) else list(ps.fixed)
        if seg is not None:
            segments.append(seg)
            auxdata += list(ps.auxdata)
        start += ps.n_parameters
    if poi_name is not None:
        if poi_name not in reqs:
            raise InvalidModel(
                "measurement.config.poi", f"POI {poi_name!r} is not a parameter of the model"
            )
        if not reqs[poi_name].get("scalar", False):  # staterror sets have no "scalar" yet
            raise InvalidModel(
                "measurement.config.poi", f"POI {poi_name!r} is not a scalar parameter"
            )
    config = ModelConfig(
        channels=layout.channels,
        channel_nbins={c: layout.nbins[c] for c in layout.channels},
        samples=layout.samples,
        modifiers=layout.modifiers,
        paramsets=paramsets,
        poi_name=poi_name,
        auxdata=auxdata,
        segments=segments,
        modifier_settings=modifier_settings,
        fixed_static=fixed_static,
    )
    model = Model(config=config, **tables.leaves(config))
    _check_expected(model, layout)
    return model


def _user_configs(parameter_configs, config_path):
    out = {}
    for k, p in enumerate(parameter_configs or ()):
        if not isinstance(p, dict) or "name" not in p:
            raise InvalidModel(f"{config_path}[{k}]", "parameter configuration needs a 'name'")
        if p["name"] in out:
            raise InvalidModel(f"{config_path}[{k}]", f"multiple configurations for {p['name']!r}")
        out[p["name"]] = (k, p)
    return out


def _make_paramset(name, req, start, aux_start, tables, user, config_path):
    kind, n = req["kind"], req.get("n")
    if kind == "staterror":
        sig, fixed = tables.staterror_defaults(name)
        n = len(sig)
        req = dict(req, n=n, scalar=False, inits=(1.0,) * n, bounds=((1e-10, 10.0),) * n)
        req.update(aux=(1.0,) * n, sigmas=tuple(sig), fixed=tuple(fixed))
    elif kind == "shapesys":
        factors, fixed = tables.shapesys_defaults(name)
        req = dict(req, aux=tuple(factors), factors=tuple(factors), fixed=tuple(fixed))
    vals = {
        "inits": req.get("inits"),
        "bounds": req.get("bounds"),
        "fixed": req.get("fixed", (False,) * n),
        "auxdata": req.get("aux"),
        "sigmas": req.get("sigmas"),
        "factors": req.get("factors"),
    }
    user_keys = set()
    if user is not None:
        k, cfg = user
        path = f"{config_path}[{k}]"
        for key, v in cfg.items():
            if key == "name":
                continue
            if key not in _CONFIG_KEYS[kind]:
                raise InvalidModel(
                    f"{path}.{key}",
                    f"parameter {name!r} ({'/'.join(req['types'])}) does not use {key!r}",
                )
            if key == "fixed" and isinstance(v, bool):
                v = [v] * n
            if not isinstance(v, list | tuple) or len(v) != n:
                raise InvalidModel(
                    f"{path}.{key}", f"expected {n} value(s) for {name!r}, got {v!r}"
                )
            if key == "bounds":
                v = [tuple(float(x) for x in b) for b in v]
                if any(len(b) != 2 or not b[0] <= b[1] for b in v):
                    raise InvalidModel(
                        f"{path}.bounds", f"bounds of {name!r} must be [low, high] pairs"
                    )
            vals[key] = tuple(v)
            user_keys.add(key)
    if kind == "lumi":
        if vals["auxdata"] is None or vals["sigmas"] is None:
            raise InvalidModel(
                config_path,
                f"lumi parameter {name!r} needs a configuration with 'auxdata' and 'sigmas'",
            )
        aux = float(vals["auxdata"][0])
        vals["inits"] = vals["inits"] or (aux,)
        vals["bounds"] = vals["bounds"] or ((0.0, 10.0 * aux),)
    inits = tuple(float(x) for x in vals["inits"])
    bounds = tuple((float(a), float(b)) for a, b in vals["bounds"])
    for i, (x, (lo, hi)) in enumerate(zip(inits, bounds, strict=True)):
        if not lo <= x <= hi:
            raise InvalidModel(
                config_path, f"init {x} of {name!r}[{i}] outside bounds [{lo}, {hi}]"
            )
    constraint = {
        "normal": "normal",
        "lumi": "normal",
        "staterror": "normal",
        "shapesys": "poisson",
    }.get(kind)
    ps = ParamSet(
        name=name,
        start=start,
        n_parameters=n,
        is_scalar=req["scalar"],
        constraint=constraint,
        modifier_types=req["types"],
        inits=inits,
        bounds=bounds,
        fixed=tuple(bool(f) for f in vals["fixed"]),
        auxdata=None if constraint is None else tuple(float(a) for a in vals["auxdata"]),
        sigmas=None if vals["sigmas"] is None else tuple(float(s) for s in vals["sigmas"]),
        factors=None if vals["factors"] is None else tuple(float(s) for s in vals["factors"]),
    )
    if constraint is None:
        return ps, None
    dynamic_fixed = kind in ("staterror", "shapesys") and "fixed" not in user_keys
    if kind == "staterror" and "sigmas" not in user_keys:
        source, which, values = "staterror", tables.index("staterror", name), ()
    elif kind == "shapesys" and "factors" not in user_keys:
        source, which, values = "shapesys", tables.index("shapesys", name), ()
    else:
        source, which = "static", -1
        values = ps.factors if kind == "shapesys" else (ps.sigmas or (1.0,) * n)
        if any(not (v > 0 and math.isfinite(v)) for v in values):
            raise InvalidModel(config_path, f"sigmas/factors of {name!r} must be positive")
    seg = ConstraintSegment(
        kind=constraint,
        par_start=start,
        n=n,
        aux_start=aux_start,
        source=source,
        which=which,
        values=tuple(values),
        dynamic_fixed=dynamic_fixed,
        dynamic_aux=kind == "shapesys" and "auxdata" not in user_keys,
    )
    return ps, seg


@eqx.filter_jit
def _expected_at(model, pars):
    return model.expected_actualdata(pars)


def _expected_at_init(model):
    """ν_b at the initial parameters. When every normsys/histosys starts at α = 0 (the default)
    the interpolations are neutral and ν = Σ_s Π(direct factors) ν⁰ is a NumPy product, which
    avoids compiling a function per new layout while building (e.g. 66 HEPData patches)."""
    init = model.config.suggested_init()
    w = model.wiring
    if np.any(init[list(w.normsys) + list(w.histosys)] != 0):
        return np.asarray(_expected_at(model, jnp.asarray(init)))
    ext = np.concatenate([init, [1.0]])
    fac = np.prod(ext[w.direct_index()], axis=0)
    return (fac * np.asarray(model.nominal)).sum(axis=0)


def _check_expected(model, layout):
    """Reject a model whose total expected yield is negative (or NaN) in some bin at the inits."""
    nu = _expected_at_init(model)
    bad = np.flatnonzero(~(nu >= 0))
    if bad.size:
        b = int(bad[0])
        c = next(c for c in layout.channels if layout.bins(c).start <= b < layout.bins(c).stop)
        raise InvalidModel(
            f"channels[{c!r}].bins[{b - layout.offset[c]}]",
            f"total expected yield {nu[b]:.6g} is negative or not finite at the initial parameters",
        )
