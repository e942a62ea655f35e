"""Pytest fixtures for the TMAPI simulator.

Load with ``pytest_plugins = ["tmapi_async.testing.pytest_plugin"]`` in the rootdir's
conftest.py (pytest refuses ``pytest_plugins`` in nested ones), or import the fixtures by name
into any conftest.py: ``from tmapi_async.testing.pytest_plugin import tmapi_sim, ...``.

- ``tmapi_sim_config``: the :class:`SimulatorConfig` used by ``tmapi_sim`` (override this
  fixture in a module or conftest to configure it).
- ``tmapi_sim``: a started :class:`SimulatedTmapi` on an ephemeral loopback port, closed after
  the test.
- ``tmapi_sim_factory``: ``await tmapi_sim_factory(config=None, **knobs)`` starts another
  simulator; all of them are closed after the test.
- ``tmapi_token``: a token the default simulator accepts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol

import pytest
import pytest_asyncio

from ._config import SimulatorConfig
from ._server import SimulatedTmapi

__all__ = ["SimulatorFactory", "tmapi_sim", "tmapi_sim_config", "tmapi_sim_factory", "tmapi_token"]


class SimulatorFactory(Protocol):
    """Type of the ``tmapi_sim_factory`` fixture."""

    def __call__(
        self, config: SimulatorConfig | None = None, /, **knobs: Any
    ) -> Awaitable[SimulatedTmapi]: ...


@pytest.fixture
def tmapi_token() -> str:
    """A token the default simulator accepts (any non-empty token is accepted by default)."""
    return "sim-test-token"


@pytest.fixture
def tmapi_sim_config() -> SimulatorConfig:
    """Configuration of ``tmapi_sim``; override to change it."""
    return SimulatorConfig()


@pytest_asyncio.fixture
async def tmapi_sim(tmapi_sim_config: SimulatorConfig) -> AsyncIterator[SimulatedTmapi]:
    """A started simulator on ``127.0.0.1`` with an ephemeral port."""
    async with SimulatedTmapi(tmapi_sim_config) as sim:
        yield sim


@pytest_asyncio.fixture
async def tmapi_sim_factory() -> AsyncIterator[SimulatorFactory]:
    """Start extra simulators: ``sim = await tmapi_sim_factory(fault_rate=0.2)``."""
    started: list[SimulatedTmapi] = []

    async def factory(config: SimulatorConfig | None = None, /, **knobs: Any) -> SimulatedTmapi:
        sim = await SimulatedTmapi(config, **knobs).start()
        started.append(sim)
        return sim

    yield factory
    for sim in reversed(started):
        await sim.close()
