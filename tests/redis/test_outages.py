"""Redis going away in the middle of a harvest: frozen, killed and restarted from its
append-only file, or gone for good.

Each test starts a ``redis-server`` of its own (``--appendonly yes --appendfsync
everysec`` in a temporary directory) that it can freeze (SIGSTOP), thaw, kill -9 and
restart on the same port from the same files. A frozen Redis stays frozen for 6 s (a
sleep: the fault itself, shorter than a command's timeout); a killed one is restarted
once the run has met the outage (a line it prints, an event of the client's); everything
else waits on events too.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis as redis_sync
from _cluster import (
    Cluster,
    RequestCount,
    expected_items,
    exported_items,
    pages_of,
    pages_served_twice,
)

import tmapi_async as tm
from tmapi_async import RedisUnavailableError
from tmapi_async._redis.connection import Outage
from tmapi_async.testing import SimulatedTmapi, sizes_between

TOKEN = "tok-" + secrets.token_hex(16)
LIMIT = 6
RATE, BURST = 30, 5
_START = 20.0  # seconds for a server to answer PING after a (re)start


class OwnRedis:
    """A ``redis-server`` of one test, with persistence on, that faults on demand."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed (apt-get install redis-server)"
        self._binary, self._dir, self._password = binary, workdir, password
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or restart after a kill) on the same port, from the same files."""
        args = [
            self._binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self._dir),
            "--logfile", str(self._dir / "redis.log"),
        ]  # fmt: skip
        if self._password:
            args += ["--requirepass", self._password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = redis_sync.Redis(
            port=self.port, password=self._password, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        deadline = time.monotonic() + _START
        try:
            while True:  # polled with a bound: the server has no readiness signal
                try:
                    if probe.ping():
                        return
                except redis_sync.RedisError:
                    pass
                assert self.process.poll() is None, (self._dir / "redis.log").read_text()
                assert time.monotonic() < deadline, "redis-server did not answer PING"
                time.sleep(0.02)
        finally:
            probe.close()

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """kill -9: what was written to the append-only file is all that is left."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def wipe(self) -> None:
        """Lose every file: the next start is an empty Redis (a new machine, a lost disk)."""
        for path in self._dir.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            elif path.name != "redis.log":
                path.unlink()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.thaw()
            self.kill()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path / "redis")
    server._dir.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.close()


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


def _shops(tmp_path: Path, n: int) -> tuple[Path, list[str]]:
    names = [f"shop{i}" for i in range(1, n + 1)]
    path = tmp_path / "shops.txt"
    path.write_text("".join(f"https://{name}.1688.com/\n" for name in names))
    return path, names


async def _harvest_through_a_fault(
    sim: tuple[SimulatedTmapi, RequestCount],
    own_redis: OwnRedis,
    tmp_path: Path,
    *,
    kill: bool,
    empty: bool = False,
) -> str:
    """``harvest --redis --workers 2``; a third of the way in, Redis is frozen for 6 s or
    killed, and restarted once the run says it is unreachable. The same run must end 0
    with every item once."""
    server, requests = sim
    shops, names = _shops(tmp_path, 30)
    output = tmp_path / "items.jsonl"
    env = {"TMAPI_TOKEN": TOKEN, "TMAPI_BASE_URL": server.url, "PYTHONWARNINGS": "default"}
    cluster = Cluster(env)
    try:
        coordinator = await cluster.start(
            *("harvest", str(shops), "--output", str(output), "--redis", own_redis.url),
            *("--workers", "2", "--rate", str(RATE), "--burst", str(BURST)),
            *("--concurrency", str(LIMIT), "--redis-outage", "30", "-v"),
        )
        await requests.reach(pages_of(server, names) // 3)
        if kill:
            own_redis.kill()
            if empty:
                own_redis.wipe()
            await coordinator.line("unreachable for")  # the run (or a worker) met the outage
            own_redis.start()
        else:
            own_redis.freeze()
            await asyncio.sleep(6.0)  # the fault: Redis is frozen for 6 s
            own_redis.thaw()
        assert await coordinator.exit_code() == 0, coordinator.output()
    finally:
        await cluster.close()
    exported = exported_items(output)
    assert len(exported) == len(set(exported)), "an item was exported twice"
    assert set(exported) == expected_items(server, names)
    log = server.log  # the shared limits held through the fault, nothing paid twice
    assert log.peak_in_flight(TOKEN) <= LIMIT
    assert log.count_by_outcome()["concurrency_limited"] == 0
    assert log.peak_in_window(1.0, TOKEN) <= RATE + BURST
    if not empty:  # a Redis back empty costs the pages it forgot of unexported shops
        assert pages_served_twice(server) == 0
    assert "Warning" not in coordinator.output()  # its workers write there too
    assert "Traceback" not in coordinator.output()
    return coordinator.output()


async def test_a_harvest_rides_out_redis_frozen_for_6_s(
    sim: tuple[SimulatedTmapi, RequestCount], own_redis: OwnRedis, tmp_path: Path
) -> None:
    """Redis SIGSTOPped for 6 s mid-harvest: the same run ends 0, every item once."""
    await _harvest_through_a_fault(sim, own_redis, tmp_path, kill=False)


async def test_a_harvest_rides_out_redis_killed_and_restarted_from_its_aof(
    sim: tuple[SimulatedTmapi, RequestCount], own_redis: OwnRedis, tmp_path: Path
) -> None:
    """Redis kill -9 and restarted from its AOF once the run says it is waiting for it:
    the same run ends 0, every item once, and the run said that Redis came back."""
    output = await _harvest_through_a_fault(sim, own_redis, tmp_path, kill=True)
    assert "Redis is back after" in output, output


async def test_a_harvest_survives_redis_restarted_empty(
    sim: tuple[SimulatedTmapi, RequestCount], own_redis: OwnRedis, tmp_path: Path
) -> None:
    """Redis killed mid-harvest and back with none of its data: the coordinator
    finds its record gone, says so and submits again from its state file; the same run
    ends 0 with every item exactly once (no shop complete with items missing)."""
    output = await _harvest_through_a_fault(sim, own_redis, tmp_path, kill=True, empty=True)
    assert "Redis lost harvest" in output, output


async def test_a_client_rides_out_a_restart_and_stops_past_redis_outage(tmp_path: Path) -> None:
    """In-process ``Client(redis_url=...)``: a kill and restart is ridden out; Redis
    gone for longer than ``redis_outage`` stops it with RedisUnavailableError naming
    the URL without its password."""
    password = "pw-" + secrets.token_hex(8)
    workdir = tmp_path / "redis"
    workdir.mkdir()
    own = OwnRedis(workdir, password=password)
    own.start()
    count = RequestCount()
    try:
        async with SimulatedTmapi(
            tokens={TOKEN}, default_shop_size=60, latency_ms=(20.0, 40.0), on_request=count
        ) as sim:
            names = [f"inproc{i}" for i in range(12)]  # 3 pages each
            async with tm.Client(
                TOKEN, base_url=sim.url, redis_url=own.url, rate=RATE, redis_outage=1.5
            ) as client:
                urls = [f"https://{name}.1688.com/" for name in names]
                harvest = asyncio.ensure_future(_collect(client, urls[:6]))
                outage = Outage.shared(own.url, 1.5)  # the client's, while it is open
                met = _note_failures(outage)
                await count.reach(6)
                own.kill()
                await asyncio.wait_for(met.wait(), 30)  # a command of the client failed
                own.start()
                results = await asyncio.wait_for(harvest, 60)
                assert [r.status for r in results] == ["complete"] * 6
                assert sum(r.item_count for r in results) == 6 * 60
                assert outage.ended >= 1  # an outage was met and ridden out

                seen = count.count
                harvest = asyncio.ensure_future(_collect(client, urls[6:]))
                await count.reach(seen + 3)
                own.kill()  # and not back
                with pytest.raises(RedisUnavailableError) as stopped:
                    await asyncio.wait_for(harvest, 30)
        message = str(stopped.value)
        assert f"redis://:***@127.0.0.1:{own.port}/0" in message, message
        assert password not in message
        assert "1.5 s" in message, message
    finally:
        own.close()


def _note_failures(outage: Outage) -> asyncio.Event:
    """An event set when a command of ``outage``'s process first fails to reach Redis."""
    met = asyncio.Event()
    failed = outage.failed

    def note(error: BaseException) -> bool:
        met.set()
        return failed(error)

    outage.failed = note  # type: ignore[method-assign]
    return met


async def _collect(client: tm.Client, urls: list[str]) -> list[tm.ShopResult]:
    return [result async for result in client.harvest(urls)]


def test_no_warning_from_redis_py_reaches_the_user(redis_url: str) -> None:
    """``status`` (a command that only talks to Redis) prints no third-party warning."""
    done = subprocess.run(
        [sys.executable, "-m", "tmapi_async", "status", "--redis", redis_url],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "default"},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr


async def test_an_idle_worker_that_loses_redis_waits_then_exits_3_in_one_line(
    own_redis: OwnRedis,
) -> None:
    """A worker with nothing to do whose Redis is gone past --redis-outage exits 3 with
    one clear line (the URL, what happened), no traceback."""
    cluster = Cluster({"TMAPI_TOKEN": TOKEN})
    try:
        worker = await cluster.start("worker", "--redis", own_redis.url, "--redis-outage", "1.5")
        await worker.line("ready")
        own_redis.kill()
        assert await worker.exit_code(within=30.0) == 3, worker.output()
    finally:
        await cluster.close()
    output = worker.output()
    assert "Traceback" not in output, output
    stop = [line for line in output.splitlines() if "unavailable" in line]
    assert len(stop) == 1, output
    assert f"127.0.0.1:{own_redis.port}" in stop[0], output


async def test_a_submit_pipeline_sent_again_after_a_restart_reloads_its_scripts(
    redis_url: str,
) -> None:
    """redis-py loads a pipeline's scripts only before it sends it: a Redis restarted
    between the two answers NOSCRIPT. The submission runs again and loads them."""
    from redis.asyncio.client import Pipeline

    from tmapi_async._redis.connection import open_connection
    from tmapi_async._redis.queue import HarvestQueue

    conn = await open_connection(redis_url)
    load_scripts = Pipeline.load_scripts
    skipped: list[bool] = []

    async def lost_once(pipe: Pipeline) -> None:  # as if Redis restarted right after
        if not skipped:
            skipped.append(True)
            await conn.client.script_flush()
            return
        await load_scripts(pipe)

    try:
        queue = HarvestQueue(conn.client, "restart")
        await queue.create(output="/tmp/restart.jsonl", params={"page_size": 20})
        Pipeline.load_scripts = lost_once  # type: ignore[method-assign]
        try:
            assert await queue.submit(["https://a.1688.com/", "https://b.1688.com/"]) == [1, 1]
        finally:
            Pipeline.load_scripts = load_scripts  # type: ignore[method-assign]
        assert skipped
        assert (await queue.counts()).submitted == 2
    finally:
        await conn.aclose()


async def test_a_harvest_past_redis_outage_stops_with_exit_3_and_no_traceback(
    sim: tuple[SimulatedTmapi, RequestCount], own_redis: OwnRedis, tmp_path: Path
) -> None:
    """Redis gone for longer than --redis-outage: the coordinator and its workers stop,
    exit 3, the message names the URL; no traceback, no third-party warning."""
    server, requests = sim
    shops, _names = _shops(tmp_path, 30)
    env = {"TMAPI_TOKEN": TOKEN, "TMAPI_BASE_URL": server.url, "PYTHONWARNINGS": "default"}
    cluster = Cluster(env)
    try:
        coordinator = await cluster.start(
            *("harvest", str(shops), "--output", str(tmp_path / "items.jsonl")),
            *("--redis", own_redis.url, "--workers", "2", "--rate", str(RATE)),
            *("--redis-outage", "1.5"),
        )
        await requests.reach(20)
        own_redis.kill()  # and not back
        assert await coordinator.exit_code(within=60.0) == 3, coordinator.output()
    finally:
        await cluster.close()
    output = coordinator.output()
    assert f"Redis at redis://127.0.0.1:{own_redis.port}/0 is unavailable" in output, output
    assert "Traceback" not in output, output
    assert "Warning" not in output, output
