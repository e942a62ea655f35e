"""The aiohttp transport: answers, resets, timeouts, refusals against a local server
(127.0.0.1 only); failures no real server produces on demand -- a body cut short, a
disconnect mid-answer -- through aioresponses. None may show the token.
"""

from __future__ import annotations

import asyncio
import re
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses

import tmapi_async as tm

if TYPE_CHECKING:
    from conftest import Server  # the local failing server, a fixture there
from tmapi_async import _transport
from tmapi_async._protocol import ENDPOINT_PATH
from tmapi_async._secret import REDACTED
from tmapi_async._transport import AiohttpTransport as Transport

DATA = Path(__file__).parent / "data"
TOKEN = "SECRET-tok/en+="
MARK = "SECRET-tok"  # in every encoding of TOKEN: plain, %-quoted, quote_plus
QUERY = "shop_url=https%3A%2F%2Fxldjjg.1688.com%2F&page_size=20&sort=default&page=1"
GENEROUS = 60.0  # seconds: answers expected to arrive (CI is two busy cores)
HANG = 0.2  # seconds: the hang test waits this long for real, nothing else


@pytest.fixture
async def transport_for() -> AsyncIterator[object]:
    """A factory of open transports for a base URL, closed after the test."""
    opened: list[Transport] = []

    async def make(base_url: str, seconds: float = GENEROUS) -> Transport:
        transport = Transport(base_url=base_url, token=TOKEN, timeout=seconds, connections=4)
        await transport.open()
        opened.append(transport)
        return transport

    yield make
    for transport in opened:
        await transport.close()


def assert_no_token(error: BaseException) -> None:
    """Neither the error nor anything traceback would print with it names the token."""
    rendered = "".join(traceback.format_exception(error))
    seen: BaseException | None = error
    while seen is not None:
        rendered += str(seen) + repr(seen)
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    assert MARK not in rendered
    assert "en+=" not in rendered
    assert "en%2B%3D" not in rendered


# -- answers ---------------------------------------------------------------------------


async def test_get_returns_status_headers_body(server: Server, transport_for: object) -> None:
    """A 200 answer comes back as (status, headers, body) untouched."""
    transport = await transport_for(server.url("ok"))  # type: ignore[operator]
    status, headers, body = await transport.get(QUERY)
    assert status == 200
    assert headers["X-Test"] == "yes"
    assert headers["content-type"].startswith("application/json")  # case-insensitive
    assert body == (DATA / "shop_items_example.json").read_bytes()


@pytest.mark.parametrize("code", [401, 422, 439, 500, 503])
async def test_get_returns_error_statuses(server: Server, transport_for: object, code: int) -> None:
    """Error statuses are returned, not raised: deciphering them is the protocol's job."""
    transport = await transport_for(server.url(f"status/{code}"))  # type: ignore[operator]
    status, _headers, body = await transport.get(QUERY)
    assert status == code
    assert body == (DATA / f"error_{code}.json").read_bytes()


async def test_get_sends_token_and_query(server: Server, transport_for: object) -> None:
    """The request reaches the endpoint path with the token and query decoded intact."""
    transport = await transport_for(server.url("ok") + "/")  # type: ignore[operator]
    await transport.get(QUERY)
    assert server.paths == ["/ok/1688/shop/items/v2"]
    assert server.queries == [
        {
            "apiToken": TOKEN,
            "shop_url": "https://xldjjg.1688.com/",
            "page_size": "20",
            "sort": "default",
            "page": "1",
        }
    ]


async def test_get_many_concurrently(server: Server, transport_for: object) -> None:
    """Concurrent gets on one transport all complete."""
    transport = await transport_for(server.url("ok"))  # type: ignore[operator]
    answers = await asyncio.gather(*(transport.get(QUERY) for _ in range(20)))
    assert [status for status, _, _ in answers] == [200] * 20
    assert len(server.queries) == 20


# -- failures --------------------------------------------------------------------------


async def test_reset_raises_transport_error(server: Server, transport_for: object) -> None:
    """A connection the server aborts raises TransportError, free of the token."""
    transport = await transport_for(server.url("reset"))  # type: ignore[operator]
    with pytest.raises(tm.TransportError) as info:
        await transport.get(QUERY)
    assert type(info.value) is tm.TransportError
    assert isinstance(info.value, tm.TransientError)
    assert_no_token(info.value)


async def test_reset_is_sent_once(server: Server, transport_for: object) -> None:
    """One get is one request: nothing below the client resends it (each send is billed)."""
    transport = await transport_for(server.url("reset"))  # type: ignore[operator]
    with pytest.raises(tm.TransportError):
        await transport.get(QUERY)
    assert len(server.queries) == 1


async def test_timeout_raises_transport_error(server: Server, transport_for: object) -> None:
    """A server that never answers raises TransportError once the timeout passes."""
    transport = await transport_for(server.url("hang"), HANG)  # type: ignore[operator]
    with pytest.raises(tm.TransportError, match=r"0\.2") as info:
        await transport.get(QUERY)
    assert type(info.value) is tm.TransportError
    assert_no_token(info.value)


async def test_every_request_past_its_deadline_times_out_and_the_task_goes_on(
    server: Server, transport_for: object
) -> None:
    """Requests that share one deadline timer each time out on their own; a timed-out
    task is not left cancelling, so it can send again (a retry)."""
    transport = await transport_for(server.url("hang"), HANG)  # type: ignore[operator]

    async def ask() -> tuple[BaseException, int]:
        with pytest.raises(tm.TransportError) as info:
            await transport.get(QUERY)
        task = asyncio.current_task()
        assert task is not None
        return info.value, task.cancelling()

    outcomes = await asyncio.wait_for(asyncio.gather(*(ask() for _ in range(4))), GENEROUS)
    assert [cancelling for _, cancelling in outcomes] == [0, 0, 0, 0]
    assert all("0.2" in str(error) for error, _ in outcomes)
    again, cancelling = await asyncio.wait_for(ask(), GENEROUS)  # the same task sends again
    assert cancelling == 0
    assert isinstance(again, tm.TransportError)


class _Held(asyncio.Event):
    """The hanging server's event, which also tells when a request is held on it."""

    def __init__(self) -> None:
        super().__init__()
        self.reached = asyncio.Event()

    async def wait(self) -> Literal[True]:
        self.reached.set()
        return await super().wait()


async def test_a_cancel_from_outside_stays_a_cancel(server: Server, transport_for: object) -> None:
    """Cancelling a task waiting on an answer cancels it: the transport's deadline
    does not turn someone else's cancel into a timeout."""
    transport = await transport_for(server.url("hang"))  # type: ignore[operator]
    server.never = held = _Held()
    task = asyncio.ensure_future(transport.get(QUERY))
    await asyncio.wait_for(held.reached.wait(), GENEROUS)  # the server holds the request
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, GENEROUS)


async def test_refused_raises_transport_error(refused_url: str, transport_for: object) -> None:
    """A refused connection raises TransportError, free of the token."""
    transport = await transport_for(refused_url)  # type: ignore[operator]
    with pytest.raises(tm.TransportError) as info:
        await transport.get(QUERY)
    assert type(info.value) is tm.TransportError
    assert_no_token(info.value)


async def test_not_http_raises_transport_error(not_http_url: str, transport_for: object) -> None:
    """An answer that is not HTTP raises TransportError; aiohttp's URL-quoting text is scrubbed."""
    transport = await transport_for(not_http_url)  # type: ignore[operator]
    with pytest.raises(tm.TransportError) as info:
        await transport.get(QUERY)
    assert type(info.value) is tm.TransportError
    assert REDACTED in str(info.value)  # aiohttp's message quoted the URL: it was redacted
    assert_no_token(info.value)


async def test_refused_error_is_chained_to_aiohttp_cause(
    refused_url: str, transport_for: object
) -> None:
    """When its text holds no token, the aiohttp error is kept as __cause__ (raise ... from)."""
    transport = await transport_for(refused_url)  # type: ignore[operator]
    with pytest.raises(tm.TransportError) as info:
        await transport.get(QUERY)
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectionError)


async def test_get_before_open_refuses() -> None:
    """A transport that was never opened refuses to send."""
    transport = Transport(base_url="http://127.0.0.1:9", token=TOKEN, timeout=1, connections=1)
    with pytest.raises(RuntimeError, match="not open"):
        await transport.get(QUERY)


async def test_get_after_close_refuses(server: Server) -> None:
    """A closed transport refuses to send, and closing twice is harmless."""
    transport = Transport(base_url=server.url("ok"), token=TOKEN, timeout=1, connections=1)
    await transport.open()
    await transport.close()
    await transport.close()
    with pytest.raises(RuntimeError, match="not open"):
        await transport.get(QUERY)
    assert server.queries == []


def test_transport_repr_has_no_token() -> None:
    """A transport's repr shows the base URL and not the token."""
    transport = Transport(base_url="https://api.tmapi.io/", token=TOKEN, timeout=1, connections=1)
    assert repr(transport) == "AiohttpTransport(base_url='https://api.tmapi.io')"
    assert MARK not in repr(transport)


# -- failures a real server cannot produce on demand (aioresponses) --------------------


@pytest.mark.parametrize(
    ("failure", "says"),
    [
        (aiohttp.ClientPayloadError("Response payload is not completed"), "ClientPayloadError"),
        (aiohttp.ServerDisconnectedError(), "ServerDisconnectedError"),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), "ClientOSError"),
    ],
    ids=["body-cut-short", "disconnect-mid-answer", "reset-mid-answer"],
)
async def test_a_broken_answer_is_a_transport_error(
    failure: aiohttp.ClientError, says: str
) -> None:
    """An answer broken in aiohttp becomes a TransportError (transient: the client
    retries it) naming what broke, without the token."""
    transport = Transport(base_url="http://api.test", token=TOKEN, timeout=GENEROUS, connections=1)
    await transport.open()
    try:
        with aioresponses() as mocked:
            mocked.get(re.compile(r"^http://api\.test/"), exception=failure)
            with pytest.raises(tm.TransportError, match=says) as info:
                await transport.get(QUERY)
    finally:
        await transport.close()
    assert type(info.value) is tm.TransportError
    assert isinstance(info.value, tm.TransientError)
    assert_no_token(info.value)


async def test_a_body_cut_short_is_retried_by_the_client() -> None:
    """Through the client: the cut answer is retried, then raised as a TransportError."""
    retry = tm.RetryPolicy(attempts=3, initial_wait=0)
    with aioresponses() as mocked:
        failure = aiohttp.ClientPayloadError("Response payload is not completed")
        mocked.get(re.compile(r"^http://api\.test/"), exception=failure, repeat=True)
        async with tm.Client(TOKEN, base_url="http://api.test", rate=1000, retry=retry) as client:
            with pytest.raises(tm.TransportError, match="ClientPayloadError") as info:
                await client.get_shop_items("https://xldjjg.1688.com/")
            assert (client.requests, client.retries) == (3, 2)
    assert_no_token(info.value)


@pytest.fixture
async def sized_server() -> AsyncIterator[str]:
    """Answers of 5,000 bytes, with a Content-Length or chunked; ``/small``: 100, chunked."""

    async def handle(request: web.Request) -> web.StreamResponse:
        size = 100 if request.match_info["mode"] == "small" else 5000
        if request.match_info["mode"] == "length":
            return web.Response(body=b"x" * size)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(size // 100):
            await response.write(b"x" * 100)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/{mode}" + ENDPOINT_PATH, handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize("mode", ["length", "chunked"])
async def test_an_answer_past_the_size_bound_is_refused(
    sized_server: str, transport_for: object, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body larger than the bound is a DecodeError, whether announced or streamed."""
    monkeypatch.setattr(_transport, "MAX_ANSWER_BYTES", 1000)
    transport = await transport_for(f"{sized_server}/{mode}")  # type: ignore[operator]
    with pytest.raises(tm.DecodeError, match="no page is that large"):
        await transport.get(QUERY)


async def test_a_chunked_answer_within_the_bound_is_read_whole(
    sized_server: str, transport_for: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunked answers under the bound arrive complete."""
    monkeypatch.setattr(_transport, "MAX_ANSWER_BYTES", 1000)
    transport = await transport_for(f"{sized_server}/small")  # type: ignore[operator]
    status, _, body = await transport.get(QUERY)
    assert (status, body) == (200, b"x" * 100)
