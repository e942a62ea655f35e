"""The token never shows: not in errors, reprs, formatted tracebacks or log records.

The public ``Client`` runs against local servers (127.0.0.1 only) that fail in every
way: error statuses, garbage, reset connections, silence, refusal, non-HTTP bytes.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

import tmapi_async as tm

if TYPE_CHECKING:
    from conftest import Server  # the local failing server, a fixture there

TOKEN = "SECRET-tok/en+="
# Every spelling of TOKEN a URL or message could carry: plain, %-quoted (any safe
# set), quote_plus, and the bare distinctive prefix shared by all of them.
FORMS = ("SECRET-tok", "tok/en+=", "tok%2Fen", "en%2B%3D", "en+%3D")
SHOP = "https://xldjjg.1688.com/"
TIMEOUT = 0.2  # seconds: the hang cases wait this long for real, nothing else
SERVER_LOGGERS = ("aiohttp.access", "aiohttp.server", "aiohttp.web")  # the test server's own


async def no_sleep(_seconds: float) -> None:
    """A retry sleep that does not wait."""


async def collect(items: AsyncIterator[object]) -> list[object]:
    """Every item an async iterator yields."""
    return [item async for item in items]


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


def client_for(base_url: str) -> tm.Client:
    """A fast Client: high rate, short timeout, two attempts with no backoff wait."""
    return tm.Client(
        TOKEN,
        base_url=base_url,
        rate=1000,
        concurrency=4,
        timeout=TIMEOUT,
        retry=tm.RetryPolicy(attempts=2, sleep=no_sleep),
    )


def assert_clean(text: str) -> None:
    """``text`` holds no spelling of the token."""
    for form in FORMS:
        assert form not in text


def rendered(error: BaseException) -> str:
    """All a user can see of an error: str and repr of it and its chain, and its traceback."""
    text = "".join(traceback.format_exception(error))
    seen: BaseException | None = error
    while seen is not None:
        text += f"\n{seen}\n{seen!r}\n{getattr(seen, 'message', '')}"
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return text


def assert_logs_clean(logs: pytest.LogCaptureFixture) -> None:
    """No captured log record (message, arguments or traceback) names the token."""
    formatter = logging.Formatter()
    for record in logs.records:
        if record.name.startswith(SERVER_LOGGERS):
            continue
        assert_clean(formatter.format(record))
        assert_clean(repr(record.args))


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
) -> None:
    """get_shop_items raises the expected error, and nothing about it shows the token."""
    url = base_url_for(mode, server, refused_url, not_http_url)
    async with client_for(url) as client:
        with pytest.raises(tm.TmapiError) as info:
            await client.get_shop_items(SHOP)
        assert_clean(repr(client))
    assert type(info.value) is error
    assert_clean(rendered(info.value))
    assert_logs_clean(logs)


@pytest.mark.parametrize(("mode", "error"), [m for m in MODES if not issubclass(m[1], FATAL)])
async def test_fetch_shop_failures_hide_token(
    server: Server,
    refused_url: str,
    not_http_url: str,
    logs: pytest.LogCaptureFixture,
    mode: str,
    error: type[tm.TmapiError],
) -> None:
    """fetch_shop reports a failed shop whose error and repr do not show the token."""
    url = base_url_for(mode, server, refused_url, not_http_url)
    async with client_for(url) as client:
        result = await client.fetch_shop(SHOP)
    assert result.status == "failed"
    assert type(result.error) is error
    assert result.error is not None
    assert_clean(repr(result))
    assert_clean(str(result))
    assert_clean(rendered(result.error))
    assert_logs_clean(logs)


@pytest.mark.parametrize(
    ("mode", "error"),
    [("status/401", tm.AuthenticationError), ("status/439", tm.BalanceError)],
)
async def test_fetch_shop_fatal_errors_hide_token(
    server: Server, logs: pytest.LogCaptureFixture, mode: str, error: type[tm.TmapiError]
) -> None:
    """fetch_shop raises auth and balance errors, and they do not show the token."""
    async with client_for(server.url(mode)) as client:
        with pytest.raises(error) as info:
            await client.fetch_shop(SHOP)
    assert_clean(rendered(info.value))
    assert_logs_clean(logs)


@pytest.mark.parametrize(
    ("mode", "error"),
    [("status/500", tm.UpstreamError), ("reset", tm.TransportError), ("hang", tm.TransportError)],
)
async def test_iter_shop_items_errors_hide_token(
    server: Server, logs: pytest.LogCaptureFixture, mode: str, error: type[tm.TmapiError]
) -> None:
    """iter_shop_items raises the shop's error, and it does not show the token."""
    async with client_for(server.url(mode)) as client:
        with pytest.raises(error) as info:
            await collect(client.iter_shop_items(SHOP))
    assert_clean(rendered(info.value))
    assert_logs_clean(logs)


@pytest.mark.parametrize("code", [401, 422, 500])
async def test_token_echoed_by_server_is_redacted(
    server: Server, logs: pytest.LogCaptureFixture, code: int
) -> None:
    """An error message that quotes the request back reaches the user without the token."""
    async with client_for(server.url(f"echo/{code}")) as client:
        with pytest.raises(tm.TmapiError) as info:
            await client.get_shop_items(SHOP)
    assert info.value.code == code
    assert "refused for" in info.value.message  # the API's msg is kept...
    assert_clean(rendered(info.value))  # ...without the token in it
    assert_logs_clean(logs)


def test_client_repr_has_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """repr(client) names base URL and limits but not the token, however it was given."""
    monkeypatch.delenv("TMAPI_BASE_URL", raising=False)
    client = tm.Client(TOKEN)
    assert "https://api.tmapi.io" in repr(client)
    assert_clean(repr(client))
    assert_clean(str(client))
    monkeypatch.setenv("TMAPI_TOKEN", TOKEN)
    assert_clean(repr(tm.Client()))


def test_missing_token_error_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without token or TMAPI_TOKEN, Client() raises AuthenticationError saying so."""
    monkeypatch.delenv("TMAPI_TOKEN", raising=False)
    with pytest.raises(tm.AuthenticationError) as info:
        tm.Client()
    assert "TMAPI_TOKEN" in str(info.value)
    assert isinstance(info.value, tm.FatalError)


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": 0}, {"timeout": -1}, {"rate": 0}, {"concurrency": 0}, {"base_url": "ftp://x"}],
)
def test_construction_errors_hide_token(kwargs: dict[str, object]) -> None:
    """An InvalidParameterError at construction does not show the token."""
    with pytest.raises(tm.InvalidParameterError) as info:
        tm.Client(TOKEN, **kwargs)  # type: ignore[arg-type]
    assert_clean(rendered(info.value))
