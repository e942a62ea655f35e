"""``--loop {asyncio,uvloop}``: a global option of the command line, anywhere on it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from clirun import cli_env, run_cli

from tmapi_async.cli._loop import take_loop_option, use_loop
from tmapi_async.cli._output import UsageError


@pytest.fixture
def restore_policy() -> Iterator[None]:
    """The event loop policy as it was, after the test."""
    policy = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(policy)


def test_the_option_is_taken_out_wherever_it_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--loop NAME`` and ``--loop=NAME`` leave the arguments, before or after the
    command; what follows ``--`` is the command's own."""
    monkeypatch.delenv("TMAPI_LOOP", raising=False)
    assert take_loop_option(["--loop", "uvloop", "harvest", "x"]) == (["harvest", "x"], "uvloop")
    assert take_loop_option(["harvest", "x", "--loop=asyncio"]) == (["harvest", "x"], "asyncio")
    assert take_loop_option(["harvest", "--", "--loop", "x"]) == (
        ["harvest", "--", "--loop", "x"],
        None,
    )
    assert take_loop_option(["harvest"]) == (["harvest"], None)


def test_the_environment_gives_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """``TMAPI_LOOP`` chooses the loop unless the command line does."""
    monkeypatch.setenv("TMAPI_LOOP", "uvloop")
    assert take_loop_option(["demo"]) == (["demo"], "uvloop")
    assert take_loop_option(["demo", "--loop", "asyncio"]) == (["demo"], "asyncio")


@pytest.mark.usefixtures("restore_policy")
def test_uvloop_runs_every_asyncio_run_after_it() -> None:
    """Once chosen, uvloop is the loop ``asyncio.run`` creates; asyncio is left alone."""

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    use_loop("asyncio")
    assert asyncio.run(loop_module()).startswith("asyncio")
    use_loop("uvloop")
    assert asyncio.run(loop_module()).startswith("uvloop")


def test_an_unknown_loop_is_a_usage_error() -> None:
    """A loop that is neither asyncio nor uvloop is refused, naming both."""
    with pytest.raises(UsageError, match="asyncio, uvloop"):
        use_loop("trio")


async def test_the_command_line_runs_on_uvloop(tmp_path: Path) -> None:
    """``tmapi-async --loop uvloop demo`` harvests as on asyncio; a bogus loop exits 2."""
    demo = tmp_path / "demo"
    args = ("demo", "--shops", "6", "--dir", str(demo), "--quiet")
    run = await run_cli("--loop", "uvloop", *args, env=cli_env(None))
    assert run.code == 0, run.err
    assert (demo / "items.jsonl").read_text(encoding="utf-8").count("\n") > 0
    bogus = await run_cli(*args, "--loop", "bogus", env=cli_env(None))
    assert bogus.code == 2
    assert "--loop must be one of asyncio, uvloop" in bogus.err
