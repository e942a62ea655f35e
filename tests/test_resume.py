"""Resume after ``kill -9`` of the CLI at random instants: every item exactly once in the
export, and no page the killed run had committed is ever requested again.

The simulator runs in the test's event loop; its ``on_request`` hook kills the CLI
subprocess when the N-th request arrives (N drawn at random), so the kill lands while
requests are in flight and pages are being written — no sleeps involved.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import signal
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import tmapi_async
from tmapi_async.testing import RequestRecord, SimulatedTmapi

REPO = Path(tmapi_async.__file__).resolve().parent.parent
TOKEN = "resume-test-token"
SIZES = {f"shop{i}": (i * 37) % 131 for i in range(1, 31)}  # 0..130 items: 0..7 pages
NAMES = [f"https://shop{i}.1688.com/" for i in range(1, 31)]
CONCURRENCY = 4


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMAPI_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["TMAPI_TOKEN"] = TOKEN
    return env


async def _start(sim: SimulatedTmapi, shops: Path, out: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tmapi_async",
        "harvest",
        str(shops),
        "--output",
        str(out),
        "--base-url",
        sim.url,
        "--rate",
        "5000",
        "--concurrency",
        str(CONCURRENCY),
        "--timeout",
        "10",
        "--quiet",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )


def _rows(out: Path) -> list[tuple[str, str]]:
    if out.suffix == ".csv":
        with open(out, newline="", encoding="utf-8") as f:
            return [(r["shop_url"], r["item_id"]) for r in csv.DictReader(f)]
    if out.suffix == ".parquet":
        table = pq.read_table(out, columns=["shop_url", "item_id"])
        return list(zip(*(c.to_pylist() for c in table.columns), strict=True))
    return [(r["shop_url"], r["item_id"]) for r in map(json.loads, out.read_text().splitlines())]


def _committed(state: Path) -> set[tuple[str, int]]:
    """(shop name, page) of every page the state file holds."""
    if not state.exists():
        return set()
    db = sqlite3.connect(state)
    try:
        rows = db.execute("SELECT s.url, p.page FROM pages p JOIN shops s ON s.id = p.shop_id")
        return {(url.split("//")[1].split(".")[0], page) for url, page in rows}
    finally:
        db.close()


class _Killer:
    """An ``on_request`` hook that SIGKILLs the CLI when the N-th request arrives."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.at = 0
        self.seen = 0

    def arm(self, proc: asyncio.subprocess.Process | None, at: int) -> None:
        self.proc, self.at, self.seen = proc, at, 0

    async def __call__(self, _record: RequestRecord) -> None:
        self.seen += 1
        if self.proc is not None and self.seen == self.at:
            self.proc.send_signal(signal.SIGKILL)
            self.proc = None


async def _kill_then_resume(
    tmp_path: Path, fmt: str, seed: int, kills: int, fault_rate: float
) -> None:
    rng = random.Random(seed)
    killer = _Killer()
    async with SimulatedTmapi(
        shop_sizes=SIZES,
        default_shop_size=0,
        on_request=killer,
        fault_rate=fault_rate,
        seed=seed,
    ) as sim:
        expected = {(s, item.item_id) for s in NAMES for item in sim.expected_items(s)}
        pages = sum(max(1, -(-n // 20)) for n in SIZES.values())
        shops = tmp_path / "shops.txt"
        shops.write_text("".join(f"{s}\n" for s in NAMES))
        out = tmp_path / f"items.{fmt}"
        state = tmp_path / f"items.{fmt}.state.db"
        for _ in range(kills):
            committed = _committed(state)
            sim.log.reset()
            proc = await _start(sim, shops, out)
            killer.arm(proc, rng.randint(1, max(1, pages - len(committed) - 1)))
            _, err = await proc.communicate()
            # N is below the pages still to read, so the run cannot finish first.
            assert proc.returncode == -signal.SIGKILL, err.decode()
            requested = {(r.shop, r.page) for r in sim.log.records}
            assert not requested & committed, "a committed page was requested again"
        committed = _committed(state)
        sim.log.reset()
        killer.arm(None, 0)
        proc = await _start(sim, shops, out)
        _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        requested = Counter((r.shop, r.page) for r in sim.log.records if r.outcome == "ok")
        assert not set(requested) & committed, "a committed page was requested again"
        rows = _rows(out)
        dupes = [row for row, n in Counter(rows).items() if n > 1]
        assert not dupes, f"rows twice in the export: {dupes[:3]}"
        assert set(rows) == expected
        assert _committed(state) >= {(n.split("//")[1].split(".")[0], 1) for n in NAMES}


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_kill_9_at_a_random_instant_then_resume_jsonl(tmp_path: Path, seed: int) -> None:
    """JSON Lines: kill -9 once at a random request, rerun: every item exactly once."""
    await _kill_then_resume(tmp_path, "jsonl", seed, kills=1, fault_rate=0.0)


async def test_kill_9_three_times_with_faults(tmp_path: Path) -> None:
    """Killed three times in a row, with transient faults on: still exactly once."""
    await _kill_then_resume(tmp_path, "jsonl", 11, kills=3, fault_rate=0.05)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
async def test_kill_9_then_resume_other_formats(tmp_path: Path, fmt: str) -> None:
    """CSV (header once) and Parquet (spool, written at the end) survive kill -9 too."""
    await _kill_then_resume(tmp_path, fmt, 5, kills=2, fault_rate=0.0)
