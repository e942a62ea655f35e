"""The controls' edges: naming a harvest, the Redis from the environment, a corrupt
record, backpressure against a coordinator that does not drain, pruning, the worker's
connection pool."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from _cluster import Cluster
from redis.asyncio import Redis

from tmapi_async._redis.control import configure, prune
from tmapi_async._redis.queue import HarvestQueue
from tmapi_async.cli import main
from tmapi_async.testing import SimulatedTmapi

TOKEN = "tok-edges-0123456789"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def _create(url: str, *hids: str, shops: int = 0, max_backlog: int | None = None) -> None:
    async def create() -> None:
        async with Redis.from_url(url) as client:
            for hid in hids:
                queue = HarvestQueue(client, hid)
                await queue.create(output=f"/tmp/{hid}.jsonl", params={"page_size": 20})
                await configure(queue, keep=3600, max_backlog=max_backlog)
                await queue.submit([f"https://{hid}{i}.1688.com/" for i in range(shops)])

    asyncio.run(create())


def test_a_harvest_is_named_by_its_id_or_a_unique_prefix(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every control takes TMAPI_REDIS_URL without --redis; ambiguous or unknown: exit 2."""
    _create(redis_url, "abc1", "abc2", "fed9")
    monkeypatch.setenv("TMAPI_REDIS_URL", redis_url)
    assert main(["pause", "ab"]) == 2
    assert "'ab' is ambiguous: abc1, abc2" in capsys.readouterr().err
    assert main(["resume", "zz"]) == 2
    assert "no harvest 'zz'" in capsys.readouterr().err
    assert main(["pause", "abc1"]) == 0
    assert "abc1: open -> paused" in capsys.readouterr().out
    assert main(["pause", "abc1"]) == 0
    assert "already" in capsys.readouterr().out
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "abc1  paused" in out
    assert "abc2  open" in out
    assert main(["resume", "abc1"]) == 0
    assert "paused -> open" in capsys.readouterr().out
    assert main(["cancel", "f"]) == 0
    assert "fed9: open -> cancelled" in capsys.readouterr().out
    assert main(["resume", "fed9"]) == 1  # a cancelled harvest is rerun, not resumed
    assert "fed9 is cancelled: nothing to resume" in capsys.readouterr().err
    assert main(["forget", "fed"]) == 0
    assert "fed9 forgotten" in capsys.readouterr().out
    assert main(["forget", "fed9"]) == 2
    monkeypatch.delenv("TMAPI_REDIS_URL")
    for command in ("pause", "resume", "cancel", "forget"):
        assert main([command, "abc1"]) == 2
        assert "--redis URL or set TMAPI_REDIS_URL" in capsys.readouterr().err


def test_harvest_redis_alone_needs_the_variable(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TMAPI_TOKEN", TOKEN)
    monkeypatch.delenv("TMAPI_REDIS_URL", raising=False)
    output = f"{tmp_path}/items.jsonl"
    assert main(["harvest", "-", "--output", output, "--redis"]) == 2
    assert "--redis without a URL takes $TMAPI_REDIS_URL" in capsys.readouterr().err


async def test_a_corrupt_record_fails_its_harvest_not_the_worker(
    redis_url: str, redis: Redis
) -> None:
    async with SimulatedTmapi(tokens={TOKEN}, default_shop_size=30) as sim:
        cluster = Cluster({"TMAPI_TOKEN": TOKEN, "TMAPI_BASE_URL": sim.url})
        try:
            await asyncio.to_thread(_create, redis_url, "bad1", "good", shops=2)
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
            await asyncio.to_thread(_create, redis_url, "bp", shops=6, max_backlog=bound)
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
    await asyncio.to_thread(_create, redis_url, "p1", shops=1)
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
    from tmapi_async.cli._tokens import worker_client

    capped = worker_client(TOKEN, redis_url, cap=16)
    assert capped._transport.connections == 16
    assert worker_client(TOKEN, redis_url, cap=None)._transport.connections == 100
