"""Retrying transient failures: counts, backoff schedule, Retry-After, what is never retried."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest
import tenacity

from tmapi_async import (
    AuthenticationError,
    BalanceError,
    DecodeError,
    InvalidParameterError,
    RateLimitError,
    RetryPolicy,
    TransientError,
    TransportError,
    UpstreamError,
    _retry,
)
from tmapi_async._retry import retry_transient


class Sleeps:
    """A fake ``sleep`` that records each wait instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class Script:
    """An attempt that raises or returns the next scripted outcome, counting calls."""

    def __init__(self, outcomes: Iterable[BaseException | object]) -> None:
        self.outcomes = iter(outcomes)
        self.calls = 0

    async def __call__(self) -> object:
        self.calls += 1
        outcome = next(self.outcomes)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def policy(sleeps: Sleeps, **kwargs: float) -> RetryPolicy:
    """A RetryPolicy that records its waits in ``sleeps``."""
    return RetryPolicy(sleep=sleeps, **kwargs)  # type: ignore[arg-type]


def upstream(n: int, retry_after: float | None = None) -> UpstreamError:
    """A numbered transient error."""
    return UpstreamError(f"failure {n}", code=500, status=500, retry_after=retry_after)


# -- counts ----------------------------------------------------------------------------


@pytest.mark.parametrize("attempts", [1, 2, 3, 5, 6, 10])
async def test_gives_up_after_attempts_and_raises_last_error(attempts: int) -> None:
    """attempts counts the bare first one; the last error itself is raised."""
    sleeps = Sleeps()
    errors = [upstream(n) for n in range(1, attempts + 5)]
    script = Script(errors[1:])
    with pytest.raises(UpstreamError) as info:
        await retry_transient(errors[0], script, policy(sleeps, attempts=attempts))
    assert script.calls == attempts - 1
    assert len(sleeps.waits) == attempts - 1
    assert info.value is errors[attempts - 1]
    assert not isinstance(info.value, tenacity.RetryError)


@pytest.mark.parametrize(
    "make",
    [
        lambda n: RateLimitError(f"r{n}", code=429, status=429),
        lambda n: UpstreamError(f"u{n}", code=503, status=503),
        lambda n: DecodeError(f"d{n}", status=200),
        lambda n: TransportError(f"t{n}"),
        lambda n: TransientError(f"x{n}", code=418, status=418),
    ],
)
async def test_every_transient_kind_is_retried(make: object) -> None:
    """Rate limits, upstream, decode, transport and unknown errors are all retried."""
    sleeps = Sleeps()
    errors = [make(n) for n in range(4)]  # type: ignore[operator]
    script = Script(errors[1:])
    with pytest.raises(TransientError) as info:
        await retry_transient(errors[0], script, policy(sleeps, attempts=4))
    assert script.calls == 3
    assert info.value is errors[3]
    assert not isinstance(info.value, tenacity.RetryError)


@pytest.mark.parametrize("k", [2, 3, 4, 6])
async def test_success_on_kth_attempt_returns_value(k: int) -> None:
    """A success on attempt k (the bare one being 1) returns its value at once."""
    sleeps = Sleeps()
    script = Script([*(upstream(n) for n in range(2, k)), {"page": k}, upstream(99)])
    result = await retry_transient(upstream(1), script, policy(sleeps, attempts=6))
    assert result == {"page": k}
    assert script.calls == k - 1
    assert len(sleeps.waits) == k - 1


async def test_success_on_last_allowed_attempt() -> None:
    """A success on exactly the last allowed attempt still counts."""
    sleeps = Sleeps()
    script = Script([upstream(2), upstream(3), "ok"])
    assert await retry_transient(upstream(1), script, policy(sleeps, attempts=4)) == "ok"
    assert script.calls == 3


@pytest.mark.parametrize(
    "error",
    [
        InvalidParameterError("Parameter error", code=422, status=422),
        AuthenticationError("Token is not authorized or has expired", code=401, status=401),
        AuthenticationError("forbidden", code=403, status=200),
        BalanceError("Subscription expired or insufficient balance", code=439, status=439),
        ValueError("not a TmapiError"),
        RuntimeError("bug"),
    ],
)
async def test_non_transient_error_propagates_at_once(error: Exception) -> None:
    """A non-transient error from a retry is raised at once, with no further attempt."""
    sleeps = Sleeps()
    retried: list[TransientError] = []
    script = Script([error, "never reached", "never reached"])
    with pytest.raises(type(error)) as info:
        await retry_transient(
            upstream(1), script, policy(sleeps, attempts=6), on_retry=retried.append
        )
    assert info.value is error
    assert script.calls == 1
    assert len(sleeps.waits) == 1  # only the wait before that one retry
    assert len(retried) == 1


async def test_on_retry_called_once_per_retry_with_the_cause() -> None:
    """on_retry sees each error that led to a retry, once, in order."""
    sleeps = Sleeps()
    errors = [upstream(n) for n in range(1, 5)]
    seen: list[TransientError] = []
    script = Script([*errors[1:], "ok"])
    result = await retry_transient(
        errors[0], script, policy(sleeps, attempts=6), on_retry=seen.append
    )
    assert result == "ok"
    assert seen == errors
    assert len(seen) == len(sleeps.waits) == script.calls


async def test_on_retry_not_called_after_last_attempt() -> None:
    """Giving up calls on_retry only for the retries that happened."""
    sleeps = Sleeps()
    seen: list[TransientError] = []
    script = Script([upstream(2), upstream(3)])
    with pytest.raises(UpstreamError):
        await retry_transient(upstream(1), script, policy(sleeps, attempts=3), on_retry=seen.append)
    assert [str(e) for e in seen] == ["failure 1 (code 500)", "failure 2 (code 500)"]


async def test_single_attempt_raises_first_error_without_calling() -> None:
    """With attempts=1 the first error is raised and nothing is retried."""
    sleeps = Sleeps()
    first = upstream(1)
    script = Script(["never"])
    with pytest.raises(UpstreamError) as info:
        await retry_transient(first, script, policy(sleeps, attempts=1), on_retry=pytest.fail)
    assert info.value is first
    assert script.calls == 0
    assert sleeps.waits == []


# -- backoff ---------------------------------------------------------------------------


async def waits_for(errors: list[TransientError], **kwargs: float) -> list[float]:
    """The waits retry_transient makes while every attempt fails with ``errors``."""
    sleeps = Sleeps()
    with pytest.raises(TransientError):
        await retry_transient(
            errors[0], Script(errors[1:]), policy(sleeps, attempts=len(errors), **kwargs)
        )
    return sleeps.waits


async def test_waits_grow_exponentially_without_jitter() -> None:
    """Without jitter each wait doubles, starting at initial_wait."""
    waits = await waits_for(
        [upstream(n) for n in range(7)], initial_wait=0.5, max_wait=1000, jitter=0
    )
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]


async def test_waits_are_capped_by_max_wait() -> None:
    """No wait exceeds max_wait, however many retries."""
    waits = await waits_for([upstream(n) for n in range(8)], initial_wait=1, max_wait=3, jitter=0)
    assert waits == [1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0]


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.5), (0.5, 0.75), (1.0, 1.0)])
async def test_jitter_spans_its_fraction(
    monkeypatch: pytest.MonkeyPatch, draw: float, factor: float
) -> None:
    """With jitter j a wait lies in [base*(1-j), base], as the random draw says."""
    monkeypatch.setattr(_retry.random, "random", lambda: draw)
    waits = await waits_for([upstream(n) for n in range(5)], initial_wait=1, max_wait=4, jitter=0.5)
    assert waits == pytest.approx([1 * factor, 2 * factor, 4 * factor, 4 * factor])


@pytest.mark.parametrize("jitter", [0.1, 0.5, 1.0])
async def test_jittered_waits_within_bounds_and_varied(jitter: float) -> None:
    """Real jitter keeps every wait within bounds and makes the waits differ."""
    errors = [upstream(n) for n in range(41)]
    waits = await waits_for(errors, initial_wait=2, max_wait=2, jitter=jitter)
    assert len(waits) == 40
    assert all(2 * (1 - jitter) <= w <= 2 for w in waits)
    assert len(set(waits)) > 1


def test_backoff_direct() -> None:
    """RetryPolicy.backoff gives the documented schedule for retry 1, 2, 3..."""
    p = RetryPolicy(initial_wait=0.25, max_wait=1.5, jitter=0)
    assert [p.backoff(n) for n in range(1, 6)] == [0.25, 0.5, 1.0, 1.5, 1.5]


# -- Retry-After -----------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", [0.0, 0.1, 5.0, 120.0])
async def test_retry_after_is_a_floor_on_the_wait(retry_after: float) -> None:
    """A Retry-After makes the wait at least that long, even above max_wait."""
    errors = [upstream(n, retry_after=retry_after) for n in range(4)]
    waits = await waits_for(errors, initial_wait=1, max_wait=2, jitter=0.5)
    assert len(waits) == 3
    assert all(w >= retry_after for w in waits)
    assert all(w >= 0.5 for w in waits)  # the backoff still applies when larger


async def test_retry_after_applies_to_the_error_that_carried_it() -> None:
    """Each wait follows the Retry-After of the error just seen, not another's."""
    errors = [
        upstream(0),
        RateLimitError("slow down", code=429, status=429, retry_after=50.0),
        upstream(2),
        upstream(3),
    ]
    waits = await waits_for(errors, initial_wait=1, max_wait=8, jitter=0)
    assert waits == [1.0, 50.0, 4.0]


def test_backoff_honours_retry_after() -> None:
    """backoff returns max(backoff, retry_after) for a transient error."""
    p = RetryPolicy(initial_wait=1, max_wait=2, jitter=0)
    assert p.backoff(1, upstream(0, retry_after=30)) == 30
    assert p.backoff(2, upstream(0, retry_after=0.5)) == 2
    assert p.backoff(1, ValueError("x")) == 1


# -- policy ----------------------------------------------------------------------------


@pytest.mark.parametrize("attempts", [0, -1])
def test_policy_refuses_fewer_than_one_attempt(attempts: int) -> None:
    """A policy must allow at least the first attempt."""
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=attempts)


def test_policy_defaults() -> None:
    """The default policy makes at least five attempts with a capped, jittered backoff."""
    p = RetryPolicy()
    assert p.attempts >= 5
    assert 0 < p.initial_wait <= p.max_wait
    assert 0 < p.jitter <= 1
    assert all(p.backoff(n) <= p.max_wait for n in itertools.chain(range(1, 40), [200]))
