"""The coordinator of a harvest through Redis: submit the shops, export the results.

:class:`RedisHarvest` is what ``harvest --redis`` iterates instead of a local
:class:`~tmapi_async._harvest.Harvest` (same face: ``progress``, ``stop()``, an async
iterator of :class:`ShopResult`). It submits the shops (the same state file is the
same harvest, known by the random id kept in it: a rerun submits nothing twice, shops
that failed are tried again, and a fresh state file is a fresh harvest),
starts local worker processes if asked, and writes every committed page into the
export journal exactly once: its own pending results first (after a kill), then new
ones; pages the journal holds are skipped; the journal commits, synced to disk,
*before* Redis is told the results are taken (``XACK``), so a kill or a power cut at
any instant loses nothing.

The state file is the truth: it keeps the epoch of the harvest's Redis record and the
last result it took. A record that is missing (expired, forgotten, Redis emptied) is
made again and the shops not complete in the state file are submitted again; a record
of another epoch is refused; a Redis whose results went back in time (an old snapshot)
is said and ridden out. A record lost during the run (Redis restarted empty, flushed)
is made again in the same run, and the shops this run submitted that have no final
result yet are submitted again, from the state file: the export still ends exact.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

import msgspec

from .._errors import (
    HarvestGone,
    HarvestStopped,
    InvalidParameterError,
    RedisHarvestError,
    RedisUnavailableError,
    error_from_record,
)
from .._limits import Limits
from .._listing import Listing, listing_given
from .._models import ShopItem, ShopItemsPage
from .._pool import split_tokens
from .._progress import HarvestProgress
from .._protocol import normalise_shop_url
from .._shop import ShopResult
from .connection import DEFAULT_OUTAGE, Outage, RedisConnection, open_connection
from .control import (
    DEFAULT_KEEP,
    check,
    configure,
    detach,
    forgotten_under,
    retire,
    was_forgotten,
)
from .gate import DEFAULT_MAX_BACKLOG
from .queue import HarvestQueue, PageCommitted, Result, ShopFinished
from .throttle import RedisThrottle
from .worker import alive, read_workers

if TYPE_CHECKING:
    from ..export import ExportJournal

_SUBMIT_BATCH: Final = 200  # shops per submit round trip
_READ_BATCH: Final = 500  # results per read
_LINGER: Final = 0.1  # seconds to let results gather when they come one by one
_RECOVERIES: Final = 3  # records lost in one run that are made again; then it stops
_decode_items = msgspec.json.Decoder(list[ShopItem]).decode


@dataclass(slots=True)
class _OpenShop:
    """A shop the export has results of in this run: what it holds already."""

    seen: set[str]
    pages: set[int]
    complete: bool = False


class Workers(Protocol):
    """Worker processes a harvest starts and stops with it (``harvest --workers N``)."""

    async def start(self) -> None:
        """Start them."""

    async def stop(self) -> None:
        """Stop them (they hand their shops back)."""


class RedisHarvest:
    """A harvest run by workers through Redis, exported here.

    Args:
        url: the Redis URL.
        journal: the export journal (its state file names the harvest).
        output: the export's path (shown by ``status``).
        shops: the SHOPS lines, read lazily.
        listing: the listing every shop is read with (``params``: its record, the older
            keyword); ``max_pages`` apart.
        workers: local worker processes to start (None: none).
        token: the tokens (separated by commas) whose shared limits to set.
        limits: the ``rate``, ``burst`` and ``concurrency`` to set in Redis for every
            process of each token in ``token`` (a limit not set stays as Redis holds
            it; ``max_requests`` is each worker's own and is not shared).
        on_event: receives a line for things worth telling (workers alive changed,
            waiting for Redis, a harvest record made again).
        keep: seconds a finished harvest's keys are kept (then they expire).
        max_backlog: results not yet exported at which workers stop fetching
            (None: no bound).
        redis_outage: seconds to wait for a Redis that went away before stopping.
    """

    def __init__(
        self,
        url: str,
        journal: ExportJournal,
        shops: AsyncIterable[str],
        *,
        output: Path,
        listing: Listing | None = None,
        params: Mapping[str, object] | None = None,
        max_pages: int | None = None,
        workers: Workers | None = None,
        token: str | None = None,
        limits: Limits | None = None,
        on_event: Callable[[str], None] | None = None,
        poll: float = 0.5,
        keep: float = DEFAULT_KEEP,
        max_backlog: int | None = DEFAULT_MAX_BACKLOG,
        redis_outage: float = DEFAULT_OUTAGE,
    ) -> None:
        self._keep, self._max_backlog = keep, max_backlog
        self._url = url
        # Only a limit set is shared: the others stay as Redis holds them.
        shared = Limits() if limits is None else limits.without_budget()
        if shared != Limits() and not token:
            raise InvalidParameterError("limits to share need the token they limit")
        self._limits = None if shared == Limits() or not token else (token, shared)
        self._journal = journal
        self._output = output
        self._input = shops
        self._listing = listing_given(listing, params)
        self._max_pages = max_pages
        self._workers = workers
        self.on_event = on_event or (lambda line: None)
        self._poll = poll
        self._redis_outage = redis_outage
        self._outage = Outage(url, redis_outage)  # the connection's, once it is open
        self.hid = journal.harvest_id
        self.progress = HarvestProgress()
        self._workers_alive = -1  # unknown until the first look
        self._stopping = asyncio.Event()
        self._results: asyncio.Queue[ShopResult] = asyncio.Queue()
        self._shops: dict[str, _OpenShop] = {}
        self._submitted_all = False
        self._closing = False  # the run is ending: the export stops at its next read
        self._shop_requests = 0  # requests the finished shops took (in this harvest)
        self._started = False
        self._epoch = ""
        self._submitted: list[str] = []  # shops submitted to Redis in this run
        self._final: set[str] = set()  # shops with a final result in this run
        self._recovering = asyncio.Lock()
        self._recoveries = 0

    def stop(self) -> None:
        """Stop: submit and export nothing more; local workers hand their shops back.
        Iteration then ends by raising :class:`HarvestStopped` (a rerun resumes)."""
        self._stopping.set()

    def __aiter__(self) -> AsyncIterator[ShopResult]:
        return self._run()

    async def _run(self) -> AsyncIterator[ShopResult]:
        if self._started:
            raise RuntimeError("a RedisHarvest can be iterated once")
        self._started = True
        conn = await open_connection(self._url, redis_outage=self._redis_outage)
        self._outage = conn.outage
        conn.outage.listeners.append(self._redis_news)
        try:
            with conn.boundary():
                async for result in self._run_on(conn):
                    yield result
        except HarvestGone:
            raise RedisHarvestError(
                f"Redis lost harvest {self.hid} again and again during the run (it came "
                "back empty, was flushed, or the harvest was forgotten): rerun the same "
                "command; it submits the harvest again from the state file, and nothing "
                "exported is fetched again"
            ) from None
        except RedisUnavailableError:
            if self._epoch:  # submitted: its keys gone is a forget, not an outage
                await forgotten_under(self.queue)
            raise
        finally:
            conn.outage.listeners.remove(self._redis_news)
            await conn.aclose()

    def _redis_news(self, line: str) -> None:
        """The outage's lines go to the display, which shows how long it is waiting."""
        self.progress.redis_away_since = self._outage.since
        self.on_event(line)

    async def _run_on(self, conn: RedisConnection) -> AsyncIterator[ShopResult]:
        self.queue = HarvestQueue(conn, self.hid)
        if self._limits is not None:
            await _set_limits(self._url, *self._limits, redis_outage=self._redis_outage)
        await self._check_record()
        output = str(self._output.resolve())
        try:
            self._epoch = await self.queue.create(
                output=output, listing=self._listing, max_pages=self._max_pages
            )
        except ValueError as error:
            raise RedisHarvestError(f"{error}: rerun with the same listing options") from None
        self._journal.remember("redis_epoch", self._epoch)
        self._journal.flush(durable=True)
        await configure(self.queue, keep=self._keep, max_backlog=self._max_backlog)
        await check(self.queue)  # attached from now on: forget waits for this run
        if self._workers is not None:
            await self._workers.start()
        submitter = asyncio.create_task(self._submit_all(), name="tmapi-submit")
        exporter = asyncio.create_task(self._export_all(), name="tmapi-export")
        submitted = False
        try:
            while True:
                getter = asyncio.ensure_future(self._results.get())
                watched = {getter, exporter}
                if not submitted:
                    watched.add(submitter)
                await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                if submitter.done() and not submitted:
                    submitted = True
                    if submitter.exception() is not None:
                        getter.cancel()
                        submitter.result()  # raises what stopped the submission
                if getter.done():
                    yield getter.result()
                    continue
                getter.cancel()
                if not exporter.done():
                    continue  # the submission ended: the export goes on
                while not self._results.empty():
                    yield self._results.get_nowait()
                break
            exporter.result()  # raises what stopped the export (Redis, the journal)
            if self._stopping.is_set():
                raise HarvestStopped("harvest stopped on request")
            await self.queue.set_state("finished")
            await retire(self.queue, self._keep)  # kept for status, then expires
        finally:
            submitter.cancel()
            # The export ends by itself within one blocking read: cancelling a read
            # blocked in redis-py could leave the task waiting on its connection.
            self._closing = True
            await asyncio.wait({exporter}, timeout=4 * self._poll + _LINGER + 1.0)
            exporter.cancel()
            await asyncio.gather(submitter, exporter, return_exceptions=True)
            if self._workers is not None:
                await self._workers.stop()
            with contextlib.suppress(Exception):
                await detach(self.queue)

    async def _check_record(self) -> None:
        """Compare the harvest's Redis record with what the state file knows of it."""
        known = self._journal.recall("redis_epoch")
        if known is None:
            return  # never submitted: a new harvest
        epoch = await self.queue.epoch()
        if epoch is None:
            self.on_event(
                f"Redis has no record of harvest {self.hid} (it expired or was forgotten, "
                "or Redis lost its data): submitting it again from the state file; what "
                "the export holds is not fetched again"
            )
        elif epoch != known:
            raise RedisHarvestError(
                f"Redis's record of harvest {self.hid} does not match this state file "
                f"(epoch {epoch}, the state file knows {known}): a copy of the state file "
                "was used by another coordinator, or Redis was restored from another time. "
                f"Forget it (tmapi-async forget {self.hid}) and rerun to submit it again "
                "from the state file"
            )
        else:
            acked = self._journal.recall("redis_acked")
            last = await self.queue.last_result_id()
            if acked is not None and _entry_key(last) < _entry_key(acked):
                self.on_event(
                    f"Redis went back in time for harvest {self.hid} (its results end at "
                    f"{last}, the state file took {acked}): restored from an older "
                    "snapshot? Going on: what the export holds is not written twice, the "
                    "pages Redis forgot are fetched again"
                )

    # -- submitting ----------------------------------------------------------------------

    async def _submit_all(self) -> None:
        batch: list[str] = []
        seen: set[str] = set()
        progress = self.progress
        async for line in self._input:
            if self._stopping.is_set():
                break
            progress.shops_seen += 1
            try:
                url = normalise_shop_url(line)
            except InvalidParameterError as error:
                await self._finished(ShopResult(shop_url=line, status="failed", error=error))
                continue
            if url in seen:
                progress.duplicates += 1
                continue
            seen.add(url)
            if self._journal.shop_status(url) == "complete":
                checkpoint = await self._journal.open_shop(url)
                progress.shops_resumed += 1
                pages = len(checkpoint.pages) if checkpoint else 0
                count = checkpoint.item_count if checkpoint else 0
                await self._finished(ShopResult(shop_url=url, pages=pages, item_count=count))
                continue
            batch.append(url)
            if len(batch) >= _SUBMIT_BATCH:
                await self._submit(batch)
                batch = []
        if batch and not self._stopping.is_set():
            await self._submit(batch)
        progress.input_exhausted = True
        self._submitted_all = True

    async def _submit(self, batch: list[str]) -> None:
        self._submitted += batch
        try:
            await self.queue.submit(batch)
        except HarvestGone:
            await self._recover()  # submits this batch again with the others

    async def _recover(self) -> None:
        """The harvest's record is gone (Redis came back empty, was flushed): make it
        again and submit again, from the state file, the shops of this run that have
        no final result; the export drops what it holds already.

        Raises:
            HarvestGone: lost too often in one run.
        """
        async with self._recovering:  # the submitter and the export may both notice
            if await self.queue.epoch() not in (None, self._epoch):
                return  # made again already
            if await was_forgotten(self.queue, self._epoch):
                await forgotten_under(self.queue)  # an operator's forget, not a lost Redis
            self._recoveries += 1
            if self._recoveries > _RECOVERIES:
                raise HarvestGone(f"harvest {self.hid} lost its record {_RECOVERIES} times")
            self.on_event(
                f"Redis lost harvest {self.hid} (it came back empty or was flushed): "
                "submitting it again from the state file; what the export holds is not "
                "written twice"
            )
            if self._limits is not None:
                await _set_limits(self._url, *self._limits, redis_outage=self._redis_outage)
            self._epoch = await self.queue.create(
                output=str(self._output.resolve()),
                listing=self._listing,
                max_pages=self._max_pages,
            )
            self._journal.remember("redis_epoch", self._epoch)
            self._journal.flush(durable=True)
            await configure(self.queue, keep=self._keep, max_backlog=self._max_backlog)
            again = [
                url
                for url in self._submitted
                if url not in self._final and self._journal.shop_status(url) != "complete"
            ]
            for start in range(0, len(again), _SUBMIT_BATCH):
                await self.queue.submit(again[start : start + _SUBMIT_BATCH])

    # -- exporting -----------------------------------------------------------------------

    async def _export_all(self) -> None:
        """Take results into the journal until every submitted shop is finished."""
        while not self._closing and await self._export_batch(pending=True):
            pass  # results read before a kill, not acknowledged: first, in order
        loop = asyncio.get_running_loop()
        next_look = 0.0
        outages = self._outage.ended
        while not self._stopping.is_set() and not self._closing:
            if outages != self._outage.ended:  # a read whose reply was lost is pending here
                outages = self._outage.ended
                while not self._closing and await self._export_batch(pending=True):
                    pass
            block = int(self._poll * 1000)
            try:
                exported = await self._export_batch(pending=False, block_ms=block)
            except HarvestGone:
                await self._recover()
                continue
            if 0 < exported < _READ_BATCH // 4:
                # Results trickle in: let a few gather, so that one read, one journal
                # commit and one acknowledgement serve many (each costs a round trip).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), _LINGER)
            if loop.time() >= next_look or not exported:
                next_look = loop.time() + self._poll
                try:
                    done = await self._look()
                except HarvestGone:
                    await self._recover()
                    continue
                if done and not await self._export_batch(pending=False):
                    return  # every shop finished and every result taken

    async def _export_batch(self, *, pending: bool, block_ms: int | None = None) -> int:
        """Export one batch of results; return how many there were."""
        results = await self.queue.read_results(
            pending=pending, count=_READ_BATCH, block_ms=block_ms
        )
        if not results:
            return 0
        for result in results:
            await self._apply(result)
        # On disk here before Redis lets the results go: a power cut must not lose them.
        self._journal.remember("redis_acked", results[-1].entry_id)
        self._journal.flush(durable=True)
        await self.queue.ack_results([result.entry_id for result in results])
        return len(results)

    async def _apply(self, result: Result) -> None:
        shop = self._shops.get(result.shop_url)
        if shop is None:
            checkpoint = await self._journal.open_shop(result.shop_url)
            shop = _OpenShop(
                seen=set(checkpoint.seen) if checkpoint else set(),
                pages=set(checkpoint.pages) if checkpoint else set(),
                complete=checkpoint is not None and checkpoint.status == "complete",
            )
            self._shops[result.shop_url] = shop
        if isinstance(result, PageCommitted):
            if not shop.complete:
                await self._take_page(result, shop)
            return
        del self._shops[result.shop_url]
        if shop.complete:
            return  # exported complete before: an older result must not undo it
        if result.status != "complete":
            now = (await self.queue.shop_fields(result.shop_url)).get("status")
            if now != result.status:
                return  # an outcome this run submitted again: the new one will come
        await self._journal.record_shop(_shop_result(result))
        await self._finished(_shop_result(result))

    async def _take_page(self, result: PageCommitted, shop: _OpenShop) -> None:
        items = _decode_items(result.items)
        fresh = [item for item in items if item.item_id not in shop.seen]
        if not fresh and result.page in shop.pages:
            return  # the journal holds this page already (a result read twice)
        shop.seen.update(item.item_id for item in fresh)
        shop.pages.add(result.page)
        answer = ShopItemsPage(
            page=result.page,
            page_size=result.page_size,
            total_count=result.total_count,
            items=items,
        )
        await self._journal.record_page(result.shop_url, result.page, answer, fresh)
        self.progress.pages_done += 1
        self.progress.pages_planned = max(self.progress.pages_planned, self.progress.pages_done)
        self.progress.items += len(fresh)

    async def _finished(self, result: ShopResult) -> None:
        self._final.add(result.shop_url)
        progress = self.progress
        self._shop_requests += result.requests
        progress.requests = max(progress.requests, self._shop_requests)
        progress.shop_finished(result.status)
        await self._results.put(result)

    async def _look(self) -> bool:
        """Look at the harvest and its workers; True when every submitted shop is finished.

        Raises:
            HarvestGone: the harvest's record is gone, or was made again (another epoch).
            HarvestEnded: cancelled, forgotten or failed under the coordinator.
        """
        if await self.queue.epoch() != self._epoch:
            raise HarvestGone(f"harvest {self.hid} lost its record in Redis")
        await check(self.queue)  # renews the attached marker; stops on a cancel
        counts = await self.queue.counts()
        now, workers = await read_workers(self.queue.redis)
        live = sum(1 for beat, _about in workers.values() if alive(now, beat))
        if live != self._workers_alive:
            alone = not live and self._workers is None
            hint = " (start some: tmapi-async worker --redis URL)" if alone else ""
            self.on_event(f"workers alive: {live}{hint}")
        self._workers_alive = live
        return self._submitted_all and (counts.finished or counts.submitted == 0)


async def _set_limits(url: str, token: str, limits: Limits, *, redis_outage: float) -> None:
    """Set the shared limits of each token in ``token`` (several are separated by
    commas) in Redis (the last to set them wins)."""
    for one in split_tokens(token):
        throttle = RedisThrottle(url, one, limits, redis_outage=redis_outage)
        await throttle.start()
        await throttle.aclose()


def _entry_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id (``"ms-seq"``) as something to compare."""
    ms, _, seq = entry_id.partition("-")
    return int(ms or 0), int(seq or 0)


def _shop_result(result: ShopFinished) -> ShopResult:
    return ShopResult(
        shop_url=result.shop_url,
        total_count=result.total_count,
        pages=result.pages,
        requests=result.requests,
        status=result.status,
        error=error_from_record(result.error) if result.error else None,
        item_count=result.item_count,
    )
