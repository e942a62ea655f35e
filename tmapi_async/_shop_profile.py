"""Typed shapes of who sells: a shop's profile and its category tree, decoded with msgspec.

Two endpoints answer them, one request per shop each: ``/1688/shop/shop_info`` (the
company, the place, the badges, the ratings) and ``/1688/shop/category`` (how the shop
sorts its own catalogue). Like the items answer, they are loose (docs/api-facts.md):
ids come as strings or ints, counts as ints or numeric strings, flags as booleans, ``0``
/ ``1`` or strings, fields go missing, and images come protocol-relative (``//host/x``).
Decoding is tolerant of all of it and normalises once: ids are strings, flags booleans,
counts ints or ``None``, image URLs ``https://host/path``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from ._models import normalise_image_url

__all__ = [
    "Category",
    "ShopCategories",
    "ShopProfile",
    "ShopRating",
    "categories_decoder",
    "profile_decoder",
]

_TRUE = frozenset({"1", "true", "yes", "y", "t"})
_MAX_DEPTH = 16  # a category tree deeper than this is no shop's catalogue: cut there


def _flag(value: object) -> bool:
    """A flag as the API may send it: ``true``, ``1``, ``"1"``, ``"true"``, or missing."""
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value) if isinstance(value, bool | int | float) else False


def _count(value: object) -> int | None:
    """A count as an int; ``None`` for a missing, empty or unreadable one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and abs(value) < 1e18 else None
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        try:
            return int(text)
        except ValueError:
            try:
                return _count(float(text))
            except ValueError:
                return None
    return None


def _text(value: object) -> str:
    """An id or a text as a string: ints are converted, ``null`` is ``""``, an object or
    a list where a text was expected is kept as its JSON text."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return msgspec.json.encode(value).decode()
    return value if isinstance(value, str) else str(value)


def _score(value: object) -> float | None:
    """A rating's score as a float; ``None`` when missing or unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            score = float(value.strip())
        except ValueError:
            return None
        return score if score == score and abs(score) != float("inf") else None
    return None


# What a scalar field may be on the wire: anything. A field that turns into an object
# (a place as {province, city}) must not cost the whole answer and its retries.
_Loose = str | int | float | bool | None | dict[str, Any] | list[Any]


class ShopRating(msgspec.Struct, gc=False):
    """One rating of a shop: its ``title`` (as 1688 words it), ``type`` and ``score``."""

    title: str = ""
    type: str = ""
    score: float | None = None


class ShopProfile(msgspec.Struct, gc=False):
    """Who sells: a shop's profile, as ``/1688/shop/shop_info`` answers it.

    Every documented field is here. Once decoded, ids are strings, the ``is_*`` flags
    booleans, ``tp_year`` and ``favorite_count`` ints (``None`` when not given),
    ``shop_logo`` is ``https://host/path``, and ``shop_ratings`` a list of
    :class:`ShopRating`.
    """

    member_id: str = ""
    seller_id: str = ""
    company_id: str = ""
    company_name: str = ""
    contact_phone: str = ""
    shop_url: str = ""
    shop_logo: str = ""
    shop_name: str = ""
    chat_url: str = ""
    location_str: str = ""
    is_industry_brand: bool = False
    is_factory: bool = False
    is_super_factory: bool = False
    is_flagship_shop: bool = False
    is_tp: bool = False
    tp_year: int | None = None
    favorite_count: int | None = None
    shop_ratings: list[ShopRating] = msgspec.field(default_factory=list)


class Category(msgspec.Struct, gc=False):
    """One category of a shop's own catalogue, with its sub-categories.

    ``id`` is what the items endpoint's ``cat`` takes; ``count`` is the products the
    shop lists in it (``None`` when not given).
    """

    id: str = ""
    name: str = ""
    full_name: str = ""
    count: int | None = None
    children: list[Category] = msgspec.field(default_factory=list)


class ShopCategories(msgspec.Struct, gc=False):
    """How a shop sorts its catalogue, as ``/1688/shop/category`` answers it.

    ``is_custom`` is the answer's own flag (the shop defined its categories itself).
    """

    member_id: str = ""
    is_custom: bool = False
    categories: list[Category] = msgspec.field(default_factory=list)
    """The top-level categories (the answer's ``list``), each with its children."""


# -- the wire: every scalar loose, normalised once into the public Structs ------------------


class _WireRating(msgspec.Struct, gc=False):
    title: _Loose = ""
    type: _Loose = ""
    score: _Loose = None


# Every scalar field of the profile, loose on the wire; built from ShopProfile's own
# fields, so that a field added there is decoded too.
_WireProfile: Any = msgspec.defstruct(
    "_WireProfile",
    [
        *((name, _Loose, None) for name in ShopProfile.__struct_fields__ if name != "shop_ratings"),
        ("shop_ratings", list[_WireRating] | None, None),
    ],
    gc=False,
)


class _WireCategory(msgspec.Struct, gc=False):
    id: _Loose = ""
    name: _Loose = ""
    full_name: _Loose = ""
    count: _Loose = None
    children: list[_WireCategory] | None = None


class _WireCategories(msgspec.Struct, gc=False):
    member_id: _Loose = ""
    is_custom: _Loose = False
    categories: list[_WireCategory] | None = msgspec.field(default=None, name="list")


_ProfileEnvelope: Any = msgspec.defstruct(
    "_ProfileEnvelope",
    [("code", int), ("msg", _Loose, ""), ("data", _WireProfile | None, None)],
    gc=False,
)


class _CategoriesEnvelope(msgspec.Struct, gc=False):
    code: int
    msg: _Loose = ""
    data: _WireCategories | None = None


_TEXTS = frozenset(n for n, t in ShopProfile.__annotations__.items() if t == "str")
_FLAGS = frozenset(n for n, t in ShopProfile.__annotations__.items() if t == "bool")
_COUNTS = frozenset(n for n, t in ShopProfile.__annotations__.items() if t == "int | None")
_URLS = frozenset({"shop_logo", "chat_url"})  # may come protocol-relative: //host/x


def _profile(wire: Any) -> ShopProfile:
    fields: dict[str, Any] = {}
    for name in _TEXTS:
        text = _text(getattr(wire, name))
        fields[name] = normalise_image_url(text) if name in _URLS else text
    for name in _FLAGS:
        fields[name] = _flag(getattr(wire, name))
    for name in _COUNTS:
        fields[name] = _count(getattr(wire, name))
    ratings = [
        ShopRating(_text(r.title), _text(r.type), _score(r.score)) for r in wire.shop_ratings or ()
    ]
    return ShopProfile(**fields, shop_ratings=ratings)


def _category(wire: _WireCategory, depth: int = 0) -> Category:
    children = wire.children if depth < _MAX_DEPTH else None
    return Category(
        id=_text(wire.id),
        name=_text(wire.name),
        full_name=_text(wire.full_name),
        count=_count(wire.count),
        children=[_category(child, depth + 1) for child in children or ()],
    )


def _categories(wire: _WireCategories) -> ShopCategories:
    return ShopCategories(
        member_id=_text(wire.member_id),
        is_custom=_flag(wire.is_custom),
        categories=[_category(c) for c in wire.categories or ()],
    )


class _EnvelopeDecoder:
    """Decodes an answer into ``(code, normalised data or None)``."""

    __slots__ = ("_convert", "_decoder")

    def __init__(self, envelope: type[Any], convert: Any) -> None:
        self._decoder = msgspec.json.Decoder(envelope, strict=False)
        self._convert = convert

    def decode(self, body: bytes) -> tuple[int, Any]:
        envelope = self._decoder.decode(body)
        data = envelope.data
        return envelope.code, None if data is None else self._convert(data)


if TYPE_CHECKING:
    from collections.abc import Callable

    profile_decoder: Callable[[bytes], tuple[int, ShopProfile | None]]
    categories_decoder: Callable[[bytes], tuple[int, ShopCategories | None]]
else:
    profile_decoder = _EnvelopeDecoder(_ProfileEnvelope, _profile).decode
    categories_decoder = _EnvelopeDecoder(_CategoriesEnvelope, _categories).decode
