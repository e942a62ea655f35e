"""The scale-out commands' edges: what they say and return before any work starts."""

from __future__ import annotations

import socket

import pytest

from tmapi_async.cli import main


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when this returns


def test_worker_needs_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """worker without a token is a usage error (exit 2) saying so."""
    monkeypatch.delenv("TMAPI_TOKEN", raising=False)
    assert main(["worker", "--redis", "redis://127.0.0.1:1/0"]) == 2
    assert "no API token" in capsys.readouterr().err


def test_worker_needs_a_redis(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """worker without --redis or TMAPI_REDIS_URL is a usage error naming both."""
    monkeypatch.setenv("TMAPI_TOKEN", "tok-cli")
    monkeypatch.delenv("TMAPI_REDIS_URL", raising=False)
    assert main(["worker"]) == 2
    assert "--redis URL or set TMAPI_REDIS_URL" in capsys.readouterr().err


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
