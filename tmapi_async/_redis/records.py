"""What a harvest's streams and hashes in Redis carry, as values: shops handed to
workers, pages they commit, results the coordinator reads, where a harvest stands."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._shop import ShopStatus

__all__ = [
    "Delivery",
    "HarvestCounts",
    "PageCommit",
    "PageCommitted",
    "Result",
    "ShopFinished",
    "read_result",
    "shop_status",
]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: object, default: int = 0) -> int:
    return default if value is None else int(_text(value))


@dataclass(frozen=True, slots=True)
class Delivery:
    """A shop message given to a worker."""

    message_id: str
    shop_url: str
    deliveries: int = 1  #: how many times it was given out, this time included
    fields: dict[str, str] | None = None  #: its shop hash, when read with it


@dataclass(frozen=True, slots=True)
class PageCommit:
    """An answered page a worker commits (``message_id``: its shop's message, held)."""

    shop_url: str
    page: int
    read: int  #: 1 for the page's first answer, 2 for a refetch after drift, ...
    total_count: int
    page_size: int
    items: bytes  #: the page's new items (msgspec JSON)
    item_count: int
    message_id: str


@dataclass(frozen=True, slots=True)
class PageCommitted:
    """A page a worker committed: its new items are ``items`` (msgspec JSON)."""

    entry_id: str
    shop_url: str
    page: int
    read: int  #: 1 for the page's first answer, 2 for a refetch after drift, ...
    total_count: int
    page_size: int
    items: bytes


@dataclass(frozen=True, slots=True)
class ShopFinished:
    """A shop's final status, written after every page it committed."""

    entry_id: str
    shop_url: str
    status: ShopStatus
    error: str  #: the shop's error as :func:`~tmapi_async._errors.error_record` wrote it
    total_count: int
    pages: int
    requests: int
    item_count: int


Result = PageCommitted | ShopFinished


@dataclass(frozen=True, slots=True)
class HarvestCounts:
    """Where a harvest stands, from its counters and its pending list."""

    submitted: int
    done: int
    complete: int
    partial: int
    failed: int
    pages: int
    items: int
    in_progress: int  #: shops given to a worker and not finished

    @property
    def queued(self) -> int:
        """Shops waiting for a worker."""
        return max(0, self.submitted - self.done - self.in_progress)

    @property
    def finished(self) -> bool:
        """Every shop submitted has a final status."""
        return self.submitted > 0 and self.done >= self.submitted


def shop_status(text: str | None) -> ShopStatus | None:
    statuses: dict[str | None, ShopStatus] = {
        "complete": "complete",
        "partial": "partial",
        "failed": "failed",
    }
    return statuses.get(text)


def read_result(entry_id: str, raw: Mapping[Any, Any]) -> Result:
    fields = {_text(k): v for k, v in raw.items()}
    shop = _text(fields["shop"])
    if _text(fields["kind"]) == "page":
        items = fields["items"]
        return PageCommitted(
            entry_id=entry_id,
            shop_url=shop,
            page=_int(fields["page"]),
            read=_int(fields["read"]),
            total_count=_int(fields["total"]),
            page_size=_int(fields["size"]),
            items=items if isinstance(items, bytes) else str(items).encode(),
        )
    return ShopFinished(
        entry_id=entry_id,
        shop_url=shop,
        status=shop_status(_text(fields["status"])) or "failed",
        error=_text(fields.get("error", b"")),
        total_count=_int(fields.get("total")),
        pages=_int(fields.get("pages")),
        requests=_int(fields.get("requests")),
        item_count=_int(fields.get("items")),
    )
