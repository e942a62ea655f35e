"""``harvest --with-profiles``: who sells each shop, into ``OUTPUT.shops.EXT``.

The profile harvest runs beside the items harvest, on the same client (so the same
throttle, ``--max-requests`` budget and key): the shop list passes through it on its
way to the items harvest, and its shops file shares the state file.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ._output import UsageError, clip

if TYPE_CHECKING:
    from .._profile_harvest import ProfileHarvest
    from ..export import ShopsJournal

__all__ = ["PROFILES_HELP", "add_profiles_option", "open_shops_journal", "profiles_running"]

PROFILES_HELP = """\
Shop profiles (--with-profiles): each shop's profile (/1688/shop/shop_info: company,
place, factory and flagship badges, ratings, favourites) and category tree
(/1688/shop/category) go to OUTPUT.shops.EXT in the export's format, one row per shop:
2 more requests per shop (tmapi-async estimate --with-profiles counts them), within
--max-requests and the same limits. A rerun asks no answer it holds.
"""


def add_profiles_option(group: Any, *, estimate: bool = False) -> None:
    """``--with-profiles`` (of ``harvest``, or of ``estimate``, which counts them)."""
    group.add_argument(
        "--with-profiles",
        action="store_true",
        help="count the 2 requests a shop of harvest --with-profiles"
        if estimate
        else "also fetch each shop's profile and category tree (2 requests a shop) into "
        "OUTPUT.shops.EXT, one row per shop",
    )


def with_profiles(args: argparse.Namespace) -> bool:
    """``--with-profiles``, checked against the other flags.

    Raises:
        UsageError: with ``--since``, which reads new listings only.
    """
    wanted = bool(getattr(args, "with_profiles", False))
    if wanted and getattr(args, "since", None) is not None:
        raise UsageError("--with-profiles cannot be used with --since: harvest profiles in full")
    return wanted


def open_shops_journal(options: Any) -> ShopsJournal:
    """The shops file of the harvest ``options`` (a ``HarvestOptions``), reopened at its
    committed position.

    Raises:
        UsageError: it cannot be opened, or exists without a state.
    """
    import sqlite3

    from ..export import ShopsJournal, SinkError

    try:
        return ShopsJournal.open(
            options.state, options.output, options.format, csv_raw=options.csv_raw
        )
    except SinkError as exc:
        raise UsageError(str(exc)) from None
    except sqlite3.Error as exc:
        raise UsageError(f"cannot open the state file {options.state}: {exc}") from None


@contextlib.asynccontextmanager
async def profiles_running(profiles: ProfileHarvest | None) -> AsyncIterator[None]:
    """Run ``profiles`` while the block runs (the items harvest); at its end wait for
    the profiles of the shops read so far. A fatal error of either raises."""
    if profiles is None:
        yield
        return
    import asyncio  # here: --help does not need it

    task = asyncio.create_task(profiles.run())
    try:
        yield
    except BaseException:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise
    await profiles.finish()  # a list cut short by a stop ends here
    await task


def report_profiles(session: Any, display: Any) -> None:
    """List each shop left without a profile in the failures file and the manifest."""
    from .._manifest import ManifestProfiles, scrub

    profiles: ProfileHarvest = session.profiles
    missing: dict[str, str] = {}
    for shop_url, error in profiles.progress.failed.items():
        why = f"no profile: {clip(str(error))}"
        display.error(f"profile: {shop_url}: {why}")
        session.failures.add(shop_url, why)
        missing[shop_url] = scrub(str(error))
    if session.manifest is not None:
        session.manifest.profiles = ManifestProfiles(
            shops_file=str(session.shops_journal.path), rows=session.shop_rows, missing=missing
        )
