"""The test suite's own shape: every test says in its docstring what behaviour it checks,
and no two test files share a name (the directories are not packages, so pytest would
refuse the second one)."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parent


def collected_files() -> list[Path]:
    """The files pytest collects tests from."""
    return sorted(TESTS.rglob("test_*.py"))


def undocumented(source: str) -> list[str]:
    """The tests pytest would collect from ``source`` that have no docstring: functions
    named ``test*`` at module level and in ``Test*`` classes."""
    found: list[str] = []
    tree = ast.parse(source)
    for node in tree.body:
        candidates: list[ast.stmt] = [node]
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            candidates = [*node.body]
        for item in candidates:
            if not isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if item.name.startswith("test") and not ast.get_docstring(item):
                found.append(item.name)
    return found


def test_the_checker_finds_a_test_without_a_docstring() -> None:
    """A bare test, at module level or in a class, is reported; documented tests, helpers
    and nested functions are not (else an empty report would prove nothing)."""
    source = '''
def test_bare(): pass
async def test_documented():
    """Says what it checks."""
    def test_nested(): pass
def helper(): pass
class TestGroup:
    def test_in_class(self): pass
class Helper:
    def test_not_collected(self): pass
'''
    assert undocumented(source) == ["test_bare", "test_in_class"]


def test_every_test_has_a_docstring() -> None:
    """Each test function in tests/ says, in its docstring, what behaviour it checks."""
    files = collected_files()
    assert len(files) > 20
    missing = [
        f"{path.relative_to(TESTS)}::{name}"
        for path in files
        for name in undocumented(path.read_text(encoding="utf-8"))
    ]
    assert not missing, "tests without a docstring:\n" + "\n".join(missing)


def test_no_two_test_files_share_a_name() -> None:
    """tests/ and its directories are not packages: two files of one name cannot both be
    imported, so each test file's name is unique across the tree."""
    names = Counter(path.name for path in collected_files())
    assert [name for name, n in names.items() if n > 1] == []
