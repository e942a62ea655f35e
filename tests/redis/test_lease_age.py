"""No request leaves on a lease older than its life: an admission whose process was
paused past the lease before the request left is given back and asked for again."""

from __future__ import annotations

import time

from tmapi_async._redis.throttle import RedisThrottle

TOKEN = "tok-lease-age"


async def test_an_admission_older_than_its_lease_is_given_back_and_asked_again(
    redis_url: str,
) -> None:
    """The process 'pauses' right after Redis grants the admission (its clock jumps a
    lease ahead): the ticket is given back, a new one is asked for and returned."""
    throttle = RedisThrottle(redis_url, TOKEN, rate=100.0, burst=10, concurrency=4)
    await throttle.start()
    leases = throttle._leases
    take = leases.take
    paused: list[int] = []

    def take_then_pause(ticket: int, asked: float) -> None:
        take(ticket, asked)
        if not paused:
            paused.append(ticket)
            leases.clock = lambda: time.monotonic() + 2 * leases.lease  # type: ignore[method-assign]

    leases.take = take_then_pause  # type: ignore[method-assign]
    try:
        ticket = await throttle.acquire()
        assert paused
        assert ticket != paused[0]
        assert throttle.sent == 1  # the stale admission is not counted as sent
        assert leases.live == {ticket}
        assert await throttle._live_conn().client.zrange(throttle.keys.leases, 0, -1) == [
            leases.id(ticket).encode()
        ]  # the stale lease went back with the new admission
        throttle.release(ticket)
    finally:
        await throttle.aclose()


async def test_a_fresh_admission_is_returned_at_once(redis_url: str) -> None:
    """Without a pause, the first ticket granted is the one returned."""
    throttle = RedisThrottle(redis_url, TOKEN, rate=100.0, burst=10, concurrency=4)
    await throttle.start()
    try:
        first = await throttle.acquire()
        second = await throttle.acquire()
        assert second == first + 1
        assert throttle.sent == 2
    finally:
        await throttle.aclose()
