"""Shared test fixtures: the simulator's, Redis's, a virtual-time event loop, a failing
server."""

from __future__ import annotations

import asyncio
import selectors
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

# The simulator's fixtures (tmapi_sim, tmapi_sim_factory, tmapi_token) for every test,
# and the Redis tests' server (redis_server, redis_url), started only if a test asks.
pytest_plugins = ["tmapi_async.testing.pytest_plugin", "redisserver"]

T = TypeVar("T")


class _InstantSelector(selectors.DefaultSelector):
    """A selector that, instead of blocking, moves the loop's clock to the next timer."""

    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events:
            return events
        if timeout is None:
            raise RuntimeError("deadlock: every task waits and no timer is set")
        # Time moves a microsecond even on a zero timeout, as real time would: code
        # that waits for a float to leak past a threshold must not spin forever.
        self._loop.now += max(timeout, 1e-6)
        return events


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer: sleeps cost no real time."""

    def __init__(self) -> None:
        self.now = 1000.0
        super().__init__(selector=_InstantSelector(self))

    def time(self) -> float:
        return self.now


@pytest.fixture
def run_virtual() -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run a coroutine to completion on a fresh virtual-clock loop."""

    def run(coro: Coroutine[Any, Any, T]) -> T:
        loop = VirtualClockLoop()
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.close()

    return run


# -- a local server that fails on purpose (127.0.0.1 only) ---------------------------

DATA = Path(__file__).parent / "data"


class Server:
    """A local aiohttp server; the first path segment of the base URL picks its behaviour.

    ``/ok``: the documented example; ``/status/N``: the sample error body with status N;
    ``/echo/N``: status N with a message quoting the request, token and all, whichever
    way it came (a gateway that echoes); ``/garbage``: 200 with a body that is not JSON;
    ``/reset``: the connection is aborted; ``/hang``: never answers (waits on an event
    no test sets).
    """

    def __init__(self) -> None:
        self.queries: list[dict[str, str]] = []
        self.apikeys: list[str | None] = []  # the apikey header of each request
        self.paths: list[str] = []
        self.never = asyncio.Event()
        self.port = 0

    @property
    def hits(self) -> int:
        """Requests received so far."""
        return len(self.queries)

    def url(self, mode: str) -> str:
        """The base URL that makes the server behave as ``mode``."""
        return f"http://127.0.0.1:{self.port}/{mode}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Record the request and answer as the path says."""
        self.queries.append(dict(request.query))
        self.apikeys.append(request.headers.get("apikey"))
        self.paths.append(request.path)
        mode = request.match_info["mode"]
        if mode == "ok":
            return web.Response(
                body=(DATA / "shop_items_example.json").read_bytes(),
                content_type="application/json",
                headers={"X-Test": "yes"},
            )
        if mode.startswith("status/"):
            code = int(mode.removeprefix("status/"))
            return web.Response(
                status=code,
                body=(DATA / f"error_{code}.json").read_bytes(),
                content_type="application/json",
            )
        if mode.startswith("echo/"):
            code = int(mode.removeprefix("echo/"))
            key = request.headers.get("apikey") or request.query["apiToken"]
            msg = f"Token {key} refused for {request.path_qs} (apikey: {key})"
            return web.json_response({"code": code, "msg": msg, "data": None}, status=code)
        if mode == "garbage":
            return web.Response(body=b"<html>Bad Gateway</html>", content_type="text/html")
        if mode == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        assert mode == "hang"
        await self.never.wait()
        return web.Response()  # pragma: no cover


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """A running local :class:`Server`."""
    srv = Server()
    app = web.Application()
    app.router.add_get(
        r"/{mode:ok|garbage|reset|hang|status/\d+|echo/\d+}/1688/shop/items/v2", srv.handle
    )
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    srv.port = runner.addresses[0][1]
    yield srv
    await runner.cleanup()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A base URL on a port that is bound but not listening: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
async def not_http_url() -> AsyncIterator[str]:
    """A base URL whose server answers bytes that are not HTTP (aiohttp quotes the URL)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"garbage, not http\r\n\r\n")
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    srv.close()
    await srv.wait_closed()
