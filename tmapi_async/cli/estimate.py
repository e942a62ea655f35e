"""``tmapi-async estimate``: page 1 of each shop, and what a full harvest will cost."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._exit import ExitCode
from ._options import (
    ClientOptions,
    ListingOptions,
    add_client_options,
    add_listing_options,
    add_output_level,
)
from ._output import UsageError, clip, err, fatal_message, library_logs, say
from ._profiles import add_profiles_option

if TYPE_CHECKING:
    import asyncio

    from ._shoplist import ShopList

__all__ = ["EstimateOptions", "add_parser", "estimate", "run"]

EPILOG = """\
Fetches page 1 of each shop (one billed request each, retries aside) and prints, per
shop, its total_count, the page size the server answers with and the pages a full
harvest needs; the totals give the requests a harvest will cost (each page once, at most
--max-pages a shop). --with-profiles adds the 2 requests a shop of harvest --with-profiles
(its profile and its category tree), which the estimate does not send.

examples:
  tmapi-async estimate shops.txt
  tmapi-async estimate shops.txt --page-size 20 --json > estimate.jsonl
"""

_WIDTH = 36  # of the shop column


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``estimate`` to the subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "estimate",
        help="fetch page 1 of each shop: the pages and requests a harvest will cost",
        description="Estimate the cost of harvesting the shops in SHOPS.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("shops", metavar="SHOPS", help="file of shop URLs, one a line; - = stdin")
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per shop and one of totals"
    )
    add_profiles_option(parser, estimate=True)
    add_listing_options(parser)
    add_client_options(parser, budget=False)
    add_output_level(parser)
    return parser


@dataclass(frozen=True, slots=True)
class EstimateOptions:
    """Everything an estimate needs."""

    shops: str
    listing: ListingOptions
    client: ClientOptions
    json: bool = False
    verbose: bool = False
    quiet: bool = False
    with_profiles: bool = False  #: count the 2 requests a shop of harvest --with-profiles

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EstimateOptions:
        """From parsed arguments."""
        client = ClientOptions.from_args(args)
        return cls(
            args.shops,
            ListingOptions.from_args(args),
            client,
            args.json,
            args.verbose,
            args.quiet,
            with_profiles=getattr(args, "with_profiles", False),
        )


def run(args: argparse.Namespace) -> int:
    """The ``estimate`` command; returns the exit code."""
    import asyncio  # here, not above: --help does not need it

    return asyncio.run(estimate(EstimateOptions.from_args(args)))


@dataclass(slots=True)
class _Estimate:
    shop: str
    total_count: int = 0
    page_size: int = 0
    pages: int = 0
    error: str | None = None


@dataclass(slots=True)
class _Totals:
    shops: int = 0
    failed: int = 0
    duplicates: int = 0
    items: int = 0
    pages: int = 0
    profiles: int = 0  #: requests for profiles and categories (--with-profiles)
    seen: set[str] = field(default_factory=set)

    def needed(self) -> int:
        """Requests a full harvest costs: each page once, and the profiles."""
        return self.pages + self.profiles


async def _estimate_one(client: Any, options: EstimateOptions, query: Any, shop: str) -> _Estimate:
    from .._errors import FatalError, TmapiError
    from .._protocol import normalise_shop_url

    listing = options.listing
    try:
        page = await client.get_shop_items(shop, page=1, listing=query)
    except FatalError:
        raise
    except TmapiError as exc:
        return _Estimate(shop, error=clip(str(exc)))
    size = page.page_size or listing.page_size
    pages = max(1, math.ceil(page.total_count / size))
    if listing.max_pages is not None:
        pages = min(pages, listing.max_pages)
    return _Estimate(normalise_shop_url(shop), page.total_count, size, pages)


def _show(options: EstimateOptions, totals: _Totals, shops: ShopList, est: _Estimate) -> None:
    totals.shops += 1
    if est.error is not None:
        totals.failed += 1
        where = shops.invalid.get(est.shop)
        note = f"line {where}: {est.error}" if where else est.error
        if options.json:
            say(json.dumps({"shop_url": est.shop, "error": est.error}))
        else:
            name = est.shop if len(est.shop) <= _WIDTH else est.shop[: _WIDTH - 1] + "…"
            say(f"{name:<{_WIDTH}} {'-':>9} {'-':>5} {'-':>7}  failed: {note}")
        return
    totals.items += est.total_count
    totals.pages += est.pages
    if options.json:
        say(
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
        say(f"{est.shop:<{_WIDTH}} {est.total_count:>9,} {est.page_size:>5} {est.pages:>7,}")


async def estimate(options: EstimateOptions) -> int:
    """Estimate the shops of ``options.shops``; returns the exit code."""
    import asyncio

    from .._errors import FatalError, InvalidParameterError
    from .._protocol import normalise_shop_url
    from ._shoplist import ShopList, ShopListError, close_shops, open_shops, shop_lines

    client = options.client.client()
    query = options.listing.listing()
    shops = ShopList(options.shops)
    try:
        stream = open_shops(options.shops)
    except ShopListError as exc:
        raise UsageError(str(exc)) from None
    totals = _Totals()
    if not options.json:
        say(f"{'shop':<{_WIDTH}} {'items':>9} {'size':>5} {'pages':>7}  note")
    window: list[asyncio.Task[_Estimate]] = []
    fatal: FatalError | None = None
    try:
        with library_logs(err, verbose=options.verbose):
            async with client:
                async for text in shop_lines(stream, shops):
                    try:
                        key = normalise_shop_url(text)
                        valid = True
                    except InvalidParameterError:
                        key, valid = text, False
                    if key in totals.seen:
                        totals.duplicates += 1
                        continue
                    totals.seen.add(key)
                    if valid and options.with_profiles:  # a profile and a category tree
                        totals.profiles += 2
                    window.append(asyncio.create_task(_estimate_one(client, options, query, text)))
                    # Keep about 2x concurrency in flight; print in input order.
                    while len(window) > 2 * client.concurrency:
                        _show(options, totals, shops, await window.pop(0))
                while window:
                    _show(options, totals, shops, await window.pop(0))
    except FatalError as exc:
        fatal = exc
        for task in window:
            task.cancel()
        await asyncio.gather(*window, return_exceptions=True)
    finally:
        close_shops(stream)
    from ._tokens import stop_message, token_lines

    _print_totals(options, totals, client.requests)
    if not options.json and not options.quiet:
        for line in token_lines(client):
            say(line)
    if fatal is not None:
        err(stop_message(client, fatal, fatal_message(fatal, None)))
        return ExitCode.FATAL
    return ExitCode.SHOPS_FAILED if totals.failed else ExitCode.OK


def _print_totals(options: EstimateOptions, totals: _Totals, spent: int) -> None:
    if options.json:
        summary = {
            "shops": totals.shops,
            "failed": totals.failed,
            "duplicates": totals.duplicates,
            "items": totals.items,
            "pages": totals.pages,
            "requests_spent": spent,
            "requests_needed": totals.needed(),
        }
        if options.with_profiles:
            summary["profile_requests"] = totals.profiles
        say(json.dumps({"totals": summary}))
    elif not options.quiet:
        ok = totals.shops - totals.failed
        why = (
            f"one per page and {totals.profiles:,} for profiles"
            if options.with_profiles
            else "one per page"
        )
        say(
            f"\n{ok} shops, {totals.items:,} items: a full harvest needs "
            f"{totals.needed():,} requests ({why}, retries aside); "
            f"this estimate spent {spent:,}"
            + (f"; {totals.failed} shops failed" if totals.failed else "")
            + (f"; {totals.duplicates} duplicate lines skipped" if totals.duplicates else "")
        )
