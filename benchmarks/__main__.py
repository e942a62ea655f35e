"""``python -m benchmarks [--quick] [--out DIR] [--only SCENARIO ...]``: the benchmark suite.

Scenarios: ``throughput`` (a), ``rate`` (b), ``harvest`` (c), ``memory`` (d), ``decode`` (e).
Prints a table, writes ``latest.json`` and ``bench-*.png`` into ``--out``
(default ``benchmarks/results``). ``--quick`` takes under 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks._common import ROOT, machine_info
from benchmarks._report import plots, table
from benchmarks._scenarios import FULL, QUICK, SCENARIOS


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios; print and write the results."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller runs (< 3 min on 2 cores)")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results",
        help="where latest.json and bench-*.png go (benchmarks/results)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(SCENARIOS),
        metavar="SCENARIO",
        help=f"run only these: {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    chosen = args.only or list(SCENARIOS)
    results: dict[str, object] = {
        "machine": machine_info(),
        "mode": "quick" if args.quick else "full",
        "plan": plan.__dict__,
        "scenarios": {},
        "seconds": {},
    }
    scenarios = results["scenarios"]
    seconds = results["seconds"]
    assert isinstance(scenarios, dict)
    assert isinstance(seconds, dict)
    start = time.perf_counter()
    for name in chosen:
        print(f"[{name}]", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        scenarios[name] = SCENARIOS[name](plan)
        seconds[name] = round(time.perf_counter() - t0, 1)
    seconds["total"] = round(time.perf_counter() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "latest.json"
    path.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    machine = results["machine"]
    assert isinstance(machine, dict)
    print(
        f"\n{machine['date']} · {machine.get('cpu', '?')} · {machine['cpus']} CPUs · "
        f"Python {machine['python']} · load at start {machine.get('loadavg_at_start')} · "
        f"{results['mode']} run, {seconds['total']} s\n"
    )
    print(table(results))
    if not args.no_plots:
        for png in plots(results, args.out):
            print(f"plot: {png}")
    print(f"figures: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
