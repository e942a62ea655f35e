"""The outage policy every Redis command of a process goes through: how long it waits,
what it says. Pure: the clock is patched, no Redis is needed."""

from __future__ import annotations

import copy

import pytest

from tmapi_async._redis import connection
from tmapi_async._redis.connection import Outage

URL = "redis://:s3cret@10.0.0.5:6379/0"


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(connection.time, "monotonic", fake)
    return fake


def test_a_redis_never_reached_fails_at_once(clock: _Clock) -> None:
    """Before the first answer there is nothing to wait for: a wrong URL says so at once."""
    outage = Outage(URL, 60.0)
    assert not outage.failed(ConnectionError("refused"))
    assert outage.gave_up


def test_once_connected_it_waits_up_to_the_limit_and_says_so(clock: _Clock) -> None:
    """Waiting is told after a second, every 10 s after that, and the end of it once;
    the URL is shown without its password."""
    outage = Outage(URL, 30.0)
    lines: list[str] = []
    outage.listeners.append(lines.append)
    outage.answered()
    assert outage.failed(ConnectionError("refused"))  # a blip: not told
    clock.now += 1.5
    assert outage.failed(ConnectionError("refused"))
    clock.now += 5.0
    assert outage.failed(ConnectionError("refused"))  # within 10 s of the last line
    clock.now += 5.0
    assert outage.failed(ConnectionError("refused"))
    assert outage.waited == pytest.approx(11.5)
    outage.answered()
    assert lines == [
        "Redis at redis://:***@10.0.0.5:6379/0 unreachable for 1.5 s, waiting up to 30 s (refused)",
        "Redis at redis://:***@10.0.0.5:6379/0 unreachable for 11.5 s, waiting up to 30 s "
        "(refused)",
        "Redis is back after 11.5 s",
    ]
    assert (outage.since, outage.ended, outage.gave_up) == (None, 1, False)


def test_past_the_limit_it_gives_up_and_a_later_answer_starts_afresh(clock: _Clock) -> None:
    """Every command waiting gives up at the limit; if Redis answers again, the next
    outage has the whole limit again."""
    outage = Outage(URL, 2.0)
    outage.answered()
    assert outage.failed(TimeoutError())
    clock.now += 2.0
    assert not outage.failed(TimeoutError())
    assert outage.gave_up
    outage.answered()
    assert not outage.gave_up
    assert outage.failed(TimeoutError())


def test_one_outage_per_url_whatever_redis_py_copies() -> None:
    """redis-py deep-copies its retry policy into every connection: they all share one
    outage, and so do the connection pools of a process to the same URL."""
    outage = Outage.shared(URL, 60.0)
    assert copy.deepcopy(outage) is outage
    assert Outage.shared(URL, 60.0) is outage
    assert Outage.shared(URL, 5.0) is not outage


def test_a_negative_limit_is_refused() -> None:
    """A negative redis_outage limit is refused."""
    with pytest.raises(ValueError, match="redis_outage"):
        Outage(URL, -1.0)
