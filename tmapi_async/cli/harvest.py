"""``tmapi-async harvest``: every product of the shops of a list into one export,
resumable after any stop."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, cast

from .._formats import FORMATS, ExportFormat, format_of
from ._exit import ExitCode
from ._failures import Failures, describe
from ._logs import add_log_format
from ._metrics_http import MetricsOptions, add_metrics_options, metrics_option, serve_metrics
from ._monitor import (
    SINCE_HELP,
    add_since_option,
    finish_manifest,
    known_items,
    since_option,
    start_manifest,
)
from ._options import (
    ClientOptions,
    ListingOptions,
    add_client_options,
    add_listing_options,
    add_output_level,
)
from ._output import UsageError, err, fatal_message, library_logs, say, secrets
from ._profiles import (
    PROFILES_HELP,
    add_profiles_option,
    open_shops_journal,
    profiles_running,
    report_profiles,
    with_profiles,
)
from ._scale_out import add_scale_out_options, redis_option, scale_out_job
from ._signals import Stop

if TYPE_CHECKING:
    from .._shop import ShopResult
    from ..export import ExportJournal
    from ._display import ProgressDisplay
    from ._shoplist import ShopList

__all__ = ["HarvestOptions", "add_parser", "harvest", "run"]


EPILOG = """\
SHOPS is a text file with one shop URL per line (https://NAME.1688.com/, or any page of
the shop); blank lines and lines starting with # are ignored; - reads standard input.
Shops that resolve to the same shop are harvested once.

Resume: the state file (default OUTPUT.state.db) records every page with the export's
position in one transaction. After any stop (Ctrl-C, SIGTERM, kill -9, a bad token, an
empty balance, --max-requests) rerun the same command: pages already read are not
requested again and the export ends with every item exactly once. Shops that failed are
tried again; failures of the last run are listed in OUTPUT.failures.txt, itself a valid
SHOPS file. Parquet is written at the end of each run from OUTPUT.spool.jsonl.

CSV is made safe to open in a spreadsheet: a text cell starting with =, +, -, @, TAB or
CR (which a spreadsheet would run as a formula) gets a leading apostrophe; --csv-raw
writes the text as sent. JSON Lines and Parquet always keep the text as sent.

examples:
  tmapi-async harvest shops.txt --output items.jsonl
  tmapi-async harvest shops.txt --output items.parquet --max-requests 5000
  TMAPI_BASE_URL=http://127.0.0.1:8080 tmapi-async harvest shops.txt -o out.csv
  TMAPI_REDIS_URL=redis://:pw@10.0.0.5:6379/0 tmapi-async harvest shops.txt -o items.jsonl \\
      --redis --workers 0 --keep 2d --max-backlog 5000   # workers anywhere; see status
"""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``harvest`` to the subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "harvest",
        help="harvest the shops of a list into an export (resumable)",
        description="Harvest every product of the shops listed in SHOPS into OUTPUT, one "
        "row per item. Progress on stderr, a summary at the end.",
        epilog=f"{EPILOG}\n{PROFILES_HELP}\n{SINCE_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("shops", metavar="SHOPS", help="file of shop URLs, one a line; - = stdin")
    out = parser.add_argument_group("output")
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
    out.add_argument(
        "--csv-raw",
        action="store_true",
        help="CSV: write text cells as sent, without the apostrophe that stops a "
        "spreadsheet from running =, +, -, @ cells as formulas",
    )
    add_profiles_option(out)
    add_listing_options(parser)
    add_since_option(parser)
    add_client_options(parser, budget=True)
    add_scale_out_options(parser)
    add_metrics_options(parser)
    add_output_level(parser)
    add_log_format(parser)
    return parser


@dataclass(frozen=True, slots=True)
class HarvestOptions:
    """Everything a harvest run needs, decided before anything is opened."""

    shops: str  #: the SHOPS file, or ``-`` for standard input
    output: Path
    format: ExportFormat
    state: Path
    listing: ListingOptions
    client: ClientOptions
    csv_raw: bool = False
    verbose: bool = False
    quiet: bool = False
    redis: str | None = None  #: harvest through this Redis (workers anywhere)
    workers: int = 1  #: with ``redis``: local worker processes
    redis_outage: float = 60.0  #: seconds every process waits for Redis when it goes away
    since: Path | None = None  #: new listings only: those this earlier export lacks
    keep: float = 7 * 86400.0  #: with ``redis``: seconds a finished harvest is kept
    max_backlog: int = 2000  #: with ``redis``: unexported pages that hold workers back
    metrics: MetricsOptions | None = None  #: serve ``/metrics`` while running
    log_format: Literal["text", "json"] = "text"  #: what stderr says: lines, or JSON lines
    with_profiles: bool = False  #: each shop's profile and categories into OUTPUT.shops.EXT

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> HarvestOptions:
        """From parsed arguments: the format from the extension, the state beside."""
        output: Path = args.output
        if not output.parent.is_dir():
            raise UsageError(f"cannot write {output}: directory {output.parent} does not exist")
        since = since_option(args)  # before the listing: it makes the sort time_down
        client = ClientOptions.from_args(args)
        return cls(
            shops=args.shops,
            output=output,
            format=args.format or format_of(output) or "jsonl",
            state=args.state or output.with_name(output.name + ".state.db"),
            listing=ListingOptions.from_args(args),
            client=client,
            csv_raw=args.csv_raw,
            verbose=args.verbose,
            quiet=args.quiet,
            redis=redis_option(args),
            workers=args.workers,
            redis_outage=args.redis_outage,
            since=since,
            keep=args.keep,
            max_backlog=args.max_backlog,
            metrics=metrics_option(args),
            log_format=getattr(args, "log_format", "text"),
            with_profiles=with_profiles(args),
        )


def run(args: argparse.Namespace) -> int:
    """The ``harvest`` command; returns the exit code."""
    import asyncio  # here, not above: --help does not need it

    return asyncio.run(harvest(HarvestOptions.from_args(args)))


# -- the run ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Run:
    """What one harvest run holds open, and how it ended."""

    options: HarvestOptions
    client: Any
    shops: ShopList
    stream: IO[bytes]
    journal: ExportJournal
    failures: Failures
    stop: Stop
    fatal: BaseException | None = None
    export_items: int = 0
    manifest: Any = None  #: the run's ManifestRecorder (OUTPUT.manifest.json)
    metrics: Any = None  #: the run's Metrics, with --metrics-port
    shops_journal: Any = None  #: with --with-profiles: the ShopsJournal of OUTPUT.shops.EXT
    shop_rows: int = 0  #: with --with-profiles: shops in OUTPUT.shops.EXT, every run
    profiles: Any = None  #: with --with-profiles: the run's ProfileHarvest


async def harvest(options: HarvestOptions) -> int:
    """Run a harvest (the ``harvest`` command and the demo); returns the exit code.

    Raises:
        UsageError: SHOPS cannot be read, or the state or export cannot be opened.
    """
    json_logs = options.log_format == "json"
    if json_logs:
        from ._logs import use_json

        use_json()
    known = known_items(options.since)
    session = _open(options)
    session.manifest = start_manifest(options)
    shops = _shop_texts(session)
    if session.shops_journal is not None:
        from .._profile_harvest import ProfileHarvest

        session.profiles = ProfileHarvest(session.client, session.shops_journal)
        shops = session.profiles.tee(shops)
    job = (
        scale_out_job(
            options.redis,
            session.journal,
            shops,
            client=options.client,
            listing=options.listing,
            output=options.output,
            workers=options.workers,
            verbose=options.verbose,
            redis_outage=options.redis_outage,
            keep=options.keep,
            max_backlog=options.max_backlog,
        )
        if options.redis is not None
        else session.client.harvest(
            shops,
            listing=options.listing.listing(),
            max_pages=options.listing.max_pages,
            journal=session.journal,
            keep_items=False,
            known=known,
        )
    )
    from ._display import ProgressDisplay, choose_mode
    from ._shoplist import count_shops

    if json_logs and options.redis is not None:
        from ._logs import context

        context(harvest_id=job.hid)
    display = ProgressDisplay(
        job.progress,
        total_shops=count_shops(options.shops),
        mode="json" if json_logs else choose_mode(quiet=options.quiet, stream=sys.stderr),
        scrub=secrets.scrub,
    )
    if options.redis is not None:
        job.on_event = display.log
    _announce(session, display)
    try:
        async with contextlib.AsyncExitStack() as serving:
            if options.metrics is not None:
                if options.redis is not None:  # the workers send; the harvest is here
                    session.metrics.watch(job.progress)
                await serving.enter_async_context(
                    serve_metrics(
                        session.metrics, options.metrics, display.log, redis_url=options.redis
                    )
                )
            await _drive(session, job, display)
    finally:
        _close(session, display)
        finish_manifest(session, display)
    if not options.quiet:
        _print_summary(session, job.progress)
    if json_logs:
        _finished_event(session, job.progress)
    return _exit_code(session)


def _open(options: HarvestOptions) -> _Run:
    """The client, SHOPS and the journal (which reopens the export), or a UsageError."""
    import sqlite3

    from ..export import ExportJournal, JournalError, SinkError
    from ._shoplist import ShopList, ShopListError, close_shops, open_shops

    metrics = None if options.metrics is None else options.metrics.metrics()
    # With --redis and --with-profiles, this process asks the profiles itself: within
    # the limits the token's workers share through that Redis.
    shared = options.redis if options.with_profiles else None
    client = options.client.client(metrics=metrics, redis_url=shared)
    try:
        stream = open_shops(options.shops)
    except ShopListError as exc:
        raise UsageError(str(exc)) from None
    try:
        journal = ExportJournal.open(
            options.state,
            options.output,
            options.format,
            listing=options.listing.listing(),
            base_url=client.base_url,
            csv_raw=options.csv_raw,
        )
    except (JournalError, SinkError) as exc:
        close_shops(stream)
        raise UsageError(str(exc)) from None
    except (OSError, sqlite3.Error) as exc:
        close_shops(stream)
        raise UsageError(f"cannot open the state file {options.state}: {exc}") from None
    try:
        shops_journal = open_shops_journal(options) if options.with_profiles else None
    except UsageError:
        close_shops(stream)
        journal.close()
        raise
    return _Run(
        options,
        client,
        ShopList(options.shops),
        stream,
        journal,
        Failures(options.output),
        Stop(),
        metrics=metrics,
        shops_journal=shops_journal,
    )


def _shop_texts(session: _Run) -> Any:
    from ._shoplist import shop_lines

    return shop_lines(session.stream, session.shops)


def _announce(session: _Run, display: ProgressDisplay) -> None:
    from ..export import public_base_url

    options = session.options
    if session.journal.resumed_position:
        display.log(f"resuming from {options.state}")
    if options.verbose:
        limits = options.client.limits
        display.log(
            f"harvest to {options.output} ({options.format}), state {options.state}, "
            f"API {public_base_url(session.client.base_url)}, "
            f"rate {limits.rate_or_default:g}/s, "
            f"concurrency {limits.concurrency_or_default}"
        )


async def _drive(session: _Run, job: Any, display: ProgressDisplay) -> None:
    """Run the harvest to its end, a fatal error or a stop; report each failed shop."""
    import asyncio
    import sqlite3

    from .._errors import FatalError
    from ._signals import install_signals

    main_task = asyncio.current_task()

    def first() -> None:
        display.error(
            "stopping: no new requests; waiting for the ones in flight "
            "(press Ctrl-C again to quit at once; a rerun resumes either way)"
        )
        job.stop()

    def second() -> None:
        if main_task is not None:
            main_task.cancel()

    undo = install_signals(session.stop, first, second)
    try:
        async with session.client, profiles_running(session.profiles):
            results = cast(AsyncGenerator["ShopResult", None], aiter(job))
            with display, library_logs(display.log, verbose=session.options.verbose):
                async with contextlib.aclosing(results):
                    async for result in results:
                        _report(session, result, display)
    except (FatalError, OSError, sqlite3.Error) as exc:
        session.fatal = exc
    except asyncio.CancelledError:
        if not session.stop.hard:
            raise
    finally:
        undo()


def _scrubbed(result: ShopResult) -> ShopResult:
    """``result`` as the manifest may keep it: an invalid line may hold anything, even
    a token, and the error quotes it."""
    shop = secrets.scrub(result.shop_url)
    if shop == result.shop_url:
        return result
    from .._errors import InvalidParameterError

    error = (
        None if result.error is None else InvalidParameterError(secrets.scrub(str(result.error)))
    )
    return replace(result, shop_url=shop, error=error)


def _report(session: _Run, result: ShopResult, display: ProgressDisplay) -> None:
    session.manifest.add(_scrubbed(result))
    if display.mode == "json":
        _shop_event(session, result)
        return
    if result.status == "complete":
        if session.options.verbose and result.pages and not result.requests:
            display.log(f"complete {result.shop_url}: harvested by an earlier run, skipped")
        elif session.options.verbose:
            display.log(
                f"complete {result.shop_url}: {result.item_count} items, {result.pages} pages, "
                f"{result.requests} requests"
            )
        return
    who, why = describe(result, session.shops)
    display.error(f"{result.status}: {who}: {why}")
    session.failures.add(result.shop_url, f"{result.status}: {why}")


def _shop_event(session: _Run, result: ShopResult) -> None:
    """``--log-format json``: one ``shop_finished`` line per shop."""
    import logging

    from ._logs import event

    reason = None
    if result.status != "complete":
        _who, reason = describe(result, session.shops)
        session.failures.add(result.shop_url, f"{result.status}: {reason}")
    event(
        "shop_finished",
        level=logging.INFO if result.status == "complete" else logging.WARNING,
        shop=result.shop_url,
        status=result.status,
        items=result.item_count,
        pages=result.pages,
        requests=result.requests,
        error=reason,
    )


def _finished_event(session: _Run, progress: Any) -> None:
    """``--log-format json``: the summary as one ``harvest_finished`` line."""
    from ._logs import event

    event(
        "harvest_finished",
        shops_complete=progress.shops_complete,
        shops_partial=progress.shops_partial,
        shops_failed=progress.shops_failed,
        shops_resumed=progress.shops_resumed,
        items=progress.items,
        export_items=session.export_items,
        pages=progress.pages_done,
        requests=progress.requests,
        retries=progress.retries,
        elapsed_s=round(progress.elapsed, 3),
        output=str(session.options.output),
        **_profile_fields(session),
    )


def _profile_fields(session: _Run) -> dict[str, Any]:
    """With --with-profiles: the shops in OUTPUT.shops.EXT, for harvest_finished."""
    return {} if session.shops_journal is None else {"profiles": session.shop_rows}


def _close(session: _Run, display: ProgressDisplay) -> None:
    """Close SHOPS, the failures file and the journal (which finishes the export)."""
    import sqlite3

    from ..export import SinkError
    from ._shoplist import close_shops

    close_shops(session.stream)
    shops_file = session.shops_journal
    if shops_file is not None:  # the shops file first: it shares the export's state file
        try:
            session.shop_rows = shops_file.rows
            report_profiles(session, display)
            shops_file.close()
        except (OSError, SinkError, sqlite3.Error) as exc:
            display.error(f"error: cannot finish {shops_file.path}: {exc}")
            session.fatal = session.fatal or exc
    session.failures.close()
    try:
        session.export_items = session.journal.summary().items
        session.journal.close()
    except (OSError, SinkError, sqlite3.Error) as exc:
        display.error(f"error: cannot finish {session.options.output}: {exc}")
        session.fatal = session.fatal or exc


def _print_summary(session: _Run, progress: Any) -> None:
    from ._display import HarvestSummary
    from ._tokens import token_lines

    answers = 0 if session.profiles is None else session.profiles.progress.answers
    summary = HarvestSummary.from_progress(
        progress,
        export_items=session.export_items,
        pages_needed=progress.pages_planned,
        # Through Redis the workers' requests are counted, not this process's profiles.
        profile_answers=answers if session.options.redis is None else 0,
    )
    # With --redis the workers send the requests, not this process's client.
    pool = session.client if session.options.redis is None else None
    for line in [*summary.lines(), *token_lines(pool)]:
        say(line)
    failures = session.failures
    say(
        f"export:   {session.options.output}"
        + (f" (failures: {failures.path})" if failures.count else "")
    )
    if session.shops_journal is not None:
        say(
            f"profiles: {session.shops_journal.path} ({session.shop_rows} shops; "
            f"{answers:,} answers this run)"
        )


def _exit_code(session: _Run) -> int:
    from .._errors import FatalError, HarvestStopped
    from ._tokens import stop_message

    stop, fatal = session.stop, session.fatal
    if stop.signal is not None and (fatal is None or isinstance(fatal, HarvestStopped)):
        err(f"stopped by {signal.Signals(stop.signal).name}; rerun the same command to resume")
        return ExitCode.SIGINT if stop.signal == signal.SIGINT else ExitCode.SIGTERM
    if fatal is not None:
        if isinstance(fatal, FatalError):
            message = fatal_message(fatal, session.options.client.max_requests)
            message = stop_message(session.client, fatal, message)
        else:
            message = f"stopped: cannot write the export or the state: {fatal}"
        err(f"{message}\nstate kept in {session.options.state}: rerun the same command to resume")
        return ExitCode.FATAL
    if session.failures.count:
        err(f"{session.failures.count} shops failed; listed in {session.failures.path}")
        return ExitCode.SHOPS_FAILED
    return ExitCode.OK
