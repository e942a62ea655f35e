"""``tmapi-async cancel``: end a harvest: its coordinator stops, workers stop serving it."""

from __future__ import annotations

import argparse
from typing import Any

from ._control import add_control_parser, change_state, run_control

__all__ = ["add_parser", "run"]

EPILOG = """\
Workers stop serving the harvest at their next heartbeat (requests already sent
finish and are committed; the shops they held are handed back). Its coordinator stops
with exit code 3, saying the harvest was cancelled. Nothing is deleted: a rerun of the
same `tmapi-async harvest ... --redis` command goes on where it stopped. To delete
the harvest's keys, use `tmapi-async forget`.

examples:
  tmapi-async cancel 3f9a
  tmapi-async cancel --redis redis://127.0.0.1:6379/0 3f9a2c1e0b7d4a55
"""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``cancel`` to the subcommands."""
    return add_control_parser(
        commands,
        "cancel",
        summary="end a harvest: its coordinator and workers stop serving it (scale out)",
        description="Cancel a harvest of a Redis: its coordinator stops (a rerun goes on), "
        "workers stop serving it.",
        epilog=EPILOG,
    )


def run(args: argparse.Namespace) -> int:
    """The ``cancel`` command; returns the exit code."""
    return run_control(
        args,
        lambda redis, hid: change_state(
            redis, hid, "cancel", "its coordinator and workers stop within seconds"
        ),
    )
