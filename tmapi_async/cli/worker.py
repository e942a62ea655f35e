"""``tmapi-async worker``: serve every harvest submitted to a Redis, until stopped."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any

from ._exit import ExitCode
from ._logs import add_log_format
from ._metrics_http import add_metrics_options, metrics_option, serve_metrics
from ._options import (
    add_auth_option,
    add_output_level,
    auth_option,
    positive_float,
    positive_int,
)
from ._output import UsageError, err, fatal_message, secrets
from ._scale_out import add_redis_outage
from ._signals import Stop, install_signals

__all__ = ["PARENT_ENV", "add_parser", "run"]

#: Set to ``stdin`` by ``harvest --workers N`` for the workers it starts: they stop
#: when their stdin closes (the harvest is gone).
PARENT_ENV = "TMAPI_WORKER_PARENT"

EPILOG = """\
A worker takes shops from every open harvest submitted to the Redis (by `tmapi-async
harvest SHOPS --output PATH --redis URL`), one shop at a time per free task, and commits
each page there. It holds its shops by a heartbeat: if it dies, other workers take them
over within seconds and go on at the first page not committed. The token's limits (rate,
burst, in flight) are shared through Redis by every process that uses the token.

At each heartbeat it reads each harvest's state: a paused one (`tmapi-async pause`), or
one whose results wait to be exported beyond its `harvest --max-backlog`, gets no new
request until it may go on; a cancelled or forgotten one is dropped. Workers silent for
10 minutes are pruned from the workers list.

SIGTERM or Ctrl-C: nothing new is sent, requests already sent finish and are committed,
the shops still held are handed back; the worker exits 0 within 10 s.

If Redis goes away (restarted, unreachable), the worker sends nothing new and waits for it
up to --redis-outage seconds, then goes on; past that it exits 3 (its shops are taken over).

examples:
  export TMAPI_TOKEN=... TMAPI_REDIS_URL=redis://:password@10.0.0.5:6379/0
  tmapi-async worker
  tmapi-async worker --redis redis://127.0.0.1:6379/0 --concurrency 4 -v
"""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``worker`` to the subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "worker",
        help="serve the harvests submitted to a Redis (scale out)",
        description="Serve every harvest submitted to a Redis until SIGTERM or Ctrl-C.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="the Redis (default: $TMAPI_REDIS_URL; prefer the variable when the URL "
        "holds a password: a flag shows in the process list)",
    )
    parser.add_argument(
        "--token",
        action="append",
        metavar="TOKEN",
        help="TMAPI apiToken; repeat it for several tokens (default: $TMAPI_TOKEN, which "
        "may hold several separated by commas; prefer the variable)",
    )
    add_auth_option(parser)
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="API base URL (default: $TMAPI_BASE_URL or https://api.tmapi.io)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        metavar="C",
        help="most requests of this worker in flight, per token (default: the token's limit, "
        "which every process shares)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=60.0,
        metavar="SECONDS",
        help="timeout of one request (default %(default)s)",
    )
    add_redis_outage(parser)
    add_metrics_options(parser)
    add_output_level(parser)
    add_log_format(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """The ``worker`` command; returns the exit code."""
    import asyncio  # here, not at the top: --help does not need it

    token = ",".join(args.token) if args.token else os.environ.get("TMAPI_TOKEN")
    secrets.add(token)
    if not token or not token.strip():
        raise UsageError("no API token: set TMAPI_TOKEN (or pass --token)")
    from .._redis.connection import redis_url_from_env

    url = redis_url_from_env(args.redis)
    if url is None:
        raise UsageError("no Redis: pass --redis URL or set TMAPI_REDIS_URL")
    args.auth = auth_option(args)
    args.metrics = metrics_option(args)
    if args.log_format == "json":
        from ._logs import use_json

        use_json()
    return asyncio.run(_serve(args, token.strip(), url))


async def _stop_when_orphaned(stop: Callable[[], None]) -> None:
    """A worker started by ``harvest --workers N`` stops (politely) when that harvest
    process is gone, even killed with -9: it must not serve on unseen. The harvest holds
    the write end of the worker's stdin; the kernel closes it when the harvest dies."""
    import asyncio  # here, not at the top: --help does not need it

    if os.environ.get(PARENT_ENV) != "stdin":
        return
    gone = asyncio.Event()

    class _Watch(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            gone.set()

    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_read_pipe(_Watch, sys.stdin)
    try:
        await gone.wait()
    finally:
        transport.close()
    err("the harvest that started this worker is gone: stopping")
    stop()


async def _serve(args: argparse.Namespace, token: str, url: str) -> int:
    import asyncio  # here, not at the top: --help does not need it

    from .._errors import FatalError, InvalidParameterError
    from .._redis.connection import open_connection, redact_url
    from .._redis.worker import OwnershipGate, RedisWorker
    from ._tokens import stop_message, token_lines, worker_client

    json_logs = args.log_format == "json"

    def tell(line: str) -> None:
        shop_line = line.startswith(("complete ", "partial ", "failed "))
        if json_logs and shop_line:
            return  # said by shop_finished
        if args.verbose or (not args.quiet and not line.startswith(("complete ", "partial "))):
            err(line)

    def shop_finished(hid: str, result: Any) -> None:
        import logging

        from ._logs import event

        event(
            "shop_finished",
            level=logging.INFO if result.status == "complete" else logging.WARNING,
            harvest_id=hid,
            shop=result.shop_url,
            status=result.status,
            items=result.item_count,
            pages=result.pages,
            requests=result.requests,
            error=None if result.error is None else str(result.error),
        )

    try:
        conn = await open_connection(url, redis_outage=args.redis_outage)
    except FatalError as error:
        err(f"tmapi-async worker: {error}")
        return ExitCode.FATAL
    conn.outage.listeners.append(tell)  # waiting for Redis, and when it is back
    gate = OwnershipGate()
    metrics = None if args.metrics is None else args.metrics.metrics()
    try:
        client = worker_client(
            token,
            url,
            cap=args.concurrency,
            gate=gate,
            auth=args.auth,  # each key finds out its own way, in this process
            base_url=args.base_url,
            timeout=args.timeout,
            redis_outage=args.redis_outage,
            metrics=metrics,
        )
    except InvalidParameterError as error:
        await conn.aclose()
        raise UsageError(str(error)) from None
    worker = RedisWorker(
        conn, client, gate=gate, on_event=tell, on_shop=shop_finished if json_logs else None
    )
    if json_logs:
        from ._logs import context

        context(worker_id=worker.worker_id)
    stop = Stop()
    main = asyncio.current_task()

    def first() -> None:
        tell("stopping: no new requests; the ones in flight finish, shops are handed back")
        worker.stop()

    def second() -> None:
        if main is not None:
            main.cancel()

    undo = install_signals(stop, first, second)
    orphaned = asyncio.create_task(_stop_when_orphaned(worker.stop))
    try:
        async with contextlib.AsyncExitStack() as serving:
            if metrics is not None:
                await serving.enter_async_context(
                    serve_metrics(metrics, args.metrics, tell, redis_url=url)
                )
            async with client:
                tell(f"worker {worker.worker_id} serving {redact_url(url)}")
                await worker.run()
    except FatalError as error:
        err(stop_message(client, error, fatal_message(error, None)))
        return ExitCode.FATAL
    except asyncio.CancelledError:
        if not stop.hard:
            raise
        return ExitCode.SIGINT if stop.signal == 2 else ExitCode.SIGTERM
    finally:
        orphaned.cancel()
        undo()
        conn.outage.listeners.remove(tell)
        await conn.aclose()
        for line in token_lines(client):  # several tokens: the requests of each
            tell(line)
    tell(f"worker {worker.worker_id} stopped")
    return ExitCode.OK
