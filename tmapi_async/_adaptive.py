"""The adaptive in-flight limit of one token: find where refusals begin, stay there.

Pure: no clock, no socket, no event loop. It learns from two events, each with the
*depth* of its request (the requests in flight when it was sent, itself included):

- a refusal (503 in flight / 429 rate) at depth ``k`` proves the account admits fewer
  than ``k`` at once: the server counted at most the ``k - 1`` sent before it, and that
  was too many. So the limit drops to ``k - 1`` at once (the *ceiling*), not to half:
  TMAPI's limit is a count, not a congested queue, so running below it wastes
  throughput and buys nothing;
- a success at depth ``k`` means ``k`` was admitted.

Before the first refusal the limit starts at ``min(concurrency, START)`` and grows by
one per success (doubling per round trip, as TCP's slow start), so a guess far above the
account's limit costs a refusal or two, not a burst of them. After it the limit sits at
the ceiling and probes one above it only after ``PROBE_FIRST`` successes, then after
twice as many each time a probe is refused (capped at ``PROBE_LAST``): refusals stay
a small, shrinking share of the requests. A probe that succeeds raises the ceiling and
the next probe follows at once, so a limit that grew is climbed one per round trip.

No latency signal is used (Vegas, Gradient2): a billing proxy's count of requests in
flight does not slow answers down before it refuses.

The same rules run in Lua for a token shared through Redis
(``_redis/lua/throttle_adapt.lua``); the tests hold both to the same event sequences.
"""

from __future__ import annotations

__all__ = ["PROBE_FIRST", "PROBE_LAST", "START", "InFlightLimit", "SentRequests"]

START = 6  #: the limit before the first refusal, if the concurrency is above it
PROBE_FIRST = 128  #: successes at the ceiling before the first probe above it
PROBE_LAST = 4096  #: the most successes between two probes
_FORGET_AFTER = 64  # requests released without their ticket whose depth is kept, at most


class InFlightLimit:
    """The limit on requests in flight, learnt from refusals; see the module docstring.

    The caller notes ``epoch`` with each request it sends and gives it back with the
    request's answer: a success of a request sent before the ceiling last dropped says
    nothing about the account now (it may have been admitted only because answers of
    others were on their way back), so it never raises the ceiling.

    Args:
        concurrency: the most requests in flight the user allows; never exceeded.
    """

    __slots__ = ("_since_probe", "ceiling", "concurrency", "epoch", "limit", "probe_gap")

    concurrency: int  #: the user's bound; the limit never exceeds it
    limit: int  #: requests allowed in flight now
    ceiling: int | None  #: the most found admitted at once, None before any refusal
    probe_gap: int  #: successes at the ceiling before the next probe above it
    epoch: int  #: how many times the ceiling dropped

    def __init__(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency!r}")
        self.concurrency = concurrency
        self.limit = min(concurrency, START)
        self.ceiling = None
        self.probe_gap = PROBE_FIRST
        self.epoch = 0
        self._since_probe = 0  # successes at the ceiling since the last refusal or probe

    @property
    def probing(self) -> bool:
        """The limit is one above the ceiling: the next request there is a probe."""
        return self.ceiling is not None and self.limit > self.ceiling

    def refused(self, depth: int, epoch: int) -> None:
        """A request sent at ``depth`` in ``epoch`` was refused."""
        found = max(1, depth - 1)
        if self.ceiling is None or found < self.ceiling:
            self.ceiling = found
            self.epoch += 1
        elif self.probing and epoch == self.epoch:  # the probe failed: probe less often
            self.probe_gap = min(PROBE_LAST, self.probe_gap * 2)
        self.limit = self.ceiling  # from now on the limit is the ceiling, or one above
        self._since_probe = 0

    @staticmethod
    def success_counts(depth: int, limit: int, ceiling: int | None, concurrency: int) -> bool:
        """Whether a success at ``depth`` can change anything: a caller that pays for
        telling one (a round trip to Redis) may skip the others."""
        if ceiling is None:
            return limit < concurrency and depth * 2 >= limit
        return depth > ceiling or limit < min(concurrency, ceiling + 1)  # counts to a probe

    def succeeded(self, depth: int, epoch: int) -> None:
        """A request sent at ``depth`` in ``epoch`` succeeded."""
        if self.ceiling is None:
            if depth * 2 >= self.limit:  # only while the limit is in use (as TCP's cwnd)
                self.limit = min(self.concurrency, self.limit + 1)
        elif depth > self.ceiling and epoch == self.epoch:  # a probe went through
            self.ceiling = min(self.concurrency, depth)
            self.probe_gap = PROBE_FIRST
            self.limit = min(self.concurrency, self.ceiling + 1)  # and the next probe now
            self._since_probe = 0
        elif self.limit < self.concurrency and not self.probing:
            self._since_probe += 1
            if self._since_probe >= self.probe_gap:
                self.limit = self.ceiling + 1
                self._since_probe = 0


class SentRequests:
    """The depth and epoch each request in flight was sent at, by ticket, until its
    answer is told: the bookkeeping both throttles feed an :class:`InFlightLimit` from.

    A refusal names its ticket; a success does not (``Admission.succeeded`` takes
    none) but is told right after its request's release, so the last released one
    is kept aside for it.

    Args:
        keep: requests in flight at most (older entries, of requests released without
            their ticket, are forgotten past it).
    """

    __slots__ = ("_keep", "_last", "_sent")

    def __init__(self, keep: int) -> None:
        self._keep = keep + _FORGET_AFTER
        self._sent: dict[int, tuple[int, int]] = {}
        self._last: tuple[int, int, int] | None = None

    def sent(self, ticket: int, depth: int, epoch: int) -> None:
        """``ticket`` left with ``depth`` requests in flight (itself included)."""
        sent = self._sent
        if len(sent) >= self._keep:
            del sent[next(iter(sent))]
        sent[ticket] = (depth, epoch)

    def released(self, ticket: int) -> None:
        """``ticket`` is off the wire; its answer is told next."""
        sent_at = self._sent.pop(ticket, None)
        if sent_at is not None:
            self._last = (ticket, *sent_at)

    def of(self, ticket: int | None) -> tuple[int, int] | None:
        """The depth and epoch of ``ticket`` (None: the one released last), once."""
        last = self._last
        if last is not None and (ticket is None or last[0] == ticket):
            self._last = None
            return last[1], last[2]
        return None if ticket is None else self._sent.pop(ticket, None)
