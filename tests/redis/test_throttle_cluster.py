"""The shared throttle against a real redis-server: several clients of one token in this
process behave as one, a dead holder's slots come back, a fatal answer stops them all,
the token is never written to Redis, and an unreachable Redis is an error, not a
fall-back."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import redis.asyncio as aioredis

import tmapi_async as tm
from tmapi_async import RedisUnavailableError
from tmapi_async._adaptive import PROBE_FIRST
from tmapi_async._redis.connection import open_connection, redact_url
from tmapi_async._redis.throttle import RedisThrottle
from tmapi_async._redis.token import TOKENS_KEY, TokenKeys
from tmapi_async._secret import fingerprint
from tmapi_async.testing import SimulatedTmapi

TOKEN = "tok-7Hq2SECRETvalue-9f3"  # distinctive: searched for in every byte Redis holds
WAIT = 20.0  # seconds: a generous bound on a success path (CI is 2 busy cores)


def shop(name: str) -> str:
    return f"https://{name}.1688.com/"


async def redis_now(redis_url: str) -> float:
    """Redis's clock, in µs (the clock the leases are scored on)."""
    async with aioredis.Redis.from_url(redis_url) as r:
        sec, usec = await r.time()
        return sec * 1e6 + usec


async def test_clients_of_one_token_share_rate_burst_and_in_flight(redis_url: str) -> None:
    """Three clients of one token through one Redis keep together to its rate, burst and in-flight
    limit: the simulator refuses nothing."""
    # The simulator refuses (503/429) anything over the limits: none may be refused.
    async with SimulatedTmapi(latency_ms=(5, 25), concurrency_limit=3, rate_limit=42) as sim:
        clients = [
            tm.Client(TOKEN, base_url=sim.url, redis_url=redis_url, rate=40, concurrency=3)
            for _ in range(3)
        ]

        async def crawl(client: tm.Client, names: list[str]) -> None:
            async with client:
                for name in names:
                    result = await client.fetch_shop(shop(name))
                    assert result.status == "complete"

        await asyncio.wait_for(
            asyncio.gather(
                *(crawl(c, [f"c{i}s{j}" for j in range(3)]) for i, c in enumerate(clients))
            ),
            WAIT * 2,
        )
        assert len(sim.log) == 3 * 3 * 5  # 100 items a shop, 20 a page
        assert sim.log.peak_in_window(1.0, TOKEN) <= 40 + 2  # rate + burst (40/20)
        assert sim.log.peak_in_flight(TOKEN) <= 3
        assert set(sim.log.count_by_outcome()) == {"ok"}
        assert sum(c.requests for c in clients) == len(sim.log)


async def test_the_slots_of_a_dead_holder_free_themselves(redis_url: str) -> None:
    """Slots held by a process killed while holding them come back once their leases expire, by
    Redis's clock."""
    keys = TokenKeys(fingerprint(TOKEN))
    throttle = RedisThrottle(redis_url, TOKEN, rate=100, concurrency=2)
    await throttle.start()
    try:
        # A process killed with -9 while it held both slots: leases it will never renew.
        expiry = await redis_now(redis_url) + 1.5e6
        async with aioredis.Redis.from_url(redis_url) as r:
            await r.zadd(keys.leases, {"dead:1": expiry, "dead:2": expiry})
        ticket = await asyncio.wait_for(throttle.acquire(), WAIT)
        assert await redis_now(redis_url) >= expiry  # admitted only once they expired
        throttle.release(ticket)
    finally:
        await throttle.aclose()


async def test_the_heartbeat_keeps_a_live_request_s_lease(redis_url: str) -> None:
    """A request still in flight keeps its lease past the first expiry: the heartbeat renews it."""
    keys = TokenKeys(fingerprint(TOKEN))
    throttle = RedisThrottle(redis_url, TOKEN, lease=1.0, heartbeat=0.2)
    await throttle.start()
    try:
        ticket = await throttle.acquire()
        async with aioredis.Redis.from_url(redis_url) as r:
            first = await r.zscore(keys.leases, f"{throttle._leases.owner}:{ticket}")
            assert first is not None
            # Past the first expiry the lease is still there, renewed.
            for _ in range(int(WAIT / 0.05)):  # polling Redis's clock, with a bound
                if await redis_now(redis_url) > first + 0.5e6:
                    break
                await asyncio.sleep(0.05)
            later = await r.zscore(keys.leases, f"{throttle._leases.owner}:{ticket}")
            assert later is not None
            assert later > first
        throttle.release(ticket)
    finally:
        await throttle.aclose()


async def test_close_gives_back_every_lease(redis_url: str) -> None:
    """Closing the throttle removes the leases of requests never released from Redis."""
    keys = TokenKeys(fingerprint(TOKEN))
    throttle = RedisThrottle(redis_url, TOKEN, rate=100, concurrency=4)
    await throttle.start()
    for _ in range(3):
        await throttle.acquire()  # never released: the request is abandoned
    assert throttle.in_flight == 3
    await throttle.aclose()
    async with aioredis.Redis.from_url(redis_url) as r:
        assert await r.zcard(keys.leases) == 0


async def test_closing_during_an_ask_gives_back_what_redis_granted(redis_url: str) -> None:
    """Closed while its ask is on the way to Redis, the throttle lets the ask finish and
    gives its grant back: the waiting acquire is cancelled, no request is counted, and
    no lease is left in Redis although Redis admitted one."""
    keys = TokenKeys(fingerprint(TOKEN))
    throttle = RedisThrottle(redis_url, TOKEN, rate=100, concurrency=4)
    await throttle.start()
    admit = throttle._admit
    closing: list[asyncio.Task[None]] = []

    async def close_during(wanted: int) -> Any:
        # The close runs as soon as this ask waits for Redis, before the reply is read.
        closing.append(asyncio.create_task(throttle.aclose()))
        return await admit(wanted)

    throttle._admit = close_during  # type: ignore[method-assign]
    waiting = asyncio.create_task(throttle.acquire())
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, WAIT)
    await asyncio.wait_for(closing[0], WAIT)
    assert throttle.sent == 0
    async with aioredis.Redis.from_url(redis_url) as r:
        assert await r.hget(keys.state, "seq") == b"1"  # Redis did admit it
        assert await r.zcard(keys.leases) == 0


async def test_a_fatal_answer_in_one_process_stops_the_others(redis_url: str) -> None:
    """A fatal answer in one process ends another's backoff and refuses its next request, and that
    of a process started later."""
    a = RedisThrottle(redis_url, TOKEN, heartbeat=0.2)
    b = RedisThrottle(redis_url, TOKEN, heartbeat=0.2)
    await a.start()
    await b.start()
    try:
        backoff = asyncio.create_task(b.interruptible(asyncio.sleep(3600)))
        a.fail(tm.AuthenticationError("Token is not authorized", code=401, status=401))
        with pytest.raises(tm.AuthenticationError, match="not authorized"):
            await asyncio.wait_for(backoff, WAIT)  # ends at b's next heartbeat
        assert isinstance(b.fatal, tm.AuthenticationError)
        assert b.fatal.code == 401
        with pytest.raises(tm.AuthenticationError):
            await b.acquire()
        late = RedisThrottle(redis_url, TOKEN)  # a process started afterwards
        await late.start()
        try:
            with pytest.raises(tm.AuthenticationError):
                await late.acquire()
        finally:
            await late.aclose()
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_spent_budget_stops_only_its_own_process(redis_url: str) -> None:
    """A --max-requests budget is per process: when one runs out, another process of the token goes
    on."""
    a = RedisThrottle(redis_url, TOKEN, max_requests=1)
    b = RedisThrottle(redis_url, TOKEN)
    await a.start()
    await b.start()
    try:
        a.release(await a.acquire())
        with pytest.raises(tm.RequestBudgetExhausted):
            await a.acquire()
        b.release(await asyncio.wait_for(b.acquire(), WAIT))
        assert b.fatal is None
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_client_whose_token_was_refused_elsewhere_sends_nothing(redis_url: str) -> None:
    """A token refused through one client is refused to a second client of that Redis without a
    request of its own."""
    async with SimulatedTmapi(tokens=["another-token"]) as sim:
        first = tm.Client(TOKEN, base_url=sim.url, redis_url=redis_url)
        second = tm.Client(TOKEN, base_url=sim.url, redis_url=redis_url)
        async with first, second:
            with pytest.raises(tm.AuthenticationError):
                await first.fetch_shop(shop("xldjjg"))
            with pytest.raises(tm.AuthenticationError):
                await second.fetch_shop(shop("xldjjg"))
        # Only the first client's: its key sent as the header, then as the query.
        assert len(sim.log) == 2


async def test_the_token_is_never_written_to_redis(redis_url: str) -> None:
    """No key, value or member in Redis holds the token: tokens are known by their fingerprint
    only."""
    async with SimulatedTmapi(tokens=[TOKEN], rate_limit=5, retry_after=True) as sim:
        async with tm.Client(TOKEN, base_url=sim.url, redis_url=redis_url, rate=50) as client:
            await client.fetch_shop(shop("xldjjg"))  # 429s with Retry-After: a pause, a cut
        async with tm.Client(TOKEN + "x", base_url=sim.url, redis_url=redis_url) as refused:
            with pytest.raises(tm.AuthenticationError):
                await refused.fetch_shop(shop("xldjjg"))
    async with aioredis.Redis.from_url(redis_url) as r:
        keys = [key async for key in r.scan_iter()]
        assert keys  # the throttle did write its state
        assert TokenKeys(fingerprint(TOKEN + "x")).fatal.encode() in keys
        for key in keys:
            blobs = [key, await r.dump(key) or b""]
            kind = (await r.type(key)).decode()
            if kind == "hash":
                blobs += [b for kv in (await r.hgetall(key)).items() for b in kv]
            elif kind == "zset":
                blobs += await r.zrange(key, 0, -1)
            elif kind == "set":
                blobs += list(await r.smembers(key))
            elif kind == "string":
                blobs.append(await r.get(key) or b"")
            for blob in blobs:
                assert TOKEN.encode() not in blob, key
                assert b"SECRET" not in blob, key
        assert await r.smembers(TOKENS_KEY) == {
            fingerprint(TOKEN).encode(),
            fingerprint(TOKEN + "x").encode(),
        }


async def test_limits_not_set_keep_those_set_in_redis(redis_url: str) -> None:
    """A limit not set leaves the token's limit in Redis as it is; a limit set replaces
    it, even one equal to its default (there is no "left at the default" guess)."""
    async with SimulatedTmapi() as sim:
        async with tm.Client(TOKEN, base_url=sim.url, redis_url=redis_url, rate=60, concurrency=4):
            pass
        async with tm.Client(TOKEN, base_url=sim.url, redis_url=redis_url) as plain:
            throttle = plain.throttle
            assert (throttle.rate, throttle.burst, throttle.concurrency) == (60, 3, 4)
        async with tm.Client(TOKEN, base_url=sim.url, redis_url=redis_url, rate=30) as later:
            throttle = later.throttle
            assert (throttle.rate, throttle.burst, throttle.concurrency) == (30, 2, 4)
        defaults = tm.Limits(rate=10.0, concurrency=8)
        async with tm.Client(TOKEN, base_url=sim.url, redis_url=redis_url, limits=defaults):
            pass
        async with tm.Client(TOKEN, base_url=sim.url, redis_url=redis_url) as plain:
            throttle = plain.throttle
            assert (throttle.rate, throttle.burst, throttle.concurrency) == (10, 1, 8)


def test_the_url_comes_from_the_environment(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TMAPI_REDIS_URL gives the client a Redis throttle; a given throttle beside a Redis URL, or a
    bad limit, is refused."""
    monkeypatch.setenv("TMAPI_REDIS_URL", redis_url)
    assert isinstance(tm.Client(TOKEN).throttle, RedisThrottle)
    with pytest.raises(tm.InvalidParameterError, match="not both"):
        tm.Client(TOKEN, redis_url=redis_url, throttle=tm.Throttle(rate=1, concurrency=1))
    with pytest.raises(tm.InvalidParameterError, match="concurrency"):
        tm.Client(TOKEN, concurrency=0)


@pytest.fixture
def closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once the probe is closed


async def test_unreachable_redis_is_an_error_naming_it_without_the_password(
    closed_port: int,
) -> None:
    """A Redis nobody listens on is a fatal error naming its address, without its password or the
    token."""
    url = f"redis://:hunter2pass@127.0.0.1:{closed_port}/0"
    client = tm.Client(TOKEN, base_url="http://127.0.0.1:9", redis_url=url)
    with pytest.raises(RedisUnavailableError) as caught:
        async with client:
            pass
    assert isinstance(caught.value, tm.FatalError)
    text = f"{caught.value} {caught.value!r}"
    assert f"127.0.0.1:{closed_port}" in text
    assert "hunter2pass" not in text
    assert TOKEN not in text


async def test_a_wrong_password_is_an_error_without_the_password(redis_url: str) -> None:
    """A refused password is an error that names the user and masks the password."""
    wrong = redis_url.replace("redis://", "redis://nobody:hunter2pass@")
    with pytest.raises(RedisUnavailableError) as caught:
        await open_connection(wrong)
    assert "hunter2pass" not in str(caught.value)
    assert "nobody:***@127.0.0.1" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@host:6379/1", "redis://:***@host:6379/1"),
        ("rediss://user:pw@host/0", "rediss://user:***@host/0"),
        ("redis://pw@host", "redis://:***@host"),
        ("unix:///run/redis.sock?db=2&password=pw", "unix:///run/redis.sock?db=2&password=***"),
    ],
)
def test_redact_url_masks_the_password(url: str, shown: str) -> None:
    """redact_url hides the password of every form of Redis URL and keeps the rest."""
    assert redact_url(url) == shown


def test_the_library_works_without_redis_py_and_names_the_extra() -> None:
    """Without redis-py the library still imports and works; asking for Redis says which extra to
    install."""
    code = textwrap.dedent(
        """
        import asyncio, sys
        sys.modules["redis"] = None  # as if the extra were not installed
        import tmapi_async as tm
        tm.Client("t")  # no Redis URL: nothing changes
        async def main():
            try:
                async with tm.Client("t", redis_url="redis://127.0.0.1:1/0"):
                    pass
            except tm.RedisUnavailableError as error:
                print(error)
        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'tmapi-async[redis]'" in done.stdout


async def test_an_acquire_given_up_leaves_no_slot_taken(redis_url: str) -> None:
    """A cancelled wait for a slot takes no slot and counts no request; the lease set ends empty."""
    keys = TokenKeys(fingerprint(TOKEN))
    throttle = RedisThrottle(redis_url, TOKEN, rate=100, concurrency=1)
    await throttle.start()
    told_full = asyncio.Event()
    admit = throttle._admit

    async def admit_and_note(wanted: int) -> Any:
        reply = await admit(wanted)
        if reply[0] in ("full", b"full"):  # Redis's verdict, as text or as it came
            told_full.set()
        return reply

    throttle._admit = admit_and_note  # type: ignore[method-assign]
    try:
        held = await throttle.acquire()
        waiting = asyncio.create_task(throttle.acquire())
        await asyncio.wait_for(told_full.wait(), WAIT)  # Redis said full: it waits for the slot
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        throttle.release(held)
        again = await asyncio.wait_for(throttle.acquire(), WAIT)
        assert throttle.in_flight == 1
        assert throttle.sent == 2  # the abandoned acquire was not counted
        throttle.release(again)
    finally:
        await throttle.aclose()
    async with aioredis.Redis.from_url(redis_url) as r:
        assert await r.zcard(keys.leases) == 0


async def test_many_waiting_requests_are_admitted_in_order(redis_url: str) -> None:
    """200 requests waiting on one throttle are admitted in the order they asked."""
    throttle = RedisThrottle(redis_url, TOKEN, rate=1000, burst=50, concurrency=100)
    await throttle.start()
    try:
        order: list[int] = []

        async def one(n: int) -> None:
            ticket = await throttle.acquire()
            order.append(n)
            throttle.release(ticket)

        await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(200))), WAIT)
        assert order == list(range(200))
        assert throttle.sent == 200
    finally:
        await throttle.aclose()


async def _settled(throttle: RedisThrottle) -> None:
    """Wait for the throttle's background updates to reach Redis."""
    await asyncio.gather(*throttle._background)


async def test_a_refusal_in_one_process_cuts_the_limit_of_all(redis_url: str) -> None:
    """The fifth request in flight refused in one process: the token's limit is 4 in
    every process; successes of any process count towards the next probe above it."""
    a = RedisThrottle(redis_url, TOKEN, rate=1000, burst=50, concurrency=8)
    b = RedisThrottle(redis_url, TOKEN)
    await a.start()
    await b.start()
    try:
        tickets = [await a.acquire() for _ in range(5)]
        a.release(tickets[4])
        a.congested(tickets[4])  # a 503 "concurrency limit exceeded", 4 others in flight
        for ticket in tickets[:4]:
            a.release(ticket)
        await _settled(a)
        b.release(await b.acquire())
        assert (a.limit, b.limit) == (4, 4)  # b learnt it from its own admission
        for _ in range(PROBE_FIRST):
            b.release(await b.acquire())
            b.succeeded()
        await _settled(b)
        a.release(await a.acquire())
        assert a.limit == b.limit == 5  # one probe above where refusals began
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_retry_after_in_one_process_holds_the_others(redis_url: str) -> None:
    """A Retry-After pause set by one process holds another's admission until it ends, by
    Redis's clock."""
    a = RedisThrottle(redis_url, TOKEN, rate=1000, burst=50)
    b = RedisThrottle(redis_url, TOKEN)
    await a.start()
    await b.start()
    try:
        a.pause(3.0)
        await _settled(a)
        async with aioredis.Redis.from_url(redis_url) as r:
            raw = await r.hget(TokenKeys(fingerprint(TOKEN)).state, "pause_until")
        assert raw is not None
        pause_until = float(raw)  # on the token's clock: Redis's, in µs
        assert await redis_now(redis_url) < pause_until  # b asks while the pause is on
        b.release(await asyncio.wait_for(b.acquire(), WAIT))
        assert await redis_now(redis_url) >= pause_until  # admitted only once it ended
    finally:
        await a.aclose()
        await b.aclose()


async def test_processes_waiting_for_the_rate_ask_about_once_a_request(redis_url: str) -> None:
    """Two throttles of one token at 20/s with six requests waiting in each: each hands its
    tickets out in order, and Redis is asked about once a request (a place in line each),
    not by every waiting process for every token."""
    a = RedisThrottle(redis_url, TOKEN, rate=20, burst=1, concurrency=8)
    b = RedisThrottle(redis_url, TOKEN)
    await a.start()
    await b.start()
    try:
        async with aioredis.Redis.from_url(redis_url) as redis:
            await redis.config_resetstat()
            admitted: list[tuple[RedisThrottle, int]] = []

            async def one(throttle: RedisThrottle) -> None:
                ticket = await throttle.acquire()
                admitted.append((throttle, ticket))
                throttle.release(ticket)

            tasks = [one(t) for t in (a, b) for _ in range(6)]
            await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
            stats = await redis.info("commandstats")
        asks = sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("evalsha", "eval"))
        assert asks <= 12 + 6  # 12 admissions; heartbeats and a stray wait at most
        for throttle in (a, b):
            tickets = [t for who, t in admitted if who is throttle]
            assert tickets == sorted(tickets)  # handed out in order
    finally:
        await a.aclose()
        await b.aclose()
