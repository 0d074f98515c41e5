"""Fuzz suite: bad input never crashes, hangs or lies (issue 11).

Seeded mutations of a small workspace with every modifier type (tests/_fuzz.py), of its JSON
text, of JSON patches and of command-line options. For every case one of these must hold:

- a clean refusal: a :class:`jaxlike.exceptions.JaxlikeError` (library) or exit code 2 with
  exactly one ``jaxlike...: error: ...`` line on standard error and nothing on standard output
  (command line);
- a result equal to pyhf's where pyhf gives one (logpdf at the suggested initial values to
  1e-9 relative; an accepted workspace that pyhf refuses, or one whose logpdf is not finite,
  is a failure);
- a flagged non-convergence: exit code 3 with the status in the output.

Never an exception of another type (a traceback), a case running past its time limit (a hang),
a bare ``NaN``/``Infinity`` token in JSON output, a non-finite number with exit code 0, or
another exit code. The default run has 620 cases (about a minute on 2 CPU cores once the few
compiled functions exist); ``-m slow`` runs 2400 more with other seeds.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import signal
import traceback

import jsonpatch
import numpy as np
import pyhf
import pytest

import jaxlike
from jaxlike.cli import main
from jaxlike.exceptions import JaxlikeError

from _fuzz import BASE_WORKSPACE, WORKSPACE_MUTATORS, mutate_text

#: cases per test in the default run and in the slow run (other seeds)
N_DEFAULT = {"library": 250, "text": 120, "patch": 150, "cli": 100}
N_SLOW = {"library": 1000, "text": 400, "patch": 600, "cli": 400}
SLOW_SEED_OFFSET = 10_000


class Hang(Exception):
    """A case ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float, label: str):
    """Raise :class:`Hang` in the main thread after ``seconds`` (SIGALRM)."""

    def on_alarm(signum, frame):
        raise Hang(f"{label}: still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


_REFUSED = object()


def guarded(fn, label: str, seconds: float = 30):
    """``fn()`` under a time limit: its value, or ``_REFUSED`` for a clean
    :class:`JaxlikeError` (with a message); any other exception fails the test as a
    traceback, and :class:`Hang` propagates."""
    try:
        with time_limit(seconds, label):
            return fn()
    except JaxlikeError as err:
        assert str(err).strip(), f"{label}: empty error message"
        return _REFUSED
    except Hang:
        raise
    except Exception:  # noqa: BLE001
        pytest.fail(f"{label}: traceback\n{traceback.format_exc()}")


def _seeds(kind: str, slow: bool):
    n = (N_SLOW if slow else N_DEFAULT)[kind]
    start = SLOW_SEED_OFFSET if slow else 0
    return range(start, start + n)


def _mutated_workspace(seed: int):
    rng = np.random.default_rng([seed, 11])
    spec, labels = BASE_WORKSPACE, []
    for _ in range(1 + int(rng.random() < 0.3)):
        mutator = WORKSPACE_MUTATORS[rng.integers(len(WORKSPACE_MUTATORS))]
        spec, label = mutator(rng, spec)
        labels.append(label)
    return spec, "; ".join(labels)


def _pyhf_logpdf(spec):
    """pyhf's logpdf at its suggested initial values, or None where pyhf refuses the input."""
    pyhf.set_backend("numpy")
    try:
        ws = pyhf.Workspace(copy.deepcopy(spec))
        model = ws.model()
        data = ws.data(model)
        init = model.config.suggested_init()
        return float(model.logpdf(init, data)[0]), init
    except Exception:  # noqa: BLE001 - any refusal by pyhf counts as "pyhf gives no result"
        return None, None


def _check_library_case(spec, label):
    """Workspace → model → data → logpdf: a JaxlikeError, or pyhf's value to 1e-9."""

    def evaluate():
        ws = jaxlike.Workspace(spec)
        model = ws.model()
        data = ws.data(model)
        init = np.asarray(model.config.suggested_init())
        return init, float(model.logpdf(init, data))

    got = guarded(evaluate, label, 60)
    if got is _REFUSED:
        return "refused"
    init, value = got
    ref, ref_init = _pyhf_logpdf(spec)
    assert ref is not None, f"{label}: jaxlike accepted a workspace pyhf refuses (logpdf {value})"
    assert math.isfinite(value), f"{label}: accepted, but logpdf {value} at the initial values"
    np.testing.assert_allclose(init, ref_init, err_msg=label)
    assert value == pytest.approx(ref, rel=1e-9, abs=1e-9), f"{label}: {value} vs pyhf {ref}"
    return "equal"


def _library_cases(slow):
    outcomes = {"refused": 0, "equal": 0}
    for seed in _seeds("library", slow):
        spec, label = _mutated_workspace(seed)
        label = f"seed {seed}: {label}"
        outcomes[_check_library_case(spec, label)] += 1
    return outcomes


def test_fuzz_workspaces_library():
    """Mutated workspaces through the library: refused cleanly or equal to pyhf."""
    outcomes = _library_cases(slow=False)
    # the mutations must exercise both outcomes, or the suite proves nothing
    assert outcomes["refused"] > 50 and outcomes["equal"] > 20, outcomes


@pytest.mark.slow
def test_fuzz_workspaces_library_slow():
    outcomes = _library_cases(slow=True)
    assert outcomes["refused"] > 200 and outcomes["equal"] > 80, outcomes


# ----- the command line -------------------------------------------------------------------
def run_cli(argv, seconds=120, label=""):
    """Run ``jaxlike argv`` in-process; return (exit code, stdout, stderr). An exception
    escaping :func:`jaxlike.cli.main` is a traceback and fails the test."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with time_limit(seconds, label), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):  # fmt: skip
            code = main(list(argv))
    except Hang:
        raise
    except BaseException:  # noqa: BLE001
        pytest.fail(f"{label}: traceback from jaxlike {argv}\n{traceback.format_exc()}")
    return code, out.getvalue(), err.getvalue()


def _strict_json(text, label):
    def refuse(token):
        raise AssertionError(f"{label}: bare {token} in JSON output")

    return json.loads(text, parse_constant=refuse)


def _numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)
    elif isinstance(obj, float | int) and not isinstance(obj, bool):
        yield obj
    elif obj is None:
        yield None


def check_cli_contract(code, out, err, label, json_out=False):
    """The command-line promises: exit 0/2/3; 2 = one error line and no output; JSON output is
    strict (no NaN tokens); exit 0 never comes with a non-finite or missing (null) number."""
    assert code in (0, 2, 3), f"{label}: exit code {code}\n{err}"
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and ": error: " in lines[0], f"{label}: stderr {err!r}"
        assert out == "", f"{label}: output despite the error: {out[:200]!r}"
        return None
    if json_out:
        doc = _strict_json(out, label)
        if code == 0:
            bad = [v for v in _numbers(doc) if v is None or not math.isfinite(v)]
            assert not bad, f"{label}: exit 0 with non-finite values {bad} in {out[:300]}"
        else:
            assert "converged" in out or "status" in out, f"{label}: exit 3 without a status"
        return doc
    if code == 0:
        low = out.lower()
        assert "nan" not in low.split() and " inf" not in low, f"{label}: exit 0 with {out}"
    return None


_VERBS = ("inspect", "fit", "fit --json", "cls", "limit --json", "limit")
_OPTIONS = {
    "cls": [[], ["--test-poi", "nan"], ["--test-poi", "inf"], ["--test-poi", "-1"],
            ["--test-poi", "11"], ["--test-poi", "abc"], ["--test-poi", "0.5"],
            ["--test-stat", "q0"], ["--test-stat", "q"], ["--measurement", "nope"]],
    "limit": [[], ["--cl", "0"], ["--cl", "1"], ["--cl", "nan"], ["--cl", "1.5"],
              ["--cl", "0.9"], ["--measurement", "meas"], ["--test-stat", "x"]],
    "fit": [[], ["--measurement", "nope"], ["-p", "missing.json"]],
    "inspect": [[], ["--measurement", "nope"]],
}  # fmt: skip


def _cli_case(seed, tmp_path):
    rng = np.random.default_rng([seed, 23])
    verb = _VERBS[rng.integers(len(_VERBS))].split()
    opts = _OPTIONS[verb[0]]
    argv = [*verb, str(tmp_path / "ws.json"), *opts[rng.integers(len(opts))]]
    r = rng.random()
    if r < 0.4:  # a value mutation keeps the compiled layout: the fit actually runs
        from _fuzz import mutate_values

        spec, what = mutate_values(rng, BASE_WORKSPACE)
    elif r < 0.8:
        spec, what = _mutated_workspace(seed)
    else:
        spec, what = BASE_WORKSPACE, "base"
    (tmp_path / "ws.json").write_text(json.dumps(spec), encoding="utf-8", errors="surrogatepass")
    if rng.random() < 0.15:
        argv += ["--output-file", str(tmp_path / "missing_dir" / "out.json")]
    return argv, f"seed {seed}: {' '.join(argv[:1])} {what} {argv[2:]}"


def _cli_cases(tmp_path, slow):
    codes = {0: 0, 2: 0, 3: 0}
    for seed in _seeds("cli", slow):
        argv, label = _cli_case(seed, tmp_path)
        code, out, err = run_cli(argv, label=label)
        check_cli_contract(code, out, err, label, json_out="--json" in argv or argv[0] == "cls")
        codes[code] += 1
    return codes


def test_fuzz_cli(tmp_path):
    """Random verbs, options and mutated workspaces through ``jaxlike``: the CLI contract."""
    codes = _cli_cases(tmp_path, slow=False)
    assert codes[0] > 10 and codes[2] > 30, codes


@pytest.mark.slow
def test_fuzz_cli_slow(tmp_path):
    codes = _cli_cases(tmp_path, slow=True)
    assert codes[0] > 40 and codes[2] > 120, codes


# ----- JSON text ----------------------------------------------------------------------------
def _text_cases(tmp_path, slow):
    base = json.dumps(BASE_WORKSPACE)
    codes = {0: 0, 2: 0, 3: 0}
    for seed in _seeds("text", slow):
        rng = np.random.default_rng([seed, 31])
        text, what = mutate_text(rng, base)
        label = f"seed {seed}: {what}"
        path = tmp_path / "ws.json"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        guarded(lambda: jaxlike.Workspace.load(path), f"{label} (Workspace.load)")
        code, out, err = run_cli(["inspect", str(path)], label=label)
        check_cli_contract(code, out, err, label)
        codes[code] += 1
    return codes


def test_fuzz_json_text(tmp_path):
    """Damaged JSON text (truncated, flipped, deep, huge numbers, NaN tokens, surrogates)."""
    codes = _text_cases(tmp_path, slow=False)
    assert codes[2] > 60 and codes[0] > 5, codes


@pytest.mark.slow
def test_fuzz_json_text_slow(tmp_path):
    codes = _text_cases(tmp_path, slow=True)
    assert codes[2] > 200 and codes[0] > 20, codes


# ----- JSON patches -------------------------------------------------------------------------
_POINTERS = ["/channels/0/samples/0/data/0", "/channels/0/samples/-", "/channels/1",
             "/observations/0/data", "/measurements/0/config/poi", "/channels/0/samples/9",
             "/channels/0/name", "", "/nope/x", "/channels/0/samples/0/modifiers/0",
             "/channels/~1x", "/channels/01", "channels/0"]  # fmt: skip
_VALUES = [1.0, -5.0, float("nan"), "mu", None, [], {}, [1.0, 2.0, 3.0], 10**400,
           {"name": "x", "type": "normfactor", "data": None}]  # fmt: skip


def _patch_case(seed):
    rng = np.random.default_rng([seed, 37])
    ops = []
    for _ in range(int(rng.integers(1, 4))):
        op = {"op": str(rng.choice(["add", "remove", "replace", "move", "copy", "test", "bogus"]))}
        if rng.random() > 0.05:
            op["path"] = _POINTERS[rng.integers(len(_POINTERS))]
        if op["op"] in ("add", "replace", "test") and rng.random() > 0.1:
            op["value"] = copy.deepcopy(_VALUES[rng.integers(len(_VALUES))])
        if op["op"] in ("move", "copy"):
            op["from"] = _POINTERS[rng.integers(len(_POINTERS))]
        ops.append(op)
    return ops


def _reference_patch(ops):
    """The RFC 6902 result from the ``jsonpatch`` package, or None where it refuses."""
    try:
        return jsonpatch.apply_patch(copy.deepcopy(BASE_WORKSPACE), copy.deepcopy(ops))
    except Exception:  # noqa: BLE001 - jsonpatch refusing counts as "no result"
        return None


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _patch_cases(slow):
    from jaxlike.workspace import apply_patch

    outcomes = {"refused": 0, "applied": 0}
    for seed in _seeds("patch", slow):
        ops = _patch_case(seed)
        label = f"seed {seed}: {json.dumps(ops, default=str)[:300]}"
        result = guarded(lambda: apply_patch(BASE_WORKSPACE, ops), label)
        if result is _REFUSED:
            outcomes["refused"] += 1
            continue
        ref = _reference_patch(ops)
        assert ref is not None, f"{label}: applied a patch that RFC 6902 (jsonpatch) refuses"
        assert _same(result, ref), f"{label}: result differs from jsonpatch's"
        outcomes["applied"] += 1
        # a patched document is an input like any other: refused or equal to pyhf
        if isinstance(result, dict) and outcomes["applied"] % 3 == 0:
            _check_library_case(result, label)
    return outcomes


def test_fuzz_patches():
    """Random RFC 6902 operations: refused cleanly or the same result as ``jsonpatch``."""
    outcomes = _patch_cases(slow=False)
    assert outcomes["refused"] > 30 and outcomes["applied"] > 10, outcomes


@pytest.mark.slow
def test_fuzz_patches_slow():
    outcomes = _patch_cases(slow=True)
    assert outcomes["refused"] > 120 and outcomes["applied"] > 40, outcomes


# ----- scan files ----------------------------------------------------------------------------
def _h5_cases(tmp_path, first, n):
    """Run tests/_fuzz_h5.py in a subprocess (a segfault or hang in HDF5 must not take the
    test session with it): each damaged file is refused or gives back the original rows."""
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    try:
        proc = subprocess.run(
            [sys.executable, str(here / "_fuzz_h5.py"), str(first), str(n), str(tmp_path)],
            capture_output=True, text=True, timeout=30 + 2 * n, cwd=here,
        )  # fmt: skip
    except subprocess.TimeoutExpired as err:
        last = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else err.stdout or ""
        pytest.fail(f"hang: damaged scan files still running; last lines:\n{last[-300:]}")
    lines = proc.stdout.splitlines()
    if proc.returncode < 0:
        pytest.fail(f"signal {-proc.returncode} (segfault?) at {lines[-1] if lines else '?'}")
    fails = [line for line in lines if line.startswith("FAIL")]
    assert proc.returncode == 0 and not fails, "\n".join(fails) or proc.stderr[-2000:]
    assert lines[-1] == f"done {n} cases, 0 failures"


def test_fuzz_scan_files(tmp_path):
    """Damaged HDF5 scan files (flipped, truncated, zeroed, emptied, edited): refused cleanly
    or read back exactly, on read and on resume."""
    _h5_cases(tmp_path, 0, 150)


@pytest.mark.slow
def test_fuzz_scan_files_slow(tmp_path):
    _h5_cases(tmp_path, SLOW_SEED_OFFSET, 600)


# ----- scan configurations --------------------------------------------------------------------
@pytest.fixture(scope="module")
def zprime_config(tmp_path_factory):
    import tomllib

    from jaxlike.examples._scans import write_zprime_example

    folder = tmp_path_factory.mktemp("zprime")
    path = write_zprime_example(folder)
    return folder, tomllib.loads(path.read_text(encoding="utf-8"))


def _config_cases(folder, base, slow):
    from jaxlike.parametric import build_mass_scan, load_config

    from _fuzz import mutate_number, mutate_string, mutate_structure

    outcomes = {"refused": 0, "built": 0}
    kind = "library"  # reuse the library case counts, scaled down: building is cheap
    seeds = list(_seeds(kind, slow))[: (600 if slow else 150)]
    for seed in seeds:
        rng = np.random.default_rng([seed, 43])
        if rng.random() < 0.25:  # valid values elsewhere in their range: must build
            cfg, what = copy.deepcopy(base), "valid values"
            cfg["scan"]["masses"]["step_sigma"] = float(rng.uniform(0.5, 4.0))
            cfg["window"]["lo"], cfg["window"]["hi"] = (float(x) for x in rng.uniform(3, 12, 2))
            cfg["signal"]["rel_eff"] = float(rng.uniform(0.0, 0.3))
        else:
            mutator = (mutate_number, mutate_string, mutate_structure)[rng.integers(3)]
            cfg, what = mutator(rng, base)
        label = f"seed {seed}: config {what}"
        path = folder / "fuzz.json"
        path.write_text(json.dumps(cfg, default=str), encoding="utf-8", errors="surrogatepass")
        built = guarded(lambda: build_mass_scan(load_config(path)), label, 60)
        if built is _REFUSED:
            outcomes["refused"] += 1
            continue
        m = np.asarray(built[1])
        assert m.size and np.all(np.isfinite(m)), f"{label}: masses {m[:5]}"
        outcomes["built"] += 1
    return outcomes


def test_fuzz_scan_configs(zprime_config):
    """Mutated scan configurations (the Z' example): refused naming the field, or built with
    finite masses; never a traceback or a hang (a tiny step once meant 10⁷ jitted calls)."""
    folder, base = zprime_config
    outcomes = _config_cases(folder, base, slow=False)
    assert outcomes["refused"] > 50 and outcomes["built"] > 10, outcomes


@pytest.mark.slow
def test_fuzz_scan_configs_slow(zprime_config):
    folder, base = zprime_config
    outcomes = _config_cases(folder, base, slow=True)
    assert outcomes["refused"] > 200 and outcomes["built"] > 40, outcomes
