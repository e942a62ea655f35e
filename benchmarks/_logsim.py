"""The simulator CLI, plus questions about its request log on stdin (one JSON answer a line).

``python -m benchmarks._logsim [simulator flags]`` prints the base URL first, like
``python -m tmapi_async.testing``, then answers:

* ``reset``: forget the log; answers ``{}``;
* ``summary``: counts, outcomes, arrival span, the peak of arrivals in any sliding
  1-s window, server-side latencies and the peak of requests in flight.

It keeps every record (no ``--log-max``): runs are short.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from dataclasses import replace
from typing import Any

from tmapi_async.testing import RequestLog, SimulatedTmapi
from tmapi_async.testing._cli import build_config, configure_parser


def summarise(log: RequestLog) -> dict[str, Any]:
    """What the benchmarks read from a request log."""
    records = log.records
    arrivals = sorted(r.arrived for r in records)
    latencies = [
        r.departed - r.arrived for r in records if r.departed is not None and r.outcome == "ok"
    ]
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    # Mean requests in flight at the server from the first arrival to the last departure.
    edges = sorted(
        [(r.arrived, 1) for r in records if r.departed is not None]
        + [(r.departed, -1) for r in records if r.departed is not None]
    )
    busy, level, last_edge = 0.0, 0, edges[0][0] if edges else 0.0
    for when, step in edges:
        busy += level * (when - last_edge)
        level, last_edge = level + step, when
    served_span = edges[-1][0] - edges[0][0] if len(edges) > 1 else 0.0
    return {
        "count": len(records),
        "outcomes": dict(log.count_by_outcome()),
        "statuses": {str(k): v for k, v in log.count_by_status().items()},
        "first": arrivals[0] if arrivals else None,
        "last": arrivals[-1] if arrivals else None,
        "span": span,
        "peak_1s": log.peak_in_window(1.0),
        "latency_sum": sum(latencies),
        "latency_mean": sum(latencies) / len(latencies) if latencies else 0.0,
        "peak_in_flight": log.peak_in_flight(),
        "mean_in_flight": busy / served_span if served_span else 0.0,
        "pages_distinct": len(log.per_page()),
    }


async def _serve(args: argparse.Namespace) -> None:
    config = replace(build_config(args), log_max_records=None)
    async with SimulatedTmapi(config, host=args.host, port=args.port) as sim:
        print(sim.url, flush=True)
        while line := await asyncio.to_thread(sys.stdin.readline):
            command = line.strip()
            answer: dict[str, Any] = {}
            if command == "reset":
                sim.reset()
            elif command == "summary":
                answer = summarise(sim.log)
            else:
                answer = {"error": f"unknown command {command!r}"}
            print(json.dumps(answer), flush=True)


def main() -> None:
    """Serve until stdin closes or a signal arrives."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks._logsim")
    configure_parser(parser)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
