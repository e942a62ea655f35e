"""The exit codes scripts rely on, and the usage errors (exit 2) of a command line that
cannot be run."""

from __future__ import annotations

from pathlib import Path

import pytest
from clirun import run_cli
from clishops import SHOPS, write_shops

from tmapi_async.cli import ExitCode, build_parser


def test_exit_codes_are_the_contract_and_the_help_lists_them() -> None:
    """The numbers scripts rely on, each explained in --help."""
    assert {c.name: c.value for c in ExitCode} == {
        "OK": 0,
        "SHOPS_FAILED": 1,
        "USAGE": 2,
        "FATAL": 3,
        "SIGINT": 130,
        "SIGTERM": 143,
    }
    epilog = build_parser().epilog or ""
    for code in ExitCode:
        assert f"\n  {code.value} " in epilog


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--nope"], "unrecognized arguments: --nope"),
        (["--page-size", "0"], "must be at least 1"),
        (["--cat-type", "3"], "invalid choice: '3'"),
        (["--sort", "cheap"], "invalid choice: 'cheap'"),
        (["--rate", "fast"], "expected a number"),
        (["--format", "xml"], "invalid choice: 'xml'"),
    ],
)
async def test_exit_2_bad_flags(tmp_path: Path, extra: list[str], message: str) -> None:
    """A bad flag: usage on stderr, exit 2, nothing sent or written."""
    shops = write_shops(tmp_path / "shops.txt", SHOPS)
    run = await run_cli("harvest", str(shops), "--output", str(tmp_path / "o.jsonl"), *extra)
    assert run.code == 2
    assert message in run.err
    assert "Traceback" not in run.err
    assert not (tmp_path / "o.jsonl").exists()


async def test_exit_2_missing_output_and_no_command(tmp_path: Path) -> None:
    """``--output`` is required; so is a command."""
    assert (await run_cli("harvest", "shops.txt")).code == 2
    assert (await run_cli()).code == 2
