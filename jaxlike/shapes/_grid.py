"""Signal and efficiency tables on an N-dimensional grid of simulated points.

A search on a grid of hypotheses (m_h′ × cτ, m_χ × cτ, mass × mass ratio, …) has its signal
yields, efficiencies and their uncertainties simulated at the nodes of a rectilinear grid.
:class:`GridTable` interpolates them to any point inside it, multilinearly (``method="linear"``)
or by monotone piecewise cubics (``method="pchip"``, Fritsch–Butland as scipy's
``PchipInterpolator``: smooth, and without overshoot where the table is monotone), in per-axis
coordinate transforms (``"linear"`` or ``"log"``: an efficiency against the lifetime is close to
linear in log cτ) and optionally in the logarithm of a positive value (an efficiency that falls
by decades), exactly at the nodes, traceable, vmappable over points and differentiable in the
point and in the tabulated values.
"""

from __future__ import annotations

import itertools

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.typing import ArrayLike

from ..exceptions import InvalidScanConfig
from ._table import _concrete, check_nodes

__all__ = ["GridTable", "METHODS", "TRANSFORMS"]

#: coordinate and value transforms: interpolation in x itself or in ln x (x > 0)
TRANSFORMS = ("linear", "log")

#: interpolation methods: tensor-product linear, or tensor-product monotone cubic (PCHIP)
METHODS = ("linear", "pchip")

#: nodes per axis that the PCHIP value in one cell depends on (the cell, one node either side)
_PCHIP_WINDOW = 4


def _forward(x, transform):
    return jnp.log(x) if transform == "log" else x


def _check_axis(name, nodes, transform, prefix):
    where = f"{prefix}axes.{name}"
    if transform not in TRANSFORMS:
        raise InvalidScanConfig(
            f"{prefix}transforms.{name}", f"unknown transform {transform!r}, not in {TRANSFORMS}"
        )
    a = check_nodes(where, nodes)
    if a is None:
        return None
    if transform == "log" and a[0] <= 0:
        raise InvalidScanConfig(where, f"a log axis needs positive nodes, got {a[0]}")
    return a


def _check_value(name, value, shape, transform, prefix):
    where = f"{prefix}values.{name}"
    if transform not in TRANSFORMS:
        raise InvalidScanConfig(
            f"{prefix}value_transforms.{name}",
            f"unknown transform {transform!r}, not in {TRANSFORMS}",
        )
    v = _concrete(value)
    if v is None:
        return
    if shape is not None and v.shape != shape:
        raise InvalidScanConfig(where, f"has shape {v.shape}, but the axes make {shape}")
    bad = np.argwhere(~np.isfinite(v))
    if bad.size:
        raise InvalidScanConfig(where, f"entry {tuple(bad[0])} is not finite ({v[tuple(bad[0])]})")
    if transform == "log":
        bad = np.argwhere(v <= 0)
        if bad.size:
            j = tuple(bad[0])
            raise InvalidScanConfig(
                where, f"log interpolation needs positive values, entry {j} is {v[j]}"
            )


def _pchip_edge(h0, h1, m0, m1):
    """End derivative of PCHIP (scipy's ``PchipInterpolator._edge_case``): the one-sided
    three-point estimate d = ((2h₀ + h₁)δ₀ − h₀δ₁) / (h₀ + h₁), set to 0 where its sign is not
    that of δ₀, and to 3δ₀ where δ₀, δ₁ differ in sign and |d| > 3|δ₀|."""
    d = ((2.0 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    wrong_sign = jnp.sign(d) != jnp.sign(m0)
    too_steep = (jnp.sign(m0) != jnp.sign(m1)) & (jnp.abs(d) > 3.0 * jnp.abs(m0))
    return jnp.where(wrong_sign, 0.0, jnp.where(too_steep, 3.0 * m0, d))


def _pchip_derivatives(u, v):
    """PCHIP derivatives [..., m] of the values ``v`` [..., m] at the nodes ``u`` [m] (m ≥ 2)
    along the last axis: the weighted harmonic mean of the neighbouring slopes inside (0 where
    they differ in sign or one is 0), :func:`_pchip_edge` at the ends, the slope itself for two
    nodes. Divisions by a slope go through a denominator replaced by 1 where the branch is not
    taken, so values and gradients stay finite on flat stretches."""
    h = u[1:] - u[:-1]
    delta = (v[..., 1:] - v[..., :-1]) / h
    if u.shape[0] == 2:  # two nodes: linear
        return jnp.concatenate([delta, delta], axis=-1)
    d0, d1 = delta[..., :-1], delta[..., 1:]
    w1 = 2.0 * h[1:] + h[:-1]
    w2 = h[1:] + 2.0 * h[:-1]
    zero = (jnp.sign(d0) != jnp.sign(d1)) | (d0 == 0.0) | (d1 == 0.0)
    s0 = jnp.where(zero, 1.0, d0)
    s1 = jnp.where(zero, 1.0, d1)
    whmean = (w1 / s0 + w2 / s1) / (w1 + w2)  # ≠ 0 where used: s0, s1 of one sign
    inner = jnp.where(zero, 0.0, 1.0 / jnp.where(zero, 1.0, whmean))
    first = _pchip_edge(h[0], h[1], delta[..., 0], delta[..., 1])
    last = _pchip_edge(h[-1], h[-2], delta[..., -1], delta[..., -2])
    return jnp.concatenate([first[..., None], inner, last[..., None]], axis=-1)


def _pchip_fold(v, cells):
    """Tensor-product PCHIP of the window ``v`` [m_1, …, m_N] of a table, as scipy's
    ``RegularGridInterpolator._evaluate_spline``: 1-D interpolations along the last axis (for
    every leading index), then along the second-last of the result, …, down to axis 0.
    ``cells`` holds per axis (window nodes [m_k], local cell c_k, fraction t_k ∈ [0, 1])."""
    for u, c, t in reversed(cells):
        d = _pchip_derivatives(u, v)

        # entries c and c + 1 along the last axis, by exact one-hot sums (no gathers)
        pick0 = jnp.arange(u.shape[0]) == c
        pick1 = jnp.arange(u.shape[0]) == c + 1

        def at(a, pick):
            return jnp.sum(jnp.where(pick, a, 0.0), axis=-1)

        y0, y1, d0, d1 = at(v, pick0), at(v, pick1), at(d, pick0), at(d, pick1)
        h = at(u, pick1) - at(u, pick0)
        a = t * t * (3.0 - 2.0 * t)  # exactly 0 at t = 0 and 1 at t = 1: exact at the nodes
        v = (1.0 - a) * y0 + a * y1 + h * t * (1.0 - t) * ((1.0 - t) * d0 - t * d1)
    return v


class GridTable(eqx.Module):
    r"""Values tabulated on the nodes of a rectilinear N-D grid, interpolated multilinearly or
    by monotone cubics.

    ``axes``: ``{name: nodes}`` (ordered; each strictly increasing, ≥ 2 nodes), ``values``:
    ``{name: array of shape (n_1, …, n_N)}`` (yields, efficiencies, their uncertainties).
    ``transforms`` (per axis) and ``value_transforms`` (per value): ``"linear"`` (default) or
    ``"log"``. With u_k = T_k(x_k) the transformed coordinate, i_k the cell with
    u_k ∈ [u_{k,i_k}, u_{k,i_k+1}] and w_k = (u_k − u_{k,i_k}) / (u_{k,i_k+1} − u_{k,i_k}),
    ``method="linear"`` (default) gives

    .. math::
        \hat v(x) = T_v^{-1}\Big(\sum_{c \in \{0,1\}^N} \prod_k [c_k w_k + (1 - c_k)(1 - w_k)]
        \; T_v(v_{i_1 + c_1, \ldots, i_N + c_N})\Big),

    the tensor-product linear interpolation (scipy's ``RegularGridInterpolator``,
    ``method="linear"``, on the transformed axes and values). At a node every weight but one is
    exactly 0, so linear values are reproduced bit for bit (log values to rounding of
    exp ∘ ln).

    ``method="pchip"`` gives scipy's ``RegularGridInterpolator(method="pchip")`` on the
    transformed axes and values: successive 1-D monotone cubic (PCHIP, Fritsch–Butland)
    interpolations of y = T_v(v), first along the *last* axis for every index of the leading
    ones, then along the second-last axis of the result, …, down to axis 0 (the 1-D steps are
    nonlinear in y, so the order matters). In 1-D, with h_j = u_{j+1} − u_j and slopes
    δ_j = (y_{j+1} − y_j) / h_j, the derivative at an inner node is

    .. math::
        d_j = \begin{cases} 0 & \delta_{j-1}\delta_j \le 0 \\
        \dfrac{w_1 + w_2}{w_1/\delta_{j-1} + w_2/\delta_j},\;
        w_1 = 2h_j + h_{j-1},\; w_2 = h_j + 2h_{j-1} & \text{otherwise,} \end{cases}

    at an end (scipy's ``_edge_case``) d_0 = ((2h_0 + h_1)δ_0 − h_0δ_1) / (h_0 + h_1), set to 0
    if its sign is not that of δ_0 and to 3δ_0 if δ_0, δ_1 differ in sign and |d_0| > 3|δ_0|
    (mirrored at the last node); with 2 nodes d_0 = d_1 = δ_0 (linear). On the cell, with
    t = w_k and a = t²(3 − 2t),

    .. math::
        y(t) = (1 - a)\,y_j + a\,y_{j+1} + h_j\,t(1 - t)\,[(1 - t)\,d_j - t\,d_{j+1}].

    The value in a cell depends on the nodes i_k − 1 … i_k + 2 of each axis only (shifted at the
    ends), so a window of at most 4 nodes per axis is gathered and folded. In 1-D, data monotone
    on the nodes give a monotone interpolant with no overshoot beyond the two node values of any
    cell, and a flat stretch stays flat. In N-D this holds along every grid line through nodes of
    the other axes, and everywhere for tables separable in the transformed value (T_v(v) a sum
    or a product of one-axis functions); off the grid lines of a general table the nonlinear
    folds can break it slightly (scipy alike). Nodes are reproduced exactly (t = 0 or 1 in every
    step). scipy requires ≥ 4 nodes per axis for ``"pchip"``; here 3 nodes use the formulas
    above and 2 are linear.

    Points outside the grid give NaN (the table does not extrapolate); check hypotheses on the
    host first with :meth:`check_points`, which names the axis.

    ``table(point)`` takes a point [N] in the axes' order (or ``{axis: value}``) and returns
    ``{name: value}``; it is traceable, vmappable over points and differentiable in the point
    (inside a cell; for ``"pchip"`` everywhere inside the grid, the interpolant being C¹) and in
    the tabulated values (array leaves of the pytree), with finite gradients on flat stretches.

    >>> t = GridTable({"m": [1.0, 2.0], "ctau": [0.1, 10.0]},
    ...               {"eff": [[0.2, 0.1], [0.4, 0.2]]}, transforms={"ctau": "log"})
    >>> round(float(t([1.5, 1.0])["eff"]), 12)
    0.225
    """

    nodes: tuple[Array, ...]  # per axis, in the transformed coordinate
    values: dict[str, Array]  # name -> [n_1, …, n_N], in the transformed value
    axis_names: tuple[str, ...] = eqx.field(static=True)
    transforms: tuple[str, ...] = eqx.field(static=True)
    value_transforms: tuple[tuple[str, str], ...] = eqx.field(static=True)
    bounds: tuple[tuple[float, float], ...] = eqx.field(static=True)
    path: str = eqx.field(static=True)
    method: str = eqx.field(static=True)  # "linear" or "pchip"

    def __init__(
        self,
        axes: dict[str, ArrayLike],
        values: dict[str, ArrayLike],
        *,
        transforms: dict[str, str] | None = None,
        value_transforms: dict[str, str] | None = None,
        method: str = "linear",
        path: str = "",
    ):
        prefix = f"{path}." if path else ""
        if method not in METHODS:
            raise InvalidScanConfig(
                f"{prefix}method", f"unknown method {method!r}, not in {METHODS}"
            )
        if not axes:
            raise InvalidScanConfig(f"{prefix}axes", "needs at least one axis")
        if not values:
            raise InvalidScanConfig(f"{prefix}values", "needs at least one tabulated value")
        transforms = dict(transforms or {})
        value_transforms = dict(value_transforms or {})
        for key, known, what in (
            (transforms, axes, "axes"),
            (value_transforms, values, "values"),
        ):
            unknown = sorted(set(key) - set(known))
            if unknown:
                raise InvalidScanConfig(
                    f"{prefix}{'transforms' if what == 'axes' else 'value_transforms'}."
                    f"{unknown[0]}",
                    f"names no entry of {what} ({', '.join(map(str, known))})",
                )
        names = tuple(str(k) for k in axes)
        tfs = tuple(transforms.get(k, "linear") for k in names)
        checked = [_check_axis(k, axes[k], t, prefix) for k, t in zip(names, tfs, strict=True)]
        shape = None if any(a is None for a in checked) else tuple(a.size for a in checked)
        vts = tuple((str(k), value_transforms.get(k, "linear")) for k in values)
        for k, t in vts:
            _check_value(k, values[k], shape, t, prefix)
        self.axis_names = names
        self.transforms = tfs
        self.value_transforms = vts
        self.bounds = tuple(
            (float(a[0]), float(a[-1])) if a is not None else (-np.inf, np.inf) for a in checked
        )
        self.path = path
        self.method = method
        self.nodes = tuple(
            _forward(jnp.asarray(axes[k], float), t) for k, t in zip(names, tfs, strict=True)
        )
        self.values = {k: _forward(jnp.asarray(values[k], float), t) for k, t in vts}

    def _point(self, point) -> Array:
        if isinstance(point, dict):
            missing = [k for k in self.axis_names if k not in point]
            if missing:
                raise InvalidScanConfig(f"{self.path or 'point'}", f"missing axis {missing[0]!r}")
            point = [point[k] for k in self.axis_names]
        p = jnp.asarray(point, float)
        if p.shape != (len(self.axis_names),):
            raise InvalidScanConfig(
                f"{self.path or 'point'}",
                f"a point has {len(self.axis_names)} coordinates ({', '.join(self.axis_names)}), "
                f"got shape {p.shape}",
            )
        return p

    def __call__(self, point) -> dict[str, Array]:
        """Interpolated values at one point [N] (or ``{axis: value}``): ``{name: value}``."""
        p = self._point(point)
        cells, weights, inside = [], [], jnp.asarray(True)
        windows = []  # pchip: per axis (window nodes, start, local cell, fraction)
        for k, (u, t) in enumerate(zip(self.nodes, self.transforms, strict=True)):
            x = p[k]
            ok = (x > 0) if t == "log" else jnp.isfinite(x)
            uk = _forward(jnp.where(ok, x, 1.0), t)
            in_k = ok & (uk >= u[0]) & (uk <= u[-1])
            inside = inside & in_k
            i = jnp.clip(jnp.searchsorted(u, uk, side="right") - 1, 0, u.shape[0] - 2)
            if self.method == "linear":
                w = jnp.clip((uk - u[i]) / (u[i + 1] - u[i]), 0.0, 1.0)
                cells.append(i)
                weights.append(w)
            else:
                # w ∈ [0, 1] inside; a select (not a clip, whose derivative halves at the node)
                w = jnp.where(in_k, (uk - u[i]) / (u[i + 1] - u[i]), 0.0)
                m = min(u.shape[0], _PCHIP_WINDOW)
                start = jnp.clip(i - 1, 0, u.shape[0] - m)
                windows.append((lax.dynamic_slice_in_dim(u, start, m), start, i - start, w))
        if self.method == "pchip":  # all values folded at once, along a leading batch axis
            stacked = jnp.stack([self.values[name] for name, _ in self.value_transforms])
            sub = lax.dynamic_slice(
                stacked,
                (jnp.zeros((), windows[0][1].dtype), *(s for _, s, _, _ in windows)),
                (stacked.shape[0], *(u.shape[0] for u, *_ in windows)),
            )
            folded = _pchip_fold(sub, [(u, c, w) for u, _, c, w in windows])
        out = {}
        for j, (name, transform) in enumerate(self.value_transforms):
            if self.method == "linear":
                v = self.values[name]
                acc = 0.0
                for corner in itertools.product((0, 1), repeat=len(cells)):
                    wt = 1.0
                    for c, w in zip(corner, weights, strict=True):
                        wt = wt * (w if c else 1.0 - w)
                    idx = tuple(i + c for i, c in zip(cells, corner, strict=True))
                    acc = acc + wt * v[idx]
            else:
                acc = folded[j]
            val = jnp.exp(acc) if transform == "log" else acc
            out[name] = jnp.where(inside, val, jnp.nan)
        return out

    def check_points(self, points: ArrayLike) -> None:
        """Raise :class:`~jaxlike.exceptions.InvalidScanConfig` naming the axis if any of the
        host ``points`` [M, N] lies outside the grid (or is not finite; ≤ 0 on a log axis)."""
        pts = np.atleast_2d(np.asarray(points, float))
        if pts.shape[-1] != len(self.axis_names):
            raise InvalidScanConfig(
                self.path or "points",
                f"points need {len(self.axis_names)} coordinates ({', '.join(self.axis_names)}), "
                f"got shape {pts.shape}",
            )
        prefix = f"{self.path}." if self.path else ""
        for k, (name, (lo, hi)) in enumerate(zip(self.axis_names, self.bounds, strict=True)):
            x = pts[:, k]
            bad = np.flatnonzero(~np.isfinite(x) | (x < lo) | (x > hi))
            if bad.size:
                j = bad[0]
                raise InvalidScanConfig(
                    f"{prefix}axes.{name}",
                    f"point {j} has {name} = {x[j]:g}, outside the tabulated range "
                    f"[{lo:g}, {hi:g}] ({bad.size} of {x.size} points outside)",
                )
