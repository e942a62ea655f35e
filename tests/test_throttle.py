"""The throttle on a virtual clock: window bound, in-flight bound, pauses, the adaptive
limit, fatal stop."""

from __future__ import annotations

import asyncio
import bisect
import itertools

import pytest

from tmapi_async import AuthenticationError, Limits, RequestBudgetExhausted, Throttle
from tmapi_async._adaptive import PROBE_FIRST, START


def peak_in_window(times: list[float], window: float) -> int:
    """The most events in any closed window of ``window`` seconds."""
    times = sorted(times)
    return max(
        (bisect.bisect_right(times, t + window + 1e-9) - i for i, t in enumerate(times)),
        default=0,
    )


async def admit_all(throttle: Throttle, n: int) -> list[float]:
    """Acquire and release ``n`` times from ``n`` tasks; return the admission times."""
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def one() -> None:
        await throttle.acquire()
        times.append(loop.time())
        throttle.release()

    await asyncio.gather(*(one() for _ in range(n)))
    return times


async def round_trips(throttle: Throttle, n: int) -> list[int]:
    """``n`` round trips that each fill every slot and succeed; the limit after each."""
    limits = []
    for _ in range(n):
        tickets = [await throttle.acquire() for _ in range(throttle.limit)]
        for ticket in tickets:
            throttle.release(ticket)
            throttle.succeeded()
        limits.append(throttle.limit)
    return limits


@pytest.mark.parametrize(("rate", "burst"), [(10.0, 1), (50.0, 5), (200.0, 10), (1000.0, 50)])
def test_window_bound_holds_from_the_first_second(run_virtual, rate, burst):
    """In any window of T seconds at most burst + rate*T requests leave, first second included."""
    throttle = Throttle(rate=rate, burst=burst, concurrency=10_000)
    times = run_virtual(admit_all(throttle, int(rate * 3)))
    for window in (0.0, 0.1, 0.5, 1.0, 2.0):
        assert peak_in_window(times, window) <= burst + rate * window + 1e-6
    start = min(times)
    first_second = sum(1 for t in times if t <= start + 1.0)
    assert first_second <= burst + rate  # AsyncLimiter(rate, 1) would let 2*rate through


def test_sustained_rate_is_reached(run_virtual):
    """A long run leaves at the configured rate, not slower."""
    throttle = Throttle(rate=100.0, burst=5, concurrency=10_000)
    times = run_virtual(admit_all(throttle, 1000))
    span = max(times) - min(times)
    assert (1000 - 5) / span == pytest.approx(100.0, rel=0.02)


def test_default_burst_is_a_twentieth_of_the_rate():
    """Default burst is about rate/20 and never below one."""
    assert Limits(rate=10).burst_or_default == 1
    assert Limits(rate=0.5).burst_or_default == 1
    assert Limits(rate=2000).burst_or_default == 100
    assert Throttle(rate=5000, concurrency=1).burst == 250


def test_in_flight_never_exceeds_concurrency(run_virtual):
    """Requests beyond the concurrency wait for a release."""

    async def scenario() -> int:
        throttle = Throttle(rate=1e6, burst=1000, concurrency=3)
        gate = asyncio.Event()
        peak = 0

        async def one() -> None:
            nonlocal peak
            await throttle.acquire()
            peak = max(peak, throttle.in_flight)
            await gate.wait()
            throttle.release()

        tasks = [asyncio.create_task(one()) for _ in range(10)]
        for _ in range(5):
            await asyncio.sleep(0)
        assert throttle.in_flight == 3
        gate.set()
        await asyncio.gather(*tasks)
        assert throttle.in_flight == 0
        return peak

    assert run_virtual(scenario()) == 3


def test_retry_after_pauses_the_whole_client(run_virtual):
    """After pause(s) no request leaves for s seconds, whoever asks."""

    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        throttle = Throttle(rate=1000.0, burst=100, concurrency=100)
        await throttle.acquire()
        throttle.release()
        paused_at = loop.time()
        throttle.pause(2.5)
        times = await admit_all(throttle, 5)
        return [t - paused_at for t in times]

    delays = run_virtual(scenario())
    assert min(delays) >= 2.5
    assert max(delays) < 2.6


def test_a_refusal_sets_the_limit_below_the_depth_it_was_sent_at(run_virtual):
    """Sixteen sent, those sent 11th to 16th refused: the limit becomes 10 whatever the
    order the answers come in, and a late success of the 14th raises nothing."""

    async def scenario() -> None:
        throttle = Throttle(rate=1e6, burst=1000, concurrency=16)
        await round_trips(throttle, 3)  # slow start: the limit grows while it is in use
        assert throttle.limit == 16
        tickets = [await throttle.acquire() for _ in range(16)]
        for ticket in (tickets[15], tickets[12], tickets[10]):
            throttle.release(ticket)
            throttle.congested(ticket)
        assert throttle.limit == 10
        throttle.release(tickets[13])
        throttle.succeeded()
        assert throttle.limit == 10
        for ticket in tickets[:10]:
            throttle.release(ticket)
            throttle.succeeded()
        assert throttle.limit == 10

    run_virtual(scenario())


def test_the_limit_starts_low_and_grows_while_in_use(run_virtual):
    """A concurrency of 40 starts at START in flight (a guess too high must not send
    40 at once) and grows at most twofold a round trip (only successes sent at half the limit or
    more count), to 40."""

    async def scenario() -> list[int]:
        throttle = Throttle(rate=1e6, burst=1000, concurrency=40)
        return [throttle.limit, *await round_trips(throttle, 6)]

    limits = run_virtual(scenario())
    assert limits[0] == START
    grown = limits[: limits.index(40) + 1]
    assert all(old < new <= 2 * old for old, new in itertools.pairwise(grown))
    assert len(grown) <= 6
    assert limits[-1] == 40


def test_limit_probes_above_the_refusal_level_rarely(run_virtual):
    """Held at 8 after a refusal at depth 9: the 9th slot opens after PROBE_FIRST
    successes, and after a refused probe only after twice as many."""

    async def scenario() -> list[int]:
        throttle = Throttle(rate=1e6, burst=1000, concurrency=16)
        await round_trips(throttle, 3)
        tickets = [await throttle.acquire() for _ in range(9)]
        throttle.release(tickets[8])
        throttle.congested(tickets[8])
        for ticket in tickets[:8]:
            throttle.release(ticket)
        gaps = []
        for _ in range(2):
            successes = 0
            while throttle.limit == 8:
                throttle.release(await throttle.acquire())
                throttle.succeeded()
                successes += 1
            gaps.append(successes)
            probes = [await throttle.acquire() for _ in range(9)]  # 9 fit now
            for ticket in probes[:8]:
                throttle.release(ticket)
            throttle.release(probes[8])
            throttle.congested(probes[8])  # the probe at depth 9 is refused
            assert throttle.limit == 8
        return gaps

    assert run_virtual(scenario()) == [PROBE_FIRST, 2 * PROBE_FIRST]


def test_reduced_limit_bounds_in_flight(run_virtual):
    """After a refusal at depth 5, requests beyond 4 in flight wait."""

    async def scenario() -> int:
        throttle = Throttle(rate=1e6, burst=1000, concurrency=8)
        tickets = [await throttle.acquire() for _ in range(5)]
        throttle.release(tickets[4])
        throttle.congested(tickets[4])
        for ticket in tickets[:4]:
            throttle.release(ticket)
        gate = asyncio.Event()
        peak = 0

        async def one() -> None:
            nonlocal peak
            await throttle.acquire()
            peak = max(peak, throttle.in_flight)
            await gate.wait()
            throttle.release()

        tasks = [asyncio.create_task(one()) for _ in range(8)]
        for _ in range(5):
            await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(*tasks)
        return peak

    assert run_virtual(scenario()) == 4


def test_fatal_error_fails_every_waiter_at_once(run_virtual):
    """fail() makes tasks waiting for a slot, a token or a pause raise the same error now."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        throttle = Throttle(rate=1.0, burst=1, concurrency=2)
        await throttle.acquire()  # holds a slot; the bucket is now empty
        token_waiter = asyncio.create_task(throttle.acquire())  # waits ~1 s for a token
        slot_waiter = asyncio.create_task(throttle.acquire())  # waits for a slot
        for _ in range(5):
            await asyncio.sleep(0)
        assert not token_waiter.done()
        assert not slot_waiter.done()
        started = loop.time()
        error = AuthenticationError("Token is not authorized or has expired", code=401)
        throttle.fail(error)
        results = await asyncio.gather(token_waiter, slot_waiter, return_exceptions=True)
        assert results == [error, error]
        assert loop.time() - started < 0.001  # at once, not after the ~1 s token wait
        with pytest.raises(AuthenticationError):
            await throttle.acquire()
        assert throttle.sent == 1

    run_virtual(scenario())


def test_fatal_error_interrupts_a_backoff(run_virtual):
    """A backoff awaited through interruptible() ends with the fatal error."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        throttle = Throttle(rate=10.0, concurrency=2)
        backoff = asyncio.create_task(throttle.interruptible(asyncio.sleep(30)))
        await asyncio.sleep(0)
        started = loop.time()
        throttle.fail(AuthenticationError("expired", code=401))
        with pytest.raises(AuthenticationError):
            await backoff
        assert loop.time() - started < 0.001

    run_virtual(scenario())


def test_outside_cancel_is_not_turned_into_the_fatal_error(run_virtual):
    """Cancelling a waiting task from outside still raises CancelledError."""

    async def scenario() -> None:
        throttle = Throttle(rate=1.0, burst=1, concurrency=5)
        await throttle.acquire()
        waiter = asyncio.create_task(throttle.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert throttle.in_flight == 1  # the cancelled waiter gave its slot back

    run_virtual(scenario())


def test_budget_stops_at_max_requests(run_virtual):
    """The request after max_requests raises RequestBudgetExhausted, and so does every later one."""

    async def scenario() -> None:
        throttle = Throttle(rate=1e6, burst=1000, concurrency=10, max_requests=3)
        for _ in range(3):
            await throttle.acquire()
            throttle.release()
        with pytest.raises(RequestBudgetExhausted):
            await throttle.acquire()
        with pytest.raises(RequestBudgetExhausted):
            await throttle.acquire()
        assert throttle.sent == 3
        assert throttle.in_flight == 0

    run_virtual(scenario())


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"rate": 0, "concurrency": 1}, "rate"),
        ({"rate": -1, "concurrency": 1}, "rate"),
        ({"rate": float("inf"), "concurrency": 1}, "rate"),
        ({"rate": 1, "burst": 0, "concurrency": 1}, "burst"),
        ({"rate": 1, "concurrency": 0}, "concurrency"),
        ({"rate": 1, "concurrency": 1, "max_requests": -1}, "max_requests"),
    ],
)
def test_bad_settings_are_refused(kwargs, named):
    """Nonsense rates, bursts, concurrencies and budgets raise ValueError naming the setting."""
    with pytest.raises(ValueError, match=named):
        Throttle(**kwargs)


def test_bucket_keeps_room_for_send_jitter(run_virtual):
    """At 1000/s with burst 50, 20 ms of rate (20) is kept back: 30 leave at once, so
    requests sent up to 20 ms late still fit burst + rate*T where the server counts."""

    async def scenario() -> list[float]:
        throttle = Throttle(rate=1000.0, burst=50, concurrency=10_000)
        return await admit_all(throttle, 200)

    times = run_virtual(scenario())
    start = min(times)
    assert sum(1 for t in times if t == start) == 30
    late = [t + 0.02 if i % 2 else t for i, t in enumerate(sorted(times))]  # half sent late
    for window in (0.1, 0.5, 1.0):
        assert peak_in_window(late, window) <= 50 + 1000 * window + 1e-6


def test_a_freed_slot_goes_to_the_oldest_waiter_not_to_a_newcomer(run_virtual):
    """With more tasks than slots, each release hands its slot to the oldest waiter; a
    task arriving before that waiter has run queues behind the others."""

    async def scenario() -> None:
        throttle = Throttle(rate=1e6, burst=1000, concurrency=1)
        order: list[str] = []

        async def request(name: str) -> None:
            await throttle.acquire()
            order.append(name)
            throttle.release()

        await throttle.acquire()
        waiting = asyncio.create_task(request("b"))
        await asyncio.sleep(0)  # b waits for the slot
        throttle.release()  # handed to b, which has not run yet: nobody else waits
        newcomer = asyncio.create_task(request("d"))
        await asyncio.gather(waiting, newcomer)
        assert order == ["b", "d"]
        assert throttle.in_flight == 0

    run_virtual(scenario())


def test_a_waiter_cancelled_before_its_turn_holds_no_one_up(run_virtual):
    """A request cancelled while waiting leaves the queue: once the slot is free, the
    next request is admitted at once, not queued behind it."""

    async def scenario() -> None:
        throttle = Throttle(rate=1e6, burst=1000, concurrency=1)
        await throttle.acquire()
        gone = asyncio.create_task(throttle.acquire())
        await asyncio.sleep(0)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        throttle.release()
        await asyncio.wait_for(throttle.acquire(), timeout=1.0)  # virtual clock: no delay
        assert throttle.in_flight == 1

    run_virtual(scenario())
