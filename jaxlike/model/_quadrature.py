"""Gauss–Legendre bin integrals of a vectorised function of q².

For a bin [a, b] and the n-point Gauss–Legendre rule (nodes x_k ∈ (−1, 1), weights w_k)

.. math::

    \\int_a^b f(q^2)\\,dq^2 \\approx \\frac{b - a}{2} \\sum_{k=1}^{n} w_k\\,
        f\\Big(\\frac{a + b}{2} + \\frac{b - a}{2} x_k\\Big),

exact for polynomials of degree ≤ 2n − 1. The nodes of all bins are laid out host-side (numpy,
the edges are static) and ``fn`` is called *once* on the flat array of nbins·n nodes, so the
integrals are a weighted sum of one vectorised evaluation: jittable and differentiable in
anything ``fn`` closes over.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
from jax import Array

from ..exceptions import InvalidArgument

__all__ = ["bins_inside", "gauss_legendre_bin_integrals", "gauss_legendre_nodes"]


def _check_edges(edges) -> np.ndarray:
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2:
        raise InvalidArgument(f"edges: need a 1-D array of at least 2 entries, got shape {e.shape}")
    if not np.all(np.isfinite(e)):
        raise InvalidArgument("edges: not finite")
    if not np.all(np.diff(e) > 0):
        raise InvalidArgument("edges: not strictly increasing")
    return e


def bins_inside(edges, lo: float, hi: float) -> np.ndarray:
    """Boolean mask (numpy, one entry per bin): bin j = [edges[j], edges[j+1]] overlaps
    [lo, hi] on an interval of positive length, i.e. min(e_{j+1}, hi) > max(e_j, lo).

    Bins where this is False integrate to exactly 0 under ``clip=(lo, hi)``.
    """
    e = _check_edges(edges)
    if not lo < hi:
        raise InvalidArgument(f"clip: need lo < hi, got ({lo}, {hi})")
    return np.minimum(e[1:], hi) > np.maximum(e[:-1], lo)


def gauss_legendre_nodes(edges, n_nodes: int = 16, clip: tuple[float, float] | None = None):
    """Host-side nodes and weights of the per-bin Gauss–Legendre rule.

    Returns ``(nodes, weights, inside)``: numpy arrays of shape [nbins, n_nodes],
    [nbins, n_nodes] and [nbins]. For bin j with integration interval [a_j, b_j] (the bin, or
    its intersection with ``clip``) nodes are (a_j + b_j)/2 + (b_j − a_j)/2 · x_k and weights
    (b_j − a_j)/2 · w_k, so ∫_{a_j}^{b_j} f ≈ Σ_k weights[j, k] f(nodes[j, k]).

    Bins outside ``clip`` (``inside[j]`` False) get zero weights and nodes placed inside the
    clipped range, so a function that is undefined outside it is never evaluated there.
    """
    e = _check_edges(edges)
    n_nodes = int(n_nodes)
    if n_nodes < 1:
        raise InvalidArgument(f"n_nodes: need at least 1, got {n_nodes}")
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    a, b = e[:-1].copy(), e[1:].copy()
    inside = np.ones(a.shape, dtype=bool)
    if clip is not None:
        lo, hi = (float(v) for v in clip)
        inside = bins_inside(e, lo, hi)
        a, b = np.maximum(a, lo), np.minimum(b, hi)
        glo, ghi = max(e[0], lo), min(e[-1], hi)
        safe = 0.5 * (glo + ghi) if ghi > glo else e[0]
        a = np.where(inside, a, safe)
        b = np.where(inside, b, safe)
    half, mid = 0.5 * (b - a), 0.5 * (a + b)
    nodes = mid[:, None] + half[:, None] * x[None, :]
    weights = half[:, None] * w[None, :]
    return nodes, weights, inside


def gauss_legendre_bin_integrals(
    fn: Callable[[Array], Array],
    edges,
    n_nodes: int = 16,
    clip: tuple[float, float] | None = None,
) -> Array:
    """Integrals ∫_{edges[j]}^{edges[j+1]} fn(q²) dq² of every bin, by n-point Gauss–Legendre.

    ``fn`` maps a flat array of nbins·n_nodes q² values to an array whose *last* axis has that
    length (leading axes, e.g. several coefficient sets, are kept); it is called once. With
    ``clip=(lo, hi)`` each bin is integrated over its intersection with [lo, hi]
    (∫_{max(e_j, lo)}^{min(e_{j+1}, hi)} fn), and bins entirely outside (see
    :func:`bins_inside`) are exactly 0.

    ``edges`` (and ``clip``) are static: a numpy array / floats, not traced values. The result
    is differentiable in everything ``fn`` closes over. Returns shape [..., nbins].
    """
    nodes, weights, inside = gauss_legendre_nodes(edges, n_nodes, clip)
    nbins = nodes.shape[0]
    values = jnp.asarray(fn(jnp.asarray(nodes.reshape(-1))))
    if values.ndim == 0 or values.shape[-1] != nbins * n_nodes:
        raise InvalidArgument(
            f"fn: must return an array whose last axis has length nbins*n_nodes = "
            f"{nbins * n_nodes}, got shape {values.shape}"
        )
    values = values.reshape(values.shape[:-1] + (nbins, n_nodes))
    out = jnp.sum(values * jnp.asarray(weights), axis=-1)
    if not inside.all():
        out = jnp.where(jnp.asarray(inside), out, 0.0)
    return out
