"""``tm.Limits``: validated once, ``None`` meaning not set, and taken by every throttle,
client, pool and the coordinator of a harvest through Redis (its effect in Redis is
checked in tests/redis/test_redis_harvest.py)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest

import tmapi_async as tm
from tmapi_async._redis.coordinator import RedisHarvest
from tmapi_async._redis.throttle import RedisThrottle
from tmapi_async.export import ExportJournal

TOKEN = "tok-limits-0123456789abcdef"
A, B = "tokA-limits-3f9e1c7b", "tokB-limits-8a6d4e2f"
SHOP = "https://limits.1688.com/"
PARAMS = {"page_size": 20, "sort": "default", "cat": None, "cat_type": None}
GENEROUS = 60.0  # seconds: answers expected to arrive (CI is two busy cores)


def page_answer(query: str) -> tm.Answer:
    """A 200 answer with the page ``query`` asks for of a shop of 200 products."""
    fields = parse_qs(query)
    shop, page = fields["shop_url"][0], int(fields["page"][0])
    items = [{"item_id": f"{shop}-{i}"} for i in range((page - 1) * 20, page * 20)]
    data = {"page": page, "page_size": 20, "total_count": 200, "items": items}
    return 200, {}, json.dumps({"code": 200, "msg": "success", "data": data}).encode()


# -- the value ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"rate": 0}, "rate"),
        ({"rate": -1.5}, "rate"),
        ({"rate": float("inf")}, "rate"),
        ({"rate": float("nan")}, "rate"),
        ({"rate": True}, "rate"),
        ({"rate": "10"}, "rate"),
        ({"burst": 0}, "burst"),
        ({"burst": 2.5}, "burst"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": False}, "concurrency"),
        ({"max_requests": -1}, "max_requests"),
    ],
)
def test_a_bad_field_is_refused_naming_it(fields: dict[str, object], named: str) -> None:
    """Each field is checked when the value is made; the error names the field and is
    both the project's InvalidParameterError and a ValueError."""
    with pytest.raises(tm.InvalidParameterError, match=f"^{named} must be") as raised:
        tm.Limits(**fields)  # type: ignore[arg-type]
    assert isinstance(raised.value, ValueError)


def test_limits_are_frozen_and_keyword_only() -> None:
    """A Limits cannot change once made (it is validated once), nor be given by position."""
    limits = tm.Limits(rate=5, max_requests=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.rate = 50  # type: ignore[misc]
    with pytest.raises(TypeError):
        tm.Limits(5)  # type: ignore[call-arg]
    assert limits == tm.Limits(rate=5, max_requests=0)


def test_none_is_not_set_and_takes_the_default() -> None:
    """Every field defaults to None; a throttle fills a limit not set with its default:
    10 requests/s, a burst of about rate/20 (of the rate in force), 8 in flight."""
    unset = tm.Limits()
    assert (unset.rate, unset.burst, unset.concurrency, unset.max_requests) == (None,) * 4
    throttle = tm.Throttle(unset)
    assert (throttle.rate, throttle.burst, throttle.concurrency) == (10.0, 1, 8)
    assert throttle.max_requests is None
    fast = tm.Throttle(tm.Limits(rate=400))
    assert (fast.rate, fast.burst, fast.concurrency) == (400, 20, 8)
    assert tm.Limits(rate=5, max_requests=3).without_budget() == tm.Limits(rate=5)


# -- the shorthand ------------------------------------------------------------------------


def test_client_keywords_are_a_shorthand_for_limits() -> None:
    """Client(rate=..., ...) and Client(limits=Limits(...)) build the same throttle; both
    at once are refused, as is a bad limit, before anything is opened."""
    short = tm.Client(TOKEN, rate=50, burst=4, concurrency=3, max_requests=9)
    full = tm.Client(TOKEN, limits=tm.Limits(rate=50, burst=4, concurrency=3, max_requests=9))
    for client in (short, full):
        throttle = client.throttle
        assert isinstance(throttle, tm.Throttle)
        assert (throttle.rate, throttle.burst, throttle.concurrency) == (50, 4, 3)
        assert throttle.max_requests == 9
    with pytest.raises(tm.InvalidParameterError, match="not both"):
        tm.Client(TOKEN, rate=50, limits=tm.Limits(concurrency=3))
    with pytest.raises(tm.InvalidParameterError, match="concurrency"):
        tm.Client(TOKEN, concurrency=0)
    with pytest.raises(tm.InvalidParameterError, match=r"tm\.Limits"):
        tm.Client(TOKEN, limits=(50, 4, 3))  # type: ignore[arg-type]


def test_throttles_take_limits_or_their_keywords() -> None:
    """Throttle and RedisThrottle take a Limits, or the same keywords, not both."""
    assert tm.Throttle(tm.Limits(rate=7, concurrency=2)).concurrency == 2
    assert tm.Throttle(rate=7, concurrency=2).rate == 7
    shared = RedisThrottle("redis://127.0.0.1:1/0", TOKEN, tm.Limits(concurrency=3))
    assert (shared.rate, shared.burst, shared.concurrency) == (10.0, 1, 3)
    with pytest.raises(tm.InvalidParameterError, match="not both"):
        tm.Throttle(tm.Limits(rate=7), rate=7)
    with pytest.raises(tm.InvalidParameterError, match="not both"):
        RedisThrottle("redis://127.0.0.1:1/0", TOKEN, tm.Limits(rate=7), concurrency=2)


# -- the pool -----------------------------------------------------------------------------


async def test_a_pool_takes_limits_per_token_and_a_budget_across_them() -> None:
    """TokenPool(limits=...): rate, burst and concurrency hold for each token, the
    budget for all of them: a budget of 5 is 5 requests in all, over two tokens."""
    sent: dict[str, int] = {A: 0, B: 0}

    def transport(token: str) -> tm.MockTransport:
        def answer(query: str) -> tm.Answer:
            sent[token] += 1
            return page_answer(query)

        return tm.MockTransport(answer)

    limits = tm.Limits(rate=1000, burst=10, concurrency=2, max_requests=5)
    pool = tm.TokenPool([A, B], limits=limits, transport=transport)
    assert pool.concurrency == 4  # 2 for each token
    assert all(usage.requests == 0 for usage in pool.tokens)
    async with pool:
        with pytest.raises(tm.RequestBudgetExhausted):
            async for _ in pool.iter_shop_items(SHOP):
                pass
    assert sum(sent.values()) == pool.requests == 5
    with pytest.raises(tm.InvalidParameterError, match="not both"):
        tm.TokenPool([A, B], limits=limits, rate=5)
    with pytest.raises(tm.InvalidParameterError, match="throttle"):
        tm.TokenPool([A, B], limits=tm.Limits(rate=5), throttle=lambda t: tm.Throttle())


def test_a_pool_with_a_throttle_factory_keeps_a_budget_across_tokens() -> None:
    """With a throttle factory the speed is the factory's, the budget still the pool's."""
    pool = tm.TokenPool(
        [A, B], limits=tm.Limits(max_requests=3), throttle=lambda t: tm.Throttle(concurrency=1)
    )
    assert pool.concurrency == 2


# -- the coordinator ----------------------------------------------------------------------


def test_the_coordinator_takes_limits_with_their_token(tmp_path: Path) -> None:
    """RedisHarvest(token=..., limits=Limits(...)) is accepted (nothing is opened until
    it is iterated); limits to share without a token to limit are refused."""
    output = tmp_path / "items.jsonl"
    state = tmp_path / "items.jsonl.state.db"
    journal = ExportJournal.open(state, output, "jsonl", params=PARAMS, base_url="")

    try:
        lines: list[str] = []
        job = RedisHarvest(
            "redis://127.0.0.1:1/0",
            journal,
            _aiter(lines),
            output=output,
            params=PARAMS,
            token=TOKEN,
            limits=tm.Limits(rate=20, concurrency=4),
        )
        assert job.hid == journal.harvest_id
        with pytest.raises(tm.InvalidParameterError, match="token"):
            RedisHarvest(
                "redis://127.0.0.1:1/0",
                journal,
                _aiter(lines),
                output=output,
                params=PARAMS,
                limits=tm.Limits(rate=20),
            )
    finally:
        journal.close()


async def _aiter(lines: list[str]) -> AsyncIterator[str]:
    for line in lines:
        yield line
