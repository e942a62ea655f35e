"""What a harvest tells a journal, so that a later run can resume where it stopped.

The harvest engine awaits these from the event loop, in this order for a shop:
``open_shop`` once, ``record_page`` for every page answered, ``record_shop`` when it
is finished. They are coroutines so that a journal may live in another process (a
Redis one, say); a local journal returns without suspending. A journal must make each
``record_page`` durable together with the items it carries (export position and page
in one transaction): that is what lets a run killed at any instant resume with every
item exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ._models import ShopItem, ShopItemsPage
from ._shop import ShopCheckpoint, ShopResult


class Journal(Protocol):
    """Where a harvest records its progress (see :mod:`tmapi_async.export`)."""

    async def open_shop(self, shop_url: str) -> ShopCheckpoint | None:
        """Return what earlier runs harvested of ``shop_url``, or ``None`` if nothing."""

    async def record_page(
        self, shop_url: str, page: int, answer: ShopItemsPage, new_items: Sequence[ShopItem]
    ) -> None:
        """Persist one answered page and its new items (not seen before in the shop)."""

    async def record_shop(self, result: ShopResult) -> None:
        """Persist that a shop is finished (complete, partial or failed)."""
