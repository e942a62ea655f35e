"""The harvest's manifest (``OUTPUT.manifest.json``), started with the run, written at its end."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Any

from ._output import secrets

if TYPE_CHECKING:
    from .._manifest import ManifestRecorder

__all__ = ["finish_manifest", "start_manifest"]


def start_manifest(options: Any, *, since: Any = None) -> ManifestRecorder:
    """The recorder of a harvest run with ``options`` (a ``HarvestOptions``)."""
    from .. import __version__
    from .._manifest import ManifestListing, ManifestRecorder

    listing = options.listing
    return ManifestRecorder(
        options.output,
        options.format,
        ManifestListing(
            page_size=listing.page_size,
            sort=listing.sort,
            cat=listing.cat,
            cat_type=listing.cat_type,
        ),
        version=__version__,
        since=since,
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
