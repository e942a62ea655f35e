"""``Metrics``: Prometheus metrics of clients and their harvests.

The one module that knows prometheus_client (the ``metrics`` extra), and it imports it
only when a :class:`Metrics` is built: without the extra nothing changes.

What a request costs stays small: a client gets its token's plain counters once
(:class:`TokenInstruments`), so the success path adds one to an int and counts two
durations into their buckets, with no lock and no label lookup. Everything else --
requests billed, retries, requests in flight, the adaptive in-flight limit, pages,
items, shops -- is read from the live counters the clients and harvests keep anyway,
when ``/metrics`` is scraped.

Labels are closed sets: a token by its short fingerprint, an outcome, a shop status,
a harvest id. Never a shop URL, an item id or a token.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from ._errors import (
    AuthenticationError,
    BalanceError,
    DecodeError,
    FatalError,
    InvalidParameterError,
    RateLimitError,
    TransportError,
)

if TYPE_CHECKING:
    from ._progress import HarvestProgress
    from ._throttle import Admission

__all__ = ["MISSING", "OUTCOMES", "Metrics", "TokenInstruments", "outcome_of"]

MISSING = "metrics need prometheus_client: pip install 'tmapi-async[metrics]'"

#: The ``outcome`` label of ``tmapi_requests_total``: how a request sent was answered.
OUTCOMES = (
    "ok",  # a page
    "rate_limited",  # 429, or 503 "concurrency limit exceeded"
    "upstream",  # 417, 499, 5xx: the API failed, worth retrying
    "invalid",  # 422 and other answers that refuse the request for good
    "fatal",  # 401/403 authentication, 439 balance
    "timeout",  # no answer within the timeout
    "transport",  # connection refused, reset or cut
    "decode",  # an answer that is not a page
)

#: Seconds: from a fast local answer to TMAPI's advised timeout.
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_WAIT_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60)


def outcome_of(error: BaseException) -> str:
    """The ``outcome`` label of a request that raised ``error``."""
    if isinstance(error, RateLimitError):
        return "rate_limited"
    if isinstance(error, TransportError):
        return "timeout" if isinstance(error.__cause__, TimeoutError) else "transport"
    if isinstance(error, DecodeError):
        return "decode"
    if isinstance(error, FatalError):
        return "fatal"
    if isinstance(error, InvalidParameterError):
        return "invalid"
    return "upstream"


class _Histogram:
    """Counts of observations by bucket, and their sum: a histogram kept in plain ints,
    exposed by the collector (no lock, no label lookup on the hot path)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus' buckets: ``(le, observations <= le)``, ending with ``+Inf``."""
        running, out = 0, list[tuple[str, float]]()
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == math.inf else repr(float(bound)), running))
        return out


class TokenInstruments:
    """What each request of one token records, in plain numbers read when scraped."""

    __slots__ = ("admission_wait", "duration", "ok", "others")

    def __init__(self) -> None:
        self.ok = 0  #: requests answered with a page
        self.others = dict.fromkeys(OUTCOMES[1:], 0)  #: requests by other outcome
        self.duration = _Histogram(_DURATION_BUCKETS)  #: seconds on the wire
        self.admission_wait = _Histogram(_WAIT_BUCKETS)  #: seconds waiting to be sent

    def failed(self, error: BaseException) -> None:
        """Count a request answered (or not) with ``error``."""
        self.others[outcome_of(error)] += 1


class _Retries(Protocol):
    @property
    def retries(self) -> int: ...


_Samples = Callable[[], Iterable[tuple[tuple[str, ...], float]]]

_HARVEST_FIELDS = ("pages_done", "items", "shops_complete", "shops_partial", "shops_failed")


class Metrics:
    """The Prometheus metrics of one or more clients, on a registry of their own.

    ``registry`` defaults to a new :class:`prometheus_client.CollectorRegistry`, never the
    global one: pass ``prometheus_client.REGISTRY`` (or any registry) to put them there.
    Give it to :class:`~tmapi_async.Client` or :class:`~tmapi_async.TokenPool`
    (``metrics=``); each harvest of such a client counts its pages, items and shops.
    One ``Metrics`` serves any number of clients; two on different registries are
    independent. Read them with :meth:`exposition` (the body of ``/metrics``).

    Raises:
        ImportError: prometheus_client is not installed (the ``metrics`` extra).
    """

    def __init__(self, registry: Any = None) -> None:
        try:
            import prometheus_client as prom
            from prometheus_client import core
        except ImportError:
            raise ImportError(MISSING) from None
        self._prom = prom
        self._core = core
        self.registry: Any = prom.CollectorRegistry() if registry is None else registry
        self._clients: list[tuple[str, Admission, _Retries]] = []
        self._tokens: dict[str, TokenInstruments] = {}
        self._closed: dict[str, list[int]] = {}  # requests billed, retries of closed clients
        self._harvests: dict[int, HarvestProgress] = {}
        self._finished = dict.fromkeys(_HARVEST_FIELDS, 0)
        self._gauges: list[tuple[str, str, tuple[str, ...], _Samples]] = []
        self._refreshers: list[Callable[[], Awaitable[None]]] = []
        self.registry.register(_Collector(self))

    def __repr__(self) -> str:
        return f"Metrics(clients={len(self._clients)}, harvests={len(self._harvests)})"

    # -- what clients and harvests report ----------------------------------------------

    def instruments(
        self, token_fingerprint: str, throttle: Admission, requests: _Retries
    ) -> TokenInstruments:
        """Register a client of one token; what its requests record (shared by the
        clients of one token)."""
        self._clients.append((token_fingerprint, throttle, requests))
        return self._tokens.setdefault(token_fingerprint, TokenInstruments())

    def release(self, throttle: Admission) -> None:
        """A client closed: keep its counts, forget the client."""
        for entry in self._clients:
            fp, gate, requests = entry
            if gate is throttle:
                self._clients.remove(entry)
                kept = self._closed.setdefault(fp, [0, 0])
                kept[0] += gate.sent
                kept[1] += requests.retries
                return

    def watch(self, progress: HarvestProgress) -> None:
        """Count a running harvest's pages, items and shops (read when scraped)."""
        self._harvests[id(progress)] = progress

    def finished(self, progress: HarvestProgress) -> None:
        """A harvest ended: keep its counts, forget the harvest."""
        if self._harvests.pop(id(progress), None) is not None:
            for name in _HARVEST_FIELDS:
                self._finished[name] += getattr(progress, name)

    def add_gauges(
        self, name: str, documentation: str, labels: Iterable[str], samples: _Samples
    ) -> None:
        """A gauge family read when scraped: ``samples()`` gives (label values, value)."""
        self._gauges.append((name, documentation, tuple(labels), samples))

    def add_refresher(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """An async step run before each :meth:`refresh` scrape (e.g. reading Redis)."""
        self._refreshers.append(refresh)

    # -- reading -----------------------------------------------------------------------

    async def refresh(self) -> None:
        """Run the refreshers (state read over the network), before an exposition."""
        for refresh in self._refreshers:
            await refresh()

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format: the body of ``/metrics``."""
        body: bytes = self._prom.generate_latest(self.registry)
        return body

    @property
    def content_type(self) -> str:
        """The content type of :meth:`exposition`."""
        return str(self._prom.CONTENT_TYPE_LATEST)

    def harvest_totals(self) -> dict[str, int]:
        """Pages, items and shops by status of every harvest counted, finished or not."""
        totals = dict(self._finished)
        for progress in self._harvests.values():
            for name in _HARVEST_FIELDS:
                totals[name] += getattr(progress, name)
        return totals

    def _families(self) -> Iterator[Any]:
        core = self._core
        by_token: dict[str, list[int]] = {
            fp: [sent, retries, 0, 0, 0] for fp, (sent, retries) in self._closed.items()
        }
        for fp, throttle, requests in self._clients:
            row = by_token.setdefault(fp, [0, 0, 0, 0, 0])
            row[0] += throttle.sent
            row[1] += requests.retries
            row[2] += throttle.in_flight
            row[3] += throttle.limit
            row[4] = max(row[4], isinstance(throttle.fatal, AuthenticationError | BalanceError))
        families = [
            (core.CounterMetricFamily, "tmapi_requests_billed", "Requests sent (each billed).", 0),
            (core.CounterMetricFamily, "tmapi_retries", "Requests that retried a failed one.", 1),
            (core.GaugeMetricFamily, "tmapi_requests_in_flight", "Requests on the wire now.", 2),
            (core.GaugeMetricFamily, "tmapi_inflight_limit", "The adaptive in-flight limit.", 3),
            (core.GaugeMetricFamily, "tmapi_token_retired", "1 once the API refused it.", 4),
        ]
        for kind, name, doc, column in families:
            family = kind(name, doc, labels=["token"])
            for fp, row in by_token.items():
                family.add_metric([fp], row[column])
            yield family
        yield from self._request_families()
        totals = self.harvest_totals()
        for name, field, doc in (
            ("tmapi_pages", "pages_done", "Pages answered and recorded."),
            ("tmapi_items", "items", "New items harvested (exported)."),
        ):
            yield core.CounterMetricFamily(name, doc, value=totals[field])
        shops = core.CounterMetricFamily(
            "tmapi_shops", "Shops finished, by status.", labels=["status"]
        )
        for status in ("complete", "partial", "failed"):
            shops.add_metric([status], totals[f"shops_{status}"])
        yield shops
        for name, doc, labels, samples in self._gauges:
            gauge = core.GaugeMetricFamily(name, doc, labels=list(labels))
            for values, value in samples():
                gauge.add_metric(list(values), value)
            yield gauge

    def _request_families(self) -> Iterator[Any]:
        core = self._core
        requests = core.CounterMetricFamily(
            "tmapi_requests",
            "Requests sent, by token fingerprint and outcome (each is billed).",
            labels=["token", "outcome"],
        )
        duration = core.HistogramMetricFamily(
            "tmapi_request_duration_seconds",
            "Seconds from sending a request to the last byte of its answer.",
            labels=["token"],
        )
        wait = core.HistogramMetricFamily(
            "tmapi_admission_wait_seconds",
            "Seconds a request waited for the throttle (in-flight slot, pause, bucket).",
            labels=["token"],
        )
        for fp, kept in self._tokens.items():
            requests.add_metric([fp, "ok"], kept.ok)
            for outcome, count in kept.others.items():
                requests.add_metric([fp, outcome], count)
            for family, histogram in ((duration, kept.duration), (wait, kept.admission_wait)):
                family.add_metric([fp], buckets=histogram.cumulative(), sum_value=histogram.sum)
        yield from (requests, duration, wait)


class _Collector:
    """What is read when scraped, for prometheus_client's registry."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        return self._metrics._families()

    def describe(self) -> list[Any]:
        # The names, so that a registry refuses a second Metrics (a duplicate) at once.
        return list(self._metrics._families())
