"""The shared throttle's Lua scripts, one verdict at a time.

Each test runs on fakeredis (with Lua) and on the real server: the scripts must give
the same answers on both. Rates here are slow (1/s) so that the Redis clock moving
while a test runs cannot change a verdict.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import pytest

from tmapi_async._redis.connection import RedisConnection, load_lua, open_connection
from tmapi_async._redis.token import TokenKeys

KEYS = TokenKeys("0123456789abcdef")
TRIPLE = [KEYS.state, KEYS.leases, KEYS.fatal]


class Scripts:
    """The throttle's scripts on one connection, with the arguments a process passes."""

    def __init__(self, conn: RedisConnection) -> None:
        self.conn = conn
        self.redis = conn.client
        self._scripts = {
            name: conn.script(load_lua(f"throttle_{name}"))
            for name in ("acquire", "renew", "adapt", "pause", "fail", "limits")
        }

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self.conn.run(self._scripts[name], keys, args)

    async def acquire(
        self, owner: str = "p1", *, lease: float = 5.0, rate: float = 1.0, burst: int = 3,
        concurrency: int = 2, jitter: float = 0.0, wanted: int = 1,
    ) -> list[Any]:  # fmt: skip
        args = [owner, lease, rate, burst, concurrency, jitter, wanted]
        reply = await self.run("acquire", TRIPLE, args)
        return [r.decode() if isinstance(r, bytes) else r for r in reply]

    async def set_limits(self, rate: str = "", burst: str = "", concurrency: str = "") -> None:
        await self.run("limits", [KEYS.state], [rate, burst, concurrency])

    async def state(self) -> dict[str, str]:
        raw = await self.redis.hgetall(KEYS.state)
        return {k.decode(): v.decode() for k, v in raw.items()}


@pytest.fixture(params=["fakeredis", "redis-server"])
async def scripts(request: pytest.FixtureRequest) -> AsyncIterator[Scripts]:
    if request.param == "fakeredis":
        conn = RedisConnection("redis://fake", fakeredis.FakeAsyncRedis())
    else:
        conn = await open_connection(request.getfixturevalue("redis_url"))
    try:
        yield Scripts(conn)
    finally:
        await conn.aclose()


async def test_admits_the_burst_then_asks_to_wait_about_one_interval(scripts: Scripts) -> None:
    """The acquire script admits the burst with tickets in sequence, then asks to wait one
    interval."""
    replies = [await scripts.acquire(concurrency=10) for _ in range(4)]
    assert [r[0] for r in replies] == ["ok", "ok", "ok", "wait"]
    assert [r[1] for r in replies[:3]] == [1, 2, 3]  # tickets: the token's sequence
    assert 0.5e6 < replies[3][1] <= 1e6  # microseconds until the next one at 1/s
    leases = await scripts.redis.zrange(KEYS.leases, 0, -1)
    assert sorted(leases) == [b"p1:1", b"p1:2", b"p1:3"]


async def test_one_call_admits_the_waiting_requests_the_gates_allow(scripts: Scripts) -> None:
    """One acquire call admits as many waiting requests as the burst and the free slots allow."""
    reply = await scripts.acquire(burst=3, concurrency=10, wanted=5)  # the burst allows 3
    assert (reply[0], reply[1], reply[7]) == ("ok", 1, 3)
    assert reply[3] == 3  # in flight
    assert await scripts.redis.zcard(KEYS.leases) == 3
    assert (await scripts.acquire(burst=3, concurrency=10, wanted=5))[0] == "wait"
    await scripts.redis.delete(KEYS.state, KEYS.leases)
    reply = await scripts.acquire(burst=5, concurrency=2, wanted=5)  # 2 slots
    assert (reply[0], reply[1], reply[7]) == ("ok", 1, 2)


async def test_the_burst_keeps_back_what_send_jitter_could_bunch(scripts: Scripts) -> None:
    """The burst keeps back the requests that send jitter could bunch together."""
    # 1/s, burst 5, 2 s of send jitter: 2 requests' worth are kept back, capacity 3.
    verdicts = [(await scripts.acquire(burst=5, concurrency=99, jitter=2.0))[0] for _ in range(4)]
    assert verdicts == ["ok", "ok", "ok", "wait"]


async def test_full_when_every_slot_is_leased_and_free_after_a_release(scripts: Scripts) -> None:
    """With every slot leased the answer is full (no ticket taken); a released lease frees one."""
    first = await scripts.acquire()
    second = await scripts.acquire("p2")
    full = await scripts.acquire()
    assert (first[0], second[0], full[0]) == ("ok", "ok", "full")
    assert full[3] == 2  # in flight, as Redis counts it
    assert await scripts.redis.hget(KEYS.state, "seq") == b"2"  # a refusal takes no ticket
    await scripts.redis.zrem(KEYS.leases, "p1:1")
    assert (await scripts.acquire())[0] == "ok"


async def test_the_leases_of_a_dead_process_expire(scripts: Scripts) -> None:
    """Leases whose expiry has passed are dropped by the next acquire and free their slots."""
    # A process killed with -9 stops renewing: its leases' expiries pass.
    await scripts.redis.zadd(KEYS.leases, {"dead:1": 1.0, "dead:2": 2.0})
    reply = await scripts.acquire()
    assert reply[0] == "ok"
    assert await scripts.redis.zrange(KEYS.leases, 0, -1) == [b"p1:1"]


async def test_a_pause_holds_every_request(scripts: Scripts) -> None:
    """A pause makes every acquire wait until it ends; a shorter pause does not shorten it."""
    await scripts.run("pause", [KEYS.state], [30])
    reply = await scripts.acquire()
    assert reply[0] == "wait"
    assert 29e6 < reply[1] <= 30e6
    await scripts.run("pause", [KEYS.state], [1])  # a shorter pause does not shorten it
    assert (await scripts.acquire())[1] > 29e6


async def test_a_fatal_answer_stops_the_token_and_the_first_is_kept(scripts: Scripts) -> None:
    """The first fatal answer is kept, for a while, and every acquire returns it without a lease."""
    await scripts.run("fail", [KEYS.fatal], ["BalanceError", 439, 439, "balance spent", 60000])
    await scripts.run("fail", [KEYS.fatal], ["AuthenticationError", 401, 401, "later", 60000])
    reply = await scripts.acquire()
    assert reply == ["fatal", "BalanceError", "439", "439", "balance spent"]
    assert 0 < await scripts.redis.pttl(KEYS.fatal) <= 60000  # remembered for a while only
    assert await scripts.redis.zcard(KEYS.leases) == 0


async def test_limits_set_last_win_and_an_empty_one_is_kept(scripts: Scripts) -> None:
    """The limits set last win over a caller's defaults; a limit left empty keeps its value."""
    await scripts.set_limits("60", "3", "4")
    await scripts.set_limits(rate="30")
    state = await scripts.state()
    assert (state["rate"], state["burst"], state["concurrency"]) == ("30", "3", "4")
    reply = await scripts.acquire(rate=10, burst=1, concurrency=8)  # defaults: overridden
    assert reply[4:7] == ["30", 3, 4]
    assert reply[2] == 4  # the in-flight limit starts at the concurrency set


async def test_a_cut_halves_once_per_cohort_and_growth_returns(scripts: Scripts) -> None:
    """Refusals halve the limit once per cohort of requests and cap its ceiling; successes grow it
    back."""
    await scripts.set_limits("1", "8", "8")
    tickets = [(await scripts.acquire(concurrency=8, burst=8))[1] for _ in range(4)]
    adapt = [KEYS.state, KEYS.leases]
    # Two refusals of the same cohort (sent before any cut): one cut.
    assert await scripts.run("adapt", adapt, ["cut", 8, tickets[0], f"p1:{tickets[0]}"]) == b"4"
    assert await scripts.run("adapt", adapt, ["cut", 8, tickets[1], f"p1:{tickets[1]}"]) == b"4"
    state = await scripts.state()
    # Refused with 2 others in flight: the server's limit is at most 3.
    assert float(state["ceiling"]) == 3
    assert await scripts.redis.zcard(KEYS.leases) == 2  # the refused leases are gone
    # A request sent after the cut is a new cohort: it cuts again.
    later = (await scripts.acquire(concurrency=8, burst=8))[1]
    assert await scripts.run("adapt", adapt, ["cut", 8, later, f"p1:{later}"]) == b"2"
    # Successes grow it back: at 2, one step short of the ceiling (3), it probes
    # slowly (0.1 per round trip of successes), and never past the concurrency.
    assert float(await scripts.run("adapt", adapt, ["grow", 8, 1])) == pytest.approx(2.05)
    assert float(await scripts.run("adapt", adapt, ["grow", 8, 10_000])) == 8


async def test_a_new_concurrency_restarts_the_adaptive_limit(scripts: Scripts) -> None:
    """A changed concurrency restarts the adaptive limit; the same one again keeps the cut."""
    await scripts.set_limits(concurrency="8")
    ticket = (await scripts.acquire(concurrency=8))[1]
    await scripts.run("adapt", [KEYS.state, KEYS.leases], ["cut", 8, ticket, f"p1:{ticket}"])
    assert (await scripts.state())["limit"] == "4"
    await scripts.set_limits(concurrency="8")  # the same again: the cut stands
    assert (await scripts.state())["limit"] == "4"
    await scripts.set_limits(concurrency="6")
    state = await scripts.state()
    assert (state["limit"], state["ceiling"], state["cut_after"]) == ("6", "6", "1")


async def test_renewal_extends_live_leases_and_reports_the_token(scripts: Scripts) -> None:
    """Renewal pushes a live lease's expiry on, returns the token's limits, and its fatal answer."""
    await scripts.set_limits("5", "2", "3")
    await scripts.redis.zadd(KEYS.leases, {"p1:7": 1.0})  # about to expire
    reply = await scripts.run("renew", TRIPLE, [5.0, "p1:7"])
    assert reply[0] is None  # no fatal answer
    assert reply[5:] == [b"5", b"2", b"3"]
    score = await scripts.redis.zscore(KEYS.leases, "p1:7")
    assert score is not None
    assert score > 1e15  # now + 5 s on Redis's clock, in µs
    await scripts.run("fail", [KEYS.fatal], ["AuthenticationError", 401, 401, "no", 60000])
    reply = await scripts.run("renew", TRIPLE, [5.0])
    assert reply[:4] == [b"AuthenticationError", b"401", b"401", b"no"]


async def test_growth_is_one_per_round_trip_below_the_ceiling(scripts: Scripts) -> None:
    """Below the ceiling the limit grows by about one per round trip of successes."""
    await scripts.redis.hset(KEYS.state, mapping={"limit": "2", "ceiling": "8"})
    adapt = [KEYS.state, KEYS.leases]
    # A round trip at limit L is L successes, each adding 1/L: about one in all.
    assert 2.85 < float(await scripts.run("adapt", adapt, ["grow", 8, 2])) < 3
    assert 3.8 < float(await scripts.run("adapt", adapt, ["grow", 8, 3])) < 4


async def test_an_admission_carries_the_releases_of_its_process(scripts: Scripts) -> None:
    """An acquire call carries the leases its process released since, and frees them first."""
    await scripts.acquire()
    await scripts.acquire()
    assert (await scripts.acquire())[0] == "full"
    args = ["p1", 5.0, 1.0, 3, 2, 0.0, 1, "p1:1", "p1:2"]  # both released since
    reply = await scripts.run("acquire", TRIPLE, args)
    assert reply[0] == b"ok"
    assert await scripts.redis.zrange(KEYS.leases, 0, -1) == [b"p1:3"]


# -- the token's clock: Redis's TIME, clamped against jumps ------------------------------


async def _set_clock(scripts: Scripts, offset_s: float) -> float:
    """Make the token's kept clock (and the TIME it was taken at) ``offset_s`` from now:
    to the scripts, Redis's TIME has since jumped by ``-offset_s``. Returns it (µs)."""
    seconds, micros = await scripts.redis.time()
    kept = seconds * 1e6 + micros + offset_s * 1e6
    await scripts.redis.hset(
        KEYS.state, mapping={"clock": f"{kept:.0f}", "clock_raw": f"{kept:.0f}"}
    )
    return kept


async def test_a_clock_stepped_back_neither_stalls_the_rate_nor_goes_back(scripts: Scripts) -> None:
    """TIME an hour behind the token's clock: the rate goes on from the kept clock (no
    hour-long wait for GCRA), and the kept clock never goes back."""
    kept = await _set_clock(scripts, +3600.0)  # TIME stepped back an hour
    await scripts.redis.hset(KEYS.state, "tat", f"{kept:.0f}")  # a request just admitted
    reply = await scripts.acquire(rate=1.0, burst=3, concurrency=10)
    assert reply[0] == "ok", reply  # on TIME alone: wait an hour
    assert float((await scripts.state())["clock"]) >= kept


async def test_a_clock_jumping_forward_moves_half_a_lease_at_most(scripts: Scripts) -> None:
    """TIME an hour ahead of the token's clock (a step, or Redis frozen or restarted
    meanwhile): the clock moves half a lease, so a lease renewed a moment ago holds."""
    kept = await _set_clock(scripts, -3600.0)  # TIME jumped an hour ahead
    await scripts.redis.zadd(KEYS.leases, {"p0:1": kept + 4e6})  # renewed 1 s ago
    reply = await scripts.acquire(lease=5.0, concurrency=1)
    assert reply[0] == "full", reply  # on TIME alone, the lease would have expired
    assert float((await scripts.state())["clock"]) == kept + 2.5e6
    # `status` counts the leases in flight on the token's clock too.
    from tmapi_async.cli.status import _token_line

    assert "in flight 1" in await _token_line(scripts.redis, KEYS.fingerprint)


async def test_the_clock_is_kept_by_every_script_that_reads_time(scripts: Scripts) -> None:
    """Renewals, cuts and pauses read the same clamped clock as admissions."""
    kept = await _set_clock(scripts, +3600.0)
    await scripts.run("renew", TRIPLE, [5.0, "p1:1"])
    assert await scripts.redis.zscore(KEYS.leases, "p1:1") == kept + 5e6
    # From here the clock runs on from the kept one at TIME's pace (under a second here).
    await scripts.run("pause", [KEYS.state], [2.0, 5.0])
    assert kept + 2e6 <= float((await scripts.state())["pause_until"]) < kept + 3e6
    await scripts.run("adapt", [KEYS.state, KEYS.leases], ["cut", 4, 1, "p1:1", 5.0])
    assert kept <= float((await scripts.state())["clock"]) < kept + 1e6
