"""Catalogues that live through days: new listings, removals, price and sales moves.

Day 0 is the catalogue of :mod:`._catalogue` itself. Each later day ``d`` changes every shop
that holds at least ``min_size`` items at its start, deterministically from (shop name, d):

* ``gone`` items are removed (drawn from every item alive that morning);
* ``repriced`` of the remaining items that have a price get a new price (the low end moves by
  5 % to 30 %, up or down; a range keeps its width) and more sales (``sale_quantity`` grows,
  ``sale_amount`` follows when it was not 0); nothing else about them changes;
* ``new`` items are listed, newer than every earlier item: under ``time_down`` (and in the
  ``default`` order) they lead the listing, newest first.

Drift (items inserted while a crawl runs) still comes first, on top of the day's listing.
New items come from a third stream of the shop, with odd ids like drift items.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

import msgspec

from ._catalogue import (
    _NO_PRICE,
    _PRICE,
    SORTS,
    Item,
    SaleInfo,
    ShopCatalogue,
    _Entry,
    _Generator,
)

__all__ = ["DayCatalogue", "DayChanges", "catalogue_on", "shop_catalogue"]

# New listings are dated after every base item (which end ~4 years after 2019 at 1e6 items).
_NEW_EPOCH: Final = 10_000_000_000
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Item).decode


@dataclass(frozen=True, slots=True)
class DayChanges:
    """What one day does to each shop of at least ``min_size`` items."""

    new: int = 7
    gone: int = 3
    repriced: int = 5
    min_size: int = 20

    def __post_init__(self) -> None:
        if min(self.new, self.gone, self.repriced, self.min_size) < 0:
            raise ValueError(f"day changes must be >= 0: {self}")


def _reprice(body: bytes, entry: _Entry, rng: random.Random) -> tuple[_Entry, bytes]:
    """The item of ``body`` with a new price and more sales (its other fields unchanged)."""
    item = _decode(body)
    low, _, high = item.price.partition("-")
    low_cents = round(float(low) * 100)
    percent = rng.choice((-1, 1)) * rng.randint(5, 30)
    new_low = max(1, round(low_cents * (100 + percent) / 100))
    if new_low == low_cents:  # only for prices of a few cents
        new_low = low_cents + 1
    price = f"{new_low / 100:.2f}"
    if high:
        price += f"-{(round(float(high) * 100) + new_low - low_cents) / 100:.2f}"
    sold = item.sale_info.sale_quantity + rng.randint(1, 50)
    amount = sold * new_low // 100 if item.sale_info.sale_amount else 0
    moved = msgspec.structs.replace(item, price=price, sale_info=SaleInfo(sold, amount))
    leaf, group, _, _, listed = entry
    return (leaf, group, new_low / 100, sold, listed), _encode(moved)


class DayCatalogue(ShopCatalogue):
    """The catalogue of one shop on day ``day`` (see the module's docstring)."""

    _lazy = False  # items come and go: a page is a slice of the whole day's listing

    def __init__(self, name: str, size: int, day: int, changes: DayChanges) -> None:
        super().__init__(name, size)
        if day < 0:
            raise ValueError(f"day must be >= 0, got {day}")
        self.day = day
        self.changes = changes
        leaves = [c for c in self.categories if c.parent_id]
        self._new = _Generator(name, "new", leaves)
        self._alive: tuple[list[_Entry], list[bytes]] | None = None

    def _rows(self) -> tuple[list[_Entry], list[bytes]]:
        """(sort keys, encoded items) of every item alive on the day, in the ``default`` order
        (newest listings first)."""
        if self._alive is not None:
            return self._alive
        base = self._base
        base.ensure(self.size)
        rows = list(zip(base.entries[: self.size], base.encoded[: self.size], strict=True))
        ch = self.changes
        for day in range(1, self.day + 1):
            if len(rows) < ch.min_size:
                continue
            rng = random.Random(f"tmapi-sim/day/{self.name}/{day}")
            gone = set(rng.sample(range(len(rows)), min(ch.gone, len(rows))))
            rows = [row for i, row in enumerate(rows) if i not in gone]
            priced = [i for i, (entry, _) in enumerate(rows) if entry[_PRICE] != _NO_PRICE]
            for i in sorted(rng.sample(priced, min(ch.repriced, len(priced)))):
                rows[i] = _reprice(rows[i][1], rows[i][0], rng)
            first = (day - 1) * ch.new
            self._new.ensure(first + ch.new)
            fresh = []
            for k in range(first + ch.new - 1, first - 1, -1):  # newest first
                leaf, group, price, sold, _ = self._new.entries[k]
                entry = (leaf, group, price, sold, _NEW_EPOCH + k * 600)
                fresh.append((entry, self._new.encoded[k]))
            rows = fresh + rows
        self._alive = [entry for entry, _ in rows], [body for _, body in rows]
        return self._alive

    def build(self) -> None:
        """Compute the day's catalogue now."""
        self._rows()


def catalogue_on(name: str, size: int, day: int, changes: DayChanges) -> ShopCatalogue:
    """The catalogue of shop ``name`` (``size`` base items) on ``day``: day 0 is the plain one."""
    return ShopCatalogue(name, size) if day == 0 else DayCatalogue(name, size, day, changes)


def shop_catalogue(
    name: str,
    size: int,
    *,
    sort: str = "default",
    cat: str | None = None,
    cat_type: str | None = None,
    drift: int = 0,
    day: int = 0,
    changes: DayChanges | None = None,
) -> list[Item]:
    """The items of shop ``name`` with ``size`` base items, exactly as the simulator lists them.

    ``sort`` is one of :data:`SORTS`; ``cat``/``cat_type`` select a category subset (leaf for
    ``"0"``/``None``, group for ``"1"``); ``drift`` is the number of items inserted since the
    listing started (they come first, newest first, in every sort order); ``day`` and
    ``changes`` (default :class:`DayChanges`) give the catalogue of a later day. The item-id set
    of ``shop_catalogue(name, size)`` is the full expected set of a simulator shop of that size.
    """
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}")
    catalogue = catalogue_on(name, size, day, changes or DayChanges())
    return catalogue.items(sort, cat, cat_type, drift)
