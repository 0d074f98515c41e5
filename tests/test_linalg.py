"""The fits' positive-definite solve: exact, batched by its own rule, never the batched LAPACK
kernel on the CPU (which deadlocks in jaxlib 0.10 under vmapped while-loops)."""

import jax
import numpy as np

import jaxlike  # noqa: F401  (float64)
from jaxlike.linalg import UNROLLED_MAX, spd_solve
from jaxlike.linalg._dense import _lapack_spd_solve


def _spd(rng, shape, n):
    a = rng.normal(size=shape + (n, n))
    return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)


def test_solution_and_flag():
    rng = np.random.default_rng(1)
    a, b = _spd(rng, (), 6), rng.normal(size=6)
    x, ok = spd_solve(a, b)
    np.testing.assert_allclose(np.asarray(x), np.linalg.solve(a, b), rtol=1e-12)
    assert bool(ok)
    _, ok = spd_solve(-a, b)  # negative definite: flagged, not silently solved
    assert not bool(ok)


def test_nested_vmap_matches_numpy_and_mixed_batching():
    rng = np.random.default_rng(2)
    a, b = _spd(rng, (3, 4), 5), rng.normal(size=(3, 4, 5))
    x, ok = jax.jit(jax.vmap(jax.vmap(spd_solve)))(a, b)
    np.testing.assert_allclose(np.asarray(x), np.linalg.solve(a, b[..., None])[..., 0], rtol=1e-11)
    assert bool(ok.all())
    x, _ = jax.vmap(spd_solve, in_axes=(None, 0))(a[0, 0], b[0])  # unbatched matrix
    np.testing.assert_allclose(np.asarray(x), np.linalg.solve(a[0, 0], b[0].T).T, rtol=1e-11)


def test_batched_solve_lowers_to_one_unbatched_cholesky_on_cpu():
    rng = np.random.default_rng(3)
    n = UNROLLED_MAX + 4
    a, b = _spd(rng, (7,), n), rng.normal(size=(7, n))
    hlo = jax.jit(jax.vmap(spd_solve)).lower(a, b).as_text()
    if jax.default_backend() == "cpu":
        calls = [line for line in hlo.splitlines() if "potrf" in line]
        assert calls and all('num_batch_dims = "0"' in line for line in calls)
        assert "while" in hlo  # one unbatched LAPACK call per matrix, in a loop over the batch


def test_small_systems_are_unrolled_and_match_lapack():
    """Up to UNROLLED_MAX rows the solve is written out (no LAPACK call, no loop over a batch:
    vector operations over it) and agrees with LAPACK; a non-positive pivot or a NaN entry is
    flagged."""
    rng = np.random.default_rng(4)
    for n in range(1, UNROLLED_MAX + 1):
        a, b = _spd(rng, (5,), n), rng.normal(size=(5, n, 3))
        x, ok = jax.vmap(spd_solve)(a, b)
        ref, ok_ref = jax.vmap(_lapack_spd_solve)(a, b)
        np.testing.assert_allclose(np.asarray(x), np.asarray(ref), rtol=1e-11, atol=1e-13)
        assert bool(ok.all()) and bool(ok_ref.all())
        hlo = jax.jit(jax.vmap(spd_solve)).lower(a, b[..., 0]).as_text()
        assert "potrf" not in hlo and "while" not in hlo
    a = _spd(rng, (), 4)
    a[2, 2] = -a[2, 2]
    assert not bool(spd_solve(a, np.ones(4))[1])
    a[2, 2] = np.nan
    assert not bool(spd_solve(a, np.ones(4))[1])


def test_put_and_set_static_equal_the_scatters_without_one():
    """linalg.put / set_static: the numbers of ``.at[i].set`` (also under vmap, with a traced
    index), and no scatter in the program (each is a while loop of its own on the CPU)."""
    import jax.numpy as jnp

    from jaxlike.linalg import put, set_static

    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=7))
    for i in (0, 3, 6, -1):
        assert np.array_equal(put(x, i, 2.5), x.at[i].set(2.5))
    rows = jnp.asarray(rng.normal(size=(5, 7)))
    idx, vals = jnp.asarray([0, 6, 2, 2, 5]), jnp.asarray(rng.normal(size=5))
    got = jax.vmap(put)(rows, idx, vals)
    want = jax.vmap(lambda r, i, v: r.at[i].set(v))(rows, idx, vals)
    assert np.array_equal(got, want)
    col = jnp.asarray(rng.normal(size=5))  # one value per row, as .at[..., i].set takes it
    assert np.array_equal(put(rows, 2, col), rows.at[..., 2].set(col))
    static = np.array([4, 1, -1])
    m = jnp.asarray(rng.normal(size=(7, 2)))
    v = jnp.asarray(rng.normal(size=(3, 2)))
    assert np.array_equal(set_static(m, static, v), m.at[static].set(v))
    assert np.array_equal(
        set_static(jnp.zeros(7, bool), static, jnp.array([True, False, True])),
        jnp.zeros(7, bool).at[static].set(jnp.array([True, False, True])),
    )
    text = (
        jax.jit(lambda r, i, v: set_static(put(r, i, v), static[:2], v * 2))
        .lower(x, 3, 1.0)
        .as_text()
    )
    assert "scatter" not in text
    try:
        set_static(x, np.array([1, 1]), 0.0)
    except ValueError as err:
        assert "repeats" in str(err)
    else:
        raise AssertionError("a repeated index was accepted")
