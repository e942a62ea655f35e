"""The aiohttp transport against a local server: answers, resets, timeouts, refusals.

Also how the public ``Client`` takes its token and base URL from arguments and the
environment. Every server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest

import tmapi_async as tm

if TYPE_CHECKING:
    from conftest import Server  # the local failing server, a fixture there
from tmapi_async._protocol import REDACTED, redact
from tmapi_async._transport import AiohttpTransport as Transport

DATA = Path(__file__).parent / "data"
TOKEN = "SECRET-tok/en+="
MARK = "SECRET-tok"  # in every encoding of TOKEN: plain, %-quoted, quote_plus
QUERY = "shop_url=https%3A%2F%2Fxldjjg.1688.com%2F&page_size=20&sort=default&page=1"
TIMEOUT = 0.2  # seconds: the hang tests wait this long for real, nothing else


async def no_sleep(_seconds: float) -> None:
    """A retry sleep that does not wait."""


async def collect(items: AsyncIterator[object]) -> list[object]:
    """Every item an async iterator yields."""
    return [item async for item in items]


@pytest.fixture
async def transport_for() -> AsyncIterator[object]:
    """A factory of open transports for a base URL, closed after the test."""
    opened: list[Transport] = []

    async def make(base_url: str) -> Transport:
        transport = Transport(base_url=base_url, token=TOKEN, timeout=TIMEOUT, connections=4)
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
    transport = await transport_for(server.url("hang"))  # type: ignore[operator]
    with pytest.raises(tm.TransportError, match=r"0\.2") as info:
        await transport.get(QUERY)
    assert type(info.value) is tm.TransportError
    assert_no_token(info.value)


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"url=...?apiToken={TOKEN}&x=1", "url=...?apiToken=***&x=1"),
        ("url=...?apiToken=SECRET-tok%2Fen%2B%3D&x=1", "url=...?apiToken=***&x=1"),
        (f"{TOKEN} and {TOKEN}", "*** and ***"),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    """redact replaces the plain and the %-quoted token, every time it occurs."""
    assert redact(text, TOKEN) == expected


def test_redact_without_secret_changes_nothing() -> None:
    """An empty secret leaves the text alone (and does not replace every gap)."""
    assert redact("abc", "") == "abc"


# -- Client: token and base URL --------------------------------------------------------


def client_for(base_url: str | None, token: str | None = TOKEN) -> tm.Client:
    """A fast Client: high rate, short timeout, two attempts with no backoff wait."""
    return tm.Client(
        token,
        base_url=base_url,
        rate=1000,
        concurrency=4,
        timeout=TIMEOUT,
        retry=tm.RetryPolicy(attempts=2, sleep=no_sleep),
    )


async def test_client_sends_token_from_argument(server: Server) -> None:
    """The token argument reaches the server intact (its + / = survive encoding)."""
    async with client_for(server.url("ok")) as client:
        page = await client.get_shop_items("https://xldjjg.1688.com/", page=2, page_size=3)
    assert len(page.items) == 3
    assert server.queries == [
        {
            "apiToken": TOKEN,
            "shop_url": "https://xldjjg.1688.com/",
            "page_size": "3",
            "sort": "default",
            "page": "2",
        }
    ]


@pytest.mark.parametrize("token", [None, "", "   "])
def test_client_without_token_refuses(monkeypatch: pytest.MonkeyPatch, token: str | None) -> None:
    """No token argument and no TMAPI_TOKEN is an AuthenticationError at construction."""
    monkeypatch.delenv("TMAPI_TOKEN", raising=False)
    with pytest.raises(tm.AuthenticationError, match="TMAPI_TOKEN"):
        tm.Client(token)


def test_client_with_blank_env_token_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    """A blank TMAPI_TOKEN counts as no token."""
    monkeypatch.setenv("TMAPI_TOKEN", "  ")
    with pytest.raises(tm.AuthenticationError):
        tm.Client()


async def test_client_takes_token_from_env(monkeypatch: pytest.MonkeyPatch, server: Server) -> None:
    """Without a token argument, TMAPI_TOKEN is sent."""
    monkeypatch.setenv("TMAPI_TOKEN", TOKEN)
    async with client_for(server.url("ok"), token=None) as client:
        await client.get_shop_items("https://xldjjg.1688.com/")
    assert [q["apiToken"] for q in server.queries] == [TOKEN]


async def test_client_token_argument_beats_env(
    monkeypatch: pytest.MonkeyPatch, server: Server
) -> None:
    """A token argument is used even when TMAPI_TOKEN is set."""
    monkeypatch.setenv("TMAPI_TOKEN", "ENV-token")
    async with client_for(server.url("ok"), token="ARG-token") as client:
        await client.get_shop_items("https://xldjjg.1688.com/")
    assert [q["apiToken"] for q in server.queries] == ["ARG-token"]


async def test_client_takes_base_url_from_env(
    monkeypatch: pytest.MonkeyPatch, server: Server
) -> None:
    """Without a base_url argument, TMAPI_BASE_URL is where requests go."""
    monkeypatch.setenv("TMAPI_BASE_URL", server.url("ok") + "/")
    async with client_for(None) as client:
        assert client.base_url == server.url("ok")
        page = await client.get_shop_items("https://xldjjg.1688.com/")
    assert page.total_count == 162
    assert server.paths == ["/ok/1688/shop/items/v2"]


async def test_client_base_url_argument_beats_env(
    monkeypatch: pytest.MonkeyPatch, server: Server
) -> None:
    """A base_url argument is used even when TMAPI_BASE_URL is set."""
    monkeypatch.setenv("TMAPI_BASE_URL", "http://127.0.0.1:9/nowhere")
    async with client_for(server.url("ok")) as client:
        await client.get_shop_items("https://xldjjg.1688.com/")
    assert server.paths == ["/ok/1688/shop/items/v2"]


def test_client_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without argument or TMAPI_BASE_URL, the base URL is https://api.tmapi.io."""
    monkeypatch.delenv("TMAPI_BASE_URL", raising=False)
    assert tm.Client(TOKEN).base_url == "https://api.tmapi.io"


BAD_BASE_URLS = [
    "ftp://api.tmapi.io",
    "api.tmapi.io",
    "https://",
    "https://api.tmapi.io/?apiToken=x",
    "not a url",
    "javascript:alert(1)",
]


@pytest.mark.parametrize("base_url", BAD_BASE_URLS)
def test_client_bad_base_url(base_url: str) -> None:
    """A base_url that is not an http(s) URL without query is refused, naming it."""
    with pytest.raises(tm.InvalidParameterError) as info:
        tm.Client(TOKEN, base_url=base_url)
    assert base_url in str(info.value)
    assert MARK not in str(info.value)


@pytest.mark.parametrize("base_url", BAD_BASE_URLS)
def test_client_bad_base_url_from_env(monkeypatch: pytest.MonkeyPatch, base_url: str) -> None:
    """A bad TMAPI_BASE_URL is refused like a bad argument."""
    monkeypatch.setenv("TMAPI_BASE_URL", base_url)
    with pytest.raises(tm.InvalidParameterError):
        tm.Client(TOKEN)


# -- Client: retries and fatal errors over the wire ------------------------------------


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("status/500", tm.UpstreamError),
        ("status/503", tm.UpstreamError),
        ("status/417", tm.UpstreamError),
        ("garbage", tm.DecodeError),
        ("reset", tm.TransportError),
        ("hang", tm.TransportError),
    ],
)
async def test_client_retries_transient_then_raises(
    server: Server, mode: str, error: type[tm.TmapiError]
) -> None:
    """A transient failure is sent `attempts` times, then its error is raised."""
    async with client_for(server.url(mode)) as client:
        with pytest.raises(tm.TmapiError) as info:
            await client.get_shop_items("https://xldjjg.1688.com/")
        assert type(info.value) is error
        assert client.requests == 2
        assert client.retries == 1
    assert len(server.queries) == client.requests  # every billed send is counted


@pytest.mark.parametrize(
    ("code", "error"),
    [(401, tm.AuthenticationError), (403, tm.AuthenticationError), (439, tm.BalanceError)],
)
async def test_client_fatal_error_stops_sending(
    server: Server, code: int, error: type[tm.TmapiError]
) -> None:
    """An auth or balance error is not retried, and later calls fail without a send."""
    async with client_for(server.url(f"status/{code}")) as client:
        with pytest.raises(error):
            await client.get_shop_items("https://xldjjg.1688.com/")
        with pytest.raises(error):
            await client.get_shop_items("https://other.1688.com/")
    assert len(server.queries) == 1


FATAL = [(401, tm.AuthenticationError), (439, tm.BalanceError)]


@pytest.mark.parametrize(("code", "error"), FATAL)
async def test_fetch_shop_raises_fatal_error(
    server: Server, code: int, error: type[tm.TmapiError]
) -> None:
    """fetch_shop raises an auth or balance error rather than reporting a failed shop."""
    async with client_for(server.url(f"status/{code}")) as client:
        with pytest.raises(error):
            await client.fetch_shop("https://xldjjg.1688.com/")
    assert len(server.queries) == 1


@pytest.mark.parametrize(("code", "error"), FATAL)
async def test_fetch_shop_after_fatal_error_raises_it(
    server: Server, code: int, error: type[tm.TmapiError]
) -> None:
    """After a fatal error, fetch_shop raises that error without sending."""
    async with client_for(server.url(f"status/{code}")) as client:
        with pytest.raises(error):
            await client.get_shop_items("https://xldjjg.1688.com/")
        with pytest.raises(error):
            await client.fetch_shop("https://other.1688.com/")
    assert len(server.queries) == 1


@pytest.mark.parametrize(("code", "error"), FATAL)
async def test_iter_shop_items_after_fatal_error_raises_it(
    server: Server, code: int, error: type[tm.TmapiError]
) -> None:
    """After a fatal error, iter_shop_items raises that error instead of ending empty."""
    async with client_for(server.url(f"status/{code}")) as client:
        with pytest.raises(error):
            await client.get_shop_items("https://xldjjg.1688.com/")
        with pytest.raises(error):
            await collect(client.iter_shop_items("https://other.1688.com/"))
    assert len(server.queries) == 1


async def test_client_parameter_error_is_not_retried(server: Server) -> None:
    """A 422 is raised after one send, and the client stays usable."""
    async with client_for(server.url("status/422")) as client:
        with pytest.raises(tm.InvalidParameterError):
            await client.get_shop_items("https://xldjjg.1688.com/")
        with pytest.raises(tm.InvalidParameterError):
            await client.get_shop_items("https://xldjjg.1688.com/")
    assert len(server.queries) == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shop_url": "https://1688.com.evil.com/"},
        {"shop_url": "https://a.1688.com/", "page": 0},
        {"shop_url": "https://a.1688.com/", "page_size": 0},
        {"shop_url": "https://a.1688.com/", "sort": "newest"},
        {"shop_url": "https://a.1688.com/", "cat_type": "2"},
    ],
)
async def test_client_validation_sends_nothing(server: Server, kwargs: dict[str, object]) -> None:
    """A bad argument raises InvalidParameterError and nothing reaches the server."""
    async with client_for(server.url("ok")) as client:
        with pytest.raises(tm.InvalidParameterError):
            await client.get_shop_items(**kwargs)  # type: ignore[arg-type]
        assert client.requests == 0
    assert server.queries == []
