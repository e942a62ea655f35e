"""Several tokens: the same latency-bound harvest with one token and with three.

Run: ``python -m benchmarks.bench_pool [--shops 40] [--rounds 3] [--json]``

The simulator allows each token ``--limit`` requests in flight and answers each after
80-120 ms, so one token's harvest is bound by its in-flight limit: three tokens, each
with the same limit, may carry three times the work. The time is taken at the server,
from the first request's arrival to the last answer's departure (the request log), so
start-up and shutdown of the client do not count. One and three tokens alternate round
by round; the figure is the median over rounds of the paired ratio one ÷ three.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from benchmarks._common import emit, machine_info, median
from tmapi_async import Client, TokenPool
from tmapi_async.testing import SimulatedTmapi

TOKENS = ("bench-token-a", "bench-token-b", "bench-token-c")
LATENCY_MS = (80.0, 120.0)
ITEMS = 100  # per shop: 5 pages of 20


async def _harvest(
    sim: SimulatedTmapi, tokens: tuple[str, ...], shops: list[str], limit: int
) -> dict[str, float]:
    """One harvest; its span at the server and what it fetched."""
    sim.reset()
    keywords: dict[str, Any] = {"base_url": sim.url, "rate": 10_000.0, "concurrency": limit}
    client = Client(tokens[0], **keywords) if len(tokens) == 1 else TokenPool(tokens, **keywords)
    items = 0
    async with client:
        async for result in client.harvest(shops, keep_items=False):
            if result.status != "complete":
                raise RuntimeError(f"{result.shop_url}: {result.status}: {result.error}")
            items += result.item_count
    records = sim.log.records
    departed = [r.departed for r in records if r.departed is not None]
    span = max(departed) - min(r.arrived for r in records)
    return {
        "server_s": span,
        "requests": len(records),
        "items": items,
        "peak_in_flight": sim.log.peak_in_flight(),
        "peak_per_token": max(sim.log.peak_in_flight(t) for t in tokens),
    }


async def measure(shops: int, rounds: int, limit: int) -> dict[str, Any]:
    """Alternate one and three tokens for ``rounds`` rounds; the paired ratios."""
    urls = [f"https://poolbench{i}.1688.com/" for i in range(shops)]
    contenders = {"1 token": TOKENS[:1], "3 tokens": TOKENS}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    ratios: list[float] = []
    async with SimulatedTmapi(
        default_shop_size=ITEMS, concurrency_limit=limit, latency_ms=LATENCY_MS
    ) as sim:
        sim.prebuild(urls)
        for r in range(rounds):
            order = list(contenders) if r % 2 == 0 else list(reversed(contenders))
            figures = {name: await _harvest(sim, contenders[name], urls, limit) for name in order}
            for name, row in figures.items():
                runs[name].append(row)
            ratio = figures["1 token"]["server_s"] / figures["3 tokens"]["server_s"]
            ratios.append(ratio)
            print(
                f"  round {r + 1}: 1 token {figures['1 token']['server_s']:.2f} s, "
                f"3 tokens {figures['3 tokens']['server_s']:.2f} s: {ratio:.2f}x",
                file=sys.stderr,
                flush=True,
            )
    return {
        "shops": shops,
        "items_per_shop": ITEMS,
        "in_flight_limit_per_token": limit,
        "latency_ms": list(LATENCY_MS),
        "rounds": rounds,
        "speedup_3_tokens": median(ratios),
        "speedups": ratios,
        "contenders": {
            name: {"median_server_s": median([row["server_s"] for row in rows]), "all": rows}
            for name, rows in runs.items()
        },
        "machine": machine_info(),
    }


def main(argv: list[str] | None = None) -> int:
    """Measure and print the speed-up of three tokens over one."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_pool", description=__doc__)
    parser.add_argument("--shops", type=int, default=40, help="shops of 100 items (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds (default 3)")
    parser.add_argument("--limit", type=int, default=4, help="in flight per token (default 4)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = asyncio.run(measure(args.shops, args.rounds, args.limit))
    if args.json:
        emit(report)
    else:
        for name, row in report["contenders"].items():
            print(f"{name:>9}: {row['median_server_s']:.2f} s at the server (median)")
        print(f"three tokens are {report['speedup_3_tokens']:.2f}x faster than one")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
