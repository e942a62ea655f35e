"""Per-token accounts: 401, 439 after the quota, 503 beyond the in-flight limit, 429."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tmapi_async.testing import RequestRecord, SimulatedTmapi, fingerprint

Fetch = Callable[..., Awaitable[Any]]  # the ``fetch`` fixture of conftest.py

TOKEN = "tok-secret-1234567890"


class FakeClock:
    """A clock tests move by hand, so rate windows never depend on the machine's speed."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_missing_empty_or_unknown_token_is_401(fetch: Fetch) -> None:
    """A missing or empty token is 401; any token passes until tokens are set, then only those
    do."""
    unauthorized = {"code": 401, "msg": "Token is not authorized or has expired", "data": None}
    async with SimulatedTmapi() as sim:
        for token in (None, ""):
            r = await fetch(sim, "abc", apiToken=token)
            assert (r.status, r.json) == (401, unauthorized)
        assert (await fetch(sim, "abc", apiToken="anything")).status == 200
        sim.configure(tokens={"good"})
        assert (await fetch(sim, "abc", apiToken="good")).status == 200
        r = await fetch(sim, "abc", apiToken="bad")
        assert (r.status, r.json) == (401, unauthorized)
        assert sim.log.count_by_outcome()["unauthorized"] == 3


async def test_quota_then_439_per_token(fetch: Fetch) -> None:
    """Each token has its quota of billed requests (bad ones too), then 439; a reset starts a new
    period."""
    balance = {"code": 439, "msg": "Subscription expired or insufficient balance", "data": None}
    async with SimulatedTmapi(quota=3, quotas={"rich": 5}) as sim:
        statuses = [(await fetch(sim, "abc", page=p)).status for p in (1, 2)]
        statuses.append((await fetch(sim, "abc", page="bad")).status)  # billed like any other
        assert statuses == [200, 200, 422]
        for _ in range(2):
            r = await fetch(sim, "abc")
            assert (r.status, r.json) == (439, balance)
        assert [(await fetch(sim, "abc", apiToken="other")).status for _ in range(4)] == [
            200,
            200,
            200,
            439,
        ]
        assert [(await fetch(sim, "abc", apiToken="rich")).status for _ in range(6)] == [
            200
        ] * 5 + [439]
        sim.reset()  # a new billing period
        assert (await fetch(sim, "abc")).status == 200


async def test_concurrency_limit_503_with_gated_requests(fetch: Fetch) -> None:
    """A request over a token's concurrency limit is 503 with the documented body; other tokens are
    not affected."""
    gate = asyncio.Event()
    two_in = asyncio.Event()
    held: list[RequestRecord] = []

    async def hold(rec: RequestRecord) -> None:
        if rec.token_fp == fingerprint(TOKEN):
            held.append(rec)
            if len(held) == 2:
                two_in.set()
            await gate.wait()

    busy = {
        "code": 503,
        "msg": "API request concurrency limit exceeded, please reduce concurrency",
        "data": None,
    }
    async with SimulatedTmapi(concurrency_limit=2, on_request=hold) as sim:
        first = [asyncio.create_task(fetch(sim, "abc", page=p)) for p in (1, 2)]
        await two_in.wait()
        assert sim.log.in_flight(TOKEN) == 2
        r = await fetch(sim, "abc", page=3)
        assert (r.status, r.json) == (503, busy)
        # The limit is per token: another token is not affected.
        assert (await fetch(sim, "abc", page=3, apiToken="other")).status == 200
        gate.set()
        assert [(await t).status for t in first] == [200, 200]
        assert (await fetch(sim, "abc", page=3)).status == 200
        assert sim.log.peak_in_flight(TOKEN) == 3  # two held + the rejected one
        assert sim.log.count_by_outcome()["concurrency_limited"] == 1


async def test_rate_limit_429_without_and_with_retry_after(fetch: Fetch) -> None:
    """Past a token's rate in a one-second window: 429, with Retry-After only when configured."""
    clock = FakeClock()
    async with SimulatedTmapi(rate_limit=3, clock=clock, quota=100) as sim:
        assert [(await fetch(sim, "abc")).status for _ in range(3)] == [200] * 3
        r = await fetch(sim, "abc")
        assert r.status == 429
        assert "Retry-After" not in r.headers
        assert r.json["code"] == 429
        assert r.json["data"] is None
        assert (await fetch(sim, "abc", apiToken="other")).status == 200  # per token
        sim.configure(retry_after=True)
        clock.now += 0.4
        r = await fetch(sim, "abc")
        assert r.status == 429
        assert r.headers["Retry-After"] == "1"
        clock.now += 0.6  # the first three leave the one-second window
        assert [(await fetch(sim, "abc")).status for _ in range(4)] == [200, 200, 200, 429]
        outcomes = sim.log.count_by_outcome()
        assert outcomes["rate_limited"] == 3
        assert outcomes["ok"] == 7
