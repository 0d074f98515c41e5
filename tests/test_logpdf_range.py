"""logpdf over every parameter's whole range, and code-4 normsys factors that are negative.

pyhf's code-4 normsys factor is a degree-6 polynomial inside |α| < 1 that can be ≤ 0 for
extreme asymmetric lo/hi: ATLAS stau lowMass has lo = 0.01, hi = 105.6 on the Higgs sample of
``JET_JER_EffectiveNP_1`` (f ≤ 0 for α in [−0.95, −0.04]). pyhf multiplies the sample by the
negative factor and the bin total stays positive; jaxlike must give the same finite logpdf,
gradient and Hessian there (a log-space evaluation gave NaN and stalled the fit at 2NLL 211.04).

- every shared likelihood: each parameter swept over its whole bound range (the others at their
  inits), jaxlike's logpdf against pyhf's (numpy backend) to 1e-9, and a finite gradient;
- the structured Hessian (``value_grad_hess``) in the negative-factor region and next to the
  zeros of the factor;
- random workspaces with normsys lo/hi log-uniform in [1e-3, 1e3], code4 and code1, and the
  code-4 factor itself against a 40-digit evaluation of pyhf's definition;
- the staus DS_240_80 free fit reaches pyhf's minimum.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import conftest
import jax
import jax.numpy as jnp
import jsonpatch
import mpmath
import numpy as np
import pyhf
import pytest
from conftest import Case, quick_jit, read_json
from scipy.optimize import brentq
from scipy.special import gammaln, xlogy

import jaxlike
from jaxlike.model import normsys_factor

DATA = Path(os.environ.get("JAXLIKE_DATA", conftest.DATA))
STAUS = DATA / "atlas_staus_lowmass"
ERJR = DATA / "atlas_erjr"
VALIDATION = DATA / "pyhf_validation"
SBOTTOM = VALIDATION / "sbottom_regionA"

LOGPDF_RTOL = 1e-9
EPS = np.finfo(float).eps
#: the sweep: 7 equidistant points from bound to bound, and 4 points at init + k·width (width
#: = the constraint's σ or 1/sqrt(τ), or a tenth of the range for a free parameter) that put a
#: normsys α inside the code-4 polynomial, three of them in staus' negative-factor interval
N_EQUIDISTANT = 7
INNER = np.array([-0.93, -0.5, -0.05, 0.6])

STAUS_PATCHES = ("DS_120_1", "DS_240_80", "DS_360_1")
ERJR_PATCHES = ("ERJR_100p0_20p0", "ERJR_350p0_100p0")
VALIDATION_FILES = sorted(VALIDATION.glob("*.json"))
SWEEP_IDS = (
    [f"staus/{p}" for p in STAUS_PATCHES]
    + ["erjr/BkgOnly"]
    + [f"erjr/{p}" for p in ERJR_PATCHES]
    + ["belle2"]
    + [f"validation/{p.stem}" for p in VALIDATION_FILES]
    + ["sbottom/patch.sbottom_1300_205_60"]
)
#: models whose default sweep takes the first and last bin of each per-bin parameter set only
#: (Belle II: 180 staterror γ of 232 parameters); every bin under ``-m slow``
EVERY_BIN_SLOW = {"belle2"}
SLOW_SWEEP_IDS = ["belle2", "sbottom/BkgOnly", "sbottom/patch.sbottom_1400_950_60"]


def _patched(folder, patch):
    return jsonpatch.apply_patch(read_json(folder / "BkgOnly.json"), read_json(folder / patch))


def _make_case(case_id):
    group, _, name = case_id.partition("/")
    if group == "staus":
        return Case(case_id, _patched(STAUS, f"patch.{name}_Staus.json"))
    if group in ("erjr", "sbottom"):
        folder = ERJR if group == "erjr" else SBOTTOM
        if name == "BkgOnly":  # no signal sample: no POI
            return Case(case_id, read_json(folder / "BkgOnly.json"), poi_name=None)
        return Case(
            case_id,
            _patched(folder, f"{name}.json" if group == "sbottom" else f"patch.{name}.json"),
        )
    if group == "validation":
        obj = read_json(VALIDATION / f"{name}.json")
        settings = obj.get("settings", {}).get("modifier_settings")
        return Case(case_id, obj["workspace"], modifier_settings=settings)
    if case_id == "belle2":
        return Case(case_id, read_json(DATA / "belle2_bknunu" / "combined_likelihood.json"))
    raise KeyError(case_id)


@functools.cache
def get_case(case_id):
    """The module-wide Case of ``case_id`` (built once; honours $JAXLIKE_DATA)."""
    return _make_case(case_id)


@quick_jit
def value_and_grad(model, points, data):
    """(logpdf, ∇ logpdf) at each row of ``points``."""
    return jax.vmap(jax.value_and_grad(lambda x: model.logpdf(x, data)))(points)


def sweep_points(cfg, every_bin=True, n_equidistant=N_EQUIDISTANT):
    """Rows of parameter vectors: for every parameter (in pyhf order), the suggested init with
    that one parameter moved over its bounds (see :data:`INNER`). ``every_bin=False`` takes
    only the first and last component of a per-bin set (staterror, shapesys, shapefactor).
    Returns (points, index of the moved parameter per row)."""
    init, bounds = cfg.suggested_init(), cfg.suggested_bounds()
    rows, moved = [], []
    for name in cfg.par_order:
        ps = cfg.par_map[name]
        components = range(ps.n_parameters)
        if not every_bin and ps.n_parameters > 2:
            components = (0, ps.n_parameters - 1)
        for j in components:
            k = ps.start + j
            lo, hi = bounds[k]
            if ps.constraint == "normal":
                width = (ps.sigmas or [1.0] * ps.n_parameters)[j]
            elif ps.constraint == "poisson":
                width = 1.0 / np.sqrt(ps.factors[j])
            else:
                width = (hi - lo) / 10.0
            values = np.concatenate(
                [np.linspace(lo, hi, n_equidistant), np.clip(init[k] + width * INNER, lo, hi)]
            )
            x = np.tile(init, (len(values), 1))
            x[:, k] = values
            rows.append(x)
            moved += [k] * len(values)
    return np.concatenate(rows), np.asarray(moved)


# -- an exact reference where pyhf's own arithmetic is coarser than 1e-9 ----------------------
mpmath.mp.dps = 40


def _poisson_terms(pm, data):
    """(observed counts, index into expected_data) of every Poisson term of a pyhf model: the
    main bins and the Poisson-constrained (shapesys) auxiliary data."""
    cfg = pm.config
    idx = list(range(cfg.nmaindata))
    k = cfg.nmaindata
    for name in cfg.auxdata_order:
        ps = cfg.param_set(name)
        if ps.pdf_type == "poisson":
            idx += range(k, k + ps.n_parameters)
        k += ps.n_parameters
    idx = np.asarray(idx)
    return np.asarray(data)[idx], idx


def pyhf_rounding_bound(n, lam):
    """Bound on the rounding error of pyhf's Poisson terms n log λ − λ − lgamma(n+1): each of
    the three terms and the two subtractions round to ε relative, so 4ε Σ (|n log λ| + λ +
    lgamma(n+1)). At ERJR's shapesys τ ≈ 1.9e11 that is ~4e-3 per term."""
    return 4 * EPS * np.sum(np.abs(xlogy(n, lam)) + np.abs(lam) + gammaln(n + 1.0), axis=-1)


@functools.cache
def _mp_poisson(n, lam):
    """n log λ − λ − lgamma(n+1) in 40 digits from float64 inputs (cached: most auxiliary terms
    repeat from point to point of a sweep)."""
    if lam < 0:
        return mpmath.mpf("nan")
    n, lam = mpmath.mpf(n), mpmath.mpf(lam)
    return (n * mpmath.log(lam) if n else 0) - lam - mpmath.loggamma(n + 1)


def _gaussian_constraints(cfg, points, aux):
    """Σ log N(a | θ, σ) over the normal-constrained parameters, per row of ``points``, in
    float64 (a sum of O(1) terms without cancellation)."""
    total, k = np.zeros(len(points)), 0
    for name in cfg.auxdata_order:
        ps = cfg.param_set(name)
        if ps.pdf_type == "normal":
            theta, sigma = points[:, cfg.par_slice(name)], np.asarray(ps.width())
            a = aux[k : k + ps.n_parameters]
            total += np.sum(-0.5 * ((a - theta) / sigma) ** 2 - np.log(sigma), axis=1)
            total -= ps.n_parameters * 0.5 * np.log(2 * np.pi)
        k += ps.n_parameters
    return total


def exact_logpdf(pm, points, data):
    """log L at each row of ``points`` from pyhf's (float64) expected data: the Poisson terms
    in 40 digits, the Gaussian constraints in float64. Also returns (n, λ) of the Poisson
    terms."""
    n, idx = _poisson_terms(pm, data)
    lam = np.stack([np.asarray(pm.expected_data(x))[idx] for x in points])
    poisson = np.array(
        [
            float(mpmath.fsum(_mp_poisson(float(a), float(b)) for a, b in zip(n, row, strict=True)))
            for row in lam
        ]
    )
    gauss = _gaussian_constraints(pm.config, points, np.asarray(data)[pm.config.nmaindata :])
    return poisson + gauss, n, lam


def reference_logpdf(case, points):
    """pyhf's logpdf at each point or, where pyhf's own rounding (its bound at the inits)
    exceeds a tenth of the tolerance, the exact value of pyhf's expected data. Returns
    (reference, pyhf's value, pyhf's rounding bound per point or None)."""
    pm, pdata = case.pyhf_model, case.pyhf_data
    pyhf_values = np.array([float(pm.logpdf(x, pdata)[0]) for x in points])
    n, idx = _poisson_terms(pm, pdata)
    at_init = pm.expected_data(pm.config.suggested_init())
    bound0 = pyhf_rounding_bound(n, np.asarray(at_init)[idx])
    if bound0 <= 0.1 * LOGPDF_RTOL * max(1.0, abs(pyhf_values[0])):
        return pyhf_values, pyhf_values, None
    exact, n, lam = exact_logpdf(pm, points, pdata)
    return exact, pyhf_values, pyhf_rounding_bound(n, np.clip(lam, 0, None))


def _check_sweep(case_id, every_bin):
    case = get_case(case_id)
    cfg = case.model.config
    np.testing.assert_array_equal(np.asarray(case.data), case.pyhf_data)
    points, moved = sweep_points(cfg, every_bin)
    ours, grad = (np.asarray(v) for v in value_and_grad(case.model, jnp.asarray(points), case.data))
    ref, pyhf_value, bound = reference_logpdf(case, points)
    finite = np.isfinite(ref)
    assert finite.mean() >= 0.75, (case_id, int((~finite).sum()))
    # finite exactly where pyhf is (a negative or zero bin total makes both NaN / −inf)
    np.testing.assert_array_equal(np.isfinite(ours), finite, err_msg=case_id)
    with np.errstate(invalid="ignore"):  # NaN − NaN where both are NaN
        err = np.abs(ours - ref) / np.maximum(1.0, np.abs(ref))
    bad = np.flatnonzero(finite & ~(err <= LOGPDF_RTOL))
    assert not len(bad), [
        (cfg.par_names[moved[k]], float(points[k, moved[k]]), float(ours[k]), float(ref[k]))
        for k in bad[:5]
    ]
    assert np.isfinite(grad[finite]).all(), case_id
    if bound is not None:  # the exact reference was used: pyhf is off by its rounding only
        assert np.all(np.abs(pyhf_value - ref)[finite] <= bound[finite]), case_id


@pytest.mark.parametrize("case_id", SWEEP_IDS)
def test_logpdf_over_whole_range_matches_pyhf(case_id):
    """Each parameter over its whole bound range: jaxlike's logpdf finite exactly where pyhf's
    is and equal to it to 1e-9 (relative, absolute below 1), gradient finite. On ERJR
    (shapesys τ ≈ 1.9e11) pyhf's own value is quantised (~1.5e-4): there the
    reference is the exact logpdf of pyhf's expected data, and pyhf is checked to lie within
    its rounding bound of it."""
    _check_sweep(case_id, every_bin=case_id not in EVERY_BIN_SLOW)


@pytest.mark.slow
@pytest.mark.parametrize("case_id", SLOW_SWEEP_IDS)
def test_logpdf_over_whole_range_matches_pyhf_more(case_id):
    """The same on every bin of Belle II and on the other sbottom workspaces."""
    _check_sweep(case_id, every_bin=True)


def test_staus_has_negative_code4_factors_in_the_sweep():
    """The sweep reaches the negative-factor region on a real likelihood (else the tests above
    would not exercise it): the Higgs sample's factor of JET_JER_EffectiveNP_1 at init + k·σ."""
    model = get_case("staus/DS_240_80").model
    p = model.config.par_names.index("JET_JER_EffectiveNP_1")
    row = list(model.wiring.normsys).index(p)
    on = np.asarray(model.masks["normsys"][row])
    lo, hi = np.asarray(model.normsys_lo[row])[on], np.asarray(model.normsys_hi[row])[on]
    assert (lo.min(), hi.max()) == pytest.approx((0.01, 105.646), rel=1e-4)
    f = np.asarray(normsys_factor("code4", jnp.asarray(INNER)[:, None], lo, hi))
    assert (f < 0).any(axis=1).tolist() == [True, True, True, False]


# -- the structured Hessian where a factor is negative or zero ----------------------------------
def _staus_jer():
    case = get_case("staus/DS_240_80")
    model = case.model
    p = model.config.par_names.index("JET_JER_EffectiveNP_1")
    row = list(model.wiring.normsys).index(p)
    on = np.asarray(model.masks["normsys"][row])
    s, b = np.unravel_index(np.argmax(np.where(on, np.asarray(model.normsys_hi[row]), 0)), on.shape)
    lo, hi = float(model.normsys_lo[row][s, b]), float(model.normsys_hi[row][s, b])
    return case, p, lo, hi


def _scale(h):
    return np.maximum(np.sqrt(np.abs(np.diag(h))), 1e-3)


def test_structured_hessian_in_negative_factor_region(jitted):
    """value_grad_hess against jax.grad / jax.hessian (the same 1e-10 · d_i d_j rule as
    test_hessian.py) at four α of JET_JER_EffectiveNP_1 where the Higgs factor is < 0, at the
    inits and at a random point."""
    case, p, lo, hi = _staus_jer()
    base = [case.model.config.suggested_init(), case.random_points(2, seed=3)[1]]
    for alpha in (-0.9, -0.6, -0.3, -0.1):
        assert float(normsys_factor("code4", alpha, lo, hi)) < 0
        for x0 in base:
            x = jnp.asarray(x0).at[p].set(alpha)
            f_s, g_s, h_s = (np.asarray(v) for v in jitted.structured_vgh(case.model, x, case.data))
            f_a, g_a, h_a = (np.asarray(v) for v in jitted.autodiff_vgh(case.model, x, case.data))
            d = _scale(h_a)
            assert np.isfinite(h_s).all() and np.isfinite(g_s).all()
            assert abs(f_s - f_a) <= 1e-12 * abs(f_a)
            np.testing.assert_array_less(np.abs(g_s - g_a), 1e-10 * (np.abs(g_a) + d))
            np.testing.assert_array_less(np.abs(h_s - h_a), 1e-10 * np.outer(d, d))


def test_structured_hessian_next_to_the_zeros_of_the_factor(jitted):
    """1e-9 and 1e-6 from the two zeros of the Higgs factor (|f| ~ 1e-9 to 3e-5), the row of
    JET_JER_EffectiveNP_1 against central differences of the gradient (E A_p = E_{−p} f'_p:
    no cancellation). The diagonal uses f''/f in closed form; A'_p + A_p² (two terms ~1/f²)
    would lose ~ε f'²/|f| of E_{−p} here. (Within ~1e-15 of a zero, |f| is below the rounding
    of the polynomial itself; see jaxlike.model._interp.normsys_log_factor.)"""
    case, p, lo, hi = _staus_jer()
    factor = jax.jit(lambda a: normsys_factor("code4", a, lo, hi))
    zeros = [brentq(lambda a: float(factor(a)), *ab, xtol=1e-13) for ab in ((-1, -0.5), (-0.5, 0))]
    assert zeros == pytest.approx([-0.95095, -0.03832], abs=1e-5)
    h = 3e-7  # α ± h stays clear of the zeros
    for alpha in np.add.outer(zeros, [-1e-6, -1e-9, 1e-9, 1e-6]).ravel():
        assert 1e-11 < abs(float(factor(alpha))) < 1e-4
        x = jnp.asarray(case.model.config.suggested_init()).at[p].set(alpha)
        f, g, hess = (np.asarray(v) for v in jitted.structured_vgh(case.model, x, case.data))
        assert np.isfinite(f) and np.isfinite(g).all() and np.isfinite(hess).all()
        g_plus = np.asarray(jitted.structured_vgh(case.model, x.at[p].add(h), case.data)[1])
        g_minus = np.asarray(jitted.structured_vgh(case.model, x.at[p].add(-h), case.data)[1])
        fd = (g_plus - g_minus) / (2 * h)
        d = _scale(hess)
        # central differences: truncation ~h² (third derivative), rounding ~ε |g| / h
        np.testing.assert_array_less(np.abs(hess[p] - fd), 1e-7 * d[p] * d, err_msg=str(alpha))


# -- random workspaces with extreme normsys ------------------------------------------------------
#: α grid of the random workspaces: [−5, 5] and dense inside the code-4 polynomial
ALPHAS = np.unique(
    np.concatenate(
        [np.linspace(-5, 5, 21), np.array([0.03, 0.1, 0.3, 0.5, 0.7, 0.9, 0.97]) * [[-1], [1]]],
        axis=None,
    )
)
N_RANDOM_WS = 8


def _log_uniform(rng):
    return float(np.exp(rng.uniform(np.log(1e-3), np.log(1e3))))


def extreme_workspace(rng, nbins=2):
    """3 samples (signal ~1-10, backgrounds ~10-50 and ~100-300 events per bin) with normsys
    a (signal and bkg1), b (bkg1 and bkg2), c (bkg2), each with lo and hi drawn independently
    log-uniform in [1e-3, 1e3] per sample (so lo < 1 < hi, lo > 1 > hi and one-sided pairs all
    occur), and Poisson data around the nominal total."""

    def normsys(name):
        return {
            "name": name,
            "type": "normsys",
            "data": {"hi": _log_uniform(rng), "lo": _log_uniform(rng)},
        }

    def nominal(a, b):
        return [float(v) for v in rng.uniform(a, b, nbins)]

    samples = [
        {
            "name": "signal",
            "data": nominal(1, 10),
            "modifiers": [{"name": "mu", "type": "normfactor", "data": None}, normsys("a")],
        },
        {"name": "bkg1", "data": nominal(10, 50), "modifiers": [normsys("a"), normsys("b")]},
        {"name": "bkg2", "data": nominal(100, 300), "modifiers": [normsys("b"), normsys("c")]},
    ]
    total = np.sum([s["data"] for s in samples], axis=0)
    return {
        "channels": [{"name": "ch", "samples": samples}],
        "observations": [{"name": "ch", "data": [float(v) for v in rng.poisson(total)]}],
        "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }


def extreme_points(cfg, rng, n_random=30):
    """Each normsys α over ALPHAS with the others at 0, then random joint points in [−5, 5]³
    and in [−1, 1]³ (all three inside the polynomial), μ = 1."""
    idx = [cfg.par_names.index(n) for n in ("a", "b", "c")]
    rows = []
    for k in idx:
        x = np.tile(cfg.suggested_init(), (len(ALPHAS), 1))
        x[:, k] = ALPHAS
        rows.append(x)
    for width in (5.0, 1.0):
        x = np.tile(cfg.suggested_init(), (n_random, 1))
        x[:, idx] = rng.uniform(-width, width, (n_random, 3))
        rows.append(x)
    return np.concatenate(rows)


CODE_SETTINGS = {
    "code4": None,  # pyhf's default (normsys code4)
    "code1": {"normsys": {"interpcode": "code1"}, "histosys": {"interpcode": "code0"}},
}


@pytest.mark.parametrize("code", list(CODE_SETTINGS))
def test_extreme_normsys_logpdf_matches_pyhf(code):
    """logpdf finite exactly where pyhf's is and equal to it to 1e-9; with code4 the grid
    reaches negative sample factors where pyhf's bin totals stay positive."""
    settings = CODE_SETTINGS[code]
    kwargs = {} if settings is None else {"modifier_settings": settings}
    negative_but_finite = 0
    for seed in range(N_RANDOM_WS):
        rng = np.random.default_rng(1000 + seed)
        spec = extreme_workspace(rng)
        model = jaxlike.Workspace(spec).model(**kwargs)
        assert model.wiring.normsys_code == code
        pws = pyhf.Workspace(spec)
        pm = pws.model(**kwargs)
        pdata = np.asarray(pws.data(pm))
        points = extreme_points(model.config, rng)
        ours, grad = (np.asarray(v) for v in value_and_grad(model, jnp.asarray(points), pdata))
        ref = np.array([float(pm.logpdf(x, pdata)[0]) for x in points])
        finite = np.isfinite(ref)
        np.testing.assert_array_equal(np.isfinite(ours), finite, err_msg=f"seed {seed}")
        with np.errstate(invalid="ignore"):  # NaN − NaN where both are NaN
            err = np.abs(ours - ref) / np.maximum(1.0, np.abs(ref))
        assert np.all(err[finite] <= LOGPDF_RTOL), (seed, float(err[finite].max()))
        assert np.isfinite(grad[finite]).all(), seed
        factors = np.asarray(
            normsys_factor(
                code,
                jnp.asarray(points[:, :, None, None])[:, model.wiring.normsys],
                model.normsys_lo,
                model.normsys_hi,
            )
        )
        negative = (factors < 0) & np.asarray(model.masks["normsys"])[None]
        negative_but_finite += int((negative.any(axis=(1, 2, 3)) & finite).sum())
    if code == "code4":
        assert negative_but_finite >= 20, negative_but_finite
    else:
        assert negative_but_finite == 0


@functools.cache
def _mp_code4_coefficients(lo, hi):
    """a_1..a_6 of pyhf's code-4 polynomial in 40 digits (value, slope and curvature of the
    exponentials matched at ±1), and R = Σ |right-hand side| (the size the float64 solve
    rounds against)."""
    lo, hi = mpmath.mpf(lo), mpmath.mpf(hi)
    rows = [[x**i for i in range(1, 7)] for x in (1, -1)]
    rows += [[i * x ** (i - 1) for i in range(1, 7)] for x in (1, -1)]
    rows += [[i * (i - 1) * x ** (i - 2) for i in range(1, 7)] for x in (1, -1)]
    lh, ll = mpmath.log(hi), mpmath.log(lo)
    rhs = [hi - 1, lo - 1, hi * lh, -lo * ll, hi * lh**2, lo * ll**2]
    return mpmath.lu_solve(mpmath.matrix(rows), mpmath.matrix(rhs)), float(sum(map(abs, rhs)))


def _mp_factor(code, alpha, lo, hi):
    """pyhf's definition in 40 digits: hi^α for α ≥ 1 (code4) or α ≥ 0 (code1), lo^(−α) on
    the other side, code4 inside |α| < 1: 1 + Σ a_i α^i. Returns (f, R) with R = 0 outside
    the polynomial."""
    a = mpmath.mpf(float(alpha))
    if code == "code1" or abs(a) >= 1:
        return (mpmath.mpf(float(hi)) ** a if a >= 0 else mpmath.mpf(float(lo)) ** (-a)), 0.0
    coef, size = _mp_code4_coefficients(float(lo), float(hi))
    return 1 + sum(coef[i] * a ** (i + 1) for i in range(6)), size


@pytest.mark.parametrize("code", ["code4", "code1"])
def test_normsys_factor_matches_mpmath(code):
    """The factor itself, 100 random (lo, hi) log-uniform in [1e-3, 1e3] over ALPHAS, against
    :func:`_mp_factor`. Tolerance from the conditioning of the evaluation: outside the
    polynomial exp(α ln h) is exact to ~ε (1 + |α ln h|) relative (|ln h| ≤ 7); inside, the
    coefficients are a fixed linear map of the right-hand side (hi − 1, ..., lo ln² lo), so
    the error scales with its size R (up to ~1e5 here): |Δf| ≤ 16 ε (1 + R). (Both bounds
    hold with a margin of 5-8 on these draws.)"""
    rng = np.random.default_rng(7)
    lo = np.array([_log_uniform(rng) for _ in range(100)])
    hi = np.array([_log_uniform(rng) for _ in range(100)])
    lo[:2], hi[:2] = (0.01, 1e3), (105.646, 1e-3)  # staus' pair; lo > 1 > hi, both extreme
    ours = np.asarray(normsys_factor(code, jnp.asarray(ALPHAS)[:, None], lo, hi))
    n_negative = 0
    for i, alpha in enumerate(ALPHAS):
        for j in range(len(lo)):
            ref, size = _mp_factor(code, alpha, lo[j], hi[j])
            if size:
                tol = 16 * EPS * (1 + size)
            else:
                tol = 4 * EPS * (1 + 7.0 * abs(alpha)) * abs(float(ref))
            n_negative += ref < 0
            assert abs(ours[i, j] - float(ref)) <= tol, (alpha, lo[j], hi[j], ours[i, j], ref)
    if code == "code4":
        assert n_negative > 50, n_negative
        assert not (ours[np.abs(ALPHAS) >= 1] < 0).any()  # the exponentials are positive
    else:
        assert n_negative == 0 and (ours > 0).all()


# -- the fit that stalled on the NaN wall --------------------------------------------------------
#: pyhf 0.7.6 MINUIT / jax-SLSQP 1e-12 free-fit minimum with patch DS_240_80 (staus README)
STAUS_PYHF_MIN = 206.5927376


def test_staus_free_fit_reaches_pyhf_minimum():
    """jaxlike.fit on staus lowMass DS_240_80 reaches pyhf's best 2NLL (log-space code 4 had a
    NaN wall for α in [−0.95, −0.04] and stopped at 211.04)."""
    case = get_case("staus/DS_240_80")
    result = jaxlike.fit(case.model, case.data)
    assert bool(result.converged), result.message()
    assert float(result.twice_nll) <= STAUS_PYHF_MIN + 1e-6, float(result.twice_nll)
    at_best = -2.0 * float(case.pyhf_model.logpdf(np.asarray(result.bestfit), case.pyhf_data)[0])
    assert abs(float(result.twice_nll) - at_best) <= 1e-9 * abs(at_best)
    # pyhf 0.7.6 MINUIT (tolerance 1e-6): μ̂ = 0.545013 at 2NLL 206.5927375736
    mu = float(result.bestfit[case.model.config.poi_index])
    assert mu == pytest.approx(0.545013, abs=1e-3)
