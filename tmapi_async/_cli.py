"""The ``tmapi-async`` command line (also ``python -m tmapi_async``).

Subcommands: ``harvest`` (the bulk job, resumable), ``estimate`` (what a harvest will
cost), ``simulate`` (the TMAPI simulator) and ``demo`` (a harvest against it).

Exit codes of ``harvest`` and ``estimate``:

* 0 — every shop complete;
* 1 — finished, some shops failed (named on stderr and in ``OUTPUT.failures.txt``);
* 2 — usage error: a bad flag, an unreadable file, a state file of another harvest;
* 3 — stopped early by a fatal API error (bad token, balance), by ``--max-requests``
  or by an export that cannot be written; the state is kept and a rerun resumes;
* 130 / 143 — stopped by Ctrl-C (SIGINT) / SIGTERM, gracefully: requests in flight
  are awaited and journaled, nothing new is sent; a rerun resumes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NoReturn, TextIO, cast

from ._checkpoint import CheckpointJournal, StateError, default_state_path, public_base_url
from ._client import Client
from ._errors import (
    AuthenticationError,
    BalanceError,
    FatalError,
    HarvestStopped,
    InvalidParameterError,
    RequestBudgetExhausted,
    TmapiError,
)
from ._models import Sort
from ._progress import HarvestSummary, ProgressDisplay, choose_mode
from ._protocol import ShopQuery, normalise_shop_url
from ._shop import ShopResult
from ._shoplist import (
    ShopList,
    ShopListError,
    close_shops,
    count_shops,
    open_shops,
    shop_lines,
)
from ._sinks import FORMATS, ExportFormat, SinkError

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_STOPPED", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0  #: every shop complete
EXIT_FAILED = 1  #: finished; some shops failed
EXIT_USAGE = 2  #: bad flag, unreadable file, unusable state
EXIT_STOPPED = 3  #: fatal API error, budget spent or export unwritable: resumable

_EPILOG = """\
examples:
  tmapi-async demo                                  # try it: a simulated TMAPI, no token
  export TMAPI_TOKEN=...                            # never printed, logged or stored
  tmapi-async estimate shops.txt                    # pages and requests a harvest costs
  tmapi-async harvest shops.txt --output items.jsonl --rate 10 --concurrency 8
  tmapi-async harvest shops.txt --output items.jsonl  # again: resumes where it stopped
  tmapi-async harvest - --output items.csv --format csv < shops.txt
  tmapi-async simulate --port 8080 --fault-rate 0.1 # serve a TMAPI simulator

exit codes (harvest, estimate):
  0 every shop complete            1 finished, some shops failed (see OUTPUT.failures.txt)
  2 usage error                    3 stopped: bad token, balance, --max-requests (resumable)
  130/143 stopped by Ctrl-C/SIGTERM (resumable)
"""

_HARVEST_EPILOG = """\
SHOPS is a text file with one shop URL per line (https://NAME.1688.com/, or any page of
the shop); blank lines and lines starting with # are ignored; - reads standard input.
Shops that resolve to the same shop are harvested once.

Resume: the state file (default OUTPUT.state.db) records every page with the export's
position in one transaction. After any stop (Ctrl-C, SIGTERM, kill -9, a bad token, an
empty balance, --max-requests) rerun the same command: pages already read are not
requested again and the export ends with every item exactly once. Shops that failed are
tried again; failures of the last run are listed in OUTPUT.failures.txt, itself a valid
SHOPS file. Parquet is written at the end of each run from OUTPUT.spool.jsonl.

examples:
  tmapi-async harvest shops.txt --output items.jsonl
  tmapi-async harvest shops.txt --output items.parquet --max-requests 5000
  TMAPI_BASE_URL=http://127.0.0.1:8080 tmapi-async harvest shops.txt -o out.csv

exit codes:
  0 every shop complete; 1 some shops failed; 2 usage error; 3 stopped by a fatal API
  error or --max-requests (state kept, rerun resumes); 130/143 Ctrl-C/SIGTERM (resumable)
"""

_ESTIMATE_EPILOG = """\
Fetches page 1 of each shop (one billed request each, retries aside) and prints, per
shop, its total_count, the page size the server answers with and the pages a full
harvest needs; the totals give the requests a harvest will cost (each page once).

examples:
  tmapi-async estimate shops.txt
  tmapi-async estimate shops.txt --page-size 20 --json > estimate.jsonl

exit codes: 0 every shop estimated; 1 some shops failed; 2 usage error; 3 fatal API error
"""


# -- the token never leaves ---------------------------------------------------------------


class _Secrets:
    """Every token this process knows of, scrubbed from everything it prints."""

    def __init__(self) -> None:
        self.values: set[str] = set()

    def add(self, value: str | None) -> None:
        if value and value.strip():
            self.values.add(value.strip())

    def scrub(self, text: str) -> str:
        for value in sorted(self.values, key=len, reverse=True):
            text = text.replace(value, "***")
        return text


_secrets = _Secrets()


def _print(message: str, stream: TextIO | None = None) -> None:
    print(_secrets.scrub(message), file=stream or sys.stdout, flush=True)


def _err(message: str) -> None:
    _print(message, sys.stderr)


class _Parser(argparse.ArgumentParser):
    """argparse, with the token scrubbed from its error messages (e.g. a mistyped flag)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_secrets.scrub(message)}\n")


class _LogLines(logging.Handler):
    """Hands the library's log records to the display (scrubbed there), one line each."""

    def __init__(self, show: Callable[[str], None]) -> None:
        super().__init__()
        self._show = show

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._show(f"{record.levelname.lower()}: {record.getMessage()}")
        except Exception:  # a log line must never break a harvest
            self.handleError(record)


@contextlib.contextmanager
def _library_logs(show: Callable[[str], None], *, verbose: bool) -> Iterator[None]:
    """Retries (INFO) shown with --verbose; otherwise only errors. The CLI reports fatal
    stops itself, so the library's warning about them is not repeated."""
    logger = logging.getLogger("tmapi_async")
    handler = _LogLines(show)
    saved = logger.level, logger.propagate
    logger.setLevel(logging.INFO if verbose else logging.ERROR)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


class UsageError(Exception):
    """A problem with the command line or its files: exit code 2, no traceback."""


def _open_shop_list(name: str) -> IO[bytes]:
    try:
        return open_shops(name)
    except ShopListError as exc:
        raise UsageError(str(exc)) from None


# -- arguments ----------------------------------------------------------------------------


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            bound = "at least 1" if minimum == 1 else f"{minimum} or more"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _add_client_options(parser: argparse.ArgumentParser, *, budget: bool) -> None:
    api = parser.add_argument_group("API and throttle")
    api.add_argument(
        "--token",
        metavar="TOKEN",
        help="TMAPI apiToken (default: $TMAPI_TOKEN; prefer the variable: "
        "a flag shows in the process list)",
    )
    api.add_argument(
        "--base-url",
        metavar="URL",
        help="API base URL (default: $TMAPI_BASE_URL or https://api.tmapi.io)",
    )
    api.add_argument(
        "--rate",
        type=_positive_float,
        default=10.0,
        metavar="R",
        help="requests per second, sustained (default %(default)s)",
    )
    api.add_argument(
        "--burst",
        type=_positive_int,
        metavar="B",
        help="requests that may leave at once after idle (default: about R/20, at least 1)",
    )
    api.add_argument(
        "--concurrency",
        type=_positive_int,
        default=8,
        metavar="C",
        help="most requests in flight; lowered by itself on 503 (default %(default)s)",
    )
    api.add_argument(
        "--timeout",
        type=_positive_float,
        default=60.0,
        metavar="SECONDS",
        help="timeout of one request (default %(default)s, as TMAPI advises)",
    )
    if budget:
        api.add_argument(
            "--max-requests",
            type=_non_negative_int,
            metavar="N",
            help="stop cleanly (exit 3, resumable) once N billed requests are spent",
        )


def _add_listing_options(parser: argparse.ArgumentParser) -> None:
    listing = parser.add_argument_group("listing")
    listing.add_argument(
        "--page-size",
        type=_positive_int,
        default=20,
        metavar="N",
        help="items per page to ask for; the server may answer with fewer (default 20)",
    )
    listing.add_argument(
        "--sort",
        choices=[s.value for s in Sort],
        default="default",
        help="order of the listing (default %(default)s)",
    )
    listing.add_argument("--cat", metavar="ID", help="only this shop category id")
    listing.add_argument(
        "--cat-type", choices=["0", "1"], help="category type, passed to the API as is"
    )


def _add_output_level(parser: argparse.ArgumentParser) -> None:
    level = parser.add_mutually_exclusive_group()
    level.add_argument(
        "-v", "--verbose", action="store_true", help="also name every shop as it finishes"
    )
    level.add_argument(
        "-q", "--quiet", action="store_true", help="no progress and no summary; errors only"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``tmapi-async`` argument parser with its subcommands."""
    from . import __version__

    parser = _Parser(
        prog="tmapi-async",
        description="Harvest every product of many 1688 shops through TMAPI's "
        "/1688/shop/items/v2: throttled, retried, resumable after any crash.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    harvest = commands.add_parser(
        "harvest",
        help="harvest the shops of a list into an export (resumable)",
        description="Harvest every product of the shops listed in SHOPS into OUTPUT, one "
        "row per item. Progress on stderr, a summary at the end.",
        epilog=_HARVEST_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    harvest.add_argument("shops", metavar="SHOPS", help="file of shop URLs, one a line; - = stdin")
    out = harvest.add_argument_group("output")
    out.add_argument(
        "-o", "--output", required=True, type=Path, metavar="PATH", help="the export file"
    )
    out.add_argument(
        "--format",
        choices=FORMATS,
        help="export format (default: from the extension of PATH, else jsonl)",
    )
    out.add_argument(
        "--state",
        type=Path,
        metavar="PATH",
        help="the resume state (SQLite; default: PATH.state.db beside the output)",
    )
    _add_listing_options(harvest)
    _add_client_options(harvest, budget=True)
    _add_output_level(harvest)
    harvest.set_defaults(handler=_harvest_command)

    estimate = commands.add_parser(
        "estimate",
        help="fetch page 1 of each shop: the pages and requests a harvest will cost",
        description="Estimate the cost of harvesting the shops in SHOPS.",
        epilog=_ESTIMATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    estimate.add_argument("shops", metavar="SHOPS", help="file of shop URLs, one a line; - = stdin")
    estimate.add_argument(
        "--json", action="store_true", help="one JSON object per shop and one of totals"
    )
    _add_listing_options(estimate)
    _add_client_options(estimate, budget=False)
    _add_output_level(estimate)
    estimate.set_defaults(handler=_estimate_command)

    simulate = commands.add_parser(
        "simulate", help="serve a simulated TMAPI on loopback (for tests and trials)"
    )
    try:
        from .testing._cli import configure_parser, run
    except ImportError:  # pragma: no cover - the simulator ships with the package
        simulate.set_defaults(handler=lambda _args: _missing_simulator())
    else:
        configure_parser(simulate)
        simulate.set_defaults(handler=run)

    from ._demo import configure_parser as configure_demo
    from ._demo import run_demo

    demo = commands.add_parser(
        "demo",
        help="harvest a few hundred simulated shops (no token, no network)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure_demo(demo)
    demo.set_defaults(handler=run_demo)
    return parser


def _missing_simulator() -> int:  # pragma: no cover
    _err("error: the simulator (tmapi_async.testing) is not installed")
    return EXIT_USAGE


# -- harvest ------------------------------------------------------------------------------


def _export_format(args: argparse.Namespace) -> ExportFormat:
    if args.format:
        return args.format  # type: ignore[no-any-return]
    suffix = args.output.suffix.lower().lstrip(".")
    return {"csv": "csv", "parquet": "parquet", "pq": "parquet"}.get(suffix, "jsonl")  # type: ignore[return-value]


def failures_path(output: Path) -> Path:
    """Where the failures of the last run are listed (a valid SHOPS file)."""
    return output.with_name(output.name + ".failures.txt")


def _client(args: argparse.Namespace, *, max_requests: int | None = None) -> Client:
    token = args.token if args.token is not None else os.environ.get("TMAPI_TOKEN")
    _secrets.add(token)
    if not token or not token.strip():
        raise UsageError("no API token: set TMAPI_TOKEN (or pass --token)")
    try:
        return Client(
            token,
            base_url=args.base_url,
            rate=args.rate,
            burst=args.burst,
            concurrency=args.concurrency,
            timeout=args.timeout,
            max_requests=max_requests,
        )
    except InvalidParameterError as exc:
        raise UsageError(str(exc)) from None


class _Failures:
    """The failures file beside the export: written as failures come, itself a SHOPS file
    (each failed shop's line, preceded by a ``#`` comment giving the reason)."""

    def __init__(self, path: Path, output: Path) -> None:
        self.path = path
        self.output = output
        self.count = 0
        self._file: IO[str] | None = None

    def add(self, line: str, reason: str) -> None:
        if self._file is None:
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
            self._file.write(
                f"# shops tmapi-async could not harvest completely into {self.output.name};\n"
                "# this file is a SHOPS list: harvest it again once the cause is fixed\n"
            )
        self._file.write(_secrets.scrub(f"# {reason}\n{line}\n"))
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        elif self.path.exists():
            self.path.unlink()  # from an earlier run: nothing failed this time


def _describe(result: ShopResult, shops: ShopList) -> tuple[str, str]:
    """(what to name the shop by, why it failed) for a failed or partial shop."""
    error = result.error
    reason = str(error) if error is not None else "unknown error"
    lineno = shops.invalid.get(result.shop_url)
    if lineno is not None and isinstance(error, InvalidParameterError) and error.code is None:
        return f"line {lineno} {result.shop_url!r}", f"invalid shop URL: {reason}"
    if result.status == "partial":
        return result.shop_url, (
            f"partial, {result.pages} pages and {result.item_count} items read: {reason}"
        )
    return result.shop_url, reason


def _fatal_message(error: FatalError, budget: int | None) -> str:
    if isinstance(error, AuthenticationError):
        return f"stopped: the API refused the token ({error})"
    if isinstance(error, BalanceError):
        return f"stopped: the subscription expired or the balance is spent ({error})"
    if isinstance(error, RequestBudgetExhausted):
        return f"stopped: --max-requests {budget} spent"
    return f"stopped: {error}"


@dataclass(slots=True)
class _Stop:
    """Which signal asked the harvest to stop, if one did."""

    signal: int | None = None
    hard: bool = False


def _install_signals(
    stop: _Stop, on_first: Callable[[], None], on_second: Callable[[], None]
) -> Callable[[], None]:
    """Ctrl-C/SIGTERM: the first stops gracefully, the second at once. Returns an undo."""
    loop = asyncio.get_running_loop()
    installed: list[int] = []

    def handle(signum: int) -> None:
        if stop.signal is None:
            stop.signal = signum
            on_first()
        else:
            stop.hard = True
            on_second()

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, handle, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - Windows
            pass

    def undo() -> None:
        for signum in installed:
            loop.remove_signal_handler(signum)

    return undo


async def run_harvest(args: argparse.Namespace) -> int:
    """The ``harvest`` command, as a coroutine (the demo calls it too)."""
    fmt = _export_format(args)
    output: Path = args.output
    state_path: Path = args.state or default_state_path(output)
    if not output.parent.is_dir():
        raise UsageError(f"cannot write {output}: directory {output.parent} does not exist")
    client = _client(args, max_requests=args.max_requests)
    shops = ShopList(args.shops)
    try:  # bad listing options are a usage error, found before any file is touched
        ShopQuery.build(
            "https://shop.1688.com/",
            page_size=args.page_size,
            sort=args.sort,
            cat=args.cat,
            cat_type=args.cat_type,
        )
    except InvalidParameterError as exc:
        raise UsageError(str(exc)) from None
    stream = _open_shop_list(args.shops)
    params = {
        "page_size": args.page_size,
        "sort": args.sort,
        "cat": args.cat,
        "cat_type": args.cat_type,
    }
    try:
        journal = CheckpointJournal.open(
            state_path, output, fmt, params=params, base_url=client.base_url
        )
    except (StateError, SinkError) as exc:
        close_shops(stream)
        raise UsageError(str(exc)) from None
    harvest = client.harvest(
        shop_lines(stream, shops),
        page_size=args.page_size,
        sort=args.sort,
        cat=args.cat,
        cat_type=args.cat_type,
        journal=journal,
        keep_items=False,
    )
    display = ProgressDisplay(
        harvest.progress,
        total_shops=count_shops(args.shops),
        mode=choose_mode(quiet=args.quiet, stream=sys.stderr),
        scrub=_secrets.scrub,
    )
    failures = _Failures(failures_path(output), output)
    stop = _Stop()
    fatal: BaseException | None = None
    export_items = 0
    if journal.resumed_position:
        display.log(f"resuming from {state_path}")
    if args.verbose:
        display.log(
            f"harvest to {output} ({fmt}), state {state_path}, "
            f"API {public_base_url(client.base_url)}, rate {args.rate:g}/s, "
            f"concurrency {args.concurrency}"
        )
    main_task = asyncio.current_task()

    def first() -> None:
        display.error(
            "stopping: no new requests; waiting for the ones in flight "
            "(press Ctrl-C again to quit at once; a rerun resumes either way)"
        )
        harvest.stop()

    def second() -> None:
        if main_task is not None:
            main_task.cancel()

    try:
        undo = _install_signals(stop, first, second)
        try:
            async with client:
                results = cast(AsyncGenerator[ShopResult, None], aiter(harvest))
                with display, _library_logs(display.log, verbose=args.verbose):
                    async with contextlib.aclosing(results):
                        async for result in results:
                            _report(result, shops, display, failures, verbose=args.verbose)
        except (FatalError, OSError, sqlite3.Error) as exc:
            fatal = exc
        except asyncio.CancelledError:
            if not stop.hard:
                raise
        finally:
            undo()
    finally:
        close_shops(stream)
        failures.close()
        try:
            export_items = journal.summary().items
            journal.close()
        except (OSError, SinkError, sqlite3.Error) as exc:
            display.error(f"error: cannot finish {output}: {exc}")
            fatal = fatal or exc
    progress = harvest.progress
    if not args.quiet:
        summary = HarvestSummary.from_progress(
            progress, export_items=export_items, pages_needed=progress.pages_planned
        )
        for line in summary.lines():
            _print(line)
        _print(f"export:   {output}" + (f" (failures: {failures.path})" if failures.count else ""))
    if stop.signal is not None and (fatal is None or isinstance(fatal, HarvestStopped)):
        _err(f"stopped by {signal.Signals(stop.signal).name}; rerun the same command to resume")
        return 128 + stop.signal
    if fatal is not None:
        if isinstance(fatal, FatalError):
            message = _fatal_message(fatal, args.max_requests)
        else:
            message = f"stopped: cannot write the export or the state: {fatal}"
        _err(f"{message}\nstate kept in {state_path}: rerun the same command to resume")
        return EXIT_STOPPED
    if failures.count:
        _err(f"{failures.count} shops failed; listed in {failures.path}")
        return EXIT_FAILED
    return EXIT_OK


def _report(
    result: ShopResult,
    shops: ShopList,
    display: ProgressDisplay,
    failures: _Failures,
    *,
    verbose: bool,
) -> None:
    if result.status == "complete":
        if verbose and result.pages and not result.requests:
            display.log(f"complete {result.shop_url}: harvested by an earlier run, skipped")
        elif verbose:
            display.log(
                f"complete {result.shop_url}: {result.item_count} items, {result.pages} pages, "
                f"{result.requests} requests"
            )
        return
    who, why = _describe(result, shops)
    display.error(f"{result.status}: {who}: {why}")
    failures.add(result.shop_url, f"{result.status}: {why}")


def _harvest_command(args: argparse.Namespace) -> int:
    return asyncio.run(run_harvest(args))


# -- estimate -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Estimate:
    shop: str
    total_count: int = 0
    page_size: int = 0
    pages: int = 0
    error: str | None = None


async def _estimate_one(client: Client, args: argparse.Namespace, shop: str) -> _Estimate:
    try:
        page = await client.get_shop_items(
            shop,
            page=1,
            page_size=args.page_size,
            sort=args.sort,
            cat=args.cat,
            cat_type=args.cat_type,
        )
    except FatalError:
        raise
    except TmapiError as exc:
        return _Estimate(shop, error=str(exc))
    size = page.page_size or args.page_size
    pages = max(1, math.ceil(page.total_count / size))
    return _Estimate(normalise_shop_url(shop), page.total_count, size, pages)


async def run_estimate(args: argparse.Namespace) -> int:
    """The ``estimate`` command, as a coroutine."""
    client = _client(args)
    shops = ShopList(args.shops)
    stream = _open_shop_list(args.shops)
    seen: set[str] = set()
    width = 36
    totals = {"shops": 0, "failed": 0, "duplicates": 0, "items": 0, "pages": 0}
    if not args.json:
        _print(f"{'shop':<{width}} {'items':>9} {'size':>5} {'pages':>7}  note")

    def show(est: _Estimate) -> None:
        totals["shops"] += 1
        if est.error is not None:
            totals["failed"] += 1
            where = shops.invalid.get(est.shop)
            note = f"line {where}: {est.error}" if where else est.error
            if args.json:
                _print(json.dumps({"shop_url": est.shop, "error": est.error}))
            else:
                _print(f"{est.shop:<{width}} {'-':>9} {'-':>5} {'-':>7}  failed: {note}")
            return
        totals["items"] += est.total_count
        totals["pages"] += est.pages
        if args.json:
            _print(
                json.dumps(
                    {
                        "shop_url": est.shop,
                        "total_count": est.total_count,
                        "page_size": est.page_size,
                        "pages": est.pages,
                    }
                )
            )
        else:
            _print(f"{est.shop:<{width}} {est.total_count:>9,} {est.page_size:>5} {est.pages:>7,}")

    window: list[asyncio.Task[_Estimate]] = []
    fatal: FatalError | None = None
    logs = _library_logs(_err, verbose=args.verbose)
    logs.__enter__()
    try:
        async with client:
            async for text in shop_lines(stream, shops):
                try:
                    key = normalise_shop_url(text)
                except InvalidParameterError:
                    key = text
                if key in seen:
                    totals["duplicates"] += 1
                    continue
                seen.add(key)
                window.append(asyncio.create_task(_estimate_one(client, args, text)))
                # Keep about 2x concurrency in flight; print in input order.
                while len(window) > 2 * args.concurrency:
                    show(await window.pop(0))
            while window:
                show(await window.pop(0))
    except FatalError as exc:
        fatal = exc
        for task in window:
            task.cancel()
        await asyncio.gather(*window, return_exceptions=True)
    finally:
        close_shops(stream)
        logs.__exit__(None, None, None)
    ok = totals["shops"] - totals["failed"]
    summary = {**totals, "requests_spent": client.requests, "requests_needed": totals["pages"]}
    if args.json:
        _print(json.dumps({"totals": summary}))
    elif not args.quiet:
        _print(
            f"\n{ok} shops, {totals['items']:,} items: a full harvest needs "
            f"{totals['pages']:,} requests (one per page, retries aside); "
            f"this estimate spent {client.requests:,}"
            + (f"; {totals['failed']} shops failed" if totals["failed"] else "")
            + (f"; {totals['duplicates']} duplicate lines skipped" if totals["duplicates"] else "")
        )
    if fatal is not None:
        _err(_fatal_message(fatal, None))
        return EXIT_STOPPED
    return EXIT_FAILED if totals["failed"] else EXIT_OK


def _estimate_command(args: argparse.Namespace) -> int:
    return asyncio.run(run_estimate(args))


# -- entry point --------------------------------------------------------------------------


def _collect_secrets(argv: Sequence[str]) -> None:
    """Learn the token before anything may print (argparse errors included)."""
    _secrets.add(os.environ.get("TMAPI_TOKEN"))
    for i, arg in enumerate(argv):
        if arg == "--token" and i + 1 < len(argv):
            _secrets.add(argv[i + 1])
        elif arg.startswith("--token="):
            _secrets.add(arg.partition("=")[2])


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tmapi-async``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _collect_secrets(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except UsageError as exc:
        _err(f"tmapi-async {args.command}: error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:  # before the signal handlers were installed
        _err("interrupted")
        return 128 + signal.SIGINT
    except BrokenPipeError:  # e.g. piped into head: not an error worth a traceback
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return EXIT_OK
