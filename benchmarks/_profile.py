"""Where a contender's CPU goes, per request: py-spy samples read back by module.

``profile_contenders`` runs each contender's child under ``py-spy record`` (sampling,
no change to the code under test, native event loop and C frames seen as their Python
callers) and writes a speedscope profile per run, ``profile-NAME-K.speedscope.json``
(open it at https://www.speedscope.app: flame graph, left-heavy and sandwich views).
Then it reads the samples back: each sample of the timed run is charged to the module
of the innermost Python frame, and a module's share of the samples times the child's
own CPU time per request gives the microseconds per request spent there. Summed
over the modules they give the CPU per request the benchmark measures.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks._common import Simulator, run_child

RATE = 1000  # samples per second: enough for a run of half a second, light on 2 cores
RUNS = 3  # profiled runs per contender, summed: one run is too few samples


def add_profile_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--profile [RUNS]``: then profile ``what`` with py-spy (``args.profile`` runs
    each, 0 for no profile)."""
    parser.add_argument(
        "--profile",
        type=int,
        nargs="?",
        const=RUNS,
        default=0,
        metavar="RUNS",
        help=f"then profile {what} with py-spy (RUNS runs each, default {RUNS})",
    )


def have_py_spy() -> bool:
    """True when the ``py-spy`` command is on PATH (``pip install py-spy``)."""
    return shutil.which("py-spy") is not None


def where(file: str, function: str) -> str:
    """The group a frame's CPU is charged to: its module, by what it does."""
    path = file.replace("\\", "/")
    if "/tmapi_async/" in path:
        return "tmapi_async." + path.rsplit("/tmapi_async/", 1)[1].removesuffix(".py").replace(
            "/", "."
        )
    if "/benchmarks/" in path:
        return "the contender's own loop"
    for package in ("aiohttp", "yarl", "multidict", "msgspec", "aiolimiter"):
        if f"/{package}/" in path or path.startswith(f"{package}/"):
            return package
    if "/asyncio/" in path or path.startswith("asyncio/"):
        if path.endswith("selector_events.py"):
            return "asyncio sockets (selector_events)"
        return "asyncio loop and tasks"
    if path.endswith(("selectors.py", "socket.py")):
        return "asyncio sockets (selector_events)"
    if "importlib" in path or "<frozen" in path:
        return "imports"
    return "other"


@dataclass
class Profile:
    """Samples of one contender's timed runs, by group, and its CPU per request."""

    samples: Counter[str] = field(default_factory=Counter)
    functions: Counter[str] = field(default_factory=Counter)
    cpu_us: list[float] = field(default_factory=list)  # CPU µs per request, per run

    @property
    def total(self) -> int:
        return sum(self.samples.values())

    def us_per_request(self, count: int) -> float:
        """Microseconds per request for ``count`` samples of this profile."""
        if not self.total or not self.cpu_us:
            return 0.0
        return count / self.total * sum(self.cpu_us) / len(self.cpu_us)

    def add(self, path: Path) -> None:
        """Add the samples of a py-spy speedscope file: those inside the event loop
        (the timed run), each charged to its innermost frame's group."""
        data = json.loads(path.read_text(encoding="utf-8"))
        frames = data["shared"]["frames"]
        for profile in data["profiles"]:
            for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
                names = [frames[i]["name"] for i in stack]
                if "BaseEventLoop.run_until_complete" not in names or not stack:
                    continue
                leaf = frames[stack[-1]]
                count = max(1, round(weight * RATE))
                self.samples[where(leaf.get("file", ""), leaf["name"])] += count
                self.functions[f"{leaf['name']} ({Path(leaf.get('file', '')).name})"] += count


def profile_contenders(
    base: Sequence[str], names: Sequence[str], out: Path, *, runs: int = RUNS
) -> dict[str, Profile]:
    """Run each contender ``runs`` times under py-spy (``base`` + name is its child's
    command line); return their profiles. Speedscope files go to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    profiles: dict[str, Profile] = {}
    for name in names:
        profile = profiles[name] = Profile()
        for k in range(1, runs + 1):
            path = out / f"profile-{name}-{k}.speedscope.json"
            spy = ["py-spy", "record", "--nonblocking", "-r", str(RATE), "-f", "speedscope"]
            run = run_child([*spy, "-o", str(path), "--", *base, name])
            if not run.report or not path.exists():
                continue
            profile.cpu_us.append(1e6 * run.report["cpu"] / run.report["requests"])
            profile.add(path)
    return profiles


def table(profiles: dict[str, Profile], *, top: int = 12) -> str:
    """CPU µs per request by group (rows) and contender (columns), then each
    contender's busiest functions."""
    names = list(profiles)
    groups: Counter[str] = Counter()
    for profile in profiles.values():
        for group, count in profile.samples.items():
            groups[group] += round(profile.us_per_request(count) * 1000)
    lines = [
        "| where (innermost frame) | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for group, _ in groups.most_common():
        cells = [f"{p.us_per_request(p.samples[group]):.1f}" for p in profiles.values()]
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    totals = [f"**{p.us_per_request(p.total):.0f}**" for p in profiles.values()]
    lines.append("| **CPU µs per request** | " + " | ".join(totals) + " |")
    samples = [f"{p.total:,}" for p in profiles.values()]
    lines.append("| samples | " + " | ".join(samples) + " |")
    for name, profile in profiles.items():
        lines.append(f"\n{name}: busiest functions (self µs per request)")
        for function, count in profile.functions.most_common(top):
            lines.append(f"  {profile.us_per_request(count):6.1f}  {function}")
    return "\n".join(lines)


def profile_throughput(shops: int, out: Path, *, runs: int = RUNS) -> str:
    """Profile the throughput race's contenders on ``shops`` shops of the throughput
    workload; return the table (or why there is none)."""
    from benchmarks._scenarios import CONCURRENCY, ITEMS, WORKERS

    if not have_py_spy():
        return "--profile needs py-spy: pip install -e '.[bench]'"
    span = f"{ITEMS[0]}..{ITEMS[1]}"
    with Simulator("--shops", str(shops), "--items-per-shop", span, "--log-max", "1000") as sim:
        base = [*WORKERS, "--url", sim.url, "--shops", str(shops)]
        base += ["--concurrency", str(CONCURRENCY)]
        run_child([*base, "bare"])  # warm the simulator's catalogues
        names = ("bare", "lib-page", "lib-harvest", "lib-shop")
        profiles = profile_contenders(base, names, out, runs=runs)
    return (
        f"\nwhere the CPU goes (asyncio, µs per request, {shops} shops):\n\n"
        f"{table(profiles)}\n\nspeedscope files: {out}/ (open at https://www.speedscope.app)"
    )
