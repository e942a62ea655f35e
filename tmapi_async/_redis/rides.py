"""Scripts that need not go at once ride on the next round trip to the same Redis.

A worker's page commit need not hold up the worker: it is queued here
(:func:`ride`) and sent in one pipeline with the next script this process sends to the
same Redis — most often the admission of the worker's next request, which follows the
commit at once — or alone after :data:`RIDE_WINDOW` if no round trip comes. Redis
runs a pipeline's scripts in order, each atomically, so a ride changes the round trips,
not what each script does. Each ride has its own future for its answer. A round trip
cancelled under its caller (a stop) leaves its rides to the next one: a ride may run
twice, so only idempotent scripts ride (a page's commit is).

Order matters (a shop's finish rides behind its pages' commits), so no script of a
pipeline may miss: one Redis may not know yet (first use, or Redis restarted since) is
loaded by a ``SCRIPT LOAD`` at the head of the same pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript


class _Outage(Protocol):
    ended: int


class Connection(Protocol):
    """What a ride needs of the connection (a ``connection.RedisConnection``)."""

    @property
    def ride_key(self) -> str: ...

    @property
    def outage(self) -> _Outage: ...

    @property
    def client(self) -> Any: ...


__all__ = ["RIDE_WINDOW", "Ride", "flush", "ride", "send_with_rides"]

RIDE_WINDOW: Final = 0.005  #: seconds a ride waits for a round trip before it goes alone
_WAITING: dict[tuple[str, int], list[Ride]] = {}  # (URL, loop) → rides not yet sent
_TIMERS: dict[tuple[str, int], asyncio.TimerHandle] = {}
_ALONE: set[asyncio.Task[None]] = set()  # rides sent alone, under way
# Scripts known loaded: (URL, outages of it ended so far) → SHA1s. A Redis that went
# away may come back without them: the count of outages then moves on.
_LOADED: dict[tuple[str, int], set[str]] = {}


class Ride:
    """One script call waiting for a round trip; :attr:`answer` is its reply."""

    __slots__ = ("answer", "args", "keys", "script", "sent")

    def __init__(
        self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any], answer: Any
    ) -> None:
        self.script, self.keys, self.args = script, keys, args
        self.answer: asyncio.Future[Any] = answer
        self.sent = False  #: taken by a round trip (its answer may still be on the way)


def _key(conn: Connection) -> tuple[str, int]:
    return conn.ride_key, id(asyncio.get_running_loop())


def ride(conn: Connection, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Ride:
    """Queue ``script`` for the next round trip to the Redis of ``conn``. It may run
    twice (sent again after a round trip that carried it was cancelled): only a script
    that is idempotent may ride."""
    loop = asyncio.get_running_loop()
    key = _key(conn)
    waiting = _WAITING.setdefault(key, [])
    one = Ride(script, keys, args, loop.create_future())
    waiting.append(one)
    if key not in _TIMERS:
        _TIMERS[key] = loop.call_later(RIDE_WINDOW, _send_alone, conn, key)
    return one


def _requeue(conn: Connection, rides: list[Ride]) -> None:
    """Rides whose round trip was cancelled go with the next one (they may have run
    already: only idempotent scripts ride)."""
    again = [one for one in rides if not one.answer.done()]
    if not again:
        return
    for one in again:
        one.sent = False
    key = _key(conn)
    _WAITING[key] = again + _WAITING.get(key, [])
    if key not in _TIMERS:
        loop = asyncio.get_running_loop()
        _TIMERS[key] = loop.call_later(RIDE_WINDOW, _send_alone, conn, key)


def _take(key: tuple[str, int]) -> list[Ride]:
    timer = _TIMERS.pop(key, None)
    if timer is not None:
        timer.cancel()
    rides = _WAITING.pop(key, [])
    for one in rides:
        one.sent = True
    return rides


def _send_alone(conn: Connection, key: tuple[str, int]) -> None:
    """No round trip came within the window: the rides go on their own."""
    _TIMERS.pop(key, None)
    if not _WAITING.get(key):
        return
    task = asyncio.get_running_loop().create_task(_alone(conn, key))
    _ALONE.add(task)
    task.add_done_callback(_ALONE.discard)


async def _alone(conn: Connection, key: tuple[str, int]) -> None:
    with contextlib.suppress(Exception):  # each ride's future holds its error
        await _pipeline(conn, _take(key), None)


async def flush(conn: Connection) -> None:
    """Send the rides waiting for the Redis of ``conn`` now (their futures hold their
    answers or errors)."""
    rides = _take(_key(conn))
    if rides:
        with contextlib.suppress(Exception):
            await _pipeline(conn, rides, None)


async def send_with_rides(
    conn: Connection,
    script: AsyncScript,
    keys: Sequence[Any],
    args: Sequence[Any],
    client: Any = None,
) -> Any:
    """Run ``script``, with the rides waiting for this Redis in the same round trip
    (ahead of it); its reply, or its error raised."""
    key = _key(conn)
    if client is not None or not _WAITING.get(key):
        return await script(keys=keys, args=args, client=client)
    return await _pipeline(conn, _take(key), (script, keys, args))


async def _pipeline(
    conn: Connection,
    rides: list[Ride],
    own: tuple[AsyncScript, Sequence[Any], Sequence[Any]] | None,
) -> Any:
    """Send ``rides`` (then ``own``) in one pipeline; answer each ride; return own's."""
    from redis.exceptions import NoScriptError

    calls = [(one.script, one.keys, one.args) for one in rides]
    if own is not None:
        calls.append(own)
    loaded = _LOADED.setdefault((conn.ride_key, conn.outage.ended), set())
    missing = {script.sha: script for script, _keys, _args in calls if script.sha not in loaded}
    pipe = conn.client.pipeline(transaction=False)
    for script in missing.values():
        pipe.script_load(script.script)
    for script, keys, args in calls:
        pipe.evalsha(script.sha, len(keys), *keys, *args)
    try:
        replies = await pipe.execute(raise_on_error=False)
    except asyncio.CancelledError:
        _requeue(conn, rides)  # the caller was cancelled, not the rides: they go again
        raise
    except BaseException as error:
        for one in rides:
            if not one.answer.done():
                one.answer.set_exception(error)
        raise
    if missing:
        loads, replies = replies[: len(missing)], replies[len(missing) :]
        loaded.update(
            sha
            for sha, reply in zip(missing, loads, strict=True)
            if reply == sha or (isinstance(reply, bytes) and reply.decode() == sha)
        )
    for index, (script, keys, args) in enumerate(calls):
        if isinstance(replies[index], NoScriptError):  # Redis restarted: load, send again
            try:
                replies[index] = await script(keys=keys, args=args)
            except asyncio.CancelledError:
                _requeue(conn, rides)  # none answered yet: all go again
                raise
            except Exception as error:
                replies[index] = error
    for one, reply in zip(rides, replies, strict=False):
        if one.answer.done():
            continue
        if isinstance(reply, Exception):
            one.answer.set_exception(reply)
        else:
            one.answer.set_result(reply)
    if own is None:
        return None
    if isinstance(replies[-1], Exception):
        raise replies[-1]
    return replies[-1]
