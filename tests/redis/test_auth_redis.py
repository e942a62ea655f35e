"""``harvest --redis --workers 2`` with keys the server takes one way only: each worker
process finds the way out for itself, at most one refused request per key per process
(so at most two per key here), every item exported once, and neither the key nor the
way found is written to Redis."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import redis as redis_sync
from _cluster import Cluster, assert_token_not_in_redis, expected_items, exported_items

from tmapi_async.testing import SimulatedTmapi

A, B = "keyA-SECRET-51c0e2", "keyB-SECRET-7a9d33"
WORKERS = 2


def redis_blob(url: str) -> bytes:
    """Every key name and every value Redis holds, as one blob to search."""
    blob = bytearray()
    with redis_sync.Redis.from_url(url) as conn:
        for key in conn.scan_iter(count=1000):
            blob += key
            dump = conn.dump(key)
            blob += dump or b""
    return bytes(blob)


@pytest.mark.parametrize(
    ("accepted", "keys"),
    [("header", (A,)), ("query", (A,)), ("query", (A, B))],
    ids=["header-one-key", "query-one-key", "query-two-keys"],
)
async def test_two_workers_find_the_way_of_each_key_at_one_refusal_per_process(
    redis_url: str, tmp_path: Path, accepted: str, keys: tuple[str, ...]
) -> None:
    """Two local workers of one harvest, auto auth: exit 0, every item once, each key
    refused at most once per worker (none when the header is taken)."""
    async with SimulatedTmapi(auth=accepted, default_shop_size=50, latency_ms=(2.0, 6.0)) as sim:  # type: ignore[arg-type]
        names = [f"authredis{i}" for i in range(16)]
        shops = tmp_path / "shops.txt"
        shops.write_text("".join(f"https://{name}.1688.com/\n" for name in names))
        output = tmp_path / "items.jsonl"
        cluster = Cluster({"TMAPI_TOKEN": ",".join(keys), "TMAPI_BASE_URL": sim.url})
        try:
            coordinator = await cluster.start(
                *("harvest", str(shops), "--output", str(output), "--redis", redis_url),
                *("--workers", str(WORKERS), "--rate", "1000", "--concurrency", "4", "-v"),
            )
            assert await coordinator.exit_code() == 0, coordinator.output()
            text = coordinator.output()
        finally:
            await cluster.close()
        exported = exported_items(output)
        assert len(exported) == len(set(exported))
        assert set(exported) == expected_items(sim, names)
        for key in keys:
            refused = sim.log.refused(key)
            assert refused <= WORKERS  # one per key per process
            if accepted == "header":
                assert refused == 0
            assert key not in text
            assert_token_not_in_redis(redis_url, key)
        ways = Counter(r.auth for r in sim.log.records if r.outcome == "ok")
        assert set(ways) == {accepted}
        # The way found is each process's own: nothing in Redis names it.
        blob = redis_blob(redis_url)
        assert b"apikey" not in blob.lower()
        assert b"apitoken" not in blob.lower()
