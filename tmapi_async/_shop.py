"""Bookkeeping of one shop's harvest, free of I/O: which pages to ask for, which items are new.

The plan comes from page 1: ``ceil(total_count / page_size)`` with the page size the
server *answered with*. Listings drift while they are read (docs/api-facts.md, "Paging"): new
products appear at the front, so later pages shift back and ``total_count`` grows. To
lose nothing, every page is placed by its distance from the *end* of the listing, which
front insertions do not move: page ``k`` read when the shop had ``T`` items covers the
positions ``[T - k*s, T - (k-1)*s)`` counted from the end. When every planned page is in,
any hole in ``[0, T_max)`` is a run of products no page showed; the pages that hold it now
are fetched once more. Without drift the pages tile the range exactly and nothing extra
is ever fetched. Items seen twice (the shifted overlap) are dropped by ``item_id``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ._errors import TmapiError
from ._models import ShopItem, ShopItemsPage
from ._protocol import ShopQuery

ShopStatus = Literal["complete", "partial", "failed"]


@dataclass(slots=True)
class ShopResult:
    """What a harvest of one shop produced.

    Attributes:
        shop_url: the shop's home page ``https://NAME.1688.com/`` (for a URL that was
            not valid: the text as given).
        items: every product once, in page order (empty when a harvest streams
            items elsewhere, see ``keep_items``). A page fetched again after the
            listing drifted adds its new products to that page's.
        total_count: the shop's product count as the API last reported it.
        pages: pages of the listing fetched successfully (in this run and before it).
        requests: requests sent for this shop in this run, retries included (each billed).
        status: ``"complete"``; ``"partial"`` when some pages failed for good;
            ``"failed"`` when nothing could be read (bad URL, page 1 failed).
        error: the first error that made the shop partial or failed.
        item_count: products harvested, also when ``items`` is not kept.
    """

    shop_url: str
    items: list[ShopItem] = field(default_factory=list)
    total_count: int = 0
    pages: int = 0
    requests: int = 0
    status: ShopStatus = "complete"
    error: TmapiError | None = None
    item_count: int = 0


@dataclass(slots=True)
class ShopCheckpoint:
    """What an earlier run already harvested of a shop (see :class:`Journal`).

    Attributes:
        pages: page number → the ``total_count`` that page reported when it was read.
        page_size: the page size the server answered with on page 1.
        seen: ``item_id`` of every product already exported.
        status: the shop's status if an earlier run finished it, else ``None``.
        error: why an earlier run left the shop partial or failed.
        item_count: products exported so far (``seen`` may be left empty for a
            complete shop, which is not fetched again).
    """

    pages: dict[int, int] = field(default_factory=dict)
    page_size: int = 0
    seen: set[str] = field(default_factory=set)
    status: ShopStatus | None = None
    error: str | None = None
    item_count: int = 0


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


class ShopCrawl:
    """The state of one shop: plan, pages in flight and done, items seen.

    Drive it with :meth:`take_pages` (pages to request now), then :meth:`accept` or
    :meth:`reject` for each answer, until :attr:`finished`.
    """

    __slots__ = (
        "_empty_seen",
        "_extra_budget",
        "_in_flight",
        "_last_page",
        "_spans",
        "_todo",
        "done",
        "error",
        "failed_pages",
        "keep_items",
        "page_items",
        "page_size",
        "query",
        "requests",
        "seen",
        "seq",
        "total_count",
    )

    def __init__(
        self,
        query: ShopQuery,
        *,
        seq: int = 0,
        keep_items: bool = True,
        checkpoint: ShopCheckpoint | None = None,
    ) -> None:
        self.query = query
        self.seq = seq  #: opening order: earlier shops' pages go first
        self.keep_items = keep_items
        self.page_items: dict[int, list[ShopItem]] = {}  # kept items, by page
        self.seen: set[str] = set()
        self.done: dict[int, int] = {}  # page → total_count it reported
        self.failed_pages: set[int] = set()
        self.error: TmapiError | None = None
        self.requests = 0
        self.page_size = 0  # as answered by the server; 0 until page 1 is in
        self.total_count = 0
        self._last_page = 1  # plan: pages 1.._last_page
        self._todo: set[int] = {1}
        self._in_flight: set[int] = set()
        self._spans: list[tuple[int, int]] = []  # from-the-end coverage, merged
        self._empty_seen = False
        self._extra_budget = 0
        if checkpoint is not None and checkpoint.pages:
            self._restore(checkpoint)

    def _restore(self, checkpoint: ShopCheckpoint) -> None:
        self.seen = set(checkpoint.seen)
        self.page_size = checkpoint.page_size
        for page, total in checkpoint.pages.items():
            self._record(page, total, self.page_size)
        self.total_count = max(checkpoint.pages.values())
        self._last_page = max(1, math.ceil(self.total_count / self.page_size))
        self._extra_budget = self._last_page
        self._todo = set(range(1, self._last_page + 1)) - self.done.keys()
        if not self._todo:
            self._plan_refills()

    # -- driving ---------------------------------------------------------------------

    def take_pages(self) -> list[int]:
        """Pages to request now (removed from the plan until answered)."""
        pages = sorted(self._todo)
        self._todo.clear()
        self._in_flight.update(pages)
        return pages

    def accept(self, page: int, answer: ShopItemsPage) -> list[ShopItem]:
        """Record a page's answer; return its items not seen before, in order."""
        self._in_flight.discard(page)
        size = answer.page_size or self.page_size or self.query.page_size
        if page == 1 and not self.page_size:
            self.page_size = size
            self._last_page = max(1, math.ceil(answer.total_count / size))
            self._extra_budget = self._last_page  # refills never cost more than the plan
            self._todo.update(range(2, self._last_page + 1))
        if not answer.items and answer.total_count > (page - 1) * size:
            self._empty_seen = True  # the listing is shorter than it claims: stop here
            self._last_page = min(self._last_page, page - 1)
            self._todo = {p for p in self._todo if p <= self._last_page}
        elif answer.total_count > self.total_count and not self._empty_seen:
            grown = max(1, math.ceil(answer.total_count / self.page_size))
            self._todo.update(range(self._last_page + 1, grown + 1))
            self._last_page = max(self._last_page, grown)
        self.total_count = max(self.total_count, answer.total_count)
        self._record(page, answer.total_count, size)
        fresh, seen = answer.items, self.seen
        ids = [item.item_id for item in fresh]
        if seen.isdisjoint(ids) and len(set(ids)) == len(ids):
            seen.update(ids)  # the usual page: all new, checked in C
        else:
            fresh = []
            for item in answer.items:  # drop repeats of earlier pages and of this one
                if item.item_id not in seen:
                    seen.add(item.item_id)
                    fresh.append(item)
        if self.keep_items and fresh:
            self.page_items.setdefault(page, []).extend(fresh)
        if not self._todo and not self._in_flight:
            self._plan_refills()
        return fresh

    def reject(self, page: int, error: TmapiError) -> None:
        """Record that a page failed for good; the shop goes on without it."""
        self._in_flight.discard(page)
        self.failed_pages.add(page)
        if self.error is None:
            self.error = error
        if page == 1 and not self.page_size:
            self._todo.clear()  # no plan without page 1
        elif not self._todo and not self._in_flight:
            self._plan_refills()

    @property
    def finished(self) -> bool:
        """True once nothing is left to request or waiting for an answer."""
        return not self._todo and not self._in_flight

    @property
    def pages_planned(self) -> int:
        """Pages the shop needs as far as is known now."""
        return self._last_page

    # -- drift ------------------------------------------------------------------------

    def _record(self, page: int, total: int, size: int) -> None:
        self.done[page] = max(total, self.done.get(page, 0))
        lo, hi = max(0, total - page * size), max(0, total - (page - 1) * size)
        if lo < hi:
            self._spans = _merge([*self._spans, (lo, hi)])

    def _holes(self) -> list[tuple[int, int]]:
        holes, pos = [], 0
        for lo, hi in self._spans:
            if lo > pos:
                holes.append((pos, lo))
            pos = max(pos, hi)
        if pos < self.total_count:
            holes.append((pos, self.total_count))
        return holes

    def _plan_refills(self) -> None:
        """Queue the pages that now hold products no page has shown yet."""
        if self._empty_seen or not self.page_size or self.failed_pages:
            return
        total, size = self.total_count, self.page_size
        pages: set[int] = set()
        for lo, hi in self._holes():
            # positions from the end [lo, hi) are indexes [total - hi, total - lo)
            first, last = (total - hi) // size + 1, (total - lo - 1) // size + 1
            pages.update(range(first, last + 1))
        pages = set(sorted(pages)[: self._extra_budget])
        self._extra_budget -= len(pages)
        self._todo.update(pages)

    # -- outcome ----------------------------------------------------------------------

    def result(self) -> ShopResult:
        """The shop's :class:`ShopResult` (call once :attr:`finished`)."""
        if not self.done:
            status: ShopStatus = "failed"
        elif self.failed_pages:
            status = "partial"
        else:
            status = "complete"
        return ShopResult(
            shop_url=self.query.shop_url,
            items=[item for page in sorted(self.page_items) for item in self.page_items[page]],
            total_count=self.total_count,
            pages=len(self.done),
            requests=self.requests,
            status=status,
            error=self.error if status != "complete" else None,
            item_count=len(self.seen),
        )
