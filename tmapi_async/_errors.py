"""The exception tree of tmapi-async.

Every exception the public API raises is a :class:`TmapiError`::

    TmapiError
    ├── InvalidParameterError (also ValueError)  bad argument or 422: permanent for the request
    ├── MaxPagesReached                          a shop has more pages than ``max_pages``
    ├── ShopTakenOver                            a journal refused a page: the shop is another's
    ├── FatalError                               stops the whole client: nothing more is sent
    │   ├── AuthenticationError                  401/403: token not authorised or expired
    │   ├── BalanceError                         439: subscription expired or balance spent
    │   ├── RequestBudgetExhausted               the client's own ``max_requests`` is spent
    │   └── HarvestStopped                       stopped on request (Ctrl-C, ``Harvest.stop()``)
    └── TransientError                           worth retrying, with backoff
        ├── RateLimitError                       429, or 503 "concurrency limit exceeded"
        ├── UpstreamError                        417, 499, 500, 502, 504 (and 503 without that text)
        ├── TransportError                       connection refused/reset, timeout
        └── DecodeError                          body not JSON or not the expected shape

The token is never part of a message: errors are built from the API's ``msg`` and
from messages the transport has already scrubbed.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BalanceError",
    "DecodeError",
    "FatalError",
    "HarvestStopped",
    "InvalidParameterError",
    "MaxPagesReached",
    "RateLimitError",
    "RequestBudgetExhausted",
    "ShopTakenOver",
    "TmapiError",
    "TransientError",
    "TransportError",
    "UpstreamError",
    "quote_input",
]


def quote_input(text: object, limit: int = 80) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters with its length said.

    A garbage line of megabytes must not be echoed whole: ``'abc…' (2000000
    characters)``. Short text is quoted as :func:`repr` would (control characters
    shown escaped); text that is no string is shown by its ``repr``, cut alike.
    """
    shown = text if isinstance(text, str) else repr(text)
    if len(shown) <= limit:
        return repr(shown) if isinstance(text, str) else shown
    cut = shown[:limit]  # cut before repr: repr of megabytes is megabytes
    return f"{cut!r}… ({len(shown)} characters)"


class TmapiError(Exception):
    """Base of every error tmapi-async raises.

    Attributes:
        code: the API's ``code`` (from the body, or the HTTP status) when known.
        status: the HTTP status when a response arrived.
        message: the API's ``msg`` or a description of what went wrong.
    """

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def __str__(self) -> str:
        if self.code is None:
            return self.message
        return f"{self.message} (code {self.code})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code}, status={self.status})"


class InvalidParameterError(TmapiError, ValueError):
    """A parameter was refused: by validation before sending, or by the API (422)."""


class MaxPagesReached(TmapiError):
    """A shop has more pages than ``max_pages``: the pages past it were not fetched.

    The shop ends ``"partial"`` with this error; a larger ``max_pages`` reads the rest.
    """


class ShopTakenOver(TmapiError):
    """A journal refused a page or a shop's end: the shop is no longer this harvest's
    to record (another worker took it over). The harvest drops the shop at once: its
    requests in flight end, nothing more is sent for it, no result is given for it."""


class FatalError(TmapiError):
    """An error after which the client sends nothing more with its token."""


class AuthenticationError(FatalError):
    """The token is missing, not authorised or expired (401/403)."""


class BalanceError(FatalError):
    """The subscription expired or the balance is spent (439)."""


class RequestBudgetExhausted(FatalError):
    """The client's ``max_requests`` budget is spent; a later run can go on."""


class TransientError(TmapiError):
    """A failure that may pass: retried with backoff.

    Attributes:
        retry_after: seconds the server asked to wait (``Retry-After``), if it did.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after


class RateLimitError(TransientError):
    """The token sent too many requests at once or per second (429, 503)."""


class UpstreamError(TransientError):
    """TMAPI or 1688 failed to produce the page this time (417, 499, 5xx)."""


class TransportError(TransientError):
    """No answer arrived: connection refused or reset, or the timeout passed."""


class DecodeError(TransientError):
    """The answer was not JSON, or not shaped like a shop-items page."""


class HarvestStopped(FatalError):
    """The harvest was stopped on request (``Harvest.stop()``, Ctrl-C); it can resume."""
