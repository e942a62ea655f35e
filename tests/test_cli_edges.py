"""The command line at its edges: hostile data in the export, hostile input lines, a
short token, a second Ctrl-C, an export that cannot be written, options that must reach
the API, and a start that does not import what ``--help`` does not need.
"""

from __future__ import annotations

import ast
import asyncio
import csv
import json
import re
import resource
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from clirun import cli_env, finish, harvest_args, run_cli, start_cli
from test_cli import SHOPS, SIZES, assert_exactly_once, expected_rows, read_rows, write_shops

import tmapi_async as tm
from tmapi_async.cli import COMMANDS, ExitCode, build_parser
from tmapi_async.cli._options import SORTS
from tmapi_async.testing import RequestRecord, SimulatedTmapi

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
async def sim() -> AsyncIterator[SimulatedTmapi]:
    """A simulator with shops of the sizes of the CLI tests (pages of 20)."""
    async with SimulatedTmapi(shop_sizes=SIZES, default_shop_size=0) as server:
        yield server


# -- safe CSV -------------------------------------------------------------------------------


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


async def test_help_says_what_csv_raw_does() -> None:
    """The neutralisation and how to turn it off are in the harvest's help."""
    run = await run_cli("harvest", "--help")
    assert "--csv-raw" in run.out
    assert "apostrophe" in run.out


# -- hostile input lines ------------------------------------------------------------------


async def test_a_2mb_garbage_line_is_not_echoed_whole(sim: SimulatedTmapi, tmp_path: Path) -> None:
    """The message quotes the start of the line and says how long it was; the failures
    file keeps the line whole, so it stays a SHOPS list."""
    garbage = "x" * 2_000_000
    shops = write_shops(tmp_path / "shops.txt", [SHOPS[0], garbage])
    out = tmp_path / "items.jsonl"
    run = await run_cli(*harvest_args(sim, shops, out))
    assert run.code == ExitCode.SHOPS_FAILED, run.err[:2000]
    assert len(run.err) < 5_000
    assert re.search(r"2,?000,?000 characters", run.err)
    failures = (tmp_path / "items.jsonl.failures.txt").read_text(encoding="utf-8").splitlines()
    assert garbage in failures
    assert all(len(line) < 5_000 for line in failures if line.startswith("#"))


async def test_a_utf8_bom_before_the_first_shop_is_no_part_of_it(
    sim: SimulatedTmapi, tmp_path: Path
) -> None:
    """Editors on Windows start files with a BOM: the first shop is still a shop."""
    shops = tmp_path / "shops.txt"
    shops.write_bytes(b"\xef\xbb\xbf" + "".join(f"{s}\n" for s in SHOPS[:3]).encode())
    out = tmp_path / "items.jsonl"
    run = await run_cli(*harvest_args(sim, shops, out))
    assert run.code == ExitCode.OK, run.err
    assert_exactly_once(read_rows(out), expected_rows(sim, SHOPS[:3]))
    run = await run_cli("estimate", str(shops), "--base-url", sim.url)
    assert run.code == ExitCode.OK, run.out + run.err


# -- the token ------------------------------------------------------------------------------


async def test_a_short_token_does_not_mangle_the_summary(
    sim: SimulatedTmapi, tmp_path: Path
) -> None:
    """A 4-letter test token that is also part of ordinary words: the summary reads as
    usual, and the token as a token appears nowhere (output, state, export)."""
    token = "plet"  # as in "complete"
    shops = write_shops(tmp_path / "shops.txt", [*SHOPS[:3], "not a shop"])
    out = tmp_path / "items.jsonl"
    run = await run_cli(*harvest_args(sim, shops, out, "--verbose"), env=cli_env(token))
    assert run.code == ExitCode.SHOPS_FAILED, run.err
    assert "3 complete" in run.out
    assert "***" not in run.out
    assert "complete https://shop1.1688.com/" in run.err
    for text in (run.out, run.err):
        assert f"apiToken={token}" not in text
        assert f" {token} " not in text
    db = sqlite3.connect(tmp_path / "items.jsonl.state.db")
    dump = "\n".join(db.iterdump())
    db.close()
    assert not re.search(rf"\b{token}\b", dump)  # "complete" is in the schema
    assert token.encode() not in out.read_bytes()


# -- stopping -------------------------------------------------------------------------------


async def test_a_second_ctrl_c_quits_at_once(tmp_path: Path) -> None:
    """The first Ctrl-C waits for the requests in flight; when they hang, a second one
    quits at once (exit 130, no traceback) and the state stays usable."""
    arrived = asyncio.Event()
    never = asyncio.Event()

    async def hang(_record: RequestRecord) -> None:
        arrived.set()
        await never.wait()  # the answer never comes (until the simulator closes)

    async with SimulatedTmapi(shop_sizes=SIZES, on_request=hang) as server:
        shops = write_shops(tmp_path / "shops.txt", SHOPS)
        out = tmp_path / "items.jsonl"
        args = harvest_args(server, shops, out)
        args[args.index("--timeout") + 1] = "600"  # only the second Ctrl-C can end it
        proc = await start_cli(*args)
        await asyncio.wait_for(arrived.wait(), timeout=60)
        proc.send_signal(signal.SIGINT)
        assert proc.stderr is not None
        line = await asyncio.wait_for(proc.stderr.readline(), timeout=60)
        assert b"stopping" in line
        proc.send_signal(signal.SIGINT)
        run = await asyncio.wait_for(finish(proc), timeout=60)  # not the 600 s timeout
    assert run.code == ExitCode.SIGINT
    assert "stopped by SIGINT" in run.err
    assert "Traceback" not in run.err
    db = sqlite3.connect(tmp_path / "items.jsonl.state.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()


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


# -- options reach the API ------------------------------------------------------------------


async def test_listing_options_reach_every_request(sim: SimulatedTmapi, tmp_path: Path) -> None:
    """--page-size, --sort, --cat and --cat-type are what the API is asked for."""
    shops = write_shops(tmp_path / "shops.txt", SHOPS)
    out = tmp_path / "items.jsonl"
    extra = ["--page-size", "10", "--sort", "sales", "--cat", "12345", "--cat-type", "1"]
    run = await run_cli(*harvest_args(sim, shops, out, *extra))
    assert run.code == ExitCode.OK, run.err
    records = sim.log.records
    assert records
    assert {(r.page_size, r.sort, r.cat, r.cat_type) for r in records} == {
        (10, "sales", "12345", "1")
    }


async def test_state_option_is_the_journal_that_resumes(
    sim: SimulatedTmapi, tmp_path: Path
) -> None:
    """--state puts the journal where asked (not beside the export), and a rerun with
    the same --state resumes from it: nothing is requested again."""
    shops = write_shops(tmp_path / "shops.txt", SHOPS)
    out = tmp_path / "items.jsonl"
    state = tmp_path / "elsewhere" / "harvest.db"
    state.parent.mkdir()
    assert (await run_cli(*harvest_args(sim, shops, out, "--state", str(state)))).code == 0
    assert state.exists()
    assert not (tmp_path / "items.jsonl.state.db").exists()
    served = len(sim.log)
    run = await run_cli(*harvest_args(sim, shops, out, "--state", str(state)))
    assert run.code == ExitCode.OK, run.err
    assert len(sim.log) == served
    assert "already done before" in run.out


async def test_max_pages_bounds_each_shop(sim: SimulatedTmapi, tmp_path: Path) -> None:
    """--max-pages 2: a shop of 5 pages ends partial after 2 pages (exit 1, named in
    the failures file); shops within the bound are complete."""
    shops = write_shops(tmp_path / "shops.txt", [SHOPS[0], SHOPS[5]])  # 3 and 5 pages
    out = tmp_path / "items.jsonl"
    run = await run_cli(*harvest_args(sim, shops, out, "--max-pages", "3"))
    assert run.code == ExitCode.SHOPS_FAILED, run.err
    assert {p for s, p in sim.log.per_page() if s == "shop6"} == {1, 2, 3}
    assert f"partial: {SHOPS[5]}" in run.err
    failures = (tmp_path / "items.jsonl.failures.txt").read_text(encoding="utf-8")
    assert SHOPS[5] in failures.splitlines()
    assert SHOPS[0] not in failures.splitlines()
    run = await run_cli("estimate", str(shops), "--base-url", sim.url, "--max-pages", "3")
    assert run.code == ExitCode.OK
    assert "needs 6 requests" in run.out


# -- the command line itself ----------------------------------------------------------------


def test_exit_codes_are_the_contract_and_the_help_lists_them() -> None:
    """The numbers scripts rely on, each explained in --help."""
    assert {c.name: c.value for c in ExitCode} == {
        "OK": 0,
        "SHOPS_FAILED": 1,
        "USAGE": 2,
        "FATAL": 3,
        "SIGINT": 130,
        "SIGTERM": 143,
    }
    epilog = build_parser().epilog or ""
    for code in ExitCode:
        assert f"\n  {code.value} " in epilog


def test_every_command_is_registered_with_its_own_help_line() -> None:
    """--help lists each command with the line its module gives, without importing it;
    a run builds the options of the command it names only."""
    parser = build_parser()
    commands = parser._subparsers._group_actions[0]  # type: ignore[union-attr]
    assert [(a.dest, a.help) for a in commands._choices_actions] == list(COMMANDS)
    only = build_parser(["harvest", "--help"])._subparsers._group_actions[0]  # type: ignore[union-attr]
    assert only.choices["harvest"]._actions[1:]  # harvest has its options
    assert not only.choices["estimate"]._actions  # others are listed only


def test_sort_choices_are_the_library_sorts() -> None:
    """--sort offers exactly the orders of tm.Sort (written out for a quick --help)."""
    assert tuple(s.value for s in tm.Sort) == SORTS


def test_import_and_help_leave_heavy_libraries_unloaded() -> None:
    """``import tmapi_async`` and ``--help`` import no command; building every command's
    options imports no aiohttp, rich, pyarrow, msgspec or asyncio: --help stays quick."""
    heavy = "('aiohttp', 'rich', 'pyarrow', 'msgspec', 'asyncio', 'tmapi_async._client')"
    code = (
        "import sys, tmapi_async; from tmapi_async.cli import build_parser; "
        "build_parser(['--help']); print('tmapi_async.cli.harvest' in sys.modules); "
        f"build_parser(); print(sorted(m for m in {heavy} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "[]"]


def test_public_names_load_on_first_use() -> None:
    """Every name of __all__ resolves, lazily, to the object of its module."""
    from tmapi_async._client import Client

    assert tm.Client is Client
    for name in tm.__all__:
        assert getattr(tm, name) is not None
    with pytest.raises(AttributeError):
        _ = tm.NoSuchName  # type: ignore[attr-defined]


def test_type_checkers_see_every_lazy_name() -> None:
    """Each lazily loaded name is also imported under TYPE_CHECKING, from the module it
    loads from, so that type checkers and IDEs see the real objects."""
    tree = ast.parse(Path(tm.__file__).read_text(encoding="utf-8"))
    typed: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom)
                typed.update({a.name: f".{imp.module}" for a in imp.names})
    assert typed == tm._SOURCES
    assert set(tm.__all__) == {*tm._SOURCES, "__version__"}
