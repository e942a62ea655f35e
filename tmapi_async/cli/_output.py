"""What the command line prints: the token scrubbed from every line, the library's log
records shown through the display, and messages that quote input cut to a readable size.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    import logging

    from .._secret import Redactor

__all__ = [
    "UsageError",
    "clip",
    "err",
    "fatal_message",
    "library_logs",
    "say",
    "secrets",
]

#: Characters of a message shown; the rest (quoted input, mostly) is counted, not shown.
MESSAGE_LIMIT = 400


class UsageError(Exception):
    """A problem with the command line or its files: exit code 2, no traceback."""


class Secrets:
    """Every token this process knows of, scrubbed from everything it prints by the
    library's one redaction rule (a short test token does not mangle ordinary words)."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        self._redactor: Redactor | None = None

    def add(self, value: str | None) -> None:
        """Remember ``value`` (a token from the environment or a flag, or several
        separated by commas or whitespace) as secret."""
        for token in re.split(r"[\s,]+", value or ""):
            if token and token not in self.values:
                self.values.add(token)
                self._redactor = None

    def scrub(self, text: str) -> str:
        """``text`` with every known token replaced."""
        if self._redactor is None:
            from .._secret import Redactor

            self._redactor = Redactor(self.values)
        return self._redactor.scrub(text)


secrets = Secrets()


def say(message: str, stream: TextIO | None = None) -> None:
    """Print one scrubbed message on stdout (or ``stream``)."""
    print(secrets.scrub(message), file=stream or sys.stdout, flush=True)


#: Where :func:`err` sends its messages instead of stderr's text (``--log-format json``).
stderr_sink: list[Callable[[str], None]] = []


def err(message: str) -> None:
    """Print one scrubbed message on stderr (as a JSON line with ``--log-format json``)."""
    if stderr_sink:
        stderr_sink[0](message)
    else:
        say(message, sys.stderr)


def clip(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """A message (which may quote input) cut to ``limit`` characters, its length said."""
    if len(message) <= limit:
        return message
    return f"{message[:limit]}… ({len(message):,} characters)"


def _log_lines(show: Callable[[str], None]) -> logging.Handler:
    """A handler that hands the library's log records to ``show`` (the display, which
    scrubs them), one line each."""
    import logging

    class LogLines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                show(f"{record.levelname.lower()}: {record.getMessage()}")
            except Exception:  # a log line must never break a harvest
                self.handleError(record)

    return LogLines()


@contextlib.contextmanager
def library_logs(show: Callable[[str], None], *, verbose: bool) -> Iterator[None]:
    """Retries (INFO) shown with --verbose; otherwise only errors. The CLI reports fatal
    stops itself, so the library's warning about them is not repeated."""
    import logging

    logger = logging.getLogger("tmapi_async")
    handler = _log_lines(show)
    saved = logger.level, logger.propagate
    logger.setLevel(logging.INFO if verbose else logging.ERROR)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def fatal_message(error: BaseException, budget: int | None) -> str:
    """The line that says why a run stopped on a fatal error."""
    from .._errors import AuthenticationError, BalanceError, RequestBudgetExhausted

    if isinstance(error, AuthenticationError):
        return f"stopped: the API refused the token ({error})"
    if isinstance(error, BalanceError):
        return f"stopped: the subscription expired or the balance is spent ({error})"
    if isinstance(error, RequestBudgetExhausted):
        return f"stopped: --max-requests {budget} spent"
    return f"stopped: {error}"
