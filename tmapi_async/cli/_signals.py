"""Ctrl-C and SIGTERM during a run: the first stops gracefully, the second at once."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Stop", "install_signals"]


@dataclass(slots=True)
class Stop:
    """Which signal asked the run to stop, if one did, and whether a second one came."""

    signal: int | None = None
    hard: bool = False


def install_signals(
    stop: Stop, on_first: Callable[[], None], on_second: Callable[[], None]
) -> Callable[[], None]:
    """Route SIGINT/SIGTERM to ``on_first`` then ``on_second``; returns an undo."""
    import asyncio

    loop = asyncio.get_running_loop()
    installed: list[int] = []

    def handle(signum: int) -> None:
        if stop.signal is None:
            stop.signal = signum
            on_first()
        else:
            stop.hard = True
            on_second()

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, handle, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - Windows
            pass

    def undo() -> None:
        for signum in installed:
            loop.remove_signal_handler(signum)

    return undo
