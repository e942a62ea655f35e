"""The pytest fixtures of ``tmapi_async.testing.pytest_plugin``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tmapi_async.testing import SimulatedTmapi, SimulatorConfig
from tmapi_async.testing.pytest_plugin import SimulatorFactory

Fetch = Callable[..., Awaitable[Any]]  # the ``fetch`` fixture of conftest.py


@pytest.fixture
def tmapi_sim_config() -> SimulatorConfig:
    """Overriding this fixture configures ``tmapi_sim`` for this module."""
    return SimulatorConfig(shop_sizes={"tiny": 3})


async def test_tmapi_sim_fixture_is_started_and_configurable(
    tmapi_sim: SimulatedTmapi, fetch: Fetch, tmapi_token: str
) -> None:
    """The tmapi_sim fixture is a running simulator on loopback with the fixture's shops and
    token."""
    assert tmapi_sim.url.startswith("http://127.0.0.1:")
    r = await fetch(tmapi_sim, "tiny", apiToken=tmapi_token)
    assert r.json["data"]["total_count"] == 3
    assert len(tmapi_sim.log) == 1


async def test_factory_starts_independent_simulators(
    tmapi_sim_factory: SimulatorFactory, fetch: Fetch
) -> None:
    """tmapi_sim_factory starts simulators with their own ports, settings, quotas and logs."""
    a = await tmapi_sim_factory(default_shop_size=5)
    b = await tmapi_sim_factory(SimulatorConfig(default_shop_size=7), quota=1)
    assert a.port != b.port
    assert (await fetch(a, "x")).json["data"]["total_count"] == 5
    assert (await fetch(b, "x")).json["data"]["total_count"] == 7
    assert (await fetch(b, "x")).status == 439
    assert len(a.log) == 1


def test_non_loopback_host_is_refused() -> None:
    """A simulator on a host other than loopback is refused."""
    with pytest.raises(ValueError, match="loopback"):
        SimulatedTmapi(host="0.0.0.0")


async def test_restart_after_close_keeps_latency(fetch: Fetch) -> None:
    """A simulator closed and started again keeps its configured latency."""
    sim = SimulatedTmapi(latency_ms=(30, 30))
    await sim.start()
    await sim.close()
    async with sim:
        started = asyncio.get_running_loop().time()
        assert (await fetch(sim, "abc")).status == 200
        assert asyncio.get_running_loop().time() - started >= 0.03
