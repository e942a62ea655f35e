"""``HarvestProgress``: the live counters of one harvest, for progress displays,
summaries and metrics (a harvest in this process and one through Redis keep the same)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._shop import ShopStatus


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

    def shop_finished(self, status: ShopStatus) -> None:
        """Count a shop finished with ``status``: once in all, once by its status."""
        self.shops_done += 1
        if status == "complete":
            self.shops_complete += 1
        elif status == "partial":
            self.shops_partial += 1
        else:
            self.shops_failed += 1
