"""A budget of requests shared by several admissions (the tokens of a pool).

``max_requests`` of a :class:`~tmapi_async.TokenPool` counts across its tokens: each
token's :class:`~tmapi_async.Admission` is wrapped in a :class:`Budgeted` that spends
one :class:`SharedBudget`. The check and the spending happen with no await between
them, so the budget is exact however many tokens send at once.
"""

from __future__ import annotations

from collections.abc import Callable

from ._admission import AdmissionWrapper
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


class Budgeted(AdmissionWrapper):
    """A token's :class:`Admission` that also spends the pool's shared budget; its
    ``sent`` counts only requests that went out."""

    def __init__(self, inner: Admission, budget: SharedBudget) -> None:
        super().__init__(inner)
        self._budget = budget
        self._sent = 0

    @property
    def sent(self) -> int:
        return self._sent

    async def acquire(self) -> int:
        self._budget.check()  # do not queue for a request that may not be sent
        ticket = await self._inner.acquire()
        try:
            self._budget.check()  # spent by another token meanwhile
        except FatalError:
            self._inner.release(ticket)
            raise
        self._budget.spent += 1
        self._sent += 1
        return ticket
