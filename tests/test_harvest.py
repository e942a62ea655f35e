"""The harvest scheduler alone: a fake page source, no client, no sockets.

The fake answers each (shop, page) from a table of shop sizes, counts what it is
asked, and can hold answers back (futures), fail a page, or stop like a client.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import pytest

import tmapi_async as tm
from tmapi_async import Fetched, Harvest, PageSource

PAGE_SIZE = 20


def url(name: str) -> str:
    return f"https://{name}.1688.com/"


class FakeSource:
    """A :class:`PageSource` whose shops hold ``sizes[name]`` products."""

    def __init__(self, sizes: dict[str, int], *, concurrency: int = 2) -> None:
        self.sizes = sizes
        self.concurrency = concurrency
        self.requests = 0
        self.retries = 0
        self.fatal: tm.FatalError | None = None
        self.asked: list[tuple[str, int]] = []
        self.answered: dict[str, set[int]] = {}
        self.errors: dict[tuple[str, int], tm.TmapiError] = {}
        self.costs: dict[tuple[str, int], int] = {}  # requests a page takes (retries)
        self.hold: dict[tuple[str, int], asyncio.Future[None]] = {}
        self.asked_event = asyncio.Event()
        self.stopped_with: tm.FatalError | None = None
        self.open_at_page_one: list[int] = []  # shops open when each page 1 was asked

    def pages(self, name: str) -> int:
        return max(1, math.ceil(self.sizes[name] / PAGE_SIZE))

    def stop(self, error: tm.FatalError) -> None:
        self.stopped_with = error
        if self.fatal is None:
            self.fatal = error
        for waiter in self.hold.values():
            if not waiter.done():
                waiter.set_exception(error)  # like the throttle: waiters raise at once

    async def fetch_counted(self, query: tm.ShopQuery, page: int) -> Fetched:
        if self.fatal is not None:
            raise self.fatal
        name = query.shop_url.removeprefix("https://").split(".")[0]
        if page == 1:
            self.open_at_page_one.append(self._open_shops() + 1)
        self.asked.append((name, page))
        self.asked_event.set()
        key = (name, page)
        sent = self.costs.get(key, 1)
        self.requests += sent
        self.retries += sent - 1
        if key in self.hold:
            await self.hold[key]
        await asyncio.sleep(0)  # an answer takes a turn of the loop
        error = self.errors.get(key)
        if isinstance(error, tm.FatalError):
            self.stop(error)
            raise error
        self.answered.setdefault(name, set()).add(page)
        if error is not None:
            return Fetched(answer=None, error=error, requests=sent)
        size = self.sizes[name]
        first = (page - 1) * PAGE_SIZE
        items = [
            tm.ShopItem(item_id=f"{name}-{i}", title=f"item {i}")
            for i in range(first, min(size, first + PAGE_SIZE))
        ]
        answer = tm.ShopItemsPage(page=page, page_size=PAGE_SIZE, total_count=size, items=items)
        return Fetched(answer=answer, error=None, requests=sent)

    def _open_shops(self) -> int:
        """Shops asked for a page and not yet answered for all of them."""
        asked = {name for name, _ in self.asked}
        return sum(len(self.answered.get(n, ())) < self.pages(n) for n in asked)


async def run(harvest: Harvest) -> list[tm.ShopResult]:
    return [result async for result in harvest]


def test_a_client_is_a_page_source() -> None:
    """The client offers the harvest exactly what the protocol names (checked by mypy
    too); the harvest reaches for nothing else."""
    client: PageSource = tm.Client("t")
    assert client.concurrency == 8
    assert (client.requests, client.retries, client.fatal) == (0, 0, None)


async def test_every_item_once_and_requests_counted_per_shop() -> None:
    """Each shop's items come once, in listing order; its requests include retries."""
    source = FakeSource({"a": 45, "b": 0, "c": 20})
    source.costs[("a", 2)] = 3  # two retries
    results = {r.shop_url: r for r in await run(Harvest(source, [url("a"), url("b"), url("c")]))}
    assert [i.item_id for i in results[url("a")].items] == [f"a-{i}" for i in range(45)]
    assert {u: r.status for u, r in results.items()} == dict.fromkeys(results, "complete")
    assert (results[url("a")].requests, results[url("b")].requests) == (5, 1)
    assert sorted(source.asked) == [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("c", 1)]


async def test_page_one_first_then_older_shops_first() -> None:
    """A shop's page 1 precedes its other pages; later pages go oldest shop first."""
    source = FakeSource({"a": 100, "b": 100, "c": 100}, concurrency=1)
    harvest = Harvest(source, [url("a"), url("b"), url("c")], max_open_shops=3)
    await run(harvest)
    seq = {"a": 0, "b": 1, "c": 2}
    for name in seq:
        mine = [page for shop, page in source.asked if shop == name]
        assert mine[0] == 1
        assert sorted(mine) == [1, 2, 3, 4, 5]
    later = [seq[shop] for shop, page in source.asked if page != 1]
    assert later == sorted(later)  # one worker: never a younger shop's page first


@pytest.mark.parametrize("max_open", [1, 2, 3])
async def test_open_shops_stay_bounded(max_open: int) -> None:
    """No more than ``max_open_shops`` shops are in progress at any time."""
    sizes = {f"s{i}": 20 * (1 + i % 4) for i in range(12)}
    source = FakeSource(sizes, concurrency=4)
    results = await run(Harvest(source, [url(n) for n in sizes], max_open_shops=max_open))
    assert len(results) == 12
    assert max(source.open_at_page_one) <= max_open


async def test_one_failed_shop_does_not_stop_the_others() -> None:
    """A page that fails for good fails its shop (page 1) or leaves it partial."""
    source = FakeSource({"a": 40, "b": 40, "c": 60})
    source.errors[("a", 1)] = tm.UpstreamError("upstream down", code=500)
    source.errors[("c", 2)] = tm.DecodeError("garbage")
    results = {r.shop_url: r for r in await run(Harvest(source, map(url, "abc")))}
    assert results[url("a")].status == "failed"
    assert isinstance(results[url("a")].error, tm.UpstreamError)
    assert results[url("b")].status == "complete"
    assert results[url("c")].status == "partial"
    assert [i.item_id for i in results[url("c")].items] == [
        *(f"c-{i}" for i in range(20)),
        *(f"c-{i}" for i in range(40, 60)),
    ]


async def test_a_fatal_error_stops_the_harvest_and_is_raised() -> None:
    """Once a page answers 401, nothing more is asked and the error is raised."""
    source = FakeSource({f"s{i}": 40 for i in range(10)}, concurrency=1)
    source.errors[("s1", 2)] = tm.AuthenticationError("bad token", code=401)
    with pytest.raises(tm.AuthenticationError):
        await run(Harvest(source, [url(f"s{i}") for i in range(10)], max_open_shops=1))
    assert source.asked[-1] == ("s1", 2)


async def test_stop_fails_waiting_requests_and_sends_nothing_more() -> None:
    """stop(): the source is stopped (its waiters raise), iteration raises HarvestStopped,
    and no page is asked afterwards."""
    source = FakeSource({"a": 20, "b": 100}, concurrency=2)
    held = source.hold[("b", 2)] = asyncio.get_running_loop().create_future()
    harvest = Harvest(source, [url("a"), url("b"), url("c")])
    results = harvest.__aiter__()
    first = await anext(results)
    assert first.shop_url == url("a")
    while ("b", 2) not in source.asked:
        source.asked_event.clear()
        await source.asked_event.wait()
    asked = len(source.asked)
    harvest.stop()
    assert isinstance(source.stopped_with, tm.HarvestStopped)
    assert held.done()  # the waiting request was failed, not left to go out later
    with pytest.raises(tm.HarvestStopped):
        await anext(results)
    assert len(source.asked) == asked


class MemoryJournal:
    """A :class:`tm.Journal` in memory: what a resume starts from, and what it records."""

    def __init__(self, checkpoints: dict[str, tm.ShopCheckpoint]) -> None:
        self.checkpoints = checkpoints
        self.pages: list[tuple[str, int, list[str]]] = []
        self.shops: list[tm.ShopResult] = []

    async def open_shop(self, shop_url: str) -> tm.ShopCheckpoint | None:
        await asyncio.sleep(0)  # a journal elsewhere answers later
        return self.checkpoints.get(shop_url)

    async def record_page(
        self,
        shop_url: str,
        page: int,
        answer: tm.ShopItemsPage,
        new_items: Sequence[tm.ShopItem],
    ) -> None:
        await asyncio.sleep(0)
        self.pages.append((shop_url, page, [i.item_id for i in new_items]))

    async def record_shop(self, result: tm.ShopResult) -> None:
        await asyncio.sleep(0)
        self.shops.append(result)


async def test_resume_asks_only_what_the_journal_lacks() -> None:
    """A complete shop is not asked; a partial one only for its missing pages, and the
    items an earlier run exported are not recorded again."""
    source = FakeSource({"done": 40, "half": 60, "new": 20})
    journal = MemoryJournal(
        {
            url("done"): tm.ShopCheckpoint(
                pages={1: 40, 2: 40}, page_size=20, status="complete", item_count=40
            ),
            url("half"): tm.ShopCheckpoint(
                pages={1: 60, 3: 60},
                page_size=20,
                seen={f"half-{i}" for i in (*range(20), *range(40, 60))},
            ),
        }
    )
    harvest = Harvest(source, map(url, ["done", "half", "new"]), journal=journal)
    results = {r.shop_url: r for r in await run(harvest)}
    assert sorted(source.asked) == [("half", 2), ("new", 1)]
    assert results[url("half")].status == "complete"
    assert harvest.progress.shops_resumed == 1
    recorded = {(shop, page): ids for shop, page, ids in journal.pages}
    assert recorded[(url("half"), 2)] == [f"half-{i}" for i in range(20, 40)]
    assert {r.shop_url for r in journal.shops} == {url("half"), url("new")}


async def test_listing_reaches_every_shop_and_is_given_once() -> None:
    """Shops given as URLs are read with the harvest's listing; a listing and one of its
    options together are refused."""
    listing = tm.Listing(page_size=20, sort="sales", cat="7")
    source = FakeSource({"a": 20})
    seen: list[tm.ShopQuery] = []
    fetch = source.fetch_counted

    async def spy(query: tm.ShopQuery, page: int) -> Fetched:
        seen.append(query)
        return await fetch(query, page)

    source.fetch_counted = spy  # type: ignore[method-assign]
    await run(Harvest(source, [url("a")], listing=listing))
    assert [q.listing for q in seen] == [listing]
    with pytest.raises(tm.InvalidParameterError, match="not both"):
        Harvest(source, [], listing=listing, sort="sales")


@pytest.mark.parametrize("max_pages", [1, 3])
async def test_max_pages_reached_leaves_the_shop_partial(max_pages: int) -> None:
    """A shop longer than max_pages is read up to it, then ends partial, saying so."""
    source = FakeSource({"big": 200, "small": 20})
    harvest = Harvest(source, [url("big"), url("small")], max_pages=max_pages)
    results = {r.shop_url: r for r in await run(harvest)}
    big = results[url("big")]
    assert (big.status, big.pages) == ("partial", max_pages)
    assert isinstance(big.error, tm.MaxPagesReached)
    assert sorted(page for shop, page in source.asked if shop == "big") == list(
        range(1, max_pages + 1)
    )
    assert results[url("small")].status == "complete"


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "3"])
def test_max_pages_must_be_a_positive_integer(bad: object) -> None:
    """A max_pages that is no integer >= 1 is refused before anything is asked."""
    with pytest.raises(tm.InvalidParameterError, match="max_pages"):
        Harvest(FakeSource({}), [], max_pages=bad)  # type: ignore[arg-type]


class PeakInFlight:
    """The most pages a source is asked for at once, counted from now on."""

    def __init__(self, source: FakeSource) -> None:
        self.most = 0
        self._out = 0
        self._fetch = source.fetch_counted
        source.fetch_counted = self._counting  # type: ignore[method-assign]

    async def _counting(self, query: tm.ShopQuery, page: int) -> Fetched:
        self._out += 1
        self.most = max(self.most, self._out)
        try:
            return await self._fetch(query, page)
        finally:
            self._out -= 1


async def test_harvests_sharing_a_source_start_no_more_workers_than_it_admits() -> None:
    """Many harvests of one source at once (many ``fetch_shop`` calls on one client)
    keep about ``concurrency`` requests out together, not ``concurrency`` each: a
    worker past that would only wait for a slot. Each still finishes every page."""
    names = [f"s{i}" for i in range(6)]
    source = FakeSource(dict.fromkeys(names, 10 * PAGE_SIZE), concurrency=4)
    peak = PeakInFlight(source)
    harvests = [Harvest(source, [url(name)]) for name in names]
    results = await asyncio.wait_for(asyncio.gather(*(run(h) for h in harvests)), 60)
    assert [r.status for [r] in results] == ["complete"] * len(names)
    assert [len(r.items) for [r] in results] == [10 * PAGE_SIZE] * len(names)
    # At most one worker each beyond the source's own concurrency; alone, each
    # harvest would run 4 workers: 24 at once.
    assert peak.most <= source.concurrency + len(names)


async def test_a_harvest_closed_early_leaves_its_source_all_its_workers() -> None:
    """Workers cancelled before they ever ran (the consumer closed the harvest at its
    first event) are no longer counted against the source: the next harvest on it
    runs ``concurrency`` requests at once again."""
    source = FakeSource({"a": 10 * PAGE_SIZE, "b": 10 * PAGE_SIZE}, concurrency=4)
    events = Harvest(source, [url("a")]).events()
    first = await anext(events)  # awaited here: the workers it hires have not run yet
    assert isinstance(first, tm.PageEvent)
    await events.aclose()  # type: ignore[attr-defined]
    peak = PeakInFlight(source)
    [result] = await asyncio.wait_for(run(Harvest(source, [url("b")])), 60)
    assert result.status == "complete"
    assert peak.most == source.concurrency
