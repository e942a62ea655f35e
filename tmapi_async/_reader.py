"""``ShopReader``: a client's shop-reading methods, over the ``PageSource`` seam.

:class:`~tmapi_async.Client` (one token) and :class:`~tmapi_async.TokenPool` (several)
are siblings on this base. Each says how a page is fetched (``fetch_counted``) and
another endpoint asked (``fetch_endpoint``), how many requests may be in flight, what
it has sent, how it stops and how it opens and closes; the base turns that into a page,
a shop and many shops, through one :class:`~tmapi_async.Harvest`, and a shop's profile
and category tree.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from types import TracebackType
from typing import TYPE_CHECKING, Self, TypeVar

from ._errors import FatalError
from ._harvest import Fetched, Harvest, ShopSource
from ._journal import Journal
from ._listing import Listing, choose_listing
from ._models import ShopItem, ShopItemsPage, Sort
from ._profiles import SHOP_CATEGORY, SHOP_INFO, shop_query
from ._protocol import ShopQuery, validate_page
from ._request import Endpoint
from ._shop import ShopResult
from ._shop_profile import ShopCategories, ShopProfile

if TYPE_CHECKING:
    from ._metrics import Metrics

__all__ = ["ShopReader"]

T = TypeVar("T")


class ShopReader(ABC):
    """What every client can do: read a page, a shop, many shops (a :class:`PageSource`).

    A subclass provides the page source's members (:meth:`fetch_counted`,
    :attr:`concurrency`, :attr:`requests`, :attr:`retries`, :attr:`fatal`,
    :meth:`stop`) and its lifecycle (``__aenter__``, :meth:`aclose`).
    """

    def __init__(self, *, base_url: str, metrics: Metrics | None) -> None:
        self._base_url = base_url
        self._metrics = metrics

    # -- lifecycle ---------------------------------------------------------------------

    @abstractmethod
    async def __aenter__(self) -> Self:
        """Open the connections (and the throttles)."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @abstractmethod
    async def aclose(self) -> None:
        """Close the connections; the client cannot be used afterwards."""

    # -- observation and control (the PageSource) --------------------------------------

    @property
    def base_url(self) -> str:
        """The API's base URL this client sends to."""
        return self._base_url

    @property
    def metrics(self) -> Metrics | None:
        """The metrics this client keeps, if given."""
        return self._metrics

    @property
    @abstractmethod
    def concurrency(self) -> int:
        """The most requests in flight at once: a harvest runs as many workers."""

    @property
    @abstractmethod
    def requests(self) -> int:
        """Requests sent so far, retries included: each one is billed."""

    @property
    @abstractmethod
    def retries(self) -> int:
        """Requests that were retries of a failed one."""

    @property
    @abstractmethod
    def fatal(self) -> FatalError | None:
        """The error that stopped the client, if one did."""

    @abstractmethod
    def stop(self, error: FatalError) -> None:
        """Stop the client: requests waiting to leave or in backoff, and every later
        one, raise ``error`` at once; answers in flight still arrive."""

    @abstractmethod
    async def fetch_counted(self, query: ShopQuery, page: int) -> Fetched:
        """Fetch a page as a harvest does: a :class:`Fetched` with the answer, or, once
        retries are spent or the error is not transient, with the error.

        Raises:
            FatalError: the client is stopped (the page was not answered).
        """

    # -- one page ----------------------------------------------------------------------

    @abstractmethod
    async def fetch_endpoint(
        self, endpoint: Endpoint[T], query: str, shop_url: str
    ) -> tuple[T, int]:
        """Ask another endpoint of the API about ``shop_url`` (``query`` encoded, no
        token) as a page is asked: its data and the requests it took, retries included."""

    # -- who sells: a shop's profile and categories ------------------------------------

    async def fetch_shop_profile(self, shop_url: str) -> ShopProfile:
        """Fetch who sells: the shop's profile (``/1688/shop/shop_info``), one request.

        Sent like a page: through the same throttle, budget, retries and key's way.

        Raises:
            InvalidParameterError: not a shop URL (nothing is sent), or a 422.
            FatalError: authentication, balance or budget: the client is stopped.
            TransientError: the failure persisted through every retry.
        """
        home, query = shop_query(shop_url)
        answer, _ = await self.fetch_endpoint(SHOP_INFO, query, home)
        return answer

    async def fetch_shop_categories(self, shop_url: str) -> ShopCategories:
        """Fetch how the shop sorts its catalogue (``/1688/shop/category``), one request.

        Raises: as :meth:`fetch_shop_profile`.
        """
        home, query = shop_query(shop_url)
        answer, _ = await self.fetch_endpoint(SHOP_CATEGORY, query, home)
        return answer

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
        fetched = await self.fetch_counted(query, page)
        if fetched.error is not None:
            raise fetched.error
        assert fetched.answer is not None
        return fetched.answer

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
