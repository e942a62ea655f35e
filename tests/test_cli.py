"""The ``tmapi-async`` command line, run as a subprocess against an in-process simulator.

Every exit code of the contract, the shop-list rules, the export formats, the budget
stop, fatal API errors, signals, and the token never leaving the process.
"""

from __future__ import annotations

import asyncio
import csv
import json
import signal
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import pytest_asyncio
from clirun import TOKEN, cli_env, finish, harvest_args, run_cli, start_cli

import tmapi_async
from tmapi_async.testing import RequestRecord, SimulatedTmapi

SIZES = {"shop1": 45, "shop2": 0, "shop3": 1, "shop4": 20, "shop5": 21, "shop6": 100}
SHOPS = [f"https://shop{i}.1688.com/" for i in range(1, 7)]


def write_shops(path: Path, lines: list[str]) -> Path:
    """A SHOPS file with these lines."""
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def read_rows(path: Path) -> list[tuple[str, str]]:
    """(shop_url, item_id) of every row of an export, in file order."""
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            return [(r["shop_url"], r["item_id"]) for r in csv.DictReader(f)]
    if path.suffix == ".parquet":
        table = pq.read_table(path, columns=["shop_url", "item_id"])
        return list(zip(*(c.to_pylist() for c in table.columns), strict=True))
    return [
        (row["shop_url"], row["item_id"])
        for row in map(json.loads, path.read_text(encoding="utf-8").splitlines())
    ]


def expected_rows(sim: SimulatedTmapi, shops: list[str]) -> set[tuple[str, str]]:
    """Every (shop_url, item_id) the simulator holds for these shops."""
    return {(s, item.item_id) for s in shops for item in sim.expected_items(s)}


def assert_exactly_once(rows: list[tuple[str, str]], expected: set[tuple[str, str]]) -> None:
    """Every expected row once, nothing else."""
    dupes = [row for row, n in Counter(rows).items() if n > 1]
    assert not dupes, f"duplicated rows: {dupes[:5]}"
    assert set(rows) == expected


def files_containing(directory: Path, secret: str) -> list[str]:
    """Names of the files in ``directory`` whose bytes contain ``secret``."""
    return sorted(p.name for p in directory.iterdir() if secret.encode() in p.read_bytes())


def pages_requested(records: list[RequestRecord]) -> Counter[tuple[str | None, int | None]]:
    """Requests per (shop name, page)."""
    return Counter((r.shop, r.page) for r in records)


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[SimulatedTmapi]:
    """A simulator with shops of the sizes in SIZES (pages of 20)."""
    async with SimulatedTmapi(shop_sizes=SIZES, default_shop_size=0) as server:
        yield server


# -- exit 0 -------------------------------------------------------------------------------


async def test_exit_0_every_item_once_and_each_page_once(
    sim: SimulatedTmapi, tmp_path: Path
) -> None:
    """All shops complete: exit 0, summary on stdout, each page requested once."""
    shops = write_shops(tmp_path / "shops.txt", ["# my shops", "", *SHOPS, "   "])
    out = tmp_path / "items.jsonl"
    run = await run_cli(*harvest_args(sim, shops, out))
    assert run.code == 0, run.err
    assert_exactly_once(read_rows(out), expected_rows(sim, SHOPS))
    assert set(pages_requested(sim.log.records).values()) == {1}
    assert len(sim.log) == 1 + 3 + 1 + 1 + 2 + 5  # pages of 45, 0, 1, 20, 21, 100 items
    assert "6 complete" in run.out
    assert "187 new this run" in run.out
    assert "13 billed for 13 pages" in run.out
    assert not (tmp_path / "items.jsonl.failures.txt").exists()
    assert (tmp_path / "items.jsonl.state.db").exists()


async def test_rerun_of_a_finished_harvest_sends_nothing(
    sim: SimulatedTmapi, tmp_path: Path
) -> None:
    """A plain rerun resumes from the state beside the output: complete shops are skipped."""
    shops = write_shops(tmp_path / "shops.txt", SHOPS)
    out = tmp_path / "items.jsonl"
    assert (await run_cli(*harvest_args(sim, shops, out))).code == 0
    served = len(sim.log)
    run = await run_cli(*harvest_args(sim, shops, out))
    assert run.code == 0, run.err
    assert len(sim.log) == served
    assert "already done before" in run.out
    assert_exactly_once(read_rows(out), expected_rows(sim, SHOPS))


async def test_shops_from_stdin(sim: SimulatedTmapi, tmp_path: Path) -> None:
    """``-`` reads the shop list from standard input."""
    out = tmp_path / "items.jsonl"
    run = await run_cli(
        *harvest_args(sim, Path("-"), out), stdin="".join(f"{s}\n" for s in SHOPS[:2]).encode()
    )
    assert run.code == 0, run.err
    assert_exactly_once(read_rows(out), expected_rows(sim, SHOPS[:2]))


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
async def test_every_format_reads_back(sim: SimulatedTmapi, tmp_path: Path, fmt: str) -> None:
    """JSON Lines, CSV and Parquet all hold every item once, with its shop."""
    shops = write_shops(tmp_path / "shops.txt", SHOPS)
    out = tmp_path / f"items.{fmt}"
    run = await run_cli(*harvest_args(sim, shops, out, "--format", fmt))
    assert run.code == 0, run.err
    assert_exactly_once(read_rows(out), expected_rows(sim, SHOPS))


async def test_format_follows_the_extension(sim: SimulatedTmapi, tmp_path: Path) -> None:
    """Without --format, ``.csv`` gives CSV."""
    shops = write_shops(tmp_path / "shops.txt", SHOPS[:1])
    out = tmp_path / "items.csv"
    assert (await run_cli(*harvest_args(sim, shops, out))).code == 0
    assert out.read_text(encoding="utf-8").startswith("item_id,title,img,")


# -- exit 1 -------------------------------------------------------------------------------


async def test_exit_1_bad_lines_are_named_and_the_rest_harvested(
    sim: SimulatedTmapi, tmp_path: Path
) -> None:
    """Invalid lines: named with their line number, quoted, listed in the failures file."""
    lines = [
        "# shops",
        SHOPS[0],
        "not a url",
        "https://www.1688.com/",
        SHOPS[1],
        "  https://SHOP1.1688.com/page/offerlist.htm  ",  # the same shop as line 2
        SHOPS[0],
    ]
    shops = write_shops(tmp_path / "shops.txt", lines)
    out = tmp_path / "items.jsonl"
    run = await run_cli(*harvest_args(sim, shops, out))
    assert run.code == 1, run.err
    assert "line 3 'not a url'" in run.err
    assert "line 4 'https://www.1688.com/'" in run.err
    assert "2 shops failed" in run.err
    assert "Traceback" not in run.err
    assert_exactly_once(read_rows(out), expected_rows(sim, SHOPS[:2]))
    assert len(sim.log.requests_for("shop1")) == 3  # harvested once despite 3 lines
    assert "2 duplicate lines skipped" in run.out
    failures = (tmp_path / "items.jsonl.failures.txt").read_text(encoding="utf-8")
    listed = [x for x in failures.splitlines() if x and not x.startswith("#")]
    assert listed == ["not a url", "https://www.1688.com/"]
    assert "invalid shop URL" in failures


async def test_failures_file_is_removed_once_nothing_fails(
    sim: SimulatedTmapi, tmp_path: Path
) -> None:
    """A stale failures file from an earlier run does not outlive a clean run."""
    out = tmp_path / "items.jsonl"
    shops = write_shops(tmp_path / "shops.txt", [SHOPS[2], "bad line"])
    assert (await run_cli(*harvest_args(sim, shops, out))).code == 1
    assert (tmp_path / "items.jsonl.failures.txt").exists()
    write_shops(shops, [SHOPS[2]])
    assert (await run_cli(*harvest_args(sim, shops, out))).code == 0
    assert not (tmp_path / "items.jsonl.failures.txt").exists()


# -- exit 2 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--nope"], "unrecognized arguments: --nope"),
        (["--page-size", "0"], "must be at least 1"),
        (["--cat-type", "3"], "invalid choice: '3'"),
        (["--sort", "cheap"], "invalid choice: 'cheap'"),
        (["--rate", "fast"], "expected a number"),
        (["--format", "xml"], "invalid choice: 'xml'"),
    ],
)
async def test_exit_2_bad_flags(tmp_path: Path, extra: list[str], message: str) -> None:
    """A bad flag: usage on stderr, exit 2, nothing sent or written."""
    shops = write_shops(tmp_path / "shops.txt", SHOPS)
    run = await run_cli("harvest", str(shops), "--output", str(tmp_path / "o.jsonl"), *extra)
    assert run.code == 2
    assert message in run.err
    assert "Traceback" not in run.err
    assert not (tmp_path / "o.jsonl").exists()


async def test_exit_2_missing_output_and_no_command(tmp_path: Path) -> None:
    """``--output`` is required; so is a command."""
    assert (await run_cli("harvest", "shops.txt")).code == 2
    assert (await run_cli()).code == 2


async def test_exit_2_unreadable_shops_file(tmp_path: Path) -> None:
    """A SHOPS file that does not exist or is a directory is a usage error."""
    run = await run_cli("harvest", str(tmp_path / "nope.txt"), "-o", str(tmp_path / "o.jsonl"))
    assert run.code == 2
    assert "cannot read SHOPS" in run.err
    assert "No such file" in run.err
    run = await run_cli("harvest", str(tmp_path), "-o", str(tmp_path / "o.jsonl"))
    assert run.code == 2
    assert "is a directory" in run.err
    assert "Traceback" not in run.err


async def test_exit_2_no_token(tmp_path: Path) -> None:
    """No --token and no TMAPI_TOKEN: say how to give one."""
    shops = write_shops(tmp_path / "shops.txt", SHOPS)
    run = await run_cli("harvest", str(shops), "-o", str(tmp_path / "o.jsonl"), env=cli_env(None))
    assert run.code == 2
    assert "TMAPI_TOKEN" in run.err


async def test_exit_2_output_directory_missing(tmp_path: Path) -> None:
    """The export's directory must exist."""
    shops = write_shops(tmp_path / "shops.txt", SHOPS)
    run = await run_cli("harvest", str(shops), "-o", str(tmp_path / "no" / "o.jsonl"))
    assert run.code == 2
    assert "does not exist" in run.err


async def test_exit_2_rerun_with_other_parameters(sim: SimulatedTmapi, tmp_path: Path) -> None:
    """Resuming with another sort or format would corrupt the export: refused."""
    shops = write_shops(tmp_path / "shops.txt", SHOPS[:1])
    out = tmp_path / "items.jsonl"
    assert (await run_cli(*harvest_args(sim, shops, out))).code == 0
    run = await run_cli(*harvest_args(sim, shops, out, "--sort", "sales"))
    assert run.code == 2
    assert "--sort" in run.err
    run = await run_cli(*harvest_args(sim, shops, out, "--format", "csv"))
    assert run.code == 2
    assert "--format jsonl" in run.err


async def test_exit_2_existing_export_is_not_overwritten(tmp_path: Path) -> None:
    """An export with no state is someone's file: not overwritten."""
    shops = write_shops(tmp_path / "shops.txt", SHOPS)
    out = tmp_path / "items.jsonl"
    out.write_text("keep me\n")
    run = await run_cli("harvest", str(shops), "-o", str(out), "--base-url", "http://127.0.0.1:9")
    assert run.code == 2
    assert "already exists" in run.err
    assert out.read_text() == "keep me\n"


# -- exit 3 -------------------------------------------------------------------------------


async def test_exit_3_bad_token_quotes_the_api(tmp_path: Path) -> None:
    """401: stop at once, say it is the token, quote the API's message."""
    async with SimulatedTmapi(tokens={"the-right-token"}, shop_sizes=SIZES) as server:
        shops = write_shops(tmp_path / "shops.txt", SHOPS)
        run = await run_cli(*harvest_args(server, shops, tmp_path / "o.jsonl"))
        assert run.code == 3
        assert "the API refused the token" in run.err
        assert "Token is not authorized or has expired" in run.err
        assert "rerun the same command to resume" in run.err
        assert len(server.log) <= 4  # only what was in flight; nothing after the 401
        assert TOKEN not in run.err + run.out


async def test_exit_3_balance_then_resume(tmp_path: Path) -> None:
    """439 stops the run (exit 3, message quoted); after a top-up the rerun finishes."""
    async with SimulatedTmapi(quota=5, shop_sizes=SIZES, default_shop_size=0) as server:
        shops = write_shops(tmp_path / "shops.txt", SHOPS)
        out = tmp_path / "items.jsonl"
        run = await run_cli(*harvest_args(server, shops, out, "--concurrency", "1"))
        assert run.code == 3
        assert "balance" in run.err
        assert "Subscription expired or insufficient balance" in run.err
        first = [r for r in server.log.records if r.outcome == "ok"]
        assert len(first) == 5
        server.configure(quota=None)
        run = await run_cli(*harvest_args(server, shops, out))
        assert run.code == 0, run.err
        assert_exactly_once(read_rows(out), expected_rows(server, SHOPS))
        ok = pages_requested([r for r in server.log.records if r.outcome == "ok"])
        assert set(ok.values()) == {1}  # no page paid for twice


async def test_exit_3_budget_then_rerun_finishes(sim: SimulatedTmapi, tmp_path: Path) -> None:
    """--max-requests stops cleanly at N billed requests; a rerun goes on from there."""
    shops = write_shops(tmp_path / "shops.txt", SHOPS)
    out = tmp_path / "items.jsonl"
    run = await run_cli(*harvest_args(sim, shops, out, "--max-requests", "7"))
    assert run.code == 3
    assert "--max-requests 7 spent" in run.err
    assert len(sim.log) == 7
    run = await run_cli(*harvest_args(sim, shops, out, "--max-requests", "100"))
    assert run.code == 0, run.err
    assert_exactly_once(read_rows(out), expected_rows(sim, SHOPS))
    assert set(pages_requested(sim.log.records).values()) == {1}
    assert len(sim.log) == 13


# -- signals ------------------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
async def test_signal_stops_gracefully_and_rerun_resumes(
    tmp_path: Path, signum: int, code: int
) -> None:
    """Ctrl-C / SIGTERM: answers in flight are kept, exit 128+N, a rerun finishes the job
    without asking again for any page already answered."""
    proc: asyncio.subprocess.Process | None = None
    seen = 0

    async def on_request(_record: RequestRecord) -> None:
        nonlocal seen
        seen += 1
        if seen == 15 and proc is not None:
            proc.send_signal(signum)

    sizes = {f"shop{i}": 60 for i in range(1, 21)}
    names = [f"https://shop{i}.1688.com/" for i in range(1, 21)]
    async with SimulatedTmapi(shop_sizes=sizes, on_request=on_request) as server:
        shops = write_shops(tmp_path / "shops.txt", names)
        out = tmp_path / "items.jsonl"
        proc = await start_cli(*harvest_args(server, shops, out))
        run = await finish(proc)
        assert run.code == code, run.err
        assert "stopping" in run.err
        assert f"stopped by {signal.Signals(signum).name}" in run.err
        assert "Traceback" not in run.err
        first_ok = {(r.shop, r.page) for r in server.log.records if r.outcome == "ok"}
        assert 15 <= len(server.log) < 80  # stopped well before the 80 pages
        proc = None
        server.log.reset()
        run = await run_cli(*harvest_args(server, shops, out))
        assert run.code == 0, run.err
        again = set(pages_requested(server.log.records))
        assert not first_ok & again, "a page answered before the stop was bought again"
        assert_exactly_once(read_rows(out), expected_rows(server, names))


# -- the token stays secret ---------------------------------------------------------------


async def test_token_never_printed_or_stored(sim: SimulatedTmapi, tmp_path: Path) -> None:
    """Not in stdout or stderr (even --verbose, even with failures), state, exports."""
    shops = write_shops(tmp_path / "shops.txt", [*SHOPS, "bad line", f"x{TOKEN}"])
    out = tmp_path / "items.csv"
    runs = [
        await run_cli(*harvest_args(sim, shops, out, "--verbose", "--token", TOKEN)),
        await run_cli(*harvest_args(sim, shops, out, "--verbose", f"--token={TOKEN}")),
        await run_cli("harvest", str(shops), "-o", str(out), "--tokn", TOKEN),
        await run_cli(
            *harvest_args(sim, shops, tmp_path / "e.jsonl", "--verbose"), "--max-requests", "2"
        ),
        await run_cli("estimate", str(shops), "--base-url", sim.url, "--token", TOKEN, "-v"),
    ]
    assert [r.code for r in runs] == [1, 1, 2, 3, 1]
    assert "complete https://shop1.1688.com/" in runs[0].err  # --verbose names shops
    for run in runs:
        assert TOKEN not in run.out
        assert TOKEN not in run.err
    assert files_containing(tmp_path, TOKEN) == ["shops.txt"]
    db = sqlite3.connect(tmp_path / "items.csv.state.db")
    dump = "\n".join(db.iterdump())
    db.close()
    assert TOKEN not in dump


# -- estimate -----------------------------------------------------------------------------


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


# -- help, version, simulate --------------------------------------------------------------


async def test_help_teaches_and_version() -> None:
    """--help has examples and exit codes; --version prints the version."""
    run = await run_cli("--help")
    assert run.code == 0
    assert "examples:" in run.out
    assert "tmapi-async demo" in run.out
    run = await run_cli("harvest", "--help")
    assert run.code == 0
    for flag in ("--output", "--format", "--state", "--max-requests", "--cat-type", "--quiet"):
        assert flag in run.out
    assert "exit codes" in run.out
    run = await run_cli("--version")
    assert run.code == 0
    assert run.out.strip() == f"tmapi-async {tmapi_async.__version__}"


async def test_simulate_subcommand_prints_its_url_first(tmp_path: Path) -> None:
    """``tmapi-async simulate`` serves until SIGTERM and prints its URL on line 1."""
    proc = await start_cli("simulate", "--port", "0")
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    assert line.decode().startswith("http://127.0.0.1:")
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), timeout=30) == 0


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


async def test_a_fatal_error_ends_the_run_while_stdin_is_still_open(tmp_path: Path) -> None:
    """A shop list piped from a producer that never ends does not keep a stopped run alive."""
    async with SimulatedTmapi(tokens={"the-right-token"}) as server:
        proc = await start_cli(*harvest_args(server, Path("-"), tmp_path / "o.jsonl"), stdin=True)
        assert proc.stdin is not None
        proc.stdin.write(f"{SHOPS[0]}\n".encode())
        await proc.stdin.drain()  # and the pipe stays open: no EOF
        code = await asyncio.wait_for(proc.wait(), timeout=60)
        proc.stdin.close()
    assert code == 3
