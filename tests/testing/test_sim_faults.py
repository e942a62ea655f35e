"""Seeded faults: each kind produced, reproducible per seed, independent of concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec
import pytest

from tmapi_async.testing import (
    DEFAULT_FAULT_CODES,
    ERROR_MESSAGES,
    FaultKind,
    RequestRecord,
    SimulatedTmapi,
    SimulatorConfig,
)

Fetch = Callable[..., Awaitable[Any]]  # the ``fetch`` fixture of conftest.py

ALWAYS = {"fault_rate": 1.0}


@pytest.mark.parametrize("code", DEFAULT_FAULT_CODES)
async def test_status_fault_for_each_code(fetch: Fetch, code: int) -> None:
    """A status fault answers the code's HTTP status with its documented JSON body, and is logged as
    such."""
    async with SimulatedTmapi(
        **ALWAYS, fault_kinds=(FaultKind.STATUS,), fault_codes=(code,)
    ) as sim:
        r = await fetch(sim, "abc")
        assert r.status == code
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.json == {"code": code, "msg": ERROR_MESSAGES[code], "data": None}
        (rec,) = sim.log.records
        assert (rec.outcome, rec.status, rec.code) == ("fault_status", code, code)


@pytest.mark.parametrize("code", DEFAULT_FAULT_CODES)
async def test_envelope_fault_for_each_code(fetch: Fetch, code: int) -> None:
    """An envelope fault answers 200 with the code in the body, and is logged as such."""
    async with SimulatedTmapi(**ALWAYS, fault_kinds=("envelope",), fault_codes=(code,)) as sim:
        r = await fetch(sim, "abc")
        assert r.status == 200
        assert r.json == {"code": code, "msg": ERROR_MESSAGES[code], "data": None}
        assert sim.log.records[0].outcome == "fault_envelope"


async def test_truncated_json(fetch: Fetch) -> None:
    """A truncated answer is a prefix of the real page that does not decode, cut at a different
    place each time."""
    async with SimulatedTmapi() as sim:
        whole = (await fetch(sim, "abc", page=2)).body
        sim.configure(**ALWAYS, fault_kinds=(FaultKind.TRUNCATED,))
        cuts = set()
        for _ in range(5):  # each attempt cuts at its own place
            r = await fetch(sim, "abc", page=2)
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("application/json")
            assert 0 < len(r.body) < len(whole)
            assert whole.startswith(r.body)
            with pytest.raises(msgspec.DecodeError):
                msgspec.json.decode(r.body)
            cuts.add(len(r.body))
        assert len(cuts) > 1


@pytest.mark.parametrize(("kind", "status"), [("html502", 502), ("html200", 200)])
async def test_html_pages(fetch: Fetch, kind: str, status: int) -> None:
    """An HTML fault answers an HTML page with its status, as a proxy in front of the API would."""
    async with SimulatedTmapi(**ALWAYS, fault_kinds=(kind,)) as sim:
        r = await fetch(sim, "abc")
        assert r.status == status
        assert r.headers["Content-Type"].startswith("text/html")
        assert r.body.lstrip().lower().startswith((b"<html", b"<!doctype html"))
        (rec,) = sim.log.records
        assert (rec.outcome, rec.status, rec.code) == (f"fault_{kind}", status, None)


async def test_connection_reset_sends_no_response() -> None:
    """A reset fault closes the connection without a byte of answer, and is logged."""
    async with SimulatedTmapi(**ALWAYS, fault_kinds=("reset",)) as sim:
        # A raw HTTP/1.1 request, so no client library retries behind our back.
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        query = "apiToken=t&shop_url=https%3A%2F%2Fabc.1688.com"
        writer.write(f"GET /1688/shop/items/v2?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        try:
            data = await reader.read()
        except ConnectionResetError:
            data = b""
        writer.close()
        assert data == b""
        (rec,) = sim.log.records
        assert (rec.outcome, rec.status, rec.code) == ("fault_reset", 0, None)
        assert rec.departed is not None


async def test_connection_reset_seen_by_aiohttp() -> None:
    """aiohttp sees a reset as a connection error; each of its silent retries is logged and
    billed."""
    async with SimulatedTmapi(**ALWAYS, fault_kinds=("reset",)) as sim:
        async with aiohttp.ClientSession() as session:
            params = {"apiToken": "t", "shop_url": sim.shop_url("abc")}
            with pytest.raises(aiohttp.ClientConnectionError):
                async with session.get(sim.endpoint, params=params) as resp:
                    await resp.read()
        # aiohttp silently retries an idempotent request once after a reset: each is billed.
        assert {r.outcome for r in sim.log.records} == {"fault_reset"}


async def test_hang_outlasts_the_client_then_close_is_prompt() -> None:
    """A hang holds the request past the client's patience; closing the simulator ends it at
    once."""
    arrived = asyncio.Event()

    async def note(_rec: RequestRecord) -> None:
        arrived.set()

    sim = SimulatedTmapi(**ALWAYS, fault_kinds=("hang",), hang_seconds=60, on_request=note)
    await sim.start()
    try:
        async with aiohttp.ClientSession() as session:
            params = {"apiToken": "t", "shop_url": sim.shop_url("abc")}

            async def get() -> None:
                async with session.get(sim.endpoint, params=params) as resp:
                    await resp.read()

            task = asyncio.create_task(get())
            await arrived.wait()  # the request is in the server, which now holds it
            assert sim.log.in_flight() == 1
            with pytest.raises(asyncio.TimeoutError):  # as a client timeout would
                await asyncio.wait_for(asyncio.shield(task), 0.2)
            assert not task.done()
            task.cancel()
        assert sim.log.in_flight() == 1  # the server is still "working" on it
    finally:
        started = time.monotonic()
        await sim.close()
    assert time.monotonic() - started < 5  # closing wakes the hang instead of waiting 60 s
    assert sim.log.in_flight() == 0
    assert sim.log.records[0].outcome == "fault_hang"


async def test_short_hang_answers_the_real_page(fetch: Fetch) -> None:
    """A hang shorter than the client's patience answers the real page, late."""
    async with SimulatedTmapi() as sim:
        whole = (await fetch(sim, "abc")).body
        sim.configure(**ALWAYS, fault_kinds=("hang",), hang_seconds=0.05)
        started = time.monotonic()
        r = await fetch(sim, "abc")
        assert time.monotonic() - started >= 0.05
        assert (r.status, r.body) == (200, whole)
        assert sim.log.records[-1].outcome == "fault_hang"


# No RESET here: aiohttp retries a reset request itself, which would add attempts.
MIXED = SimulatorConfig(
    fault_rate=0.3,
    fault_kinds=("status", "envelope", "truncated", "html502", "html200"),
    shop_sizes={"s1": 200, "s2": 200, "s3": 200},
)
# Every (shop, page) asked twice: the second ask is attempt 2 of the same key.
REQUESTS = [(shop, page) for shop in ("s1", "s2", "s3") for page in range(1, 11)] * 2


async def _outcomes(seed: int, concurrent: bool = False, token: str = "t") -> dict[Any, str]:
    """{(shop, page, attempt): outcome} for REQUESTS, on a fresh simulator."""
    async with SimulatedTmapi(MIXED, seed=seed) as sim:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

            async def one(shop: str, page: int) -> None:
                params = {"apiToken": token, "shop_url": sim.shop_url(shop), "page": str(page)}
                async with session.get(sim.endpoint, params=params) as resp:
                    await resp.read()

            if concurrent:
                await asyncio.gather(*(one(s, p) for s, p in REQUESTS))
            else:
                for s, p in REQUESTS:
                    await one(s, p)
        assert len(sim.log) == len(REQUESTS)
        return {(r.shop, r.page, r.attempt): r.outcome for r in sim.log.records}


async def test_same_seed_same_faults_whatever_the_concurrency_or_token() -> None:
    """One seed draws the same faults per shop, page and attempt, whatever the concurrency or
    token."""
    first = await _outcomes(7)
    assert first == await _outcomes(7)
    assert first == await _outcomes(7, concurrent=True)
    assert first == await _outcomes(7, token="someone-else")
    assert first != await _outcomes(8)
    faulted = [k for k, v in first.items() if v != "ok"]
    assert 0.15 * len(first) < len(faulted) < 0.45 * len(first)
    # A retry is its own draw: most faulted first attempts succeed on the second.
    retried = [first[(s, p, 2)] for (s, p, a) in faulted if a == 1]
    assert retried.count("ok") > len(retried) / 2


async def test_every_kind_occurs_in_a_mix(fetch: Fetch) -> None:
    """With a mix of fault kinds, every kind occurs, and some requests succeed."""
    kinds = (*MIXED.fault_kinds, FaultKind.RESET)
    async with SimulatedTmapi(MIXED, seed=1, fault_rate=0.6, fault_kinds=kinds) as sim:
        for page in range(1, 120):
            with contextlib.suppress(aiohttp.ClientConnectionError):
                await fetch(sim, "s1", page=page)
        outcomes = sim.log.count_by_outcome()
    assert {f"fault_{k.value}" for k in kinds} <= set(outcomes)
    assert outcomes["ok"] > 0


async def test_latency_is_applied(fetch: Fetch) -> None:
    """The configured latency delays the answer by at least its lower bound."""
    async with SimulatedTmapi(latency_ms=(40, 60)) as sim:
        started = time.monotonic()
        await fetch(sim, "abc")
        assert time.monotonic() - started >= 0.04
        (rec,) = sim.log.records
        assert rec.departed is not None
        assert rec.departed - rec.arrived >= 0.04
