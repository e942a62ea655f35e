"""What Prometheus metrics cost a harvest: ``Client.harvest`` with and without
``metrics=tm.Metrics()``, paired by round.

Run: ``python -m benchmarks.bench_metrics [--rounds 9] [--shops 120] [--concurrency 64]``

A simulator serves in a separate process; each contender runs in a process of its own,
alternated (off, on, on, off, ...). The verdict is the median of each round's ratio of
requests/s with metrics to without: rounds run back to back, so the ratio cancels the
machine's drift. Goal: metrics cost under 3 % (ratio >= 0.97).

Then the cost alone, without a network: CPU per ``Client.fetch_page`` on a
``MockTransport`` answering an empty page at once, metrics off and on, alternated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from benchmarks._common import Simulator, expected_pages, machine_info, median, run_child
from benchmarks._scenarios import ITEMS, WORKERS, rotations

_EMPTY_PAGE = json.dumps(
    {"code": 200, "msg": "success", "data": {"page": 1, "page_size": 20, "total_count": 0,
                                             "items": []}}
).encode()  # fmt: skip


async def _cpu_per_request(metrics: bool, requests: int = 20000) -> float:
    """CPU µs per page fetched through a client on a mock transport."""
    import tmapi_async as tm
    from tmapi_async import MockTransport

    def answer(_query: str) -> tuple[int, dict[str, str], bytes]:
        return 200, {"content-type": "application/json"}, _EMPTY_PAGE

    extra = {"metrics": tm.Metrics()} if metrics else {}
    transport = MockTransport(answer)
    async with tm.Client("tok-bench", transport=transport, rate=1e9, burst=10**6, **extra) as c:
        query = tm.ShopQuery.build("https://bench.1688.com/")
        start = time.process_time()
        for _ in range(requests):
            await c.fetch_page(query, 1)
        return 1e6 * (time.process_time() - start) / requests


def main() -> int:
    """Alternate the two, print medians and the paired ratio; exit 1 below the target."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_metrics")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--shops", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--target", type=float, default=0.97)
    args = parser.parse_args()
    names = ["lib-harvest", "lib-harvest-metrics"]
    rps: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    span = f"{ITEMS[0]}..{ITEMS[1]}"
    with Simulator(
        "--shops", str(args.shops), "--items-per-shop", span, "--log-max", "1000"
    ) as sim:
        base = [*WORKERS, "--url", sim.url, "--shops", str(args.shops)]
        base += ["--concurrency", str(args.concurrency)]
        run_child([*base, "lib-harvest"])  # warm the simulator's catalogues
        for name in rotations(names, args.rounds):
            r = run_child([*base, name]).report
            rps[name].append(r["requests"] / r["wall"])
            cpu[name].append(1e6 * r["cpu"] / r["requests"])
    info = machine_info()
    print(
        f"{info['date']} · {info.get('cpu', '?')} · {info['cpus']} CPUs · load "
        f"{info.get('loadavg_at_start')} · {expected_pages(args.shops, *ITEMS):,} requests/run, "
        f"concurrency {args.concurrency}, median of {args.rounds}"
    )
    for name in names:
        print(f"  {name:20} {median(rps[name]):8,.0f} req/s  {median(cpu[name]):5.0f} µs CPU/req")
    off, on = rps["lib-harvest"], rps["lib-harvest-metrics"]
    ratio = median([m / b for m, b in zip(on, off, strict=True)])
    cpu_ratio = median(
        [m / b for m, b in zip(cpu["lib-harvest-metrics"], cpu["lib-harvest"], strict=True)]
    )
    print(f"  metrics on / off: {ratio:.3f} x requests/s, {cpu_ratio:.3f} x CPU per request")
    alone: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for on in (False, True):
            alone[on].append(asyncio.run(_cpu_per_request(on)))
    off_us, on_us = median(alone[False]), median(alone[True])
    print(
        f"  alone (mock transport): {off_us:.2f} µs CPU/request off, {on_us:.2f} on: "
        f"+{on_us - off_us:.2f} µs"
    )
    ok = ratio >= args.target
    print(f"target metrics on >= {args.target:.2f} x off: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
