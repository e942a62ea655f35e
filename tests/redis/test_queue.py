"""The delivery scripts of a distributed harvest, against a real redis-server.

Each test drives the scripts as workers and a coordinator would, and checks what
Redis holds afterwards: submit never twice, a page committed once per read and only by
the shop's holder, a shop renewed only by its owner, taken over once idle (however deep
in the pending list), given up after too many deliveries, nothing recreated once the
harvest's record is gone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
from redis.asyncio import Redis

from tmapi_async import ShopTakenOver
from tmapi_async._redis.queue import (
    Delivery,
    HarvestGone,
    HarvestQueue,
    PageCommitted,
    ShopFinished,
)

SHOP = "https://alpha.1688.com/"
OTHER = "https://beta.1688.com/"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def queue(redis: Redis) -> HarvestQueue:
    q = HarvestQueue(redis, "h1", max_deliveries=3)
    await q.create(output="/tmp/out.jsonl", params={"page_size": 20})
    return q


async def _age(queue: HarvestQueue, consumer: str, message_id: str) -> None:
    """Make a held message look abandoned for a minute (as a dead worker's would)."""
    await queue.redis.xclaim(
        queue.shops_key, "workers", consumer, 0, [message_id], idle=60_000, justid=True
    )


async def _take_over(queue: HarvestQueue, consumer: str, **keywords: int) -> list[Delivery]:
    """One scan step from the start of the pending list."""
    _cursor, taken = await queue.take_over(consumer, **keywords)
    return taken


async def test_create_refuses_other_parameters(queue: HarvestQueue, redis: Redis) -> None:
    """Creating a harvest again with the same parameters is fine; with others it is refused."""
    again = HarvestQueue(redis, "h1")
    await again.create(output="/tmp/out.jsonl", params={"page_size": 20})  # same: fine
    with pytest.raises(ValueError, match="other parameters"):
        await again.create(output="/tmp/out.jsonl", params={"page_size": 50})


async def test_submit_is_idempotent_and_retries_failed_shops(queue: HarvestQueue) -> None:
    """Submitting a shop twice queues it once; a rerun queues the failed shops again, once, not the
    complete."""
    assert await queue.submit([SHOP, OTHER]) == [1, 1]
    assert await queue.submit([SHOP, OTHER]) == [0, 0]
    assert await queue.redis.xlen(queue.shops_key) == 2
    first, second = await queue.read_shops("w1", count=2)
    await queue.finish_shop(first.shop_url, ("w1", first.message_id), status="failed", error="x")
    await queue.finish_shop(second.shop_url, ("w1", second.message_id), status="complete")
    counts = await queue.counts()
    assert (counts.done, counts.failed, counts.complete, counts.finished) == (2, 1, 1, True)
    # A rerun submits the failed shop again, once; the complete one stays done.
    assert await queue.submit([SHOP, OTHER]) == [2, 0]
    assert await queue.submit([SHOP, OTHER]) == [0, 0]
    counts = await queue.counts()
    assert (counts.submitted, counts.done, counts.failed, counts.queued) == (2, 1, 0, 1)
    (again,) = await queue.read_shops("w2")
    assert again.shop_url == SHOP


async def test_commit_page_is_idempotent_per_read(queue: HarvestQueue) -> None:
    """A page commits once per read: a late duplicate is dropped, a refetch after drift is a commit
    of its own."""
    await queue.submit([SHOP])
    (delivery,) = await queue.read_shops("w1")
    items = msgspec.json.encode([{"item_id": "1"}])

    async def commit(page: int, read: int, total: int = 45) -> bool:
        return await queue.commit_page(
            SHOP,
            page,
            held=("w1", delivery.message_id),
            read=read,
            total_count=total,
            page_size=20,
            items=items,
            item_count=1,
        )

    assert await commit(1, 1)
    assert not await commit(1, 1)  # a late duplicate from a worker that lost the shop
    assert await commit(2, 1, total=47)
    assert await commit(2, 2, total=46)  # a refetch after drift is a commit of its own
    assert not await commit(2, 2)
    checkpoint = await queue.checkpoint(SHOP)
    assert checkpoint is not None
    assert checkpoint.pages == {1: 45, 2: 47}
    assert checkpoint.page_size == 20
    assert checkpoint.status is None
    results = await queue.read_results(pending=False)
    assert [(r.page, r.read) for r in results if isinstance(r, PageCommitted)] == [
        (1, 1),
        (2, 1),
        (2, 2),
    ]
    counts = await queue.counts()
    assert (counts.pages, counts.items) == (3, 3)


async def test_finish_is_once_and_closes_the_shop(queue: HarvestQueue) -> None:
    """A shop finishes once; after that its holder can neither finish it again nor commit a page to
    it."""
    await queue.submit([SHOP])
    (delivery,) = await queue.read_shops("w1")
    held = ("w1", delivery.message_id)
    assert await queue.finish_shop(
        SHOP, held, status="partial", error="page 3", pages=2, item_count=39
    )
    # Finished, its message is acknowledged: it is no longer anyone's to commit to.
    with pytest.raises(ShopTakenOver):
        await queue.finish_shop(SHOP, held, status="complete")
    with pytest.raises(ShopTakenOver):
        await queue.commit_page(
            SHOP, 3, held=held, read=1, total_count=45, page_size=20, items=b"[]", item_count=0
        )
    (result,) = await queue.read_results(pending=False)
    assert isinstance(result, ShopFinished)
    assert (result.status, result.error, result.pages, result.item_count) == (
        "partial",
        "page 3",
        2,
        39,
    )
    counts = await queue.counts()
    assert (counts.in_progress, counts.partial, counts.done) == (0, 1, 1)


async def test_heartbeat_renews_only_what_the_worker_still_owns(queue: HarvestQueue) -> None:
    """A heartbeat renews the shops its worker still holds and reports those taken over, without
    taking them back."""
    await queue.submit([SHOP, OTHER])
    held = await queue.read_shops("slow", count=2)
    ids = [d.message_id for d in held]
    assert await queue.heartbeat("slow", ids) == []
    # Both idle past the threshold would be taken; renew one first, then take over.
    await _age(queue, "slow", ids[1])
    taken = await _take_over(queue, "fast", min_idle_ms=10_000, count=10)
    assert [(d.message_id, d.deliveries) for d in taken] == [(ids[1], 2)]
    # The slow worker must not steal it back: the heartbeat reports it lost.
    assert await queue.heartbeat("slow", ids) == [ids[1]]
    pending = await queue.redis.xpending_range(queue.shops_key, "workers", "-", "+", 10)
    owners = {p["message_id"].decode(): p["consumer"].decode() for p in pending}
    assert owners == {ids[0]: "slow", ids[1]: "fast"}


async def test_take_over_skips_deleted_messages(queue: HarvestQueue) -> None:
    """Taking over idle shops skips messages deleted from the stream."""
    await queue.submit([SHOP, OTHER])
    first, second = await queue.read_shops("dead", count=2)
    await queue.redis.xdel(queue.shops_key, first.message_id)
    await _age(queue, "dead", second.message_id)
    await _age(queue, "dead", first.message_id)
    taken = await _take_over(queue, "next", min_idle_ms=10_000, count=10)
    assert [d.shop_url for d in taken] == [OTHER]


async def test_hand_back_lets_another_take_the_shop_at_once(queue: HarvestQueue) -> None:
    """A shop handed back is taken by another worker at once, with no failed delivery counted."""
    await queue.submit([SHOP])
    (held,) = await queue.read_shops("stopping")
    assert await _take_over(queue, "other", min_idle_ms=10_000) == []  # held: renewed now
    assert await queue.hand_back("stopping", [held.message_id]) == 1
    # Sent again (its answer lost with the connection): not counted back twice.
    assert await queue.hand_back("stopping", [held.message_id]) == 0
    (taken,) = await _take_over(queue, "other", min_idle_ms=10_000)
    # A polite hand-back does not count as a failed delivery.
    assert (taken.shop_url, taken.deliveries) == (SHOP, 1)
    assert await queue.hand_back("stopping", [held.message_id]) == 0  # no longer its own


async def test_a_shop_delivered_too_often_is_dead_lettered(queue: HarvestQueue) -> None:
    """A shop delivered more than max_deliveries times is dead-lettered: failed, with the reason."""
    await queue.submit([SHOP])
    (delivery,) = await queue.read_shops("w0")
    for n in range(2, 5):
        await _age(queue, f"w{n - 1}", delivery.message_id)
        (delivery,) = await _take_over(queue, f"w{n}", min_idle_ms=10_000)
    assert delivery.deliveries == 4 > queue.max_deliveries
    assert await queue.dead_letter("w4", delivery)
    (result,) = await queue.read_results(pending=False)
    assert isinstance(result, ShopFinished)
    assert result.status == "failed"
    assert "3 deliveries" in result.error
    assert await queue.redis.smembers(queue.dead_key) == {SHOP.encode()}
    counts = await queue.counts()
    assert (counts.failed, counts.in_progress, counts.queued) == (1, 0, 0)


async def test_results_pending_then_new_and_ack(queue: HarvestQueue) -> None:
    """Results not acknowledged are read again from the start; acknowledged ones are not."""
    await queue.submit([SHOP])
    (delivery,) = await queue.read_shops("w1")
    for page in (1, 2):
        await queue.commit_page(
            SHOP,
            page,
            held=("w1", delivery.message_id),
            read=1,
            total_count=30,
            page_size=20,
            items=b"[]",
            item_count=0,
        )
    first = await queue.read_results(pending=False, count=1)
    # A coordinator restarted before its ack reads the same entry again, from id 0.
    assert [r.entry_id for r in await queue.read_results(pending=True)] == [first[0].entry_id]
    await queue.ack_results([first[0].entry_id])
    assert await queue.read_results(pending=True) == []
    (second,) = await queue.read_results(pending=False)
    assert isinstance(second, PageCommitted)
    assert second.page == 2


async def test_a_late_commit_or_verdict_from_a_worker_that_lost_its_shop_is_refused(
    queue: HarvestQueue,
) -> None:
    """Fencing: once another worker took the shop over, the old holder's page and its
    verdict change nothing (no result, no status, the message still the new owner's)."""
    await queue.submit([SHOP])
    (delivery,) = await queue.read_shops("stale")
    await _age(queue, "stale", delivery.message_id)
    (taken,) = await _take_over(queue, "fresh", min_idle_ms=10_000)
    stale = ("stale", delivery.message_id)
    with pytest.raises(ShopTakenOver):
        await queue.commit_page(
            SHOP, 1, held=stale, read=1, total_count=45, page_size=20, items=b"[]", item_count=0
        )
    with pytest.raises(ShopTakenOver):
        await queue.finish_shop(SHOP, stale, status="failed", error="late verdict")
    assert await queue.read_results(pending=False) == []
    assert "status" not in await queue.shop_fields(SHOP)
    # The new holder commits and finishes as usual.
    fresh = ("fresh", taken.message_id)
    assert await queue.commit_page(
        SHOP, 1, held=fresh, read=1, total_count=5, page_size=20, items=b"[]", item_count=0
    )
    assert await queue.finish_shop(SHOP, fresh, status="complete", pages=1)
    assert (await queue.counts()).complete == 1


async def test_nothing_is_recreated_once_the_record_is_gone(
    queue: HarvestQueue, redis: Redis
) -> None:
    """Redis emptied (or the harvest forgotten) while a worker holds a shop: its commit,
    its verdict and a submit are refused, and no key comes back."""
    await queue.submit([SHOP])
    (delivery,) = await queue.read_shops("w1")
    await redis.flushall()
    held = ("w1", delivery.message_id)
    with pytest.raises(HarvestGone):
        await queue.commit_page(
            SHOP, 1, held=held, read=1, total_count=45, page_size=20, items=b"[]", item_count=0
        )
    with pytest.raises(HarvestGone):
        await queue.finish_shop(SHOP, held, status="complete")
    with pytest.raises(HarvestGone):
        await queue.submit([OTHER])
    with pytest.raises(HarvestGone):
        await queue.read_shops("w1")
    with pytest.raises(HarvestGone):
        await queue.read_results(pending=False)
    assert await queue.heartbeat("w1", [delivery.message_id]) == [delivery.message_id]
    assert await queue.take_over("w2", min_idle_ms=0) == ("0-0", [])
    assert await redis.keys("*") == []


async def test_the_take_over_scan_keeps_its_cursor_past_live_shops(queue: HarvestQueue) -> None:
    """A dead worker's shop behind 20 live ones: each step looks at 10 entries at most
    (Redis's bound for COUNT 1), and the kept cursor reaches it on the third."""
    live = [f"https://live{i}.1688.com/" for i in range(20)]
    await queue.submit([*live, SHOP])
    held = await queue.read_shops("live", count=20)
    (dead,) = await queue.read_shops("dead")
    await _age(queue, "dead", dead.message_id)
    assert await queue.heartbeat("live", [d.message_id for d in held]) == []
    cursor, steps, found = "0-0", 0, []
    while not found:
        cursor, found = await queue.take_over("next", min_idle_ms=10_000, cursor=cursor)
        steps += 1
        assert steps <= 3
        assert found or cursor != "0-0"  # not wrapped before reaching it
    assert [d.shop_url for d in found] == [SHOP]


async def _pulse_at(queue: HarvestQueue, ago_ms: int) -> None:
    """The fleet's pulse as if a worker last ran a heartbeat script ``ago_ms`` ago."""
    seconds, micros = await queue.redis.time()
    now = int(seconds) * 1000 + int(micros) // 1000
    await queue.redis.hset("tmapi:pulse", mapping={"last": now - ago_ms, "hold": 0})


async def test_no_take_over_right_after_redis_was_away(queue: HarvestQueue) -> None:
    """Redis frozen or restarted: every shop looks idle, the live workers' too. The
    first script after the gap holds take-overs back (for the idle threshold), so each
    worker can renew what it holds first; with a steady pulse a dead worker's shop is
    taken over as usual."""
    await queue.submit([SHOP])
    (held,) = await queue.read_shops("w1")
    await _age(queue, "w1", held.message_id)
    await _pulse_at(queue, ago_ms=6_000)  # nobody ran a heartbeat script for 6 s
    assert await queue.take_over("w2", min_idle_ms=3_000, pulse_gap_ms=2_000) == ("0-0", [])
    hold = int(await queue.redis.hget("tmapi:pulse", "hold") or 0)
    assert hold > 0  # held back for the idle threshold from now
    await _pulse_at(queue, ago_ms=500)  # steady: workers beat every second
    _cursor, taken = await queue.take_over("w2", min_idle_ms=3_000, pulse_gap_ms=2_000)
    assert [d.message_id for d in taken] == [held.message_id]
