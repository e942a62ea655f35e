"""The adaptive in-flight limit alone: its rules event by event, then against a simulated
account on a fake clock (an event queue: no sleeps, no sockets)."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

import pytest

from tmapi_async._adaptive import PROBE_FIRST, PROBE_LAST, START, InFlightLimit


def test_a_guess_within_the_start_is_used_at_once() -> None:
    """A concurrency at or below START is the limit from the first request."""
    assert InFlightLimit(3).limit == 3
    assert InFlightLimit(START).limit == START
    assert InFlightLimit(100).limit == START


def test_bad_concurrency_is_refused() -> None:
    """A concurrency below one raises ValueError naming it."""
    with pytest.raises(ValueError, match="concurrency"):
        InFlightLimit(0)


def test_slow_start_grows_one_per_success_while_the_limit_is_in_use() -> None:
    """Before any refusal each success at a depth of at least half the limit adds one
    (doubling per round trip); successes of a client that uses few slots add nothing;
    the limit stops at the concurrency."""
    limit = InFlightLimit(10)
    limit.succeeded(1, 0)  # 1 in flight of 6 allowed: the limit is not what holds it back
    assert limit.limit == START
    limit.succeeded(3, 0)
    assert limit.limit == START + 1
    for _ in range(20):
        limit.succeeded(limit.limit, 0)
    assert limit.limit == 10


def test_a_refusal_puts_the_limit_just_below_its_depth() -> None:
    """A request refused at depth 11 means the account admits at most 10: the limit and
    the ceiling become 10 at once (not a half), and the epoch moves."""
    limit = InFlightLimit(40)
    for _ in range(40):
        limit.succeeded(limit.limit, 0)
    assert limit.limit == 40
    limit.refused(11, 0)
    assert (limit.limit, limit.ceiling, limit.epoch) == (10, 10, 1)


def test_refusals_of_one_cohort_keep_the_lowest_depth() -> None:
    """Refusals at higher depths change nothing; one at a lower depth lowers the limit
    further, down to one and never below."""
    limit = InFlightLimit(40)
    limit.refused(7, 0)
    for depth in (9, 12, 7):
        limit.refused(depth, 0)
    assert (limit.limit, limit.ceiling) == (6, 6)
    limit.refused(4, 1)
    assert limit.limit == 3
    limit.refused(1, 2)
    assert (limit.limit, limit.ceiling) == (1, 1)


def test_a_probe_above_the_ceiling_comes_after_probe_first_successes() -> None:
    """At the ceiling the limit holds for PROBE_FIRST successes, then allows one more."""
    limit = InFlightLimit(20)
    limit.refused(9, 0)
    for _ in range(PROBE_FIRST - 1):
        limit.succeeded(8, 1)
    assert limit.limit == 8
    assert not limit.probing
    limit.succeeded(8, 1)
    assert limit.limit == 9
    assert limit.probing


def test_failed_probes_come_ever_more_rarely() -> None:
    """Each refused probe doubles the successes before the next, up to PROBE_LAST; the
    limit falls back to the ceiling after each."""
    limit = InFlightLimit(20)
    limit.refused(9, 0)
    gaps = []
    for _ in range(8):
        waited = 0
        while not limit.probing:
            limit.succeeded(8, limit.epoch)
            waited += 1
        gaps.append(waited)
        limit.refused(9, limit.epoch)  # the probe at depth 9 is refused
        assert (limit.limit, limit.ceiling) == (8, 8)
    assert gaps[:6] == [PROBE_FIRST * 2**n for n in range(6)]
    assert gaps[-1] == PROBE_LAST


def test_a_probe_that_succeeds_raises_the_ceiling_and_probes_again() -> None:
    """A success above the ceiling moves the ceiling there and the next probe follows at
    once: a grown account limit is climbed one step per probe, up to the concurrency."""
    limit = InFlightLimit(12)
    limit.refused(9, 0)
    limit.probe_gap = 1
    limit.succeeded(8, 1)
    assert limit.probing
    for depth in (9, 10, 11):
        limit.succeeded(depth, 1)
        assert (limit.ceiling, limit.limit) == (depth, depth + 1)
    limit.succeeded(12, 1)
    assert (limit.ceiling, limit.limit) == (12, 12)
    assert not limit.probing


def test_a_success_sent_before_the_ceiling_dropped_raises_nothing() -> None:
    """A request sent at depth 14 before the refusal at 11 may succeed afterwards (the
    server counted fewer than the client did): it is no proof and the ceiling stays."""
    limit = InFlightLimit(40)
    limit.refused(11, 0)
    limit.succeeded(14, 0)
    assert (limit.limit, limit.ceiling) == (10, 10)


def test_a_refused_request_of_an_older_probe_does_not_double_the_gap() -> None:
    """Only a refusal of a request sent in the current epoch while probing counts as a
    failed probe: a late refusal of an older one leaves the gap."""
    limit = InFlightLimit(20)
    limit.refused(9, 0)
    limit.probe_gap = 1
    limit.succeeded(8, 1)
    assert limit.probing
    limit.refused(9, 0)
    assert limit.probe_gap == 1
    assert limit.limit == 8


def test_a_success_said_not_to_count_changes_nothing() -> None:
    """success_counts() is False only for successes that leave every field as it was:
    checked over slow starts, ceilings and probes reached by random answers."""
    rnd = random.Random(7)
    for _ in range(300):
        limit = InFlightLimit(rnd.randint(1, 20))
        for _ in range(rnd.randint(0, 40)):
            depth = rnd.randint(1, limit.limit)
            if rnd.random() < 0.1:
                limit.refused(depth, limit.epoch)
            else:
                limit.succeeded(depth, limit.epoch)
        depth = rnd.randint(1, limit.limit)
        before = (limit.limit, limit.ceiling, limit.epoch, limit.probe_gap, limit._since_probe)
        counts = InFlightLimit.success_counts(depth, limit.limit, limit.ceiling, limit.concurrency)
        limit.succeeded(depth, limit.epoch)
        after = (limit.limit, limit.ceiling, limit.epoch, limit.probe_gap, limit._since_probe)
        assert counts or before == after


# -- against a simulated account, on a fake clock ----------------------------------------


@dataclass
class Outcome:
    """What a simulated run did."""

    seconds: float
    refused: int
    final_ceiling: int | None


def crawl(account: int, guess: int, pages: int, seed: int = 1) -> Outcome:
    """``pages`` requests through an :class:`InFlightLimit` of ``guess`` to an account that
    admits ``account`` at once; answers take 0.3-0.7 s, refusals 2 ms, a refused page is
    sent again after 0.25-0.5 s. Time is an event queue's: nothing sleeps."""
    rnd = random.Random(seed)
    limit = InFlightLimit(guess)
    events: list[tuple[float, int, str, tuple[int, int]]] = []
    now, order, ready, in_flight, at_server, refused, done = 0.0, 0, pages, 0, 0, 0, 0

    def later(delay: float, kind: str, sent: tuple[int, int] = (0, 0)) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (now + delay, order, kind, sent))

    def send() -> None:
        nonlocal ready, in_flight, at_server, refused
        while ready and in_flight < limit.limit:
            ready -= 1
            in_flight += 1
            sent = (in_flight, limit.epoch)
            if at_server >= account:
                refused += 1
                later(0.002, "refused", sent)
            else:
                at_server += 1
                latency = rnd.uniform(0.3, 0.7)
                later(latency, "served")
                later(latency + 0.001, "answered", sent)

    send()
    while done < pages:
        now, _, kind, sent = heapq.heappop(events)
        if kind == "served":
            at_server -= 1
        elif kind == "answered":
            in_flight -= 1
            done += 1
            limit.succeeded(*sent)
        elif kind == "refused":
            in_flight -= 1
            limit.refused(*sent)
            later(rnd.uniform(0.25, 0.5), "retry")
        else:
            ready += 1
        send()
    return Outcome(now, refused, limit.ceiling)


@pytest.mark.parametrize(("account", "pages"), [(4, 400), (10, 800), (30, 2400)])
def test_a_guess_four_times_too_high_costs_little(account: int, pages: int) -> None:
    """Guessing 4x the account's limit: within 3 % of the time of the right guess and
    at most 1 % of the requests refused; the ceiling found is the account's limit."""
    known = crawl(account, account, pages)
    high = crawl(account, 4 * account, pages)
    assert high.seconds <= 1.03 * known.seconds
    assert high.refused <= 0.01 * pages
    assert high.final_ceiling == account
    assert known.refused == 0


@pytest.mark.parametrize("account", [4, 10, 30])
def test_a_guess_at_or_below_the_limit_is_not_slowed(account: int) -> None:
    """A guess within the account's limit is never refused and runs within 5 % of
    pages x mean latency / guess (the slow start from START is all it costs)."""
    pages = 60 * account
    for guess in (max(1, account // 2), account):
        run = crawl(account, guess, pages)
        assert run.refused == 0
        assert run.seconds <= 1.05 * pages * 0.5 / guess
