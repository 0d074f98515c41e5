"""The model layer on its own: input validation, template gradients, stacking, Poisson accuracy.

Parity of values with pyhf is in test_pyhf_parity_model.py; derivatives with respect to the
parameters in test_hessian.py.
"""

from __future__ import annotations

import copy
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pyhf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxlike
from jaxlike.exceptions import InvalidData, InvalidModel, InvalidParameters, JaxlikeError
from jaxlike.model import build_model, normal_logpdf, poisson_logpdf


def base_channels():
    """Two channels, every modifier type; each invalid-input test breaks one field."""
    return [
        {
            "name": "SR",
            "samples": [
                {
                    "name": "signal",
                    "data": [5.0, 8.0],
                    "modifiers": [
                        {"name": "mu", "type": "normfactor", "data": None},
                        {"name": "lumi", "type": "lumi", "data": None},
                        {"name": "stat_SR", "type": "staterror", "data": [1.0, 1.5]},
                    ],
                },
                {
                    "name": "bkg",
                    "data": [50.0, 40.0],
                    "modifiers": [
                        {"name": "norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                        {
                            "name": "shape",
                            "type": "histosys",
                            "data": {"hi_data": [52.0, 41.0], "lo_data": [48.0, 39.0]},
                        },
                        {"name": "bkg_unc_SR", "type": "shapesys", "data": [5.0, 4.0]},
                        {"name": "lumi", "type": "lumi", "data": None},
                        {"name": "stat_SR", "type": "staterror", "data": [2.0, 2.0]},
                    ],
                },
            ],
        },
        {
            "name": "CR",
            "samples": [
                {
                    "name": "bkg",
                    "data": [100.0],
                    "modifiers": [
                        {"name": "cr_sf", "type": "shapefactor", "data": None},
                        {"name": "norm", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}},
                    ],
                }
            ],
        },
    ]


LUMI = {"name": "lumi", "auxdata": [1.0], "sigmas": [0.02], "bounds": [[0.5, 1.5]], "inits": [1.0]}


def build(channels=None, poi_name="mu", parameter_configs=(LUMI,)):
    return build_model(
        base_channels() if channels is None else channels,
        poi_name=poi_name,
        parameter_configs=list(parameter_configs),
    )


def broken(edit):
    channels = base_channels()
    edit(channels)
    return channels


def test_base_model_builds():
    model = build()
    assert model.config.par_order == [
        "shape",
        "lumi",
        "mu",
        "norm",
        "cr_sf",
        "bkg_unc_SR",
        "stat_SR",
    ]


# -- invalid inputs: the error names the field -------------------------------------------------
def _set(path_fn, value):
    def edit(channels):
        obj, key = path_fn(channels)
        obj[key] = value

    return edit


INVALID_CHANNELS = {
    "mismatched bins": (
        _set(lambda c: (c[0]["samples"][1], "data"), [50.0, 40.0, 3.0]),
        r"channels\[0\]\.samples\[1\]\.data.*3 bins, expected 2",
    ),
    "histosys template length": (
        _set(lambda c: (c[0]["samples"][1]["modifiers"][1]["data"], "hi_data"), [52.0]),
        r"channels\[0\]\.samples\[1\]\.modifiers\[1\]\.data\.hi_data.*1 bins, expected 2",
    ),
    "staterror length": (
        _set(lambda c: (c[0]["samples"][0]["modifiers"][2], "data"), [1.0]),
        r"channels\[0\]\.samples\[0\]\.modifiers\[2\]\.data",
    ),
    "NaN yield": (
        _set(lambda c: (c[0]["samples"][0]["data"], 1), float("nan")),
        r"channels\[0\]\.samples\[0\]\.data\[1\].*not finite",
    ),
    "inf yield": (
        _set(lambda c: (c[1]["samples"][0]["data"], 0), float("inf")),
        r"channels\[1\]\.samples\[0\]\.data\[0\].*not finite",
    ),
    "NaN histosys template": (
        _set(lambda c: (c[0]["samples"][1]["modifiers"][1]["data"]["lo_data"], 0), float("nan")),
        r"modifiers\[1\]\.data\.lo_data\[0\].*not finite",
    ),
    "negative total": (
        _set(lambda c: (c[0]["samples"][1], "data"), [50.0, -9.0]),
        r"channels\['SR'\]\.bins\[1\].*negative",
    ),
    "unknown modifier type": (
        _set(lambda c: (c[0]["samples"][1]["modifiers"][0], "type"), "normsyst"),
        r"channels\[0\]\.samples\[1\]\.modifiers\[0\]\.type.*unknown modifier type 'normsyst'",
    ),
    "duplicated shapesys": (
        lambda c: c[0]["samples"][0]["modifiers"].append(
            {"name": "bkg_unc_SR", "type": "shapesys", "data": [1.0, 1.0]}
        ),
        r"channels\[0\]\.samples\[\d\]\.modifiers\[\d\].*shapesys 'bkg_unc_SR'.*more than one",
    ),
    "normsys hi <= 0": (
        _set(lambda c: (c[0]["samples"][1]["modifiers"][0]["data"], "hi"), 0.0),
        r"channels\[0\]\.samples\[1\]\.modifiers\[0\]\.data\.hi.*positive",
    ),
    "normsys lo < 0": (
        _set(lambda c: (c[1]["samples"][0]["modifiers"][1]["data"], "lo"), -0.5),
        r"channels\[1\]\.samples\[0\]\.modifiers\[1\]\.data\.lo.*positive",
    ),
    "normsys hi overflows the code-4 coefficients": (
        _set(lambda c: (c[0]["samples"][1]["modifiers"][0]["data"], "hi"), 1e306),
        r"channels\[0\]\.samples\[1\]\.modifiers\[0\]\.data\.hi.*too large",
    ),
    "negative uncertainty": (
        _set(lambda c: (c[0]["samples"][1]["modifiers"][2]["data"], 0), -1.0),
        r"modifiers\[2\]\.data\[0\].*negative uncertainty",
    ),
}


@pytest.mark.parametrize("edit,match", INVALID_CHANNELS.values(), ids=INVALID_CHANNELS.keys())
@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_invalid_channels_raise_with_field(edit, match):
    with pytest.raises(InvalidModel, match=match) as info:
        build(broken(edit))
    assert isinstance(info.value, JaxlikeError)
    assert info.value.path and info.value.path in str(info.value)


def test_negative_sample_yield_allowed_when_total_positive(jitted):
    """A negative yield of one sample (e.g. an interference term) is legal if ν_b > 0."""
    channels = broken(_set(lambda c: (c[0]["samples"][0], "data"), [-3.0, 8.0]))
    model = build(channels)
    obs = [40.0, 50.0, 98.0]
    spec = {
        "channels": channels,
        "observations": [{"name": "CR", "data": [obs[2]]}, {"name": "SR", "data": obs[:2]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [LUMI]}}],
        "version": "1.0.0",
    }
    pm = pyhf.Workspace(spec).model()
    data = model.make_data([98.0, 40.0, 50.0])  # channel order CR, SR
    np.testing.assert_array_equal(np.asarray(data), pyhf.Workspace(spec).data(pm))
    x = model.config.suggested_init()
    ours = float(jitted.logpdf(model, jnp.asarray(x), data))
    assert np.isfinite(ours)
    assert abs(ours - float(pm.logpdf(x, np.asarray(data))[0])) <= 1e-9 * abs(ours)


def test_missing_lumi_config():
    with pytest.raises(
        InvalidModel, match=r"measurement\.config\.parameters.*lumi.*'auxdata' and 'sigmas'"
    ):
        build(parameter_configs=())


def test_poi_not_in_model():
    with pytest.raises(InvalidModel, match=r"measurement\.config\.poi.*'nope'"):
        build(poi_name="nope")
    with pytest.raises(InvalidModel, match=r"measurement\.config\.poi.*not a scalar"):
        build(poi_name="stat_SR")


@pytest.mark.parametrize(
    "config,match",
    [
        ({"name": "shape", "inits": [0.0, 1.0]}, r"parameters\[1\]\.inits: expected 1 value"),
        ({"name": "stat_SR", "bounds": [[0.5, 1.5]]}, r"parameters\[1\]\.bounds: expected 2 value"),
        (
            {"name": "stat_SR", "sigmas": [0.1, 0.2, 0.3]},
            r"parameters\[1\]\.sigmas: expected 2 value",
        ),
        ({"name": "mu", "auxdata": [1.0]}, r"parameters\[1\]\.auxdata: .*does not use 'auxdata'"),
        ({"name": "mu", "bounds": [[2.0, 1.0]]}, r"parameters\[1\]\.bounds: .*\[low, high\]"),
        ({"name": "mu", "inits": [20.0]}, r"parameters: init 20\.0 of 'mu'.*outside bounds"),
    ],
)
def test_parameter_config_mismatch(config, match):
    with pytest.raises(InvalidModel, match=r"^measurement\.config\." + match):
        build(parameter_configs=(LUMI, config))


def test_wrong_data_length_to_fit():
    model = build()
    good = model.make_data([98.0, 40.0, 50.0])
    with pytest.raises(InvalidData, match=r"data has 9 entries.*3 observations \+ 7 auxdata = 10"):
        jaxlike.fit(model, good[:-1])
    with pytest.raises(InvalidParameters, match="init_pars"):
        jaxlike.fit(model, good, init_pars=np.ones(3))
    with pytest.raises(InvalidParameters, match="not in the model"):
        jaxlike.fit(model, good, fixed_params={"bogus": 1.0})


# -- template gradients ------------------------------------------------------------------------
_template_grad = eqx.filter_jit(eqx.filter_grad(lambda model, x, data: model.logpdf(x, data)))
TEMPLATE_LEAVES = (
    "nominal",
    "histosys_lo",
    "histosys_hi",
    "normsys_lo",
    "normsys_hi",
    "shapesys_unc",
    "staterror_unc",
)


def _check_template_grads(model, x, data, logpdf, rng, n_entries=4):
    """jax.grad w.r.t. each template leaf is finite and matches central differences (step
    1e-5 relative) at a few entries where the template is in use (mask on, or the nominal)."""
    grads = _template_grad(model, x, data)
    for leaf in TEMPLATE_LEAVES:
        g = np.asarray(getattr(grads, leaf))
        assert np.isfinite(g).all(), leaf
        values = np.asarray(getattr(model, leaf))
        if leaf == "nominal":
            candidates = np.argwhere(values != 0)
        else:
            kind = leaf.split("_")[0]
            candidates = np.argwhere(np.asarray(model.masks[kind]) & (values != 0))
        for idx in candidates[rng.permutation(len(candidates))[:n_entries]]:
            idx = tuple(idx)
            h = 1e-5 * abs(values[idx])

            def at(delta, leaf=leaf, idx=idx):
                new = getattr(model, leaf).at[idx].add(delta)
                return float(
                    logpdf(eqx.tree_at(lambda m, leaf=leaf: getattr(m, leaf), model, new), x, data)
                )

            fd = (at(h) - at(-h)) / (2 * h)
            # truncation O(h²) plus rounding of the two log L values (~100 ε |log L| / h)
            noise = 100 * np.finfo(float).eps * abs(at(0.0)) / h
            tol = 1e-5 * (abs(fd) + 1e-3 * abs(g).max()) + noise
            assert abs(g[idx] - fd) <= tol, (leaf, idx, g[idx], fd, tol)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_template_gradients_on_random_workspaces(data, randws, jitted):
    """All template leaves, including staterror σ and shapesys τ derived from the templates
    (and a staterror bin with σ = 0, where a naive sqrt would give a NaN gradient)."""
    spec = randws.draw(data.draw, 3)
    ws = jaxlike.Workspace(spec)
    model = ws.model()
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = randws.pars(model, rng, 2.0)
    _check_template_grads(model, x, jnp.asarray(ws.data(model)), jitted.logpdf, rng)


def test_template_gradients_on_sbottom(cases, jitted):
    case = cases("sbottom/patch.sbottom_1300_205_60")
    rng = np.random.default_rng(3)
    _check_template_grads(
        case.model, jnp.asarray(case.points[1]), case.data, jitted.logpdf, rng, n_entries=2
    )


# -- stacking and compile sharing -------------------------------------------------------------
def test_stack_models_rejects_different_layouts(cases):
    with pytest.raises(ValueError, match="different layout"):
        jaxlike.stack_models([cases("sbottom/patch.sbottom_1300_205_60").model, build()])
    with pytest.raises(ValueError):
        jaxlike.stack_models([])


def test_stacked_logpdf_equals_individual(cases, jitted):
    ids = [
        "sbottom/patch.sbottom_1300_205_60",
        "sbottom/patch.sbottom_1400_950_60",
        "sbottom/patch.sbottom_1500_850_60",
    ]
    models = [cases(i).model for i in ids]
    data, x = cases(ids[0]).data, jnp.asarray(cases(ids[0]).points[1])
    stacked = jaxlike.stack_models(models)
    batched = jitted.quick_jit(jax.vmap(lambda m: m.logpdf(x, data)))(stacked)
    singles = [float(jitted.logpdf(m, x, data)) for m in models]
    np.testing.assert_allclose(np.asarray(batched), singles, rtol=1e-13)
    assert len(set(singles)) == 3


def test_user_auxdata_is_not_baked_into_compiled_functions(jitted):
    """Two models that differ only in a configured auxdata value must not share a compiled
    auxdata(): the jitted function has to return each model's own value."""
    a = build(parameter_configs=(LUMI,))
    b = build(parameter_configs=({**LUMI, "auxdata": [1.2]},))
    lumi = a.config.auxdata_order.index("lumi")  # every set before it has one auxdata entry
    assert a.config.auxdata[lumi] == 1.0 and b.config.auxdata[lumi] == 1.2
    assert float(jitted.defaults(a)[1][lumi]) == 1.0
    assert float(jitted.defaults(b)[1][lumi]) == 1.2


def test_make_data_matches_workspace_data(cases):
    case = cases("validation/validation_2bin_2channel_shapesys")
    obs = [o["data"] for o in sorted(case.spec["observations"], key=lambda o: o["name"])]
    np.testing.assert_array_equal(
        np.asarray(case.model.make_data(np.concatenate(obs))), np.asarray(case.data)
    )


def test_template_change_keeps_compiled_function(cases):
    """Templates are data: a new template (eqx.tree_at) keeps the config, so the jitted
    function is traced once for both models, and the value follows the template."""
    case = cases("validation/validation_2bin_2channel_shapesys")
    model = case.model
    other = eqx.tree_at(lambda m: m.nominal, model, model.nominal * 1.5)
    assert other.config == model.config and hash(other.config) == hash(model.config)
    x = jnp.asarray(model.config.suggested_init())
    traces = []

    @eqx.filter_jit
    def f(m):
        traces.append(1)
        return m.logpdf(x, case.data)

    assert float(f(model)) != float(f(other))
    assert len(traces) == 1


# -- the Poisson and Gaussian terms ------------------------------------------------------------
mpmath.mp.dps = 40


def _exact_poisson(n, lam):
    n, lam = mpmath.mpf(n), mpmath.mpf(lam)
    return (n * mpmath.log(lam) if n else 0) - lam - mpmath.loggamma(n + 1)


@pytest.mark.parametrize("n", [0.0, 0.5, 3.0, 14.9, 15.0, 15.1, 100.0, 1e6, 1.9e11])
def test_poisson_logpdf_is_accurate(n):
    """Continuous Poisson against 40-digit arithmetic, on both sides of the n = 15 switch to
    the Stirling form. For n = 1.9e11 (ERJR's shapesys τ) the direct formula n log λ − λ −
    lgamma(n+1) that pyhf uses is off by ~1e-4; jaxlike's stays at ~1e-11."""
    lams = np.array([0.5, 0.999, 1.0, 1 + 1e-6, 1.3, 3.0]) * (n if n else 1.0)
    ours = np.asarray(poisson_logpdf(jnp.full(lams.shape, n), jnp.asarray(lams)))
    for lam, v in zip(lams, ours, strict=True):
        exact = _exact_poisson(n, float(lam))
        assert abs(v - exact) <= 2e-12 * max(1.0, abs(exact)), (n, lam, v, float(exact))
    if n > 1e10:
        direct = n * math.log(n) - n - math.lgamma(n + 1)
        assert abs(direct - float(_exact_poisson(n, n))) > 1e-6  # why jaxlike does not use it
        assert abs(ours[2] - _exact_poisson(n, n)) < 1e-12


def test_poisson_logpdf_gradient_is_finite_at_zero_count():
    g = jax.grad(poisson_logpdf, argnums=1)(0.0, 2.0)
    assert float(g) == -1.0
    g = jax.grad(poisson_logpdf, argnums=1)(20.0, 10.0)
    assert abs(float(g) - (20.0 / 10.0 - 1.0)) < 1e-14


def test_normal_logpdf():
    x, mu, sigma = 0.3, -0.2, 0.7
    ref = -0.5 * ((x - mu) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)
    assert abs(float(normal_logpdf(x, mu, sigma)) - ref) < 1e-15


def test_spec_is_not_mutated():
    channels = base_channels()
    before = copy.deepcopy(channels)
    build(channels)
    assert channels == before
