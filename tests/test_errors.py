"""The exception tree: every public error is a ``TmapiError``, the tree drawn in
``_errors.py`` and in docs/errors.md is the tree the classes form, and an error written
as a record (how a shop's error crosses Redis) comes back as the same public class."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import tmapi_async as tm
from tmapi_async import _errors
from tmapi_async._errors import error_from_record, error_record

DOCS = Path(__file__).parent.parent / "docs" / "errors.md"

#: Every error class the package defines, by name.
CLASSES = {
    name: getattr(_errors, name)
    for name in _errors.__all__
    if isinstance(getattr(_errors, name), type)
}


def drawn_tree(text: str) -> dict[str, str | None]:
    """Each class of the first tree drawn in ``text`` (``├──``/``└──`` lines under
    ``TmapiError``), with the class it is drawn under."""
    start = text.index("TmapiError\n")
    indent = start - (text.rfind("\n", 0, start) + 1)  # the tree as a docstring indents it
    lines = [line[indent:] for line in text[start - indent :].splitlines()]
    parents: dict[str, str | None] = {"TmapiError": None}
    stack = ["TmapiError"]  # the class drawn at each depth
    for line in lines[1:]:
        match = re.match(r"^([ │]*)[├└]── (\w+)", line)
        if match is None:
            break
        depth = len(match[1]) // 4 + 1
        del stack[depth:]
        parents[match[2]] = stack[depth - 1]
        stack.append(match[2])
    return parents


def test_every_error_of_the_package_is_a_tmapi_error() -> None:
    """No class of the tree stands outside it, and ``tm`` names each public one."""
    assert len(CLASSES) >= 25
    for name, cls in CLASSES.items():
        assert issubclass(cls, tm.TmapiError), name
    for name in ("ExportError", "DiffInputError", "RedisUnavailableError", "TmapiError"):
        assert getattr(tm, name) is CLASSES[name]


def test_the_export_branch_holds_every_file_error() -> None:
    """Diff, journal, sink, reader and manifest errors are ``ExportError``s, importable
    from the modules that raise them."""
    from tmapi_async._diff import DiffInputError
    from tmapi_async._export_reader import ExportReadError
    from tmapi_async._manifest import ManifestError
    from tmapi_async.export import JournalError, SinkError

    for cls in (DiffInputError, ExportReadError, ManifestError, JournalError, SinkError):
        assert issubclass(cls, tm.ExportError)
    assert not issubclass(tm.ExportError, tm.FatalError)


def test_errors_keep_the_bases_users_catch_them_by() -> None:
    """What was a ValueError stays one; the Redis errors stay where they were importable."""
    from tmapi_async._redis.connection import RedisUnavailableError
    from tmapi_async._redis.control import CorruptRecord, HarvestEnded, HarvestNotFound
    from tmapi_async._redis.coordinator import RedisHarvestError
    from tmapi_async._redis.queue import HarvestGone

    for cls in (tm.InvalidParameterError, HarvestNotFound, CorruptRecord):
        assert issubclass(cls, ValueError)
    for cls in (RedisUnavailableError, RedisHarvestError, HarvestEnded):
        assert issubclass(cls, tm.FatalError)
    assert issubclass(HarvestGone, tm.TmapiError)


@pytest.mark.parametrize("where", ["docstring", "docs"])
def test_the_drawn_tree_is_the_class_tree(where: str) -> None:
    """The tree in ``_errors.py``'s docstring and in docs/errors.md names every class
    once, each under the class it derives from."""
    text = _errors.__doc__ if where == "docstring" else DOCS.read_text()
    assert text is not None
    parents = drawn_tree(text)
    assert set(parents) == set(CLASSES)
    for name, parent in parents.items():
        if parent is not None:
            assert CLASSES[name].__bases__[0] is CLASSES[parent], name


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_a_record_rebuilds_the_same_public_class(name: str) -> None:
    """Class, message, code and status survive the record; ``retry_after`` too."""
    cls = CLASSES[name]
    if issubclass(cls, tm.TransientError):
        error: tm.TmapiError = cls("slow down", code=429, status=503, retry_after=2.5)
    else:
        error = cls("refused: café", code=422, status=422)
    back = error_from_record(error_record(error))
    assert type(back) is cls
    assert (back.message, back.code, back.status) == (error.message, error.code, error.status)
    assert str(back) == str(error)
    if isinstance(error, tm.TransientError):
        assert isinstance(back, tm.TransientError)
        assert back.retry_after == 2.5


def test_a_private_subclass_comes_back_as_its_public_class() -> None:
    """A class the record may not name is written as the nearest public one above it."""

    class PrivateUpstream(tm.UpstreamError):
        pass

    back = error_from_record(error_record(PrivateUpstream("bad gateway", code=502, status=502)))
    assert type(back) is tm.UpstreamError
    assert (str(back), back.status) == ("bad gateway (code 502)", 502)


def test_text_that_is_no_record_becomes_a_tmapi_error_of_it() -> None:
    """An older writer's plain message, a record naming no public class, a foreign
    exception: each comes back as a plain ``TmapiError`` saying what it said."""
    for text in ("HTTP 500 (code 500)", "{not json", '{"kind": "SystemExit", "message": "x"}'):
        back = error_from_record(text)
        assert type(back) is tm.TmapiError
    assert error_from_record("HTTP 500 (code 500)").message == "HTTP 500 (code 500)"
    assert error_from_record('{"kind": "os", "message": "x"}').message == "x"
    foreign = error_from_record(error_record(KeyError("shop")))
    assert type(foreign) is tm.TmapiError
    assert foreign.message == "'shop'"
