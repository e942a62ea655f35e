"""The manifest of a harvest: ``OUTPUT.manifest.json``, written beside the export.

It says what the export holds and how far it can be trusted: the tool and its version, the
listing parameters, when the run started and ended, and per shop its status (``complete``,
``partial``, ``failed``), the ``total_count`` the API reported, the items exported and the
error that cut it short. A later :func:`tmapi_async.diff` reads it to know which shops were
read whole: only those can have items that are *gone*.

Building is pure (:func:`build_manifest`); :func:`write_manifest` replaces the file
atomically (a reader sees the old manifest or the new, never half of one) and
:func:`read_manifest` reads it back. Error texts are scrubbed of anything that looks like
an ``apiToken`` before they are written.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Final, Literal

import msgspec

from ._errors import ManifestError
from ._listing import Listing
from ._secret import Redactor
from ._shop import ShopResult

__all__ = [
    "MANIFEST_FORMAT",
    "Manifest",
    "ManifestError",
    "ManifestListing",
    "ManifestRecorder",
    "ManifestShop",
    "build_manifest",
    "manifest_path",
    "read_manifest",
    "utc_now",
    "write_manifest",
]

#: Version of the manifest's layout; a reader refuses a newer one.
MANIFEST_FORMAT: Final = 1

ShopStatus = Literal["complete", "partial", "failed"]

# Which token is not known here: the redaction rule without one still cuts every
# apiToken value and apikey header out of a text.
_REDACTOR: Final = Redactor()


class ManifestListing(msgspec.Struct, frozen=True, kw_only=True):
    """The listing every shop was read with: a :class:`~tmapi_async.Listing`'s record
    (see :meth:`~tmapi_async.Listing.to_record`), as the manifest file holds it."""

    page_size: int = 20
    sort: str = "default"
    cat: str | None = None
    cat_type: str | None = None

    @classmethod
    def of(cls, listing: Listing) -> ManifestListing:
        """The manifest's entry of ``listing``, decoded from its record."""
        return _decode_listing(listing.to_record())


_decode_listing = msgspec.json.Decoder(ManifestListing).decode


class ManifestShop(msgspec.Struct, frozen=True, kw_only=True):
    """One shop of the harvest.

    ``items`` counts the rows of this shop in the export; ``total_count`` is the shop's
    product count as the API last reported it (0 when no page was read).
    """

    shop_url: str
    status: ShopStatus
    total_count: int = 0
    items: int = 0
    error: str | None = None


class ManifestProfiles(msgspec.Struct, frozen=True, kw_only=True):
    """The shops file of a ``--with-profiles`` harvest: where, how many rows (every run
    so far), and the shops this run left without one, with why (a rerun asks again)."""

    shops_file: str
    rows: int = 0
    missing: dict[str, str] = msgspec.field(default_factory=dict)


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the manifest file holds (see the module's docstring).

    ``since`` is the previous export a ``--since`` harvest compared against (such an export
    holds only new listings, so nothing can be judged gone from it); ``stopped`` says why a
    run ended before every shop was done (``None`` when it finished).
    """

    manifest_format: int = MANIFEST_FORMAT
    tool: str = "tmapi-async"
    version: str
    export: str
    export_format: str
    listing: ManifestListing
    since: str | None = None
    started_at: str
    finished_at: str
    stopped: str | None = None
    shops: tuple[ManifestShop, ...] = ()
    profiles: ManifestProfiles | None = None  #: with ``--with-profiles``: the shops file

    def shop(self, shop_url: str) -> ManifestShop | None:
        """The entry of ``shop_url``, or ``None`` when the harvest did not reach it."""
        for entry in self.shops:
            if entry.shop_url == shop_url:
                return entry
        return None


def manifest_path(output: Path) -> Path:
    """Where the manifest of the export ``output`` lives: ``OUTPUT.manifest.json``."""
    return output.with_name(output.name + ".manifest.json")


def utc_now() -> str:
    """The current time as the manifest writes it (ISO 8601, UTC, whole seconds)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def scrub(text: str) -> str:
    """``text`` without any ``apiToken`` value or ``apikey`` header."""
    return _REDACTOR.scrub(text)


def _shop_entry(result: ShopResult) -> ManifestShop:
    return ManifestShop(
        shop_url=result.shop_url,
        status=result.status,
        total_count=result.total_count,
        items=result.item_count,
        error=None if result.error is None else scrub(str(result.error)),
    )


def build_manifest(
    results: Iterable[ShopResult],
    *,
    version: str,
    export: Path | str,
    export_format: str,
    listing: ManifestListing,
    started_at: str,
    finished_at: str,
    since: Path | str | None = None,
    stopped: str | None = None,
    profiles: ManifestProfiles | None = None,
) -> Manifest:
    """The manifest of a run whose shops ended with ``results`` (the last result of a shop
    given twice wins, as a resumed shop's does)."""
    shops = {result.shop_url: _shop_entry(result) for result in results}
    return Manifest(
        version=version,
        export=str(export),
        export_format=export_format,
        listing=listing,
        since=None if since is None else str(since),
        started_at=started_at,
        finished_at=finished_at,
        stopped=None if stopped is None else scrub(stopped),
        shops=tuple(shops.values()),
        profiles=profiles,
    )


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Manifest).decode


def write_manifest(path: Path, manifest: Manifest) -> None:
    """Write ``manifest`` to ``path`` atomically (temporary file, fsync, rename)."""
    tmp = path.with_name(path.name + ".tmp")
    data = msgspec.json.format(_encode(manifest), indent=2) + b"\n"
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def read_manifest(path: Path) -> Manifest | None:
    """The manifest at ``path``; ``None`` when there is none.

    Raises:
        ManifestError: the file exists but is not a manifest this version can read.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        manifest = _decode(data)
    except msgspec.DecodeError as exc:
        raise ManifestError(f"{path} is not a tmapi-async manifest: {exc}") from exc
    if manifest.manifest_format > MANIFEST_FORMAT:
        raise ManifestError(
            f"{path} has manifest format {manifest.manifest_format}; this version reads "
            f"up to {MANIFEST_FORMAT}: upgrade tmapi-async"
        )
    return manifest


class ManifestRecorder:
    """Collects a run's shop results and writes its manifest at the end of the run.

    Created when the run starts (that is ``started_at``); :meth:`add` each
    :class:`~tmapi_async.ShopResult` as it comes; :meth:`write` once the export is closed.
    """

    def __init__(
        self,
        output: Path,
        export_format: str,
        listing: ManifestListing | Listing,
        *,
        version: str,
        since: Path | str | None = None,
    ) -> None:
        self.path = manifest_path(output)
        self._output = output
        self._format = export_format
        self._listing = ManifestListing.of(listing) if isinstance(listing, Listing) else listing
        self._version = version
        self._since = since
        self._results: dict[str, ShopResult] = {}
        self.started_at = utc_now()
        self.profiles: ManifestProfiles | None = None  #: set by a --with-profiles run

    def add(self, result: ShopResult) -> None:
        """Record how a shop ended (its items are not kept)."""
        self._results[result.shop_url] = result

    def build(self, *, stopped: str | None = None) -> Manifest:
        """The manifest of the run so far."""
        return build_manifest(
            self._results.values(),
            version=self._version,
            export=self._output,
            export_format=self._format,
            listing=self._listing,
            started_at=self.started_at,
            finished_at=utc_now(),
            since=self._since,
            stopped=stopped,
            profiles=self.profiles,
        )

    def write(self, *, stopped: str | None = None) -> Manifest:
        """Write the manifest beside the export (atomically) and return it."""
        manifest = self.build(stopped=stopped)
        write_manifest(self.path, manifest)
        return manifest
