"""``--metrics-port PORT``: the ``/metrics`` of a long-running command, served by aiohttp
in the command's own event loop (so that a scrape may read Redis before it answers)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._output import UsageError

if TYPE_CHECKING:
    from .._metrics import Metrics

__all__ = ["MetricsOptions", "add_metrics_options", "metrics_option", "serve_metrics"]

LOOPBACK = "127.0.0.1"


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {port}")
    return port


def add_metrics_options(parser: argparse.ArgumentParser) -> None:
    """``--metrics-port PORT`` and ``--metrics-bind ADDRESS``."""
    group = parser.add_argument_group("monitoring")
    group.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="serve Prometheus metrics at http://ADDRESS:PORT/metrics while running "
        "(0: any free port, printed at start; needs pip install 'tmapi-async[metrics]')",
    )
    group.add_argument(
        "--metrics-bind",
        default=LOOPBACK,
        metavar="ADDRESS",
        help="the address /metrics listens on (default %(default)s: this machine only)",
    )


@dataclass(frozen=True, slots=True)
class MetricsOptions:
    """Where ``/metrics`` is served."""

    port: int
    bind: str = LOOPBACK

    def metrics(self) -> Metrics:
        """A new :class:`~tmapi_async.Metrics`, on a registry of its own."""
        from .._metrics import Metrics

        return Metrics()


def metrics_option(args: argparse.Namespace) -> MetricsOptions | None:
    """``--metrics-port`` as given, or None.

    Raises:
        UsageError: it is given and prometheus_client is not installed.
    """
    port: int | None = getattr(args, "metrics_port", None)
    if port is None:
        return None
    try:
        import prometheus_client  # noqa: F401  (only whether it is there)
    except ImportError:
        from .._metrics import MISSING

        raise UsageError(f"--metrics-port: {MISSING}") from None
    return MetricsOptions(port, args.metrics_bind)


async def watch_redis(metrics: Metrics, url: str, stack: contextlib.AsyncExitStack) -> None:
    """Add each harvest's queue, backlog and dead letters, and the workers alive, read
    from the Redis at ``url`` when scraped (``tmapi_redis_up`` 0 while it is away)."""
    from .._redis.connection import open_connection
    from .._redis.observe import RedisView, read_view, redis_gauges

    conn = await open_connection(url)
    stack.push_async_callback(conn.aclose)
    latest: list[RedisView | None] = [None]

    async def refresh() -> None:
        try:
            latest[0] = await read_view(conn.client)
        except Exception as error:
            if not conn.is_redis_error(error):
                raise
            latest[0] = None

    metrics.add_refresher(refresh)
    for name, doc, labels, samples in redis_gauges(lambda: latest[0]):
        metrics.add_gauges(name, doc, labels, samples)
    metrics.add_gauges(
        "tmapi_redis_up", "1 when the last scrape could read Redis.", (),
        lambda: [((), float(latest[0] is not None))],
    )  # fmt: skip


@contextlib.asynccontextmanager
async def serve_metrics(
    metrics: Metrics,
    options: MetricsOptions,
    tell: Callable[[str], None],
    *,
    redis_url: str | None = None,
) -> AsyncIterator[int]:
    """Serve ``metrics`` at ``/metrics`` while inside; yields the port listened on.
    With ``redis_url``, a scrape also reads the harvests and workers of that Redis.

    Raises:
        UsageError: the address cannot be listened on.
    """
    async with contextlib.AsyncExitStack() as stack:
        if redis_url is not None:
            await watch_redis(metrics, redis_url, stack)
        async with _serve(metrics, options, tell) as port:
            yield port


@contextlib.asynccontextmanager
async def _serve(
    metrics: Metrics, options: MetricsOptions, tell: Callable[[str], None]
) -> AsyncIterator[int]:
    from aiohttp import web

    async def scrape(_request: web.Request) -> web.Response:
        await metrics.refresh()
        return web.Response(
            body=metrics.exposition(), headers={"Content-Type": metrics.content_type}
        )

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, options.bind, options.port)
        try:
            await site.start()
        except OSError as exc:
            raise UsageError(
                f"--metrics-port: cannot listen on {options.bind}:{options.port}: {exc}"
            ) from None
        port = _bound_port(site, options.port)
        host = f"[{options.bind}]" if ":" in options.bind else options.bind
        tell(f"metrics: http://{host}:{port}/metrics")
        yield port
    finally:
        await runner.cleanup()


def _bound_port(site: Any, asked: int) -> int:
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or ()
    for sock in sockets:
        return int(sock.getsockname()[1])
    return asked
