"""``TokenPool``: several API tokens behind one client, each with its own limits.

Each token gets a member :class:`~tmapi_async.Client` of its own: its own connections
and its own throttle (``rate``, ``burst`` and ``concurrency`` apply to each token, as
TMAPI limits each account), so N healthy tokens carry N times the work. The pool is a
sibling of the client on :class:`~._reader.ShopReader`: a harvest, a shop or a page
through it works as through one token.

- A page goes to the token with the most free slots (its in-flight limit minus the
  pages it holds); when every slot is taken it waits for the first that frees, so a
  shop's pages spread over the tokens. A page keeps its token through its retries.
- A token whose answer condemns it (401/403 authentication, 439 balance) retires
  alone: its waiting and in-flight pages are fetched again through the others, and
  nothing more is sent with it. The pool stops only when every token is retired
  (raising the last one's error), on :meth:`~TokenPool.stop`, or when ``max_requests``
  -- counted across the tokens -- is spent.
- Tokens are only ever named by :func:`short_fingerprint`, never by a character of
  their own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self, TypeVar

from ._budget import Budgeted, SharedBudget
from ._client import Client
from ._errors import AuthenticationError, BalanceError, FatalError, InvalidParameterError
from ._harvest import Fetched
from ._limits import Limits, choose_limits
from ._protocol import ShopQuery
from ._reader import ShopReader
from ._redis.connection import redis_url_from_env
from ._redis.throttle import RedisThrottle
from ._request import Endpoint
from ._retry import RetryPolicy
from ._secret import short_fingerprint
from ._throttle import Admission, Throttle
from ._transport import Transport
from ._waiters import Waiters

if TYPE_CHECKING:
    from ._metrics import Metrics

__all__ = ["TokenPool", "TokenUsage", "short_fingerprint", "split_tokens"]

_log = logging.getLogger("tmapi_async")

T = TypeVar("T")

_SEPARATORS = re.compile(r"[\s,]+")

#: Errors that condemn one token (its account), not the harvest.
TOKEN_ERRORS: tuple[type[FatalError], ...] = (AuthenticationError, BalanceError)


def split_tokens(value: str | Iterable[str] | None) -> list[str]:
    """The tokens in ``value``: a string of tokens separated by commas or whitespace
    (as ``TMAPI_TOKEN`` may hold), or several such strings; each token once, in order."""
    parts = [value] if isinstance(value, str) else list(value or ())
    return list(dict.fromkeys(t for part in parts for t in _SEPARATORS.split(part) if t))


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """One token of a pool, as a summary names it.

    Attributes:
        fingerprint: 8 hex digits of a keyed hash of the token (never the token).
        requests: requests sent with it by this process (each is billed).
        retired: the error that retired it, or None while it is in service.
    """

    fingerprint: str
    requests: int
    retired: FatalError | None


class _Member:
    """One token of the pool: its client, and the pages it holds now."""

    __slots__ = ("client", "fingerprint", "held", "retired")

    def __init__(self, client: Client, token_fingerprint: str) -> None:
        self.client = client
        self.fingerprint = token_fingerprint
        self.held = 0  # pages given to this token and not yet done (retries included)
        self.retired: FatalError | None = None


class TokenPool(ShopReader):
    """A client of several tokens (see the module docstring): the methods of a
    :class:`~tmapi_async.Client` to read pages, shops and harvests, over every token.

    Args:
        tokens: the apiTokens, as a list or one string separated by commas or
            whitespace; default the ``TMAPI_TOKEN`` environment variable.
        auth: how each key is sent, as for :class:`~tmapi_async.Client`; with
            ``"auto"`` each key finds out its own way.
        base_url: as for :class:`~tmapi_async.Client`.
        limits: a :class:`~tmapi_async.Limits`: ``rate``, ``burst`` and
            ``concurrency`` of EACH token (with ``redis_url``, a limit not set keeps the
            token's limit set in Redis), and ``max_requests``, a budget of requests
            across every token.
        rate, burst, concurrency, max_requests: a shorthand for ``limits`` (give one
            or the other).
        timeout: seconds for one request, as for :class:`~tmapi_async.Client`.
        retry: how transient failures are retried (on the token that met them).
        redis_url: share each token's limits through this Redis with every process
            that uses the token, one ``RedisThrottle`` per token (default
            ``TMAPI_REDIS_URL``).
        redis_outage: with ``redis_url``, as for :class:`~tmapi_async.Client`.
        throttle: ``throttle(token) -> Admission`` builds each token's admission, in
            place of ``rate``, ``burst``, ``concurrency`` and ``redis_url`` (a
            ``max_requests`` still counts across the tokens).
        transport: ``transport(token) -> Transport`` builds each token's transport
            (default aiohttp); tests answer with a ``MockTransport``.
        metrics: as for :class:`~tmapi_async.Client`; each token is labelled by its
            short fingerprint.

    Use it as an async context manager, like a client::

        async with TokenPool(["tok-a", "tok-b", "tok-c"], concurrency=3) as pool:
            async for result in pool.harvest(shop_urls):
                ...
        print(pool.tokens)  # requests billed per token, and which retired
    """

    def __init__(
        self,
        tokens: str | Iterable[str] | None = None,
        *,
        auth: str | None = None,
        base_url: str | None = None,
        rate: float | None = None,
        burst: int | None = None,
        concurrency: int | None = None,
        timeout: float = 60.0,
        max_requests: int | None = None,
        retry: RetryPolicy | None = None,
        redis_url: str | None = None,
        redis_outage: float = 60.0,
        throttle: Callable[[str], Admission] | None = None,
        transport: Callable[[str], Transport] | None = None,
        metrics: Metrics | None = None,
        limits: Limits | None = None,
    ) -> None:
        found = split_tokens(tokens if tokens is not None else os.environ.get("TMAPI_TOKEN"))
        if not found:
            raise AuthenticationError("no API token: pass tokens=... or set TMAPI_TOKEN")
        limits = choose_limits(
            limits, rate=rate, burst=burst, concurrency=concurrency, max_requests=max_requests
        )
        per_token = limits.without_budget()  # the budget counts across tokens
        if throttle is not None and (redis_url is not None or per_token != Limits()):
            raise InvalidParameterError(
                "rate, burst, concurrency and redis_url belong to the throttle given"
            )
        admission = throttle or _throttle_factory(redis_url, per_token, redis_outage=redis_outage)
        self._fatal: FatalError | None = None
        self._waiters = Waiters()
        self._next = 0  # where the search for a free slot starts: ties take turns
        self._closed = False
        self._members: list[_Member] = []
        budget = (
            None if limits.max_requests is None else SharedBudget(limits.max_requests, self.stop)
        )
        for token in found:
            gate = admission(token)
            if budget is not None:
                gate = Budgeted(gate, budget)
            client = Client(
                token,
                auth=auth,
                base_url=base_url,
                timeout=timeout,
                retry=retry,
                throttle=gate,
                transport=transport(token) if transport is not None else None,
                metrics=metrics,
            )
            self._members.append(_Member(client, short_fingerprint(token)))
        super().__init__(base_url=self._members[0].client.base_url, metrics=metrics)

    def __repr__(self) -> str:
        first = self._members[0].client.throttle
        return (
            f"TokenPool(base_url={self.base_url!r}, tokens={[m.fingerprint for m in self._members]}"
            f", per token: rate={first.rate:g}, burst={first.burst}, "
            f"concurrency={first.concurrency})"
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._closed:
            raise RuntimeError("a closed TokenPool cannot be reopened: create a new one")
        try:
            for member in self._members:
                await member.client.__aenter__()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def aclose(self) -> None:
        """Close every token's connections; the pool cannot be used afterwards."""
        self._closed = True
        async with contextlib.AsyncExitStack() as members:  # each closes, whatever raises
            for member in self._members:
                members.push_async_callback(member.client.aclose)

    # -- observation and control -------------------------------------------------------

    @property
    def requests(self) -> int:
        """Requests sent so far with every token, retries included: each is billed."""
        return sum(member.client.requests for member in self._members)

    @property
    def retries(self) -> int:
        """Requests that were retries of a failed one, with every token."""
        return sum(member.client.retries for member in self._members)

    @property
    def throttle(self) -> Admission:
        """The throttle of the first token in service (see :attr:`tokens` for all)."""
        live = [m for m in self._members if m.retired is None] or self._members
        return live[0].client.throttle

    @property
    def concurrency(self) -> int:
        """Requests in flight at most, over every token: a harvest runs as many workers."""
        return sum(member.client.concurrency for member in self._members)

    @property
    def fatal(self) -> FatalError | None:
        """The error that stopped the pool: every token retired, a stop or the budget."""
        return self._fatal

    @property
    def tokens(self) -> tuple[TokenUsage, ...]:
        """Each token by its fingerprint, with its requests and why it retired."""
        return tuple(
            TokenUsage(member.fingerprint, member.client.requests, member.retired)
            for member in self._members
        )

    def stop(self, error: FatalError) -> None:
        """Stop every token: requests waiting to leave or in backoff, and every later
        one, raise ``error`` at once; answers in flight still arrive."""
        if self._fatal is None:
            self._fatal = error
        for member in self._members:
            member.client.stop(error)
        self._waiters.wake_all()

    # -- one page ----------------------------------------------------------------------

    async def fetch_counted(self, query: ShopQuery, page: int) -> Fetched:
        """Fetch a page through the token with a free slot soonest; if that token
        retires meanwhile, through another.

        Raises:
            FatalError: the pool is stopped (every token retired, a stop, the budget).
        """
        return await self._routed(lambda client: client.fetch_counted(query, page))

    async def fetch_endpoint(
        self, endpoint: Endpoint[T], query: str, shop_url: str
    ) -> tuple[T, int]:
        """Ask another endpoint (a shop's profile or categories) through the token with
        a free slot soonest, as a page is asked."""
        return await self._routed(lambda client: client.fetch_endpoint(endpoint, query, shop_url))

    async def _routed(self, call: Callable[[Client], Awaitable[T]]) -> T:
        """``call`` with the token with a free slot soonest; with another if that one
        retires meanwhile."""
        while True:
            member = await self._take()
            try:
                fetched = await call(member.client)
            except FatalError as error:
                if self._fatal is None:
                    self._failed(member, error)
                if self._fatal is not None:
                    raise self._fatal from None
                continue  # the token retired: the page goes to another
            finally:
                member.held -= 1
                self._waiters.wake(1)
            return fetched

    async def _take(self) -> _Member:
        """The token with the most free slots, once one has a free slot."""
        while True:
            if self._fatal is not None:
                raise self._fatal
            member = self._freest()
            if member is not None:
                member.held += 1
                return member
            await self._waiters.wait()

    def _freest(self) -> _Member | None:
        count = len(self._members)
        start, self._next = self._next, (self._next + 1) % count
        best, best_free = None, 0
        for i in range(count):
            member = self._members[(start + i) % count]
            if member.retired is not None:
                continue
            fatal = member.client.fatal
            if fatal is not None:  # stopped elsewhere (another process of the token)
                self._failed(member, fatal)
                if self._fatal is not None:
                    return None
                continue
            free = member.client.throttle.limit - member.held
            if free > best_free:
                best, best_free = member, free
        return best

    def _failed(self, member: _Member, error: FatalError) -> None:
        """A token's request raised ``error``: retire the token if the error is its
        own, stop the pool if not (or if it was the last token)."""
        if not isinstance(error, TOKEN_ERRORS):
            self.stop(error)
            return
        if member.retired is not None:
            return
        member.retired = error
        member.client.stop(error)  # already stopped by its answer; say it for certain
        live = sum(1 for m in self._members if m.retired is None)
        _log.warning(
            "token %s retired: %s; %d of %d tokens left",
            member.fingerprint,
            error,
            live,
            len(self._members),
        )
        if live == 0:
            self.stop(error)
        self._waiters.wake_all()  # waiters choose again, or raise


def _throttle_factory(
    redis_url: str | None, limits: Limits, *, redis_outage: float
) -> Callable[[str], Admission]:
    url = redis_url_from_env(redis_url)
    if url is not None:

        def shared(token: str) -> Admission:
            return RedisThrottle(url, token, limits, redis_outage=redis_outage)

        return shared

    def local(token: str) -> Admission:
        return Throttle(limits)

    return local
