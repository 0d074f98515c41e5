"""Execute the notebooks in ``notebooks/`` top to bottom in fast mode (``JAXLIKE_NB_FAST=1``).

The kernel is ``python3`` of the running interpreter's environment (ipykernel in the venv);
``JAXLIKE_DATA`` points the Belle II notebook at the shared data folder.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from conftest import BELLE2, DATA  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture
def fast_env(monkeypatch):
    """Environment the kernel inherits: fast mode, the data folder, this interpreter first."""
    monkeypatch.setenv("JAXLIKE_NB_FAST", "1")
    monkeypatch.setenv("JAXLIKE_DATA", str(DATA))
    bindir = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", bindir + os.pathsep + os.environ.get("PATH", ""))


def run_notebook(name: str) -> str:
    """Execute ``notebooks/<name>`` with cwd notebooks/; returns all stream output."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    text = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"{name}: {out.get('ename')}: {out.get('evalue')}"
            if out.output_type == "stream" and out.name == "stdout":
                text.append(out.text)
    return "".join(text)


def number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in output:\n{text}"
    return float(m.group(1))


@pytest.mark.skipif(not BELLE2.exists(), reason="Belle II likelihood not available")
def test_belle2_notebook(fast_env):
    text = run_notebook("01_pyhf_to_jaxlike_belle2.ipynb")
    assert abs(number(r"difference\s+=\s+(\S+)", text)) < 1e-8
    assert number(r"mu_hat = ([-\d.]+) \+-", text) == pytest.approx(4.599, abs=2e-3)
    assert "converged = True" in text
    cls_jaxlike = number(r"jaxlike: CLs_obs = ([\d.]+)", text)
    assert 0.0 < cls_jaxlike < 1.0
    assert number(r"pyhf:    CLs_obs = ([\d.]+)", text) == pytest.approx(cls_jaxlike, abs=1e-4)
    assert number(r"pyhf:    mu_hat = ([-\d.]+)", text) == pytest.approx(4.599, abs=2e-3)
    assert number(r"upper limit on mu: observed ([\d.]+)", text) > 4.599
    assert "mu_bkg_charged" in text  # top of the ranking


@pytest.mark.slow  # ~7 min of CI: the scan, the LEE toys and the figures it runs are covered by
# tests/test_examples_scans.py (the ALP example scan), tests/test_lee.py and test_plotting_cli.py
def test_alp_notebook(fast_env):
    text = run_notebook("02_alp_mass_scan.ipynb")
    assert "all fits converged: True" in text
    n = int(number(r"(\d+) mass hypotheses", text))
    assert number(r"rows done: (\d+)/", text) == n
    assert 0.0 < number(r"global p = ([\d.]+)", text) <= 1.0


@pytest.mark.slow  # ~3 min of CI: the rate checks, NUTS posterior and profile map it runs are
# covered by tests/test_wet.py, test_bayes_job.py, test_bayes_nuts.py and test_grid.py
@pytest.mark.skipif(not BELLE2.exists(), reason="Belle II likelihood not available")
def test_wet_notebook(fast_env):
    text = run_notebook("03_wet_posterior.ipynb")
    assert number(r"B_SM = (\S+)", text) == pytest.approx(4.8117e-6, rel=1e-4)
    assert number(r"null integral = (\S+)", text) == pytest.approx(4.966e-6, rel=1e-3)
    assert number(r"Delta\(14,0,0\) = ([\d.]+)", text) == pytest.approx(7.28, abs=0.1)
    assert number(r"Delta\(0,0,8.21\) = ([\d.]+)", text) == pytest.approx(3.75, abs=0.1)
    assert "239 parameters" in text
    assert "converged: True" in text
    assert "profile grid" in text and "|C_T| 95% HDI" in text


@pytest.mark.slow  # ~3 min of CI: the grid scans, coupling bands and whole-grid toys it runs are
# covered by tests/test_counting_grid.py and tests/test_dark_higgs.py
def test_dark_higgs_notebook(fast_env):
    text = run_notebook("04_dark_higgs_grid.ipynb")
    assert "900 points = 45 masses x 20 lifetimes" in text
    assert "all converged: True" in text and "converged: True" in text
    assert number(r"largest local Z = ([\d.]+) at m = 1.42", text) > 3.0
    assert number(r"excluded band at (\d+) of", text) > 5
    # 20 toys in fast mode: none may beat a local 3σ (p = 0 ± 1/20); 1000 give 0.007 ± 0.003
    assert 0.0 <= number(r"global p = ([\d.]+)", text) <= 1.0
    assert number(r"failed fits: (\d+)", text) == 0


@pytest.mark.slow  # ~2 min of CI: the grid scan and g_aW limits are covered by
# tests/test_bka_lifetime.py and tests/test_counting_grid.py
def test_bka_lifetime_notebook(fast_env):
    text = run_notebook("05_bka_lifetime_grid.ipynb")
    assert "741 points = 39 masses x 19 lifetimes" in text
    assert number(r"max \|ε/ε_true − 1\| = ([\d.]+)", text) < 0.05
    assert "all converged: True" in text
    assert number(r"g_aW excluded at (\d+) of", text) == 13
    assert 0.7 < number(r"Bayesian / CLs limits: ([\d.]+)", text) <= 1.0


@pytest.mark.slow  # ~1 min: the two segmented scans it runs are covered by
# tests/test_readme.py::test_main_job (the envelope scan), tests/test_segments.py and
# tests/test_envelope.py (envelope = single model for one model, certificates, coverage)
def test_alp_envelope_notebook(fast_env):
    text = run_notebook("06_alp_envelope.ipynb")
    assert "{'gg': 58, 'recoil': 21} mass hypotheses per segment" in text
    assert text.count("converged: True") == 2
    assert "envelope models: ('order-1', 'nominal', 'order+1')" in text
    assert 0.9 < number(r"median expected-limit ratio envelope/single = ([\d.]+)", text) < 1.1
    assert 0.8 < number(r"median observed-limit ratio envelope/single = ([\d.]+)", text) < 1.25
    chosen = re.search(r"chosen for the limit: order-1 (\d+), nominal (\d+), order\+1 (\d+)", text)
    assert chosen and sum(int(x) for x in chosen.groups()) == 79
