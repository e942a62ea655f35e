"""Hostile answers through the public API: whatever a server sends, ``Client.fetch_shop``
raises only a ``TmapiError``, never hangs, never bills past a bound, never shows the token.

Answers are served by a ``MockTransport`` on the virtual-clock loop: backoffs and
``Retry-After`` pauses cost no real time, and a deadlock (every task waiting, no timer
set) raises at once instead of hanging. Each example is a real shop listing plus lies:
one told in every answer (an absurd total, a wrong page size, duplicated items...) and
one per request for the first few requests (truncated bytes, HTML, wrong types, odd
statuses and headers...).

``TMAPI_FUZZ_EXAMPLES`` raises the number of examples (CI runs the default);
``TMAPI_FUZZ_REPORT=path`` writes the figures of the run (examples, exceptions, the
most requests a shop cost against its bound) to that file as JSON.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import tmapi_async as tm
from tmapi_async import Client, MockTransport, RetryPolicy, TmapiError
from tmapi_async._models import MAX_TOTAL_COUNT

T = TypeVar("T")

TOKEN = "tok-Fuzz-7Qx2Zr9"
EXAMPLES = int(os.environ.get("TMAPI_FUZZ_EXAMPLES", "100"))
ATTEMPTS = 3
SHOP = "https://fuzzshop.1688.com/"

Answer = tuple[int, Mapping[str, str], bytes]

# -- lies ----------------------------------------------------------------------------

ABSURD_INTS = [10**9, 10**15, 2**63, 2**64 + 5, -1, -(2**63), 0]
WEIRD_VALUES: list[Any] = [None, "", "abc", "1e9", 1.5, [], {}, True, "NaN", "-20", " 20 "]

# A lie told in every answer: (field, value) of the data, or a change to the items.
global_lie = st.one_of(
    st.none(),
    st.tuples(st.just("total_count"), st.integers(0, 500)),
    st.tuples(st.just("total_count"), st.sampled_from([10**6, MAX_TOTAL_COUNT])),
    st.tuples(st.just("page_size"), st.integers(1, 60)),
    st.tuples(
        st.just("total_count"),
        st.one_of(st.sampled_from(ABSURD_INTS), st.integers(0, 500), st.sampled_from(WEIRD_VALUES)),
    ),
    st.tuples(
        st.just("page_size"),
        st.one_of(
            st.sampled_from([0, -1, 1, 2, 7, 40, 100, 10**6, 10**15]),
            st.sampled_from(WEIRD_VALUES),
        ),
    ),
    st.tuples(st.just("items"), st.sampled_from(["doubled", "reversed-twice", "first-only"])),
    st.tuples(st.just("missing"), st.sampled_from(["page_size", "total_count", "items", "page"])),
)

# A lie told in one answer.
one_lie = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(
        st.just("body"),
        st.sampled_from(
            [
                b"",
                b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                b"[]",
                b"null",
                b"42",
                b'"ok"',
                b"\xff\xfe\x00garbage",
                b'{"code": 200}',
                b'{"code": 200, "data": []}',
                b'{"code": 200, "data": "x"}',
                b'{"code": "200", "data": {}}',
                b'{"code": 200, "data": {"items": {"a": 1}}}',
                b'{"code": 200, "data": {"items": [{"item_id": null}]}}',
                b'{"code": 200, "data": {"items": [{"title": "no id"}]}}',
                b'{"code": 200, "data": {"items": [{"item_id": {"x": 1}}]}}',
                b'{"code": 200, "data": {"items": [1, 2, 3]}}',
                b'{"code": 1e400}',
                b'{"code": 99999999999999999999999, "msg": "x"}',
                b'{"code": 401, "msg": ["not", "a", "string"]}',
                b"[" * 5000 + b"]" * 5000,
            ]
        ),
    ),
    st.tuples(st.just("random_body"), st.binary(max_size=200)),
    st.tuples(
        st.just("status"),
        st.tuples(
            st.one_of(
                st.sampled_from([0, 100, 204, 301, 304, 400, 404, 417, 418, 422, 429, 439]),
                st.sampled_from([499, 500, 502, 503, 504, 520, 999, -1]),
                st.integers(100, 599),
            ),
            st.sampled_from(
                ["", "Service busy", "concurrency limit exceeded", f"bad token {TOKEN}", "x" * 5000]
            ),
        ),
    ),
    st.tuples(
        st.just("retry_after"),
        st.one_of(
            st.sampled_from(
                ["1e9", "inf", "nan", "-5", "0", "soon", "Fri, 31 Dec 9999 23:59:59 GMT"]
            ),
            st.sampled_from(["Mon, 01 Jan 2020 25:61:61 +9999", "9" * 400, TOKEN, "\x00\x01"]),
            st.text(max_size=30),
        ),
    ),
    st.tuples(
        st.just("field"),
        st.tuples(
            st.sampled_from(["total_count", "page_size", "page", "items", "code", "msg"]),
            st.one_of(st.sampled_from(ABSURD_INTS), st.sampled_from(WEIRD_VALUES)),
        ),
    ),
    st.tuples(
        st.just("echo_token"),
        st.sampled_from([TOKEN, quote(TOKEN, safe=""), f"apiToken={TOKEN}&page=1"]),
    ),
    st.tuples(st.just("transport_error"), st.just(None)),
)


@dataclass
class Shop:
    """A real listing and the lies told about it; counts what it was asked."""

    size: int
    cap: int
    lie: tuple[str, Any] | None
    lies: list[tuple[str, Any] | None]
    requests: int = 0
    retries: int = 0
    pages_asked: Counter[int] = field(default_factory=Counter)
    lied_last: set[int] = field(default_factory=set)  # pages whose last answer lied

    @property
    def real_pages(self) -> int:
        return max(1, math.ceil(self.size / self.cap))

    def honest(self, page: int, asked: int) -> dict[str, Any]:
        size = min(asked, self.cap)
        start = (page - 1) * size
        items = [
            {"item_id": f"{700000 + i}", "title": f"item {i}", "price": "1.00"}
            for i in range(start, min(start + size, self.size))
        ]
        data = {"page": page, "page_size": size, "total_count": self.size, "items": items}
        return {"code": 200, "msg": "success", "data": data}

    def answer(self, query: str) -> Answer:
        params = parse_qs(query)
        page, asked = int(params["page"][0]), int(params["page_size"][0])
        assert "apiToken" not in query  # the mock transport never sees the token
        self.requests += 1
        self.pages_asked[page] += 1
        envelope = self.honest(page, asked)
        _tell(envelope, self.lie)
        lie = self.lies[self.requests - 1] if self.requests <= len(self.lies) else None
        if lie is None:
            self.lied_last.discard(page)
        else:
            self.lied_last.add(page)
        return _serve(envelope, lie)


def _tell(envelope: dict[str, Any], lie: tuple[str, Any] | None) -> None:
    """Apply a lie told in every answer to the envelope."""
    if lie is None:
        return
    kind, value = lie
    data = envelope["data"]
    if kind in ("total_count", "page_size"):
        data[kind] = value
    elif kind == "missing":
        del data[value]
    elif value == "doubled":
        data["items"] = data["items"] * 2
    elif value == "reversed-twice":
        data["items"] = data["items"][::-1] + data["items"]
    else:
        data["items"] = data["items"][:1]


def _serve(envelope: dict[str, Any], lie: tuple[str, Any] | None) -> Answer:
    """The answer with one request's lie told."""
    status, headers = 200, {"Content-Type": "application/json"}
    if lie is None:
        return status, headers, json.dumps(envelope).encode()
    kind, value = lie
    if kind == "transport_error":
        raise tm.TransportError("connection reset by peer")
    if kind == "field":
        name, weird = value
        target = envelope if name in ("code", "msg") else envelope["data"]
        target[name] = weird
    elif kind == "echo_token":
        envelope.update(code=500, msg=f"upstream said {value}")
    elif kind == "status":
        status, message = value
        envelope.update(code=status, msg=message, data=None)
    elif kind == "retry_after":
        envelope.update(code=429, msg="too many requests", data=None)
        status, headers = 429, {**headers, "Retry-After": value}
    body = json.dumps(envelope).encode()
    if kind == "truncate":
        body = body[: int(len(body) * value)]
    elif kind in ("body", "random_body"):
        body = value
    return status, headers, body


# -- figures of the run ----------------------------------------------------------------

FIGURES: dict[str, Any] = {
    "examples": 0,
    "outcomes": Counter(),
    "exceptions": Counter(),
    "max_requests_over_bound": 0.0,
    "max_requests": 0,
    # requests - retries - (real pages + concurrency): <= 0 where no page failed for good
    "max_first_asks_past_real_pages_plus_window": -(10**9),
    "max_pages_past_real_plus_window_over_failed_pages": -(10**9),
    "max_refills": 0,
}


def _report() -> None:
    path = os.environ.get("TMAPI_FUZZ_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as file:
            json.dump(FIGURES, file, indent=1, default=dict)


# -- the property ------------------------------------------------------------------------


def bound(shop: Shop, concurrency: int) -> int:
    """Requests a shop may cost at most: every real page and one window past the end,
    each retried up to ATTEMPTS times, plus one per lie told in a single answer."""
    return (shop.real_pages + concurrency) * ATTEMPTS + len(shop.lies)


async def harvest_one(shop: Shop, concurrency: int) -> tm.ShopResult | TmapiError:
    transport = MockTransport(shop.answer)
    retry = RetryPolicy(attempts=ATTEMPTS, initial_wait=0.01, max_wait=0.05)
    client = Client(TOKEN, rate=1000.0, concurrency=concurrency, retry=retry, transport=transport)
    async with asyncio.timeout(24 * 3600):  # virtual seconds: a hang ends here, loudly
        async with client:
            try:
                return await client.fetch_shop(SHOP)
            except TmapiError as error:
                return error
            finally:
                shop.retries = client.retries


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    size=st.integers(0, 130),
    cap=st.sampled_from([1, 3, 7, 20]),
    lie=global_lie,
    lies=st.lists(st.one_of(st.none(), st.none(), one_lie), max_size=10),
    concurrency=st.integers(1, 6),
)
# A retry cancelled in its backoff by a fatal answer was never sent: not counted either.
@example(
    size=3,
    cap=1,
    lie=None,
    lies=[None, ("transport_error", None), ("status", (439, ""))],
    concurrency=2,
)
def test_any_answer_gives_a_result_or_a_tmapi_error(
    run_virtual: Callable[[Coroutine[Any, Any, T]], T],
    size: int,
    cap: int,
    lie: tuple[str, Any] | None,
    lies: list[tuple[str, Any] | None],
    concurrency: int,
) -> None:
    """Whatever the answers: a ShopResult or a TmapiError, items unique, requests bound,
    no token in any error."""
    shop = Shop(size, cap, lie, lies)
    try:
        outcome = run_virtual(harvest_one(shop, concurrency))
    except BaseException as error:  # anything else escaping the API is the bug sought
        FIGURES["exceptions"][type(error).__name__] += 1
        _report()
        raise
    FIGURES["examples"] += 1
    limit = bound(shop, concurrency)
    FIGURES["max_requests"] = max(FIGURES["max_requests"], shop.requests)
    past = shop.requests - shop.retries - (shop.real_pages + concurrency)
    key = "max_first_asks_past_real_pages_plus_window"
    FIGURES[key] = max(FIGURES[key], past)
    refilled = shop.requests - shop.retries - len(shop.pages_asked)
    FIGURES["max_refills"] = max(FIGURES["max_refills"], refilled)
    key = "max_pages_past_real_plus_window_over_failed_pages"
    past = len(shop.pages_asked) - (shop.real_pages + concurrency + len(shop.lied_last))
    FIGURES[key] = max(FIGURES[key], past)
    FIGURES["max_requests_over_bound"] = max(
        FIGURES["max_requests_over_bound"], shop.requests / limit
    )
    if isinstance(outcome, TmapiError):
        FIGURES["outcomes"][f"raised {type(outcome).__name__}"] += 1
        errors: list[BaseException] = [outcome]
    else:
        FIGURES["outcomes"][outcome.status] += 1
        ids = [item.item_id for item in outcome.items]
        assert len(ids) == len(set(ids))
        assert outcome.item_count == len(ids)
        errors = [outcome.error] if outcome.error is not None else []
    _report()
    assert shop.requests <= limit
    # The bound of the promise: the real pages, one window past them, and retries; a
    # page that failed for good tells nothing of where the listing ends, so the page
    # after it may be asked too.
    assert len(shop.pages_asked) <= shop.real_pages + concurrency + len(shop.lied_last)
    # A valid answer whose total shrinks looks like drift: the pages of the hole are
    # asked once more, never more than the pages asked once.
    refills = shop.requests - shop.retries - len(shop.pages_asked)
    assert 0 <= refills <= len(shop.pages_asked)
    for error in errors:
        for text in (str(error), repr(error), *map(str, error.args)):
            assert TOKEN not in text
            assert quote(TOKEN, safe="") not in text


# -- named cases -------------------------------------------------------------------------


@pytest.mark.parametrize("lie", [("items", "doubled"), ("items", "reversed-twice")])
@pytest.mark.parametrize("size", [1, 20, 45, 100])
def test_items_repeated_within_pages_are_exported_once(
    run_virtual: Callable[[Coroutine[Any, Any, T]], T], lie: tuple[str, Any], size: int
) -> None:
    """Every page carrying its items twice: each product comes out once, and the shop
    costs its real pages."""
    shop = Shop(size, 20, lie, [])
    result = run_virtual(harvest_one(shop, 4))
    assert isinstance(result, tm.ShopResult)
    assert result.status == "complete"
    ids = [i.item_id for i in result.items]
    assert sorted(ids) == [f"{700000 + i}" for i in range(size)]
    if lie == ("items", "doubled"):
        assert ids == sorted(ids)  # the first of each pair, in listing order
    assert shop.requests == shop.real_pages


@pytest.mark.parametrize("total", [10**6, MAX_TOTAL_COUNT])
@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_lying_total_costs_the_real_pages_plus_one_window(
    run_virtual: Callable[[Coroutine[Any, Any, T]], T], total: int, concurrency: int
) -> None:
    """A total of a million on a shop of 45 products: every product, complete, and no
    more than the real pages plus one window of requests."""
    shop = Shop(45, 20, ("total_count", total), [])
    result = run_virtual(harvest_one(shop, concurrency))
    assert isinstance(result, tm.ShopResult)
    assert (result.status, result.item_count) == ("complete", 45)
    assert shop.requests <= shop.real_pages + concurrency


@pytest.mark.parametrize("total", [10**9, 10**15, 2**63])
def test_an_absurd_total_fails_the_shop_after_retries(
    run_virtual: Callable[[Coroutine[Any, Any, T]], T], total: int
) -> None:
    """A total past MAX_TOTAL_COUNT is a DecodeError: page 1 is retried, then the shop
    fails; no plan is made from it."""
    shop = Shop(45, 20, ("total_count", total), [])
    result = run_virtual(harvest_one(shop, 4))
    assert isinstance(result, tm.ShopResult)
    assert result.status == "failed"
    assert isinstance(result.error, tm.DecodeError)
    assert "total_count" in str(result.error)
    assert shop.requests == ATTEMPTS


def test_page_size_disagreeing_with_items_costs_the_real_pages(
    run_virtual: Callable[[Coroutine[Any, Any, T]], T],
) -> None:
    """page_size 1 on pages of 20: a 3-page shop costs 3 requests, not 60."""
    shop = Shop(60, 20, ("page_size", 1), [])
    result = run_virtual(harvest_one(shop, 8))
    assert isinstance(result, tm.ShopResult)
    assert (result.status, result.item_count, shop.requests) == ("complete", 60, 3)


def test_a_shop_past_max_pages_is_partial(
    run_virtual: Callable[[Coroutine[Any, Any, T]], T],
) -> None:
    """fetch_shop(max_pages=3) on a 7-page shop: 3 pages, partial, MaxPagesReached."""
    shop = Shop(130, 20, None, [])

    async def fetch() -> tm.ShopResult:
        retry = RetryPolicy(attempts=ATTEMPTS, initial_wait=0.01, max_wait=0.05)
        client = Client(TOKEN, retry=retry, transport=MockTransport(shop.answer))
        async with client:
            return await client.fetch_shop(SHOP, max_pages=3)

    result = run_virtual(fetch())
    assert (result.status, result.item_count, shop.requests) == ("partial", 60, 3)
    assert isinstance(result.error, tm.MaxPagesReached)
