"""``tmapi-async status``: what it prints of an empty Redis, and what it says of a Redis
it cannot reach (as ``worker`` does)."""

from __future__ import annotations

import socket

import pytest

from tmapi_async.cli import main


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when this returns


def test_unreachable_redis_is_fatal_and_named_without_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """worker and status against a closed port exit 3, naming the host but not the password or
    token."""
    monkeypatch.setenv("TMAPI_TOKEN", "tok-cli-secret")
    url = f"redis://:hunter2-password@127.0.0.1:{_closed_port()}/0"
    assert main(["worker", "--redis", url]) == 3
    assert main(["status", "--redis", url]) == 3
    err = capsys.readouterr().err
    assert "127.0.0.1" in err
    assert "hunter2-password" not in err
    assert "tok-cli-secret" not in err


def test_status_of_an_empty_redis(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """status of an empty Redis lists no harvests, workers or tokens, and exits 0."""
    assert main(["status", "--redis", redis_url]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "harvests:",
        "  (none)",
        "workers:",
        "  (none)",
        "tokens:",
        "  (none)",
    ]
