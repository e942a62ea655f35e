"""``Client``: one token, one transport, one admission.

The throttle (an ``Admission``) and the transport are given or built here; the
shop-reading methods are the :class:`~._reader.ShopReader`'s, and the harvest engine
sees the client only as a ``PageSource``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Self, TypeVar
from urllib.parse import urlsplit

from ._auth import AuthScheme, Scheme, auth_mode
from ._errors import AuthenticationError, FatalError, InvalidParameterError
from ._harvest import Fetched
from ._limits import Limits, choose_limits
from ._protocol import DEFAULT_BASE_URL, ShopQuery
from ._reader import ShopReader
from ._redis.connection import redis_url_from_env
from ._redis.throttle import RedisThrottle
from ._request import Endpoint, PageRequests
from ._retry import RetryPolicy
from ._secret import short_fingerprint
from ._throttle import Admission, Throttle
from ._transport import AiohttpTransport, Transport

if TYPE_CHECKING:
    from ._metrics import Metrics

T = TypeVar("T")


def _base_url(base_url: str | None) -> str:
    url = (base_url or os.environ.get("TMAPI_BASE_URL") or DEFAULT_BASE_URL).strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise InvalidParameterError(
            f"base_url must be like https://api.tmapi.io (no query), got {url!r}"
        )
    return url.rstrip("/")


class Client(ShopReader):
    """An async client of TMAPI's ``/1688/shop/items/v2`` for one token.

    Every request it sends, retries included, passes one shared throttle: a token
    bucket of ``rate`` requests/s with capacity ``burst``, and at most
    ``concurrency`` requests in flight (fewer once a concurrency refusal shows where
    the token's own limit is). Transient failures are retried with exponential backoff and jitter;
    an authentication or balance error stops the client at once.

    Args:
        token: the key (an apiToken, or a key from the console's "API Keys" page);
            defaults to the ``TMAPI_TOKEN`` environment variable.
        auth: how the key is sent: ``"header"`` (``apikey: KEY``), ``"query"``
            (``?apiToken=KEY``) or ``"auto"``: the header, and on a 401 or 403 the
            query once, then whichever was accepted. Default ``TMAPI_AUTH``, then auto.
        base_url: defaults to ``TMAPI_BASE_URL``, then ``https://api.tmapi.io``.
        limits: how fast the token may go, a :class:`~tmapi_async.Limits` (``rate``
            requests/s sustained, ``burst``, ``concurrency`` in flight, a budget of
            ``max_requests``, once spent raising
            :class:`~tmapi_async.RequestBudgetExhausted`); a limit not set takes its
            default (10 requests/s, a burst of about rate/20, 8 in flight, no budget).
        rate, burst, concurrency, max_requests: a shorthand for ``limits`` (give one
            or the other).
        timeout: seconds for one request, from send to the last byte (TMAPI
            advises 60).
        retry: how transient failures are retried.
        throttle: the admission every request passes (an :class:`~tmapi_async.Admission`);
            default a :class:`~tmapi_async.Throttle` of the limits, which are then the
            throttle's to set.
        transport: what sends the requests (``get(query, auth=scheme) -> (status,
            headers, body)``);
            default aiohttp. Tests answer without sockets with a ``MockTransport``.
        redis_url: share the token's limits through this Redis with every client of
            the token (default ``TMAPI_REDIS_URL``); a limit not set keeps the one set
            there.
        redis_outage: seconds to wait (sending nothing new) for a Redis that went away
            before stopping with ``RedisUnavailableError``.
        metrics: count requests, their outcomes and durations, and the pages, items
            and shops of each harvest in this :class:`~tmapi_async.Metrics` (the
            ``metrics`` extra); default none.

    Use it as an async context manager::

        async with Client() as client:
            shop = await client.fetch_shop("https://xldjjg.1688.com/")
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        auth: str | None = None,
        base_url: str | None = None,
        rate: float | None = None,
        burst: int | None = None,
        concurrency: int | None = None,
        timeout: float = 60.0,
        max_requests: int | None = None,
        retry: RetryPolicy | None = None,
        throttle: Admission | None = None,
        transport: Transport | None = None,
        redis_url: str | None = None,
        redis_outage: float = 60.0,
        metrics: Metrics | None = None,
        limits: Limits | None = None,
    ) -> None:
        token = token if token is not None else os.environ.get("TMAPI_TOKEN")
        if not token or not token.strip():
            raise AuthenticationError("no API token: pass token=... or set TMAPI_TOKEN")
        if len(token.replace(",", " ").split()) > 1:  # a token holds no comma or space
            raise InvalidParameterError("several tokens given: use tm.TokenPool for them")
        if not timeout > 0:
            raise InvalidParameterError(f"timeout must be > 0 seconds, got {timeout!r}")
        limits = choose_limits(
            limits, rate=rate, burst=burst, concurrency=concurrency, max_requests=max_requests
        )
        if redis_url is not None and throttle is not None:
            raise InvalidParameterError("give redis_url or throttle, not both")
        if throttle is None and (redis_url := redis_url_from_env(redis_url)) is not None:
            throttle = RedisThrottle(redis_url, token.strip(), limits, redis_outage=redis_outage)
        elif throttle is None:
            throttle = Throttle(limits)
        elif limits != Limits():
            raise InvalidParameterError(
                "limits (rate, burst, concurrency, max_requests) belong to the throttle given"
            )
        super().__init__(base_url=_base_url(base_url), metrics=metrics)
        self._throttle: Admission = throttle
        self._token = token.strip()
        self._transport: Transport = transport or AiohttpTransport(
            base_url=self.base_url,
            token=self._token,
            timeout=timeout,
            # A throttle may size the pool itself (a worker's cap); else its concurrency.
            connections=getattr(throttle, "connections", throttle.concurrency),
        )
        # The key's scheme is this client's own, found out here: never stored.
        self._requests = PageRequests(
            self._token, throttle, self._transport, AuthScheme(auth_mode(auth)), retry
        )
        if metrics is not None:  # the token by its short fingerprint, never itself
            self._requests.instruments = metrics.instruments(
                short_fingerprint(self._token), throttle, self._requests
            )
        self._entered = False
        self._closed = False

    def __repr__(self) -> str:
        t = self._throttle
        return (
            f"Client(base_url={self.base_url!r}, rate={t.rate:g}, burst={t.burst}, "
            f"concurrency={t.concurrency})"
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._closed:
            raise RuntimeError("a closed Client cannot be reopened: create a new one")
        await self._throttle.start()
        await self._transport.open()
        self._entered = True
        return self

    async def aclose(self) -> None:
        """Close the HTTP session; the client cannot be used afterwards."""
        self._closed = True
        self._entered = False
        try:
            await self._transport.close()
        finally:
            await self._throttle.aclose()
            if self._metrics is not None:  # its counts stay; the client goes
                self._metrics.release(self._throttle)

    # -- observation and control -------------------------------------------------------

    @property
    def requests(self) -> int:
        """Requests sent so far, retries included: each one is billed."""
        return self._throttle.sent

    @property
    def retries(self) -> int:
        """Requests that were retries of a failed one (not the second way of sending a
        key that ``auth="auto"`` tries)."""
        return self._requests.retries

    @property
    def auth(self) -> Scheme | None:
        """How the key is sent, once the API accepted it (or the scheme fixed)."""
        return self._requests.auth.settled

    @property
    def throttle(self) -> Admission:
        """The gates every request passes (rate, burst, in-flight limit)."""
        return self._throttle

    @property
    def concurrency(self) -> int:
        """The most requests in flight at once."""
        return self._throttle.concurrency

    @property
    def fatal(self) -> FatalError | None:
        """The error that stopped the client, if one did."""
        return self._throttle.fatal

    def stop(self, error: FatalError) -> None:
        """Stop the client: requests waiting to leave or in backoff, and every later
        one, raise ``error`` at once; answers in flight still arrive."""
        self._throttle.fail(error)

    # -- one page (the PageSource) -----------------------------------------------------

    async def fetch_endpoint(
        self, endpoint: Endpoint[T], query: str, shop_url: str
    ) -> tuple[T, int]:
        """Ask another endpoint of the API about ``shop_url`` (``query`` encoded, no
        token) as a page is asked: its data and the requests it took, retries included.

        Raises: as :meth:`~tmapi_async.ShopReader.fetch_shop_profile`.
        """
        if not self._entered:
            raise RuntimeError("the client is not open: use `async with Client(...)`")
        return await self._requests.fetch_answer(endpoint, query, f"{endpoint.path} of {shop_url}")

    async def fetch_counted(self, query: ShopQuery, page: int) -> Fetched:
        """Fetch a page as a harvest does: a :class:`~tmapi_async.Fetched` with the
        answer, or, once retries are spent or the error is not transient, the error.

        Raises:
            FatalError: the client is stopped (the page was not answered).
        """
        if not self._entered:
            raise RuntimeError("the client is not open: use `async with Client(...)`")
        return await self._requests.fetch_counted(query, page)
