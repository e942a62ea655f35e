"""When and how long to retry: the one module that knows tenacity.

Retries engage only after a first attempt has failed: the caller runs its first
attempt bare and hands the error here. Wrapping every call in ``AsyncRetrying`` would
cost the success path about half its throughput.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity as _t

from ._errors import InvalidParameterError, TransientError

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How transient failures are retried.

    Attributes:
        attempts: attempts in all, the first included (so ``attempts - 1`` retries).
        initial_wait: the first backoff, in seconds; it doubles with each retry.
        max_wait: the cap on one backoff (a server's ``Retry-After`` may exceed it).
        jitter: the fraction of each backoff drawn at random, so that tasks refused
            together do not come back together.
        sleep: what waits; tests pass one that records instead of sleeping.
    """

    attempts: int = 6
    initial_wait: float = 0.5
    max_wait: float = 30.0
    jitter: float = 0.5
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise InvalidParameterError(f"attempts must be >= 1, got {self.attempts!r}")

    def backoff(self, retry: int, error: BaseException | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based) after ``error``."""
        base = min(self.max_wait, self.initial_wait * 2.0 ** (retry - 1))
        wait = base * (1 - self.jitter) + base * self.jitter * random.random()
        retry_after = error.retry_after if isinstance(error, TransientError) else None
        return max(wait, retry_after) if retry_after is not None else wait


async def retry_transient(
    first_error: TransientError,
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    on_retry: Callable[[TransientError], None] | None = None,
) -> T:
    """Retry ``attempt`` after ``first_error`` until it succeeds or the policy gives up.

    Raises the last error itself (never tenacity's ``RetryError``); errors that are
    not :class:`TransientError` propagate at once.
    """
    replayed = False

    async def replay_then_attempt() -> T:
        # tenacity counts attempts from its first call: replaying the bare attempt's
        # error makes `attempts` and the backoff schedule include it.
        nonlocal replayed
        if not replayed:
            replayed = True
            raise first_error
        return await attempt()

    def wait(state: _t.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return policy.backoff(state.attempt_number, error)

    def before_sleep(state: _t.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if on_retry is not None and isinstance(error, TransientError):
            on_retry(error)

    retrying = _t.AsyncRetrying(
        stop=_t.stop_after_attempt(policy.attempts),
        wait=wait,
        retry=_t.retry_if_exception_type(TransientError),
        sleep=policy.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(replay_then_attempt)
