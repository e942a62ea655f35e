"""How many pages/s the TMAPI simulator serves (it must never be a crawler's bottleneck).

Run: ``python -m benchmarks.bench_simulator [--seconds 5] [--concurrency 64] [--in-process]``

The simulator runs in a separate process through its CLI (as a demo or a benchmark of the
client would use it); this process hammers it with one aiohttp session over keep-alive
connections, fetching every page of many shops in turn. ``--in-process`` instead serves from
this process's own event loop (client and server then share one core: a lower bound).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import sys
import time
from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import yarl

from tmapi_async.testing import SimulatedTmapi, SimulatorConfig, sizes_between

SHOPS = 200
SIZES = (100, 1000)
PAGE_SIZE = 20


def _cpu_seconds(pid: int) -> float:
    """User+system CPU time of process ``pid`` (Linux /proc), or 0.0 where unavailable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


@contextlib.asynccontextmanager
async def _subprocess_server(prebuild: bool) -> AsyncIterator[tuple[str, int]]:
    cmd = [
        sys.executable,
        "-m",
        "tmapi_async.testing",
        "--shops",
        str(SHOPS),
        "--items-per-shop",
        f"{SIZES[0]}..{SIZES[1]}",
        "--log-max",
        "10000",
        *([] if prebuild else ["--no-prebuild"]),
    ]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        url = (await proc.stdout.readline()).decode()
        if not url.startswith("http://"):
            raise RuntimeError(f"simulator did not start: {url!r}")
        yield url.strip(), proc.pid
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


@contextlib.asynccontextmanager
async def _in_process_server(prebuild: bool) -> AsyncIterator[tuple[str, int]]:
    config = SimulatorConfig(size_fn=sizes_between(*SIZES), log_max_records=10_000)
    async with SimulatedTmapi(config) as sim:
        if prebuild:
            sim.prebuild(f"shop{i}" for i in range(1, SHOPS + 1))
        yield sim.url, os.getpid()


def _requests() -> list[tuple[str, int]]:
    size = sizes_between(*SIZES)
    reqs: list[tuple[str, int]] = []
    for i in range(1, SHOPS + 1):
        pages = -(-size(f"shop{i}") // PAGE_SIZE)
        reqs.extend((f"https://shop{i}.1688.com", p) for p in range(1, pages + 1))
    return reqs


async def _hammer(
    url: str, seconds: float, concurrency: int, once: bool = False
) -> tuple[int, int, float]:
    """Fetch pages for ``seconds`` (cycling over all pages), or each page once if ``once``."""
    # URLs built once, so the client (often the real bottleneck here) spends its time on HTTP.
    urls = [
        yarl.URL(
            f"{url}/1688/shop/items/v2?apiToken=bench&shop_url={quote(shop, safe='')}&page={p}",
            encoded=True,
        )
        for shop, p in _requests()
    ]
    reqs = iter(urls) if once else itertools.cycle(urls)
    pages = errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal pages, errors
            while once or time.perf_counter() < deadline:
                try:
                    page_url = next(reqs)
                except StopIteration:
                    return
                async with session.get(page_url) as resp:
                    await resp.read()
                    if resp.status == 200:
                        pages += 1
                    else:
                        errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return pages, errors, elapsed


async def _main(args: argparse.Namespace) -> None:
    prebuild = not args.no_prebuild
    server = _in_process_server(prebuild) if args.in_process else _subprocess_server(prebuild)
    where = "in-process" if args.in_process else "separate process"
    async with server as (url, pid):
        # First pass: every page of every shop once, as a crawl does (catalogues prebuilt
        # unless --no-prebuild, as the CLI does with --shops); then the same pages again and
        # again for --seconds.
        first = "first pass" + ("" if prebuild else ", catalogues built on the fly")
        for phase, seconds, once in ((first, 0.0, True), ("repeat", args.seconds, False)):
            cpu = _cpu_seconds(pid)
            pages, errors, elapsed = await _hammer(url, seconds, args.concurrency, once)
            cpu = _cpu_seconds(pid) - cpu
            per_cpu = "" if args.in_process or not cpu else f", {pages / cpu:,.0f} per CPU-second"
            print(
                f"simulator ({where}, {phase}): {pages / elapsed:,.0f} pages/s "
                f"({pages} pages, {errors} errors, {elapsed:.1f} s, {args.concurrency} "
                f"concurrent; server CPU {cpu / elapsed:.0%}{per_cpu})",
                flush=True,
            )


def main() -> None:
    """Parse flags and run the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_simulator")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured duration (5)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (64)")
    parser.add_argument("--in-process", action="store_true", help="serve from this process")
    parser.add_argument(
        "--no-prebuild", action="store_true", help="build catalogues during the first pass"
    )
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
