"""``tmapi-async diff``: what changed between two exports, written in every format with a
summary; bad inputs are usage errors that write nothing."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from clirun import run_cli
from test_diff import FORMATS, catalogue, write_export

from tmapi_async._diff import diff


def test_the_command_writes_every_format_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tmapi-async diff writes the changes in every format with a summary on stderr; a missing
    directory is exit 2."""
    from tmapi_async.cli import main

    items = catalogue("alpha", 0)
    changed = catalogue("alpha", 1)
    changed[0] = msgspec.structs.replace(changed[0], title="=1+1")  # a new item
    old = write_export(tmp_path / "a.jsonl", {"alpha": items})
    new = write_export(tmp_path / "b.parquet", {"alpha": changed})
    with diff(old, new) as d:
        want = list(d)
    for fmt in FORMATS:
        out = tmp_path / f"changes.{fmt}"
        assert main(["diff", str(old), str(new), "--output", str(out)]) == 0
        assert not (tmp_path / f"changes.{fmt}.tmp").exists()
        got = read_changes(out)
        assert [(r["change"], r["item_id"]) for r in got] == [(c.change, c.item_id) for c in want]
        price = next(r for r in got if r["change"] == "price")
        wanted = next(c for c in want if c.change == "price")
        assert float(price["price_change"]) == pytest.approx(wanted.price_change)
        if fmt != "jsonl":  # text as is, anything else as JSON
            assert price["before"] == wanted.before
            sales = next(r for r in got if r["change"] == "sales")
            assert msgspec.json.decode(sales["after"]) == next(
                c.after for c in want if c.change == "sales"
            )
    new_row = next(r for r in read_changes(tmp_path / "changes.csv") if r["change"] == "new")
    assert new_row["after"].startswith('{"item_id"')
    err = capsys.readouterr().err
    assert "changes: 20" in err
    assert "OLD has no manifest" in err
    assert main(["diff", str(old), str(new), "-o", str(tmp_path / "nowhere" / "c.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


def read_changes(path: Path) -> list[dict[str, object]]:
    import csv
    import json

    import pyarrow.parquet as pq

    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()  # type: ignore[no-any-return]
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_diff_exit_codes_on_bad_input(tmp_path: Path) -> None:
    """diff of a missing file or an unknown format exits 2 and writes nothing."""
    missing = await run_cli(
        "diff",
        str(tmp_path / "a.jsonl"),
        str(tmp_path / "b.jsonl"),
        "-o",
        str(tmp_path / "c.jsonl"),
    )
    assert missing.code == 2
    assert "a.jsonl: no such file" in missing.err
    (tmp_path / "a.txt").write_text("x")
    unknown = await run_cli(
        "diff", str(tmp_path / "a.txt"), str(tmp_path / "a.txt"), "-o", str(tmp_path / "c.jsonl")
    )
    assert unknown.code == 2
    assert "cannot tell the format" in unknown.err
    assert not (tmp_path / "c.jsonl").exists()
