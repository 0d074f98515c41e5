"""The toys' inverse-CDF Poisson sampler (jaxlike.model.poisson_table): its table against
exact sums in mpmath, its window's tail bound, the distribution of its draws, and the toy
tests that use it.

A table is exact only if (i) every entry is the Poisson CDF and (ii) the window leaves out less
than TAIL of the probability; both are checked with 50-digit arithmetic, for means from 0 to
the largest a table accepts, including λ = 10 where JAX's sampler switches algorithm."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from scipy import stats

import jaxlike
from jaxlike.infer import hypotest_prepare, toy_tables
from jaxlike.model import MAX_TABLE, poisson_table
from jaxlike.model._sampling import SMALL_TABLE, TAIL

LAMBDAS = [0.0, 1e-6, 0.37, 1.0, 9.999, 10.0, 45.3, 612.7, 2.7e4]


def _exact_cdf(k: int, lam: float) -> mpmath.mpf:
    """P(N ≤ k | λ) = Q(k + 1, λ), 50 digits."""
    if lam == 0:
        return mpmath.mpf(1)
    return mpmath.gammainc(k + 1, lam, mpmath.inf, regularized=True)


def test_table_entries_and_window_are_exact():
    """Every tabulated C[j] equals P(N ≤ ℓ + j) to 1e-13 (absolute; the float64 cumulative sum
    of up to 4096 terms), checked at 64 entries per mean (both ends, near the mode, random);
    the probability outside the window is below TAIL."""
    mpmath.mp.dps = 50
    table = poisson_table(np.asarray(LAMBDAS))
    assert table is not None
    lo, cdf = np.asarray(table.lo), np.asarray(table.cdf)
    size = cdf.shape[-1]
    assert size & (size - 1) == 0 and size <= MAX_TABLE
    rng = np.random.default_rng(1)
    for b, lam in enumerate(LAMBDAS):
        mode = int(np.clip(np.floor(lam) - lo[b], 0, size - 1))
        js = np.unique(np.concatenate([[0, 1, size - 2, size - 1, mode],
                                       np.clip(mode + np.arange(-8, 9), 0, size - 1),
                                       rng.integers(0, size, 42)]))  # fmt: skip
        for j in js:
            exact = float(_exact_cdf(int(lo[b] + j), lam))
            assert abs(cdf[b, j] - exact) < 1e-13, (lam, j, cdf[b, j], exact)
        below = 0 if lo[b] == 0 else _exact_cdf(int(lo[b]) - 1, lam)
        above = 1 - _exact_cdf(int(lo[b]) + size - 1, lam)
        assert float(below + above) < TAIL, lam
    assert np.all(np.diff(cdf, axis=-1) >= 0)


def test_no_table_where_it_cannot_be_exact_and_small():
    """None (the toys fall back to JAX's sampler) for means too large for MAX_TABLE entries,
    shapesys-sized τ, NaN, negative or empty input; a mixed array takes the widest window, and
    a table has SMALL_TABLE or MAX_TABLE entries per mean, nothing in between."""
    assert poisson_table(np.array([3e4])) is None
    assert poisson_table(np.array([5.0, 1e11])) is None
    assert poisson_table(np.array([5.0, np.nan])) is None
    assert poisson_table(np.array([5.0, -1.0])) is None
    assert poisson_table(np.array([])) is None
    assert poisson_table(np.array([3e4]), max_size=8192) is not None
    # two table sizes only (a static shape of the toy programs: a scan compiles one or two)
    for lam in ([0.0], [2.0], [40.0, 70.0], [0.3, 75.0]):
        assert poisson_table(np.array(lam)).cdf.shape[-1] == SMALL_TABLE
    for lam in ([2.0, 120.0], [900.0], [2.0e4]):
        assert poisson_table(np.array(lam)).cdf.shape[-1] == MAX_TABLE


@pytest.mark.parametrize("lam", [0.0, 0.37, 9.999, 10.0, 45.3, 612.7])
def test_draws_follow_the_poisson_distribution(lam):
    """200 000 draws: the frequency of every count with expectation ≥ 5 within 5 standard
    errors of the pmf, a χ² goodness of fit with p > 1e-4 (fixed key), mean and variance within
    5 standard errors; λ = 0 gives only zeros."""
    n = 200_000
    table = poisson_table(np.array([lam]))
    x = np.asarray(jax.jit(lambda k: table.draw(k, (n,)))(jax.random.PRNGKey(11)))[:, 0]
    assert x.shape == (n,) and np.all(x == np.round(x)) and np.all(x >= 0)
    if lam == 0:
        assert np.all(x == 0)
        return
    ks = np.arange(int(x.max()) + 1)
    freq = np.bincount(x.astype(int), minlength=ks.size)
    pmf = stats.poisson.pmf(ks, lam)
    big = n * pmf >= 5
    se = np.sqrt(n * pmf * (1 - pmf))
    np.testing.assert_array_less(np.abs(freq - n * pmf)[big], 5 * se[big])
    obs = np.append(freq[big], n - freq[big].sum())
    exp = np.append(n * pmf[big], n - n * pmf[big].sum())
    assert stats.chisquare(obs, exp).pvalue > 1e-4
    assert abs(x.mean() - lam) < 5 * np.sqrt(lam / n)
    assert abs(x.var() - lam) < 5 * lam * np.sqrt(2.0 / n) + 5 * np.sqrt(lam / n)


def test_draws_of_a_batch_of_generating_points():
    """A [2, n] table (two generating points, as the toys build) drawn under vmap over keys
    equals the keys one at a time; the row a toy picks (``tree.map(a[g])``) draws from its own
    means: λ = 0 gives 0, and 4000 draws of each row have the row's means within 5 standard
    errors."""
    lam = np.array([[3.0, 40.0, 0.5], [7.0, 0.0, 120.0]])
    table = poisson_table(lam)
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    both = jax.vmap(lambda k: table.draw(k))(keys)
    assert both.shape == (4, 2, 3)
    np.testing.assert_array_equal(both[2], table.draw(keys[2]))
    for g in range(2):
        row = jax.tree.map(lambda a, g=g: a[g], table)
        x = np.asarray(row.draw(keys[0], (4000,)))
        assert x.shape == (4000, 3)
        np.testing.assert_array_less(np.abs(x.mean(0) - lam[g]), 5 * np.sqrt(lam[g] / 4000) + 1e-12)
    assert np.all(np.asarray(jax.tree.map(lambda a: a[1], table).draw(keys[1], (50,)))[:, 1] == 0)


def _shapesys_counting(delta):
    """One bin, μ·4 + 3 events, the background with a shapesys of absolute width ``delta``
    (τ = (3/δ)²)."""
    return jaxlike.Workspace({
        "channels": [{"name": "sr", "samples": [
            {"name": "sig", "data": [4.0], "modifiers": [
                {"name": "mu", "type": "normfactor", "data": None}]},
            {"name": "bkg", "data": [3.0], "modifiers": [
                {"name": "sys", "type": "shapesys", "data": [delta]}]}]}],
        "observations": [{"name": "sr", "data": [6.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    })  # fmt: skip


def test_toys_use_tables_and_agree_with_the_rejection_sampler(monkeypatch):
    """A toy test builds tables at its generating points (the fast path) where the Poisson
    means are small, not where shapesys τ ≈ 1e12; and on the counting model the two samplers
    give the same toy tail fractions P(q̃ ≥ c) of both toy sets within 3 combined MC standard
    errors (other random streams, the same distribution)."""
    from jaxlike.infer import _toys

    ws = _shapesys_counting(1.0)
    model = ws.model()
    prep = hypotest_prepare(ws.data(model), model, test_stat="qtilde")
    gens = jnp.asarray(_toys.generating_pars(prep, model, [1.0, 0.0]))
    tables = toy_tables(model, gens)
    assert tables is not None and tables.cdf.shape[:2] == (2, 2)  # main bin + shapesys aux
    huge = _shapesys_counting(3e-6).model()
    assert toy_tables(huge, jnp.asarray([huge.config.suggested_init()])) is None

    n = 3000
    rows = {"gen": np.repeat([0, 1], n), "set": np.repeat([1, 0], n),
            "index": np.tile(np.arange(n), 2), "mu": np.full(2 * n, 1.0)}  # fmt: skip
    with_table = _toys.toy_statistics(prep, model, gens, rows, seed=2)
    monkeypatch.setattr(_toys, "_tables", lambda *a: None)  # JAX's rejection sampler
    without = _toys.toy_statistics(prep, model, gens, rows, seed=2)
    assert not np.array_equal(with_table["q"], without["q"])  # other streams
    assert np.all(with_table["ok"]) and np.all(without["ok"])
    for c in (0.1, 1.0, 3.0):
        for part in (slice(0, n), slice(n, 2 * n)):
            a = np.mean(with_table["q"][part] >= c)
            b = np.mean(without["q"][part] >= c)
            se = np.sqrt((a * (1 - a) + b * (1 - b)) / n)
            assert abs(a - b) < 3 * se + 1e-12, (c, part, a, b)
