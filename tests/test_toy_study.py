"""Bias, pull and coverage studies (jaxlike.infer.toy_study, jaxlike.scan.mass_toy_study, the
figures and ``jaxlike toys``).

The one-bin counting model ν = μ s + b (s = 5, b = 10, no nuisance parameter) has the MLE
μ̂ = (n − b)/s and the Hessian error σ̂ = √n/s, so every toy statistic is a function of
n ~ Pois(μ_t s + b) and its expectation is a finite sum over the Poisson pmf (scipy): the toy
summaries must agree with those sums within 3 Monte-Carlo errors. With μ signed the MLE is
exactly unbiased; with μ ≥ 0 at μ_t = 0 it is biased upwards by E[(n − b)⁺]/s.

The counting studies share one compiled toy function (same model layout, bucket of 2048
toys), the ALP studies another (chunks of one mass row).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from scipy import stats

import jaxlike
from jaxlike.cli import main
from jaxlike.exceptions import InvalidArgument
from jaxlike.infer import toy_study, toy_study_summary
from jaxlike.scan import Progress, mass_toy_study, read_toy_study
from jaxlike.workspace import counting_workspace

S, B, NTOYS = 5.0, 10.0, 2000
CL = 0.6827
PNG = b"\x89PNG\r\n\x1a\n"
SPEC = counting_workspace(
    [{"name": "sr", "observed": 10, "signal": S, "background": B}], poi_bounds=[-5, 10]
)


@pytest.fixture(scope="module")
def counting():
    ws = jaxlike.Workspace(SPEC)
    model = ws.model()
    return model, ws.data(model)


def exact(mu_true, lo, hi=10.0):
    """Expectations of the toy statistics over n ~ Pois(μ_t s + b) for the counting model
    with μ ∈ [lo, hi]: μ̂ = clip((n − b)/s), σ̂ = ν̂/(s √n) (Hessian of 2NLL at μ̂, ν̂ = μ̂ s + b;
    = √n/s inside the bounds), n = 0 (no finite pull) left out of the pull statistics."""
    nu = mu_true * S + B
    n = np.arange(0, int(nu + 40 * math.sqrt(nu)))
    w = stats.poisson.pmf(n, nu)
    mu_hat = np.clip((n - B) / S, lo, hi)
    nu_hat = mu_hat * S + B
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = nu_hat / (S * np.sqrt(n))
        pull = np.where(n > 0, (mu_hat - mu_true) / sigma, np.nan)
        # t = 2NLL(μ_t) − 2NLL(μ̂), 2NLL(μ) = 2(ν − n ln ν) + const
        t = 2 * (nu - nu_hat) - 2 * n * np.log(np.where(n > 0, nu / nu_hat, 1.0))
    has = n > 0
    wp = w[has] / w[has].sum()
    p_mean = np.sum(wp * pull[has])
    z, chi2 = stats.norm.ppf(0.5 * (1 + CL)), stats.chi2.ppf(CL, 1)
    return {
        "bias": np.sum(w * mu_hat) - mu_true,
        "pull_mean": p_mean,
        "pull_width": math.sqrt(np.sum(wp * (pull[has] - p_mean) ** 2)),
        "coverage_hesse": np.sum(wp * (np.abs(pull[has]) <= z)),
        "coverage_profile": np.sum(w * (t <= chi2)),
    }


def assert_agrees(result, expected, names=None):
    for k in names or expected:
        got, err = float(getattr(result, k)), float(getattr(result, f"{k}_err"))
        assert abs(got - expected[k]) <= 3 * err + 1e-12, (k, got, expected[k], err)


@pytest.fixture(scope="module")
def unbiased(counting):
    model, data = counting
    return toy_study(model, data, mu_true=1.0, ntoys=NTOYS, seed=11)


def test_counting_mle_is_unbiased_and_pulls_match_the_poisson_sums(unbiased):
    r = unbiased
    assert r.mu_hat.shape == r.pull.shape == r.t_true.shape == (NTOYS,)
    assert int(r.n_failed) == 0 and bool(r.gen_converged)
    np.testing.assert_allclose(r.gen, [1.0])  # the only parameter is the POI
    # μ̂ = (n − b)/s and σ̂ = √n/s toy by toy: the pull is (n − 15)/√n
    n = np.asarray(r.mu_hat) * S + B
    np.testing.assert_allclose(n, np.round(n), atol=1e-6)
    np.testing.assert_allclose(r.mu_err, np.sqrt(np.round(n)) / S, rtol=1e-6)
    e = exact(1.0, lo=-10.0)
    assert abs(e["bias"]) < 1e-12  # exactly unbiased
    assert_agrees(r, e)
    # MC errors: σ(μ̂)/√N, width/√(2(N − 1)), binomial
    assert float(r.bias_err) == pytest.approx(math.sqrt(15.0 / S**2 / NTOYS), rel=0.1)
    assert float(r.pull_width_err) == pytest.approx(float(r.pull_width) / math.sqrt(2 * 1999))
    p = float(r.coverage_profile)
    assert float(r.coverage_profile_err) == pytest.approx(math.sqrt(p * (1 - p) / NTOYS))
    assert float(r.relative_bias) == pytest.approx(float(r.bias))  # μ_t = 1
    # the Poisson pulls are skewed (σ̂ grows with n): mean < 0, width > 1
    assert e["pull_mean"] < -0.05 and e["pull_width"] > 1.02


def test_bound_at_the_true_value_biases_upwards(counting):
    model, data = counting
    r = toy_study(model, data, mu_true=0.0, ntoys=NTOYS, seed=5, signed=False,
                  par_bounds=[[0.0, 10.0]])  # fmt: skip
    e = exact(0.0, lo=0.0)
    assert e["bias"] > 0.2  # E[(n − 10)⁺]/5 at n ~ Pois(10)
    assert float(r.bias) > 5 * float(r.bias_err)
    assert float(np.min(r.mu_hat)) >= -1e-12
    assert np.isnan(float(r.relative_bias))  # μ_t = 0
    assert_agrees(r, e)


def test_summary_of_hand_made_toys():
    mu_hat = np.array([[1.0, 2.0, 3.0, 100.0], [0.5, 1.5, np.nan, 1.0]])
    err = np.array([[1.0, 0.8, 2.5, 0.0], [0.4, 0.4, 1.0, 1.0]])
    t = np.array([[0.5, 2.0, 0.1, 9.0], [1.5, 1.5, 0.0, 0.2]])
    ok = np.array([[True, True, True, False], [True, True, True, True]])
    s = toy_study_summary(mu_hat, err, t, ok, [1.0, 1.0], cl=CL)
    np.testing.assert_array_equal(s["n_failed"], [1, 1])  # not converged; NaN μ̂
    np.testing.assert_allclose(s["bias"], [1.0, 0.0])
    np.testing.assert_allclose(s["bias_err"], [1.0 / math.sqrt(3), 0.5 / math.sqrt(3)])
    np.testing.assert_allclose(s["pull"][0, :3], [0.0, 1.25, 0.8])
    np.testing.assert_allclose(s["pull"][1], [-1.25, 1.25, np.nan, 0.0])
    assert np.isnan(s["pull"][0, 3]) and np.isnan(s["t_true"][0, 3])  # σ̂ = 0, failed
    np.testing.assert_allclose(s["pull_mean"], [2.05 / 3, 0.0])
    np.testing.assert_allclose(s["pull_width"][0], np.std([0, 1.25, 0.8], ddof=1))
    np.testing.assert_allclose(s["pull_width_err"][0], s["pull_width"][0] / 2.0)
    np.testing.assert_allclose(s["coverage_profile"], [2 / 3, 1 / 3])
    np.testing.assert_allclose(s["coverage_hesse"], [2 / 3, 1 / 3])
    np.testing.assert_allclose(s["coverage_hesse_err"], [math.sqrt(2 / 27)] * 2)
    with pytest.raises(InvalidArgument, match="cl"):
        toy_study_summary(mu_hat, err, t, ok, 1.0, cl=1.5)


def test_bad_arguments_are_refused(counting):
    model, data = counting
    for kw, field in (
        ({"ntoys": 0}, "ntoys"),
        ({"toy_pars": "asimov"}, "toy_pars"),
        ({"seed": -1}, "seed"),
        ({"mu_true": float("nan")}, "mu_true"),
        ({"cl": 0.0}, "cl"),
        ({"mu_true": 20.0}, "mu_true"),  # beyond the POI's upper bound 10
        ({"mu_true": -6.0, "signed": False}, "mu_true"),  # below −5 (−10 if signed)
    ):
        with pytest.raises(InvalidArgument, match=field):
            toy_study(model, data, **kw)


# -- mass scans --------------------------------------------------------------------------------
ALP_MU, ALP_TOYS = 100.0, 50


@pytest.fixture(scope="module")
def alp(tmp_path_factory):
    from jaxlike.examples import write_alp_example
    from jaxlike.parametric import build_mass_scan, load_config

    folder = tmp_path_factory.mktemp("alp")
    scan, masses, _ = build_mass_scan(load_config(write_alp_example(folder)))
    chosen = np.asarray(masses)[[40, 160, 280]]
    path = folder / "study.h5"
    res = mass_toy_study(scan, chosen, mu_true=ALP_MU, ntoys=ALP_TOYS, seed=3, store=path,
                         chunk_size=1, progress=False)  # fmt: skip
    return SimpleNamespace(scan=scan, masses=chosen, result=res, path=path, folder=folder)


def test_mass_study_shapes_and_file(alp):
    r = alp.result
    h = len(alp.masses)
    assert r.mu_hat.shape == r.pull.shape == r.converged.shape == (h, ALP_TOYS)
    assert r.bias.shape == r.coverage_profile.shape == r.n_failed.shape == (h,)
    assert r.gen.shape == (h, 8) and bool(np.all(r.gen_converged))
    np.testing.assert_allclose(r.masses, alp.masses)
    np.testing.assert_allclose(r.gen[:, 0], ALP_MU)  # generated at μ_t
    assert np.all(np.asarray(r.n_failed) <= 2)
    for k in ("pull_width", "coverage_hesse", "coverage_profile"):
        assert np.all(np.isfinite(np.asarray(getattr(r, k))))
    assert np.all(np.abs(np.asarray(r.pull_mean)) < 0.6)
    assert np.all((np.asarray(r.pull_width) > 0.6) & (np.asarray(r.pull_width) < 1.5))
    again = read_toy_study(alp.path)
    np.testing.assert_array_equal(again.mu_hat, r.mu_hat)
    np.testing.assert_array_equal(again.coverage_profile, r.coverage_profile)
    loose = read_toy_study(alp.path, cl=0.95)  # another CL from the same toys
    assert np.all(np.asarray(loose.coverage_profile) >= np.asarray(r.coverage_profile))


class _StopAfterFirst(Progress):
    def update(self, n):
        super().update(n)
        raise KeyboardInterrupt


def test_mass_study_resumes_to_the_same_results(alp, tmp_path):
    path = tmp_path / "half.h5"
    kw = {"mu_true": ALP_MU, "ntoys": ALP_TOYS, "seed": 3, "store": path, "chunk_size": 1}
    with pytest.raises(KeyboardInterrupt):
        mass_toy_study(alp.scan, alp.masses, progress=_StopAfterFirst(enabled=False), **kw)
    with h5py.File(path, "r") as f:
        assert f["done"][...].tolist() == [True, False, False]
    stopped = Progress(enabled=False)
    res = mass_toy_study(alp.scan, alp.masses, resume=True, progress=stopped, **kw)
    assert (stopped.resumed, stopped.computed) == (1, 2)
    for k in ("mu_hat", "mu_err", "t_true", "converged", "bias", "pull_width"):
        np.testing.assert_array_equal(getattr(res, k), getattr(alp.result, k))
    from jaxlike.exceptions import InvalidScanFile

    with pytest.raises(InvalidScanFile, match="seed"):  # another study's file
        mass_toy_study(alp.scan, alp.masses, resume=True, progress=False, **{**kw, "seed": 4})


@pytest.mark.slow  # a second compilation of the window fits (~30-50 s here)
def test_mass_study_equals_toy_study_of_the_window(alp):
    i = 1
    window = alp.scan.window_model(float(alp.masses[i]))
    one = toy_study(window, window.make_data(), mu_true=ALP_MU, ntoys=ALP_TOYS, seed=3)
    at = alp.result.at(i)
    np.testing.assert_allclose(one.gen, at.gen, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(one.converged, at.converged)
    ok = np.asarray(one.converged)
    np.testing.assert_allclose(np.asarray(one.mu_hat)[ok], np.asarray(at.mu_hat)[ok], rtol=1e-5)
    for k in ("bias", "pull_mean", "pull_width", "coverage_hesse", "coverage_profile"):
        assert float(getattr(one, k)) == pytest.approx(float(getattr(at, k)), rel=1e-4, abs=1e-6)


def test_mass_study_refuses_bad_input(alp):
    for kw, match in (
        ({"ntoys": 0}, "ntoys"),
        ({"mu_true": [1.0, 2.0]}, "mu_true"),
        ({"mu_true": "expected"}, "mu_true"),
        ({"toy_pars": "nominal"}, "toy_pars"),
        ({"cl": 2.0}, "cl"),
    ):
        args = {"mu_true": ALP_MU, "ntoys": 4, **kw}
        with pytest.raises(InvalidArgument, match=match):
            mass_toy_study(alp.scan, alp.masses, progress=False, **args)


# -- figures -----------------------------------------------------------------------------------
def test_figures_are_written(unbiased, alp, tmp_path):
    from jaxlike import plotting

    for path in (
        plotting.plot_toy_pulls(unbiased, tmp_path / "pulls.png"),
        plotting.plot_study_scan(alp.result, alp.masses, tmp_path / "scan.png"),
    ):
        assert path.read_bytes().startswith(PNG) and path.stat().st_size > 10_000
    with pytest.raises(InvalidArgument, match="at"):
        plotting.plot_toy_pulls(alp.result, tmp_path / "x.png")  # one model only


def test_test_statistic_figure(tmp_path):
    from jaxlike import plotting

    rng = np.random.default_rng(0)
    q_sb = rng.chisquare(1, 400)
    q_b = rng.chisquare(1, 400) + 2.0
    q_sb[:3] = np.nan  # failed toys
    for ts in ("qtilde", "q0"):
        res = SimpleNamespace(
            q_sb=q_sb, q_b=q_b, q_obs=2.5, mu=0.0 if ts == "q0" else 1.0, test_stat=ts,
            cls_obs=0.2, clsb_obs=0.1, clb_obs=0.5, cls_obs_err=0.02, clsb_obs_err=0.01,
            clb_obs_err=0.02,
        )  # fmt: skip
        path = plotting.plot_test_statistic(res, tmp_path / f"{ts}.png")
        assert path.read_bytes().startswith(PNG) and path.stat().st_size > 10_000


@pytest.mark.slow
def test_test_statistic_figure_of_a_real_toy_test(counting, tmp_path):
    from jaxlike import plotting

    model, data = counting
    res = jaxlike.infer.hypotest(1.0, data, model, calctype="toybased", ntoys=300)
    path = plotting.plot_test_statistic(res, tmp_path / "q.png")
    assert path.read_bytes().startswith(PNG)
    # the study's toys are the s+b toys of the test at μ = μ_t (same seed, set 1)
    study = toy_study(model, data, mu_true=1.0, ntoys=300, toy_pars="init")
    np.testing.assert_allclose(study.mu_hat, res.mu_hat_sb, atol=1e-6)


# -- command line ------------------------------------------------------------------------------
def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_cli_on_a_workspace(tmp_path, unbiased):
    ws = tmp_path / "ws.json"
    ws.write_text(json.dumps(SPEC))
    out = tmp_path / "toys.h5"
    argv = ["toys", ws, "--mu", "1", "--ntoys", NTOYS, "--seed", "11", "-o", out]
    code, stdout, stderr = run(*argv, "--json", "--no-progress")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["bias"] == pytest.approx(float(unbiased.bias), abs=1e-9)
    assert summary["failed_toys"] == 0 and summary["kind"] == "workspace"
    assert (tmp_path / "toys.png").read_bytes().startswith(PNG)
    with h5py.File(out, "r") as f:
        np.testing.assert_allclose(f["toys/mu_hat"][...], unbiased.mu_hat, atol=1e-9)
        assert json.loads(f.attrs["identity"])["ntoys"] == NTOYS
        assert json.loads(f.attrs["summary"])["pull_width"] == pytest.approx(
            float(unbiased.pull_width), rel=1e-9
        )
    before = out.read_bytes()
    code, stdout, stderr = run(*argv)  # exists, neither --resume nor --overwrite
    assert code == 2 and "already exists" in stderr and len(stderr.splitlines()) == 1
    code, stdout, stderr = run(*argv, "--resume")  # the finished study, not recomputed
    assert code == 0 and "profile" in stdout
    code, stdout, stderr = run(*argv[:3], "2", *argv[4:], "--resume")
    assert code == 2 and "mu_true" in stderr and len(stderr.splitlines()) == 1
    assert out.read_bytes() == before


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--ntoys", "0"], "--ntoys"),
        (["--mu", "nan"], "--mu"),
        (["--toy-pars", "x"], "--toy-pars"),
    ],
)
def test_cli_bad_arguments_are_one_line(tmp_path, argv, needle):
    ws = tmp_path / "ws.json"
    ws.write_text(json.dumps(SPEC))
    base = {"--mu": "1", "--ntoys": "5"}
    base.update(dict(zip(argv[::2], argv[1::2], strict=True)))
    code, stdout, stderr = run("toys", ws, *[x for kv in base.items() for x in kv],
                               "-o", tmp_path / "t.h5")  # fmt: skip
    assert code == 2 and needle in stderr and len(stderr.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws.json"]  # nothing written


def test_cli_missing_file_and_folder(tmp_path):
    code, _, stderr = run("toys", tmp_path / "missing.json", "--mu", "1", "--ntoys", "5")
    assert code == 2 and stderr.startswith("jaxlike toys: error:") and "no such file" in stderr
    assert len(stderr.splitlines()) == 1
    ws = tmp_path / "ws.json"
    ws.write_text(json.dumps(SPEC))
    code, _, stderr = run("toys", ws, "--mu", "1", "--ntoys", "5", "-o", tmp_path / "no" / "t.h5")
    assert code == 2 and "does not exist" in stderr and len(stderr.splitlines()) == 1


@pytest.mark.slow
def test_cli_on_a_scan_config(tmp_path):
    from test_cli_scan import make_config

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(make_config()))
    out = tmp_path / "study.h5"
    argv = ["toys", cfg, "--mu", "20", "--ntoys", "24", "-o", out, "--no-progress"]
    code, stdout, stderr = run(*argv, "--json")
    assert code in (0, 3), stderr
    summary = json.loads(stdout)
    assert summary["masses"] == 5 and len(summary["worst"]) == 5
    assert (tmp_path / "study.png").read_bytes().startswith(PNG)
    r = read_toy_study(out)
    assert r.mu_hat.shape == (5, 24)
    code, stdout, stderr = run(*argv, "--resume")
    assert code in (0, 3) and "masses x 24" in stdout
