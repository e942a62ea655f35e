"""The client against the simulator: faults, limits, caps, drift, fatal errors, many shops."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

import tmapi_async as tm
from tmapi_async.testing import FaultKind, SimulatedTmapi

TOKEN = "integration-token"
FAST_RETRY = tm.RetryPolicy(attempts=8, initial_wait=0.001, max_wait=0.01)


def client(sim: SimulatedTmapi, **kwargs: object) -> tm.Client:
    options: dict[str, object] = {"rate": 5000.0, "concurrency": 16, "retry": FAST_RETRY}
    options.update(kwargs)
    return tm.Client(TOKEN, base_url=sim.url, **options)  # type: ignore[arg-type]


def ids(items: list[tm.ShopItem]) -> list[str]:
    return [item.item_id for item in items]


async def drain(events, into: list | None = None) -> None:
    """Iterate to the end, keeping what comes out."""
    async for event in events:
        if into is not None:
            into.append(event)


async def test_fetch_shop_matches_the_catalogue_with_one_request_per_page(tmapi_sim_factory):
    """A clean shop of 1000 items: every item once, 50 pages, 50 requests."""
    sim = await tmapi_sim_factory(shop_sizes={"big": 1000})
    async with client(sim) as c:
        result = await c.fetch_shop("https://big.1688.com/")
    expected = sim.expected_items("big")
    assert result.status == "complete"
    assert sorted(ids(result.items)) == sorted(item.item_id for item in expected)
    assert (result.pages, result.requests, len(sim.log)) == (50, 50, 50)
    assert all(count == 1 for count in sim.log.per_page().values())


@pytest.mark.parametrize(("size", "pages"), [(0, 1), (1, 1), (19, 1), (20, 1), (21, 2)])
async def test_fan_out_page_counts(tmapi_sim_factory, size, pages):
    """total_count 0, 1, 19, 20, 21 cost exactly 1, 1, 1, 1, 2 requests."""
    sim = await tmapi_sim_factory(shop_sizes={"sz": size})
    async with client(sim) as c:
        result = await c.fetch_shop("https://sz.1688.com/")
    assert (result.status, result.item_count, result.requests) == ("complete", size, pages)
    assert len(sim.log) == pages


async def test_iter_shop_items_yields_in_listing_order(tmapi_sim_factory):
    """iter_shop_items gives the listing exactly, in order, for every sort."""
    sim = await tmapi_sim_factory(shop_sizes={"shop": 137}, latency_ms=(0.0, 5.0), seed=3)
    async with client(sim) as c:
        for sort in tm.Sort:
            got = [
                item.item_id async for item in c.iter_shop_items("https://shop.1688.com", sort=sort)
            ]
            assert got == [item.item_id for item in sim.expected_items("shop", sort=sort)]


async def test_capped_page_size_misses_nothing(tmapi_sim_factory):
    """Asking 50 per page from a server that serves 20: the plan follows the 20."""
    sim = await tmapi_sim_factory(shop_sizes={"cap": 95}, page_size_max=20)
    async with client(sim) as c:
        result = await c.fetch_shop("https://cap.1688.com/", page_size=50)
    assert sorted(ids(result.items)) == sorted(i.item_id for i in sim.expected_items("cap"))
    assert result.requests == 5


async def test_fifteen_percent_faults_of_every_kind_lose_nothing(tmapi_sim_factory):
    """Faults on 15% of attempts, all kinds: every item of every shop exactly once."""
    sim = await tmapi_sim_factory(
        default_shop_size=120,
        fault_rate=0.15,
        fault_kinds=tuple(FaultKind),
        hang_seconds=5.0,
        seed=11,
    )
    shops = [f"https://faulty{i}.1688.com/" for i in range(12)]
    async with client(sim, timeout=0.5) as c:
        results = [r async for r in c.harvest(shops)]
    assert {r.status for r in results} == {"complete"}
    for result in results:
        got = ids(result.items)
        assert len(got) == len(set(got))
        assert set(got) == {i.item_id for i in sim.expected_items(result.shop_url)}
    outcomes = Counter(r.outcome for r in sim.log)
    assert sum(n for o, n in outcomes.items() if o.startswith("fault_")) > 10
    assert c.retries >= sum(n for o, n in outcomes.items() if o.startswith("fault_"))


async def test_in_flight_limit_below_concurrency_loses_nothing(tmapi_sim_factory):
    """A server allowing 4 in flight, a client wanting 16: 503s, backoff, nothing lost."""
    sim = await tmapi_sim_factory(
        default_shop_size=200, concurrency_limit=4, latency_ms=(2.0, 6.0), seed=5
    )
    shops = [f"https://busy{i}.1688.com/" for i in range(6)]
    async with client(sim, concurrency=16) as c:
        results = [r async for r in c.harvest(shops)]
        limit_after = c.throttle.limit
    for result in results:
        assert result.status == "complete"
        assert set(ids(result.items)) == {i.item_id for i in sim.expected_items(result.shop_url)}
    assert Counter(r.outcome for r in sim.log)["concurrency_limited"] > 0
    assert limit_after < 16  # the client learned to send fewer at once


async def test_drift_misses_nothing_and_duplicates_nothing(tmapi_sim_factory):
    """Items inserted at the front while shops are read: all found, each once."""
    sim = await tmapi_sim_factory(
        default_shop_size=300,
        drift_every=3,
        drift_items=4,
        drift_max=12,
        latency_ms=(0.0, 8.0),
        seed=9,
    )
    shops = [f"https://drift{i}.1688.com/" for i in range(4)]
    async with client(sim) as c:
        results = [r async for r in c.harvest(shops)]
    for result in results:
        assert sim.drift(result.shop_url) > 0
        got = ids(result.items)
        assert len(got) == len(set(got))
        assert set(got) == {i.item_id for i in sim.expected_items(result.shop_url)}
        assert result.total_count == 300 + sim.drift(result.shop_url)


async def test_bad_token_stops_after_one_request(tmapi_sim_factory):
    """401 on the first answer, sent as the header, and on the same request sent as the
    query (auth "auto"): AuthenticationError, nothing more is sent."""
    sim = await tmapi_sim_factory(tokens={"the-right-one"})
    shops = [f"https://s{i}.1688.com/" for i in range(20)]
    async with client(sim, concurrency=1) as c:
        with pytest.raises(tm.AuthenticationError) as info:
            await drain(c.harvest(shops))
        assert info.value.code == 401
        with pytest.raises(tm.AuthenticationError):
            await c.get_shop_items("https://s0.1688.com/")
    assert [r.auth for r in sim.log] == ["header", "query"]


async def test_spent_balance_stops_the_harvest_promptly(tmapi_sim_factory):
    """439 once the quota is spent: BalanceError, and only requests already in flight follow."""
    sim = await tmapi_sim_factory(quota=30, default_shop_size=200)
    shops = [f"https://q{i}.1688.com/" for i in range(10)]
    results = []
    async with client(sim, concurrency=4) as c:
        with pytest.raises(tm.BalanceError) as info:
            await drain(c.harvest(shops), results)
    assert "balance" in info.value.message.lower()
    refused = [r for r in sim.log if r.status == 439 or r.code == 439]
    assert refused
    first = min(r.seq for r in refused)
    after = [r for r in sim.log if r.seq > first]
    assert len(after) < 4  # at most the others already in flight
    assert c.requests == len(sim.log)


async def test_harvest_reports_bad_urls_and_dedups_shops(tmapi_sim_factory):
    """Invalid lines fail alone, duplicate shops are harvested once, the rest complete."""
    sim = await tmapi_sim_factory(default_shop_size=30)
    lines = [
        "https://a.1688.com/",
        "not a url",
        "https://A.1688.com/page/offerlist.htm",
        "https://b.1688.com",
        "ftp://c.1688.com/",
    ]
    async with client(sim) as c:
        harvest = c.harvest(lines)
        results = {r.shop_url: r async for r in harvest}
    assert results["https://a.1688.com/"].status == "complete"
    assert results["https://b.1688.com/"].status == "complete"
    assert results["not a url"].status == "failed"
    assert isinstance(results["ftp://c.1688.com/"].error, tm.InvalidParameterError)
    assert harvest.progress.duplicates == 1
    assert len(results) == 4
    assert Counter(r.shop for r in sim.log) == {"a": 2, "b": 2}


async def test_harvest_reads_its_input_lazily(tmapi_sim_factory):
    """Shops are pulled from the input as capacity frees, not all at once."""
    sim = await tmapi_sim_factory(default_shop_size=40)
    pulled = 0

    def shops():
        nonlocal pulled
        for i in range(1000):
            pulled += 1
            yield f"https://lazy{i}.1688.com/"

    async with client(sim, concurrency=4) as c:
        harvest = c.harvest(shops(), max_open_shops=3)
        async for _ in harvest:
            break
    assert pulled < 20


async def test_server_side_peak_in_flight_respects_concurrency(tmapi_sim_factory):
    """The server never sees more requests at once than the client's concurrency."""
    sim = await tmapi_sim_factory(default_shop_size=400, latency_ms=(1.0, 4.0), seed=2)
    async with client(sim, concurrency=5) as c:
        results = [r async for r in c.harvest([f"https://p{i}.1688.com" for i in range(5)])]
    assert all(r.status == "complete" for r in results)
    assert sim.log.peak_in_flight() <= 5


async def test_stop_ends_the_harvest_with_harvest_stopped(tmapi_sim_factory):
    """stop() lets answers in flight land and ends iteration with HarvestStopped."""
    gate = asyncio.Event()
    arrived = asyncio.Event()

    async def hold(_record: object) -> None:
        arrived.set()
        await gate.wait()

    sim = await tmapi_sim_factory(default_shop_size=100, on_request=hold)
    async with client(sim, concurrency=2) as c:
        harvest = c.harvest([f"https://st{i}.1688.com" for i in range(5)])
        events = harvest.events()
        consumer = asyncio.ensure_future(drain(events))
        await arrived.wait()
        harvest.stop()
        gate.set()
        with pytest.raises(tm.HarvestStopped):
            await consumer
    assert len(sim.log) <= 2


async def test_fetch_shop_items_come_in_listing_order(tmapi_sim_factory):
    """With pages answering out of order, ShopResult.items is still the listing's order."""
    sim = await tmapi_sim_factory(shop_sizes={"order": 250}, latency_ms=(0.0, 10.0), seed=4)
    async with client(sim) as c:
        result = await c.fetch_shop("https://order.1688.com/", sort="price_up")
    assert ids(result.items) == [i.item_id for i in sim.expected_items("order", sort="price_up")]


async def test_fatal_error_does_not_wait_for_a_blocked_input(tmapi_sim_factory):
    """A shop list that never ends nor yields does not keep a stopped harvest alive."""
    sim = await tmapi_sim_factory(tokens={"someone-else"})
    never = asyncio.Event()

    async def shops():
        yield "https://first.1688.com/"
        await never.wait()  # a producer that neither yields nor closes
        yield "https://never.1688.com/"

    async with client(sim, concurrency=2) as c:
        with pytest.raises(tm.AuthenticationError):
            await drain(c.harvest(shops()))
    assert len(sim.log) == 2  # the key sent as the header, then as the query


async def test_stop_does_not_wait_for_a_blocked_input(tmapi_sim_factory):
    """stop() while the input is blocked ends the harvest with HarvestStopped."""
    sim = await tmapi_sim_factory(default_shop_size=10)
    never = asyncio.Event()
    first_done = asyncio.Event()

    async def shops():
        yield "https://only.1688.com/"
        await first_done.wait()
        await never.wait()
        yield "https://never.1688.com/"

    async with client(sim) as c:
        harvest = c.harvest(shops())
        results = harvest.__aiter__()
        first = await anext(results)
        assert first.status == "complete"
        first_done.set()
        harvest.stop()
        with pytest.raises(tm.HarvestStopped):
            await anext(results)


async def test_resumed_complete_shop_reports_its_items(tmapi_sim_factory):
    """A shop an earlier run completed is not fetched and reports its item count."""

    class Done:
        async def open_shop(self, shop_url):
            return tm.ShopCheckpoint(
                pages={1: 30, 2: 30}, page_size=20, status="complete", item_count=30
            )

        async def record_page(self, *args):
            raise AssertionError("nothing should be fetched")

        async def record_shop(self, result):
            raise AssertionError("a resumed shop is not recorded again")

    sim = await tmapi_sim_factory()
    async with client(sim) as c:
        harvest = c.harvest(["https://old.1688.com/"], journal=Done())
        (result,) = [r async for r in harvest]
    assert (result.status, result.item_count, result.pages, result.requests) == (
        "complete",
        30,
        2,
        0,
    )
    assert harvest.progress.shops_resumed == 1
    assert len(sim.log) == 0


@pytest.mark.parametrize("bad", [0, -1])
async def test_max_open_shops_below_one_is_refused(tmapi_sim_factory, bad):
    """max_open_shops must allow at least one shop."""
    sim = await tmapi_sim_factory()
    async with client(sim) as c:
        with pytest.raises(tm.InvalidParameterError, match="max_open_shops"):
            c.harvest(["https://a.1688.com/"], max_open_shops=bad)


async def test_workers_start_as_work_appears(tmapi_sim_factory):
    """A shop of three pages starts three workers, not `concurrency` of them."""
    sim = await tmapi_sim_factory(shop_sizes={"small": 45})
    async with client(sim, concurrency=64) as c:
        harvest = c.harvest(["https://small.1688.com/"])
        (result,) = [r async for r in harvest]
    assert result.item_count == 45
    workers = [t for t in harvest._tasks if t.get_coro().__name__ == "_worker"]
    assert len(workers) == 3
