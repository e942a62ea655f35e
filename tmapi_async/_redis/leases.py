"""The in-flight leases one process holds on a token's slots, kept alive while it lives.

A lease is ``OWNER:TICKET`` in the token's sorted set, scored by its expiry. The
heartbeat renews every live lease of this process each ``heartbeat`` seconds; a process
killed with -9 stops renewing, and its slots free themselves within ``lease`` seconds.
Releases leave the request path: a background task gives them back in one ``ZREM``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .connection import RedisConnection, RedisUnavailableError
from .token import TokenKeys

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

__all__ = ["Leases"]

_log = logging.getLogger("tmapi_async")
_CARRIED = 256  # releases an admission carries at most
_GATHER = 0.002  # seconds of releases sent together


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
        self._closing = asyncio.Event()
        self._conn: RedisConnection | None = None
        self._renew_script: AsyncScript | None = None
        self._tasks: list[asyncio.Task[None]] = []

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

    async def aclose(self) -> None:
        """Stop renewing and give back every lease, waiting until Redis has them."""
        # Not cancelled: redis-py may swallow a cancel that lands mid-command.
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
        """Queue ``lease_id`` for the next batch of releases."""
        self._to_release.append(lease_id)
        self._release_wanted.set()
        self.returned.set()

    def take_releases(self) -> list[str]:
        """Releases not yet sent, for the next admission to carry to Redis (a bounded
        number: Lua unpacks them on its stack)."""
        batch, self._to_release = self._to_release[:_CARRIED], self._to_release[_CARRIED:]
        return batch

    @property
    def pending(self) -> bool:
        """Some releases have not been sent to Redis yet."""
        return bool(self._to_release)

    async def until_freed(self, at_most: float) -> None:
        """Wait until a release of ours reached Redis, or ``at_most`` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(at_most):
                await self.freed.wait()

    async def until_returned(self, at_most: float) -> None:
        """Wait until a request of ours gives its slot back, or ``at_most`` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(at_most):
                await self.returned.wait()

    async def _releaser(self) -> None:
        while not self._closing.is_set():
            await self._release_wanted.wait()
            # Gather the releases of a few ms in one ZREM (or let an admission carry them):
            # a command per release was most of what the shared throttle cost a process.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_GATHER):
                    await self._closing.wait()
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
