"""Typed shapes of the shop-items answer, decoded with msgspec.

The API is loose (docs/api-facts.md, "Data quirks"), so the models are tolerant where it is:
``item_id`` string or int, ``total_count`` int or numeric string, ``quantity`` null,
unknown fields ignored. Normalisation happens once, at decode time.

Where looseness would be dangerous it is refused at decode time, by msgspec's own
constraint checks (in C, so the success path stays cheap): a ``page_size`` or
``total_count`` that is negative, zero (``page_size``) or absurd fails to decode, so
no plan ever divides by it or sizes itself by it.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from ._listing import Sort

__all__ = [
    "MAX_PAGE_SIZE",
    "MAX_TOTAL_COUNT",
    "Envelope",
    "SaleInfo",
    "ShopItem",
    "ShopItemsPage",
    "Sort",
    "normalise_image_url",
]

MAX_PAGE_SIZE = 10_000
"""The largest ``page_size`` an answer may report. 1688 listings serve a few dozen
products a page; a page of ten thousand is no listing this endpoint serves."""

MAX_TOTAL_COUNT = 100_000_000
"""The largest ``total_count`` an answer may report. The biggest 1688 shops list
products in the tens of thousands; a hundred million is a broken answer, not a shop."""


def normalise_image_url(url: str) -> str:
    """Give ``https://host/x`` for ``https:////host/x``, ``//host/x`` and ``http://host/x``."""
    if url.startswith("https://") and not url.startswith("https:///"):
        return url  # the common, already clean case
    if url.startswith(("http:", "https:")):
        rest = url.partition(":")[2]
    elif url.startswith("//"):
        rest = url  # protocol-relative
    else:
        return url  # a path or empty: no host to repair
    host_and_path = rest.lstrip("/")
    return "https://" + host_and_path if host_and_path else url


def _price_bounds(price: str) -> tuple[Decimal | None, Decimal | None]:
    low, _, high = price.partition("-")
    try:
        lo = Decimal(low.strip()) if low.strip() else None
        hi = Decimal(high.strip()) if high.strip() else lo
    except InvalidOperation:
        return None, None
    if (lo is not None and not lo.is_finite()) or (hi is not None and not hi.is_finite()):
        return None, None  # "NaN" and "Infinity" parse, but are no price
    return lo, hi


class SaleInfo(msgspec.Struct, gc=False):
    """How much of an item was sold, as 1688 reports it."""

    sale_quantity: int | None = None
    sale_amount: int | float | None = None


class ShopItem(msgspec.Struct, gc=False):
    """One product of a shop.

    ``category_path`` is a tuple: mostly empty, and ``()`` costs no allocation.
    Once decoded, ``item_id`` is always a string (search endpoints send ints: they
    are converted) and ``img`` is normalised to ``https://host/path``. ``price``
    keeps the API's string (``"298.00"``, a range ``"25.90-29.89"`` or ``""``);
    :attr:`price_min` and :attr:`price_max` read it as :class:`~decimal.Decimal`.
    """

    # The wire may carry an int; decoding makes it a str, which is what readers see.
    if TYPE_CHECKING:
        item_id: str
    else:
        item_id: str | int
    title: str = ""
    img: str = ""
    category_path: tuple[Any, ...] = ()
    category_name: str = ""
    price: str = ""
    quantity: int | None = None
    sale_info: SaleInfo | None = None

    @property
    def price_min(self) -> Decimal | None:
        """The price, or the low end of a price range; ``None`` when there is none."""
        return _price_bounds(self.price)[0]

    @property
    def price_max(self) -> Decimal | None:
        """The price, or the high end of a price range; ``None`` when there is none."""
        return _price_bounds(self.price)[1]


class ShopItemsPage(msgspec.Struct, gc=False):
    """One page of a shop's listing, as the server answered it.

    ``page_size`` is the size the server *used*, which may be less than asked for
    (``0`` when the answer left it out). Decoding refuses a ``page_size`` outside
    ``1..MAX_PAGE_SIZE`` and a ``total_count`` outside ``0..MAX_TOTAL_COUNT``.
    """

    page: int = 1
    page_size: Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE_SIZE)] = 0
    total_count: Annotated[int, msgspec.Meta(ge=0, le=MAX_TOTAL_COUNT)] = 0
    cat_id: str | int | None = ""
    sort: str = ""
    items: list[ShopItem] = msgspec.field(default_factory=list)


class Envelope(msgspec.Struct, gc=False):
    """The wrapper every answer comes in: ``{"code", "msg", "data"}``."""

    code: int
    msg: str = ""
    data: ShopItemsPage | None = None


class ErrorEnvelope(msgspec.Struct, gc=False):
    """The wrapper of an error answer, whose ``data`` may be anything."""

    code: int | None = None
    msg: str | None = ""


# Built once: decoding is on the hot path. strict=False accepts "162" for ints.
_envelope_decoder = msgspec.json.Decoder(Envelope, strict=False)
error_decoder = msgspec.json.Decoder(ErrorEnvelope, strict=False)


def _normalise(items: list[ShopItem]) -> None:
    # One loop per page rather than a __post_init__ call per item: a third of the
    # decoding cost. The common cases are inlined.
    for item in items:
        if item.item_id.__class__ is not str:
            item.item_id = str(item.item_id)
        img = item.img
        if img.startswith("https:////"):
            item.img = "https://" + img[10:].lstrip("/")
        elif img and not (img.startswith("https://") and img[8:9] != "/"):
            item.img = normalise_image_url(img)


class _PageDecoder:
    """Decodes an answer into an :class:`Envelope` with its items normalised."""

    __slots__ = ()

    def decode(self, body: bytes) -> Envelope:
        envelope = _envelope_decoder.decode(body)
        if envelope.data is not None:
            _normalise(envelope.data.items)
        return envelope


page_decoder = _PageDecoder()
