"""Many shops through one client: a bounded scheduler of (shop, page) work.

Up to ``concurrency`` workers, started as work appears, take (shop, page) work from
one heap; one feeder task reads the input and opens shops while fewer pages than
workers are queued and fewer than ``max_open_shops`` shops are open. Page 1 of a
shop goes first, so plans are known early and the pipe stays full to the end; then
pages of older shops, so the shops open at once, and with them memory, stay few.

The engine knows its client only as a :class:`PageSource` -- pages with their cost,
a fatal state, a stop -- so a pool of tokens or a test's fake can stand in for it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple, Protocol

from ._errors import FatalError, HarvestStopped, InvalidParameterError, ShopTakenOver, TmapiError
from ._journal import Journal
from ._listing import Listing, choose_listing
from ._models import ShopItem, ShopItemsPage, Sort
from ._new_listings import NewListingsCrawl
from ._progress import HarvestProgress
from ._protocol import ShopQuery, normalise_shop_url
from ._shop import ShopCheckpoint, ShopCrawl, ShopResult
from ._waiters import Waiters


class Fetched(NamedTuple):
    """A page fetched for good: its answer, or the error that failed it for good, and
    the requests it took (each billed), retries included."""

    answer: ShopItemsPage | None  #: the page, or None when it failed
    error: TmapiError | None  #: why it failed (retries spent, or not transient)
    requests: int  #: requests sent for it, retries included


class PageSource(Protocol):
    """What the harvest needs from a client: pages, their cost, and a way to stop."""

    @property
    def concurrency(self) -> int:
        """The most requests in flight: the harvest runs as many workers."""

    @property
    def requests(self) -> int:
        """Requests sent so far, retries included."""

    @property
    def retries(self) -> int:
        """Requests that were retries of a failed one."""

    @property
    def fatal(self) -> FatalError | None:
        """The error that stopped the source, if one did."""

    def stop(self, error: FatalError) -> None:
        """Send nothing more: waiting requests (for admission or in backoff) and later
        ones raise ``error``."""

    async def fetch_counted(self, query: ShopQuery, page: int) -> Fetched:
        """Fetch one page, retrying as the source sees fit.

        Raises:
            FatalError: the source is stopped; the page stays unanswered.
        """


@dataclass(frozen=True, slots=True)
class PageEvent:
    """A page answered (or failed for good, with no items) during a harvest."""

    shop_url: str
    page: int
    items: list[ShopItem]


_Event = ShopResult | PageEvent | None  # None: every worker has finished

# Live workers of every harvest running on one source, by id(source) (an entry goes at
# zero, so an id is never reused while counted). A source serving many harvests at
# once -- many fetch_shop calls on one client -- admits only `concurrency` requests in
# flight: a worker past that would only wait in its throttle, a task per page for
# nothing. So a harvest that has a worker starts no more beyond that count.
_SOURCE_WORKERS: dict[int, int] = {}


def _worker_done(key: int, _task: asyncio.Task[None]) -> None:
    left = _SOURCE_WORKERS[key] - 1
    if left:
        _SOURCE_WORKERS[key] = left
    else:
        del _SOURCE_WORKERS[key]


ShopSource = Iterable[str | ShopQuery] | AsyncIterable[str | ShopQuery]


async def _aiter(source: ShopSource) -> AsyncIterator[str | ShopQuery]:
    if isinstance(source, AsyncIterable):
        async for entry in source:
            yield entry
    else:
        for entry in source:
            yield entry


def _resumed(shop_url: str, checkpoint: ShopCheckpoint) -> ShopResult:
    return ShopResult(
        shop_url=shop_url,
        total_count=max(checkpoint.pages.values(), default=0),
        pages=len(checkpoint.pages),
        status="complete",
        item_count=max(checkpoint.item_count, len(checkpoint.seen)),
    )


class Harvest:
    """A running harvest: an async iterator of :class:`ShopResult`, one per shop.

    ``client`` is a :class:`~tmapi_async.Client` (any :class:`PageSource`). Shops come
    as URLs, read with ``listing`` (or its options given separately), or as
    :class:`ShopQuery` values. ``max_pages`` caps the pages read of one shop (default
    ``DEFAULT_MAX_PAGES``): a shop that reaches it ends ``partial``, saying so.
    ``known(shop_url, item_id)`` (with ``sort="time_down"``) harvests new listings only:
    each shop is read a page at a time and stops at the first page holding a known item.

    Attributes:
        progress: live counters, for progress displays.
    """

    def __init__(
        self,
        client: PageSource,
        shops: ShopSource,
        *,
        page_size: int | None = None,
        sort: str | Sort | None = None,
        cat: str | None = None,
        cat_type: str | None = None,
        listing: Listing | None = None,
        journal: Journal | None = None,
        keep_items: bool = True,
        max_open_shops: int | None = None,
        max_pages: int | None = None,
        known: Callable[[str, str], bool] | None = None,
    ) -> None:
        # Validated once, shared by every shop given as a URL.
        self._listing = choose_listing(listing, page_size, sort, cat, cat_type)
        if known is not None and self._listing.sort != "time_down":
            raise InvalidParameterError("known= reads shops newest first: give sort='time_down'")
        self._known = known
        if max_pages is not None and (
            isinstance(max_pages, bool) or not isinstance(max_pages, int) or max_pages < 1
        ):
            raise InvalidParameterError(f"max_pages must be an integer >= 1, got {max_pages!r}")
        self._max_pages = max_pages
        self._source = client
        self._input = _aiter(shops)
        self._journal = journal
        self._keep_items = keep_items
        self._max_workers = client.concurrency
        self._max_open = 2 * self._max_workers if max_open_shops is None else max_open_shops
        if self._max_open < 1:
            raise InvalidParameterError(f"max_open_shops must be >= 1, got {max_open_shops!r}")
        self.progress = HarvestProgress()
        self._heap: list[tuple[bool, int, int, ShopCrawl]] = []
        self._harvested: set[str] = set()
        self._crawls: dict[str, ShopCrawl] = {}  # open shops by URL, for abandon()
        self._seq = itertools.count()
        self._open = 0  # shops opened and not finished
        self._busy = 0  # workers holding work
        self._feeder: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []  # the feeder and the workers started
        self._live_workers = 0
        self._starved = False  # the last hiring stopped at the source's count of workers
        self._alive = 1  # tasks not yet ended: the feeder, then each worker started
        self._feeding = True  # until the feeder has read the whole input (or stopped)
        self._feeder_waiting = Waiters()
        self._error: BaseException | None = None
        self._page_events = False
        self._events: asyncio.Queue[_Event] | None = None
        self._idle = Waiters()  # workers waiting for work
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False

    def __aiter__(self) -> AsyncGenerator[ShopResult, None]:
        return self._results()

    async def _results(self) -> AsyncGenerator[ShopResult, None]:
        async for event in self._run(page_events=False):
            assert isinstance(event, ShopResult)
            yield event

    def stop(self) -> None:
        """Stop gracefully: send nothing more; answers in flight are still recorded.

        Iteration then ends by raising :class:`HarvestStopped`. The client is stopped
        with it (create a new one to go on).
        """
        stopped = HarvestStopped("harvest stopped on request")
        self._source.stop(stopped)  # requests waiting to leave or in backoff end too
        self._fail(stopped)

    def abandon(self, shop_url: str) -> None:
        """Drop an open shop at once: its queued pages are never sent, its pages in
        flight end unrecorded, and it gives no result (another party owns it now)."""
        crawl = self._crawls.get(shop_url)
        if crawl is None or crawl.abandoned:
            return
        crawl.abandoned = True
        queued = [entry for entry in self._heap if entry[3] is crawl]
        if queued:
            self._heap = [entry for entry in self._heap if entry[3] is not crawl]
            heapq.heapify(self._heap)
            for *_, page, _crawl in queued:
                crawl.drop(page)
        if crawl.idle:
            self._close(crawl)

    def _close(self, crawl: ShopCrawl) -> None:
        """An abandoned shop with nothing left on the wire: it is no longer open."""
        if self._crawls.pop(crawl.query.shop_url, None) is not None:
            self._open -= 1
            self._feeder_waiting.wake(1)
            self._wake_if_finished()

    def events(self) -> AsyncIterator[ShopResult | PageEvent]:
        """Every page as it is answered and every shop as it finishes."""
        return self._run(page_events=True)

    async def _run(self, *, page_events: bool) -> AsyncIterator[ShopResult | PageEvent]:
        if self._started:
            raise RuntimeError("a Harvest can be iterated once")
        self._started = True
        self._page_events = page_events
        self._loop = asyncio.get_running_loop()
        self._events = asyncio.Queue(maxsize=4 * self._max_workers)
        self._feeder = asyncio.create_task(self._feed())
        self._tasks.append(self._feeder)
        # A client that keeps metrics counts this harvest's pages, items and shops.
        metrics = getattr(self._source, "metrics", None)
        if metrics is not None:
            metrics.watch(self.progress)
        try:
            while (event := await self._events.get()) is not None:
                yield event
            if self._error is not None:
                raise self._error
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if metrics is not None:
                metrics.finished(self.progress)

    # -- the feeder: opens shops from the input ----------------------------------------

    async def _feed(self) -> None:
        """Keep about one page of work per worker queued, opening shops as needed.

        The feeder alone reads the input, so a slow or stalled shop list never holds
        a worker, and a stop cancels the read at once.
        """
        try:
            while self._error is None:
                if self._open >= self._max_open or len(self._heap) >= self._max_workers:
                    await self._feeder_waiting.wait()
                    continue
                try:
                    entry = await anext(self._input)
                except StopAsyncIteration:
                    self.progress.input_exhausted = True
                    break
                self.progress.shops_seen += 1
                await self._open_shop(entry)
        except Exception as error:  # a journal that cannot be read: stop, lose nothing
            self._fail(error)
        finally:
            self._feeding = False
            self._wake_if_finished()
            await self._task_ended()

    # -- workers -----------------------------------------------------------------------

    async def _worker(self) -> None:
        assert self._events is not None
        source, progress = self._source, self.progress
        try:
            # The hot loop, in one frame: work at hand is taken by a plain call, and
            # only the request (and waiting for work) suspends.
            while (work := self._take_work() or await self._next_work()) is not None:
                crawl, page = work
                try:
                    # A FatalError raises through: the page stays unrecorded; a rerun asks.
                    fetched = await source.fetch_counted(crawl.query, page)
                    crawl.requests += fetched.requests
                    if crawl.abandoned:
                        self._dropped(crawl, page)
                        continue
                    if fetched.error is not None:
                        crawl.reject(page, fetched.error)
                        fresh: list[ShopItem] = []
                    else:
                        answer = fetched.answer
                        assert answer is not None
                        fresh = crawl.accept(page, answer)
                        if self._journal is not None:
                            try:
                                await self._journal.record_page(
                                    crawl.query.shop_url, page, answer, fresh
                                )
                            except ShopTakenOver:
                                self.abandon(crawl.query.shop_url)
                                self._dropped(crawl, page)
                                continue
                        progress.pages_done += 1
                        progress.items += len(fresh)
                    if self._page_events:
                        await self._emit(PageEvent(crawl.query.shop_url, page, fresh))
                    self._schedule(crawl)
                    if self._starved:
                        # Hiring stopped at the source's count of workers: grow, if other
                        # harvests of the source have let workers go since, for the
                        # queued pages no worker will take (this one takes the next).
                        waiting = self._live_workers - self._busy  # to take work soon
                        self._start_workers(len(self._heap) - waiting - 1)
                    if crawl.finished:
                        await self._finish(crawl)
                finally:
                    progress.requests = source.requests
                    progress.retries = source.retries
                    self._busy -= 1
                    if self._busy == 0:
                        self._wake_if_finished()
        except FatalError as error:
            self._fail(error)
        except Exception as error:  # a journal that cannot write: stop, do not lose pages
            self._fail(error)
        finally:
            self._live_workers -= 1
            self._wake_all()  # whatever ended this worker ends the others
            await self._task_ended()

    def _dropped(self, crawl: ShopCrawl, page: int) -> None:
        """A page of an abandoned shop is back: the last one closes the shop."""
        crawl.drop(page)
        if crawl.idle:
            self._close(crawl)

    async def _task_ended(self) -> None:
        assert self._events is not None
        self._alive -= 1
        if self._alive == 0:  # the feeder and every worker are done: so is the harvest
            await self._events.put(None)

    def _hire(self, pages: int) -> None:
        """Wake idle workers for ``pages`` new pages; start new ones for the rest.

        Workers start as work appears, up to ``concurrency``: a shop of three pages
        costs three tasks, not ``concurrency`` of them.
        """
        unassigned = pages - self._idle.wake(pages) if self._idle else pages
        if unassigned > 0:
            self._start_workers(unassigned)

    def _start_workers(self, wanted: int) -> None:
        """Start up to ``wanted`` workers, within ``concurrency`` for this harvest and,
        beyond its first worker, for every harvest of the same source together."""
        key = id(self._source)
        shared = _SOURCE_WORKERS.get(key, 0)
        self._starved = False
        while wanted > 0 and self._live_workers < self._max_workers:
            if self._live_workers and shared >= self._max_workers:
                self._starved = True  # it could only wait for a slot: ours go on
                break
            self._live_workers += 1
            self._alive += 1
            shared += 1
            task = asyncio.create_task(self._worker())
            # Counted off when the task is done, even cancelled before it ever ran.
            task.add_done_callback(partial(_worker_done, key))
            self._tasks.append(task)
            wanted -= 1
        _SOURCE_WORKERS[key] = shared

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        feeder = self._feeder
        if feeder is not None and self._feeding and feeder is not asyncio.current_task():
            feeder.cancel()  # it may be waiting on a shop list that never ends
        self._wake_all()

    def _wake_all(self) -> None:
        self._idle.wake_all()
        self._feeder_waiting.wake(1)

    def _wake_if_finished(self) -> None:
        if self._busy == 0 and not self._feeding and not self._heap:
            self._wake_all()  # nothing will come: let every worker end

    def _take_work(self) -> tuple[ShopCrawl, int] | None:
        """The next (shop, page) if one is queued and the harvest goes on."""
        fatal = self._source.fatal
        if fatal is not None:
            self._fail(fatal)  # perhaps raised for another caller
        if self._error is not None or not self._heap:
            return None
        _, _, page, crawl = heapq.heappop(self._heap)
        self._busy += 1
        if self._feeder_waiting and len(self._heap) < self._max_workers:
            self._feeder_waiting.wake(1)
        return crawl, page

    async def _next_work(self) -> tuple[ShopCrawl, int] | None:
        """The next (shop, page), waiting for one; None once the harvest is over."""
        while True:
            work = self._take_work()
            if work is not None or self._error is not None:
                return work
            if self._busy == 0 and not self._feeding:
                return None
            await self._idle.wait()

    def _schedule(self, crawl: ShopCrawl) -> None:
        pages = crawl.take_pages()
        if not pages:
            return
        self.progress.pages_planned += len(pages)
        for page in pages:
            # Page 1 first: a shop's plan is known sooner, so its pages keep the pipe
            # full; then older shops first, so open shops (and memory) stay few.
            heapq.heappush(self._heap, (page != 1, crawl.seq, page, crawl))
        self._hire(len(pages))

    async def _finish(self, crawl: ShopCrawl) -> None:
        if self._crawls.get(crawl.query.shop_url) is not crawl:
            # Finished already: a journal that suspends lets two last answers both see
            # the shop finished.
            return
        del self._crawls[crawl.query.shop_url]
        self._open -= 1
        self._feeder_waiting.wake(1)
        result = crawl.result()
        if self._journal is not None:
            try:
                await self._journal.record_shop(result)
            except ShopTakenOver:
                return  # another owner finishes it: no result from here
        await self._emit(result)

    async def _emit(self, event: ShopResult | PageEvent) -> None:
        assert self._events is not None
        if isinstance(event, ShopResult):
            self.progress.shop_finished(event.status)
        await self._events.put(event)

    # -- opening shops -----------------------------------------------------------------

    async def _open_shop(self, entry: str | ShopQuery) -> None:
        try:
            query = (
                entry
                if isinstance(entry, ShopQuery)
                else ShopQuery(normalise_shop_url(entry), self._listing)
            )
        except InvalidParameterError as error:
            result = ShopResult(shop_url=str(entry), status="failed", error=error)
            if self._journal is not None:
                await self._journal.record_shop(result)
            await self._emit(result)
            return
        if query.shop_url in self._harvested:
            self.progress.duplicates += 1
            return
        self._harvested.add(query.shop_url)
        checkpoint = await self._journal.open_shop(query.shop_url) if self._journal else None
        if checkpoint is not None and checkpoint.status == "complete":
            self.progress.shops_resumed += 1
            await self._emit(_resumed(query.shop_url, checkpoint))
            return
        crawl = (
            ShopCrawl(
                query,
                seq=next(self._seq),
                keep_items=self._keep_items,
                checkpoint=checkpoint,
                max_pages=self._max_pages,
                window=self._max_workers,
            )
            if self._known is None
            else NewListingsCrawl(
                query,
                known=partial(self._known, query.shop_url),
                seq=next(self._seq),
                keep_items=self._keep_items,
                checkpoint=checkpoint,
                max_pages=self._max_pages,
            )
        )
        self._open += 1
        self._crawls[query.shop_url] = crawl
        self._schedule(crawl)
        if crawl.finished:  # a checkpoint with nothing left to fetch
            await self._finish(crawl)
