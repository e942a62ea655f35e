"""Parquet files, written and read in bounded batches: the only module that imports pyarrow.

pyarrow is the ``parquet`` extra: it is imported when a Parquet file is first written or
read, and its absence is an error that says how to install it. Columns are described in
plain words (:data:`ColumnKind`), so the export's sinks, the export reader and the
changes of a diff describe their tables without importing pyarrow themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

__all__ = ["ColumnKind", "load_pyarrow", "read_batches", "spool_size_of", "write_parquet"]

#: What a column holds: text, a whole number, a float, a flag, a list of texts, a
#: ``sale_info`` (``sale_quantity`` as a whole number, ``sale_amount`` as a float), a
#: shop's ``ratings`` (``title``, ``type``, ``score``) or its ``categories`` (``id``,
#: ``name``, ``full_name``, ``count`` and the sub-categories, two levels nested: deeper
#: ones are JSON text in the second level's ``children``).
ColumnKind = Literal["text", "int", "float", "bool", "texts", "sale_info", "ratings", "categories"]

INSTALL = "pip install 'tmapi-async[parquet]'"


def load_pyarrow(missing: Callable[[str], Exception]) -> tuple[Any, Any]:
    """``pyarrow`` and ``pyarrow.parquet``.

    Raises:
        Exception: ``missing(INSTALL)`` when pyarrow is not installed (each caller says
            it in its own terms: a sink error, an unreadable export...).
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise missing(INSTALL) from None
    return pa, pq


def _arrow_type(pa: Any, kind: ColumnKind) -> Any:
    if kind == "text":
        return pa.string()
    if kind == "int":
        return pa.int64()
    if kind == "float":
        return pa.float64()
    if kind == "bool":
        return pa.bool_()
    if kind == "texts":
        return pa.list_(pa.string())
    if kind == "ratings":
        return pa.list_(
            pa.struct([("title", pa.string()), ("type", pa.string()), ("score", pa.float64())])
        )
    if kind == "categories":
        category = [
            ("id", pa.string()),
            ("name", pa.string()),
            ("full_name", pa.string()),
            ("count", pa.int64()),
        ]
        child = pa.struct([*category, ("children", pa.string())])
        return pa.list_(pa.struct([*category, ("children", pa.list_(child))]))
    return pa.struct([("sale_quantity", pa.int64()), ("sale_amount", pa.float64())])


def write_parquet(
    path: Path,
    columns: Sequence[tuple[str, ColumnKind]],
    batches: Iterable[list[dict[str, Any]]],
    *,
    missing: Callable[[str], Exception],
    metadata: Mapping[bytes, bytes] | None = None,
) -> int:
    """Write ``batches`` of rows (dicts by column name) to ``path``, one row group per
    batch; ``metadata`` goes into the file's schema. Returns the rows written.

    Raises:
        Exception: ``missing(...)`` without pyarrow; OSError when ``path`` cannot be written.
    """
    pa, pq = load_pyarrow(missing)
    schema = pa.schema([(name, _arrow_type(pa, kind)) for name, kind in columns])
    if metadata:
        schema = schema.with_metadata(dict(metadata))
    rows = 0
    with pq.ParquetWriter(path, schema) as writer:
        for batch in batches:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            rows += len(batch)
        if not rows:  # a file with its schema and no row, not one without a row group
            writer.write_table(pa.Table.from_pylist([], schema=schema))
    return rows


def spool_size_of(path: Path, key: bytes, missing: Callable[[str], Exception]) -> int | None:
    """The number kept under ``key`` in the metadata of the Parquet file ``path``;
    ``None`` when the file is missing, unreadable or has no such number."""
    pa, pq = load_pyarrow(missing)
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException):
        return None
    value = meta.get(key)
    return int(value) if value is not None else None


def read_batches(
    path: Path,
    batch_size: int,
    *,
    missing: Callable[[str], Exception],
    unreadable: Callable[[str], Exception],
) -> Iterator[list[dict[str, Any]]]:
    """The rows of the Parquet file ``path`` as dicts, ``batch_size`` at a time, with one
    thread: memory stays near one row group's worth.

    Raises:
        Exception: ``missing(...)`` without pyarrow; ``unreadable(reason)`` when the file
            is no Parquet file that can be read (also while iterating).
    """
    pa, pq = load_pyarrow(missing)
    try:
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=batch_size, use_threads=False):
            yield batch.to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise unreadable(str(exc)) from None
