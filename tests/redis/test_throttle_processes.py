"""The shared throttle across processes, measured where the server counts: four
processes of one token hold its rate and in-flight limit together, and a process
killed with -9 while it holds every slot does not block the token."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

import tmapi_async as tm
from tmapi_async.testing import RequestRecord, SimulatedTmapi

CHILD = Path(__file__).with_name("throttle_child.py")
TOKEN = "tok-processes-Zx81"
WAIT = 60.0  # seconds: a generous bound on a success path (CI is 2 busy cores)


class Child:
    """A throttle_child.py process, read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self) -> str:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), WAIT)
        if not raw:
            code = await self.process.wait()
            raise AssertionError(f"the child ended (exit {code}) without a line")
        return raw.decode().strip()

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")


Spawn = Callable[[str, str, int, int, list[str]], Awaitable[Child]]


@pytest.fixture
async def spawn() -> AsyncIterator[Spawn]:
    """Start throttle_child.py processes (base URL, Redis URL, rate, concurrency, shops);
    kill whatever is left at the end."""
    children: list[Child] = []

    async def start(
        base_url: str, redis_url: str, rate: int, concurrency: int, shops: list[str]
    ) -> Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(CHILD), base_url, redis_url, str(rate), str(concurrency),
            *shops,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            # A settled scheme: with auth "auto" a process holds one request until its
            # key's way is known, and these tests fill every slot at once.
            env={**os.environ, "TMAPI_TOKEN": TOKEN, "TMAPI_AUTH": "header"},
        )  # fmt: skip
        child = Child(process)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.process.returncode is None:
            child.process.kill()
        await child.process.wait()


def shops(prefix: str, count: int) -> list[str]:
    return [f"https://{prefix}{i}.1688.com/" for i in range(count)]


async def test_four_processes_together_keep_the_token_s_limits(
    redis_url: str, spawn: Spawn
) -> None:
    """Four processes of one token, each free to send at the whole rate: where the server
    counts, no second holds more than rate + burst and no moment more than the in-flight
    limit; nothing is refused and every page is asked for once."""
    rate, burst, concurrency = 60, 3, 4  # burst: the default for 60/s
    # Over the limits the simulator refuses (503/429): a refusal would show an excess.
    async with SimulatedTmapi(
        latency_ms=(5, 20), concurrency_limit=concurrency, rate_limit=rate + burst
    ) as sim:
        children = [
            await spawn(sim.url, redis_url, rate, concurrency, shops(f"p{n}s", 9)) for n in range(4)
        ]
        for child in children:
            assert await child.line() == "ready"
        for child in children:
            child.go()
        sent = 0
        for child in children:
            lines = [await child.line() for _ in range(10)]
            assert lines[:9] == ["shop complete"] * 9
            sent += int(lines[9].split()[1])
            assert await asyncio.wait_for(child.process.wait(), WAIT) == 0
        records = sim.log.records
        assert len(records) == sent == 4 * 9 * 5  # 100 items a shop, 20 a page
        assert set(sim.log.count_by_outcome()) == {"ok"}
        assert sim.log.peak_in_window(1.0, TOKEN) <= rate + burst
        assert sim.log.peak_in_flight(TOKEN) <= concurrency
        # How close to the rate they come depends on the machine's load: that is measured
        # by benchmarks/bench_redis_throttle.py, not asserted here.


async def test_a_process_killed_while_holding_every_slot_does_not_block(
    redis_url: str,
    spawn,  # type: ignore[no-untyped-def]
) -> None:
    """A process killed with -9 while its four requests hang holds every slot: its leases
    expire and a new client of the token completes a shop; nothing of the dead is re-sent."""
    held: list[RequestRecord] = []
    all_held = asyncio.Event()
    released = asyncio.Event()

    async def hold_the_hanging_shops(record: RequestRecord) -> None:
        if record.shop is not None and record.shop.startswith("hang"):
            held.append(record)
            if len(held) == 4:
                all_held.set()
            await released.wait()  # hangs until the test ends

    async with SimulatedTmapi(on_request=hold_the_hanging_shops) as sim:
        try:
            holder = await spawn(sim.url, redis_url, 60, 4, shops("hang", 4))
            assert await holder.line() == "ready"
            holder.go()
            await asyncio.wait_for(all_held.wait(), WAIT)  # its 4 requests hang: every slot
            holder.process.kill()  # -9: no release, no goodbye
            await holder.process.wait()
            killed = time.monotonic()
            async with tm.Client(
                TOKEN, base_url=sim.url, redis_url=redis_url, concurrency=4
            ) as client:
                result = await asyncio.wait_for(client.fetch_shop("https://fresh.1688.com/"), 30)
            assert result.status == "complete"
            assert time.monotonic() - killed < 30
            assert len(held) == 4  # the dead process's requests were not re-sent
        finally:
            released.set()
