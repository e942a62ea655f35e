"""Commits that ride on the next round trip, against a real redis-server.

A worker's page commit is queued and sent with the next script of the process to the
same Redis (or alone, soon). These tests check what that must not change: the order
of what a worker sends (a shop's finish after its pages, even on a Redis that lost the
commit script), one round trip for a ride and the call it rides on, the slots released
since riding with a commit, a ride surviving the cancel of its carrier, a refused
commit dropping its shop, and a journal that awaits its commits while the worker's
hold on its shops is not fresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tmapi_async._errors import ShopTakenOver
from tmapi_async._models import ShopItemsPage
from tmapi_async._redis.connection import RedisConnection, load_lua, open_connection
from tmapi_async._redis.journal import RedisJournal
from tmapi_async._redis.leases import Leases, carry
from tmapi_async._redis.queue import HarvestQueue, PageCommit, PageCommitted, ShopFinished
from tmapi_async._redis.token import TokenKeys
from tmapi_async._shop import ShopResult

SHOP = "https://alpha.1688.com/"
WAIT = 30.0  # seconds: generous, CI is busy


class Fence:
    """A worker's hold on its shops, fresh or not as the test says."""

    def __init__(self, fresh: bool) -> None:
        self.is_fresh = fresh

    def fresh(self) -> bool:
        return self.is_fresh

    async def wait(self) -> None:
        """Never waited on here."""


@pytest.fixture
async def conn(redis_url: str) -> AsyncIterator[RedisConnection]:
    connection = await open_connection(redis_url)
    try:
        yield connection
    finally:
        await connection.aclose()


@pytest.fixture
async def queue(conn: RedisConnection) -> HarvestQueue:
    q = HarvestQueue(conn, "rides")
    await q.create(output="/tmp/out.jsonl", params={"page_size": 20})
    await q.submit([SHOP])
    return q


def _page(message_id: str, page: int = 1) -> PageCommit:
    return PageCommit(SHOP, page, 1, 40, 20, b"[]", 0, message_id)


def _round_trips(conn: RedisConnection) -> list[str]:
    """Record each round trip of ``conn``'s client (a command, or a pipeline)."""
    sent: list[str] = []
    client: Any = conn.client
    command, pipeline = client.execute_command, client.pipeline

    async def counted(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return await command(*args, **options)

    def counted_pipeline(*args: Any, **options: Any) -> Any:
        pipe = pipeline(*args, **options)
        execute = pipe.execute

        async def counted_execute(*args: Any, **options: Any) -> Any:
            sent.append("pipeline")
            return await execute(*args, **options)

        pipe.execute = counted_execute
        return pipe

    client.execute_command, client.pipeline = counted, counted_pipeline
    return sent


async def test_a_ride_goes_with_the_next_script_in_one_round_trip(
    queue: HarvestQueue, conn: RedisConnection
) -> None:
    """A queued commit and the script sent after it make one round trip; each gets its
    own answer, and the commit is in Redis once the call returns."""
    (delivery,) = await queue.read_shops("w1")
    sent = _round_trips(conn)
    riding = queue.commit_pages_later("w1", [_page(delivery.message_id)])
    lost = await queue.heartbeat("w1", [delivery.message_id])  # rides on this one
    assert sent == ["pipeline"]
    assert lost == []
    assert [int(answer) for answer in await riding.answer] == [1]
    assert (await queue.counts()).pages == 1


async def test_a_ride_with_no_round_trip_goes_alone_soon(queue: HarvestQueue) -> None:
    """Nothing else is sent: the commit goes on its own, a few milliseconds later."""
    (delivery,) = await queue.read_shops("w1")
    riding = queue.commit_pages_later("w1", [_page(delivery.message_id)])
    assert not riding.sent
    answer = await asyncio.wait_for(riding.answer, WAIT)
    assert [int(verdict) for verdict in answer] == [1]


async def test_a_finish_comes_after_its_pages_on_a_redis_that_lost_its_scripts(
    queue: HarvestQueue, conn: RedisConnection
) -> None:
    """Redis lost its scripts (restarted, flushed) while a commit rides: the commit is
    loaded and sent again, and still runs before the shop's finish, so the page is
    exported before the shop ends."""
    (delivery,) = await queue.read_shops("w1")
    await conn.client.script_flush()
    journal = RedisJournal(queue, 20, "w1", fence=Fence(fresh=True))
    journal.message_ids[SHOP] = delivery.message_id
    journal.held.add(delivery.message_id)
    await journal.record_page(SHOP, 1, ShopItemsPage(page=1, page_size=20, total_count=1), [])
    await journal.record_shop(ShopResult(shop_url=SHOP, pages=1))
    results = await queue.read_results(pending=False)
    assert [type(result) for result in results] == [PageCommitted, ShopFinished]
    assert (await queue.counts()).pages == 1


async def test_a_refused_riding_commit_drops_its_shop(queue: HarvestQueue) -> None:
    """Another worker took the shop over before the commit went: the commit is refused
    and the engine is told to drop the shop; nothing of it is committed."""
    (delivery,) = await queue.read_shops("w1")
    await queue.redis.xclaim(queue.shops_key, "workers", "w2", 0, [delivery.message_id])
    dropped: list[str] = []
    journal = RedisJournal(queue, 20, "w1", fence=Fence(fresh=True), on_lost=dropped.append)
    journal.message_ids[SHOP] = delivery.message_id
    journal.held.add(delivery.message_id)
    await journal.record_page(SHOP, 1, ShopItemsPage(page=1, page_size=20, total_count=1), [])
    await asyncio.wait_for(journal.settle(), WAIT)
    assert dropped == [SHOP]
    assert SHOP not in journal.message_ids
    assert not journal.held
    assert (await queue.counts()).pages == 0


async def test_a_stale_hold_awaits_each_commit_and_raises_a_refusal(
    queue: HarvestQueue,
) -> None:
    """While the worker's hold is not fresh, a commit is awaited: a shop taken over is
    known (ShopTakenOver) before the worker sends anything more."""
    (delivery,) = await queue.read_shops("w1")
    await queue.redis.xclaim(queue.shops_key, "workers", "w2", 0, [delivery.message_id])
    journal = RedisJournal(queue, 20, "w1", fence=Fence(fresh=False))
    journal.message_ids[SHOP] = delivery.message_id
    with pytest.raises(ShopTakenOver):
        await journal.record_page(SHOP, 1, ShopItemsPage(page=1, page_size=20, total_count=1), [])
    assert (await queue.counts()).pages == 0


async def test_a_round_trip_cancelled_under_its_caller_leaves_its_ride_to_the_next(
    queue: HarvestQueue, conn: RedisConnection
) -> None:
    """A stop cancels the call a commit rode on: the commit goes again (it may have run
    already: committed once all the same)."""
    (delivery,) = await queue.read_shops("w1")
    riding = queue.commit_pages_later("w1", [_page(delivery.message_id)])
    sent = asyncio.Event()
    client: Any = conn.client
    pipeline = client.pipeline

    def watched_pipeline(*args: Any, **options: Any) -> Any:
        pipe = pipeline(*args, **options)
        execute = pipe.execute

        async def executing(*args: Any, **options: Any) -> Any:
            sent.set()
            return await execute(*args, **options)

        pipe.execute = executing
        return pipe

    client.pipeline = watched_pipeline
    carrier = asyncio.create_task(queue.heartbeat("w1", [delivery.message_id]))
    await asyncio.wait_for(sent.wait(), WAIT)  # the carrier took the ride and sends it
    assert riding.sent
    carrier.cancel()
    with pytest.raises(asyncio.CancelledError):
        await carrier
    answer = await asyncio.wait_for(riding.answer, WAIT)
    assert [int(verdict) for verdict in answer] in ([1], [0])
    assert (await queue.counts()).pages == 1


async def test_a_commit_frees_the_slots_released_since_the_last_round_trip(
    queue: HarvestQueue, conn: RedisConnection
) -> None:
    """A request's slot given back just before its page is committed leaves Redis with
    the commit, in its round trip (no ZREM of its own), and a wait for a freed slot
    wakes."""
    keys = TokenKeys("f1")
    leases = Leases(
        keys, lease=5.0, heartbeat=1.0, on_renewed=lambda reply: None, on_lost=lambda e: None
    )
    await leases.start(conn, conn.script(load_lua("throttle_renew")))
    try:
        leases.take(1, leases.clock())
        await leases.renew()  # the lease is in Redis, as an admission leaves it
        assert await conn.client.zcard(keys.leases) == 1
        (delivery,) = await queue.read_shops("w1")
        leases.freed.clear()
        leases.release(1)
        carried = carry(conn)
        assert carried.keys_and_ids() == [(keys.leases, [leases.id(1)])]
        sent = _round_trips(conn)
        assert await queue.commit_pages("w1", [_page(delivery.message_id)], carried) == [1]
        carried.done()
        assert sent == ["EVALSHA"]
        assert leases.freed.is_set()
        assert await conn.client.zcard(keys.leases) == 0
    finally:
        await leases.aclose()
