"""``harvest --redis``: the options of a harvest spread over workers, and its job."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Any

from ._options import non_negative_int, positive_float

if TYPE_CHECKING:
    from ..export import ExportJournal
    from .harvest import HarvestOptions

__all__ = ["add_redis_outage", "add_scale_out_options", "scale_out_job"]


def add_scale_out_options(parser: argparse.ArgumentParser) -> None:
    """``--redis URL`` and ``--workers N``."""
    group = parser.add_argument_group("scale out (Redis)")
    group.add_argument(
        "--redis",
        metavar="URL",
        help="harvest through this Redis: shops go to `tmapi-async worker` processes on "
        "any machine, the export is written here; --rate, --burst and --concurrency "
        "become the token's limits shared by every process",
    )
    group.add_argument(
        "--workers",
        type=non_negative_int,
        default=1,
        metavar="N",
        help="with --redis: worker processes to start on this machine "
        "(default %(default)s; 0 = only coordinate)",
    )
    add_redis_outage(group)


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
    options: HarvestOptions, journal: ExportJournal, shops: AsyncIterable[str]
) -> Any:
    """The coordinator of ``options`` (a :class:`~tmapi_async._redis.coordinator.RedisHarvest`)."""
    from .._redis.coordinator import LocalWorkers, RedisHarvest

    assert options.redis is not None
    client = options.client
    env = {"TMAPI_TOKEN": client.token, "TMAPI_REDIS_URL": options.redis}
    if client.base_url:
        env["TMAPI_BASE_URL"] = client.base_url
    level = ["-v"] if options.verbose else ["-q"]
    level += ["--redis-outage", repr(options.redis_outage)]
    workers = (
        LocalWorkers(options.workers, env=env, args=level, quiet=not options.verbose)
        if options.workers
        else None
    )
    return RedisHarvest(
        options.redis,
        journal,
        shops,
        output=options.output,
        params=options.listing.params,
        max_pages=options.listing.max_pages,
        workers=workers,
        limits=(client.token, client.rate, client.burst, client.concurrency),
        redis_outage=options.redis_outage,
    )
