"""Soak: the real CLI harvest, killed and stopped many times under faults, exports every
item exactly once and pays for few pages twice.

Run: ``python -m benchmarks.soak [--shops 200] [--kills 8] [--seed N] [--format jsonl]``

The simulator runs in this process: ``--fault-rate`` faults of every kind (hangs
included, held longer than the client's ``--timeout``), an in-flight limit per token
below the client's ``--concurrency``, and listing drift (new items at the front of a
shop's listing while it is read). ``python -m tmapi_async harvest`` runs as a child and is
stopped ``--kills`` times by SIGKILL, then once by SIGTERM, each at a random request
count (the simulator's ``on_request`` hook sends the signal when the run's N-th admitted
request arrives, so the stop lands with requests in flight), then runs to the end.

Checked:

- exit codes: -9 for each kill, 143 for the SIGTERM, 0 for the last run;
- every item of every shop exactly once in the export, against the listing the
  simulator serves at the end (drift items included);
- pages paid for twice: per run, pages the simulator answered in full minus pages the
  run committed to its state file. A kill may lose at most the pages in flight (one
  window: ``--concurrency``); a SIGTERM and the last run lose none;
- a page committed by an earlier run is requested again only as a drift refill (its
  shop's listing has grown since the page was read);
- the token appears in no file the harvest wrote and in none of its output.

Exit status 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import secrets
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tmapi_async.testing import (
    FaultKind,
    RequestLog,
    RequestRecord,
    SimulatedTmapi,
    SimulatorConfig,
    sizes_between,
)

ROOT = Path(__file__).resolve().parent.parent
PAGE_SIZE = 20
#: Answers of requests the simulator refused before billing them.
REFUSED = frozenset(
    {"unauthorized", "quota_exceeded", "rate_limited", "concurrency_limited", "bad_parameter"}
)


@dataclass
class Run:
    """One harvest process: how it was stopped and what the simulator saw of it."""

    label: str
    expected_rc: int
    first_seq: int  # its requests are the log records after this sequence number
    stop_at: int = 0  # the admitted request that triggered the signal (0: none)
    rc: int | None = None
    wall: float = 0.0
    last_seq: int = 0
    signal_seq: int | None = None
    output: bytes = b""
    new_rows: Counter[tuple[str, int]] = field(default_factory=Counter)


class _Trigger:
    """An ``on_request`` hook that signals the harvest when its N-th request arrives.

    The hook runs once a request's latency is over, so requests that arrived meanwhile
    are older than the signal: ``fired_seq`` is the log's length when it was sent.
    """

    def __init__(self) -> None:
        self.log: RequestLog | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.at = 0
        self.seen = 0
        self.signum: int = signal.SIGKILL
        self.fired_seq: int | None = None

    def arm(self, proc: asyncio.subprocess.Process | None, at: int, signum: int) -> None:
        self.proc, self.at, self.seen, self.signum, self.fired_seq = proc, at, 0, signum, None

    async def __call__(self, _record: RequestRecord) -> None:
        self.seen += 1
        if self.proc is not None and self.seen == self.at:
            proc, self.proc = self.proc, None
            try:
                proc.send_signal(self.signum)
            except ProcessLookupError:  # the run ended first: its exit code says so
                return
            self.fired_seq = len(self.log) if self.log is not None else None


def _env(token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMAPI_")}
    for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        env.pop(key, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["TMAPI_TOKEN"] = token  # not on the command line: a flag shows in the process list
    return env


def _rows(out: Path, fmt: str) -> list[tuple[str, str]]:
    """(shop_url, item_id) of every row of the export, in order."""
    if fmt == "csv":
        with open(out, newline="", encoding="utf-8") as f:
            return [(r["shop_url"], r["item_id"]) for r in csv.DictReader(f)]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(out, columns=["shop_url", "item_id"])
        return list(zip(*(c.to_pylist() for c in table.columns), strict=True))
    with open(out, encoding="utf-8") as f:
        return [(r["shop_url"], r["item_id"]) for r in map(json.loads, f)]


def _name(url: str) -> str:
    return url.split("//")[1].split(".")[0]


def _pages(state: Path) -> list[tuple[int, str, int, int]]:
    """(rowid, shop name, page, total_count) of every committed page answer."""
    if not state.exists():
        return []
    db = sqlite3.connect(state)
    try:
        rows = db.execute(
            "SELECT p.rowid, s.url, p.page, p.total_count FROM pages p"
            " JOIN shops s ON s.id = p.shop_id ORDER BY p.rowid"
        ).fetchall()
    finally:
        db.close()
    return [(rowid, _name(url), page, total) for rowid, url, page, total in rows]


async def _settle(sim: SimulatedTmapi, hang_seconds: float) -> None:
    """Let requests of a finished run that are still at the server end (a hang's answer
    may be due for up to ``hang_seconds``), so each request belongs to its run."""
    deadline = time.monotonic() + hang_seconds + 2.0
    await asyncio.sleep(0.1)  # requests already in the kernel's buffers reach the log
    # The simulator signals no "idle" event: poll its in-flight count.
    while sim.log.in_flight() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


def _prepare(args: argparse.Namespace) -> tuple[Path, list[str]]:
    """The working directory, emptied of an earlier soak's export, and the shops' URLs."""
    work = Path(args.workdir or tempfile.mkdtemp(prefix="tmapi-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    for stale in work.glob("items.*"):
        stale.unlink()
    urls = [f"https://soak{i}.1688.com/" for i in range(1, args.shops + 1)]
    (work / "shops.txt").write_text("".join(f"{u}\n" for u in urls), encoding="utf-8")
    return work, urls


@dataclass
class Soak:
    """What a soak did and saw: its runs, the simulator's log and final listings."""

    work: Path
    out: Path
    state: Path
    token: str
    runs: list[Run] = field(default_factory=list)
    records: list[RequestRecord] = field(default_factory=list)
    expected: set[tuple[str, str]] = field(default_factory=set)  # (shop_url, item_id)
    sizes: dict[str, int] = field(default_factory=dict)  # shop name: base items
    drift_items: int = 0
    peak_in_flight: int = 0
    wall: float = 0.0

    def requests(self, run: Run) -> list[RequestRecord]:
        """The requests of ``run``, in arrival order (the log is never cut)."""
        return self.records[run.first_seq : run.last_seq]


async def soak(args: argparse.Namespace, work: Path, urls: list[str]) -> Soak:
    """Harvest ``urls`` through every stop and a last run; what happened, unjudged."""
    rng = random.Random(args.seed)
    seen = Soak(
        work,
        out=work / f"items.{args.format}",
        state=work / f"items.{args.format}.state.db",
        token=f"soak-{secrets.token_hex(12)}",
    )
    trigger = _Trigger()
    config = SimulatorConfig(
        size_fn=sizes_between(0, args.max_items),
        seed=args.seed,
        fault_rate=args.fault_rate,
        fault_kinds=tuple(FaultKind),  # hangs included
        hang_seconds=args.hang_seconds,
        latency_ms=(args.latency_ms / 4, args.latency_ms),
        concurrency_limit=args.limit,
        drift_every=4,
        drift_items=2,
        drift_max=10,
        on_request=trigger,
    )
    started = time.perf_counter()
    async with SimulatedTmapi(config) as sim:
        trigger.log = sim.log
        sim.prebuild(urls)
        planned = sum(max(1, -(-sim.shop_size(u) // PAGE_SIZE)) for u in urls)
        command = [
            sys.executable, "-m", "tmapi_async", "harvest", str(work / "shops.txt"),
            "--output", str(seen.out), "--base-url", sim.url, "--rate", str(args.rate),
            "--concurrency", str(args.concurrency), "--timeout", str(args.timeout),
        ]  # fmt: skip
        stops = [signal.SIGKILL] * args.kills + [signal.SIGTERM]
        rowid = 0
        for i, signum in enumerate([*stops, None]):
            if signum is None:
                run = Run("final", 0, first_seq=len(sim.log))
            else:
                # Each stop takes a random share of what is left, so that every run,
                # the last one included, has pages to read.
                left = planned - len({(n, p) for _, n, p, _ in _pages(seen.state)})
                share = max(1, left // (len(stops) - i + 1))
                at = rng.randint(max(1, share // 3), share)
                if signum == signal.SIGTERM:
                    run = Run("SIGTERM", 143, first_seq=len(sim.log), stop_at=at)
                else:
                    run = Run(f"kill -9 #{i + 1}", -signum, first_seq=len(sim.log), stop_at=at)
            t0 = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=_env(seen.token),
                cwd=work,
            )
            trigger.arm(proc if signum is not None else None, run.stop_at, signum or 0)
            run.output, _ = await proc.communicate()
            run.rc, run.wall = proc.returncode, time.perf_counter() - t0
            run.signal_seq = trigger.fired_seq
            trigger.arm(None, 0, 0)
            await _settle(sim, args.hang_seconds)
            run.last_seq = len(sim.log)
            pages = _pages(seen.state)
            run.new_rows = Counter((n, p) for r, n, p, _ in pages if r > rowid)
            rowid = max((r for r, *_ in pages), default=rowid)
            seen.runs.append(run)
            print(
                f"  {run.label:<11} exit {run.rc!s:>4} (want {run.expected_rc:>3})"
                f"  {run.last_seq - run.first_seq:5d} requests"
                f"  {sum(run.new_rows.values()):5d} pages committed  {run.wall:5.1f} s",
                flush=True,
            )
        seen.wall = time.perf_counter() - started
        seen.expected = {(u, item.item_id) for u in urls for item in sim.expected_items(u)}
        seen.drift_items = sum(sim.drift(u) for u in urls)
        seen.records = sim.log.records
        seen.peak_in_flight = sim.log.peak_in_flight()
        seen.sizes = {_name(u): sim.shop_size(u) for u in urls}
    return seen


def _lost_pages(seen: Soak, failures: list[str], window: int) -> list[int]:
    """Per run, the pages answered in full to it that it never committed: paid for, and
    to be paid for again by a later run."""
    lost: list[int] = []
    for run in seen.runs:
        answered = Counter(
            (r.shop, r.page)
            for r in seen.requests(run)
            if r.outcome == "ok" and r.shop is not None and r.page is not None
        )
        lost.append(sum((answered - run.new_rows).values()))
        if run.new_rows - answered:
            failures.append(f"{run.label}: committed pages the simulator never answered in full")
        if run.expected_rc == -signal.SIGKILL and lost[-1] > window:
            failures.append(f"{run.label}: {lost[-1]} pages lost, more than one window")
        if run.expected_rc != -signal.SIGKILL and lost[-1]:
            failures.append(f"{run.label}: {lost[-1]} answered pages not committed")
    return lost


def _refills(seen: Soak, failures: list[str]) -> int:
    """Requests for pages an earlier run committed. Each must be a drift refill: the run
    knows (from its state file or its own answers) that the shop's listing has grown
    since the page was read."""
    refills = 0
    best: dict[tuple[str, int], int] = {}  # the listing's length when a page was read
    known: dict[str, int] = {}  # the longest listing of a shop the state file holds
    pages = _pages(seen.state)
    cursor = 0
    for run in seen.runs:
        longest = dict(known)
        for r in seen.requests(run):
            if r.outcome in REFUSED or r.shop is None or r.page is None:
                continue
            key = (r.shop, r.page)
            if key in best:
                if longest.get(r.shop, 0) > best[key]:
                    refills += 1
                else:
                    failures.append(f"{run.label}: committed page {key} asked again, no drift")
            if r.outcome == "ok":
                longest[r.shop] = max(longest.get(r.shop, 0), seen.sizes[r.shop] + r.drift)
        n = sum(run.new_rows.values())
        for _, name, page, total in pages[cursor : cursor + n]:
            best[(name, page)] = max(total, best.get((name, page), 0))
            known[name] = max(total, known.get(name, 0))
        cursor += n
    return refills


def judge(args: argparse.Namespace, seen: Soak) -> int:
    """Check what the soak saw, print the report; 0 when every check holds."""
    failures: list[str] = []
    for run in seen.runs:
        if run.rc != run.expected_rc:
            tail = run.output.decode(errors="replace").strip().splitlines()[-5:]
            failures.append(f"{run.label}: exit {run.rc}, want {run.expected_rc}: {tail}")
        if run.expected_rc != 0 and run.signal_seq is None:
            failures.append(f"{run.label}: ended before its signal at request {run.stop_at}")

    rows = _rows(seen.out, args.format) if seen.out.exists() else []
    counts = Counter(rows)
    twice = sum(n - 1 for n in counts.values() if n > 1)
    missing = seen.expected - set(counts)
    unknown = set(counts) - seen.expected
    exactly_once = not (twice or missing or unknown)
    if not exactly_once:
        failures.append(
            f"export: {twice} rows twice, {len(missing)} items missing, {len(unknown)} unknown"
            f" (e.g. {sorted(missing)[:2]} {sorted(unknown)[:2]})"
        )

    lost = _lost_pages(seen, failures, args.concurrency)
    refills = _refills(seen, failures)

    needles = {seen.token.encode(), quote(seen.token, safe="").encode()}
    leaks = [
        p.name
        for p in sorted(seen.work.iterdir())
        if p.is_file() and any(needle in p.read_bytes() for needle in needles)
    ]
    leaks += [run.label for run in seen.runs if any(needle in run.output for needle in needles)]
    if leaks:
        failures.append(f"token found in: {', '.join(leaks)}")

    records, runs = seen.records, seen.runs
    outcomes = Counter(r.outcome for r in records)
    faults = sum(n for o, n in outcomes.items() if o.startswith("fault_"))
    killed = [(run, n) for run, n in zip(runs, lost, strict=True) if run.rc == -signal.SIGKILL]
    per_kill = [n for _, n in killed]
    term = next((i for i, run in enumerate(runs) if run.expected_rc == 143), None)
    signalled = None if term is None else runs[term].signal_seq
    after_term: object = "-"
    late: Counter[str] = Counter()
    if term is not None and signalled is not None:
        after_term = runs[term].last_seq - signalled
        late = Counter(r.outcome for r in records[signalled : runs[term].last_seq])
    print()
    print(f"soak: {len(seen.sizes)} shops, {len(seen.expected)} items ({seen.drift_items} from"
          f" drift), format {args.format}, seed {args.seed}")  # fmt: skip
    print(f"  requests       {len(records)}: {len(records) - sum(outcomes[o] for o in REFUSED)}"
          f" billed ({faults} faults, {outcomes['fault_hang']} of them hangs),"
          f" {outcomes['concurrency_limited']} refused at the in-flight limit {args.limit};"
          f" peak {seen.peak_in_flight} in flight")  # fmt: skip
    print(f"  stops          kill -9 at requests {[run.stop_at for run, _ in killed]},"
          f" SIGTERM at {'-' if term is None else runs[term].stop_at}")  # fmt: skip
    print(f"  paid twice     per kill {per_kill} (mean {sum(per_kill) / max(1, len(killed)):.1f},"
          f" max {max(per_kill, default=0)}; window {args.concurrency}); after SIGTERM"
          f" {'-' if term is None else lost[term]}; last run {lost[-1]}")  # fmt: skip
    outcomes_late = ", ".join(f"{n} {o}" for o, n in late.most_common()) or "none"
    print(f"  after SIGTERM  {after_term} requests reached the simulator after the signal"
          f" ({outcomes_late}); it exited {'-' if term is None else runs[term].rc}")  # fmt: skip
    print(f"  drift refills  {refills} pages of earlier runs asked again, their listing grown")
    print(f"  export         {len(rows)} rows: {twice} twice, {len(missing)} missing,"
          f" {len(unknown)} unknown; token in no file and no output: {not leaks}")  # fmt: skip
    print(f"  wall time      {seen.wall:.1f} s (load average {os.getloadavg()[0]:.1f});"
          f" files in {seen.work}")  # fmt: skip
    print(f"  every item exactly once: {'yes' if exactly_once else 'NO'};"
          f" {'all checks hold' if not failures else 'FAILED:'}")  # fmt: skip
    for failure in failures:
        print(f"    - {failure}")
    return 0 if not failures else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--shops", type=int, default=200, help="shops (default 200)")
    parser.add_argument("--kills", type=int, default=8, help="kill -9s before the SIGTERM (8)")
    parser.add_argument("--seed", type=int, default=1, help="seed of faults and stops (1)")
    parser.add_argument("--format", choices=("jsonl", "csv", "parquet"), default="jsonl")
    parser.add_argument("--max-items", type=int, default=200, help="items per shop: 0..N")
    parser.add_argument("--rate", type=float, default=40.0, help="client's --rate (40)")
    parser.add_argument("--concurrency", type=int, default=8, help="client's --concurrency (8)")
    parser.add_argument("--limit", type=int, default=5, help="simulator's in-flight limit (5)")
    parser.add_argument("--timeout", type=float, default=3.0, help="client's --timeout (3 s)")
    parser.add_argument("--hang-seconds", type=float, default=4.5, help="a hang's length")
    parser.add_argument("--fault-rate", type=float, default=0.08, help="faults (0.08)")
    parser.add_argument(
        "--latency-ms", type=float, default=400.0, help="answers take N/4..N ms (400)"
    )
    parser.add_argument("--workdir", help="where the export goes (default: a new temp dir)")
    args = parser.parse_args(argv)
    if args.limit >= args.concurrency:
        parser.error("--limit must be below --concurrency: the client must meet the limit")
    if args.hang_seconds <= args.timeout:
        parser.error("--hang-seconds must exceed --timeout: a hang must time out")
    return judge(args, asyncio.run(soak(args, *_prepare(args))))


if __name__ == "__main__":
    sys.exit(main())
