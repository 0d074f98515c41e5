"""The API reference builds from the docstrings, and every public name has one.

``docs/architecture.md`` gives the command; this test builds the same reference (pdoc) into a
temporary folder on every run, so a broken docstring or an undocumented public name fails CI.
"""

from __future__ import annotations

import importlib
import inspect
import pathlib
import warnings

import pytest

import jaxlike

PACKAGES = (
    "jaxlike",
    "jaxlike.exceptions",
    "jaxlike.linalg",
    "jaxlike.stream",
    "jaxlike.model",
    "jaxlike.shapes",
    "jaxlike.workspace",
    "jaxlike.physics",
    "jaxlike.fit",
    "jaxlike.infer",
    "jaxlike.analysis",
    "jaxlike.bayes",
    "jaxlike.parametric",
    "jaxlike.scan",
    "jaxlike.plotting",
    "jaxlike.jobs",
)


def test_public_packages_are_listed():
    root = pathlib.Path(jaxlike.__file__).parent
    found = {f"jaxlike.{p.name}" for p in root.iterdir() if (p / "__init__.py").exists()}
    missing = found - set(PACKAGES) - {"jaxlike.cli", "jaxlike.examples"}
    assert not missing, f"add these packages to the API reference: {sorted(missing)}"


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_has_a_docstring(name):
    mod = importlib.import_module(name)
    assert (mod.__doc__ or "").strip(), f"{name} has no module docstring"
    missing = []
    for attr in getattr(mod, "__all__", ()):
        obj = getattr(mod, attr)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            if not (inspect.getdoc(obj) or "").strip():
                missing.append(attr)
    assert not missing, f"{name}: public names without a docstring: {missing}"


def test_api_reference_builds(tmp_path):
    import pdoc
    import pdoc.render

    pdoc.render.configure(docformat="restructuredtext")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pdoc's notes on third-party annotations
        pdoc.pdoc(*PACKAGES, output_directory=tmp_path)
    for name in PACKAGES:
        page = tmp_path / (name.replace(".", "/") + ".html")
        assert page.is_file() and page.stat().st_size > 1000, f"no API page for {name}"
    assert "likelihood contract" in (tmp_path / "jaxlike/model.html").read_text().lower()
