"""``harvest --redis``: the options of a harvest spread over workers, and its job."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Any

from ._options import non_negative_int

if TYPE_CHECKING:
    from ..export import ExportJournal
    from .harvest import HarvestOptions

__all__ = ["add_scale_out_options", "scale_out_job"]


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


def scale_out_job(
    options: HarvestOptions, journal: ExportJournal, shops: AsyncIterable[str]
) -> Any:
    """The coordinator of ``options`` (a :class:`~tmapi_async._redis.coordinator.RedisHarvest`)."""
    from .._redis.coordinator import LocalWorkers, RedisHarvest

    assert options.redis is not None
    client = options.client
    # The auth mode, not a scheme found out: each worker finds out its own.
    env = {"TMAPI_TOKEN": client.token, "TMAPI_REDIS_URL": options.redis, "TMAPI_AUTH": client.auth}
    if client.base_url:
        env["TMAPI_BASE_URL"] = client.base_url
    level = ["-v"] if options.verbose else ["-q"]
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
    )
