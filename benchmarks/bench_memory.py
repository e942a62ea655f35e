"""Peak RSS of a streaming harvest against the number of items harvested.

``python -m benchmarks.bench_memory`` starts the simulator in a separate process, then
harvests at least 200,000 items into JSON Lines in *this* process, through the same
path as ``tmapi-async harvest`` (Client + SQLite journal + sink, ``keep_items=False``).
It samples this process's RSS while it runs and prints, at 50k, 100k, 150k, 200k...
items, the RSS then and the peak so far (``ru_maxrss``). The harvest passes when the
peak stays under 150 MB and RSS does not grow with items (last mark vs first: < 15 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]

import tmapi_async as tm
from tmapi_async.export import ExportJournal, default_state_path

LIMIT_MB = 150.0
GROWTH_MB = 15.0
PARAMS = {"page_size": 20, "sort": "default", "cat": None, "cat_type": None}


def _mb(n_bytes: float) -> float:
    return n_bytes / (1024 * 1024)


def _peak_mb() -> float:
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return _mb(peak if sys.platform == "darwin" else peak * 1024)


def _start_simulator(items_per_shop: int) -> tuple[subprocess.Popen[str], str]:
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tmapi_async.testing",
            "--port",
            "0",
            "--items-per-shop",
            str(items_per_shop),
            "--log-max",
            "1000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://"):
        proc.kill()
        raise SystemExit("the simulator did not start")
    return proc, url


async def _harvest(
    url: str, shops: int, marks: list[int], out: Path, rate: float
) -> list[dict[str, float]]:
    process = psutil.Process()
    rows: list[dict[str, float]] = []
    pending = list(marks)
    urls = (f"https://memshop{i}.1688.com/" for i in range(1, shops + 1))
    journal = ExportJournal.open(default_state_path(out), out, "jsonl", params=PARAMS, base_url=url)
    start = time.perf_counter()
    with journal:
        async with tm.Client("bench-token", base_url=url, rate=rate, concurrency=32) as client:
            harvest = client.harvest(urls, journal=journal, keep_items=False)

            async def sample() -> None:
                while True:
                    items = harvest.progress.items
                    while pending and items >= pending[0]:
                        rows.append(
                            {
                                "items": float(pending.pop(0)),
                                "rss_mb": _mb(process.memory_info().rss),
                                "peak_mb": _peak_mb(),
                                "seconds": time.perf_counter() - start,
                            }
                        )
                    await asyncio.sleep(0.05)

            sampler = asyncio.create_task(sample())
            try:
                async for result in harvest:
                    if result.status != "complete":
                        raise SystemExit(f"{result.shop_url}: {result.status} ({result.error})")
            finally:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            if not rows or harvest.progress.items > rows[-1]["items"]:
                rows.append(
                    {
                        "items": float(harvest.progress.items),
                        "rss_mb": _mb(process.memory_info().rss),
                        "peak_mb": _peak_mb(),
                        "seconds": time.perf_counter() - start,
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 0 when within bounds, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_memory", description=__doc__)
    parser.add_argument("--items", type=int, default=250_000, help="items to harvest (250000)")
    parser.add_argument("--items-per-shop", type=int, default=1000, help="shop size (1000)")
    parser.add_argument("--rate", type=float, default=5000.0, help="requests/s (5000)")
    args = parser.parse_args(argv)
    shops = -(-args.items // args.items_per_shop)
    marks = list(range(50_000, args.items + 1, 50_000))
    sim, url = _start_simulator(args.items_per_shop)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "items.jsonl"
            rows = asyncio.run(_harvest(url, shops, marks, out, args.rate))
            size = out.stat().st_size
            with open(out, "rb") as f:
                lines = sum(1 for _ in f)
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    print(
        f"harvest of {shops} shops x {args.items_per_shop} items to JSON Lines "
        f"({_mb(size):.0f} MB, {lines:,} lines)"
    )
    print(f"{'items':>9} {'rss MB':>8} {'peak MB':>8} {'seconds':>8}")
    for row in rows:
        items, rss, peak, secs = row["items"], row["rss_mb"], row["peak_mb"], row["seconds"]
        print(f"{int(items):>9,} {rss:>8.1f} {peak:>8.1f} {secs:>8.1f}")
    peak = max(r["peak_mb"] for r in rows)
    growth = rows[-1]["rss_mb"] - rows[0]["rss_mb"]
    ok = peak < LIMIT_MB and growth < GROWTH_MB and lines >= args.items
    print(
        f"peak RSS {peak:.1f} MB (limit {LIMIT_MB:.0f}); RSS growth from {int(rows[0]['items']):,} "
        f"to {int(rows[-1]['items']):,} items: {growth:+.1f} MB (limit {GROWTH_MB:.0f}): "
        + ("PASS" if ok else "FAIL")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
