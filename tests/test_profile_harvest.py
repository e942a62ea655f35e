"""``ProfileHarvest`` on its own: a fake client and journal, no sockets. Each shop is
asked once, only for the answers the journal lacks; failures leave a shop without a row;
a fatal error or a broken journal stops the asking without leaving anyone waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import tmapi_async as tm
from tmapi_async._profile_harvest import ProfileHarvest
from tmapi_async._profiles import SHOP_INFO_PATH
from tmapi_async._request import Endpoint

GENEROUS = 60.0  # seconds: a run expected to end (CI is two busy cores)


class FakeClient:
    """Answers every endpoint, or raises what ``fail`` maps (path, shop) to."""

    concurrency = 3

    def __init__(self, fail: dict[tuple[str, str], BaseException] | None = None) -> None:
        self.asked: list[tuple[str, str]] = []
        self.fail = fail or {}

    async def fetch_endpoint(self, endpoint: Endpoint[Any], query: str, shop_url: str) -> Any:
        self.asked.append((endpoint.path, shop_url))
        await asyncio.sleep(0)
        error = self.fail.get((endpoint.path, shop_url))
        if error is not None:
            raise error
        answer = (
            tm.ShopProfile(shop_name=shop_url)
            if endpoint.path == SHOP_INFO_PATH
            else (tm.ShopCategories(member_id=shop_url))
        )
        return answer, 1


class FakeJournal:
    """Holds answers in memory; ``held`` seeds answers of an earlier run."""

    def __init__(self, held: dict[str, set[str]] | None = None, broken: bool = False) -> None:
        self.parts: dict[str, set[str]] = {k: set(v) for k, v in (held or {}).items()}
        self.rows: list[str] = []
        self.broken = broken

    async def open_profile(self, shop_url: str) -> frozenset[str] | None:
        held = self.parts.get(shop_url, set())
        return None if len(held) == 2 else frozenset(held)

    async def record_part(self, shop_url: str, part: str, answer: Any) -> bool:
        if self.broken:
            raise OSError("disk full")
        held = self.parts.setdefault(shop_url, set())
        held.add(part)
        if len(held) == 2:
            self.rows.append(shop_url)
            return True
        return False


async def _run(harvest: ProfileHarvest, shops: list[str]) -> list[str]:
    """Pass ``shops`` through the harvest's tee while it runs; what came through (a
    harvest that leaves the list waiting fails on the timeout, not by hanging)."""
    return await asyncio.wait_for(_tee_and_run(harvest, shops), GENEROUS)


async def _tee_and_run(harvest: ProfileHarvest, shops: list[str]) -> list[str]:

    async def lines() -> AsyncIterator[str]:
        for shop in shops:
            yield shop

    task = asyncio.create_task(harvest.run())
    passed = [entry async for entry in harvest.tee(lines())]
    assert all(isinstance(entry, str) for entry in passed)
    await task
    return [str(entry) for entry in passed]


def test_each_shop_is_asked_once_and_the_list_passes_through_whole() -> None:
    """Duplicates (another page of the same shop) asked once, an invalid line never;
    every line reaches the items harvest as given."""
    shops = [
        "https://a.1688.com/",
        "http://A.1688.com/page/offerlist.htm",
        "not a url",
        "https://b.1688.com/",
    ]
    client, journal = FakeClient(), FakeJournal()
    harvest = ProfileHarvest(client, journal)
    assert asyncio.run(_run(harvest, shops)) == shops
    assert sorted(client.asked) == sorted(
        (path, shop)
        for path in (SHOP_INFO_PATH, "/1688/shop/category")
        for shop in ("https://a.1688.com/", "https://b.1688.com/")
    )
    assert sorted(journal.rows) == ["https://a.1688.com/", "https://b.1688.com/"]
    assert harvest.progress.written == 2


def test_a_resumed_shop_asks_only_what_the_journal_lacks() -> None:
    """A shop with its row: nothing asked; one with its profile held: categories only."""
    done, half = "https://done.1688.com/", "https://half.1688.com/"
    client = FakeClient()
    journal = FakeJournal({done: {"shop_info", "category"}, half: {"shop_info"}})
    harvest = ProfileHarvest(client, journal)
    asyncio.run(_run(harvest, [done, half]))
    assert client.asked == [("/1688/shop/category", half)]
    assert harvest.progress.resumed == 1
    assert journal.rows == [half]


def test_a_failed_profile_leaves_the_shop_without_a_row_and_goes_on() -> None:
    """A 422 on one shop's profile: that shop is failed (its categories not asked),
    the others get their rows."""
    bad = "https://bad.1688.com/"
    error = tm.InvalidParameterError("parameter error", code=422, status=422)
    client = FakeClient({(SHOP_INFO_PATH, bad): error})
    journal = FakeJournal()
    harvest = ProfileHarvest(client, journal)
    asyncio.run(_run(harvest, [bad, "https://good.1688.com/"]))
    assert harvest.progress.failed == {bad: error}
    assert journal.rows == ["https://good.1688.com/"]
    assert ("/1688/shop/category", bad) not in client.asked


@pytest.mark.parametrize("broken", ["fatal", "journal"])
def test_a_fatal_error_or_a_broken_journal_stops_asking_and_is_raised(broken: str) -> None:
    """The first shop's answer stops everything: no later shop is asked, the list still
    passes through whole (nobody waits on a full queue), and run() raises the cause."""
    shops = [f"https://s{i}.1688.com/" for i in range(20)]
    fatal = tm.BalanceError("insufficient balance", code=439, status=439)
    client = FakeClient({(SHOP_INFO_PATH, shops[0]): fatal} if broken == "fatal" else {})
    harvest = ProfileHarvest(client, FakeJournal(broken=broken == "journal"), workers=1)
    with pytest.raises(tm.BalanceError if broken == "fatal" else OSError):
        asyncio.run(_run(harvest, shops))
    assert client.asked == [(SHOP_INFO_PATH, shops[0])]
