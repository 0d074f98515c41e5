"""Mass-dependent systematic widths (issue 15, item 3): ``rel_eff``/``rel_res`` as columns of
the signal tables (e.g. an efficiency systematic growing from 5.5% to 8% towards low mass), per
category, with the scan-wide value where a table has no column."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jaxlike
from jaxlike.exceptions import InvalidScanConfig
from jaxlike.parametric import build_mass_scan, hypothesis_results


def make_config(two_categories=False) -> dict:
    rng = np.random.default_rng(3)
    edges = np.linspace(0.0, 10.0, 2001)
    centers = 0.5 * (edges[1:] + edges[:-1])
    expected = 150.0 * (1.0 - 0.06 * centers)
    table = {"mass": [1.0, 5.0, 9.0], "sigma": [0.05, 0.07, 0.09],
             "rel_eff": [0.08, 0.065, 0.055], "rel_res": [0.04, 0.06, 0.1]}  # fmt: skip
    cfg = {
        "spectrum": {"edges": edges.tolist(), "counts": [rng.poisson(expected).tolist()]},
        "signal": {"shape": "gauss", "tables": [table], "rel_eff": 0.03, "rel_res": 0.05},
        "background": {"kind": "bernstein", "order": 1},
        "window": {"lo": 5.0, "hi": 5.0, "n_bins": 20},
        "scan": {"masses": [3.0, 7.0], "cl": [0.95]},
    }
    if two_categories:
        counts = cfg["spectrum"]["counts"]
        cfg["spectrum"]["counts"] = counts + [rng.poisson(0.5 * expected).tolist()]
        cfg["signal"]["tables"].append({"mass": [1.0, 9.0], "sigma": [0.06, 0.1]})
        cfg["signal"]["conversion"] = [1.0, 0.5]
    return cfg


def test_columns_give_the_width_at_each_mass():
    scan, _, _ = build_mass_scan(make_config(two_categories=True))
    for m in (3.0, 7.0):
        model = scan.window_model(m)
        want_eff = np.interp(m, [1.0, 5.0, 9.0], [0.08, 0.065, 0.055])
        want_res = np.interp(m, [1.0, 5.0, 9.0], [0.04, 0.06, 0.1])
        # category 0 from its column, category 1 the scan-wide widths
        np.testing.assert_allclose(model.rel_eff, [want_eff, 0.03], rtol=1e-14)
        np.testing.assert_allclose(model.rel_res, [want_res, 0.05], rtol=1e-14)


def test_a_column_equals_the_scalar_at_that_mass():
    """At each mass the scan with columns gives exactly the results of a scan whose scalar
    widths are the columns' values there."""
    cfg = make_config()
    scan, masses, cl = build_mass_scan(cfg)
    run = jax.jit(lambda s, m: hypothesis_results(s, m, cl))
    for m in masses:
        flat = make_config()
        t = flat["signal"]["tables"][0]
        flat["signal"]["rel_eff"] = float(np.interp(m, t["mass"], t.pop("rel_eff")))
        flat["signal"]["rel_res"] = float(np.interp(m, t["mass"], t.pop("rel_res")))
        scan1, _, _ = build_mass_scan(flat)
        a, b = run(scan, m), run(scan1, m)
        for key in ("mu_hat", "significance", "ul_obs", "ul_exp"):
            np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), rtol=1e-12,
                                       err_msg=key)  # fmt: skip
        assert bool(a["fit_converged"]) and bool(np.all(a["limit_converged"]))


def test_nuisances_exist_when_only_columns_are_given():
    cfg = make_config()
    cfg["signal"]["rel_eff"] = 0.0
    cfg["signal"]["rel_res"] = 0.0
    scan, _, _ = build_mass_scan(cfg)
    assert scan.has_eff and scan.has_res
    names = scan.window_model(3.0).config.par_names
    assert "theta_eff" in names and "theta_res" in names


@pytest.mark.parametrize(
    "col, values",
    [("rel_eff", [0.1, 1.0, 0.1]), ("rel_res", [-0.1, 0.1, 0.1]), ("rel_eff", [0.1, 0.1])],
)
def test_bad_columns(col, values):
    cfg = make_config()
    cfg["signal"]["tables"][0][col] = values
    with pytest.raises(InvalidScanConfig, match=rf"signal\.tables\[0\]\.{col}"):
        build_mass_scan(cfg)


def test_per_category_nuisances():
    """``signal.uncorrelated``: one θ_ε and one θ_σ per category. With every θ_c equal to the
    shared θ the expected counts equal the correlated model's and the log-likelihood differs by
    the extra unit-Gaussian constraint terms only; with one category the scan is the same."""
    cfg = make_config(two_categories=True)
    corr, _, cl = build_mass_scan(cfg)
    cfg["signal"]["uncorrelated"] = True
    unc, _, _ = build_mass_scan(cfg)
    m = 3.0
    wc, wu = corr.window_model(m), unc.window_model(m)
    names = wu.config.par_names
    assert names[-4:] == ["theta_eff_0", "theta_eff_1", "theta_res_0", "theta_res_1"]
    assert wu.config.nauxdata == 4 and wc.config.nauxdata == 2
    rng = np.random.default_rng(0)
    for _ in range(3):
        pc = np.asarray(wc.config.suggested_init(), float).copy()
        pc[0] = 40.0
        pc[-2:] = rng.normal(size=2) * 1.5  # θ_ε, θ_σ (also beyond |θ| = 1: code 4p's tails)
        pu = np.concatenate([pc[:-2], np.repeat(pc[-2:], 2)])
        np.testing.assert_allclose(wu.expected_actualdata(pu), wc.expected_actualdata(pc),
                                   rtol=1e-14)  # fmt: skip
        extra = -0.5 * np.sum(pc[-2:] ** 2) - np.log(2 * np.pi)  # two more unit Gaussians
        du, dc = wu.make_data(), wc.make_data()
        assert float(wu.logpdf(pu, du)) == pytest.approx(float(wc.logpdf(pc, dc)) + extra,
                                                          rel=1e-13)  # fmt: skip
        # the categories move apart: θ_ε,1 alone changes category 1 only
        pv = pu.copy()
        pv[names.index("theta_eff_1")] += 1.0
        diff = (wu.expected_actualdata(pv) - wu.expected_actualdata(pu)).reshape(2, -1)
        assert np.all(diff[0] == 0) and np.any(diff[1] != 0)
    # more freedom, never a worse fit; the per-category model's results are complete
    ru = jax.jit(lambda s, x: hypothesis_results(s, x, cl))(unc, m)
    assert bool(ru["fit_converged"]) and bool(np.all(ru["limit_converged"]))
    assert np.all(np.isfinite(np.asarray(ru["ul_exp"]))) and float(ru["ul_obs"][0]) > 0
    fit_c = jaxlike.fit(wc, wc.make_data())
    fit_u = jaxlike.fit(wu, wu.make_data())
    # (2NLL counts each unit Gaussian's normalisation, log 2π; two more of them)
    assert float(fit_u.twice_nll) - 2 * np.log(2 * np.pi) <= float(fit_c.twice_nll) + 1e-7
    # one category: the same likelihood, whatever the switch
    one = make_config()
    a = build_mass_scan(one)[0].window_model(7.0)
    one["signal"]["uncorrelated"] = True
    b = build_mass_scan(one)[0].window_model(7.0)
    assert b.config.par_names[-2:] == ["theta_eff_0", "theta_res_0"]
    p = np.asarray(a.config.suggested_init(), float).copy()
    p[0], p[-2:] = 25.0, (0.7, -1.3)
    assert float(a.logpdf(p, a.make_data())) == float(b.logpdf(p, b.make_data()))
    bad = make_config()
    bad["signal"]["uncorrelated"] = 1
    with pytest.raises(InvalidScanConfig) as err:
        build_mass_scan(bad)
    assert err.value.path == "signal.uncorrelated"


def _comb_config(templates, masses=None, mode=None):
    """make_config with a combinatorial fraction of 30% and the given comb template(s)."""
    cfg = make_config()
    cfg["signal"]["tables"][0]["comb_fraction"] = [0.3, 0.3, 0.3]
    cfg["spectrum"]["comb"] = templates
    if masses is not None:
        cfg["signal"]["comb_masses"] = masses
    if mode is not None:
        cfg["signal"]["comb_interpolation"] = mode
    return cfg


def test_mass_dependent_combinatorial_templates():
    """``spectrum.comb`` [C, S, N] at ``signal.comb_masses``: the nearest template, or the two
    neighbours mixed linearly in m (each normalised in the window), equal to the single-template
    model of that template (or the mixture of two such models)."""
    x = np.linspace(0.0, 10.0, 2001)
    c = 0.5 * (x[1:] + x[:-1])
    t0 = np.exp(-0.5 * ((c - 2.5) / 0.6) ** 2)  # broad bump following the mass
    t1 = np.exp(-0.5 * ((c - 6.5) / 0.9) ** 2) + 0.05
    one = lambda t: build_mass_scan(_comb_config([t.tolist()]))[0]  # noqa: E731
    u0, u1 = one(t0), one(t1)
    for mode in ("linear", "nearest"):
        scan, _, _ = build_mass_scan(_comb_config([[t0.tolist(), t1.tolist()]], [2.0, 6.0], mode))
        assert scan.comb_mode == mode
        for m, w in ((1.5, 0.0), (3.0, 0.25), (5.0, 0.75), (7.0, 1.0)):
            if mode == "nearest":
                w = float(w > 0.5)
            a, b0, b1 = (s.window_model(m) for s in (scan, u0, u1))
            np.testing.assert_allclose(a.sig_nom, (1 - w) * b0.sig_nom + w * b1.sig_nom,
                                       rtol=1e-13, atol=1e-16, err_msg=f"{mode} {m}")  # fmt: skip
            np.testing.assert_allclose(a.sig_up, (1 - w) * b0.sig_up + w * b1.sig_up,
                                       rtol=1e-13, atol=1e-16)  # fmt: skip
    # one simulated mass: the single-template model, bit for bit
    single, _, _ = build_mass_scan(_comb_config([[t0.tolist()]], [4.0]))
    assert np.array_equal(single.window_model(3.0).sig_nom, u0.window_model(3.0).sig_nom)
    # and a scan runs through it (traced mass, vmapped)
    scan, masses, cl = build_mass_scan(_comb_config([[t0.tolist(), t1.tolist()]], [2.0, 6.0]))
    res = jax.jit(jax.vmap(lambda m: hypothesis_results(scan, m, cl)))(masses)
    assert np.all(np.asarray(res["fit_converged"])) and np.all(np.asarray(res["limit_converged"]))
    bad = [
        (_comb_config([[t0.tolist(), t1.tolist()]]), "signal.comb_masses"),
        (_comb_config([[t0.tolist(), t1.tolist()]], [2.0]), "signal.comb_masses"),
        (_comb_config([[t0.tolist(), t1.tolist()]], [6.0, 2.0]), "signal.comb_masses"),
        (_comb_config([t0.tolist()], [2.0]), "signal.comb_masses"),
        (_comb_config([[t0.tolist(), t1.tolist()]], [2.0, 6.0], "cubic"),
         "signal.comb_interpolation"),
    ]  # fmt: skip
    for cfg, path in bad:
        with pytest.raises(InvalidScanConfig) as err:
            build_mass_scan(cfg)
        assert err.value.path == path, err.value
