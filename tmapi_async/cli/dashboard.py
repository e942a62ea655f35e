"""``tmapi-async dashboard``: a read-only status page of a Redis of harvests, with its
JSON (``/api/status``) and Prometheus metrics (``/metrics``)."""

from __future__ import annotations

import argparse
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from ._exit import ExitCode
from ._logs import add_log_format
from ._metrics_http import LOOPBACK, _port
from ._output import UsageError, err, secrets

if TYPE_CHECKING:
    from .._redis.observe import RedisView

__all__ = ["add_parser", "run"]

PASSWORD_ENV = "TMAPI_DASHBOARD_PASSWORD"
SAMPLE_EVERY = 10.0  #: seconds between two points of the chart
CHART_POINTS = 360  #: the last hour

EPILOG = f"""\
Serves a page that reloads itself (no JavaScript): every harvest of the Redis with its
progress, rate, ETA, backlog and dead letters; every worker with its heartbeat, the
shops it holds and the requests it sent; each token's limits and adaptive limit, by its
fingerprint; and a chart of the pages answered per second over the last hour (since the
dashboard started). The same data as JSON at /api/status, and Prometheus metrics at
/metrics (with the metrics extra). It only reads Redis.

It listens on {LOOPBACK} unless --bind says otherwise; on any other address it requires a
password (HTTP basic auth, any user name): --password, or better ${PASSWORD_ENV} (a flag
shows in the process list). Without one it refuses to start (exit 2).

examples:
  tmapi-async dashboard --redis redis://127.0.0.1:6379/0        # http://127.0.0.1:8080/
  {PASSWORD_ENV}=s3cret tmapi-async dashboard --bind 0.0.0.0 --port 8080
"""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``dashboard`` to the subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "dashboard",
        help="a live status page of a Redis of harvests (scale out)",
        description="Serve a read-only status page of the harvests, workers and tokens of a Redis.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--redis", metavar="URL", help="the Redis (default: $TMAPI_REDIS_URL)")
    parser.add_argument(
        "--port", type=_port, default=8080, metavar="PORT", help="default %(default)s; 0: any"
    )
    parser.add_argument(
        "--bind",
        default=LOOPBACK,
        metavar="ADDRESS",
        help="the address to listen on (default %(default)s: this machine only)",
    )
    parser.add_argument(
        "--password",
        metavar="PASSWORD",
        help=f"require it (HTTP basic auth); needed beyond loopback (default: ${PASSWORD_ENV})",
    )
    add_log_format(parser)
    return parser


def _loopback(address: str) -> bool:
    import ipaddress

    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def run(args: argparse.Namespace) -> int:
    """The ``dashboard`` command; returns the exit code."""
    from .._redis.connection import redis_url_from_env

    url = redis_url_from_env(args.redis)
    if url is None:
        raise UsageError("no Redis: pass --redis URL or set TMAPI_REDIS_URL")
    password = args.password or os.environ.get(PASSWORD_ENV) or None
    secrets.add(password)
    if not _loopback(args.bind) and password is None:
        raise UsageError(
            f"--bind {args.bind} reaches beyond this machine: give a password "
            f"(${PASSWORD_ENV} or --password), or bind {LOOPBACK}"
        )
    if args.log_format == "json":
        from ._logs import use_json

        use_json()
    import asyncio  # here, not at the top: --help does not need it

    return asyncio.run(_serve(url, args.bind, args.port, password))


class Board:
    """What the page shows, read from Redis, with the samples its rates come from."""

    def __init__(self, conn: Any, url: str) -> None:
        from .._redis.connection import redact_url

        self._conn = conn
        self._url = redact_url(url)
        self.chart: deque[float] = deque(maxlen=CHART_POINTS)
        self._last_total: tuple[float, int] | None = None
        self._seen: dict[str, deque[tuple[float, int, int]]] = {}  # per harvest

    async def _view(self) -> RedisView | None:
        from .._redis.observe import read_view

        try:
            return await read_view(self._conn.client)
        except Exception as error:
            if not self._conn.is_redis_error(error):
                raise
            return None

    async def sample(self) -> None:
        """One point of the chart: pages answered per second since the last point."""
        view = await self._view()
        if view is None:
            return
        now = time.monotonic()
        total = sum(h.counts.pages for h in view.harvests)
        if self._last_total is not None:
            then, before = self._last_total
            self.chart.append(max(0, total - before) / max(now - then, 1e-6))
        self._last_total = (now, total)
        self._rates(view, now)

    def _rates(self, view: RedisView, now: float) -> dict[str, tuple[float, float | None]]:
        """Each harvest's pages/s and ETA (seconds) over the last minute or so."""
        rates = {}
        for h in view.harvests:
            seen = self._seen.setdefault(h.hid, deque(maxlen=12))
            seen.append((now, h.counts.pages, h.counts.done))
            while len(seen) > 2 and now - seen[0][0] > 60:
                seen.popleft()
            then, pages, done = seen[0]
            span = now - then
            pages_s = (h.counts.pages - pages) / span if span > 0.5 else 0.0
            shops_s = (h.counts.done - done) / span if span > 0.5 else 0.0
            left = max(0, h.counts.submitted - h.counts.done)
            eta = left / shops_s if shops_s > 0 else (0.0 if not left else None)
            rates[h.hid] = (pages_s, eta)
        return rates

    async def snapshot(self) -> dict[str, Any]:
        """The data of the page and of ``/api/status``."""
        import datetime

        from .._redis.observe import read_tokens

        view = await self._view()
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        snapshot: dict[str, Any] = {
            "time": stamp.replace("+00:00", "Z"),
            "redis": self._url,
            "redis_up": view is not None,
            "harvests": [],
            "workers": [],
            "tokens": [],
            "chart": {"interval_s": SAMPLE_EVERY, "pages_per_s": list(self.chart)},
        }
        if view is None:
            return snapshot
        rates = self._rates(view, time.monotonic())
        snapshot["harvests"] = [_harvest(h, *rates[h.hid]) for h in view.harvests]
        snapshot["workers"] = [
            {
                "id": worker_id,
                "heartbeat_age_s": view.now - beat,
                "alive": _alive(view.now, beat),
                "shops_held": int(about.get("shops", 0)),
                "shops_done": int(about.get("done", 0)),
                "requests_sent": int(about.get("sent", 0)),
            }
            for worker_id, (beat, about) in sorted(view.workers.items())
        ]
        try:
            tokens = await read_tokens(self._conn.client)
        except Exception as error:
            if not self._conn.is_redis_error(error):
                raise
            tokens = []
        snapshot["tokens"] = [
            {
                "fingerprint": t.fingerprint[:8],  # short, as summaries and metrics name it
                "rate": t.rate,
                "burst": t.burst,
                "concurrency": t.concurrency,
                "limit": t.limit,
                "in_flight": t.in_flight,
                "stopped": t.stopped,
            }
            for t in tokens
        ]
        return snapshot


def _alive(now: int, beat: int) -> bool:
    from .._redis.worker import alive

    return alive(now, beat)


def _harvest(h: Any, pages_s: float, eta: float | None) -> dict[str, Any]:
    c = h.counts
    bound = h.meta.get("max_backlog", "")
    return {
        "id": h.hid,
        "state": h.state,
        "output": h.output,
        "submitted": c.submitted,
        "done": c.done,
        "complete": c.complete,
        "partial": c.partial,
        "failed": c.failed,
        "queued": c.queued,
        "in_progress": c.in_progress,
        "pages": c.pages,
        "items": c.items,
        "backlog": h.backlog,
        "max_backlog": int(bound) if bound.isdigit() else 0,
        "dead_letters": h.dead,
        "pages_per_s": round(pages_s, 2),
        "eta_s": None if eta is None else round(eta, 1),
    }


async def _serve(url: str, bind: str, port: int, password: str | None) -> int:
    import contextlib

    from .._errors import FatalError
    from .._redis.connection import open_connection

    try:
        conn = await open_connection(url)
    except FatalError as error:
        err(f"tmapi-async dashboard: {error}")
        return ExitCode.FATAL
    board = Board(conn, url)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(conn.aclose)
        metrics = await _metrics(url, stack)
        from ._dashboard_http import serve_board

        await serve_board(board, metrics, bind, port, password, SAMPLE_EVERY)
    return ExitCode.OK


async def _metrics(url: str, stack: Any) -> Any:
    """The Redis metrics for ``/metrics``, or None without the metrics extra."""
    try:
        from .._metrics import Metrics

        metrics = Metrics()
    except ImportError:
        return None
    from ._metrics_http import watch_redis

    await watch_redis(metrics, url, stack)
    return metrics
