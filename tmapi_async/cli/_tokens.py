"""Several tokens on the command line: the client of one or of a pool, and the lines of
the summary that name each token by its fingerprint (never by its characters)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._reader import ShopReader

__all__ = ["client_of", "token_lines"]


def client_of(token: str, **keywords: Any) -> ShopReader:
    """A :class:`~tmapi_async.Client` of ``token``, or a :class:`~tmapi_async.TokenPool`
    when it holds several tokens (separated by commas or whitespace): the limits in
    ``keywords`` then apply to each token, ``max_requests`` to all of them."""
    from .._client import Client
    from .._pool import TokenPool, split_tokens

    tokens = split_tokens(token)
    if len(tokens) > 1:
        return TokenPool(tokens, **keywords)
    return Client(tokens[0] if tokens else token, **keywords)


def _reason(error: BaseException) -> str:
    from .._errors import AuthenticationError, BalanceError

    if isinstance(error, BalanceError):
        return f"balance spent or subscription expired ({error})"
    if isinstance(error, AuthenticationError):
        return f"refused by the API ({error})"
    return str(error)


def token_lines(client: Any) -> list[str]:
    """The summary's lines about the tokens of a pool (none for a single token)."""
    tokens = getattr(client, "tokens", None)
    if not tokens:
        return []
    serving = sum(1 for usage in tokens if usage.retired is None)
    lines = [f"tokens:   {serving} of {len(tokens)} in service; requests billed per token:"]
    for usage in tokens:
        state = "" if usage.retired is None else f", retired: {_reason(usage.retired)}"
        lines.append(f"  token {usage.fingerprint}: {usage.requests:,} requests{state}")
    return lines


def stop_message(client: Any, error: BaseException, message: str) -> str:
    """``message`` (why a run stopped), saying so when a pool's last token retired."""
    from .._pool import TOKEN_ERRORS

    tokens = getattr(client, "tokens", ())
    if len(tokens) > 1 and isinstance(error, TOKEN_ERRORS):
        return f"stopped: every token is retired; the last one: {message.removeprefix('stopped: ')}"
    return message


def worker_client(
    token: str,
    redis_url: str,
    *,
    cap: int | None,
    gate: Any = None,
    redis_outage: float = 60.0,
    **keywords: Any,
) -> ShopReader:
    """The client of a worker: each of the tokens in ``token`` has its limits shared
    through Redis by every process of the token, with at most ``cap`` requests of this
    worker in flight per token, each sent only while ``gate`` (the worker's
    :class:`~tmapi_async._redis.worker.OwnershipGate`) is fresh."""
    from .._admission import CappedAdmission
    from .._client import Client
    from .._pool import TokenPool, split_tokens
    from .._redis.throttle import RedisThrottle

    def admission(one: str) -> Any:
        return CappedAdmission(RedisThrottle(redis_url, one, redis_outage=redis_outage), cap, gate)

    tokens = split_tokens(token)
    if len(tokens) > 1:
        return TokenPool(tokens, throttle=admission, **keywords)
    return Client(token, throttle=admission(token), **keywords)
