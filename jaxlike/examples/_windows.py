"""Counting windows cut from a binned spectrum, and the toy sampler that keeps their overlaps:
what the bundled N-D counting-grid examples (dark Higgs, B → K a with a lifetime axis) share.

A mass hypothesis m with resolution σ(m) counts the bins whose centre lies in the window
|M − m| < 2σ and measures its background in the sidebands 2σ ≤ |M − m| < 6σ; the counts are
0/1 matrices [n_mass, n_bins] applied to the spectrum, so neighbouring hypotheses share events
as the data do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ..infer import edges_at_lifetime_ends, lifetime_excluded_intervals

__all__ = ["SpectrumGridExample", "spectrum_sampler", "window_matrices"]


def window_matrices(centres, masses, sigma, above=None, *, window=2.0, sideband=6.0):
    """(on, off) 0/1 matrices [n_mass, n_bins]: bins with |M − m| < ``window`` σ, and
    ``window`` σ ≤ |M − m| < ``sideband`` σ, restricted to ``above`` (a bin mask, e.g. above a
    kinematic threshold)."""
    sm = np.asarray(sigma, float).reshape(-1, 1)
    dist = np.abs(np.asarray(centres)[None, :] - np.asarray(masses)[:, None])
    keep = np.ones_like(dist, bool) if above is None else np.asarray(above, bool)[None, :]
    on = ((dist < window * sm) & keep).astype(float)
    off = ((dist >= window * sm) & (dist < sideband * sm) & keep).astype(float)
    return on, off


def spectrum_sampler(names, background, window_matrix, sideband_matrix, n_repeat):
    """A sampler for :func:`jaxlike.scan.counting_grid_toys`: each toy draws every channel's
    background-only spectrum bin by bin (Poisson, means ``background[name]``) and sums it into
    the windows and sidebands of every mass, each repeated ``n_repeat`` times (the grid's other
    axes, e.g. the lifetimes, share the mass's data window): ``{name: (on [H], off [H])}``."""
    parts = [
        (name, jnp.asarray(background[name]), jnp.asarray(window_matrix[name]),
         jnp.asarray(sideband_matrix[name]))
        for name in names
    ]  # fmt: skip

    def sample(key):
        out = {}
        for j, (name, bkg, won, woff) in enumerate(parts):
            spec = jax.random.poisson(jax.random.fold_in(key, j), bkg).astype(bkg.dtype)
            out[name] = (jnp.repeat(won @ spec, n_repeat), jnp.repeat(woff @ spec, n_repeat))
        return out

    return sample


@dataclass(frozen=True)
class SpectrumGridExample:
    """What the bundled mass × lifetime counting grids share: the grid (axes ``m`` and
    ``ctau``), the binned spectra it was cut from, the toy sampler, and coupling limits by
    :func:`jaxlike.infer.lifetime_excluded_intervals` from the physics model each example
    defines: ``coupling_model(masses)`` → (predicted(g, p), ctau(g, p), params), JAX functions
    of a coupling and one mass' parameters and those parameters with a leading axis over
    ``masses``, and the host function ``ctau(g, m)``.

    Attributes:
        grid: the :class:`~jaxlike.scan.CountingGrid`.
        edges: bin edges of the spectra [nb + 1].
        background, observed: expected background and observed spectrum {channel: [nb]}.
        window_matrix, sideband_matrix: {channel: [n_mass, nb]} 0/1 sums of the bins.
        injected: the injected signal, or empty.
    """

    grid: object
    edges: np.ndarray
    background: dict
    observed: dict
    window_matrix: dict
    sideband_matrix: dict
    injected: dict

    #: the coupling, for summaries and plots; its default scanned range; whether below the
    #: grid's shortest lifetime the decay is prompt (the limit there applies)
    coupling_name: ClassVar[str] = "g"
    coupling_title: ClassVar[str] = "g"
    coupling_range: ClassVar[tuple[float, float]] = (1e-6, 1e-1)
    prompt_below: ClassVar[bool] = False

    @property
    def masses(self) -> np.ndarray:
        """The grid's masses."""
        return self.grid.axes[0].values

    @property
    def ctaus(self) -> np.ndarray:
        """The grid's lifetimes."""
        return self.grid.axes[1].values

    def sampler(self):
        """The toy sampler for :func:`jaxlike.scan.counting_grid_toys`: each toy draws every
        channel's background-only spectrum bin by bin and sums it into every mass window and
        sideband, so neighbouring masses share events as the data do
        (:func:`spectrum_sampler`)."""
        names = [c.name for c in self.grid.channels]
        return spectrum_sampler(names, self.background, self.window_matrix,
                                self.sideband_matrix, self.ctaus.size)  # fmt: skip

    def _axes(self, masses, ctaus):
        m = self.masses if masses is None else np.asarray(masses, float)
        return m, self.ctaus if ctaus is None else np.asarray(ctaus, float)

    def coupling_limits(self, ul, *, masses=None, ctaus=None, g_min=None, g_max=None,
                        n_grid=256):  # fmt: skip
        r"""Excluded intervals of the coupling g at every mass from the limits ``ul``
        [n_mass, n_cτ] of the grid: r(g) = P(g, m) / UL(m, cτ(g, m)), log UL interpolated
        linearly in log cτ between the grid's lifetimes, by
        :func:`jaxlike.infer.lifetime_excluded_intervals` over ``[g_min, g_max]`` (default
        :attr:`coupling_range`). Returns the :class:`~jaxlike.infer.ExcludedIntervals` batched
        over masses; an edge that is only the grid's end is flagged by
        :meth:`edges_at_grid_end`. ``masses``/``ctaus``: the axes of ``ul`` when it belongs to
        a sub-grid (:meth:`~jaxlike.scan.CountingGrid.select`); default the whole grid's."""
        m_axis, ct_axis = self._axes(masses, ctaus)
        ul = np.asarray(ul, float)
        if ul.shape != (m_axis.size, ct_axis.size):
            raise ValueError(f"ul must have shape {(m_axis.size, ct_axis.size)}")
        predicted, ctau, params = self.coupling_model(m_axis)
        lo, hi = self.coupling_range
        return lifetime_excluded_intervals(
            ul, ct_axis, predicted, ctau, params, lo if g_min is None else g_min,
            hi if g_max is None else g_max, prompt_below=self.prompt_below, n_grid=n_grid,
        )  # fmt: skip

    def edges_at_grid_end(self, intervals, *, masses=None, ctaus=None):
        """(lower, upper) boolean arrays like ``intervals.lower``: the edge's lifetime
        ``self.ctau(g, m)`` is at an end of the grid's cτ range (only the longest with
        :attr:`prompt_below`), so the exclusion may continue beyond it with a larger grid.
        ``masses``/``ctaus`` as :meth:`coupling_limits`."""
        m_axis, ct_axis = self._axes(masses, ctaus)
        return edges_at_lifetime_ends(intervals, ct_axis, lambda g: self.ctau(g, m_axis[:, None]),
                                      prompt_below=self.prompt_below)  # fmt: skip
