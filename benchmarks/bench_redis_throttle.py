"""The shared throttle: ``python -m benchmarks.bench_redis_throttle [--quick] [--json]``.

``fidelity``: four processes, each a ``Client(redis_url=..., rate=R)`` harvesting its own
shops, share one token's rate of 100/s, then 1,000/s. At the server (a simulator in a
process of its own, 1-3 ms an answer, shops of 1,000 items, account limits far above):
the rate achieved,
``(requests - burst) / (last arrival - first arrival)`` against the target, and the
busiest sliding second against ``rate + burst``, there and where the clients were
admitted (an overloaded simulator stamps late, bunching arrivals), and the CPU each
request cost the client processes. The control: the same four processes, each with a
local throttle of a quarter of the rate (what the machine does without Redis; where it
cannot reach the rate, neither can the shared one). Both allow 256 requests in flight
in all, far above what 1-3 ms answers need: on a loaded machine the simulator answers
in tens of ms, and an in-flight cap that binds would measure it, not the rate.

``cost``: what one admission costs, shared through Redis against the local token
bucket, in one process with the rate and in-flight limit far above what is asked:
wall time per admission for one task (a round trip to Redis each), throughput with 16
tasks, and CPU per admission in this process and in ``redis-server``.

It starts its own ``redis-server`` (persistence off) on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from benchmarks._common import PYTHON, ROOT, TOKEN, Simulator, child_env
from benchmarks.bench_redis import redis_server

PROCESSES = 4
RATES = (100, 1000)  # requests/s of the token, split over the processes
_WAIT = 120.0  # seconds for a process to say it is ready or to finish


# -- fidelity: four processes, one token -----------------------------------------------


class _Stamped:
    """A throttle that notes when each request was admitted, on this machine's clock."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.stamps: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def acquire(self) -> int:
        ticket: int = await self._inner.acquire()
        self.stamps.append(time.time())
        return ticket


async def _child(base_url: str, redis_url: str, rate: float, shops: list[str]) -> None:
    """One of the processes: open the client, wait for the go line, harvest."""
    import tmapi_async as tm
    from tmapi_async._redis.throttle import RedisThrottle

    if redis_url == "local":  # the control: a local throttle of a quarter of the rate each
        inner: Any = tm.Throttle(rate=rate / PROCESSES, concurrency=64)
    else:
        inner = RedisThrottle(redis_url, TOKEN, rate=rate, concurrency=PROCESSES * 64)
    throttle = _Stamped(inner)
    client = tm.Client(TOKEN, base_url=base_url, throttle=throttle)
    async with client:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        cpu = time.process_time()
        async for _ in client.harvest(shops, keep_items=False):
            pass
        cpu = time.process_time() - cpu
    report = {"requests": client.requests, "stamps": throttle.stamps, "cpu": cpu}
    print(json.dumps(report), flush=True)


def _fidelity_run(
    sim: Simulator, redis_url: str, rate: int, seconds: float, *, shared: bool = True
) -> dict[str, Any]:
    import redis

    with redis.Redis.from_url(redis_url) as conn:
        conn.flushall()
    sim.ask("reset")
    # Big shops (1,000 items, 50 pages): few catalogues for the simulator to build, so
    # the run measures the throttles rather than the simulator's catalogue generation.
    pages = 50
    per_process = max(1, round(rate * seconds / pages / PROCESSES))
    children = []
    for n in range(PROCESSES):
        kind = "shared" if shared else "local"
        shops = [f"https://{kind}{rate}p{n}s{i}.1688.com/" for i in range(per_process)]
        command = [PYTHON, "-m", "benchmarks.bench_redis_throttle", "--child", sim.url,
                   redis_url if shared else "local", str(rate), *shops]  # fmt: skip
        children.append(
            subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=child_env(),
                cwd=ROOT,
            )
        )
    try:
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a process exited {child.wait()} before it was ready")
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        sent, stamps, cpu = 0, [], 0.0
        for child in children:
            out, _ = child.communicate(timeout=_WAIT)
            report = json.loads(out.strip().splitlines()[-1])
            sent += report["requests"]
            stamps += report["stamps"]
            cpu += report["cpu"]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    summary = sim.ask("summary")
    burst = max(1, round(rate / 20))  # the default burst of the rate
    achieved = (summary["count"] - burst) / summary["span"]
    return {
        "throttle": "shared" if shared else "local",
        "rate": rate,
        "burst": burst,
        "requests": summary["count"],
        "sent": sent,
        "span_s": summary["span"],
        "achieved_per_s": achieved,
        "ratio": achieved / rate,
        "busiest_second": summary["peak_1s"],
        "busiest_second_at_clients": _busiest_second(stamps),
        "bound": rate + burst,
        "peak_in_flight": summary["peak_in_flight"],
        "client_cpu_us_per_request": 1e6 * cpu / sent,
        "outcomes": summary["outcomes"],
        "loadavg": os.getloadavg()[0],
    }


def _busiest_second(stamps: list[float]) -> int:
    """The most admissions in any sliding second, as the clients saw them: the server's
    count adds what its own delays bunch (an overloaded simulator stamps late)."""
    times, best, low = sorted(stamps), 0, 0
    for high, when in enumerate(times):
        while times[low] <= when - 1.0:
            low += 1
        best = max(best, high - low + 1)
    return best


def fidelity(redis_url: str, *, seconds: float) -> list[dict[str, Any]]:
    """Scenario (b): 100/s and 1,000/s, each split over four processes sharing the rate
    through Redis; the control: four local throttles of a quarter of the rate each
    (what the machine can do without Redis)."""
    runs = []
    with Simulator("--items-per-shop", "1000", "--latency-ms", "1..3", logged=True) as sim:
        for rate in RATES:
            for shared in (True, False):
                run = _fidelity_run(sim, redis_url, rate, seconds, shared=shared)
                runs.append(run)
                print(
                    f"  {rate}/s over {PROCESSES} processes, {run['throttle']}: "
                    f"{run['achieved_per_s']:.1f}/s (ratio {run['ratio']:.3f}), busiest second "
                    f"{run['busiest_second']} at the server, {run['busiest_second_at_clients']} "
                    f"at the clients (bound {run['bound']}), {run['requests']} requests, "
                    f"{run['client_cpu_us_per_request']:.0f} µs CPU a request in the clients, "
                    f"load {run['loadavg']:.1f}",
                    file=sys.stderr,
                )
    return runs


# -- cost: one admission, shared against local -----------------------------------------


async def _admissions(throttle: Any, count: int, tasks: int) -> float:
    """Seconds for ``count`` admissions (acquire, release, success: what a client does for
    a page) by ``tasks`` tasks."""

    async def admit(n: int) -> None:
        for _ in range(n):
            throttle.release(await throttle.acquire())
            throttle.succeeded()

    start = time.perf_counter()
    await asyncio.gather(*(admit(count // tasks) for _ in range(tasks)))
    return time.perf_counter() - start


def _redis_cpu(redis_url: str) -> float:
    import redis

    with redis.Redis.from_url(redis_url) as conn:
        info = conn.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _cost_of(kind: str, redis_url: str, count: int) -> dict[str, Any]:
    import tmapi_async as tm
    from tmapi_async._redis.throttle import RedisThrottle

    # The burst must outlast the 20 ms of send jitter both keep back: rate * 0.02.
    rate, burst, concurrency = 1e6, 100_000, 10_000
    throttle: Any = (
        RedisThrottle(redis_url, TOKEN + kind, rate=rate, burst=burst, concurrency=concurrency)
        if kind == "redis"
        else tm.Throttle(rate=rate, burst=burst, concurrency=concurrency)
    )
    await throttle.start()
    try:
        await _admissions(throttle, 200, 1)  # warm up: connections, scripts loaded
        redis_before, cpu_before = _redis_cpu(redis_url), time.process_time()
        one_task = await _admissions(throttle, count, 1)
        sixteen = await _admissions(throttle, count, 16)
        cpu = time.process_time() - cpu_before
        redis_cpu = _redis_cpu(redis_url) - redis_before
    finally:
        await throttle.aclose()
    return {
        "throttle": kind,
        "us_per_admission_1_task": 1e6 * one_task / count,
        "admissions_per_s_16_tasks": count / sixteen,
        "cpu_us_per_admission": 1e6 * cpu / (2 * count),
        "redis_cpu_us_per_admission": 1e6 * redis_cpu / (2 * count),
    }


def cost(redis_url: str, *, count: int) -> list[dict[str, Any]]:
    """Scenario (c): the shared throttle's cost per request against the local one."""
    runs = [asyncio.run(_cost_of(kind, redis_url, count)) for kind in ("local", "redis")]
    for run in runs:
        print(
            f"  {run['throttle']:>5}: {run['us_per_admission_1_task']:.0f} µs an admission "
            f"(one task), {run['admissions_per_s_16_tasks']:.0f}/s with 16 tasks, "
            f"CPU {run['cpu_us_per_admission']:.0f} µs here + "
            f"{run['redis_cpu_us_per_admission']:.0f} µs in Redis",
            file=sys.stderr,
        )
    return runs


def run_all(*, quick: bool) -> dict[str, Any]:
    """Both scenarios on one private redis-server."""
    with redis_server() as redis_url:
        return {
            "scenario": "shared-throttle",
            "processes": PROCESSES,
            "fidelity": fidelity(redis_url, seconds=3.0 if quick else 6.0),
            "cost": cost(redis_url, count=2_000 if quick else 10_000),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_redis_throttle", description=__doc__
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        base_url, redis_url, rate, *shops = args.child
        asyncio.run(_child(base_url, redis_url, float(rate), shops))
        return 0
    report = run_all(quick=args.quick)
    print(" rate  throttle  achieved/s  ratio  busiest s (server)  (clients)  bound  CPU µs/req")
    for run in report["fidelity"]:
        print(
            f"{run['rate']:>5}  {run['throttle']:>8}  {run['achieved_per_s']:>10.1f}  "
            f"{run['ratio']:.3f}  {run['busiest_second']:>18}  "
            f"{run['busiest_second_at_clients']:>9}  {run['bound']:>5}  "
            f"{run['client_cpu_us_per_request']:>10.0f}"
        )
    print("throttle  µs/admission (1 task)  admissions/s (16 tasks)  CPU µs here  CPU µs Redis")
    for run in report["cost"]:
        print(
            f"{run['throttle']:>8}  {run['us_per_admission_1_task']:>21.0f}  "
            f"{run['admissions_per_s_16_tasks']:>23.0f}  {run['cpu_us_per_admission']:>11.0f}  "
            f"{run['redis_cpu_us_per_admission']:>12.0f}"
        )
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
