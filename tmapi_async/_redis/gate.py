"""The gate of one harvest in a worker: pause and backpressure are one mechanism.

Every page request of a harvest's engine waits at its harvest's gate before it is sent
(:class:`GatedSource` wraps the worker's client for that engine), and the engine takes
no new shop while the gate is shut. The worker sets each gate at its heartbeat from
what Redis says of the harvest (:func:`decide`): open, paused by an operator, held
back because the coordinator has too many results still to export, or gone
(cancelled, forgotten, failed). Requests already sent (or waiting for the shared
throttle) finish; nothing new leaves while the gate is shut.

Pure asyncio: no Redis here, so the logic is tested without one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Container
from typing import TYPE_CHECKING, Final, Literal

from .._admission import REQUEST_SHOP
from .._errors import FatalError, HarvestStopped

if TYPE_CHECKING:
    from .._harvest import Fetched, PageSource
    from .._protocol import ShopQuery

__all__ = ["DEFAULT_MAX_BACKLOG", "GatedSource", "HarvestGate", "Verdict", "decide", "dropped"]

DEFAULT_MAX_BACKLOG: Final = 2000  #: results (pages) not yet exported that stop the fetching

Verdict = Literal["open", "paused", "backlog", "gone"]


def decide(state: str | None, backlog: int, max_backlog: int | None) -> Verdict:
    """What a harvest's gate should be, from its state in Redis (``None``: its record is
    gone), its results not yet exported, and its bound on them (``None``: no bound)."""
    if state is None or state not in ("open", "paused"):
        return "gone"  # forgotten, cancelled, failed, finished: nothing more to send
    if state == "paused":
        return "paused"
    if max_backlog is not None and backlog >= max_backlog:
        return "backlog"
    return "open"


class HarvestGate:
    """Open or shut; page requests (and new shops) wait while it is shut.

    ``close(error)`` ends it for good: whoever waits, and whoever comes later, gets
    ``error``.
    """

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self.verdict: Verdict = "open"
        self.error: FatalError | None = None

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    def set(self, verdict: Verdict) -> bool:
        """Open or shut the gate (``gone`` shuts it; :meth:`close` ends it). Returns
        whether the verdict changed."""
        changed = verdict != self.verdict
        self.verdict = verdict
        if verdict == "open":
            self._open.set()
        else:
            self._open.clear()
        return changed

    def close(self, error: FatalError) -> None:
        """End the gate: every wait, now and later, raises ``error``."""
        if self.error is None:
            self.error = error
        self._open.set()  # wake the waiters: they find the error

    async def wait(self) -> None:
        """Return once the gate is open; raise its error once it is closed."""
        while True:
            if self.error is not None:
                raise self.error
            if self._open.is_set():
                return
            await self._open.wait()


class GatedSource:
    """The worker's client as one harvest's engine sees it: each page waits at the gate.

    ``stop`` stops the shared client too (the whole worker stops), unless the source
    was :meth:`detach`\\ ed: then only this harvest ends, and the client serves on.
    """

    def __init__(self, client: PageSource, gate: HarvestGate) -> None:
        self._client = client
        self.gate = gate
        self._detached = False
        self.in_flight = 0  #: page requests past the gate and not yet answered
        #: pages this source may still send before the backlog bound (None: no bound),
        #: counted here between two looks at Redis, so that the bound holds between them
        self.budget: int | None = None
        self.told: Verdict = "open"  #: the verdict the worker last told
        self.quiet_told = False  #: the worker said nothing of this harvest is in flight
        #: the shops the engine holds (shop URLs): a request for one no longer held is
        #: not sent after a wait for the worker's hold (None: not checked)
        self.held: Container[str] | None = None

    @property
    def concurrency(self) -> int:
        return self._client.concurrency

    @property
    def requests(self) -> int:
        return self._client.requests

    @property
    def retries(self) -> int:
        return self._client.retries

    @property
    def fatal(self) -> FatalError | None:
        return self.gate.error or self._client.fatal

    def detach(self) -> None:
        """From now on, :meth:`stop` ends this harvest only."""
        self._detached = True

    def stop(self, error: FatalError) -> None:
        self.gate.close(error)
        if not self._detached:
            self._client.stop(error)

    async def fetch_counted(self, query: ShopQuery, page: int) -> Fetched:
        await self.gate.wait()
        while self.budget is not None and self.budget <= 0:
            self.gate.set("backlog")  # until the next look finds the backlog drained
            await self.gate.wait()
        if self.budget is not None:
            self.budget -= 1
        self.in_flight += 1
        if self.held is not None:
            REQUEST_SHOP.set((query.shop_url, self.held))
        try:
            return await self._client.fetch_counted(query, page)
        finally:
            self.in_flight -= 1


def dropped(reason: str) -> HarvestStopped:
    """The error that ends one harvest's engine in a worker (the worker serves on)."""
    return HarvestStopped(f"harvest dropped: {reason}")
