"""What changed between two harvests: one :class:`Change` per new, gone or changed item.

::

    with tm.diff("monday.jsonl", "tuesday.parquet") as changes:
        for change in changes:           # or: async with ... / async for change in changes
            print(change.change, change.shop_url, change.item_id, change.before, change.after)
        print("\\n".join(changes.summary.lines()))

Both exports are streamed into a temporary on-disk SQLite index (one clustered table per
side, keyed by shop and item id), then walked shop by shop in item-id order: memory stays
flat whatever the size of the exports; the index needs about as much disk as both exports.

Which shops can be trusted comes from each export's manifest (``OUTPUT.manifest.json``):

* a shop ``complete`` on both sides is compared fully;
* a shop not ``complete`` on a side (``partial``, ``failed``, cut off by a stopped run, or
  read by a ``--since`` harvest that keeps only new listings) gets one ``shop_incomplete``
  row, and its items missing on one side are never reported ``gone``; its ``new`` and
  changed items still are;
* a shop known to one side only gets one ``shop_only_in_old`` / ``shop_only_in_new`` row and
  no item rows;
* when both harvests fetched profiles (``--with-profiles``: ``OUTPUT.shops.EXT``), each
  profile field of a shop that changed (name, company, location, badges, ratings) is one
  ``shop_changed`` row, whose ``before`` and ``after`` hold the field by its name.

Without a manifest (an export from elsewhere) every shop present is taken as complete; the
summary says so.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import sqlite3
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self

import msgspec

from ._errors import DiffInputError, ExportReadError, ManifestError
from ._export_reader import ExportRow, export_format_of, read_export
from ._formats import ExportFormat
from ._manifest import Manifest, manifest_path, read_manifest
from ._shop_diff import ShopProfiles, changed_fields, read_shop_profiles

__all__ = [
    "ITEM_FIELDS",
    "Change",
    "ChangeKind",
    "Diff",
    "DiffInputError",
    "DiffSummary",
    "diff",
]

ChangeKind = Literal[
    "new",
    "gone",
    "title",
    "img",
    "category_path",
    "category_name",
    "price",
    "quantity",
    "sales",
    "shop_incomplete",
    "shop_only_in_old",
    "shop_only_in_new",
    "shop_changed",
]

#: The compared fields of an item and the kind of change each one gives, in row order.
ITEM_FIELDS: Final[tuple[tuple[str, ChangeKind], ...]] = (
    ("title", "title"),
    ("img", "img"),
    ("category_path", "category_path"),
    ("category_name", "category_name"),
    ("price", "price"),
    ("quantity", "quantity"),
    ("sale_info", "sales"),
)

_BATCH: Final = 5_000
_CACHE_KIB: Final = 16_384  # SQLite page cache: what bounds the index's memory


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """One row of a diff.

    Attributes:
        change: the kind: ``new``, ``gone``, a field's kind (``price``, ``sales``, ``title``,
            ``img``, ``category_path``, ``category_name``, ``quantity``), or a shop-level
            kind (``shop_incomplete``, ``shop_only_in_old``, ``shop_only_in_new``,
            ``shop_changed``).
        shop_url: the shop.
        item_id: the item; ``None`` on a shop-level row.
        before, after: for ``new``/``gone`` the whole item (a dict of its fields) on its side
            and ``None`` on the other; for a field the field's two values (``sales``: the
            ``sale_info`` dicts); for a shop-level row the shop's status on each side
            (``complete``, ``partial``, ``failed``, ``new listings only``, ``not in
            manifest``) or ``None`` where the shop is absent; for ``shop_changed`` the
            profile field by its name on each side (``{"shop_name": "..."}``).
        price_change: on ``price`` rows, the relative change of the price's low end
            (0.1 = +10 %); ``None`` when either side has no price.
    """

    change: ChangeKind
    shop_url: str
    item_id: str | None = None
    before: Any = None
    after: Any = None
    price_change: float | None = None


@dataclass
class DiffSummary:
    """Counts of a diff, complete once its rows have all been read.

    ``manifests`` tells, for OLD and NEW, whether a manifest was found (without one, every
    shop present was taken as complete). ``price_moves`` holds the largest relative price
    changes, largest first.
    """

    manifests: tuple[bool, bool] = (False, False)
    kinds: Counter[str] = field(default_factory=Counter)
    shops: dict[str, Counter[str]] = field(default_factory=dict)
    shops_compared: int = 0
    price_moves: list[Change] = field(default_factory=list)

    def lines(self, *, top_shops: int = 20) -> list[str]:
        """The summary as text lines (what ``tmapi-async diff`` prints on stderr)."""
        out = [f"shops: {self.shops_compared} compared"]
        for side, found in zip(("OLD", "NEW"), self.manifests, strict=True):
            if not found:
                out.append(f"{side} has no manifest: every shop in it taken as complete")
        total = sum(self.kinds.values())
        out.append(f"changes: {total}")
        for kind, count in sorted(self.kinds.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  {kind:<17} {count}")
        busiest = sorted(self.shops.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        if busiest:
            out.append("per shop:")
        for shop, counts in busiest[:top_shops]:
            parts = ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
            out.append(f"  {shop}: {parts}")
        if len(busiest) > top_shops:
            out.append(f"  ... and {len(busiest) - top_shops} more shops")
        if self.price_moves:
            out.append("largest price moves:")
        for move in self.price_moves:
            assert move.price_change is not None
            out.append(
                f"  {move.price_change:+.1%}  {move.before} -> {move.after}  "
                f"{move.shop_url} {move.item_id}"
            )
        return out


@dataclass
class _Side:
    path: Path
    fmt: ExportFormat
    manifest: Manifest | None
    table: str
    statuses: dict[str, str] = field(default_factory=dict)  # from the manifest
    counts: Counter[str] = field(default_factory=Counter)  # rows per shop in the export

    def status(self, shop: str) -> str | None:
        present = shop in self.counts
        if self.manifest is None:
            return "complete" if present else None
        status = self.statuses.get(shop)
        if status is None:
            return "not in manifest" if present else None
        if self.manifest.since is not None:
            return "new listings only"
        return status


def _open_side(path: Path | str, fmt: ExportFormat | None, table: str) -> _Side:
    path = Path(path)
    try:
        fmt = fmt or export_format_of(path)
        if not path.is_file():
            raise ExportReadError(f"{path}: no such file")
        manifest = read_manifest(manifest_path(path))
    except (ExportReadError, ManifestError) as exc:
        raise DiffInputError(str(exc)) from None
    side = _Side(path, fmt, manifest, table)
    if manifest is not None:
        side.statuses = {entry.shop_url: entry.status for entry in manifest.shops}
    return side


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(ExportRow).decode


def _item_dict(row: ExportRow) -> dict[str, Any]:
    item: dict[str, Any] = msgspec.to_builtins(row)
    del item["shop_url"]
    return item


def _price_change(before: ExportRow, after: ExportRow) -> float | None:
    old, new = before.price_min, after.price_min
    if old is None or new is None or old == 0:
        return None
    return float((new - old) / old)


def _field_changes(shop: str, item_id: str, old: ExportRow, new: ExportRow) -> Iterator[Change]:
    for name, kind in ITEM_FIELDS:
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        yield Change(
            change=kind,
            shop_url=shop,
            item_id=item_id,
            before=msgspec.to_builtins(before),
            after=msgspec.to_builtins(after),
            price_change=_price_change(old, new) if kind == "price" else None,
        )


class Diff:
    """The changes from export ``old`` to export ``new``: iterate it (``for`` or ``async
    for``) once; read :attr:`summary` after. Use it as a context manager (sync or async), or
    call :meth:`close`, to remove its temporary index.

    ``old_format``/``new_format`` override the format the file's extension implies;
    ``workdir`` is where the temporary index goes (default: the system's temporary
    directory); ``top`` is how many of the largest price moves the summary keeps.

    Raises:
        DiffInputError: on construction when a file is missing, its format unknown or its
            manifest unreadable; while iterating when a row is malformed.
    """

    def __init__(
        self,
        old: Path | str,
        new: Path | str,
        *,
        old_format: ExportFormat | None = None,
        new_format: ExportFormat | None = None,
        workdir: Path | str | None = None,
        top: int = 10,
    ) -> None:
        self._sides = (
            _open_side(old, old_format, "old_rows"),
            _open_side(new, new_format, "new_rows"),
        )
        self._workdir = workdir
        self._top = top
        self._profiles: tuple[ShopProfiles, ShopProfiles] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._db: sqlite3.Connection | None = None
        self._started = False
        self.summary = DiffSummary(
            manifests=(self._sides[0].manifest is not None, self._sides[1].manifest is not None)
        )

    # -- the index -----------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        self._tmp = tempfile.TemporaryDirectory(prefix="tmapi-diff-", dir=self._workdir)
        db = sqlite3.connect(os.path.join(self._tmp.name, "index.sqlite"), check_same_thread=False)
        # A throwaway index: no journal, no fsync; a bounded page cache bounds the memory.
        db.executescript(
            f"PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-{_CACHE_KIB};"
            "PRAGMA temp_store=FILE;"
        )
        return db

    def _load(self, db: sqlite3.Connection, side: _Side) -> None:
        db.execute(
            f"CREATE TABLE {side.table} (shop TEXT, item TEXT, body BLOB, "
            "PRIMARY KEY (shop, item)) WITHOUT ROWID"
        )
        counts = side.counts
        rows = read_export(side.path, side.fmt)
        insert = f"INSERT OR REPLACE INTO {side.table} VALUES (?, ?, ?)"
        try:
            while batch := list(itertools.islice(rows, _BATCH)):
                for row in batch:
                    counts[row.shop_url] += 1
                db.executemany(insert, ((r.shop_url, r.item_id, _encode(r)) for r in batch))
        except ExportReadError as exc:
            raise DiffInputError(str(exc)) from None
        db.commit()

    def _build(self) -> sqlite3.Connection:
        db = self._db = self._connect()
        for side in self._sides:
            self._load(db, side)
        self._profiles = self._load_profiles()
        return db

    def _load_profiles(self) -> tuple[ShopProfiles, ShopProfiles] | None:
        """Both sides' shop profiles, when both harvests fetched them."""
        try:
            old, new = (read_shop_profiles(side.path, side.fmt) for side in self._sides)
        except (OSError, ValueError) as exc:
            raise DiffInputError(str(exc)) from None
        return None if old is None or new is None else (old, new)

    def _profile_changes(self, shop: str) -> Iterator[Change]:
        if self._profiles is None:
            return
        old, new = (profiles.get(shop) for profiles in self._profiles)
        if old is None or new is None:
            return
        for name, before, after in changed_fields(old, new):
            yield Change(
                change="shop_changed", shop_url=shop, before={name: before}, after={name: after}
            )

    # -- the walk ------------------------------------------------------------------------------
    def _rows(self, db: sqlite3.Connection, side: _Side, shop: str) -> Iterator[tuple[str, bytes]]:
        yield from db.execute(
            f"SELECT item, body FROM {side.table} WHERE shop = ? ORDER BY item", (shop,)
        )

    def _shop(self, db: sqlite3.Connection, shop: str) -> Iterator[Change]:
        old, new = self._sides
        before, after = old.status(shop), new.status(shop)
        if after is None:
            yield Change(change="shop_only_in_old", shop_url=shop, before=before)
            return
        if before is None:
            yield Change(change="shop_only_in_new", shop_url=shop, after=after)
            return
        self.summary.shops_compared += 1
        yield from self._profile_changes(shop)
        complete = before == after == "complete"
        if not complete:
            yield Change(change="shop_incomplete", shop_url=shop, before=before, after=after)
        end = ("\U0010ffff", b"")
        olds, news = self._rows(db, old, shop), self._rows(db, new, shop)
        o, n = next(olds, end), next(news, end)
        while o is not end or n is not end:
            if o is not end and (n is end or o[0] < n[0]):
                if complete:
                    item = _decode(o[1])
                    yield Change(
                        change="gone", shop_url=shop, item_id=o[0], before=_item_dict(item)
                    )
                o = next(olds, end)
            elif n is not end and (o is end or n[0] < o[0]):
                item = _decode(n[1])
                yield Change(change="new", shop_url=shop, item_id=n[0], after=_item_dict(item))
                n = next(news, end)
            else:
                if o[1] != n[1]:
                    yield from _field_changes(shop, o[0], _decode(o[1]), _decode(n[1]))
                o, n = next(olds, end), next(news, end)

    def _changes(self) -> Iterator[Change]:
        db = self._db or self._build()
        old, new = self._sides
        shops = sorted(set(old.counts) | set(new.counts) | set(old.statuses) | set(new.statuses))
        summary, moves = self.summary, list[tuple[float, int, Change]]()
        order = itertools.count()
        for shop in shops:
            for change in self._shop(db, shop):
                summary.kinds[change.change] += 1
                summary.shops.setdefault(shop, Counter())[change.change] += 1
                if change.price_change is not None:
                    entry = (abs(change.price_change), -next(order), change)
                    if len(moves) < self._top:
                        heapq.heappush(moves, entry)
                    elif self._top:
                        heapq.heappushpop(moves, entry)
                    summary.price_moves = [c for _, _, c in sorted(moves, reverse=True)]
                yield change

    # -- iteration and lifetime ----------------------------------------------------------------
    def _claim(self) -> Iterator[Change]:
        if self._started:
            raise RuntimeError("a Diff can be iterated only once")
        self._started = True
        return self._changes()

    def __iter__(self) -> Iterator[Change]:
        return self._claim()

    async def __aiter__(self) -> AsyncIterator[Change]:
        # The index and the walk block: they run in a worker thread, a batch at a time.
        changes = self._claim()

        def batch() -> list[Change]:
            return list(itertools.islice(changes, 1_000))

        while chunk := await asyncio.to_thread(batch):
            for change in chunk:
                yield change

    def close(self) -> None:
        """Remove the temporary index."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.close)


def diff(
    old: Path | str,
    new: Path | str,
    *,
    old_format: ExportFormat | None = None,
    new_format: ExportFormat | None = None,
    workdir: Path | str | None = None,
    top: int = 10,
) -> Diff:
    """The changes from export ``old`` to export ``new`` (see :class:`Diff`)."""
    return Diff(old, new, old_format=old_format, new_format=new_format, workdir=workdir, top=top)
