"""``tmapi-async forget``: delete every key of a harvest from a Redis."""

from __future__ import annotations

import argparse
from typing import Any

from ._control import add_control_parser, run_control
from ._exit import ExitCode
from ._output import err, say

__all__ = ["add_parser", "run"]

EPILOG = """\
Deletes the harvest's record, shops, committed pages not yet exported, counters and
dead letters: `status` no longer lists it. The export and its state file (on the
coordinator's machine) are not touched: a rerun of the harvest command submits the
shops afresh, and the export's journal still drops every item it holds.

Refused while a coordinator is attached to the harvest (`status` says so): stop it
first, or pass --force. Workers serving it drop it quietly. A finished harvest needs
no forget: its keys expire by themselves after `harvest --keep` (default 7 days).

examples:
  tmapi-async forget 3f9a
  tmapi-async forget --force --redis redis://127.0.0.1:6379/0 3f9a2c1e0b7d4a55
"""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``forget`` to the subcommands."""
    parser = add_control_parser(
        commands,
        "forget",
        summary="delete every key of a harvest from a Redis (scale out)",
        description="Delete every key of a harvest from a Redis.",
        epilog=EPILOG,
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="delete even while a coordinator is attached (it then stops)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """The ``forget`` command; returns the exit code."""

    async def forget(redis: Any, hid: str) -> int:
        from .._redis.control import forget

        try:
            deleted = await forget(redis, hid, force=args.force)
        except RuntimeError as error:
            err(f"tmapi-async forget: refused: {error}")
            return ExitCode.SHOPS_FAILED
        say(f"harvest {hid} forgotten: {deleted} keys deleted")
        return ExitCode.OK

    return run_control(args, forget)
