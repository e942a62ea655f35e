"""A budget of requests shared by several admissions (the tokens of a pool).

``max_requests`` of a :class:`~tmapi_async.TokenPool` counts across its tokens: each
token's :class:`~tmapi_async.Admission` is wrapped in a :class:`Budgeted` that spends
one :class:`SharedBudget`. The check and the spending happen with no await between
them, so the budget is exact however many tokens send at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ._errors import FatalError, RequestBudgetExhausted
from ._throttle import Admission

__all__ = ["Budgeted", "SharedBudget"]


class SharedBudget:
    """``max_requests`` counted across every token of a pool."""

    __slots__ = ("error", "limit", "on_spent", "spent")

    def __init__(self, limit: int, on_spent: Callable[[FatalError], None]) -> None:
        self.limit = limit
        self.spent = 0
        self.on_spent = on_spent
        self.error = RequestBudgetExhausted(f"max_requests={limit} spent")

    def check(self) -> None:
        """Raise :class:`RequestBudgetExhausted` once the budget is spent, having
        stopped every token with it (so waiting requests end too)."""
        if self.spent >= self.limit:
            self.on_spent(self.error)  # stops every token, waiters included
            raise self.error


class Budgeted:
    """A token's :class:`Admission` that also spends the pool's shared budget; its
    ``sent`` counts only requests that went out."""

    __slots__ = ("_budget", "_inner", "sent")

    def __init__(self, inner: Admission, budget: SharedBudget) -> None:
        self._inner = inner
        self._budget = budget
        self.sent = 0

    @property
    def rate(self) -> float:
        return self._inner.rate

    @property
    def burst(self) -> int:
        return self._inner.burst

    @property
    def concurrency(self) -> int:
        return self._inner.concurrency

    @property
    def limit(self) -> int:
        return self._inner.limit

    @property
    def in_flight(self) -> int:
        return self._inner.in_flight

    @property
    def fatal(self) -> FatalError | None:
        return self._inner.fatal

    async def start(self) -> None:
        await self._inner.start()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def acquire(self) -> int:
        self._budget.check()  # do not queue for a request that may not be sent
        ticket = await self._inner.acquire()
        try:
            self._budget.check()  # spent by another token meanwhile
        except FatalError:
            self._inner.release(ticket)
            raise
        self._budget.spent += 1
        self.sent += 1
        return ticket

    def release(self, ticket: int) -> None:
        self._inner.release(ticket)

    def congested(self, ticket: int) -> None:
        self._inner.congested(ticket)

    def succeeded(self) -> None:
        self._inner.succeeded()

    def pause(self, seconds: float) -> None:
        self._inner.pause(seconds)

    def fail(self, error: FatalError) -> None:
        self._inner.fail(error)

    async def interruptible(self, wait: Awaitable[object]) -> None:
        await self._inner.interruptible(wait)
