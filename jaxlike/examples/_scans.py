"""Synthetic, seeded example datasets for parametric mass scans: ALP, B → K(*)a and Z′.

**Everything here is invented.** The spectra, resolutions, efficiencies and luminosities are
smooth analytic choices of a realistic size (modelled loosely on Belle II searches); they are
no experiment's numbers. Each ``write_*_example(folder, seed=0, inject=None)`` writes

* ``<name>_spectrum.npz``: ``edges`` [N+1] and Poisson-drawn ``counts`` [C, N] (int64);
* ``<name>_scan.toml``: the scan configuration (see :mod:`jaxlike.parametric._config`), with
  ``file = "<name>_spectrum.npz"`` relative to it and a comment header saying how it was made,

and returns the path of the TOML file, which :func:`jaxlike.parametric.load_config` and
:func:`jaxlike.parametric.build_mass_scan` accept. Only the Poisson draw
(``numpy.random.default_rng(seed)``) depends on ``seed``; the same seed gives byte-identical
files. ``inject=(mass, mu)`` adds a signal of ``mu`` POI units at ``mass`` (shape and
efficiency interpolated linearly from the written tables, as the scan does), before the draw.

``alp``: e+e− → γa, a → γγ in M_γγ [GeV] (0.04–10.5 GeV, 0.5 MeV bins), one category.
  Resolution σ(m) = √((4 MeV)² + (0.0055 m)²): 4.15 MeV at 0.2 GeV, 49 MeV at 8.9 GeV,
  53 MeV at 9.7 GeV. Background dN/dm ∝ e^(−m/1.5 GeV) (1 + 0.5 m + 0.05 m²), 40 000 events,
  plus π⁰, η, η′ peaks (8000, 2000, 600 events, the signal's shape), all three vetoed:
  ≈ 50 600 events in all. Double-sided Crystal Ball signal tabulated at 16 masses 0.2–9.7 GeV:
  α_L = 1.05 + 0.03 m, n_L = 4.5 − 0.2 m, α_R = 2.0 − 0.05 m, n_R = 8.0 − 0.3 m (m in GeV),
  ε = 0.30 (1 − e^(−m/0.45 GeV)) (1 − 0.02 m) (merged photons at low mass). POI μ = produced
  ALP events N = σ L (``conversion`` 1; the fitted yield is μ ε); ``unit`` = 1/L with
  L = 500 fb⁻¹ turns μ into σ(e+e− → γa) B(a → γγ) in fb, i.e. the selected yield × 1/(ε L).
  Bernstein order 4, window −20σ…+30σ in 100 bins, rel_eff 5 %, rel_res 8 %, masses
  0.2–8.9 GeV in steps of 1.5 σ(m) (356 masses, of which the 24 inside the vetoes are
  dropped: 332 hypotheses; the +30σ window must end below 10.5 GeV), cl = [0.95].
``bka``: B → K(*)a, a → γγ in M_γγ [GeV] (0.05–4.8 GeV, 1 MeV bins), four kaon modes
  (K+, K0S, K*+, K*0) sharing the POI μ = B(B → K(*)a) B(a → γγ) / 10⁻⁶:
  conversion_c = 2 N_BB̄ f_c B(sub-decays) × 10⁻⁶ with N_BB̄ = 387 × 10⁶, f₊₋ = 0.516,
  f₀₀ = 0.484, B(K0 → K0S → π+π−) = 0.5 × 0.692, B(K*+ → K+π⁰(γγ) or K0S(π+π−)π+) =
  0.3294 + 0.2307, B(K*0 → K+π−) = 2/3 (B(a → γγ) is part of μ): 399.4, 129.6, 223.7,
  249.7 events per 10⁻⁶ before efficiency. σ_c(m) = r_c √((7.5 MeV)² + (4 MeV · m/GeV)²) with
  r = 1, 1.05, 1.10, 1.08; α_L = 1.2 + 0.05 m, n_L = 3.5 − 0.2 m, α_R = 1.6 − 0.05 m,
  n_R = 6 − 0.4 m; ε = 0.32 − 0.025 m, 0.26 − 0.020 m, 0.12 − 0.012 m, 0.18 − 0.016 m
  (tabulated at 13 masses 0.1–4.3 GeV). Backgrounds 25 000, 9000, 12 000, 10 000 events
  ∝ e^(−m/λ_c) (1 + a_c m), plus π⁰, η, η′ peaks, vetoed (:data:`BKA_MODES`). Bernstein
  order 2, window ±9σ of K+ (= ±4.5 (σ_L + σ_R) with σ_L = σ_R = σ), rel_eff 4 %, rel_res
  5 %, masses 0.175–4.2 GeV (windows below the K* kinematic limit m_B − m_K* = 4.39 GeV) in
  steps of 1 σ(m) (364 masses, of which the 21 inside the vetoes are dropped: 343
  hypotheses), cl = [0.9].
``zprime``: e+e− → μ+μ−Z′, Z′ → invisible, in the recoil mass *squared* x = M²_rec [GeV²]
  (−1…80 GeV², 0.01 GeV² bins; x < 0 from resolution; a Z′ of mass M sits at x = M²).
  Gaussian signal with σ_x(x) = √((0.05 GeV²)² + 4 x (35 MeV)²) (a 35 MeV recoil-mass
  resolution, σ_x = 2 M σ_M, on a floor; grows with mass), ε = 0.08 (1 − x/150 GeV²),
  tabulated at 12 masses x = 0.25–70 GeV²; POI μ = produced Z′ events, ``unit`` = 1/L with
  L = 80 fb⁻¹ (as for ``alp``). Background 15 000 events ∝ e^(−x/9 GeV²) (μμ(γ)) + 6000
  ∝ e^(−x/45 GeV²) (ττ); exponential fit background, window ±10σ in 100 bins, rel_eff 6 %,
  rel_res 10 %, no vetoes, masses x = 0.25–64 GeV² in steps of 1 σ_x (207 hypotheses),
  cl = [0.9, 0.95].

Hypothesis masses inside a vetoed range are dropped when the scan is built (``scan.skip_vetoed``,
default true): their signal peak would be masked out and μ unconstrained.
"""

from __future__ import annotations

import io
import math
import re
import zipfile
from pathlib import Path

import numpy as np

from ..exceptions import InvalidArgument

__all__ = [
    "write_alp_example",
    "write_bka_example",
    "write_zprime_example",
    "example_names",
    "SCAN_EXAMPLES",
    "alp_resolution",
    "ALP_LUMI_FB",
    "BKA_MODES",
    "ZPRIME_LUMI_FB",
]

#: Integrated luminosity of the ALP example (fb⁻¹); ``unit`` = 1/L.
ALP_LUMI_FB = 500.0
#: Integrated luminosity of the Z′ example (fb⁻¹).
ZPRIME_LUMI_FB = 80.0
_N_BB = 387e6
_B_KS = 0.5 * 0.6920  # K0 → K0S → π+π−
#: kaon modes of ``bka``: (name, B-meson fraction, B(sub-decays), resolution ratio,
#: efficiency (ε0, dε/dm), background (events, λ [GeV], a [1/GeV]), peaks (π⁰, η, η′ events))
BKA_MODES = (
    ("K+", 0.516, 1.0, 1.00, (0.32, -0.025), (25000, 1.4, 0.30), (3000, 600, 200)),
    ("K0S", 0.484, _B_KS, 1.05, (0.26, -0.020), (9000, 1.5, 0.25), (1100, 220, 80)),
    ("K*+", 0.516, 0.98823 / 3 + 2 / 3 * _B_KS, 1.10, (0.12, -0.012), (12000, 1.2, 0.35),
     (1500, 300, 100)),
    ("K*0", 0.484, 2.0 / 3.0, 1.08, (0.18, -0.016), (10000, 1.3, 0.30), (1300, 260, 90)),
)  # fmt: skip
_PEAK_MASSES = (0.1349768, 0.547862, 0.95778)  # π⁰, η, η′ (GeV)
_SQRT2PI = math.sqrt(2.0 * math.pi)
_erfc = np.frompyfunc(math.erfc, 1, 1)


# -- shapes (numpy; independent of jaxlike.shapes, which the fits use) ----------------------------
def _phi(t):
    return 0.5 * np.asarray(_erfc(-np.asarray(t, float) / math.sqrt(2.0)), float)


def _tail(s, a, n):
    """Mass of a Crystal Ball power-law tail beyond |t| = s ≥ α (t in units of σ, the Gaussian
    core e^{−t²/2}): ∫_s^∞ A (B + t)^{−n} dt with A = (n/α)^n e^{−α²/2}, B = n/α − α, i.e.
    n e^{−α²/2} / (α (n − 1)) · (1 + α (s − α)/n)^{1−n}."""
    return n * math.exp(-0.5 * a * a) / (a * (n - 1.0)) * (1.0 + a * (s - a) / n) ** (1.0 - n)


def _dscb_binned(edges, mu, sigma, al, nl, ar, nr):
    """Probability content of each bin of a double-sided Crystal Ball (Gaussian if α = ∞)."""
    t = (np.asarray(edges, float) - mu) / sigma
    left = _tail(np.maximum(-t, al), al, nl) if np.isfinite(al) else 0.0
    right = _tail(ar, ar, nr) - _tail(np.maximum(t, ar), ar, nr) if np.isfinite(ar) else 0.0
    cdf = left + _SQRT2PI * (_phi(np.clip(t, -al, ar)) - _phi(-al)) + right
    norm = _SQRT2PI * (_phi(ar) - _phi(-al))
    norm += (_tail(al, al, nl) if np.isfinite(al) else 0.0) + (
        _tail(ar, ar, nr) if np.isfinite(ar) else 0.0
    )
    return np.diff(cdf) / norm


def _binned_density(f, edges, total):
    """``total`` events of density ∝ f in the bins (Simpson's rule per bin)."""
    e = np.asarray(edges, float)
    w = np.diff(e) * (f(e[:-1]) + 4.0 * f(0.5 * (e[:-1] + e[1:])) + f(e[1:])) / 6.0
    return total * w / w.sum()


def _at(table: dict, m: float) -> dict:
    """Table columns linearly interpolated at m (as :class:`jaxlike.shapes.MassTable`)."""
    return {k: float(np.interp(m, table["mass"], v)) for k, v in table.items() if k != "mass"}


def _injection(inject, table: dict):
    """``inject`` as floats ``(mass, mu)``, checked against the table's mass range."""
    m, mu = (float(x) for x in inject)
    lo, hi = table["mass"][0], table["mass"][-1]
    if not (lo <= m <= hi and np.isfinite(mu) and mu >= 0):
        raise InvalidArgument(
            f"inject=(mass, mu) needs {lo} <= mass <= {hi} and mu >= 0, got {inject}"
        )
    return m, mu


def _peak(edges, table_at: dict, mean: float, events: float, gauss=False):
    p = table_at
    if gauss:
        return events * _dscb_binned(edges, mean, p["sigma"], np.inf, 2.0, np.inf, 2.0)
    return events * _dscb_binned(
        edges, mean, p["sigma"], p["alpha_l"], p["n_l"], p["alpha_r"], p["n_r"]
    )


# -- writing ------------------------------------------------------------------------------------
def _write_npz(path: Path, **arrays) -> None:
    """``numpy.savez_compressed`` with fixed zip timestamps (byte-identical reruns)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, buf.getvalue())


def _fmt(v) -> str:
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return repr(float(v))
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_fmt(x)}" for k, x in v.items()) + "}"
    return "[" + ", ".join(_fmt(x) for x in v) + "]"


def _toml(header: str, sections: list) -> str:
    """TOML text: ``header`` as comments, then ``(name, {key: value or (value, comment)})``
    sections (``name`` starting with ``[[`` is an array-of-tables entry)."""
    lines = ["# " + line if line else "#" for line in header.strip().splitlines()]
    for name, body in sections:
        lines += ["", name if name.startswith("[[") else f"[{name}]"]
        for key, v in body.items():
            v, comment = v if isinstance(v, tuple) else (v, "")
            lines.append(f"{key} = {_fmt(v)}" + (f"  # {comment}" if comment else ""))
    return "\n".join(lines) + "\n"


def _round(values, digits=6) -> list[float]:
    return [float(f"{float(x):.{digits}g}") for x in values]


def _table(masses, **columns) -> dict:
    """A shape table: ``mass`` plus each column function evaluated (6 significant digits)."""
    m = np.asarray(masses, float)
    return {"mass": _round(m), **{k: _round(f(m)) for k, f in columns.items()}}


def _write(folder, name, sections, edges, expected, seed, inject) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    counts = np.random.default_rng(seed).poisson(np.atleast_2d(expected)).astype(np.int64)
    _write_npz(folder / f"{name}_spectrum.npz", edges=np.asarray(edges, float), counts=counts)
    path = folder / f"{name}_scan.toml"
    path.write_text(_toml(_header(name, seed, inject), sections), encoding="utf-8")
    return path


def _header(name: str, seed: int, inject) -> str:
    """Comment header of a written config: what made it, and the example's paragraph of the
    module docstring (the formulas and numbers)."""
    return _header_text(name, seed, inject, _WRITERS[name], __doc__)


def _header_text(name: str, seed: int, inject, writer, doc, use=None) -> str:
    """The comment header of ``writer``'s files: ``name``'s paragraph of ``doc``, and ``use``
    (how to run the file; default: build_mass_scan of load_config)."""
    use = use or "jaxlike.parametric.build_mass_scan(jaxlike.parametric.load_config(path))"
    doc = (doc or f"``{name}``: see {writer.__module__}").split(f"``{name}``: ", 1)[-1]
    doc = re.split(r"\n``\w+``: |\n\n", doc)[0].strip()
    inject = None if inject is None else tuple(float(x) for x in inject)
    return f"""SYNTHETIC example data for a jaxlike mass scan (invented numbers, no real data).
Written by jaxlike.examples.{writer.__name__}(folder, seed={int(seed)}, inject={inject!r}): the
spectrum described below (smooth background, peaks, injected signal if any) integrated over
the fine bins, then Poisson-drawn once with numpy.random.default_rng({int(seed)}).

{name}: {doc}

Use: {use}"""


# -- ALP: e+e- -> gamma a, a -> gamma gamma --------------------------------------------------------
def alp_resolution(m):
    """M_γγ resolution of the ALP example: σ(m) = √((4 MeV)² + (0.0055 m)²) [GeV]."""
    m = np.asarray(m, float)
    return np.sqrt(0.004**2 + (0.0055 * m) ** 2)


def alp_efficiency(m):
    """Selection efficiency of the ALP example: ε(m) = 0.30 (1 − e^(−m/0.45 GeV)) (1 − 0.02 m)."""
    m = np.asarray(m, float)
    return 0.30 * (1.0 - np.exp(-m / 0.45)) * (1.0 - 0.02 * m)


#: shape of a γγ resonance at m (ALP signal and the π⁰, η, η′ peaks)
_ALP_SHAPE = {
    "sigma": alp_resolution,
    "alpha_l": lambda m: 1.05 + 0.03 * m,
    "n_l": lambda m: 4.5 - 0.2 * m,
    "alpha_r": lambda m: 2.0 - 0.05 * m,
    "n_r": lambda m: 8.0 - 0.3 * m,
}
_ALP_TABLE = _table(
    [0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 9.7],
    **_ALP_SHAPE,
    efficiency=alp_efficiency,
    unit=lambda m: np.full_like(m, 1.0 / ALP_LUMI_FB),
)
_ALP_VETOES = [[0.110, 0.160], [0.500, 0.600], [0.910, 1.010]]
#: what the physical-unit limits of ``alp`` (μ × ``unit``) and ``zprime`` are, for the figures
_ALP_LIMIT = r"$\sigma(e^+e^- \to \gamma a)\,\mathcal{B}(a \to \gamma\gamma)$"
_ZPRIME_LIMIT = r"$\sigma(e^+e^- \to \mu^+\mu^- Z')\,\mathcal{B}(Z' \to \mathrm{inv.})$"
_BKA_POI = r"$\mathcal{B}(B \to K^{(*)}a)\,\mathcal{B}(a \to \gamma\gamma)$"


def alp_expected(inject=None):
    """(edges [20921], expected counts [20920]) of the ``alp`` spectrum in M_γγ (0.5 MeV bins,
    0.04–10.5 GeV): background, π⁰/η/η′ peaks and the injected signal, before the draw."""
    edges = np.linspace(0.04, 10.5, 20921)  # 0.5 MeV
    expected = _binned_density(
        lambda m: np.exp(-m / 1.5) * (1.0 + 0.5 * m + 0.05 * m * m), edges, 40000.0
    )
    for mass, events in zip(_PEAK_MASSES, (8000.0, 2000.0, 600.0), strict=True):
        expected += _peak(edges, {k: float(f(mass)) for k, f in _ALP_SHAPE.items()}, mass, events)
    if inject is not None:
        m, mu = _injection(inject, _ALP_TABLE)
        p = _at(_ALP_TABLE, m)
        expected += _peak(edges, p, m, mu * p["efficiency"])
    return edges, expected


def write_alp_example(folder, seed: int = 0, inject=None) -> Path:
    """Write the e+e− → γa(→γγ) example (module docstring) to ``folder``; returns the TOML path.

    ``inject=(mass, mu)``: add ``mu`` produced ALP events (selected: μ ε(mass)) at ``mass``.

    Example:
        >>> path = write_alp_example("alp", seed=1, inject=(3.0, 600.0))  # doctest: +SKIP
        >>> scan, masses, cl = build_mass_scan(load_config(path))  # doctest: +SKIP
    """
    edges, expected = alp_expected(inject)
    sections = [
        ("spectrum", {"file": ("alp_spectrum.npz", "edges [N+1] in M_gg (GeV), counts [1, N]")}),
        (
            "signal",
            {
                "shape": "crystal_ball",
                "conversion": ([1.0], "mu = produced events; selected yield = mu x efficiency"),
                "rel_eff": 0.05,
                "rel_res": 0.08,
                "interpolation": "linear",
            },
        ),
        ("[[signal.tables]]", _ALP_TABLE),
        ("background", {"kind": "bernstein", "order": 4}),
        (
            "window",
            {
                "lo": 20.0,
                "hi": 30.0,
                "n_bins": 100,
                "vetoes": (_ALP_VETOES, "pi0, eta, eta' (GeV)"),
            },
        ),
        (
            "scan",
            {
                "masses": ({"start": 0.2, "stop": 8.9, "step_sigma": 1.5}, "GeV"),
                "cl": [0.95],
            },
        ),
        (
            "plot",
            {
                "label": ("$M_{\\gamma\\gamma}$", "axis labels of the figures (mathtext)"),
                "unit": "GeV",
                "poi_label": "μ (produced ALP events)",
                "limit_label": _ALP_LIMIT,
                "limit_unit": "fb",
            },
        ),
    ]
    return _write(folder, "alp", sections, edges, expected, seed, inject)


# -- B -> K(*) a, a -> gamma gamma -----------------------------------------------------------------
def _bka_table(mode) -> dict:
    _, _, _, ratio, (e0, de), _, _ = mode
    return _table(
        [0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.3],
        sigma=lambda m: ratio * np.sqrt(0.0075**2 + (0.004 * m) ** 2),
        alpha_l=lambda m: 1.2 + 0.05 * m,
        n_l=lambda m: 3.5 - 0.2 * m,
        alpha_r=lambda m: 1.6 - 0.05 * m,
        n_r=lambda m: 6.0 - 0.4 * m,
        efficiency=lambda m: e0 + de * m,
    )


def write_bka_example(folder, seed: int = 0, inject=None) -> Path:
    """Write the B → K(*)a(→γγ) four-mode example (module docstring); returns the TOML path.

    ``inject=(mass, mu)``: add a signal with B(B → K(*)a) B(a → γγ) = mu × 10⁻⁶ at ``mass``
    in every mode (conversion_c × ε_c(mass) × mu selected events).
    """
    edges = np.linspace(0.05, 4.8, 4751)  # 1 MeV
    tables = [_bka_table(mode) for mode in BKA_MODES]
    conversion = [round(2.0 * _N_BB * f * b * 1e-6, 2) for _, f, b, *_ in BKA_MODES]
    expected = []
    for mode, table, k in zip(BKA_MODES, tables, conversion, strict=True):
        (n_bkg, lam, a), peaks = mode[5], mode[6]
        row = _binned_density(lambda m, lam=lam, a=a: np.exp(-m / lam) * (1 + a * m), edges, n_bkg)
        for mass, events in zip(_PEAK_MASSES, peaks, strict=True):
            row += _peak(edges, _at(table, mass), mass, events)
        if inject is not None:
            m, mu = _injection(inject, table)
            p = _at(table, m)
            row += _peak(edges, p, m, mu * k * p["efficiency"])
        expected.append(row)
    names = ", ".join(m[0] for m in BKA_MODES)
    sections = [
        ("spectrum", {"file": ("bka_spectrum.npz", f"counts [4, N]: {names}")}),
        (
            "signal",
            {
                "shape": "crystal_ball",
                "conversion": (conversion, "2 N_BB f B(sub-decays) 1e-6 per mode"),
                "rel_eff": 0.04,
                "rel_res": 0.05,
                "interpolation": "linear",
            },
        ),
        *[("[[signal.tables]]", t) for t in tables],
        ("background", {"kind": "bernstein", "order": 2}),
        (
            "window",
            {
                "lo": (9.0, "= 4.5 (sigma_L + sigma_R) with sigma of the K+ mode"),
                "hi": 9.0,
                "n_bins": 100,
                "vetoes": ([[0.100, 0.170], [0.505, 0.590], [0.915, 1.000]], "pi0, eta, eta'"),
            },
        ),
        (
            "scan",
            {"masses": {"start": 0.175, "stop": 4.2, "step_sigma": 1.0}, "cl": [0.9]},
        ),
        (
            "plot",
            {
                "label": ("$M_{\\gamma\\gamma}$", "axis labels of the figures (mathtext)"),
                "unit": "GeV",
                "poi_label": _BKA_POI + r" [$10^{-6}$]",
                "limit_label": _BKA_POI,
                "limit_unit": "$10^{-6}$",
            },
        ),
    ]
    return _write(folder, "bka", sections, edges, np.stack(expected), seed, inject)


# -- e+e- -> mu+ mu- Z', Z' -> invisible -----------------------------------------------------------
def _zprime_sigma(x):
    return np.sqrt(0.05**2 + 4.0 * np.asarray(x, float) * 0.035**2)


_ZPRIME_TABLE = _table(
    [0.25, 0.5, 1.0, 2.25, 4.0, 9.0, 16.0, 25.0, 36.0, 49.0, 64.0, 70.0],
    sigma=_zprime_sigma,
    efficiency=lambda x: 0.08 * (1.0 - x / 150.0),
    unit=lambda x: np.full_like(x, 1.0 / ZPRIME_LUMI_FB),
)


def write_zprime_example(folder, seed: int = 0, inject=None) -> Path:
    """Write the e+e− → μ+μ−Z′(→ invisible) recoil-mass-squared example; returns the TOML path.

    The scan variable is x = M²_rec in GeV² (a Z′ of mass M sits at x = M²).
    ``inject=(x, mu)``: add ``mu`` produced Z′ events (selected: μ ε(x)) at x.
    """
    edges = np.linspace(-1.0, 80.0, 8101)  # 0.01 GeV²
    expected = _binned_density(lambda x: np.exp(-x / 9.0), edges, 15000.0)
    expected += _binned_density(lambda x: np.exp(-x / 45.0), edges, 6000.0)
    if inject is not None:
        x, mu = _injection(inject, _ZPRIME_TABLE)
        p = _at(_ZPRIME_TABLE, x)
        expected += _peak(edges, p, x, mu * p["efficiency"], gauss=True)
    sections = [
        ("spectrum", {"file": ("zprime_spectrum.npz", "edges: M2_recoil (GeV^2), counts [1, N]")}),
        (
            "signal",
            {
                "shape": "gauss",
                "conversion": ([1.0], "mu = produced events; selected yield = mu x efficiency"),
                "rel_eff": 0.06,
                "rel_res": 0.10,
                "interpolation": "linear",
            },
        ),
        ("[[signal.tables]]", _ZPRIME_TABLE),
        ("background", {"kind": "exponential"}),
        ("window", {"lo": 10.0, "hi": 10.0, "n_bins": 100}),
        (
            "scan",
            {
                "masses": ({"start": 0.25, "stop": 64.0, "step_sigma": 1.0}, "M2_recoil, GeV^2"),
                "cl": [0.9, 0.95],
            },
        ),
        (
            "plot",
            {
                "label": ("$M^2_{\\mathrm{recoil}}$", "recoil mass squared (mathtext)"),
                "unit": "GeV$^2$",
                "poi_label": "μ (produced Z′ events)",
                "limit_label": _ZPRIME_LIMIT,
                "limit_unit": "fb",
            },
        ),
    ]
    return _write(folder, "zprime", sections, edges, expected, seed, inject)


#: the single-configuration writers (headers name them): name → writer
_WRITERS = {
    "alp": write_alp_example,
    "bka": write_bka_example,
    "zprime": write_zprime_example,
}

from ._alp_segments import write_alp_segments_example  # noqa: E402  (uses the helpers above)

#: name → writer, for the command line (``folder, seed=..., inject=...`` → path of the scan
#: file): ``alp`` is the published procedure (two segments, envelope, one-sided g_aγγ limits,
#: :mod:`jaxlike.examples._alp_segments`), ``alp-mgg`` the same M_γγ spectrum as one scan
#: with one background model.
SCAN_EXAMPLES = {
    "alp": write_alp_segments_example,
    "alp-mgg": write_alp_example,
    "bka": write_bka_example,
    "zprime": write_zprime_example,
}


def example_names() -> list[str]:
    """Names of the bundled scan examples (keys of :data:`SCAN_EXAMPLES`)."""
    return list(SCAN_EXAMPLES)
