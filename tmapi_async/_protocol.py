"""The endpoint's protocol, free of I/O: what to send, and what an answer means.

``ShopQuery`` validates a request before anything is sent; ``decipher`` is the one
place that turns ``(status, headers, body)`` into a page or the most specific error.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import quote, urlsplit

import msgspec

from ._errors import (
    AuthenticationError,
    BalanceError,
    DecodeError,
    InvalidParameterError,
    RateLimitError,
    TmapiError,
    TransientError,
    UpstreamError,
    quote_input,
)
from ._listing import DEFAULT_LISTING, Listing, choose_listing
from ._models import ShopItemsPage, Sort, error_decoder, page_decoder
from ._secret import REDACTED as REDACTED  # the marker, where callers look for it
from ._secret import redact as _redact

ENDPOINT_PATH = "/1688/shop/items/v2"
T = TypeVar("T")
DEFAULT_BASE_URL = "https://api.tmapi.io"

_SHOP_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")

SERVICE_HOSTS = frozenset(
    {
        # Browsing and buying: the portal, the mobile site, search, product pages,
        # promotions and topic pages, the cart and orders.
        *("www", "m", "s", "search", "detail", "offer", "show", "sale", "air", "page"),
        *("dj", "p4p", "cart", "trade"),
        # Accounts and the sellers' tools.
        *("login", "passport", "member", "work", "seller", "fuwu", "open", "wuliu"),
        # Content, rules and help.
        *("club", "news", "info", "help", "rule", "daxue", "exodus"),
    }
)
"""Hosts ``NAME.1688.com`` that are 1688's own services, not shops.

1688 reserves the names of its services, so no shop can be called so; an URL on one
of them (a product page on ``detail``, a search on ``s``, the mobile site ``m``) is
refused before anything is sent, instead of being billed as a shop that does not exist.
"""

_USE_INSTEAD = "use the shop's own home page https://NAME.1688.com/"
_MOBILE_HINT = (
    "a page of the mobile site: open the shop on a computer and copy its "
    "https://NAME.1688.com/ address"
)


def _not_a_shop(host: str, name: str) -> str:
    """Why a host on 1688.com is no shop, and which URL to use instead."""
    if name == "m" or host.endswith(".m.1688.com"):
        return f"{host} is {_MOBILE_HINT}"
    if name == "detail":
        return (
            f"{host} is a product page, not a shop: {_USE_INSTEAD} (linked from the product page)"
        )
    return f"{host} is one of 1688's own services, not a shop: {_USE_INSTEAD}"


def normalise_shop_url(shop_url: str) -> str:
    """Return the shop's home page ``https://NAME.1688.com/`` or raise.

    Accepts any http(s) URL on the shop's host (a product or category page of the
    shop too), with surrounding spaces. Hosts of 1688's own services
    (:data:`SERVICE_HOSTS`: ``www``, ``m``, ``detail``, ``s``...) are no shop.

    Raises:
        InvalidParameterError: not an http(s) URL whose host is ``NAME.1688.com``, or
            the host is one of 1688's services; the message says which URL to use.
    """
    text = shop_url.strip() if isinstance(shop_url, str) else ""
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
    except ValueError:
        parts, host = None, ""
    name, dot, domain = host.partition(".")
    why = "it must be a 1688 shop URL like https://NAME.1688.com/"
    if parts is not None and parts.scheme.lower() in ("http", "https"):
        if (dot and domain == "1688.com" and name in SERVICE_HOSTS) or host.endswith(".m.1688.com"):
            why = _not_a_shop(host, name)
        elif dot and domain == "1688.com" and _SHOP_NAME.fullmatch(name):
            return f"https://{name}.1688.com/"
    raise InvalidParameterError(f"shop_url {quote_input(shop_url)} is refused: {why}")


def validate_page(page: int) -> int:
    """Return ``page`` if it is an int ≥ 1, or raise :class:`InvalidParameterError`."""
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise InvalidParameterError(f"page must be an integer >= 1, got {quote_input(page)}")
    return page


@dataclass(frozen=True)  # no slots: with them, setting a property raises TypeError
class ShopQuery:
    """One shop's listing to read, minus the page number: a shop URL plus a
    :class:`~tmapi_async.Listing`.

    ``query`` is the encoded query string without token or page, built once so that
    each page costs one string concatenation. Build one with :meth:`build`, which
    validates; the constructor trusts ``shop_url`` to be normalised already.
    """

    shop_url: str
    listing: Listing = DEFAULT_LISTING

    @classmethod
    def build(
        cls,
        shop_url: str,
        *,
        page_size: int = 20,
        sort: str | Sort = "default",
        cat: str | int | None = None,
        cat_type: str | int | None = None,
        listing: Listing | None = None,
    ) -> ShopQuery:
        """Validate the shop URL and the listing, given whole or as its options (not
        both); raise :class:`InvalidParameterError` naming the bad one."""
        if listing is None:
            listing = Listing(page_size, sort, cat, cat_type)
        elif (page_size, sort, cat, cat_type) != (20, "default", None, None):
            raise InvalidParameterError("give either listing= or its options, not both")
        return cls(normalise_shop_url(shop_url), choose_listing(listing))

    query: str = field(init=False, repr=False, compare=False)
    """The encoded query string of everything but the token and the page."""

    def __post_init__(self) -> None:
        # Once: each page reuses it.
        query = f"shop_url={quote(self.shop_url, safe='')}&{self.listing.query}"
        object.__setattr__(self, "query", query)

    @property
    def page_size(self) -> int:
        """Products per page asked for (the listing's)."""
        return self.listing.page_size

    @property
    def sort(self) -> str:
        """The listing's sort order."""
        return self.listing.sort

    @property
    def cat(self) -> str | None:
        """The listing's category id, if any."""
        return self.listing.cat

    @property
    def cat_type(self) -> str | None:
        """The listing's category type, if any."""
        return self.listing.cat_type


MAX_RETRY_AFTER = 300.0
"""The longest ``Retry-After`` followed, in seconds. A few minutes is a rate limit a
harvest can wait out; a server asking for hours (or for ``1e9``) would hold the whole
client, and every shop with it, past every timeout."""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date).

    Garbage gives ``None``; a wait longer than :data:`MAX_RETRY_AFTER` is cut to it.
    """
    if not value:
        return None
    value = value.strip()[:64]  # no header worth reading is longer
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # "inf" and "nan" parse too: a pause forever is no instruction to follow
        return min(max(0.0, seconds), MAX_RETRY_AFTER) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
        seconds = when.timestamp() - (time.time() if now is None else now)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


_CONCURRENCY_HINT = "concurrency"


def error_for(
    code: int, message: str, *, status: int | None, retry_after: float | None = None
) -> TmapiError:
    """The most specific error for an API code (HTTP status or envelope ``code``)."""
    if code in (401, 403):
        return AuthenticationError(message or "token not authorised", code=code, status=status)
    if code == 439:
        return BalanceError(message or "insufficient balance", code=code, status=status)
    if code in (400, 404, 422):
        return InvalidParameterError(message or "parameter error", code=code, status=status)
    if code == 429 or (code == 503 and _CONCURRENCY_HINT in message.lower()):
        return RateLimitError(
            message or "too many requests", code=code, status=status, retry_after=retry_after
        )
    if code in (417, 499) or code >= 500:
        return UpstreamError(
            message or "upstream error", code=code, status=status, retry_after=retry_after
        )
    # An unknown code: retrying a few times is cheaper than losing the page.
    return TransientError(
        message or "unexpected answer", code=code, status=status, retry_after=retry_after
    )


def redact(text: str, secret: str) -> str:
    """``text`` scrubbed of ``secret`` by the one redaction rule (:mod:`._secret`)."""
    return _redact(text, secret) if secret else text


_MESSAGE_LIMIT = 200  # the server's msg, in an error: a sentence, not a page of garbage


def _error_message(body: bytes, secret: str) -> tuple[int | None, str]:
    try:
        head = error_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError):  # nested past msgspec's depth limit
        return None, ""
    message = redact((head.msg or "").strip(), secret)  # scrub whole, then cut
    if len(message) > _MESSAGE_LIMIT:
        message = f"{message[:_MESSAGE_LIMIT]}… ({len(message)} characters)"
    return head.code, message


def decipher(
    status: int, headers: Mapping[str, str], body: bytes, *, secret: str = ""
) -> ShopItemsPage:
    """Turn one HTTP answer into a page, or raise the most specific :class:`TmapiError`.

    ``secret`` (the token) is scrubbed from any message the server sends back. A page
    whose ``page_size`` or ``total_count`` is out of bounds (see :class:`ShopItemsPage`)
    is a :class:`DecodeError`: retried, like any answer that makes no sense.
    """
    return decipher_as(_page_envelope, "a shop-items page", status, headers, body, secret=secret)


def _page_envelope(body: bytes) -> tuple[int, ShopItemsPage | None]:
    envelope = page_decoder.decode(body)
    return envelope.code, envelope.data


def decipher_as(
    decode: Callable[[bytes], tuple[int, T | None]],
    shape: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret: str = "",
) -> T:
    """:func:`decipher` for any endpoint of the API: ``decode(body)`` gives the envelope's
    ``(code, data)`` (raising msgspec's errors), ``shape`` names what ``data`` should be.

    Every endpoint shares the envelope and the error codes, so an answer means the same
    on each: the data, or the most specific :class:`TmapiError`.
    """
    shape_error = ""
    if status == 200:
        try:
            code, data = decode(body)
        except msgspec.ValidationError as exc:
            code = None  # an error envelope whose data is not the shape: read below
            shape_error = str(exc)[:_MESSAGE_LIMIT]  # names the field, never its value
        except msgspec.DecodeError as exc:
            raise DecodeError(f"answer is not valid JSON: {exc}", status=status) from exc
        except RecursionError:  # arrays or objects nested thousands deep: no answer
            raise DecodeError("answer nests too deep to be read", status=status) from None
        if code == 200:
            if data is None:
                raise DecodeError("answer has code 200 but no data", code=200, status=status)
            return data
    code, message = _error_message(body, secret)
    if status == 200 and code in (None, 200):
        detail = f": {shape_error}" if shape_error else ""
        raise DecodeError(f"answer is not shaped like {shape}{detail}", status=status)
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if status != 200:
        code = status  # the HTTP status is the stronger signal
        if not message:
            message = f"HTTP {status}"
    assert code is not None
    raise error_for(code, message, status=status, retry_after=retry_after)
