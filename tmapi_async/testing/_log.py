"""The simulator's request log and the measurements tests make on it.

Tokens are secrets (a JWT in the query string): the log only ever holds a short fingerprint,
the library's own (:func:`fingerprint`), so a token's requests here and in a client's
summary carry the same name.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass

from .._secret import short_fingerprint as fingerprint

__all__ = ["RequestLog", "RequestRecord", "fingerprint"]


@dataclass(slots=True)
class RequestRecord:
    """One request as the simulator saw it.

    Times come from the simulator's clock (``time.monotonic`` unless configured).
    ``status`` is the HTTP status sent (0 when the connection was reset without a response);
    ``code`` is the envelope ``code`` (``None`` when the body is not a JSON envelope);
    ``outcome`` is one of ``ok``, ``unauthorized``, ``quota_exceeded``, ``rate_limited``,
    ``concurrency_limited``, ``bad_parameter``, ``failing_shop`` (a page of a shop in
    ``failing_shops``) or ``fault_<kind>`` (see :class:`FaultKind`).
    ``attempt`` numbers the requests with the same (shop, page, page_size, sort, cat, cat_type),
    from 1 (0 for a request rejected before its parameters were read). ``drift`` is the number of
    drift items the shop had when the page was served. ``auth`` is how the request sent
    its key: ``header`` (``apikey``), ``query`` (``apiToken``), ``both`` or ``none``.
    ``endpoint`` is the path asked: the shop-items endpoint, or the shop's profile
    (``/1688/shop/shop_info``) or categories (``/1688/shop/category``), whose records
    have no ``page``.
    """

    seq: int
    arrived: float
    token_fp: str
    departed: float | None = None
    shop: str | None = None
    page: int | None = None
    page_size: int | None = None
    sort: str | None = None
    cat: str | None = None
    cat_type: str | None = None
    attempt: int = 0
    status: int = 0
    code: int | None = None
    outcome: str = ""
    drift: int = 0
    auth: str = "none"
    endpoint: str = "/1688/shop/items/v2"


class RequestLog:
    """All requests seen since start or :meth:`reset`, with helpers for assertions.

    ``max_records`` bounds memory for long runs (oldest records are dropped, and the helpers
    then only see the retained ones); peak in-flight counts are tracked live and stay exact.
    """

    def __init__(self, max_records: int | None = None) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=max_records)
        self._seq = 0
        self._in_flight: Counter[str] = Counter()
        self._peak: Counter[str] = Counter()
        self._total_in_flight = 0
        self._total_peak = 0

    # -- recording (used by the app) -------------------------------------------------------
    def begin(self, arrived: float, token_fp: str, auth: str = "none") -> RequestRecord:
        """Record a request's arrival; it is in flight until :meth:`end`."""
        self._seq += 1
        rec = RequestRecord(seq=self._seq, arrived=arrived, token_fp=token_fp, auth=auth)
        self._records.append(rec)
        n = self._in_flight[token_fp] + 1
        self._in_flight[token_fp] = n
        if n > self._peak[token_fp]:
            self._peak[token_fp] = n
        self._total_in_flight += 1
        self._total_peak = max(self._total_peak, self._total_in_flight)
        return rec

    def end(self, rec: RequestRecord, departed: float) -> None:
        """Record a request's departure (response sent, connection reset or server closing)."""
        rec.departed = departed
        self._in_flight[rec.token_fp] -= 1
        self._total_in_flight -= 1

    def reset(self) -> None:
        """Forget all records and peaks (requests still in flight keep counting)."""
        self._records.clear()
        self._peak = Counter({k: v for k, v in self._in_flight.items() if v})
        self._total_peak = self._total_in_flight

    # -- reading -----------------------------------------------------------------------------
    @property
    def records(self) -> list[RequestRecord]:
        """A snapshot of the records, oldest first."""
        return list(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(list(self._records))

    def in_flight(self, token: str | None = None) -> int:
        """Requests being handled now, for ``token`` or (``None``) for all tokens."""
        if token is None:
            return self._total_in_flight
        return self._in_flight[fingerprint(token)]

    def peak_in_flight(self, token: str | None = None) -> int:
        """Most requests handled at the same time, for ``token`` or for all tokens."""
        if token is None:
            return self._total_peak
        return self._peak[fingerprint(token)]

    def peak_in_window(self, seconds: float, token: str | None = None) -> int:
        """Most request arrivals within any window ``[t, t + seconds)``."""
        fp = None if token is None else fingerprint(token)
        times = sorted(r.arrived for r in self._records if fp is None or r.token_fp == fp)
        best = lo = 0
        for hi, t in enumerate(times):
            while times[lo] <= t - seconds:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def count_by_outcome(self) -> Counter[str]:
        """Number of requests per ``outcome``."""
        return Counter(r.outcome for r in self._records)

    def count_by_auth(self) -> Counter[str]:
        """Number of requests per way the key was sent (``header``, ``query``...)."""
        return Counter(r.auth for r in self._records)

    def refused(self, token: str | None = None) -> int:
        """Requests answered 401 for their key (unknown, or sent a way not accepted),
        for ``token`` or for all tokens."""
        fp = None if token is None else fingerprint(token)
        return sum(
            1 for r in self._records if r.outcome == "unauthorized" and fp in (None, r.token_fp)
        )

    def count_by_endpoint(self, outcome: str | None = None) -> Counter[tuple[str, str | None]]:
        """Number of requests per (endpoint path, shop), of ``outcome`` if given."""
        return Counter((r.endpoint, r.shop) for r in self._records if outcome in (None, r.outcome))

    def count_by_status(self) -> Counter[int]:
        """Number of requests per HTTP status (0 = reset)."""
        return Counter(r.status for r in self._records)

    def per_page(self) -> Counter[tuple[str, int]]:
        """Number of requests per (shop, page), over requests with valid parameters."""
        return Counter(
            (r.shop, r.page) for r in self._records if r.shop is not None and r.page is not None
        )

    def requests_for(self, shop: str, page: int | None = None) -> list[RequestRecord]:
        """Records for shop ``shop`` (a name), optionally only for ``page``."""
        return [r for r in self._records if r.shop == shop and (page is None or r.page == page)]
