"""``Waiters``: tasks parked until another task says there is something for them.

The scheduler's idle workers, the throttle's requests waiting for an in-flight slot and
a pool's requests waiting for a token all park the same way: a future each, in arrival
order, woken a given number at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

__all__ = ["Waiters"]


class Waiters:
    """Tasks parked in arrival order; ``wake(n)`` lets the first ``n`` go on.

    A waiter that was woken but leaves anyway (cancelled in the same loop turn) passes
    its wake-up on, so no wake-up is lost to a task that will not use it; when nobody
    is left to take it, ``unused`` is called (a throttle gives the slot it handed back).
    """

    __slots__ = ("_queue", "_unused")

    def __init__(self, unused: Callable[[], None] | None = None) -> None:
        self._queue: deque[asyncio.Future[None]] = deque()
        self._unused = unused

    def __len__(self) -> int:
        return len(self._queue)

    def __bool__(self) -> bool:  # asked on every request: cheaper than len()
        return bool(self._queue)

    async def wait(self) -> None:
        """Park until woken."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Woken, but leaving: pass it on.
                if not self.wake(1) and self._unused is not None:
                    self._unused()
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._queue.remove(waiter)
            raise

    def wake(self, count: int = 1) -> int:
        """Wake up to ``count`` waiters, oldest first; how many were woken."""
        woken = 0
        queue = self._queue
        while woken < count and queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                woken += 1
        return woken

    def wake_all(self) -> None:
        """Wake every waiter (the state they wait on changed for all of them)."""
        self.wake(len(self._queue))
