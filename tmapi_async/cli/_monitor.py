"""What makes harvests recurring: the manifest (``OUTPUT.manifest.json``), started with the
run and written at its end, and ``--since PREVIOUS`` (new listings only)."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._output import UsageError, secrets

if TYPE_CHECKING:
    from .._manifest import ManifestRecorder
    from .._new_listings import KnownItems

__all__ = [
    "SINCE_HELP",
    "add_since_option",
    "finish_manifest",
    "known_items",
    "since_option",
    "start_manifest",
]

SINCE_HELP = """\
New listings only (--since PREVIOUS): each shop is listed newest first (sort=time_down);
each page's items that PREVIOUS (an earlier export, any format) does not hold are
exported, and the shop stops at the first page holding one it does, or at its end: about
one page per shop when little is new. It relies on the newest-first order and cannot see
price changes or sell-outs: for those, harvest in full and run tmapi-async diff. A shop
cut off by a stop is read again from its first page on resume.
"""


def add_since_option(parser: argparse.ArgumentParser) -> None:
    """``--since PREVIOUS_EXPORT``."""
    parser.add_argument(
        "--since",
        type=Path,
        metavar="PREVIOUS",
        help="export only listings that the earlier export PREVIOUS does not hold, reading "
        "each shop newest first until a page shows one it does (about 1 page a shop)",
    )


def since_option(args: argparse.Namespace) -> Path | None:
    """``--since`` checked against the other flags; it makes the listing ``time_down``.

    Raises:
        UsageError: a conflicting ``--sort``, ``--redis``, or PREVIOUS is the output.
    """
    since: Path | None = getattr(args, "since", None)
    if since is None:
        return None
    if args.sort not in ("default", "time_down"):
        raise UsageError(
            f"--since reads each shop newest first (--sort time_down); --sort {args.sort} "
            "conflicts with it: drop --sort"
        )
    if getattr(args, "redis", None) is not None:
        raise UsageError("--since cannot be used with --redis yet: harvest locally")
    if since.resolve() == Path(args.output).resolve():
        raise UsageError(f"--since {since} is the output itself: give the previous export")
    args.sort = "time_down"
    return since


def known_items(since: Path | None) -> KnownItems | None:
    """The index of PREVIOUS's items, or a UsageError when it cannot be read."""
    if since is None:
        return None
    from .._export_reader import ExportReadError
    from .._new_listings import KnownItems

    try:
        return KnownItems.from_export(since)
    except ExportReadError as exc:
        raise UsageError(f"--since: {exc}") from None


def start_manifest(options: Any) -> ManifestRecorder:
    """The recorder of a harvest run with ``options`` (a ``HarvestOptions``)."""
    from .. import __version__
    from .._manifest import ManifestRecorder

    return ManifestRecorder(
        options.output,
        options.format,
        options.listing.listing(),
        version=__version__,
        since=getattr(options, "since", None),
    )


def finish_manifest(session: Any, display: Any) -> None:
    """Write the run's manifest; a failure to write it is reported and ends the run in
    error like an unwritable export."""
    recorder: ManifestRecorder | None = session.manifest
    if recorder is None:
        return
    stopped = None
    if session.stop.signal is not None:
        stopped = f"stopped by {signal.Signals(session.stop.signal).name}"
    elif session.fatal is not None:
        stopped = secrets.scrub(str(session.fatal))
    try:
        recorder.write(stopped=stopped)
    except OSError as exc:
        display.error(f"error: cannot write {recorder.path}: {exc.strerror or exc}")
        session.fatal = session.fatal or exc
