"""How requests reach the API: a ``Transport`` answers ``(status, headers, body)``.

:class:`AiohttpTransport` is the one class that knows aiohttp. The key rides in every
request, in the URL (``apiToken``) or in the ``apikey`` header, and aiohttp's errors may
quote the URL or carry the headers (``request_info``). So every aiohttp or timeout error
becomes a :class:`TransportError` whose text is scrubbed, chained to the original only
when nothing it carries names the key.

:class:`MockTransport` answers from a function instead, with no socket: tests of the
client inject answers with it, as with httpx's transport of the same name.
"""

from __future__ import annotations

import asyncio
import inspect
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
from yarl import URL

from ._auth import HEADER, Scheme
from ._errors import DecodeError, TransportError
from ._protocol import ENDPOINT_PATH
from ._secret import Redactor, redactor

Answer = tuple[int, Mapping[str, str], bytes]
"""An HTTP answer: status, headers, body."""

MAX_ANSWER_BYTES = 16 * 1024 * 1024
"""The largest body read. A page of 20 products is some 20 kB; a proxy or a broken
server that streams more must not take the process's memory with it."""


class Transport(Protocol):
    """What sends the client's requests."""

    async def open(self) -> None:
        """Get ready to send (the client's ``__aenter__`` awaits it)."""

    async def close(self) -> None:
        """Let go of connections (the client's ``aclose`` awaits it)."""

    async def get(self, query: str, *, auth: Scheme = "query", path: str = ENDPOINT_PATH) -> Answer:
        """Answer the endpoint's GET for ``query`` (encoded; no token, which the
        transport adds if it sends over a network, the way ``auth`` says).

        ``path`` is the endpoint's; it is passed only for the endpoints beside the
        shop-items one (shop profiles and categories), so a transport that serves items
        alone may leave it out.

        Raises:
            TransportError: no complete answer arrived; its text names no token.
        """


Handler = Callable[[str], Answer | Awaitable[Answer]]


class MockTransport:
    """A :class:`Transport` that asks ``handler(query)`` (plain or async) for answers.

    ``queries`` lists every query asked, in order, ``auths`` the scheme each was
    sent with (read ``auths[-1]`` in the handler to answer by scheme) and ``paths`` the
    endpoint each asked (read ``paths[-1]`` to answer by endpoint). The handler may
    raise :class:`TransportError` to act as a network failure.
    """

    __slots__ = ("_handler", "auths", "paths", "queries")

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.queries: list[str] = []
        self.auths: list[Scheme] = []
        self.paths: list[str] = []

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def get(self, query: str, *, auth: Scheme = "query", path: str = ENDPOINT_PATH) -> Answer:
        """The handler's answer to ``query``."""
        self.queries.append(query)
        self.auths.append(auth)
        self.paths.append(path)
        answer = self._handler(query)
        if inspect.isawaitable(answer):
            return await answer
        return answer


class Deadlines:
    """One timer for every request in flight, where aiohttp keeps one per request.

    aiohttp's ``ClientTimeout(total=...)`` schedules a timer per request and cancels it
    at the answer: a timer handle, a heap push and a cancel each time, for a deadline
    that almost never comes. Here each request notes its deadline in a dict (in order
    of start, so of deadline) and one timer, ticking while requests are in flight,
    cancels the tasks whose deadline has passed: a timeout fires at most one tick late
    (a quarter of it, a second at most).
    """

    __slots__ = ("_due", "_expired", "_handle", "_tick", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._tick = min(1.0, seconds / 4)
        self._due: dict[asyncio.Task[Any], float] = {}  # in flight: task → deadline
        self._expired: set[asyncio.Task[Any]] = set()
        self._handle: asyncio.TimerHandle | None = None

    def enter(self, task: asyncio.Task[Any]) -> None:
        """``task`` sends a request now."""
        loop = task.get_loop()
        self._due[task] = loop.time() + self.seconds
        if self._handle is None:
            self._handle = loop.call_later(self._tick, self._check, loop)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """True when ``task``'s deadline passed and cancelled it."""
        return task in self._expired

    def leave(self, task: asyncio.Task[Any]) -> None:
        """``task``'s request is over. A deadline's cancel that ended as another error
        (aiohttp may wrap it) is taken back, so that it does not linger on the task."""
        del self._due[task]
        if self._expired and task in self._expired:
            self._expired.discard(task)
            if task.cancelling():
                task.uncancel()

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        late = []
        for task, deadline in self._due.items():
            if deadline > now:
                break  # the rest started later: their deadlines are later
            if task not in self._expired:
                late.append(task)
        for task in late:
            self._expired.add(task)
            task.cancel()
        self._handle = loop.call_later(self._tick, self._check, loop) if self._due else None

    def close(self) -> None:
        """Stop ticking."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def _mentions(error: BaseException, scrubber: Redactor) -> bool:
    """Whether ``error`` shows the key: in its traceback, or in the request (headers
    included) that aiohttp keeps on a response error, anywhere in its chain."""
    text = "".join(traceback.format_exception(error))
    seen: BaseException | None = error
    chain: set[int] = set()
    while seen is not None and id(seen) not in chain:
        chain.add(id(seen))
        text += repr(getattr(seen, "request_info", ""))
        seen = seen.__cause__ or seen.__context__
    return scrubber.mentions(text)


class AiohttpTransport:
    """An aiohttp session bound to one base URL and one token."""

    __slots__ = (
        "_deadlines",
        "_header",
        "_prefix",
        "_quoted_token",
        "_redactor",
        "_session",
        "_timeout",
        "base_url",
        "connections",
    )

    def __init__(self, *, base_url: str, token: str, timeout: float, connections: int) -> None:
        if not token:
            raise ValueError("token must not be empty")
        self.base_url = base_url.rstrip("/")
        self.connections = connections
        self._redactor = redactor(token)
        self._timeout = timeout
        # Built once: a page costs one concatenation and no re-encoding.
        self._prefix: dict[Scheme, str] = {
            "query": f"{self.base_url}{ENDPOINT_PATH}?apiToken={quote(token, safe='')}&",
            "header": f"{self.base_url}{ENDPOINT_PATH}?",
        }
        self._quoted_token = quote(token, safe="")
        self._header = {HEADER: token}
        self._session: aiohttp.ClientSession | None = None
        self._deadlines = Deadlines(timeout)

    def __repr__(self) -> str:
        return f"AiohttpTransport(base_url={self.base_url!r})"

    async def open(self) -> None:
        """Create the session (inside the running loop, as aiohttp requires)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections, limit_per_host=0),
                # The whole request's deadline is kept by self._deadlines, not by a
                # timer per request; aiohttp times only the opening of a connection.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeout),
                raise_for_status=False,
            )
            # aiohttp silently resends an idempotent request once when a kept-alive
            # connection drops; that resend would be billed yet pass no throttle,
            # budget or count. Our own retry, which passes all three, takes over.
            self._session._retry_connection = False

    async def close(self) -> None:
        """Close the session and its connections."""
        self._deadlines.close()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def get(self, query: str, *, auth: Scheme = "query", path: str = ENDPOINT_PATH) -> Answer:
        """GET the endpoint ``path`` with ``query`` (encoded, without the token), the
        token sent as ``auth`` says.

        Raises:
            TransportError: no complete answer arrived (refused, reset, cut, timed out).
        """
        session = self._session
        if session is None:
            raise RuntimeError("the client is not open: use `async with Client(...)`")
        task = asyncio.current_task()
        assert task is not None
        deadlines = self._deadlines
        deadlines.enter(task)
        try:
            prefix = self._prefix[auth] if path == ENDPOINT_PATH else self._other(path, auth)
            url = URL(prefix + query, encoded=True)
            headers = self._header if auth == "header" else None
            async with session.get(url, headers=headers) as response:
                length = response.content_length
                if length is None:  # chunked: counted as it comes
                    return response.status, response.headers, await _read_bounded(response)
                if length > MAX_ANSWER_BYTES:
                    raise _too_large()
                return response.status, response.headers, await response.read()
        except asyncio.CancelledError:
            # The deadline's cancel, and no one else's: a timeout, as aiohttp's would be.
            if not deadlines.expired(task) or task.cancelling() > 1:
                raise  # someone else's cancel (too)
            error = self._error(f"no answer within {self._timeout:g} s", TimeoutError())
        except TimeoutError as exc:  # opening the connection took too long
            error = self._error(f"no answer within {self._timeout:g} s", exc)
        except aiohttp.ClientError as exc:
            error = self._error(f"{type(exc).__name__}: {exc}", exc)
        finally:
            deadlines.leave(task)
        # Raised outside the handlers, so that the aiohttp error is no implicit context.
        raise error

    def _other(self, path: str, auth: Scheme) -> str:
        """The URL prefix of an endpoint beside the shop-items one."""
        if auth == "query":
            return f"{self.base_url}{path}?apiToken={self._quoted_token}&"
        return f"{self.base_url}{path}?"

    def _error(self, message: str, cause: BaseException) -> TransportError:
        error = TransportError(self._redactor.scrub(message))
        if not _mentions(cause, self._redactor):
            error.__cause__ = cause  # safe to show: the traceback keeps what went wrong
        return error


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    """The body of an answer of unknown or excessive length, refused past the bound."""
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise _too_large()
    return bytes(body)


def _too_large() -> DecodeError:
    return DecodeError(f"answer over {MAX_ANSWER_BYTES >> 20} MiB: no page is that large")
