"""Griffe extension for the docs build: the public names of ``tmapi_async``.

The package writes its public names once, as the table ``_SOURCES`` (name → module,
for the imports on first use), and derives ``__all__`` from it at run time, which a
static reader cannot evaluate. This reads the table's literal and gives its names as
the module's exports, so the reference documents exactly ``tmapi_async.__all__``.
"""

from __future__ import annotations

import ast
from typing import Any

import griffe


class LazyExports(griffe.Extension):
    """Take ``tmapi_async.__all__`` from the literal table it is derived from."""

    def on_module_members(self, *, mod: griffe.Module, **kwargs: Any) -> None:
        table = mod.members.get("_SOURCES")
        if mod.path != "tmapi_async" or not isinstance(table, griffe.Attribute):
            return
        names = ast.literal_eval(str(table.value))
        mod.exports = sorted([*names, "__version__"])
