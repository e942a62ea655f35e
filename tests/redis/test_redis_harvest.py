"""The coordinator and a worker in this process, through a real redis-server: drift,
failed shops tried again on a rerun, a rerun that submits nothing twice, status."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import msgspec
import pytest
from redis.asyncio import Redis

from tmapi_async import Client, Limits, ShopResult
from tmapi_async._admission import CappedAdmission
from tmapi_async._errors import InvalidParameterError
from tmapi_async._redis.connection import open_connection
from tmapi_async._redis.coordinator import RedisHarvest, RedisHarvestError
from tmapi_async._redis.queue import HarvestQueue
from tmapi_async._redis.throttle import RedisThrottle
from tmapi_async._redis.worker import OwnershipGate, RedisWorker
from tmapi_async._secret import fingerprint
from tmapi_async.cli.status import status_lines
from tmapi_async.export import ExportJournal
from tmapi_async.testing import SimulatedTmapi

TOKEN = "tok-in-process-0123456789abcdef"
PARAMS = {"page_size": 20, "sort": "default", "cat": None, "cat_type": None}


async def _lines(urls: Iterable[str]) -> AsyncIterator[str]:
    for url in urls:
        yield url


async def _harvest(
    redis_url: str,
    sim: SimulatedTmapi,
    output: Path,
    shops: list[str],
    *,
    cap: int | None = None,
    max_deliveries: int = 5,
) -> list[ShopResult]:
    """One coordinator run with one in-process worker; returns the shop results."""
    state = output.with_name(output.name + ".state.db")
    journal = ExportJournal.open(state, output, "jsonl", params=PARAMS, base_url=sim.url)
    job = RedisHarvest(
        redis_url,
        journal,
        _lines(shops),
        output=output,
        params=PARAMS,
        token=TOKEN,
        limits=Limits(rate=200.0, burst=20, concurrency=8),
        poll=0.05,
    )
    conn = await open_connection(redis_url)
    gate = OwnershipGate(0.2)
    throttle = CappedAdmission(RedisThrottle(redis_url, TOKEN), cap, gate)
    client = Client(TOKEN, base_url=sim.url, throttle=throttle)
    worker = RedisWorker(conn, client, gate=gate, heartbeat=0.2, max_deliveries=max_deliveries)
    try:
        async with client:
            serving = asyncio.create_task(worker.run())
            try:
                results = [result async for result in job]
            finally:
                worker.stop()
                await asyncio.wait_for(serving, 30)
    finally:
        journal.close()
        await conn.aclose()
    return results


def _harvest_id(output: Path) -> str:
    """The id the state file of ``output`` keeps (made when it was created)."""
    state = output.with_name(output.name + ".state.db")
    if not state.exists():
        ExportJournal.open(state, output, "jsonl", params=PARAMS, base_url="").close()
        output.unlink()
    with sqlite3.connect(state) as db:
        (hid,) = db.execute("SELECT value FROM meta WHERE key = 'harvest_id'").fetchone()
    return str(hid)


def _exported(output: Path) -> list[tuple[str, str]]:
    rows = [msgspec.json.decode(line) for line in output.read_bytes().splitlines()]
    return [(row["shop_url"], row["item_id"]) for row in rows]


def _expected(sim: SimulatedTmapi, shops: list[str]) -> set[tuple[str, str]]:
    return {(shop, item.item_id) for shop in shops for item in sim.expected_items(shop)}


async def test_drift_through_redis_misses_nothing_and_duplicates_nothing(
    redis_url: str, tmp_path: Path
) -> None:
    """Shops whose listing drifts while read through Redis workers are exported whole, each item
    once."""
    shops = [f"https://drift{i}.1688.com/" for i in range(4)]
    async with SimulatedTmapi(
        default_shop_size=300, drift_every=3, drift_items=4, drift_max=12, seed=9
    ) as sim:
        output = tmp_path / "items.jsonl"
        results = await _harvest(redis_url, sim, output, shops, cap=4)
        assert {r.status for r in results} == {"complete"}
        assert all(sim.drift(shop) > 0 for shop in shops)
        exported = _exported(output)
        assert len(exported) == len(set(exported))
        assert set(exported) == _expected(sim, shops)


async def test_a_rerun_submits_nothing_twice_and_tries_failed_shops_again(
    redis_url: str, tmp_path: Path
) -> None:
    """A rerun through Redis asks again only for the pages that failed; queues end empty and status
    names no token."""
    shops = [f"https://shop{i}.1688.com/" for i in range(1, 7)]
    output = tmp_path / "items.jsonl"
    async with SimulatedTmapi(
        default_shop_size=50, failing_shops={"shop3": 2}, failing_code=422
    ) as sim:
        first = await _harvest(redis_url, sim, output, shops)
        status = {r.shop_url: r.status for r in first}
        assert status.pop("https://shop3.1688.com/") == "partial"
        assert set(status.values()) == {"complete"}
        requests_first = len(sim.log)

        sim.configure(failing_shops={})
        second = await _harvest(redis_url, sim, output, shops)
        assert {r.shop_url: r.status for r in second} == dict.fromkeys(shops, "complete")
        # Only the pages of shop3 that had failed were asked for again.
        assert len(sim.log) - requests_first == 2
        assert [r.page for r in sim.log.records[requests_first:]] == [2, 3]
        exported = _exported(output)
        assert len(exported) == len(set(exported))
        assert set(exported) == _expected(sim, shops)

    async with Redis.from_url(redis_url) as redis:
        queue = HarvestQueue(redis, _harvest_id(output))
        counts = await queue.counts()
        assert (counts.submitted, counts.complete, counts.done) == (6, 6, 6)
        assert await redis.xlen(queue.shops_key) == 0  # every message acknowledged and gone
        assert await redis.xlen(queue.results_key) == 0  # every result exported and gone
        lines = "\n".join(await status_lines(redis))
    assert "6 submitted, 0 queued, 0 in progress, 6 done (6 complete" in lines
    assert fingerprint(TOKEN) in lines
    assert "rate 200.0/s" in lines
    assert TOKEN not in lines


async def test_a_workers_failed_shop_reaches_the_coordinator_with_its_class(
    redis_url: str, tmp_path: Path
) -> None:
    """A shop a worker failed (422 on page 1) comes out of the coordinator as the same
    public error class, with its code and status, and the shop's Redis record holds the
    error's class by name, never the token."""
    shops = ["https://good.1688.com/", "https://refused.1688.com/"]
    output = tmp_path / "items.jsonl"
    async with SimulatedTmapi(
        default_shop_size=30, failing_shops={"refused": 1}, failing_code=422
    ) as sim:
        results = {r.shop_url: r for r in await _harvest(redis_url, sim, output, shops)}
    refused = results["https://refused.1688.com/"]
    assert refused.status == "failed"
    assert type(refused.error) is InvalidParameterError
    assert (refused.error.code, refused.error.status) == (422, 422)
    assert results["https://good.1688.com/"].error is None
    async with Redis.from_url(redis_url) as redis:
        queue = HarvestQueue(redis, _harvest_id(output))
        record = (await redis.hgetall(queue.shop_key("https://refused.1688.com/")))[b"error"]
    assert b'"kind": "InvalidParameterError"' in record
    assert TOKEN.encode() not in record


@pytest.mark.parametrize("cap", [2])
async def test_worker_concurrency_caps_its_own_requests_not_the_token(
    redis_url: str, tmp_path: Path, cap: int
) -> None:
    """A worker's concurrency caps its own requests in flight, below the token's limit."""
    shops = [f"https://shop{i}.1688.com/" for i in range(1, 9)]
    async with SimulatedTmapi(default_shop_size=60, latency_ms=(5.0, 15.0)) as sim:
        output = tmp_path / "items.jsonl"
        await _harvest(redis_url, sim, output, shops, cap=cap)
        assert sim.log.peak_in_flight() <= cap  # the token allows 8
        assert set(_exported(output)) == _expected(sim, shops)


class _Crash(Exception):
    """Stands for the coordinator dying at a chosen instant."""


@pytest.mark.parametrize("where", ["flush", "ack_results"])
async def test_a_coordinator_dying_between_commit_and_ack_loses_and_duplicates_nothing(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Dying in either step of taking results (commit the journal, then acknowledge in
    Redis) leaves the next run to read them again: every item once."""
    shops = [f"https://shop{i}.1688.com/" for i in range(1, 9)]
    output = tmp_path / "items.jsonl"
    target: type[object] = ExportJournal if where == "flush" else HarvestQueue

    def crash(self: object, *args: object) -> None:
        raise _Crash(where)

    async with SimulatedTmapi(default_shop_size=70) as sim:
        with monkeypatch.context() as patch:
            patch.setattr(target, where, crash)
            # Only the coordinator's own commit, before it acknowledges, may commit here.
            patch.setattr(ExportJournal, "_schedule_flush", lambda self: None)
            with pytest.raises(_Crash):
                await _harvest(redis_url, sim, output, shops)
        results = await _harvest(redis_url, sim, output, shops)
        assert {r.status for r in results} == {"complete"}
        exported = _exported(output)
        assert len(exported) == len(set(exported))
        assert set(exported) == _expected(sim, shops)


async def test_a_shop_delivered_too_often_is_given_up_then_tried_again_by_a_rerun(
    redis_url: str, tmp_path: Path
) -> None:
    """A shop past max_deliveries is given up unfetched, exported as failed, and harvested whole by
    a rerun."""
    shops = ["https://shop1.1688.com/", "https://shop2.1688.com/"]
    output = tmp_path / "items.jsonl"
    async with SimulatedTmapi(default_shop_size=30) as sim, Redis.from_url(redis_url) as redis:
        # A worker died holding shop1: its next delivery is its second, one too many.
        queue = HarvestQueue(redis, _harvest_id(output))
        await queue.create(output=str(output.resolve()), params=PARAMS)
        await queue.submit(shops[:1])
        (held,) = await queue.read_shops("died")
        await redis.xclaim(
            queue.shops_key, "workers", "died", 0, [held.message_id], idle=60_000, justid=True
        )
        conn = await open_connection(redis_url)
        client = Client(TOKEN, base_url=sim.url, throttle=RedisThrottle(redis_url, TOKEN))
        worker = RedisWorker(conn, client, heartbeat=0.2, max_deliveries=1)
        async with client:
            serving = asyncio.create_task(worker.run())
            answer = await redis.xread({queue.results_key: "0"}, count=1, block=60_000)
            worker.stop()
            await asyncio.wait_for(serving, 30)
        await conn.aclose()
        ((_key, ((_entry, fields),)),) = answer
        assert fields[b"status"] == b"failed"
        assert b"given up after 1 deliveries" in fields[b"error"]
        assert await redis.smembers(queue.dead_key) == {shops[0].encode()}
        assert "1 given up" in "\n".join(await status_lines(redis))
        assert len(sim.log) == 0  # given up: never fetched

        # The coordinator exports the failure; a rerun tries the shop again.
        results = await _harvest(redis_url, sim, output, shops)
        assert {r.shop_url: r.status for r in results} == dict.fromkeys(shops, "complete")
        assert await redis.smembers(queue.dead_key) == set()
        exported = _exported(output)
        assert len(exported) == len(set(exported))
        assert set(exported) == _expected(sim, shops)


async def test_the_state_file_is_the_truth_against_a_redis_that_forgot_or_differs(
    redis_url: str, tmp_path: Path
) -> None:
    """A finished harvest whose Redis record is gone (an empty Redis, an expiry) is
    submitted again from the state file and fetches nothing; a record of another epoch
    (made for a copy of the state file) is refused, naming the harvest."""
    shops = [f"https://shop{i}.1688.com/" for i in range(1, 4)]
    output = tmp_path / "items.jsonl"
    async with SimulatedTmapi(default_shop_size=50) as sim:
        await _harvest(redis_url, sim, output, shops)
        served = len(sim.log)
        async with Redis.from_url(redis_url) as redis:
            await redis.flushall()
        again = await _harvest(redis_url, sim, output, shops)
        assert {r.shop_url: r.status for r in again} == dict.fromkeys(shops, "complete")
        assert len(sim.log) == served  # the state file holds them: nothing fetched
        assert set(_exported(output)) == _expected(sim, shops)
        assert len(_exported(output)) == len(_expected(sim, shops))

        hid = _harvest_id(output)
        async with Redis.from_url(redis_url) as redis:
            await redis.hset(f"tmapi:h:{hid}", "epoch", "elsewhere")
        with pytest.raises(RedisHarvestError, match=f"record of harvest {hid} does not match"):
            await _harvest(redis_url, sim, output, shops)
        assert len(sim.log) == served


async def test_a_redis_user_limited_to_tmapi_keys_without_dangerous_commands_is_enough(
    redis_url: str, tmp_path: Path
) -> None:
    """The ACL the documentation recommends (keys ``tmapi:*`` only, no dangerous command
    such as FLUSHALL, KEYS, CONFIG or DEBUG) carries a whole harvest and ``status``."""
    password = "pw-" + fingerprint(TOKEN)
    async with Redis.from_url(redis_url) as admin:
        await admin.execute_command(
            "ACL", "SETUSER", "tmapi", "on", f">{password}", "resetkeys", "~tmapi:*",
            "resetchannels", "+@all", "-@dangerous",
        )  # fmt: skip
    limited = redis_url.replace("redis://", f"redis://tmapi:{password}@")
    shops = [f"https://shop{i}.1688.com/" for i in range(1, 4)]
    output = tmp_path / "items.jsonl"
    try:
        async with SimulatedTmapi(default_shop_size=50) as sim:
            results = await _harvest(limited, sim, output, shops)
            assert {r.status for r in results} == {"complete"}
            assert set(_exported(output)) == _expected(sim, shops)
        async with Redis.from_url(limited) as redis:
            assert "3 submitted" in "\n".join(await status_lines(redis))
            with pytest.raises(Exception, match="permission"):
                await redis.flushall()
    finally:
        async with Redis.from_url(redis_url) as admin:
            await admin.execute_command("ACL", "DELUSER", "tmapi")
