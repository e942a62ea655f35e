"""Command line of the simulator: ``python -m tmapi_async.testing`` / ``tmapi-async simulate``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
import signal
import sys
from collections.abc import Callable

from ._config import AUTH_SCHEMES, DEFAULT_FAULT_KINDS, SimulatorConfig, sizes_between
from ._faults import DEFAULT_FAULT_CODES, FaultKind
from ._server import SimulatedTmapi, check_loopback

__all__ = ["build_config", "configure_parser", "main", "run"]

_DESCRIPTION = """\
Serve a simulated TMAPI endpoint GET /1688/shop/items/v2 on a loopback port, so a crawler
can be run, tested and benchmarked without spending money. The first line printed on stdout
is the base URL (e.g. http://127.0.0.1:43121), alone; use it in place of https://api.tmapi.io.
It serves until SIGINT/SIGTERM and then exits 0.

Shops: every shop URL https://NAME.1688.com/... has a deterministic catalogue seeded by NAME,
of a size from --items-per-shop (a fixed N, or A..B picked from NAME). With --shops N, only
shop1 .. shopN exist (https://shop1.1688.com ...) and any other shop is empty. Each shop
also has a profile (GET /1688/shop/shop_info) and a category tree (GET /1688/shop/category),
under the same keys, limits and faults; --day N moves its ratings and favourites.
"""

_EPILOG = """\
fault kinds (--faults): status (HTTP 417/499/500/502/503/504 with a JSON error envelope),
envelope (HTTP 200 whose JSON "code" is the error), truncated (JSON cut short), html502,
html200 (HTML pages), reset (connection closed with RST), hang (answer held --hang-seconds).
Faults are decided by a hash of --seed and the request (shop, page, params, attempt number),
so a run is reproducible whatever the concurrency; a retry is a new attempt.

examples:
  python -m tmapi_async.testing --port 8080
  python -m tmapi_async.testing --shops 50 --items-per-shop 20..400 --shops-file shops.txt
  python -m tmapi_async.testing --fault-rate 0.1 --faults status,envelope,reset --seed 7 \\
      --latency-ms 50..300 --concurrency-limit 5 --quota 10000 --token "$TMAPI_TOKEN"
  python -m tmapi_async.testing --drift 3:2:40   # every 3rd request to a shop inserts 2 items
  python -m tmapi_async.testing --day 1 --fail-shop shop3 --fail-shop shop4:4
      # the catalogues one day later; shop3 fails for good, shop4 from its 4th page on
"""


def _range(text: str) -> tuple[float, float]:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:\.\.\s*(\d+(?:\.\d+)?)\s*)?", text)
    if m is None:
        raise argparse.ArgumentTypeError(f"expected N or A..B, got {text!r}")
    low = float(m.group(1))
    high = float(m.group(2)) if m.group(2) is not None else low
    if high < low:
        raise argparse.ArgumentTypeError(f"range {text!r} is backwards")
    return low, high


def _int_range(text: str) -> tuple[int, int]:
    low, high = _range(text)
    if low != int(low) or high != int(high):
        raise argparse.ArgumentTypeError(f"expected whole numbers, got {text!r}")
    return int(low), int(high)


def _kinds(text: str) -> tuple[FaultKind, ...]:
    try:
        return tuple(FaultKind(k.strip()) for k in text.split(",") if k.strip())
    except ValueError:
        names = ", ".join(k.value for k in FaultKind)
        raise argparse.ArgumentTypeError(
            f"unknown fault kind in {text!r} (known: {names})"
        ) from None


def _codes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected codes like 417,500, got {text!r}") from None


def _drift(text: str) -> tuple[int, int, int]:
    m = re.fullmatch(r"(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if m is None:
        raise argparse.ArgumentTypeError(f"expected EVERY[:K[:MAX]], got {text!r}")
    every = int(m.group(1))
    k = int(m.group(2)) if m.group(2) else 1
    cap = int(m.group(3)) if m.group(3) else 20
    return every, k, cap


def _day_changes(text: str) -> tuple[int, int, int, int]:
    m = re.fullmatch(r"(\d+):(\d+):(\d+)(?::(\d+))?", text.strip())
    if m is None:
        raise argparse.ArgumentTypeError(f"expected NEW:GONE:REPRICED[:MIN], got {text!r}")
    return int(m[1]), int(m[2]), int(m[3]), int(m[4]) if m[4] else 20


def _failing_shop(text: str) -> tuple[str, int]:
    name, sep, page = text.partition(":")
    if not name or (sep and not (page.isdigit() and int(page) >= 1)):
        raise argparse.ArgumentTypeError(f"expected NAME or NAME:PAGE (PAGE >= 1), got {text!r}")
    return name.lower(), int(page) if sep else 1


def _shop_size(text: str) -> tuple[str, int]:
    name, sep, size = text.partition("=")
    if not sep or not name or not size.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=SIZE, got {text!r}")
    return name.lower(), int(size)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to ``parser`` (used by ``tmapi-async simulate``)."""
    parser.description = parser.description or _DESCRIPTION
    parser.epilog = parser.epilog or _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter

    net = parser.add_argument_group("listening")
    net.add_argument(
        "--host", default="127.0.0.1", help="loopback address only (default %(default)s)"
    )
    net.add_argument("--port", type=int, default=0, help="port; 0 = pick a free one (default)")

    shops = parser.add_argument_group("shops")
    shops.add_argument(
        "--shops",
        type=int,
        default=0,
        metavar="N",
        help="only shop1..shopN exist, other shops are empty (default 0: every name is a shop)",
    )
    shops.add_argument(
        "--items-per-shop",
        type=_int_range,
        default=(100, 100),
        metavar="N|A..B",
        help="items per shop: N, or A..B chosen per shop from its name (default 100)",
    )
    shops.add_argument(
        "--shop",
        type=_shop_size,
        action="append",
        default=[],
        metavar="NAME=SIZE",
        help="give shop NAME exactly SIZE items (repeatable)",
    )
    shops.add_argument(
        "--shops-file",
        metavar="PATH",
        help="write the URLs of shop1..shopN (with --shops) to PATH, one a line",
    )
    shops.add_argument(
        "--no-prebuild",
        action="store_true",
        help="with --shops, do not build the shops' catalogues before printing the URL "
        "(by default they are, so the first crawl measures the client, not the simulator)",
    )
    shops.add_argument(
        "--page-size-max", type=int, default=20, metavar="N", help="cap on page_size (default 20)"
    )
    shops.add_argument(
        "--drift",
        type=_drift,
        default=None,
        metavar="EVERY[:K[:MAX]]",
        help="every EVERY-th request to a shop inserts K new items (default 1) at the front of its "
        "listing, at most MAX (default 20) per shop",
    )

    days = parser.add_argument_group("days and failing shops")
    days.add_argument(
        "--day",
        type=int,
        default=0,
        metavar="N",
        help="serve the catalogues as they are N days later (default 0): each day lists new "
        "items (first under sort=time_down), removes some and reprices some",
    )
    days.add_argument(
        "--day-changes",
        type=_day_changes,
        default=(7, 3, 5, 20),
        metavar="NEW:GONE:REPRICED[:MIN]",
        help="what each day does to every shop of at least MIN items (default 7:3:5:20)",
    )
    days.add_argument(
        "--fail-shop",
        type=_failing_shop,
        action="append",
        default=[],
        metavar="NAME[:PAGE]",
        help="shop NAME answers HTTP 500 for page PAGE (default 1) and every later page "
        "(repeatable)",
    )

    acct = parser.add_argument_group("accounts (per token)")
    acct.add_argument(
        "--auth",
        choices=AUTH_SCHEMES,
        default="both",
        help="how a key may come: as the apikey header, as the apiToken query parameter, "
        "or both (default); another way is answered 401, as an unknown token",
    )
    acct.add_argument(
        "--token",
        action="append",
        default=None,
        metavar="T",
        help="accept only this key (repeatable; default: any non-empty key)",
    )
    acct.add_argument("--quota", type=int, metavar="N", help="requests per token, then 439")
    acct.add_argument(
        "--concurrency-limit", type=int, metavar="N", help="requests in flight per token, then 503"
    )
    acct.add_argument(
        "--rate-limit", type=int, metavar="N", help="requests per second per token, then 429"
    )
    acct.add_argument("--retry-after", action="store_true", help="send Retry-After with 429")

    faults = parser.add_argument_group("faults")
    faults.add_argument("--seed", type=int, default=0, help="seed of fault decisions (default 0)")
    faults.add_argument(
        "--fault-rate",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="probability in [0,1] that an attempt faults (default 0)",
    )
    faults.add_argument(
        "--faults",
        type=_kinds,
        default=DEFAULT_FAULT_KINDS,
        metavar="KIND,...",
        help="fault kinds to spread faults over (default: all but hang): "
        + ",".join(k.value for k in FaultKind),
    )
    faults.add_argument(
        "--fault-codes",
        type=_codes,
        default=DEFAULT_FAULT_CODES,
        metavar="CODE,...",
        help="codes for status/envelope faults (default 417,499,500,502,503,504)",
    )
    faults.add_argument(
        "--latency-ms",
        type=_range,
        default=(0.0, 0.0),
        metavar="N|A..B",
        help="latency of each answer, uniform in A..B ms (default 0)",
    )
    faults.add_argument(
        "--hang-seconds", type=float, default=120.0, metavar="S", help="how long a hang lasts (120)"
    )
    parser.add_argument(
        "--log-max",
        type=int,
        default=100_000,
        metavar="N",
        help="keep at most N request records in memory (default 100000)",
    )


def _size_fn(shops: int, low: int, high: int) -> Callable[[str], int]:
    by_name = sizes_between(low, high)
    if shops <= 0:
        return by_name

    def size(name: str) -> int:
        m = re.fullmatch(r"shop([1-9]\d*)", name)
        return by_name(name) if m is not None and int(m.group(1)) <= shops else 0

    return size


def build_config(args: argparse.Namespace) -> SimulatorConfig:
    """The :class:`SimulatorConfig` described by parsed command-line ``args``."""
    low, high = args.items_per_shop
    every, k, cap = args.drift if args.drift is not None else (0, 1, 20)
    return SimulatorConfig(
        shop_sizes=dict(args.shop),
        size_fn=_size_fn(args.shops, low, high),
        page_size_max=args.page_size_max,
        auth=args.auth,
        tokens=frozenset(args.token) if args.token else None,
        quota=args.quota,
        concurrency_limit=args.concurrency_limit,
        rate_limit=args.rate_limit,
        retry_after=args.retry_after,
        seed=args.seed,
        fault_rate=args.fault_rate,
        fault_kinds=args.faults,
        fault_codes=args.fault_codes,
        latency_ms=args.latency_ms,
        hang_seconds=args.hang_seconds,
        drift_every=every,
        drift_items=k,
        drift_max=cap,
        day=args.day,
        new_per_day=args.day_changes[0],
        gone_per_day=args.day_changes[1],
        repriced_per_day=args.day_changes[2],
        day_min_size=args.day_changes[3],
        failing_shops=dict(args.fail_shop),
        log_max_records=args.log_max,
    )


async def _serve(args: argparse.Namespace, config: SimulatorConfig) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        sim = SimulatedTmapi(config, host=args.host, port=args.port)
        await sim.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    if args.shops > 0 and not args.no_prebuild:
        # Only as many as the cache keeps: building more would evict the first ones.
        count = min(args.shops, config.catalogue_cache_size)
        sim.prebuild(f"shop{i}" for i in range(1, count + 1))
    # This process only serves: fewer young-generation collections make building catalogues
    # (many small tuples) ~25% cheaper. Never done in-process, where the GC is the caller's.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        print(sim.url, flush=True)
        print(
            f"serving GET {sim.endpoint} (seed={config.seed}, fault_rate={config.fault_rate}, "
            f"page_size_max={config.page_size_max}); Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
    finally:
        await sim.close()
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the simulator described by ``args`` until SIGINT/SIGTERM; returns the exit code."""
    try:
        check_loopback(args.host)
        config = build_config(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.shops_file:
        with open(args.shops_file, "w", encoding="utf-8") as f:
            f.writelines(f"https://shop{i}.1688.com\n" for i in range(1, args.shops + 1))
    return asyncio.run(_serve(args, config))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m tmapi_async.testing``."""
    parser = argparse.ArgumentParser(prog="python -m tmapi_async.testing")
    configure_parser(parser)
    return run(parser.parse_args(argv))
