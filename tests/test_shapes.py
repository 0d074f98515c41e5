"""Tests of jaxlike.shapes against independent references.

References: adaptive quadrature (scipy's QUADPACK, graded towards where the mass is) of the
densities written out here from their definitions (Crystal Ball as ROOT's RooCBShape, mirrored
for the right tail), mpmath's erfc and closed forms at 30 digits, scipy's PchipInterpolator,
numpy's interp and chebval, and direct sums of fine bins. Derivatives are checked against
central finite differences.
"""

from __future__ import annotations

import doctest
import importlib
import math

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
from numpy.polynomial import chebyshev as npcheb
from scipy import integrate, interpolate

import jaxlike  # noqa: F401  (float64)
from jaxlike import shapes
from jaxlike.exceptions import InvalidScanConfig

mp.mp.dps = 30

#: XLA options for test-side compiles (as in conftest.py): LLVM -O0 halves compile time, which
#: dominates these tests, and leaves float semantics unchanged.
QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def qjit(fun, **kwargs):
    return jax.jit(fun, compiler_options=QUICK_COMPILE, **kwargs)


# -- quadrature references ----------------------------------------------------------------------
def cb_density(t, al, nl, ar, nr):
    """Unnormalised double-sided Crystal Ball at t, from the definition (float64)."""
    if t < -al:
        return (nl / al) ** nl * math.exp(-(al**2) / 2) * (nl / al - al - t) ** (-nl)
    if t > ar:
        return (nr / ar) ** nr * math.exp(-(ar**2) / 2) * (nr / ar - ar + t) ** (-nr)
    return math.exp(-(t**2) / 2)


_GRADE = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0)
_YMAX = 700.0  # infinite ends: t = c e^y, y in [0, 700] (power-law mass beyond is < e^-70)


def _quad(f, a, b):
    return integrate.quad(f, a, b, epsabs=0.0, epsrel=1e-12, limit=200)[0]


def _piece(f, lo, hi):
    """∫_lo^hi f for an interval on one side of 0 where |f| decreases away from 0: graded
    sub-intervals from the inner end; an infinite end through t = c e^y."""
    if hi == np.inf or lo == -np.inf:
        c, tail = (lo if hi == np.inf else hi), f
        f = lambda y: tail(c * math.exp(y)) * abs(c) * math.exp(y)  # noqa: E731
        lo, hi = 0.0, _YMAX
    pts = (
        [lo + (hi - lo) * x for x in _GRADE]
        if lo >= 0
        else [hi - (hi - lo) * x for x in _GRADE][::-1]
    )
    return sum(_quad(f, a, b) for a, b in zip(pts[:-1], pts[1:], strict=True))


def quad_ref(f, a, b, breaks):
    """∫_a^b f split at ``breaks`` (which must include 0 and the points where f changes form)."""
    pts = [a] + [c for c in sorted(breaks) if a < c < b] + [b]
    return sum(_piece(f, lo, hi) for lo, hi in zip(pts[:-1], pts[1:], strict=True))


class CBRef:
    """Reference pdf and bin contents of a Crystal Ball (μ, σ, α_L, n_L, α_R, n_R)."""

    def __init__(self, mu, sigma, al, nl, ar, nr):
        self.pars = (mu, sigma, al, nl, ar, nr)
        self.f = lambda t: cb_density(t, al, nl, ar, nr)
        self.breaks = [-al, 0.0, ar]
        self.norm = quad_ref(self.f, -np.inf, np.inf, self.breaks)

    def t(self, x):
        mu, sigma = self.pars[:2]
        return (x - mu) / sigma if np.isfinite(x) else x

    def mass(self, a, b):
        return quad_ref(self.f, self.t(a), self.t(b), self.breaks) / self.norm

    def cdf(self, x):
        if x <= self.pars[0]:
            return self.mass(-np.inf, x)
        return 1.0 - self.mass(x, np.inf)

    def pdf(self, x):
        return self.f(self.t(x)) / (self.norm * self.pars[1])


def mp_gauss_mass(a, b):
    """P(a ≤ Z ≤ b) from mpmath's erfc at 30 digits (from the side of the bin: no cancellation)."""
    a, b = mp.mpf(a), mp.mpf(b)
    if a + b < 0:
        a, b = -b, -a
    return (mp.erfc(a / mp.sqrt(2)) - mp.erfc(b / mp.sqrt(2))) / 2


def rel_err(got, ref):
    got = np.asarray(got, dtype=float)
    ref = np.asarray([float(r) for r in np.ravel(ref)]).reshape(got.shape)
    return np.max(np.abs(got - ref) / np.abs(ref))


def bins(edges):
    return zip(edges[:-1], edges[1:], strict=True)


# -- jitted functions shared by the tests (one compile per input shape) ---------------------------
gauss_cdf = qjit(shapes.gaussian_cdf)
gauss_binned = qjit(shapes.gaussian_binned)
cb_cdf = qjit(shapes.crystal_ball_cdf)
cb_pdf = qjit(shapes.crystal_ball_pdf)
cb_binned = qjit(shapes.crystal_ball_binned)
cb_dcdf = qjit(jax.vmap(jax.grad(shapes.crystal_ball_cdf), in_axes=(0,) + (None,) * 6))
#: bin contents for a batch of parameter vectors [B, 6]
cb_batch = qjit(jax.vmap(lambda e, p: shapes.crystal_ball_binned(e, *p), in_axes=(None, 0)))


@qjit
def cb_jacobians(edges, pars):
    """Forward- and reverse-mode Jacobians [B, nb, 6] of the bin contents for pars [B, 6]."""
    f = lambda e, p: shapes.crystal_ball_binned(e, *p)  # noqa: E731
    fwd = jax.vmap(jax.jacfwd(f, argnums=1), in_axes=(None, 0))(edges, pars)
    rev = jax.vmap(jax.jacrev(f, argnums=1), in_axes=(None, 0))(edges, pars)
    return fwd, rev


def central_differences(fun, x, h=1e-6):
    """∂fun/∂x_k [..., K] by central differences, steps h·max(1, |x_k|); x [B, K], all points
    evaluated in one batched call of ``fun`` ([B', K] → [B', ...])."""
    b, k = x.shape
    step = h * np.maximum(1.0, np.abs(x))  # [B, K]
    shifts = np.einsum("bk,kj->bkj", step, np.eye(k))  # [B, K, K]
    pts = np.concatenate([x[:, None] + shifts, x[:, None] - shifts]).reshape(-1, k)
    vals = np.asarray(fun(pts)).reshape(2, b, k, -1)
    return np.moveaxis((vals[0] - vals[1]) / (2 * step[..., None]), 1, -1)  # [B, nb, K]


CB_CASES = [
    (0.7, 1.9, 1.3, 2.5, 2.1, 4.0),
    (-2.0, 0.3, 0.5, 1.2, 0.8, 1.5),
    (0.0, 1.0, 2.5, 10.0, 1.0, 3.0),
    (5.0, 2.0, 1.0, 1.1, 3.0, 50.0),
]


@pytest.fixture(scope="module", params=range(len(CB_CASES)), ids=lambda i: f"cb{i}")
def cb(request):
    return CBRef(*CB_CASES[request.param])


@pytest.mark.parametrize("module", ["_pdf", "_poly", "_table", "_window"])
def test_docstring_examples(module):
    mod = importlib.import_module(f"jaxlike.shapes.{module}")
    result = doctest.testmod(mod, extraglobs={"jnp": jnp}, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# -- Gaussian -----------------------------------------------------------------------------------
def test_gaussian_cdf_and_far_tail_bins():
    mu, sigma = 1.5, 0.2
    t = np.array([-37.0, -20.0, -3.0, -0.1, 0.0, 0.4, 2.5, 8.0])
    assert rel_err(gauss_cdf(mu + sigma * t, mu, sigma), [mp.ncdf(v) for v in t]) < 1e-12
    for side in (1.0, -1.0):
        te = np.sort(side * np.array([10.0, 10.001, 10.5, 12.0, 20.0, 30.0, 30.1]))
        got = np.asarray(gauss_binned(mu + sigma * te, mu, sigma))
        assert np.all(got > 0)
        assert rel_err(got, [mp_gauss_mass(a, b) for a, b in bins(te)]) < 1e-10


def test_gaussian_normalisation_and_infinite_edges():
    mu, sigma = -3.0, 0.05
    t = np.unique(np.concatenate([np.linspace(-1e3, 1e3, 301), np.linspace(-8, 8, 161)]))
    p = np.asarray(gauss_binned(mu + sigma * t, mu, sigma))
    assert np.all(p >= 0) and abs(p.sum() - 1.0) < 1e-12
    edges = jnp.array([-jnp.inf, mu - sigma, mu + 2 * sigma, jnp.inf])
    ref = [mp.ncdf(-1), mp.ncdf(2) - mp.ncdf(-1), 1 - mp.ncdf(2)]
    assert rel_err(gauss_binned(edges, mu, sigma), ref) < 1e-13
    jac = qjit(jax.jacfwd(shapes.gaussian_binned, argnums=(1, 2)))(edges, mu, sigma)
    assert np.all(np.isfinite(np.asarray(jac)))


def test_gaussian_far_tail_gradient():
    """∂p/∂μ of a bin [a, b] is (φ(t_a) − φ(t_b))/σ: tiny, and exact 12σ out."""
    mu, sigma = 0.3, 1.7
    edges = mu + sigma * np.array([12.0, 12.5, 40.0])
    g = qjit(jax.jacfwd(shapes.gaussian_binned, argnums=1))(edges, mu, sigma)
    ref = (mp.npdf(mp.mpf(12)) - mp.npdf(mp.mpf(12.5))) / sigma
    assert rel_err(g[:1], [ref]) < 1e-10


# -- Crystal Ball -------------------------------------------------------------------------------
def test_crystal_ball_cdf_vs_quadrature(cb):
    mu, sigma, al, nl, ar, nr = cb.pars
    t = np.array([-1e3, -40.0, -5.0, -al - 1e-3, -al, -0.3, 0.0, ar, ar + 0.5, 6.0, 60.0, 1e3])
    x = mu + sigma * t
    assert rel_err(cb_cdf(x, *cb.pars), [cb.cdf(v) for v in x]) < 1e-10


def test_crystal_ball_pdf_and_cdf_derivative(cb):
    mu, sigma, al, nl, ar, nr = cb.pars
    t = np.array([-300.0, -3.0, -al - 1e-9, -al + 1e-9, -0.2, 0.9 * ar, ar + 1e-9, 4.0, 200.0])
    x = mu + sigma * t
    ref = [cb.pdf(v) for v in x]
    assert rel_err(cb_pdf(x, *cb.pars), ref) < 1e-10
    assert rel_err(cb_dcdf(x, *cb.pars), ref) < 1e-10


def test_crystal_ball_binned_tails_and_core(cb):
    mu, sigma, al, nl, ar, nr = cb.pars
    t = np.array([-2e3, -500.0, -100.0, -99.9, -20, -al - 0.5, -al, 0.1, ar, ar + 0.01])
    x = mu + sigma * np.concatenate([t, [ar + 1.0, 30.0, 400.0, 400.1, 3e3]])
    got = np.asarray(cb_binned(x, *cb.pars))
    assert np.all(got > 0)
    assert rel_err(got, [cb.mass(a, b) for a, b in bins(x)]) < 1e-10


def test_crystal_ball_normalisation():
    t = np.unique(np.concatenate([np.linspace(-1e3, 1e3, 401), np.linspace(-6, 6, 121)]))
    mu, sigma = 2.0, 0.01
    # steep tails: the mass beyond ±1e3σ is < 1e-30, so the bins alone sum to 1
    p = cb_binned(mu + sigma * t, mu, sigma, 1.5, 20.0, 1.2, 25.0)
    assert abs(float(jnp.sum(p)) - 1.0) < 1e-12
    # heavy tails (n down to 1.1): ±∞ edges close the sum
    edges = np.concatenate([[-np.inf], t, [np.inf]])
    pars = np.array(CB_CASES)
    p = np.asarray(cb_batch(edges, pars))
    assert np.all(p >= 0) and np.all(np.abs(p.sum(axis=1) - 1.0) < 1e-12)


def test_crystal_ball_gradients():
    """Jacobians w.r.t. (μ, σ, α_L, n_L, α_R, n_R) against central differences, with bin edges
    in both tails, at and a hair from the core/tail junctions."""
    inner = np.array([-60.0, -8.0, -2.0, -1.3, -1.2, -0.2, 0.5, 2.1, 2.5, 7.0, 80.0])
    edges = np.concatenate([[-np.inf], inner, [np.inf]])
    pars = np.array(
        [
            (0.7, 1.9, 1.3, 2.5, 2.1, 4.0),
            (0.0, 1.0, 1.3, 2.5, 2.1, 4.0),  # edges exactly at both junctions
            (1e-4, 1.0, 1.3001, 1.5, 2.0999, 30.0),  # junctions a hair from the edges
            (0.0, 1.0, 0.4, 1.2, 3.5, 3.0),
        ]
    )
    fwd, rev = (np.asarray(j) for j in cb_jacobians(edges, pars))
    fd = central_differences(lambda p: cb_batch(edges, p), pars)
    assert np.all(np.isfinite(fwd))
    scale = np.abs(fd).max(axis=1, keepdims=True)
    assert np.all(np.abs(fwd - fd) <= 2e-6 * scale + 1e-12)
    assert np.allclose(fwd, rev, rtol=1e-12, atol=1e-15)
    # bins covering the line: probability is conserved, Σ_i ∂p_i/∂θ = 0
    assert np.all(np.abs(fwd.sum(axis=1)) < 1e-12)


def test_crystal_ball_vmap():
    edges = np.linspace(-3.0, 3.0, 13)
    mus, sigmas = jnp.array([-0.5, 0.0, 0.8]), jnp.array([0.3, 0.5, 0.9])
    nl, nr = jnp.array([1.5, 3.0, 8.0]), jnp.array([2.0, 5.0, 1.2])
    batched = qjit(jax.vmap(shapes.crystal_ball_binned, in_axes=(None, 0, 0, None, 0, None, 0)))
    got = batched(edges, mus, sigmas, 1.1, nl, 1.7, nr)
    for k in range(3):
        ref = CBRef(float(mus[k]), float(sigmas[k]), 1.1, float(nl[k]), 1.7, float(nr[k]))
        assert rel_err(got[k], [ref.mass(a, b) for a, b in bins(edges)]) < 1e-10


# -- polynomial and exponential backgrounds -----------------------------------------------------
LO, HI = 1.0, 3.5
SUBGRID = np.array([1.0, 1.2, 1.5, 1.50001, 2.0, 2.9, 3.49999, 3.5])
bern_int = qjit(shapes.bernstein_integrals)
bern_binned = qjit(jax.vmap(shapes.bernstein_binned, in_axes=(None, 0, None, None)))
cheb_binned = qjit(shapes.chebyshev_binned)
exp_binned = qjit(shapes.exponential_binned)
exp_dslope = qjit(jax.jacfwd(shapes.exponential_binned, argnums=1))


def quad_bins(density, edges):
    return np.array([_quad(density, a, b) for a, b in bins(edges)])


def test_bernstein_integrals_and_fractions():
    c = np.array([0.3, 1.2, 0.0, 2.5, 0.7])
    n = len(c) - 1

    def density(x):  # in u units: ∫ du = ∫ dx / (HI − LO)
        u = (x - LO) / (HI - LO)
        return sum(c[k] * math.comb(n, k) * u**k * (1 - u) ** (n - k) for k in range(n + 1))

    ref = quad_bins(density, SUBGRID) / (HI - LO)
    assert np.allclose(bern_int(SUBGRID, c, LO, HI), ref, rtol=1e-12, atol=1e-16)
    total = _quad(density, LO, HI) / (HI - LO)
    assert np.allclose(
        bern_binned(SUBGRID, c[None], LO, HI)[0], ref / total, rtol=1e-12, atol=1e-16
    )
    # each basis polynomial integrates to 1/(n+1) over the range
    basis = qjit(jax.vmap(shapes.bernstein_integrals, in_axes=(None, 0, None, None)))
    assert np.allclose(basis(np.array([LO, HI]), np.eye(n + 1), LO, HI), 1.0 / (n + 1), rtol=1e-14)


def test_bernstein_positive_and_gradients():
    rng = np.random.default_rng(1)
    c = rng.uniform(0.0, 1.0, (8, 6)) * (rng.uniform(size=(8, 6)) > 0.4)
    c[:, 0] += 1e-3
    p = np.asarray(bern_binned(np.linspace(LO, HI, 41), c, LO, HI))
    assert np.all(p >= 0) and np.all(np.abs(p.sum(axis=1) - 1) < 1e-13)
    # derivatives w.r.t. the coefficients and the range, against central differences
    args = np.array([[0.5, 0.1, 2.0, 0.0, LO, HI], [1.0, 3.0, 0.2, 0.4, 0.9, 3.6]])
    fun = jax.vmap(lambda a: shapes.bernstein_binned(SUBGRID[1:-1], a[:4], a[4], a[5]))
    jac = qjit(jax.vmap(jax.jacfwd(lambda a: fun(a[None])[0])))(args)
    fd = central_differences(qjit(fun), args)
    assert np.allclose(jac, fd, rtol=1e-6, atol=1e-8)


def test_chebyshev_vs_quad_including_negative_density():
    for c in ([0.3, -0.2, 0.1], [0.0, 1.2], [-0.4, 0.25, 0.1, -0.05, 0.02]):
        density = lambda x, c=c: npcheb.chebval(2 * (x - LO) / (HI - LO) - 1, [1.0, *c])  # noqa: E731
        ref = quad_bins(density, SUBGRID) / _quad(density, LO, HI)
        got = np.asarray(cheb_binned(SUBGRID, np.asarray(c), LO, HI))
        assert np.allclose(got, ref, rtol=1e-12, atol=1e-15)
    # 1 + 1.2 T_2(v) = 2.4 v² − 0.2 < 0 around v = 0: returned as is (negative), not clipped
    mid = np.asarray(cheb_binned(np.array([1.0, 2.2, 2.3, 3.5]), np.array([0.0, 1.2]), LO, HI))
    assert mid[1] < 0 and abs(mid.sum() - 1) < 1e-14


def _mp_exp_fraction(s, ea, eb):
    """Exact fraction of exp(s u) on [0, 1] in the bin of x-edges ea, eb (floats, taken exactly)."""
    s = mp.mpf(s)
    ua, ub = ((mp.mpf(e) - LO) / (HI - LO) for e in (ea, eb))
    if s == 0:
        return ub - ua
    return (mp.exp(s * ub) - mp.exp(s * ua)) / (mp.exp(s) - 1)


@pytest.mark.parametrize(
    "slope", [-300.0, -5.0, -1e-3, -1e-5, -1e-12, 0.0, 1e-12, 5e-4, 3.0, 300.0]
)
def test_exponential_vs_closed_form(slope):
    got = np.asarray(exp_binned(SUBGRID, slope, LO, HI))
    ref = np.array([float(_mp_exp_fraction(slope, a, b)) for a, b in bins(SUBGRID)])
    assert np.all(np.isfinite(got)) and np.all(got >= 0)
    tiny = ref < 1e-290  # e^(−300 u) underflows in most bins: 0, not NaN
    assert np.all(got[tiny] < 1e-280)
    assert rel_err(got[~tiny], ref[~tiny]) < 1e-12
    assert abs(float(jnp.sum(exp_binned(np.linspace(LO, HI, 8), slope, LO, HI))) - 1.0) < 1e-13


@pytest.mark.parametrize("slope", [-2.0, -1.0001e-3, -0.9999e-3, 0.0, 5e-4, 0.7])
def test_exponential_gradient(slope):
    grad = exp_dslope(SUBGRID, slope, LO, HI)
    if slope == 0.0:  # ∂p/∂s at s = 0 is (u_b² − u_a²)/2 − (u_b − u_a)/2
        u = [(mp.mpf(e) - LO) / (HI - LO) for e in SUBGRID]
        ref = [(ub**2 - ua**2) / 2 - (ub - ua) / 2 for ua, ub in bins(u)]
    else:
        ref = [
            mp.diff(lambda s, a=a, b=b: _mp_exp_fraction(s, a, b), mp.mpf(slope))
            for a, b in bins(SUBGRID)
        ]
    assert rel_err(grad, ref) < 1e-8


# -- MassTable ----------------------------------------------------------------------------------
M = np.array([0.2, 0.5, 1.0, 2.0, 4.0, 6.0])
VALS = {"sigma": np.array([0.004, 0.006, 0.011, 0.02, 0.05, 0.06]),
        "alpha_l": np.array([1.2, 1.5, 1.4, 1.4, 0.9, 1.1])}  # fmt: skip
PTS = np.array([0.1, 0.2, 0.3, 0.5, 0.77, 1.0, 1.5, 3.99, 5.2, 6.0, 7.0])
table_at = qjit(lambda table, m: table(m))
table_slope = qjit(jax.vmap(jax.jacfwd(lambda m, table: table(m)), in_axes=(0, None)))


def test_mass_table_linear_and_pchip():
    lin = table_at(shapes.MassTable(M, VALS), PTS)
    pchip_table = shapes.MassTable(M, VALS, kind="pchip")
    pchip, slope = table_at(pchip_table, PTS), table_slope(PTS[2:-2], pchip_table)
    inside = PTS.clip(M[0], M[-1])  # outside the table the end values are held
    for name, y in VALS.items():
        assert np.allclose(lin[name], np.interp(PTS, M, y), rtol=1e-14, atol=0)
        ref = interpolate.PchipInterpolator(M, y)
        assert np.allclose(pchip[name], ref(inside), rtol=1e-13, atol=0)
        assert np.allclose(slope[name], ref.derivative()(PTS[2:-2]), rtol=1e-10, atol=1e-14)
    two = table_at(shapes.MassTable(M[:2], {"s": VALS["sigma"][:2]}, kind="pchip"), PTS)
    assert np.allclose(two["s"], np.interp(PTS, M[:2], VALS["sigma"][:2]), rtol=1e-14)


def test_mass_table_jit_grad():
    lin = shapes.MassTable(M, VALS)
    assert set(table_at(lin, 1.0)) == set(VALS)
    slope = table_slope(np.array([1.5]), lin)["sigma"][0]
    assert np.isclose(slope, (0.02 - 0.011) / 1.0, rtol=1e-13)
    # derivative w.r.t. the tabulated values (array leaves of the pytree)
    gv = qjit(jax.grad(lambda t: t(1.5)["sigma"]))(lin).values
    assert np.allclose(gv["sigma"], [0, 0, 0.5, 0.5, 0, 0], atol=1e-15)
    assert np.allclose(gv["alpha_l"], 0.0)
    # built from traced arrays inside jit (validation is skipped for tracers)
    build = qjit(lambda m, v: shapes.MassTable(m, {"s": v}, kind="pchip")(1.5)["s"])
    ref = interpolate.PchipInterpolator(M, VALS["sigma"])(1.5)
    assert np.isclose(build(M, VALS["sigma"]), ref, rtol=1e-13)


@pytest.mark.parametrize(
    "masses, values, kind, path",
    [
        ([1.0, 2.0, 2.0, 3.0], {"sigma": [1, 2, 3, 4]}, "linear", "signal.table.masses"),
        ([1.0, 3.0, 2.0], {"sigma": [1, 2, 3]}, "linear", "signal.table.masses"),
        ([1.0, np.nan, 3.0], {"sigma": [1, 2, 3]}, "linear", "signal.table.masses"),
        ([1.0], {"sigma": [1]}, "linear", "signal.table.masses"),
        ([1.0, 2.0, 3.0], {"sigma": [1, 2]}, "linear", "signal.table.values.sigma"),
        ([1.0, 2.0, 3.0], {"sigma": [1, 2, 3], "n_l": [1, np.nan, 3]}, "linear",
         "signal.table.values.n_l"),
        ([1.0, 2.0, 3.0], {"sigma": [1, 2, 3]}, "cubic", "signal.table.kind"),
    ],
)  # fmt: skip
def test_mass_table_validation(masses, values, kind, path):
    with pytest.raises(InvalidScanConfig) as err:
        shapes.MassTable(masses, values, kind=kind, path="signal.table")
    assert err.value.path == path
    assert str(err.value).startswith(path + ": ")


def test_mass_table_validation_without_prefix_and_check_range():
    with pytest.raises(InvalidScanConfig, match=r"^masses: must be strictly increasing"):
        shapes.MassTable([2.0, 1.0], {"sigma": [1, 2]})
    table = shapes.MassTable(M, VALS, path="signal.table")
    table.check_range(np.linspace(0.2, 6.0, 50), path="scan.masses")  # inside: no error
    with pytest.raises(InvalidScanConfig) as err:
        table.check_range([0.3, 1.0, 6.5, 0.1], path="scan.masses")
    assert err.value.path == "scan.masses"
    assert "6.5 (index 2)" in str(err.value) and "signal.table" in str(err.value)
    with pytest.raises(InvalidScanConfig, match="nan"):
        table.check_range([0.3, np.nan])


# -- windows ------------------------------------------------------------------------------------
FINE = np.linspace(0.0, 10.0, 1001)  # fine bins of 0.01
COUNTS = np.random.default_rng(7).poisson(50.0, 1000).astype(float)
indices = qjit(shapes.window_indices, static_argnums=4)


def direct_sums(counts, idx):
    return np.stack([counts[..., a:b].sum(axis=-1) for a, b in bins(idx)], axis=-1)


def test_window_indices_uniform_grid_and_counts():
    idx = np.asarray(indices(FINE, 3.0, 0.2, 0.3, 25))
    assert idx.tolist() == list(range(280, 331, 2))
    cumsum = shapes.fine_cumsum(COUNTS)
    assert np.array_equal(shapes.window_counts(cumsum, idx), direct_sums(COUNTS, idx))
    # 50 fine bins into 30: idx_j = 280 + round(50 j / 30) (no halves), 1 or 2 fine bins each
    idx = np.asarray(indices(FINE, 3.0, 0.2, 0.3, 30))
    assert idx.tolist() == [280 + math.floor(j * 50 / 30 + 0.5) for j in range(31)]
    assert set(np.diff(idx)) == {1, 2}
    counts = np.asarray(shapes.window_counts(cumsum, idx))
    assert np.array_equal(counts, direct_sums(COUNTS, idx))
    assert counts.sum() == COUNTS[280:330].sum()
    # templates [S, N] on the fine binning
    templates = np.random.default_rng(3).uniform(0, 2, (3, 1000))
    tw = shapes.window_counts(shapes.fine_cumsum(templates), idx)
    assert np.allclose(tw, direct_sums(templates, idx), rtol=1e-12, atol=1e-12)
    assert np.array_equal(shapes.window_edges(FINE, idx), FINE[idx])


def test_window_indices_snapping_clipping_and_vmap():
    # window ends off the grid snap to the nearest fine edge
    assert np.asarray(indices(FINE, 3.0037, 0.2, 0.3, 25))[[0, -1]].tolist() == [280, 330]
    assert np.asarray(indices(FINE, 3.0061, 0.2, 0.3, 25))[[0, -1]].tolist() == [281, 331]
    # clipped to the spectrum
    assert np.asarray(indices(FINE, 0.05, 0.2, 0.3, 5)).tolist() == [0, 7, 14, 21, 28, 35]
    assert np.asarray(indices(FINE, 9.95, 0.2, 0.3, 5))[[0, -1]].tolist() == [975, 1000]
    # vmapped over centers and widths (e.g. 20σ(m), 30σ(m))
    centers, sig = np.array([2.0, 4.5, 7.25]), np.array([0.01, 0.015, 0.02])
    batched = qjit(jax.vmap(lambda c, s: shapes.window_indices(FINE, c, 20 * s, 30 * s, 10)))
    idx = np.asarray(batched(centers, sig))
    assert idx[0].tolist() == list(range(180, 231, 5))
    assert idx[1].tolist() == [420 + math.floor(7.5 * j + 0.5) for j in range(11)]  # halves up
    assert idx[2].tolist() == list(range(685, 786, 10))


def test_veto_mask():
    edges = FINE[np.arange(280, 331, 5)]  # 2.80, 2.85, ..., 3.30
    # one veto exactly on a bin, one inside a bin, one only touching the window's end
    vetoes = np.array([[FINE[290], FINE[295]], [3.12, 3.13], [FINE[330], 3.4]])
    got = np.asarray(shapes.veto_mask(edges, vetoes))
    ref = [not any(max(a, v0) < min(b, v1) for v0, v1 in vetoes) for a, b in bins(edges)]
    assert got.tolist() == ref and got.tolist().count(False) == 2
    assert np.asarray(shapes.veto_mask(edges, np.zeros((0, 2)))).all()
    # the rows (+inf, +inf) that pad a scan's vetoes to a fixed count mask nothing
    padded = np.concatenate([vetoes, np.full((5, 2), np.inf)])
    assert np.asarray(shapes.veto_mask(edges, padded)).tolist() == ref
    # a too-narrow window has empty (zero-width) bins: masked
    idx = np.asarray(indices(FINE, 5.0, 0.02, 0.02, 6))
    keep = np.asarray(shapes.veto_mask(shapes.window_edges(FINE, idx), np.zeros((0, 2))))
    assert keep.tolist() == (np.diff(idx) > 0).tolist() and not keep.all()


def test_check_windows():
    centers = np.linspace(1.0, 9.0, 81)
    shapes.check_windows(FINE, centers, 20 * 0.01, 30 * 0.01, 25)  # fine
    sig = 0.01 + 0.001 * centers
    shapes.check_windows(FINE, centers, 20 * sig, 30 * sig, 25, path="scan.window")
    # every window that passes gives n_bins non-empty bins in window_indices
    batched = qjit(jax.vmap(lambda c, s: shapes.window_indices(FINE, c, 20 * s, 30 * s, 25)))
    assert np.all(np.diff(np.asarray(batched(centers, sig))) >= 1)
    cases = [
        (np.array([5.0, 0.1, 0.05]), 0.2, 0.3, 25, "hypothesis 1 (mass 0.1)"),
        (np.array([5.0, 9.8]), 0.2, 0.3, 25, "hypothesis 1 (mass 9.8)"),
        (np.array([5.0, 6.0]), 0.2, 0.3, 60, "spans 50 fine bins, fewer than the 60"),
        (np.array([5.0]), -0.1, 0.3, 5, "negative width"),
    ]
    for c, wl, wh, nb, msg in cases:
        with pytest.raises(InvalidScanConfig) as err:
            shapes.check_windows(FINE, c, wl, wh, nb, path="scan.window")
        assert err.value.path == "scan.window" and msg in str(err.value), str(err.value)
    with pytest.raises(InvalidScanConfig, match="^window: fine edges"):
        shapes.check_windows(FINE[::-1], [5.0], 0.2, 0.3, 5)
