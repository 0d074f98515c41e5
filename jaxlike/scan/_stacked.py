"""The per-hypothesis function of scans over stacked models (signal patches, counting grids).

A scan over H models of one layout (:func:`jaxlike.stack_models`) evaluates, for hypothesis h
(its model and data picked by index from the stack), whichever of these methods it is asked:

* ``"cls"`` — asymptotic q̃μ CLs at ``test_poi`` (observed and the 5 expected bands) and the
  observed/expected upper limits at every level of ``cl`` under ``rule`` (CLs, or CLs+b for a
  one-sided profile-likelihood limit), :func:`jaxlike.infer.hypotest_at` and
  :func:`jaxlike.infer.upper_limit_prepared` on one shared preparation (the free fit and the
  Asimov data are computed once);
* ``"toys"`` — in addition toy-based limits and a toy p0 (:func:`jaxlike.infer.toy_limits_traced`,
  toys keyed to the hypothesis index, fields :data:`jaxlike.infer.TOY_SCAN_FIELDS`);
* ``"bayes"`` — Bayesian credible upper limits at every level of ``cl`` from one marginal
  posterior of the POI, nuisances marginalised (:func:`jaxlike.bayes.bayesian_upper_limit`,
  then :func:`jaxlike.bayes.credible_upper_limits`).

All of it is one pure traced function, vmapped and run chunk by chunk by
:func:`jaxlike.stream.run_scan` (one compilation, sharded, stored, resumable).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ..bayes import bayesian_upper_limit, credible_upper_limits
from ..exceptions import InvalidScanConfig
from ..infer import hypotest_at, hypotest_prepare, toy_limits_traced, upper_limit_prepared

__all__ = ["METHODS", "bayes_options", "check_methods", "stacked_hypothesis"]

#: the methods of a stacked scan
METHODS = ("cls", "bayes", "toys")

_BAYES_DEFAULTS = {"prior": "uniform", "method": "laplace", "n_grid": 96, "n_quad": 20}


def check_methods(methods) -> tuple[str, ...]:
    """The methods as a sorted tuple; refuses an unknown or empty set (``toys`` implies
    ``cls``: toy limits are searched around the asymptotic ones)."""
    if isinstance(methods, str):
        methods = (methods,)
    methods = set(methods)
    unknown = methods - set(METHODS)
    if unknown or not methods:
        raise InvalidScanConfig(
            "method", f"must be a non-empty subset of {METHODS}, got {sorted(methods)}"
        )
    if "toys" in methods:
        methods.add("cls")
    return tuple(m for m in METHODS if m in methods)


def bayes_options(prior="uniform", method="laplace", n_grid=96, n_quad=20) -> dict:
    """The checked options of the Bayesian limits of a scan: the POI prior (``"uniform"`` or
    ``"jeffreys"``), the marginalisation (``"laplace"`` or ``"quadrature"``), the number of
    conditional fits ``n_grid`` and Gauss–Hermite nodes ``n_quad``."""
    if prior not in ("uniform", "jeffreys"):
        raise InvalidScanConfig("bayes.prior", f"must be 'uniform' or 'jeffreys', got {prior!r}")
    if method not in ("laplace", "quadrature"):
        raise InvalidScanConfig(
            "bayes.method", f"must be 'laplace' or 'quadrature', got {method!r}"
        )
    if int(n_grid) < 8 or int(n_quad) < 1:
        raise InvalidScanConfig("bayes", f"n_grid ≥ 8 and n_quad ≥ 1, got {n_grid}, {n_quad}")
    return {"prior": prior, "method": method, "n_grid": int(n_grid), "n_quad": int(n_quad)}


def stacked_hypothesis(
    stacked,
    data,
    *,
    cl,
    methods=("cls",),
    test_poi=1.0,
    poi_max=None,
    rule="cls",
    toys=None,
    bayes=None,
):
    """The function of one hypothesis (a dict with ``"index"``) of a stacked scan.

    Args:
        stacked: a model whose array leaves carry a leading hypothesis axis H.
        data: data [H, n].
        cl: levels (tuple of floats).
        methods: a subset of :data:`METHODS` (checked by :func:`check_methods`).
        test_poi, poi_max, rule, toys: as :func:`jaxlike.scan.patch_scan`.
        bayes: options of :func:`bayes_options` (``"bayes"`` only).

    Returns:
        ``h ↦ {name: array}`` (``h["test_poi"]`` replaces ``test_poi``). With ``"cls"``:
        ``cls_obs``, ``cls_exp`` [5], ``ul_obs`` [ncl], ``ul_exp`` [ncl, 5], ``mu_hat``,
        ``cls_converged``,
        ``limit_converged`` [ncl]; with ``"toys"`` :data:`jaxlike.infer.TOY_SCAN_FIELDS`; with
        ``"bayes"`` ``bayes_ul`` [ncl], ``bayes_converged``, ``bayes_tail_mass``; always
        ``converged`` (everything computed converged).
    """
    dyn, static = eqx.partition(stacked, eqx.is_array)
    data = jnp.asarray(data)
    levels = jnp.asarray(cl)
    bayes = dict(_BAYES_DEFAULTS, **(bayes or {}))

    def single(h):
        i = h["index"]
        model = eqx.combine(jax.tree.map(lambda x: x[i], dyn), static)
        d = data[i]
        out, ok = {}, jnp.asarray(True)
        if "cls" in methods:
            prep = hypotest_prepare(d, model, test_stat="qtilde")  # shared by CLs and limits
            ht = hypotest_at(prep, model, h.get("test_poi", test_poi))
            rng = None if poi_max is None else (0.0, float(poi_max))
            ul = upper_limit_prepared(prep, model, cl=levels, poi_range=rng, rule=rule)
            out |= {
                "cls_obs": ht.cls_obs,
                "cls_exp": ht.cls_exp,
                "ul_obs": ul.obs,
                "ul_exp": ul.exp,
                "mu_hat": ht.mu_hat,
                "cls_converged": ht.converged,
                "limit_converged": ul.converged,
            }
            ok = ok & ht.converged & jnp.all(ul.converged)
            if "toys" in methods:
                key = jax.random.fold_in(jax.random.PRNGKey(toys["seed"]), i)
                limits = jnp.concatenate([ul.obs.reshape(-1), ul.exp.reshape(-1)])
                extra = toy_limits_traced(
                    prep, model, key, limits, ntoys=toys["ntoys"], cl=levels, rule=rule,
                    npoints=toys["npoints"], toy_pars=toys["toy_pars"],
                )  # fmt: skip
                out |= extra
                ok = ok & jnp.all(extra["toy_limit_converged"])
        if "bayes" in methods:
            res = bayesian_upper_limit(
                model, d, cl=cl[0], prior=bayes["prior"], method=bayes["method"],
                n_grid=bayes["n_grid"], n_quad=bayes["n_quad"],
            )  # fmt: skip
            out |= {
                "bayes_ul": credible_upper_limits(res, levels),
                "bayes_converged": res.converged,
                "bayes_tail_mass": res.tail_mass,
            }
            ok = ok & res.converged
        return out | {"converged": ok}

    return single
