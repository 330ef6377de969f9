"""Imports flow one way: faces and runtime drivers -> service -> features -> stores -> config and errors.

Every `import` counts, function-local ones too (a late import hides a cycle from Python, not from a reader);
only imports under `if TYPE_CHECKING:` are exempt, since they never run. A package may import its own
modules and anything in a lower layer; packages in the same layer do not import each other.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import ragstore

ROOT = Path(ragstore.__file__).parent

# Lowest first. A name is a subpackage or a top-level module of ragstore.
LAYERS: list[set[str]] = [
    {"secrets_mask", "native_libs"},  # masks secrets in every message; native_libs: the C++ runtime made global
    {"errors", "clock", "telemetry"},  # telemetry: the event metrics every layer counts (prometheus-client)
    {"keys", "valid_text", "roles"},  # the text form of secret keys (config validates it); what makes a string storable
    {"config"},
    {"schemas", "declarations"},  # declarations: the application record types, light to import
    {"client"},  # the HTTP client: the facade's interface over the API, knowing only the contract and the base
    {"db", "text", "embeddings", "cache"},
    {"migrations", "lexical", "vectors"},  # derived from the system of record: they may read SQL
    {"security"},  # principals, keys, sessions, limits, usage, audit: every feature may record an action
    {"sync"},
    {"documents", "analytics"},  # the catalog every feature reads; the query log search writes
    {"search", "consistency", "backup", "indexing", "chat", "records"},  # chat: conversations; records: app records
    {"ops"},  # health sees every feature
    {"wiring"},
    {"service"},
    {"runtime"},  # drivers that hold an open store: the scheduler, job handlers, the worker process
    {"api", "integrations"},
    {"cli"},  # `ragstore serve` starts the API
    {"__init__", "__main__"},
]
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _unit(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, imported ragstore module) for every import that can run, at any depth."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("ragstore."):
                found.append((node.lineno, node.module))
            elif node.module == "ragstore":  # from ragstore import x: x is a unit; __version__ is metadata
                found.extend((node.lineno, f"ragstore.{a.name}") for a in node.names if not a.name.startswith("__"))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if a.name.startswith("ragstore."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    wrong: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        if "versions" in path.relative_to(ROOT).parts:
            continue  # migration scripts are frozen history
        unit = _unit(path)
        assert unit in LAYER_OF, f"{path.relative_to(ROOT)}: {unit!r} is in no layer; add it to LAYERS"
        for line, module in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            target = module.split(".")[1]
            if target == unit:
                continue
            assert target in LAYER_OF, f"{path.relative_to(ROOT)}:{line} imports {target!r}, which is in no layer"
            edges[unit].add(target)
            if LAYER_OF[target] >= LAYER_OF[unit]:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {unit} imports {target} (same or higher layer)")
    return edges, wrong


def test_imports_only_go_down_the_layers() -> None:
    _, wrong = _graph()
    assert not wrong, "\n".join(wrong)


def test_there_are_no_import_cycles_between_modules() -> None:
    """Within a package too: a module-level cycle is a knot even when the layers are respected."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if "versions" in rel.parts:
            continue
        module = "ragstore." + ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        imported = {m for _, m in _imports(ast.parse(path.read_text(encoding="utf-8")))}
        # Importing a.b.c runs the package a.b's __init__ first: it counts as imported too.
        imported |= {p for m in imported for p in _parents(m)}
        edges[module] = imported - {module} - set(_parents(module))
    cycles = _cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _parents(module: str) -> list[str]:
    """The packages above a module, below ragstore itself (whose __init__ imports nothing eagerly)."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts))]


def test_the_graph_sees_function_local_imports() -> None:
    """The cli imports the facade only inside its commands (so --help stays light): that must still count."""
    cli_common = ROOT / "cli" / "common.py"
    assert "ragstore.service" in {m for _, m in _imports(ast.parse(cli_common.read_text(encoding="utf-8")))}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), as a readable path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in list(edges):
        if v not in index:
            connect(v)
    return groups


def test_the_layer_list_names_only_what_exists() -> None:
    units = {_unit(p) for p in ROOT.rglob("*.py")}
    stale = {name for layer in LAYERS for name in layer} - units - {"integrations", "__main__"}
    assert not stale, f"LAYERS names units that do not exist: {sorted(stale)}"
