"""Counting windows cut from a binned spectrum, and the toy sampler that keeps their overlaps:
what the bundled N-D counting-grid examples (dark Higgs, B → K a with a lifetime axis) share.

A mass hypothesis m with resolution σ(m) counts the bins whose centre lies in the window
|M − m| < 2σ and measures its background in the sidebands 2σ ≤ |M − m| < 6σ; the counts are
0/1 matrices [n_mass, n_bins] applied to the spectrum, so neighbouring hypotheses share events
as the data do.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["spectrum_sampler", "window_matrices"]


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
