"""Counters a client and a harvest keep, for progress displays and summaries."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class HarvestProgress:
    """Live counters of one harvest; read them at any time (they are plain ints).

    Attributes:
        shops_seen: shop lines taken from the input so far (duplicates included).
        shops_done: shops finished, whatever their status.
        shops_complete, shops_partial, shops_failed: shops finished, by status.
        shops_resumed: shops an earlier run had already finished (not fetched again).
        duplicates: input lines naming a shop already harvested in this run.
        pages_done: pages answered (this run).
        pages_planned: pages the opened shops need, as far as known now.
        items: new products harvested (this run).
        requests: requests sent (each is billed), retries included.
        retries: requests that were retries of a failed one.
        started: ``time.monotonic()`` when the harvest started.
        redis_away_since: ``time.monotonic()`` since when Redis has been unreachable
            (a harvest through Redis waiting for it); None while it answers.
    """

    shops_seen: int = 0
    shops_done: int = 0
    shops_complete: int = 0
    shops_partial: int = 0
    shops_failed: int = 0
    shops_resumed: int = 0
    duplicates: int = 0
    pages_done: int = 0
    pages_planned: int = 0
    items: int = 0
    requests: int = 0
    retries: int = 0
    input_exhausted: bool = False
    redis_away_since: float | None = None  #: ``time.monotonic()`` since Redis is away
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        """Seconds since the harvest started."""
        return time.monotonic() - self.started
