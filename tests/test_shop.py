"""ShopCrawl, the pure per-shop plan: page counts, caps, growth, duplicates, drift, resume."""

from __future__ import annotations

import math
import random
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tmapi_async import (
    MaxPagesReached,
    ShopCheckpoint,
    ShopItem,
    ShopItemsPage,
    ShopQuery,
    UpstreamError,
)
from tmapi_async._models import MAX_TOTAL_COUNT
from tmapi_async._shop import DEFAULT_MAX_PAGES, DEFAULT_WINDOW, ShopCrawl, _cover

QUERY = ShopQuery.build("https://demo.1688.com/")


class Listing:
    """A shop listing as a server holds it: products newest first, front insertions."""

    def __init__(self, size: int, cap: int = 20) -> None:
        self.ids = [f"base-{i}" for i in range(size)]
        self.cap = cap
        self.added = 0

    def insert_front(self, count: int) -> None:
        self.ids[:0] = [f"new-{self.added + i}" for i in range(count)]
        self.added += count

    def answer(self, page: int, page_size: int) -> ShopItemsPage:
        size = min(page_size, self.cap)
        chunk = self.ids[(page - 1) * size : page * size]
        return ShopItemsPage(
            page=page,
            page_size=size,
            total_count=len(self.ids),
            items=[ShopItem(item_id=i) for i in chunk],
        )


def crawl_all(
    crawl: ShopCrawl, listing: Listing, rng: random.Random | None = None, drift=None
) -> list[str]:
    """Answer the crawl's requests (in a shuffled order if rng) until it is finished."""
    harvested: list[str] = []
    pending: list[int] = []
    answered = 0
    while not crawl.finished:
        pending += crawl.take_pages()
        if rng is not None:
            rng.shuffle(pending)
        page = pending.pop(0)
        if drift is not None:
            drift(answered, listing)
        answered += 1
        fresh = crawl.accept(page, listing.answer(page, crawl.query.page_size))
        harvested += [item.item_id for item in fresh]
    return harvested


@pytest.mark.parametrize(
    ("total", "pages"), [(0, 1), (1, 1), (19, 1), (20, 1), (21, 2), (40, 2), (41, 3), (1000, 50)]
)
def test_plan_follows_total_count(total, pages):
    """total_count 0, 1, 19, 20, 21, 1000 need 1, 1, 1, 1, 2, 50 pages of 20."""
    listing = Listing(total)
    crawl = ShopCrawl(QUERY, window=100)
    assert crawl.take_pages() == [1]
    crawl.accept(1, listing.answer(1, 20))
    assert crawl.take_pages() == list(range(2, pages + 1))
    assert crawl.pages_planned == pages


@pytest.mark.parametrize("total", [0, 1, 19, 20, 21, 1000])
def test_every_item_once_in_page_order(total):
    """Answered in order, the crawl yields the listing exactly, with one request per page."""
    listing = Listing(total)
    crawl = ShopCrawl(QUERY)
    assert crawl_all(crawl, listing) == listing.ids
    result = crawl.result()
    assert result.status == "complete"
    assert result.pages == max(1, math.ceil(total / 20))
    assert [i.item_id for i in result.items] == listing.ids


def test_plan_uses_the_page_size_the_server_answered_with():
    """Asked for 50 but served 20, the plan has ceil(total/20) pages, so nothing is missed."""
    listing = Listing(95, cap=20)
    crawl = ShopCrawl(ShopQuery.build("https://demo.1688.com/", page_size=50))
    crawl.take_pages()
    crawl.accept(1, listing.answer(1, 50))
    assert crawl.take_pages() == [2, 3, 4, 5]
    crawl2 = ShopCrawl(ShopQuery.build("https://demo.1688.com/", page_size=50))
    assert sorted(crawl_all(crawl2, Listing(95, cap=20))) == sorted(listing.ids)


def test_growing_total_count_extends_the_plan():
    """A later page reporting more items adds the pages they need."""
    crawl = ShopCrawl(QUERY)
    crawl.take_pages()
    first = [ShopItem(item_id=str(i)) for i in range(20)]
    crawl.accept(1, ShopItemsPage(page=1, page_size=20, total_count=40, items=first))
    assert crawl.take_pages() == [2]
    second = [ShopItem(item_id=str(i)) for i in range(20, 40)]
    crawl.accept(2, ShopItemsPage(page=2, page_size=20, total_count=65, items=second))
    assert crawl.take_pages() == [3, 4]
    assert crawl.pages_planned == 4


def test_duplicates_across_and_within_pages_are_dropped():
    """An item_id seen on an earlier page, or twice on one page, comes out once."""
    crawl = ShopCrawl(QUERY)
    crawl.take_pages()
    page1 = [ShopItem(item_id=str(i)) for i in range(20)]
    crawl.accept(1, ShopItemsPage(page=1, page_size=20, total_count=30, items=page1))
    crawl.take_pages()
    page2 = [ShopItem(item_id=i) for i in ["18", "19", "20", "20", "21"]]
    fresh = crawl.accept(2, ShopItemsPage(page=2, page_size=20, total_count=30, items=page2))
    assert [i.item_id for i in fresh] == ["20", "21"]
    assert crawl.result().item_count == 22


def test_empty_page_ends_the_shop_without_error():
    """A page that comes back empty inside the plan stops the shop; nothing fails."""
    crawl = ShopCrawl(QUERY)
    crawl.take_pages()
    page1 = [ShopItem(item_id=str(i)) for i in range(20)]
    crawl.accept(1, ShopItemsPage(page=1, page_size=20, total_count=100, items=page1))
    assert crawl.take_pages() == [2, 3, 4, 5]
    crawl.accept(2, ShopItemsPage(page=2, page_size=20, total_count=100, items=[]))
    for page in (3, 4, 5):
        crawl.accept(page, ShopItemsPage(page=page, page_size=20, total_count=100, items=[]))
    assert crawl.finished
    assert crawl.take_pages() == []
    assert crawl.result().status == "complete"


def test_failed_page_makes_the_shop_partial_not_restarted():
    """A page failing for good leaves the others and marks the shop partial."""
    listing = Listing(60)
    crawl = ShopCrawl(QUERY)
    crawl.take_pages()
    crawl.accept(1, listing.answer(1, 20))
    assert crawl.take_pages() == [2, 3]
    error = UpstreamError("Failed to retrieve data", code=417)
    crawl.reject(2, error)
    crawl.accept(3, listing.answer(3, 20))
    assert crawl.finished
    assert crawl.take_pages() == []  # page 1 is not asked for again
    result = crawl.result()
    assert (result.status, result.error, result.item_count) == ("partial", error, 40)


def test_page_one_failing_fails_the_shop():
    """Without page 1 there is no plan: the shop is failed."""
    crawl = ShopCrawl(QUERY)
    crawl.take_pages()
    crawl.reject(1, UpstreamError("x", code=500))
    assert crawl.finished
    assert crawl.result().status == "failed"


def test_drift_out_of_order_fills_the_hole():
    """Page 3 read before items were inserted and page 2 after: the hole is fetched."""
    listing = Listing(60)
    crawl = ShopCrawl(QUERY)
    crawl.take_pages()
    crawl.accept(1, listing.answer(1, 20))
    assert crawl.take_pages() == [2, 3]
    crawl.accept(3, listing.answer(3, 20))  # old view: base-40..59
    listing.insert_front(5)
    crawl.accept(2, listing.answer(2, 20))  # new view: base-15..34 (base-35..39 unseen)
    extra = []
    while not crawl.finished:  # the grown plan (page 4), then the pages holding the holes
        for page in crawl.take_pages():
            extra.append(page)
            crawl.accept(page, listing.answer(page, 20))
    assert sorted(extra) == [1, 3, 4]
    result = crawl.result()
    assert {i.item_id for i in result.items} == set(listing.ids)
    assert result.item_count == len(listing.ids) == 65


def test_no_drift_costs_no_extra_request():
    """Shuffled answers without drift: exactly the planned pages are fetched."""
    listing = Listing(333)
    crawl = ShopCrawl(QUERY)
    crawl_all(crawl, listing, random.Random(3))
    assert crawl.result().pages == 17
    assert len(crawl.done) == 17


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(0, 400),
    asked=st.integers(1, 60),
    cap=st.integers(1, 40),
    seed=st.integers(0, 2**32),
    inserts=st.lists(st.tuples(st.integers(0, 30), st.integers(1, 25)), max_size=3),
)
def test_every_item_exactly_once_for_any_listing(total, asked, cap, seed, inserts):
    """For any size, page size, cap, answer order and front insertions while the first
    round of pages is read, every product of the final listing comes out exactly once."""
    listing = Listing(total, cap=cap)
    crawl = ShopCrawl(ShopQuery.build("https://demo.1688.com/", page_size=asked))
    schedule = dict(inserts)

    def drift(answered: int, listing: Listing) -> None:
        if answered in schedule and answered <= math.ceil(total / min(asked, cap)):
            listing.insert_front(schedule.pop(answered))

    harvested = crawl_all(crawl, listing, random.Random(seed), drift)
    assert len(harvested) == len(set(harvested))
    assert set(harvested) == set(listing.ids)
    assert crawl.result().status == "complete"


def test_resume_skips_done_pages_and_known_items():
    """From a checkpoint, only the missing pages are planned and known items are not new."""
    listing = Listing(100)
    checkpoint = ShopCheckpoint(
        pages={1: 100, 2: 100, 4: 100},
        page_size=20,
        seen={f"base-{i}" for i in [*range(40), *range(60, 80)]},
    )
    crawl = ShopCrawl(QUERY, checkpoint=checkpoint)
    assert crawl.take_pages() == [3, 5]
    fresh = crawl.accept(3, listing.answer(3, 20))
    fresh += crawl.accept(5, listing.answer(5, 20))
    assert crawl.finished
    assert sorted(i.item_id for i in fresh) == sorted(f"base-{i}" for i in range(40, 60)) + sorted(
        f"base-{i}" for i in range(80, 100)
    )
    assert crawl.result().item_count == 100


# -- hostile answers: lazy, bounded plans -------------------------------------------------


def page_of(page: int, ids: list[str], *, total: int, size: int = 20) -> ShopItemsPage:
    """An answer carrying ``ids``, claiming ``total`` products and page size ``size``."""
    return ShopItemsPage(
        page=page, page_size=size, total_count=total, items=[ShopItem(item_id=i) for i in ids]
    )


def run(crawl: ShopCrawl, answer) -> tuple[list[str], int]:
    """Answer every page the crawl asks for (in order) with ``answer(page)``; return the
    items harvested and the requests it took."""
    harvested: list[str] = []
    requests = 0
    while not crawl.finished:
        pages = crawl.take_pages()
        assert pages, "an unfinished crawl with nothing to ask and nothing out"
        for page in pages:
            requests += 1
            harvested += [item.item_id for item in crawl.accept(page, answer(page))]
    return harvested, requests


def test_never_more_than_window_pages_out():
    """However many pages are planned, at most ``window`` are handed out at once."""
    listing = Listing(1000)
    crawl = ShopCrawl(QUERY, window=4)
    assert crawl.take_pages() == [1]
    crawl.accept(1, listing.answer(1, 20))
    assert crawl.take_pages() == [2, 3, 4, 5]
    assert crawl.take_pages() == []
    crawl.accept(3, listing.answer(3, 20))
    assert crawl.take_pages() == [6]
    assert crawl.pages_planned == 50


@pytest.mark.parametrize("total", [MAX_TOTAL_COUNT, 10**9, 10**15, 2**63])
def test_an_absurd_total_allocates_nothing_per_planned_page(total):
    """A total of 10^8..2^63 (an answer built outside the decoder too) plans a counter:
    page 1 costs kilobytes, not a set of every page number."""
    crawl = ShopCrawl(QUERY)
    crawl.take_pages()
    tracemalloc.start()
    try:
        crawl.accept(1, page_of(1, [str(i) for i in range(20)], total=total))
        pages = crawl.take_pages()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100_000
    assert pages == list(range(2, 2 + DEFAULT_WINDOW))
    assert crawl.pages_planned == DEFAULT_MAX_PAGES


@pytest.mark.parametrize("real", [0, 1, 19, 20, 21, 50, 60, 333])
@pytest.mark.parametrize("window", [1, 3, 8])
def test_a_lying_total_costs_the_real_pages_plus_one_window(real, window):
    """The listing ends at its first short or empty page, whatever total_count claims:
    every real product once, the shop complete, at most one window of pages past the end."""
    listing = Listing(real)
    crawl = ShopCrawl(QUERY, window=window)

    def answer(page: int) -> ShopItemsPage:
        honest = listing.answer(page, 20)
        return page_of(page, [i.item_id for i in honest.items], total=10**6)

    harvested, requests = run(crawl, answer)
    assert harvested == listing.ids
    real_pages = max(1, math.ceil(real / 20))
    assert requests <= real_pages + window
    assert crawl.result().status == "complete"


def test_plan_from_the_items_when_page_size_is_too_small():
    """page_size 1 on pages of 20: a 3-page shop costs 3 requests, not 60 or 120."""
    listing = Listing(60)

    def answer(page: int) -> ShopItemsPage:
        honest = listing.answer(page, 20)
        return page_of(page, [i.item_id for i in honest.items], total=60, size=1)

    crawl = ShopCrawl(QUERY, window=100)
    harvested, requests = run(crawl, answer)
    assert (harvested, requests) == (listing.ids, 3)
    assert crawl.result().status == "complete"


def test_plan_from_the_items_when_page_size_is_too_large():
    """page_size 100 on pages of 20 (total 60): the plan follows the 20 items, so the
    last 40 products are not lost."""
    listing = Listing(60)

    def answer(page: int) -> ShopItemsPage:
        honest = listing.answer(page, 20)
        return page_of(page, [i.item_id for i in honest.items], total=60, size=100)

    crawl = ShopCrawl(QUERY, window=100)
    harvested, requests = run(crawl, answer)
    assert (harvested, requests) == (listing.ids, 3)


@pytest.mark.parametrize("size", [0, -5])
def test_a_zero_or_negative_page_size_never_divides(size):
    """An answer built in Python (the decoder refuses these) plans from its items."""
    listing = Listing(45)

    def answer(page: int) -> ShopItemsPage:
        honest = listing.answer(page, 20)
        return page_of(page, [i.item_id for i in honest.items], total=45, size=size)

    harvested, requests = run(ShopCrawl(QUERY, window=100), answer)
    assert (harvested, requests) == (listing.ids, 3)


def test_an_empty_first_page_with_a_zero_page_size_ends_the_shop():
    """No items, page_size 0, a total: nothing divides by zero, the shop is complete."""
    harvested, requests = run(ShopCrawl(QUERY), lambda page: page_of(page, [], total=99, size=0))
    assert (harvested, requests) == ([], 1)


def test_max_pages_ends_a_long_shop_partial_saying_so():
    """A shop of 50 pages read with max_pages=10: 10 requests, partial, MaxPagesReached."""
    listing = Listing(1000)
    crawl = ShopCrawl(QUERY, max_pages=10, window=4)
    harvested, requests = run(crawl, lambda page: listing.answer(page, 20))
    assert requests == 10
    assert harvested == listing.ids[:200]
    result = crawl.result()
    assert result.status == "partial"
    assert isinstance(result.error, MaxPagesReached)
    assert "max_pages=10" in str(result.error)
    assert "50 pages" in str(result.error)


def test_a_listing_ending_before_max_pages_is_complete_despite_its_total():
    """A total promising 500 pages, a listing ending at page 3 and max_pages=10: the
    shop ended on its own, so it is complete."""
    listing = Listing(50)

    def answer(page: int) -> ShopItemsPage:
        honest = listing.answer(page, 20)
        return page_of(page, [i.item_id for i in honest.items], total=10_000)

    crawl = ShopCrawl(QUERY, max_pages=10, window=2)
    harvested, _ = run(crawl, answer)
    assert harvested == listing.ids
    assert crawl.result().status == "complete"


def test_full_pages_forever_cost_at_most_max_pages():
    """A server answering full pages of new items forever is stopped by max_pages."""
    crawl = ShopCrawl(QUERY, max_pages=25, window=8)
    _, requests = run(
        crawl, lambda page: page_of(page, [f"{page}-{i}" for i in range(20)], total=10**8)
    )
    assert requests == 25
    assert crawl.result().status == "partial"


def test_duplicates_within_one_page_only_are_exported_once():
    """A page repeating an item_id of its own (and none of earlier pages) gives it once,
    in order, and the shop counts it once."""
    crawl = ShopCrawl(QUERY)
    crawl.take_pages()
    first = page_of(1, ["a", "b", "a", "c", "b"], total=5)
    fresh = crawl.accept(1, first)
    assert [i.item_id for i in fresh] == ["a", "b", "c"]
    result = crawl.result()
    assert [i.item_id for i in result.items] == ["a", "b", "c"]
    assert result.item_count == 3


def test_resume_is_bounded_by_window_and_skips_done_pages():
    """From a checkpoint, the counter skips done pages and respects the window."""
    listing = Listing(200)
    checkpoint = ShopCheckpoint(
        pages={1: 200, 2: 200, 3: 200, 5: 200}, page_size=20, seen=set(listing.ids[:100])
    )
    crawl = ShopCrawl(QUERY, checkpoint=checkpoint, window=2)
    assert crawl.take_pages() == [4, 6]
    assert crawl.take_pages() == []
    crawl.accept(4, listing.answer(4, 20))
    crawl.accept(6, listing.answer(6, 20))
    _, requests = run(crawl, lambda page: listing.answer(page, 20))
    assert requests == 4  # 7..10
    assert crawl.result().status == "complete"
    assert crawl.result().item_count == 200


def test_resume_with_every_page_done_is_finished():
    """A checkpoint holding every page leaves nothing to ask."""
    checkpoint = ShopCheckpoint(pages={1: 40, 2: 40}, page_size=20, seen={"x"})
    crawl = ShopCrawl(QUERY, checkpoint=checkpoint)
    assert crawl.take_pages() == []
    assert crawl.finished


@settings(max_examples=200, deadline=None)
@given(
    real=st.integers(0, 200),
    claimed=st.one_of(st.integers(0, 400), st.sampled_from([10**6, MAX_TOTAL_COUNT])),
    answered_size=st.integers(1, 60),
    window=st.integers(1, 12),
    max_pages=st.integers(1, 30),
    seed=st.integers(0, 2**32),
)
def test_any_lie_costs_bounded_requests(real, claimed, answered_size, window, max_pages, seed):
    """For any real listing, claimed total, claimed page size, window, cap and answer
    order: items come out at most once, requests stay within the cap plus one window,
    and a shop that fits under the cap with an honest size loses nothing."""
    listing = Listing(real)
    crawl = ShopCrawl(QUERY, window=window, max_pages=max_pages)
    rng = random.Random(seed)
    harvested: list[str] = []
    pending: list[int] = []
    requests = 0
    while not crawl.finished:
        pending += crawl.take_pages()
        rng.shuffle(pending)
        page = pending.pop()
        requests += 1
        honest = listing.answer(page, 20)
        lie = page_of(page, [i.item_id for i in honest.items], total=claimed, size=answered_size)
        harvested += [i.item_id for i in crawl.accept(page, lie)]
    assert len(harvested) == len(set(harvested))
    real_pages = max(1, math.ceil(real / 20))
    assert requests <= min(real_pages, max_pages) + window + 1
    if real_pages <= max_pages and claimed >= real:
        assert set(harvested) == set(listing.ids)


def test_a_first_page_repeating_its_items_is_no_page_of_twice_the_size():
    """Page 1 carrying its 20 items twice (page_size 20, total 45): the plan counts
    each item once, so pages 2 and 3 are asked and nothing is lost."""
    listing = Listing(45)

    def answer(page: int) -> ShopItemsPage:
        honest = listing.answer(page, 20)
        ids = [i.item_id for i in honest.items]
        return page_of(page, ids + ids, total=45)

    harvested, requests = run(ShopCrawl(QUERY, window=8), answer)
    assert (harvested, requests) == (listing.ids, 3)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(1, 12)), max_size=40))
def test_coverage_spans_merge_in_any_order_as_all_at_once(spans):
    """Spans added one at a time, in any order, end as the same sorted, apart spans as
    merging them all at once: overlapping and touching spans become one."""
    covered: list[tuple[int, int]] = []
    for lo, width in spans:
        _cover(covered, lo, lo + width)
    points = sorted({x for lo, width in spans for x in range(lo, lo + width)})
    expected: list[tuple[int, int]] = []
    for x in points:
        if expected and expected[-1][1] == x:
            expected[-1] = (expected[-1][0], x + 1)
        else:
            expected.append((x, x + 1))
    assert covered == expected


def test_an_item_twice_on_a_new_page_is_kept_once_at_its_first_place():
    """A page repeating one of its own items (all new to the shop) yields each item
    once, in the order of their first appearance."""
    crawl = ShopCrawl(QUERY, window=4)
    crawl.take_pages()
    ids = ["a", "b", "a", "c", "b"]
    items = [ShopItem(item_id=i, title=f"#{n}") for n, i in enumerate(ids)]
    answer = ShopItemsPage(page=1, page_size=20, total_count=5, items=items)
    fresh = crawl.accept(1, answer)
    assert [(item.item_id, item.title) for item in fresh] == [("a", "#0"), ("b", "#1"), ("c", "#3")]
    assert crawl.seen == {"a", "b", "c"}
