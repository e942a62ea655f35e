"""Recurring harvests end to end: day 0 and day 1 of the simulator, harvested by the CLI,
compared by ``tmapi-async diff``; manifests mark the failed and the partial shop."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from clirun import Run, cli_env, harvest_args, run_cli

from tmapi_async._manifest import manifest_path, read_manifest
from tmapi_async.testing import DayChanges, SimulatedTmapi, shop_catalogue

TOKEN = "tok-SECRET-monitor-77"
# shop3 fails for good on day 1, shop4 from its 4th page on; shop5 is too small to change.
SIZES = {"shop1": 60, "shop2": 45, "shop3": 100, "shop4": 100, "shop5": 12}
FAILING = {"shop3": 1, "shop4": 4}


def url(name: str) -> str:
    return f"https://{name}.1688.com/"


async def cli(*args: str) -> Run:
    return await run_cli(*args, env=cli_env(TOKEN))


async def harvest(sim: SimulatedTmapi, shops: Path, output: Path, *extra: str) -> Run:
    return await cli(*harvest_args(sim, shops, output, *extra))


@pytest.fixture
def shops_file(tmp_path: Path) -> Path:
    path = tmp_path / "shops.txt"
    path.write_text("".join(f"{url(name)}\n" for name in SIZES))
    return path


def day_changes(name: str, held: set[str] | None = None) -> set[tuple[str, str, str]]:
    """(change, shop_url, item_id) between day 0 and day 1 of a shop; with ``held`` (the ids
    a partial harvest got), only what that harvest can show: no gone, only items it holds."""
    before = {i.item_id: i for i in shop_catalogue(name, SIZES[name])}
    after = {i.item_id: i for i in shop_catalogue(name, SIZES[name], day=1)}
    want = {("new", url(name), k) for k in after.keys() - before.keys()}
    if held is None:
        want |= {("gone", url(name), k) for k in before.keys() - after.keys()}
    for k in before.keys() & after.keys():
        if before[k] != after[k]:
            want |= {("price", url(name), k), ("sales", url(name), k)}
    return {w for w in want if held is None or w[2] in held}


async def test_day_one_diff_reports_exactly_what_changed_and_spares_incomplete_shops(
    tmp_path: Path, shops_file: Path
) -> None:
    """A day-one harvest and diff report exactly what changed, with no gone items for incomplete
    shops."""
    async with SimulatedTmapi(shop_sizes=SIZES) as sim:
        day0 = tmp_path / "a.jsonl"
        first = await harvest(sim, shops_file, day0)
        assert first.code == 0, first.err
        # Day 1: a permanent error (422, not retried) for shop3's pages and shop4's from 4 on.
        sim.configure(day=1, failing_shops=FAILING, failing_code=422)
        day1 = tmp_path / "b.csv"
        second = await harvest(sim, shops_file, day1)
        assert second.code == 1, second.err

    manifest = read_manifest(manifest_path(day1))
    assert manifest is not None
    statuses = {s.shop_url: (s.status, s.items) for s in manifest.shops}
    assert statuses == {
        url("shop1"): ("complete", 60 + 4),
        url("shop2"): ("complete", 45 + 4),
        url("shop3"): ("failed", 0),
        url("shop4"): ("partial", 60),
        url("shop5"): ("complete", 12),
    }
    assert manifest.shop(url("shop4")).error  # type: ignore[union-attr]
    assert (manifest.listing.sort, manifest.export_format) == ("default", "csv")
    old_manifest = read_manifest(manifest_path(day0))
    assert old_manifest is not None
    assert {s.status for s in old_manifest.shops} == {"complete"}
    assert TOKEN not in manifest_path(day1).read_text()

    changes = tmp_path / "changes.jsonl"
    compared = await cli("diff", str(day0), str(day1), "--output", str(changes))
    assert compared.code == 0, compared.err
    rows = [json.loads(line) for line in changes.read_text().splitlines()]
    got = Counter((r["change"], r["shop_url"], r["item_id"]) for r in rows)
    assert max(got.values()) == 1
    held = set(shop4_ids(day1))
    want = (
        day_changes("shop1")
        | day_changes("shop2")
        | day_changes("shop4", held=held)
        | {("shop_incomplete", url("shop3"), None), ("shop_incomplete", url("shop4"), None)}
    )
    assert set(got) == want  # type: ignore[comparison-overlap]
    assert len(day_changes("shop4", held=held)) >= 7  # its new listings lead page 1
    assert not [
        r for r in rows if r["change"] == "gone" and r["shop_url"] in (url("shop3"), url("shop4"))
    ]
    incomplete = {r["shop_url"]: (r["before"], r["after"]) for r in rows if r["item_id"] is None}
    assert incomplete == {
        url("shop3"): ("complete", "failed"),
        url("shop4"): ("complete", "partial"),
    }
    assert "price" in compared.err
    assert f"{url('shop1')}: gone 3, new 7, price 5, sales 5" in compared.err
    assert "largest price moves" in compared.err


def shop4_ids(export: Path) -> list[str]:
    import csv

    with open(export, newline="", encoding="utf-8") as f:
        return [r["item_id"] for r in csv.DictReader(f) if r["shop_url"] == url("shop4")]


def new_listings(name: str) -> set[tuple[str, str]]:
    before = {i.item_id for i in shop_catalogue(name, SIZES[name])}
    after = {i.item_id for i in shop_catalogue(name, SIZES[name], day=1)}
    return {(url(name), k) for k in after - before}


def export_rows(path: Path) -> list[tuple[str, str]]:
    return [
        (row["shop_url"], row["item_id"])
        for row in map(json.loads, path.read_text(encoding="utf-8").splitlines())
    ]


async def test_since_exports_exactly_the_new_listings_for_about_a_page_per_shop(
    tmp_path: Path, shops_file: Path
) -> None:
    """harvest --since exports exactly the new listings, for one request per shop."""
    async with SimulatedTmapi(shop_sizes=SIZES) as sim:
        day0 = tmp_path / "a.csv"
        assert (await harvest(sim, shops_file, day0)).code == 0
        sim.configure(day=1, failing_shops=FAILING, failing_code=422)
        sim.reset()
        new = tmp_path / "new.jsonl"
        run = await harvest(sim, shops_file, new, "--since", str(day0))
        assert run.code == 1, run.err  # shop3 failed
        records = list(sim.log.records)
    rows = export_rows(new)
    assert len(rows) == len(set(rows))
    # shop3 failed; shop4 fails only from page 4: its 7 new listings are on page 1.
    assert set(rows) == new_listings("shop1") | new_listings("shop2") | new_listings("shop4")
    assert len(rows) == 3 * 7
    per_shop = Counter(r.shop for r in records)
    assert per_shop == dict.fromkeys(("shop1", "shop2", "shop3", "shop4", "shop5"), 1)
    assert {r.sort for r in records} == {"time_down"}
    manifest = read_manifest(manifest_path(new))
    assert manifest is not None
    assert manifest.since == str(day0)
    assert manifest.listing.sort == "time_down"
    assert {s.shop_url: (s.status, s.items) for s in manifest.shops} == {
        url("shop1"): ("complete", 7),
        url("shop2"): ("complete", 7),
        url("shop3"): ("failed", 0),
        url("shop4"): ("complete", 7),
        url("shop5"): ("complete", 0),
    }


TWO = {"shop1": 60, "shop2": 45}


@pytest.fixture
def two_shops(tmp_path: Path) -> Path:
    path = tmp_path / "two.txt"
    path.write_text("".join(f"{url(name)}\n" for name in TWO))
    return path


async def test_since_resumes_and_refuses_a_conflicting_sort(
    tmp_path: Path, two_shops: Path
) -> None:
    """harvest --since refuses another sort, stops on a budget, and resumes to every new listing
    once."""
    sizes, shops_file = TWO, two_shops
    async with SimulatedTmapi(shop_sizes=sizes, new_per_day=30) as sim:
        day0 = tmp_path / "a.jsonl"
        assert (await harvest(sim, shops_file, day0)).code == 0
        sim.configure(day=1)
        new = tmp_path / "new.jsonl"
        refused = await harvest(sim, shops_file, new, "--since", str(day0), "--sort", "sales")
        assert refused.code == 2
        assert "--since reads each shop newest first" in refused.err
        # 30 new listings a shop: 2 pages each. A budget of 3 requests stops mid-way.
        stopped = await harvest(sim, shops_file, new, "--since", str(day0), "--max-requests", "3")
        assert stopped.code == 3, stopped.err
        cut = read_manifest(manifest_path(new))
        assert cut is not None
        assert cut.stopped is not None  # the budget: shops it did not finish are not listed
        assert len(cut.shops) < 2
        resumed = await harvest(sim, shops_file, new, "--since", str(day0))
        assert resumed.code == 0, resumed.err
    rows = export_rows(new)
    want = set()
    for name, size in sizes.items():
        before = {i.item_id for i in shop_catalogue(name, size)}
        after = shop_catalogue(name, size, day=1, changes=DayChanges(new=30))
        want |= {(url(name), i.item_id) for i in after if i.item_id not in before}
    assert len(rows) == len(set(rows)) == 60
    done = read_manifest(manifest_path(new))
    assert done is not None
    assert done.stopped is None
    assert {(s.status, s.items) for s in done.shops} == {("complete", 30)}
    assert set(rows) == want
