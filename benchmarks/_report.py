"""Tables (Markdown, also printed) and PNG plots from the raw figures of a run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

Row = tuple[str, str, str, str]


def _f(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _med(block: dict[str, Any], name: str, key: str) -> float:
    try:
        return float(block["contenders"][name]["median"][key])
    except KeyError:
        return float("nan")


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 5 (and issue 2's benchmark bullet): figure, met or not."""
    out: list[dict[str, Any]] = []
    s = results["scenarios"]
    if "throughput" in s:
        t = s["throughput"]
        for lib, bare in (
            ("lib-harvest", "bare"),
            ("lib-page", "bare"),
            ("lib-harvest@uvloop", "bare@uvloop"),
        ):
            if lib not in t["contenders"] or bare not in t["contenders"]:
                continue
            ratio = _med(t, lib, "req_per_s") / _med(t, bare, "req_per_s")
            cpu_ratio = _med(t, lib, "req_per_cpu_s") / _med(t, bare, "req_per_cpu_s")
            for floor, source in ((0.90, "issue 5"), (0.85, "issue 2")):
                if source == "issue 2" and lib != "lib-page":
                    continue
                out.append(
                    {
                        "target": f"{lib} ≥ {floor:.2f} × {bare} req/s ({source})",
                        "figure": f"{ratio:.2f} × (wall); {cpu_ratio:.2f} × per CPU-second",
                        "met": ratio >= floor,
                    }
                )
        p = t.get("process", {})
        procs = p.get("contenders", {})
        if "scrapy" in procs:
            scrapy = _med(p, "scrapy", "wall_s")
            for name in ("cli", "lib-jsonl", "bare-jsonl"):
                if name in procs:
                    speedup = scrapy / _med(p, name, "wall_s")
                    label = {
                        "cli": "`tmapi-async harvest` process",
                        "lib-jsonl": "library harvest → JSONL process (CLI stand-in)",
                        "bare-jsonl": "bare aiohttp+msgspec → JSONL process (reference)",
                    }[name]
                    out.append(
                        {
                            "target": f"{label} ≥ 5 × faster than Scrapy process",
                            "figure": f"{speedup:.1f} × ({_f(_med(p, name, 'wall_s'), 2)} s vs "
                            f"{_f(scrapy, 2)} s)",
                            "met": speedup >= 5 if name != "bare-jsonl" else None,
                        }
                    )
    if "rate" in s:
        for row in s["rate"]["rows"]:
            ok = row["achieved_ratio"] >= 0.97 and row["peak_1s"] <= row["window_limit"]
            out.append(
                {
                    "target": f"rate {row['target']:g}/s: achieved ≥ 0.97 × target, "
                    f"no 1-s window > {row['window_limit']:g}",
                    "figure": f"{row['achieved_ratio']:.3f} ×, peak window {row['peak_1s']}",
                    "met": ok,
                }
            )
    if "harvest" in s:
        h = s["harvest"]
        name = "tmapi-async (concurrency 8)"
        ratio = _med(h, name, "ratio_to_bound")
        out.append(
            {
                "target": "harvest time ≤ 1.05 × lower bound",
                "figure": f"{ratio:.3f} × ({_f(_med(h, name, 'wall_s'), 2)} s vs "
                f"{_f(h['lower_bound_s'], 2)} s)",
                "met": ratio <= 1.05,
            }
        )
    return out


def table(results: dict[str, Any]) -> str:
    """The results as Markdown tables."""
    s = results["scenarios"]
    parts: list[str] = []
    if "throughput" in s:
        t = s["throughput"]
        parts.append(
            f"### a. Throughput ceiling (concurrency {t['concurrency']}, rate open; "
            f"{t['shops']} shops, {t['expected_requests']:,} requests, "
            f"{t['expected_items']:,} items per run; median of {_runs(t)} alternated runs)\n"
        )
        parts.append(
            "| contender | req/s | items/s | CPU µs/req | req/s vs bare | "
            "req per CPU-s vs bare |\n|---|---:|---:|---:|---:|---:|"
        )
        for name in t["contenders"]:
            base = "bare@uvloop" if name.endswith("@uvloop") else "bare"
            parts.append(
                f"| {name} | {_f(_med(t, name, 'req_per_s'))} | {_f(_med(t, name, 'items_per_s'))} "
                f"| {_f(_med(t, name, 'cpu_us_per_req'))} "
                f"| {_f(_med(t, name, 'req_per_s') / _med(t, base, 'req_per_s'), 2)} "
                f"| {_f(_med(t, name, 'req_per_cpu_s') / _med(t, base, 'req_per_cpu_s'), 2)} |"
            )
        p = t.get("process")
        if p:
            parts.append(
                f"\n### a. Whole process, start to exit ({p['shops']} shops, "
                f"{p['expected_requests']:,} requests, {p['expected_items']:,} items → JSON Lines, "
                f"concurrency {p['concurrency']})\n"
            )
            parts.append(
                "| process | wall s | CPU s | req/s inside | lines written | "
                "Scrapy wall ÷ this |\n|---|---:|---:|---:|---:|---:|"
            )
            scrapy = _med(p, "scrapy", "wall_s")
            for name, block in p["contenders"].items():
                inner = _med(p, name, "inner_wall_s")
                reqs = _med(p, name, "requests")
                parts.append(
                    f"| {name} | {_f(_med(p, name, 'wall_s'), 2)} "
                    f"| {_f(_med(p, name, 'cpu_s'), 2)} "
                    f"| {_f(reqs / inner)} | {block.get('lines_written', 0):,} "
                    f"| {_f(scrapy / _med(p, name, 'wall_s'), 1)} |"
                )
    if "rate" in s:
        parts.append(
            "\n### b. Rate fidelity (simulator's request log; burst = default ≈ rate/20)\n"
        )
        parts.append(
            "| target/s | burst | requests | achieved/s | ratio | peak 1-s window | "
            "limit (rate+burst) | throttle alone/s | throttle alone peak |\n"
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        )
        for r in s["rate"]["rows"]:
            parts.append(
                f"| {r['target']:g} | {r['burst']} | {r['requests']:,} | {_f(r['achieved'], 1)} "
                f"| {_f(r['achieved_ratio'], 3)} | {r['peak_1s']:,} | {r['window_limit']:,.0f} "
                f"| {_f(r['throttle_only_achieved'], 1)} | {r['throttle_only_peak_1s']:,} |"
            )
    if "harvest" in s:
        h = s["harvest"]
        parts.append(
            f"\n### c. Harvest time vs lower bound ({h['shops']} shops of "
            f"{h['items_per_shop'][0]}..{h['items_per_shop'][1]} items = {h['requests_needed']:,} "
            f"requests; in-flight limit {h['in_flight_limit']}, latency "
            f"{h['latency_ms'][0]}–{h['latency_ms'][1]} ms; lower bound "
            f"{h['lower_bound_s']:.2f} s)\n"
        )
        parts.append(
            "| contender | wall s | × bound | requests sent | 503 refusals | items lost |"
            "\n|---|---:|---:|---:|---:|---:|"
        )
        for name in h["contenders"]:
            if not h["contenders"][name]["median"]:
                continue
            parts.append(
                f"| {name} | {_f(_med(h, name, 'wall_s'), 2)} "
                f"| {_f(_med(h, name, 'ratio_to_bound'), 3)} "
                f"| {_f(_med(h, name, 'requests'))} | {_f(_med(h, name, 'refused_503'))} "
                f"| {_f(_med(h, name, 'items_lost'))} |"
            )
    if "memory" in s:
        parts.append(
            "\n### d. Memory (library harvest streaming pages to JSON Lines, "
            f"concurrency {s['memory']['concurrency']})\n"
        )
        parts.append(
            "| shops | items | peak RSS MB | RSS before harvest MB |\n|---:|---:|---:|---:|"
        )
        for r in s["memory"]["rows"]:
            parts.append(
                f"| {r['shops']} | {r['items']:,} | {r['peak_rss_mb']:.1f} "
                f"| {r['rss_before_harvest_mb']:.1f} |"
            )
    if s.get("decode"):
        d = s["decode"]
        parts.append(
            f"\n### e. Decoding one page ({d['items_per_page']} items, {d['body_bytes']:,} bytes)\n"
        )
        parts.append("| decoder | µs/page | × tmapi-async |\n|---|---:|---:|")
        for name, us in d["us_per_page"].items():
            parts.append(f"| {name} | {us:.1f} | {d['ratio_to_tmapi_async'][name]:.2f} |")
    checks = targets(results)
    if checks:
        parts.append("\n### Targets\n\n| target | figure | met |\n|---|---|---|")
        for c in checks:
            met = "–" if c["met"] is None else ("yes" if c["met"] else "**no**")
            parts.append(f"| {c['target']} | {c['figure']} | {met} |")
    return "\n".join(parts) + "\n"


def _runs(block: dict[str, Any]) -> int:
    return min((c["runs"] for c in block["contenders"].values()), default=0)


def plots(results: dict[str, Any], out: Path) -> list[Path]:
    """Write ``bench-*.png`` into ``out``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = results["scenarios"]
    stamp = f"{results['machine']['date']}, {results['machine']['cpus']} CPUs"
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        path = out / f"bench-{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    if "throughput" in s:
        t = s["throughput"]
        names = list(t["contenders"])
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        ax1.barh(names, [_med(t, n, "req_per_s") for n in names], color="#4c72b0")
        ax1.set_xlabel("requests/s (median)")
        ax1.set_title("Throughput ceiling")
        ax2.barh(names, [_med(t, n, "cpu_us_per_req") for n in names], color="#dd8452")
        ax2.set_xlabel("client CPU µs per request (median)")
        ax2.set_yticks([])
        fig.suptitle(stamp, fontsize=8)
        save(fig, "throughput")
        p = t.get("process")
        if p:
            names = list(p["contenders"])
            fig, ax = plt.subplots(figsize=(8, 3.2))
            ax.barh(names, [_med(p, n, "wall_s") for n in names], color="#55a868", label="wall s")
            ax.barh(
                names,
                [_med(p, n, "cpu_s") for n in names],
                color="#c44e52",
                alpha=0.5,
                label="CPU s",
            )
            ax.set_xlabel(f"seconds, whole process ({p['expected_requests']:,} requests → JSONL)")
            ax.legend()
            ax.set_title(f"Whole harvest process ({stamp})", fontsize=9)
            save(fig, "process")
    if "rate" in s:
        rows = s["rate"]["rows"]
        fig, ax = plt.subplots(figsize=(6, 4.5))
        x = [r["target"] for r in rows]
        ax.loglog(x, x, "k--", label="target")
        ax.loglog(x, [r["achieved"] for r in rows], "o-", label="achieved (server log)")
        ax.loglog(x, [r["peak_1s"] for r in rows], "s:", label="peak 1-s window")
        ax.loglog(
            x, [r["throttle_only_achieved"] for r in rows], "^-.", alpha=0.7, label="throttle alone"
        )
        ax.set_xlabel("target requests/s")
        ax.set_ylabel("requests/s")
        ax.legend()
        ax.set_title(f"Rate fidelity ({stamp})", fontsize=9)
        save(fig, "rate")
    if "harvest" in s:
        h = s["harvest"]
        names = [n for n in h["contenders"] if h["contenders"][n]["median"]]
        fig, ax = plt.subplots(figsize=(8, 3.2))
        ax.barh(names, [_med(h, n, "wall_s") for n in names], color="#8172b3")
        ax.axvline(h["lower_bound_s"], color="k", linestyle="--", label="lower bound")
        ax.set_xscale("log")
        ax.set_xlabel("wall seconds (log)")
        ax.legend()
        ax.set_title(f"Harvest vs lower bound ({stamp})", fontsize=9)
        save(fig, "harvest")
    if "memory" in s and s["memory"]["rows"]:
        m = s["memory"]
        fig, ax = plt.subplots(figsize=(6, 4))
        samples = m["samples_largest"]
        if samples:
            ax.plot(
                [a for a, _ in samples], [b for _, b in samples], label="RSS during largest run"
            )
        ax.plot(
            [r["items"] for r in m["rows"]],
            [r["peak_rss_mb"] for r in m["rows"]],
            "o-",
            label="peak RSS per run",
        )
        ax.set_xlabel("items harvested")
        ax.set_ylabel("MB")
        ax.set_ylim(bottom=0)
        ax.legend()
        ax.set_title(f"Memory, streaming to JSON Lines ({stamp})", fontsize=9)
        save(fig, "memory")
    if s.get("decode"):
        d = s["decode"]
        names = list(d["us_per_page"])
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.barh(names, [d["us_per_page"][n] for n in names], color="#937860")
        ax.set_xlabel(f"µs per page of {d['items_per_page']} items")
        ax.set_title(f"Decoding ({stamp})", fontsize=9)
        save(fig, "decode")
    return written
