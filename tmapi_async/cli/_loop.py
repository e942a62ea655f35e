"""``--loop {asyncio,uvloop}``: the event loop every command runs on.

A global option, given anywhere on the command line (or as ``TMAPI_LOOP``): it is taken
out of the arguments before the command's own parser sees them, and the chosen loop is
installed as the policy every ``asyncio.run`` of the command then uses. asyncio's own
loop is the default; uvloop (the ``uvloop`` extra) is an opt-in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ._output import UsageError

LOOPS = ("asyncio", "uvloop")
ENV = "TMAPI_LOOP"
HELP = (
    "event loop: asyncio (default) or uvloop (pip install 'tmapi-async[uvloop]'); "
    f"anywhere on the line, or {ENV}"
)


def take_loop_option(argv: Sequence[str]) -> tuple[list[str], str | None]:
    """``argv`` without its ``--loop NAME`` / ``--loop=NAME``, and the NAME (or the
    ``TMAPI_LOOP`` environment variable, or None for the default)."""
    rest: list[str] = []
    chosen = os.environ.get(ENV) or None
    args = iter(argv)
    for arg in args:
        if arg == "--":  # what follows is the command's, untouched
            rest.append(arg)
            rest.extend(args)
            break
        if arg == "--loop":
            chosen = next(args, "")
        elif arg.startswith("--loop="):
            chosen = arg.partition("=")[2]
        else:
            rest.append(arg)
    return rest, chosen


def use_loop(name: str | None) -> None:
    """Install ``name``'s event loop policy (None or ``asyncio``: leave asyncio's).

    Raises:
        UsageError: an unknown loop, or uvloop asked for and not installed.
    """
    if name in (None, "asyncio"):
        return
    if name != "uvloop":
        raise UsageError(f"--loop must be one of {', '.join(LOOPS)}, got {name!r}")
    import asyncio  # here: --help and --version load no event loop

    try:
        import uvloop
    except ImportError:
        raise UsageError("--loop uvloop needs uvloop: pip install 'tmapi-async[uvloop]'") from None
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
