"""The ABCD background method of counting channels (counting_workspace and CountingGrid):
closed forms and an independent 4-Poisson maximisation, pyhf parity, grids with an ABCD
channel beside a sideband and a plain channel, and bad input."""

from __future__ import annotations

import json

import jax
import numpy as np
import pyhf
import pytest
from scipy import optimize, stats

import jaxlike
from jaxlike.exceptions import InvalidScanConfig, InvalidWorkspace
from jaxlike.fit import fixed_poi_fit
from jaxlike.infer import hypotest, upper_limit
from jaxlike.scan import (
    CountingGrid,
    GridAxis,
    GridChannel,
    counting_grid_models,
    counting_grid_scan,
    counting_grid_to_dict,
    counting_grid_toys,
    load_counting_grid,
    local_significance,
    window_sampler,
)
from jaxlike.scan._counting_grid import _picker
from jaxlike.workspace import counting_workspace

# -- closed form and an independent maximisation of the 4-Poisson likelihood -------------------


def _abcd_model(n_a, n_ctl, s=1.0, **extra):
    spec = counting_workspace(
        [{"name": "sr", "observed": n_a, "signal": s, "abcd_observed": list(n_ctl), **extra}]
    )
    ws = jaxlike.Workspace(spec)
    model = ws.model()
    return spec, model, ws.data(model)


def _bounds(spec):
    return {p["name"]: p["bounds"][0] for p in spec["measurements"][0]["config"]["parameters"]}


def _two_nll(x, n, b, s):
    """−2 ln L of the four regions (exact Poisson logpmf), x = (μ, k_D, k_B, k_C)."""
    mu, kd, kb, kc = x
    nu = np.array([mu * s + kd * kb * kc * b[0], kd * kb * b[1], kd * kc * b[2], kd * b[3]])
    return -2.0 * float(np.sum(stats.poisson.logpmf(n, nu)))


def _two_nll_grad(x, n, b, s):
    mu, kd, kb, kc = x
    nu = np.array([mu * s + kd * kb * kc * b[0], kd * kb * b[1], kd * kc * b[2], kd * b[3]])
    with np.errstate(divide="ignore", invalid="ignore"):  # ν = 0 < n: an infinite slope
        g = 2.0 * (1.0 - np.divide(n, nu, out=np.zeros(4), where=n > 0))  # d(−2 ln L)/dν
    jac = np.array([
        [s, kb * kc * b[0], kd * kc * b[0], kd * kb * b[0]],
        [0.0, kb * b[1], kd * b[1], 0.0],
        [0.0, kc * b[2], 0.0, kd * b[2]],
        [0.0, b[3], 0.0, 0.0],
    ])  # fmt: skip
    with np.errstate(invalid="ignore"):
        return g @ jac


def _scipy_min(n, b, s, bounds, mu_fixed=None, seed=0):
    """Bounded L-BFGS-B from several starts (tight tolerances), the lowest −2 ln L."""
    rng = np.random.default_rng(seed)
    bnds = [tuple(v) for v in bounds]
    if mu_fixed is not None:
        bnds[0] = (mu_fixed, mu_fixed)
    starts = [np.ones(4)] + [rng.uniform(0.2, 3.0, 4) for _ in range(6)]
    best = None
    for x0 in starts:
        x0 = np.clip(x0, [lo for lo, _ in bnds], [hi for _, hi in bnds])
        r = optimize.minimize(
            _two_nll, x0, args=(n, b, s), jac=_two_nll_grad, method="L-BFGS-B", bounds=bnds,
            options={"ftol": 1e-16, "gtol": 1e-12, "maxiter": 20000, "maxfun": 50000},
        )  # fmt: skip
        if best is None or r.fun < best.fun:
            best = r
    return best.fun, best.x


CASES = [
    (20, 6, 8, 4),  # excess: μ̂ > 0, background of A = n_B n_C / n_D
    (3, 6, 8, 4),  # deficit: μ̂ = 0 on its bound
    (0, 5, 3, 2),  # no event in A
    (9, 0, 4, 3),  # no event in B: k_B = 0 on its bound
    (4, 3, 2, 0),  # no event in D (μ̂ = 0)
]


@pytest.mark.parametrize("counts", CASES)
def test_abcd_closed_form_and_independent_q0(counts):
    n = np.asarray(counts, float)
    n_a, n_b, n_c, n_d = n
    s = 1.3
    spec, model, data = _abcd_model(n_a, n[1:], s=s)
    names = list(model.config.par_names)
    assert sorted(names) == ["mu", "sr_abcd_kB", "sr_abcd_kC", "sr_abcd_kD"]
    b_ctl = np.maximum(n[1:], 0.5)  # the documented default nominal
    b = np.array([b_ctl[0] * b_ctl[1] / b_ctl[2], *b_ctl])
    assert spec["channels"][0]["samples"][1]["data"] == [pytest.approx(b[0], rel=1e-15)]
    free = jaxlike.fit(model, data)
    null = fixed_poi_fit(model, data, 0.0)
    assert bool(free.converged) and bool(null.converged)

    def split(res):
        x = dict(zip(names, np.asarray(res.bestfit), strict=True))
        bkg = x["sr_abcd_kD"] * x["sr_abcd_kB"] * x["sr_abcd_kC"] * b[0]
        return x["mu"], bkg

    mu_hat, bkg_hat = split(free)
    if n_a * n_d > n_b * n_c:  # the classic ABCD estimate: background of A = n_B n_C / n_D
        np.testing.assert_allclose(bkg_hat, n_b * n_c / n_d, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(mu_hat * s, n_a - n_b * n_c / n_d, rtol=1e-7, atol=1e-9)
    else:  # μ̂ = 0: the independence fit of the 2×2 table
        assert mu_hat == pytest.approx(0.0, abs=1e-9)
    tot = n.sum()
    _, bkg0 = split(null)
    np.testing.assert_allclose(bkg0, (n_a + n_b) * (n_a + n_c) / tot, rtol=1e-7, atol=1e-9)
    # independent: the explicit 4-Poisson likelihood maximised by scipy
    bd = _bounds(spec)
    bounds = [bd["mu"], bd["sr_abcd_kD"], bd["sr_abcd_kB"], bd["sr_abcd_kC"]]
    f_free, _ = _scipy_min(n, b, s, bounds)
    f_null, _ = _scipy_min(n, b, s, bounds, mu_fixed=0.0)
    # jaxlike's 2NLL differences against the exact-logpmf ones
    q0_ours = float(null.twice_nll - free.twice_nll)
    assert abs(q0_ours - (f_null - f_free)) <= 1e-6
    x_free = dict(zip(names, np.asarray(free.bestfit), strict=True))
    x = [x_free[k] for k in ("mu", "sr_abcd_kD", "sr_abcd_kB", "sr_abcd_kC")]
    assert abs(_two_nll(x, n, b, s) - f_free) <= 1e-6


# -- pyhf parity -------------------------------------------------------------------------------


def _parity_spec():
    return counting_workspace(
        [
            {"name": "sr", "observed": 14, "signal": 2.0, "abcd_observed": [9, 12, 10],
             "abcd_background": [8.5, 11.0, 9.5], "abcd_closure_uncertainty": 0.15,
             "abcd_signal_fraction": [0.1, 0.05, 0.0], "signal_uncertainty": 0.1},
            {"name": "onoff", "observed": 3, "signal": 1.0, "background": 1.2,
             "sideband_observed": 25, "transfer_factor": 20.0},
            {"name": "plain", "observed": 2, "signal": 0.5, "background": 1.0,
             "background_uncertainty": 0.3},
        ],
        poi_bounds=(0.0, 20.0),
    )  # fmt: skip


def test_pyhf_parity():
    spec = _parity_spec()
    pm = pyhf.Workspace(spec).model()
    pdata = np.asarray(pyhf.Workspace(spec).data(pm))
    ws = jaxlike.Workspace(spec)
    model = ws.model()
    data = ws.data(model)
    assert list(model.config.par_names) == list(pm.config.par_names)
    np.testing.assert_array_equal(np.asarray(data), pdata)
    lo, hi = np.asarray(pm.config.suggested_bounds()).T
    rng = np.random.default_rng(7)
    for _ in range(5):
        x = lo + (np.minimum(hi, lo + 4.0) - lo) * rng.uniform(0.05, 0.95, lo.size)
        ref = float(pm.logpdf(x, pdata)[0])
        ours = float(model.logpdf(x, data))
        assert abs(ours - ref) <= 1e-10 * max(1.0, abs(ref)), (x, ours, ref)
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-10))
    try:
        best = pyhf.infer.mle.fit(pdata, pm)
    finally:
        pyhf.set_backend("numpy")
    ours = jaxlike.fit(model, data)
    assert bool(ours.converged)
    two_nll = [-2.0 * float(model.logpdf(np.asarray(p), data)) for p in (ours.bestfit, best)]
    assert abs(two_nll[0] - two_nll[1]) <= 1e-6, two_nll
    assert abs(two_nll[0] - float(ours.twice_nll)) <= 1e-9 * abs(two_nll[0])


# -- grids -------------------------------------------------------------------------------------

LUMI = 50.0


def _grid():
    """2 masses × 2 lifetimes: an ABCD channel (no event in B at m = 2, a closure uncertainty,
    signal contamination), a sideband channel and a plain channel."""
    eff = 0.02 * np.array([[1.0, 0.6], [0.8, 0.5]])
    return CountingGrid(
        axes=[GridAxis("m", [1.0, 2.0], "GeV"), GridAxis("ctau", [0.5, 5.0], "cm", log=True)],
        channels=[
            GridChannel(
                "abcd",
                observed=np.array([[9.0], [1.0]]),
                efficiency=eff,
                abcd_observed_b=np.array([[6.0], [0.0]]),
                abcd_observed_c=8.0,
                abcd_observed_d=np.array([[4.0], [3.0]]),
                abcd_closure_uncertainty=0.2,
                abcd_signal_fraction_b=0.05,
                abcd_signal_fraction_c=0.0,
                abcd_signal_fraction_d=0.01,
            ),
            GridChannel(
                "mumu",
                observed=2.0,
                efficiency=eff,
                background=1.5,
                sideband_observed=np.array([[30.0], [0.0]]),
                transfer_factor=20.0,
                transfer_factor_uncertainty=0.1,
            ),
            GridChannel(
                "pipi",
                observed=1.0,
                efficiency=0.5 * eff,
                background=0.8,
                background_uncertainty=0.2,
            ),
        ],  # fmt: skip
        luminosity=LUMI,
        poi_unit="fb",
    )


@pytest.fixture(scope="module")
def grid():
    return _grid()


def _physics_workspace(grid, h):
    chans = grid.channel_dicts(h)
    acc = grid.acceptance()[h]
    for c in chans:
        c["signal"] *= acc
    return counting_workspace(chans, poi_name="sigma", poi_bounds=(0.0, 2000.0))


@pytest.mark.slow
def test_grid_scan_equals_each_point_workspace(grid):
    """``counting_grid_scan`` limits and significances at every point equal the point's own
    workspace's (POI in physics units). Slow (the scan compiles for ~40 s on a shared CPU);
    :func:`test_grid_models_equal_each_point_workspace` covers the same layout quickly."""
    scanned = counting_grid_scan(grid, method=("cls",), cl=(0.95,), progress=False)
    assert scanned.converged.all()
    for h in range(grid.size):
        i, j = np.unravel_index(h, grid.shape)
        ws = jaxlike.Workspace(_physics_workspace(grid, h))
        model = ws.model()
        data = ws.data(model)
        ul = upper_limit(data, model, cl=[0.95])
        np.testing.assert_allclose(scanned.ul_obs[i, j], np.ravel(ul.obs), rtol=2e-6)
        np.testing.assert_allclose(scanned.ul_exp[i, j], np.reshape(ul.exp, (1, 5)), rtol=2e-6)
        z, ok = local_significance(model, data)
        assert bool(ok)
        np.testing.assert_allclose(scanned.significance[i, j], float(z), rtol=1e-7, atol=1e-7)


def test_grid_models_equal_each_point_workspace(grid):
    """The stacked model of every grid point (the one every grid method runs on) is the point's
    own workspace: the same channels, logpdf, CLs at one signal and local significance."""
    stacked, data, acc = counting_grid_models(grid)
    pick = _picker(stacked)
    assert [c["name"] for c in grid.workspace(0)["channels"]] == [
        "abcd", "abcd_abcd_B", "abcd_abcd_C", "abcd_abcd_D", "mumu", "mumu_sideband", "pipi",
    ]  # fmt: skip
    rng = np.random.default_rng(3)
    for h in (0, 3):  # m = 2 has no event in B
        ws = jaxlike.Workspace(grid.workspace(h))
        model = ws.model()
        own = ws.data(model)
        mine = pick(h)
        np.testing.assert_array_equal(np.asarray(data[h]), np.asarray(own))
        assert list(model.config.par_names) == list(stacked.config.par_names)
        lo, hi = np.asarray(model.config.suggested_bounds()).T
        for _ in range(3):
            x = lo + (np.minimum(hi, lo + 4.0) - lo) * rng.uniform(0.05, 0.95, lo.size)
            np.testing.assert_allclose(
                float(mine.logpdf(x, data[h])), float(model.logpdf(x, own)), rtol=1e-12
            )
        mu = 3.0  # signal events
        ref_obs, ref_exp = hypotest(mu, own, model)
        got_obs, got_exp = hypotest(mu, data[h], mine)
        np.testing.assert_allclose(float(got_obs), float(ref_obs), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(np.ravel(got_exp), np.ravel(ref_exp), rtol=1e-6, atol=1e-9)
        z_ref, _ = local_significance(model, own)
        z, ok = local_significance(mine, data[h])
        assert bool(ok)
        np.testing.assert_allclose(float(z), float(z_ref), rtol=1e-7, atol=1e-7)


def test_grid_round_trip_and_select(grid):
    d = counting_grid_to_dict(grid)
    back = load_counting_grid(json.loads(json.dumps(d)))
    for c in grid.channels:
        assert back._arrays[c.name].keys() == grid._arrays[c.name].keys()
        for k, v in grid._arrays[c.name].items():
            np.testing.assert_array_equal(back._arrays[c.name][k], v)
    assert "background" not in d["counting_grid"]["channels"][0]
    for h in range(grid.size):
        assert back.workspace(h) == grid.workspace(h)
    sub = grid.select(m=[1])
    assert sub.workspace(1) == grid.workspace(3)
    bad = json.loads(json.dumps(d))
    bad["counting_grid"]["channels"][0]["abcd_observed_e"] = 1.0
    with pytest.raises(InvalidScanConfig, match="abcd_observed_e"):
        load_counting_grid(bad)


def test_grid_toys(grid):
    """Background-only toys draw the control regions from their expectations, and each toy's
    local significances are those of the points' workspaces with the toy's counts (so the
    control counts land in their own bins)."""
    sample = window_sampler(grid)
    keys = jax.random.split(jax.random.key(5), 4000)
    draws = jax.vmap(sample)(keys)
    n_ctl = np.stack([np.asarray(v) for v in draws["abcd"][2]])  # [3, T, H]
    a = grid._arrays["abcd"]
    expect = np.maximum(np.stack([a["abcd_observed_" + x] for x in "bcd"]), 0.5)
    mean = n_ctl.mean(axis=1)
    assert np.all(np.abs(mean - expect) <= 5 * np.sqrt(expect / keys.shape[0])), (mean, expect)
    on = np.asarray(draws["abcd"][0]).mean(axis=0)
    b_a = expect[0] * expect[1] / expect[2]
    assert np.all(np.abs(on - b_a) <= 5 * np.sqrt(b_a / keys.shape[0]))
    assert draws["mumu"][1] is not None and len(draws["pipi"]) == 2

    t = counting_grid_toys(grid, 3, seed=2, return_maps=True, progress=False)
    assert t.z.shape == (3, 2, 2) and t.n_failed.sum() == 0 and np.all(np.isfinite(t.z))
    # toy 0 again by hand: its counts (control regions included) in each point's workspace
    counts = sample(jax.random.fold_in(jax.random.key(2), 0))
    counts = {k: jax.tree_util.tree_map(np.asarray, v) for k, v in counts.items()}
    for h in sorted({0, int(np.argmax(t.z[0]))}):
        spec = counting_workspace(grid.channel_dicts(h, counts), poi_name="signal_events",
                                  keep_zero_uncertainties=True)  # fmt: skip
        assert spec["observations"][1:4] == [
            {"name": f"abcd_abcd_{x}", "data": [float(v[h])]}
            for x, v in zip("BCD", counts["abcd"][2], strict=True)
        ]
        ws = jaxlike.Workspace(spec)
        model = ws.model()
        z, _ = local_significance(model, ws.data(model))
        np.testing.assert_allclose(t.z[0].reshape(-1)[h], float(z), rtol=1e-6, atol=1e-6)


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, where, what",
    [
        ({"abcd_observed": [1, -2, 3]}, "abcd_observed", "non-negative"),
        ({"abcd_observed": [1, 2]}, "abcd_observed", "3 numbers"),
        ({"abcd_observed": [1, 2, 3], "abcd_background": [1, 0, 1]}, "abcd_background",
         "positive"),
        ({"abcd_observed": [1, 2, 3], "sideband_observed": 4, "transfer_factor": 2.0},
         "sideband_observed", "not both"),
        ({"abcd_observed": [1, 2, 3], "background_uncertainty": 0.2}, "background_uncertainty",
         "abcd_closure_uncertainty"),
        ({"abcd_observed": [1, 2, 3], "background": 5.0}, "background", "b_B b_C / b_D"),
        ({"abcd_closure_uncertainty": 0.1}, "channels[0]", "abcd_observed"),
        ({"abcd_observed": [1, 2, 3], "abcd_signal_fraction": [0.1, -1, 0]},
         "abcd_signal_fraction", "non-negative"),
    ],
)  # fmt: skip
def test_bad_abcd_channels_name_the_field(extra, where, what):
    ch = {"name": "sr", "observed": 3, "signal": 1.0, **extra}
    with pytest.raises(InvalidWorkspace) as e:
        counting_workspace([ch])
    assert where in str(e.value) and what in str(e.value)


def test_abcd_background_consistent_and_names_taken():
    ch = {"name": "sr", "observed": 3, "signal": 1.0, "abcd_observed": [2, 6, 4]}
    ws = counting_workspace([ch | {"background": 3.0}])
    assert ws == counting_workspace([ch])
    with pytest.raises(InvalidWorkspace, match="sr_abcd_C"):
        counting_workspace([ch, {"name": "sr_abcd_C", "observed": 1, "signal": 1.0,
                                 "background": 1.0}])  # fmt: skip


def test_bad_abcd_grids():
    ax = [GridAxis("m", [1.0, 2.0])]
    base = {"observed": 1.0, "efficiency": 1.0}
    abcd = {"abcd_observed_b": 1.0, "abcd_observed_c": 2.0, "abcd_observed_d": 3.0}
    cases = [
        ({**abcd, "abcd_observed_c": [1.0, -1.0]}, "abcd_observed_c", "non-negative"),
        ({"abcd_observed_b": 1.0, "abcd_observed_c": 2.0}, "abcd_observed_d", "all three"),
        ({**abcd, "sideband_observed": 2.0, "transfer_factor": 3.0}, "sideband_observed",
         "not both"),
        ({**abcd, "background_uncertainty": 0.1}, "background_uncertainty", "closure"),
        ({**abcd, "background": 9.0}, "background", "b_B b_C / b_D"),
        ({**abcd, "abcd_background_b": 0.0, "abcd_background_c": 1.0,
          "abcd_background_d": 1.0}, "abcd_background_b", "positive"),
        ({"abcd_closure_uncertainty": 0.1, "background": 1.0}, "abcd_closure_uncertainty",
         "abcd_observed_b"),
        ({}, "background", "required"),
        ({**abcd, "abcd_observed_b": [1.0, 2.0, 3.0]}, "abcd_observed_b", "broadcast"),
    ]  # fmt: skip
    for kw, where, what in cases:
        with pytest.raises(InvalidScanConfig) as e:
            CountingGrid(ax, [GridChannel("a", **base, **kw)])
        assert where in str(e.value) and what in str(e.value), (kw, str(e.value))
    # an unknown key in a grid file names it
    g = CountingGrid(ax, [GridChannel("a", **base, **abcd)])
    d = counting_grid_to_dict(g)
    d["counting_grid"]["channels"][0]["abcd_obsreved_b"] = 1.0
    with pytest.raises(InvalidScanConfig, match="abcd_obsreved_b"):
        load_counting_grid(d)
    ok = json.loads(json.dumps(counting_grid_to_dict(g)))
    assert load_counting_grid(ok).workspace(0) == g.workspace(0)
