"""Delivery of a harvest through Redis: shops out to workers, committed pages back.

Keys of one harvest (``H`` is its id, random, kept in the coordinator's state file)::

    tmapi:harvests                 set      ids of every harvest submitted
    tmapi:opened                   stream   a harvest opened (workers wait on it)
    tmapi:h:H                      hash     output, params (JSON), state, epoch
    tmapi:h:H:members              set      shop URLs submitted (submit is idempotent)
    tmapi:h:H:shops                stream   one message per shop; group "workers"
    tmapi:h:H:shop:S               hash     per shop (S: hash of its URL): r<page> reads
                                            committed, t<page> total_count, size,
                                            status, error once finished
    tmapi:h:H:results              stream   committed pages and finished shops, in
                                            order; group "export" (the coordinator)
    tmapi:h:H:counts               hash     submitted, done, complete, partial, failed,
                                            pages, items
    tmapi:h:H:dead                 set      shops given up after too many deliveries
    tmapi:workers                  hash     worker id -> "<redis time> <JSON>"

A worker holds a shop (a pending message) by renewing it every heartbeat; another
takes it over once it stayed idle for three heartbeats. Pages are committed by one
script (:data:`~.scripts.COMMIT_PAGES`, several pages a call): each page idempotent per
(shop, page, read), and fenced: it commits only for the worker that holds the shop's
message now, so a late commit from a worker that lost its shop is refused
(:class:`ShopTakenOver`). No script
recreates a harvest whose record is gone (Redis lost its data, or it was forgotten):
they refuse, and the caller learns it (:class:`HarvestGone`). No key or value holds a
token.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from .._errors import (
    HarvestGone,
    InvalidParameterError,
    ShopTakenOver,
    TmapiError,
    error_from_record,
    error_record,
)
from .._listing import Listing, listing_given
from .._shop import ShopCheckpoint, ShopStatus
from . import scripts
from .connection import RedisConnection, execute_pipeline
from .records import Delivery as Delivery
from .records import HarvestCounts as HarvestCounts
from .records import PageCommit as PageCommit
from .records import PageCommitted as PageCommitted
from .records import Result as Result
from .records import ShopFinished as ShopFinished
from .records import _int, read_result, shop_status
from .records import _text as _text  # (read by the modules next to it)

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from .leases import Carried
    from .rides import Ride

PREFIX: Final = "tmapi"
SHOP_GROUP: Final = "workers"
RESULT_GROUP: Final = "export"
COORDINATOR: Final = "coordinator"  #: the consumer that exports a harvest's results
DEFAULT_MAX_DELIVERIES: Final = 5
_OPENED_KEPT: Final = 100  # entries of the "opened" stream kept: workers read only new ones


def pulse_key(prefix: str = PREFIX) -> str:
    """The fleet's pulse: when a worker last ran a heartbeat script (see ``scripts``)."""
    return f"{prefix}:pulse"


def opened_key(prefix: str = PREFIX) -> str:
    """The stream that tells waiting workers a harvest was opened (or reopened)."""
    return f"{prefix}:opened"


def _gone_if_nogroup(error: Exception, hid: str) -> Exception:
    """A missing stream or group (or one deleted under a blocked read) is a harvest
    that is gone; other errors stay."""
    if "NOGROUP" in str(error) or "UNBLOCKED" in str(error):
        return HarvestGone(f"harvest {hid} has no record in Redis")
    return error


def _holds(record: str, listing: Listing) -> bool:
    """Whether a harvest's ``params`` record holds ``listing`` (in any version's spelling)."""
    try:
        return Listing.from_record(record) == listing
    except InvalidParameterError:
        return False


class HarvestQueue:
    """One harvest's keys and the scripts that move its shops and results.

    ``conn`` is the connection (or, for a caller holding only a redis-py client, that
    client, wrapped in the seam here).
    """

    def __init__(
        self,
        conn: RedisConnection | Redis,
        hid: str,
        *,
        prefix: str = PREFIX,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
    ) -> None:
        if max_deliveries < 1:
            raise ValueError(f"max_deliveries must be >= 1, got {max_deliveries!r}")
        self.conn = conn if isinstance(conn, RedisConnection) else RedisConnection.around(conn)
        self.redis = self.conn.client
        self.hid = hid
        self.prefix = prefix
        self.max_deliveries = max_deliveries
        base = f"{prefix}:h:{hid}"
        self.meta_key = base
        self.members_key = f"{base}:members"
        self.shops_key = f"{base}:shops"
        self.results_key = f"{base}:results"
        self.counts_key = f"{base}:counts"
        self.dead_key = f"{base}:dead"
        script = self.conn.script
        self._submit = script(scripts.SUBMIT)
        self._commit = script(scripts.COMMIT_PAGES)
        self._finish = script(scripts.FINISH_SHOP)
        self._heartbeat = script(scripts.HEARTBEAT)
        self._take_over = script(scripts.TAKE_OVER)
        self._take = script(scripts.TAKE)
        self._hand_back = script(scripts.HAND_BACK)

    def shop_key(self, shop_url: str) -> str:
        """The hash of one shop's committed pages and final status."""
        digest = hashlib.blake2b(shop_url.encode(), digest_size=8).hexdigest()
        return f"{self.meta_key}:shop:{digest}"

    # -- the harvest ---------------------------------------------------------------------

    async def epoch(self) -> str | None:
        """The epoch of the harvest's record: made new each time the record is created,
        so a record lost and made again is told apart (``None``: no record)."""
        raw = await self.redis.hget(self.meta_key, "epoch")
        return None if raw is None else _text(raw)

    async def create(
        self,
        *,
        output: str,
        listing: Listing | None = None,
        params: Mapping[str, object] | None = None,
        max_pages: int | None = None,
    ) -> str:
        """Register the harvest (or find it again), open it to workers; return its epoch.

        ``listing`` (or its record, ``params``) must be that of every run; ``max_pages``
        may change.

        Raises:
            ValueError: the harvest exists with another listing.
        """
        listing = listing_given(listing, params)
        await self.redis.hsetnx(self.meta_key, "epoch", secrets.token_hex(8))
        created = await self.redis.hsetnx(self.meta_key, "params", listing.to_record())
        if not created:
            had = _text(await self.redis.hget(self.meta_key, "params"))
            if not _holds(had, listing):
                raise ValueError(
                    f"this output was harvested through Redis with other parameters ({had})"
                )
        for stream, group in ((self.shops_key, SHOP_GROUP), (self.results_key, RESULT_GROUP)):
            try:
                await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
            except Exception as error:  # BUSYGROUP: created by an earlier run
                if "BUSYGROUP" not in str(error):
                    raise
        pages = "" if max_pages is None else str(max_pages)
        await self.redis.hset(
            self.meta_key, mapping={"output": output, "state": "open", "max_pages": pages}
        )
        await self.redis.sadd(f"{self.prefix}:harvests", self.hid)
        await self.redis.sadd(f"{self.prefix}:open", self.hid)  # served by workers
        await self.announce()
        return await self.epoch() or ""

    async def announce(self) -> None:
        """Tell the workers waiting for work that this harvest is open."""
        await self.redis.xadd(
            opened_key(self.prefix), {"harvest": self.hid}, maxlen=_OPENED_KEPT, approximate=True
        )

    async def listing(self) -> Listing | None:
        """The harvest's listing (``None``: no such harvest).

        Raises:
            InvalidParameterError: the record holds no listing this version reads.
        """
        raw = await self.redis.hget(self.meta_key, "params")
        return None if raw is None else Listing.from_record(_text(raw))

    async def max_pages(self) -> int | None:
        """The bound on pages per shop the last run set (``None``: the library's)."""
        raw = await self.redis.hget(self.meta_key, "max_pages")
        return int(raw) if raw else None

    async def set_state(self, state: str) -> None:
        """``open`` (workers serve it) or ``finished`` (exported; workers skip it)."""
        await self.redis.hset(self.meta_key, "state", state)

    async def state(self) -> str | None:
        raw = await self.redis.hget(self.meta_key, "state")
        return None if raw is None else _text(raw)

    async def submit(self, shop_urls: Sequence[str]) -> list[int]:
        """Submit shops in one round trip: 1 new, 2 failed before and submitted again,
        0 already submitted (queued, in progress or complete)."""
        pipe = self.redis.pipeline(transaction=False)
        for url in shop_urls:
            keys = [self.members_key, self.shop_key(url), self.shops_key, self.counts_key]
            await self.conn.call(self._submit, [*keys, self.dead_key, self.meta_key], [url], pipe)
        answers = [int(answer) for answer in await execute_pipeline(pipe)]
        if -2 in answers:
            raise HarvestGone(f"harvest {self.hid} has no record in Redis")
        return answers

    async def counts(self) -> HarvestCounts:
        raw = await self.redis.hgetall(self.counts_key)
        values = {_text(k): _int(v) for k, v in raw.items()}
        try:
            pending = await self.redis.xpending(self.shops_key, SHOP_GROUP)
            in_progress = int(pending["pending"])
        except Exception as error:  # no group yet: nothing handed out
            if "NOGROUP" not in str(error):
                raise
            in_progress = 0
        return HarvestCounts(
            submitted=values.get("submitted", 0),
            done=values.get("done", 0),
            complete=values.get("complete", 0),
            partial=values.get("partial", 0),
            failed=values.get("failed", 0),
            pages=values.get("pages", 0),
            items=values.get("items", 0),
            in_progress=in_progress,
        )

    # -- workers: taking, holding and returning shops ------------------------------------

    async def read_shops(
        self, consumer: str, *, count: int = 1, block_ms: int | None = None, own: bool = False
    ) -> list[Delivery]:
        """New shops for ``consumer`` (``own``: those it was given before and holds still).

        Raises:
            HarvestGone: the harvest's stream is gone.
        """
        try:
            answer: Any = await self.redis.xreadgroup(
                SHOP_GROUP,
                consumer,
                {self.shops_key: "0" if own else ">"},
                count=count,
                block=block_ms,
            )
        except Exception as error:
            raise _gone_if_nogroup(error, self.hid) from None
        deliveries = []
        for _stream, messages in answer or ():
            for message_id, fields in messages:
                if not fields:  # deleted after it was handed out: nothing to do
                    continue
                shop = fields.get(b"shop", fields.get("shop"))
                deliveries.append(Delivery(_text(message_id), _text(shop)))
        return deliveries

    async def take_shops(self, consumer: str, *, count: int = 1) -> list[Delivery]:
        """New shops for ``consumer``, each with its shop hash, in one round trip; none
        waits (nothing new: ``[]``).

        Raises:
            HarvestGone: the harvest's stream is gone.
        """
        try:
            args = [SHOP_GROUP, consumer, count]
            answer = await self.conn.call(self._take, [self.shops_key], args)
        except Exception as error:
            raise _gone_if_nogroup(error, self.hid) from None
        deliveries = []
        for message_id, url, flat in answer:
            fields = None
            if flat is not None:
                fields = {_text(k): _text(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}
            deliveries.append(Delivery(_text(message_id), _text(url), fields=fields))
        return deliveries

    async def take_over(
        self,
        consumer: str,
        *,
        min_idle_ms: int,
        count: int = 1,
        cursor: str = "0-0",
        pulse_gap_ms: int = 0,
    ) -> tuple[str, list[Delivery]]:
        """Shops whose holder stopped renewing them for ``min_idle_ms``, scanning the
        pending list from ``cursor``; return the next cursor (``"0-0"``: the scan wrapped)
        with them. Keep the cursor between calls: each scans at most ``10 * count``.

        ``pulse_gap_ms``: when no worker ran a heartbeat script for that long (Redis
        frozen or restarted), take nothing over for ``min_idle_ms`` (0: no such check).
        """
        try:
            answer = await self.conn.call(
                self._take_over,
                [self.shops_key, pulse_key(self.prefix)],
                [SHOP_GROUP, consumer, min_idle_ms, count, cursor, pulse_gap_ms],
            )
        except Exception as error:
            raise _gone_if_nogroup(error, self.hid) from None
        following, claimed = answer
        deliveries = [Delivery(_text(mid), _text(url), int(n)) for mid, url, n in claimed]
        return _text(following), deliveries

    async def heartbeat(self, consumer: str, message_ids: Iterable[str]) -> list[str]:
        """Renew the shops ``consumer`` holds; return the ids it no longer owns."""
        ids = list(message_ids)
        if not ids:
            return []
        lost = await self.conn.call(self._heartbeat, [self.shops_key], [SHOP_GROUP, consumer, *ids])
        return [_text(mid) for mid in lost]

    async def hand_back(self, consumer: str, message_ids: Iterable[str]) -> int:
        """Give shops back for another worker to take at once (a polite stop)."""
        ids = list(message_ids)
        if not ids:
            return 0
        args = [SHOP_GROUP, consumer, *ids]
        return int(await self.conn.call(self._hand_back, [self.shops_key], args))

    # -- workers: pages and shops ----------------------------------------------------------

    async def checkpoint(self, shop_url: str) -> ShopCheckpoint | None:
        """What was committed of a shop so far, for a worker to resume it.

        ``seen`` stays empty: the coordinator drops items exported before, so a
        redelivered shop needs only its pages, not every item id.
        """
        raw = await self.redis.hgetall(self.shop_key(shop_url))
        fields = {_text(k): _text(v) for k, v in raw.items()}
        if not fields:
            return None
        reads = self.reads_of(fields)
        pages = {page: int(fields.get(f"t{page}", "0")) for page in reads}
        return ShopCheckpoint(
            pages=pages,
            page_size=int(fields.get("size", "0")),
            status=shop_status(fields.get("status")),
            error=str(error_from_record(fields["error"])) if fields.get("error") else None,
        )

    @staticmethod
    def reads_of(fields: Mapping[str, str]) -> dict[int, int]:
        """Page → reads committed, from a shop hash's fields."""
        return {int(k[1:]): int(v) for k, v in fields.items() if k[0] == "r" and k[1:].isdigit()}

    async def shop_fields(self, shop_url: str) -> dict[str, str]:
        raw = await self.redis.hgetall(self.shop_key(shop_url))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def commit_page(
        self,
        shop_url: str,
        page: int,
        *,
        held: tuple[str, str],
        read: int,
        total_count: int,
        page_size: int,
        items: bytes,
        item_count: int,
    ) -> bool:
        """Commit one answered page for ``held`` = (consumer, message id of the shop);
        False if that read of it was committed before.

        Raises:
            ShopTakenOver: the consumer no longer holds the message.
            HarvestGone: the harvest has no record.
        """
        consumer, message_id = held
        commit = PageCommit(
            shop_url, page, read, total_count, page_size, items, item_count, message_id
        )
        (answer,) = await self.commit_pages(consumer, [commit])
        return self.answer(shop_url, answer)

    async def commit_pages(
        self, consumer: str, pages: Sequence[PageCommit], carried: Carried | None = None
    ) -> list[int]:
        """Commit ``pages`` for ``consumer`` in one script, each checked on its own; free
        the leases ``carried`` in the same round trip. One answer a page, as
        :meth:`answer` reads it (1 committed, 0 committed before, -1 taken over, -2 no
        harvest record)."""
        keys, args = self._commit_call(consumer, pages, carried)
        return [int(answer) for answer in await self.conn.call(self._commit, keys, args)]

    def commit_pages_later(
        self, consumer: str, pages: Sequence[PageCommit], carried: Carried | None = None
    ) -> Ride:
        """:meth:`commit_pages` on the next round trip to this Redis (or alone, soon):
        its ``answer`` is the script's reply (a list of answers, one a page)."""
        keys, args = self._commit_call(consumer, pages, carried)
        return self.conn.ride(self._commit, keys, args)

    def _commit_call(
        self, consumer: str, pages: Sequence[PageCommit], carried: Carried | None
    ) -> tuple[list[str], list[str | int | bytes]]:
        keys = [self.results_key, self.counts_key, self.shops_key, self.meta_key]
        keys += [self.shop_key(commit.shop_url) for commit in pages]
        releases = carried.keys_and_ids() if carried is not None else []
        args: list[str | int | bytes] = [SHOP_GROUP, consumer, len(pages), len(releases)]
        for c in pages:
            args += [c.shop_url, c.page, c.read, c.total_count, c.page_size, c.items,
                     c.item_count, c.message_id]  # fmt: skip
        for leases_key, ids in releases:
            keys.append(leases_key)
            args += [len(ids), *ids]
        return keys, args

    def answer(self, shop_url: str, answer: int) -> bool:
        """A fenced script's answer for ``shop_url``: True (done) or False (done
        before), or the refusal raised (:class:`ShopTakenOver`, :class:`HarvestGone`)."""
        if answer == -1:
            raise ShopTakenOver(f"{shop_url} was taken over by another worker")
        if answer == -2:
            raise HarvestGone(f"harvest {self.hid} has no record in Redis")
        return answer == 1

    async def finish_shop(
        self,
        shop_url: str,
        held: tuple[str, str],
        *,
        status: ShopStatus,
        error: str = "",
        total_count: int = 0,
        pages: int = 0,
        requests: int = 0,
        item_count: int = 0,
        dead: bool = False,
    ) -> bool:
        """Record a shop's final status and acknowledge its message (``held`` = consumer,
        message id), in one script; False if someone finished it before (the message is
        acknowledged anyway).

        Raises:
            ShopTakenOver: the consumer no longer holds the message.
            HarvestGone: the harvest has no record.
        """
        consumer, message_id = held
        keys = [
            self.shop_key(shop_url),
            self.results_key,
            self.counts_key,
            self.shops_key,
            self.dead_key,
            self.meta_key,
        ]
        args: list[str | int] = [
            shop_url,
            message_id,
            SHOP_GROUP,
            status,
            error,
            total_count,
            pages,
            requests,
            item_count,
            "1" if dead else "0",
            consumer,
        ]
        return self.answer(shop_url, int(await self.conn.call(self._finish, keys, args)))

    async def dead_letter(self, consumer: str, delivery: Delivery) -> bool:
        """Give up a shop delivered too often without finishing: it is failed."""
        return await self.finish_shop(
            delivery.shop_url,
            (consumer, delivery.message_id),
            status="failed",
            error=error_record(
                TmapiError(f"given up after {delivery.deliveries - 1} deliveries without finishing")
            ),
            dead=True,
        )

    # -- the coordinator: reading results ------------------------------------------------

    async def read_results(
        self, *, pending: bool, count: int = 500, block_ms: int | None = None
    ) -> list[Result]:
        """Results for the coordinator: ``pending`` ones it read before and did not
        acknowledge (after a restart), else new ones.

        Raises:
            HarvestGone: the results stream is gone.
        """
        try:
            answer: Any = await self.redis.xreadgroup(
                RESULT_GROUP,
                COORDINATOR,
                {self.results_key: "0" if pending else ">"},
                count=count,
                block=None if pending else block_ms,
            )
        except Exception as error:
            raise _gone_if_nogroup(error, self.hid) from None
        results: list[Result] = []
        for _stream, messages in answer or ():
            for entry_id, fields in messages:
                if fields:
                    results.append(read_result(_text(entry_id), fields))
        return results

    async def last_result_id(self) -> str:
        """The id of the last result ever added (``"0-0"``: none, or no stream)."""
        try:
            info: Any = await self.redis.xinfo_stream(self.results_key)
        except Exception as error:
            if "no such key" in str(error).lower():
                return "0-0"
            raise
        return _text(info.get("last-generated-id") or "0-0")

    async def ack_results(self, entry_ids: Sequence[str]) -> None:
        """Acknowledge (and drop) results the coordinator has committed locally."""
        if entry_ids:
            pipe = self.redis.pipeline(transaction=True)
            pipe.xack(self.results_key, RESULT_GROUP, *entry_ids)
            pipe.xdel(self.results_key, *entry_ids)
            await pipe.execute()
