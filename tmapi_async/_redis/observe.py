"""What a Redis of harvests holds, read for monitoring: each harvest's queue, backlog and
dead letters, and the workers alive. Read-only; the figures ``/metrics`` serves."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .queue import PREFIX, HarvestCounts, HarvestQueue, _text
from .worker import alive, read_workers

__all__ = ["HarvestView", "RedisView", "TokenView", "read_tokens", "read_view", "redis_gauges"]


@dataclass(frozen=True, slots=True)
class HarvestView:
    """One harvest as Redis holds it."""

    hid: str  #: the harvest id (random hex)
    state: str  #: open, paused, cancelled, failed, finished
    output: str  #: the export's path on the coordinator's machine
    counts: HarvestCounts
    backlog: int  #: results not yet exported by the coordinator
    dead: int  #: shops given up (delivered too often)
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RedisView:
    """Every harvest and worker of a Redis, at one moment (Redis's clock, seconds)."""

    now: int = 0
    harvests: tuple[HarvestView, ...] = ()
    workers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)

    @property
    def workers_alive(self) -> int:
        """Workers whose heartbeat is recent."""
        return sum(1 for beat, _ in self.workers.values() if alive(self.now, beat))


async def read_view(redis: Any) -> RedisView:
    """Read the harvests and workers (a few commands per harvest)."""
    harvests = []
    for hid in sorted(_text(raw) for raw in await redis.smembers(f"{PREFIX}:harvests")):
        queue = HarvestQueue(redis, hid)
        meta = {_text(k): _text(v) for k, v in (await redis.hgetall(queue.meta_key)).items()}
        if not meta:
            continue  # expired (or forgotten) since it was listed
        harvests.append(
            HarvestView(
                hid=hid,
                state=meta.get("state", "?"),
                output=meta.get("output", ""),
                counts=await queue.counts(),
                backlog=int(await redis.xlen(queue.results_key)),
                dead=int(await redis.scard(queue.dead_key)),
                meta=meta,
            )
        )
    now, workers = await read_workers(redis)
    return RedisView(now=now, harvests=tuple(harvests), workers=workers)


def redis_gauges(view: Any) -> Iterable[tuple[str, str, tuple[str, ...], Any]]:
    """The gauge families of a view: ``(name, help, labels, samples())``, where ``view()``
    returns the latest :class:`RedisView` (or None before the first read)."""

    def per_harvest(read: Any) -> Any:
        def samples() -> list[tuple[tuple[str, ...], float]]:
            current = view()
            return [] if current is None else [((h.hid,), read(h)) for h in current.harvests]

        return samples

    def workers() -> list[tuple[tuple[str, ...], float]]:
        current = view()
        return [] if current is None else [((), current.workers_alive)]

    return (
        ("tmapi_queue_shops", "Shops of a harvest waiting for a worker.", ("harvest",),
         per_harvest(lambda h: h.counts.queued)),
        ("tmapi_shops_in_progress", "Shops of a harvest held by workers now.", ("harvest",),
         per_harvest(lambda h: h.counts.in_progress)),
        ("tmapi_results_backlog", "Results of a harvest not yet exported.", ("harvest",),
         per_harvest(lambda h: h.backlog)),
        ("tmapi_dead_letters", "Shops of a harvest given up.", ("harvest",),
         per_harvest(lambda h: h.dead)),
        ("tmapi_workers_alive", "Workers with a recent heartbeat.", (), workers),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class TokenView:
    """One token's limits as Redis holds them, named by its fingerprint."""

    fingerprint: str
    rate: str  #: requests/s set, or "default"
    burst: str
    concurrency: str
    limit: str  #: the adaptive in-flight limit in force, or "-"
    in_flight: int
    stopped: str  #: why the token was stopped, or ""


async def read_tokens(redis: Any) -> list[TokenView]:
    """Every token's limits, in flight and stop, by fingerprint."""
    from .token import TokenKeys, token_clock

    views = []
    for fp in sorted(_text(raw) for raw in await redis.smembers(f"{PREFIX}:tokens")):
        keys = TokenKeys(fp)
        state = {_text(k): _text(v) for k, v in (await redis.hgetall(keys.state)).items()}
        seconds, micros = (int(part) for part in await redis.time())
        now = token_clock(state, seconds * 1_000_000 + micros)
        fatal = {_text(k): _text(v) for k, v in (await redis.hgetall(keys.fatal)).items()}
        views.append(
            TokenView(
                fingerprint=fp,
                rate=state.get("rate", "default"),
                burst=state.get("burst", "default"),
                concurrency=state.get("concurrency", "default"),
                limit=state.get("limit", "-"),
                in_flight=int(await redis.zcount(keys.leases, now, "+inf")),
                stopped=f"{fatal.get('kind', '')} {fatal.get('message', '')}".strip(),
            )
        )
    return views
