"""``--log-format json``: what a long-running command says on stderr, one JSON object a
line, through the standard ``logging`` and encoded by msgspec.

Each line holds ``time`` (ISO 8601, UTC), ``level``, ``event`` (a name: ``progress``,
``shop_finished``, ``harvest_finished``, ``message``...), the context that applies
(``harvest_id``, ``worker_id``), the event's fields -- units in their names
(``elapsed_s``) -- and a ``message`` for a reader. Every text in it, fields included, is
scrubbed of the tokens by the one redaction rule (``_secret``).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
from typing import Any, Literal

from ._output import secrets, stderr_sink

__all__ = ["LOGGER", "add_log_format", "context", "event", "is_json", "use_json"]

LogFormat = Literal["text", "json"]

#: The logger JSON lines go through (never propagated to the root logger).
LOGGER = "tmapi_async.cli.events"

_state: dict[str, Any] = {"json": False, "context": {}}


def add_log_format(parser: argparse.ArgumentParser) -> None:
    """``--log-format text|json``."""
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text (default): lines for a person; json: one JSON object a line on stderr "
        "(time, level, event, fields), for a log collector",
    )


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return secrets.scrub(value)
    if isinstance(value, dict):
        return {secrets.scrub(str(k)): _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return secrets.scrub(str(value))


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        import msgspec

        self._encoder = msgspec.json.Encoder()

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        line: dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "event": getattr(record, "tmapi_event", "message"),
        }
        line.update(_state["context"])
        line.update(getattr(record, "tmapi_fields", {}))
        message = record.getMessage()
        if message:
            line["message"] = message
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return self._encoder.encode(_scrubbed(line)).decode()


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the ``sys.stderr`` of the moment (tests replace it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def use_json(**fields: Any) -> None:
    """From now on, say everything as JSON lines, with ``fields`` (the context) in each."""
    _state["json"] = True
    _state["context"] = {k: v for k, v in fields.items() if v is not None}
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    if not logger.handlers:
        handler = _Stderr()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    stderr_sink[:] = [lambda message: event("message", message, level=logging.WARNING)]


def context(**fields: Any) -> None:
    """Add to the context every later line holds (e.g. a worker id, once known)."""
    _state["context"].update({k: v for k, v in fields.items() if v is not None})


def is_json() -> bool:
    """Whether this process says things as JSON lines."""
    return bool(_state["json"])


def event(name: str, message: str = "", *, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with its fields (a JSON line)."""
    logging.getLogger(LOGGER).log(
        level, "%s", message, extra={"tmapi_event": name, "tmapi_fields": fields}
    )
