"""The in-flight leases one process holds on a token's slots, kept alive while it lives.

A lease is ``OWNER:TICKET`` in the token's sorted set, scored by its expiry. The
heartbeat renews every live lease of this process each ``heartbeat`` seconds; a process
killed with -9 stops renewing, and its slots free themselves within ``lease`` seconds.

Releases leave the request path and ride on the next round trip to the same Redis: the
next admission, or the next commit of a worker's pages (:func:`carry`). Only those no
round trip took within ``_CARRY_WINDOW`` go on their own, in one ``ZREM``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .connection import RedisConnection, RedisUnavailableError
from .token import TokenKeys

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

__all__ = ["Carried", "Leases", "carry"]

_log = logging.getLogger("tmapi_async")
_CARRIED = 256  # releases an admission carries at most
# Seconds a release waits for a round trip to carry it (an admission, a worker's page
# commit) before it goes alone: a command per release was most of what the shared
# throttle cost a process, and a page's commit follows its release at once.
_CARRY_WINDOW = 0.002
_LIVE: weakref.WeakSet[Leases] = weakref.WeakSet()  # started and not closed, this process


class Leases:
    """This process's leases on one token's in-flight slots.

    Args:
        keys: the token's keys.
        lease: seconds a lease lives without renewal.
        heartbeat: seconds between renewals.
        on_renewed: called with each heartbeat's reply (the token's state).
        on_lost: called once when Redis stayed away longer than the process waits
            for it (or renewals failed otherwise for a whole ``lease``): this
            process's requests are no longer counted, it must stop.
    """

    clock = staticmethod(time.monotonic)  #: the clock of the ages of admissions

    def __init__(
        self,
        keys: TokenKeys,
        *,
        lease: float,
        heartbeat: float,
        on_renewed: Callable[[list[Any]], None],
        on_lost: Callable[[RedisUnavailableError], None],
    ) -> None:
        self.owner = secrets.token_hex(8)  # names this process's leases
        self.lease = lease
        self._keys, self._heartbeat_every = keys, heartbeat
        self._on_renewed, self._on_lost = on_renewed, on_lost
        self.live: set[int] = set()  #: tickets whose requests are on the wire
        self._asked: dict[int, float] = {}  # ticket → when its admission was asked for
        self._outages_seen = 0  # outages of Redis this process's leases were renewed after
        self.freed = asyncio.Event()  #: set when a batch of releases reached Redis
        self.returned = asyncio.Event()  #: set when a request of ours gave its slot back
        self._to_release: list[str] = []
        self._release_wanted = asyncio.Event()
        self._release_timer: asyncio.TimerHandle | None = None
        self._full_streak = 0  # "full" answers in a row: the poll of other processes backs off
        self._closing = asyncio.Event()
        self._conn: RedisConnection | None = None
        self._renew_script: AsyncScript | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def key(self) -> str:
        """The token's sorted set of leases."""
        return self._keys.leases

    def id(self, ticket: int) -> str:
        """The lease of ``ticket`` in the token's sorted set."""
        return f"{self.owner}:{ticket}"

    async def start(self, conn: RedisConnection, renew: AsyncScript) -> None:
        """Renew once (learning the token's state), then keep renewing in the background."""
        self._conn, self._renew_script = conn, renew
        await self.renew()
        self._tasks = [
            asyncio.create_task(self._heartbeat(), name="tmapi-heartbeat"),
            asyncio.create_task(self._releaser(), name="tmapi-release"),
        ]
        _LIVE.add(self)

    async def aclose(self) -> None:
        """Stop renewing and give back every lease, waiting until Redis has them."""
        # Not cancelled: redis-py may swallow a cancel that lands mid-command.
        _LIVE.discard(self)
        if self._release_timer is not None:
            self._release_timer.cancel()
        self._closing.set()
        self._release_wanted.set()
        await asyncio.gather(*self._tasks)
        self._to_release += [self.id(ticket) for ticket in self.live]
        self.live.clear()
        await self._flush()
        self._conn = None

    def take(self, ticket: int, asked: float) -> None:
        """``ticket`` was admitted by a call that left at ``asked`` (:attr:`clock`)."""
        self.live.add(ticket)
        self._full_streak = 0
        if self._conn is not None:  # sent again after an outage: it left after it failed
            asked = max(asked, self._conn.outage.last_failed)
        self._asked[ticket] = asked

    def fresh(self, ticket: int) -> bool:
        """Whether the lease of ``ticket`` is younger than its life: its request may
        leave. (Its age counts from when the admission was asked for: never younger
        than the lease in Redis.)"""
        asked = self._asked.pop(ticket, None)
        return asked is None or self.clock() - asked < self.lease

    async def catch_up(self) -> None:
        """After an outage of Redis, renew every live lease before anything new."""
        if self._conn is not None and self._conn.outage.ended != self._outages_seen:
            self._outages_seen = self._conn.outage.ended
            await self.renew()

    def release(self, ticket: int) -> None:
        """The request of ``ticket`` is off the wire: its lease goes in the next batch."""
        self._asked.pop(ticket, None)
        if ticket in self.live:
            self.live.discard(ticket)
            self.give_back(self.id(ticket))

    def give_back(self, lease_id: str) -> None:
        """Queue ``lease_id`` for the next round trip to carry, or alone soon after."""
        self._to_release.append(lease_id)
        self.returned.set()
        if self._release_timer is None and not self._closing.is_set():
            loop = asyncio.get_running_loop()
            self._release_timer = loop.call_later(_CARRY_WINDOW, self._carry_late)

    def _carry_late(self) -> None:
        self._release_timer = None
        if self._to_release:  # no round trip took them: they go alone
            self._release_wanted.set()

    def take_releases(self) -> list[str]:
        """Releases not yet sent, for the next admission to carry to Redis (a bounded
        number: Lua unpacks them on its stack)."""
        batch, self._to_release = self._to_release[:_CARRIED], self._to_release[_CARRIED:]
        return batch

    @property
    def pending(self) -> bool:
        """Some releases have not been sent to Redis yet."""
        return bool(self._to_release)

    async def until_returned(self, at_most: float) -> None:
        """Wait until a request of ours gives its slot back, or a poll of what other
        processes freed: ``at_most`` seconds after the first "full" answer, twice as long
        after each further one in a row (up to 16 times): a slot given back here wakes
        the wait at once anyway."""
        wait = at_most * (1 << min(self._full_streak, 4))
        self._full_streak += 1
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self.returned.wait()

    def carried(self) -> None:
        """A round trip freed releases taken by :meth:`take_releases`."""
        self.freed.set()

    def not_carried(self, lease_ids: list[str]) -> None:
        """The round trip that took ``lease_ids`` failed: they go again."""
        for lease_id in lease_ids:
            self.give_back(lease_id)

    async def _releaser(self) -> None:
        while not self._closing.is_set():
            await self._release_wanted.wait()  # set once the window passed uncarried
            self._release_wanted.clear()
            await self._flush()

    async def _flush(self) -> None:
        batch, self._to_release = self._to_release, []
        if not batch:
            return
        if self._conn is not None:
            try:
                await self._conn.client.zrem(self._keys.leases, *batch)
            except Exception as error:
                if not self._conn.is_redis_error(error):
                    raise
                # Not renewed, these leases expire by themselves within `lease`.
                _log.warning("could not free %d leases: %s", len(batch), error)
        self.freed.set()

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        last_ok = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._heartbeat_every):
                    await self._closing.wait()
            if self._closing.is_set():
                return
            try:
                await self.renew()
                last_ok = loop.time()
            except RedisUnavailableError as error:
                # Redis away for longer than we wait for it (each renewal waits for it
                # meanwhile), or failing otherwise for a whole lease: our requests are no
                # longer counted anywhere, we must stop rather than send unseen ones.
                assert self._conn is not None
                if self._conn.outage.gave_up or loop.time() - last_ok >= self.lease:
                    self._on_lost(error)
                    return
                _log.warning("heartbeat failed, retrying: %s", error)

    async def renew(self) -> None:
        """Renew every live lease; hand the token's state to ``on_renewed``."""
        assert self._conn is not None
        assert self._renew_script is not None
        live = list(self.live)
        keys = [self._keys.state, self._keys.leases, self._keys.fatal]
        args = [repr(self.lease), *(self.id(ticket) for ticket in live)]
        reply = await self._conn.run(self._renew_script, keys, args)
        self._on_renewed(reply)
        # A lease released while the renewal was on its way may have been re-added.
        for ticket in live:
            if ticket not in self.live:
                self.give_back(self.id(ticket))


class Carried:
    """Releases one round trip takes to Redis, from every token's leases there."""

    __slots__ = ("batches",)

    def __init__(self, batches: list[tuple[Leases, list[str]]]) -> None:
        self.batches = batches

    def keys_and_ids(self) -> list[tuple[str, list[str]]]:
        """(leases key, lease ids) of each token."""
        return [(leases.key, ids) for leases, ids in self.batches]

    def done(self) -> None:
        """They reached Redis: wake whoever waits for a freed slot."""
        for leases, _ids in self.batches:
            leases.carried()

    def failed(self) -> None:
        """The round trip failed: they go again."""
        for leases, ids in self.batches:
            leases.not_carried(ids)


def carry(conn: RedisConnection) -> Carried:
    """The releases waiting in this process for the Redis of ``conn``, taken for a
    round trip to it to carry (see :class:`Carried`)."""
    batches = []
    for leases in list(_LIVE):
        if leases._conn is not None and leases._conn.same_redis(conn):
            ids = leases.take_releases()
            if ids:
                batches.append((leases, ids))
    return Carried(batches)
