"""The one seam to redis-py: connect to a Redis URL, run Lua scripts, say what went wrong.

redis-py (the ``redis`` extra) is imported here only, and only when a connection is
opened, so the library imports without it. Every failure to reach Redis becomes a
:class:`RedisUnavailableError` naming the URL without its password: a process that
cannot reach the shared limits stops, it never falls back to limits of its own.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from .._errors import FatalError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = [
    "REDIS_URL_ENV",
    "RedisConnection",
    "RedisUnavailableError",
    "load_lua",
    "open_connection",
    "redact_url",
    "redis_url_from_env",
]

REDIS_URL_ENV = "TMAPI_REDIS_URL"
_CONNECT_TIMEOUT = 5.0  # seconds to establish a connection
_COMMAND_TIMEOUT = 10.0  # seconds for a reply: no command of ours blocks for long
_RETRIES = 3  # a brief blip (a failover, a restart) is retried before giving up


class RedisUnavailableError(FatalError):
    """Redis could not be reached, refused us, or redis-py is not installed.

    Nothing more is admitted: limits shared through Redis are never replaced by
    limits of this process alone. The message names the URL without its password.
    """


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


def load_lua(name: str) -> str:
    """The source of ``lua/<name>.lua`` shipped with this package."""
    return (resources.files(__package__) / "lua" / f"{name}.lua").read_text(encoding="utf-8")


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

    def __init__(self, url: str, client: Redis) -> None:
        self._url = url
        self.url = redact_url(url)
        self.client = client
        self._errors = _redis_errors()

    def script(self, source: str) -> AsyncScript:
        """Register a Lua script; calling it runs EVALSHA (loading it when missing)."""
        return self.client.register_script(source)

    async def run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script``; any failure to do so raises :class:`RedisUnavailableError`."""
        try:
            return await script(keys=keys, args=args)
        except self._errors as error:
            raise self.unavailable(error) from None

    def unavailable(self, cause: BaseException | str) -> RedisUnavailableError:
        """The error naming this Redis (without its password) and what went wrong."""
        return unavailable(self._url, cause)

    def is_redis_error(self, error: BaseException) -> bool:
        """Whether ``error`` came from talking to Redis (and is worth translating)."""
        return isinstance(error, self._errors)

    async def ping(self) -> None:
        """Check that Redis answers; raise :class:`RedisUnavailableError` if not."""
        try:
            await self.client.ping()
        except self._errors as error:
            raise self.unavailable(error) from None

    async def aclose(self) -> None:
        """Close every connection of the pool."""
        await self.client.aclose()


async def open_connection(
    url: str, *, command_timeout: float | None = _COMMAND_TIMEOUT
) -> RedisConnection:
    """Connect to ``url`` and check that it answers.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]`` (or ``rediss://``, ``unix://``).
        command_timeout: seconds to wait for a reply; None for commands that block
            (``XREADGROUP ... BLOCK``) on a connection of their own.

    Raises:
        RedisUnavailableError: redis-py is not installed, the URL is not valid, or
            Redis does not answer.
    """
    try:
        from redis.asyncio import Redis
        from redis.backoff import ExponentialBackoff
        from redis.exceptions import ConnectionError, TimeoutError
        from redis.retry import Retry
    except ImportError:
        raise RedisUnavailableError(
            "a Redis URL needs redis-py: pip install 'tmapi-async[redis]'"
        ) from None
    try:
        client = Redis.from_url(
            url,
            socket_connect_timeout=_CONNECT_TIMEOUT,
            socket_timeout=command_timeout,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), _RETRIES),
            retry_on_error=[ConnectionError, TimeoutError],
            health_check_interval=30,
        )
    except ValueError as error:
        raise unavailable(url, f"not a Redis URL ({error})") from None
    connection = RedisConnection(url, client)
    try:
        await connection.ping()
    except BaseException:
        await connection.aclose()
        raise
    return connection
