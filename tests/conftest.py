"""Shared test fixtures: the simulator's, and a virtual-time event loop."""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

# The simulator's fixtures (tmapi_sim, tmapi_sim_factory, tmapi_token) for every test.
pytest_plugins = ["tmapi_async.testing.pytest_plugin"]

T = TypeVar("T")


class _InstantSelector(selectors.DefaultSelector):
    """A selector that, instead of blocking, moves the loop's clock to the next timer."""

    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events:
            return events
        if timeout is None:
            raise RuntimeError("deadlock: every task waits and no timer is set")
        # Time moves a microsecond even on a zero timeout, as real time would: code
        # that waits for a float to leak past a threshold must not spin forever.
        self._loop.now += max(timeout, 1e-6)
        return events


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer: sleeps cost no real time."""

    def __init__(self) -> None:
        self.now = 1000.0
        super().__init__(selector=_InstantSelector(self))

    def time(self) -> float:
        return self.now


@pytest.fixture
def run_virtual() -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run a coroutine to completion on a fresh virtual-clock loop."""

    def run(coro: Coroutine[Any, Any, T]) -> T:
        loop = VirtualClockLoop()
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.close()

    return run
