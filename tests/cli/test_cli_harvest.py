"""``tmapi-async harvest``, run as a subprocess against an in-process simulator.

Every exit code of the contract, the shop-list rules, the export formats, the budget
stop, fatal API errors, signals, resuming, and the options that must reach the API.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
from pathlib import Path

import pytest
from clirun import TOKEN, finish, harvest_args, run_cli, start_cli
from clishops import (
    SHOPS,
    SIZES,
    assert_exactly_once,
    expected_rows,
    pages_requested,
    read_rows,
    write_shops,
)

from tmapi_async.cli import ExitCode, main
from tmapi_async.testing import RequestRecord, SimulatedTmapi

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


# -- through Redis -------------------------------------------------------------------


def test_harvest_redis_alone_needs_the_variable(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """harvest --redis without a URL and without TMAPI_REDIS_URL is a usage error saying where the
    URL comes from."""
    monkeypatch.setenv("TMAPI_TOKEN", TOKEN)
    monkeypatch.delenv("TMAPI_REDIS_URL", raising=False)
    output = f"{tmp_path}/items.jsonl"
    assert main(["harvest", "-", "--output", output, "--redis"]) == 2
    assert "--redis without a URL takes $TMAPI_REDIS_URL" in capsys.readouterr().err
