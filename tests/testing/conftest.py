"""Fixtures for the simulator's own tests (the plugin's fixtures are imported explicitly:
``pytest_plugins`` is only allowed in the top-level conftest, which is not ours)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
import pytest
import pytest_asyncio

from tmapi_async.testing import SimulatedTmapi
from tmapi_async.testing.pytest_plugin import (
    tmapi_sim,
    tmapi_sim_config,
    tmapi_sim_factory,
    tmapi_token,
)

__all__ = ["tmapi_sim", "tmapi_sim_config", "tmapi_sim_factory", "tmapi_token"]

TOKEN = "tok-secret-1234567890"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return msgspec.json.decode(self.body)


Fetch = Callable[..., Awaitable[Reply]]


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def fetch(http: aiohttp.ClientSession) -> Fetch:
    """``await fetch(sim, shop="abc", page=2, ...)``: GET the endpoint, token ``TOKEN`` unless
    ``apiToken`` is given (``None`` drops a parameter)."""

    async def go(sim: SimulatedTmapi, shop: str | None = "abc", **params: Any) -> Reply:
        query: dict[str, str] = {"apiToken": TOKEN}
        if shop is not None:
            query["shop_url"] = shop if "://" in shop else sim.shop_url(shop)
        for key, value in params.items():
            if value is None:
                query.pop(key, None)
            else:
                query[key] = str(value)
        async with http.get(sim.endpoint, params=query) as resp:
            return Reply(resp.status, dict(resp.headers), await resp.read())

    return go
