"""The package's layer order and its private-name boundary, read from the source.

Every module under ``jaxmlp/`` is parsed with :mod:`ast` (imports inside
functions included; relative imports resolved), and each import of a jaxmlp
module is checked against the layer order of DESIGN.md §6:

    utils < graph < descriptors < models < observables
          < {hessians, calculator, serialization, io, testing} < analysis
          < data < training < md < validation < workflows < bench

(DESIGN.md puts ``analysis`` in one rank with ``hessians`` and
``calculator``; it sits just above them because the locality test consumes
Hessians: it reads :class:`jaxmlp.hessians.SparseHessian`, takes reference
Hessians from :func:`jaxmlp.hessians.fd_hessian` and the analytic one from a
:class:`jaxmlp.Calculator`.  Nothing below imports ``analysis``.  DESIGN.md
also puts ``data`` and ``training`` in one rank; ``training`` sits above
``data`` because the training loop consumes :class:`jaxmlp.data.Dataset`;
nothing in ``data`` imports ``training``.)

A module may import only packages of a strictly lower rank (two different
packages of the same rank may not import each other); imports inside one
package are free.  No private name (``_x``) is imported across a package
boundary.  ``jaxmlp/__init__.py`` (the curated public namespace) is exempt.

``import jaxmlp`` followed by ``jaxmlp.data.read(...)`` counts as an import of
``jaxmlp.data`` at the line of the attribute access; a name imported from the
top-level namespace (``from jaxmlp import Calculator``) counts as an import of
the package that defines it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "jaxmlp"

#: rank of each top-level package or module of jaxmlp (lower = more basic)
LAYERS = {
    "utils": 0,
    "graph": 1,
    "descriptors": 2,
    "models": 3,
    "observables": 4,
    "hessians": 5,
    "calculator": 5,
    "serialization": 5,
    "io": 5,
    "testing": 5,  # the model contract kit (check_model): graph, models, observables
    "analysis": 5.5,
    "data": 6,
    "training": 6.5,
    "md": 6.6,  # jitted MD: models, observables, graph rebuilds
    "validation": 6.8,  # MD stability, RDFs, force outliers: md, data, training metrics
    "workflows": 6.9,  # end-to-end recipes (fragment-to-bulk training): analysis, data, training, validation
    "bench": 7,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _top_level_origins() -> dict[str, str]:
    """``{name: module}`` for names bound in ``jaxmlp/__init__.py`` by ``from .x import name``."""
    tree = ast.parse((PKG / "__init__.py").read_text())
    origins = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _resolve_from("jaxmlp", True, node)
            for alias in node.names:
                origins[alias.asname or alias.name] = base
    return origins


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module if is_package else module.rpartition(".")[0]
    parts = package.split(".")
    if node.level > 1:
        parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _imports(path: Path, text: str | None = None):
    """``(line, target module, imported name or None)`` for each jaxmlp import in ``path``."""
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text() if text is None else text, filename=str(path))
    origins = None
    aliases_of_root = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "jaxmlp" or alias.name.startswith("jaxmlp."):
                    if alias.name == "jaxmlp" or alias.asname is None:
                        # ``import jaxmlp`` / ``import jaxmlp.x``: binds the root name
                        aliases_of_root.add(alias.asname or "jaxmlp")
                    if alias.name != "jaxmlp":
                        yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(module, is_package, node)
            if base != "jaxmlp" and not base.startswith("jaxmlp."):
                continue
            for alias in node.names:
                dotted = f"{base}.{alias.name}"
                if _is_module(dotted):
                    yield node.lineno, dotted, None
                elif base == "jaxmlp":
                    if origins is None:
                        origins = _top_level_origins()
                    yield node.lineno, origins.get(alias.name, "jaxmlp"), alias.name
                else:
                    yield node.lineno, base, alias.name
    if aliases_of_root:
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases_of_root
            ):
                dotted = f"jaxmlp.{node.attr}"
                if _is_module(dotted):
                    yield node.lineno, dotted, None
                else:
                    if origins is None:
                        origins = _top_level_origins()
                    yield node.lineno, origins.get(node.attr, "jaxmlp"), node.attr


def _package(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else None


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


SOURCES = sorted(p for p in PKG.rglob("*.py") if p != PKG / "__init__.py")


def _where(path, line):
    return f"{path.relative_to(ROOT)}:{line}"


def test_every_package_has_a_layer():
    unknown = sorted({_package(_module_name(p)) for p in SOURCES} - set(LAYERS))
    assert not unknown, f"packages missing from the layer order in tests/test_layers.py: {unknown}"


def test_parser_sees_lazy_and_relative_imports():
    """The checker itself: imports inside functions, relative levels, ``jaxmlp.x`` attributes."""
    src = PKG / "training" / "metrics.py"
    found = {(target, name) for _, target, name in _imports(src)}
    assert ("jaxmlp.observables", None) in found  # from .. import observables
    assert ("jaxmlp.calculator", "Calculator") in found  # lazy, inside a function
    assert _resolve_from("jaxmlp.graph.build", False, ast.parse("from .neighbours import x").body[0]) == (
        "jaxmlp.graph.neighbours"
    )
    assert _resolve_from("jaxmlp.graph", True, ast.parse("from ..utils import y").body[0]) == "jaxmlp.utils"


def _violations(sources=None):
    """Layer and private-name violations as ``"file:line: ..."`` strings.

    ``sources``: ``{path: text}`` to check instead of the package's files.
    """
    layer, private = [], []
    for path, text in (sources or {p: None for p in SOURCES}).items():
        here = _package(_module_name(path))
        for line, target, name in _imports(path, text):
            there = _package(target)
            if there is None or there == here:
                continue
            if here not in LAYERS or there not in LAYERS:
                layer.append(f"{_where(path, line)}: {here} imports {target}; a package without a layer")
            elif LAYERS[there] >= LAYERS[here]:
                what = f"{target}.{name}" if name else target
                layer.append(
                    f"{_where(path, line)}: {here} (layer {LAYERS[here]}) imports {what} (layer {LAYERS[there]})"
                )
            parts = target.split(".") + ([name] if name else [])
            if any(_is_private(p) for p in parts):
                private.append(f"{_where(path, line)}: {here} imports private {'.'.join(parts)}")
    return layer, private


def test_layer_order():
    layer, _ = _violations()
    assert not layer, "imports against the layer order:\n" + "\n".join(layer)


def test_no_private_names_cross_packages():
    _, private = _violations()
    assert not private, "private names imported across packages:\n" + "\n".join(private)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from ..data import read\n", "layer"),
        ("def f():\n    from jaxmlp.observables import energy\n", "layer"),
        ("import jaxmlp\n\ndef f():\n    return jaxmlp.bench\n", "layer"),
        ("from jaxmlp import Calculator\n", "layer"),
        ("from ..hessians import sparse_hessian\n", "layer"),
        ("from ..graph.neighbours import _complete_box\n", "private"),
        ("from .base import _x\n", None),
        ("from ..graph import atoms_to_graph\nfrom .. import descriptors\n", None),
    ],
)
def test_checker_catches_violations(source, expected):
    """A planted import in a fake ``jaxmlp/models`` module is reported (a fine one is not)."""
    fake = PKG / "models" / "probe.py"
    layer, private = _violations({fake: source})
    if expected is None:
        assert not layer and not private, (layer, private)
    else:
        found = layer if expected == "layer" else private
        assert found and found[0].startswith("jaxmlp/models/probe.py:"), (layer, private)
