"""The export writers: every format reads back, resumes cut a half-written tail."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import msgspec
import pyarrow.parquet as pq
import pytest

from tmapi_async import SaleInfo, ShopItem
from tmapi_async.export._sinks import (
    CSV_COLUMNS,
    CsvSink,
    JsonlSink,
    ParquetSink,
    SinkError,
    neutralise,
    open_sink,
    spool_path,
)

SHOP = "https://xldjjg.1688.com/"


def _items(n: int, start: int = 0) -> list[ShopItem]:
    return [
        ShopItem(
            item_id=str(765000043412 + i),
            title=f'左手理发牙剪 {i}, "quoted"\nnewline',
            img="https://cbu01.alicdn.com/img/x.jpg",  # as decoding normalised it
            category_path=["123", "456"] if i % 2 else [],
            category_name="剪刀" if i % 2 else "",
            price="25.90-29.89" if i % 3 == 0 else "298.00",
            quantity=None if i % 2 else i,
            sale_info=SaleInfo(sale_quantity=i, sale_amount=0) if i % 5 else None,
        )
        for i in range(start, start + n)
    ]


def _jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_jsonl_rows_are_the_items_fields_plus_shop_url(tmp_path: Path) -> None:
    """Each line holds every item field as decoded, plus ``shop_url``."""
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(path)
    sink.write(SHOP, _items(3))
    sink.write("https://other.1688.com/", _items(1, start=10))
    sink.close()
    rows = _jsonl(path)
    assert [r["shop_url"] for r in rows] == [SHOP] * 3 + ["https://other.1688.com/"]
    first = rows[0]
    assert first["item_id"] == "765000043412"
    assert first["img"] == "https://cbu01.alicdn.com/img/x.jpg"
    assert first["price"] == "25.90-29.89"
    assert first["sale_info"] is None
    assert rows[1]["quantity"] is None
    assert rows[1]["sale_info"] == {"sale_quantity": 1, "sale_amount": 0}
    assert rows[1]["title"] == '左手理发牙剪 1, "quoted"\nnewline'
    assert set(first) == {*ShopItem.__struct_fields__, "shop_url"}


def test_jsonl_position_counts_flushed_bytes(tmp_path: Path) -> None:
    """``position`` is the file size after each write: what the journal commits."""
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(path)
    assert sink.position == 0
    sink.write(SHOP, _items(2))
    assert sink.position == path.stat().st_size > 0
    sink.write(SHOP, [])
    assert sink.position == path.stat().st_size
    sink.close()


def test_reopening_cuts_a_half_written_page(tmp_path: Path) -> None:
    """Bytes after the committed position (a page cut by kill -9) are dropped on reopen."""
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(path)
    sink.write(SHOP, _items(2))
    committed = sink.position
    sink.write(SHOP, _items(2, start=2))
    sink.close()
    with open(path, "ab") as f:
        f.write(b'{"item_id":"half')  # a torn line
    again = JsonlSink(path, resume_at=committed)
    again.write(SHOP, _items(1, start=7))
    again.close()
    ids = [r["item_id"] for r in _jsonl(path)]
    assert ids == ["765000043412", "765000043413", "765000043419"]


def test_reopening_past_the_end_is_refused(tmp_path: Path) -> None:
    """An export shorter than the state says was cut or replaced: say so, do not guess."""
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"{}\n")
    with pytest.raises(SinkError, match="state file recorded 100"):
        JsonlSink(path, resume_at=100)


def test_csv_has_a_header_and_flattened_fields(tmp_path: Path) -> None:
    """CSV: header, sale_info flattened, category_path as JSON, None as empty."""
    path = tmp_path / "out.csv"
    sink = CsvSink(path)
    header_end = sink.position
    sink.write(SHOP, _items(3))
    sink.close()
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert header_end == len(",".join(CSV_COLUMNS)) + 2  # CRLF
    assert rows[0]["sale_info.sale_quantity"] == ""
    assert rows[0]["quantity"] == "0"
    assert rows[1]["category_path"] == '["123","456"]'
    assert json.loads(rows[2]["category_path"]) == []
    assert rows[1]["quantity"] == ""
    assert rows[1]["sale_info.sale_quantity"] == "1"
    assert rows[1]["title"] == '左手理发牙剪 1, "quoted"\nnewline'
    assert {r["shop_url"] for r in rows} == {SHOP}


def test_csv_resume_does_not_repeat_the_header(tmp_path: Path) -> None:
    """A resumed CSV goes on after its rows; the header stays single."""
    path = tmp_path / "out.csv"
    sink = CsvSink(path)
    sink.write(SHOP, _items(1))
    committed = sink.position
    sink.write(SHOP, _items(1, start=1))  # not committed
    sink.close()
    again = CsvSink(path, resume_at=committed)
    again.write(SHOP, _items(1, start=5))
    again.close()
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(CSV_COLUMNS)
    assert [r[0] for r in rows[1:]] == ["765000043412", "765000043417"]


def test_parquet_is_written_from_the_spool_at_close(tmp_path: Path) -> None:
    """Parquet: rows spool to JSON Lines; close writes the file, typed and complete."""
    path = tmp_path / "out.parquet"
    sink = ParquetSink(path)
    sink.write(SHOP, _items(4))
    assert not path.exists()  # only the spool, until close
    assert spool_path(path).stat().st_size == sink.position
    sink.close()
    table = pq.read_table(path)
    rows = table.to_pylist()
    assert [r["item_id"] for r in rows] == [str(765000043412 + i) for i in range(4)]
    assert rows[1]["category_path"] == ["123", "456"]
    assert rows[1]["sale_info"] == {"sale_quantity": 1, "sale_amount": 0.0}
    assert rows[0]["sale_info"] is None
    assert rows[0]["quantity"] == 0
    assert rows[1]["quantity"] is None
    assert str(table.schema.field("quantity").type) == "int64"
    assert {r["shop_url"] for r in rows} == {SHOP}


def test_parquet_resume_rewrites_the_file_with_every_row_once(tmp_path: Path) -> None:
    """A second run appends to the spool (cut at the committed position) and rewrites."""
    path = tmp_path / "out.parquet"
    sink = ParquetSink(path)
    sink.write(SHOP, _items(2))
    committed = sink.position
    sink.write(SHOP, _items(2, start=2))  # written, never committed: a killed run
    # killed: no close, so no parquet file
    again = ParquetSink(path, resume_at=committed)
    again.write(SHOP, _items(3, start=10))
    again.close()
    ids = pq.read_table(path, columns=["item_id"]).column(0).to_pylist()
    assert ids == [str(765000043412 + i) for i in (0, 1, 10, 11, 12)]
    mtime = path.stat().st_mtime_ns
    ParquetSink(path, resume_at=again.position).close()  # nothing new: file kept as is
    assert path.stat().st_mtime_ns == mtime


def test_parquet_without_pyarrow_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No pyarrow: the error says how to install it, before anything is written."""
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(SinkError, match=r"pip install 'tmapi-async\[parquet\]'"):
        open_sink(tmp_path / "out.parquet", "parquet")
    assert not spool_path(tmp_path / "out.parquet").exists()


def test_open_sink_picks_the_format(tmp_path: Path) -> None:
    """``open_sink`` maps the format names to the writers."""
    assert isinstance(open_sink(tmp_path / "a", "jsonl"), JsonlSink)
    assert isinstance(open_sink(tmp_path / "b", "csv"), CsvSink)
    with pytest.raises(SinkError, match="unknown export format"):
        open_sink(tmp_path / "c", "xml")  # type: ignore[arg-type]


def test_unwritable_export_is_a_sink_error(tmp_path: Path) -> None:
    """A directory in the way is reported as a SinkError, not an OSError traceback."""
    with pytest.raises(SinkError, match="cannot open"):
        JsonlSink(tmp_path / "missing-dir" / "out.jsonl")


def test_jsonl_matches_msgspec_encoding(tmp_path: Path) -> None:
    """The spliced encoding equals encoding the item's fields with shop_url appended."""
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(path)
    items = _items(5)
    sink.write(SHOP, items)
    sink.close()
    expected = b"".join(
        msgspec.json.encode({**msgspec.structs.asdict(i), "shop_url": SHOP}) + b"\n" for i in items
    )
    assert path.read_bytes() == expected


FORMULAS = ["=1+1", "+1", "-1", "@A1", "\tx", "\rx", "=\r\n=2"]


def _hostile(texts: list[str]) -> list[ShopItem]:
    return [
        ShopItem(item_id=f"{i}", title=t, category_name=t, price=t, img=t)
        for i, t in enumerate(texts)
    ]


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("raw", [False, True])
def test_csv_cells_a_spreadsheet_would_run_get_an_apostrophe(tmp_path: Path, raw: bool) -> None:
    """Every text cell starting with =, +, -, @, TAB or CR is neutralised (unless raw);
    other text is untouched; a bare CR inside a cell never splits its row."""
    path = tmp_path / "out.csv"
    sink = CsvSink(path, raw=raw)
    sink.write(SHOP, _hostile([*FORMULAS, "ok", "a=b", ""]))
    sink.close()
    rows = _csv_rows(path)
    want = [t if raw else f"'{t}" for t in FORMULAS] + ["ok", "a=b", ""]
    for column in ("title", "category_name", "price", "img"):
        assert [r[column] for r in rows] == want
    assert [r["shop_url"] for r in rows] == [SHOP] * len(want)


def test_neutralise_is_the_identity_on_safe_text() -> None:
    """Only the first character matters; the rest is kept as is."""
    assert neutralise("") == ""
    assert neutralise("1688 = cheap") == "1688 = cheap"
    assert neutralise("=cmd|' /C calc'!A0") == "'=cmd|' /C calc'!A0"


def test_jsonl_keeps_formula_text_exactly(tmp_path: Path) -> None:
    """JSON Lines is data, not a sheet: the text as sent."""
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(path)
    sink.write(SHOP, _hostile(FORMULAS))
    sink.close()
    assert [row["title"] for row in _jsonl(path)] == FORMULAS
