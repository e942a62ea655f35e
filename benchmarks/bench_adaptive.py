"""Guessing the concurrency: ``python -m benchmarks.bench_adaptive [--quick] [--json]``.

TMAPI publishes no in-flight limit, so users guess ``--concurrency``. For accounts that
admit 4, 10 and 30 requests at once (the simulator's ``--concurrency-limit``, answers in
300-700 ms), three clients harvest the same shops with guesses of half, once and four
times the account's limit, at the same time, each with a token of its own (so they are
paired: same machine load, same answer latencies, which the simulator derives from the
request). For each: the time against the client that guessed right, against the floor
``pages x 0.5 s / min(guess, limit)``, and the requests refused.

Targets: a 4x guess at most 3 % slower than the right one and at most 1 % of its
requests refused; a guess at or below the limit never refused and not slowed (near its
floor). The three account limits run in parallel (a simulator and a client process
each); the run takes as long as its slowest half guess: about 2.5 minutes, 1 with
``--quick`` (too few pages there for the 1 % to be meaningful at limit 4).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import time
from typing import Any

from benchmarks._common import PYTHON, ROOT, Simulator, child_env

ACCOUNTS = (4, 10, 30)  # requests the simulated account admits in flight
GUESSES = (0.5, 1, 4)  # --concurrency, as a multiple of the account's limit
PAGES = {4: 600, 10: 1000, 30: 3000}  # per client; quick: a third
ITEMS_PER_SHOP = 200
PAGES_PER_SHOP = ITEMS_PER_SHOP // 20
MEAN_LATENCY = 0.5  # seconds: the middle of 300..700 ms
_WAIT = 900.0  # seconds a child may take


class _Counted:
    """A throttle that counts the refusals it is told of (and is otherwise the client's)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def congested(self, ticket: int) -> None:
        self.refused += 1
        self._inner.congested(ticket)


async def _harvest(base_url: str, account: int, guess: int, shops: list[str]) -> dict[str, Any]:
    import tmapi_async as tm

    # The rate is far above what the account's limit allows: only in-flight counts here.
    throttle = _Counted(tm.Throttle(rate=1000, concurrency=guess))
    token = f"bench-{account}-{guess}"
    async with tm.Client(token, base_url=base_url, throttle=throttle) as client:
        start = time.perf_counter()
        async for result in client.harvest(shops, keep_items=False):
            if result.status != "complete":
                raise RuntimeError(f"{result.shop_url} ended {result.status}")
        seconds = time.perf_counter() - start
        requests = client.requests
    return {
        "guess": guess,
        "seconds": seconds,
        "requests": requests,
        "refused": throttle.refused,
        "limit_at_end": throttle.limit,
    }


async def _child(base_url: str, account: int, pages: int) -> None:
    """One account: the three guesses at once, each its own client and token."""
    shops = [f"https://acct{account}s{i}.1688.com/" for i in range(pages // PAGES_PER_SHOP)]
    guesses = [max(1, round(account * g)) for g in GUESSES]
    runs = await asyncio.gather(*(_harvest(base_url, account, g, shops) for g in guesses))
    print(json.dumps({"account": account, "pages": pages, "runs": runs}), flush=True)


def run_all(*, quick: bool) -> list[dict[str, Any]]:
    """Every account at once: a simulator and a client process each."""
    sims = [
        Simulator(*("--concurrency-limit", str(account), "--latency-ms", "300..700"),
                  *("--items-per-shop", str(ITEMS_PER_SHOP)))
        for account in ACCOUNTS
    ]  # fmt: skip
    children: list[subprocess.Popen[str]] = []
    try:
        for sim in sims:
            sim.__enter__()
        for account, sim in zip(ACCOUNTS, sims, strict=True):
            pages = PAGES[account] // 3 if quick else PAGES[account]
            command = [PYTHON, "-m", "benchmarks.bench_adaptive", "--child", sim.url,
                       str(account), str(pages)]  # fmt: skip
            children.append(
                subprocess.Popen(
                    command, stdout=subprocess.PIPE, text=True, env=child_env(), cwd=ROOT
                )
            )
        reports = []
        for child in children:
            out, _ = child.communicate(timeout=_WAIT)
            if child.returncode != 0:
                raise RuntimeError(f"a client process exited {child.returncode}")
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        for sim in sims:
            sim.__exit__(None, None, None)
    for report in reports:
        account, pages = report["account"], report["pages"]
        known = next(r for r in report["runs"] if r["guess"] == account)
        for run in report["runs"]:
            run["vs_known"] = run["seconds"] / known["seconds"]
            floor = pages * MEAN_LATENCY / min(run["guess"], account)
            run["vs_floor"] = run["seconds"] / floor
            run["refused_share"] = run["refused"] / run["requests"]
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_adaptive", description=__doc__
    )
    parser.add_argument("--quick", action="store_true", help="a third of the pages")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        base_url, account, pages = args.child
        asyncio.run(_child(base_url, int(account), int(pages)))
        return 0
    reports = run_all(quick=args.quick)
    print("account  pages  guess  seconds  vs right guess  vs floor  refused         limit at end")
    for report in reports:
        for run in report["runs"]:
            print(
                f"{report['account']:>7}  {report['pages']:>5}  {run['guess']:>5}  "
                f"{run['seconds']:>7.1f}  {run['vs_known']:>14.3f}  {run['vs_floor']:>8.3f}  "
                f"{run['refused']:>3} ({100 * run['refused_share']:.2f} %)  "
                f"{run['limit_at_end']:>12}"
            )
    if args.json:
        print(json.dumps(reports))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
