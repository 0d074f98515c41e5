"""The bundled B → K(*)a(→γγ) lifetime grid (issue 14, item 7): the simulated efficiency table
interpolated onto the grid, an injected signal found where it was put, g_aW limits by root
finding with the lifetime moving with the coupling, and ``jaxlike scan --example
bka-lifetime``."""

from __future__ import annotations

import contextlib
import io
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlike.cli import main
from jaxlike.examples import bka_lifetime_grid
from jaxlike.examples._bka_lifetime import (
    SIM_CTAUS,
    SIM_MASSES,
    kstar_ratio,
    simulated_efficiencies,
    true_efficiency,
)
from jaxlike.scan import counting_grid_scan


@pytest.fixture(scope="module")
def ex():
    return bka_lifetime_grid()


def test_generator(ex):
    assert ex.grid.shape == (39, 19) and [c.name for c in ex.grid.channels] == [
        "K+", "K0S", "K*+", "K*0"
    ]  # fmt: skip
    assert ex.ctaus[0] == pytest.approx(1e-3) and ex.ctaus[-1] == pytest.approx(1e3)
    # the table reproduces its simulated nodes, and the simulation scatters around the truth
    # within its binomial error
    for c, name in enumerate(["K+", "K0S", "K*+", "K*0"]):
        eps = true_efficiency(SIM_MASSES[:, None], SIM_CTAUS[None, :], c)
        sim = np.asarray(ex.table.values[f"eff_{name}"])  # ln ε̂
        mc = np.exp(np.asarray(ex.table.values[f"mc_{name}"]))
        pull = (np.exp(sim) - eps) / (eps * mc)
        assert np.all(np.abs(pull) < 5) and 0.3 < pull.std() < 2.0
        node = ex.table([SIM_MASSES[3], SIM_CTAUS[4]])
        assert float(node[f"eff_{name}"]) == pytest.approx(np.exp(sim[3, 4]), rel=1e-13)
        # interpolated onto the grid: within a few % of the truth where statistics are good
        arr = ex.grid._arrays[name]
        got = arr["efficiency"].reshape(ex.grid.shape)
        truth = true_efficiency(ex.masses[:, None], ex.ctaus[None, :], c)
        err = np.abs(got / truth - 1)
        assert err[:, ex.ctaus <= 10.0].max() < 0.05
        # at long lifetimes few simulated events pass: the MC uncertainty covers the difference
        mc_grid = ex.grid._arrays[name]["signal_uncertainty"].reshape(ex.grid.shape)
        assert np.all(err < 0.05 + 4 * mc_grid)
        # window counts are the spectrum summed in the windows
        on = arr["observed"].reshape(ex.grid.shape)[:, 0]
        np.testing.assert_array_equal(on, ex.window_matrix[name] @ ex.observed[name])
    # the monotone cubic interpolation is closer to the truth than the multilinear one
    points = np.stack(np.meshgrid(ex.masses, ex.ctaus, indexing="ij"), -1).reshape(-1, 2)
    points = points[points[:, 1] <= 10.0]
    truth = true_efficiency(points[:, 0], points[:, 1], 0)
    worst = {}
    for method in ("pchip", "linear"):
        table = simulated_efficiencies(method=method)
        got = np.asarray(jax.vmap(table)(jnp.asarray(points))["eff_K+"])
        worst[method] = np.abs(got / truth - 1).max()
    assert worst["pchip"] < 0.04 < 0.07 < worst["linear"]
    # efficiency falls with the lifetime (decays beyond R = 20 cm), signal uncertainty grows
    eff = ex.grid._arrays["K+"]["efficiency"].reshape(ex.grid.shape)
    assert np.all(np.diff(eff[:, ex.ctaus >= 10.0], axis=1) < 0)  # (short: flat within MC noise)
    assert kstar_ratio(1e-9) == pytest.approx(0.8) and kstar_ratio(4.0) < 0.3
    # lifetime ∝ 1/(g² m³); branching fraction ∝ g²
    assert ex.ctau(2e-5, 1.0) == pytest.approx(ex.ctau(1e-5, 1.0) / 4)
    assert ex.ctau(1e-5, 2.0) == pytest.approx(ex.ctau(1e-5, 1.0) / 8)
    assert ex.branching_fraction(2e-5, 1.0) == pytest.approx(4 * ex.branching_fraction(1e-5, 1.0))


def test_injected_signal_is_found():
    """A prompt signal of B = 1.5 × 10⁻⁶ at m = 2.0 GeV stands out there and the limits around
    it are weaker than elsewhere; at long lifetimes the limits grow as the efficiency falls."""
    ex = bka_lifetime_grid(seed=3, inject=(2.0, 0.01, 1.5))
    sub = ex.grid.select(m=[10, 18, 26], ctau=[2, 15])
    res = counting_grid_scan(sub, method=("cls",), progress=False)
    assert res.converged.all()
    z = res.significance
    assert z[1].min() > 3.0 and np.abs(z[[0, 2]]).max() < 3.0
    assert np.all(res.ul_obs[1, 0, 0] > res.ul_obs[[0, 2], 0, 0])
    assert np.all(res.ul_obs[:, 1, 0] > 3 * res.ul_obs[:, 0, 0])


def test_coupling_limits_solve_the_equation(ex):
    """Edges of the excluded region solve B(g) = UL(cτ(g)) (the limit interpolated log-log in
    cτ); below the shortest lifetime the decay is prompt (the limit there applies) and the
    region is open above, up to the scanned range."""
    # a limit that grows as 1/P(decay within 20 cm) at long lifetimes, as the search's does
    ul = 0.5 / -np.expm1(-20.0 / (2.0 * ex.ctaus)) * np.ones((39, 1))
    iv = ex.coupling_limits(ul)
    lo_end, hi_end = ex.edges_at_grid_end(iv)
    for i in (0, 10, 30):
        m = ex.masses[i]
        lo = float(iv.lower[i, 0])
        assert int(iv.n_intervals[i]) == 1 and bool(iv.open_above[i])
        assert float(iv.upper[i, 0]) == pytest.approx(1e-4) and not hi_end[i, 0]
        lct = np.log(ex.ctau(lo, m))
        if lct > np.log(ex.ctaus[-1]) - 1e-6:
            assert lo_end[i, 0]  # the exclusion starts where the grid's lifetimes end
            continue
        ul_g = np.exp(np.interp(lct, np.log(ex.ctaus), np.log(ul[i])))
        assert ex.branching_fraction(lo, m) / ul_g == pytest.approx(1.0, rel=1e-6)
        assert not lo_end[i, 0]
    with pytest.raises(ValueError, match="shape"):
        ex.coupling_limits(ul[:5])


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_cli_bad_input(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "grid.h5").write_bytes(b"x")
    code, _, err = _cli("scan", "--example", "bka-lifetime", "-o", tmp_path / "c")
    assert code == 2 and "already exists" in err and len(err.strip().splitlines()) == 1
    code, _, err = _cli("scan", "--example", "bka-lifetime", "--poi-max", "3", "-o",
                        tmp_path / "d")  # fmt: skip
    assert code == 2 and "--poi-max" in err


@pytest.mark.slow
def test_cli_full_example(tmp_path):
    """The README command: 741 points × 4 modes, CLs and Bayesian limits, g_aW limits."""
    code, out, _ = _cli("scan", "--example", "bka-lifetime", "--method", "cls", "--method",
                        "bayes", "--lee-toys", "50", "-o", tmp_path, "--json",
                        "--no-progress")  # fmt: skip
    assert code == 0
    s = json.loads(out)
    assert s["points"] == 741 and s["converged_fraction"] == 1.0
    assert s["strongest_limit"]["unit"] == "$10^{-6}$"
    assert s["coupling"]["name"] == "g_aW" and s["coupling"]["masses_with_exclusion"] == 39
    assert 1e-7 < s["coupling"]["min"] < 1e-5
    assert 0 < s["global"]["p"] <= 1 and s["global"]["failed_fits"] == 0
    for p in s["plots"]:
        assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
