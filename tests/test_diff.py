"""diff(): exact changes between two exports of any format, trusting shops by their manifests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from tmapi_async import Change, DiffInputError, ShopItem, ShopResult, diff
from tmapi_async._export_reader import ExportReadError, read_export
from tmapi_async._manifest import ManifestListing, build_manifest, manifest_path, write_manifest
from tmapi_async.export import ExportFormat, open_sink
from tmapi_async.testing import shop_catalogue

SHOPS = ("alpha", "beta", "gamma")
FORMATS = ("jsonl", "csv", "parquet")


def url(name: str) -> str:
    return f"https://{name}.1688.com/"


def catalogue(name: str, day: int, size: int = 60) -> list[ShopItem]:
    return [
        msgspec.json.decode(msgspec.json.encode(i), type=ShopItem)
        for i in shop_catalogue(name, size, day=day)
    ]


def write_export(
    path: Path,
    shops: dict[str, Sequence[ShopItem]],
    *,
    statuses: dict[str, str] | None = None,
    since: str | None = None,
) -> Path:
    """An export of ``shops`` in the format of ``path``'s extension; with ``statuses``, its
    manifest too (shops in ``statuses`` but not in ``shops`` are listed with no items)."""
    fmt: ExportFormat = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}[path.suffix]  # type: ignore[assignment]
    sink = open_sink(path, fmt)
    for name, items in shops.items():
        sink.write(url(name), items)
    sink.close()
    if statuses is not None:
        results = [
            ShopResult(url(name), status=status, item_count=len(shops.get(name, ())))  # type: ignore[arg-type]
            for name, status in statuses.items()
        ]
        manifest = build_manifest(
            results,
            version="test",
            export=path,
            export_format=fmt,
            listing=ManifestListing(),
            started_at="s",
            finished_at="f",
            since=since,
        )
        write_manifest(manifest_path(path), manifest)
    return path


def rows(old: Path, new: Path) -> list[Change]:
    with diff(old, new) as changes:
        return list(changes)


def kinds(changes: Iterable[Change]) -> set[tuple[str, str, str | None]]:
    return {(c.change, c.shop_url, c.item_id) for c in changes}


def expected_item_changes(names: Iterable[str], *, gone: bool = True) -> set[tuple[str, str, str]]:
    want: set[tuple[str, str, str]] = set()
    for name in names:
        before = {i.item_id: i for i in catalogue(name, 0)}
        after = {i.item_id: i for i in catalogue(name, 1)}
        want |= {("new", url(name), k) for k in after.keys() - before.keys()}
        if gone:
            want |= {("gone", url(name), k) for k in before.keys() - after.keys()}
        for k in before.keys() & after.keys():
            if before[k] != after[k]:
                want |= {("price", url(name), k), ("sales", url(name), k)}
    return want


FORMAT_PAIRS = [("jsonl", "jsonl"), ("jsonl", "csv"), ("csv", "parquet"), ("parquet", "jsonl")]


@pytest.mark.parametrize(("old_fmt", "new_fmt"), FORMAT_PAIRS)
def test_a_day_gives_exactly_new_gone_price_and_sales(
    tmp_path: Path, old_fmt: str, new_fmt: str
) -> None:
    """A day between two exports, any formats: exactly the new, gone, price and sales changes, shop
    by shop in item order."""
    old = write_export(tmp_path / f"a.{old_fmt}", {n: catalogue(n, 0) for n in SHOPS})
    new = write_export(tmp_path / f"b.{new_fmt}", {n: catalogue(n, 1) for n in SHOPS})
    changes = rows(old, new)
    assert kinds(changes) == expected_item_changes(SHOPS)
    assert len(changes) == len(SHOPS) * (7 + 3 + 5 + 5)
    # Rows come shop by shop, in item-id order within a shop.
    keys = [(c.shop_url, c.item_id or "") for c in changes]
    assert keys == sorted(keys)


def test_rows_carry_before_after_and_the_price_change(tmp_path: Path) -> None:
    """Each change row carries the item before and after, and a price change as the move of the
    lowest price."""
    before = {i.item_id: i for i in catalogue("alpha", 0)}
    after = {i.item_id: i for i in catalogue("alpha", 1)}
    old = write_export(tmp_path / "a.jsonl", {"alpha": list(before.values())})
    new = write_export(tmp_path / "b.csv", {"alpha": list(after.values())})
    for change in rows(old, new):
        key = change.item_id
        assert key is not None
        if change.change == "new":
            assert change.before is None
            assert change.after == msgspec.to_builtins(after[key])
        elif change.change == "gone":
            assert change.after is None
            assert change.before["title"] == before[key].title
        elif change.change == "price":
            assert (change.before, change.after) == (before[key].price, after[key].price)
            low_old, low_new = before[key].price_min, after[key].price_min
            assert low_old is not None
            assert low_new is not None
            assert change.price_change == pytest.approx(float(low_new / low_old - 1))
            assert Decimal("0.04") < abs(Decimal(change.price_change)) < Decimal("0.31")
        else:
            assert change.change == "sales"
            assert change.before == msgspec.to_builtins(before[key].sale_info)
            assert change.after["sale_quantity"] > change.before["sale_quantity"]
            assert change.price_change is None


def test_identical_exports_of_different_formats_have_no_changes(tmp_path: Path) -> None:
    """JSON Lines, CSV and Parquet of the same items read back equal and diff to nothing, hostile
    titles too."""
    items = catalogue("alpha", 2, size=300)
    items[0] = msgspec.structs.replace(items[0], title="=HYPERLINK(1)", category_path=("1", "2"))
    items[1] = msgspec.structs.replace(items[1], quantity=12, price="-", title="+plus")
    paths = [write_export(tmp_path / f"x.{fmt}", {"alpha": items}) for fmt in FORMATS]
    read = [list(read_export(p)) for p in paths]
    assert read[0] == read[1] == read[2]
    assert read[0][0].title == "=HYPERLINK(1)"
    for old in paths:
        for new in paths:
            assert rows(old, new) == []


def test_incomplete_shops_report_no_gone_but_their_new_and_changed_items(tmp_path: Path) -> None:
    """A shop not complete in NEW's manifest gets one shop_incomplete row and no gone items, but its
    new and changed ones."""
    day1 = {n: catalogue(n, 1) for n in SHOPS}
    partial = day1["beta"][:40]  # its first two pages only
    old = write_export(
        tmp_path / "a.jsonl",
        {n: catalogue(n, 0) for n in SHOPS},
        statuses=dict.fromkeys(SHOPS, "complete"),
    )
    new = write_export(
        tmp_path / "b.jsonl",
        {"alpha": day1["alpha"], "beta": partial},
        statuses={"alpha": "complete", "beta": "partial", "gamma": "failed"},
    )
    changes = rows(old, new)
    shop_rows = [c for c in changes if c.item_id is None]
    assert [(c.change, c.shop_url, c.before, c.after) for c in shop_rows] == [
        ("shop_incomplete", url("beta"), "complete", "partial"),
        ("shop_incomplete", url("gamma"), "complete", "failed"),
    ]
    held = {i.item_id for i in partial}
    want = expected_item_changes(["alpha"]) | {
        k for k in expected_item_changes(["beta"], gone=False) if k[2] in held
    }
    assert kinds(c for c in changes if c.item_id is not None) == want
    assert not [c for c in changes if c.change == "gone" and c.shop_url != url("alpha")]
    with diff(old, new) as d:
        list(d)
        assert d.summary.manifests == (True, True)
        assert d.summary.shops_compared == 3
        assert d.summary.kinds["shop_incomplete"] == 2


def test_a_shop_on_one_side_only_is_one_row(tmp_path: Path) -> None:
    """A shop in one export only is one shop_only_in_old or shop_only_in_new row, not an item per
    row."""
    old = write_export(
        tmp_path / "a.csv", {"alpha": catalogue("alpha", 0), "beta": catalogue("beta", 0)}
    )
    new = write_export(
        tmp_path / "b.csv", {"alpha": catalogue("alpha", 0), "gamma": catalogue("gamma", 0)}
    )
    assert [(c.change, c.shop_url, c.item_id, c.before, c.after) for c in rows(old, new)] == [
        ("shop_only_in_old", url("beta"), None, "complete", None),
        ("shop_only_in_new", url("gamma"), None, None, "complete"),
    ]


def test_a_shop_missing_from_a_manifest_or_read_since_is_not_complete(tmp_path: Path) -> None:
    """A shop missing from a manifest, or read with --since, is not complete: no gone items, only
    the new ones."""
    old = write_export(
        tmp_path / "a.jsonl",
        {n: catalogue(n, 0) for n in SHOPS},
        statuses={"alpha": "complete", "beta": "complete"},  # gamma: cut off by a stopped run
    )
    new = write_export(
        tmp_path / "b.jsonl",
        {n: catalogue(n, 1)[:7] for n in SHOPS},  # the new listings only
        statuses=dict.fromkeys(SHOPS, "complete"),
        since=str(old),
    )
    changes = rows(old, new)
    assert [(c.change, c.before, c.after) for c in changes if c.item_id is None] == [
        ("shop_incomplete", "complete", "new listings only"),
        ("shop_incomplete", "complete", "new listings only"),
        ("shop_incomplete", "not in manifest", "new listings only"),
    ]
    assert {c.change for c in changes if c.item_id is not None} == {"new"}
    assert len([c for c in changes if c.change == "new"]) == 7 * len(SHOPS)


def test_summary_counts_and_says_when_manifests_are_missing(tmp_path: Path) -> None:
    """The summary counts changes by kind and shop, lists the largest price moves, and says a
    manifest is missing."""
    old = write_export(tmp_path / "a.jsonl", {n: catalogue(n, 0) for n in SHOPS})
    new = write_export(tmp_path / "b.jsonl", {n: catalogue(n, 1) for n in SHOPS})
    with diff(old, new) as d:
        changes = list(d)
    summary = d.summary
    assert summary.manifests == (False, False)
    assert summary.kinds == {"new": 21, "gone": 9, "price": 15, "sales": 15}
    assert summary.shops[url("beta")] == {"new": 7, "gone": 3, "price": 5, "sales": 5}
    moves = [c for c in changes if c.change == "price"]
    top = sorted(moves, key=lambda c: -abs(c.price_change or 0))[:10]
    assert summary.price_moves == top
    text = "\n".join(summary.lines())
    assert "OLD has no manifest: every shop in it taken as complete" in text
    assert "NEW has no manifest" in text
    assert f"{url('gamma')}: gone 3, new 7, price 5, sales 5" in text


async def test_async_iteration_gives_the_same_rows(tmp_path: Path) -> None:
    """async for over a diff gives the rows a plain for gives."""
    old = write_export(tmp_path / "a.parquet", {n: catalogue(n, 0) for n in SHOPS})
    new = write_export(tmp_path / "b.jsonl", {n: catalogue(n, 1) for n in SHOPS})
    async with diff(old, new) as d:
        got = [change async for change in d]
    assert got == rows(old, new)


def test_the_index_is_temporary_and_read_once(tmp_path: Path) -> None:
    """The diff's index lives in its work directory while open, is gone after, and can be iterated
    once only."""
    work = tmp_path / "work"
    work.mkdir()
    old = write_export(tmp_path / "a.jsonl", {"alpha": catalogue("alpha", 0)})
    with diff(old, old, workdir=work) as d:
        assert list(d) == []
        assert len(list(work.iterdir())) == 1
        with pytest.raises(RuntimeError, match="only once"):
            iter(d)
    assert list(work.iterdir()) == []


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    """A missing file, an unknown format, a broken line, a foreign manifest, CSV or Parquet: each a
    clear error."""
    good = write_export(tmp_path / "a.jsonl", {"alpha": catalogue("alpha", 0)})
    with pytest.raises(DiffInputError, match="no such file"):
        diff(tmp_path / "missing.jsonl", good)
    (tmp_path / "a.xlsx").write_text("x")
    with pytest.raises(DiffInputError, match="cannot tell the format"):
        diff(good, tmp_path / "a.xlsx")
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(good.read_bytes()[:-30] + b"\n{oops\n")
    with pytest.raises(DiffInputError, match=r"broken.jsonl, line 60"):
        list(diff(good, broken))
    manifest_path(broken).write_text("[]")
    with pytest.raises(DiffInputError, match="not a tmapi-async manifest"):
        diff(good, broken)
    not_ours = tmp_path / "other.csv"
    not_ours.write_text("a,b\n1,2\n")
    with pytest.raises(DiffInputError, match="not a tmapi-async CSV export"):
        list(diff(good, not_ours))
    not_parquet = tmp_path / "fake.parquet"
    not_parquet.write_text("hello")
    with pytest.raises(ExportReadError, match="not a readable Parquet"):
        list(read_export(not_parquet))
