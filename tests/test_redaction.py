"""The token never shows: not in errors, reprs, formatted tracebacks or log records.

The public ``Client`` runs against local servers (127.0.0.1 only) that fail in every
way: error statuses, garbage, reset connections, silence, refusal, non-HTTP bytes.
Every case runs with the key sent as the ``apikey`` header, as the ``apiToken`` query
parameter, and both in turn (``auto``), and with a long key and a 6-character one.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

import tmapi_async as tm
from tmapi_async._secret import Redactor, redact

if TYPE_CHECKING:
    from conftest import Server  # the local failing server, a fixture there

TOKEN = "SECRET-tok/en+="
# Every spelling of TOKEN a URL or message could carry: plain, %-quoted (any safe
# set), quote_plus, and the bare distinctive prefix shared by all of them.
FORMS = ("SECRET-tok", "tok/en+=", "tok%2Fen", "en%2B%3D", "en+%3D")
SHORT = "k3Y9zQ"  # a 6-character key: scrubbed where it stands whole
SHOP = "https://xldjjg.1688.com/"
GENEROUS = 60.0  # seconds: answers expected to arrive (CI is two busy cores)
HANG = 0.2  # seconds: the hang cases wait this long for real, nothing else
SERVER_LOGGERS = ("aiohttp.access", "aiohttp.server", "aiohttp.web")  # the test server's own


async def no_sleep(_seconds: float) -> None:
    """A retry sleep that does not wait."""


async def collect(items: AsyncIterator[object]) -> list[object]:
    """Every item an async iterator yields."""
    return [item async for item in items]


@pytest.fixture(params=["header", "query", "auto"])
def auth(request: pytest.FixtureRequest) -> str:
    """How the key is sent: each scheme alone, and both in turn."""
    return str(request.param)


@pytest.fixture(params=[TOKEN, SHORT], ids=["long-key", "short-key"])
def key(request: pytest.FixtureRequest) -> str:
    """The key: a long one with characters URLs quote, and a 6-character one."""
    return str(request.param)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture every log record of every logger, from DEBUG up."""
    caplog.set_level(logging.DEBUG)
    return caplog


def base_url_for(mode: str, server: Server, refused_url: str, not_http_url: str) -> str:
    """The base URL of one failure mode."""
    if mode == "refused":
        return refused_url
    if mode == "not-http":
        return not_http_url
    return server.url(mode)


def client_for(base_url: str, mode: str = "", token: str = TOKEN, auth: str = "auto") -> tm.Client:
    """A fast Client: high rate, two attempts with no backoff wait; a short timeout
    only where the server is meant to hang."""
    return tm.Client(
        token,
        auth=auth,
        base_url=base_url,
        rate=1000,
        concurrency=4,
        timeout=HANG if mode == "hang" else GENEROUS,
        retry=tm.RetryPolicy(attempts=2, sleep=no_sleep),
    )


def assert_clean(text: str, key: str = TOKEN) -> None:
    """``text`` holds no spelling of the key."""
    for form in FORMS if key == TOKEN else (key,):
        assert form not in text


def rendered(error: BaseException) -> str:
    """All a user can see of an error: str and repr of it and its chain, its traceback,
    and the request (headers included) aiohttp keeps on a response error."""
    text = "".join(traceback.format_exception(error))
    seen: BaseException | None = error
    while seen is not None:
        text += f"\n{seen}\n{seen!r}\n{getattr(seen, 'message', '')}"
        text += repr(getattr(seen, "request_info", ""))
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return text


def assert_logs_clean(logs: pytest.LogCaptureFixture, key: str = TOKEN) -> None:
    """No captured log record (message, arguments or traceback) names the key."""
    formatter = logging.Formatter()
    for record in logs.records:
        if record.name.startswith(SERVER_LOGGERS):
            continue
        assert_clean(formatter.format(record), key)
        assert_clean(repr(record.args), key)


MODES = [
    ("status/401", tm.AuthenticationError),
    ("status/403", tm.AuthenticationError),
    ("status/439", tm.BalanceError),
    ("status/422", tm.InvalidParameterError),
    ("status/500", tm.UpstreamError),
    ("status/503", tm.UpstreamError),
    ("garbage", tm.DecodeError),
    ("reset", tm.TransportError),
    ("hang", tm.TransportError),
    ("refused", tm.TransportError),
    ("not-http", tm.TransportError),
]
FATAL = (tm.FatalError, tm.InvalidParameterError)


@pytest.mark.parametrize(("mode", "error"), MODES)
async def test_get_shop_items_errors_hide_token(
    server: Server,
    refused_url: str,
    not_http_url: str,
    logs: pytest.LogCaptureFixture,
    mode: str,
    error: type[tm.TmapiError],
    auth: str,
    key: str,
) -> None:
    """get_shop_items raises the expected error, and nothing about it shows the token."""
    url = base_url_for(mode, server, refused_url, not_http_url)
    async with client_for(url, mode, key, auth) as client:
        with pytest.raises(tm.TmapiError) as info:
            await client.get_shop_items(SHOP)
        assert_clean(repr(client), key)
    assert type(info.value) is error
    assert_clean(rendered(info.value), key)
    assert_logs_clean(logs, key)


@pytest.mark.parametrize(("mode", "error"), [m for m in MODES if not issubclass(m[1], FATAL)])
async def test_fetch_shop_failures_hide_token(
    server: Server,
    refused_url: str,
    not_http_url: str,
    logs: pytest.LogCaptureFixture,
    mode: str,
    error: type[tm.TmapiError],
    auth: str,
    key: str,
) -> None:
    """fetch_shop reports a failed shop whose error and repr do not show the token."""
    url = base_url_for(mode, server, refused_url, not_http_url)
    async with client_for(url, mode, key, auth) as client:
        result = await client.fetch_shop(SHOP)
    assert result.status == "failed"
    assert type(result.error) is error
    assert result.error is not None
    assert_clean(repr(result), key)
    assert_clean(str(result), key)
    assert_clean(rendered(result.error), key)
    assert_logs_clean(logs, key)


@pytest.mark.parametrize(
    ("mode", "error"),
    [("status/401", tm.AuthenticationError), ("status/439", tm.BalanceError)],
)
async def test_fetch_shop_fatal_errors_hide_token(
    server: Server,
    logs: pytest.LogCaptureFixture,
    mode: str,
    error: type[tm.TmapiError],
    auth: str,
    key: str,
) -> None:
    """fetch_shop raises auth and balance errors, and they do not show the token."""
    async with client_for(server.url(mode), mode, key, auth) as client:
        with pytest.raises(error) as info:
            await client.fetch_shop(SHOP)
    assert_clean(rendered(info.value), key)
    assert_logs_clean(logs, key)


@pytest.mark.parametrize(
    ("mode", "error"),
    [("status/500", tm.UpstreamError), ("reset", tm.TransportError), ("hang", tm.TransportError)],
)
async def test_iter_shop_items_errors_hide_token(
    server: Server,
    logs: pytest.LogCaptureFixture,
    mode: str,
    error: type[tm.TmapiError],
    auth: str,
    key: str,
) -> None:
    """iter_shop_items raises the shop's error, and it does not show the token."""
    async with client_for(server.url(mode), mode, key, auth) as client:
        with pytest.raises(error) as info:
            await collect(client.iter_shop_items(SHOP))
    assert_clean(rendered(info.value), key)
    assert_logs_clean(logs, key)


@pytest.mark.parametrize("code", [401, 422, 500])
async def test_token_echoed_by_server_is_redacted(
    server: Server, logs: pytest.LogCaptureFixture, code: int, auth: str, key: str
) -> None:
    """An error message that quotes the request back (its URL, and the key however it
    came) reaches the user without the key."""
    async with client_for(server.url(f"echo/{code}"), token=key, auth=auth) as client:
        with pytest.raises(tm.TmapiError) as info:
            await client.get_shop_items(SHOP)
    assert info.value.code == code
    assert "refused for" in info.value.message  # the API's msg is kept...
    assert_clean(rendered(info.value), key)  # ...without the key in it
    assert_logs_clean(logs, key)


def test_client_repr_has_no_token(monkeypatch: pytest.MonkeyPatch, auth: str, key: str) -> None:
    """repr(client) names base URL and limits but not the token, however it was given."""
    monkeypatch.delenv("TMAPI_BASE_URL", raising=False)
    client = tm.Client(key, auth=auth)
    assert "https://api.tmapi.io" in repr(client)
    assert_clean(repr(client), key)
    assert_clean(str(client), key)
    monkeypatch.setenv("TMAPI_TOKEN", key)
    assert_clean(repr(tm.Client(auth=auth)), key)


def test_missing_token_error_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without token or TMAPI_TOKEN, Client() raises AuthenticationError saying so."""
    monkeypatch.delenv("TMAPI_TOKEN", raising=False)
    with pytest.raises(tm.AuthenticationError) as info:
        tm.Client()
    assert "TMAPI_TOKEN" in str(info.value)
    assert isinstance(info.value, tm.FatalError)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 0},
        {"timeout": -1},
        {"rate": 0},
        {"concurrency": 0},
        {"base_url": "ftp://x"},
        {"auth": "apikey"},
    ],
)
def test_construction_errors_hide_token(kwargs: dict[str, object], key: str) -> None:
    """An InvalidParameterError at construction does not show the token."""
    with pytest.raises(tm.InvalidParameterError) as info:
        tm.Client(key, **kwargs)  # type: ignore[arg-type]
    assert_clean(rendered(info.value), key)


# -- the one redaction rule -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"url=...?apiToken={TOKEN}&x=1", "url=...?apiToken=***&x=1"),
        ("url=...?apiToken=SECRET-tok%2Fen%2B%3D&x=1", "url=...?apiToken=***&x=1"),
        ("url=...?apitoken=anything-at-all&x=1", "url=...?apitoken=***&x=1"),
        (
            "next=http%3A%2F%2Fa%3FapiToken%3Danything%26page%3D1",
            "next=http%3A%2F%2Fa%3FapiToken%3D***%26page%3D1",
        ),
        (f"{TOKEN} and {TOKEN}", "*** and ***"),
        (f"embedded{TOKEN}too", "embedded***too"),  # long enough to be no word: anywhere
        ("{'apikey': 'anything-at-all', 'Host': 'x'}", "{'apikey': '***', 'Host': 'x'}"),
        ("<CIMultiDictProxy('APIKEY': 'any')>", "<CIMultiDictProxy('APIKEY': '***')>"),
        ("apikey: anything\r\nHost: x", "apikey: ***\r\nHost: x"),
        ("the `apikey` header was refused", "the `apikey` header was refused"),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_redact_scrubs_every_spelling(text: str, expected: str) -> None:
    """The token, plain or %-quoted, and whatever follows apiToken= or an apikey
    header's name become ***."""
    assert Redactor([TOKEN]).scrub(text) == expected
    assert redact(text, TOKEN) == expected


@pytest.mark.parametrize(
    ("token", "text", "expected"),
    [
        ("t", "shops: 5 complete, 0 failed", "shops: 5 complete, 0 failed"),
        ("t", "GET /x?apiToken=t&page=1: t refused", "GET /x?apiToken=***&page=1: *** refused"),
        ("demo", "demonstration of a demo, demo's end", "demonstration of a ***, ***'s end"),
        ("demo", "GET /x?shop=a&apiToken=demo", "GET /x?shop=a&apiToken=***"),
        ("a+b", "token a%2Bb leaked; a+bc kept", "token *** leaked; a+bc kept"),
    ],
)
def test_a_short_token_does_not_mangle_words(token: str, text: str, expected: str) -> None:
    """A short token is scrubbed where it stands whole, never inside another word."""
    assert Redactor([token]).scrub(text) == expected


def test_redactor_ignores_blank_tokens() -> None:
    """No token, or a blank one, changes nothing but an apiToken= value."""
    for tokens in ([], [""], ["  "], [None]):
        assert Redactor(tokens).scrub("a b c") == "a b c"
    assert redact("abc", "") == "abc"


async def test_a_short_token_echoed_by_the_server(server: Server) -> None:
    """With the token "t", an echoed message loses the token and keeps every word."""
    async with client_for(server.url("echo/500"), token="t", auth="query") as client:
        with pytest.raises(tm.UpstreamError) as info:
            await client.get_shop_items(SHOP)
    assert info.value.message.startswith(
        "Token *** refused for /echo/500/1688/shop/items/v2?apiToken=***&shop_url="
    )
    async with client_for(server.url("echo/500"), token="t", auth="header") as client:
        with pytest.raises(tm.UpstreamError) as info:
            await client.get_shop_items(SHOP)
    assert info.value.message.startswith("Token *** refused for /echo/500/1688/shop/items/v2?shop")
    assert info.value.message.endswith("(apikey: ***)")
