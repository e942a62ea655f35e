"""``python -m benchmarks [--quick] [--out DIR] [--only SCENARIO ...] [--update-docs] [--profile]``.

Scenarios: ``throughput`` (with the whole-process race), ``rate``, ``harvest``,
``memory``, ``decode``. Prints the tables and writes ``latest.json`` and ``bench-*.png``
into ``--out`` (default ``benchmark-results/``, not tracked by git). ``--update-docs``
also refreshes the figures of the documentation: the plots in ``docs/img/`` and the
generated tables of ``docs/benchmarks.md``. ``--quick`` takes under 3 minutes on 2 cores.
``--profile`` then runs the throughput contenders under py-spy: where each one's CPU
goes, per request and by module, and a speedscope file per run in ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from benchmarks._common import ROOT, machine_info
from benchmarks._profile import add_profile_option
from benchmarks._report import plots, sections, table, update_page
from benchmarks._scenarios import FULL, QUICK, SCENARIOS

DEFAULT_OUT = ROOT / "benchmark-results"
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
DOCS_IMG = ROOT / "docs" / "img"


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios; print and write the results."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs (< 3 min on 2 cores)")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="where latest.json and bench-*.png go (default: benchmark-results/, untracked)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(SCENARIOS),
        metavar="SCENARIO",
        help=f"run only these: {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    add_profile_option(parser, "the throughput contenders")
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help="also write the plots into docs/img/ and the tables into docs/benchmarks.md",
    )
    args = parser.parse_args(argv)
    if args.update_docs and args.no_plots:
        parser.error("--update-docs needs the plots: drop --no-plots")
    plan = QUICK if args.quick else FULL
    chosen = args.only or list(SCENARIOS)
    results: dict[str, object] = {
        "machine": machine_info(),
        "mode": "quick" if args.quick else "full",
        "only": args.only,
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
    with contextlib.suppress(OSError):  # other work during the run shows here, not at its start
        machine_end = results["machine"]
        assert isinstance(machine_end, dict)
        machine_end["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
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
    pngs = [] if args.no_plots else plots(results, args.out)
    for png in pngs:
        print(f"plot: {png}")
    print(f"figures: {path}")
    if args.update_docs:
        update_docs(results, pngs)
    if args.profile:
        from benchmarks._profile import profile_throughput

        print(profile_throughput(plan.shops, args.out / "profile-throughput", runs=args.profile))
    return 0


def update_docs(results: dict[str, object], pngs: list[Path]) -> None:
    """Copy the plots into docs/img/ and the tables into docs/benchmarks.md."""
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    for png in pngs:
        shutil.copyfile(png, DOCS_IMG / png.name)
        print(f"docs: {DOCS_IMG / png.name}")
    replaced = update_page(DOCS_PAGE, sections(results))
    print(f"docs: {DOCS_PAGE} ({', '.join(replaced) or 'no table'} refreshed)")


if __name__ == "__main__":
    sys.exit(main())
