"""Shop lists and exports for the command-line tests: the shops the ``sim`` fixture
serves, writing a SHOPS file, reading an export back, checking every item came once."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from tmapi_async.testing import RequestRecord, SimulatedTmapi

SIZES = {"shop1": 45, "shop2": 0, "shop3": 1, "shop4": 20, "shop5": 21, "shop6": 100}
SHOPS = [f"https://shop{i}.1688.com/" for i in range(1, 7)]


def write_shops(path: Path, lines: list[str]) -> Path:
    """A SHOPS file with these lines."""
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def read_rows(path: Path) -> list[tuple[str, str]]:
    """(shop_url, item_id) of every row of an export, in file order."""
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            return [(r["shop_url"], r["item_id"]) for r in csv.DictReader(f)]
    if path.suffix == ".parquet":
        table = pq.read_table(path, columns=["shop_url", "item_id"])
        return list(zip(*(c.to_pylist() for c in table.columns), strict=True))
    return [
        (row["shop_url"], row["item_id"])
        for row in map(json.loads, path.read_text(encoding="utf-8").splitlines())
    ]


def expected_rows(sim: SimulatedTmapi, shops: list[str]) -> set[tuple[str, str]]:
    """Every (shop_url, item_id) the simulator holds for these shops."""
    return {(s, item.item_id) for s in shops for item in sim.expected_items(s)}


def assert_exactly_once(rows: list[tuple[str, str]], expected: set[tuple[str, str]]) -> None:
    """Every expected row once, nothing else."""
    dupes = [row for row, n in Counter(rows).items() if n > 1]
    assert not dupes, f"duplicated rows: {dupes[:5]}"
    assert set(rows) == expected


def files_containing(directory: Path, secret: str) -> list[str]:
    """Names of the files in ``directory`` whose bytes contain ``secret``."""
    return sorted(p.name for p in directory.iterdir() if secret.encode() in p.read_bytes())


def pages_requested(records: list[RequestRecord]) -> Counter[tuple[str | None, int | None]]:
    """Requests per (shop name, page)."""
    return Counter((r.shop, r.page) for r in records)
