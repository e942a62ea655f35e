"""The contenders, each run in a child process of its own: ``python -m benchmarks._workers``.

A child does one harvest (or one timed run) against a simulator already serving at
``--url``, then prints one JSON line: requests, items, the wall and CPU seconds of the
timed section (imports and interpreter start excluded; the parent also measures the
whole process).

Contenders:

* ``bare``: a bare aiohttp + msgspec loop: ``concurrency`` workers take (shop, page)
  jobs from one queue; page 1 of a shop enqueues its pages 2..N; each body is decoded
  into msgspec Structs. URLs are pre-encoded strings, as the library builds them: the
  leanest loop one would write, so the hardest to beat.
* ``bare-jsonl``: the same, writing every item as a JSON line (for the whole-process race).
* ``lib-page``: the same driver, each page through ``Client.fetch_page`` (throttle,
  decipher and retry seam: the client's own overhead).
* ``lib-shop``: ``Client.fetch_shop`` for shops taken by ``concurrency // 4`` loops.
* ``lib-harvest``: ``Client.harvest(shops, keep_items=False)``.
* ``rate``: ``Client.fetch_page`` at a target ``--rate`` for ``--requests`` requests.
* ``throttle``: the library's ``Throttle`` alone, no network, at ``--rate``: send times.
* ``naive``: ``asyncio.gather`` of every shop, each page 1 then ``gather`` of the rest,
  no limit and no retry (what a first attempt looks like).
* ``sequential``: one request at a time.
* ``memory``: ``Client.harvest`` streaming every page to a JSON Lines file, sampling RSS.
* ``redis-worker``: a ``tmapi-async worker`` run in this process (``--redis URL``), as
  the command builds it, until every harvest in that Redis is finished; it counts its
  round trips to Redis (every command, script and pipeline any of its connections sends).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import aiohttp
import msgspec
from yarl import URL

# Imported here, before any timing starts: an import inside a timed run would be
# charged to the library (about 35 ms, a tenth of a quick run).
import tmapi_async as tm
from benchmarks._common import TOKEN, emit, peak_rss_mb, self_cpu, shop_urls

# -- the bare loop's own models: what a user of aiohttp + msgspec would write ---------------


class BareSale(msgspec.Struct, gc=False):
    sale_quantity: int | None = None
    sale_amount: int | float | None = None


class BareItem(msgspec.Struct, gc=False):
    item_id: str | int
    title: str = ""
    img: str = ""
    category_path: list[Any] = []
    category_name: str = ""
    price: str = ""
    quantity: int | None = None
    sale_info: BareSale | None = None
    shop_url: str = ""


class BarePage(msgspec.Struct, gc=False):
    page: int = 1
    page_size: int = 0
    total_count: int = 0
    items: list[BareItem] = []


class BareEnvelope(msgspec.Struct, gc=False):
    code: int
    msg: str = ""
    data: BarePage | None = None


_decode = msgspec.json.Decoder(BareEnvelope, strict=False).decode

Fetch = Callable[[str, int], Awaitable[tuple[int, int, int]]]  # -> total, page_size, items
Sink = Callable[[str, list[BareItem]], None]


def _prefix(url: str) -> str:
    return f"{url.rstrip('/')}/1688/shop/items/v2?apiToken={quote(TOKEN, safe='')}&"


class RefusedError(Exception):
    """A non-200 answer in a loop that does not retry."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def bare_fetcher(session: aiohttp.ClientSession, url: str, sink: Sink | None = None) -> Fetch:
    """A bare (shop, page) -> (total, page_size, items) over ``session``."""
    prefix = _prefix(url)

    async def fetch(shop: str, page: int) -> tuple[int, int, int]:
        target = URL(
            f"{prefix}shop_url={quote(shop, safe='')}&page_size=20&page={page}", encoded=True
        )
        async with session.get(target) as response:
            body = await response.read()
            status = response.status
        if status != 200:
            raise RefusedError(status)
        envelope = _decode(body)
        data = envelope.data
        if envelope.code != 200 or data is None:
            raise RefusedError(envelope.code)
        if sink is not None:
            sink(shop, data.items)
        return data.total_count, data.page_size or 20, len(data.items)

    return fetch


async def drive(fetch: Fetch, shops: list[str], concurrency: int) -> dict[str, int]:
    """``concurrency`` workers over a queue of (shop, page); page 1 enqueues the rest."""
    queue: asyncio.Queue[tuple[str, int] | None] = asyncio.Queue()
    for shop in shops:
        queue.put_nowait((shop, 1))
    tally = {"requests": 0, "items": 0, "errors": 0}
    remaining = len(shops)

    async def worker() -> None:
        nonlocal remaining
        while (job := await queue.get()) is not None:
            shop, page = job
            tally["requests"] += 1
            try:
                total, size, n = await fetch(shop, page)
            except (RefusedError, aiohttp.ClientError, msgspec.DecodeError):
                tally["errors"] += 1
            else:
                tally["items"] += n
                if page == 1:
                    last = math.ceil(total / size)
                    for p in range(2, last + 1):
                        queue.put_nowait((shop, p))
                    remaining += max(0, last - 1)
            remaining -= 1
            if remaining == 0:
                for _ in range(concurrency):
                    queue.put_nowait(None)

    if remaining:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally


def _session(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=60),
    )


class JsonlWriter:
    """Items as JSON lines, encoded by msgspec, written page by page."""

    def __init__(self, path: Path) -> None:
        self._file: BinaryIO = path.open("wb")
        self._encode_lines = msgspec.json.Encoder().encode_lines
        self.written = 0

    def bare(self, shop: str, items: list[BareItem]) -> None:
        for item in items:
            item.shop_url = shop
        self._file.write(self._encode_lines(items))
        self.written += len(items)

    def lib(self, shop: str, items: list[Any]) -> None:
        tail = b',"shop_url":' + msgspec.json.encode(shop) + b"}\n"
        self._file.write(b"".join(msgspec.json.encode(item)[:-1] + tail for item in items))
        self.written += len(items)

    def close(self) -> None:
        self._file.close()


# -- contenders ---------------------------------------------------------------------------


async def run_bare(args: argparse.Namespace, shops: list[str]) -> dict[str, Any]:
    writer = JsonlWriter(Path(args.output)) if args.output else None
    async with _session(args.concurrency) as session:
        fetch = bare_fetcher(session, args.url, writer.bare if writer else None)
        tally = await drive(fetch, shops, args.concurrency)
    if writer is not None:
        writer.close()
    return tally


def _client(args: argparse.Namespace, **overrides: Any) -> Any:
    options: dict[str, Any] = {"rate": 1e6, "concurrency": args.concurrency}
    options.update(overrides)
    return tm.Client(TOKEN, base_url=args.url, **options)


async def run_lib_page(args: argparse.Namespace, shops: list[str]) -> dict[str, Any]:
    queries = {shop: tm.ShopQuery.build(shop) for shop in shops}
    async with _client(args) as client:

        async def fetch(shop: str, page: int) -> tuple[int, int, int]:
            answer = await client.fetch_page(queries[shop], page)
            return answer.total_count, answer.page_size or 20, len(answer.items)

        tally = await drive(fetch, shops, args.concurrency)
        tally["requests"] = client.requests
    return tally


async def run_lib_shop(args: argparse.Namespace, shops: list[str]) -> dict[str, Any]:
    tally = {"requests": 0, "items": 0, "errors": 0}
    source = iter(shops)
    async with _client(args) as client:

        async def loop() -> None:
            for shop in source:
                result = await client.fetch_shop(shop)
                tally["items"] += len(result.items)
                tally["errors"] += result.status != "complete"

        await asyncio.gather(*(loop() for _ in range(max(1, args.concurrency // 4))))
        tally["requests"] = client.requests
    return tally


async def run_lib_harvest(args: argparse.Namespace, shops: list[str]) -> dict[str, Any]:
    tally = {"requests": 0, "items": 0, "errors": 0}
    async with _client(args, **_limits(args)) as client:
        async for result in client.harvest(shops, keep_items=False):
            tally["items"] += result.item_count
            tally["errors"] += result.status != "complete"
        tally["requests"] = client.requests
        tally["retries"] = client.retries
        tally["final_limit"] = client.throttle.limit
    return tally


async def run_lib_harvest_metrics(args: argparse.Namespace, shops: list[str]) -> dict[str, Any]:
    """``lib-harvest`` keeping Prometheus metrics (``tm.Metrics``), scraped at the end."""
    tally = {"requests": 0, "items": 0, "errors": 0}
    metrics = tm.Metrics()
    async with _client(args, metrics=metrics, **_limits(args)) as client:
        async for result in client.harvest(shops, keep_items=False):
            tally["items"] += result.item_count
            tally["errors"] += result.status != "complete"
        tally["requests"] = client.requests
    tally["exposition_bytes"] = len(metrics.exposition())
    return tally


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    return {"rate": args.rate} if args.rate else {}


async def run_rate(args: argparse.Namespace, shops: list[str]) -> dict[str, Any]:
    """``--requests`` pages through ``fetch_page`` at ``--rate``; client-side send times."""
    query = tm.ShopQuery.build(shops[0])
    counter = itertools.count()
    async with _client(args, rate=args.rate) as client:

        async def worker() -> None:
            while next(counter) < args.requests:
                await client.fetch_page(query, 1)

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        return {"requests": client.requests, "items": 0, "errors": 0}


async def run_throttle(args: argparse.Namespace, _shops: list[str]) -> dict[str, Any]:
    """The throttle alone: ``concurrency`` tasks acquire and release, no network."""
    throttle = tm.Throttle(rate=args.rate, concurrency=args.concurrency)
    loop = asyncio.get_running_loop()
    times: list[float] = []
    counter = itertools.count()

    async def worker() -> None:
        while next(counter) < args.requests:
            await throttle.acquire()
            times.append(loop.time())
            await asyncio.sleep(0)
            throttle.release()

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    times.sort()
    best = lo = 0
    for hi, t in enumerate(times):
        while times[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {
        "requests": len(times),
        "items": 0,
        "errors": 0,
        "span": span,
        "peak_1s": best,
        "burst": throttle.burst,
    }


async def run_naive(args: argparse.Namespace, shops: list[str]) -> dict[str, Any]:
    """``gather`` every shop; each shop: page 1, then ``gather`` of the rest. No retry."""
    tally = {"requests": 0, "items": 0, "errors": 0, "refused": 0}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        fetch = bare_fetcher(session, args.url)

        async def get(shop: str, page: int) -> tuple[int, int, int]:
            tally["requests"] += 1
            try:
                return await fetch(shop, page)
            except RefusedError as error:
                tally["errors"] += 1
                tally["refused"] += error.status == 503
            except aiohttp.ClientError:
                tally["errors"] += 1
            return 0, 20, 0

        async def shop_task(shop: str) -> int:
            total, size, n = await get(shop, 1)
            rest = await asyncio.gather(
                *(get(shop, p) for p in range(2, math.ceil(total / size) + 1))
            )
            return n + sum(r[2] for r in rest)

        tally["items"] = sum(await asyncio.gather(*(shop_task(s) for s in shops)))
    return tally


async def run_sequential(args: argparse.Namespace, shops: list[str]) -> dict[str, Any]:
    """One request at a time."""
    tally = {"requests": 0, "items": 0, "errors": 0}
    async with _session(1) as session:
        fetch = bare_fetcher(session, args.url)
        for shop in shops:
            page, last = 1, 1
            while page <= last:
                tally["requests"] += 1
                try:
                    total, size, n = await fetch(shop, page)
                except (RefusedError, aiohttp.ClientError):
                    tally["errors"] += 1
                    n = 0
                else:
                    if page == 1:
                        last = math.ceil(total / size)
                tally["items"] += n
                page += 1
    return tally


async def run_memory(args: argparse.Namespace, shops: list[str]) -> dict[str, Any]:
    """Harvest streaming each page to JSON Lines; sample (items, RSS) as it goes."""
    import psutil  # type: ignore[import-untyped]

    process = psutil.Process()
    writer = JsonlWriter(Path(args.output or "/dev/null"))
    samples: list[tuple[int, float]] = []
    start_rss = process.memory_info().rss / 2**20
    tally = {"requests": 0, "items": 0, "errors": 0}
    next_sample = time.perf_counter()
    async with _client(args, **_limits(args)) as client:
        async for event in client.harvest(shops, keep_items=False).events():
            if isinstance(event, tm.PageEvent):
                writer.lib(event.shop_url, event.items)
                tally["items"] += len(event.items)
                now = time.perf_counter()
                if now >= next_sample:
                    samples.append((tally["items"], process.memory_info().rss / 2**20))
                    next_sample = now + 0.05
            elif event.status != "complete":
                tally["errors"] += 1
        tally["requests"] = client.requests
    writer.close()
    samples.append((tally["items"], process.memory_info().rss / 2**20))
    # ru_maxrss is no use here: Linux keeps it across exec, so a child starts with its
    # parent's peak. The peak is the highest sample (every 50 ms and at the end).
    peak = max(rss for _, rss in samples)
    return {**tally, "rss_start_mb": start_rss, "samples": samples, "sampled_peak_mb": peak}


def count_round_trips(ignore: Any = None) -> dict[str, int]:
    """Count every round trip redis-py's asyncio clients make from now on (a command, a
    script, a pipeline: one each), but those of the client ``ignore``; returns the tally."""
    from redis.asyncio.client import Pipeline, Redis

    tally = {"round_trips": 0}
    command, execute = Redis.execute_command, Pipeline.execute
    names = _script_names()

    def count(name: str) -> None:
        tally["round_trips"] += 1
        tally[name] = tally.get(name, 0) + 1

    async def counted_command(self: Any, *args: Any, **options: Any) -> Any:
        if self is not ignore:
            name = str(args[0]).upper()
            count(names.get(str(args[1]), "script") if name == "EVALSHA" else name)
        return await command(self, *args, **options)

    async def counted_execute(self: Any, *args: Any, **options: Any) -> Any:
        count("pipeline")
        return await execute(self, *args, **options)

    Redis.execute_command = counted_command  # type: ignore[method-assign]
    Pipeline.execute = counted_execute  # type: ignore[method-assign]
    return tally


def _script_names() -> dict[str, str]:
    """SHA1 → name of every Lua script the package ships (to tell round trips apart)."""
    import hashlib
    from importlib import resources

    from tmapi_async._redis.connection import load_lua

    folder = resources.files("tmapi_async._redis") / "lua"
    return {
        hashlib.sha1(load_lua(name).encode()).hexdigest(): name
        for name in (entry.name.removesuffix(".lua") for entry in folder.iterdir())
    }


async def run_redis_worker(args: argparse.Namespace, _shops: list[str]) -> dict[str, Any]:
    """A worker, as ``tmapi-async worker --concurrency N`` builds it, serving ``--redis``
    until a harvest was submitted there and every harvest is finished."""
    from redis.asyncio import Redis

    from tmapi_async._redis.connection import open_connection
    from tmapi_async._redis.worker import OwnershipGate, RedisWorker
    from tmapi_async.cli._tokens import worker_client

    watcher = Redis.from_url(args.redis)  # its looks are not the worker's round trips
    tally = count_round_trips(ignore=watcher)
    conn = await open_connection(args.redis)
    gate = OwnershipGate()
    client = worker_client(TOKEN, args.redis, cap=args.concurrency, gate=gate, base_url=args.url)

    def tell(line: str) -> None:
        if line.endswith(" ready"):  # the parent starts the harvest on this line
            print(line, file=sys.stderr, flush=True)

    worker = RedisWorker(conn, client, gate=gate, on_event=tell)

    async def until_finished() -> None:
        while True:
            await asyncio.sleep(0.5)  # a benchmark's look (its CPU is the worker's: rarely)
            hids = await watcher.smembers("tmapi:harvests")
            states = [await watcher.hget(f"tmapi:h:{hid.decode()}", "state") for hid in hids]
            if states and all(state == b"finished" for state in states):
                worker.stop()
                return

    try:
        async with client:
            watching = asyncio.create_task(until_finished())
            await worker.run()
            await watching
    finally:
        await conn.aclose()
        await watcher.aclose()
    return {
        "requests": client.requests,
        "items": 0,
        "errors": 0,
        "shops": worker.shops_done,
        "round_trips": tally.pop("round_trips"),
        "round_trips_by_kind": tally,
    }


CONTENDERS: dict[
    str, Callable[[argparse.Namespace, list[str]], Coroutine[Any, Any, dict[str, Any]]]
] = {
    "bare": run_bare,
    "bare-jsonl": run_bare,
    "lib-page": run_lib_page,
    "lib-shop": run_lib_shop,
    "lib-harvest": run_lib_harvest,
    "lib-harvest-metrics": run_lib_harvest_metrics,
    "rate": run_rate,
    "throttle": run_throttle,
    "naive": run_naive,
    "sequential": run_sequential,
    "memory": run_memory,
    "redis-worker": run_redis_worker,
}


def main() -> None:
    """Run one contender and print its report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks._workers")
    parser.add_argument("contender", choices=sorted(CONTENDERS))
    parser.add_argument("--url", default="")
    parser.add_argument("--shops", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--requests", type=int, default=0)
    parser.add_argument("--output", default="")
    parser.add_argument("--redis", default="", help="redis-worker: the Redis URL")
    parser.add_argument("--profile", default="", help="write a cProfile of the run here")
    args = parser.parse_args()
    shops = shop_urls(args.shops)
    factory = None
    if args.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    contender = CONTENDERS[args.contender]
    if args.contender == "lib-harvest-metrics":
        import prometheus_client  # noqa: F401  (once per process: not a cost per request)
    if args.contender == "redis-worker":  # the same: a worker imports these once
        import redis.asyncio  # noqa: F401

        import tmapi_async._redis.worker
        import tmapi_async.cli._tokens  # noqa: F401
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU, not waiting
    with asyncio.Runner(loop_factory=factory) as runner:
        cpu0, t0 = self_cpu(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        report: dict[str, Any] = runner.run(contender(args, shops))
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        wall, cpu = time.perf_counter() - t0, self_cpu() - cpu0
    report.update(wall=wall, cpu=cpu, peak_rss_mb=peak_rss_mb(), loop=args.loop)
    emit(report)


if __name__ == "__main__":
    main()
