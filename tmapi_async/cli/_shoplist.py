"""Reading SHOPS: one shop URL a line, lazily, from a file or a pipe.

Blank lines and ``#`` comments are skipped and spaces stripped; invalid lines are
remembered with their line number (only those: memory stays flat for a million shops);
a pipe is read by a daemon thread so a slow producer never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .._errors import InvalidParameterError
from .._protocol import normalise_shop_url


class ShopListError(Exception):
    """SHOPS cannot be read (a message for the user)."""


@dataclass(slots=True)
class ShopList:
    """The lines of SHOPS, read lazily, remembering where invalid ones were.

    Only invalid lines are remembered (text → line number), so memory stays flat for
    a list of a million shops.
    """

    name: str
    invalid: dict[str, int] = field(default_factory=dict)
    lines: int = 0

    def take(self, raw: str) -> str | None:
        """The shop text of one raw line, or ``None`` for a blank or comment line."""
        self.lines += 1
        text = raw.strip()
        if not text or text.startswith("#"):
            return None
        try:
            normalise_shop_url(text)
        except InvalidParameterError:
            self.invalid.setdefault(text, self.lines)
        return text


def open_shops(name: str) -> IO[bytes]:
    """The SHOPS stream: the file ``name``, or standard input for ``-``."""
    if name == "-":
        return sys.stdin.buffer
    path = Path(name)
    if path.is_dir():
        raise ShopListError(f"cannot read SHOPS {name!r}: it is a directory")
    try:
        return open(path, "rb")  # closed by the caller
    except OSError as exc:
        raise ShopListError(f"cannot read SHOPS {name!r}: {exc.strerror or exc}") from None


def close_shops(stream: IO[bytes]) -> None:
    """Close a stream from :func:`open_shops` (standard input stays open)."""
    # stdin is not ours to close (and a reader thread may still be blocked on it).
    if stream is not sys.stdin.buffer:
        stream.close()


def _decode(raw: bytes, lineno: int) -> str:
    try:
        return raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace")


def count_shops(name: str) -> int | None:
    """Shop lines in a regular file (for the ETA); ``None`` for stdin or a pipe."""
    if name == "-":
        return None
    try:
        with open(name, "rb") as f:
            count = 0
            for raw in f:
                text = raw.strip()
                if text and not text.startswith(b"#"):
                    count += 1
            return count
    except OSError:
        return None


async def shop_lines(stream: IO[bytes], shops: ShopList) -> AsyncIterator[str]:
    """Shop texts from ``stream``: a regular file is read directly, a pipe or terminal
    without blocking the event loop (a slow producer must not stall requests). A
    stopped harvest cancels a pending read, so an open pipe never holds it."""
    regular = False
    with contextlib.suppress(OSError, ValueError, AttributeError):
        regular = stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    if regular:
        for raw in stream:
            text = shops.take(_decode(raw, shops.lines + 1))
            if text is not None:
                yield text
        return
    # A daemon thread reads the pipe: unlike the default executor, it cannot keep the
    # process alive at exit while blocked on a terminal that never sends EOF.
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1024)  # bounded: backpressure

    def read() -> None:
        # os.read on the descriptor, not the buffered reader: a daemon thread blocked
        # inside the buffered reader's lock makes the interpreter abort at exit.
        def put(raw: bytes) -> None:
            asyncio.run_coroutine_threadsafe(lines.put(raw), loop).result()

        try:
            fd, rest = stream.fileno(), b""
            while chunk := os.read(fd, 1 << 16):
                *complete, rest = (rest + chunk).split(b"\n")
                for raw in complete:
                    put(raw + b"\n")
            if rest:
                put(rest)
            put(b"")
        except Exception:  # the loop or the stream closed under us: the harvest is over
            return

    threading.Thread(target=read, name="tmapi-async-stdin", daemon=True).start()
    while raw := await lines.get():  # b"" marks the end of the input
        text = shops.take(_decode(raw, shops.lines + 1))
        if text is not None:
            yield text
