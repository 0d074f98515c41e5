"""Excluded intervals of a coupling by root finding: monotone limits, a lifetime that makes an
excluded band (both edges), several bands, no exclusion, open ends, vmapped over masses — each
against the roots found by scipy's brentq on the same ratio."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

from jaxlike.exceptions import InvalidArgument
from jaxlike.infer import excluded_intervals


def _band_ratio(g, k=4e6, a=1e2, b=1e4):
    """σ_pred/σ_UL for a long-lived particle, cτ ∝ 1/g²: yield ∝ g² times the probability of a
    decay between two radii, exp(−a g²) − exp(−b g²) (too long-lived at small g, too prompt at
    large g): an excluded band."""
    return k * g**2 * (jnp.exp(-a * g**2) - jnp.exp(-b * g**2))


def _roots(f, lo, hi, n=20000):
    """Every root of f − 1 on a fine log grid, refined by brentq (the reference)."""
    g = np.geomspace(lo, hi, n)
    r = np.array([float(f(x)) for x in g]) - 1.0
    out = []
    for i in np.flatnonzero(np.sign(r[1:]) != np.sign(r[:-1])):
        out.append(brentq(lambda x: float(f(x)) - 1.0, g[i], g[i + 1], xtol=1e-15, rtol=1e-14))
    return np.array(out)


def test_a_lifetime_band_has_both_edges():
    res = jax.jit(lambda: excluded_intervals(_band_ratio, 1e-4, 1.0))()
    ref = _roots(_band_ratio, 1e-4, 1.0)
    assert ref.size == 2
    assert int(res.n_intervals) == 1 and not bool(res.open_below) and not bool(res.open_above)
    np.testing.assert_allclose([float(res.lower[0]), float(res.upper[0])], ref, rtol=1e-12)
    assert np.isnan(np.asarray(res.lower[1:])).all() and np.isnan(np.asarray(res.upper[1:])).all()
    # at the edges r = 1
    for g in (res.lower[0], res.upper[0]):
        assert float(_band_ratio(g)) == pytest.approx(1.0, rel=1e-10)


def test_monotone_limit_is_open_above_and_linear_grids_work():
    g_star = 0.0123
    res = excluded_intervals(lambda g: (g / g_star) ** 2, 1e-3, 1.0)
    assert int(res.n_intervals) == 1 and bool(res.open_above) and not bool(res.open_below)
    assert float(res.lower[0]) == pytest.approx(g_star, rel=1e-13)
    assert float(res.upper[0]) == 1.0
    lin = excluded_intervals(lambda g: (g / g_star) ** 2, 0.0, 0.1, log=False, n_grid=50)
    assert float(lin.lower[0]) == pytest.approx(g_star, rel=1e-13)


def test_several_bands_no_band_and_an_excluded_start():
    two = lambda g: 1.5 + jnp.sin(8 * jnp.log(g))  # noqa: E731  (periodic in ln g)
    res = excluded_intervals(two, 1e-2, 1.0, n_grid=200, max_intervals=8)
    ref = _roots(two, 1e-2, 1.0)
    n = int(res.n_intervals)
    lo, hi = np.asarray(res.lower), np.asarray(res.upper)
    edges = np.sort(np.concatenate([lo[:n], hi[:n]]))
    inner = edges[(edges > 1e-2) & (edges < 1.0)]
    np.testing.assert_allclose(inner, ref, rtol=1e-12)
    assert bool(res.open_below) == (float(two(1e-2)) >= 1.0)
    none = excluded_intervals(lambda g: 0.5 * g, 1e-3, 1.0)
    assert int(none.n_intervals) == 0 and np.isnan(np.asarray(none.lower)).all()
    few = excluded_intervals(two, 1e-2, 1.0, n_grid=200, max_intervals=1)
    assert bool(few.truncated) and int(few.n_intervals) == n


def test_vmapped_over_masses():
    ks = jnp.asarray([4e6, 1e6, 1e3])  # the last one excludes nothing
    res = jax.jit(jax.vmap(lambda k: excluded_intervals(lambda g: _band_ratio(g, k=k), 1e-4, 1.0)))(
        ks
    )
    for i, k in enumerate(np.asarray(ks)):
        ref = _roots(lambda g, k=k: _band_ratio(g, k=k), 1e-4, 1.0)
        if ref.size == 0:
            assert int(res.n_intervals[i]) == 0
            continue
        got = [float(res.lower[i, 0]), float(res.upper[i, 0])]
        np.testing.assert_allclose(got, ref, rtol=1e-12)


@pytest.mark.parametrize(
    "kw, what",
    [
        ({"g_min": 0.0, "g_max": 1.0}, "g_min > 0"),
        ({"g_min": 1.0, "g_max": 0.5}, "g_min < g_max"),
        ({"g_min": 0.1, "g_max": 1.0, "n_grid": 1}, "n_grid"),
        ({"g_min": 0.1, "g_max": 1.0, "max_intervals": 0}, "max_intervals"),
    ],
)
def test_bad_arguments(kw, what):
    with pytest.raises(InvalidArgument, match=what):
        excluded_intervals(lambda g: g, **kw)


def test_lifetime_grid_intervals_against_brentq():
    """:func:`lifetime_excluded_intervals`: the limit tabulated on a lifetime grid and
    interpolated log-log, cτ(g) ∝ 1/g²; edges equal brentq's roots of the same ratio, no
    exclusion beyond the longest lifetime, and below the shortest only with ``prompt_below``
    (where the shortest lifetime's limit then applies)."""
    from jaxlike.infer import edges_at_lifetime_ends, lifetime_excluded_intervals

    ctaus = np.geomspace(0.1, 100.0, 13)
    ul = 1.0 / -np.expm1(-5.0 / ctaus)  # efficiency ∝ P(decay within 5 cm)
    limits = np.stack([ul, 3.0 * ul])
    k = np.array([1.0, 2.0])  # cτ = k / g²

    def predicted(g, p):
        return 1e2 * g**2

    def ctau(g, p):
        return p / g**2

    def ratio_ref(g, i, prompt):
        lct = np.log(k[i] / g**2)
        if lct > np.log(ctaus[-1]) or (lct < np.log(ctaus[0]) and not prompt):
            return 0.0
        return 1e2 * g**2 / np.exp(np.interp(lct, np.log(ctaus), np.log(limits[i])))

    for prompt in (False, True):
        res = lifetime_excluded_intervals(limits, ctaus, predicted, ctau, jnp.asarray(k), 1e-3,
                                          1e2, prompt_below=prompt, n_grid=400)  # fmt: skip
        at_lo, at_hi = edges_at_lifetime_ends(res, ctaus, lambda g: k[:, None] / g**2,
                                              prompt_below=prompt)  # fmt: skip
        for i in range(2):
            ref = _roots(lambda g, i=i, p=prompt: ratio_ref(g, i, p), 1e-3, 1e2)
            got = np.concatenate([np.asarray(res.lower[i]), np.asarray(res.upper[i])])
            got = np.sort(got[np.isfinite(got)])
            if prompt:  # open above: the range's end is the last edge
                assert bool(res.open_above[i]) and got[-1] == pytest.approx(1e2)
                got = got[:-1]
            else:  # the exclusion stops where cτ(g) leaves the grid at its short end
                assert not bool(res.open_above[i]) and at_hi[i, 0]
            np.testing.assert_allclose(got, ref, rtol=1e-9)
            assert not at_lo[i, 0]
    with pytest.raises(InvalidArgument, match="shape"):
        lifetime_excluded_intervals(
            limits[:, :5], ctaus, predicted, ctau, jnp.asarray(k), 1e-3, 1.0
        )
