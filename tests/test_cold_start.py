"""Cold start and warm paths (issue 17): what a first and a repeated answer compile.

- A first hypothesis test after a first fit of the same model compiles no new fit program:
  ``jaxlike.fit``, ``fixed_poi_fit`` and the five fits of ``hypotest`` share one executable
  (before, the hypotest compiled a second 2–4 s program of the same minimiser).
- A warm hypothesis test (another μ, the same model) compiles nothing, and costs at most
  20 warm fits: the anomaly of a 132-parameter likelihood whose warm hypotest took 16.4 s
  against a 0.14 s fit (a recompilation on every call: the hypotest's fits were compiled under
  another jit wrapper with other static options than ``fit``'s).
- The compiler options of jaxlike's programs fall back to XLA's defaults on a jaxlib that does
  not know them, and the persistent cache folder is private to the user.

Speed itself is measured in ``benchmarks/bench_cold.py``; these tests count compilations and
bound a ratio of two times measured in the same process, minutes apart at most.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import require_data

import jaxlike
from jaxlike import _compile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_cold import synthetic_spec  # noqa: E402


class _Compiles(logging.Handler):
    """Collects the names of the programs JAX compiles while active (``jax_log_compiles``)."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.names: list[str] = []

    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith("Finished XLA compilation of "):
            self.names.append(msg.split(" of ", 1)[1].split(" in ")[0])

    def __enter__(self):
        self._old = jax.config.jax_log_compiles
        jax.config.update("jax_log_compiles", True)
        logging.getLogger("jax").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("jax").removeHandler(self)
        jax.config.update("jax_log_compiles", self._old)


def _model(case_id, cases):
    if case_id.startswith("synthetic"):
        ws = jaxlike.Workspace(synthetic_spec(int(case_id.split("/")[1])))
        model = ws.model()
        return model, ws.data(model)
    require_data()
    case = cases(case_id)
    return case.model, case.data


def _best_of(f, n=3):
    best = np.inf
    for _ in range(n):
        t = time.perf_counter()
        jax.block_until_ready(jax.tree.leaves(f()))
        best = min(best, time.perf_counter() - t)
    return best


# 3-parameter synthetic (global search, no kinks), code-0 histosys and code-1 normsys (kinks),
# a 132-parameter one (the anomaly's size; no global search) and Belle II (232, arrowhead)
WARM_CASES = [
    "synthetic/3",
    "validation/validation_2bin_2channel_coupledhistosys_code0",
    "validation/validation_1bin_normsys_code1",
    "synthetic/132",
    "belle2",
]


@pytest.mark.parametrize("case_id", WARM_CASES)
def test_first_and_warm_hypotest_compile_no_fit(case_id, cases):
    model, data = _model(case_id, cases)
    jax.clear_caches()  # a fresh process's view: nothing of this layout compiled yet
    with _Compiles() as first_fit:
        jaxlike.fit(model, data)
    assert "jit(fit_arrays)" in first_fit.names
    with _Compiles() as first_test:
        res = jaxlike.hypotest(1.0, data, model)
        jaxlike.fixed_poi_fit(model, data, 0.5)
    assert bool(res.converged)
    assert "jit(fit_arrays)" not in first_test.names, first_test.names
    # only small programs (Asimov data, test statistics), none per fit, and no conversion of
    # μ to a device scalar (a program of its own, compiled by jnp.asarray outside a trace)
    assert len(first_test.names) <= 4, first_test.names
    assert not any("convert_element_type" in n for n in first_test.names), first_test.names
    # warm: another μ compiles nothing at all
    with _Compiles() as warm:
        for mu in (0.5, 2.0):
            res = jaxlike.hypotest(mu, data, model)
    assert warm.names == [], warm.names
    assert bool(res.converged)
    t_fit = _best_of(lambda: jaxlike.fit(model, data))
    t_test = _best_of(lambda: jaxlike.hypotest(1.5, data, model))
    # four fits and the Asimov data: ~4-8 fits' worth; 20 leaves room for a loaded machine
    assert t_test <= 20.0 * t_fit + 0.05, (t_test, t_fit)


def test_compiler_options_fall_back_when_unknown(monkeypatch):
    assert _compile.compiler_options() in ({}, _compile.CPU_OPTIONS)
    monkeypatch.setattr(_compile, "CPU_OPTIONS", {"xla_no_such_option_exists": True})
    _compile._accepted_options.cache_clear()
    try:
        assert _compile.compiler_options() == {}
        assert _compile.small_options() == {}
        f = _compile.jit(lambda x: 2.0 * x)
        assert float(f(1.5)) == 3.0
    finally:
        _compile._accepted_options.cache_clear()


def test_quick_helper_programs_give_the_same_numbers(cases, monkeypatch):
    """The hypotest's one-shot helper programs (expected data, p-values) compile with LLVM
    unoptimised (``jit(quick=True)``): the expected data bit for bit, the p-values within
    4 ulp of the same functions compiled with the large programs' options (one of 30 numbers
    differs by one ulp on this workspace; an eager and a jitted hypotest of the sbottom
    likelihood already differ by 3e-14), and the options fall back like those."""
    import equinox as eqx

    from jaxlike.infer import _hypotest

    assert _compile.quick_options() in ({}, {**_compile.CPU_OPTIONS, **_compile.QUICK_OPTIONS})
    model, data = _model("validation/validation_1bin_normsys_code1", cases)
    prep = jaxlike.infer.hypotest_prepare(data, model)
    full = _compile.compiler_options() or None
    quick = [jaxlike.infer.hypotest_at(prep, model, mu) for mu in (0.3, 1.0, 2.5)]
    pars = prep.free_fit.bestfit
    expected = _hypotest._expected(model, pars)
    with monkeypatch.context() as m:  # the same functions, compiled as the large programs
        m.setattr(_hypotest, "_assemble",
                  eqx.filter_jit(_hypotest._assemble.__wrapped__, compiler_options=full))  # fmt: skip
        ref = [jaxlike.infer.hypotest_at(prep, model, mu) for mu in (0.3, 1.0, 2.5)]
    for got, want in zip(quick, ref, strict=True):
        for field in ("cls_obs", "cls_exp", "clsb_obs", "clb_obs", "q_obs", "q_asimov"):
            np.testing.assert_allclose(getattr(got, field), getattr(want, field),
                                       rtol=4 * np.finfo(float).eps, atol=0, err_msg=field)  # fmt: skip
    full_expected = eqx.filter_jit(lambda md, p: md.expected_data(p), compiler_options=full)
    np.testing.assert_array_equal(expected, full_expected(model, pars))
    monkeypatch.setattr(_compile, "QUICK_OPTIONS", {"xla_no_such_option_exists": True})
    _compile._accepted_options.cache_clear()
    try:
        assert _compile.quick_options() == _compile.compiler_options()
    finally:
        _compile._accepted_options.cache_clear()


def test_small_fits_leave_out_loop_motion_with_the_same_bits(cases, monkeypatch):
    """One fit of a small model (≤ 10 parameters, ≤ 64 data) compiles without XLA's
    loop-invariant code motion (0.1–0.3 s less XLA on the small validation workspaces), and
    gives the same bits as the program compiled with it: bestfit, 2NLL, covariance and a
    hypotest's CLs and fitted parameters, on a code-1 kink model (with global search)."""
    from jaxlike.fit import _fit

    model, data = _model("validation/validation_1bin_normsys_code1", cases)
    init = np.zeros(model.config.npars)
    assert _fit.small_fit((model, np.zeros(64), init), {})
    assert not _fit.small_fit((model, np.zeros(65), init), {})
    assert not _fit.small_fit((model, np.zeros(3), np.zeros(11)), {})
    assert not _fit.small_fit((model, np.zeros(3), np.zeros((4, 2))), {})  # a batch of fits
    opts = _compile.small_options()
    if opts:  # CPU with jaxlike's options accepted
        passes = opts["xla_disable_hlo_passes"].split(",")
        assert "while-loop-invariant-code-motion" in passes
        assert passes[: -1] == _compile.compiler_options()["xla_disable_hlo_passes"].split(",")

    used = []

    def spy():
        used.append(True)
        return _compile.compiler_options() if reference else opts

    monkeypatch.setattr(_compile, "small_options", spy)
    runs = {}
    for reference in (False, True):
        with _Compiles() as compiled:
            fit = jaxlike.fit(model, data)
            test = jaxlike.hypotest(1.0, data, model)
        if reference:  # its own program, not the small one again
            assert "jit(fit_arrays)" in compiled.names, compiled.names
        runs[reference] = (fit.bestfit, fit.twice_nll, fit.covariance, test.cls_obs,
                           test.cls_exp, test.fitted_pars)  # fmt: skip
        assert used, "a fit of a small model did not ask for the small options"
        used.clear()
    for got, want in zip(runs[False], runs[True], strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    big, big_data = _model("synthetic/132", cases)
    assert not _fit.small_fit((big, big_data, np.zeros(big.config.npars)), {})


def test_jit_inside_a_trace_uses_the_outer_program():
    f = _compile.jit(lambda x: x * x)
    assert float(jax.jit(lambda y: f(y) + 1.0)(3.0)) == 10.0
    assert np.allclose(jax.vmap(f)(np.arange(3.0)), [0.0, 1.0, 4.0])


def test_cache_folder_is_private(tmp_path, monkeypatch):
    where = tmp_path / "cache" / "xla"
    assert _compile._private_dir(str(where))
    assert stat.S_IMODE(os.stat(where).st_mode) & 0o077 == 0
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    assert not _compile._private_dir(str(shared))  # others could plant programs there
    afile = tmp_path / "file"
    afile.write_text("")
    assert not _compile._private_dir(str(afile))
    monkeypatch.setenv("JAXLIKE_CACHE_DIR", "")
    assert _compile.cache_dir() is None
    monkeypatch.setenv("JAXLIKE_CACHE_DIR", str(where))
    assert _compile.cache_dir() == str(where)
    monkeypatch.delenv("JAXLIKE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _compile.cache_dir() == str(tmp_path / "xdg" / "jaxlike" / "xla")


def test_cache_is_off_in_tests_and_respects_a_user_setting(monkeypatch):
    # conftest opts out (JAXLIKE_CACHE_DIR=""), so importing jaxlike enabled nothing here
    assert not jax.config.jax_compilation_cache_dir
    monkeypatch.setenv("JAXLIKE_CACHE_DIR", "")
    assert _compile.enable_cache() is None
    assert not jax.config.jax_compilation_cache_dir
