"""What Redis holds about one token, named by its fingerprint (never the token itself).

Keys (the braces keep them in one Redis Cluster slot):

- ``tmapi:token:{FP}`` (hash): ``rate``, ``burst``, ``concurrency``: the limits set
  (absent: the defaults of ``Limits``); ``limit``, ``ceiling`` (-1: no refusal yet),
  ``epoch``, ``probe_gap``, ``since_probe``: the adaptive in-flight limit; ``tat``: the
  rate's theoretical arrival time (GCRA, µs of Redis's clock); ``pause_until`` (µs): a
  ``Retry-After``; ``seq``: the last ticket issued.
- ``tmapi:token:{FP}:leases`` (sorted set): ``OWNER:TICKET`` of each request in flight,
  scored by the expiry of its lease (µs).
- ``tmapi:token:{FP}:fatal`` (hash, expires after ``FATAL_MEMORY``): ``kind``, ``code``,
  ``status``, ``message`` of the 401/403/439 that stopped the token.
- ``tmapi:tokens`` (set): the fingerprints of every token seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from .._errors import AuthenticationError, BalanceError, FatalError, InvalidParameterError

__all__ = [
    "FATAL_MEMORY",
    "SHARED_FATAL",
    "TOKENS_KEY",
    "TokenKeys",
    "check_arguments",
    "fatal_from",
    "number",
    "text",
    "token_clock",
]

FATAL_MEMORY: Final = 60.0  #: seconds a fatal answer keeps every process of the token stopped
TOKENS_KEY: Final = "tmapi:tokens"

#: Only these speak for the token; a spent budget or a stop is one process's business.
SHARED_FATAL: Final[dict[str, type[FatalError]]] = {
    "AuthenticationError": AuthenticationError,
    "BalanceError": BalanceError,
}


class TokenKeys:
    """The Redis keys of the token with fingerprint ``token_fingerprint``."""

    __slots__ = ("fatal", "fingerprint", "leases", "state")

    def __init__(self, token_fingerprint: str) -> None:
        self.fingerprint = token_fingerprint
        self.state = f"tmapi:token:{{{token_fingerprint}}}"
        self.leases = f"{self.state}:leases"
        self.fatal = f"{self.state}:fatal"


def text(value: bytes | str) -> str:
    """A Redis reply's string."""
    return value.decode() if isinstance(value, bytes) else value


def number(value: bytes | str | int | None, default: float) -> float:
    """A Redis reply's number, or ``default`` for a field not set."""
    return default if value is None else float(value)


def fatal_from(fields: Sequence[bytes | str | None]) -> FatalError:
    """The error recorded for the token: (kind, code, status, message)."""
    kind, code, status, message = (None if f is None else text(f) for f in fields)
    cls = SHARED_FATAL.get(kind or "", FatalError)
    return cls(
        message or "stopped by a fatal answer in another process",
        code=int(code) if code else None,
        status=int(status) if status else None,
    )


def check_arguments(lease: float, heartbeat: float, redis_outage: float) -> None:
    """Raise InvalidParameterError for a timing of a shared throttle out of its range (its
    limits are checked by :class:`~tmapi_async.Limits`)."""
    if not 0 < heartbeat < lease:
        raise InvalidParameterError(f"need 0 < heartbeat < lease, got {heartbeat!r}, {lease!r}")
    if not redis_outage >= 0:
        raise InvalidParameterError(f"redis_outage must be >= 0 seconds, got {redis_outage!r}")


def token_clock(state: dict[str, str], raw: int) -> float:
    """The token's clock (microseconds) at Redis's ``TIME`` ``raw``, from its state: the
    clock the throttle scripts keep (see ``lua/clock.lua``) moved on since, or ``raw``."""
    if "clock" not in state or "clock_raw" not in state:
        return float(raw)
    return float(state["clock"]) + max(0.0, raw - float(state["clock_raw"]))
