"""A synthetic three-channel resonance search, written as a pyhf JSON workspace.

**Everything here is invented.** No experiment's numbers are used; the templates are smooth
analytic shapes chosen so that the likelihood has the structure of a real LHC search and
yields of a realistic size (a few to a few thousand events per bin).

What it models
--------------
A search for a narrow resonance (mass ~650 GeV) in an invariant-mass spectrum:

* ``SR`` (signal region): 8 bins of 100 GeV from 200 to 1000 GeV. Backgrounds ``ttbar`` and
  ``wjets`` fall exponentially; a small data-driven ``fakes`` background falls faster. The
  ``signal`` is a Gaussian peak (mean 650 GeV, width 60 GeV, 60 events for ``mu = 1``).
* ``CR_ttbar`` (2 bins, b-tagged) and ``CR_wjets`` (3 bins, b-vetoed): control regions,
  each dominated by one background, that measure the free normalisations ``mu_ttbar`` and
  ``mu_wjets``. The signal is absent there.

Parameters
----------
* ``mu`` (POI), ``mu_ttbar``, ``mu_wjets``: normfactors, unconstrained.
* ``lumi``: luminosity (1.7 %), on the simulated samples (not on ``fakes``).
* normsys: ``btag_eff`` and ``lepton_eff`` (shared by several samples and channels, with
  different sizes), ``ttbar_extrap`` and ``wjets_extrap`` (CR→SR transfer, SR only),
  ``fakes_norm`` (30 %, all channels) and ``signal_acceptance``.
* histosys: ``JES`` (jet energy scale; shifts the spectra and the signal peak, all channels)
  and ``ttbar_modelling`` (generator comparison, SR only).
* staterror ``staterror_<channel>``: simulation statistics of ``ttbar``, ``wjets`` (and
  ``signal`` in the SR), one γ per bin and channel.
* shapesys ``fakes_shape`` on ``fakes`` in the SR (Poisson-constrained, per bin).

Observed data
-------------
A Poisson draw (``numpy.random.default_rng(seed)``) from the nominal background expectation
plus ``INJECTED_MU = 0.5`` times the nominal signal, so the observed 95 % CL upper limit on
``mu`` comes out near 1 while the expected limit is below it. Only the observed counts
depend on ``seed``; the templates do not.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["make_example_workspace", "INJECTED_MU", "SR_EDGES"]

#: Signal strength injected into the pseudo-data.
INJECTED_MU = 0.5
#: Bin edges (GeV) of the signal-region mass spectrum.
SR_EDGES = tuple(200.0 + 100.0 * i for i in range(9))

_PEAK_MEAN, _PEAK_WIDTH, _PEAK_EVENTS = 650.0, 60.0, 90.0
# Non-resonant signal (off-shell production) spread flat over the SR, events per bin.
_SIGNAL_CONTINUUM = 0.25
# Simulation weights (events per generated event) that set the MC-statistics uncertainty.
_MC_WEIGHT = {"ttbar": 0.3, "wjets": 0.8, "signal": 0.05}


def _falling(norm: float, slope: float) -> np.ndarray:
    """Exponentially falling yields in the SR bins: ``norm * exp(-(m - 200) / slope)``."""
    centres = 0.5 * (np.asarray(SR_EDGES[:-1]) + np.asarray(SR_EDGES[1:]))
    return norm * np.exp(-(centres - SR_EDGES[0]) / slope)


def _peak(mean: float) -> np.ndarray:
    """Signal in the SR bins: a Gaussian peak (``_PEAK_EVENTS`` events) on a flat continuum."""

    def cdf(x: float) -> float:
        return 0.5 * (1.0 + math.erf((x - mean) / (_PEAK_WIDTH * math.sqrt(2.0))))

    bins = zip(SR_EDGES[:-1], SR_EDGES[1:], strict=True)
    return np.array([_PEAK_EVENTS * (cdf(hi) - cdf(lo)) + _SIGNAL_CONTINUUM for lo, hi in bins])


def _tilt(nominal: np.ndarray, slope: float) -> np.ndarray:
    """``nominal`` times a linear tilt from ``1 - slope`` (first bin) to ``1 + slope`` (last)."""
    return nominal * (1.0 + slope * np.linspace(-1.0, 1.0, nominal.size))


def _normsys(name: str, lo: float, hi: float) -> dict:
    return {"name": name, "type": "normsys", "data": {"hi": hi, "lo": lo}}


def _histosys(name: str, up: np.ndarray, down: np.ndarray) -> dict:
    return {
        "name": name,
        "type": "histosys",
        "data": {"hi_data": _round(up), "lo_data": _round(down)},
    }


def _staterror(channel: str, sample: str, nominal: np.ndarray) -> dict:
    delta = np.sqrt(nominal * _MC_WEIGHT[sample])
    return {"name": f"staterror_{channel}", "type": "staterror", "data": _round(delta)}


def _factor(name: str, ftype: str = "normfactor") -> dict:
    return {"name": name, "type": ftype, "data": None}


def _round(values: np.ndarray) -> list[float]:
    """Plain floats rounded to 4 decimals: readable JSON, exactly reproducible."""
    return [round(float(v), 4) for v in values]


def _sample(name: str, nominal: np.ndarray, modifiers: list[dict]) -> dict:
    return {"name": name, "data": _round(nominal), "modifiers": modifiers}


def _signal_region() -> dict:
    ch = "SR"
    ttbar, wjets, fakes = _falling(800.0, 230.0), _falling(450.0, 200.0), _falling(70.0, 150.0)
    signal = _peak(_PEAK_MEAN)
    samples = [
        _sample(
            "signal",
            signal,
            [
                _factor("mu"),
                _factor("lumi", "lumi"),
                _normsys("signal_acceptance", 0.94, 1.05),
                _normsys("btag_eff", 0.97, 1.03),
                _normsys("lepton_eff", 0.99, 1.01),
                _histosys("JES", _peak(_PEAK_MEAN * 1.03), _peak(_PEAK_MEAN * 0.97)),
                _staterror(ch, "signal", signal),
            ],
        ),
        _sample(
            "ttbar",
            ttbar,
            [
                _factor("mu_ttbar"),
                _factor("lumi", "lumi"),
                _normsys("btag_eff", 0.96, 1.04),
                _normsys("lepton_eff", 0.99, 1.01),
                _normsys("ttbar_extrap", 0.93, 1.08),
                _histosys("JES", _tilt(ttbar, 0.08), _tilt(ttbar, -0.07)),
                _histosys("ttbar_modelling", _tilt(ttbar, 0.12), _tilt(ttbar, -0.05)),
                _staterror(ch, "ttbar", ttbar),
            ],
        ),
        _sample(
            "wjets",
            wjets,
            [
                _factor("mu_wjets"),
                _factor("lumi", "lumi"),
                _normsys("lepton_eff", 0.99, 1.01),
                _normsys("wjets_extrap", 0.88, 1.12),
                _histosys("JES", _tilt(wjets, 0.10), _tilt(wjets, -0.09)),
                _staterror(ch, "wjets", wjets),
            ],
        ),
        _sample(
            "fakes",
            fakes,
            [
                _normsys("fakes_norm", 0.7, 1.3),
                {
                    "name": "fakes_shape",
                    "type": "shapesys",
                    "data": _round(fakes * np.linspace(0.15, 0.45, fakes.size)),
                },
            ],
        ),
    ]
    return {"name": ch, "samples": samples}


def _control_region(ch: str, yields: dict[str, list[float]], btag: dict[str, tuple]) -> dict:
    """A control region with ``ttbar``, ``wjets`` and ``fakes`` (no signal)."""
    samples = []
    for name in ("ttbar", "wjets"):
        nominal = np.asarray(yields[name], dtype=float)
        samples.append(
            _sample(
                name,
                nominal,
                [
                    _factor(f"mu_{name}"),
                    _factor("lumi", "lumi"),
                    _normsys("btag_eff", *btag[name]),
                    _normsys("lepton_eff", 0.99, 1.01),
                    _histosys("JES", _tilt(nominal, 0.04), _tilt(nominal, -0.035)),
                    _staterror(ch, name, nominal),
                ],
            )
        )
    fakes = np.asarray(yields["fakes"], dtype=float)
    samples.append(_sample("fakes", fakes, [_normsys("fakes_norm", 0.7, 1.3)]))
    return {"name": ch, "samples": samples}


def _channels() -> list[dict]:
    cr_ttbar = _control_region(
        "CR_ttbar",
        {"ttbar": [1450.0, 880.0], "wjets": [130.0, 75.0], "fakes": [40.0, 22.0]},
        {"ttbar": (0.95, 1.05), "wjets": (0.80, 1.22)},
    )
    cr_wjets = _control_region(
        "CR_wjets",
        {
            "ttbar": [160.0, 105.0, 62.0],
            "wjets": [2100.0, 1250.0, 690.0],
            "fakes": [85.0, 50.0, 28.0],
        },
        {"ttbar": (1.06, 0.93), "wjets": (0.995, 1.005)},
    )
    return [_signal_region(), cr_ttbar, cr_wjets]


def _observations(channels: list[dict], seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    observations = []
    for channel in channels:
        expected = sum(
            np.asarray(s["data"]) * (INJECTED_MU if s["name"] == "signal" else 1.0)
            for s in channel["samples"]
        )
        counts = rng.poisson(expected)
        observations.append({"name": channel["name"], "data": [float(n) for n in counts]})
    return observations


def make_example_workspace(seed: int = 0) -> dict:
    """Build the synthetic search workspace (pyhf JSON schema 1.0.0) described in this module.

    The templates are fixed; ``seed`` selects the Poisson draw of the observed data, so the
    same seed always gives the same workspace and different seeds give different data.

    Example:
        >>> spec = make_example_workspace(seed=1)
        >>> [c["name"] for c in spec["channels"]]
        ['SR', 'CR_ttbar', 'CR_wjets']
        >>> spec["measurements"][0]["config"]["poi"]
        'mu'
    """
    channels = _channels()
    lumi = {
        "name": "lumi",
        "auxdata": [1.0],
        "sigmas": [0.017],
        "bounds": [[0.915, 1.085]],
        "inits": [1.0],
    }
    return {
        "channels": channels,
        "observations": _observations(channels, int(seed)),
        "measurements": [
            {"name": "synthetic_search", "config": {"poi": "mu", "parameters": [lumi]}}
        ],
        "version": "1.0.0",
    }
