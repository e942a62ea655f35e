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
    from ._client import Client as Client
    from ._diff import Change as Change
    from ._diff import Diff as Diff
    from ._diff import DiffSummary as DiffSummary
    from ._diff import diff as diff
    from ._errors import AuthenticationError as AuthenticationError
    from ._errors import BalanceError as BalanceError
    from ._errors import DecodeError as DecodeError
    from ._errors import DiffInputError as DiffInputError
    from ._errors import ExportError as ExportError
    from ._errors import FatalError as FatalError
    from ._errors import HarvestStopped as HarvestStopped
    from ._errors import InvalidParameterError as InvalidParameterError
    from ._errors import MaxPagesReached as MaxPagesReached
    from ._errors import RateLimitError as RateLimitError
    from ._errors import RedisUnavailableError as RedisUnavailableError
    from ._errors import RequestBudgetExhausted as RequestBudgetExhausted
    from ._errors import ShopTakenOver as ShopTakenOver
    from ._errors import TmapiError as TmapiError
    from ._errors import TransientError as TransientError
    from ._errors import TransportError as TransportError
    from ._errors import UpstreamError as UpstreamError
    from ._harvest import Fetched as Fetched
    from ._harvest import Harvest as Harvest
    from ._harvest import PageEvent as PageEvent
    from ._harvest import PageSource as PageSource
    from ._journal import Journal as Journal
    from ._limits import Limits as Limits
    from ._listing import Listing as Listing
    from ._listing import Sort as Sort
    from ._metrics import Metrics as Metrics
    from ._models import SaleInfo as SaleInfo
    from ._models import ShopItem as ShopItem
    from ._models import ShopItemsPage as ShopItemsPage
    from ._models import normalise_image_url as normalise_image_url
    from ._new_listings import KnownItems as KnownItems
    from ._pool import TokenPool as TokenPool
    from ._pool import TokenUsage as TokenUsage
    from ._progress import HarvestProgress as HarvestProgress
    from ._protocol import ShopQuery as ShopQuery
    from ._protocol import normalise_shop_url as normalise_shop_url
    from ._reader import ShopReader as ShopReader
    from ._retry import RetryPolicy as RetryPolicy
    from ._shop import ShopCheckpoint as ShopCheckpoint
    from ._shop import ShopResult as ShopResult
    from ._shop_profile import Category as Category
    from ._shop_profile import ShopCategories as ShopCategories
    from ._shop_profile import ShopProfile as ShopProfile
    from ._shop_profile import ShopRating as ShopRating
    from ._throttle import Admission as Admission
    from ._throttle import Throttle as Throttle
    from ._transport import Answer as Answer
    from ._transport import MockTransport as MockTransport
    from ._transport import Transport as Transport

__version__: str
"""The version of tmapi-async (from the installed package's metadata)."""

#: The public names, each by the module it is imported from on first use: the one list
#: of them. ``__all__`` is derived from it (and, for the reference, by
#: docs/griffe_lazy_exports.py); a test keeps the imports above equal to it.
_SOURCES: dict[str, str] = {
    "Admission": "._throttle",
    "Answer": "._transport",
    "AuthenticationError": "._errors",
    "BalanceError": "._errors",
    "Category": "._shop_profile",
    "Change": "._diff",
    "Client": "._client",
    "DecodeError": "._errors",
    "Diff": "._diff",
    "DiffInputError": "._errors",
    "DiffSummary": "._diff",
    "ExportError": "._errors",
    "FatalError": "._errors",
    "Fetched": "._harvest",
    "Harvest": "._harvest",
    "HarvestProgress": "._progress",
    "HarvestStopped": "._errors",
    "InvalidParameterError": "._errors",
    "Journal": "._journal",
    "KnownItems": "._new_listings",
    "Limits": "._limits",
    "Listing": "._listing",
    "MaxPagesReached": "._errors",
    "Metrics": "._metrics",
    "MockTransport": "._transport",
    "PageEvent": "._harvest",
    "PageSource": "._harvest",
    "RateLimitError": "._errors",
    "RedisUnavailableError": "._errors",
    "RequestBudgetExhausted": "._errors",
    "RetryPolicy": "._retry",
    "SaleInfo": "._models",
    "ShopCategories": "._shop_profile",
    "ShopCheckpoint": "._shop",
    "ShopItem": "._models",
    "ShopItemsPage": "._models",
    "ShopProfile": "._shop_profile",
    "ShopQuery": "._protocol",
    "ShopRating": "._shop_profile",
    "ShopReader": "._reader",
    "ShopResult": "._shop",
    "ShopTakenOver": "._errors",
    "Sort": "._listing",
    "Throttle": "._throttle",
    "TmapiError": "._errors",
    "TokenPool": "._pool",
    "TokenUsage": "._pool",
    "TransientError": "._errors",
    "Transport": "._transport",
    "TransportError": "._errors",
    "UpstreamError": "._errors",
    "diff": "._diff",
    "normalise_image_url": "._models",
    "normalise_shop_url": "._protocol",
}

__all__ = sorted([*_SOURCES, "__version__"])


def __getattr__(name: str) -> object:
    """Import a public name's module on first use, then keep the name here."""
    source = _SOURCES.get(name)
    if name == "__version__":
        value: object = _version()
    elif source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    else:
        value = getattr(importlib.import_module(source, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tmapi-async")
    except PackageNotFoundError:  # a checkout used without being installed
        return "0+unknown"
