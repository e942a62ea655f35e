"""The package's shape: no import circle between its modules, no module too long to read.

Imports are read with ``ast``: those at module level (in classes, ``if``/``try``/``with``
blocks too) form the graph, and so do those under ``TYPE_CHECKING``: they never run, but
two modules that need each other's names, even for types only, are one job cut in two
(or one of them holds what belongs to a third). Imports inside functions are deferred
for speed, not for shape, and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "tmapi_async"
# Modules are cut by job, not by length: past about 600 lines a module is asked whether
# it does two jobs (and is split if it does).
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, name: str) -> set[str]:
    """Modules ``path`` (module ``name``) imports when it is imported."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the package, up a level per extra dot
                    base = package
                    for _ in range(node.level - 1):
                        base = base.rpartition(".")[0]
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module or ""
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.ClassDef | ast.If | ast.Try | ast.With):
                for block in ("body", "orelse", "finalbody"):
                    visit(getattr(node, block, []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(ast.parse(path.read_text()).body)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imported(path, name) & paths.keys() - {name} for name, path in paths.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while (top := stack.pop()) != module:
                component.append(top)
            if component:
                found.append(sorted([module, *component]))

    for module in graph:
        if module not in index:
            visit(module)
    return found


def test_the_graph_sees_the_package_imports() -> None:
    """The checker reads real edges (else "no circle" would prove nothing)."""
    graph = import_graph()
    assert "tmapi_async._harvest" in graph["tmapi_async._client"]
    assert "tmapi_async._errors" in graph["tmapi_async._protocol"]


def test_the_graph_counts_type_checking_imports(tmp_path: Path) -> None:
    """An import under ``if TYPE_CHECKING:`` is an edge; one inside a function is not."""
    module = tmp_path / "mod.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from .types_only import Thing\n"
        "def later():\n"
        "    from .deferred import other\n"
    )
    found = imported(module, "pkg.mod")
    assert "pkg.types_only" in found
    assert "pkg.deferred" not in found


def test_a_circle_is_found() -> None:
    """Tarjan's walk reports a circle when there is one."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle() -> None:
    """No module of the package imports, through others, the module importing it."""
    assert circles(import_graph()) == []


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_too_long(path: Path) -> None:
    """Every module is short enough to read in one sitting."""
    assert len(path.read_text().splitlines()) <= MAX_LINES
