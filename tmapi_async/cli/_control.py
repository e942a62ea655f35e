"""What ``pause``, ``resume``, ``cancel`` and ``forget`` share: the Redis, the harvest
named by its id or a unique prefix of it, and the exit codes of an operator's command."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from ._exit import ExitCode
from ._output import UsageError, err

__all__ = ["CONTROL_EXIT_CODES", "add_control_parser", "run_control"]

CONTROL_EXIT_CODES = """\
exit codes:
  0    done (or nothing to do: already so)
  1    refused: the harvest is in a state this does not apply to, or in use
  2    usage error: no Redis given, no harvest or several answer to HARVEST
  3    Redis cannot be reached
"""

#: What a control does once its harvest is found: (Redis client, harvest id) → exit code.
Action = Callable[[Any, str], Awaitable[int]]


def add_control_parser(
    commands: Any, name: str, *, summary: str, description: str, epilog: str
) -> argparse.ArgumentParser:
    """A subcommand taking ``--redis URL`` and ``HARVEST``."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=f"{epilog}\n{CONTROL_EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "harvest",
        metavar="HARVEST",
        help="the harvest's id as `tmapi-async status` shows it, or a unique prefix of it",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="the Redis (default: $TMAPI_REDIS_URL; prefer the variable when the URL "
        "holds a password: a flag shows in the process list)",
    )
    return parser


def run_control(args: argparse.Namespace, action: Action) -> int:
    """Open the Redis, find the harvest, run ``action``; returns the exit code."""
    import asyncio  # here, not at the top: --help does not need it

    from .._redis.connection import redis_url_from_env

    url = redis_url_from_env(args.redis)
    if url is None:
        raise UsageError("no Redis: pass --redis URL or set TMAPI_REDIS_URL")
    return asyncio.run(_run(args, url, action))


async def _run(args: argparse.Namespace, url: str, action: Action) -> int:
    from .._errors import FatalError
    from .._redis.connection import open_connection
    from .._redis.control import HarvestNotFound, resolve

    name = f"tmapi-async {args.command}"
    try:
        conn = await open_connection(url)
    except FatalError as error:
        err(f"{name}: {error}")
        return ExitCode.FATAL
    try:
        try:
            hid = await resolve(conn.client, args.harvest)
        except HarvestNotFound as error:
            err(f"{name}: error: {error}")
            return ExitCode.USAGE
        return await action(conn.client, hid)
    except Exception as error:
        if not conn.is_redis_error(error):
            raise
        err(f"{name}: {conn.unavailable(error)}")
        return ExitCode.FATAL
    finally:
        await conn.aclose()


async def change_state(redis: Any, hid: str, action: str, done: str) -> int:
    """``pause``, ``resume`` or ``cancel``: say what happened; 1 if it does not apply."""
    from .._redis.control import control
    from ._output import say

    before, after = await control(redis, hid, action)
    if not before:
        err(f"tmapi-async {action}: error: harvest {hid} is gone (its keys expired or forgotten)")
        return ExitCode.USAGE
    if after != before:
        say(f"harvest {hid}: {before} -> {after}; {done}")
        return ExitCode.OK
    if after == {"pause": "paused", "resume": "open", "cancel": "cancelled"}[action]:
        say(f"harvest {hid} is {after} already")
        return ExitCode.OK
    err(f"tmapi-async {action}: harvest {hid} is {after}: nothing to {action}")
    return ExitCode.SHOPS_FAILED
