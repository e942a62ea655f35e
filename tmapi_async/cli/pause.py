"""``tmapi-async pause``: hold a harvest: nothing new is sent for it until ``resume``."""

from __future__ import annotations

import argparse
from typing import Any

from ._control import add_control_parser, change_state, run_control

__all__ = ["add_parser", "run"]

EPILOG = """\
Requests of the harvest already sent finish and are committed; no new page request of
it is sent, and workers take no new shop of it. Workers learn it at their next
heartbeat (about a second). The shops they hold stay theirs; `tmapi-async resume`
goes on where it stopped. The coordinator waits, attached.

examples:
  tmapi-async status                        # the harvest ids (TMAPI_REDIS_URL set)
  tmapi-async pause 3f9a                    # a unique prefix of the id is enough
  tmapi-async pause --redis redis://127.0.0.1:6379/0 3f9a2c1e0b7d4a55
"""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``pause`` to the subcommands."""
    return add_control_parser(
        commands,
        "pause",
        summary="hold a harvest: nothing new is sent for it (scale out)",
        description="Pause a harvest of a Redis: requests in flight finish, nothing new "
        "is sent for it until `tmapi-async resume`.",
        epilog=EPILOG,
    )


def run(args: argparse.Namespace) -> int:
    """The ``pause`` command; returns the exit code."""
    return run_control(
        args,
        lambda redis, hid: change_state(
            redis, hid, "pause", "workers send nothing new for it from their next heartbeat"
        ),
    )
