"""jaxlike.physics: B+ -> K+ nu nu WET rate (BSZ2015), HPQCD-2022 null, Gauss-Legendre bin
integrals and eigen-decorrelation, checked against EOS 1.0.17 / Belle II numbers and scipy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import conftest
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad

from jaxlike.exceptions import InvalidModel, JaxlikeError
from jaxlike.physics import (
    C_VL_SM,
    EOS_V1_0_17,
    HPQCD2022_NULL,
    PARAMETER_NAMES,
    Decorrelated,
    InvalidCovariance,
    bins_inside,
    branching_fraction,
    dbr_dq2,
    decorrelate,
    form_factors,
    gauss_legendre_bin_integrals,
    load_bk_formfactors,
    null_dbr_dq2,
    z_of,
)

DATA = Path(os.environ.get("JAXLIKE_DATA", conftest.DATA))
FF_FILE = DATA / "belle2_bknunu" / "bk_formfactors.json"
#: Belle II truth-q² edges: sentinel [-1, 0], then 100 bins up to 22.885 GeV²
TRUTH_EDGES = np.concatenate([[-1.0], np.linspace(0.0, 22.885, 101)])
Q2_MAX = (EOS_V1_0_17.m_B - EOS_V1_0_17.m_K) ** 2


@pytest.fixture(scope="module")
def ff():
    return load_bk_formfactors(FF_FILE)


@pytest.fixture(scope="module")
def ff_json():
    return json.loads(FF_FILE.read_text())


def sm_rate(alpha):
    return lambda q2: dbr_dq2(q2, C_VL_SM, 0.0, 0.0, alpha)


def scipy_integral(fn, a, b):
    value, _ = quad(lambda x: float(fn(jnp.asarray(x))), a, b, epsabs=0.0, epsrel=1e-13, limit=200)
    return value


# -- inputs -------------------------------------------------------------------------------------
def test_constants_match_data_file(ff_json):
    k = ff_json["rate_constants_eos_v1.0.17"]
    assert EOS_V1_0_17.G_F == k["G_F_GeVm2"]
    assert EOS_V1_0_17.alpha_e == pytest.approx(k["alpha_e_mb"], rel=1e-14)
    assert EOS_V1_0_17.hbar == k["hbar_GeV_s"]
    assert EOS_V1_0_17.tau_B == k["tau_Bu_s"]
    assert EOS_V1_0_17.abs_Vtb == k["abs_Vtb"]
    assert EOS_V1_0_17.abs_Vts == k["abs_Vts"]
    assert EOS_V1_0_17.m_B == k["m_Bu_kinematics"]
    assert EOS_V1_0_17.m_K == k["m_Ku_kinematics"]
    assert EOS_V1_0_17.mb_minus_ms == k["mb_minus_ms_MSbar_at_4p2GeV_effective"]
    assert C_VL_SM == k["C_VL_SM"]
    n = ff_json["null_distribution_hpqcd2022_as_in_knunu_reinterpretation_mini"]
    assert list(HPQCD2022_NULL.a) == n["fplus_coefficients_a0_a1_a2"]
    assert HPQCD2022_NULL.N == n["N"]
    assert HPQCD2022_NULL.log_factor == n["log_factor_L"]
    assert HPQCD2022_NULL.M_pole == n["M_pole_GeV"]
    assert (HPQCD2022_NULL.m_B, HPQCD2022_NULL.m_K) == (n["m_B"], n["m_K"])
    assert HPQCD2022_NULL.alpha_inv == n["alpha_EW_inv"]
    assert (HPQCD2022_NULL.X_t, HPQCD2022_NULL.sin2_thetaW) == (n["X_t"], n["sin2_thetaW"])
    assert HPQCD2022_NULL.vtbvts == n["abs_VtbVts"]
    assert n["t0"] == 0.0
    masses = ff_json["parametrisation"]["masses_GeV"]
    from jaxlike.physics import BSZ_M_B, BSZ_M_K, BSZ_POLE_0, BSZ_POLE_PLUS_T

    assert (BSZ_M_B, BSZ_M_K) == (masses["m_B"], masses["m_K"])
    assert (BSZ_POLE_PLUS_T, BSZ_POLE_0) == (masses["m_Bs_star_1m"], masses["m_Bs0_0p"])


def test_load_bk_formfactors(ff, ff_json):
    central, cov, names = ff
    assert central.shape == (8,) and cov.shape == (8, 8)
    np.testing.assert_array_equal(central, ff_json["central"])
    np.testing.assert_array_equal(cov, ff_json["covariance"])
    assert names == PARAMETER_NAMES
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), ff_json["sigma"], rtol=1e-12)


@pytest.mark.parametrize(
    "edit, field, words",
    [
        (lambda o: o["covariance"][0].__setitem__(1, 1.0), "covariance", "not symmetric"),
        (lambda o: o["covariance"].pop(), "covariance", "shape"),
        (lambda o: o["central"].__setitem__(2, float("nan")), "central", "not finite"),
        (lambda o: o["central"].append(0.0), "central", "shape"),
        (lambda o: o["parameter_names"].reverse(), "parameter_names", "expected"),
        (lambda o: o.pop("covariance"), "covariance", "missing"),
        (lambda o: o["covariance"][3].__setitem__(3, -1.0), "covariance", "variance"),
    ],
)
def test_load_bk_formfactors_rejects(tmp_path, ff_json, edit, field, words):
    obj = json.loads(json.dumps(ff_json))
    edit(obj)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(obj))
    with pytest.raises(InvalidModel) as info:
        load_bk_formfactors(bad)
    assert info.value.path == f"{bad}:{field}"
    assert words in str(info.value)


def test_load_bk_formfactors_unreadable(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidModel, match="broken.json"):
        load_bk_formfactors(bad)


# -- form factors -------------------------------------------------------------------------------
def test_form_factors_structure(ff):
    central = ff[0]
    t_plus, t_minus = (5.279 + 0.492) ** 2, (5.279 - 0.492) ** 2
    t_0 = t_plus * (1 - np.sqrt(1 - t_minus / t_plus))
    assert abs(float(z_of(t_0))) < 1e-15
    fp, f0, ft = form_factors(0.0, central)
    assert float(fp) == float(f0) == central[0]  # f0(0) = f+(0) = alpha_0^{f+}
    assert float(ft) == central[5]
    q2 = 10.0
    dz = float(z_of(q2) - z_of(0.0))
    fp, f0, ft = form_factors(q2, central)
    a = central
    assert float(fp) == pytest.approx((a[0] + a[1] * dz + a[2] * dz**2) / (1 - q2 / 5.415**2))
    assert float(f0) == pytest.approx((a[0] + a[3] * dz + a[4] * dz**2) / (1 - q2 / 5.630**2))
    assert float(ft) == pytest.approx((a[5] + a[6] * dz + a[7] * dz**2) / (1 - q2 / 5.415**2))


# -- rates: EOS 1.0.17 and Belle II numbers -----------------------------------------------------
def test_sm_branching_fraction(ff):
    b_sm = float(branching_fraction(C_VL_SM, 0.0, 0.0, ff[0]))
    assert b_sm == pytest.approx(4.8117e-6, rel=1e-4)
    b_belle = float(branching_fraction(C_VL_SM, 0.0, 0.0, ff[0], vtbvts=0.04185))
    assert b_belle == pytest.approx(4.97e-6, rel=1e-3)
    assert b_belle / b_sm == pytest.approx((0.04185 / EOS_V1_0_17.vtbvts) ** 2, rel=1e-13)


@pytest.mark.parametrize(
    "coeffs, expected", [((1, 0, 0), 1.100e-7), ((0, 1, 0), 3.152e-7), ((0, 0, 1), 4.604e-7)]
)
def test_unit_coefficient_branching_fractions(ff, coeffs, expected):
    assert float(branching_fraction(*coeffs, ff[0])) == pytest.approx(expected, rel=1e-3)


def test_rate_is_sum_of_even_terms(ff):
    a = ff[0]
    q2 = jnp.linspace(0.1, 22.8, 37)
    parts = [dbr_dq2(q2, *c, a) for c in ((1, 0, 0), (0, 1, 0), (0, 0, 1))]
    full = dbr_dq2(q2, -2.0, 3.0, -0.5, a)
    np.testing.assert_allclose(full, 4 * parts[0] + 9 * parts[1] + 0.25 * parts[2], rtol=1e-13)
    bs = [float(branching_fraction(*c, a)) for c in ((1, 0, 0), (0, 1, 0), (0, 0, 1))]
    total = float(branching_fraction(2.0, -3.0, 0.5, a))
    assert total == pytest.approx(4 * bs[0] + 9 * bs[1] + 0.25 * bs[2], rel=1e-13)


def test_rate_zero_outside_kinematic_range(ff):
    q2 = jnp.array([-1.0, -1e-9, Q2_MAX, Q2_MAX + 1.0, 40.0])
    assert np.all(np.asarray(dbr_dq2(q2, 1.0, 1.0, 1.0, ff[0])) == 0.0)
    assert np.all(np.asarray(null_dbr_dq2(q2)) == 0.0)
    assert float(dbr_dq2(0.5, 1.0, 0.0, 0.0, ff[0])) > 0.0
    g = jax.grad(lambda a: jnp.sum(dbr_dq2(q2, 1.0, 1.0, 1.0, a)))(jnp.asarray(ff[0]))
    assert np.all(np.asarray(g) == 0.0)


def test_branching_fraction_matches_scipy(ff):
    a = ff[0]
    rate = lambda q2: dbr_dq2(q2, 1.3, 0.7, 0.4, a)  # noqa: E731
    for rng in (None, (0.0, 4.0), (2.5, 17.3), (10.0, 30.0)):
        lo, hi = (0.0, Q2_MAX) if rng is None else (rng[0], min(rng[1], Q2_MAX))
        ref = scipy_integral(rate, lo, hi)
        got = float(branching_fraction(1.3, 0.7, 0.4, a, q2_range=rng))
        assert got == pytest.approx(ref, rel=1e-10)


def test_null_integral():
    integrals = gauss_legendre_bin_integrals(null_dbr_dq2, TRUTH_EDGES)
    assert float(integrals[0]) == 0.0  # sentinel bin below q2 = 0
    assert float(jnp.sum(integrals)) == pytest.approx(4.966e-6, rel=1e-3)
    ref = scipy_integral(null_dbr_dq2, 0.0, 22.885)
    assert float(jnp.sum(integrals)) == pytest.approx(ref, rel=1e-10)


# -- quadrature ---------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["sm", "wet", "null"])
def test_bin_integrals_match_scipy(ff, which):
    fns = {
        "sm": sm_rate(ff[0]),
        "wet": lambda q2: dbr_dq2(q2, 0.5, 2.0, 1.5, ff[0]),
        "null": null_dbr_dq2,
    }
    fn = fns[which]
    got = np.asarray(gauss_legendre_bin_integrals(fn, TRUTH_EDGES))
    assert got.shape == (101,)
    for j in (1, 2, 37, 80, 100):
        ref = scipy_integral(fn, TRUTH_EDGES[j], TRUTH_EDGES[j + 1])
        assert got[j] == pytest.approx(ref, rel=1e-10), j


def test_bin_integrals_polynomial_exact_and_batched():
    edges = np.array([-2.0, -0.5, 0.0, 1.0, 3.5])
    got = gauss_legendre_bin_integrals(lambda x: jnp.stack([x**5, 3.0 * x**2 + 1.0]), edges, 4)
    assert got.shape == (2, 4)
    a, b = edges[:-1], edges[1:]
    np.testing.assert_allclose(got[0], (b**6 - a**6) / 6, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(got[1], b**3 - a**3 + b - a, rtol=1e-13)


def test_bin_integrals_single_evaluation():
    calls = []

    def fn(x):
        calls.append(x.shape)
        return x

    gauss_legendre_bin_integrals(fn, TRUTH_EDGES, n_nodes=16)
    assert calls == [(101 * 16,)]


def test_clip_and_bins_inside():
    edges = np.array([-1.0, 0.0, 1.0, 2.0, 3.0, 4.0])
    inside = bins_inside(edges, 0.5, 2.5)
    np.testing.assert_array_equal(inside, [False, True, True, True, False])
    np.testing.assert_array_equal(bins_inside(TRUTH_EDGES, 0.0, 22.885), [False] + [True] * 100)

    def fn(x):  # undefined (NaN) below 0.5: never evaluated there under clip
        return jnp.where(x >= 0.5, x**2, jnp.nan)

    got = np.asarray(gauss_legendre_bin_integrals(fn, edges, clip=(0.5, 2.5)))
    expected = [0.0, (1 - 0.125) / 3, (8 - 1) / 3, (2.5**3 - 8) / 3, 0.0]
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=0)
    g = jax.grad(
        lambda c: jnp.sum(gauss_legendre_bin_integrals(lambda x: c * fn(x), edges, clip=(0.5, 2.5)))
    )(2.0)
    assert float(g) == pytest.approx(sum(expected), rel=1e-14)


def test_bin_integrals_bad_inputs():
    with pytest.raises(ValueError, match="increasing"):
        gauss_legendre_bin_integrals(lambda x: x, np.array([0.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="edges"):
        gauss_legendre_bin_integrals(lambda x: x, np.array([1.0]))
    with pytest.raises(ValueError, match="lo < hi"):
        bins_inside(np.array([0.0, 1.0]), 2.0, 1.0)
    with pytest.raises(ValueError, match="last axis"):
        gauss_legendre_bin_integrals(lambda x: x[:3], np.array([0.0, 1.0]))


# -- differentiability --------------------------------------------------------------------------
def test_grad_bin_integral_wrt_alpha_matches_finite_differences(ff):
    edges = TRUTH_EDGES[40:44]

    def bin_integral(alpha, coeffs=(1.0, 2.0, 3.0)):
        rate = lambda q2: dbr_dq2(q2, *coeffs, alpha)  # noqa: E731
        return gauss_legendre_bin_integrals(rate, edges)[1]

    a0 = jnp.asarray(ff[0])
    grad = np.asarray(jax.jit(jax.grad(bin_integral))(a0))
    h = 1e-6
    fd = np.array(
        [
            (bin_integral(a0.at[i].add(h)) - bin_integral(a0.at[i].add(-h))) / (2 * h)
            for i in range(8)
        ]
    )
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8 * np.max(np.abs(fd)))
    assert np.all(grad != 0.0)  # every parameter matters for V + S + T


def test_grad_branching_fraction_wrt_coefficients(ff):
    a = jnp.asarray(ff[0])
    g = jax.grad(lambda c: branching_fraction(c[0], c[1], c[2], a))(jnp.array([1.0, 2.0, 3.0]))
    b = [float(branching_fraction(*c, a)) for c in ((1, 0, 0), (0, 1, 0), (0, 0, 1))]
    np.testing.assert_allclose(g, [2 * b[0], 4 * b[1], 6 * b[2]], rtol=1e-12)


# -- decorrelation ------------------------------------------------------------------------------
def test_decorrelate_form_factor_covariance(ff, ff_json):
    central, cov, names = ff
    dec = decorrelate(central, cov, names=names)
    assert isinstance(dec, Decorrelated)
    assert dec.n == 8 and dec.names == PARAMETER_NAMES
    np.testing.assert_allclose(dec.covariance(), cov, rtol=0, atol=1e-12 * np.max(np.abs(cov)))
    np.testing.assert_array_equal(dec(jnp.zeros(8)), central)
    np.testing.assert_allclose(dec.eigenvalues, ff_json["covariance_eigenvalues"], rtol=1e-6)
    t = np.asarray(dec.transform)
    np.testing.assert_allclose(t @ t.T, cov, rtol=0, atol=1e-12 * np.max(np.abs(cov)))


def test_decorrelate_random_and_batched():
    rng = np.random.default_rng(7)
    a = rng.normal(size=(5, 5))
    cov = a @ a.T + 0.1 * np.eye(5)
    mean = rng.normal(size=5)
    dec = decorrelate(mean, cov)
    assert dec.n == 5 and dec.names is None
    np.testing.assert_allclose(dec.covariance(), cov, rtol=0, atol=1e-12 * np.max(np.abs(cov)))
    np.testing.assert_array_equal(dec(np.zeros(5)), mean)
    nu = rng.normal(size=(3, 4, 5))
    theta = dec(nu)
    assert theta.shape == (3, 4, 5)
    np.testing.assert_allclose(theta[1, 2], dec(nu[1, 2]), rtol=1e-14)
    np.testing.assert_allclose(dec.to_nu(theta), nu, rtol=1e-10, atol=1e-12)
    # the module is a pytree: jit and differentiate through it
    jac = jax.jacfwd(jax.jit(lambda d, v: d(v)), argnums=1)(dec, jnp.zeros(5))
    np.testing.assert_allclose(jac, dec.transform, rtol=1e-14)


def test_decorrelate_clips_rank_deficient():
    v = np.array([1.0, 2.0, -1.0])
    cov = np.outer(v, v)  # eigenvalues 0, 0, 6 up to rounding (possibly tiny negatives)
    dec = decorrelate(np.zeros(3), cov)
    assert np.all(np.asarray(dec.eigenvalues) >= 0.0)
    np.testing.assert_allclose(dec.covariance(), cov, rtol=0, atol=1e-12 * 4)


@pytest.mark.parametrize(
    "mean, cov, field, words",
    [
        (np.zeros(3), np.diag([1.0, -3e-5, 2.0]), "covariance", "not positive semi-definite"),
        (np.zeros(2), np.array([[1.0, 0.5], [0.4, 1.0]]), "covariance", "not symmetric"),
        (np.zeros(2), np.array([[1.0, np.nan], [np.nan, 1.0]]), "covariance", "not finite"),
        (np.array([0.0, np.inf]), np.eye(2), "mean", "not finite"),
        (np.zeros(3), np.eye(2), "covariance", "does not match"),
        (np.zeros((2, 2)), np.eye(2), "mean", "1-D"),
    ],
)
def test_decorrelate_rejects(mean, cov, field, words):
    with pytest.raises(InvalidCovariance) as info:
        decorrelate(mean, cov)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, InvalidModel)
    assert isinstance(err, JaxlikeError)
    assert err.path == field and words in str(err)
    assert str(err).startswith(f"{field}: ")


def test_decorrelate_rejects_details():
    with pytest.raises(InvalidCovariance, match=r"eigenvalue -3e-05 at index 0"):
        decorrelate(np.zeros(3), np.diag([1.0, -3e-5, 2.0]))
    with pytest.raises(InvalidCovariance, match="names"):
        decorrelate(np.zeros(2), np.eye(2), names=["a"])
    dec = decorrelate(np.zeros(2), np.eye(2), names=["a", "b"])
    with pytest.raises(InvalidCovariance, match="nu"):
        dec(np.zeros(3))
