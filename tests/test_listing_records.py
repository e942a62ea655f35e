"""``Listing`` is the one shape of a listing below the command line: one way to write it
(``to_record``) and one to read it (``from_record``), also what earlier versions wrote
in state files; and a harvest's progress counts a finished shop in one place."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import tmapi_async as tm
from tmapi_async._listing import SORTS, listing_given
from tmapi_async._manifest import ManifestListing
from tmapi_async._progress import HarvestProgress
from tmapi_async.cli._options import SORTS as CLI_SORTS
from tmapi_async.export import ExportJournal, JournalError, default_state_path
from tmapi_async.testing import SORTS as SIMULATOR_SORTS

LISTINGS = [
    tm.Listing(),
    tm.Listing(50, tm.Sort.SALES),
    tm.Listing(page_size=7, sort="time_down", cat="12 34", cat_type=1),
]


@pytest.mark.parametrize("listing", LISTINGS, ids=repr)
def test_a_record_reads_back_as_the_same_listing(listing: tm.Listing) -> None:
    """``from_record(to_record())`` is the listing again, query string included, and
    the record is the same text for equal listings."""
    record = listing.to_record()
    back = tm.Listing.from_record(record)
    assert back == listing
    assert back.query == listing.query
    assert tm.Listing.from_record(record.encode()) == listing
    assert json.loads(record) == {
        "page_size": listing.page_size,
        "sort": listing.sort,
        "cat": listing.cat,
        "cat_type": listing.cat_type,
    }
    assert ManifestListing.of(listing).sort == listing.sort


def test_older_spellings_of_a_record_are_read() -> None:
    """What earlier versions wrote: fields missing, a category as a number, keys in
    another order or beside others."""
    assert tm.Listing.from_record("{}") == tm.Listing()
    assert tm.Listing.from_record({"page_size": 20}) == tm.Listing()
    assert tm.Listing.from_record('{"sort": "sales", "cat": 12, "extra": true}') == tm.Listing(
        sort="sales", cat="12"
    )


@pytest.mark.parametrize(
    ("record", "says"),
    [
        ("{not json", "not JSON"),
        ("[20]", "not a JSON object"),
        ('{"page_size": 0}', "page_size must be"),
        ('{"sort": "random"}', "sort must be one of"),
    ],
)
def test_a_bad_record_is_refused_saying_why(record: str, says: str) -> None:
    """A record that holds no valid listing raises InvalidParameterError (a ValueError)."""
    with pytest.raises(tm.InvalidParameterError, match=says):
        tm.Listing.from_record(record)


def test_the_listing_is_given_whole_or_as_a_record_not_both() -> None:
    """``listing=`` or the older ``params=``; neither is the default listing."""
    listing = tm.Listing(30)
    assert listing_given(listing, None) is listing
    assert listing_given(None, {"page_size": 30}) == listing
    assert listing_given(None, None) == tm.Listing()
    with pytest.raises(tm.InvalidParameterError, match="not both"):
        listing_given(listing, {"page_size": 30})


def test_the_sort_orders_are_written_once() -> None:
    """The command line and the simulator offer the library's orders, the same object."""
    assert tuple(tm.Sort) == SORTS
    assert CLI_SORTS is SORTS
    assert SIMULATOR_SORTS is SORTS


def _rewrite_params(state: Path, text: str) -> None:
    with sqlite3.connect(state) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'params'", (text,))


def test_a_state_file_of_an_earlier_version_resumes_with_the_same_listing(
    tmp_path: Path,
) -> None:
    """A state file whose listing an earlier version spelled otherwise (a number for the
    category, keys in another order) reopens with that listing, and with no other."""
    out = tmp_path / "out.jsonl"
    state = default_state_path(out)
    listing = tm.Listing(40, "sales", cat="7")
    ExportJournal.open(state, out, "jsonl", listing=listing, base_url="https://x").close()
    _rewrite_params(state, '{"sort": "sales", "page_size": 40, "cat_type": null, "cat": 7}')
    with ExportJournal.open(state, out, "jsonl", listing=listing, base_url="https://x"):
        pass
    with ExportJournal.open(
        state, out, "jsonl", params={"page_size": 40, "sort": "sales", "cat": "7"}, base_url=""
    ):
        pass
    with pytest.raises(JournalError, match="other parameters"):
        ExportJournal.open(state, out, "jsonl", listing=tm.Listing(40), base_url="https://x")


def test_a_state_file_keeps_the_listings_record(tmp_path: Path) -> None:
    """The state file holds ``to_record()``, and the journal takes its page size from it."""
    out = tmp_path / "out.jsonl"
    listing = tm.Listing(33, "price_up")
    with ExportJournal.open(
        default_state_path(out), out, "jsonl", listing=listing, base_url="https://x"
    ) as journal:
        assert journal._asked_page_size == 33
    with sqlite3.connect(default_state_path(out)) as db:
        (params,) = db.execute("SELECT value FROM meta WHERE key = 'params'").fetchone()
    assert params == listing.to_record()


@pytest.mark.parametrize(
    ("statuses", "counts"),
    [
        (["complete", "complete", "partial"], (3, 2, 1, 0)),
        (["failed", "partial", "failed"], (3, 0, 1, 2)),
        ([], (0, 0, 0, 0)),
    ],
)
def test_a_finished_shop_is_counted_once_in_all_and_once_by_status(
    statuses: list[str], counts: tuple[int, int, int, int]
) -> None:
    """``shop_finished`` is the one count of finished shops (local and Redis harvests)."""
    progress = HarvestProgress()
    for status in statuses:
        progress.shop_finished(status)  # type: ignore[arg-type]
    done = (
        progress.shops_done,
        progress.shops_complete,
        progress.shops_partial,
        progress.shops_failed,
    )
    assert done == counts
