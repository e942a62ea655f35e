"""The items of an earlier export, asked one at a time: the ``known`` of a harvest of new
listings (``harvest(..., sort="time_down", known=KnownItems.from_export("monday.jsonl"))``,
see :mod:`tmapi_async._newest`).

:class:`KnownItems` keeps the earlier export's ids in a temporary on-disk SQLite index (one
clustered table keyed by shop and item id), so an export of millions of items costs disk,
not memory; the index is removed when the object is closed or collected. The ids of the
shops asked about last are kept as sets (a harvest asks about a few open shops at a time),
so a lookup is a set lookup, not a query.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import tempfile
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Final

from ._export_reader import read_export
from .export._sinks import ExportFormat

__all__ = ["KnownItems"]

_BATCH: Final = 10_000
_SHOPS_CACHED: Final = 64  # more than a harvest keeps open at once (2 x concurrency)


def _drop(db: sqlite3.Connection, tmp: tempfile.TemporaryDirectory[str]) -> None:
    db.close()
    tmp.cleanup()


class KnownItems:
    """``known(shop_url, item_id)``: whether the earlier export holds that item of that shop.

    Build it with :meth:`from_export`; it is the ``known`` predicate of
    :meth:`tmapi_async.Client.harvest`.

    Attributes:
        items: the (shop, item) pairs indexed.
        shops: the shops they belong to.
    """

    def __init__(self, db: sqlite3.Connection, tmp: tempfile.TemporaryDirectory[str]) -> None:
        self._db = db
        self._cache: OrderedDict[str, frozenset[str]] = OrderedDict()
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
        ids = self._cache.get(shop_url)
        if ids is None:
            rows = self._db.execute("SELECT item FROM known WHERE shop = ?", (shop_url,))
            ids = self._cache[shop_url] = frozenset(item for (item,) in rows)
            if len(self._cache) > _SHOPS_CACHED:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(shop_url)
        return item_id in ids

    def close(self) -> None:
        """Remove the index now (also done when the object is collected)."""
        self._finalizer()

    def __repr__(self) -> str:
        return f"KnownItems({self.items} items of {self.shops} shops)"
