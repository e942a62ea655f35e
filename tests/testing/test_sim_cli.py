"""The command line: URL alone on the first line, serves, exits 0 on SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys

import aiohttp
import pytest

from tmapi_async.testing import FaultKind
from tmapi_async.testing._cli import build_config, configure_parser


async def _start(*flags: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tmapi_async.testing",
        *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    return proc, line.decode()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_cli_prints_url_serves_and_exits_zero(sig: signal.Signals) -> None:
    """The simulator command prints its URL first, serves with the given flags, exits 0 on the
    signal, never echoes the token."""
    proc, line = await _start("--shop", "abc=30", "--token", "T0k", "--page-size-max", "10")
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+\n", line)
        url = line.strip() + "/1688/shop/items/v2"
        async with aiohttp.ClientSession() as session:
            params = {"apiToken": "T0k", "shop_url": "https://abc.1688.com/", "page_size": "20"}
            async with session.get(url, params=params) as resp:
                assert resp.status == 200
                data = (await resp.json())["data"]
                assert (data["total_count"], data["page_size"], len(data["items"])) == (30, 10, 10)
            params["apiToken"] = "wrong"
            async with session.get(url, params=params) as resp:
                assert resp.status == 401
    finally:
        proc.send_signal(sig)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err
    assert b"T0k" not in err  # the token is never echoed


async def test_cli_refuses_a_non_loopback_host() -> None:
    """A host other than loopback is refused with exit 2 before anything is served."""
    proc, line = await _start("--host", "0.0.0.0")
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert line == ""
    assert proc.returncode == 2
    assert b"non-loopback" in err


async def test_cli_help_teaches() -> None:
    """--help names the fault, drift and shop flags, and has examples."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tmapi_async.testing", "--help", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0
    for word in (b"--fault-rate", b"--drift", b"--shops", b"reset", b"first line", b"examples"):
        assert word in out


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    return parser.parse_args(argv)


def test_flags_build_the_config(tmp_path: object) -> None:
    """Every flag reaches the simulator's config; no flag gives the documented defaults."""
    args = _parse(
        "--shops", "3", "--items-per-shop", "20..40", "--shop", "big=500",
        "--fault-rate", "0.25", "--faults", "status,hang", "--fault-codes", "417,500",
        "--latency-ms", "5..10", "--concurrency-limit", "4", "--rate-limit", "9",
        "--retry-after", "--quota", "77", "--token", "a", "--token", "b", "--seed", "3",
        "--drift", "3:2:40", "--page-size-max", "50", "--hang-seconds", "2",
    )  # fmt: skip
    config = build_config(args)
    assert 20 <= config.shop_size("shop3") <= 40
    assert config.shop_size("shop4") == 0
    assert config.shop_size("elsewhere") == 0
    assert config.shop_size("big") == 500
    assert config.fault_kinds == (FaultKind.STATUS, FaultKind.HANG)
    assert (config.fault_rate, config.fault_codes, config.latency_ms) == (0.25, (417, 500), (5, 10))
    assert (config.concurrency_limit, config.rate_limit, config.quota) == (4, 9, 77)
    assert config.retry_after
    assert config.tokens == frozenset({"a", "b"})
    assert (config.drift_every, config.drift_items, config.drift_max) == (3, 2, 40)
    assert (config.seed, config.page_size_max, config.hang_seconds) == (3, 50, 2.0)

    defaults = build_config(_parse())
    assert defaults.shop_size("anything") == 100
    assert defaults.tokens is None
    assert defaults.fault_rate == 0
    assert defaults.drift_every == 0
    assert build_config(_parse("--drift", "5")).drift_items == 1


@pytest.mark.parametrize(
    "flags",
    [["--faults", "nope"], ["--latency-ms", "9..1"], ["--drift", "x"], ["--fault-rate", "2"]],
)
def test_bad_flags_are_rejected(flags: list[str]) -> None:
    """A malformed flag value is a usage error."""
    with pytest.raises(SystemExit):
        _parse(*flags)
