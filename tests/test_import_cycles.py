"""Imports go one way: no cycles between ragstore's modules, and the bottom layer imports no feature package.

Read from the source with `ast`, so an import inside a function counts as much as one at the top (it only
hides a cycle until the function runs). Importing `a.b.c` also counts as importing the package `a.b`,
whose `__init__` Python runs first.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
# The lowest layer (docs/architecture.md): what every other module may import.
BOTTOM = {"ragstore.config", "ragstore.errors", "ragstore.keys"}
# Cycles someone is removing now (issue #14); delete an entry when its cycle is gone.
KNOWN_CYCLES = [{"ragstore.backup.restore", "ragstore.service"}]


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "ragstore").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                parts = target.split(".")
                for k in range(2, len(parts) + 1):  # the top package `ragstore` re-exports; not a layer
                    imported = ".".join(parts[:k])
                    if imported in modules and imported != name and not name.startswith(imported + "."):
                        graph[name].add(imported)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
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
                        found.append(component)
    return found


def test_the_graph_sees_function_local_imports() -> None:
    graph = _graph()
    assert "ragstore.service" in graph["ragstore.cli"]  # imported only inside functions there


def test_no_import_cycles() -> None:
    cycles = [sorted(c) for c in _cycles(_graph()) if c not in KNOWN_CYCLES]
    assert cycles == []


def test_the_bottom_layer_imports_nothing_above_it() -> None:
    graph = _graph()
    for module in BOTTOM:
        assert graph[module] <= BOTTOM, f"{module} imports {sorted(graph[module] - BOTTOM)}"
