"""A shop another party took over, seen from this process: the harvest drops it at once
(queued pages never sent, pages in flight unrecorded, no result), a shop finishes once
however its last answers interleave with a journal that suspends, and a worker's
requests wait while its hold on its shops is not fresh. No sockets, no Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from test_harvest import FakeSource, MemoryJournal, run, url

import tmapi_async as tm
from tmapi_async import Harvest, Throttle
from tmapi_async._admission import CappedAdmission
from tmapi_async._redis.worker import OwnershipGate


class RefusingJournal(MemoryJournal):
    """Refuses the pages of ``lost`` from ``from_page`` on, as a Redis journal refuses
    the late commits of a worker that lost the shop."""

    def __init__(self, lost: str, from_page: int) -> None:
        super().__init__({})
        self.lost, self.from_page = lost, from_page

    async def record_page(
        self,
        shop_url: str,
        page: int,
        answer: tm.ShopItemsPage,
        new_items: Sequence[tm.ShopItem],
    ) -> None:
        if shop_url == self.lost and page >= self.from_page:
            raise tm.ShopTakenOver(f"{shop_url} was taken over")
        await super().record_page(shop_url, page, answer, new_items)


async def test_a_shop_whose_last_answers_end_together_finishes_once() -> None:
    """Three last pages answered in one tick, each recorded by a journal that suspends:
    every one sees the shop finished when it resumes, yet it is finished once."""
    source = FakeSource({"a": 80, "b": 20}, concurrency=4)
    journal = MemoryJournal({})
    harvest = Harvest(source, [url("a"), url("b")], journal=journal, max_open_shops=1)
    results = await run(harvest)
    assert sorted(r.shop_url for r in results) == [url("a"), url("b")]
    assert sorted(r.shop_url for r in journal.shops) == [url("a"), url("b")]
    assert harvest.progress.shops_done == 2


async def test_a_refused_page_drops_the_shop_and_the_harvest_goes_on() -> None:
    """The journal refuses page 2 of ``a``: no result for ``a``, none of its pages asked
    after the ones already out, and the other shops finish as usual."""
    source = FakeSource({"a": 400, "b": 45, "c": 30}, concurrency=2)
    journal = RefusingJournal(url("a"), from_page=2)
    results = await run(Harvest(source, [url("a"), url("b"), url("c")], journal=journal))
    assert sorted(r.shop_url for r in results) == [url("b"), url("c")]
    assert all(r.status == "complete" for r in results)
    asked_of_a = [page for name, page in source.asked if name == "a"]
    assert len(asked_of_a) <= 1 + source.concurrency  # page 1, then one window at most
    assert url("a") not in {r.shop_url for r in journal.shops}
    assert {shop for shop, _page, _ids in journal.pages} == {url("a"), url("b"), url("c")}


async def test_abandon_sends_no_queued_page_and_lets_pages_in_flight_end() -> None:
    """Abandoned while one of its pages is held on the wire: that page ends unrecorded,
    queued pages are never sent, and the harvest ends with the other shop."""
    source = FakeSource({"a": 400, "b": 30}, concurrency=3)
    source.hold[("a", 2)] = asyncio.get_running_loop().create_future()
    journal = MemoryJournal({})
    harvest = Harvest(source, [url("a"), url("b")], journal=journal)
    running = asyncio.create_task(run(harvest))
    while ("a", 2) not in source.asked:
        source.asked_event.clear()
        await source.asked_event.wait()
    asked_before = len([1 for name, _ in source.asked if name == "a"])
    harvest.abandon(url("a"))
    source.hold[("a", 2)].set_result(None)
    results = await asyncio.wait_for(running, 30)
    assert [r.shop_url for r in results] == [url("b")]
    assert len([1 for name, _ in source.asked if name == "a"]) == asked_before
    assert (url("a"), 2, [f"a-{i}" for i in range(20, 40)]) not in journal.pages


async def test_the_ownership_gate_holds_requests_until_the_heartbeat_confirms() -> None:
    """Fresh within two heartbeats of the last confirmation; stale after (a freeze, a
    Redis away): an admitted request waits for the next confirmation before it leaves,
    and one cancelled while waiting gives its slot back."""
    now = [100.0]
    gate = OwnershipGate(1.0, clock=lambda: now[0])
    assert not gate.fresh()  # never confirmed: nothing leaves
    gate.confirmed()
    now[0] += 2.0
    assert gate.fresh()
    now[0] += 0.5
    assert not gate.fresh()

    inner = Throttle(rate=1000.0, burst=10, concurrency=4)
    admission = CappedAdmission(inner, 2, gate)
    waiting = asyncio.create_task(admission.acquire())
    await asyncio.sleep(0)  # one turn: admitted by the throttle, now at the gate
    await asyncio.sleep(0)
    assert not waiting.done()
    gate.confirmed()
    ticket = await asyncio.wait_for(waiting, 5)
    admission.release(ticket)

    now[0] += 10.0  # stale again
    cancelled = asyncio.create_task(admission.acquire())
    for _ in range(3):
        await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert inner.in_flight == 0  # the slot it held at the gate came back
