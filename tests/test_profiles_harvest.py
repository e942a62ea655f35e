"""``harvest --with-profiles``: who sells each shop into ``OUTPUT.shops.EXT``, beside the
items, once per shop, resumable after ``kill -9``; ``estimate --with-profiles``.

The CLI runs as a subprocess against the simulator, which counts every request by
endpoint and shop.
"""

from __future__ import annotations

import csv
import io
import json
import random
import signal
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from clirun import cli_env, harvest_args, run_cli, start_cli

import tmapi_async as tm
from tmapi_async._shop_diff import PROFILE_CHANGE_FIELDS
from tmapi_async._shop_profile import profile_decoder
from tmapi_async.testing import (
    SHOP_CATEGORY_ENDPOINT,
    SHOP_INFO_ENDPOINT,
    RequestRecord,
    SimulatedTmapi,
    shop_profile,
)

NAMES = [f"seller{i:02d}" for i in range(20)]
SIZES = {name: 5 + 9 * i for i, name in enumerate(NAMES)}  # 1 to 10 pages of 20
PROFILE_ENDPOINTS = (SHOP_INFO_ENDPOINT, SHOP_CATEGORY_ENDPOINT)


def shops_file(tmp_path: Path, names: list[str] = NAMES) -> Path:
    """A SHOPS file of ``names``, one of them twice and one as a product page's shop."""
    path = tmp_path / "shops.txt"
    lines = [f"https://{name}.1688.com/" for name in names]
    lines.append(f"http://{names[0]}.1688.com/page/offerlist.htm")  # the same shop again
    path.write_text("\n".join(lines) + "\n")
    return path


def expected_profile(name: str, day: int = 0) -> tm.ShopProfile:
    """The simulator's profile of shop ``name`` on ``day``, decoded as the client does."""
    body = json.dumps({"code": 200, "data": shop_profile(name, day)}).encode()
    _, profile = profile_decoder(body)
    assert profile is not None
    return profile


def profile_requests(sim: SimulatedTmapi, outcome: str | None = None) -> Counter[tuple[str, Any]]:
    """Requests to the two profile endpoints, by (endpoint, shop)."""
    counts = sim.log.count_by_endpoint(outcome)
    return Counter({key: n for key, n in counts.items() if key[0] in PROFILE_ENDPOINTS})


def jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON Lines file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def check_rows(rows: list[dict[str, Any]], names: list[str]) -> None:
    """One row per shop of ``names``, each with the simulator's profile and a category
    tree whose leaves count the shop's items."""
    assert sorted(row["shop_url"] for row in rows) == [f"https://{n}.1688.com/" for n in names]
    for row in rows:
        name = row["shop_url"].split("//")[1].split(".")[0]
        check_row(row, name)
        leaves = [leaf for group in row["categories"] for leaf in group["children"]]
        assert sum(leaf["count"] for leaf in leaves) == SIZES[name]


def check_row(row: dict[str, Any], name: str) -> None:
    """A shops-file row holds the simulator's profile of ``name``."""
    profile = expected_profile(name)
    assert row["shop_url"] == f"https://{name}.1688.com/"
    for field in ("member_id", "company_id", "company_name", "location_str", "shop_logo"):
        assert row[field] == getattr(profile, field)
    for flag in ("is_factory", "is_super_factory", "is_flagship_shop", "is_industry_brand"):
        assert row[flag] == getattr(profile, flag)
    assert (row["tp_year"], row["favorite_count"]) == (profile.tp_year, profile.favorite_count)
    ratings = [(r["title"], r["type"], r["score"]) for r in row["ratings"]]
    assert ratings == [(r.title, r.type, r.score) for r in profile.shop_ratings]


async def test_twenty_shops_with_profiles_once_each_and_a_rerun_sends_nothing(
    tmp_path: Path,
) -> None:
    """Every item once; one row per shop with the simulator's profile and category tree;
    exactly one request per shop at each profile endpoint; a rerun sends no request."""
    async with SimulatedTmapi(shop_sizes=SIZES, default_shop_size=0) as sim:
        out = tmp_path / "items.jsonl"
        args = harvest_args(sim, shops_file(tmp_path), out, "--with-profiles")
        run = await run_cli(*args)
        assert run.code == 0, run.err
        items = Counter((row["shop_url"], row["item_id"]) for row in jsonl(out))
        assert set(items.values()) == {1}
        expected = {
            (f"https://{n}.1688.com/", i.item_id) for n in NAMES for i in sim.expected_items(n)
        }
        assert set(items) == expected
        check_rows(jsonl(tmp_path / "items.jsonl.shops.jsonl"), NAMES)
        asked = profile_requests(sim)
        assert asked == Counter({(e, n): 1 for e in PROFILE_ENDPOINTS for n in NAMES})
        shops_line = f"profiles: {tmp_path / 'items.jsonl.shops.jsonl'} (20 shops; 40 answers"
        assert shops_line in run.out
        pages = sum(-(-size // 20) for size in SIZES.values())
        assert f"billed for {pages} pages read and 40 profile answers" in run.out
        assert "0 extra: 0 retries" in run.out

        sim.log.reset()
        again = await run_cli(*args)
        assert again.code == 0, again.err
        assert len(sim.log) == 0
        assert len(jsonl(tmp_path / "items.jsonl.shops.jsonl")) == len(NAMES)

        manifest = json.loads((tmp_path / "items.jsonl.manifest.json").read_text())
        assert manifest["profiles"]["rows"] == len(NAMES)
        assert manifest["profiles"]["shops_file"].endswith("items.jsonl.shops.jsonl")
        assert manifest["profiles"]["missing"] == {}


def _profile_answers_held(state: Path) -> set[tuple[str, str]]:
    """(endpoint, shop name) of every profile answer the state file holds."""
    if not state.exists():
        return set()
    paths = {"shop_info": SHOP_INFO_ENDPOINT, "category": SHOP_CATEGORY_ENDPOINT}
    db = sqlite3.connect(state)
    try:
        held = {
            (paths[part], url.split("//")[1].split(".")[0])
            for url, part in db.execute("SELECT url, part FROM profile_parts")
        }
        for (url,) in db.execute("SELECT url FROM profile_rows"):
            held |= {(path, url.split("//")[1].split(".")[0]) for path in paths.values()}
        return held
    except sqlite3.OperationalError:  # killed before the tables were made
        return set()
    finally:
        db.close()


class _Killer:
    """An ``on_request`` hook that SIGKILLs the CLI when the N-th request arrives."""

    def __init__(self) -> None:
        self.proc: Any = None
        self.at = 0
        self.seen = 0

    async def __call__(self, _record: RequestRecord) -> None:
        self.seen += 1
        if self.proc is not None and self.seen == self.at:
            self.proc.send_signal(signal.SIGKILL)
            self.proc = None


@pytest.mark.parametrize("seed", [1, 2])
async def test_kill_9_then_rerun_asks_no_profile_answer_twice(tmp_path: Path, seed: int) -> None:
    """Killed at a random request, then rerun: no profile answer the killed run had
    recorded is asked again, every shop ends with one row, every item once."""
    killer = _Killer()
    async with SimulatedTmapi(shop_sizes=SIZES, default_shop_size=0, on_request=killer) as sim:
        out = tmp_path / "items.jsonl"
        state = tmp_path / "items.jsonl.state.db"
        args = harvest_args(sim, shops_file(tmp_path), out, "--with-profiles")
        proc = await start_cli(*args)
        killer.proc, killer.at = proc, random.Random(seed).randint(15, 60)
        await proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        held = _profile_answers_held(state)
        assert held, "the kill came before any profile answer was recorded: no test"
        sim.log.reset()
        killer.proc = None
        run = await run_cli(*args)
        assert run.code == 0, run.err
        asked_again = set(profile_requests(sim)) & held
        assert not asked_again, f"profile answers asked twice: {sorted(asked_again)[:3]}"
        rows = jsonl(tmp_path / "items.jsonl.shops.jsonl")
        assert sorted(r["shop_url"] for r in rows) == [f"https://{n}.1688.com/" for n in NAMES]
        items = Counter((row["shop_url"], row["item_id"]) for row in jsonl(out))
        assert set(items.values()) == {1}
        assert len(items) == sum(SIZES.values())


async def test_csv_shops_file_is_safe_to_open(tmp_path: Path) -> None:
    """CSV: one row per shop, nested fields as JSON text, and cells a spreadsheet would
    run as a formula (the "+86-…" phones) neutralised with an apostrophe."""
    names = NAMES[:6]
    async with SimulatedTmapi(shop_sizes=SIZES, default_shop_size=0) as sim:
        out = tmp_path / "items.csv"
        run = await run_cli(*harvest_args(sim, shops_file(tmp_path, names), out, "--with-profiles"))
        assert run.code == 0, run.err
    text = (tmp_path / "items.csv.shops.csv").read_bytes().decode()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert sorted(r["shop_url"] for r in rows) == [f"https://{n}.1688.com/" for n in names]
    phones = {r["shop_url"]: r["contact_phone"] for r in rows}
    for name in names:
        phone = expected_profile(name).contact_phone
        cell = phones[f"https://{name}.1688.com/"]
        assert cell == ("'" + phone if phone.startswith("+") else phone)
    assert any(cell.startswith("'+86") for cell in phones.values())
    for row in rows:
        assert isinstance(json.loads(row["ratings"]), list)
        assert isinstance(json.loads(row["categories"]), list)
        assert not any(v[:1] in ("=", "+", "-", "@") for v in row.values())


async def test_parquet_shops_file_is_readable_with_nested_fields(tmp_path: Path) -> None:
    """Parquet: a readable file, one row per shop, ratings and categories nested."""
    import pyarrow.parquet as pq

    names = NAMES[:5]
    async with SimulatedTmapi(shop_sizes=SIZES, default_shop_size=0) as sim:
        out = tmp_path / "items.parquet"
        run = await run_cli(*harvest_args(sim, shops_file(tmp_path, names), out, "--with-profiles"))
        assert run.code == 0, run.err
    table = pq.read_table(tmp_path / "items.parquet.shops.parquet")
    check_rows(table.to_pylist(), names)


async def test_estimate_with_profiles_adds_two_requests_per_shop(tmp_path: Path) -> None:
    """The same shops, estimated with and without --with-profiles: 2 more per shop
    (the duplicate line counts once), and nothing more is sent for them."""
    async with SimulatedTmapi(shop_sizes=SIZES, default_shop_size=0) as sim:
        base = ["estimate", str(shops_file(tmp_path)), "--base-url", sim.url, "--json"]
        plain = await run_cli(*base)
        sent = len(sim.log)
        with_profiles = await run_cli(*base, "--with-profiles")
        assert (plain.code, with_profiles.code) == (0, 0)
        totals = [json.loads(r.out.splitlines()[-1])["totals"] for r in (plain, with_profiles)]
        assert totals[1]["requests_needed"] == totals[0]["requests_needed"] + 2 * len(NAMES)
        assert totals[1]["profile_requests"] == 2 * len(NAMES)
        assert len(sim.log) == 2 * sent  # the estimate itself asks no profile
        assert not profile_requests(sim)


async def test_with_the_apikey_header_profiles_work_as_items_do(tmp_path: Path) -> None:
    """A server that takes the key only as the ``apikey`` header: every request, the
    profiles' too, goes as the header, and every shop has its row."""
    names = NAMES[:4]
    async with SimulatedTmapi(shop_sizes=SIZES, default_shop_size=0, auth="header") as sim:
        out = tmp_path / "items.jsonl"
        args = harvest_args(sim, shops_file(tmp_path, names), out, "--with-profiles")
        run = await run_cli(*args, "--auth", "header", env=cli_env())
        assert run.code == 0, run.err
        assert {r.auth for r in sim.log} == {"header"}
        assert set(profile_requests(sim, "ok")) == {
            (e, n) for e in PROFILE_ENDPOINTS for n in names
        }
    rows = jsonl(tmp_path / "items.jsonl.shops.jsonl")
    for row in rows:
        check_row(row, row["shop_url"].split("//")[1].split(".")[0])
    assert len(rows) == len(names)


async def _harvest_on_day(tmp_path: Path, day: int, output: str, *extra: str) -> Path:
    """A --with-profiles harvest of six shops from a simulator on ``day``."""
    out = tmp_path / output
    async with SimulatedTmapi(shop_sizes=SIZES, default_shop_size=0, day=day) as sim:
        args = harvest_args(sim, shops_file(tmp_path, NAMES[:6]), out, "--with-profiles", *extra)
        run = await run_cli(*args)
        assert run.code == 0, run.err
    return out


def _expected_shop_changes(day_before: int, day_after: int) -> set[tuple[str, str]]:
    """(shop URL, field) the simulator's profiles changed between two days."""
    changed = set()
    for name in NAMES[:6]:
        before, after = shop_profile(name, day_before), shop_profile(name, day_after)
        for field in PROFILE_CHANGE_FIELDS:
            key = "shop_ratings" if field == "ratings" else field
            if before[key] != after[key]:
                changed.add((f"https://{name}.1688.com/", field))
    return changed


async def test_diff_reports_a_shop_changed_row_per_changed_profile_field(tmp_path: Path) -> None:
    """Day 0 in JSON Lines, day 2 in CSV: one ``shop_changed`` row per shop and field
    the simulator moved (the ratings), with both values; the same day twice: none."""
    old = await _harvest_on_day(tmp_path, 0, "monday.jsonl")
    new = await _harvest_on_day(tmp_path, 2, "wednesday.csv")
    same = await _harvest_on_day(tmp_path, 0, "again.csv")
    with tm.diff(old, new) as changes:
        rows = [c for c in changes if c.change == "shop_changed"]
    expected = _expected_shop_changes(0, 2)
    assert expected  # the days moved some rating
    assert {(c.shop_url, next(iter(c.before))) for c in rows} == expected
    assert len(rows) == len(expected)
    for change in rows:
        name = change.shop_url.split("//")[1].split(".")[0]
        after = [(r.title, r.type, r.score) for r in expected_profile(name, 2).shop_ratings]
        assert [(r["title"], r["type"], r["score"]) for r in change.after["ratings"]] == after
    with tm.diff(old, same) as changes:
        assert not [c for c in changes if c.change == "shop_changed"]
    (tmp_path / "again.csv.shops.csv").unlink()  # one side without profiles: no such row
    with tm.diff(new, same) as changes:
        assert not [c for c in changes if c.change == "shop_changed"]


async def test_max_requests_counts_the_two_profile_requests_of_each_shop(tmp_path: Path) -> None:
    """Shops of one page each cost 3 requests with profiles: a budget one short of that
    stops the run (exit 3, resumable) with exactly the budget spent; the exact budget on
    a rerun finishes it, without asking anything twice."""
    names = NAMES[:5]
    sizes = dict.fromkeys(names, 5)
    async with SimulatedTmapi(shop_sizes=sizes, default_shop_size=0) as sim:
        out = tmp_path / "items.jsonl"
        args = harvest_args(sim, shops_file(tmp_path, names), out, "--with-profiles")
        short = await run_cli(*args, "--max-requests", str(3 * len(names) - 1))
        assert short.code == 3, short.err
        assert len(sim.log) == 3 * len(names) - 1
        spent = {(r.endpoint, r.shop, r.page) for r in sim.log}
        sim.log.reset()
        rest = await run_cli(*args, "--max-requests", "1")
        assert rest.code == 0, rest.err
        assert len(sim.log) == 1
        assert {(r.endpoint, r.shop, r.page) for r in sim.log}.isdisjoint(spent)
    assert len(jsonl(tmp_path / "items.jsonl.shops.jsonl")) == len(names)


def test_with_profiles_and_since_are_refused_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--since reads new listings only: with --with-profiles it is a usage error (exit 2),
    before anything is opened or sent."""
    from tmapi_async.cli import main

    monkeypatch.setenv("TMAPI_TOKEN", "tok-usage")
    previous = tmp_path / "old.jsonl"
    previous.write_text("")
    out = tmp_path / "items.jsonl"
    args = [
        "harvest",
        str(shops_file(tmp_path)),
        "-o",
        str(out),
        "--base-url",
        "http://127.0.0.1:9",
    ]
    assert main([*args, "--with-profiles", "--since", str(previous)]) == 2
    assert "--with-profiles cannot be used with --since" in capsys.readouterr().err
    assert not out.exists()
