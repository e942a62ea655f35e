"""Fixtures of the command-line tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from clishops import SIZES

from tmapi_async.testing import SimulatedTmapi


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[SimulatedTmapi]:
    """A simulator with shops of the sizes in SIZES (pages of 20)."""
    async with SimulatedTmapi(shop_sizes=SIZES, default_shop_size=0) as server:
        yield server
