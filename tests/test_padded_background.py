"""Background models of different families and orders in one array layout (the envelope's
one vmapped fit): the linear polynomial basis equals the families' own binned shapes, a
padded window model is the same likelihood (value, gradient, parameters, bounds), the
unselected family branches never leak a NaN into a gradient, and a vmapped fit of the stack
finds every model's own minimum."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_envelope import variant

import jaxlike
from jaxlike.parametric import build_mass_scan, padded_background, stack_backgrounds
from jaxlike.scan import mass_scan
from jaxlike.shapes import bernstein_binned, chebyshev_binned, polynomial_basis

FAMILIES = ("polynomial", "exponential", "template")


@pytest.mark.parametrize("kind", ["bernstein", "chebyshev"])
def test_polynomial_basis_is_the_family(kind):
    rng = np.random.default_rng(3)
    lo, hi = 1.3, 2.7
    # a window sub-grid with a veto gap and a tiny bin at each end
    edges = jnp.asarray(np.r_[lo, lo + 1e-6, np.linspace(1.4, 1.9, 17), np.linspace(2.2, hi - 1e-6,
                              9), hi])  # fmt: skip
    for n in range(7):
        c = rng.uniform(0.0, 3.0, n) if kind == "bernstein" else rng.uniform(-0.15, 0.15, n)
        a = jnp.concatenate([jnp.ones(1), jnp.asarray(c)])
        basis, norm = polynomial_basis(kind, edges, n, lo, hi)
        assert basis.shape == (edges.shape[0] - 1, n + 1) and norm.shape == (n + 1,)
        want = bernstein_binned(edges, a, lo, hi) if kind == "bernstein" else (
            chebyshev_binned(edges, jnp.asarray(c), lo, hi))  # fmt: skip
        # a fraction is a difference of the antiderivative F (|F| ≤ ~1): both sides are exact
        # to a few ulp of F in absolute terms, whatever the bin's width
        np.testing.assert_allclose((basis @ a) / (norm @ a), want, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="exponential"):
        polynomial_basis("exponential", edges, 1, lo, hi)


def _members():
    scans = [variant(kind="bernstein", order=1), variant(kind="bernstein", order=2),
             variant(kind="chebyshev", order=2), variant(kind="exponential")]  # fmt: skip
    windows = [s.window_model(6.0) for s in scans]
    # a template background: the bernstein 2 shape at its fit, frozen
    w = windows[1]
    fit = jaxlike.fixed_poi_fit(w, w.make_data(), 0.0)
    _, smooth, _ = w.expected_by_component(fit.bestfit)
    tpl = smooth / jnp.sum(smooth, axis=1, keepdims=True)
    windows.append(dataclasses.replace(w, template=tpl, background="template", n_coeffs=0))
    return windows


def _pad(pars, w, n):
    """Parameters of window model w in the padded layout (zeros in the unused slots)."""
    nc = w.n_coeffs
    return jnp.concatenate([pars[:2 + nc], jnp.zeros(n - nc), pars[2 + nc:]])


def test_padded_model_is_the_same_likelihood():
    n = 4
    rng = np.random.default_rng(8)
    for w in _members():
        p = padded_background(w, n, FAMILIES)
        cfg, pcfg = w.config, p.config
        used = [2 + k for k in range(w.n_coeffs)]
        keep = [0, 1] + used + list(range(2 + n, pcfg.npars))  # the model's own parameters
        assert [pcfg.par_names[i] for i in keep] == cfg.par_names
        np.testing.assert_array_equal(np.asarray(pcfg.suggested_init())[keep],
                                      np.asarray(cfg.suggested_init()))  # fmt: skip
        np.testing.assert_array_equal(np.asarray(pcfg.suggested_bounds())[keep],
                                      np.asarray(cfg.suggested_bounds()))  # fmt: skip
        fixed = np.asarray(p.fixed_mask())
        assert fixed.sum() == n - w.n_coeffs and not fixed[keep].any()
        d = w.make_data()
        bounds = np.asarray(cfg.suggested_bounds())
        for _ in range(3):  # inside the bounds; a positive chebyshev density
            x = np.array(cfg.suggested_init(), float)
            x[0] = rng.uniform(0, 50)
            x[1] *= rng.uniform(0.9, 1.1)
            x[used] = np.clip(x[used] + rng.uniform(-0.05, 0.3, len(used)), *bounds[used].T)
            x[2 + w.n_coeffs:] = rng.normal(0, 1, cfg.npars - 2 - w.n_coeffs)
            xp = _pad(jnp.asarray(x), w, n)
            assert float(p.logpdf(xp, d)) == pytest.approx(float(w.logpdf(x, d)), rel=1e-13)
            v, g, h = w.value_grad_hess(jnp.asarray(x), d)
            vp, gp, hp = p.value_grad_hess(xp, d)
            np.testing.assert_allclose(np.asarray(gp)[keep], g, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(np.asarray(hp)[np.ix_(keep, keep)], h, rtol=1e-9, atol=1e-7)
    with pytest.raises(ValueError, match="cannot pad"):
        padded_background(_members()[2], 1, FAMILIES)


def test_unselected_branches_leave_gradients_finite():
    """A Bernstein coefficient at its upper bound would overflow the exponential branch if it
    reached it as a slope; the gradient of the padded model stays finite and equal."""
    w = _members()[1]
    p = padded_background(w, 3, FAMILIES)
    x = np.array(w.config.suggested_init(), float)
    x[2] = 5e3
    d = w.make_data()
    grad = jax.grad(lambda q: p.logpdf(q, d))(_pad(jnp.asarray(x), w, 3))
    assert np.all(np.isfinite(grad))
    want = jax.grad(lambda q: w.logpdf(q, d))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(grad)[[0, 1, 2, 3, 5]], want, rtol=1e-9, atol=1e-12)


def test_one_vmapped_fit_finds_every_models_minimum():
    windows = _members()
    stacked = stack_backgrounds(windows)
    assert stacked.counts.shape[0] == len(windows) and stacked.background == "padded"
    fits = jax.vmap(lambda w: jaxlike.fit(w, w.make_data()))(stacked)
    for j, w in enumerate(windows):
        own = jaxlike.fit(w, w.make_data())
        assert bool(fits.converged[j]) and bool(own.converged)
        assert float(fits.twice_nll[j]) == pytest.approx(float(own.twice_nll), abs=1e-7)
        assert float(fits.bestfit[j, 0]) == pytest.approx(float(own.bestfit[0]), rel=1e-5,
                                                          abs=1e-4)  # fmt: skip


def _ranged(**background):
    from test_envelope import make_config

    cfg = make_config()
    cfg["background"] = {"kind": "bernstein"} | background
    return build_mass_scan(cfg)


def test_an_order_per_mass_range_is_each_orders_model():
    """background.order = [1, 2] with order_below = [5]: below 5 the Bernstein 1 likelihood,
    above it the Bernstein 2 one (a different basis, not padded coefficients) — in one layout,
    so one compiled scan serves both ranges — and the fits find the same minima."""
    scan, masses, _ = _ranged(order=[1, 2], order_below=[5.0])
    assert scan.orders == (1, 2) and scan.n_coeffs == 2 and list(masses) == [3.0, 6.0]
    for m, order in ((3.0, 1), (6.0, 2)):
        w = scan.window_model(m)
        own = variant(kind="bernstein", order=order).window_model(m)
        assert w.background == "padded" and w.config.npars == own.config.npars + 2 - order
        # the free parameters of the envelope's penalty: the order's own
        assert int(w.config.npars - np.sum(w.fixed_mask())) == own.config.npars
        d = own.make_data()
        x = np.array(own.config.suggested_init(), float)
        x[0], x[2:2 + order] = 30.0, np.linspace(0.5, 2.0, order)
        xp = _pad(jnp.asarray(x), own, 2)
        assert float(w.logpdf(xp, d)) == pytest.approx(float(own.logpdf(x, d)), rel=1e-13)
        fit, want = jaxlike.fit(w, d), jaxlike.fit(own, d)
        assert bool(fit.converged) and float(fit.twice_nll) == pytest.approx(
            float(want.twice_nll), abs=1e-7)  # fmt: skip
    # the scan end to end (one compiled call for both ranges): Z from each order's own fits
    res = mass_scan(scan, masses, progress=False)
    assert np.all(res.fit_converged) and np.all(res.limit_converged)
    for i, (m, order) in enumerate(((3.0, 1), (6.0, 2))):
        own = variant(kind="bernstein", order=order).window_model(m)
        d = own.make_data()
        bounds = np.array(own.config.suggested_bounds())
        bounds[0, 0] = -bounds[0, 1]
        free = jaxlike.fit(own, d, par_bounds=bounds)
        null = jaxlike.fixed_poi_fit(own, d, 0.0)
        z = np.sign(float(free.bestfit[0])) * np.sqrt(
            max(float(null.twice_nll - free.twice_nll), 0.0))  # fmt: skip
        assert float(res.significance[i]) == pytest.approx(z, abs=2e-6)
    # the envelope's members may have an order per range too; default names list the orders
    from test_envelope import make_config

    cfg = make_config() | {"envelope": {"models": [
        {"order": [1, 2], "order_below": [5.0]}, {"order": 2}]}}  # fmt: skip
    cfg["background"] = {"kind": "bernstein", "order": 1}
    env, _, _ = build_mass_scan(cfg)
    assert env.names == ("bernstein1-2", "bernstein2")
    stacked = stack_backgrounds([s.window_model(3.0) for s in env.models])
    assert stacked.n_coeffs == 2 and stacked.families == ("polynomial",)


@pytest.mark.parametrize(
    ("background", "field"),
    [
        ({"order": [1, 2]}, "background.order_below"),
        ({"order": [1, 2, 3], "order_below": [5.0]}, "background.order_below"),
        ({"order": [1, 2, 3], "order_below": [5.0, 4.0]}, "background.order_below"),
        ({"order": 2, "order_below": [5.0]}, "background.order_below"),
        ({"order": [1, 99], "order_below": [5.0]}, "background.order[1]"),
        ({"order": []}, "background.order"),
        ({"kind": "exponential", "order_below": [5.0]}, "background.order_below"),
    ],
)
def test_bad_order_ranges_name_the_field(background, field):
    from jaxlike.exceptions import InvalidScanConfig

    with pytest.raises(InvalidScanConfig) as err:
        _ranged(**background)
    assert err.value.path == field, (err.value.path, err.value.reason)
