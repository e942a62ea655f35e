"""Exports and their journal: where a harvest's items go, and how it resumes.

::

    import tmapi_async as tm
    from tmapi_async.export import ExportJournal, default_state_path

    output, listing = Path("items.jsonl"), tm.Listing(page_size=20, sort="default")
    journal = ExportJournal.open(
        default_state_path(output), output, "jsonl", listing=listing, base_url=client.base_url
    )
    try:
        harvest = client.harvest(shop_urls, listing=listing, journal=journal, keep_items=False)
        async for result in harvest:
            ...
    finally:
        journal.close()

The *journal* is the harvest's persisted progress: an :class:`ExportJournal` keeps it in
one SQLite file beside the export (its *state file*) and owns the export's
:class:`Sink`, so that a page's items and the export's position commit together.
"""

from ._shops import ShopRow, ShopsJournal, shops_path
from ._sinks import (
    FORMATS,
    CsvSink,
    ExportFormat,
    JsonlSink,
    ParquetSink,
    Sink,
    SinkError,
    neutralise,
    open_sink,
    spool_path,
)
from ._state_file import (
    ExportJournal,
    JournalError,
    JournalSummary,
    default_state_path,
    public_base_url,
)

__all__ = [
    "FORMATS",
    "CsvSink",
    "ExportFormat",
    "ExportJournal",
    "JournalError",
    "JournalSummary",
    "JsonlSink",
    "ParquetSink",
    "ShopRow",
    "ShopsJournal",
    "Sink",
    "SinkError",
    "default_state_path",
    "neutralise",
    "open_sink",
    "public_base_url",
    "shops_path",
    "spool_path",
]
