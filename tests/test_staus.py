"""ATLAS SUSY-2018-04 staus Region-lowMass (117 parameters): every fit of the μ = 1 q̃ test at or
below pyhf's best.

For the three shared signal patches, jaxlike's fits must be converged and at an exact 2NLL no
higher than ``best + 1e-6``, where ``best`` is the lowest exact 2NLL over the *converged* pyhf
optimizers (numpy SLSQP 1e-10, MINUIT tolerance 1e-6 strategy 2, pyhf-jax SLSQP 1e-12), stored in
``tests/data/staus_refs.json`` by ``tests/make_staus_refs.py`` (pyhf takes minutes here). "Exact"
is ONE function for both tools' parameter vectors: jaxlike's ``model.logpdf`` (``conftest.logpdf``;
2NLL = −2 logpdf), as the rule for judging a disagreement with pyhf asks.

- the real ``jaxlike.hypotest(1.0, ...)``: its five fits converged, their reported and exact 2NLL
  at or below the references. Its Asimov data come from its own μ = 0 fit; the references' from
  the best μ = 0 fit of all tools (jaxlike's included), so its μ = 0 fit is compared too;
- jaxlike's free and μ = 1 fits on the *stored* Asimov data (the data pyhf's fits saw);
- CLs_obs of DS_240_80 against the README's pyhf value and against CLs recomputed from the
  references' best 2NLL;
- the reference file itself: its workspaces, parameter order (pyhf = jaxlike) and data match, its
  exact 2NLL are what the exact function gives now; ``-m slow`` recomputes one patch with pyhf.

Patches DS_120_1 and DS_240_80 share one model layout, DS_360_1 (fewer signal normsys) has its
own: two compilations of the hypotest's fit, which every fit below reuses.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from types import SimpleNamespace

import conftest
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

import jaxlike
from jaxlike.fit import fit_jit, prepare_fit_inputs, start_rows
from jaxlike.infer import _hypotest

DATA = Path(os.environ.get("JAXLIKE_DATA", conftest.DATA))
REFS = Path(__file__).resolve().parent / "data" / "staus_refs.json"
PATCHES = ("DS_120_1", "DS_240_80", "DS_360_1")
FITS = ("free", "mu1", "mu0", "free_asimov", "mu1_asimov")  # HypoTestResult's order
POI_TEST = 1.0
#: jaxlike's exact 2NLL may exceed the best converged pyhf fit by at most this
TOL = 1e-6
#: README (pyhf 0.7.6, DS_240_80, μ = 1 q̃): CLs_obs of numpy SLSQP 1e-10 (and MINUIT), and of
#: pyhf-jax SLSQP 1e-12
README_CLS_OBS = 0.2380006
README_CLS_OBS_PYHF_JAX = 0.2380007


@functools.cache
def refs():
    return json.loads(REFS.read_text())


@functools.cache
def staus(name):
    """(model, data, spec sha256) of patch ``name`` (honours $JAXLIKE_DATA)."""
    import make_staus_refs

    spec, sha = make_staus_refs.patch_spec(name, DATA)
    ws = jaxlike.Workspace(spec)
    model = ws.model()
    return SimpleNamespace(model=model, data=jnp.asarray(ws.data(model)), sha=sha)


def exact(model, pars, data):
    """The one exact function: 2NLL = −2 · jaxlike ``model.logpdf``."""
    return float(-2.0 * np.asarray(conftest.logpdf(model, jnp.asarray(pars), jnp.asarray(data))))


@functools.cache
def hypotest(name):
    """jaxlike.hypotest at μ = 1 and the exact 2NLL of its five fits (the Asimov ones on its own
    Asimov data, rebuilt with the hypotest's own compiled ``expected_data``)."""
    c = staus(name)
    res = jaxlike.hypotest(POI_TEST, c.data, c.model)
    pars = np.asarray(res.fitted_pars)
    asimov = _hypotest._expected(c.model, jnp.asarray(pars[2]))
    datas = [c.data] * 3 + [asimov] * 2
    ex = [exact(c.model, p, d) for p, d in zip(pars, datas, strict=True)]
    return res, np.asarray(ex)


@functools.cache
def stored_asimov_fits(name):
    """jaxlike's free and μ = 1 fits on the stored Asimov data, with the hypotest's compiled fit."""
    c = staus(name)
    asimov = jnp.asarray(refs()["patches"][name]["asimov"]["data"])
    d, init, lo, hi, fixed = prepare_fit_inputs(c.model, asimov)
    poi = c.model.config.poi_index
    none = start_rows(init, model=c.model)  # the argument structure the hypotest's fits use
    free = fit_jit(c.model, d, init, lo, hi, fixed, starts=none)
    cond = _hypotest._conditional(
        c.model, d, init, lo, hi, fixed, poi, jnp.asarray(POI_TEST), starts=none
    )
    return {
        "free_asimov": (free, exact(c.model, free.bestfit, asimov)),
        "mu1_asimov": (cond, exact(c.model, cond.bestfit, asimov)),
    }


@pytest.mark.parametrize("name", PATCHES)
def test_refs_match_workspace_and_exact_function(name):
    ref = refs()["patches"][name]
    c = staus(name)
    assert ref["spec_sha256"] == c.sha
    assert ref["par_names"] == list(c.model.config.par_names)
    np.testing.assert_array_equal(np.asarray(ref["data"]), np.asarray(c.data))
    asimov = np.asarray(ref["asimov"]["data"])
    src = ref["asimov"]["from"]
    mu0 = ref["jaxlike_mu0"] if src == "jaxlike" else ref["fits"]["mu0"][src]
    np.testing.assert_allclose(
        np.asarray(_hypotest._expected(c.model, jnp.asarray(mu0["pars"]))), asimov, rtol=1e-12
    )
    for fit in FITS:
        data = c.data if fit in ("free", "mu1", "mu0") else asimov
        converged = {}
        for opt, e in ref["fits"][fit].items():
            if e["pars"] is None:
                continue
            now = exact(c.model, e["pars"], data)
            assert now == pytest.approx(e["twice_nll"], rel=1e-12, abs=0), (fit, opt, now)
            if e["success"]:
                converged[opt] = now
        assert converged, f"no converged pyhf fit for {fit}"
        best = ref["best"][fit]
        assert best["optimizer"] == min(converged, key=converged.get)
        assert best["twice_nll"] == pytest.approx(min(converged.values()), rel=1e-12, abs=0)


@pytest.mark.parametrize("name", PATCHES)
def test_hypotest_fits_at_or_below_pyhf_best(name):
    ref = refs()["patches"][name]
    res, ex = hypotest(name)
    assert bool(res.converged), np.asarray(res.fit_converged)
    assert np.asarray(res.fit_converged).all()
    reported = np.asarray(res.twice_nll)
    # the reported 2NLL is the exact function's value at the reported parameters
    np.testing.assert_allclose(reported, ex, rtol=1e-12, atol=0)
    best = np.asarray([ref["best"][f]["twice_nll"] for f in FITS])
    assert (ex <= best + TOL).all(), dict(zip(FITS, ex - best, strict=True))
    assert (reported <= best + TOL).all(), dict(zip(FITS, reported - best, strict=True))
    # its μ = 0 fit (its Asimov parameters) against the best μ = 0 fit of all tools
    assert ex[2] <= ref["asimov"]["mu0_twice_nll"] + TOL


@pytest.mark.parametrize("name", PATCHES)
def test_fits_on_stored_asimov_at_or_below_pyhf_best(name):
    ref = refs()["patches"][name]
    for fit, (res, ex) in stored_asimov_fits(name).items():
        assert bool(res.converged), (fit, res.message())
        assert float(res.twice_nll) == pytest.approx(ex, rel=1e-12, abs=0)
        assert ex <= ref["best"][fit]["twice_nll"] + TOL, (fit, ex - ref["best"][fit]["twice_nll"])


def _cls_from(twice_nll, mu_hat, mu_hat_asimov):
    """(CLs_obs, q̃, q̃_A) from the five fits' 2NLL, written out after pyhf's q̃ test statistic and
    ``AsymptoticCalculator`` (independent of jaxlike's implementation)."""
    q = 0.0 if mu_hat > POI_TEST else max(twice_nll[1] - twice_nll[0], 0.0)
    q_a = 0.0 if mu_hat_asimov > POI_TEST else max(twice_nll[4] - twice_nll[3], 0.0)
    sq, sq_a = np.sqrt(q), np.sqrt(q_a)
    t = sq - sq_a if sq <= sq_a else (q - q_a) / (2.0 * sq_a)
    clsb, clb = norm.cdf(-sq_a - t), norm.cdf(-t)
    return float(clsb / clb), q, q_a


def test_cls_obs_ds_240_80():
    """CLs_obs = CLsb/CLb with q̃ = 2NLL(μ=1) − 2NLL(free), on data (q) and on Asimov data (q_A).
    Here (q ≈ 0.685, q_A ≈ 3.58) ∂CLs/∂q = −0.162 and ∂CLs/∂q_A = −0.017, so fits off by δ in
    2NLL (each q is a difference of two fits) move CLs by at most 2·(0.162 + 0.017)·δ = 0.36 δ.

    - against CLs from the references' best 2NLL: jaxlike's and pyhf-jax's fits agree to < 1e-12
      in 2NLL (MINUIT's are 2e-9 above), so 1e-8 (δ ≈ 3e-8) is asserted;
    - against the README: pyhf's own ``hypotest`` with numpy SLSQP 1e-10 gives 0.2380006090
      (README 0.2380006), with pyhf-jax SLSQP 1e-12 0.2380007101 (README 0.2380007). numpy
      SLSQP's fits stop up to 3e-7 above the minima (the references: +2.95e-7 on the free fit),
      ≲ 1e-7 in CLs, plus the README's rounding 5e-8: 2e-7 for the numpy value; the pyhf-jax
      value only carries its rounding and pyhf-jax's ~1e-9 stopping error: 6e-8.
    """
    name = "DS_240_80"
    ref = refs()["patches"][name]
    res, _ = hypotest(name)
    poi = staus(name).model.config.poi_index
    best = [ref["best"][f]["twice_nll"] for f in FITS]
    opt_free, opt_free_a = ref["best"]["free"]["optimizer"], ref["best"]["free_asimov"]["optimizer"]
    mu_hat = ref["fits"]["free"][opt_free]["pars"][poi]
    mu_hat_a = ref["fits"]["free_asimov"][opt_free_a]["pars"][poi]
    cls_ref, q_ref, qa_ref = _cls_from(best, mu_hat, mu_hat_a)
    cls = float(res.cls_obs)
    assert abs(float(res.q_obs) - q_ref) <= 2 * TOL and abs(float(res.q_asimov) - qa_ref) <= 2 * TOL
    assert cls == pytest.approx(cls_ref, abs=1e-8), (cls, cls_ref)
    assert cls == pytest.approx(README_CLS_OBS, abs=2e-7), cls
    assert cls == pytest.approx(README_CLS_OBS_PYHF_JAX, abs=6e-8), cls


@pytest.mark.slow
def test_refs_reproduce_with_live_pyhf():
    """Recompute DS_240_80's references with pyhf (about 2-5 minutes) and check the stored file:
    the same Asimov data, the same success flags, each optimizer's exact 2NLL to 1e-6 and the best
    to 1e-7 (pyhf is deterministic on one machine; other BLAS/XLA builds move its stopping points
    slightly)."""
    import make_staus_refs

    name = "DS_240_80"
    stored = refs()
    ref = stored["patches"][name]
    live = make_staus_refs.run_patch(
        name, stored["meta"]["optimizers"], log=lambda *a: None, data_dir=DATA
    )
    assert live["par_names"] == ref["par_names"] and live["spec_sha256"] == ref["spec_sha256"]
    np.testing.assert_allclose(live["asimov"]["data"], ref["asimov"]["data"], rtol=1e-6)
    for fit in FITS:
        for opt, e in ref["fits"][fit].items():
            now = live["fits"][fit][opt]
            assert now["success"] == e["success"], (fit, opt, now["message"])
            if e["success"]:
                assert abs(now["twice_nll"] - e["twice_nll"]) <= 1e-6, (fit, opt)
        assert abs(live["best"][fit]["twice_nll"] - ref["best"][fit]["twice_nll"]) <= 1e-7, fit
