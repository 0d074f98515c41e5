"""The ALP example as the published search ran it: two fit variables, an order per mass
range, a background envelope and one-sided limits on the coupling g_aγγ.

**Everything here is invented** (as in :mod:`jaxlike.examples._scans`); only the *procedure*
follows the Belle II e+e− → γa(→γγ) search (PRL 125, 161806 (2020)): masses 0.2–6.85 GeV are
fitted in M²_γγ, masses 6.85–9.7 GeV in the recoil mass squared against the third photon
M²_recoil = s − 2√s E_γ (whose resolution is better there); the background is a polynomial
whose order depends on the mass range and is varied by ±1 as a systematic; limits are
one-sided profile-likelihood limits (CLs+b) on σ(e+e− → γa) B(a → γγ) and on g_aγγ.

:func:`write_alp_segments_example` writes into a folder

* ``alp_scan.toml``: the segmented scan (``[[segments]]`` ``gg`` and ``recoil``,
  :mod:`jaxlike.cli._scan_segments`), which ``jaxlike scan`` runs;
* ``alp_gg_scan.toml``, ``alp_gg_spectrum.npz``: x = M²_γγ [GeV²], the ``alp`` example's
  spectrum (:func:`~jaxlike.examples.write_alp_example`: the same background, π⁰/η/η′ peaks and
  Poisson draw per 0.5 MeV bin of M_γγ, 0.04–8.2 GeV) with its bin edges squared. Signal:
  the same Crystal Ball, tabulated in x with σ_x = 2 m σ(m);
* ``alp_recoil_scan.toml``, ``alp_recoil_spectrum.npz``: x = M²_recoil [GeV²], 20–100 GeV² in
  16 320 bins, 30 000 background events ∝ e^(x/40 GeV²) (1 + x/100 GeV²) (soft photons:
  rising towards large recoil mass), signal a Crystal Ball with σ_x = 0.008 (s − x) (a 0.8%
  photon-energy resolution, σ_x = 2√s σ_E; equal to the M²_γγ resolution at 6.85 GeV,
  better above), α_L = 2.0, n_L = 6, α_R = 1.1, n_R = 3 (the high-x tail of photon-energy
  leakage), √s = 10.58 GeV;

both with ε(m) = 0.30 (1 − e^(−m/0.45 GeV)) (1 − 0.02 m), L = 500 fb⁻¹, rel_eff 5 %, rel_res
8 %, window −20σ…+30σ in 100 bins, hypotheses in steps of 2σ_x; the background
``order = [5, 4, 2]`` by range (in M²_γγ: 5 below m = 1 GeV, where the vetoed peaks sit, then 4;
in M²_recoil: 4 below m = 8 GeV, then 2) and an envelope of the orders −1, nominal and +1
(``[envelope]``, discrete profiling with one unit of 2NLL per parameter); ``scan.rule =
"clsb"``; ``[physics]``: g_aγγ = k(m) σ^(1/2) with σ_a = g² α/24 (1 − m²/s)³, i.e. k = √(24/(α
(1 − m²/s)³)) in GeV⁻¹ per √fb
(1 fb = 2.568 × 10⁻¹² GeV⁻²).

The two segments have the same array layout (fine bins, table rows, background orders and
envelope), so :func:`jaxlike.scan.mass_scan` compiles one program for both
(:func:`jaxlike.stream.run_scan` with operands).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._scans import (
    _ALP_LIMIT,
    _ALP_SHAPE,
    _ALP_VETOES,
    ALP_LUMI_FB,
    _binned_density,
    _dscb_binned,
    _header_text,
    _injection,
    _round,
    _toml,
    _write_npz,
    alp_efficiency,
    alp_expected,
)

__all__ = ["write_alp_segments_example", "ALP_SQRT_S", "ALP_SPLIT_MASS"]

#: centre-of-mass energy of the example (GeV)
ALP_SQRT_S = 10.58
#: the mass (GeV) where the fit variable changes from M²_γγ to M²_recoil
ALP_SPLIT_MASS = 6.85
#: the paragraph of the written files' comment header
SUMMARY = """``alp``: e+e− → γa, a → γγ as the published search scanned it (PRL 125, 161806):
masses 0.2–6.85 GeV fitted in x = M²_γγ (229 hypotheses), 6.85–9.7 GeV in x = M²_recoil
(81 hypotheses): 310 hypotheses in steps of 2σ_x; Bernstein background of order 5, 4 or 2 by
mass range, an envelope of the orders −1, nominal, +1 (discrete profiling, penalty 1 per
parameter); one-sided CLs+b 95% CL limits on σ(e+e− → γa) B(a → γγ) [fb] and on g_aγγ
[GeV⁻¹]; 500 fb⁻¹. Spectra: jaxlike/examples/_alp_segments.py."""
_S = ALP_SQRT_S**2
_N_FINE = 16320
_FB_IN_GEV2 = 1e-39 / 0.3893794e-27  # 1 fb in GeV⁻² (ħc)² = 0.3893794 mb GeV²
_ALPHA = 1.0 / 137.035999


def _recoil_sigma(x):
    """σ of M²_recoil at x [GeV²]: 0.008 (s − x)."""
    return 0.008 * (_S - np.asarray(x, float))


_RECOIL_TAILS = {"alpha_l": 2.0, "n_l": 6.0, "alpha_r": 1.1, "n_r": 3.0}


def _gg_table() -> dict:
    m = np.array([0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0])
    cols = {k: f(m) for k, f in _ALP_SHAPE.items()}
    cols["sigma"] = 2.0 * m * cols["sigma"]  # σ_x = 2 m σ_m
    cols["efficiency"] = alp_efficiency(m)
    cols["unit"] = np.full_like(m, 1.0 / ALP_LUMI_FB)
    return {"mass": _round(m * m), **{k: _round(v) for k, v in cols.items()}}


def _recoil_table() -> dict:
    m = np.linspace(6.6, 9.8, 13)
    x = m * m
    cols = {"sigma": _recoil_sigma(x)}
    cols |= {k: np.full_like(m, v) for k, v in _RECOIL_TAILS.items()}
    cols["efficiency"] = alp_efficiency(m)
    cols["unit"] = np.full_like(m, 1.0 / ALP_LUMI_FB)
    return {"mass": _round(x), **{k: _round(v) for k, v in cols.items()}}


def _physics(x_lo, x_hi) -> dict:
    """``[physics]``: g = k(x) σ^(1/2), k tabulated in the segment's x (= m²) on 13 points."""
    x = np.linspace(x_lo, x_hi, 13)
    k = np.sqrt(24.0 * _FB_IN_GEV2 / (_ALPHA * (1.0 - x / _S) ** 3))
    return {
        "power": 0.5,
        "mass": (_round(x), "x = m^2 (GeV^2)"),
        "scale": (_round(k, 7), "sqrt(24/(alpha (1 - m^2/s)^3)) in GeV^-1 per sqrt(fb)"),
        "label": "$g_{a\\gamma\\gamma}$",
        "unit": "GeV$^{-1}$",
    }


def _segment_sections(name, table, orders_below, vetoes, masses, xlabel, physics):
    win = {"lo": 20.0, "hi": 30.0, "n_bins": 100}
    if vetoes is not None:
        win["vetoes"] = vetoes
    nominal, lower, upper = [5, 4, 2], [4, 3, 1], [6, 5, 3]
    return [
        ("spectrum", {"file": (f"alp_{name}_spectrum.npz", "edges [N+1] in x (GeV^2), "
                                                           "counts [1, N]")}),
        ("signal", {"shape": "crystal_ball", "conversion": [1.0], "rel_eff": 0.05,
                    "rel_res": 0.08, "interpolation": "linear"}),
        ("[[signal.tables]]", table),
        ("background", {"kind": "bernstein", "order": (nominal, "by range; one list in both "
                        "segments: one compiled program"), "order_below": (orders_below, "x")}),
        ("envelope", {"method": "profile", "penalty": 1.0, "models": [
            {"order": lower, "order_below": orders_below, "name": "order-1"},
            {"order": nominal, "order_below": orders_below, "name": "nominal"},
            {"order": upper, "order_below": orders_below, "name": "order+1"}]}),
        ("window", win),
        ("scan", {"masses": (masses, "x (GeV^2)"), "cl": [0.95],
                  "rule": ("clsb", "one-sided profile-likelihood limits")}),
        ("physics", physics),
        ("plot", {"label": xlabel, "unit": "GeV$^2$", "poi_label": "μ (produced ALP events)",
                  "limit_label": _ALP_LIMIT, "limit_unit": "fb"}),
    ]  # fmt: skip


def write_alp_segments_example(folder, seed: int = 0, inject=None) -> Path:
    """Write the two-segment ALP example (module docstring) to ``folder``; returns the path of
    the segmented scan file ``alp_scan.toml``.

    ``inject=(mass, mu)`` (mass in GeV): add ``mu`` produced ALP events (selected: μ ε(mass))
    to each spectrum whose range holds the peak (the M²_γγ spectrum is the ``alp`` example's,
    so its injection is that example's; in M²_recoil the recoil Crystal Ball at x = mass²).
    Only the Poisson draws depend on ``seed`` (M²_γγ first, then M²_recoil).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    m_edges, gg = alp_expected(inject)
    m_edges, gg = m_edges[: _N_FINE + 1], gg[:_N_FINE]
    x_edges = np.linspace(20.0, 100.0, _N_FINE + 1)
    recoil = _binned_density(lambda x: np.exp(x / 40.0) * (1.0 + x / 100.0), x_edges, 30000.0)
    if inject is not None:
        m, mu = _injection(inject, {"mass": [0.2, 9.7]})
        x = m * m
        recoil += mu * alp_efficiency(m) * _dscb_binned(
            x_edges, x, float(_recoil_sigma(x)), *(_RECOIL_TAILS[k] for k in
                                                    ("alpha_l", "n_l", "alpha_r", "n_r"))
        )  # fmt: skip
    rng = np.random.default_rng(seed)
    counts_gg = rng.poisson(gg[None]).astype(np.int64)
    counts_rec = rng.poisson(recoil[None]).astype(np.int64)
    _write_npz(folder / "alp_gg_spectrum.npz", edges=m_edges**2, counts=counts_gg)
    _write_npz(folder / "alp_recoil_spectrum.npz", edges=x_edges, counts=counts_rec)
    split = ALP_SPLIT_MASS**2
    header = _header_text("alp", seed, inject, write_alp_segments_example, SUMMARY)
    gg_sections = _segment_sections(
        "gg", _gg_table(), [1.0, 60.0], [[a * a, b * b] for a, b in _ALP_VETOES],
        {"start": 0.04, "stop": round(split, 6), "step_sigma": 2.0}, "$M^2_{\\gamma\\gamma}$",
        _physics(0.04, 49.0),
    )  # fmt: skip
    rec_sections = _segment_sections(
        "recoil", _recoil_table(), [10.0, 64.0], None,
        {"start": round(split + 1e-6, 6), "stop": round(9.7**2, 6), "step_sigma": 2.0},
        "$M^2_{\\mathrm{recoil}}$",
        _physics(43.0, 97.0),
    )  # fmt: skip
    for name, sections in (("gg", gg_sections), ("recoil", rec_sections)):
        (folder / f"alp_{name}_scan.toml").write_text(_toml(header, sections), encoding="utf-8")
    seg = [
        ("plot", {"label": ("$m_a$", "the stitched axis: the ALP mass"), "unit": "GeV"}),
        ("[[segments]]", {"name": "gg", "config": "alp_gg_scan.toml", "variable": "m2"}),
        ("[[segments]]", {"name": "recoil", "config": "alp_recoil_scan.toml", "variable": "m2"}),
    ]
    use = (
        "jaxlike scan alp_scan.toml (jaxlike.scan.segmented_scan); each segment's config "
        "also scans alone"
    )
    path = folder / "alp_scan.toml"
    path.write_text(_toml(_header_text("alp", seed, inject, write_alp_segments_example, SUMMARY,
                                       use), seg), encoding="utf-8")  # fmt: skip
    return path
