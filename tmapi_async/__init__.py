"""tmapi-async: an asyncio bulk crawler for TMAPI's 1688 shop-items endpoint.

::

    import tmapi_async as tm

    async with tm.Client() as client:          # token from TMAPI_TOKEN
        shop = await client.fetch_shop("https://xldjjg.1688.com/")
        async for result in client.harvest(shop_urls):
            ...

Names are imported on first use (PEP 562), so that ``import tmapi_async`` and the
command line's ``--help`` do not pay for aiohttp and the rest until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._client import Client
    from ._diff import Change, Diff, DiffInputError, DiffSummary, diff
    from ._errors import (
        AuthenticationError,
        BalanceError,
        DecodeError,
        FatalError,
        HarvestStopped,
        InvalidParameterError,
        MaxPagesReached,
        RateLimitError,
        RequestBudgetExhausted,
        ShopTakenOver,
        TmapiError,
        TransientError,
        TransportError,
        UpstreamError,
    )
    from ._harvest import Harvest, PageEvent
    from ._journal import Journal
    from ._listing import Listing
    from ._metrics import Metrics
    from ._models import SaleInfo, ShopItem, ShopItemsPage, Sort, normalise_image_url
    from ._pool import TokenPool
    from ._protocol import ShopQuery, normalise_shop_url
    from ._redis.connection import RedisUnavailableError
    from ._retry import RetryPolicy
    from ._shop import ShopCheckpoint, ShopResult
    from ._shop_profile import Category, ShopCategories, ShopProfile, ShopRating
    from ._since import KnownItems
    from ._stats import HarvestProgress
    from ._throttle import Admission, Throttle

__version__ = "0.1.0"
"""The version of tmapi-async."""

#: Where each public name lives: its module is imported when the name is first used.
_SOURCES: dict[str, str] = {
    "Admission": "._throttle",
    "AuthenticationError": "._errors",
    "BalanceError": "._errors",
    "Category": "._shop_profile",
    "Change": "._diff",
    "Client": "._client",
    "DecodeError": "._errors",
    "Diff": "._diff",
    "DiffInputError": "._diff",
    "DiffSummary": "._diff",
    "FatalError": "._errors",
    "Harvest": "._harvest",
    "HarvestProgress": "._stats",
    "HarvestStopped": "._errors",
    "InvalidParameterError": "._errors",
    "MaxPagesReached": "._errors",
    "Metrics": "._metrics",
    "ShopTakenOver": "._errors",
    "Journal": "._journal",
    "KnownItems": "._since",
    "Listing": "._listing",
    "PageEvent": "._harvest",
    "RateLimitError": "._errors",
    "RedisUnavailableError": "._redis.connection",
    "RequestBudgetExhausted": "._errors",
    "RetryPolicy": "._retry",
    "SaleInfo": "._models",
    "ShopCheckpoint": "._shop",
    "ShopItem": "._models",
    "ShopItemsPage": "._models",
    "ShopQuery": "._protocol",
    "ShopCategories": "._shop_profile",
    "ShopProfile": "._shop_profile",
    "ShopRating": "._shop_profile",
    "ShopResult": "._shop",
    "Sort": "._models",
    "Throttle": "._throttle",
    "TmapiError": "._errors",
    "TokenPool": "._pool",
    "TransientError": "._errors",
    "TransportError": "._errors",
    "UpstreamError": "._errors",
    "diff": "._diff",
    "normalise_image_url": "._models",
    "normalise_shop_url": "._protocol",
}

__all__ = [
    "Admission",
    "AuthenticationError",
    "BalanceError",
    "Category",
    "Change",
    "Client",
    "DecodeError",
    "Diff",
    "DiffInputError",
    "DiffSummary",
    "FatalError",
    "Harvest",
    "HarvestProgress",
    "HarvestStopped",
    "InvalidParameterError",
    "Journal",
    "KnownItems",
    "Listing",
    "MaxPagesReached",
    "Metrics",
    "PageEvent",
    "RateLimitError",
    "RedisUnavailableError",
    "RequestBudgetExhausted",
    "RetryPolicy",
    "SaleInfo",
    "ShopCategories",
    "ShopCheckpoint",
    "ShopItem",
    "ShopItemsPage",
    "ShopProfile",
    "ShopQuery",
    "ShopRating",
    "ShopResult",
    "ShopTakenOver",
    "Sort",
    "Throttle",
    "TmapiError",
    "TokenPool",
    "TransientError",
    "TransportError",
    "UpstreamError",
    "__version__",
    "diff",
    "normalise_image_url",
    "normalise_shop_url",
]


def __getattr__(name: str) -> object:
    """Import a public name's module on first use, then keep the name here."""
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(source, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
