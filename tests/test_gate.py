"""The per-harvest gate of a worker, without Redis: pause and backpressure are one gate."""

from __future__ import annotations

import asyncio

import pytest

from tmapi_async import FatalError, Fetched, HarvestStopped, Listing, ShopQuery
from tmapi_async._redis.gate import GatedSource, HarvestGate, decide


def test_decide_from_state_and_backlog() -> None:
    """Open until the backlog reaches its bound; paused wins; anything else is gone."""
    assert decide("open", 0, 10) == "open"
    assert decide("open", 9, 10) == "open"
    assert decide("open", 10, 10) == "backlog"
    assert decide("open", 10**6, None) == "open"  # no bound
    assert decide("paused", 0, 10) == "paused"
    assert decide("paused", 50, 10) == "paused"
    for state in ("cancelled", "failed", "finished", None):
        assert decide(state, 0, 10) == "gone"


class _Client:
    """A page source whose answers the test releases one by one."""

    def __init__(self) -> None:
        self.sent = 0
        self.stopped: FatalError | None = None
        self.answer = asyncio.Event()

    concurrency = 4
    retries = 0

    @property
    def requests(self) -> int:
        return self.sent

    @property
    def fatal(self) -> FatalError | None:
        return self.stopped

    def stop(self, error: FatalError) -> None:
        self.stopped = error

    async def fetch_counted(self, query: ShopQuery, page: int) -> Fetched:
        self.sent += 1
        await self.answer.wait()
        return Fetched(answer=None, error=None, requests=1)


async def test_a_shut_gate_holds_new_requests_and_lets_those_sent_finish() -> None:
    """A shut gate holds new requests and lets those in flight finish; it opens only when every
    reason is gone."""
    client = _Client()
    gate = HarvestGate()
    source = GatedSource(client, gate)
    query = ShopQuery("https://a.1688.com/", Listing())
    sent = asyncio.create_task(source.fetch_counted(query, 1))
    await asyncio.sleep(0)  # let it pass the gate: it is in flight
    assert (client.sent, source.in_flight) == (1, 1)
    assert gate.set("paused")
    held = asyncio.create_task(source.fetch_counted(query, 2))
    await asyncio.sleep(0)
    assert client.sent == 1  # waits at the gate, not sent
    client.answer.set()
    await sent  # the one in flight finishes
    assert source.in_flight == 0
    await asyncio.sleep(0)
    assert client.sent == 1
    assert not held.done()
    assert gate.set("backlog")  # another reason, the same gate
    assert not gate.set("backlog")
    assert gate.set("open")
    await held
    assert client.sent == 2


async def test_closing_one_harvest_spares_the_shared_client_once_detached() -> None:
    """Stopping a detached harvest ends its waiters but not the worker's shared client; an attached
    one stops it."""
    client = _Client()
    gate = HarvestGate()
    source = GatedSource(client, gate)
    gate.set("paused")
    waiting = asyncio.create_task(gate.wait())
    await asyncio.sleep(0)
    source.detach()
    source.stop(HarvestStopped("harvest dropped: cancelled"))
    with pytest.raises(HarvestStopped, match="cancelled"):
        await waiting
    assert isinstance(source.fatal, HarvestStopped)
    assert client.stopped is None  # the worker serves its other harvests on

    other = GatedSource(client, HarvestGate())
    other.stop(HarvestStopped("worker stopping"))  # not detached: the whole worker stops
    assert isinstance(client.stopped, HarvestStopped)
