"""The items of an earlier export, asked one at a time: the ``known`` of a harvest of new
listings (``harvest(..., sort="time_down", known=KnownItems.from_export("monday.jsonl"))``,
see :mod:`tmapi_async._newest`).

:class:`KnownItems` keeps the earlier export's ids in a temporary on-disk SQLite index (one
clustered table keyed by shop and item id), so an export of millions of items costs disk,
not memory; the index is removed when the object is closed or collected.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import tempfile
import weakref
from pathlib import Path
from typing import Final

from ._export_reader import read_export
from .export._sinks import ExportFormat

__all__ = ["KnownItems"]

_BATCH: Final = 10_000


def _drop(db: sqlite3.Connection, tmp: tempfile.TemporaryDirectory[str]) -> None:
    db.close()
    tmp.cleanup()


class KnownItems:
    """``known(shop_url, item_id)``: whether the earlier export holds that item of that shop.

    Build it with :meth:`from_export`; it is the ``known`` predicate of
    :meth:`tmapi_async.Client.harvest`.
    """

    def __init__(self, db: sqlite3.Connection, tmp: tempfile.TemporaryDirectory[str]) -> None:
        self._db = db
        self._finalizer = weakref.finalize(self, _drop, db, tmp)
        self.items = db.execute("SELECT count(*) FROM known").fetchone()[0]
        self.shops = db.execute("SELECT count(DISTINCT shop) FROM known").fetchone()[0]

    @classmethod
    def from_export(
        cls,
        path: Path | str,
        fmt: ExportFormat | None = None,
        *,
        workdir: Path | str | None = None,
    ) -> KnownItems:
        """Index the (shop, item) pairs of the export ``path`` (any format; from the
        extension unless ``fmt``).

        Raises:
            ExportReadError: the export is missing, of an unknown format, or malformed.
        """
        tmp = tempfile.TemporaryDirectory(prefix="tmapi-since-", dir=workdir)
        try:
            db = sqlite3.connect(os.path.join(tmp.name, "known.sqlite"), check_same_thread=False)
            db.executescript(
                "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-32768;"
                "CREATE TABLE known (shop TEXT, item TEXT, PRIMARY KEY (shop, item)) WITHOUT ROWID;"
            )
            rows = read_export(Path(path), fmt)
            while batch := list(itertools.islice(rows, _BATCH)):
                db.executemany(
                    "INSERT OR IGNORE INTO known VALUES (?, ?)",
                    [(row.shop_url, row.item_id) for row in batch],
                )
            db.commit()
        except BaseException:
            tmp.cleanup()
            raise
        return cls(db, tmp)

    def __call__(self, shop_url: str, item_id: str) -> bool:
        """Whether the earlier export holds ``item_id`` of ``shop_url``."""
        row = self._db.execute(
            "SELECT 1 FROM known WHERE shop = ? AND item = ?", (shop_url, item_id)
        ).fetchone()
        return row is not None

    def close(self) -> None:
        """Remove the index now (also done when the object is collected)."""
        self._finalizer()

    def __repr__(self) -> str:
        return f"KnownItems({self.items} items of {self.shops} shops)"
