"""``Waiters``: the one park-and-wake helper of the scheduler, the throttle and the pool."""

from __future__ import annotations

import asyncio

import pytest

from tmapi_async._waiters import Waiters


async def _parked(waiters: Waiters, count: int, woke: list[int]) -> list[asyncio.Task[None]]:
    async def one(i: int) -> None:
        await waiters.wait()
        woke.append(i)

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    await asyncio.sleep(0)  # one loop turn: each task parks in its first step
    assert len(waiters) == count
    return tasks


async def test_wake_lets_the_oldest_go_first_and_says_how_many() -> None:
    """``wake(n)`` wakes the first ``n`` parked, in arrival order, and returns ``n``."""
    waiters, woke = Waiters(), []
    tasks = await _parked(waiters, 4, woke)
    assert waiters.wake(2) == 2
    await asyncio.gather(*tasks[:2])
    assert woke == [0, 1]
    assert len(waiters) == 2
    waiters.wake_all()
    await asyncio.gather(*tasks)
    assert woke == [0, 1, 2, 3]
    assert waiters.wake(1) == 0  # nobody left


async def test_a_cancelled_waiter_leaves_the_queue_and_is_not_counted() -> None:
    """A waiter cancelled while parked is gone: a wake-up goes to the next one."""
    waiters, woke = Waiters(), []
    tasks = await _parked(waiters, 2, woke)
    tasks[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    assert len(waiters) == 1
    assert waiters.wake(1) == 1
    await tasks[1]
    assert woke == [1]


async def test_a_woken_waiter_that_leaves_passes_its_wake_up_on() -> None:
    """Woken and cancelled in the same loop turn, a waiter hands its wake-up on."""
    waiters, woke = Waiters(), []
    tasks = await _parked(waiters, 2, woke)
    assert waiters.wake(1) == 1
    tasks[0].cancel()  # before it ran: it was woken but will not use it
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    await asyncio.wait_for(tasks[1], timeout=30)
    assert woke == [1]


async def test_a_wake_up_nobody_takes_is_reported_as_unused() -> None:
    """Woken and leaving with nobody behind it, a waiter calls ``unused`` (a throttle
    takes back the slot it handed out); with a taker, ``unused`` is not called."""
    unused: list[None] = []
    waiters, woke = Waiters(unused=lambda: unused.append(None)), []
    tasks = await _parked(waiters, 2, woke)
    waiters.wake(1)
    tasks[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    await tasks[1]
    assert unused == []  # the second waiter took it
    [last] = await _parked(waiters, 1, woke)
    waiters.wake(1)
    last.cancel()
    with pytest.raises(asyncio.CancelledError):
        await last
    assert unused == [None]
