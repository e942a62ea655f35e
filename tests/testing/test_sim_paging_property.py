"""Property: for any shop size, page size, cap, sort, category and drift, the pages of a
listing concatenate to exactly the expected listing, and pages past the end are empty."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from tmapi_async.testing import SORTS, SimulatorConfig, shop_catalogue, shop_categories
from tmapi_async.testing._app import Simulator


@settings(max_examples=50, deadline=None, database=None)
@given(
    name=st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True),
    size=st.integers(0, 120),
    page_size=st.integers(1, 40),
    cap=st.integers(1, 30),
    sort=st.sampled_from(SORTS),
    cat_pick=st.integers(-1, 20),
    cat_type=st.sampled_from([None, "0", "1"]),
    drift=st.integers(0, 6),
)
def test_pages_concatenate_to_the_listing(
    name: str,
    size: int,
    page_size: int,
    cap: int,
    sort: str,
    cat_pick: int,
    cat_type: str | None,
    drift: int,
) -> None:
    """For any shop, size, page size, sort, category and drift, the pages concatenate to the
    listing."""
    sim = Simulator(SimulatorConfig(page_size_max=cap))
    cats = shop_categories(name)
    cat = None if cat_pick < 0 else cats[cat_pick % len(cats)].cat_id
    expected = [
        i.item_id
        for i in shop_catalogue(name, size, sort=sort, cat=cat, cat_type=cat_type, drift=drift)
    ]
    used = min(page_size, cap)
    ids: list[str] = []
    page = 1
    while True:
        body = sim._page_body(name, size, drift, sort, cat, cat_type if cat else None, page, used)
        data = msgspec.json.decode(body)["data"]
        assert data["total_count"] == len(expected)
        assert data["page_size"] == used
        if not data["items"]:
            break
        ids.extend(i["item_id"] for i in data["items"])
        page += 1
    assert ids == expected
    assert page == -(-len(expected) // used) + 1
