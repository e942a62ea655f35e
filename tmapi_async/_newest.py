"""New listings only: a shop read newest first, stopped at the first item already known.

A harvest given ``known`` lists each shop with ``sort="time_down"`` and reads it a page at
a time (:class:`NewListingsCrawl`): each page's items that ``known`` does not hold are new,
and the shop stops at the first page holding one it does (or at the end of the listing).
A shop with fewer new listings than a page holds costs one request. It relies on the
newest-first order, and cannot see what a full harvest and a diff see: price changes,
sell-outs, items removed.
"""

from __future__ import annotations

from collections.abc import Callable

from ._errors import MaxPagesReached, TmapiError
from ._models import ShopItem, ShopItemsPage
from ._protocol import ShopQuery
from ._shop import ShopCheckpoint, ShopCrawl

__all__ = ["NewListingsCrawl"]


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
