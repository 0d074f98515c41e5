"""Strict configuration loaders: unknown keys, types and ranges, size bounds, special files,
byte order marks, atomic writes and unique figure names. Every bad config is refused on the
host before anything is compiled, so these tests are fast."""

from __future__ import annotations

import copy
import json
import os
import signal
import stat
import threading
import time
import zipfile
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest

from jaxlike._strict import atomic_write, unique_names
from jaxlike.cli import main
from jaxlike.cli._grid import parse_axis, parse_assignments
from jaxlike.exceptions import (
    InvalidBayesConfig,
    InvalidPosteriorConfig,
    InvalidScanConfig,
    JaxlikeError,
)
from jaxlike.jobs import load_posterior_config
from jaxlike.jobs.posterior import _atomic
from jaxlike.parametric import build_mass_scan, load_config, scan_masses
from jaxlike.parametric._config import MAX_HYPOTHESES
from jaxlike.plotting import file_stems

EDGES = np.linspace(1.0, 3.0, 201)
TAB = [1.0, 2.0, 3.0]


def scan_config(**over) -> dict:
    """A small valid scan config (inline spectrum); ``section__key=value`` overrides."""
    cfg = {
        "spectrum": {"edges": EDGES.tolist(), "counts": [[5.0] * 200]},
        "signal": {
            "shape": "gauss",
            "rel_eff": 0.05,
            "rel_res": 0.1,
            "tables": [{"mass": TAB, "sigma": [0.006, 0.008, 0.010]}],
        },
        "background": {"kind": "bernstein", "order": 1},
        "window": {"lo": 5.0, "hi": 5.0, "n_bins": 5, "vetoes": [[2.40, 2.42]]},
        "scan": {"masses": [1.6, 2.0], "cl": [0.95]},
    }
    for key, value in over.items():
        section, field = key.split("__")
        cfg[section][field] = value
    return cfg


def refused(cfg, path: str, match: str = ""):
    """build_mass_scan(cfg) raises InvalidScanConfig at exactly ``path``."""
    with pytest.raises(InvalidScanConfig) as err:
        build_mass_scan(cfg)
    assert err.value.path == path, str(err.value)
    assert match in str(err.value), str(err.value)
    assert "\n" not in str(err.value)
    return err.value


@contextmanager
def deadline(seconds: int):
    """Fail instead of hanging (a FIFO opened for reading blocks forever)."""

    def boom(*_):
        raise TimeoutError(f"took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_the_small_config_is_valid():
    _, masses, cl = build_mass_scan(scan_config())
    np.testing.assert_array_equal(masses, [1.6, 2.0])
    assert cl == (0.95,)


def test_python_tuples_count_as_lists():
    cfg = scan_config(window__vetoes=[(2.40, 2.42)], scan__masses=(1.6, 2.0), scan__cl=(0.9,))
    cfg["signal"]["tables"][0]["sigma"] = (0.006, 0.008, 0.010)
    _, masses, cl = build_mass_scan(cfg)
    np.testing.assert_array_equal(masses, [1.6, 2.0])
    assert cl == (0.9,)
    _, _, cl = build_mass_scan(scan_config(scan__cl=0.9))  # one level as a plain number
    assert cl == (0.9,)


# -- 1. unknown keys ---------------------------------------------------------------------------


def test_unknown_key_in_a_section_suggests_the_closest():
    cfg = scan_config()
    del cfg["window"]["n_bins"]
    cfg["window"]["bins"] = 5
    err = refused(cfg, "window.bins")
    assert str(err) == "window.bins: unknown key; did you mean 'n_bins'?"


@pytest.mark.parametrize(
    ("where", "key", "path", "hint"),
    [
        ((), "windw", "windw", "'window'"),  # a top-level section
        (("signal",), "rel_ef", "signal.rel_ef", "'rel_eff'"),
        (("spectrum",), "edgs", "spectrum.edgs", "'edges'"),
        (("background",), "ordr", "background.ordr", "'order'"),
        (("scan",), "skip_veto", "scan.skip_veto", "'skip_vetoed'"),
        (("signal", "tables", 0), "sigm", "signal.tables[0].sigm", "'sigma'"),
        (("scan", "masses"), "step_sigm", "scan.masses.step_sigm", "'step_sigma'"),
        (("scan",), "output", "scan.output", "known:"),
    ],
)
def test_unknown_keys_at_every_level(where, key, path, hint):
    cfg = scan_config(scan__masses={"start": 1.5, "stop": 2.5, "n": 3})
    d = cfg
    for k in where:
        d = d[k]
    d[key] = 1
    refused(cfg, path, hint)


def test_output_section_is_no_longer_silently_accepted():
    cfg = scan_config()
    cfg["output"] = {"anything": 1}
    refused(cfg, "output", "unknown section")


def test_unknown_array_in_the_spectrum_file(tmp_path):
    np.savez(tmp_path / "s.npz", edges=EDGES, counts=np.full((1, 200), 5.0), cmb=np.ones(200))
    cfg = scan_config()
    cfg["spectrum"] = {"file": "s.npz"}
    cfg["_base"] = str(tmp_path)
    refused(cfg, "spectrum.file.cmb", "did you mean 'comb'?")
    cfg["spectrum"] = {"file": "s.npz", "edges": [1.0, 2.0]}  # arrays come from the file
    refused(cfg, "spectrum.edges", "cannot be given with spectrum.file")


def test_order_only_for_polynomials():
    refused(scan_config(background__kind="exponential"), "background.order", "only bernstein")
    refused(scan_config(background__kind="bernstien"), "background.kind", "'bernstein'")
    refused(scan_config(signal__shape="gaus"), "signal.shape", "did you mean 'gauss'?")


# -- 2. types, ranges, the right field ---------------------------------------------------------


@pytest.mark.parametrize(
    ("over", "path", "match"),
    [
        ({"window__lo": "20"}, "window.lo", "must be a number"),
        ({"window__hi": True}, "window.hi", "must be a number"),
        ({"window__lo": 0.0}, "window.lo", "> 0"),
        ({"window__n_bins": True}, "window.n_bins", "integer"),
        ({"window__n_bins": 2.5}, "window.n_bins", "integer"),
        ({"window__n_bins": "5"}, "window.n_bins", "integer"),
        ({"window__n_bins": 10**6}, "window.n_bins", "<= 10_000"),
        ({"signal__rel_res": -0.1}, "signal.rel_res", ">= 0"),  # was reported as rel_eff
        ({"signal__rel_eff": 1.0}, "signal.rel_eff", "< 1"),
        ({"signal__rel_eff": "0.1"}, "signal.rel_eff", "must be a number"),
        ({"signal__conversion": [True]}, "signal.conversion[0]", "must be a number"),
        ({"signal__conversion": [1.0, 2.0]}, "signal.conversion", "needs 1 positive"),
        ({"signal__conversion": [-1.0]}, "signal.conversion[0]", "> 0"),
        ({"signal__interpolation": "cubic"}, "signal.interpolation", "known: linear, pchip"),
        ({"background__order": 13}, "background.order", "<= 12"),
        ({"background__order": 1.5}, "background.order", "integer"),
        ({"background__order": "2"}, "background.order", "integer"),
        ({"window__vetoes": [["2.4", 2.42]]}, "window.vetoes[0][0]", "must be a number"),
        ({"window__vetoes": [2.40, 2.42]}, "window.vetoes[0]", "pair"),
        ({"window__vetoes": [[2.42, 2.40]]}, "window.vetoes[0]", "low < high"),
        ({"scan__cl": []}, "scan.cl", "non-empty"),
        ({"scan__cl": [0.0]}, "scan.cl[0]", "> 0"),
        ({"scan__cl": [0.9, 1.0]}, "scan.cl[1]", "< 1"),
        ({"scan__cl": ["0.95"]}, "scan.cl[0]", "must be a number"),
        ({"scan__cl": "0.95"}, "scan.cl", "non-empty list"),
        ({"scan__mu_max": -1.0}, "scan.mu_max", ">= 0"),
        ({"scan__mu_max": float("inf")}, "scan.mu_max", "finite"),
        ({"scan__skip_vetoed": 1}, "scan.skip_vetoed", "true or false"),
        ({"scan__masses": ["1.6", 2.0]}, "scan.masses[0]", "must be a number"),
        ({"scan__masses": [True]}, "scan.masses[0]", "must be a number"),
        ({"scan__masses": []}, "scan.masses", "no finite"),
        ({"scan__masses": {"start": "1.5", "stop": 2.5, "n": 3}}, "scan.masses.start", ""),
        ({"scan__masses": {"start": 1.5, "stop": 2.5}}, "scan.masses", "one of n, step"),
        (
            {"scan__masses": {"start": 1.5, "stop": 2.5, "n": 3, "step": 0.1}},
            "scan.masses",
            "only one of n, step",
        ),
        ({"scan__masses": {"start": 1.5, "stop": 2.5, "n": 2.5}}, "scan.masses.n", "integer"),
        ({"scan__masses": {"start": 1.5, "stop": 2.5, "n": 0}}, "scan.masses.n", ">= 1"),
    ],
)
def test_numbers_are_numbers_in_range_and_errors_name_the_field(over, path, match):
    refused(scan_config(**over), path, match)


@pytest.mark.parametrize(
    ("column", "values", "path", "match"),
    [
        ("sigma", ["0.006", 0.008, 0.01], "signal.tables[0].sigma[0]", "must be a number"),
        ("sigma", [0.006, -0.008, 0.01], "signal.tables[0].sigma[1]", "> 0"),
        ("n_l", [1.0, 2.0, 3.0], "signal.tables[0].n_l[0]", "> 1"),
        ("comb_fraction", [0.1, 1.5, 0.2], "signal.tables[0].comb_fraction[1]", "<= 1"),
        ("efficiency", [True, 1.0, 1.0], "signal.tables[0].efficiency[0]", "must be a number"),
        ("unit", [1.0, 1.0], "signal.tables[0].unit", "has 2 entries but mass has 3"),
        ("mass", [1.0, "2.0", 3.0], "signal.tables[0].mass[1]", "must be a number"),
    ],
)
def test_table_columns_are_checked(column, values, path, match):
    cfg = scan_config()
    cfg["signal"]["tables"][0][column] = values
    refused(cfg, path, match)


def test_inline_spectrum_arrays_are_numbers():
    cfg = scan_config()
    cfg["spectrum"]["counts"] = [[5.0] * 199 + [True]]
    refused(cfg, "spectrum.counts[0][199]", "must be a number")
    cfg["spectrum"]["counts"] = [[5.0] * 199 + ["5"]]
    refused(cfg, "spectrum.counts[0][199]", "must be a number")
    cfg["spectrum"]["counts"] = [[5.0] * 200, [5.0] * 10]
    refused(cfg, "spectrum.counts", "ragged")
    cfg["spectrum"]["counts"] = "5"
    refused(cfg, "spectrum.counts", "list of numbers")


def test_spectrum_file_arrays_must_be_numeric(tmp_path):
    np.savez(tmp_path / "s.npz", edges=EDGES.astype(str), counts=np.full((1, 200), 5.0))
    cfg = scan_config()
    cfg["spectrum"] = {"file": "s.npz"}
    cfg["_base"] = str(tmp_path)
    refused(cfg, "spectrum.edges", "must hold numbers")


# -- 3. byte order mark, duplicate keys --------------------------------------------------------


def _toml(cfg: dict) -> str:
    """Minimal TOML writer for the small config (tables of scalars and lists)."""
    lines = []
    for name in ("spectrum", "signal", "background", "window", "scan"):
        lines.append(f"[{name}]")
        for k, v in cfg[name].items():
            if k != "tables":
                lines.append(f"{k} = {json.dumps(v)}")
    for t in cfg["signal"]["tables"]:
        lines.append("[[signal.tables]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in t.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_utf8_byte_order_mark_is_accepted(tmp_path, suffix):
    cfg = scan_config()
    text = _toml(cfg) if suffix == ".toml" else json.dumps(cfg)
    p = tmp_path / f"scan{suffix}"
    p.write_bytes(b"\xef\xbb\xbf" + text.encode())
    loaded = load_config(p)
    assert loaded.pop("_base") == str(tmp_path)
    assert loaded == cfg
    np.testing.assert_array_equal(build_mass_scan(load_config(p))[1], [1.6, 2.0])


def test_duplicate_json_keys_and_bad_encodings_are_refused(tmp_path):
    p = tmp_path / "dup.json"
    p.write_text('{"scan": {"cl": [0.9]}, "scan": {"cl": [0.95]}}')
    with pytest.raises(InvalidScanConfig, match="duplicate key 'scan'"):
        load_config(p)
    p.write_bytes(b'{"scan": "\xff"}')
    with pytest.raises(InvalidScanConfig, match="not UTF-8"):
        load_config(p)
    p.write_text("[" * 100_000)
    with pytest.raises(InvalidScanConfig, match="not valid"):
        load_config(p)


# -- 4. size bounds before computing -----------------------------------------------------------


def test_uniform_mass_count_is_bounded_before_allocating():
    err = refused(
        scan_config(scan__masses={"start": 1.0, "stop": 2.0, "n": 1e13}),
        "scan.masses.n",
        f"<= {MAX_HYPOTHESES:_}",
    )
    assert "MemoryError" not in str(err)
    refused(
        scan_config(scan__masses={"start": 1.0, "stop": 2.0, "step": 1e-12}),
        "scan.masses.step",
        "more than the limit",
    )
    # a whole float is an integer (JSON writers emit 3.0)
    _, masses, _ = build_mass_scan(scan_config(scan__masses={"start": 1.6, "stop": 2.2, "n": 3.0}))
    np.testing.assert_allclose(masses, [1.6, 1.9, 2.2])


def test_tiny_step_sigma_is_refused_at_once():
    t0 = time.perf_counter()
    refused(
        scan_config(scan__masses={"start": 1.5, "stop": 2.5, "step_sigma": 1e-9}),
        "scan.masses.step_sigma",
        "more than the limit",
    )
    assert time.perf_counter() - t0 < 5.0


def test_step_sigma_masses_match_the_table_arithmetic():
    """The host loop gives exactly the masses of the former one-jitted-call-per-step loop."""
    import jax

    from jaxlike.shapes import MassTable

    for kind in ("linear", "pchip"):
        table = MassTable(
            [0.2, 1.0, 2.5, 5.0, 9.7], {"sigma": [0.004, 0.007, 0.014, 0.028, 0.053]}, kind=kind
        )
        masses = scan_masses({"masses": {"start": 0.2, "stop": 8.9, "step_sigma": 2.0}}, table)
        sig = jax.jit(lambda x, t=table: t(x)["sigma"])
        ref = [0.2]
        while ref[-1] + 2.0 * float(sig(ref[-1])) <= 8.9 + 1e-12:
            ref.append(ref[-1] + 2.0 * float(sig(ref[-1])))
        assert 100 < len(ref) < 2000
        np.testing.assert_array_equal(masses, ref)


def test_spectrum_file_claiming_a_huge_array_is_refused_before_reading(tmp_path):
    header = tmp_path / "h.npy"
    with open(header, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
        )
    with zipfile.ZipFile(tmp_path / "s.npz", "w") as z:
        z.write(header, "counts.npy")
    cfg = scan_config()
    cfg["spectrum"] = {"file": "s.npz"}
    cfg["_base"] = str(tmp_path)
    refused(cfg, "spectrum.file", "larger than the limit")


# -- 5. files ----------------------------------------------------------------------------------


def test_spectrum_file_is_relative_to_the_config_folder(tmp_path, monkeypatch):
    folder = tmp_path / "cfg"
    folder.mkdir()
    np.savez(folder / "s.npz", edges=EDGES, counts=np.full((1, 200), 5.0))
    cfg = scan_config()
    cfg["spectrum"] = {"file": "s.npz"}
    (folder / "scan.json").write_text(json.dumps(cfg))
    monkeypatch.chdir(tmp_path)  # elsewhere
    assert build_mass_scan(load_config("cfg/scan.json"))[1].size == 2
    # absolute paths and ".." are taken as written (documented)
    cfg["spectrum"] = {"file": str(folder / "s.npz")}
    assert build_mass_scan(dict(cfg, _base="/nonexistent"))[1].size == 2
    cfg["spectrum"] = {"file": "../cfg/s.npz"}
    assert build_mass_scan(dict(cfg, _base=str(folder)))[1].size == 2


@pytest.mark.parametrize("kind", ["fifo", "dev", "folder", "missing", "not_npz"])
def test_special_spectrum_files_are_refused_without_opening(tmp_path, kind):
    target = {
        "fifo": tmp_path / "pipe.npz",
        "dev": "/dev/zero",
        "folder": tmp_path,
        "missing": tmp_path / "nope.npz",
        "not_npz": tmp_path / "text.npz",
    }[kind]
    if kind == "fifo":
        os.mkfifo(target)
    if kind == "not_npz":
        target.write_text("hello")
    cfg = scan_config()
    cfg["spectrum"] = {"file": str(target)}
    with deadline(20):
        err = refused(cfg, "spectrum.file")
    word = {"fifo": "not a regular file", "dev": "not a regular file", "folder": "is a folder"}
    assert word.get(kind, "") in str(err)


def test_config_file_itself_must_be_regular(tmp_path):
    fifo = tmp_path / "scan.toml"
    os.mkfifo(fifo)
    with deadline(20), pytest.raises(InvalidScanConfig, match="not a regular file"):
        load_config(fifo)
    with pytest.raises(InvalidScanConfig, match="is a folder"):
        load_config(tmp_path)


# -- the command line: one line, exit 2 ---------------------------------------------------------


def test_cli_scan_typo_is_one_line_and_exit_2(tmp_path, capsys):
    cfg = scan_config()
    cfg["window"]["bins"] = cfg["window"].pop("n_bins")
    p = tmp_path / "scan.json"
    p.write_text(json.dumps(cfg))
    code = main(["scan", str(p), "-o", str(tmp_path / "o.h5"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "window.bins: unknown key; did you mean 'n_bins'?" in err
    assert not (tmp_path / "o.h5").exists()


# -- the posterior job configuration -----------------------------------------------------------

WS = {
    "channels": [{"name": "c", "samples": [
        {"name": "s", "data": [20.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
        {"name": "b", "data": [50.0], "modifiers": []}]}],
    "observations": [{"name": "c", "data": [75.0]}],
    "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
    "version": "1.0.0",
}  # fmt: skip


def posterior_config(tmp_path, **over) -> dict:
    (tmp_path / "ws.json").write_text(json.dumps(WS))
    cfg = {
        "model": {"workspace": "ws.json"},
        "sampler": {"chains": 2, "warmup": 10, "samples": 10, "seed": 0},
        "priors": {"mu": {"type": "truncated_normal", "loc": 1.0, "scale": 2.0}},
        "report": {"parameters": ["mu"], "hdi": [0.68], "reference": {"mu": 1.0}},
        "variant": [{"name": "flat", "priors": {"mu": {"type": "uniform"}}}],
        "_base": str(tmp_path),
    }
    for key, value in over.items():
        section, field = key.split("__")
        cfg[section][field] = value
    return cfg


def test_posterior_config_valid(tmp_path):
    cfg = load_posterior_config(posterior_config(tmp_path))
    assert cfg["sampler"] == {"num_chains": 2, "num_warmup": 10, "num_samples": 10, "seed": 0}
    assert [name for name, _ in cfg["variants"]] == ["flat"]


@pytest.mark.parametrize(
    ("change", "path", "match"),
    [
        ({"modell": {}}, "modell", "did you mean 'model'?"),
        ({"model": {"workspace": "ws.json", "measurment": "m"}}, "model.measurment", "'measurement'"),
        ({"model": {"workspace": 3}}, "model.workspace", "string"),
        ({"sampler": {"chain": 2}}, "sampler.chain", "did you mean 'chains'?"),
        ({"sampler": {"chains": "4"}}, "sampler.chains", "positive integer"),
        ({"sampler": {"chains": True}}, "sampler.chains", "positive integer"),
        ({"sampler": {"chains": 10**6}}, "sampler.chains", "<= 1_024"),
        ({"sampler": {"samples": 10**9}}, "sampler.samples", "<= 10_000_000"),
        ({"sampler": {"seed": -1}}, "sampler.seed", ">= 0"),
        ({"sampler": {"target_accept": 1.5}}, "sampler.target_accept", "< 1"),
        ({"sampler": {"dense_mass": "yes"}}, "sampler.dense_mass", "auto"),
        ({"priors": {"mu": {"type": "truncated_normal", "scal": 1}}}, "priors.mu.scal", "'scale'"),
        ({"priors": {"mu": {"type": "truncated_normal", "loc": "1"}}}, "priors.mu.loc", "number"),
        ({"priors": {"mu": {"type": "truncated_normal", "scale": 0}}}, "priors.mu.scale", "> 0"),
        ({"priors": {"mu": {"type": "uniform", "low": 2, "high": 1}}}, "priors.mu.high", "exceed"),
        ({"priors": {"mu": {"type": "uniform", "low": float("nan")}}}, "priors.mu.low", "finite"),
        ({"priors": {"mu": {"type": "unifrom"}}}, "priors.mu.type", "did you mean 'uniform'?"),
        ({"report": {"hdis": [0.68]}}, "report.hdis", "did you mean 'hdi'?"),
        ({"report": {"hdi": [True]}}, "report.hdi[0]", "number"),
        ({"report": {"hdi": [0.68, 1]}}, "report.hdi[1]", "< 1"),
        ({"report": {"reference": {"mu": "1"}}}, "report.reference.mu", "number"),
        ({"report": {"parameters": ["mu", "mu"]}}, "report.parameters", "repeated"),
        ({"variant": [{"name": "a", "prior": {}}]}, "variant[0].prior", "did you mean 'priors'?"),
        ({"variant": [{"name": "a"}, {"name": "A"}]}, "variant[1].name", "already used"),
        ({"variant": [{"name": "nominal"}]}, "variant[0].name", "the nominal run"),
        ({"variant": [{"name": "x" * 65}]}, "variant[0].name", "1 to 64"),
        ({"variant": {"name": "a"}}, "variant", "list of tables"),
    ],
)
def test_posterior_config_is_strict(tmp_path, change, path, match):
    cfg = posterior_config(tmp_path)
    cfg.update(change)
    with pytest.raises(InvalidPosteriorConfig) as err:
        load_posterior_config(cfg)
    assert err.value.path == path, str(err.value)
    assert match in str(err.value), str(err.value)
    # both families catch it
    assert isinstance(err.value, InvalidScanConfig) and isinstance(err.value, InvalidBayesConfig)


@pytest.mark.parametrize("kind", ["fifo", "dev", "missing"])
def test_posterior_workspace_must_be_a_regular_file(tmp_path, kind):
    cfg = posterior_config(tmp_path)
    name = {"fifo": str(tmp_path / "pipe.json"), "dev": "/dev/zero", "missing": "nope.json"}[kind]
    if kind == "fifo":
        os.mkfifo(name)
    cfg["model"] = {"workspace": name}
    with deadline(20), pytest.raises(InvalidPosteriorConfig) as err:
        load_posterior_config(cfg)
    assert err.value.path == "model.workspace"
    cfg["model"] = {"belle2_wet": str(tmp_path / "ws.json")}
    with pytest.raises(InvalidPosteriorConfig, match="not a folder"):
        load_posterior_config(cfg)


def test_posterior_file_with_bom_and_relative_workspace(tmp_path, monkeypatch):
    cfg = posterior_config(tmp_path)
    del cfg["_base"]
    p = tmp_path / "post.json"
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps(cfg).encode())
    monkeypatch.chdir("/")
    loaded = load_posterior_config(p)
    assert loaded["base"] == tmp_path


def test_cli_posterior_typo_is_one_line_and_exit_2(tmp_path, capsys):
    cfg = posterior_config(tmp_path)
    cfg["sampler"]["chain"] = cfg["sampler"].pop("chains")
    del cfg["_base"]
    p = tmp_path / "post.json"
    p.write_text(json.dumps(cfg))
    assert main(["posterior", str(p), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "sampler.chain: unknown setting; did you mean 'chains'?" in err


# -- 6. atomic writes through unique temporary files ------------------------------------------


def test_atomic_write_ignores_a_planted_symlink_at_the_old_name(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    # the former predictable temporary name of summary.json
    (tmp_path / ".summary.tmp.json").symlink_to(victim)
    _atomic(tmp_path / "summary.json", lambda p: p.write_text('{"ok": 1}'))
    assert victim.read_text() == "precious"
    assert json.loads((tmp_path / "summary.json").read_text()) == {"ok": 1}
    assert not (tmp_path / "summary.json").is_symlink()
    leftovers = {p.name for p in tmp_path.iterdir()} - {
        "victim.txt", ".summary.tmp.json", "summary.json"
    }  # fmt: skip
    assert not leftovers
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "summary.json").stat().st_mode) == 0o666 & ~mask


def test_atomic_write_cleans_up_and_keeps_the_old_file_on_failure(tmp_path):
    dest = tmp_path / "corner.png"
    dest.write_text("old")

    def broken(p):
        assert p.suffix == ".png" and p.parent == tmp_path  # same folder, same format
        p.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(dest, broken)
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["corner.png"]


def test_concurrent_atomic_writes_do_not_collide(tmp_path):
    dest = tmp_path / "summary.json"
    seen, errors = [], []

    def writer(i):
        def write(p):
            seen.append(p.name)
            time.sleep(0.05)  # both temporaries exist at once
            p.write_text(json.dumps({"writer": i, "pad": "x" * 10_000}))

        try:
            atomic_write(dest, write)
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(seen)) == 4
    assert json.loads(dest.read_text())["writer"] in range(4)
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


# -- 7. unique figure names --------------------------------------------------------------------


def test_file_stems_are_unique():
    assert file_stems(["SR/1", "SR_1", "sr_1", "CR"]) == ["SR_1", "SR_1-2", "sr_1-3", "CR"]
    # a suffixed name never takes another channel's name
    assert file_stems(["a b", "a_b", "a_b-2"]) == ["a_b", "a_b-3", "a_b-2"]
    assert unique_names(["x", "x", "x"]) == ["x", "x-2", "x-3"]


def test_channels_with_the_same_safe_name_get_distinct_figures(tmp_path):
    from jaxlike.plotting import plot_all_yields

    def channel(_):
        return {
            "samples": ["s"],
            "yields": [np.array([1.0, 2.0])],
            "total": np.array([1.0, 2.0]),
            "total_uncertainty": np.array([0.1, 0.2]),
            "data": np.array([1.0, 2.0]),
        }

    table = SimpleNamespace(kind="prefit", channels=("SR/a", "SR:a", "CR"), channel=channel)
    paths = plot_all_yields(table, tmp_path)
    names = [p.name for p in paths]
    assert names == ["SR_a_prefit.png", "SR_a-2_prefit.png", "CR_prefit.png"]
    assert all(p.stat().st_size > 0 for p in paths)


# -- jaxlike grid options ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["C:0:1:0", "C:0:1:1000001", "C:nan:1:5", "C:0:inf:5", "C:1:0:5", ":0:1:5", "C:0:1:x"]
)
def test_grid_axis_is_strict(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_axis(text)


def test_grid_assignments_are_strict():
    import argparse

    assert parse_assignments("A=1, B=2") == {"A": 1.0, "B": 2.0}
    for text in ("A=nan", "A=1,A=2", " =1", "A=inf", "A"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_assignments(text)


# -- the bundled examples still load ----------------------------------------------------------


@pytest.mark.parametrize("name", ["alp-mgg", "bka", "zprime"])
def test_bundled_examples_pass_the_strict_loader(tmp_path, name):
    from jaxlike.examples._scans import SCAN_EXAMPLES

    path = SCAN_EXAMPLES[name](tmp_path)
    scan, masses, cl = build_mass_scan(load_config(path))
    assert masses.size > 10 and all(0 < x < 1 for x in cl)


def test_every_error_is_a_jaxlike_error():
    assert issubclass(InvalidPosteriorConfig, JaxlikeError)
    cfg = copy.deepcopy(scan_config())
    cfg["scan"]["cl"] = [0.95, "x"]
    with pytest.raises(JaxlikeError):
        build_mass_scan(cfg)
