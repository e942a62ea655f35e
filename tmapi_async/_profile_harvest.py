"""Who sells, for every shop of a harvest: each shop's profile and category tree.

A :class:`ProfileHarvest` runs beside the items' :class:`~tmapi_async.Harvest`, on the
same client (so the same throttle, budget, retries and key): :meth:`ProfileHarvest.tee`
passes the shop list through to the items harvest and hands each shop to a few workers,
which ask the two endpoints the journal does not hold yet and record each answer as it
comes (a rerun asks nothing twice).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ._errors import FatalError, InvalidParameterError, TmapiError
from ._harvest import ShopSource, _aiter
from ._profiles import SHOP_CATEGORY, SHOP_INFO, shop_query
from ._protocol import ShopQuery
from ._request import Endpoint
from ._shop_profile import ShopCategories, ShopProfile

__all__ = ["ProfileHarvest", "ProfileJournal", "ProfileProgress", "ProfileSource"]

T = TypeVar("T")

#: The answers a shop's row is made of, by the journal's name for each.
_PARTS: tuple[tuple[str, Endpoint[Any]], ...] = (
    ("shop_info", SHOP_INFO),
    ("category", SHOP_CATEGORY),
)


class ProfileSource(Protocol):
    """What a profile harvest needs from a client (a Client or a TokenPool)."""

    @property
    def concurrency(self) -> int:
        """The most requests in flight: as many workers ask profiles."""

    async def fetch_endpoint(
        self, endpoint: Endpoint[T], query: str, shop_url: str
    ) -> tuple[T, int]:
        """Ask one endpoint about a shop: its data and the requests it took."""


class ProfileJournal(Protocol):
    """Where a profile harvest records each answer (an ``export.ShopsJournal``)."""

    async def open_profile(self, shop_url: str) -> frozenset[str] | None:
        """The answers held for ``shop_url`` (``"shop_info"``, ``"category"``); ``None``
        once its row is written."""

    async def record_part(
        self, shop_url: str, part: str, answer: ShopProfile | ShopCategories
    ) -> bool:
        """Persist one answer; returns whether the shop's row is now written."""


@dataclass(slots=True)
class ProfileProgress:
    """Counters of a profile harvest."""

    written: int = 0  #: shops whose row this run wrote
    answers: int = 0  #: answers received and recorded this run (profiles and trees)
    resumed: int = 0  #: shops written by an earlier run: nothing asked
    failed: dict[str, TmapiError] = field(default_factory=dict)  #: shop → why it has no row


class ProfileHarvest:
    """Both answers for every shop given, through ``client``, into ``journal``.

    Feed it with :meth:`tee` (or :meth:`put` and :meth:`finish`) while :meth:`run` runs.
    A shop whose answer fails for good is left without a row (in ``progress.failed``;
    a rerun asks again); a fatal error stops asking and :meth:`run` raises it.
    """

    def __init__(
        self, client: ProfileSource, journal: ProfileJournal, *, workers: int | None = None
    ) -> None:
        self._client = client
        self._journal = journal
        self._workers = max(1, workers if workers is not None else client.concurrency)
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=self._workers)
        self._seen: set[str] = set()
        self._error: BaseException | None = None  # what stopped it: fatal, or the journal
        self._finished = False
        self.progress = ProfileProgress()

    async def tee(self, shops: ShopSource) -> AsyncIterator[str | ShopQuery]:
        """Yield every entry of ``shops`` (for the items harvest), handing each shop to
        this harvest too; :meth:`finish` once the list ends."""
        async for entry in _aiter(shops):
            await self.put(entry.shop_url if isinstance(entry, ShopQuery) else entry)
            yield entry
        await self.finish()

    async def put(self, shop_url: str) -> None:
        """Ask about ``shop_url`` (once; a line that is no shop is left to the items
        harvest, which reports it)."""
        try:
            home, _ = shop_query(shop_url)
        except InvalidParameterError:
            return
        if home not in self._seen:
            self._seen.add(home)
            await self._queue.put(home)

    async def finish(self) -> None:
        """No more shops: the workers end once the queue is done (once; later calls
        do nothing)."""
        if self._finished:
            return
        self._finished = True
        for _ in range(self._workers):
            await self._queue.put(None)

    async def run(self) -> None:
        """Work until :meth:`finish` and every shop is done.

        Raises:
            FatalError: the client stopped (a bad key, the balance, the budget, a stop).
            Exception: the journal could not record an answer (the state or the shops
                file cannot be written): nothing more is asked; a rerun resumes.
        """
        await asyncio.gather(*(self._worker() for _ in range(self._workers)))
        if self._error is not None:
            raise self._error

    async def _worker(self) -> None:
        while (shop_url := await self._queue.get()) is not None:
            if self._error is not None:
                continue  # stopped: only drain the queue, so that no put() waits forever
            try:
                await self._shop(shop_url)
            except FatalError as error:
                self._error = self._error or error
            except Exception as error:  # the journal failed: stop asking, lose nothing
                self._error = self._error or error

    async def _shop(self, shop_url: str) -> None:
        held = await self._journal.open_profile(shop_url)
        if held is None:
            self.progress.resumed += 1
            return
        query = shop_query(shop_url)[1]
        for part, endpoint in _PARTS:
            if part in held:
                continue
            try:
                answer, _sent = await self._client.fetch_endpoint(endpoint, query, shop_url)
            except FatalError:
                raise
            except TmapiError as error:
                self.progress.failed[shop_url] = error
                return
            self.progress.answers += 1
            if await self._journal.record_part(shop_url, part, answer):
                self.progress.written += 1
