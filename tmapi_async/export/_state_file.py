"""The export journal: a harvest's progress in SQLite, resumable after any stop, even
``kill -9``.

One journal (its state file) per export. For every answered page,
:meth:`ExportJournal.record_page` first appends the page's new items to the export
(flushed to the OS), then commits in one transaction: the page, the ``item_id`` of its
new items and the export's byte position. A run killed between the two steps left bytes
in the export that no committed page accounts for; the next :meth:`ExportJournal.open`
cuts the export back to the committed position, so every item is in the export exactly
once and every committed page is never requested again.

The database runs in WAL mode with ``synchronous=NORMAL``: a commit reaches the OS
before ``record_page`` returns (safe against a killed process; a power cut may lose
the last pages, which are then fetched again). :meth:`ExportJournal.flush` with
``durable=True`` also reaches the disk (the export fsynced, the commit synced): what
must survive a power cut, because another party forgets it next (Redis drops results
the coordinator acknowledged), is flushed that way, once per batch.

Each state file is one harvest: it gets a random :attr:`ExportJournal.harvest_id` when
it is created, so a fresh state file is a fresh harvest, wherever its path. The token is
never stored: only the base URL (without query), the export's path and format, and the
harvest parameters, which a resumed run must repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import msgspec

from .._errors import InvalidParameterError, JournalError, SinkError
from .._listing import Listing, listing_given
from .._models import ShopItem, ShopItemsPage
from .._shop import ShopCheckpoint, ShopResult, ShopStatus
from ._sinks import ExportFormat, Sink, open_sink

__all__ = ["ExportJournal", "JournalError", "JournalSummary", "default_state_path"]

SCHEMA_VERSION: Final = 1

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shops (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    page_size INTEGER NOT NULL DEFAULT 0,
    status TEXT,                  -- complete | partial | failed; NULL while in progress
    error TEXT,
    total_count INTEGER NOT NULL DEFAULT 0,
    items INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS pages (   -- one row per answered page (a page refetched
    shop_id INTEGER NOT NULL,         -- after drift has a row per answer)
    page INTEGER NOT NULL,
    total_count INTEGER NOT NULL,
    items INTEGER NOT NULL,           -- new items the page added to the export
    ids BLOB NOT NULL,                -- their item_id, as a JSON array: dedup on resume
    end_pos INTEGER NOT NULL          -- the export's size once they were written
);
CREATE INDEX IF NOT EXISTS pages_by_shop ON pages (shop_id);
"""


def default_state_path(output: Path) -> Path:
    """The state file beside ``output``, so that a plain rerun finds it."""
    return output.with_name(output.name + ".state.db")


def public_base_url(url: str) -> str:
    """``url`` without credentials, query or fragment: safe to store and print."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True, slots=True)
class JournalSummary:
    """What the state file holds over all runs so far."""

    shops: int  #: shops with a record
    complete: int  #: shops finished complete
    pages: int  #: pages answered
    items: int  #: items in the export


class ExportJournal:
    """A :class:`~tmapi_async.Journal` on SQLite, owning the export's sink.

    Open it with :meth:`open`; hand it to ``client.harvest(..., journal=journal)``;
    :meth:`close` it when the harvest ends (also after a stop: state is kept).
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        sink: Sink,
        state_path: Path,
        *,
        page_size: int = 20,
        resumed_position: int | None = None,
    ) -> None:
        self._db = db
        self._asked_page_size = page_size  # fallback if an answer does not say its size
        self.sink = sink  #: the export this journal writes
        self.state_path = state_path  #: the SQLite file
        self._shop_ids: dict[str, int] = {}  # open shops only: forgotten when finished
        self._page_sizes: dict[int, int] = {}  # shop id → page size recorded, open shops
        #: export bytes kept from earlier runs (0 for a new export, even a CSV whose
        #: header is written at once)
        self.resumed_position = sink.position if resumed_position is None else resumed_position
        # Group commit: rows of pages answered in one event-loop tick share a transaction.
        self._pending_sizes: list[tuple[int, int]] = []
        self._pending_pages: list[tuple[int, int, int, int, bytes, int]] = []
        self._pending_shops: list[tuple[str, str | None, int, int, int]] = []
        self._pending_meta: dict[str, str] = {}
        self._flush_handle: asyncio.Handle | None = None
        self._broken: BaseException | None = None
        self._meta: dict[str, str] = {}

    # -- opening ----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        state_path: Path,
        output: Path,
        fmt: ExportFormat,
        *,
        listing: Listing | None = None,
        params: Mapping[str, object] | None = None,
        base_url: str,
        csv_raw: bool = False,
    ) -> ExportJournal:
        """Open (or create) the state for exporting to ``output``; reopen the export.

        ``listing`` is the harvest's :class:`~tmapi_async.Listing` (page size, sort,
        category; ``params``, its record as a mapping, is the older spelling): a resumed
        run must pass the same, or its pages would not fit the ones already exported.
        ``csv_raw`` writes CSV text cells as sent (see :class:`CsvSink`); a resumed run
        must repeat it too, so that one file is not half neutralised.

        Raises:
            JournalError: the state belongs to another export, format or listing, or
                is not a tmapi-async state file.
            SinkError: the export cannot be reopened at the committed position.
            InvalidParameterError: both ``listing`` and ``params``, or a bad option.
        """
        listing = listing_given(listing, params)
        fresh = not state_path.exists()
        if fresh and output.exists():
            raise JournalError(
                f"{output} already exists and has no state file ({state_path}): "
                "remove it or choose another --output (nothing was overwritten)"
            )
        try:
            db = sqlite3.connect(state_path, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{state_path} is not a usable state file: {exc}") from exc
        wanted = {
            "version": str(SCHEMA_VERSION),
            "output": str(output.resolve()),
            "format": fmt,
            "params": listing.to_record(),
        }
        if fmt == "csv":
            wanted["csv_raw"] = "yes" if csv_raw else "no"
        if meta:
            for key, value in wanted.items():
                if key == "params" and _same_listing(meta.get(key), listing):
                    continue  # an older version's spelling of the same listing
                if meta.get(key) != value and (key != "csv_raw" or key in meta):
                    db.close()
                    raise JournalError(_mismatch(state_path, key, meta.get(key), value))
        # One row per page carries the export's size after it: the committed position
        # is the largest (the meta value covers a CSV header written before any page).
        last_page_end = db.execute("SELECT MAX(end_pos) FROM pages").fetchone()[0] or 0
        position = max(int(meta.get("position", "0")), last_page_end)
        try:
            sink = open_sink(output, fmt, resume_at=position, csv_raw=csv_raw)
        except SinkError:
            db.close()
            raise
        rows = {
            **wanted,
            "base_url": public_base_url(base_url),
            "position": str(sink.position),  # a new CSV starts after its header
            "updated": str(int(time.time())),
        }
        if not meta:
            rows["created"] = rows["updated"]
        if "harvest_id" not in meta:  # a new state file (or one older than ids): a new id
            rows["harvest_id"] = secrets.token_hex(8)
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", rows.items())
        db.execute("COMMIT")
        journal = cls(db, sink, state_path, page_size=listing.page_size, resumed_position=position)
        journal._meta = {**meta, **rows}
        return journal

    @property
    def harvest_id(self) -> str:
        """This harvest's random id, made when the state file was created."""
        return self._meta["harvest_id"]

    def recall(self, key: str) -> str | None:
        """A value remembered with :meth:`remember` (in any earlier run)."""
        return self._meta.get(f"x:{key}")

    def remember(self, key: str, value: str) -> None:
        """Keep ``value`` under ``key`` in the state file, committed with the next flush."""
        self._meta[f"x:{key}"] = value
        self._pending_meta[f"x:{key}"] = value
        self._schedule_flush()

    # -- the Journal protocol ----------------------------------------------------------

    async def open_shop(self, shop_url: str) -> ShopCheckpoint | None:
        """What earlier runs harvested of ``shop_url`` (``None`` if nothing)."""
        self.flush()
        row = self._db.execute(
            "SELECT id, page_size, status, error FROM shops WHERE url = ?", (shop_url,)
        ).fetchone()
        if row is None:
            return None
        shop_id, page_size, status, error = row
        pages: dict[int, int] = {}
        seen: set[str] = set()
        complete = status == "complete"
        item_count = 0
        for page, total, items, ids in self._db.execute(
            "SELECT page, total_count, items, ids FROM pages WHERE shop_id = ?", (shop_id,)
        ):
            pages[page] = max(total, pages.get(page, 0))
            item_count += items
            if not complete:  # a complete shop is not fetched again: no dedup needed
                seen.update(_decode_ids(ids))
        if complete:
            return ShopCheckpoint(
                pages=pages, page_size=page_size, status="complete", item_count=item_count
            )
        if not pages:
            return None
        self._shop_ids[shop_url] = shop_id
        self._page_sizes[shop_id] = page_size
        return ShopCheckpoint(
            pages=pages, page_size=page_size, seen=seen, status=status, error=error
        )

    async def record_page(
        self, shop_url: str, page: int, answer: ShopItemsPage, new_items: Sequence[ShopItem]
    ) -> None:
        """Export ``new_items`` now; commit the page, their ids and the export position at
        the end of this event-loop tick, together with the other pages answered in it.

        Raises:
            OSError, sqlite3.Error: the export or the state cannot be written (now or at
                an earlier commit): the harvest must stop, a rerun resumes.
        """
        if self._broken is not None:
            raise self._broken
        self.sink.write(shop_url, new_items)
        shop_id = self._shop_id(shop_url)
        if page == 1 or not self._page_sizes.get(shop_id):
            # A resumed shop's plan is built on the size page 1 was answered with.
            size = answer.page_size or self._asked_page_size
            self._pending_sizes.append((size, shop_id))
            self._page_sizes[shop_id] = size
        ids = _encode_ids([item.item_id for item in new_items])
        self._pending_pages.append(
            (shop_id, page, answer.total_count, len(new_items), ids, self.sink.position)
        )
        self._schedule_flush()

    async def record_shop(self, result: ShopResult) -> None:
        """Commit (with the pages of this tick) that a shop is finished, with its status.

        A shop with no page recorded (an invalid line, page 1 failed) leaves no row:
        there is nothing to resume, and an invalid line's text is not worth keeping.
        """
        shop_id = self._shop_ids.pop(result.shop_url, None)
        if shop_id is None:
            return  # never opened a page here, this run or before
        self._page_sizes.pop(shop_id, None)
        error = None if result.error is None else str(result.error)
        self._pending_shops.append((result.status, error, result.total_count, shop_id, shop_id))
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flush_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()  # no event loop (plain synchronous use): commit at once
            return
        self._flush_handle = loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_handle = None
        with contextlib.suppress(OSError, sqlite3.Error):
            self.flush()  # kept in _broken: the next record_page raises it to the harvest

    def flush(self, *, durable: bool = False) -> None:
        """Commit what is pending now, in one transaction (close() does it too).

        ``durable``: on disk when this returns, the export fsynced first and the commit
        synced, so a power cut cannot lose it (one sync per call: call it per batch).
        """
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._broken is not None:
            raise self._broken
        pending = self._pending_pages or self._pending_shops or self._pending_sizes
        if not (pending or self._pending_meta):
            return
        db = self._db
        try:
            if durable:
                self.sink.sync()  # the items before the commit that accounts for them
                db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("UPDATE shops SET page_size = ? WHERE id = ?", self._pending_sizes)
                db.executemany("INSERT INTO pages VALUES (?, ?, ?, ?, ?, ?)", self._pending_pages)
                db.executemany(
                    "UPDATE shops SET status = ?, error = ?, total_count = ?,"
                    " items = (SELECT COALESCE(SUM(items), 0) FROM pages WHERE shop_id = ?)"
                    " WHERE id = ?",
                    self._pending_shops,
                )
                db.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)", self._pending_meta.items()
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            finally:
                if durable:
                    db.execute("PRAGMA synchronous=NORMAL")
        except (OSError, sqlite3.Error) as exc:
            # Later pages must not commit positions past these uncommitted ones: the
            # journal refuses everything from now on, and a rerun cuts the export back.
            self._broken = exc
            raise
        finally:
            self._pending_sizes.clear()
            self._pending_pages.clear()
            self._pending_shops.clear()
            self._pending_meta.clear()

    # -- reading back ------------------------------------------------------------------

    def shop_status(self, shop_url: str) -> ShopStatus | None:
        """The recorded status of a shop (``None``: unknown or not finished)."""
        self.flush()
        row = self._db.execute("SELECT status FROM shops WHERE url = ?", (shop_url,)).fetchone()
        return None if row is None else row[0]

    def summary(self) -> JournalSummary:
        """Totals over every run recorded in this state file."""
        self.flush()
        shops, complete = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(status = 'complete'), 0) FROM shops"
        ).fetchone()
        pages, items = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(items), 0) FROM pages"
        ).fetchone()
        return JournalSummary(shops=shops, complete=complete, pages=pages, items=items)

    def close(self) -> None:
        """Commit what is pending, finish the export (Parquet: write the file), close."""
        try:
            if self._broken is None:
                self.flush()
            self.sink.close()
        finally:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._db.close()

    def __enter__(self) -> ExportJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers -----------------------------------------------------------------------

    def _shop_id(self, shop_url: str) -> int:
        shop_id = self._shop_ids.get(shop_url)
        if shop_id is None:
            self._db.execute("INSERT OR IGNORE INTO shops (url) VALUES (?)", (shop_url,))
            row = self._db.execute("SELECT id FROM shops WHERE url = ?", (shop_url,)).fetchone()
            shop_id = int(row[0])
            self._shop_ids[shop_url] = shop_id
        return shop_id


_encode_ids = msgspec.json.Encoder().encode  # bytes: SQLite stores them as a BLOB
_decode_ids = msgspec.json.Decoder(list[str]).decode


def _same_listing(record: str | None, listing: Listing) -> bool:
    """Whether a state file's ``params`` record holds ``listing``."""
    if record is None:
        return False
    try:
        return Listing.from_record(record) == listing
    except InvalidParameterError:
        return False


def _mismatch(state_path: Path, key: str, had: str | None, want: str) -> str:
    if key == "version":
        return f"{state_path} was written by another version of tmapi-async (schema {had})"
    if key == "output":
        return f"{state_path} is the state of the export {had}, not {want}"
    if key == "csv_raw":
        flag = "with" if had == "yes" else "without"
        return f"{state_path} belongs to a CSV export written {flag} --csv-raw; rerun {flag} it"
    if key == "format":
        return f"{state_path} belongs to a --format {had} export; rerun with --format {had}"
    return (
        f"{state_path} was written by a harvest with other parameters ({had}); rerun with "
        "the same --page-size, --sort, --cat and --cat-type, or use another --output"
    )
