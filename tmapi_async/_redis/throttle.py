"""``RedisThrottle``: one token's gates shared by every process that uses it, via Redis.

The same gates as the local :class:`~tmapi_async.Throttle`, kept in Redis under a
fingerprint of the token (the token itself is never written there) and checked by one
Lua script per admission, on Redis's clock:

1. fatal: a 401/403/439 seen by any process stops every process (for ``FATAL_MEMORY``);
2. pause: a ``Retry-After`` holds the whole token;
3. in-flight: at most the adaptive limit (the rules of
   :class:`~tmapi_async._adaptive.InFlightLimit`, kept in Redis and fed by the answers
   of every process: a refusal anywhere puts it just below the depth it was sent at)
   of short *leases* in a sorted set scored by expiry. A heartbeat renews this
   process's leases every ``heartbeat`` seconds, so the slots of a process killed with
   -9 free themselves within ``lease`` seconds;
4. rate: GCRA with capacity ``burst`` refilled at ``rate``: any T seconds admit at most
   ``burst + rate * T`` requests, whichever processes send them.

In a process, one long-lived task asks Redis for every request waiting there (up to
``_BATCH`` in one round trip) and hands the tickets out in order, each at the time the
rate gives it (booked up to ``_HORIZON`` ahead, or one place in line up to ``_REACH``
ahead, so that one ask admits a run of requests instead of processes racing for each
token). A request waits on one future; the asking task is never cancelled mid-ask
(it is the one place that learns what Redis granted), so an ask needs no task or
shield of its own. Releases leave the request path: the next admission carries them,
or a background task sends them in one ``ZREM``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any

from .._adaptive import PROBE_FIRST, PROBE_LAST, START, InFlightLimit, SentRequests
from .._errors import FatalError, RequestBudgetExhausted
from .._limits import DEFAULT_CONCURRENCY, DEFAULT_RATE, Limits, choose_limits, default_burst
from .._secret import fingerprint
from .._throttle import wait_interruptibly
from .connection import (
    DEFAULT_OUTAGE,
    RedisConnection,
    RedisUnavailableError,
    load_lua,
    open_connection,
)
from .leases import Leases
from .token import (
    FATAL_MEMORY,
    SHARED_FATAL,
    TOKENS_KEY,
    TokenKeys,
    check_arguments,
    fatal_from,
    number,
    text,
)

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

__all__ = ["TOKENS_KEY", "RedisThrottle", "TokenKeys"]  # the keys live in .token

_log = logging.getLogger("tmapi_async")

_SEND_JITTER = 0.03  # seconds of send jitter the burst keeps back: 10 ms more than the
# local throttle, for the way back from Redis to each process
_FULL_POLL = 0.01  # seconds between asks while every slot is taken by other processes
_BATCH = 32  # requests admitted in one round trip at most
_HORIZON = 0.02  # seconds ahead the rate may be booked (each request waits until its time)
_REACH = 1.0  # seconds ahead one request may be booked when the rate is taken further
_HORIZON_ARG, _REACH_ARG = repr(_HORIZON).encode(), repr(_REACH).encode()


class RedisThrottle:
    """The :class:`~tmapi_async.Admission` of one token shared through Redis.

    Args:
        url: the Redis URL (``redis://[:password@]host:port/db``).
        token: the API token; only its fingerprint is kept.
        limits: the token's ``rate``, ``burst`` and ``concurrency`` to set in Redis for
            every process (the last to set them wins), and this process's own budget,
            ``max_requests``; or give them as keywords. A limit not set leaves the one
            Redis holds (until someone sets it: the defaults of :class:`Limits`). A rate
            without a burst sets the rate's default burst too.
        lease: seconds an in-flight slot is held without renewal; an admission not
            sent within it (the process was paused) is given back and asked again.
        heartbeat: seconds between renewals (and checks for a fatal answer elsewhere).
        redis_outage: seconds to wait for a Redis that went away (nothing is admitted
            meanwhile) before stopping with :class:`RedisUnavailableError`.
    """

    def __init__(
        self,
        url: str,
        token: str,
        limits: Limits | None = None,
        *,
        rate: float | None = None,
        burst: int | None = None,
        concurrency: int | None = None,
        max_requests: int | None = None,
        lease: float = 5.0,
        heartbeat: float = 1.0,
        redis_outage: float = DEFAULT_OUTAGE,
    ) -> None:
        limits = choose_limits(
            limits, rate=rate, burst=burst, concurrency=concurrency, max_requests=max_requests
        )
        check_arguments(lease, heartbeat, redis_outage)
        self._url, self._outage = url, redis_outage
        self.keys = TokenKeys(fingerprint(token))
        burst = limits.burst
        if limits.rate is not None and burst is None:
            burst = default_burst(limits.rate)  # a new rate brings its own default burst
        # The limits this process sets for the token ("" leaves one as Redis has it).
        self._set_limits = [
            "" if v is None else repr(v) for v in (limits.rate, burst, limits.concurrency)
        ]
        self._rate = limits.rate_or_default
        self._burst = limits.burst_or_default
        self._concurrency = limits.concurrency_or_default
        self._limit = min(self._concurrency, START)
        self._ceiling = -1  # the adaptive limit's, as Redis last told it (-1: none yet)
        self._epoch = 0
        self._sent_at = SentRequests(self._concurrency)  # depth and epoch, by ticket
        self._answers: list[str] = []  # depth, epoch of successes not yet told to Redis
        # Admitted, each waiting for its time (loop time, non-decreasing), in order.
        self._booked: deque[tuple[float, asyncio.Future[int], int]] = deque()
        self._booked_timer: asyncio.TimerHandle | None = None
        self.max_requests = limits.max_requests
        self.sent = 0  #: requests this process was admitted to send (each is billed)
        self._leases = Leases(
            self.keys, lease=lease, heartbeat=heartbeat,
            on_renewed=self._renewed, on_lost=self._stop,
        )  # fmt: skip
        self._conn: RedisConnection | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._waiters: deque[asyncio.Future[int]] = deque()  # acquires, in arrival order
        self._admitter: asyncio.Task[None] | None = None  # asks Redis for them
        self._idle: asyncio.Future[None] | None = None  # the admitter's wait for a waiter
        self._asking = False  # the admitter awaits Redis's reply (never cancelled then)
        self._acquire_keys = [self.keys.state, self.keys.leases, self.keys.fatal]
        self._fixed_args: list[bytes] = []  # the acquire script's arguments that never change
        self._closing = False
        self._background: set[asyncio.Task[Any]] = set()
        self._waiting: set[asyncio.Task[Any]] = set()
        self._resume_at = 0.0
        self._fatal: FatalError | None = None

    def __repr__(self) -> str:
        return (
            f"RedisThrottle(token={self.keys.fingerprint}, rate={self._rate:g}, "
            f"burst={self._burst}, concurrency={self._concurrency})"
        )

    # -- observation (the token's limits as Redis last told them) ----------------------

    @property
    def rate(self) -> float:
        """Requests per second, sustained, for the token in all processes."""
        return self._rate

    @property
    def burst(self) -> int:
        """Requests that may leave at once after idle, in all processes."""
        return self._burst

    @property
    def concurrency(self) -> int:
        """The most requests of the token in flight, in all processes."""
        return self._concurrency

    @property
    def limit(self) -> int:
        """The token's adaptive in-flight limit in force (as last seen)."""
        return self._limit

    @property
    def in_flight(self) -> int:
        """Requests of this process admitted and not yet released."""
        return len(self._leases.live)

    @property
    def fatal(self) -> FatalError | None:
        """The error that stopped admission, here or in another process of the token."""
        return self._fatal

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, set the token's limits if this throttle was given some, start the
        heartbeat. Raises :class:`RedisUnavailableError` if Redis does not answer."""
        if self._conn is not None:
            return
        conn = await open_connection(self._url, redis_outage=self._outage)
        try:
            for name in ("acquire", "renew", "adapt", "pause", "fail", "limits"):
                self._scripts[name] = conn.script(load_lua(f"throttle_{name}"))
            try:
                await conn.client.sadd(TOKENS_KEY, self.keys.fingerprint)
            except Exception as error:
                if conn.is_redis_error(error):
                    raise conn.unavailable(error) from None
                raise
            if any(self._set_limits):
                await conn.run(
                    self._scripts["limits"], [self.keys.state], [*self._set_limits, str(START)]
                )
            # The first renewal tells the limits in force and whether the token is stopped.
            await self._leases.start(conn, self._scripts["renew"])
        except BaseException:
            await conn.aclose()
            raise
        self._conn = conn

    async def aclose(self) -> None:
        """Stop the heartbeat, free this process's leases and wait until Redis has them."""
        conn = self._conn
        if conn is None:
            return
        self._closing = True
        for waiter in self._waiters:
            waiter.cancel()  # closed while acquiring: nothing more is admitted
        if self._admitter is not None:
            # Mid-ask, it is let finish: what Redis granted goes back (no waiter is left).
            if not self._asking:
                self._admitter.cancel()
            await asyncio.gather(self._admitter, return_exceptions=True)
        if self._booked_timer is not None:
            self._booked_timer.cancel()
        for _, waiter, ticket in self._booked:
            waiter.cancel()
            self._leases.release(ticket)
        self._booked.clear()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._leases.aclose()
        self._conn = None
        await conn.aclose()

    # -- admission ---------------------------------------------------------------------

    async def acquire(self) -> int:
        """Wait until the token's gates admit a request; return its ticket.

        Raises:
            FatalError: admission was stopped (here or in another process, or the
                budget is spent); RedisUnavailableError (a FatalError) when Redis fails.
        """
        while True:
            ticket = await self._acquire_once()
            if self._leases.fresh(ticket):
                return ticket
            # Paused (SIGSTOP, a stalled VM) past its lease before it left: the slot may be
            # someone else's by now. Given back unsent, and asked for again.
            self.sent -= 1
            self._leases.release(ticket)

    async def _acquire_once(self) -> int:
        self._raise_if_stopped()
        if self._conn is None:
            raise RuntimeError("the throttle is not started: await throttle.start() first")
        granted: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(granted)
        idle = self._idle
        if idle is not None:
            self._idle = None
            if not idle.done():
                idle.set_result(None)
        if self._admitter is None or self._admitter.done():  # first use (or it failed)
            self._admitter = asyncio.create_task(self._admit_waiters(), name="tmapi-admit")
        try:
            await self.interruptible(granted)
        except BaseException:
            if granted.done() and not granted.cancelled():
                self.sent -= 1  # admitted, but we leave: not sent, not billed
                self._leases.release(granted.result())
            granted.cancel()
            raise
        return granted.result()

    async def _admit_waiters(self) -> None:
        """The one task of this process that asks Redis: for every request waiting at
        once (up to ``_BATCH``), one round trip; the tickets go to them in order."""
        loop = asyncio.get_running_loop()
        while True:
            while self._waiters and self._waiters[0].done():
                self._waiters.popleft()  # given up (cancelled) while waiting
            if self._fatal is not None or self._closing:
                return
            if not self._waiters:  # idle until a request waits (no task per busy spell)
                self._idle = loop.create_future()
                await self._idle
                continue
            if self._resume_at > loop.time():
                await asyncio.sleep(self._resume_at - loop.time())
                continue
            wanted = min(len(self._waiters), _BATCH)  # a waiter given up meanwhile is rare
            if self.max_requests is not None:
                admitted = self.sent + len(self._booked)
                if admitted >= self.max_requests:
                    self.fail(RequestBudgetExhausted(f"max_requests={self.max_requests} spent"))
                    return
                wanted = min(wanted, self.max_requests - admitted)
            self._leases.returned.clear()  # a release from here on wakes a full wait
            asked = self._leases.clock()
            self._asking = True
            try:
                reply = await self._admit(wanted)
            except FatalError:
                return  # the waiters raise it: _admit stopped the throttle
            finally:
                self._asking = False
            verdict = text(reply[0])
            if verdict == "ok":
                self._hand_out_run(reply, asked)
                if self._booked:
                    # Booked ahead: ask again when the last booked request is due, for all
                    # who came meanwhile (one round trip, not one each); with many waiting,
                    # once more can be booked. Never a second place in line far ahead.
                    until = self._booked[-1][0]
                    if len(self._waiters) >= _BATCH:
                        until -= _HORIZON
                    await asyncio.sleep(until - loop.time())
            elif verdict == "wait":
                await asyncio.sleep(int(reply[1]) / 1e6)
            elif not self._leases.pending:
                # Full: a slot frees here (asked again at once, carrying the release: one
                # round trip, not a ZREM and then an ask) or in another process (polled).
                await self._leases.until_returned(_FULL_POLL)

    def _hand_out_run(self, reply: list[Any], asked: float) -> None:
        """The tickets of an "ok" to the waiters in order, each at its time (see
        throttle_acquire.lua), noting the depth and epoch each leaves at."""
        now = asyncio.get_running_loop().time()
        first, count, epoch = int(reply[1]), int(reply[7]), int(reply[8])
        depth = int(reply[3]) - count + 1
        due, interval = int(reply[10]), float(reply[11])
        last = self._booked[-1][0] if self._booked else now
        for i, ticket in enumerate(range(first, first + count)):
            self._leases.take(ticket, asked)
            self._sent_at.sent(ticket, depth + i, epoch)
            waiter = self._next_waiter()
            if waiter is None:
                self._leases.release(ticket)  # its waiter left meanwhile
                continue
            last = max(last, now + (due + i * interval) / 1e6)  # never before an earlier one
            self._booked.append((last, waiter, ticket))
        if self._booked_timer is None:
            self._deliver_due()

    def _next_waiter(self) -> asyncio.Future[int] | None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                return waiter
        return None

    def _deliver_due(self) -> None:
        """Hand out the booked tickets whose time came, in order; wake up for the next."""
        self._booked_timer = None
        loop = asyncio.get_running_loop()
        booked, now = self._booked, loop.time()
        while booked and booked[0][0] <= now:
            _, waiter, ticket = booked.popleft()
            if waiter.done():  # it left while its time came
                self._leases.release(ticket)
            else:
                waiter.set_result(ticket)
                self.sent += 1
        if booked:
            self._booked_timer = loop.call_at(booked[0][0], self._deliver_due)

    async def _admit(self, wanted: int) -> list[Any]:
        conn = self._live_conn()
        if not self._fixed_args:  # encoded once: redis-py encodes each str anew per call
            self._fixed_args = [
                str(arg).encode()
                for arg in (
                    self._leases.owner, repr(self._leases.lease), repr(DEFAULT_RATE),
                    default_burst(DEFAULT_RATE), DEFAULT_CONCURRENCY, repr(_SEND_JITTER),
                )
            ]  # fmt: skip
        args: list[bytes | str] = [
            *self._fixed_args,
            b"%d" % wanted,
            b"%d" % START,
            _HORIZON_ARG,
            _REACH_ARG,
            *self._leases.take_releases(),
        ]
        try:
            # Not cancelled mid-ask (the admitter is not, then): what Redis grants is
            # always handed out, or given back.
            await self._leases.catch_up()  # back from an outage: renew ours before any new
            reply = await conn.run(self._scripts["acquire"], self._acquire_keys, args)
        except RedisUnavailableError as error:
            self._stop(error)
            raise
        if text(reply[0]) == "fatal":
            self._stop(fatal_from(reply[1:5]))
            self._raise_if_stopped()
        self._learn(reply[2], reply[4], reply[5], reply[6])
        self._epoch, self._ceiling = int(reply[8]), int(reply[9])
        return list(reply)

    def release(self, ticket: int) -> None:
        """The request of ``ticket`` is off the wire: its lease goes in the next batch."""
        self._leases.release(ticket)
        self._sent_at.released(ticket)

    # -- feedback from answers (to Redis in the background) ----------------------------

    def congested(self, ticket: int) -> None:
        """A request refused for concurrency or rate: the token's limit, in every
        process, drops to just below the depth it was sent at."""
        depth, epoch = self._sent_at.of(ticket) or (len(self._leases.live) + 1, self._epoch)
        self._spawn(self._adapt("refused", [str(depth), str(epoch)]))

    def succeeded(self) -> None:
        """A request succeeded (the one released last): told to Redis, in batches, if it
        can change the token's limit (no round trip for one that cannot: a token at its
        concurrency that never saw a refusal, a slow start whose limit is not in use)."""
        depth, epoch = self._sent_at.of(None) or (len(self._leases.live) + 1, self._epoch)
        ceiling = None if self._ceiling < 0 else self._ceiling
        if not InFlightLimit.success_counts(depth, self._limit, ceiling, self._concurrency):
            return
        self._answers += (str(depth), str(epoch))
        if len(self._answers) == 2:
            self._spawn(self._tell_successes())

    async def _tell_successes(self) -> None:
        while self._answers:
            answers, self._answers = self._answers[: _BATCH * 2], self._answers[_BATCH * 2 :]
            await self._adapt("succeeded", answers)

    async def _adapt(self, kind: str, answers: list[str]) -> None:
        args = [kind, str(self._concurrency), str(START), str(PROBE_FIRST), str(PROBE_LAST)]
        reply = await self._live_conn().run(
            self._scripts["adapt"], [self.keys.state], args + answers
        )
        self._limit = max(1, min(self._concurrency, int(reply[0])))
        self._ceiling, self._epoch = int(reply[1]), int(reply[2])

    def pause(self, seconds: float) -> None:
        """Hold every request of the token, in every process, for ``seconds``."""
        loop = asyncio.get_running_loop()
        self._resume_at = max(self._resume_at, loop.time() + seconds)
        args = [seconds, self._leases.lease]
        self._spawn(self._live_conn().run(self._scripts["pause"], [self.keys.state], args))

    def fail(self, error: FatalError) -> None:
        """Stop admission here; an authentication or balance error stops every process
        of the token too."""
        first = self._fatal is None
        self._stop(error)
        kind = type(error).__name__
        if first and SHARED_FATAL.get(kind) is type(error) and self._conn is not None:
            args = [kind, error.code or "", error.status or "", error.message]
            args.append(str(int(FATAL_MEMORY * 1000)))
            self._spawn(self._conn.run(self._scripts["fail"], [self.keys.fatal], args))

    def _stop(self, error: FatalError) -> None:
        if self._fatal is not None:
            return
        self._fatal = error
        for task in self._waiting:
            task.cancel()

    def _raise_if_stopped(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    async def interruptible(self, wait: Awaitable[object]) -> None:
        """Await ``wait`` (a backoff, say), but raise at once if admission is stopped,
        here or (seen by the heartbeat) in another process."""
        await wait_interruptibly(wait, self._waiting, lambda: self._fatal)

    # -- plumbing ----------------------------------------------------------------------

    def _renewed(self, reply: list[Any]) -> None:
        """A heartbeat's news: a fatal answer elsewhere stops us; limits may have changed."""
        if reply[0]:
            self._stop(fatal_from(reply[0:4]))
        self._learn(reply[4], reply[5], reply[6], reply[7])

    def _learn(self, limit: Any, rate: Any, burst: Any, concurrency: Any) -> None:
        """Take the token's limits in force from a reply (None: not set, keep ours)."""
        self._rate = number(rate, self._rate)
        self._burst = int(number(burst, self._burst))
        self._concurrency = int(number(concurrency, self._concurrency))
        start = min(self._concurrency, START)  # nothing learnt yet
        self._limit = max(1, min(self._concurrency, int(number(limit, start))))

    def _live_conn(self) -> RedisConnection:
        if self._conn is None:
            raise RuntimeError("the throttle is closed")
        return self._conn

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        if self._conn is None:
            work.close()
            return
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:  # the next admission
            _log.warning("shared throttle update failed: %s", task.exception())  # says it
