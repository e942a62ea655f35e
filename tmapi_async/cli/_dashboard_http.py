"""The dashboard's server (aiohttp): ``/``, ``/api/status`` and ``/metrics``, behind HTTP
basic auth when a password is given; and the sampler that draws the chart."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from typing import TYPE_CHECKING, Any

from ._output import UsageError, err

if TYPE_CHECKING:
    from .dashboard import Board

__all__ = ["authorised", "serve_board"]


def authorised(header: str, password: str) -> bool:
    """Whether an ``Authorization`` header gives ``password`` (basic auth, any user)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    _user, _, given = decoded.partition(":")
    return hmac.compare_digest(given.encode(), password.encode())


async def serve_board(
    board: Board, metrics: Any, bind: str, port: int, password: str | None, every: float
) -> None:
    """Serve until cancelled (Ctrl-C, SIGTERM).

    Raises:
        UsageError: the address cannot be listened on.
    """
    import signal

    import msgspec
    from aiohttp import web

    from ._page import render

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if password is not None and not authorised(
            request.headers.get("Authorization", ""), password
        ):
            return web.Response(
                status=401,
                text="a password is required\n",
                headers={"WWW-Authenticate": 'Basic realm="tmapi-async", charset="UTF-8"'},
            )
        response: web.StreamResponse = await handler(request)
        return response

    async def page(_request: web.Request) -> web.Response:
        html = render(await board.snapshot())
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    async def status(_request: web.Request) -> web.Response:
        body = msgspec.json.encode(await board.snapshot())
        return web.Response(body=body, content_type="application/json")

    async def scrape(_request: web.Request) -> web.Response:
        if metrics is None:
            return web.Response(
                status=501, text="metrics need: pip install 'tmapi-async[metrics]'\n"
            )
        await metrics.refresh()
        return web.Response(
            body=metrics.exposition(), headers={"Content-Type": metrics.content_type}
        )

    app = web.Application(middlewares=[guard])
    app.router.add_get("/", page)
    app.router.add_get("/api/status", status)
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, bind, port)
        try:
            await site.start()
        except OSError as exc:
            raise UsageError(f"cannot listen on {bind}:{port}: {exc}") from None
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or ()
        bound = int(sockets[0].getsockname()[1]) if sockets else port
        host = f"[{bind}]" if ":" in bind else bind
        err(f"dashboard: http://{host}:{bound}/")
        sampler = asyncio.create_task(_sample(board, every))
        try:
            await stop.wait()
        finally:
            sampler.cancel()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await runner.cleanup()


async def _sample(board: Board, every: float) -> None:
    while True:
        await board.sample()
        await asyncio.sleep(every)
