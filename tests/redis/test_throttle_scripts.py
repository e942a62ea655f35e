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

from tmapi_async._adaptive import PROBE_FIRST, PROBE_LAST, START, InFlightLimit
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
        concurrency: int = 2, jitter: float = 0.0, wanted: int = 1, horizon: float = 0.0,
        reach: float = 0.0, released: tuple[str, ...] = (),
    ) -> list[Any]:  # fmt: skip
        args = [owner, lease, rate, burst, concurrency, jitter, wanted, START, horizon, reach]
        reply = await self.run("acquire", TRIPLE, [*args, *released])
        return [r.decode() if isinstance(r, bytes) else r for r in reply]

    async def set_limits(self, rate: str = "", burst: str = "", concurrency: str = "") -> None:
        await self.run("limits", [KEYS.state], [rate, burst, concurrency, START])

    async def adapt(self, kind: str, *answers: tuple[int, int], concurrency: int = 8) -> list[int]:
        """Tell the adaptive limit of answers (depth, epoch); its {limit, ceiling, epoch}."""
        args = [kind, concurrency, START, PROBE_FIRST, PROBE_LAST]
        reply = await self.run("adapt", [KEYS.state], args + [n for a in answers for n in a])
        return [int(n) for n in reply]

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


async def test_a_refusal_puts_the_limit_below_its_depth_in_every_process(scripts: Scripts) -> None:
    """Refused at depth 5: the token's limit is 4 (not a half), the ceiling 4 and the
    epoch moves; a refusal at a greater depth changes nothing; an admission reports them."""
    await scripts.set_limits("1", "8", "8")  # a new concurrency: epoch 1
    assert await scripts.adapt("refused", (5, 1)) == [4, 4, 2]
    assert await scripts.adapt("refused", (7, 1)) == [4, 4, 2]
    reply = await scripts.acquire(concurrency=8, burst=8)
    assert (reply[2], reply[8], reply[9]) == (4, 2, 4)  # limit, epoch, ceiling


async def test_a_new_concurrency_restarts_the_adaptive_limit(scripts: Scripts) -> None:
    """The same concurrency set again keeps what was learnt; a new one starts over, from
    START or the concurrency if lower, in a new epoch."""
    await scripts.set_limits(concurrency="8")
    assert (await scripts.state())["limit"] == str(START)
    await scripts.adapt("refused", (4, 0))
    await scripts.set_limits(concurrency="8")
    assert (await scripts.state())["limit"] == "3"
    await scripts.set_limits(concurrency="5")
    state = await scripts.state()
    assert (state["limit"], state["ceiling"], state["epoch"]) == ("5", "-1", "3")


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


EVENTS = [  # (refused?, depth, epoch): a slow start, a refusal, probes
    *[(False, d, 0) for d in (1, 3, 6, 7, 8, 9, 10, 11)],
    (True, 12, 0), (True, 14, 0), (True, 11, 0), (False, 13, 0),
    *[(False, 10, 1)] * PROBE_FIRST, (True, 11, 1),
    *[(False, 10, 1)] * (2 * PROBE_FIRST), (False, 11, 1), (False, 12, 1), (True, 13, 1),
    (True, 3, 2), (False, 2, 3),
]  # fmt: skip


async def test_lua_and_python_learn_the_same_limit(scripts: Scripts) -> None:
    """The shared limit's script and InFlightLimit, fed the same answers one at a time,
    agree on the limit, the ceiling and the epoch after every one."""
    local = InFlightLimit(16)
    for refused, depth, epoch in EVENTS:
        if refused:
            local.refused(depth, epoch)
        else:
            local.succeeded(depth, epoch)
        kind = "refused" if refused else "succeeded"
        shared = await scripts.adapt(kind, (depth, epoch), concurrency=16)
        expected = [local.limit, -1 if local.ceiling is None else local.ceiling, local.epoch]
        assert shared == expected, (refused, depth, epoch)


async def test_successes_told_in_a_batch_count_one_by_one(scripts: Scripts) -> None:
    """Successes sent together in one call move the limit as the same told one by one."""
    local = InFlightLimit(16)
    answers = [(d, 0) for d in (3, 6, 7, 8, 9, 10, 1)]
    for depth, epoch in answers:
        local.succeeded(depth, epoch)
    assert await scripts.adapt("succeeded", *answers, concurrency=16) == [local.limit, -1, 0]


async def test_the_rate_is_booked_ahead_within_the_horizon(scripts: Scripts) -> None:
    """At 10/s with a burst of one and a 0.25 s horizon, one call of five admits three,
    due now, in 0.1 s and in 0.2 s; the next asks to wait until the fourth is 0.25 s away."""
    first = await scripts.acquire(rate=10.0, burst=1, concurrency=99, wanted=5, horizon=0.25)
    assert (first[0], first[7]) == ("ok", 3)
    assert first[10] <= 0
    assert float(first[11]) == 1e5
    second = await scripts.acquire(rate=10.0, burst=1, concurrency=99, wanted=5, horizon=0.25)
    assert second[0] == "wait"
    assert 0 < second[1] <= 0.05e6


async def test_past_the_horizon_one_request_is_booked_within_the_reach(scripts: Scripts) -> None:
    """At 1/s, burst one, a 1.5 s reach: the second call of three waiting books one, due in
    about a second (its place in line); the third is told to wait until the next is within
    the reach, about half a second."""
    replies = [await scripts.acquire(concurrency=9, burst=1, wanted=3, reach=1.5) for _ in range(3)]
    assert [(r[0], r[7]) for r in replies[:2]] == [("ok", 1), ("ok", 1)]
    assert replies[0][10] <= 0
    assert 0.9e6 < replies[1][10] <= 1e6
    assert replies[2][0] == "wait"
    assert 0.4e6 < replies[2][1] <= 0.5e6


async def test_an_admission_carries_the_releases_of_its_process(scripts: Scripts) -> None:
    """An acquire call carries the leases its process released since, and frees them first."""
    await scripts.acquire()
    await scripts.acquire()
    assert (await scripts.acquire())[0] == "full"
    reply = await scripts.acquire(released=("p1:1", "p1:2"))  # both released since
    assert reply[0] == "ok"
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
    """Renewals and pauses read the same clamped clock as admissions."""
    kept = await _set_clock(scripts, +3600.0)
    await scripts.run("renew", TRIPLE, [5.0, "p1:1"])
    assert await scripts.redis.zscore(KEYS.leases, "p1:1") == kept + 5e6
    # From here the clock runs on from the kept one at TIME's pace (under a second here).
    await scripts.run("pause", [KEYS.state], [2.0, 5.0])
    assert kept + 2e6 <= float((await scripts.state())["pause_until"]) < kept + 3e6
    assert kept <= float((await scripts.state())["clock"]) < kept + 1e6
