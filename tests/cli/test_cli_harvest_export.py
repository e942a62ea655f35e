"""``harvest``'s export: CSV cells a spreadsheet would run are neutralised (and kept as
sent on request), a CSV resumes as what it started as, and a disk that fills up mid-run
ends the run cleanly with a rerun that finishes."""

from __future__ import annotations

import asyncio
import csv
import json
import resource
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from clirun import cli_env, finish, harvest_args, run_cli
from clishops import SHOPS, assert_exactly_once, expected_rows, read_rows, write_shops

from tmapi_async.cli import ExitCode
from tmapi_async.testing import SimulatedTmapi

HOSTILE = [
    "=1+1",
    "+SUM(A1:A2)",
    "-2+3",
    "@SUM(1)",
    "\t=cmd",
    "\r=cmd",
    '=HYPERLINK("http://127.0.0.1/x","click")',
]


PLAIN = ["plain title", "a = b", "3-pack", ""]


@pytest_asyncio.fixture
async def hostile_api() -> AsyncIterator[str]:
    """An API on loopback whose one shop lists items with titles a spreadsheet would run."""
    items = [
        {
            "item_id": str(1000 + i),
            "title": title,
            "img": "https://img.example/x.jpg",
            "category_path": [],
            "category_name": "=cat" if i == 0 else "",
            "price": "-1.00" if i == 0 else "9.90",
            "quantity": None,
            "sale_info": {"sale_quantity": 1, "sale_amount": 0},
        }
        for i, title in enumerate([*HOSTILE, *PLAIN])
    ]

    async def page(request: web.Request) -> web.Response:
        number = int(request.query.get("page", "1"))
        data = {
            "page": number,
            "page_size": 20,
            "total_count": len(items),
            "items": items if number == 1 else [],
        }
        return web.json_response({"code": 200, "msg": "success", "data": data})

    app = web.Application()
    app.router.add_get("/1688/shop/items/v2", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _csv_titles(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


async def test_csv_neutralises_formulas_and_jsonl_keeps_them(
    hostile_api: str, tmp_path: Path
) -> None:
    """CSV: every text cell a spreadsheet would run gets an apostrophe, nothing else
    changes; --csv-raw and JSON Lines keep the text exactly as sent."""
    shops = write_shops(tmp_path / "shops.txt", [SHOPS[0]])
    args = ["--base-url", hostile_api, "--rate", "1000", "--timeout", "30"]
    safe, raw, jsonl = tmp_path / "safe.csv", tmp_path / "raw.csv", tmp_path / "items.jsonl"
    for out, extra in ((safe, []), (raw, ["--csv-raw"]), (jsonl, [])):
        run = await run_cli("harvest", str(shops), "-o", str(out), *args, *extra)
        assert run.code == 0, run.err
    titles = [*HOSTILE, *PLAIN]
    rows = _csv_titles(safe)
    assert [r["title"] for r in rows] == [f"'{t}" for t in HOSTILE] + PLAIN
    assert rows[0]["category_name"] == "'=cat"
    assert rows[0]["price"] == "'-1.00"
    assert all(r["shop_url"] == SHOPS[0] and r["item_id"].isdigit() for r in rows)
    assert [r["title"] for r in _csv_titles(raw)] == titles
    lines = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert [row["title"] for row in lines] == titles
    assert lines[0]["category_name"] == "=cat"


async def test_a_new_csv_export_is_not_called_a_resume(sim: SimulatedTmapi, tmp_path: Path) -> None:
    """A CSV's header is written at open: that is no earlier run to resume from."""
    shops = write_shops(tmp_path / "shops.txt", SHOPS[:2])
    out = tmp_path / "items.csv"
    run = await run_cli(*harvest_args(sim, shops, out))
    assert run.code == ExitCode.OK, run.err
    assert "resuming" not in run.err
    run = await run_cli(*harvest_args(sim, shops, out))
    assert "resuming from" in run.err


async def test_csv_raw_must_be_repeated_on_resume(sim: SimulatedTmapi, tmp_path: Path) -> None:
    """One CSV is never half neutralised: a rerun that drops --csv-raw is refused."""
    shops = write_shops(tmp_path / "shops.txt", SHOPS[:2])
    out = tmp_path / "items.csv"
    assert (await run_cli(*harvest_args(sim, shops, out, "--csv-raw"))).code == 0
    run = await run_cli(*harvest_args(sim, shops, out))
    assert run.code == ExitCode.USAGE
    assert "--csv-raw" in run.err


# -- a disk that fills up -------------------------------------------------------------------


def _file_size_limit(limit: int) -> None:
    """In the child: writes past ``limit`` bytes fail with EFBIG (Python ignores
    SIGXFSZ), like a full disk."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_exit_3_when_the_export_cannot_be_written(tmp_path: Path, fmt: str) -> None:
    """A disk that fills up mid-run: exit 3 with a clear message and no traceback; a
    rerun with room finishes with every item exactly once."""
    names = [f"https://shop{i}.1688.com/" for i in range(1, 11)]
    async with SimulatedTmapi(default_shop_size=100) as server:
        shops = write_shops(tmp_path / "shops.txt", names)
        out = tmp_path / f"items.{fmt}"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tmapi_async",
            *harvest_args(server, shops, out, "--concurrency", "1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(),
            preexec_fn=lambda: _file_size_limit(150_000),  # the export needs ~400 kB
        )
        run = await finish(proc)
        assert run.code == ExitCode.FATAL, run.err
        assert "cannot write the export or the state" in run.err
        assert "rerun the same command to resume" in run.err
        assert "Traceback" not in run.err
        run = await run_cli(*harvest_args(server, shops, out))
        assert run.code == ExitCode.OK, run.err
        assert_exactly_once(read_rows(out), expected_rows(server, names))
