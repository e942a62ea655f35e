"""``harvest --redis``: the options of a harvest spread over workers, and its job."""

from __future__ import annotations

import argparse
import re
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Any

from ._options import non_negative_int, positive_float
from ._output import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from ..export import ExportJournal
    from ._options import ClientOptions, ListingOptions

__all__ = [
    "add_redis_outage",
    "add_scale_out_options",
    "duration",
    "redis_option",
    "scale_out_job",
]

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> float:
    """``--keep``: seconds, or a number with a unit: ``90s``, ``30m``, ``12h``, ``7d``, ``2w``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if match is None or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(
            f"must be a duration such as 3600, 90s, 30m, 12h, 7d or 2w, got {text!r}"
        )
    return float(match[1]) * _UNITS[match[2]]


def add_scale_out_options(parser: argparse.ArgumentParser) -> None:
    """``--redis [URL]``, ``--workers N``, ``--keep DURATION``, ``--max-backlog PAGES``."""
    group = parser.add_argument_group("scale out (Redis)")
    group.add_argument(
        "--redis",
        metavar="URL",
        nargs="?",
        const="",
        help="harvest through this Redis (--redis alone: $TMAPI_REDIS_URL): shops go to "
        "`tmapi-async worker` processes on any machine, the export is written here; "
        "--rate, --burst and --concurrency, when given, become the token's limits shared "
        "by every process",
    )
    group.add_argument(
        "--workers",
        type=non_negative_int,
        default=1,
        metavar="N",
        help="with --redis: worker processes to start on this machine "
        "(default %(default)s; 0 = only coordinate)",
    )
    group.add_argument(
        "--keep",
        type=duration,
        default=7 * 86400.0,
        metavar="DURATION",
        help="with --redis: how long a finished harvest stays in Redis for `status` before "
        "its keys expire: seconds or 90s, 30m, 12h, 7d, 2w (default 7d)",
    )
    group.add_argument(
        "--max-backlog",
        type=non_negative_int,
        default=2000,
        metavar="PAGES",
        help="with --redis: workers stop fetching while this many committed pages wait "
        "to be exported here, and go on as they are (default %(default)s; 0 = no bound)",
    )
    add_redis_outage(group)


def redis_option(args: argparse.Namespace) -> str | None:
    """The Redis of ``--redis [URL]``: the URL, else ``$TMAPI_REDIS_URL`` for a bare
    ``--redis``; ``None`` without the flag (a harvest in this process).

    Raises:
        UsageError: a bare ``--redis`` without the variable, or a value that is no URL.
    """
    from .._redis.connection import redis_url_from_env

    if args.redis is None:
        return None
    url = redis_url_from_env(args.redis or None)
    if url is None:
        raise UsageError("--redis without a URL takes $TMAPI_REDIS_URL, which is not set")
    if "://" not in url:
        raise UsageError(f"--redis takes a URL such as redis://host:6379/0, got {url!r}")
    return url


def add_redis_outage(parser: Any) -> None:
    """``--redis-outage SECONDS`` (``harvest`` and ``worker``)."""
    parser.add_argument(
        "--redis-outage",
        type=positive_float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for a Redis that went away (restarted, unreachable): "
        "nothing new is sent meanwhile; past it the run stops, resumable (default %(default)g)",
    )


def scale_out_job(
    redis: str,
    journal: ExportJournal,
    shops: AsyncIterable[str],
    *,
    client: ClientOptions,
    listing: ListingOptions,
    output: Path,
    workers: int,
    verbose: bool,
    redis_outage: float,
    keep: float,
    max_backlog: int,
) -> Any:
    """The coordinator of a harvest through ``redis`` (a
    :class:`~tmapi_async._redis.coordinator.RedisHarvest`), with ``workers`` local
    worker processes and the other options of ``harvest --redis``."""
    from .._redis.coordinator import RedisHarvest
    from ._local_workers import LocalWorkers

    # The auth mode, not a scheme found out: each worker finds out its own.
    env = {"TMAPI_TOKEN": client.token, "TMAPI_REDIS_URL": redis, "TMAPI_AUTH": client.auth}
    if client.base_url:
        env["TMAPI_BASE_URL"] = client.base_url
    level = ["-v"] if verbose else ["-q"]
    level += ["--redis-outage", repr(redis_outage)]
    local = LocalWorkers(workers, env=env, args=level, quiet=not verbose) if workers else None
    # Only the limits given on the command line are set: the others stay as an operator
    # (or another process) set them in Redis, as with a Client's limits not set.
    return RedisHarvest(
        redis,
        journal,
        shops,
        output=output,
        listing=listing.listing(),
        max_pages=listing.max_pages,
        workers=local,
        token=client.token,
        limits=client.limits,
        keep=keep,
        max_backlog=max_backlog or None,
        redis_outage=redis_outage,
    )
