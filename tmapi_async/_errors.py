"""The exception tree of tmapi-async.

Every exception the public API raises is a :class:`TmapiError`::

    TmapiError
    ├── InvalidParameterError (also ValueError)  bad argument or 422: permanent for the request
    ├── MaxPagesReached                          a shop has more pages than ``max_pages``
    ├── ShopTakenOver                            a journal refused a page: the shop is another's
    ├── ExportError                              an export or a file beside it cannot be used
    │   ├── SinkError                            the export cannot be opened or written
    │   ├── JournalError                         the state file is not this harvest's
    │   ├── ExportReadError                      an export cannot be read back
    │   ├── ManifestError                        a manifest exists but cannot be read
    │   └── DiffInputError                       an input of ``diff`` cannot be read
    ├── HarvestGone                              Redis holds no record of the harvest
    ├── HarvestNotFound (also ValueError)        no harvest in Redis, or several, has that id
    ├── CorruptRecord (also ValueError)          a harvest's record in Redis is not one a run wrote
    ├── FatalError                               stops the whole client: nothing more is sent
    │   ├── AuthenticationError                  401/403: token not authorised or expired
    │   ├── BalanceError                         439: subscription expired or balance spent
    │   ├── RequestBudgetExhausted               the client's own ``max_requests`` is spent
    │   ├── HarvestStopped                       stopped on request (Ctrl-C, ``Harvest.stop()``)
    │   ├── RedisUnavailableError                Redis cannot be reached (never a silent fall-back)
    │   ├── RedisHarvestError                    the harvest cannot go on through Redis as asked
    │   └── HarvestEnded                         cancelled, forgotten or failed in Redis meanwhile
    └── TransientError                           worth retrying, with backoff
        ├── RateLimitError                       429, or 503 "concurrency limit exceeded"
        ├── UpstreamError                        417, 499, 500, 502, 504 (and 503 without that text)
        ├── TransportError                       connection refused/reset, timeout
        └── DecodeError                          body not JSON or not the expected shape

The token is never part of a message: errors are built from the API's ``msg`` and
from messages the transport has already scrubbed. A shop's error crosses Redis (from
a worker to the coordinator) as a record of its class name and fields
(:func:`error_record`) and comes back as the same public class
(:func:`error_from_record`).
"""

from __future__ import annotations

import json

__all__ = [
    "AuthenticationError",
    "BalanceError",
    "CorruptRecord",
    "DecodeError",
    "DiffInputError",
    "ExportError",
    "ExportReadError",
    "FatalError",
    "HarvestEnded",
    "HarvestGone",
    "HarvestNotFound",
    "HarvestStopped",
    "InvalidParameterError",
    "JournalError",
    "ManifestError",
    "MaxPagesReached",
    "RateLimitError",
    "RedisHarvestError",
    "RedisUnavailableError",
    "RequestBudgetExhausted",
    "ShopTakenOver",
    "SinkError",
    "TmapiError",
    "TransientError",
    "TransportError",
    "UpstreamError",
    "error_from_record",
    "error_record",
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


# -- exports and the files beside them ----------------------------------------------------


class ExportError(TmapiError):
    """An export, its state file or manifest, or an input of a diff cannot be used (a
    message for the user, naming the file)."""


class SinkError(ExportError):
    """The export cannot be opened or written as asked (a message for the user)."""


class JournalError(ExportError):
    """The state file cannot be used for this harvest (a message for the user)."""


class ExportReadError(ExportError):
    """An export cannot be read: missing, of an unknown format, or malformed (a message for
    the user, naming the file and, where it helps, the line)."""


class ManifestError(ExportError):
    """A manifest exists but cannot be read (a message for the user)."""


class DiffInputError(ExportError):
    """An export or a manifest given to :func:`~tmapi_async.diff` cannot be read (a message
    for the user)."""


# -- harvests through Redis ---------------------------------------------------------------


class RedisUnavailableError(FatalError):
    """Redis could not be reached, refused us, or redis-py is not installed.

    Nothing more is admitted: limits shared through Redis are never replaced by
    limits of this process alone. The message names the URL without its password.
    """


class RedisHarvestError(FatalError):
    """The harvest cannot go on through Redis as asked (say, other listing options)."""


class HarvestEnded(FatalError):
    """An operator ended the harvest under its coordinator (``cancel``, ``forget``), or
    the workers failed it: the coordinator stops; a rerun of the same command goes on."""


class HarvestGone(TmapiError):
    """The harvest has no record in Redis: it was forgotten or expired, or Redis came
    back without its data. Nothing of it is recreated behind the coordinator's back."""


class HarvestNotFound(TmapiError, ValueError):
    """No harvest, or several, answer to the id (or prefix) given."""


class CorruptRecord(TmapiError, ValueError):
    """A harvest's record cannot be read (its parameters are not what a run wrote)."""


# -- an error as a record -----------------------------------------------------------------

#: The public classes by name (every class of this module): what a record may name,
#: and all it can rebuild.
_PUBLIC: dict[str, type[TmapiError]] = {
    name: value
    for name, value in list(globals().items())
    if isinstance(value, type) and issubclass(value, TmapiError)
}


def error_record(error: BaseException) -> str:
    """``error`` as one line of JSON: its nearest public class by name, its message, code
    and status (and ``retry_after``). :func:`error_from_record` rebuilds it.

    A foreign exception is recorded as a :class:`TmapiError` with its text.
    """
    kind = next((c.__name__ for c in type(error).__mro__ if _PUBLIC.get(c.__name__) is c), None)
    if kind is None or not isinstance(error, TmapiError):
        return json.dumps({"kind": "TmapiError", "message": str(error) or type(error).__name__})
    record: dict[str, object] = {"kind": kind, "message": error.message}
    if error.code is not None:
        record["code"] = error.code
    if error.status is not None:
        record["status"] = error.status
    if isinstance(error, TransientError) and error.retry_after is not None:
        record["retry_after"] = error.retry_after
    return json.dumps(record, ensure_ascii=False)


def error_from_record(record: str) -> TmapiError:
    """The error :func:`error_record` wrote, of the same public class; text that is no
    such record (an older writer's plain message) becomes a :class:`TmapiError` of it."""
    fields: object = None
    if record.startswith("{"):
        try:
            fields = json.loads(record)
        except ValueError:
            fields = None
    if not isinstance(fields, dict) or not isinstance(fields.get("message"), str):
        return TmapiError(record)
    cls = _PUBLIC.get(str(fields.get("kind")), TmapiError)
    code, status = _whole(fields.get("code")), _whole(fields.get("status"))
    if issubclass(cls, TransientError):
        after = fields.get("retry_after")
        retry_after = float(after) if isinstance(after, int | float) else None
        return cls(fields["message"], code=code, status=status, retry_after=retry_after)
    return cls(fields["message"], code=code, status=status)


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
