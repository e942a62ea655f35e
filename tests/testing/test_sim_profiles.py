"""The simulator's shop profiles and category trees: deterministic per shop, moved by the
day, under the same keys, quotas, faults and failing shops as the items endpoint."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec

from tmapi_async.testing import (
    SHOP_CATEGORY_ENDPOINT,
    SHOP_INFO_ENDPOINT,
    FaultKind,
    SimulatedTmapi,
    shop_catalogue,
    shop_profile,
)

TOKEN = "tok-secret-1234567890"


async def ask(sim: SimulatedTmapi, path: str, shop: str = "abc", **query: str) -> tuple[int, Any]:
    """GET ``path`` of the simulator about ``shop``: (status, decoded body or None)."""
    params = {"apiToken": TOKEN, "shop_url": sim.shop_url(shop), **query}
    async with aiohttp.ClientSession() as http, http.get(sim.url + path, params=params) as resp:
        raw = await resp.read()
        try:
            return resp.status, msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return resp.status, None


def test_a_profile_is_deterministic_per_shop_and_differs_between_shops() -> None:
    """Same name, same profile; another name, another member and company."""
    assert shop_profile("abc") == shop_profile("abc")
    assert shop_profile("abc")["member_id"] != shop_profile("abd")["member_id"]
    assert shop_profile("abc")["company_name"] != shop_profile("abd")["company_name"]


def test_a_day_moves_favourites_and_ratings_only() -> None:
    """Day 3: more favourites, scores within a step per day, nothing else changed."""
    before, after = shop_profile("abc", 0), shop_profile("abc", 3)
    assert int(after["favorite_count"]) > int(before["favorite_count"])
    moved = {k for k in before if before[k] != after[k]}
    assert moved <= {"favorite_count", "shop_ratings"}
    for old, new in zip(before["shop_ratings"], after["shop_ratings"], strict=True):
        assert old["title"] == new["title"]
        assert old["type"] == new["type"]
        assert abs(float(old["score"]) - float(new["score"])) <= 0.1 + 1e-9


async def test_both_endpoints_answer_the_shop_and_count_its_listing() -> None:
    """shop_info answers the shop's profile; category a tree whose leaf counts add up
    to the catalogue's items, each leaf's count its listing under ``cat``."""
    async with SimulatedTmapi(shop_sizes={"abc": 57}) as sim:
        status, info = await ask(sim, SHOP_INFO_ENDPOINT)
        assert (status, info["code"]) == (200, 200)
        assert info["data"] == shop_profile("abc")
        status, tree = await ask(sim, SHOP_CATEGORY_ENDPOINT)
        assert status == 200
        groups = tree["data"]["list"]
        leaves = [leaf for group in groups for leaf in group["children"]]
        assert sum(int(leaf["count"]) for leaf in leaves) == 57
        for leaf in leaves:
            listed = shop_catalogue("abc", 57, cat=str(leaf["id"]), cat_type="0")
            assert int(leaf["count"]) == len(listed)
        records = sim.log.records
        assert [r.endpoint for r in records] == [SHOP_INFO_ENDPOINT, SHOP_CATEGORY_ENDPOINT]
        assert all(r.page is None and r.shop == "abc" for r in records)


async def test_the_day_knob_moves_the_served_profile() -> None:
    """A simulator on day 2 serves the day-2 profile."""
    async with SimulatedTmapi(day=2) as sim:
        _, info = await ask(sim, SHOP_INFO_ENDPOINT)
        assert info["data"] == shop_profile("abc", 2)


async def test_keys_quotas_and_bad_parameters_apply_as_for_items() -> None:
    """An unknown key is refused, a spent quota is 439, a bad shop_url is 422."""
    async with SimulatedTmapi(tokens=[TOKEN], quota=1) as sim:
        assert (await ask(sim, SHOP_INFO_ENDPOINT))[0] == 200
        assert (await ask(sim, SHOP_CATEGORY_ENDPOINT))[0] == 439
    async with SimulatedTmapi(tokens=["other"]) as sim:
        assert (await ask(sim, SHOP_CATEGORY_ENDPOINT))[0] == 401
    async with SimulatedTmapi() as sim:
        status, _ = await ask(sim, SHOP_INFO_ENDPOINT, shop_url="https://www.example.com/")
        assert status == 422


async def test_faults_and_failing_shops_apply_as_for_items() -> None:
    """Seeded faults hit both endpoints; a shop failing from page 1 fails here too."""
    async with SimulatedTmapi(
        fault_rate=1.0, fault_kinds=(FaultKind.STATUS,), fault_codes=(417,)
    ) as sim:
        assert (await ask(sim, SHOP_INFO_ENDPOINT))[0] == 417
        assert (await ask(sim, SHOP_CATEGORY_ENDPOINT))[0] == 417
        assert {r.outcome for r in sim.log} == {"fault_status"}
    async with SimulatedTmapi(failing_shops={"abc": 1, "abd": 2}) as sim:
        assert (await ask(sim, SHOP_INFO_ENDPOINT))[0] == 500
        assert (await ask(sim, SHOP_INFO_ENDPOINT, "abd"))[0] == 200
