r"""The ``reweight`` modifier: joint-number-density reweighting of a signal (arXiv:2402.08417).

A published analysis provides, for its signal sample, the joint number density n_ij: the
expected yield of the null model σ0(q²) in analysis bin i *and* truth bin j (efficiency,
resolution and normalisation included). An alternative model σ1(q²; φ) then predicts

.. math::

    w_j(\phi) = \frac{\int_{q_j}^{q_{j+1}} \sigma_1(q^2;\phi)\,dq^2}
                     {\int_{q_j}^{q_{j+1}} \sigma_0(q^2)\,dq^2}, \qquad
    r_i(\phi) = \frac{\sum_j n_{ij}\, w_j(\phi)}{\sum_j n_{ij}}, \qquad
    \nu_{si}(\theta, \phi) = r_i(\phi)\;\nu_{si}(\theta)

i.e. the signal after all other modifiers (additive histosys shifts included) is multiplied by
r_i. At the nominal nuisances, where the signal equals the template ν⁰_i = Σ_j n_ij, this is
ν_i = Σ_j n_ij w_j(φ). Truth bins outside the domain of the null rate (Belle II's sentinel bin
[−1, 0]) keep w_j = 1. Both integrals use Gauss–Legendre quadrature with ``nodes`` points per
truth bin (clipped to the null's domain), so r is differentiable in φ; the null integrals are
constants computed once when the model is built.

The rates are JAX functions registered under a name (:func:`register_rate`): a workspace refers
to them by that name, so it stays plain JSON::

    {"name": "wet", "type": "reweight",
     "data": {"rate": "bknunu_wet_bsz2015", "null": "bknunu_sm_hpqcd2022",
              "edges": [-1, 0, ...], "map": [[n_00, n_01, ...], ...],
              "inputs": {...}, "nodes": 16}}

``map`` has one row per bin of the channel and one column per truth bin; ``inputs`` are the
rate's numerical inputs (e.g. form-factor means and covariance), embedded so that the
workspace round-trips. The rate's parameters (e.g. C_V, C_S, C_T and decorrelated form-factor
nuisances) become model parameters with the names, inits, bounds and constraints the rate
declares (overridable in the measurement config like any parameter).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..exceptions import InvalidArgument, InvalidModel
from ._quadrature import gauss_legendre_nodes

__all__ = [
    "RateParameter",
    "RateSpec",
    "ReweightGroup",
    "register_rate",
    "get_rate",
    "registered_rates",
    "reweight_weights",
]

_REGISTRY: dict[str, RateSpec] = {}


@dataclass(frozen=True)
class RateParameter:
    """A parameter set a rate function adds to the model.

    ``constraint`` is ``None`` (free) or ``"normal"`` (a unit Gaussian constraint N(0 | θ, 1)
    per component, e.g. eigen-decorrelated theory nuisances).
    """

    name: str
    n: int = 1
    init: float = 0.0
    bounds: tuple[float, float] = (-5.0, 5.0)
    constraint: str | None = None

    def requirement(self):
        """The parameter-set requirement in the model builder's format."""
        kind = "free" if self.constraint is None else "normal"
        req = dict(
            kind=kind,
            n=self.n,
            scalar=self.n == 1,
            inits=(float(self.init),) * self.n,
            bounds=(tuple(float(b) for b in self.bounds),) * self.n,
        )
        if kind == "normal":
            req["aux"] = (0.0,) * self.n
        return req


@dataclass(frozen=True)
class RateSpec:
    """A differential rate σ(q²; φ) usable by the ``reweight`` modifier.

    Attributes:
        name: registry key referenced from JSON.
        fn: ``fn(q2, pars, inputs) -> rate`` with ``q2`` a 1-D array, ``pars`` a dict
            {parameter name: scalar or vector} and ``inputs`` the prepared inputs.
        parameters: the :class:`RateParameter` sets of φ (empty for a null rate).
        domain: (lo, hi) where the rate is defined; used as the null's integration range.
        prepare: ``prepare(inputs: dict) -> dict of arrays`` validating the JSON ``inputs``
            (raise ``ValueError`` naming the key) and deriving what ``fn`` needs.
        basis, combine: optional separable form σ(q²; φ) = Σ_a c_a(φ) b_a(q²) (every EFT
            rate is one: quadratic in the Wilson coefficients). ``basis(q2, inputs)`` returns
            the parameter-free functions b_a as an array [..., len(q2)]; ``combine(I, pars,
            inputs)`` maps their bin integrals I [..., J] to the J bin integrals of σ. The
            integrals of the basis are then computed once, when the model is built, and a
            likelihood evaluation (and its exact Hessian) only contracts them with c(φ)
            instead of integrating σ at every node. ``fn`` must equal the separable form.
    """

    name: str
    fn: Callable
    parameters: tuple[RateParameter, ...] = ()
    domain: tuple[float, float] = (-np.inf, np.inf)
    prepare: Callable = field(default=lambda inputs: {})
    basis: Callable | None = None
    combine: Callable | None = None


def register_rate(spec: RateSpec, *, replace: bool = False) -> RateSpec:
    """Register a rate under ``spec.name`` (``replace=True`` to overwrite an existing one)."""
    if spec.name in _REGISTRY and not replace:
        raise InvalidArgument(f"a rate named {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def registered_rates() -> list[str]:
    """Names of all registered rates (the built-ins of :mod:`jaxlike.physics` register when
    ``jaxlike`` is imported)."""
    return sorted(_REGISTRY)


def get_rate(name: str, path: str = "rate") -> RateSpec:
    """The registered :class:`RateSpec` ``name``; InvalidModel naming ``path`` if unknown."""
    if name not in _REGISTRY:
        raise InvalidModel(path, f"unknown rate {name!r} (registered: {sorted(_REGISTRY)})")
    return _REGISTRY[name]


def _gauss_legendre(edges, domain, nodes):
    """Quadrature nodes and weights [J, nodes] of each truth bin ∩ domain, and the mask of the
    bins that overlap the domain."""
    return gauss_legendre_nodes(edges, nodes, clip=domain)


def _rate_integrals(spec, pars, inputs, q, qw):
    vals = spec.fn(jnp.ravel(q), pars, inputs).reshape(q.shape)
    return jnp.sum(vals * qw, axis=1)


def null_integrals(null, edges, nodes):
    """∫ σ0 over each truth bin ∩ domain(σ0) (NumPy), and the in-domain mask."""
    q, qw, inside = _gauss_legendre(np.asarray(edges, float), null.domain, nodes)
    ints = np.asarray(_rate_integrals(null, {}, null.prepare({}), jnp.asarray(q), jnp.asarray(qw)))
    return ints, inside


def reweight_weights(alt, alt_pars, alt_inputs, null_ints, inside, q, qw):
    """w_j = ∫σ1/∫σ0 inside the null's domain, 1 outside (see module docstring)."""
    ints = _rate_integrals(alt, alt_pars, alt_inputs, q, qw)
    safe = jnp.where(inside, null_ints, 1.0)
    return jnp.where(inside, ints / safe, 1.0)


class ReweightGroup(eqx.Module):
    """All occurrences of one ``reweight`` modifier: the normalised maps of the samples/bins it
    acts on and the wiring of its rate parameters into the model's parameter vector."""

    name: str = eqx.field(static=True)
    rate: RateSpec = eqx.field(static=True)  # the rate object itself, not a registry key
    null: RateSpec = eqx.field(static=True)
    par_slices: tuple[tuple[str, int, int, bool], ...] = eqx.field(static=True)
    frac: jax.Array  # [S, B, J]: n_bj / Σ_j n_bj
    mask: jax.Array  # [S, B]: where the modifier acts
    null_ints: jax.Array  # [J]
    inside: jax.Array  # [J] bool
    q: jax.Array  # [J, nodes]
    qw: jax.Array  # [J, nodes]
    inputs: dict
    basis_ints: jax.Array | None = None  # [..., J] bin integrals of a separable rate's basis

    @property
    def par_indices(self):
        """Parameter-vector indices of φ, in the order of the rate's parameter sets."""
        return np.concatenate(
            [np.arange(start, start + n) for _, start, n, _ in self.par_slices]
        ).astype(np.int32)

    def _split(self, phi):
        out, k = {}, 0
        for name, _, n, scalar in self.par_slices:
            out[name] = phi[k] if scalar else phi[k : k + n]
            k += n
        return out

    def weights_of_phi(self, phi):
        """w_j(φ) for the rate-parameter vector φ (rate parameters only)."""
        alt = self.rate
        if self.basis_ints is not None:  # separable rate: contract precomputed integrals
            ints = alt.combine(self.basis_ints, self._split(phi), self.inputs)
            safe = jnp.where(self.inside, self.null_ints, 1.0)
            return jnp.where(self.inside, ints / safe, 1.0)
        return reweight_weights(
            alt, self._split(phi), self.inputs, self.null_ints, self.inside, self.q, self.qw
        )

    def weights(self, pars):
        """w_j at the full model parameter vector ``pars``."""
        return self.weights_of_phi(pars[self.par_indices])

    def factor(self, pars):
        """r_sb = Σ_j frac_sbj w_j where the modifier acts, 1 elsewhere; shape [S, B]."""
        r = jnp.einsum("sbj,j->sb", self.frac, self.weights(pars))
        return jnp.where(self.mask, r, 1.0)

    def factor_derivatives(self, pars):
        """(r [S,B], ∂r/∂φ [F,S,B], ∂²r/∂φ² [F,F,S,B]) — zero derivatives where it does not act."""
        phi = pars[self.par_indices]

        # forward over forward in one pass: F (the rate parameters) is small, and forward over
        # reverse (jax.hessian) was ~20x slower through the quadrature of a rate function
        def first(p):
            w = self.weights_of_phi(p)
            return w, w

        def second(p):
            w1, w = jax.jacfwd(first, has_aux=True)(p)
            return w1, (w, w1)

        w2, (w, w1) = jax.jacfwd(second, has_aux=True)(phi)  # [J,F,F], ([J], [J,F])
        m = self.mask
        r = jnp.where(m, jnp.einsum("sbj,j->sb", self.frac, w), 1.0)
        r1 = jnp.where(m, jnp.einsum("sbj,jf->fsb", self.frac, w1), 0.0)
        r2 = jnp.where(m, jnp.einsum("sbj,jfg->fgsb", self.frac, w2), 0.0)
        return r, r1, r2


def reweight_factor(groups, pars, shape, dtype):
    """Π over reweight groups of their factors (groups never overlap on a sample/bin)."""
    fac = jnp.ones(shape, dtype)
    for g in groups:
        fac = fac * g.factor(pars)
    return fac


def parse_reweight(data, path, nbins):
    """Validate one occurrence's ``data`` → (rate spec, null spec, edges, map [nbins, J],
    nodes, prepared inputs, canonical key for consistency across occurrences)."""
    if not isinstance(data, dict):
        raise InvalidModel(path, "reweight needs {'rate', 'null', 'edges', 'map', ...}")
    for key in ("rate", "null", "edges", "map"):
        if key not in data:
            raise InvalidModel(f"{path}.{key}", "missing")
    alt = get_rate(data["rate"], f"{path}.rate")
    null = get_rate(data["null"], f"{path}.null")
    if null.parameters:
        raise InvalidModel(f"{path}.null", f"the null rate {null.name!r} must have no parameters")
    edges = np.asarray(data["edges"], dtype=float)
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)):
        raise InvalidModel(f"{path}.edges", "must be a list of ≥ 2 finite numbers")
    if np.any(np.diff(edges) <= 0):
        raise InvalidModel(f"{path}.edges", "must be strictly increasing")
    J = edges.size - 1
    try:
        nmap = np.asarray(data["map"], dtype=float)
    except (TypeError, ValueError):
        raise InvalidModel(f"{path}.map", "must be a list of rows of numbers") from None
    if nmap.shape != (nbins, J):
        raise InvalidModel(
            f"{path}.map",
            f"has shape {list(nmap.shape)}, expected [{nbins} channel bins, {J} truth bins]",
        )
    bad = np.argwhere(~np.isfinite(nmap) | (nmap < 0))
    if bad.size:
        i, j = bad[0]
        raise InvalidModel(f"{path}.map[{i}][{j}]", f"value {nmap[i, j]} must be finite and ≥ 0")
    nodes = data.get("nodes", 16)
    if not isinstance(nodes, int) or isinstance(nodes, bool) or not 1 <= nodes <= 128:
        raise InvalidModel(f"{path}.nodes", "must be an integer in [1, 128]")
    raw_inputs = data.get("inputs", {})
    if not isinstance(raw_inputs, dict):
        raise InvalidModel(f"{path}.inputs", "must be an object")
    try:
        inputs = alt.prepare(raw_inputs)
    except ValueError as err:
        raise InvalidModel(f"{path}.inputs", str(err)) from None
    key = (alt.name, null.name, tuple(edges.tolist()), nodes, repr(_plain(raw_inputs)))
    return alt, null, edges, nmap, nodes, inputs, key


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in sorted(x.items())}
    if isinstance(x, list | tuple | np.ndarray):
        return [_plain(v) for v in x]
    return float(x) if isinstance(x, int | float | np.floating) else x


def build_groups(entries, par_map, S, B, dtype=float):
    """ReweightGroups from the parsed occurrences ``entries[name] = [(s, bins, parsed), ...]``.

    Checks the weights at the parameters' initial values (finite, ≥ 0) and that no (sample,
    bin) carries two reweight modifiers.
    """
    groups, used = [], np.zeros((S, B), bool)
    for name, occ in entries.items():
        alt, null, edges, _, nodes, inputs, _ = occ[0][2]
        J = edges.size - 1
        frac = np.zeros((S, B, J))
        mask = np.zeros((S, B), bool)
        for s, bins, parsed, path in occ:
            nmap = parsed[3]
            tot = nmap.sum(axis=1)
            rows = np.where(tot[:, None] > 0, nmap / np.where(tot > 0, tot, 1.0)[:, None], 0.0)
            b = np.arange(bins.start, bins.stop)
            if np.any(used[s, b]):
                raise InvalidModel(path, "a sample bin carries two reweight modifiers")
            used[s, b] = True
            frac[s, b] = rows
            mask[s, b] = tot > 0
        null_ints, inside = null_integrals(null, edges, nodes)
        bad = np.flatnonzero(inside & ~(null_ints > 0))
        if bad.size:
            raise InvalidModel(
                f"{occ[0][3]}.data.null",
                f"null rate {null.name!r} integrates to {null_ints[bad[0]]:.3g} in truth bin "
                f"{bad[0]} [{edges[bad[0]]}, {edges[bad[0] + 1]}]: weights undefined",
            )
        q, qw, _ = _gauss_legendre(edges, null.domain, nodes)
        basis_ints = None
        if alt.basis is not None:
            vals = np.asarray(alt.basis(jnp.asarray(q.ravel()), inputs))
            vals = vals.reshape(vals.shape[:-1] + q.shape)
            basis_ints = jnp.asarray(np.sum(vals * qw, axis=-1))
        slices = tuple((p.name, par_map[p.name].start, p.n, p.n == 1) for p in alt.parameters)
        g = ReweightGroup(
            name=name,
            rate=alt,
            null=null,
            par_slices=slices,
            frac=jnp.asarray(frac),
            mask=jnp.asarray(mask),
            null_ints=jnp.asarray(null_ints),
            inside=jnp.asarray(inside),
            q=jnp.asarray(q),
            qw=jnp.asarray(qw),
            inputs={k: jnp.asarray(v) for k, v in inputs.items()},
            basis_ints=basis_ints,
        )
        init = np.concatenate([np.asarray(par_map[p.name].inits, float) for p in alt.parameters])
        w = np.asarray(g.weights_of_phi(jnp.asarray(init))) if len(init) else None
        if w is not None:
            badw = np.flatnonzero(~np.isfinite(w) | (w < 0))
            if badw.size:
                j = int(badw[0])
                raise InvalidModel(
                    f"{occ[0][3]}.data.rate",
                    f"weight w[{j}] = {w[j]} of rate {alt.name!r} in truth bin "
                    f"[{edges[j]}, {edges[j + 1]}] is negative or not finite at the initial "
                    "parameters",
                )
        groups.append(g)
    return tuple(groups)
