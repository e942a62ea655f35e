"""``tmapi-async worker``: what it refuses before it connects to anything."""

from __future__ import annotations

import pytest
from clirun import cli_env, run_cli

from tmapi_async.cli import main

KEY = "key-SECRET-6c2a91"  # distinctive: a leak is found by a plain search


@pytest.mark.parametrize(
    ("flag", "env"), [(["--auth", "apikey"], None), ([], "bearer")], ids=["flag", "env"]
)
async def test_a_worker_refuses_an_invalid_auth(flag: list[str], env: str | None) -> None:
    """``worker --auth`` (or ``TMAPI_AUTH``) takes the same values: exit 2 otherwise."""
    environment = cli_env(KEY)
    if env is not None:
        environment["TMAPI_AUTH"] = env
    run = await run_cli("worker", "--redis", "redis://127.0.0.1:1/0", *flag, env=environment)
    assert run.code == 2
    assert "auto" in run.err
    assert "header" in run.err
    assert "query" in run.err
    assert KEY not in run.err


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
