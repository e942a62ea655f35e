"""The command line's help: what --help teaches, which commands it lists, and how little
it imports to say so."""

from __future__ import annotations

import subprocess
import sys

from clirun import cli_env, run_cli

import tmapi_async
import tmapi_async as tm
from tmapi_async.cli import COMMANDS, build_parser
from tmapi_async.cli._options import SORTS


async def test_help_teaches_and_version() -> None:
    """--help has examples and exit codes; --version prints the version."""
    run = await run_cli("--help")
    assert run.code == 0
    assert "examples:" in run.out
    assert "tmapi-async demo" in run.out
    run = await run_cli("harvest", "--help")
    assert run.code == 0
    for flag in ("--output", "--format", "--state", "--max-requests", "--cat-type", "--quiet"):
        assert flag in run.out
    assert "exit codes" in run.out
    run = await run_cli("--version")
    assert run.code == 0
    assert run.out.strip() == f"tmapi-async {tmapi_async.__version__}"


async def test_help_says_what_csv_raw_does() -> None:
    """The neutralisation and how to turn it off are in the harvest's help."""
    run = await run_cli("harvest", "--help")
    assert "--csv-raw" in run.out
    assert "apostrophe" in run.out


def test_every_command_is_registered_with_its_own_help_line() -> None:
    """--help lists each command with the line its module gives, without importing it;
    a run builds the options of the command it names only."""
    parser = build_parser()
    commands = parser._subparsers._group_actions[0]  # type: ignore[union-attr]
    assert [(a.dest, a.help) for a in commands._choices_actions] == list(COMMANDS)
    only = build_parser(["harvest", "--help"])._subparsers._group_actions[0]  # type: ignore[union-attr]
    assert only.choices["harvest"]._actions[1:]  # harvest has its options
    assert not only.choices["estimate"]._actions  # others are listed only


def test_sort_choices_are_the_library_sorts() -> None:
    """--sort offers exactly the orders of tm.Sort (written out for a quick --help)."""
    assert tuple(s.value for s in tm.Sort) == SORTS


def test_import_and_help_leave_heavy_libraries_unloaded() -> None:
    """``import tmapi_async`` and ``--help`` import no command; building every command's
    options imports no aiohttp, rich, pyarrow, msgspec or asyncio: --help stays quick."""
    heavy = "('aiohttp', 'rich', 'pyarrow', 'msgspec', 'asyncio', 'tmapi_async._client')"
    code = (
        "import sys, tmapi_async; from tmapi_async.cli import build_parser; "
        "build_parser(['--help']); print('tmapi_async.cli.harvest' in sys.modules); "
        f"build_parser(); print(sorted(m for m in {heavy} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "[]"]
