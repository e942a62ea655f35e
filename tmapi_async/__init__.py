"""tmapi-async: an asyncio bulk crawler for TMAPI's 1688 shop-items endpoint.

::

    import tmapi_async as tm

    async with tm.Client() as client:          # token from TMAPI_TOKEN
        shop = await client.fetch_shop("https://xldjjg.1688.com/")
        async for result in client.harvest(shop_urls):
            ...
"""

from ._client import Client
from ._errors import (
    AuthenticationError,
    BalanceError,
    DecodeError,
    FatalError,
    HarvestStopped,
    InvalidParameterError,
    RateLimitError,
    RequestBudgetExhausted,
    TmapiError,
    TransientError,
    TransportError,
    UpstreamError,
)
from ._harvest import Harvest, PageEvent
from ._journal import Journal
from ._models import SaleInfo, ShopItem, ShopItemsPage, Sort, normalise_image_url
from ._protocol import ShopQuery, normalise_shop_url
from ._retry import RetryPolicy
from ._shop import ShopCheckpoint, ShopResult
from ._stats import HarvestProgress
from ._throttle import Admission, Throttle

__version__ = "0.1.0"
"""The version of tmapi-async."""

__all__ = [
    "Admission",
    "AuthenticationError",
    "BalanceError",
    "Client",
    "DecodeError",
    "FatalError",
    "Harvest",
    "HarvestProgress",
    "HarvestStopped",
    "InvalidParameterError",
    "Journal",
    "PageEvent",
    "RateLimitError",
    "RequestBudgetExhausted",
    "RetryPolicy",
    "SaleInfo",
    "ShopCheckpoint",
    "ShopItem",
    "ShopItemsPage",
    "ShopQuery",
    "ShopResult",
    "Sort",
    "Throttle",
    "TmapiError",
    "TransientError",
    "TransportError",
    "UpstreamError",
    "__version__",
    "normalise_image_url",
    "normalise_shop_url",
]
