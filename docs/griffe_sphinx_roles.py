"""Griffe extension for the docs build: render the package's reST-flavoured docstrings.

The code's docstrings use Google sections (rendered natively) plus a few Sphinx habits:
``:class:`X``` roles, ``text::`` before a literal block, and ``#:`` comments documenting
attributes. This turns roles into inline code, ``::`` into ``:``, and a ``#:`` comment
(on the line above an assignment, or trailing it) into the attribute's docstring.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|exc|data|obj|const):`~?([^`]+)`")
_LITERAL = re.compile(r"(?<=\S)::(?=\n|$)")
_LONE_LITERAL = re.compile(r"^[ \t]*::[ \t]*\n", re.M)
_TRAILING = re.compile(r"#:\s*(.+)$")


def _clean(text: str) -> str:
    text = _ROLE.sub(lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`", text)
    return _LITERAL.sub(":", _LONE_LITERAL.sub("", text))


def _comment_doc(obj: griffe.Object) -> str | None:
    if obj.lineno is None or obj.filepath is None or isinstance(obj.filepath, list):
        return None
    try:
        lines = obj.lines_collection[obj.filepath]
    except KeyError:
        return None
    line = lines[obj.lineno - 1] if 0 < obj.lineno <= len(lines) else ""
    if (m := _TRAILING.search(line)) is not None:
        return m.group(1).strip()
    above: list[str] = []
    i = obj.lineno - 2
    while i >= 0 and lines[i].strip().startswith("#:"):
        above.insert(0, lines[i].strip()[2:].strip())
        i -= 1
    return " ".join(above) or None


class SphinxRoles(griffe.Extension):
    """Clean Sphinx roles and pick up ``#:`` attribute comments."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _clean(obj.docstring.value)
        elif obj.is_attribute:
            doc = _comment_doc(obj)
            if doc:
                obj.docstring = griffe.Docstring(_clean(doc), parent=obj)
