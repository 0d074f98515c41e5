"""Stress suite: jaxlike's fits on random workspaces built to stall minimisers, judged against
the lowest minimum any pyhf optimizer found.

The workspaces come from ``tests/_stress.py`` (12 families: minima on code-0/1 kinks, next to
them, on the code-2 curvature jump at |α| = 1, on bounds, in flat and strongly correlated
directions, with extreme code-4 normsys); the pyhf fits from ``tests/make_stress_refs.py``,
stored in ``tests/data/stress_refs.npz`` (see its docstring for the optimizers and fits).

For every case the five fits of a q̃ test at μ = 1 — (a) free and (b) μ = 1 fit to the data,
(c) μ = 0 fit to the data, (d) free and (e) μ = 1 fit to the stored Asimov data — run as one
compiled, vmapped chain per family (``_stress.five_fits``: the starts of ``jaxlike.hypotest``,
one traced ``jaxlike.fit.fit_arrays`` in a ``lax.scan``), with pyhf's initial values and
bounds (POI in [0, 10]). Each must be ``converged`` and reach an exact 2NLL (jaxlike's ``twice_nll`` at
its best fit) at most ``NLL_TOL`` above the best pyhf optimizer's, both evaluated now with the
same function (the rule for judging a disagreement with pyhf).

``python tests/test_stress_fits.py [refs.npz]`` prints the full table of all families and fits
(gaps, status) without asserting: the report for whoever works on the minimiser.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _stress  # noqa: E402
from conftest import quick_jit  # noqa: E402

import jaxlike  # noqa: E402
from jaxlike.fit import STATUS  # noqa: E402

DATA_DIR = Path(__file__).resolve().parent / "data"
#: reference files (override with the environment variables, e.g. to try a new set)
REFS = Path(os.environ.get("JAXLIKE_STRESS_REFS", DATA_DIR / "stress_refs.npz"))
SLOW_REFS = Path(os.environ.get("JAXLIKE_STRESS_REFS_SLOW", DATA_DIR / "stress_refs_slow.npz"))
#: jaxlike's minimum may be at most this much above the best pyhf minimum (2NLL)
NLL_TOL = 1e-6
FITS, POI_VALUES = _stress.FITS, _stress.POI_VALUES
#: families and number of cases of the real-hypotest test in the default run
HYPOTEST_FAMILIES = ("h0_vkink", "extreme_code4", "gamma_bound")
HYPOTEST_CASES = 6
#: cases re-run live with pyhf (numpy SLSQP 1e-10) against the stored references
#: the optimizer re-run live: pyhf-jax SLSQP (autodiff gradients, tolerance 1e-12). pyhf-numpy
#: SLSQP differentiates numerically, and its end point moves by up to 1.5e-6 in 2NLL between
#: CPUs (the references were made on an AMD EPYC; an Intel Xeon lands 1.1e-6 and 1.5e-6
#: higher on code2_edge seed 1): that measures the CPU, not the references.
LIVE_OPTIMIZER = "jax_slsqp"
LIVE_CASES = (("h0_vkink", 0), ("near_kink", 1), ("code2_edge", 1), ("gamma_bound", 0),
              ("extreme_code4", 1))  # fmt: skip


# ------------------------------------------------------------------------------ references
@functools.cache
def load_refs(path=REFS):
    """{family: {key: array}} from a reference file, plus ``optimizers`` and ``meta``."""
    path = Path(path)
    if not path.exists():
        pytest.skip(f"{path.name} missing: run python tests/make_stress_refs.py")
    raw = np.load(path)
    out = {"optimizers": [str(x) for x in raw["optimizers"]], "meta": json.loads(str(raw["meta"]))}
    for fam in raw["families"]:
        fam = str(fam)
        out[fam] = {k.split("__", 1)[1]: raw[k] for k in raw.files if k.startswith(fam + "__")}
    out["families"] = [str(f) for f in raw["families"]]
    return out


@functools.cache
def family_models(path, family):
    """(stacked jaxlike model, reference arrays) of one family; fails if the generator no
    longer makes the specs the references were computed for."""
    ref = load_refs(path)[family]
    models = []
    for seed, h in zip(ref["seed"], ref["spec_hash"], strict=True):
        spec, info = _stress.make_workspace(int(seed), family)
        if _stress.spec_hash(spec) != str(h):
            pytest.fail(
                f"{family} seed {seed}: tests/_stress.py changed since the references were made;"
                " regenerate them with tests/make_stress_refs.py"
            )
        models.append(_stress.jaxlike_model(spec, info))
    return jaxlike.stack_models(models), ref


# ------------------------------------------------------------------------------ jaxlike fits
@quick_jit
def judge_family(stacked, data, asimov, pars):
    """One compiled function per family layout: jaxlike's five fits of every case (FitResult
    [cases, 5] and the exact 2NLL at each best fit) and the exact 2NLL of the stored pyhf
    vectors ``pars`` [cases, optimizers, 5, npars] (NaN where a vector is NaN)."""

    def stored(model, p, d, a):
        rows = jnp.stack([d, d, d, a, a])
        safe = jnp.where(jnp.isfinite(p), p, jnp.asarray(model.config.suggested_init()))
        f = jax.vmap(jax.vmap(model.twice_nll), in_axes=(0, None))(safe, rows)
        return jnp.where(jnp.all(jnp.isfinite(p), -1), f, jnp.nan)

    res, jl = jax.vmap(_stress.five_fits)(stacked, data, asimov)
    return res, jl, jax.vmap(stored)(stacked, pars, data, asimov)


@functools.cache
def family_result(path, family):
    """Run jaxlike's fits of a family and judge them; returns a dict of arrays [cases, 5]."""
    stacked, ref = family_models(path, family)
    data, asimov = jnp.asarray(ref["data"]), jnp.asarray(ref["asimov"])
    res, jl, ex = jax.block_until_ready(
        judge_family(stacked, data, asimov, jnp.asarray(ref["pars"]))
    )
    ex = np.asarray(ex)
    best_opt = np.argmin(np.where(np.isfinite(ex), ex, np.inf), axis=1)
    best = np.take_along_axis(ex, best_opt[:, None], 1)[:, 0]
    # where today's logpdf is NaN at every pyhf vector (a code-4 factor ≤ 0 evaluated in log
    # space), judge against the stored exact value instead
    nan_ref = ~np.isfinite(best)
    best = np.where(nan_ref, ref["best_2nll"], best)
    best_opt = np.where(nan_ref, ref["best_opt"], best_opt)
    jl = np.asarray(jl)
    return {
        "ref": ref,
        "jaxlike": jl,
        "best": best,
        "best_opt": best_opt,
        "gap": jl - best,
        "converged": np.asarray(res.converged),
        "status": np.asarray(res.status),
        "iterations": np.asarray(res.iterations),
        "bestfit": np.asarray(res.bestfit),
        "stored_best": ref["best_2nll"],
        "nan_ref": nan_ref,
    }


def failures(path, family):
    """Rows (seed, variant, fit, jaxlike 2NLL, best pyhf, gap, optimizer, status, iter) of the
    fits that did not converge or ended above the best pyhf minimum + NLL_TOL. "by" names the
    optimizer of the best pyhf minimum, "stored …" where jaxlike's logpdf is NaN at all pyhf
    vectors now and the stored exact value is used."""
    r = family_result(path, family)
    opts = load_refs(path)["optimizers"]
    bad = ~r["converged"] | ~(r["gap"] <= NLL_TOL)
    rows = []
    for i, j in zip(*np.nonzero(bad), strict=True):
        st = STATUS.get(int(r["status"][i, j]), str(r["status"][i, j]))
        by = ("stored " if r["nan_ref"][i, j] else "") + opts[r["best_opt"][i, j]]
        rows.append((int(r["ref"]["seed"][i]), str(r["ref"]["variant"][i]), FITS[j],
                     r["jaxlike"][i, j], r["best"][i, j], r["gap"][i, j], by, st,
                     int(r["iterations"][i, j])))  # fmt: skip
    return rows


def format_rows(family, rows):
    head = (f"{'family':<14}{'seed':>5} {'variant':<11}{'fit':<12}{'jaxlike 2NLL':>16}"
            f"{'pyhf best':>16}{'gap':>11}  {'by':<21}{'status':<28}{'iter':>5}")  # fmt: skip
    lines = [head]
    for s, v, f, a, b, g, o, st, it in rows:
        lines.append(f"{family:<14}{s:>5} {v:<11}{f:<12}{a:>16.8f}{b:>16.8f}{g:>+11.2e}  "
                     f"{o:<21}{st:<28}{it:>5}")  # fmt: skip
    return "\n".join(lines)


# ------------------------------------------------------------------------------ tests
def _assert_family_reaches_minimum(path, family, known=frozenset()):
    """Every fit of ``family`` in the reference file ``path`` converged at or below the best
    pyhf minimum (+ NLL_TOL), except the (seed, fit) pairs in ``known``, which are printed."""
    if family not in load_refs(path)["families"]:
        pytest.skip(f"no references for {family} in {Path(path).name}")
    rows = failures(path, family)
    n = family_result(path, family)["gap"].size
    new = [r for r in rows if (r[0], r[2]) not in known]
    assert not new, f"{len(new)} of {n} fits failed:\n" + format_rows(family, new)
    if rows:  # the open cases listed in KNOWN_OPEN: reported on every run, not hidden
        print(f"{len(rows)} known open case(s) of {n} fits:\n" + format_rows(family, rows))


@pytest.mark.parametrize("family", _stress.families())
def test_stress_fits_reach_pyhf_minimum(family):
    """Every fit converges and is at or below the best pyhf minimum (+1e-6)."""
    _assert_family_reaches_minimum(REFS, family, KNOWN_OPEN.get(family, frozenset()))


#: Cases the minimiser does not yet finish, (seed, fit) per family: none on the default
#: reference set (540 cases × 5 fits). A failure that cannot be fixed at once is listed here,
#: reported on every run, and the issue stays open.
KNOWN_OPEN: dict[str, set] = {}


@pytest.mark.slow
@pytest.mark.parametrize("family", _stress.families())
def test_stress_fits_slow_set(family):
    """The same on the larger ``--slow`` reference set (tests/data/stress_refs_slow.npz)."""
    _assert_family_reaches_minimum(SLOW_REFS, family)


@quick_jit
def _hypotests(stacked, data):
    return jax.vmap(lambda m, d: jaxlike.hypotest(1.0, d, m, test_stat="qtilde"))(stacked, data)


def _check_hypotest(path, family, n):
    stacked, ref = family_models(path, family)
    n = min(n, len(ref["seed"]))
    sub = jax.tree_util.tree_map(lambda x: x[:n], stacked)
    res = _hypotests(sub, jnp.asarray(ref["data"][:n]))
    conv = np.asarray(res.fit_converged)  # [cases, 5]: free, μ, μ_A=0, free/μ on Asimov
    gap = np.asarray(res.twice_nll)[:, :3] - family_result(path, family)["best"][:n, :3]
    bad = []
    for i in range(n):
        for j in range(5):
            if not conv[i, j] or (j < 3 and not gap[i, j] <= NLL_TOL):
                g = f"{gap[i, j]:+.2e}" if j < 3 else "—"
                bad.append(f"seed {int(ref['seed'][i])} {FITS[j]}: converged={conv[i, j]} gap={g}")
    assert not bad, f"{family}: jaxlike.hypotest fits failed:\n" + "\n".join(bad)
    assert np.all(np.isfinite(np.asarray(res.cls_obs)))


@pytest.mark.parametrize("family", HYPOTEST_FAMILIES)
def test_stress_hypotest_fits_converge(family):
    """``jaxlike.hypotest`` (the real q̃ code path, vmapped over a family's cases): all five
    internal fits converged; the three fits on the data reach the pyhf minimum."""
    if family not in load_refs(REFS)["families"]:
        pytest.skip(f"no references for {family}")
    _check_hypotest(REFS, family, HYPOTEST_CASES)


@pytest.mark.slow
@pytest.mark.parametrize("family", _stress.families())
def test_stress_hypotest_all(family):
    if family not in load_refs(REFS)["families"]:
        pytest.skip(f"no references for {family}")
    _check_hypotest(REFS, family, 10**6)


_expected = quick_jit(lambda m, p: m.expected_data(p))
_twice_nll = quick_jit(lambda m, p, d: m.twice_nll(p, d))


def test_stress_refs_reproduce_live():
    """A handful of references re-made live with pyhf (:data:`LIVE_OPTIMIZER`, exact gradients:
    the same end point on any CPU): the generator still makes the stored data, the stored Asimov
    data are the expected data at the stored best μ = 0 fit, and pyhf lands on the stored
    minima."""
    import make_stress_refs as mk
    import pyhf

    refs = load_refs(REFS)
    k = refs["optimizers"].index(LIVE_OPTIMIZER)
    saved = pyhf.get_backend()
    try:
        mk._set_optimizer(pyhf, LIVE_OPTIMIZER)
        for family, seed in LIVE_CASES:
            stacked, ref = family_models(REFS, family)
            (where,) = np.nonzero(ref["seed"] == seed)
            if not where.size:
                continue
            i = int(where[0])
            spec, info = _stress.make_workspace(seed, family)
            np.testing.assert_allclose(info["data"], ref["data"][i], rtol=1e-10, atol=1e-12)
            model = jax.tree_util.tree_map(lambda x, i=i: x[i], stacked)
            best0 = ref["pars"][i, ref["best_opt"][i, 2], 2]
            np.testing.assert_allclose(
                _expected(model, best0), ref["asimov"][i], rtol=1e-10, atol=1e-12
            )
            pmodel = pyhf.Workspace(spec).model(modifier_settings=info["modifier_settings"])
            got = []
            for j, mu in enumerate(POI_VALUES):
                d = ref["data"][i] if j < 3 else ref["asimov"][i]
                pars, *_ = mk._pyhf_fit(pyhf, pmodel, d, mu)
                got.append(float(_twice_nll(model, pars, d)))
            np.testing.assert_allclose(
                got, ref["exact_2nll"][i, k], rtol=0, atol=1e-6, err_msg=f"{family} seed {seed}"
            )
    finally:
        pyhf.set_backend(*saved)


def test_stress_generator_layouts():
    """Every family keeps one parameter layout over its seeds, its parameter order is pyhf's,
    and the sizes stay as documented (6-25 parameters, 1-2 channels, 2-6 bins per channel)."""
    import pyhf

    for family in _stress.families():
        cfgs = []
        for seed in (0, 1, 2):
            spec, info = _stress.make_workspace(seed, family)
            cfgs.append(jaxlike.Workspace(spec).model(modifier_settings=info["modifier_settings"]))
            assert np.all(np.isfinite(info["data"])) and np.all(info["data"] >= 0)
        cfg = cfgs[0].config
        assert all(m.config == cfg for m in cfgs), family
        pm = pyhf.Workspace(spec).model(modifier_settings=info["modifier_settings"])
        assert pm.config.par_names == cfgs[-1].config.par_names, family
        assert 6 <= cfg.npars <= 25 and 1 <= len(cfg.channels) <= 2, family
        assert all(2 <= n <= 6 for n in cfg.channel_nbins.values()), family


# ------------------------------------------------------------------------------ report
def report(path=REFS):
    """Print every failing fit of every family and a per-family/fit summary."""
    refs = load_refs(path)
    summary = []
    for family in refs["families"]:
        rows = failures(path, family)
        r = family_result(path, family)
        if rows:
            print(format_rows(family, rows) + "\n", flush=True)
        bad = ~r["converged"] | ~(r["gap"] <= NLL_TOL)
        summary.append((family, r["gap"].shape[0], bad.sum(0), np.nanmax(r["gap"], 0)))
    print(f"{'family':<14}{'cases':>6}  " + "".join(f"{f:>22}" for f in FITS))
    for family, n, nbad, gmax in summary:
        cells = "".join(f"{f'{b} fail, max {g:+.1e}':>22}" for b, g in zip(nbad, gmax, strict=True))
        print(f"{family:<14}{n:>6}  {cells}")


if __name__ == "__main__":
    report(sys.argv[1] if len(sys.argv) > 1 else REFS)
