"""The one place redis-py's errors become ``RedisUnavailableError``, and what it lets pass."""

from __future__ import annotations

import errno
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

import tmapi_async as tm
from tmapi_async._redis.connection import RedisConnection


def _connection() -> RedisConnection:
    client: Any = object()  # the boundary never talks to Redis itself
    return RedisConnection("redis://:secret-pw@127.0.0.1:6399/0", client)


@pytest.mark.parametrize(
    "error",
    [
        RedisConnectionError("Connection reset by peer"),
        ConnectionResetError(errno.ECONNRESET, "reset"),
        TimeoutError("send timed out"),
    ],
)
def test_a_failure_to_talk_to_redis_names_the_redis_without_its_password(
    error: BaseException,
) -> None:
    """A socket or redis-py failure inside the boundary is ``RedisUnavailableError``."""
    with pytest.raises(tm.RedisUnavailableError) as raised, _connection().boundary():
        raise error
    assert "127.0.0.1:6399" in str(raised.value)
    assert "secret-pw" not in str(raised.value)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EIO])
def test_a_disk_error_inside_the_boundary_is_not_called_a_redis_outage(code: int) -> None:
    """A full or read-only disk under the export (the coordinator writes it inside the
    boundary) reaches the caller as the OSError it is."""
    with pytest.raises(OSError, match="No space") as raised, _connection().boundary():
        raise OSError(code, "No space left on device")
    assert not isinstance(raised.value, tm.RedisUnavailableError)
    assert raised.value.errno == code
