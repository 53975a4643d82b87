"""No import cycles inside ``pcdiff`` (issue #15): a static check of every ``pcdiff.*`` import.

Every module under ``pcdiff/`` is parsed with :mod:`ast` (nothing is imported). Each ``import pcdiff.x``
or ``from pcdiff.x import y`` / ``from .x import y`` statement, at module level or inside a function,
gives an edge from the module to the most specific module it names (``pcdiff.x.y`` when ``y`` is a
submodule, else ``pcdiff.x``). A cycle is a strongly connected component of that graph with more than
one module; a function-level import breaks a cycle at run time but not in this check, on purpose.
Imports by name (``importlib.import_module("pcdiff...")``, the metric registry's plugins) are not seen.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "pcdiff"


def module_names(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted name -> file of every module of ``root/package`` (``pkg/__init__.py`` -> ``pkg``)."""
    names = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imported_modules(name: str, path: Path, modules: set[str]) -> set[str]:
    """The ``pcdiff`` modules that module ``name`` (its source at ``path``) imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: ``from ..x import y`` in package a.b -> a.x
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            # ``from base import y``: y is a submodule (an edge to it) or a name defined in base
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # ``import pcdiff.a.b.c`` where c is a name: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports."""
    files = module_names(root, package)
    return {name: imported_modules(name, path, set(files)) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_the_checker_sees_module_and_function_level_and_relative_imports(tmp_path):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"f"}, "f": {"e"}, "g": set()}
    assert sorted(map(sorted, cycles(graph))) == [["a", "b", "c"], ["e", "f"]]
    sources = {
        "pkg/__init__.py": "from .a import f\n",
        "pkg/a.py": "import os\nimport pkg.sub.b\n\ndef f():\n    from pkg import c\n",
        "pkg/c.py": "from .sub import b as _b\nx = 1\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/b.py": "from ..c import x\nfrom pkg.a import f as g\n",
    }
    for name, text in sources.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path, "pkg")
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.sub.b", "pkg.c"},  # the second inside f; ``c`` is a module, so not an edge to pkg
        "pkg.c": {"pkg.sub.b"},
        "pkg.sub": set(),
        "pkg.sub.b": {"pkg.c", "pkg.a"},  # ``x`` and ``f`` are names: edges to their modules
    }
    assert cycles(graph) == [frozenset({"pkg.a", "pkg.c", "pkg.sub.b"})]


def test_metrics_do_not_import_the_estimator():
    """Issue 15.4: the estimator builds on metrics/ (its metric registers itself), never the reverse."""
    upward = [(m, t) for m, targets in import_graph().items() for t in targets if m.split(".")[:2] == ["pcdiff", "metrics"]
              and t.startswith("pcdiff.estimator")]  # fmt: skip
    assert not upward


def test_no_import_cycles_inside_pcdiff():
    found = [sorted(c) for c in cycles(import_graph())]
    assert not found, f"import cycles inside pcdiff: {found}"
