"""The SQLite journal: pages and export positions committed together, safe resumes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import tmapi_async as tm
from tmapi_async import ShopItem, ShopItemsPage, ShopResult
from tmapi_async.export import (
    ExportJournal,
    JournalError,
    SinkError,
    default_state_path,
    public_base_url,
)
from tmapi_async.testing import SimulatedTmapi

SHOP = "https://xldjjg.1688.com/"
PARAMS = {"page_size": 20, "sort": "default", "cat": None, "cat_type": None}
TOKEN = "jwt.SECRET-token-value.sig"


def _page(page: int, ids: list[str], total: int = 45, size: int = 20) -> ShopItemsPage:
    return ShopItemsPage(
        page=page,
        page_size=size,
        total_count=total,
        items=[ShopItem(item_id=i, title=f"t{i}") for i in ids],
    )


def _open(tmp_path: Path, **kw: object) -> ExportJournal:
    out = tmp_path / "out.jsonl"
    return ExportJournal.open(
        default_state_path(out),
        out,
        "jsonl",
        params=kw.pop("params", PARAMS),  # type: ignore[arg-type]
        base_url=str(kw.pop("base_url", "https://api.tmapi.io")),
    )


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["item_id"] for line in path.read_text().splitlines()]


async def test_a_new_shop_has_no_checkpoint(tmp_path: Path) -> None:
    """Nothing recorded: ``open_shop`` returns None and the harvest starts at page 1."""
    with _open(tmp_path) as journal:
        assert await journal.open_shop(SHOP) is None


async def test_recorded_pages_come_back_on_reopen(tmp_path: Path) -> None:
    """Pages, their total_count, the answered page size and seen ids survive a reopen."""
    with _open(tmp_path) as journal:
        page1 = _page(1, ["a", "b"], size=2, total=5)
        await journal.record_page(SHOP, 1, page1, page1.items)
        page3 = _page(3, ["e"], size=2, total=6)
        await journal.record_page(SHOP, 3, page3, page3.items)
    with _open(tmp_path) as journal:
        checkpoint = await journal.open_shop(SHOP)
        assert checkpoint is not None
        assert checkpoint.pages == {1: 5, 3: 6}
        assert checkpoint.page_size == 2
        assert checkpoint.seen == {"a", "b", "e"}
        assert checkpoint.status is None
    assert _ids(tmp_path / "out.jsonl") == ["a", "b", "e"]


async def test_a_complete_shop_is_marked_complete(tmp_path: Path) -> None:
    """``record_shop`` status is what a resume sees; complete shops are not refetched."""
    with _open(tmp_path) as journal:
        page = _page(1, ["a"], total=1)
        await journal.record_page(SHOP, 1, page, page.items)
        await journal.record_shop(ShopResult(shop_url=SHOP, total_count=1, pages=1, item_count=1))
        assert journal.summary().complete == 1
    with _open(tmp_path) as journal:
        checkpoint = await journal.open_shop(SHOP)
        assert checkpoint is not None
        assert checkpoint.status == "complete"
        assert journal.shop_status(SHOP) == "complete"


async def test_a_failed_shop_keeps_its_error_and_is_retried(tmp_path: Path) -> None:
    """Partial shops come back with their pages so a rerun fetches only what is missing."""
    with _open(tmp_path) as journal:
        page = _page(1, ["a"], total=40)
        await journal.record_page(SHOP, 1, page, page.items)
        await journal.record_shop(
            ShopResult(
                shop_url=SHOP,
                status="partial",
                error=tm.UpstreamError("Failed to retrieve data", code=417),
            )
        )
    with _open(tmp_path) as journal:
        checkpoint = await journal.open_shop(SHOP)
        assert checkpoint is not None
        assert checkpoint.status == "partial"
        assert checkpoint.error == "Failed to retrieve data (code 417)"
        assert checkpoint.pages == {1: 40}


async def test_an_invalid_shop_line_leaves_no_trace(tmp_path: Path) -> None:
    """A shop that never had a page (invalid URL) has nothing to resume: no row."""
    with _open(tmp_path) as journal:
        bad = "not a url"
        await journal.record_shop(
            ShopResult(shop_url=bad, status="failed", error=tm.InvalidParameterError("bad"))
        )
        assert await journal.open_shop(bad) is None
        assert journal.shop_status(bad) is None
        assert journal.summary().shops == 0


async def test_items_written_but_not_committed_are_cut_on_reopen(tmp_path: Path) -> None:
    """The kill -9 window: export written, transaction not committed → bytes dropped."""
    journal = _open(tmp_path)
    page = _page(1, ["a", "b"])
    await journal.record_page(SHOP, 1, page, page.items)
    journal.flush()  # the end of the tick: page 1 is committed
    journal.sink.write(SHOP, _page(2, ["c", "d"]).items)  # then the process dies
    journal._db.close()  # no close(): as after kill -9
    with _open(tmp_path) as again:
        checkpoint = await again.open_shop(SHOP)
        assert checkpoint is not None
        assert checkpoint.pages == {1: 45}
        assert checkpoint.seen == {"a", "b"}
        assert again.resumed_position == (tmp_path / "out.jsonl").stat().st_size
    assert _ids(tmp_path / "out.jsonl") == ["a", "b"]


def test_other_parameters_are_refused(tmp_path: Path) -> None:
    """A rerun with another sort would mix listings: refused, naming the flags."""
    _open(tmp_path).close()
    with pytest.raises(JournalError, match="--sort"):
        _open(tmp_path, params={**PARAMS, "sort": "sales"})


def test_another_format_is_refused(tmp_path: Path) -> None:
    """The state remembers the export format."""
    out = tmp_path / "out.jsonl"
    ExportJournal.open(
        default_state_path(out), out, "jsonl", params=PARAMS, base_url="https://x"
    ).close()
    with pytest.raises(JournalError, match="--format jsonl"):
        ExportJournal.open(default_state_path(out), out, "csv", params=PARAMS, base_url="https://x")


def test_an_existing_export_without_state_is_not_overwritten(tmp_path: Path) -> None:
    """Starting fresh over someone's file would destroy it: refused."""
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    with pytest.raises(JournalError, match="already exists"):
        _open(tmp_path)
    assert out.read_text() == "precious\n"


async def test_a_deleted_export_is_reported(tmp_path: Path) -> None:
    """State says N bytes, the file is gone: a clear error instead of a silent gap."""
    with _open(tmp_path) as journal:
        page = _page(1, ["a"])
        await journal.record_page(SHOP, 1, page, page.items)
    (tmp_path / "out.jsonl").unlink()
    with pytest.raises(SinkError, match="cut or replaced"):
        _open(tmp_path)


def test_not_a_state_file(tmp_path: Path) -> None:
    """Garbage where the state should be is a JournalError."""
    out = tmp_path / "out.jsonl"
    default_state_path(out).write_bytes(b"not sqlite at all" * 100)
    out.write_text("")
    with pytest.raises(JournalError, match="not a usable state file"):
        _open(tmp_path)


def test_base_url_is_stored_without_secrets(tmp_path: Path) -> None:
    """Credentials and query strings never reach the state file."""
    assert public_base_url("https://u:p@api.tmapi.io:8443/x?apiToken=T#f") == (
        "https://api.tmapi.io:8443/x"
    )
    with _open(tmp_path, base_url=f"http://user:{TOKEN}@127.0.0.1:9/?apiToken={TOKEN}"):
        pass
    db = sqlite3.connect(default_state_path(tmp_path / "out.jsonl"))
    meta = dict(db.execute("SELECT key, value FROM meta"))
    db.close()
    assert meta["base_url"] == "http://127.0.0.1:9/"
    assert TOKEN not in default_state_path(tmp_path / "out.jsonl").read_bytes().decode("latin-1")


async def test_journal_drives_a_real_harvest_and_resumes(tmp_path: Path) -> None:
    """With the engine and the simulator: every item once; a rerun fetches nothing."""
    shops = [f"https://shop{i}.1688.com/" for i in range(1, 6)]
    async with SimulatedTmapi(shop_sizes={"shop1": 0, "shop2": 1, "shop3": 45}) as sim:
        expected = {(s, item.item_id) for s in shops for item in sim.expected_items(s.rstrip("/"))}
        with _open(tmp_path, base_url=sim.url) as journal:
            async with tm.Client(TOKEN, base_url=sim.url, rate=1000) as client:
                results = [
                    r async for r in client.harvest(shops, journal=journal, keep_items=False)
                ]
        assert {r.status for r in results} == {"complete"}
        rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert len(rows) == len(expected)
        assert {(r["shop_url"], r["item_id"]) for r in rows} == expected
        served = len(sim.log)
        with _open(tmp_path, base_url=sim.url) as journal:
            async with tm.Client(TOKEN, base_url=sim.url, rate=1000) as client:
                harvest = client.harvest(shops, journal=journal, keep_items=False)
                again = [r async for r in harvest]
        assert len(sim.log) == served  # nothing asked twice
        assert harvest.progress.shops_resumed == len(shops)
        assert {r.status for r in again} == {"complete"}
    assert TOKEN not in (tmp_path / "out.jsonl").read_text()


def _committed_pages(tmp_path: Path) -> int:
    db = sqlite3.connect(default_state_path(tmp_path / "out.jsonl"))
    try:
        return int(db.execute("SELECT COUNT(*) FROM pages").fetchone()[0])
    finally:
        db.close()


async def test_pages_of_one_tick_commit_together(tmp_path: Path) -> None:
    """In an event loop, pages answered in the same tick share one transaction."""
    with _open(tmp_path) as journal:
        for n in range(1, 4):
            page = _page(n, [f"id{n}"])
            await journal.record_page(SHOP, n, page, page.items)
        assert _committed_pages(tmp_path) == 0  # written to the export, not yet committed
        journal.flush()
        assert _committed_pages(tmp_path) == 3
    assert _ids(tmp_path / "out.jsonl") == ["id1", "id2", "id3"]


async def test_a_failed_commit_stops_the_journal(tmp_path: Path) -> None:
    """After a commit fails, no later page may commit a position past the lost ones."""
    journal = _open(tmp_path)
    page = _page(1, ["a"])
    await journal.record_page(SHOP, 1, page, page.items)
    journal._db.close()  # the state file becomes unwritable
    with pytest.raises(sqlite3.Error):
        journal.flush()
    with pytest.raises(sqlite3.Error):
        await journal.record_page(SHOP, 2, _page(2, ["b"]), _page(2, ["b"]).items)
    assert _ids(tmp_path / "out.jsonl") == ["a"]  # page 2 was refused before writing


def test_each_state_file_is_a_harvest_of_its_own(tmp_path: Path) -> None:
    """A random id made with the state file and kept by it: the same file is the same
    harvest on every reopen; a fresh file (the old one rotated away) is a new one."""
    journal = _open(tmp_path)
    first = journal.harvest_id
    journal.remember("redis_epoch", "e1")
    journal.close()
    again = _open(tmp_path)
    assert again.harvest_id == first
    assert again.recall("redis_epoch") == "e1"
    assert again.recall("never") is None
    again.close()
    out = tmp_path / "out.jsonl"
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    for path in tmp_path.glob("out.jsonl*"):
        path.rename(rotated / path.name)
    fresh = _open(tmp_path)
    assert len(fresh.harvest_id) == 16
    assert fresh.harvest_id != first
    assert fresh.recall("redis_epoch") is None
    fresh.close()
    assert out.exists()


async def test_a_durable_flush_syncs_the_export_before_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What is flushed durably is on disk: the export fsynced, then the commit run with
    synchronous=FULL (and NORMAL again after it, for the pages that follow)."""
    synced: list[int] = []
    monkeypatch.setattr("os.fsync", lambda fd: synced.append(fd))
    journal = _open(tmp_path)
    await journal.record_page("https://a.1688.com/", 1, _page(1, ["x", "y"]), [])
    journal.flush()
    assert synced == []  # an ordinary commit reaches the OS, not the disk
    await journal.record_page("https://a.1688.com/", 2, _page(2, ["z"]), [])
    journal.flush(durable=True)
    assert len(synced) == 1
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL again
    journal.close()
    assert _committed_pages(tmp_path) == 2
