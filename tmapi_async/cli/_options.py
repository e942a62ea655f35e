"""The options the commands share: argparse types, option groups, and the frozen values
a command builds once from its parsed arguments (so nothing downstream reads argparse).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._errors import InvalidParameterError
from .._limits import DEFAULT_CONCURRENCY, DEFAULT_RATE, Limits
from .._listing import SORTS, Listing
from ._output import UsageError, secrets

__all__ = [
    "AUTH_MODES",
    "ClientOptions",
    "ListingOptions",
    "add_client_options",
    "add_listing_options",
    "add_output_level",
    "int_at_least",
    "positive_float",
]


def int_at_least(minimum: int) -> Callable[[str], int]:
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


#: The values of ``--auth`` (the library's ``AUTH_MODES``, written out for the same reason).
AUTH_MODES = ("auto", "header", "query")

AUTH_HELP = (
    "how the key is sent: auto (default: $TMAPI_AUTH, else auto) sends it as the "
    "`apikey` header and, if refused (401/403), once as the `apiToken` query parameter, "
    "then keeps what worked; header or query send it only that way"
)

positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_float(text: str) -> float:
    """An argparse type: a finite number above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


# -- the API and its throttle -------------------------------------------------------------


def add_auth_option(group: Any) -> None:
    """``--auth auto|header|query``."""
    group.add_argument("--auth", choices=AUTH_MODES, help=AUTH_HELP)


def auth_option(args: argparse.Namespace) -> str:
    """``--auth``, else ``$TMAPI_AUTH``, else ``auto``.

    Raises:
        UsageError: ``$TMAPI_AUTH`` holds another value (the message names the valid ones).
    """
    value = args.auth or os.environ.get("TMAPI_AUTH") or "auto"
    if value.strip().lower() not in AUTH_MODES:
        raise UsageError(f"TMAPI_AUTH must be one of {', '.join(AUTH_MODES)}, got {value!r}")
    return value.strip().lower()


def add_client_options(parser: argparse.ArgumentParser, *, budget: bool) -> None:
    """``--token``, ``--auth``, ``--base-url`` and the throttle; ``--max-requests`` if
    ``budget``."""
    api = parser.add_argument_group("API and throttle")
    api.add_argument(
        "--token",
        action="append",
        metavar="TOKEN",
        help="TMAPI apiToken; repeat it to use several tokens, each with the limits below "
        "(default: $TMAPI_TOKEN, which may hold several separated by commas; prefer the "
        "variable: a flag shows in the process list)",
    )
    add_auth_option(api)
    api.add_argument(
        "--base-url",
        metavar="URL",
        help="API base URL (default: $TMAPI_BASE_URL or https://api.tmapi.io)",
    )
    # Not given: None, so that a harvest through Redis sets only the limits given.
    api.add_argument(
        "--rate",
        type=positive_float,
        metavar="R",
        help=f"requests per second, sustained (default {DEFAULT_RATE:g})",
    )
    api.add_argument(
        "--burst",
        type=positive_int,
        metavar="B",
        help="requests that may leave at once after idle (default: about R/20, at least 1)",
    )
    api.add_argument(
        "--concurrency",
        type=positive_int,
        metavar="C",
        help=f"most requests in flight; lowered by itself on 503 (default {DEFAULT_CONCURRENCY})",
    )
    api.add_argument(
        "--timeout",
        type=positive_float,
        default=60.0,
        metavar="SECONDS",
        help="timeout of one request (default %(default)s, as TMAPI advises)",
    )
    if budget:
        api.add_argument(
            "--max-requests",
            type=non_negative_int,
            metavar="N",
            help="stop cleanly (exit 3, resumable) once N billed requests are spent",
        )


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How to reach the API and how fast."""

    token: str
    base_url: str | None
    rate: float | None  #: None when not given (so for the other limits)
    burst: int | None
    concurrency: int | None
    timeout: float
    max_requests: int | None = None
    auth: str = "auto"  #: how each key is sent (each finds out its own way in auto)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ClientOptions:
        """From parsed arguments; the token from ``--token``, else ``$TMAPI_TOKEN``.

        Raises:
            UsageError: there is no token.
        """
        given = args.token  # a list: --token may be given several times
        token = ",".join(given) if given else os.environ.get("TMAPI_TOKEN")
        secrets.add(token)
        if not token or not token.strip():
            raise UsageError("no API token: set TMAPI_TOKEN (or pass --token)")
        return cls(
            token=token,
            base_url=args.base_url,
            rate=args.rate,
            burst=args.burst,
            concurrency=args.concurrency,
            timeout=args.timeout,
            max_requests=getattr(args, "max_requests", None),
            auth=auth_option(args),
        )

    @property
    def limits(self) -> Limits:
        """The limits given (a limit not given is not set).

        Raises:
            InvalidParameterError: the library refuses one.
        """
        return Limits(
            rate=self.rate,
            burst=self.burst,
            concurrency=self.concurrency,
            max_requests=self.max_requests,
        )

    def client(self, metrics: Any = None, redis_url: str | None = None) -> Any:
        """A :class:`~tmapi_async.Client` with these options (imported only now),
        keeping ``metrics`` (a :class:`~tmapi_async.Metrics`) if given, sharing the
        token's limits through ``redis_url`` if given.

        Raises:
            UsageError: the library refuses an option.
        """
        from .._errors import InvalidParameterError
        from ._tokens import client_of

        try:
            return client_of(
                self.token,
                auth=self.auth,
                base_url=self.base_url,
                limits=self.limits,
                timeout=self.timeout,
                metrics=metrics,
                **({} if redis_url is None else {"redis_url": redis_url}),
            )
        except InvalidParameterError as exc:
            raise UsageError(str(exc)) from None


# -- the listing --------------------------------------------------------------------------


def add_listing_options(parser: argparse.ArgumentParser) -> None:
    """Page size, sort, category and the bound on pages per shop."""
    listing = parser.add_argument_group("listing")
    listing.add_argument(
        "--page-size",
        type=positive_int,
        default=20,
        metavar="N",
        help="items per page to ask for; the server may answer with fewer (default 20)",
    )
    listing.add_argument(
        "--sort",
        choices=SORTS,
        default="default",
        help="order of the listing (default %(default)s)",
    )
    listing.add_argument("--cat", metavar="ID", help="only this shop category id")
    listing.add_argument(
        "--cat-type", choices=["0", "1"], help="category type, passed to the API as is"
    )
    listing.add_argument(
        "--max-pages",
        type=positive_int,
        metavar="N",
        help="read at most N pages of a shop; a shop with more ends partial "
        "(default: the library's bound, far above what real shops reach)",
    )


@dataclass(frozen=True, slots=True)
class ListingOptions:
    """Which listing of each shop to read, and the bound on pages per shop."""

    page_size: int
    sort: str
    cat: str | None
    cat_type: str | None
    max_pages: int | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ListingOptions:
        """From parsed arguments, validated by the library before any file is touched.

        Raises:
            UsageError: the library refuses the combination.
        """
        options = cls(args.page_size, args.sort, args.cat, args.cat_type, args.max_pages)
        options.listing()
        return options

    def listing(self) -> Listing:
        """The library's :class:`~tmapi_async.Listing` of these options.

        Raises:
            UsageError: the library refuses them.
        """
        try:
            return Listing(self.page_size, self.sort, self.cat, self.cat_type)
        except InvalidParameterError as exc:
            raise UsageError(str(exc)) from None


def add_output_level(parser: argparse.ArgumentParser) -> None:
    """``-v`` / ``-q``."""
    level = parser.add_mutually_exclusive_group()
    level.add_argument(
        "-v", "--verbose", action="store_true", help="also name every shop as it finishes"
    )
    level.add_argument(
        "-q", "--quiet", action="store_true", help="no progress and no summary; errors only"
    )
