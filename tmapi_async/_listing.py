"""``Listing``: which listing of a shop to read -- page size, order and category.

One value, validated once, shared by every shop of a harvest, and the one place
that knows how these options are spelled: in the query string (:attr:`Listing.query`)
and in the records that keep them -- a state file, a harvest's record in Redis, a
manifest (:meth:`Listing.to_record`, read back by :meth:`Listing.from_record`).
It imports no third-party library, so the command line's ``--help`` can use it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote

from ._errors import InvalidParameterError, quote_input

__all__ = ["DEFAULT_LISTING", "SORTS", "Listing", "Sort", "choose_listing", "listing_given"]


class Sort(enum.StrEnum):
    """The orders the endpoint can list a shop in."""

    DEFAULT = "default"
    SALES = "sales"
    PRICE_UP = "price_up"
    PRICE_DOWN = "price_down"
    TIME_UP = "time_up"
    TIME_DOWN = "time_down"


#: The six ``sort`` values the endpoint accepts, the default first.
SORTS: Final[tuple[str, ...]] = tuple(s.value for s in Sort)

#: The fields of a listing's record, in order.
_RECORD_FIELDS: Final = ("page_size", "sort", "cat", "cat_type")


@dataclass(frozen=True, slots=True, init=False)
class Listing:
    """Page size, sort order and category of a shop's listing (validated on construction).

    Args:
        page_size: products per page asked for (an integer >= 1).
        sort: a :class:`~tmapi_async.Sort` or its value (``"default"``, ``"sales"``...).
        cat: a category id of the shop, to list that category only.
        cat_type: ``"0"`` or ``"1"``: the kind of category ``cat`` is.

    Raises:
        InvalidParameterError: naming the bad option.
    """

    page_size: int
    sort: str
    cat: str | None
    cat_type: str | None
    query: str = field(repr=False, compare=False)
    """The encoded query-string part of these options, built once for every page."""

    def __init__(
        self,
        page_size: int = 20,
        sort: str | Sort = "default",
        cat: str | int | None = None,
        cat_type: str | int | None = None,
    ) -> None:
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise InvalidParameterError(f"page_size must be an integer >= 1, got {page_size!r}")
        sort_value = sort.value if isinstance(sort, Sort) else sort
        if sort_value not in SORTS:
            raise InvalidParameterError(
                f"sort must be one of {', '.join(s.value for s in Sort)}; got {sort!r}"
            )
        if cat_type is not None and str(cat_type) not in ("0", "1"):
            raise InvalidParameterError(f'cat_type must be "0" or "1", got {cat_type!r}')
        if cat is not None and not str(cat).strip():
            raise InvalidParameterError(f"cat must be a category id, got {cat!r}")
        cat_text = None if cat is None else str(cat).strip()
        cat_type_text = None if cat_type is None else str(cat_type)
        parts = [f"page_size={page_size}", f"sort={sort_value}"]
        if cat_text is not None:
            parts.append(f"cat={quote(cat_text, safe='')}")
        if cat_type_text is not None:
            parts.append(f"cat_type={cat_type_text}")
        setattr_ = object.__setattr__  # frozen: set once, here
        setattr_(self, "page_size", page_size)
        setattr_(self, "sort", sort_value)
        setattr_(self, "cat", cat_text)
        setattr_(self, "cat_type", cat_type_text)
        setattr_(self, "query", "&".join(parts))

    def to_record(self) -> str:
        """These options as the JSON object state files and Redis records keep:
        ``page_size``, ``sort``, ``cat`` and ``cat_type``, keys sorted (so equal
        listings give equal text)."""
        return json.dumps({name: getattr(self, name) for name in _RECORD_FIELDS}, sort_keys=True)

    @classmethod
    def from_record(cls, record: str | bytes | Mapping[str, object]) -> Listing:
        """The listing a record holds: the text :meth:`to_record` wrote, or its object
        (records of earlier versions included: a missing field takes its default,
        other keys are ignored).

        Raises:
            InvalidParameterError: the record is no JSON object, or holds a bad option.
        """
        fields: object = record
        if isinstance(record, str | bytes):
            try:
                fields = json.loads(record)
            except ValueError:
                raise InvalidParameterError(
                    f"a listing record is not JSON: {quote_input(record)}"
                ) from None
        if not isinstance(fields, Mapping):
            raise InvalidParameterError(
                f"a listing record is not a JSON object: {quote_input(record)}"
            )
        page_size = fields.get("page_size")
        sort = fields.get("sort")
        return cls(
            20 if page_size is None else page_size,
            "default" if sort is None else sort,
            fields.get("cat"),
            fields.get("cat_type"),
        )


DEFAULT_LISTING = Listing()


def choose_listing(
    listing: Listing | None,
    page_size: int | None = None,
    sort: str | Sort | None = None,
    cat: str | int | None = None,
    cat_type: str | int | None = None,
) -> Listing:
    """The listing given either whole or as the separate options (not both).

    Raises:
        InvalidParameterError: a bad option, or ``listing`` given with an option.
    """
    if listing is None:
        if page_size is None and sort is None and cat is None and cat_type is None:
            return DEFAULT_LISTING
        return Listing(
            20 if page_size is None else page_size,
            "default" if sort is None else sort,
            cat,
            cat_type,
        )
    if not isinstance(listing, Listing):
        raise InvalidParameterError(f"listing must be a tm.Listing, got {listing!r}")
    given = [
        name
        for name, value in (
            ("page_size", page_size),
            ("sort", sort),
            ("cat", cat),
            ("cat_type", cat_type),
        )
        if value is not None
    ]
    if given:
        raise InvalidParameterError(
            f"give either listing= or {', '.join(given)}=, not both (the listing has them)"
        )
    return listing


def listing_given(listing: Listing | None, params: Mapping[str, object] | None) -> Listing:
    """The listing given whole, or as a record (``params``, the older keyword); the
    default listing when neither is given.

    Raises:
        InvalidParameterError: both are given, or ``params`` holds a bad option.
    """
    if listing is not None and params is not None:
        raise InvalidParameterError("give either listing= or params=, not both")
    if listing is not None:
        return listing
    return DEFAULT_LISTING if params is None else Listing.from_record(params)
