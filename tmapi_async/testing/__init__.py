"""A faithful, fast simulator of TMAPI's ``GET /1688/shop/items/v2`` for tests, demos and
benchmarks: run a crawler against it without spending money (like stripe-mock or moto).

::

    async with SimulatedTmapi(fault_rate=0.1, seed=7, shop_sizes={"xldjjg": 162}) as sim:
        ...  # point the client at sim.url; then look at sim.log
        expected = {i.item_id for i in shop_catalogue("xldjjg", 162)}

Shops are deterministic in their URL's name (``https://NAME.1688.com``) and live through days
(``day=N``: new listings, removals, price and sales moves). Each shop has a profile and a
category tree too (``/1688/shop/shop_info``, ``/1688/shop/category``: :func:`shop_profile`,
:func:`shop_category_tree`), under the same keys, limits and faults; tokens, quotas, concurrency and
rate limits, seeded faults, failing shops and listing drift are knobs of
:class:`SimulatorConfig`. Pytest fixtures: import them from
``tmapi_async.testing.pytest_plugin`` (or list it in a top-level ``pytest_plugins``).
Command line: ``python -m tmapi_async.testing --help``.
"""

from ._app import (
    ENDPOINT,
    SHOP_CATEGORY_ENDPOINT,
    SHOP_INFO_ENDPOINT,
    SIMULATOR_KEY,
    Simulator,
    create_app,
)
from ._catalogue import (
    SORTS,
    Category,
    Item,
    SaleInfo,
    shop_categories,
    shop_name_from_url,
)
from ._config import DEFAULT_FAULT_KINDS, SimulatorConfig, sizes_between
from ._days import DayChanges, shop_catalogue
from ._faults import DEFAULT_FAULT_CODES, ERROR_MESSAGES, FaultKind
from ._log import RequestLog, RequestRecord, fingerprint
from ._profiles import shop_category_tree, shop_profile
from ._server import SimulatedTmapi

__all__ = [
    "DEFAULT_FAULT_CODES",
    "DEFAULT_FAULT_KINDS",
    "ENDPOINT",
    "ERROR_MESSAGES",
    "SHOP_CATEGORY_ENDPOINT",
    "SHOP_INFO_ENDPOINT",
    "SIMULATOR_KEY",
    "SORTS",
    "Category",
    "DayChanges",
    "FaultKind",
    "Item",
    "RequestLog",
    "RequestRecord",
    "SaleInfo",
    "SimulatedTmapi",
    "Simulator",
    "SimulatorConfig",
    "create_app",
    "fingerprint",
    "shop_catalogue",
    "shop_categories",
    "shop_category_tree",
    "shop_name_from_url",
    "shop_profile",
    "sizes_between",
]
