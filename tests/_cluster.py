"""Helpers of the multi-process tests: processes of ``tmapi-async``, the simulator's
request count as an event, and the checks every scale-out test makes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Sequence
from math import ceil
from pathlib import Path

import redis as redis_sync

from tmapi_async.testing import SimulatedTmapi
from tmapi_async.testing._log import RequestRecord

TIMEOUT = 120.0  # seconds for anything on a success path (CI is 2 busy cores)


class RequestCount:
    """The simulator's admitted requests as something to await (its ``on_request``)."""

    def __init__(self) -> None:
        self.count = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    async def __call__(self, record: RequestRecord) -> None:
        self.count += 1
        for n, waiter in self._waiters:
            if self.count >= n and not waiter.done():
                waiter.set_result(None)

    async def reach(self, n: int) -> None:
        if self.count >= n:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((n, waiter))
        await asyncio.wait_for(waiter, TIMEOUT)


class Process:
    """A ``python -m tmapi_async ...`` process whose stderr lines are kept and awaitable."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, args: Sequence[str], env: dict[str, str]) -> Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tmapi_async",
            *args,
            env={**os.environ, **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip())
            self._changed.set()
        self._changed.set()

    async def line(self, text: str) -> str:
        """The first line containing ``text`` (waiting for it)."""

        async def find() -> str:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                if self._reader.done():
                    raise AssertionError(f"exited without {text!r}:\n" + "\n".join(self.lines))
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(find(), TIMEOUT)

    async def exit_code(self, within: float = TIMEOUT) -> int:
        """The exit code, which must come ``within`` seconds."""
        code = await asyncio.wait_for(self.process.wait(), within)
        await self._reader
        return code

    def output(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)


class Cluster:
    """The processes a test started: killed at the end, whatever happened."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.processes: list[Process] = []

    async def start(self, *args: str) -> Process:
        process = await Process.start(args, self.env)
        self.processes.append(process)
        return process

    async def close(self) -> None:
        for process in self.processes:
            process.kill()
        for process in self.processes:
            await process.process.wait()
            await asyncio.gather(process._reader, return_exceptions=True)


def pages_of(sim: SimulatedTmapi, shops: Sequence[str]) -> int:
    return sum(max(1, ceil(sim.shop_size(shop) / 20)) for shop in shops)


def expected_items(sim: SimulatedTmapi, shops: Sequence[str]) -> set[tuple[str, str]]:
    return {
        (f"https://{shop}.1688.com/", item.item_id)
        for shop in shops
        for item in sim.expected_items(shop)
    }


def exported_items(output: Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    return [(row["shop_url"], row["item_id"]) for row in rows]


def pages_served_twice(sim: SimulatedTmapi) -> int:
    """Answers given for a page beyond its first (only answers with items count)."""
    served: dict[tuple[str | None, int | None], int] = {}
    for record in sim.log:
        if record.outcome == "ok":
            key = (record.shop, record.page)
            served[key] = served.get(key, 0) + 1
    return sum(n - 1 for n in served.values())


def assert_token_not_in_redis(url: str, token: str) -> int:
    """Scan every key: neither its name, its DUMP nor its decoded value holds the token.
    Returns how many keys were looked at."""
    secret = token.encode()
    keys = 0
    with redis_sync.Redis.from_url(url) as conn:
        for key in conn.scan_iter(count=1000):
            keys += 1
            assert secret not in key
            dump = conn.dump(key)
            assert dump is None or secret not in dump
            kind = conn.type(key).decode()
            if kind == "string":
                value: object = conn.get(key)
            elif kind == "hash":
                value = conn.hgetall(key)
            elif kind == "set":
                value = conn.smembers(key)
            elif kind == "zset":
                value = conn.zrange(key, 0, -1, withscores=True)
            elif kind == "stream":
                value = conn.xrange(key)
            elif kind == "list":
                value = conn.lrange(key, 0, -1)
            else:
                value = b""
            assert token not in repr(value)
    return keys


def harvest_id_of(output: Path) -> str:
    """The harvest id the state file of ``output`` keeps (made when it was created)."""
    with sqlite3.connect(f"{output}.state.db") as db:
        (hid,) = db.execute("SELECT value FROM meta WHERE key = 'harvest_id'").fetchone()
    return str(hid)


def only_harvest(url: str) -> str | None:
    """The id of the one harvest submitted to the (emptied) Redis so far, if there is one."""
    with redis_sync.Redis.from_url(url) as conn:
        hids = conn.smembers("tmapi:harvests")
    return next(iter(hids)).decode() if len(hids) == 1 else None


def create_harvests(url: str, *hids: str, shops: int = 0, max_backlog: int | None = None) -> None:
    """Create harvests ``hids`` in the Redis at ``url`` (kept an hour once finished), each
    with ``shops`` shops submitted, as a coordinator would."""
    from redis.asyncio import Redis

    from tmapi_async._redis.control import configure
    from tmapi_async._redis.queue import HarvestQueue

    async def create() -> None:
        async with Redis.from_url(url) as client:
            for hid in hids:
                queue = HarvestQueue(client, hid)
                await queue.create(output=f"/tmp/{hid}.jsonl", params={"page_size": 20})
                await configure(queue, keep=3600, max_backlog=max_backlog)
                await queue.submit([f"https://{hid}{i}.1688.com/" for i in range(shops)])

    asyncio.run(create())
