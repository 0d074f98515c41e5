"""Counting experiments as a pyhf workspace: one bin per channel, channels sharing the POI.

Several channels in one workspace multiply their likelihoods, which is how the channels of a
search are combined (the product of their Poisson terms, with the POI and the nuisances
shared); the workspace feeds every inference of jaxlike (fits, CLs limits, Bayesian limits).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..exceptions import InvalidWorkspace

__all__ = ["abcd_nominal", "counting_workspace"]


def _number(ch, key, path, *, required=True, default=None, positive=False):
    """``ch[key]`` as a finite, non-negative (``positive``: > 0) float; a missing optional key
    gives ``default``."""
    if key not in ch:
        if required:
            raise InvalidWorkspace(path, f"missing {key!r}")
        return default
    value = ch[key]
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidWorkspace(f"{path}.{key}", f"must be a number, got {value!r}") from None
    if not np.isfinite(value) or value < 0 or (positive and value == 0):
        need = "positive" if positive else "non-negative"
        raise InvalidWorkspace(f"{path}.{key}", f"must be a finite {need} number, got {value!r}")
    return value


def _sideband(ch, path, name, n_on, b, db, keep_zero=False):
    """The normfactor (and its parameter settings), channel and observation of a channel's
    sideband, or None."""
    keys = ("sideband_observed", "transfer_factor", "transfer_factor_uncertainty")
    if not any(k in ch for k in keys):
        return None
    for k in keys[:2]:
        if k not in ch:
            raise InvalidWorkspace(path, f"a sideband needs {k!r} (given: {keys[0]!r} and "
                                   f"{keys[1]!r}, optionally {keys[2]!r})")  # fmt: skip
    if db > 0:
        raise InvalidWorkspace(
            f"{path}.background_uncertainty",
            "a channel with a sideband measures its background there; give the transfer "
            "factor's uncertainty (transfer_factor_uncertainty) instead",
        )
    n_off = _number(ch, "sideband_observed", path)
    tau = _number(ch, "transfer_factor", path, positive=True)
    t = _number(ch, "transfer_factor_uncertainty", path, required=False, default=0.0)
    norm = {"name": f"{name}_bkg_norm", "type": "normfactor", "data": None}
    mods: list[dict[str, Any]] = [norm]
    if t > 0 or (keep_zero and keys[2] in ch):
        mods.append({"name": f"{name}_transfer_factor", "type": "normsys",
                     "data": {"hi": 1.0 + t, "lo": 1.0 / (1.0 + t)}})  # fmt: skip
    side = f"{name}_sideband"
    m = max(n_on, n_off)  # k up to far beyond any count of the two regions
    k_hi = 10.0 * (m + 10.0 * math.sqrt(m) + 30.0) / (b * min(tau, 1.0))
    return {
        "norm": norm,
        "bounds": {"name": norm["name"], "bounds": [[0.0, k_hi]], "inits": [1.0]},
        "channel": {"name": side,
                    "samples": [{"name": "background", "data": [tau * b], "modifiers": mods}]},
        "observation": {"name": side, "data": [n_off]},
    }  # fmt: skip


_ABCD_KEYS = ("abcd_observed", "abcd_background", "abcd_closure_uncertainty",
              "abcd_signal_fraction")  # fmt: skip
_REGIONS = ("B", "C", "D")
#: floor of the default nominal control-region expectation b_X = max(n_X, ABCD_FLOOR)
ABCD_FLOOR = 0.5


def _triple(ch, key, path, *, positive=False):
    """``ch[key]`` as three finite non-negative (``positive``: > 0) floats (regions B, C, D)."""
    value = ch[key]
    try:
        arr = np.asarray(value, float)
    except (TypeError, ValueError):
        raise InvalidWorkspace(
            f"{path}.{key}", f"must be 3 numbers [B, C, D], got {value!r}"
        ) from None
    if arr.shape != (3,):
        raise InvalidWorkspace(
            f"{path}.{key}", f"must be 3 numbers [B, C, D] (regions B, C, D), got {value!r}"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or (positive and np.any(arr == 0)):
        need = "positive" if positive else "non-negative"
        raise InvalidWorkspace(f"{path}.{key}", f"must be finite {need} numbers, got {value!r}")
    return [float(v) for v in arr]


def abcd_nominal(observed, background=None):
    """(b_B, b_C, b_D), b_A: the nominal control-region expectations (``background``, or by
    default b_X = max(n_X, ABCD_FLOOR) from the counts) and the signal region's
    b_A = b_B b_C / b_D. Works elementwise on arrays (the grids use it)."""
    if background is None:
        background = [np.maximum(np.asarray(n, float), ABCD_FLOOR) for n in observed]
    b_b, b_c, b_d = background
    return (b_b, b_c, b_d), b_b * b_c / b_d


def _abcd(ch, path, name, s, sig_mods, keep_zero=False):
    """The normfactors (and their parameter settings), background modifiers of the signal
    region, b_A, the control channels and observations of a channel's ABCD method, or None."""
    if not any(k in ch for k in _ABCD_KEYS):
        return None
    if "abcd_observed" not in ch:
        raise InvalidWorkspace(path, "the ABCD method needs 'abcd_observed' ([n_B, n_C, n_D])")
    if any(
        k in ch for k in ("sideband_observed", "transfer_factor", "transfer_factor_uncertainty")
    ):
        raise InvalidWorkspace(
            f"{path}.sideband_observed" if "sideband_observed" in ch else f"{path}.transfer_factor",
            "a channel has either a sideband or the ABCD method (abcd_observed), not both",
        )
    if "background_uncertainty" in ch:
        raise InvalidWorkspace(
            f"{path}.background_uncertainty",
            "a channel with the ABCD method measures its background in the control regions; "
            "give the closure uncertainty (abcd_closure_uncertainty) instead",
        )
    n_ctl = _triple(ch, "abcd_observed", path)
    given = _triple(ch, "abcd_background", path, positive=True) if "abcd_background" in ch else None
    b_ctl, b_a = abcd_nominal(n_ctl, given)
    b_ctl, b_a = [float(v) for v in b_ctl], float(b_a)
    if "background" in ch:
        b = _number(ch, "background", path, positive=True)
        if not math.isclose(b, b_a, rel_tol=1e-6):
            raise InvalidWorkspace(
                f"{path}.background",
                f"with the ABCD method the signal region's background is b_B b_C / b_D = "
                f"{b_a!r}; got {b!r} (leave 'background' out)",
            )
    c = _number(ch, "abcd_closure_uncertainty", path, required=False, default=0.0)
    frac = (_triple(ch, "abcd_signal_fraction", path) if "abcd_signal_fraction" in ch
            else [0.0, 0.0, 0.0])  # fmt: skip
    k = {x: {"name": f"{name}_abcd_k{x}", "type": "normfactor", "data": None} for x in _REGIONS}
    mods_a: list[dict[str, Any]] = [k["D"], k["B"], k["C"]]
    if c > 0 or (keep_zero and "abcd_closure_uncertainty" in ch):
        mods_a.append({"name": f"{name}_abcd_closure", "type": "normsys",
                       "data": {"hi": 1.0 + c, "lo": 1.0 / (1.0 + c)}})  # fmt: skip
    # bounds far beyond the maxima: with integer counts ν̂_D ≤ N (the total count) and
    # ν̂_B/ν̂_D, ν̂_C/ν̂_D ≤ N (n_B/n_D in the free fit, (n_A + n_B)/(n_C + n_D) at μ = 0) unless
    # ν̂_D = 0 (both of C and D, or of B and D, empty), where a k sits on its upper bound
    m = float(ch["observed"]) + sum(n_ctl)
    big = 10.0 * (m + 10.0 * math.sqrt(m) + 30.0)
    b_b, b_c, b_d = b_ctl
    hi = {"D": big / b_d, "B": big * b_d / b_b, "C": big * b_d / b_c}
    bounds = [{"name": k[x]["name"], "bounds": [[0.0, hi[x]]], "inits": [1.0]} for x in _REGIONS]
    channels, observations = [], []
    for x, n_x, b_x, f_x in zip(_REGIONS, n_ctl, b_ctl, frac, strict=True):
        mods = [k["D"]] + ([k[x]] if x != "D" else [])
        samples = []
        if f_x > 0 or (keep_zero and "abcd_signal_fraction" in ch):
            sig = [mod if mod["type"] != "histosys" else mod | {"data": {
                       "lo_data": [f_x * v for v in mod["data"]["lo_data"]],
                       "hi_data": [f_x * v for v in mod["data"]["hi_data"]]}}
                   for mod in sig_mods]  # fmt: skip
            samples.append({"name": "signal", "data": [f_x * s], "modifiers": sig})
        samples.append({"name": "background", "data": [b_x], "modifiers": mods})
        cname = f"{name}_abcd_{x}"
        channels.append({"name": cname, "samples": samples})
        observations.append({"name": cname, "data": [n_x]})
    n_sig = max((n for n, f in zip(n_ctl, frac, strict=True) if f > 0), default=0.0)
    return {
        "bounds": bounds,
        "mods": mods_a,
        "b_a": b_a,
        "channels": channels,
        "observations": observations,
        "n_signal_max": n_sig,
    }


def counting_workspace(
    channels,
    *,
    poi_name="mu",
    poi_bounds=None,
    measurement_name="counting",
    signal_uncertainty_name="signal_uncertainty",
    keep_zero_uncertainties=False,
):
    r"""A pyhf workspace (schema 1.0.0 dict) for one or several counting experiments.

    Channel c (one bin) has expected count and likelihood

    .. math::

        \nu_c = \mu\, s_c (1 + r_c\,\alpha_s) + b_c + \delta_c\,\alpha_c, \qquad
        L = \prod_c \mathrm{Pois}(n_c \mid \nu_c)\; \prod_{\alpha} \mathcal N(0 \mid \alpha, 1),

    so channels combine by multiplying their likelihoods and share the POI μ (a signal
    strength, or a cross section when ``signal`` is the yield per unit cross section ε·L).

    A channel with a **sideband** (the on/off problem: the background measured in a
    signal-free region with τ times the signal region's exposure) has a free background
    normalisation k_c (a normfactor ``<name>_bkg_norm`` ≥ 0, initial value 1) and a second
    one-bin channel ``<name>_sideband``:

    .. math::

        \nu_c = \mu\, s_c (1 + r_c\,\alpha_s) + k_c b_c, \qquad
        \nu_c^{\rm off} = \tau_c (1 + t_c)^{\alpha_\tau} k_c b_c ,

    with n_off ~ Pois(ν_off) and, if ``transfer_factor_uncertainty`` t_c > 0, a log-normal
    constraint on τ (a ``normsys`` with hi = 1 + t_c, lo = 1/(1 + t_c), which pyhf's
    exponential interpolation makes exactly (1 + t_c)^α on both sides). Without it, the
    discovery test of one such channel is the likelihood ratio of Li & Ma (1983), eq. 17:
    Z = √q0 with α = 1/τ.

    A channel with the **ABCD method** is the signal region A of a plane cut by two (nearly)
    independent variables into A and three control regions B, C, D, so that without signal
    ν_A = ν_B ν_C / ν_D. Three free normalisations (normfactors ``<name>_abcd_kD``,
    ``<name>_abcd_kB``, ``<name>_abcd_kC`` ≥ 0, initial value 1, listed in the measurement
    with wide bounds) scale the nominal expectations b_B, b_C, b_D, and three one-bin
    channels ``<name>_abcd_B``, ``<name>_abcd_C``, ``<name>_abcd_D`` hold the control counts:

    .. math::

        \nu_D = k_D b_D + \mu f_D s_c, \quad \nu_B = k_D k_B b_B + \mu f_B s_c, \quad
        \nu_C = k_D k_C b_C + \mu f_C s_c, \\
        \nu_A = \mu\, s_c (1 + r_c\,\alpha_s) + k_D k_B k_C\, b_A\, (1 + c)^{\alpha_c},
        \qquad b_A = b_B b_C / b_D,

    so the background of A is always (ν_B − μ f_B s)(ν_C − μ f_C s)/(ν_D − μ f_D s), up to the
    closure factor. Without signal contamination the free fit's background of A is the
    classic ABCD estimate n_B n_C / n_D (when n_A n_D ≥ n_B n_C; else μ̂ = 0 and
    ν̂ is the independence fit of the 2×2 table, ν̂_A = (n_A + n_B)(n_A + n_C)/N). f_X is the
    signal contamination (region X expects f_X times A's signal, with the same signal
    uncertainty r_c), c the relative closure uncertainty of the ABCD relation (a log-normal
    ``normsys`` ``<name>_abcd_closure`` on A's background, hi = 1 + c, lo = 1/(1 + c), like the
    transfer factor). Where ν̂_D = 0 (C and D, or B and D, all empty) the likelihood's supremum
    lies at infinite k_B or k_C: the fit stops on their upper bound.

    The background uncertainty δ_c is absolute and Gaussian: a ``histosys`` with
    ``lo_data``/``hi_data`` = b_c ∓ δ_c, which pyhf's code4p interpolation makes exactly
    linear in α (b_c + δ_c α) for symmetric variations. The relative signal uncertainty r_c is
    a ``histosys`` with ``lo_data``/``hi_data`` = s_c(1 ∓ r_c) on the signal, i.e.
    ν_s = μ s_c (1 + r_c α_s).

    Args:
        channels: a list of dicts with keys

            - ``name`` (str, unique), ``observed`` (n_c ≥ 0), ``signal`` (s_c ≥ 0, at least
              one channel > 0), ``background`` (b_c > 0);
            - ``background_uncertainty`` (δ_c ≥ 0, absolute, optional) and
              ``background_uncertainty_name`` (default ``"<name>_bkg_uncertainty"``:
              uncorrelated between channels; give channels the same name to correlate them
              fully);
            - ``signal_uncertainty`` (r_c ≥ 0, relative, optional); all channels share the
              nuisance ``signal_uncertainty_name`` (fully correlated, like a luminosity or a
              common efficiency), unless a channel sets its own ``signal_uncertainty_name``;
            - a sideband (optional): ``sideband_observed`` (n_off ≥ 0) and
              ``transfer_factor`` (τ_c > 0: sideband over signal-region background), with
              optional ``transfer_factor_uncertainty`` (t_c ≥ 0, relative); ``background``
              is then the nominal b_c (e.g. n_off/τ), scaled by the fitted k_c, and a
              ``background_uncertainty`` is refused (the sideband measures it);
            - the ABCD method (optional, not with a sideband): ``abcd_observed``
              ([n_B, n_C, n_D], counts ≥ 0), optional ``abcd_background`` ([b_B, b_C, b_D],
              nominal expectations > 0; default max(n_X, 0.5), the counts floored so that
              they are positive), ``abcd_closure_uncertainty`` (c ≥ 0, relative) and
              ``abcd_signal_fraction`` ([f_B, f_C, f_D] ≥ 0, default 0). ``background`` is
              then derived, b_A = b_B b_C / b_D: leave it out, or give that value (to 10⁻⁶
              relative; another is refused). ``background_uncertainty`` is refused (the
              control regions measure the background; give the closure uncertainty).
        poi_name: name of the POI (a normfactor on every signal sample).
        poi_bounds: (low, high); default (0, 10 (n_max + 10√n_max + 30)/s_min), far beyond any
            credible upper limit of these counts (n_max also over the ABCD control regions with
            signal contamination).
        measurement_name: name of the single measurement.
        keep_zero_uncertainties: also write the modifier of an uncertainty that is given as 0
            (a ``histosys`` with lo = hi = nominal, a ``normsys`` with lo = hi = 1: no effect
            on the likelihood), and an ABCD signal-contamination sample of every control region
            when ``abcd_signal_fraction`` is given, even where f_X = 0. Workspaces of a grid of
            counting experiments then share one parameter layout although some points have no
            uncertainty
            (:func:`jaxlike.scan.counting_grid_scan`).

    Returns:
        A dict for :class:`jaxlike.Workspace`.

    Raises:
        InvalidWorkspace: a missing key, a negative count or yield, a non-positive background,
            duplicated channel names, no channel with signal, or an inconsistent ABCD channel
            (not 3 control counts, a sideband or ``background_uncertainty`` beside it, a
            ``background`` other than b_B b_C / b_D); the message names the field.

    Example::

        spec = counting_workspace([
            {"name": "dark_higgs", "observed": 2, "signal": 3.1, "background": 1.4,
             "background_uncertainty": 0.3},
            {"name": "idm", "observed": 0, "signal": 1.2, "background": 0.5},
        ])
        ws = jaxlike.Workspace(spec)
    """
    channels = list(channels)
    if not channels:
        raise InvalidWorkspace("channels", "at least one channel is needed")
    specs, observations, names, norms = [], [], set(), []
    n_max, s_min = 0.0, np.inf
    for i, ch in enumerate(channels):
        path = f"channels[{i}]"
        if not isinstance(ch, dict):
            raise InvalidWorkspace(path, f"must be a dict, got {type(ch).__name__}")
        name = ch.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidWorkspace(f"{path}.name", "must be a non-empty string")
        if name in names:
            raise InvalidWorkspace(f"{path}.name", f"duplicated channel name {name!r}")
        names.add(name)
        n = _number(ch, "observed", path)
        s = _number(ch, "signal", path)
        is_abcd = any(k in ch for k in _ABCD_KEYS)
        b = None if is_abcd else _number(ch, "background", path, positive=True)
        db = _number(ch, "background_uncertainty", path, required=False, default=0.0)
        rs = _number(ch, "signal_uncertainty", path, required=False, default=0.0)
        n_max = max(n_max, n)
        if s > 0:
            s_min = min(s_min, s)
        sig_mods: list[dict[str, Any]] = [{"name": poi_name, "type": "normfactor", "data": None}]
        if rs > 0 or (keep_zero_uncertainties and "signal_uncertainty" in ch):
            sig_mods.append(
                {
                    "name": ch.get("signal_uncertainty_name", signal_uncertainty_name),
                    "type": "histosys",
                    "data": {"lo_data": [s * (1.0 - rs)], "hi_data": [s * (1.0 + rs)]},
                }
            )
        abcd = _abcd(ch, path, name, s, sig_mods, keep_zero_uncertainties)
        bkg_mods: list[dict[str, Any]] = []
        if db > 0 or (keep_zero_uncertainties and "background_uncertainty" in ch):
            bkg_mods.append(
                {
                    "name": ch.get("background_uncertainty_name", f"{name}_bkg_uncertainty"),
                    "type": "histosys",
                    "data": {"lo_data": [b - db], "hi_data": [b + db]},
                }
            )
        if abcd is not None:
            b = abcd["b_a"]
            bkg_mods.extend(abcd["mods"])
            norms.extend(abcd["bounds"])
            n_max = max(n_max, abcd["n_signal_max"])
            for c in abcd["channels"]:
                if c["name"] in names:
                    raise InvalidWorkspace(
                        f"{path}.name", f"its ABCD control channel {c['name']!r} is taken"
                    )
                names.add(c["name"])
        side = None if abcd is not None else _sideband(ch, path, name, n, b, db,
                                                         keep_zero_uncertainties)  # fmt: skip
        if side is not None:
            if side["channel"]["name"] in names:
                raise InvalidWorkspace(
                    f"{path}.name", f"its sideband channel {side['channel']['name']!r} is taken"
                )
            names.add(side["channel"]["name"])
            bkg_mods.append(side["norm"])
            norms.append(side["bounds"])
        specs.append(
            {
                "name": name,
                "samples": [
                    {"name": "signal", "data": [s], "modifiers": sig_mods},
                    {"name": "background", "data": [b], "modifiers": bkg_mods},
                ],
            }
        )
        observations.append({"name": name, "data": [n]})
        if side is not None:
            specs.append(side["channel"])
            observations.append(side["observation"])
        if abcd is not None:
            specs.extend(abcd["channels"])
            observations.extend(abcd["observations"])
    if not np.isfinite(s_min):
        raise InvalidWorkspace("channels", "no channel has a positive signal yield")
    if poi_bounds is None:
        poi_bounds = (0.0, 10.0 * (n_max + 10.0 * math.sqrt(n_max) + 30.0) / s_min)
    lo, hi = (float(v) for v in poi_bounds)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise InvalidWorkspace("poi_bounds", f"must be finite with low < high, got {poi_bounds}")
    init = min(max(1.0, lo), hi)
    return {
        "channels": specs,
        "observations": observations,
        "measurements": [
            {
                "name": measurement_name,
                "config": {
                    "poi": poi_name,
                    "parameters": [{"name": poi_name, "bounds": [[lo, hi]], "inits": [init]}]
                    + norms,
                },
            }
        ],
        "version": "1.0.0",
    }
