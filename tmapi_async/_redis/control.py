"""Operating the harvests of a Redis: pause, resume, cancel, forget; retention; pruning.

Keys added to those of :mod:`.queue` (``H`` a harvest id)::

    tmapi:open                     set      harvests workers serve (open or paused)
    tmapi:h:H:coordinator          string   present while a coordinator is attached
                                            (it renews a short expiry at each look)

and fields of the harvest's hash ``tmapi:h:H``: ``state`` (open, paused, cancelled,
failed, finished), ``error`` (why it failed), ``max_backlog`` (results not yet
exported that hold the workers back), ``keep`` (seconds a finished harvest is kept)
and ``finished_at`` (Redis time).

A finished harvest is *retired*: its shops stream is emptied and every key it left
gets an expiry of ``keep`` seconds, so it stays listed by ``status`` for that long and
then disappears by itself. :func:`forget` deletes a harvest at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

from .._errors import CorruptRecord, HarvestEnded, HarvestNotFound, InvalidParameterError
from .._listing import Listing
from . import scripts
from .gate import DEFAULT_MAX_BACKLOG, GatedSource, HarvestGate, Verdict, decide, dropped
from .queue import PREFIX, SHOP_GROUP, HarvestQueue, _text

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from .._harvest import PageSource

__all__ = [
    "ATTACH_TTL",
    "DEFAULT_KEEP",
    "SILENT",
    "CorruptRecord",
    "HarvestEnded",
    "HarvestNotFound",
    "WorkerControls",
    "attach",
    "attached_key",
    "check",
    "configure",
    "control",
    "detach",
    "forget",
    "forgotten_under",
    "harvest_keys",
    "open_key",
    "prune",
    "resolve",
    "retire",
    "was_forgotten",
]

DEFAULT_KEEP: Final = 7 * 86400  #: seconds a finished harvest is kept for ``status``
ATTACH_TTL: Final = 10  #: seconds the attached marker outlives a coordinator's last look
SILENT: Final = 600  #: seconds after which a silent worker or consumer is pruned
_FORGOTTEN_TOLD: Final = 86400  # seconds a forget is remembered for a coordinator to learn
PRUNE_EVERY: Final = 60.0  #: seconds between two prunings by a worker


def open_key(prefix: str = PREFIX) -> str:
    """The set of harvests workers serve (open or paused)."""
    return f"{prefix}:open"


def attached_key(queue: HarvestQueue) -> str:
    return f"{queue.meta_key}:coordinator"


async def resolve(redis: Redis, text: str, prefix: str = PREFIX) -> str:
    """The harvest id ``text`` names: an id ``status`` shows, or a unique prefix of it.

    Raises:
        HarvestNotFound: none or several match (the message says which).
    """
    text = text.strip()
    hids = sorted(_text(raw) for raw in await redis.smembers(f"{prefix}:harvests"))
    if text in hids:
        return text
    matches = [hid for hid in hids if text and hid.startswith(text)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise HarvestNotFound(f"{text!r} is ambiguous: {', '.join(matches)}; give more of the id")
    raise HarvestNotFound(f"no harvest {text!r} in this Redis (see tmapi-async status)")


async def configure(queue: HarvestQueue, *, keep: float, max_backlog: int | None) -> None:
    """Record a run's retention and backpressure, and open the harvest to workers."""
    bound = "" if max_backlog is None else str(max_backlog)
    if await queue.redis.ttl(queue.meta_key) > 0:  # finished and retired: keep it again
        for key in await harvest_keys(queue.redis, queue):
            await queue.redis.persist(key)
        await queue.redis.hdel(queue.meta_key, "finished_at")
    await queue.redis.hset(queue.meta_key, mapping={"keep": str(int(keep)), "max_backlog": bound})
    await queue.redis.sadd(open_key(queue.prefix), queue.hid)


async def attach(queue: HarvestQueue) -> str | None:
    """Renew the coordinator's attached marker; return the harvest's state (``None``:
    its keys are gone)."""
    keys = [queue.meta_key, attached_key(queue)]
    state = await queue.conn.call(queue.conn.script(scripts.ATTACH), keys, [ATTACH_TTL])
    return None if state is None else _text(state)


async def check(queue: HarvestQueue) -> None:
    """The coordinator's look: renew its marker; stop it if the harvest was ended.

    Raises:
        HarvestEnded: cancelled, forgotten or failed under the coordinator.
    """
    state = await attach(queue)
    hid = queue.hid
    if state == "cancelled":
        raise HarvestEnded(f"harvest {hid} was cancelled (tmapi-async cancel)")
    if state is None:
        raise HarvestEnded(f"harvest {hid} was forgotten (tmapi-async forget): its keys are gone")
    if state == "failed":
        error = _text(await queue.redis.hget(queue.meta_key, "error") or b"")
        raise HarvestEnded(f"harvest {hid} failed in the workers: {error}")


async def forgotten_under(queue: HarvestQueue | None) -> None:
    """After a Redis error in a coordinator: say so if it is the harvest's keys that went.

    Raises:
        HarvestEnded: the harvest was forgotten under the coordinator.
    """
    if queue is None:
        return
    try:
        gone = not await queue.redis.exists(queue.meta_key)
    except Exception:  # Redis is away: the error is what it says
        return
    if gone:
        raise HarvestEnded(
            f"harvest {queue.hid} was forgotten (tmapi-async forget): its keys are gone"
        )


def _forgotten_key(queue: HarvestQueue) -> str:
    return f"{queue.prefix}:forgotten:{queue.hid}"


async def was_forgotten(queue: HarvestQueue, epoch: str) -> bool:
    """Whether the record of ``epoch`` was deleted by ``forget`` (not lost by Redis)."""
    told = await queue.redis.get(_forgotten_key(queue))
    return told is not None and _text(told) == epoch


async def detach(queue: HarvestQueue) -> None:
    """The coordinator leaves: ``forget`` no longer waits for it."""
    await queue.redis.delete(attached_key(queue))


async def control(redis: Redis, hid: str, action: str, prefix: str = PREFIX) -> tuple[str, str]:
    """``pause``, ``resume`` or ``cancel`` a harvest; its state before and after
    (the same when the action does not apply to it; ``('', '')``: no such harvest)."""
    queue = HarvestQueue(redis, hid, prefix=prefix)
    keys = [queue.meta_key, open_key(prefix)]
    before, after = await queue.conn.call(queue.conn.script(scripts.CONTROL), keys, [action, hid])
    return _text(before), _text(after)


async def harvest_keys(redis: Redis, queue: HarvestQueue) -> list[str]:
    """Every key of a harvest that exists (its hash and every ``tmapi:h:H:*``)."""
    keys = [_text(key) async for key in redis.scan_iter(match=f"{queue.meta_key}:*", count=1000)]
    if await redis.exists(queue.meta_key):
        keys.append(queue.meta_key)
    return keys


async def retire(queue: HarvestQueue, keep: float) -> int:
    """A finished harvest: empty its shops stream, close it to workers, and give every
    key it left an expiry of ``keep`` seconds. Returns how many keys got one."""
    redis = queue.redis
    seconds = max(1, int(keep))
    now = int((await redis.time())[0])
    pipe = redis.pipeline(transaction=True)
    pipe.xtrim(queue.shops_key, maxlen=0)  # finished shops' messages (and any stray)
    pipe.srem(open_key(queue.prefix), queue.hid)
    pipe.delete(attached_key(queue))
    pipe.hset(queue.meta_key, mapping={"finished_at": str(now), "keep": str(seconds)})
    await pipe.execute()
    keys = await harvest_keys(redis, queue)
    for start in range(0, len(keys), 500):
        pipe = redis.pipeline(transaction=False)
        for key in keys[start : start + 500]:
            pipe.expire(key, seconds)
        await pipe.execute()
    return len(keys)


async def forget(redis: Redis, hid: str, *, force: bool = False, prefix: str = PREFIX) -> int:
    """Delete every key of a harvest; returns how many were deleted.

    Raises:
        RuntimeError: a coordinator is attached to it (and not ``force``).
    """
    queue = HarvestQueue(redis, hid, prefix=prefix)
    if not force and await redis.exists(attached_key(queue)):
        raise RuntimeError(
            f"a coordinator is attached to harvest {hid}: stop it first "
            "(or pass --force to delete the keys under it)"
        )
    await redis.srem(open_key(prefix), hid)
    epoch = await queue.epoch()
    deleted = int(await redis.delete(queue.meta_key))  # first: workers see it gone
    if epoch is not None:  # its coordinator, if any, must not take this for a lost Redis
        await redis.set(_forgotten_key(queue), epoch, ex=_FORGOTTEN_TOLD)
    deleted += await _delete(redis, await harvest_keys(redis, queue))
    await redis.srem(f"{prefix}:harvests", hid)
    return deleted


async def _delete(redis: Redis, keys: list[str]) -> int:
    deleted = 0
    for start in range(0, len(keys), 500):
        deleted += int(await redis.delete(*keys[start : start + 500]))
    return deleted


async def prune(redis: Redis, prefix: str = PREFIX, silent: int = SILENT) -> tuple[int, int]:
    """Drop workers and consumers silent for ``silent`` seconds (consumers only without
    pending shops), and the ids of harvests whose keys expired. Returns (workers,
    consumers) dropped."""
    now = int((await redis.time())[0])
    gone = []
    for raw_id, raw in (await redis.hgetall(f"{prefix}:workers")).items():
        beat = _text(raw).partition(" ")[0]
        if not beat.isdigit() or now - int(beat) >= silent:
            gone.append(_text(raw_id))
    if gone:
        await redis.hdel(f"{prefix}:workers", *gone)
    consumers = 0
    for raw in await redis.smembers(open_key(prefix)):
        queue = HarvestQueue(redis, _text(raw), prefix=prefix)
        with contextlib.suppress(Exception):  # no stream or group (yet): nothing to prune
            for about in await redis.xinfo_consumers(queue.shops_key, SHOP_GROUP):
                name, pending, idle = _consumer(about)
                if pending == 0 and idle >= silent * 1000:
                    await redis.xgroup_delconsumer(queue.shops_key, SHOP_GROUP, name)
                    consumers += 1
    for key in (f"{prefix}:harvests", open_key(prefix)):
        for raw in await redis.smembers(key):
            if not await redis.exists(HarvestQueue(redis, _text(raw), prefix=prefix).meta_key):
                await redis.srem(key, raw)
    return len(gone), consumers


def _consumer(about: dict[Any, Any]) -> tuple[str, int, int]:
    fields = {_text(k): v for k, v in about.items()}
    return _text(fields["name"]), int(fields.get("pending", 0)), int(fields.get("idle", 0))


def listing_of(meta: dict[str, str]) -> tuple[Listing, int | None]:
    """The listing and max pages of a harvest's record.

    Raises:
        CorruptRecord: the record is not one a run wrote.
    """
    raw = meta.get("params")
    if raw is None:
        raise CorruptRecord("its record has no parameters")
    try:
        listing = Listing.from_record(raw)
    except InvalidParameterError as error:
        raise CorruptRecord(f"its parameters are not a listing: {error}") from None
    try:
        pages = meta.get("max_pages") or ""
        max_pages = int(pages) if pages else None
    except ValueError as error:
        raise CorruptRecord(f"its record holds a bad number: {error}") from None
    return listing, max_pages


class WorkerControls:
    """A worker's view of the controls: which harvests to serve, and each one's gate."""

    def __init__(
        self, redis: Redis, prefix: str = PREFIX, tell: Callable[[str], None] | None = None
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._tell = tell or (lambda line: None)
        self.gates: dict[str, HarvestGate] = {}
        self.sources: dict[str, GatedSource] = {}
        self._next_prune = 0.0
        self._budgets: dict[str, int] = {}  # a new engine's pages before the bound

    async def open_ids(self) -> list[str]:
        """The harvests to serve: those open (or paused), not every one ever submitted."""
        return sorted(_text(raw) for raw in await self._redis.smembers(open_key(self._prefix)))

    async def listing(self, queue: HarvestQueue) -> tuple[Listing, int | None]:
        """The harvest's listing and max pages (see :func:`listing_of`)."""
        raw = await self._redis.hgetall(queue.meta_key)
        meta = {_text(k): _text(v) for k, v in raw.items()}
        limit = _bound(meta.get("max_backlog"))
        if limit is not None:  # the bound holds from the first page, not the first look
            self._budgets[queue.hid] = limit - int(await self._redis.xlen(queue.results_key))
        return listing_of(meta)

    async def fail(self, queue: HarvestQueue, error: Exception) -> None:
        """Fail a harvest whose record is corrupt: every worker skips it from now on."""
        message = f"harvest {queue.hid} failed: {error}"
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(queue.meta_key, mapping={"state": "failed", "error": str(error)})
        pipe.srem(open_key(self._prefix), queue.hid)
        await pipe.execute()
        self._tell(message)

    def source(self, hid: str, client: PageSource) -> GatedSource:
        """The client as the engine of harvest ``hid`` sees it: behind its gate."""
        gate = self.gates[hid] = HarvestGate()
        source = self.sources[hid] = GatedSource(client, gate)
        source.budget = self._budgets.pop(hid, None)
        return source

    def gate(self, hid: str) -> HarvestGate:
        return self.gates.get(hid) or HarvestGate()

    def ended(self, hid: str) -> None:
        self.gates.pop(hid, None)
        self.sources.pop(hid, None)

    async def refresh(self, hids: Iterable[str], now: float) -> list[tuple[str, str]]:
        """Set the gate of each harvest served from what Redis says of it; return the
        harvests to drop, each with why (``forgotten``: its keys are gone)."""
        hids = [hid for hid in hids if hid in self.gates and self.gates[hid].error is None]
        pipe = self._redis.pipeline(transaction=False)
        for hid in hids:
            queue = HarvestQueue(self._redis, hid, prefix=self._prefix)
            pipe.hmget(queue.meta_key, ["state", "max_backlog"])
            pipe.xlen(queue.results_key)
        answers = await pipe.execute() if hids else []
        drops = []
        for i, hid in enumerate(hids):
            (state, bound), backlog = answers[2 * i], int(answers[2 * i + 1])
            state = None if state is None else _text(state)
            limit = _bound(bound)
            verdict = decide(state, backlog, limit)
            source = self.sources[hid]
            if verdict == "gone":
                drops.append((hid, "forgotten" if state is None else state))
                continue
            # Pages in flight will add to the backlog: the bound counts them already.
            source.budget = None if limit is None else limit - backlog - source.in_flight
            if verdict == "open" and source.budget is not None and source.budget <= 0:
                verdict = "backlog"
            self.gates[hid].set(verdict)
            if verdict != source.told:
                self._tell(_told(hid, verdict, backlog, limit, source))
                source.told, source.quiet_told = verdict, False
            elif verdict != "open" and not source.in_flight and not source.quiet_told:
                source.quiet_told = True
                self._tell(f"harvest {hid} {verdict}: none of its requests in flight")
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY
            with contextlib.suppress(Exception):  # pruning can wait for the next turn
                await prune(self._redis, self._prefix)
        return drops

    def drop(self, hid: str, reason: str) -> None:
        """End harvest ``hid`` here: nothing more is sent for it; the worker serves on."""
        source = self.sources.get(hid)
        if source is not None:
            if source.gate.error is not None:
                return  # dropped before
            source.detach()
            source.gate.close(dropped(reason))
        self._tell(f"harvest {hid} {reason}: dropped")

    async def forgotten(self, hid: str) -> bool:
        """Whether the harvest's keys were deleted (``forget``); False if Redis is away."""
        queue = HarvestQueue(self._redis, hid, prefix=self._prefix)
        try:
            return not await self._redis.exists(queue.meta_key)
        except Exception:  # Redis is away: not a forget
            return False

    async def sweep(self, hid: str) -> None:
        """Delete what a commit in flight wrote after ``forget`` (the record stays gone)."""
        queue = HarvestQueue(self._redis, hid, prefix=self._prefix)
        if not await self._redis.exists(queue.meta_key):
            await _delete(self._redis, await harvest_keys(self._redis, queue))
            self._tell(f"harvest {hid} forgotten: nothing of it left here")


def _bound(raw: object) -> int | None:
    """A harvest's ``max_backlog`` (missing: the default; empty or 0: no bound)."""
    if raw is None:
        return DEFAULT_MAX_BACKLOG
    text = _text(raw)
    return int(text) if text.isdigit() and int(text) > 0 else None


def _told(hid: str, verdict: Verdict, backlog: int, limit: int | None, source: Any) -> str:
    if verdict == "paused":
        return f"harvest {hid} paused; {source.in_flight} of its requests in flight finish"
    if verdict == "backlog":
        return (
            f"harvest {hid} held back: {backlog} results not exported yet (bound {limit}); "
            "going on when the coordinator drains them"
        )
    return f"harvest {hid} resumed"
