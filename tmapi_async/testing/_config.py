"""All knobs of the simulator in one keyword-only dataclass."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from ._days import DayChanges
from ._faults import DEFAULT_FAULT_CODES, FaultKind
from ._log import RequestRecord

__all__ = ["AUTH_SCHEMES", "DEFAULT_FAULT_KINDS", "SimulatorConfig", "sizes_between"]

#: Which ways of sending a key the simulator accepts (``SimulatorConfig.auth``).
AUTH_SCHEMES: Final = ("both", "header", "query")

#: Every kind except HANG, whose long sleep would stall a client without a short timeout.
DEFAULT_FAULT_KINDS: Final[tuple[FaultKind, ...]] = tuple(
    k for k in FaultKind if k is not FaultKind.HANG
)


def sizes_between(low: int, high: int) -> Callable[[str], int]:
    """A ``size_fn`` giving each shop a size in ``[low, high]`` derived from its name."""
    if not 0 <= low <= high:
        raise ValueError(f"need 0 <= low <= high, got {low}..{high}")

    def size(name: str) -> int:
        h = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")
        return low + h % (high - low + 1)

    return size


@dataclass(kw_only=True)
class SimulatorConfig:
    """Configuration of a simulated TMAPI endpoint. Every knob has a harmless default: any
    non-empty token, 100 items per shop, no limits, no faults, no latency, no drift.

    Catalogue: a shop's size is ``shop_sizes[name]`` if given, else ``size_fn(name)`` if given,
    else ``default_shop_size`` (0 makes unknown shops empty). ``page_size_max`` silently caps
    ``page_size``.

    Accounts (per token): ``auth`` is how a key may come: ``"both"`` (default), only as
    the ``apikey`` header (``"header"``) or only as the ``apiToken`` query parameter
    (``"query"``); a key sent another way is answered as an unknown token is, with 401.
    ``tokens`` (``None`` = any non-empty token) else 401; ``quota``
    admitted requests (``quotas`` overrides per token) then 439; ``concurrency_limit`` requests
    in flight else 503; ``rate_limit`` admitted requests per rolling second else 429, with a
    ``Retry-After`` header (whole seconds until a slot frees) when ``retry_after``.

    Faults: each attempt of a valid request faults with probability ``fault_rate``, the kind
    drawn from ``fault_kinds`` and the code (STATUS/ENVELOPE) from ``fault_codes``, all decided
    by a hash of ``seed`` and the request. ``latency_ms`` is a uniform (low, high) range.
    ``hang_seconds`` is how long a HANG holds its answer.

    Drift: every ``drift_every``-th request to a shop (0 = never) is served after
    ``drift_items`` new items were put at the front of that shop's listing, at most
    ``drift_max`` in all.

    Days: ``day`` is the day the catalogues are on (0 = the plain catalogue). Each day adds
    ``new_per_day`` listings to every shop of at least ``day_min_size`` items (newest first
    under ``time_down``), removes ``gone_per_day`` and reprices ``repriced_per_day`` (their
    sales move too); see :mod:`tmapi_async.testing._days`. ``failing_shops`` maps a shop name
    to the first page that fails for good: every request for that page or a later one is
    answered with HTTP ``failing_code`` (1 = the whole shop fails).

    Plumbing: ``on_request`` is awaited for each admitted request (after its latency, before
    its answer) — tests gate it with an ``asyncio.Event`` to hold requests in flight; ``clock``
    stamps the log and drives the rate limit; ``page_cache_size`` encoded pages and
    ``catalogue_cache_size`` built shops are kept (least recently used evicted);
    ``log_max_records`` bounds the log (``None`` = unbounded).
    """

    default_shop_size: int = 100
    shop_sizes: Mapping[str, int] = field(default_factory=dict)
    size_fn: Callable[[str], int] | None = None
    page_size_max: int = 20

    auth: Literal["both", "header", "query"] = "both"
    tokens: Collection[str] | None = None
    quota: int | None = None
    quotas: Mapping[str, int] = field(default_factory=dict)
    concurrency_limit: int | None = None
    rate_limit: int | None = None
    retry_after: bool = False

    seed: int = 0
    fault_rate: float = 0.0
    fault_kinds: tuple[FaultKind, ...] = DEFAULT_FAULT_KINDS
    fault_codes: tuple[int, ...] = DEFAULT_FAULT_CODES
    latency_ms: tuple[float, float] = (0.0, 0.0)
    hang_seconds: float = 120.0

    drift_every: int = 0
    drift_items: int = 1
    drift_max: int = 20

    day: int = 0
    new_per_day: int = 7
    gone_per_day: int = 3
    repriced_per_day: int = 5
    day_min_size: int = 20
    failing_shops: Mapping[str, int] = field(default_factory=dict)
    failing_code: int = 500

    on_request: Callable[[RequestRecord], Awaitable[None]] | None = None
    clock: Callable[[], float] = time.monotonic
    page_cache_size: int = 4096
    catalogue_cache_size: int = 1024
    log_max_records: int | None = None

    def __post_init__(self) -> None:
        # Accept plain strings ("reset") for kinds, e.g. from a CLI or a parametrized test.
        self.fault_kinds = tuple(FaultKind(k) for k in self.fault_kinds)
        self.fault_codes = tuple(int(c) for c in self.fault_codes)
        self.latency_ms = (float(self.latency_ms[0]), float(self.latency_ms[1]))
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be in [0, 1], got {self.fault_rate}")
        if self.auth not in AUTH_SCHEMES:
            raise ValueError(f"auth must be one of {', '.join(AUTH_SCHEMES)}, got {self.auth!r}")
        if self.page_size_max < 1:
            raise ValueError("page_size_max must be >= 1")
        if self.default_shop_size < 0:
            raise ValueError("default_shop_size must be >= 0")
        if not 0 <= self.latency_ms[0] <= self.latency_ms[1]:
            raise ValueError(
                f"latency_ms must be (low, high) with 0 <= low <= high: {self.latency_ms}"
            )
        if self.drift_every < 0 or self.drift_items < 0 or self.drift_max < 0:
            raise ValueError("drift_every, drift_items and drift_max must be >= 0")
        if self.day < 0:
            raise ValueError(f"day must be >= 0, got {self.day}")
        self.day_changes()  # validates the counts
        if any(page < 1 for page in self.failing_shops.values()):
            raise ValueError("failing_shops pages must be >= 1")
        for name, limit in (
            ("quota", self.quota),
            ("concurrency_limit", self.concurrency_limit),
            ("rate_limit", self.rate_limit),
        ):
            if limit is not None and limit < 0:
                raise ValueError(f"{name} must be >= 0 or None")
        if self.tokens is not None:
            self.tokens = frozenset(self.tokens)

    def day_changes(self) -> DayChanges:
        """What each day does to a shop, from the ``*_per_day`` knobs."""
        return DayChanges(
            new=self.new_per_day,
            gone=self.gone_per_day,
            repriced=self.repriced_per_day,
            min_size=self.day_min_size,
        )

    def shop_size(self, name: str) -> int:
        """Number of base items of shop ``name`` under this configuration."""
        size = self.shop_sizes.get(name)
        if size is None:
            size = self.size_fn(name) if self.size_fn is not None else self.default_shop_size
        return max(0, size)
