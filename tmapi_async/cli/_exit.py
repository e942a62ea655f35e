"""The exit codes of ``tmapi-async``: one table, which also writes the help's epilog."""

from __future__ import annotations

from enum import IntEnum
from typing import Final

__all__ = ["EXIT_CODES_HELP", "ExitCode"]


class ExitCode(IntEnum):
    """How a command ended. Scripts rely on these numbers: they never change."""

    OK = 0  #: every shop complete
    SHOPS_FAILED = 1  #: finished; some shops failed (listed in OUTPUT.failures.txt)
    USAGE = 2  #: a bad flag, an unreadable file, a state file of another harvest
    FATAL = 3  #: a fatal API error, --max-requests spent or an unwritable export: resumable
    SIGINT = 130  #: stopped by Ctrl-C, gracefully: resumable
    SIGTERM = 143  #: stopped by SIGTERM, gracefully: resumable


_MEANING: Final[dict[ExitCode, str]] = {
    ExitCode.OK: "every shop complete",
    ExitCode.SHOPS_FAILED: "finished, some shops failed (see OUTPUT.failures.txt)",
    ExitCode.USAGE: "usage error: a bad flag or file, a state file of another harvest",
    ExitCode.FATAL: "stopped: bad token, balance, --max-requests, unwritable export (resumable)",
    ExitCode.SIGINT: "stopped by Ctrl-C (resumable)",
    ExitCode.SIGTERM: "stopped by SIGTERM (resumable)",
}

#: The exit-code section of the help, written from the table above.
EXIT_CODES_HELP: Final[str] = "exit codes:\n" + "".join(
    f"  {code.value:<4} {_MEANING[code]}\n" for code in ExitCode
)
