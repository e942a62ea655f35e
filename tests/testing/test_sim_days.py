"""Days: each day lists new items, removes some, reprices some; failing shops fail for good."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tmapi_async.testing import (
    SORTS,
    DayChanges,
    Item,
    SimulatedTmapi,
    SimulatorConfig,
    shop_catalogue,
)
from tmapi_async.testing._catalogue import ShopCatalogue
from tmapi_async.testing._cli import build_config, configure_parser

Fetch = Callable[..., Awaitable[Any]]


def _by_id(items: list[Item]) -> dict[str, Item]:
    return {i.item_id: i for i in items}


def test_day_zero_is_the_plain_catalogue() -> None:
    """Day 0 is the plain catalogue, for every sort."""
    plain = ShopCatalogue("daily", 150)
    for sort in SORTS:
        assert shop_catalogue("daily", 150, sort=sort, day=0) == plain.items(sort)


@pytest.mark.parametrize("day", [1, 2, 5])
def test_each_day_adds_removes_and_reprices_exactly(day: int) -> None:
    """Each day adds 7 items, removes 3 and moves the price and sales of 5, and nothing else."""
    before = _by_id(shop_catalogue("daily", 150, day=day - 1))
    after = _by_id(shop_catalogue("daily", 150, day=day))
    new = after.keys() - before.keys()
    gone = before.keys() - after.keys()
    changed = [k for k in before.keys() & after.keys() if before[k] != after[k]]
    assert (len(new), len(gone), len(changed)) == (7, 3, 5)
    assert len(after) == 150 + day * (7 - 3)
    for k in changed:
        old, moved = before[k], after[k]
        # Only the price and the sales move; a range keeps its width.
        assert msgspec.structs.replace(moved, price=old.price, sale_info=old.sale_info) == old
        lo_old, lo_new = Decimal(old.price.split("-")[0]), Decimal(moved.price.split("-")[0])
        assert Decimal("0.04") <= abs(lo_new / lo_old - 1) <= Decimal("0.31")
        assert ("-" in old.price) == ("-" in moved.price)
        assert moved.sale_info.sale_quantity > old.sale_info.sale_quantity


def test_new_listings_lead_time_down_newest_first() -> None:
    """Sorted time_down, each day's new listings come first, newest day first, with unique ids."""
    day1 = shop_catalogue("daily", 150, sort="time_down", day=1)
    day2 = shop_catalogue("daily", 150, sort="time_down", day=2)
    day0_ids = {i.item_id for i in shop_catalogue("daily", 150)}
    day1_new = [i.item_id for i in day1 if i.item_id not in day0_ids]
    assert [i.item_id for i in day1[:7]] == day1_new
    day2_new = [i.item_id for i in day2[:7]]
    assert not set(day2_new) & {i.item_id for i in day1}
    # Day 2's listings are newer than day 1's: they come first, then day 1's.
    assert [i.item_id for i in day2[7:14]] == [k for k in day1_new if k in _by_id(day2)]
    # Every id stays unique in the shop and deterministic.
    assert len({i.item_id for i in day2}) == len(day2)
    assert day2 == shop_catalogue("daily", 150, sort="time_down", day=2)


def test_small_shops_do_not_change_and_changes_are_knobs() -> None:
    """Shops below min_size do not change; DayChanges sets the numbers and refuses negative ones."""
    assert shop_catalogue("tiny", 19, day=3) == shop_catalogue("tiny", 19)
    changes = DayChanges(new=2, gone=0, repriced=1, min_size=5)
    before = _by_id(shop_catalogue("tiny", 19))
    after = _by_id(shop_catalogue("tiny", 19, day=1, changes=changes))
    assert len(after.keys() - before.keys()) == 2
    assert before.keys() <= after.keys()
    assert sum(before[k] != after[k] for k in before) == 1
    with pytest.raises(ValueError, match="must be >= 0"):
        DayChanges(new=-1)
    with pytest.raises(ValueError, match="day must be"):
        SimulatorConfig(day=-1)


async def test_the_simulator_serves_the_configured_day(fetch: Fetch) -> None:
    """The simulator serves the configured day's catalogue, and another day once reconfigured."""
    async with SimulatedTmapi(shop_sizes={"daily": 45}, day=1) as sim:
        expected = shop_catalogue("daily", 45, sort="time_down", day=1)
        assert sim.expected_items("daily", sort="time_down") == expected
        pages = [(await fetch(sim, "daily", page=p, sort="time_down")).json for p in (1, 2, 3)]
        assert pages[0]["data"]["total_count"] == 45 + 4
        got = [i["item_id"] for p in pages for i in p["data"]["items"]]
        assert got == [i.item_id for i in expected]
        sim.configure(day=2)
        page = (await fetch(sim, "daily", page=1, sort="time_down")).json["data"]
        assert page["total_count"] == 45 + 8
        day2 = shop_catalogue("daily", 45, sort="time_down", day=2)
        assert [i["item_id"] for i in page["items"]] == [i.item_id for i in day2[:20]]


async def test_failing_shops_fail_from_their_page_on(fetch: Fetch) -> None:
    """A failing shop answers 500 from its given page on; other shops and earlier pages answer."""
    async with SimulatedTmapi(failing_shops={"broken": 1, "late": 3}) as sim:
        assert (await fetch(sim, "broken", page=1)).status == 500
        assert (await fetch(sim, "late", page=2)).status == 200
        for page in (3, 4):
            reply = await fetch(sim, "late", page=page)
            assert (reply.status, reply.json["code"]) == (500, 500)
        assert (await fetch(sim, "other", page=3)).status == 200
        assert sim.log.count_by_outcome()["failing_shop"] == 3
    with pytest.raises(ValueError, match="failing_shops"):
        SimulatorConfig(failing_shops={"x": 0})


def test_command_line_days_and_failing_shops() -> None:
    """--day, --day-changes and --fail-shop build the config; malformed values are refused."""
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    config = build_config(
        parser.parse_args(
            ["--day", "2", "--day-changes", "4:1:2:10", "--fail-shop", "a", "--fail-shop", "B:4"]
        )
    )
    assert config.day == 2
    assert config.day_changes() == DayChanges(new=4, gone=1, repriced=2, min_size=10)
    assert dict(config.failing_shops) == {"a": 1, "b": 4}
    defaults = build_config(parser.parse_args([]))
    assert (defaults.day, defaults.day_changes(), dict(defaults.failing_shops)) == (
        0,
        DayChanges(),
        {},
    )
    for bad in (["--day-changes", "1:2"], ["--fail-shop", "x:0"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
