"""Seeded, reproducible fault decisions.

Every decision is a hash of (seed, request key, attempt number for that key) — never a shared
RNG consumed in arrival order — so concurrency cannot change which attempt of which page
faults, and a retry (the next attempt) is an independent draw.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from typing import Final, NamedTuple

__all__ = [
    "DEFAULT_FAULT_CODES",
    "ERROR_MESSAGES",
    "FaultKind",
    "decide_fault",
    "latency_seconds",
]


class FaultKind(enum.Enum):
    """A kind of injected fault (the value is the name used by ``--faults``).

    - ``STATUS``: HTTP status N (one of the fault codes), body
      ``{"code":N,"msg":...,"data":null}``.
    - ``ENVELOPE``: HTTP 200 with the same body: the error is only in ``code``.
    - ``TRUNCATED``: HTTP 200, ``application/json``, the real page body cut short.
    - ``HTML_502``: HTTP 502 with an nginx-style HTML page.
    - ``HTML_200``: HTTP 200 with an HTML page (a proxy/captcha page), ``text/html``.
    - ``RESET``: the connection is closed (RST) without any response.
    - ``HANG``: the response is held for ``hang_seconds`` (then the real page is sent).
    """

    STATUS = "status"
    ENVELOPE = "envelope"
    TRUNCATED = "truncated"
    HTML_502 = "html502"
    HTML_200 = "html200"
    RESET = "reset"
    HANG = "hang"


#: Transient codes the endpoint documents (417, 499, 500) plus the proxy ones (502-504).
DEFAULT_FAULT_CODES: Final[tuple[int, ...]] = (417, 499, 500, 502, 503, 504)

#: The ``msg`` the simulator uses for each code it can answer with.
ERROR_MESSAGES: Final[dict[int, str]] = {
    401: "Token is not authorized or has expired",
    417: "Failed to retrieve data, please try again",
    422: "Parameter error",
    429: "Too many requests, please slow down",
    439: "Subscription expired or insufficient balance",
    499: "Request timed out, please try again or set your request timeout to 60 seconds",
    500: "Unexpected error, please try again",
    502: "Bad gateway, please try again",
    503: "API request concurrency limit exceeded, please reduce concurrency",
    504: "Gateway timeout, please try again",
}

HTML_502_BODY: Final = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
HTML_200_BODY: Final = (
    b'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
    b"<title>Just a moment...</title></head><body><h1>Checking your browser</h1>"
    b"<p>Please enable JavaScript and cookies to continue.</p></body></html>"
)


class Fault(NamedTuple):
    """One decided fault: its kind, the code (for STATUS/ENVELOPE) and a fraction in [0,1)
    used to pick where a TRUNCATED body is cut."""

    kind: FaultKind
    code: int
    cut: float


def _draw(seed: int, key: object, attempt: int, purpose: str) -> bytes:
    data = f"{seed}\x1f{key!r}\x1f{attempt}\x1f{purpose}".encode()
    return hashlib.blake2b(data, digest_size=16).digest()


def decide_fault(
    seed: int,
    key: object,
    attempt: int,
    rate: float,
    kinds: Sequence[FaultKind],
    codes: Sequence[int],
) -> Fault | None:
    """The fault for this attempt of this request key, or ``None`` for a normal answer."""
    if rate <= 0.0 or not kinds:
        return None
    h = _draw(seed, key, attempt, "fault")
    if int.from_bytes(h[0:4], "big") / 2**32 >= rate:
        return None
    kind = kinds[int.from_bytes(h[4:8], "big") % len(kinds)]
    code = codes[int.from_bytes(h[8:12], "big") % len(codes)] if codes else 500
    return Fault(kind, code, int.from_bytes(h[12:16], "big") / 2**32)


def latency_seconds(seed: int, key: object, attempt: int, low_ms: float, high_ms: float) -> float:
    """Uniform latency in [low_ms, high_ms] milliseconds, as seconds, reproducible per attempt."""
    if high_ms <= low_ms:
        return max(low_ms, 0.0) / 1000.0
    u = int.from_bytes(_draw(seed, key, attempt, "latency")[:8], "big") / 2**64
    return (low_ms + (high_ms - low_ms) * u) / 1000.0
