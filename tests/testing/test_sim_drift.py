"""Listing drift: new items at the front of every sort order, total_count grows, pages shift."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tmapi_async.testing import SORTS, SimulatedTmapi, shop_catalogue, shop_categories

Fetch = Callable[..., Awaitable[Any]]  # the ``fetch`` fixture of conftest.py


def _ids(reply: Any) -> list[str]:
    return [i["item_id"] for i in reply.json["data"]["items"]]


async def test_every_nth_request_inserts_k_items_up_to_max(fetch: Fetch) -> None:
    """Every nth request of a shop inserts k new items in front, up to the maximum; a reset undoes
    it."""
    config = {"shop_sizes": {"d": 50}, "drift_every": 2, "drift_items": 3, "drift_max": 7}
    async with SimulatedTmapi(**config) as sim:
        base = [i.item_id for i in shop_catalogue("d", 50)]
        totals, drifts = [], []
        for _ in range(9):
            r = await fetch(sim, "d", page=2, page_size=10)
            totals.append(r.json["data"]["total_count"])
            drifts.append(sim.drift("d"))
            # Page 2 shifts by the number of items inserted in front.
            d = drifts[-1]
            assert _ids(r) == base[10 - d : 20 - d]
        assert totals == [50, 53, 53, 56, 56, 57, 57, 57, 57]
        assert [r.drift for r in sim.log] == [0, 3, 3, 6, 6, 7, 7, 7, 7]
        # Another shop drifts on its own count.
        assert (await fetch(sim, "other")).json["data"]["total_count"] == 100
        sim.reset()
        assert sim.drift("d") == 0
        assert (await fetch(sim, "d")).json["data"]["total_count"] == 50


@pytest.mark.parametrize("sort", SORTS)
async def test_new_items_come_first_newest_first_in_every_sort(fetch: Fetch, sort: str) -> None:
    """Drifted items lead every sort, newest first, and expected_items is what was served."""
    async with SimulatedTmapi(shop_sizes={"d": 30}, drift_every=1, drift_items=2) as sim:
        before = [i.item_id for i in shop_catalogue("d", 30, sort=sort)]
        first = await fetch(sim, "d", sort=sort, page_size=5)  # request 1: 2 new items
        second = await fetch(sim, "d", sort=sort, page_size=5)  # request 2: 2 more
        new = [i.item_id for i in shop_catalogue("d", 30, sort=sort, drift=4)[:4]]
        assert not set(new) & set(before)
        assert _ids(first) == new[2:4] + before[:3]
        assert _ids(second) == new + before[:1]
        assert second.json["data"]["total_count"] == 34
        # What a test expects is what was served.
        served = [i.item_id for i in sim.expected_items("d", sort=sort)]
        assert served == new + before


async def test_drift_respects_categories(fetch: Fetch) -> None:
    """Drift inserts items into their categories: a category's page shows its own new items
    first."""
    async with SimulatedTmapi(shop_sizes={"d": 80}, drift_every=1, drift_items=10) as sim:
        leaf = next(c for c in shop_categories("d") if c.parent_id)
        r = await fetch(sim, "d", cat=leaf.cat_id, page_size=20)
        want = shop_catalogue("d", 80, cat=leaf.cat_id, drift=10)
        assert _ids(r) == [i.item_id for i in want][:20]
        assert r.json["data"]["total_count"] == len(want)
        fresh = {i.item_id for i in shop_catalogue("d", 80, drift=10)[:10]}
        in_cat = [i for i in want if i.item_id in fresh]
        assert want[: len(in_cat)] == in_cat  # the new items of that category lead


async def test_a_reader_sees_overlap_when_the_shop_drifts(fetch: Fetch) -> None:
    """A naive reader paging through a drifting shop sees some items twice."""
    async with SimulatedTmapi(shop_sizes={"d": 60}, drift_every=2, drift_items=1) as sim:
        seen: list[str] = []
        page = 1
        while True:
            r = await fetch(sim, "d", page=page)
            if not r.json["data"]["items"]:
                break
            seen.extend(_ids(r))
            page += 1
        # Page boundaries shifted under the reader: some items came twice.
        assert len(seen) > len(set(seen))
        assert set(seen) <= {i.item_id for i in sim.expected_items("d")}
