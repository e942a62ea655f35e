"""Scale-out benchmarks on Redis: ``python -m benchmarks.bench_redis [SCENARIO ...]``.

``workers``, on a latency-bound simulator (50-100 ms an answer, per-worker concurrency
8, account limits far above what the workers send):

* what a page costs a worker: one worker run in a benchmark process that counts its
  round trips to Redis (every command, script and pipeline) and its CPU, against a
  plain local ``Client.harvest`` of the same shops on the same simulator, run in the
  same round: round trips per page, and the worker's CPU per request over the local
  harvest's (medians of the rounds);
* throughput of a harvest served by 1, 2 and 4 ``tmapi-async worker`` processes:
  answers per second at the server, from its first request to its last (process
  start-up is not counted). Each worker count runs ``rounds`` times, alternated; the
  figure is the median of the ratios to one worker paired by round, with the load
  average of the machine (shared machines make every figure noisy).

Each scenario starts its own ``redis-server`` (persistence off) on a free port and the
simulator in a process of its own, and prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks._common import (
    PYTHON,
    ROOT,
    TOKEN,
    Simulator,
    child_env,
    median,
    run_child,
    shop_urls,
)

WORKER_CONCURRENCY = 8
LATENCY_MS = "50..100"
_WAIT = 120.0  # seconds for a process to say it is ready or to finish


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A private ``redis-server`` on a free loopback port, persistence off; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as workdir:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", workdir],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + _WAIT
            while not _answers(port):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("redis-server did not start")
                time.sleep(0.02)  # bounded poll: the server has no readiness signal
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _flush(url: str) -> None:
    import redis

    with redis.Redis.from_url(url) as conn:
        conn.flushall()


def _start_worker(url: str, base_url: str) -> subprocess.Popen[str]:
    env = {**child_env(), "TMAPI_TOKEN": TOKEN, "TMAPI_BASE_URL": base_url}
    worker = subprocess.Popen(
        [PYTHON, "-m", "tmapi_async", "worker", "--redis", url,
         "--concurrency", str(WORKER_CONCURRENCY)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert worker.stderr is not None
    for line in worker.stderr:  # wait for the line that says it serves
        if " ready" in line:
            return worker
    raise RuntimeError(f"worker exited {worker.wait()} before it was ready")


def _stop(worker: subprocess.Popen[str]) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=15)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def _cpu(before: resource.struct_rusage, after: resource.struct_rusage) -> float:
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _coordinate(url: str, sim: Simulator, shops: Path) -> float:
    """Run the harvest of ``shops`` through ``url`` (its workers started already): a
    coordinator that starts none; return its wall time."""
    with tempfile.TemporaryDirectory(prefix="bench-redis-out-") as out:
        env = {**child_env(), "TMAPI_TOKEN": TOKEN, "TMAPI_BASE_URL": sim.url}
        command = [
            PYTHON, "-m", "tmapi_async", "harvest", str(shops),
            "--output", str(Path(out) / "items.jsonl"), "--redis", url, "--workers", "0",
            "--rate", "100000", "--burst", "10000", "--concurrency", "1000", "-q",
        ]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"harvest exited {done.returncode}: {done.stderr[-2000:]}")
    return wall


def _worker_cost(url: str, sim: Simulator, shops: Path) -> dict[str, Any]:
    """One worker in a counting benchmark process serves a harvest of ``shops``."""
    _flush(url)
    sim.ask("reset")
    command = [
        PYTHON, "-m", "benchmarks._workers", "redis-worker", "--url", sim.url,
        "--redis", url, "--concurrency", str(WORKER_CONCURRENCY),
    ]  # fmt: skip
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_env(), cwd=ROOT,
    )  # fmt: skip
    assert child.stderr is not None
    for line in child.stderr:  # wait for the line that says it serves
        if line.rstrip().endswith(" ready"):
            break
    else:
        raise RuntimeError(f"the worker exited {child.wait()} before it was ready")
    _coordinate(url, sim, shops)
    stdout, stderr = child.communicate(timeout=_WAIT)
    reports = [line for line in stdout.splitlines() if line.startswith("{")]
    if child.returncode != 0 or not reports:
        raise RuntimeError(f"the worker exited {child.returncode}: {stderr[-2000:]}")
    report: dict[str, Any] = json.loads(reports[-1])
    requests = max(1, report["requests"])
    return {
        "requests": report["requests"],
        "round_trips": report["round_trips"],
        "round_trips_per_page": report["round_trips"] / requests,
        "round_trips_by_kind": report["round_trips_by_kind"],
        "cpu_ms_per_request": 1000 * report["cpu"] / requests,
    }


def _local_cost(sim: Simulator, shops: int) -> dict[str, Any]:
    """A plain local ``Client.harvest`` of the same shops, with the same concurrency."""
    sim.ask("reset")
    run = run_child([
        PYTHON, "-m", "benchmarks._workers", "lib-harvest", "--url", sim.url,
        "--shops", str(shops), "--concurrency", str(WORKER_CONCURRENCY),
    ])  # fmt: skip
    if run.returncode != 0 or not run.report:
        raise RuntimeError(f"the local harvest failed: {run.stderr[-2000:]}")
    requests = max(1, run.report["requests"])
    return {
        "requests": run.report["requests"],
        "cpu_ms_per_request": 1000 * run.report["cpu"] / requests,
    }


def _one_run(url: str, sim: Simulator, shops: Path, count: int) -> dict[str, Any]:
    """One harvest with ``count`` workers (started and ready first); the server's view."""
    _flush(url)
    sim.ask("reset")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers = [_start_worker(url, sim.url) for _ in range(count)]
    try:
        wall = _coordinate(url, sim, shops)
        # Children's CPU counts only once they are waited for: the coordinator now.
        coordinated = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        for worker in workers:
            _stop(worker)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # and the workers
    summary = sim.ask("summary")
    per_request = 1000 / max(1, summary["count"])
    span = summary["span"] or float("nan")
    return {
        "workers": count,
        "requests": summary["count"],
        "span_s": span,
        "per_s": summary["count"] / span,
        "coordinator_wall_s": wall,
        "peak_in_flight": summary["peak_in_flight"],
        "mean_in_flight": summary["mean_in_flight"],
        "worker_cpu_ms_per_request": per_request * _cpu(coordinated, after),
        "coordinator_cpu_ms_per_request": per_request * _cpu(before, coordinated),
        "loadavg": os.getloadavg()[0],
    }


def workers_scaling(
    *, shops: int = 160, rounds: int = 3, counts: tuple[int, ...] = (1, 2, 4)
) -> dict[str, Any]:
    """Scenario (a): what a page costs a worker; answers/s of 1, 2, 4 workers (speed-ups
    paired by round)."""
    runs: list[dict[str, Any]] = []
    costs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-redis-shops-") as workdir:
        shop_file = Path(workdir) / "shops.txt"
        shop_file.write_text("".join(f"{url}\n" for url in shop_urls(shops)))
        with redis_server() as url, Simulator(
            "--shops", str(shops), "--items-per-shop", "100..200",
            "--latency-ms", LATENCY_MS, logged=True,
        ) as sim:  # fmt: skip
            for round_ in range(rounds):
                worker, local = _worker_cost(url, sim, shop_file), _local_cost(sim, shops)
                cost = {
                    "round": round_,
                    "round_trips_per_page": worker["round_trips_per_page"],
                    "worker_cpu_ms_per_request": worker["cpu_ms_per_request"],
                    "local_cpu_ms_per_request": local["cpu_ms_per_request"],
                    "cpu_ratio": worker["cpu_ms_per_request"] / local["cpu_ms_per_request"],
                    "loadavg": os.getloadavg()[0],
                }
                costs.append(cost)
                print(
                    f"  round {round_ + 1}: a worker: {cost['round_trips_per_page']:.2f} Redis "
                    f"round trips a page, CPU {cost['worker_cpu_ms_per_request']:.2f} ms a "
                    f"request vs {cost['local_cpu_ms_per_request']:.2f} ms for a local "
                    f"harvest ({cost['cpu_ratio']:.2f}x); load {cost['loadavg']:.1f}",
                    file=sys.stderr,
                )
            for round_ in range(rounds):
                order = counts[round_ % len(counts) :] + counts[: round_ % len(counts)]
                for count in order:
                    run = _one_run(url, sim, shop_file, count)
                    run["round"] = round_
                    runs.append(run)
                    print(
                        f"  round {round_ + 1}: {count} worker(s): {run['per_s']:.0f} answers/s "
                        f"({run['requests']} in {run['span_s']:.2f} s), mean in flight "
                        f"{run['mean_in_flight']:.1f}; CPU a request: workers "
                        f"{run['worker_cpu_ms_per_request']:.1f} ms, coordinator "
                        f"{run['coordinator_cpu_ms_per_request']:.1f} ms; "
                        f"load {run['loadavg']:.1f}",
                        file=sys.stderr,
                    )
    by_round: dict[int, dict[int, float]] = {}
    for run in runs:
        by_round.setdefault(run["round"], {})[run["workers"]] = run["per_s"]
    speedup = {
        count: median([r[count] / r[counts[0]] for r in by_round.values()]) for count in counts
    }
    per_s = {count: median([r[count] for r in by_round.values()]) for count in counts}
    return {
        "scenario": "workers",
        "round_trips_per_page": median([c["round_trips_per_page"] for c in costs]),
        "cpu_ratio": median([c["cpu_ratio"] for c in costs]),
        "worker_cpu_ms_per_request": median([c["worker_cpu_ms_per_request"] for c in costs]),
        "local_cpu_ms_per_request": median([c["local_cpu_ms_per_request"] for c in costs]),
        "loadavg": median([run["loadavg"] for run in runs]),
        "costs": costs,
        "shops": shops,
        "latency_ms": LATENCY_MS,
        "worker_concurrency": WORKER_CONCURRENCY,
        "rounds": rounds,
        "per_s": per_s,
        "speedup": speedup,
        "runs": runs,
    }


def _print_workers(result: dict[str, Any]) -> None:
    print(
        f"a worker: {result['round_trips_per_page']:.2f} Redis round trips a page; CPU "
        f"{result['worker_cpu_ms_per_request']:.2f} ms a request, "
        f"{result['cpu_ratio']:.2f}x a local harvest's "
        f"({result['local_cpu_ms_per_request']:.2f} ms)"
    )
    print(f"workers  answers/s  speed-up  ({result['shops']} shops, {result['rounds']} rounds)")
    for count, per_s in result["per_s"].items():
        print(f"{count:>7}  {per_s:>9.0f}  {result['speedup'][count]:>7.2f}x")
    print(f"load average (1 min) during the runs: {result['loadavg']:.1f}")


SCENARIOS: dict[str, tuple[Callable[..., dict[str, Any]], Callable[[dict[str, Any]], None]]] = {
    "workers": (workers_scaling, _print_workers),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_redis", description=__doc__)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=", ".join(SCENARIOS))
    parser.add_argument("--quick", action="store_true", help="fewer shops and rounds")
    args = parser.parse_args(argv)
    for name in args.scenarios or list(SCENARIOS):
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}: choose from {', '.join(SCENARIOS)}")
        run, show = SCENARIOS[name]
        result = run(shops=100, rounds=1) if args.quick and name == "workers" else run()
        show(result)
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
