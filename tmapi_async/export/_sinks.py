"""Export writers: one row per item (the item's fields plus ``shop_url``), streamed.

Every sink appends pages as they complete and knows its :attr:`~Sink.position`: the
bytes of the export written and flushed to the OS so far. The journal commits that
position with each page, and a resumed run reopens the sink at the last committed
position, cutting off a page that was half written when the process died.

* **JSON Lines** (``jsonl``, the default): one JSON object per line, encoded by msgspec,
  the text exactly as sent (so is Parquet's).
* **CSV** (``csv``): a header, then one row per item; ``sale_info`` flattened into
  ``sale_info.sale_quantity`` and ``sale_info.sale_amount``, ``category_path`` as JSON.
  Safe to open in a spreadsheet: a text cell starting with ``=``, ``+``, ``-``, ``@``,
  TAB or CR, which a spreadsheet would run as a formula (OWASP "CSV injection"), gets a
  leading apostrophe; ``csv_raw=True`` writes the text as sent.
* **Parquet** (``parquet``, needs ``pip install 'tmapi-async[parquet]'``): a Parquet file
  cannot be appended to or cut back, so rows go to a JSON Lines *spool* beside it
  (``OUTPUT.spool.jsonl``), which is what the journal tracks; :meth:`Sink.close` writes
  the ``.parquet`` from the whole spool into a temporary file and renames it into place.
  A run killed before that leaves the spool intact and the next run writes the file.
  The spool is kept so later runs can add shops; delete it once the harvest is final.

Memory does not grow with the number of items: each page is encoded and written at
once, and the Parquet file is written from the spool in bounded batches.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import msgspec

from .._errors import SinkError
from .._formats import FORMATS, ExportFormat
from .._models import ShopItem
from ._parquet import ColumnKind, load_pyarrow, spool_size_of, write_parquet

__all__ = [
    "FORMATS",
    "CsvSink",
    "ExportFormat",
    "JsonlSink",
    "ParquetSink",
    "Sink",
    "SinkError",
    "neutralise",
    "open_sink",
    "spool_path",
    "write_rows",
]

#: CSV columns, in order: the item's fields with ``sale_info`` flattened, then the shop.
CSV_COLUMNS: Final[tuple[str, ...]] = (
    "item_id",
    "title",
    "img",
    "category_path",
    "category_name",
    "price",
    "quantity",
    "sale_info.sale_quantity",
    "sale_info.sale_amount",
    "shop_url",
)

_PARQUET_BATCH = 20_000  # rows per row group: bounds the memory of writing the file
_PARQUET_META_KEY = b"tmapi_async.spool_bytes"


class Sink(Protocol):
    """Where a harvest's items go. Methods are synchronous and called from one thread."""

    path: Path  #: the export file the user asked for

    @property
    def position(self) -> int:
        """Bytes written and flushed so far: what a resumed run reopens at."""

    def write(self, shop_url: str, items: Sequence[ShopItem]) -> None:
        """Append one row per item and flush it to the OS (not fsync: kill -9 safe)."""

    def sync(self) -> None:
        """Make what was written durable on disk (fsync): a power cut keeps it."""

    def close(self) -> None:
        """Finish the export (Parquet: write the file) and release it."""


class _AppendFile:
    """An export file opened for appending at a known position, cut back on reopen."""

    def __init__(self, path: Path, resume_at: int) -> None:
        self.path = path
        try:
            size = path.stat().st_size if path.exists() else 0
            if resume_at > size:
                raise SinkError(
                    f"{path} holds {size} bytes but the state file recorded {resume_at}: "
                    "the export was cut or replaced since the last run. Move the state "
                    "file away to start over."
                )
            # Unbuffered: each page is one write() straight to the OS, nothing held back.
            self._file = open(path, "r+b" if path.exists() else "w+b", buffering=0)  # noqa: SIM115
            # Drop whatever a killed run wrote after its last committed page.
            self._file.truncate(resume_at)
            self._file.seek(resume_at)
        except OSError as exc:
            raise SinkError(f"cannot open {path} for writing: {exc.strerror or exc}") from exc
        self._position = resume_at

    @property
    def position(self) -> int:
        return self._position

    def append(self, data: bytes | bytearray) -> None:
        view = memoryview(data)
        while view:  # a raw write may be partial; the OS has it all when this returns
            written = self._file.write(view)
            view = view[written or 0 :]
        self._position += len(data)

    def sync(self) -> None:
        if not self._file.closed:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            os.fsync(self._file.fileno())  # a finished run is durable
            self._file.close()


class JsonlSink:
    """JSON Lines: ``{...item fields..., "shop_url": "..."}`` per line."""

    def __init__(self, path: Path, *, resume_at: int = 0) -> None:
        self.path = path
        self._out = _AppendFile(path, resume_at)
        self._encoder = msgspec.json.Encoder()
        self._buffer = bytearray()

    @property
    def position(self) -> int:
        """Bytes written and flushed so far."""
        return self._out.position

    def write(self, shop_url: str, items: Sequence[ShopItem]) -> None:
        """Append one line per item."""
        if not items:
            return
        buf = self._buffer
        del buf[:]
        # Encode each Struct as is, then swap its closing brace for the shop's field: no
        # per-item dict or copy (measured: faster than a bytes.replace over the page).
        tail = b',"shop_url":' + self._encoder.encode(shop_url) + b"}\n"
        encode_into = self._encoder.encode_into
        for item in items:
            encode_into(item, buf, len(buf))
            buf[-1:] = tail
        self._out.append(buf)
        if len(buf) > 1 << 20:
            self._buffer = bytearray()  # do not keep one huge page's buffer forever

    def sync(self) -> None:
        """fsync the file."""
        self._out.sync()

    def close(self) -> None:
        """Flush, fsync and close the file."""
        self._out.close()


#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS: Final = frozenset("=+-@\t\r")


def neutralise(text: str) -> str:
    """``text`` with a leading apostrophe if a spreadsheet would run it as a formula."""
    return "'" + text if text and text[0] in FORMULA_STARTS else text


def _as_is(text: str) -> str:
    return text


def _csv_row(
    shop_url: str, item: ShopItem, encode: Any, safe: Callable[[str], str]
) -> list[object]:
    sale = item.sale_info
    return [
        safe(item.item_id),
        safe(item.title),
        safe(item.img),
        encode(item.category_path).decode() if item.category_path else "[]",
        safe(item.category_name),
        safe(item.price),
        "" if item.quantity is None else item.quantity,
        "" if sale is None or sale.sale_quantity is None else sale.sale_quantity,
        "" if sale is None or sale.sale_amount is None else sale.sale_amount,
        safe(shop_url),
    ]


class _CsvFile:
    """CSV rows appended to an :class:`_AppendFile`, a header first on a new file."""

    def __init__(self, path: Path, resume_at: int, header: Sequence[str]) -> None:
        self._out = _AppendFile(path, resume_at)
        self._text = io.StringIO()
        # CRLF rows (RFC 4180): with "\n" alone, csv would not quote a cell holding a
        # bare CR, and a reader would split the row there.
        self._writer = csv.writer(self._text, lineterminator="\r\n")
        if resume_at == 0:
            self.write_rows([header])

    @property
    def position(self) -> int:
        return self._out.position

    def write_rows(self, rows: Iterable[Sequence[object]]) -> None:
        """Append ``rows`` and flush them to the OS."""
        self._writer.writerows(rows)
        self._out.append(self._text.getvalue().encode())
        self._text.seek(0)
        self._text.truncate()

    def sync(self) -> None:
        self._out.sync()

    def close(self) -> None:
        self._out.close()


class CsvSink:
    """CSV with a header row; nested fields flattened (see :data:`CSV_COLUMNS`).

    Text cells that a spreadsheet would run as a formula get a leading apostrophe
    (see :func:`neutralise`) unless ``raw``.
    """

    def __init__(self, path: Path, *, resume_at: int = 0, raw: bool = False) -> None:
        self.path = path
        self._safe = _as_is if raw else neutralise
        self._out = _CsvFile(path, resume_at, CSV_COLUMNS)
        self._encode = msgspec.json.Encoder().encode

    @property
    def position(self) -> int:
        """Bytes written and flushed so far (the header included)."""
        return self._out.position

    def write(self, shop_url: str, items: Sequence[ShopItem]) -> None:
        """Append one row per item."""
        if items:
            self._out.write_rows(
                _csv_row(shop_url, item, self._encode, self._safe) for item in items
            )

    def sync(self) -> None:
        """fsync the file."""
        self._out.sync()

    def close(self) -> None:
        """Flush, fsync and close the file."""
        self._out.close()


def spool_path(path: Path) -> Path:
    """Where the Parquet sink spools rows until it writes ``path``."""
    return path.with_name(path.name + ".spool.jsonl")


def _no_pyarrow(install: str) -> SinkError:
    return SinkError(f"Parquet needs pyarrow: {install} (or choose --format jsonl or csv)")


#: The Parquet export's columns: the item's fields, then the shop.
_ITEM_COLUMNS: Final[tuple[tuple[str, ColumnKind], ...]] = (
    ("item_id", "text"),
    ("title", "text"),
    ("img", "text"),
    ("category_path", "texts"),
    ("category_name", "text"),
    ("price", "text"),
    ("quantity", "int"),
    ("sale_info", "sale_info"),
    ("shop_url", "text"),
)


class _SpoolRow(msgspec.Struct, gc=False):
    """A spooled row read back: the item's fields plus its shop."""

    item_id: str
    shop_url: str
    title: str = ""
    img: str = ""
    category_path: list[Any] = msgspec.field(default_factory=list)
    category_name: str = ""
    price: str = ""
    quantity: int | None = None
    sale_info: dict[str, Any] | None = None


class ParquetSink:
    """Parquet, written at :meth:`close` from a crash-safe JSON Lines spool."""

    def __init__(self, path: Path, *, resume_at: int = 0) -> None:
        load_pyarrow(_no_pyarrow)  # fail before any request is sent
        self.path = path
        self.spool = spool_path(path)
        self._jsonl = JsonlSink(self.spool, resume_at=resume_at)

    @property
    def position(self) -> int:
        """Bytes of the spool written and flushed so far."""
        return self._jsonl.position

    def write(self, shop_url: str, items: Sequence[ShopItem]) -> None:
        """Append the rows to the spool."""
        self._jsonl.write(shop_url, items)

    def sync(self) -> None:
        """fsync the spool (the Parquet file is written from it at close)."""
        self._jsonl.sync()

    def close(self) -> None:
        """Close the spool and (re)write the Parquet file from it, atomically."""
        self._jsonl.close()
        size = self.spool.stat().st_size
        if spool_size_of(self.path, _PARQUET_META_KEY, _no_pyarrow) == size:
            return  # the file already holds exactly this spool
        tmp = self.path.with_name(self.path.name + ".tmp")
        write_parquet(
            tmp,
            _ITEM_COLUMNS,
            self._spooled_batches(),
            missing=_no_pyarrow,
            metadata={_PARQUET_META_KEY: str(size).encode()},
        )
        with open(tmp, "rb") as done:
            os.fsync(done.fileno())
        os.replace(tmp, self.path)  # readers see the old file or the new, never half

    def _spooled_batches(self) -> Iterator[list[dict[str, Any]]]:
        decode = msgspec.json.Decoder(_SpoolRow).decode
        rows: list[dict[str, Any]] = []
        with open(self.spool, "rb") as spool:
            for line in spool:
                row = decode(line)
                rows.append(
                    {
                        "item_id": row.item_id,
                        "title": row.title,
                        "img": row.img,
                        "category_path": [str(c) for c in row.category_path],
                        "category_name": row.category_name,
                        "price": row.price,
                        "quantity": row.quantity,
                        "sale_info": row.sale_info,
                        "shop_url": row.shop_url,
                    }
                )
                if len(rows) >= _PARQUET_BATCH:
                    yield rows
                    rows = []
        if rows:
            yield rows


def open_sink(path: Path, fmt: ExportFormat, *, resume_at: int = 0, csv_raw: bool = False) -> Sink:
    """Open the export ``path`` in format ``fmt``, continuing at byte ``resume_at``;
    ``csv_raw`` turns off the CSV's formula neutralisation.

    Raises:
        SinkError: the file cannot be opened, is shorter than ``resume_at``, or the
            format needs a library that is not installed.
    """
    if fmt == "jsonl":
        return JsonlSink(path, resume_at=resume_at)
    if fmt == "csv":
        return CsvSink(path, resume_at=resume_at, raw=csv_raw)
    if fmt == "parquet":
        return ParquetSink(path, resume_at=resume_at)
    raise SinkError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


def write_rows(
    path: Path,
    fmt: ExportFormat,
    rows: Iterable[Any],
    columns: Sequence[tuple[str, ColumnKind]],
    cells: Callable[[Any], Sequence[object]],
) -> int:
    """Write ``rows`` (msgspec Structs) to the new file ``path`` in ``fmt``, synced to
    disk; returns the rows written.

    JSON Lines holds each row as msgspec encodes it; CSV a header of the ``columns``'
    names, then the ``cells`` of each row (text neutralised as in :class:`CsvSink`, CRLF
    rows); Parquet the ``cells`` under the ``columns``' kinds, in bounded row groups.

    Raises:
        SinkError: Parquet without pyarrow, or an unknown format.
        OSError: ``path`` cannot be written.
    """
    if fmt == "jsonl":
        encode = msgspec.json.Encoder().encode
        with open(path, "wb") as out:
            written = 0
            for row in rows:
                out.write(encode(row) + b"\n")
                written += 1
            out.flush()
            os.fsync(out.fileno())
        return written
    if fmt == "csv":
        with open(path, "w", encoding="utf-8", newline="") as text:
            writer = csv.writer(text, lineterminator="\r\n")
            writer.writerow([name for name, _kind in columns])
            written = 0
            for row in rows:
                writer.writerow([neutralise(c) if isinstance(c, str) else c for c in cells(row)])
                written += 1
            text.flush()
            os.fsync(text.fileno())
        return written
    if fmt == "parquet":
        names = [name for name, _kind in columns]
        batches = (
            [dict(zip(names, cells(row), strict=True)) for row in batch]
            for batch in _batched(rows, _PARQUET_BATCH)
        )
        written = write_parquet(path, columns, batches, missing=_no_pyarrow)
        with open(path, "rb") as done:
            os.fsync(done.fileno())
        return written
    raise SinkError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _batched(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(rows)
    while batch := list(itertools.islice(it, size)):
        yield batch
