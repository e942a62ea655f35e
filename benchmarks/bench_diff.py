"""Time and peak memory of ``diff`` between two large exports.

``python -m benchmarks.bench_diff [--items 1000000] [--shops 1000] [--format jsonl]``
writes two exports of the simulator's catalogues — day 0 and day 1 (each shop: 7 new,
3 gone, 5 repriced items) — then runs the diff in a fresh child process, writing every
change to a JSON Lines file, and prints the child's wall time and peak RSS
(``ru_maxrss``) with the number of changes. Run it with two sizes to see that the peak
does not grow with the exports (the index lives on disk, in SQLite).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from tmapi_async.testing import SimulatorConfig
from tmapi_async.testing._days import catalogue_on

_CHILD = """
import sys, time, msgspec
from tmapi_async import diff
start = time.perf_counter()
counts = {}
encode = msgspec.json.Encoder().encode
with diff(sys.argv[1], sys.argv[2]) as changes, open(sys.argv[3], "wb") as out:
    for change in changes:
        out.write(encode(change) + b"\\n")
print(time.perf_counter() - start, sum(changes.summary.kinds.values()))
"""


def _write_jsonl(path: Path, shops: int, size: int, day: int) -> int:
    changes = SimulatorConfig().day_changes()
    rows = 0
    with open(path, "wb") as out:
        for n in range(1, shops + 1):
            name = f"shop{n}"
            tail = b',"shop_url":"https://' + name.encode() + b'.1688.com/"}\n'
            listing = catalogue_on(name, size, day, changes).listing()
            out.write(b"".join(body[:-1] + tail for body in listing))
            rows += len(listing)
    return rows


def _convert(jsonl: Path, fmt: str) -> Path:
    if fmt == "jsonl":
        return jsonl
    from tmapi_async import ShopItem
    from tmapi_async.export import open_sink

    class Row(ShopItem, kw_only=True):
        shop_url: str = ""

    target = jsonl.with_suffix("." + fmt)
    sink = open_sink(target, fmt)  # type: ignore[arg-type]
    decode = msgspec.json.Decoder(Row).decode
    with open(jsonl, "rb") as lines:
        for line in lines:
            row = decode(line)
            sink.write(row.shop_url, [row])
    sink.close()
    return target


def main(argv: list[str] | None = None) -> int:
    """Write the two exports, diff them in a child process, print the figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_diff", description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000, help="items per export (about)")
    parser.add_argument("--shops", type=int, default=1000, help="shops per export")
    parser.add_argument("--format", choices=["jsonl", "csv", "parquet"], default="jsonl")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    size = max(1, args.items // args.shops)
    with tempfile.TemporaryDirectory(prefix="bench-diff-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        old_rows = _write_jsonl(work / "old.jsonl", args.shops, size, 0)
        new_rows = _write_jsonl(work / "new.jsonl", args.shops, size, 1)
        old, new = (
            _convert(work / "old.jsonl", args.format),
            _convert(work / "new.jsonl", args.format),
        )
        written = time.perf_counter() - t0
        sizes = (old.stat().st_size, new.stat().st_size)
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, str(old), str(new), str(work / "changes.jsonl")],
            capture_output=True,
            text=True,
            check=True,
        )
        seconds, changes = child.stdout.split()
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    figures = {
        "format": args.format,
        "old_items": old_rows,
        "new_items": new_rows,
        "export_mb": [round(s / 2**20, 1) for s in sizes],
        "changes": int(changes),
        "diff_seconds": round(float(seconds), 1),
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "write_seconds": round(written, 1),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>14}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
