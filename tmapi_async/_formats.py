"""The export formats, and the format a file's extension names.

A module of its own, importing no third-party library: the command line offers the
formats in ``--help`` without loading the writers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

__all__ = ["EXTENSIONS", "FORMATS", "ExportFormat", "format_of"]

ExportFormat = Literal["jsonl", "csv", "parquet"]

#: The export formats, the default first.
FORMATS: Final[tuple[ExportFormat, ...]] = ("jsonl", "csv", "parquet")

#: The extensions that name a format.
EXTENSIONS: Final[dict[str, ExportFormat]] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def format_of(path: Path) -> ExportFormat | None:
    """The format the extension of ``path`` names (any case), or ``None``."""
    return EXTENSIONS.get(path.suffix.lower())
