"""Signal and efficiency tables on an N-dimensional grid of simulated points.

A search on a grid of hypotheses (m_h′ × cτ, m_χ × cτ, mass × mass ratio, …) has its signal
yields, efficiencies and their uncertainties simulated at the nodes of a rectilinear grid.
:class:`GridTable` interpolates them to any point inside it, multilinearly in per-axis
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
from jax import Array
from jax.typing import ArrayLike

from ..exceptions import InvalidScanConfig
from ._table import _concrete, check_nodes

__all__ = ["GridTable", "TRANSFORMS"]

#: coordinate and value transforms: interpolation in x itself or in ln x (x > 0)
TRANSFORMS = ("linear", "log")


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


class GridTable(eqx.Module):
    r"""Values tabulated on the nodes of a rectilinear N-D grid, interpolated multilinearly.

    ``axes``: ``{name: nodes}`` (ordered; each strictly increasing, ≥ 2 nodes), ``values``:
    ``{name: array of shape (n_1, …, n_N)}`` (yields, efficiencies, their uncertainties).
    ``transforms`` (per axis) and ``value_transforms`` (per value): ``"linear"`` (default) or
    ``"log"``. With u_k = T_k(x_k) the transformed coordinate, i_k the cell with
    u_k ∈ [u_{k,i_k}, u_{k,i_k+1}] and w_k = (u_k − u_{k,i_k}) / (u_{k,i_k+1} − u_{k,i_k}),

    .. math::
        \hat v(x) = T_v^{-1}\Big(\sum_{c \in \{0,1\}^N} \prod_k [c_k w_k + (1 - c_k)(1 - w_k)]
        \; T_v(v_{i_1 + c_1, \ldots, i_N + c_N})\Big),

    the tensor-product linear interpolation (scipy's ``RegularGridInterpolator``,
    ``method="linear"``, on the transformed axes and values). At a node every weight but one is
    exactly 0, so linear values are reproduced bit for bit (log values to rounding of
    exp ∘ ln). Points outside the grid give NaN (the table does not extrapolate); check
    hypotheses on the host first with :meth:`check_points`, which names the axis.

    ``table(point)`` takes a point [N] in the axes' order (or ``{axis: value}``) and returns
    ``{name: value}``; it is traceable, vmappable over points and differentiable in the point
    (inside a cell) and in the tabulated values (array leaves of the pytree).

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

    def __init__(
        self,
        axes: dict[str, ArrayLike],
        values: dict[str, ArrayLike],
        *,
        transforms: dict[str, str] | None = None,
        value_transforms: dict[str, str] | None = None,
        path: str = "",
    ):
        prefix = f"{path}." if path else ""
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
        for k, (u, t) in enumerate(zip(self.nodes, self.transforms, strict=True)):
            x = p[k]
            ok = (x > 0) if t == "log" else jnp.isfinite(x)
            uk = _forward(jnp.where(ok, x, 1.0), t)
            inside = inside & ok & (uk >= u[0]) & (uk <= u[-1])
            i = jnp.clip(jnp.searchsorted(u, uk, side="right") - 1, 0, u.shape[0] - 2)
            w = jnp.clip((uk - u[i]) / (u[i + 1] - u[i]), 0.0, 1.0)
            cells.append(i)
            weights.append(w)
        out = {}
        for name, transform in self.value_transforms:
            v = self.values[name]
            acc = 0.0
            for corner in itertools.product((0, 1), repeat=len(cells)):
                wt = 1.0
                for c, w in zip(corner, weights, strict=True):
                    wt = wt * (w if c else 1.0 - w)
                idx = tuple(i + c for i, c in zip(cells, corner, strict=True))
                acc = acc + wt * v[idx]
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
