"""Background-model envelopes (issue 15, item 1): several background models per mass
hypothesis in one compiled call, combined by discrete profiling (min 2NLL + c·k) or by the
conservative rule (smallest Z, least stringent limit).

- one model: today's scan bit for bit (both methods, from the config and the API);
- two identical models: the single model; a huge or zero penalty: the model it selects;
- profiling certified by hand: Z from independent fits of each model, and CLs(μ_UL) = α
  recomputed from independent conditional fits of every model at the limit;
- conservative: the per-model extremes;
- coverage: toys from one member of the family with a signal injected, the envelope's
  one-sided (CLs+b) limits cover it at 95% within the Monte-Carlo error;
- bad configurations name the field; the CLI writes the chosen model per mass.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

import jaxlike
from jaxlike.cli import main
from jaxlike.cli._scan_summary import summary_text
from jaxlike.exceptions import InvalidScanConfig
from jaxlike.parametric import (
    background_envelope,
    build_mass_scan,
    envelope_results,
    hypothesis_results,
    scan_rule,
    spurious_signal,
)
from jaxlike.scan import mass_scan, read_results, scan_toys

CL = (0.95,)


def make_config() -> dict:
    """A falling, curved spectrum (quadratic in m) with a small bump at 6: the low orders
    misfit it in wide windows, the higher orders do not."""
    rng = np.random.default_rng(11)
    edges = np.linspace(0.0, 10.0, 1001)
    c = 0.5 * (edges[1:] + edges[:-1])
    expected = 60.0 * (1.0 - 0.15 * c + 0.008 * c * c)
    expected += 25.0 * np.exp(-0.5 * ((c - 6.0) / 0.08) ** 2)
    return {
        "spectrum": {"edges": edges.tolist(), "counts": [rng.poisson(expected).tolist()]},
        "signal": {"shape": "gauss", "tables": [{"mass": [1.0, 9.0], "sigma": [0.06, 0.1]}],
                   "rel_eff": 0.05},  # fmt: skip
        "background": {"kind": "bernstein", "order": 2},
        "window": {"lo": 8.0, "hi": 8.0, "n_bins": 24},
        "scan": {"masses": [3.0, 6.0], "cl": [0.95]},
    }


def variant(**background):
    cfg = make_config()
    cfg["background"] = background
    return build_mass_scan(cfg)[0]


@pytest.fixture(scope="module")
def models():
    """bernstein 1, 2 and chebyshev 2 over the same window."""
    return [variant(kind="bernstein", order=o) for o in (1, 2)] + [
        variant(kind="chebyshev", order=2)
    ]


# one compiled function per envelope (or model) structure, CL levels and rule, shared by tests
_envelope = jax.jit(envelope_results, static_argnums=(2,), static_argnames=("rule",))
_single = jax.jit(hypothesis_results, static_argnums=(2,), static_argnames=("rule",))


def run(env, m, rule="cls"):
    return _envelope(env, m, CL, rule=rule)


def one(scan, m, rule="cls"):
    return _single(scan, m, CL, rule=rule)


MASSES = (3.0, 6.0)
#: the common part of a scan summary (for rendering summary rows)
SUMMARY = {"output": "scan.h5", "coordinate": "mass", "hypotheses": 2, "computed": 2,
           "resumed": 0, "seconds": 1.0, "compute_seconds": 1.0, "hypotheses_per_second": 2.0,
           "not_converged": {"count": 0, "first": []}, "converged_fraction": 1.0}  # fmt: skip


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_one_model_is_todays_scan_bit_for_bit(tmp_path):
    """An envelope of one model, from a config through the CLI, writes today's scan of that
    model bit for bit (both methods take the same path with one model: envelope_results)."""
    single, masses, cl = build_mass_scan(make_config())
    want = mass_scan(single, masses, cl=cl, progress=False)
    cfg = make_config() | {"envelope": {"method": "conservative", "models": [{"order": 2}]}}
    (tmp_path / "env.json").write_text(json.dumps(cfg))
    code, out, err = _cli("scan", tmp_path / "env.json", "-o", tmp_path / "e.h5", "--json",
                          "--no-progress")  # fmt: skip
    assert code == 0, err
    s = json.loads(out)["envelope"]
    one_model = {"bernstein2": 2}
    assert s == {"method": "conservative", "penalty": 1.0, "models": ["bernstein2"],
                 "chosen_for_z": one_model, "chosen_for_limit": one_model}  # fmt: skip
    _, got, attrs = read_results(tmp_path / "e.h5")
    for key in want.keys():
        assert np.array_equal(want[key], got[key], equal_nan=True), key
    assert np.all(got["bkg_model"] == 0) and np.all(got["bkg_model_limit"] == 0)
    assert attrs["bkg_models"] == ["bernstein2"] and attrs["envelope_method"] == "conservative"
    for method in ("profile", "conservative"):  # the API builds the same
        env, m2, cl2 = build_mass_scan(make_config() | {"envelope": {"method": method,
                                                        "models": [{"order": 2}]}})  # fmt: skip
        assert env.names == ("bernstein2",) and list(m2) == list(masses) and cl2 == cl
        assert env.method == method and len(env.models) == 1
    # the text summary names the envelope; a bad model is one error line, nothing written
    code, out, err = _cli("scan", tmp_path / "env.json", "-o", tmp_path / "e.h5", "--resume")
    assert code == 0 and "background envelope" in out and "chosen for the limit" in out
    # scan.rule: the config's limit rule (one-sided clsb here) is part of the scan's identity,
    # so the CLs file is not resumed under it; --rule overrides the config
    one_sided = copy.deepcopy(cfg)
    one_sided["scan"]["rule"] = "clsb"
    assert scan_rule(one_sided) == "clsb" and scan_rule(cfg) == "cls"
    (tmp_path / "clsb.json").write_text(json.dumps(one_sided))
    code, _, err = _cli("scan", tmp_path / "clsb.json", "-o", tmp_path / "e.h5", "--resume")
    assert code == 2 and "rule" in err and len(err.strip().splitlines()) == 1, err
    code, out, err = _cli("scan", tmp_path / "clsb.json", "-o", tmp_path / "e.h5", "--resume",
                          "--rule", "cls", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["rule"] == "cls", err
    one_sided["scan"]["rule"] = "cl"
    (tmp_path / "clsb.json").write_text(json.dumps(one_sided))
    code, _, err = _cli("scan", tmp_path / "clsb.json", "-o", tmp_path / "r.h5")
    assert code == 2 and "scan.rule" in err and "clsb" in err, err
    # --spurious: the family's spurious-signal table in the summary (one model: its own shape)
    code, out, err = _cli("scan", tmp_path / "env.json", "-o", tmp_path / "e.h5", "--resume",
                          "--spurious", "--json", "--no-progress")  # fmt: skip
    assert code == 0, err
    (sp,) = json.loads(out)["spurious"]
    assert sp["models"] == ["bernstein2"] and sp["converged"]
    (row,) = sp["table"]
    assert row["truth"] == row["fit"] == "bernstein2" and row["max_abs_ratio"] < 1e-3
    (tmp_path / "plain.json").write_text(json.dumps(make_config()))
    for config, field in (("plain.json", "[envelope]"), ("bad.json", "envelope.models[1]")):
        if config == "bad.json":
            narrow = copy.deepcopy(cfg)
            narrow["envelope"] = {"method": "conservative",
                                  "models": [{"order": 2}, {"order": 1, "lo": 3.0}]}  # fmt: skip
            (tmp_path / config).write_text(json.dumps(narrow))
        code, _, err = _cli("scan", tmp_path / config, "-o", tmp_path / "s.h5", "--spurious")
        assert code == 2 and field in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "s.h5").exists()
    bad = copy.deepcopy(cfg)
    bad["envelope"] = {"models": [{"order": 2}, {"order": 1, "lo": 3.0}]}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    code, _, err = _cli("scan", tmp_path / "bad.json", "-o", tmp_path / "u.h5")
    assert code == 2 and "envelope.models[1]" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "u.h5").exists()


def test_extreme_penalties_select_one_model(models):
    m = 6.0
    # chebyshev 1 is nested in chebyshev 2 (c_2 = 0): without a penalty the larger model wins
    # every fit; with a huge one the smaller model is the envelope
    small, big = variant(kind="chebyshev", order=1), models[2]
    for penalty, j in ((1e6, 0), (0.0, 1)):
        got = run(background_envelope([small, big], penalty=penalty), m)
        want = one((small, big)[j], m)
        assert int(got["bkg_model"]) == j and int(got["bkg_model_null"]) == j
        for key in ("mu_hat", "significance", "ul_obs", "ul_exp"):
            np.testing.assert_allclose(got[key], want[key], rtol=2e-6, atol=1e-9,
                                       err_msg=f"{penalty} {key}")  # fmt: skip


def _cls(q, qa, rule="cls"):
    """Asymptotic CLs (or CLs+b) of q̃μ (Cowan et al. 2011, eq. 66)."""
    sq, sqa = np.sqrt(q), np.sqrt(qa)
    t = sq - sqa if sq <= sqa else (q - qa) / (2 * sqa)
    clsb, clb = norm.cdf(-(t + sqa)), norm.cdf(-t)
    return clsb if rule == "clsb" else clsb / clb


@pytest.mark.parametrize("rule", ["cls", pytest.param("clsb", marks=pytest.mark.slow)])
def test_profiling_certified_by_independent_fits(models, rule):
    """Z and the observed limit recomputed from fits of each model made outside the
    envelope: q0 from the penalised minima, CLs(μ_UL) = α with q̃ from every model's
    conditional fit at the limit and q_A from the background-only winner's hypotest."""
    penalty, models = 1.0, [models[0], models[2]]
    env = background_envelope(models, penalty=penalty)
    for m in MASSES:
        got = run(env, m, rule)
        wms = [s.window_model(m) for s in models]
        pen = np.array([penalty * w.config.npars for w in wms])
        free, null, cond, free_q = [], [], [], []
        ul = float(got["ul_obs"][0])
        for w in wms:
            d = w.make_data()
            bounds = np.array(w.config.suggested_bounds())
            signed = bounds.copy()
            signed[0, 0] = -signed[0, 1]
            free.append(float(jaxlike.fit(w, d, par_bounds=signed).twice_nll))
            free_q.append(jaxlike.fit(w, d))
            null.append(float(jaxlike.fixed_poi_fit(w, d, 0.0).twice_nll))
            cond.append(float(jaxlike.fixed_poi_fit(w, d, ul).twice_nll))
        free, null, cond = np.array(free) + pen, np.array(null) + pen, np.array(cond) + pen
        q0 = max(null.min() - free.min(), 0.0)
        assert abs(float(got["significance"])) == pytest.approx(np.sqrt(q0), abs=2e-6)
        assert int(got["bkg_model"]) == int(np.argmin(free))
        j0 = int(np.argmin(null))
        assert int(got["bkg_model_null"]) == j0
        fq = np.array([float(f.twice_nll) for f in free_q]) + pen
        mu_hat = float(free_q[int(np.argmin(fq))].bestfit[0])
        q = 0.0 if mu_hat > ul else max(cond.min() - fq.min(), 0.0)
        ht = jaxlike.hypotest(ul, wms[j0].make_data(), wms[j0])
        assert _cls(q, float(ht.q_asimov), rule) == pytest.approx(0.05, abs=2e-5)
        # the expected band is the background-only winner's own
        own = one(models[j0], m, rule)
        np.testing.assert_allclose(got["ul_exp"], own["ul_exp"], rtol=1e-5)
        assert bool(got["fit_converged"]) and bool(np.all(got["limit_converged"]))


def test_conservative_takes_the_least_favourable_model(models):
    pair = [models[0], models[2]]
    env = background_envelope(pair, method="conservative")
    for m in MASSES:
        got = run(env, m)
        each = [one(s, m) for s in pair]
        z = np.array([float(r["significance"]) for r in each])
        ul = np.array([np.asarray(r["ul_obs"]) for r in each])  # [J, ncl]
        exp = np.array([np.asarray(r["ul_exp"]) for r in each])
        assert float(got["significance"]) == pytest.approx(z.min(), rel=1e-9)
        assert int(got["bkg_model"]) == int(np.argmin(z))
        np.testing.assert_allclose(got["ul_obs"], ul.max(axis=0), rtol=1e-9)
        np.testing.assert_array_equal(got["bkg_model_limit"], np.argmax(ul, axis=0))
        np.testing.assert_allclose(got["ul_exp"], exp.max(axis=0), rtol=1e-9)
        np.testing.assert_allclose(got["ul_obs_phys"], ul.max(axis=0) * float(models[0].unit(m)))
    # the family's spread is real here: the orders disagree at the bump
    assert np.ptp(z) > 0.1


def _coverage(ntoys):
    """Fraction of toys whose envelope CLs+b limit covers the injected μ, toys drawn from
    bernstein 2 (a member of the family {bernstein 1, bernstein 2}) with μ_true = 40 at
    m = 4."""
    family = [variant(kind="bernstein", order=o) for o in (1, 2)]
    env = background_envelope(family, penalty=1.0)
    m, mu_true = 4.0, 40.0
    truth = family[1].window_model(m)
    # the truth: bernstein 2 fitted to the observed window, the injected signal on top
    fit = jaxlike.fixed_poi_fit(truth, truth.make_data(), 0.0)
    pars = fit.bestfit.at[0].set(mu_true)
    nu = truth.expected_actualdata(pars).reshape(truth.counts.shape)
    keys = jax.random.split(jax.random.PRNGKey(5), ntoys)
    toys = jax.vmap(lambda k: jax.random.poisson(k, nu).astype(float))(keys)
    limits = jax.jit(jax.vmap(lambda d: envelope_results(env, m, CL, d, rule="clsb")["ul_obs"]))
    ul = np.asarray(limits(toys))[:, 0]
    assert np.all(np.isfinite(ul))
    return np.mean(ul >= mu_true)


def test_coverage_with_toys():
    n = 160
    cov = _coverage(n)
    err = np.sqrt(0.95 * 0.05 / n)
    assert abs(cov - 0.95) < 3 * err, cov


@pytest.mark.slow
def test_coverage_with_toys_slow():
    n = 1000
    cov = _coverage(n)
    err = np.sqrt(0.95 * 0.05 / n)
    assert abs(cov - 0.95) < 3 * err, cov


def test_bad_envelopes_name_the_field(models):
    def build(section, **window):
        cfg = make_config()
        cfg["window"] |= window
        return build_mass_scan(cfg | {"envelope": section})

    cases = [
        ({"models": []}, "envelope.models"),
        ({"models": [{"order": 2}], "method": "vote"}, "envelope.method"),
        ({"models": [{"order": 2}], "penalty": -1}, "envelope.penalty"),
        ({"models": [{"order": 2, "colour": 1}]}, "envelope.models[0].colour"),
        ({"models": [{"order": 2}, {"order": 2}]}, "envelope.models[1].name"),
        ({"models": [{"order": 99}]}, "envelope.models[0].order"),
        ({"models": [{"kind": "exponential", "order": 2}]}, "envelope.models[0].order"),
        ({"models": [{"order": 2}, {"order": 3, "lo": 5.0}]}, "envelope.models[1]"),
        ({"models": "bernstein"}, "envelope.models"),
    ]
    for section, path in cases:
        with pytest.raises(InvalidScanConfig) as err:
            build(section)
        assert err.value.path == path, (section, err.value.path, err.value.reason)
    # another fit range is a systematic variation: fine for the conservative rule
    env, _, _ = build({"method": "conservative", "models": [{"order": 2}, {"order": 2, "lo": 5.0,
                       "name": "narrow"}]})  # fmt: skip
    assert env.names == ("bernstein2", "narrow")
    assert float(env.models[1].window_lo) == 5.0
    with pytest.raises(InvalidScanConfig, match="toy"):
        mass_scan(env, [3.0], toys={"ntoys": 10})
    with pytest.raises(InvalidScanConfig, match="envelope"):
        scan_toys(env, [3.0], n_toys=2)


def test_spurious_signal_table(models):
    """Asimov background-only spectra of each shape fitted by each model: nothing on the
    diagonal, nothing where the fit family contains the truth (chebyshev 1 ⊂ chebyshev 2),
    and the off-diagonal values equal an independent fit of the same Asimov data."""
    small, big = variant(kind="chebyshev", order=1), models[2]
    fam = [models[0], small, big]
    res = spurious_signal(fam, [3.0, 6.0], chunk_size=2, names=["b1", "c1", "c2"])
    assert res.mu_spur.shape == (2, 3, 3) and res.names == ("b1", "c1", "c2")
    assert np.all(res.converged)
    diag = np.abs(res.ratio[:, np.arange(3), np.arange(3)])
    assert np.all(diag < 1e-3), diag
    assert np.all(np.abs(res.ratio[:, 1, 2]) < 1e-3)  # c1 truth, c2 fit: nested
    # an independent fit of one off-diagonal pair (truth b1, fit c1) at m = 6
    m = 6.0
    wt, wf = models[0].window_model(m), small.window_model(m)
    null = jaxlike.fixed_poi_fit(wt, wt.make_data(), 0.0)
    asimov = jnp.concatenate([wt.expected_actualdata(null.bestfit), wf.auxdata()])
    bounds = np.array(wf.config.suggested_bounds())
    bounds[0, 0] = -bounds[0, 1]
    fit = jaxlike.fit(wf, asimov, par_bounds=bounds)
    tol = 1e-4 * res.mu_err[1, 0, 1]
    assert res.mu_spur[1, 0, 1] == pytest.approx(float(fit.bestfit[0]), abs=tol)
    assert res.mu_err[1, 0, 1] == pytest.approx(float(fit.uncertainties[0]), rel=1e-4)
    assert np.max(np.abs(res.ratio)) > 0.05  # the shapes do differ somewhere
    table = res.table()
    assert len(table) == 9 and {r["truth"] for r in table} == {"b1", "c1", "c2"}
    # the CLI's summary rows (jaxlike scan --spurious): per fit model, its worst bias over the
    # other shapes
    text = summary_text(SUMMARY | {"spurious": [{"segment": "low", "models": list(res.names),
                                                 "converged": True, "table": table}]})  # fmt: skip
    for fit in res.names:
        others = [r for r in table if r["fit"] == fit and r["truth"] != fit]
        worst = max(others, key=lambda r: r["max_abs_ratio"])
        line = next(x for x in text.splitlines() if f"spurious signal (low), fit {fit} " in x)
        assert f"{worst['max_abs_ratio']:.2f} (truth {worst['truth']}, at x" in line, line
    assert np.all(np.isfinite(res.phys))
    with pytest.raises(InvalidScanConfig, match="window"):
        cfg = make_config()
        cfg["window"]["lo"] = 5.0
        spurious_signal([models[0], build_mass_scan(cfg)[0]], [3.0])
