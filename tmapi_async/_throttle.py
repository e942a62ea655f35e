"""Admission control for every request one client sends.

Four gates, in this order, so that a request leaves the moment it passes the last:

1. fatal: after an auth/balance error (or a spent budget) nothing more is admitted;
2. in-flight: at most ``limit`` requests on the wire, learnt by
   :class:`~tmapi_async._adaptive.InFlightLimit` from the depth (requests in flight)
   at which answers are refused: it finds where refusals begin, stays there and
   probes above rarely, because TMAPI limits requests in flight per token, publishes
   no figure and bills every refusal;
3. pause: a ``Retry-After`` stops the whole client, not just the task that saw it;
4. token bucket (aiolimiter): capacity ``burst`` refilled at ``rate`` per second, so
   any window of T seconds admits at most ``burst + rate * T`` requests.

The in-flight gate is taken before the bucket: a request that holds a token leaves at
once, so departures cannot bunch up behind a slot and exceed the window bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiolimiter import AsyncLimiter

from ._adaptive import InFlightLimit, SentRequests
from ._errors import FatalError, RequestBudgetExhausted
from ._limits import Limits, choose_limits
from ._waiters import Waiters

_SEND_JITTER = 0.02  # seconds: how late an admitted request may leave the event loop


class Admission(Protocol):
    """What a client asks of its throttle: admit a request, learn from its answer.

    :class:`Throttle` keeps the gates in this process; another implementation may
    share them between processes (every client of one token). Use as::

        ticket = await admission.acquire()
        try:
            ...send...
        finally:
            admission.release(ticket)
    """

    @property
    def rate(self) -> float:
        """Requests per second, sustained."""

    @property
    def burst(self) -> int:
        """Requests that may leave at once after idle."""

    @property
    def concurrency(self) -> int:
        """The most requests in flight; the adaptive limit never exceeds it."""

    @property
    def sent(self) -> int:
        """Requests this process was admitted to send (each is billed)."""

    @property
    def limit(self) -> int:
        """The in-flight limit in force now."""

    @property
    def in_flight(self) -> int:
        """Requests admitted and not yet released."""

    @property
    def fatal(self) -> FatalError | None:
        """The error that stopped admission, if one did."""

    async def start(self) -> None:
        """Get ready to admit (the client's ``__aenter__`` awaits it)."""

    async def aclose(self) -> None:
        """Give back whatever is held (the client's ``aclose`` awaits it)."""

    async def acquire(self) -> int:
        """Wait until a request may leave; return its ticket.

        Raises:
            FatalError: admission was stopped (a fatal answer, a spent budget, a stop).
        """

    def release(self, ticket: int) -> None:
        """The request of ``ticket`` is off the wire: free its in-flight slot."""

    def congested(self, ticket: int) -> None:
        """The request of ``ticket`` was refused for concurrency or rate."""

    def succeeded(self) -> None:
        """A request succeeded."""

    def pause(self, seconds: float) -> None:
        """Hold every request that has not left yet for ``seconds`` (Retry-After)."""

    def fail(self, error: FatalError) -> None:
        """Stop admission: every waiting and future request raises ``error`` at once."""

    async def interruptible(self, wait: Awaitable[object]) -> None:
        """Await ``wait`` (a backoff, say), but raise at once if admission is stopped."""


class Throttle:
    """Gates shared by all requests of one client, in this process; an
    :class:`Admission` (see the module docstring).

    Its :class:`~tmapi_async.Limits` are given as ``limits`` or, as a shorthand, as the
    keywords ``rate``, ``burst``, ``concurrency`` and ``max_requests``; a limit not set
    takes its default.

    Raises:
        InvalidParameterError: a limit out of range (a ``ValueError`` too), or both
            ``limits`` and the keywords.

    Use as::

        ticket = await throttle.acquire()
        try:
            ...send...
        finally:
            throttle.release(ticket)
    """

    __slots__ = (
        "_adaptive",
        "_bucket",
        "_fatal",
        "_in_flight",
        "_loop",
        "_resume_at",
        "_sent",
        "_slot_waiters",
        "_slots",
        "_slots_handed",
        "_waiting",
        "burst",
        "concurrency",
        "max_requests",
        "rate",
        "sent",
    )

    rate: float  #: requests per second the bucket refills at
    burst: int  #: bucket capacity: requests that may leave at once after idle
    concurrency: int  #: the most requests in flight; the adaptive limit never exceeds it
    max_requests: int | None  #: budget of requests to send in all; None for no limit
    sent: int  #: requests admitted so far (each is billed)

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        rate: float | None = None,
        burst: int | None = None,
        concurrency: int | None = None,
        max_requests: int | None = None,
    ) -> None:
        limits = choose_limits(
            limits, rate=rate, burst=burst, concurrency=concurrency, max_requests=max_requests
        )
        rate, burst = limits.rate_or_default, limits.burst_or_default
        concurrency, max_requests = limits.concurrency_or_default, limits.max_requests
        self.rate, self.burst, self.concurrency = rate, burst, concurrency
        self.max_requests = max_requests
        self.sent = 0
        # AsyncLimiter(R, 1) would admit R at once; capacity C over C/R seconds is a token
        # bucket. C keeps back what 20 ms of send jitter could bunch (requests admitted
        # apart but sent together), so the bound holds where the server counts, too.
        # It binds to the running loop on first use.
        capacity = max(1, burst - int(rate * _SEND_JITTER))
        self._bucket = AsyncLimiter(capacity, capacity / rate)
        self._adaptive = InFlightLimit(concurrency)
        self._slots = self._adaptive.limit  # kept with it: read on every request
        self._in_flight = 0
        self._sent = SentRequests(concurrency)  # the depth each request left at
        self._slot_waiters = Waiters(unused=self._slot_unused)
        # Waiters woken for a free slot that have not run yet: the slot is theirs.
        self._slots_handed = 0
        self._waiting: set[asyncio.Task[Any]] = set()
        self._resume_at = 0.0
        self._fatal: FatalError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- observation -------------------------------------------------------------------

    @property
    def limit(self) -> int:
        """The in-flight limit in force now (adapted to refusals)."""
        return self._slots

    @property
    def in_flight(self) -> int:
        """Requests admitted and not yet released."""
        return self._in_flight

    @property
    def fatal(self) -> FatalError | None:
        """The error that stopped the client, if one did."""
        return self._fatal

    # -- the gates ---------------------------------------------------------------------

    async def acquire(self) -> int:
        """Wait until a request may leave; return its ticket (a sequence number).

        Raises:
            FatalError: the client was stopped, before or while waiting.
        """
        if self._fatal is not None:
            raise self._fatal
        if self._in_flight + self._slots_handed >= self._slots or self._slot_waiters:
            await self._wait_for_slot()
        self._in_flight += 1
        try:
            loop = self._loop or self._bind()
            if self._resume_at:  # a Retry-After pause was asked for
                while self._resume_at > loop.time():
                    await self.interruptible(asyncio.sleep(self._resume_at - loop.time()))
                self._resume_at = 0.0
            if self._bucket.has_capacity():
                await self._bucket.acquire()  # immediate: no need to be interruptible
            else:
                await self.interruptible(self._bucket.acquire())
            if self.max_requests is not None and self.sent >= self.max_requests:
                self.fail(RequestBudgetExhausted(f"max_requests={self.max_requests} spent"))
            if self._fatal is not None:
                raise self._fatal
        except BaseException:
            self.release()
            raise
        self.sent += 1
        self._sent.sent(self.sent, self._in_flight, self._adaptive.epoch)
        return self.sent

    async def start(self) -> None:
        """Nothing to prepare: the gates live in this process."""

    async def aclose(self) -> None:
        """Nothing to give back: the gates live in this process."""

    def release(self, ticket: int = 0) -> None:
        """Give back the in-flight slot taken by :meth:`acquire` (any ticket frees one)."""
        self._in_flight -= 1
        self._sent.released(ticket)
        self._wake_slot_waiter()

    def _bind(self) -> asyncio.AbstractEventLoop:
        self._loop = asyncio.get_running_loop()
        return self._loop

    async def _wait_for_slot(self) -> None:
        while True:
            await self._slot_waiters.wait()
            self._slots_handed -= 1
            if self._fatal is not None:
                raise self._fatal
            if self._in_flight < self._slots:
                return
            # The limit was cut since the wake-up: wait for the next free slot.

    def _wake_slot_waiter(self) -> None:
        # Woken waiters leave the queue, and the slots handed to them count as taken:
        # a release wakes one waiter and looks at no other (when tasks outnumber slots,
        # scanning past the woken ones cost more than the request itself).
        free = self._slots - self._in_flight - self._slots_handed
        if free > 0 and self._slot_waiters:
            self._slots_handed += self._slot_waiters.wake(free)

    def _slot_unused(self) -> None:
        self._slots_handed -= 1  # a woken waiter left and nobody took its slot

    async def interruptible(self, wait: Awaitable[object]) -> None:
        """Await ``wait`` (a backoff, say), but raise at once if the client is stopped."""
        await wait_interruptibly(wait, self._waiting, lambda: self._fatal)

    # -- feedback from answers ---------------------------------------------------------

    def congested(self, ticket: int) -> None:
        """A request refused for concurrency or rate: the limit drops to just below the
        depth it was sent at (the account admits fewer at once than that)."""
        adaptive = self._adaptive
        depth, epoch = self._sent.of(ticket) or (self._in_flight + 1, adaptive.epoch)
        adaptive.refused(depth, epoch)
        self._slots = adaptive.limit

    def succeeded(self) -> None:
        """A request succeeded (the one released last): the limit grows while it is
        being found, and probes above the level of the last refusal now and then."""
        adaptive = self._adaptive
        if adaptive.limit >= self.concurrency and adaptive.ceiling is None:
            return  # the common case of a guess within the account's limit: nothing to do
        depth, epoch = self._sent.of(None) or (self._in_flight + 1, adaptive.epoch)
        adaptive.succeeded(depth, epoch)
        if adaptive.limit != self._slots:
            self._slots = adaptive.limit
            self._wake_slot_waiter()

    def pause(self, seconds: float) -> None:
        """Hold every request that has not left yet for ``seconds`` (Retry-After)."""
        loop = self._loop or self._bind()
        self._resume_at = max(self._resume_at, loop.time() + seconds)

    def fail(self, error: FatalError) -> None:
        """Stop the client: waiting and future requests raise ``error`` at once."""
        if self._fatal is not None:
            return
        self._fatal = error
        self._slots_handed += self._slot_waiters.wake(len(self._slot_waiters))
        for task in self._waiting:
            task.cancel()


async def wait_interruptibly(
    wait: Awaitable[object],
    waiting: set[asyncio.Task[Any]],
    fatal: Callable[[], FatalError | None],
) -> None:
    """Await ``wait`` with the current task in ``waiting``, the set a stop cancels at once.

    The stop sets the error ``fatal()`` returns before it cancels: a cancel of its making
    becomes that error, anyone else's stays a cancel. (The ``interruptible`` of both
    throttles, the local and the Redis one.)
    """
    task = asyncio.current_task()
    assert task is not None
    waiting.add(task)
    try:
        await wait
    except asyncio.CancelledError:
        error = fatal()
        if error is not None and task.uncancel() == 0:
            raise error from None
        raise
    finally:
        waiting.discard(task)
