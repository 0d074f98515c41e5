"""Parametric window models and mass scans: likelihood against an independent calculation,
batched scan against one-at-a-time inference, sharded against unsharded, config validation."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.integrate import quad

import jaxlike
from jaxlike.exceptions import InvalidScanConfig
from jaxlike.parametric import build_mass_scan, hypothesis_results
from jaxlike.scan import mass_scan

EDGES = np.linspace(1.0, 3.0, 1001)


def _sigma(m):
    return 0.004 + 0.002 * m


def small_config(seed=3, masses=(1.6, 2.0, 2.3, 2.45), **over):
    """1000 fine bins, a falling background and a signal of 100 events at m = 2.0."""
    rng = np.random.default_rng(seed)
    x = 0.5 * (EDGES[1:] + EDGES[:-1])
    bkg = 40.0 * np.exp(-(x - 1.0))
    sig = 100.0 * np.diff(stats.norm.cdf(EDGES, 2.0, _sigma(2.0)))
    counts = rng.poisson(bkg + sig).astype(float)
    tab = [1.0, 2.0, 3.0]
    cfg = {
        "spectrum": {"edges": EDGES.tolist(), "counts": [counts.tolist()]},
        "signal": {
            "shape": "gauss",
            "rel_eff": 0.05,
            "rel_res": 0.1,
            "tables": [{"mass": tab, "sigma": [_sigma(m) for m in tab], "unit": [0.5] * 3}],
        },
        "background": {"kind": "bernstein", "order": 1},
        "window": {"lo": 10.0, "hi": 10.0, "n_bins": 20, "vetoes": [[2.40, 2.42]]},
        "scan": {"masses": list(masses), "cl": [0.95]},
    }
    for key, value in over.items():
        section, field = key.split("__")
        cfg[section][field] = value
    return cfg


@pytest.fixture(scope="module")
def scanned():
    scan, masses, cl = build_mass_scan(small_config())
    out = mass_scan(scan, masses, cl=cl, chunk_size=4, progress=False)
    return scan, masses, cl, out


def test_window_logpdf_matches_independent_calculation():
    scan, _, _ = build_mass_scan(small_config())
    m = 2.45  # its window contains the veto [2.40, 2.42]
    model = scan.window_model(m)
    cfg = model.config
    assert cfg.par_names == ["mu", "bkg_0", "bkg_0_a1", "theta_eff", "theta_res"]
    pars = np.array([30.0, 900.0, 0.7, 0.4, -0.6])
    e = np.asarray(model.edges[0])
    lo, hi = e[0], e[-1]
    # resolution nuisance: HistFactory histosys code 4p between shapes at σ(1 ± 0.1)
    nom, up, down = (np.diff(stats.norm.cdf(e, m, _sigma(m) * f)) for f in (1.0, 1.1, 0.9))
    t = pars[4]
    s_avg, a_avg = ((up - nom) + (nom - down)) / 2, ((up - nom) - (nom - down)) / 16
    shape = nom + t * s_avg + t**2 * a_avg * (15 - 10 * t**2 + 3 * t**4)
    sig = 30.0 * (1 + 0.05 * pars[3]) * shape
    dens = lambda x: (1 - (x - lo) / (hi - lo)) + 0.7 * (x - lo) / (hi - lo)  # noqa: E731
    total = quad(dens, lo, hi)[0]
    bkg = (
        900.0 * np.array([quad(dens, a, b)[0] for a, b in zip(e[:-1], e[1:], strict=True)]) / total
    )
    nu = sig + bkg
    n = np.asarray(model.counts[0])
    keep = np.asarray(model.mask[0])
    assert keep.sum() < keep.size  # the veto removed bins
    ref = np.sum(stats.poisson.logpmf(n, nu)[keep]) + np.sum(stats.norm.logpdf([0, 0], pars[3:]))
    got = float(model.logpdf(jnp.asarray(pars), model.make_data()))
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_injected_signal_is_found(scanned):
    _, masses, _, out = scanned
    i = list(masses).index(2.0)
    assert out["significance"][i] > 3.0
    assert abs(out["mu_hat"][i] - 100.0) < 3 * out["mu_hat_err"][i]
    assert out["ul_obs"][i, 0] > out["mu_hat"][i]
    np.testing.assert_allclose(out["mu_hat_phys"], 0.5 * out["mu_hat"])
    assert out["fit_converged"].all() and out["limit_converged"].all()
    assert np.all(np.diff(out["ul_exp"][:, 0, :], axis=1) > 0)  # band ascending


def test_batched_scan_equals_each_hypothesis_alone(scanned):
    scan, masses, cl, out = scanned
    for i in (0, 1):
        model = scan.window_model(masses[i])
        data = model.make_data()
        ul = jaxlike.upper_limit(data, model, cl=0.95)
        np.testing.assert_allclose(out["ul_obs"][i, 0], float(ul.obs), rtol=1e-5)
        np.testing.assert_allclose(out["ul_exp"][i, 0], np.asarray(ul.exp), rtol=1e-5)
        bounds = np.array(model.config.suggested_bounds())
        bounds[0, 0] = -bounds[0, 1]
        free = jaxlike.fit(model, data, par_bounds=bounds)
        null = jaxlike.fixed_poi_fit(model, data, 0.0)
        z = np.sign(free.bestfit[0]) * np.sqrt(max(float(null.twice_nll - free.twice_nll), 0))
        np.testing.assert_allclose(out["mu_hat"][i], float(free.bestfit[0]), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(out["significance"][i], z, rtol=1e-5, atol=1e-5)


def test_single_hypothesis_function_is_vmappable_over_masses(scanned):
    scan, masses, cl, out = scanned
    f = jax.jit(jax.vmap(lambda m: hypothesis_results(scan, m, cl)["ul_obs"]))
    np.testing.assert_allclose(np.asarray(f(jnp.asarray(masses))), out["ul_obs"], rtol=1e-7)


_SHARDED = r"""
import json, sys
import jax, numpy as np
assert len(jax.devices()) == 4, jax.devices()
from jaxlike.parametric import build_mass_scan
from jaxlike.scan import mass_scan
scan, masses, cl = build_mass_scan(json.load(open(sys.argv[1])))
out = mass_scan(scan, masses, cl=cl, chunk_size=4, progress=False)
np.savez(sys.argv[2], **out)
"""


def test_sharded_over_four_cpu_devices_equals_unsharded(scanned, tmp_path):
    _, _, _, out = scanned
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(small_config()))
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    script = tmp_path / "run.py"
    script.write_text(_SHARDED)
    res = tmp_path / "out.npz"
    proc = subprocess.run(
        [sys.executable, str(script), str(cfg), str(res)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(res) as z:
        for key in ("mu_hat", "significance", "ul_obs", "ul_exp"):
            np.testing.assert_allclose(z[key], out[key], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    ("over", "path"),
    [
        ({"signal__shape": "breit_wigner"}, "signal.shape"),
        ({"background__kind": "spline"}, "background.kind"),
        ({"scan__masses": [0.5, 2.0]}, "scan.masses"),  # below the tabulated range
        ({"scan__masses": [1.02]}, "window"),  # window leaves the spectrum
        ({"window__n_bins": 400}, "window"),  # fewer fine bins than window bins: empty bins
        ({"scan__cl": [1.5]}, "scan.cl"),
        ({"window__vetoes": [[2.5, 2.4]]}, "window.vetoes"),
    ],
)
def test_bad_configs_fail_before_computing_and_name_the_field(over, path):
    with pytest.raises(InvalidScanConfig) as err:
        build_mass_scan(small_config(**over))
    assert err.value.path.startswith(path), (err.value.path, str(err.value))


def test_config_file_round_trip(tmp_path):
    cfg = small_config()
    p = tmp_path / "scan.json"
    p.write_text(json.dumps(cfg))
    loaded = jaxlike.parametric.load_config(p)
    assert Path(loaded.pop("_base")) == tmp_path
    assert loaded == cfg
    (tmp_path / "bad.toml").write_text("[scan\nmasses = 1")
    with pytest.raises(InvalidScanConfig, match="not valid toml"):
        jaxlike.parametric.load_config(tmp_path / "bad.toml")


def test_masses_inside_a_veto_are_dropped_unless_asked_to_keep():
    _, masses, _ = build_mass_scan(small_config(masses=(2.0, 2.41, 2.3)))
    np.testing.assert_array_equal(masses, [2.0, 2.3])
    cfg = small_config(masses=(2.0, 2.41))
    cfg["scan"]["skip_vetoed"] = False
    np.testing.assert_array_equal(build_mass_scan(cfg)[1], [2.0, 2.41])
    with pytest.raises(InvalidScanConfig, match="vetoed"):
        build_mass_scan(small_config(masses=(2.41,)))


def test_vetoes_are_padded_to_one_layout():
    """0, 1 or 4 vetoes give [4, 2] (padded with (+inf, +inf)), 5 give [8, 2]: scans with a
    few vetoes or none share one array layout, hence one compiled program."""
    for vetoes, rows in (([], 4), ([[2.4, 2.42]], 4), ([[1.0 + k, 1.1 + k] for k in range(4)], 4),
                         ([[1.0 + k, 1.1 + k] for k in range(5)], 8)):  # fmt: skip
        cfg = small_config(masses=(2.0, 2.3))
        cfg["window"]["vetoes"] = vetoes
        v = np.asarray(build_mass_scan(cfg)[0].vetoes)
        assert v.shape == (rows, 2)
        np.testing.assert_array_equal(v[: len(vetoes)], np.reshape(vetoes, (-1, 2)))
        assert np.all(v[len(vetoes) :] == np.inf)
