"""Shared test data and a session cache of built models.

The reference data live outside the repository (``../shared/data`` beside the checkout, or
``$JAXLIKE_DATA``) and are read in place. Without them the unit tests still run: collection
never reads a data file, and a test that needs one is skipped with :data:`DATA_MISSING`
(:func:`require_data`, or any error of the test that names a path under :data:`DATA`).
Building a model is cheap, but every new model *layout* costs JAX compiles (1-10 s), so the
models below are built once per session (:func:`get_case`) and the jitted test functions are
module-level (fixture ``jitted``): two models with the same layout share one compiled function.

Cases are named ``<group>/<name>``:

- ``validation/<file stem>``: pyhf's validation workspaces (key ``workspace``), built with the
  file's ``settings.modifier_settings`` when present;
- ``sbottom/BkgOnly`` (no POI) and ``sbottom/<patch>``: ATLAS sbottom region A, 3 patches;
- ``belle2``: the Belle II B+ -> K+ nu nu combined likelihood (232 parameters);
- ``erjr/<patch>``: 10 of the 66 ATLAS ERJR signal patches, spread over the mass grid.
"""

from __future__ import annotations

import os

# JAX's CPU LAPACK calls go through scipy's OpenBLAS; its threads fight over a busy 2-core CI
# machine (a 239×239 Cholesky then takes 100× longer). Read when OpenBLAS loads: set it first.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# The CLI enables JAX's persistent compilation cache (a process-global setting); tests call the
# CLI in-process, which would route every later compile of the session through the cache.
# The CI run of 2026-12-01 crashed inside XLA compilation with the cache on (the same test
# passed alone): tests keep it off.
os.environ["JAXLIKE_CACHE_DIR"] = ""

import functools  # noqa: E402
import json
from pathlib import Path
from types import SimpleNamespace

import equinox as eqx
import jax
import jax.numpy as jnp
import jsonpatch
import numpy as np
import pyhf
import pytest

import jaxlike
from jaxlike.model import build_model, value_grad_hess

DATA = Path(os.environ.get("JAXLIKE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
#: the folders of the data set (README.md, "Set-up": what they are and where they come from)
DATA_FOLDERS = ("atlas_erjr", "atlas_staus_lowmass", "belle2_bknunu", "pyhf_validation")
_ABSENT = [name for name in DATA_FOLDERS if not (DATA / name).is_dir()]
#: why the tests that need the reference data are skipped; None when the data are there
DATA_MISSING = (
    None
    if not _ABSENT
    else f"no test data in {DATA} (missing: {', '.join(_ABSENT)}); "
    "run JAXLIKE_DATA=/path/to/data pytest (README.md, Set-up)"
)
VALIDATION_FILES = sorted((DATA / "pyhf_validation").glob("*.json"))
SBOTTOM = DATA / "pyhf_validation" / "sbottom_regionA"
SBOTTOM_PATCHES = sorted(SBOTTOM.glob("patch.*.json"))
BELLE2 = DATA / "belle2_bknunu" / "combined_likelihood.json"
ERJR = DATA / "atlas_erjr"
ERJR_PATCHES = sorted(ERJR.glob("patch.*.json"))[::7]  # 10 of 66, spread over the grid

VALIDATION_IDS = [f"validation/{p.stem}" for p in VALIDATION_FILES]
SBOTTOM_IDS = ["sbottom/BkgOnly"] + [f"sbottom/{p.stem}" for p in SBOTTOM_PATCHES]
ERJR_IDS = [f"erjr/{p.stem}" for p in ERJR_PATCHES]
#: cases whose logpdf pyhf evaluates to 1e-9 (all but ERJR, see test_pyhf_parity_model.py)
PARITY_IDS = VALIDATION_IDS + SBOTTOM_IDS + ["belle2"]
ALL_IDS = PARITY_IDS + ERJR_IDS

# -- jitted functions shared by all tests (compiled once per model layout) ---------------------
#: XLA options for test-side compiles: LLVM -O0 halves compile time (which dominates these tests)
#: and leaves float semantics unchanged (no fast-math on XLA:CPU).
QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def quick_jit(fun):
    """``eqx.filter_jit`` with :data:`QUICK_COMPILE`."""
    return eqx.filter_jit(fun, compiler_options=QUICK_COMPILE)


logpdf = quick_jit(lambda model, pars, data: model.logpdf(pars, data))
structured_vgh = quick_jit(value_grad_hess)


@quick_jit
def evaluate(model, points, data):
    """(logpdf, expected_data, expected_actualdata) at each row of ``points``: one compile per
    layout and number of points serves every evaluation test."""
    one = lambda x: (model.logpdf(x, data), model.expected_data(x), model.expected_actualdata(x))  # noqa: E731
    return jax.vmap(one)(points)


@quick_jit
def defaults(model):
    """(fixed_mask, auxdata) of a model, computed from its templates."""
    return model.fixed_mask(), model.auxdata()


@quick_jit
def autodiff_vgh(model, pars, data):
    """(2NLL, jax.grad, jax.hessian) of ``model.twice_nll``: the reference for value_grad_hess."""
    f = model.twice_nll
    return f(pars, data), jax.grad(f)(pars, data), jax.hessian(f)(pars, data)


#: compiled XLA:CPU programs each hold memory mappings; one pytest process compiling ~1000
#: programs reaches the kernel's vm.max_map_count (65530) and the next compilation segfaults
#: (seen in a full run). Past this many mappings the compiled-program caches are dropped.
MAX_MAPPINGS = 30000


def _mappings():
    try:
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """After each test module, drop JAX's compilation caches if the process maps too much."""
    yield
    if _mappings() > MAX_MAPPINGS:
        import gc

        jax.clear_caches()
        gc.collect()


@pytest.fixture(scope="session")
def jitted():
    """The shared jitted functions (and ``quick_jit`` itself): ``logpdf(model, pars, data)``,
    ``evaluate(model, points, data)`` → (logpdf, expected_data, expected_actualdata) per point,
    ``defaults(model)`` → (fixed_mask, auxdata), ``structured_vgh`` (value, gradient and
    Hessian of 2NLL from :func:`jaxlike.model.value_grad_hess`) and ``autodiff_vgh`` (the
    same from jax.grad / jax.hessian)."""
    return SimpleNamespace(
        quick_jit=quick_jit,
        logpdf=logpdf,
        evaluate=evaluate,
        defaults=defaults,
        structured_vgh=structured_vgh,
        autodiff_vgh=autodiff_vgh,
    )


def pytest_configure(config):
    # pyhf 0.7.6 validates with jsonschema's deprecated RefResolver on every Workspace/Model
    config.addinivalue_line(
        "filterwarnings", "ignore:jsonschema.RefResolver is deprecated:DeprecationWarning"
    )


# -- without the reference data: skip what needs it, with one message --------------------------
def require_data():
    """Skip the calling test (or fixture) with :data:`DATA_MISSING` if the data are absent."""
    if DATA_MISSING:
        pytest.skip(DATA_MISSING)


def pytest_report_header(config):
    return DATA_MISSING or f"jaxlike test data: {DATA}"


def pytest_collection_modifyitems(config, items):
    """Tests parametrized over data files have an empty parameter set without the data: give
    their skip the data message instead of pytest's "got empty parameter set"."""
    if not DATA_MISSING:
        return
    for item in items:
        skip = item.get_closest_marker("skip")
        if skip and str(skip.kwargs.get("reason", "")).startswith("got empty parameter set"):
            item.add_marker(pytest.mark.skip(reason=DATA_MISSING), append=False)


def _names_data(exc) -> bool:
    """Whether an error is about a path under DATA (a file the test needed and does not have)."""
    where = str(DATA)
    return where in str(getattr(exc, "filename", "") or "") or where in str(exc)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Without the data, a test (or fixture) that fails reading a file under DATA is reported as
    skipped with :data:`DATA_MISSING`, not as an error: the data are an input, not a bug. All
    these skips carry one location (this file), so the summary shows them as one line (a skip of
    the test's own that names a path under DATA joins them)."""
    outcome = yield
    report = outcome.get_result()
    if not DATA_MISSING:
        return
    failed_on_data = report.failed and call.excinfo and _names_data(call.excinfo.value)
    if failed_on_data or (report.skipped and str(DATA) in str(report.longrepr)):
        report.outcome = "skipped"
        report.longrepr = (__file__, None, f"Skipped: {DATA_MISSING}")


@functools.cache
def read_json(path: Path):
    return json.loads(Path(path).read_text())


class Case:
    """A workspace spec with its jaxlike and pyhf models and data (each built once, lazily)."""

    def __init__(
        self, case_id, spec, modifier_settings=None, poi_name="<measurement>", settings=None
    ):
        self.id = case_id
        self.spec = spec
        self.modifier_settings = modifier_settings
        self.settings = settings or {}  # a validation file's "settings" (poi_test, test_stat)
        meas = spec["measurements"][0]["config"]
        self.poi_name = meas["poi"] if poi_name == "<measurement>" else poi_name
        self.parameter_configs = meas.get("parameters", [])

    @functools.cached_property
    def model(self):
        return build_model(
            self.spec["channels"],
            poi_name=self.poi_name,
            parameter_configs=self.parameter_configs,
            modifier_settings=self.modifier_settings,
        )

    @functools.cached_property
    def data(self):
        return jnp.asarray(jaxlike.Workspace(self.spec).data(self.model))

    @functools.cached_property
    def pyhf_model(self):
        kwargs = {"poi_name": self.poi_name}
        if self.modifier_settings is not None:
            kwargs["modifier_settings"] = self.modifier_settings
        return pyhf.Workspace(self.spec).model(**kwargs)

    @functools.cached_property
    def pyhf_data(self):
        return np.asarray(pyhf.Workspace(self.spec).data(self.pyhf_model), dtype=float)

    def random_points(self, n, seed=0):
        """``n`` parameter vectors (rows): the inits, then random points around them, the last
        one with the POI exactly 0 (where the model has a POI).

        Constrained parameters move by half their constraint width (normal: σ; Poisson:
        1/sqrt(τ)), free ones are drawn in [0.5, 1.5] x init (the POI in [0, 3]); all clipped to
        the suggested bounds, so expected yields stay positive on the real likelihoods.
        """
        cfg = self.model.config
        rng = np.random.default_rng(seed)
        lo, hi = cfg.suggested_bounds().T
        init = cfg.suggested_init()
        out = [init]
        for _ in range(n - 1):
            x = init.copy()
            for name in cfg.par_order:
                ps, sl = cfg.par_map[name], cfg.par_slice(name)
                if ps.constraint == "normal":
                    width = np.asarray(ps.sigmas or [1.0] * ps.n_parameters)
                elif ps.constraint == "poisson":
                    width = 1.0 / np.sqrt(np.asarray(ps.factors))
                else:
                    x[sl] = init[sl] * rng.uniform(0.5, 1.5, ps.n_parameters)
                    continue
                x[sl] = init[sl] + 0.5 * width * rng.normal(size=ps.n_parameters)
            if cfg.poi_index is not None:
                x[cfg.poi_index] = rng.uniform(0.0, 3.0)
            out.append(np.clip(x, lo, hi))
        if cfg.poi_index is not None and n > 1:
            out[-1][cfg.poi_index] = 0.0
        return np.stack(out)

    @functools.cached_property
    def points(self):
        """The 5 standard evaluation points (see :meth:`random_points`)."""
        return self.random_points(5, seed=0)

    @functools.cached_property
    def evaluated(self):
        """(logpdf, expected_data, expected_actualdata) of the jaxlike model at ``points``."""
        return tuple(
            np.asarray(v) for v in evaluate(self.model, jnp.asarray(self.points), self.data)
        )


def _make_case(case_id):
    require_data()
    group, _, name = case_id.partition("/")
    if group == "validation":
        obj = read_json(DATA / "pyhf_validation" / f"{name}.json")
        settings = obj.get("settings", {}).get("modifier_settings")
        return Case(
            case_id, obj["workspace"], modifier_settings=settings, settings=obj.get("settings")
        )
    if group == "sbottom":
        bkg = read_json(SBOTTOM / "BkgOnly.json")
        if name == "BkgOnly":
            return Case(case_id, bkg, poi_name=None)
        return Case(case_id, jsonpatch.apply_patch(bkg, read_json(SBOTTOM / f"{name}.json")))
    if group == "erjr":
        bkg = read_json(ERJR / "BkgOnly.json")
        return Case(case_id, jsonpatch.apply_patch(bkg, read_json(ERJR / f"{name}.json")))
    if case_id == "belle2":
        return Case(case_id, read_json(BELLE2))
    raise KeyError(case_id)


@functools.cache
def get_case(case_id) -> Case:
    """The session-wide Case of ``case_id`` (built once per test session)."""
    return _make_case(case_id)


@pytest.fixture(scope="session")
def cases():
    """Session cache of :class:`Case` objects: ``cases("belle2").model``."""
    return get_case


@pytest.fixture(params=PARITY_IDS)
def parity_case(request):
    return get_case(request.param)


@pytest.fixture(params=ERJR_IDS)
def erjr_case(request):
    return get_case(request.param)


@pytest.fixture(params=ALL_IDS)
def any_case(request):
    return get_case(request.param)


@pytest.fixture(params=VALIDATION_IDS)
def validation_case(request):
    return get_case(request.param)


@pytest.fixture
def pyhf_converged():
    """pyhf's numpy backend with a converged SLSQP (tolerance 1e-10); restored afterwards."""
    saved = pyhf.get_backend()
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-10))
    yield pyhf
    pyhf.set_backend(*saved)


# -- random workspaces for property tests ------------------------------------------------------
#: interpolation settings exercised by the random workspaces: (modifier_settings, alpha_max,
#: channel counts). pyhf semantics: a dict replaces the defaults. ``alpha_max`` keeps histosys
#: code2 inside |α| <= 1, where pyhf 0.7.6 is right. Each (setting, channel count) is one
#: compiled layout, so only the default codes are drawn with both 2 and 3 channels.
INTERP_SETTINGS = {
    "code4-code4p": (None, 3.0, (2, 3)),
    "code1-code0": (
        {"normsys": {"interpcode": "code1"}, "histosys": {"interpcode": "code0"}},
        3.0,
        (3,),
    ),
    "code4-code2": (
        {"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code2"}},
        1.0,
        (2,),
    ),
    "code1-code4p": (
        {"normsys": {"interpcode": "code1"}, "histosys": {"interpcode": "code4p"}},
        3.0,
        (3,),
    ),
}
_NBINS = (2, 3, 1)


def draw_workspace(draw, n_channels):
    """A pyhf workspace with all 7 modifier types over ``n_channels`` channels.

    The layout (channels, samples, modifier wiring) depends only on ``n_channels``, so every
    drawn workspace of one size compiles once; hypothesis draws the numbers: positive nominal
    yields, normsys ratios, histosys templates within ±15 % (so yields stay positive for
    |α| <= 3), shapesys/staterror uncertainties (staterror may be 0: a fixed bin) and data.
    """
    from hypothesis import strategies as st

    def floats(lo, hi, n):
        return draw(st.lists(st.floats(lo, hi), min_size=n, max_size=n))

    def shifted(nom, rel):
        return [x * (1.0 + u) for x, u in zip(nom, floats(-rel, rel, len(nom)), strict=True)]

    channels, observations = [], []
    for c in range(n_channels):
        nb, ch = _NBINS[c], f"ch{c}"
        nom = {s: floats(1.0, 100.0, nb) for s in ("signal", "bkg_a", "bkg_b")}
        stat_frac = st.one_of(st.just(0.0), st.floats(0.01, 0.2))  # 0 or a sane relative σ
        stat = {s: [x * draw(stat_frac) for x in nom[s]] for s in nom}
        if draw(st.booleans()):
            stat["signal"][0] = stat["bkg_a"][0] = 0.0  # a staterror bin with σ = 0
        signal = [
            {"name": "mu", "type": "normfactor", "data": None},
            {"name": "lumi", "type": "lumi", "data": None},
            {
                "name": "sig_xsec",
                "type": "normsys",
                "data": dict(zip(("hi", "lo"), floats(0.8, 1.3, 2), strict=True)),
            },
            {
                "name": "sig_shape",
                "type": "histosys",
                "data": {
                    "hi_data": shifted(nom["signal"], 0.15),
                    "lo_data": shifted(nom["signal"], 0.15),
                },
            },
            {"name": f"staterror_{ch}", "type": "staterror", "data": stat["signal"]},
        ]
        bkg_a = [
            {
                "name": "jes",
                "type": "normsys",
                "data": {"hi": draw(st.floats(1.0, 1.3)), "lo": draw(st.floats(0.7, 1.0))},
            },
            {
                "name": "jes",
                "type": "histosys",
                "data": {
                    "hi_data": shifted(nom["bkg_a"], 0.15),
                    "lo_data": shifted(nom["bkg_a"], 0.15),
                },
            },
            {"name": "lumi", "type": "lumi", "data": None},
            {
                "name": f"bkg_a_unc_{ch}",
                "type": "shapesys",
                "data": [x * f for x, f in zip(nom["bkg_a"], floats(0.02, 0.5, nb), strict=True)],
            },
            {"name": f"staterror_{ch}", "type": "staterror", "data": stat["bkg_a"]},
        ]
        bkg_b = [
            {
                "name": "modelling",
                "type": "histosys",
                "data": {
                    "hi_data": shifted(nom["bkg_b"], 0.15),
                    "lo_data": shifted(nom["bkg_b"], 0.15),
                },
            },
            {
                "name": "bkg_b_norm",
                "type": "normsys",
                "data": dict(zip(("hi", "lo"), floats(0.7, 1.3, 2), strict=True)),
            },
        ]
        if c == 0:
            bkg_b.append({"name": "sf_ch0", "type": "shapefactor", "data": None})
        else:
            bkg_b.append({"name": "bkg_b_scale", "type": "normfactor", "data": None})
        channels.append(
            {
                "name": ch,
                "samples": [
                    {"name": "signal", "data": nom["signal"], "modifiers": signal},
                    {"name": "bkg_a", "data": nom["bkg_a"], "modifiers": bkg_a},
                    {"name": "bkg_b", "data": nom["bkg_b"], "modifiers": bkg_b},
                ],
            }
        )
        observations.append(
            {
                "name": ch,
                "data": [
                    float(x) for x in draw(st.lists(st.integers(0, 300), min_size=nb, max_size=nb))
                ],
            }
        )
    lumi = {
        "name": "lumi",
        "auxdata": [1.0],
        "sigmas": [0.03],
        "bounds": [[0.5, 1.5]],
        "inits": [1.0],
    }
    return {
        "channels": channels,
        "observations": observations,
        "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": [lumi]}}],
        "version": "1.0.0",
    }


def random_pars(model, rng, alpha_max=3.0):
    """A parameter vector of a random workspace: α in [-alpha_max, alpha_max], γ in [0.7, 1.3],
    lumi in [0.9, 1.1], normfactors in [0, 3] (the POI exactly 0 one time in four),
    shapefactors in [0.5, 2]."""
    cfg = model.config
    x = cfg.suggested_init().copy()
    for name in cfg.par_order:
        ps, sl = cfg.par_map[name], cfg.par_slice(name)
        types = set(ps.modifier_types)
        if types & {"normsys", "histosys"}:
            x[sl] = rng.uniform(-alpha_max, alpha_max, ps.n_parameters)
        elif types & {"shapesys", "staterror"}:
            x[sl] = rng.uniform(0.7, 1.3, ps.n_parameters)
        elif "lumi" in types:
            x[sl] = rng.uniform(0.9, 1.1)
        elif "shapefactor" in types:
            x[sl] = rng.uniform(0.5, 2.0, ps.n_parameters)
        else:
            x[sl] = rng.uniform(0.0, 3.0)
    if rng.uniform() < 0.25:
        x[cfg.poi_index] = 0.0
    return x


@pytest.fixture(scope="session")
def randws():
    """Helpers for ``@given(st.data())`` tests: ``randws.draw(data.draw, n_channels)`` and
    ``randws.pars(model, rng, alpha_max)``."""
    return SimpleNamespace(draw=draw_workspace, pars=random_pars)


@pytest.fixture(scope="session", params=list(INTERP_SETTINGS))
def interp_setting(request):
    """(name, modifier_settings, alpha_max, channel counts) of one interpolation setting."""
    return (request.param, *INTERP_SETTINGS[request.param])
