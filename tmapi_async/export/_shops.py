"""The shops file: one row per shop (who sells), beside the items export, resumable.

``harvest --with-profiles`` writes ``OUTPUT.shops.EXT`` in the export's own format, one
row per shop: ``shop_url`` (the home page the items carry, to join on), the profile's
fields, its ``ratings`` and its ``categories`` (nested in JSON Lines and Parquet, JSON
text in CSV, whose text cells are neutralised as the items' are).

:class:`ShopsJournal` keeps the progress in the harvest's state file, in tables of its
own: each answer (a profile, a category tree) is committed as it arrives, so no answer
is asked twice; once both are in, the row is appended to the shops file and committed
with the file's position, and a run killed between the two cuts the file back on reopen
(exactly as the items export: one row per shop, exactly once).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from .._formats import ExportFormat
from .._shop_profile import Category, ShopCategories, ShopProfile, ShopRating
from ._parquet import ColumnKind, load_pyarrow, write_parquet
from ._sinks import (
    SinkError,
    _AppendFile,
    _as_is,
    _CsvFile,
    _no_pyarrow,
    neutralise,
    spool_path,
)

__all__ = ["PROFILE_PARTS", "ShopRow", "ShopsJournal", "shop_row", "shops_path"]

Part = Literal["shop_info", "category"]
#: The two answers a shop's row is made of.
PROFILE_PARTS: Final[tuple[Part, ...]] = ("shop_info", "category")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS profile_parts (   -- answers held until the shop's row is written
    url TEXT NOT NULL,
    part TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (url, part)
);
CREATE TABLE IF NOT EXISTS profile_rows (url TEXT PRIMARY KEY, end_pos INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS profile_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def shops_path(output: Path) -> Path:
    """The shops file beside the export ``output``: ``OUTPUT.shops.EXT``."""
    return output.with_name(f"{output.name}.shops{output.suffix}")


_PROFILE_FIELDS: Final = tuple(
    (name, ShopProfile.__annotations__[name], default)
    for name, default in zip(
        ShopProfile.__struct_fields__, ShopProfile.__struct_defaults__, strict=True
    )
    if name not in ("shop_url", "shop_ratings")
)

ShopRow: Any = msgspec.defstruct(
    "ShopRow",
    [
        ("shop_url", str),
        *_PROFILE_FIELDS,
        ("ratings", list[ShopRating], msgspec.field(default_factory=list)),
        ("categories", list[Category], msgspec.field(default_factory=list)),
        ("is_custom", bool, False),
    ],
    module=__name__,
    gc=False,
)
ShopRow.__doc__ = """One row of the shops file: the shop harvested, who sells, how it sorts its
catalogue.

``shop_url`` is the home page the items carry (the profile's own ``shop_url`` is not
repeated); then every other field of :class:`~tmapi_async.ShopProfile`; ``ratings`` are
its ``shop_ratings``; ``categories`` and ``is_custom`` come from the category tree.
"""


#: The columns of the shops file, in order.
SHOP_COLUMNS: Final[tuple[str, ...]] = ShopRow.__struct_fields__
_TEXT: Final = frozenset(name for name, kind, *_ in _PROFILE_FIELDS if kind == "str") | {"shop_url"}
_KINDS: Final = {name: kind for name, kind, *_ in _PROFILE_FIELDS} | {"is_custom": "bool"}


def shop_row(shop_url: str, profile: ShopProfile, categories: ShopCategories) -> Any:
    """The :data:`ShopRow` of ``shop_url`` from its two answers."""
    fields = {name: getattr(profile, name) for name, *_ in _PROFILE_FIELDS}
    return ShopRow(
        shop_url=shop_url,
        **fields,
        ratings=profile.shop_ratings,
        categories=categories.categories,
        is_custom=categories.is_custom,
    )


_encode = msgspec.json.Encoder().encode
_decode_row = msgspec.json.Decoder(ShopRow).decode


class _JsonlShops:
    """JSON Lines: one object per shop, ratings and categories nested."""

    def __init__(self, path: Path, resume_at: int) -> None:
        self.path = path
        self._out = _AppendFile(path, resume_at)

    @property
    def position(self) -> int:
        return self._out.position

    def write(self, row: Any) -> None:
        self._out.append(_encode(row) + b"\n")

    def close(self) -> None:
        self._out.close()


class _CsvShops:
    """CSV: ratings and categories as JSON text; text cells neutralised unless ``raw``."""

    def __init__(self, path: Path, resume_at: int, raw: bool) -> None:
        self.path = path
        self._safe = _as_is if raw else neutralise
        self._out = _CsvFile(path, resume_at, SHOP_COLUMNS)

    @property
    def position(self) -> int:
        return self._out.position

    def write(self, row: Any) -> None:
        cells: list[object] = []
        for name in SHOP_COLUMNS:
            value = getattr(row, name)
            if name in _TEXT:
                cells.append(self._safe(value))
            elif isinstance(value, list):  # JSON text: starts with [, never a formula
                cells.append(_encode(value).decode())
            else:
                cells.append("" if value is None else value)
        self._out.write_rows([cells])

    def close(self) -> None:
        self._out.close()


class _ParquetShops:
    """Parquet, written at close from a JSON Lines spool (as the items' Parquet)."""

    def __init__(self, path: Path, resume_at: int) -> None:
        load_pyarrow(_no_pyarrow)  # fail before any request is sent
        self.path = path
        self._spool = _JsonlShops(spool_path(path), resume_at)

    @property
    def position(self) -> int:
        return self._spool.position

    def write(self, row: Any) -> None:
        self._spool.write(row)

    def close(self) -> None:
        self._spool.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        write_parquet(tmp, _PARQUET_COLUMNS, _batches(self._spool.path), missing=_no_pyarrow)
        tmp.replace(self.path)  # readers see the old file or the new, never half


def _batches(path: Path, size: int = 5000) -> Iterator[list[dict[str, Any]]]:
    """The spooled rows as Parquet holds them, ``size`` at a time (bounded memory)."""
    rows: list[dict[str, Any]] = []
    with open(path, "rb") as spool:
        for line in spool:
            rows.append(_parquet_row(_decode_row(line)))
            if len(rows) >= size:
                yield rows
                rows = []
    if rows:
        yield rows


def _parquet_row(row: Any) -> dict[str, Any]:
    """A row as Parquet holds it: categories nest two levels (1688's own depth); deeper
    sub-categories stay, as JSON text, in the second level's ``children``."""
    data: dict[str, Any] = msgspec.to_builtins(row)
    data["categories"] = [
        {
            **{k: top[k] for k in ("id", "name", "full_name", "count")},
            "children": [
                {**{k: c[k] for k in ("id", "name", "full_name", "count")},
                 "children": _encode(c["children"]).decode()}
                for c in top["children"]
            ],
        }
        for top in data["categories"]
    ]  # fmt: skip
    return data


def _column_kind(name: str) -> ColumnKind:
    if name in ("ratings", "categories"):
        return name  # type: ignore[return-value]
    kind = _KINDS.get(name, "str")
    return "bool" if kind == "bool" else "int" if kind.startswith("int") else "text"


#: The shops file's Parquet columns.
_PARQUET_COLUMNS: Final[tuple[tuple[str, ColumnKind], ...]] = tuple(
    (name, _column_kind(name)) for name in SHOP_COLUMNS
)


_Sink = _JsonlShops | _CsvShops | _ParquetShops


def _open_shops(path: Path, fmt: ExportFormat, resume_at: int, csv_raw: bool) -> _Sink:
    if fmt == "csv":
        return _CsvShops(path, resume_at, csv_raw)
    if fmt == "parquet":
        return _ParquetShops(path, resume_at)
    return _JsonlShops(path, resume_at)


_profile_decoder = msgspec.json.Decoder(ShopProfile)
_categories_decoder = msgspec.json.Decoder(ShopCategories)


class ShopsJournal:
    """The shops file and its progress, in the harvest's state file.

    Open it with :meth:`open` after the items' :class:`~tmapi_async.export.ExportJournal`
    (which checks that the state file is this harvest's); :meth:`close` it before.
    """

    def __init__(self, db: sqlite3.Connection, sink: _Sink) -> None:
        self._db = db
        self._sink = sink
        self.path = sink.path  #: the shops file

    @classmethod
    def open(
        cls, state_path: Path, output: Path, fmt: ExportFormat, *, csv_raw: bool = False
    ) -> ShopsJournal:
        """Open the progress in ``state_path`` and reopen the shops file of the export
        ``output``, cut back to its last committed row.

        Raises:
            SinkError: the shops file cannot be opened (or Parquet needs pyarrow).
            sqlite3.Error: the state file cannot be used.
        """
        path = shops_path(output)
        db = sqlite3.connect(state_path, isolation_level=None)
        # As the items' journal: a commit reaches the OS before it returns (kill -9 safe).
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        last = db.execute("SELECT MAX(end_pos) FROM profile_rows").fetchone()[0] or 0
        started = db.execute("SELECT value FROM profile_meta WHERE key = 'position'").fetchone()
        if started is None and path.exists():
            db.close()
            raise SinkError(
                f"{path} already exists and the state file holds no shop of it: "
                "remove it or choose another --output (nothing was overwritten)"
            )
        position = max(last, int(started[0]) if started else 0)
        try:
            sink = _open_shops(path, fmt, position, csv_raw)
        except SinkError:
            db.close()
            raise
        if started is None:  # a CSV header, written before any row, is committed too
            db.execute(
                "INSERT OR REPLACE INTO profile_meta VALUES ('position', ?)", (str(sink.position),)
            )
        return cls(db, sink)

    async def open_profile(self, shop_url: str) -> frozenset[str] | None:
        """The answers already held for ``shop_url``; ``None`` when its row is written.

        Both held but no row (a run killed in between): the row is written now.
        """
        if self._db.execute("SELECT 1 FROM profile_rows WHERE url = ?", (shop_url,)).fetchone():
            return None
        held = self._parts(shop_url)
        if len(held) == len(PROFILE_PARTS):
            self._write(shop_url, held)
            return None
        return frozenset(held)

    async def record_part(
        self, shop_url: str, part: Part, answer: ShopProfile | ShopCategories
    ) -> bool:
        """Commit one answer; once both are held, write and commit the shop's row.
        Returns whether the row was written."""
        db = self._db
        db.execute(
            "INSERT OR REPLACE INTO profile_parts VALUES (?, ?, ?)",
            (shop_url, part, _encode(answer)),
        )
        held = self._parts(shop_url)
        if len(held) < len(PROFILE_PARTS):
            return False
        self._write(shop_url, held)
        return True

    def _parts(self, shop_url: str) -> dict[str, bytes]:
        rows = self._db.execute(
            "SELECT part, data FROM profile_parts WHERE url = ?", (shop_url,)
        ).fetchall()
        return {part: bytes(data) for part, data in rows}

    def _write(self, shop_url: str, held: dict[str, bytes]) -> None:
        profile = _profile_decoder.decode(held["shop_info"])
        categories = _categories_decoder.decode(held["category"])
        self._sink.write(shop_row(shop_url, profile, categories))
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO profile_rows VALUES (?, ?)", (shop_url, self._sink.position))
            db.execute("DELETE FROM profile_parts WHERE url = ?", (shop_url,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @property
    def rows(self) -> int:
        """Shops with a row in the shops file (every run so far)."""
        return int(self._db.execute("SELECT COUNT(*) FROM profile_rows").fetchone()[0])

    def close(self) -> None:
        """Finish the shops file (Parquet: write it) and let the state file go."""
        try:
            self._sink.close()
        finally:
            self._db.close()
