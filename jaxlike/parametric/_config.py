"""Scan configurations (TOML or JSON) → :class:`~jaxlike.parametric.MassScan`, validated.

Every check runs on the host before anything is compiled, and a failure raises
:class:`~jaxlike.exceptions.InvalidScanConfig` naming the field. A configuration::

    [spectrum]
    file = "alp_spectrum.npz"     # relative to the config file; arrays below
    # edges [N+1]; counts [C, N]; optional comb [C, N], template [C, N], peaks [C, K, N]

    [signal]
    shape = "crystal_ball"        # or "gauss"
    conversion = [1.0]            # per category: signal yield per unit μ before efficiency
    rel_eff = 0.05                # Gaussian nuisance on the efficiency (0: none)
    rel_res = 0.10                # Gaussian nuisance on the resolution (0: none)
    uncorrelated = false          # true: one θ_eff and one θ_res per category (default: shared)
    comb_masses = [1.0, 5.0]      # with spectrum.comb [C, S, N]: the simulated mass of each
    comb_interpolation = "linear" # template; "linear" mixes the two neighbours, or "nearest"
    interpolation = "linear"      # or "pchip"
    [[signal.tables]]             # one per category: simulated masses and shape columns
    mass = [0.2, 1.0, 5.0]
    sigma = [0.010, 0.012, 0.020] # required; optional: mean, alpha_l, n_l, alpha_r, n_r,
                                  # efficiency, comb_fraction, unit, and rel_eff/rel_res
                                  # (mass-dependent widths of the two nuisances)

    [background]
    kind = "bernstein"            # bernstein | chebyshev | exponential | template
    order = 4                     # polynomial order (bernstein/chebyshev), or one per
                                  # mass range: order = [2, 4, 5] with
                                  # order_below = [1.0, 5.0] (the masses between the ranges)

    [window]
    lo = 20.0                     # window [m − lo σ(m), m + hi σ(m)]
    hi = 30.0
    n_bins = 100
    vetoes = [[0.10, 0.17]]       # excluded mass ranges

    [scan]
    masses = {start = 0.3, stop = 9.0, step_sigma = 0.5}   # or a list, or {start, stop, n}
    cl = [0.95]                   # confidence levels of the limits
    mu_max = 0                    # μ upper bound; 0 = automatic
    skip_vetoed = true            # drop masses inside a vetoed range (default)
    rule = "cls"                  # limit rule: "cls" or "clsb" (one-sided, CLs+b = α)

    [plot]                        # optional: axis labels of the figures (defaults shown)
    label = "m"                   # the scanned variable (x axis "m [GeV]")
    unit = "GeV"                  # its unit ("" for none)
    poi_label = "μ"               # the signal strength (limit axis "... upper limit on μ")
    limit_label = "σ × B"         # what μ × signal.tables.unit is (limits in physical units)
    limit_unit = "fb"             # its unit

    [physics]                     # optional: limits on a physics parameter g = k(m) σ^power
    power = 0.5                   # σ = μ × unit (the physical-unit limit)
    mass = [0.2, 5.0, 9.7]        # optional k(m), tabulated (monotone cubic; default k = 1)
    scale = [1.1e-4, 1.2e-4, 2.9e-4]
    label = "$g_{a\\gamma\\gamma}$"  # its name and unit, for summaries and figures
    unit = "GeV$^{-1}$"

    [envelope]                    # optional: several background models (build_envelope)
    method = "profile"            # discrete profiling, or "conservative"
    penalty = 1.0                 # 2NLL per fitted parameter (profile)
    models = [{order = 2}, {order = 4}, {kind = "chebyshev", order = 4}]

Masses given as ``step_sigma`` advance by that many σ(m) each step (the Belle II convention).

The loader is strict: an unknown key anywhere (a section, a key of a section, a column of a
table, a key of ``scan.masses``, an array of the spectrum file) is an error suggesting the
closest known name (``window.bins: unknown key; did you mean 'n_bins'?``); numbers must be
TOML/JSON numbers (not strings, not booleans), finite and in range; sizes are bounded before
anything is computed: at most :data:`MAX_HYPOTHESES` hypothesis masses (a ``step_sigma`` list
is counted as ∫ dm / (step_sigma σ(m)) before it is generated), ``n_bins`` ≤
:data:`MAX_WINDOW_BINS`, ``order`` ≤ 12, spectrum arrays of at most :data:`MAX_SPECTRUM_BYTES`.
``spectrum.file`` is relative to the config file's folder (an absolute path, or one with
``..``, is taken as written: the config is the user's own); it must be a regular ``.npz`` file
(a FIFO or a device is refused before it is opened). A UTF-8 byte order mark is accepted.

The ``[plot]`` labels (:func:`plot_labels`) are part of the configuration a scan stores in its
HDF5 file, so ``jaxlike plot scan.h5`` redraws the figures with them (and a resume refuses a
file whose labels differ; ``jaxlike plot --xlabel/--ylabel`` relabels without a rescan); mathtext
(``"$M_{\\gamma\\gamma}$"``) is allowed.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from .._strict import check_keys, integer, join, number, numbers, read_config, regular_file
from ..exceptions import InvalidScanConfig
from ..infer import LIMIT_RULES
from ..shapes import MassTable, check_windows, fine_cumsum
from ._model import BACKGROUNDS, SIGNAL_SHAPES
from ._scan import TABLE_COLUMNS, MassScan

__all__ = [
    "PLOT_LABELS",
    "load_config",
    "build_mass_scan",
    "physics_labels",
    "plot_labels",
    "scan_masses",
]

#: most hypothesis masses a configuration may ask for (any form of ``scan.masses``)
MAX_HYPOTHESES = 10_000_000
#: most bins of the sliding window (``window.n_bins``)
MAX_WINDOW_BINS = 10_000
#: largest polynomial order of the background (``background.order``)
MAX_ORDER = 12
#: largest total size of the spectrum arrays of ``spectrum.file`` (bytes, as stored)
MAX_SPECTRUM_BYTES = 2 * 1024**3

#: default axis labels of a scan's figures (the ``[plot]`` section; :func:`plot_labels`)
PLOT_LABELS = {
    "label": "m",
    "unit": "GeV",
    "poi_label": "μ",
    "limit_label": "σ × B",
    "limit_unit": "fb",
}
#: longest ``[plot]`` label (characters)
MAX_LABEL = 200

_E = InvalidScanConfig
_SECTIONS = ("spectrum", "signal", "background", "window", "scan")
_OPTIONAL = ("plot", "physics", "envelope")
# name -> largest ndim (comb: [C, N], or [C, S, N] at S simulated masses)
_ARRAYS = {"edges": 1, "counts": 2, "comb": 3, "template": 2, "peaks": 3}
_KEYS = {
    "spectrum": {"file", *_ARRAYS},
    "signal": {
        "shape",
        "conversion",
        "rel_eff",
        "rel_res",
        "interpolation",
        "tables",
        "uncorrelated",
        "comb_masses",
        "comb_interpolation",
    },
    "background": {"kind", "order", "order_below"},
    "window": {"lo", "hi", "n_bins", "vetoes"},
    "scan": {"masses", "cl", "mu_max", "skip_vetoed", "rule"},
    "plot": set(PLOT_LABELS),
    "physics": {"power", "label", "unit", "mass", "scale"},
    "envelope": {"method", "penalty", "models"},
}
_ENVELOPE_MODEL_KEYS = {"name", "kind", "order", "order_below", "lo", "hi"}
#: most background models in one ``[envelope]``
MAX_ENVELOPE_MODELS = 32
_MASSES_KEYS = {"start", "stop", "n", "step", "step_sigma"}
_TABLE_NAMES = {"mass"} | {name for name, _ in TABLE_COLUMNS}
_INTERPOLATIONS = ("linear", "pchip")


def load_config(path) -> dict:
    """Read a TOML (``.toml``) or JSON scan configuration; records its folder as ``_base``.

    Only a regular file is opened (a FIFO or device is refused); a UTF-8 byte order mark is
    accepted; JSON may not repeat a key. The contents are checked by :func:`build_mass_scan`.
    Raises :class:`~jaxlike.exceptions.InvalidScanConfig`.
    """
    p = Path(path)
    cfg = read_config(p, _E, "scan config")
    cfg["_base"] = str(p.parent)
    return cfg


def _get(d: dict, key: str, path: str, kind=None, default=...):
    """``d[key]`` (``default`` if absent, an error naming ``path.key`` if required), checked
    to be an instance of ``kind`` (bool is not an int here)."""
    if key not in d:
        if default is ...:
            raise _E(join(path, key), "is required")
        return default
    v = d[key]
    if kind is not None and (
        not isinstance(v, kind) or (isinstance(v, bool) and kind in (int, float))
    ):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise _E(join(path, key), f"must be {_TABLE_WORDS.get(names, names)}, got {_short(v)}")
    return v


_TABLE_WORDS = {
    "dict": "a table",
    "list": "a list",
    "list or tuple": "a list",
    "str": "a string",
    "bool": "true or false",
}


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(d, key, path, default=..., positive=False, **bounds):
    """``d[key]`` as a finite float (int/float only, not bool or a string), ``> 0`` if
    ``positive``, within ``bounds`` (see :func:`jaxlike._strict.number`)."""
    if key not in d and default is not ...:
        return float(default)
    v = _get(d, key, path)
    if positive:
        bounds = {"lo": 0.0, "lo_open": True, **bounds}
    return number(v, join(path, key), _E, **bounds)


def _choice(d, key, path, choices, default=...):
    v = _get(d, key, path, str, default)
    if v not in choices:
        import difflib

        close = difflib.get_close_matches(v, choices, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise _E(join(path, key), f"unknown value {_short(v)}; {hint}known: {', '.join(choices)}")
    return v


def plot_labels(cfg: dict) -> dict:
    """The axis labels of a scan configuration's figures: its ``[plot]`` section (``cfg`` is a
    loaded configuration, or the ``config`` a scan stored in its file) over the defaults
    :data:`PLOT_LABELS`. Raises :class:`~jaxlike.exceptions.InvalidScanConfig` for an unknown
    key or a value that is not a string of at most :data:`MAX_LABEL` characters.

    >>> plot_labels({"plot": {"label": "M_rec^2", "unit": "GeV^2"}})["unit"]
    'GeV^2'
    """
    section = cfg.get("plot", {}) if isinstance(cfg, dict) else {}
    if not isinstance(section, dict):
        raise _E("plot", f"must be a table, got {_short(section)}")
    check_keys(section, _KEYS["plot"], "plot", _E)
    out = dict(PLOT_LABELS)
    for key, value in section.items():
        if not isinstance(value, str) or len(value) > MAX_LABEL:
            raise _E(f"plot.{key}", f"must be a string of at most {MAX_LABEL} characters, "
                     f"got {_short(value)}")  # fmt: skip
        out[key] = value
    return out


def physics_labels(cfg: dict) -> dict | None:
    """The ``[physics]`` section of a scan configuration (or of the ``config`` a scan stored
    in its file): ``{"power", "label", "unit"}`` with the defaults label ``"g"``, unit ``""``;
    None without one (the tabulated scale ``mass``/``scale`` is read by
    :func:`build_mass_scan`). ``power`` must be a number in (0, 10]. Raises
    :class:`~jaxlike.exceptions.InvalidScanConfig` naming the field."""
    if not isinstance(cfg, dict) or "physics" not in cfg:
        return None
    section = cfg["physics"]
    if not isinstance(section, dict):
        raise _E("physics", f"must be a table, got {_short(section)}")
    check_keys(section, _KEYS["physics"], "physics", _E)
    power = _number(section, "power", "physics", positive=True, hi=10.0)
    out = {"power": power, "label": "g", "unit": ""}
    for key in ("label", "unit"):
        if key in section:
            value = section[key]
            if not isinstance(value, str) or len(value) > MAX_LABEL:
                raise _E(f"physics.{key}", f"must be a string of at most {MAX_LABEL} "
                         f"characters, got {_short(value)}")  # fmt: skip
            out[key] = value
    return out


def _check_structure(cfg: dict) -> None:
    """Unknown or missing sections and unknown keys, before any file is read."""
    known = _SECTIONS + _OPTIONAL
    check_keys({k: v for k, v in cfg.items() if k != "_base"}, known, "", _E, "section")
    for name in known:
        if name in _OPTIONAL and name not in cfg:
            continue
        section = _get(cfg, name, "", dict)
        check_keys(section, _KEYS[name], name, _E)
    scan_rule(cfg)
    masses = cfg["scan"].get("masses")
    if isinstance(masses, dict):
        check_keys(masses, _MASSES_KEYS, "scan.masses", _E)
    tables = cfg["signal"].get("tables")
    if isinstance(tables, list | tuple):
        for i, t in enumerate(tables):
            if isinstance(t, dict):
                check_keys(t, _TABLE_NAMES, f"signal.tables[{i}]", _E, "column")


def _inline_array(v, path: str, ndim: int) -> np.ndarray:
    """A list nested at most ``ndim`` deep with number leaves (not strings or booleans)."""
    stack = [(v, path, 0)]
    while stack:
        x, p, depth = stack.pop()
        if isinstance(x, list | tuple) and depth < ndim:
            stack.extend((y, f"{p}[{i}]", depth + 1) for i, y in enumerate(x))
        elif depth == 0 or isinstance(x, bool) or not isinstance(x, int | float):
            raise _E(p, f"must be {'a number' if depth else 'a list of numbers'}, got {_short(x)}")
    try:
        with np.errstate(over="ignore"):
            return np.asarray(v, float)
    except (ValueError, OverflowError):
        raise _E(path, "is ragged (rows of different lengths)") from None


def _npz_headers(zf: zipfile.ZipFile, path: str) -> dict:
    """name -> (shape, dtype) of the arrays of an ``.npz`` from their headers alone (a header
    claiming a huge shape is refused before anything is allocated)."""
    fmt = np.lib.format
    out, total = {}, 0
    for info in zf.infolist():
        name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        with zf.open(info) as fh:
            try:
                version = fmt.read_magic(fh)
                read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
                shape, _, dtype = read[version](fh)
            except (ValueError, KeyError, OSError, EOFError):
                raise _E(path, f"member {info.filename!r} is not a numpy array") from None
        if dtype.kind not in "iuf":
            raise _E(join("spectrum", name), f"must hold numbers, got dtype {dtype}")
        total += math.prod(shape) * dtype.itemsize
        if total > MAX_SPECTRUM_BYTES:
            raise _E(path, f"arrays larger than the limit of {MAX_SPECTRUM_BYTES:_} bytes")
        out[name] = shape
    return out


def _read_npz(cfg: dict, spec: dict) -> dict:
    path = "spectrum.file"
    for key in spec:
        if key != "file":
            raise _E(f"spectrum.{key}", "cannot be given with spectrum.file (it has the arrays)")
    name = _get(spec, "file", "spectrum", str)
    f = regular_file(name, path, _E, cfg.get("_base", "."))
    try:
        with zipfile.ZipFile(f) as zf:
            check_keys(_npz_headers(zf, path), _ARRAYS, path, _E, "array")
        with np.load(f, allow_pickle=False) as z:
            return {k: np.asarray(z[k], float) for k in z.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise _E(path, f"cannot read {str(f)!r} as an .npz archive: {err}") from None


def _load_arrays(cfg: dict) -> dict:
    spec = _get(cfg, "spectrum", "", dict)
    if "file" in spec:
        arrays = _read_npz(cfg, spec)
    else:
        arrays = {k: _inline_array(v, f"spectrum.{k}", _ARRAYS[k]) for k, v in spec.items()}
    for key in ("edges", "counts"):
        if key not in arrays:
            raise _E(f"spectrum.{key}", "is required (array in the spectrum)")
    e, c = arrays["edges"], np.atleast_2d(arrays["counts"])
    if e.ndim != 1 or e.size < 2 or np.any(~np.isfinite(e)) or np.any(np.diff(e) <= 0):
        raise _E("spectrum.edges", "must be finite and strictly increasing (at least 2 edges)")
    if c.ndim != 2 or c.shape[-1] != e.size - 1:
        raise _E("spectrum.counts", f"must be [C, N] with N = {e.size - 1} (from the edges), "
                 f"got shape {list(c.shape)}")  # fmt: skip
    if np.any(~np.isfinite(c)) or np.any(c < 0):
        raise _E("spectrum.counts", "must be finite and non-negative")
    arrays["counts"] = c
    for key, ndim in (("comb", 2), ("template", 2), ("peaks", 3)):
        if key in arrays:
            a = arrays[key].reshape((c.shape[0],) * (ndim - 1 - (key == "peaks")) + (-1,)) \
                if arrays[key].ndim == 1 else arrays[key]  # fmt: skip
            if key == "comb" and a.ndim == 3:  # templates at simulated masses: [C, S, N]
                ndim = 3
            if a.ndim != ndim or a.shape[0] != c.shape[0] or a.shape[-1] != c.shape[-1]:
                raise _E(
                    f"spectrum.{key}",
                    f"must have shape {_SHAPES[key]} with "
                    f"C = {c.shape[0]}, N = {c.shape[-1]}; got {list(a.shape)}",
                )
            if np.any(~np.isfinite(a)) or np.any(a < 0):
                raise _E(f"spectrum.{key}", "must be finite and non-negative")
            arrays[key] = a
    return arrays


_SHAPES = {"comb": "[C, N] or [C, S, N]", "template": "[C, N]", "peaks": "[C, K, N]"}
#: how mass-dependent combinatorial templates are picked (``signal.comb_interpolation``)
COMB_MODES = ("linear", "nearest")

# column -> (bounds of every entry, what it means)
_COLUMN_BOUNDS = {
    "sigma": {"lo": 0.0, "lo_open": True},
    "alpha_l": {"lo": 0.0, "lo_open": True},
    "alpha_r": {"lo": 0.0, "lo_open": True},
    "n_l": {"lo": 1.0, "lo_open": True},  # > 1: a normalisable tail
    "n_r": {"lo": 1.0, "lo_open": True},
    "efficiency": {"lo": 0.0, "lo_open": True},
    "comb_fraction": {"lo": 0.0, "hi": 1.0},
    "unit": {"lo": 0.0, "lo_open": True},
    "rel_eff": {"lo": 0.0, "hi": 1.0, "hi_open": True},
    "rel_res": {"lo": 0.0, "hi": 1.0, "hi_open": True},
}


def _tables(sig: dict, n_cat: int, kind: str) -> tuple:
    tables = _get(sig, "tables", "signal", (list, tuple))
    if len(tables) != n_cat:
        raise _E("signal.tables", f"needs one table per category ({n_cat}), got {len(tables)}")
    out = []
    for i, t in enumerate(tables):
        path = f"signal.tables[{i}]"
        if not isinstance(t, dict):
            raise _E(path, "must be a table of columns")
        check_keys(t, _TABLE_NAMES, path, _E, "column")
        _get(t, "sigma", path)
        masses = numbers(_get(t, "mass", path), f"{path}.mass", _E)
        cols = {
            k: numbers(v, f"{path}.{k}", _E, **_COLUMN_BOUNDS.get(k, {}))
            for k, v in t.items()
            if k != "mass"
        }
        for k, v in cols.items():
            if len(v) != len(masses):
                raise _E(f"{path}.{k}", f"has {len(v)} entries but mass has {len(masses)}")
        out.append(MassTable(masses, cols, kind=kind, path=path))
    return tuple(out)


def _step_sigma_count(table: MassTable, start: float, stop: float, k: float) -> float:
    """About how many masses m_{i+1} = m_i + k σ(m_i) fit in [start, stop]:
    ∫ dm / (k σ(m)), σ linearly interpolated (held beyond the table, as the table does)."""
    x = np.asarray(table.masses, float)
    y = np.asarray(table.values["sigma"], float)
    grid = np.union1d(np.linspace(start, stop, 4097), x[(x > start) & (x < stop)])
    s = np.interp(grid, x, y)
    if not np.all(s > 0):
        raise _E(f"{table.path or 'signal.tables[0]'}.sigma", "must be positive")
    inv = 1.0 / s
    return 1.0 + float(np.sum(0.5 * (inv[1:] + inv[:-1]) * np.diff(grid))) / k


def scan_masses(cfg_scan: dict, table: MassTable) -> np.ndarray:
    """Hypothesis masses: a list, ``{start, stop, n}`` (uniform) or ``{start, stop, step}`` /
    ``{start, stop, step_sigma}`` (m_{i+1} = m_i + step_sigma · σ(m_i), σ from the table).

    At most :data:`MAX_HYPOTHESES` masses: the count is bounded (estimated for
    ``step_sigma``) before any list is generated; errors name ``scan.masses.<key>``."""
    m = _get(cfg_scan, "masses", "scan")
    path = "scan.masses"
    limit = f"more than the limit of {MAX_HYPOTHESES:_} hypothesis masses"
    if isinstance(m, list | tuple):
        masses = np.asarray(numbers(m, path, _E, max_size=MAX_HYPOTHESES), float)
    elif isinstance(m, dict):
        check_keys(m, _MASSES_KEYS, path, _E)
        start, stop = _number(m, "start", path), _number(m, "stop", path)
        if stop <= start:
            raise _E(path, f"stop ({stop!r}) must exceed start ({start!r})")
        given = [k for k in ("n", "step", "step_sigma") if k in m]
        if len(given) != 1:
            what = ("only one of " + ", ".join(given)) if given else "one of n, step or step_sigma"
            raise _E(path, f"needs {what} besides start and stop")
        if "n" in m:
            n = integer(m["n"], f"{path}.n", _E, lo=1, hi=MAX_HYPOTHESES)
            masses = np.linspace(start, stop, n)
        elif "step" in m:
            step = _number(m, "step", path, positive=True)
            if (stop - start) / step + 1 > MAX_HYPOTHESES:
                raise _E(f"{path}.step", f"{step!r} from {start!r} to {stop!r} gives {limit}")
            masses = np.arange(start, stop + 1e-12, step)
        else:
            k = _number(m, "step_sigma", path, positive=True)
            estimate = _step_sigma_count(table, start, stop, k)
            if estimate > MAX_HYPOTHESES:
                raise _E(
                    f"{path}.step_sigma",
                    f"{k!r} from {start!r} to {stop!r} gives about {estimate:.3g} masses, {limit}",
                )
            sig = table.host_function("sigma")  # the table's own arithmetic, on the host
            out = [start]
            while out[-1] + k * sig(out[-1]) <= stop + 1e-12:
                if len(out) >= MAX_HYPOTHESES:  # the estimate was off: still bounded
                    raise _E(f"{path}.step_sigma", f"{k!r} from {start!r} gives {limit}")
                out.append(out[-1] + k * sig(out[-1]))
            masses = np.asarray(out)
    else:
        raise _E(path, f"must be a list or a table, got {_short(m)}")
    if masses.size == 0 or np.any(~np.isfinite(masses)):
        raise _E(path, "no finite hypothesis masses")
    return masses


#: the vetoes of a scan are padded to a multiple of this many rows (:func:`_vetoes`)
VETO_ROWS = 4


def _vetoes(win: dict) -> np.ndarray:
    path = "window.vetoes"
    v = _get(win, "vetoes", "window", (list, tuple), [])
    out = []
    for i, pair in enumerate(v):
        p = f"{path}[{i}]"
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise _E(p, f"must be a pair [low, high], got {_short(pair)}")
        lo, hi = (number(x, f"{p}[{j}]", _E) for j, x in enumerate(pair))
        if not lo < hi:
            raise _E(p, f"each veto must be [low, high] with low < high, got {pair!r}")
        out.append((lo, hi))
    v = np.asarray(out, float).reshape(-1, 2)
    # padded to a multiple of VETO_ROWS with empty intervals (+inf, +inf), which overlap no bin
    # and hold no mass: scans with a few vetoes or none share one array layout (one program)
    pad = -len(v) % VETO_ROWS if len(v) else VETO_ROWS
    return np.concatenate([v, np.full((pad, 2), np.inf)])


def _levels(sc: dict) -> tuple:
    cl = _get(sc, "cl", "scan", default=[0.95])
    values = [cl] if isinstance(cl, int | float) and not isinstance(cl, bool) else cl
    if not isinstance(values, list | tuple) or not values:
        raise _E("scan.cl", f"must be a non-empty list of levels in (0, 1), got {_short(cl)}")
    return tuple(
        number(x, "scan.cl" if values is not cl else f"scan.cl[{i}]", _E,
               lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        for i, x in enumerate(values)
    )  # fmt: skip


def scan_rule(cfg: dict) -> str:
    """The limit rule of a scan configuration, ``scan.rule``: ``"cls"`` (CLs = α, the default)
    or ``"clsb"`` (CLs+b = α: one-sided profile-likelihood limits, e.g. the e⁺e⁻ → γa search's
    rule); part of the analysis, so a config that needs one-sided limits says so itself
    (``jaxlike scan --rule`` overrides it)."""
    rule = _get(cfg["scan"], "rule", "scan", str, "cls")
    if rule not in LIMIT_RULES:
        raise _E("scan.rule", f"must be one of {list(LIMIT_RULES)}, got {_short(rule)}")
    return rule


def build_mass_scan(cfg: dict):
    """Validate ``cfg`` and return ``(scan, masses, cl)``; nothing is compiled.

    With an ``[envelope]`` section, ``scan`` is an :class:`~jaxlike.parametric.Envelope`
    (:func:`build_envelope`); otherwise a :class:`MassScan`.

    Raises :class:`~jaxlike.exceptions.InvalidScanConfig` naming the field: unknown keys
    (with the closest known name), wrong types, values out of range, sizes beyond the limits
    of this module, unreadable or special spectrum files."""
    if not isinstance(cfg, dict):
        raise _E("", f"the scan config must be a table/object, got {type(cfg).__name__}")
    _check_structure(cfg)
    if "envelope" in cfg:
        return build_envelope(cfg)
    return _build_single(cfg)


def build_envelope(cfg: dict):
    """``(envelope, masses, cl)`` of a configuration with an ``[envelope]`` section::

        [envelope]
        method = "profile"        # or "conservative" (module jaxlike.parametric._envelope)
        penalty = 1.0             # 2NLL per fitted parameter (profile), ≥ 0
        models = [
          {name = "bern2", kind = "bernstein", order = 2},
          {kind = "chebyshev", order = 4},
          {kind = "bernstein", order = 4, lo = 15.0, hi = 25.0},   # another fit range
        ]

    Each model is the configuration with its ``[background]`` replaced by ``kind``/``order``
    (``order`` alone: the ``[background]`` family at that order) and, when given, the
    window's ``lo``/``hi`` (σ units) replaced; the rest (spectrum, signal,
    masses, levels) is shared. Names default to kind + order (``"bernstein2"``)."""
    import copy

    from ._envelope import ENVELOPE_METHODS, background_envelope

    sec = _get(cfg, "envelope", "", dict)
    method = _choice(sec, "method", "envelope", ENVELOPE_METHODS, "profile")
    penalty = _number(sec, "penalty", "envelope", 1.0, lo=0.0)
    entries = _get(sec, "models", "envelope", list)
    if not 1 <= len(entries) <= MAX_ENVELOPE_MODELS:
        raise _E("envelope.models", f"needs 1 to {MAX_ENVELOPE_MODELS} models, got {len(entries)}")
    base = {k: v for k, v in cfg.items() if k != "envelope"}
    scans, names, masses, cl = [], [], None, None
    for j, entry in enumerate(entries):
        path = f"envelope.models[{j}]"
        if not isinstance(entry, dict):
            raise _E(path, f"must be a table, got {_short(entry)}")
        check_keys(entry, _ENVELOPE_MODEL_KEYS, path, _E)
        one = copy.deepcopy(base)
        if "kind" in entry:  # another family: its own order (if it takes one)
            one["background"] = {k: entry[k] for k in ("kind", "order", "order_below")
                                 if k in entry}  # fmt: skip
        elif "order" in entry:  # the [background] family at another order
            one["background"] = {**base["background"], "order": entry["order"]}
            if "order_below" in entry:
                one["background"]["order_below"] = entry["order_below"]
        for k in ("lo", "hi"):
            if k in entry:
                one["window"][k] = entry[k]
        try:
            scan, m, c = _build_single(one)
        except _E as err:  # the model's own fields are reported under its entry
            if err.path.startswith(("background", "window.lo", "window.hi")):
                raise _E(join(path, err.path.split(".", 1)[-1]), err.reason) from None
            raise
        order = scan.n_coeffs if scan.background in ("bernstein", "chebyshev") else ""
        if scan.orders:  # an order per mass range: e.g. "bernstein2-4-5"
            order = "-".join(str(o) for o in scan.orders)
        name = entry.get("name", f"{scan.background}{order}")
        if not isinstance(name, str) or not name or len(name) > MAX_LABEL:
            raise _E(join(path, "name"), f"must be a non-empty string, got {_short(name)}")
        if name in names:
            raise _E(join(path, "name"), f"{name!r} names two models")
        scans.append(scan)
        names.append(name)
        masses, cl = (m, c) if masses is None else (masses, cl)
    return background_envelope(scans, method=method, penalty=penalty, names=names), masses, cl


def _comb_masses(sig: dict, comb):
    """(``signal.comb_masses`` as an array [S] or None, ``signal.comb_interpolation``): the
    simulated masses of combinatorial templates ``spectrum.comb`` [C, S, N], strictly
    increasing, one per template; absent for a single template [C, N]."""
    mode = _choice(sig, "comb_interpolation", "signal", COMB_MODES, "linear")
    if comb is None or comb.ndim == 2:
        for key in ("comb_masses", "comb_interpolation"):
            if key in sig:
                raise _E(f"signal.{key}", "needs combinatorial templates at several masses "
                         "(spectrum.comb of shape [C, S, N])")  # fmt: skip
        return None, mode
    ms = np.asarray(numbers(_get(sig, "comb_masses", "signal"), "signal.comb_masses", _E), float)
    if ms.shape != (comb.shape[1],):
        raise _E("signal.comb_masses", f"needs {comb.shape[1]} masses (one per template of "
                 f"spectrum.comb), got {ms.size}")  # fmt: skip
    if np.any(np.diff(ms) <= 0):
        raise _E("signal.comb_masses", "must be strictly increasing")
    return jnp.asarray(ms), mode


def _orders(bkg: dict):
    """``background.order``: one order, or a list of orders per mass range with
    ``background.order_below`` the increasing masses between the ranges (order[i] applies
    below order_below[i], the last order above the last boundary). Returns (orders, boundaries
    or None)."""
    order = _get(bkg, "order", "background")
    if not isinstance(order, list):
        if "order_below" in bkg:
            raise _E("background.order_below", "needs a list of orders (one per mass range)")
        return (integer(order, "background.order", _E, lo=0, hi=MAX_ORDER),), None
    if not order:
        raise _E("background.order", "needs at least one order")
    orders = tuple(integer(o, f"background.order[{i}]", _E, lo=0, hi=MAX_ORDER)
                   for i, o in enumerate(order))  # fmt: skip
    below = numbers(_get(bkg, "order_below", "background", list, []), "background.order_below",
                    _E)  # fmt: skip
    if len(below) != len(orders) - 1:
        raise _E("background.order_below", f"needs {len(orders) - 1} masses between the "
                 f"{len(orders)} ranges of background.order, got {len(below)}")  # fmt: skip
    if any(b <= a for a, b in zip(below, below[1:], strict=False)):
        raise _E("background.order_below", f"must increase, got {list(below)}")
    return orders, (np.asarray(below, float) if below else None)


def _build_single(cfg: dict):
    """``(scan, masses, cl)`` of a configuration without an envelope (:func:`build_mass_scan`)."""
    plot_labels(cfg)
    sig, bkg = cfg["signal"], cfg["background"]
    win, sc = cfg["window"], cfg["scan"]
    # the settings first (cheap), then the spectrum file
    shape = _choice(sig, "shape", "signal", SIGNAL_SHAPES, "gauss")
    kind = _choice(sig, "interpolation", "signal", _INTERPOLATIONS, "linear")
    rel_eff = _number(sig, "rel_eff", "signal", 0.0, lo=0.0, hi=1.0, hi_open=True)
    rel_res = _number(sig, "rel_res", "signal", 0.0, lo=0.0, hi=1.0, hi_open=True)
    uncorrelated = _get(sig, "uncorrelated", "signal", bool, False)
    background = _choice(bkg, "kind", "background", BACKGROUNDS)
    orders, order_below = (), None
    if background in ("bernstein", "chebyshev"):
        orders, order_below = _orders(bkg)
        n_coeffs = max(orders)
        orders = orders if len(orders) > 1 else ()
    else:
        for key in ("order", "order_below"):
            if key in bkg:
                raise _E(f"background.{key}", f"only bernstein and chebyshev take an order, "
                         f"not {background!r}")  # fmt: skip
        n_coeffs = 1 if background == "exponential" else 0
    w_lo = _number(win, "lo", "window", positive=True)
    w_hi = _number(win, "hi", "window", positive=True)
    n_bins = integer(_get(win, "n_bins", "window"), "window.n_bins", _E, lo=1, hi=MAX_WINDOW_BINS)
    vetoes = _vetoes(win)
    cl = _levels(sc)
    mu_max = _number(sc, "mu_max", "scan", 0.0, lo=0.0)
    skip_vetoed = _get(sc, "skip_vetoed", "scan", bool, True)

    arrays = _load_arrays(cfg)
    counts, edges = arrays["counts"], arrays["edges"]
    n_cat, n_fine = counts.shape
    tables = _tables(sig, n_cat, kind)
    conversion = np.asarray(
        numbers(_get(sig, "conversion", "signal", None, [1.0] * n_cat), "signal.conversion", _E,
                lo=0.0, lo_open=True),
        float,
    )  # fmt: skip
    if conversion.shape != (n_cat,):
        raise _E("signal.conversion", f"needs {n_cat} positive numbers (one per category), "
                 f"got {conversion.size}")  # fmt: skip
    if any("comb_fraction" in t.values for t in tables) and "comb" not in arrays:
        raise _E("spectrum.comb", "comb_fraction is tabulated but no comb template")
    if background == "template" and "template" not in arrays:
        raise _E("spectrum.template", "background kind 'template' needs it")
    comb_masses, comb_mode = _comb_masses(sig, arrays.get("comb"))

    masses = scan_masses(sc, tables[0])
    if skip_vetoed and len(vetoes):
        # a peak centred in a vetoed range has no signal bins near its core: not testable
        inside = np.any(
            (masses[:, None] > vetoes[None, :, 0]) & (masses[:, None] < vetoes[None, :, 1]), axis=1
        )
        masses = masses[~inside]
        if masses.size == 0:
            raise _E("scan.masses", "every hypothesis mass lies in a vetoed range")
    for i, t in enumerate(tables):
        t.check_range(masses, path="scan.masses" if i == 0 else f"signal.tables[{i}].mass")
    sigma = np.asarray(tables[0](jnp.asarray(masses))["sigma"])
    check_windows(edges, masses, w_lo * sigma, w_hi * sigma, n_bins, path="window")

    zeros = np.zeros((n_cat, n_fine))
    peaks = arrays.get("peaks", np.zeros((n_cat, 0, n_fine)))
    physics = physics_labels(cfg)
    physics_scale = None
    if physics is not None and ("mass" in cfg["physics"] or "scale" in cfg["physics"]):
        sec, path = cfg["physics"], "physics"
        pm = numbers(_get(sec, "mass", path), "physics.mass", _E)
        ps = numbers(_get(sec, "scale", path), "physics.scale", _E, lo=0.0, lo_open=True)
        if len(ps) != len(pm):
            raise _E("physics.scale", f"has {len(ps)} entries but physics.mass has {len(pm)}")
        physics_scale = MassTable(pm, {"scale": ps}, kind="pchip", path="physics")
        physics_scale.check_range(masses, path="physics.mass")
    scan = MassScan(
        fine_edges=jnp.asarray(edges),
        cum_counts=fine_cumsum(jnp.asarray(counts)),
        cum_comb=fine_cumsum(jnp.asarray(arrays.get("comb", zeros))),
        cum_template=fine_cumsum(jnp.asarray(arrays.get("template", zeros))),
        cum_peaks=fine_cumsum(jnp.asarray(peaks)),
        tables=tables,
        conversion=jnp.asarray(conversion),
        vetoes=jnp.asarray(vetoes),
        rel_eff=jnp.asarray(rel_eff),
        rel_res=jnp.asarray(rel_res),
        window_lo=jnp.asarray(w_lo),
        window_hi=jnp.asarray(w_hi),
        mu_max=jnp.asarray(mu_max),
        n_bins=n_bins,
        shape=shape,
        background=background,
        n_coeffs=n_coeffs,
        orders=orders,
        order_below=None if order_below is None else jnp.asarray(order_below),
        has_eff=rel_eff > 0
        or any(np.any(t.values["rel_eff"] > 0) for t in tables if "rel_eff" in t.values),
        has_res=rel_res > 0
        or any(np.any(t.values["rel_res"] > 0) for t in tables if "rel_res" in t.values),
        physics_power=None if physics is None else jnp.asarray(physics["power"]),
        physics_scale=physics_scale,
        uncorrelated=uncorrelated,
        comb_masses=comb_masses,
        comb_mode=comb_mode,
    )
    return scan, masses, tuple(float(x) for x in cl)
