r"""The likelihood contract: what every model kind offers to the layers above it.

``fit``, ``infer``, ``scan``, ``analysis`` and ``bayes`` work on any subclass of
:class:`Likelihood` and use nothing but its public methods and its ``config``
(a :class:`LikelihoodConfig`). :class:`jaxlike.Model` (HistFactory) and
:class:`jaxlike.parametric.WindowModel` (a parametric bump-hunt window) are two such kinds; a
new kind (a counting grid, a user model) subclasses :class:`Likelihood`, implements the five
abstract methods and gets fits, hypothesis tests, limits, batched scans and NUTS.

The data vector is ``x = (n, a)``: the main measurement n (``config.nmaindata`` entries)
followed by the auxiliary data a (``config.nauxdata``). The likelihood is

.. math::

    \log L(\theta \mid n, a) = \log p(n \mid \nu(\theta))
        + \sum_{\text{normal } i} \log \mathcal N(a_i \mid \theta_{p_i}, \sigma_i)
        + \sum_{\text{poisson } j} \log \mathrm{Pois}(a_j \mid \theta_{p_j} \tau_j),

and the constraint terms are declared by :meth:`Likelihood.constraint_terms` so that the upper
layers can read prefit widths, sample toys and choose priors without knowing the model kind.
A model is an ``equinox.Module``: its array fields are pytree leaves, so a batch of models of
one layout (``stack_models``) runs under ``jax.vmap`` and :meth:`Likelihood.batch_shape` says
how many.
"""

import abc
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from equinox import AbstractVar
from jaxtyping import Array, ArrayLike, Bool, Float

from ..exceptions import InvalidParameters
from ._sampling import PoissonTable

__all__ = ["ConstraintTerm", "Likelihood", "LikelihoodConfig", "autodiff_value_grad_hess"]


class ConstraintTerm(NamedTuple):
    """One kind of constraint term: Gaussian ``log N(a[aux] | θ[par], scale)`` (``kind ==
    "normal"``, scale = σ) or Poisson ``log Pois(a[aux] | θ[par]·scale)`` (``"poisson"``,
    scale = τ). ``par`` and ``aux`` are static integer index arrays of equal length."""

    kind: str
    par: np.ndarray
    aux: np.ndarray
    scale: jax.Array


class LikelihoodConfig(abc.ABC):
    """Parameter layout of a :class:`Likelihood` (pyhf's ``_ModelConfig`` subset that every
    layer above the model reads).

    Subclasses set the attributes ``par_names`` (one name per scalar parameter), ``npars``,
    ``poi_index``/``poi_name`` (None without a parameter of interest), ``nmaindata`` and
    ``nauxdata``, and implement :meth:`suggested_init` and :meth:`suggested_bounds`.
    """

    par_names: list[str]
    npars: int
    poi_index: int | None
    poi_name: str | None
    nmaindata: int
    nauxdata: int

    @abc.abstractmethod
    def suggested_init(self) -> Float[ArrayLike, " npars"]:
        """Initial parameter values θ₀ of every fit."""

    @abc.abstractmethod
    def suggested_bounds(self) -> Float[ArrayLike, "npars 2"]:
        """Lower and upper bound of every parameter, shape [npars, 2]."""

    def suggested_fixed(self) -> Bool[np.ndarray, " npars"]:
        """Parameters the user holds constant (default: none)."""
        return np.zeros(self.npars, bool)

    def par_index(self, name: str) -> int:
        """Position of the scalar parameter ``name`` in the parameter vector."""
        try:
            return list(self.par_names).index(name)
        except ValueError:
            raise InvalidParameters(
                f"no parameter {name!r} in the model (parameters: {list(self.par_names)})"
            ) from None


def autodiff_value_grad_hess(f):
    """``x -> (f(x), ∇f(x), ∇²f(x))`` by automatic differentiation: the gradient by reverse
    mode (value as auxiliary output), the Hessian by forward mode over it (forward-over-reverse,
    one pass; right for the tens of parameters of a small model), symmetrised ½(H + Hᵀ)."""

    def grad_aux(y):
        v, g = jax.value_and_grad(f)(y)
        return g, (v, g)

    def fgh(x):
        h, (v, g) = jax.jacfwd(grad_aux, has_aux=True)(x)
        return v, g, 0.5 * (h + h.T)

    return fgh


class Likelihood(eqx.Module):
    """Abstract base of every model kind (see the module docstring for the contract).

    Abstract: ``config``, :meth:`expected_actualdata`, :meth:`expected_auxdata`,
    :meth:`auxdata`, :meth:`logpdf`. Everything else has a default that a kind may override
    with something faster or exact (e.g. a closed-form Hessian).
    """

    config: AbstractVar[LikelihoodConfig]

    # -- what a kind must implement ----------------------------------------------------------
    @abc.abstractmethod
    def expected_actualdata(self, pars: Float[ArrayLike, " npars"]) -> Float[Array, " nmain"]:
        """Expected main-measurement yields ν(θ) (the Poisson means of the main data)."""

    @abc.abstractmethod
    def expected_auxdata(self, pars: Float[ArrayLike, " npars"]) -> Float[Array, " naux"]:
        """Expected auxiliary data: θ_p for Gaussian, θ_p τ for Poisson constraint terms."""

    @abc.abstractmethod
    def auxdata(self) -> Float[Array, " naux"]:
        """The nominal (observed) auxiliary data a."""

    @abc.abstractmethod
    def logpdf(
        self, pars: Float[ArrayLike, " npars"], data: Float[ArrayLike, " ndata"]
    ) -> Float[Array, ""]:
        """log L(θ | x) for the data vector x = (main, aux)."""

    # -- defaults ----------------------------------------------------------------------------
    def constraint_terms(self) -> tuple[ConstraintTerm, ...]:
        """The constraint terms of the likelihood, one :class:`ConstraintTerm` per kind present
        (default: none; then ``config.nauxdata`` must be 0)."""
        return ()

    def constraint_kinds(self) -> tuple[str | None, ...]:
        """Per parameter: ``"normal"``, ``"poisson"`` or None (no constraint term: a free
        parameter, which needs a prior in a Bayesian analysis). Static."""
        kinds: list[str | None] = [None] * self.config.npars
        for term in self.constraint_terms():
            for p in np.asarray(term.par, dtype=int):
                kinds[p] = term.kind
        return tuple(kinds)

    def expected_data(
        self, pars: Float[ArrayLike, " npars"], include_auxdata: bool = True
    ) -> Float[Array, " ndata"]:
        """Expected main data followed (by default) by the expected auxiliary data (Asimov)."""
        main = self.expected_actualdata(pars)
        if not include_auxdata:
            return main
        return jnp.concatenate([main, self.expected_auxdata(pars)])

    def poisson_means(self, pars: Float[ArrayLike, " npars"]) -> Float[Array, " npois"]:
        """The means of the Poisson-distributed data at ``pars``: the expected main counts ν
        followed by the expectations γ_j τ_j of the ``"poisson"`` constraint terms' auxiliary
        data, in the order of :meth:`constraint_terms` (what :meth:`sample` draws from a
        :class:`~jaxlike.model.PoissonTable`)."""
        pars = jnp.asarray(pars, float)
        parts = [self.expected_actualdata(pars)]
        aux_mean = self.expected_auxdata(pars)
        for term in self.constraint_terms():
            if term.kind == "poisson" and np.asarray(term.aux).size:
                parts.append(aux_mean[np.asarray(term.aux, dtype=int)])
        return jnp.concatenate(parts)

    def sample(
        self,
        pars: Float[ArrayLike, " npars"],
        key: jax.Array,
        shape: tuple[int, ...] = (),
        table: PoissonTable | None = None,
    ) -> Float[Array, "*shape ndata"]:
        r"""Pseudo-datasets x = (n, a) drawn from the full pdf at ``pars`` (pyhf's
        ``model.make_pdf(pars).sample(shape)``):

        .. math::
            n_b \sim \mathrm{Pois}(\nu_b(\theta)), \quad
            a_i \sim \mathcal N(\theta_{p_i}, \sigma_i) \ \text{(normal terms)}, \quad
            a_j \sim \mathrm{Pois}(\theta_{p_j}\tau_j) \ \text{(poisson terms)},

        i.e. main counts around the expected yields and every auxiliary datum around its
        expectation :meth:`expected_auxdata` with the term's width. Returns an array of shape
        ``shape + (ndata,)`` in the layout of :meth:`make_data`. Pure and traceable: works
        under ``jit`` and ``vmap`` (over keys, parameters or a stacked model); derive per-toy
        keys with ``jax.random.fold_in(key, i)`` so toy i is reproducible on its own.

        ``table``: a :class:`~jaxlike.model.PoissonTable` of :meth:`poisson_means` at these
        ``pars`` (``poisson_table(model.poisson_means(pars))``, built once per generating
        point on the host): the Poisson counts are then drawn by its inverse CDF, one uniform
        each, instead of JAX's rejection sampler (the same distributions, another random
        stream; the toys' fast path). Without it (default), ``jax.random.poisson``.
        """
        pars = jnp.asarray(pars, float)
        shape = tuple(shape)
        nu = self.expected_actualdata(pars)
        nmain = nu.shape[-1]
        k_main, k_aux = jax.random.split(key)
        counts = None if table is None else table.draw(k_main, shape)
        if counts is None:
            main = jax.random.poisson(k_main, nu, shape + nu.shape, dtype=jnp.int64)
            main = main.astype(nu.dtype)
        else:
            main = counts[..., :nmain]
        offset = nmain
        aux_mean = self.expected_auxdata(pars)
        aux = jnp.broadcast_to(aux_mean, shape + aux_mean.shape)
        for i, term in enumerate(self.constraint_terms()):
            idx = np.asarray(term.aux, dtype=int)
            if idx.size == 0:
                continue
            k = jax.random.fold_in(k_aux, i)
            mean = aux_mean[idx]
            if term.kind == "normal":
                scale = jnp.broadcast_to(jnp.asarray(term.scale, nu.dtype), mean.shape)
                draw = mean + scale * jax.random.normal(k, shape + mean.shape, nu.dtype)
            elif term.kind == "poisson" and counts is not None:
                draw = counts[..., offset : offset + idx.size]
                offset += idx.size
            elif term.kind == "poisson":
                draw = jax.random.poisson(k, mean, shape + mean.shape, dtype=jnp.int64)
                draw = draw.astype(nu.dtype)
            else:
                raise InvalidParameters(f"cannot sample a constraint term of kind {term.kind!r}")
            aux = aux.at[..., idx].set(draw)
        return jnp.concatenate([main, aux], axis=-1)

    def make_data(self, observations: Float[ArrayLike, " nmain"]) -> Float[Array, " ndata"]:
        """Data vector from main observations and the nominal auxiliary data."""
        obs = jnp.asarray(observations, float).reshape(-1)
        return jnp.concatenate([obs, self.auxdata()])

    def twice_nll(
        self, pars: Float[ArrayLike, " npars"], data: Float[ArrayLike, " ndata"]
    ) -> Float[Array, ""]:
        """−2 log L, the objective minimised by every fit."""
        return -2.0 * self.logpdf(pars, data)

    def value_grad_hess(self, pars: Float[ArrayLike, " npars"], data: Float[ArrayLike, " ndata"]):
        """(−2 log L, its gradient, its Hessian) at ``pars``: the one call per iteration of every
        fit. Default: automatic differentiation (:func:`autodiff_value_grad_hess`); the Hessian
        may be a dense [P, P] array or a :class:`jaxlike.linalg.ArrowheadHessian`."""
        return autodiff_value_grad_hess(lambda p: self.twice_nll(p, data))(jnp.asarray(pars))

    def fixed_mask(self) -> Bool[Array, " npars"]:
        """Parameters held constant in fits: ``config.suggested_fixed()`` by default."""
        return jnp.asarray(self.config.suggested_fixed(), bool)

    def breakpoints(self) -> Bool[np.ndarray, "npars 3"] | None:
        """Static mask [npars, 3]: parameter p has a point at θ_p = −1, 0, +1 where the
        likelihood is not twice continuously differentiable (an interpolation kink), which the
        minimiser treats with one-sided derivatives. None: smooth everywhere (default)."""
        return None

    def probe_mask(self) -> Bool[np.ndarray, " npars"] | None:
        """Static mask of the parameters the minimiser's global search probes one by one
        (None: the minimiser's default, every parameter)."""
        return None

    def batch_shape(self) -> tuple[int, ...]:
        """Leading batch shape of a stacked model (``stack_models``); () for one model."""
        return ()
