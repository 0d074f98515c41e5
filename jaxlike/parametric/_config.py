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
    interpolation = "linear"      # or "pchip"
    [[signal.tables]]             # one per category: simulated masses and shape columns
    mass = [0.2, 1.0, 5.0]
    sigma = [0.010, 0.012, 0.020] # required; optional: mean, alpha_l, n_l, alpha_r, n_r,
                                  # efficiency, comb_fraction, unit

    [background]
    kind = "bernstein"            # bernstein | chebyshev | exponential | template
    order = 4                     # polynomial order (bernstein/chebyshev)

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

Masses given as ``step_sigma`` advance by that many σ(m) each step (the Belle II convention).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..exceptions import InvalidScanConfig
from ..shapes import MassTable, check_windows, fine_cumsum
from ._model import BACKGROUNDS, SIGNAL_SHAPES
from ._scan import TABLE_COLUMNS, MassScan

__all__ = ["load_config", "build_mass_scan", "scan_masses"]

_SECTIONS = {"spectrum", "signal", "background", "window", "scan", "output"}
_TABLE_NAMES = {"mass"} | {name for name, _ in TABLE_COLUMNS}


def load_config(path) -> dict:
    """Read a TOML (``.toml``) or JSON scan configuration; records its folder as ``_base``."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as err:
        raise InvalidScanConfig("", f"cannot read scan config {str(p)!r}: {err.strerror}") from None
    try:
        cfg = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        fmt = p.suffix[1:] or "JSON"
        raise InvalidScanConfig("", f"{p.name} is not valid {fmt}: {err}") from None
    if not isinstance(cfg, dict):
        raise InvalidScanConfig("", "the scan config must be a table/object")
    cfg["_base"] = str(p.parent)
    return cfg


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _get(d: dict, key: str, path: str, kind=None, default=...):
    if key not in d:
        if default is ...:
            raise InvalidScanConfig(_join(path, key), "is required")
        return default
    v = d[key]
    if kind is not None and not isinstance(v, kind):
        raise InvalidScanConfig(_join(path, key), f"must be {kind.__name__}, got {v!r}")
    return v


def _number(d, key, path, default=..., positive=False):
    v = _get(d, key, path, default=default)
    if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
        raise InvalidScanConfig(_join(path, key), f"must be a finite number, got {v!r}")
    if positive and v <= 0:
        raise InvalidScanConfig(_join(path, key), f"must be positive, got {v!r}")
    return float(v)


def _load_arrays(cfg: dict) -> dict:
    spec = _get(cfg, "spectrum", "", dict)
    if "file" in spec:
        f = Path(cfg.get("_base", ".")) / _get(spec, "file", "spectrum", str)
        try:
            with np.load(f) as z:
                arrays = {k: np.asarray(z[k], float) for k in z.files}
        except (OSError, ValueError) as err:
            raise InvalidScanConfig("spectrum.file", f"cannot read {str(f)!r}: {err}") from None
    else:
        arrays = {k: np.asarray(v, float) for k, v in spec.items() if k != "file"}
    for key in ("edges", "counts"):
        if key not in arrays:
            raise InvalidScanConfig(f"spectrum.{key}", "is required (array in the spectrum)")
    e, c = arrays["edges"], np.atleast_2d(arrays["counts"])
    if e.ndim != 1 or e.size < 2 or np.any(~np.isfinite(e)) or np.any(np.diff(e) <= 0):
        raise InvalidScanConfig("spectrum.edges", "must be finite and strictly increasing")
    if c.shape[-1] != e.size - 1:
        raise InvalidScanConfig(
            "spectrum.counts", f"has {c.shape[-1]} bins but edges define {e.size - 1}"
        )
    if np.any(~np.isfinite(c)) or np.any(c < 0):
        raise InvalidScanConfig("spectrum.counts", "must be finite and non-negative")
    arrays["counts"] = c
    for key, ndim in (("comb", 2), ("template", 2), ("peaks", 3)):
        if key in arrays:
            a = arrays[key].reshape((c.shape[0],) * (ndim - 1 - (key == "peaks")) + (-1,)) \
                if arrays[key].ndim == 1 else arrays[key]  # fmt: skip
            if a.ndim != ndim or a.shape[0] != c.shape[0] or a.shape[-1] != c.shape[-1]:
                raise InvalidScanConfig(
                    f"spectrum.{key}",
                    f"must have shape {'[C, K, N]' if key == 'peaks' else '[C, N]'} with "
                    f"C = {c.shape[0]}, N = {c.shape[-1]}; got {list(a.shape)}",
                )
            if np.any(~np.isfinite(a)) or np.any(a < 0):
                raise InvalidScanConfig(f"spectrum.{key}", "must be finite and non-negative")
            arrays[key] = a
    return arrays


def _tables(sig: dict, n_cat: int, kind: str) -> tuple:
    tables = _get(sig, "tables", "signal", list)
    if len(tables) != n_cat:
        raise InvalidScanConfig(
            "signal.tables", f"needs one table per category ({n_cat}), got {len(tables)}"
        )
    out = []
    for i, t in enumerate(tables):
        path = f"signal.tables[{i}]"
        if not isinstance(t, dict):
            raise InvalidScanConfig(path, "must be a table of columns")
        unknown = sorted(set(t) - _TABLE_NAMES)
        if unknown:
            raise InvalidScanConfig(
                f"{path}.{unknown[0]}", f"unknown column; known: {sorted(_TABLE_NAMES)}"
            )
        _get(t, "sigma", path)
        masses = _get(t, "mass", path)
        cols = {k: v for k, v in t.items() if k != "mass"}
        table = MassTable(masses, cols, kind=kind, path=path)
        for k in ("sigma", "alpha_l", "n_l", "alpha_r", "n_r", "efficiency"):
            if k in cols and np.any(np.asarray(cols[k], float) <= 0):
                raise InvalidScanConfig(f"{path}.{k}", "must be positive")
        for k in ("n_l", "n_r"):
            if k in cols and np.any(np.asarray(cols[k], float) <= 1):
                raise InvalidScanConfig(f"{path}.{k}", "must be > 1 (normalisable tail)")
        out.append(table)
    return tuple(out)


def scan_masses(cfg_scan: dict, table: MassTable) -> np.ndarray:
    """Hypothesis masses: a list, ``{start, stop, n}`` (uniform) or ``{start, stop, step}`` /
    ``{start, stop, step_sigma}`` (m_{i+1} = m_i + step_sigma · σ(m_i), σ from the table)."""
    m = _get(cfg_scan, "masses", "scan")
    path = "scan.masses"
    if isinstance(m, list):
        masses = np.asarray(m, float)
    elif isinstance(m, dict):
        start, stop = _number(m, "start", path), _number(m, "stop", path)
        if stop <= start:
            raise InvalidScanConfig(path, f"stop ({stop}) must exceed start ({start})")
        if "n" in m:
            masses = np.linspace(start, stop, int(_number(m, "n", path, positive=True)))
        elif "step" in m:
            masses = np.arange(start, stop + 1e-12, _number(m, "step", path, positive=True))
        elif "step_sigma" in m:
            k = _number(m, "step_sigma", path, positive=True)
            sig_jit = jax.jit(lambda x: table(x)["sigma"])  # one compile, µs per step
            sig = lambda x: float(sig_jit(x))  # noqa: E731
            out = [start]
            while out[-1] + k * sig(out[-1]) <= stop + 1e-12 and len(out) < 10_000_000:
                out.append(out[-1] + k * sig(out[-1]))
            masses = np.asarray(out)
        else:
            raise InvalidScanConfig(path, "needs n, step or step_sigma besides start and stop")
    else:
        raise InvalidScanConfig(path, f"must be a list or a table, got {m!r}")
    if masses.size == 0 or np.any(~np.isfinite(masses)):
        raise InvalidScanConfig(path, "no finite hypothesis masses")
    return masses


def build_mass_scan(cfg: dict):
    """Validate ``cfg`` and return ``(scan, masses, cl)``; nothing is compiled."""
    unknown = sorted(set(cfg) - _SECTIONS - {"_base"})
    if unknown:
        raise InvalidScanConfig(unknown[0], f"unknown section; known: {sorted(_SECTIONS)}")
    arrays = _load_arrays(cfg)
    counts, edges = arrays["counts"], arrays["edges"]
    n_cat, n_fine = counts.shape
    sig = _get(cfg, "signal", "", dict)
    shape = _get(sig, "shape", "signal", str, "gauss")
    if shape not in SIGNAL_SHAPES:
        raise InvalidScanConfig("signal.shape", f"unknown shape {shape!r}; known: {SIGNAL_SHAPES}")
    kind = _get(sig, "interpolation", "signal", str, "linear")
    tables = _tables(sig, n_cat, kind)
    conversion = np.asarray(_get(sig, "conversion", "signal", list, [1.0] * n_cat), float)
    if conversion.shape != (n_cat,) or np.any(~(conversion > 0)):
        raise InvalidScanConfig("signal.conversion", f"needs {n_cat} positive numbers")
    rel_eff = _number(sig, "rel_eff", "signal", 0.0)
    rel_res = _number(sig, "rel_res", "signal", 0.0)
    if not (0 <= rel_eff < 1 and 0 <= rel_res < 1):
        raise InvalidScanConfig("signal.rel_eff", "relative uncertainties must be in [0, 1)")
    if "comb_fraction" in str([list(t.values) for t in tables]) and "comb" not in arrays:
        raise InvalidScanConfig("spectrum.comb", "comb_fraction is tabulated but no comb template")

    bkg = _get(cfg, "background", "", dict)
    background = _get(bkg, "kind", "background", str)
    if background not in BACKGROUNDS:
        raise InvalidScanConfig(
            "background.kind", f"unknown shape {background!r}; known: {BACKGROUNDS}"
        )
    if background in ("bernstein", "chebyshev"):
        order = int(_number(bkg, "order", "background"))
        if order < 0 or order > 12:
            raise InvalidScanConfig("background.order", f"must be in 0…12, got {order}")
        n_coeffs = order
    else:
        n_coeffs = 1 if background == "exponential" else 0
    if background == "template" and "template" not in arrays:
        raise InvalidScanConfig("spectrum.template", "background kind 'template' needs it")

    win = _get(cfg, "window", "", dict)
    w_lo = _number(win, "lo", "window", positive=True)
    w_hi = _number(win, "hi", "window", positive=True)
    n_bins = int(_number(win, "n_bins", "window", positive=True))
    vetoes = np.asarray(_get(win, "vetoes", "window", list, []), float).reshape(-1, 2)
    if np.any(vetoes[:, 1] <= vetoes[:, 0]):
        raise InvalidScanConfig("window.vetoes", "each veto must be [low, high] with low < high")

    sc = _get(cfg, "scan", "", dict)
    masses = scan_masses(sc, tables[0])
    if _get(sc, "skip_vetoed", "scan", bool, True) and len(vetoes):
        # a peak centred in a vetoed range has no signal bins near its core: not testable
        inside = np.any(
            (masses[:, None] > vetoes[None, :, 0]) & (masses[:, None] < vetoes[None, :, 1]), axis=1
        )
        masses = masses[~inside]
        if masses.size == 0:
            raise InvalidScanConfig("scan.masses", "every hypothesis mass lies in a vetoed range")
    for i, t in enumerate(tables):
        t.check_range(masses, path="scan.masses" if i == 0 else f"signal.tables[{i}].mass")
    sigma = np.asarray(tables[0](jnp.asarray(masses))["sigma"])
    check_windows(edges, masses, w_lo * sigma, w_hi * sigma, n_bins, path="window")
    cl = np.atleast_1d(np.asarray(_get(sc, "cl", "scan", default=[0.95]), float))
    if np.any(~((cl > 0) & (cl < 1))):
        raise InvalidScanConfig("scan.cl", f"levels must lie in (0, 1), got {cl.tolist()}")
    mu_max = _number(sc, "mu_max", "scan", 0.0)

    zeros = np.zeros((n_cat, n_fine))
    peaks = arrays.get("peaks", np.zeros((n_cat, 0, n_fine)))
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
        has_eff=rel_eff > 0,
        has_res=rel_res > 0,
    )
    return scan, masses, tuple(float(x) for x in cl)
