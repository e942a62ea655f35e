"""``Client``: one token, one transport, one admission; a page, a shop, many shops.

The throttle (an ``Admission``) and the transport are given or built here; the harvest
engine sees the client only as a ``PageSource``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from types import TracebackType
from typing import TYPE_CHECKING, Self
from urllib.parse import urlsplit

from ._auth import AuthScheme, Scheme, auth_mode
from ._errors import AuthenticationError, FatalError, InvalidParameterError
from ._harvest import Fetched, Harvest, ShopSource
from ._journal import Journal
from ._listing import Listing, choose_listing
from ._models import ShopItem, ShopItemsPage, Sort
from ._protocol import DEFAULT_BASE_URL, ShopQuery, validate_page
from ._redis.connection import redis_url_from_env
from ._redis.throttle import RedisThrottle
from ._request import PageRequests
from ._retry import RetryPolicy
from ._secret import fingerprint
from ._shop import ShopResult
from ._throttle import Admission, Throttle
from ._transport import AiohttpTransport, Transport

if TYPE_CHECKING:
    from ._metrics import Metrics


def _base_url(base_url: str | None) -> str:
    url = (base_url or os.environ.get("TMAPI_BASE_URL") or DEFAULT_BASE_URL).strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise InvalidParameterError(
            f"base_url must be like https://api.tmapi.io (no query), got {url!r}"
        )
    return url.rstrip("/")


class Client:
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
        rate: requests per second, sustained.
        burst: requests that may leave at once after idle; default about rate/20.
        concurrency: the most requests in flight at once.
        timeout: seconds for one request, from send to the last byte (TMAPI
            advises 60).
        max_requests: a budget of requests (each is billed); once spent, requests
            raise :class:`~tmapi_async.RequestBudgetExhausted`.
        retry: how transient failures are retried.
        throttle: the admission every request passes (an :class:`~tmapi_async.Admission`);
            default a :class:`~tmapi_async.Throttle` of ``rate``, ``burst``,
            ``concurrency`` and ``max_requests``, which are then the throttle's to set.
        transport: what sends the requests (``get(query, auth=scheme) -> (status,
            headers, body)``);
            default aiohttp. Tests answer without sockets with a ``MockTransport``.
        redis_url: share the token's limits through this Redis with every client of
            the token (default ``TMAPI_REDIS_URL``); ``rate``, ``burst`` and
            ``concurrency`` left at their defaults keep the limits set there.
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
        rate: float = 10.0,
        burst: int | None = None,
        concurrency: int = 8,
        timeout: float = 60.0,
        max_requests: int | None = None,
        retry: RetryPolicy | None = None,
        throttle: Admission | None = None,
        transport: Transport | None = None,
        redis_url: str | None = None,
        redis_outage: float = 60.0,
        metrics: Metrics | None = None,
    ) -> None:
        token = token if token is not None else os.environ.get("TMAPI_TOKEN")
        if not token or not token.strip():
            raise AuthenticationError("no API token: pass token=... or set TMAPI_TOKEN")
        if len(token.replace(",", " ").split()) > 1:  # a token holds no comma or space
            raise InvalidParameterError("several tokens given: use tm.TokenPool for them")
        if not timeout > 0:
            raise InvalidParameterError(f"timeout must be > 0 seconds, got {timeout!r}")
        if redis_url is not None and throttle is not None:
            raise InvalidParameterError("give redis_url or throttle, not both")
        if throttle is None and (redis_url := redis_url_from_env(redis_url)) is not None:
            throttle = RedisThrottle.for_client(
                redis_url, token.strip(), rate=rate, burst=burst, concurrency=concurrency,
                max_requests=max_requests, redis_outage=redis_outage,
            )  # fmt: skip
        elif throttle is None:
            try:
                throttle = Throttle(rate=rate, burst=burst, concurrency=concurrency,
                                    max_requests=max_requests)  # fmt: skip
            except ValueError as exc:
                raise InvalidParameterError(str(exc)) from None
        elif (rate, burst, concurrency, max_requests) != (10.0, None, 8, None):
            raise InvalidParameterError(
                "rate, burst, concurrency and max_requests belong to the throttle given"
            )
        self._throttle: Admission = throttle
        self._token = token.strip()
        self._base_url = _base_url(base_url)
        self._transport: Transport = transport or AiohttpTransport(
            base_url=self._base_url,
            token=self._token,
            timeout=timeout,
            # A throttle may size the pool itself (a worker's cap); else its concurrency.
            connections=getattr(throttle, "connections", throttle.concurrency),
        )
        # The key's scheme is this client's own, found out here: never stored.
        self._requests = PageRequests(
            self._token, throttle, self._transport, AuthScheme(auth_mode(auth)), retry
        )
        self._metrics = metrics
        if metrics is not None:  # the token by its short fingerprint, never itself
            self._requests.instruments = metrics.instruments(
                fingerprint(self._token)[:8], throttle, self._requests
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

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

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
    def base_url(self) -> str:
        """The API's base URL this client sends to."""
        return self._base_url

    @property
    def metrics(self) -> Metrics | None:
        """The metrics this client keeps, if given."""
        return self._metrics

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

    # -- one page ----------------------------------------------------------------------

    async def get_shop_items(
        self,
        shop_url: str,
        page: int = 1,
        page_size: int | None = None,
        sort: str | Sort | None = None,
        cat: str | None = None,
        cat_type: str | None = None,
        *,
        listing: Listing | None = None,
    ) -> ShopItemsPage:
        """Fetch one page of a shop's listing, retrying transient failures.

        The listing is ``listing`` or the options (default 20 a page, default order).

        Raises:
            InvalidParameterError: a bad argument (nothing is sent) or a 422.
            FatalError: authentication, balance or budget: the client is stopped.
            TransientError: the failure persisted through every retry.
        """
        query = ShopQuery.build(
            shop_url, listing=choose_listing(listing, page_size, sort, cat, cat_type)
        )
        return await self.fetch_page(query, validate_page(page))

    async def fetch_page(self, query: ShopQuery, page: int) -> ShopItemsPage:
        """Fetch page ``page`` of a validated query, retrying transient failures."""
        # Through fetch_counted, which a subclass (a pool of tokens) may route elsewhere.
        answer, error, _ = await self.fetch_counted(query, page)
        if error is not None:
            raise error
        assert answer is not None
        return answer

    async def fetch_counted(self, query: ShopQuery, page: int) -> Fetched:
        """Fetch a page as a harvest does: ``(answer, None, requests)`` or, once retries
        are spent or the error is not transient, ``(None, error, requests)``.

        Raises:
            FatalError: the client is stopped (the page was not answered).
        """
        if not self._entered:
            raise RuntimeError("the client is not open: use `async with Client(...)`")
        return await self._requests.fetch_counted(query, page)

    # -- one shop ----------------------------------------------------------------------

    async def iter_shop_items(
        self,
        shop_url: str,
        *,
        page_size: int | None = None,
        sort: str | Sort | None = None,
        cat: str | None = None,
        cat_type: str | None = None,
        listing: Listing | None = None,
        max_pages: int | None = None,
    ) -> AsyncIterator[ShopItem]:
        """Yield every product of a shop once, in page order, while later pages load.

        The listing is ``listing`` or the options (default 20 a page, default order);
        ``max_pages`` caps the pages read (see :class:`Harvest`).

        Raises (after yielding what could be read): the error that left the shop
        partial or failed; at once: bad arguments and fatal errors.
        """
        query = ShopQuery.build(
            shop_url, listing=choose_listing(listing, page_size, sort, cat, cat_type)
        )
        waiting: dict[int, list[ShopItem]] = {}
        next_page = 1
        result: ShopResult | None = None
        harvest = Harvest(self, [query], keep_items=False, max_pages=max_pages)
        async for event in harvest.events():
            if isinstance(event, ShopResult):
                result = event
                continue
            if event.page < next_page:  # a page fetched again after drift
                for item in event.items:
                    yield item
                continue
            waiting.setdefault(event.page, []).extend(event.items)
            while next_page in waiting:
                for item in waiting.pop(next_page):
                    yield item
                next_page += 1
        for page in sorted(waiting):  # after a short page ended the listing early
            for item in waiting[page]:
                yield item
        if result is not None and result.error is not None:
            raise result.error

    async def fetch_shop(
        self,
        shop_url: str,
        *,
        page_size: int | None = None,
        sort: str | Sort | None = None,
        cat: str | None = None,
        cat_type: str | None = None,
        listing: Listing | None = None,
        max_pages: int | None = None,
        known: Callable[[str], bool] | None = None,
    ) -> ShopResult:
        """Fetch every product of a shop: page 1, then the other pages concurrently.

        The listing is ``listing`` or the options (default 20 a page, default order);
        ``max_pages`` caps the pages read (see :class:`Harvest`). A shop-level
        failure does not raise: the result's ``status`` is ``"failed"`` or
        ``"partial"`` with ``error`` set. ``known(item_id)`` (with ``sort="time_down"``)
        fetches the new listings only (see :meth:`harvest`).

        Raises:
            InvalidParameterError: a bad argument, the shop URL included.
            FatalError: authentication, balance or budget.
        """
        query = ShopQuery.build(
            shop_url, listing=choose_listing(listing, page_size, sort, cat, cat_type)
        )
        # Closed on return, so the harvest's tasks end now, not when garbage-collected.
        by_shop = None if known is None else (lambda _shop, item_id: known(item_id))
        shop = Harvest(self, [query], listing=query.listing, max_pages=max_pages, known=by_shop)
        async with aclosing(aiter(shop)) as results:
            async for result in results:
                return result
        raise AssertionError("a harvest of one shop yields one result")  # pragma: no cover

    # -- many shops --------------------------------------------------------------------

    def harvest(
        self,
        shop_urls: ShopSource,
        *,
        page_size: int | None = None,
        sort: str | Sort | None = None,
        cat: str | None = None,
        cat_type: str | None = None,
        listing: Listing | None = None,
        journal: Journal | None = None,
        keep_items: bool = True,
        max_open_shops: int | None = None,
        max_pages: int | None = None,
        known: Callable[[str, str], bool] | None = None,
    ) -> Harvest:
        """Harvest many shops; iterate the result for a :class:`ShopResult` per shop.

        ``shop_urls`` is consumed lazily. Pages of shops already started go before new
        shops are opened, so memory stays bounded; a shop that fails is reported and
        the harvest goes on; a fatal error stops it and is raised.

        Args:
            listing: the listing of every shop, or give its options (``page_size``,
                ``sort``, ``cat``, ``cat_type``) separately.
            journal: records progress for resuming (see :class:`Journal`).
            keep_items: keep each shop's items in its result; pass ``False`` when a
                journal streams them to a file, so memory does not grow with items.
            max_open_shops: shops harvested at once; default ``2 * concurrency``.
            max_pages: the most pages read of one shop (see :class:`Harvest`).
            known: new listings only: ``known(shop_url, item_id)`` tells whether an
                earlier harvest holds an item (e.g. a :class:`KnownItems`). Give
                ``sort="time_down"``: each shop is read newest first, a page at a time,
                and stops at the first page holding a known item; only the unknown
                items are harvested.

        Raises:
            InvalidParameterError: a bad listing option, a listing given twice, or
                ``known`` without ``sort="time_down"``.
        """
        return Harvest(
            self,
            shop_urls,
            page_size=page_size,
            sort=sort,
            cat=cat,
            cat_type=cat_type,
            listing=listing,
            journal=journal,
            keep_items=keep_items,
            max_open_shops=max_open_shops,
            max_pages=max_pages,
            known=known,
        )
