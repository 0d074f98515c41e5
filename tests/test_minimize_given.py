"""The minimiser's ``given`` start values (the toys' fits start with the evaluation already made
at their start): the same fit with one evaluation of the objective fewer, and ignored where
the values do not belong to the start."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlike.fit import autodiff_fgh, minimize


def _f(x):
    # curved valley with a bound active at the minimum of the second coordinate's box
    return 3.0 * (x[0] - 1.0) ** 2 + 10.0 * (x[1] - x[0] ** 2) ** 2 + 0.1 * x[0] ** 4 + x[2] ** 2


X0 = jnp.asarray([-0.7, 2.0, 0.5])
LO, HI = jnp.asarray([-3.0, 0.2, -1.0]), jnp.asarray([3.0, 5.0, 1.0])
FIXED = jnp.asarray([False, False, True])


def _counted(calls):
    fgh = autodiff_fgh(_f)

    def counted(x):
        jax.debug.callback(lambda: calls.append(1))
        return fgh(x)

    return counted


def test_given_start_saves_one_evaluation_and_gives_the_same_fit():
    calls = []
    fgh = _counted(calls)
    plain = jax.jit(lambda: minimize(fgh, X0, LO, HI, FIXED))
    with_given = jax.jit(
        lambda gx, gf, gg, gh: minimize(fgh, X0, LO, HI, FIXED, given=(gx, gf, gg, gh))
    )
    ref = plain()
    n_plain = len(calls)
    assert bool(ref.converged) and n_plain > 3
    f0, g0, h0 = autodiff_fgh(_f)(X0)

    def run(*given):
        calls.clear()
        st = with_given(*given)
        jax.block_until_ready(st.x)
        return st, len(calls)

    st, n = run(X0, f0, g0, h0)  # the values at the start: used
    assert n == n_plain - 1
    np.testing.assert_array_equal(np.asarray(st.x), np.asarray(ref.x))
    assert float(st.f) == float(ref.f) and int(st.iterations) == int(ref.iterations)
    assert bool(st.converged)
    # values of another point, or a non-finite value at the start: ignored, the plain run
    for given in ((X0 + 0.1, f0, g0, h0), (X0, jnp.nan, g0, h0)):
        st, n = run(*given)
        assert n == n_plain
        np.testing.assert_array_equal(np.asarray(st.x), np.asarray(ref.x))
        assert float(st.f) == float(ref.f)


def test_given_start_under_vmap_lane_by_lane():
    """Batched: each lane uses its own values where they belong to its start."""
    fgh = autodiff_fgh(_f)
    f0, g0, h0 = fgh(X0)
    gx = jnp.stack([X0, X0 + 0.1])  # lane 0 uses them, lane 1 ignores them
    batch = jax.jit(
        jax.vmap(lambda gx: minimize(fgh, X0, LO, HI, FIXED, given=(gx, f0, g0, h0)))
    )(gx)
    ref = jax.jit(lambda: minimize(fgh, X0, LO, HI, FIXED))()
    for lane in range(2):
        np.testing.assert_allclose(np.asarray(batch.x[lane]), np.asarray(ref.x), atol=1e-12)
        np.testing.assert_allclose(float(batch.f[lane]), float(ref.f), rtol=0, atol=1e-13)
    assert bool(np.all(np.asarray(batch.converged)))
