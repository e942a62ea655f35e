"""``PageRequests``: how one page is asked for with one key, retries included.

Another :class:`Endpoint` of the API (a shop's profile, its categories) is asked the
same way: the endpoint says its path and how its answer is deciphered. Each send claims
the key's scheme (:class:`~._auth.AuthScheme`), passes the throttle, goes through the
transport and is deciphered; the answer is fed back to the throttle (congestion,
pauses, a fatal stop) and to the key's scheme (accepted or refused).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Generic, TypeVar

from ._auth import AuthScheme, Scheme
from ._errors import (
    AuthenticationError,
    FatalError,
    RateLimitError,
    TmapiError,
    TransientError,
)
from ._harvest import Fetched
from ._models import ShopItemsPage
from ._protocol import ENDPOINT_PATH, ShopQuery, decipher
from ._retry import RetryPolicy, retry_transient
from ._throttle import Admission
from ._transport import Answer, Transport

if TYPE_CHECKING:
    from ._metrics import TokenInstruments

__all__ = ["ITEMS", "Endpoint", "PageRequests"]

_log = logging.getLogger("tmapi_async")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Endpoint(Generic[T]):
    """One endpoint of the API: its path, and how an answer of it is deciphered
    (``decipher(status, headers, body, secret)``: the data, or the most specific error)."""

    path: str
    decipher: Callable[[int, Mapping[str, str], bytes, str], T]


def _decipher_page(
    status: int, headers: Mapping[str, str], body: bytes, secret: str
) -> ShopItemsPage:
    return decipher(status, headers, body, secret=secret)


ITEMS: Endpoint[ShopItemsPage] = Endpoint(ENDPOINT_PATH, _decipher_page)
"""The shop-items endpoint, which harvests page through."""


class _Sends:
    """The requests one page has sent (each billed): retries and a key's probe too."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class PageRequests:
    """Pages (and other endpoints' answers) asked for with one key, through one throttle
    and one transport."""

    __slots__ = ("_retry", "_throttle", "_token", "_transport", "auth", "instruments", "retries")

    def __init__(
        self,
        token: str,
        throttle: Admission,
        transport: Transport,
        auth: AuthScheme,
        retry: RetryPolicy | None,
    ) -> None:
        self._token = token
        self._throttle = throttle
        self._transport = transport
        self.auth = auth  #: how the key is sent
        self.retries = 0  #: requests that were retries of a failed one
        self.instruments: TokenInstruments | None = None  #: metrics of each request, if kept
        policy = retry or RetryPolicy()
        # Backoffs end at once when the client is stopped, like every other wait.
        self._retry = replace(policy, sleep=lambda s: throttle.interruptible(policy.sleep(s)))

    async def fetch_counted(self, query: ShopQuery, page: int) -> Fetched:
        """Fetch a page: its answer, or, once retries are spent or the error is not
        transient, its error; with the requests it took.

        Raises:
            FatalError: the client is stopped (the page was not answered).
        """
        encoded = f"{query.query}&page={page}"
        sends = _Sends()
        try:
            answer = await self._attempt(ITEMS, encoded, sends)
            return Fetched(answer, None, sends.count)
        except TransientError as error:
            first = error
        except FatalError:
            raise
        except TmapiError as error:
            return Fetched(None, error, sends.count)
        return await self._retry_page(first, encoded, query.shop_url, page, sends)

    async def _retry_page(
        self, first: TransientError, encoded: str, shop_url: str, page: int, sends: _Sends
    ) -> Fetched:
        """Retry a page whose first attempt failed with ``first``; count the sends."""

        def log_retry(error: TransientError) -> None:
            # Messages are scrubbed of the token where they are made.
            _log.info("retrying %s page %d after %r", shop_url, page, error)

        async def again() -> ShopItemsPage:
            return await self._attempt(ITEMS, encoded, sends, retry=True)

        try:
            page_answer = await retry_transient(first, again, self._retry, log_retry)
        except FatalError:
            raise
        except TmapiError as error:
            return Fetched(None, error, sends.count)
        return Fetched(page_answer, None, sends.count)

    async def fetch_answer(self, endpoint: Endpoint[T], encoded: str, what: str) -> tuple[T, int]:
        """Ask ``endpoint`` with the query ``encoded`` (no token) as a page is asked:
        the same throttle, key's way and retries. Returns the data and the requests sent.

        Raises:
            TmapiError: the most specific error, once retries are spent or at once when
                it is not transient (a :class:`FatalError` stops the client first).
        """
        sends = _Sends()
        try:
            return await self._attempt(endpoint, encoded, sends), sends.count
        except TransientError as error:
            first = error

        def log_retry(error: TransientError) -> None:
            _log.info("retrying %s after %r", what, error)

        async def again() -> T:
            return await self._attempt(endpoint, encoded, sends, retry=True)

        return await retry_transient(first, again, self._retry, log_retry), sends.count

    async def _attempt(
        self, endpoint: Endpoint[T], encoded: str, sends: _Sends, *, retry: bool = False
    ) -> T:
        # The success path: one claim of a settled scheme, one admission, one send, one
        # decode. Only the one request that probes a key's scheme may send twice.
        throttle, auth = self._throttle, self.auth
        while (claimed := auth.claim()) is None:  # another request is finding it out
            await throttle.interruptible(auth.wait())
        scheme, probing = claimed
        try:
            while True:
                (status, headers, body), ticket = await self._send(
                    endpoint.path, encoded, scheme, sends, retry
                )
                try:
                    page = self._decipher(endpoint, status, headers, body)
                except AuthenticationError as error:
                    verdict = auth.refused(scheme, error)
                    if isinstance(verdict, AuthenticationError):
                        self._fail(verdict)
                        raise verdict from None
                    _log.info("key refused as %s (%s): sending it as %s", scheme, error, verdict)
                    scheme, retry = verdict, False  # the other way, once: not a retry
                    continue
                except TransientError as error:  # no verdict on the key
                    if isinstance(error, RateLimitError):
                        throttle.congested(ticket)
                    if error.retry_after:
                        throttle.pause(error.retry_after)
                    raise
                except TmapiError as error:  # 422, 439: the key itself was accepted
                    auth.accepted(scheme)
                    if isinstance(error, FatalError):
                        self._fail(error)
                    raise
                auth.accepted(scheme)
                throttle.succeeded()
                return page
        finally:
            if probing:
                auth.undecided()  # unless it settled: the next request probes instead

    def _decipher(
        self, endpoint: Endpoint[T], status: int, headers: Mapping[str, str], body: bytes
    ) -> T:
        """The data an answer holds, or its error; counted when metrics are kept."""
        instruments = self.instruments
        if instruments is None:
            return endpoint.decipher(status, headers, body, self._token)
        try:
            page = endpoint.decipher(status, headers, body, self._token)
        except TmapiError as error:
            instruments.failed(error)
            raise
        instruments.ok += 1
        return page

    async def _send(
        self, path: str, encoded: str, scheme: Scheme, sends: _Sends, retry: bool
    ) -> tuple[Answer, int]:
        """One request through the throttle: the answer, and the admission's ticket."""
        if self.instruments is not None:
            return await self._send_measured(self.instruments, path, encoded, scheme, sends, retry)
        throttle = self._throttle
        ticket = await throttle.acquire()
        sends.count += 1
        if retry:  # counted once admitted: a retry that a stop cancels was never sent
            self.retries += 1
        try:
            return await self._get(path, encoded, scheme), ticket
        finally:
            throttle.release(ticket)

    def _get(self, path: str, encoded: str, scheme: Scheme) -> Awaitable[Answer]:
        # The items endpoint is asked as a transport has always been asked (no path):
        # transports written before the other endpoints keep working for items.
        if path == ENDPOINT_PATH:
            return self._transport.get(encoded, auth=scheme)
        return self._transport.get(encoded, auth=scheme, path=path)

    async def _send_measured(
        self,
        instruments: TokenInstruments,
        path: str,
        encoded: str,
        scheme: Scheme,
        sends: _Sends,
        retry: bool,
    ) -> tuple[Answer, int]:
        """:meth:`_send`, timing the wait for admission and the request on the wire."""
        throttle = self._throttle
        asked = time.perf_counter()
        ticket = await throttle.acquire()
        sent = time.perf_counter()
        instruments.admission_wait.observe(sent - asked)
        sends.count += 1
        if retry:
            self.retries += 1
        try:
            answer = await self._get(path, encoded, scheme)
        except TmapiError as error:  # no answer: a timeout, a reset
            instruments.failed(error)
            raise
        finally:
            throttle.release(ticket)
            instruments.duration.observe(time.perf_counter() - sent)
        return answer, ticket

    def _fail(self, error: FatalError) -> None:
        if self._throttle.fatal is None:
            _log.warning("stopping the client: %r", error)
        self._throttle.fail(error)
