"""The API key on the command line: how it is sent and that it is never shown.

``harvest --auth``: against a server that takes the key one way only, ``auto`` finds
the way at the cost of at most one refused request per key (counted at the server);
``--auth header`` never puts ``apiToken`` in a URL; a key refused both ways exits 3
after exactly two requests, naming both ways and not the key. No token: a usage error
saying how to give one. The token is in no output, state or export, even when it is
a short piece of ordinary words."""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from pathlib import Path

import clishops
import pytest
from clirun import TOKEN, cli_env, harvest_args, run_cli

from tmapi_async.cli import ExitCode
from tmapi_async.testing import SimulatedTmapi

KEY = "key-SECRET-6c2a91"  # distinctive: a leak is found by a plain search
A, B = "keyA-SECRET-0d4f7e", "keyB-SECRET-93b1c8"
SHOPS = [f"https://authcli{i}.1688.com/" for i in range(16)]


def sim_of(auth: str, **knobs: object) -> SimulatedTmapi:
    """Shops of 50 items (3 pages), a little latency so that requests overlap."""
    settings: dict[str, object] = {"default_shop_size": 50, "latency_ms": (2.0, 6.0)}
    return SimulatedTmapi(auth=auth, **(settings | knobs))  # type: ignore[arg-type]


def write_shops(path: Path) -> Path:
    path.write_text("".join(f"{shop}\n" for shop in SHOPS), encoding="utf-8")
    return path


def exported(path: Path) -> Counter[tuple[str, str]]:
    rows = map(json.loads, path.read_text(encoding="utf-8").splitlines())
    return Counter((row["shop_url"], row["item_id"]) for row in rows)


def expected(sim: SimulatedTmapi) -> Counter[tuple[str, str]]:
    return Counter((shop, item.item_id) for shop in SHOPS for item in sim.expected_items(shop))


def billed(out: str) -> int:
    """The requests the summary says were billed."""
    found = re.search(r"requests: ([\d,]+) billed", out)
    assert found is not None, out
    return int(found.group(1).replace(",", ""))


def assert_no_key_anywhere(keys: tuple[str, ...], texts: list[str], directory: Path) -> None:
    """No key in the output, nor in any file the harvest wrote (export, state, manifest)."""
    files = [p for p in directory.iterdir() if p.name != "shops.txt"]
    for key in keys:
        assert all(key not in text for text in texts)
        for path in files:
            assert key.encode() not in path.read_bytes(), path.name


@pytest.mark.parametrize("accepted", ["header", "query"])
async def test_auto_harvests_every_item_once_whichever_way_the_key_is_taken(
    tmp_path: Path, accepted: str
) -> None:
    """16 shops, 4 in flight, a server taking the key only as ``accepted``: exit 0,
    every item once, at most one refused request (none when the header is taken), and
    the summary counts the refused one with the others."""
    async with sim_of(accepted) as sim:
        shops, out = write_shops(tmp_path / "shops.txt"), tmp_path / "items.jsonl"
        run = await run_cli(*harvest_args(sim, shops, out), env=cli_env(KEY))
        assert run.code == 0, run.err
        assert exported(out) == expected(sim)
        refused = sim.log.refused(KEY)
        assert refused == (1 if accepted == "query" else 0)
        assert sim.log.count_by_auth()[accepted] == len(sim.log) - refused
        assert billed(run.out) == len(sim.log)
        assert_no_key_anywhere((KEY,), [run.out, run.err], tmp_path)


async def test_auto_with_two_keys_costs_at_most_one_refusal_per_key(tmp_path: Path) -> None:
    """A pool of two keys on a server that takes only the query: each key is refused
    once at most (as the header), every item comes once."""
    async with sim_of("query") as sim:
        shops, out = write_shops(tmp_path / "shops.txt"), tmp_path / "items.jsonl"
        args = [*harvest_args(sim, shops, out), "--token", A, "--token", B]
        run = await run_cli(*args, env=cli_env(None))
        assert run.code == 0, run.err
        assert exported(out) == expected(sim)
        for key in (A, B):
            assert sim.log.refused(key) <= 1
        assert sim.log.refused() == sim.log.count_by_auth()["header"]
        assert billed(run.out) == len(sim.log)
        assert_no_key_anywhere((A, B), [run.out, run.err], tmp_path)


@pytest.mark.parametrize(
    ("flag", "env", "sent"),
    [(["--auth", "header"], None, "header"), ([], "query", "query")],
    ids=["flag-header", "env-query"],
)
async def test_a_fixed_auth_sends_only_that_way(
    tmp_path: Path, flag: list[str], env: str | None, sent: str
) -> None:
    """``--auth header``: no request carries apiToken in its URL (the server logs how
    each key came). ``TMAPI_AUTH=query``: none carries the header."""
    async with sim_of("both") as sim:
        shops, out = write_shops(tmp_path / "shops.txt"), tmp_path / "items.jsonl"
        environment = cli_env(KEY)
        if env is not None:
            environment["TMAPI_AUTH"] = env
        run = await run_cli(*harvest_args(sim, shops, out), *flag, env=environment)
        assert run.code == 0, run.err
        assert exported(out) == expected(sim)
        assert sim.log.count_by_auth() == Counter({sent: len(sim.log)})


async def test_a_key_refused_both_ways_exits_3_after_two_requests(tmp_path: Path) -> None:
    """The server knows another key only: exit 3, exactly two requests (the header,
    then the query), a message naming both ways and not the key."""
    async with sim_of("both", tokens={"another-key"}) as sim:
        shops, out = write_shops(tmp_path / "shops.txt"), tmp_path / "items.jsonl"
        run = await run_cli(*harvest_args(sim, shops, out), env=cli_env(KEY))
        assert run.code == 3, run.err
        assert [r.auth for r in sim.log.records] == ["header", "query"]
        assert sim.log.refused(KEY) == 2
        assert "the API refused the token" in run.err
        assert "`apikey` header" in run.err
        assert "`apiToken` query parameter" in run.err
        assert "rerun the same command to resume" in run.err
        assert billed(run.out) == 2
        assert_no_key_anywhere((KEY,), [run.out, run.err], tmp_path)


@pytest.mark.parametrize(
    ("flag", "env"), [(["--auth", "apikey"], None), ([], "bearer")], ids=["flag", "env"]
)
async def test_an_invalid_auth_is_a_usage_error_naming_the_values(
    tmp_path: Path, flag: list[str], env: str | None
) -> None:
    """Exit 2 before anything is sent; the message names auto, header and query."""
    async with sim_of("both") as sim:
        shops, out = write_shops(tmp_path / "shops.txt"), tmp_path / "items.jsonl"
        environment = cli_env(KEY)
        if env is not None:
            environment["TMAPI_AUTH"] = env
        run = await run_cli(*harvest_args(sim, shops, out), *flag, env=environment)
        assert run.code == 2
        assert "auto" in run.err
        assert "header" in run.err
        assert "query" in run.err
        assert len(sim.log) == 0


# -- no token; the token stays secret -----------------------------------------------------


async def test_exit_2_no_token(tmp_path: Path) -> None:
    """No --token and no TMAPI_TOKEN: say how to give one."""
    shops = clishops.write_shops(tmp_path / "shops.txt", clishops.SHOPS)
    run = await run_cli("harvest", str(shops), "-o", str(tmp_path / "o.jsonl"), env=cli_env(None))
    assert run.code == 2
    assert "TMAPI_TOKEN" in run.err


async def test_token_never_printed_or_stored(sim: SimulatedTmapi, tmp_path: Path) -> None:
    """Not in stdout or stderr (even --verbose, even with failures), state, exports."""
    shops = clishops.write_shops(tmp_path / "shops.txt", [*clishops.SHOPS, "bad line", f"x{TOKEN}"])
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
    assert clishops.files_containing(tmp_path, TOKEN) == ["shops.txt"]
    db = sqlite3.connect(tmp_path / "items.csv.state.db")
    dump = "\n".join(db.iterdump())
    db.close()
    assert TOKEN not in dump


async def test_a_short_token_does_not_mangle_the_summary(
    sim: SimulatedTmapi, tmp_path: Path
) -> None:
    """A 4-letter test token that is also part of ordinary words: the summary reads as
    usual, and the token as a token appears nowhere (output, state, export)."""
    token = "plet"  # as in "complete"
    shops = clishops.write_shops(tmp_path / "shops.txt", [*clishops.SHOPS[:3], "not a shop"])
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
