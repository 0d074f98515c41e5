r"""A synthetic dark-Higgs search on a (mass × lifetime) grid, for counting-grid scans.

Modelled loosely on the Belle II search for a long-lived dark Higgs h′ (arXiv:2505.09705):
h′ → x⁺x⁻ decays with a displaced vertex, x = μ, π, K, counted in a narrow window of the
reconstructed mass M(x⁺x⁻) around every mass hypothesis, the background of each window measured
in its mass sidebands, over 45 masses × 20 log-spaced lifetimes cτ = 0.1 … 10⁴ cm. **Every
number is synthetic** (the generator below is the whole model); it belongs to no experiment and
the theory functions are stand-ins with the right thresholds and scaling, not calculations.

Generator (all in GeV and cm):

* masses m = 0.30, 0.38, …, 3.82 (45); cτ log-spaced in [0.1, 10⁴] (20); L = 365 fb⁻¹;
* branching fractions B_x(m) = Γ_x / Σ Γ with the scalar widths Γ_ℓ ∝ m m_ℓ² β_ℓ³ (ℓ = e, μ)
  and hadronic stand-ins Γ_π ∝ 3 m m_π² β_π (1 + 2 m²), Γ_K ∝ 2 m m_K² β_K (1 + m²),
  β_x = √(1 − 4 m_x²/m²) (0 below threshold);
* efficiency ε_x(m, cτ) = ε⁰_x (0.8 + 0.05 m) P(βγ cτ), ε⁰ = 0.50, 0.35, 0.25, with the
  probability to decay in the vertex fiducial region 0.9 cm < r < 60 cm (beyond the beam pipe),
  P(λ) = e^{−0.9/λ} − e^{−60/λ}, λ = βγ cτ, βγ = 2 GeV / m;
* a relative signal uncertainty r(cτ) = 5% + 2.5% log₁₀(cτ / 0.1 cm) (lifetime-dependent
  efficiency systematic, 5%…15%), one nuisance for the three channels;
* M(x⁺x⁻) spectra in 2 MeV bins on [0.2, 4.0] with background densities A_x e^{−M/1.5}
  above threshold (A = 40, 60, 20 events/GeV) and resolution σ_M = 3 MeV + 0.004 m; the window is
  |M − m| < 2σ_M, the sidebands 2σ_M < |M − m| < 6σ_M, with transfer factor τ = (sideband
  expectation)/(window expectation) known to t = 10% (a shape uncertainty);
* the observed spectra are one Poisson draw (``seed``) with a signal injected at
  m = 1.42 GeV, cτ = 3 cm, σ = 0.05 fb (a fluctuation to find: 0.05 μμ, 1.1 ππ and 3.0 KK events
  expected; seed 0 draws 5 KK and 2 ππ events over backgrounds of 0.28 and 0.84, a local 3.4σ).
  The three channels share the decay-probability factor, so their signal shares, and with them
  the local significance, depend on cτ only through the signal systematics: the lifetime axis
  changes the limits (the efficiency) much more than it adds trials;
* the physics model for the coupling limits: production σ(sin θ, m) = 25 fb ×
  (sin θ / 10⁻³)² (1 − m²/16)^{3/2} and lifetime cτ(sin θ, m) = ħc / Γ_tot with
  Γ_tot = sin²θ × Σ Γ_x(m) (the widths above with the scale 6.6 × 10⁻⁸ GeV at sin θ = 1), so
  that larger couplings give more signal but shorter lifetimes (an excluded *band* in sin θ).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax.numpy as jnp
import numpy as np

from ..scan import CountingGrid, GridAxis, GridChannel
from ._windows import SpectrumGridExample, window_matrices

__all__ = ["DARK_HIGGS_CHANNELS", "DarkHiggsExample", "dark_higgs_grid"]

#: the decay channels (name, particle mass in GeV, reconstruction efficiency ε⁰, background A)
DARK_HIGGS_CHANNELS = (("mumu", 0.105658, 0.50, 40.0), ("pipi", 0.139570, 0.35, 60.0),
                       ("kk", 0.493677, 0.25, 20.0))  # fmt: skip
_ME = 0.000511
_HBARC_GEV_CM = 1.973269804e-14
_WIDTH_SCALE = 6.6e-8  # GeV, Σ of the width factors × this = Γ_tot at sin θ = 1
_LUMI_FB = 365.0
_P_GEV = 2.0
_R_IN, _R_OUT = 0.9, 60.0
_BIN = 0.002
_LO, _HI = 0.2, 4.0
_INJECT = {"m": 1.42, "ctau": 3.0, "sigma_fb": 0.05}


def _beta(m, mx):
    r = 1.0 - 4.0 * mx**2 / np.maximum(m, 1e-12) ** 2
    return np.sqrt(np.clip(r, 0.0, None))


def width_factors(m):
    """Γ_x(m) / (sin²θ Γ-scale) for e, μ, π, K (the stand-in shapes of the module docstring)."""
    m = np.asarray(m, float)
    ee = m * _ME**2 * _beta(m, _ME) ** 3
    mm = m * DARK_HIGGS_CHANNELS[0][1] ** 2 * _beta(m, DARK_HIGGS_CHANNELS[0][1]) ** 3
    pp = (
        3.0
        * m
        * DARK_HIGGS_CHANNELS[1][1] ** 2
        * _beta(m, DARK_HIGGS_CHANNELS[1][1])
        * (1.0 + 2.0 * m**2)
    )
    kk = (
        2.0
        * m
        * DARK_HIGGS_CHANNELS[2][1] ** 2
        * _beta(m, DARK_HIGGS_CHANNELS[2][1])
        * (1.0 + m**2)
    )
    return {"ee": ee, "mumu": mm, "pipi": pp, "kk": kk}


def branching_fractions(m):
    """B(h′ → x⁺x⁻)(m) for x = μ, π, K."""
    w = width_factors(m)
    tot = sum(w.values())
    return {k: w[k] / tot for k in ("mumu", "pipi", "kk")}


def decay_probability(m, ctau):
    """P(0.9 cm < r < 60 cm) for decay length λ = βγ cτ, βγ = 2 GeV / m."""
    lam = _P_GEV / np.asarray(m, float) * np.asarray(ctau, float)
    return np.exp(-_R_IN / lam) - np.exp(-_R_OUT / lam)


def resolution(m):
    """σ_M(m) in GeV."""
    return 0.003 + 0.004 * np.asarray(m, float)


@dataclass(frozen=True)
class DarkHiggsExample(SpectrumGridExample):
    """The synthetic dark-Higgs search (a :class:`SpectrumGridExample`): the
    :class:`~jaxlike.scan.CountingGrid` (axes ``m`` [GeV] and ``ctau`` [cm], POI σ in fb,
    45 × 20 points, three channels with sidebands), the M(x⁺x⁻) spectra, the injected
    fluctuation (m, cτ, σ) and the physics model: excluded *bands* of sin θ
    (:meth:`coupling_limits`: small couplings give too little signal, large ones decay before
    the vertex region; an edge at the grid's shortest or longest lifetime is where the grid
    ends, :meth:`edges_at_grid_end`)."""

    coupling_name: ClassVar[str] = "sin_theta"
    coupling_title: ClassVar[str] = r"$\sin\theta$"
    coupling_range: ClassVar[tuple[float, float]] = (1e-6, 1e-1)

    def cross_section(self, sin_theta, m):
        """σ(sin θ, m) in fb = 25 fb (sin θ / 10⁻³)² (1 − m²/16)^{3/2}."""
        return 25.0 * (sin_theta / 1e-3) ** 2 * (1.0 - m**2 / 16.0) ** 1.5

    def ctau(self, sin_theta, m):
        """cτ(sin θ, m) in cm = ħc / (sin²θ × 6.6e-8 GeV × Σ_x Γ-factors(m))."""
        tot = sum(width_factors(m).values())
        return _HBARC_GEV_CM / (sin_theta**2 * _WIDTH_SCALE * tot)

    def coupling_model(self, masses):
        """σ(sin θ, m) and cτ = ħc / (sin²θ Γ(m)), with the width Γ(m) at sin θ = 1 of each
        mass as its parameter (the width factors are host functions)."""
        width = jnp.asarray(_WIDTH_SCALE * sum(width_factors(masses).values()))
        return (lambda g, p: self.cross_section(g, p[0]),
                lambda g, p: _HBARC_GEV_CM / (g**2 * p[1]),
                (jnp.asarray(masses), width))  # fmt: skip


def _spectra():
    edges = np.arange(_LO, _HI + 0.5 * _BIN, _BIN)
    centres = 0.5 * (edges[1:] + edges[:-1])
    bkg = {}
    for name, mx, _, amp in DARK_HIGGS_CHANNELS:
        # ∫ A e^{−M/1.5} over each bin above threshold
        lo = np.maximum(edges[:-1], 2 * mx)
        hi = np.maximum(edges[1:], 2 * mx)
        bkg[name] = amp * 1.5 * (np.exp(-lo / 1.5) - np.exp(-hi / 1.5))
    return edges, centres, bkg


def dark_higgs_grid(seed: int = 0, *, inject=True) -> DarkHiggsExample:
    """Build the synthetic dark-Higgs example (module docstring), the observed spectra drawn
    with ``seed``; ``inject=False`` leaves out the injected signal."""
    masses = np.round(np.linspace(0.30, 3.82, 45), 6)
    ctaus = np.logspace(-1.0, 4.0, 20)
    edges, centres, bkg = _spectra()
    rng = np.random.default_rng(seed)
    br = branching_fractions(masses)
    sig_unc = 0.05 + 0.025 * np.log10(ctaus / 0.1)
    inj_br = branching_fractions(np.asarray(_INJECT["m"]))
    observed, won_all, woff_all, channels = {}, {}, {}, []
    for name, mx, eps0, _ in DARK_HIGGS_CHANNELS:
        spec = rng.poisson(bkg[name]).astype(float)
        if inject:
            m0, sm = _INJECT["m"], resolution(_INJECT["m"])
            eff = eps0 * (0.8 + 0.05 * m0) * decay_probability(m0, _INJECT["ctau"])
            mean = _INJECT["sigma_fb"] * _LUMI_FB * eff * float(inj_br[name])
            n_sig = rng.poisson(mean)
            spec += np.histogram(rng.normal(m0, sm, n_sig), edges)[0]
        observed[name] = spec
        won, woff = window_matrices(centres, masses, resolution(masses), centres > 2 * mx)
        won_all[name], woff_all[name] = won, woff
        b_on, b_off = won @ bkg[name], woff @ bkg[name]
        open_ = (b_on > 0) & (b_off > 0)
        # below threshold: no signal (B = 0), a decoupled placeholder background
        b_nom = np.where(open_, b_on, 0.01)
        tau = np.where(open_, b_off / np.where(open_, b_on, 1.0), 1.0)
        eff = (
            eps0
            * (0.8 + 0.05 * masses[:, None])
            * decay_probability(masses[:, None], ctaus[None, :])
        )
        channels.append(
            GridChannel(
                name,
                observed=(won @ spec)[:, None],
                efficiency=eff,
                background=b_nom[:, None],
                weight=br[name][:, None],
                signal_uncertainty=sig_unc[None, :],
                sideband_observed=(woff @ spec)[:, None],
                transfer_factor=tau[:, None],
                transfer_factor_uncertainty=0.10,
                expected_background=np.where(open_, b_on, 0.0)[:, None],
                expected_sideband=np.where(open_, b_off, 0.0)[:, None],
                window=np.arange(masses.size)[:, None],
            )
        )
    grid = CountingGrid(
        axes=(
            GridAxis("m", masses, "GeV", label="$m_{h'}$"),
            GridAxis("ctau", ctaus, "cm", log=True, label=r"$c\tau_{h'}$"),
        ),  # fmt: skip
        channels=tuple(channels),
        luminosity=_LUMI_FB,
        poi_name="sigma",
        poi_unit="fb",
        poi_label=r"$\sigma(e^+e^-\to h' X)$",
    )
    return DarkHiggsExample(
        grid=grid, edges=edges, background=bkg, observed=observed,
        window_matrix=won_all, sideband_matrix=woff_all, injected=dict(_INJECT) if inject else {},
    )  # fmt: skip
