"""Maximum-likelihood fits of a :class:`~jaxlike.Model`: global and fixed-parameter fits.

All fits minimise 2NLL = −2 log L(θ | data) with the in-XLA Newton minimiser of
:mod:`jaxlike.fit._newton`; they are jit-compiled per model layout (not per template), and work
under ``jax.vmap`` over data, templates (a stacked model, see :func:`jaxlike.stack_models`),
initial values or fixed values.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._compile import any_traced, jit
from ..exceptions import InvalidData, InvalidParameters
from ..linalg import ArrowheadCovariance, covariance_diagonal, free_inverse, put
from ..model import Model
from ._newton import BREAKPOINT_VALUES, SEARCH_MAX_PARS, MinimizeState, minimize
from ._results import RESULTS, as_result, raise_if_failed, result_repr, status_text
from ._types import Bounds, Data, Fixed, Pars, Scalar

__all__ = [
    "DENSE_COVARIANCE_MAX",
    "FitResult",
    "fit",
    "fixed_poi_fit",
    "fit_arrays",
    "fit_state",
    "model_breakpoints",
    "prepare_fit_inputs",
]


class FitResult(eqx.Module):
    """Outcome of a fit. Array-valued (batched under vmap).

    Attributes:
        bestfit: θ̂, in the model's parameter order.
        uncertainties: sqrt of the diagonal of the covariance (0 for fixed parameters; 0 also
            for parameters on a bound when the full Hessian is not positive definite there:
            the delta-method covariance of the bound-constrained estimator, see ``at_bound``).
        covariance: V = (½ ∂²(2NLL)/∂θ²)⁻¹ = H_NLL⁻¹ over the non-fixed parameters: a dense
            [P, P] array, except for a model with an arrowhead Hessian (many per-bin
            parameters) and more than :data:`DENSE_COVARIANCE_MAX` parameters, where it is an
            :class:`~jaxlike.fit.ArrowheadCovariance` (factored, O(P) memory; ``.diagonal()``,
            ``.todense()``, ``np.asarray(cov)``) — the dense matrix would be 800 MB at 10⁴
            parameters, per fit.
        twice_nll: 2NLL at θ̂.
        converged: the minimiser met its EDM tolerance (see ``status``).
        status: the integer code of a :class:`jaxlike.fit.RESULTS` item (the stored form;
            ``result`` is the item, ``status_text`` its text) — 0 converged (the certificate
            below holds), 1 max iterations, 2 stalled, 3 non-finite start, 4 degenerate (a
            parameter without effect), 5 Hessian not positive definite at the end point.
        iterations, edm: diagnostics; iterations summed over all runs of the minimiser
            (``maxiter`` caps each run), edm = ½ gᵀH⁻¹g over the free parameters.
        grad_norm: norm of the projected gradient (one-sided at bounds and kinks; 0 on fixed,
            bound-active and kink-held parameters).
        at_bound: parameters that ended on one of their bounds.
        fixed: parameters held constant in this fit.
        held: parameters held at an interpolation kink where the one-sided derivatives bracket
            zero (∂⁻ ≤ 0 ≤ ∂⁺: optimal there, though not stationary).
        degenerate: parameters along a flat (or not positive definite) direction of the
            objective, e.g. a POI without effect on the model; then ``converged`` is False.
        n_local_minima: 2 when the other side of a concave kink (a double well of two-sided
            histosys) held a second, different local minimum; the lower one is returned.
    """

    bestfit: Float[Array, "*batch npars"]
    uncertainties: Float[Array, "*batch npars"]
    covariance: Float[Array, "*batch npars npars"] | ArrowheadCovariance
    twice_nll: Float[Array, "*batch"]
    converged: Bool[Array, "*batch"]
    status: Int[Array, "*batch"]
    iterations: Int[Array, "*batch"]
    edm: Float[Array, "*batch"]
    grad_norm: Float[Array, "*batch"]
    at_bound: Bool[Array, "*batch npars"]
    fixed: Bool[Array, "*batch npars"]
    held: Bool[Array, "*batch npars"]
    degenerate: Bool[Array, "*batch npars"]
    n_local_minima: Int[Array, "*batch"]

    __repr__ = result_repr  # numbers, shapes and the status spelled out

    @property
    def correlation(self):
        """Correlation matrix ρ_ij = V_ij / (σ_i σ_j) (0 rows/columns for fixed parameters);
        always dense (a factored covariance is expanded)."""
        s = jnp.where(self.uncertainties > 0, self.uncertainties, 1.0)
        cov = self.covariance
        if isinstance(cov, ArrowheadCovariance):
            cov = cov.todense()
        return cov / s[..., :, None] / s[..., None, :]

    @property
    def result(self) -> RESULTS:
        """The status as a :class:`~jaxlike.fit.RESULTS` item (batched like ``status``)."""
        return as_result(self.status)

    @property
    def status_text(self) -> str:
        """Text of the status (unbatched results): ``RESULTS[result]``."""
        return status_text(self.status)

    def message(self, names=None):
        """Human-readable convergence status (unbatched results); with the model's parameter
        ``names`` it names the degenerate parameters."""
        text = self.status_text
        if names is not None and bool(jnp.any(self.degenerate)):
            bad = [n for n, d in zip(names, self.degenerate.tolist(), strict=True) if d]
            text += f" (degenerate: {', '.join(bad)})"
        if int(self.n_local_minima) > 1:
            text += "; a second local minimum exists (the lower one is reported)"
        return text


#: above this many parameters, the covariance of a fit with an arrowhead Hessian stays factored
#: (:class:`~jaxlike.fit.ArrowheadCovariance`); at or below it, it is the dense array (8 MB)
DENSE_COVARIANCE_MAX = 1024


def _covariance(hess, fixed):
    """V = 2 H⁻¹ on the non-fixed block (H is the Hessian of 2NLL); NaN if not positive definite.
    Dense, or factored for a large arrowhead Hessian (see :data:`DENSE_COVARIANCE_MAX`)."""
    inv, ok = free_inverse(hess, ~fixed)
    if isinstance(inv, ArrowheadCovariance):
        cov = inv.scaled(2.0, ok)
        return cov if inv.layout.n > DENSE_COVARIANCE_MAX else cov.todense()
    return jnp.where(ok, 2.0 * inv, jnp.nan)


def fit_covariance(hess, fixed, at_bound):
    """The covariance reported by a fit: V = 2 H⁻¹ on the free parameters (:func:`_covariance`).

    A minimum on a bound can have an indefinite full Hessian (2NLL keeps falling beyond the
    bound). The local (delta-method) covariance of the bound-constrained estimator then holds
    the parameters on their bounds: their uncertainty is 0, the others' come from the Hessian
    of the rest, V = 2 (H_FF)⁻¹ with F = free and not on a bound."""
    cov = _covariance(hess, fixed)
    indefinite = jnp.any(jnp.isnan(covariance_diagonal(cov))) & jnp.any(at_bound)
    return jax.lax.cond(indefinite, lambda: _covariance(hess, fixed | at_bound), lambda: cov)


def model_breakpoints(model):
    """Static [npars, 3] mask of the model's interpolation breakpoints at α = −1, 0, +1
    (see :mod:`jaxlike.fit._newton`), or None for a smooth model
    (:meth:`jaxlike.model.Likelihood.breakpoints`)."""
    return model.breakpoints()


def _on_breakpoints(x, breaks):
    """x with the one-sided representatives b ± δ of a breakpoint written as b itself (the
    objective is continuous there; the minimiser's side bookkeeping is internal)."""
    if breaks is None:
        return x
    for k, b in enumerate(BREAKPOINT_VALUES):
        near = jnp.asarray(breaks[:, k]) & (jnp.abs(x - b) <= 4.5e-16)
        x = jnp.where(near, b, x)
    return x


def fit_state(
    model,
    data: Float[Array, " ndata"],
    init: Float[Array, " npars"],
    lo: Float[Array, " npars"],
    hi: Float[Array, " npars"],
    fixed: Bool[Array, " npars"],
    *,
    starts: Float[Array, "nstarts npars"] | None = None,
    search: bool | None = None,
    maxiter: int = 200,
    tol: float = 1e-10,
    given: tuple | None = None,
) -> MinimizeState:
    """The minimiser's end state (:class:`jaxlike.fit._newton.MinimizeState`: x, f = 2NLL,
    gradient, Hessian, certificate) of the fit that :func:`fit_arrays` reports: 2NLL(θ; data)
    minimised over the box [lo, hi] with ``fixed`` held at ``init``. Traceable.

    ``given``: (θ, f, ∇f, ∇²f), the objective already evaluated at θ (e.g. ``st.x, st.f,
    st.grad, st.hess`` of a fit that ended there): where θ is the start ``init``, the run
    starts with them, one iteration shorter (see :func:`jaxlike.fit._newton.minimize`)."""
    return minimize(
        lambda x: model.value_grad_hess(x, data),
        init,
        lo,
        hi,
        fixed,
        breaks=model_breakpoints(model),
        starts=starts,
        search=search,
        probe=model.probe_mask(),
        value=lambda x: model.twice_nll(x, data),
        maxiter=maxiter,
        tol=tol,
        given=given,
    )


def fit_arrays(
    model,
    data: Float[Array, " ndata"],
    init: Float[Array, " npars"],
    lo: Float[Array, " npars"],
    hi: Float[Array, " npars"],
    fixed: Bool[Array, " npars"],
    *,
    starts: Float[Array, "nstarts npars"] | None = None,
    search: bool | None = None,
    maxiter: int = 200,
    tol: float = 1e-10,
    given: tuple | None = None,
) -> FitResult:
    """Fit with every input an array (the traced core used by fits, tests and scans).

    ``starts``: optional further starting points [K, npars] (e.g. the results of related fits;
    rows with a NaN are skipped, fixed coordinates come from ``init``); the lowest certified
    minimum over all runs is returned (see :func:`jaxlike.fit._newton.minimize`).
    ``search``: the minimiser's global search (coordinate probe, damped and coordinate-descent
    runs): None — for models with at most ``_newton.SEARCH_MAX_PARS`` probed parameters, True —
    always, False — never (for continuations). A model with nothing to probe runs none: a
    convex HistFactory layout has one minimum (:func:`jaxlike.model._model.convex_layout`).
    ``given``: the objective already evaluated at the start (see :func:`fit_state`).
    """
    st = fit_state(model, data, init, lo, hi, fixed, starts=starts, search=search,
                   maxiter=maxiter, tol=tol, given=given)  # fmt: skip
    span = jnp.maximum(hi - lo, 1.0)
    at_bound = ((st.x <= lo + 1e-9 * span) | (st.x >= hi - 1e-9 * span)) & ~fixed
    cov = fit_covariance(st.hess, fixed, at_bound)
    return FitResult(
        bestfit=_on_breakpoints(st.x, model_breakpoints(model)),
        uncertainties=jnp.sqrt(covariance_diagonal(cov)),
        covariance=cov,
        twice_nll=st.f,
        converged=st.converged,
        status=st.status,
        iterations=st.iterations,
        edm=st.edm,
        grad_norm=jnp.linalg.norm(st.proj_grad),
        at_bound=at_bound,
        fixed=fixed,
        held=st.held,
        degenerate=st.degenerate,
        n_local_minima=st.n_local_minima,
    )


#: the largest fit whose program leaves out XLA's loop-invariant code motion (see
#: :mod:`jaxlike._compile`): parameters and data (main bins and auxiliary data)
SMALL_FIT_PARS, SMALL_FIT_DATA = 10, 64


def small_fit(args, kwargs) -> bool:
    """Whether a top-level :func:`fit_arrays` call ``(model, data, init, ...)`` is one fit of a
    small model: a 1-D ``init`` of at most ``SMALL_FIT_PARS`` parameters and at most
    ``SMALL_FIT_DATA`` data. Its program compiles with :func:`jaxlike._compile.small_options`:
    compile time, not run time, is most of the cost of such a fit."""
    init = np.shape(args[2]) if len(args) > 2 else ()
    data = np.shape(args[1]) if len(args) > 1 else ()
    small_pars = len(init) == 1 and init[0] <= SMALL_FIT_PARS
    return small_pars and len(data) == 1 and data[0] <= SMALL_FIT_DATA


#: the one compiled fit per model layout: :func:`fit`, :func:`fixed_poi_fit` and the five fits
#: of every hypothesis test (:mod:`jaxlike.infer`) call it with the same argument structure
#: (:func:`start_rows`), so a first hypothesis test after a first fit compiles nothing new
_fit_compiled = jit(fit_arrays, small=small_fit)


def fit_jit(model, data, init, lo, hi, fixed, *, starts=None, search=None, maxiter=200, tol=1e-10):
    """:func:`fit_arrays`, compiled once per model layout and argument structure (every
    option passed explicitly: a default left out and the same value passed are one key)."""
    return _fit_compiled(
        model, data, init, lo, hi, fixed, starts=starts, search=search, maxiter=maxiter, tol=tol
    )


def global_search(model) -> bool:
    """Whether fits of this model run the minimiser's global search: the default rule of
    :func:`jaxlike.fit._newton.minimize`, at most ``SEARCH_MAX_PARS`` probed scalar
    parameters. Only then do fits take further starting points (:func:`start_rows`): on larger
    models those extra runs made a vmapped ERJR hypothesis test 3× slower."""
    mask = model.probe_mask()
    n = model.config.npars if mask is None else int(np.sum(mask))
    return n <= SEARCH_MAX_PARS


def start_rows(init, *points, model=None):
    """[2, P] further starting points for a fit (``starts`` of :func:`fit_arrays`): the best
    fits of related fits (``points``, at most 2), NaN rows where fewer are given (skipped by
    the minimiser). None (no further starts) for a ``model`` without global search
    (:func:`global_search`). Every fit of a model passes this shape, so all share one
    compiled program."""
    if model is not None and not global_search(model):
        return None
    xp = jnp if any_traced(init, points) else np  # host arrays: no tiny compilations
    nan = xp.full(np.shape(init), np.nan, dtype=float)
    rows = [nan if p is None else xp.asarray(p) for p in points] + [nan] * (2 - len(points))
    return xp.stack(rows)


def set_at(a, index, value):
    """``a`` with ``a[..., index] = value`` for a scalar index: a NumPy copy for a host array
    (no compilation), :func:`jaxlike.linalg.put` for a JAX array or tracer (a select with the
    bits of ``a.at[..., index].set(value)``, without a scatter's loop in the program)."""
    if isinstance(a, np.ndarray):
        a = a.copy()
        a[..., index] = value
        return a
    return put(a, index, value)


def conditional_inputs(start, lo, hi, fixed, poi, mu):
    """(start, lo, hi, fixed) of a fit with the POI held at ``mu``: start_poi = μ, the POI
    fixed, its bounds widened to include μ (a limit scan may test beyond them, as in pyhf).
    On the host when nothing is traced: a first hypothesis test would otherwise compile four
    tiny programs for it."""
    if any_traced(start, lo, hi, fixed, mu):  # a host array beside a tracer becomes a JAX one
        xp = jnp
        start, lo, hi, fixed = (jnp.asarray(a) for a in (start, lo, hi, fixed))
    else:
        xp = np
        start, lo, hi, fixed = (np.asarray(a) for a in (start, lo, hi, fixed))
        mu = float(mu)
    return (
        set_at(start, poi, mu),
        set_at(lo, poi, xp.minimum(lo[..., poi], mu)),
        set_at(hi, poi, xp.maximum(hi[..., poi], mu)),
        set_at(fixed, poi, True),
    )


_fixed_jit = eqx.filter_jit(lambda model: model.fixed_mask())  # one dispatch, not ~10/segment


def _default_fixed(model):
    """``model.fixed_mask()``: directly for a concrete :class:`~jaxlike.model.Model` (its
    NumPy path, no compilation), else as one jitted program."""
    if type(model).fixed_mask is Model.fixed_mask and not any_traced(model):
        return Model.fixed_mask_host(model)  # not model.…: no bound-method wrapper
    return _fixed_jit(model)


def prepare_fit_inputs(
    model,
    data: Data,
    init_pars: Pars | None = None,
    par_bounds: Bounds | None = None,
    fixed_params: Fixed | None = None,
    *,
    host: bool = False,
) -> tuple[
    Float[Array, " ndata"],
    Float[Array, " npars"],
    Float[Array, " npars"],
    Float[Array, " npars"],
    Bool[Array, " npars"],
]:
    """Validate and default (data, init, lo, hi, fixed) for a fit of ``model``.

    ``fixed_params`` is a boolean mask (length npars) or a dict {name: value}; by default the
    model's :meth:`~jaxlike.Model.fixed_mask`. Works on arrays and tracers alike.
    ``host=True``: NumPy arrays when nothing is traced (for callers that only pass them on to a
    compiled fit: each tiny jnp operation on a new layout is an XLA compilation of its own).
    """
    cfg = model.config
    traced = any_traced(model, data, init_pars, par_bounds, fixed_params)
    xp = np if host and not traced else jnp
    data = xp.asarray(data, dtype=float)
    n_expected = cfg.nmaindata + cfg.nauxdata
    if data.shape[-1] != n_expected:
        raise InvalidData(
            f"data has {data.shape[-1]} entries, the model expects {cfg.nmaindata} observations "
            f"+ {cfg.nauxdata} auxdata = {n_expected}"
        )
    init = xp.array(cfg.suggested_init() if init_pars is None else init_pars, dtype=float)
    bounds = xp.array(cfg.suggested_bounds() if par_bounds is None else par_bounds, dtype=float)
    if init.shape[-1] != cfg.npars or bounds.shape[-2:] != (cfg.npars, 2):
        raise InvalidParameters(
            f"init_pars/par_bounds must have {cfg.npars} entries (parameters: {cfg.par_names})"
        )
    fixed = xp.asarray(_default_fixed(model))
    if isinstance(fixed_params, dict):
        for name, value in fixed_params.items():
            i = cfg.par_index(name)
            fixed, init = set_at(fixed, i, True), set_at(init, i, value)
    elif fixed_params is not None:
        fixed = xp.array(fixed_params, dtype=bool)
        if fixed.shape[-1] != cfg.npars:
            raise InvalidParameters(f"fixed_params must have {cfg.npars} entries")
    return data, init, bounds[..., 0], bounds[..., 1], fixed


def fit(
    model,
    data: Data,
    *,
    init_pars: Pars | None = None,
    par_bounds: Bounds | None = None,
    fixed_params: Fixed | None = None,
    maxiter: int = 200,
    tol: float = 1e-10,
    throw: bool = False,
) -> FitResult:
    """Global maximum-likelihood fit: θ̂ = argmin_θ −2 log L(θ | data) within bounds.

    Args:
        model: a :class:`~jaxlike.Model` (or a stacked model under ``jax.vmap``).
        data: observations followed by auxdata (``Workspace.data(model)``).
        init_pars, par_bounds: defaults from ``model.config``.
        fixed_params: boolean mask or ``{name: value}``; default: the model's fixed parameters.
        maxiter, tol: iteration cap and EDM tolerance of the Newton minimiser.
        throw: raise if the fit did not converge: :class:`~jaxlike.exceptions.FitNotConverged`
            naming the status text, or under ``jit``/``vmap`` an :func:`equinox.error_if`
            runtime error with that text. Default: report it in the result only.

    Returns:
        :class:`FitResult`; check ``converged`` — a non-converged fit is flagged, never hidden
        (``result``/``status_text`` say why).

    Example::

        res = jaxlike.fit(model, data)
        mu_hat = res.bestfit[model.config.poi_index]
    """
    d, init, lo, hi, fixed = prepare_fit_inputs(
        model, data, init_pars, par_bounds, fixed_params, host=True
    )
    starts = start_rows(init, model=model)
    res = fit_jit(model, d, init, lo, hi, fixed, starts=starts, maxiter=maxiter, tol=tol)
    return raise_if_failed(res, res.status, "fit") if throw else res


def fixed_poi_fit(
    model,
    data: Data,
    poi_value: Scalar,
    *,
    init_pars: Pars | None = None,
    par_bounds: Bounds | None = None,
    fixed_params: Fixed | None = None,
    maxiter: int = 200,
    tol: float = 1e-10,
    throw: bool = False,
) -> FitResult:
    """Conditional fit θ̂̂(μ): the POI held at ``poi_value``, all other parameters profiled.

    ``poi_value`` may be a traced scalar (vmap over POI values compiles once). Other arguments
    as :func:`fit` (``throw=True``: raise if the fit did not converge).
    """
    poi = model.config.poi_index
    if poi is None:
        raise InvalidParameters("the model has no parameter of interest (poi_name=None)")
    d, init, lo, hi, fixed = prepare_fit_inputs(
        model, data, init_pars, par_bounds, fixed_params, host=not any_traced(poi_value)
    )
    init, lo, hi, fixed = conditional_inputs(init, lo, hi, fixed, poi, poi_value)
    starts = start_rows(init, model=model)
    res = fit_jit(model, d, init, lo, hi, fixed, starts=starts, maxiter=maxiter, tol=tol)
    return raise_if_failed(res, res.status, "conditional fit") if throw else res
