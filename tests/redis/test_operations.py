"""What a fleet meets in production, through real processes and a real redis-server:
rotated state files, a Redis emptied mid-harvest, a worker frozen past the take-over,
workers waiting for work when a harvest opens, a dead worker's shop behind live ones.

Each test synchronises on events (the simulator's request count, lines a process
prints, process exits, results in Redis) or on Redis's own state (who holds which shop),
never on sleeps.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _cluster import (
    TIMEOUT,
    Cluster,
    RequestCount,
    expected_items,
    exported_items,
    harvest_id_of,
    pages_of,
    pages_served_twice,
)
from redis.asyncio import Redis

from tmapi_async import Client
from tmapi_async._admission import CappedAdmission
from tmapi_async._redis.connection import open_connection
from tmapi_async._redis.queue import SHOP_GROUP, HarvestQueue
from tmapi_async._redis.throttle import RedisThrottle
from tmapi_async._redis.worker import OwnershipGate, RedisWorker
from tmapi_async.testing import SimulatedTmapi, fingerprint

TOKEN = "tok-" + secrets.token_hex(16)
OTHER = "tok-" + secrets.token_hex(16)


def _shops(tmp_path: Path, names: list[str]) -> Path:
    path = tmp_path / "shops.txt"
    path.write_text("".join(f"https://{name}.1688.com/\n" for name in names))
    return path


def _harvest(shops: Path, output: Path, redis_url: str, *extra: str) -> list[str]:
    return [
        *("harvest", str(shops), "--output", str(output), "--redis", redis_url),
        *("--rate", "1000", "--concurrency", "8", *extra),
    ]


def _rotate(folder: Path, pattern: str, to: Path) -> None:
    """Move the files a cron job rotates away (the export and its state)."""
    to.mkdir()
    for path in folder.glob(pattern):
        path.rename(to / path.name)


async def _held_by(redis: Redis, hid: str, worker: str) -> set[str]:
    """The shop messages of harvest ``hid`` that ``worker`` holds, as Redis sees them."""
    queue = HarvestQueue(redis, hid)
    pending = await redis.xpending_range(
        queue.shops_key, SHOP_GROUP, "-", "+", 10_000, consumername=worker
    )
    return {entry["message_id"].decode() for entry in pending}


async def _until_taken_over(redis: Redis, hid: str, worker: str) -> None:
    """Wait until ``worker`` holds no shop of harvest ``hid`` any more: another worker took
    them over (Redis has no event for it: its pending list is looked at every 50 ms)."""
    async with asyncio.timeout(TIMEOUT):
        while await _held_by(redis, hid, worker):  # noqa: ASYNC110 (state in Redis)
            await asyncio.sleep(0.05)


def _assert_exact(sim: SimulatedTmapi, output: Path, names: list[str]) -> None:
    exported = exported_items(output)
    assert len(exported) == len(set(exported)), "an item was exported twice"
    assert set(exported) == expected_items(sim, names), "an item is missing"


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    procs = Cluster({"TMAPI_TOKEN": TOKEN})
    try:
        yield procs
    finally:
        await procs.close()


async def test_a_fresh_state_file_is_a_fresh_harvest(
    redis_url: str, tmp_path: Path, cluster: Cluster
) -> None:
    """A finished harvest's output and state moved away (a cron job rotating files),
    the same command run again: a new harvest, whose export holds every item once."""
    names = [f"rot{i}" for i in range(8)]
    shops = _shops(tmp_path, names)
    output = tmp_path / "items.jsonl"
    async with SimulatedTmapi(tokens={TOKEN}, default_shop_size=45) as sim:
        cluster.env["TMAPI_BASE_URL"] = sim.url
        args = _harvest(shops, output, redis_url, "--workers", "1")
        first = await cluster.start(*args)
        assert await first.exit_code() == 0, first.output()
        _assert_exact(sim, output, names)
        _rotate(tmp_path, "items.jsonl*", tmp_path / "yesterday")
        served = len(sim.log)

        second = await cluster.start(*args)
        assert await second.exit_code() == 0, second.output()
        _assert_exact(sim, output, names)
        assert len(sim.log) == 2 * served  # harvested again, as a new harvest must be


async def test_a_redis_emptied_mid_harvest_is_detected_and_the_run_ends_exact(
    redis_url: str, tmp_path: Path, cluster: Cluster
) -> None:
    """Redis comes back empty (a restart without persistence, a FLUSHALL) while the
    workers hold shops: nothing is recreated behind the coordinator's back; it notices,
    says so, makes the record again and submits again from its state file the shops
    without a final result; the same run ends with every item exactly once, no shop
    complete with items missing. A rerun then has nothing to do."""
    names = [f"wipe{i}" for i in range(12)]
    shops = _shops(tmp_path, names)
    output = tmp_path / "items.jsonl"
    requests = RequestCount()
    async with SimulatedTmapi(
        tokens={TOKEN}, default_shop_size=200, latency_ms=(10.0, 30.0), on_request=requests
    ) as sim:
        cluster.env["TMAPI_BASE_URL"] = sim.url
        workers = [await cluster.start("worker", "--redis", redis_url) for _ in range(2)]
        for worker in workers:
            await worker.line("ready")
        args = _harvest(shops, output, redis_url, "--workers", "0")
        coordinator = await cluster.start(*args)
        await requests.reach(pages_of(sim, names) // 3)
        async with Redis.from_url(redis_url) as redis:
            await redis.flushall()
        assert await coordinator.exit_code() == 0, coordinator.output()
        assert "Redis lost harvest" in coordinator.output()
        _assert_exact(sim, output, names)
        for worker in workers:  # the workers rode it out and served the new record
            assert worker.process.returncode is None, worker.output()

        served = len(sim.log)
        rerun = await cluster.start(*args)
        assert await rerun.exit_code() == 0, rerun.output()
        assert len(sim.log) == served  # finished: nothing to fetch
        _assert_exact(sim, output, names)


async def test_a_worker_frozen_past_the_take_over_costs_only_its_requests_in_flight(
    redis_url: str, tmp_path: Path, cluster: Cluster
) -> None:
    """One of two workers is frozen (SIGSTOP: a stolen VM) while most of a large harvest
    is still to do, until Redis shows the other took every shop it held over; the frozen
    one, when it wakes, drops them at once: the pages paid twice are at most the requests
    it had in flight, not the rest of its shops."""
    names = [f"frozen{i}" for i in range(6)]
    shops = _shops(tmp_path, names)
    output = tmp_path / "items.jsonl"
    cap = 2  # each worker's requests in flight
    requests = RequestCount()
    async with SimulatedTmapi(
        tokens={TOKEN}, default_shop_size=2000, latency_ms=(40.0, 80.0), on_request=requests
    ) as sim:
        cluster.env["TMAPI_BASE_URL"] = sim.url
        worker_args = ("worker", "--redis", redis_url, "--concurrency", str(cap), "-v")
        workers = [await cluster.start(*worker_args) for _ in range(2)]
        ids = [(await worker.line(" ready")).split()[1] for worker in workers]
        coordinator = await cluster.start(*_harvest(shops, output, redis_url, "--workers", "0"))
        pages = pages_of(sim, names)
        await requests.reach(pages // 8)
        frozen = workers[0]
        hid = harvest_id_of(output)
        os.kill(frozen.process.pid, signal.SIGSTOP)
        try:
            async with Redis.from_url(redis_url) as redis:
                held = await _held_by(redis, hid, ids[0])
                assert held, "the worker froze holding no shop: nothing to take over"
                # Stopped, it cannot acknowledge: its shops leave it only by a take-over.
                await _until_taken_over(redis, hid, ids[0])
        finally:
            os.kill(frozen.process.pid, signal.SIGCONT)
        assert requests.count < pages * 3 // 4  # most of the harvest was still to do
        assert await coordinator.exit_code() == 0, coordinator.output()
        _assert_exact(sim, output, names)
        assert pages_served_twice(sim) <= cap
        await frozen.line("no longer held here")


async def test_idle_workers_share_a_new_harvest(
    redis_url: str, tmp_path: Path, cluster: Cluster
) -> None:
    """Two workers wait for work, then a 24-shop harvest opens: both start on it at once
    and hold only the shops they work on, so each sends at least a third of it."""
    names = [f"share{i}" for i in range(24)]
    shops = _shops(tmp_path, names)
    output = tmp_path / "items.jsonl"
    async with SimulatedTmapi(
        tokens={TOKEN, OTHER}, default_shop_size=100, latency_ms=(10.0, 30.0)
    ) as sim:
        cluster.env["TMAPI_BASE_URL"] = sim.url
        workers = [
            await cluster.start("worker", "--redis", redis_url, "--token", token)
            for token in (TOKEN, OTHER)
        ]
        for worker in workers:
            await worker.line("ready")
        coordinator = await cluster.start(*_harvest(shops, output, redis_url, "--workers", "0"))
        assert await coordinator.exit_code() == 0, coordinator.output()
        _assert_exact(sim, output, names)
        sent = Counter(record.token_fp for record in sim.log.records)
        total = sum(sent.values())
        for token in (TOKEN, OTHER):
            assert sent[fingerprint(token)] >= total / 3, sent


async def test_a_dead_workers_shop_behind_twenty_live_ones_moves_on_within_10_s(
    redis_url: str,
) -> None:
    """Twenty shops held by a live worker come first in the pending list, then one of a
    dead worker: a worker finds and finishes the dead one's shop within 10 s."""
    live = [f"https://live{i}.1688.com/" for i in range(20)]
    dead_shop = "https://orphan.1688.com/"
    async with (
        SimulatedTmapi(tokens={TOKEN}, default_shop_size=30) as sim,
        Redis.from_url(redis_url) as redis,
    ):
        queue = HarvestQueue(redis, "deep")
        await queue.create(output="/tmp/deep.jsonl", params={"page_size": 20})
        await queue.submit([*live, dead_shop])
        held = [d.message_id for d in await queue.read_shops("live", count=20)]
        (orphan,) = await queue.read_shops("dead")
        await redis.xclaim(
            queue.shops_key, "workers", "dead", 0, [orphan.message_id], idle=60_000, justid=True
        )

        async def keep_alive() -> None:  # the live worker renews its twenty shops
            while True:
                assert await queue.heartbeat("live", held) == []
                await asyncio.sleep(0.2)

        renewing = asyncio.create_task(keep_alive())
        conn = await open_connection(redis_url)
        gate = OwnershipGate()
        client = Client(
            TOKEN,
            base_url=sim.url,
            throttle=CappedAdmission(RedisThrottle(redis_url, TOKEN), None, gate),
        )
        worker = RedisWorker(conn, client, gate=gate)
        try:
            async with client:
                serving = asyncio.create_task(worker.run())
                finished = await asyncio.wait_for(_finished(redis, queue), 10.0)
                worker.stop()
                await asyncio.wait_for(serving, TIMEOUT)
        finally:
            renewing.cancel()
            await conn.aclose()
        assert finished == dead_shop
        assert {record.shop for record in sim.log.records} == {"orphan"}


async def _finished(redis: Redis, queue: HarvestQueue) -> str:
    """The URL of the first shop whose final status reaches the results stream."""
    last = "0"
    while True:
        answer = await redis.xread({queue.results_key: last}, block=1000)
        for _key, entries in answer or ():
            for entry_id, fields in entries:
                last = entry_id
                if fields[b"kind"] == b"shop":
                    return str(fields[b"shop"].decode())
