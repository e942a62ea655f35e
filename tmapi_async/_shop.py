"""Bookkeeping of one shop's harvest, free of I/O: which pages to ask for, which items are new.

The plan comes from page 1: ``ceil(total_count / page_size)`` with the page size the
server *answered with*, or the number of items page 1 carries when the two disagree.
The plan is a counter, never a list of pages, and at most ``window`` pages are out at
once; ``total_count`` is only a hint: a short or empty page where more were promised
ends the listing there, so a lying total costs the real pages plus one window, and
``max_pages`` caps any plan (the shop then ends ``"partial"`` with
:class:`MaxPagesReached`).

Listings drift while they are read (docs/api-facts.md, "Paging"): new
products appear at the front, so later pages shift back and ``total_count`` grows. To
lose nothing, every page is placed by its distance from the *end* of the listing, which
front insertions do not move: page ``k`` read when the shop had ``T`` items covers the
positions ``[T - k*s, T - (k-1)*s)`` counted from the end. When every planned page is in,
any hole in ``[0, T_max)`` is a run of products no page showed; the pages that hold it now
are fetched once more. Without drift the pages tile the range exactly and nothing extra
is ever fetched. Items seen twice (the shifted overlap, or twice on one page) are dropped
by ``item_id``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Literal

from ._errors import MaxPagesReached, TmapiError
from ._models import ShopItem, ShopItemsPage
from ._protocol import ShopQuery

ShopStatus = Literal["complete", "partial", "failed"]

DEFAULT_MAX_PAGES = 5_000
"""The most pages read of one shop unless told otherwise.

1688's biggest shops list products in the tens of thousands: a few thousand pages of 20
(20,000 products are 1,000 pages). 5,000 pages (100,000 products at 20 a page) is
several times what any real shop needs, yet caps what a listing that never ends (a
server answering full pages forever) can bill at 5,000 requests. Pass ``max_pages`` to
read more; a shop that reaches the cap ends ``"partial"`` with :class:`MaxPagesReached`.
"""

DEFAULT_WINDOW = 8
"""Pages of one shop out at once unless told otherwise (the client's default concurrency)."""


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


_START, _END = itemgetter(0), itemgetter(1)


def _cover(spans: list[tuple[int, int]], lo: int, hi: int) -> None:
    """Add ``[lo, hi)`` to ``spans`` (sorted, apart), merging the spans it overlaps or
    touches, in place.

    Pages come back out of order, so up to a window's worth of spans are apart at
    once: two binary searches and one slice keep a page's cost flat, where sorting
    every span again cost more than the rest of the page's bookkeeping.
    """
    first = bisect_left(spans, lo, key=_END)  # the first span reaching lo
    last = bisect_right(spans, hi, key=_START)  # past the last span starting by hi
    if first < last:
        lo, hi = min(lo, spans[first][0]), max(hi, spans[last - 1][1])
    spans[first:last] = [(lo, hi)]


class ShopCrawl:
    """The state of one shop: plan, pages in flight and done, items seen.

    Drive it with :meth:`take_pages` (pages to request now), then :meth:`accept` or
    :meth:`reject` for each answer, until :attr:`finished`. At most ``window`` pages
    are out at once (pass the client's concurrency); ``max_pages`` caps the plan
    (default :data:`DEFAULT_MAX_PAGES`).
    """

    __slots__ = (
        "_end",
        "_extra_budget",
        "_in_flight",
        "_last_page",
        "_max_pages",
        "_next",
        "_spans",
        "_todo",
        "_wanted",
        "_window",
        "abandoned",
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
        max_pages: int | None = None,
        window: int = DEFAULT_WINDOW,
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
        self.abandoned = False  #: dropped by its harvest: another party owns the shop now
        self.page_size = 0  # the size pages really carry; 0 until page 1 is in
        self.total_count = 0
        self._max_pages = max(1, DEFAULT_MAX_PAGES if max_pages is None else max_pages)
        self._window = max(1, window)
        # The plan is a counter, not a list: pages _next.._last_page are still to ask.
        self._next = 2
        self._last_page = 1
        self._wanted = 1  # pages the listing claims to have, max_pages aside
        self._end: int | None = None  # the last page, once a short or empty page showed it
        self._todo: set[int] = {1}  # single pages asked for out of turn: page 1, refills
        self._in_flight: set[int] = set()
        self._spans: list[tuple[int, int]] = []  # from-the-end coverage, merged
        self._extra_budget = 0
        if checkpoint is not None and checkpoint.pages:
            self._restore(checkpoint)

    def _restore(self, checkpoint: ShopCheckpoint) -> None:
        self.seen = set(checkpoint.seen)
        self.page_size = max(1, checkpoint.page_size or self.query.page_size)
        for page, total in checkpoint.pages.items():
            self._record(page, total, self.page_size)
        self.total_count = max(checkpoint.pages.values())
        self._plan(self.total_count)
        self._todo, self._next = set(), 1  # the counter skips the pages already done
        if self._exhausted():
            self._plan_refills()

    def _plan(self, total: int) -> None:
        self._wanted = max(1, -(-total // self.page_size))
        self._last_page = min(self._wanted, self._max_pages)
        self._extra_budget = self._last_page  # refills never cost more than the plan

    # -- driving ---------------------------------------------------------------------

    def take_pages(self) -> list[int]:
        """Pages to request now (removed from the plan until answered).

        Never more than ``window`` pages are out at once: a plan of a million pages
        (a lying ``total_count``) costs no more than a plan of ten until pages show
        where the listing really ends.
        """
        room = self._window - len(self._in_flight)
        if room <= 0:
            return []
        pages: list[int] = []
        if self._todo:
            pages = sorted(self._todo)[:room]
            self._todo.difference_update(pages)
            room -= len(pages)
        page, last, done = self._next, self._last_page, self.done
        while room > 0 and page <= last:
            if page not in done:  # done in an earlier run
                pages.append(page)
                room -= 1
            page += 1
        self._next = page
        self._in_flight.update(pages)
        return pages

    def accept(self, page: int, answer: ShopItemsPage) -> list[ShopItem]:
        """Record a page's answer; return its items not seen before, in order."""
        self._in_flight.discard(page)
        carried, total = len(answer.items), answer.total_count
        if page == 1 and not self.page_size:
            self.page_size = self._size_of_first(answer)
            self._plan(total)
        size = self.page_size or 1  # never 0: answers built outside the decoder
        if carried < size and total > (page - 1) * size + carried:
            # A short or empty page where the answer's own total promises more: the
            # listing ends here, whatever total_count says. A lying total costs no more
            # than the pages already out.
            last = page if carried else page - 1
            if self._end is None or last < self._end:
                self._end = last
                self._last_page = min(self._last_page, last)
                self._todo = {p for p in self._todo if p <= last}
        elif total > self.total_count and self._end is None:
            grown = max(1, -(-total // size))  # drift: new products at the front
            self._wanted = max(self._wanted, grown)
            self._last_page = max(self._last_page, min(grown, self._max_pages))
        self.total_count = max(self.total_count, total)
        self._record(page, total, size)
        fresh, seen = answer.items, self.seen
        ids = [item.item_id for item in fresh]
        before = len(seen)
        if seen.isdisjoint(ids):
            seen.update(ids)  # the usual page: all new, checked in C
            if len(seen) - before < len(ids):  # an item twice on this page: keep the first
                firsts: dict[str, ShopItem] = {}
                for item in fresh:
                    firsts.setdefault(item.item_id, item)
                fresh = list(firsts.values())
        else:
            fresh = []
            for item in answer.items:  # drop repeats of earlier pages and of this one
                if item.item_id not in seen:
                    seen.add(item.item_id)
                    fresh.append(item)
        if self.keep_items and fresh:
            self.page_items.setdefault(page, []).extend(fresh)
        if not self._todo and not self._in_flight and self._exhausted():
            self._plan_refills()
        return fresh

    def _size_of_first(self, answer: ShopItemsPage) -> int:
        """The page size to plan with: the answered one, unless page 1's items belie it.

        A page that is not the last is full, so when page 1 is not the whole listing its
        item count *is* the page size, whatever ``page_size`` says: planning from a
        ``page_size`` of 1 on a page of 20 would ask for twenty times the pages. Items
        are counted once each: a page repeating its items is no page of twice the size.
        """
        answered = answer.page_size or self.query.page_size
        carried = len({item.item_id for item in answer.items})  # repeats take no place
        if carried > answered or (0 < carried < answered and answer.total_count > carried):
            return carried
        return max(1, answered)

    def reject(self, page: int, error: TmapiError) -> None:
        """Record that a page failed for good; the shop goes on without it."""
        self._in_flight.discard(page)
        self.failed_pages.add(page)
        if self.error is None:
            self.error = error
        if page == 1 and not self.page_size:
            self._todo.clear()  # no plan without page 1
        elif not self._todo and not self._in_flight and self._exhausted():
            self._plan_refills()

    def drop(self, page: int) -> None:
        """Forget ``page`` (taken, then never sent or its answer not wanted)."""
        self._in_flight.discard(page)

    @property
    def idle(self) -> bool:
        """No page taken and not yet answered or dropped."""
        return not self._in_flight

    @property
    def finished(self) -> bool:
        """True once nothing is left to request or waiting for an answer."""
        return not self._todo and not self._in_flight and self._exhausted()

    @property
    def pages_planned(self) -> int:
        """Pages the shop needs as far as is known now (at most ``max_pages``)."""
        return self._last_page

    def _exhausted(self) -> bool:
        """True once the plan's counter has handed out every page not done before."""
        page, last, done = self._next, self._last_page, self.done
        while page <= last and page in done:
            page += 1
        self._next = page
        return page > last

    # -- drift ------------------------------------------------------------------------

    def _record(self, page: int, total: int, size: int) -> None:
        self.done[page] = max(total, self.done.get(page, 0))
        lo, hi = max(0, total - page * size), max(0, total - (page - 1) * size)
        if lo < hi:
            _cover(self._spans, lo, hi)

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
        if (
            self._end is not None  # the listing ended early: its total is no guide
            or not self.page_size
            or self.failed_pages
            or self._wanted > self._max_pages  # capped: partial anyway
        ):
            return
        total, size = self.total_count, self.page_size
        pages: set[int] = set()
        for lo, hi in self._holes():
            # positions from the end [lo, hi) are indexes [total - hi, total - lo)
            first, last = (total - hi) // size + 1, (total - lo - 1) // size + 1
            pages.update(range(first, min(last, self._max_pages) + 1))  # ≤ max_pages
        pages = set(sorted(pages)[: self._extra_budget])
        self._extra_budget -= len(pages)
        self._todo.update(pages)

    # -- outcome ----------------------------------------------------------------------

    @property
    def capped(self) -> bool:
        """True when the listing has more pages than ``max_pages`` allowed to read."""
        return self._wanted > self._max_pages and (self._end is None or self._end > self._max_pages)

    def result(self) -> ShopResult:
        """The shop's :class:`ShopResult` (call once :attr:`finished`)."""
        error = self.error
        if not self.done:
            status: ShopStatus = "failed"
        elif self.failed_pages:
            status = "partial"
        elif self.capped:
            status = "partial"
            error = MaxPagesReached(
                f"the shop lists {self.total_count} products, {self._wanted} pages of "
                f"{self.page_size}: only max_pages={self._max_pages} were read"
            )
        else:
            status = "complete"
        return ShopResult(
            shop_url=self.query.shop_url,
            items=[item for page in sorted(self.page_items) for item in self.page_items[page]],
            total_count=self.total_count,
            pages=len(self.done),
            requests=self.requests,
            status=status,
            error=error if status != "complete" else None,
            item_count=len(self.seen),
        )
