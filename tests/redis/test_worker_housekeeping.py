"""A fleet of workers kept in order: a corrupt harvest record fails that harvest alone,
backpressure against a coordinator that does not drain, pruning of silent workers and
expired harvests, the worker's connection pool."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from _cluster import Cluster, create_harvests
from redis.asyncio import Redis

from tmapi_async._redis.control import prune
from tmapi_async._redis.queue import HarvestQueue
from tmapi_async.testing import SimulatedTmapi

TOKEN = "tok-edges-0123456789"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_a_corrupt_record_fails_its_harvest_not_the_worker(
    redis_url: str, redis: Redis
) -> None:
    """A harvest whose parameters are not JSON fails alone (status says why); the worker serves the
    others."""
    async with SimulatedTmapi(tokens={TOKEN}, default_shop_size=30) as sim:
        cluster = Cluster({"TMAPI_TOKEN": TOKEN, "TMAPI_BASE_URL": sim.url})
        try:
            await asyncio.to_thread(create_harvests, redis_url, "bad1", "good", shops=2)
            await redis.hset("tmapi:h:bad1", "params", "{not json")
            worker = await cluster.start("worker", "--redis", redis_url, "-v")
            line = await worker.line("harvest bad1 failed")
            assert "its parameters are not a listing: a listing record is not JSON" in line
            await worker.line("complete https://good1.1688.com/")  # it serves the others
            await worker.line("complete https://good0.1688.com/")
            assert not await redis.sismember("tmapi:open", "bad1")
            status = await cluster.start("status", "--redis", redis_url)
            assert await status.exit_code() == 0
            assert "bad1  failed" in status.output()
            assert "failed: its parameters are not a listing" in status.output()
            worker.terminate()
            assert await worker.exit_code() == 0, worker.output()
        finally:
            await cluster.close()


async def test_workers_stop_at_the_backlog_bound_and_go_on_when_it_drains(
    redis_url: str, redis: Redis
) -> None:
    """No coordinator drains the results: the worker stops fetching at the bound (its
    requests in flight still commit), and goes on once they are exported."""
    bound, cap = 6, 2
    async with SimulatedTmapi(tokens={TOKEN}, default_shop_size=100) as sim:
        cluster = Cluster({"TMAPI_TOKEN": TOKEN, "TMAPI_BASE_URL": sim.url})
        try:
            await asyncio.to_thread(create_harvests, redis_url, "bp", shops=6, max_backlog=bound)
            worker = await cluster.start(
                "worker", "--redis", redis_url, "-v", "--concurrency", str(cap)
            )
            await worker.line("harvest bp held back")
            await worker.line("harvest bp backlog: none of its requests in flight")
            queue = HarvestQueue(redis, "bp")
            backlog = await redis.xlen(queue.results_key)
            # Pages stop at the bound; shops' final results may add a few entries.
            assert bound <= backlog <= bound + 2 * cap
            sent = len(sim.log)
            status = await cluster.start("status", "--redis", redis_url)
            assert await status.exit_code() == 0
            assert f"backlog {backlog} results not exported (bound {bound})" in status.output()
            assert len(sim.log) == sent

            while results := await queue.read_results(pending=False, count=100):
                await queue.ack_results([result.entry_id for result in results])
            await worker.line("harvest bp resumed")
            await worker.line("complete https://bp0.1688.com/")
            worker.terminate()
            assert await worker.exit_code() == 0, worker.output()
        finally:
            await cluster.close()


async def test_prune_drops_silent_workers_consumers_and_expired_harvests(
    redis_url: str, redis: Redis
) -> None:
    """prune drops silent workers, idle consumers holding nothing, and expired harvests; it keeps
    the rest."""
    await asyncio.to_thread(create_harvests, redis_url, "p1", shops=1)
    queue = HarvestQueue(redis, "p1")
    await queue.read_shops("quiet")  # holds a shop: never pruned while it does
    await redis.xgroup_createconsumer(queue.shops_key, "workers", "idle")
    now = int((await redis.time())[0])
    about = json.dumps({"shops": 0})
    await redis.hset("tmapi:workers", mapping={"old": f"{now - 601} {about}", "new": f"{now} x"})
    await redis.sadd("tmapi:harvests", "expired")
    await redis.sadd("tmapi:open", "expired")
    assert await prune(redis, silent=0) == (2, 1)  # silent=0: every idle consumer
    consumers = await redis.xinfo_consumers(queue.shops_key, "workers")
    assert [c["name"] for c in consumers] == [b"quiet"]
    assert not await redis.sismember("tmapi:harvests", "expired")
    assert not await redis.sismember("tmapi:open", "expired")
    assert await redis.sismember("tmapi:open", "p1")
    await redis.hset("tmapi:workers", "new", f"{now} x")
    assert (await prune(redis))[0] == 0  # the default: 10 minutes of silence


def test_the_workers_connection_pool_is_its_concurrency(redis_url: str) -> None:
    """A worker's connection pool is sized to its concurrency cap, or the default without one."""
    from tmapi_async.cli._tokens import worker_client

    capped = worker_client(TOKEN, redis_url, cap=16)
    assert capped._transport.connections == 16
    assert worker_client(TOKEN, redis_url, cap=None)._transport.connections == 100
