"""``tmapi-async estimate``: one request per shop, the pages and requests a harvest needs."""

from __future__ import annotations

import json
from pathlib import Path

from clirun import run_cli
from clishops import SHOPS, write_shops

from tmapi_async.testing import SimulatedTmapi


async def test_estimate_reports_pages_and_requests(sim: SimulatedTmapi, tmp_path: Path) -> None:
    """One request per shop; per-shop pages and the total a harvest will cost."""
    shops = write_shops(tmp_path / "shops.txt", [*SHOPS, SHOPS[0]])
    run = await run_cli("estimate", str(shops), "--base-url", sim.url)
    assert run.code == 0, run.err
    assert len(sim.log) == 6
    row = next(x for x in run.out.splitlines() if x.startswith("https://shop6.1688.com/"))
    assert row.split()[1:4] == ["100", "20", "5"]
    assert "a full harvest needs 13 requests" in run.out
    assert "1 duplicate lines skipped" in run.out


async def test_estimate_json_and_failures(sim: SimulatedTmapi, tmp_path: Path) -> None:
    """--json gives one object per shop and the totals; a bad line makes exit 1."""
    shops = write_shops(tmp_path / "shops.txt", [SHOPS[0], "oops"])
    run = await run_cli("estimate", str(shops), "--base-url", sim.url, "--json")
    assert run.code == 1
    objects = [json.loads(x) for x in run.out.splitlines()]
    assert objects[0] == {
        "shop_url": SHOPS[0],
        "total_count": 45,
        "page_size": 20,
        "pages": 3,
    }
    assert objects[1]["shop_url"] == "oops"
    assert "error" in objects[1]
    assert objects[2]["totals"]["requests_needed"] == 3
    assert objects[2]["totals"]["failed"] == 1


async def test_estimate_exit_3_on_bad_token(tmp_path: Path) -> None:
    """A refused token stops the estimate with exit 3."""
    async with SimulatedTmapi(tokens={"other"}) as server:
        shops = write_shops(tmp_path / "shops.txt", SHOPS)
        run = await run_cli("estimate", str(shops), "--base-url", server.url)
    assert run.code == 3
    assert "Token is not authorized" in run.err
