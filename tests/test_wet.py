"""The Belle II B+ → K+ νν̄ WET reinterpretation built from the real release:
model structure, the reweighted templates at the SM point, the published cross-check Δ2NLL
values, the MLE, JSON round trip, ``jaxlike belle2-wet`` (the job writing the plain workspace)
and an independent pyhf construction (slow)."""

from __future__ import annotations

import json
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import DATA

import jaxlike
from jaxlike.cli import main
from jaxlike.exceptions import InvalidModel
from jaxlike.jobs import belle2_wet_workspace, load_posterior_config
from jaxlike.physics import C_VL_SM, FF_PARAMETER

BK = DATA / "belle2_bknunu"
FF_ZERO = {f"{FF_PARAMETER}[{i}]": 0.0 for i in range(8)}


@pytest.fixture(scope="module")
def wet():
    ws = belle2_wet_workspace(BK)
    model = ws.model()
    return ws, model, ws.data(model)


@pytest.fixture(scope="module")
def published():
    ws = jaxlike.Workspace.load(BK / "combined_likelihood.json")
    return ws.model()


def _at(model, **values):
    pars = jnp.asarray(model.config.suggested_init())
    for name, v in values.items():
        pars = pars.at[model.config.par_index(name)].set(v)
    return pars


def _profiled(model, data, cv, cs, ct):
    """2NLL with C fixed, form factors fixed at 0, all other nuisances profiled."""
    res = jaxlike.fit(model, data, fixed_params={"C_V": cv, "C_S": cs, "C_T": ct, **FF_ZERO})
    assert bool(res.converged), res.message()
    return float(res.twice_nll)


def test_structure(wet, published):
    _, model, _ = wet
    cfg = model.config
    assert cfg.npars == 239 and published.config.npars == 232
    for name in ("C_V", "C_S", "C_T"):
        ps = cfg.param_set(name)
        assert ps.constraint is None and ps.bounds == ((0.0, 20.0),)
    ff = cfg.param_set(FF_PARAMETER)
    assert ff.n_parameters == 8 and ff.constraint == "normal"
    removed = {"mu", "corr_ff_c1", "corr_ff_c2", "corr_ff_c3"}
    assert not removed & set(cfg.par_order)
    assert (
        set(cfg.par_order) - {"C_V", "C_S", "C_T", FF_PARAMETER}
        == set(published.config.par_order) - removed
    )


def test_sm_point_reproduces_the_published_templates(wet, published):
    """At (C_VL_SM, 0, 0) and nominal form factors the reweighted signal equals the published
    templates times the null-normalisation factor Σ_j n_ij w_j / Σ_j n_ij: B_SM(EOS) over the
    HPQCD-2022 null, 0.96–1.00 per bin (the shapes differ slightly across q²)."""
    _, model, _ = wet
    sm = _at(model, C_V=C_VL_SM, C_S=0.0, C_T=0.0)
    p0 = jnp.asarray(published.config.suggested_init())
    for sample in ("signal", "sgn_1_had"):
        new = np.asarray(model.expected_by_sample(sm)[model.config.samples.index(sample)])
        old = np.asarray(published.expected_by_sample(p0)[published.config.samples.index(sample)])
        on = old > 0
        ratio = new[on] / old[on]
        assert np.all((ratio > 0.96) & (ratio < 1.005)), ratio
        # the same factor in the region where the signal is absent: nothing
        np.testing.assert_array_equal(new[~on], 0.0)
    # integrated over the whole q² range the ratio of the two SM rates is 4.8117 / 4.966 =
    # 0.969; the efficiency-weighted ITA total sits between that and 1 (0.990 measured)
    s = model.config.samples.index("signal")
    tot = float(model.expected_by_sample(sm)[s].sum())
    ref = float(published.expected_by_sample(p0)[published.config.samples.index("signal")].sum())
    assert 0.969 < tot / ref < 1.0


def test_cross_check_delta_values(wet):
    """Belle II's cross-check (independent pyhf construction, FF nuisances at 0, all other
    nuisances profiled): Δ = 7.28 for (14, 0, 0) and 3.75 for (0, 0, 8.21), ±0.1."""
    _, model, data = wet
    sm = _profiled(model, data, C_VL_SM, 0.0, 0.0)
    d_vector = sm - _profiled(model, data, 14.0, 0.0, 0.0)
    d_tensor = sm - _profiled(model, data, 0.0, 0.0, 8.21)
    assert abs(d_vector - 7.28) < 0.1, d_vector
    assert abs(d_tensor - 3.75) < 0.1, d_tensor


def test_mle_from_several_starts(wet):
    """The rate is even in each coefficient; the free fit leaves the C = 0 saddle and finds
    the same minimum from different starting points."""
    _, model, data = wet
    cfg = model.config
    idx = [cfg.par_index(n) for n in ("C_V", "C_S", "C_T")]
    results = []
    for start in [(C_VL_SM, 1.0, 1.0), (14.0, 0.5, 0.5), (10.0, 3.0, 3.0), (5.0, 0.0, 0.0)]:
        init = np.asarray(cfg.suggested_init())
        init[idx] = start
        res = jaxlike.fit(model, data, init_pars=init)
        assert bool(res.converged), (start, res.message())
        results.append((float(res.twice_nll), np.asarray(res.bestfit)[idx]))
    best = min(r[0] for r in results)
    for nll, c in results:
        assert nll - best < 1e-6
        np.testing.assert_allclose(c, results[0][1], atol=2e-3)
    c_v, c_s, c_t = results[0][1]
    assert c_s < 1e-3 and 11.0 < c_v < 12.0 and 8.0 < c_t < 9.0


def test_json_round_trip(wet, tmp_path):
    ws, model, data = wet
    path = tmp_path / "wet.json"
    ws.save(path)
    again = jaxlike.Workspace.load(path)
    assert again == ws
    m2 = again.model()
    pars = _at(model, C_V=9.0, C_S=2.0, C_T=3.0)
    pars = pars.at[model.config.par_slice(FF_PARAMETER)].set(jnp.linspace(-1.0, 1.0, 8))
    assert float(m2.logpdf(pars, data)) == float(model.logpdf(pars, data))
    spec = json.loads(path.read_text())
    rw = [
        m
        for c in spec["channels"]
        for s in c["samples"]
        for m in s["modifiers"]
        if m["type"] == "reweight"
    ]
    assert len(rw) == 3 and {m["data"]["rate"] for m in rw} == {"bknunu_wet_bsz2015"}


def test_cli_writes_the_plain_workspace(wet, tmp_path, capsys):
    ws, _, _ = wet
    out, cfg = tmp_path / "wet.json", tmp_path / "wet_posterior.json"
    argv = ["belle2-wet", str(BK), "-o", str(out), "--posterior-config", str(cfg), "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {
        "workspace": str(out),
        "parameters": 239,
        "poi": "C_V",
        "channels": len(ws.channels),
        "posterior_config": str(cfg),
    }
    assert jaxlike.Workspace.load(out) == ws  # plain JSON, reweight modifiers included
    assert load_posterior_config(cfg)["model"] == {"workspace": "wet.json"}
    assert not list(tmp_path.glob(".*tmp*"))
    # a folder without the release files, a missing output folder: one line, exit 2
    assert main(["belle2-wet", str(tmp_path), "-o", str(tmp_path / "x.json")]) == 2
    assert "combined_likelihood.json" in capsys.readouterr().err
    assert main(["belle2-wet", str(BK), "-o", str(tmp_path / "no" / "x.json")]) == 2
    assert "folder does not exist" in capsys.readouterr().err
    # generic commands take the workspace file, no Belle II folder
    assert main(["grid", "--belle2-wet", str(BK), "--x", "C_V:0:20:2", "--y", "C_T:0:2:2"]) == 2
    assert "unrecognized arguments: --belle2-wet" in capsys.readouterr().err


def test_bad_release_files(tmp_path):
    for f in BK.iterdir():
        shutil.copy(f, tmp_path / f.name)
    regb = tmp_path / "number_density_ita_regB.csv"
    rows = regb.read_text().splitlines()
    regb.write_text("\n".join(rows[:2]) + "\n")
    with pytest.raises(InvalidModel, match="number_density_ita_regB.csv.*shape \\[2, 101\\]"):
        belle2_wet_workspace(tmp_path)
    regb.write_text("\n".join(rows) + "\n")
    ff = json.loads((tmp_path / "bk_formfactors.json").read_text())
    ff["covariance"][0][0] = -1.0
    (tmp_path / "bk_formfactors.json").write_text(json.dumps(ff))
    with pytest.raises(InvalidModel, match="covariance"):
        belle2_wet_workspace(tmp_path)


@pytest.mark.slow
def test_independent_pyhf_construction(wet):
    """pyhf on the published workspace with `mu`/`corr_ff_*` removed and the signal templates
    (nominal, histosys, staterror) scaled per bin by r_i(C, FF = 0) from jaxlike's physics: the
    same Δ2NLL as jaxlike's reweight modifier (converged fits on both sides)."""
    pyhf = pytest.importorskip("pyhf")
    _, model, data = wet
    pyhf.set_backend("jax", pyhf.optimize.scipy_optimizer(tolerance=1e-12))
    try:
        out = {}
        for point in [(C_VL_SM, 0.0, 0.0), (14.0, 0.0, 0.0), (0.0, 0.0, 8.21)]:
            pars = _at(model, C_V=point[0], C_S=point[1], C_T=point[2])
            (group,) = model.reweight
            r = np.asarray(group.factor(pars))  # [samples, bins]
            spec = json.loads((BK / "combined_likelihood.json").read_text())
            offset = 0
            for ch in sorted(spec["channels"], key=lambda c: c["name"]):
                n = len(ch["samples"][0]["data"])
                for s in ch["samples"]:
                    s["modifiers"] = [
                        m
                        for m in s["modifiers"]
                        if m["name"] not in ("mu", "corr_ff_c1", "corr_ff_c2", "corr_ff_c3")
                    ]
                    si = model.config.samples.index(s["name"])
                    f = r[si, offset : offset + n]
                    s["data"] = (np.asarray(s["data"]) * f).tolist()
                    for m in s["modifiers"]:
                        if m["type"] == "histosys":
                            for k in ("hi_data", "lo_data"):
                                m["data"][k] = (np.asarray(m["data"][k]) * f).tolist()
                        elif m["type"] == "staterror":
                            m["data"] = (np.asarray(m["data"]) * f).tolist()
                offset += n
            spec["measurements"][0]["config"]["poi"] = "corr_lumi_c1"
            ws = pyhf.Workspace(spec)
            pm = ws.model()
            _, nll = pyhf.infer.mle.fit(ws.data(pm), pm, return_fitted_val=True)
            out[point] = float(nll)
        d_vector = out[(C_VL_SM, 0.0, 0.0)] - out[(14.0, 0.0, 0.0)]
        d_tensor = out[(C_VL_SM, 0.0, 0.0)] - out[(0.0, 0.0, 8.21)]
        ours_v = _profiled(model, data, C_VL_SM, 0, 0) - _profiled(model, data, 14.0, 0, 0)
        ours_t = _profiled(model, data, C_VL_SM, 0, 0) - _profiled(model, data, 0.0, 0, 8.21)
        assert abs(d_vector - ours_v) < 2e-3 and abs(d_tensor - ours_t) < 2e-3
    finally:
        pyhf.set_backend("numpy")


def test_separable_rate_equals_quadrature(wet):
    """The WET rate's precomputed basis integrals (Σ_c C_c² αᵀ I_c α) equal the Gauss–Legendre
    integration of dB/dq² itself, at random coefficients and form-factor nuisances."""
    import equinox as eqx

    _, model, _ = wet
    (group,) = model.reweight
    assert group.basis_ints is not None and group.basis_ints.shape == (3, 8, 8, 101)
    direct = eqx.tree_at(lambda g: g.basis_ints, group, None, is_leaf=lambda x: x is None)
    rng = np.random.default_rng(0)
    for _ in range(3):
        phi = jnp.asarray(np.concatenate([rng.uniform(0, 15, 3), rng.normal(0, 1, 8)]))
        np.testing.assert_allclose(
            group.weights_of_phi(phi), direct.weights_of_phi(phi), rtol=1e-13
        )
