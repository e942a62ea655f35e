"""The five scenarios of ``python -m benchmarks``; each returns its raw figures as a dict.

Contenders of one comparison run in the same invocation, alternated round by round
(A, B, C, then B, C, A, ...). A contender is compared with its baseline *in the same
round* and the median of those paired ratios is the figure: rounds run back to back, so
the ratio cancels the machine's drift between rounds, which a ratio of medians does not.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import (
    PYTHON,
    ROOT,
    TOKEN,
    ChildRun,
    Simulator,
    expected_items,
    expected_pages,
    have,
    median,
    run_child,
    shops_file,
)

# Through _child: the library is imported before a contender starts its clock.
WORKERS = [PYTHON, "-m", "benchmarks._child"]


@dataclass(frozen=True)
class Plan:
    """Sizes of one run of the suite (``--quick`` or full)."""

    rounds: int  # alternations of the throughput contenders
    shops: int  # throughput workload: shops of ITEMS items
    process_shops: int  # whole-process race (Scrapy is slow: fewer shops)
    process_rounds: int
    rates: tuple[tuple[float, float], ...]  # (target req/s, seconds)
    bound_shops: int
    bound_items: tuple[int, int]
    bound_rounds: int
    memory_shops: tuple[int, ...]
    decode_rounds: int


# Rounds of the throughput race: a run lasts well under a second and this machine's
# speed drifts by a third from one to the next, so only a median of many is a figure.
QUICK = Plan(
    rounds=7,
    shops=80,
    process_shops=20,
    process_rounds=2,
    rates=((10, 3), (100, 3), (1000, 2), (5000, 2)),
    bound_shops=30,
    bound_items=(20, 200),
    bound_rounds=2,
    memory_shops=(20, 120),
    decode_rounds=5,
)
FULL = Plan(
    rounds=9,
    shops=200,
    process_shops=80,
    process_rounds=3,
    rates=((10, 10), (100, 10), (1000, 6), (5000, 6)),
    bound_shops=120,
    bound_items=(20, 400),
    bound_rounds=3,
    memory_shops=(50, 200, 600),
    decode_rounds=9,
)
ITEMS = (200, 1000)  # items per shop in the throughput and memory workloads
CONCURRENCY = 64


def rotations(names: Sequence[str], rounds: int) -> list[str]:
    """``names`` in ``rounds`` rotated orders: A B C, B C A, C A B, ..."""
    order: list[str] = []
    for r in range(rounds):
        k = r % len(names)
        order.extend([*names[k:], *names[:k]])
    return order


def _summarise(
    runs: list[ChildRun],
    per_run: Callable[[ChildRun], dict[str, float]],
    *,
    need_report: bool = True,
) -> dict[str, Any]:
    figures = [
        per_run(run) for run in runs if run.returncode == 0 and (run.report or not need_report)
    ]
    keys = figures[0].keys() if figures else ()
    return {
        "runs": len(figures),
        "median": {k: median([f[k] for f in figures]) for k in keys},
        "all": figures,
    }


Round = dict[str, dict[str, float]]  # contender -> its figures in one round


def paired(rounds: Sequence[Round], name: str, base: str, key: str) -> float:
    """The median over rounds of ``name``'s ``key`` ÷ ``base``'s in the same round."""
    return median([r[name][key] / r[base][key] for r in rounds if name in r and base in r])


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


# -- a. throughput ceiling ------------------------------------------------------------------


def cli_available() -> bool:
    """True once the ``tmapi-async harvest`` command exists."""
    try:
        import tmapi_async.cli  # noqa: F401
    except ImportError:
        return False
    return True


def throughput(plan: Plan) -> dict[str, Any]:
    """Open limits, fixed concurrency: the library vs the bare loop vs Scrapy."""
    # lib-harvest-metrics: the same harvest with Prometheus metrics on (paired with it)
    inner = ["bare", "lib-page", "lib-harvest", "lib-harvest-metrics", "lib-shop"]
    uv = have("uvloop")
    if uv:
        inner += ["bare@uvloop", "lib-harvest@uvloop"]
    expected = expected_items(plan.shops, *ITEMS)
    pages = expected_pages(plan.shops, *ITEMS)
    results: dict[str, Any] = {
        "concurrency": CONCURRENCY,
        "shops": plan.shops,
        "expected_items": expected,
        "expected_requests": pages,
    }
    n_sim = plan.shops
    with Simulator(
        "--shops", str(n_sim), "--items-per-shop", f"{ITEMS[0]}..{ITEMS[1]}", "--log-max", "1000"
    ) as sim:
        base = [*WORKERS, "--url", sim.url, "--concurrency", str(CONCURRENCY)]
        _progress("throughput: warming the simulator's catalogues")
        run_child([*base, "bare", "--shops", str(n_sim)])
        runs: dict[str, list[ChildRun]] = {name: [] for name in inner}
        rounds: list[Round] = [{} for _ in range(plan.rounds)]

        def figures(run: ChildRun) -> dict[str, float]:
            r = run.report
            return {
                "requests": r["requests"],
                "items": r["items"],
                "errors": r["errors"],
                "wall_s": r["wall"],
                "req_per_s": r["requests"] / r["wall"],
                "items_per_s": r["items"] / r["wall"],
                "cpu_s": r["cpu"],
                "cpu_us_per_req": 1e6 * r["cpu"] / r["requests"],
                "req_per_cpu_s": r["requests"] / r["cpu"],
            }

        for i, name in enumerate(rotations(inner, plan.rounds)):
            contender, _, loop = name.partition("@")
            run = run_child(
                [*base, contender, "--shops", str(plan.shops), "--loop", loop or "asyncio"]
            )
            if run.report.get("items") != expected:
                _progress(f"  {name}: {run.report.get('items')} items, expected {expected}")
            runs[name].append(run)
            r = run.report
            if r and run.returncode == 0:
                rounds[i // len(inner)][name] = figures(run)
                _progress(
                    f"throughput {name}: {r['requests'] / r['wall']:,.0f} req/s, "
                    f"{1e6 * r['cpu'] / r['requests']:.0f} µs CPU/req"
                )

        results["contenders"] = {name: _summarise(rs, figures) for name, rs in runs.items()}
        for name, block in results["contenders"].items():
            base_name = "bare@uvloop" if name.endswith("@uvloop") else "bare"
            block["vs_base"] = {
                "base": base_name,
                "req_per_s": paired(rounds, name, base_name, "req_per_s"),
                "req_per_cpu_s": paired(rounds, name, base_name, "req_per_cpu_s"),
            }
        results["metrics_on_off"] = paired(
            rounds, "lib-harvest-metrics", "lib-harvest", "req_per_s"
        )
        results["process"] = whole_process(plan, sim.url)
    return results


def whole_process(plan: Plan, url: str) -> dict[str, Any]:
    """The whole process of each harvester, start to exit, on one harvest to JSON Lines."""
    expected = expected_items(plan.process_shops, *ITEMS)
    out: dict[str, Any] = {
        "shops": plan.process_shops,
        "expected_items": expected,
        "expected_requests": expected_pages(plan.process_shops, *ITEMS),
        "concurrency": CONCURRENCY,
    }
    with shops_file(plan.process_shops) as shops, tempfile.TemporaryDirectory() as tmp:
        output = "{OUTPUT}"  # each run writes a fresh file (the CLI would resume an old one)
        commands: dict[str, list[str]] = {
            "bare-jsonl": [
                *WORKERS,
                "bare-jsonl",
                "--url",
                url,
                "--shops",
                str(plan.process_shops),
                "--concurrency",
                str(CONCURRENCY),
                "--output",
                output,
            ],
            # The library's harvest writing JSON Lines (the CLI's engine, no CLI around it).
            "lib-jsonl": [
                *WORKERS,
                "memory",
                "--url",
                url,
                "--shops",
                str(plan.process_shops),
                "--concurrency",
                str(CONCURRENCY),
                "--output",
                output,
            ],
        }
        if cli_available():
            # ``python -m tmapi_async`` is the ``tmapi-async`` script's own entry point,
            # without depending on a script that an older install may have left behind.
            commands["cli"] = [
                PYTHON,
                "-m",
                "tmapi_async",
                "harvest",
                str(shops),
                "--output",
                output,
                "--base-url",
                url,
                "--token",
                TOKEN,
                "--rate",
                "1000000",
                "--quiet",
                "--concurrency",
                str(CONCURRENCY),
            ]
        if have("scrapy"):
            commands["scrapy"] = [
                PYTHON,
                "-m",
                "scrapy",
                "runspider",
                str(ROOT / "benchmarks" / "_scrapy_spider.py"),
                "-a",
                f"base_url={url}",
                "-a",
                f"shops={shops}",
                "-s",
                f"CONCURRENT_REQUESTS={CONCURRENCY}",
                "-s",
                f"CONCURRENT_REQUESTS_PER_DOMAIN={CONCURRENCY}",
                "-O",
                f"{output}:jsonlines",
            ]
        runs: dict[str, list[ChildRun]] = {name: [] for name in commands}
        rounds: list[Round] = [{} for _ in range(plan.process_rounds)]
        lines: dict[str, int] = {}

        def figures(run: ChildRun) -> dict[str, float]:
            return {
                "wall_s": run.wall,
                "cpu_s": run.cpu,
                "inner_wall_s": float(run.report.get("wall", float("nan"))),
                "requests": float(run.report.get("requests", float("nan"))),
            }

        for i, name in enumerate(rotations(list(commands), plan.process_rounds)):
            target = str(Path(tmp) / f"run{i}" / "out.jsonl")
            Path(target).parent.mkdir()
            run = run_child([arg.replace(output, target) for arg in commands[name]])
            runs[name].append(run)
            lines[name] = _count_lines(target)
            shutil.rmtree(Path(target).parent)
            if run.returncode == 0:
                rounds[i // len(commands)][name] = figures(run)
            _progress(
                f"whole process {name}: {run.wall:.2f} s wall, {run.cpu:.2f} s CPU, "
                f"{lines[name]} lines"
            )

        out["contenders"] = {
            name: {
                **_summarise(rs, figures, need_report=False),
                "lines_written": lines.get(name, 0),
                # Scrapy's wall time ÷ this one's, paired by round.
                "scrapy_speedup": paired(rounds, "scrapy", name, "wall_s"),
            }
            for name, rs in runs.items()
        }
    return out


def _count_lines(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


# -- b. rate fidelity ---------------------------------------------------------------------------


def rate_fidelity(plan: Plan) -> dict[str, Any]:
    """The client at a target rate, as the simulator's request log saw it; the throttle alone."""
    rows: list[dict[str, Any]] = []
    with Simulator("--shops", "1", "--items-per-shop", "20", logged=True) as sim:
        for target, seconds in plan.rates:
            import tmapi_async as tm

            n = int(target * seconds)
            burst = tm.Throttle(rate=target, concurrency=64).burst  # the default burst
            sim.ask("reset")
            run = run_child(
                [
                    *WORKERS,
                    "rate",
                    "--url",
                    sim.url,
                    "--shops",
                    "1",
                    "--concurrency",
                    "64",
                    "--rate",
                    str(target),
                    "--requests",
                    str(n),
                ]
            )
            log = sim.ask("summary")
            alone = run_child(
                [
                    *WORKERS,
                    "throttle",
                    "--concurrency",
                    "64",
                    "--rate",
                    str(target),
                    "--requests",
                    str(n),
                ]
            ).report
            span = log["span"] or float("nan")
            row = {
                "target": target,
                "burst": burst,
                "requests": log["count"],
                "span_s": span,
                # After the first `burst` (which leave at once), requests leave at the rate.
                "achieved": (log["count"] - burst) / span,
                "achieved_ratio": (log["count"] - burst) / span / target,
                "peak_1s": log["peak_1s"],
                "window_limit": target + burst,
                "client_cpu_s": run.report.get("cpu", float("nan")),
                "throttle_only_achieved": (alone["requests"] - alone["burst"]) / alone["span"]
                if alone.get("span")
                else float("nan"),
                "throttle_only_peak_1s": alone.get("peak_1s", 0),
            }
            rows.append(row)
            _progress(
                f"rate {target:g}/s: achieved {row['achieved']:,.1f}/s "
                f"({row['achieved_ratio']:.3f}), peak 1-s window {row['peak_1s']} "
                f"(limit {row['window_limit']}); throttle alone "
                f"{row['throttle_only_achieved']:,.1f}/s"
            )
    return {"rows": rows, "note": "server-side arrival times from the simulator's request log"}


# -- c. harvest time vs its lower bound ---------------------------------------------------------

LIMIT = 8
LATENCY_MS = (50, 100)


def harvest_bound(plan: Plan) -> dict[str, Any]:
    """N shops under an in-flight limit and latency: the library vs naive vs sequential."""
    shops = plan.bound_shops
    low, high = plan.bound_items
    needed = expected_pages(shops, low, high)
    expected = expected_items(shops, low, high)
    mean_latency = sum(LATENCY_MS) / 2 / 1000
    bound = needed * mean_latency / LIMIT  # the rate is open (1e6/s): its bound is ~0
    contenders = {
        "tmapi-async (concurrency 8)": ["lib-harvest", "--concurrency", str(LIMIT)],
        "tmapi-async (concurrency 16)": ["lib-harvest", "--concurrency", str(2 * LIMIT)],
        "naive gather": ["naive"],
    }
    out: dict[str, Any] = {
        "shops": shops,
        "items_per_shop": [low, high],
        "in_flight_limit": LIMIT,
        "latency_ms": list(LATENCY_MS),
        "requests_needed": needed,
        "expected_items": expected,
        "lower_bound_s": bound,
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in [*contenders, "sequential"]}
    with Simulator(
        "--shops",
        str(shops),
        "--items-per-shop",
        f"{low}..{high}",
        "--concurrency-limit",
        str(LIMIT),
        "--latency-ms",
        f"{LATENCY_MS[0]}..{LATENCY_MS[1]}",
        logged=True,
    ) as sim:
        order = [*rotations(list(contenders), plan.bound_rounds), "sequential"]
        for name in order:
            args = contenders.get(name, ["sequential"])
            sim.ask("reset")
            run = run_child([*WORKERS, *args, "--url", sim.url, "--shops", str(shops)])
            log = sim.ask("summary")
            r = run.report
            if not r:
                continue
            # The bound again from the latencies the server actually served (ok answers).
            exact = log["latency_sum"] / LIMIT
            row = {
                "wall_s": r["wall"],
                "ratio_to_bound": r["wall"] / bound,
                "ratio_to_served_bound": r["wall"] / exact if exact else float("nan"),
                "requests": log["count"],
                "refused_503": log["outcomes"].get("concurrency_limited", 0),
                "items": r["items"],
                "items_lost": expected - r["items"],
                "peak_in_flight": log["peak_in_flight"],
                "mean_in_flight": log["mean_in_flight"],
            }
            runs[name].append(row)
            _progress(
                f"harvest {name}: {row['wall_s']:.2f} s = {row['ratio_to_bound']:.3f} x bound "
                f"{bound:.2f} s; {row['refused_503']} refused, {row['items_lost']} items lost"
            )
    out["contenders"] = {
        name: {
            "runs": len(rows),
            "median": {k: median([row[k] for row in rows]) for k in rows[0]} if rows else {},
            "all": rows,
        }
        for name, rows in runs.items()
    }
    return out


# -- d. memory ------------------------------------------------------------------------------


def memory(plan: Plan) -> dict[str, Any]:
    """Peak RSS of a harvest streaming pages to a JSON Lines file, against items harvested."""
    rows: list[dict[str, Any]] = []
    samples: list[list[float]] = []
    n_sim = max(plan.memory_shops)
    with (
        Simulator(
            "--shops",
            str(n_sim),
            "--items-per-shop",
            f"{ITEMS[0]}..{ITEMS[1]}",
            "--log-max",
            "1000",
        ) as sim,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for shops in plan.memory_shops:
            run = run_child(
                [
                    *WORKERS,
                    "memory",
                    "--url",
                    sim.url,
                    "--shops",
                    str(shops),
                    "--concurrency",
                    str(CONCURRENCY),
                    "--output",
                    str(Path(tmp) / "m.jsonl"),
                ]
            )
            r = run.report
            if not r:
                continue
            rows.append(
                {
                    "shops": shops,
                    "items": r["items"],
                    "expected_items": expected_items(shops, *ITEMS),
                    "peak_rss_mb": r["sampled_peak_mb"],
                    "rss_before_harvest_mb": r["rss_start_mb"],
                    "wall_s": r["wall"],
                }
            )
            samples = r["samples"]
            _progress(
                f"memory {shops} shops: {r['items']} items, peak RSS {r['sampled_peak_mb']:.1f} MB"
            )
    return {"rows": rows, "samples_largest": samples, "concurrency": CONCURRENCY}


# -- e. decoding ----------------------------------------------------------------------------


def decoding(plan: Plan) -> dict[str, Any]:
    """µs to decode one page of 20 items: msgspec Structs vs json + dataclasses vs pydantic."""
    run = run_child(
        [PYTHON, "-m", "benchmarks.bench_decode", "--json", "--rounds", str(plan.decode_rounds)]
    )
    for name, value in run.report.get("us_per_page", {}).items():
        _progress(f"decode {name}: {value:.1f} µs/page")
    return run.report


SCENARIOS: dict[str, Callable[[Plan], dict[str, Any]]] = {
    "throughput": throughput,
    "rate": rate_fidelity,
    "harvest": harvest_bound,
    "memory": memory,
    "decode": decoding,
    "pool": lambda plan: run_child([PYTHON, "-m", "benchmarks.bench_pool", "--json"]).report,
    "shared-throttle": lambda plan: (
        run_child(
            [PYTHON, "-m", "benchmarks.bench_redis_throttle", "--json"]
            + ["--quick"] * (plan == QUICK)
        ).report
    ),
}
