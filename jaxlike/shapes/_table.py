"""Shape parameters tabulated at simulated masses and interpolated to any hypothesis mass."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from ..exceptions import InvalidScanConfig

__all__ = ["MassTable"]

KINDS = ("linear", "pchip")


def _concrete(x):
    """``x`` as a numpy float array, or None when it is a tracer (validation is skipped then)."""
    try:
        return np.asarray(x, dtype=float)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def check_nodes(where, nodes, what="nodes"):
    """``nodes`` as a NumPy array after checking that they are a 1-D, finite, strictly
    increasing array of at least 2 ``what``; None for a tracer (not checked). Raises
    :class:`~jaxlike.exceptions.InvalidScanConfig` at ``where``."""
    a = _concrete(nodes)
    if a is None:
        return None
    if a.ndim != 1:
        raise InvalidScanConfig(where, f"must be a 1-D array, got shape {a.shape}")
    if a.size < 2:
        raise InvalidScanConfig(where, f"needs at least 2 {what}, got {a.size}")
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        raise InvalidScanConfig(where, f"entry {bad[0]} is not finite ({a[bad[0]]})")
    bad = np.flatnonzero(np.diff(a) <= 0)
    if bad.size:
        i = bad[0] + 1
        raise InvalidScanConfig(
            where,
            f"must be strictly increasing, but entry {i} ({a[i]}) <= entry {i - 1} ({a[i - 1]})",
        )
    return a


def _validate(masses, values, kind, path):
    prefix = f"{path}." if path else ""
    if kind not in KINDS:
        raise InvalidScanConfig(f"{prefix}kind", f"unknown interpolation {kind!r}, not in {KINDS}")
    m = check_nodes(f"{prefix}masses", masses, "tabulated masses")
    for name, val in values.items():
        v = _concrete(val)
        if v is None:
            continue
        where = f"{prefix}values.{name}"
        if v.ndim != 1:
            raise InvalidScanConfig(where, f"must be a 1-D array, got shape {v.shape}")
        if m is not None and v.size != m.size:
            raise InvalidScanConfig(where, f"has {v.size} entries but masses has {m.size}")
        bad = np.flatnonzero(~np.isfinite(v))
        if bad.size:
            raise InvalidScanConfig(where, f"entry {bad[0]} is not finite ({v[bad[0]]})")


def _pchip_slopes(x, y):
    """Node derivatives of the monotone piecewise-cubic Hermite interpolant (Fritsch–Carlson),
    exactly as ``scipy.interpolate.PchipInterpolator``: weighted harmonic mean of the adjacent
    secants where they have the same sign (else 0); one-sided three-point ends, limited so
    that the shape is preserved; two nodes give the straight line."""
    h = jnp.diff(x)
    delta = jnp.diff(y) / h
    if x.shape[0] == 2:
        return jnp.stack([delta[0], delta[0]])
    d0, d1, h0, h1 = delta[:-1], delta[1:], h[:-1], h[1:]
    same = d0 * d1 > 0
    d0s, d1s = jnp.where(same, d0, 1.0), jnp.where(same, d1, 1.0)
    w1, w2 = 2.0 * h1 + h0, h1 + 2.0 * h0
    interior = jnp.where(same, (w1 + w2) / (w1 / d0s + w2 / d1s), 0.0)

    def edge(ha, hb, ma, mb):
        d = ((2.0 * ha + hb) * ma - ha * mb) / (ha + hb)
        flip = jnp.sign(d) != jnp.sign(ma)
        limit = (jnp.sign(ma) != jnp.sign(mb)) & (jnp.abs(d) > 3.0 * jnp.abs(ma))
        return jnp.where(flip, 0.0, jnp.where(limit, 3.0 * ma, d))

    first = edge(h[0], h[1], delta[0], delta[1])
    last = edge(h[-1], h[-2], delta[-1], delta[-2])
    return jnp.concatenate([first[None], interior, last[None]])


class MassTable(eqx.Module):
    """Shape parameters (σ, α_L, n_L, ...) tabulated at K masses, interpolated in mass.

    ``table(m)`` returns ``{name: value at m}``. ``kind="linear"``: piecewise linear,
    y = y_i + (m − m_i)/(m_{i+1} − m_i) (y_{i+1} − y_i) on [m_i, m_{i+1}]. ``kind="pchip"``:
    monotone piecewise-cubic Hermite (Fritsch–Carlson, identical to scipy's
    ``PchipInterpolator``): C¹, never overshoots the tabulated values, so a width stays
    positive. Outside [m_0, m_{K−1}] the end value is held (call :meth:`check_range` on the
    hypothesis masses first). Works on traced and vmapped ``m`` and is differentiable in ``m``
    and in the tabulated values (which are array leaves of the pytree).

    The constructor validates concrete inputs and raises
    :class:`~jaxlike.exceptions.InvalidScanConfig` whose path names the field (``path`` is a
    prefix, e.g. ``"signal.table"`` → ``"signal.table.masses"``,
    ``"signal.table.values.sigma"``): fewer than 2 masses, masses not strictly increasing,
    a values array of another length, NaN/inf, unknown ``kind``.

    >>> t = MassTable([1.0, 2.0, 4.0], {"sigma": [0.01, 0.02, 0.06]})
    >>> round(float(t(3.0)["sigma"]), 12)
    0.04
    """

    masses: Array  # [K], strictly increasing
    values: dict[str, Array]  # name -> [K]
    kind: str = eqx.field(static=True)
    path: str = eqx.field(static=True)

    def __init__(
        self,
        masses: ArrayLike,
        values: dict[str, ArrayLike],
        kind: str = "linear",
        path: str = "",
    ):
        _validate(masses, values, kind, path)
        self.masses = jnp.asarray(masses, dtype=float)
        self.values = {str(k): jnp.asarray(v, dtype=float) for k, v in values.items()}
        self.kind = kind
        self.path = path

    def __call__(self, m: ArrayLike) -> dict[str, Array]:
        """Interpolated values at mass ``m`` (any shape; elementwise): ``{name: array}``."""
        x = self.masses
        m = jnp.asarray(m, dtype=float)
        m = jnp.where(m < x[0], x[0], jnp.where(m > x[-1], x[-1], m))  # hold the end values
        i = jnp.clip(jnp.searchsorted(x, m, side="right") - 1, 0, x.shape[0] - 2)
        h = x[i + 1] - x[i]
        s = (m - x[i]) / h
        out = {}
        for name, y in self.values.items():
            if self.kind == "linear":
                out[name] = y[i] + s * (y[i + 1] - y[i])
                continue
            d = _pchip_slopes(x, y)
            s2, s3 = s * s, s * s * s
            out[name] = (
                (2.0 * s3 - 3.0 * s2 + 1.0) * y[i]
                + (s3 - 2.0 * s2 + s) * h * d[i]
                + (3.0 * s2 - 2.0 * s3) * y[i + 1]
                + (s3 - s2) * h * d[i + 1]
            )
        return out

    def host_function(self, name: str):
        """A plain-Python ``float → float`` evaluating column ``name`` exactly as
        :meth:`__call__` does (same operations in the same order, float64), without JAX: for
        sequential host loops such as the ``step_sigma`` mass list (microseconds per call
        instead of a device dispatch). Needs concrete (non-traced) values."""
        import bisect

        x = [float(v) for v in np.asarray(self.masses)]
        y = [float(v) for v in np.asarray(self.values[name])]
        d = None
        if self.kind != "linear":
            d = [float(v) for v in np.asarray(_pchip_slopes(self.masses, self.values[name]))]
        last = len(x) - 2

        def f(m: float) -> float:
            m = x[0] if m < x[0] else (x[-1] if m > x[-1] else float(m))
            i = min(max(bisect.bisect_right(x, m) - 1, 0), last)
            h = x[i + 1] - x[i]
            s = (m - x[i]) / h
            if d is None:
                return y[i] + s * (y[i + 1] - y[i])
            s2, s3 = s * s, s * s * s
            return (
                (2.0 * s3 - 3.0 * s2 + 1.0) * y[i]
                + (s3 - 2.0 * s2 + s) * h * d[i]
                + (3.0 * s2 - 2.0 * s3) * y[i + 1]
                + (s3 - s2) * h * d[i + 1]
            )

        return f

    def check_range(self, masses: ArrayLike, path: str = "masses") -> None:
        """Host-side check that every hypothesis mass lies in [m_0, m_{K−1}] (up to 1e-12 of
        the tabulated span, for rounding); raises :class:`InvalidScanConfig` at ``path``
        naming the first offending mass (and NaNs)."""
        x = np.asarray(self.masses)
        lo, hi = x[0], x[-1]
        tol = 1e-12 * (hi - lo)
        m = np.atleast_1d(np.asarray(masses, dtype=float))
        bad = np.flatnonzero(~((m >= lo - tol) & (m <= hi + tol)))  # NaN is bad too
        if bad.size:
            i = bad[0]
            table = self.path or "the mass table"
            raise InvalidScanConfig(
                path,
                f"hypothesis mass {float(m.flat[i])!r} (index {i}) lies outside the tabulated "
                f"range [{float(lo)!r}, {float(hi)!r}] of {table}; {bad.size} of {m.size} "
                "masses are outside",
            )
