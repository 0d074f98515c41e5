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

__all__ = ["counting_workspace"]


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
              ``background_uncertainty`` is refused (the sideband measures it).
        poi_name: name of the POI (a normfactor on every signal sample).
        poi_bounds: (low, high); default (0, 10 (n_max + 10√n_max + 30)/s_min), far beyond any
            credible upper limit of these counts.
        measurement_name: name of the single measurement.
        keep_zero_uncertainties: also write the modifier of an uncertainty that is given as 0
            (a ``histosys`` with lo = hi = nominal, a ``normsys`` with lo = hi = 1: no effect
            on the likelihood). Workspaces of a grid of counting experiments then share one
            parameter layout although some points have no uncertainty
            (:func:`jaxlike.scan.counting_grid_scan`).

    Returns:
        A dict for :class:`jaxlike.Workspace`.

    Raises:
        InvalidWorkspace: a missing key, a negative count or yield, a non-positive background,
            duplicated channel names, or no channel with signal.

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
        b = _number(ch, "background", path, positive=True)
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
        bkg_mods: list[dict[str, Any]] = []
        if db > 0 or (keep_zero_uncertainties and "background_uncertainty" in ch):
            bkg_mods.append(
                {
                    "name": ch.get("background_uncertainty_name", f"{name}_bkg_uncertainty"),
                    "type": "histosys",
                    "data": {"lo_data": [b - db], "hi_data": [b + db]},
                }
            )
        side = _sideband(ch, path, name, n, b, db, keep_zero_uncertainties)
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
