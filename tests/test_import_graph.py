"""The import graph, read from the source with ``ast`` (nothing is imported).

Every ``import`` counts, including one inside a function, except those under
``if TYPE_CHECKING:``: a lazy import that only dodges a cycle is still a cycle. Layers:
``storage`` imports nothing of Oko's above it, and ``indexer`` and ``evidence`` never
import each other or ``search_api``.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("storage", "indexer", "evidence", "search_api")
DOMAIN_PACKAGES = ("storage", "indexer", "evidence")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    importer: str = ""  # the module holding the import, when ``source`` is a subpackage


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Import statements that run, anywhere in the module, skipping ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return found


def _resolve(name: str, modules: frozenset[str]) -> str | None:
    """The Oko module ``name`` loads: itself, or its nearest enclosing package of ours."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
             modules: frozenset[str]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = module.split(".")
            if not is_package:
                anchor.pop()
            anchor = anchor[:len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        # ``from pkg import name`` loads pkg.name when that is a module, else pkg itself
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                 for alias in node.names]
    return [target for name in names if (target := _resolve(name, modules)) is not None]


@cache
def import_graph() -> dict[str, tuple[Edge, ...]]:
    """Every Oko module and the Oko modules it imports at run time."""
    files = {_module_name(path): path for package in PACKAGES
             for path in sorted((ROOT / package).rglob("*.py"))}
    modules = frozenset(files)
    graph: dict[str, tuple[Edge, ...]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges = {
            (target, node.lineno)
            for node in _runtime_imports(tree)
            for target in _targets(node, module, path.name == "__init__.py", modules)
            if target != module
        }
        graph[module] = tuple(Edge(module, target, line) for target, line in sorted(edges))
    return graph


def _package(module: str) -> str:
    return module.partition(".")[0]


def find_cycles(graph: dict[str, tuple[Edge, ...]], scope: tuple[str, ...]) -> list[list[Edge]]:
    """One cycle per strongly connected component among the modules of ``scope``."""
    nodes = sorted(m for m in graph if _package(m) in scope)
    succ = {m: [e for e in graph[m] if _package(e.target) in scope] for m in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan; the graph is a few hundred modules
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for edge in succ[node]:
            if edge.target not in index:
                connect(edge.target)
                low[node] = min(low[node], low[edge.target])
            elif edge.target in on_stack:
                low[node] = min(low[node], index[edge.target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in nodes:
        if node not in index:
            connect(node)
    return [_cycle_through(min(c), c, succ) for c in components]


def _cycle_through(start: str, component: set[str],
                   succ: dict[str, list[Edge]]) -> list[Edge]:
    """A shortest path of edges from ``start`` back to itself inside ``component``."""
    came_by: dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for edge in succ[node]:
                if edge.target not in component:
                    continue
                if edge.target == start:
                    path = [edge]
                    while path[0].source != start:
                        path.insert(0, came_by[path[0].source])
                    return path
                if edge.target not in came_by:
                    came_by[edge.target] = edge
                    following.append(edge.target)
        frontier = following
    raise AssertionError(f"{start} is in a cycle but none was found")


def describe(cycle: list[Edge]) -> str:
    steps = " -> ".join(
        f"{e.source} ({e.importer + ' ' if e.importer else ''}line {e.line})" for e in cycle)
    return f"{steps} -> {cycle[0].source}"


@pytest.mark.parametrize("scope", [DOMAIN_PACKAGES, PACKAGES], ids=["domain", "all"])
def test_no_import_cycles(scope: tuple[str, ...]) -> None:
    cycles = find_cycles(import_graph(), scope)
    assert not cycles, "import cycles:\n" + "\n".join(describe(c) for c in cycles)


def _subpackage(module: str) -> str:
    """``indexer.search.engine`` -> ``indexer.search``; a top-level package's module stays."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycles_between_subpackages_and_their_siblings() -> None:
    """A subpackage is one unit: ``indexer.search`` may use ``indexer.shards`` or be used by
    it, not both."""
    collapsed: dict[str, set[Edge]] = {}
    for module, edges in import_graph().items():
        source = _subpackage(module)
        collapsed.setdefault(source, set()).update(
            Edge(source, _subpackage(e.target), e.line, "" if module == source else module)
            for e in edges
            if _subpackage(e.target) != source)
    graph = {m: tuple(sorted(e, key=lambda e: (e.target, e.line))) for m, e in collapsed.items()}
    cycles = find_cycles(graph, DOMAIN_PACKAGES)
    assert not cycles, "subpackage cycles:\n" + "\n".join(describe(c) for c in cycles)


@pytest.mark.parametrize(("package", "forbidden"), [
    ("storage", {"indexer", "evidence", "search_api"}),
    ("indexer", {"evidence", "search_api"}),
    ("evidence", {"indexer", "search_api"}),
])
def test_packages_import_only_downward(package: str, forbidden: set[str]) -> None:
    wrong = [f"{e.source} (line {e.line}) imports {e.target}"
             for module, edges in import_graph().items() if _package(module) == package
             for e in edges if _package(e.target) in forbidden]
    assert not wrong, "\n".join(wrong)


MEDIA_TOOLS = {"av", "imageio_ffmpeg", "subprocess", "cv2"}
"""What media work imports; it belongs in ``indexer`` (and ``evidence``), not ``storage``."""


def test_storage_does_no_media_work() -> None:
    wrong = []
    for path in sorted((ROOT / "storage").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _runtime_imports(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [] if node.level else [node.module or ""])
            wrong += [f"{path.relative_to(ROOT)} (line {node.lineno}) imports {name}"
                      for name in names if name.partition(".")[0] in MEDIA_TOOLS]
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_another_modules_private_name() -> None:
    """``from indexer.samples import _encode`` reaches into another module's insides; a
    caller outside it gets a public function instead."""
    wrong = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in _runtime_imports(tree):
                if isinstance(node, ast.ImportFrom) and not node.level and (
                        node.module or "").partition(".")[0] in PACKAGES:
                    wrong += [f"{path.relative_to(ROOT)} (line {node.lineno}) imports "
                              f"{node.module}.{a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_lazy_imports_and_skips_type_checking_blocks() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import indexer.shards\nelse:\n    import indexer.jobs\n"
        "def load():\n    from indexer.embeddings import load_embedder\n"
    )
    graph = {"indexer.jobs": (), "indexer.shards": (), "indexer.embeddings": ()}
    modules = frozenset(graph)
    found = {t for node in _runtime_imports(tree)
             for t in _targets(node, "indexer.x", False, modules)}
    assert found == {"indexer.jobs", "indexer.embeddings"}


def test_a_cycle_is_reported_with_its_path() -> None:
    graph = {"indexer.a": (Edge("indexer.a", "indexer.b", 3),),
             "indexer.b": (Edge("indexer.b", "indexer.a", 7),),
             "indexer.c": (Edge("indexer.c", "indexer.a", 1),)}
    cycles = find_cycles(graph, ("indexer",))
    assert [describe(c) for c in cycles] == [
        "indexer.a (line 3) -> indexer.b (line 7) -> indexer.a"]


VERIFIER = ROOT / "verifier" / "oko_verify"


def test_the_standalone_verifier_imports_only_stdlib_cryptography_and_asn1crypto() -> None:
    """``oko_verify`` is installed alone on a prosecutor's laptop: no Oko package, no
    third-party library but ``cryptography`` and asn1crypto (pure Python, RFC 3161
    timestamp tokens)."""
    allowed = set(sys.stdlib_module_names) | {"cryptography", "asn1crypto", "oko_verify"}
    modules = sorted(VERIFIER.rglob("*.py"))
    assert len(modules) >= 5
    wrong = []
    for path in modules:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _runtime_imports(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                continue  # relative: inside oko_verify
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""])
            wrong += [f"{path.relative_to(ROOT)} (line {node.lineno}) imports {name}"
                      for name in names if name.partition(".")[0] not in allowed]
    assert not wrong, "\n".join(wrong)
