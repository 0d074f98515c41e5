"""GridTable: N-D tables of simulated points, exact at the nodes, equal to scipy's
RegularGridInterpolator off them (on the transformed axes and values), NaN outside, host range
checks that name the axis, traceable and differentiable."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.interpolate import RegularGridInterpolator

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
