"""How a key is sent: ``AuthScheme`` on its own, then through a ``Client`` and a
``TokenPool`` answered by a :class:`MockTransport` that accepts one scheme only.

Time-dependent cases run on the virtual-clock loop: an answer's latency there elapses
only once every other task is parked, so "nothing else was sent meanwhile" is exact.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import tmapi_async as tm
from tmapi_async import Answer, MockTransport, Throttle
from tmapi_async._auth import AuthScheme, auth_mode

KEY = "SECRET-key-9c1e"
SHOP = "https://xldjjg.1688.com/"
SHOPS = [f"https://auth{i}.1688.com/" for i in range(8)]

RunVirtual = Callable[[Coroutine[Any, Any, Any]], Any]


def page(total: int = 20) -> Answer:
    items = [{"item_id": f"i{i}", "title": "t"} for i in range(min(total, 20))]
    data = {"page": 1, "page_size": 20, "total_count": total, "items": items}
    return 200, {}, json.dumps({"code": 200, "msg": "success", "data": data}).encode()


def error(status: int) -> Answer:
    body = {"code": status, "msg": f"refused {status}", "data": None}
    return status, {}, json.dumps(body).encode()


def only(accepted: set[str], transport: list[MockTransport]) -> Callable[[str], Answer]:
    """A handler that answers a page to a key sent one of the ``accepted`` ways, 401 else."""

    def answer(_query: str) -> Answer:
        return page() if transport[0].auths[-1] in accepted else error(401)

    return answer


def client_of(handler: Callable[[str], Any], **kw: Any) -> tuple[tm.Client, MockTransport]:
    transport = MockTransport(handler)
    options: dict[str, Any] = {"rate": 1000, "concurrency": 8}
    return tm.Client(KEY, transport=transport, **(options | kw)), transport


def accepting(accepted: set[str], **kw: Any) -> tuple[tm.Client, MockTransport]:
    box: list[MockTransport] = []
    client, transport = client_of(only(accepted, box), **kw)
    box.append(transport)
    return client, transport


# -- the mode ------------------------------------------------------------------------------


def test_auth_mode_defaults_to_auto_and_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No value: TMAPI_AUTH, else auto; a value given beats the variable."""
    monkeypatch.delenv("TMAPI_AUTH", raising=False)
    assert auth_mode() == "auto"
    monkeypatch.setenv("TMAPI_AUTH", "Query")
    assert auth_mode() == "query"
    assert auth_mode("header") == "header"


@pytest.mark.parametrize("value", ["both", "", "apikey", "HEADERS"])
def test_an_invalid_auth_names_the_valid_values(value: str) -> None:
    """Client(auth=...) refuses anything else, naming auto, header and query."""
    with pytest.raises(tm.InvalidParameterError) as info:
        tm.Client(KEY, auth=value)
    assert "auto, header, query" in str(info.value)
    assert KEY not in str(info.value)


# -- AuthScheme on its own -----------------------------------------------------------------


async def test_one_probe_at_a_time_and_the_rest_wait() -> None:
    """While one request probes, others get None; header refused, query accepted: settled."""
    scheme = AuthScheme("auto")
    assert scheme.claim() == ("header", True)
    assert scheme.claim() is None
    refusal = tm.AuthenticationError("no", code=401, status=401)
    assert scheme.refused("header", refusal) == "query"
    assert scheme.claim() is None  # the same request goes on probing
    scheme.accepted("query")
    assert scheme.settled == "query"
    assert scheme.claim() == ("query", False)


async def test_an_undecided_probe_hands_over_to_the_next_request() -> None:
    """A probe without a verdict (a 500, a cancel) lets the next claim probe instead."""
    scheme = AuthScheme("auto")
    assert scheme.claim() == ("header", True)
    scheme.undecided()
    assert scheme.claim() == ("header", True)


def test_fixed_modes_never_probe() -> None:
    """header and query are settled from the start."""
    assert AuthScheme("header").claim() == ("header", False)
    assert AuthScheme("query").claim() == ("query", False)


# -- through a client ----------------------------------------------------------------------


def test_concurrent_callers_wait_on_one_probe(run_virtual: RunVirtual) -> None:
    """Eight pages at once on a key accepted only as the query: one request is sent as
    the header (refused), the others wait for it and go as the query: 1 refusal."""
    box: list[MockTransport] = []
    seen_during_probe: list[int] = []

    async def answer(_query: str) -> Answer:
        transport = box[0]
        if transport.auths[-1] == "header":
            await asyncio.sleep(1.0)  # latency: every other task is parked meanwhile
            seen_during_probe.append(len(transport.queries))
            return error(401)
        return page()

    client, transport = client_of(answer)
    box.append(transport)

    async def run() -> list[tm.ShopItemsPage]:
        async with client:
            return await asyncio.gather(*(client.get_shop_items(s) for s in SHOPS))

    pages = run_virtual(run())
    assert len(pages) == len(SHOPS)
    assert seen_during_probe == [1]  # nothing else left while the probe was out
    assert transport.auths == ["header"] + ["query"] * len(SHOPS)
    assert client.auth == "query"
    assert client.requests == len(SHOPS) + 1  # the refused one is counted (and billed)
    assert client.retries == 0  # the second way of sending is no retry


def test_a_401_on_the_header_then_200_on_the_query_settles_query(
    run_virtual: RunVirtual,
) -> None:
    """The probing page costs two requests, counted in its result; later pages one."""
    client, transport = accepting({"query"})

    async def run() -> tuple[object, object]:
        async with client:
            first = await client.fetch_shop(SHOP)
            second = await client.fetch_shop("https://other.1688.com/")
        return first, second

    first, second = run_virtual(run())
    assert isinstance(first, tm.ShopResult)
    assert isinstance(second, tm.ShopResult)
    assert (first.status, first.requests) == ("complete", 2)
    assert (second.status, second.requests) == ("complete", 1)
    assert transport.auths == ["header", "query", "query"]
    assert client.auth == "query"


def test_a_key_accepted_as_the_header_costs_nothing_extra(run_virtual: RunVirtual) -> None:
    """Accepted at once: settled "header", one request a page."""
    client, transport = accepting({"header"})

    async def run() -> None:
        async with client:
            await client.get_shop_items(SHOP)
            await client.get_shop_items(SHOP, page=2)

    run_virtual(run())
    assert transport.auths == ["header", "header"]
    assert client.auth == "header"


def test_a_later_401_after_settling_is_fatal_not_a_new_probe(run_virtual: RunVirtual) -> None:
    """Settled on the header; the key is then refused: fatal at once, the query is not
    tried, and the error names the way it was sent."""
    box: list[MockTransport] = []

    def answer(_query: str) -> Answer:
        return page() if len(box[0].queries) <= 2 else error(401)

    client, transport = client_of(answer)
    box.append(transport)

    async def run() -> BaseException:
        async with client:
            await client.get_shop_items(SHOP)
            await client.get_shop_items(SHOP, page=2)
            with pytest.raises(tm.AuthenticationError) as info:
                await client.get_shop_items(SHOP, page=3)
            with pytest.raises(tm.AuthenticationError):
                await client.get_shop_items(SHOP, page=4)  # stopped: nothing sent
            return info.value

    refused = run_virtual(run())
    assert transport.auths == ["header", "header", "header"]
    assert "`apikey` header" in str(refused)
    assert "apiToken" not in str(refused)
    assert client.fatal is not None


@pytest.mark.parametrize("status", [401, 403])
def test_a_key_refused_both_ways_is_fatal_after_two_requests(
    run_virtual: RunVirtual, status: int
) -> None:
    """Refused as the header and as the query: one AuthenticationError naming both ways
    and neither the key; exactly two requests; nothing more is sent."""
    client, transport = client_of(lambda _q: error(status))

    async def run() -> BaseException:
        async with client:
            with pytest.raises(tm.AuthenticationError) as info:
                await asyncio.gather(*(client.get_shop_items(s) for s in SHOPS))
            with pytest.raises(tm.AuthenticationError):
                await client.get_shop_items(SHOP)
            return info.value

    refused = run_virtual(run())
    assert transport.auths == ["header", "query"]
    assert client.requests == 2
    text = f"{refused} {refused!r}"
    assert "`apikey` header" in text
    assert "`apiToken` query parameter" in text
    assert KEY not in text
    assert isinstance(refused, tm.AuthenticationError)
    assert refused.code == status


def test_a_transient_answer_to_the_probe_decides_nothing(run_virtual: RunVirtual) -> None:
    """A 500 to the header is no refusal: the retry probes the header again, accepted."""
    box: list[MockTransport] = []

    def answer(_query: str) -> Answer:
        return error(500) if len(box[0].queries) == 1 else page()

    client, transport = client_of(answer, retry=tm.RetryPolicy(attempts=3, sleep=no_sleep))
    box.append(transport)

    async def run() -> None:
        async with client:
            await client.get_shop_items(SHOP)

    run_virtual(run())
    assert transport.auths == ["header", "header"]
    assert client.auth == "header"


def test_a_cancelled_probe_hands_over_to_a_waiting_request(run_virtual: RunVirtual) -> None:
    """The probing request is cancelled while its answer is out: a waiting one probes."""
    box: list[MockTransport] = []
    probing = asyncio.Event()

    async def answer(_query: str) -> Answer:
        if len(box[0].queries) == 1:
            probing.set()
            await asyncio.Event().wait()  # the first answer never comes
        return page()

    client, transport = client_of(answer)
    box.append(transport)

    async def run() -> None:
        async with client:
            first = asyncio.create_task(client.get_shop_items(SHOP))
            second = asyncio.create_task(client.get_shop_items(SHOP, page=2))
            await probing.wait()
            first.cancel()
            await second
            with pytest.raises(asyncio.CancelledError):
                await first

    run_virtual(run())
    assert transport.auths == ["header", "header"]
    assert client.auth == "header"


@pytest.mark.parametrize("mode", ["header", "query"])
def test_a_fixed_mode_sends_only_that_way_and_a_401_is_fatal_at_once(
    run_virtual: RunVirtual, mode: str
) -> None:
    """auth="header" or "query": every request that way, a refusal fatal after one."""
    client, transport = client_of(lambda _q: error(401), auth=mode)

    async def run() -> BaseException:
        async with client:
            with pytest.raises(tm.AuthenticationError) as info:
                await client.get_shop_items(SHOP)
            return info.value

    refused = run_virtual(run())
    assert transport.auths == [mode]
    assert ("apikey" if mode == "header" else "apiToken") in str(refused)


async def no_sleep(_seconds: float) -> None:
    """A retry sleep that does not wait."""


# -- a pool: each key its own way ----------------------------------------------------------


def test_each_key_of_a_pool_finds_its_own_way(run_virtual: RunVirtual) -> None:
    """Key A is accepted only as the header, key B only as the query: every shop
    complete, A never refused, B refused once, each settled its own way."""
    accepted = {"keyA-1": {"header"}, "keyB-2": {"query"}}
    transports: dict[str, MockTransport] = {}

    def transport(key: str) -> MockTransport:
        box: list[MockTransport] = []
        made = MockTransport(only(accepted[key], box))
        box.append(made)
        transports[key] = made
        return made

    pool = tm.TokenPool(
        list(accepted),
        throttle=lambda _key: Throttle(rate=1000, concurrency=4),
        transport=transport,
    )

    async def run() -> list[tm.ShopResult]:
        async with pool:
            return [result async for result in pool.harvest(SHOPS)]

    results = run_virtual(run())
    assert {r.status for r in results} == {"complete"}
    a, b = transports["keyA-1"].auths, transports["keyB-2"].auths
    assert set(a) == {"header"}
    assert b[0] == "header"
    assert set(b[1:]) == {"query"}
    assert pool.requests == len(SHOPS) + 1
