"""New listings only: a shop read newest first, stopped at the first item already known.

A harvest given ``known`` lists each shop with ``sort="time_down"`` and reads it a page at
a time (:class:`NewListingsCrawl`): each page's items that ``known`` does not hold are new,
and the shop stops at the first page holding one it does (or at the end of the listing).
A shop with fewer new listings than a page holds costs one request. It relies on the
newest-first order, and cannot see what a full harvest and a diff see: price changes,
sell-outs, items removed.

``known`` is usually an earlier export's items, asked one at a time: :class:`KnownItems`
(``harvest(..., sort="time_down", known=KnownItems.from_export("monday.jsonl"))``) keeps
their ids in a temporary on-disk SQLite index (one clustered table keyed by shop and item
id), so an export of millions of items costs disk, not memory; the index is removed when
the object is closed or collected. The ids of the shops asked about last are kept as
sets (a harvest asks about a few open shops at a time), so a lookup is a set lookup, not
a query.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import tempfile
import weakref
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from ._errors import MaxPagesReached, TmapiError
from ._models import ShopItem, ShopItemsPage
from ._protocol import ShopQuery
from ._shop import ShopCheckpoint, ShopCrawl

if TYPE_CHECKING:
    from ._formats import ExportFormat

__all__ = ["KnownItems", "NewListingsCrawl"]


class NewListingsCrawl(ShopCrawl):
    """One shop read newest first, one page at a time, until a page shows a known item.

    ``known(item_id)`` tells whether the earlier export holds an item of this shop. A page's
    unknown items are new (and returned by :meth:`accept`); the shop goes on to the next page
    only when no item of this one was known, the page was full and the listing goes on, and
    ``max_pages`` allows it. A failed page ends the shop (``partial``, or ``failed`` when it
    was page 1). A resumed shop is read again from page 1: the items an earlier run exported
    (``checkpoint.seen``) are not returned twice.
    """

    __slots__ = ("_known", "_limit", "_next_page", "_out")

    def __init__(
        self,
        query: ShopQuery,
        *,
        known: Callable[[str], bool],
        seq: int = 0,
        keep_items: bool = True,
        checkpoint: ShopCheckpoint | None = None,
        max_pages: int | None = None,
    ) -> None:
        super().__init__(query, seq=seq, keep_items=keep_items)  # the plan starts at page 1
        if checkpoint is not None:
            self.seen = set(checkpoint.seen)
        self._known = known
        self._limit = max_pages
        self._next_page: int | None = 1
        self._out = False

    def drop(self, page: int) -> None:
        self._out = False

    @property
    def idle(self) -> bool:
        return not self._out

    def take_pages(self) -> list[int]:
        """The next page, when it is due and none is out."""
        if self._out or self._next_page is None:
            return []
        page, self._next_page, self._out = self._next_page, None, True
        return [page]

    def accept(self, page: int, answer: ShopItemsPage) -> list[ShopItem]:
        """Record a page; return its items that are neither known nor exported already."""
        self._out = False
        size = answer.page_size or self.page_size or self.query.page_size
        self.page_size = self.page_size or size
        self.total_count = max(self.total_count, answer.total_count)
        self.done[page] = max(answer.total_count, self.done.get(page, 0))
        fresh: list[ShopItem] = []
        hit = False
        for item in answer.items:
            if self._known(item.item_id):
                hit = True
            elif item.item_id not in self.seen:
                self.seen.add(item.item_id)
                fresh.append(item)
        if self.keep_items and fresh:
            self.page_items.setdefault(page, []).extend(fresh)
        listing_goes_on = bool(answer.items) and page * size < answer.total_count
        if not hit and listing_goes_on:
            if self._limit is not None and page >= self._limit:
                self.reject(page + 1, MaxPagesReached(f"stopped at max_pages={self._limit}"))
            else:
                self._next_page = page + 1
        return fresh

    def reject(self, page: int, error: TmapiError) -> None:
        """A page failed for good: the shop ends here."""
        self._out = False
        self._next_page = None
        self.failed_pages.add(page)
        if self.error is None:
            self.error = error

    @property
    def finished(self) -> bool:
        """True once a known item, the end, a failure or ``max_pages`` stopped the shop."""
        return not self._out and self._next_page is None

    @property
    def pages_planned(self) -> int:
        """Pages read so far, and the one out or due."""
        return len(self.done) + (self._out or self._next_page is not None)


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
        from ._export_reader import read_export  # a harvest without known= never reads one

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
