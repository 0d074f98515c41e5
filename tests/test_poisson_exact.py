"""The Poisson term is exact to 1e-12 relative over the whole (n, λ) range (issue 11).

Reference: mpmath at 50 digits, log Pois(n | λ) = n log λ − λ − lnΓ(n + 1) for real n ≥ 0.
The grid hits every branch of :func:`jaxlike.model.poisson_logpdf`: the direct form (n < 15),
the Stirling form on both sides of its switch at n = 15, the λ < n/2 branch (log λ − log n),
the series for log(1 + x) − x near λ = n (|x| < 1/2, on both sides of its edge), and λ down to
1e-300 with n up to 1e15.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

from jaxlike.model import poisson_logpdf

jax.config.update("jax_enable_x64", True)

_N = [0.0, 0.25, 0.5, 1.0, 3.0, 7.5, 14.9, 14.999, 15.0, 15.5, 20.0, 33.0, 100.0, 1e3, 1e4,
      1e5, 1e6, 1e8, 1e9, 1e12, 1e15]  # fmt: skip
_ABS = [1e-300, 1e-200, 1e-100, 1e-15, 1e-14, 1e-5, 0.1, 1.0, 3.0, 10.0, 1e3, 1e6, 1e12, 1e15]
_REL = [1e-3, 0.01, 0.4999, 0.5, 0.5001, 0.9, 0.999, 1 - 1e-6, 1 - 1e-9, 1.0, 1 + 1e-12,
        1 + 1e-9, 1 + 1e-6, 1.001, 1.1, 1.4999, 1.5, 1.5001, 2.0, 10.0, 1e3]  # fmt: skip


def _grid():
    pts = [(n, lam) for n in _N for lam in _ABS]
    pts += [(n, n * r) for n in _N if n > 0 for r in _REL]
    return np.array(pts).T


def _exact(n, lam):
    mpmath.mp.dps = 50
    n, lam = mpmath.mpf(float(n)), mpmath.mpf(float(lam))
    return (n * mpmath.log(lam) if n else 0) - lam - mpmath.loggamma(n + 1)


@pytest.fixture(scope="module")
def values():
    n, lam = _grid()
    got = np.asarray(jax.jit(poisson_logpdf)(jnp.asarray(n), jnp.asarray(lam)))
    want = np.array([float(_exact(a, b)) for a, b in zip(n, lam, strict=True)])
    return n, lam, got, want


def test_poisson_exact_to_1e12_relative_over_the_whole_range(values):
    n, lam, got, want = values
    assert np.all(np.isfinite(got)), list(zip(n[~np.isfinite(got)], lam[~np.isfinite(got)]))
    rel = np.abs(got - want) / np.maximum(np.abs(want), 1e-300)
    worst = int(np.argmax(rel))
    assert rel[worst] <= 1e-12, (n[worst], lam[worst], got[worst], want[worst], rel[worst])


def test_poisson_issue_examples():
    """λ = 1e-15, n = 20 was −inf (exact −733.11...); at λ = 1e-14 it was 0.185 off."""
    for lam in (1e-15, 1e-14, 1e-300):
        got = float(poisson_logpdf(20.0, lam))
        assert got == pytest.approx(float(_exact(20.0, lam)), rel=1e-12)
    assert float(poisson_logpdf(20.0, 1e-15)) == pytest.approx(-733.1111443589672, rel=1e-12)


def test_poisson_edges_and_derivatives():
    """0 log 0 = 0 with a zero gradient; λ = 0 with n > 0 is −inf (exact); the first and second
    λ-derivatives equal n/λ − 1 and −n/λ² on every branch."""
    assert float(poisson_logpdf(0.0, 0.0)) == 0.0
    assert float(jax.grad(poisson_logpdf, 1)(0.0, 0.0)) == -1.0
    assert float(poisson_logpdf(3.0, 0.0)) == -np.inf
    d1 = jax.vmap(jax.grad(poisson_logpdf, 1))
    d2 = jax.vmap(jax.grad(jax.grad(poisson_logpdf, 1), 1))
    n = jnp.array([3.0, 14.9, 15.0, 20.0, 1e6, 1e6, 1e6, 1e9])
    lam = jnp.array([1e-5, 20.0, 15.0, 1e-10, 1e6 * (1 + 1e-9), 4e5, 7e5, 2e9])
    np.testing.assert_allclose(d1(n, lam), n / lam - 1.0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d2(n, lam), -n / lam**2, rtol=1e-10)


def test_poisson_derivatives_are_the_closed_forms_on_the_whole_grid(values):
    """The custom JVP rule: ∂/∂λ = n/λ − 1 and ∂/∂n = log λ − ψ(n + 1), checked against mpmath's
    derivative of the exact log-pdf at 50 digits on the grid of every branch (the rule must
    not depend on which form evaluated the value); forward and reverse mode agree; the data
    tangent is exact too, with 0 log 0 = 0 at n = λ = 0."""
    n, lam, _, _ = values
    keep = (lam > 1e-100) & (lam < 1e13) & (n < 1e13)  # mpmath's diff step stays meaningful
    n, lam = n[keep], lam[keep]
    d_lam = jax.vmap(jax.grad(poisson_logpdf, 1))(jnp.asarray(n), jnp.asarray(lam))
    d_n = jax.vmap(jax.grad(poisson_logpdf, 0))(jnp.asarray(n), jnp.asarray(lam))
    mpmath.mp.dps = 50
    want_lam = np.array(
        [float(mpmath.mpf(a) / mpmath.mpf(b) - 1) for a, b in zip(n, lam, strict=True)]
    )
    want_n = np.array(
        [float(mpmath.log(mpmath.mpf(b)) - mpmath.digamma(mpmath.mpf(a) + 1))
         for a, b in zip(n, lam, strict=True)]
    )  # fmt: skip
    np.testing.assert_allclose(np.asarray(d_lam), want_lam, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(np.asarray(d_n), want_n, rtol=1e-12, atol=1e-12)
    # forward mode in both arguments at once equals the sum of the two partials
    tangent = jax.vmap(lambda a, b: jax.jvp(poisson_logpdf, (a, b), (1.0, 1.0))[1])
    np.testing.assert_allclose(
        np.asarray(tangent(jnp.asarray(n), jnp.asarray(lam))), want_lam + want_n,
        rtol=1e-12, atol=1e-12,
    )  # fmt: skip
    assert float(jax.grad(poisson_logpdf, 0)(0.0, 0.0)) == pytest.approx(-float(mpmath.digamma(1)))
