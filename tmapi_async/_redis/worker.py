"""A worker: serves every harvest submitted to a Redis, with the one harvest engine.

For each open harvest the worker runs a :class:`~tmapi_async._harvest.Harvest` over
an async iterable of the shops it takes from the harvest's stream, with a
:class:`~.journal.RedisJournal`: pages resume from and commit to Redis, a finished shop is
recorded and acknowledged there. A heartbeat renews the shops the worker holds (and
its entry in the workers hash); shops idle for three heartbeats are another worker's
to take. A stop lets the requests already sent finish and commit, then hands the
shops still held back at once.

Fencing: every commit proves in its script that this worker still holds the shop, so
a worker that lost a shop (frozen past the take-over, say) has its late commits
refused and drops the shop at once; and no request leaves while the last confirmed
heartbeat is older than the take-over allows (:class:`OwnershipGate`), so a worker
that wakes from a freeze learns which shops it lost before it sends anything more.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final

# Re-exported: the names a worker's client is built with.
from .._admission import POOL_WITHOUT_CAP as POOL_WITHOUT_CAP
from .._admission import CappedAdmission as CappedAdmission
from .._errors import (
    CorruptRecord,
    FatalError,
    HarvestGone,
    HarvestStopped,
    InvalidParameterError,
    RedisUnavailableError,
)
from .._harvest import Harvest
from .._shop import ShopResult
from .control import WorkerControls
from .journal import RedisJournal
from .queue import PREFIX, HarvestQueue, _text, opened_key, pulse_key
from .scripts import WORKER_BEAT

if TYPE_CHECKING:
    from .._reader import ShopReader
    from .connection import RedisConnection

_log = logging.getLogger("tmapi_async.redis.worker")

HEARTBEAT: Final = 1.0  #: seconds between renewals of the shops a worker holds
TAKE_OVER_AFTER: Final = 3  #: heartbeats a shop may miss before another worker takes it
STOP_GRACE: Final = 8.0  #: seconds a stopping worker waits for requests already sent
CANCEL_GRACE: Final = 1.0  #: seconds then given to what was cancelled to end
# Shops claimed per scan step (each looks at up to 10): a claimed shop must be worked on
# at once, or it would sit unrenewed and be taken over again.
_TAKE_OVER_COUNT: Final = 1
_OPENED_READ: Final = 100  # "opened" entries read at once


def workers_key(prefix: str = PREFIX) -> str:
    """The hash of live workers: id → ``"<redis time> <JSON>"``."""
    return f"{prefix}:workers"


class OwnershipGate:
    """Whether this worker's hold on its shops was confirmed recently enough to send.

    The heartbeat confirms the hold (and learns which shops were lost) every
    ``heartbeat`` seconds; another worker may take a shop once it stayed unrenewed for
    ``TAKE_OVER_AFTER`` heartbeats. A request may leave only while the last
    confirmation is younger than that, less a heartbeat of margin: a worker that was
    frozen (a stolen VM, SIGSTOP) or cut off from Redis sends nothing until its next
    heartbeat has told it which shops are still its own.
    """

    def __init__(
        self, heartbeat: float = HEARTBEAT, *, clock: Callable[[], float] | None = None
    ) -> None:
        self.window = max(TAKE_OVER_AFTER - 1, 1) * heartbeat
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._confirmed = -float("inf")
        self._renewed = asyncio.Event()

    def confirmed(self) -> None:
        """The heartbeat renewed every shop still held (and dropped those lost)."""
        self._confirmed = self._clock()
        self._renewed.set()

    def fresh(self) -> bool:
        return self._clock() - self._confirmed <= self.window

    async def wait(self) -> None:
        """Return once the hold is fresh (at once, almost always)."""
        while not self.fresh():
            self._renewed.clear()
            await self._renewed.wait()


class RedisWorker:
    """Serve every open harvest of a Redis until :meth:`stop`.

    Args:
        conn: the connection (its client also reads the streams).
        client: the API client (a Client or a TokenPool); its throttles must be the
            shared ones, gated by ``gate``.
        gate: the worker's :class:`OwnershipGate`, which the client's admissions wait on
            (default: one of its own, which then gates nothing the client sends).
        worker_id: names this worker (consumer name, workers hash); default host-pid-random.
        heartbeat: seconds between renewals; shops idle for ``TAKE_OVER_AFTER``
            heartbeats are taken over.
        max_deliveries: deliveries after which a shop is given up (dead letter).
        on_event: receives one line per event worth telling (started, shop finished...).
        on_shop: receives each shop finished here, with its harvest's id.
    """

    def __init__(
        self,
        conn: RedisConnection,
        client: ShopReader,
        *,
        gate: OwnershipGate | None = None,
        worker_id: str | None = None,
        heartbeat: float = HEARTBEAT,
        max_deliveries: int = 5,
        prefix: str = PREFIX,
        on_event: Callable[[str], None] | None = None,
        on_shop: Callable[[str, ShopResult], None] | None = None,
    ) -> None:
        self._conn = conn
        self._redis = conn.client
        self._client = client
        self.gate = gate or OwnershipGate(heartbeat)
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
        self._heartbeat = heartbeat
        self._max_deliveries = max_deliveries
        self._prefix = prefix
        self._tell = on_event or (lambda line: None)
        self._on_shop = on_shop
        self._stopping = asyncio.Event()
        self._engines: dict[str, tuple[Harvest, RedisJournal, asyncio.Task[None]]] = {}
        self._beat = conn.script(WORKER_BEAT)
        self._opened = "0-0"  # the last entry of the "opened" stream seen
        self._control = WorkerControls(self._redis, prefix, self._tell)
        self.fatal: FatalError | None = None
        self.shops_done = 0
        # No heartbeat script from any worker for this long: Redis was away (frozen,
        # restarted) and every shop looks idle; Redis then holds take-overs back.
        self._pulse_gap_ms = int(2 * heartbeat * 1000)

    def stop(self) -> None:
        """Send nothing more; let requests already sent finish; hand shops back."""
        self._stopping.set()
        for harvest, _journal, _task in self._engines.values():
            harvest.stop()

    async def run(self) -> None:
        """Serve until stopped (or a fatal error, which is raised after the hand-back)."""
        beat = asyncio.create_task(self._beat_forever(), name="tmapi-worker-heartbeat")
        try:
            try:
                with self._conn.boundary():
                    await self._beat_once()
                    self._opened = await self._last_opened()
                    self._tell(f"worker {self.worker_id} ready")
                    while not self._stopping.is_set() and self.fatal is None:
                        await self._start_engines()
                        await self._until_opened()
            except RedisUnavailableError as error:  # away for longer than we wait for it
                self.fatal = self.fatal or error
            await self._wind_down()
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._redis.hdel(workers_key(self._prefix), self.worker_id)
        if self.fatal is not None:
            raise self.fatal

    # -- harvests ------------------------------------------------------------------------

    async def _last_opened(self) -> str:
        last = await self._redis.xrevrange(opened_key(self._prefix), count=1)
        return _text(last[0][0]) if last else "0-0"

    async def _until_opened(self) -> None:
        """Wait until a harvest is opened (workers start on it at once, all of them),
        a heartbeat at most, or the stop."""
        stopping = asyncio.ensure_future(self._stopping.wait())
        reading = asyncio.ensure_future(
            self._redis.xread(
                {opened_key(self._prefix): self._opened},
                count=_OPENED_READ,
                block=int(self._heartbeat * 1000),
            )
        )
        try:
            await asyncio.wait({stopping, reading}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not reading.done():
            reading.cancel()  # stopping: the read ends within its block anyway
            await asyncio.wait({reading}, timeout=self._heartbeat + CANCEL_GRACE)
            return
        answer: Any = reading.result()
        for _stream, entries in answer or ():
            if entries:
                self._opened = _text(entries[-1][0])

    async def _start_engines(self) -> None:
        for hid in await self._control.open_ids():
            if hid in self._engines:
                continue
            queue = HarvestQueue(
                self._conn, hid, prefix=self._prefix, max_deliveries=self._max_deliveries
            )
            if await queue.state() != "open" or (await queue.counts()).finished:
                continue
            try:  # a corrupt record fails its harvest, not the worker
                listing, max_pages = await self._control.listing(queue)
                journal = RedisJournal(queue, listing.page_size, self.worker_id, fence=self.gate)
                source = self._control.source(hid, self._client)
                source.held = journal.message_ids
                harvest = Harvest(
                    source,
                    self._shops(journal),
                    journal=journal,
                    keep_items=False,
                    # Only the shops it works on: another worker takes the rest at once.
                    max_open_shops=self._client.concurrency,
                    listing=listing,
                    max_pages=max_pages,
                )
                journal.on_lost = functools.partial(self._lost, harvest)
            except (CorruptRecord, InvalidParameterError) as error:
                self._control.ended(hid)
                await self._control.fail(queue, error)
                continue
            task = asyncio.create_task(self._serve(hid, harvest), name=f"tmapi-harvest-{hid}")
            self._engines[hid] = (harvest, journal, task)

    async def _serve(self, hid: str, harvest: Harvest) -> None:
        try:
            async for result in harvest:
                self.shops_done += 1
                self._tell(f"{result.status} {result.shop_url} ({result.item_count} items)")
                if self._on_shop is not None:
                    self._on_shop(hid, result)
        except HarvestStopped:
            pass
        except HarvestGone:
            # Forgotten, expired, or Redis lost its data: its coordinator resubmits.
            self._tell(f"harvest {hid} is gone from Redis: dropped")
        except FatalError as error:
            self.fatal = self.fatal or error
            self._stopping.set()
        except Exception as error:  # Redis failed under the journal: stop, hand back
            if await self._control.forgotten(hid):
                self._drop(hid, "forgotten")  # its keys were deleted under it: quietly
                return
            _log.error("harvest %s stopped: %s", hid, error)
            self.fatal = self.fatal or self._conn.unavailable(error)
            self._stopping.set()
        finally:
            engine = self._engines.pop(hid, None)
            if engine is not None:
                await self._hand_back(engine[1])
            self._control.ended(hid)
            if engine is not None and engine[1].gone:
                with contextlib.suppress(Exception):
                    await self._control.sweep(hid)  # what a late commit wrote back

    def _drop(self, hid: str, reason: str) -> None:
        """End harvest ``hid`` here (cancelled, forgotten, failed); serve the others."""
        engine = self._engines.get(hid)
        self._control.drop(hid, reason)
        if engine is not None:
            if reason == "forgotten":
                engine[1].gone = True
                engine[1].held.clear()  # nothing left to renew or hand back
            engine[0].stop()

    async def _wind_down(self) -> None:
        """Stop every engine; wait for the requests already sent; hand shops back."""
        engines = list(self._engines.values())
        for harvest, _journal, _task in engines:
            harvest.stop()
        tasks = [task for *_, task in engines]
        if tasks:
            _done, late = await asyncio.wait(tasks, timeout=STOP_GRACE)
            for task in late:
                task.cancel()
            if late:  # bounded: a Redis read that ignores its cancel must not hold the exit
                await asyncio.wait(late, timeout=CANCEL_GRACE)

    def _lost(self, harvest: Harvest, url: str) -> None:
        """Another worker holds the shop of ``url`` now: stop working on it at once."""
        harvest.abandon(url)
        self._tell(f"dropped {url}: no longer held here (taken over, or gone)")

    async def _hand_back(self, journal: RedisJournal) -> None:
        with contextlib.suppress(Exception):
            await journal.settle()  # the commits still riding go before the hand-back
        held = list(journal.held)
        journal.held.clear()
        if held:
            with contextlib.suppress(Exception):
                count = await journal.queue.hand_back(self.worker_id, held)
                self._tell(f"handed back {count} shops")

    # -- the shops of one harvest, for its engine ----------------------------------------

    async def _shops(self, journal: RedisJournal) -> AsyncIterator[str]:
        """Shops for the engine, one each time it has room for one: this worker's
        leftovers, then shops of dead workers, then new ones.

        The take-over scan keeps its cursor and runs through the whole pending list
        every heartbeat, so a dead worker's shop is found however many live ones are
        pending before it. Ends when the harvest is finished, or when a shop comes
        again that this engine already harvested (submitted again after failing): the
        engine ends, and the next one takes it from this worker's pending shops.
        """
        queue, me = journal.queue, self.worker_id
        loop = asyncio.get_running_loop()
        seen: set[str] = set()
        idle_ms = int(TAKE_OVER_AFTER * self._heartbeat * 1000)
        next_scan, cursor = 0.0, "0-0"
        leftovers = await queue.read_shops(me, count=1000, own=True)
        while not self._stopping.is_set():
            await self._control.gate(queue.hid).wait()  # paused or held back: no new shop
            if leftovers:
                batch, leftovers = leftovers, []
            elif loop.time() >= next_scan:
                cursor, batch = await queue.take_over(
                    me,
                    min_idle_ms=idle_ms,
                    count=_TAKE_OVER_COUNT,
                    cursor=cursor,
                    pulse_gap_ms=self._pulse_gap_ms,
                )
                if cursor == "0-0" and not batch:
                    next_scan = loop.time() + self._heartbeat  # scanned it all: rest
            else:  # a new shop with its hash in one round trip, else wait for one
                batch = await queue.take_shops(me) or await queue.read_shops(
                    me, count=1, block_ms=int(self._heartbeat * 1000)
                )
                if not batch and (await queue.counts()).finished:
                    return
            for delivery in batch:
                if delivery.deliveries > queue.max_deliveries:
                    await queue.dead_letter(me, delivery)
                    self._tell(f"failed {delivery.shop_url}: delivered too often (dead letter)")
                    continue
                if delivery.shop_url in seen or delivery.shop_url in journal.message_ids:
                    return  # submitted again: the next engine takes it
                seen.add(delivery.shop_url)
                journal.message_ids[delivery.shop_url] = delivery.message_id
                journal.held.add(delivery.message_id)
                if delivery.fields is not None:
                    journal.fields[delivery.shop_url] = delivery.fields
                yield delivery.shop_url

    # -- heartbeat -----------------------------------------------------------------------

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                await self._beat_once()
            except Exception as error:  # the next beat tries again
                if not self._conn.outage.gave_up:  # else the worker stops and says why
                    _log.warning("heartbeat failed: %s", error)

    async def _beat_once(self) -> None:
        held = sum(len(journal.held) for _h, journal, _t in self._engines.values())
        about = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "shops": held,
            "done": self.shops_done,
            "sent": self._client.requests,
        }
        hold_ms = int(TAKE_OVER_AFTER * self._heartbeat * 1000)
        await self._conn.call(
            self._beat,
            [workers_key(self._prefix), pulse_key(self._prefix)],
            [self.worker_id, json.dumps(about), self._pulse_gap_ms, hold_ms],
        )
        now = asyncio.get_running_loop().time()
        for hid, reason in await self._control.refresh(list(self._engines), now):
            self._drop(hid, reason)
        for harvest, journal, _task in list(self._engines.values()):
            lost = await journal.queue.heartbeat(self.worker_id, list(journal.held))
            for url in journal.lost(lost):  # another worker has it now: stop at once
                self._lost(harvest, url)
        self.gate.confirmed()


async def read_workers(
    redis: Any, prefix: str = PREFIX
) -> tuple[int, dict[str, tuple[int, dict[str, Any]]]]:
    """Redis's clock now, and every worker's last heartbeat (Redis time) and report."""
    now = int((await redis.time())[0])
    workers = {}
    for raw_id, raw in (await redis.hgetall(workers_key(prefix))).items():
        beat, _, about = _text(raw).partition(" ")
        with contextlib.suppress(ValueError):
            workers[_text(raw_id)] = (int(beat), json.loads(about))
    return now, workers


def alive(now: int, beat: int, heartbeat: float = HEARTBEAT) -> bool:
    """Whether a worker that beat at ``beat`` still counts as alive at ``now``."""
    return now - beat <= max(2, int(TAKE_OVER_AFTER * heartbeat))
