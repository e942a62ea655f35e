"""``tmapi-async diff``: what changed between two exports, one row per change."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._formats import FORMATS, ExportFormat, format_of
from ._exit import ExitCode
from ._output import UsageError, err

if TYPE_CHECKING:
    from .._diff import Change
    from ..export._parquet import ColumnKind

__all__ = ["CHANGE_COLUMNS", "DiffOptions", "add_parser", "run", "write_changes"]

ChangesFormat = ExportFormat

#: Columns of CHANGES, in order (the fields of :class:`tmapi_async.Change`).
CHANGE_COLUMNS = ("change", "shop_url", "item_id", "before", "after", "price_change")
_COLUMNS: tuple[tuple[str, ColumnKind], ...] = (
    *((name, "text") for name in CHANGE_COLUMNS[:-1]),
    ("price_change", "float"),
)

EPILOG = """\
OLD and NEW are exports of tmapi-async harvest (or any file with its columns) in any
format, mixed if need be; the format comes from the extension (.jsonl, .csv, .parquet).
Each export's manifest (EXPORT.manifest.json) says which shops were read whole: a shop
that was not complete in OLD or NEW gets one shop_incomplete row and none of its items
is reported gone; a shop in only one export gets one shop_only_in_old/new row. Without
manifests every shop present is taken as complete (the summary says so).

CHANGES has one row per change: change (new, gone, price, sales, title, img,
category_path, category_name, quantity, or a shop-level kind), shop_url, item_id, before,
after, and price_change (on price rows: the relative change of the low end, 0.1 = +10%).
In CSV and Parquet, before/after values that are not text are written as JSON.

The summary (stderr) counts the changes per kind and per shop and shows the largest
price moves. Memory stays flat: both exports go through a temporary on-disk index.

examples:
  tmapi-async diff monday.jsonl tuesday.jsonl --output changes.jsonl
  tmapi-async diff monday.parquet tuesday.csv -o changes.csv

exit codes:
  0    the exports were compared (whatever changed)
  2    bad input: a missing file, an unknown format, a malformed row or manifest
"""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``diff`` to the subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "diff",
        help="what changed between two exports: new, gone and changed items",
        description="Compare the export OLD with the export NEW; write one row per change "
        "to CHANGES and a summary to stderr.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("old", metavar="OLD", type=Path, help="the earlier export")
    parser.add_argument("new", metavar="NEW", type=Path, help="the later export")
    parser.add_argument(
        "-o", "--output", required=True, type=Path, metavar="CHANGES", help="the changes file"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="format of CHANGES (default: from its extension, else jsonl)",
    )
    parser.add_argument(
        "--top", type=int, default=10, metavar="N", help="price moves in the summary (10)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary; errors only")
    return parser


@dataclass(frozen=True, slots=True)
class DiffOptions:
    """What a diff run needs."""

    old: Path
    new: Path
    output: Path
    format: ChangesFormat
    top: int = 10
    quiet: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DiffOptions:
        """From parsed arguments."""
        output: Path = args.output
        fmt: ChangesFormat = args.format or format_of(output) or "jsonl"
        if not output.parent.is_dir():
            raise UsageError(f"cannot write {output}: directory {output.parent} does not exist")
        if args.top < 0:
            raise UsageError(f"--top must be 0 or more, got {args.top}")
        return cls(args.old, args.new, output, fmt, args.top, args.quiet)


def run(args: argparse.Namespace) -> int:
    """The ``diff`` command; returns the exit code."""
    return diff(DiffOptions.from_args(args))


def diff(options: DiffOptions) -> int:
    """Compare, write CHANGES atomically, print the summary; returns the exit code.

    Raises:
        UsageError: an input cannot be read, or CHANGES cannot be written.
    """
    from .._diff import Diff
    from .._errors import ExportError

    tmp = options.output.with_name(options.output.name + ".tmp")
    try:
        with Diff(options.old, options.new, top=options.top) as changes:
            write_changes(changes, tmp, options.format)
        os.replace(tmp, options.output)
    except ExportError as exc:  # an input that cannot be read, Parquet without pyarrow
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write {options.output}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    if not options.quiet:
        for line in changes.summary.lines():
            err(line)
        err(f"changes: {options.output}")
    return ExitCode.OK


def _cell(value: Any) -> str | None:
    """A before/after value as a CSV or Parquet cell: text as is, anything else as JSON."""
    import msgspec

    if value is None:
        return None
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def _cells(change: Change) -> tuple[object, ...]:
    return (
        change.change,
        change.shop_url,
        change.item_id,
        _cell(change.before),
        _cell(change.after),
        change.price_change,
    )


def write_changes(changes: Iterable[Change], path: Path, fmt: ChangesFormat) -> int:
    """Write ``changes`` to ``path`` in ``fmt`` (through the export's writers); returns
    the rows written.

    Raises:
        SinkError: Parquet without pyarrow.
        OSError: ``path`` cannot be written.
    """
    from ..export._sinks import write_rows

    return write_rows(path, fmt, changes, _COLUMNS, _cells)
