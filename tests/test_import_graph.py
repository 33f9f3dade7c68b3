"""The import graph of the ``meterline`` import root, read from the source (no import runs).

Four rules (issue 23):

- no import cycle anywhere under ``meterline`` (the shell and the four card folders);
- the core (``meterline.producers``, ``meterline.schemas``, ``meterline.sinks``,
  ``meterline.stream_processors``) imports only the core: nothing of the product shell
  (``meterline.cli``, ``meterline.ops``, ``meterline.settings``, ...) and not the package
  ``meterline`` itself (whose ``__init__`` is the shell's face of the SDK);
- the producers (the SDK and the ingestion gateway) import nothing of the processor
  (``meterline.stream_processors``) or the sink (``meterline.sinks``): what they share with
  them (the record rules, reason names, Kafka access) lives in ``meterline.schemas``;
- no Python file of the repository (tests and bench included) imports the bare top-level names
  ``producers``, ``schemas``, ``sinks`` or ``stream_processors``: installed, only ``meterline``
  exists.

Every import counts: module level, inside functions, relative ones, and
``importlib.import_module("...")`` with a literal name. Imports under ``if TYPE_CHECKING:`` never
run, so they make no cycle; they still count for the layering rules (the core does not depend on
the shell, not even for its types).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOT = "meterline"
CORE = ("producers", "schemas", "sinks", "stream_processors")
BARE = frozenset(CORE)
# folders of the repository whose Python files are not the project's (virtualenvs, builds)
SKIP_DIRS = frozenset({".git", ".venv", "venv", "build", "dist", "node_modules", "__pycache__"})


@dataclass(frozen=True)
class Import:
    target: str  # absolute dotted name as written (resolved if relative)
    names: tuple[str, ...]  # the names of ``from target import a, b`` (empty for ``import``)
    line: int
    type_only: bool = False  # under ``if TYPE_CHECKING:``


def _source_files() -> dict[str, Path]:
    """Module name -> file, for the shell (``meterline/``, its symlinks skipped) and the card
    folders at the repository's top (mapped to ``meterline.<folder>`` as in pyproject)."""
    modules: dict[str, Path] = {}
    folders = [(REPO / ROOT, (ROOT,))] + [(REPO / name, (ROOT, name)) for name in CORE]
    for folder, prefix in folders:
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder)
            if folder.name == ROOT and rel.parts[0] in CORE:
                continue  # meterline/<card> symlinks: the card folders are read directly
            if any(part in SKIP_DIRS for part in rel.parts):
                continue
            parts = (*prefix, *rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _imports(path: Path, module: str) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    type_only = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, (), node.lineno, id(node) in type_only)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = tuple(a.name for a in node.names)
            yield Import(base, names, node.lineno, id(node) in type_only)
        elif _is_import_module_call(node):
            assert isinstance(node, ast.Call)
            arg = node.args[0]
            assert isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            yield Import(arg.value, (), node.lineno)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) bodies."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", None)
            if name == "TYPE_CHECKING":
                for stmt in node.body:
                    inside.update(id(sub) for sub in ast.walk(stmt))
    return inside


def _is_import_module_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call) or not node.args:
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    arg = node.args[0]
    return name == "import_module" and isinstance(arg, ast.Constant) and isinstance(
        arg.value, str
    )


def _resolve(imp: Import, modules: dict[str, Path]) -> list[str]:
    """The project modules an import loads: ``from pkg import sub`` is ``pkg.sub`` when that
    is a module, else ``pkg``; ``import a.b.c`` is the deepest project module of ``a.b.c``."""
    targets: list[str] = []
    if imp.names:
        for name in imp.names:
            sub = f"{imp.target}.{name}"
            if sub in modules:
                targets.append(sub)
            elif imp.target in modules:
                targets.append(imp.target)
    else:
        parts = imp.target.split(".")
        for n in range(len(parts), 0, -1):
            candidate = ".".join(parts[:n])
            if candidate in modules:
                targets.append(candidate)
                break
    return sorted(set(targets))


def _graph(runtime_only: bool = False) -> tuple[dict[str, dict[str, int]], dict[str, Path]]:
    """module -> {imported project module: first line}; ``runtime_only`` leaves out the
    imports under ``if TYPE_CHECKING:``."""
    modules = _source_files()
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges: dict[str, int] = {}
        for imp in _imports(path, module):
            if runtime_only and imp.type_only:
                continue
            for target in _resolve(imp, modules):
                if target != module:
                    edges.setdefault(target, imp.line)
        graph[module] = edges
    return graph, modules


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan), each
    printed as a closed path through the component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:  # recursion depth is bounded by the module count (~160)
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, {}):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_in(component, graph) for component in sorted(components)]


def _path_in(component: list[str], graph: dict[str, dict[str, int]]) -> list[str]:
    """A cycle through the component's first module (breadth-first back to it)."""
    members = set(component)
    start = component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for succ in sorted(graph[node]):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if succ in members and succ not in parents and succ != start:
                    parents[succ] = node
                    nxt.append(succ)
        frontier = nxt
    return component


def _is_core(module: str) -> bool:
    parts = module.split(".")
    return len(parts) > 1 and parts[0] == ROOT and parts[1] in CORE


def test_the_graph_sees_every_module() -> None:
    graph, modules = _graph()
    assert "meterline" in modules and "meterline.cli" in modules
    for name in CORE:
        assert f"meterline.{name}" in modules
    # a relative import and a function-level one are both edges
    assert sum(len(edges) for edges in graph.values()) > len(graph)


# Still open (issue 23), named so that these lists can only shrink: a new cycle or a new
# core -> shell import fails the tests below, and so does a listed one that is gone (remove it
# here in the same change). The lists are to be emptied.
KNOWN_CYCLES: set[tuple[str, ...]] = set()
KNOWN_SHELL_IMPORTS: set[tuple[str, str]] = set()
KNOWN_PRODUCER_IMPORTS: set[tuple[str, str]] = set()
#: what the producers must not import (``_is_under(target, *FORBIDDEN_FOR_PRODUCERS)``)
FORBIDDEN_FOR_PRODUCERS = (f"{ROOT}.stream_processors", f"{ROOT}.sinks")


def test_no_import_cycle() -> None:
    graph, _ = _graph(runtime_only=True)
    cycles = _cycles(graph)
    new = [c for c in cycles if tuple(c[:-1]) not in KNOWN_CYCLES]
    lines = [
        " -> ".join(
            f"{a} (line {graph[a][b]})" for a, b in pairwise(cycle)
        ) + f" -> {cycle[-1]}"
        for cycle in new
    ]
    assert not new, "import cycles:\n" + "\n".join(lines)
    gone = KNOWN_CYCLES - {tuple(c[:-1]) for c in cycles}
    assert not gone, f"fixed, remove from KNOWN_CYCLES: {sorted(gone)}"


def test_core_never_imports_the_shell() -> None:
    graph, modules = _graph()
    violations = [
        f"{modules[source].relative_to(REPO)}:{line}: {source} imports {target}"
        for source, edges in sorted(graph.items())
        if _is_core(source)
        for target, line in sorted(edges.items())
        if not _is_core(target) and (source, target) not in KNOWN_SHELL_IMPORTS
    ]
    assert not violations, "the core imports the product shell:\n" + "\n".join(violations)
    seen = {(s, t) for s, edges in graph.items() for t in edges}
    gone = KNOWN_SHELL_IMPORTS - seen
    assert not gone, f"fixed, remove from KNOWN_SHELL_IMPORTS: {sorted(gone)}"


def _is_under(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_producers_import_neither_the_processor_nor_the_sink() -> None:
    graph, modules = _graph()
    edges = {
        (source, target): line
        for source, targets in graph.items()
        if _is_under(source, f"{ROOT}.producers")
        for target, line in targets.items()
        if _is_under(target, *FORBIDDEN_FOR_PRODUCERS)
    }
    violations = [
        f"{modules[source].relative_to(REPO)}:{line}: {source} imports {target}"
        for (source, target), line in sorted(edges.items())
        if (source, target) not in KNOWN_PRODUCER_IMPORTS
    ]
    assert not violations, "the producers import the processor or the sink:\n" + "\n".join(
        violations
    )
    gone = KNOWN_PRODUCER_IMPORTS - set(edges)
    assert not gone, f"fixed, remove from KNOWN_PRODUCER_IMPORTS: {sorted(gone)}"


def _repository_files() -> Iterator[Path]:
    for path in sorted(REPO.rglob("*.py")):
        rel = path.relative_to(REPO)
        if any(part in SKIP_DIRS for part in rel.parts):
            continue
        if rel.parts[0] == ROOT and len(rel.parts) > 1 and rel.parts[1] in CORE:
            continue  # the symlinks: the same files are read through the card folders
        yield path


def test_no_bare_top_level_names() -> None:
    violations: list[str] = []
    for path in _repository_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif _is_import_module_call(node):
                assert isinstance(node, ast.Call) and isinstance(node.args[0], ast.Constant)
                names = [str(node.args[0].value)]
            else:
                continue
            for name in names:
                if name.split(".")[0] in BARE:
                    line = getattr(node, "lineno", 0)
                    violations.append(f"{path.relative_to(REPO)}:{line}: imports {name}")
    assert not violations, "bare top-level imports (use meterline.<name>):\n" + "\n".join(
        violations
    )


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """The helpers on a hand-made graph: a cycle is found and printed as a closed path."""
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b": 1}, "b": {}}) == []
    assert _is_core("meterline.sinks.clickhouse.ddl")
    assert not _is_core("meterline") and not _is_core("meterline.ops.lag")
    assert _is_under("meterline.sinks.clickhouse", *FORBIDDEN_FOR_PRODUCERS)
    assert not _is_under("meterline.sinkside", *FORBIDDEN_FOR_PRODUCERS)
    source = tmp_path / "mod.py"
    source.write_text(
        "from . import sibling\nfrom ..up import thing\n"
        "if TYPE_CHECKING:\n    from meterline.settings import Settings\n"
        "def f():\n    import meterline.ops.lag\n",
        encoding="utf-8",
    )
    found = [
        (i.target, i.names, i.type_only)
        for i in _imports(source, "meterline.sinks.clickhouse.mod")
    ]
    assert found == [
        ("meterline.sinks.clickhouse", ("sibling",), False),
        ("meterline.sinks.up", ("thing",), False),
        ("meterline.settings", ("Settings",), True),
        ("meterline.ops.lag", (), False),
    ]
