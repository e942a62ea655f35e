"""The one module that knows aiohttp: send a GET, return ``(status, headers, body)``.

The token rides in every URL, and aiohttp's errors may quote the URL. So every
aiohttp or timeout error becomes a :class:`TransportError` whose text is scrubbed,
chained to the original only when no part of its traceback names the token.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from urllib.parse import quote

import aiohttp
from yarl import URL

from ._errors import TransportError
from ._protocol import ENDPOINT_PATH, redact


def _mentions(error: BaseException, secret: str) -> bool:
    rendered = "".join(traceback.format_exception(error))
    return secret in rendered or quote(secret, safe="") in rendered


class Transport:
    """An aiohttp session bound to one base URL and one token."""

    __slots__ = ("_prefix", "_session", "_timeout", "_token", "base_url", "connections")

    def __init__(self, *, base_url: str, token: str, timeout: float, connections: int) -> None:
        if not token:
            raise ValueError("token must not be empty")
        self.base_url = base_url.rstrip("/")
        self.connections = connections
        self._token = token
        self._timeout = timeout
        # Built once: a page costs one concatenation and no re-encoding.
        self._prefix = f"{self.base_url}{ENDPOINT_PATH}?apiToken={quote(token, safe='')}&"
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"Transport(base_url={self.base_url!r})"

    async def open(self) -> None:
        """Create the session (inside the running loop, as aiohttp requires)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections, limit_per_host=0),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                raise_for_status=False,
            )
            # aiohttp silently resends an idempotent request once when a kept-alive
            # connection drops; that resend would be billed yet pass no throttle,
            # budget or count. Our own retry, which passes all three, takes over.
            self._session._retry_connection = False

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def get(self, query: str) -> tuple[int, Mapping[str, str], bytes]:
        """GET the endpoint with ``query`` (encoded, without the token).

        Raises:
            TransportError: no complete answer arrived (refused, reset, timed out).
        """
        session = self._session
        if session is None:
            raise RuntimeError("the client is not open: use `async with Client(...)`")
        try:
            async with session.get(URL(self._prefix + query, encoded=True)) as response:
                return response.status, response.headers, await response.read()
        except TimeoutError as exc:
            error = self._error(f"no answer within {self._timeout:g} s", exc)
        except aiohttp.ClientError as exc:
            error = self._error(f"{type(exc).__name__}: {exc}", exc)
        # Raised outside the handlers, so that the aiohttp error is no implicit context.
        raise error

    @property
    def secret(self) -> str:
        """The token, for scrubbing messages; never put it in one."""
        return self._token

    def _error(self, message: str, cause: BaseException) -> TransportError:
        error = TransportError(redact(message, self._token))
        if not _mentions(cause, self._token):
            error.__cause__ = cause  # safe to show: the traceback keeps what went wrong
        return error
