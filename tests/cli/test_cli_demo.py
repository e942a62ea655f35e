"""``tmapi-async demo``: a harvest (and a day later, a diff) with no token and no network."""

from __future__ import annotations

import json
from pathlib import Path

from clirun import cli_env, run_cli
from clishops import read_rows


async def test_demo_runs_without_token_or_network(tmp_path: Path) -> None:
    """The demo starts its own simulator, harvests, says where the export is."""
    run = await run_cli(
        "demo", "--shops", "12", "--dir", str(tmp_path / "demo"), "--quiet", env=cli_env(None)
    )
    assert run.code == 0, run.err
    export = tmp_path / "demo" / "items.jsonl"
    assert str(export.resolve()) in run.out
    rows = read_rows(export)
    assert rows
    assert len(rows) == len(set(rows))
    assert {s for s, _ in rows} <= {f"https://shop{i}.1688.com/" for i in range(1, 13)}


async def test_demo_next_day_diffs_the_two_exports(tmp_path: Path) -> None:
    """--next-day harvests the shops a day later and writes what changed between the two."""
    demo = tmp_path / "demo"
    run = await run_cli(
        "demo", "--shops", "12", "--dir", str(demo), "--next-day", "--quiet", env=cli_env(None)
    )
    assert run.code == 0, run.err
    changes = demo / "changes.jsonl"
    assert str(changes.resolve()) in run.out
    day0, day1 = set(read_rows(demo / "items.jsonl")), set(read_rows(demo / "items-day1.jsonl"))
    rows = [json.loads(line) for line in changes.read_text(encoding="utf-8").splitlines()]
    by_kind: dict[str, set[tuple[str, str]]] = {}
    for row in rows:
        by_kind.setdefault(row["change"], set()).add((row["shop_url"], row["item_id"]))
    assert by_kind["new"] == day1 - day0
    assert by_kind["gone"] == day0 - day1
    assert by_kind["price"]
    assert by_kind["price"] <= day0 & day1
