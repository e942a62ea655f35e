"""``harvest --redis --with-profiles``: workers harvest the items, the coordinator asks
each shop's profile and category tree within the token's limits shared through Redis,
and writes the shops file; a rerun asks nothing again."""

from __future__ import annotations

import json
import secrets
from collections import Counter
from pathlib import Path
from typing import Any

from clirun import cli_env, run_cli

from tmapi_async.testing import SHOP_CATEGORY_ENDPOINT, SHOP_INFO_ENDPOINT, SimulatedTmapi

TOKEN = "tok-" + secrets.token_hex(16)
LIMIT = 4  # the account's in-flight limit, and the one the harvest sets
NAMES = [f"redisseller{i}" for i in range(8)]


def _rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON Lines file."""
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_profiles_through_redis_once_per_shop_within_the_shared_limit(
    redis_url: str, tmp_path: Path
) -> None:
    """Every item once, one shops-file row per shop, one request per shop at each
    profile endpoint, never more than the token's limit in flight; a rerun sends none."""
    shops = tmp_path / "shops.txt"
    shops.write_text("".join(f"https://{name}.1688.com/\n" for name in NAMES))
    out = tmp_path / "items.jsonl"
    async with SimulatedTmapi(
        tokens={TOKEN}, default_shop_size=45, concurrency_limit=LIMIT, latency_ms=(5.0, 20.0)
    ) as sim:
        args = [
            "harvest", str(shops), "--output", str(out), "--base-url", sim.url,
            "--redis", redis_url, "--workers", "1", "--rate", "200",
            "--concurrency", str(LIMIT), "--timeout", "60", "--with-profiles",
        ]  # fmt: skip
        run = await run_cli(*args, env=cli_env(TOKEN))
        assert run.code == 0, run.err
        rows = _rows(out)
        items = Counter((row["shop_url"], row["item_id"]) for row in rows)
        expected = {
            (f"https://{name}.1688.com/", item.item_id)
            for name in NAMES
            for item in sim.expected_items(name)
        }
        assert set(items) == expected
        assert set(items.values()) == {1}
        shops_rows = _rows(tmp_path / "items.jsonl.shops.jsonl")
        assert sorted(r["shop_url"] for r in shops_rows) == sorted(
            f"https://{n}.1688.com/" for n in NAMES
        )
        asked = Counter(
            (r.endpoint, r.shop)
            for r in sim.log
            if r.endpoint in (SHOP_INFO_ENDPOINT, SHOP_CATEGORY_ENDPOINT)
        )
        assert asked == Counter(
            {(e, n): 1 for e in (SHOP_INFO_ENDPOINT, SHOP_CATEGORY_ENDPOINT) for n in NAMES}
        )
        assert sim.log.peak_in_flight(TOKEN) <= LIMIT
        assert "concurrency_limited" not in sim.log.count_by_outcome()

        sim.log.reset()
        again = await run_cli(*args, env=cli_env(TOKEN))
        assert again.code == 0, again.err
        assert len(sim.log) == 0
