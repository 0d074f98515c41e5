"""lazy_cond: lax.cond semantics, lane by lane under vmap, and the expensive branch skipped
when no lane takes it; the minimiser's vmapped certificates and bound re-solves unchanged."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxlike.fit import _newton
from jaxlike.fit._control import lazy_cond


def _branches(counter):
    def heavy(x, y):
        jax.debug.callback(lambda: counter.append(1))
        return {"v": jnp.sort(x) * 2.0, "s": y + 1}

    def light(x, y):
        return {"v": x, "s": y}

    return heavy, light


@pytest.mark.parametrize("pred", [True, False])
def test_unbatched_is_lax_cond(pred):
    heavy, light = _branches([])
    x, y = jnp.asarray([3.0, 1.0, 2.0]), jnp.asarray(4)
    got = jax.jit(lambda p, x, y: lazy_cond(p, heavy, light, x, y))(pred, x, y)
    want = lax.cond(pred, heavy, light, x, y)
    jax.tree.map(np.testing.assert_array_equal, got, want)


def test_vmapped_selects_lane_by_lane_and_skips_the_untaken_branch():
    calls = []
    heavy, light = _branches(calls)
    f = jax.jit(jax.vmap(lambda p, x, y: lazy_cond(p, heavy, light, x, y)))
    x = jnp.arange(12.0).reshape(4, 3)[:, ::-1]
    y = jnp.arange(4)
    none = f(jnp.zeros(4, bool), x, y)
    jax.block_until_ready(none)
    assert calls == []  # no lane needed it: the heavy branch never ran
    np.testing.assert_array_equal(none["v"], x)
    pred = jnp.asarray([False, True, False, True])
    some = f(pred, x, y)
    jax.block_until_ready(some)
    assert calls  # ran (on the whole batch, then selected)
    for i in range(4):
        want = heavy(x[i], y[i]) if pred[i] else light(x[i], y[i])
        np.testing.assert_array_equal(some["v"][i], want["v"])
        assert int(some["s"][i]) == int(want["s"])


def test_unbatched_operands_and_nested_vmap():
    heavy, light = _branches([])
    x, y = jnp.asarray([2.0, 1.0]), jnp.asarray(0)
    g = jax.vmap(lambda p: lazy_cond(p, heavy, light, x, y))(jnp.asarray([True, False]))
    np.testing.assert_array_equal(g["v"], [[2.0, 4.0], [2.0, 1.0]])
    pred = jnp.asarray([[False, False], [False, True]])
    xs = jnp.broadcast_to(x, (2, 2, 2))
    nested = jax.jit(jax.vmap(jax.vmap(lambda p, x: lazy_cond(p, heavy, light, x, y))))(pred, xs)
    np.testing.assert_array_equal(nested["v"][1, 1], [2.0, 4.0])
    np.testing.assert_array_equal(nested["v"][:, 0], [[2.0, 1.0], [2.0, 1.0]])
    np.testing.assert_array_equal(nested["s"], [[0, 0], [0, 1]])


def _objective(x, a):
    """(x0 − 1)² + a0 (x0 + x1)² + a1 (x1² − 1)²: a = (1, 0) a bowl; a = (0, 1) a saddle in x1
    at x1 = 0, where the gradient vanishes (the run stays there, H not positive definite)."""
    return (x[0] - 1.0) ** 2 + a[0] * (x[0] + x[1]) ** 2 + a[1] * (x[1] ** 2 - 1.0) ** 2


def test_vmapped_minimiser_certificates_equal_the_unbatched_ones():
    """Lanes that need the eigenvector (H not positive definite at the end) or the bound
    re-solve (a step leaving the box) beside a lane that needs neither: the vmapped minimiser
    returns, lane by lane, what it returns unbatched."""
    lanes = jnp.asarray([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    his = jnp.asarray([[5.0, 5.0], [5.0, 5.0], [0.25, 5.0]])  # lane 2: x0 ≤ 0.25

    def run(a, hi):
        st = _newton.minimize(
            _newton.autodiff_fgh(lambda x: _objective(x, a)),
            jnp.zeros(2),
            jnp.asarray([-5.0, -5.0]),
            hi,
            jnp.zeros(2, bool),
            search=False,
        )
        return st.x, st.f, st.status, st.degenerate, st.at_bound, st.iterations

    batched = jax.jit(jax.vmap(run))(lanes, his)
    for i in range(lanes.shape[0]):
        single = jax.jit(run)(lanes[i], his[i])
        for b, s in zip(batched, single, strict=True):
            np.testing.assert_allclose(np.asarray(b[i]), np.asarray(s), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(batched[3], [[False, False], [False, True], [False, False]])
    np.testing.assert_allclose(batched[0][0], [1.0, -1.0], atol=1e-8)
    np.testing.assert_allclose(batched[0][2], [0.25, -0.25], atol=1e-8)
    assert bool(batched[4][2][0])  # lane 2 ends on its bound x0 = 0.25
