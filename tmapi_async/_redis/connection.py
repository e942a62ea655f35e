"""The one seam to redis-py: connect to a Redis URL, run Lua scripts, say what went wrong.

redis-py (the ``redis`` extra) is imported here only, and only when a connection is
opened, so the library imports without it.

Every command of a process goes through one retry policy, :class:`Outage`: a Redis
that goes away (restarted, failed over, the network cut) is waited for with capped
backoff for up to ``redis_outage`` seconds, and every command, blocking reads
included, goes on once it is back. Each command the harvest and the throttle send
is idempotent or safe to run twice, so one whose reply was lost is simply sent again.
Past the limit the commands raise, and :meth:`RedisConnection.boundary` -- the one
place that maps redis-py's exceptions to the library's -- turns that into a
:class:`RedisUnavailableError` naming the URL without its password: a process that
cannot reach the shared limits stops, it never falls back to limits of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from .._errors import RedisUnavailableError
from .rides import Ride, ride, send_with_rides

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = [
    "DEFAULT_OUTAGE",
    "REDIS_URL_ENV",
    "Outage",
    "RedisConnection",
    "RedisUnavailableError",
    "execute_pipeline",
    "load_lua",
    "open_connection",
    "redact_url",
    "redis_url_from_env",
]

REDIS_URL_ENV = "TMAPI_REDIS_URL"
_CONNECT_TIMEOUT = 5.0  # seconds to establish a connection
_COMMAND_TIMEOUT = 10.0  # seconds for a reply: no command of ours blocks for long
DEFAULT_OUTAGE = 60.0  #: seconds a process waits for a Redis that went away
_BACKOFF_FIRST, _BACKOFF_CAP = 0.05, 1.0  # seconds between reconnections: doubling, capped
_TELL_AFTER = 1.0  # seconds of outage before it is told (a blip is not news)
_TELL_EVERY = 10.0  # seconds between reminders that it goes on
_log = logging.getLogger("tmapi_async")


def redis_url_from_env(url: str | None) -> str | None:
    """``url`` if given, else ``TMAPI_REDIS_URL`` if set and not blank, else None."""
    if url is None:
        url = os.environ.get(REDIS_URL_ENV, "").strip() or None
    return url


def redact_url(url: str) -> str:
    """``url`` with its password (in the userinfo or a ``password=`` query) masked."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
            if ":" in userinfo or not user:  # redis://:secret@host or redis://secret@host
                userinfo = f"{user}:***" if user else ":***"
            netloc = f"{userinfo}@{host}"
        query = urlencode(
            [
                (key, "***" if "pass" in key.lower() else value)
                for key, value in parse_qsl(parts.query, keep_blank_values=True)
            ],
            quote_via=quote,
            safe="*",
        )
        # Not urlunsplit: it drops the empty host of unix:///path.
        shown = f"{parts.scheme}://{netloc}{parts.path}"
        return (
            shown
            + (f"?{query}" if query else "")
            + (f"#{parts.fragment}" if parts.fragment else "")
        )
    except ValueError:
        return "(a Redis URL that could not be parsed)"


def _secrets_of(url: str) -> list[str]:
    """The password(s) in ``url``, to scrub them from any message that quotes them."""
    secrets = []
    try:
        parts = urlsplit(url)
        if parts.password:
            secrets.append(parts.password)
        elif parts.username and not parts.password and "@" in parts.netloc:
            secrets.append(parts.username)  # redis://secret@host: redis-py's password
        secrets += [v for k, v in parse_qsl(parts.query) if "pass" in k.lower() and v]
    except ValueError:
        pass
    return [s for s in secrets if s]


def unavailable(url: str, cause: BaseException | str) -> RedisUnavailableError:
    """The error to raise when Redis at ``url`` failed us; the password never appears."""
    text = (str(cause) or type(cause).__name__) if isinstance(cause, BaseException) else cause
    for secret in _secrets_of(url):
        text = text.replace(secret, "***")
    return RedisUnavailableError(f"Redis at {redact_url(url)} is unavailable: {text}")


class Outage:
    """Whether the Redis of one process answers, and how long the process waits for it.

    One per Redis URL in a process (:meth:`shared`), for every connection pool to it:
    redis-py copies its retry policy into every connection, and a copy of an
    :class:`Outage` is the same object, so every command of the process shares one
    clock of the outage and it is told once. An outage starts at the first failure to
    reach Redis and ends at the first command that gets an answer.

    Args:
        url: the Redis URL (shown without its password).
        limit: seconds to wait for Redis before giving up.

    Attributes:
        limit: seconds to wait before giving up (``--redis-outage``).
        since: ``time.monotonic()`` when the outage began; None while Redis answers.
        ended: outages that ended (Redis came back) so far.
        gave_up: the last outage outlasted ``limit``: the process stops.
        last_failed: ``time.monotonic()`` of the last failure to reach Redis.
        listeners: each called with a line to tell (waiting, back, gave up).
    """

    def __init__(self, url: str, limit: float = DEFAULT_OUTAGE) -> None:
        if not limit >= 0:
            raise ValueError(f"redis_outage must be >= 0 seconds, got {limit!r}")
        self.url = redact_url(url)
        self.limit = limit
        self.since: float | None = None
        self.ended = 0
        self.gave_up = False
        self.last_failed = -math.inf
        self.listeners: list[Callable[[str], None]] = []
        self._secrets = _secrets_of(url)
        self._armed = False  # set by the first answer: an unreachable start fails at once
        self._told_at: float | None = None

    @classmethod
    def shared(cls, url: str, limit: float = DEFAULT_OUTAGE) -> Outage:
        """The outage of ``url`` in this process (the same while a connection uses it)."""
        outage = _OUTAGES.get((url, limit))
        if outage is None:
            outage = _OUTAGES[url, limit] = cls(url, limit)
        return outage

    def __deepcopy__(self, memo: dict[int, Any]) -> Outage:
        return self  # redis-py copies the retry policy per connection: one outage for all

    @property
    def waited(self) -> float:
        """Seconds the current outage has lasted (0 while Redis answers)."""
        return 0.0 if self.since is None else time.monotonic() - self.since

    def answered(self) -> None:
        """A command got its answer: the outage, if any, is over."""
        self._armed = True
        if self.since is None:
            return
        waited = self.waited
        self.since, self.gave_up = None, False
        self.ended += 1
        if self._told_at is not None:
            self._told_at = None
            self._tell(f"Redis is back after {waited:.1f} s")

    def failed(self, error: BaseException) -> bool:
        """A command could not reach Redis: True to try again, False to give up."""
        now = self.last_failed = time.monotonic()
        if self.since is None:
            self.since = now
        waited = now - self.since
        if not self._armed or waited >= self.limit:
            self.gave_up = True  # the error raised says it (the process stops)
            return False
        if waited >= _TELL_AFTER and (self._told_at is None or now - self._told_at >= _TELL_EVERY):
            self._told_at = now
            self._tell(
                f"Redis at {self.url} unreachable for {waited:.1f} s, waiting up to "
                f"{self.limit:g} s ({self._scrub(str(error) or type(error).__name__)})"
            )
        return True

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _tell(self, line: str) -> None:
        """To the listeners (a command's display) if there are some, else to the log."""
        for listener in list(self.listeners):
            listener(line)
        if not self.listeners:
            _log.warning("%s", line)


_OUTAGES: weakref.WeakValueDictionary[tuple[str, float], Outage] = weakref.WeakValueDictionary()


def _outage_retry(outage: Outage) -> Any:
    """redis-py's asyncio retry policy, bounded by ``outage`` instead of a count."""
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError, TimeoutError

    class OutageRetry(Retry):
        """Retries connection failures (``LOADING`` included) while ``outage`` allows."""

        def __deepcopy__(self, memo: dict[int, Any]) -> OutageRetry:
            return self  # stateless but for the shared outage

        async def call_with_retry(
            self,
            do: Callable[[], Awaitable[Any]],
            fail: Callable[..., Any],
            is_retryable: Callable[[Exception], bool] | None = None,
            with_failure_count: bool = False,
        ) -> Any:
            failures = 0
            while True:
                try:
                    result = await do()
                except self._supported_errors as error:
                    failures += 1
                    await (fail(error, failures) if with_failure_count else fail(error))
                    if is_retryable is not None and not is_retryable(error):
                        raise
                    if not outage.failed(error):
                        raise
                    await asyncio.sleep(min(_BACKOFF_CAP, _BACKOFF_FIRST * 2 ** (failures - 1)))
                else:
                    outage.answered()
                    return result

    # The count is unused (the outage bounds the retries); redis-py compares it with
    # the failures so far only to decide what to record.
    return OutageRetry(ExponentialBackoff(cap=_BACKOFF_CAP, base=_BACKOFF_FIRST), 1 << 30,
                       (ConnectionError, TimeoutError, ConnectionResetError))  # fmt: skip


def _connection_class() -> Any:
    """redis-py's TCP connection, each send bounded by ``asyncio.timeout``: redis-py's
    own ``asyncio.wait_for`` makes a task and a timer per command on Python 3.11 (three
    a page for a worker, a tenth of its CPU); same bound, same errors."""
    from redis.asyncio.connection import Connection
    from redis.exceptions import TimeoutError as SendTimeout

    class TimedSends(Connection):
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            timeout = self.socket_timeout
            if not timeout:
                return await super().send_packed_command(command, check_health)
            self.socket_timeout = None  # one command at a time uses a connection
            try:
                async with asyncio.timeout(timeout):
                    await super().send_packed_command(command, check_health)
            except TimeoutError:
                await self.disconnect(nowait=True)
                raise SendTimeout("Timeout writing to socket") from None
            finally:
                self.socket_timeout = timeout

    return TimedSends


def load_lua(name: str) -> str:
    """The source of ``lua/<name>.lua`` shipped with this package; a line
    ``--#include other`` is replaced by the source of ``lua/other.lua``."""
    source = (resources.files(__package__) / "lua" / f"{name}.lua").read_text(encoding="utf-8")
    return "".join(
        load_lua(line.removeprefix("--#include").strip()) if line.startswith("--#include") else line
        for line in source.splitlines(keepends=True)
    )


async def execute_pipeline(pipe: Any) -> list[Any]:
    """``pipe.execute()``, run again if Redis lost the pipeline's scripts under it.

    redis-py loads a pipeline's scripts before it sends the pipeline, not when the
    pipeline is sent again after a reconnection: a Redis restarted in between answers
    NOSCRIPT. For pipelines that may run twice (of idempotent scripts) only.
    """
    from redis.exceptions import NoScriptError

    stack, scripts = list(pipe.command_stack), set(pipe.scripts)
    try:
        return list(await pipe.execute())
    except NoScriptError:
        pass
    pipe.command_stack, pipe.scripts = stack, scripts  # execute() emptied them
    return list(await pipe.execute())


# A full or read-only disk under the export or the state file is an OSError too, as a
# broken socket is: it must reach the user as what it is, not as "Redis unavailable".
_DISK_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO, errno.EISDIR, errno.ENOTDIR}
)


def _redis_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import ConnectionError, ResponseError, TimeoutError

    # A ResponseError (NOAUTH, READONLY, OOM, a script error) means we cannot go on either.
    return (ConnectionError, TimeoutError, ResponseError, OSError)


class RedisConnection:
    """A connection pool to one Redis, with scripts registered on it.

    Attributes:
        url: the URL with its password masked (safe to show).
        client: the redis-py asyncio client, for modules that use streams and sets.
    """

    def __init__(self, url: str, client: Redis, outage: Outage | None = None) -> None:
        self._url = url
        self.url = redact_url(url)
        self.client = client
        self.outage = outage or Outage(url)  #: how long Redis has been away, if it is
        self._errors = _redis_errors()

    @classmethod
    def around(cls, client: Redis) -> RedisConnection:
        """The seam around a redis-py client opened elsewhere (its URL rebuilt from the
        pool's settings, without a password, for messages)."""
        settings = client.connection_pool.connection_kwargs
        if "path" in settings:
            url = f"unix://{settings['path']}"
        else:
            url = f"redis://{settings.get('host', 'localhost')}:{settings.get('port', 6379)}"
        return cls(f"{url}/{settings.get('db', 0)}", client)

    def same_redis(self, other: RedisConnection) -> bool:
        """Whether ``other`` was opened to the same URL (so to the same Redis)."""
        return self._url == other._url

    @property
    def ride_key(self) -> str:
        """What connections to the same Redis share: their rides (see ``rides``)."""
        return self._url

    def script(self, source: str) -> AsyncScript:
        """Register a Lua script; calling it runs EVALSHA (loading it when missing)."""
        return self.client.register_script(source)

    async def call(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any], client: Any = None
    ) -> Any:
        """Run ``script`` (in ``client``, a pipeline, if given); redis-py's errors are
        left to the caller, which knows which of them mean what. Rides waiting for this
        Redis go in the same round trip."""
        return await send_with_rides(self, script, keys, args, client)

    def ride(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Ride:
        """Run ``script`` with the next round trip to this Redis (or alone, soon):
        ``ride(...).answer`` is its reply (redis-py's errors left to the caller)."""
        return ride(self, script, keys, args)

    @contextlib.contextmanager
    def boundary(self) -> Iterator[None]:
        """Where redis-py's exceptions become the library's: inside it, a failure to talk
        to Redis (connection, timeout, an error reply such as NOAUTH, READONLY or OOM)
        raises :class:`RedisUnavailableError` naming this Redis; other errors pass."""
        try:
            yield
        except self._errors as error:
            if not self.is_redis_error(error):
                raise
            raise self.unavailable(error) from None

    async def run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script``; any failure to do so raises :class:`RedisUnavailableError`."""
        with self.boundary():
            return await send_with_rides(self, script, keys, args)

    def unavailable(self, cause: BaseException | str) -> RedisUnavailableError:
        """The error naming this Redis (without its password) and what went wrong."""
        if self.outage.gave_up:
            cause = f"{cause} (unreachable for longer than {self.outage.limit:g} s)"
        return unavailable(self._url, cause)

    def is_redis_error(self, error: BaseException) -> bool:
        """Whether ``error`` came from talking to Redis (and is worth translating)."""
        if isinstance(error, OSError) and error.errno in _DISK_ERRNOS:
            return False
        return isinstance(error, self._errors)

    async def ping(self) -> None:
        """Check that Redis answers; raise :class:`RedisUnavailableError` if not."""
        with self.boundary():
            await self.client.ping()

    async def aclose(self) -> None:
        """Close every connection of the pool."""
        await self.client.aclose()


async def open_connection(
    url: str,
    *,
    command_timeout: float | None = _COMMAND_TIMEOUT,
    redis_outage: float = DEFAULT_OUTAGE,
) -> RedisConnection:
    """Connect to ``url`` and check that it answers.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]`` (or ``rediss://``, ``unix://``).
        command_timeout: seconds to wait for a reply; None for commands that block
            (``XREADGROUP ... BLOCK``) on a connection of their own.
        redis_outage: seconds every command waits for a Redis that went away once
            connected (a Redis that does not answer at the start is an error at once).

    Raises:
        RedisUnavailableError: redis-py is not installed, the URL is not valid, or
            Redis does not answer.
    """
    try:
        from redis.asyncio import Redis
    except ImportError:
        raise RedisUnavailableError(
            "a Redis URL needs redis-py: pip install 'tmapi-async[redis]'"
        ) from None
    try:
        outage = Outage.shared(url, redis_outage)
    except ValueError as error:
        raise RedisUnavailableError(str(error)) from None
    try:
        client = Redis.from_url(
            url,
            socket_connect_timeout=_CONNECT_TIMEOUT,
            socket_timeout=command_timeout,
            retry=_outage_retry(outage),
            health_check_interval=30,
            # (a rediss:// or unix:// URL brings its own class: the URL's wins)
            connection_class=_connection_class(),
        )
    except ValueError as error:
        raise unavailable(url, f"not a Redis URL ({error})") from None
    connection = RedisConnection(url, client, outage)
    try:
        await connection.ping()
    except BaseException:
        await connection.aclose()
        raise
    return connection
