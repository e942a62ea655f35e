"""What a running harvest shows on stderr, and the summary it ends with.

Four modes: ``live`` (a rich display redrawn a few times a second, when stderr is a
terminal), ``plain`` (one line every few seconds, for logs and pipes), ``json`` (a
``progress`` JSON line every few seconds, ``--log-format json``) and ``quiet``
(nothing). Messages logged while the display runs appear above it. This is the only
module that imports rich.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Literal, Self

from .._progress import HarvestProgress

__all__ = ["HarvestSummary", "ProgressDisplay", "choose_mode", "format_duration"]

Mode = Literal["live", "plain", "quiet", "json"]


def choose_mode(*, quiet: bool, stream: IO[str]) -> Mode:
    """``quiet`` if asked, ``live`` on a terminal, else ``plain``."""
    if quiet:
        return "quiet"
    try:
        return "live" if stream.isatty() else "plain"
    except (AttributeError, ValueError):
        return "plain"


def format_duration(seconds: float) -> str:
    """``1:02:03``, ``2:03`` or ``4.2s``: short and readable."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class _Rates:
    """Requests/s and pages/s over the last few seconds (not since the start)."""

    def __init__(self, window: float = 10.0) -> None:
        self._window = window
        self._samples: deque[tuple[float, int, int]] = deque()

    def update(self, progress: HarvestProgress) -> tuple[float, float]:
        now = time.monotonic()
        samples = self._samples
        samples.append((now, progress.requests, progress.pages_done))
        while len(samples) > 2 and now - samples[0][0] > self._window:
            samples.popleft()
        t0, r0, p0 = samples[0]
        if now - t0 < 0.5:  # too short to tell: average since the start instead
            span = max(progress.elapsed, 1e-6)
            return progress.requests / span, progress.pages_done / span
        return (progress.requests - r0) / (now - t0), (progress.pages_done - p0) / (now - t0)


def _eta(progress: HarvestProgress, total_shops: int | None, pages_per_s: float) -> float | None:
    """Seconds left from the page plan: planned pages of open shops, plus the average
    pages per shop for the shops not opened yet (when their number is known)."""
    remaining = max(0, progress.pages_planned - progress.pages_done)
    opened = progress.shops_seen - progress.duplicates
    if total_shops is not None and opened > 0:
        unopened = max(0, total_shops - progress.shops_seen)
        remaining += round(unopened * progress.pages_planned / opened)
    elif not progress.input_exhausted:
        return None  # unknown amount of input left
    if pages_per_s <= 0:
        return None
    return remaining / pages_per_s


class ProgressDisplay:
    """Shows a :class:`HarvestProgress` while a harvest runs; use as a context manager.

    Args:
        progress: the counters to show (read, never written).
        total_shops: shops in the input, when known beforehand (for the ETA).
        mode: see :func:`choose_mode`.
        stream: where to draw (stderr).
        interval: seconds between plain lines.
        title: the name shown first on each line.
        scrub: applied to every message before it is shown (removes the token).
    """

    def __init__(
        self,
        progress: HarvestProgress,
        *,
        total_shops: int | None = None,
        mode: Mode = "plain",
        stream: IO[str] | None = None,
        interval: float = 5.0,
        title: str = "harvest",
        scrub: Callable[[str], str] = str,
    ) -> None:
        self.progress = progress
        self.total_shops = total_shops
        self.mode: Mode = mode
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.title = title
        self._scrub = scrub  # removes secrets from every message shown
        self._rates = _Rates()
        self._live: Any = None
        self._console: Any = None
        self._ticker: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Self:
        if self.mode == "live":
            from rich.console import Console
            from rich.live import Live

            self._console = Console(file=self.stream, stderr=True)
            # rich redraws from its own thread by calling __rich__: it only reads ints.
            self._live = Live(self, console=self._console, refresh_per_second=4, transient=True)
            self._live.start()
        elif self.mode in ("plain", "json"):
            try:
                self._ticker = asyncio.get_running_loop().create_task(self._tick())
            except RuntimeError:
                self._ticker = None  # no loop: plain lines only come from log()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self.mode == "json":
                self._progress_event()
            else:
                self._write(self.line())

    def _progress_event(self) -> None:
        from ._logs import event

        p = self.progress
        req_s, pages_s = self._rates.update(p)
        eta = _eta(p, self.total_shops, pages_s)
        event(
            "progress",
            shops_done=p.shops_done,
            shops_total=self.total_shops,
            shops_failed=p.shops_failed + p.shops_partial,
            pages_done=p.pages_done,
            pages_planned=p.pages_planned,
            items=p.items,
            requests=p.requests,
            retries=p.retries,
            requests_per_s=round(req_s, 2),
            eta_s=None if eta is None else round(eta, 1),
            elapsed_s=round(p.elapsed, 3),
        )

    # -- output ------------------------------------------------------------------------

    def log(self, message: str) -> None:
        """Show a message (a failure, a notice) above the display; shown in every mode
        but quiet, where only errors are printed through :meth:`error`."""
        if self.mode != "quiet":
            self._write(message)

    def error(self, message: str) -> None:
        """Show a message even in quiet mode."""
        self._write(message)

    def _write(self, message: str) -> None:
        message = self._scrub(message)
        if self.mode == "json":
            from ._logs import event

            event("message", message)
            return
        if self._console is not None:
            self._console.print(message, markup=False, highlight=False, soft_wrap=True)
        else:
            print(message, file=self.stream, flush=True)

    def line(self) -> str:
        """One plain line of the current counters."""
        p = self.progress
        req_s, pages_s = self._rates.update(p)
        eta = _eta(p, self.total_shops, pages_s)
        shops = f"{p.shops_done}/{self.total_shops}" if self.total_shops else f"{p.shops_done}"
        parts = [
            f"{self.title}: shops {shops}",
            f"pages {p.pages_done}/{p.pages_planned}",
            f"items {p.items}",
            f"{req_s:.1f} req/s",
            f"retries {p.retries}",
        ]
        if p.shops_failed or p.shops_partial:
            parts.insert(1, f"failed {p.shops_failed + p.shops_partial}")
        parts.append(f"ETA {format_duration(eta)}" if eta is not None else "ETA ?")
        if p.redis_away_since is not None:
            parts.append(_waiting_for_redis(p.redis_away_since))
        return ", ".join(parts)

    def __rich__(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        p = self.progress
        req_s, pages_s = self._rates.update(p)
        eta = _eta(p, self.total_shops, pages_s)
        shops = (
            f"{p.shops_done:,}/{self.total_shops:,}" if self.total_shops else f"{p.shops_done:,}"
        )
        failed = p.shops_failed + p.shops_partial
        grid = Table.grid(padding=(0, 2))
        grid.add_row(
            f"[bold]{self.title}[/]",
            f"shops [bold]{shops}[/]" + (f" [red]({failed} failed)[/]" if failed else ""),
            f"pages [bold]{p.pages_done:,}/{p.pages_planned:,}[/]",
            f"items [bold]{p.items:,}[/]",
        )
        grid.add_row(
            ProgressBar(total=max(p.pages_planned, 1), completed=p.pages_done, width=24),
            f"[cyan]{req_s:,.1f}[/] req/s",
            f"retries {p.retries:,}",
            f"elapsed {format_duration(p.elapsed)}  ETA "
            + (format_duration(eta) if eta is not None else "?"),
        )
        if p.redis_away_since is not None:
            grid.add_row("", f"[yellow]{_waiting_for_redis(p.redis_away_since)}[/]", "", "")
        return grid


def _waiting_for_redis(since: float) -> str:
    return f"waiting for Redis ({format_duration(time.monotonic() - since)})"


@dataclass(frozen=True, slots=True)
class HarvestSummary:
    """The figures a harvest ends with (this run, plus what the export holds in all)."""

    shops_complete: int
    shops_partial: int
    shops_failed: int
    shops_resumed: int
    duplicates: int
    items: int
    export_items: int
    requests: int
    pages_done: int
    pages_needed: int
    retries: int
    elapsed: float
    profile_answers: int = 0  #: with --with-profiles: profiles and category trees answered

    @classmethod
    def from_progress(
        cls, p: HarvestProgress, *, export_items: int, pages_needed: int, profile_answers: int = 0
    ) -> HarvestSummary:
        """Freeze the counters of a finished (or stopped) harvest (``profile_answers``:
        the answers of ``--with-profiles``, billed with the pages)."""
        return cls(
            shops_complete=p.shops_complete,
            shops_partial=p.shops_partial,
            shops_failed=p.shops_failed,
            shops_resumed=p.shops_resumed,
            duplicates=p.duplicates,
            items=p.items,
            export_items=export_items,
            requests=p.requests,
            pages_done=p.pages_done,
            pages_needed=pages_needed,
            retries=p.retries,
            elapsed=p.elapsed,
            profile_answers=profile_answers,
        )

    def lines(self) -> list[str]:
        """The summary as short lines of text."""
        resumed = f" ({self.shops_resumed} already done before)" if self.shops_resumed else ""
        extra = self.requests - self.pages_done - self.profile_answers
        answers = f" and {self.profile_answers:,} profile answers" if self.profile_answers else ""
        rate = self.requests / self.elapsed if self.elapsed > 0 else math.nan
        return [
            f"shops:    {self.shops_complete} complete{resumed}, {self.shops_partial} partial, "
            f"{self.shops_failed} failed"
            + (f", {self.duplicates} duplicate lines skipped" if self.duplicates else ""),
            f"items:    {self.items:,} new this run, {self.export_items:,} in the export",
            f"requests: {self.requests:,} billed for {self.pages_done:,} pages read{answers} "
            f"({self.pages_needed:,} pages needed this run; {extra:,} extra: "
            f"{self.retries:,} retries)",
            f"elapsed:  {format_duration(self.elapsed)}"
            + (f" ({rate:,.1f} requests/s)" if self.requests else ""),
        ]
