"""New listings only: the crawl that stops at the first known item, and the known-items index."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tmapi_async import (
    KnownItems,
    MaxPagesReached,
    ShopCheckpoint,
    ShopItem,
    ShopItemsPage,
    ShopQuery,
    UpstreamError,
)
from tmapi_async._export_reader import ExportReadError
from tmapi_async._new_listings import NewListingsCrawl
from tmapi_async.export import open_sink

SHOP = "https://newest.1688.com/"


def listing(n: int) -> list[ShopItem]:
    """A shop's listing newest first: item n-1 ... item 0."""
    return [ShopItem(item_id=str(1000 + i)) for i in range(n - 1, -1, -1)]


def page_of(items: list[ShopItem], page: int, size: int = 20) -> ShopItemsPage:
    chunk = items[(page - 1) * size : page * size]
    return ShopItemsPage(page=page, page_size=size, total_count=len(items), items=chunk)


def crawl_all(
    crawl: NewListingsCrawl, items: list[ShopItem], failing: int | None = None
) -> tuple[list[int], list[str]]:
    """Drive the crawl to its end; (pages requested, item ids returned)."""
    pages: list[int] = []
    got: list[str] = []
    while not crawl.finished:
        (page,) = crawl.take_pages()
        assert crawl.take_pages() == []  # one page out at a time
        pages.append(page)
        if failing is not None and page >= failing:
            crawl.reject(page, UpstreamError("down", code=500))
        else:
            got += [i.item_id for i in crawl.accept(page, page_of(items, page))]
    return pages, got


def query() -> ShopQuery:
    return ShopQuery.build(SHOP, sort="time_down")


def test_stops_at_the_first_page_with_a_known_item() -> None:
    """Newest first, the crawl stops on the page holding the first known item and keeps only the new
    ones."""
    items = listing(100)
    known = {i.item_id for i in items[7:]}  # the 7 newest are new
    crawl = NewListingsCrawl(query(), known=known.__contains__)
    pages, got = crawl_all(crawl, items)
    assert pages == [1]
    assert got == [i.item_id for i in items[:7]]
    result = crawl.result()
    assert (result.status, result.item_count, result.pages) == ("complete", 7, 1)
    assert [i.item_id for i in result.items] == got


def test_reads_on_while_every_item_is_new_and_stops_at_the_end() -> None:
    """While every item is new the crawl reads on, and stops at the listing's end, not a page past
    it."""
    items = listing(100)
    known = {i.item_id for i in items[45:]}
    pages, got = crawl_all(NewListingsCrawl(query(), known=known.__contains__), items)
    assert pages == [1, 2, 3]
    assert got == [i.item_id for i in items[:45]]
    # Nothing known: the whole listing, and not one page past its end.
    pages, got = crawl_all(NewListingsCrawl(query(), known=lambda _: False), items)
    assert pages == [1, 2, 3, 4, 5]
    assert len(got) == 100
    pages, _ = crawl_all(NewListingsCrawl(query(), known=lambda _: False), [])
    assert pages == [1]


def test_a_failed_page_ends_the_shop_partial_or_failed() -> None:
    """A page that fails ends the shop: partial after some pages, failed on page 1."""
    items = listing(100)
    crawl = NewListingsCrawl(query(), known=lambda _: False)
    pages, got = crawl_all(crawl, items, failing=3)
    assert pages == [1, 2, 3]
    assert len(got) == 40
    result = crawl.result()
    assert result.status == "partial"
    assert isinstance(result.error, UpstreamError)
    first = NewListingsCrawl(query(), known=lambda _: False)
    crawl_all(first, items, failing=1)
    assert first.result().status == "failed"


def test_max_pages_caps_the_shop_as_partial() -> None:
    """max_pages ends a shop of new listings as partial, with MaxPagesReached."""
    crawl = NewListingsCrawl(query(), known=lambda _: False, max_pages=2)
    pages, got = crawl_all(crawl, listing(100))
    assert pages == [1, 2]
    assert len(got) == 40
    result = crawl.result()
    assert result.status == "partial"
    assert isinstance(result.error, MaxPagesReached)


def test_a_resumed_shop_starts_again_at_page_1_without_exporting_twice() -> None:
    """A resumed shop reads again from page 1 but exports none of the items exported before the
    stop."""
    items = listing(100)
    known = {i.item_id for i in items[30:]}
    exported_before = {i.item_id for i in items[:20]}  # page 1 made it out before the stop
    checkpoint = ShopCheckpoint(pages={1: 100}, page_size=20, seen=exported_before)
    crawl = NewListingsCrawl(query(), known=known.__contains__, checkpoint=checkpoint)
    pages, got = crawl_all(crawl, items)
    assert pages == [1, 2]
    assert got == [i.item_id for i in items[20:30]]
    assert crawl.result().item_count == 30


def test_known_items_index_an_export_of_any_format(tmp_path: Path) -> None:
    """KnownItems indexes a JSON Lines, CSV or Parquet export by shop and item id, leaving no files
    behind."""
    for fmt in ("jsonl", "csv", "parquet"):
        path = tmp_path / f"prev.{fmt}"
        sink = open_sink(path, fmt)  # type: ignore[arg-type]
        sink.write(SHOP, listing(30))
        sink.write("https://other.1688.com/", [ShopItem(item_id="77")])
        sink.close()
        known = KnownItems.from_export(path, workdir=tmp_path)
        assert (known.items, known.shops) == (31, 2)
        assert known(SHOP, "1000")
        assert known("https://other.1688.com/", "77")
        assert not known(SHOP, "77")
        assert not known("https://other.1688.com/", "1000")
        known.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == []
    with pytest.raises(ExportReadError, match="no such file"):
        KnownItems.from_export(tmp_path / "missing.jsonl")


def test_known_items_stay_right_past_the_shops_kept_in_memory(tmp_path: Path) -> None:
    """KnownItems answers right for more shops than it keeps in memory, on every pass."""
    path = tmp_path / "many.jsonl"
    sink = open_sink(path, "jsonl")
    for n in range(100):
        sink.write(f"https://s{n}.1688.com/", [ShopItem(item_id=str(n))])
    sink.close()
    known = KnownItems.from_export(path)
    for _ in range(2):
        for n in range(100):
            assert known(f"https://s{n}.1688.com/", str(n))
            assert not known(f"https://s{n}.1688.com/", str(n + 1))
    known.close()


async def test_the_library_harvests_new_listings_with_known(tmp_path: Path) -> None:
    """harvest(known=) and fetch_shop(known=) export only the new listings, about a page per shop;
    it needs sort time_down."""
    import tmapi_async as tm
    from tmapi_async.testing import SimulatedTmapi, shop_catalogue

    sizes = {"one": 70, "two": 33}
    urls = [f"https://{name}.1688.com/" for name in sizes]
    previous = tmp_path / "monday.jsonl"
    sink = open_sink(previous, "jsonl")
    for name, size in sizes.items():
        day0 = [ShopItem(item_id=i.item_id) for i in shop_catalogue(name, size)]
        sink.write(f"https://{name}.1688.com/", day0)
    sink.close()
    known = tm.KnownItems.from_export(previous)
    async with SimulatedTmapi(shop_sizes=sizes, day=1) as sim:
        async with tm.Client("t", base_url=sim.url, rate=1000.0) as client:
            with pytest.raises(tm.InvalidParameterError, match="time_down"):
                client.harvest(urls, known=known)
            results = {
                r.shop_url: r async for r in client.harvest(urls, sort="time_down", known=known)
            }
            one = await client.fetch_shop(
                urls[0],
                sort="time_down",
                known=lambda item_id: known(urls[0], item_id),
            )
        requests = Counter(r.shop for r in sim.log.records)
    known.close()
    for name, size in sizes.items():
        before = {i.item_id for i in shop_catalogue(name, size)}
        new = [i.item_id for i in shop_catalogue(name, size, sort="time_down", day=1)]
        new = [k for k in new if k not in before]
        got = results[f"https://{name}.1688.com/"]
        assert [i.item_id for i in got.items] == new
        assert (got.status, got.pages) == ("complete", 1)
    assert [i.item_id for i in one.items] == [i.item_id for i in results[urls[0]].items]
    assert requests == {"one": 2, "two": 1}
