r"""Counting searches on N-D signal grids (mass × lifetime × …), every method on one driver.

A :class:`CountingGrid` is a set of counting channels (one signal window each, optionally with
a background sideband) evaluated at every point p of a regular grid over any number of axes
(:class:`GridAxis`: e.g. m_h′ and cτ, log-spaced). At point p channel c expects

.. math::

    \nu_c(p) = \sigma\, L\, \varepsilon_c(p)\, w_c(p)\,(1 + r_c(p)\,\alpha_s) + k_c\, b_c(p),
    \qquad \nu_c^{\rm off}(p) = \tau_c(p)\,(1 + t_c(p))^{\alpha_{\tau,c}}\, k_c\, b_c(p)

(the likelihood of :func:`jaxlike.workspace.counting_workspace`, channels multiplied): σ is the
POI in physics units (a cross section × branching fraction, in ``poi_unit``), L the integrated
luminosity, ε_c the signal efficiency (e.g. a :class:`jaxlike.shapes.GridTable` evaluated at the
points), w_c a theory weight (a branching fraction B(h′ → xx)(m) that combines the channels), r_c
the relative signal uncertainty (one nuisance α_s shared by the channels: a lifetime-dependent
efficiency systematic), b_c the nominal background, k_c its normalisation measured in the
sideband (n_off ~ Pois(ν_off), τ_c the sideband-to-window ratio, t_c its relative uncertainty).
Without a sideband b_c is known up to an absolute Gaussian uncertainty δ_c. A channel may instead
measure its background with the ABCD method (:class:`GridChannel` ``abcd_*`` fields: the window
is region A, three control regions B, C, D with k_D, k_B, k_C free and
ν_A's background k_D k_B k_C b_B b_C / b_D, see :func:`jaxlike.workspace.counting_workspace`);
its toys draw the control counts too.

Every point is one model of one shared layout: internally the POI is the total expected number
of signal events s = σ A(p), A(p) = L Σ_c ε_c w_c, so the POI bounds are the same at every point
and the models stack (:func:`jaxlike.stack_models`); results are converted back to σ = s / A(p).
Limits are invariant under this linear change of variable (for CLs, CLs+b and the Bayesian
limits with a uniform or a Jeffreys prior, which both transform as densities). A point with
A(p) = 0 has no sensitivity: its limits are +∞.

:func:`counting_grid_scan` runs ``method`` ``"cls"`` (asymptotic q̃μ CLs limits and the local
significance), ``"bayes"`` (credible limits, uniform or Jeffreys prior on σ, nuisances
marginalised) and ``"toys"`` (toy-based limits) over every point in one compiled vmapped
function (:func:`jaxlike.stream.run_scan`: chunked, sharded, stored in HDF5, resumable; on
the CPU the points of a chunk run one after the other, :func:`jaxlike.infer.map_toys`).
:func:`counting_grid_toys` throws background-only pseudo-experiments of the whole grid (one draw
of every window and sideband count per toy, shared by all points that share a window, so the
correlations of the grid are those of the data) and returns the largest local significance of
each toy: the global p-value of the look-elsewhere effect over all axes, to compare with the
Euler-characteristic estimate :func:`jaxlike.scan.gross_vitells_nd`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from .._strict import check_keys, read_config
from ..exceptions import InvalidScanConfig
from ..fit import (
    conditional_inputs,
    fit,
    fit_arrays,
    fixed_poi_fit,
    prepare_fit_inputs,
    result_repr,
)
from ..infer import map_toys
from ..model import stack_models
from ..stream import run_scan
from ..workspace import Workspace, abcd_nominal, counting_workspace
from ._identity import ScanIdentity
from ._lee_nd import euler_characteristic, gross_vitells_nd
from ._mass import DEFAULT_SCAN_CHUNK, check_rule, scan_digest, toy_chunk, toy_options
from ._results import _Fields
from ._stacked import bayes_options, check_methods, stacked_hypothesis

__all__ = [
    "CountingGrid",
    "CountingGridResult",
    "GridAxis",
    "GridChannel",
    "GridToys",
    "counting_grid_models",
    "counting_grid_to_dict",
    "load_counting_grid",
    "counting_grid_scan",
    "counting_grid_toys",
    "local_significance",
    "window_sampler",
]

_OPTIONAL = (
    "background_uncertainty",
    "signal_uncertainty",
    "sideband_observed",
    "transfer_factor",
    "transfer_factor_uncertainty",
    "abcd_closure_uncertainty",
)
#: the ABCD method's per-region fields: {counting_workspace key: (fields of B, C, D)}
_ABCD = {
    "abcd_observed": ("abcd_observed_b", "abcd_observed_c", "abcd_observed_d"),
    "abcd_background": ("abcd_background_b", "abcd_background_c", "abcd_background_d"),
    "abcd_signal_fraction": (
        "abcd_signal_fraction_b",
        "abcd_signal_fraction_c",
        "abcd_signal_fraction_d",
    ),
}
_EXPECTED_ABCD = ("expected_abcd_b", "expected_abcd_c", "expected_abcd_d")
_ABCD_FIELDS = (*(f for fs in _ABCD.values() for f in fs), "abcd_closure_uncertainty",
                *_EXPECTED_ABCD)  # fmt: skip
#: every array field of a channel, in order
_ARRAY_KEYS = ("observed", "efficiency", "background", "weight", *_OPTIONAL[:-1],
               "expected_background", "expected_sideband", "window", *_ABCD_FIELDS)  # fmt: skip


@dataclass(frozen=True)
class GridAxis:
    """One axis of a signal grid: ``name``, strictly increasing ``values``, ``unit`` (text for
    labels, e.g. ``"GeV"``, ``"cm"``), ``log`` (plotted, and best interpolated, in log scale)
    and an optional axis ``label`` (e.g. ``"$m_{h'}$"``; default the name)."""

    name: str
    values: np.ndarray
    unit: str = ""
    log: bool = False
    label: str | None = None

    def __post_init__(self):
        v = np.asarray(self.values, float)
        object.__setattr__(self, "values", v)
        path = f"axes[{self.name!r}]"
        if not isinstance(self.name, str) or not self.name:
            raise InvalidScanConfig("axes.name", "every axis needs a non-empty name")
        if v.ndim != 1 or v.size < 1 or not np.all(np.isfinite(v)):
            raise InvalidScanConfig(f"{path}.values", "must be a 1-D array of finite numbers")
        if np.any(np.diff(v) <= 0):
            raise InvalidScanConfig(f"{path}.values", "must be strictly increasing")
        if self.log and np.any(v <= 0):
            raise InvalidScanConfig(f"{path}.values", "a log axis needs positive values")

    @property
    def title(self) -> str:
        """The axis title for plots: label (or name) and unit in brackets."""
        text = self.label or self.name
        return f"{text} [{self.unit}]" if self.unit else text


@dataclass(frozen=True)
class GridChannel:
    """One counting channel of a :class:`CountingGrid`; every number is a scalar or an array
    that broadcasts to the grid's shape.

    Attributes:
        name: channel name (unique).
        observed: n_c events observed in the signal window.
        efficiency: ε_c, signal events per unit POI per unit luminosity (≥ 0).
        background: b_c > 0, nominal background in the window (with a sideband: the
            expectation the sideband's fitted k_c scales, e.g. n_off/τ).
        weight: w_c ≥ 0, theory weight of the channel (e.g. a branching fraction).
        background_uncertainty: δ_c ≥ 0, absolute (no sideband).
        signal_uncertainty: r_c ≥ 0 (< 1), relative; one nuisance α_s shared by the channels
            that give it (fully correlated), none on channels that do not.
        sideband_observed, transfer_factor, transfer_factor_uncertainty: n_off, τ_c > 0 and
            t_c ≥ 0 of a sideband (both of the first two, or neither).
        expected_background: the mean window count of background-only pseudo-experiments
            (default ``background``); ``expected_sideband`` likewise (default τ_c b_c).
        window: an integer label per point of the data window (default: every point its own),
            see :func:`counting_grid_toys`: points with the same label share one draw.
        abcd_observed_b, abcd_observed_c, abcd_observed_d: n_B, n_C, n_D ≥ 0, the counts of
            the three control regions of the ABCD method (all three or none; see
            :func:`jaxlike.workspace.counting_workspace`): the window is region A, its
            background ν_B ν_C / ν_D. ``background`` may then be left out (it is
            b_B b_C / b_D; if given it must equal that to 10⁻⁶ relative), and neither a
            sideband nor ``background_uncertainty`` may be given.
        abcd_background_b, abcd_background_c, abcd_background_d: b_B, b_C, b_D > 0, the
            nominal control-region expectations (all three or none; default
            max(n_X, 0.5) from the counts).
        abcd_closure_uncertainty: c ≥ 0, relative log-normal uncertainty of the ABCD
            relation on A's background.
        abcd_signal_fraction_b, abcd_signal_fraction_c, abcd_signal_fraction_d: f_X ≥ 0,
            signal contamination: region X expects f_X times the window's signal (all
            three or none).
        expected_abcd_b, expected_abcd_c, expected_abcd_d: the mean control-region counts
            of background-only pseudo-experiments (default b_B, b_C, b_D; all three or
            none).
    """

    name: str
    observed: np.ndarray
    efficiency: np.ndarray
    background: np.ndarray | None = None
    weight: np.ndarray | float = 1.0
    background_uncertainty: np.ndarray | None = None
    signal_uncertainty: np.ndarray | None = None
    sideband_observed: np.ndarray | None = None
    transfer_factor: np.ndarray | None = None
    transfer_factor_uncertainty: np.ndarray | None = None
    expected_background: np.ndarray | None = None
    expected_sideband: np.ndarray | None = None
    window: np.ndarray | None = None
    abcd_observed_b: np.ndarray | None = None
    abcd_observed_c: np.ndarray | None = None
    abcd_observed_d: np.ndarray | None = None
    abcd_background_b: np.ndarray | None = None
    abcd_background_c: np.ndarray | None = None
    abcd_background_d: np.ndarray | None = None
    abcd_closure_uncertainty: np.ndarray | None = None
    abcd_signal_fraction_b: np.ndarray | None = None
    abcd_signal_fraction_c: np.ndarray | None = None
    abcd_signal_fraction_d: np.ndarray | None = None
    expected_abcd_b: np.ndarray | None = None
    expected_abcd_c: np.ndarray | None = None
    expected_abcd_d: np.ndarray | None = None


def abcd_expectations(arr):
    """((b_B, b_C, b_D), b_A) [H] of a channel's checked arrays with the ABCD method: the
    given nominal control-region expectations or max(n_X, 0.5), and b_A = b_B b_C / b_D."""
    given = ([arr[k] for k in _ABCD["abcd_background"]] if "abcd_background_b" in arr
             else None)  # fmt: skip
    return abcd_nominal([arr[k] for k in _ABCD["abcd_observed"]], given)


def _check_abcd(arr, path):
    """The ABCD fields of one channel's arrays: complete triples, no sideband nor absolute
    background uncertainty beside them, ``background`` absent or b_B b_C / b_D."""
    for fields in (*_ABCD.values(), _EXPECTED_ABCD):
        given = [f for f in fields if f in arr]
        if 0 < len(given) < 3:
            missing = next(f for f in fields if f not in arr)
            raise InvalidScanConfig(
                f"{path}.{missing}", f"give all three of {', '.join(fields)} or none"
            )
    if "abcd_observed_b" not in arr:
        extra = [f for f in _ABCD_FIELDS if f in arr]
        if extra:
            raise InvalidScanConfig(
                f"{path}.{extra[0]}", "needs the ABCD counts abcd_observed_b, _c and _d"
            )
        if "background" not in arr:
            raise InvalidScanConfig(f"{path}.background", "is required")
        return
    for key in ("sideband_observed", "transfer_factor", "transfer_factor_uncertainty"):
        if key in arr:
            raise InvalidScanConfig(
                f"{path}.{key}",
                "a channel has either a sideband or the ABCD method (abcd_observed_*), not both",
            )
    if "background_uncertainty" in arr:
        raise InvalidScanConfig(
            f"{path}.background_uncertainty",
            "the ABCD method measures the background; give abcd_closure_uncertainty",
        )
    if "background" in arr:
        b_a = abcd_expectations(arr)[1]
        if not np.allclose(arr["background"], b_a, rtol=1e-6, atol=0.0):
            raise InvalidScanConfig(
                f"{path}.background",
                "with the ABCD method the window's background is b_B b_C / b_D "
                "(abcd_background_*, by default from the counts); leave it out",
            )


@dataclass(frozen=True)
class CountingGrid:
    """Channels of counting experiments over an N-D grid of signal hypotheses (see the module
    docstring for the likelihood).

    Attributes:
        axes: the :class:`GridAxis` of the grid (its shape is their lengths, ``indexing="ij"``).
        channels: the :class:`GridChannel` s.
        luminosity: L, so that σ L ε_c w_c is the expected signal of channel c.
        poi_name, poi_unit, poi_label: the physics POI (σ × B in fb, …).
    """

    axes: tuple
    channels: tuple
    luminosity: float = 1.0
    poi_name: str = "sigma"
    poi_unit: str = ""
    poi_label: str | None = None
    _arrays: dict = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "axes", tuple(self.axes))
        object.__setattr__(self, "channels", tuple(self.channels))
        if not self.axes:
            raise InvalidScanConfig("axes", "a grid needs at least one axis")
        names = [a.name for a in self.axes]
        if len(set(names)) != len(names):
            raise InvalidScanConfig("axes", f"duplicated axis names {names}")
        if not self.channels:
            raise InvalidScanConfig("channels", "a grid needs at least one channel")
        cn = [c.name for c in self.channels]
        if len(set(cn)) != len(cn):
            raise InvalidScanConfig("channels", f"duplicated channel names {cn}")
        if not (math.isfinite(self.luminosity) and self.luminosity > 0):
            raise InvalidScanConfig("luminosity", f"must be positive, got {self.luminosity}")
        object.__setattr__(self, "_arrays", self._broadcast())

    @property
    def shape(self) -> tuple[int, ...]:
        """The grid's shape (one length per axis)."""
        return tuple(a.values.size for a in self.axes)

    @property
    def size(self) -> int:
        """Number of grid points H."""
        return int(np.prod(self.shape))

    def points(self) -> np.ndarray:
        """Coordinates of every point [H, k] (C order: the last axis runs fastest)."""
        mesh = np.meshgrid(*[a.values for a in self.axes], indexing="ij")
        return np.stack([m.reshape(-1) for m in mesh], axis=1)

    def _broadcast(self):
        """{channel: {key: float array [H]}} with every number checked."""
        out = {}
        for ch in self.channels:
            path = f"channels[{ch.name!r}]"
            arr = {}
            for key in _ARRAY_KEYS:
                val = getattr(ch, key)
                if val is None:
                    continue
                try:
                    a = np.broadcast_to(np.asarray(val, float), self.shape).reshape(-1)
                except ValueError:
                    raise InvalidScanConfig(
                        f"{path}.{key}",
                        f"shape {np.shape(val)} does not broadcast to the grid {self.shape}",
                    ) from None
                if not np.all(np.isfinite(a)):
                    raise InvalidScanConfig(f"{path}.{key}", "contains NaN or infinite values")
                arr[key] = a.copy()
            for key in ("observed", "efficiency", "weight", "background_uncertainty",
                        "signal_uncertainty", "sideband_observed",
                        "transfer_factor_uncertainty", "expected_background",
                        "expected_sideband", *_ABCD["abcd_observed"],
                        *_ABCD["abcd_signal_fraction"], "abcd_closure_uncertainty",
                        *_EXPECTED_ABCD):  # fmt: skip
                if key in arr and np.any(arr[key] < 0):
                    raise InvalidScanConfig(f"{path}.{key}", "must be non-negative")
            for key in ("background", "transfer_factor", *_ABCD["abcd_background"]):
                if key in arr and np.any(arr[key] <= 0):
                    raise InvalidScanConfig(f"{path}.{key}", "must be positive")
            _check_abcd(arr, path)
            if "signal_uncertainty" in arr and np.any(arr["signal_uncertainty"] >= 1):
                raise InvalidScanConfig(f"{path}.signal_uncertainty", "must be below 1")
            if ("sideband_observed" in arr) != ("transfer_factor" in arr):
                raise InvalidScanConfig(
                    path, "a sideband needs both sideband_observed and transfer_factor"
                )
            if "sideband_observed" in arr and "background_uncertainty" in arr:
                raise InvalidScanConfig(
                    f"{path}.background_uncertainty",
                    "the sideband measures the background; give transfer_factor_uncertainty",
                )
            if "transfer_factor_uncertainty" in arr and "transfer_factor" not in arr:
                raise InvalidScanConfig(path, "transfer_factor_uncertainty needs a sideband")
            out[ch.name] = arr
        return out

    def nominal_background(self, channel: str) -> np.ndarray:
        """b_c [H], the nominal window background of ``channel`` (with the ABCD method
        b_B b_C / b_D, see :func:`abcd_expectations`)."""
        a = self._arrays[channel]
        return a["background"] if "background" in a else abcd_expectations(a)[1]

    def select(self, **indices) -> CountingGrid:
        """The sub-grid at the given indices of named axes (others kept whole), e.g.
        ``grid.select(m=[10, 11], ctau=slice(0, 20, 4))``."""
        unknown = set(indices) - {a.name for a in self.axes}
        if unknown:
            raise InvalidScanConfig("select", f"no axis named {sorted(unknown)}")
        idx = [np.arange(a.values.size)[indices.get(a.name, slice(None))] for a in self.axes]
        idx = [np.atleast_1d(i) for i in idx]
        axes = tuple(
            GridAxis(a.name, a.values[i], a.unit, a.log, a.label)
            for a, i in zip(self.axes, idx, strict=True)
        )
        mesh = np.ix_(*idx)
        channels = []
        for ch in self.channels:
            arr = self._arrays[ch.name]
            kw = {k: v.reshape(self.shape)[mesh] for k, v in arr.items()}
            channels.append(GridChannel(ch.name, **kw))
        return CountingGrid(
            axes, tuple(channels), self.luminosity, self.poi_name, self.poi_unit, self.poi_label
        )

    def acceptance(self) -> np.ndarray:
        """A(p) = L Σ_c ε_c(p) w_c(p) [H]: expected signal events per unit POI."""
        return self.luminosity * sum(a["efficiency"] * a["weight"] for a in self._arrays.values())

    def channel_dicts(self, h: int, counts: dict | None = None) -> list[dict]:
        """The :func:`jaxlike.workspace.counting_workspace` channels of point ``h`` (the signal
        in events per unit of the total signal: the POI is the total signal count).
        ``counts``: optional ``{channel: (n_on [H], n_off [H] or None)}`` replacing the data
        (a channel with the ABCD method: ``(n_on, None, (n_B [H], n_C [H], n_D [H]))``; the
        nominal b_B, b_C, b_D stay those of the grid)."""
        acc = self.acceptance()[h]
        chans = []
        n_ch = len(self.channels)
        for ch in self.channels:
            a = self._arrays[ch.name]
            share = a["efficiency"][h] * a["weight"][h] * self.luminosity
            d = {
                "name": ch.name,
                "observed": float(a["observed"][h]),
                "signal": float(share / acc) if acc > 0 else 1.0 / n_ch,
            }
            if "abcd_observed_b" in a:
                d["abcd_observed"] = [float(a[k][h]) for k in _ABCD["abcd_observed"]]
                d["abcd_background"] = [float(v[h]) for v in abcd_expectations(a)[0]]
                if "abcd_signal_fraction_b" in a:
                    d["abcd_signal_fraction"] = [
                        float(a[k][h]) for k in _ABCD["abcd_signal_fraction"]
                    ]
            else:
                d["background"] = float(a["background"][h])
            for key in _OPTIONAL:
                if key in a:
                    d[key] = float(a[key][h])
            if counts is not None:
                on, off, *rest = counts[ch.name]
                d["observed"] = float(on[h])
                if off is not None:
                    d["sideband_observed"] = float(off[h])
                if "abcd_observed" in d:
                    if not rest or rest[0] is None:
                        raise InvalidScanConfig(
                            f"counts[{ch.name!r}]", "an ABCD channel needs (n_on, None, n_BCD)"
                        )
                    d["abcd_observed"] = [float(v[h]) for v in rest[0]]
            chans.append(d)
        return chans

    def workspace(self, h: int, poi_bounds=None) -> dict:
        """The pyhf workspace of point ``h`` (POI ``signal_events``: the total signal count)."""
        return counting_workspace(
            self.channel_dicts(h),
            poi_name="signal_events",
            poi_bounds=poi_bounds,
            keep_zero_uncertainties=True,
        )


_CHANNEL_KEYS = ("name", *_ARRAY_KEYS)
_AXIS_KEYS = ("name", "values", "unit", "log", "label")
_GRID_KEYS = ("axes", "channels", "luminosity", "poi")
_POI_KEYS = ("name", "unit", "label")


def counting_grid_to_dict(grid: CountingGrid) -> dict:
    """The grid as plain JSON data, ``{"counting_grid": {"axes": [...], "channels": [...],
    "luminosity": L, "poi": {...}}}``, every array a nested list of the grid's shape (or of
    its broadcast shape where that is smaller: a number, a column over the first axis, ...).
    :func:`load_counting_grid` reads it back; ``jaxlike scan GRID.json`` scans it."""

    def compact(a):
        full = a.reshape(grid.shape)
        for k in range(len(grid.shape)):  # drop axes along which nothing changes
            if np.all(full == np.take(full, [0], axis=k)):
                full = np.take(full, [0], axis=k)
        return float(full.reshape(-1)[0]) if full.size == 1 else full.tolist()

    axes = []
    for a in grid.axes:
        d = {"name": a.name, "values": a.values.tolist(), "unit": a.unit, "log": bool(a.log)}
        if a.label:
            d["label"] = a.label
        axes.append(d)
    channels = [{"name": c.name} | {k: compact(v) for k, v in grid._arrays[c.name].items()}
                for c in grid.channels]  # fmt: skip
    poi = {"name": grid.poi_name, "unit": grid.poi_unit}
    if grid.poi_label:
        poi["label"] = grid.poi_label
    return {"counting_grid": {"axes": axes, "channels": channels,
                              "luminosity": float(grid.luminosity), "poi": poi}}  # fmt: skip


def load_counting_grid(source) -> CountingGrid:
    """A :class:`CountingGrid` from :func:`counting_grid_to_dict` data or a JSON/TOML file of
    it (``{"counting_grid": {...}}``). Unknown keys are errors (with a "did you mean" hint),
    arrays must broadcast to the grid's shape; errors name the field
    (:class:`~jaxlike.exceptions.InvalidScanConfig`)."""
    if not isinstance(source, dict):
        source = read_config(source, InvalidScanConfig, "counting grid")
    check_keys(source, ("counting_grid",), "", InvalidScanConfig)
    cfg = source.get("counting_grid")
    if not isinstance(cfg, dict):
        raise InvalidScanConfig("counting_grid", "must be a table with axes and channels")
    check_keys(cfg, _GRID_KEYS, "counting_grid", InvalidScanConfig)
    for key in ("axes", "channels"):
        if not isinstance(cfg.get(key), list) or not cfg[key]:
            raise InvalidScanConfig(f"counting_grid.{key}", "must be a non-empty list")
    axes = []
    for i, a in enumerate(cfg["axes"]):
        path = f"counting_grid.axes[{i}]"
        if not isinstance(a, dict):
            raise InvalidScanConfig(path, "must be a table")
        check_keys(a, _AXIS_KEYS, path, InvalidScanConfig)
        if "name" not in a or "values" not in a:
            raise InvalidScanConfig(path, "needs 'name' and 'values'")
        try:
            values = np.asarray(a["values"], float)
        except (TypeError, ValueError):
            raise InvalidScanConfig(f"{path}.values", "must be a list of numbers") from None
        axes.append(GridAxis(str(a["name"]), values, str(a.get("unit", "")),
                             bool(a.get("log", False)), a.get("label")))  # fmt: skip
    channels = []
    for i, c in enumerate(cfg["channels"]):
        path = f"counting_grid.channels[{i}]"
        if not isinstance(c, dict):
            raise InvalidScanConfig(path, "must be a table")
        check_keys(c, _CHANNEL_KEYS, path, InvalidScanConfig)
        required = ("name", "observed", "efficiency")
        for key in required + (() if "abcd_observed_b" in c else ("background",)):
            if key not in c:
                raise InvalidScanConfig(f"{path}.{key}", "is required")
        kw = {}
        for key, v in c.items():
            if key == "name":
                continue
            try:
                kw[key] = np.asarray(v, float)
            except (TypeError, ValueError):
                raise InvalidScanConfig(f"{path}.{key}", "must be a number or nested lists of "
                                        "numbers") from None  # fmt: skip
        channels.append(GridChannel(str(c["name"]), **kw))
    poi = cfg.get("poi", {})
    if not isinstance(poi, dict):
        raise InvalidScanConfig("counting_grid.poi", "must be a table")
    check_keys(poi, _POI_KEYS, "counting_grid.poi", InvalidScanConfig)
    lumi = cfg.get("luminosity", 1.0)
    if isinstance(lumi, bool) or not isinstance(lumi, int | float):
        raise InvalidScanConfig("counting_grid.luminosity", "must be a number")
    return CountingGrid(axes, channels, float(lumi), str(poi.get("name", "sigma")),
                        str(poi.get("unit", "")), poi.get("label"))  # fmt: skip


def _uniform_bounds(specs):
    """Give every point's measurement the widest bounds of each parameter over the grid, so
    that all points share one layout."""
    widest = {}
    for s in specs:
        for p in s["measurements"][0]["config"]["parameters"]:
            lo, hi = p["bounds"][0]
            old = widest.get(p["name"], (lo, hi))
            widest[p["name"]] = (min(lo, old[0]), max(hi, old[1]))
    for s in specs:
        for p in s["measurements"][0]["config"]["parameters"]:
            p["bounds"] = [list(widest[p["name"]])]
    return specs


def counting_grid_models(grid: CountingGrid, counts=None):
    """(stacked model, data [H, n], acceptance A [H]) of every point of ``grid``: one
    :func:`~jaxlike.workspace.counting_workspace` per point with the POI ``signal_events``
    (bounds and the other parameters' bounds made equal over the grid), stacked.
    ``counts``: see :meth:`CountingGrid.channel_dicts`."""
    specs = [
        counting_workspace(
            grid.channel_dicts(h, counts), poi_name="signal_events", keep_zero_uncertainties=True
        )
        for h in range(grid.size)
    ]
    spaces = [Workspace(s) for s in _uniform_bounds(specs)]
    models = [w.model() for w in spaces]
    data = np.stack([np.asarray(w.data(m)) for w, m in zip(spaces, models, strict=True)])
    stacked = jax.tree_util.tree_map(lambda x: jnp.asarray(x), stack_models(models))
    return stacked, data, grid.acceptance()


def _picker(stacked):
    """``i ↦`` the model of point i of a stacked model (every leaf indexed; traceable in i)."""
    leaves, treedef = jax.tree_util.tree_flatten(stacked)
    return lambda i: jax.tree_util.tree_unflatten(treedef, [x[i] for x in leaves])


def local_significance(model, data, *, search=None):
    """(Z, converged) of the discovery test at one point: Z = √q0 with
    q0 = 2NLL(μ = 0, θ̂̂) − 2NLL(μ̂, θ̂) for μ̂ ≥ 0 (the POI's lower bound is 0, so Z ≥ 0;
    asymptotically Z is the local significance). Traceable (vmap over points or toys).

    ``search``: the minimiser's global search (None: the model's rule, see
    :func:`jaxlike.fit.fit_arrays`). Pseudo-experiments pass False and start each fit from two
    points instead (the model's initial values and, for the free fit, the μ = 0 fit's θ̂̂ with
    μ = 1): the search costs ~40× a fit of a counting model."""
    if search is None:
        free = fit(model, data)
        null = fixed_poi_fit(model, data, 0.0)
    else:
        d, init, lo, hi, fixed = prepare_fit_inputs(model, data)
        poi = model.config.poi_index
        i0, l0, h0, f0 = conditional_inputs(init, lo, hi, fixed, poi, 0.0)
        null = fit_arrays(model, d, i0, l0, h0, f0, search=search)
        start = null.bestfit.at[poi].set(jnp.clip(1.0, lo[poi], hi[poi]))
        free = fit_arrays(model, d, init, lo, hi, fixed, starts=start[None], search=search)
    q0 = jnp.maximum(null.twice_nll - free.twice_nll, 0.0)
    return jnp.sqrt(q0), free.converged & null.converged


@dataclass(frozen=True)
class CountingGridResult(_Fields):
    """Results of :func:`counting_grid_scan`, every array shaped like the grid (``shape``) plus
    trailing axes: upper limits on the physics POI (``poi_unit``) ``ul_obs`` [..., ncl],
    ``ul_exp`` [..., ncl, 5] (bands N = 2, 1, 0, −1, −2), ``bayes_ul`` [..., ncl]; ``mu_hat``
    (σ̂), ``significance`` (local Z = √q0), ``acceptance`` A (signal events per unit POI);
    convergence flags; the toy fields when toys ran. ``axes``: the grid's axes."""

    axes: tuple
    cl: tuple
    methods: tuple
    poi_name: str
    poi_unit: str
    acceptance: np.ndarray
    converged: np.ndarray
    poi_label: str | None = None
    ul_obs: np.ndarray | None = None
    ul_exp: np.ndarray | None = None
    mu_hat: np.ndarray | None = None
    significance: np.ndarray | None = None
    significance_converged: np.ndarray | None = None
    cls_obs: np.ndarray | None = None
    cls_exp: np.ndarray | None = None
    cls_converged: np.ndarray | None = None
    limit_converged: np.ndarray | None = None
    bayes_ul: np.ndarray | None = None
    bayes_converged: np.ndarray | None = None
    bayes_tail_mass: np.ndarray | None = None
    ul_obs_toys: np.ndarray | None = None
    ul_exp_toys: np.ndarray | None = None
    ul_obs_toys_err: np.ndarray | None = None
    toy_limit_converged: np.ndarray | None = None
    p0_toys: np.ndarray | None = None
    p0_toys_err: np.ndarray | None = None
    toys_failed: np.ndarray | None = None
    toy_grid: np.ndarray | None = None
    toy_p_obs: np.ndarray | None = None
    __repr__ = result_repr

    @property
    def shape(self) -> tuple[int, ...]:
        """The grid's shape."""
        return tuple(a.values.size for a in self.axes)


#: result fields in events that become physics units (÷ A)
_PER_EVENT = ("ul_obs", "ul_exp", "mu_hat", "bayes_ul", "ul_obs_toys", "ul_exp_toys",
              "ul_obs_toys_err", "toy_grid")  # fmt: skip


def _identity(grid, methods, cl, rule, test_poi, toys, bayes, config, digest) -> ScanIdentity:
    cfg = {
        "kind": "counting_grid",
        "methods": list(methods),
        "cl": list(cl),
        "rule": rule,
        "test_poi": float(test_poi),
        "axes": [{"name": a.name, "unit": a.unit, "log": bool(a.log)} for a in grid.axes],
        "poi": {"name": grid.poi_name, "unit": grid.poi_unit},
    }
    if toys is not None:
        cfg["toys"] = dict(toys)
    if bayes is not None:
        cfg["bayes"] = dict(bayes)
    cfg.update(config or {})
    hyps = {"index": np.arange(grid.size), "values": grid.points()}
    added = ("kind", "methods", "cl", "rule", "test_poi", "axes", "poi", "toys", "bayes")
    return ScanIdentity(cfg, hyps, digest, added)


def counting_grid_scan(
    grid: CountingGrid,
    *,
    method=("cls",),
    cl=(0.95,),
    rule="cls",
    test_poi=1.0,
    toys=None,
    bayes=None,
    store=None,
    resume=False,
    overwrite=False,
    chunk_size=None,
    memory_budget_bytes=None,
    devices=None,
    progress=True,
    config=None,
) -> CountingGridResult:
    """Limits (and local significances) at every point of an N-D counting grid, one compiled
    vmapped function for all points.

    Args:
        grid: the :class:`CountingGrid`.
        method: ``"cls"``, ``"bayes"``, ``"toys"`` or several (``toys`` adds ``cls``).
            ``cls``: asymptotic q̃μ CLs (``rule="cls"``) or CLs+b (``rule="clsb"``: the
            one-sided profile-likelihood limit) upper limits, observed and expected, CLs at
            ``test_poi`` (in POI units) and the local significance; ``bayes``: credible
            upper limits, nuisances marginalised (options :func:`bayes_options`: prior
            ``"uniform"`` or ``"jeffreys"`` on σ, ``"laplace"`` or ``"quadrature"``; here
            ``n_grid`` = 48 conditional fits per point by default: the flat-prior limits of
            n = 0…5 events on a known background still equal the closed form to 2·10⁻⁵);
            ``toys``: toy-based limits (:func:`toy_options`).
        cl: confidence / credibility levels.
        store, resume, overwrite, chunk_size, memory_budget_bytes, devices, progress, config:
            as :func:`jaxlike.stream.run_scan` (the file records the grid's axes and units).

    Returns:
        :class:`CountingGridResult`; limits and σ̂ in ``grid.poi_unit``, +∞ limits where the
        acceptance is 0. ``converged`` is False where any computed quantity did not converge.
    """
    methods = check_methods(method)
    cl = tuple(float(x) for x in np.atleast_1d(cl))
    if not all(0.0 < c < 1.0 for c in cl):
        raise InvalidScanConfig("cl", f"levels must lie in (0, 1), got {list(cl)}")
    check_rule(rule)
    toys = toy_options(**toys) if "toys" in methods else None
    if "toys" in methods and toys is None:
        raise InvalidScanConfig("toys", "method 'toys' needs toy options (ntoys, seed)")
    bayes = bayes_options(**({"n_grid": 48} | (bayes or {}))) if "bayes" in methods else None
    stacked, data, acc = counting_grid_models(grid)
    acc_j = jnp.asarray(acc)
    test_events = jnp.asarray(float(test_poi) * acc)
    single = stacked_hypothesis(
        stacked, data, cl=cl, methods=methods, test_poi=0.0, rule=rule, toys=toys, bayes=bayes
    )
    pick = _picker(stacked)

    def point(h):
        i = h["index"]
        out = single(h | {"test_poi": test_events[i]})
        a = acc_j[i]
        for k in _PER_EVENT:
            if k in out:
                out[k] = jnp.where(a > 0, out[k] / jnp.where(a > 0, a, 1.0), jnp.inf)
        if "mu_hat" in out:
            out["mu_hat"] = jnp.where(a > 0, out["mu_hat"], jnp.nan)
        if "cls" in methods:
            model = pick(i)
            z, ok = local_significance(model, jnp.asarray(data)[i])
            out["significance"], out["significance_converged"] = z, ok
            out["converged"] = out["converged"] & ok
        return out

    digest = scan_digest((stacked, data, acc))
    ident = _identity(grid, methods, cl, rule, test_poi, toys, bayes, config, lambda: digest)
    if chunk_size is None and memory_budget_bytes is None:
        chunk_size = DEFAULT_SCAN_CHUNK if toys is None else toy_chunk(toys)
    npars = stacked.config.npars
    # a resume of a complete, intact file of this scan returns its results without compiling;
    # another configuration or grid is refused here, before any compilation
    done = ident.check_resume(store) if resume and store is not None else None
    out = (
        done
        if done is not None
        else run_scan(
            lambda batch: map_toys(point, (batch,), npars),
            ident.hypotheses,
            store=store,
            resume=resume,
            overwrite=overwrite,
            chunk_size=chunk_size,
            memory_budget_bytes=memory_budget_bytes,
            devices=devices,
            progress=progress,
            config=ident.config,
            model_digest=scan_digest((stacked, data, acc)),
            attrs={
                "kind": "counting_grid",
                "cl": list(cl),
                "poi_unit": grid.poi_unit,
                "axis_names": [a.name for a in grid.axes],
                "axis_units": [a.unit for a in grid.axes],
            },  # fmt: skip
        )
    )
    shaped = {k: np.asarray(v).reshape(grid.shape + np.shape(v)[1:]) for k, v in out.items()}
    return CountingGridResult.from_results(
        shaped,
        axes=grid.axes,
        cl=cl,
        methods=methods,
        poi_name=grid.poi_name,
        poi_unit=grid.poi_unit,
        poi_label=grid.poi_label,
        acceptance=acc.reshape(grid.shape),
    )


@dataclass(frozen=True)
class GridToys(_Fields):
    """Background-only pseudo-experiments of a whole :class:`CountingGrid`
    (:func:`counting_grid_toys`): ``max_z`` [T] the largest local Z of each toy over the grid
    (points with a failed fit left out), ``argmax`` [T] its flat point index, ``n_failed`` [T]
    fits not converged, ``z`` [T, *shape] the local significances (``return_maps``), ``seed``."""

    max_z: np.ndarray
    argmax: np.ndarray
    n_failed: np.ndarray
    seed: int
    z: np.ndarray | None = None
    __repr__ = result_repr

    def gross_vitells(self, z_local: float, levels=(0.5, 1.0, 1.5)):
        """The Euler-characteristic (Gross–Vitells) estimate of the global p-value of
        ``z_local`` from these toys: the mean Euler characteristic of their excursion sets
        {Z > u} at ``levels`` (failed fits count as below every level), fitted by
        :func:`jaxlike.scan.gross_vitells_nd` in the grid's dimension. Needs the maps
        (``return_maps=True``). Returns a :class:`~jaxlike.scan.GrossVitellsND`."""
        if self.z is None:
            raise InvalidScanConfig("return_maps", "the Euler estimate needs the toys' maps")
        z = np.nan_to_num(self.z, nan=-np.inf)
        ec = [np.mean([euler_characteristic(m > u) for m in z]) for u in levels]
        return gross_vitells_nd(z_local, levels, ec, z.ndim - 1)

    def global_pvalue(self, z_local: float) -> tuple[float, float]:
        """(p, its binomial standard error): the fraction of toys whose largest local Z is at
        least ``z_local``."""
        n = self.max_z.size
        p = float(np.mean(self.max_z >= z_local))
        return p, math.sqrt(max(p * (1.0 - p), 1.0 / n) / n)


def _windows(grid):
    """Per channel: the window label of every point (default: each point its own) and the
    representative point of each label, checked for consistent expectations."""
    out = {}
    for ch in grid.channels:
        a = grid._arrays[ch.name]
        labels = a.get("window", np.arange(grid.size, dtype=float)).astype(np.int64)
        uniq, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
        eb = a.get("expected_background", grid.nominal_background(ch.name))
        es = a.get(
            "expected_sideband",
            a["background"] * a["transfer_factor"] if "transfer_factor" in a else None,
        )
        named = [("expected_background", eb), ("expected_sideband", es)]
        if "abcd_observed_b" in a:
            nominal = abcd_expectations(a)[0]
            named += [(k, a.get(k, v)) for k, v in zip(_EXPECTED_ABCD, nominal, strict=True)]
        for name, v in named:
            if v is not None and not np.allclose(v, v[first][inverse], rtol=1e-12, atol=0):
                raise InvalidScanConfig(
                    f"channels[{ch.name!r}].{name}",
                    "points of one window must share the expected counts",
                )
        ctl = (np.stack([v[first] for _, v in named[2:]]) if "abcd_observed_b" in a
               else None)  # fmt: skip
        out[ch.name] = (inverse, eb[first], None if es is None else es[first], ctl)
    return out


def window_sampler(grid: CountingGrid):
    """The default toy sampler of :func:`counting_grid_toys`: for every channel and every data
    window (points with the same :attr:`GridChannel.window` label share it; by default every
    point is its own window) n_on ~ Pois(expected_background) and, with a sideband,
    n_off ~ Pois(expected_sideband), independently between windows and channels. A channel
    with the ABCD method also draws its control regions, n_X ~ Pois(expected_abcd_x) for
    X = B, C, D (default b_X), and gives ``(n_on, None, (n_B, n_C, n_D))``."""
    wins = _windows(grid)
    as_j = lambda v: None if v is None else jnp.asarray(v)  # noqa: E731
    draws = [(c.name, *(as_j(v) for v in wins[c.name])) for c in grid.channels]

    def sample(key):
        out = {}
        for j, (name, inv, eb, es, ctl) in enumerate(draws):
            kj = jax.random.fold_in(key, j)
            k_on, k_off = jax.random.split(kj)
            on = jax.random.poisson(k_on, eb)[inv]
            off = None if es is None else jax.random.poisson(k_off, es)[inv]
            if ctl is None:
                out[name] = (on, off)
            else:
                n_ctl = jax.random.poisson(jax.random.fold_in(kj, 1), ctl)[:, inv]
                out[name] = (on, off, (n_ctl[0], n_ctl[1], n_ctl[2]))
        return out

    return sample


def counting_grid_toys(
    grid: CountingGrid,
    n_toys: int,
    seed: int = 0,
    *,
    first_toy: int = 0,
    sampler=None,
    return_maps: bool = False,
    chunk_size: int | None = None,
    progress=True,
    store=None,
    resume=False,
    overwrite=False,
) -> GridToys:
    """Background-only toys of the whole grid and the largest local significance of each.

    Toy k draws the window and sideband counts of every point with ``sampler(key)``,
    key = ``jax.random.fold_in(jax.random.key(seed), k)`` (reproducible, independent of the
    chunking), and computes the local Z = √q0 (:func:`local_significance`) at every point with the
    point's own model (the nuisances' auxiliary data stay at their observed values). The
    fraction of toys with max Z ≥ Z_obs is the global p-value (:meth:`GridToys.global_pvalue`).
    Rows of :func:`jaxlike.stream.run_scan` are toys (stored and resumable with ``store``).

    ``sampler``: a JAX function key → ``{channel: (n_on [H], n_off [H] or None)}`` (a channel
    with the ABCD method: ``(n_on, None, (n_B [H], n_C [H], n_D [H]))``). The
    default, :func:`window_sampler`, draws every data window independently; where windows or
    sidebands of neighbouring points overlap (a mass spectrum), pass a sampler that draws the
    spectrum and sums it into the windows, so the toys carry the data's correlations (the dark
    Higgs example, :func:`jaxlike.examples.dark_higgs_grid`, does).
    """
    n_toys, seed, first_toy = int(n_toys), int(seed), int(first_toy)
    if n_toys < 1:
        raise InvalidScanConfig("n_toys", f"must be positive, got {n_toys}")
    stacked, data, _ = counting_grid_models(grid)
    npars = stacked.config.npars
    # positions of every channel's window and sideband count in the data vector (one bin each)
    slices = stacked.config.channel_slices
    on_pos = {c.name: slices[c.name].start for c in grid.channels}
    off_pos = {c.name: slices[f"{c.name}_sideband"].start for c in grid.channels
               if f"{c.name}_sideband" in slices}  # fmt: skip
    abcd_pos = {c.name: [slices[f"{c.name}_abcd_{x}"].start for x in "BCD"]
                for c in grid.channels if f"{c.name}_abcd_B" in slices}  # fmt: skip
    data_j = jnp.asarray(data)
    pick = _picker(stacked)
    key0 = jax.random.key(seed)
    if sampler is None:
        sampler = window_sampler(grid)

    def one_toy(h):
        key = jax.random.fold_in(key0, h["toy"])
        d = data_j
        counts = sampler(key)
        for c in grid.channels:
            on, off, *rest = counts[c.name]
            d = d.at[:, on_pos[c.name]].set(jnp.asarray(on, d.dtype))
            if c.name in off_pos:
                d = d.at[:, off_pos[c.name]].set(jnp.asarray(off, d.dtype))
            if c.name in abcd_pos:
                if not rest or rest[0] is None:
                    raise InvalidScanConfig(
                        "sampler",
                        f"channel {c.name!r} has the ABCD method: the sampler must give "
                        "(n_on, None, (n_B, n_C, n_D))",
                    )
                for pos, n_x in zip(abcd_pos[c.name], rest[0], strict=True):
                    d = d.at[:, pos].set(jnp.asarray(n_x, d.dtype))

        def at_point(i):
            model = pick(i)
            return local_significance(model, d[i], search=False)

        z, ok = map_toys(at_point, (jnp.arange(grid.size),), npars)
        zm = jnp.where(ok, z, -jnp.inf)
        out = {
            "max_z": jnp.max(zm),
            "argmax": jnp.argmax(zm),
            "n_failed": jnp.sum(~ok),
        }
        if return_maps:
            out["z"] = jnp.where(ok, z, jnp.nan)
        return out

    toys = {"toy": np.arange(first_toy, first_toy + n_toys)}
    res = run_scan(
        lambda batch: map_toys(one_toy, (batch,), npars),
        toys,
        store=store,
        resume=resume,
        overwrite=overwrite,
        chunk_size=chunk_size or max(1, 256 // grid.size),
        progress=progress,
        config={"kind": "counting_grid_toys", "seed": seed, "return_maps": bool(return_maps)},
        model_digest=scan_digest((stacked, data)),
    )
    z = res.get("z")
    return GridToys(
        max_z=np.asarray(res["max_z"]),
        argmax=np.asarray(res["argmax"]),
        n_failed=np.asarray(res["n_failed"]),
        seed=seed,
        z=None if z is None else np.asarray(z).reshape((n_toys, *grid.shape)),
    )
