"""The manifest: built from shop results, written atomically, read back, never a token."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from tmapi_async import ShopResult, UpstreamError
from tmapi_async._manifest import (
    MANIFEST_FORMAT,
    ManifestError,
    ManifestListing,
    build_manifest,
    manifest_path,
    read_manifest,
    utc_now,
    write_manifest,
)

SECRET = "tok-manifest-5ecret"


def _results() -> list[ShopResult]:
    cut = UpstreamError(
        f"page 4 failed: GET /1688/shop/items/v2?apiToken={SECRET}&page=4", code=500
    )
    return [
        ShopResult("https://a.1688.com/", total_count=60, item_count=60),
        ShopResult(
            "https://b.1688.com/", total_count=90, item_count=60, status="partial", error=cut
        ),
        ShopResult("https://c.1688.com/", status="failed", error=UpstreamError("gone", code=500)),
        ShopResult("https://a.1688.com/", total_count=61, item_count=61),  # resumed: last wins
    ]


def test_manifest_sits_beside_the_export_as_given() -> None:
    """The manifest's path is the export's path plus .manifest.json."""
    assert manifest_path(Path("out/items.jsonl")) == Path("out/items.jsonl.manifest.json")
    assert manifest_path(Path("x.parquet")) == Path("x.parquet.manifest.json")


def test_build_records_each_shop_once_with_status_counts_and_scrubbed_error() -> None:
    """The manifest records each shop once with its status and counts, errors scrubbed of the
    token."""
    manifest = build_manifest(
        _results(),
        version="9.9.9",
        export=Path("out/items.jsonl"),
        export_format="jsonl",
        listing=ManifestListing(page_size=20, sort="time_down"),
        started_at="2026-11-30T22:00:00Z",
        finished_at="2026-11-30T22:05:00Z",
        stopped=f"stopped at https://x?apiToken={SECRET}",
    )
    assert [(s.shop_url, s.status, s.total_count, s.items) for s in manifest.shops] == [
        ("https://a.1688.com/", "complete", 61, 61),
        ("https://b.1688.com/", "partial", 90, 60),
        ("https://c.1688.com/", "failed", 0, 0),
    ]
    partial = manifest.shop("https://b.1688.com/")
    assert partial is not None
    assert partial.error is not None
    assert "page 4 failed" in partial.error
    assert SECRET not in partial.error
    assert manifest.stopped is not None
    assert SECRET not in manifest.stopped
    assert manifest.shop("https://nope.1688.com/") is None
    assert (manifest.version, manifest.export, manifest.since) == ("9.9.9", "out/items.jsonl", None)


def test_write_is_atomic_and_reads_back(tmp_path: Path) -> None:
    """A manifest is replaced atomically (no temporary left) and reads back equal, with no token."""
    path = tmp_path / "items.jsonl.manifest.json"
    first = build_manifest(
        _results()[:1],
        version="1",
        export="items.jsonl",
        export_format="jsonl",
        listing=ManifestListing(),
        started_at=utc_now(),
        finished_at=utc_now(),
    )
    write_manifest(path, first)
    assert read_manifest(path) == first
    second = build_manifest(
        _results(),
        version="1",
        export="items.jsonl",
        export_format="jsonl",
        listing=ManifestListing(cat="123", cat_type="1"),
        started_at=utc_now(),
        finished_at=utc_now(),
        since="old.jsonl",
    )
    write_manifest(path, second)
    assert read_manifest(path) == second
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left
    text = path.read_text()
    assert SECRET not in text
    fields = msgspec.json.decode(text)
    assert fields["manifest_format"] == MANIFEST_FORMAT
    assert fields["listing"] == {"page_size": 20, "sort": "default", "cat": "123", "cat_type": "1"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fields["started_at"])
    assert fields["shops"][1]["status"] == "partial"


def test_read_missing_bad_and_newer_manifests(tmp_path: Path) -> None:
    """A missing manifest reads as None; a broken one or one of a newer format is a clear error."""
    assert read_manifest(tmp_path / "none.json") is None
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match="not a tmapi-async manifest"):
        read_manifest(bad)
    newer = tmp_path / "newer.json"
    write_manifest(
        newer,
        build_manifest(
            [],
            version="1",
            export="e",
            export_format="csv",
            listing=ManifestListing(),
            started_at="s",
            finished_at="f",
        ),
    )
    data = msgspec.json.decode(newer.read_bytes())
    data["manifest_format"] = MANIFEST_FORMAT + 1
    newer.write_bytes(msgspec.json.encode(data))
    with pytest.raises(ManifestError, match="upgrade"):
        read_manifest(newer)
