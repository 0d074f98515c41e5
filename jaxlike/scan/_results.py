"""Typed results of the scan functions.

Each is a frozen dataclass of NumPy arrays whose field names are the result names of the
scan (the datasets under ``/results`` of its HDF5 file); ``result.name`` is the typed access,
and ``result["name"]``, ``"name" in result``, ``result.keys()`` and :meth:`as_dict` keep code
written for the former plain dicts working.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..fit import result_repr

__all__ = ["MassScanResult", "PatchScanResult", "ToyScan"]


class _Fields:
    """Read-only mapping access to the fields of a result dataclass (None fields absent)."""

    def keys(self) -> list[str]:
        """Names of the fields that hold a value."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    def __getitem__(self, name: str):
        if name not in self.keys():
            raise KeyError(name)
        return getattr(self, name)

    def __contains__(self, name) -> bool:
        return name in self.keys()

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def items(self):
        """(name, value) of the fields that hold a value."""
        return [(k, getattr(self, k)) for k in self.keys()]

    def as_dict(self) -> dict:
        """``{name: value}`` of the fields that hold a value."""
        return dict(self.items())

    @classmethod
    def from_results(cls, results, **extra):
        """From ``{name: array [H, ...]}`` (as :func:`~jaxlike.stream.run_scan` returns):
        the known fields, plus ``extra``."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in results.items() if k in names}, **extra)


@dataclass(frozen=True)
class MassScanResult(_Fields):
    """Per-mass results of :func:`~jaxlike.scan.mass_scan` (arrays [H, ...], H masses; the
    ``ul_*`` fields have an axis over the CL levels, ``ul_exp*`` then one over the 5 expected
    bands N = 2, 1, 0, −1, −2): fitted signal strength μ̂ ± σ̂ (and × the physical unit), local
    significance Z = sign(μ̂)√q0 and p0 = 1 − Φ(Z), observed/expected CLs limits on μ (and in
    physical units), and the convergence of the fits and of the limit roots."""

    mu_hat: np.ndarray
    mu_hat_err: np.ndarray
    mu_hat_phys: np.ndarray
    significance: np.ndarray
    p0: np.ndarray
    ul_obs: np.ndarray
    ul_exp: np.ndarray
    ul_obs_phys: np.ndarray
    ul_exp_phys: np.ndarray
    fit_converged: np.ndarray
    limit_converged: np.ndarray
    __repr__ = result_repr  # numbers and shapes, not every value
    # toy-based scans only (``toys=``; :data:`jaxlike.infer.TOY_SCAN_FIELDS`): toy limits on μ
    # (and × unit) with their MC error, toy p0, failed toys, the μ grid and its p-values
    ul_obs_toys: np.ndarray | None = None
    ul_exp_toys: np.ndarray | None = None
    ul_obs_toys_err: np.ndarray | None = None
    ul_obs_toys_phys: np.ndarray | None = None
    ul_exp_toys_phys: np.ndarray | None = None
    toy_limit_converged: np.ndarray | None = None
    p0_toys: np.ndarray | None = None
    p0_toys_err: np.ndarray | None = None
    toys_failed: np.ndarray | None = None
    toy_grid: np.ndarray | None = None
    toy_p_obs: np.ndarray | None = None
    # scans with a [physics] section: the limits as the physics parameter g = k(m) (σ_UL)^p
    # (a coupling; :meth:`jaxlike.parametric.MassScan.physics`), asymptotic and toy-based
    ul_obs_coupling: np.ndarray | None = None
    ul_exp_coupling: np.ndarray | None = None
    ul_obs_toys_coupling: np.ndarray | None = None
    ul_exp_toys_coupling: np.ndarray | None = None
    # background-model envelopes (:func:`jaxlike.parametric.envelope_results`): the model of
    # Z and μ̂, of the observed limit [H, ncl], and (discrete profiling) of the μ = 0 fit
    bkg_model: np.ndarray | None = None
    bkg_model_limit: np.ndarray | None = None
    bkg_model_null: np.ndarray | None = None


@dataclass(frozen=True)
class PatchScanResult(_Fields):
    """Per-patch results of :func:`~jaxlike.scan.patch_scan` (H patches): CLs at the test POI
    (q̃μ), observed ``cls_obs`` [H] and expected ``cls_exp`` [H, 5]; upper limits ``ul_obs``
    [H, ncl] and ``ul_exp`` [H, ncl, 5]; μ̂ [H]; convergence of the CLs [H], of each limit
    [H, ncl] and of everything [H]."""

    cls_obs: np.ndarray
    cls_exp: np.ndarray
    ul_obs: np.ndarray
    ul_exp: np.ndarray
    mu_hat: np.ndarray
    cls_converged: np.ndarray
    limit_converged: np.ndarray
    converged: np.ndarray
    __repr__ = result_repr  # numbers and shapes, not every value
    # toy-based scans only (:data:`jaxlike.infer.TOY_SCAN_FIELDS`)
    ul_obs_toys: np.ndarray | None = None
    ul_exp_toys: np.ndarray | None = None
    ul_obs_toys_err: np.ndarray | None = None
    toy_limit_converged: np.ndarray | None = None
    p0_toys: np.ndarray | None = None
    p0_toys_err: np.ndarray | None = None
    toys_failed: np.ndarray | None = None
    toy_grid: np.ndarray | None = None
    toy_p_obs: np.ndarray | None = None


@dataclass(frozen=True)
class ToyScan(_Fields):
    """Background-only toys of a whole mass scan (:func:`~jaxlike.scan.scan_toys`), T toys:

    ``toy`` [T] indices, ``max_z`` [T] the largest local Z of each toy (NaN fits left out),
    ``argmax`` [T] its mass index, ``n_upcrossings`` [T] of ``u0``, ``n_failed`` [T] fits not
    converged, ``z`` [T, M] the curves (``return_curves``, else None); ``seed``, ``u0``,
    ``masses`` [M]; ``rate`` (toys × masses per second, compilation excluded) and
    ``elapsed_s`` (wall time, compilation included)."""

    toy: np.ndarray
    max_z: np.ndarray
    argmax: np.ndarray
    n_upcrossings: np.ndarray
    n_failed: np.ndarray
    seed: int
    u0: float
    masses: np.ndarray
    rate: float
    elapsed_s: float
    z: np.ndarray | None = None
    __repr__ = result_repr  # numbers and shapes, not every value
