"""A harvest spread over worker processes through Redis, against the simulator.

Real processes (``tmapi-async harvest --redis`` and ``tmapi-async worker``), a real
redis-server, the simulator in this process (its request log sees every request of
every process). Faults are real too: ``kill -9`` of a worker and of the coordinator,
SIGTERM of a worker. Each test synchronises on events (the simulator's request count,
lines a process prints, process exits), never on sleeps.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _cluster import (
    Cluster,
    RequestCount,
    assert_token_not_in_redis,
    expected_items,
    exported_items,
    pages_of,
    pages_served_twice,
)

from tmapi_async.testing import RequestRecord, SimulatedTmapi, sizes_between

TOKEN = "tok-" + secrets.token_hex(16)
LIMIT = 6  # the account's in-flight limit, and the one the harvest sets
RATE, BURST = 40, 5


@pytest.fixture
async def sim() -> AsyncIterator[tuple[SimulatedTmapi, RequestCount]]:
    count = RequestCount()
    async with SimulatedTmapi(
        tokens={TOKEN},
        size_fn=sizes_between(30, 110),  # 2..6 pages a shop
        latency_ms=(30.0, 80.0),
        concurrency_limit=LIMIT,
        on_request=count,
    ) as server:
        yield server, count


@pytest.fixture
async def cluster(sim: tuple[SimulatedTmapi, RequestCount]) -> AsyncIterator[Cluster]:
    server, _ = sim
    procs = Cluster({"TMAPI_TOKEN": TOKEN, "TMAPI_BASE_URL": server.url})
    try:
        yield procs
    finally:
        await procs.close()


def _shops(tmp_path: Path, n: int) -> tuple[Path, list[str]]:
    names = [f"shop{i}" for i in range(1, n + 1)]
    path = tmp_path / "shops.txt"
    path.write_text("".join(f"https://{name}.1688.com/\n" for name in names))
    return path, names


def _harvest_args(shops: Path, output: Path, redis_url: str) -> list[str]:
    return [
        "harvest",
        str(shops),
        "--output",
        str(output),
        "--redis",
        redis_url,
        "--workers",
        "0",
        "--rate",
        str(RATE),
        "--burst",
        str(BURST),
        "--concurrency",
        str(LIMIT),
        "-v",
    ]


async def test_kill_9_of_a_worker_and_of_the_coordinator_lose_and_duplicate_nothing(
    sim: tuple[SimulatedTmapi, RequestCount], cluster: Cluster, redis_url: str, tmp_path: Path
) -> None:
    """kill -9 of a worker and of the coordinator mid-harvest: every item exported once, within the
    token's limits."""
    server, requests = sim
    shops, names = _shops(tmp_path, 36)
    output = tmp_path / "items.jsonl"
    pages = pages_of(server, names)
    args = _harvest_args(shops, output, redis_url)

    coordinator = await cluster.start(*args)
    workers = [await cluster.start("worker", "--redis", redis_url, "-v") for _ in range(3)]
    await requests.reach(pages // 5)
    await workers[0].line("complete ")  # it works: it holds shops and sends requests
    workers[0].kill()  # mid-harvest, holding shops and requests in flight
    workers.append(await cluster.start("worker", "--redis", redis_url, "-v"))
    await requests.reach(2 * pages // 5)
    coordinator.kill()
    await requests.reach(3 * pages // 5)  # the workers go on without a coordinator
    assert assert_token_not_in_redis(redis_url, TOKEN) > 0
    coordinator = await cluster.start(*args)
    assert await coordinator.exit_code() == 0, coordinator.output()

    exported = exported_items(output)
    assert len(exported) == len(set(exported)), "an item was exported twice"
    assert set(exported) == expected_items(server, names)
    log = server.log
    assert log.peak_in_flight(TOKEN) <= LIMIT
    assert log.count_by_outcome()["concurrency_limited"] == 0
    assert log.peak_in_window(1.0, TOKEN) <= RATE + BURST
    # Only what the killed worker had in flight can have been paid twice.
    assert pages_served_twice(server) <= LIMIT
    assert_token_not_in_redis(redis_url, TOKEN)
    for worker in workers[1:]:
        worker.terminate()
        assert await worker.exit_code(within=10.0 + 5.0) == 0, worker.output()


async def test_a_worker_stopped_by_sigterm_finishes_its_requests_and_hands_shops_back(
    sim: tuple[SimulatedTmapi, RequestCount], cluster: Cluster, redis_url: str, tmp_path: Path
) -> None:
    """A worker stopped by SIGTERM finishes its requests, hands its shops back and exits 0; nothing
    is paid twice."""
    server, requests = sim
    shops, names = _shops(tmp_path, 24)
    output = tmp_path / "items.jsonl"
    pages = pages_of(server, names)

    coordinator = await cluster.start(*_harvest_args(shops, output, redis_url))
    stopping = await cluster.start("worker", "--redis", redis_url, "-v")
    await requests.reach(pages // 4)
    other = await cluster.start("worker", "--redis", redis_url, "-v")
    await other.line("ready")
    loop = asyncio.get_running_loop()
    stopping.terminate()
    signalled = loop.time()
    await stopping.line(" stopped")  # its last line, once its shops are handed back
    assert loop.time() - signalled < 10.0
    # The exit itself gets a margin: process teardown on a loaded machine.
    assert await stopping.exit_code(within=12.0) == 0, stopping.output()
    assert "handed back" in stopping.output()
    assert await coordinator.exit_code() == 0, coordinator.output()

    exported = exported_items(output)
    assert len(exported) == len(set(exported))
    assert set(exported) == expected_items(server, names)
    # Requests in flight at the stop were answered and committed: nothing paid twice.
    assert pages_served_twice(server) == 0
    other.terminate()
    assert await other.exit_code(within=12.0) == 0


async def test_a_worker_killed_holding_every_slot_does_not_block_the_token(
    redis_url: str, tmp_path: Path
) -> None:
    """Its requests hang; once it is killed, another worker gets answers within 30 s,
    not after a request timeout: in-flight slots are short leases, renewed while their
    process lives."""
    limit = 3
    gate = asyncio.Event()  # holds the first `limit` requests until the test ends
    count = RequestCount()

    async def hang_the_first(record: RequestRecord) -> None:
        await count(record)
        if count.count <= limit:
            await gate.wait()

    shops, names = _shops(tmp_path, 8)
    output = tmp_path / "items.jsonl"
    async with SimulatedTmapi(
        tokens={TOKEN}, size_fn=sizes_between(30, 60), on_request=hang_the_first
    ) as server:
        # A settled scheme (auth "header"): in "auto" a key's first request goes alone,
        # and this test needs every slot held at once.
        env = {"TMAPI_TOKEN": TOKEN, "TMAPI_BASE_URL": server.url, "TMAPI_AUTH": "header"}
        cluster = Cluster(env)
        try:
            args = _harvest_args(shops, output, redis_url)
            args[args.index("--concurrency") + 1] = str(limit)
            coordinator = await cluster.start(*args)
            stuck = await cluster.start("worker", "--redis", redis_url, "--timeout", "600")
            await count.reach(limit)  # every slot of the token is held, hanging
            stuck.kill()
            killed_at = asyncio.get_running_loop().time()
            await cluster.start("worker", "--redis", redis_url)
            await count.reach(limit + 1)
            assert asyncio.get_running_loop().time() - killed_at < 30.0
            gate.set()
            assert await coordinator.exit_code() == 0, coordinator.output()
        finally:
            gate.set()
            await cluster.close()
        exported = exported_items(output)
        assert len(exported) == len(set(exported))
        assert set(exported) == expected_items(server, names)


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_local_workers_of_a_harvest_stop_when_it_is_killed_and_a_rerun_finishes(
    sim: tuple[SimulatedTmapi, RequestCount], cluster: Cluster, redis_url: str, tmp_path: Path
) -> None:
    """The local workers of a harvest killed with -9 stop with it; a rerun exports every item
    once."""
    server, requests = sim
    shops, names = _shops(tmp_path, 24)
    output = tmp_path / "items.jsonl"
    args = _harvest_args(shops, output, redis_url)
    args[args.index("--workers") + 1] = "2"

    coordinator = await cluster.start(*args)
    await requests.reach(pages_of(server, names) // 3)
    workers = _children(coordinator.process.pid)
    assert len(workers) == 2
    coordinator.kill()
    await coordinator.exit_code()
    rerun = await cluster.start(*args)
    assert await rerun.exit_code() == 0, rerun.output()
    assert not [pid for pid in workers if _alive(pid)], "workers outlived their harvest"
    exported = exported_items(output)
    assert len(exported) == len(set(exported))
    assert set(exported) == expected_items(server, names)
    assert server.log.peak_in_flight(TOKEN) <= LIMIT
