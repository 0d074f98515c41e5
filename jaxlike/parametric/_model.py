"""A parametric binned likelihood in a fit window: the model of one mass hypothesis.

For categories c = 1…C (e.g. four kaon modes) sharing one signal-strength parameter μ, the
expected count in window bin b is

    ν_cb = μ · k_c · (1 + δ_ε θ_ε) · [U_cb + Δ_4p(θ_σ; U⁻_cb, U_cb, U⁺_cb)]
           + B_c · P_cb(a_c) + Σ_k N_ck · R_ckb,
    U_cb(σ) = (1 − f_c) · S_cb(σ) + f_c · T_cb

- S_cb(σ): probability content of the signal peak (Gaussian or double-sided Crystal Ball with
  the shape parameters of the hypothesis, :mod:`jaxlike.shapes`) in the bin; signal leaking out
  of the window is lost, so μ·k_c is the *total* signal yield of category c. U, U⁺, U⁻ are the
  signal shapes at σ, σ(1 + δ_σ), σ(1 − δ_σ), computed once per hypothesis (outside the fits).
- Δ_4p: the resolution nuisance θ_σ morphs the shape as a HistFactory ``histosys`` with pyhf's
  default code 4p (polynomial inside |θ| ≤ 1, linear outside) — exactly the HistFactory model
  of the same scan; it agrees with evaluating S at σ(1 + δ_σ θ_σ) to second order in δ_σ θ_σ.
- k_c: expected signal yield per unit μ (efficiency × conversion factor; 1 for a yield POI).
- T_cb, f_c: an optional second signal component of fixed shape (e.g. combinatorial), fraction f_c.
- P_cb(a_c): the background shape normalised over the window (Bernstein with c_0 = 1 and free
  c_1…c_n ≥ 0, Chebyshev 1 + Σ c_k T_k, exponential, or a fixed template), B_c its yield in
  the window. ``"padded"``: any of them in one layout shared by all (:func:`padded_background`).
- R_ckb: fixed-shape peaking backgrounds (π⁰, η, η′ …) with free yields N_ck ≥ 0.
- θ_ε, θ_σ: Gaussian nuisance parameters (unit width, global observable 0) for the relative
  efficiency and resolution uncertainties δ_ε, δ_σ; present only when δ > 0. One of each
  shared by the categories (fully correlated), or with ``uncorrelated`` one per category
  (θ_ε,c, θ_σ,c: e.g. per-mode efficiencies measured independently).

log L(θ | n) = Σ_cb m_cb [n_cb log ν_cb − ν_cb − log Γ(n_cb + 1)] + Σ_j log N(a_j | θ_j, 1),
where m_cb masks vetoed and empty window bins. The data vector is pyhf-like: the C·W window
counts (row-major) followed by the global observables a_j.

:class:`WindowModel` implements the protocol the fit and inference layers use
(``config``, ``expected_data``, ``logpdf``, ``value_grad_hess``, ``fixed_mask``), so
``jaxlike.fit``, ``jaxlike.hypotest`` and ``jaxlike.upper_limit`` work on it unchanged, under
``jax.jit`` and ``jax.vmap`` over hypotheses.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..exceptions import InvalidParameters
from ..model import (
    ConstraintTerm,
    Likelihood,
    LikelihoodConfig,
    histosys_delta,
    normal_logpdf,
    poisson_logpdf,
)
from ..shapes import exponential_binned, polynomial_basis

__all__ = ["WindowModel", "WindowConfig", "SIGNAL_SHAPES", "BACKGROUNDS", "padded_background",
           "stack_backgrounds", "ranged_order"]  # fmt: skip


SIGNAL_SHAPES = ("gauss", "crystal_ball")
BACKGROUNDS = ("bernstein", "chebyshev", "exponential", "template")

#: bounds of the shape parameters of the background (per coefficient)
_COEFF_BOUNDS = {"bernstein": (0.0, 1e4), "chebyshev": (-10.0, 10.0), "exponential": (-50.0, 50.0)}
#: bounds of the Gaussian nuisance parameters (in units of their width)
_NUISANCE_BOUNDS = (-5.0, 5.0)


class WindowConfig(LikelihoodConfig):
    """Parameter layout of a :class:`WindowModel` (the ``model.config`` of the protocol).

    Parameter order: ``mu`` (POI), then per category ``bkg_c``, its shape coefficients
    ``bkg_c_a1…``, its peaking yields ``peak_c_k``, then ``theta_eff``, ``theta_res``.
    Initial values depend on the observed window counts (background yield = observed total).
    """

    def __init__(self, model: WindowModel):
        self._m = model
        C, _ = model.counts.shape
        K = model.peaks.shape[1]
        names = ["mu"]
        for c in range(C):
            names += [f"bkg_{c}"] + [f"bkg_{c}_a{j + 1}" for j in range(model.n_coeffs)]
            names += [f"peak_{c}_{k}" for k in range(K)]
        for name, on in (("theta_eff", model.has_eff), ("theta_res", model.has_res)):
            if on:  # one shared nuisance, or one per category (``uncorrelated``)
                names += [f"{name}_{c}" for c in range(C)] if model.uncorrelated else [name]
        self.par_names = names
        self.npars = len(names)
        self.poi_index = 0
        self.poi_name = "mu"
        self.nmaindata = int(np.prod(model.counts.shape))
        self.n_nuisance = C if model.uncorrelated else 1  # per systematic
        self.nauxdata = self.n_nuisance * (int(model.has_eff) + int(model.has_res))
        self.per_category = 1 + model.n_coeffs + K

    def par_index(self, name: str) -> int:
        """Position of parameter ``name``."""
        try:
            return self.par_names.index(name)
        except ValueError:
            raise InvalidParameters(
                f"no parameter {name!r} in the window model (parameters: {self.par_names})"
            ) from None

    def suggested_init(self):
        """μ = 0, B_c = observed window total, flat background shape, peaks 0, θ = 0."""
        m = self._m
        C = m.counts.shape[0]
        coeff0 = 1.0 if m.background == "bernstein" else 0.0
        coeffs = m.coeff_init if m.background == "padded" else jnp.full((m.n_coeffs,), coeff0)
        block = lambda total: jnp.concatenate(  # noqa: E731
            [total[None], coeffs, jnp.zeros((m.peaks.shape[1],))]
        )
        totals = jnp.maximum(jnp.sum(jnp.where(m.mask, m.counts, 0.0), axis=1), 1.0)
        parts = [jnp.zeros((1,))] + [block(totals[c]) for c in range(C)]
        parts.append(jnp.zeros((self.nauxdata,)))
        return jnp.concatenate(parts)

    def suggested_bounds(self):
        """μ ∈ [0, mu_max]; B_c ∈ [0, 10·total + 100]; coefficients per background kind;
        peaking yields ∈ [0, 10·total + 100]; θ ∈ [−5, 5]. Shape [npars, 2]."""
        m = self._m
        C, K = m.counts.shape[0], m.peaks.shape[1]
        totals = jnp.sum(jnp.where(m.mask, m.counts, 0.0), axis=1)
        big = 10.0 * totals + 100.0
        lo_c, hi_c = _COEFF_BOUNDS.get(m.background, (0.0, 0.0))
        rows = [jnp.stack([jnp.zeros(()), m.mu_max])[None]]
        for c in range(C):
            rows.append(jnp.stack([jnp.zeros(()), big[c]])[None])
            if m.background == "padded":
                rows.append(m.coeff_bounds)
            else:
                rows.append(jnp.tile(jnp.asarray([[lo_c, hi_c]]), (m.n_coeffs, 1)))
            rows.append(jnp.stack([jnp.zeros((K,)), jnp.full((K,), big[c])], axis=1))
        rows.append(jnp.tile(jnp.asarray([_NUISANCE_BOUNDS]), (self.nauxdata, 1)))
        return jnp.concatenate(rows, axis=0)


class WindowModel(Likelihood):
    """The likelihood of one hypothesis in C categories × W window bins (module docstring), a
    :class:`~jaxlike.model.Likelihood`: NUTS, fits and hypothesis tests take it as they take a
    HistFactory :class:`~jaxlike.Model`.

    Array fields are leaves (a batch of hypotheses is a batch of WindowModels under ``vmap``);
    the background kind and the presence of nuisances are static. Build one with
    :meth:`jaxlike.parametric.MassScan.window_model` or directly from templates.

    Attributes:
        edges: window bin edges [C, W+1].
        counts: observed counts [C, W].
        mask: bins in the likelihood [C, W] (False: vetoed or empty).
        sig_nom, sig_up, sig_down: signal shape U_cb at σ, σ(1 + δ_σ), σ(1 − δ_σ) [C, W]
            (probability content per bin, including the fixed-shape component).
        scale: signal yield per unit μ, k_c [C].
        template: fixed background shape per bin [C, W] (background ``"template"``).
        peaks: peaking-background shapes R_ckb [C, K, W] (probability content per bin).
        rel_eff, rel_res: δ_ε, δ_σ per category [C] (used when ``has_eff``/``has_res``).
        uncorrelated: one nuisance per category (θ_ε,c, θ_σ,c, uncorrelated between the
            categories) instead of one shared by all (static).
        mu_max: upper bound of μ (the limit search bracket is [0, mu_max]).
        basis, basis_norm, coeff_init, coeff_bounds, coeff_free, family: background
            ``"padded"`` only (:func:`padded_background`): the polynomial family as the linear
            basis of :func:`~jaxlike.shapes.polynomial_basis` [C, W, N+1] and [C, N+1], the
            initial values, bounds [N, 2] and free flags [N] of the N coefficient slots (slots
            beyond the model's order are fixed at 0), and the index of the model's family in
            the static ``families``.
    """

    edges: jnp.ndarray
    counts: jnp.ndarray
    mask: jnp.ndarray
    sig_nom: jnp.ndarray
    sig_up: jnp.ndarray
    sig_down: jnp.ndarray
    scale: jnp.ndarray
    template: jnp.ndarray
    peaks: jnp.ndarray
    rel_eff: jnp.ndarray
    rel_res: jnp.ndarray
    mu_max: jnp.ndarray
    basis: jnp.ndarray | None = None
    basis_norm: jnp.ndarray | None = None
    coeff_init: jnp.ndarray | None = None
    coeff_bounds: jnp.ndarray | None = None
    coeff_free: jnp.ndarray | None = None
    family: jnp.ndarray | None = None
    background: str = eqx.field(static=True, default="bernstein")
    n_coeffs: int = eqx.field(static=True, default=0)
    has_eff: bool = eqx.field(static=True, default=False)
    has_res: bool = eqx.field(static=True, default=False)
    uncorrelated: bool = eqx.field(static=True, default=False)
    families: tuple = eqx.field(static=True, default=())

    @property
    def config(self) -> WindowConfig:
        """Parameter layout (names, POI, sizes, initial values and bounds)."""
        return WindowConfig(self)

    # -- expected counts -----------------------------------------------------------------------
    def _unpack(self, pars):
        cfg = self.config
        C, K, nc = self.counts.shape[0], self.peaks.shape[1], self.n_coeffs
        blocks = pars[1 : 1 + C * cfg.per_category].reshape(C, cfg.per_category)
        nuis = pars[1 + C * cfg.per_category :]
        k = cfg.n_nuisance  # θ per systematic: 1 shared, or C (one per category)
        pick = (lambda at: nuis[at : at + C]) if self.uncorrelated else (lambda at: nuis[at])
        theta_eff = pick(0) if self.has_eff else jnp.zeros(())
        theta_res = pick(k * int(self.has_eff)) if self.has_res else jnp.zeros(())
        return (
            pars[0],
            blocks[:, 0],
            blocks[:, 1 : 1 + nc],
            blocks[:, 1 + nc : 1 + nc + K],
            (
                theta_eff,
                theta_res,
            ),
        )

    def _signal_fractions(self, theta_res):
        if not self.has_res:
            return self.sig_nom
        theta = theta_res[:, None] if self.uncorrelated else theta_res  # [C, 1] or scalar
        delta = histosys_delta("code4p", theta, self.sig_down, self.sig_nom, self.sig_up)
        return self.sig_nom + delta

    def _families(self) -> tuple:
        """The background families evaluated (several only for ``"padded"``)."""
        return self.families if self.background == "padded" else (_FAMILY[self.background],)

    def _basis(self, c, e, lo, hi):
        """(A [W, n+1], s [n+1]) of category c's polynomial background (p = A a / s·a):
        stored for ``"padded"``, else :func:`~jaxlike.shapes.polynomial_basis` of the window
        edges (it depends on no parameter, so XLA hoists it out of a fit's Newton loop)."""
        if self.background == "padded":
            return self.basis[c], self.basis_norm[c]
        return polynomial_basis(self.background, e, self.n_coeffs, lo, hi)

    def _category_background(self, c, coeffs, order: int):
        """Background fraction P_c [W] of category c; for ``order`` 2 also its derivatives in
        the coefficients c_1…c_n: (P, ∂P/∂c [W, n], curvature) with curvature(r) =
        Σ_b r_b ∂²P_b/∂c² [n, n]. A polynomial family (p = q/t, q = A a, t = s·a, a = [1, c])
        in closed form,

            ∂p/∂c_i = (A_i − p s_i)/t,   Σ_b r_b ∂²p_b/∂c_i∂c_j = −(s_i ρ_j + s_j ρ_i)/t,
            ρ = Σ_b r_b ∂p_b/∂c,

        an exponential by nested forward mode in its slope c_1, a template constant. For
        ``"padded"`` the family of ``family`` is selected (the unselected branches get harmless
        inputs, so no NaN reaches a derivative through ``where``)."""
        e = self.edges[c]
        lo, hi = e[0], e[-1]
        n, W = coeffs.shape[0], e.shape[0] - 1
        padded = self.background == "padded"
        out = None
        for i, kind in enumerate(self._families()):
            this = self.family == i if padded else True
            if kind == "polynomial":
                big_a, s = self._basis(c, e, lo, hi)
                a = jnp.concatenate([jnp.ones((1,), coeffs.dtype), coeffs])
                t = s @ a
                p = (big_a @ a) / t
                if order == 2:
                    dp = (big_a[:, 1:] - p[:, None] * s[1:]) / t

                    def second(r, dp=dp, s=s[1:], t=t):
                        rho = jnp.sum(r[:, None] * dp, axis=0)
                        return -(s[:, None] * rho[None, :] + rho[:, None] * s[None, :]) / t

            elif kind == "exponential":
                slope = lambda k, this=this: exponential_binned(  # noqa: E731
                    e, jnp.where(this, k, 0.0), lo, hi
                )
                if order == 2:
                    (p, d1), (_, d2) = jax.jvp(
                        lambda k, f=slope: jax.jvp(f, (k,), (jnp.ones_like(k),)),
                        (coeffs[0],),
                        (jnp.ones_like(coeffs[0]),),
                    )
                    dp = jnp.zeros((W, n), p.dtype).at[:, 0].set(d1)

                    def second(r, d2=d2):
                        return jnp.zeros((n, n), r.dtype).at[0, 0].set(jnp.sum(r * d2))

                else:
                    p = slope(coeffs[0])
            else:
                p = self.template[c]
                if order == 2:
                    dp = jnp.zeros((W, n), p.dtype)

                    def second(r):
                        return jnp.zeros((n, n), r.dtype)

            if out is None:
                out = (p, dp, second) if order == 2 else (p,)
            elif order == 2:
                pick = lambda r, f=second, g=out[2], this=this: jnp.where(this, f(r), g(r))  # noqa: E731
                out = (jnp.where(this, p, out[0]), jnp.where(this, dp, out[1]), pick)
            else:
                out = (jnp.where(this, p, out[0]),)
        return out if order == 2 else out[0]

    def _background_fractions(self, coeffs):
        return jnp.stack(
            [self._category_background(c, coeffs[c], 0) for c in range(self.edges.shape[0])]
        )

    def expected_by_component(self, pars):
        """(signal [C, W], smooth background [C, W], peaking backgrounds [C, K, W])."""
        pars = jnp.asarray(pars)
        mu, bkg, coeffs, peak_yields, (t_eff, t_res) = self._unpack(pars)
        sig = (mu * self.scale * (1.0 + self.rel_eff * t_eff))[:, None] * self._signal_fractions(
            t_res
        )
        smooth = bkg[:, None] * self._background_fractions(coeffs)
        peaking = peak_yields[:, :, None] * self.peaks
        return sig, smooth, peaking

    def expected_actualdata(self, pars):
        """ν_cb of the module docstring, flattened row-major [C·W]."""
        sig, smooth, peaking = self.expected_by_component(pars)
        return (sig + smooth + jnp.sum(peaking, axis=1)).reshape(-1)

    def expected_auxdata(self, pars):
        """Expected global observables: the nuisance parameters themselves."""
        pars = jnp.asarray(pars)
        return pars[pars.shape[0] - self.config.nauxdata :]

    # -- likelihood ----------------------------------------------------------------------------
    def auxdata(self):
        """Observed global observables (all 0: θ = 0 is the nominal efficiency/resolution)."""
        return jnp.zeros((self.config.nauxdata,), self.counts.dtype)

    def make_data(self, observations=None):
        """Data vector: window counts (default: the observed ones) followed by auxdata."""
        obs = self.counts if observations is None else jnp.asarray(observations, float)
        return jnp.concatenate([obs.reshape(-1), self.auxdata()])

    def logpdf(self, pars, data):
        """log L(θ | data) of the module docstring (masked Poisson terms + unit Gaussians)."""
        pars, data = jnp.asarray(pars), jnp.asarray(data)
        return self._logpdf_at(self.expected_actualdata(pars), pars, data)

    def _logpdf_at(self, nu, pars, data):
        """log L from the expected counts ν [C·W] (the one formula of :meth:`logpdf` and
        :meth:`value_grad_hess`)."""
        cfg = self.config
        n, aux = data[: cfg.nmaindata], data[cfg.nmaindata :]
        mask = self.mask.reshape(-1)
        main = jnp.sum(jnp.where(mask, poisson_logpdf(n, jnp.where(mask, nu, 1.0)), 0.0))
        return main + jnp.sum(normal_logpdf(aux, self.expected_auxdata(pars), 1.0))

    def _local_index(self) -> np.ndarray:
        """Static [C, P]: for each category c and model parameter p, the position of p among the
        category's own parameters g = (μ, B_c, c_c1…c_cn, N_c1…N_cK, [θ_ε,c], [θ_σ,c]), or G
        (one past the last: p does not enter category c). A shared θ is in every category."""
        cfg = self.config
        C, K, nc = self.counts.shape[0], self.peaks.shape[1], self.n_coeffs
        nuis0, k = 1 + C * cfg.per_category, cfg.n_nuisance
        rows = []
        for c in range(C):
            block = 1 + c * cfg.per_category
            cols = [0] + list(range(block, block + 1 + nc + K))
            at = c if self.uncorrelated else 0
            if self.has_eff:
                cols.append(nuis0 + at)
            if self.has_res:
                cols.append(nuis0 + k * int(self.has_eff) + at)
            row = np.full(cfg.npars, len(cols), np.int32)
            row[cols] = np.arange(len(cols))
            rows.append(row)
        return np.stack(rows)

    def value_grad_hess(self, pars, data):
        r"""(2NLL, gradient, Hessian) from the Poisson structure of the likelihood, exact:

        .. math::
            \nabla\,2\mathrm{NLL} = 2 J^T r, \qquad
            \nabla^2\,2\mathrm{NLL} = 2 J^T \mathrm{diag}(m\,n/\nu^2) J
                + 2 \sum_b r_b \nabla^2 \nu_b + 2\,\mathrm{diag}(\text{constrained}),

        with r = m (1 − n/ν) and the unit-Gaussian constraint terms (a − θ)². J = ∂ν/∂θ and
        ∇²ν_b in closed form: per category, ν_cb is multilinear in the signal factors
        (μ, 1 + δ_ε θ_ε, U_cb(θ_σ)) and in (B_c, P_cb(c_c)), linear in the peaking yields, so
        its only second derivatives are

            ∂²ν/∂μ∂θ_ε = k δ_ε U,  ∂²ν/∂μ∂θ_σ = k E U',  ∂²ν/∂θ_ε∂θ_σ = μ k δ_ε U',
            ∂²ν/∂θ_σ² = μ k E U'',  ∂²ν/∂B∂c_j = ∂P/∂c_j,  ∂²ν/∂c_i∂c_j = B ∂²P/∂c_i∂c_j,

        (E = 1 + δ_ε θ_ε; U', U'' of the code-4p morphing by nested forward mode in θ_σ alone;
        P's derivatives from :meth:`_category_background`). It equals the automatic Hessian of
        :meth:`twice_nll` to rounding (tests/test_window_hessian.py), and the value is
        :meth:`twice_nll`'s formula at the same ν. Toys fit thousands of times per hypothesis:
        on the ALP window (100 bins, 8 parameters, 2 cores) a local fit takes 44 µs instead of
        57 µs with a forward-mode Jacobian and a forward-over-reverse curvature; only the
        r-contracted second derivatives of P are formed, never ∂²P [W, n, n]."""
        pars, data = jnp.asarray(pars), jnp.asarray(data)
        cfg = self.config
        C, W = self.counts.shape
        n, aux = data[: cfg.nmaindata], data[cfg.nmaindata :]
        mu, bkg, coeffs, peak_yields, (t_eff, t_res) = self._unpack(pars)
        # the signal shape U and its θ_σ derivatives (U_c depends on its own θ_σ,c only)
        if self.has_res:
            one = jnp.ones_like(t_res)
            (u, du), (_, d2u) = jax.jvp(
                lambda t: jax.jvp(self._signal_fractions, (t,), (one,)), (t_res,), (one,)
            )
        else:
            u = self._signal_fractions(t_res)
            du = d2u = jnp.zeros_like(u)
        bg = [self._category_background(c, coeffs[c], 2) for c in range(C)]
        frac, dfrac = jnp.stack([b[0] for b in bg]), jnp.stack([b[1] for b in bg])
        eff = 1.0 + self.rel_eff * t_eff  # E [C]
        sig = (mu * self.scale * eff)[:, None] * u  # ν by expected_by_component's formula
        nu = sig + bkg[:, None] * frac + jnp.sum(peak_yields[:, :, None] * self.peaks, axis=1)
        value = -2.0 * self._logpdf_at(nu.reshape(-1), pars, data)
        mask = self.mask
        safe = jnp.where(mask, nu, 1.0)
        obs = n.reshape(C, W)
        r = jnp.where(mask, 1.0 - obs / safe, 0.0)
        w = jnp.where(mask, obs / safe**2, 0.0)
        # local Jacobian [C, W, G] and local curvature Σ_b r_b ∇²ν_b [C, G, G]
        cols = [(self.scale * eff)[:, None] * u, frac, bkg[:, None, None] * dfrac,
                jnp.swapaxes(self.peaks, 1, 2)]  # fmt: skip
        if self.has_eff:
            cols.append((mu * self.scale * self.rel_eff)[:, None] * u)
        if self.has_res:
            cols.append((mu * self.scale * eff)[:, None] * du)
        jac = jnp.concatenate([x.reshape(C, W, -1) for x in cols], axis=2)
        G, nc = jac.shape[2], self.n_coeffs
        i_b, i_eff = 1, 2 + nc + self.peaks.shape[1]
        i_res = i_eff + int(self.has_eff)
        curv = jnp.zeros((C, G, G), nu.dtype)
        curv = curv.at[:, i_b, 2 : 2 + nc].set(jnp.sum(r[:, :, None] * dfrac, axis=1))
        second = jnp.stack([b[2](r[c]) for c, b in enumerate(bg)])  # Σ_b r_b ∂²P_b [C, n, n]
        curv = curv.at[:, 2 : 2 + nc, 2 : 2 + nc].set(bkg[:, None, None] * second)
        r_u, r_du = jnp.sum(r * u, axis=1), jnp.sum(r * du, axis=1)
        if self.has_eff:
            curv = curv.at[:, 0, i_eff].set(self.scale * self.rel_eff * r_u)
        if self.has_res:
            curv = curv.at[:, 0, i_res].set(self.scale * eff * r_du)
            curv = curv.at[:, i_res, i_res].set(mu * self.scale * eff * jnp.sum(r * d2u, axis=1))
        if self.has_eff and self.has_res:
            curv = curv.at[:, i_eff, i_res].set(mu * self.scale * self.rel_eff * r_du)
        upper = jnp.triu(jnp.ones((G, G), bool), 1)
        curv = jnp.where(upper, curv, 0.0) + jnp.swapaxes(jnp.where(upper, curv, 0.0), 1, 2) + (
            jnp.where(jnp.eye(G, dtype=bool), curv, 0.0))  # fmt: skip
        # per category: gradient 2 J^T r and Hessian 2 J^T diag(w) J + 2 curvature, then summed
        # into the model's parameters (a zero slot G for the parameters a category lacks)
        g_loc = 2.0 * jnp.sum(jac * r[:, :, None], axis=1)
        h_loc = 2.0 * jnp.einsum("cwg,cwh->cgh", jac * w[:, :, None], jac) + 2.0 * curv
        g_loc = jnp.pad(g_loc, ((0, 0), (0, 1)))
        h_loc = jnp.pad(h_loc, ((0, 0), (0, 1), (0, 1)))
        idx, cat = self._local_index(), np.arange(C)
        naux = cfg.nauxdata
        theta = pars[pars.shape[0] - naux :]
        g_con = jnp.zeros_like(pars).at[pars.shape[0] - naux :].set(2.0 * (theta - aux))
        h_con = jnp.zeros_like(pars).at[pars.shape[0] - naux :].set(2.0)
        grad = jnp.sum(g_loc[cat[:, None], idx], axis=0) + g_con
        hess = jnp.sum(h_loc[cat[:, None, None], idx[:, :, None], idx[:, None, :]], axis=0)
        hess = hess + jnp.diag(h_con)
        return value, grad, 0.5 * (hess + hess.T)

    def fixed_mask(self):
        """No parameter is fixed, except (background ``"padded"``) the coefficient slots beyond
        the model's order, held at 0."""
        fixed = super().fixed_mask()
        if self.background != "padded":
            return fixed
        cfg = self.config
        at = np.concatenate(
            [1 + c * cfg.per_category + 1 + np.arange(self.n_coeffs)
             for c in range(self.counts.shape[0])]
        )  # fmt: skip
        return fixed.at[at].set(jnp.tile(~self.coeff_free, self.counts.shape[0]))

    def constraint_terms(self):
        """The unit Gaussians of θ_eff, θ_res (the last ``nauxdata`` parameters)."""
        naux, npars = self.config.nauxdata, self.config.npars
        if not naux:
            return ()
        par = np.arange(npars - naux, npars, dtype=np.int32)
        aux = np.arange(naux, dtype=np.int32)
        return (ConstraintTerm("normal", par, aux, jnp.ones((naux,), self.counts.dtype)),)

    def batch_shape(self):
        """Leading batch shape of stacked window models: ``counts`` is [..., C, W]."""
        return tuple(self.counts.shape[:-2])


#: what :func:`padded_background` can pad, and the family each background belongs to
_FAMILY = {"bernstein": "polynomial", "chebyshev": "polynomial", "exponential": "exponential",
           "template": "template"}  # fmt: skip
#: initial value of a used coefficient slot
_COEFF_INIT = {"bernstein": 1.0, "chebyshev": 0.0, "exponential": 0.0}


def padded_background(model: WindowModel, n: int, families: tuple) -> WindowModel:
    """The same likelihood with background ``"padded"``: n coefficient slots (n ≥ the model's
    ``n_coeffs``; the slots beyond it fixed at 0) and the background family as data, so window
    models of *different* background families and orders share one array layout and stack
    into one batch (``jax.vmap`` over background models: the envelope's fits in one call).

    A polynomial (Bernstein, Chebyshev) becomes P(x) ∝ A a / (s · a) with the linear basis of
    :func:`~jaxlike.shapes.polynomial_basis` padded with zero columns (the same fractions to
    rounding, ~1e-16); an exponential keeps its slope in slot 1; a template is the template.
    ``families``: the static tuple of families of the batch (``"polynomial"``,
    ``"exponential"``, ``"template"``), the same for every model of it. Parameter names,
    order, initial values and bounds of the used slots are the model's own."""
    if model.background == "padded":  # already padded: more slots, more families
        return _repad(model, n, families)
    kind = model.background
    fam = _FAMILY[kind]
    if fam not in families or n < model.n_coeffs:
        raise ValueError(f"cannot pad background {kind!r} (order {model.n_coeffs}) to {n} "
                         f"slots of families {families}")  # fmt: skip
    C, W = model.counts.shape
    if fam == "polynomial":
        basis, norm = _padded_basis(kind, model.edges, model.n_coeffs, n)
    else:  # any finite basis: its branch is not selected
        basis = jnp.full((C, W, n + 1), 1.0 / W)
        norm = jnp.ones((C, n + 1))
    free = jnp.arange(n) < model.n_coeffs
    return dataclasses.replace(
        model,
        basis=basis,
        basis_norm=norm,
        **_slots(kind, free),
        family=jnp.asarray(families.index(fam), jnp.int32),
        background="padded",
        n_coeffs=n,
        families=tuple(families),
    )


def _padded_basis(kind, edges, k: int, n: int):
    """The order-k basis of each category's window (:func:`polynomial_basis`, edges [C, W+1])
    padded with zero columns to n slots: ([C, W, n+1], [C, n+1])."""
    rows = [polynomial_basis(kind, e, k, e[0], e[-1]) for e in edges]
    basis = jnp.stack([jnp.pad(a, ((0, 0), (0, n - k))) for a, _ in rows])
    return basis, jnp.stack([jnp.pad(s, (0, n - k)) for _, s in rows])


def _slots(kind, free) -> dict:
    """Initial values, bounds and free flags of the coefficient slots of a ``kind``
    background: the kind's own where ``free``, else 0 in [0, 1] (fixed)."""
    lo_c, hi_c = _COEFF_BOUNDS.get(kind, (0.0, 1.0))
    bounds = jnp.where(free[:, None], jnp.asarray([[lo_c, hi_c]]), jnp.asarray([[0.0, 1.0]]))
    return {"coeff_init": jnp.where(free, _COEFF_INIT.get(kind, 0.0), 0.0),
            "coeff_bounds": bounds, "coeff_free": free}  # fmt: skip


def stack_backgrounds(models) -> WindowModel:
    """Window models of one hypothesis that differ only in their background (family, order,
    or the window's range) as ONE batched :class:`WindowModel` [J]: every model padded
    (:func:`padded_background`) to the largest order and the families present, then stacked
    leaf by leaf. ``jax.vmap`` over the result fits all J models with one compiled fit.
    The models need equal array shapes (categories, window bins, peaks) and signal systematics."""
    n = max(w.n_coeffs for w in models)
    own = [w.families if w.background == "padded" else (_FAMILY[w.background],) for w in models]
    families = tuple(f for f in ("polynomial", "exponential", "template")
                     if any(f in fams for fams in own))  # fmt: skip
    padded = [padded_background(w, n, families) for w in models]
    return jax.tree.map(lambda *x: jnp.stack(x), *padded)


def _repad(model: WindowModel, n: int, families: tuple) -> WindowModel:
    """A padded model with n ≥ its slots and the ``families`` (⊇ its own) of a larger batch."""
    extra = n - model.n_coeffs
    if extra < 0 or not set(model.families) <= set(families):
        raise ValueError(f"cannot pad a padded background of {model.n_coeffs} slots and "
                         f"families {model.families} to {n} slots of {families}")  # fmt: skip
    remap = jnp.asarray([families.index(f) for f in model.families], jnp.int32)
    return dataclasses.replace(
        model,
        basis=jnp.pad(model.basis, ((0, 0), (0, 0), (0, extra))),
        basis_norm=jnp.pad(model.basis_norm, ((0, 0), (0, extra))),
        coeff_init=jnp.pad(model.coeff_init, (0, extra)),
        coeff_bounds=jnp.concatenate(
            [model.coeff_bounds, jnp.tile(jnp.asarray([[0.0, 1.0]]), (extra, 1))]
        ),  # fmt: skip
        coeff_free=jnp.pad(model.coeff_free, (0, extra)),
        family=remap[model.family],
        n_coeffs=n,
        families=tuple(families),
    )


def ranged_order(model: WindowModel, orders: tuple, index) -> WindowModel:
    """The polynomial background of ``model`` (Bernstein or Chebyshev, ``n_coeffs`` = the
    largest of ``orders``) at the order ``orders[index]`` — ``index`` traced (e.g. the mass
    range of a hypothesis), so one compiled scan serves every range: the padded layout of
    :func:`padded_background` with the basis of each candidate order (a Bernstein basis of
    degree k is not the degree-N one with coefficients set to 0) selected by ``index`` and the
    slots above the order fixed at 0."""
    kind, n = model.background, model.n_coeffs
    if kind not in ("bernstein", "chebyshev") or max(orders) != n:
        raise ValueError(f"orders {orders} need a bernstein or chebyshev background of order "
                         f"{max(orders)}, got {kind!r} of order {n}")  # fmt: skip
    bases, norms = zip(*(_padded_basis(kind, model.edges, k, n) for k in orders), strict=True)
    index = jnp.asarray(index, jnp.int32)
    free = jnp.arange(n) < jnp.asarray(orders)[index]
    return dataclasses.replace(
        model,
        basis=jnp.stack(bases)[index],
        basis_norm=jnp.stack(norms)[index],
        **_slots(kind, free),
        family=jnp.asarray(0, jnp.int32),
        background="padded",
        families=("polynomial",),
    )
