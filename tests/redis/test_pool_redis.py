"""Pools of tokens sharing their limits through a real redis-server: two pools holding
different sets of tokens keep each token within its one limit, cluster-wide, and a token
that runs dry retires in both; no token is written to Redis."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import redis.asyncio as aioredis
from _cluster import Cluster, assert_token_not_in_redis, expected_items, exported_items

from tmapi_async import TokenPool
from tmapi_async._pool import short_fingerprint
from tmapi_async.testing import SimulatedTmapi, fingerprint

A, B, C = "tokA-SECRET-77e1c0", "tokB-SECRET-4d2b9a", "tokC-SECRET-90f3e5"
WAIT = 60.0  # seconds: a generous bound on a success path (CI is 2 busy cores)


def shops(prefix: str, count: int) -> list[str]:
    return [f"https://{prefix}{i}.1688.com/" for i in range(count)]


async def harvest(pool: TokenPool, urls: list[str]) -> Counter[tuple[str, str]]:
    seen: Counter[tuple[str, str]] = Counter()
    async with pool:
        async for result in pool.harvest(urls):
            assert result.status == "complete", result
            seen.update((result.shop_url, item.item_id) for item in result.items)
    return seen


async def redis_bytes(redis_url: str) -> bytes:
    """Every key and value Redis holds, as one blob to search."""
    blob = bytearray()
    async with aioredis.Redis.from_url(redis_url) as r:
        async for key in r.scan_iter():
            blob += key
            kind = (await r.type(key)).decode()
            if kind == "string":
                blob += await r.get(key) or b""
            elif kind == "hash":
                for field, value in (await r.hgetall(key)).items():
                    blob += field + value
            elif kind == "zset":
                for member in await r.zrange(key, 0, -1):
                    blob += member
            elif kind == "set":
                for member in await r.smembers(key):
                    blob += member
            elif kind == "list":
                for member in await r.lrange(key, 0, -1):
                    blob += member
    return bytes(blob)


async def test_pools_with_different_tokens_share_each_tokens_limits(redis_url: str) -> None:
    """Pool 1 holds A and B, pool 2 holds B and C: B is shared, and stays within its
    limit of 2 in flight in all; B's balance ends, both pools retire it and finish."""
    async with SimulatedTmapi(
        default_shop_size=100, concurrency_limit=2, latency_ms=(2.0, 8.0), quotas={B: 5}
    ) as sim:
        # B runs dry early; both pools have work left to learn it from Redis.
        first, second = shops("left", 40), shops("right", 40)
        keywords = {"base_url": sim.url, "redis_url": redis_url, "rate": 1000.0, "concurrency": 2}
        left = TokenPool([A, B], **keywords)  # type: ignore[arg-type]
        right = TokenPool([B, C], **keywords)  # type: ignore[arg-type]
        got = await asyncio.wait_for(
            asyncio.gather(harvest(left, first), harvest(right, second)), WAIT
        )
        for urls, seen in zip((first, second), got, strict=True):
            expected = Counter((u, i.item_id) for u in urls for i in sim.expected_items(u))
            assert seen == expected
        for token in (A, B, C):
            assert sim.log.peak_in_flight(token) <= 2
        refused = Counter(r.outcome for r in sim.log.records if r.token_fp == fingerprint(B))
        assert refused["ok"] == 5
        assert refused["concurrency_limited"] == 0  # one shared limit, not one per pool
        for pool in (left, right):
            retired = {u.fingerprint: u.retired for u in pool.tokens}
            assert retired[short_fingerprint(B)] is not None
        blob = await redis_bytes(redis_url)
        assert blob  # the limits live there
        for token in (A, B, C):
            assert token.encode() not in blob


async def test_workers_with_different_tokens_finish_a_harvest_when_one_runs_dry(
    redis_url: str, tmp_path: Path
) -> None:
    """``harvest --redis`` sets the limits of A, B and C; one worker holds A and B,
    another B and C; A's balance ends after 3 requests: the harvest exits 0, every item
    once, each token within its limit cluster-wide, no token in Redis."""
    async with SimulatedTmapi(
        default_shop_size=100, concurrency_limit=2, latency_ms=(5.0, 20.0), quotas={A: 3}
    ) as sim:
        names = [f"scale{i}" for i in range(24)]
        shops_file = tmp_path / "shops.txt"
        shops_file.write_text("".join(f"https://{name}.1688.com/\n" for name in names))
        output = tmp_path / "items.jsonl"
        cluster = Cluster({"TMAPI_TOKEN": f"{A},{B},{C}", "TMAPI_BASE_URL": sim.url})
        try:
            coordinator = await cluster.start(
                *("harvest", str(shops_file), "--output", str(output), "--redis", redis_url),
                *("--workers", "0", "--rate", "1000", "--concurrency", "2"),
            )
            workers = []
            for held in ((A, B), (B, C)):  # the one holding A first, so that A is used
                tokens = [arg for token in held for arg in ("--token", token)]
                workers.append(await cluster.start("worker", "--redis", redis_url, *tokens, "-v"))
                await workers[-1].line("serving")
                if held == (A, B):  # it has found the harvest and used A: start the other
                    await workers[-1].line("complete ")
            assert await coordinator.exit_code() == 0, coordinator.output()
            for worker in workers:
                worker.terminate()
                assert await worker.exit_code() == 0, worker.output()
            outputs = [process.output() for process in cluster.processes]
        finally:
            await cluster.close()
        exported = exported_items(output)
        assert len(exported) == len(set(exported))
        assert set(exported) == expected_items(sim, names)
        for token in (A, B, C):
            assert sim.log.peak_in_flight(token) <= 2
        assert sim.log.count_by_outcome()["concurrency_limited"] == 0
        assert sim.log.count_by_outcome()["quota_exceeded"] >= 1  # A did run dry
        for token in (A, B, C):
            assert_token_not_in_redis(redis_url, token)
            assert all(token not in text for text in outputs)
        # The worker that held A names it retired, by fingerprint, in its last lines.
        retired = [line for line in workers[0].lines if "retired" in line]
        assert retired
        assert f"token {short_fingerprint(A)}" in retired[-1]
