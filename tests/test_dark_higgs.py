"""The bundled dark-Higgs counting grid (issue 14, item 7): its generator, the fluctuation it
hides, coupling bands by root finding, whole-grid toys and ``jaxlike scan --example
dark-higgs``."""

from __future__ import annotations

import contextlib
import io
import json

import jax
import numpy as np
import pytest

from jaxlike.cli import main
from jaxlike.examples import DARK_HIGGS_CHANNELS, dark_higgs_grid
from jaxlike.examples._dark_higgs import branching_fractions, decay_probability
from jaxlike.scan import counting_grid_scan, counting_grid_toys


@pytest.fixture(scope="module")
def ex():
    return dark_higgs_grid()


def test_generator(ex):
    assert ex.grid.shape == (45, 20) and len(ex.grid.channels) == 3
    assert ex.ctaus[0] == pytest.approx(0.1) and ex.ctaus[-1] == pytest.approx(1e4)
    br = branching_fractions(ex.masses)
    total = sum(br.values())
    assert np.all(total <= 1.0) and np.all(total > 0.99)  # e⁺e⁻ takes the rest
    assert np.all(br["kk"][ex.masses < 2 * DARK_HIGGS_CHANNELS[2][1]] == 0)
    p = decay_probability(1.0, ex.ctaus)
    assert np.all((p >= 0) & (p < 1)) and 0 < np.argmax(p) < ex.ctaus.size - 1
    # the grid's window and sideband counts are the spectrum summed in the windows
    for c in ex.grid.channels:
        arr = ex.grid._arrays[c.name]
        on = arr["observed"].reshape(ex.grid.shape)[:, 0]
        np.testing.assert_array_equal(on, ex.window_matrix[c.name] @ ex.observed[c.name])
        off = arr["sideband_observed"].reshape(ex.grid.shape)[:, 0]
        np.testing.assert_array_equal(off, ex.sideband_matrix[c.name] @ ex.observed[c.name])
    # lifetime falls as 1/sin²θ
    assert ex.ctau(2e-4, 1.0) == pytest.approx(ex.ctau(1e-4, 1.0) / 4)


def test_sampler_means(ex):
    """The spectrum sampler's window and sideband counts have the background expectation."""
    sample = jax.jit(ex.sampler())
    draws = [sample(jax.random.key(k)) for k in range(400)]
    name = "kk"
    on = np.stack([np.asarray(d[name][0]) for d in draws]).reshape(400, 45, 20)
    assert np.all(on == on[..., :1])  # one draw per mass, shared by its lifetimes
    mean = ex.window_matrix[name] @ ex.background[name]
    se = np.sqrt(np.maximum(mean, 1e-3) / 400)
    assert np.all(np.abs(on[..., 0].mean(0) - mean) < 5 * se + 1e-9)


def test_finds_the_fluctuation_and_limits(ex):
    """Around the injected signal (m = 1.42 GeV) the local significance stands out and every
    point converges, for asymptotic CLs and Bayesian limits alike."""
    sub = ex.grid.select(m=[13, 14, 15], ctau=[3, 8, 13])
    res = counting_grid_scan(sub, method=("cls", "bayes"), progress=False)
    assert res.converged.all()
    z = res.significance
    assert z[1].min() > 3.0 and z[[0, 2]].max() < 2.0
    # limits are weakest where the excess is, and Bayesian ones track CLs ones
    assert np.all(res.bayes_ul[1, :, 0] > res.bayes_ul[0, :, 0])
    ratio = res.bayes_ul[..., 0] / res.ul_obs[..., 0]
    assert np.all((ratio > 0.5) & (ratio < 2.0))


def test_coupling_band_edges_solve_the_equation(ex):
    """The excluded band's edges are where σ(sin θ) = σ_UL(cτ(sin θ)) (the limit interpolated
    log-log in cτ): a lower edge (too little signal) and an upper edge (too short-lived)."""
    # the limit rises exponentially at short lifetimes (decays before the vertex region) and
    # linearly at long ones (decays beyond it), as a displaced-vertex search's does
    ul = 0.05 * np.exp(1.0 / ex.ctaus) * (1.0 + ex.ctaus / 100.0) * np.ones((45, 1))
    iv = ex.coupling_limits(ul)
    at_lo, at_hi = ex.edges_at_grid_end(iv)
    i = 20
    lo, hi = float(iv.lower[i, 0]), float(iv.upper[i, 0])
    assert 0 < lo < hi and int(iv.n_intervals[i]) == 1
    assert not at_lo[i, 0] and not at_hi[i, 0]
    m = ex.masses[i]
    for g in (lo, hi):
        lct = np.log(ex.ctau(g, m))
        sig_ul = np.exp(np.interp(lct, np.log(ex.ctaus), np.log(ul[i])))
        assert ex.cross_section(g, m) / sig_ul == pytest.approx(1.0, rel=1e-6)
    # a limit that stays low down to the shortest lifetime: the band ends where the grid does
    flat = ex.coupling_limits(np.full((45, 20), 0.05))
    assert ex.edges_at_grid_end(flat)[1][i, 0]


def test_whole_grid_toys_small(ex):
    sub = ex.grid.select(m=[13, 14], ctau=[3, 13])
    # the spectrum sampler is for the whole grid; the sub-grid takes its default windows
    t = counting_grid_toys(sub, 8, seed=2, return_maps=True, progress=False)
    assert t.z.shape == (8, 2, 2) and t.n_failed.sum() == 0
    np.testing.assert_allclose(t.max_z, np.nanmax(t.z.reshape(8, -1), axis=1))


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_cli_bad_input(tmp_path):
    code, _, err = _cli("scan", "--example", "alp", "--method", "bayes", "-o", tmp_path / "a")
    assert code == 2 and "--method applies to N-D counting grids" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = _cli("scan", "cfg.toml", "--example", "dark-higgs", "-o", tmp_path / "b")
    assert code == 2 and "no CONFIG" in err
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "grid.h5").write_bytes(b"x")
    code, _, err = _cli("scan", "--example", "dark-higgs", "-o", tmp_path / "c")
    assert code == 2 and "already exists" in err
    code, _, err = _cli("scan", "--example", "dark-higgs", "--lee-toys", "-1", "-o",
                        tmp_path / "d")  # fmt: skip
    assert code == 2 and "--lee-toys" in err


@pytest.mark.slow
def test_cli_full_example(tmp_path):
    """The README command: 900 points × 3 channels, CLs and Bayesian limits, coupling bands,
    200 toys of the whole grid (the benchmark runs 1000)."""
    code, out, _ = _cli("scan", "--example", "dark-higgs", "--method", "cls", "--method",
                        "bayes", "--lee-toys", "200", "-o", tmp_path, "--json",
                        "--no-progress")  # fmt: skip
    assert code == 0
    s = json.loads(out)
    assert s["points"] == 900 and s["converged_fraction"] == 1.0
    assert s["max_local_z"]["at"]["m"] == pytest.approx(1.42)
    assert s["strongest_limit"]["unit"] == "fb" and set(s["strongest_limit"]["at"]) == {"m", "ctau"}
    assert 0 < s["global"]["p"] < 1 and s["global"]["failed_fits"] == 0
    assert s["coupling"]["masses_with_exclusion"] > 20
    for p in s["plots"]:
        assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
