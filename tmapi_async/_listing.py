"""``Listing``: which listing of a shop to read -- page size, order and category.

One value, validated once, shared by every shop of a harvest, and the one place
that knows how these options are spelled in the query string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from ._errors import InvalidParameterError
from ._models import Sort

_SORTS = frozenset(s.value for s in Sort)


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
        if sort_value not in _SORTS:
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
