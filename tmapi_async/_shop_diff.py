"""Who sells, then and now: the profile fields that changed between two shops files.

A ``--with-profiles`` harvest writes ``OUTPUT.shops.EXT`` beside its export (see
:mod:`tmapi_async.export._shops`). When both exports a diff compares have one, each
shop's name, company, location, badges and ratings are compared, and each field that
changed is one ``shop_changed`` row (the diff builds the rows; this module reads the
files, whatever their format, and says which fields moved).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import msgspec

from ._formats import ExportFormat
from .export._parquet import read_batches
from .export._shops import shops_path
from .export._sinks import FORMULA_STARTS

__all__ = ["PROFILE_CHANGE_FIELDS", "ShopProfiles", "changed_fields", "read_shop_profiles"]

#: The profile fields a diff compares, in row order: name, company, place, badges, ratings.
PROFILE_CHANGE_FIELDS: Final[tuple[str, ...]] = (
    "shop_name",
    "company_name",
    "location_str",
    "is_industry_brand",
    "is_factory",
    "is_super_factory",
    "is_flagship_shop",
    "is_tp",
    "ratings",
)
_FLAGS: Final = frozenset(name for name in PROFILE_CHANGE_FIELDS if name.startswith("is_"))

ShopProfiles = dict[str, dict[str, Any]]
"""Shop URL → the compared fields of its row."""


def _compared(row: dict[str, Any]) -> dict[str, Any]:
    """The compared fields of a row, in one shape whatever the format it came from."""
    fields = {name: row.get(name) for name in PROFILE_CHANGE_FIELDS}
    fields["ratings"] = [
        {"title": r.get("title", ""), "type": r.get("type", ""), "score": r.get("score")}
        for r in fields["ratings"] or ()
    ]
    return fields


def _from_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    decode = msgspec.json.Decoder(dict[str, Any]).decode
    with open(path, "rb") as lines:
        for line in lines:
            if line.strip():
                yield decode(line)


def _cell(text: str) -> str:
    # Undo the shops file's formula guard, as the items' reader does.
    return text[1:] if text[:1] == "'" and text[1:2] in FORMULA_STARTS else text


def _from_csv(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8", newline="") as text:
        for row in csv.DictReader(text):
            values: dict[str, Any] = {name: _cell(value) for name, value in row.items()}
            for flag in _FLAGS:
                values[flag] = values.get(flag) == "True"
            values["ratings"] = json.loads(row.get("ratings") or "[]")
            yield values


def _from_parquet(path: Path) -> Iterator[dict[str, Any]]:
    for batch in read_batches(path, 5000, missing=_unreadable, unreadable=_unreadable):
        yield from batch


def _unreadable(reason: str) -> ValueError:
    return ValueError(f"cannot read the shops file: {reason}")


def read_shop_profiles(export: Path, fmt: ExportFormat) -> ShopProfiles | None:
    """The compared fields of every shop in the shops file beside ``export``; ``None``
    when that harvest fetched no profiles.

    Raises:
        ValueError: the shops file is malformed.
        OSError: it cannot be read.
    """
    path = shops_path(export)
    if not path.is_file():
        return None
    rows = {"csv": _from_csv, "parquet": _from_parquet}.get(fmt, _from_jsonl)(path)
    try:
        return {str(row["shop_url"]): _compared(row) for row in rows}
    except (KeyError, TypeError, AttributeError, msgspec.DecodeError) as exc:
        raise ValueError(f"{path}: not a tmapi-async shops file: {exc}") from None


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """``(field, before, after)`` for each compared field that changed."""
    for name in PROFILE_CHANGE_FIELDS:
        if before.get(name) != after.get(name):
            yield name, before.get(name), after.get(name)
