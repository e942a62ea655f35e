"""Admission wrappers: an :class:`~tmapi_async.Admission` around another, adding one rule.

:class:`AdmissionWrapper` hands every call to the admission it wraps; a subclass
overrides only what it adds. :class:`CappedAdmission` is a Redis worker's: the token's
shared throttle, with a cap on this process's own requests in flight, each sent only
while the worker's hold on its shops is fresh. (The budget a pool's tokens share is
:class:`~tmapi_async._budget.Budgeted`, next to its budget.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Container
from contextvars import ContextVar
from typing import TYPE_CHECKING, Final, Protocol

from ._errors import ShopTakenOver

if TYPE_CHECKING:
    from ._errors import FatalError
    from ._throttle import Admission

__all__ = ["POOL_WITHOUT_CAP", "REQUEST_SHOP", "AdmissionWrapper", "CappedAdmission", "Fence"]

POOL_WITHOUT_CAP: Final = 100  #: connections of a worker without --concurrency (aiohttp's)

#: The shop a worker's request is for, and the shops its engine still holds (set by the
#: engine's page source): a request that had to wait for the worker's hold to be
#: confirmed leaves only if its shop is still held once it is.
REQUEST_SHOP: ContextVar[tuple[str, Container[str]] | None] = ContextVar(
    "tmapi_request_shop", default=None
)


class AdmissionWrapper:
    """An :class:`Admission` that hands every call to ``inner``: subclasses override
    only what they add (a shared budget, a cap of this process's requests)."""

    def __init__(self, inner: Admission) -> None:
        self._inner = inner

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
    def sent(self) -> int:
        return self._inner.sent

    @property
    def connections(self) -> int:
        """The HTTP connections a client of this admission keeps (its pool's size)."""
        return int(getattr(self._inner, "connections", self._inner.concurrency))

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
        return await self._inner.acquire()

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


class Fence(Protocol):
    """Whether requests may leave now (a worker's :class:`OwnershipGate`)."""

    def fresh(self) -> bool:
        """True while a request may leave at once."""

    async def wait(self) -> None:
        """Return once :meth:`fresh` holds."""


class CappedAdmission(AdmissionWrapper):
    """The shared throttle, with at most ``cap`` requests of this process in flight,
    each sent only while the worker's hold on its shops is fresh (``gate``).

    ``worker --concurrency`` caps the worker's own tasks, not the token's limit: the
    token's limit stays in Redis, shared by every process (one throttle, not two).
    """

    def __init__(self, inner: Admission, cap: int | None, gate: Fence | None = None) -> None:
        super().__init__(inner)
        self._cap = cap
        self._gate = gate
        self._slots: asyncio.Semaphore | None = None

    @property
    def limit(self) -> int:
        return min(self._inner.limit, self.concurrency)

    @property
    def connections(self) -> int:
        """The worker's connection pool: its cap (``--concurrency``), else as many as
        the token's limit in Redis may come to allow (it is known only once started)."""
        return POOL_WITHOUT_CAP if self._cap is None else self._cap

    @property
    def concurrency(self) -> int:
        token_limit = self._inner.concurrency
        return token_limit if self._cap is None else min(self._cap, token_limit)

    async def acquire(self) -> int:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        if self._slots.locked():  # a wait: one a stop must end
            await self._inner.interruptible(self._slots.acquire())
        else:
            await self._slots.acquire()  # free: taken at once, no future, no wait
        try:
            ticket = await self._inner.acquire()
        except BaseException:
            self._slots.release()
            raise
        if self._gate is not None and not self._gate.fresh():
            # Checked after the admission, the last wait before the request leaves.
            try:
                await self._inner.interruptible(self._gate.wait())
                shop = REQUEST_SHOP.get()
                if shop is not None and shop[0] not in shop[1]:
                    raise ShopTakenOver(f"{shop[0]} is no longer held here")
            except BaseException:
                self.release(ticket)
                raise
        return ticket

    def release(self, ticket: int) -> None:
        self._inner.release(ticket)
        if self._slots is not None:
            self._slots.release()
