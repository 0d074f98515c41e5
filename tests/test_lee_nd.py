"""Look-elsewhere over N-D grids: the Euler characteristic of excursion sets (known shapes),
the 1-D limit equal to the up-crossing formula, and on smooth 2-D Gaussian random fields the
fitted Euler-characteristic formula against the measured mean EC and the true global p-value."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from jaxlike.exceptions import InvalidScanConfig
from jaxlike.scan import (
    euler_characteristic,
    expected_euler_characteristic,
    gross_vitells,
    gross_vitells_nd,
    upcrossings,
)


def test_euler_characteristic_of_known_shapes():
    assert euler_characteristic(np.ones((4, 5))) == 1  # a filled rectangle
    ring = np.ones((5, 5), bool)
    ring[1:4, 1:4] = False
    assert euler_characteristic(ring) == 0  # one hole
    assert euler_characteristic([[1, 0, 1], [0, 0, 0], [1, 0, 0]]) == 3  # three points
    assert euler_characteristic(np.zeros((3, 3))) == 0
    two_holes = np.ones((5, 7), bool)
    two_holes[2, 2] = two_holes[2, 4] = False
    assert euler_characteristic(two_holes) == -1
    cube = np.ones((5, 5, 5), bool)
    assert euler_characteristic(cube) == 1
    cube[1:4, 1:4, 1:4] = False
    assert euler_characteristic(cube) == 2  # a hollow shell: a sphere
    torus = np.ones((4, 4, 3), bool)
    torus[1:3, 1:3, :] = False
    assert euler_characteristic(torus) == 0  # a square tube through the box
    segments = np.array([1, 1, 0, 1, 0, 0, 1, 1, 1], bool)
    assert euler_characteristic(segments) == 3  # 1-D: the number of segments


def test_one_dimension_is_the_upcrossing_formula():
    """In 1-D, with the EC at u0 written as the up-crossings plus 1 − Φ(u0) (a curve starting
    below u0), the N-D estimate is Gross & Vitells' 1-D formula."""
    rng = np.random.default_rng(3)
    z = np.convolve(rng.normal(size=400), np.ones(9) / 3.0, mode="same")
    u0 = 0.5
    one = gross_vitells(z, u0=u0)
    ec = upcrossings(z, u0) + norm.sf(u0)
    nd = gross_vitells_nd(one.max_z, [u0], [ec], 1)
    assert nd.p_global == pytest.approx(one.p_global, rel=1e-12)
    assert nd.z_global == pytest.approx(one.z_global, rel=1e-10)


def _fields(n_fields, n=48, sigma=3.0, seed=0):
    """Smooth, unit-variance 2-D Gaussian random fields (white noise convolved with a Gaussian
    of width ``sigma`` cells on a larger torus, cropped: no periodic boundary)."""
    rng = np.random.default_rng(seed)
    big = n + 36
    k = np.fft.fftfreq(big)
    kernel = np.exp(-2 * np.pi**2 * sigma**2 * (k[:, None] ** 2 + k[None, :] ** 2))
    w = rng.normal(size=(n_fields, big, big))
    f = np.real(np.fft.ifft2(np.fft.fft2(w) * kernel))[:, :n, :n]
    return f / f.std()


def test_two_dimensional_fields_follow_the_euler_characteristic_formula():
    fields = _fields(3000)
    levels = [0.5, 1.0, 1.5]
    ec_low = [np.mean([euler_characteristic(f > u) for f in fields[:300]]) for u in levels]
    fit = gross_vitells_nd(3.0, levels, ec_low, 2)
    # the fitted formula predicts the mean EC at higher levels (measured on other fields)
    for u in (2.0, 2.5, 3.0):
        ecs = np.array([euler_characteristic(f > u) for f in fields[300:1500]])
        mc = ecs.std(ddof=1) / np.sqrt(ecs.size)
        pred = float(expected_euler_characteristic(u, fit.n_d))
        assert abs(pred - ecs.mean()) < 3 * mc + 0.08 * ecs.mean(), (u, pred, ecs.mean(), mc)
    # and bounds the true global p-value from above, closely at a 3σ maximum
    p_true = np.mean(fields.reshape(len(fields), -1).max(axis=1) > 3.0)
    err = np.sqrt(p_true * (1 - p_true) / len(fields))
    assert p_true - 3 * err <= fit.p_global <= 1.25 * p_true + 3 * err
    assert fit.trials_factor == pytest.approx(fit.p_global / norm.sf(3.0))


@pytest.mark.parametrize(
    "args, what",
    [
        ((3.0, [1.0], [2.0], 2), "needs ≥ 2 levels"),
        ((3.0, [1.0, 1.0], [2.0, 2.0], 2), "distinct"),
        ((3.0, [1.0, 2.0], [2.0], 2), "2 levels"),
        ((3.0, [1.0], [np.nan], 1), "finite"),
        ((3.0, [1.0], [2.0], 0), "positive integer"),
    ],
)
def test_bad_inputs_name_the_field(args, what):
    with pytest.raises(InvalidScanConfig, match=what):
        gross_vitells_nd(*args)
