"""``tmapi-async resume``: a paused harvest goes on."""

from __future__ import annotations

import argparse
from typing import Any

from ._control import add_control_parser, change_state, run_control

__all__ = ["add_parser", "run"]

EPILOG = """\
Workers open the harvest's gate again at their next heartbeat (about a second) and go
on with the shops they hold, then take new ones. A cancelled harvest is not resumed:
rerun its `tmapi-async harvest ... --redis` command instead.

examples:
  tmapi-async resume 3f9a
  TMAPI_REDIS_URL=redis://:password@10.0.0.5:6379/0 tmapi-async resume 3f9a2c1e0b7d4a55
"""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``resume`` to the subcommands."""
    return add_control_parser(
        commands,
        "resume",
        summary="let a paused harvest go on (scale out)",
        description="Resume a paused harvest of a Redis.",
        epilog=EPILOG,
    )


def run(args: argparse.Namespace) -> int:
    """The ``resume`` command; returns the exit code."""
    return run_control(
        args,
        lambda redis, hid: change_state(
            redis, hid, "resume", "workers go on from their next heartbeat"
        ),
    )
