"""Who sells: ``fetch_shop_profile`` and ``fetch_shop_categories``, their decoding (the
recorded bodies of ``tests/data``, quirks included), and their requests: validated
before sending, throttled, retried, refused and redacted as a page is."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import tmapi_async as tm
from tmapi_async._profiles import SHOP_CATEGORY, SHOP_CATEGORY_PATH, SHOP_INFO, SHOP_INFO_PATH
from tmapi_async._protocol import decipher
from tmapi_async.testing import SimulatedTmapi, shop_profile

DATA = Path(__file__).parent / "data"
TOKEN = "SECRET-tok/en+="
SHOP = "https://xldjjg.1688.com/"
GENEROUS = 60.0  # seconds: answers expected to arrive (CI is two busy cores)


def body(name: str) -> bytes:
    """A recorded answer from ``tests/data``."""
    return (DATA / name).read_bytes()


def profile_of(raw: bytes) -> tm.ShopProfile:
    """Decipher a shop_info answer as the client does."""
    return SHOP_INFO.decipher(200, {}, raw, TOKEN)


def categories_of(raw: bytes) -> tm.ShopCategories:
    """Decipher a category answer as the client does."""
    return SHOP_CATEGORY.decipher(200, {}, raw, TOKEN)


async def no_sleep(_seconds: float) -> None:
    """A retry sleep that does not wait."""


def mock_client(handler: Any, **kw: Any) -> tuple[tm.Client, tm.MockTransport]:
    """A client answered by ``handler(query)`` without a socket; quick retries."""
    transport = tm.MockTransport(handler)
    options: dict[str, Any] = {"rate": 1000, "retry": tm.RetryPolicy(attempts=3, sleep=no_sleep)}
    return tm.Client(TOKEN, transport=transport, **(options | kw)), transport


# -- decoding --------------------------------------------------------------------------


def test_the_example_profile_decodes_every_documented_field() -> None:
    """Every documented shop_info field lands in the profile, the logo's // repaired."""
    profile = profile_of(body("shop_info_example.json"))
    assert profile.member_id == "b2b-2206521938564bdc2a"
    assert (profile.seller_id, profile.company_id) == ("2206521938564", "356290122")
    assert profile.company_name == "金华市雅剪美发工具有限公司"
    assert profile.contact_phone == "0579-85512345"
    assert profile.shop_url == "https://xldjjg.1688.com"
    assert profile.shop_logo.startswith("https://cbu01.alicdn.com/img/ibank/")
    assert profile.shop_name == "雅剪美发工具厂"
    assert profile.chat_url.startswith("https://amos.alicdn.com/")
    assert profile.location_str == "浙江省 金华市"
    assert (profile.is_factory, profile.is_tp) == (True, True)
    assert (profile.is_industry_brand, profile.is_super_factory, profile.is_flagship_shop) == (
        False,
        False,
        False,
    )
    assert (profile.tp_year, profile.favorite_count) == (6, 1873)
    assert profile.shop_ratings == [
        tm.ShopRating("综合服务", "composite", 4.5),
        tm.ShopRating("货品描述", "goods", 4.0),
        tm.ShopRating("响应速度", "response", 5.0),
    ]


def test_a_drifting_profile_is_normalised() -> None:
    """Ints for ids, strings for flags and counts, nulls, a missing field, four slashes:
    ids become strings, flags booleans, counts ints, a bad score None."""
    profile = profile_of(body("shop_info_quirks.json"))
    assert (profile.member_id, profile.seller_id, profile.company_id) == (
        "2206521938564",
        "2206521938564",
        "356290122",
    )
    assert profile.contact_phone == ""  # null
    assert profile.chat_url == ""  # missing
    assert profile.shop_logo == "https://cbu01.alicdn.com/img/ibank/logo.jpg"
    assert profile.is_industry_brand is False  # 0
    assert profile.is_factory is True  # "1"
    assert profile.is_super_factory is False  # "false"
    assert profile.is_flagship_shop is False  # null
    assert profile.is_tp is True  # "true"
    assert (profile.tp_year, profile.favorite_count) == (6, 1873)  # "6", "1,873"
    assert profile.shop_ratings == [
        tm.ShopRating("综合服务", "composite", 4.5),
        tm.ShopRating("货品描述", "2", None),
        tm.ShopRating("响应速度", "", None),
    ]


def test_a_field_that_turns_into_an_object_costs_only_that_field() -> None:
    """An object where a text, a flag or a count was expected: the text keeps its JSON,
    the flag is False, the count None; the rest of the profile decodes as usual."""
    data = {
        "shop_name": "雅剪",
        "location_str": {"province": "浙江省", "city": "金华市"},
        "is_factory": {"value": True},
        "favorite_count": [1873],
        "shop_ratings": [{"title": "综合服务", "score": {"value": 4.5}}],
    }
    profile = profile_of(json.dumps({"code": 200, "data": data}, ensure_ascii=False).encode())
    assert profile.shop_name == "雅剪"
    assert json.loads(profile.location_str) == data["location_str"]
    assert (profile.is_factory, profile.favorite_count) == (False, None)
    assert profile.shop_ratings == [tm.ShopRating("综合服务", "", None)]


def test_the_example_categories_decode_as_a_tree() -> None:
    """The category answer's list becomes a tree of Category with their counts."""
    tree = categories_of(body("shop_category_example.json"))
    assert (tree.member_id, tree.is_custom) == ("b2b-2206521938564bdc2a", True)
    assert [c.id for c in tree.categories] == ["172891234", "172891235"]
    first = tree.categories[0]
    assert (first.name, first.full_name, first.count) == ("牙剪", "牙剪", 42)
    assert [(c.id, c.name, c.full_name, c.count) for c in first.children] == [
        ("172891301", "左手牙剪", "牙剪>左手牙剪", 12),
        ("172891302", "右手牙剪", "牙剪>右手牙剪", 30),
    ]
    assert tree.categories[1].children == []


def test_drifting_categories_are_normalised() -> None:
    """Int ids, string counts, null or missing children and names: a clean tree."""
    tree = categories_of(body("shop_category_quirks.json"))
    assert (tree.member_id, tree.is_custom) == ("2206521938564", False)
    first, second = tree.categories
    assert (first.id, first.full_name, first.count) == ("172891234", "", 42)
    assert [(c.id, c.count, c.children) for c in first.children] == [
        ("172891301", None, []),
        ("172891302", None, []),
    ]
    assert (second.id, second.count, second.children) == ("172891235", None, [])


def test_a_shop_without_categories_has_an_empty_tree() -> None:
    """``list: null`` is a shop that sorts nothing: no categories, not an error."""
    assert categories_of(body("shop_category_empty.json")).categories == []


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("error_439.json", tm.BalanceError),
        ("error_422.json", tm.InvalidParameterError),
        ("error_401.json", tm.AuthenticationError),
        ("error_503_concurrency.json", tm.RateLimitError),
        ("proxy_error.html", tm.DecodeError),
        ("truncated.json", tm.DecodeError),
        ("data_is_list.json", tm.DecodeError),
        ("data_null.json", tm.DecodeError),
    ],
)
def test_both_endpoints_read_errors_as_the_items_endpoint(
    name: str, error: type[tm.TmapiError]
) -> None:
    """The shared envelope: the same body means the same error on every endpoint."""
    for endpoint in (SHOP_INFO, SHOP_CATEGORY):
        with pytest.raises(error):
            endpoint.decipher(200, {}, body(name), TOKEN)


def test_an_answer_nested_thousands_deep_is_a_decode_error_on_every_endpoint() -> None:
    """A hostile body nesting past the decoder's depth limit (a category tree, an item's
    category_path) is a DecodeError, retried like any nonsense, not a RecursionError."""
    n = 3000
    tree = '{"id":1,"children":[' * n + "{}" + "]}" * n
    deep_tree = f'{{"code":200,"data":{{"list":[{tree}]}}}}'.encode()
    with pytest.raises(tm.DecodeError):
        SHOP_CATEGORY.decipher(200, {}, deep_tree, TOKEN)
    arrays = "[" * n + "]" * n
    item = f'{{"item_id":"1","category_path":[{arrays}]}}'
    deep_page = f'{{"code":200,"data":{{"page":1,"page_size":20,"items":[{item}]}}}}'.encode()
    with pytest.raises(tm.DecodeError):
        decipher(200, {}, deep_page)


# -- requests --------------------------------------------------------------------------


def test_a_bad_shop_url_is_refused_before_anything_is_sent() -> None:
    """Validation first: a product page or a non-1688 URL costs no request."""

    async def scenario() -> None:
        client, transport = mock_client(lambda _q: (200, {}, body("shop_info_example.json")))
        async with client:
            for bad in ("https://detail.1688.com/offer/1.html", "not a url", "https://x.com/"):
                with pytest.raises(tm.InvalidParameterError):
                    await client.fetch_shop_profile(bad)
                with pytest.raises(tm.InvalidParameterError):
                    await client.fetch_shop_categories(bad)
        assert transport.queries == []

    asyncio.run(scenario())


def test_each_endpoint_is_asked_at_its_path_with_the_shop_home_page() -> None:
    """One request each, at its own path, with the shop's normalised home page."""

    def answer(_query: str) -> tm.Answer:
        path = transport.paths[-1]
        name = "shop_info_example.json" if path == SHOP_INFO_PATH else "shop_category_example.json"
        return 200, {}, body(name)

    client, transport = mock_client(answer)

    async def scenario() -> tuple[tm.ShopProfile, tm.ShopCategories]:
        async with client:
            profile = await client.fetch_shop_profile("http://XLDJJG.1688.com/page/offerlist.htm")
            return profile, await client.fetch_shop_categories(SHOP)

    profile, tree = asyncio.run(scenario())
    assert profile.shop_name == "雅剪美发工具厂"
    assert len(tree.categories) == 2
    assert transport.paths == [SHOP_INFO_PATH, SHOP_CATEGORY_PATH]
    assert transport.queries == ["shop_url=https%3A%2F%2Fxldjjg.1688.com%2F"] * 2
    assert client.requests == 2


def test_transient_failures_are_retried_and_counted() -> None:
    """A 503 concurrency refusal, then an HTML page, then the answer: three requests."""
    answers = [
        (503, {}, body("error_503_concurrency.json")),
        (200, {}, body("proxy_error.html")),
        (200, {}, body("shop_info_example.json")),
    ]
    client, transport = mock_client(lambda _q: answers[len(transport.queries) - 1])

    async def scenario() -> tm.ShopProfile:
        async with client:
            return await client.fetch_shop_profile(SHOP)

    assert asyncio.run(scenario()).favorite_count == 1873
    assert (client.requests, client.retries) == (3, 2)


def test_a_balance_error_stops_the_client_for_items_too() -> None:
    """439 on a profile is fatal for the token: the next page is not sent."""
    client, transport = mock_client(lambda _q: (439, {}, body("error_439.json")))

    async def scenario() -> None:
        async with client:
            with pytest.raises(tm.BalanceError):
                await client.fetch_shop_categories(SHOP)
            with pytest.raises(tm.BalanceError):
                await client.get_shop_items(SHOP)

    asyncio.run(scenario())
    assert len(transport.queries) == 1
    assert isinstance(client.fatal, tm.BalanceError)


def test_the_token_never_reaches_an_error() -> None:
    """A server that echoes the key in its message: the error shows it redacted."""
    echo = json.dumps({"code": 500, "msg": f"bad key {TOKEN} here", "data": None}).encode()
    client, _ = mock_client(lambda _q: (500, {}, echo))

    async def scenario() -> tm.TmapiError:
        async with client:
            with pytest.raises(tm.TmapiError) as caught:
                await client.fetch_shop_profile(SHOP)
            return caught.value

    error = asyncio.run(scenario())
    assert "SECRET-tok" not in str(error)
    assert "SECRET-tok" not in repr(error)


@pytest.mark.parametrize("scheme", ["header", "query"])
def test_each_way_of_sending_the_key_works_as_for_items(scheme: str) -> None:
    """A simulator that takes the key one way only: ``auth="auto"`` finds it, as for
    items, and both endpoints answer with the simulator's profile."""

    async def scenario() -> None:
        async with SimulatedTmapi(auth=scheme) as sim:
            async with tm.Client(TOKEN, base_url=sim.url, timeout=GENEROUS) as client:
                profile = await client.fetch_shop_profile(SHOP)
                tree = await client.fetch_shop_categories(SHOP)
                assert client.auth == scheme
            assert profile.favorite_count == int(shop_profile("xldjjg")["favorite_count"])
            assert tree.categories
            ok = sim.log.count_by_endpoint("ok")
            assert ok[(SHOP_INFO_PATH, "xldjjg")] == ok[(SHOP_CATEGORY_PATH, "xldjjg")] == 1
            assert all(r.auth == scheme for r in sim.log if r.outcome == "ok")

    asyncio.run(scenario())


def test_a_token_pool_offers_both_and_retires_a_refused_token() -> None:
    """Through a pool, a profile goes to a token in service; a token refused (401) on a
    profile retires, and the profile is fetched with another."""

    async def scenario() -> None:
        async with SimulatedTmapi(tokens=["good"]) as sim:
            async with tm.TokenPool(
                ["refused", "good"], base_url=sim.url, timeout=GENEROUS, auth="header"
            ) as pool:
                profiles = [await pool.fetch_shop_profile(SHOP) for _ in range(2)]
                tree = await pool.fetch_shop_categories(SHOP)
                usage = {u.fingerprint: u for u in pool.tokens}
            assert profiles[0] == profiles[1]
            assert profiles[0].shop_ratings
            assert tree.categories
            retired = [u for u in usage.values() if u.retired is not None]
            assert len(retired) == 1  # the first token asked is the refused one
            assert isinstance(retired[0].retired, tm.AuthenticationError)
            assert sim.log.count_by_endpoint("ok")[(SHOP_INFO_PATH, "xldjjg")] == 2

    asyncio.run(scenario())
