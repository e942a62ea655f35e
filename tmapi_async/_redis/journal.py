"""A worker's journal: the pages of one harvest committed to Redis.

:class:`RedisJournal` is the :class:`~tmapi_async._journal.Journal` a worker's engine
reports to: a shop resumes from what Redis holds of it, each answered page is committed
there, a finished shop is recorded and its message acknowledged.

While the worker's hold on its shops is fresh (its heartbeat confirmed them within the
take-over margin, so no other worker can have taken one), a page's commit does not hold
the engine up: it rides on the worker's next round trip to Redis (``rides``), most
often the admission of its next request, and frees the leases released since. The
commit script still checks each page (the worker holds its shop, this read of it was
not committed before), so exactly-once holds however the commit travels. A refusal that
comes back drops the shop; an error stops the engine at its next call. While the hold
is not fresh, each commit is awaited, and a refusal is known before the next request.
A shop is finished only once the commits of its pages are answered.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from .._errors import HarvestGone, HarvestStopped, ShopTakenOver, error_record
from .._shop import ShopCheckpoint
from .leases import Carried, carry
from .queue import SHOP_GROUP, HarvestQueue, PageCommit
from .rides import flush

if TYPE_CHECKING:
    from .._admission import Fence
    from .._models import ShopItem, ShopItemsPage
    from .._shop import ShopResult
    from .rides import Ride

__all__ = ["RedisJournal"]

_encode_items = msgspec.json.Encoder().encode


class RedisJournal:
    """The :class:`~tmapi_async._journal.Journal` of one harvest in one worker.

    Args:
        queue: the harvest's queue.
        page_size: the listing's page size.
        consumer: the worker's id.
        fence: the worker's hold on its shops; while fresh, commits ride (None: every
            commit is awaited).
        on_lost: told the URL of a shop whose commit was refused (taken over), for the
            engine to drop it.
    """

    def __init__(
        self,
        queue: HarvestQueue,
        page_size: int,
        consumer: str,
        *,
        fence: Fence | None = None,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        self.queue = queue
        self.consumer = consumer
        self._page_size = page_size
        self._fence = fence
        self.on_lost = on_lost or (lambda url: None)  #: told each shop refused
        self._riding: dict[str, list[Ride]] = {}  # shop URL → its commits not answered
        self.failure: BaseException | None = None  #: what a riding commit met (raised next)
        self.message_ids: dict[str, str] = {}  #: shop URL → its message, while open here
        self.held: set[str] = set()  #: messages this worker holds (renews)
        #: shop URL → its hash, read when the shop was taken (so opening it costs nothing)
        self.fields: dict[str, dict[str, str]] = {}
        self._reads: dict[str, dict[int, int]] = {}  # shop URL → page → reads committed
        # Commits under way per shop: the engine may finish a shop while another of its
        # pages is still being committed, and a finished shop accepts no more pages.
        self._committing: dict[str, int] = {}
        self._committed = asyncio.Condition()
        self.gone = False  #: the harvest was forgotten: commit nothing more

    async def open_shop(self, shop_url: str) -> ShopCheckpoint | None:
        fields = self.fields.pop(shop_url, None)
        if fields is None:
            fields = await self.queue.shop_fields(shop_url)
        if fields.get("status"):  # finished elsewhere (a message delivered twice)
            await self._acknowledge(shop_url)
            return ShopCheckpoint(status="complete")
        reads = self.queue.reads_of(fields)
        self._reads[shop_url] = reads
        if not reads:
            return None
        return ShopCheckpoint(
            pages={page: int(fields.get(f"t{page}", "0")) for page in reads},
            page_size=int(fields.get("size", "0")) or self._page_size,
        )

    async def record_page(
        self, shop_url: str, page: int, answer: ShopItemsPage, new_items: Sequence[ShopItem]
    ) -> None:
        if self.gone:
            return
        self._raise_failure()
        message_id = self.message_ids.get(shop_url)
        if message_id is None:
            raise ShopTakenOver(f"{shop_url} is no longer held here")
        reads = self._reads.setdefault(shop_url, {})
        read = reads[page] = reads.get(page, 0) + 1  # a refetch after drift commits anew
        commit = PageCommit(
            shop_url,
            page,
            read,
            answer.total_count,
            answer.page_size or self._page_size,
            _encode_items(new_items),
            len(new_items),
            message_id,
        )
        carried = carry(self.queue.conn)
        if self._fence is not None and self._fence.fresh():
            riding = self.queue.commit_pages_later(self.consumer, [commit], carried)
            self._riding.setdefault(shop_url, []).append(riding)
            riding.answer.add_done_callback(
                functools.partial(self._answered, shop_url, riding, carried)
            )
            return
        self._committing[shop_url] = self._committing.get(shop_url, 0) + 1
        try:
            try:
                (verdict,) = await self.queue.commit_pages(self.consumer, [commit], carried)
            except BaseException:
                carried.failed()
                raise
            carried.done()
            self.queue.answer(shop_url, verdict)
        finally:
            left = self._committing[shop_url] = self._committing[shop_url] - 1
            if not left:  # a finish of the shop may be waiting for this
                async with self._committed:
                    self._committed.notify_all()

    def _answered(
        self, shop_url: str, riding: Ride, carried: Carried, answer: asyncio.Future[Any]
    ) -> None:
        """A riding commit's answer is back: a refusal drops its shop, an error is
        raised at the engine's next call."""
        rides = self._riding.get(shop_url, [])
        if riding in rides:
            rides.remove(riding)
            if not rides:
                del self._riding[shop_url]
        if answer.cancelled() or answer.exception() is not None:
            carried.failed()
            error = None if answer.cancelled() else answer.exception()
            self.failure = self.failure or error or HarvestStopped("a commit was cancelled")
            return
        carried.done()
        verdict = int(answer.result()[0])
        if verdict == -2:
            self.failure = self.failure or HarvestGone(
                f"harvest {self.queue.hid} has no record in Redis"
            )
        elif verdict == -1 and shop_url in self.message_ids:
            self.held.discard(self.message_ids.pop(shop_url))
            self._reads.pop(shop_url, None)
            self.on_lost(shop_url)

    def _raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    async def settle(self, shop_url: str | None = None) -> None:
        """Wait until the riding commits (of ``shop_url``, or all) are answered; those
        still waiting go now. (Not in the finish's own round trip: a script Redis lost
        meanwhile would be loaded and sent again after the finish had run.)"""
        if shop_url is None:
            rides = [riding for some in self._riding.values() for riding in some]
        else:
            rides = list(self._riding.get(shop_url, ()))
        if any(not riding.sent for riding in rides):
            await flush(self.queue.conn)
        if rides:
            await asyncio.wait([riding.answer for riding in rides])

    async def record_shop(self, result: ShopResult) -> None:
        if self.gone:
            return
        await self.settle(result.shop_url)
        self._raise_failure()
        if self._committing.get(result.shop_url):
            async with self._committed:
                await self._committed.wait_for(lambda: not self._committing.get(result.shop_url))
        self._committing.pop(result.shop_url, None)
        self._reads.pop(result.shop_url, None)
        message_id = self.message_ids.pop(result.shop_url, None)
        if message_id is None:
            raise ShopTakenOver(f"{result.shop_url} is no longer held here")
        self.held.discard(message_id)
        await self.queue.finish_shop(
            result.shop_url,
            (self.consumer, message_id),
            status=result.status,
            error="" if result.error is None else error_record(result.error),
            total_count=result.total_count,
            pages=result.pages,
            requests=result.requests,
            item_count=result.item_count,
        )

    def lost(self, message_ids: Sequence[str]) -> list[str]:
        """Forget the shops of ``message_ids`` (another worker holds them now); return
        their URLs, for the engine to drop."""
        gone = set(message_ids)
        self.held -= gone
        urls = [url for url, mid in self.message_ids.items() if mid in gone]
        for url in urls:
            del self.message_ids[url]
            self._reads.pop(url, None)
        return urls

    async def _acknowledge(self, shop_url: str) -> None:
        message_id = self.message_ids.pop(shop_url, None)
        if message_id is not None:
            self.held.discard(message_id)
            await self.queue.redis.xack(self.queue.shops_key, SHOP_GROUP, message_id)
