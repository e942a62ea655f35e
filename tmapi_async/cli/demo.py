"""``tmapi-async demo``: the main job, end to end, against a simulated TMAPI.

Starts the simulator as a separate process on loopback (``python -m
tmapi_async.testing``, with some faults and latency switched on), harvests a few hundred
of its shops with the progress display, writes the export, prints the summary and
where the file is, and stops the simulator. No token and no network needed. With
``--next-day``, it then harvests the shops as they are a day later and diffs the two exports.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._exit import ExitCode
from ._options import ClientOptions, ListingOptions, int_at_least, positive_float
from ._output import err
from .harvest import HarvestOptions, harvest

if TYPE_CHECKING:
    import asyncio

__all__ = ["add_parser", "run"]

_DEMO_TOKEN = "demo-token"  # the simulator accepts any non-empty token
_FILES = ("items.{ext}", "items.{ext}.state.db", "items.{ext}.failures.txt")
_NEXT_DAY = ("items-day1.{ext}", "items-day1.{ext}.state.db", "items-day1.{ext}.failures.txt")

_EPILOG = """\
The simulator answers like TMAPI (same envelope, quirks and error codes), with about 5%
of requests failing transiently (HTTP 5xx, error envelopes, truncated bodies, resets)
and a limit of requests in flight, so you see retries and the adaptive throttle at work.
The files of an earlier demo in DIR are replaced.

examples:
  tmapi-async demo
  tmapi-async demo --shops 50 --dir /tmp/demo --format csv
  tmapi-async demo --next-day   # then a day later: new, gone and repriced listings
"""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``demo`` to the subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "demo",
        help="harvest a few hundred simulated shops (no token, no network)",
        description="Harvest a few hundred simulated shops from a TMAPI simulator started "
        "on loopback: the progress display, the export and the summary, with no token and "
        "no network.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--shops",
        type=int_at_least(1),
        default=300,
        metavar="N",
        help="shops to harvest (default 300)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path("tmapi-demo"),
        metavar="DIR",
        help="where to write the export (default ./tmapi-demo)",
    )
    parser.add_argument(
        "--format",
        choices=("jsonl", "csv", "parquet"),
        default="jsonl",
        help="export format (default jsonl)",
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.05,
        metavar="F",
        help="share of requests that fail transiently (default 0.05)",
    )
    parser.add_argument(
        "--rate", type=positive_float, default=300.0, metavar="R", help="requests/s (default 300)"
    )
    parser.add_argument(
        "--next-day",
        action="store_true",
        help="then harvest the shops as they are one day later into DIR/items-day1.EXT and "
        "write what changed to DIR/changes.jsonl (tmapi-async diff)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    return parser


def run(args: argparse.Namespace) -> int:
    """The ``demo`` command; returns the harvest's exit code."""
    import asyncio  # here, not above: --help does not need it

    os.environ.pop("TMAPI_BASE_URL", None)  # the demo talks to its own simulator only
    try:
        return asyncio.run(_demo(args))
    except RuntimeError as exc:
        err(f"tmapi-async demo: error: {exc}")
        return ExitCode.SHOPS_FAILED


async def _start_simulator(
    args: argparse.Namespace, day: int
) -> tuple[asyncio.subprocess.Process, str]:
    import asyncio

    command = [
        sys.executable,
        "-m",
        "tmapi_async.testing",
        "--port",
        "0",
        "--shops",
        str(args.shops),
        "--items-per-shop",
        "0..400",
        "--fault-rate",
        str(args.fault_rate),
        "--seed",
        "7",
        "--latency-ms",
        "5..60",
        "--concurrency-limit",
        "24",
        "--day",
        str(day),
    ]
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,  # our Ctrl-C is for the harvest; we stop the simulator
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    except TimeoutError:
        line = b""
    url = line.decode().strip()
    if not url.startswith("http://"):
        await _stop(proc)
        raise RuntimeError("the simulator did not start (python -m tmapi_async.testing)")
    return proc, url


async def _stop(proc: asyncio.subprocess.Process) -> None:
    import asyncio

    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _prepare(args: argparse.Namespace) -> tuple[Path, Path]:
    """Write the demo's shop list; remove the files of an earlier demo. Returns
    (shop list, export)."""
    directory: Path = args.dir
    directory.mkdir(parents=True, exist_ok=True)
    ext = args.format
    for pattern in (*_FILES, *_NEXT_DAY, "items.{ext}.spool.jsonl", "changes.jsonl"):
        with contextlib.suppress(FileNotFoundError):
            (directory / pattern.format(ext=ext)).unlink()
    shops_file = directory / "shops.txt"
    shops_file.write_text(
        "# the simulated shops of the demo, one URL a line\n"
        + "".join(f"https://shop{i}.1688.com/\n" for i in range(1, args.shops + 1)),
        encoding="utf-8",
    )
    return shops_file, directory / f"items.{ext}"


async def _harvest_day(args: argparse.Namespace, shops_file: Path, output: Path, day: int) -> int:
    """Harvest the shops from a simulator of ``day``; returns the harvest's exit code."""
    proc, url = await _start_simulator(args, day)
    try:
        later = ", one day later" if day else ""
        print(f"simulated TMAPI at {url} ({args.shops} shops, {args.fault_rate:.0%} faults{later})")
        options = HarvestOptions(
            shops=str(shops_file),
            output=output,
            format=args.format,
            state=output.with_name(output.name + ".state.db"),
            listing=ListingOptions(
                page_size=20, sort="default", cat=None, cat_type=None, max_pages=None
            ),
            client=ClientOptions(
                token=_DEMO_TOKEN,
                base_url=url,
                rate=args.rate,
                burst=None,
                concurrency=32,
                timeout=10.0,
            ),
            quiet=args.quiet,
        )
        return await harvest(options)
    finally:
        await _stop(proc)


async def _demo(args: argparse.Namespace) -> int:
    shops_file, output = _prepare(args)
    code = await _harvest_day(args, shops_file, output, 0)
    print(f"\nthe export is {output.resolve()}")
    if args.format == "jsonl":
        print(f"look at it:  head -n 2 {output}")
    print(
        "resume: rerunning the same harvest fetches nothing already in the export, e.g.\n"
        f"  tmapi-async simulate --port 8688 --shops {args.shops} &\n"
        f"  tmapi-async harvest {shops_file} --output {output} "
        "--base-url http://127.0.0.1:8688 --token any-token"
    )
    if args.next_day and code == ExitCode.OK:
        code = await _next_day(args, shops_file, output)
    return code


async def _next_day(args: argparse.Namespace, shops_file: Path, output: Path) -> int:
    """Harvest the shops a day later and diff the two exports."""
    from .diff import DiffOptions, diff

    print()
    later = output.with_name(f"items-day1.{args.format}")
    code = await _harvest_day(args, shops_file, later, 1)
    if code != ExitCode.OK:
        return code
    changes = output.with_name("changes.jsonl")
    diff(DiffOptions(output, later, changes, "jsonl", quiet=args.quiet))
    print(f"\nthe changes are {changes.resolve()}")
    print(f"compare:  tmapi-async diff {output} {later} --output {changes}")
    return code
