"""``Limits``: how fast one token may go, validated once; the defaults, written once.

Every throttle (the local :class:`~tmapi_async.Throttle`, the Redis one), every client
and pool, and the coordinator of a harvest through Redis take one ``Limits``. A field
left ``None`` is *not set*: a throttle then uses the default below, and a limit shared
through Redis stays as Redis holds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from ._errors import InvalidParameterError

__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_RATE", "Limits", "choose_limits", "default_burst"]

DEFAULT_RATE: Final = 10.0  #: requests per second of a token whose rate is not set
DEFAULT_CONCURRENCY: Final = 8  #: requests in flight at most of a token whose limit is not set


def default_burst(rate: float) -> int:
    """About 1/20 s worth of requests, at least one: smooth, yet fast at high rates."""
    return max(1, round(rate / 20))


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """How fast one token may go; ``None`` means not set (see the module docstring).

    Attributes:
        rate: requests per second, sustained (default ``DEFAULT_RATE``, 10).
        burst: requests that may leave at once after idle (default about rate/20,
            at least 1).
        concurrency: the most requests in flight at once (default
            ``DEFAULT_CONCURRENCY``, 8); the adaptive limit never exceeds it.
        max_requests: a budget of requests (each is billed); None for no budget.

    Raises:
        InvalidParameterError: a field out of its range (the message names it); it is
            a ``ValueError`` too.
    """

    rate: float | None = None
    burst: int | None = None
    concurrency: int | None = None
    max_requests: int | None = None

    def __post_init__(self) -> None:
        rate = self.rate
        if rate is not None and (
            isinstance(rate, bool)
            or not isinstance(rate, int | float)
            or not rate > 0
            or math.isinf(rate)
        ):
            raise InvalidParameterError(
                f"rate must be a positive number of requests/s, got {rate!r}"
            )
        for name, least in (("burst", 1), ("concurrency", 1), ("max_requests", 0)):
            value = getattr(self, name)
            if value is not None and not (_whole(value) and value >= least):
                raise InvalidParameterError(f"{name} must be >= {least}, got {value!r}")

    @property
    def rate_or_default(self) -> float:
        """The rate, or ``DEFAULT_RATE`` when it is not set."""
        return DEFAULT_RATE if self.rate is None else float(self.rate)

    @property
    def burst_or_default(self) -> int:
        """The burst, or the default burst of :attr:`rate_or_default` when it is not set."""
        return default_burst(self.rate_or_default) if self.burst is None else self.burst

    @property
    def concurrency_or_default(self) -> int:
        """The in-flight limit, or ``DEFAULT_CONCURRENCY`` when it is not set."""
        return DEFAULT_CONCURRENCY if self.concurrency is None else self.concurrency

    def without_budget(self) -> Limits:
        """These limits with ``max_requests`` not set: what one token of a pool, or a
        token shared through Redis, is given (the budget is counted elsewhere)."""
        return Limits(rate=self.rate, burst=self.burst, concurrency=self.concurrency)


def choose_limits(
    limits: Limits | None,
    *,
    rate: float | None = None,
    burst: int | None = None,
    concurrency: int | None = None,
    max_requests: int | None = None,
) -> Limits:
    """``limits``, or the keywords given in its place (the shorthand), validated once.

    Raises:
        InvalidParameterError: both were given, or a limit is out of range.
    """
    shorthand = Limits(rate=rate, burst=burst, concurrency=concurrency, max_requests=max_requests)
    if limits is None:
        return shorthand
    if not isinstance(limits, Limits):
        raise InvalidParameterError(f"limits must be a tm.Limits, got {limits!r}")
    if shorthand != Limits():
        raise InvalidParameterError(
            "give limits=Limits(...) or rate, burst, concurrency and max_requests, not both"
        )
    return limits
