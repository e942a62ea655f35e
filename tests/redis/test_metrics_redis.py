"""``/metrics`` of a harvest through Redis: the worker's and the coordinator's, scraped
while requests are held at the simulator, with each harvest's queue, backlog and the
workers alive read from Redis; no token in them."""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path

import aiohttp
from _cluster import Cluster, only_harvest
from prometheus_client.parser import text_string_to_metric_families

from tmapi_async._pool import short_fingerprint
from tmapi_async.testing import RequestRecord, SimulatedTmapi

TOKEN = "tok-" + secrets.token_hex(16)


async def _scrape(line: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    port = int(re.search(r"127\.0\.0\.1:(\d+)/metrics", line).group(1))  # type: ignore[union-attr]
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    assert TOKEN not in text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_worker_and_coordinator_metrics_read_redis(redis_url: str, tmp_path: Path) -> None:
    """Mid-run, both processes tell the harvest's queue and backlog and the worker alive."""
    held, release = asyncio.Event(), asyncio.Event()
    seen = 0

    async def hold(_record: RequestRecord) -> None:
        nonlocal seen
        seen += 1
        if seen >= 10:
            held.set()
            await release.wait()

    shops = tmp_path / "shops.txt"
    shops.write_text("".join(f"https://shop{i}.1688.com/\n" for i in range(12)))
    output = tmp_path / "items.jsonl"
    async with SimulatedTmapi(tokens={TOKEN}, default_shop_size=60, on_request=hold) as sim:
        cluster = Cluster({"TMAPI_TOKEN": TOKEN, "TMAPI_BASE_URL": sim.url})
        try:
            coordinator = await cluster.start(
                "harvest", str(shops), "-o", str(output), "--redis", redis_url,
                "--workers", "0", "--metrics-port", "0",
            )  # fmt: skip
            where = await coordinator.line("metrics: http://")
            worker = await cluster.start(
                "worker", "--redis", redis_url, "--metrics-port", "0", "--concurrency", "2"
            )
            worker_where = await worker.line("metrics: http://")
            await held.wait()
            hid = only_harvest(redis_url)
            assert hid is not None
            mine = await _scrape(worker_where)
            theirs = await _scrape(where)
            release.set()
            assert await coordinator.exit_code() == 0, coordinator.output()
            worker.terminate()
            assert await worker.exit_code() == 0, worker.output()
        finally:
            await cluster.close()
    for samples in (mine, theirs):
        assert samples[("tmapi_workers_alive", ())] == 1
        assert samples[("tmapi_redis_up", ())] == 1
        queued = samples[("tmapi_queue_shops", (("harvest", hid),))]
        in_progress = samples[("tmapi_shops_in_progress", (("harvest", hid),))]
        assert 0 < queued + in_progress <= 12
        assert ("tmapi_results_backlog", (("harvest", hid),)) in samples
        assert samples[("tmapi_dead_letters", (("harvest", hid),))] == 0
    billed = mine[("tmapi_requests_billed_total", (("token", short_fingerprint(TOKEN)),))]
    assert 10 <= billed <= len(sim.log)


async def test_worker_and_coordinator_log_json_lines(redis_url: str, tmp_path: Path) -> None:
    """With --log-format json, a worker says only JSON lines, each shop with the harvest
    and worker ids; the coordinator's stderr is JSON beside its text summary."""
    import json

    shops = tmp_path / "shops.txt"
    shops.write_text("".join(f"https://shop{i}.1688.com/\n" for i in range(6)))
    output = tmp_path / "items.jsonl"
    async with SimulatedTmapi(tokens={TOKEN}, default_shop_size=45) as sim:
        cluster = Cluster({"TMAPI_TOKEN": TOKEN, "TMAPI_BASE_URL": sim.url})
        try:
            coordinator = await cluster.start(
                "harvest", str(shops), "-o", str(output), "--redis", redis_url,
                "--workers", "0", "--log-format", "json",
            )  # fmt: skip
            worker = await cluster.start("worker", "--redis", redis_url, "--log-format", "json")
            assert await coordinator.exit_code() == 0, coordinator.output()
            hid = only_harvest(redis_url)
            worker.terminate()
            assert await worker.exit_code() == 0, worker.output()
        finally:
            await cluster.close()
    worker_lines = [json.loads(line) for line in worker.lines]
    assert TOKEN not in worker.output()
    assert TOKEN not in coordinator.output()
    worker_ids = {line["worker_id"] for line in worker_lines}
    assert len(worker_ids) == 1
    finished = [line for line in worker_lines if line["event"] == "shop_finished"]
    assert len(finished) == 6
    assert {line["harvest_id"] for line in finished} == {hid}
    summary = ("shops:", "items:", "requests:", "elapsed:", "export:")
    theirs = [line for line in coordinator.lines if not line.startswith(summary)]
    events = [json.loads(line) for line in theirs]
    assert {line["harvest_id"] for line in events} == {hid}
    assert next(e for e in events if e["event"] == "harvest_finished")["items"] == 6 * 45
