"""422 "Parameter error" for each malformed parameter; empty optional parameters are absent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tmapi_async.testing import SimulatedTmapi

Fetch = Callable[..., Awaitable[Any]]  # the ``fetch`` fixture of conftest.py

PARAMETER_ERROR = {"code": 422, "msg": "Parameter error", "data": None}


@pytest.mark.parametrize(
    "params",
    [
        {"shop_url": None},
        {"shop_url": ""},
        {"shop_url": "ftp://abc.1688.com/"},
        {"shop_url": "https://abc.taobao.com/"},
        {"shop_url": "https://1688.com/"},
        {"shop_url": "https://a.b.1688.com/"},
        {"shop_url": "abc.1688.com"},
        {"shop_url": "not a url"},
        {"sort": "newest"},
        {"sort": "DEFAULT"},
        {"sort": "price"},
        {"page": "0"},
        {"page": "-1"},
        {"page": "abc"},
        {"page": "1.5"},
        {"page": "1e3"},
        {"page_size": "0"},
        {"page_size": "-5"},
        {"page_size": "x"},
        {"page_size": "2.0"},
        {"cat_type": "2"},
        {"cat_type": "x"},
        {"cat_type": "01"},
        {"cat": "123", "cat_type": "true"},
    ],
)
async def test_malformed_parameter_is_422(
    tmapi_sim: SimulatedTmapi, fetch: Fetch, params: dict[str, Any]
) -> None:
    """A malformed parameter is 422 with the documented body, logged as bad_parameter and not billed
    as a page."""
    r = await fetch(tmapi_sim, "abc", **params)
    assert r.status == 422
    assert r.json == PARAMETER_ERROR
    (rec,) = tmapi_sim.log.records
    assert (rec.outcome, rec.status, rec.code, rec.shop, rec.attempt) == (
        "bad_parameter",
        422,
        422,
        None,
        0,
    )


async def test_empty_optional_parameters_mean_absent(
    tmapi_sim: SimulatedTmapi, fetch: Fetch
) -> None:
    """Empty optional parameters are taken as absent: the defaults apply."""
    r = await fetch(tmapi_sim, "abc", page="", page_size="", sort="", cat="", cat_type="")
    assert r.status == 200
    data = r.json["data"]
    assert (data["page"], data["page_size"], data["sort"], data["cat_id"]) == (1, 20, "default", "")


async def test_cat_type_without_cat_is_ignored(tmapi_sim: SimulatedTmapi, fetch: Fetch) -> None:
    """cat_type without cat is ignored: the whole shop is listed."""
    r = await fetch(tmapi_sim, "abc", cat_type="1")
    assert r.status == 200
    assert r.json["data"]["total_count"] == 100
