"""Plumbing shared by the benchmark scenarios: simulator processes, child runs, statistics.

Every contender runs in a child process of its own so that its CPU time can be read
without the orchestrator's or the simulator's; the simulator runs in another process.
A child prints one JSON object on its last stdout line: its own figures.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PYTHON = sys.executable
TOKEN = "bench-token"
ROOT = Path(__file__).resolve().parent.parent


def machine_info() -> dict[str, Any]:
    """What the figures were measured on, and when."""
    import aiohttp
    import msgspec

    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "aiohttp": aiohttp.__version__,
        "msgspec": msgspec.__version__,
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        info["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    for name in ("uvloop", "scrapy", "pydantic"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "?")
        except ImportError:
            info[name] = None
    return info


def have(module: str) -> bool:
    """True when ``module`` can be imported."""
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


def child_env() -> dict[str, str]:
    """The environment of a child: this repository importable, no stray proxy."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        env.pop(key, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


@dataclass
class ChildRun:
    """A finished child process: wall and CPU time of the whole process, its report."""

    wall: float
    cpu: float
    report: dict[str, Any] = field(default_factory=dict)
    returncode: int = 0
    stderr: str = ""


def run_child(cmd: Sequence[str], *, timeout: float = 600.0) -> ChildRun:
    """Run ``cmd`` to its end; measure its whole-process wall time and CPU time.

    CPU comes from ``getrusage(RUSAGE_CHILDREN)`` around the wait: the simulator, the
    only other child, is still running then and is not counted.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        cwd=ROOT,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report: dict[str, Any] = {}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if lines:
        with contextlib.suppress(json.JSONDecodeError):
            report = json.loads(lines[-1])
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-5:]
        print(f"  ! {' '.join(cmd[:4])}... exited {proc.returncode}: {tail}", file=sys.stderr)
    return ChildRun(wall, cpu, report, proc.returncode, proc.stderr[-4000:])


def self_cpu() -> float:
    """User + system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Peak resident set size of this process, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(report: dict[str, Any]) -> None:
    """Print a child's report as the last stdout line."""
    print(json.dumps(report), flush=True)


class Simulator:
    """A simulator in a separate process: the CLI (``python -m tmapi_async.testing``) or,
    with ``logged=True``, :mod:`benchmarks._logsim`, which answers questions about its
    request log on stdin.
    """

    def __init__(self, *args: str, logged: bool = False) -> None:
        module = "benchmarks._logsim" if logged else "tmapi_async.testing"
        self.cmd = [PYTHON, "-m", module, "--port", "0", *args]
        self.logged = logged
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> Simulator:
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://"):
            self.__exit__(None, None, None)
            raise RuntimeError(f"simulator did not start ({self.cmd}): {line!r}")
        self.url = line
        return self

    def ask(self, command: str) -> dict[str, Any]:
        """Send a command to a logged simulator; return its JSON answer."""
        assert self.logged
        assert self.proc is not None
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def shop_urls(n: int) -> list[str]:
    """The simulator's ``--shops n`` shop URLs."""
    return [f"https://shop{i}.1688.com/" for i in range(1, n + 1)]


def expected_items(n: int, low: int, high: int) -> int:
    """Items of shops 1..n when the simulator runs with ``--items-per-shop low..high``."""
    from tmapi_async.testing import sizes_between

    size = sizes_between(low, high)
    return sum(size(f"shop{i}") for i in range(1, n + 1))


def expected_pages(n: int, low: int, high: int, page_size: int = 20) -> int:
    """Requests a perfect harvest of shops 1..n needs (an empty shop still costs page 1)."""
    from tmapi_async.testing import sizes_between

    size = sizes_between(low, high)
    return sum(max(1, -(-size(f"shop{i}") // page_size)) for i in range(1, n + 1))


@contextlib.contextmanager
def shops_file(n: int) -> Iterator[Path]:
    """A temporary file with the URLs of shops 1..n, one a line."""
    with tempfile.TemporaryDirectory(prefix="tmapi-bench-") as tmp:
        path = Path(tmp) / "shops.txt"
        path.write_text("".join(f"{u}\n" for u in shop_urls(n)), encoding="utf-8")
        yield path


def uvloop_runner() -> Any:
    """``asyncio.Runner`` factory argument for uvloop."""
    import uvloop

    return uvloop.new_event_loop
