"""GridTable: N-D tables of simulated points, exact at the nodes, equal to scipy's
RegularGridInterpolator off them (on the transformed axes and values; method "linear" and
"pchip"), NaN outside, host range checks that name the axis, traceable and differentiable; PCHIP
monotone without overshoot and with finite gradients on flat stretches."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.interpolate import PchipInterpolator, RegularGridInterpolator

from jaxlike.exceptions import InvalidScanConfig
from jaxlike.shapes import GridTable

# a dark-Higgs-like grid: mass (linear), lifetime (log, 0.1 cm … 10⁴ cm), a third axis
MASS = np.array([0.3, 0.5, 1.0, 2.0, 3.5])
CTAU = np.array([0.1, 1.0, 10.0, 100.0, 1e3, 1e4])
RATIO = np.array([0.1, 0.4, 0.9])


def _values(rng):
    shape = (MASS.size, CTAU.size, RATIO.size)
    m, c, r = np.meshgrid(MASS, np.log(CTAU), RATIO, indexing="ij")
    eff = np.exp(-0.5 * (c - 1.0) ** 2 / 4.0) * (0.2 + 0.1 * m) * (1.0 + r)  # decades in cτ
    return {
        "yield": rng.uniform(5.0, 50.0, shape),
        "eff": eff,
        "eff_err": rng.uniform(0.01, 0.1, shape),
    }


@pytest.fixture(scope="module")
def table():
    vals = _values(np.random.default_rng(0))
    t = GridTable(
        {"m": MASS, "ctau": CTAU, "ratio": RATIO},
        vals,
        transforms={"ctau": "log"},
        value_transforms={"eff": "log"},
        path="signal.table",
    )
    return t, vals


@pytest.fixture(scope="module")
def at(table):
    return jax.jit(jax.vmap(table[0]))


def test_exact_at_every_node(table, at):
    t, vals = table
    grid = np.stack(np.meshgrid(MASS, CTAU, RATIO, indexing="ij"), axis=-1).reshape(-1, 3)
    got = at(jnp.asarray(grid))
    for name in ("yield", "eff_err"):  # linear values: bit for bit
        np.testing.assert_array_equal(np.asarray(got[name]), vals[name].reshape(-1))
    # log values: exp(ln v) is v to a few ulp
    np.testing.assert_allclose(np.asarray(got["eff"]), vals["eff"].reshape(-1), rtol=2e-15)


def test_equals_regular_grid_interpolator_off_the_nodes(table, at):
    t, vals = table
    rng = np.random.default_rng(1)
    n = 400
    pts = np.column_stack(
        [
            rng.uniform(MASS[0], MASS[-1], n),
            np.exp(rng.uniform(np.log(CTAU[0]), np.log(CTAU[-1]), n)),
            rng.uniform(RATIO[0], RATIO[-1], n),
        ]
    )
    pts[:20, 1] = CTAU[rng.integers(0, CTAU.size, 20)]  # on a node in one axis only
    got = at(jnp.asarray(pts))
    axes = (MASS, np.log(CTAU), RATIO)
    tpts = np.column_stack([pts[:, 0], np.log(pts[:, 1]), pts[:, 2]])
    for name in ("yield", "eff_err"):
        ref = RegularGridInterpolator(axes, vals[name], method="linear")(tpts)
        np.testing.assert_allclose(np.asarray(got[name]), ref, rtol=1e-12)
    ref = np.exp(RegularGridInterpolator(axes, np.log(vals["eff"]), method="linear")(tpts))
    np.testing.assert_allclose(np.asarray(got["eff"]), ref, rtol=1e-12)


def test_outside_is_nan_and_the_host_check_names_the_axis(table, at):
    t, _ = table
    pts = jnp.asarray([[0.2, 1.0, 0.5], [1.0, 2e4, 0.5], [1.0, 0.0, 0.5], [1.0, 5.0, 0.95]])
    got = at(pts)
    assert np.isnan(np.asarray(got["yield"])).all()
    t.check_points([[0.3, 0.1, 0.1], [3.5, 1e4, 0.9]])  # the corners are inside
    with pytest.raises(InvalidScanConfig, match=r"table\.axes\.ctau: point 1 has ctau = 20000"):
        t.check_points([[1.0, 1.0, 0.5], [1.0, 2e4, 0.5]])
    with pytest.raises(InvalidScanConfig, match=r"axes\.m.*point 0"):
        t.check_points([[np.nan, 1.0, 0.5]])
    with pytest.raises(InvalidScanConfig, match="3 coordinates"):
        t.check_points([[1.0, 1.0]])


def test_dict_points_and_derivatives(table):
    t, _ = table
    p = {"m": 0.8, "ctau": 3.0, "ratio": 0.5}
    a = t(p)
    b = t([0.8, 3.0, 0.5])
    assert float(a["eff"]) == float(b["eff"])
    # inside a cell: the derivative in the point is the finite difference
    f = lambda x: t(x)["eff"]  # noqa: E731
    g = np.asarray(jax.grad(f)(jnp.asarray([0.8, 3.0, 0.5])))
    h = 1e-6
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        x = np.array([0.8, 3.0, 0.5])
        fd = (float(f(jnp.asarray(x + e))) - float(f(jnp.asarray(x - e)))) / (2 * h)
        assert g[k] == pytest.approx(fd, rel=1e-6)
    # and in the tabulated values (a pytree leaf): the interpolation weights of the point
    dv = jax.grad(lambda tab: tab([0.8, 3.0, 0.5])["yield"])(t).values["yield"]
    assert float(jnp.sum(dv)) == pytest.approx(1.0, abs=1e-14)
    assert int(jnp.sum(dv > 0)) == 8  # the 2³ corners of the cell


@pytest.mark.parametrize(
    "axes, values, kw, where, what",
    [
        ({"m": [1.0, 1.0]}, {"y": [1.0, 2.0]}, {}, "t.axes.m", "strictly increasing"),
        ({"m": [1.0]}, {"y": [1.0]}, {}, "t.axes.m", "at least 2 nodes"),
        ({"m": [0.0, 1.0]}, {"y": [1.0, 2.0]}, {"transforms": {"m": "log"}}, "t.axes.m",
         "positive"),
        ({"m": [1.0, 2.0]}, {"y": [1.0, 2.0, 3.0]}, {}, "t.values.y", "shape"),
        ({"m": [1.0, 2.0]}, {"y": [1.0, np.nan]}, {}, "t.values.y", "not finite"),
        ({"m": [1.0, 2.0]}, {"y": [1.0, 0.0]}, {"value_transforms": {"y": "log"}}, "t.values.y",
         "positive"),
        ({"m": [1.0, 2.0]}, {"y": [1.0, 2.0]}, {"transforms": {"m": "sqrt"}}, "t.transforms.m",
         "unknown transform"),
        ({"m": [1.0, 2.0]}, {"y": [1.0, 2.0]}, {"transforms": {"mass": "log"}},
         "t.transforms.mass", "names no entry"),
        ({}, {"y": [1.0]}, {}, "t.axes", "at least one axis"),
        ({"m": [1.0, 2.0]}, {"y": [1.0, 2.0]}, {"method": "cubic"}, "t.method", "unknown method"),
    ],
)  # fmt: skip
def test_bad_tables_name_the_field(axes, values, kw, where, what):
    with pytest.raises(InvalidScanConfig) as e:
        GridTable(axes, values, path="t", **kw)
    assert where in str(e.value) and what in str(e.value)


def test_one_axis_equals_numpy_interp():
    x = np.array([0.0, 1.0, 3.0, 7.0])
    y = np.array([2.0, -1.0, 4.0, 0.5])
    t = GridTable({"x": x}, {"y": y})
    pts = np.linspace(0.0, 7.0, 57)
    got = jax.vmap(lambda p: t(p[None])["y"])(jnp.asarray(pts))
    np.testing.assert_allclose(np.asarray(got), np.interp(pts, x, y), rtol=1e-13, atol=1e-15)


# PCHIP: non-uniform nodes, ≥ 4 per axis (scipy's RegularGridInterpolator needs 4 for "pchip")
P_MASS = np.array([0.3, 0.45, 1.0, 2.2, 3.5])
P_CTAU = np.array([0.1, 0.5, 1.0, 30.0, 100.0, 1e4])
P_RATIO = np.array([0.1, 0.25, 0.6, 0.9])
P_AXES = (P_MASS, np.log(P_CTAU), P_RATIO)  # scipy's view: ln cτ


def _pchip_values(rng):
    shape = (P_MASS.size, P_CTAU.size, P_RATIO.size)
    wig = 5.0 + rng.uniform(-1.0, 1.0, shape)  # slopes change sign everywhere
    wig[2] = wig[1]  # flat stretches (equal neighbours) along each axis: the limiter's d = 0
    wig[:, 3] = wig[:, 2]
    wig[..., 1] = wig[..., 0]
    wig[3, 1:4, :] = 4.0  # a plateau with kinks into it
    m, c, r = np.meshgrid(*P_AXES, indexing="ij")
    eff = np.exp(-0.5 * (c - 1.0) ** 2 / 4.0) * (0.2 + 0.1 * m) * (1.0 + r)  # decades in cτ
    eff[:, 4] = eff[:, 3]  # flat in ln eff as well
    return {"wig": wig, "eff": eff, "yield": rng.uniform(5.0, 50.0, shape)}


@pytest.fixture(scope="module")
def pchip_table():
    vals = _pchip_values(np.random.default_rng(2))
    t = GridTable(
        {"m": P_MASS, "ctau": P_CTAU, "ratio": P_RATIO},
        vals,
        transforms={"ctau": "log"},
        value_transforms={"eff": "log"},
        method="pchip",
        path="signal.table",
    )
    assert t.method == "pchip"
    return t, vals


@pytest.fixture(scope="module")
def pchip_at(pchip_table):
    return jax.jit(jax.vmap(pchip_table[0]))


def _pchip_ref(vals, name, tpts):
    if name == "eff":
        return np.exp(RegularGridInterpolator(P_AXES, np.log(vals[name]), method="pchip")(tpts))
    return RegularGridInterpolator(P_AXES, vals[name], method="pchip")(tpts)


def test_pchip_equals_regular_grid_interpolator_off_the_nodes(pchip_table, pchip_at):
    _, vals = pchip_table
    rng = np.random.default_rng(3)
    n = 300
    pts = np.column_stack(
        [
            rng.uniform(P_MASS[0], P_MASS[-1], n),
            np.exp(rng.uniform(np.log(P_CTAU[0]), np.log(P_CTAU[-1]), n)),
            rng.uniform(P_RATIO[0], P_RATIO[-1], n),
        ]
    )
    pts[:20, 1] = P_CTAU[rng.integers(0, P_CTAU.size, 20)]  # on a node in one axis only
    pts[20:40, 0] = P_MASS[rng.integers(0, P_MASS.size, 20)]
    got = pchip_at(jnp.asarray(pts))
    tpts = np.column_stack([pts[:, 0], np.log(pts[:, 1]), pts[:, 2]])
    for name in vals:
        ref = _pchip_ref(vals, name, tpts)
        np.testing.assert_allclose(np.asarray(got[name]), ref, rtol=1e-12, err_msg=name)
        lin = RegularGridInterpolator(P_AXES, vals[name], method="linear")(tpts)
        assert np.max(np.abs(ref - lin)) > 1e-2  # it is not the linear interpolation


def test_pchip_exact_at_every_node_and_nan_outside(pchip_table, pchip_at):
    _, vals = pchip_table
    grid = np.stack(np.meshgrid(P_MASS, P_CTAU, P_RATIO, indexing="ij"), axis=-1).reshape(-1, 3)
    got = pchip_at(jnp.asarray(grid))
    for name in ("wig", "yield"):  # linear values: bit for bit (t = 0 or 1 in every 1-D step)
        np.testing.assert_array_equal(np.asarray(got[name]), vals[name].reshape(-1))
    np.testing.assert_allclose(np.asarray(got["eff"]), vals["eff"].reshape(-1), rtol=1e-14)
    out = pchip_at(jnp.asarray([[0.2, 1.0, 0.5], [1.0, 2e4, 0.5], [1.0, 0.0, 0.5]]))
    assert all(np.isnan(np.asarray(v)).all() for v in out.values())


def test_pchip_one_axis_equals_pchip_interpolator():
    # also with fewer nodes than scipy's RegularGridInterpolator accepts: 2 nodes are linear
    x = np.array([0.0, 1.0, 1.5, 4.0, 7.0])
    y = np.array([2.0, -1.0, 4.0, 4.0, 0.5])
    tables = [GridTable({"x": x[:n]}, {"y": y[:n]}, method="pchip") for n in (2, 3, 5)]
    pts = np.linspace(0.0, 1.0, 41)
    scaled = [pts * x[n - 1] for n in (2, 3, 5)]
    got = jax.jit(jax.vmap(lambda p: [tb(p[k, None])["y"] for k, tb in enumerate(tables)]))(
        jnp.asarray(np.stack(scaled, axis=1))
    )
    for g, n, s in zip(got, (2, 3, 5), scaled, strict=True):
        ref = PchipInterpolator(x[:n], y[:n])(s)
        np.testing.assert_allclose(np.asarray(g), ref, rtol=1e-13, atol=1e-14, err_msg=str(n))
    np.testing.assert_allclose(np.asarray(got[0]), np.interp(scaled[0], x[:2], y[:2]), rtol=1e-14)


def test_pchip_is_monotone_without_overshoot():
    # monotone in cτ with flat stretches and steep steps; non-monotone in m and ratio
    m, c, r = np.meshgrid(*P_AXES, indexing="ij")
    eff = 0.3 * (1.0 + r) * (0.5 + 0.2 * m) / (1.0 + np.exp(-(c - 1.0 - 0.5 * m + r)))
    eff[:, 4:] = eff[:, 3:4]  # saturated
    eff[:, 1] = eff[:, 0]  # and flat at the start
    sep = (
        (1.5 + np.sin(3.0 * m))  # separable: monotone along cτ off the grid lines as well
        * np.array([0.0, 0.0, 0.1, 0.9, 0.9, 1.0])[None, :, None]
        * (1.0 + (r - 0.5) ** 2)
    )
    axes = {"m": P_MASS, "ctau": P_CTAU, "ratio": P_RATIO}
    kw = {"transforms": {"ctau": "log"}}
    vals = {"eff": eff, "sep": sep}
    tp = GridTable(axes, vals, method="pchip", **kw)
    tl = GridTable(axes, vals, method="linear", **kw)
    f = jax.jit(jax.vmap(lambda p: (tp(p), tl(p))))
    # a fine sweep in ln cτ through every cell (nodes included), along every grid line through
    # the nodes of m and ratio, and along 8 lines off the nodes
    per = 60
    s = np.linspace(0.0, 1.0, per + 1)
    lc = np.log(P_CTAU)
    sweep = np.exp(np.concatenate([lc[j] + s[:-1] * (lc[j + 1] - lc[j]) for j in range(5)]))
    sweep = np.append(sweep, P_CTAU[-1])
    rng = np.random.default_rng(4)
    lines = [(a, b) for a in P_MASS for b in P_RATIO] + list(
        zip(rng.uniform(0.3, 3.5, 8), rng.uniform(0.1, 0.9, 8), strict=True)
    )
    pts = np.array([[a, x, b] for a, b in lines for x in sweep])
    p, lin = f(jnp.asarray(pts))
    for name, n_lines in (("eff", 20), ("sep", len(lines))):
        yp = np.asarray(p[name]).reshape(len(lines), -1)[:n_lines]
        yl = np.asarray(lin[name]).reshape(len(lines), -1)[:n_lines]
        scale = np.abs(yp).max()
        assert np.all(np.diff(yp, axis=1) >= -1e-15 * scale), name  # monotone (to rounding)
        # per cell: pchip stays within its values at the two ends of the cell; on the grid lines
        # these are the node values, the range of the linear interpolant
        cp = np.stack([yp[:, j * per : (j + 1) * per + 1] for j in range(5)], axis=1)
        cl = np.stack([yl[:, j * per : (j + 1) * per + 1] for j in range(5)], axis=1)
        lo = np.minimum(cp[..., 0], cp[..., -1])[..., None] - 1e-15 * scale
        hi = np.maximum(cp[..., 0], cp[..., -1])[..., None] + 1e-15 * scale
        assert np.all((cp >= lo) & (cp <= hi)), name
        np.testing.assert_array_equal(cp[:20, :, [0, -1]], cl[:20, :, [0, -1]])
        assert np.all(cp[:20].min(axis=-1) >= cl[:20].min(axis=-1) - 1e-15 * scale), name
        assert np.all(cp[:20].max(axis=-1) <= cl[:20].max(axis=-1) + 1e-15 * scale), name
        # flat cells stay flat
        flat = cp[..., 0] == cp[..., -1]
        assert flat.any() and np.all((cp.max(axis=-1) - cp.min(axis=-1))[flat] <= 1e-15 * scale)


def test_pchip_gradients_are_finite_and_match_finite_differences(pchip_table, pchip_at):
    t, vals = pchip_table
    grid = np.stack(np.meshgrid(P_MASS, P_CTAU, P_RATIO, indexing="ij"), axis=-1).reshape(-1, 3)
    # inside a cell, and on a node in cτ (PCHIP is C¹: the central difference is O(h) there)
    fd_at = np.array([[0.8, 3.0, 0.5], [1.7, 0.3, 0.3], [0.8, 1.0, 0.5]])
    flat = np.array([[0.7, 5.0, 0.2], [2.2, 5.0, 0.5], [2.5, 0.7, 0.5], [1.0, 50.0, 0.5]])
    pts = jnp.asarray(np.concatenate([fd_at, grid, flat]))  # off, on the nodes, flat stretches

    def total(x, values):  # the values do not mix: its value gradient is each value's own
        return sum(eqx.tree_at(lambda tb: tb.values, t, values)(x).values())

    gp, gv = jax.jit(jax.vmap(jax.grad(total, argnums=(0, 1)), in_axes=(0, None)))(pts, t.values)
    assert np.isfinite(np.asarray(gp)).all()
    assert all(np.isfinite(np.asarray(g)).all() for g in gv.values())
    # translation invariance of PCHIP: the value gradients of a linear value sum to 1
    np.testing.assert_allclose(np.asarray(gv["wig"]).sum(axis=(1, 2, 3)), 1.0, atol=1e-12)
    steps = 1e-6 * fd_at[:, None, :] * np.eye(3)  # [point, axis, coordinate]
    plus = pchip_at(jnp.asarray((fd_at[:, None, :] + steps).reshape(-1, 3)))
    minus = pchip_at(jnp.asarray((fd_at[:, None, :] - steps).reshape(-1, 3)))
    diff = sum(np.asarray(plus[k]) - np.asarray(minus[k]) for k in vals).reshape(3, 3)
    fd = diff / (2.0 * 1e-6 * fd_at)
    np.testing.assert_allclose(np.asarray(gp[:2]), fd[:2], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(gp[2]), fd[2], rtol=2e-5)


def test_pchip_vmap_equals_a_loop(pchip_table, pchip_at):
    t, _ = pchip_table
    rng = np.random.default_rng(6)
    pts = np.column_stack(
        [
            rng.uniform(0.3, 3.5, 12),
            np.exp(rng.uniform(np.log(0.1), np.log(1e4), 12)),
            rng.uniform(0.1, 0.9, 12),
        ]
    )
    pts[0] = [0.3, 0.1, 0.1]  # a corner and a node
    pts[1] = [1.0, 30.0, 0.6]
    batch = pchip_at(jnp.asarray(pts))
    one = jax.jit(lambda x: t(x))
    for j, x in enumerate(pts):
        got = one(jnp.asarray(x))
        for name in batch:
            assert float(got[name]) == pytest.approx(float(batch[name][j]), rel=1e-15, abs=0.0)
