"""The API reference builds from the docstrings, and every public name has one.

``docs/architecture.md`` (and README.md) give the command; this test runs it (pdoc's command
line, in this process) into a temporary folder on every run, so a broken docstring, an
undocumented public name or a stale command fails CI.
"""

from __future__ import annotations

import glob
import importlib
import inspect
import os
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


#: the documented command (docs/architecture.md, README.md "Architecture"), run by the test below
PDOC_COMMAND = (
    "pip install pdoc && pdoc jaxlike jaxlike/[!_]*/ -o docs/api --docformat restructuredtext"
)


def test_api_reference_builds(tmp_path):
    import pdoc.__main__

    root = pathlib.Path(__file__).resolve().parents[1]
    for doc in (root / "docs" / "architecture.md", root / "README.md"):
        assert PDOC_COMMAND in " ".join(doc.read_text(encoding="utf-8").split()), doc.name
    install, _, command = PDOC_COMMAND.partition(" && ")
    assert install == "pip install pdoc"  # pdoc is in the test extra
    (tmp_path / "jaxlike").symlink_to(root / "jaxlike")  # a repository root that writes here
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        argv = [a for arg in command.split()[1:] for a in sorted(glob.glob(arg)) or [arg]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pdoc's notes on third-party annotations
            pdoc.__main__.cli(argv)
    finally:
        os.chdir(cwd)
    out = tmp_path / "docs" / "api"
    for name in PACKAGES:
        page = out / (name.replace(".", "/") + ".html")
        assert page.is_file() and page.stat().st_size > 1000, f"no API page for {name}"
    assert "likelihood contract" in (out / "jaxlike/model.html").read_text().lower()
