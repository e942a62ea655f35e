"""The request log: exact counts, per-page tallies, peaks, windows; never the token."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from tmapi_async.testing import RequestRecord, SimulatedTmapi, fingerprint

Fetch = Callable[..., Awaitable[Any]]  # the ``fetch`` fixture of conftest.py

TOKEN = "tok-secret-1234567890"


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


async def test_log_is_exact_and_never_holds_the_token(fetch: Fetch) -> None:
    """The request log counts every request by outcome, status, page and attempt, holds no token,
    and resets."""
    async with SimulatedTmapi(quota=8) as sim:
        for page in (1, 2, 2, 3):
            await fetch(sim, "alpha", page=page, page_size=10, sort="sales")
        await fetch(sim, "beta")
        await fetch(sim, "beta", sort="nope")
        await fetch(sim, "beta", apiToken=None)
        await fetch(sim, "beta", page=9)
        await fetch(sim, "beta", page=9)
        await fetch(sim, "beta", page=9)  # quota (8 admitted) spent: 439

        log = sim.log
        assert len(log) == 10
        assert [r.seq for r in log] == list(range(1, 11))
        assert log.count_by_outcome() == Counter(
            ok=7, bad_parameter=1, unauthorized=1, quota_exceeded=1
        )
        assert log.count_by_status() == Counter({200: 7, 422: 1, 401: 1, 439: 1})
        assert log.per_page() == Counter(
            {("alpha", 1): 1, ("alpha", 2): 2, ("alpha", 3): 1, ("beta", 1): 1, ("beta", 9): 2}
        )
        assert [r.attempt for r in log.requests_for("alpha", 2)] == [1, 2]
        first = log.records[0]
        assert (first.shop, first.page, first.page_size, first.sort) == ("alpha", 1, 10, "sales")
        assert (first.status, first.code, first.outcome) == (200, 200, "ok")
        assert first.token_fp == fingerprint(TOKEN)
        assert len(first.token_fp) == 8  # the library's short fingerprint
        assert log.records[6].token_fp == ""  # no token at all
        assert all(r.departed is not None and r.departed >= r.arrived for r in log)
        dump = repr(log.records) + repr([dataclasses.astuple(r) for r in log])
        assert TOKEN not in dump
        assert "secret" not in dump

        sim.reset()
        assert len(sim.log) == 0
        assert sim.log.peak_in_flight() == 0
        assert (await fetch(sim, "beta", page=9)).status == 200  # quota is reset too
        assert sim.log.records[0].attempt == 1  # and attempt numbers


async def test_peak_in_flight_per_token() -> None:
    """The log's in-flight count and peak are right per token and overall."""
    gate = asyncio.Event()
    arrived: list[RequestRecord] = []
    all_in = asyncio.Event()

    async def hold(rec: RequestRecord) -> None:
        arrived.append(rec)
        if len(arrived) == 5:
            all_in.set()
        await gate.wait()

    async with SimulatedTmapi(on_request=hold) as sim:
        async with aiohttp.ClientSession() as session:

            async def get(token: str, page: int) -> int:
                params = {"apiToken": token, "shop_url": sim.shop_url("abc"), "page": str(page)}
                async with session.get(sim.endpoint, params=params) as resp:
                    await resp.read()
                    return resp.status

            tasks = [asyncio.create_task(get(TOKEN, p)) for p in range(1, 4)]
            tasks += [asyncio.create_task(get("other", p)) for p in range(1, 3)]
            await all_in.wait()
            assert (sim.log.in_flight(TOKEN), sim.log.in_flight("other")) == (3, 2)
            assert sim.log.in_flight() == 5
            gate.set()
            assert await asyncio.gather(*tasks) == [200] * 5
            assert await get(TOKEN, 9) == 200  # alone: does not raise the peak
        assert sim.log.peak_in_flight(TOKEN) == 3
        assert sim.log.peak_in_flight("other") == 2
        assert sim.log.peak_in_flight("never-seen") == 0
        assert sim.log.peak_in_flight() == 5
        assert sim.log.in_flight() == 0


async def test_peak_in_sliding_window(fetch: Fetch) -> None:
    """peak_in_window counts the most arrivals in any half-open window, per token and overall."""
    clock = FakeClock()
    async with SimulatedTmapi(clock=clock) as sim:
        for t in (0, 1, 2, 9, 10, 11, 15, 30):
            clock.now = 50.0 + t
            await fetch(sim, "abc")
        clock.now = 50.0 + 12
        await fetch(sim, "abc", apiToken="other")
        log = sim.log
        # Windows are half-open, [t, t + W): arrivals exactly W apart never share one.
        assert log.peak_in_window(10, TOKEN) == 4  # e.g. [9, 19) -> 9, 10, 11, 15
        assert log.peak_in_window(10) == 5  # [9, 19) -> 9, 10, 11, 12 (other), 15
        assert log.peak_in_window(3, TOKEN) == 3  # [0, 3) or [9, 12)
        assert log.peak_in_window(2, TOKEN) == 2
        assert log.peak_in_window(4, TOKEN) == 3
        assert log.peak_in_window(4) == 4  # [9, 13)
        assert log.peak_in_window(0.5) == 1
        assert log.peak_in_window(100) == 9
        assert log.peak_in_window(100, "other") == 1
