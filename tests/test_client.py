"""``Client``: token and base URL, retries, fatal errors, the whole-client pause, stop.

Answers come from a :class:`MockTransport` (no socket) on a virtual-clock loop
wherever time matters, and from the local failing server where the wire itself is
the subject (the token reaching the server, a reset, a hang).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import pytest

import tmapi_async as tm
from tmapi_async import Answer, MockTransport

if TYPE_CHECKING:
    from conftest import Server  # the local failing server, a fixture there

TOKEN = "SECRET-tok/en+="
MARK = "SECRET-tok"  # in every encoding of TOKEN: plain, %-quoted, quote_plus
SHOP = "https://xldjjg.1688.com/"
GENEROUS = 60.0  # seconds: answers expected to arrive (CI is two busy cores)
HANG = 0.2  # seconds: only where no answer is meant to come

RunVirtual = Callable[[Coroutine[Any, Any, Any]], Any]


async def no_sleep(_seconds: float) -> None:
    """A retry sleep that does not wait."""


async def collect(items: AsyncIterator[object]) -> list[object]:
    """Every item an async iterator yields."""
    return [item async for item in items]


async def collect_into(found: list[object], items: AsyncIterator[object]) -> None:
    """Append every item an async iterator yields to ``found``, until it ends or raises."""
    async for item in items:
        found.append(item)


def client_for(base_url: str | None, token: str | None = TOKEN, **kw: Any) -> tm.Client:
    """A fast Client over the wire: two attempts with no backoff wait."""
    options: dict[str, Any] = {
        "rate": 1000,
        "concurrency": 4,
        "timeout": GENEROUS,
        "retry": tm.RetryPolicy(attempts=2, sleep=no_sleep),
    }
    return tm.Client(token, base_url=base_url, **(options | kw))


# -- answers without a socket ------------------------------------------------------------


def asked(query: str) -> tuple[str, int]:
    """The shop name and page a query asks for."""
    fields = parse_qs(query)
    return fields["shop_url"][0].split("//")[1].split(".")[0], int(fields["page"][0])


def page_answer(shop: str, page: int, total: int = 20, size: int = 20) -> Answer:
    """A 200 answer carrying page ``page`` of a shop of ``total`` products."""
    first = (page - 1) * size
    items = [
        {"item_id": f"{shop}-{i}", "title": f"item {i}"}
        for i in range(first, min(total, first + size))
    ]
    data = {"page": page, "page_size": size, "total_count": total, "items": items}
    return 200, {}, json.dumps({"code": 200, "msg": "success", "data": data}).encode()


def error_answer(status: int, headers: Mapping[str, str] | None = None) -> Answer:
    """An error answer with the API's envelope."""
    body = {"code": status, "msg": f"error {status}", "data": None}
    return status, headers or {}, json.dumps(body).encode()


def mock_client(
    handler: Callable[[str], Answer | Awaitable[Answer]], **kw: Any
) -> tuple[tm.Client, MockTransport]:
    """A Client whose answers come from ``handler``."""
    transport = MockTransport(handler)
    options: dict[str, Any] = {"rate": 1000, "concurrency": 4}
    return tm.Client(TOKEN, transport=transport, **(options | kw)), transport


# -- token and base URL ------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["auto", "header", "query"])
@pytest.mark.parametrize(
    ("argument", "env", "sent"),
    [(TOKEN, None, TOKEN), (None, TOKEN, TOKEN), ("ARG-token", "ENV-token", "ARG-token")],
    ids=["argument", "env", "argument-beats-env"],
)
async def test_the_token_reaches_the_server(
    monkeypatch: pytest.MonkeyPatch,
    server: Server,
    argument: str | None,
    env: str | None,
    sent: str,
    auth: str,
) -> None:
    """The token (argument first, else TMAPI_TOKEN) arrives intact, + / = surviving: as
    the apikey header (auth "header", and "auto" first), or as the apiToken query."""
    if env is None:
        monkeypatch.delenv("TMAPI_TOKEN", raising=False)
    else:
        monkeypatch.setenv("TMAPI_TOKEN", env)
    async with client_for(server.url("ok"), token=argument, auth=auth) as client:
        page = await client.get_shop_items(SHOP, page=2, page_size=3)
        assert client.auth == ("query" if auth == "query" else "header")
    assert len(page.items) == 3
    query = {"shop_url": SHOP, "page_size": "3", "sort": "default", "page": "2"}
    if auth == "query":
        assert server.queries == [{"apiToken": sent, **query}]
        assert server.apikeys == [None]
    else:
        assert server.queries == [query]
        assert server.apikeys == [sent]


@pytest.mark.parametrize("token", [None, "", "   "])
@pytest.mark.parametrize("env", [None, "  "])
def test_client_without_token_refuses(
    monkeypatch: pytest.MonkeyPatch, token: str | None, env: str | None
) -> None:
    """No token argument and no (or a blank) TMAPI_TOKEN: AuthenticationError at once."""
    if env is None:
        monkeypatch.delenv("TMAPI_TOKEN", raising=False)
    else:
        monkeypatch.setenv("TMAPI_TOKEN", env)
    with pytest.raises(tm.AuthenticationError, match="TMAPI_TOKEN"):
        tm.Client(token)


@pytest.mark.parametrize("argument", [True, False], ids=["argument-beats-env", "env"])
async def test_base_url_from_argument_then_env(
    monkeypatch: pytest.MonkeyPatch, server: Server, argument: bool
) -> None:
    """Requests go to base_url, else to TMAPI_BASE_URL."""
    if argument:
        monkeypatch.setenv("TMAPI_BASE_URL", "http://127.0.0.1:9/nowhere")
    else:
        monkeypatch.setenv("TMAPI_BASE_URL", server.url("ok") + "/")
    async with client_for(server.url("ok") if argument else None) as client:
        assert client.base_url == server.url("ok")
        page = await client.get_shop_items(SHOP)
    assert page.total_count == 162
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
@pytest.mark.parametrize("via", ["argument", "env"])
def test_client_bad_base_url(monkeypatch: pytest.MonkeyPatch, base_url: str, via: str) -> None:
    """A base_url that is not an http(s) URL without query is refused, naming it."""
    if via == "env":
        monkeypatch.setenv("TMAPI_BASE_URL", base_url)
    with pytest.raises(tm.InvalidParameterError) as info:
        tm.Client(TOKEN, base_url=base_url if via == "argument" else None)
    assert base_url in str(info.value)
    assert MARK not in str(info.value)


def test_repr_names_no_token() -> None:
    """The client's repr shows its settings and never the token."""
    text = repr(tm.Client(TOKEN, rate=5, concurrency=3))
    assert text == "Client(base_url='https://api.tmapi.io', rate=5, burst=1, concurrency=3)"
    assert MARK not in text


# -- retries and fatal errors over the wire ----------------------------------------------


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
    timeout = HANG if mode == "hang" else GENEROUS
    async with client_for(server.url(mode), timeout=timeout) as client:
        with pytest.raises(tm.TmapiError) as info:
            await client.get_shop_items(SHOP)
        assert type(info.value) is error
        assert client.requests == 2
        assert client.retries == 1
    assert len(server.queries) == client.requests  # every billed send is counted


FATAL = [(401, tm.AuthenticationError), (403, tm.AuthenticationError), (439, tm.BalanceError)]


async def _get(client: tm.Client) -> object:
    return await client.get_shop_items("https://other.1688.com/")


async def _fetch_shop(client: tm.Client) -> object:
    return await client.fetch_shop("https://other.1688.com/")


async def _iter_items(client: tm.Client) -> object:
    return await collect(client.iter_shop_items("https://other.1688.com/"))


@pytest.mark.parametrize(("code", "error"), FATAL)
@pytest.mark.parametrize("first", [_get, _fetch_shop], ids=["get", "fetch_shop"])
@pytest.mark.parametrize("then", [_get, _fetch_shop, _iter_items], ids=["get", "shop", "iter"])
async def test_a_fatal_error_stops_the_client(
    server: Server,
    code: int,
    error: type[tm.TmapiError],
    first: Callable[[tm.Client], Awaitable[object]],
    then: Callable[[tm.Client], Awaitable[object]],
) -> None:
    """An auth or balance error is raised (not reported as a failed shop), is not
    retried, and every later call raises it without a send. (With auth "auto" a 401 or
    403 costs two sends: the header, then the query once.)"""
    async with client_for(server.url(f"status/{code}")) as client:
        with pytest.raises(error):
            await first(client)
        with pytest.raises(error):
            await then(client)
        assert client.fatal is not None
    assert len(server.queries) == (2 if error is tm.AuthenticationError else 1)


def test_a_parameter_error_is_not_retried(run_virtual: RunVirtual) -> None:
    """A 422 is raised after one send, and the client stays usable."""
    client, transport = mock_client(lambda _q: error_answer(422))

    async def main() -> None:
        async with client:
            for _ in range(2):
                with pytest.raises(tm.InvalidParameterError):
                    await client.get_shop_items(SHOP)

    run_virtual(main())
    assert len(transport.queries) == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shop_url": "https://1688.com.evil.com/"},
        {"shop_url": SHOP, "page": 0},
        {"shop_url": SHOP, "page_size": 0},
        {"shop_url": SHOP, "sort": "newest"},
        {"shop_url": SHOP, "cat_type": "2"},
        {"shop_url": SHOP, "listing": tm.Listing(), "sort": "sales"},
    ],
)
def test_validation_sends_nothing(run_virtual: RunVirtual, kwargs: dict[str, Any]) -> None:
    """A bad argument raises InvalidParameterError and nothing is sent."""
    client, transport = mock_client(lambda q: page_answer(*asked(q)))

    async def main() -> None:
        async with client:
            with pytest.raises(tm.InvalidParameterError):
                await client.get_shop_items(**kwargs)
            assert client.requests == 0

    run_virtual(main())
    assert transport.queries == []


# -- listing, max_pages and the seams ----------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c, kw: c.fetch_shop(SHOP, **kw),
        lambda c, kw: collect(c.iter_shop_items(SHOP, **kw)),
        lambda c, kw: collect(c.harvest([SHOP], **kw)),
    ],
    ids=["fetch_shop", "iter_shop_items", "harvest"],
)
@pytest.mark.parametrize(
    "listing",
    [
        {"listing": tm.Listing(5, "sales", 7, 1)},
        {"page_size": 5, "sort": "sales", "cat": "7", "cat_type": "1"},
    ],
    ids=["listing", "options"],
)
def test_the_listing_reaches_the_query(
    run_virtual: RunVirtual,
    call: Callable[[tm.Client, dict[str, Any]], Awaitable[object]],
    listing: dict[str, Any],
) -> None:
    """A Listing or its options, whole: every query carries them."""
    client, transport = mock_client(lambda q: page_answer(*asked(q), total=12, size=5))

    async def main() -> None:
        async with client:
            await call(client, listing)

    run_virtual(main())
    assert len(transport.queries) == 3
    for query in transport.queries:
        fields = {k: v[0] for k, v in parse_qs(query).items()}
        assert fields | {"page": "1"} == {
            "shop_url": SHOP,
            "page_size": "5",
            "sort": "sales",
            "cat": "7",
            "cat_type": "1",
            "page": "1",
        }


class SpyAdmission(tm.Throttle):
    """The local throttle, recording what the client tells it."""

    def __init__(self) -> None:
        super().__init__(rate=1000, concurrency=2)
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")

    async def aclose(self) -> None:
        self.calls.append("aclose")

    def release(self, ticket: int = 0) -> None:
        self.calls.append(f"release {ticket}")
        super().release(ticket)


def test_a_given_throttle_admits_every_request(run_virtual: RunVirtual) -> None:
    """Client(throttle=...) is started, asked, released by ticket and closed; the
    client's own limits are then refused as ambiguous, even one equal to a default."""
    spy = SpyAdmission()
    transport = MockTransport(lambda q: page_answer(*asked(q), total=30))
    client = tm.Client(TOKEN, transport=transport, throttle=spy)

    async def main() -> None:
        async with client:
            await client.fetch_shop(SHOP)

    run_virtual(main())
    assert spy.calls == ["start", "release 1", "release 2", "aclose"]
    assert client.concurrency == 2
    with pytest.raises(tm.InvalidParameterError, match="throttle"):
        tm.Client(TOKEN, throttle=SpyAdmission(), rate=50)
    with pytest.raises(tm.InvalidParameterError, match="throttle"):
        tm.Client(TOKEN, throttle=SpyAdmission(), limits=tm.Limits(rate=10.0))


# -- the whole client waits, and stops ---------------------------------------------------


def test_retry_after_pauses_the_whole_client(run_virtual: RunVirtual) -> None:
    """A 429 with Retry-After: 30 holds every request of the client, not only the one
    refused: another shop's request waits too."""
    sent: list[tuple[str, int, float]] = []
    loop_time: list[Callable[[], float]] = []

    async def handler(query: str) -> Answer:
        shop, page = asked(query)
        sent.append((shop, page, loop_time[0]()))
        if shop == "slow" and len([s for s in sent if s[0] == "slow"]) == 1:
            return error_answer(429, {"Retry-After": "30"})
        await asyncio.sleep(1)
        return page_answer(shop, page)

    client, _ = mock_client(handler, retry=tm.RetryPolicy(attempts=3, initial_wait=0.01))

    async def main() -> None:
        loop_time.append(asyncio.get_running_loop().time)
        async with client:
            start = loop_time[0]()
            refused = asyncio.create_task(client.fetch_shop("https://slow.1688.com/"))
            await asyncio.sleep(0.5)  # the 429 has come back by now (virtual time)
            other = await client.fetch_shop("https://other.1688.com/")
            assert (await refused).status == "complete"
            assert other.status == "complete"
            later = [t - start for shop, _, t in sent[1:]]
            assert min(later) >= 30  # neither the retry nor the other shop went earlier

    run_virtual(main())


@pytest.mark.parametrize("waiting_for", ["token", "backoff"])
def test_stop_fails_requests_already_waiting(run_virtual: RunVirtual, waiting_for: str) -> None:
    """Harvest.stop(): requests waiting for a token of the bucket, or in a retry's
    backoff, end at once with HarvestStopped; none of them is sent afterwards."""

    went = asyncio.Event()

    def handler(query: str) -> Answer:
        shop, page = asked(query)
        if shop == "b" or waiting_for == "token":
            went.set()  # a went; b waits for a token, or b went and is in backoff
        if waiting_for == "backoff" and shop == "b":
            return error_answer(500)  # retried after a long backoff
        return page_answer(shop, page)

    client, transport = mock_client(
        handler,
        rate=0.01 if waiting_for == "token" else 1000,  # one token, then one per 100 s
        burst=1,
        retry=tm.RetryPolicy(attempts=5, initial_wait=100, jitter=0),
    )

    async def main() -> None:
        async with client:
            harvest = client.harvest(["https://a.1688.com/", "https://b.1688.com/"])
            running = asyncio.create_task(collect(harvest))
            await went.wait()
            await asyncio.sleep(1)  # b is now waiting (for a token or in backoff)
            start, sent = asyncio.get_running_loop().time(), len(transport.queries)
            harvest.stop()
            with pytest.raises(tm.HarvestStopped):
                await running
            assert asyncio.get_running_loop().time() - start < 1  # no wait for them
            assert len(transport.queries) == sent

    run_virtual(main())


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.fetch_shop(SHOP, max_pages=2),
        lambda c: collect(c.harvest([SHOP], max_pages=2)),
    ],
    ids=["fetch_shop", "harvest"],
)
def test_max_pages_reaches_the_shop(
    run_virtual: RunVirtual, call: Callable[[tm.Client], Awaitable[object]]
) -> None:
    """max_pages=2 on a shop of 5 pages: two requests, and the shop ends partial."""
    client, transport = mock_client(lambda q: page_answer(*asked(q), total=100))

    async def main() -> object:
        async with client:
            return await call(client)

    outcome = run_virtual(main())
    result = outcome if isinstance(outcome, tm.ShopResult) else outcome[0]
    assert (result.status, result.pages, result.requests) == ("partial", 2, 2)
    assert isinstance(result.error, tm.MaxPagesReached)
    assert len(transport.queries) == 2


def test_iter_shop_items_stops_at_max_pages(run_virtual: RunVirtual) -> None:
    """iter_shop_items yields the pages read, then raises MaxPagesReached."""
    client, _ = mock_client(lambda q: page_answer(*asked(q), total=100))
    items: list[object] = []

    async def main() -> None:
        async with client:
            stream = client.iter_shop_items(SHOP, max_pages=3)
            with pytest.raises(tm.MaxPagesReached):
                await collect_into(items, stream)

    run_virtual(main())
    assert len(items) == 60
