"""The window model's closed-form value, gradient and Hessian (the one call per Newton
iteration of every toy fit) against automatic differentiation of its 2NLL, over every
background family (and the padded layout), shared and per-category nuisances, peaking
backgrounds, vetoed bins, and points where the code-4p resolution morphing is in its
polynomial and in its linear piece, with coefficients and yields near their bounds."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlike.parametric import WindowModel, padded_background

C, W, K = 2, 9, 1
FAMILIES = ("polynomial", "exponential", "template")


def _window(background: str, n_coeffs: int, has_eff: bool, has_res: bool, uncorrelated: bool,
            peaks: int = K, seed: int = 0) -> WindowModel:  # fmt: skip
    rng = np.random.default_rng(seed)
    edges = np.sort(rng.uniform(1.0, 2.0, (C, W + 1)), axis=1)
    x = 0.5 * (edges[:, 1:] + edges[:, :-1])
    centre = edges[:, W // 2, None]

    def shape(width):
        s = np.exp(-0.5 * ((x - centre) / width) ** 2) * np.diff(edges, axis=1)
        return s / (1.3 * s.sum(axis=1, keepdims=True))  # part of the peak leaks out

    sig = shape(0.08)
    tpl = rng.uniform(0.5, 1.5, (C, W))
    mask = np.ones((C, W), bool)
    mask[0, 3] = mask[1, 6] = False  # vetoed bins
    return WindowModel(
        edges=jnp.asarray(edges),
        counts=jnp.asarray(rng.poisson(40.0, (C, W)).astype(float)),
        mask=jnp.asarray(mask),
        sig_nom=jnp.asarray(sig),
        sig_up=jnp.asarray(shape(0.1)),
        sig_down=jnp.asarray(shape(0.065)),
        scale=jnp.asarray([1.0, 0.7]),
        template=jnp.asarray(tpl / tpl.sum(axis=1, keepdims=True)),
        peaks=jnp.asarray(rng.dirichlet(np.ones(W), (C, peaks))),
        rel_eff=jnp.asarray([0.08, 0.05]),
        rel_res=jnp.asarray([0.1, 0.2]),
        mu_max=jnp.asarray(1e3),
        background=background,
        n_coeffs=n_coeffs,
        has_eff=has_eff,
        has_res=has_res,
        uncorrelated=uncorrelated,
    )


#: (background, order, has_eff, has_res, uncorrelated): every family with both nuisances
#: (shared and per category), and each other nuisance configuration with one family; the
#: polynomial and exponential families also padded to 4 slots (``slow``: the other pairings)
CASES = [
    ("bernstein", 3, True, True, False),
    ("chebyshev", 2, True, True, True),
    ("exponential", 1, True, True, False),
    ("template", 0, True, True, True),
    ("bernstein", 2, False, False, False),
] + [pytest.param(*case, marks=pytest.mark.slow) for case in (
    ("bernstein", 3, True, True, True),
    ("chebyshev", 2, True, True, False),
    ("exponential", 1, True, True, True),
    ("template", 0, True, True, False),
    ("chebyshev", 1, True, False, False),
    ("exponential", 1, False, True, False),
    ("bernstein", 1, True, False, True),
    ("template", 0, False, True, True),
)]  # fmt: skip


def _points(model, rng, k=4):
    """Points inside the bounds: θ_σ inside and outside |θ| ≤ 1 (both pieces of code 4p),
    coefficients and yields from 0 (a bound) up, a negative chebyshev slope."""
    cfg = model.config
    bounds = np.asarray(cfg.suggested_bounds())
    fixed = np.asarray(model.fixed_mask())
    init = np.asarray(cfg.suggested_init(), float)
    for j in range(k):
        x = init.copy()
        for i, name in enumerate(cfg.par_names):
            if fixed[i]:
                continue
            if name == "mu":
                x[i] = [0.0, 12.0, 40.0, 3.0][j]
            elif name.startswith("theta"):
                x[i] = [0.0, 0.6, -1.7, 3.2][j] * (1.0 if i % 2 else -1.0)
            elif name.startswith("peak"):
                x[i] = [0.0, 5.0, 20.0, 1.0][j]
            elif "_a" in name:
                lo, hi = bounds[i]
                x[i] = float(np.clip(rng.uniform(-0.2, 0.6), lo, hi)) if j else max(lo, 0.0)
            else:  # the background yield
                x[i] = init[i] * rng.uniform(0.8, 1.1)
        yield jnp.asarray(x)


_AUTODIFF = jax.jit(lambda m, x, d: (m.twice_nll(x, d), jax.grad(m.twice_nll)(x, d),
                                     jax.hessian(m.twice_nll)(x, d)))  # fmt: skip
_FWD_FWD = jax.jit(lambda m, x, d: jax.jacfwd(jax.jacfwd(m.twice_nll))(x, d))
_CLOSED = jax.jit(lambda m, x, d: m.value_grad_hess(x, d))


@pytest.mark.parametrize("background,order,has_eff,has_res,uncorrelated", CASES)
def test_closed_form_hessian_is_the_autodiff_hessian(background, order, has_eff, has_res,
                                                     uncorrelated):  # fmt: skip
    rng = np.random.default_rng(order + 10 * has_eff + 100 * has_res)
    base = _window(background, order, has_eff, has_res, uncorrelated)
    models = [base]
    if background != "template":  # the same likelihood in the padded layout (4 slots)
        models.append(padded_background(base, 4, FAMILIES))
    for model in models:
        data = model.make_data()
        data = data.at[model.config.nmaindata :].set(rng.normal(0.0, 0.7, model.config.nauxdata))
        for x in _points(model, rng):
            v, g, h = _CLOSED(model, x, data)
            va, ga, ha = (np.asarray(a) for a in _AUTODIFF(model, x, data))
            assert np.isfinite(va)
            assert float(v) == pytest.approx(float(va), rel=1e-14)
            np.testing.assert_allclose(g, ga, rtol=1e-11, atol=1e-9)
            # within the rounding of autodiff itself: where a Bernstein density vanishes at a
            # window edge (coefficients on their bound 0), ν → 0 there and forward-over-reverse,
            # its transpose and forward-over-forward differ by up to ~1e-9
            noise = np.abs(ha - ha.T)
            if np.any(np.abs(h - ha) >= 1e-12 * (1.0 + np.abs(ha)) + 10 * noise):
                noise = noise + np.abs(ha - np.asarray(_FWD_FWD(model, x, data)))
            np.testing.assert_array_less(np.abs(h - ha), 1e-12 * (1.0 + np.abs(ha)) + 10 * noise)
            np.testing.assert_array_equal(h, np.asarray(h).T)
