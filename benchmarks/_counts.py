"""How a contender drives the event loop, counted per request: no clock, so no noise.

Run (a simulator serving at URL, e.g. ``python -m tmapi_async.testing --shops 120
--items-per-shop 200..1000``)::

    python -m benchmarks._counts CONTENDER --url URL --shops 120 [--concurrency 64]

Runs one contender of :mod:`benchmarks._workers` with hooks on the event loop and
prints, per request: the callbacks the loop ran (task wake-ups among them), the timers
it scheduled, the tasks created, and the function calls made (Python and C), by where.
A sampling profile says where the time goes on a quiet machine; these counts say the
same on a busy one, where times vary by a third from one run to the next.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import asyncio.events
import contextlib
import io
import json
import sys
from collections import Counter
from types import FrameType
from typing import Any

import tmapi_async as tm
from benchmarks._workers import main as run_contender

PRELOADED = (tm.Client, tm.ShopQuery, tm.Throttle, tm.PageEvent, tm.TokenPool)


def _where(frame: FrameType) -> str:
    path = frame.f_code.co_filename.replace("\\", "/")
    for package in ("tmapi_async", "aiohttp", "yarl", "aiolimiter", "asyncio", "benchmarks"):
        if f"/{package}/" in path:
            return package
    return "other"


def count() -> tuple[int, Counter[str]]:
    """Run the contender named on the command line with the counting hooks on; return
    its requests and the counts."""
    counts: Counter[str] = Counter()
    handle_run = asyncio.events.Handle._run
    call_at = asyncio.base_events.BaseEventLoop.call_at
    create_task = asyncio.base_events.BaseEventLoop.create_task
    runner_run = asyncio.Runner.run

    def counted_run(self: asyncio.events.Handle) -> None:
        counts["loop callbacks"] += 1
        if getattr(self._callback, "__name__", "") == "task_wakeup":  # type: ignore[attr-defined]
            counts["task wake-ups"] += 1
        handle_run(self)

    def counted_call_at(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["timers"] += 1
        return call_at(self, *args, **kwargs)

    def counted_create_task(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["tasks"] += 1
        return create_task(self, *args, **kwargs)

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            counts[f"calls: {_where(frame)}"] += 1
        elif event == "c_call":
            counts["calls: C functions"] += 1

    def profiled(self: asyncio.Runner, coro: Any, **kwargs: Any) -> Any:
        sys.setprofile(profile)
        try:
            return runner_run(self, coro, **kwargs)
        finally:
            sys.setprofile(None)

    asyncio.events.Handle._run = counted_run  # type: ignore[method-assign]
    asyncio.base_events.BaseEventLoop.call_at = counted_call_at  # type: ignore[method-assign]
    asyncio.base_events.BaseEventLoop.create_task = counted_create_task  # type: ignore[method-assign]
    asyncio.Runner.run = profiled  # type: ignore[method-assign]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run_contender()
    return json.loads(out.getvalue().splitlines()[-1])["requests"], counts


def main() -> None:
    """Count one contender's run; print its counts per request as one JSON line."""
    requests, counts = count()
    calls = sum(v for k, v in counts.items() if k.startswith("calls"))
    per = {k: round(v / requests, 2) for k, v in sorted(counts.items())}
    print(json.dumps({"requests": requests, "calls": round(calls / requests, 1), **per}))


if __name__ == "__main__":
    main()
