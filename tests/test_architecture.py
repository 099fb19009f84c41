"""The package's layering (docs/architecture.md), checked on the source: the import graph,
counting imports inside functions, has no cycle; modules stay small; our own modules are not
imported inside functions except where that keeps torch out of start-up (listed below).

Imports under ``if TYPE_CHECKING:`` are not edges: they never run (as import-linter's
``exclude_type_checking_imports``)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "alpagasus"
MAX_LINES = 500
# (importer, imported): loads torch/transformers, so it is imported when a model is needed.
LAZY_FOR_TORCH = {("alpagasus.stages.generate", "alpagasus.stages.train")}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph() -> tuple[dict[str, set[str]], list[tuple[str, str, int]]]:
    """module -> modules of ours it imports (anywhere), and the function-local ones."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    local: list[tuple[str, str, int]] = []
    for module, path in MODULES.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]

        def visit(node: ast.AST, in_function: bool, module=module, package=package) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and _is_type_checking(child):
                    for other in child.orelse:
                        visit(other, in_function)
                    continue
                if isinstance(child, ast.Import | ast.ImportFrom):
                    for target in _targets(child, package):
                        if target != module:
                            graph[module].add(target)
                            if in_function:
                                local.append((module, target, child.lineno))
                visit(child, in_function or isinstance(
                    child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

        visit(ast.parse(path.read_text()), False)
    return graph, local


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> set[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        names = [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source
                 for a in node.names]
    return {t for n in names if n.startswith("alpagasus") and (t := _resolve(n))}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            connect(v)
    return found


def test_the_import_graph_has_no_cycle():
    graph, _ = import_graph()
    assert cycles(graph) == []


def test_no_function_local_import_of_our_modules_but_the_listed_torch_ones():
    _, local = import_graph()
    unexpected = [f"{m}:{line} imports {t}" for m, t, line in local
                  if (m, t) not in LAZY_FOR_TORCH]
    assert unexpected == []


def test_no_module_is_over_500_lines():
    sizes = {m: len(p.read_text().splitlines()) for m, p in MODULES.items()}
    assert {m: n for m, n in sizes.items() if n > MAX_LINES} == {}


def test_the_schemas_import_nothing_of_ours_above_them():
    graph, _ = import_graph()
    config = {m for m in MODULES if m == "alpagasus.config" or m.startswith("alpagasus.config.")}
    above = {t for m in config for t in graph[m]} - config - {"alpagasus.errors"}
    assert above == set()


def test_the_cycle_check_finds_a_planted_cycle():
    """The check can fail: a cycle of two modules beside an acyclic one is found."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
