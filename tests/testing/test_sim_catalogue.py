"""Shops: deterministic catalogues, every sort a permutation, paging exact, cat subsets."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from tmapi_async.testing import (
    SORTS,
    Item,
    SimulatedTmapi,
    SimulatorConfig,
    shop_catalogue,
    shop_categories,
    shop_name_from_url,
    sizes_between,
)
from tmapi_async.testing._catalogue import ShopCatalogue

Fetch = Callable[..., Awaitable[Any]]  # the ``fetch`` fixture of conftest.py


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://xldjjg.1688.com/", "xldjjg"),
        ("https://xldjjg.1688.com", "xldjjg"),
        ("http://xldjjg.1688.com/page/offerlist.htm?spm=a", "xldjjg"),
        ("https://Shop-7.1688.com", "shop-7"),
        ("ftp://xldjjg.1688.com/", None),
        ("https://1688.com/", None),
        ("https://a.b.1688.com/", None),
        ("https://xldjjg.taobao.com/", None),
        ("xldjjg.1688.com", None),
        ("", None),
        ("https://[::1/", None),
    ],
)
def test_shop_name_from_url(url: str, name: str | None) -> None:
    """The shop's name is read from every form of 1688 shop URL; anything else has none."""
    assert shop_name_from_url(url) == name


def test_catalogue_is_deterministic_and_prefix_stable() -> None:
    """A shop's catalogue is the same every time, a smaller size is its prefix, and ids are unique
    across shops."""
    a = shop_catalogue("xldjjg", 120)
    assert a == shop_catalogue("xldjjg", 120)
    assert shop_catalogue("xldjjg", 50) == a[:50]
    ids = [i.item_id for i in a]
    assert len(set(ids)) == 120
    assert all(re.fullmatch(r"[1-9]\d{11}", i) for i in ids)
    other = {i.item_id for i in shop_catalogue("other", 120)}
    assert not other & set(ids)
    assert shop_catalogue("empty", 0) == []


def test_items_have_the_endpoint_quirks() -> None:
    """Items carry the endpoint's quirks: four-slash or relative images, price ranges and blanks,
    null quantities."""
    items = shop_catalogue("quirky", 2000)
    imgs = [i.img for i in items]
    four = sum(i.startswith("https:////cbu01.alicdn.com/") for i in imgs)
    relative = sum(i.startswith("//cbu01.alicdn.com/") for i in imgs)
    assert four + relative == len(items)
    assert four > 0.8 * len(items)
    assert relative > 0
    prices = [i.price for i in items]
    assert all(re.fullmatch(r"|\d+\.\d\d|\d+\.\d\d-\d+\.\d\d", p) for p in prices)
    assert "" in prices
    assert any("-" in p for p in prices)
    assert sum(re.fullmatch(r"\d+\.\d\d", p) is not None for p in prices) > 0.7 * len(items)
    assert sum(i.quantity is None for i in items) > 0.8 * len(items)
    assert sum(i.category_path == [] and i.category_name == "" for i in items) > len(items) / 2
    assert any(i.category_path for i in items)
    assert all(i.sale_info.sale_quantity >= 0 and i.sale_info.sale_amount >= 0 for i in items)
    assert all(re.search(r"[\u4e00-\u9fff]", i.title) for i in items)


def test_sort_orders_are_permutations_with_their_order() -> None:
    """Every sort lists the same items, in the order it names (sales, price up or down, time)."""
    base = shop_catalogue("sorty", 300)
    ids = sorted(i.item_id for i in base)
    for sort in SORTS:
        assert sorted(i.item_id for i in shop_catalogue("sorty", 300, sort=sort)) == ids
    sales = [i.sale_info.sale_quantity for i in shop_catalogue("sorty", 300, sort="sales")]
    assert sales == sorted(sales, reverse=True)

    def low(p: str) -> float:
        return float(p.split("-")[0])

    up = [i.price for i in shop_catalogue("sorty", 300, sort="price_up")]
    down = [i.price for i in shop_catalogue("sorty", 300, sort="price_down")]
    priced_up = [low(p) for p in up if p]
    priced_down = [low(p) for p in down if p]
    assert priced_up == sorted(priced_up)
    assert priced_down == sorted(priced_down, reverse=True)
    assert up[-1] == ""
    assert down[-1] == ""
    t_up = [i.item_id for i in shop_catalogue("sorty", 300, sort="time_up")]
    t_down = [i.item_id for i in shop_catalogue("sorty", 300, sort="time_down")]
    assert t_up == t_down[::-1]


async def _all_pages(
    fetch: Fetch, sim: SimulatedTmapi, shop: str, page_size: int, **params: object
) -> tuple[list[str], int, int]:
    ids: list[str] = []
    page, total, used = 1, -1, -1
    while True:
        r = await fetch(sim, shop, page=page, page_size=page_size, **params)
        assert r.status == 200
        data = r.json["data"]
        total, used = data["total_count"], data["page_size"]
        if not data["items"]:
            break
        assert len(data["items"]) <= used
        ids.extend(i["item_id"] for i in data["items"])
        page += 1
    assert page == -(-total // used) + 1  # stopped exactly on the first empty page
    return ids, total, used


@pytest.mark.parametrize("sort", SORTS)
async def test_every_item_once_for_each_sort_and_page_size(fetch: Fetch, sort: str) -> None:
    """Paging through a shop gives every item once, in order, for each sort and page size (capped at
    the maximum)."""
    async with SimulatedTmapi(shop_sizes={"paged": 103}, page_size_max=20) as sim:
        expected = [i.item_id for i in shop_catalogue("paged", 103, sort=sort)]
        for page_size, used in ((1, 1), (7, 7), (20, 20), (50, 20)):
            ids, total, got_size = await _all_pages(fetch, sim, "paged", page_size, sort=sort)
            assert got_size == used
            assert total == 103
            assert ids == expected  # in order, so every item exactly once


async def test_envelope_matches_the_endpoint_page(fetch: Fetch) -> None:
    """The answer has the endpoint's envelope and item fields in its order and types, as compact
    JSON."""
    async with SimulatedTmapi(shop_sizes={"xldjjg": 162}) as sim:
        r = await fetch(sim, "https://xldjjg.1688.com/", page=1, page_size=3, sort="default")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json
    assert list(body) == ["code", "msg", "data"]
    assert body["code"] == 200
    assert body["msg"] == "success"
    data = body["data"]
    assert list(data) == ["page", "page_size", "total_count", "cat_id", "sort", "items"]
    assert (data["page"], data["page_size"], data["total_count"]) == (1, 3, 162)
    assert (data["cat_id"], data["sort"]) == ("", "default")
    item = data["items"][0]
    assert list(item) == [
        "item_id",
        "title",
        "img",
        "category_path",
        "category_name",
        "price",
        "quantity",
        "sale_info",
    ]
    assert isinstance(item["item_id"], str)
    assert isinstance(item["price"], str)
    assert list(item["sale_info"]) == ["sale_quantity", "sale_amount"]
    expected = shop_catalogue("xldjjg", 162)[:3]
    assert data["items"] == msgspec.to_builtins(expected)
    assert msgspec.json.encode(body) == r.body  # compact JSON, as msgspec itself writes it


def test_hand_written_item_json_is_what_msgspec_writes() -> None:
    """The items' hand-written JSON bytes are byte for byte what msgspec writes for them."""
    # Items are written to JSON bytes directly (for speed): they must be valid, typed and
    # byte-identical to msgspec's own encoding, for every theme and quirk.
    for n in range(60):
        for raw in ShopCatalogue(f"rt{n}", 80).listing(drift=5):
            item = msgspec.json.decode(raw, type=Item)
            assert msgspec.json.encode(item) == raw


async def test_defaults_and_past_the_end(fetch: Fetch) -> None:
    """Without parameters: page 1 of 20, default sort; past the last page, no items and the same
    total."""
    async with SimulatedTmapi(shop_sizes={"small": 45}) as sim:
        r = await fetch(sim, "small")
        data = r.json["data"]
        assert (data["page"], data["page_size"], data["sort"], data["total_count"]) == (
            1,
            20,
            "default",
            45,
        )
        assert len(data["items"]) == 20
        last = (await fetch(sim, "small", page=3)).json["data"]
        assert len(last["items"]) == 5
        for page in (4, 99, 10**12):
            past = (await fetch(sim, "small", page=page)).json["data"]
            assert past["items"] == []
            assert past["total_count"] == 45
            assert past["page"] == page


async def test_shop_sizes_size_fn_and_default(fetch: Fetch) -> None:
    """A shop's size comes from shop_sizes, then size_fn, then the default."""
    fn = sizes_between(10, 30)
    config = SimulatorConfig(shop_sizes={"named": 7}, size_fn=fn)
    async with SimulatedTmapi(config) as sim:
        assert (await fetch(sim, "named")).json["data"]["total_count"] == 7
        assert (await fetch(sim, "whatever")).json["data"]["total_count"] == fn("whatever")
        assert 10 <= fn("whatever") <= 30
        sim.configure(size_fn=None, default_shop_size=0)
        empty = (await fetch(sim, "unknown")).json["data"]
        assert empty["total_count"] == 0
        assert empty["items"] == []
        assert sim.shop_size("https://named.1688.com/x") == 7


@pytest.mark.parametrize("sort", ["default", "price_down"])
async def test_category_subsets(fetch: Fetch, sort: str) -> None:
    """A leaf category or a group (cat_type 1) selects its items in the sort's order; leaves
    partition the shop."""
    size = 150
    async with SimulatedTmapi(shop_sizes={"cats": size}) as sim:
        cats = shop_categories("cats")
        groups = [c for c in cats if not c.parent_id]
        leaves = [c for c in cats if c.parent_id]
        full = shop_catalogue("cats", size, sort=sort)
        union: list[str] = []
        for leaf in leaves:
            want = [i.item_id for i in shop_catalogue("cats", size, sort=sort, cat=leaf.cat_id)]
            for cat_type in ("0", None):
                ids, total, _ = await _all_pages(
                    fetch, sim, "cats", 20, sort=sort, cat=leaf.cat_id, cat_type=cat_type
                )
                assert ids == want
                assert total == len(want)
            r = await fetch(sim, "cats", sort=sort, cat=leaf.cat_id)
            assert r.json["data"]["cat_id"] == leaf.cat_id
            union.extend(want)
        # Leaves partition the shop, and each keeps the sort's relative order.
        assert sorted(union) == sorted(i.item_id for i in full)
        position = {i.item_id: n for n, i in enumerate(full)}
        for group in groups:
            ids, total, _ = await _all_pages(
                fetch, sim, "cats", 20, sort=sort, cat=group.cat_id, cat_type="1"
            )
            members = [
                i.item_id
                for leaf in leaves
                if leaf.parent_id == group.cat_id
                for i in shop_catalogue("cats", size, cat=leaf.cat_id)
            ]
            assert sorted(ids) == sorted(members)
            assert total == len(members)
            assert ids == sorted(ids, key=position.__getitem__)
            # A group id is not a leaf: with cat_type "0" it selects nothing.
            r = await fetch(sim, "cats", cat=group.cat_id, cat_type="0")
            assert r.json["data"]["total_count"] == 0
        r = await fetch(sim, "cats", cat="123", cat_type="1")
        assert r.json["data"]["total_count"] == 0
        assert r.json["data"]["items"] == []


async def test_prebuild_builds_ahead_and_serves_the_same(fetch: Fetch) -> None:
    """prebuild builds catalogues ahead, and a shop evicted from the cache serves the same items
    again."""
    async with SimulatedTmapi(shop_sizes={"a": 30, "b": 12}, catalogue_cache_size=2) as sim:
        assert sim.prebuild(["a", "https://b.1688.com/"]) == 42
        r = await fetch(sim, "b", page_size=20)
        assert [i["item_id"] for i in r.json["data"]["items"]] == [
            i.item_id for i in shop_catalogue("b", 12)
        ]
        await fetch(sim, "c")  # evicts the least recently used shop: "a"
        r = await fetch(sim, "a", page=2, page_size=20)
        assert [i["item_id"] for i in r.json["data"]["items"]] == [
            i.item_id for i in shop_catalogue("a", 30)[20:]
        ]
