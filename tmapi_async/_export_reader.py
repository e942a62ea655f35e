"""Reading an export back, whatever its format, one row at a time.

The format follows from the file's extension (``.jsonl``/``.ndjson``/``.json``, ``.csv``,
``.parquet``/``.pq``) unless given. Rows come back as :class:`ExportRow` — a
:class:`~tmapi_async.ShopItem` plus its ``shop_url`` — in one canonical form, so that the
same item read from a JSON Lines, a CSV and a Parquet export compares equal: the CSV's
flattened ``sale_info`` is put back together, its formula guard (a leading apostrophe) is
taken off, and a whole-number ``sale_amount`` that Parquet stored as a float is an int again.

Memory stays flat: JSON Lines and CSV are read line by line, Parquet in batches of rows
(what one row group of the file takes in memory, at most).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import msgspec

from ._errors import ExportReadError
from ._formats import EXTENSIONS, FORMATS, ExportFormat, format_of
from ._models import SaleInfo, ShopItem
from .export._parquet import read_batches
from .export._sinks import CSV_COLUMNS, FORMULA_STARTS

__all__ = ["ExportReadError", "ExportRow", "export_format_of", "read_export"]

_PARQUET_BATCH: Final = 2_000


class ExportRow(ShopItem, kw_only=True, gc=False):
    """One row of an export: the item's fields and the shop it was listed in."""

    shop_url: str = ""


_decode_line = msgspec.json.Decoder(ExportRow, strict=False).decode
_decode_path = msgspec.json.Decoder(tuple[Any, ...]).decode


def export_format_of(path: Path) -> ExportFormat:
    """The format of the export ``path``, from its extension."""
    fmt = format_of(path)
    if fmt is None:
        known = ", ".join(EXTENSIONS)
        raise ExportReadError(
            f"cannot tell the format of {path} from its extension (known: {known})"
        )
    return fmt


def _canonical(row: ExportRow) -> ExportRow:
    if row.item_id.__class__ is not str:
        row.item_id = str(row.item_id)
    sale = row.sale_info
    if sale is not None:
        amount = sale.sale_amount
        if isinstance(amount, float) and amount.is_integer():
            sale.sale_amount = int(amount)
        if sale.sale_quantity is None and sale.sale_amount is None:
            row.sale_info = None
    if row.category_path and not all(isinstance(c, str) for c in row.category_path):
        row.category_path = tuple(str(c) for c in row.category_path)
    return row


def _read_jsonl(path: Path) -> Iterator[ExportRow]:
    with open(path, "rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = _decode_line(line)
            except msgspec.DecodeError as exc:
                raise ExportReadError(f"{path}, line {number}: not an export row: {exc}") from None
            yield _canonical(row)


def _text(cell: str) -> str:
    # Undo the sink's formula guard: an apostrophe before a character a spreadsheet runs.
    return cell[1:] if cell[:1] == "'" and cell[1:2] in FORMULA_STARTS else cell


def _number(cell: str) -> int | float | None:
    if not cell:
        return None
    try:
        return int(cell)
    except ValueError:
        return float(cell)


def _read_csv(path: Path) -> Iterator[ExportRow]:
    with open(path, encoding="utf-8", newline="") as text:
        reader = csv.reader(text)
        header = next(reader, None)
        if header is None:
            return
        missing = [c for c in ("item_id", "shop_url") if c not in header]
        if missing:
            raise ExportReadError(
                f"{path}: not a tmapi-async CSV export (no column {', '.join(missing)}; "
                f"expected {','.join(CSV_COLUMNS)})"
            )
        at = {name: header.index(name) for name in CSV_COLUMNS if name in header}

        def cell(values: list[str], name: str) -> str:
            i = at.get(name)
            return values[i] if i is not None and i < len(values) else ""

        for values in reader:
            try:
                path_cell = cell(values, "category_path")
                quantity = _number(cell(values, "quantity"))
                sold = _number(cell(values, "sale_info.sale_quantity"))
                amount = _number(cell(values, "sale_info.sale_amount"))
                row = ExportRow(
                    item_id=_text(cell(values, "item_id")),
                    title=_text(cell(values, "title")),
                    img=_text(cell(values, "img")),
                    category_path=_decode_path(path_cell) if path_cell else (),
                    category_name=_text(cell(values, "category_name")),
                    price=_text(cell(values, "price")),
                    quantity=None if quantity is None else int(quantity),
                    sale_info=SaleInfo(None if sold is None else int(sold), amount),
                    shop_url=_text(cell(values, "shop_url")),
                )
            except (ValueError, msgspec.DecodeError) as exc:
                raise ExportReadError(
                    f"{path}, line {reader.line_num}: not an export row: {exc}"
                ) from None
            yield _canonical(row)


def _read_parquet(path: Path) -> Iterator[ExportRow]:
    batches = read_batches(
        path,
        _PARQUET_BATCH,
        missing=lambda install: ExportReadError(f"reading {path} needs pyarrow: {install}"),
        unreadable=lambda why: ExportReadError(f"{path}: not a readable Parquet file: {why}"),
    )
    try:
        for batch in batches:
            for record in batch:
                yield _canonical(msgspec.convert(record, ExportRow, strict=False))
    except msgspec.ValidationError as exc:
        raise ExportReadError(f"{path}: not a tmapi-async Parquet export: {exc}") from None


def read_export(path: Path, fmt: ExportFormat | None = None) -> Iterator[ExportRow]:
    """Rows of the export ``path`` in file order (format from the extension unless ``fmt``).

    Raises:
        ExportReadError: the file is missing, its format unknown, or a row malformed (also
            while iterating).
    """
    if fmt is None:
        fmt = export_format_of(path)
    elif fmt not in FORMATS:
        raise ExportReadError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise ExportReadError(f"{path}: no such file")
    if fmt == "jsonl":
        return _read_jsonl(path)
    if fmt == "csv":
        return _read_csv(path)
    return _read_parquet(path)
