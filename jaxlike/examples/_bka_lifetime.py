r"""A synthetic B → K(*)a, a → γγ search on a (mass × lifetime) grid, with a g_aW result.

Modelled loosely on the Belle II search for an axion-like particle in B → K(*)a(→γγ)
(Phys. Rev. Lett. 131, 071802), which folds the ALP lifetime into its efficiency and quotes
limits on the ALP–W coupling g_aW. **Every number is synthetic** (the generator below is the
whole model): it belongs to no experiment, and the theory functions are stand-ins with the right
scaling, not calculations.

Generator (GeV, cm):

* four kaon modes K⁺, K⁰_S, K*⁺, K*⁰ (the ``bka`` mass-scan example's
  :data:`~jaxlike.examples.BKA_MODES`: B-meson fractions, sub-decay branching fractions, the
  resolution ratios r_c and prompt efficiencies ε⁰_c(m) = e_c + d_c m), N_BB̄ = 387 × 10⁶:
  2 N_BB̄ f_c B_c × 10⁻⁶ = 399.4, 129.6, 223.7, 249.7 events per 10⁻⁶ before efficiency;
* masses m_a = 0.2, 0.3, …, 4.0 (39) × cτ log-spaced in [10⁻³, 10³] cm (19): 741 points;
* M_γγ spectra in 1 MeV bins on [0.05, 4.8] with smooth backgrounds N_c e^{−M/λ_c}(1 + a_c M)
  (25 000, 9000, 12 000, 10 000 events; no π⁰/η/η′ peaks here, the mass-scan example has them),
  resolution σ_c(m) = r_c √((7.5 MeV)² + (4 MeV · m/GeV)²); the window is |M − m| < 2σ_c,
  the sidebands 2σ_c ≤ |M − m| < 6σ_c, with transfer factor τ = (sideband expectation)/(window
  expectation) known to t = 5% (a background-shape uncertainty);
* efficiency ε_c(m, cτ) = ε⁰_c(m) (1 − e^{−R/λ}): the ALP must decay within R = 20 cm of the
  interaction point for the photons' directions to give the right mass, λ = βγ cτ with
  βγ = p*_c(m)/m, p*_c the ALP momentum in the B rest frame (m_B = 5.279 GeV);
* **simulated** efficiencies: ε_c drawn as k/N with k ~ Binomial(N = 10⁵, ε_c) at 11 masses ×
  11 lifetimes (:data:`SIM_MASSES`, :data:`SIM_CTAUS`; fixed simulation seed), tabulated in a
  :class:`~jaxlike.shapes.GridTable` (log m, log cτ, log ε; monotone cubic PCHIP: 4% from the
  truth for cτ ≤ 10 cm, where multilinear interpolation is 8% off) and interpolated to the
  scan's grid, their
  Monte-Carlo relative uncertainty √((1 − ε̂)/k) interpolated alike;
* a relative signal uncertainty r_c(p) = √(4%² + (0.5% log₁₀(cτ / 10⁻³ cm))² + MC_c(p)²),
  one nuisance shared by the modes (photon efficiency; a displaced-photon term);
* the observed spectra: one Poisson draw (``seed``) of the background, plus, with
  ``inject=(m, cτ, B)``, a Gaussian signal peak of B (in 10⁻⁶) × events per 10⁻⁶ × ε_c;
* the POI: B(B⁺ → K⁺a) B(a → γγ) in units of 10⁻⁶. The K* modes carry the theory weight
  B(B → K*a)/B(B → Ka) = 0.8 (p*_{K*}(m)/p*_{K*}(0))³ / (p*_K(m)/p*_K(0)) (a P-wave against an
  S-wave, stand-in normalisation); the K⁰_S mode weight 1 (isospin);
* the physics model for the coupling limits (an ALP coupled to the SU(2)_L field strength only):
  B(B⁺ → K⁺a) = 10⁻⁵ (g_aW / 10⁻⁵ GeV⁻¹)² (p*_K(m)/p*_K(0)) / (1 − m²/37.5 GeV²)² (stand-in
  normalisation and form factor), B(a → γγ) = 1, and the lifetime from
  Γ(a → γγ) = g_aγγ² m³ / (64π) with g_aγγ = g_aW sin²θ_W (sin²θ_W = 0.2312):
  cτ = ħc / Γ. Larger couplings give more signal *and* shorter lifetimes, hence a higher
  efficiency: the excluded region is g_aW ≥ g_lo(m) at every mass where the search is
  sensitive (up to the scanned range's end). Below the grid's shortest lifetime the decay is
  prompt (λ ≪ R), so the limit there is the shortest lifetime's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ..scan import CountingGrid, GridAxis, GridChannel
from ..shapes import GridTable
from ._scans import _N_BB, BKA_MODES, _binned_density
from ._windows import SpectrumGridExample, window_matrices

__all__ = ["BKA_KAON_MASSES", "BkaLifetimeExample", "SIM_CTAUS", "SIM_MASSES",
           "bka_lifetime_grid"]  # fmt: skip

#: kaon masses of the modes of :data:`BKA_MODES` (GeV)
BKA_KAON_MASSES = (0.493677, 0.497611, 0.89166, 0.89555)
#: where the efficiencies are "simulated" (GeV, cm)
SIM_MASSES = np.array([0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.3])
SIM_CTAUS = np.array([1e-3, 1e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0])
_N_GEN = 100_000
_SIM_SEED = 20231005
_M_B = 5.27934
_R_MAX = 20.0
_SW2 = 0.2312
_HBARC_GEV_CM = 1.973269804e-14
_BF0 = 10.0  # B(B+ -> K+ a) at g_aW = 1e-5 GeV^-1, m -> 0, in units of 1e-6
_POLE = 37.5  # GeV^2
_BIN = 0.001
_LO, _HI = 0.05, 4.8


def _pstar(m, mk):
    """ALP momentum in the B rest frame (GeV): √λ(m_B², m_K², m²) / (2 m_B), 0 if closed."""
    m = np.asarray(m, float) if not isinstance(m, jax.Array) else m
    xp = jnp if isinstance(m, jax.Array) else np
    a, b, c = _M_B**2, mk**2, m**2
    lam = a * a + b * b + c * c - 2 * (a * b + a * c + b * c)
    return xp.sqrt(xp.clip(lam, 0.0, None)) / (2.0 * _M_B)


def resolution(m, mode: int):
    """σ_c(m) in GeV of mode ``mode`` (index into :data:`BKA_MODES`)."""
    return BKA_MODES[mode][3] * np.sqrt(0.0075**2 + (0.004 * np.asarray(m, float)) ** 2)


def true_efficiency(m, ctau, mode: int):
    """ε_c(m, cτ) = ε⁰_c(m) (1 − e^{−R/λ}), λ = (p*_c(m)/m) cτ, R = 20 cm."""
    e0, de = BKA_MODES[mode][4]
    m = np.asarray(m, float)
    lam = _pstar(m, BKA_KAON_MASSES[mode]) / m * np.asarray(ctau, float)
    return (e0 + de * m) * -np.expm1(-_R_MAX / lam)


def kstar_ratio(m):
    """B(B → K*a)/B(B → Ka)(m): 0.8 (p*_{K*}(m)/p*_{K*}(0))³ / (p*_K(m)/p*_K(0))."""
    pk = _pstar(m, BKA_KAON_MASSES[0]) / _pstar(0.0, BKA_KAON_MASSES[0])
    pv = _pstar(m, BKA_KAON_MASSES[2]) / _pstar(0.0, BKA_KAON_MASSES[2])
    return 0.8 * pv**3 / pk


def simulated_efficiencies(seed: int = _SIM_SEED, method: str = "pchip") -> GridTable:
    """The "simulated" efficiency table: ``eff_<mode>`` (k/N, k ~ Binomial(10⁵, ε_c)) and
    ``mc_<mode>`` (its relative uncertainty √((1 − ε̂)/k)) at :data:`SIM_MASSES` ×
    :data:`SIM_CTAUS`, interpolated in log m, log cτ and log value by monotone cubics
    (``method="pchip"``; ``"linear"``: multilinear)."""
    rng = np.random.default_rng(seed)
    values, vt = {}, {}
    for c, mode in enumerate(BKA_MODES):
        eps = true_efficiency(SIM_MASSES[:, None], SIM_CTAUS[None, :], c)
        k = np.maximum(rng.binomial(_N_GEN, eps), 1).astype(float)
        values[f"eff_{mode[0]}"] = k / _N_GEN
        values[f"mc_{mode[0]}"] = np.sqrt((1.0 - k / _N_GEN) / k)
        vt[f"eff_{mode[0]}"] = vt[f"mc_{mode[0]}"] = "log"
    return GridTable({"m": SIM_MASSES, "ctau": SIM_CTAUS}, values,
                     transforms={"m": "log", "ctau": "log"}, value_transforms=vt,
                     method=method, path="bka_efficiency")  # fmt: skip


@dataclass(frozen=True)
class BkaLifetimeExample(SpectrumGridExample):
    """The synthetic B → K(*)a(→γγ) search (a :class:`SpectrumGridExample`): the
    :class:`~jaxlike.scan.CountingGrid` (axes ``m`` [GeV] and ``ctau`` [cm], POI
    B(B⁺ → K⁺a) B(a → γγ) in 10⁻⁶, 39 × 19 points, four modes with sidebands), the M_γγ
    spectra, the injected signal (m, cτ, B in 10⁻⁶) or none, the simulated efficiency
    :class:`~jaxlike.shapes.GridTable` ``table`` and the g_aW model (module docstring):
    limits on g_aW in GeV⁻¹ (:meth:`coupling_limits`; below the shortest lifetime the decay
    is prompt, so an interval whose upper edge is the range's end is open above)."""

    table: GridTable = None

    coupling_name: ClassVar[str] = "g_aW"
    coupling_title: ClassVar[str] = r"$g_{aW}$ [GeV$^{-1}$]"
    coupling_range: ClassVar[tuple[float, float]] = (1e-7, 1e-4)
    prompt_below: ClassVar[bool] = True

    #: where the efficiencies were simulated (GeV, cm): the nodes of :attr:`table`
    sim_masses: ClassVar[np.ndarray] = SIM_MASSES
    sim_ctaus: ClassVar[np.ndarray] = SIM_CTAUS

    @staticmethod
    def true_efficiency(m, ctau, mode: int = 0):
        """The generator's efficiency ε_c(m, cτ) of mode index ``mode`` (the truth the
        simulated table samples)."""
        return true_efficiency(m, ctau, mode)

    def branching_fraction(self, g, m):
        """B(B⁺ → K⁺a) B(a → γγ) in 10⁻⁶ at coupling g (GeV⁻¹) and mass m (GeV)."""
        pk = _pstar(m, BKA_KAON_MASSES[0]) / _pstar(0.0, BKA_KAON_MASSES[0])
        return _BF0 * (g / 1e-5) ** 2 * pk / (1.0 - m**2 / _POLE) ** 2

    def ctau(self, g, m):
        """cτ(g, m) in cm = ħc / Γ(a → γγ), Γ = (g sin²θ_W)² m³ / (64π)."""
        return _HBARC_GEV_CM * 64.0 * math.pi / ((g * _SW2) ** 2 * m**3)

    def coupling_model(self, masses):
        """B(g, m) and cτ(g, m), both traceable; the parameter of a mass is the mass."""
        return self.branching_fraction, self.ctau, jnp.asarray(masses)


def bka_lifetime_grid(seed: int = 0, *, inject=None) -> BkaLifetimeExample:
    """Build the synthetic B → K(*)a lifetime example (module docstring), the observed spectra
    drawn with ``seed``; ``inject=(m, ctau, B)`` adds a signal of B(B⁺ → K⁺a) B(a → γγ) = B
    × 10⁻⁶ at mass m (GeV) and lifetime cτ (cm) before the draw."""
    masses = np.round(np.linspace(0.2, 4.0, 39), 6)
    ctaus = np.logspace(-3.0, 3.0, 19)
    edges = np.arange(_LO, _HI + 0.5 * _BIN, _BIN)
    centres = 0.5 * (edges[1:] + edges[:-1])
    table = simulated_efficiencies()
    mesh = np.stack(np.meshgrid(masses, ctaus, indexing="ij"), -1).reshape(-1, 2)
    at = jax.vmap(table)(jnp.asarray(mesh))
    rng = np.random.default_rng(seed)
    ratio = kstar_ratio(masses)
    syst = np.sqrt(0.04**2 + (0.005 * np.log10(ctaus / 1e-3)) ** 2)
    bkg, observed, won_all, woff_all, channels = {}, {}, {}, {}, []
    for c, mode in enumerate(BKA_MODES):
        name, frac, bsub = mode[0], mode[1], mode[2]
        (n_bkg, lam, a) = mode[5]
        conv = 2.0 * _N_BB * frac * bsub * 1e-6
        weight = conv * (ratio if name.startswith("K*") else np.ones_like(masses))
        bkg[name] = _binned_density(lambda x, lam=lam, a=a: np.exp(-x / lam) * (1 + a * x),
                                    edges, n_bkg)  # fmt: skip
        mean = bkg[name].copy()
        if inject is not None:
            if len(inject) != 3:
                raise ValueError(f"inject must be (m, ctau, B), got {inject!r}")
            m0, ct0, bf = (float(v) for v in inject)
            w0 = conv * (float(kstar_ratio(m0)) if name.startswith("K*") else 1.0)
            n_sig = bf * w0 * float(true_efficiency(m0, ct0, c))
            s0 = float(resolution(m0, c))
            cdf = 0.5 * (1.0 + np.vectorize(math.erf)((edges - m0) / (s0 * math.sqrt(2.0))))
            mean = mean + n_sig * np.diff(cdf)
        spec = rng.poisson(mean).astype(float)
        observed[name] = spec
        won, woff = window_matrices(centres, masses, resolution(masses, c))
        won_all[name], woff_all[name] = won, woff
        b_on, b_off = won @ bkg[name], woff @ bkg[name]
        eff = np.asarray(at[f"eff_{name}"]).reshape(masses.size, ctaus.size)
        mc = np.asarray(at[f"mc_{name}"]).reshape(masses.size, ctaus.size)
        channels.append(
            GridChannel(
                name,
                observed=(won @ spec)[:, None],
                efficiency=eff,
                background=b_on[:, None],
                weight=weight[:, None],
                signal_uncertainty=np.sqrt(syst[None, :] ** 2 + mc**2),
                sideband_observed=(woff @ spec)[:, None],
                transfer_factor=(b_off / b_on)[:, None],
                transfer_factor_uncertainty=0.05,
                window=np.arange(masses.size)[:, None],
            )
        )
    grid = CountingGrid(
        axes=(
            GridAxis("m", masses, "GeV", label="$m_a$"),
            GridAxis("ctau", ctaus, "cm", log=True, label=r"$c\tau_a$"),
        ),
        channels=tuple(channels),
        luminosity=1.0,
        poi_name="bf",
        poi_unit="$10^{-6}$",
        poi_label=r"$\mathcal{B}(B^+\to K^+a)\,\mathcal{B}(a\to\gamma\gamma)$",
    )
    injected = {}
    if inject is not None:
        injected = dict(zip(("m", "ctau", "bf"), map(float, inject), strict=True))
    return BkaLifetimeExample(
        grid=grid, table=table, edges=edges, background=bkg, observed=observed,
        window_matrix=won_all, sideband_matrix=woff_all, injected=injected,
    )  # fmt: skip
