"""The library's requests/s against a bare aiohttp + msgspec loop, paired by round.

Run: ``python -m benchmarks.bench_client [--rounds 7] [--workload shops|big-shop|both]
[--uvloop] [--profile]``

Two workloads, each against a simulator in a separate process: ``shops`` (120 shops
of 200..1000 items, 3,789 requests) and ``big-shop`` (one shop of 3,000 pages).
Each contender runs in a process of its own (rotated: bare, library, library, then
library, library, bare, ...) at the same concurrency with the rate open. The verdict
is the median of each round's ratio to that round's bare run: rounds run back to
back, so the ratio cancels the machine's drift between rounds, which a ratio of
medians does not. Contenders: ``bare`` (the loop), ``lib-page`` (the same loop through
``Client.fetch_page``: the client's own cost), ``lib-harvest`` (``Client.harvest``)
and, on the big shop, ``lib-shop`` (``Client.fetch_shop``). Goal: every library
contender >= 0.90 x bare.

``--uvloop`` runs every contender on uvloop too, paired in the same round, and
reports uvloop against asyncio. ``--profile`` then runs each contender under py-spy
and prints where its CPU goes per request (speedscope files in ``--out``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmarks._common import (
    ROOT,
    Simulator,
    expected_pages,
    have,
    machine_info,
    median,
    run_child,
)
from benchmarks._profile import add_profile_option
from benchmarks._scenarios import ITEMS, WORKERS, rotations

BIG_SHOP_ITEMS = 60_000  # 3,000 pages of 20
WORKLOADS = {
    # name: (contenders, the simulator's shop options)
    "shops": ("bare", "lib-page", "lib-harvest"),
    "big-shop": ("bare", "lib-shop", "lib-harvest"),
}


def _simulator(workload: str, shops: int) -> Simulator:
    if workload == "big-shop":
        return Simulator("--shops", "1", "--shop", f"shop1={BIG_SHOP_ITEMS}", "--log-max", "1000")
    span = f"{ITEMS[0]}..{ITEMS[1]}"
    return Simulator("--shops", str(shops), "--items-per-shop", span, "--log-max", "1000")


def _requests(workload: str, shops: int) -> int:
    if workload == "big-shop":
        return BIG_SHOP_ITEMS // 20
    return expected_pages(shops, *ITEMS)


def run_workload(
    workload: str, args: argparse.Namespace, loops: list[str]
) -> tuple[list[str], bool]:
    """Alternate the workload's contenders (on each loop); return the report's lines
    and whether every library contender met the target."""
    shops = 1 if workload == "big-shop" else args.shops
    names = [f"{c}@{loop}" for loop in loops for c in WORKLOADS[workload]]
    rps: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    load = [round(x, 2) for x in os.getloadavg()]
    with _simulator(workload, args.shops) as sim:
        base = [*WORKERS, "--url", sim.url, "--shops", str(shops)]
        base += ["--concurrency", str(args.concurrency)]
        run_child([*base, "bare"])  # warm the simulator's catalogues
        for name in rotations(names, args.rounds):
            contender, _, loop = name.partition("@")
            run = run_child([*base, contender, "--loop", loop])
            if not run.report:
                continue
            rps[name].append(run.report["requests"] / run.report["wall"])
            cpu[name].append(1e6 * run.report["cpu"] / run.report["requests"])
        if args.profile:
            from benchmarks._profile import have_py_spy, profile_contenders, table

            if have_py_spy():
                out = args.out / f"profile-{workload}"
                profiles = profile_contenders(base, WORKLOADS[workload], out, runs=args.profile)
                print(f"\n[{workload}] where the CPU goes (asyncio, µs per request):\n")
                print(table(profiles))
                print(f"\nspeedscope files: {out}/ (open at https://www.speedscope.app)\n")
            else:
                print("--profile needs py-spy: pip install -e '.[bench]'", file=sys.stderr)
    load_end = [round(x, 2) for x in os.getloadavg()]
    lines = [
        f"[{workload}] {_requests(workload, shops):,} requests/run, concurrency "
        f"{args.concurrency}, median of {args.rounds} rounds; load {load} -> {load_end}"
    ]
    ok = True
    for name in names:
        contender, _, loop = name.partition("@")
        bare = f"bare@{loop}"
        n = min(len(rps[name]), len(rps[bare]))
        ratio = median([a / b for a, b in zip(rps[name][:n], rps[bare][:n], strict=True)])
        label = name if len(loops) > 1 else contender
        lines.append(
            f"  {label:20} {median(rps[name]):8,.0f} req/s  {median(cpu[name]):5.0f} µs CPU/req"
            f"  {ratio:.2f} x bare (paired by round)"
        )
        if contender != "bare":
            ok = ok and ratio >= args.target
    for contender in WORKLOADS[workload] if len(loops) > 1 else ():
        a, b = rps[f"{contender}@asyncio"], rps[f"{contender}@uvloop"]
        n = min(len(a), len(b))
        ratio = median([u / s for u, s in zip(b[:n], a[:n], strict=True)])
        lines.append(f"  {contender:20} uvloop / asyncio: {ratio:.2f} x (paired by round)")
    return lines, ok


def main() -> int:
    """Alternate the contenders, print medians and paired ratios; exit 1 below target."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_client")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--shops", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--target", type=float, default=0.90)
    parser.add_argument("--workload", choices=[*WORKLOADS, "both"], default="both")
    parser.add_argument(
        "--uvloop", action="store_true", help="run every contender on uvloop too, paired"
    )
    add_profile_option(parser, "each contender")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmark-results")
    args = parser.parse_args()
    if args.uvloop and not have("uvloop"):
        parser.error("--uvloop needs uvloop: pip install -e '.[bench]'")
    loops = ["asyncio", "uvloop"] if args.uvloop else ["asyncio"]
    workloads = list(WORKLOADS) if args.workload == "both" else [args.workload]
    info = machine_info()
    report = [
        f"{info['date']} · {info.get('cpu', '?')} · {info['cpus']} CPUs · Python "
        f"{info['python']} · aiohttp {info['aiohttp']}"
    ]
    ok = True
    for workload in workloads:
        lines, met = run_workload(workload, args, loops)
        report += lines
        ok = ok and met
    report.append(f"target library >= {args.target:.2f} x bare: {'met' if ok else 'MISSED'}")
    print("\n".join(report))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
