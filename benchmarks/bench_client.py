"""The library's requests/s against a bare aiohttp + msgspec loop, paired by round.

Run: ``python -m benchmarks.bench_client [--rounds 9] [--shops 120] [--concurrency 64]``

A simulator serves in a separate process; each contender runs in a process of its own
(alternated: bare, library, library, bare, ...) at the same concurrency with the rate
open. The verdict is the median of each round's ratio to that round's bare run: rounds
run back to back, so the ratio cancels the machine's drift between rounds (a third,
here), which a ratio of medians does not. Contenders: ``bare`` (the loop),
``lib-page`` (the same loop through ``Client.fetch_page``: the client's own cost) and
``lib-harvest`` (``Client.harvest``). Goal: library ≥ 0.85 × bare (0.90 is the aim).
"""

from __future__ import annotations

import argparse
import sys

from benchmarks._common import Simulator, expected_pages, machine_info, median, run_child
from benchmarks._scenarios import ITEMS, WORKERS, rotations


def main() -> int:
    """Alternate the contenders, print medians and ratios; exit 1 below the target."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_client")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--shops", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--target", type=float, default=0.85)
    args = parser.parse_args()
    names = ["bare", "lib-page", "lib-harvest"]
    rps: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    span = f"{ITEMS[0]}..{ITEMS[1]}"
    with Simulator(
        "--shops", str(args.shops), "--items-per-shop", span, "--log-max", "1000"
    ) as sim:
        base = [*WORKERS, "--url", sim.url, "--shops", str(args.shops)]
        base += ["--concurrency", str(args.concurrency)]
        run_child([*base, "bare"])  # warm the simulator's catalogues
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
    bare = median(rps["bare"])
    ok = True
    for name in names:
        rounds = zip(rps[name], rps["bare"], strict=True)
        paired = median([mine / theirs for mine, theirs in rounds])
        print(
            f"  {name:12} {median(rps[name]):8,.0f} req/s  {median(cpu[name]):5.0f} µs CPU/req  "
            f"{median(rps[name]) / bare:.2f} x bare (medians), {paired:.2f} x (paired by round)"
        )
        if name != "bare":
            ok = ok and paired >= args.target
    print(f"target library >= {args.target:.2f} x bare: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
