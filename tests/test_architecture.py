"""The package's architecture, checked over the source (AST): imports run one way.

Layers, lowest first (``docs/architecture.md`` says what goes where). A module may import
from its own package, from lower layers, and never from its own layer's other packages or from
a higher one — function-local imports included. Across packages only public names of the
package (``jaxlike.fit.minimize``, not ``jaxlike.fit._newton.minimize``) may be imported or
used as attributes, and no layer probes a model with ``getattr``/``hasattr``: what a model
offers is the contract :class:`jaxlike.model.Likelihood`.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "jaxlike"

LAYERS = (
    ("exceptions", "_strict", "_compile"),
    ("linalg", "stream"),
    ("model", "shapes"),
    ("workspace", "physics"),
    ("fit",),
    ("infer",),
    ("analysis", "bayes", "parametric"),
    ("scan",),
    ("plotting",),
    ("jobs", "examples"),
    ("cli",),
    ("__main__",),
)
RANK = {pkg: r for r, layer in enumerate(LAYERS) for pkg in layer}


def _package(path: pathlib.Path) -> str | None:
    """Top-level package (or root module) of a source file; None for ``jaxlike/__init__.py``."""
    rel = path.relative_to(ROOT)
    if rel.parts == ("__init__.py",):
        return None
    return rel.parts[0].removesuffix(".py")


def _module(path: pathlib.Path) -> list[str]:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = ["jaxlike", *rel.parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def _sources():
    return sorted(ROOT.rglob("*.py"))


def _imports(path: pathlib.Path):
    """(line, target module parts, imported names) of every import of jaxlike in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module(path)
    is_init = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_init else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [])
            else:
                target = (node.module or "").split(".")
            if target[0] != "jaxlike":
                continue
            yield node.lineno, target, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "jaxlike":
                    yield node.lineno, a.name.split("."), []


def _edges():
    """(source file, line, from package, to package, target, names) of every cross-package
    import; a ``from jaxlike import sub`` counts as an import of ``sub``."""
    out = []
    for path in _sources():
        src = _package(path)
        if src is None:
            continue
        for line, target, names in _imports(path):
            if len(target) == 1:
                for n in names:
                    dst = n if n in RANK else "jaxlike"
                    if dst != src:
                        out.append((path, line, src, dst, target + [n], []))
                continue
            dst = target[1]
            if dst != src:
                out.append((path, line, src, dst, target, names))
    return out


def test_every_package_has_a_layer():
    found = {_package(p) for p in _sources()} - {None}
    assert not found - set(RANK), f"packages without a layer in LAYERS: {found - set(RANK)}"


def test_imports_follow_the_layer_order():
    bad = []
    for path, line, src, dst, target, _ in _edges():
        if dst == "jaxlike":  # the package root (``__version__``): top layer only
            ok = RANK[src] >= RANK["jobs"]
        else:
            ok = RANK[dst] < RANK[src]
        if not ok:
            rel = path.relative_to(ROOT.parent)
            bad.append(f"{rel}:{line}: {src} imports {'.'.join(target)}")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_import_cycle_between_packages():
    graph: dict[str, set[str]] = {}
    for _, _, src, dst, _, _ in _edges():
        graph.setdefault(src, set()).add(dst)
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*stack, node, nxt]))
            if nxt not in state:
                visit(nxt, [*stack, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_no_private_name_imported_across_packages():
    bad = []
    for path, line, src, dst, target, names in _edges():
        private_module = any(p.startswith("_") and not p.startswith("__") for p in target[2:])
        private_names = [n for n in names if n.startswith("_") and not n.startswith("__")]
        if private_module or private_names:
            rel = path.relative_to(ROOT.parent)
            bad.append(f"{rel}:{line}: {'.'.join(target)} {private_names or ''}")
    assert not bad, "private names used across packages:\n" + "\n".join(bad)


def _private_defined(paths) -> set[str]:
    """Private names a package defines: functions, classes, attributes and assignments."""
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_no_private_attribute_of_another_package():
    """``obj._name`` is allowed only where ``_name`` is defined in the same package."""
    by_pkg: dict[str, list[pathlib.Path]] = {}
    for path in _sources():
        by_pkg.setdefault(_package(path) or "jaxlike", []).append(path)
    bad = []
    for pkg, paths in by_pkg.items():
        own = _private_defined(paths)
        for path in paths:
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Attribute):
                    continue
                attr = node.attr
                if not attr.startswith("_") or attr.startswith("__") or attr in own:
                    continue
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    continue
                base = ast.unparse(node.value)
                if base.split(".")[0] in ("np", "jnp", "jax", "os", "sys", "h5py", "eqx"):
                    continue  # third-party internals are not ours to police here
                bad.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: {base}.{attr}")
    assert not bad, "private attributes of another package:\n" + "\n".join(bad)


def test_no_getattr_probing_of_models():
    bad = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr")
                and node.args
            ):
                continue
            subject = ast.unparse(node.args[0]).lower()
            if "model" in subject or subject in ("cfg", "config") or subject.endswith(".config"):
                bad.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: {ast.unparse(node)}")
    assert not bad, "models probed with getattr/hasattr:\n" + "\n".join(bad)
