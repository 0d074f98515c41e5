"""The ``reweight`` modifier (joint number densities) on a small model with toy rates:
the yields it produces, its exact Hessian, JSON round trip, bad input."""

from __future__ import annotations

import copy
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad

import jaxlike
from jaxlike.exceptions import InvalidModel, InvalidWorkspace
from jaxlike.model import RateParameter, RateSpec, register_rate


def _alt(q, p, inputs):
    x = q / 10.0
    return p["a"] * (1.0 + p["b"][0] * x + p["b"][1] * x**2) ** 2 + inputs["c"] * q


def _prepare(inputs):
    c = inputs.get("c", 0.0)
    if not isinstance(c, int | float):
        raise ValueError("c: must be a number")
    return {"c": np.asarray(float(c))}


register_rate(
    RateSpec(
        "test_alt",
        _alt,
        parameters=(
            RateParameter("a", init=1.0, bounds=(0.0, 5.0)),
            RateParameter("b", n=2, init=0.0, constraint="normal"),
        ),
        domain=(0.0, 10.0),
        prepare=_prepare,
    ),
    replace=True,
)
register_rate(
    RateSpec("test_null", lambda q, p, i: 1.0 + 0.05 * q, domain=(0.0, 10.0)), replace=True
)
register_rate(
    RateSpec(
        "test_negative",
        lambda q, p, i: p["a"] - 0.2 * q,
        parameters=(RateParameter("a", init=1.0, bounds=(0.0, 5.0)),),
        domain=(0.0, 10.0),
    ),
    replace=True,
)

EDGES = [-1.0, 0.0, 2.5, 5.0, 7.5, 10.0]
RNG = np.random.default_rng(7)
NMAP = RNG.uniform(0.0, 5.0, (3, 5))
SIG = NMAP.sum(axis=1)


def _spec(nmap=NMAP, data=None):
    rw = {"rate": "test_alt", "null": "test_null", "edges": EDGES, "map": nmap.tolist()}
    rw.update(data or {})
    return {
        "channels": [
            {
                "name": "c",
                "samples": [
                    {
                        "name": "sig",
                        "data": SIG.tolist(),
                        "modifiers": [
                            {"name": "rw", "type": "reweight", "data": rw},
                            {
                                "name": "h",
                                "type": "histosys",
                                "data": {
                                    "hi_data": (SIG * 1.1).tolist(),
                                    "lo_data": (SIG * 0.95).tolist(),
                                },
                            },
                            {"name": "se", "type": "staterror", "data": [1.0, 1.0, 1.0]},
                        ],
                    },
                    {
                        "name": "bkg",
                        "data": [20.0, 15.0, 10.0],
                        "modifiers": [
                            {"name": "n", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                            {"name": "se", "type": "staterror", "data": [1.0, 1.0, 1.0]},
                            {"name": "k", "type": "normfactor", "data": None},
                        ],
                    },
                ],
            }
        ],
        "observations": [{"name": "c", "data": [30.0, 25.0, 18.0]}],
        "measurements": [{"name": "m", "config": {"poi": "a", "parameters": []}}],
        "version": "1.0.0",
    }


@pytest.fixture(scope="module")
def toy():
    ws = jaxlike.Workspace(_spec())
    model = ws.model()
    return ws, model, ws.data(model)


def _weights(a, b, c):
    """Reference w_j by scipy quad: ∫σ1/∫σ0 over each truth bin, 1 for the sentinel bin."""
    out = [1.0]
    for lo, hi in zip(EDGES[1:-1], EDGES[2:], strict=True):
        alt = quad(lambda q: _alt(q, {"a": a, "b": b}, {"c": c}), lo, hi)[0]
        null = quad(lambda q: 1.0 + 0.05 * q, lo, hi)[0]
        out.append(alt / null)
    return np.asarray(out)


def test_parameters_come_from_the_rate(toy):
    _, model, _ = toy
    cfg = model.config
    assert cfg.par_names == ["h", "k", "n", "a", "b[0]", "b[1]", "se[0]", "se[1]", "se[2]"]
    assert cfg.param_set("a").constraint is None and cfg.param_set("a").bounds == ((0.0, 5.0),)
    assert cfg.param_set("b").constraint == "normal"
    assert cfg.poi_name == "a"


def test_signal_is_map_times_weights(toy):
    """At nominal nuisances ν_sig,i = Σ_j n_ij w_j(φ) (quadrature vs scipy quad to 1e-12)."""
    _, model, _ = toy
    cfg = model.config
    pars = jnp.asarray(cfg.suggested_init())
    pars = pars.at[cfg.par_index("a")].set(1.7)
    pars = pars.at[cfg.par_slice("b")].set(jnp.asarray([0.3, -0.4]))
    sig = model.expected_by_sample(pars)[cfg.samples.index("sig")]
    ref = NMAP @ _weights(1.7, np.array([0.3, -0.4]), 0.0)
    np.testing.assert_allclose(sig, ref, rtol=1e-12)


def test_null_point_reproduces_the_template():
    """With σ1 = σ0 (all w = 1) the reweighted signal is the template."""
    register_rate(
        RateSpec(
            "test_same",
            lambda q, p, i: p["a"] * (1.0 + 0.05 * q),
            parameters=(RateParameter("a", init=1.0, bounds=(0.0, 5.0)),),
            domain=(0.0, 10.0),
        ),
        replace=True,
    )
    model = jaxlike.Workspace(_spec(data={"rate": "test_same"})).model()
    pars = jnp.asarray(model.config.suggested_init())
    sig = model.expected_by_sample(pars)[model.config.samples.index("sig")]
    np.testing.assert_allclose(sig, SIG, rtol=1e-13)


def test_reweighting_applies_after_additive_shifts(toy):
    """ν_sig = r(φ) · (ν⁰ + Δ_histosys(α)): the factor multiplies the shifted template."""
    _, model, _ = toy
    cfg = model.config
    p0 = jnp.asarray(cfg.suggested_init())
    p1 = p0.at[cfg.par_index("a")].set(2.0).at[cfg.par_index("h")].set(1.0)
    s = cfg.samples.index("sig")
    r = NMAP @ _weights(2.0, np.zeros(2), 0.0) / SIG
    np.testing.assert_allclose(model.expected_by_sample(p1)[s], r * SIG * 1.1, rtol=1e-12)


def test_structured_hessian_matches_autodiff(toy):
    _, model, data = toy
    pars = jnp.asarray(model.config.suggested_init()) + jnp.asarray(
        np.random.default_rng(3).normal(0.0, 0.2, model.config.npars)
    )
    value, grad, hess = model.value_grad_hess(pars, data)
    f = lambda p: model.twice_nll(p, data)  # noqa: E731
    np.testing.assert_allclose(value, f(pars), rtol=1e-13)
    np.testing.assert_allclose(grad, jax.grad(f)(pars), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(hess, jax.hessian(f)(pars), rtol=1e-10, atol=1e-11)


def test_fit_and_gradient_wrt_rate_parameters(toy):
    _, model, data = toy
    res = jaxlike.fit(model, data)
    assert bool(res.converged)
    # at the minimum the free, off-bound gradient vanishes, including d/da through the rate
    _, grad, _ = model.value_grad_hess(res.bestfit, data)
    free = ~np.asarray(res.at_bound | res.fixed)
    assert np.max(np.abs(np.asarray(grad)[free])) < 1e-6


def test_json_round_trip(toy):
    ws, model, data = toy
    again = jaxlike.Workspace(json.loads(ws.to_json()))
    assert again == ws
    m2 = again.model()
    pars = jnp.asarray(model.config.suggested_init()).at[3].set(2.2)
    assert float(m2.logpdf(pars, data)) == float(model.logpdf(pars, data))


def test_bad_input_names_the_field():
    with pytest.raises(InvalidModel, match=r"modifiers\[0\]\.data\.map.*expected \[3 channel"):
        jaxlike.Workspace(_spec(nmap=NMAP[:, :4]), validate=False).model()
    with pytest.raises(InvalidWorkspace, match=r"modifiers\[0\]\.data\.map"):
        jaxlike.Workspace(_spec(nmap=NMAP[:2]))
    bad = NMAP.copy()
    bad[1, 2] = np.nan
    with pytest.raises((InvalidModel, InvalidWorkspace), match=r"map\[1\]\[2\]"):
        jaxlike.Workspace(_spec(nmap=bad), validate=False).model()
    with pytest.raises(InvalidModel, match="unknown rate 'nope'"):
        jaxlike.Workspace(_spec(data={"rate": "nope"})).model()
    with pytest.raises(InvalidModel, match=r"data\.inputs: c: must be a number"):
        jaxlike.Workspace(_spec(data={"inputs": {"c": "x"}})).model()
    with pytest.raises(InvalidModel, match=r"data\.rate: weight w\[3\].*negative"):
        jaxlike.Workspace(_spec(data={"rate": "test_negative"})).model()
    with pytest.raises(InvalidModel, match="strictly increasing"):
        jaxlike.Workspace(_spec(data={"edges": [-1.0, 0.0, 2.5, 2.5, 7.5, 10.0]})).model()


def test_one_name_one_rate():
    spec = _spec()
    bkg = spec["channels"][0]["samples"][1]
    other = copy.deepcopy(spec["channels"][0]["samples"][0]["modifiers"][0])
    other["data"]["inputs"] = {"c": 0.5}
    bkg["modifiers"].append(other)
    with pytest.raises(InvalidModel, match="different rate, null, edges"):
        jaxlike.Workspace(spec).model()
